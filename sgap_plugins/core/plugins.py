"""The plugin registry: one plugin manager and the aggregator and adapter tables built on it.

One :class:`pluggy.PluginManager` named ``"sgap_plugins"`` holds the built-ins
(:mod:`sgap_plugins.core.builtins`), the PyG and DGL adapters and every third-party plugin
declared in the ``sgap_plugins`` entry-point group. Entry points are loaded lazily on first
use, one at a time, so that a broken plugin is reported and skipped while the rest keeps
working. Every problem (a plugin that fails to import, a hook that raises or returns
something other than a list of proper classes, a name that is already taken, an aggregator
that fails its self-check) is reported once as a :class:`PluginWarning` naming the plugin,
its distribution and the problem, and is listed by ``sgap plugins``.

A newly registered aggregator is offered only after its self-check
(:mod:`sgap_plugins.core.plugin_checks`); a framework adapter only if it implements the
:class:`~sgap_plugins.core.adapters.FrameworkAdapter` protocol.

The registry is built on the first look-up, never while :mod:`sgap_plugins` is imported:
configurations and presets are plain values that do not consult it.

``SGAP_PLUGINS`` selects the external plugins (those not shipped in ``sgap-plugins``
itself): unset loads all, ``0`` (or empty) loads none, ``a,b`` loads the entry points named
``a`` and ``b`` only. An unknown aggregator name names the plugins ``SGAP_PLUGINS`` leaves
out, which may provide it.

The framework adapters shipped in ``sgap-plugins`` (:data:`ADAPTER_FRAMEWORKS`) are *absent*
where their framework is not installed: not loaded, listed with that reason.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import pluggy

from . import builtins, hookspecs
from .adapters import FrameworkAdapter
from .graph_aggregators import GraphAggregator
from .message_aggregators import MessageAggregator

# The self-checks live in their own module; re-exported here, where they used to be.
from .plugin_checks import PluginCheckError, check_graph_aggregator, check_message_aggregator

OWN_DISTRIBUTION = "sgap-plugins"
ENV_VAR = "SGAP_PLUGINS"
# Entry points of sgap-plugins' own framework adapters -> (framework module, pip extra).
ADAPTER_FRAMEWORKS = {"pyg": ("torch_geometric", "pyg"), "dgl": ("dgl", "dgl")}


class PluginWarning(UserWarning):
    """A plugin could not be loaded or registered something invalid."""


@dataclass
class PluginRecord:
    """What one plugin is and what it registered (for ``sgap plugins``).

    ``status`` is ``"loaded"`` (registered with the plugin manager, possibly with
    ``problems``), ``"failed"`` (could not be loaded at all), ``"disabled"`` (skipped
    because ``SGAP_PLUGINS`` does not name it) or ``"absent"`` (a framework adapter of
    sgap-plugins whose framework is not installed); ``note`` says why when it is not
    ``"loaded"`` for a reason other than a problem.
    """

    name: str
    distribution: str | None = None
    version: str | None = None
    module: str | None = None
    status: str = "loaded"
    graph_aggregators: list[str] = field(default_factory=list)
    message_aggregators: list[str] = field(default_factory=list)
    framework_adapters: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        """``plugin 'x' (distribution 'pkg' 1.0)`` for messages."""
        if self.distribution is None:
            return f"plugin {self.name!r}"
        version = f" {self.version}" if self.version else ""
        return f"plugin {self.name!r} (distribution {self.distribution!r}{version})"


_KINDS: dict[str, tuple[str, type, Callable[[Any], None]]] = {
    # hook: (what it registers, base class, self-check)
    "sgap_graph_aggregators": ("graph aggregator", GraphAggregator, check_graph_aggregator),
    "sgap_message_aggregators": ("message aggregator", MessageAggregator, check_message_aggregator),
}


# ---------------------------------------------------------------------- the registry
class _Registry:
    def __init__(self, entry_points: bool = True) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.pm.register(builtins, name="builtins")
        self.records: list[PluginRecord] = [
            PluginRecord("builtins", OWN_DISTRIBUTION, _own_version(), builtins.__name__)
        ]
        self.graph_aggregators: dict[str, type[GraphAggregator]] = {}
        self.message_aggregators: dict[str, type[MessageAggregator]] = {}
        self.framework_adapters: list[FrameworkAdapter] = []
        self._owner: dict[tuple[str, str], str] = {}  # (hook, registered name) -> plugin
        if entry_points:
            self._load_entry_points()
        self._check_unknown_hooks()
        self._collect_aggregators()
        self._collect_adapters()

    # -------------------------------------------------------------- loading
    def _load_entry_points(self) -> None:
        selection = os.environ.get(ENV_VAR)
        wanted = None
        if selection is not None:
            wanted = {s.strip() for s in selection.split(",")} - {"", "0"}
        seen = {"builtins"}
        for ep in importlib.metadata.entry_points(group=hookspecs.PROJECT_NAME):
            dist = ep.dist.metadata["Name"] if ep.dist is not None else None
            record = PluginRecord(
                ep.name, dist, ep.dist.version if ep.dist is not None else None, ep.value
            )
            if ep.name in seen:
                # pluggy registers plugins by name: the first distribution keeps it.
                owner = self.record(ep.name)
                record.status = "failed"
                self.records.append(record)
                self._problem(
                    record,
                    f"uses the entry-point name {ep.name!r}, which "
                    f"{owner.describe() if owner else 'an earlier plugin'} already uses; "
                    "rename the entry point; the plugin is skipped",
                )
                continue
            seen.add(ep.name)
            self.records.append(record)
            if dist != OWN_DISTRIBUTION and wanted is not None and ep.name not in wanted:
                record.status = "disabled"
                record.note = f"{ENV_VAR}={selection!r} does not name it"
                continue
            framework = ADAPTER_FRAMEWORKS.get(ep.name) if dist == OWN_DISTRIBUTION else None
            if framework is not None and importlib.util.find_spec(framework[0]) is None:
                # DESIGN.md: an adapter whose framework is not installed is simply absent.
                record.status = "absent"
                record.note = (
                    f"framework {framework[0]!r} is not installed "
                    f"(pip install 'sgap-plugins[{framework[1]}]')"
                )
                continue
            try:
                # pluggy's own loader, restricted to this entry point so that one plugin's
                # failure does not stop the others.
                self.pm.load_setuptools_entrypoints(hookspecs.PROJECT_NAME, name=ep.name)
            except Exception as exc:
                # pluggy may have registered part of a plugin whose validation failed.
                if self.pm.get_plugin(ep.name) is not None:
                    self.pm.unregister(name=ep.name)
                record.status = "failed"
                detail = " ".join(str(exc).split())
                self._problem(
                    record,
                    f"is not a valid plugin ({detail}); the plugin is skipped"
                    if isinstance(exc, pluggy.PluginValidationError)
                    else f"failed to import {ep.value!r} ({type(exc).__name__}: {detail}); "
                    "the plugin is skipped",
                )
        for name in sorted((wanted or set()) - seen):
            warnings.warn(
                f"sgap_plugins: {ENV_VAR} names {name!r}, but no installed distribution has an "
                f"entry point of that name in the {hookspecs.PROJECT_NAME!r} group",
                PluginWarning,
                stacklevel=2,
            )

    def record(self, name: str) -> PluginRecord | None:
        """The record of the plugin named ``name`` (the first seen: a later distribution
        using the same entry-point name gets a failed record of its own)."""
        return next((r for r in self.records if r.name == name), None)

    def _record_of(self, plugin: object) -> PluginRecord:
        """The record of a registered plugin (every registration goes through a record)."""
        record = self.record(self.pm.get_name(plugin) or "")
        assert record is not None, plugin
        return record

    def _problem(self, record: PluginRecord, message: str) -> None:
        record.problems.append(message)
        warnings.warn(f"sgap_plugins: {record.describe()} {message}", PluginWarning, stacklevel=2)

    def _check_unknown_hooks(self) -> None:
        """Report implementations of hooks that do not exist (usually a typo), as pytest's
        ``check_pending`` does, without rejecting the plugin's other hooks."""
        known = sorted(_KINDS) + ["sgap_framework_adapters"]
        for name, caller in sorted(vars(self.pm.hook).items()):
            if not isinstance(caller, pluggy.HookCaller) or caller.has_spec():
                continue
            for impl in caller.get_hookimpls():
                if not impl.optionalhook:
                    self._problem(
                        self._record_of(impl.plugin),
                        f"implements {name}(), which is not an sgap_plugins hook "
                        f"(known hooks: {', '.join(known)}); it is ignored",
                    )

    def _call_each(self, hook_name: str) -> Iterator[tuple[PluginRecord, list[Any]]]:
        """Call every implementation of a hook separately, so that one raising or returning
        something other than a list is reported and skipped (pluggy's ``hook()`` would stop
        at the first error). Built-ins come first, then plugins in entry-point order."""
        hook = getattr(self.pm.hook, hook_name)
        # get_hookimpls() is in registration order (pluggy *calls* them in reverse), so the
        # built-ins, registered first, keep their names against any plugin.
        for impl in hook.get_hookimpls():
            record = self._record_of(impl.plugin)
            try:
                result = impl.function()
            except Exception as exc:
                self._problem(
                    record,
                    f"raised {type(exc).__name__} in {hook_name}() ({exc}); "
                    "what it registers there is skipped",
                )
                continue
            if result is None:
                continue
            if not isinstance(result, (list, tuple)):
                self._problem(
                    record,
                    f"returned {type(result).__name__} from {hook_name}(), not a list; "
                    "what it registers there is skipped",
                )
                continue
            yield record, list(result)

    # -------------------------------------------------------------- collection
    def _collect_aggregators(self) -> None:
        tables: dict[str, tuple[dict[str, Any], str]] = {
            "sgap_graph_aggregators": (self.graph_aggregators, "graph_aggregators"),
            "sgap_message_aggregators": (self.message_aggregators, "message_aggregators"),
        }
        for hook_name, (kind, base, check) in _KINDS.items():
            table, attr = tables[hook_name]
            for record, result in self._call_each(hook_name):
                for cls in result:
                    problem = _class_problem(cls, base, kind, hook_name)
                    if problem is None and cls.name in table and table[cls.name] is not cls:
                        owner = self._owner[(hook_name, cls.name)]
                        taken = table[cls.name]
                        problem = (
                            f"registers {kind} {cls.name!r} ({_qualname(cls)}), but that name "
                            f"is already taken by {_qualname(taken)} of plugin {owner!r}"
                        )
                    if problem is None and cls.name not in table:
                        try:
                            check(cls)
                        except PluginCheckError as exc:
                            problem = (
                                f"registers {kind} {cls.name!r} ({_qualname(cls)}), which fails "
                                f"its self-check: {exc}"
                            )
                    if problem is not None:
                        self._problem(record, problem + "; it is skipped")
                        continue
                    table[cls.name] = cls
                    self._owner[(hook_name, cls.name)] = record.name
                    getattr(record, attr).append(cls.name)

    def _collect_adapters(self) -> None:
        for record, result in self._call_each("sgap_framework_adapters"):
            for adapter in result:
                name = getattr(adapter, "name", None)
                if not isinstance(adapter, FrameworkAdapter) or not isinstance(name, str):
                    problem = (
                        f"returned {adapter!r} from sgap_framework_adapters(), which is not a "
                        "framework adapter (needs a str name, accepts, to_csr and from_csr)"
                    )
                elif any(a.name == name for a in self.framework_adapters):
                    problem = f"registers framework adapter {name!r}, a name already taken"
                else:
                    self.framework_adapters.append(adapter)
                    record.framework_adapters.append(name)
                    continue
                self._problem(record, problem + "; it is skipped")


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _class_problem(cls: Any, base: type, kind: str, hook_name: str) -> str | None:
    if not isinstance(cls, type) or not issubclass(cls, base) or cls is base:
        return f"returned {cls!r} from {hook_name}(), which is not a subclass of {base.__name__}"
    name = getattr(cls, "name", "")
    if not isinstance(name, str) or not name:
        return f"registers {kind} {_qualname(cls)} without a class attribute `name`"
    return None


