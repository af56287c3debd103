"""The PyG adapter: SGAPPrecompute and SGAPPostprocess against PyG's own operators."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from sgap_plugins import propagate

pytest.importorskip("torch_geometric")
import torch_geometric.transforms as T  # noqa: E402
from torch_geometric.data import Data, HeteroData  # noqa: E402
from torch_geometric.datasets import Planetoid  # noqa: E402
from torch_geometric.nn import APPNP  # noqa: E402

import sgap_plugins.pyg.transforms as pyg_transforms  # noqa: E402
from sgap_plugins.pyg import SGAPPostprocess, SGAPPrecompute  # noqa: E402


def close(a, b, atol=1e-5, rtol=1e-5):
    torch.testing.assert_close(a, b, atol=atol, rtol=rtol)


@pytest.fixture
def cora_root(data_root: Path, tmp_path: Path) -> Path:
    """A private copy of Cora's raw files: PyG writes processed/ next to raw/, and the shared
    data folder is read-only."""
    src = data_root / "planetoid" / "Cora" / "raw"
    dst = tmp_path / "Cora" / "raw"
    dst.mkdir(parents=True)
    for f in src.glob("ind.cora.*"):
        shutil.copyfile(f, dst / f.name)
    return tmp_path


@pytest.fixture
def cora_data(cora) -> Data:
    return Data(x=cora.x.clone(), edge_index=cora.edge_index.clone())


class CountingPropagation:
    """Counts the propagations the PyG transforms run (wraps their ``propagate_csr``)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.calls = 0
        inner = pyg_transforms.propagate_csr

        def counted(*args, **kwargs):
            self.calls += 1
            return inner(*args, **kwargs)

        monkeypatch.setattr(pyg_transforms, "propagate_csr", counted)


# ---------------------------------------------------------------------------- SGAPPrecompute
def test_precompute_equals_pyg_sign(cora_data):
    k = 3
    ref = T.SIGN(k)(cora_data)
    out = SGAPPrecompute(k=k, add_self_loops=False)(cora_data)
    for i in range(1, k + 1):
        close(out[f"x{i}"], ref[f"x{i}"])
    assert "x4" not in out


def test_precompute_sign_layout_owns_one_storage_per_hop(cora_data):
    k = 2
    out = SGAPPrecompute(k=k)(cora_data)
    assert set(out.keys()) == {"x", "edge_index", "x1", "x2"}
    hops = propagate(cora_data.edge_index, cora_data.x, k)  # default aug_na, with self loops
    for i in range(1, k + 1):
        xi = out[f"x{i}"]
        assert xi.shape == cora_data.x.shape and xi.is_contiguous()
        # its own storage, exactly its size: no hidden [k+1, N, F] buffer behind the view
        assert xi.untyped_storage().nbytes() == xi.numel() * xi.element_size()
        close(xi, hops[i])


def test_precompute_stacked_hops_attr(cora_data):
    k = 3
    out = SGAPPrecompute(k=k, aggregator="ppr", alpha=0.2, hops_attr="hops")(cora_data)
    assert set(out.keys()) == {"x", "edge_index", "hops"}  # no x1..xk: nothing stored twice
    n, f = cora_data.x.shape
    assert out.hops.shape == (n, k + 1, f)
    assert out.hops.untyped_storage().nbytes() == out.hops.numel() * out.hops.element_size()
    assert torch.equal(out.hops[:, 0], cora_data.x)
    close(
        out.hops, propagate(cora_data.edge_index, cora_data.x, k, "ppr", alpha=0.2).transpose(0, 1)
    )
    assert out.is_node_attr("hops")


def test_precompute_hops_attr_must_be_a_node_attribute_name(cora_data):
    with pytest.raises(ValueError, match=r"hops_attr='hop_index'.*not as a node attribute"):
        SGAPPrecompute(k=1, hops_attr="hop_index")(cora_data)
    with pytest.raises(TypeError, match="hops_attr must be a non-empty attribute name"):
        SGAPPrecompute(k=1, hops_attr="")


def test_precompute_does_not_mutate_callers_data(cora_data):
    keys_before = set(cora_data.keys())
    x_before = cora_data.x.clone()
    for t in (SGAPPrecompute(k=2), SGAPPrecompute(k=2, hops_attr="hops")):
        out = t(cora_data)
        assert out is not cora_data
        assert set(cora_data.keys()) == keys_before
        assert torch.equal(cora_data.x, x_before)
        assert "x2" in out or "hops" in out


