"""Arguments and helpers shared by sub-commands."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..datasets import DATASET_NAMES


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` to an option's help unless the help already names its
    default, or the default says nothing (``None``, ``False``, an empty list)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or not action.option_strings
            or default is None
            or default is False
            or default == []
            or default is argparse.SUPPRESS
        ):
            return action.help
        return f"{text} (default: %(default)s)"


def non_negative_int(flag: str) -> Callable[[str], int]:
    """An argparse ``type`` for a seed-like integer ``>= 0``; a bad value names ``flag``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = -1
        if value < 0:
            raise argparse.ArgumentTypeError(
                f"{flag} must be an integer >= 0 (it seeds numpy's generator), got {text!r}"
            )
        return value

    return parse


def read_json(path: str | Path, flag: str) -> Any:
    """The JSON document in ``path`` given with ``flag``; a missing or malformed file is an
    error naming the flag, the file and (for bad JSON) the line and column."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise FileNotFoundError(f"{flag} {path}: cannot read it ({exc.strerror})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{flag} {path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None


def parse_aggregator_spec(text: str, flag: str) -> str | tuple[str, dict[str, Any]]:
    """``NAME`` or ``NAME:key=value[,key=value...]`` (values read as by :func:`parse_params`)
    → a name, or a ``(name, params)`` design-space choice:
    ``"heat:tau=2"`` → ``("heat", {"tau": 2})``."""
    name, sep, rest = text.partition(":")
    name = name.strip()
    if not name:
        raise ValueError(f"{flag} expects NAME or NAME:key=value[,key=value], got {text!r}")
    if not sep:
        return name
    items = [item for item in rest.split(",") if item.strip()]
    if not items:
        raise ValueError(f"{flag} {text!r}: no key=value after the ':'")
    return name, parse_params(items, f"{flag} {name}:")


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
        type=non_negative_int("--split-seed"),
        default=0,
        help="seed of the random 20/30-per-class split (Amazon, Coauthor, csbm); "
        "the published split 0-9 of the heterophily sets (actor, texas, tolokers, ...)",
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


_SIZE_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def parse_bytes(text: str, flag: str = "--memory-budget") -> int:
    """``"1048576"``, ``"512M"``, ``"8G"``, ``"1.5GiB"`` → bytes (binary units K, M, G, T)."""
    value = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = value[-1:] if value[-1:] in _SIZE_UNITS and value[-1:] else ""
    number = value[: len(value) - len(unit)] if unit else value
    try:
        size = float(number) * _SIZE_UNITS[unit]
    except ValueError:
        size = -1.0
    if not size > 0 or size != size or size == float("inf"):
        raise argparse.ArgumentTypeError(
            f"{flag} expects a positive number of bytes or a size like 512M or 8G, got {text!r}"
        )
    return int(size)


def npy_file(path: str, flag: str) -> Path:
    """An existing ``.npy`` file given with ``flag`` (errors name the flag and the fix)."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(
            f"{flag} {path}: no such file; pass the path of a .npy array (np.save(path, array))"
        )
    with open(file, "rb") as f:
        if f.read(6) != b"\x93NUMPY":
            raise ValueError(f"{flag} {path} is not a .npy file; save the array with np.save")
    return file


def file_identity(path: Path) -> dict[str, Any]:
    """Path, size and modification time: what identifies an input file between runs."""
    stat = path.stat()
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
