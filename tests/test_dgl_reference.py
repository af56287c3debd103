"""The DGL adapter against DGL's own modules, on Cora (compat env: DGL installed).

Where the definitions coincide the results must agree to 1e-5:

* ``SGAPPrecompute(k, aggregator="aug_na")`` = ``dgl.SIGNDiffusion(k, diffuse_op="gcn")`` on a
  graph that already has self loops (DGL does not add them; SGAP adds the missing ones);
* ``aggregator="ppr"`` = ``dgl.nn.APPNPConv(k, alpha)`` (symmetric graph with self loops);
* with ``add_self_loops=False``, ``aug_na``/``ppr`` = ``dgl.SIGNDiffusion`` ``"gcn"``/``"ppr"``
  on graphs without self loops, nodes without in-neighbours included (CiteSeer);
* the ``sgc`` preset's propagation = ``dgl.nn.SGConv(k=K)`` with an identity linear layer;
* ``SGAPModel.postprocess`` with ``ga_post="ppr"`` (``alpha=a``) =
  ``dgl.nn.LabelPropagation(k_post, alpha=1-a, norm_type="sym", clamp=False)`` on the
  softmax of the logits with no mask (``aug_na`` with ``r=0.5``: ``alpha=1``).
"""

from __future__ import annotations

import pytest
import torch

ATOL = 1e-5


@pytest.fixture
def cora_graph(dgl, request):
    """Cora as a DGLGraph with exactly one self loop per node and ``ndata["feat"]``."""
    cora = request.getfixturevalue("cora")  # after the DGL check: no load where DGL is absent
    g = dgl.graph((cora.edge_index[0], cora.edge_index[1]), num_nodes=cora.num_nodes)
    g = dgl.add_self_loop(dgl.remove_self_loop(g))
    g.ndata["feat"] = cora.x
    return g


@pytest.mark.parametrize("k", [1, 3])
def test_precompute_aug_na_equals_sign_diffusion_gcn(dgl, cora_graph, k):
    from sgap_plugins.dgl import SGAPPrecompute

    ours = SGAPPrecompute(k, aggregator="aug_na")(cora_graph.clone())
    ref = dgl.SIGNDiffusion(k, diffuse_op="gcn")(cora_graph.clone())
    for i in range(1, k + 1):
        torch.testing.assert_close(
            ours.ndata[f"out_feat_{i}"], ref.ndata[f"out_feat_{i}"], atol=ATOL, rtol=0
        )
    assert set(ours.ndata) == set(ref.ndata)  # SIGNDiffusion's fields, nothing more
    stacked = SGAPPrecompute(k, hops_feat_name="hops")(cora_graph.clone()).ndata["hops"]
    assert stacked.shape == (cora_graph.num_nodes(), k + 1, cora_graph.ndata["feat"].size(1))
    torch.testing.assert_close(stacked[:, 0], cora_graph.ndata["feat"], atol=0, rtol=0)
    torch.testing.assert_close(stacked[:, k], ref.ndata[f"out_feat_{k}"], atol=ATOL, rtol=0)


def test_precompute_weighted_directed_equals_sign_diffusion(dgl, cora_graph):
    """Edge direction and edge weights: drop a third of the edges (the graph becomes
    directed), weigh the rest; both sides normalise by weighted in-degrees."""
    gen = torch.Generator().manual_seed(0)
    keep = torch.rand(cora_graph.num_edges(), generator=gen) > 0.33
    src, dst = cora_graph.edges()
    loops = src == dst
    keep |= loops  # keep every self loop
    g = dgl.graph((src[keep], dst[keep]), num_nodes=cora_graph.num_nodes())
    g.ndata["feat"] = cora_graph.ndata["feat"]
    g.edata["w"] = torch.rand(g.num_edges(), generator=gen) + 0.5
    from sgap_plugins.dgl import SGAPPrecompute

    ours = SGAPPrecompute(3, eweight_name="w")(g.clone())
    ref = dgl.SIGNDiffusion(3, eweight_name="w", diffuse_op="gcn")(g.clone())
    torch.testing.assert_close(ours.ndata["out_feat_3"], ref.ndata["out_feat_3"], atol=ATOL, rtol=0)
    unweighted = SGAPPrecompute(3)(g.clone())
    assert not torch.allclose(unweighted.ndata["out_feat_3"], ours.ndata["out_feat_3"])


@pytest.mark.parametrize("alpha", [0.1, 0.3])
def test_precompute_ppr_equals_appnp_conv(dgl, cora_graph, alpha):
    from sgap_plugins.dgl import SGAPPrecompute, SGAPPropagate

    k = 5
    feat = cora_graph.ndata["feat"]
    ref = dgl.nn.APPNPConv(k, alpha)(cora_graph, feat)
    g = SGAPPrecompute(k, aggregator="ppr", alpha=alpha)(cora_graph.clone())
    torch.testing.assert_close(g.ndata[f"out_feat_{k}"], ref, atol=ATOL, rtol=0)
    hops = SGAPPropagate(k, "ppr", alpha=alpha)(cora_graph, feat)
    torch.testing.assert_close(hops[:, k], ref, atol=ATOL, rtol=0)
    # SIGNDiffusion's "ppr" is the same operator
    sign = dgl.SIGNDiffusion(k, diffuse_op="ppr", alpha=alpha)(cora_graph.clone())
    torch.testing.assert_close(g.ndata["out_feat_2"], sign.ndata["out_feat_2"], atol=ATOL, rtol=0)


