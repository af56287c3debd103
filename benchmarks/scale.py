"""Scale benchmark: edge files on disk → CSR graph folder → selected hops, out of core, at
three graph sizes, and a cost model extrapolated to ogbn-papers100M.

For each size a seeded power-law graph is written to disk in chunks (Chung–Lu style: both
endpoints of every edge drawn by a Zipf weight, node ids shuffled): ``edges.npy``
(``int32 [2, E]``, directed), ``x.npy`` (``float16 [N, F]``) and ``rows.npy`` (1% of the
nodes). Then two phases, each in its own process:

* **build** — :func:`sgap_plugins.core.graph_store.build_csr` with ``symmetrize=True`` and
  ``duplicates="drop"`` (what papers100M pipelines do);
* **propagate** — ``sgap precompute --edges … --features … --rows … --symmetrize`` (which
  finds and reuses the graph folder of the build; ``--via api`` calls
  :func:`sgap_plugins.core.hop_folder.precompute` instead): ``aug_na`` K hops of every node
  in fp32 column blocks within ``--memory-budget``, keeping the selected rows.

The parent samples each phase's peak anonymous memory (``RssAnon + RssShmem``,
:class:`~sgap_plugins.core.memory.PeakAnonMemory`) and its ``/proc/<pid>/io`` until it
exits, fits a cost model on the sizes and writes ``docs/benchmarks/scale.json`` and the
tables that ``docs/scale.rst`` includes (``docs/benchmarks/scale.inc``).

    .venv/bin/python benchmarks/scale.py                          # three sizes (~30 min)
    .venv/bin/python benchmarks/scale.py --sizes 1M:10M --out-json /tmp/s.json --no-docs
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# ogbn-papers100M (OGB): directed citation edges; SIGN/GAMLP propagate on the symmetrised
# graph (each citation in both directions; reciprocal citations are rare, so ~2E).
PAPERS100M = {"nodes": 111_059_956, "edges": 1_615_685_872, "features": 128, "k": 3}
PAPERS100M_ROWS = 1_546_782  # train + valid + test nodes (OGB split)
PAPERS100M_BUDGET = 12 * 2**30  # the budget for which the memory bound stays under 16 GiB
ANCHORS = {
    "OGB examples/nodeproppred/papers100M/sgc.py": "over 100 GB of RAM",
    "GAMLP (papers100M preprocessing)": "400 GB of RAM",
}
DEFAULT_SIZES = "2M:40M,8M:120M,20M:400M"
IO_FIELDS = ("rchar", "wchar", "read_bytes", "write_bytes", "cancelled_write_bytes")


# ------------------------------------------------------------------------------ inputs
def parse_count(text: str) -> int:
    scale = {"K": 10**3, "M": 10**6, "B": 10**9, "G": 10**9}.get(text[-1:].upper(), 1)
    return int(float(text.rstrip("kKmMbBgG")) * scale)


def parse_bytes(text: str) -> int:
    scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:].upper(), 1)
    return int(float(text.rstrip("kKmMgG")) * scale)


def zipf_ids(
    rng: np.random.Generator, num_nodes: int, exponent: float, size: int, perm: np.ndarray
) -> np.ndarray:
    """``size`` node ids drawn with probability ∝ ``rank^-exponent`` (rank 1 … N; the
    continuous inverse CDF), mapped through the shuffle ``perm``. Expected degrees follow the
    weights, so the degree distribution is a power law with tail exponent ``1 + 1/exponent``."""
    a = 1.0 - exponent
    top = (num_nodes + 1.0) ** a - 1.0
    rank = (1.0 + rng.random(size) * top) ** (1.0 / a)
    ids = np.minimum(rank.astype(np.int64) - 1, num_nodes - 1)
    return perm[ids]


def generate(folder: Path, nodes: int, edges: int, features: int, seed: int) -> dict:
    """Write ``edges.npy``, ``x.npy`` and ``rows.npy`` chunk by chunk (memory: the shuffle
    ``[N]`` and one chunk)."""
    t0 = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(nodes).astype(np.int32)
    chunk = 1 << 23
    out = np.lib.format.open_memmap(
        folder / "edges.npy", mode="w+", dtype=np.int32, shape=(2, edges)
    )
    for start in range(0, edges, chunk):
        m = min(chunk, edges - start)
        # Citations: in-degrees heavy-tailed (tail exponent 2.5), out-degrees milder (4).
        out[0, start : start + m] = zipf_ids(rng, nodes, 1 / 3, m, perm)
        out[1, start : start + m] = zipf_ids(rng, nodes, 2 / 3, m, perm)
    out.flush()
    del out, perm
    x = np.lib.format.open_memmap(
        folder / "x.npy", mode="w+", dtype=np.float16, shape=(nodes, features)
    )
    step = max(1, (64 << 20) // (4 * features))
    for start in range(0, nodes, step):
        m = min(step, nodes - start)
        x[start : start + m] = rng.standard_normal((m, features), dtype=np.float32)
    x.flush()
    del x
    rows = np.sort(rng.choice(nodes, max(1, nodes // 100), replace=False)).astype(np.int64)
    np.save(folder / "rows.npy", rows)
    return {"seconds": time.perf_counter() - t0, "rows": int(rows.size)}


# ------------------------------------------------------------------------------ phases
def phase_build(data: Path, args: argparse.Namespace) -> dict:
    """Child process: the graph folder ``DATA/prec/graph``, where ``sgap precompute --out
    DATA/prec`` finds and reuses it (same files, N, ``symmetrize``, ``duplicates="drop"``)."""
    from sgap_plugins.core.graph_store import build_csr

    n = int(json.loads((data / "size.json").read_text())["nodes"])
    t0 = time.perf_counter()
    graph = build_csr(
        data / "edges.npy",
        data / "prec" / "graph",
        num_nodes=n,
        symmetrize=True,
        duplicates="drop",
        chunk_edges=args.chunk_edges,
    )
    files = ("rowptr.npy", "col.npy")
    return {
        "seconds": time.perf_counter() - t0,
        "graph_edges": graph.num_edges,
        "graph_bytes": sum((data / "prec" / "graph" / f).stat().st_size for f in files),
    }


def phase_propagate(data: Path, args: argparse.Namespace) -> dict:
    """Child process (``--via api``): :func:`sgap_plugins.core.hop_folder.precompute` on the
    memory-mapped graph and features, as ``sgap precompute`` calls it."""
    from sgap_plugins import CSRGraph
    from sgap_plugins.core.hop_folder import precompute

    manifest = precompute(
        CSRGraph.load(data / "prec" / "graph", mmap=True),
        np.load(data / "x.npy", mmap_mode="r"),
        args.k,
        "aug_na",
        out=data / "prec",
        rows=np.load(data / "rows.npy"),
        memory_budget=args.memory_budget,
        progress=False,
        inputs={"benchmark": str(data)},  # no content hashes of the inputs
    )
    return summarize_manifest(manifest, "hop_folder.precompute")


def summarize_manifest(manifest: dict, via: str) -> dict:
    timings = manifest["timings"]
    return {
        "seconds": timings["total_s"],
        "propagate_s": timings["propagate_s"],
        "graph_s": timings.get("graph_s", 0.0),
        "blocks": manifest["num_blocks"],
        "working_bytes": manifest["working_bytes"],
        "rows": manifest["num_rows"],
        "via": via,
    }


def cli_command(data: Path, args: argparse.Namespace) -> list[str]:
    """``sgap precompute`` on the files; it reuses the graph the build phase wrote."""
    return [
        *(sys.executable, "-m", "sgap_plugins.cli", "precompute"),
        *("--edges", str(data / "edges.npy"), "--features", str(data / "x.npy")),
        *("--rows", str(data / "rows.npy"), "--symmetrize", "--k", str(args.k)),
        *("--memory-budget", str(args.memory_budget), "--out", str(data / "prec")),
        *("--json", "--no-progress"),
    ]


PHASES = {"build": phase_build, "propagate": phase_propagate}


def read_io(pid: int) -> dict[str, int]:
    values = {}
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in IO_FIELDS:
                values[key] = int(value)
    return values


def run_phase(name: str, data: Path, args: argparse.Namespace) -> dict:
    """Run one phase in a child process; sample its peak anonymous memory and its I/O
    counters (read from ``/proc/<pid>/io`` once more after it exits, before it is reaped)."""
    from sgap_plugins.core.memory import PeakAnonMemory

    if name == "propagate" and args.via == "cli":
        cmd = cli_command(data, args)
    else:
        cmd = [sys.executable, __file__, "--phase", name, "--data", str(data)]
        cmd += ["--k", str(args.k), "--memory-budget", str(args.memory_budget)]
        cmd += ["--chunk-edges", str(args.chunk_edges)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    out: list[str] = []
    err: list[str] = []
    readers = [
        threading.Thread(target=lambda: out.extend(proc.stdout), daemon=True),  # type: ignore[arg-type]
        threading.Thread(target=lambda: err.extend(proc.stderr), daemon=True),  # type: ignore[arg-type]
    ]
    for t in readers:
        t.start()
    io: dict[str, int] = {}
    with PeakAnonMemory(pid=proc.pid, interval=0.01) as mem:
        while os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is None:
            try:
                io = read_io(proc.pid)
            except OSError:
                pass
            time.sleep(0.05)
        io = read_io(proc.pid)  # the zombie still holds its final counters
    proc.wait()
    wall = time.perf_counter() - t0
    for t in readers:
        t.join()
    if proc.returncode != 0:
        tail = "".join(err[-5:]).strip()
        raise RuntimeError(f"phase {name} failed ({proc.returncode}): {tail}")
    result = json.loads(out[-1])
    if name == "propagate" and args.via == "cli":
        result = summarize_manifest(result, "sgap precompute")
    result.update(process_seconds=wall, peak_anon_bytes=mem.peak, io=io)
    return result


# ------------------------------------------------------------------------------ model
def column_blocks(nodes: int, features: int, budget: int, buffers: int = 2) -> tuple[int, int]:
    """(width, number of blocks) of the fp32 column-block propagation: as many columns as
    ``buffers`` ``[N, width]`` fp32 buffers fit in ``budget``, rounded down to a multiple of
    16 from 16 columns (the rule of ``ColumnBlocks.prepare``)."""
    width = max(1, min(features, budget // (nodes * buffers * 4)))
    if 16 <= width < features:
        width -= width % 16
    return width, math.ceil(features / width)


def memory_bound(nodes: int, budget: int) -> int:
    """The propagation's memory formula: ``memory_budget + 16 bytes per node + 512 MiB``."""
    return budget + 16 * nodes + 512 * 2**20


