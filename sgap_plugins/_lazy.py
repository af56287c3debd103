"""Lazy package exports (PEP 562) for the framework adapters.

The plugin manager imports ``sgap_plugins.pyg.plugin`` and ``sgap_plugins.dgl.plugin`` (and so
their packages) whenever it builds its registry; the package namespaces must therefore not
import PyG or DGL until one of their names is used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(
    package: str, exports: dict[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` importing ``name`` from the submodule
    ``exports[name]`` on first access and caching it in the package ``namespace``."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{exports[name]}", package), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
