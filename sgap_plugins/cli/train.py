"""``sgap train``: precompute, train, infer and post-process one SGAP model."""

from __future__ import annotations

import argparse
import json

from ..core.config import PRESETS, SGAPConfig, preset
from ..core.trainer import run as run_pipeline
from ..datasets import load_dataset
from .common import add_dataset_args


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
    data = load_dataset(args.dataset, args.data_root, args.split_seed)
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
