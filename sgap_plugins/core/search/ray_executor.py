"""Search trials as Ray tasks: :class:`RayExecutor`.

Each trial is one Ray task (``num_cpus=1``, one torch thread) running the trial function on
the search's :class:`~sgap_plugins.core.search.evaluation.TrialContext`; the driver (the
search engine's process) proposes, records every outcome in ``trials.jsonl`` and resumes
exactly as with the local process pool.

**The hop stores are computed once**, by ``prepare()`` on the driver, and shared:

* ``share="path"`` (default): the tasks receive the context, i.e. paths to the memory-mapped
  ``.npy`` stores in ``$SGAP_CACHE/hops`` and to ``<out>/context``; right on one machine,
  and on a cluster whose nodes share that storage (NFS, a parallel file system).
* ``share="object_store"``: the driver reads the stores, the graph and the labels once into
  Ray's object store (:meth:`TrialContext.arrays
  <sgap_plugins.core.search.evaluation.TrialContext.arrays>`); a worker maps them
  read-only and zero-copy (:meth:`TrialContext.from_arrays
  <sgap_plugins.core.search.evaluation.TrialContext.from_arrays>`): for a cluster without
  shared storage. The object store must hold them all (a local runtime is sized for it).

Either way a worker process builds its context on its first trial and keeps it for the
next ones; it never propagates.

**Failures.** A trial that raises is a failed trial (``retry_exceptions=False``). A worker
process that dies (killed, out of memory, a crash in an extension) costs only its trial,
which Ray **retries once** on a fresh worker (``max_retries=1``; the trial is seeded, so
the retry computes the same result); a second death records the trial as failed. A trial
still unfinished ``trial_timeout`` seconds after it was submitted (retry included) is
cancelled (its worker killed) and recorded as failed. :meth:`RayExecutor.wait` never
raises for a trial.

**Capacity.** ``workers`` trials run at once, whatever the cluster's size: it is also the
engine's proposal lag, so a seeded search proposes the same points on any cluster (and on
the local process pool with as many workers).
"""

from __future__ import annotations

import logging
import math
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .evaluation import TrialContext, evaluate_trial
from .executors import TrialFn, TrialJob, TrialOutcome, run_trial

if TYPE_CHECKING:
    from types import ModuleType

SHARE_MODES = ("path", "object_store")
PROBE_TIMEOUT = 5.0  # seconds to open a TCP connection to a cluster's GCS port
OBJECT_STORE_BASE = 128 << 20  # bytes of a local runtime's object store beyond the context
RAY_MISSING = "RayExecutor needs Ray: pip install 'sgap-plugins[ray]'"


class RayNotInstalledError(ImportError):
    """Ray is not installed (``pip install 'sgap-plugins[ray]'``)."""


class RayUnreachableError(ConnectionError):
    """No Ray cluster answers at the given address.

    Attributes:
        address: the address as given.
        reason: what went wrong, e.g. ``"connection refused"``.
    """

    def __init__(self, address: str, reason: str) -> None:
        self.address = address
        self.reason = reason
        super().__init__(
            f"no Ray cluster at address={address!r} ({reason}); start one with `ray start "
            "--head` (and `ray start --address HEAD:PORT` on the other machines), or leave "
            "the address out for a local Ray runtime"
        )


def import_ray() -> ModuleType:
    """``import ray``, or :class:`RayNotInstalledError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise RayNotInstalledError(RAY_MISSING) from None
    return ray


# ---------------------------------------------------------------------- worker side
# The context of the current search in this worker process, keyed by the search's token:
# built on the process's first trial, reused by the next ones (Ray reuses worker processes).
_CONTEXT: dict[str, tuple[TrialFn, TrialContext]] = {}


def _load_context(token: str, refs: list[Any]) -> tuple[TrialFn, TrialContext]:
    """Fetch and build this search's context once per worker process; ``refs[0]`` is the
    object reference of ``(trial_fn, context or arrays)``, nested in a list so that Ray
    does not resolve it for every task."""
    if token not in _CONTEXT:
        import ray
        import torch

        from ..plugins import registry

        torch.set_num_threads(1)  # one CPU per task
        registry()  # plugin aggregators resolve by name
        trial_fn, shared = ray.get(refs[0])
        if isinstance(shared, TrialContext):
            paths = [Path(shared.folder), *(Path(e.path) for e in shared.entries.values())]
            missing = [str(p) for p in paths if not p.exists()]
            if missing:
                raise FileNotFoundError(f"{', '.join(missing)} not found")
            ctx = shared
        else:
            ctx = TrialContext.from_arrays(shared["entries"], shared, shared["memory_budget"])
        _CONTEXT.clear()  # one search per process: drop a previous search's arrays
        _CONTEXT[token] = (trial_fn, ctx)
    return _CONTEXT[token]


def _run_task(token: str, refs: list[Any], job: TrialJob) -> TrialOutcome:
    """The Ray task: one trial. A context that cannot be loaded (e.g. the hop store paths
    are not visible on this node) is a failed trial saying what to do."""
    start = time.perf_counter()
    try:
        trial_fn, ctx = _load_context(token, refs)
    except Exception as exc:  # noqa: BLE001 - recorded as a failed trial
        error = (
            f"cannot load the trial context on {socket.gethostname()}: {type(exc).__name__}: "
            f"{exc}; with share='path' every Ray node must see the hop stores and the "
            "output folder (shared storage), otherwise use share='object_store' "
            "(--ray-share object-store)"
        )
        return TrialOutcome(job.trial, "fail", None, error, time.perf_counter() - start)
    return run_trial(trial_fn, ctx, job)


# ---------------------------------------------------------------------- driver side
def _probe(address: str) -> None:
    """Fail fast when nothing listens at ``HOST:PORT`` (``ray.init`` would retry for
    minutes). Raises :class:`RayUnreachableError`."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise RayUnreachableError(address, "expected 'auto' or HOST:PORT")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_TIMEOUT):
            pass
    except TimeoutError:
        raise RayUnreachableError(address, f"no answer within {PROBE_TIMEOUT:g} s") from None
    except OSError as exc:
        raise RayUnreachableError(address, exc.strerror or str(exc)) from None


