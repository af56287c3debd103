"""Python entry points of the ``torch.ops.sgap`` kernels (argument plumbing only).

Each function assumes :func:`sgap_plugins.ops.available` is true for its device; the core's
dispatch in :mod:`sgap_plugins.core.propagation` checks that and otherwise takes the
plain-torch path.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

BLOCK = 128


def auto_block(num_nodes: int, num_features: int) -> int:
    """Column block width of the CPU kernel: 128 columns (or all, if fewer).

    Narrow blocks that keep a hop's block in cache lose to whole 512-byte rows here: every
    block re-reads the index and re-pays the per-edge overhead, and a (prefetched) wide row
    streams eight cache lines per random access. Measured for K=3, F=128 on the 2-core EPYC
    (100k-node power-law graph, 2M edges): block 16 → 0.85 s, 32 → 0.35 s, 64 → 0.21 s,
    128 → 0.15 s; on 1M nodes, 16 → 17.6 s, 32 → 12.4 s, 128 → 11.9 s. Features beyond 128
    are processed in further blocks, which bounds the kernel's per-row accumulator.
    """
    del num_nodes  # the measured optimum does not depend on N on this hardware
    return max(1, min(BLOCK, num_features))


def _ops():
    from . import load

    ops = load()
    if ops is None:
        raise RuntimeError("the sgap kernels are not available (see sgap_plugins.ops.info())")
    return ops


def _on(t: Tensor | None, device: torch.device) -> Tensor | None:
    return None if t is None else t.to(device, non_blocking=True).contiguous()


def _graph_args(device: torch.device, *tensors: Tensor | None) -> list[Tensor | None]:
    """The graph arguments of an op (``rowptr, col, weight, row_scale, col_scale``), each
    contiguous on ``device``."""
    return [_on(t, device) for t in tensors]


def _rule_args(
    x: Tensor, alpha: float, self_loops: bool, keep_empty: bool, block: int | None
) -> tuple[float, bool, bool, int]:
    """The scalar arguments ``alpha, self_loops, keep_empty, block`` of an op on features
    ``x``; ``block=None`` is :func:`auto_block` on the CPU, the full width (0) on a GPU."""
    if block is None:
        block = auto_block(x.size(0), x.size(1)) if x.device.type == "cpu" else 0
    return float(alpha), bool(self_loops), bool(keep_empty), int(block)


def propagate_hops(
    rowptr: Tensor,
    col: Tensor,
    x: Tensor,
    out: Tensor,
    *,
    weight: Tensor | None = None,
    row_scale: Tensor | None = None,
    col_scale: Tensor | None = None,
    node_map: Tensor | None = None,
    alpha: float = 0.0,
    self_loops: bool = False,
    keep_empty: bool = False,
    block: int | None = None,
) -> Tensor:
    """Fill ``out`` (``[K+1, N, F]``, fp32/bf16/fp16, unit column stride) with all hops.

    .. math::
        m^t_v = (1-\\alpha)\\, r_v \\Big(\\sum_{e=(v,u)} w_e c_u m^{t-1}_u
                + [\\text{self\\_loops} \\wedge (v,v)\\notin E]\\, c_v m^{t-1}_v\\Big)
                + \\alpha x_v

    with ``m^0 = x`` (``[N, F]``), ``w_e = 1``, ``r = c = 1`` where not given; an empty row
    keeps ``m^{t-1}_v`` when ``keep_empty`` (and no implicit self loop). With ``node_map``
    the CSR is a reordering: working row ``v`` reads ``x[node_map[v]]`` and writes
    ``out[:, node_map[v]]``. Accumulation is fp32 in column blocks of ``block`` columns
    (default :func:`auto_block` on the CPU, the full width on the GPU).
    """
    x32 = x if x.dtype == torch.float32 else x.float()
    if x32.size(1) > 1 and x32.stride(1) != 1:
        x32 = x32.contiguous()
    _ops().propagate_hops(
        *_graph_args(x.device, rowptr, col, weight, row_scale, col_scale),
        _on(node_map, x.device),
        x32,
        out,
        *_rule_args(x, alpha, self_loops, keep_empty, block),
    )
    return out


def propagate_step(
    rowptr: Tensor,
    col: Tensor,
    prev: Tensor,
    cur: Tensor,
    *,
    x0: Tensor | None = None,
    weight: Tensor | None = None,
    row_scale: Tensor | None = None,
    col_scale: Tensor | None = None,
    alpha: float = 0.0,
    self_loops: bool = False,
    keep_empty: bool = False,
    block: int | None = None,
) -> Tensor:
    """One hop of :func:`propagate_hops`' rule, ``prev`` → ``cur`` (both fp32 ``[N, F]`` with
    unit column stride, not aliased), with the teleport term read from ``x0``:

    .. math::
        \\mathrm{cur}_v = (1-\\alpha)\\, r_v \\Big(\\sum_{e=(v,u)} w_e c_u \\mathrm{prev}_u
                + [\\text{self\\_loops} \\wedge (v,v)\\notin E]\\, c_v \\mathrm{prev}_v\\Big)
                + \\alpha\\, x0_v

    The caller owns the buffers (no allocation of ``[N, F]`` size here), so column blocks can
    be streamed from disk and hops reduced to selected rows between steps. Each column's
    numbers are bit-identical to :func:`propagate_hops`' for the same column, whatever the
    width of ``prev``: the same per-row loop in the same order.
    """
    _ops().propagate_step(
        *_graph_args(prev.device, rowptr, col, weight, row_scale, col_scale),
        prev,
        x0,
        cur,
        *_rule_args(prev, alpha, self_loops, keep_empty, block),
    )
    return cur


def unweighted_degree(rowptr: Tensor, col: Tensor, self_loops: bool) -> Tensor:
    """``d_v`` = stored entries of row ``v`` plus one when ``self_loops`` and row ``v`` has no
    stored self loop (the degree of ``Ã = A + I`` of an unweighted graph); fp32 ``[N]``."""
    return _ops().loop_degree(rowptr.contiguous(), col.contiguous(), bool(self_loops))


def triangle_counts(adj_rowptr: Tensor, adj_col: Tensor, rowptr: Tensor, col: Tensor) -> Tensor:
    """For every edge ``(v, u)`` of the CSR ``(rowptr, col)``: ``|N(v) ∩ N(u)|`` in the
    symmetric simple adjacency ``(adj_rowptr, adj_col)`` (sorted rows), i.e. the number of
    triangles containing the edge; self loops give 0. fp32 ``[E]``."""
    col = col.to(adj_col.dtype)
    return _ops().triangle_counts(
        adj_rowptr.contiguous(), adj_col.contiguous(), rowptr.contiguous(), col.contiguous()
    )


def locality_order(
    rowptr: Tensor, col: Tensor, num_nodes: int, method: str
) -> tuple[np.ndarray, sp.csr_matrix]:
    """A node order that improves gather locality, and the permuted structure.

    ``"degree"``: nodes by decreasing in-degree (hubs, which most rows read, share cache
    lines); ``"rcm"``: reverse Cuthill–McKee of ``A + Aᵀ`` (small bandwidth, neighbours close).
    Returns ``perm`` (working row ``i`` is node ``perm[i]``) and ``P A Pᵀ`` as scipy CSR with
    sorted rows whose data holds the original edge positions plus one (to permute weights).
    """
    n = num_nodes
    indptr = rowptr.numpy()
    indices = col.numpy()
    # Data = edge position + 1 (a stored 0 could be dropped by scipy's indexing).
    pos = np.arange(1, indices.size + 1, dtype=np.int64)
    mat = sp.csr_matrix((pos, indices, indptr), shape=(n, n))
    if method == "degree":
        perm = np.argsort(-np.diff(indptr), kind="stable")
    elif method == "rcm":
        from scipy.sparse.csgraph import reverse_cuthill_mckee

        pattern = sp.csr_matrix(
            (np.ones(indices.size, dtype=np.int8), indices, indptr), shape=(n, n)
        )
        perm = reverse_cuthill_mckee(pattern, symmetric_mode=False)
    else:
        raise ValueError(f"reorder must be None, 'degree' or 'rcm', got {method!r}")
    perm = np.asarray(perm, dtype=np.int64)
    permuted = mat[perm][:, perm].tocsr()
    permuted.sort_indices()
    return perm, permuted
