"""Mini-batch training and evaluation over precomputed hops.

Training touches no graph: each step gathers the hop rows ``[B, K+1, F]`` of a batch of
training nodes. Timings of the four SGAP stages are reported separately.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .config import SGAPConfig
from .graph import CSRGraph
from .model import SGAPModel
from .plugins import message_aggregator_class
from .propagation import as_csr_graph, check_features, propagate_csr


@dataclass
class TrainResult:
    """Accuracies (fractions in ``[0, 1]``) and per-stage wall times (seconds)."""

    train_acc: float
    val_acc: float
    test_acc: float
    best_epoch: int
    epochs_run: int
    precompute_s: float
    train_s: float
    inference_s: float
    postprocess_s: float
    num_params: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _index(mask: Tensor, name: str, num_nodes: int) -> Tensor:
    if not isinstance(mask, Tensor):
        raise TypeError(f"{name} must be a boolean mask or an index tensor")
    if mask.dtype == torch.bool:
        if mask.numel() != num_nodes:
            raise ValueError(f"{name} has {mask.numel()} entries, expected num_nodes={num_nodes}")
        return mask.nonzero().flatten()
    idx = mask.long().flatten()
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= num_nodes):
        raise ValueError(f"{name} holds node ids outside [0, {num_nodes})")
    return idx


def gather_hops(hops: Tensor, idx: Tensor) -> Tensor:
    """Rows ``idx`` of a ``[K+1, N, F]`` hop tensor as a ``[B, K+1, F]`` float batch."""
    return hops[:, idx].transpose(0, 1).float()


def predict_batch_size(hops: Tensor, budget_bytes: int = 256 << 20) -> int:
    """Rows per inference batch so that one fp32 batch ``[B, K+1, F]`` stays within
    ``budget_bytes`` (default 256 MiB; hops with many features or hops would otherwise be
    converted to fp32 all at once)."""
    row_bytes = max(1, hops.size(0) * hops.size(2) * 4)
    return max(1, budget_bytes // row_bytes)


@torch.no_grad()
def predict(model: SGAPModel, hops: Tensor, batch_size: int = 65_536) -> Tensor:
    """Logits ``[N, C]`` for every node, computed in batches."""
    model.eval()
    n = hops.size(1)
    out = [
        model(gather_hops(hops, torch.arange(s, min(s + batch_size, n), device=hops.device)))
        for s in range(0, n, batch_size)
    ]
    return torch.cat(out) if out else hops.new_zeros((0, model.num_classes))


def check_logits(logits: Tensor, config: SGAPConfig) -> None:
    """Raise :class:`FloatingPointError` when some rows of ``logits`` ``[N, C]`` are not
    finite: softmax and post-processing would spread NaN to their neighbours."""
    bad = int((~torch.isfinite(logits)).any(dim=1).sum())
    if bad:
        raise FloatingPointError(
            f"the trained model's logits are not finite for {bad} of {logits.size(0)} nodes "
            f"(its weights or those nodes' features are too large); lower lr "
            f"(config.lr={config.lr}) or rescale the features"
        )


def accuracy(scores: Tensor, y: Tensor) -> float:
    """Fraction of rows of ``scores`` ``[B, C]`` (logits or probabilities) whose arg-max is
    the label ``y`` ``[B]``; NaN for an empty batch."""
    if y.numel() == 0:
        return float("nan")
    return float((scores.argmax(-1) == y).float().mean())


def train_model(
    model: SGAPModel,
    hops: Tensor,
    y: Tensor,
    train_idx: Tensor,
    val_idx: Tensor,
    seed: int = 0,
) -> tuple[int, int, float]:
    """Train ``model`` in place with Adam and early stopping on validation accuracy (ties
    broken by validation loss); restores the best weights. Returns ``(best_epoch,
    epochs_run, seconds)``.

    Raises:
        FloatingPointError: the model diverged: its validation loss became NaN or infinite
            (the step size is too large for the features' scale).
    """
    cfg = model.config
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    val_hops = gather_hops(hops, val_idx)
    y_val = y[val_idx]
    best = (-1.0, float("inf"))
    best_state, best_epoch, since_best, epoch = None, 0, 0, 0
    start = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        perm = train_idx[torch.randperm(train_idx.numel(), generator=gen)]
        for s in range(0, perm.numel(), cfg.batch_size):
            batch = perm[s : s + cfg.batch_size]
            opt.zero_grad()
            loss = F.cross_entropy(model(gather_hops(hops, batch)), y[batch])
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            logits = model(val_hops)
            key = (accuracy(logits, y_val), float(F.cross_entropy(logits, y_val)))
        # Checked on the validation loss the epoch computes anyway (no extra device sync per
        # step): once a step has made the weights inf/NaN, every later output is NaN too.
        if not math.isfinite(key[1]):
            raise FloatingPointError(
                f"training diverged: the validation loss is {key[1]} at epoch {epoch}; lower "
                f"lr (config.lr={cfg.lr}) or rescale the features"
            )
        if key[0] > best[0] or (key[0] == best[0] and key[1] < best[1]):
            best, best_epoch, since_best = key, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            since_best += 1
            if since_best >= cfg.patience:
                break
    seconds = time.perf_counter() - start
    if best_state is not None:
        model.load_state_dict(best_state)
    return best_epoch, epoch, seconds


def run(
    graph: Any,
    x: Tensor,
    y: Tensor,
    train_mask: Tensor,
    val_mask: Tensor,
    test_mask: Tensor,
    config: SGAPConfig,
    seed: int = 0,
    hops: Tensor | None = None,
) -> tuple[SGAPModel, TrainResult]:
    """The full SGAP pipeline: precompute → train → infer → post-process.

    Args:
        graph: anything :func:`~sgap_plugins.propagate` accepts.
        x: features ``[N, F]``.
        y: labels ``[N]`` (int64).
        train_mask, val_mask, test_mask: boolean masks ``[N]`` or index tensors.
        config: the architecture and training hyperparameters.
        seed: seeds model initialisation, dropout and batch order.
        hops: precomputed ``[K+1, N, F]`` hops with ``K >= config.k_pre`` (sliced), to skip
            propagation (``precompute_s`` is then 0).

    Raises:
        FloatingPointError: training diverged, or the trained model's logits are not finite
            for some nodes (instead of NaN predictions).
    """
    csr: CSRGraph = as_csr_graph(graph, x.size(0) if isinstance(graph, Tensor) else None)
    n = csr.num_nodes
    x = check_features(x, n)
    if not isinstance(y, Tensor) or y.dim() != 1 or y.numel() != n:
        raise ValueError(f"y must be a 1-D label tensor with num_nodes={n} entries")
    y = y.long()
    train_idx, val_idx, test_idx = (
        _index(m, name, n)
        for m, name in (
            (train_mask, "train_mask"),
            (val_mask, "val_mask"),
            (test_mask, "test_mask"),
        )
    )
    if train_idx.numel() == 0:
        raise ValueError("train_mask selects no node")
    num_classes = int(y.max()) + 1

    precompute_s = 0.0
    if hops is None:
        start = time.perf_counter()
        # Name errors of the model's settings before the (possibly long) propagation.
        message_aggregator_class(config.ma, argument="ma")
        agg = config.pre_aggregator()
        hops = propagate_csr(csr, agg, x, config.k_pre)
        precompute_s = time.perf_counter() - start
    elif hops.dim() != 3 or hops.size(0) < config.k_pre + 1 or hops.shape[1:] != x.shape:
        raise ValueError(
            f"hops must have shape [>= k_pre+1={config.k_pre + 1}, N, F], got {list(hops.shape)}"
        )
    hops = hops[: config.k_pre + 1]

    model, result = fit_and_evaluate(
        csr, hops, y, train_idx, val_idx, test_idx, config, seed, num_classes
    )
    result.precompute_s = precompute_s
    return model, result


def fit_and_evaluate(
    graph: CSRGraph | None,
    hops: Tensor,
    y: Tensor,
    train_idx: Tensor,
    val_idx: Tensor,
    test_idx: Tensor,
    config: SGAPConfig,
    seed: int = 0,
    num_classes: int | None = None,
) -> tuple[SGAPModel, TrainResult]:
    """Train → infer → post-process on precomputed hops: the part of :func:`run` after
    propagation, shared with the architecture search (no input validation; ``precompute_s``
    of the result is 0).

    Args:
        graph: the graph post-processing propagates over; ``None`` when ``config.k_post``
            is 0 (e.g. hops of selected rows only, read from a precompute folder).
        hops: ``[K_pre+1, N, F]`` hops (any float dtype; batches are gathered as fp32).
        y: labels ``[N]`` (int64).
        train_idx, val_idx, test_idx: node indices.
        config: the architecture and training hyperparameters.
        seed: seeds model initialisation, dropout and batch order.
        num_classes: ``C`` (default ``max(y) + 1``).

    Returns:
        The trained model (best validation weights) and its :class:`TrainResult`.

    Raises:
        FloatingPointError: training diverged, or the logits are not finite for some nodes.
    """
    if graph is None and config.k_post > 0:
        raise ValueError(
            f"k_post={config.k_post} post-processes predictions over the graph, but graph is "
            "None; pass the graph, or a config with k_post=0"
        )
    if num_classes is None:
        num_classes = int(y.max()) + 1
    torch.manual_seed(seed)
    model = SGAPModel(config, hops.size(2), num_classes)
    best_epoch, epochs_run, train_s = train_model(model, hops, y, train_idx, val_idx, seed)

    start = time.perf_counter()
    logits = predict(model, hops, predict_batch_size(hops))
    inference_s = time.perf_counter() - start
    check_logits(logits, config)
    start = time.perf_counter()
    probs = model.postprocess(graph, logits)
    postprocess_s = time.perf_counter() - start

    result = TrainResult(
        train_acc=accuracy(probs[train_idx], y[train_idx]),
        val_acc=accuracy(probs[val_idx], y[val_idx]),
        test_acc=accuracy(probs[test_idx], y[test_idx]),
        best_epoch=best_epoch,
        epochs_run=epochs_run,
        precompute_s=0.0,
        train_s=train_s,
        inference_s=inference_s,
        postprocess_s=postprocess_s,
        num_params=sum(p.numel() for p in model.parameters()),
    )
    return model, result
