"""Fused propagation kernels: a C++ (CPU) and CUDA torch extension built just in time.

The sources in ``csrc/`` register the ``torch.ops.sgap`` operators (``propagate_hops``,
``loop_degree``, ``triangle_counts``) with CPU and CUDA dispatch. They are compiled with
:func:`torch.utils.cpp_extension.load` and ninja on first use into a per-user cache,

    ``$SGAP_EXTENSIONS_DIR/<key>``, else ``$SGAP_CACHE/extensions/<key>``, else
    ``~/.cache/sgap_plugins/extensions/<key>``,

where ``key`` combines the torch version, torch's CUDA version and a hash of the sources and
flags, so a torch upgrade or a source change triggers a rebuild and nothing else does. A file
lock serialises parallel builds. CUDA sources are compiled only when torch is a CUDA build and
a toolkit of the same major version is found; otherwise the CPU kernels are built alone.

When no build is possible (no compiler, no ninja, a broken toolchain) :func:`load` warns once
with the reason and the fix and returns ``None``: callers then use the plain-torch path.
``SGAP_DISABLE_EXTENSIONS=1`` forces that fallback. :func:`info` reports what happened.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from .._cache import extensions_dir

CSRC = Path(__file__).parent / "csrc"
CPU_SOURCES = ["propagate_cpu.cpp"]
CUDA_SOURCES = ["propagate_cuda.cu"]
HEADERS = ["sgap_ops.h"]

_lock = threading.Lock()
_state: dict[str, Any] = {}


class ExtensionWarning(UserWarning):
    """The fused kernels could not be built; sgap_plugins uses the plain-torch path."""


def cache_root() -> Path:
    """Where built extensions live (read when a build is loaded): ``$SGAP_EXTENSIONS_DIR``,
    else ``<cache>/extensions`` (:func:`sgap_plugins._cache.extensions_dir`). A process loads
    the kernels once; set ``SGAP_EXTENSIONS_DIR`` to keep one folder of builds while the data
    cache moves (the test suite does)."""
    return extensions_dir()


def _cpu_flags() -> list[str]:
    # -march=native is safe because the cache key includes this machine's CPU flags; the
    # OpenMP flag makes at::parallel_for (an inline OpenMP region) actually run in parallel.
    flags = ["-O3", "-fopenmp"]
    if platform.machine() in ("x86_64", "AMD64", "aarch64", "arm64"):
        flags.append("-march=native")
    return flags


def _cpu_signature() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return line.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _nvcc_version(cuda_home: str) -> str | None:
    nvcc = Path(cuda_home) / "bin" / "nvcc"
    if not nvcc.exists():
        return None
    try:
        text = subprocess.run(
            [str(nvcc), "--version"], capture_output=True, text=True, timeout=60
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"release (\d+\.\d+)", text)
    return match.group(1) if match else None


def _cpp_extension() -> ModuleType:
    """``torch.utils.cpp_extension``, imported without the "No CUDA runtime is found" line it
    prints to stderr on a machine with a CUDA toolkit but no GPU: expected there, it only
    alarms users (:func:`info` and ``sgap doctor`` report the toolkit's state instead)."""
    with contextlib.redirect_stderr(io.StringIO()):
        from torch.utils import cpp_extension
    return cpp_extension


def cuda_toolkit() -> tuple[bool, str]:
    """Whether CUDA sources can be compiled here, and why (not)."""
    if torch.version.cuda is None:
        return False, f"torch {torch.__version__} is a CPU-only build"
    cuda_home = _cpp_extension().CUDA_HOME
    if cuda_home is None:
        return False, (
            f"torch is built for CUDA {torch.version.cuda} but no CUDA toolkit was found "
            "(set CUDA_HOME to a toolkit with nvcc)"
        )
    nvcc = _nvcc_version(cuda_home)
    if nvcc is None:
        return False, f"no working nvcc under CUDA_HOME={cuda_home}"
    if nvcc.split(".")[0] != torch.version.cuda.split(".")[0]:
        return False, (
            f"CUDA toolkit {nvcc} at {cuda_home} does not match torch's CUDA "
            f"{torch.version.cuda} (install toolkit {torch.version.cuda} and point CUDA_HOME "
            "at it to build the CUDA kernels)"
        )
    return True, f"nvcc {nvcc} at {cuda_home} matches torch's CUDA {torch.version.cuda}"


def build_key(with_cuda: bool) -> str:
    """``torch<ver>-<cuda|cpu>-<hash of sources, flags, python and CPU>``."""
    digest = hashlib.sha256()
    for name in HEADERS + CPU_SOURCES + (CUDA_SOURCES if with_cuda else []):
        digest.update(name.encode())
        digest.update((CSRC / name).read_bytes())
    digest.update(" ".join(_cpu_flags()).encode())
    digest.update(_cpu_signature().encode())
    digest.update(sys.version.encode())
    digest.update(os.environ.get("TORCH_CUDA_ARCH_LIST", "").encode() if with_cuda else b"")
    tv = re.sub(r"[^0-9A-Za-z.]+", "_", torch.__version__)
    cuda = f"cu{torch.version.cuda}" if with_cuda else "cpu"
    return f"torch{tv}-{cuda}-{digest.hexdigest()[:16]}"


def _ninja_dir() -> Path | None:
    """The folder of the ninja to build with: the one on ``PATH``, else the one next to this
    interpreter (a venv's, installed by the ``ninja`` dependency, when the venv is not
    activated); ``None`` when there is none."""
    found = shutil.which("ninja")
    if found:
        return Path(found).parent
    candidate = Path(sys.executable).parent / "ninja"
    return candidate.parent if candidate.exists() else None


@contextlib.contextmanager
def _ninja_on_path(ninja_dir: Path) -> Iterator[None]:
    """``ninja_dir`` first on ``PATH`` for the duration of a build, then ``PATH`` as it was.

    ``torch.utils.cpp_extension`` runs ``ninja`` from ``PATH`` (it has no setting for the
    executable), so the build needs it there; the process environment is changed only while
    the build runs (under the build lock) and restored afterwards.
    """
    old = os.environ.get("PATH")
    if shutil.which("ninja") is not None:
        yield
        return
    os.environ["PATH"] = f"{ninja_dir}{os.pathsep}{old or ''}"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("PATH", None)
        else:
            os.environ["PATH"] = old


def _build(with_cuda: bool, ninja_dir: Path) -> Path:
    import filelock

    cpp_extension = _cpp_extension()

    key = build_key(with_cuda)
    build_dir = cache_root() / key
    build_dir.mkdir(parents=True, exist_ok=True)
    sources = [str(CSRC / s) for s in CPU_SOURCES + (CUDA_SOURCES if with_cuda else [])]
    name = "sgap_ops_cuda" if with_cuda else "sgap_ops_cpu"
    with filelock.FileLock(str(build_dir / "build.lock")), _ninja_on_path(ninja_dir):
        with warnings.catch_warnings():
            # cpp_extension warns about compiler ABI/version checks it cannot settle.
            warnings.simplefilter("ignore", UserWarning)
            cpp_extension.load(
                name=name,
                sources=sources,
                extra_cflags=_cpu_flags(),
                extra_ldflags=["-fopenmp"],
                extra_cuda_cflags=["-O3", "--use_fast_math"] if with_cuda else None,
                extra_include_paths=[str(CSRC)],
                build_directory=str(build_dir),
                with_cuda=with_cuda,
                is_python_module=False,
                verbose=os.environ.get("SGAP_VERBOSE_BUILD") == "1",
            )
    return build_dir


def _short(exc: BaseException) -> str:
    """The most telling line of a build failure: a compiler ``error:`` line if there is one."""
    text = str(exc).strip().splitlines()
    compiler = [line for line in text if "error:" in line.lower()]
    errors = compiler or [line for line in text if "error" in line.lower()]
    return (errors[0] if errors else text[-1] if text else type(exc).__name__).strip()[:300]


def _load_locked() -> None:
    info_: dict[str, Any] = {
        "backend": "torch",
        "reason": "",
        "cpu_kernels": False,
        "cuda_compiled": False,
        "gpu_available": torch.cuda.is_available(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "build_dir": None,
        "cuda_toolkit": "",
    }
    _state["info"] = info_
    if os.environ.get("SGAP_DISABLE_EXTENSIONS") == "1":
        info_["reason"] = "SGAP_DISABLE_EXTENSIONS=1 forces the plain-torch path"
        return
    ninja_dir = _ninja_dir()
    if ninja_dir is None:
        _fail(info_, "ninja is not installed", "pip install ninja")
        return
    if shutil.which(os.environ.get("CXX", "c++")) is None:
        _fail(info_, "no C++ compiler (c++) on PATH", "install g++ (e.g. apt-get install g++)")
        return
    cuda_ok, cuda_why = cuda_toolkit()
    info_["cuda_toolkit"] = cuda_why
    notes = []
    if cuda_ok:
        try:
            try:
                info_["build_dir"] = str(_build(True, ninja_dir))
            except Exception:  # noqa: BLE001
                # nvcc can die under memory pressure on small shared machines; ninja resumes
                # from the objects already built, so one retry is cheap.
                info_["build_dir"] = str(_build(True, ninja_dir))
            info_["cuda_compiled"] = True
            info_["cpu_kernels"] = True
        except Exception as exc:  # noqa: BLE001 - any build failure means fallback
            notes.append(f"CUDA build failed ({_short(exc)}); built the CPU kernels only")
            warnings.warn(
                f"sgap_plugins.ops: compiling the CUDA kernels failed: {_short(exc)}. "
                "Fix: check CUDA_HOME/TORCH_CUDA_ARCH_LIST (SGAP_VERBOSE_BUILD=1 shows the "
                "compiler output); using the CPU kernels.",
                ExtensionWarning,
                stacklevel=4,
            )
    else:
        notes.append(f"CUDA kernels not built: {cuda_why}")
    if not info_["cpu_kernels"]:
        try:
            info_["build_dir"] = str(_build(False, ninja_dir))
            info_["cpu_kernels"] = True
        except Exception as exc:  # noqa: BLE001
            _fail(
                info_,
                f"compiling the C++ kernels failed: {_short(exc)}",
                "install a C++17 compiler and ninja, or rerun with SGAP_VERBOSE_BUILD=1 to see "
                "the compiler output",
            )
            return
    if info_["cuda_compiled"] and info_["gpu_available"]:
        info_["backend"] = "cuda"
        notes.insert(0, "CUDA and C++ kernels loaded; a GPU is present")
    else:
        info_["backend"] = "cpp"
        gpu = "" if info_["gpu_available"] else "; no GPU present"
        notes.insert(0, f"C++ kernels loaded{gpu}")
    info_["reason"] = "; ".join(notes)
    _state["ops"] = torch.ops.sgap


def _fail(info_: dict[str, Any], reason: str, fix: str) -> None:
    info_["reason"] = f"{reason}; fix: {fix}"
    warnings.warn(
        f"sgap_plugins.ops: {reason}. Fix: {fix}. Falling back to the plain-torch path "
        "(slower, same results).",
        ExtensionWarning,
        stacklevel=4,
    )


def load() -> Any | None:
    """The ``torch.ops.sgap`` namespace, building it on first call; ``None`` on fallback."""
    if "info" not in _state:
        with _lock:
            if "info" not in _state:
                _load_locked()
    return _state.get("ops")


def info() -> dict[str, Any]:
    """What the kernels are: ``backend`` (``"cuda"``, ``"cpp"`` or ``"torch"``), ``reason``,
    ``cpu_kernels``, ``cuda_compiled``, ``gpu_available``, the torch/CUDA versions, the CUDA
    toolkit check and the build folder. Builds the extension if that has not happened yet."""
    load()
    return dict(_state["info"])


def available(device: torch.device) -> bool:
    """Whether the fused kernels can run on ``device``."""
    if load() is None:
        return False
    if device.type == "cpu":
        return True
    return device.type == "cuda" and bool(_state["info"]["cuda_compiled"])


from .kernels import propagate_hops, triangle_counts, unweighted_degree  # noqa: E402

__all__ = [
    "ExtensionWarning",
    "available",
    "build_key",
    "cache_root",
    "cuda_toolkit",
    "info",
    "load",
    "propagate_hops",
    "triangle_counts",
    "unweighted_degree",
]
