"""The user's path (issue 11): the real ``sgap`` entry point and the docs' Python search
example, each run in a subprocess as a user runs them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sgap_plugins.core.search.evaluation import split_fingerprint
from sgap_plugins.datasets import load_dataset

ROOT = Path(__file__).resolve().parents[1]
SGAP = str(Path(sys.executable).parent / "sgap")
# A search small enough for a test: two trials of two epochs on the built-in csbm graph.
TINY = ["--max-evals", "2", "--objectives", "val_error,params"]
TINY += ["--train", "epochs=2", "--train", "patience=2", "--workers", "2"]


def sgap(
    *args: str, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """``sgap ARGS`` through the console script, as a user runs it."""
    return subprocess.run(
        [SGAP, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        cwd=ROOT,
    )


@pytest.fixture(scope="module")
def cli_search(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, Path, subprocess.CompletedProcess]:
    """One ``sgap search --json`` run with progress on (split seed 3): its folder, the
    cache and the finished process."""
    tmp = tmp_path_factory.mktemp("cli")
    out, cache = tmp / "run", tmp / "cache"
    proc = sgap(
        "search",
        *TINY,
        "--split-seed",
        "3",
        "--json",
        "--out",
        str(out),
        env={"SGAP_CACHE": str(cache)},
    )
    assert proc.returncode == 0, proc.stderr
    return out, cache, proc


def test_search_json_is_one_json_document(cli_search) -> None:
    """Point 3: stdout is exactly pareto.json; the progress (hop stores, trial bar) goes to
    stderr, each hop store once although the presets reuse them."""
    out, _, proc = cli_search
    assert json.loads(proc.stdout) == json.loads((out / "pareto.json").read_text())
    ready = re.findall(r"hops (\S+): ready in", proc.stderr)
    assert sorted(ready) == sorted(["aug_na", "ppr(0.1)", "ppr(0.2)", "ppr(0.3)", "triangle"])
    assert "trial" in proc.stderr  # the tqdm bar


def test_pareto_json_records_the_dataset(cli_search) -> None:
    """Point 1: pareto.json and search.json name the dataset, its loading arguments and the
    split's fingerprint, which equals that of a reload with the same arguments only."""
    out, _, _ = cli_search
    record = json.loads((out / "pareto.json").read_text())["dataset"]
    data = load_dataset("csbm", split_seed=3)
    assert record == {
        "name": "csbm",
        "data_root": None,
        "split_seed": 3,
        "num_nodes": data.num_nodes,
        "split": split_fingerprint(data),
    }
    assert json.loads((out / "search.json").read_text())["dataset"] == record
    assert split_fingerprint(load_dataset("csbm", split_seed=4)) != record["split"]


def _docs_example() -> str:
    """The Python API example of docs/search.rst, as written."""
    text = (ROOT / "docs" / "search.rst").read_text()
    section = text[text.index("Python API\n----------") :]
    lines = section[section.index(".. code-block:: python") :].splitlines()[2:]
    end = next(i for i, line in enumerate(lines) if line and not line.startswith("   "))
    return "\n".join(line[3:] for line in lines[:end]).strip() + "\n"


def _tiny(example: str, out: Path) -> str:
    """The example on csbm with a tiny budget (the only changes)."""
    for old, new in [
        ('load_dataset("cora")', 'load_dataset("csbm", split_seed=3)'),
        ('"runs/cora_params"', repr(str(out))),
        ("max_evals=50", "max_evals=2, split_seed=3, base_config=TINY"),
    ]:
        assert old in example, old
        example = example.replace(old, new)
    tiny = (
        "from sgap_plugins.core.config import SGAPConfig\nTINY = SGAPConfig(epochs=2, patience=2)\n"
    )
    return tiny + example


def _python(script: Path, cache: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        env={**os.environ, "SGAP_CACHE": str(cache)},
        timeout=600,
        cwd=script.parent,
    )


