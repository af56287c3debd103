"""Graph aggregators: the parameter-free propagation rules of pre- and post-processing.

A graph aggregator defines one propagation step through two methods:

* :meth:`GraphAggregator.transition` returns the weighted matrix ``W`` (a :class:`CSRGraph`
  whose ``weight`` holds ``W_vu``) so that the raw step is ``(W m)_v = Σ_u W_vu m_u``;
* :meth:`GraphAggregator.combine` turns that raw step into hop ``t`` (default: unchanged;
  personalised PageRank mixes in the hop-0 message).

A plugin adds an aggregator by subclassing :class:`GraphAggregator`, giving it a unique
``name`` and writing those two methods; it is then usable everywhere ``propagate`` is.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import Tensor

from .graph import CSRGraph


def _inv_pow(deg: Tensor, exponent: float) -> Tensor:
    """``deg ** -exponent`` with ``0 ** -e := 0`` so that zero-degree nodes send nothing
    (``exponent == 0`` is the identity factor ``1``: ``r = 0`` rows must still sum to 1)."""
    if exponent == 0:
        return torch.ones_like(deg)
    out = deg.pow(-exponent)
    out[deg == 0] = 0.0
    return out


def keep_isolated(graph: CSRGraph, weight: Tensor) -> CSRGraph:
    """Give every node with an empty row a unit self loop, so a node with no in-neighbours
    keeps its own message instead of collapsing to zero.

    The ``keep_isolated=True`` option of :class:`AugNormAdj` and
    :class:`PersonalizedPageRank`; by default an empty row stays empty, as the formula (and
    PyG's ``T.SIGN``, DGL's ``SIGNDiffusion``) gives."""
    counts = graph.rowptr[1:] - graph.rowptr[:-1]
    empty = torch.nonzero(counts == 0).flatten()
    if empty.numel() == 0:
        return graph.with_weights(weight)
    # Rebuild the CSR with one extra entry per empty row (cheap: only empty rows change).
    extra = torch.zeros(graph.num_nodes, dtype=torch.int64)
    extra[empty] = 1
    rowptr = torch.zeros(graph.num_nodes + 1, dtype=torch.int64)
    rowptr[1:] = torch.cumsum(counts + extra, 0)
    new_e = int(rowptr[-1])
    col = torch.empty(new_e, dtype=graph.col.dtype)
    w = torch.empty(new_e, dtype=weight.dtype)
    # Positions of the old edges in the new arrays: shift by the extras of earlier rows.
    shift = torch.repeat_interleave(torch.cumsum(extra, 0) - extra, counts)
    old_pos = torch.arange(graph.num_edges) + shift
    col[old_pos] = graph.col
    w[old_pos] = weight
    col[rowptr[empty]] = empty.to(col.dtype)
    w[rowptr[empty]] = 1.0
    return CSRGraph(rowptr, col, w, graph.num_nodes)


class GraphAggregator:
    """Base class of graph aggregators.

    Subclasses set a unique class attribute ``name`` and implement :meth:`transition`;
    they override :meth:`combine` when hop ``t`` is more than the raw step ``W m^{t-1}``.
    Constructor keyword arguments are the aggregator's parameters and must be validated there.
    """

    name: ClassVar[str] = ""

    def transition(self, graph: CSRGraph) -> CSRGraph:
        """The one-step matrix ``W`` as a graph with explicit weights."""
        raise NotImplementedError

    def combine(self, wm: Tensor, m0: Tensor, t: int) -> Tensor:
        """Hop ``t`` from the raw step ``wm = W m^{t-1}`` and the hop-0 message ``m0``."""
        return wm

    @property
    def params(self) -> dict[str, Any]:
        """The constructor arguments, for ``repr`` and cache keys."""
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"


class _LoopOptions(GraphAggregator):
    """The options :class:`AugNormAdj` and :class:`PersonalizedPageRank` share: whether
    ``Ã = A + I`` (``add_self_loops``) and whether an empty row keeps its own message
    (``keep_isolated``); the fused kernels read both."""

    def __init__(self, add_self_loops: bool, keep_isolated: bool) -> None:
        self.add_self_loops = bool(add_self_loops)
        self.keep_isolated = bool(keep_isolated)

    @property
    def params(self) -> dict[str, Any]:
        return {"add_self_loops": self.add_self_loops, "keep_isolated": self.keep_isolated}


class AugNormAdj(_LoopOptions):
    """Augmented normalised adjacency (``aug_na``):

    .. math::
        \\mathbf{m}^t_v = \\sum_{u \\in \\tilde{\\mathcal{N}}(v)}
        \\tilde{d}_v^{\\,r-1} \\, \\tilde{d}_u^{\\,-r} \\, w_{vu} \\, \\mathbf{m}^{t-1}_u

    with ``Ã = A + I`` (when ``add_self_loops``) and ``d̃`` the row sums of ``Ã``.
    ``r = 0.5`` is GCN's ``D̃^{-1/2} Ã D̃^{-1/2}``, ``r = 0`` the random walk ``D̃^{-1} Ã``,
    ``r = 1`` the reverse random walk ``Ã D̃^{-1}``. A zero degree contributes a zero factor
    (``0^{-e} := 0``), so without self loops a node with no in-neighbours (or only zero-weight
    ones) gets a zero row, as in PyG's ``T.SIGN`` and DGL's ``SIGNDiffusion``; with
    ``keep_isolated=True`` it keeps its own message instead.

    Args:
        r: normalisation exponent in ``[0, 1]``.
        add_self_loops: add the remaining self loops (existing ones are not doubled); then no
            row is empty and ``keep_isolated`` changes nothing.
        keep_isolated: give a node of in-degree zero a unit self loop (``m^t_v = m^{t-1}_v``)
            instead of the zero row of the formula.
    """

    name = "aug_na"

    def __init__(
        self, r: float = 0.5, add_self_loops: bool = True, keep_isolated: bool = False
    ) -> None:
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0.0 <= r <= 1.0:
            raise ValueError(f"r must be a number in [0, 1], got {r!r}")
        super().__init__(add_self_loops, keep_isolated)
        self.r = float(r)

    @property
    def params(self) -> dict[str, Any]:
        return {"r": self.r, **super().params}

    def transition(self, graph: CSRGraph) -> CSRGraph:
        if self.add_self_loops:
            graph = graph.add_self_loops()
        if self.keep_isolated and graph.weight is not None and bool((graph.weight == 0).any()):
            # Zero-weight edges carry nothing; dropping them makes a node whose in-edges all
            # weigh zero an empty row, which keep_isolated() then gives its own message.
            ei, _ = graph.to_edge_index()
            nonzero = graph.weight != 0
            graph = CSRGraph.from_edge_index(ei[:, nonzero], graph.num_nodes, graph.weight[nonzero])
        deg = graph.in_degree()
        rows = graph.row_index()
        w = torch.ones(graph.num_edges) if graph.weight is None else graph.weight.float()
        w = _inv_pow(deg, 1.0 - self.r)[rows] * w * _inv_pow(deg, self.r)[graph.col.long()]
        return keep_isolated(graph, w) if self.keep_isolated else graph.with_weights(w)


class PersonalizedPageRank(_LoopOptions):
    """Personalised PageRank (``ppr``), APPNP's propagation:

    .. math::
        \\mathbf{m}^t_v = \\alpha \\, \\mathbf{m}^0_v + (1 - \\alpha)
        \\sum_{u \\in \\tilde{\\mathcal{N}}(v)}
        \\frac{w_{vu}}{\\sqrt{\\tilde{d}_v \\tilde{d}_u}} \\mathbf{m}^{t-1}_u

    Without self loops a node with no in-neighbours has a zero raw step, so its hops are
    ``α m^0_v`` (PyG's ``APPNP`` and DGL's ``SIGNDiffusion(diffuse_op="ppr")`` give the same);
    with ``keep_isolated=True`` they stay ``m^0_v``.

    Args:
        alpha: teleport probability in ``(0, 1)``; the design space uses 0.1, 0.2, 0.3.
        add_self_loops: add the remaining self loops (existing ones are not doubled).
        keep_isolated: a node of in-degree zero keeps its own message in the raw step, as
            in :class:`AugNormAdj`.
    """

    name = "ppr"

    def __init__(
        self, alpha: float = 0.1, add_self_loops: bool = True, keep_isolated: bool = False
    ) -> None:
        if (
            isinstance(alpha, bool)
            or not isinstance(alpha, (int, float))
            or not 0.0 < alpha < 1.0
            or math.isnan(alpha)
        ):
            raise ValueError(f"alpha must be a number in the open interval (0, 1), got {alpha!r}")
        super().__init__(add_self_loops, keep_isolated)
        self.alpha = float(alpha)
        self._sym = AugNormAdj(
            r=0.5, add_self_loops=self.add_self_loops, keep_isolated=self.keep_isolated
        )

    @property
    def params(self) -> dict[str, Any]:
        return {"alpha": self.alpha, **super().params}

    def transition(self, graph: CSRGraph) -> CSRGraph:
        return self._sym.transition(graph)

    def combine(self, wm: Tensor, m0: Tensor, t: int) -> Tensor:
        return wm.mul_(1.0 - self.alpha).add_(m0, alpha=self.alpha)


class TriangleMotif(GraphAggregator):
    """Triangle-motif adjacency (``triangle``, MotifNet):

    .. math::
        \\mathbf{m}^t_v = \\sum_u \\frac{\\tilde{T}_{vu}}{d^{tri}_v} \\mathbf{m}^{t-1}_u,
        \\qquad \\tilde{T} = T + I, \\quad d^{tri}_v = \\sum_u \\tilde{T}_{vu}

    where ``T_vu`` counts the triangles of the undirected simple graph containing edge
    ``(v, u)``. A node in no triangle keeps its own message. Edge weights are ignored: the
    motif adjacency counts structure only.
    """

    name = "triangle"

    def transition(self, graph: CSRGraph) -> CSRGraph:
        sym = graph.symmetrize()
        t = sym.triangle_counts()
        rows = sym.row_index()
        cols = sym.col.long()
        t = torch.where(rows == cols, torch.zeros_like(t), t)
        pruned = t > 0
        edge_index = torch.stack([cols[pruned], rows[pruned]])
        motif = CSRGraph.from_edge_index(edge_index, sym.num_nodes, t[pruned]).add_self_loops()
        deg = motif.in_degree()
        w = motif.weight / deg[motif.row_index()]
        return motif.with_weights(w)
