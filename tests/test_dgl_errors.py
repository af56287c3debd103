"""Bad input to the DGL adapter raises errors that name the offending argument."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def graph(dgl):
    g = dgl.graph(([0, 1, 2, 3], [1, 2, 3, 0]), num_nodes=4)
    g.ndata["feat"] = torch.randn(4, 3)
    return g


def test_missing_named_features(graph):
    from sgap_plugins.dgl import SGAPPrecompute

    with pytest.raises(KeyError, match=r"no node feature 'x' \(in_feat_name\).*\['feat'\]"):
        SGAPPrecompute(2, in_feat_name="x")(graph)
    with pytest.raises(KeyError, match=r"no edge feature 'w' \(eweight_name\)"):
        SGAPPrecompute(2, eweight_name="w")(graph)


def test_wrong_feature_rows_and_columns(graph):
    from sgap_plugins.dgl import SGAPModel, SGAPPropagate

    with pytest.raises(ValueError, match=r"feat has 3 rows but the graph has num_nodes=4"):
        SGAPPropagate(2)(graph, torch.randn(3, 3))
    with pytest.raises(ValueError, match=r"feat must have shape \[num_nodes, F\]"):
        SGAPPropagate(2)(graph, torch.randn(4, 3, 2))
    with pytest.raises(ValueError, match=r"feat has 5 columns but the model was built with"):
        SGAPModel("sgc", in_feats=3, n_classes=2)(graph, torch.randn(4, 5))
    with pytest.raises(TypeError, match=r"feat must be a floating point tensor"):
        SGAPPropagate(2)(graph, torch.ones(4, 3, dtype=torch.long))
    with pytest.raises(TypeError, match=r"feat must be a torch.Tensor of shape \[N, F\], got list"):
        SGAPPropagate(2, cached=True)(graph, [[0.0] * 3] * 4)


def test_nan_features(graph):
    from sgap_plugins.dgl import SGAPModel, SGAPPrecompute

    graph.ndata["feat"][2, 1] = float("nan")
    with pytest.raises(ValueError, match=r"g.ndata\['feat'\] contains NaN or inf in 1 row"):
        SGAPPrecompute(2)(graph)
    with pytest.raises(ValueError, match=r"^feat contains NaN or inf"):
        SGAPModel("pasca_v2", 3, 2)(graph, graph.ndata["feat"])


def test_heterograph_names_the_per_relation_alternative(dgl):
    import sgap_plugins
    from sgap_plugins.dgl import SGAPPrecompute, SGAPPropagate

    hg = dgl.heterograph(
        {
            ("paper", "cites", "paper"): ([0, 1], [1, 2]),
            ("author", "writes", "paper"): ([0, 1], [1, 2]),
        }
    )
    hg.nodes["paper"].data["feat"] = torch.randn(3, 2)
    match = r"heterograph.*g\[\(ntype, etype, ntype\)\].*dgl.to_homogeneous"
    with pytest.raises(TypeError, match=match):
        SGAPPrecompute(2)(hg)
    with pytest.raises(TypeError, match=match):
        SGAPPropagate(2)(hg, torch.randn(3, 2))
    with pytest.raises(TypeError, match=match):
        sgap_plugins.propagate(hg, torch.randn(3, 2), 2)
    # the suggested alternative works
    rel = hg[("paper", "cites", "paper")]
    assert sgap_plugins.propagate(rel, hg.nodes["paper"].data["feat"], 2).shape == (3, 3, 2)


def test_block_is_refused(dgl, graph):
    from sgap_plugins.dgl import SGAPModel, SGAPPropagate

    block = dgl.to_block(graph, torch.tensor([0, 1]))
    with pytest.raises(TypeError, match=r"graph is a block.*mini-batches of node ids"):
        SGAPPropagate(2)(block, torch.randn(block.num_src_nodes(), 3))
    with pytest.raises(TypeError, match=r"graph is a block"):
        SGAPModel("sgc", 3, 2)(block, torch.randn(block.num_src_nodes(), 3))


def test_not_a_dgl_graph(graph):
    from sgap_plugins.dgl import SGAPPropagate

    with pytest.raises(TypeError, match=r"graph must be a dgl.DGLGraph, got Tensor"):
        SGAPPropagate(2)(torch.tensor([[0, 1], [1, 0]]), torch.randn(2, 3))


def test_bad_edge_weights(graph):
    from sgap_plugins.dgl import SGAPPrecompute, SGAPPropagate

    with pytest.raises(ValueError, match=r"edge_weight must have shape \[num_edges\] = \[4\]"):
        SGAPPropagate(2)(graph, graph.ndata["feat"], edge_weight=torch.ones(3))
    graph.edata["w"] = torch.tensor([1.0, -1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"edge_weight must be non-negative"):
        SGAPPrecompute(2, eweight_name="w")(graph)


def test_bad_node_ids_and_logits(graph):
    from sgap_plugins.dgl import SGAPModel

    model = SGAPModel("pasca_v3", 3, 2)
    with pytest.raises(ValueError, match=r"nids holds node ids outside \[0, 4\)"):
        model(graph, graph.ndata["feat"], torch.tensor([0, 4]))
    with pytest.raises(ValueError, match=r"nids as a boolean mask must have shape"):
        model(graph, graph.ndata["feat"], torch.tensor([True, False]))
    with pytest.raises(ValueError, match=r"logits has 3 rows but the graph has 4 nodes"):
        model.postprocess(graph, torch.randn(3, 2))


def test_bad_constructor_arguments(dgl):
    from sgap_plugins.dgl import SGAPModel, SGAPPrecompute, SGAPPropagate

    with pytest.raises(ValueError, match=r"k must be in \[0, 64\]"):
        SGAPPrecompute(-1)
    with pytest.raises(ValueError, match=r"unknown graph aggregator 'gcn'"):
        SGAPPropagate(2, aggregator="gcn")
    with pytest.raises(ValueError, match=r"alpha must be a number in the open interval"):
        SGAPPropagate(2, aggregator="ppr", alpha=1.5)
    with pytest.raises(ValueError, match=r"unknown preset 'gat'"):
        SGAPModel("gat", 3, 2)
    with pytest.raises(ValueError, match=r"in_feats must be a positive int"):
        SGAPModel("sgc", 0, 2)
