"""Dataset names understood by the CLI, the search and the benchmarks."""

from __future__ import annotations

import os
from pathlib import Path

from ._cache import cache_dir
from .core.synthetic import NodeDataset, csbm

__all__ = ["DATASET_NAMES", "REAL_DATASETS", "cache_dir", "default_data_root", "load_dataset"]

REAL_DATASETS = ("cora", "citeseer", "computers", "photo", "cs", "physics")
DATASET_NAMES = ("csbm", *REAL_DATASETS)


def default_data_root() -> Path:
    """``$SGAP_DATA_ROOT``, else ``<cache>/data``."""
    env = os.environ.get("SGAP_DATA_ROOT")
    return Path(env) if env else cache_dir() / "data"


def load_dataset(
    name: str, data_root: str | Path | None = None, split_seed: int = 0
) -> NodeDataset:
    """Load ``csbm`` (built-in, seeded by ``split_seed``) or a real dataset (needs PyG)."""
    key = name.lower()
    if key == "csbm":
        return csbm(seed=split_seed)
    if key not in REAL_DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {list(DATASET_NAMES)}")
    try:
        from .pyg.datasets import load_pyg_dataset
    except ImportError as exc:
        raise ImportError(
            f"dataset {name!r} is read with PyTorch Geometric's loaders: "
            "pip install 'sgap-plugins[pyg]'"
        ) from exc
    root = Path(data_root) if data_root is not None else default_data_root()
    return load_pyg_dataset(key, root, cache_dir() / "datasets", split_seed)
