"""``rows=`` of the PyG and DGL ``SGAPPrecompute`` transforms, on Cora.

With ``rows`` a transform returns the induced subgraph on ``rows`` (in their order) whose
hops are those of the full graph. References, computed independently of the ``rows`` code:

* the hops: the same transform without ``rows``, its fields sliced by ``rows`` — equal bit
  for bit (``torch.equal``), for ``aug_na``, ``ppr``, ``triangle`` and a plugin aggregator
  registered through an entry point (with its own ``combine``);
* the other node attributes: ``attr[rows]``; the edges: a brute-force loop over the edge
  list keeping the edges whose two ends are selected, relabelled to positions in ``rows``.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from sgap_plugins.core import plugins

pytest.importorskip("torch_geometric")
from torch_geometric.data import Data  # noqa: E402
from torch_geometric.datasets import Planetoid  # noqa: E402

from sgap_plugins.pyg import SGAPPrecompute  # noqa: E402

K = 3
PLUGIN = "rows_test_lazy"
PLUGIN_SOURCE = f"""
    from sgap_plugins import GraphAggregator, hookimpl
    from sgap_plugins.core import AugNormAdj


    class LazyTeleport(GraphAggregator):
        \"\"\"m^t = ½ D̃⁻¹Ã m^(t-1) + ½ m^0 / t: a transition and a combine of its own.\"\"\"

        name = "{PLUGIN}"

        def transition(self, graph):
            return AugNormAdj(r=0.0).transition(graph)

        def combine(self, wm, m0, t):
            return 0.5 * wm + 0.5 * m0 / t


    @hookimpl
    def sgap_graph_aggregators():
        return [LazyTeleport]
"""
AGGREGATORS = [
    ("aug_na", {}),
    ("ppr", {"alpha": 0.2}),
    ("triangle", {}),
    (PLUGIN, {}),
]


@pytest.fixture
def plugin_installed(tmp_path: Path) -> Iterator[None]:
    """A distribution with an ``sgap_plugins`` entry point, visible as if installed (as in
    test_plugins.py); forgotten afterwards."""
    package = tmp_path / "sgap_rows_test"
    package.mkdir()
    (package / "__init__.py").write_text(textwrap.dedent(PLUGIN_SOURCE))
    info = tmp_path / "sgap_rows_test-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: sgap-rows-test\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[sgap_plugins]\nrows_test = sgap_rows_test\n")
    sys.path.insert(0, str(tmp_path))
    plugins.reload_plugins()
    try:
        assert PLUGIN in plugins.graph_aggregator_classes()
        yield
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("sgap_rows_test", None)
        plugins.reload_plugins()


@pytest.fixture
def cora_data(cora) -> Data:
    return Data(
        x=cora.x.clone(),
        edge_index=cora.edge_index.clone(),
        y=cora.y.clone(),
        train_mask=cora.train_mask.clone(),
        test_mask=cora.test_mask.clone(),
    )


def shuffled_ids(n: int, count: int, seed: int = 0) -> torch.Tensor:
    """``count`` distinct node ids in a random (unsorted) order."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:count]


