"""DGL ``nn`` modules: SGAP propagation and the full SGAP model, ``forward(graph, feat)``."""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import dgl
import torch
from torch import Tensor, nn

from ..core.arguments import check_positive_int
from ..core.config import SGAPConfig, preset
from ..core.fingerprint import aggregator_identity, content_hash, graph_fingerprint
from ..core.graph_aggregators import GraphAggregator
from ..core.model import SGAPModel as CoreSGAPModel
from ..core.plugins import resolve_graph_aggregator
from ..core.propagation import check_features, check_hops, propagate_csr
from ..core.trainer import gather_hops
from .adapter import check_homogeneous, dgl_to_csr


class SGAPPropagate(nn.Module):
    r"""Parameter-free multi-hop propagation that keeps every hop.

    .. math::
        \mathbf{M}_v = [\mathbf{x}_v, \mathbf{m}^1_v, \dots, \mathbf{m}^k_v], \qquad
        \mathbf{m}^t = \mathrm{combine}(\mathbf{W}\mathbf{m}^{t-1}, \mathbf{X}, t)

    with the graph aggregator's one-step matrix ``W`` (``aug_na``:
    :math:`\tilde{\mathbf{D}}^{r-1}\tilde{\mathbf{A}}\tilde{\mathbf{D}}^{-r}`, ``r = 0.5`` by
    default; ``ppr``: :math:`(1-\alpha)\hat{\mathbf{A}}\mathbf{m}^{t-1} + \alpha\mathbf{X}`).
    Messages flow ``src → dst``. With ``aggregator="aug_na"`` the last hop is
    :class:`dgl.nn.SGConv`'s propagation and with ``"ppr"`` :class:`dgl.nn.APPNPConv`'s, on a
    graph that has self loops.

    The propagation is SGAP's pre-processing: a constant computed without gradient (no
    gradient flows to ``feat`` or ``edge_weight``) by the core's propagation kernels.

    With ``cached=True`` (as in :class:`dgl.nn.SGConv`) the hops of the last computation are
    kept and returned again while they are still the answer. A call with the very objects of
    the cached call (the same graph structure, the same ``feat`` and ``edge_weight`` tensors,
    not modified in place since) is answered at once; any other call compares fingerprints
    of what determines the result (the graph's structure and weights, the features' values,
    the aggregator's code identity and parameters, ``k``) and recomputes when one differs,
    so a different graph of the same size, new feature values or another aggregator never
    get stale hops. In-place changes are seen through the tensors' version counters, so a
    write that bypasses torch (through a NumPy view, say) is not: call :meth:`clear_cache`
    after one. :meth:`clear_cache` frees the cached hops.

    Args:
        k: number of hops, ``0 ≤ k ≤ 64``.
        aggregator: graph aggregator registry name or instance.
        cached: keep the hops of the last call for the next calls on the same input.
        **params: aggregator parameters (``r``, ``alpha``, ``add_self_loops``,
            ``keep_isolated``, ...).
    """

    def __init__(
        self,
        k: int,
        aggregator: str | GraphAggregator = "aug_na",
        cached: bool = False,
        **params: Any,
    ) -> None:
        super().__init__()
        self.k = check_hops(k)
        self.aggregator = resolve_graph_aggregator(aggregator, **params)
        self.cached = bool(cached)
        self._cache: _HopCache | None = None

    def clear_cache(self) -> None:
        """Drop the cached hops; the next call propagates."""
        self._cache = None

    def reset_parameters(self) -> None:
        """There are no parameters; clears the cached hops (:meth:`clear_cache`)."""
        self.clear_cache()

    def forward(
        self, graph: dgl.DGLGraph, feat: Tensor, edge_weight: Tensor | None = None
    ) -> Tensor:
        """Propagate ``feat`` over ``graph``.

        Args:
            graph: a homogeneous ``DGLGraph`` (not a block), on any device.
            feat: node features ``[N, F]``, finite, floating point.
            edge_weight: optional edge weights ``[E]`` or ``[E, 1]`` that multiply ``A``.

        Returns:
            ``[N, k+1, F]`` on ``feat``'s device; ``out[:, 0]`` is ``feat``. It is a view of
            one contiguous ``[k+1, N, F]`` buffer (``out.transpose(0, 1)``).
        """
        check_homogeneous(graph)
        if not isinstance(feat, Tensor):
            raise TypeError(
                f"feat must be a torch.Tensor of shape [N, F], got {type(feat).__name__}"
            )
        cache = self._cache if self.cached else None
        if cache is not None and cache.same_call(self, graph, feat, edge_weight):
            return cache.on(feat.device).transpose(0, 1)
        with graph.local_scope(), torch.no_grad():
            csr = dgl_to_csr(graph, edge_weight)
            x = check_features(feat, csr.num_nodes, "feat")
            if not self.cached:
                return propagate_csr(csr, self.aggregator, x, self.k).transpose(0, 1)
            key = "|".join(
                (
                    f"k={self.k}",
                    aggregator_identity(self.aggregator),
                    graph_fingerprint(csr),
                    content_hash(x),
                )
            )
            if cache is None or cache.key != key:
                hops = propagate_csr(csr, self.aggregator, x, self.k)
                cache = _HopCache(key=key, hops=hops)
            cache.remember_call(self, graph, feat, edge_weight)
            self._cache = cache
        return cache.on(feat.device).transpose(0, 1)

    def extra_repr(self) -> str:
        return f"k={self.k}, aggregator={self.aggregator!r}, cached={self.cached}"


