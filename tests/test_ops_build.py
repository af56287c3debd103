"""The JIT build of the kernels: backend report, CUDA compilation, fallback and ``sgap doctor``.

In the latest env (torch cu130, nvcc 13.0 under CUDA_HOME) the CUDA sources must compile;
the compat env (torch cu121) has no matching toolkit and builds the C++ kernels only.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from sgap_plugins import ops
from sgap_plugins.cli import main


def test_info_reports_backend_and_reason():
    info = ops.info()
    assert info["backend"] in ("cpp", "cuda", "torch")
    assert info["reason"]
    assert info["torch"] == torch.__version__
    if os.environ.get("SGAP_DISABLE_EXTENSIONS") != "1":
        # This machine has g++ and ninja: the C++ kernels must build.
        assert info["cpu_kernels"], info["reason"]
        assert info["backend"] in ("cpp", "cuda")


def test_cuda_sources_compile_where_a_matching_toolkit_exists():
    """Fails (does not skip) when torch and the toolkit match but nvcc cannot build. Without
    a GPU the loader skips the CUDA build, so it is forced here (SGAP_BUILD_CUDA=1) in a
    subprocess (a process loads one build of the operators)."""
    matching, why = ops.cuda_toolkit()
    if not matching:
        pytest.skip(f"CUDA sources are not compiled in this env: {why}")
    if os.environ.get("SGAP_DISABLE_EXTENSIONS") == "1":
        pytest.skip("SGAP_DISABLE_EXTENSIONS=1")
    proc = _run(
        "import json; from sgap_plugins import ops; print(json.dumps(ops.info()))",
        SGAP_BUILD_CUDA="1",
    )
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert info["cuda_compiled"], f"CUDA kernels did not compile: {info['reason']}"
    assert info["cuda_build"] == "built"
    assert "-cu" in os.path.basename(info["build_dir"])


def test_build_key_names_torch_cuda_and_sources():
    key = ops.build_key(with_cuda=False)
    assert key.startswith("torch" + torch.__version__.split("+")[0])
    assert "-cpu-" in key
    if torch.version.cuda:
        assert f"-cu{torch.version.cuda}-" in ops.build_key(with_cuda=True)
    assert ops.build_key(False) == ops.build_key(False)  # stable: the cache is reused


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **env}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=600,
    )


def test_disable_env_forces_torch_fallback_with_same_results():
    proc = _run(
        """
        import json, warnings, torch
        from sgap_plugins import ops, propagate
        x = torch.randn(5, 3)
        ei = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = propagate(ei, x, 2)
        noisy = [str(w.message) for w in caught if issubclass(w.category, ops.ExtensionWarning)]
        print(json.dumps({"info": ops.info(), "warnings": noisy, "out": out.tolist()}))
        """,
        SGAP_DISABLE_EXTENSIONS="1",
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["info"]["backend"] == "torch"
    assert "SGAP_DISABLE_EXTENSIONS" in report["info"]["reason"]
    assert report["warnings"] == []  # a forced fallback is not a problem to warn about


def test_impossible_build_warns_once_and_falls_back(tmp_path):
    proc = _run(
        """
        import json, warnings, torch
        from sgap_plugins import ops, propagate
        from sgap_plugins.core.propagation import propagate_reference, as_csr_graph
        from sgap_plugins.core.plugins import resolve_graph_aggregator
        x = torch.randn(5, 3)
        ei = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            a = propagate(ei, x, 2)
            b = propagate(ei, x, 2, "ppr")
        agg = resolve_graph_aggregator("aug_na")
        ref = propagate_reference(agg.transition(as_csr_graph(ei, 5)), agg, x, 2)
        msgs = [str(w.message) for w in caught if issubclass(w.category, ops.ExtensionWarning)]
        print(json.dumps({"info": ops.info(), "warnings": msgs, "same": bool(torch.equal(a, ref))}))
        """,
        CXX="/nonexistent/c++",
        SGAP_CACHE=str(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["info"]["backend"] == "torch"
    assert len(report["warnings"]) == 1, report["warnings"]
    assert "compiler" in report["warnings"][0] and "Fix:" in report["warnings"][0]
    assert report["same"]


def test_doctor_prints_backend(capsys):
    assert main(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["backend"] == ops.info()["backend"]
    assert main(["doctor"]) == 0
    text = capsys.readouterr().out
    assert "backend" in text and "reason" in text


def test_one_reading_of_sgap_cache(monkeypatch, tmp_path):
    """The dataset cache and the kernel folder follow SGAP_CACHE at call time, through one
    function; SGAP_EXTENSIONS_DIR keeps the kernels apart from a moved data cache."""
    from sgap_plugins.datasets import cache_dir

    monkeypatch.delenv("SGAP_EXTENSIONS_DIR", raising=False)
    monkeypatch.setenv("SGAP_CACHE", str(tmp_path / "a"))
    assert cache_dir() == tmp_path / "a"
    assert ops.cache_root() == tmp_path / "a" / "extensions"
    monkeypatch.setenv("SGAP_CACHE", str(tmp_path / "b"))
    assert ops.cache_root() == cache_dir() / "extensions" == tmp_path / "b" / "extensions"
    monkeypatch.setenv("SGAP_EXTENSIONS_DIR", str(tmp_path / "builds"))
    assert ops.cache_root() == tmp_path / "builds" and cache_dir() == tmp_path / "b"
    monkeypatch.delenv("SGAP_CACHE")
    assert cache_dir() == Path.home() / ".cache" / "sgap_plugins"


def test_the_session_builds_are_reused_when_the_data_cache_moves(monkeypatch, tmp_path):
    """conftest pins SGAP_EXTENSIONS_DIR, so a test moving SGAP_CACHE finds the build."""
    built = ops.info()["build_dir"]
    if built is None:
        pytest.skip(f"no kernels were built here: {ops.info()['reason']}")
    monkeypatch.setenv("SGAP_CACHE", str(tmp_path))
    assert Path(built).parent == ops.cache_root()


def test_venv_ninja_is_on_path_only_during_the_build(monkeypatch, tmp_path):
    """A venv's ninja (next to the interpreter, the venv not activated) is found and put on
    PATH for the build only: torch's own check sees it inside, and PATH is restored after."""
    from torch.utils.cpp_extension import is_ninja_available

    ninja = shutil.which("ninja") or str(Path(sys.executable).parent / "ninja")
    if not Path(ninja).exists():
        pytest.fail("no ninja here, although sgap-plugins depends on it")
    tools = tmp_path / "tools"
    tools.mkdir()
    shutil.copy(ninja, tools / "ninja")
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert not is_ninja_available()
    assert ops._ninja_dir() == Path(sys.executable).parent  # the venv's, not found on PATH
    with ops._ninja_on_path(tools):
        assert is_ninja_available()
        assert os.environ["PATH"].split(os.pathsep)[0] == str(tools)
    assert os.environ["PATH"] == str(empty)
    assert not is_ninja_available()


