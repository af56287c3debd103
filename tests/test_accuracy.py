"""Accuracy of the SGC and SIGN presets on Cora's public split (the foundation's bar)."""

from __future__ import annotations

import time

import pytest

from sgap_plugins.core.config import preset
from sgap_plugins.core.trainer import run

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", ["sgc", "sign"])
def test_preset_accuracy_on_cora(cora, name: str) -> None:
    """Mean test accuracy over seeds 0, 1, 2 is at least 80 % and each run (propagation
    included) takes under a minute on CPU."""
    config = preset(name)
    accs = []
    for seed in (0, 1, 2):
        start = time.perf_counter()
        _, result = run(
            cora.edge_index,
            cora.x,
            cora.y,
            cora.train_mask,
            cora.val_mask,
            cora.test_mask,
            config,
            seed=seed,
        )
        seconds = time.perf_counter() - start
        assert seconds < 60, f"{name} seed {seed} took {seconds:.1f} s"
        accs.append(result.test_acc)
    mean = sum(accs) / len(accs)
    assert mean >= 0.80, f"{name}: mean test accuracy {mean:.4f} over seeds 0-2 ({accs})"