def induced_edges(edge_index: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Brute force: the edges with both ends in ``ids``, in edge order, relabelled to
    positions in ``ids``."""
    position = {int(v): i for i, v in enumerate(ids)}
    kept = [
        (position[u], position[v])
        for u, v in edge_index.t().tolist()
        if u in position and v in position
    ]
    return torch.tensor(kept, dtype=torch.long).reshape(-1, 2).t()


def edge_multiset(edge_index: torch.Tensor) -> list[tuple[int, int]]:
    return sorted(map(tuple, edge_index.t().tolist()))


def snapshot(data: Data) -> dict[str, torch.Tensor]:
    return {key: value.clone() for key, value in data.items()}


def assert_unchanged(data: Data, before: dict[str, torch.Tensor]) -> None:
    assert set(data.keys()) == set(before)
    for key, value in before.items():
        assert torch.equal(data[key], value), key


# ---------------------------------------------------------------------------------- PyG
@pytest.mark.parametrize("aggregator, params", AGGREGATORS)
@pytest.mark.parametrize("form", ["ids", "mask", "name"])
def test_pyg_rows_equal_the_full_transform_sliced(
    cora_data, plugin_installed, aggregator, params, form
):
    n = cora_data.num_nodes
    mask = cora_data.train_mask
    ids = shuffled_ids(n, 300) if form == "ids" else mask.nonzero().flatten()
    rows = {"ids": ids, "mask": mask, "name": "train_mask"}[form]
    before = snapshot(cora_data)
    full = SGAPPrecompute(K, aggregator, **params)(cora_data)
    out = SGAPPrecompute(K, aggregator, rows=rows, **params)(cora_data)
    assert_unchanged(cora_data, before)

    assert out.num_nodes == ids.numel()
    assert torch.equal(out.n_id, ids)
    for i in range(1, K + 1):
        assert out[f"x{i}"].shape == (ids.numel(), cora_data.num_features)
        assert torch.equal(out[f"x{i}"], full[f"x{i}"][ids])
    for key in ("x", "y", "train_mask", "test_mask"):
        assert torch.equal(out[key], cora_data[key][ids]), key
    assert torch.equal(out.edge_index, induced_edges(cora_data.edge_index, ids))
    assert set(out.keys()) == set(cora_data.keys()) | {"n_id", "x1", "x2", "x3"}


def test_pyg_rows_stacked_layout_dtype_edge_weight_and_small_budget(cora_data):
    n, e = cora_data.num_nodes, cora_data.num_edges
    ids = shuffled_ids(n, 500, seed=1)
    data = Data(
        x=cora_data.x,
        edge_index=cora_data.edge_index,
        edge_weight=torch.rand(e, generator=torch.Generator().manual_seed(2)) + 0.5,
    )
    kwargs = {"aggregator": "ppr", "alpha": 0.1, "dtype": torch.bfloat16, "hops_attr": "hops"}
    full = SGAPPrecompute(K, **kwargs)(data)
    # 40 columns' worth of budget: the 1433 features go through in 36 column blocks
    budget = n * 3 * 4 * 40
    out = SGAPPrecompute(K, rows=ids, memory_budget=budget, **kwargs)(data)
    assert out.hops.shape == (ids.numel(), K + 1, cora_data.num_features)
    assert out.hops.dtype == torch.bfloat16
    assert torch.equal(out.hops, full.hops[ids])
    assert torch.equal(out.hops[:, 0], data.x[ids].bfloat16())
    assert out.is_node_attr("hops")
    # the edge weights follow their edges
    position = {int(v): i for i, v in enumerate(ids)}
    expected = {
        (position[u], position[v]): w
        for (u, v), w in zip(data.edge_index.t().tolist(), data.edge_weight.tolist(), strict=True)
        if u in position and v in position
    }
    got = dict(zip(map(tuple, out.edge_index.t().tolist()), out.edge_weight.tolist(), strict=True))
    assert got == expected


def test_pyg_rows_replace_an_existing_n_id(cora_data):
    """As PyG's loaders do, ``n_id`` names the ids in the graph given to the transform."""
    cora_data.n_id = torch.arange(cora_data.num_nodes) + 10_000
    ids = shuffled_ids(cora_data.num_nodes, 7)
    out = SGAPPrecompute(1, rows=ids)(cora_data)
    assert torch.equal(out.n_id, ids)


def test_pyg_rows_as_pre_transform_stores_the_subgraph(cora_root):
    ds = Planetoid(str(cora_root), "Cora", pre_transform=SGAPPrecompute(2, rows="train_mask"))
    data = ds[0]
    plain = Planetoid(str(cora_root), "Cora", force_reload=True)[0]
    full = SGAPPrecompute(2)(plain)
    ids = plain.train_mask.nonzero().flatten()
    assert data.num_nodes == 140 and bool(data.train_mask.all())
    assert torch.equal(data.n_id, ids)
    assert torch.equal(data.x2, full.x2[ids])
    assert torch.equal(data.y, plain.y[ids])


@pytest.fixture
def cora_root(data_root: Path, tmp_path: Path) -> Path:
    """A private copy of Cora's raw files (PyG writes processed/ next to raw/)."""
    dst = tmp_path / "Cora" / "raw"
    dst.mkdir(parents=True)
    for f in (data_root / "planetoid" / "Cora" / "raw").glob("ind.cora.*"):
        dst.joinpath(f.name).write_bytes(f.read_bytes())
    return tmp_path


def test_pyg_rows_repr_shows_the_size_not_the_values():
    a = SGAPPrecompute(2, rows=torch.tensor([3, 1, 2]))
    b = SGAPPrecompute(2, rows=torch.tensor([5, 4, 0]))
    assert "rows=<3 node ids>" in repr(a)
    assert repr(a) == repr(b)  # documented: a different index needs force_reload=True
    assert repr(SGAPPrecompute(2, rows=[3, 1])) != repr(a)
    assert "rows='train_mask'" in repr(SGAPPrecompute(2, rows="train_mask"))
    mask = torch.tensor([True, False, True, True])
    assert "rows=<mask of 3 in 4 nodes>" in repr(SGAPPrecompute(2, rows=mask))
    assert "rows" not in repr(SGAPPrecompute(2))
    # the working memory never changes the result, so it does not change the repr either
    assert repr(SGAPPrecompute(2, rows="m", memory_budget=2**20)) == repr(
        SGAPPrecompute(2, rows="m")
    )


def test_pyg_rows_tensor_is_copied():
    ids = torch.tensor([0, 2])
    t = SGAPPrecompute(1, rows=ids)
    ids[0] = 1  # the caller's tensor changes after the transform was made
    data = Data(x=torch.randn(3, 2), edge_index=torch.tensor([[0, 1], [1, 2]]))
    assert torch.equal(t(data).n_id, torch.tensor([0, 2]))


def small_data() -> Data:
    return Data(
        x=torch.randn(4, 2),
        edge_index=torch.tensor([[0, 1, 2], [1, 2, 3]]),
        train_mask=torch.tensor([True, False, True, False]),
        weights=torch.rand(4),
    )


@pytest.mark.parametrize(
    "rows, error, message",
    [
        (torch.tensor([0.0, 1.0]), TypeError, r"rows must hold integer node ids.*rows.long\(\)"),
        (torch.tensor([[0, 1]]), ValueError, r"rows must be 1-D"),
        (2.5, TypeError, r"rows must be a 1-D tensor of node ids, a boolean mask"),
        ("", ValueError, r"rows must be node ids, a boolean mask or an attribute name"),
    ],
)
def test_pyg_bad_rows_at_construction(rows, error, message):
    with pytest.raises(error, match=message):
        SGAPPrecompute(2, rows=rows)


@pytest.mark.parametrize(
    "rows, error, message",
    [
        (torch.tensor([1, 4]), ValueError, r"rows contains node id 4 .* pass ids in \[0, 4\)"),
        (torch.tensor([-1]), ValueError, r"rows contains node id -1"),
        (torch.tensor([2, 0, 2]), ValueError, r"rows repeats 1 node id\(s\) \(e.g. \[2\]\)"),
        (torch.tensor([True, False]), ValueError, r"rows is a boolean mask of shape \[2\] but"),
        ("val_mask", KeyError, r"rows='val_mask': data has no node attribute 'val_mask'.*"
                               r"'train_mask'"),
        ("weights", TypeError, r"rows='weights' \(data\['weights'\]\) must hold integer"),
    ],
)  # fmt: skip
def test_pyg_bad_rows_for_the_graph(rows, error, message):
    data = small_data()
    before = snapshot(data)
    with pytest.raises(error, match=message):
        SGAPPrecompute(2, rows=rows)(data)
    assert_unchanged(data, before)


def test_pyg_memory_budget_needs_rows_and_bytes():
    with pytest.raises(ValueError, match="memory_budget bounds the rows= computation only"):
        SGAPPrecompute(2, memory_budget=2**20)
    with pytest.raises(ValueError, match="memory_budget must be a positive number of bytes"):
        SGAPPrecompute(2, rows="train_mask", memory_budget=0)
    with pytest.raises(ValueError, match="raise memory_budget"):  # below one column
        SGAPPrecompute(2, rows="train_mask", memory_budget=8)(small_data())


# ---------------------------------------------------------------------------------- DGL
@pytest.fixture
def cora_graph(dgl, request):
    cora = request.getfixturevalue("cora")  # after the DGL check
    g = dgl.graph((cora.edge_index[0], cora.edge_index[1]), num_nodes=cora.num_nodes)
    g.ndata["feat"] = cora.x.clone()
    g.ndata["label"] = cora.y.clone()
    g.ndata["train_mask"] = cora.train_mask.clone()
    g.edata["w"] = torch.rand(g.num_edges(), generator=torch.Generator().manual_seed(3)) + 0.5
    return g


def graph_snapshot(g) -> dict[str, torch.Tensor]:
    """Structure and features of ``g``, copied."""
    src, dst = g.edges()
    out = {"edge_index": torch.stack([src, dst])}
    out.update({f"ndata.{key}": value.clone() for key, value in g.ndata.items()})
    out.update({f"edata.{key}": value.clone() for key, value in g.edata.items()})
    return out


@pytest.mark.parametrize("aggregator, params", AGGREGATORS)
@pytest.mark.parametrize("form", ["ids", "mask", "name"])
def test_dgl_rows_equal_the_full_transform_sliced(
    dgl, cora_graph, plugin_installed, aggregator, params, form
):
    from sgap_plugins.dgl import SGAPPrecompute as DGLPrecompute

    g = cora_graph
    mask = g.ndata["train_mask"]
    ids = shuffled_ids(g.num_nodes(), 300) if form == "ids" else mask.nonzero().flatten()
    rows = {"ids": ids, "mask": mask, "name": "train_mask"}[form]
    before = graph_snapshot(g)
    t = DGLPrecompute(K, aggregator=aggregator, rows=rows, **params)
    out = t(g)
    after = graph_snapshot(g)  # the rows transform leaves g as it was (no new fields)
    assert after.keys() == before.keys()
    assert all(torch.equal(after[key], value) for key, value in before.items())
    full = DGLPrecompute(K, aggregator=aggregator, **params)(g)  # in place, on g
    assert out is not g and out.num_nodes() == ids.numel()
    assert torch.equal(out.ndata[dgl.NID], ids)
    for i in range(1, K + 1):
        assert torch.equal(out.ndata[f"out_feat_{i}"], full.ndata[f"out_feat_{i}"][ids])
    for key in ("feat", "label", "train_mask"):
        assert torch.equal(out.ndata[key], before[f"ndata.{key}"][ids]), key
    src, dst = out.edges()  # DGL orders a subgraph's edges its own way: compare as multisets
    expected = induced_edges(before["edge_index"], ids)
    assert edge_multiset(torch.stack([src, dst])) == edge_multiset(expected)
    assert torch.equal(out.edata["w"], before["edata.w"][out.edata[dgl.EID]])


def test_dgl_rows_stacked_weighted_and_small_budget(dgl, cora_graph):
    from sgap_plugins.dgl import SGAPPrecompute as DGLPrecompute

    g = cora_graph
    ids = shuffled_ids(g.num_nodes(), 500, seed=4)
    kwargs = {"aggregator": "aug_na", "r": 0.3, "eweight_name": "w", "hops_feat_name": "hops"}
    budget = g.num_nodes() * 2 * 4 * 16  # 16 columns per block
    out = DGLPrecompute(K, rows=ids, memory_budget=budget, **kwargs)(g)
    full = DGLPrecompute(K, **kwargs)(g)
    assert out.ndata["hops"].shape == (ids.numel(), K + 1, g.ndata["feat"].size(1))
    assert torch.equal(out.ndata["hops"], full.ndata["hops"][ids])
    assert "out_feat_1" not in out.ndata


def test_dgl_bad_rows(dgl, cora_graph):
    from sgap_plugins.dgl import SGAPPrecompute as DGLPrecompute

    g = cora_graph
    n = g.num_nodes()
    with pytest.raises(KeyError, match=r"rows='val_mask': g.ndata has no node attribute"):
        DGLPrecompute(2, rows="val_mask")(g)
    with pytest.raises(ValueError, match=rf"rows is a boolean mask of shape \[3\] .*\[{n}\]"):
        DGLPrecompute(2, rows=torch.tensor([True, False, True]))(g)
    with pytest.raises(ValueError, match=rf"rows contains node id {n} "):
        DGLPrecompute(2, rows=torch.tensor([0, n]))(g)
    with pytest.raises(ValueError, match=r"rows repeats"):
        DGLPrecompute(2, rows=torch.tensor([5, 5]))(g)
    with pytest.raises(TypeError, match=r"rows='feat' \(g.ndata\['feat'\]\) must hold integer"):
        DGLPrecompute(2, rows="feat")(g)
    with pytest.raises(ValueError, match="memory_budget bounds the rows= computation only"):
        DGLPrecompute(2, memory_budget=2**20)
    assert set(g.ndata) == {"feat", "label", "train_mask"}
    assert repr(DGLPrecompute(2, rows=torch.tensor([4, 2]))).endswith("rows=<2 node ids>)")
    assert repr(DGLPrecompute(2)).endswith("rows=None)")
