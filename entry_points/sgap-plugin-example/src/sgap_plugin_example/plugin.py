"""The plugin module named by the entry point: one function per hook."""

from __future__ import annotations

from sgap_plugins import hookimpl

from .attention import HopAttention
from .heat import HeatKernel


@hookimpl
def sgap_graph_aggregators() -> list[type]:
    return [HeatKernel]


@hookimpl
def sgap_message_aggregators() -> list[type]:
    return [HopAttention]
