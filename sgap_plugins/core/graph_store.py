"""Build a :class:`~sgap_plugins.core.graph.CSRGraph` from edge files on disk, out of core.

:func:`build_csr` turns one or more ``.npy`` edge lists of shape ``[2, E]`` (row 0 = source,
row 1 = destination, as ``edge_index``) into the graph folder that
:meth:`CSRGraph.load <sgap_plugins.core.graph.CSRGraph.load>` reads, in three streaming passes
over chunks of ``chunk_edges`` edges:

1. **count** — validate each chunk (dtype, shape, ``0 <= id < N``) and accumulate the
   in-degrees with ``np.bincount``; ``rowptr`` is their cumulative sum;
2. **sort runs** — sort each chunk by destination and append it to a temporary file (one
   sorted run per chunk, written sequentially once), noting where each row range starts in
   it; the row ranges hold at most ``chunk_edges`` edges each (from ``rowptr``);
3. **merge** — for each row range, read its piece of every run, sort by (row, source) and
   merge duplicates, appending the final ``col`` (and ``weight``) and the new ``rowptr``.

Peak anonymous memory is ``O(N)`` (16 bytes per node: the degrees and ``rowptr``) plus
``O(chunk_edges)`` (50–80 bytes per chunk edge, measured), never ``O(E)``: the edges live in
files, read through memory maps and written sequentially (each byte of the temporary runs
once), whose pages the kernel writes back and drops as it needs.
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .graph import (
    GRAPH_ARRAYS,
    GRAPH_JSON,
    CSRGraph,
    _check_num_nodes,
    index_dtype,
    write_graph_json,
)

EdgeFiles = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]
DUPLICATES = ("sum", "drop")


@dataclass(frozen=True)
class _EdgeFile:
    path: Path
    array: np.ndarray  # read-only memory map, [2, E]

    @property
    def num_edges(self) -> int:
        return int(self.array.shape[1])


def build_csr(
    edge_files: EdgeFiles,
    out_dir: str | os.PathLike[str],
    *,
    num_nodes: int | None = None,
    symmetrize: bool = False,
    duplicates: str = "sum",
    chunk_edges: int = 1 << 24,
    progress: bool = False,
) -> CSRGraph:
    """Build a CSR graph (rows = destinations) from ``.npy`` edge files, in streaming passes.

    Args:
        edge_files: a ``.npy`` file of shape ``[2, E]`` (``int32`` or ``int64``; row 0 =
            source ``u``, row 1 = destination ``v`` of edge ``u → v``), or a sequence of
            them, read as one concatenated edge list.
        out_dir: folder for ``rowptr.npy`` (``int64`` ``[N + 1]``), ``col.npy``
            (``int32`` when ``N < 2**31``, else ``int64``; ``[E']``), ``weight.npy``
            (``float32`` ``[E']``, weighted graphs only) and ``graph.json``, written last and
            atomically: a folder without it is never a finished graph. Existing graph files
            there are replaced.
        num_nodes: ``N``; default ``max id + 1``. Every id must satisfy ``0 <= id < N``.
        symmetrize: build ``A ∪ Aᵀ`` (both directions of every edge are streamed), as
            ``CSRGraph.from_edge_index(...).symmetrize()``: union of the edge sets for
            unweighted graphs, element-wise ``max(A, Aᵀ)`` for weighted ones. Citation graphs
            such as ogbn-papers100M are directed; SIGN and GAMLP propagate on the undirected
            graph.
        duplicates: ``"sum"`` sums repeated edges into weights ``A_vu`` = multiplicity, exactly
            as :meth:`CSRGraph.from_edge_index` (the graph is weighted as soon as one edge
            repeats); ``"drop"`` keeps one copy of each edge and an unweighted graph, which is
            what papers100M pipelines do and what the fused propagation kernels need
            (``sgap precompute`` defaults to it).
        chunk_edges: edges held in memory at a time (50–80 bytes of memory per chunk edge; one
            row with more edges than this is merged on its own).
        progress: show a tqdm bar per pass.

    Returns:
        ``CSRGraph.load(out_dir, mmap=True)``: tensors memory-mapped onto the new files.
    """
    if duplicates not in DUPLICATES:
        raise ValueError(f"duplicates must be one of {DUPLICATES}, got {duplicates!r}")
    if isinstance(chunk_edges, bool) or not isinstance(chunk_edges, (int, np.integer)):
        raise TypeError(f"chunk_edges must be an int, got {type(chunk_edges).__name__}")
    if chunk_edges < 1:
        raise ValueError(f"chunk_edges must be >= 1, got {chunk_edges}")
    chunk_edges = int(chunk_edges)
    out = Path(out_dir)
    files = _open_edge_files(edge_files, out)
    if num_nodes is not None:
        num_nodes = _check_num_nodes(num_nodes)

    # Pass 1 writes nothing, so every input error is raised before out_dir is touched.
    degree, n = _count(files, num_nodes, symmetrize, chunk_edges, progress)
    rowptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(degree, out=rowptr[1:])
    del degree

    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    (out / GRAPH_JSON).unlink(missing_ok=True)
    tag = f"{os.getpid()}"
    tmp_col = out / f".col.{tag}.tmp"
    written = [out / name for name in GRAPH_ARRAYS]
    try:
        # With duplicates summed and both directions streamed, the direction is kept in the
        # lowest bit (key = 2 u + direction): A and Aᵀ are summed apart, then max-combined.
        tagged = symmetrize and duplicates == "sum"
        bits = _key_bits(n, tagged)
        bounds = _row_ranges(rowptr, chunk_edges, bits)
        runs = _sort_runs(files, bounds, tmp_col, bits, symmetrize, tagged, chunk_edges, progress)
        num_edges, weighted = _merge(
            tmp_col, runs, rowptr, bounds, out, bits, duplicates, tagged, progress
        )
        del rowptr
        write_graph_json(
            out,
            num_nodes=n,
            num_edges=num_edges,
            col_dtype=str(index_dtype(n)).removeprefix("torch."),
            weighted=weighted,
            symmetrize=symmetrize,
            duplicates=duplicates,
            inputs=[{"path": str(f.path.resolve()), "num_edges": f.num_edges} for f in files],
        )
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        if created:
            with contextlib.suppress(OSError):
                out.rmdir()  # only when empty
        raise
    finally:
        tmp_col.unlink(missing_ok=True)
        for path in out.glob(f".*.{tag}.tmp") if out.exists() else ():
            path.unlink(missing_ok=True)
    return CSRGraph.load(out, mmap=True)


# ---------------------------------------------------------------------------- input checks
def _open_edge_files(edge_files: EdgeFiles, out: Path) -> list[_EdgeFile]:
    if isinstance(edge_files, (str, os.PathLike)):
        paths = [Path(edge_files)]
    elif isinstance(edge_files, Sequence) and edge_files:
        paths = [Path(p) for p in edge_files]
    else:
        raise TypeError(
            "edge_files must be a path to a .npy file of shape [2, E] or a non-empty sequence "
            f"of such paths, got {edge_files!r}"
        )
    outputs = {(out / name).resolve() for name in (*GRAPH_ARRAYS, GRAPH_JSON)}
    files = []
    for path in paths:
        if path.resolve() in outputs:
            raise ValueError(
                f"edge_files contains {path}, which build_csr would overwrite; "
                "choose an out_dir that does not hold the edge files"
            )
        files.append(_EdgeFile(path, _map_edge_file(path)))
    return files


def _map_edge_file(path: Path) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(
            f"edge_files: {path} does not exist; pass the path of a .npy edge list of shape "
            "[2, E] (save one with np.save(path, edge_index))"
        )
    with open(path, "rb") as f:
        is_npy = f.read(6) == b"\x93NUMPY"
    if not is_npy:
        raise ValueError(
            f"edge_files: {path} is not a .npy file; convert the edge list with "
            "np.save(path, edge_index) (an int32/int64 array of shape [2, E])"
        )
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as err:
        raise ValueError(
            f"edge_files: {path} is not a plain .npy array ({err}); save an int32/int64 array "
            "of shape [2, E] with np.save"
        ) from err
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(
            f"edge_files: {path} holds dtype {arr.dtype}, node ids must be integers; save "
            "edge_index.astype(np.int64) (or int32)"
        )
    if arr.ndim != 2 or arr.shape[0] != 2:
        hint = (
            "; it looks like an [E, 2] list: save edge_index.T"
            if arr.ndim == 2 and arr.shape[1] == 2
            else ""
        )
        raise ValueError(
            f"edge_files: {path} has shape {list(arr.shape)}, expected [2, E] (row 0 = "
            f"source, row 1 = destination){hint}"
        )
    return arr


def _chunks(file: _EdgeFile, chunk_edges: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(source, destination) chunks of one file as int64 arrays in memory."""
    for start in range(0, file.num_edges, chunk_edges):
        part = np.asarray(file.array[:, start : start + chunk_edges])
        yield part[0].astype(np.int64), part[1].astype(np.int64)


def _bar(progress: bool, total: int, desc: str) -> Any:
    if not progress:
        return contextlib.nullcontext(None)
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="edge", unit_scale=True)


# ---------------------------------------------------------------------------- pass 1: count
def _count(
    files: list[_EdgeFile],
    num_nodes: int | None,
    symmetrize: bool,
    chunk_edges: int,
    progress: bool,
) -> tuple[np.ndarray, int]:
    """In-degrees of the (symmetrised) graph and ``N``; validates every id."""
    degree = np.zeros(num_nodes or 0, dtype=np.int64)
    total = sum(f.num_edges for f in files)
    with _bar(progress, total, "count in-degrees") as bar:
        for file in files:
            for src, dst in _chunks(file, chunk_edges):
                lo = min(int(src.min()), int(dst.min()))
                hi = max(int(src.max()), int(dst.max()))
                if lo < 0:
                    raise ValueError(
                        f"edge_files: {file.path} contains a negative node id ({lo}); node ids "
                        "must be 0 … N-1"
                    )
                if num_nodes is not None and hi >= num_nodes:
                    raise ValueError(
                        f"edge_files: {file.path} contains node id {hi} but "
                        f"num_nodes={num_nodes}; pass num_nodes >= {hi + 1}"
                    )
                if hi >= degree.size:  # num_nodes inferred: grow to the largest id seen
                    degree = np.concatenate([degree, np.zeros(hi + 1 - degree.size, np.int64)])
                degree += np.bincount(dst, minlength=degree.size)
                if symmetrize:
                    degree += np.bincount(src, minlength=degree.size)
                if bar is not None:
                    bar.update(src.size)
    return degree, int(degree.size)


# ---------------------------------------------------------------------------- pass 2: runs
def _key_bits(n: int, tagged: bool) -> int:
    """Bits of a key: a source id (``< N``), or ``2 u + direction`` (``< 2N``)."""
    return max(1, (2 * n if tagged else n) - 1).bit_length()


def _row_ranges(rowptr: np.ndarray, chunk_edges: int, bits: int) -> np.ndarray:
    """Boundaries ``0 = r_0 < r_1 < … < r_m = N`` of row ranges holding at most
    ``chunk_edges`` edges each (a larger row alone), few enough rows that
    ``(local row << bits) | key`` fits in an int64."""
    n = rowptr.size - 1
    max_rows = 1 << max(0, 62 - bits)
    bounds = [0]
    while bounds[-1] < n:
        r0 = bounds[-1]
        r1 = int(np.searchsorted(rowptr, rowptr[r0] + chunk_edges, side="right")) - 1
        bounds.append(min(max(r1, r0 + 1), n, r0 + max_rows))
    return np.asarray(bounds, dtype=np.int64)


def _sort_runs(
    files: list[_EdgeFile],
    bounds: np.ndarray,
    path: Path,
    bits: int,
    symmetrize: bool,
    tagged: bool,
    chunk_edges: int,
    progress: bool,
) -> list[tuple[int, np.ndarray]]:
    """Sort each chunk by destination and append it to a temporary file as one run of packed
    ``(row - r_j) << bits | key`` values (key: the source, or ``2 u + direction`` when
    ``tagged``), sequentially, so every byte is written once. Returns each run's start (in
    values) and the offsets of the row ranges ``bounds`` inside it."""
    runs: list[tuple[int, np.ndarray]] = []
    start = 0
    with (
        open(path, "wb") as out,
        _bar(progress, sum(f.num_edges for f in files), "sort chunks") as bar,
    ):
        for file in files:
            for src, dst in _chunks(file, chunk_edges):
                if tagged:
                    pieces = [(dst, 2 * src), (src, 2 * dst + 1)]
                else:
                    pieces = [(dst, src), (src, dst)] if symmetrize else [(dst, src)]
                for rows, keys in pieces:
                    if rows.size == 0:
                        continue
                    packed, offsets = _sort_run(rows, keys, bounds, bits)
                    out.write(packed.data)
                    runs.append((start, offsets))
                    start += packed.size
                    del packed
                if bar is not None:
                    bar.update(src.size)
        out.flush()
    return runs


def _sort_run(
    rows: np.ndarray, keys: np.ndarray, bounds: np.ndarray, bits: int
) -> tuple[np.ndarray, np.ndarray]:
    """One run: the edges sorted by row, packed as ``(row - r_j) << bits | key`` where
    ``r_j`` starts the row range of the row, and the offsets of the ranges in the run."""
    if int(bounds[-1]).bit_length() + bits <= 62:
        # One sort of (row << bits) | key: several times faster than an argsort.
        packed = rows << bits
        packed |= keys
        packed.sort()
        offsets = np.searchsorted(packed, bounds << bits)
    else:  # N beyond 2**31: rows and keys do not fit one int64 together
        order = np.argsort(rows)
        rows, keys = rows[order], keys[order]
        del order
        offsets = np.searchsorted(rows, bounds)
        packed = rows - np.repeat(bounds[:-1], np.diff(offsets))
        packed <<= bits
        packed |= keys
        return packed, offsets
    packed -= np.repeat(bounds[:-1] << bits, np.diff(offsets))
    return packed, offsets


# ---------------------------------------------------------------------------- pass 3: merge
def _merge(
    tmp_path: Path,
    runs: list[tuple[int, np.ndarray]],
    rowptr: np.ndarray,
    bounds: np.ndarray,
    out: Path,
    bits: int,
    duplicates: str,
    tagged: bool,
    progress: bool,
) -> tuple[int, bool]:
    """For each row range, gather its piece of every run, sort, merge duplicates and append
    the final arrays. Returns ``(E, weighted)``."""
    n = rowptr.size - 1
    total = int(rowptr[-1])
    packed = np.memmap(tmp_path, dtype=np.int64, mode="r", shape=(total,)) if total else None
    col_dtype = np.dtype(str(index_dtype(n)).removeprefix("torch."))
    sum_weights = duplicates == "sum"
    weighted = False
    num_edges = 0
    weight_file = (
        _NpyAppender(out / "weight.npy", np.float32, total)
        if sum_weights
        else contextlib.nullcontext(None)
    )
    with (
        _NpyAppender(out / "rowptr.npy", np.int64, n + 1) as rowptr_out,
        _NpyAppender(out / "col.npy", col_dtype, total) as col_out,
        weight_file as w_out,
        _bar(progress, total, "merge rows") as bar,
    ):
        rowptr_out.append(np.zeros(1, dtype=np.int64))
        for j in range(bounds.size - 1):
            r0, r1 = int(bounds[j]), int(bounds[j + 1])
            size = int(rowptr[r1] - rowptr[r0])
            counts = np.zeros(r1 - r0, dtype=np.int64)
            if size:
                assert packed is not None
                flat = np.concatenate([packed[s + int(o[j]) : s + int(o[j + 1])] for s, o in runs])
                rows, cols, weights = _merge_rows(flat, bits, tagged, sum_weights)
                del flat
                counts = np.bincount(rows, minlength=r1 - r0)
                col_out.append(cols.astype(col_dtype))
                if weights is not None and w_out is not None:
                    weighted = weighted or bool((weights != 1).any())
                    w_out.append(weights)
                del rows, cols, weights
            rowptr_out.append(num_edges + np.cumsum(counts))
            num_edges += int(counts.sum())
            if bar is not None:
                bar.update(size)
    del packed
    if sum_weights and not weighted:
        (out / "weight.npy").unlink()  # every multiplicity is 1: unweighted, as from_edge_index
    return num_edges, weighted


def _merge_rows(
    flat: np.ndarray, bits: int, tagged: bool, sum_weights: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Merge the packed ``local row << bits | key`` edges of one row range (any order).

    Returns each distinct edge's local row, column and (``sum_weights``) weight: the
    multiplicity, or with ``tagged`` keys the larger of the two directions' multiplicities."""
    flat.sort()
    starts = _run_starts(flat)
    weights = None
    if sum_weights:
        weights = np.diff(starts, append=flat.size).astype(np.float32)
    flat = flat[starts]
    if tagged:  # drop the direction bit; max over the two directions of each edge
        flat >>= 1
        bits -= 1
        starts = _run_starts(flat)
        assert weights is not None
        weights = np.maximum.reduceat(weights, starts)
        flat = flat[starts]
    rows = flat >> bits
    flat &= (1 << bits) - 1
    return rows, flat, weights


def _run_starts(sorted_values: np.ndarray) -> np.ndarray:
    """Index of the first element of every run of equal values (non-empty input)."""
    new = np.empty(sorted_values.size, dtype=bool)
    new[0] = True
    np.not_equal(sorted_values[1:], sorted_values[:-1], out=new[1:])
    return np.flatnonzero(new)


class _NpyAppender:
    """Write a 1-D ``.npy`` file by appending blocks, its length known only at the end.

    The header is sized for ``max_length`` up front and rewritten in place for the number of
    items appended, padded to the same size, when the block exits without an error."""

    def __init__(self, path: Path, dtype: Any, max_length: int) -> None:
        self.path = path
        self.dtype = np.dtype(dtype)
        self._count = 0
        self._header_size = len(self._header(max_length))
        self._file: BinaryIO = open(path, "wb")  # noqa: SIM115 - closed in __exit__
        self._file.write(b"\0" * self._header_size)

    def _header(self, length: int, size: int | None = None) -> bytes:
        text = f"{{'descr': '{self.dtype.str}', 'fortran_order': False, 'shape': ({length},), }}"
        if size is None:  # pad the whole header to a multiple of 64 bytes, as numpy does
            size = -(-(10 + len(text) + 1) // 64) * 64
        text += " " * (size - 10 - len(text) - 1) + "\n"
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin1")

    def append(self, block: np.ndarray) -> None:
        self._file.write(np.ascontiguousarray(block, dtype=self.dtype).data)
        self._count += block.size

    def __enter__(self) -> _NpyAppender:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is None:
                self._file.seek(0)
                self._file.write(self._header(self._count, self._header_size))
                self._file.flush()
                os.fsync(self._file.fileno())  # on disk before graph.json says finished
        finally:
            self._file.close()
