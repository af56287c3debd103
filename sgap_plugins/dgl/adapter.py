"""Conversion between ``dgl.DGLGraph`` and :class:`~sgap_plugins.core.graph.CSRGraph`."""

from __future__ import annotations

from typing import Any

import dgl
import torch
from torch import Tensor

from ..core.graph import CSRGraph


def check_homogeneous(graph: Any) -> None:
    if not isinstance(graph, dgl.DGLGraph):
        raise TypeError(f"graph must be a dgl.DGLGraph, got {type(graph).__name__}")
    if not graph.is_homogeneous:
        raise TypeError(
            "heterographs are not supported: propagate each relation separately, e.g. "
            "sgap_plugins.propagate(g[etype], feat, k) for every etype in g.canonical_etypes, "
            "or convert with dgl.to_homogeneous(g)"
        )
    if graph.is_block:
        raise TypeError(
            "blocks (message flow graphs) are not supported: SGAP propagates over the full "
            "graph once; pass the DGLGraph the blocks were sampled from"
        )


class DGLAdapter:
    """``dgl.DGLGraph`` (edges src → dst, weights from ``edge_weight``)."""

    name = "dgl"

    def accepts(self, obj: Any) -> bool:
        return isinstance(obj, dgl.DGLGraph)

    def to_csr(self, obj: dgl.DGLGraph, edge_weight: Tensor | None = None) -> CSRGraph:
        check_homogeneous(obj)
        src, dst = obj.edges()
        edge_index = torch.stack([src, dst]).cpu()
        if edge_weight is not None:
            edge_weight = edge_weight.detach().cpu()
        return CSRGraph.from_edge_index(edge_index, obj.num_nodes(), edge_weight)

    def from_csr(self, graph: CSRGraph) -> dgl.DGLGraph:
        edge_index, weight = graph.to_edge_index()
        g = dgl.graph((edge_index[0], edge_index[1]), num_nodes=graph.num_nodes)
        if weight is not None:
            g.edata["w"] = weight
        return g
