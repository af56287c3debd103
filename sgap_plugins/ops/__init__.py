"""Fused propagation kernels: a C++ (CPU) and CUDA torch extension built just in time.

The sources in ``csrc/`` register the ``torch.ops.sgap`` operators (``propagate_hops``,
``loop_degree``, ``triangle_counts``) with CPU and CUDA dispatch. They are compiled with
:func:`torch.utils.cpp_extension.load` and ninja on first use into a per-user cache,

    ``$SGAP_EXTENSIONS_DIR/<key>``, else ``$SGAP_CACHE/extensions/<key>``, else
    ``~/.cache/sgap_plugins/extensions/<key>``,

where ``key`` combines the torch version, torch's CUDA version and a hash of the sources and
flags, so a torch upgrade or a source change triggers a rebuild and nothing else does. A file
lock serialises parallel builds. CUDA sources are compiled only when torch is a CUDA build, a
toolkit of the same major version is found and a GPU is present (``SGAP_BUILD_CUDA=1`` compiles
them without one, e.g. to check the sources); otherwise the CPU kernels are built alone. The
build needs neither ``CUDA_HOME`` nor ``TORCH_CUDA_ARCH_LIST``: the toolkit's runtime library
is looked up in its ``lib64``, ``lib`` and ``targets/<arch>-linux/lib`` folders (also when
``nvcc`` on ``PATH`` is a wrapper script outside the toolkit), and without a GPU to ask, the
newest architecture torch itself was built for is the target.

When no build is possible (no compiler, no ninja, a broken toolchain) :func:`load` warns once
with the reason and the fix and returns ``None``: callers then use the plain-torch path.
``SGAP_DISABLE_EXTENSIONS=1`` forces that fallback. :func:`info` reports what happened
(``cuda_build`` says whether the CUDA kernels were built, skipped or failed, and why) and
:func:`prepare` loads the kernels up front and returns the seconds it took, so that a
first run's compile is reported apart from the work it precedes.
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
import time
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


def _cuda_lib_dirs(root: Path) -> list[Path]:
    """The folders of ``root`` (a CUDA toolkit) that hold its runtime ``libcudart.so``."""
    candidates = [root / "lib64", root / "lib"]
    candidates += sorted((root / "targets").glob("*-linux/lib"))
    return [d for d in candidates if (d / "libcudart.so").exists()]


def _toolkit_root(cuda_home: str) -> Path:
    """The CUDA toolkit behind ``cuda_home``. torch derives ``CUDA_HOME`` from the ``nvcc``
    on ``PATH`` when the variable is unset; when that ``nvcc`` is a wrapper script (e.g.
    ``/usr/local/bin/nvcc``), ``CUDA_HOME`` is ``/usr/local`` and holds no runtime library,
    so ``-lcudart`` fails to link. Then the toolkit is the one the wrapper runs: the
    ``nvcc`` it names, else the conventional ``/usr/local/cuda``."""
    home = Path(cuda_home)
    if _cuda_lib_dirs(home):
        return home
    candidates: list[Path] = []
    nvcc = home / "bin" / "nvcc"
    try:
        if nvcc.stat().st_size < 4096:  # a script, not the nvcc binary
            named = re.findall(r"(/\S+)/bin/nvcc\b", nvcc.read_text(errors="replace"))
            candidates += [Path(p) for p in named]
    except OSError:
        pass
    candidates.append(Path("/usr/local/cuda"))
    return next((c for c in candidates if _cuda_lib_dirs(c)), home)


def _cuda_arch_flags() -> list[str]:
    """``-gencode`` flags for a build without a GPU to ask and without
    ``TORCH_CUDA_ARCH_LIST``: the newest architecture torch was built for, with PTX so that
    newer GPUs can JIT it. Empty when the list is set or a GPU is present (torch's own
    choice then)."""
    if os.environ.get("TORCH_CUDA_ARCH_LIST") or torch.cuda.is_available():
        return []
    archs = [a for a in torch.cuda.get_arch_list() if a.startswith("sm_")]
    if not archs:
        return []
    sm = max(archs, key=lambda a: int(re.sub(r"\D", "", a))).removeprefix("sm_")
    return [
        f"-gencode=arch=compute_{sm},code=sm_{sm}",
        f"-gencode=arch=compute_{sm},code=compute_{sm}",
    ]


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
    root = _toolkit_root(cuda_home)
    if not _cuda_lib_dirs(root):
        return False, (
            f"nvcc {nvcc} at {cuda_home}, but no libcudart.so in its lib64, lib or "
            "targets/*/lib folders (point CUDA_HOME at the toolkit's root)"
        )
    return True, f"nvcc {nvcc} at {root} matches torch's CUDA {torch.version.cuda}"


def build_key(with_cuda: bool) -> str:
    """``torch<ver>-<cuda|cpu>-<hash of sources, flags, python and CPU>``."""
    digest = hashlib.sha256()
    for name in HEADERS + CPU_SOURCES + (CUDA_SOURCES if with_cuda else []):
        digest.update(name.encode())
        digest.update((CSRC / name).read_bytes())
    digest.update(" ".join(_cpu_flags()).encode())
    digest.update(_cpu_signature().encode())
    digest.update(sys.version.encode())
    if with_cuda:
        digest.update(os.environ.get("TORCH_CUDA_ARCH_LIST", "").encode())
        digest.update(" ".join(_cuda_arch_flags()).encode())
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
    ldflags, includes = ["-fopenmp"], [str(CSRC)]
    if with_cuda and cpp_extension.CUDA_HOME is not None:
        root = _toolkit_root(cpp_extension.CUDA_HOME)
        ldflags += [f"-L{d}" for d in _cuda_lib_dirs(root)]
        includes.append(str(root / "include"))
    with filelock.FileLock(str(build_dir / "build.lock")), _ninja_on_path(ninja_dir):
        with warnings.catch_warnings():
            # cpp_extension warns about compiler ABI/version checks it cannot settle.
            warnings.simplefilter("ignore", UserWarning)
            cpp_extension.load(
                name=name,
                sources=sources,
                extra_cflags=_cpu_flags(),
                extra_ldflags=ldflags,
                extra_cuda_cflags=["-O3", "--use_fast_math", *_cuda_arch_flags()]
                if with_cuda
                else None,
                extra_include_paths=includes,
                build_directory=str(build_dir),
                with_cuda=with_cuda,
                is_python_module=False,
                verbose=os.environ.get("SGAP_VERBOSE_BUILD") == "1",
            )
    return build_dir


def _short(exc: BaseException) -> str:
    """The most telling line of a build failure: the linker's ``cannot find``, else a
    compiler ``error:`` line, else any line that mentions an error."""
    text = str(exc).strip().splitlines()
    for marker in ("cannot find", "error:", "error"):
        found = [line for line in text if marker in line.lower()]
        if found:
            return found[0].strip()[:300]
    return (text[-1] if text else type(exc).__name__).strip()[:300]


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
        "cuda_build": "not attempted",
        "build_s": 0.0,
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
    forced = os.environ.get("SGAP_BUILD_CUDA") == "1"
    if cuda_ok and not info_["gpu_available"] and not forced:
        # Kernels no GPU here can run: compiling them costs minutes and proves nothing.
        info_["cuda_build"] = "skipped: no GPU present (SGAP_BUILD_CUDA=1 compiles them anyway)"
        notes.append("CUDA kernels not built: no GPU present")
    elif cuda_ok:
        try:
            try:
                info_["build_dir"] = str(_build(True, ninja_dir))
            except Exception as first:  # noqa: BLE001
                # nvcc can die under memory pressure on small shared machines; ninja resumes
                # from the objects already built, so one retry is cheap. A second failure
                # reports the first error (the retry's is often a mere "cannot load").
                try:
                    info_["build_dir"] = str(_build(True, ninja_dir))
                except Exception:  # noqa: BLE001
                    raise first from None
            info_["cuda_compiled"] = True
            info_["cpu_kernels"] = True
            info_["cuda_build"] = "built"
        except Exception as exc:  # noqa: BLE001 - any build failure means fallback
            info_["cuda_build"] = f"failed: {_short(exc)}"
            notes.append(f"CUDA build failed ({_short(exc)}); built the CPU kernels only")
            warnings.warn(
                f"sgap_plugins.ops: compiling the CUDA kernels failed: {_short(exc)}. "
                "Fix: check CUDA_HOME/TORCH_CUDA_ARCH_LIST (SGAP_VERBOSE_BUILD=1 shows the "
                "compiler output); using the CPU kernels.",
                ExtensionWarning,
                stacklevel=4,
            )
    else:
        info_["cuda_build"] = f"not attempted: {cuda_why}"
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
                start = time.perf_counter()
                try:
                    _load_locked()
                finally:
                    if "info" in _state:
                        _state["info"]["build_s"] = time.perf_counter() - start
    return _state.get("ops")


def prepare() -> float:
    """Load the kernels now, building them if needed, and return the seconds this call
    spent (``0.0`` when they were loaded before). A command calls it before timing its own
    work, so that a first run's compile is reported apart (``kernel_build_s``) instead of
    inflating the propagation time."""
    start = time.perf_counter()
    load()
    return time.perf_counter() - start


def info() -> dict[str, Any]:
    """What the kernels are: ``backend`` (``"cuda"``, ``"cpp"`` or ``"torch"``), ``reason``,
    ``cpu_kernels``, ``cuda_compiled``, ``gpu_available``, the torch/CUDA versions, the CUDA
    toolkit check (``cuda_toolkit``), what became of the CUDA build (``cuda_build``:
    ``"built"``, ``"skipped: ..."``, ``"failed: ..."`` or ``"not attempted: ..."``), the
    build folder and ``build_s``, the seconds this process spent building or loading them.
    Builds the extension if that has not happened yet."""
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
    "prepare",
    "propagate_hops",
    "triangle_counts",
    "unweighted_degree",
]
