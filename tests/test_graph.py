"""CSRGraph: construction, orientation, dtypes and transformations against dense references."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from sgap_plugins import CSRGraph
from sgap_plugins.core.graph import index_dtype


def random_edges(n: int, e: int, seed: int, self_loops: bool = True) -> torch.Tensor:
    gen = np.random.default_rng(seed)
    src, dst = gen.integers(0, n, e), gen.integers(0, n, e)
    if not self_loops:
        keep = src != dst
        src, dst = src[keep], dst[keep]
    return torch.from_numpy(np.stack([src, dst])).long()


def dense_from_edges(edge_index: torch.Tensor, n: int, weight=None) -> np.ndarray:
    """A[v, u] = summed weight of the edges u -> v (rows are destinations), by a plain loop."""
    a = np.zeros((n, n), dtype=np.float64)
    for i, (u, v) in enumerate(edge_index.t().tolist()):
        a[v, u] += 1.0 if weight is None else float(weight[i])
    return a


def dense(graph: CSRGraph) -> np.ndarray:
    """Dense matrix of a CSRGraph read straight from rowptr/col/weight (no scipy)."""
    a = np.zeros((graph.num_nodes, graph.num_nodes), dtype=np.float64)
    rowptr = graph.rowptr.tolist()
    col = graph.col.tolist()
    w = None if graph.weight is None else graph.weight.tolist()
    for v in range(graph.num_nodes):
        for j in range(rowptr[v], rowptr[v + 1]):
            a[v, col[j]] += 1.0 if w is None else w[j]
    return a


# ---------------------------------------------------------------------------- construction
def test_orientation_rows_are_destinations():
    # 0 -> 1, 0 -> 2, 2 -> 1: node 1 has in-neighbours {0, 2}, node 0 has none.
    g = CSRGraph.from_edge_index(torch.tensor([[0, 0, 2], [1, 2, 1]]), 3)
    assert g.rowptr.tolist() == [0, 0, 2, 3]
    assert g.col.tolist() == [0, 2, 0]
    assert g.weight is None
    assert g.num_nodes == 3 and g.num_edges == 3


def test_index_dtypes():
    g = CSRGraph.from_edge_index(random_edges(50, 200, 0), 50)
    assert g.rowptr.dtype == torch.int64
    assert g.col.dtype == torch.int32
    assert g.rowptr.shape == (51,)
    assert index_dtype(2**31 - 1) == torch.int32
    assert index_dtype(2**31) == torch.int64


@pytest.mark.parametrize("seed", range(3))
def test_from_edge_index_matches_dense_loop(seed):
    n = 30
    ei = random_edges(n, 150, seed)
    g = CSRGraph.from_edge_index(ei, n)
    np.testing.assert_array_equal(dense(g), dense_from_edges(ei, n))
    # columns sorted within each row, rowptr monotone
    assert bool((g.rowptr[1:] >= g.rowptr[:-1]).all())
    for v in range(n):
        row = g.col[g.rowptr[v] : g.rowptr[v + 1]]
        assert bool((row[1:] > row[:-1]).all())


def test_duplicate_edges_are_summed_unweighted():
    ei = torch.tensor([[0, 0, 0, 1], [1, 1, 1, 2]])
    g = CSRGraph.from_edge_index(ei, 3)
    assert g.num_edges == 2
    np.testing.assert_array_equal(dense(g), dense_from_edges(ei, 3))
    assert dense(g)[1, 0] == 3.0
    assert g.in_degree().tolist() == [0.0, 3.0, 1.0]


def test_duplicate_edges_are_summed_weighted():
    ei = torch.tensor([[0, 0, 2], [1, 1, 1]])
    w = torch.tensor([0.25, 0.5, 2.0])
    g = CSRGraph.from_edge_index(ei, 3, w)
    assert g.weight is not None and g.weight.dtype == torch.float32
    np.testing.assert_allclose(dense(g), dense_from_edges(ei, 3, w))


def test_num_nodes_default_and_isolated_tail():
    ei = torch.tensor([[0], [2]])
    assert CSRGraph.from_edge_index(ei).num_nodes == 3
    g = CSRGraph.from_edge_index(ei, 6)
    assert g.num_nodes == 6 and g.rowptr.tolist() == [0, 0, 0, 1, 1, 1, 1]
    empty = CSRGraph.from_edge_index(torch.zeros((2, 0), dtype=torch.long), 4)
    assert empty.num_edges == 0 and empty.rowptr.tolist() == [0] * 5


def test_int32_edge_index_accepted():
    ei = random_edges(20, 60, 1)
    a = CSRGraph.from_edge_index(ei, 20)
    b = CSRGraph.from_edge_index(ei.int(), 20)
    np.testing.assert_array_equal(dense(a), dense(b))


@pytest.mark.parametrize(
    "edge_index, kwargs, exc, match",
    [
        (torch.tensor([[0, 1], [1, 5]]), {"num_nodes": 3}, ValueError, "num_nodes"),
        (torch.tensor([[0, -1], [1, 2]]), {"num_nodes": 3}, ValueError, "negative"),
        (torch.tensor([[0, 1, 2]]), {}, ValueError, "edge_index"),
        (torch.tensor([[0.0, 1.0], [1.0, 0.0]]), {}, TypeError, "edge_index"),
        ([[0, 1], [1, 0]], {}, TypeError, "edge_index"),
        (torch.tensor([[0, 1], [1, 0]]), {"num_nodes": -1}, ValueError, "num_nodes"),
        (torch.tensor([[0, 1], [1, 0]]), {"num_nodes": 2.0}, TypeError, "num_nodes"),
        (
            torch.tensor([[0, 1], [1, 0]]),
            {"edge_weight": torch.tensor([1.0])},
            ValueError,
            "edge_weight",
        ),
        (
            torch.tensor([[0, 1], [1, 0]]),
            {"edge_weight": torch.tensor([1, 2])},
            TypeError,
            "edge_weight",
        ),
        (
            torch.tensor([[0, 1], [1, 0]]),
            {"edge_weight": torch.tensor([1.0, float("nan")])},
            ValueError,
            "edge_weight",
        ),
        (
            torch.tensor([[0, 1], [1, 0]]),
            {"edge_weight": torch.tensor([1.0, -1.0])},
            ValueError,
            "edge_weight",
        ),
    ],
)
def test_from_edge_index_rejects_bad_input(edge_index, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        CSRGraph.from_edge_index(edge_index, **kwargs)


# ---------------------------------------------------------------------------- scipy
def test_from_scipy_rows_are_destinations_and_weights():
    n = 25
    gen = np.random.default_rng(3)
    m = sp.random(n, n, density=0.1, random_state=gen, format="coo", dtype=np.float64)
    m.data = gen.uniform(0.5, 2.0, m.nnz)
    g = CSRGraph.from_scipy(m)
    assert g.weight is not None
    np.testing.assert_allclose(dense(g), m.toarray(), rtol=1e-6)
    np.testing.assert_allclose(g.to_scipy().toarray(), m.toarray(), rtol=1e-6)


def test_from_scipy_unweighted_and_duplicates():
    # COO with a duplicate entry: summed, hence weight 2 on that edge.
    m = sp.coo_matrix((np.ones(3), ([1, 1, 2], [0, 0, 1])), shape=(3, 3))
    g = CSRGraph.from_scipy(m)
    np.testing.assert_array_equal(dense(g), m.toarray())
    ones = sp.csr_matrix(np.array([[0, 1], [1, 0]], dtype=np.float32))
    assert CSRGraph.from_scipy(ones).weight is None
    assert CSRGraph.from_scipy(ones, weighted=True).weight is not None


def test_from_scipy_agrees_with_from_edge_index():
    n = 40
    ei = random_edges(n, 200, 7)
    m = sp.coo_matrix((np.ones(ei.size(1)), (ei[1].numpy(), ei[0].numpy())), shape=(n, n))
    np.testing.assert_array_equal(
        dense(CSRGraph.from_scipy(m)), dense(CSRGraph.from_edge_index(ei, n))
    )


@pytest.mark.parametrize(
    "matrix, exc, match",
    [
        (np.eye(3), TypeError, "matrix"),
        (sp.csr_matrix(np.ones((2, 3))), ValueError, "square"),
        (sp.csr_matrix(np.array([[0.0, -1.0], [1.0, 0.0]])), ValueError, "non-negative"),
        (sp.csr_matrix(np.array([[0.0, np.inf], [1.0, 0.0]])), ValueError, "NaN or inf"),
    ],
)
def test_from_scipy_rejects_bad_input(matrix, exc, match):
    with pytest.raises(exc, match=match):
        CSRGraph.from_scipy(matrix)


# ---------------------------------------------------------------------------- basic API
def test_in_degree_unweighted_and_weighted():
    n = 30
    ei = random_edges(n, 120, 11)
    w = torch.rand(ei.size(1)) + 0.1
    for weight in (None, w):
        g = CSRGraph.from_edge_index(ei, n, weight)
        deg = g.in_degree()
        assert deg.dtype == torch.float32 and deg.shape == (n,)
        np.testing.assert_allclose(
            deg.numpy(), dense_from_edges(ei, n, weight).sum(axis=1), rtol=1e-5
        )


def test_with_weights_keeps_structure():
    g = CSRGraph.from_edge_index(random_edges(20, 80, 2), 20)
    w = torch.arange(g.num_edges, dtype=torch.float32) + 1
    h = g.with_weights(w)
    assert h.rowptr is g.rowptr and h.col is g.col and h.num_nodes == g.num_nodes
    assert torch.equal(h.weight, w)
    assert torch.equal(h.in_degree(), torch.zeros(20).index_add_(0, g.row_index(), w))
    assert h.with_weights(None).weight is None
    with pytest.raises(ValueError, match="weight"):
        g.with_weights(torch.ones(g.num_edges + 1))
    with pytest.raises(TypeError, match="weight"):
        g.with_weights(torch.ones(g.num_edges, dtype=torch.long))


@pytest.mark.parametrize("weighted", [False, True])
def test_to_edge_index_round_trip(weighted):
    n = 35
    ei = torch.unique(random_edges(n, 150, 5), dim=1)  # no duplicates: stays unweighted
    g = CSRGraph.from_edge_index(ei, n, torch.rand(ei.size(1)) + 0.5 if weighted else None)
    ei, w = g.to_edge_index()
    assert ei.dtype == torch.int64 and ei.shape == (2, g.num_edges)
    assert (w is None) == (not weighted)
    back = CSRGraph.from_edge_index(ei, n, w)
    assert torch.equal(back.rowptr, g.rowptr) and torch.equal(back.col, g.col)
    if weighted:
        assert torch.equal(back.weight, g.weight)
    # row 1 of edge_index is the destination: edge j sits in row ei[1, j] of the CSR
    assert torch.equal(ei[1], g.row_index())


def test_to_torch_csr_matches_dense():
    n = 20
    ei = random_edges(n, 70, 9)
    w = torch.rand(70) + 0.1
    g = CSRGraph.from_edge_index(ei, n, w)
    np.testing.assert_allclose(
        g.to_torch_csr(torch.float64).to_dense().numpy(), dense_from_edges(ei, n, w), rtol=1e-6
    )


# ---------------------------------------------------------------------------- transformations
def test_add_self_loops_does_not_double_existing_loops():
    # node 0 has a self loop of weight 3, node 2 an unweighted-style loop of weight 1
    ei = torch.tensor([[0, 0, 2, 1], [0, 1, 2, 2]])
    w = torch.tensor([3.0, 1.0, 1.0, 2.0])
    g = CSRGraph.from_edge_index(ei, 4, w).add_self_loops()
    a = dense(g)
    expected = dense_from_edges(ei, 4, w)
    expected[1, 1] = 1.0
    expected[3, 3] = 1.0
    np.testing.assert_array_equal(a, expected)
    assert a[0, 0] == 3.0  # kept, not 4


def test_add_self_loops_unweighted_and_fill_value():
    n = 25
    ei = random_edges(n, 100, 4)
    g = CSRGraph.from_edge_index(ei, n)
    a0 = dense_from_edges(ei, n)
    expected = a0.copy()
    for v in range(n):
        if a0[v, v] == 0:
            expected[v, v] = 1.0
    np.testing.assert_array_equal(dense(g.add_self_loops()), expected)
    # idempotent
    np.testing.assert_array_equal(dense(g.add_self_loops().add_self_loops()), expected)
    filled = a0.copy()
    for v in range(n):
        if a0[v, v] == 0:
            filled[v, v] = 2.5
    np.testing.assert_array_equal(dense(g.add_self_loops(fill_value=2.5)), filled)


def test_add_self_loops_keeps_explicit_zero_weight_loop():
    ei = torch.tensor([[0, 1], [0, 0]])
    g = CSRGraph.from_edge_index(ei, 2, torch.tensor([0.0, 1.0])).add_self_loops()
    a = dense(g)
    assert a[0, 0] == 0.0 and a[1, 1] == 1.0 and a[0, 1] == 1.0


def test_symmetrize():
    n = 30
    ei = random_edges(n, 100, 6)
    a = dense_from_edges(ei, n)
    s = CSRGraph.from_edge_index(ei, n).symmetrize()
    np.testing.assert_array_equal(dense(s), np.maximum(a, a.T))
    simple = CSRGraph.from_edge_index(torch.tensor([[0, 1, 1], [1, 2, 0]]), 3).symmetrize()
    assert simple.weight is None
    np.testing.assert_array_equal(dense(simple), [[0, 1, 0], [1, 0, 1], [0, 1, 0]])
    ei2 = torch.tensor([[0, 1, 2], [1, 0, 0]])
    w = torch.tensor([2.0, 5.0, 1.5])
    sw = CSRGraph.from_edge_index(ei2, 3, w).symmetrize()
    expected = np.array([[0, 5, 1.5], [5, 0, 0], [1.5, 0, 0]])
    np.testing.assert_array_equal(dense(sw), expected)


def brute_force_triangles(graph: CSRGraph) -> np.ndarray:
    """T_vu for every stored edge, by enumerating third nodes of the undirected simple graph."""
    n = graph.num_nodes
    a = dense(graph)
    adj = ((a + a.T) > 0).astype(int)
    np.fill_diagonal(adj, 0)
    rows, cols = graph.row_index().tolist(), graph.col.tolist()
    out = []
    for v, u in zip(rows, cols, strict=True):
        if v == u or not adj[v, u]:
            out.append(0)
            continue
        out.append(sum(1 for w in range(n) if w not in (u, v) and adj[v, w] and adj[u, w]))
    return np.array(out, dtype=np.float32)


@pytest.mark.parametrize("seed", range(4))
def test_triangle_counts_vs_brute_force(seed):
    n = 18
    g = CSRGraph.from_edge_index(random_edges(n, 70, seed), n)
    t = g.triangle_counts()
    assert t.dtype == torch.float32 and t.shape == (g.num_edges,)
    np.testing.assert_array_equal(t.numpy(), brute_force_triangles(g))


def test_triangle_counts_known_graph():
    # K4 minus edge (2, 3), undirected: edges 0-1 lie in 2 triangles, the others in 1.
    pairs = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3)]
    ei = torch.tensor([[a for a, b in pairs] + [b for a, b in pairs],
                       [b for a, b in pairs] + [a for a, b in pairs]])  # fmt: skip
    g = CSRGraph.from_edge_index(ei, 4)
    counts = dict(
        zip(
            zip(g.row_index().tolist(), g.col.tolist(), strict=True),
            g.triangle_counts().tolist(),
            strict=True,
        )
    )
    assert counts[(0, 1)] == counts[(1, 0)] == 2.0
    assert counts[(0, 2)] == counts[(2, 1)] == counts[(3, 0)] == 1.0
    empty = CSRGraph.from_edge_index(torch.zeros((2, 0), dtype=torch.long), 3)
    assert empty.triangle_counts().shape == (0,)


def test_repr():
    g = CSRGraph.from_edge_index(torch.tensor([[0], [1]]), 2)
    assert repr(g) == "CSRGraph(num_nodes=2, num_edges=1, unweighted)"
