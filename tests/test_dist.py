"""Column-sharded propagation under torchrun (``python -m sgap_plugins.dist propagate``).

Each launch is a real ``torchrun --nproc_per_node=2`` job on loopback (gloo); its folder
must load (``load_hops``) to exactly the tensor of a one-process ``sgap precompute`` of the
same inputs, bit for bit, for ``aug_na``, ``ppr``, ``triangle`` and a plugin aggregator,
with and without ``--rows``, F odd, in both layouts, with the ranks' blocks narrower than
the one-process run's. A launch costs a few seconds of start-up (torchrun, imports,
rendezvous), so the cases are spread over few launches.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from sgap_plugins import load_hops, ops
from sgap_plugins.cli import main as sgap_main
from sgap_plugins.core.hop_folder import precompute
from sgap_plugins.dist import split_columns

pytestmark = pytest.mark.skipif(
    not ops.available(torch.device("cpu")),
    reason=f"fused kernels unavailable: {ops.info()['reason']}",
)

N, F, E = 300, 7, 2400
TIMEOUT = 180  # seconds for one torchrun launch (a few seconds normally)

# A plugin aggregator registered through the entry-point group, as a third-party one is:
# row-normalised weights and a Python combine reading m^0 (the per-hop path). With
# DIST_TEST_FAIL=<rank> that rank raises in its second column block, after the first one is
# journalled (the self-check's 5-node graphs never fail).
PLUGIN = textwrap.dedent(
    """
    import os

    import torch

    from sgap_plugins import hookimpl
    from sgap_plugins.core.graph import CSRGraph
    from sgap_plugins.core.graph_aggregators import GraphAggregator


    class DistHalfStep(GraphAggregator):
        name = "dist_half_step"
        first_hops = 0

        def transition(self, graph: CSRGraph) -> CSRGraph:
            g = graph.add_self_loops()
            w = torch.ones(g.num_edges) if g.weight is None else g.weight
            return g.with_weights(w / g.in_degree()[g.row_index()])

        def combine(self, wm, m0, t):
            failing = os.environ.get("DIST_TEST_FAIL")
            if failing == os.environ.get("RANK") and wm.size(0) > 5 and t == 1:
                type(self).first_hops += 1
                if type(self).first_hops == 2:
                    raise RuntimeError(f"dist_half_step fails on rank {failing} on purpose")
            return 0.5 * wm + 0.5 * m0 / t


    @hookimpl
    def sgap_graph_aggregators():
        return [DistHalfStep]
    """
)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Edges, F=7 features (and a one-column copy), an unsorted row subset, and a
    PYTHONPATH overlay that installs the plugin (its module plus a dist-info declaring its
    entry point)."""
    root = tmp_path_factory.mktemp("dist")
    gen = torch.Generator().manual_seed(0)
    paths = {name: root / f"{name}.npy" for name in ("edges", "x", "x1", "rows")}
    np.save(paths["edges"], torch.randint(0, N, (2, E), generator=gen).numpy())
    x = torch.randn(N, F, generator=gen).numpy()
    np.save(paths["x"], x)
    np.save(paths["x1"], np.ascontiguousarray(x[:, :1]))
    np.save(paths["rows"], torch.randperm(N, generator=gen)[: N // 5].numpy())
    site = root / "site"
    (site / "dist_test_plugin.py").parent.mkdir(parents=True)
    (site / "dist_test_plugin.py").write_text(PLUGIN)
    info = site / "dist_test_plugin-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: dist-test-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[sgap_plugins]\ndist_test = dist_test_plugin\n")
    paths["site"] = site
    return paths


def _env(files: dict[str, Path], **extra: str) -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(files["site"]), os.environ.get("PYTHONPATH")]))
    env = {k: v for k, v in os.environ.items() if k != "DIST_TEST_FAIL"}
    return {**env, "PYTHONPATH": path, **extra}


