"""DGL graph transforms: SGAP pre-processing in the form of ``dgl.SIGNDiffusion``."""

from __future__ import annotations

from typing import Any

import dgl
from dgl.transforms import BaseTransform

from .._rows import (
    Rows,
    check_rows_argument,
    check_rows_budget,
    describe_rows,
    resolve_rows,
)
from ..core.graph_aggregators import GraphAggregator
from ..core.plugins import resolve_graph_aggregator
from ..core.propagation import (
    check_features,
    check_hops,
    propagate,
    propagate_csr,
)
from .adapter import check_homogeneous, dgl_to_csr


class SGAPPrecompute(BaseTransform):
    r"""Precompute ``k`` hops of SGAP propagation into ``g.ndata`` (SGAP's pre-processing).

    .. math::
        \mathbf{M} = [\mathbf{X}, \mathbf{m}^1, \dots, \mathbf{m}^k], \qquad
        \mathbf{m}^t = \mathrm{combine}(\mathbf{W}\mathbf{m}^{t-1}, \mathbf{X}, t)

    for the chosen graph aggregator: ``aug_na`` has
    :math:`\mathbf{W} = \tilde{\mathbf{D}}^{r-1}\tilde{\mathbf{A}}\tilde{\mathbf{D}}^{-r}`
    (``r = 0.5``: GCN's normalisation, ``diffuse_op="gcn"`` of :class:`dgl.SIGNDiffusion`);
    ``ppr`` adds the teleport :math:`\alpha\mathbf{X}` (``diffuse_op="ppr"``, APPNP);
    ``triangle`` and plugin aggregators work the same way. Messages flow along edges
    ``src → dst``; ``Ã = A + I`` gets the self loops the graph lacks (existing ones are not
    doubled), and ``d̃`` are the (weighted) in-degrees of ``Ã``.

    The argument and output names are those of :class:`dgl.SIGNDiffusion`: it reads
    ``g.ndata[in_feat_name]`` (``[N, F]``) and writes ``g.ndata[f"{out_feat_name}_{i}"]``
    (``[N, F]``, each in its own storage) for ``i = 1 … k``. With ``add_self_loops=False``
    (on a graph without self loops) ``aug_na`` is ``SIGNDiffusion(diffuse_op="gcn")`` and
    ``ppr`` is ``diffuse_op="ppr"``, nodes without in-neighbours included (their hops are
    zero, resp. ``α X``, unless ``keep_isolated=True``).

    With ``hops_feat_name`` set it instead writes every hop stacked in one field,
    ``g.ndata[hops_feat_name]`` of shape ``[N, k+1, F]`` (hop 0 is the input), the layout of
    :class:`SGAPModel`'s message aggregators; it is a transposed view of the propagation
    buffer (no copy), and the per-hop fields are then not written, so no hop is stored twice.

    Like DGL's transforms (``SIGNDiffusion``, ``GCNNorm``, ``AddSelfLoop`` with features), it
    **modifies** ``g`` **in place** and returns the same object. A DGL dataset applies its
    ``transform=`` on every ``dataset[i]``, recomputing each time; apply it once instead:
    ``g = SGAPPrecompute(3)(dataset[0])``.

    With ``rows`` it leaves ``g`` as it is and returns the **induced subgraph on** ``rows``,
    **in the order of** ``rows``: ``dgl.node_subgraph(g, rows)`` (every node and edge feature
    sliced, ``ndata[dgl.NID]`` and ``edata[dgl.EID]`` the ids in ``g``), whose output fields
    (``[R, F]``, or ``[R, k+1, F]`` stacked) hold the hops of the **full** graph: they equal
    the rows ``rows`` of the fields written without ``rows``, bit for bit. Every hop is
    still computed for all ``N`` nodes, one fp32 column block at a time within
    ``memory_budget`` bytes (see :func:`~sgap_plugins.core.propagation.propagate`), but only
    ``R`` rows of each are kept: GAMLP's way of precomputing the labelled nodes of a huge
    graph (papers100M: 1.5M of 111M nodes).

    Args:
        k: number of hops, ``0 ≤ k ≤ 64``.
        in_feat_name: node feature to propagate.
        out_feat_name: prefix of the output fields.
        eweight_name: edge feature holding weights ``[E]`` or ``[E, 1]`` that multiply ``A``;
            ``None`` treats the graph as unweighted.
        aggregator: graph aggregator registry name (``"aug_na"``, ``"ppr"``, ``"triangle"``,
            or a plugin's) or a :class:`~sgap_plugins.core.graph_aggregators.GraphAggregator`.
        hops_feat_name: write all hops stacked as ``g.ndata[hops_feat_name]``
            (``[N, k+1, F]``) instead of the per-hop fields.
        rows: keep these nodes only (see above): node ids ``[R]`` (distinct, any order), a
            boolean mask ``[N]``, or the name of a node feature holding either, looked up in
            each graph's ``ndata`` (e.g. ``"train_mask"``).
        memory_budget: bytes of working memory of the ``rows`` computation (default 1 GiB;
            needs ``rows``).
        **params: aggregator parameters (``r``, ``alpha``, ``add_self_loops``,
            ``keep_isolated``, ...).

    Example:
        >>> g = SGAPPrecompute(k=3, aggregator="ppr", alpha=0.1)(g)
        >>> g.ndata["out_feat_3"].shape
        torch.Size([N, F])
        >>> g = SGAPPrecompute(k=3, hops_feat_name="hops")(g)
        >>> g.ndata["hops"].shape
        torch.Size([N, 4, F])
        >>> train = SGAPPrecompute(k=3, rows="train_mask")(g)  # g is left as it was
        >>> train.ndata["out_feat_3"].shape, train.ndata[dgl.NID].shape
        (torch.Size([R, F]), torch.Size([R]))
    """

    def __init__(
        self,
        k: int,
        in_feat_name: str = "feat",
        out_feat_name: str = "out_feat",
        eweight_name: str | None = None,
        aggregator: str | GraphAggregator = "aug_na",
        hops_feat_name: str | None = None,
        rows: Rows | None = None,
        memory_budget: int | None = None,
        **params: Any,
    ) -> None:
        self.k = check_hops(k)
        self.in_feat_name = in_feat_name
        self.out_feat_name = out_feat_name
        self.eweight_name = eweight_name
        self.aggregator = resolve_graph_aggregator(aggregator, **params)
        if hops_feat_name is not None and (
            not isinstance(hops_feat_name, str) or not hops_feat_name
        ):
            raise TypeError(
                f"hops_feat_name must be a non-empty feature name or None, got {hops_feat_name!r}"
            )
        self.hops_feat_name = hops_feat_name
        self.rows = check_rows_argument(rows)
        self.memory_budget = check_rows_budget(self.rows, memory_budget)

    def __call__(self, g: dgl.DGLGraph) -> dgl.DGLGraph:
        check_homogeneous(g, "g")
        if self.in_feat_name not in g.ndata:
            raise KeyError(
                f"g has no node feature {self.in_feat_name!r} (in_feat_name); its node "
                f"features are {sorted(g.ndata.keys())}"
            )
        edge_weight = None
        if self.eweight_name is not None:
            if self.eweight_name not in g.edata:
                raise KeyError(
                    f"g has no edge feature {self.eweight_name!r} (eweight_name); its edge "
                    f"features are {sorted(g.edata.keys())}; pass eweight_name=None for an "
                    "unweighted graph"
                )
            edge_weight = g.edata[self.eweight_name]
        graph = dgl_to_csr(g, edge_weight, "g")
        name = f"g.ndata[{self.in_feat_name!r}]"
        x = check_features(g.ndata[self.in_feat_name], graph.num_nodes, name)
        if self.rows is None:
            hops = propagate_csr(graph, self.aggregator, x, self.k)  # [k+1, N, F]
        else:
            ids = resolve_rows(self.rows, g.ndata, graph.num_nodes, "g.ndata")
            hops = propagate(  # [k+1, R, F]
                graph, x, self.k, self.aggregator, rows=ids, memory_budget=self.memory_budget
            )
            g = dgl.node_subgraph(g, ids.to(g.device))  # keeps the order of ids
        if self.hops_feat_name is not None:
            g.ndata[self.hops_feat_name] = hops.transpose(0, 1)
            return g
        for i in range(1, self.k + 1):
            # An own copy per hop, as SIGNDiffusion has: a view would keep the whole
            # [k+1, N, F] buffer (hop 0 a second copy of the input) alive with the graph.
            g.ndata[f"{self.out_feat_name}_{i}"] = hops[i].clone()
        return g

    def __repr__(self) -> str:
        rows = None if self.rows is None else describe_rows(self.rows)
        return (
            f"{type(self).__name__}(k={self.k}, in_feat_name={self.in_feat_name!r}, "
            f"out_feat_name={self.out_feat_name!r}, eweight_name={self.eweight_name!r}, "
            f"aggregator={self.aggregator!r}, hops_feat_name={self.hops_feat_name!r}, "
            f"rows={rows})"
        )
