"""Real datasets through PyG's loaders, with the splits of the PaSca paper and the published
splits of the heterophily benchmarks.

The data root holds PyG's raw layout (``planetoid/Cora/raw``, ``amazon/Photo/raw``,
``coauthor/CS/raw``, ``webkb/texas/raw``, ``actor/raw``, ``heterophilous/tolokers/raw``, …).
It may be read-only: the raw files are copied into a writable cache before a loader writes
``processed/``, so the root itself is never written, and nothing is ever downloaded.

Heterophily sets (:data:`PUBLISHED_SPLITS`) come with 10 published train/validation/test
splits each; ``split_seed`` ``s ∈ {0, …, 9}`` picks split ``s``:

* ``texas``, ``cornell``, ``wisconsin`` (PyG ``WebKB``) and ``actor`` (PyG ``Actor``): the
  Geom-GCN files ``<name>_split_0.6_0.2_{s}.npz`` (48 / 32 / 20 % of the nodes);
* ``tolokers``, ``minesweeper`` (PyG ``HeterophilousGraphDataset``) and
  ``chameleon_filtered``, ``squirrel_filtered`` (no PyG loader: their ``.npz`` is read with
  numpy): row ``s`` of ``train_masks`` / ``val_masks`` / ``test_masks`` of Platonov et al.'s
  files (50 / 25 / 25 % for Tolokers and Minesweeper).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch
from filelock import FileLock
from torch import Tensor

from ..core.synthetic import NodeDataset, per_class_split

# name -> (folder under the root, PyG class name, PyG dataset name)
DATASETS: dict[str, tuple[str, str, str]] = {
    "cora": ("planetoid", "Planetoid", "Cora"),
    "citeseer": ("planetoid", "Planetoid", "CiteSeer"),
    "computers": ("amazon", "Amazon", "Computers"),
    "photo": ("amazon", "Amazon", "Photo"),
    "cs": ("coauthor", "Coauthor", "CS"),
    "physics": ("coauthor", "Coauthor", "Physics"),
    # PyG's Actor takes no name: its raw files sit in <root>/actor/raw
    "actor": ("", "Actor", "actor"),
    "texas": ("webkb", "WebKB", "texas"),
    "cornell": ("webkb", "WebKB", "cornell"),
    "wisconsin": ("webkb", "WebKB", "wisconsin"),
    "tolokers": ("heterophilous", "HeterophilousGraphDataset", "tolokers"),
    "minesweeper": ("heterophilous", "HeterophilousGraphDataset", "minesweeper"),
}
# Platonov et al.'s filtered Wikipedia graphs: no PyG loader reads them (PyG's
# WikipediaNetwork is the unfiltered Geom-GCN version), so their npz is read with numpy.
# name -> folder under the root (the file is <folder>/<name>/raw/<name>.npz)
NPZ_DATASETS: dict[str, str] = {
    "chameleon_filtered": "heterophilous",
    "squirrel_filtered": "heterophilous",
}
# Datasets whose binary features are row-normalised (T.NormalizeFeatures). Amazon's ~260
# words per product would shrink to entries of ~4e-3, which the linear presets can only fit
# with huge Adam steps; kept binary they validate better (docs/results.md). The Geom-GCN
# sets are row-normalised as Geom-GCN's own pipeline does (its preprocess_features); the
# sets of Platonov et al. keep their raw features, as their pipeline does.
ROW_NORMALIZED = frozenset(
    {"cora", "citeseer", "cs", "physics", "actor", "texas", "cornell", "wisconsin"}
)
# Datasets that come with published splits (split_seed picks one).
PUBLISHED_SPLITS = frozenset(
    {"actor", "texas", "cornell", "wisconsin", "tolokers", "minesweeper", *NPZ_DATASETS}
)
NUM_PUBLISHED_SPLITS = 10


def _writable_copy(root: Path, folder: str, name: str, cache: Path) -> Path:
    """Copy ``root/folder/name/raw`` into ``cache/folder/name/raw`` (once) and return
    ``cache/folder``, the root to hand to the PyG loader."""
    src = root / folder / name / "raw"
    dst_root = cache / folder
    if root.resolve() == cache.resolve():
        return dst_root
    if not src.is_dir():
        raise FileNotFoundError(
            f"dataset {name!r} not found: expected PyG's raw files in {src}. Point --data-root "
            "(or $SGAP_DATA_ROOT) at a folder laid out as planetoid/Cora/raw, amazon/Photo/raw, "
            "coauthor/CS/raw, webkb/texas/raw, actor/raw, heterophilous/tolokers/raw, ..."
        )
    dst = dst_root / name / "raw"
    dst_root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(dst_root / f".{name}.lock")):
        for f in src.iterdir():
            target = dst / f.name
            if not target.exists() or target.stat().st_size != f.stat().st_size:
                dst.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f, target)
    return dst_root


def _check_split_seed(name: str, split_seed: int) -> None:
    if not 0 <= split_seed < NUM_PUBLISHED_SPLITS:
        raise ValueError(
            f"split_seed={split_seed} for {name!r}: this dataset has {NUM_PUBLISHED_SPLITS} "
            f"published splits, chosen by split_seed 0-{NUM_PUBLISHED_SPLITS - 1} "
            "(--split-seed); seeds beyond them would silently repeat a split"
        )


def _published_split(
    masks: tuple[Tensor, Tensor, Tensor], split_seed: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Column ``split_seed`` of PyG's ``[N, 10]`` train/validation/test masks."""
    train, val, test = (m[:, split_seed].bool().contiguous() for m in masks)
    return train, val, test


