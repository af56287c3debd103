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
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .durable_files import fsync_path, read_versioned_json, write_json_atomic
from .fingerprint import aggregator_identity, content_hash, graph_fingerprint
from .graph_aggregators import GraphAggregator
from .propagation import ColumnBlocks, numpy_dtype

HOPS = "hops.npy"
ROWS = "rows.npy"
MANIFEST = "manifest.json"
JOURNAL = "progress.json"
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
    identity = _identity(x, blocks, inputs)
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"out={folder} exists and is not a folder; choose a folder path")
    done = _resume_state(folder, identity, overwrite)
    if isinstance(done, dict):  # finished earlier with the same arguments
        return done
    folder.mkdir(parents=True, exist_ok=True)
    np_dtype = numpy_dtype(blocks.dtype)
    hops_path = folder / HOPS
    resumed = len(done)
    if not done:
        (folder / JOURNAL).unlink(missing_ok=True)
        _write_rows(folder / ROWS, blocks)
        if 0 not in blocks.shape:
            np.lib.format.open_memmap(hops_path, mode="w+", dtype=np_dtype, shape=blocks.shape)
        write_json_atomic(folder / JOURNAL, {"identity": identity, "done": []})
    spans = blocks.spans
    compute_s = 0.0
    if 0 in blocks.shape:
        np.save(hops_path, np.empty(blocks.shape, dtype=np_dtype))
    else:
        mapped = np.load(hops_path, mmap_mode="r+")
        target = torch.from_numpy(mapped)
        from tqdm.auto import tqdm

        bar = tqdm(
            total=len(spans) * (blocks.k + 1),
            initial=len(done) * (blocks.k + 1),
            desc=f"precompute {identity['aggregator']} k={blocks.k}",
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
                blocks.run(c0, c1, target, on_hop=lambda t: bar.update(1))
                mapped.flush()  # the block's pages reach the file before the journal says so
                compute_s += time.perf_counter() - tic
                done.add(c0)
                write_json_atomic(folder / JOURNAL, {"identity": identity, "done": sorted(done)})
        del target, mapped
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
    fsync_path(hops_path)
    write_json_atomic(folder / MANIFEST, manifest)
    (folder / JOURNAL).unlink(missing_ok=True)
    return manifest


def read_manifest(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of a finished hop folder (``FileNotFoundError`` with the reason and the
    fix for a folder without one, e.g. an interrupted precompute)."""
    root = Path(folder)
    path = root / MANIFEST
    if not path.is_file():
        hint = (
            "a precompute into it was interrupted; rerun it with the same arguments to resume"
            if (root / JOURNAL).exists() or (root / HOPS).exists()
            else "create one with `sgap precompute ... --out DIR` or "
            "sgap_plugins.core.hop_folder.precompute"
        )
        raise FileNotFoundError(f"{root} is not a finished hop folder (no {MANIFEST}): {hint}")
    return read_versioned_json(path, FORMAT, FORMAT_VERSION, "hop manifest", "rerun the precompute")


def load_hops(
    folder: str | os.PathLike[str], *, with_rows: bool = False
) -> Tensor | tuple[Tensor, Tensor]:
    """The hops of a finished hop folder as a tensor ``[K+1, R, F]`` memory-mapped onto
    ``hops.npy`` (nothing is read until used; copy-on-write: writing to the tensor never
    changes the file). ``with_rows=True`` also returns ``rows.npy`` (``int64`` ``[R]``, the
    node id of each row). A folder without ``manifest.json`` is refused."""
    root = Path(folder)
    manifest = read_manifest(root)
    shape = tuple(manifest["shape"])
    # An empty array cannot be memory-mapped (and costs nothing to read).
    hops = np.load(root / HOPS, mmap_mode="c" if 0 not in shape else None, allow_pickle=False)
    if hops.shape != shape or str(hops.dtype) != manifest["dtype"]:
        raise ValueError(
            f"{root / HOPS} holds {hops.dtype} {list(hops.shape)} but the manifest says "
            f"{manifest['dtype']} {list(shape)}; the folder is damaged, rerun the precompute"
        )
    tensor = torch.from_numpy(hops)
    if not with_rows:
        return tensor
    ids = np.load(root / ROWS, allow_pickle=False)
    if ids.shape != (shape[1],):
        raise ValueError(f"{root / ROWS} has shape {list(ids.shape)}, expected [{shape[1]}]")
    return tensor, torch.from_numpy(ids)


# ------------------------------------------------------------------------------ internals
def _identity(
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


def _resume_state(
    folder: Path, identity: dict[str, Any], overwrite: bool
) -> set[int] | dict[str, Any]:
    """The finished blocks to skip (empty: start afresh), or the manifest of a folder already
    finished with the same arguments."""
    manifest_path, journal_path = folder / MANIFEST, folder / JOURNAL
    if manifest_path.is_file():
        try:
            manifest = json.loads(manifest_path.read_text())
        except (ValueError, OSError):
            manifest = {}  # unreadable: not a result anyone can use
        old = {key: manifest.get(key) for key in identity}
        if old == identity and (folder / HOPS).is_file() and (folder / ROWS).is_file():
            journal_path.unlink(missing_ok=True)  # killed after the manifest was written
            return manifest
        if manifest and not overwrite:
            raise FileExistsError(
                f"{folder} holds a finished precompute with different arguments "
                f"({_differences(old, identity)}); choose another output folder or pass "
                "overwrite=True (--overwrite) to replace it"
            )
        manifest_path.unlink()  # from here on the folder must not look finished
        return set()
    if not journal_path.is_file():
        return set()
    try:
        journal = json.loads(journal_path.read_text())
        old, done = journal["identity"], {int(c) for c in journal["done"]}
    except (ValueError, KeyError, TypeError, OSError):
        return set()  # a torn journal: nothing can be trusted, start over
    if old != identity:
        if overwrite:
            return set()
        raise FileExistsError(
            f"{folder} holds an unfinished precompute with different arguments "
            f"({_differences(old, identity)}); rerun with the original arguments to resume it, "
            "or pass overwrite=True (--overwrite) to start over"
        )
    hops = folder / HOPS
    try:
        header = np.load(hops, mmap_mode="r") if hops.is_file() else None
    except (ValueError, OSError):
        header = None
    if header is None or list(header.shape) != identity["shape"]:
        return set()
    if not (folder / ROWS).is_file():
        return set()
    return done


def _differences(old: dict[str, Any], new: dict[str, Any]) -> str:
    keys = [key for key in new if old.get(key) != new[key]]
    shown = [f"{key}: {old.get(key)!r} → {new[key]!r}" for key in keys if key != "inputs"]
    if "inputs" in keys:
        shown.append("inputs differ")
    return "; ".join(shown[:4]) or "unknown"


def _write_rows(path: Path, blocks: ColumnBlocks) -> None:
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
