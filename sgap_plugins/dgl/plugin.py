"""Registers the DGL framework adapter (absent when dgl is not installed)."""

from __future__ import annotations

import importlib.util

from ..core.adapters import FrameworkAdapter
from ..core.hookspecs import hookimpl


@hookimpl
def sgap_framework_adapters() -> list[FrameworkAdapter]:
    if importlib.util.find_spec("dgl") is None:
        return []
    from .adapter import DGLAdapter

    return [DGLAdapter()]
