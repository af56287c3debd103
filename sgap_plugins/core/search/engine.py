"""The search engine: hyperopt TPE proposals, ParEGO scalarisation, parallel durable trials.

**Proposals.** hyperopt's TPE optimises one scalar loss. For a multi-objective search every
new proposal ``n`` draws its own weight vector :math:`\\lambda \\sim \\mathrm{Dirichlet}(1)`
(ParEGO's random weights) and re-scalarises the *whole* history with it,

.. math::
    g_\\lambda(x) = \\max_j \\lambda_j \\bar f_j(x) + \\rho \\sum_j \\lambda_j \\bar f_j(x),
    \\qquad \\rho = 0.05,

the augmented Chebyshev function of the objectives normalised to ``[0, 1]`` over the
history (:math:`\\bar f_j`; times, memory and parameter counts on a log scale, since they
span orders of magnitude). TPE then proposes from a fresh ``Trials`` holding those losses,
so successive proposals aim at different parts of the front. A failed trial gets loss
``1 + ρ + 1`` (worse than any finished one) so TPE learns to avoid, e.g., timeouts.
In ``constrained`` mode the loss is ``val_error`` for a trial within every budget and
``1 + Σ_j max(0, (f_j − b_j)/b_j)`` otherwise.

**Determinism.** Proposal ``n`` is a function of the search seed, ``n`` and the trials
``0 … n−W`` (``W`` workers) only, and the engine waits for those before proposing ``n``.
With ``W = 1`` this is plain sequential TPE; with more workers it is a fixed-lag batch
scheme, so a fixed seed gives the same proposals whatever the finishing order — as long as
the objectives themselves are deterministic (``val_error``, ``params``, ``peak_memory`` are;
measured times are not).

**Durability.** The main process appends every finished trial as one JSON line to
``<out>/trials.jsonl`` and ``fsync``\\ s it. ``resume=True`` reads that file (dropping a torn
last line), keeps every finished trial and proposes only the missing trial numbers, so an
interrupted search (Ctrl-C, ``kill -9``) neither loses nor repeats a finished trial.

**Workers.** Trials run in ``W`` spawned worker processes (one torch thread each), which
load the shared hop stores once. A trial running longer than ``trial_timeout`` is killed
with its worker and recorded as failed; a raising trial is recorded with its traceback;
neither stops the search.
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
import signal
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import numpy as np

from ..config import PRESETS, SGAPConfig
from ..synthetic import NodeDataset
from .evaluation import (
    DEFAULT_MEMORY_BUDGET,
    OBJECTIVES,
    HopStore,
    TrialContext,
    evaluate_trial,
)
from .pareto import hypervolume, non_dominated
from .space import DesignSpace

RHO = 0.05
FAIL_LOSS = 2.0 + RHO
LOG_OBJECTIVES = frozenset({"inference_time", "train_time", "peak_memory", "params"})
# Training hyperparameters of every trial unless the space searches them: those of the
# SIGN preset (tuned on Cora's validation accuracy, good for linear and MLP models alike)
# with a 200-epoch / patience-50 budget.
DEFAULT_BASE_CONFIG = SGAPConfig(
    **{
        name: getattr(PRESETS["sign"], name)
        for name in ("hidden", "dropout", "input_dropout", "lr", "weight_decay", "epochs")
    },
    patience=50,
)
TrialFn = Callable[[TrialContext, SGAPConfig, str, str, int], dict[str, Any]]


# ---------------------------------------------------------------------- records
@dataclass
class Trial:
    """One finished trial, as stored in ``trials.jsonl``."""

    trial: int
    point: dict[str, Any]
    config: dict[str, Any]
    status: str  # "ok" or "fail"
    objectives: dict[str, float] = field(default_factory=dict)
    test_acc: float | None = None
    val_acc: float | None = None
    error: str | None = None
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True, allow_nan=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Trial:
        return cls(**d)


def read_trials(path: str | Path) -> list[Trial]:
    """Trials of a ``trials.jsonl``; a torn (partially written) last line is ignored."""
    path = Path(path)
    if not path.exists():
        return []
    trials = []
    for line in path.read_text().splitlines():
        try:
            trials.append(Trial.from_dict(json.loads(line)))
        except (json.JSONDecodeError, TypeError):
            continue
    return trials


class Journal:
    """Append-only, fsync'd ``trials.jsonl``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if path.exists():  # drop a torn last line so the next append starts a fresh line
            raw = path.read_bytes()
            cut = raw.rfind(b"\n") + 1
            if cut != len(raw):
                with open(path, "r+b") as f:
                    f.truncate(cut)
                    f.flush()
                    os.fsync(f.fileno())
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def append(self, trial: Trial) -> None:
        self._file.write(trial.to_json() + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


# ---------------------------------------------------------------------- scalarisation
def normalise(values: np.ndarray, objectives: Sequence[str]) -> np.ndarray:
    """Objective columns mapped to ``[0, 1]`` by min–max over the rows (log10 first for
    times, memory and parameter counts); a constant column maps to 0."""
    v = np.array(values, dtype=np.float64, copy=True)
    for j, name in enumerate(objectives):
        if name in LOG_OBJECTIVES:
            v[:, j] = np.log10(np.maximum(v[:, j], 1e-12))
        lo, hi = v[:, j].min(initial=np.inf), v[:, j].max(initial=-np.inf)
        v[:, j] = (v[:, j] - lo) / (hi - lo) if hi > lo else 0.0
    return v


def chebyshev(normalised: np.ndarray, weights: np.ndarray, rho: float = RHO) -> np.ndarray:
    """Augmented Chebyshev scalarisation ``max_j λ_j f_j + ρ Σ_j λ_j f_j`` per row."""
    wf = normalised * weights
    return wf.max(axis=1) + rho * wf.sum(axis=1)


def constrained_loss(
    values: np.ndarray, objectives: Sequence[str], budgets: Mapping[str, float]
) -> np.ndarray:
    """``val_error`` where every budget holds, else ``1 + Σ relative violations``."""
    err = values[:, objectives.index("val_error")]
    violation = np.zeros(values.shape[0])
    for name, bound in budgets.items():
        col = values[:, objectives.index(name)]
        violation += np.maximum(0.0, (col - bound) / max(abs(bound), 1e-300))
    return np.where(violation > 0, 1.0 + violation, err)


# ---------------------------------------------------------------------- workers
def _worker_main(conn: Connection, trial_fn: TrialFn) -> None:
    """A worker process: import and load the plugins while the main process prepares the
    hop stores, receive the :class:`TrialContext`, then evaluate trials until told to stop
    (``None``) or the main process goes away (EOF)."""
    import torch

    from ..plugins import registry

    # Ctrl-C reaches the whole process group; the main process records what finished and
    # stops the workers, so they ignore it instead of dying mid-trial with a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)
    registry()
    try:
        ctx = conn.recv()
    except (EOFError, KeyboardInterrupt):
        return
    while True:
        try:
            msg = conn.recv()
        except (EOFError, KeyboardInterrupt):
            return
        if msg is None:
            return
        trial_id, config, ga_pre, ga_post, seed = msg
        start = time.perf_counter()
        try:
            out = trial_fn(ctx, SGAPConfig.from_dict(config), ga_pre, ga_post, seed)
            reply = ("ok", trial_id, out, None, time.perf_counter() - start)
        except Exception as exc:  # noqa: BLE001 - a failing trial must not stop the search
            err = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=8)}"
            reply = ("fail", trial_id, None, err, time.perf_counter() - start)
        try:
            conn.send(reply)
        except (BrokenPipeError, OSError):
            return


