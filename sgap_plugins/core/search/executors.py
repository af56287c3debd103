"""Where trials run: the :class:`Executor` protocol and the local process pool.

The search engine proposes trials and records their outcomes; an executor only runs them.
It receives :class:`TrialJob`\\ s, runs each with a trial function (by default
:func:`~sgap_plugins.core.search.evaluation.evaluate_trial`) on the search's
:class:`~sgap_plugins.core.search.evaluation.TrialContext`, and hands back one
:class:`TrialOutcome` per job, a failure included (an exception, a timeout, a dead worker):
an executor never raises for a trial.

:class:`LocalProcessPool` (the default) runs trials in spawned worker processes on this
machine; :class:`~sgap_plugins.core.search.ray_executor.RayExecutor` runs them as Ray tasks
sharing the hop stores. Another engine slots in by implementing the six members of
:class:`Executor`.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..config import SGAPConfig

if TYPE_CHECKING:
    from .evaluation import TrialContext

# (context, config, label of the pre-processing hop store, seed) -> results of one trial
TrialFn = Callable[["TrialContext", SGAPConfig, str, int], dict[str, Any]]


@dataclass(frozen=True)
class TrialJob:
    """One trial to run: its number, the config (as a dict: it crosses process and machine
    boundaries), the label of the hop store to train on and the training seed."""

    trial: int
    config: dict[str, Any]
    ga_pre: str
    seed: int


@dataclass(frozen=True)
class TrialOutcome:
    """What became of a :class:`TrialJob`: ``status`` ``"ok"`` with the trial function's
    ``result``, or ``"fail"`` with an ``error``; ``seconds`` of wall time."""

    trial: int
    status: str
    result: dict[str, Any] | None = None
    error: str | None = None
    seconds: float = 0.0


def run_trial(trial_fn: TrialFn, ctx: TrialContext, job: TrialJob) -> TrialOutcome:
    """Run one job with ``trial_fn``; an exception becomes a failed outcome with its
    traceback (a failing trial must not stop the search). Executors call this so that every
    one of them reports failures alike."""
    start = time.perf_counter()
    try:
        result = trial_fn(ctx, SGAPConfig.from_dict(job.config), job.ga_pre, job.seed)
        return TrialOutcome(job.trial, "ok", result, None, time.perf_counter() - start)
    except Exception as exc:  # noqa: BLE001 - recorded as a failed trial
        error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=8)}"
        return TrialOutcome(job.trial, "fail", None, error, time.perf_counter() - start)


@runtime_checkable
class Executor(Protocol):
    """Runs trials for a :class:`~sgap_plugins.core.search.SearchEngine`.

    The engine calls :meth:`start` once, then alternates :meth:`submit` (while
    ``running < capacity``) and :meth:`wait`, and finally :meth:`close` (also after an
    error or Ctrl-C). ``capacity`` also sets the engine's proposal lag: proposal ``n`` sees
    the trials ``0 … n − capacity``, which keeps a seeded search reproducible whatever order
    the trials finish in.
    """

    @property
    def capacity(self) -> int:
        """How many trials run at once."""
        ...

    @property
    def running(self) -> int:
        """Submitted trials whose outcome :meth:`wait` has not returned yet."""
        ...

    def start(self, prepare: Callable[[], TrialContext], jobs: int) -> None:
        """Get ready for at most ``jobs`` trials; call ``prepare()`` (it builds the hop
        stores, which may take long) to get the context the trials run on."""
        ...

    def submit(self, job: TrialJob) -> None:
        """Start ``job`` (only called while ``running < capacity``)."""
        ...

    def wait(self) -> list[TrialOutcome]:
        """Block until at least one running trial has an outcome and return every outcome
        available (empty only when nothing is running)."""
        ...

    def close(self) -> None:
        """Stop everything still running and release the workers."""
        ...


# ---------------------------------------------------------------------- the local pool
_READY = "ready"
STARTUP_TIMEOUT = 300.0  # seconds for a new worker to import torch and load the plugins

# Why a worker can die before it runs anything: spawn re-imports the main module first.
STARTUP_HELP = (
    "worker processes are started with 'spawn', which re-imports the main script first: if "
    'the search runs from a script, put it under `if __name__ == "__main__":`; the '
    "worker's own traceback is printed above"
)


def _worker_main(conn: Connection, trial_fn: TrialFn) -> None:
    """A worker process: import and load the plugins while the main process prepares the
    hop stores, say it is ready, receive the :class:`TrialContext`, then run jobs until told
    to stop (``None``) or the main process goes away (EOF)."""
    import torch

    from ..plugins import registry

    # Ctrl-C reaches the whole process group; the main process records what finished and
    # stops the workers, so they ignore it instead of dying mid-trial with a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)
    registry()
    try:
        conn.send(_READY)
        ctx = conn.recv()
    except (EOFError, KeyboardInterrupt):
        return
    while True:
        try:
            job = conn.recv()
        except (EOFError, KeyboardInterrupt):
            return
        if job is None:
            return
        try:
            conn.send(run_trial(trial_fn, ctx, job))
        except (BrokenPipeError, OSError):
            return


@dataclass
class _Worker:
    proc: Any
    conn: Connection
    job: TrialJob | None = None
    started: float = 0.0


class LocalProcessPool:
    """Trials in ``workers`` spawned processes on this machine (one torch thread each).

    The workers start (import torch, load the plugins) while ``prepare()`` builds the hop
    stores, and load the stores once. A trial running longer than ``trial_timeout`` seconds
    is killed with its worker; a worker that dies (out of memory, a segfault in an extension)
    fails its trial; both are replaced at the next :meth:`submit`.

    Args:
        workers: parallel worker processes.
        trial_fn: the trial function, a module-level function (it is sent to spawned
            processes by reference).
        trial_timeout: seconds after which a trial is killed and recorded as failed.
    """

    def __init__(self, workers: int, trial_fn: TrialFn, trial_timeout: float = 600.0) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be a positive int, got {workers!r}")
        if not trial_timeout > 0:
            raise ValueError(f"trial_timeout must be > 0 seconds, got {trial_timeout!r}")
        self.workers = workers
        self.trial_fn = trial_fn
        self.trial_timeout = float(trial_timeout)
        self._slots: list[_Worker | None] = []
        self._ctx: TrialContext | None = None

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(workers={self.workers}, trial_timeout={self.trial_timeout:g})"
        )

    @property
    def capacity(self) -> int:
        return self.workers

    @property
    def running(self) -> int:
        return sum(1 for s in self._slots if s is not None and s.job is not None)

    def start(self, prepare: Callable[[], TrialContext], jobs: int) -> None:
        self._slots = [self._spawn() for _ in range(min(self.workers, jobs))]
        self._ctx = prepare()
        for slot in self._slots:
            if slot is not None:
                self._handshake(slot)

    def submit(self, job: TrialJob) -> None:
        i = next(
            (i for i, s in enumerate(self._slots) if s is None or s.job is None),
            len(self._slots),
        )
        if i == len(self._slots):
            if i >= self.workers:
                raise RuntimeError(f"all {self.workers} workers are busy; wait() first")
            self._slots.append(None)
        slot = self._slots[i]
        if slot is None:  # never started, or replaced after a timeout or crash
            slot = self._slots[i] = self._spawn()
            self._handshake(slot)
        slot.conn.send(job)
        slot.job, slot.started = job, time.monotonic()

    def wait(self) -> list[TrialOutcome]:
        busy = [s for s in self._slots if s is not None and s.job is not None]
        if not busy:
            return []
        deadline = min(s.started for s in busy) + self.trial_timeout
        ready = wait([s.conn for s in busy], timeout=max(0.0, deadline - time.monotonic()))
        outcomes = []
        for slot in busy:
            assert slot.job is not None
            elapsed = time.monotonic() - slot.started
            if slot.conn in ready:
                try:
                    outcome: TrialOutcome = slot.conn.recv()
                    dead = False
                except (EOFError, OSError):
                    error = f"worker process died (exit code {slot.proc.exitcode})"
                    outcome, dead = TrialOutcome(slot.job.trial, "fail", None, error, elapsed), True
            elif elapsed >= self.trial_timeout:
                error = f"timed out after {self.trial_timeout:g} s"
                outcome, dead = TrialOutcome(slot.job.trial, "fail", None, error, elapsed), True
            else:
                continue
            outcomes.append(outcome)
            slot.job = None
            if dead:
                self._stop(slot, kill=True)
                self._slots[self._slots.index(slot)] = None
        return outcomes

    def close(self) -> None:
        for slot in self._slots:
            if slot is not None:
                self._stop(slot, kill=slot.job is not None)
        self._slots = []

    # ------------------------------------------------------------------ processes
    def _spawn(self) -> _Worker:
        spawn = mp.get_context("spawn")
        parent, child = spawn.Pipe()
        proc = spawn.Process(target=_worker_main, args=(child, self.trial_fn), daemon=True)
        proc.start()
        child.close()
        return _Worker(proc, parent)

    def _handshake(self, slot: _Worker) -> None:
        """Wait for a new worker to be ready, then send it the context.

        Raises:
            RuntimeError: the worker exited (or hung) before it was ready, e.g. because
                re-importing the main script failed; no trial could run on it.
        """
        try:
            ready = slot.conn.poll(STARTUP_TIMEOUT) and slot.conn.recv() == _READY
        except (EOFError, OSError):
            ready = False
        if ready:
            try:
                slot.conn.send(self._ctx)
                return
            except (BrokenPipeError, OSError):
                pass
        self._stop(slot, kill=True)
        raise RuntimeError(
            f"a search worker process failed to start (exit code {slot.proc.exitcode}); "
            + STARTUP_HELP
        )

    @staticmethod
    def _stop(slot: _Worker, kill: bool = False) -> None:
        if kill:
            slot.proc.kill()
        else:
            try:
                slot.conn.send(None)
            except (BrokenPipeError, OSError):
                slot.proc.kill()
        slot.proc.join(timeout=5)
        if slot.proc.is_alive():
            slot.proc.kill()
            slot.proc.join()
        slot.conn.close()
