"""sgap-plugins: scalable decoupled GNNs (SGAP) and their search (PaSca) for PyG and DGL.

The top-level namespace is the framework-agnostic core; the adapters live in
:mod:`sgap_plugins.pyg` and :mod:`sgap_plugins.dgl`.
"""

from .core import (
    PRESETS,
    CSRGraph,
    GraphAggregator,
    MessageAggregator,
    SGAPConfig,
    SGAPModel,
    TrainResult,
    hookimpl,
    preset,
    propagate,
    run,
)
from .core.hop_folder import load_hops

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "CSRGraph",
    "GraphAggregator",
    "MessageAggregator",
    "SGAPConfig",
    "SGAPModel",
    "TrainResult",
    "__version__",
    "hookimpl",
    "load_hops",
    "preset",
    "propagate",
    "run",
]
