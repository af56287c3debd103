"""Fused kernels vs the plain-torch reference: property tests on random graphs.

Every kernel path (fused unweighted aug_na/ppr, the generic weighted path for triangle and
plugin aggregators, per-hop plugin combine, reordering, column blocking, low-precision
storage, out-of-core files, CUDA) must give the numbers of
:func:`~sgap_plugins.core.propagation.propagate_reference`, which is plain ``torch.sparse``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sgap_plugins import ops
from sgap_plugins.core import graph as graph_module
from sgap_plugins.core.graph import CSRGraph
from sgap_plugins.core.graph_aggregators import GraphAggregator
from sgap_plugins.core.plugins import resolve_graph_aggregator
from sgap_plugins.core.propagation import (
    as_csr_graph,
    propagate,
    propagate_csr,
    propagate_reference,
)

pytestmark = pytest.mark.skipif(
    not ops.available(torch.device("cpu")),
    reason=f"fused kernels unavailable: {ops.info()['reason']}",
)

SETTINGS = settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
AGGREGATORS = [
    ("aug_na", {"r": 0.5}),
    ("aug_na", {"r": 0.0}),
    ("aug_na", {"r": 1.0}),
    ("aug_na", {"r": 0.3, "add_self_loops": False}),
    ("ppr", {"alpha": 0.1}),
    ("ppr", {"alpha": 0.3, "add_self_loops": False}),
    ("triangle", {}),
]
LOW_PRECISION = {torch.bfloat16: 2**-7, torch.float16: 2**-10}


@st.composite
def graphs(draw, max_nodes: int = 30, max_edges: int = 120):
    """A directed edge list with isolated nodes, self loops and duplicate edges (small node
    counts make all three frequent), optionally weighted."""
    n = draw(st.integers(1, max_nodes))
    m = draw(st.integers(0, max_edges))
    ids = st.integers(0, n - 1)
    pairs = draw(st.lists(st.tuples(ids, ids), min_size=m, max_size=m))
    edge_index = torch.tensor(pairs, dtype=torch.long).reshape(-1, 2).t().contiguous()
    weight = None
    if draw(st.booleans()):
        values = draw(st.lists(st.floats(0.1, 3.0), min_size=m, max_size=m))
        weight = torch.tensor(values, dtype=torch.float32)
    f = draw(st.integers(1, 40))
    seed = draw(st.integers(0, 2**16))
    x = torch.randn(n, f, generator=torch.Generator().manual_seed(seed))
    return edge_index, weight, n, x


def reference(edge_index, weight, n, x, k, name, params, dtype=None):
    agg = resolve_graph_aggregator(name, **params)
    csr = as_csr_graph(edge_index, n, weight)
    return propagate_reference(agg.transition(csr), agg, x, k, dtype)


def assert_fp32_close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """1e-5 relative, with an absolute floor of 1e-6 of the hop's scale (entries that cancel
    to ~0 have no meaningful relative error)."""
    scale = max(1.0, float(expected.abs().max())) if expected.numel() else 1.0
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6 * scale)


@pytest.mark.parametrize("name,params", AGGREGATORS)
@SETTINGS
@given(g=graphs(), k=st.integers(0, 4))
def test_kernel_equals_reference(name, params, g, k):
    edge_index, weight, n, x = g
    expected = reference(edge_index, weight, n, x, k, name, params)
    actual = propagate(edge_index, x, k, name, num_nodes=n, edge_weight=weight, **params)
    assert actual.shape == (k + 1, n, x.size(1))
    assert_fp32_close(actual, expected)


@pytest.mark.parametrize("reorder", ["degree", "rcm"])
@pytest.mark.parametrize("name,params", [AGGREGATORS[0], AGGREGATORS[4], AGGREGATORS[6]])
@SETTINGS
@given(g=graphs())
def test_reordering_is_undone(reorder, name, params, g):
    edge_index, weight, n, x = g
    expected = reference(edge_index, weight, n, x, 3, name, params)
    actual = propagate(
        edge_index, x, 3, name, num_nodes=n, edge_weight=weight, reorder=reorder, **params
    )
    assert_fp32_close(actual, expected)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("name,params", [AGGREGATORS[0], AGGREGATORS[4], AGGREGATORS[6]])
@SETTINGS
@given(g=graphs())
def test_low_precision_storage(dtype, name, params, g):
    """Accumulation stays fp32: each stored hop is the fp32 hop rounded once."""
    edge_index, weight, n, x = g
    expected = reference(edge_index, weight, n, x, 3, name, params)
    actual = propagate(edge_index, x, 3, name, num_nodes=n, edge_weight=weight, dtype=dtype)
    assert actual.dtype == dtype
    eps = LOW_PRECISION[dtype]
    scale = max(1.0, float(expected.abs().max()))
    torch.testing.assert_close(actual.float(), expected, rtol=eps, atol=eps * 1e-2 * scale)


@pytest.mark.parametrize("block", [1, 5, 16, 32, 64, 128])
@SETTINGS
@given(g=graphs(max_nodes=60, max_edges=300), alpha=st.sampled_from([0.0, 0.25]))
def test_generic_weighted_path_every_block_width(block, g, alpha):
    """The raw kernel on explicit weights (the path of triangle and plugin aggregators) for
    every compiled block width and the runtime remainder, against W^t products."""
    edge_index, weight, n, x = g
    x = torch.randn(n, 70, generator=torch.Generator().manual_seed(n))
    csr = as_csr_graph(edge_index, n, weight)
    w = csr.weight if csr.weight is not None else torch.ones(csr.num_edges)
    out = torch.empty(4, n, 70)
    ops.propagate_hops(csr.rowptr, csr.col, x, out, weight=csr.weight, alpha=alpha, block=block)
    dense = torch.zeros(n, n, dtype=torch.float64)
    dense.index_put_((csr.row_index(), csr.col.long()), w.double(), accumulate=True)
    m = x.double()
    for t in range(1, 4):
        m = (1 - alpha) * (dense @ m) + alpha * x.double()
        assert_fp32_close(out[t], m.float())
    assert torch.equal(out[0], x)


@pytest.mark.parametrize("width", [1, 16, 23, 64, 130])
@SETTINGS
@given(g=graphs(max_nodes=60, max_edges=300), alpha=st.sampled_from([0.0, 0.25]))
def test_step_kernel_equals_all_hops_kernel_bit_for_bit(width, g, alpha):
    """propagate_step on a column slice (strided prev, caller-owned buffers) gives exactly the
    columns propagate_hops computes for the whole width: what rows= and resuming rely on."""
    edge_index, weight, n, _ = g
    x = torch.randn(n, 150, generator=torch.Generator().manual_seed(n))
    csr = as_csr_graph(edge_index, n, weight)
    scales = {"row_scale": torch.rand(n) + 0.5, "col_scale": torch.rand(n) + 0.5}
    full = torch.empty(4, n, 150)
    ops.propagate_hops(
        csr.rowptr, csr.col, x, full, weight=csr.weight, alpha=alpha, self_loops=True, **scales
    )
    c0 = 150 - width
    x0 = x[:, c0:]  # a strided view: row stride 150
    prev = x0
    for t in range(1, 4):
        cur = torch.empty(n, width)
        ops.kernels.propagate_step(
            csr.rowptr,
            csr.col,
            prev,
            cur,
            x0=x0,
            weight=csr.weight,
            alpha=alpha,
            self_loops=True,
            **scales,
        )
        assert torch.equal(cur, full[t, :, c0:])
        prev = cur


def test_step_kernel_bad_arguments():
    rowptr, col = torch.tensor([0, 1, 2]), torch.tensor([1, 0], dtype=torch.int32)
    prev = torch.randn(2, 3)
    with pytest.raises(RuntimeError, match="x0 is required when alpha"):
        ops.kernels.propagate_step(rowptr, col, prev, torch.empty(2, 3), alpha=0.1)
    with pytest.raises(RuntimeError, match="cur must not alias prev"):
        ops.kernels.propagate_step(rowptr, col, prev, prev)
    with pytest.raises(RuntimeError, match="cur must be a float32"):
        ops.kernels.propagate_step(rowptr, col, prev, torch.empty(2, 3, dtype=torch.float16))


class HalfStep(GraphAggregator):
    """A plugin-style aggregator: row-normalised weights and a custom (non-PageRank)
    combine, which takes the per-hop kernel path."""

    name = "test_half_step"

    def transition(self, graph: CSRGraph) -> CSRGraph:
        g = graph.add_self_loops()
        w = torch.ones(g.num_edges) if g.weight is None else g.weight
        return g.with_weights(w / g.in_degree()[g.row_index()])

    def combine(self, wm, m0, t):
        return 0.5 * wm + 0.5 * m0 / t


class Plain(HalfStep):
    name = "test_plain"

    def combine(self, wm, m0, t):  # the identity, written out: still a custom combine
        return wm


@pytest.mark.parametrize("name,params", [("ppr", {"alpha": 0.3}), ("aug_na", {}), ("triangle", {})])
@SETTINGS
@given(g=graphs(), classes=st.integers(2, 7))
def test_postprocessing_path(name, params, g, classes):
    """Label propagation (``propagate_csr`` on soft predictions, as SGAPModel.postprocess and
    the adapters call it) runs on the kernels, fused ones included, and equals the reference."""
    edge_index, weight, n, _ = g
    logits = torch.randn(n, classes, generator=torch.Generator().manual_seed(classes))
    probs = logits.softmax(dim=1)
    agg = resolve_graph_aggregator(name, **params)
    csr = as_csr_graph(edge_index, n, weight)
    expected = propagate_reference(agg.transition(csr), agg, probs, 4)
    assert_fp32_close(propagate_csr(csr, agg, probs, 4), expected)


@pytest.mark.parametrize("agg", [HalfStep(), Plain()])
@SETTINGS
@given(g=graphs())
def test_plugin_aggregators(agg, g):
    edge_index, weight, n, x = g
    csr = as_csr_graph(edge_index, n, weight)
    expected = propagate_reference(agg.transition(csr), agg, x, 3)
    assert_fp32_close(propagate(edge_index, x, 3, agg, num_nodes=n, edge_weight=weight), expected)


def brute_force_triangles(csr: CSRGraph) -> np.ndarray:
    n = csr.num_nodes
    adj = np.zeros((n, n), dtype=np.int64)
    rows, cols = csr.row_index().numpy(), csr.col.numpy().astype(np.int64)
    adj[rows, cols] = 1
    adj = np.maximum(adj, adj.T)
    np.fill_diagonal(adj, 0)
    counts = [0 if v == u else int(adj[v] @ adj[u]) for v, u in zip(rows, cols, strict=True)]
    return np.asarray(counts, dtype=np.float32)


@SETTINGS
@given(g=graphs(max_nodes=40, max_edges=200))
def test_triangle_count_kernel_brute_force(g):
    edge_index, weight, n, _ = g
    csr = as_csr_graph(edge_index, n, weight)
    sym = csr.symmetrize().to_scipy()
    sym.setdiag(0)
    sym.eliminate_zeros()
    sym.sort_indices()
    counts = ops.triangle_counts(
        torch.from_numpy(sym.indptr.astype(np.int64)),
        torch.from_numpy(sym.indices),
        csr.rowptr,
        csr.col,
    )
    np.testing.assert_array_equal(counts.numpy(), brute_force_triangles(csr))


def test_triangle_counts_use_the_kernel_on_large_graphs():
    """Above the size threshold CSRGraph.triangle_counts runs the kernel (hubs included)."""
    gen = torch.Generator().manual_seed(3)
    n = 300
    hub = torch.stack([torch.zeros(299, dtype=torch.long), torch.arange(1, 300)])
    edge_index = torch.cat([torch.randint(0, n, (2, 6000), generator=gen), hub], 1)
    csr = as_csr_graph(edge_index, n)
    assert csr.num_edges >= graph_module.TRIANGLE_KERNEL_MIN_EDGES
    np.testing.assert_array_equal(csr.triangle_counts().numpy(), brute_force_triangles(csr))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("name,params", [AGGREGATORS[0], AGGREGATORS[4], AGGREGATORS[6]])
def test_out_of_core_file_equals_in_memory(tmp_path, dtype, name, params):
    gen = torch.Generator().manual_seed(0)
    n, f, k = 500, 37, 3
    edge_index = torch.randint(0, n, (2, 3000), generator=gen)
    x = torch.randn(n, f, generator=gen)
    in_memory = propagate(edge_index, x, k, name, dtype=dtype, **params)
    budget = n * 4 * 3 * 5  # 5 columns of three fp32 buffers (ppr; 7 of two for aug_na)
    path = tmp_path / "hops.npy"
    on_disk = propagate(
        edge_index, x, k, name, dtype=dtype, out=path, memory_budget=budget, **params
    )
    assert on_disk.shape == in_memory.shape and on_disk.dtype == dtype
    assert torch.equal(on_disk, in_memory)
    loaded = np.load(path)
    assert loaded.shape == (k + 1, n, f)
    assert torch.equal(torch.from_numpy(loaded), in_memory)


@pytest.mark.parametrize("n,f", [(0, 3), (4, 0), (0, 0)])
def test_empty_inputs(tmp_path, n, f):
    edge_index = torch.zeros(2, 0, dtype=torch.long)
    x = torch.randn(n, f)
    for kwargs in ({}, {"dtype": torch.float16}, {"reorder": "rcm"}, {"out": tmp_path / "e.npy"}):
        out = propagate(edge_index, x, 2, num_nodes=n, **kwargs)
        assert out.shape == (3, n, f)


def test_out_of_core_bad_arguments(tmp_path):
    edge_index = torch.tensor([[0, 1], [1, 0]])
    x = torch.randn(2, 3)
    with pytest.raises(ValueError, match="memory_budget"):
        propagate(edge_index, x, 2, out=tmp_path / "a.npy", memory_budget=10)
    with pytest.raises(ValueError, match="memory_budget"):
        propagate(edge_index, x, 2, out=tmp_path / "a.npy", memory_budget=-1)
    with pytest.raises(ValueError, match="out=PATH"):
        propagate(edge_index, x, 2, memory_budget=2**20)
    with pytest.raises(ValueError, match="bfloat16"):
        propagate(edge_index, x, 2, dtype=torch.bfloat16, out=tmp_path / "a.npy")
    with pytest.raises(TypeError, match="out must be a file path"):
        propagate(edge_index, x, 2, out=123)
    with pytest.raises(ValueError, match="reorder"):
        propagate(edge_index, x, 2, reorder="random")
    with pytest.raises(TypeError, match="dtype"):
        propagate(edge_index, x, 2, dtype=torch.int32)


def test_float64_stays_on_the_reference_path():
    edge_index = torch.tensor([[0, 1, 2], [1, 2, 0]])
    x = torch.randn(3, 4, dtype=torch.float64)
    out = propagate(edge_index, x, 2)
    assert out.dtype == torch.float64
    agg = resolve_graph_aggregator("aug_na")
    expected = propagate_reference(agg.transition(as_csr_graph(edge_index, 3)), agg, x, 2)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------------- CUDA
cuda = pytest.mark.skipif(
    not torch.cuda.is_available() or not ops.available(torch.device("cuda")),
    reason="CUDA kernels run only where a GPU is present and the CUDA sources compiled "
    f"(gpu={torch.cuda.is_available()}, {ops.info()['reason']})",
)


@cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("name,params", AGGREGATORS + [("test_half_step", None)])
def test_cuda_equals_cpu_kernels(name, params, dtype):
    gen = torch.Generator().manual_seed(1)
    n = 3000
    edge_index = torch.randint(0, n, (2, 30000), generator=gen)
    edge_index = torch.cat([edge_index, torch.arange(50).repeat(2, 1)], 1)  # self loops
    x = torch.randn(n, 300, generator=gen)  # > 128 columns: several warp passes
    agg = HalfStep() if params is None else resolve_graph_aggregator(name, **params)
    cpu = propagate(edge_index, x, 4, agg, dtype=dtype)
    gpu = propagate(edge_index.cuda(), x.cuda(), 4, agg, dtype=dtype)
    assert gpu.device.type == "cuda" and gpu.dtype == dtype
    eps = LOW_PRECISION.get(dtype, 1e-5)
    torch.testing.assert_close(gpu.cpu().float(), cpu.float(), rtol=eps, atol=eps * 1e-2)


@cuda
def test_cuda_reordered_and_weighted():
    gen = torch.Generator().manual_seed(2)
    n = 2000
    edge_index = torch.randint(0, n, (2, 20000), generator=gen)
    weight = torch.rand(20000, generator=gen) + 0.1
    x = torch.randn(n, 64, generator=gen)
    cpu = propagate(edge_index, x, 3, "ppr", edge_weight=weight, alpha=0.2)
    gpu = propagate(
        edge_index.cuda(), x.cuda(), 3, "ppr", edge_weight=weight, alpha=0.2, reorder="rcm"
    )
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-5, atol=1e-6)


@cuda
@pytest.mark.parametrize("name,params", [AGGREGATORS[0], AGGREGATORS[4], ("test_half_step", None)])
def test_cuda_rows_equal_slicing(name, params):
    """The column-block mode (propagate_step on the GPU, rows gathered per hop) gives the
    GPU's all-hops result bit for bit."""
    gen = torch.Generator().manual_seed(4)
    n = 3000
    edge_index = torch.randint(0, n, (2, 30000), generator=gen).cuda()
    x = torch.randn(n, 300, generator=gen).cuda()
    rows = torch.randperm(n, generator=gen)[:500]
    agg = HalfStep() if params is None else resolve_graph_aggregator(name, **params)
    full = propagate(edge_index, x, 3, agg)
    picked = propagate(edge_index, x, 3, agg, rows=rows, memory_budget=n * 12 * 100)
    assert picked.device.type == "cuda"
    assert torch.equal(picked, full[:, rows.cuda()])
