"""GPU check of the fused kernels: CUDA results against the CPU kernels and the plain-torch
reference, then timings of sgap vs PyG ``T.SIGN`` and ``torch.sparse`` CSR on the GPU.

One script, meant to finish in well under 5 minutes on one H200 (the first run also JIT-builds
the CUDA extension, about a minute with nvcc):

    CUDA_HOME=/usr/local/cuda TORCH_CUDA_ARCH_LIST=9.0 python benchmarks/gpu_check.py

Exit status 0 when every correctness check passes (timings are reported, not judged), 1 when
a check fails, 2 when no GPU or no CUDA kernels are available. ``--json PATH`` also writes the
results as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "9.0")  # H200 (sm_90) when nothing is set

import torch  # noqa: E402

from sgap_plugins import CSRGraph, GraphAggregator, ops, propagate  # noqa: E402
from sgap_plugins.core.plugins import resolve_graph_aggregator  # noqa: E402
from sgap_plugins.core.propagation import propagate_reference  # noqa: E402
from sgap_plugins.core.synthetic import power_law_graph  # noqa: E402

TOL = {torch.float32: 1e-5, torch.bfloat16: 2**-7, torch.float16: 2**-10}
CASES = [
    ("aug_na", {"r": 0.5}),
    ("aug_na", {"r": 0.0}),
    ("aug_na", {"r": 1.0, "add_self_loops": False}),
    ("ppr", {"alpha": 0.1}),
    ("triangle", {}),
]


class HalfStep(GraphAggregator):
    """Plugin-style aggregator with a custom combine (the per-hop kernel path)."""

    name = "gpu_check_half_step"

    def transition(self, graph: CSRGraph) -> CSRGraph:
        g = graph.add_self_loops()
        w = torch.ones(g.num_edges) if g.weight is None else g.weight
        return g.with_weights(w / g.in_degree()[g.row_index()])

    def combine(self, wm, m0, t):
        return 0.5 * wm + 0.5 * m0 / t


def symmetric_power_law(n: int, avg_degree: float, seed: int) -> torch.Tensor:
    """``power_law_graph`` made symmetric, deduplicated and loop-free (as precompute.py)."""
    src, dst = power_law_graph(n, avg_degree, seed=seed).numpy()
    keep = src != dst
    src, dst = src[keep], dst[keep]
    keys = np.unique(np.concatenate([dst * n + src, src * n + dst]))
    return torch.from_numpy(np.stack([keys % n, keys // n]))


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.float().cpu(), b.float().cpu()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def correctness(failures: list[str]) -> list[dict]:
    """CUDA vs CPU kernels vs reference on random graphs with loops, duplicates, isolated
    nodes, weights, >128 feature columns and both reorderings."""
    rows = []
    gen = torch.Generator().manual_seed(0)
    n = 20_000
    ei = torch.randint(0, n - 100, (2, 200_000), generator=gen)  # the last 100 nodes isolated
    ei = torch.cat([ei, torch.arange(500).repeat(2, 1), ei[:, :1000]], 1)  # loops, duplicates
    weight = torch.rand(ei.size(1), generator=gen) + 0.05
    x = torch.randn(n, 300, generator=gen)
    xc, eic = x.cuda(), ei.cuda()
    for weighted in (False, True):
        w = weight if weighted else None
        for name, params in CASES + [("half_step", None)]:
            agg = HalfStep() if params is None else resolve_graph_aggregator(name, **params)
            csr = CSRGraph.from_edge_index(ei, n, w)
            ref = propagate_reference(agg.transition(csr), agg, x, 3)
            for dtype in TOL:
                for reorder in (None, "degree", "rcm") if dtype == torch.float32 else (None,):
                    t0 = time.perf_counter()
                    gpu = propagate(eic, xc, 3, agg, edge_weight=w, dtype=dtype, reorder=reorder)
                    torch.cuda.synchronize()
                    seconds = time.perf_counter() - t0
                    cpu = propagate(ei, x, 3, agg, edge_weight=w, dtype=dtype, reorder=reorder)
                    err_cpu, err_ref = rel_err(gpu, cpu), rel_err(gpu, ref)
                    ok = err_cpu <= TOL[dtype] and err_ref <= 2 * TOL[dtype]
                    row = {
                        "aggregator": name,
                        "params": params,
                        "weighted": weighted,
                        "dtype": str(dtype).replace("torch.", ""),
                        "reorder": reorder,
                        "rel_err_vs_cpu": err_cpu,
                        "rel_err_vs_reference": err_ref,
                        "ok": ok,
                        "seconds": seconds,
                    }
                    rows.append(row)
                    if not ok:
                        failures.append(f"correctness: {row}")
    return rows


def best_of(fn, repeats: int) -> float:
    fn()  # warm-up (allocator, cuSPARSE handles, kernel caches)
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


def timings(args: argparse.Namespace, failures: list[str]) -> dict:
    t0 = time.perf_counter()
    ei = symmetric_power_law(args.nodes, args.avg_degree, args.seed)
    n, k = args.nodes, args.k
    x = torch.randn(n, args.features, generator=torch.Generator().manual_seed(args.seed))
    graph_s = time.perf_counter() - t0
    eic, xc = ei.cuda(), x.cuda()
    csr = CSRGraph.from_edge_index(ei, n)
    out = {"nodes": n, "edges": int(ei.size(1)), "features": args.features, "k": k}
    out["graph_seconds"] = graph_s
    out["sgap_kernel"] = best_of(lambda: propagate(csr, xc, k), args.repeats)
    out["sgap_kernel_bf16"] = best_of(
        lambda: propagate(csr, xc, k, dtype=torch.bfloat16), args.repeats
    )
    out["sgap_end_to_end"] = best_of(lambda: propagate(eic, xc, k), 1)

    # GPU vs CPU kernels on the large graph (sampled rows).
    rows = torch.randperm(n, generator=torch.Generator().manual_seed(1))[:5000]
    gpu = propagate(csr, xc, k)[:, rows.cuda()].cpu()
    cpu = propagate(csr, x, k)[:, rows]
    out["large_graph_rel_err_vs_cpu"] = rel_err(gpu, cpu)
    if out["large_graph_rel_err_vs_cpu"] > TOL[torch.float32]:
        failures.append(f"large graph: CUDA vs CPU rel err {out['large_graph_rel_err_vs_cpu']}")

    # torch.sparse CSR (cuSPARSE), the same Â built on the GPU.
    def torch_sparse():
        loops = torch.arange(n, device="cuda")
        r, c = torch.cat([eic[1], loops]), torch.cat([eic[0], loops])
        d = torch.bincount(r, minlength=n).float().pow(-0.5)
        adj = torch.sparse_coo_tensor(torch.stack([r, c]), d[r] * d[c], (n, n)).coalesce()
        adj = adj.to_sparse_csr()
        feats = [xc]
        for _ in range(k):
            feats.append(adj @ feats[-1])
        return feats

    out["torch_sparse"] = best_of(torch_sparse, args.repeats)
    ts = torch_sparse()[-1][rows.cuda()].cpu()
    out["torch_sparse_rel_err"] = rel_err(gpu[-1], ts)

    try:
        import torch_geometric.transforms as T
        from torch_geometric.data import Data
    except ImportError as exc:
        out["pyg_sign"] = f"skipped: {exc}"
    else:

        def pyg():
            data = T.AddSelfLoops()(Data(x=xc, edge_index=eic))
            return T.SIGN(k)(data)

        out["pyg_sign"] = best_of(pyg, args.repeats)
        out["pyg_sign_rel_err"] = rel_err(gpu[-1], pyg()[f"x{k}"][rows.cuda()].cpu())
    for key in ("torch_sparse", "pyg_sign"):
        if isinstance(out.get(key), float):
            out[f"speedup_vs_{key}"] = out[key] / out["sgap_kernel"]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, default=1_000_000)
    p.add_argument("--avg-degree", type=float, default=10.5)
    p.add_argument("--features", type=int, default=128)
    p.add_argument("--k", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args(argv)

    t_start = time.perf_counter()
    if not torch.cuda.is_available():
        print("gpu_check: no GPU visible to torch", file=sys.stderr)
        return 2
    info = ops.info()
    print("ops.info():", json.dumps(info))
    if not info["cuda_compiled"]:
        print(f"gpu_check: CUDA kernels unavailable: {info['reason']}", file=sys.stderr)
        return 2
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")

    failures: list[str] = []
    checks = correctness(failures)
    bad = [c for c in checks if not c["ok"]]
    worst = max(checks, key=lambda c: c["rel_err_vs_cpu"] / TOL[getattr(torch, c["dtype"])])
    print(f"correctness: {len(checks) - len(bad)}/{len(checks)} cases pass; worst vs CPU: {worst}")
    timing = timings(args, failures)
    print(
        f"timing ({timing['nodes']:,} nodes, {timing['edges']:,} edges, F={timing['features']}, "
        f"K={timing['k']}; best of {args.repeats}):"
    )
    for key, value in timing.items():
        print(f"  {key:>28}: {value:.4g}" if isinstance(value, float) else f"  {key:>28}: {value}")
    result = {
        "info": info,
        "device": torch.cuda.get_device_name(),
        "checks": checks,
        "timing": timing,
        "failures": failures,
        "seconds": time.perf_counter() - t_start,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str) + "\n")
    for f in failures:
        print("FAIL", f, file=sys.stderr)
    print(f"gpu_check: {'FAILED' if failures else 'ok'} in {result['seconds']:.0f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
