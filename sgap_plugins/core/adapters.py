"""The protocol of framework adapters (PyG, DGL, or a third party's)."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from torch import Tensor

from .graph import CSRGraph


@runtime_checkable
class FrameworkAdapter(Protocol):
    """Converts one framework's graph objects to and from :class:`CSRGraph`.

    ``propagate(obj, x, k)`` asks every registered adapter ``accepts(obj)`` and converts the
    first that does.
    """

    name: str

    def accepts(self, obj: Any) -> bool:
        """Whether ``obj`` is a graph of this framework."""
        ...

    def to_csr(self, obj: Any, edge_weight: Tensor | None = None) -> CSRGraph:
        """Convert (edge direction src → dst, edge weights when present)."""
        ...

    def from_csr(self, graph: CSRGraph) -> Any:
        """Convert back to the framework's graph type."""
        ...
