"""PyG transforms: SGAP pre-processing and post-processing."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform

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
    check_dtype,
    check_features,
    check_hops,
    propagate,
    propagate_csr,
)
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

    With ``rows`` it returns the **induced subgraph on** ``rows``, **in the order of**
    ``rows``, as :meth:`Data.subgraph <torch_geometric.data.Data.subgraph>` does (every node
    attribute ``x``, ``y``, masks, … sliced to ``[R, …]``; the edges among the rows, relabelled,
    with their attributes), whose hops are those of the **full** graph: ``data.x1 … data.xk``
    ``[R, F]`` (or ``data[hops_attr]`` ``[R, k+1, F]``) equal the rows ``rows`` of the hops
    computed without ``rows``, bit for bit, and ``data.n_id`` ``[R]`` holds the node ids in
    the graph given (the attribute PyG's loaders use; an existing ``n_id`` is replaced, as
    the loaders do). Every hop is still computed for all ``N`` nodes, one fp32 column block
    at a time within ``memory_budget`` bytes (see
    :func:`~sgap_plugins.core.propagation.propagate`), but only ``R`` rows of each are kept:
    GAMLP's way of precomputing the labelled nodes of a huge graph (papers100M: 1.5M of 111M
    nodes).

    Every call propagates and returns new tensors; the caller's ``data`` is not modified.
    As a dataset's ``transform=`` that means every ``dataset[i]`` propagates again (PyG's
    convention: transforms hold no state). To compute once, pass it as ``pre_transform=``:
    PyG stores the result in the dataset's ``processed/`` folder and loads it afterwards.
    PyG compares the ``repr`` of the ``pre_transform`` (which names every argument below
    but ``memory_budget``, which never changes the result) with the stored one and only
    *warns* on a mismatch, so after changing the configuration pass ``force_reload=True`` to
    the dataset (or delete ``processed/``). The ``repr`` shows a ``rows`` tensor by its size
    only, so a different index of the same length needs ``force_reload=True`` as well; a
    name (``rows="train_mask"``) shows as itself.

    Args:
        k: number of hops, ``0 ≤ k ≤ 64``.
        aggregator: graph aggregator registry name or instance.
        dtype: storage dtype of the hops (default: that of ``data.x``); accumulation is in
            at least fp32.
        hops_attr: write all hops stacked as ``data[hops_attr]`` (``[N, k+1, F]``) instead of
            ``x1 … xk``.
        rows: keep these nodes only (see above): node ids ``[R]`` (distinct, any order), a
            boolean mask ``[N]``, or the name of a node attribute holding either, looked up
            in each ``data`` (e.g. ``"train_mask"``).
        memory_budget: bytes of working memory of the ``rows`` computation (default 1 GiB;
            needs ``rows``).
        **params: aggregator parameters (``r``, ``alpha``, ``add_self_loops``,
            ``keep_isolated``, ...).

    Example:
        >>> ds = Planetoid(root, "Cora", pre_transform=SGAPPrecompute(k=3))
        >>> ds[0].x3.shape
        torch.Size([2708, 1433])
        >>> train = SGAPPrecompute(k=3, rows="train_mask")(ds[0])
        >>> train.x3.shape, train.n_id.shape, train.y.shape
        (torch.Size([140, 1433]), torch.Size([140]), torch.Size([140]))
    """

    def __init__(
        self,
        k: int = 3,
        aggregator: str | GraphAggregator = "aug_na",
        dtype: torch.dtype | None = None,
        hops_attr: str | None = None,
        rows: Rows | None = None,
        memory_budget: int | None = None,
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
        self.rows = check_rows_argument(rows)
        self.memory_budget = check_rows_budget(self.rows, memory_budget)

    def forward(self, data: Data) -> Data:
        check_homogeneous(data)
        if data.x is None:
            raise ValueError("data.x is None: SGAPPrecompute propagates node features")
        graph = _ADAPTER.to_csr(data)
        x = check_features(data.x, graph.num_nodes, "data.x")
        if self.rows is None:
            hops = propagate_csr(graph, self.aggregator, x, self.k, self.dtype)  # [k+1, N, F]
        else:
            ids = resolve_rows(self.rows, data, graph.num_nodes, "data")
            hops = propagate(  # [k+1, R, F]
                graph,
                x,
                self.k,
                self.aggregator,
                rows=ids,
                dtype=self.dtype,
                memory_budget=self.memory_budget,
            )
            data = data.subgraph(ids.to(data.edge_index.device))
            data.n_id = ids.to(x.device)
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
        if self.rows is not None:
            args.append(f"rows={describe_rows(self.rows)}")
        # memory_budget is left out: it changes the working memory, never the result, and
        # PyG takes a changed pre_transform repr for a changed result.
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
