"""The framework-agnostic graph container.

:class:`CSRGraph` stores a (possibly weighted, possibly directed) graph in compressed sparse
row form with **rows as destination nodes**: row ``v`` lists the in-neighbours ``u`` of ``v``,
so one propagation step with edge weights ``W`` is

.. math::
    \\mathbf{m}'_v = \\sum_{u \\in \\mathcal{N}(v)} W_{vu} \\, \\mathbf{m}_u .

Every graph that reaches an aggregator or a kernel goes through :meth:`CSRGraph.from_edge_index`
or :meth:`CSRGraph.from_scipy`, which validate their input and raise errors that name the
offending argument.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from .durable_files import read_versioned_json, write_json_atomic, write_npy_atomic

INT32_MAX = 2**31 - 1
# The on-disk graph folder (CSRGraph.save / CSRGraph.load / core.graph_store.build_csr).
GRAPH_FORMAT = "sgap-csr"
GRAPH_FORMAT_VERSION = 1
GRAPH_JSON = "graph.json"
GRAPH_ARRAYS = ("rowptr.npy", "col.npy", "weight.npy")
# Graphs from this many edges count triangles with the C++ kernel (if available).
TRIANGLE_KERNEL_MIN_EDGES = 4096


def index_dtype(num_nodes: int) -> torch.dtype:
    """Column index dtype: ``int32`` while node ids fit, else ``int64``."""
    return torch.int32 if num_nodes <= INT32_MAX else torch.int64


def _check_weight(weight: Tensor | None, num_edges: int, name: str = "edge_weight") -> None:
    if weight is None:
        return
    if not isinstance(weight, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or None, got {type(weight).__name__}")
    if not weight.is_floating_point():
        raise TypeError(f"{name} must be a floating point tensor, got dtype {weight.dtype}")
    if weight.dim() != 1 or weight.numel() != num_edges:
        raise ValueError(
            f"{name} must have shape [num_edges] = [{num_edges}], got {list(weight.shape)}"
        )
    if num_edges and not bool(torch.isfinite(weight).all()):
        raise ValueError(f"{name} contains NaN or inf; clean the weights before propagating")
    if num_edges and bool((weight < 0).any()):
        raise ValueError(
            f"{name} must be non-negative (degree normalisation takes powers of row sums)"
        )


@dataclass(frozen=True, eq=False)
class CSRGraph:
    """A validated graph in CSR form, rows = destination nodes.

    Attributes:
        rowptr: ``int64`` tensor of shape ``[N + 1]``.
        col: column (source node) indices, ``[E]``; ``int32`` when ``N < 2**31``.
        weight: optional ``[E]`` floating edge weights; ``None`` means every edge weighs 1.
        num_nodes: ``N``.

    This is the API an aggregator plugin may rely on: :attr:`rowptr`, :attr:`col`,
    :attr:`weight`, :attr:`num_nodes`, :meth:`in_degree` and :meth:`with_weights`.
    """

    rowptr: Tensor
    col: Tensor
    weight: Tensor | None
    num_nodes: int

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_edge_index(
        cls,
        edge_index: Tensor,
        num_nodes: int | None = None,
        edge_weight: Tensor | None = None,
    ) -> CSRGraph:
        """Build from a COO ``edge_index`` of shape ``[2, E]`` (row 0 = source, row 1 =
        destination, PyG's ``flow="source_to_target"``). Duplicate edges are summed."""
        if not isinstance(edge_index, Tensor):
            raise TypeError(
                "edge_index must be a torch.Tensor of shape [2, E], "
                f"got {type(edge_index).__name__}"
            )
        if edge_index.is_floating_point() or edge_index.dtype == torch.bool:
            raise TypeError(
                f"edge_index must hold integer node ids (int64 or int32), got dtype "
                f"{edge_index.dtype}; convert with edge_index.long()"
            )
        if edge_index.dim() != 2 or edge_index.size(0) != 2:
            raise ValueError(
                f"edge_index must have shape [2, E], got {list(edge_index.shape)}; "
                "transpose an [E, 2] edge list with edge_index.t()"
            )
        num_edges = edge_index.size(1)
        if num_nodes is None:
            num_nodes = int(edge_index.max()) + 1 if num_edges else 0
        num_nodes = _check_num_nodes(num_nodes)
        if num_edges:
            lo, hi = int(edge_index.min()), int(edge_index.max())
            if lo < 0:
                raise ValueError(f"edge_index contains a negative node id ({lo})")
            if hi >= num_nodes:
                raise ValueError(
                    f"edge_index contains node id {hi} but num_nodes={num_nodes}; "
                    f"pass num_nodes >= {hi + 1}"
                )
        _check_weight(edge_weight, num_edges)
        src = edge_index[0].cpu().numpy().astype(np.int64, copy=False)
        dst = edge_index[1].cpu().numpy().astype(np.int64, copy=False)
        data = (
            np.ones(num_edges, dtype=np.float32)
            if edge_weight is None
            else edge_weight.detach().cpu().numpy()
        )
        mat = sp.csr_matrix((data, (dst, src)), shape=(num_nodes, num_nodes))
        mat.sum_duplicates()
        # Duplicate edges are summed (as PyG's and DGL's message passing do): an unweighted
        # edge list with repeated edges becomes weighted by the multiplicities.
        weighted = edge_weight is not None or bool((mat.data != 1).any())
        return cls._from_csr_matrix(mat, weighted=weighted)

    @classmethod
    def from_scipy(cls, matrix: sp.spmatrix | sp.sparray, weighted: bool | None = None) -> CSRGraph:
        """Build from a square scipy sparse matrix whose entry ``[v, u]`` is the weight of edge
        ``u → v`` (rows are destinations). ``weighted=None`` keeps the values unless all are 1."""
        if not sp.issparse(matrix):
            raise TypeError(f"matrix must be a scipy sparse matrix, got {type(matrix).__name__}")
        if matrix.shape[0] != matrix.shape[1]:
            raise ValueError(f"matrix must be square, got shape {matrix.shape}")
        mat = sp.csr_matrix(matrix)
        mat.sum_duplicates()
        if mat.nnz and not np.isfinite(mat.data).all():
            raise ValueError("matrix contains NaN or inf values")
        if mat.nnz and (mat.data < 0).any():
            raise ValueError("matrix values (edge weights) must be non-negative")
        if weighted is None:
            weighted = bool(mat.nnz) and not np.all(mat.data == 1)
        return cls._from_csr_matrix(mat, weighted=weighted)

    @classmethod
    def _from_csr_matrix(cls, mat: sp.csr_matrix, weighted: bool) -> CSRGraph:
        mat.sum_duplicates()  # also sorts indices within each row
        n = mat.shape[0]
        rowptr = torch.from_numpy(mat.indptr.astype(np.int64))
        col = torch.from_numpy(mat.indices.astype(np.int64)).to(index_dtype(n))
        weight = torch.from_numpy(mat.data.astype(np.float32)) if weighted else None
        return cls(rowptr, col, weight, n)

    # ------------------------------------------------------------------ basic API
    @property
    def num_edges(self) -> int:
        return int(self.col.numel())

    def in_degree(self) -> Tensor:
        """Weighted in-degree (row sums), ``float32`` of shape ``[N]``."""
        if self.weight is None:
            return (self.rowptr[1:] - self.rowptr[:-1]).to(torch.float32)
        rows = self.row_index()
        return torch.zeros(self.num_nodes, dtype=torch.float32).index_add_(
            0, rows, self.weight.to(torch.float32)
        )

    def row_index(self) -> Tensor:
        """The destination node of every edge (``int64``, ``[E]``): COO rows of the CSR."""
        # numpy's repeat: torch.repeat_interleave spreads even a handful of edges over
        # threads (~12 ms for 7 edges, which the plugin self-checks pay many times).
        counts = np.diff(self.rowptr.numpy())
        return torch.from_numpy(np.repeat(np.arange(self.num_nodes, dtype=np.int64), counts))

    def with_weights(self, weight: Tensor | None) -> CSRGraph:
        """Same structure, new edge weights (``None`` for unweighted)."""
        _check_weight(weight, self.num_edges, "weight")
        return CSRGraph(self.rowptr, self.col, weight, self.num_nodes)

    def to_scipy(self) -> sp.csr_matrix:
        data = (
            np.ones(self.num_edges, dtype=np.float32)
            if self.weight is None
            else self.weight.numpy()
        )
        return sp.csr_matrix(
            (data, self.col.numpy(), self.rowptr.numpy()), shape=(self.num_nodes, self.num_nodes)
        )

    def to_edge_index(self) -> tuple[Tensor, Tensor | None]:
        """COO ``([2, E] edge_index, weight)`` with row 0 = source, row 1 = destination."""
        return torch.stack([self.col.long(), self.row_index()]), self.weight

    def to_torch_csr(self, dtype: torch.dtype = torch.float32) -> Tensor:
        """A ``torch.sparse_csr_tensor`` of the weighted matrix (``int64`` indices)."""
        values = (
            torch.ones(self.num_edges, dtype=dtype)
            if self.weight is None
            else self.weight.to(dtype)
        )
        with warnings.catch_warnings():  # "sparse CSR support is in beta" on every call
            warnings.simplefilter("ignore", UserWarning)
            return torch.sparse_csr_tensor(
                self.rowptr, self.col.long(), values, (self.num_nodes, self.num_nodes)
            )

    # ------------------------------------------------------------------ transformations
    def add_self_loops(self, fill_value: float = 1.0) -> CSRGraph:
        """``Ã = A + I`` for nodes that have no self loop yet; existing loops keep their weight
        (PyG's ``add_remaining_self_loops``)."""
        mat = self.to_scipy()
        missing = np.ones(self.num_nodes, dtype=bool)
        missing[mat.diagonal().nonzero()[0]] = False
        # Explicitly stored zero-weight loops count as present too.
        rows = self.row_index().numpy()
        loops = rows[rows == self.col.numpy()]
        missing[loops] = False
        eye = sp.diags(missing.astype(np.float32) * fill_value, format="csr")
        out = (mat + eye).tocsr()
        return CSRGraph._from_csr_matrix(out, weighted=self.weight is not None or fill_value != 1)

    def symmetrize(self) -> CSRGraph:
        """``A ∪ Aᵀ``: unweighted graphs get the union of edge sets, weighted ones the
        element-wise maximum of ``A`` and ``Aᵀ``."""
        mat = self.to_scipy()
        out = mat.maximum(mat.T).tocsr()
        return CSRGraph._from_csr_matrix(out, weighted=self.weight is not None)

    def triangle_counts(self) -> Tensor:
        """Per-edge triangle counts ``T_vu`` (``float32``, ``[E]``, aligned with :attr:`col`):
        the number of triangles of the undirected simple graph that contain edge ``(v, u)``.
        Self loops count 0."""
        adj = self.to_scipy()
        adj = adj.maximum(adj.T).tocsr()
        adj.setdiag(0)
        adj.eliminate_zeros()
        adj.data[:] = 1.0
        from .. import ops

        # Sorted adjacency intersection in the C++ kernel: O(E · min degree), no A² matrix.
        # Tiny graphs (e.g. the plugin manager's aggregator checks) must not trigger a build.
        if self.num_edges >= TRIANGLE_KERNEL_MIN_EDGES and ops.available(torch.device("cpu")):
            adj.sort_indices()
            return ops.triangle_counts(
                torch.from_numpy(adj.indptr.astype(np.int64)),
                torch.from_numpy(adj.indices),
                self.rowptr,
                self.col,
            )
        common = (adj @ adj).multiply(adj).tocsr()  # T_vu for the symmetrised edges
        rows = self.row_index().numpy().copy()
        cols = self.col.numpy().astype(np.int64)
        counts = np.asarray(common[rows, cols]).ravel() if self.num_edges else np.zeros(0)
        return torch.from_numpy(counts.astype(np.float32))

    # ------------------------------------------------------------------ on disk
    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write the graph to ``folder`` as ``rowptr.npy`` (``int64`` ``[N + 1]``),
        ``col.npy`` (``[E]``), ``weight.npy`` (``float32`` ``[E]``, weighted graphs only)
        and ``graph.json`` (sizes, dtypes, format version), the folder format that
        :meth:`load` and :func:`sgap_plugins.core.graph_store.build_csr` share.

        ``graph.json`` is removed first and written last (atomically), so an interrupted save
        never leaves a folder that looks finished. Arrays are written to temporary names and
        renamed, so saving over the folder a graph was memory-mapped from is safe.
        Returns the folder."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        (out / GRAPH_JSON).unlink(missing_ok=True)
        col = self.col.to(index_dtype(self.num_nodes))
        arrays = {"rowptr.npy": self.rowptr.to(torch.int64), "col.npy": col}
        if self.weight is not None:
            arrays["weight.npy"] = self.weight.to(torch.float32)
        else:
            (out / "weight.npy").unlink(missing_ok=True)
        for name, tensor in arrays.items():
            write_npy_atomic(out / name, tensor.detach().cpu().numpy())
        write_graph_json(
            out,
            num_nodes=self.num_nodes,
            num_edges=self.num_edges,
            col_dtype=str(col.dtype).removeprefix("torch."),
            weighted=self.weight is not None,
        )
        return out

    @classmethod
    def load(cls, folder: str | os.PathLike[str], mmap: bool = True) -> CSRGraph:
        """Read a graph folder written by :meth:`save` or
        :func:`~sgap_plugins.core.graph_store.build_csr`.

        With ``mmap=True`` the tensors are memory-mapped onto the files, copy-on-write
        (``np.load(mmap_mode="c")``): nothing is read until used, the pages are file-backed
        (the kernel may drop them under memory pressure), and writing to a tensor never
        changes the file. ``mmap=False`` reads everything into memory.

        Checks the format version, every array's dtype and shape against ``graph.json`` and
        that ``rowptr`` starts at 0, ends at ``E`` and never decreases (``O(N)``); the column
        indices themselves are not scanned (``O(E)``)."""
        root = Path(folder)
        meta_path = root / GRAPH_JSON
        if not meta_path.is_file():
            raise FileNotFoundError(
                f"{meta_path} does not exist: {root} is not a finished graph folder; build it "
                "with sgap_plugins.core.graph_store.build_csr(edge_files, folder) or "
                "CSRGraph.save(folder) (an interrupted build leaves no graph.json)"
            )
        meta = read_versioned_json(
            meta_path, GRAPH_FORMAT, GRAPH_FORMAT_VERSION, "graph description", "rebuild the graph"
        )
        missing = {"num_nodes", "num_edges", "weighted"} - set(meta)
        if missing:
            raise ValueError(f"{meta_path} lacks {sorted(missing)}; rebuild the graph")
        n, e = _check_num_nodes(meta["num_nodes"]), int(meta["num_edges"])
        mode: Literal["c"] | None = "c" if mmap else None
        rowptr = _load_array(root / "rowptr.npy", mode, "int64", (n + 1,))
        col_dtype = "int32" if index_dtype(n) == torch.int32 else "int64"
        col = _load_array(root / "col.npy", mode, col_dtype, (e,))
        weight = (
            _load_array(root / "weight.npy", mode, "float32", (e,)) if meta["weighted"] else None
        )
        _check_rowptr(rowptr, e, root / "rowptr.npy")
        return cls(
            torch.from_numpy(rowptr),
            torch.from_numpy(col),
            None if weight is None else torch.from_numpy(weight),
            n,
        )

    def __repr__(self) -> str:
        w = "weighted" if self.weight is not None else "unweighted"
        return f"CSRGraph(num_nodes={self.num_nodes}, num_edges={self.num_edges}, {w})"


def write_graph_json(folder: Path, **fields: Any) -> None:
    """Write ``folder/graph.json`` atomically (temporary file + ``os.replace``): the marker
    of a finished graph folder, so it is always written after every array."""
    meta = {
        "format": GRAPH_FORMAT,
        "version": GRAPH_FORMAT_VERSION,
        "rowptr_dtype": "int64",
        "weight_dtype": "float32" if fields.get("weighted") else None,
        **fields,
    }
    write_json_atomic(folder / GRAPH_JSON, meta)


def _load_array(
    path: Path, mmap_mode: Literal["c"] | None, dtype: str, shape: tuple[int, ...]
) -> Any:
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing although graph.json describes it; the folder is damaged, "
            "rebuild the graph"
        )
    try:
        # A zero-length array cannot be memory-mapped; it costs nothing to read.
        arr = np.load(path, mmap_mode=mmap_mode if np.prod(shape) else None, allow_pickle=False)
    except ValueError as err:
        raise ValueError(f"{path} is not a readable .npy array ({err}); rebuild the graph") from err
    if arr.dtype != np.dtype(dtype) or arr.shape != shape:
        raise ValueError(
            f"{path} holds {arr.dtype} {list(arr.shape)}, graph.json expects {dtype} "
            f"{list(shape)}; the folder is inconsistent, rebuild the graph"
        )
    return arr


def _check_rowptr(rowptr: np.ndarray, num_edges: int, path: Path, block: int = 1 << 22) -> None:
    """``rowptr[0] == 0``, ``rowptr[-1] == E`` and non-decreasing, in blocks (no ``O(N)``
    temporary)."""
    if int(rowptr[0]) != 0 or int(rowptr[-1]) != num_edges:
        raise ValueError(
            f"{path} must start at 0 and end at num_edges={num_edges}, got "
            f"{int(rowptr[0])} … {int(rowptr[-1])}; rebuild the graph"
        )
    for start in range(0, rowptr.size - 1, block):
        part = rowptr[start : start + block + 1]
        if not bool((part[1:] >= part[:-1]).all()):
            raise ValueError(f"{path} decreases (row sizes must be >= 0); rebuild the graph")


def _check_num_nodes(num_nodes: int) -> int:
    if isinstance(num_nodes, bool) or not isinstance(num_nodes, (int, np.integer)):
        raise TypeError(f"num_nodes must be an int, got {type(num_nodes).__name__}")
    if num_nodes < 0:
        raise ValueError(f"num_nodes must be >= 0, got {num_nodes}")
    return int(num_nodes)
