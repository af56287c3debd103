"""The evaluation engine: cached propagation and the objectives of one trial.

Propagation depends only on (graph, features, graph aggregator, K), so every graph
aggregator of a search is propagated **once**, up to ``K_max`` (10 in the paper's space), and
every trial slices ``hops[:K_pre+1]``. The hops are written hop by hop to a ``.npy`` file (a
:class:`HopStore`), so that

* worker processes share them through the operating system's page cache instead of each
  holding a copy, and a second search on the same data reuses them;
* large feature matrices never need ``K+1`` fp32 copies in memory: when
  ``(K+1)·N·F·4`` bytes exceed ``memory_budget`` the store holds **fp16** (half the size;
  row-normalised features keep ~3 significant digits), is propagated out of core (one
  column block at a time, within the budget) and workers **memory-map** it instead of
  loading it (Coauthor Physics: 11 × 34,493 × 8,415 hops are 12.8 GB in fp32, 6.4 GB fp16
  on disk, and only the rows a batch touches are read).

Propagation goes through :func:`~sgap_plugins.core.propagation.propagate`, so the fused
kernels are used when they are available.

Objectives of a trial (all minimised):

* ``val_error`` — ``1 − validation accuracy`` (after post-processing);
* ``inference_time`` — seconds **per node** to predict every node of the graph:
  ``(K_pre · t_hop(GA_pre) + t_forward + t_post) / N``, where ``t_hop`` is the measured time
  of one propagation step of the store, ``t_forward`` the batched forward pass over all
  nodes and ``t_post`` the ``K_post`` label-propagation steps (``t_hop``: the fastest of
  five timed torch-sparse steps, the primitive of post-processing, since a mean is
  inflated by whatever else runs on the machine);
* ``train_time`` — seconds of training (all epochs, including validation passes);
* ``peak_memory`` — modelled bytes of full-graph inference: the hops the model reads
  ``(K_pre+1)·N·F·4`` + the parameters + the widest activation ``N·max(width)·4`` +
  ``3·N·C·4`` for post-processing when ``K_post > 0`` (deterministic, unlike process RSS,
  which in a worker is dominated by the shared hop store);
* ``params`` — the number of learnable parameters.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from filelock import FileLock
from torch import Tensor

from ..config import SGAPConfig
from ..graph import CSRGraph
from ..graph_aggregators import GraphAggregator
from ..model import SGAPModel
from ..plugins import resolve_graph_aggregator
from ..propagation import propagate
from ..synthetic import NodeDataset
from ..trainer import check_logits, predict, predict_batch_size, train_model
from .space import AggregatorChoice

OBJECTIVES = ("val_error", "inference_time", "train_time", "peak_memory", "params")
DEFAULT_MEMORY_BUDGET = 2 << 30  # bytes of fp32 hops kept in RAM per store
STORE_VERSION = 4  # bump when the store layout or its metadata changes


def dataset_fingerprint(data: NodeDataset) -> str:
    """A short content hash of a dataset's graph, features and labels (the cache key)."""
    h = hashlib.blake2b(digest_size=10)
    for t in (data.edge_index, data.x, data.y):
        h.update(str((tuple(t.shape), t.dtype)).encode())
        h.update(t.contiguous().numpy().tobytes())
    return f"{data.name}-{h.hexdigest()}"


@dataclass(frozen=True)
class StoreEntry:
    """One propagated graph aggregator on disk: ``[K+1, N, F]`` in ``dtype``."""

    label: str
    path: str
    k: int
    dtype: str
    shape: tuple[int, int, int]
    hop_seconds: float  # wall time of one propagation step over all F columns (fp32)


