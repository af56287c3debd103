"""Every code block of README.md, docs/*.rst and docs/results.md runs (issue 11, point 7).

Each document's blocks run in order in one fresh Python process, in a scratch folder that
holds a copy of the Planetoid raw files under ``data/Planetoid`` (so ``Planetoid(root,
"Cora")`` finds them without a download), with the real datasets of ``$SGAP_DATA_ROOT``:

* ``python`` blocks share one namespace, as in a notebook (``__name__ == "__main__"``, so a
  search's worker processes work);
* ``bash`` / ``shell`` / ``console`` blocks run through ``bash -euo pipefail`` with this
  environment's ``sgap`` first on ``PATH``;
* other languages (``text``, ``json``, ...) are output or data, not code.

Two markers, visible in the doc source and invisible in the rendered page, placed on the
lines just before a block (only blank lines between):

* ``.. skip-test: <reason>`` (reST) / ``<!-- not-tested: <reason> -->`` (Markdown): the block
  does not run here (multi-hour benchmarks, installs, a GPU); the test lists them all;
* ``.. test-setup:`` (reST comment) / ``<!-- test-setup: ... -->`` (Markdown) followed by
  Python code: what the reader is assumed to have (a graph ``g``, input files), run just
  before the block.

The only change to a block is the budget of a search (:data:`BUDGET`): ``--max-evals N`` →
``--max-evals 2 --train epochs=2 --train patience=2 --no-presets``, and ``max_evals=N`` →
the same as keyword arguments of ``SearchEngine``.
DGL blocks (``import dgl`` or ``sgap_plugins.dgl``) skip, saying so, only where DGL is not
installed; with ``SGAP_REQUIRE_DGL=1`` they must run.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.rst")), ROOT / "docs/results.md"]
RUNNABLE = {"python": "python", "bash": "bash", "shell": "bash", "sh": "bash", "console": "bash"}
BUDGET = [
    (
        re.compile(r"--max-evals \d+"),
        "--max-evals 2 --train epochs=2 --train patience=2 --no-presets",
    ),
    (
        re.compile(r"\bmax_evals=\d+"),
        "max_evals=2, presets=False, "
        "base_config=__import__('sgap_plugins').SGAPConfig(epochs=2, patience=2)",
    ),
]
HAS_DGL = importlib.util.find_spec("dgl") is not None


@dataclass
class Block:
    doc: str
    line: int  # 1-based line of the block's first code line
    lang: str
    code: str
    skip: str | None = None  # the reason of a skip-test / not-tested marker
    setup: str = ""  # Python code of a test-setup marker

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"

    @property
    def uses_dgl(self) -> bool:
        return bool(re.search(r"^\s*import dgl|sgap_plugins\.dgl|dgl\.", self.code, re.M))


def _rst_blocks(path: Path) -> list[Block]:
    lines = path.read_text().splitlines()
    blocks: list[Block] = []
    skip, setup = None, ""
    i = 0
    while i < len(lines):
        line = lines[i]
        if m := re.match(r"\.\. skip-test:\s*(.+)", line):
            skip = m.group(1).strip()
        elif line.rstrip() == ".. test-setup:":
            body, i = _indented(lines, i + 1)
            setup += body
            continue
        elif m := re.match(r"\s*\.\. code-block::\s*(\S+)", line):
            indent = len(line) - len(line.lstrip())
            j = i + 1
            while j < len(lines) and re.match(r"\s+:\w+:", lines[j]):  # directive options
                j += 1
            body, end = _indented(lines, j, deeper_than=indent)
            start = next(k for k in range(j, end) if lines[k].strip()) + 1
            blocks.append(Block(_rel(path), start, m.group(1), body, skip, setup))
            skip, setup = None, ""
            i = end
            continue
        elif line.strip() and not line.startswith(".."):
            skip, setup = None, ""  # a marker applies to the block right after it
        i += 1
    return blocks


def _indented(lines: list[str], i: int, deeper_than: int = 0) -> tuple[str, int]:
    """The indented body starting at ``lines[i]`` (leading blank lines allowed), dedented,
    and the index of the first line after it."""
    body: list[str] = []
    while i < len(lines):
        line = lines[i]
        if line.strip() and len(line) - len(line.lstrip()) <= deeper_than:
            break
        body.append(line)
        i += 1
    return textwrap.dedent("\n".join(body)).strip("\n") + "\n", i


def _md_blocks(path: Path) -> list[Block]:
    lines = path.read_text().splitlines()
    blocks: list[Block] = []
    skip, setup = None, ""
    i = 0
    while i < len(lines):
        line = lines[i]
        if m := re.match(r"<!-- not-tested:\s*(.+?)\s*-->", line):
            skip = m.group(1)
        elif line.startswith("<!-- test-setup:"):
            end = next(k for k in range(i, len(lines)) if lines[k].rstrip().endswith("-->"))
            text = "\n".join(lines[i : end + 1])
            setup += text.removeprefix("<!-- test-setup:").removesuffix("-->").strip() + "\n"
            i = end
        elif m := re.match(r"```(\w*)", line):
            end = next(k for k in range(i + 1, len(lines)) if lines[k].startswith("```"))
            code = "\n".join(lines[i + 1 : end]) + "\n"
            blocks.append(Block(_rel(path), i + 2, m.group(1) or "text", code, skip, setup))
            skip, setup = None, ""
            i = end
        elif line.strip():
            skip, setup = None, ""
        i += 1
    return blocks


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def doc_blocks(path: Path) -> list[Block]:
    return _md_blocks(path) if path.suffix == ".md" else _rst_blocks(path)


# The process that runs one document's blocks: python in one namespace, shell through bash;
# the driver sits behind a __main__ guard, as the search's spawned workers re-import it.
RUNNER = r"""
import json, os, subprocess, sys, time, traceback

