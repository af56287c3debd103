"""Sphinx configuration of the sgap-plugins documentation (``make docs``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# The DGL adapter is imported by autodoc; DGL needs its backend chosen before import.
os.environ.setdefault("DGLBACKEND", "pytorch")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

project = "sgap-plugins"
author = "sgap-plugins developers"
copyright = "2026, sgap-plugins developers"

try:
    from sgap_plugins import __version__ as release
except Exception:  # noqa: BLE001 - the docs still build from the sources
    release = "0.1.0"
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "myst_parser",  # docs/results.md
]

templates_path: list[str] = []
# benchmarks/*.md are fragments of the benchmark scripts' output, read on GitHub
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "benchmarks/*.md"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"

autodoc_default_options = {
    "members": True,
    "show-inheritance": True,
}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_class_signature = "mixed"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

html_theme = "alabaster"
html_theme_options = {
    "description": "Scalable decoupled GNNs (SGAP) and PaSca search for PyG and DGL",
    "fixed_sidebar": True,
}
html_static_path: list[str] = []