class HopStore:
    """Propagated hops of one dataset under several graph aggregators, cached on disk.

    Args:
        root: cache folder; one sub-folder per dataset fingerprint.
        data: the dataset.
        memory_budget: fp32 bytes above which a store is kept in fp16 and memory-mapped.
    """

    def __init__(
        self, root: str | Path, data: NodeDataset, memory_budget: int = DEFAULT_MEMORY_BUDGET
    ) -> None:
        self.data = data
        self.memory_budget = int(memory_budget)
        self.dir = Path(root) / dataset_fingerprint(data)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._csr: CSRGraph | None = None

    @property
    def csr(self) -> CSRGraph:
        if self._csr is None:
            self._csr = CSRGraph.from_edge_index(self.data.edge_index, self.data.num_nodes)
        return self._csr

    @staticmethod
    def _key(choice: AggregatorChoice) -> str:
        params = json.dumps(dict(choice.params), sort_keys=True)
        return f"{choice.name}-{hashlib.blake2b(params.encode(), digest_size=6).hexdigest()}"

    def entry(self, choice: AggregatorChoice, k: int) -> StoreEntry:
        """The store of ``choice`` with at least ``k`` hops, propagated now if missing."""
        key = self._key(choice)
        meta_path = self.dir / f"{key}.json"
        with FileLock(str(self.dir / f".{key}.lock")):
            stale = None
            if meta_path.exists():
                meta = json.loads(meta_path.read_text())
                stale = Path(meta["path"])
                if (
                    meta.pop("version", None) == STORE_VERSION
                    and meta["k"] >= k
                    and Path(meta["path"]).exists()
                ):
                    return StoreEntry(choice.label, **{**meta, "shape": tuple(meta["shape"])})
            meta = self._propagate(choice, k, key)
            tmp = meta_path.with_suffix(".json.tmp")
            tmp.write_text(json.dumps({**meta, "version": STORE_VERSION}))
            os.replace(tmp, meta_path)  # the store is valid only once its metadata exists
            if stale is not None and stale != Path(meta["path"]):
                stale.unlink(missing_ok=True)  # a store with fewer hops or another dtype
        return StoreEntry(choice.label, **{**meta, "shape": tuple(meta["shape"])})

    def _propagate(self, choice: AggregatorChoice, k: int, key: str) -> dict[str, Any]:
        """Propagate with :func:`~sgap_plugins.core.propagation.propagate` (the fused kernels
        when available): in memory when the store fits the budget, else streamed to disk one
        column block at a time within the budget."""
        x = self.data.x.float()
        n, f = x.shape
        fp16 = (k + 1) * n * f * 4 > self.memory_budget
        dtype = torch.float16 if fp16 else torch.float32
        path = self.dir / f"{key}-k{k}-{'fp16' if fp16 else 'fp32'}.npy"
        agg = resolve_graph_aggregator(choice.name, **choice.params)
        # Written next to its final name and renamed into place, so that a process still
        # mapping an older store of the same name keeps reading a consistent file.
        tmp_path = path.with_name(path.name + ".tmp.npy")
        if fp16:
            hops = propagate(
                self.csr, x, k, agg, dtype=dtype, out=tmp_path, memory_budget=self.memory_budget
            )
            del hops  # unmap
        else:
            np.save(tmp_path, propagate(self.csr, x, k, agg, dtype=dtype).numpy())
        os.replace(tmp_path, path)
        torch.save(agg.transition(self.csr), self.dir / f"{key}.transition.pt")
        return {
            "path": str(path),
            "k": k,
            "dtype": "float16" if fp16 else "float32",
            "shape": [k + 1, n, f],
            "hop_seconds": self._hop_seconds(agg, x),
        }

    def _hop_seconds(self, agg: GraphAggregator, x: Tensor, columns: int = 1024) -> float:
        """Seconds of one propagation step ``combine(W m, x)`` over all ``F`` columns with a
        torch sparse CSR matrix (the primitive post-processing uses in a trial): the fastest
        of five timed steps on a block of ``columns`` columns, scaled by ``F / columns``
        (the step is linear in the width; the minimum is robust to other processes on the
        machine)."""
        w = agg.transition(self.csr).to_torch_csr(torch.float32)
        block = x[:, : min(columns, x.size(1))].contiguous()
        times = []
        for _ in range(5):
            start = time.perf_counter()
            agg.combine(w @ block, block, 1)
            times.append(time.perf_counter() - start)
        return min(times) * x.size(1) / block.size(1)

    def transition_path(self, choice: AggregatorChoice) -> Path:
        return self.dir / f"{self._key(choice)}.transition.pt"

    def build(
        self, choices: Sequence[AggregatorChoice], k: int, progress: bool = False
    ) -> dict[str, StoreEntry]:
        """Propagate every aggregator of ``choices`` up to ``k`` hops (cached ones are reused)."""
        entries = {}
        for c in choices:
            start = time.perf_counter()
            entries[c.label] = self.entry(c, k)
            if progress:
                print(f"hops {c.label}: ready in {time.perf_counter() - start:.1f} s", flush=True)
        return entries


