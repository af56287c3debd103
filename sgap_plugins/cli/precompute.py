"""``sgap precompute``: propagate a dataset's features and save the hop tensor."""

from __future__ import annotations

import argparse
import json
import time

import torch

from ..core.propagation import propagate
from ..datasets import load_dataset
from .common import add_dataset_args, parse_params


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("precompute", help="propagate features K hops and save [K+1, N, F]")
    add_dataset_args(p)
    p.add_argument("-k", "--k", type=int, default=3, help="number of hops")
    p.add_argument("--aggregator", default="aug_na", help="graph aggregator name")
    p.add_argument(
        "--param",
        action="append",
        metavar="KEY=VALUE",
        help="aggregator parameter, repeatable (e.g. --param alpha=0.1)",
    )
    p.add_argument("--out", default=None, help="save the hops with torch.save to this path")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def run(args: argparse.Namespace) -> int:
    data = load_dataset(args.dataset, args.data_root, args.split_seed)
    params = parse_params(args.param)
    start = time.perf_counter()
    hops = propagate(data.edge_index, data.x, args.k, args.aggregator, **params)
    seconds = time.perf_counter() - start
    if args.out:
        torch.save(hops, args.out)
    info = {
        "dataset": data.name,
        "k": args.k,
        "aggregator": args.aggregator,
        "params": params,
        "shape": list(hops.shape),
        "precompute_s": seconds,
        "out": args.out,
    }
    if args.json:
        print(json.dumps(info))
    else:
        print(
            f"{data.name}: {args.aggregator} x{args.k} -> {list(hops.shape)} "
            f"in {seconds:.3f} s" + (f", saved to {args.out}" if args.out else "")
        )
    return 0