def fit(features: list[list[float]], target: list[float]) -> tuple[list[float], list[float]]:
    """Non-negative least squares ``target ≈ features @ coef`` (a cost cannot be negative);
    returns (coef, relative residuals)."""
    from scipy.optimize import nnls

    a, b = np.asarray(features, dtype=float), np.asarray(target, dtype=float)
    scale = np.abs(a).max(axis=0)  # columns of very different magnitude: solve scaled
    coef = nnls(a / scale, b)[0] / scale
    return coef.tolist(), ((a @ coef - b) / b).tolist()


def cost_model(sizes: list[dict], args: argparse.Namespace) -> dict:
    """Fit time and memory on the measured sizes and extrapolate to papers100M.

    * build time ``= a·E + b·N`` (``E`` directed input edges; every pass streams them, the
      O(N) arrays are scanned once per pass);
    * build peak ``= m0 + m1·N`` (chunk size fixed);
    * propagation time ``= α·E'·F·K + β·N·F·K`` (``E'`` edges of the symmetrised graph: one
      gathered neighbour value per edge, feature and hop; the node term reads ``X`` and
      writes every hop), and the alternative ``α·E'·K·B + β·N·F·K`` that charges every edge
      once per hop and column block ``B`` instead (every block re-reads the graph), which
      grows with narrower blocks;
    * propagation peak: the formula ``budget + 16·N + 512 MiB`` (checked at every size).
    """
    f, k = args.features, args.k
    build_x = [[s["edges"], s["nodes"]] for s in sizes]
    build_coef, build_res = fit(build_x, [s["build"]["seconds"] for s in sizes])
    mem_coef, mem_res = fit(
        [[1.0, s["nodes"]] for s in sizes], [s["build"]["peak_anon_bytes"] for s in sizes]
    )
    prop_t = [s["propagate"]["seconds"] for s in sizes]
    prop_coef, prop_res = fit(
        [[s["graph_edges"] * f * k, s["nodes"] * f * k] for s in sizes], prop_t
    )
    block_coef, block_res = fit(
        [[s["graph_edges"] * k * s["blocks"], s["nodes"] * f * k] for s in sizes], prop_t
    )
    edge_ratio = float(np.mean([s["graph_edges"] / s["edges"] for s in sizes]))
    p = PAPERS100M
    n, e = p["nodes"], p["edges"]
    e_sym = 2 * e  # each citation in both directions
    width, blocks = column_blocks(n, p["features"], PAPERS100M_BUDGET)
    build_s = build_coef[0] * e + build_coef[1] * n
    build_peak = mem_coef[0] + mem_coef[1] * n
    nfk = n * p["features"] * p["k"]
    gather_s = prop_coef[0] * e_sym * p["features"] * p["k"] + prop_coef[1] * nfk
    block_s = block_coef[0] * e_sym * p["k"] * blocks + block_coef[1] * nfk
    # The extrapolation uses the form that fits the measured sizes better.
    per_block = max(map(abs, block_res)) < max(map(abs, prop_res))
    bound = memory_bound(n, PAPERS100M_BUDGET)
    return {
        "build_time": {"formula": "a*E + b*N", "coef": build_coef, "residuals": build_res},
        "build_peak": {"formula": "m0 + m1*N", "coef": mem_coef, "residuals": mem_res},
        "propagate_time": {
            "formula": "alpha*E_sym*F*K + beta*N*F*K",
            "coef": prop_coef,
            "residuals": prop_res,
        },
        "propagate_time_per_block": {
            "formula": "alpha*E_sym*K*B + beta*N*F*K",
            "coef": block_coef,
            "residuals": block_res,
        },
        "measured_symmetrised_edge_ratio": edge_ratio,
        "papers100m": {
            **p,
            "rows": PAPERS100M_ROWS,
            "symmetrised_edges": e_sym,
            "memory_budget": PAPERS100M_BUDGET,
            "block_width": width,
            "blocks": blocks,
            "build_seconds": build_s,
            "build_peak_bytes": build_peak,
            "propagate_model": "per_block" if per_block else "per_value",
            "propagate_seconds": block_s if per_block else gather_s,
            "propagate_seconds_per_block_model": block_s,
            "propagate_seconds_per_value_model": gather_s,
            "propagate_memory_bound": bound,
            "peak_bytes": max(build_peak, bound),
            "disk_bytes": {
                "edges_int64": 2 * e * 8,
                "graph": (n + 1) * 8 + e_sym * 4,
                "x_fp16": n * p["features"] * 2,
                "hops_fp16": (p["k"] + 1) * PAPERS100M_ROWS * p["features"] * 2,
            },
        },
    }