class RayExecutor:
    """Trials as Ray tasks on a Ray cluster, or on a local Ray runtime it starts.

    Args:
        workers: trials run at once (the engine's proposal lag, see the module docstring).
        trial_fn: the trial function (a module-level function importable on the workers).
        trial_timeout: seconds after its submission at which a trial is cancelled and
            recorded as failed.
        address: ``None`` starts a local Ray runtime (shut down by :meth:`close`);
            ``"auto"`` (the cluster ``ray start`` left on this machine, or ``$RAY_ADDRESS``)
            or ``"HOST:PORT"`` (the head node's GCS port) connects to a running cluster. If
            this process is already connected (``ray.init`` called before), that
            connection is used and left open.
        num_cpus: CPUs of the local runtime (default ``workers``); not with ``address``.
        share: ``"path"`` or ``"object_store"``: how the workers get the hop stores (see
            the module docstring).
        object_store_memory: bytes of the local runtime's object store; default 128 MiB,
            plus the size of the stores, graph and labels with ``share="object_store"``.

    Raises:
        RayNotInstalledError: Ray is not installed.
        ValueError: an argument is out of range.
    """

    def __init__(
        self,
        workers: int = 1,
        trial_fn: TrialFn = evaluate_trial,
        trial_timeout: float = 600.0,
        *,
        address: str | None = None,
        num_cpus: int | None = None,
        share: str = "path",
        object_store_memory: int | None = None,
    ) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be a positive int, got {workers!r}")
        if not trial_timeout > 0:
            raise ValueError(f"trial_timeout must be > 0 seconds, got {trial_timeout!r}")
        if share not in SHARE_MODES:
            raise ValueError(f"share must be one of {SHARE_MODES}, got {share!r}")
        if num_cpus is not None:
            if address is not None:
                raise ValueError("num_cpus sizes a local Ray runtime; leave it out with address")
            if isinstance(num_cpus, bool) or not isinstance(num_cpus, int) or num_cpus < 1:
                raise ValueError(f"num_cpus must be a positive int, got {num_cpus!r}")
        self._ray = import_ray()
        self.workers = workers
        self.trial_fn = trial_fn
        self.trial_timeout = float(trial_timeout)
        self.address = address
        self.num_cpus = num_cpus
        self.share = share
        self.object_store_memory = object_store_memory
        self._owns_runtime = False
        self._task: Any = None
        self._refs: list[Any] = []  # [ref of (trial_fn, context or arrays)]
        self._token = ""
        self._running: dict[Any, tuple[TrialJob, float]] = {}  # ObjectRef -> (job, submitted)

    def __repr__(self) -> str:
        where = self.address if self.address is not None else "local"
        return (
            f"{type(self).__name__}(workers={self.workers}, address={where!r}, "
            f"share={self.share!r}, trial_timeout={self.trial_timeout:g})"
        )

    @property
    def capacity(self) -> int:
        return self.workers

    @property
    def running(self) -> int:
        return len(self._running)

    def start(self, prepare: Callable[[], TrialContext], jobs: int) -> None:
        """Check the cluster address, build the hop stores (``prepare()``, on this
        process), then connect to the cluster (or start a local runtime) and put the
        context into Ray's object store once.

        Raises:
            RayUnreachableError: nothing answers at ``address`` (checked before the hop
                stores are built, within a few seconds).
        """
        ray = self._ray
        connected = ray.is_initialized()
        if not connected and self.address is not None:
            _probe(self._resolve(self.address))
        ctx = prepare()
        shared: Any = ctx
        if self.share == "object_store":
            shared = {**ctx.arrays(), "entries": ctx.entries, "memory_budget": ctx.memory_budget}
        if not connected:
            self._init(shared)
        self._token = uuid.uuid4().hex
        self._refs = [ray.put((self.trial_fn, shared))]
        self._task = ray.remote(num_cpus=1, max_retries=1, retry_exceptions=False)(_run_task)
        cpus = ray.cluster_resources().get("CPU", 0)
        if cpus < min(self.workers, jobs):
            logging.getLogger(__name__).warning(
                "the Ray cluster has %g CPUs for %d parallel trials: trials wait in Ray's "
                "queue, and their trial_timeout runs while they wait",
                cpus,
                self.workers,
            )

    def _resolve(self, address: str) -> str:
        """``HOST:PORT`` of ``address``; ``"auto"`` is looked up as ``ray.init`` does
        (``$RAY_ADDRESS``, else the cluster ``ray start`` recorded on this machine)."""
        if address != "auto":
            return address
        try:
            found = self._ray._private.services.canonicalize_bootstrap_address(address)
        except Exception:  # noqa: BLE001 - Ray's "no cluster found", worded for its own CLI
            found = None
        if not found:
            raise RayUnreachableError(
                address, "no cluster recorded on this machine and $RAY_ADDRESS is not set"
            )
        return str(found)

    def _init(self, shared: Any) -> None:
        """Start a local runtime (``address=None``) or connect to the cluster."""
        ray = self._ray
        quiet = dict(logging_level=logging.ERROR, log_to_driver=False)
        if self.address is not None:
            try:
                ray.init(address=self.address, **quiet)
            except ConnectionError as exc:
                raise RayUnreachableError(self.address, str(exc).splitlines()[0]) from None
            return
        store = self.object_store_memory
        if store is None:
            store = OBJECT_STORE_BASE + (_nbytes(shared) if isinstance(shared, dict) else 0)
        ray.init(
            address="local",  # a fresh runtime, never a cluster `ray start` left running
            num_cpus=self.num_cpus or self.workers,
            object_store_memory=store,
            include_dashboard=False,
            **quiet,
        )
        self._owns_runtime = True

    def submit(self, job: TrialJob) -> None:
        if self._task is None:
            raise RuntimeError("RayExecutor.submit() before start()")
        if len(self._running) >= self.workers:
            raise RuntimeError(f"all {self.workers} trial slots are busy; wait() first")
        ref = self._task.remote(self._token, self._refs, job)
        self._running[ref] = (job, time.monotonic())

    def wait(self) -> list[TrialOutcome]:
        if not self._running:
            return []
        ray = self._ray
        refs = list(self._running)
        deadline = min(t for _, t in self._running.values()) + self.trial_timeout
        ray.wait(refs, num_returns=1, timeout=max(0.0, deadline - time.monotonic()))
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)  # every one ready now
        outcomes = []
        for ref in refs:
            job, submitted = self._running[ref]
            elapsed = time.monotonic() - submitted
            if ref in ready:
                outcome = self._get(ref, job, elapsed)
            elif elapsed >= self.trial_timeout:
                ray.cancel(ref, force=True)  # kills the worker process running it
                error = f"timed out after {self.trial_timeout:g} s"
                outcome = TrialOutcome(job.trial, "fail", None, error, elapsed)
            else:
                continue
            del self._running[ref]
            outcomes.append(outcome)
        return outcomes

    def _get(self, ref: Any, job: TrialJob, elapsed: float) -> TrialOutcome:
        """The outcome of a finished task; a task Ray failed (its worker died twice, it
        was cancelled, the node was lost) is a failed trial."""
        try:
            outcome: TrialOutcome = self._ray.get(ref)
            return outcome
        except self._ray.exceptions.RayError as exc:
            first = (str(exc).strip().splitlines() or [""])[0]
            error = f"Ray task failed ({type(exc).__name__}): {first}"
            return TrialOutcome(job.trial, "fail", None, error, elapsed)

    def close(self) -> None:
        """Cancel the running trials and shut down the local runtime if this executor
        started it (a cluster, or a runtime the caller started, stays up)."""
        ray = self._ray
        if ray.is_initialized():
            for ref in self._running:
                ray.cancel(ref, force=True)
        self._running.clear()
        self._refs = []
        self._task = None
        if self._owns_runtime:
            ray.shutdown()
            self._owns_runtime = False


def _nbytes(tree: Any) -> int:
    """Bytes of the numpy arrays in nested dicts (the arrays shipped with
    ``share="object_store"``), rounded up to whole MiB."""
    import numpy as np

    def walk(node: Any) -> int:
        if isinstance(node, np.ndarray):
            return int(node.nbytes)
        if isinstance(node, dict):
            return sum(walk(v) for v in node.values())
        return 0

    return int(math.ceil(walk(tree) / (1 << 20))) << 20