def _structure(graph: dgl.DGLGraph) -> Any:
    """The object holding ``graph``'s structure: DGL replaces it on every structural change
    (``add_edges``, ``remove_nodes``, ...), so its identity says the structure is the same."""
    return graph._graph


def _version_ref(t: Tensor | None) -> tuple[weakref.ref[Tensor] | None, int]:
    return (None, -1) if t is None else (weakref.ref(t), t._version)


def _same_tensor(t: Tensor | None, ref: tuple[weakref.ref[Tensor] | None, int]) -> bool:
    if t is None or ref[0] is None:
        return t is None and ref[0] is None
    return ref[0]() is t and t._version == ref[1]


@dataclass(eq=False)
class _HopCache:
    """The hops of one propagation and what they were computed from.

    ``key`` fingerprints the content (``k``, the aggregator's code identity and parameters,
    the graph, the features). The last call that used the hops is remembered by reference,
    so a call with the very same, unmodified objects skips the hashing: the same aggregator
    instance with the same parameters and ``k``, the same graph structure (DGL replaces a
    graph's index object on every structural change) and the same feature and weight
    tensors (an in-place write bumps a tensor's version counter)."""

    key: str
    hops: Tensor  # [k+1, N, F], contiguous
    _call: tuple[Any, ...] | None = None

    def remember_call(
        self, module: SGAPPropagate, graph: dgl.DGLGraph, feat: Tensor, edge_weight: Tensor | None
    ) -> None:
        self._call = (
            module.k,
            module.aggregator,
            dict(module.aggregator.params),
            weakref.ref(_structure(graph)),
            _version_ref(feat),
            _version_ref(edge_weight),
        )

    def same_call(
        self, module: SGAPPropagate, graph: dgl.DGLGraph, feat: Tensor, edge_weight: Tensor | None
    ) -> bool:
        if self._call is None:
            return False
        k, aggregator, params, structure, feat_ref, weight_ref = self._call
        return (
            k == module.k
            and aggregator is module.aggregator
            and params == module.aggregator.params
            and structure() is _structure(graph)
            and _same_tensor(feat, feat_ref)
            and _same_tensor(edge_weight, weight_ref)
        )

    def on(self, device: torch.device) -> Tensor:
        if self.hops.device != device:
            self.hops = self.hops.to(device)
        return self.hops


def _node_ids(nids: Any, num_nodes: int) -> Tensor:
    """Node ids ``[B]`` (int64) from an index tensor or a boolean mask ``[N]``."""
    if not isinstance(nids, Tensor):
        raise TypeError(
            f"nids must be a tensor of node ids or a boolean mask, got {type(nids).__name__}"
        )
    if nids.dtype == torch.bool:
        if nids.dim() != 1 or nids.numel() != num_nodes:
            raise ValueError(
                f"nids as a boolean mask must have shape [num_nodes] = [{num_nodes}], "
                f"got {list(nids.shape)}"
            )
        return nids.nonzero().flatten()
    if nids.is_floating_point() or nids.dim() != 1:
        raise TypeError(f"nids must be a 1-D integer tensor, got {nids.dtype} {list(nids.shape)}")
    nids = nids.long()
    if nids.numel() and (int(nids.min()) < 0 or int(nids.max()) >= num_nodes):
        raise ValueError(f"nids holds node ids outside [0, {num_nodes})")
    return nids


