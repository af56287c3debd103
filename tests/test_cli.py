"""The ``sgap`` command line: train, precompute, error handling and the data-root contract."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sgap_plugins import preset, propagate
from sgap_plugins.cli import main
from sgap_plugins.cli.common import parse_bytes
from sgap_plugins.core.graph import CSRGraph
from sgap_plugins.core.hop_folder import load_hops
from sgap_plugins.core.synthetic import csbm

TIMING_KEYS = ("precompute_s", "train_s", "inference_s")


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def small_config(tmp_path: Path, **changes) -> Path:
    path = tmp_path / "config.json"
    path.write_text(preset("sgc", epochs=5, patience=5, **changes).to_json())
    return path


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")
    }


# ---------------------------------------------------------------------------- train
def test_train_json_subprocess():
    """The real entry point, as a user runs it: ``python -m sgap_plugins.cli train --json``."""
    # SGAP_CACHE is inherited (the session's cache): compiled kernels are reused, not rebuilt
    env = {**os.environ, "SGAP_PLUGINS": "0"}
    proc = subprocess.run(
        [sys.executable, "-m", "sgap_plugins.cli", "train", "--dataset", "csbm", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stdout  # exactly one JSON object on stdout
    result = json.loads(lines[0])
    for key in ("test_acc", "val_acc", *TIMING_KEYS):
        assert isinstance(result[key], float), key
    for key in TIMING_KEYS:
        assert result[key] >= 0.0
    assert result["precompute_s"] > 0.0  # propagation really ran
    assert 0.0 <= result["val_acc"] <= 1.0 and 0.0 <= result["test_acc"] <= 1.0
    # 5 balanced classes: chance is 0.2; SGC on the smoothed CSBM features is far above it
    assert result["test_acc"] > 0.5
    assert result["dataset"]["name"] == "csbm" and result["model"] == "sgc"
    assert result["config"] == preset("sgc").to_dict()


def test_train_json_in_process_matches_library(capsys, tmp_path):
    """The CLI's numbers are those of the library pipeline on the same data and seed."""
    from sgap_plugins import run

    cfg_path = small_config(tmp_path)
    code, out, err = run_cli(
        capsys, "train", "--dataset", "csbm", "--config", str(cfg_path), "--seed", "3", "--json"
    )
    assert code == 0, err
    result = json.loads(out)
    data = csbm(seed=0)
    cfg = preset("sgc", epochs=5, patience=5)
    _, ref = run(
        data.edge_index,
        data.x,
        data.y,
        data.train_mask,
        data.val_mask,
        data.test_mask,
        cfg,
        seed=3,
    )
    assert result["model"] == str(cfg_path)
    assert result["config"] == cfg.to_dict()
    assert result["epochs_run"] == ref.epochs_run == 5
    assert result["test_acc"] == pytest.approx(ref.test_acc, abs=0.01)
    assert result["val_acc"] == pytest.approx(ref.val_acc, abs=0.01)


def test_train_human_readable_output(capsys, tmp_path):
    code, out, err = run_cli(
        capsys, "train", "--dataset", "csbm", "--config", str(small_config(tmp_path))
    )
    assert code == 0, err
    assert "accuracy" in out and "test" in out
    assert "precompute" in out and "inference" in out
    assert "csbm: 20000 nodes" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--preset", "nope"], "invalid choice: 'nope'"),
        (["train", "--dataset", "nope"], "invalid choice: 'nope'"),
        (["precompute", "--dataset", "nope"], "invalid choice: 'nope'"),
        (["nope"], "invalid choice: 'nope'"),
    ],
)
def test_unknown_names_exit_nonzero(capsys, argv, message):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code != 0
    err = capsys.readouterr().err
    assert message in err and "choose from" in err  # names the bad value and the choices


def test_bad_config_file_is_a_clear_error(capsys, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"k_pre": -1}))
    code, out, err = run_cli(capsys, "train", "--config", str(bad))
    assert code == 2 and out == ""
    assert "sgap train: error" in err and "k_pre" in err


