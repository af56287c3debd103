"""The real-data loader against PyG's own datasets: features and the PaSca splits."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("torch_geometric")
import torch_geometric.transforms as T  # noqa: E402
from torch_geometric.datasets import Amazon, Planetoid  # noqa: E402

from sgap_plugins.datasets import load_dataset  # noqa: E402
from sgap_plugins.pyg.datasets import _writable_copy  # noqa: E402


def test_planetoid_features_row_normalised_with_public_split(data_root: Path, tmp_path: Path):
    ours = load_dataset("citeseer", data_root)
    root = _writable_copy(data_root, "planetoid", "CiteSeer", tmp_path)
    ref = Planetoid(str(root), "CiteSeer", transform=T.NormalizeFeatures())[0]
    torch.testing.assert_close(ours.x, ref.x)
    assert torch.equal(ours.edge_index, ref.edge_index)
    for name in ("train_mask", "val_mask", "test_mask"):
        assert torch.equal(getattr(ours, name), getattr(ref, name))


def test_amazon_features_stay_binary_with_per_class_split(data_root: Path, tmp_path: Path):
    ours = load_dataset("photo", data_root, split_seed=3)
    root = _writable_copy(data_root, "amazon", "Photo", tmp_path)
    ref = Amazon(str(root), "Photo")[0]
    assert torch.equal(ours.x, ref.x.float())
    assert set(ours.x.unique().tolist()) == {0.0, 1.0}
    counts = torch.bincount(ours.y[ours.train_mask])
    assert counts.tolist() == [20] * int(ref.y.max() + 1)
    assert torch.bincount(ours.y[ours.val_mask]).tolist() == [30] * int(ref.y.max() + 1)
    masks = torch.stack([ours.train_mask, ours.val_mask, ours.test_mask]).int()
    assert torch.equal(masks.sum(0), torch.ones(ref.num_nodes, dtype=torch.int))
    other = load_dataset("photo", data_root, split_seed=4)
    assert not torch.equal(other.train_mask, ours.train_mask)