@dataclass
class _Slot:
    proc: Any
    conn: Connection
    job: tuple[int, dict[str, Any], dict[str, Any]] | None = None  # (id, point, config)
    started: float = 0.0


# ---------------------------------------------------------------------- results
@dataclass
class SearchResult:
    """The finished trials of a search and its exact Pareto front."""

    trials: list[Trial]
    objectives: list[str]
    front: list[Trial]
    hypervolume: float
    reference: list[float]

    @classmethod
    def from_trials(
        cls,
        trials: Sequence[Trial],
        objectives: Sequence[str],
        budgets: Mapping[str, float] | None = None,
    ) -> SearchResult:
        """Front and hypervolume over the finished trials (in ``constrained`` mode only the
        trials within every budget). The reference point is the worst value of each
        objective over all finished trials (``val_error`` at most 1)."""
        trials = sorted(trials, key=lambda t: t.trial)
        ok = [t for t in trials if t.status == "ok"]
        objectives = list(objectives)
        if not ok:
            return cls(list(trials), objectives, [], 0.0, [])
        vals = np.array([[t.objectives[o] for o in objectives] for t in ok])
        reference = vals.max(axis=0)
        eligible = list(range(len(ok)))
        if budgets:
            eligible = [
                i for i in eligible if all(ok[i].objectives[k] <= b for k, b in budgets.items())
            ]
        sub = vals[eligible]
        front_idx = [eligible[i] for i in non_dominated(sub)] if eligible else []
        front = sorted(
            (ok[i] for i in front_idx), key=lambda t: [t.objectives[o] for o in objectives]
        )
        hv = hypervolume(vals[front_idx], reference * (1 + 1e-9) + 1e-12) if front_idx else 0.0
        return cls(list(trials), objectives, front, hv, reference.tolist())

    @property
    def best(self) -> Trial | None:
        ok = [t for t in self.trials if t.status == "ok"]
        return min(ok, key=lambda t: (t.objectives["val_error"], t.trial)) if ok else None

    def pareto_json(self) -> dict[str, Any]:
        """``{"objectives", "points": [{"config", "point", "objectives", "test_acc", "val_acc",
        "trial"}], "hypervolume", "reference"}``."""
        return {
            "objectives": self.objectives,
            "points": [
                {
                    "trial": t.trial,
                    "config": t.config,
                    "point": t.point,
                    "objectives": {o: t.objectives[o] for o in self.objectives},
                    "val_acc": t.val_acc,
                    "test_acc": t.test_acc,
                }
                for t in self.front
            ],
            "hypervolume": self.hypervolume,
            "reference": self.reference,
        }


