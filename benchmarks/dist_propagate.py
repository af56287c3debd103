"""Column-sharded propagation: one rank against several ranks of ``torchrun`` on one machine.

A seeded power-law graph from :func:`scale.generate` (``edges.npy``, ``x.npy``,
``rows.npy``) is built once (``sgap precompute --symmetrize``, one process: the reference
result). Then the same propagation (``aug_na``, K hops of every node, keeping the selected
rows) runs as ``torchrun --nproc_per_node P -m sgap_plugins.dist propagate`` for each ``P``
of ``--runs``, each in a fresh folder whose ``graph`` links to the built one (so a rank
only maps it). Per run:

* ``wall_s`` — the whole ``torchrun`` command, seen from here;
* ``propagate_s`` — the slowest rank's propagation (from the manifest's ``ranks``);
* ``fixed_s = wall_s - propagate_s`` — everything else, split into ``startup_s``
  (``wall_s`` minus the ranks' time in the command, the manifest's ``total_s``: torchrun's
  start, imports, rendezvous) and ``setup_s`` (``total_s - propagate_s``: the storage
  probe, mapping the graph, loading the kernels, preparing the blocks, writing the folder).

Each run is ``PxT``: ``P`` ranks of ``T`` threads each (``OMP_NUM_THREADS=T``). The default
``1x2,1x1,2x1`` on 2 cores gives one 2-thread process (what one machine does best), one
1-thread rank (a one-core machine) and two 1-thread ranks (two one-core machines sharing
nothing but the page cache and the memory bus): ``1x1`` against ``2x1`` is the scale-out
that more machines give, ``1x2`` against ``2x1`` the cost of ranks over threads.
Every result is checked against the reference, bit for bit. Writes
``docs/benchmarks/dist_propagate.json`` with the command that produced it.

    .venv/bin/python benchmarks/dist_propagate.py                 # ~1-2 min on 2 cores
    .venv/bin/python benchmarks/dist_propagate.py --size 4M:80M --runs 1x1,2x1,4x1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from scale import generate, parse_count  # noqa: E402  (the generator of benchmarks/scale.py)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def options(data: Path, out: Path, args: argparse.Namespace) -> list[str]:
    """The options shared by ``sgap precompute`` and ``sgap_plugins.dist propagate``."""
    return [
        "--edges",
        str(data / "edges.npy"),
        "--features",
        str(data / "x.npy"),
        "--rows",
        str(data / "rows.npy"),
        "--symmetrize",
        "-k",
        str(args.k),
        "--aggregator",
        "aug_na",
        "--memory-budget",
        args.memory_budget,
        "--out",
        str(out),
        "--no-progress",
        "--json",
    ]


def timed(
    command: list[str], timeout: float, env: dict[str, str] | None = None
) -> tuple[float, dict]:
    """Wall seconds of ``command`` and the JSON object on the last line of its stdout
    (after writing back the dirty pages of earlier steps, which would otherwise slow the
    first timed run: ~3 s here after the graph build)."""
    os.sync()
    tic = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    wall = time.perf_counter() - tic
    if proc.returncode:
        raise SystemExit(f"{shlex.join(command)} failed:\n{proc.stderr[-4000:]}")
    return wall, json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="2M:40M", help="NODES:EDGES (directed input edges)")
    p.add_argument("--features", type=int, default=128)
    p.add_argument("--k", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--runs", default="1x2,1x1,2x1", help="comma-separated RANKSxTHREADS (threads per rank)"
    )
    p.add_argument("--memory-budget", default="1G", help="per rank (sgap precompute's)")
    p.add_argument("--timeout", type=float, default=1800, help="seconds per command")
    p.add_argument("--work", default=str(ROOT / "benchmarks" / "out" / "dist_propagate"))
    p.add_argument("--out-json", default=str(ROOT / "docs" / "benchmarks" / "dist_propagate.json"))
    args = p.parse_args(argv)
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    nodes, edges = (parse_count(v) for v in args.size.split(":"))
    work = Path(args.work)
    if work.exists():
        shutil.rmtree(work)
    print(f"== {nodes:,} nodes, {edges:,} edges, F={args.features}: generating", flush=True)
    gen = generate(work / "data", nodes, edges, args.features, args.seed)

    python = sys.executable
    ref = work / "one"
    wall, manifest = timed(
        [python, "-m", "sgap_plugins.cli", "precompute", *options(work / "data", ref, args)],
        args.timeout,
    )
    reference = {
        "wall_s": wall,
        "graph_build_s": manifest["timings"]["graph_s"],
        "propagate_s": manifest["timings"]["propagate_s"],
        "kernel_build_s": manifest["kernel_build_s"],
    }
    print(
        f"   sgap precompute (1 process, builds the graph): {wall:.1f} s, graph "
        f"{reference['graph_build_s']:.1f} s, propagation {reference['propagate_s']:.1f} s",
        flush=True,
    )

    import torch

    from sgap_plugins import load_hops

    expected = load_hops(ref)
    runs = []
    for spec in args.runs.split(","):
        ranks, threads = (int(v) for v in spec.lower().split("x"))
        out = work / f"run{ranks}x{threads}"
        out.mkdir()
        (out / "graph").symlink_to(ref / "graph", target_is_directory=True)
        torchrun = [
            python,
            "-m",
            "torch.distributed.run",
            f"--nproc_per_node={ranks}",
            "--master_addr=127.0.0.1",
            f"--master_port={free_port()}",
            "-m",
            "sgap_plugins.dist",
            "propagate",
        ]
        wall, manifest = timed(
            [*torchrun, *options(work / "data", out, args)],
            args.timeout,
            env={**os.environ, "OMP_NUM_THREADS": str(threads)},
        )
        propagate_s = manifest["timings"]["propagate_s"]
        run = {
            "ranks": ranks,
            "threads": threads,
            "layout": manifest["layout"],
            "wall_s": wall,
            "propagate_s": propagate_s,
            "fixed_s": wall - propagate_s,
            "startup_s": wall - manifest["timings"]["total_s"],
            "setup_s": manifest["timings"]["total_s"] - propagate_s,
            "graph_map_s": manifest["timings"]["graph_s"],
            "per_rank_propagate_s": [r["propagate_s"] for r in manifest["ranks"]],
            "num_blocks": manifest["num_blocks"],
            "identical": bool(torch.equal(load_hops(out), expected)),
        }
        runs.append(run)
        print(
            f"   {ranks} rank(s) x {threads} thread(s): wall {wall:.1f} s = propagation "
            f"{propagate_s:.1f} s + fixed "
            f"{run['fixed_s']:.1f} s (start-up {run['startup_s']:.1f} s, setup "
            f"{run['setup_s']:.1f} s); identical to one process: {run['identical']}",
            flush=True,
        )
    base = runs[0]
    print(
        f"\n{'PxT':>5} {'wall s':>8} {'propagate s':>12} {'start-up s':>11} {'setup s':>8}"
        "   speed-up vs the first"
    )
    for run in runs:
        run["speedup_wall"] = base["wall_s"] / run["wall_s"]
        run["speedup_propagate"] = base["propagate_s"] / run["propagate_s"]
        print(
            f"{run['ranks']}x{run['threads']:<3} {run['wall_s']:>8.1f} {run['propagate_s']:>12.1f} "
            f"{run['startup_s']:>11.1f} {run['setup_s']:>8.1f}   x{run['speedup_wall']:.2f} "
            f"wall, x{run['speedup_propagate']:.2f} propagation"
        )
    report = {
        "command": command,
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.machine(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "load_average": list(os.getloadavg()),
        },
        "nodes": nodes,
        "edges": edges,
        "graph_edges": json.loads((ref / "graph" / "graph.json").read_text()).get("num_edges"),
        "features": args.features,
        "k": args.k,
        "rows": gen["rows"],
        "memory_budget": args.memory_budget,
        "reference": reference,
        "runs": runs,
    }
    Path(args.out_json).write_text(json.dumps(report, indent=2) + "\n")
    shutil.rmtree(work)
    print(f"wrote {args.out_json}")
    return 0 if all(run["identical"] for run in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
