"""Exact Pareto fronts and hypervolumes against brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sgap_plugins.core.search import dominates, hypervolume, non_dominated


def brute_front(points: np.ndarray) -> list[int]:
    def dominated(i: int) -> bool:
        return any(
            all(points[j] <= points[i]) and any(points[j] < points[i])
            for j in range(len(points))
            if j != i
        )

    return [i for i in range(len(points)) if not dominated(i)]


def brute_hypervolume(points: np.ndarray, ref: np.ndarray) -> float:
    """Sum of the grid cells (spanned by every coordinate and the reference) whose lower
    corner some point weakly dominates."""
    axes = [np.unique(np.r_[points[:, j], ref[j]]) for j in range(ref.size)]
    volume = 0.0
    for cell in itertools.product(*(range(len(a) - 1) for a in axes)):
        lower = np.array([axes[j][c] for j, c in enumerate(cell)])
        upper = np.array([axes[j][c + 1] for j, c in enumerate(cell)])
        if np.any(np.all(points <= lower, axis=1)):
            volume += float(np.prod(upper - lower))
    return volume


def test_hand_made_front() -> None:
    pts = np.array(
        [
            [0.10, 5.0],  # front
            [0.20, 3.0],  # front
            [0.20, 4.0],  # dominated by [0.2, 3]
            [0.30, 1.0],  # front
            [0.30, 1.0],  # duplicate of a front point: kept
            [0.40, 1.0],  # dominated
            [0.05, 9.0],  # front
            [0.50, 0.5],  # front
            [0.60, 0.6],  # dominated
        ]
    )
    assert non_dominated(pts) == [0, 1, 3, 4, 6, 7] == brute_front(pts)
    assert dominates(pts[1], pts[2]) and not dominates(pts[3], pts[4])
    assert not dominates(pts[0], pts[1]) and not dominates(pts[1], pts[0])


@pytest.mark.parametrize("m", [2, 3, 4])
def test_front_equals_brute_force(m: int) -> None:
    rng = np.random.default_rng(m)
    for _ in range(20):
        pts = rng.integers(0, 6, size=(rng.integers(1, 40), m)).astype(float)  # many ties
        assert non_dominated(pts) == brute_front(pts)


def test_hypervolume_2d_hand_computed() -> None:
    pts = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0], [2.5, 2.5]])
    # staircase under reference (4, 4): 3·1 + 2·1 + 1·1 = 6
    assert hypervolume(pts, [4.0, 4.0]) == pytest.approx(6.0)
    assert hypervolume(pts[:0], [4.0, 4.0]) == 0.0
    assert hypervolume([[5.0, 0.0]], [4.0, 4.0]) == 0.0  # outside the reference box


@pytest.mark.parametrize("m", [2, 3])
def test_hypervolume_equals_brute_force(m: int) -> None:
    rng = np.random.default_rng(10 + m)
    for _ in range(8):
        pts = rng.random((rng.integers(1, 12), m))
        pts[rng.random(len(pts)) < 0.2] = pts[0]  # duplicates
        ref = np.full(m, 1.1)
        assert hypervolume(pts, ref) == pytest.approx(brute_hypervolume(pts, ref), rel=1e-9)
