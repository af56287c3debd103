"""``sgap precompute``: propagate features K hops into a hop folder (``hops.npy``,
``rows.npy``, ``manifest.json``), from a dataset or from ``.npy`` files on disk.

From files, the graph is built out of core with
:func:`~sgap_plugins.core.graph_store.build_csr` into ``DIR/graph/`` (reused when its
``graph.json`` matches the edge files and options), the features are memory-mapped, and the
hops are computed in column blocks within ``--memory-budget``; a killed run resumes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import ops
from ..core.graph import GRAPH_JSON, CSRGraph
from ..core.graph_store import build_csr
from ..core.hop_folder import precompute
from ..core.propagation import check_memory_budget, check_rows
from ..datasets import load_dataset
from .common import add_dataset_args, file_identity, npy_file, parse_bytes, parse_params

DTYPES = {"float32": torch.float32, "float16": torch.float16}
# Edges per chunk of the graph build per byte of budget: build_csr holds 50-80 bytes per
# chunk edge, so the build stays within the same budget as the propagation.
_BUILD_BYTES_PER_EDGE = 80


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "precompute",
        help="propagate features K hops into a hop folder (hops.npy, rows.npy, manifest.json)",
        description=(
            "Propagate node features K hops and write DIR/hops.npy ([K+1, R, F]), DIR/rows.npy "
            "(the node id of each row) and DIR/manifest.json (written last). Features and "
            "graph come from --dataset or from .npy files (--edges, --features); a run killed "
            "and started again with the same arguments resumes at its last finished column "
            "block."
        ),
    )
    add_options(p)
    return p


def add_options(p: argparse.ArgumentParser) -> None:
    """The options of ``sgap precompute``, shared with ``python -m sgap_plugins.dist
    propagate``."""
    add_dataset_args(p)
    p.set_defaults(dataset=None)  # csbm unless --edges/--features are given
    p.add_argument(
        "--edges",
        action="append",
        metavar="E.npy",
        help="edge list .npy [2, E] (int32/int64, row 0 = source, row 1 = destination); "
        "repeatable, read as one list",
    )
    p.add_argument("--features", metavar="X.npy", help="features .npy [N, F] (float32/float16)")
    p.add_argument(
        "--num-nodes", type=int, default=None, help="N (default: the rows of --features)"
    )
    p.add_argument(
        "--symmetrize", action="store_true", help="propagate on A ∪ Aᵀ (undirected graph)"
    )
    p.add_argument(
        "--rows", metavar="R.npy", help="int64 .npy of node ids: keep only their hops, in order"
    )
    p.add_argument("-k", "--k", type=int, default=3, help="number of hops (default 3)")
    p.add_argument("--aggregator", default="aug_na", help="graph aggregator name")
    p.add_argument(
        "--param",
        action="append",
        metavar="KEY=VALUE",
        help="aggregator parameter, repeatable (e.g. --param alpha=0.1)",
    )
    p.add_argument(
        "--dtype", choices=sorted(DTYPES), default=None, help="dtype of hops.npy (default: x's)"
    )
    p.add_argument(
        "--memory-budget",
        type=parse_bytes,
        default=None,
        metavar="BYTES",
        help="working memory of the propagation and the graph build: bytes or 512M, 8G "
        "(default 1G); peak memory stays within budget + 16 bytes per node + 512 MiB",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a result of different arguments in DIR instead of refusing",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print one JSON object")


@dataclass
class Inputs:
    """What ``sgap precompute``'s options name, loaded: the graph, the features (a
    memory-mapped ``.npy`` or a dataset's tensor), the selected rows, their description for
    the manifest (``inputs=`` of :func:`precompute`), the graph's build or load time and a
    name for the summary line."""

    graph: Any
    x: Any
    rows: np.ndarray | None
    inputs: dict[str, Any]
    graph_s: float
    source: str
    from_files: bool


def load_inputs(args: argparse.Namespace, budget: int, *, build_graph: bool = True) -> Inputs:
    """The inputs of ``args``. From files the graph is built into ``DIR/graph`` (or reused
    when it matches); ``build_graph=False`` only maps an existing matching one (the ranks
    that wait for another process to build it)."""
    if args.edges is not None or args.features is not None:
        if args.dataset is not None:
            raise ValueError("pass either --dataset or --edges with --features, not both")
        graph, x, rows, inputs, graph_s = _from_files(args, budget, build_graph)
        return Inputs(graph, x, rows, inputs, graph_s, ", ".join(args.edges), True)
    if args.num_nodes is not None or args.symmetrize:
        raise ValueError("--num-nodes and --symmetrize apply to --edges; drop them")
    data = load_dataset(args.dataset or "csbm", args.data_root, args.split_seed)
    rows = _load_rows(args.rows, data.num_nodes)
    inputs = {"dataset": data.name, "split_seed": args.split_seed}
    if args.rows:
        inputs["rows"] = file_identity(Path(args.rows))
    return Inputs(data.edge_index, data.x, rows, inputs, 0.0, data.name, False)


def name_features(args: argparse.Namespace, loaded: Inputs, exc: ValueError) -> None:
    """Raise ``exc`` again naming ``--features`` if it is a NaN/inf found while streaming
    them (the caller re-raises any other as it is)."""
    if loaded.from_files and str(exc).startswith("x "):
        raise ValueError(f"--features {args.features}: {exc}") from exc


def run(args: argparse.Namespace) -> int:
    params = parse_params(args.param)
    budget = check_memory_budget(args.memory_budget)
    dtype = DTYPES[args.dtype] if args.dtype else None
    loaded = load_inputs(args, budget)
    kernel_build_s = ops.prepare()  # a first run's compile, apart from the propagation time
    try:
        manifest = precompute(
            loaded.graph,
            loaded.x,
            args.k,
            args.aggregator,
            out=args.out,
            rows=loaded.rows,
            dtype=dtype,
            memory_budget=budget,
            progress=not args.no_progress,
            inputs=loaded.inputs,
            overwrite=args.overwrite,
            timings={"graph_s": loaded.graph_s},
            **params,
        )
    except FileExistsError as exc:
        print(f"sgap precompute: error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        name_features(args, loaded, exc)
        raise
    if args.json:
        print(
            json.dumps({"out": str(Path(args.out)), **manifest, "kernel_build_s": kernel_build_s})
        )
        return 0
    timings = manifest["timings"]
    print(
        f"{loaded.source}: {manifest['aggregator']} x{manifest['k']} -> {manifest['shape']} "
        f"{manifest['dtype']} in {timings['total_s']:.3f} s "
        f"({manifest['num_blocks']} column block(s), {manifest['resumed_blocks']} resumed), "
        f"written to {args.out}"
    )
    return 0


def _from_files(
    args: argparse.Namespace, budget: int, build_graph: bool = True
) -> tuple[CSRGraph, np.ndarray, np.ndarray | None, dict[str, Any], float]:
    """Features (memory-mapped), rows and the graph (built into DIR/graph or reused); every
    cheap check runs before the graph is built."""
    if not args.edges or args.features is None:
        raise ValueError("--edges and --features go together; pass both (or --dataset)")
    edge_files = [npy_file(path, "--edges") for path in args.edges]
    features = npy_file(args.features, "--features")
    try:
        x = np.load(features, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        raise ValueError(f"--features {features} is not a plain .npy array ({exc})") from exc
    if x.ndim != 2:
        raise ValueError(f"--features must hold an [N, F] array, got shape {list(x.shape)}")
    n = x.shape[0] if args.num_nodes is None else args.num_nodes
    if n != x.shape[0]:
        raise ValueError(
            f"--features has {x.shape[0]} rows but --num-nodes is {n}; pass one feature row "
            "per node (or drop --num-nodes)"
        )
    rows = _load_rows(args.rows, n)
    inputs: dict[str, Any] = {
        "edges": [file_identity(path) for path in edge_files],
        "features": file_identity(features),
        "rows": file_identity(Path(args.rows)) if args.rows else None,
        "num_nodes": n,
        "symmetrize": bool(args.symmetrize),
        "duplicates": "drop",
    }
    tic = time.perf_counter()
    folder = Path(args.out) / "graph"
    if _graph_matches(folder, edge_files, n, args.symmetrize):
        graph = CSRGraph.load(folder, mmap=True)
    elif not build_graph:
        raise RuntimeError(
            f"{folder} holds no graph built from --edges, though the process building it "
            "has finished; is --out on storage this process sees (the same path)?"
        )
    else:
        try:
            graph = build_csr(
                [str(path) for path in edge_files],
                folder,
                num_nodes=n,
                symmetrize=args.symmetrize,
                duplicates="drop",
                chunk_edges=max(1 << 16, budget // _BUILD_BYTES_PER_EDGE),
                progress=not args.no_progress,
            )
        except (TypeError, ValueError) as exc:  # name the flag, not build_csr's argument
            text = str(exc)
            text = text.replace("edge_files", "--edges", 1) if "edge_files" in text else text
            raise type(exc)(text if "--edges" in text else f"--edges: {text}") from exc
    return graph, x, rows, inputs, time.perf_counter() - tic


def _load_rows(path: str | None, num_nodes: int) -> np.ndarray | None:
    if path is None:
        return None
    try:
        rows = np.load(npy_file(path, "--rows"), allow_pickle=False)
    except ValueError as exc:
        raise ValueError(f"--rows {path} is not a plain .npy array ({exc})") from exc
    try:
        check_rows(rows, num_nodes)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"--rows {path}: {exc}") from exc
    return rows


def _graph_matches(folder: Path, edge_files: list[Path], n: int, symmetrize: bool) -> bool:
    """Whether ``folder`` holds the graph ``build_csr`` would build from these files: same
    files (paths, edge counts, none modified since), ``N``, symmetrize and ``duplicates="drop"``."""
    meta_path = folder / GRAPH_JSON
    try:
        meta = json.loads(meta_path.read_text())
        built = meta_path.stat().st_mtime_ns
    except (OSError, ValueError):
        return False
    wanted = []
    for path in edge_files:
        if path.stat().st_mtime_ns > built:
            return False
        shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
        wanted.append({"path": str(path.resolve()), "num_edges": int(shape[-1])})
    return (
        meta.get("inputs") == wanted
        and meta.get("num_nodes") == n
        and bool(meta.get("symmetrize")) == bool(symmetrize)
        and meta.get("duplicates") == "drop"
    )
