"""Propagation from disk: selected rows, memory-mapped features, the output folder and
``sgap precompute``.

``rows=`` must equal slicing the full in-memory result bit for bit (every hop is computed for
all nodes in fp32 column blocks, by the same kernels in the same summation order), for every
built-in aggregator and a plugin aggregator, with features in RAM or memory-mapped from a
``.npy`` and hops in RAM or streamed to a file.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sgap_plugins import ops
from sgap_plugins.core.graph import CSRGraph
from sgap_plugins.core.graph_aggregators import GraphAggregator
from sgap_plugins.core.hop_folder import load_hops, precompute, read_manifest
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
    hops, ids = load_hops(tmp_path, with_rows=True)
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

    def failing_run(self, c0, c1, out, on_hop=None):
        calls.append(c0)
        if len(calls) == 2:
            real_run(self, c0, c1, out, on_hop=None)  # its data is written, but not journalled
            raise Interrupt
        real_run(self, c0, c1, out, on_hop)

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
