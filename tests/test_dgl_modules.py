"""Behaviour of the DGL adapter's transform and modules (compat env: DGL installed)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from sgap_plugins.core.graph_aggregators import PersonalizedPageRank


def ring(dgl, n: int = 6, f: int = 4, directed: bool = False):
    """A ring graph ``i → i+1`` (both directions unless ``directed``) with random features."""
    src = torch.arange(n)
    dst = (src + 1) % n
    if not directed:
        src, dst = torch.cat([src, dst]), torch.cat([dst, src])
    g = dgl.graph((src, dst), num_nodes=n)
    g.ndata["feat"] = torch.randn(n, f, generator=torch.Generator().manual_seed(0))
    return g


def test_precompute_changes_the_graph_in_place_with_one_storage_per_hop(dgl):
    import sgap_plugins
    from sgap_plugins.dgl import SGAPPrecompute

    g = ring(dgl)
    out = SGAPPrecompute(3)(g)
    assert out is g  # like dgl.SIGNDiffusion
    assert {f"out_feat_{i}" for i in (1, 2, 3)} | {"feat"} == set(g.ndata)  # its field names
    hops = sgap_plugins.propagate(g, g.ndata["feat"], 3)
    for i in (1, 2, 3):
        hop = g.ndata[f"out_feat_{i}"]
        assert hop.untyped_storage().nbytes() == hop.numel() * hop.element_size()
        torch.testing.assert_close(hop, hops[i], atol=0, rtol=0)


def test_precompute_stacked_hops_feat_name(dgl):
    import sgap_plugins
    from sgap_plugins.dgl import SGAPPrecompute

    g = SGAPPrecompute(3, aggregator="ppr", hops_feat_name="hops")(ring(dgl))
    assert {"hops", "feat"} == set(g.ndata)  # no per-hop fields: nothing stored twice
    stacked = g.ndata["hops"]
    assert stacked.shape == (6, 4, 4)
    assert stacked.untyped_storage().nbytes() == stacked.numel() * stacked.element_size()
    torch.testing.assert_close(stacked[:, 0], g.ndata["feat"], atol=0, rtol=0)
    expected = sgap_plugins.propagate(g, g.ndata["feat"], 3, "ppr").transpose(0, 1)
    torch.testing.assert_close(stacked, expected, atol=0, rtol=0)
    with pytest.raises(TypeError, match="hops_feat_name must be a non-empty feature name"):
        SGAPPrecompute(3, hops_feat_name="")


def test_edge_direction_follows_src_to_dst(dgl):
    """On the directed ring ``i → i+1`` with self loops, a step averages a node with its
    predecessor: node 1 receives node 0's feature, not node 2's."""
    from sgap_plugins.dgl import SGAPPropagate

    g = ring(dgl, n=5, directed=True)
    feat = torch.eye(5)
    hops = SGAPPropagate(1, "aug_na", r=0.0)(g, feat)  # random walk D̃⁻¹Ã: mean of Ñ(v)
    expected = (torch.eye(5) + torch.eye(5).roll(-1, dims=1)) / 2
    torch.testing.assert_close(hops[:, 1], expected)


def test_functional_propagate_goes_through_the_registered_adapter(dgl):
    import sgap_plugins
    from sgap_plugins.core.plugins import framework_adapters
    from sgap_plugins.dgl import DGLAdapter, SGAPPropagate

    assert any(isinstance(a, DGLAdapter) for a in framework_adapters())
    g = ring(dgl)
    feat = g.ndata["feat"]
    w = torch.rand(g.num_edges(), generator=torch.Generator().manual_seed(1)) + 0.1
    out = sgap_plugins.propagate(g, feat, 3, edge_weight=w.unsqueeze(1))  # DGL's [E, 1]
    assert out.shape == (4, 6, 4)
    module = SGAPPropagate(3)(g, feat, edge_weight=w)
    torch.testing.assert_close(out.transpose(0, 1), module, atol=0, rtol=0)
    assert not torch.allclose(out, sgap_plugins.propagate(g, feat, 3))
    # int32 graphs are read the same way
    torch.testing.assert_close(sgap_plugins.propagate(g.int(), feat, 3, edge_weight=w), out)


def test_plugin_registers_on_a_fresh_import_without_importing_dgl(dgl):
    """A fresh process registers the DGL adapter without a PluginWarning and without importing
    DGL (about 1.5 s) until the program itself does; then DGL graphs are accepted."""
    code = (
        "import sys, warnings\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    import torch, sgap_plugins\n"
        "    from sgap_plugins.core.plugins import PluginWarning, framework_adapters\n"
        "    names = [a.name for a in framework_adapters()]\n"
        "bad = [str(w.message) for w in caught if issubclass(w.category, PluginWarning)]\n"
        "assert not bad, bad\n"
        "assert names.count('dgl') == 1, names\n"
        "assert 'dgl' not in sys.modules\n"
        "import dgl\n"
        "g = dgl.graph(([0, 1], [1, 2]))\n"
        "print(sgap_plugins.propagate(g, torch.ones(3, 2), 2).shape)\n"
    )
    env = {**os.environ, "DGLBACKEND": "pytorch"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "torch.Size([3, 3, 2])" in done.stdout


class CountingPropagation:
    """Counts the propagations the DGL modules run (wraps ``nn.propagate_csr``)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        import sgap_plugins.dgl.nn as dgl_nn

        self.calls = 0
        inner = dgl_nn.propagate_csr

        def counted(*args, **kwargs):
            self.calls += 1
            return inner(*args, **kwargs)

        monkeypatch.setattr(dgl_nn, "propagate_csr", counted)


