"""Conversion between PyG ``Data`` and :class:`~sgap_plugins.core.graph.CSRGraph`.

This module imports PyG only when a conversion runs: a ``Data`` object can only exist once
``torch_geometric`` is imported, so :meth:`PyGAdapter.accepts` looks it up in ``sys.modules``.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from torch import Tensor

from ..core.graph import CSRGraph

if TYPE_CHECKING:
    from torch_geometric.data import Data


def check_homogeneous(data: Any) -> None:
    from torch_geometric.data import HeteroData

    if isinstance(data, HeteroData):
        raise TypeError(
            "HeteroData is not supported yet: convert with data.to_homogeneous() or propagate "
            "each edge type separately with sgap_plugins.propagate(data[edge_type].edge_index, "
            "x, k, num_nodes=...)"
        )


class PyGAdapter:
    """PyG ``Data`` (``edge_index`` source → target, optional ``edge_weight``)."""

    name = "pyg"

    def accepts(self, obj: Any) -> bool:
        if "torch_geometric" not in sys.modules:
            return False
        from torch_geometric.data import Data, HeteroData

        return isinstance(obj, (Data, HeteroData))

    def to_csr(self, obj: Data, edge_weight: Tensor | None = None) -> CSRGraph:
        check_homogeneous(obj)
        if obj.edge_index is None:
            raise ValueError(
                "data has no edge_index; convert a SparseTensor adj_t with "
                "T.ToUndirected/ToSparseTensor(remove_edge_index=False) or set data.edge_index"
            )
        if edge_weight is None:
            edge_weight = obj.edge_weight if "edge_weight" in obj else None
        return CSRGraph.from_edge_index(obj.edge_index, obj.num_nodes, edge_weight)

    def from_csr(self, graph: CSRGraph) -> Data:
        from torch_geometric.data import Data

        edge_index, weight = graph.to_edge_index()
        data = Data(edge_index=edge_index, num_nodes=graph.num_nodes)
        if weight is not None:
            data.edge_weight = weight
        return data
