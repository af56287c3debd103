"""The outcome of a search: its trials, the exact Pareto front and its hypervolume."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .journal import Trial
from .pareto import hypervolume, non_dominated


@dataclass
class SearchResult:
    """The finished trials of a search and its exact Pareto front; ``dataset`` is the
    search's record of its data (:func:`~sgap_plugins.core.search.evaluation.dataset_record`)."""

    trials: list[Trial]
    objectives: list[str]
    front: list[Trial]
    hypervolume: float
    reference: list[float]
    dataset: dict[str, Any] | None = None

    @classmethod
    def from_trials(
        cls,
        trials: Sequence[Trial],
        objectives: Sequence[str],
        budgets: Mapping[str, float] | None = None,
        dataset: Mapping[str, Any] | None = None,
    ) -> SearchResult:
        """Front and hypervolume over the finished trials (in ``constrained`` mode only the
        trials within every budget). The reference point is the worst value of each
        objective over all finished trials (``val_error`` at most 1)."""
        trials = sorted(trials, key=lambda t: t.trial)
        ok = [t for t in trials if t.status == "ok"]
        objectives = list(objectives)
        record = dict(dataset) if dataset is not None else None
        if not ok:
            return cls(list(trials), objectives, [], 0.0, [], record)
        vals = np.array([[t.objectives[o] for o in objectives] for t in ok])
        reference = vals.max(axis=0)
        eligible = list(range(len(ok)))
        if budgets:
            eligible = [
                i for i in eligible if all(ok[i].objectives[k] <= b for k, b in budgets.items())
            ]
        sub = vals[eligible]
        front_idx = [eligible[i] for i in non_dominated(sub)] if eligible else []
        front = sorted(
            (ok[i] for i in front_idx), key=lambda t: [t.objectives[o] for o in objectives]
        )
        hv = hypervolume(vals[front_idx], reference * (1 + 1e-9) + 1e-12) if front_idx else 0.0
        return cls(list(trials), objectives, front, hv, reference.tolist(), record)

    @property
    def best(self) -> Trial | None:
        ok = [t for t in self.trials if t.status == "ok"]
        return min(ok, key=lambda t: (t.objectives["val_error"], t.trial)) if ok else None

    def pareto_json(self) -> dict[str, Any]:
        """``{"dataset", "objectives", "points": [{"config", "point", "objectives", "test_acc",
        "val_acc", "trial"}], "hypervolume", "reference"}``; ``"dataset"`` (the
        :func:`~sgap_plugins.core.search.evaluation.dataset_record`) only when known."""
        head = {} if self.dataset is None else {"dataset": self.dataset}
        return {
            **head,
            "objectives": self.objectives,
            "points": [
                {
                    "trial": t.trial,
                    "config": t.config,
                    "point": t.point,
                    "objectives": {o: t.objectives[o] for o in self.objectives},
                    "val_acc": t.val_acc,
                    "test_acc": t.test_acc,
                }
                for t in self.front
            ],
            "hypervolume": self.hypervolume,
            "reference": self.reference,
        }