def test_sgc_preset_propagation_equals_sgconv(dgl, cora_graph):
    from sgap_plugins.dgl import SGAPModel

    feat = cora_graph.ndata["feat"]
    f = feat.size(1)
    model = SGAPModel.from_preset("sgc", in_feats=f, n_classes=7)
    k = model.config.k_pre
    conv = dgl.nn.SGConv(f, f, k=k, bias=False)
    with torch.no_grad():
        conv.fc.weight.copy_(torch.eye(f))
    ref = conv(cora_graph, feat)
    hops = model.propagation(cora_graph, feat)
    assert hops.shape == (cora_graph.num_nodes(), k + 1, f)
    torch.testing.assert_close(hops[:, k], ref, atol=ATOL, rtol=0)
    # The whole sgc model is SGConv itself once the linear layers hold the same weights.
    sgconv = dgl.nn.SGConv(f, 7, k=k)
    sgconv.fc.load_state_dict(model.net.mlp[0].state_dict())
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(
            model(cora_graph, feat), sgconv(cora_graph, feat), atol=ATOL, rtol=0
        )


@pytest.mark.parametrize(
    ("ga_post", "params", "lp_alpha"), [("ppr", {"alpha": 0.3}, 0.7), ("aug_na", {}, 1.0)]
)
def test_postprocess_equals_label_propagation(dgl, cora_graph, ga_post, params, lp_alpha):
    from sgap_plugins.dgl import SGAPModel

    feat = cora_graph.ndata["feat"]
    model = SGAPModel.from_preset(
        "pasca_v3", in_feats=feat.size(1), n_classes=7, ga_post=ga_post, ga_post_params=params
    )
    model.eval()
    with torch.no_grad():
        logits = model(cora_graph, feat)
    ours = model.postprocess(cora_graph, logits)
    lp = dgl.nn.LabelPropagation(
        model.config.k_post, alpha=lp_alpha, norm_type="sym", clamp=False, normalize=False
    )
    ref = lp(cora_graph, torch.softmax(logits, dim=-1))
    torch.testing.assert_close(ours, ref, atol=ATOL, rtol=0)


@pytest.fixture
def citeseer_graph(dgl, data_root):
    """CiteSeer as a DGLGraph without self loops: 48 nodes have no edge at all."""
    from sgap_plugins.datasets import load_dataset

    citeseer = load_dataset("citeseer", data_root)
    ei = citeseer.edge_index
    g = dgl.graph((ei[0], ei[1]), num_nodes=citeseer.num_nodes)
    g.ndata["feat"] = citeseer.x
    return g


@pytest.mark.parametrize(("diffuse_op", "aggregator"), [("gcn", "aug_na"), ("ppr", "ppr")])
def test_isolated_nodes_equal_sign_diffusion_without_self_loops(
    dgl, citeseer_graph, diffuse_op, aggregator
):
    """Without self loops SIGNDiffusion gives a node with no in-neighbours a zero raw step
    (zero hops for ``gcn``, ``α X`` for ``ppr``); so does SGAP unless ``keep_isolated``."""
    from sgap_plugins.dgl import SGAPPrecompute

    g = citeseer_graph
    isolated = g.in_degrees() == 0
    assert int(isolated.sum()) == 48  # the premise
    k, alpha = 2, 0.2
    params = {"alpha": alpha} if aggregator == "ppr" else {}
    ref = dgl.SIGNDiffusion(k, diffuse_op=diffuse_op, alpha=alpha)(g.clone())
    ours = SGAPPrecompute(k, aggregator=aggregator, add_self_loops=False, **params)(g.clone())
    kept = SGAPPrecompute(
        k, aggregator=aggregator, add_self_loops=False, keep_isolated=True, **params
    )(g.clone())
    feat = g.ndata["feat"]
    for i in range(1, k + 1):
        name = f"out_feat_{i}"
        torch.testing.assert_close(ours.ndata[name], ref.ndata[name], atol=ATOL, rtol=0)
        torch.testing.assert_close(
            kept.ndata[name][~isolated], ref.ndata[name][~isolated], atol=ATOL, rtol=0
        )
        torch.testing.assert_close(kept.ndata[name][isolated], feat[isolated], atol=ATOL, rtol=0)


def test_directed_sources_equal_sign_diffusion(dgl):
    """A directed graph whose sources have out- but no in-edges: SIGNDiffusion's ``gcn``
    weighs an edge by the in-degrees of both ends, so a source sends nothing and gets zero."""
    from sgap_plugins.dgl import SGAPPrecompute, SGAPPropagate

    gen = torch.Generator().manual_seed(0)
    src = torch.randint(0, 40, (150,), generator=gen)
    dst = torch.randint(10, 40, (150,), generator=gen)  # nodes 0-9 receive nothing
    keep = src != dst
    g = dgl.graph((src[keep], dst[keep]), num_nodes=45)  # 40-44 isolated
    g.ndata["feat"] = torch.randn(45, 6, generator=gen)
    ref = dgl.SIGNDiffusion(3, diffuse_op="gcn")(g.clone())
    ours = SGAPPrecompute(3, add_self_loops=False)(g.clone())
    for i in (1, 2, 3):
        name = f"out_feat_{i}"
        torch.testing.assert_close(ours.ndata[name], ref.ndata[name], atol=ATOL, rtol=0)
    hops = SGAPPropagate(3, add_self_loops=False)(g, g.ndata["feat"])
    torch.testing.assert_close(hops[:, 3], ref.ndata["out_feat_3"], atol=ATOL, rtol=0)