# ---------------------------------------------------------------------------- precompute
def test_precompute_dataset_writes_a_hop_folder(capsys, tmp_path):
    out_dir = tmp_path / "hops"
    code, out, err = run_cli(
        capsys,
        "precompute",
        "--dataset",
        "csbm",
        "-k",
        "2",
        "--aggregator",
        "ppr",
        "--param",
        "alpha=0.2",
        "--param",
        "add_self_loops=true",
        "--out",
        str(out_dir),
        "--no-progress",
        "--json",
    )
    assert code == 0, err
    info = json.loads(out)
    assert info["shape"] == [3, 20000, 64]
    assert info["params"] == {"alpha": 0.2, "add_self_loops": True, "keep_isolated": False}
    assert info["timings"]["propagate_s"] > 0
    assert info["kernel_build_s"] >= 0  # reported apart from the propagation time
    manifest = json.loads((out_dir / "manifest.json").read_text())
    assert info == manifest | {"out": str(out_dir), "kernel_build_s": info["kernel_build_s"]}
    hops, rows = load_hops(out_dir, with_rows=True)
    data = csbm(seed=0)
    assert torch.equal(hops, propagate(data.edge_index, data.x, 2, "ppr", alpha=0.2))
    assert torch.equal(rows, torch.arange(20000))


def test_precompute_errors(capsys, tmp_path):
    out = str(tmp_path / "o")
    code, _, err = run_cli(capsys, "precompute", "--aggregator", "nope", "--out", out)
    assert code == 2 and "unknown graph aggregator 'nope'" in err
    argv = ["precompute", "--param", "alpha=2", "--aggregator", "ppr", "--out", out]
    code, _, err = run_cli(capsys, *argv)
    assert code == 2 and "alpha must" in err
    code, _, err = run_cli(capsys, "precompute", "-k", "65", "--out", out)
    assert code == 2 and "k must" in err
    code, _, err = run_cli(capsys, "precompute", "--param", "noequals", "--out", out)
    assert code == 2 and "KEY=VALUE" in err
    assert not (tmp_path / "o" / "manifest.json").exists()
    with pytest.raises(SystemExit):
        main(["precompute", "--memory-budget", "lots", "--out", out])
    assert "--memory-budget expects a positive number of bytes or a size like 512M" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize(
    "text, expected",
    [("1048576", 2**20), ("512M", 512 * 2**20), ("8G", 8 * 2**30), ("1.5GiB", 3 * 2**29)],
)
def test_memory_budget_sizes(text, expected):
    assert parse_bytes(text) == expected


# ------------------------------------------------------------- precompute from .npy files
@pytest.fixture
def npy_inputs(tmp_path: Path) -> dict[str, Path]:
    """Two edge files (int64 and int32, duplicates included), fp16 features, unsorted rows."""
    rng = np.random.default_rng(0)
    n = 2000
    files = {
        "e1": tmp_path / "e1.npy",
        "e2": tmp_path / "e2.npy",
        "x": tmp_path / "x.npy",
        "rows": tmp_path / "rows.npy",
    }
    np.save(files["e1"], rng.integers(0, n, (2, 9000)))
    np.save(files["e2"], rng.integers(0, n, (2, 3000)).astype(np.int32))
    np.save(files["x"], rng.standard_normal((n, 37)).astype(np.float16))
    np.save(files["rows"], rng.permutation(n)[:300])
    return files


