"""``sgap train``: precompute, train, infer and post-process one SGAP model, on a dataset
or on a hop folder written by ``sgap precompute`` (``--hops DIR``)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import ops
from ..core.config import PRESETS, SGAPConfig, preset
from ..core.graph import GRAPH_JSON, CSRGraph
from ..core.hop_folder import load_hops, read_manifest
from ..core.propagation import check_rows
from ..core.search.evaluation import dataset_record, split_fingerprint
from ..core.synthetic import NodeDataset
from ..core.trainer import TrainResult, fit_and_evaluate
from ..core.trainer import run as run_pipeline
from ..datasets import default_data_root, load_dataset
from ..recipes import recipe, tune
from .common import add_dataset_args, non_negative_int, npy_file, parse_params, read_json

# the seeds --tune averages validation accuracy over (those of docs/results.md)
TUNE_SEEDS = (0, 1)


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("train", help="train one SGAP model and report accuracy and timings")
    p.add_argument(
        "--preset",
        default="sgc",
        type=str.lower,
        choices=sorted(PRESETS),
        help="model preset; on a built-in dataset with its validated recipe (see --no-recipe)",
    )
    p.add_argument(
        "--config",
        default=None,
        help="JSON file with an SGAPConfig, the output of `sgap train --json` (its config and "
        "dataset), or a pareto.json of `sgap search` with --index (overrides --preset)",
    )
    p.add_argument(
        "--index", type=int, default=None, help="front member of a pareto.json given with --config"
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one SGAPConfig field, applied last (repeatable), e.g. --set lr=0.05 "
        "--set weight_decay=1e-4 --set ga_pre_params='{\"alpha\": 0.2}'",
    )
    p.add_argument(
        "--no-recipe",
        action="store_true",
        help="train the bare preset, without the settings validated for --dataset",
    )
    p.add_argument(
        "--tune",
        action="store_true",
        help="choose the preset's training hyperparameters on validation accuracy (the grid "
        f"of docs/results.md, seeds {', '.join(map(str, TUNE_SEEDS))}) instead of a recipe",
    )
    add_dataset_args(p)
    # None = not given: csbm, or what a --config records (a disagreeing --dataset is an error)
    p.set_defaults(dataset=None, split_seed=None)
    for action in p._actions:
        if action.dest == "split_seed":
            action.help = (
                f"{action.help} (default: 0, or the one --config records; another retrains "
                "the config on that split)"
            )
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
    p.add_argument("--seed", type=non_negative_int("--seed"), default=0, help="model/training seed")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


@dataclass
class Source:
    """Where the model comes from: its label, configuration, the preset it is (``None`` for
    a ``--config``) and the dataset a ``--config`` records (``None`` if it records none)."""

    label: str
    config: SGAPConfig
    preset: str | None = None
    dataset: dict[str, Any] | None = None


def load_source(args: argparse.Namespace) -> Source:
    """The model of ``--preset``, or of ``--config``: a plain SGAPConfig, a ``sgap train
    --json`` result (its ``config`` and ``dataset``) or a pareto.json with ``--index``."""
    if args.config is None:
        if args.index is not None:
            raise ValueError(
                "--index picks a front member of a pareto.json; pass the file with "
                "--config runs/x/pareto.json --index I"
            )
        return Source(args.preset, preset(args.preset), preset=args.preset)
    data = read_json(args.config, "--config")
    if not isinstance(data, dict):
        kind = type(data).__name__
        raise ValueError(f"--config {args.config}: expected a JSON object, got a {kind}")
    recorded = data.get("dataset") if isinstance(data.get("dataset"), dict) else None
    if "points" in data:  # a pareto.json written by `sgap search`
        points = data["points"]
        if args.index is None or not 0 <= args.index < len(points):
            raise ValueError(
                f"{args.config} is a Pareto front of {len(points)} point(s); "
                f"choose one with --index 0..{len(points) - 1}"
            )
        config = _config(points[args.index]["config"], f"{args.config} point {args.index}")
        return Source(f"{args.config}#{args.index}", config, dataset=recorded)
    if args.index is not None:
        raise ValueError(
            f"--index applies to a pareto.json written by `sgap search`, not {args.config}"
        )
    if isinstance(data.get("config"), dict):  # the output of `sgap train --json`
        return Source(args.config, _config(data["config"], args.config), dataset=recorded)
    return Source(args.config, _config(data, args.config))


def _config(fields: dict[str, Any], where: str) -> SGAPConfig:
    try:
        return SGAPConfig.from_dict(fields)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"--config {where}: {exc}") from None


def apply_set(config: SGAPConfig, items: list[str]) -> tuple[SGAPConfig, dict[str, Any]]:
    """``config`` with the ``--set KEY=VALUE`` overrides (values read by
    :func:`~sgap_plugins.cli.common.parse_params`, then type-checked by the config)."""
    overrides = parse_params(items, "--set")
    known = [f.name for f in dataclasses.fields(SGAPConfig)]
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise ValueError(
            f"--set {', '.join(unknown)}: not an SGAPConfig field; valid keys: {', '.join(known)}"
        )
    try:
        return config.replace(**overrides), overrides
    except (TypeError, ValueError) as exc:
        raise ValueError(f"--set: {exc}") from None


def _dataset(args: argparse.Namespace, source: Source) -> tuple[NodeDataset, int]:
    """The dataset and split seed: those a ``--config`` records (``--dataset`` must agree;
    ``--split-seed`` retrains on another split of it, as the Amazon and Coauthor protocol
    does, after the recorded split has been checked), else ``--dataset`` (csbm) and
    ``--split-seed`` (0)."""
    rec = source.dataset
    if rec is None:
        split_seed = 0 if args.split_seed is None else args.split_seed
        return load_dataset(args.dataset or "csbm", args.data_root, split_seed), split_seed
    name, split_seed = str(rec["name"]), int(rec.get("split_seed", 0))
    if args.dataset is not None and args.dataset != name:
        raise ValueError(
            f"--dataset {args.dataset} disagrees with --config {args.config}, which records "
            f"dataset {name}; drop --dataset to train on {name}"
        )
    root = args.data_root if args.data_root is not None else rec.get("data_root")
    data = load_dataset(name, root, split_seed)
    if rec.get("split") not in (None, split_fingerprint(data)):
        raise ValueError(
            f"{name} as loaded now (data root {root or default_data_root()}, split seed "
            f"{split_seed}) is not the graph and split --config {args.config} records "
            "(another copy or version of the data?); point --data-root at the data it used"
        )
    if args.split_seed is not None and args.split_seed != split_seed:
        split_seed = args.split_seed
        data = load_dataset(name, root, split_seed)
    return data, split_seed


def run(args: argparse.Namespace) -> int:
    if args.config is not None and (args.tune or args.no_recipe):
        flag = "--tune" if args.tune else "--no-recipe"
        raise ValueError(f"{flag} applies to --preset; a --config is trained as it is (use --set)")
    source = load_source(args)
    if args.hops is not None:
        if args.tune:
            raise ValueError("--tune needs a dataset, not --hops")
        config, _ = apply_set(source.config, args.set)
        return run_on_hops(args, source.label, config)
    for flag in ("labels", "train_idx", "val_idx", "test_idx", "split"):
        if getattr(args, flag) is not None:
            raise ValueError(f"--{flag.replace('_', '-')} applies to --hops DIR; drop it")
    data, split_seed = _dataset(args, source)
    config, recipe_line, recipe_json = _recipe(args, source, data)
    config, overrides = apply_set(config, args.set)
    kernel_build_s = ops.prepare()  # a first run's compile, apart from precompute_s
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
                    "dataset": dataset_record(data, args.data_root, split_seed),
                    "model": source.label,
                    **recipe_json,
                    "set": overrides,
                    "config": config.to_dict(),
                    **result.to_dict(),
                    "kernel_build_s": kernel_build_s,
                }
            )
        )
        return 0
    print(
        f"dataset   {data.name}: {data.num_nodes} nodes, {data.edge_index.size(1)} edges, "
        f"{data.x.size(1)} features, {data.num_classes} classes"
    )
    print(f"model     {source.label}: {config.label()}  ({result.num_params} parameters)")
    if recipe_line:
        print(recipe_line)
    if overrides:
        print("set       " + _pairs(overrides))
    print(
        f"accuracy  train {result.train_acc:.4f}  val {result.val_acc:.4f}  "
        f"test {result.test_acc:.4f}  (best epoch {result.best_epoch}/{result.epochs_run})"
    )
    print(
        f"time (s)  precompute {result.precompute_s:.3f}  train {result.train_s:.3f}  "
        f"inference {result.inference_s:.3f}  postprocess {result.postprocess_s:.3f}"
    )
    return 0


def _pairs(overrides: dict[str, Any]) -> str:
    return " ".join(f"{k}={json.dumps(v)}" for k, v in overrides.items()) or "(none)"


def _recipe(
    args: argparse.Namespace, source: Source, data: NodeDataset
) -> tuple[SGAPConfig, str, dict[str, Any]]:
    """The preset's training settings for ``data``: its validated recipe, a ``--tune``
    choice or the bare preset. Returns the configuration, the line that says which (empty
    for a --config) and the JSON fields of the result."""
    if source.preset is None:
        return source.config, "", {}
    pair = f"{data.name}/{source.preset}"
    if args.tune:
        print(
            f"sgap train: tuning {pair} on validation accuracy (seeds "
            f"{', '.join(map(str, TUNE_SEEDS))}) ...",
            file=sys.stderr,
        )
        tuning = tune(data, source.config, source.preset, TUNE_SEEDS)
        lines = [
            f"recipe    {pair} tuned on validation (--tune): {_pairs(tuning.overrides)}",
            *(f"            val {score:.4f}  {_pairs(o)}" for o, score in tuning.scores),
        ]
        scores = [{"overrides": o, "val_acc": score} for o, score in tuning.scores]
        return (
            tuning.config,
            "\n".join(lines),
            {
                "recipe": {"name": pair, "source": "tune", "overrides": tuning.overrides},
                "tuning": scores,
            },
        )
    found = None if args.no_recipe else recipe(data.name, source.preset)
    if found is None:
        why = "--no-recipe" if args.no_recipe else "none validated; --tune chooses one"
        return source.config, f"recipe    {pair}: the preset's own values ({why})", {"recipe": None}
    text = _pairs(found) if found else "the preset's own values"
    return (
        source.config.replace(**found),
        f"recipe    {pair} (validated, docs/results.md): {text}",
        {"recipe": {"name": pair, "source": "validated", "overrides": found}},
    )


def run_on_hops(args: argparse.Namespace, label: str, config: SGAPConfig) -> int:
    """Train, infer (and post-process, when the folder holds every node and its graph) on a
    hop folder: mini-batches gathered from the memory-mapped ``hops.npy``."""
    if args.dataset is not None:
        raise ValueError("pass either --dataset or --hops, not both")
    folder = Path(args.hops)
    manifest = read_manifest(folder)
    hops = load_hops(folder)
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