class SGAPModel(nn.Module):
    r"""A complete SGAP architecture as a DGL module: propagation, message aggregator, MLP.

    .. math::
        \mathbf{M}_v = [\mathbf{x}_v, \mathbf{m}^1_v, \dots, \mathbf{m}^{K_{pre}}_v], \qquad
        \mathbf{h}_v = \mathrm{MA}(\mathbf{M}_v), \qquad
        \hat{\mathbf{y}}_v = \mathrm{MLP}_{K_{trans}}(\mathbf{h}_v)

    The propagation (``k_pre`` hops of ``ga_pre``, :class:`SGAPPropagate`) is computed on the
    first ``forward`` and, with ``cached=True`` (the default), kept: every later call on the
    same graph and features, in training or evaluation, only gathers hop rows and runs the
    network. The cache is keyed by content, so another graph (even of the same size), new
    feature values or edge weights propagate again; ``cached=False`` propagates on every call
    (as :class:`dgl.nn.SGConv` does by default). :meth:`clear_cache` frees the cached hops
    and leaves the weights alone. :meth:`postprocess` applies the ``k_post`` steps of
    ``ga_post`` to the soft predictions.

    The trainable part is :class:`sgap_plugins.core.model.SGAPModel` (attribute :attr:`net`),
    so ``torch.manual_seed(s)`` followed by this constructor initialises exactly the weights
    of the core trainer's model, and a batch of node ids sees exactly the hop rows the core
    trainer gathers: the same seed and batch order give the same model through either path.

    Args:
        config: an :class:`~sgap_plugins.core.config.SGAPConfig` or a preset name
            (``"sgc"``, ``"sign"``, ``"s2gc"``, ``"gbp"``, ``"appnp_post"``, ``"pasca_v1"``,
            ``"pasca_v2"``, ``"pasca_v3"``).
        in_feats: feature width ``F``.
        n_classes: number of classes ``C``.
        cached: keep the propagated hops between calls on the same input.

    Example:
        >>> model = SGAPModel.from_preset("pasca_v2", in_feats=F, n_classes=C)
        >>> opt = torch.optim.Adam(model.parameters(), lr=model.config.lr)
        >>> for batch in torch.randperm(n_train).split(256):
        ...     loss = F.cross_entropy(model(g, feat, train_nids[batch]), y[train_nids[batch]])
    """

    def __init__(
        self, config: SGAPConfig | str, in_feats: int, n_classes: int, cached: bool = True
    ) -> None:
        super().__init__()
        if isinstance(config, str):
            config = preset(config)
        if not isinstance(config, SGAPConfig):
            raise TypeError(f"config must be an SGAPConfig or a preset name, got {config!r}")
        check_positive_int(in_feats, "in_feats")
        self.propagation = SGAPPropagate(
            config.k_pre, config.ga_pre, cached=cached, **config.ga_pre_params
        )
        self.net = CoreSGAPModel(config, in_feats, n_classes)

    @classmethod
    def from_preset(
        cls, name: str, in_feats: int, n_classes: int, *, cached: bool = True, **overrides: Any
    ) -> SGAPModel:
        """A model of a named preset, with optional :class:`SGAPConfig` field overrides."""
        return cls(preset(name, **overrides), in_feats, n_classes, cached=cached)

    @property
    def config(self) -> SGAPConfig:
        return self.net.config

    @property
    def in_feats(self) -> int:
        return self.net.in_dim

    @property
    def n_classes(self) -> int:
        return self.net.num_classes

    def clear_cache(self) -> None:
        """Drop the cached propagation (the weights are untouched); the next call propagates."""
        self.propagation.clear_cache()

    def reset_parameters(self) -> None:
        """Re-initialise the network and clear the cached propagation."""
        self.propagation.reset_parameters()
        self.net.reset_parameters()

    def forward(
        self,
        graph: dgl.DGLGraph,
        feat: Tensor,
        nids: Tensor | None = None,
        edge_weight: Tensor | None = None,
    ) -> Tensor:
        """Logits of all nodes or of the nodes ``nids``.

        Args:
            graph: a homogeneous ``DGLGraph``.
            feat: node features ``[N, in_feats]``.
            nids: node ids ``[B]`` or a boolean mask ``[N]``; ``None`` for every node.
            edge_weight: optional ``[E]`` weights, used when the propagation is computed.

        Returns:
            Logits ``[B, n_classes]`` (``B = N`` without ``nids``), on ``feat``'s device.
        """
        if isinstance(feat, Tensor) and feat.dim() == 2 and feat.size(1) != self.in_feats:
            raise ValueError(
                f"feat has {feat.size(1)} columns but the model was built with "
                f"in_feats={self.in_feats}"
            )
        hops = self.propagation(graph, feat, edge_weight).transpose(0, 1)  # [K+1, N, F]
        n = hops.size(1)
        idx = torch.arange(n) if nids is None else _node_ids(nids, n)
        return self.net(gather_hops(hops, idx.to(hops.device)))

    def postprocess(
        self, graph: dgl.DGLGraph, logits: Tensor, edge_weight: Tensor | None = None
    ) -> Tensor:
        r"""SGAP's post-processing: ``k_post`` steps of ``ga_post`` on the soft predictions,

        .. math::
            \mathbf{P}^0 = \mathrm{softmax}(\text{logits}), \qquad
            \mathbf{P}^t = \mathrm{combine}(\mathbf{W}\mathbf{P}^{t-1}, \mathbf{P}^0, t).

        With ``ga_post="ppr"`` (``alpha=a``) this is
        ``dgl.nn.LabelPropagation(k_post, alpha=1 - a, norm_type="sym", clamp=False)`` applied
        to the probabilities without a mask, on a symmetric graph with self loops.

        Args:
            graph: the ``DGLGraph`` of all ``N`` nodes.
            logits: ``[N, C]`` logits of every node.
            edge_weight: optional ``[E]`` edge weights.

        Returns:
            Probabilities ``[N, C]`` on ``logits``' device (``softmax(logits)`` when
            ``k_post == 0``).
        """
        return self.net.postprocess(dgl_to_csr(graph, edge_weight), logits)

    def extra_repr(self) -> str:
        return (
            f"in_feats={self.in_feats}, n_classes={self.n_classes}, "
            f"architecture={self.config.label()!r}"
        )


__all__ = ["SGAPModel", "SGAPPropagate"]
