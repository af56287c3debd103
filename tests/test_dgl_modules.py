"""Behaviour of the DGL adapter's transform and modules (compat env: DGL installed)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch


def ring(dgl, n: int = 6, f: int = 4, directed: bool = False):
    """A ring graph ``i → i+1`` (both directions unless ``directed``) with random features."""
    src = torch.arange(n)
    dst = (src + 1) % n
    if not directed:
        src, dst = torch.cat([src, dst]), torch.cat([dst, src])
    g = dgl.graph((src, dst), num_nodes=n)
    g.ndata["feat"] = torch.randn(n, f, generator=torch.Generator().manual_seed(0))
    return g


def test_precompute_changes_the_graph_in_place_and_shares_one_buffer(dgl):
    from sgap_plugins.dgl import SGAPPrecompute

    g = ring(dgl)
    out = SGAPPrecompute(3)(g)
    assert out is g  # like dgl.SIGNDiffusion
    assert {f"out_feat_{i}" for i in (1, 2, 3)} | {"out_feat_hops", "feat"} == set(g.ndata)
    stacked = g.ndata["out_feat_hops"]
    assert stacked.shape == (6, 4, 4)
    for i in (1, 2, 3):
        assert g.ndata[f"out_feat_{i}"].data_ptr() == stacked[:, i].data_ptr()
    torch.testing.assert_close(stacked[:, 0], g.ndata["feat"], atol=0, rtol=0)


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


def test_propagate_cache_like_sgconv(dgl):
    from sgap_plugins.dgl import SGAPPropagate

    g = ring(dgl)
    feat = g.ndata["feat"]
    module = SGAPPropagate(2, cached=True)
    first = module(g, feat)
    assert module(g, torch.zeros_like(feat)).data_ptr() == first.data_ptr()  # cached
    assert "cached=True" in repr(module)
    bigger = ring(dgl, n=7)
    with pytest.raises(ValueError, match="reset_parameters"):
        module(bigger, bigger.ndata["feat"])
    with pytest.raises(ValueError, match=r"features of shape \[6, 3\]"):
        module(g, feat[:, :3])
    module.reset_parameters()
    again = module(bigger, bigger.ndata["feat"])
    assert again.shape == (7, 3, 4)


def test_propagation_is_a_constant_precomputation(dgl):
    from sgap_plugins.dgl import SGAPPropagate

    g = ring(dgl)
    feat = g.ndata["feat"].clone().requires_grad_()
    assert not SGAPPropagate(2)(g, feat).requires_grad


def test_isolated_node_keeps_its_features(dgl):
    from sgap_plugins.dgl import SGAPPropagate

    g = dgl.graph(([0, 1], [1, 0]), num_nodes=3)  # node 2 has no edge
    feat = torch.arange(6.0).reshape(3, 2)
    hops = SGAPPropagate(4, "aug_na", add_self_loops=False)(g, feat)
    assert torch.isfinite(hops).all()
    torch.testing.assert_close(hops[2], feat[2].expand(5, 2))


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


def test_model_caches_propagation_and_reset_parameters_clears_it(dgl):
    from sgap_plugins.dgl import SGAPModel

    g = ring(dgl, n=8, f=3)
    feat = g.ndata["feat"]
    model = SGAPModel("sgc", in_feats=3, n_classes=2).eval()
    with torch.no_grad():
        before = model(g, feat)
        # the propagation is cached: new feature values are not seen ...
        torch.testing.assert_close(model(g, feat * 2), before)
        weights = [p.clone() for p in model.parameters()]
        model.reset_parameters()
        assert any(not torch.equal(a, b) for a, b in zip(weights, model.parameters(), strict=True))
        for p, w in zip(model.parameters(), weights, strict=True):
            p.copy_(w)
        # ... until reset_parameters() clears the cache (sgc is linear in the features)
        torch.testing.assert_close(
            model(g, feat * 2) - model.net.mlp[0].bias,
            2 * (before - model.net.mlp[0].bias),
        )


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
    assert out.ndata["out_feat_hops"].is_cuda
    model = SGAPModel("pasca_v2", 4, 3).to("cuda")
    logits = model(g, g.ndata["feat"], torch.tensor([0, 1], device="cuda"))
    assert logits.is_cuda
    assert model.postprocess(g, model(g, g.ndata["feat"])).is_cuda