# ------------------------------------------------------------------------------ report
def targets(report: dict) -> list[dict]:
    """The issue's targets: every measured propagation peak within the formula, and the
    papers100M extrapolation (build and propagation) within 16 GiB."""
    out = [
        {
            "target": f"{s['nodes'] / 1e6:g}M nodes: propagation peak ≤ budget + 16·N + 512 MiB",
            "value_gib": s["propagate"]["peak_anon_bytes"] / 2**30,
            "limit_gib": s["memory_bound"] / 2**30,
            "met": s["propagate"]["peak_anon_bytes"] <= s["memory_bound"],
        }
        for s in report["sizes"]
    ]
    if "model" in report:
        pp = report["model"]["papers100m"]
        out.append(
            {
                "target": "papers100M extrapolated peak (build and propagation) ≤ 16 GiB",
                "value_gib": pp["peak_bytes"] / 2**30,
                "limit_gib": 16.0,
                "met": pp["peak_bytes"] <= 16 * 2**30,
            }
        )
    return out


def gib(b: float) -> str:
    return f"{b / 2**30:.2f}"


def gb(b: float) -> str:
    return f"{b / 1e9:.1f}"


def table_rows(report: dict) -> list[list[str]]:
    rows = []
    for s in report["sizes"]:
        b, p = s["build"], s["propagate"]
        rows.append(
            [
                f"{s['nodes'] / 1e6:g}M",
                f"{s['edges'] / 1e6:.0f}M → {s['graph_edges'] / 1e6:.0f}M",
                f"{b['seconds']:.0f}",
                gib(b["peak_anon_bytes"]),
                f"{p['seconds']:.0f}",
                gib(p["peak_anon_bytes"]),
                gib(s["memory_bound"]),
                "yes" if p["peak_anon_bytes"] <= s["memory_bound"] else "**no**",
                f"{s['width']} × {s['blocks']}",
                f"{gb(b['io']['read_bytes'])} / {gb(b['io']['write_bytes'])}",
                f"{gb(p['io']['read_bytes'])} / {gb(p['io']['write_bytes'])}",
                f"{gb(p['io']['rchar'])} / {gb(p['io']['wchar'])}",
            ]
        )
    return rows