def test_precompute_keeps_no_state_and_recomputes_on_change(cora_data, monkeypatch):
    t = SGAPPrecompute(k=2)
    counter = CountingPropagation(monkeypatch)
    a = t(cora_data)
    b = t(cora_data)
    assert counter.calls == 2  # no memo: PyG transforms are stateless
    assert a.x1.data_ptr() != b.x1.data_ptr()
    close(a.x1, b.x1, atol=0, rtol=0)
    changed = Data(x=cora_data.x * 2, edge_index=cora_data.edge_index)
    close(t(changed).x2, a.x2 * 2)
    rewired = Data(x=cora_data.x, edge_index=cora_data.edge_index[:, :-2])
    expected = propagate(rewired.edge_index, rewired.x, 2, num_nodes=rewired.num_nodes)
    close(t(rewired).x2, expected[2])


def test_precompute_as_dataset_transform_hands_out_fresh_tensors(cora_root, monkeypatch):
    t = SGAPPrecompute(k=2, add_self_loops=False)
    counter = CountingPropagation(monkeypatch)
    ds = Planetoid(str(cora_root), "Cora", transform=t)
    first = ds[0]
    ref = T.SIGN(2)(Planetoid(str(cora_root), "Cora")[0])
    close(first.x1, ref.x1)
    close(first.x2, ref.x2)
    first.x1.add_(1.0)  # an in-place edit of one access ...
    again = ds[0]
    close(again.x1, ref.x1)  # ... does not leak into the next
    assert counter.calls == 2  # every access propagates (cache with pre_transform=)


def test_precompute_as_pre_transform(cora_root, monkeypatch):
    t = SGAPPrecompute(k=2, aggregator="ppr")
    ds = Planetoid(str(cora_root), "Cora", pre_transform=t)
    data = ds[0]
    expected = propagate(data.edge_index, data.x, 2, "ppr", alpha=0.1)
    close(data.x1, expected[1])
    close(data.x2, expected[2])
    # the processed file is reused: a second dataset object does not recompute
    counter = CountingPropagation(monkeypatch)
    again = Planetoid(str(cora_root), "Cora", pre_transform=SGAPPrecompute(k=2, aggregator="ppr"))
    assert counter.calls == 0
    close(again[0].x2, expected[2])
    # another configuration: PyG warns on the differing repr; force_reload recomputes
    other = SGAPPrecompute(k=2, aggregator="ppr", alpha=0.3)
    with pytest.warns(UserWarning, match="pre_transform"):
        Planetoid(str(cora_root), "Cora", pre_transform=other)
    reloaded = Planetoid(str(cora_root), "Cora", pre_transform=other, force_reload=True)[0]
    assert counter.calls == 1
    close(reloaded.x2, propagate(data.edge_index, data.x, 2, "ppr", alpha=0.3)[2])


@pytest.mark.parametrize(
    "kwargs",
    [{"k": 3}, {"aggregator": "ppr"}, {"r": 0.3}, {"add_self_loops": False},
     {"keep_isolated": True}, {"dtype": torch.bfloat16}, {"hops_attr": "hops"},
     {"rows": "train_mask"}, {"rows": torch.tensor([0, 1])}],
)  # fmt: skip
def test_precompute_repr_names_every_setting(kwargs):
    """PyG detects a changed pre_transform by its repr: every setting must show."""
    assert repr(SGAPPrecompute(**{"k": 2, **kwargs})) != repr(SGAPPrecompute(k=2))


def test_precompute_aggregator_params_and_dtype(cora_data):
    out = SGAPPrecompute(k=2, aggregator="ppr", alpha=0.3, dtype=torch.bfloat16)(cora_data)
    assert out.x1.dtype == out.x2.dtype == torch.bfloat16
    ref = APPNP(K=2, alpha=0.3)(cora_data.x, cora_data.edge_index)
    close(out.x2.float(), ref, atol=1e-5, rtol=2**-8)


