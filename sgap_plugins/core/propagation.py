"""Multi-hop feature propagation: the pre-processing step of SGAP.

:func:`propagate` computes ``M = [X, m^1, …, m^K]`` into one contiguous ``[K+1, N, F]``
buffer, where ``m^t = combine(W m^{t-1}, X, t)`` for the chosen graph aggregator.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from .graph import CSRGraph
from .graph_aggregators import GraphAggregator
from .plugins import framework_adapters, resolve_graph_aggregator

MAX_HOPS = 64


def as_csr_graph(
    graph: Any, num_nodes: int | None = None, edge_weight: Tensor | None = None
) -> CSRGraph:
    """Convert any supported graph to :class:`CSRGraph`: a ``CSRGraph`` (returned as is), a
    ``[2, E]`` ``edge_index`` tensor (with ``num_nodes``), a scipy sparse matrix (rows are
    destinations) or an object a registered framework adapter accepts (PyG ``Data``, DGL
    ``DGLGraph``, …)."""
    if isinstance(graph, CSRGraph):
        if edge_weight is not None:
            return graph.with_weights(edge_weight)
        return graph
    if isinstance(graph, Tensor):
        return CSRGraph.from_edge_index(graph, num_nodes, edge_weight)
    if sp.issparse(graph):
        return CSRGraph.from_scipy(graph)
    for adapter in framework_adapters():
        if adapter.accepts(graph):
            return adapter.to_csr(graph, edge_weight=edge_weight)
    raise TypeError(
        f"graph must be a CSRGraph, an edge_index tensor of shape [2, E], a scipy sparse matrix "
        f"or a graph object of an installed framework adapter; got {type(graph).__name__}"
    )


def check_features(x: Any, num_nodes: int, name: str = "x") -> Tensor:
    """Validate a node feature matrix ``[N, F]``: floating dtype, ``N`` rows, finite."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape [N, F], got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(
            f"{name} must be a floating point tensor, got dtype {x.dtype}; use {name}.float()"
        )
    if x.dim() != 2:
        raise ValueError(f"{name} must have shape [num_nodes, F], got {list(x.shape)}")
    if x.size(0) != num_nodes:
        raise ValueError(
            f"{name} has {x.size(0)} rows but the graph has num_nodes={num_nodes}; "
            "pass one feature row per node"
        )
    if x.numel() and not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).any(dim=1).sum())
        raise ValueError(
            f"{name} contains NaN or inf in {bad} row(s); impute or drop them before propagating"
        )
    return x


def check_hops(k: Any, name: str = "k") -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(k).__name__}")
    if not 0 <= k <= MAX_HOPS:
        raise ValueError(f"{name} must be in [0, {MAX_HOPS}], got {k}")
    return int(k)


def propagate(
    graph: Any,
    x: Tensor,
    k: int,
    aggregator: str | GraphAggregator = "aug_na",
    *,
    num_nodes: int | None = None,
    edge_weight: Tensor | None = None,
    dtype: torch.dtype | None = None,
    **params: Any,
) -> Tensor:
    """Propagate node features ``k`` hops and keep every hop.

    .. math::
        \\mathbf{M} = [\\mathbf{X}, \\mathbf{m}^1, \\dots, \\mathbf{m}^K], \\qquad
        \\mathbf{m}^t = \\mathrm{combine}(\\mathbf{W}\\mathbf{m}^{t-1}, \\mathbf{X}, t)

    Args:
        graph: a :class:`CSRGraph`, an ``edge_index`` ``[2, E]`` (source → destination), a
            scipy sparse matrix, or a framework graph (PyG ``Data``, DGL ``DGLGraph``).
        x: node features ``[N, F]``.
        k: number of hops, ``0 ≤ k ≤ 64``.
        aggregator: registry name (``"aug_na"``, ``"ppr"``, ``"triangle"``, or a plugin's) or
            a :class:`GraphAggregator` instance.
        num_nodes: ``N`` for an ``edge_index`` graph (default: ``x.size(0)``).
        edge_weight: optional ``[E]`` weights for an ``edge_index`` or framework graph.
        dtype: storage dtype of the output (default: ``x``'s); accumulation is in at least fp32.
        **params: aggregator parameters, e.g. ``r=0.5`` or ``alpha=0.1``.

    Returns:
        One contiguous tensor ``[k+1, N, F]``; ``out[0]`` is ``x``.
    """
    k = check_hops(k)
    agg = resolve_graph_aggregator(aggregator, **params)
    if isinstance(graph, Tensor) and num_nodes is None and isinstance(x, Tensor) and x.dim() == 2:
        num_nodes = x.size(0)
    csr = as_csr_graph(graph, num_nodes, edge_weight)
    x = check_features(x, csr.num_nodes)
    return propagate_csr(agg.transition(csr), agg, x, k, dtype=dtype)


def propagate_csr(
    transition: CSRGraph,
    agg: GraphAggregator,
    x: Tensor,
    k: int,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Propagate with an already computed transition matrix (no validation)."""
    out_dtype = dtype or x.dtype
    compute = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    out = torch.empty((k + 1, *x.shape), dtype=out_dtype, device=x.device)
    out[0] = x
    if k == 0:
        return out
    w = transition.to_torch_csr(compute).to(x.device)
    m0 = x.to(compute)
    prev = m0
    for t in range(1, k + 1):
        cur = agg.combine(w @ prev, m0, t)
        out[t] = cur
        prev = cur
    return out
