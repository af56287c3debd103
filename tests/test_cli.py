"""The ``sgap`` command line: train, precompute, error handling and the data-root contract."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sgap_plugins import preset, propagate
from sgap_plugins.cli import main
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
    assert result["dataset"] == "csbm" and result["model"] == "sgc"
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
def test_precompute_saves_the_hops(capsys, tmp_path):
    out_file = tmp_path / "hops.pt"
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
        str(out_file),
        "--json",
    )
    assert code == 0, err
    info = json.loads(out)
    assert info["shape"] == [3, 20000, 64]
    assert info["params"] == {"alpha": 0.2, "add_self_loops": True}
    assert info["precompute_s"] > 0
    hops = torch.load(out_file)
    data = csbm(seed=0)
    torch.testing.assert_close(hops, propagate(data.edge_index, data.x, 2, "ppr", alpha=0.2))


def test_precompute_errors(capsys):
    code, out, err = run_cli(capsys, "precompute", "--aggregator", "nope")
    assert code == 2 and "unknown graph aggregator 'nope'" in err
    code, out, err = run_cli(capsys, "precompute", "--param", "alpha=2", "--aggregator", "ppr")
    assert code == 2 and "alpha must" in err
    code, out, err = run_cli(capsys, "precompute", "-k", "65")
    assert code == 2 and "k must" in err
    code, out, err = run_cli(capsys, "precompute", "--param", "noequals")
    assert code == 2 and "KEY=VALUE" in err


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
    code, out, err = run_cli(
        capsys, "precompute", "--dataset", "cora", "--data-root", str(raw_root), "-k", "1", "--json"
    )
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
    assert result["dataset"] == "cora"
    assert 0.0 <= result["test_acc"] <= 1.0
    assert snapshot(raw_root) == before


def test_missing_dataset_in_root_is_a_clear_error(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("SGAP_CACHE", str(tmp_path / "cache"))
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out, err = run_cli(
        capsys, "precompute", "--dataset", "citeseer", "--data-root", str(empty)
    )
    assert code == 2 and out == ""
    assert "not found" in err and "CiteSeer" in err and "--data-root" in err
    assert not any(empty.iterdir())