# ---------------------------------------------------------------------- engine
class SearchEngine:
    """Multi-objective (or constrained) architecture search over a :class:`DesignSpace`.

    Args:
        data: the dataset.
        out: output folder (``search.json``, ``trials.jsonl``, the trial context).
        max_evals: the number of trials the search ends with.
        objectives: a subset of ``val_error, inference_time, train_time, peak_memory,
            params``; ``val_error`` is required.
        space: the design space (default :meth:`DesignSpace.paper`).
        base_config: training hyperparameters of every trial (those the space does not
            search); default :data:`DEFAULT_BASE_CONFIG`.
        budgets: upper bounds per objective; given, the search is ``constrained``:
            minimise ``val_error`` subject to them.
        workers: parallel worker processes.
        seed: seeds the proposals and every trial's training.
        trial_timeout: seconds after which a trial is killed and recorded as failed.
        n_startup: random proposals before TPE takes over (default ``min(20, max_evals//4)``,
            at least 1).
        hop_cache: folder of the hop stores (default ``<out>/hops``).
        memory_budget: fp32 bytes of one store above which it is fp16 and memory-mapped.
        resume: continue the search recorded in ``out``; otherwise ``out`` must not hold
            one already.
        progress: show a tqdm bar (trials, best error, front size, time left).
        trial_fn: the evaluation function run in the workers (default
            :func:`~sgap_plugins.core.search.evaluation.evaluate_trial`); a module-level
            function so that it can be sent to a spawned process.
    """

    def __init__(
        self,
        data: NodeDataset,
        out: str | Path,
        max_evals: int,
        objectives: Sequence[str] = ("val_error", "inference_time"),
        space: DesignSpace | None = None,
        base_config: SGAPConfig | None = None,
        budgets: Mapping[str, float] | None = None,
        workers: int = 1,
        seed: int = 0,
        trial_timeout: float = 600.0,
        n_startup: int | None = None,
        hop_cache: str | Path | None = None,
        memory_budget: int = DEFAULT_MEMORY_BUDGET,
        resume: bool = False,
        progress: bool = True,
        trial_fn: TrialFn = evaluate_trial,
    ) -> None:
        objectives = list(objectives)
        unknown = [o for o in objectives if o not in OBJECTIVES]
        if unknown or not objectives:
            raise ValueError(f"unknown objective(s) {unknown}; choose from {list(OBJECTIVES)}")
        if len(set(objectives)) != len(objectives):
            raise ValueError(f"duplicate objectives in {objectives}")
        if "val_error" not in objectives:
            raise ValueError("objectives must include val_error")
        budgets = dict(budgets or {})
        for name, bound in budgets.items():
            if name not in objectives or name == "val_error":
                raise ValueError(
                    f"budget {name!r} must name one of the other objectives {objectives}"
                )
            if not math.isfinite(bound) or bound <= 0:
                raise ValueError(f"budget {name}={bound!r} must be a positive number")
        if not isinstance(max_evals, int) or max_evals < 1:
            raise ValueError(f"max_evals must be a positive int, got {max_evals!r}")
        if not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be a positive int, got {workers!r}")
        if trial_timeout <= 0:
            raise ValueError(f"trial_timeout must be > 0, got {trial_timeout!r}")
        self.data = data
        self.out = Path(out)
        self.max_evals = max_evals
        self.objectives = objectives
        self.space = space or DesignSpace.paper()
        self.base_config = base_config or DEFAULT_BASE_CONFIG
        self.budgets = budgets
        self.workers = workers
        self.seed = int(seed)
        self.trial_timeout = float(trial_timeout)
        self._n_startup_given = n_startup is not None
        self.n_startup = n_startup if n_startup is not None else max(1, min(20, max_evals // 4))
        self.hop_cache = Path(hop_cache) if hop_cache is not None else self.out / "hops"
        self.memory_budget = int(memory_budget)
        self.resume = resume
        self.progress = progress
        self.trial_fn = trial_fn
        self._domain: Any = None

    # ------------------------------------------------------------------ settings
    def settings(self) -> dict[str, Any]:
        """What defines the search (``resume`` checks it; ``max_evals`` and ``workers`` may
        change between runs)."""
        return {
            "dataset": self.data.name,
            "num_nodes": self.data.num_nodes,
            "objectives": self.objectives,
            "budgets": self.budgets,
            "seed": self.seed,
            "space": self.space.describe(),
            "base_config": self.base_config.to_dict(),
            "n_startup": self.n_startup,
        }

    def _check_settings(self) -> None:
        path = self.out / "search.json"
        settings = self.settings()
        if path.exists():
            if not self.resume:
                raise FileExistsError(
                    f"{self.out} already holds a search; pass resume=True (--resume) to continue "
                    "it or choose another output folder"
                )
            stored = json.loads(path.read_text())
            if not self._n_startup_given and "n_startup" in stored:
                # the default depends on max_evals, which a resumed search may raise
                self.n_startup = stored["n_startup"]
                settings["n_startup"] = self.n_startup
            diff = sorted(
                k for k in settings if stored.get(k) != json.loads(json.dumps(settings[k]))
            )
            if diff:
                raise ValueError(
                    f"cannot resume: the search in {self.out} differs in {diff}; "
                    "use the same dataset, objectives, seed and space"
                )
        else:
            self.out.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(settings, indent=2))
            os.replace(tmp, path)

    # ------------------------------------------------------------------ proposals
    def _losses(self, trials: Sequence[Trial], n: int) -> list[float]:
        """Scalar losses of ``trials`` for proposal ``n`` (its own random weights)."""
        ok = [i for i, t in enumerate(trials) if t.status == "ok"]
        losses = [FAIL_LOSS] * len(trials)
        if not ok:
            return losses
        vals = np.array([[trials[i].objectives[o] for o in self.objectives] for i in ok])
        if self.budgets:
            scal = constrained_loss(vals, self.objectives, self.budgets)
        else:
            rng = np.random.default_rng([self.seed, n, 1])
            weights = rng.dirichlet(np.ones(len(self.objectives)))
            scal = chebyshev(normalise(vals, self.objectives), weights)
        for i, v in zip(ok, scal, strict=True):
            losses[i] = float(v)
        return losses

    def propose(self, n: int, history: Sequence[Trial]) -> dict[str, Any]:
        """Proposal ``n`` from ``history`` (the trials ``0 … n−W``), deterministic in
        ``(seed, n, history)``. Avoids re-proposing an evaluated point when it can (10
        tries), then falls back to the last proposal."""
        from hyperopt import STATUS_OK, Trials, base, tpe
        from hyperopt.base import JOB_STATE_DONE

        if self._domain is None:
            self._domain = base.Domain(lambda _: 0.0, self.space.hyperopt_space())
        losses = self._losses(history, n)
        trials = Trials()
        if history:
            ids = list(range(len(history)))
            miscs = []
            for i, t in enumerate(history):
                vals = self.space.to_vals(t.point)
                miscs.append(
                    {
                        "tid": i,
                        "cmd": self._domain.cmd,
                        "workdir": None,
                        "idxs": {k: [i] for k in vals},
                        "vals": vals,
                    }
                )
            results = [{"loss": loss, "status": STATUS_OK} for loss in losses]
            docs = trials.new_trial_docs(ids, [None] * len(ids), results, miscs)
            for d in docs:
                d["state"] = JOB_STATE_DONE
            trials.insert_trial_docs(docs)
            trials.refresh()
        seen = {json.dumps(t.point, sort_keys=True) for t in history}
        point: dict[str, Any] = {}
        for attempt in range(10):
            seed = int(np.random.SeedSequence([self.seed, n, attempt]).generate_state(1)[0])
            docs = tpe.suggest(
                [len(history)],
                self._domain,
                trials,
                seed,
                n_startup_jobs=self.n_startup,
            )
            point = self.space.from_vals(docs[0]["misc"]["vals"])
            if json.dumps(point, sort_keys=True) not in seen:
                break
        return point

    # ------------------------------------------------------------------ running
    def _start_worker(self) -> _Slot:
        spawn = mp.get_context("spawn")
        parent, child = spawn.Pipe()
        proc = spawn.Process(target=_worker_main, args=(child, self.trial_fn), daemon=True)
        proc.start()
        child.close()
        return _Slot(proc, parent)

    @staticmethod
    def _stop_worker(slot: _Slot, kill: bool = False) -> None:
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

    def prepare(self) -> TrialContext:
        """Propagate (or reuse) the hop store of every graph aggregator of the space."""
        store = HopStore(self.hop_cache, self.data, self.memory_budget)
        k = self.space.ranges["k_pre"][1]
        return TrialContext.create(
            store,
            self.space.graph_aggregators,
            k,
            self.out / "context",
            self.memory_budget,
            progress=self.progress,
        )

    def run(self) -> SearchResult:
        """Run (or resume) the search until ``max_evals`` trials are recorded."""
        self._check_settings()
        journal_path = self.out / "trials.jsonl"
        done: dict[int, Trial] = {}
        for t in read_trials(journal_path):
            done.setdefault(t.trial, t)  # the first record of a trial number wins
        todo = [n for n in range(self.max_evals) if n not in done]
        # Workers start (import torch, load plugins) while the hop stores are prepared.
        slots: list[_Slot | None] = [
            self._start_worker() for _ in range(min(self.workers, len(todo)))
        ]
        journal = None
        bar = None
        try:
            ctx = self.prepare() if todo else None
            journal = Journal(journal_path)
            if self.progress:
                from tqdm.auto import tqdm

                bar = tqdm(
                    total=self.max_evals, initial=min(len(done), self.max_evals), unit="trial"
                )
                self._update_bar(bar, done)
            for slot in slots:
                slot.conn.send(ctx)
            lag = self.workers - 1
            while todo or any(s is not None and s.job for s in slots):
                # hand out proposals whose history (trials 0 … n−W) is complete
                for i, slot in enumerate(slots):
                    if (slot is not None and slot.job is not None) or not todo:
                        continue
                    n = todo[0]
                    horizon = max(0, n - lag)
                    if any(k not in done for k in range(horizon)):
                        break
                    if slot is None:  # replaces a worker killed after a timeout or crash
                        slot = slots[i] = self._start_worker()
                        slot.conn.send(ctx)
                    todo.pop(0)
                    point = self.propose(n, [done[k] for k in range(horizon)])
                    config = self.space.to_config(point, self.base_config).to_dict()
                    slot.conn.send((n, config, point["ga_pre"], point["ga_post"], self.seed))
                    slot.job, slot.started = (n, point, config), time.monotonic()
                busy = [s for s in slots if s is not None and s.job is not None]
                if not busy:
                    continue
                timeout = min(s.started + self.trial_timeout for s in busy) - time.monotonic()
                ready = wait([s.conn for s in busy], timeout=max(0.0, timeout))
                for slot in busy:
                    trial, dead = None, False
                    if slot.conn in ready:
                        try:
                            status, _, out, err, secs = slot.conn.recv()
                        except (EOFError, OSError):
                            status, out, secs = "fail", None, time.monotonic() - slot.started
                            err = f"worker process died (exit code {slot.proc.exitcode})"
                            dead = True
                        trial = self._record(slot, status, out, err, secs)
                    elif time.monotonic() - slot.started >= self.trial_timeout:
                        secs = time.monotonic() - slot.started
                        err = f"timed out after {self.trial_timeout:g} s"
                        trial = self._record(slot, "fail", None, err, secs)
                        dead = True
                    if trial is None:
                        continue
                    journal.append(trial)
                    done[trial.trial] = trial
                    slot.job = None
                    if dead:
                        self._stop_worker(slot, kill=True)
                        slots[slots.index(slot)] = None
                    if bar is not None:
                        bar.update(1)
                        self._update_bar(bar, done)
        finally:
            for slot in slots:
                if slot is not None:
                    self._stop_worker(slot, kill=slot.job is not None)
            if journal is not None:
                journal.close()
            if bar is not None:
                bar.close()
        trials = [done[i] for i in sorted(done) if i < self.max_evals]
        return SearchResult.from_trials(trials, self.objectives, self.budgets)

    def _record(
        self, slot: _Slot, status: str, out: dict[str, Any] | None, err: str | None, secs: float
    ) -> Trial:
        n, point, config = slot.job
        if status == "ok" and out is not None:
            objectives = {k: float(v) for k, v in out["objectives"].items()}
            if not all(math.isfinite(objectives.get(o, math.nan)) for o in self.objectives):
                status, err = "fail", f"non-finite objectives {objectives}"
        if status != "ok" or out is None:
            return Trial(n, point, config, "fail", error=err or "unknown error", seconds=secs)
        extra = {k: v for k, v in out.items() if k not in ("objectives", "test_acc", "val_acc")}
        return Trial(
            n,
            point,
            config,
            "ok",
            objectives=objectives,
            test_acc=out.get("test_acc"),
            val_acc=out.get("val_acc"),
            seconds=secs,
            extra=extra,
        )

    def _update_bar(self, bar: Any, done: Mapping[int, Trial]) -> None:
        result = SearchResult.from_trials(list(done.values()), self.objectives, self.budgets)
        best = result.best
        bar.set_postfix(
            best_err=f"{best.objectives['val_error']:.4f}" if best else "-",
            front=len(result.front),
            failed=sum(t.status != "ok" for t in done.values()),
        )


def search(data: NodeDataset, out: str | Path, max_evals: int, **kwargs: Any) -> SearchResult:
    """Run a search: ``SearchEngine(data, out, max_evals, **kwargs).run()``."""
    return SearchEngine(data, out, max_evals, **kwargs).run()