def load_hops(entry: StoreEntry, memory_budget: int = DEFAULT_MEMORY_BUDGET) -> Tensor:
    """The ``[K+1, N, F]`` hops of a store: read into memory when the file fits the budget,
    else memory-mapped (copy-on-write, so the file is never modified)."""
    arr = np.load(entry.path, mmap_mode="c")
    if arr.nbytes <= memory_budget:
        arr = np.ascontiguousarray(arr)
    return torch.from_numpy(arr)


@dataclass
class TrialContext:
    """Everything a worker needs to evaluate trials: labels, splits, hop stores and
    post-processing transitions (loaded lazily, once per worker)."""

    entries: dict[str, StoreEntry]
    transitions: dict[str, str]  # label -> path of a saved transition CSRGraph
    labels_path: str
    memory_budget: int = DEFAULT_MEMORY_BUDGET
    _hops: dict[str, Tensor] = field(default_factory=dict, repr=False)
    _trans: dict[str, CSRGraph] = field(default_factory=dict, repr=False)
    _labels: dict[str, Tensor] | None = field(default=None, repr=False)

    @classmethod
    def create(
        cls,
        store: HopStore,
        choices: Sequence[AggregatorChoice],
        k: int,
        folder: str | Path,
        memory_budget: int | None = None,
        progress: bool = False,
    ) -> TrialContext:
        """Build the stores of ``choices`` (up to ``k`` hops) and save the labels and splits
        of ``store.data`` under ``folder``."""
        entries = store.build(choices, k, progress)
        data = store.data
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        labels_path = folder / "labels.pt"
        torch.save(
            {
                "y": data.y.long(),
                "train": data.train_mask.nonzero().flatten(),
                "val": data.val_mask.nonzero().flatten(),
                "test": data.test_mask.nonzero().flatten(),
            },
            labels_path,
        )
        return cls(
            entries=entries,
            transitions={c.label: str(store.transition_path(c)) for c in choices},
            labels_path=str(labels_path),
            memory_budget=store.memory_budget if memory_budget is None else memory_budget,
        )

    def __getstate__(self) -> dict[str, Any]:  # ship paths to workers, not tensors
        state = dict(self.__dict__)
        state.update(_hops={}, _trans={}, _labels=None)
        return state

    def labels(self) -> dict[str, Tensor]:
        if self._labels is None:
            self._labels = torch.load(self.labels_path)
        return self._labels

    def hops(self, label: str) -> Tensor:
        if label not in self._hops:
            self._hops[label] = load_hops(self.entries[label], self.memory_budget)
        return self._hops[label]

    def transition(self, label: str) -> CSRGraph:
        if label not in self._trans:
            self._trans[label] = torch.load(self.transitions[label], weights_only=False)
        return self._trans[label]


def _accuracy(pred: Tensor, y: Tensor) -> float:
    return float((pred == y).float().mean()) if y.numel() else float("nan")