def precompute_argv(files: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return [
        "precompute",
        "--edges",
        str(files["e1"]),
        "--edges",
        str(files["e2"]),
        "--features",
        str(files["x"]),
        "--out",
        str(out),
        "--no-progress",
        *extra,
    ]


def test_precompute_from_files_equals_propagate(capsys, tmp_path, npy_inputs):
    out = tmp_path / "out"
    argv = precompute_argv(npy_inputs, out, "--rows", str(npy_inputs["rows"]), "--symmetrize")
    argv += ["-k", "3", "--aggregator", "aug_na", "--memory-budget", "100K", "--json"]
    code, stdout, err = run_cli(capsys, *argv)
    assert code == 0, err
    info = json.loads(stdout)
    assert info["num_blocks"] == 7  # 100 KiB / (2 buffers x 2000 nodes x 4 bytes) = 6 columns
    assert info["inputs"]["symmetrize"] and info["inputs"]["duplicates"] == "drop"
    # Reference: the same graph (both directions, duplicates dropped) built in memory.
    edges = np.concatenate([np.load(npy_inputs["e1"]), np.load(npy_inputs["e2"])], axis=1)
    pairs = np.unique(np.concatenate([edges, edges[::-1]], axis=1), axis=1)
    x = torch.from_numpy(np.load(npy_inputs["x"]))
    rows = torch.from_numpy(np.load(npy_inputs["rows"]))
    expected = propagate(torch.from_numpy(pairs), x, 3, "aug_na", num_nodes=2000)
    hops, ids = load_hops(out, with_rows=True)
    assert hops.dtype == torch.float16
    assert torch.equal(hops, expected[:, rows]) and torch.equal(ids, rows)
    assert CSRGraph.load(out / "graph").num_edges == pairs.shape[1]
    # Another k over the same edges reuses DIR/graph instead of rebuilding it.
    built = (out / "graph" / "graph.json").stat().st_mtime_ns
    argv = precompute_argv(npy_inputs, out, "--symmetrize", "-k", "1", "--overwrite", "--json")
    code, stdout, err = run_cli(capsys, *argv)
    assert code == 0, err
    assert (out / "graph" / "graph.json").stat().st_mtime_ns == built
    assert torch.equal(load_hops(out), expected[:2])


def bad_input_cases(files: dict[str, Path], tmp: Path) -> list[tuple[list[str], str]]:
    rng = np.random.default_rng(1)
    np.save(tmp / "e_e3.npy", rng.integers(0, 2000, (500, 3)))
    np.save(tmp / "e_float.npy", rng.random((2, 500)))
    np.save(tmp / "e_big.npy", np.array([[0, 1], [1, 2000]]))
    np.save(tmp / "r_big.npy", np.array([3, 2000]))
    np.save(tmp / "r_rep.npy", np.array([3, 9, 3]))
    np.save(tmp / "x_short.npy", np.zeros((1999, 37), dtype=np.float32))
    x_nan = np.load(files["x"]).astype(np.float32)
    x_nan[1234, 30] = np.nan
    np.save(tmp / "x_nan.npy", x_nan)

    def argv(**changes: str) -> list[str]:
        paths = {"e1": str(files["e1"]), "x": str(files["x"]), **changes}
        extra = ["--rows", paths["rows"]] if "rows" in paths else []
        extra += ["--memory-budget", paths["budget"]] if "budget" in paths else []
        return ["--edges", paths["e1"], "--features", paths["x"], *extra]

    return [
        (argv(e1=str(tmp / "missing.npy")), "--edges " + str(tmp / "missing.npy") + ": no such"),
        (argv(x=str(tmp / "missing.npy")), "--features " + str(tmp / "missing.npy")),
        (argv(e1=str(tmp / "e_e3.npy")), "--edges: " + str(tmp / "e_e3.npy") + " has shape"),
        (argv(e1=str(tmp / "e_float.npy")), "node ids must be integers"),
        (argv(e1=str(tmp / "e_big.npy")), "--edges"),
        (argv(rows=str(tmp / "r_big.npy")), "--rows"),
        (argv(rows=str(tmp / "r_rep.npy")), "repeats 1 node id(s) (e.g. [3])"),
        (argv(x=str(tmp / "x_short.npy")) + ["--num-nodes", "2000"], "--features has 1999 rows"),
        (argv(budget="1000"), "below one column block"),
        (argv(x=str(tmp / "x_nan.npy")), "x_nan.npy: x contains NaN or inf in 1 row(s) of "),
        (argv(x=str(tmp / "x_nan.npy")), "columns 0..36 (rows [1234], columns [30])"),
    ]


def test_precompute_bad_input_is_a_clear_error_and_leaves_nothing_finished(
    capsys, tmp_path, npy_inputs
):
    for i, (args, message) in enumerate(bad_input_cases(npy_inputs, tmp_path)):
        out = tmp_path / f"out{i}"
        code, stdout, err = run_cli(capsys, "precompute", *args, "--out", str(out), "--no-progress")
        assert code == 2, (args, err)
        assert "sgap precompute: error:" in err and message in err, (message, err)
        assert not (out / "manifest.json").exists()
        with pytest.raises(FileNotFoundError):
            load_hops(out)


# ---------------------------------------------------------------------------- real data
@pytest.fixture
def raw_root(data_root: Path, tmp_path: Path) -> Path:
    """A *writable* copy of Cora's raw files laid out as a data root, so that a stray write
    into the root would be seen (the shared root is read-only and would only raise)."""
    root = tmp_path / "root"
    shutil.copytree(data_root / "planetoid" / "Cora" / "raw", root / "planetoid" / "Cora" / "raw")
    return root


def test_real_dataset_is_copied_into_the_cache(capsys, tmp_path, monkeypatch, raw_root):
    cache = tmp_path / "cache"
    monkeypatch.setenv("SGAP_CACHE", str(cache))
    before = snapshot(raw_root)
    argv = ["--dataset", "cora", "--data-root", str(raw_root), "-k", "1", "--no-progress"]
    code, out, err = run_cli(capsys, "precompute", *argv, "--json", "--out", str(tmp_path / "hops"))
    assert code == 0, err
    assert json.loads(out)["shape"] == [2, 2708, 1433]
    assert snapshot(raw_root) == before  # nothing written, nothing touched
    copied = cache / "datasets" / "planetoid" / "Cora"
    raw_names = sorted(p.name for p in (raw_root / "planetoid" / "Cora" / "raw").iterdir())
    assert sorted(p.name for p in (copied / "raw").iterdir()) == raw_names
    assert any((copied / "processed").iterdir())


def test_real_dataset_from_env_root_and_train(capsys, tmp_path, monkeypatch, raw_root):
    monkeypatch.setenv("SGAP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SGAP_DATA_ROOT", str(raw_root))
    before = snapshot(raw_root)
    code, out, err = run_cli(
        capsys, "train", "--dataset", "cora", "--config", str(small_config(tmp_path)), "--json"
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["dataset"]["name"] == "cora"
    assert 0.0 <= result["test_acc"] <= 1.0
    assert snapshot(raw_root) == before


def test_missing_dataset_in_root_is_a_clear_error(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("SGAP_CACHE", str(tmp_path / "cache"))
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out, err = run_cli(
        capsys,
        "precompute",
        "--dataset",
        "citeseer",
        "--data-root",
        str(empty),
        "--out",
        str(tmp_path / "hops"),
    )
    assert code == 2 and out == ""
    assert "not found" in err and "CiteSeer" in err and "--data-root" in err
    assert not any(empty.iterdir())


# ---------------------------------------------------------------------------- train --hops
def test_train_on_a_hop_folder_equals_training_on_the_dataset(capsys, tmp_path):
    """Selected rows (train + val + test, shuffled) precomputed into a folder, labels and the
    split as positions into those rows: the same model, batches and numbers as training on
    the dataset in memory."""
    data = csbm(seed=0)
    gen = torch.Generator().manual_seed(0)
    parts = [m.nonzero().flatten() for m in (data.train_mask, data.val_mask, data.test_mask)]
    parts = [p[torch.randperm(p.numel(), generator=gen)] for p in parts]
    rows = torch.cat(parts)
    np.save(tmp_path / "rows.npy", rows.numpy())
    np.save(tmp_path / "y.npy", data.y[rows].numpy())
    bounds = np.cumsum([0] + [p.numel() for p in parts])
    split = {
        name: np.arange(bounds[i], bounds[i + 1]) for i, name in enumerate(["train", "val", "test"])
    }
    np.savez(tmp_path / "split.npz", **split)
    for name, idx in split.items():
        np.save(tmp_path / f"{name}.npy", idx)
    config = str(small_config(tmp_path))
    folder = str(tmp_path / "hops")
    argv = ["precompute", "--dataset", "csbm", "-k", "3", "--rows", str(tmp_path / "rows.npy")]
    assert run_cli(capsys, *argv, "--out", folder, "--no-progress")[0] == 0
    code, out, err = run_cli(capsys, "train", "--dataset", "csbm", "--config", config, "--json")
    assert code == 0, err
    expected = json.loads(out)
    labels = ["--labels", str(tmp_path / "y.npy")]
    code, out, err = run_cli(
        capsys,
        "train",
        "--hops",
        folder,
        *labels,
        "--split",
        str(tmp_path / "split.npz"),
        "--config",
        config,
        "--json",
    )
    assert code == 0, err
    on_hops = json.loads(out)
    for key in ("train_acc", "val_acc", "test_acc", "best_epoch", "num_params"):
        assert on_hops[key] == expected[key], key
    # The three flags instead of --split; the human-readable report.
    idx = [f"--{n}-idx={tmp_path / n}.npy" for n in ("train", "val", "test")]
    code, out, err = run_cli(capsys, "train", "--hops", folder, *labels, *idx, "--config", config)
    assert code == 0, err
    assert f"test {expected['test_acc']:.4f}" in out


def test_train_on_hops_errors(capsys, tmp_path):
    data = csbm(seed=0)
    folder = tmp_path / "hops"
    rows = np.arange(0, 20000, 7)
    np.save(tmp_path / "rows.npy", rows)
    argv = ["precompute", "--dataset", "csbm", "-k", "3", "--rows", str(tmp_path / "rows.npy")]
    assert run_cli(capsys, *argv, "--out", str(folder), "--no-progress")[0] == 0
    np.save(tmp_path / "y.npy", data.y[rows].numpy())
    np.save(tmp_path / "short.npy", data.y[:10].numpy())
    np.save(tmp_path / "tr.npy", np.arange(50))
    np.save(tmp_path / "bad.npy", np.array([1, 1]))
    np.save(tmp_path / "far.npy", np.array([len(rows)]))
    base = ["train", "--hops", str(folder), "--val-idx", str(tmp_path / "tr.npy")]
    base += ["--test-idx", str(tmp_path / "tr.npy")]
    cases = [
        (
            [
                *base,
                "--labels",
                str(tmp_path / "y.npy"),
                "--train-idx",
                str(tmp_path / "tr.npy"),
                "--preset",
                "sign",
            ],
            "needs k_pre=4 hops but",
        ),
        ([*base, "--train-idx", str(tmp_path / "tr.npy")], "--hops needs --labels"),
        (
            [
                *base,
                "--labels",
                str(tmp_path / "short.npy"),
                "--train-idx",
                str(tmp_path / "tr.npy"),
            ],
            f"--labels must hold {len(rows)} integers",
        ),
        (
            [*base, "--labels", str(tmp_path / "y.npy"), "--train-idx", str(tmp_path / "bad.npy")],
            "--train-idx repeats 1 node id(s)",
        ),
        (
            [*base, "--labels", str(tmp_path / "y.npy"), "--train-idx", str(tmp_path / "far.npy")],
            f"positions into the hop folder's {len(rows)} rows",
        ),
        (["train", "--hops", str(tmp_path)], "not a finished hop folder"),
        (["train", "--labels", str(tmp_path / "y.npy")], "--labels applies to --hops DIR"),
    ]
    for argv, message in cases:
        code, out, err = run_cli(capsys, *argv)
        assert code == 2 and message in err, (message, err)
