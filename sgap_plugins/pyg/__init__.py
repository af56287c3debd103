"""PyTorch Geometric adapter: transforms and the framework adapter.

* :class:`SGAPPrecompute` — a ``BaseTransform`` writing ``data.x1 … data.xk`` like ``T.SIGN``;
* :class:`SGAPPostprocess` — propagation of soft predictions (label propagation);
* :class:`PyGAdapter` — the framework adapter behind ``sgap_plugins.propagate(data, x, k)``.

The names are imported on first access: the plugin manager imports
:mod:`sgap_plugins.pyg.plugin` (and so this package) whenever it builds its registry, and a
process that never touches PyG should not pay for importing it (about 2 s).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .adapter import PyGAdapter
    from .transforms import SGAPPostprocess, SGAPPrecompute

_EXPORTS = {
    "PyGAdapter": "adapter",
    "SGAPPostprocess": "transforms",
    "SGAPPrecompute": "transforms",
}

__all__ = ["PyGAdapter", "SGAPPostprocess", "SGAPPrecompute"]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