HEADER = [
    "nodes",
    "edges (input → symmetrised)",
    "build s",
    "build peak GiB",
    "propagate s",
    "propagate peak GiB",
    "bound GiB",
    "within",
    "block width × blocks",
    "build disk read / write GB",
    "propagate disk read / write GB",
    "propagate rchar / wchar GB",
]


def rst_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = [".. list-table::", "   :header-rows: 1", ""]
    for row in [header, *rows]:
        lines.append(f"   * - {row[0]}")
        lines += [f"     - {cell}" for cell in row[1:]]
    return lines + [""]


def render_inc(report: dict) -> str:
    """The reStructuredText fragment ``docs/scale.rst`` includes."""
    m = report["model"]
    pp = m["papers100m"]
    lines = [
        f"Command: ``{report['command']}`` — {report['machine']['cpus']} CPUs, "
        f"{gib(report['machine']['memory_bytes'])} GiB RAM, F={report['features']}, "
        f"K={report['k']}, 1% of the rows kept, fp16 features, memory budget "
        f"{gib(report['memory_budget'])} GiB, build chunk {report['chunk_edges']:,} edges. "
        f"Load average at the end: "
        f"{', '.join(f'{v:.1f}' for v in report['machine']['load_average'])}.",
        "",
        *rst_table(HEADER, table_rows(report)),
        "*Disk read / write* are ``read_bytes`` / ``write_bytes`` of ``/proc/<pid>/io`` "
        "(block-device traffic, page-cache hits excluded: the inputs were just written, so "
        "most reads are served from the page cache); *rchar / wchar* count "
        "``read``/``write`` system calls and miss memory-mapped access.",
        "",
        "Cost model (least squares over the sizes; residuals are relative):",
        "",
        f"* build time ``= a·E + b·N``: a = {m['build_time']['coef'][0] * 1e9:.2f} ns per "
        f"input edge, b = {m['build_time']['coef'][1] * 1e9:.2f} ns per node (residuals "
        f"{_pct(m['build_time']['residuals'])});",
        f"* build peak ``= m0 + m1·N``: m0 = {gib(m['build_peak']['coef'][0])} GiB, "
        f"m1 = {m['build_peak']['coef'][1]:.1f} bytes per node (residuals "
        f"{_pct(m['build_peak']['residuals'])});",
        f"* per-value propagation time ``= α·E'·F·K + β·N·F·K`` (``E'`` symmetrised edges): α = "
        f"{m['propagate_time']['coef'][0] * 1e9:.3f} ns per edge, feature and hop, β = "
        f"{m['propagate_time']['coef'][1] * 1e9:.3f} ns per node, feature and hop "
        f"(residuals {_pct(m['propagate_time']['residuals'])});",
        "* per-block propagation time ``= α·E'·K·B + β·N·F·K`` (``B`` column blocks, each "
        f"re-reading the graph): α = {m['propagate_time_per_block']['coef'][0] * 1e9:.2f} ns "
        f"per edge, hop and block, β = {m['propagate_time_per_block']['coef'][1] * 1e9:.3f} ns "
        f"(residuals {_pct(m['propagate_time_per_block']['residuals'])}).",
        "",
        f"Extrapolated to ogbn-papers100M ({pp['nodes']:,} nodes, {pp['edges']:,} directed "
        f"edges → {pp['symmetrised_edges']:,} symmetrised, F={pp['features']}, K={pp['k']}, "
        f"{pp['rows']:,} rows kept, fp16 input), memory budget "
        f"{gib(pp['memory_budget'])} GiB (block width {pp['block_width']}, "
        f"{pp['blocks']} blocks):",
        "",
        ".. list-table::",
        "   :header-rows: 1",
        "",
        "   * - phase",
        "     - time",
        "     - peak anonymous memory",
        "   * - build (``build_csr``, symmetrize, drop duplicates)",
        f"     - {pp['build_seconds'] / 60:.0f} min",
        f"     - {gib(pp['build_peak_bytes'])} GiB (fit)",
        "   * - propagate (``aug_na``, K=3, selected rows)",
        f"     - {pp['propagate_seconds'] / 3600:.1f} h ({_model_note(pp)})",
        f"     - ≤ {gib(pp['propagate_memory_bound'])} GiB (formula)",
        "",
        f"Disk: edge list {gb(pp['disk_bytes']['edges_int64'])} GB (int64), graph "
        f"{gb(pp['disk_bytes']['graph'])} GB, features {gb(pp['disk_bytes']['x_fp16'])} GB "
        f"(fp16), kept hops {gb(pp['disk_bytes']['hops_fp16'])} GB (fp16). The anchors: "
        + "; ".join(f"{k}: {v}" for k, v in report["anchors"].items())
        + ".",
        "",
        "Targets:",
        "",
        *[
            f"* {t['target']}: {t['value_gib']:.2f} GiB (limit {t['limit_gib']:.2f} GiB) — "
            + ("met" if t["met"] else "**missed**")
            for t in report["targets"]
        ],
        "",
    ]
    return "\n".join(lines)


