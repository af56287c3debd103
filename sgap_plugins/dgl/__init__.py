"""DGL adapter: transforms and ``nn`` modules for ``DGLGraph`` users.

* :class:`SGAPPrecompute` — a ``dgl.transforms.BaseTransform`` like ``dgl.SIGNDiffusion``;
* :class:`SGAPPropagate` — parameter-free multi-hop propagation, ``forward(graph, feat)``;
* :class:`SGAPModel` — a complete SGAP architecture, ``forward(graph, feat, nids=None)``;
* :class:`DGLAdapter` — the framework adapter behind ``sgap_plugins.propagate(g, feat, k)``.

The names are imported on first access: the plugin manager imports
:mod:`sgap_plugins.dgl.plugin` (and so this package) whenever it builds its registry, and that
must import neither DGL nor the modules built on it (see :mod:`sgap_plugins.dgl.adapter`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .adapter import DGLAdapter
    from .nn import SGAPModel, SGAPPropagate
    from .transforms import SGAPPrecompute

_EXPORTS = {
    "DGLAdapter": "adapter",
    "SGAPModel": "nn",
    "SGAPPropagate": "nn",
    "SGAPPrecompute": "transforms",
}

__all__ = ["DGLAdapter", "SGAPModel", "SGAPPrecompute", "SGAPPropagate"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
