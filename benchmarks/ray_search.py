"""The same seeded search on the local process pool and on Ray, 1 and 2 parallel trials.

A ``--trials``-trial search (default 20) on one dataset (``csbm`` by default, ``--dataset
cora``) runs four times with the same seed: :class:`LocalProcessPool` with 1 and 2 workers,
:class:`RayExecutor` (a local Ray runtime) with 1 and 2. Each run's wall time is split into

* ``prepare_s`` — the hop stores (built once before the runs, so here a cache hit: reading
  their metadata, saving the trial context); ``cold_prepare_s`` is the first build;
* ``startup_s`` — the executor's start beyond ``prepare``: the pool waiting for its spawned
  workers, Ray's ``ray.init`` and putting the context into its object store;
* ``first_trial_s`` — from the first submission to the first outcome (on Ray this includes a
  fresh worker importing torch and the plugins);
* ``trials_s`` — from the end of the start to the last outcome;
* ``close_s`` — stopping the workers / shutting the local runtime down,

and the proposals of runs with the same capacity are compared (the engine's fixed lag makes
them equal). Writes ``docs/benchmarks/ray_search.json`` with the command.

    .venv/bin/python benchmarks/ray_search.py                  # csbm, 20 trials (compat env)
    .venv/bin/python benchmarks/ray_search.py --dataset cora
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


class Timed:
    """Delegates to an executor and records when its phases end (monotonic seconds)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.marks: dict[str, float] = {}

    @property
    def capacity(self) -> int:
        return int(self.inner.capacity)

    @property
    def running(self) -> int:
        return int(self.inner.running)

    def start(self, prepare: Callable[[], Any], jobs: int) -> None:
        def timed_prepare() -> Any:
            t = time.monotonic()
            ctx = prepare()
            self.marks["prepare_s"] = time.monotonic() - t
            return ctx

        self.marks["start"] = time.monotonic()
        self.inner.start(timed_prepare, jobs)
        self.marks["started"] = time.monotonic()

    def submit(self, job: Any) -> None:
        self.marks.setdefault("first_submit", time.monotonic())
        self.inner.submit(job)

    def wait(self) -> list[Any]:
        outcomes = self.inner.wait()
        if outcomes:
            self.marks.setdefault("first_outcome", time.monotonic())
            self.marks["last_outcome"] = time.monotonic()
        return outcomes

    def close(self) -> None:
        t = time.monotonic()
        self.inner.close()
        self.marks["close_s"] = time.monotonic() - t


def run_one(kind: str, workers: int, args: argparse.Namespace, data: Any, work: Path) -> dict:
    from sgap_plugins.core.search import LocalProcessPool, RayExecutor, SearchEngine
    from sgap_plugins.core.search.engine import DEFAULT_BASE_CONFIG
    from sgap_plugins.core.search.evaluation import evaluate_trial

    inner = LocalProcessPool(workers, evaluate_trial) if kind == "pool" else RayExecutor(workers)
    timed = Timed(inner)
    engine = SearchEngine(
        data,
        work / f"{kind}{workers}",
        args.trials,
        objectives=["val_error", "params"],
        base_config=DEFAULT_BASE_CONFIG.replace(
            epochs=args.epochs, patience=min(args.epochs, DEFAULT_BASE_CONFIG.patience)
        ),
        seed=args.seed,
        hop_cache=work / "hops",
        progress=False,
        presets=False,
        executor=timed,
    )
    t = time.monotonic()
    result = engine.run()
    wall = time.monotonic() - t
    m = timed.marks
    row = {
        "executor": kind,
        "workers": workers,
        "wall_s": wall,
        "prepare_s": m["prepare_s"],
        "startup_s": m["started"] - m["start"] - m["prepare_s"],
        "first_trial_s": m["first_outcome"] - m["first_submit"],
        "trials_s": m["last_outcome"] - m["started"],
        "close_s": m["close_s"],
        "trials_ok": sum(t.status == "ok" for t in result.trials),
        "points": [t.point for t in result.trials],
    }
    print(
        f"{kind:>4} ×{workers}: wall {wall:6.1f} s = prepare {row['prepare_s']:.1f} + start-up "
        f"{row['startup_s']:.1f} + trials {row['trials_s']:.1f} (first {row['first_trial_s']:.1f})"
        f" + close {row['close_s']:.1f}; {row['trials_ok']}/{args.trials} ok",
        flush=True,
    )
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="csbm", help="csbm (default) or cora")
    p.add_argument("--trials", type=int, default=20)
    p.add_argument(
        "--epochs",
        type=int,
        default=200,
        help="epochs per trial (default 200 and patience 50, the search's default budget)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(ROOT / "docs/benchmarks/ray_search.json"))
    args = p.parse_args(argv)
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)

    from sgap_plugins.core.search import DesignSpace, HopStore, TrialContext
    from sgap_plugins.datasets import load_dataset

    data = load_dataset(args.dataset)
    with tempfile.TemporaryDirectory(prefix="sgap-ray-bench-") as tmp:
        work = Path(tmp)
        space = DesignSpace.paper()
        t = time.monotonic()  # the hop stores, built once for all four runs
        TrialContext.create(
            HopStore(work / "hops", data),
            space.graph_aggregators,
            space.ranges["k_pre"][1],
            work / "context",
        )
        cold = time.monotonic() - t
        print(f"hop stores of {args.dataset} built in {cold:.1f} s (once)", flush=True)
        runs = [run_one(k, w, args, data, work) for k in ("pool", "ray") for w in (1, 2)]
    by = {(r["executor"], r["workers"]): r for r in runs}
    same = {w: by["pool", w]["points"] == by["ray", w]["points"] for w in (1, 2)}
    print(f"same proposals as the pool: 1 worker {same[1]}, 2 workers {same[2]}")
    import ray
    import torch

    report = {
        "command": command,
        "dataset": args.dataset,
        "num_nodes": data.num_nodes,
        "trials": args.trials,
        "epochs": args.epochs,
        "seed": args.seed,
        "cold_prepare_s": cold,
        "same_proposals": {f"{w}_workers": same[w] for w in (1, 2)},
        "runs": [{k: v for k, v in r.items() if k != "points"} for r in runs],
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "ray": ray.__version__,
        },
    }
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":  # the pool's spawned workers re-import this script
    sys.exit(main())
