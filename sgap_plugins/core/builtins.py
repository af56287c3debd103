"""The built-in aggregators, registered through the same hooks a third-party plugin uses."""

from __future__ import annotations

from . import graph_aggregators as ga
from . import message_aggregators as ma
from .hookspecs import hookimpl


@hookimpl
def sgap_graph_aggregators() -> list[type]:
    return [ga.AugNormAdj, ga.PersonalizedPageRank, ga.TriangleMotif]


@hookimpl
def sgap_message_aggregators() -> list[type]:
    return [
        ma.LastHop,
        ma.MeanHops,
        ma.MaxHops,
        ma.ConcatHops,
        ma.WeightedHops,
        ma.AdaptiveHops,
        ma.SignHops,
    ]
