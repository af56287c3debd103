"""``sgap plugins``: the loaded plugins, their distributions, what each registers and why any
was rejected."""

from __future__ import annotations

import argparse
import json
import os
import warnings

from ..core import plugins


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "plugins",
        help="list plugins, what they register and their problems",
        description=(
            f"Lists the built-ins and every entry point of the {plugins.hookspecs.PROJECT_NAME!r} "
            f"group. ${plugins.ENV_VAR} selects external plugins: unset loads all, 0 none, "
            "a,b only those entry points."
        ),
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def run(args: argparse.Namespace) -> int:
    with warnings.catch_warnings(record=True) as caught:
        # Every problem is listed below with its plugin, once: not also as a warning.
        warnings.simplefilter("always", plugins.PluginWarning)
        records = plugins.plugin_records()
    listed = {p for r in records for p in r.problems}
    # warnings that belong to no plugin (e.g. SGAP_PLUGINS naming a missing entry point)
    notes = [
        str(w.message)
        for w in caught
        if issubclass(w.category, plugins.PluginWarning)
        and not any(p in str(w.message) for p in listed)
    ]
    selection = os.environ.get(plugins.ENV_VAR)
    if args.json:
        print(
            json.dumps(
                {
                    "sgap_plugins_env": selection,
                    "plugins": [r.as_dict() for r in records],
                    "graph_aggregators": _qualnames(plugins.graph_aggregator_classes()),
                    "message_aggregators": _qualnames(plugins.message_aggregator_classes()),
                    "framework_adapters": [a.name for a in plugins.framework_adapters()],
                    "warnings": notes,
                },
                indent=2,
            )
        )
        return 0
    env = "unset: all plugins load" if selection is None else repr(selection)
    print(f"{plugins.ENV_VAR}: {env}")
    for note in notes:
        print(f"warning: {note}")
    for r in records:
        dist = f"{r.distribution} {r.version or ''}".strip() if r.distribution else "-"
        print(f"\n{r.name}  [{r.status}]  {dist}  ({r.module or '-'})")
        if r.note:
            print(f"  {r.note}")
        registered = (
            ("graph aggregators", r.graph_aggregators),
            ("message aggregators", r.message_aggregators),
            ("framework adapters", r.framework_adapters),
        )
        for label, names in registered:
            if names:
                print(f"  {label}: {', '.join(names)}")
        if r.status == "loaded" and not any(names for _, names in registered):
            print("  registers nothing")
        for problem in r.problems:
            print(f"  problem: {problem}")
    return 0


def _qualnames(classes: dict[str, type]) -> dict[str, str]:
    return {name: f"{c.__module__}.{c.__qualname__}" for name, c in classes.items()}
