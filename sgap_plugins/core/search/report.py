"""Search outputs: ``pareto.json``, ``trials.csv``, ``pareto.png`` (:func:`write_outputs`,
what every search writes, from the CLI or the Python API alike) and a terminal table."""

from __future__ import annotations

import csv
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from ..durable_files import write_atomic, write_json_atomic
from .result import SearchResult

UNITS = {
    "val_error": ("val error", 1.0),
    "inference_time": ("inference µs/node", 1e6),
    "train_time": ("train s", 1.0),
    "peak_memory": ("memory MiB", 1.0 / 2**20),
    "params": ("params", 1.0),
}


def write_outputs(
    result: SearchResult,
    out: str | Path,
    references: Mapping[str, Mapping[str, float]] | None = None,
    title: str | None = None,
) -> list[Path]:
    """Write the outputs of a finished search to ``out`` and return their paths:
    ``pareto.json`` (:meth:`SearchResult.pareto_json`), ``trials.csv`` and, for two or more
    objectives, ``pareto.png`` with ``references`` as stars (:func:`plot_pareto`; skipped
    with a warning when matplotlib is not installed)."""
    out = Path(out)
    written = [out / "pareto.json", out / "trials.csv"]
    write_pareto_json(result, written[0])
    write_trials_csv(result, written[1])
    if len(result.objectives) >= 2:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            warnings.warn(
                "matplotlib is not installed: no pareto.png (pip install 'sgap-plugins[search]')",
                stacklevel=2,
            )
        else:
            plot_pareto(result, out / "pareto.png", references=references, title=title)
            written.append(out / "pareto.png")
    return written


def write_pareto_json(result: SearchResult, path: str | Path) -> None:
    write_json_atomic(Path(path), result.pareto_json())


def write_trials_csv(result: SearchResult, path: str | Path) -> None:
    """One row per trial: number, status, the point's dimensions, every objective, val and
    test accuracy, whether it is on the front, and the error of a failed trial; for a
    warm-started search also a ``warm_start`` column (the preset a trial came from)."""
    front = {t.trial for t in result.front}
    point_keys = sorted({k for t in result.trials for k in t.point})
    obj_keys = sorted({k for t in result.trials for k in t.objectives})
    warm = any("warm_start" in t.extra for t in result.trials)

    def write(f: IO[str]) -> None:
        w = csv.writer(f)
        heads = ["trial", "status", *point_keys, *obj_keys, "val_acc", "test_acc", "on_front"]
        w.writerow([*heads, "error", *(["warm_start"] if warm else [])])
        for t in result.trials:
            w.writerow(
                [
                    t.trial,
                    t.status,
                    *(t.point.get(k) for k in point_keys),
                    *(t.objectives.get(k) for k in obj_keys),
                    t.val_acc,
                    t.test_acc,
                    int(t.trial in front),
                    (t.error or "").splitlines()[0] if t.error else "",
                    *([t.extra.get("warm_start", "")] if warm else []),
                ]
            )

    write_atomic(Path(path), write)


def plot_pareto(
    result: SearchResult,
    path: str | Path,
    references: Mapping[str, Mapping[str, float]] | None = None,
    title: str | None = None,
) -> None:
    """Scatter of all finished trials on the first two objectives, the front as a staircase
    and ``references`` (e.g. presets: ``{name: {objective: value}}``) as labelled stars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if len(result.objectives) < 2:
        raise ValueError("a Pareto plot needs two objectives")
    ox, oy = result.objectives[1], result.objectives[0]  # x: cost, y: val_error
    (lx, sx), (ly, sy) = UNITS[ox], UNITS[oy]
    ok = [t for t in result.trials if t.status == "ok"]
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=110)
    ax.scatter(
        [t.objectives[ox] * sx for t in ok],
        [t.objectives[oy] * sy for t in ok],
        s=14,
        c="#9aa7b8",
        label=f"trials ({len(ok)})",
    )
    front = sorted(result.front, key=lambda t: t.objectives[ox])
    if front:
        xs = [t.objectives[ox] * sx for t in front]
        ys = [t.objectives[oy] * sy for t in front]
        ax.step(xs, ys, where="post", color="#d1495b", lw=1.2)
        ax.scatter(xs, ys, s=28, c="#d1495b", zorder=3, label=f"Pareto front ({len(front)})")
    for name, objs in (references or {}).items():
        if ox in objs and oy in objs:
            x, y = objs[ox] * sx, objs[oy] * sy
            ax.scatter([x], [y], marker="*", s=110, c="#00798c", zorder=4)
            ax.annotate(name, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    if ox in ("inference_time", "train_time", "peak_memory", "params"):
        ax.set_xscale("log")
    ax.set_xlabel(lx)
    ax.set_ylabel(ly)
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def front_table(result: SearchResult) -> str:
    """The front as an aligned text table (architecture, objectives, val and test acc); a
    warm-start trial's number is followed by its preset, e.g. ``3 (sgc)``."""
    heads = ["#", "trial", "architecture"] + [UNITS[o][0] for o in result.objectives]
    heads += ["val acc", "test acc"]
    rows: list[list[str]] = []
    for i, t in enumerate(result.front):
        p = t.point
        post = f" → {p['ga_post']}×{p['k_post']}" if p["k_post"] else ""
        arch = f"{p['ga_pre']}×{p['k_pre']} → {p['ma']} → MLP{p['k_trans']}{post}"
        vals = [_fmt(t.objectives[o] * UNITS[o][1]) for o in result.objectives]
        trial = f"{t.trial} ({t.extra['warm_start']})" if "warm_start" in t.extra else str(t.trial)
        rows.append([str(i), trial, arch, *vals, f"{t.val_acc:.4f}", f"{t.test_acc:.4f}"])
    return _table(heads, rows)


def _fmt(v: float) -> str:
    return f"{v:.4f}" if abs(v) < 1e4 else f"{v:.3g}"


def _table(heads: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(heads, *rows, strict=False)]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(heads, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(x).ljust(w) for x, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)
