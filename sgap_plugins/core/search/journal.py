"""The durable record of a search: :class:`Trial` and the append-only ``trials.jsonl``.

Every finished trial is one JSON object on its own line, written with one ``write`` and
``fsync``\\ ed before the next trial is recorded, so that an interrupted search (Ctrl-C,
``kill -9``) loses at most the trial being written. Each record carries ``"schema":``
:data:`SCHEMA_VERSION`.

Reading back (:func:`read_trials`) never drops data silently:

* the last line without its terminating newline is a *torn* write (the process died
  mid-``write``); that trial never finished and is dropped;
* any other line that is not a JSON object, or a record of another schema, stops the read
  with a :class:`JournalError` naming the file and the line, instead of re-running (and so
  losing) that trial.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1  # bump when the fields of a Trial record change
STATUSES = ("ok", "fail")


class JournalError(ValueError):
    """A ``trials.jsonl`` line that is neither a record of this schema nor a torn last line."""


@dataclass
class Trial:
    """One finished trial, as stored in ``trials.jsonl``.

    Attributes:
        trial: the trial number ``0 … max_evals-1``.
        point: the design-space point (see :class:`~sgap_plugins.core.search.DesignSpace`).
        config: the :class:`~sgap_plugins.core.config.SGAPConfig` it trained, as a dict.
        status: ``"ok"`` or ``"fail"``.
        objectives: the measured objectives (empty for a failed trial).
        test_acc, val_acc: accuracies after post-processing.
        error: why a failed trial failed (traceback, timeout, worker crash).
        seconds: wall time of the trial.
        extra: further results (``train_acc``, ``best_epoch``, ``epochs_run``).
    """

    trial: int
    point: dict[str, Any]
    config: dict[str, Any]
    status: str
    objectives: dict[str, float] = field(default_factory=dict)
    test_acc: float | None = None
    val_acc: float | None = None
    error: str | None = None
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        """One line of ``trials.jsonl`` (no newline): the fields and ``"schema"``."""
        record = {"schema": SCHEMA_VERSION, **asdict(self)}
        return json.dumps(record, sort_keys=True, allow_nan=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Trial:
        """The trial of a record of schema :data:`SCHEMA_VERSION`.

        Raises:
            ValueError: the record has another schema, unknown or missing fields, or a bad
                ``trial`` / ``status``.
        """
        d = dict(d)
        schema = d.pop("schema", None)
        if schema != SCHEMA_VERSION:
            raise ValueError(
                f"record of schema {schema!r}, this version of sgap-plugins reads schema "
                f"{SCHEMA_VERSION}"
            )
        names = {f.name for f in fields(cls)}
        required = {"trial", "point", "config", "status"}
        if set(d) - names or required - set(d):
            raise ValueError(
                f"record fields {sorted(d)} do not match a trial of schema {SCHEMA_VERSION} "
                f"(unknown {sorted(set(d) - names)}, missing {sorted(required - set(d))})"
            )
        if isinstance(d["trial"], bool) or not isinstance(d["trial"], int) or d["trial"] < 0:
            raise ValueError(f"'trial' must be a non-negative int, got {d['trial']!r}")
        if d["status"] not in STATUSES:
            raise ValueError(f"'status' must be one of {STATUSES}, got {d['status']!r}")
        return cls(**d)


def read_trials(path: str | Path) -> list[Trial]:
    """The trials recorded in a ``trials.jsonl`` (none if the file does not exist), in file
    order. Blank lines are skipped; a torn last line (no terminating newline) is dropped.

    Raises:
        JournalError: a complete line is not a trial record of schema
            :data:`SCHEMA_VERSION`; the message names the file and the 1-based line.
    """
    path = Path(path)
    if not path.exists():
        return []
    lines = path.read_bytes().split(b"\n")
    # The element after the last newline is empty for a complete file, else a torn write.
    trials = []
    for number, raw in enumerate(lines[:-1], start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw.decode("utf-8"))
            if not isinstance(record, dict):
                raise ValueError(f"a JSON {type(record).__name__}, not an object")
            trials.append(Trial.from_dict(record))
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError included
            raise JournalError(
                f"{path}, line {number}: not a trial record ({exc}); the search cannot resume "
                "without losing that trial. Restore the line, or remove it to run that trial "
                "again, or start a new search in another folder"
            ) from exc
    return trials


class Journal:
    """Append-only, ``fsync``\\ ed ``trials.jsonl``.

    Opening it truncates a torn last line (as :func:`read_trials` drops it), so that the next
    record starts on a line of its own.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        if path.exists():
            raw = path.read_bytes()
            cut = raw.rfind(b"\n") + 1
            if cut != len(raw):
                with open(path, "r+b") as f:
                    f.truncate(cut)
                    f.flush()
                    os.fsync(f.fileno())
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def append(self, trial: Trial) -> None:
        """Write ``trial`` as one line and ``fsync`` it."""
        self._file.write(trial.to_json() + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()
