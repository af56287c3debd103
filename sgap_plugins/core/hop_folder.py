"""The hop folder: propagated hops on disk, the unit that training, search and
:func:`load_hops` read.

A finished folder holds

* ``hops.npy`` — ``[K+1, R, F]``: hop ``t`` of the ``i``-th selected node is ``hops[t, i]``;
* ``rows.npy`` — ``int64`` ``[R]``: the node id of each row (all nodes, in order, without a
  selection);
* ``manifest.json`` — inputs, ``k``, the aggregator and its parameters, dtype, block width,
  timings; written **last** and atomically, so a folder without one is never mistaken for a
  finished result.

While :func:`precompute` runs, ``progress.json`` journals the finished column blocks, each
recorded only after its data is flushed to ``hops.npy``. A run killed at any point (even
``kill -9``) and started again with the same arguments resumes at the first unfinished
block; the block widths depend only on the problem and the memory budget, and every block is
computed by the same kernels in the same order, so the resumed ``hops.npy`` is byte-identical
to an uninterrupted one. Started with *different* arguments on an unfinished or finished
folder, it refuses (naming what differs) unless ``overwrite=True``.

A folder written by several ranks (:mod:`sgap_plugins.dist`, each rank a contiguous range
of columns) has the same files and manifest, plus ``"layout"``, ``"world_size"`` and
``"columns"`` (the ``[c0, c1)`` of each rank) in the manifest:

* ``"shared"`` — one ``hops.npy``, each rank having written its columns into it;
* ``"shards"`` — ``hops.rank{r}.npy`` ``[K+1, R, c1-c0]`` per rank (listed in
  ``"shards"``), which :func:`load_hops` concatenates along the last dimension.

Each rank journals its blocks in ``progress.rank{r}.json``. A single-process folder has no
``"layout"`` key (read as ``"single"``).
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np
import torch
from torch import Tensor

from .durable_files import fsync_path, read_versioned_json, write_json_atomic
from .fingerprint import aggregator_identity, content_hash, graph_fingerprint
from .graph_aggregators import GraphAggregator
from .propagation import ColumnBlocks, numpy_dtype, torch_dtype

HOPS = "hops.npy"
ROWS = "rows.npy"
MANIFEST = "manifest.json"
JOURNAL = "progress.json"
SHARD = "hops.rank{rank}.npy"  # the "shards" layout: one file of columns per rank
RANK_JOURNAL = "progress.rank{rank}.json"
FORMAT = "sgap-hops"
FORMAT_VERSION = 1
# rows.npy of all nodes is written in chunks of this many ids (no O(N) temporary).
_ROWS_CHUNK = 1 << 22


def precompute(
    graph: Any,
    x: Tensor | np.ndarray,
    k: int,
    aggregator: str | GraphAggregator = "aug_na",
    *,
    out: str | os.PathLike[str],
    rows: Any = None,
    dtype: torch.dtype | None = None,
    memory_budget: int | None = None,
    progress: bool = True,
    inputs: dict[str, Any] | None = None,
    overwrite: bool = False,
    timings: dict[str, float] | None = None,
    **params: Any,
) -> dict[str, Any]:
    """Propagate ``x`` ``k`` hops into the hop folder ``out``, resumably.

    Computes :func:`~sgap_plugins.core.propagation.propagate` with ``rows=`` one fp32 column
    block at a time (:class:`~sgap_plugins.core.propagation.ColumnBlocks`), writing each
    block straight into ``out/hops.npy`` (``[k+1, R, F]``), then ``rows.npy`` and
    ``manifest.json``. Working memory is ``memory_budget`` (two or three fp32 buffers
    ``[N, block]``) plus about 16 bytes per node (degree scalings, row indices) for the fused
    ``aug_na``/``ppr`` path on an unweighted graph; ``triangle``, weighted graphs and plugin
    aggregators also hold their ``O(E)`` transition matrix.

    Args:
        graph: any graph :func:`propagate` accepts; for large graphs a memory-mapped
            :class:`CSRGraph` (``CSRGraph.load(folder)`` or ``build_csr``).
        x: features ``[N, F]``, a tensor or a numpy array (``np.load(path, mmap_mode="r")``).
        k: number of hops.
        aggregator: graph aggregator name or instance; ``**params`` are its parameters.
        out: the folder (created if needed).
        rows: node ids to keep (default all nodes, in order).
        dtype: storage dtype of ``hops.npy`` (default ``x``'s; ``torch.float16`` halves it).
        memory_budget: bytes for the working buffers (default 1 GiB).
        progress: a tqdm bar on stderr, updated per hop of each column block.
        inputs: a JSON-able description of where ``graph`` and ``x`` came from (paths, sizes,
            modification times), recorded in the manifest. When given it identifies them for
            resuming instead of content hashes, which read the whole graph and ``x``.
        overwrite: start over in a folder that holds a (finished or unfinished) result of
            different arguments instead of refusing.
        timings: seconds of earlier stages to record in the manifest (e.g. ``graph_s``).

    Returns:
        The manifest (also in ``out/manifest.json``). A folder already finished with the
        same arguments is returned as is, without recomputing.
    """
    start = time.perf_counter()
    blocks = ColumnBlocks.prepare(
        graph,
        x,
        k,
        aggregator,
        rows=rows,
        dtype=dtype,
        memory_budget=memory_budget,
        npy=True,
        **params,
    )
    identity = hop_identity(x, blocks, inputs)
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"out={folder} exists and is not a folder; choose a folder path")
    finished = finished_result(folder, identity, overwrite, [HOPS, ROWS])
    if finished is not None:  # finished earlier with the same arguments
        return finished
    refuse_other_journals(folder, {JOURNAL}, overwrite)
    journal = folder / JOURNAL
    done = journal_state(journal, folder / HOPS, blocks.shape, identity, overwrite)
    folder.mkdir(parents=True, exist_ok=True)
    hops_path = folder / HOPS
    resumed = len(done)
    if not done or not (folder / ROWS).is_file():
        write_rows(folder / ROWS, blocks)
    if not done:
        start_journal(journal, hops_path, blocks, blocks.shape, identity)
    spans = blocks.spans
    compute_s = run_blocks(
        blocks,
        spans,
        hops_path,
        journal,
        identity,
        done,
        progress=progress,
        desc=f"precompute {identity['aggregator']} k={blocks.k}",
    )
    manifest = {
        **identity,
        "num_rows": blocks.num_rows,
        "num_features": blocks.num_features,
        "memory_budget": blocks.budget,
        "working_bytes": blocks.working_bytes,
        "num_blocks": len(spans),
        "resumed_blocks": resumed,
        "timings": {
            **(timings or {}),
            "propagate_s": compute_s,
            "total_s": time.perf_counter() - start,
        },
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_json_atomic(folder / MANIFEST, manifest)
    journal.unlink(missing_ok=True)
    return manifest


def read_manifest(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of a finished hop folder (``FileNotFoundError`` with the reason and the
    fix for a folder without one, e.g. an interrupted or failed precompute)."""
    root = Path(folder)
    path = root / MANIFEST
    if not path.is_file():
        if any(root.glob(RANK_JOURNAL.format(rank="*"))) or any(root.glob(SHARD.format(rank="*"))):
            hint = (
                "a distributed precompute into it failed or was interrupted; rerun the same "
                "`torchrun ... -m sgap_plugins.dist propagate` command (same arguments, same "
                "number of ranks) to resume it"
            )
        elif (root / JOURNAL).exists() or (root / HOPS).exists():
            hint = (
                "a precompute into it was interrupted; rerun it with the same arguments to resume"
            )
        else:
            hint = (
                "create one with `sgap precompute ... --out DIR` or "
                "sgap_plugins.core.hop_folder.precompute"
            )
        raise FileNotFoundError(f"{root} is not a finished hop folder (no {MANIFEST}): {hint}")
    return read_versioned_json(path, FORMAT, FORMAT_VERSION, "hop manifest", "rerun the precompute")


@overload
def load_hops(folder: str | os.PathLike[str], *, with_rows: Literal[False] = False) -> Tensor: ...


@overload
def load_hops(
    folder: str | os.PathLike[str], *, with_rows: Literal[True]
) -> tuple[Tensor, Tensor]: ...


def load_hops(
    folder: str | os.PathLike[str], *, with_rows: bool = False
) -> Tensor | tuple[Tensor, Tensor]:
    """The hops of a finished hop folder as a tensor ``[K+1, R, F]``. ``with_rows=True``
    also returns ``rows.npy`` (``int64`` ``[R]``, the node id of each row). A folder without
    ``manifest.json`` is refused.

    With one ``hops.npy`` (layouts ``"single"`` and ``"shared"``) the tensor is
    memory-mapped onto it: nothing is read until used, and it is copy-on-write (writing to
    the tensor never changes the file). The ``"shards"`` layout is stitched,
    ``torch.cat(shards, dim=-1)``, into a new tensor in RAM: ``(K+1)·R·F`` values of the
    storage dtype, read once from the shard files (each checked against the manifest)."""
    root = Path(folder)
    manifest = read_manifest(root)
    shape = tuple(manifest["shape"])
    if manifest.get("layout", "single") == "shards":
        tensor = _stitch_shards(root, manifest)
    else:
        tensor = torch.from_numpy(_load_npy(root / HOPS, shape, manifest["dtype"]))
    if not with_rows:
        return tensor
    ids = np.load(root / ROWS, allow_pickle=False)
    if ids.shape != (shape[1],):
        raise ValueError(f"{root / ROWS} has shape {list(ids.shape)}, expected [{shape[1]}]")
    return tensor, torch.from_numpy(ids)


def _load_npy(path: Path, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """``path`` memory-mapped copy-on-write, checked against the manifest's shape and dtype."""
    if not path.is_file():
        raise FileNotFoundError(
            f'{path} is missing; the folder is incomplete (with the "shards" layout, copy '
            "every rank's hops.rank*.npy into one folder), or rerun the precompute"
        )
    # An empty array cannot be memory-mapped (and costs nothing to read).
    hops = np.load(path, mmap_mode="c" if 0 not in shape else None, allow_pickle=False)
    if hops.shape != shape or str(hops.dtype) != dtype:
        raise ValueError(
            f"{path} holds {hops.dtype} {list(hops.shape)} but the manifest says "
            f"{dtype} {list(shape)}; the folder is damaged, rerun the precompute"
        )
    return hops


def _stitch_shards(root: Path, manifest: dict[str, Any]) -> Tensor:
    """The ``"shards"`` layout: rank ``r``'s file holds columns ``columns[r]``."""
    k1, r, f = manifest["shape"]
    columns, names = manifest["columns"], manifest["shards"]
    if len(columns) != len(names) or sum(c1 - c0 for c0, c1 in columns) != f:
        raise ValueError(f"{root / MANIFEST} lists inconsistent shards; rerun the precompute")
    out = torch.empty((k1, r, f), dtype=torch_dtype(np.dtype(manifest["dtype"])))
    for (c0, c1), name in zip(columns, names, strict=True):
        shard = _load_npy(root / name, (k1, r, c1 - c0), manifest["dtype"])
        out[:, :, c0:c1] = torch.from_numpy(shard)
    return out


# -------------------------------------------------- the steps of a (one- or many-rank) run
def hop_identity(
    x: Tensor | np.ndarray, blocks: ColumnBlocks, inputs: dict[str, Any] | None
) -> dict[str, Any]:
    """Everything that determines ``hops.npy`` byte for byte (what a resume must match)."""
    agg = blocks.plan.agg
    if inputs is not None:
        sources: dict[str, Any] = {"inputs": inputs}
    else:
        sources = {
            "graph": graph_fingerprint(blocks.graph),
            "features": _array_identity(x),
        }
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "shape": list(blocks.shape),
        "dtype": str(numpy_dtype(blocks.dtype)),
        "k": blocks.k,
        "aggregator": agg.name or type(agg).__name__,
        "params": json.loads(json.dumps(agg.params, default=repr)),
        "aggregator_identity": aggregator_identity(agg),
        "num_nodes": blocks.num_nodes,
        "block_width": blocks.width,
        "rows": None if blocks.rows is None else content_hash(blocks.rows),
        **sources,
    }


def finished_result(
    folder: Path, identity: dict[str, Any], overwrite: bool, files: list[str]
) -> dict[str, Any] | None:
    """The manifest of a folder already finished with the same ``identity`` (and holding
    ``files``); else ``None``, after removing a manifest of different arguments (refused
    unless ``overwrite``) so the folder never looks finished while it is rewritten."""
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        return None
    try:
        manifest = json.loads(manifest_path.read_text())
    except (ValueError, OSError):
        manifest = {}  # unreadable: not a result anyone can use
    old = {key: manifest.get(key) for key in identity}
    missing = [name for name in files if not (folder / name).is_file()]
    if old == identity and not missing:
        for journal in _journals(folder):  # killed after the manifest was written
            journal.unlink(missing_ok=True)
        return manifest
    if manifest and not overwrite:
        differs = _differences(old, identity) if old != identity else f"no {', '.join(missing)}"
        raise FileExistsError(
            f"{folder} holds a finished precompute with different arguments ({differs}); "
            "choose another output folder or pass overwrite=True (--overwrite) to replace it"
        )
    manifest_path.unlink()
    for journal in _journals(folder):  # their blocks belong to the replaced result
        journal.unlink(missing_ok=True)
    return None


def refuse_other_journals(folder: Path, own: set[str], overwrite: bool) -> None:
    """Refuse a folder that journals an unfinished run of another kind (one process vs
    several ranks, another number of ranks) than the journals ``own``; with ``overwrite``,
    forget those runs."""
    for journal in _journals(folder):
        if journal.name in own:
            continue
        if not overwrite:
            raise FileExistsError(
                f"{folder} holds an unfinished precompute of another kind ({journal.name}: "
                f"{_describe_run(journal.name, own)}); rerun that command with its arguments "
                "to resume it, or pass overwrite=True (--overwrite) to start over"
            )
        journal.unlink(missing_ok=True)


def journal_state(
    journal: Path,
    data: Path,
    shape: tuple[int, ...],
    identity: dict[str, Any],
    overwrite: bool,
) -> set[int]:
    """The first columns of the blocks ``journal`` records as written to ``data`` (a
    ``.npy`` of ``shape``); empty to start afresh. A journal of different arguments is
    refused unless ``overwrite``."""
    if not journal.is_file():
        return set()
    try:
        record = json.loads(journal.read_text())
        old, done = record["identity"], {int(c) for c in record["done"]}
    except (ValueError, KeyError, TypeError, OSError):
        return set()  # a torn journal: nothing can be trusted, start over
    if old != identity:
        if overwrite:
            return set()
        raise FileExistsError(
            f"{journal.parent} holds an unfinished precompute with different arguments "
            f"({_differences(old, identity)}); rerun with the original arguments to resume it, "
            "or pass overwrite=True (--overwrite) to start over"
        )
    if not npy_matches(data, shape, identity["dtype"]):
        return set()
    return done


def npy_matches(path: Path, shape: tuple[int, ...], dtype: str) -> bool:
    """Whether ``path`` is a ``.npy`` of ``shape`` and ``dtype`` (only its header is read)."""
    fmt = np.lib.format
    try:
        with open(path, "rb") as f:
            major, _ = fmt.read_magic(f)
            read = fmt.read_array_header_1_0 if major == 1 else fmt.read_array_header_2_0
            found, fortran, found_dtype = read(f)
    except (ValueError, OSError):
        return False
    return found == tuple(shape) and not fortran and str(found_dtype) == dtype


def start_journal(
    journal: Path,
    data: Path | None,
    blocks: ColumnBlocks,
    shape: tuple[int, ...],
    identity: dict[str, Any],
) -> None:
    """A fresh start: an empty journal, and ``data`` (unless ``None``: created by another
    rank) created as a ``.npy`` of ``shape`` (the file at full size)."""
    journal.unlink(missing_ok=True)
    if data is not None:
        np_dtype = numpy_dtype(blocks.dtype)
        if 0 in shape:  # nothing to memory-map
            np.save(data, np.empty(shape, dtype=np_dtype))
        else:
            np.lib.format.open_memmap(data, mode="w+", dtype=np_dtype, shape=shape)
    write_json_atomic(journal, {"identity": identity, "done": []})


def run_blocks(
    blocks: ColumnBlocks,
    spans: list[tuple[int, int]],
    data: Path,
    journal: Path,
    identity: dict[str, Any],
    done: set[int],
    *,
    column_offset: int = 0,
    progress: bool = True,
    desc: str = "precompute",
) -> float:
    """Compute the blocks of ``spans`` whose first column is not in ``done`` into the
    ``.npy`` ``data`` (``[K+1, R, F']``, holding columns from ``column_offset`` on),
    recording each in ``journal`` only after its pages are flushed; ``data`` is fsynced at
    the end. Returns the seconds of computation."""
    compute_s = 0.0
    if 0 in blocks.shape or not spans:
        fsync_path(data)
        return compute_s
    mapped = np.load(data, mmap_mode="r+")
    target = torch.from_numpy(mapped)
    from tqdm.auto import tqdm

    finished = sum(c0 in done for c0, _ in spans)
    bar = tqdm(
        total=len(spans) * (blocks.k + 1),
        initial=finished * (blocks.k + 1),
        desc=desc,
        unit="hop",
        disable=not progress,
        file=sys.stderr,
    )
    with bar:
        for i, (c0, c1) in enumerate(spans):
            if c0 in done:
                continue
            bar.set_postfix_str(f"columns {c0}:{c1} (block {i + 1}/{len(spans)})")
            tic = time.perf_counter()
            blocks.run(c0, c1, target, on_hop=lambda t: bar.update(1), column_offset=column_offset)
            mapped.flush()  # the block's pages reach the file before the journal says so
            compute_s += time.perf_counter() - tic
            done.add(c0)
            write_json_atomic(journal, {"identity": identity, "done": sorted(done)})
    del target, mapped
    fsync_path(data)
    return compute_s


# ------------------------------------------------------------------------------ internals
def _array_identity(x: Tensor | np.ndarray) -> str | dict[str, Any]:
    """A memory-mapped array by its file (path, offset, size, mtime); else by content."""
    filename = getattr(x, "filename", None)
    if isinstance(x, np.memmap) and filename:
        stat = os.stat(filename)
        return {
            "path": str(Path(filename).resolve()),
            "offset": int(x.offset),
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "dtype": str(x.dtype),
            "shape": list(x.shape),
        }
    return content_hash(x)


def _journals(folder: Path) -> list[Path]:
    """The journals of unfinished runs in ``folder``, one process's or each rank's."""
    if not folder.is_dir():
        return []
    found = [folder / JOURNAL] if (folder / JOURNAL).is_file() else []
    return sorted([*found, *folder.glob(RANK_JOURNAL.format(rank="*"))])


def _describe_run(journal_name: str, own: set[str]) -> str:
    """Which command left ``journal_name`` behind, seen from the run that journals ``own``."""
    if journal_name == JOURNAL:
        return "a one-process `sgap precompute`"
    more = "" if JOURNAL in own else " with more ranks"
    return f"`torchrun ... -m sgap_plugins.dist propagate`{more}"


def _differences(old: dict[str, Any], new: dict[str, Any]) -> str:
    keys = [key for key in new if old.get(key) != new[key]]
    shown = [f"{key}: {old.get(key)!r} → {new[key]!r}" for key in keys if key != "inputs"]
    if "inputs" in keys:
        shown.append("inputs differ")
    return "; ".join(shown[:4]) or "unknown"


def write_rows(path: Path, blocks: ColumnBlocks) -> None:
    """``rows.npy``: the selected ids, or ``arange(N)`` written in chunks."""
    if blocks.rows is not None:
        np.save(path, blocks.rows.numpy())
        return
    n = blocks.num_nodes
    if n == 0:
        np.save(path, np.empty(0, dtype=np.int64))
        return
    ids = np.lib.format.open_memmap(path, mode="w+", dtype=np.int64, shape=(n,))
    for i in range(0, n, _ROWS_CHUNK):
        ids[i : i + _ROWS_CHUNK] = np.arange(i, min(n, i + _ROWS_CHUNK), dtype=np.int64)
    ids.flush()
    del ids
