"""Per-dataset training settings of the presets: the validated recipes and the grid that
validates them.

A *recipe* is a set of training-hyperparameter overrides of a preset for one built-in
dataset, the candidate of :func:`tuning_grid` with the best mean validation accuracy in
``docs/results.md`` (``benchmarks/reproduce_pasca.py --tune``). They ship as package data
(``recipes.json``) and ``sgap train --preset P --dataset D`` applies them. For a dataset
without a recipe, :func:`tune` runs the same grid.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from torch import Tensor

from .core.config import SGAPConfig
from .core.graph import CSRGraph
from .core.propagation import propagate_csr
from .core.synthetic import NodeDataset
from .core.trainer import run

__all__ = ["LINEAR_PRESETS", "Tuning", "recipe", "recipes", "tune", "tuning_grid"]

# Presets whose model is one linear layer: they get a weight-decay / lr grid.
LINEAR_PRESETS = frozenset({"sgc", "s2gc"})


@cache
def recipes() -> Mapping[str, Mapping[str, Mapping[str, Any]]]:
    """``dataset → preset → overrides`` for every validated (dataset, preset) pair."""
    text = resources.files(__package__).joinpath("recipes.json").read_text()
    return json.loads(text)["recipes"]


def recipe(dataset: str, preset: str) -> dict[str, Any] | None:
    """The overrides validated for ``preset`` on ``dataset`` (``{}``: the preset's own values
    validated best), or ``None`` when that pair was never validated."""
    found = recipes().get(dataset.lower(), {}).get(preset.lower())
    return None if found is None else dict(found)


def tuning_grid(preset: str) -> list[dict[str, Any]]:
    """The training-hyperparameter candidates of ``preset``, its own values (``{}``) first.

    Linear presets (:data:`LINEAR_PRESETS`): weight decay ∈ {1e-6, 1e-4, 1e-3}, then
    lr ∈ {0.05, 0.01} (smaller Adam steps suit binary bag-of-words features). MLP presets:
    lr / weight decay ∈ {0.01 / 5e-4, 0.05 / 5e-5, 0.005 / 5e-4} and 0.01 / 5e-4 with
    hidden 256."""
    if preset in LINEAR_PRESETS:
        return [
            {},
            *({"weight_decay": wd} for wd in (1e-6, 1e-4, 1e-3)),
            *({"lr": lr} for lr in (0.05, 0.01)),
        ]
    return [
        {},
        {"lr": 0.01, "weight_decay": 5e-4},
        {"lr": 0.05, "weight_decay": 5e-5},
        {"lr": 0.005, "weight_decay": 5e-4},
        {"lr": 0.01, "weight_decay": 5e-4, "hidden": 256},
    ]


@dataclass(frozen=True)
class Tuning:
    """The outcome of :func:`tune`: the chosen overrides and configuration, and the mean
    validation accuracy of every candidate (in grid order; 0 for a diverging one)."""

    overrides: dict[str, Any]
    config: SGAPConfig
    scores: list[tuple[dict[str, Any], float]]


def tune(
    data: NodeDataset, config: SGAPConfig, preset: str, seeds: Sequence[int] = (0, 1)
) -> Tuning:
    """Choose the candidate of :func:`tuning_grid` (``preset``'s grid applied to ``config``)
    with the highest mean **validation** accuracy over ``seeds``; ties keep the earlier one.

    The hops ``[k_pre+1, N, F]`` are propagated once and shared: the candidates change
    training hyperparameters only. A candidate whose training diverges
    (``FloatingPointError``) scores 0, as in ``benchmarks/reproduce_pasca.py``."""
    if not seeds:
        raise ValueError("tune needs at least one seed")
    csr = CSRGraph.from_edge_index(data.edge_index, data.num_nodes)
    hops: Tensor = propagate_csr(csr, config.pre_aggregator(), data.x, config.k_pre)
    scores: list[tuple[dict[str, Any], float]] = []
    best: tuple[dict[str, Any], float] | None = None
    for overrides in tuning_grid(preset):
        candidate = config.replace(**overrides)
        vals = []
        for seed in seeds:
            try:
                _, result = run(
                    csr,
                    data.x,
                    data.y,
                    data.train_mask,
                    data.val_mask,
                    data.test_mask,
                    candidate,
                    seed=seed,
                    hops=hops,
                )
                vals.append(result.val_acc)
            except FloatingPointError:
                vals.append(0.0)
        score = statistics.mean(vals)
        scores.append((overrides, score))
        if best is None or score > best[1] + 1e-6:  # float32 accuracies: ties keep the earlier
            best = (overrides, score)
    assert best is not None
    return Tuning(dict(best[0]), config.replace(**best[0]), scores)
