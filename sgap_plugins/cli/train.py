"""``sgap train``: precompute, train, infer and post-process one SGAP model, on a dataset
or on a hop folder written by ``sgap precompute`` (``--hops DIR``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core.config import PRESETS, SGAPConfig, preset
from ..core.graph import GRAPH_JSON, CSRGraph
from ..core.hop_folder import load_hops, read_manifest
from ..core.propagation import check_rows
from ..core.trainer import TrainResult, fit_and_evaluate
from ..core.trainer import run as run_pipeline
from ..datasets import load_dataset
from .common import add_dataset_args, npy_file


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("train", help="train one SGAP model and report accuracy and timings")
    p.add_argument("--preset", default="sgc", choices=sorted(PRESETS), help="model preset")
    p.add_argument(
        "--config",
        default=None,
        help="JSON file with an SGAPConfig, or a pareto.json of `sgap search` with --index "
        "(overrides --preset)",
    )
    p.add_argument("--index", type=int, default=None, help="front member of a pareto.json --config")
    add_dataset_args(p)
    p.set_defaults(dataset=None)  # csbm unless --hops is given
    p.add_argument(
        "--hops",
        metavar="DIR",
        help="train on a hop folder of `sgap precompute` (memory-mapped, mini-batches) instead "
        "of a dataset; needs --labels and a split",
    )
    p.add_argument("--labels", metavar="Y.npy", help="with --hops: int labels of the folder's rows")
    for part in ("train", "val", "test"):
        p.add_argument(
            f"--{part}-idx",
            metavar=f"{part.upper()}.npy",
            help=f"with --hops: {part} rows, as positions 0..R-1 of the folder's rows (int) or a "
            "boolean mask [R]",
        )
    p.add_argument(
        "--split",
        metavar="SPLIT.npz",
        help="with --hops: the three splits in one .npz (arrays train, val, test)",
    )
    p.add_argument("--seed", type=int, default=0, help="model/training seed")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def load_config(args: argparse.Namespace) -> tuple[str, SGAPConfig]:
    if args.config is None:
        return args.preset, preset(args.preset)
    with open(args.config) as f:
        data = json.load(f)
    if isinstance(data, dict) and "points" in data:  # a pareto.json written by `sgap search`
        points = data["points"]
        if args.index is None or not 0 <= args.index < len(points):
            raise ValueError(
                f"{args.config} is a Pareto front of {len(points)} point(s); "
                f"choose one with --index 0..{len(points) - 1}"
            )
        return f"{args.config}#{args.index}", SGAPConfig.from_dict(points[args.index]["config"])
    if args.index is not None:
        raise ValueError("--index applies to a pareto.json written by `sgap search`")
    return args.config, SGAPConfig.from_dict(data)


def run(args: argparse.Namespace) -> int:
    label, config = load_config(args)
    if args.hops is not None:
        return run_on_hops(args, label, config)
    for flag in ("labels", "train_idx", "val_idx", "test_idx", "split"):
        if getattr(args, flag) is not None:
            raise ValueError(f"--{flag.replace('_', '-')} applies to --hops DIR; drop it")
    data = load_dataset(args.dataset or "csbm", args.data_root, args.split_seed)
    _, result = run_pipeline(
        data.edge_index,
        data.x,
        data.y,
        data.train_mask,
        data.val_mask,
        data.test_mask,
        config,
        seed=args.seed,
    )
    if args.json:
        print(
            json.dumps(
                {
                    "dataset": data.name,
                    "model": label,
                    "config": config.to_dict(),
                    **result.to_dict(),
                }
            )
        )
        return 0
    print(
        f"dataset   {data.name}: {data.num_nodes} nodes, {data.edge_index.size(1)} edges, "
        f"{data.x.size(1)} features, {data.num_classes} classes"
    )
    print(f"model     {label}: {config.label()}  ({result.num_params} parameters)")
    print(
        f"accuracy  train {result.train_acc:.4f}  val {result.val_acc:.4f}  "
        f"test {result.test_acc:.4f}  (best epoch {result.best_epoch}/{result.epochs_run})"
    )
    print(
        f"time (s)  precompute {result.precompute_s:.3f}  train {result.train_s:.3f}  "
        f"inference {result.inference_s:.3f}  postprocess {result.postprocess_s:.3f}"
    )
    return 0


def run_on_hops(args: argparse.Namespace, label: str, config: SGAPConfig) -> int:
    """Train, infer (and post-process, when the folder holds every node and its graph) on a
    hop folder: mini-batches gathered from the memory-mapped ``hops.npy``."""
    if args.dataset is not None:
        raise ValueError("pass either --dataset or --hops, not both")
    folder = Path(args.hops)
    manifest = read_manifest(folder)
    hops = load_hops(folder)
    assert isinstance(hops, torch.Tensor)
    k, num_rows = int(manifest["k"]), hops.size(1)
    if config.k_pre > k:
        raise ValueError(
            f"{label} needs k_pre={config.k_pre} hops but {folder} holds k={k}; precompute "
            f"with -k {config.k_pre} or more, or choose a model with k_pre <= {k}"
        )
    y = _labels(args.labels, num_rows)
    train_idx, val_idx, test_idx = _split(args, num_rows)
    for name, idx in (("train", train_idx), ("val", val_idx), ("test", test_idx)):
        if idx.numel() and int(y[idx].min()) < 0:
            raise ValueError(f"--labels has negative labels at {name} rows; label every one")
    graph = _post_graph(folder, manifest, config, label)
    if manifest["aggregator"] != config.ga_pre:
        print(
            f"sgap train: note: {folder} was propagated with {manifest['aggregator']}; "
            f"{label}'s ga_pre={config.ga_pre} is not used",
            file=sys.stderr,
        )
    labelled = torch.cat([train_idx, val_idx, test_idx])
    _, result = fit_and_evaluate(
        graph,
        hops[: config.k_pre + 1],
        y,
        train_idx,
        val_idx,
        test_idx,
        config,
        seed=args.seed,
        num_classes=int(y[labelled].max()) + 1,
    )
    result.precompute_s = float(manifest["timings"]["propagate_s"])  # as recorded
    return _report(args, str(folder), label, config, result, hops.shape)


def _labels(path: str | None, num_rows: int) -> torch.Tensor:
    if path is None:
        raise ValueError("--hops needs --labels Y.npy (an int label per row of the folder)")
    y = np.load(npy_file(path, "--labels"), allow_pickle=False)
    if y.ndim != 1 or y.shape[0] != num_rows or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(
            f"--labels must hold {num_rows} integers (one per row of the hop folder), got "
            f"{y.dtype} {list(y.shape)}"
        )
    return torch.from_numpy(y.astype(np.int64))


def _split(args: argparse.Namespace, num_rows: int) -> tuple[torch.Tensor, ...]:
    """Train/val/test positions into the folder's rows, from --split or the three flags."""
    flags = ("train_idx", "val_idx", "test_idx")
    if args.split is not None:
        if any(getattr(args, f) is not None for f in flags):
            raise ValueError("pass either --split or --train-idx/--val-idx/--test-idx")
        with np.load(_npz_file(args.split), allow_pickle=False) as npz:
            missing = {"train", "val", "test"} - set(npz.files)
            if missing:
                raise ValueError(f"--split {args.split} lacks the arrays {sorted(missing)}")
            parts = [(f"--split {args.split}:{k}", npz[k]) for k in ("train", "val", "test")]
    else:
        if any(getattr(args, f) is None for f in flags):
            raise ValueError("--hops needs --train-idx, --val-idx and --test-idx (or --split)")
        parts = []
        for f in flags:
            flag = "--" + f.replace("_", "-")
            parts.append((flag, np.load(npy_file(getattr(args, f), flag), allow_pickle=False)))
    out = []
    for name, arr in parts:
        if arr.dtype == np.bool_:
            if arr.shape != (num_rows,):
                raise ValueError(f"{name}: a boolean mask needs {num_rows} entries")
            arr = np.flatnonzero(arr)
        try:
            out.append(check_rows(arr, num_rows, name))
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{exc} (positions into the hop folder's {num_rows} rows)") from exc
    if out[0].numel() == 0:
        raise ValueError("the train split is empty")
    return tuple(out)


def _npz_file(path: str) -> Path:
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"--split {path}: no such file; save one with np.savez")
    return file


