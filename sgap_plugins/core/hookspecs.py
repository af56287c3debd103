"""The hooks a plugin may implement (see :doc:`/plugins`).

A plugin is a module (or object) with functions decorated by :data:`sgap_plugins.hookimpl`
whose names match the specifications below. Third-party packages expose it through the
``sgap_plugins`` entry-point group::

    [project.entry-points.sgap_plugins]
    my_plugin = "my_package.sgap_plugin"

The specifications themselves are never called: pluggy calls the plugins' implementations.
"""

from __future__ import annotations

import pluggy

from .adapters import FrameworkAdapter

PROJECT_NAME = "sgap_plugins"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def sgap_graph_aggregators() -> list[type]:
    """Return graph aggregator classes: subclasses of
    :class:`~sgap_plugins.core.graph_aggregators.GraphAggregator` with a unique class
    attribute ``name`` and defaults for every constructor parameter.

    One step is ``m^t = combine(W m^{t-1}, m^0, t)`` with ``W = transition(graph)`` (a
    :class:`~sgap_plugins.core.graph.CSRGraph` of ``N`` nodes, rows = destinations) and
    ``m`` of shape ``[N, F]``. Each class passes
    :func:`~sgap_plugins.core.plugin_checks.check_graph_aggregator` before it is offered.
    """
    raise NotImplementedError


@hookspec
def sgap_message_aggregators() -> list[type]:
    """Return message aggregator classes: subclasses of
    :class:`~sgap_plugins.core.message_aggregators.MessageAggregator` with a unique class
    attribute ``name``, constructed as ``Cls(num_hops, in_dim, **params)`` (``num_hops =
    K + 1 ≥ 1``), setting ``out_dim`` and mapping hops ``[B, K+1, F]`` to ``[B, out_dim]``
    (including any output non-linearity, as SIGN's inception layer does).

    Each class passes :func:`~sgap_plugins.core.plugin_checks.check_message_aggregator`
    before it is offered.
    """
    raise NotImplementedError


@hookspec
def sgap_framework_adapters() -> list[FrameworkAdapter]:
    """Return framework adapter objects implementing the
    :class:`~sgap_plugins.core.adapters.FrameworkAdapter` protocol (a unique ``name``,
    ``accepts``, ``to_csr`` and ``from_csr``) that convert a framework's graph type to and
    from :class:`~sgap_plugins.core.graph.CSRGraph`; ``propagate(graph, ...)`` uses the
    first whose ``accepts(graph)`` is true. Return an empty list when the framework is not
    installed.
    """
    raise NotImplementedError