def test_propagate_cache_like_sgconv_keyed_by_content(dgl, monkeypatch):
    import sgap_plugins
    from sgap_plugins.dgl import SGAPPropagate

    g = ring(dgl)
    feat = g.ndata["feat"]
    counter = CountingPropagation(monkeypatch)
    module = SGAPPropagate(2, cached=True)
    first = module(g, feat)
    assert "cached=True" in repr(module)
    assert module(g, feat).data_ptr() == first.data_ptr()  # the same objects: cached
    assert module(g.clone(), feat.clone()).data_ptr() == first.data_ptr()  # same content
    assert counter.calls == 1
    # a different graph of the same node and edge counts (the directed ring of 12 edges)
    other = dgl.graph((torch.arange(6).repeat(2), (torch.arange(6) + 1).repeat(2) % 6))
    assert (other.num_nodes(), other.num_edges()) == (g.num_nodes(), g.num_edges())
    torch.testing.assert_close(
        module(other, feat), sgap_plugins.propagate(other, feat, 2).transpose(0, 1)
    )
    assert counter.calls == 2
    # new feature values: in place (same tensor) or a new tensor of the same shape
    feat2 = feat.clone()
    module(g, feat2)
    feat2.mul_(3)
    torch.testing.assert_close(
        module(g, feat2), sgap_plugins.propagate(g, feat2, 2).transpose(0, 1)
    )
    torch.testing.assert_close(module(g, torch.zeros_like(feat))[:, 2], torch.zeros_like(feat))
    # edge weights, an in-place structure change, another aggregator or k
    w = torch.rand(g.num_edges(), generator=torch.Generator().manual_seed(0)) + 0.5
    torch.testing.assert_close(
        module(g, feat, w), sgap_plugins.propagate(g, feat, 2, edge_weight=w).transpose(0, 1)
    )
    h = g.clone()
    module(h, feat)
    h.remove_edges(torch.tensor([0]))
    h.add_edges(torch.tensor([0]), torch.tensor([3]))
    torch.testing.assert_close(module(h, feat), sgap_plugins.propagate(h, feat, 2).transpose(0, 1))
    calls = counter.calls
    module.aggregator = PersonalizedPageRank(alpha=0.2)
    torch.testing.assert_close(
        module(h, feat), sgap_plugins.propagate(h, feat, 2, "ppr", alpha=0.2).transpose(0, 1)
    )
    module.aggregator.alpha = 0.4  # a parameter changed in place
    torch.testing.assert_close(
        module(h, feat), sgap_plugins.propagate(h, feat, 2, "ppr", alpha=0.4).transpose(0, 1)
    )
    module.k = 1
    assert module(h, feat).shape == (6, 2, 4)
    assert counter.calls == calls + 3
    # other sizes and widths
    bigger = ring(dgl, n=7)
    assert module(bigger, bigger.ndata["feat"]).shape == (7, 2, 4)
    assert module(g, feat[:, :3]).shape == (6, 2, 3)


def test_propagate_uncached_and_clear_cache(dgl, monkeypatch):
    from sgap_plugins.dgl import SGAPPropagate

    g = ring(dgl)
    feat = g.ndata["feat"]
    counter = CountingPropagation(monkeypatch)
    module = SGAPPropagate(2)  # cached=False, SGConv's default
    a, b = module(g, feat), module(g, feat)
    assert counter.calls == 2 and a.data_ptr() != b.data_ptr()
    cached = SGAPPropagate(2, cached=True)
    cached(g, feat)
    cached.clear_cache()
    cached(g, feat)
    assert counter.calls == 4


def test_propagation_is_a_constant_precomputation(dgl):
    from sgap_plugins.dgl import SGAPPropagate

    g = ring(dgl)
    feat = g.ndata["feat"].clone().requires_grad_()
    assert not SGAPPropagate(2)(g, feat).requires_grad


