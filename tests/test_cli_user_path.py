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
        ('"runs/cora"', repr(str(out))),
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