def test_precompute_uses_edge_weight():
    ei = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])
    w = torch.tensor([1.0, 1.0, 3.0, 3.0])
    x = torch.randn(3, 2)
    out = SGAPPrecompute(k=2, hops_attr="hops")(Data(x=x, edge_index=ei, edge_weight=w))
    close(out.hops, propagate(ei, x, 2, edge_weight=w).transpose(0, 1))
    unweighted = SGAPPrecompute(k=2)(Data(x=x, edge_index=ei))
    assert not torch.allclose(unweighted.x2, out.hops[:, 2])


def test_precompute_errors():
    hetero = HeteroData()
    hetero["paper"].x = torch.randn(3, 2)
    hetero["paper", "cites", "paper"].edge_index = torch.tensor([[0, 1], [1, 2]])
    with pytest.raises(TypeError, match="HeteroData"):
        SGAPPrecompute(k=2)(hetero)
    with pytest.raises(ValueError, match="data.x"):
        SGAPPrecompute(k=2)(Data(edge_index=torch.tensor([[0], [1]]), num_nodes=2))
    with pytest.raises(ValueError, match="data.x"):
        SGAPPrecompute(k=2)(Data(x=torch.tensor([[float("nan")], [0.0]]), num_nodes=2,
                                 edge_index=torch.tensor([[0], [1]])))  # fmt: skip
    with pytest.raises(ValueError, match="k must"):
        SGAPPrecompute(k=-1)
    with pytest.raises(ValueError, match="r must"):
        SGAPPrecompute(k=2, r=3.0)
    with pytest.raises(ValueError, match="unknown graph aggregator"):
        SGAPPrecompute(k=2, aggregator="nope")


def test_precompute_repr():
    assert repr(SGAPPrecompute(k=3)) == (
        "SGAPPrecompute(k=3, aggregator=AugNormAdj(r=0.5, add_self_loops=True, "
        "keep_isolated=False))"
    )
    assert repr(SGAPPrecompute(k=2, aggregator="ppr", alpha=0.2, hops_attr="hops")) == (
        "SGAPPrecompute(k=2, aggregator=PersonalizedPageRank(alpha=0.2, add_self_loops=True, "
        "keep_isolated=False), hops_attr='hops')"
    )


# ---------------------------------------------------------------------------- SGAPPostprocess
@pytest.mark.parametrize("k, alpha", [(10, 0.1), (3, 0.3)])
def test_postprocess_equals_appnp_of_softmax(cora, k, alpha):
    logits = torch.randn(cora.num_nodes, 7, generator=torch.Generator().manual_seed(0))
    data = Data(edge_index=cora.edge_index, num_nodes=cora.num_nodes, pred=logits)
    t = SGAPPostprocess(k=k, alpha=alpha)
    out = t(data)
    ref = APPNP(K=k, alpha=alpha)(torch.softmax(logits, -1), cora.edge_index)
    close(out.pred_post, ref)
    assert out.pred_post.untyped_storage().nbytes() == ref.numel() * ref.element_size()
    assert "pred_post" not in data
    assert repr(t) == (
        f"SGAPPostprocess(k={k}, aggregator=PersonalizedPageRank(alpha={alpha}, "
        "add_self_loops=True, keep_isolated=False))"
    )


def test_postprocess_defaults_and_keys(cora):
    probs = torch.softmax(torch.randn(cora.num_nodes, 7), -1)
    data = Data(edge_index=cora.edge_index, num_nodes=cora.num_nodes, p=probs)
    out = SGAPPostprocess(k=4, pred_key="p", out_key="q", apply_softmax=False)(data)
    close(out.q, APPNP(K=4, alpha=0.1)(probs, cora.edge_index))  # default ppr alpha=0.1
    gcn = SGAPPostprocess(k=2, aggregator="aug_na", pred_key="p", apply_softmax=False)(data)
    close(gcn.pred_post, propagate(cora.edge_index, probs, 2)[2])


def test_postprocess_errors():
    data = Data(edge_index=torch.tensor([[0], [1]]), num_nodes=2)
    with pytest.raises(ValueError, match="pred"):
        SGAPPostprocess(k=2)(data)
    data.pred = torch.randn(3, 2)
    with pytest.raises(ValueError, match="data.pred"):
        SGAPPostprocess(k=2)(data)
    with pytest.raises(TypeError, match="HeteroData"):
        SGAPPostprocess(k=2)(HeteroData())
