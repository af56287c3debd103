"""Framework-agnostic core of sgap-plugins (torch, numpy and scipy only)."""

from .config import PRESETS, SGAPConfig, preset
from .graph import CSRGraph
from .graph_aggregators import AugNormAdj, GraphAggregator, PersonalizedPageRank, TriangleMotif
from .hookspecs import hookimpl
from .message_aggregators import MessageAggregator
from .model import SGAPModel
from .propagation import propagate
from .trainer import TrainResult, run

__all__ = [
    "PRESETS",
    "AugNormAdj",
    "CSRGraph",
    "GraphAggregator",
    "MessageAggregator",
    "PersonalizedPageRank",
    "SGAPConfig",
    "SGAPModel",
    "TrainResult",
    "TriangleMotif",
    "hookimpl",
    "preset",
    "propagate",
    "run",
]
