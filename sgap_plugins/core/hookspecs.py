"""The hooks a plugin may implement (see :doc:`/plugins`).

A plugin is a module (or object) with functions decorated by :data:`sgap_plugins.hookimpl`
whose names match the specifications below. Third-party packages expose it through the
``sgap_plugins`` entry-point group::

    [project.entry-points.sgap_plugins]
    my_plugin = "my_package.sgap_plugin"
"""

from __future__ import annotations

from typing import Any

import pluggy

PROJECT_NAME = "sgap_plugins"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def sgap_graph_aggregators() -> list[type]:
    """Return a list of :class:`~sgap_plugins.core.graph_aggregators.GraphAggregator`
    subclasses, each with a unique ``name``."""


@hookspec
def sgap_message_aggregators() -> list[type]:
    """Return a list of :class:`~sgap_plugins.core.message_aggregators.MessageAggregator`
    subclasses, each with a unique ``name``."""


@hookspec
def sgap_framework_adapters() -> list[Any]:
    """Return framework adapter objects (see
    :class:`~sgap_plugins.core.adapters.FrameworkAdapter`) that convert a framework's graph
    type to and from :class:`~sgap_plugins.core.graph.CSRGraph`."""
