"""Propagation from disk: selected rows, memory-mapped features, the output folder and
``sgap precompute``.

``rows=`` must equal slicing the full in-memory result bit for bit (every hop is computed for
all nodes in fp32 column blocks, by the same kernels in the same summation order), for every
built-in aggregator and a plugin aggregator, with features in RAM or memory-mapped from a
``.npy`` and hops in RAM or streamed to a file.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import sgap_plugins
from sgap_plugins import ops
from sgap_plugins.cli import main
from sgap_plugins.core.graph import CSRGraph
from sgap_plugins.core.graph_aggregators import GraphAggregator
from sgap_plugins.core.hop_folder import load_hops, precompute, read_manifest
from sgap_plugins.core.memory import PeakAnonMemory
from sgap_plugins.core.propagation import ColumnBlocks, propagate

pytestmark = pytest.mark.skipif(
    not ops.available(torch.device("cpu")),
    reason=f"fused kernels unavailable: {ops.info()['reason']}",
)


class HalfStep(GraphAggregator):
    """A plugin-style aggregator: row-normalised weights and a custom combine that reads the
    hop-0 message (the per-hop kernel path with a Python ``combine``)."""

    name = "test_outofcore_half_step"

    def transition(self, graph: CSRGraph) -> CSRGraph:
        g = graph.add_self_loops()
        w = torch.ones(g.num_edges) if g.weight is None else g.weight
        return g.with_weights(w / g.in_degree()[g.row_index()])

    def combine(self, wm, m0, t):
        return 0.5 * wm + 0.5 * m0 / t


AGGREGATORS = [
    ("aug_na", {}),
    ("aug_na", {"r": 0.0, "add_self_loops": False}),
    ("ppr", {"alpha": 0.2}),
    ("triangle", {}),
    (HalfStep(), {}),
]
AGG_IDS = ["aug_na", "aug_na_r0_noloops", "ppr", "triangle", "plugin"]


def random_problem(n: int = 300, f: int = 45, e: int = 2400, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    edge_index = torch.randint(0, n, (2, e), generator=gen)
    x = torch.randn(n, f, generator=gen)
    rows = torch.randperm(n, generator=gen)[: n // 5]  # unsorted, as a labelled subset is
    return edge_index, x, rows


@pytest.mark.parametrize("name,params", AGGREGATORS, ids=AGG_IDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_rows_equal_slicing_the_full_result(tmp_path, name, params, dtype):
    edge_index, x, rows = random_problem()
    n, k = x.size(0), 3
    full = propagate(edge_index, x.to(dtype), k, name, **params)
    expected = full[:, rows]
    np.save(tmp_path / "x.npy", x.to(dtype).numpy())
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    budget = n * 12 * 7  # 7 columns of three fp32 buffers: several blocks, a ragged last one
    in_memory = propagate(
        edge_index, x.to(dtype), k, name, rows=rows, memory_budget=budget, **params
    )
    from_disk = propagate(
        edge_index,
        mapped,
        k,
        name,
        rows=rows,
        memory_budget=budget,
        out=tmp_path / "h.npy",
        **params,
    )
    assert in_memory.shape == (k + 1, rows.numel(), x.size(1)) and in_memory.dtype == dtype
    assert torch.equal(in_memory, expected)
    assert torch.equal(from_disk, expected)
    assert torch.equal(torch.from_numpy(np.load(tmp_path / "h.npy")), expected)
    # All rows from a memory-mapped x, in RAM: the full result itself.
    assert torch.equal(propagate(edge_index, mapped, k, name, memory_budget=budget, **params), full)


@pytest.mark.parametrize("reorder", ["degree", "rcm"])
def test_rows_with_reordering(reorder):
    edge_index, x, rows = random_problem(seed=1)
    full = propagate(edge_index, x, 2, "ppr", reorder=reorder, alpha=0.1)
    picked = propagate(edge_index, x, 2, "ppr", rows=rows, reorder=reorder, alpha=0.1)
    assert torch.equal(picked, full[:, rows])


def test_rows_dtype_and_budget_choose_the_blocks():
    edge_index, x, rows = random_problem()
    n = x.size(0)
    # aug_na needs two fp32 buffers per column, ppr three (the teleport reads x's block).
    aug = ColumnBlocks.prepare(edge_index, x, 3, "aug_na", rows=rows, memory_budget=n * 8 * 20)
    ppr = ColumnBlocks.prepare(edge_index, x, 3, "ppr", rows=rows, memory_budget=n * 8 * 20)
    assert (aug.num_buffers, aug.width) == (2, 16)  # 20 columns, rounded to whole lines
    assert (ppr.num_buffers, ppr.width) == (3, 13)
    assert aug.spans == [(0, 16), (16, 32), (32, 45)]
    assert aug.working_bytes <= n * 8 * 20
    assert aug.shape == (4, rows.numel(), 45)


def test_empty_rows_and_all_rows():
    edge_index, x, _ = random_problem()
    empty = propagate(edge_index, x, 2, rows=torch.empty(0, dtype=torch.long))
    assert empty.shape == (3, 0, x.size(1))
    every = propagate(edge_index, x, 2, rows=np.arange(x.size(0)))
    assert torch.equal(every, propagate(edge_index, x, 2))


@pytest.mark.parametrize(
    "rows, exc, match",
    [
        (torch.tensor([0, 5, 300]), ValueError, r"rows contains node id 300 .*\[0, 300\)"),
        (torch.tensor([-1, 5]), ValueError, "rows contains node id -1"),
        (
            torch.tensor([3, 7, 3, 9, 7]),
            ValueError,
            r"rows repeats 2 node id\(s\) \(e.g. \[3, 7\]\)",
        ),
        (torch.tensor([[1, 2]]), ValueError, "rows must be 1-D"),
        (torch.tensor([1.0, 2.0]), TypeError, "rows must hold integer node ids"),
        (torch.ones(300, dtype=torch.bool), TypeError, r"boolean mask; pass mask.nonzero"),
        ("0,1", TypeError, "rows must be a 1-D integer tensor or numpy array"),
    ],
)
def test_bad_rows_name_the_argument_and_the_fix(rows, exc, match):
    edge_index, x, _ = random_problem()
    with pytest.raises(exc, match=match):
        propagate(edge_index, x, 2, rows=rows)


def test_nonfinite_features_are_found_block_by_block(tmp_path):
    edge_index, x, rows = random_problem()
    x[17, 40] = float("nan")
    x[201, 41] = float("inf")
    np.save(tmp_path / "x.npy", x.numpy())
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    budget = x.size(0) * 8 * 16  # blocks of 16 columns: the bad ones are in the third
    with pytest.raises(
        ValueError,
        match=r"2 row\(s\) of columns 32..44 \(rows \[17, 201\], "
        r"columns \[40, 41\]\); impute or drop",
    ):
        propagate(edge_index, mapped, 2, rows=rows, memory_budget=budget)


def test_bad_feature_arrays_and_budget(tmp_path):
    edge_index, x, rows = random_problem()
    with pytest.raises(TypeError, match=r"float16, float32 or float64 array.*astype"):
        propagate(edge_index, x.numpy().astype(np.int32), 2, rows=rows)
    with pytest.raises(ValueError, match="x has 299 rows but the graph has num_nodes=300"):
        propagate(edge_index, x.numpy()[:-1], 2, num_nodes=300)
    with pytest.raises(TypeError, match="torch.Tensor or a numpy array"):
        propagate(edge_index, x.tolist(), 2, rows=rows)
    with pytest.raises(ValueError, match=r"below one column block.*at least 2400 bytes"):
        propagate(edge_index, x, 2, rows=rows, memory_budget=2399)  # 2 fp32 buffers x 300
    with pytest.raises(ValueError, match="bfloat16"):
        propagate(edge_index, x, 2, dtype=torch.bfloat16, out=tmp_path / "h.npy")
    with pytest.raises(ValueError, match="pass out=PATH or rows=idx"):
        propagate(edge_index, x, 2, memory_budget=2**20)


# ---------------------------------------------------------------------------- hop folder
def test_precompute_writes_a_folder_that_load_hops_maps(tmp_path):
    edge_index, x, rows = random_problem()
    np.save(tmp_path / "x.npy", x.numpy())
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    out = tmp_path / "hops"
    manifest = precompute(
        edge_index,
        mapped,
        3,
        "ppr",
        out=out,
        rows=rows,
        dtype=torch.float16,
        memory_budget=300 * 12 * 16,
        progress=False,
        alpha=0.2,
    )
    assert sorted(p.name for p in out.iterdir()) == ["hops.npy", "manifest.json", "rows.npy"]
    assert manifest == json.loads((out / "manifest.json").read_text())
    assert manifest["shape"] == [4, rows.numel(), 45] and manifest["dtype"] == "float16"
    assert manifest["aggregator"] == "ppr" and manifest["params"]["alpha"] == 0.2
    assert manifest["num_blocks"] == 3 and manifest["resumed_blocks"] == 0
    assert manifest["features"]["path"] == str((tmp_path / "x.npy").resolve())
    hops, ids = load_hops(out, with_rows=True)
    expected = propagate(edge_index, x, 3, "ppr", alpha=0.2, dtype=torch.float16)[:, rows]
    assert torch.equal(hops, expected) and torch.equal(ids, rows)
    assert read_manifest(out) == manifest
    # Copy-on-write: writing to the mapped tensor leaves the file alone.
    hops[0].zero_()
    assert torch.equal(load_hops(out), expected)
    # Same arguments again: the finished folder is returned as is.
    before = (out / "hops.npy").stat().st_mtime_ns
    again = precompute(
        edge_index,
        mapped,
        3,
        "ppr",
        out=out,
        rows=rows,
        dtype=torch.float16,
        memory_budget=300 * 12 * 16,
        progress=False,
        alpha=0.2,
    )
    assert again == manifest and (out / "hops.npy").stat().st_mtime_ns == before


def test_all_rows_by_default(tmp_path):
    edge_index, x, _ = random_problem()
    precompute(edge_index, x, 2, "triangle", out=tmp_path, progress=False)
    hops, ids = sgap_plugins.load_hops(tmp_path, with_rows=True)  # the top-level export
    assert torch.equal(hops, propagate(edge_index, x, 2, "triangle"))
    assert torch.equal(ids, torch.arange(x.size(0)))


def test_different_arguments_are_refused_unless_overwrite(tmp_path):
    edge_index, x, rows = random_problem()
    precompute(edge_index, x, 2, out=tmp_path, rows=rows, progress=False)
    with pytest.raises(
        FileExistsError,
        match=r"finished precompute with different arguments "
        r"\(.*k: 2 → 3.*\); choose another output folder or pass overwrite",
    ):
        precompute(edge_index, x, 3, out=tmp_path, rows=rows, progress=False)
    x2 = x.clone()
    x2[0, 0] += 1  # same shapes, other features: told apart by their content hash
    with pytest.raises(FileExistsError, match="features"):
        precompute(edge_index, x2, 2, out=tmp_path, rows=rows, progress=False)
    precompute(edge_index, x, 3, out=tmp_path, rows=rows, progress=False, overwrite=True)
    assert torch.equal(load_hops(tmp_path), propagate(edge_index, x, 3)[:, rows])


class Interrupt(Exception):
    pass


def test_an_interrupted_precompute_resumes_byte_identically(tmp_path, monkeypatch):
    """In process: the second column block raises; the folder has no manifest (load_hops
    refuses it, naming the fix); a rerun resumes after the recorded block."""
    edge_index, x, rows = random_problem()
    kwargs = dict(rows=rows, memory_budget=300 * 8 * 16, progress=False, dtype=torch.float16)
    precompute(edge_index, x, 3, out=tmp_path / "whole", **kwargs)
    calls = []
    real_run = ColumnBlocks.run

    def failing_run(self, c0, c1, out, on_hop=None, **kwargs):
        calls.append(c0)
        if len(calls) == 2:
            real_run(self, c0, c1, out, None, **kwargs)  # its data is written, not journalled
            raise Interrupt
        real_run(self, c0, c1, out, on_hop, **kwargs)

    monkeypatch.setattr(ColumnBlocks, "run", failing_run)
    with pytest.raises(Interrupt):
        precompute(edge_index, x, 3, out=tmp_path / "cut", **kwargs)
    assert not (tmp_path / "cut" / "manifest.json").exists()
    assert json.loads((tmp_path / "cut" / "progress.json").read_text())["done"] == [0]
    with pytest.raises(FileNotFoundError, match="interrupted; rerun it with the same arguments"):
        load_hops(tmp_path / "cut")
    with pytest.raises(FileExistsError, match="unfinished precompute with different arguments"):
        precompute(edge_index, x, 2, out=tmp_path / "cut", **kwargs)
    monkeypatch.setattr(ColumnBlocks, "run", real_run)
    manifest = precompute(edge_index, x, 3, out=tmp_path / "cut", **kwargs)
    assert manifest["resumed_blocks"] == 1 and manifest["num_blocks"] == 3
    assert not (tmp_path / "cut" / "progress.json").exists()
    whole = (tmp_path / "whole" / "hops.npy").read_bytes()
    assert (tmp_path / "cut" / "hops.npy").read_bytes() == whole


def test_load_hops_refuses_a_folder_without_manifest(tmp_path):
    with pytest.raises(
        FileNotFoundError,
        match=r"not a finished hop folder \(no manifest.json\)"
        r".*sgap precompute",
    ):
        load_hops(tmp_path)


# ------------------------------------------------------------------ sgap precompute, for real
MIB = 2**20


def banded_graph_files(folder: Path, n: int, d: int, f: int) -> dict[str, Path]:
    """Edge file (int64 [2, n*d]: node v reads from v+1 … v+d mod n, a regular graph whose
    gathers stay in cache, so the test is quick), fp32 features [n, f] and every tenth node
    as rows, written in chunks."""
    paths = {"edges": folder / "edges.npy", "x": folder / "x.npy", "rows": folder / "rows.npy"}
    edges = np.lib.format.open_memmap(paths["edges"], "w+", np.int64, (2, n * d))
    x = np.lib.format.open_memmap(paths["x"], "w+", np.float32, (n, f))
    offsets = np.arange(1, d + 1)
    for v0 in range(0, n, 1 << 16):
        v = np.arange(v0, min(n, v0 + (1 << 16)))
        edges[0, v0 * d : v[-1] * d + d] = ((v[:, None] + offsets) % n).ravel()
        edges[1, v0 * d : v[-1] * d + d] = np.repeat(v, d)
        x[v0 : v[-1] + 1] = np.sin(v[:, None] * 0.37 + np.arange(f) * 0.11)
    edges.flush()
    x.flush()
    del edges, x
    np.save(paths["rows"], np.arange(0, n, 10)[::-1].copy())
    return paths


def cli_argv(paths: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return [
        "precompute",
        "--edges",
        str(paths["edges"]),
        "--features",
        str(paths["x"]),
        "--rows",
        str(paths["rows"]),
        "--out",
        str(out),
        "--no-progress",
        *extra,
    ]


def test_kill_9_then_rerun_gives_a_byte_identical_hops_npy(tmp_path):
    n = 200_000
    paths = banded_graph_files(tmp_path, n=n, d=10, f=64)
    extra = ("-k", "4", "--aggregator", "ppr", "--dtype", "float16")
    extra += ("--memory-budget", str(n * 12 * 4))  # blocks of 4 columns: 16 blocks
    assert main(cli_argv(paths, tmp_path / "whole", *extra)) == 0
    cut = tmp_path / "cut"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sgap_plugins.cli", *cli_argv(paths, cut, *extra)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    journal = cut / "progress.json"
    done: list[int] = []
    deadline = time.monotonic() + 240
    while not done and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.001)
        with contextlib.suppress(OSError, ValueError, KeyError):
            done = json.loads(journal.read_text())["done"]
    os.kill(proc.pid, signal.SIGKILL)  # mid-run: the first block is recorded
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read() if proc.stderr else ""
    assert not (cut / "manifest.json").exists()
    recorded = json.loads(journal.read_text())["done"]
    assert 1 <= len(recorded) < 16, recorded
    assert main(cli_argv(paths, cut, *extra)) == 0
    manifest = json.loads((cut / "manifest.json").read_text())
    assert manifest["num_blocks"] == 16 and manifest["resumed_blocks"] == len(recorded)
    assert (cut / "hops.npy").read_bytes() == (tmp_path / "whole" / "hops.npy").read_bytes()
    assert (cut / "rows.npy").read_bytes() == (tmp_path / "whole" / "rows.npy").read_bytes()


def test_peak_memory_stays_within_budget_plus_16_bytes_per_node_plus_512_mib(tmp_path):
    """The documented bound, on RssAnon + RssShmem of the whole ``sgap precompute`` process
    (graph build included), sampled from /proc. The graph is large enough to break it with
    an int64 copy of the edge list (16 B/edge) or a copy of X, on top of the ~200 MiB that
    the interpreter, torch and the kernels take."""
    n, d, f = 1_000_000, 32, 128
    budget = 128 * MIB
    bound = budget + 16 * n + 512 * MIB
    assert 16 * n * d + 200 * MIB > bound and 4 * n * f + 200 * MIB > bound
    paths = banded_graph_files(tmp_path, n=n, d=d, f=f)
    out = tmp_path / "out"
    argv = cli_argv(paths, out, "-k", "2", "--memory-budget", "128M")
    proc = subprocess.Popen(
        [sys.executable, "-m", "sgap_plugins.cli", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    with PeakAnonMemory(pid=proc.pid, interval=0.001) as memory:
        _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert memory.peak <= bound, f"peak {memory.peak / MIB:.0f} MiB > {bound / MIB:.0f} MiB"
    hops, ids = load_hops(out, with_rows=True)
    assert hops.shape == (3, n // 10, f) and torch.equal(ids, torch.arange(0, n, 10).flip(0))
    # Spot check against the definition: hop 1 of node v is the mean of x over v..v+d
    # (aug_na, r=0.5, every node has in-degree d plus its self loop).
    x = np.load(paths["x"], mmap_mode="r")
    v = int(ids[7])
    window = np.asarray(x[(v + np.arange(d + 1)) % n], dtype=np.float64)
    np.testing.assert_allclose(hops[1, 7].double().numpy(), window.mean(0), rtol=1e-5, atol=1e-6)
