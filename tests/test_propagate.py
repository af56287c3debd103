"""``propagate``: parity with PyG's operators on real data, dense references on small graphs,
edge cases and input validation."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from sgap_plugins import CSRGraph, GraphAggregator, propagate
from sgap_plugins.core.graph_aggregators import AugNormAdj, PersonalizedPageRank, TriangleMotif

torch_geometric = pytest.importorskip("torch_geometric")
import torch_geometric.transforms as T  # noqa: E402
from torch_geometric.data import Data  # noqa: E402
from torch_geometric.nn import APPNP, SGConv  # noqa: E402
from torch_geometric.nn.conv.gcn_conv import gcn_norm  # noqa: E402

ATOL = 1e-5


def close(actual, expected, atol=ATOL, rtol=1e-5):
    torch.testing.assert_close(actual, expected, atol=atol, rtol=rtol)


@pytest.fixture(scope="module")
def citeseer(data_root):
    from sgap_plugins.datasets import load_dataset

    return load_dataset("citeseer", data_root)


def gcn_step(edge_index, edge_weight, x):
    """One step of PyG-normalised propagation, ``out[dst] += w * x[src]`` by scatter."""
    out = torch.zeros_like(x)
    return out.index_add_(0, edge_index[1], edge_weight.unsqueeze(-1) * x[edge_index[0]])


# ---------------------------------------------------------------------------- PyG parity, Cora
@pytest.mark.parametrize("k", [1, 3])
def test_aug_na_without_self_loops_equals_pyg_sign_cora(cora, k):
    data = T.SIGN(k)(Data(x=cora.x.clone(), edge_index=cora.edge_index))
    hops = propagate(cora.edge_index, cora.x, k, "aug_na", r=0.5, add_self_loops=False)
    assert hops.shape == (k + 1, cora.num_nodes, cora.x.size(1))
    assert hops.is_contiguous()
    assert torch.equal(hops[0], cora.x)
    for i in range(1, k + 1):
        close(hops[i], data[f"x{i}"])


def test_aug_na_with_self_loops_equals_sgconv_cora(cora):
    k = 3
    hops = propagate(cora.edge_index, cora.x, k, "aug_na", r=0.5)
    # SGConv with an identity weight and no bias is exactly k steps of gcn_norm propagation.
    conv = SGConv(cora.x.size(1), cora.x.size(1), K=k, bias=False)
    with torch.no_grad():
        conv.lin.weight.copy_(torch.eye(cora.x.size(1)))
        close(hops[k], conv(cora.x, cora.edge_index))
    # ... and every intermediate hop equals the matching number of gcn_norm steps.
    ei, w = gcn_norm(cora.edge_index, None, cora.num_nodes, add_self_loops=True)
    ref = cora.x
    for i in range(1, k + 1):
        ref = gcn_step(ei, w, ref)
        close(hops[i], ref)


def test_aug_na_weighted_with_existing_loops_equals_gcn_norm(cora):
    """Random edge weights and some pre-existing self loops of weight != 1: PyG's
    ``add_remaining_self_loops`` keeps those loops' weights, and so must we."""
    gen = torch.Generator().manual_seed(0)
    loops = torch.randperm(cora.num_nodes, generator=gen)[:300]
    ei = torch.cat([cora.edge_index, loops.repeat(2, 1)], dim=1)
    w = torch.rand(ei.size(1), generator=gen) + 0.1
    hops = propagate(ei, cora.x, 2, "aug_na", edge_weight=w)
    ei_n, w_n = gcn_norm(ei, w, cora.num_nodes, add_self_loops=True)
    ref = cora.x
    for i in (1, 2):
        ref = gcn_step(ei_n, w_n, ref)
        close(hops[i], ref)


@pytest.mark.parametrize("alpha, k", [(0.1, 10), (0.3, 4)])
def test_ppr_equals_pyg_appnp_cora(cora, alpha, k):
    x = cora.x[:, :512].contiguous()  # a column block keeps it fast; propagation is per column
    hops = propagate(cora.edge_index, x, k, "ppr", alpha=alpha)
    close(hops[k], APPNP(K=k, alpha=alpha)(x, cora.edge_index))
    # every hop is APPNP with that many steps
    close(hops[1], APPNP(K=1, alpha=alpha)(x, cora.edge_index))


