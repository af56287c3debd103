"""The plugin manager and the registries built on it.

One :class:`pluggy.PluginManager` named ``"sgap_plugins"`` holds the built-ins
(:mod:`sgap_plugins.core.builtins`), the PyG and DGL adapters and every third-party plugin
declared in the ``sgap_plugins`` entry-point group. Entry points are loaded lazily on first
use, one at a time, so a plugin that fails to import is reported in a warning and skipped
while the rest keeps working.

``SGAP_PLUGINS`` selects the external plugins (those not shipped in ``sgap-plugins``
itself): unset loads all, ``0`` loads none, ``a,b`` loads the entry points named ``a`` and
``b`` only.
"""

from __future__ import annotations

import importlib.metadata
import os
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pluggy

from . import builtins, hookspecs
from .graph_aggregators import GraphAggregator
from .message_aggregators import MessageAggregator

OWN_DISTRIBUTION = "sgap-plugins"


class PluginWarning(UserWarning):
    """A plugin could not be loaded or registered something invalid."""


@dataclass
class PluginRecord:
    """What one plugin registered (for ``sgap plugins``)."""

    name: str
    distribution: str | None = None
    version: str | None = None
    graph_aggregators: list[str] = field(default_factory=list)
    message_aggregators: list[str] = field(default_factory=list)
    framework_adapters: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class _Registry:
    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.pm.register(builtins, name="builtins")
        self.records: dict[str, PluginRecord] = {
            "builtins": PluginRecord("builtins", OWN_DISTRIBUTION, _own_version())
        }
        self.graph_aggregators: dict[str, type[GraphAggregator]] = {}
        self.message_aggregators: dict[str, type[MessageAggregator]] = {}
        self.framework_adapters: list[Any] = []
        self._load_entry_points()
        self._collect()

    # -------------------------------------------------------------- loading
    def _load_entry_points(self) -> None:
        selection = os.environ.get("SGAP_PLUGINS")
        wanted = None
        if selection is not None:
            wanted = {s.strip() for s in selection.split(",") if s.strip() and s.strip() != "0"}
        eps = importlib.metadata.entry_points(group=hookspecs.PROJECT_NAME)
        for ep in eps:
            dist = ep.dist.metadata["Name"] if ep.dist is not None else None
            version = ep.dist.version if ep.dist is not None else None
            external = dist != OWN_DISTRIBUTION
            if external and wanted is not None and ep.name not in wanted:
                continue
            if self.pm.get_plugin(ep.name) is not None or self.pm.is_blocked(ep.name):
                continue
            record = PluginRecord(ep.name, dist, version)
            self.records[ep.name] = record
            try:
                # pluggy's own loader, restricted to this entry point so that one plugin's
                # import error does not stop the others.
                self.pm.load_setuptools_entrypoints(hookspecs.PROJECT_NAME, name=ep.name)
            except Exception as exc:  # noqa: BLE001 - any import failure is the plugin's
                self._problem(record, f"failed to import ({type(exc).__name__}: {exc})")

    def _problem(self, record: PluginRecord, message: str) -> None:
        record.problems.append(message)
        dist = f" from distribution {record.distribution!r}" if record.distribution else ""
        warnings.warn(
            f"sgap_plugins: plugin {record.name!r}{dist} {message}; it is skipped",
            PluginWarning,
            stacklevel=4,
        )

    # -------------------------------------------------------------- collection
    def _collect(self) -> None:
        kinds = (
            (
                "sgap_graph_aggregators",
                GraphAggregator,
                self.graph_aggregators,
                "graph_aggregators",
            ),
            (
                "sgap_message_aggregators",
                MessageAggregator,
                self.message_aggregators,
                "message_aggregators",
            ),
        )
        for hook_name, base, table, attr in kinds:
            for record, result in self._call_each(hook_name):
                for cls in result:
                    problem = _check_class(cls, base, table)
                    if problem:
                        self._problem(record, problem)
                        continue
                    table[cls.name] = cls
                    getattr(record, attr).append(cls.name)
        for record, result in self._call_each("sgap_framework_adapters"):
            for adapter in result:
                if not all(hasattr(adapter, a) for a in ("name", "accepts", "to_csr")):
                    self._problem(
                        record,
                        f"returned {adapter!r}, which is not a framework adapter "
                        "(needs name, accepts and to_csr)",
                    )
                    continue
                self.framework_adapters.append(adapter)
                record.framework_adapters.append(adapter.name)

    def _call_each(self, hook_name: str) -> Iterator[tuple[PluginRecord, list[Any]]]:
        """Call every implementation of a hook separately, so that one raising or returning
        garbage is reported and skipped (pluggy's ``hook()`` would stop at the first error)."""
        hook = getattr(self.pm.hook, hook_name)
        # pluggy lists implementations last-registered first; reverse so built-ins come first.
        for impl in reversed(hook.get_hookimpls()):
            name = self.pm.get_name(impl.plugin) or impl.plugin_name
            record = self.records.setdefault(name, PluginRecord(name))
            try:
                result = impl.function()
            except Exception as exc:  # noqa: BLE001 - isolate third-party failures
                self._problem(record, f"raised in {hook_name}() ({type(exc).__name__}: {exc})")
                continue
            if result is None:
                continue
            if not isinstance(result, (list, tuple)):
                self._problem(
                    record, f"returned {type(result).__name__} from {hook_name}(), not a list"
                )
                continue
            yield record, list(result)


