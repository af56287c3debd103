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

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

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


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
