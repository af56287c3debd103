"""The search engine: hyperopt TPE proposals and their scheduling.

**Proposals.** hyperopt's TPE optimises one scalar loss. For a multi-objective search every
new proposal ``n`` draws its own weight vector :math:`\\lambda \\sim \\mathrm{Dirichlet}(1)`
(ParEGO's random weights) and re-scalarises the *whole* history with it
(:mod:`~sgap_plugins.core.search.scalarization`: the augmented Chebyshev function of the
objectives normalised over the history), so successive proposals aim at different parts of
the front. TPE then proposes from a fresh ``Trials`` holding those losses, with the best
``good_fraction`` of them (10 %) as its good set, and without the keys that had no effect
on a trial (:meth:`DesignSpace.active_keys
<sgap_plugins.core.search.DesignSpace.active_keys>`), as hyperopt leaves out an inactive
conditional parameter. In ``constrained`` mode the loss is ``val_error`` within every
budget and a penalty otherwise.

**Scheduling.** Trials run on an :class:`~sgap_plugins.core.search.executors.Executor`
(default: :class:`~sgap_plugins.core.search.executors.LocalProcessPool`). Proposal ``n`` is
a function of the search seed, ``n`` and the trials ``0 … n−W`` only (``W`` the executor's
capacity), and the engine waits for those before proposing ``n``. With ``W = 1`` this is
plain sequential TPE; with more it is a fixed-lag batch scheme, so a fixed seed gives the
same proposals whatever the finishing order — as long as the objectives themselves are
deterministic (``val_error``, ``params``, ``peak_memory`` are; measured times are not).

**Warm start.** With ``warm_start=True`` the first proposals, trials ``0 … P−1``, are the
presets that lie in the space (:meth:`SearchEngine.warm_start_points`), in the order of
:data:`~sgap_plugins.core.config.PRESETS`; TPE's random start-up proposals and then TPE
itself follow them, with the presets in their history. Those trials carry
``extra["warm_start"]`` (the preset's name) in ``trials.jsonl``.

**Outputs.** :meth:`SearchEngine.run` ends by writing ``pareto.json``, ``trials.csv``,
``pareto.png`` and ``presets.json`` to the output folder
(:func:`~sgap_plugins.core.search.report.write_outputs`), so the Python API and ``sgap
search`` leave the same folder. ``search.json`` and ``pareto.json`` record the dataset
(:func:`~sgap_plugins.core.search.evaluation.dataset_record`) for ``sgap train --config``.

**Worker processes.** The default executor starts its workers with ``spawn``, which
re-imports the main script in every worker: a script must run the search under
``if __name__ == "__main__":``. Without it, :meth:`SearchEngine.run` raises an error saying
so (in the worker, and in the main process when the workers fail to start) instead of a
``FileExistsError`` or a broken pipe.

**Durability.** Every outcome is appended to ``<out>/trials.jsonl``
(:mod:`~sgap_plugins.core.search.journal`) before the next proposal. ``resume=True`` reads
it back, keeps every finished trial and proposes only the missing trial numbers, so an
interrupted search (Ctrl-C, ``kill``, ``kill -9``) neither loses nor repeats a finished
trial; a corrupt record stops the resume with an error naming its line. While it runs in
the main thread, SIGTERM (``kill``, a job scheduler's stop) ends the search as Ctrl-C does,
raising :class:`KeyboardInterrupt` once the workers are stopped, rather than ending the
process at once and leaving busy workers to run on until their trial ends.
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import signal
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ..._cache import cache_dir
from ..config import PRESETS, SGAPConfig
from ..durable_files import write_json_atomic
from ..synthetic import NodeDataset
from .evaluation import (
    DEFAULT_MEMORY_BUDGET,
    OBJECTIVES,
    HopStore,
    TrialContext,
    dataset_record,
    evaluate_presets,
    evaluate_trial,
)
from .executors import Executor, LocalProcessPool, TrialFn, TrialJob, TrialOutcome
from .journal import Journal, Trial, read_trials
from .report import write_outputs
from .result import SearchResult
from .scalarization import FAIL_LOSS, chebyshev, constrained_loss, normalise
from .space import DesignSpace

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

# TPE's good set as a share of the history (Optuna's default split; see ``good_fraction``)
GOOD_FRACTION = 0.1
STARTUPS = ("lhs", "random")
MAIN_GUARD_HELP = (
    "the search was started while a worker process was importing the main script. Worker "
    "processes are started with 'spawn', which re-imports the script that runs the search; "
    'put the search under `if __name__ == "__main__":` (see docs/search.rst, Python API)'
)


def _read_json(path: Path) -> Any:
    """A JSON file the search wrote; a damaged one is an error naming it."""
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
            "restore it or start the search in another folder"
        ) from None


def _importing_main() -> bool:
    """Whether this process is a spawned child still importing the parent's main module
    (the state in which ``multiprocessing`` itself refuses to start processes)."""
    return bool(getattr(mp.current_process(), "_inheriting", False))


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`KeyboardInterrupt` as Ctrl-C does, so that
    the ``finally`` stopping the workers runs. Only in the main thread (where Python runs
    signal handlers) and where SIGTERM has its default action: a handler the caller
    installed is left alone."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt("SIGTERM")

    signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


# ---------------------------------------------------------------------- engine
class SearchEngine:
    """Multi-objective (or constrained) architecture search over a :class:`DesignSpace`.

    Args:
        data: the dataset.
        out: output folder (``search.json``, ``trials.jsonl``, the trial context, and at the
            end ``pareto.json``, ``trials.csv``, ``pareto.png``, ``presets.json``).
        max_evals: the number of trials the search ends with.
        objectives: a subset of ``val_error, inference_time, train_time, peak_memory,
            params``; ``val_error`` is required.
        space: the design space (default :meth:`DesignSpace.paper`).
        base_config: training hyperparameters of every trial (those the space does not
            search); default :data:`DEFAULT_BASE_CONFIG`.
        budgets: upper bounds per objective; given, the search is ``constrained``:
            minimise ``val_error`` subject to them.
        workers: parallel worker processes of the default executor.
        seed: seeds the proposals and every trial's training.
        trial_timeout: seconds after which the default executor kills a trial and records
            it as failed.
        n_startup: start-up proposals before TPE takes over (default
            ``min(20, max_evals//4)``, at least 1); with ``warm_start`` they follow the
            warm-start points.
        startup: how they are drawn: ``"lhs"`` (default), a Latin hypercube of
            ``n_startup`` points seeded by ``seed``
            (:meth:`DesignSpace.latin_hypercube
            <sgap_plugins.core.search.DesignSpace.latin_hypercube>`), or ``"random"``,
            independent draws from the prior (hyperopt's).
        good_fraction: the share ``q`` of the history TPE models as good: the
            ``⌈q·T⌉`` trials of lowest loss among ``T`` (at most 25, hyperopt's cap). The
            default :data:`GOOD_FRACTION` is Optuna's; ``None`` keeps hyperopt's own
            ``⌈0.25·√T⌉``, which holds 2 trials of 60.
        hop_cache: folder of the hop stores (default ``$SGAP_CACHE/hops``,
            :func:`sgap_plugins._cache.cache_dir`; shared by every search on the same data).
        memory_budget: fp32 bytes of one store above which it is fp16 and memory-mapped.
        resume: continue the search recorded in ``out``; otherwise ``out`` must not hold
            one already.
        progress: show a tqdm bar (trials, best error, front size, time left).
        trial_fn: the trial function of the default executor (default
            :func:`~sgap_plugins.core.search.evaluation.evaluate_trial`); a module-level
            function so that it can be sent to a spawned process.
        executor: where the trials run (an :class:`~sgap_plugins.core.search.executors.Executor`);
            default ``LocalProcessPool(workers, trial_fn, trial_timeout)``. Its capacity
            replaces ``workers`` in the proposal lag.
        data_root, split_seed: the arguments ``data`` was loaded with
            (:func:`sgap_plugins.datasets.load_dataset`), recorded with the dataset's name
            and split fingerprint under ``"dataset"`` in ``search.json`` and ``pareto.json``
            (:func:`~sgap_plugins.core.search.evaluation.dataset_record`).
        presets: evaluate the presets (:meth:`tuned_presets`: with the dataset's recipes)
            on the search's hop stores with its training budget at the end
            (``presets.json``, stars on ``pareto.png``).
        warm_start: propose the presets that lie in the space first
            (:meth:`warm_start_points`), then ``n_startup`` random proposals, then TPE.
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
        startup: str = "lhs",
        good_fraction: float | None = GOOD_FRACTION,
        hop_cache: str | Path | None = None,
        memory_budget: int = DEFAULT_MEMORY_BUDGET,
        resume: bool = False,
        progress: bool = True,
        trial_fn: TrialFn = evaluate_trial,
        executor: Executor | None = None,
        data_root: str | Path | None = None,
        split_seed: int = 0,
        presets: bool = True,
        warm_start: bool = False,
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
        if startup not in STARTUPS:
            raise ValueError(f"startup must be one of {list(STARTUPS)}, got {startup!r}")
        if good_fraction is not None and not 0 < good_fraction <= 1:
            raise ValueError(f"good_fraction must lie in (0, 1] or be None, got {good_fraction!r}")
        if executor is None:
            executor = LocalProcessPool(workers, trial_fn, trial_timeout)
        elif not isinstance(executor, Executor):
            raise TypeError(
                f"executor must implement sgap_plugins.core.search.executors.Executor "
                f"(capacity, running, start, submit, wait, close), got {type(executor).__name__}"
            )
        self.data = data
        self.out = Path(out)
        self.max_evals = max_evals
        self.objectives = objectives
        self.space = space or DesignSpace.paper()
        self.base_config = base_config or DEFAULT_BASE_CONFIG
        self.budgets = budgets
        self.executor = executor
        self.seed = int(seed)
        self._n_startup_given = n_startup is not None
        self.n_startup = n_startup if n_startup is not None else max(1, min(20, max_evals // 4))
        self.startup = startup
        self.good_fraction = None if good_fraction is None else float(good_fraction)
        self._startup_points: list[dict[str, Any]] | None = None
        self.hop_cache = Path(hop_cache) if hop_cache is not None else cache_dir() / "hops"
        self.memory_budget = int(memory_budget)
        self.resume = resume
        self.progress = progress
        self.dataset = dataset_record(data, data_root, split_seed)
        self.presets = presets
        self.warm_start = bool(warm_start)
        self._warm: list[tuple[str, dict[str, Any]]] | None = None
        self._domain: Any = None
        self._context: TrialContext | None = None

    # ------------------------------------------------------------------ settings
    def settings(self) -> dict[str, Any]:
        """What defines the search (``resume`` checks it; ``max_evals`` and ``workers`` may
        change between runs). ``warm_start_points`` lists the warm-start points
        (``[{"preset", "point"}]``, empty without warm start), so that a resume after the
        presets or their recipes changed is refused rather than mixing two starts."""
        return {
            "dataset": self.dataset,
            "objectives": self.objectives,
            "budgets": self.budgets,
            "seed": self.seed,
            "space": self.space.describe(),
            "base_config": self.base_config.to_dict(),
            "n_startup": self.n_startup,
            "startup": self.startup,
            "good_fraction": self.good_fraction,
            "warm_start": self.warm_start,
            "warm_start_points": [
                {"preset": name, "point": point} for name, point in self.warm_start_points()
            ],
        }

    def _check_settings(self, has_trials: bool) -> None:
        """Check ``out`` against this search and write ``search.json``. A folder whose
        ``search.json`` has no finished trial (a search that failed to start) is taken over."""
        path = self.out / "search.json"
        settings = self.settings()
        if path.exists() and has_trials:
            if not self.resume:
                raise FileExistsError(
                    f"{self.out} already holds a search; pass resume=True (--resume) to continue "
                    "it or choose another output folder"
                )
            stored = _read_json(path)
            if not self._n_startup_given and "n_startup" in stored:
                # the default depends on max_evals, which a resumed search may raise
                self.n_startup = stored["n_startup"]
                settings["n_startup"] = self.n_startup
            # stored before they existed: hyperopt's split and random start-up
            if "good_fraction" not in stored:
                self.good_fraction = settings["good_fraction"] = None
            if "startup" not in stored:
                self.startup = stored["startup"] = settings["startup"] = "random"
            # a search stored before warm start existed had none
            stored.setdefault("warm_start", False)
            stored.setdefault("warm_start_points", [])
            # the data root is how the data was found, not what it is (name, size, split)
            if isinstance(stored.get("dataset"), dict):
                stored["dataset"] = {**stored["dataset"], "data_root": self.dataset["data_root"]}
            diff = sorted(
                k for k in settings if stored.get(k) != json.loads(json.dumps(settings[k]))
            )
            if diff:
                raise ValueError(
                    f"cannot resume: the search in {self.out} differs in {diff}; "
                    "use the same dataset, objectives, seed, space and warm start"
                )
        else:
            self.out.mkdir(parents=True, exist_ok=True)
            write_json_atomic(path, settings)

    # ------------------------------------------------------------------ proposals
    def warm_start_points(self) -> list[tuple[str, dict[str, Any]]]:
        """The ``(preset, point)`` pairs proposed first with ``warm_start`` (empty without).

        The presets of :data:`~sgap_plugins.core.config.PRESETS`, in its order, mapped by
        :meth:`DesignSpace.to_point <sgap_plugins.core.search.DesignSpace.to_point>`; a
        preset outside the space (an aggregator that is not a choice, e.g. GBP's fixed
        decay in the paper space, or a depth outside a range) is skipped, and a point
        already listed (the same model, :meth:`DesignSpace.model_key
        <sgap_plugins.core.search.DesignSpace.model_key>`) is not repeated (it keeps the
        first preset's name). When the space searches training hyperparameters, a
        preset's come from :meth:`tuned_presets` and are then moved into the ranges
        (:meth:`DesignSpace.clip_training
        <sgap_plugins.core.search.DesignSpace.clip_training>`: continuous values clipped,
        ``hidden`` snapped to the nearest choice). Without training ranges a point is the
        preset's architecture, trained with ``base_config`` like every trial.
        """
        if not self.warm_start:
            return []
        if self._warm is None:
            points: list[tuple[str, dict[str, Any]]] = []
            seen: set[str] = set()
            for name, config in self.tuned_presets().items():
                if self.space.training is not None:
                    config = self.space.clip_training(config)
                try:
                    point = self.space.to_point(config)
                except ValueError:
                    continue  # not in the space
                key = self.space.model_key(point)
                if key not in seen:
                    seen.add(key)
                    points.append((name, point))
            self._warm = points
        return self._warm

    def _next_point(self, n: int, history: Sequence[Trial]) -> dict[str, Any]:
        """Proposal ``n``: warm-start point ``n`` while there is one, else :meth:`propose`
        (so that an engine overriding ``propose`` is warm-started alike)."""
        warm = self.warm_start_points()
        return dict(warm[n][1]) if n < len(warm) else self.propose(n, history)

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

    def _tpe_gamma(self, t: int) -> dict[str, float]:
        """hyperopt's ``gamma`` for a history of ``t`` trials. TPE's good set is the
        ``⌈gamma·√t⌉`` best; ``gamma = (k − ½)/√t`` makes it the best ``k = ⌈q·t⌉``
        (``q·√t`` would too in exact arithmetic, but rounds to ``k + 1`` at t = 10, 20, …)."""
        if self.good_fraction is None or t == 0:
            return {}
        k = math.ceil(round(self.good_fraction * t, 9))
        return {"gamma": (k - 0.5) / math.sqrt(t)}

    def propose(self, n: int, history: Sequence[Trial]) -> dict[str, Any]:
        """Proposal ``n`` from ``history`` (the trials ``0 … n−W``), deterministic in
        ``(seed, n, history)``. The warm-start points count apart from the ``n_startup``
        start-up proposals, which come next: with ``startup="lhs"`` point ``n − P`` of the
        Latin hypercube (``P`` warm-start points), with ``"random"`` TPE's own random
        draws until the history holds ``n_startup`` trials beyond the warm start. Then TPE
        proposes; it avoids re-proposing an evaluated model when it can (10 tries), then
        falls back to the last proposal."""
        from hyperopt import STATUS_OK, Trials, base, tpe
        from hyperopt.base import JOB_STATE_DONE

        warm = len(self.warm_start_points())
        if self.startup == "lhs" and n - warm < self.n_startup:
            if self._startup_points is None:
                self._startup_points = self.space.latin_hypercube(self.n_startup, self.seed)
            return dict(self._startup_points[n - warm])
        if self._domain is None:
            self._domain = base.Domain(lambda _: 0.0, self.space.hyperopt_space())
        losses = self._losses(history, n)
        trials = Trials()
        if history:
            ids = list(range(len(history)))
            miscs = []
            for i, t in enumerate(history):
                # inert keys (k_pre = 0 leaves ga_pre and ma without effect, …) are left
                # out of the trial, as hyperopt records an inactive conditional parameter
                active = self.space.to_vals(t.point, active_only=True)
                miscs.append(
                    {
                        "tid": i,
                        "cmd": self._domain.cmd,
                        "workdir": None,
                        "idxs": {k: [i] if k in active else [] for k in self.space.keys()},
                        "vals": {k: active.get(k, []) for k in self.space.keys()},
                    }
                )
            results = [{"loss": loss, "status": STATUS_OK} for loss in losses]
            docs = trials.new_trial_docs(ids, [None] * len(ids), results, miscs)
            for d in docs:
                d["state"] = JOB_STATE_DONE
            trials.insert_trial_docs(docs)
            trials.refresh()
        seen = {self.space.model_key(t.point) for t in history}
        point: dict[str, Any] = {}
        for attempt in range(10):
            seed = int(np.random.SeedSequence([self.seed, n, attempt]).generate_state(1)[0])
            # The presets sit in one corner of the space (aug_na/ppr, shallow MLPs, little
            # post-processing): the n_startup spread-out points beyond them give TPE a
            # model of the rest of the space. After a Latin hypercube start-up TPE takes
            # over at once (hyperopt's minimum of 1), even while W − 1 of it still run.
            docs = tpe.suggest(
                [len(history)],
                self._domain,
                trials,
                seed,
                n_startup_jobs=self.n_startup + warm if self.startup == "random" else 1,
                **self._tpe_gamma(len(history)),
            )
            point = self.space.from_vals(docs[0]["misc"]["vals"])
            if self.space.model_key(point) not in seen:
                break
        return point

    # ------------------------------------------------------------------ running
    def prepare(self) -> TrialContext:
        """Propagate (or reuse) the hop store of every graph aggregator of the space and
        write the trial context (graph, labels, splits) to ``<out>/context``; once per
        engine (the presets reuse the trials' context)."""
        if self._context is None:
            store = HopStore(self.hop_cache, self.data, self.memory_budget)
            k = self.space.ranges["k_pre"][1]
            self._context = TrialContext.create(
                store,
                self.space.graph_aggregators,
                k,
                self.out / "context",
                self.memory_budget,
                progress=self.progress,
            )
        return self._context

    def tuned_presets(self) -> dict[str, SGAPConfig]:
        """The presets of :data:`~sgap_plugins.core.config.PRESETS` with the training values
        validated for this dataset (:func:`sgap_plugins.recipes.recipe` for ``data.name``)
        where there are some, else their own: what ``sgap train --preset P --dataset D``
        trains. The warm start and the reference presets both start from these."""
        from ...recipes import recipe  # the package's data, not a core module

        return {
            name: config.replace(**(recipe(self.data.name, name) or {}))
            for name, config in PRESETS.items()
        }

    def reference_presets(self) -> dict[str, dict[str, float]]:
        """Objectives, validation and test accuracy of the presets (:meth:`tuned_presets`)
        on the search's hop stores, with the search's training budget (epochs, patience) so
        that they compare with the trials on equal terms. Cached in ``<out>/presets.json``
        with the seed and the configurations, and evaluated again when either changed."""
        path = self.out / "presets.json"
        configs = {
            name: cfg.replace(epochs=self.base_config.epochs, patience=self.base_config.patience)
            for name, cfg in self.tuned_presets().items()
        }
        records = {name: cfg.to_dict() for name, cfg in configs.items()}
        if path.exists():
            cached = _read_json(path)
            if (
                cached.get("seed") == self.seed
                and cached.get("configs") == records
                and cached.get("presets")
            ):
                return dict(cached["presets"])
        if self.progress:
            print("evaluating the presets for comparison ...", file=sys.stderr, flush=True)
        refs = evaluate_presets(self.prepare(), self.space.graph_aggregators, configs, self.seed)
        write_json_atomic(path, {"seed": self.seed, "configs": records, "presets": refs})
        return refs

    def run(self) -> SearchResult:
        """Run (or resume) the search until ``max_evals`` trials are recorded, then write
        the outputs (``pareto.json``, ``trials.csv``, ``pareto.png``, ``presets.json``).

        Raises:
            FileExistsError: ``out`` holds a search and ``resume`` is off.
            ValueError: the search in ``out`` differs from this one, or its
                ``trials.jsonl`` holds a corrupt record
                (:class:`~sgap_plugins.core.search.journal.JournalError`).
            RuntimeError: called in a worker process re-importing the main script (a
                script without ``if __name__ == "__main__":``), or the workers could not
                start.
        """
        if _importing_main():
            raise RuntimeError(f"SearchEngine.run(): {MAIN_GUARD_HELP}")
        journal_path = self.out / "trials.jsonl"
        done: dict[int, Trial] = {}
        for t in read_trials(journal_path):
            done.setdefault(t.trial, t)  # the first record of a trial number wins
        self._check_settings(has_trials=bool(done))
        todo = [n for n in range(self.max_evals) if n not in done]
        executor = self.executor
        if executor.capacity < 1:
            raise ValueError(f"{executor!r} has capacity {executor.capacity}; it must be >= 1")
        lag = executor.capacity - 1
        pending: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}  # n -> (point, config)
        journal = None
        bar = None
        with _sigterm_interrupts():
            try:
                if todo:  # the workers start while the hop stores are prepared
                    executor.start(self.prepare, len(todo))
                journal = Journal(journal_path)
                if self.progress:
                    from tqdm.auto import tqdm

                    bar = tqdm(
                        total=self.max_evals, initial=min(len(done), self.max_evals), unit="trial"
                    )
                    self._update_bar(bar, done)
                while todo or executor.running:
                    # hand out proposals whose history (trials 0 … n−W) is complete
                    while todo and executor.running < executor.capacity:
                        n = todo[0]
                        horizon = max(0, n - lag)
                        if any(k not in done for k in range(horizon)):
                            break
                        todo.pop(0)
                        point = self._next_point(n, [done[k] for k in range(horizon)])
                        config = self.space.to_config(point, self.base_config).to_dict()
                        pending[n] = (point, config)
                        executor.submit(TrialJob(n, config, point["ga_pre"], self.seed))
                    for outcome in executor.wait():
                        point, config = pending.pop(outcome.trial)
                        trial = self._record(outcome, point, config)
                        journal.append(trial)
                        done[trial.trial] = trial
                        if bar is not None:
                            bar.update(1)
                            self._update_bar(bar, done)
            finally:
                executor.close()
                if journal is not None:
                    journal.close()
                if bar is not None:
                    bar.close()
        trials = [done[i] for i in sorted(done) if i < self.max_evals]
        result = SearchResult.from_trials(trials, self.objectives, self.budgets, self.dataset)
        references = self.reference_presets() if self.presets else {}
        title = f"{self.data.name}: {len(result.trials)} trials"
        write_outputs(result, self.out, references=references, title=title)
        return result

    def _record(
        self, outcome: TrialOutcome, point: dict[str, Any], config: dict[str, Any]
    ) -> Trial:
        n, out, secs = outcome.trial, outcome.result, outcome.seconds
        status, err = outcome.status, outcome.error
        warm = self.warm_start_points()
        mark = {"warm_start": warm[n][0]} if n < len(warm) else {}
        objectives: dict[str, float] = {}
        if status == "ok" and out is not None:
            objectives = {k: float(v) for k, v in out["objectives"].items()}
            if not all(math.isfinite(objectives.get(o, math.nan)) for o in self.objectives):
                status, err = "fail", f"non-finite objectives {objectives}"
        if status != "ok" or out is None:
            return Trial(
                n, point, config, "fail", error=err or "unknown error", seconds=secs, extra=mark
            )
        extra = {k: v for k, v in out.items() if k not in ("objectives", "test_acc", "val_acc")}
        extra.update(mark)
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