def _post_graph(
    folder: Path, manifest: dict[str, Any], config: SGAPConfig, label: str
) -> CSRGraph | None:
    """The graph for post-processing: DIR/graph when the folder holds every node; ``None``
    without post-processing."""
    num_rows = int(manifest["shape"][1])
    if config.k_post == 0:
        return None
    if num_rows != int(manifest["num_nodes"]) or not (folder / "graph" / GRAPH_JSON).is_file():
        raise ValueError(
            f"{label} post-processes predictions over the graph (k_post={config.k_post}), "
            f"which needs the hops of every node and {folder / 'graph'} (written by "
            "`sgap precompute --edges` without --rows); choose a model with k_post=0"
        )
    rows = np.load(folder / "rows.npy", mmap_mode="r")
    if not np.array_equal(rows, np.arange(num_rows)):
        raise ValueError(f"{folder}/rows.npy is not every node in order; post-processing needs it")
    return CSRGraph.load(folder / "graph")


def _report(
    args: argparse.Namespace,
    source: str,
    label: str,
    config: SGAPConfig,
    result: TrainResult,
    shape: Any,
) -> int:
    if args.json:
        print(
            json.dumps(
                {"hops": source, "model": label, "config": config.to_dict(), **result.to_dict()}
            )
        )
        return 0
    print(f"hops      {source}: {list(shape)}")
    print(f"model     {label}: {config.label()}  ({result.num_params} parameters)")
    print(
        f"accuracy  train {result.train_acc:.4f}  val {result.val_acc:.4f}  "
        f"test {result.test_acc:.4f}  (best epoch {result.best_epoch}/{result.epochs_run})"
    )
    print(
        f"time (s)  precompute {result.precompute_s:.3f} (recorded)  train "
        f"{result.train_s:.3f}  inference {result.inference_s:.3f}  "
        f"postprocess {result.postprocess_s:.3f}"
    )
    return 0
