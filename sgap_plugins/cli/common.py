"""Arguments and helpers shared by sub-commands."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..datasets import DATASET_NAMES


def add_dataset_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dataset",
        default="csbm",
        type=str.lower,
        choices=DATASET_NAMES,
        help="dataset name (default: csbm, the built-in synthetic graph)",
    )
    parser.add_argument(
        "--data-root",
        default=None,
        help="folder in PyG raw layout (default: $SGAP_DATA_ROOT, else ~/.cache/sgap_plugins/data)",
    )
    parser.add_argument(
        "--split-seed",
        type=int,
        default=0,
        help="seed of the random 20/30-per-class split (Amazon, Coauthor, csbm)",
    )


def parse_params(items: list[str] | None, option: str = "--param") -> dict[str, Any]:
    """``KEY=VALUE`` arguments of ``option`` as a dict; a value is read as JSON (``true`` /
    ``false`` in any case), else kept as a string: ``["alpha=0.1", "add_self_loops=false",
    "ga_pre=ppr"]`` → ``{"alpha": 0.1, "add_self_loops": False, "ga_pre": "ppr"}``."""
    params: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"{option} expects KEY=VALUE, got {item!r}")
        try:
            params[key] = json.loads(value.lower() if value.lower() in ("true", "false") else value)
        except json.JSONDecodeError:
            params[key] = value
    return params