def _check_class(cls: Any, base: type, table: dict[str, type]) -> str | None:
    if not isinstance(cls, type) or not issubclass(cls, base) or cls is base:
        return f"registered {cls!r}, which is not a subclass of {base.__name__}"
    name = getattr(cls, "name", "")
    if not isinstance(name, str) or not name:
        return f"registered {cls.__name__} without a class attribute `name`"
    if name in table and table[name] is not cls:
        return f"registered {cls.__name__} under the name {name!r}, already taken by " + (
            f"{table[name].__module__}.{table[name].__name__}"
        )
    return None


def _own_version() -> str | None:
    try:
        return importlib.metadata.version(OWN_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None


_registry: _Registry | None = None
_lock = threading.Lock()


def registry() -> _Registry:
    """The process-wide registry, created (and entry points loaded) on first use."""
    global _registry
    with _lock:
        if _registry is None:
            _registry = _Registry()
        return _registry


def reload_plugins() -> None:
    """Forget the loaded plugins; the next look-up loads entry points again."""
    global _registry
    with _lock:
        _registry = None


def get_plugin_manager() -> pluggy.PluginManager:
    return registry().pm


def graph_aggregator_classes() -> dict[str, type[GraphAggregator]]:
    return dict(registry().graph_aggregators)


def message_aggregator_classes() -> dict[str, type[MessageAggregator]]:
    return dict(registry().message_aggregators)


def framework_adapters() -> list[Any]:
    return list(registry().framework_adapters)


def _unknown(kind: str, name: Any, known: dict[str, Any]) -> ValueError:
    return ValueError(
        f"unknown {kind} {name!r}; choose one of {sorted(known)} "
        "or install a plugin that registers it (see `sgap plugins`)"
    )


def resolve_graph_aggregator(aggregator: str | GraphAggregator, **params: Any) -> GraphAggregator:
    """An instance from a registry name and parameters, or an instance passed through."""
    if isinstance(aggregator, GraphAggregator):
        if params:
            raise TypeError("pass aggregator parameters to the aggregator's constructor")
        return aggregator
    if not isinstance(aggregator, str):
        raise TypeError(
            "aggregator must be a registry name or a GraphAggregator, "
            f"got {type(aggregator).__name__}"
        )
    classes = registry().graph_aggregators
    if aggregator not in classes:
        raise _unknown("graph aggregator", aggregator, classes)
    try:
        return classes[aggregator](**params)
    except TypeError as exc:
        raise TypeError(f"bad parameters for graph aggregator {aggregator!r}: {exc}") from None


def message_aggregator_class(name: str) -> type[MessageAggregator]:
    classes = registry().message_aggregators
    if name not in classes:
        raise _unknown("message aggregator", name, classes)
    return classes[name]
