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

A store is keyed by what determines it (the graph's content fingerprint, a hash of the
features, the aggregator's code identity), so a changed graph or an edited plugin
aggregator recomputes it. Stores, labels and the graph are plain ``.npy`` arrays and JSON:
nothing read back from the cache or the output folder is unpickled (:func:`read_array`
refuses a file that holds Python objects).

Objectives of a trial (all minimised):

* ``val_error`` — ``1 − validation accuracy`` (after post-processing);
* ``inference_time`` — seconds **per node** to predict every node of the graph:
  ``(K_pre · t_hop(GA_pre) + t_forward + t_post) / N``, where ``t_hop`` is the measured time
  of one propagation step of the store, ``t_forward`` the batched forward pass over all
  nodes and ``t_post`` the trial's post-processing
  (:meth:`~sgap_plugins.core.model.SGAPModel.postprocess`: ``K_post`` label-propagation
  steps); ``t_hop`` is the fastest of five timed torch-sparse steps, since a mean is
  inflated by whatever else runs on the machine;
* ``train_time`` — seconds of training (all epochs, including validation passes);
* ``peak_memory`` — modelled bytes of full-graph inference: the hops the model reads
  ``(K_pre+1)·N·F·4`` + the parameters + the widest activation ``N·max(width)·4`` +
  ``3·N·C·4`` for post-processing when ``K_post > 0`` (deterministic, unlike process RSS,
  which in a worker is dominated by the shared hop store);
* ``params`` — the number of learnable parameters.
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from filelock import FileLock
from torch import Tensor

from ..config import SGAPConfig
from ..durable_files import write_json_atomic, write_npy_atomic
from ..fingerprint import (
    aggregator_fingerprint,
    aggregator_identity,
    content_hash,
    graph_fingerprint,
)
from ..graph import CSRGraph
from ..graph_aggregators import GraphAggregator
from ..plugins import resolve_graph_aggregator
from ..propagation import propagate
from ..synthetic import NodeDataset
from ..trainer import fit_and_evaluate
from .space import AggregatorChoice

OBJECTIVES = ("val_error", "inference_time", "train_time", "peak_memory", "params")
DEFAULT_MEMORY_BUDGET = 2 << 30  # bytes of fp32 hops kept in RAM per store
STORE_VERSION = 5  # bump when the store layout or its metadata changes
LABEL_ARRAYS = ("y", "train", "val", "test")


class UnsafeCacheError(ValueError):
    """A cache or output file holds pickled Python objects, which loading would run."""


def read_array(path: str | Path, mmap: bool = False) -> np.ndarray:
    """A ``.npy`` file of plain numbers, never unpickled: read into memory, or memory-mapped
    copy-on-write with ``mmap=True`` (writes never reach the file).

    Raises:
        UnsafeCacheError: the file holds Python objects (loading them would execute code
            chosen by whoever wrote the file).
        ValueError: the file is not a ``.npy`` array.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            _, _, dtype = read_header(f)
    except ValueError as exc:
        raise ValueError(f"{path} is not a .npy array ({exc}); delete it to recompute") from exc
    if dtype.hasobject:
        raise UnsafeCacheError(
            f"refusing to load {path}: it holds pickled Python objects (dtype {dtype}), and "
            "loading them would run code chosen by whoever wrote the file; sgap-plugins only "
            "writes plain numeric arrays there. Delete the file (it is recomputed) and check "
            f"who can write to {path.parent}"
        )
    return np.load(path, mmap_mode="c" if mmap else None, allow_pickle=False)


def _save_array(path: Path, value: Tensor | np.ndarray) -> None:
    """``np.save`` without pickling, durably renamed into place."""
    write_npy_atomic(path, value.detach().cpu().numpy() if isinstance(value, Tensor) else value)


def dataset_fingerprint(data: NodeDataset, graph: CSRGraph | None = None) -> str:
    """The cache key of a dataset's hops: its name, the content fingerprint of its graph
    (:func:`~sgap_plugins.core.fingerprint.graph_fingerprint`) and a content hash of its
    features (labels and splits do not enter propagation)."""
    csr = graph if graph is not None else CSRGraph.from_edge_index(data.edge_index, data.num_nodes)
    return f"{data.name}-{graph_fingerprint(csr)[:16]}-{content_hash(data.x, digest_size=8)}"


def split_fingerprint(data: NodeDataset) -> str:
    """A content hash of the labels and the train/validation/test masks: which nodes a model
    is trained, selected and tested on. Two loads of a dataset give the same fingerprint
    exactly when they give the same split (e.g. the same ``split_seed``)."""
    masks = (data.train_mask.bool(), data.val_mask.bool(), data.test_mask.bool())
    return content_hash(data.y.long(), *masks, digest_size=8)


def dataset_record(
    data: NodeDataset, data_root: str | Path | None = None, split_seed: int = 0
) -> dict[str, Any]:
    """What a search records about its dataset (``search.json`` and ``pareto.json``, key
    ``"dataset"``), so that a front member can be retrained on the same graph and split::

        {"name": "cora", "data_root": null, "split_seed": 0,
         "num_nodes": 2708, "split": "<split_fingerprint>"}

    ``name``, ``data_root`` (as given; ``null`` for the default ``$SGAP_DATA_ROOT``) and
    ``split_seed`` are the arguments of :func:`sgap_plugins.datasets.load_dataset` that load
    it again; ``num_nodes`` and ``split`` (:func:`split_fingerprint`) identify what was
    loaded, so a reload with other arguments is detected."""
    return {
        "name": data.name,
        "data_root": None if data_root is None else str(data_root),
        "split_seed": int(split_seed),
        "num_nodes": data.num_nodes,
        "split": split_fingerprint(data),
    }


@dataclass(frozen=True)
class StoreEntry:
    """One propagated graph aggregator on disk: ``[K+1, N, F]`` in ``dtype``.

    Attributes:
        label: the design-space label of the aggregator choice.
        path: the ``.npy`` file of the hops.
        k: hops beyond the features.
        dtype: ``"float32"`` or ``"float16"``.
        shape: ``(K+1, N, F)``.
        hop_seconds: wall time of one propagation step over all ``F`` columns (fp32).
        aggregator: the aggregator's code identity
            (:func:`~sgap_plugins.core.fingerprint.aggregator_identity`) the hops were
            propagated with.
    """

    label: str
    path: str
    k: int
    dtype: str
    shape: tuple[int, int, int]
    hop_seconds: float
    aggregator: str

    def load(self, memory_budget: int = DEFAULT_MEMORY_BUDGET) -> Tensor:
        """The ``[K+1, N, F]`` hops: read into memory when the file fits ``memory_budget``
        bytes, else memory-mapped (copy-on-write, so the file is never modified).

        Raises:
            UnsafeCacheError: the file holds pickled objects.
            ValueError: the file does not hold the ``dtype`` and ``shape`` recorded.
        """
        arr = read_array(self.path, mmap=True)
        if arr.dtype != np.dtype(self.dtype) or arr.shape != self.shape:
            raise ValueError(
                f"{self.path} holds {arr.dtype} {list(arr.shape)}, its store metadata records "
                f"{self.dtype} {list(self.shape)}; delete the store to recompute it"
            )
        if arr.nbytes <= memory_budget:
            arr = np.ascontiguousarray(arr)
        return torch.from_numpy(arr)


class HopStore:
    """Propagated hops of one dataset under several graph aggregators, cached on disk.

    A store is keyed by what determines its contents: the folder by
    :func:`dataset_fingerprint` (graph structure and weights, features), the file by the
    aggregator's code identity (class, parameters, distribution version and source hash,
    :func:`~sgap_plugins.core.fingerprint.aggregator_fingerprint`), so editing a plugin's
    aggregator or changing the graph recomputes instead of reusing stale hops. Everything is
    stored as ``.npy`` arrays and JSON; nothing read back is unpickled.

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
        self.csr = CSRGraph.from_edge_index(data.edge_index, data.num_nodes)
        self.dir = Path(root) / dataset_fingerprint(data, self.csr)
        self.dir.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.dir)!r})"

    def entry(self, choice: AggregatorChoice, k: int) -> StoreEntry:
        """The store of ``choice`` with at least ``k`` hops, propagated now if missing or
        stale.

        Raises:
            UnsafeCacheError: the cached hop file holds pickled objects.
        """
        agg = resolve_graph_aggregator(choice.name, **choice.params)
        key = f"{choice.name}-{aggregator_fingerprint(agg)}"
        meta_path = self.dir / f"{key}.json"
        with FileLock(str(self.dir / f".{key}.lock")):
            stale = None
            cached = self._cached(choice, meta_path)
            if cached is not None:
                stale = Path(cached.path)
                if cached.k >= k and self._intact(cached):
                    return cached
            entry = self._propagate(choice, agg, k, key)
            meta = {
                "version": STORE_VERSION,
                "file": Path(entry.path).name,
                "k": entry.k,
                "dtype": entry.dtype,
                "shape": list(entry.shape),
                "hop_seconds": entry.hop_seconds,
                "aggregator": entry.aggregator,
            }
            write_json_atomic(meta_path, meta)  # the store is valid once its metadata exists
            if stale is not None and stale != Path(entry.path):
                stale.unlink(missing_ok=True)  # a store with fewer hops or another dtype
        return entry

    def _cached(self, choice: AggregatorChoice, meta_path: Path) -> StoreEntry | None:
        """The entry recorded in ``meta_path``, or ``None`` when absent or unreadable (a
        cache entry that cannot be read is recomputed)."""
        if not meta_path.exists():
            return None
        try:
            meta = json.loads(meta_path.read_text())
            if meta.get("version") != STORE_VERSION:
                return None
            return StoreEntry(
                label=choice.label,
                path=str(self.dir / Path(meta["file"]).name),
                k=int(meta["k"]),
                dtype=str(meta["dtype"]),
                shape=tuple(int(v) for v in meta["shape"]),  # type: ignore[arg-type]
                hop_seconds=float(meta["hop_seconds"]),
                aggregator=str(meta["aggregator"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return None

    def _intact(self, entry: StoreEntry) -> bool:
        """Whether the hop file exists with the recorded dtype and shape (a pickled file
        raises :class:`UnsafeCacheError` instead of being silently replaced)."""
        if not Path(entry.path).is_file():
            return False
        try:
            arr = read_array(entry.path, mmap=True)
        except UnsafeCacheError:
            raise
        except ValueError:
            return False
        return arr.dtype == np.dtype(entry.dtype) and arr.shape == entry.shape

    def _propagate(
        self, choice: AggregatorChoice, agg: GraphAggregator, k: int, key: str
    ) -> StoreEntry:
        """Propagate with :func:`~sgap_plugins.core.propagation.propagate` (the fused kernels
        when available): in memory when the store fits the budget, else streamed to disk one
        column block at a time within the budget."""
        x = self.data.x.float()
        n, f = x.shape
        fp16 = (k + 1) * n * f * 4 > self.memory_budget
        dtype = torch.float16 if fp16 else torch.float32
        path = self.dir / f"{key}-k{k}-{'fp16' if fp16 else 'fp32'}.npy"
        # Written next to its final name and renamed into place, so that a process still
        # mapping an older store of the same name keeps reading a consistent file.
        tmp_path = path.with_name(path.name + ".tmp.npy")
        if fp16:
            hops = propagate(
                self.csr, x, k, agg, dtype=dtype, out=tmp_path, memory_budget=self.memory_budget
            )
            del hops  # unmap
            os.replace(tmp_path, path)
        else:
            _save_array(path, propagate(self.csr, x, k, agg, dtype=dtype))
        return StoreEntry(
            label=choice.label,
            path=str(path),
            k=k,
            dtype="float16" if fp16 else "float32",
            shape=(k + 1, n, f),
            hop_seconds=self._hop_seconds(agg, x),
            aggregator=aggregator_identity(agg),
        )

    def _hop_seconds(self, agg: GraphAggregator, x: Tensor, columns: int = 1024) -> float:
        """Seconds of one propagation step ``combine(W m, x)`` over all ``F`` columns with a
        torch sparse CSR matrix: the fastest of five timed steps on a block of ``columns``
        columns, scaled by ``F / columns`` (the step is linear in the width; the minimum is
        robust to other processes on the machine)."""
        w = agg.transition(self.csr).to_torch_csr(torch.float32)
        block = x[:, : min(columns, x.size(1))].contiguous()
        times = []
        for _ in range(5):
            start = time.perf_counter()
            agg.combine(w @ block, block, 1)
            times.append(time.perf_counter() - start)
        return min(times) * x.size(1) / block.size(1)

    def build(
        self, choices: Sequence[AggregatorChoice], k: int, progress: bool = False
    ) -> dict[str, StoreEntry]:
        """Propagate every aggregator of ``choices`` up to ``k`` hops (cached ones are reused)."""
        entries = {}
        for c in choices:
            start = time.perf_counter()
            entries[c.label] = self.entry(c, k)
            if progress:
                # progress is for the terminal; stdout carries the result (``--json``)
                secs = time.perf_counter() - start
                print(f"hops {c.label}: ready in {secs:.1f} s", file=sys.stderr, flush=True)
        return entries


def _checked_labels(arr: np.ndarray, name: str, folder: Path | None = None) -> np.ndarray:
    """``arr`` if it is a 1-D int64 array (labels or node indices), else a ValueError naming
    it (and the context ``folder`` it was read from, which rebuilding fixes)."""
    if arr.dtype != np.int64 or arr.ndim != 1:
        where = f"{folder / f'{name}.npy'}" if folder is not None else f"labels[{name!r}]"
        fix = f"; delete {folder} to rebuild the trial context" if folder is not None else ""
        raise ValueError(
            f"{where} must hold a 1-D int64 array, got {arr.dtype} {list(arr.shape)}{fix}"
        )
    return arr


@dataclass
class TrialContext:
    """Everything a worker needs to evaluate trials: the hop stores, and a folder with the
    graph (for post-processing; :meth:`CSRGraph.save` format) and the labels and splits
    (``y.npy``, ``train.npy``, ``val.npy``, ``test.npy``). Loaded lazily, once per worker;
    only paths travel to the workers. Where workers cannot read the files,
    :meth:`arrays` and :meth:`from_arrays` move the same data as arrays (e.g. through Ray's
    object store, :mod:`~sgap_plugins.core.search.ray_executor`)."""

    entries: dict[str, StoreEntry]
    folder: str
    memory_budget: int = DEFAULT_MEMORY_BUDGET
    _hops: dict[str, Tensor] = field(default_factory=dict, repr=False)
    _graph: CSRGraph | None = field(default=None, repr=False)
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
        """Build the stores of ``choices`` (up to ``k`` hops) and save the graph, labels and
        splits of ``store.data`` under ``folder``."""
        entries = store.build(choices, k, progress)
        data = store.data
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        store.csr.save(folder / "graph")
        arrays = {
            "y": data.y.long(),
            "train": data.train_mask.nonzero().flatten(),
            "val": data.val_mask.nonzero().flatten(),
            "test": data.test_mask.nonzero().flatten(),
        }
        for name, value in arrays.items():
            _save_array(folder / f"{name}.npy", value)
        return cls(
            entries=entries,
            folder=str(folder),
            memory_budget=store.memory_budget if memory_budget is None else memory_budget,
        )

    def __getstate__(self) -> dict[str, Any]:  # ship paths to workers, not tensors
        state = dict(self.__dict__)
        state.update(_hops={}, _graph=None, _labels=None)
        return state

    def arrays(self) -> dict[str, dict[str, np.ndarray]]:
        """The context's files as arrays, memory-mapped (nothing is read until used)::

            {"hops": {label: [K+1, N, F]}, "graph": {"rowptr": [N+1], "col": [E]
             (, "weight": [E])}, "labels": {"y": [N], "train"/"val"/"test": indices}}

        What :meth:`from_arrays` takes, e.g. to ship the context through an object store
        to machines that do not share the files."""
        graph = self.graph()
        return {
            "hops": {label: read_array(e.path, mmap=True) for label, e in self.entries.items()},
            "graph": {
                "rowptr": graph.rowptr.numpy(),
                "col": graph.col.numpy(),
                **({} if graph.weight is None else {"weight": graph.weight.numpy()}),
            },
            "labels": {name: t.numpy() for name, t in self.labels().items()},
        }

    @classmethod
    def from_arrays(
        cls,
        entries: dict[str, StoreEntry],
        arrays: dict[str, dict[str, np.ndarray]],
        memory_budget: int = DEFAULT_MEMORY_BUDGET,
    ) -> TrialContext:
        """A context over arrays in memory (:meth:`arrays`' layout) instead of files, e.g.
        the read-only, zero-copy views Ray's object store hands a worker; the arrays are
        used as they are (never copied, never written: trials only read them). ``entries``
        describe the stores (their ``path`` is not read). Such a context lives in one
        process: pickling it ships paths only (see :meth:`__getstate__`).

        Raises:
            ValueError: a hop array does not match its entry's dtype and shape, or a label
                array is not 1-D int64.
        """
        hops, graph = arrays["hops"], arrays["graph"]
        for label, entry in entries.items():
            arr = hops[label]
            if arr.dtype != np.dtype(entry.dtype) or arr.shape != entry.shape:
                raise ValueError(
                    f"hops {label!r} hold {arr.dtype} {list(arr.shape)}, its store entry "
                    f"records {entry.dtype} {list(entry.shape)}"
                )
        labels = {name: _checked_labels(arrays["labels"][name], name) for name in LABEL_ARRAYS}
        with warnings.catch_warnings():
            # read-only buffers are fine: hops, graph and labels are only ever read
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            weight = graph.get("weight")
            ctx = cls(entries=dict(entries), folder="", memory_budget=memory_budget)
            ctx._hops = {label: torch.from_numpy(hops[label]) for label in entries}
            ctx._graph = CSRGraph(
                torch.from_numpy(graph["rowptr"]),
                torch.from_numpy(graph["col"]),
                None if weight is None else torch.from_numpy(weight),
                len(graph["rowptr"]) - 1,
            )
            ctx._labels = {name: torch.from_numpy(arr) for name, arr in labels.items()}
        return ctx

    def labels(self) -> dict[str, Tensor]:
        """``{"y": [N] int64, "train"/"val"/"test": node indices}``."""
        if self._labels is None:
            folder = Path(self.folder)
            self._labels = {
                name: torch.from_numpy(
                    _checked_labels(read_array(folder / f"{name}.npy"), name, folder)
                )
                for name in LABEL_ARRAYS
            }
        return self._labels

    def graph(self) -> CSRGraph:
        """The graph post-processing propagates over."""
        if self._graph is None:
            self._graph = CSRGraph.load(Path(self.folder) / "graph")
        return self._graph

    def hops(self, label: str) -> Tensor:
        """The ``[K+1, N, F]`` hops of the store labelled ``label``."""
        if label not in self._hops:
            self._hops[label] = self.entries[label].load(self.memory_budget)
        return self._hops[label]


def evaluate_trial(
    ctx: TrialContext, config: SGAPConfig, ga_pre: str, seed: int = 0
) -> dict[str, Any]:
    """Train and evaluate one architecture on cached hops, with the trainer's own pipeline
    (:func:`~sgap_plugins.core.trainer.fit_and_evaluate`: training, inference,
    :meth:`SGAPModel.postprocess <sgap_plugins.core.model.SGAPModel.postprocess>`), so a
    trial's accuracies equal those of :func:`~sgap_plugins.core.trainer.run` for the same
    config and seed.

    Args:
        ctx: the trial context.
        config: the architecture and training hyperparameters.
        ga_pre: the space label of the pre-processing aggregator (it names the store).
        seed: model initialisation, dropout and batch order.

    Returns:
        ``{"objectives": {...all five...}, "val_acc", "test_acc", "train_acc",
        "best_epoch", "epochs_run"}``.
    """
    lab = ctx.labels()
    entry = ctx.entries[ga_pre]
    if config.k_pre > entry.k:
        raise ValueError(f"k_pre={config.k_pre} exceeds the {entry.k} cached hops of {ga_pre}")
    hops = ctx.hops(ga_pre)[: config.k_pre + 1]
    n, f = hops.shape[1:]
    model, result = fit_and_evaluate(
        ctx.graph(), hops, lab["y"], lab["train"], lab["val"], lab["test"], config, seed
    )
    widths = [model.aggregator.out_dim, model.num_classes]
    if config.k_trans > 1:
        widths.append(config.hidden)
    peak = (
        (config.k_pre + 1) * n * f * 4
        + result.num_params * 4
        + n * max(widths) * 4
        + (3 * n * model.num_classes * 4 if config.k_post else 0)
    )
    inference = config.k_pre * entry.hop_seconds + result.inference_s + result.postprocess_s
    return {
        "objectives": {
            "val_error": 1.0 - result.val_acc,
            "inference_time": inference / n,
            "train_time": result.train_s,
            "peak_memory": float(peak),
            "params": float(result.num_params),
        },
        "val_acc": result.val_acc,
        "test_acc": result.test_acc,
        "train_acc": result.train_acc,
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
    }


def evaluate_presets(
    ctx: TrialContext,
    choices: Sequence[AggregatorChoice],
    presets: Mapping[str, SGAPConfig],
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Evaluate named configs (e.g. the presets) on the same hop stores as a search, for
    comparison. A config whose pre-processing aggregator is not among ``choices`` or whose
    ``k_pre`` exceeds the stores is skipped. Returns ``{name: objectives + val_acc + test_acc}``."""
    out: dict[str, dict[str, Any]] = {}
    for name, config in presets.items():
        matching = (c.label for c in choices if c.matches(config.ga_pre, config.ga_pre_params))
        pre = next(matching, None)
        if pre is None or config.k_pre > ctx.entries[pre].k:
            continue
        r = evaluate_trial(ctx, config, pre, seed)
        out[name] = {**r["objectives"], "val_acc": r["val_acc"], "test_acc": r["test_acc"]}
    return out