def test_doctor_without_build_variables_reports_what_was_built(tmp_path):
    """`sgap doctor` as a user runs it, without the Makefile's CUDA_HOME and
    TORCH_CUDA_ARCH_LIST, in a fresh kernel folder: no warning, and the CUDA build's actual
    outcome (built; skipped without a GPU; not attempted without a matching toolkit). The
    session's CPU build is linked in, so only the CUDA decision is made afresh (cheap where
    it is skipped)."""
    if os.environ.get("SGAP_DISABLE_EXTENSIONS") == "1":
        pytest.skip("SGAP_DISABLE_EXTENSIONS=1")
    built = ops.info()["build_dir"]
    cpu_key = ops.build_key(with_cuda=False)
    if built is not None and (Path(built).parent / cpu_key).is_dir():
        (tmp_path / cpu_key).symlink_to(Path(built).parent / cpu_key)
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_HOME", "TORCH_CUDA_ARCH_LIST")}
    env.update(SGAP_EXTENSIONS_DIR=str(tmp_path))
    sgap = str(Path(sys.executable).parent / "sgap")
    proc = subprocess.run(
        [sgap, "doctor", "--json"], capture_output=True, text=True, env=env, timeout=900
    )
    assert proc.returncode == 0, proc.stderr
    assert "Warning" not in proc.stderr and "failed" not in proc.stderr, proc.stderr
    report = json.loads(proc.stdout)
    assert report["cpu_kernels"], report["reason"]
    assert report["cuda_compiled"] == (report["cuda_build"] == "built"), report
    assert not report["cuda_build"].startswith("failed"), report["cuda_build"]
    matching = report["cuda_toolkit"].startswith("nvcc") and "matches" in report["cuda_toolkit"]
    if not matching:
        assert report["cuda_build"].startswith("not attempted: "), report
    elif not report["gpu_available"]:
        assert report["cuda_build"].startswith("skipped: no GPU present"), report
    else:
        assert report["cuda_build"] == "built", report
    text = subprocess.run(
        [sgap, "doctor"], capture_output=True, text=True, env=env, timeout=900
    ).stdout
    assert f"cuda_build     {report['cuda_build']}" in text


def test_toolkit_found_behind_an_nvcc_wrapper(tmp_path):
    """CUDA_HOME derived from a wrapper script (/usr/local/bin/nvcc -> /usr/local) holds no
    runtime library; the toolkit the wrapper runs does, and its lib folder is linked."""
    toolkit = tmp_path / "cuda-13.0"
    (toolkit / "targets" / "x86_64-linux" / "lib").mkdir(parents=True)
    (toolkit / "targets" / "x86_64-linux" / "lib" / "libcudart.so").write_bytes(b"")
    (tmp_path / "local" / "bin").mkdir(parents=True)
    (tmp_path / "local" / "bin" / "nvcc").write_text(f'#!/bin/sh\nexec {toolkit}/bin/nvcc "$@"\n')
    from sgap_plugins.ops import _cuda_lib_dirs, _short, _toolkit_root

    assert _toolkit_root(str(tmp_path / "local")) == toolkit
    assert _cuda_lib_dirs(toolkit) == [toolkit / "targets" / "x86_64-linux" / "lib"]
    assert _toolkit_root(str(toolkit)) == toolkit
    failure = RuntimeError(
        "Error building extension 'sgap_ops_cuda': [2/2] c++ ...\n"
        "/usr/bin/ld: cannot find -lcudart: No such file or directory\n"
        "collect2: error: ld returned 1 exit status"
    )
    assert _short(failure) == "/usr/bin/ld: cannot find -lcudart: No such file or directory"
