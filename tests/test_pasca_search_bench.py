"""The PaSca-claim benchmark (benchmarks/pasca_search.py), step 3: the best-validation trials
of a search, retrained on the search's hop stores, and their table."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pasca_search as pasca  # benchmarks/, on sys.path by conftest.py
import pytest

from sgap_plugins.core.config import SGAPConfig
from sgap_plugins.core.trainer import run
from sgap_plugins.datasets import load_dataset

FAST = dict(epochs=20, patience=10, hidden=16)
CONFIGS = {  # trial number: (validation accuracy, inference time, config)
    0: (0.70, 2e-5, SGAPConfig(k_pre=2, ga_pre="ppr", ga_pre_params={"alpha": 0.1}, **FAST)),
    1: (0.75, 3e-5, SGAPConfig(k_pre=3, k_post=1, ma="mean", **FAST)),
    2: (0.75, 1e-5, SGAPConfig(k_pre=1, **FAST)),
    3: (0.60, 1e-6, SGAPConfig(k_pre=0, **FAST)),
}


def _write_trials(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "trials.jsonl", "w") as f:
        for n, (val, seconds, config) in CONFIGS.items():
            trial = {"trial": n, "status": "ok", "val_acc": val, "config": config.to_dict()}
            f.write(json.dumps({**trial, "objectives": {"inference_time": seconds}}) + "\n")
        failed = {"trial": 4, "status": "fail", "val_acc": None, "config": {}, "objectives": {}}
        f.write(json.dumps(failed) + "\n")


def test_top_trials_are_the_best_validation_then_the_fastest(tmp_path: Path) -> None:
    _write_trials(tmp_path)
    assert [t["trial"] for t in pasca.top_trials(tmp_path, 3)] == [2, 1, 0]
    assert [t["trial"] for t in pasca.top_trials(tmp_path, 10)] == [2, 1, 0, 3]  # no failed


def test_retrain_top_equals_the_trainer_and_resumes(tmp_path: Path, data_root: Path) -> None:
    """Each run of step 3 equals ``trainer.run`` propagating the edge index itself (the
    independent path of ``sgap train``); a second call runs nothing; the table's cells are
    the means of the runs."""
    _write_trials(tmp_path)
    pasca.retrain_top("cora", tmp_path, 2, 2, False, str(data_root))
    rows = pasca.read_jsonl(tmp_path / "top.jsonl")
    assert sorted((r["trial"], r["seed"]) for r in rows) == [(1, 0), (1, 1), (2, 0), (2, 1)]
    d = load_dataset("cora", str(data_root), 0)
    for r in rows:
        config = CONFIGS[r["trial"]][2]
        _, want = run(
            d.edge_index, d.x, d.y, d.train_mask, d.val_mask, d.test_mask, config, r["seed"]
        )
        assert r["split_seed"] == 0
        assert r["search_val_acc"] == CONFIGS[r["trial"]][0]
        assert (r["val_acc"], r["test_acc"]) == pytest.approx((want.val_acc, want.test_acc))
    pasca.retrain_top("cora", tmp_path, 2, 2, False, str(data_root))
    assert pasca.read_jsonl(tmp_path / "top.jsonl") == rows

    summary = pasca.top_summary("cora", tmp_path)
    assert summary is not None
    test = {
        n: statistics.mean(100 * r["test_acc"] for r in rows if r["trial"] == n) for n in (1, 2)
    }
    assert {t["trial"]: t["test"] for t in summary["trials"]} == pytest.approx(test)
    table = pasca.top_table([summary])
    best = max(test, key=test.__getitem__)
    assert f"#{best}: {test[best]:.1f}" in table and "| Cora | 2 × 2 |" in table