def test_isolated_node_follows_the_formula_or_keeps_its_features(dgl):
    from sgap_plugins.dgl import SGAPPropagate

    g = dgl.graph(([0, 1], [1, 0]), num_nodes=3)  # node 2 has no edge
    feat = torch.arange(6.0).reshape(3, 2)
    hops = SGAPPropagate(4, "aug_na", add_self_loops=False)(g, feat)
    torch.testing.assert_close(hops[2, 1:], torch.zeros(4, 2))  # D^-1/2 A D^-1/2: a zero row
    kept = SGAPPropagate(4, "aug_na", add_self_loops=False, keep_isolated=True)(g, feat)
    assert torch.isfinite(kept).all()
    torch.testing.assert_close(kept[2], feat[2].expand(5, 2))
    torch.testing.assert_close(kept[:2], hops[:2])


def test_model_minibatch_matches_full_batch_and_masks(dgl):
    from sgap_plugins.dgl import SGAPModel

    g = ring(dgl, n=10, f=5)
    feat = g.ndata["feat"]
    torch.manual_seed(0)
    model = SGAPModel.from_preset("pasca_v2", in_feats=5, n_classes=3).eval()
    assert "in_feats=5, n_classes=3" in repr(model)
    with torch.no_grad():
        full = model(g, feat)
        nids = torch.tensor([7, 2, 2, 9])
        torch.testing.assert_close(model(g, feat, nids), full[nids], atol=1e-6, rtol=0)
        mask = torch.zeros(10, dtype=torch.bool)
        mask[[1, 4]] = True
        torch.testing.assert_close(model(g, feat, mask), full[[1, 4]], atol=1e-6, rtol=0)
    assert full.shape == (10, 3)
    assert model.postprocess(g, full).shape == (10, 3)


def test_model_cache_is_keyed_by_content_and_clear_cache_keeps_weights(dgl, monkeypatch):
    from sgap_plugins.dgl import SGAPModel

    g = ring(dgl, n=8, f=3)
    feat = g.ndata["feat"]
    counter = CountingPropagation(monkeypatch)
    model = SGAPModel("sgc", in_feats=3, n_classes=2).eval()
    bias = model.net.mlp[0].bias
    with torch.no_grad():
        before = model(g, feat)
        model(g, feat, torch.tensor([1, 2]))
        assert counter.calls == 1  # cached
        # new feature values are seen (sgc is linear in the features)
        torch.testing.assert_close(model(g, feat * 2) - bias, 2 * (before - bias))
        # a different graph with the same node and edge counts is propagated, not served
        # the hops of the ring
        path = dgl.graph((torch.arange(7), torch.arange(1, 8)), num_nodes=8)
        path = dgl.add_reverse_edges(path)
        path = dgl.add_edges(path, torch.tensor([0, 7]), torch.tensor([0, 7]))
        assert path.num_edges() == g.num_edges()
        torch.manual_seed(0)
        fresh = SGAPModel("sgc", in_feats=3, n_classes=2).eval()
        fresh.load_state_dict(model.state_dict())
        torch.testing.assert_close(model(path, feat), fresh(path, feat))
        assert not torch.allclose(model(path, feat), before)
        calls = counter.calls
        weights = [p.clone() for p in model.parameters()]
        model.clear_cache()  # the cache alone: the weights stay
        torch.testing.assert_close(model(g, feat), before)
        assert counter.calls == calls + 1
        assert all(torch.equal(a, b) for a, b in zip(weights, model.parameters(), strict=True))
        model.reset_parameters()  # the weights (and the cache)
        assert any(not torch.equal(a, b) for a, b in zip(weights, model.parameters(), strict=True))


def test_model_cached_false_propagates_every_call(dgl, monkeypatch):
    from sgap_plugins.dgl import SGAPModel

    g = ring(dgl, n=8, f=3)
    counter = CountingPropagation(monkeypatch)
    model = SGAPModel.from_preset("sgc", in_feats=3, n_classes=2, cached=False)
    assert "cached=False" in repr(model)
    for _ in range(3):
        model(g, g.ndata["feat"])
    assert counter.calls == 3


def test_model_edge_weights_change_the_propagation(dgl):
    from sgap_plugins.dgl import SGAPModel

    g = ring(dgl, n=8, f=3)
    w = torch.linspace(0.1, 2.0, g.num_edges())
    torch.manual_seed(0)
    plain = SGAPModel("sgc", 3, 2).eval()
    torch.manual_seed(0)
    weighted = SGAPModel("sgc", 3, 2).eval()
    with torch.no_grad():
        assert not torch.allclose(
            plain(g, g.ndata["feat"]), weighted(g, g.ndata["feat"], edge_weight=w)
        )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_graph_and_features_stay_on_the_gpu(dgl):
    from sgap_plugins.dgl import SGAPModel, SGAPPrecompute

    g = ring(dgl).to("cuda")
    out = SGAPPrecompute(2)(g)
    assert out.ndata["out_feat_2"].is_cuda
    model = SGAPModel("pasca_v2", 4, 3).to("cuda")
    logits = model(g, g.ndata["feat"], torch.tensor([0, 1], device="cuda"))
    assert logits.is_cuda
    assert model.postprocess(g, model(g, g.ndata["feat"])).is_cuda
