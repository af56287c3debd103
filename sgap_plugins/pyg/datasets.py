"""Real datasets through PyG's loaders, with the splits of the PaSca paper.

The data root holds PyG's raw layout (``planetoid/Cora/raw``, ``amazon/Photo/raw``,
``coauthor/CS/raw``, …). It may be read-only: the raw files are copied into a writable cache
before a loader writes ``processed/``, so the root itself is never written.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from filelock import FileLock

from ..core.synthetic import NodeDataset, per_class_split

# name -> (folder under the root, PyG class name, PyG dataset name)
DATASETS: dict[str, tuple[str, str, str]] = {
    "cora": ("planetoid", "Planetoid", "Cora"),
    "citeseer": ("planetoid", "Planetoid", "CiteSeer"),
    "computers": ("amazon", "Amazon", "Computers"),
    "photo": ("amazon", "Amazon", "Photo"),
    "cs": ("coauthor", "Coauthor", "CS"),
    "physics": ("coauthor", "Coauthor", "Physics"),
}
# Datasets whose binary features are row-normalised (T.NormalizeFeatures). Amazon's ~260
# words per product would shrink to entries of ~4e-3, which the linear presets can only fit
# with huge Adam steps; kept binary they validate better (docs/results.md).
ROW_NORMALIZED = frozenset({"cora", "citeseer", "cs", "physics"})


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
            "coauthor/CS/raw, ..."
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


def load_pyg_dataset(name: str, root: Path, cache: Path, split_seed: int = 0) -> NodeDataset:
    """Load a real dataset with the splits of the PaSca paper: the public Planetoid split for
    Cora and CiteSeer, 20/30 per class train/validation (rest test, seeded by ``split_seed``)
    for Amazon and Coauthor. Features are float32, row-normalised for the datasets in
    :data:`ROW_NORMALIZED` and left binary for Amazon."""
    import torch_geometric.datasets as pyg_datasets

    folder, cls_name, pyg_name = DATASETS[name]
    loader_root = _writable_copy(root, folder, pyg_name, cache)
    with FileLock(str(loader_root / f".{pyg_name}.process.lock")):
        ds = getattr(pyg_datasets, cls_name)(str(loader_root), pyg_name)
    data = ds[0]
    x = data.x.float()
    if name in ROW_NORMALIZED:
        x = x / x.sum(dim=1, keepdim=True).clamp_min(1e-12)  # T.NormalizeFeatures
    if cls_name == "Planetoid":
        train, val, test = data.train_mask, data.val_mask, data.test_mask
    else:
        train, val, test = per_class_split(data.y, 20, 30, split_seed)
    return NodeDataset(name, data.edge_index, x, data.y.long(), train, val, test)


__all__ = ["DATASETS", "ROW_NORMALIZED", "load_pyg_dataset"]
