"""Multi-hop feature propagation: the pre-processing step of SGAP.

:func:`propagate` computes ``M = [X, m^1, …, m^K]`` into one contiguous ``[K+1, N, F]``
buffer, where ``m^t = combine(W m^{t-1}, X, t)`` for the chosen graph aggregator.

Three ways to the same numbers:

* the **fused path** (unweighted graphs, ``aug_na`` and ``ppr``): the fused kernels of
  :mod:`sgap_plugins.ops` take the raw CSR and apply ``d̃_v^{r-1}`` and ``d̃_u^{-r}`` (and the
  PageRank teleport) on the fly, so no weight array is ever built;
* the **generic path** (weighted graphs, ``triangle``, plugin aggregators): the same kernels
  on ``agg.transition(graph)``'s explicit weights, all hops in one call when ``combine`` is
  the identity or PageRank's, one kernel call per hop plus the Python ``combine`` otherwise;
* the **reference path** (:func:`propagate_reference`): plain ``torch.sparse``; used when the
  kernels are unavailable (see :func:`sgap_plugins.ops.info`), for float64, and in tests.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from .. import ops  # no build at import: the kernels are compiled on first use
from .graph import CSRGraph
from .graph_aggregators import AugNormAdj, GraphAggregator, PersonalizedPageRank, _inv_pow
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
    if x.numel() and not _all_finite(x):
        bad = int((~torch.isfinite(x)).any(dim=1).sum())
        raise ValueError(
            f"{name} contains NaN or inf in {bad} row(s); impute or drop them before propagating"
        )
    return x


def _all_finite(x: Tensor, chunk_bytes: int = 2**26) -> bool:
    """``isfinite(x).all()`` without a full-size boolean mask.

    A sum is finite only if every term is, so one vectorised reduction settles the common
    case; only when the sum is not finite (NaN/inf present, or overflow) are the rows checked
    element by element, in chunks (a whole mask would be a quarter of ``x``, which counts
    against out-of-core budgets).
    """
    if bool(torch.isfinite(x.sum())):
        return True
    rows = max(1, chunk_bytes // max(1, x.size(1) * x.element_size()))
    return all(bool(torch.isfinite(x[i : i + rows]).all()) for i in range(0, x.size(0), rows))


def check_hops(k: Any, name: str = "k") -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(k).__name__}")
    if not 0 <= k <= MAX_HOPS:
        raise ValueError(f"{name} must be in [0, {MAX_HOPS}], got {k}")
    return int(k)


KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
REORDERINGS = (None, "degree", "rcm")
DEFAULT_MEMORY_BUDGET = 2**30
# Rows of one hop mapped at a time while a column block is written to the out-of-core file.
_WINDOW_BYTES = 64 * 2**20


def propagate(
    graph: Any,
    x: Tensor,
    k: int,
    aggregator: str | GraphAggregator = "aug_na",
    *,
    num_nodes: int | None = None,
    edge_weight: Tensor | None = None,
    dtype: torch.dtype | None = None,
    out: str | os.PathLike | None = None,
    memory_budget: int | None = None,
    reorder: str | None = None,
    **params: Any,
) -> Tensor:
    """Propagate node features ``k`` hops and keep every hop.

    .. math::
        \\mathbf{M} = [\\mathbf{X}, \\mathbf{m}^1, \\dots, \\mathbf{m}^K], \\qquad
        \\mathbf{m}^t = \\mathrm{combine}(\\mathbf{W}\\mathbf{m}^{t-1}, \\mathbf{X}, t)

    Args:
        graph: a :class:`CSRGraph`, an ``edge_index`` ``[2, E]`` (source → destination), a
            scipy sparse matrix, or a framework graph (PyG ``Data``, DGL ``DGLGraph``).
        x: node features ``[N, F]`` (on the CPU or a GPU).
        k: number of hops, ``0 ≤ k ≤ 64``.
        aggregator: registry name (``"aug_na"``, ``"ppr"``, ``"triangle"``, or a plugin's) or
            a :class:`GraphAggregator` instance.
        num_nodes: ``N`` for an ``edge_index`` graph (default: ``x.size(0)``).
        edge_weight: optional ``[E]`` weights for an ``edge_index`` or framework graph.
        dtype: storage dtype of the output (default: ``x``'s); accumulation is in at least
            fp32, so ``torch.bfloat16``/``torch.float16`` halve the hop tensor's memory.
        out: a path: stream the hops into a ``.npy`` file (``[k+1, N, F]``) one column block
            at a time instead of RAM, and return a tensor memory-mapped onto it. Needs a
            column-separable ``combine`` (all built-ins are) and a numpy dtype (not bf16).
        memory_budget: bytes of RAM the out-of-core mode may use beyond the graph
            (default 1 GiB); the column block is as wide as the budget allows.
        reorder: ``"degree"`` or ``"rcm"`` renumbers nodes for cache locality inside the
            kernels (undone on output; the result is unchanged), ``None`` keeps the order.
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
    out_dtype = check_dtype(dtype, x)
    reorder = check_reorder(reorder)
    if out is not None:
        budget = check_memory_budget(memory_budget)
        if not isinstance(out, (str, os.PathLike)):
            raise TypeError(f"out must be a file path or None, got {type(out).__name__}")
        if out_dtype == torch.bfloat16:
            raise ValueError(
                "out=PATH writes a .npy file and numpy has no bfloat16; pass "
                "dtype=torch.float16 or torch.float32"
            )
    elif memory_budget is not None:
        raise ValueError("memory_budget applies to the out-of-core mode only; pass out=PATH")
    plan = _Plan.build(csr, agg, x, out_dtype, reorder)
    if out is None:
        return plan.run(x, k, out_dtype)
    return _propagate_to_file(plan, x, k, out_dtype, out, budget)


def propagate_csr(
    graph: CSRGraph,
    agg: GraphAggregator,
    x: Tensor,
    k: int,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """:func:`propagate` for callers that already hold a :class:`CSRGraph` and validated
    features (the adapters, the trainer): no validation, the same kernels (the fused ones
    for unweighted ``aug_na``/``ppr``, the generic one otherwise, else
    :func:`propagate_reference`)."""
    out_dtype = dtype or x.dtype
    return _Plan.build(graph, agg, x, out_dtype, None).run(x, k, out_dtype)


def propagate_reference(
    transition: CSRGraph,
    agg: GraphAggregator,
    x: Tensor,
    k: int,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """The plain-torch reference: ``m^t = combine(W m^{t-1}, x, t)`` with ``torch.sparse``
    CSR products in the compute dtype (``x``'s if fp32/fp64, else fp32), each hop cast to
    ``dtype`` for storage."""
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


def check_dtype(dtype: Any, x: Tensor) -> torch.dtype:
    if dtype is None:
        return x.dtype
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(
            f"dtype must be a floating torch.dtype (torch.float32, torch.bfloat16, "
            f"torch.float16, torch.float64) or None, got {dtype!r}"
        )
    return dtype


def check_reorder(reorder: Any) -> str | None:
    if reorder not in REORDERINGS:
        raise ValueError(f"reorder must be None, 'degree' or 'rcm', got {reorder!r}")
    return reorder


def check_memory_budget(budget: Any) -> int:
    if budget is None:
        return DEFAULT_MEMORY_BUDGET
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget <= 0:
        raise ValueError(f"memory_budget must be a positive number of bytes, got {budget!r}")
    return int(budget)


def _kernels_usable(x: Tensor, out_dtype: torch.dtype) -> bool:
    if x.dtype not in KERNEL_DTYPES or out_dtype not in KERNEL_DTYPES:
        return False  # float64 stays on the (float64) reference path
    return ops.available(x.device)


@dataclass
class _Plan:
    """How one propagation runs: kernel arguments (``use_kernels``) or the reference."""

    transition: CSRGraph | None  # reference / generic path
    agg: GraphAggregator
    use_kernels: bool
    rowptr: Tensor | None = None
    col: Tensor | None = None
    weight: Tensor | None = None
    row_scale: Tensor | None = None
    col_scale: Tensor | None = None
    node_map: Tensor | None = None
    alpha: float = 0.0
    self_loops: bool = False
    keep_empty: bool = False
    per_hop: bool = False  # plugin combine: one kernel call per hop, combine in Python

    @classmethod
    def build(
        cls,
        csr: CSRGraph,
        agg: GraphAggregator,
        x: Tensor,
        out_dtype: torch.dtype,
        reorder: str | None,
    ) -> _Plan:
        fusable = csr.weight is None and (
            (type(agg) is AugNormAdj) or (type(agg) is PersonalizedPageRank)
        )
        if not (fusable and _kernels_usable(x, out_dtype)):
            return cls.generic(agg.transition(csr), agg, x, out_dtype, reorder)
        # Ã = A + I implicitly: the kernel adds the missing self loops itself.
        r, alpha = (agg.r, 0.0) if isinstance(agg, AugNormAdj) else (0.5, agg.alpha)
        deg = ops.unweighted_degree(csr.rowptr, csr.col, agg.add_self_loops)
        plan = cls(
            transition=None,
            agg=agg,
            use_kernels=True,
            rowptr=csr.rowptr,
            col=csr.col,
            row_scale=_inv_pow(deg, 1.0 - r),
            col_scale=_inv_pow(deg, r),
            alpha=alpha,
            self_loops=agg.add_self_loops,
            keep_empty=agg.keep_isolated,  # an empty row keeps its own message only on request
        )
        return plan.reordered(reorder)

    @classmethod
    def generic(
        cls,
        transition: CSRGraph,
        agg: GraphAggregator,
        x: Tensor,
        out_dtype: torch.dtype,
        reorder: str | None,
    ) -> _Plan:
        if not _kernels_usable(x, out_dtype):
            return cls(transition=transition, agg=agg, use_kernels=False)
        combine = type(agg).combine
        alpha, per_hop = 0.0, False
        if combine is PersonalizedPageRank.combine:
            alpha = agg.alpha
        elif combine is not GraphAggregator.combine:
            per_hop = True
        plan = cls(
            transition=transition,
            agg=agg,
            use_kernels=True,
            rowptr=transition.rowptr,
            col=transition.col,
            weight=None if transition.weight is None else transition.weight.float(),
            alpha=alpha,
            per_hop=per_hop,
        )
        return plan.reordered(reorder)

    def reordered(self, method: str | None) -> _Plan:
        """Renumber nodes for locality; ``node_map`` makes the kernel undo it on output."""
        if method is None or self.rowptr is None or self.rowptr.numel() <= 1:
            return self
        n = self.rowptr.numel() - 1
        perm, permuted = ops.kernels.locality_order(self.rowptr, self.col, n, method)
        pos = torch.from_numpy(permuted.data - 1)
        perm_t = torch.from_numpy(perm)
        self.rowptr = torch.from_numpy(permuted.indptr.astype(np.int64))
        self.col = torch.from_numpy(permuted.indices).to(self.col.dtype)
        self.weight = None if self.weight is None else self.weight[pos]
        self.row_scale = None if self.row_scale is None else self.row_scale[perm_t]
        self.col_scale = None if self.col_scale is None else self.col_scale[perm_t]
        self.node_map = perm_t
        return self

    def run(self, x: Tensor, k: int, out_dtype: torch.dtype, out: Tensor | None = None) -> Tensor:
        """All hops of ``x`` (``[N, F]``) into ``out`` (allocated when ``None``)."""
        if not self.use_kernels:
            result = propagate_reference(self.transition, self.agg, x, k, out_dtype)
            if out is None:
                return result
            out.copy_(result)
            return out
        if out is None:
            out = torch.empty((k + 1, *x.shape), dtype=out_dtype, device=x.device)
        if self.per_hop:
            return self._run_per_hop(x, k, out)
        return ops.propagate_hops(
            self.rowptr,
            self.col,
            x,
            out,
            weight=self.weight,
            row_scale=self.row_scale,
            col_scale=self.col_scale,
            node_map=self.node_map,
            alpha=self.alpha,
            self_loops=self.self_loops,
            keep_empty=self.keep_empty,
        )

    def _run_per_hop(self, x: Tensor, k: int, out: Tensor) -> Tensor:
        out[0] = x
        m0 = x.float()
        prev = m0
        step = torch.empty((2, *x.shape), dtype=torch.float32, device=x.device)
        for t in range(1, k + 1):
            ops.propagate_hops(
                self.rowptr, self.col, prev, step, weight=self.weight, node_map=self.node_map
            )
            prev = self.agg.combine(step[1].clone(), m0, t)
            out[t] = prev
        return out


def _propagate_to_file(
    plan: _Plan, x: Tensor, k: int, out_dtype: torch.dtype, path: Any, budget: int
) -> Tensor:
    """Out-of-core: compute a block of columns at a time (all hops of it in RAM, within the
    budget) and write it into a ``.npy`` memory map through short-lived row windows, so
    resident memory stays at the graph plus one block."""
    n, f = x.shape
    path = os.fspath(path)
    if n == 0 or f == 0:  # nothing to stream (and nothing to memory-map)
        np.save(path, np.empty((k + 1, n, f), dtype=torch.empty((), dtype=out_dtype).numpy().dtype))
        return torch.from_numpy(np.load(path))
    itemsize = torch.empty((), dtype=out_dtype).element_size()
    # An eighth of the budget for the mapped row window (every page of it is touched), the
    # rest for the staged hops of one block plus the kernel's two fp32 working columns.
    window_rows = max(1, min(_WINDOW_BYTES, budget // 8) // max(1, f * itemsize))
    per_column = n * ((k + 1) * itemsize + 8)
    budget -= window_rows * f * itemsize
    if per_column > budget:
        raise ValueError(
            f"memory_budget={budget} bytes is below one column block: N={n}, k={k} need at "
            f"least {per_column} bytes"
        )
    width = min(f, budget // per_column)
    if width >= 16:
        width -= width % 16  # whole 64-byte fp32 lines per gathered row
    np_dtype = torch.empty((), dtype=out_dtype).numpy().dtype
    header = np.lib.format.open_memmap(path, mode="w+", dtype=np_dtype, shape=(k + 1, n, f))
    offset = header.offset
    del header
    # One staging buffer for all blocks: a fresh one per block could double the peak through
    # allocator reuse patterns.
    staging = torch.empty((k + 1, n, width), dtype=out_dtype, device=x.device)
    for c0 in range(0, f, width):
        c1 = min(f, c0 + width)
        block = plan.run(x[:, c0:c1], k, out_dtype, out=staging[:, :, : c1 - c0]).cpu()
        for t in range(k + 1):
            for r0 in range(0, n, window_rows):
                r1 = min(n, r0 + window_rows)
                window = np.memmap(
                    path,
                    dtype=np_dtype,
                    mode="r+",
                    offset=offset + (t * n + r0) * f * itemsize,
                    shape=(r1 - r0, f),
                )
                window[:, c0:c1] = block[t, r0:r1].numpy()
                del window  # unmap: written pages leave this process's RSS
        del block
    del staging
    return torch.from_numpy(np.load(path, mmap_mode="r+"))
