"""Exact Pareto fronts and hypervolumes (all objectives minimised)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _as_matrix(points: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    arr = np.asarray(points, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"points must be a [n, m] matrix, got shape {arr.shape}")
    if arr.size and not np.isfinite(arr).all():
        raise ValueError("points must be finite")
    return arr


def dominates(a: np.ndarray, b: np.ndarray) -> bool:
    """``a`` Pareto-dominates ``b``: ``a ≤ b`` in every objective and ``a < b`` in one."""
    return bool(np.all(a <= b) and np.any(a < b))


def non_dominated(points: Sequence[Sequence[float]] | np.ndarray) -> list[int]:
    """Indices (ascending) of the points no other point dominates.

    Exact, ``O(n² m)``: point ``i`` is kept iff no ``j`` has ``p_j ≤ p_i`` everywhere and
    ``p_j < p_i`` somewhere. Duplicates of a non-dominated point are all kept.
    """
    p = _as_matrix(points)
    keep = []
    for i in range(p.shape[0]):
        le = np.all(p <= p[i], axis=1)
        lt = np.any(p < p[i], axis=1)
        if not np.any(le & lt):
            keep.append(i)
    return keep


def hypervolume(
    points: Sequence[Sequence[float]] | np.ndarray, reference: Sequence[float]
) -> float:
    """The Lebesgue measure of the region dominated by ``points`` and bounded by
    ``reference``:

    .. math::
        HV(P, r) = \\lambda\\Big(\\bigcup_{p \\in P} [p_1, r_1] \\times \\dots \\times
        [p_m, r_m]\\Big)

    Points not strictly better than ``reference`` in every objective contribute nothing.
    Exact: a sweep for ``m ≤ 2`` and slicing along the last objective above (fine for the
    front sizes of a search).
    """
    p = _as_matrix(points)
    ref = np.asarray(reference, dtype=np.float64)
    if p.size and p.shape[1] != ref.size:
        raise ValueError(f"reference has {ref.size} objectives, points have {p.shape[1]}")
    if p.size == 0:
        return 0.0
    p = p[np.all(p < ref, axis=1)]
    return _hv(p, ref)


def _hv(p: np.ndarray, ref: np.ndarray) -> float:
    if p.shape[0] == 0:
        return 0.0
    m = ref.size
    if m == 1:
        return float(ref[0] - p[:, 0].min())
    if m == 2:
        order = np.lexsort((p[:, 1], p[:, 0]))  # by first objective, ties by second
        volume, best_y = 0.0, ref[1]
        for x, y in p[order]:
            if y < best_y:
                volume += (ref[0] - x) * (best_y - y)
                best_y = y
        return float(volume)
    p = p[np.argsort(p[:, -1], kind="stable")]
    volume = 0.0
    for i in range(p.shape[0]):
        upper = p[i + 1, -1] if i + 1 < p.shape[0] else ref[-1]
        depth = upper - p[i, -1]
        if depth > 0:
            head = p[: i + 1, :-1]
            volume += depth * _hv(head[non_dominated(head)], ref[:-1])
    return float(volume)
