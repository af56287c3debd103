"""``SGAPPrecompute`` as a drop-in for PyG's ``T.SIGN``: the same keys, values and storage,
node-level attributes that follow PyG's ``subgraph``, batching and loaders, and the formula's
zero rows for nodes without in-neighbours (``keep_isolated=True`` keeps their features)."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

pytest.importorskip("torch_geometric")
import torch_geometric.transforms as T  # noqa: E402
from torch_geometric.data import Batch, Data  # noqa: E402
from torch_geometric.loader import DataLoader  # noqa: E402

from sgap_plugins import propagate  # noqa: E402
from sgap_plugins.pyg import SGAPPrecompute  # noqa: E402


def close(a, b, atol=1e-5, rtol=1e-5):
    torch.testing.assert_close(a, b, atol=atol, rtol=rtol)


def like_sign(k: int, **kwargs) -> SGAPPrecompute:
    """``SGAPPrecompute`` set up as ``T.SIGN(k)``: ``D^{-1/2} A D^{-1/2}``, no self loops."""
    return SGAPPrecompute(k=k, add_self_loops=False, **kwargs)


def random_graph(n: int, e: int, seed: int, f: int = 5, directed: bool = False) -> Data:
    """A random graph on ``n`` nodes whose last fifth has no edge at all (isolated nodes);
    ``directed`` keeps one direction only, so some nodes have out- but no in-edges."""
    gen = torch.Generator().manual_seed(seed)
    m = n - n // 5
    ei = torch.randint(0, m, (2, e), generator=gen)
    ei = ei[:, ei[0] != ei[1]]
    if not directed:
        ei = torch.cat([ei, ei.flip(0)], 1)
    ei = torch.unique(ei, dim=1).contiguous()  # PyG's EdgeIndex needs a contiguous tensor
    return Data(x=torch.randn(n, f, generator=gen), edge_index=ei, num_nodes=n)


def storage_bytes(tensors: list[Tensor]) -> int:
    """Bytes of the distinct storages behind ``tensors`` (a shared storage counts once)."""
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}
    return sum(storages.values())


def tensors(data: Data) -> list[Tensor]:
    return [v for _, v in data if isinstance(v, Tensor)]


@pytest.fixture(scope="module")
def citeseer(data_root):
    from sgap_plugins.datasets import load_dataset

    return load_dataset("citeseer", data_root)


# ------------------------------------------------------------- PyG's own test_sign assertions
@pytest.mark.parametrize("transform", [T.SIGN(K=2), like_sign(2)], ids=["T.SIGN", "SGAP"])
def test_pyg_test_sign_assertions(transform):
    """The assertions of PyG's ``test/transforms/test_sign.py``, run against ``T.SIGN``
    itself (so they hold for this PyG version) and against ``SGAPPrecompute``."""
    x = torch.ones(5, 3)
    edge_index = torch.tensor([[0, 1, 2, 3, 3, 4], [1, 0, 3, 2, 4, 3]])
    data = Data(x=x, edge_index=edge_index)

    expected_x1 = torch.tensor(
        [[1, 1, 1], [1, 1, 1], [0.7071, 0.7071, 0.7071], [1.4142, 1.4142, 1.4142],
         [0.7071, 0.7071, 0.7071]]
    )  # fmt: skip
    expected_x2 = torch.ones(5, 3)

    out = transform(data)
    assert len(out) == 4
    assert torch.equal(out.edge_index, edge_index)
    assert torch.allclose(out.x, x)
    assert torch.allclose(out.x1, expected_x1, atol=1e-4)
    assert torch.allclose(out.x2, expected_x2)
    assert len(data) == 2  # the caller's data is untouched


@pytest.mark.parametrize("directed", [False, True])
def test_same_keys_values_and_storage_as_sign(directed):
    data = random_graph(60, 200, seed=int(directed), directed=directed)
    ref = T.SIGN(3)(data)
    out = like_sign(3)(data)
    assert set(out.keys()) == set(ref.keys())
    for key in ("x1", "x2", "x3"):
        close(out[key], ref[key])
    assert storage_bytes(tensors(out)) == storage_bytes(tensors(ref))


# ------------------------------------------------------------- node-level attributes
def test_subgraph_slices_every_hop(citeseer):
    data = Data(x=citeseer.x, edge_index=citeseer.edge_index)
    idx = torch.randperm(citeseer.num_nodes, generator=torch.Generator().manual_seed(0))[:300]
    ref = T.SIGN(2)(data).subgraph(idx)
    sub = like_sign(2)(data).subgraph(idx)
    assert set(sub.keys()) == set(ref.keys())
    for key in ("x", "x1", "x2"):
        assert sub[key].shape == (300, citeseer.x.size(1))
        close(sub[key], ref[key])
    full = like_sign(2, hops_attr="hops")(data)
    stacked = full.subgraph(idx)
    assert stacked.hops.shape == (300, 3, citeseer.x.size(1))
    torch.testing.assert_close(stacked.hops, full.hops[idx], atol=0, rtol=0)
    close(stacked.hops[:, 2], ref.x2)


def test_batch_and_loader_over_graphs_of_different_sizes():
    graphs = [random_graph(n, 3 * n, seed=n) for n in (30, 40, 50)]
    ref = Batch.from_data_list([T.SIGN(2)(g) for g in graphs])
    batch = Batch.from_data_list([like_sign(2)(g) for g in graphs])
    assert set(batch.keys()) == set(ref.keys())
    for key in ("x1", "x2"):
        assert batch[key].shape == (120, 5)
        close(batch[key], ref[key])
    t = like_sign(2, hops_attr="hops")
    stacked = Batch.from_data_list([t(g) for g in graphs])
    assert stacked.hops.shape == (120, 3, 5)
    close(stacked.hops[:, 1], ref.x1)
    close(stacked.hops[:, 2], ref.x2)
    torch.testing.assert_close(stacked.get_example(1).hops, t(graphs[1]).hops, atol=0, rtol=0)
    (loaded,) = list(DataLoader([t(g) for g in graphs], batch_size=3))
    torch.testing.assert_close(loaded.hops, stacked.hops, atol=0, rtol=0)
    assert loaded.batch.shape == (120,)


def test_clone_and_to_copy_what_sign_copies(cora):
    """Every hop stored once: the transform's output, its ``clone()`` and what ``.to()``
    copies (the sum of its attributes) weigh what ``T.SIGN``'s do."""
    data = Data(x=cora.x, edge_index=cora.edge_index)
    ref = T.SIGN(3)(data)
    out = like_sign(3)(data)
    assert storage_bytes(tensors(out)) == storage_bytes(tensors(ref))
    assert storage_bytes(tensors(out.clone())) == storage_bytes(tensors(ref.clone()))
    to_bytes = [sum(t.nbytes for t in tensors(d.to("meta"))) for d in (out, ref)]
    assert to_bytes[0] == to_bytes[1]
    # the stacked layout: data.x plus the [N, 4, F] hops, nothing else
    stacked = like_sign(3, hops_attr="hops")(data)
    hop_bytes = cora.x.numel() * cora.x.element_size()
    assert storage_bytes(tensors(stacked)) == storage_bytes(tensors(data)) + 4 * hop_bytes
    if torch.cuda.is_available():
        moved = [storage_bytes(tensors(d.to("cuda"))) for d in (out, ref)]
        assert moved[0] == moved[1]


