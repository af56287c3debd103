"""Training through the DGL adapter gives the model the PyG adapter + core trainer give.

The PyG path is ``sgap_plugins.pyg.SGAPPrecompute`` on a ``Data`` object followed by the core
trainer (:func:`sgap_plugins.core.trainer.run` on the precomputed hops). The DGL path is
``sgap_plugins.dgl.SGAPModel`` trained by an ordinary PyTorch loop over mini-batches of node
ids with the same recipe (Adam, seeded shuffling, early stopping on validation accuracy).
With the same seed both must reach identical weights and accuracy on Cora.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F


def train_dgl(model, g, feat, y, train_idx, val_idx, seed):
    """An ordinary DGL training loop: shuffled mini-batches of training node ids."""
    cfg = model.config
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    best, best_state, best_epoch, since_best = (-1.0, float("inf")), None, 0, 0
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        perm = train_idx[torch.randperm(train_idx.numel(), generator=gen)]
        for batch in perm.split(cfg.batch_size):
            opt.zero_grad()
            F.cross_entropy(model(g, feat, batch), y[batch]).backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            logits = model(g, feat, val_idx)
            acc = float((logits.argmax(-1) == y[val_idx]).float().mean())
            key = (acc, float(F.cross_entropy(logits, y[val_idx])))
        if key[0] > best[0] or (key[0] == best[0] and key[1] < best[1]):
            best, best_epoch, since_best = key, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            since_best += 1
            if since_best >= cfg.patience:
                break
    model.load_state_dict(best_state)
    return best_epoch


@pytest.mark.parametrize(("name", "lr"), [("sgc", 0.2), ("pasca_v3", 0.05)])
def test_same_seed_same_model_through_pyg_and_dgl(dgl, request, name, lr):
    cora = request.getfixturevalue("cora")  # after the DGL check: no load where DGL is absent
    from torch_geometric.data import Data

    from sgap_plugins import preset
    from sgap_plugins.core.trainer import run
    from sgap_plugins.dgl import SGAPModel
    from sgap_plugins.pyg import SGAPPrecompute

    seed = 3
    # 5 batches per epoch; a learning rate that trains in 15 epochs
    config = preset(name, epochs=15, patience=5, batch_size=32, lr=lr)

    data = SGAPPrecompute(config.k_pre, config.ga_pre, hops_attr="hops", **config.ga_pre_params)(
        Data(x=cora.x, edge_index=cora.edge_index)
    )
    core_model, result = run(
        cora.edge_index,
        cora.x,
        cora.y,
        cora.train_mask,
        cora.val_mask,
        cora.test_mask,
        config,
        seed=seed,
        hops=data.hops.transpose(0, 1),  # [N, K+1, F] node-first -> the trainer's [K+1, N, F]
    )

    g = dgl.graph((cora.edge_index[0], cora.edge_index[1]), num_nodes=cora.num_nodes)
    g.ndata["feat"] = cora.x
    train_idx, val_idx, test_idx = (
        m.nonzero().flatten() for m in (cora.train_mask, cora.val_mask, cora.test_mask)
    )
    torch.manual_seed(seed)
    model = SGAPModel(config, cora.x.size(1), int(cora.y.max()) + 1)
    best_epoch = train_dgl(model, g, g.ndata["feat"], cora.y, train_idx, val_idx, seed)
    model.eval()
    with torch.no_grad():
        probs = model.postprocess(g, model(g, g.ndata["feat"]))
    test_acc = float((probs[test_idx].argmax(-1) == cora.y[test_idx]).float().mean())

    assert best_epoch == result.best_epoch
    for key, value in core_model.state_dict().items():
        assert torch.equal(model.net.state_dict()[key], value), key
    assert test_acc == result.test_acc
    assert result.test_acc > 0.5  # a trained model (chance is 1/7), not two identical failures