# ---------------------------------------------------------------------------- PyG parity, CiteSeer
def test_aug_na_citeseer_equals_sign_with_isolated_nodes(citeseer):
    """CiteSeer has isolated nodes: the formula (and PyG's SIGN) gives them zero rows;
    ``keep_isolated=True`` keeps their own features and changes no other row."""
    k = 2
    x, ei = citeseer.x, citeseer.edge_index
    isolated = torch.bincount(ei[1], minlength=citeseer.num_nodes) == 0
    assert int(isolated.sum()) > 0  # the premise of this test
    data = T.SIGN(k)(Data(x=x.clone(), edge_index=ei))
    hops = propagate(ei, x, k, "aug_na", r=0.5, add_self_loops=False)
    kept = propagate(ei, x, k, "aug_na", r=0.5, add_self_loops=False, keep_isolated=True)
    for i in range(1, k + 1):
        close(hops[i], data[f"x{i}"])
        close(kept[i][~isolated], data[f"x{i}"][~isolated])
        assert torch.equal(kept[i][isolated], x[isolated])


def test_ppr_and_gcn_citeseer(citeseer):
    """With self loops isolated nodes are no special case: full agreement with PyG."""
    x, ei = citeseer.x[:, :512].contiguous(), citeseer.edge_index
    hops = propagate(ei, x, 3, "ppr", alpha=0.2)
    close(hops[3], APPNP(K=3, alpha=0.2)(x, ei))
    gcn = propagate(ei, x, 2, "aug_na")
    ei_n, w_n = gcn_norm(ei, None, citeseer.num_nodes, add_self_loops=True)
    close(gcn[2], gcn_step(ei_n, w_n, gcn_step(ei_n, w_n, x)))


def test_directed_multigraph_parity_with_pyg():
    """A directed Chung-Lu graph with repeated edges: PyG normalises by in-degree and sums
    duplicate edges; so do we. Rows of nodes without in-neighbours differ by design."""
    from sgap_plugins.core.synthetic import power_law_graph

    n = 400
    ei = power_law_graph(n, 4.0, seed=1)
    ei = ei[:, ei[0] != ei[1]]
    assert torch.unique(ei, dim=1).size(1) < ei.size(1)  # the premise: duplicates present
    x = torch.randn(n, 8, generator=torch.Generator().manual_seed(0))
    has_in = torch.bincount(ei[1], minlength=n) > 0
    sign = T.SIGN(2)(Data(x=x, edge_index=ei))
    hops = propagate(ei, x, 2, "aug_na", add_self_loops=False)
    close(hops[1][has_in], sign.x1[has_in])
    close(hops[2][has_in], sign.x2[has_in])
    ei_n, w_n = gcn_norm(ei, None, n, add_self_loops=True)
    close(propagate(ei, x, 1, "aug_na")[1], gcn_step(ei_n, w_n, x))
    close(propagate(ei, x, 3, "ppr", alpha=0.1)[3], APPNP(K=3, alpha=0.1)(x, ei))


# ---------------------------------------------------------------------------- dense references
def random_graph(n, e, seed, weighted=False, self_loops=True):
    gen = np.random.default_rng(seed)
    src, dst = gen.integers(0, n, e), gen.integers(0, n, e)
    if not self_loops:
        keep = src != dst
        src, dst = src[keep], dst[keep]
    ei = torch.from_numpy(np.stack([src, dst])).long()
    w = torch.from_numpy(gen.uniform(0.2, 3.0, ei.size(1))).float() if weighted else None
    return ei, w


def dense_adj(ei, n, w=None):
    a = np.zeros((n, n))
    for j, (u, v) in enumerate(ei.t().tolist()):
        a[v, u] += 1.0 if w is None else float(w[j])
    return a


def dense_aug_na(a, r, add_self_loops=True, keep_isolated=False):
    a = a.copy()
    n = a.shape[0]
    if add_self_loops:
        for v in range(n):
            if a[v, v] == 0:
                a[v, v] = 1.0
    d = a.sum(axis=1)
    w = np.zeros_like(a)
    for v in range(n):
        for u in range(n):
            if a[v, u]:
                # a source with zero in-degree sends nothing when r > 0 (d^-r undefined)
                src = 1.0 if r == 0 else (d[u] ** (-r) if d[u] > 0 else 0.0)
                w[v, u] = d[v] ** (r - 1) * a[v, u] * src
    for v in range(n):  # with keep_isolated, a node with an empty row keeps its own message
        if keep_isolated and not a[v].any():
            w[v, v] = 1.0
    return w