def test_docs_search_example_runs_as_a_script(cli_search, tmp_path: Path) -> None:
    """Point 4: the docs example runs as a script (workers spawned); without its
    ``__main__`` guard it fails with an error saying what to do, not FileExistsError or
    BrokenPipeError, and leaves the folder usable; the API writes the CLI's folder and keeps
    the hops in $SGAP_CACHE/hops."""
    cli_out, _, _ = cli_search
    out, cache = tmp_path / "api", tmp_path / "cache"
    example = _tiny(_docs_example(), out)
    assert 'if __name__ == "__main__":' in example

    unguarded = tmp_path / "unguarded.py"
    body = example.split('if __name__ == "__main__":')
    unguarded.write_text(body[0] + "if True:\n" + body[1].split("\n", 1)[1])
    proc = _python(unguarded, cache)
    assert proc.returncode != 0
    assert 'if __name__ == "__main__":' in proc.stderr
    assert "FileExistsError" not in proc.stderr and "BrokenPipeError" not in proc.stderr

    script = tmp_path / "example.py"
    script.write_text(example)
    proc = _python(script, cache)
    assert proc.returncode == 0, proc.stderr
    assert "'k_pre'" in proc.stdout  # the front's points are printed

    def files(folder: Path) -> set[str]:
        return {p.name for p in folder.iterdir()}

    assert files(out) == files(cli_out)
    assert {"pareto.json", "trials.jsonl", "trials.csv", "pareto.png", "presets.json"} <= files(out)
    api, cli = (json.loads((d / "pareto.json").read_text()) for d in (out, cli_out))
    assert api.keys() == cli.keys() and api["dataset"] == cli["dataset"]
    assert not (out / "hops").exists()
    assert any((cache / "hops").iterdir())


# ---------------------------------------------------------------------- point 8
def test_bad_split_seed_names_the_argument(tmp_path: Path) -> None:
    proc = sgap("search", "--split-seed", "-5", "--out", str(tmp_path / "x"))
    assert proc.returncode == 2
    assert "argument --split-seed: --split-seed must be an integer >= 0" in proc.stderr
    assert "'-5'" in proc.stderr


def test_bad_json_names_the_file(cli_search, tmp_path: Path) -> None:
    """A damaged search.json stops --resume with an error naming the file and the line."""
    out, _, _ = cli_search
    copy = tmp_path / "run"
    copy.mkdir()
    (copy / "trials.jsonl").write_text((out / "trials.jsonl").read_text())
    (copy / "search.json").write_text('{"dataset": ')
    proc = sgap("search", *TINY, "--split-seed", "3", "--resume", "--out", str(copy))
    assert proc.returncode == 2
    assert f"sgap search: error: {copy / 'search.json'} is not valid JSON (line 1" in proc.stderr


def test_read_json_names_the_flag_and_file(tmp_path: Path) -> None:
    from sgap_plugins.cli.common import read_json

    bad = tmp_path / "bad.json"
    bad.write_text('{"k_pre": 2,\n "lr": }')
    with pytest.raises(
        ValueError, match=rf"--config {re.escape(str(bad))}: not valid JSON \(line 2"
    ):
        read_json(bad, "--config")
    with pytest.raises(FileNotFoundError, match="--config nowhere.json: cannot read it"):
        read_json("nowhere.json", "--config")


def test_help_shows_the_defaults() -> None:
    search = sgap("search", "--help").stdout
    assert re.search(r"--workers WORKERS\s+parallel trials \(.*\) \(default: 1\)", search)
    assert re.search(r"--seed SEED\s+search and training seed \(default: 0\)", search)
    precompute = " ".join(sgap("precompute", "--help").stdout.split())
    assert re.search(r"-k K, --k K .*\(default:? 3\)", precompute)
    assert re.search(r"--aggregator AGGREGATOR .*\(default: aug_na\)", precompute)
    assert "(default: 0)" in sgap("train", "--help").stdout


