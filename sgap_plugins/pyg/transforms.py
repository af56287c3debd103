"""PyG transforms: SGAP pre-processing and post-processing."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform

from ..core.plugins import resolve_graph_aggregator
from ..core.propagation import check_features, check_hops, propagate_csr
from .adapter import PyGAdapter, check_homogeneous

_ADAPTER = PyGAdapter()


def _digest(*tensors: Tensor | None) -> str:
    h = hashlib.blake2b(digest_size=16)
    for t in tensors:
        if t is None:
            h.update(b"<none>")
            continue
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        arr = np.ascontiguousarray(t.detach().cpu().numpy())
        h.update(memoryview(arr).cast("B"))
    return h.hexdigest()


class SGAPPrecompute(BaseTransform):
    r"""Precomputes ``k`` hops of SGAP propagation (the pre-processing stage of SGAP).

    .. math::
        \mathbf{M} = [\mathbf{X}, \mathbf{m}^1, \dots, \mathbf{m}^k], \qquad
        \mathbf{m}^t = \mathrm{combine}(\mathbf{W}\mathbf{m}^{t-1}, \mathbf{X}, t)

    for the chosen graph aggregator (``aug_na``: :math:`\mathbf{W} = \tilde{\mathbf{D}}^{r-1}
    \tilde{\mathbf{A}}\tilde{\mathbf{D}}^{-r}`; ``ppr``; ``triangle``; or a plugin's).

    Writes ``data.x1 … data.xk`` (the attribute names of :class:`torch_geometric.transforms.SIGN`)
    as views of one contiguous ``[k+1, N, F]`` tensor stored as ``data.sgap_hops``. The
    caller's ``data`` is not modified. Results are memoised on a fingerprint of the graph,
    the features and the configuration, so as a dataset's ``transform=`` propagation runs
    once, not on every access; the memoised tensors are shared, so treat them as read-only.

    Args:
        k: number of hops.
        aggregator: graph aggregator registry name or instance.
        dtype: storage dtype of the hops (default: that of ``data.x``).
        cache_size: how many distinct graphs to memoise.
        **params: aggregator parameters (``r``, ``alpha``, ``add_self_loops``, ...).
    """

    def __init__(
        self,
        k: int = 3,
        aggregator: str = "aug_na",
        dtype: torch.dtype | None = None,
        cache_size: int = 4,
        **params: Any,
    ) -> None:
        self.k = check_hops(k)
        self.aggregator = resolve_graph_aggregator(aggregator, **params)
        self.dtype = dtype
        self.cache_size = cache_size
        self._cache: OrderedDict[str, Tensor] = OrderedDict()

    def forward(self, data: Data) -> Data:
        check_homogeneous(data)
        if data.x is None:
            raise ValueError("data.x is None: SGAPPrecompute propagates node features")
        edge_weight = data.edge_weight if "edge_weight" in data else None
        key = _digest(data.edge_index, edge_weight, data.x) + repr(
            (data.num_nodes, self.k, self.aggregator, self.dtype)
        )
        hops = self._cache.get(key)
        if hops is None:
            graph = _ADAPTER.to_csr(data)
            x = check_features(data.x, graph.num_nodes, "data.x")
            hops = propagate_csr(graph, self.aggregator, x, self.k, self.dtype)
            self._cache[key] = hops
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        data.sgap_hops = hops
        for i in range(1, self.k + 1):
            data[f"x{i}"] = hops[i]
        return data

    def __repr__(self) -> str:
        return f"{type(self).__name__}(k={self.k}, aggregator={self.aggregator!r})"


class SGAPPostprocess(BaseTransform):
    r"""Post-processing: propagates soft predictions ``k`` steps (label propagation),

    .. math::
        \mathbf{P}^t = \mathrm{combine}(\mathbf{W}\mathbf{P}^{t-1}, \mathbf{P}^0, t),
        \qquad \mathbf{P}^0 = \mathrm{softmax}(\text{logits})

    reading ``data[pred_key]`` (logits ``[N, C]``) and writing the propagated probabilities to
    ``data[out_key]``. With ``ppr`` this is APPNP's propagation of predictions.

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
        aggregator: str = "ppr",
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
        data[self.out_key] = propagate_csr(graph, self.aggregator, pred, self.k)[-1]
        return data

    def __repr__(self) -> str:
        return f"{type(self).__name__}(k={self.k}, aggregator={self.aggregator!r})"
