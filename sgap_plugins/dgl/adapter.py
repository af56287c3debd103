"""Conversion between ``dgl.DGLGraph`` and :class:`~sgap_plugins.core.graph.CSRGraph`.

Edges keep DGL's direction: a message flows from ``src`` to ``dst``, so node ``v`` aggregates
over its in-neighbours (row ``v`` of the CSR lists the sources of the edges into ``v``), as
``graph.update_all(fn.copy_u(...), fn.sum(...))`` does. The structure is read to the CPU,
where the transition matrix is built; propagation then runs on the features' device.

This module does not import DGL: the plugin manager builds the adapter whenever the
registry is built, and a process that never creates a ``DGLGraph`` should not pay for
importing DGL (about 1.5 s). A ``DGLGraph`` can only exist once ``dgl`` is imported, so
:meth:`DGLAdapter.accepts` looks it up in ``sys.modules``.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from ..core.graph import CSRGraph

if TYPE_CHECKING:
    import dgl


def check_homogeneous(graph: Any, name: str = "graph") -> None:
    """Raise a clear error unless ``graph`` is a homogeneous ``DGLGraph`` (not a block)."""
    import dgl

    if not isinstance(graph, dgl.DGLGraph):
        raise TypeError(f"{name} must be a dgl.DGLGraph, got {type(graph).__name__}")
    if graph.is_block:
        raise TypeError(
            f"{name} is a block (message flow graph): SGAP propagates over the full graph once, "
            "before training, so pass the DGLGraph the blocks were sampled from and train on "
            "mini-batches of node ids instead of sampled blocks"
        )
    if not graph.is_homogeneous:
        raise TypeError(
            f"{name} is a heterograph with node types {graph.ntypes} and edge types "
            f"{graph.canonical_etypes}; SGAP propagates over one node type: propagate each "
            "relation whose source and destination types agree separately, e.g. "
            "sgap_plugins.propagate(g[(ntype, etype, ntype)], g.nodes[ntype].data['feat'], k), "
            "or convert the whole graph with dgl.to_homogeneous(g)"
        )


def check_edge_weight(graph: dgl.DGLGraph, edge_weight: Any, name: str = "edge_weight") -> Tensor:
    """Accept DGL's edge weight layouts ``[E]`` and ``[E, 1]``; return ``[E]`` on the CPU,
    detached (propagation is precomputed, so no gradient flows into the weights)."""
    if not isinstance(edge_weight, Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of shape [E], got {type(edge_weight).__name__}"
        )
    e = graph.num_edges()
    if edge_weight.dim() == 2 and edge_weight.size(1) == 1:
        edge_weight = edge_weight.squeeze(1)
    if edge_weight.dim() != 1 or edge_weight.numel() != e:
        raise ValueError(
            f"{name} must have shape [num_edges] = [{e}] (or [{e}, 1]), "
            f"got {list(edge_weight.shape)}"
        )
    return edge_weight.detach().cpu()


def dgl_to_csr(graph: Any, edge_weight: Tensor | None = None, name: str = "graph") -> CSRGraph:
    """Convert a homogeneous ``DGLGraph`` (any device, int32 or int64 ids) to a CPU
    :class:`CSRGraph`; parallel edges are summed, ``edge_weight`` multiplies ``A``."""
    check_homogeneous(graph, name)
    if edge_weight is not None:
        edge_weight = check_edge_weight(graph, edge_weight)
    src, dst = graph.edges(order="eid")
    edge_index = torch.stack([src.cpu().long(), dst.cpu().long()])
    return CSRGraph.from_edge_index(edge_index, graph.num_nodes(), edge_weight)


class DGLAdapter:
    """The framework adapter of ``dgl.DGLGraph`` (edges src → dst, weights from
    ``edge_weight``), registered through the ``sgap_framework_adapters`` hook."""

    name = "dgl"

    def accepts(self, obj: Any) -> bool:
        dgl = sys.modules.get("dgl")  # no DGLGraph can exist before dgl is imported
        return dgl is not None and isinstance(obj, dgl.DGLGraph)

    def to_csr(self, obj: dgl.DGLGraph, edge_weight: Tensor | None = None) -> CSRGraph:
        return dgl_to_csr(obj, edge_weight)

    def from_csr(self, graph: CSRGraph) -> dgl.DGLGraph:
        """A CPU ``DGLGraph``; weights, when present, in ``g.edata["w"]``."""
        import dgl

        edge_index, weight = graph.to_edge_index()
        g = dgl.graph((edge_index[0], edge_index[1]), num_nodes=graph.num_nodes)
        if weight is not None:
            g.edata["w"] = weight
        return g
