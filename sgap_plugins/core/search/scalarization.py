"""Scalarisation of the objectives, for a single-objective proposer (hyperopt TPE).

Given the objective values of ``T`` finished trials as a matrix ``[T, J]`` (all minimised):

* :func:`normalise` maps each column to ``[0, 1]`` by min–max over the rows, after a
  ``log10`` for times, memory and parameter counts (they span orders of magnitude);
* :func:`chebyshev` is ParEGO's augmented Chebyshev function
  :math:`g_\\lambda(x) = \\max_j \\lambda_j \\bar f_j(x) + \\rho \\sum_j \\lambda_j \\bar f_j(x)`
  with :math:`\\rho` = :data:`RHO`;
* :func:`constrained_loss` is ``val_error`` for a trial within every budget ``b_j`` and
  :math:`1 + \\sum_j \\max(0, (f_j - b_j)/b_j)` otherwise.

A failed trial gets :data:`FAIL_LOSS`, worse than any of these.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

RHO = 0.05
# g_λ ≤ max_j λ_j + ρ Σ_j λ_j ≤ 1 + ρ for normalised objectives; one more than that.
FAIL_LOSS = 2.0 + RHO
LOG_OBJECTIVES = frozenset({"inference_time", "train_time", "peak_memory", "params"})


def normalise(values: np.ndarray, objectives: Sequence[str]) -> np.ndarray:
    """Objective columns of ``values`` ``[T, J]`` mapped to ``[0, 1]`` by min–max over the
    rows (``log10`` first for the objectives in :data:`LOG_OBJECTIVES`); a constant column
    maps to 0. Returns a new ``[T, J]`` float64 array."""
    v = np.array(values, dtype=np.float64, copy=True)
    for j, name in enumerate(objectives):
        if name in LOG_OBJECTIVES:
            v[:, j] = np.log10(np.maximum(v[:, j], 1e-12))
        lo, hi = v[:, j].min(initial=np.inf), v[:, j].max(initial=-np.inf)
        v[:, j] = (v[:, j] - lo) / (hi - lo) if hi > lo else 0.0
    return v


def chebyshev(normalised: np.ndarray, weights: np.ndarray, rho: float = RHO) -> np.ndarray:
    """Augmented Chebyshev scalarisation ``max_j λ_j f_j + ρ Σ_j λ_j f_j`` of each row of
    ``normalised`` ``[T, J]`` with weights ``λ`` ``[J]``; returns ``[T]``."""
    wf = normalised * weights
    return wf.max(axis=1) + rho * wf.sum(axis=1)


def constrained_loss(
    values: np.ndarray, objectives: Sequence[str], budgets: Mapping[str, float]
) -> np.ndarray:
    """``val_error`` where every budget holds, else ``1 + Σ relative violations``; ``values``
    ``[T, J]`` in the order of ``objectives``, returns ``[T]``."""
    err = values[:, objectives.index("val_error")]
    violation = np.zeros(values.shape[0])
    for name, bound in budgets.items():
        col = values[:, objectives.index(name)]
        violation += np.maximum(0.0, (col - bound) / max(abs(bound), 1e-300))
    return np.where(violation > 0, 1.0 + violation, err)