def dense_hops(w, x, k, alpha=None):
    out = [x]
    for _ in range(k):
        step = w @ out[-1]
        out.append(step if alpha is None else alpha * x + (1 - alpha) * step)
    return np.stack(out)


@pytest.mark.parametrize("r", [0.0, 0.5, 1.0, 0.3])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("add_self_loops, keep", [(True, False), (False, False), (False, True)])
def test_aug_na_vs_dense(r, weighted, add_self_loops, keep):
    n, f, k = 20, 5, 3
    ei, w = random_graph(n, 60, seed=int(r * 10) + 7 * weighted, weighted=weighted)
    x = torch.randn(n, f, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    hops = propagate(
        ei, x, k, "aug_na", r=r, add_self_loops=add_self_loops, edge_weight=w, keep_isolated=keep
    )
    ref = dense_hops(dense_aug_na(dense_adj(ei, n, w), r, add_self_loops, keep), x.numpy(), k)
    np.testing.assert_allclose(hops.numpy(), ref, rtol=1e-5, atol=1e-6)


def test_aug_na_r_extremes_are_random_walks():
    """r = 0 makes every row of W sum to 1 (D̃⁻¹Ã); r = 1 every column (ÃD̃⁻¹), on a
    symmetric graph."""
    n = 30
    ei, _ = random_graph(n, 90, 3, self_loops=False)
    ei = torch.unique(torch.cat([ei, ei.flip(0)], 1), dim=1)
    ones = torch.ones(n, 1, dtype=torch.float64)
    rw = propagate(ei, ones, 1, "aug_na", r=0.0)[1]
    close(rw, ones, atol=1e-6, rtol=0)
    w1 = AugNormAdj(r=1.0).transition(CSRGraph.from_edge_index(ei, n)).to_scipy().toarray()
    np.testing.assert_allclose(w1.sum(axis=0), np.ones(n), rtol=1e-6)


def dense_triangle(ei, n):
    a = dense_adj(ei, n)
    adj = ((a + a.T) > 0).astype(float)
    np.fill_diagonal(adj, 0)
    t = np.zeros((n, n))
    for v in range(n):
        for u in range(n):
            if adj[v, u]:
                t[v, u] = sum(adj[v, w] * adj[u, w] for w in range(n) if w not in (u, v))
    t += np.eye(n)
    return t / t.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("seed", range(3))
def test_triangle_vs_dense_brute_force(seed):
    n, f, k = 16, 4, 3
    ei, _ = random_graph(n, 40, seed)
    x = torch.randn(n, f, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    hops = propagate(ei, x, k, "triangle")
    ref = dense_hops(dense_triangle(ei, n), x.numpy(), k)
    np.testing.assert_allclose(hops.numpy(), ref, rtol=1e-6, atol=1e-6)


def test_triangle_nodes_outside_triangles_keep_own_features():
    # a triangle 0-1-2 and a path 2-3-4 (directed edges one way only: symmetrised)
    ei = torch.tensor([[0, 1, 2, 2, 3], [1, 2, 0, 3, 4]])
    x = torch.arange(10, dtype=torch.float32).reshape(5, 2)
    hops = propagate(ei, x, 2, "triangle")
    assert torch.equal(hops[2][3:], x[3:])
    # inside the triangle: T̃ rows are [1,1,1]/3 (edge 2-3 lies in no triangle)
    close(hops[1][:3], x[:3].mean(0).expand(3, 2))


@pytest.mark.parametrize("alpha", [0.1, 0.5, 0.9])
def test_ppr_vs_dense(alpha):
    n, k = 25, 4
    ei, w = random_graph(n, 70, 5, weighted=True)
    x = torch.randn(n, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    hops = propagate(ei, x, k, "ppr", alpha=alpha, edge_weight=w)
    ref = dense_hops(dense_aug_na(dense_adj(ei, n, w), 0.5), x.numpy(), k, alpha=alpha)
    np.testing.assert_allclose(hops.numpy(), ref, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------- edge cases
ALL_AGGREGATORS = [
    ("aug_na", {}),
    ("aug_na", {"add_self_loops": False, "keep_isolated": True}),
    ("aug_na", {"r": 0.0, "add_self_loops": False, "keep_isolated": True}),
    ("aug_na", {"r": 1.0, "add_self_loops": False, "keep_isolated": True}),
    ("ppr", {"alpha": 0.2}),
    ("ppr", {"alpha": 0.2, "add_self_loops": False, "keep_isolated": True}),
    ("triangle", {}),
]


@pytest.mark.parametrize("name, params", ALL_AGGREGATORS)
def test_edgeless_graph_keeps_own_features(name, params):
    x = torch.randn(6, 3)
    hops = propagate(torch.zeros((2, 0), dtype=torch.long), x, 4, name, num_nodes=6, **params)
    assert hops.shape == (5, 6, 3)
    for t in range(5):
        close(hops[t], x, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("name, params", ALL_AGGREGATORS)
def test_isolated_nodes_finite_and_kept(name, params):
    # nodes 0-2 form a cycle; 3 receives from 0 only (directed); 4 and 5 are isolated
    ei = torch.tensor([[0, 1, 2, 0], [1, 2, 0, 3]])
    x = torch.randn(6, 4)
    hops = propagate(ei, x, 5, name, **params)
    assert bool(torch.isfinite(hops).all())
    for t in range(6):
        close(hops[t][4:], x[4:], atol=1e-6, rtol=1e-6)


def test_zero_weight_in_edges_keep_own_features():
    """A node whose only in-edge has weight 0 has degree zero: it keeps its own features."""
    ei = torch.tensor([[0, 1, 2], [1, 0, 2]])
    w = torch.tensor([1.0, 1.0, 0.0])
    x = torch.randn(3, 2)
    for r in (0.0, 0.5, 1.0):
        hops = propagate(
            ei, x, 3, "aug_na", r=r, add_self_loops=False, edge_weight=w, keep_isolated=True
        )
        assert bool(torch.isfinite(hops).all())
        close(hops[3][2], x[2])


def test_k_zero_and_dtype_bf16(cora):
    x = cora.x[:, :64].contiguous()
    assert torch.equal(propagate(cora.edge_index, x, 0)[0], x)
    ref = propagate(cora.edge_index, x, 3)
    out = propagate(cora.edge_index, x, 3, dtype=torch.bfloat16)
    assert out.dtype == torch.bfloat16 and out.shape == ref.shape
    # stored in bf16 (8 mantissa bits), accumulated in fp32: within bf16 rounding of fp32
    close(out.float(), ref, atol=1e-6, rtol=2**-8)
    half_in = propagate(cora.edge_index, x.to(torch.bfloat16), 3)
    assert half_in.dtype == torch.bfloat16
    close(half_in.float(), ref, atol=1e-3, rtol=2**-6)


def test_float64_input_stays_float64():
    ei, _ = random_graph(10, 30, 0)
    x = torch.randn(10, 2, dtype=torch.float64)
    assert propagate(ei, x, 2).dtype == torch.float64


def test_graph_input_kinds_agree(cora):
    x = cora.x[:, :32].contiguous()
    ref = propagate(cora.edge_index, x, 2, "ppr", alpha=0.1)
    csr = CSRGraph.from_edge_index(cora.edge_index, cora.num_nodes)
    ei = cora.edge_index
    scipy_mat = sp.coo_matrix(
        (np.ones(ei.size(1)), (ei[1].numpy(), ei[0].numpy())), shape=(cora.num_nodes,) * 2
    )
    for graph in (csr, scipy_mat, Data(edge_index=ei, num_nodes=cora.num_nodes)):
        close(propagate(graph, x, 2, "ppr", alpha=0.1), ref)
    close(propagate(cora.edge_index, x, 2, PersonalizedPageRank(alpha=0.1)), ref)


def test_pyg_data_edge_weight_is_used():
    ei, w = random_graph(12, 40, 1, weighted=True)
    x = torch.randn(12, 3, dtype=torch.float64)
    data = Data(edge_index=ei, edge_weight=w, num_nodes=12)
    close(propagate(data, x, 2), propagate(ei, x, 2, edge_weight=w))


def test_plugin_style_aggregator_instance():
    """An aggregator written only with transition/combine works through propagate."""

    class Mean(GraphAggregator):
        name = "test_mean"

        def transition(self, graph):
            g = graph.add_self_loops()
            w = torch.ones(g.num_edges) if g.weight is None else g.weight
            return g.with_weights(w / g.in_degree()[g.row_index()])

    ei, _ = random_graph(10, 30, 2)
    x = torch.randn(10, 2, dtype=torch.float64)
    close(propagate(ei, x, 3, Mean()), propagate(ei, x, 3, "aug_na", r=0.0))


# ---------------------------------------------------------------------------- bad input
EI = torch.tensor([[0, 1, 2], [1, 2, 0]])
X = torch.randn(3, 2)


@pytest.mark.parametrize(
    "args, kwargs, exc, match",
    [
        ((torch.tensor([[0, 1], [1, 7]]), X, 2), {}, ValueError, "edge_index"),
        ((torch.tensor([[0, -1], [1, 2]]), X, 2), {}, ValueError, "edge_index.*negative"),
        ((torch.tensor([0, 1, 2]), X, 2), {}, ValueError, "edge_index"),
        ((torch.tensor([[0, 1, 2]] * 3), X, 2), {}, ValueError, "edge_index"),
        ((EI.float(), X, 2), {}, TypeError, "edge_index"),
        ((EI, X, 2), {"num_nodes": 2}, ValueError, "num_nodes"),
        ((EI, torch.randn(4, 2), 2), {"num_nodes": 3}, ValueError, r"^x has 4 rows"),
        ((EI, torch.tensor([[1.0], [float("nan")], [0.0]]), 2), {}, ValueError, "^x contains"),
        ((EI, torch.tensor([[1.0], [float("inf")], [0.0]]), 2), {}, ValueError, "^x contains"),
        ((EI, torch.ones(3, 2, dtype=torch.long), 2), {}, TypeError, "^x must"),
        ((EI, [[1.0]] * 3, 2), {}, TypeError, "^x must"),
        ((EI, torch.ones(3), 2), {"num_nodes": 3}, ValueError, "^x must"),
        ((EI, X, -1), {}, ValueError, "^k must"),
        ((EI, X, 65), {}, ValueError, "^k must"),
        ((EI, X, 2.0), {}, TypeError, "^k must"),
        ((EI, X, True), {}, TypeError, "^k must"),
        ((EI, X, 2, "nope"), {}, ValueError, "aggregator 'nope'"),
        ((EI, X, 2, 3), {}, TypeError, "aggregator"),
        ((EI, X, 2, "aug_na"), {"r": -0.1}, ValueError, "^r must"),
        ((EI, X, 2, "aug_na"), {"r": 1.5}, ValueError, "^r must"),
        ((EI, X, 2, "aug_na"), {"r": float("nan")}, ValueError, "^r must"),
        ((EI, X, 2, "aug_na"), {"r": "0.5"}, ValueError, "^r must"),
        ((EI, X, 2, "ppr"), {"alpha": 0.0}, ValueError, "^alpha must"),
        ((EI, X, 2, "ppr"), {"alpha": 1.0}, ValueError, "^alpha must"),
        ((EI, X, 2, "ppr"), {"alpha": float("nan")}, ValueError, "^alpha must"),
        ((EI, X, 2, "ppr"), {"alpha": -0.5}, ValueError, "^alpha must"),
        ((EI, X, 2, "aug_na"), {"alpha": 0.1}, TypeError, "alpha"),
        ((EI, X, 2, AugNormAdj()), {"r": 0.1}, TypeError, "parameters"),
        ((EI, X, 2), {"edge_weight": torch.ones(2)}, ValueError, "edge_weight"),
        (("graph", X, 2), {}, TypeError, "graph"),
    ],
)
def test_bad_input_names_the_argument(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        propagate(*args, **kwargs)


def test_aggregator_classes_validate_directly():
    with pytest.raises(ValueError, match="r must"):
        AugNormAdj(r=2)
    with pytest.raises(ValueError, match="alpha must"):
        PersonalizedPageRank(alpha=1.5)
    assert repr(TriangleMotif()) == "TriangleMotif()"
    assert repr(AugNormAdj(r=0.25)) == (
        "AugNormAdj(r=0.25, add_self_loops=True, keep_isolated=False)"
    )