def _own_version() -> str | None:
    try:
        return importlib.metadata.version(OWN_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None


_registry: _Registry | None = None
_building = False
_lock = threading.RLock()


def registry() -> _Registry:
    """The process-wide registry, created (and entry points loaded) on first use.

    Plugin modules are imported while it is built, so they may ``from sgap_plugins import
    GraphAggregator, hookimpl``; a plugin that looks the registry up at import time gets a
    :class:`RuntimeError` (look aggregators up when they are used).
    """
    global _registry, _building
    with _lock:
        if _registry is not None:
            return _registry
        if _building:
            raise RuntimeError(
                "a plugin looked up the sgap_plugins registry while plugins were being "
                "loaded; look aggregators up when they are used, not at import time"
            )
        _building = True
        try:
            _registry = _Registry()
        finally:
            _building = False
        return _registry


def reload_plugins() -> None:
    """Forget the loaded plugins; the next look-up loads entry points again (after
    ``importlib.invalidate_caches()``, so distributions installed or removed since are seen).
    """
    global _registry
    with _lock:
        importlib.invalidate_caches()
        _registry = None


def get_plugin_manager() -> pluggy.PluginManager:
    """The ``pluggy.PluginManager`` holding the built-ins and the loaded plugins."""
    return registry().pm


def plugin_records() -> list[PluginRecord]:
    """Every plugin seen: loaded, failed or disabled, with what it registered and its
    problems (in load order, built-ins first)."""
    return list(registry().records)


def graph_aggregator_classes() -> dict[str, type[GraphAggregator]]:
    """Registry name → class of every graph aggregator that passed its self-check."""
    return dict(registry().graph_aggregators)


def message_aggregator_classes() -> dict[str, type[MessageAggregator]]:
    """Registry name → class of every message aggregator that passed its self-check."""
    return dict(registry().message_aggregators)


def framework_adapters() -> list[FrameworkAdapter]:
    """The registered framework adapters (PyG, DGL, third parties') in load order."""
    return list(registry().framework_adapters)


def _unknown(kind: str, name: Any, known: dict[str, Any], argument: str | None) -> ValueError:
    prefix = f"{argument}: " if argument else ""
    disabled = [r for r in registry().records if r.status == "disabled"]
    if disabled:
        # What a disabled plugin registers is unknown without importing it, which the user
        # chose not to; name the candidates and how to enable them.
        names = ", ".join(r.describe() for r in disabled)
        hint = (
            f"; {ENV_VAR}={os.environ.get(ENV_VAR)!r} leaves out the installed {names}: if one "
            f"of them provides {name!r}, add its entry-point name to {ENV_VAR} (or unset it)"
        )
    else:
        hint = " or install a plugin that registers it (see `sgap plugins`)"
    return ValueError(f"{prefix}unknown {kind} {name!r}; choose one of {sorted(known)}{hint}")


def graph_aggregator_class(name: str, argument: str | None = None) -> type[GraphAggregator]:
    """The graph aggregator class registered under ``name``; an unknown name raises a
    :class:`ValueError` listing the registered ones (prefixed by ``argument``, the name of
    the setting that holds ``name``, when given)."""
    classes = registry().graph_aggregators
    if name not in classes:
        raise _unknown("graph aggregator", name, classes, argument)
    return classes[name]


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
    cls = graph_aggregator_class(aggregator)
    try:
        return cls(**params)
    except TypeError as exc:
        raise TypeError(f"bad parameters for graph aggregator {aggregator!r}: {exc}") from None


def message_aggregator_class(name: str, argument: str | None = None) -> type[MessageAggregator]:
    """The message aggregator class registered under ``name``; an unknown name raises a
    :class:`ValueError` listing the registered ones (prefixed by ``argument`` when given)."""
    classes = registry().message_aggregators
    if name not in classes:
        raise _unknown("message aggregator", name, classes, argument)
    return classes[name]
