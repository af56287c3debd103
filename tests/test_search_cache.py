"""The search's caches serve only what they were computed from, and never unpickle.

* an edited plugin aggregator (same name, same parameters, new source) recomputes its hops;
* a different graph of the same size recomputes its hops;
* a cache or context file holding a pickled object is refused before anything runs.
"""

from __future__ import annotations

import contextlib
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse
import torch

from sgap_plugins.core import plugins
from sgap_plugins.core.graph import CSRGraph
from sgap_plugins.core.propagation import propagate
from sgap_plugins.core.search.evaluation import HopStore, TrialContext, UnsafeCacheError
from sgap_plugins.core.search.space import AggregatorChoice
from sgap_plugins.core.synthetic import NodeDataset, csbm

AUG_NA = AggregatorChoice("aug_na", "aug_na", {})
SCALED = AggregatorChoice("scaled_sum", "scaled_sum", {})
PLUGIN_SOURCE = """
    import torch
    from sgap_plugins import GraphAggregator, hookimpl

    SCALE = {scale}


    class ScaledSum(GraphAggregator):
        \"\"\"m^t = SCALE · Σ_u m_u^{{t-1}} over in-neighbours.\"\"\"

        name = "scaled_sum"

        def transition(self, graph):
            return graph.with_weights(torch.full((graph.num_edges,), SCALE))


    @hookimpl
    def sgap_graph_aggregators():
        return [ScaledSum]
"""


def small_graph() -> NodeDataset:
    return csbm(num_nodes=300, num_features=8, seed=0)


@contextlib.contextmanager
def installed_plugin(site: Path) -> Iterator[None]:
    """The distribution ``sgap-scaled`` in ``site`` visible as if installed (an entry point in
    the ``sgap_plugins`` group, as in test_plugins.py); afterwards forgotten."""
    sys.path.insert(0, str(site))
    plugins.reload_plugins()
    try:
        yield
    finally:
        sys.path.remove(str(site))
        sys.modules.pop("sgap_scaled", None)
        plugins.reload_plugins()


def write_plugin(site: Path, scale: float) -> None:
    package = site / "sgap_scaled"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text(textwrap.dedent(PLUGIN_SOURCE.format(scale=scale)))
    info = site / "sgap_scaled-0.1.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: sgap-scaled\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[sgap_plugins]\nscaled = sgap_scaled\n")


def scaled_sum_reference(data: NodeDataset, scale: float, k: int) -> torch.Tensor:
    """``[X, sAX, (sA)²X, …]`` with scipy, ``A`` the 0/1 pattern of the graph's CSR (rows are
    destinations; duplicate edges are one entry, as the plugin's transition sees them)."""
    csr = CSRGraph.from_edge_index(data.edge_index, data.num_nodes)
    n = data.num_nodes
    a = scipy.sparse.csr_matrix(
        (np.full(csr.num_edges, scale), csr.col.numpy(), csr.rowptr.numpy()), shape=(n, n)
    )
    hops = [data.x.double().numpy()]
    for _ in range(k):
        hops.append(a @ hops[-1])
    return torch.from_numpy(np.stack(hops)).float()


def test_edited_plugin_aggregator_recomputes(tmp_path: Path) -> None:
    """Same registry name and parameters, edited source (the issue: halving the weights gave
    the old hops back): the second store is recomputed from the new code; an unchanged
    aggregator keeps using its store."""
    data = small_graph()
    site = tmp_path / "site"
    store = HopStore(tmp_path / "hops", data)
    write_plugin(site, 0.5)
    with installed_plugin(site):
        before = store.entry(SCALED, 2)
        torch.testing.assert_close(before.load(), scaled_sum_reference(data, 0.5, 2))
        mtime = Path(before.path).stat().st_mtime_ns
        assert store.entry(SCALED, 2).path == before.path  # unchanged code: reused
        assert Path(before.path).stat().st_mtime_ns == mtime
    write_plugin(site, 0.25)  # the plugin author halves the weights
    with installed_plugin(site):
        after = store.entry(SCALED, 2)
        assert after.path != before.path and after.aggregator != before.aggregator
        torch.testing.assert_close(after.load(), scaled_sum_reference(data, 0.25, 2))


def test_same_size_graph_gets_its_own_hops(tmp_path: Path) -> None:
    """Two graphs with the same nodes, edge count and features but different edges."""
    first = small_graph()
    src, dst = first.edge_index
    rewired = torch.stack([src, (dst + 1) % first.num_nodes])
    second = NodeDataset(
        first.name, rewired, first.x, first.y, first.train_mask, first.val_mask, first.test_mask
    )
    a = HopStore(tmp_path / "hops", first).entry(AUG_NA, 2)
    b = HopStore(tmp_path / "hops", second).entry(AUG_NA, 2)
    assert Path(a.path).parent != Path(b.path).parent
    torch.testing.assert_close(a.load(), propagate(first.edge_index, first.x, 2, "aug_na"))
    torch.testing.assert_close(b.load(), propagate(second.edge_index, second.x, 2, "aug_na"))
    assert not torch.allclose(a.load()[1], b.load()[1])


class Payload:
    """Unpickling this creates ``marker``: proof that a loader ran code from the file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def plant_pickle(path: Path, marker: Path) -> None:
    np.save(path, np.array([Payload(marker)], dtype=object), allow_pickle=True)


def test_pickled_cache_files_are_refused(tmp_path: Path) -> None:
    data = small_graph()
    marker = tmp_path / "code-ran"
    store = HopStore(tmp_path / "hops", data)
    ctx = TrialContext.create(store, [AUG_NA], 2, tmp_path / "context")
    entry = ctx.entries["aug_na"]

    plant_pickle(Path(entry.path), marker)  # np.save keeps the name: .../aug_na-…-fp32.npy
    with pytest.raises(UnsafeCacheError, match=r"refusing to load .*fp32\.npy: it holds pickled"):
        HopStore(tmp_path / "hops", data).entry(AUG_NA, 2)
    with pytest.raises(UnsafeCacheError, match="refusing to load"):
        entry.load()

    plant_pickle(tmp_path / "context" / "y.npy", marker)
    fresh = TrialContext(ctx.entries, ctx.folder)
    with pytest.raises(UnsafeCacheError, match=r"refusing to load .*y\.npy"):
        fresh.labels()

    plant_pickle(tmp_path / "context" / "graph" / "col.npy", marker)
    with pytest.raises(ValueError, match=r"col\.npy"):
        fresh.graph()
    assert not marker.exists()


def test_context_round_trips_graph_and_labels(tmp_path: Path) -> None:
    """What the workers read back equals what the main process wrote."""
    data = small_graph()
    ctx = TrialContext.create(HopStore(tmp_path / "hops", data), [AUG_NA], 1, tmp_path / "ctx")
    fresh = TrialContext(ctx.entries, ctx.folder)
    labels = fresh.labels()
    assert torch.equal(labels["y"], data.y.long())
    for name, mask in (
        ("train", data.train_mask),
        ("val", data.val_mask),
        ("test", data.test_mask),
    ):
        assert torch.equal(labels[name], mask.nonzero().flatten())
    graph, ref = fresh.graph(), CSRGraph.from_edge_index(data.edge_index, data.num_nodes)
    assert graph.num_nodes == ref.num_nodes
    assert torch.equal(graph.rowptr, ref.rowptr) and torch.equal(graph.col, ref.col)