def main():
    blocks = json.load(open(sys.argv[1]))
    ns = {"__name__": "__main__", "__builtins__": __builtins__}
    for b in blocks:
        print(f"### {b['where']} ({b['lang']})", file=sys.stderr, flush=True)
        start = time.perf_counter()
        try:
            if b["setup"]:
                exec(compile(b["setup"], b["where"] + " (test-setup)", "exec"), ns)
            if b["lang"] == "python":
                exec(compile(b["code"], b["where"], "exec"), ns)
            else:
                proc = subprocess.run(["bash", "-euo", "pipefail", "-c", b["code"]])
                if proc.returncode:
                    raise SystemExit(f"exit status {proc.returncode}")
        except BaseException as exc:
            traceback.print_exc()
            print(f"### FAILED {b['where']}: {exc!r}", file=sys.stderr, flush=True)
            sys.exit(1)
        print(f"#   {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)

if __name__ == "__main__":
    main()
"""


def _scratch(tmp_path: Path) -> Path:
    """A working folder with a writable copy of the Planetoid raw files (data/Planetoid)."""
    work = tmp_path / "work"
    data_root = Path(os.environ.get("SGAP_DATA_ROOT", ROOT.parent / "shared/data"))
    for name in ("Cora", "CiteSeer"):
        src = data_root / "planetoid" / name / "raw"
        if src.is_dir():
            shutil.copytree(src, work / "data" / "Planetoid" / name / "raw")
    work.mkdir(exist_ok=True)
    return work


def _budget(code: str) -> str:
    for pattern, repl in BUDGET:
        code = pattern.sub(repl, code)
    return code


def _plan(path: Path) -> tuple[list[Block], list[Block], list[Block]]:
    """(blocks to run, marked skips, DGL blocks skipped for a missing DGL)."""
    run, skipped, no_dgl = [], [], []
    for b in doc_blocks(path):
        if b.lang not in RUNNABLE:
            continue
        if b.skip:
            skipped.append(b)
        elif b.uses_dgl and not HAS_DGL:
            no_dgl.append(b)
        else:
            run.append(b)
    return run, skipped, no_dgl


def test_markers_are_listed():
    """Every block that does not run here, with its reason (``pytest -s`` prints them); a
    marker without a reason is an error."""
    for path in DOCS:
        _, skipped, _ = _plan(path)
        for b in skipped:
            assert b.skip, b.where
            print(f"not tested: {b.where} ({b.lang}): {b.skip}")


# documents with a block to run here (api.rst and design.rst have none; docs/results.md
# only marked ones, which test_markers_are_listed lists)
RUN_DOCS = [p for p in DOCS if any(_plan(p)[::2])]


@pytest.mark.parametrize("path", RUN_DOCS, ids=[_rel(p) for p in RUN_DOCS])
def test_doc_code_blocks_run(path: Path, tmp_path: Path):
    run, _, no_dgl = _plan(path)
    if no_dgl:
        if os.environ.get("SGAP_REQUIRE_DGL") == "1":
            pytest.fail(f"SGAP_REQUIRE_DGL=1 but DGL is missing for {[b.where for b in no_dgl]}")
        # the rest still runs; say which blocks did not
        print(f"DGL is not installed: not run here {[b.where for b in no_dgl]}")
    if not run:
        pytest.skip(f"DGL is not installed: {_rel(path)} has only DGL blocks")
    work = _scratch(tmp_path)
    plan = [
        {**asdict(b), "code": _budget(b.code), "where": b.where, "lang": RUNNABLE[b.lang]}
        for b in run
    ]
    (work / "_blocks.json").write_text(json.dumps(plan))
    (work / "_run_docs.py").write_text(RUNNER)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.setdefault("DGLBACKEND", "pytorch")
    proc = subprocess.run(
        [sys.executable, "_run_docs.py", "_blocks.json"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    failed = re.findall(r"### FAILED (.*)", proc.stderr)
    assert proc.returncode == 0, (
        f"{failed or 'the runner failed'}\n--- stdout\n{proc.stdout[-3000:]}\n"
        f"--- stderr\n{proc.stderr[-6000:]}"
    )
    started = re.findall(r"^### (\S+) \(", proc.stderr, re.M)
    assert started == [b.where for b in run]


# ------------------------------------------------------------------ docs/results.md's table
def _reproduce(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks/reproduce_pasca.py"), "--datasets", "", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )


def _table(text: str) -> str:
    return text[text.index("<!-- reproduce:begin -->") : text.index("<!-- reproduce:end -->")]


def test_results_table_is_regenerated_from_the_logged_runs(tmp_path: Path):
    """``reproduce_pasca.py --report`` rebuilds docs/results.md's table from the committed
    log and choices, cell for cell."""
    proc = _reproduce("--report", str(tmp_path / "results.md"))
    assert proc.returncode == 0, proc.stderr
    want = _table((ROOT / "docs/results.md").read_text())
    assert _table((tmp_path / "results.md").read_text()) == want
    assert "—" not in want


def test_results_report_without_its_choices_is_an_error(tmp_path: Path):
    """Without ``<log>.chosen.json`` no run matches a cell: an error naming the file, not
    an all-"—" table."""
    log = tmp_path / "runs.jsonl"
    log.write_text("")
    proc = _reproduce("--log", str(log), "--report", str(tmp_path / "results.md"))
    assert proc.returncode != 0
    assert f"{tmp_path / 'runs.chosen.json'} not found" in proc.stderr
    assert not (tmp_path / "results.md").exists()
