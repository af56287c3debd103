"""PyG transforms: SGAP pre-processing and post-processing."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform

from ..core.graph_aggregators import GraphAggregator
from ..core.plugins import resolve_graph_aggregator
from ..core.propagation import check_dtype, check_features, check_hops, propagate_csr
from .adapter import PyGAdapter, check_homogeneous

_ADAPTER = PyGAdapter()


def _set_node_attr(data: Data, key: str, value: Tensor, arg: str) -> None:
    """``data[key] = value`` for a node-level ``[N, ...]`` tensor, refusing a name that
    ``data``'s class would batch as something else (PyG concatenates keys containing
    ``"index"`` along the last dimension and increments them)."""
    dim = data.__cat_dim__(key, value)
    if dim != 0 or data.__inc__(key, value) != 0:
        raise ValueError(
            f"{arg}={key!r}: {type(data).__name__} batches {key!r} as an index (concatenated "
            f"along dim {dim}), not as a node attribute; pick a name without 'index'"
        )
    data[key] = value


class SGAPPrecompute(BaseTransform):
    r"""Precomputes ``k`` hops of SGAP propagation (the pre-processing stage of SGAP).

    .. math::
        \mathbf{X}^{(0)} = \mathbf{X}, \qquad
        \mathbf{X}^{(t)} = \mathrm{combine}(\mathbf{W}\mathbf{X}^{(t-1)}, \mathbf{X}, t)

    for the chosen graph aggregator: ``aug_na`` has :math:`\mathbf{W} =
    \tilde{\mathbf{D}}^{r-1}\tilde{\mathbf{A}}\tilde{\mathbf{D}}^{-r}` and the identity
    ``combine``; ``ppr`` mixes in :math:`\alpha\mathbf{X}` (APPNP); ``triangle`` or a
    plugin's. Messages flow along ``edge_index`` from source to target; ``edge_weight``, when
    present, multiplies :math:`\mathbf{A}`.

    By default it writes :math:`\mathbf{X}^{(1)}, \dots, \mathbf{X}^{(k)}` to ``data.x1 …
    data.xk`` (``[N, F]`` each, its own storage), exactly where and how
    :class:`torch_geometric.transforms.SIGN` does. ``SGAPPrecompute(k=K, add_self_loops=False)``
    is a drop-in replacement for ``T.SIGN(K)``: the same keys and the same values
    (:math:`\mathbf{D}^{-1/2}\mathbf{A}\mathbf{D}^{-1/2}`; a node without in-neighbours gets
    zero rows, or keeps its features with ``keep_isolated=True``). The default
    (``add_self_loops=True``) is GCN's :math:`\tilde{\mathbf{D}}^{-1/2}\tilde{\mathbf{A}}
    \tilde{\mathbf{D}}^{-1/2}`, SGC's propagation.

    With ``hops_attr`` set, it instead writes every hop stacked node-first,
    ``data[hops_attr]`` of shape ``[N, k+1, F]`` (hop 0 is ``data.x``): the input layout of
    :class:`~sgap_plugins.SGAPModel` (``model(data[hops_attr][idx])``); pass
    ``data[hops_attr].transpose(0, 1)`` as ``hops=`` to :func:`sgap_plugins.run`. Like every
    node attribute it follows ``subgraph``, ``Batch.from_data_list`` and the loaders. The
    tensor is a transposed view of the propagation buffer (no copy; hop 0 repeats ``data.x``
    because the model reads it with the others); ``x1 … xk`` are then not written, so no
    hop is stored twice.

    Every call propagates and returns new tensors; the caller's ``data`` is not modified.
    As a dataset's ``transform=`` that means every ``dataset[i]`` propagates again (PyG's
    convention: transforms hold no state). To compute once, pass it as ``pre_transform=``:
    PyG stores the result in the dataset's ``processed/`` folder and loads it afterwards.
    PyG compares the ``repr`` of the ``pre_transform`` (which names every argument below)
    with the stored one and only *warns* on a mismatch, so after changing the configuration
    pass ``force_reload=True`` to the dataset (or delete ``processed/``).

    Args:
        k: number of hops, ``0 ≤ k ≤ 64``.
        aggregator: graph aggregator registry name or instance.
        dtype: storage dtype of the hops (default: that of ``data.x``); accumulation is in
            at least fp32.
        hops_attr: write all hops stacked as ``data[hops_attr]`` (``[N, k+1, F]``) instead of
            ``x1 … xk``.
        **params: aggregator parameters (``r``, ``alpha``, ``add_self_loops``,
            ``keep_isolated``, ...).

    Example:
        >>> ds = Planetoid(root, "Cora", pre_transform=SGAPPrecompute(k=3))
        >>> ds[0].x3.shape
        torch.Size([2708, 1433])
    """

    def __init__(
        self,
        k: int = 3,
        aggregator: str | GraphAggregator = "aug_na",
        dtype: torch.dtype | None = None,
        hops_attr: str | None = None,
        **params: Any,
    ) -> None:
        self.k = check_hops(k)
        self.aggregator = resolve_graph_aggregator(aggregator, **params)
        if dtype is not None:
            check_dtype(dtype, torch.empty(0))
        self.dtype = dtype
        if hops_attr is not None and (not isinstance(hops_attr, str) or not hops_attr):
            raise TypeError(
                f"hops_attr must be a non-empty attribute name or None, got {hops_attr!r}"
            )
        self.hops_attr = hops_attr

    def forward(self, data: Data) -> Data:
        check_homogeneous(data)
        if data.x is None:
            raise ValueError("data.x is None: SGAPPrecompute propagates node features")
        graph = _ADAPTER.to_csr(data)
        x = check_features(data.x, graph.num_nodes, "data.x")
        hops = propagate_csr(graph, self.aggregator, x, self.k, self.dtype)  # [k+1, N, F]
        if self.hops_attr is not None:
            _set_node_attr(data, self.hops_attr, hops.transpose(0, 1), "hops_attr")
            return data
        for i in range(1, self.k + 1):
            # An own copy per hop, as T.SIGN has: a view would keep the whole [k+1, N, F]
            # buffer (hop 0 a second copy of data.x) alive and saved with the dataset.
            data[f"x{i}"] = hops[i].clone()
        return data

    def __repr__(self) -> str:
        args = [f"k={self.k}", f"aggregator={self.aggregator!r}"]
        if self.dtype is not None:
            args.append(f"dtype={self.dtype}")
        if self.hops_attr is not None:
            args.append(f"hops_attr={self.hops_attr!r}")
        return f"{type(self).__name__}({', '.join(args)})"


class SGAPPostprocess(BaseTransform):
    r"""Post-processing: propagates soft predictions ``k`` steps (label propagation),

    .. math::
        \mathbf{P}^t = \mathrm{combine}(\mathbf{W}\mathbf{P}^{t-1}, \mathbf{P}^0, t),
        \qquad \mathbf{P}^0 = \mathrm{softmax}(\text{logits})

    reading ``data[pred_key]`` (logits ``[N, C]``) and writing the propagated probabilities
    ``[N, C]`` to ``data[out_key]``. With ``ppr`` this is APPNP's propagation of predictions.
    Like :class:`SGAPPrecompute` it keeps no state and leaves the caller's ``data`` as it was.

    Args:
        k: number of steps.
        aggregator: graph aggregator name or instance (default ``ppr`` with ``alpha=0.1``).
        pred_key: attribute holding the logits.
        out_key: attribute to write.
        apply_softmax: turn logits into probabilities first (set ``False`` for
            probabilities).
        **params: aggregator parameters.
    """

    def __init__(
        self,
        k: int = 10,
        aggregator: str | GraphAggregator = "ppr",
        pred_key: str = "pred",
        out_key: str = "pred_post",
        apply_softmax: bool = True,
        **params: Any,
    ) -> None:
        self.k = check_hops(k)
        if aggregator == "ppr" and not params:
            params = {"alpha": 0.1}
        self.aggregator = resolve_graph_aggregator(aggregator, **params)
        self.pred_key = pred_key
        self.out_key = out_key
        self.apply_softmax = apply_softmax

    def forward(self, data: Data) -> Data:
        check_homogeneous(data)
        if self.pred_key not in data:
            raise ValueError(
                f"data has no attribute {self.pred_key!r}; store the model's logits there "
                f"(data.{self.pred_key} = model(...)) or pass pred_key="
            )
        graph = _ADAPTER.to_csr(data)
        pred = check_features(data[self.pred_key], graph.num_nodes, f"data.{self.pred_key}")
        if self.apply_softmax:
            pred = torch.softmax(pred.float(), dim=-1)
        # The last step only, in its own storage (not a view of all k+1 steps).
        data[self.out_key] = propagate_csr(graph, self.aggregator, pred, self.k)[-1].clone()
        return data

    def __repr__(self) -> str:
        return f"{type(self).__name__}(k={self.k}, aggregator={self.aggregator!r})"