def test_in_place_edit_does_not_leak_into_the_next_call(cora):
    data = Data(x=cora.x, edge_index=cora.edge_index)
    t = like_sign(2)
    first = t(data)
    expected = first.x1.clone()
    first.x1.mul_(0.0)
    first.x2.add_(1.0)
    again = t(data)
    torch.testing.assert_close(again.x1, expected, atol=0, rtol=0)
    assert not torch.equal(again.x2, first.x2)


# ------------------------------------------------------------- nodes without in-neighbours
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])  # fused kernels, reference
@pytest.mark.parametrize("directed", [False, True])
def test_isolated_nodes_match_sign_and_keep_isolated_opts_in(directed, dtype):
    data = random_graph(50, 120, seed=3, directed=directed)
    no_in = torch.bincount(data.edge_index[1], minlength=50) == 0
    assert int(no_in.sum()) >= 10  # the premise: isolated nodes (and sources when directed)
    ref = T.SIGN(3)(data)  # T.SIGN's edge weights are fp32: it only takes fp32 features
    data.x = data.x.to(dtype)
    out = like_sign(3)(data)
    kept = like_sign(3, keep_isolated=True)(data)
    ref = ref.apply(lambda t: t.to(dtype) if t.is_floating_point() else t)
    for i in (1, 2, 3):
        assert out[f"x{i}"].dtype == dtype
        close(out[f"x{i}"], ref[f"x{i}"])
        assert bool((out[f"x{i}"][no_in] == 0).all())
        close(kept[f"x{i}"][~no_in], ref[f"x{i}"][~no_in])
        torch.testing.assert_close(kept[f"x{i}"][no_in], data.x[no_in], atol=0, rtol=0)


def test_ppr_without_self_loops_teleports_isolated_nodes():
    """PPR's raw step of a node without in-neighbours is zero: its hops are ``α x``."""
    data = random_graph(40, 100, seed=5)
    isolated = torch.bincount(data.edge_index[1], minlength=40) == 0
    hops = propagate(data.edge_index, data.x, 3, "ppr", alpha=0.3, add_self_loops=False)
    for t in (1, 2, 3):
        close(hops[t][isolated], 0.3 * data.x[isolated])
    kept = propagate(
        data.edge_index, data.x, 3, "ppr", alpha=0.3, add_self_loops=False, keep_isolated=True
    )
    close(kept[3][isolated], data.x[isolated])
    close(kept[3][~isolated], hops[3][~isolated])


def test_citeseer_equals_sign_including_isolated_nodes(citeseer):
    data = Data(x=citeseer.x, edge_index=citeseer.edge_index)
    isolated = torch.bincount(citeseer.edge_index[1], minlength=citeseer.num_nodes) == 0
    assert int(isolated.sum()) == 48  # the premise: CiteSeer's isolated nodes
    ref = T.SIGN(2)(data)
    out = like_sign(2)(data)
    for i in (1, 2):
        close(out[f"x{i}"], ref[f"x{i}"])


def test_amazon_photo_equals_sign_including_isolated_nodes(data_root):
    from sgap_plugins.datasets import load_dataset

    photo = load_dataset("photo", data_root)
    data = Data(x=photo.x, edge_index=photo.edge_index)
    isolated = torch.bincount(photo.edge_index[1], minlength=photo.num_nodes) == 0
    assert int(isolated.sum()) == 115  # the premise: Amazon Photo's isolated nodes
    ref = T.SIGN(2)(data)
    out = like_sign(2)(data)
    for i in (1, 2):
        close(out[f"x{i}"], ref[f"x{i}"], atol=1e-4)
