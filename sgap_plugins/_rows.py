"""The ``rows=`` argument of the PyG and DGL ``SGAPPrecompute`` transforms.

A selection of nodes is node ids ``[R]`` (any order, each id once), a boolean mask ``[N]``,
or the name of a node attribute holding either (``rows="train_mask"``), looked up in each
graph the transform is applied to. The lookup takes any mapping with ``in``, ``[]`` and
``keys()``: a PyG ``Data`` or a DGL ``g.ndata``. Neither framework is imported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from .core.propagation import check_memory_budget, check_rows

Rows = Tensor | np.ndarray | Sequence[int] | str


class NodeAttributes(Protocol):
    def __contains__(self, key: str) -> bool: ...
    def __getitem__(self, key: str) -> Any: ...
    def keys(self) -> Any: ...


def check_rows_argument(rows: Any) -> Tensor | str | None:
    """What can be checked of ``rows`` without a graph: an attribute name, or a 1-D integer
    or boolean tensor (numpy arrays and lists are converted). Returns the name, or an own
    CPU copy of the tensor (a later in-place edit of the caller's tensor does not change the
    transform, whose ``repr`` would not show it)."""
    if rows is None or isinstance(rows, str):
        if rows == "":
            raise ValueError("rows must be node ids, a boolean mask or an attribute name, got ''")
        return rows
    if not isinstance(rows, Tensor):
        if not isinstance(rows, (np.ndarray, Sequence)) or isinstance(rows, bytes):
            raise TypeError(
                "rows must be a 1-D tensor of node ids, a boolean mask [N] or the name of a node "
                f"attribute holding one (e.g. rows='train_mask'), got {type(rows).__name__}"
            )
        arr = np.asarray(rows)
        rows = torch.as_tensor(arr if arr.size else arr.astype(np.int64))  # [] is float64
    if rows.dtype != torch.bool and (rows.is_floating_point() or rows.is_complex()):
        raise TypeError(
            f"rows must hold integer node ids or be a boolean mask, got dtype {rows.dtype}; "
            "pass rows.long() or mask.bool()"
        )
    if rows.dim() != 1:
        raise ValueError(
            f"rows must be 1-D (node ids [R] or a mask [N]), got shape {list(rows.shape)}"
        )
    return rows.detach().to("cpu").clone()


def check_rows_budget(rows: Tensor | str | None, memory_budget: Any) -> int | None:
    """``memory_budget`` of a transform whose ``rows`` went through
    :func:`check_rows_argument`: ``None``, or a positive number of bytes, and only with
    ``rows`` (without it the ``[k+1, N, F]`` result is held in memory anyway). Returned as
    given: ``None`` leaves the default to :func:`~sgap_plugins.core.propagation.propagate`."""
    if memory_budget is None:
        return None
    if rows is None:
        raise ValueError(
            "memory_budget bounds the rows= computation only (without rows the "
            "[k+1, N, F] result is held in memory anyway); pass rows= or drop it"
        )
    check_memory_budget(memory_budget)
    return memory_budget


def describe_rows(rows: Tensor | str) -> str:
    """``rows`` for a ``repr``: the name, or the size of a tensor (never its values)."""
    if isinstance(rows, str):
        return repr(rows)
    if rows.dtype == torch.bool:
        return f"<mask of {int(rows.sum())} in {rows.numel()} nodes>"
    return f"<{rows.numel()} node ids>"


def resolve_rows(rows: Tensor | str, attrs: NodeAttributes, num_nodes: int, where: str) -> Tensor:
    """The selected node ids of one graph, ``int64 [R]`` on the CPU: ``rows`` itself, or
    ``attrs[rows]`` for a name (``where`` names the mapping in errors, e.g. ``"data"``); a
    mask ``[N]`` becomes its nonzero positions in ascending order. Ids must lie in
    ``[0, num_nodes)`` and be distinct (:func:`~sgap_plugins.core.propagation.check_rows`)."""
    name = "rows"
    if isinstance(rows, str):
        if rows not in attrs:
            raise KeyError(
                f"rows={rows!r}: {where} has no node attribute {rows!r}; its attributes are "
                f"{sorted(attrs.keys())}; pass the name of a mask [N] or of node ids, or the "
                "tensor itself"
            )
        name = f"rows={rows!r} ({where}[{rows!r}])"
        value = attrs[rows]
    else:
        value = rows
    if not isinstance(value, Tensor):  # the name of something else than a tensor
        raise TypeError(
            f"{name} must be a tensor of node ids or a boolean mask, got {type(value).__name__}"
        )
    if value.dtype == torch.bool:
        if value.shape != (num_nodes,):
            raise ValueError(
                f"{name} is a boolean mask of shape {list(value.shape)} but the graph has "
                f"num_nodes={num_nodes}; pass a mask of shape [{num_nodes}] or node ids"
            )
        return value.to("cpu").nonzero().flatten()
    return check_rows(value, num_nodes, name)