def _load_npz(name: str, root: Path, split_seed: int) -> NodeDataset:
    """A dataset of Platonov et al.'s format (keys ``node_features`` ``[N, F]``,
    ``node_labels`` ``[N]``, ``edges`` ``[E, 2]`` one row per undirected edge,
    ``train_masks`` / ``val_masks`` / ``test_masks`` ``[10, N]``), read with numpy. Edges are
    made undirected as their pipeline does (``dgl.to_bidirected``)."""
    from torch_geometric.utils import to_undirected

    path = root / NPZ_DATASETS[name] / name / "raw" / f"{name}.npz"
    if not path.is_file():
        raise FileNotFoundError(
            f"dataset {name!r} not found: expected {path} (Platonov et al.'s npz). Point "
            "--data-root (or $SGAP_DATA_ROOT) at a folder laid out as heterophilous/<name>/raw"
        )
    with np.load(path, allow_pickle=False) as raw:
        x = torch.from_numpy(raw["node_features"]).float()
        y = torch.from_numpy(raw["node_labels"]).long()
        edges = torch.from_numpy(raw["edges"]).long()
        train, val, test = (
            torch.from_numpy(raw[f"{k}_masks"][split_seed]).bool() for k in ("train", "val", "test")
        )
    edge_index = to_undirected(edges.t().contiguous(), num_nodes=x.size(0))
    return NodeDataset(name, edge_index, x, y, train, val, test)


def load_pyg_dataset(name: str, root: Path, cache: Path, split_seed: int = 0) -> NodeDataset:
    """Load a real dataset.

    Splits: the public Planetoid split for Cora and CiteSeer; 20/30 per class
    train/validation (rest test, seeded by ``split_seed``) for Amazon and Coauthor (the
    PaSca paper); published split number ``split_seed`` (0–9) for the heterophily sets
    (:data:`PUBLISHED_SPLITS`). Features are float32, row-normalised for the datasets in
    :data:`ROW_NORMALIZED`, else as stored. Edges are made undirected for the heterophily
    sets (Geom-GCN's edge files list directed hyperlinks; see ``docs/quickstart.rst``).

    Raises:
        ValueError: ``split_seed`` is outside 0–9 for a dataset with published splits.
    """
    import torch_geometric.datasets as pyg_datasets
    from torch_geometric.utils import to_undirected

    if name in PUBLISHED_SPLITS:
        _check_split_seed(name, split_seed)
    if name in NPZ_DATASETS:
        return _load_npz(name, root, split_seed)
    folder, cls_name, pyg_name = DATASETS[name]
    loader_root = _writable_copy(root, folder, pyg_name, cache)
    with FileLock(str(loader_root / f".{pyg_name}.process.lock")):
        if cls_name == "Actor":
            ds = pyg_datasets.Actor(str(loader_root / pyg_name))
        else:
            ds = getattr(pyg_datasets, cls_name)(str(loader_root), pyg_name)
    data = ds[0]
    x = data.x.float()
    if name in ROW_NORMALIZED:
        x = x / x.sum(dim=1, keepdim=True).clamp_min(1e-12)  # T.NormalizeFeatures
    edge_index = data.edge_index
    if cls_name == "Planetoid":
        train, val, test = data.train_mask, data.val_mask, data.test_mask
    elif name in PUBLISHED_SPLITS:
        train, val, test = _published_split(
            (data.train_mask, data.val_mask, data.test_mask), split_seed
        )
        # WebKB and Actor keep Geom-GCN's directed hyperlinks (HeterophilousGraphDataset is
        # already undirected); propagation runs along in-edges, so a page nothing links to
        # would see only itself. Undirected, as Platonov et al. and most later work use them.
        edge_index = to_undirected(edge_index, num_nodes=x.size(0))
    else:
        train, val, test = per_class_split(data.y, 20, 30, split_seed)
    return NodeDataset(name, edge_index, x, data.y.long(), train, val, test)


__all__ = [
    "DATASETS",
    "NPZ_DATASETS",
    "NUM_PUBLISHED_SPLITS",
    "PUBLISHED_SPLITS",
    "ROW_NORMALIZED",
    "load_pyg_dataset",
]