def _model_note(pp: dict) -> str:
    if "propagate_model" not in pp:  # a JSON of an earlier version of this script
        return f"{pp['propagate_seconds_per_block_model'] / 3600:.1f} h by the per-block model"
    other = "per_value" if pp["propagate_model"] == "per_block" else "per_block"
    name = {"per_block": "per-block", "per_value": "per-value"}
    return (
        f"{name[pp['propagate_model']]} model, the better fit; "
        f"{pp[f'propagate_seconds_{other}_model'] / 3600:.1f} h by the {name[other]} one"
    )


def _pct(values: list[float]) -> str:
    return ", ".join(f"{v * 100:+.0f}%" for v in values)


def print_table(report: dict) -> None:
    rows = [HEADER, *table_rows(report)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    for r in rows:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))


# ------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--sizes",
        default=DEFAULT_SIZES,
        help="comma-separated NODES:EDGES (directed input edges), e.g. 1M:10M",
    )
    p.add_argument("--features", type=int, default=128)
    p.add_argument("--k", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--memory-budget", type=parse_bytes, default=parse_bytes("6G"))
    p.add_argument("--chunk-edges", type=int, default=1 << 24)
    p.add_argument(
        "--via",
        choices=("cli", "api"),
        default="cli",
        help="propagate with `sgap precompute` (default) or hop_folder.precompute in-process",
    )
    p.add_argument("--work", default=str(ROOT / "benchmarks" / "out" / "scale"))
    p.add_argument("--keep", action="store_true", help="keep the generated files")
    p.add_argument("--out-json", default=str(ROOT / "docs" / "benchmarks" / "scale.json"))
    p.add_argument("--no-docs", action="store_true", help="do not write docs/benchmarks/*.inc")
    p.add_argument("--render", default=None, help="only rewrite the docs fragment from a JSON")
    p.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    p.add_argument("--data", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.phase:
        print(json.dumps(PHASES[args.phase](Path(args.data), args)))
        return 0
    inc = ROOT / "docs" / "benchmarks" / "scale.inc"
    if args.render:
        report = json.loads(Path(args.render).read_text())
        report["targets"] = targets(report)
        inc.write_text(render_inc(report))
        return 0

    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    sizes = []
    work = Path(args.work)
    for spec in args.sizes.split(","):
        nodes, edges = (parse_count(v) for v in spec.split(":"))
        data = work / f"n{nodes}_e{edges}"
        if data.exists():
            shutil.rmtree(data)
        print(f"== {nodes:,} nodes, {edges:,} edges: generating", flush=True)
        gen = generate(data, nodes, edges, args.features, args.seed)
        (data / "size.json").write_text(json.dumps({"nodes": nodes, "edges": edges}))
        width, blocks = column_blocks(nodes, args.features, args.memory_budget)
        size = {
            "nodes": nodes,
            "edges": edges,
            "rows": gen["rows"],
            "generate_seconds": gen["seconds"],
            "width": width,
            "blocks": blocks,
            "memory_bound": memory_bound(nodes, args.memory_budget),
        }
        print(f"   generated in {gen['seconds']:.0f} s; build", flush=True)
        size["build"] = run_phase("build", data, args)
        size["graph_edges"] = size["build"]["graph_edges"]
        print(
            f"   build {size['build']['seconds']:.0f} s, peak "
            f"{gib(size['build']['peak_anon_bytes'])} GiB; propagate",
            flush=True,
        )
        size["propagate"] = run_phase("propagate", data, args)
        if size["propagate"]["blocks"] != blocks:  # the rule above predicts papers100M's
            print(f"   note: {size['propagate']['blocks']} column blocks, predicted {blocks}")
            size["blocks"] = size["propagate"]["blocks"]
        print(
            f"   propagate {size['propagate']['seconds']:.0f} s, peak "
            f"{gib(size['propagate']['peak_anon_bytes'])} GiB "
            f"(bound {gib(size['memory_bound'])} GiB)",
            flush=True,
        )
        sizes.append(size)
        if not args.keep:
            shutil.rmtree(data)
        report = write_report(command, args, sizes, inc)  # after every size: partial results
    print_table(report)
    if "model" in report:
        pp = report["model"]["papers100m"]
        print(
            f"papers100M: build {pp['build_seconds'] / 60:.0f} min, peak "
            f"{gib(pp['build_peak_bytes'])} GiB; propagate "
            f"{pp['propagate_seconds'] / 3600:.1f} h within {gib(pp['propagate_memory_bound'])} GiB"
        )
    for t in report["targets"]:
        print(
            f"target: {t['target']}: {t['value_gib']:.2f} GiB -> {'met' if t['met'] else 'MISSED'}"
        )
    print(f"wrote {args.out_json}" + ("" if args.no_docs else f" and {inc}"))
    return 0


def write_report(command: str, args: argparse.Namespace, sizes: list[dict], inc: Path) -> dict:
    report = {
        "command": command,
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "memory_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
            "load_average": os.getloadavg(),
        },
        "features": args.features,
        "k": args.k,
        "memory_budget": args.memory_budget,
        "chunk_edges": args.chunk_edges,
        "anchors": ANCHORS,
        "sizes": sizes,
    }
    if len(sizes) >= 2:
        report["model"] = cost_model(sizes, args)
    report["targets"] = targets(report)
    out = Path(args.out_json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    if "model" in report and not args.no_docs:
        inc.write_text(render_inc(report))
    return report


if __name__ == "__main__":
    raise SystemExit(main())