def evaluate_trial(
    ctx: TrialContext, config: SGAPConfig, ga_pre: str, ga_post: str, seed: int = 0
) -> dict[str, Any]:
    """Train and evaluate one architecture on cached hops.

    Args:
        ctx: the trial context.
        config: the architecture and training hyperparameters.
        ga_pre, ga_post: the space labels of the pre- and post-processing aggregators
            (they name the stores and transitions).
        seed: model initialisation, dropout and batch order.

    Returns:
        ``{"objectives": {...all five...}, "val_acc", "test_acc", "train_acc",
        "best_epoch", "epochs_run"}``.
    """
    lab = ctx.labels()
    y = lab["y"]
    entry = ctx.entries[ga_pre]
    if config.k_pre > entry.k:
        raise ValueError(f"k_pre={config.k_pre} exceeds the {entry.k} cached hops of {ga_pre}")
    hops = ctx.hops(ga_pre)[: config.k_pre + 1]
    n, f = hops.shape[1:]
    num_classes = int(y.max()) + 1
    torch.manual_seed(seed)
    model = SGAPModel(config, f, num_classes)
    best_epoch, epochs_run, train_s = train_model(model, hops, y, lab["train"], lab["val"], seed)

    start = time.perf_counter()
    logits = predict(model, hops, predict_batch_size(hops))
    forward_s = time.perf_counter() - start
    check_logits(logits, config)
    start = time.perf_counter()
    probs = torch.softmax(logits.float(), dim=-1)
    if config.k_post:
        agg = resolve_graph_aggregator(config.ga_post, **config.ga_post_params)
        w = ctx.transition(ga_post).to_torch_csr(torch.float32)
        p0 = probs
        for t in range(1, config.k_post + 1):
            probs = agg.combine(w @ probs, p0, t)
    post_s = time.perf_counter() - start
    pred = probs.argmax(-1)

    num_params = sum(p.numel() for p in model.parameters())
    widths = [model.aggregator.out_dim, num_classes]
    if config.k_trans > 1:
        widths.append(config.hidden)
    peak = (
        (config.k_pre + 1) * n * f * 4
        + num_params * 4
        + n * max(widths) * 4
        + (3 * n * num_classes * 4 if config.k_post else 0)
    )
    inference = config.k_pre * entry.hop_seconds + forward_s + post_s
    return {
        "objectives": {
            "val_error": 1.0 - _accuracy(pred[lab["val"]], y[lab["val"]]),
            "inference_time": inference / n,
            "train_time": train_s,
            "peak_memory": float(peak),
            "params": float(num_params),
        },
        "val_acc": _accuracy(pred[lab["val"]], y[lab["val"]]),
        "test_acc": _accuracy(pred[lab["test"]], y[lab["test"]]),
        "train_acc": _accuracy(pred[lab["train"]], y[lab["train"]]),
        "best_epoch": best_epoch,
        "epochs_run": epochs_run,
    }


def evaluate_presets(
    ctx: TrialContext,
    choices: Sequence[AggregatorChoice],
    presets: dict[str, SGAPConfig],
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Evaluate named configs (e.g. the presets) on the same hop stores as a search, for
    comparison. A config whose aggregators are not among ``choices`` or whose ``k_pre``
    exceeds the stores is skipped. Returns ``{name: objectives + val_acc + test_acc}``."""

    def label(name: str, params: dict[str, Any]) -> str | None:
        return next((c.label for c in choices if c.matches(name, params)), None)

    out: dict[str, dict[str, Any]] = {}
    for name, config in presets.items():
        pre = label(config.ga_pre, config.ga_pre_params)
        post = label(config.ga_post, config.ga_post_params) if config.k_post else pre
        if pre is None or post is None or config.k_pre > ctx.entries[pre].k:
            continue
        r = evaluate_trial(ctx, config, pre, post, seed)
        out[name] = {**r["objectives"], "val_acc": r["val_acc"], "test_acc": r["test_acc"]}
    return out
