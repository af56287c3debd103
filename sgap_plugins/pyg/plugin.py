"""Registers the PyG framework adapter (absent when torch_geometric is not installed)."""

from __future__ import annotations

import importlib.util

from ..core.adapters import FrameworkAdapter
from ..core.hookspecs import hookimpl


@hookimpl
def sgap_framework_adapters() -> list[FrameworkAdapter]:
    if importlib.util.find_spec("torch_geometric") is None:
        return []
    from .adapter import PyGAdapter

    return [PyGAdapter()]
