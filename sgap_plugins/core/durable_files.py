"""Durable files of the on-disk folders (graph folders, hop folders).

A folder is finished when its JSON description (``graph.json``, ``manifest.json``) exists,
so every file is written to a temporary name, ``fsync``\\ ed and renamed into place: a crash
leaves either the old file or the new one, never a torn one, and the description is on disk
only after what it describes. Descriptions carry a ``format`` name and a ``version``; a
reader refuses any other with an error that says how to rebuild.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np


def fsync_path(path: Path) -> None:
    """``fsync`` a file or a folder by name (a rename is durable once its folder is);
    silently skipped where the file system does not support it."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomic(path: Path, write: Callable[[IO[Any]], object], binary: bool = False) -> None:
    """Replace ``path`` with what ``write(f)`` writes: a temporary file next to it
    (``.<name>.<pid>.tmp``, so concurrent writers never share one), ``fsync``, ``os.replace``,
    ``fsync`` of the folder."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb" if binary else "w") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_path(path.parent)


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """``data`` as indented JSON (one trailing newline), written by :func:`write_atomic`."""
    write_atomic(path, lambda f: f.write(json.dumps(data, indent=2) + "\n"))


def write_npy_atomic(path: Path, array: Any) -> None:
    """``array`` as a ``.npy`` file (no pickling), written by :func:`write_atomic`."""
    write_atomic(path, lambda f: np.save(f, array, allow_pickle=False), binary=True)


def read_versioned_json(path: Path, fmt: str, version: int, kind: str, fix: str) -> dict[str, Any]:
    """Read a JSON description and check its ``format`` (``fmt``) and ``version``.

    ``kind`` names the description in errors (e.g. ``"graph description"``) and ``fix`` says
    what makes a good one (e.g. ``"rebuild the graph"``). Raises ``ValueError`` for a file
    that is not JSON, not an object of that format, or of another version.
    """
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{path} is not valid JSON ({err}); {fix}") from err
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        raise ValueError(f"{path} is not an sgap {kind}; {fix}")
    if meta.get("version") != version:
        raise ValueError(
            f"{path} has format version {meta.get('version')!r}, this sgap-plugins reads "
            f"version {version}; {fix} with this version"
        )
    return meta
