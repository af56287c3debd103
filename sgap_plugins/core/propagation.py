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

With ``rows=``, ``out=`` or features given as a numpy array (e.g. a memory-mapped ``.npy``),
:class:`ColumnBlocks` runs any of the three one hop at a time over fp32 column blocks of
every node, keeping only the selected rows of each hop: the memory is a few ``[N, block]``
buffers whose width comes from ``memory_budget``, never a copy of ``x`` or of a whole hop.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, cast

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
    _check_feature_layout(x, num_nodes, name)
    if x.numel() and not _all_finite(x):
        bad = int((~torch.isfinite(x)).any(dim=1).sum())
        raise ValueError(
            f"{name} contains NaN or inf in {bad} row(s); impute or drop them before propagating"
        )
    return x


NUMPY_FEATURE_DTYPES = (np.float16, np.float32, np.float64)


def _check_feature_layout(x: Tensor | np.ndarray, num_nodes: int, name: str = "x") -> None:
    """Dtype and shape of ``[N, F]`` features, a tensor or a numpy array (nothing is read)."""
    if isinstance(x, Tensor):
        if not x.is_floating_point():
            raise TypeError(
                f"{name} must be a floating point tensor, got dtype {x.dtype}; use {name}.float()"
            )
    elif x.dtype.type not in NUMPY_FEATURE_DTYPES:
        raise TypeError(
            f"{name} must be a float16, float32 or float64 array, got dtype {x.dtype}; "
            f"convert it with {name}.astype(np.float32) (or save the .npy as float32)"
        )
    if x.ndim != 2:
        raise ValueError(f"{name} must have shape [num_nodes, F], got {list(x.shape)}")
    if x.shape[0] != num_nodes:
        raise ValueError(
            f"{name} has {x.shape[0]} rows but the graph has num_nodes={num_nodes}; "
            "pass one feature row per node"
        )


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


def check_rows(rows: Any, num_nodes: int, name: str = "rows") -> Tensor:
    """Validate selected node ids: 1-D integers in ``[0, N)``, each at most once. Returns an
    ``int64`` CPU tensor (sharing memory with a writable ``int64`` input)."""
    if isinstance(rows, Tensor):
        if rows.dtype == torch.bool:
            raise TypeError(
                f"{name} must hold node ids, got a boolean mask; pass mask.nonzero().flatten()"
            )
        if rows.is_floating_point() or rows.is_complex():
            raise TypeError(f"{name} must hold integer node ids, got dtype {rows.dtype}")
        ids = rows.detach().to("cpu", torch.int64)
    elif isinstance(rows, (np.ndarray, Sequence)) and not isinstance(rows, (str, bytes)):
        arr = np.asarray(rows)
        if arr.dtype == np.bool_:
            raise TypeError(
                f"{name} must hold node ids, got a boolean mask; pass np.flatnonzero(mask)"
            )
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"{name} must hold integer node ids, got dtype {arr.dtype}")
        if arr.dtype != np.int64 or not arr.flags.writeable or not arr.flags.c_contiguous:
            arr = np.array(arr, dtype=np.int64)  # torch cannot share read-only memory
        ids = torch.from_numpy(arr)
    else:
        raise TypeError(
            f"{name} must be a 1-D integer tensor or numpy array of node ids, "
            f"got {type(rows).__name__}"
        )
    if ids.dim() != 1:
        raise ValueError(f"{name} must be 1-D (one node id per row), got shape {list(ids.shape)}")
    if ids.numel():
        lo, hi = int(ids.min()), int(ids.max())
        if lo < 0 or hi >= num_nodes:
            bad = lo if lo < 0 else hi
            raise ValueError(
                f"{name} contains node id {bad} but the graph has num_nodes={num_nodes}; "
                f"pass ids in [0, {num_nodes})"
            )
        seen = torch.zeros(num_nodes, dtype=torch.bool)
        seen[ids] = True
        unique = int(seen.sum())
        if unique != ids.numel():
            ordered = ids.sort().values
            repeated = ordered[1:][ordered[1:] == ordered[:-1]].unique()
            raise ValueError(
                f"{name} repeats {repeated.numel()} node id(s) (e.g. {repeated[:5].tolist()}); "
                f"pass each node once (np.unique({name}) if the order does not matter)"
            )
    return ids


KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
REORDERINGS = (None, "degree", "rcm")
DEFAULT_MEMORY_BUDGET = 2**30
# Temporaries of row-chunked copies (gathers, finiteness scans) stay near this size.
_CHUNK_BYTES = 16 * 2**20


def propagate(
    graph: Any,
    x: Tensor | np.ndarray,
    k: int,
    aggregator: str | GraphAggregator = "aug_na",
    *,
    num_nodes: int | None = None,
    edge_weight: Tensor | None = None,
    rows: Tensor | np.ndarray | Sequence[int] | None = None,
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
        x: node features ``[N, F]``: a tensor (on the CPU or a GPU) or a numpy array, e.g.
            ``np.load(path, mmap_mode="r")`` (fp16/fp32/fp64), read one column block at a
            time.
        k: number of hops, ``0 ≤ k ≤ 64``.
        aggregator: registry name (``"aug_na"``, ``"ppr"``, ``"triangle"``, or a plugin's) or
            a :class:`GraphAggregator` instance.
        num_nodes: ``N`` for an ``edge_index`` graph (default: ``x.size(0)``).
        edge_weight: optional ``[E]`` weights for an ``edge_index`` or framework graph.
        rows: node ids ``[R]`` (1-D, distinct, any order): keep the hops of these nodes only,
            ``out[:, i] = M[:, rows[i]]``. Every hop is still computed for all nodes (in fp32
            column blocks), so the result equals slicing the full one bit for bit.
        dtype: storage dtype of the output (default: ``x``'s); accumulation is in at least
            fp32, so ``torch.bfloat16``/``torch.float16`` halve the hop tensor's memory.
        out: a path: stream the hops into a ``.npy`` file (``[k+1, R, F]``) one column block
            at a time instead of RAM, and return a tensor memory-mapped onto it. Needs a
            column-separable ``combine`` (all built-ins are) and a numpy dtype (not bf16).
            :func:`sgap_plugins.core.hop_folder.precompute` adds a manifest and resuming.
        memory_budget: bytes of working memory of the column-block mode (``rows=``, ``out=``
            or a numpy ``x``; default 1 GiB): the block is as wide as ``2`` (``3`` for
            ``ppr`` and plugin ``combine``) fp32 buffers ``[N, block]`` that fit in it.
        reorder: ``"degree"`` or ``"rcm"`` renumbers nodes for cache locality inside the
            kernels (undone on output; the result is unchanged), ``None`` keeps the order.
        **params: aggregator parameters, e.g. ``r=0.5`` or ``alpha=0.1``.

    Returns:
        One contiguous tensor ``[k+1, N, F]`` (``[k+1, R, F]`` with ``rows``); ``out[0]`` is
        ``x`` (its selected rows).
    """
    streamed = out is not None or rows is not None or not isinstance(x, Tensor)
    if not streamed:
        if memory_budget is not None:
            raise ValueError(
                "memory_budget bounds the column-block mode only; pass out=PATH or rows=idx"
            )
        k = check_hops(k)
        agg = resolve_graph_aggregator(aggregator, **params)
        csr = _graph_of(graph, x, num_nodes, edge_weight)
        x = check_features(x, csr.num_nodes)
        out_dtype = check_dtype(dtype, x.dtype)
        plan = _Plan.build(csr, agg, x, out_dtype, check_reorder(reorder))
        return plan.run(x, k, out_dtype)
    if out is not None and not isinstance(out, (str, os.PathLike)):
        raise TypeError(f"out must be a file path or None, got {type(out).__name__}")
    if isinstance(x, (Tensor, np.ndarray)):  # otherwise prepare names x's type
        graph = _graph_of(graph, x, num_nodes, edge_weight)
    blocks = ColumnBlocks.prepare(
        graph,
        x,
        k,
        aggregator,
        rows=rows,
        dtype=dtype,
        memory_budget=memory_budget,
        reorder=reorder,
        npy=out is not None,
        **params,
    )
    if out is None:
        target = torch.empty(blocks.shape, dtype=blocks.dtype, device=blocks.device)
        for c0, c1 in blocks.spans:
            blocks.run(c0, c1, target)
        return target
    path = os.fspath(out)
    np_dtype = numpy_dtype(blocks.dtype)
    if 0 in blocks.shape:  # nothing to stream (and nothing to memory-map)
        np.save(path, np.empty(blocks.shape, dtype=np_dtype))
        return torch.from_numpy(np.load(path))
    mapped = np.lib.format.open_memmap(path, mode="w+", dtype=np_dtype, shape=blocks.shape)
    target = torch.from_numpy(mapped)
    for c0, c1 in blocks.spans:
        blocks.run(c0, c1, target)
    mapped.flush()
    del target, mapped
    return torch.from_numpy(np.load(path, mmap_mode="r+"))


def _graph_of(
    graph: Any, x: Tensor | np.ndarray, num_nodes: int | None, edge_weight: Tensor | None
) -> CSRGraph:
    """:func:`as_csr_graph`, where an ``edge_index`` graph has ``N = x.shape[0]`` nodes
    unless ``num_nodes`` says otherwise."""
    if isinstance(graph, Tensor) and num_nodes is None and x.ndim == 2:
        num_nodes = x.shape[0]
    return as_csr_graph(graph, num_nodes, edge_weight)


def numpy_dtype(dtype: torch.dtype) -> np.dtype:
    """The numpy dtype of a torch dtype (``ValueError`` for bfloat16, which numpy lacks)."""
    if dtype == torch.bfloat16:
        raise ValueError(
            "a .npy file cannot hold bfloat16 (numpy has no such dtype); pass "
            "dtype=torch.float16 or torch.float32"
        )
    return torch.empty((), dtype=dtype).numpy().dtype


def torch_dtype(dtype: np.dtype) -> torch.dtype:
    """The torch dtype of a numpy dtype."""
    return torch.from_numpy(np.empty(0, dtype=dtype)).dtype


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


def check_dtype(dtype: Any, x: Tensor | torch.dtype) -> torch.dtype:
    """``dtype`` validated, defaulting to ``x``'s (``x`` may be a tensor or a dtype)."""
    if dtype is None:
        return x.dtype if isinstance(x, Tensor) else x
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


def _needs_x0(agg: GraphAggregator) -> bool:
    """Whether ``combine`` reads the hop-0 message (PageRank's teleport, plugin rules)."""
    return type(agg).combine is not GraphAggregator.combine


@dataclass
class _Rule:
    """One hop's rule in the kernels' terms (:func:`sgap_plugins.ops.kernels.propagate_hops`):
    ``m_v = (1-α) r_v (Σ_e w_e c_u m_u + [self_loops] c_v m_v) + α x_v``."""

    weight: Tensor | None = None  # [E] w_e, None: every edge weighs 1
    row_scale: Tensor | None = None  # [N] r_v
    col_scale: Tensor | None = None  # [N] c_u
    alpha: float = 0.0
    self_loops: bool = False
    keep_empty: bool = False

    @classmethod
    def fused(cls, csr: CSRGraph, agg: AugNormAdj | PersonalizedPageRank) -> _Rule:
        """``aug_na``/``ppr`` on the raw unweighted CSR: ``d̃_v^{r-1}`` and ``d̃_u^{-r}`` as
        scalings, and Ã = A + I implicitly (the kernel adds the missing self loops)."""
        r, alpha = (agg.r, 0.0) if isinstance(agg, AugNormAdj) else (0.5, agg.alpha)
        deg = ops.unweighted_degree(csr.rowptr, csr.col, agg.add_self_loops)
        return cls(
            row_scale=_inv_pow(deg, 1.0 - r),
            col_scale=_inv_pow(deg, r),
            alpha=alpha,
            self_loops=agg.add_self_loops,
            keep_empty=agg.keep_isolated,  # an empty row keeps its own message only on request
        )

    @classmethod
    def generic(cls, transition: CSRGraph, agg: GraphAggregator) -> _Rule:
        """The explicit weights of ``agg.transition``, and PageRank's teleport in the kernel
        (any other ``combine`` runs in Python, see :attr:`_Plan.per_hop`)."""
        weight = None if transition.weight is None else transition.weight.float()
        alpha = 0.0
        if type(agg).combine is PersonalizedPageRank.combine:
            alpha = cast(PersonalizedPageRank, agg).alpha
        return cls(weight=weight, alpha=alpha)

    def reordered(self, perm: Tensor, edge_pos: Tensor) -> _Rule:
        """The rule of the graph renumbered by ``perm`` (edge ``i`` was edge ``edge_pos[i]``)."""
        return _Rule(
            weight=None if self.weight is None else self.weight[edge_pos],
            row_scale=None if self.row_scale is None else self.row_scale[perm],
            col_scale=None if self.col_scale is None else self.col_scale[perm],
            alpha=self.alpha,
            self_loops=self.self_loops,
            keep_empty=self.keep_empty,
        )

    def kwargs(self) -> dict[str, Any]:
        """The keyword arguments of the kernel entry points."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class _Plan:
    """How one propagation runs: kernel arguments (``use_kernels``) or the reference."""

    transition: CSRGraph | None  # reference / generic path
    agg: GraphAggregator
    use_kernels: bool
    rowptr: Tensor | None = None
    col: Tensor | None = None
    rule: _Rule = field(default_factory=_Rule)
    node_map: Tensor | None = None
    per_hop: bool = False  # plugin combine: one kernel call per hop, combine in Python
    _sparse: dict[tuple[torch.dtype, torch.device], Tensor] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        csr: CSRGraph,
        agg: GraphAggregator,
        x: Tensor,
        out_dtype: torch.dtype,
        reorder: str | None,
    ) -> _Plan:
        """The fused kernels for unweighted ``aug_na``/``ppr``, the generic kernel on
        ``agg.transition(csr)`` otherwise, the reference where no kernel serves ``x`` and
        ``out_dtype`` (then ``reorder`` is moot: the result never depends on it)."""
        if not _kernels_usable(x, out_dtype):
            return cls(transition=agg.transition(csr), agg=agg, use_kernels=False)
        transition: CSRGraph | None
        if (
            csr.weight is None
            and isinstance(agg, (AugNormAdj, PersonalizedPageRank))
            and type(agg) in (AugNormAdj, PersonalizedPageRank)  # a subclass may change the rule
        ):
            kernel_graph, transition, rule = csr, None, _Rule.fused(csr, agg)
        else:
            kernel_graph = transition = agg.transition(csr)
            rule = _Rule.generic(transition, agg)
        # The kernels apply no combine or PageRank's; any other runs in Python per hop.
        per_hop = type(agg).combine not in (GraphAggregator.combine, PersonalizedPageRank.combine)
        plan = cls(
            transition=transition,
            agg=agg,
            use_kernels=True,
            rowptr=kernel_graph.rowptr,
            col=kernel_graph.col,
            rule=rule,
            per_hop=per_hop,
        )
        return plan.reordered(reorder)

    def reordered(self, method: str | None) -> _Plan:
        """Renumber nodes for locality; ``node_map`` makes the kernel undo it on output."""
        if method is None or self.rowptr is None or self.col is None or self.rowptr.numel() <= 1:
            return self
        n = self.rowptr.numel() - 1
        perm, permuted = ops.kernels.locality_order(self.rowptr, self.col, n, method)
        pos = torch.from_numpy(permuted.data - 1)
        perm_t = torch.from_numpy(perm)
        self.rowptr = torch.from_numpy(permuted.indptr.astype(np.int64))
        self.col = torch.from_numpy(permuted.indices).to(self.col.dtype)
        self.rule = self.rule.reordered(perm_t, pos)
        self.node_map = perm_t
        return self

    def run(self, x: Tensor, k: int, out_dtype: torch.dtype, out: Tensor | None = None) -> Tensor:
        """All hops of ``x`` (``[N, F]``) into ``out`` (allocated when ``None``)."""
        if not self.use_kernels:
            assert self.transition is not None
            result = propagate_reference(self.transition, self.agg, x, k, out_dtype)
            if out is None:
                return result
            out.copy_(result)
            return out
        assert self.rowptr is not None and self.col is not None
        if out is None:
            out = torch.empty((k + 1, *x.shape), dtype=out_dtype, device=x.device)
        if self.per_hop:
            return self._run_per_hop(x, k, out)
        return ops.propagate_hops(
            self.rowptr, self.col, x, out, node_map=self.node_map, **self.rule.kwargs()
        )

    def _run_per_hop(self, x: Tensor, k: int, out: Tensor) -> Tensor:
        assert self.rowptr is not None and self.col is not None
        out[0] = x
        m0 = x.float()
        prev = m0
        step = torch.empty((2, *x.shape), dtype=torch.float32, device=x.device)
        for t in range(1, k + 1):
            ops.propagate_hops(
                self.rowptr, self.col, prev, step, weight=self.rule.weight, node_map=self.node_map
            )
            prev = self.agg.combine(step[1].clone(), m0, t)
            out[t] = prev
        return out

    def step(self, prev: Tensor, cur: Tensor, x0: Tensor, t: int) -> None:
        """Hop ``t`` of a column block in working order: ``cur = combine(W prev, x0, t)``.

        The numbers of every column are those :meth:`run` computes for it (same kernel, same
        per-row summation order, the same ``combine``), whatever the block's width.
        """
        if not self.use_kernels:
            assert self.transition is not None
            key = (prev.dtype, prev.device)
            if key not in self._sparse:
                self._sparse[key] = self.transition.to_torch_csr(prev.dtype).to(prev.device)
            cur.copy_(self.agg.combine(self._sparse[key] @ prev, x0, t))
            return
        assert self.rowptr is not None and self.col is not None
        teleport = x0 if self.rule.alpha else None  # only the teleport reads x0
        ops.kernels.propagate_step(
            self.rowptr, self.col, prev, cur, x0=teleport, **self.rule.kwargs()
        )
        if self.per_hop:
            cur.copy_(self.agg.combine(cur.clone(), x0, t))


@dataclass
class ColumnBlocks:
    """Propagation one fp32 column block and one hop at a time, keeping selected rows.

    For a block of columns ``[c0, c1)`` of ``x`` (read from a tensor or a numpy array, e.g. a
    memory-mapped ``.npy``, and checked for NaN/inf), hop ``t`` of **all** nodes is computed
    from hop ``t-1`` by :meth:`_Plan.step` in fp32 working buffers ``[N, c1-c0]`` (two, or
    three when ``combine`` reads ``m^0``), and rows ``rows`` of it are written to
    ``out[t, :, c0:c1]``. Working memory is those buffers plus fixed-size chunks; the block
    width comes from the memory budget and the shapes only, so every run of the same problem
    has the same blocks (what resuming a killed run relies on).

    Build with :meth:`prepare`; :attr:`spans` lists the blocks, :meth:`run` computes one.
    """

    graph: CSRGraph  # the input graph (the plan may hold a transformed one)
    plan: _Plan
    x: Tensor | np.ndarray
    k: int
    dtype: torch.dtype  # storage dtype of the hops
    compute: torch.dtype  # float32, or float64 for float64 features
    rows: Tensor | None  # selected node ids (None: all nodes, in order)
    width: int
    budget: int
    device: torch.device
    num_buffers: int
    _gather: Tensor | None = None  # working-order indices of the kept rows
    _order: Tensor | None = None  # node of each working row (reordering), else None
    _buffers: Tensor | None = None

    @classmethod
    def prepare(
        cls,
        graph: Any,
        x: Tensor | np.ndarray,
        k: int,
        aggregator: str | GraphAggregator = "aug_na",
        *,
        rows: Any = None,
        dtype: torch.dtype | None = None,
        memory_budget: int | None = None,
        reorder: str | None = None,
        npy: bool = False,
        **params: Any,
    ) -> ColumnBlocks:
        """Validate everything (cheaply: ``x`` is checked for NaN/inf block by block as it is
        read) and choose the block width. The arguments are :func:`propagate`'s; ``graph`` is
        anything :func:`as_csr_graph` takes (an ``edge_index`` has ``x``'s rows as nodes;
        :func:`propagate` converts one with ``num_nodes``/``edge_weight`` first). ``npy``:
        the hops go to a ``.npy`` file, so their dtype must exist in numpy."""
        k = check_hops(k)
        agg = resolve_graph_aggregator(aggregator, **params)
        if not isinstance(x, (Tensor, np.ndarray)):
            raise TypeError(
                "x must be a torch.Tensor or a numpy array of shape [N, F] (a .npy file opens "
                f"with np.load(path, mmap_mode='r')), got {type(x).__name__}"
            )
        csr = _graph_of(graph, x, None, None)
        n = csr.num_nodes
        _check_feature_layout(x, n)
        in_dtype = x.dtype if isinstance(x, Tensor) else torch_dtype(x.dtype)
        out_dtype = check_dtype(dtype, in_dtype)
        if npy:
            numpy_dtype(out_dtype)
        budget = check_memory_budget(memory_budget)
        ids = None if rows is None else check_rows(rows, n)
        device = x.device if isinstance(x, Tensor) else torch.device("cpu")
        compute = torch.float64 if in_dtype == torch.float64 else torch.float32
        probe = torch.empty(0, dtype=compute, device=device)
        plan = _Plan.build(csr, agg, probe, out_dtype, check_reorder(reorder))
        num_buffers = 3 if _needs_x0(agg) else 2
        f = x.shape[1]
        per_column = n * num_buffers * probe.element_size()
        if per_column > budget:
            raise ValueError(
                f"memory_budget={budget} bytes is below one column block: N={n} nodes need "
                f"{num_buffers} {compute} buffers of N values per column, at least "
                f"{per_column} bytes; raise memory_budget (the CLI's --memory-budget) to "
                f"{per_column} or more"
            )
        width = max(1, min(f, budget // max(1, per_column)))
        if width >= 16 and width < f:
            width -= width % 16  # whole 64-byte fp32 lines per gathered row
        order = plan.node_map
        gather = ids
        if order is not None:  # working row v is node order[v]: gather through the inverse
            inverse = torch.empty_like(order)
            inverse[order] = torch.arange(n)
            gather = inverse if ids is None else inverse[ids]
        return cls(
            graph=csr,
            plan=plan,
            x=x,
            k=k,
            dtype=out_dtype,
            compute=compute,
            rows=ids,
            width=width,
            budget=budget,
            device=device,
            num_buffers=num_buffers,
            _gather=None if gather is None else gather.to(device),
            _order=order,
        )

    @property
    def num_nodes(self) -> int:
        return int(self.x.shape[0])

    @property
    def num_features(self) -> int:
        return int(self.x.shape[1])

    @property
    def num_rows(self) -> int:
        return self.num_nodes if self.rows is None else int(self.rows.numel())

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(k+1, R, F)`` of the hops."""
        return (self.k + 1, self.num_rows, self.num_features)

    @property
    def spans(self) -> list[tuple[int, int]]:
        """The column blocks ``[(c0, c1), …]``, left to right."""
        return self.spans_of(0, self.num_features)

    def spans_of(self, start: int, stop: int) -> list[tuple[int, int]]:
        """The column blocks of columns ``[start, stop)`` (e.g. one rank's share of ``F``),
        :attr:`width` wide from ``start``. A column's numbers never depend on its block
        (:meth:`_Plan.step`), so any split of the columns gives the same hops."""
        if not 0 <= start <= stop <= self.num_features:
            raise ValueError(
                f"columns [{start}, {stop}) are not within [0, {self.num_features}) of x"
            )
        w = self.width
        return [(c0, min(stop, c0 + w)) for c0 in range(start, stop, w)]

    @property
    def working_bytes(self) -> int:
        """Bytes of the fp32 (fp64) working buffers."""
        itemsize = torch.empty((), dtype=self.compute).element_size()
        return self.num_buffers * self.num_nodes * self.width * itemsize

    def run(
        self,
        c0: int,
        c1: int,
        out: Tensor,
        on_hop: Callable[[int], None] | None = None,
        *,
        column_offset: int = 0,
    ) -> None:
        """Hops ``0..k`` of columns ``[c0, c1)`` into ``out[:, :, c0-o:c1-o]`` with
        ``o = column_offset`` (``out`` is ``[k+1, R, F]``, or the ``[k+1, R, F']`` part of
        the columns from ``o`` on; e.g. mapped onto a ``.npy``); ``on_hop(t)`` after each
        hop."""
        n, w = self.num_nodes, c1 - c0
        if n == 0 or w == 0:
            return
        out = out[:, :, max(0, c0 - column_offset) : c1 - column_offset]
        if c0 < column_offset or out.size(2) != w:
            raise ValueError(
                f"out holds columns [{column_offset}, {column_offset + out.size(2)}) at most, "
                f"not [{c0}, {c1})"
            )
        if self._buffers is None:  # allocated once, reused by every block
            self._buffers = torch.empty(
                (self.num_buffers, n, self.width), dtype=self.compute, device=self.device
            )
        bufs = [b[:, :w] for b in self._buffers]
        x0 = bufs[0]
        self._load(c0, c1, x0)
        self._emit(out[0], x0)
        if on_hop is not None:
            on_hop(0)
        # Hops alternate between two buffers; x0's is one of them unless combine reads m^0.
        pair = bufs[1:] if self.num_buffers == 3 else bufs
        prev = x0
        for t in range(1, self.k + 1):
            cur = pair[t % 2]  # never prev: hop t-1 sits in pair[(t-1) % 2] (or is x0)
            self.plan.step(prev, cur, x0, t)
            self._emit(out[t], cur)
            prev = cur
            if on_hop is not None:
                on_hop(t)

    def _chunk_rows(self, width: int) -> int:
        return max(1, _CHUNK_BYTES // max(1, width * 4))

    def _load(self, c0: int, c1: int, into: Tensor) -> None:
        """``into[v] = x[order[v], c0:c1]`` converted to the compute dtype, then checked."""
        n, order, x = self.num_nodes, self._order, self.x
        step = self._chunk_rows(c1 - c0)
        if isinstance(x, Tensor):
            if order is None:
                into.copy_(x[:, c0:c1])
            else:
                for i in range(0, n, step):
                    idx = order[i : i + step].to(x.device)
                    into[i : i + step].copy_(x[:, c0:c1].index_select(0, idx))
        else:
            dst = into.numpy()
            for i in range(0, n, step):  # chunks: fancy indexing copies what it selects
                src = x[i : i + step, c0:c1] if order is None else x[order[i : i + step], c0:c1]
                np.copyto(dst[i : i + step], src, casting="unsafe")
        if not _all_finite(into):
            self._raise_not_finite(into, c0)

    def _raise_not_finite(self, block: Tensor, c0: int) -> None:
        bad_rows: list[Tensor] = []
        bad_cols = torch.zeros(block.size(1), dtype=torch.bool, device=block.device)
        step = self._chunk_rows(block.size(1))
        for i in range(0, block.size(0), step):
            mask = ~torch.isfinite(block[i : i + step])
            bad_rows.append(mask.any(dim=1).nonzero().flatten() + i)
            bad_cols |= mask.any(dim=0)
        working = torch.cat(bad_rows).cpu()
        nodes = working if self._order is None else self._order[working]
        cols = (bad_cols.nonzero().flatten() + c0).cpu()
        raise ValueError(
            f"x contains NaN or inf in {nodes.numel()} row(s) of columns "
            f"{c0}..{c0 + block.size(1) - 1}"
            f" (rows {nodes[:5].tolist()}{' …' if nodes.numel() > 5 else ''}, columns "
            f"{cols[:5].tolist()}{' …' if cols.numel() > 5 else ''}); impute or drop them "
            "before propagating"
        )

    def _emit(self, dst: Tensor, hop: Tensor) -> None:
        """``dst[i] = hop[gather[i]]`` (all rows without selection), cast to the storage
        dtype, in row chunks so the gathered copy stays small."""
        if self._gather is None:
            dst.copy_(hop)
            return
        step = self._chunk_rows(hop.size(1))
        for i in range(0, self._gather.numel(), step):
            dst[i : i + step].copy_(hop.index_select(0, self._gather[i : i + step]))