def run_bounded(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    """``subprocess.run`` that, on timeout, kills the whole process group: torchrun's ranks
    are its children, and killing torchrun alone would leave them waiting at a barrier."""
    proc = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        pytest.fail(f"{command[2:5]} ran past {TIMEOUT} s; killed.\n{stderr[-3000:]}")
    return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def torchrun(
    files: dict[str, Path], out: Path, *args: str, nproc: int = 2, **env: str
) -> subprocess.CompletedProcess:
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc_per_node={nproc}",
        "--master_addr=127.0.0.1",
        f"--master_port={_free_port()}",
        "-m",
        "sgap_plugins.dist",
        "propagate",
        "--edges",
        str(files["edges"]),
        "--out",
        str(out),
        "--no-progress",
        "--json",
        f"--timeout={TIMEOUT}",  # a rank left alone never waits longer than the test
        *args,
    ]
    return run_bounded(command, _env(files, **env))


def reference(files: dict[str, Path], out: Path, *args: str) -> torch.Tensor:
    """The one-process ``sgap precompute`` of the same options (default memory budget: one
    block of all columns); in a subprocess that sees the plugin when it is used."""
    argv = ["precompute", "--edges", str(files["edges"]), "--out", str(out), "--no-progress"]
    if "dist_half_step" in args:
        proc = subprocess.run(
            [sys.executable, "-m", "sgap_plugins.cli", *argv, *args],
            env=_env(files),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        assert proc.returncode == 0, proc.stderr
    else:
        assert sgap_main([*argv, *args]) == 0
    hops = load_hops(out)
    assert isinstance(hops, torch.Tensor)
    return hops


# (aggregator options, --rows?, layout, features, ranks' --memory-budget in fp32 columns)
CASES = [
    (["--aggregator", "aug_na"], False, "auto", "x", 2),  # one machine: shared
    (["--aggregator", "ppr", "--param", "alpha=0.2"], True, "shards", "x", 2),
    (["--aggregator", "triangle", "-k", "2"], True, "shared", "x", 2),
    (["--aggregator", "dist_half_step"], False, "shards", "x1", 1),  # rank 1: no columns
]
IDS = ["aug_na-auto", "ppr-rows-shards", "triangle-rows-shared", "plugin-F1-shards"]


@pytest.mark.parametrize("agg,with_rows,layout,features,columns", CASES, ids=IDS)
def test_two_ranks_equal_one_process_bit_for_bit(
    files, tmp_path, agg, with_rows, layout, features, columns
):
    common = [*agg, "--features", str(files[features])]
    if with_rows:
        common += ["--rows", str(files["rows"])]
    budget = N * 3 * 4 * columns  # three fp32 buffers (two for aug_na/triangle) per column
    proc = torchrun(
        files, tmp_path / "two", *common, "--layout", layout, "--memory-budget", str(budget)
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = json.loads(proc.stdout.strip().splitlines()[-1])
    f = int(np.load(files[features], mmap_mode="r").shape[1])
    layout = "shared" if layout == "auto" else layout
    assert manifest["layout"] == layout and manifest["world_size"] == 2
    assert manifest["columns"] == [list(span) for span in split_columns(f, 2)]
    assert manifest["num_blocks"] > 2 or f == 1  # narrower blocks than one process's one
    hops = load_hops(tmp_path / "two")
    expected = reference(files, tmp_path / "one", *common)
    assert hops.shape == expected.shape and hops.dtype == expected.dtype
    assert torch.equal(hops, expected)
    files_there = sorted(p.name for p in (tmp_path / "two").iterdir())
    data = ["hops.npy"] if layout == "shared" else ["hops.rank0.npy", "hops.rank1.npy"]
    assert files_there == sorted(["graph", "manifest.json", "rows.npy", *data])
    rows, ids = load_hops(tmp_path / "two", with_rows=True)
    assert torch.equal(ids, load_hops(tmp_path / "one", with_rows=True)[1])

    if layout == "shards" and with_rows:
        # The same command again: the folder is finished, nothing is recomputed.
        again = torchrun(
            files, tmp_path / "two", *common, "--layout", layout, "--memory-budget", str(budget)
        )
        assert again.returncode == 0, again.stderr[-3000:]
        assert json.loads(again.stdout.strip().splitlines()[-1]) == manifest
        # A missing shard is named, not a crash.
        damaged = tmp_path / "damaged"
        shutil.copytree(tmp_path / "two", damaged)
        (damaged / "hops.rank1.npy").unlink()
        with pytest.raises(FileNotFoundError, match=r"hops.rank1.npy is missing.*shards"):
            load_hops(damaged)


def test_a_failing_rank_fails_the_job_and_a_rerun_resumes(files, tmp_path, capsys):
    """Rank 1 raises in its second column block: the job exits non-zero with that error, no
    manifest is written and load_hops refuses the folder naming the torchrun command; the
    same command with another number of ranks is refused; rerun as it was, it resumes rank
    1's journalled block and equals one process bit for bit."""
    out = tmp_path / "cut"
    args = ["--features", str(files["x"]), "--aggregator", "dist_half_step"]
    args += ["--memory-budget", str(N * 3 * 4 * 2), "--layout", "shared"]
    failed = torchrun(files, out, *args, DIST_TEST_FAIL="1")
    assert failed.returncode != 0
    assert "dist_half_step fails on rank 1 on purpose" in failed.stderr
    # torchrun's summary names rank 1 as the root cause (rank 0 waited to be stopped)
    cause = failed.stderr[failed.stderr.index("Root Cause") :]
    assert re.search(r"rank\s*: 1 ", cause) and "on purpose" in cause, cause
    assert not (out / "manifest.json").exists()
    with pytest.raises(FileNotFoundError, match=r"no manifest.json\).*torchrun .*same number"):
        load_hops(out)
    assert json.loads((out / "progress.rank1.json").read_text())["done"] == [4]

    other = torchrun(files, out, *args, nproc=1)
    assert other.returncode != 0
    assert "unfinished precompute of another kind (progress.rank1.json" in other.stderr
    assert "with more ranks" in other.stderr and "--overwrite" in other.stderr
    # nor does a one-process sgap precompute take it over
    one = ["precompute", "--edges", str(files["edges"]), "--out", str(out)]
    capsys.readouterr()
    assert sgap_main([*one, "--features", str(files["x"]), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "unfinished precompute of another kind (progress.rank0.json" in err
    assert "`torchrun ... -m sgap_plugins.dist propagate`)" in err
    assert not (out / "manifest.json").exists()

    resumed = torchrun(files, out, *args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    manifest = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert manifest["ranks"][1]["resumed_blocks"] == 1
    assert not list(out.glob("progress*.json"))
    expected = reference(files, tmp_path / "one", *args[:4])
    assert torch.equal(load_hops(out), expected)


def test_without_torchrun_one_line_error_exit_2(files):
    env = {k: v for k, v in _env(files).items() if k not in ("RANK", "WORLD_SIZE")}
    proc = subprocess.run(
        [sys.executable, "-m", "sgap_plugins.dist", "propagate", "--out", "x"],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "run it under torchrun: torchrun --nproc_per_node P -m sgap_plugins.dist" in lines[0]


def test_split_columns_is_even_and_contiguous():
    for f in range(0, 12):
        for p in range(1, 5):
            spans = split_columns(f, p)
            widths = [c1 - c0 for c0, c1 in spans]
            assert spans[0][0] == 0 and spans[-1][1] == f
            assert all(a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False))
            assert max(widths) - min(widths) <= 1 and widths == sorted(widths, reverse=True)
    with pytest.raises(ValueError, match="world_size"):
        split_columns(3, 0)


@pytest.mark.parametrize("aggregator", ["aug_na", "ppr", "triangle"])
def test_block_width_never_changes_a_column(files, tmp_path, aggregator):
    """What the ranks rely on: the kernels' numbers for a column do not depend on the width
    of its block, so every memory budget gives the same bytes."""
    edge_index = torch.from_numpy(np.load(files["edges"]))
    x = torch.from_numpy(np.load(files["x"]))
    whole = None
    for columns in (1, 2, 3, 16, F):
        budget = N * 3 * 4 * columns
        out = tmp_path / f"w{columns}"
        precompute(edge_index, x, 3, aggregator, out=out, memory_budget=budget, progress=False)
        data = (out / "hops.npy").read_bytes()
        whole = whole or data
        assert data == whole, columns
