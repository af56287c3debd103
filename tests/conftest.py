"""Shared fixtures.

Real datasets are found through ``$SGAP_DATA_ROOT`` (``make test`` points it at
``../shared/data``); tests that need them skip with a clear reason when it is unset and fail
when it is set but the files are missing. DGL tests run wherever DGL is installed and fail
(instead of skipping) when ``SGAP_REQUIRE_DGL=1``, which ``make test`` sets for the compat env;
Ray tests (:func:`require_ray`) likewise with ``SGAP_REQUIRE_RAY=1``.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("DGLBACKEND", "pytorch")
# The benchmark scripts import each other by module name from their folder; their tests
# import them the same way (appended, so a script never shadows an installed package).
sys.path.append(str(Path(__file__).resolve().parents[1] / "benchmarks"))
# Dataset copies go to a throw-away cache unless the caller chose one (make test does).
if "SGAP_CACHE" not in os.environ:
    os.environ["SGAP_CACHE"] = tempfile.mkdtemp(prefix="sgap-test-cache-")
# Compiled kernels stay in the session's cache when a test points SGAP_CACHE elsewhere.
os.environ.setdefault("SGAP_EXTENSIONS_DIR", os.path.join(os.environ["SGAP_CACHE"], "extensions"))


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = os.environ.get("SGAP_DATA_ROOT")
    if not root:
        pytest.skip("SGAP_DATA_ROOT is not set: real-data tests need ../shared/data (make test)")
    path = Path(root)
    if not (path / "planetoid" / "Cora" / "raw").is_dir():
        pytest.fail(f"SGAP_DATA_ROOT={root} does not hold planetoid/Cora/raw")
    return path


@pytest.fixture(scope="session")
def cora(data_root: Path):
    from sgap_plugins.datasets import load_dataset

    return load_dataset("cora", data_root)


def _require(module: str, label: str, flag: str):
    """Import ``module``, or skip with a reason; fail instead when ``$flag`` is ``1`` (the
    env promises it)."""
    if importlib.util.find_spec(module) is None:
        if os.environ.get(flag) == "1":
            pytest.fail(f"{flag}=1 but {module} is not installed")
        pytest.skip(f"{label} is not installed in this env (the compat env runs the {label} tests)")
    return importlib.import_module(module)


def require_dgl():
    """Import dgl, or skip with a reason (fail when ``SGAP_REQUIRE_DGL=1``)."""
    return _require("dgl", "DGL", "SGAP_REQUIRE_DGL")


@pytest.fixture
def dgl():
    return require_dgl()


def require_ray():
    """Import ray, or skip with a reason (fail when ``SGAP_REQUIRE_RAY=1``)."""
    return _require("ray", "Ray", "SGAP_REQUIRE_RAY")