def _install_dist(site: Path, dist: str, entry_points: dict[str, str]) -> None:
    """An installed distribution laid out by hand (what pip writes, minus ``RECORD``)."""
    info = site / f"{dist.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1.0\n")
    lines = "".join(f"{name} = {value}\n" for name, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[sgap_plugins]\n{lines}")


def test_plugins_lists_each_problem_once_and_absent_adapters(tmp_path: Path) -> None:
    """A broken plugin's problem is printed once (listed, not also warned); sgap-plugins'
    own adapter for a framework that is not installed is "absent", with the reason."""
    _install_dist(tmp_path, "broken-plugin", {"broken": "no_such_module_xyz"})
    proc = sgap("plugins", env={"PYTHONPATH": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    both = proc.stdout + proc.stderr
    assert both.count("No module named 'no_such_module_xyz'") == 1, both
    assert "broken  [failed]  broken-plugin 0.1.0  (no_such_module_xyz)" in proc.stdout
    import importlib.util

    for name, module in (("dgl", "dgl"), ("pyg", "torch_geometric")):
        if importlib.util.find_spec(module) is None:
            assert f"{name}  [absent]" in proc.stdout
            assert f"framework {module!r} is not installed" in proc.stdout
        else:
            assert f"{name}  [loaded]" in proc.stdout
            assert f"framework adapters: {name}" in proc.stdout


@pytest.fixture
def example_plugin(tmp_path: Path) -> dict[str, str]:
    """The example plugin of entry_points/ installed in a throwaway PYTHONPATH overlay (its
    sources plus a dist-info declaring its entry point), as scripts/run_pytest.sh does."""
    site = tmp_path / "site"
    _install_dist(site, "sgap-plugin-example", {"example": "sgap_plugin_example.plugin"})
    src = ROOT / "entry_points" / "sgap-plugin-example" / "src"
    return {"PYTHONPATH": os.pathsep.join([str(site), str(src)])}


def test_extra_aggregator_takes_parameters_and_names_a_disabled_plugin(
    example_plugin: dict[str, str], tmp_path: Path
) -> None:
    """``--extra-graph-aggregator heat:tau=2`` adds the plugin's aggregator with its
    parameter; with SGAP_PLUGINS=0 the unknown name points at the disabled plugin."""
    args = ["search", "--extra-graph-aggregator", "heat:tau=2", "--no-presets", "--no-progress"]
    disabled = sgap(
        *args, "--out", str(tmp_path / "off"), env={**example_plugin, "SGAP_PLUGINS": "0"}
    )
    assert disabled.returncode == 2
    assert "unknown graph aggregator 'heat'" in disabled.stderr
    assert "SGAP_PLUGINS='0' leaves out the installed plugin 'example'" in disabled.stderr
    assert "add its entry-point name to SGAP_PLUGINS" in disabled.stderr

    bad = sgap(*args[:1], "--extra-graph-aggregator", "heat:tau", "--out", str(tmp_path / "b"))
    assert bad.returncode == 2 and "--extra-graph-aggregator heat: expects KEY=VALUE" in bad.stderr

    out = tmp_path / "on"
    env = {**example_plugin, "SGAP_PLUGINS": "example"}
    tiny = ["--max-evals", "1", "--train", "epochs=2", "--train", "patience=2"]
    proc = sgap(*args, *tiny, "--objectives", "val_error,params", "--out", str(out), env=env)
    assert proc.returncode == 0, proc.stderr
    choices = json.loads((out / "search.json").read_text())["space"]["graph_aggregators"]
    assert ["heat(2)", "heat", {"tau": 2}] in choices


def test_kernel_build_time_is_reported_apart(tmp_path: Path) -> None:
    """Point 5: train and precompute report the kernels' build (or load) time in
    ``kernel_build_s``, measured before the work, so a first run's compile is not counted in
    ``precompute_s``/the propagation time; that the build itself is quiet and reported by
    ``sgap doctor`` is tested in tests/test_ops_build.py."""
    proc = sgap("train", "--dataset", "csbm", "--json")
    assert proc.returncode == 0, proc.stderr
    train = json.loads(proc.stdout)
    proc = sgap(
        "precompute", "--dataset", "csbm", "-k", "1", "--out", str(tmp_path / "h"), "--json"
    )
    assert proc.returncode == 0, proc.stderr
    precompute = json.loads(proc.stdout)
    for report in (train, precompute):
        assert isinstance(report["kernel_build_s"], float) and report["kernel_build_s"] >= 0.0
