"""The per-user cache folder: the one place that reads ``SGAP_CACHE``.

Dataset copies (:mod:`sgap_plugins.datasets`), the search's hop store and the compiled
kernels (:mod:`sgap_plugins.ops`) all live under :func:`cache_dir`, read at call time so that
a process (or a test) may point it elsewhere. The kernels alone may be kept apart with
``SGAP_EXTENSIONS_DIR`` (:func:`extensions_dir`): a build is identified by its key, so one
folder of builds can serve any number of caches, and moving the data cache then rebuilds
nothing.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The per-user cache: ``$SGAP_CACHE`` or ``~/.cache/sgap_plugins``."""
    env = os.environ.get("SGAP_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "sgap_plugins"


def extensions_dir() -> Path:
    """Where compiled kernels live: ``$SGAP_EXTENSIONS_DIR``, else ``<cache>/extensions``."""
    env = os.environ.get("SGAP_EXTENSIONS_DIR")
    return Path(env) if env else cache_dir() / "extensions"
