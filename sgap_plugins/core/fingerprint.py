"""Content fingerprints: what determines a cached result, hashed.

A cache of propagated hops is valid only for the same graph, the same features and the same
aggregator *code*. The helpers here hash exactly that:

* :func:`content_hash` — dtype, shape and bytes of arrays or tensors (so a different graph
  with the same node and edge counts gets another key);
* :func:`graph_fingerprint` — a :class:`CSRGraph`'s structure and weights;
* :func:`aggregator_identity` — an aggregator's class, parameters, the version of the
  distribution that ships it and a hash of its module's source (so editing a plugin's
  aggregator, even without a version bump, invalidates the caches built with it).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import inspect
import json
import sys
from functools import cache
from typing import Any

import numpy as np
import torch

from .graph import CSRGraph

_CHUNK = 1 << 24  # bytes hashed at a time: no full-size copy of a memory-mapped array


def _update(h: Any, value: torch.Tensor | np.ndarray | None) -> None:
    if value is None:
        h.update(b"<none>")
        return
    arr = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
    h.update(f"{arr.dtype.str}{arr.shape}".encode())
    flat = arr.reshape(-1) if arr.flags.c_contiguous else np.ascontiguousarray(arr).reshape(-1)
    step = max(1, _CHUNK // max(1, flat.itemsize))
    for i in range(0, flat.size, step):
        h.update(np.ascontiguousarray(flat[i : i + step]).view(np.uint8).data)


def content_hash(*values: torch.Tensor | np.ndarray | None, digest_size: int = 16) -> str:
    """Hex BLAKE2b digest of the dtype, shape and contents of each value (``None`` allowed),
    read in chunks so memory-mapped inputs are never copied whole."""
    h = hashlib.blake2b(digest_size=digest_size)
    for value in values:
        _update(h, value)
    return h.hexdigest()


def graph_fingerprint(graph: CSRGraph) -> str:
    """Fingerprint of a graph's structure (``rowptr``, ``col``) and edge weights."""
    h = hashlib.blake2b(digest_size=16)
    h.update(str(graph.num_nodes).encode())
    for value in (graph.rowptr, graph.col, graph.weight):
        _update(h, value)
    return h.hexdigest()


@cache
def _packages_distributions() -> dict[str, list[str]]:
    return dict(importlib.metadata.packages_distributions())  # scans every installed dist


def _module_identity(module_name: str) -> str:
    """``<distribution>==<version>:<source hash>`` of the module that defines a class (not
    cached: a module edited and reloaded in this process must get a new identity)."""
    module = sys.modules.get(module_name)
    try:
        source = inspect.getsource(module) if module is not None else ""
    except (OSError, TypeError):  # built in, or compiled without source
        source = ""
    top = module_name.split(".")[0]
    dists = _packages_distributions().get(top, [])
    versions = []
    for dist in sorted(set(dists)):  # editable installs list theirs twice
        try:
            versions.append(f"{dist}=={importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(dist)
    digest = hashlib.blake2b(source.encode(), digest_size=8).hexdigest()
    return f"{','.join(versions) or top}:{digest}"


def aggregator_identity(aggregator: Any) -> str:
    """What determines an aggregator's output: its class (module and qualified name), its
    ``params``, the distribution version and the source hash of every module in its class
    hierarchy below :class:`object` (a plugin subclassing a built-in inherits its code)."""
    cls = type(aggregator)
    modules = sorted({c.__module__ for c in cls.__mro__ if c is not object})
    params = json.dumps(getattr(aggregator, "params", {}), sort_keys=True, default=repr)
    parts = [f"{cls.__module__}.{cls.__qualname__}", params]
    parts += [f"{m}@{_module_identity(m)}" for m in modules]
    return "|".join(parts)


def aggregator_fingerprint(aggregator: Any) -> str:
    """A short hash of :func:`aggregator_identity`, for file names and cache keys."""
    identity = aggregator_identity(aggregator).encode()
    return hashlib.blake2b(identity, digest_size=8).hexdigest()
