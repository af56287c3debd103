"""Search quality side by side: our engine against random search, Optuna's samplers and OpenBox.

Five search engines run on one dataset with the same design space, the same evaluation
function and the same trial budget, and are compared by the hypervolume of their fronts
after 10, 20, … trials:

* ``sgap`` — :class:`~sgap_plugins.core.search.SearchEngine` (hyperopt TPE on ParEGO
  scalarisations, its defaults);
* ``random`` — uniform sampling of the same hyperopt space (hyperopt's ``rand.suggest``);
* ``optuna_tpe`` — Optuna's multi-objective ``TPESampler`` (its defaults);
* ``optuna_nsga2`` — Optuna's ``NSGAIISampler`` (population :data:`NSGA2_POPULATION` unless
  ``--nsga2-population``);
* ``openbox`` — OpenBox's advisor for parallel trials (``AsyncBatchAdvisor``; OpenBox is the
  PaSca authors' engine) with its defaults for two objectives (a Gaussian process per
  objective and expected hypervolume improvement), run in its own environment
  (``make env-openbox``: OpenBox pins numpy, scipy and pandas versions the package's
  environments cannot hold) by ``benchmarks/openbox_advisor.py`` (:class:`OpenBoxSearch`);
  integer dimensions are ordinal OpenBox ``Int`` variables, aggregators ``Categorical``
  over their labels.

and, to measure what each change of the engine bought (:data:`ABLATIONS`, not peers: the
report's target compares ``sgap`` with the peers only):

* ``sgap_v1`` — the engine before issue 12's changes: random start-up
  (``startup="random"``), hyperopt's own good set (``good_fraction=None``) and inert keys
  handed to TPE like the others (:class:`FlatSpace`);
* ``sgap_rand`` — today's engine with the random start-up;
* ``sgap_flat`` — today's engine with inert keys handed to TPE (:class:`FlatSpace`);
* ``sgap_warm`` — today's engine warm-started from the presets (``warm_start=True``).

Every peer is a :class:`SearchEngine` whose only change is :meth:`~SearchEngine.propose`:
trials run on the same executor with the engine's own
:func:`~sgap_plugins.core.search.evaluation.evaluate_trial` on its
:class:`~sgap_plugins.core.search.evaluation.TrialContext`, with the same base config
(:data:`~sgap_plugins.core.search.engine.DEFAULT_BASE_CONFIG`) and training seed (the
search seed), and are journalled to the same ``trials.jsonl`` schema, so a run resumes
where it stopped and :meth:`SearchResult.from_trials
<sgap_plugins.core.search.result.SearchResult.from_trials>` reads every engine's trials
alike. A peer's proposal ``n`` is, like the engine's, a function of the seed, ``n`` and the
trials before it only: the Optuna study is rebuilt from those trials for every proposal
(with a sampler seeded by ``(seed, n)``), and so is OpenBox's advisor (in a subprocess of
its environment), so a resumed run proposes what an uninterrupted one would have.

Runs are stored under ``<out>/<dataset>/<engine>-seed<s>/``; finished runs are skipped.
``--report`` reads the stored trials only and writes the table (mean ± std of the
hypervolume over seeds at every 10 trials) and the plot to ``docs/benchmarks/``
(``search_peers_<dataset>.md``, ``.png``, ``.json``).

**Hypervolume.** One normalisation and one reference point per dataset, shared by every
engine and seed (:func:`normalised_objectives`): each objective is min–max normalised over
all stored trials of the dataset (all engines, all seeds), after ``log10`` for times,
memory and parameter counts (:func:`~sgap_plugins.core.search.scalarization.normalise`, the
engine's own scalarisation: inference times span two orders of magnitude), and the
reference point is :data:`REFERENCE` = 1.1 in every normalised objective, just beyond the
worst trial seen, so that the extreme points of every front count. Each run's own
``pareto.json`` keeps the engine's per-run reference (its worst trial), which does not
compare across runs.

    .venv/bin/python benchmarks/search_peers.py --dataset cora --max-evals 60 --seeds 0,1,2
    .venv/bin/python benchmarks/search_peers.py --dataset cora --max-evals 60 --report
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sgap_plugins.core.search import DesignSpace, SearchEngine, TrainingRanges
from sgap_plugins.core.search.journal import Trial, read_trials
from sgap_plugins.core.search.pareto import hypervolume
from sgap_plugins.core.search.result import SearchResult
from sgap_plugins.core.search.scalarization import normalise
from sgap_plugins.datasets import DATASET_NAMES, cache_dir, load_dataset

PEERS = ("random", "optuna_tpe", "optuna_nsga2", "openbox")
ABLATIONS = ("sgap_v1", "sgap_rand", "sgap_flat", "sgap_warm")
ENGINES = ("sgap", *PEERS, *ABLATIONS)
# The reference point in normalised objectives (see the module docstring).
REFERENCE = 1.1
# Optuna's default population (50) would spend 50 of a 60-trial budget on its random first
# generation; 10 gives NSGA-II five generations of offspring within 60 trials.
NSGA2_POPULATION = 10
# OpenBox's environment (make env-openbox) and the script that proposes in it.
ROOT = Path(__file__).resolve().parents[1]
OPENBOX_PYTHON = ROOT / ".venv-openbox" / "bin" / "python"
OPENBOX_ADVISOR = Path(__file__).resolve().with_name("openbox_advisor.py")


# ---------------------------------------------------------------------- the peers
class FlatSpace(DesignSpace):
    """The same space with every key active: TPE's history keeps ``ga_pre``/``ma`` when
    ``k_pre = 0`` (and the other inert keys), as the engine did before
    :meth:`DesignSpace.active_keys` existed."""

    def active_keys(self, point: Mapping[str, Any]) -> tuple[str, ...]:
        return self.keys()


class RandomSearch(SearchEngine):
    """Uniform random search over the engine's hyperopt space (``hyperopt.rand``)."""

    name = "random"

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "engine": self.name}

    def propose(self, n: int, history: Sequence[Trial]) -> dict[str, Any]:
        """Proposal ``n``: a uniform draw seeded by ``(seed, n)``, whatever the history."""
        from hyperopt import Trials, base, rand

        if self._domain is None:
            self._domain = base.Domain(lambda _: 0.0, self.space.hyperopt_space())
        seed = int(np.random.SeedSequence([self.seed, n]).generate_state(1)[0])
        docs = rand.suggest([n], self._domain, Trials(), seed)
        return self.space.from_vals(docs[0]["misc"]["vals"])


class OptunaSearch(SearchEngine):
    """An Optuna sampler (``"tpe"`` or ``"nsga2"``) proposing on
    :meth:`DesignSpace.suggest_optuna`, all objectives minimised.

    Args:
        sampler: ``"tpe"`` (``TPESampler()``, Optuna's defaults) or ``"nsga2"``
            (``NSGAIISampler(population_size=population)``).
        population: NSGA-II's population size.
        *args, **kwargs: those of :class:`SearchEngine`.
    """

    def __init__(
        self, *args: Any, sampler: str = "tpe", population: int = NSGA2_POPULATION, **kwargs: Any
    ) -> None:
        if sampler not in ("tpe", "nsga2"):
            raise ValueError(f"sampler must be 'tpe' or 'nsga2', got {sampler!r}")
        if population < 2:
            raise ValueError(f"population must be at least 2, got {population}")
        super().__init__(*args, **kwargs)
        self.sampler = sampler
        self.population = int(population)
        self.name = f"optuna_{sampler}"

    def settings(self) -> dict[str, Any]:
        extra = {"population": self.population} if self.sampler == "nsga2" else {}
        return {**super().settings(), "engine": self.name, **extra}

    def _make_sampler(self, seed: int) -> Any:
        import optuna

        if self.sampler == "tpe":
            return optuna.samplers.TPESampler(seed=seed)
        return optuna.samplers.NSGAIISampler(population_size=self.population, seed=seed)

    def replay(self, history: Sequence[Trial], seed: int) -> Any:
        """A fresh in-memory Optuna study whose sampler (seeded by ``seed``) has seen
        ``history``, in trial order, through Optuna's public ask-and-tell interface as in a
        live run: ``enqueue_trial`` fixes the recorded point, ``tell`` gives its objectives
        (or ``FAIL``). Each replayed trial touches ``relative_params`` first, which a live
        trial does at its first suggestion, so that the sampler's own bookkeeping runs
        (NSGA-II assigns the trial its generation there)."""
        import optuna

        optuna.logging.set_verbosity(logging.WARNING)
        study = optuna.create_study(
            directions=["minimize"] * len(self.objectives), sampler=self._make_sampler(seed)
        )
        for t in history:
            study.enqueue_trial(dict(t.point))
            trial = study.ask()
            trial.relative_params  # noqa: B018 - runs the sampler's relative step
            self.space.suggest_optuna(trial)
            if t.status == "ok":
                study.tell(trial, [t.objectives[o] for o in self.objectives])
            else:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return study

    def propose(self, n: int, history: Sequence[Trial]) -> dict[str, Any]:
        """Proposal ``n``: the study of :meth:`replay` with a sampler seeded by
        ``(seed, n)`` asks for one trial of :meth:`DesignSpace.suggest_optuna`."""
        seed = int(np.random.SeedSequence([self.seed, n]).generate_state(1)[0])
        return self.space.suggest_optuna(self.replay(history, seed).ask())


def openbox_python(path: str | Path = OPENBOX_PYTHON) -> Path:
    """``path`` (absolute, the venv's link kept) when it is an interpreter, else a
    ``FileNotFoundError`` that names ``make env-openbox``."""
    python = Path(path).absolute()  # not resolve(): the link is what makes it the venv's
    if not (python.is_file() and os.access(python, os.X_OK)):
        raise FileNotFoundError(
            f"OpenBox's interpreter {python} does not exist: run `make env-openbox` to create "
            ".venv-openbox (OpenBox 0.9.0, constraints/openbox.txt), or pass --openbox-python"
        )
    return python


class OpenBoxSearch(SearchEngine):
    """OpenBox's advisor (its multi-objective defaults), run by
    ``benchmarks/openbox_advisor.py`` in a subprocess of OpenBox's own interpreter, started
    at the first proposal and serving them all (a fresh advisor per proposal).

    OpenBox's parallel advisor (``AsyncBatchAdvisor``) proposes neither a point of the
    history nor a running one, and its Bayesian optimisation, given one history, keeps
    proposing the same best candidate; so proposal ``n`` is told the points still running
    (proposals ``len(history) … n−1``, :meth:`running`), which are themselves proposals from
    shorter histories and so again a function of ``(seed, n, history)``. A run remembers its
    proposals; a fresh engine (a resume) makes the chain of running proposals again, up to
    ``n`` advisor calls (2–4 s each) for its first proposal.

    Args:
        python: the interpreter of OpenBox's environment (``make env-openbox``).
        *args, **kwargs: those of :class:`SearchEngine`.

    Raises:
        FileNotFoundError: ``python`` does not exist (:func:`openbox_python`).
    """

    name = "openbox"

    def __init__(self, *args: Any, python: str | Path = OPENBOX_PYTHON, **kwargs: Any) -> None:
        self.python = openbox_python(python)
        super().__init__(*args, **kwargs)
        self._proposals: dict[tuple[int, str], dict[str, Any]] = {}
        self._process: subprocess.Popen[str] | None = None
        self._stderr: Any = None  # the advisor's log, read when it fails

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "engine": self.name}

    def _history(self, history: Sequence[Trial]) -> list[dict[str, Any]]:
        """The history as the advisor reads it (``objectives`` ``None`` for a failure)."""
        return [
            {
                "point": dict(t.point),
                "objectives": [t.objectives[o] for o in self.objectives]
                if t.status == "ok"
                else None,
            }
            for t in history
        ]

    def request(
        self, n: int, history: Sequence[Trial], running: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        """The advisor's JSON request for proposal ``n``: the space
        (:meth:`DesignSpace.describe`), the objectives, the search seed (OpenBox's initial
        design), ``n`` and a proposal seed drawn from ``(seed, n)`` as the other peers do,
        the history in trial order and the ``running`` points (``len(history) + len(running)
        = n``)."""
        if len(history) + len(running) != n:
            raise ValueError(
                f"proposal {n} follows {len(history)} trials and {len(running)} running ones; "
                "their sum must be n"
            )
        return {
            "space": self.space.describe(),
            "objectives": list(self.objectives),
            "seed": self.seed,
            "n": n,
            "proposal_seed": int(np.random.SeedSequence([self.seed, n]).generate_state(1)[0]),
            "history": self._history(history),
            "running": [dict(p) for p in running],
        }

    def running(self, n: int, history: Sequence[Trial]) -> list[dict[str, Any]]:
        """The points of the trials running while proposal ``n`` is made from ``history``:
        proposals ``k = len(history) … n−1``, each from the history the engine gave it
        (its first ``k − lag`` trials, ``lag = n − len(history)`` the workers beyond the
        first); remembered from the run, or proposed again on a resume."""
        lag = n - len(history)
        return [self.propose(k, history[: max(0, k - lag)]) for k in range(len(history), n)]

    def propose(self, n: int, history: Sequence[Trial]) -> dict[str, Any]:
        """Proposal ``n``: the advisor's answer to :meth:`request` with the :meth:`running`
        points (deterministic in the request: OpenBox's BLAS and hashing are pinned to one
        thread and one seed).

        Raises:
            RuntimeError: the advisor failed (its stderr is quoted) or answered a point
                outside the space.
        """
        key = (n, json.dumps(self._history(history)))
        if key in self._proposals:
            return dict(self._proposals[key])
        request = self.request(n, history, self.running(n, history))
        point = self._ask(request)["point"]
        try:
            self.space.validate(point)
        except ValueError as err:
            raise RuntimeError(f"the OpenBox advisor proposed {point}: {err}") from err
        self._proposals[key] = {k: point[k] for k in self.space.keys()}
        return dict(self._proposals[key])

    def _ask(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """The advisor's answer to one request (the advisor started on first use)."""
        if self._process is None:
            env = {
                **os.environ,
                "PYTHONHASHSEED": "0",
                "OMP_NUM_THREADS": "1",
                "OPENBLAS_NUM_THREADS": "1",
                "MKL_NUM_THREADS": "1",
            }
            # a file, not a pipe: a log nobody reads while the advisor runs cannot fill it
            self._stderr = tempfile.TemporaryFile("w+")
            self._process = subprocess.Popen(
                [str(self.python), str(OPENBOX_ADVISOR)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                text=True,
                env=env,
            )
            weakref.finalize(self, _stop, self._process, self._stderr)
        process = self._process
        assert process.stdin is not None and process.stdout is not None
        try:
            process.stdin.write(json.dumps(request) + "\n")
            process.stdin.flush()
            line = process.stdout.readline()
        except BrokenPipeError:
            line = ""
        if not line:
            code = process.wait()
            self._stderr.seek(0)
            log = self._stderr.read()[-2000:]
            _stop(process, self._stderr)
            self._process = None
            raise RuntimeError(
                f"the OpenBox advisor ({self.python} {OPENBOX_ADVISOR.name}) failed on proposal "
                f"{request['n']} with exit code {code}:\n{log}"
            )
        return dict(json.loads(line))

    def close(self) -> None:
        """Stop the advisor (the next proposal starts it again)."""
        if self._process is not None:
            _stop(self._process, self._stderr)
            self._process = None

    def run(self) -> SearchResult:
        """:meth:`SearchEngine.run`, then :meth:`close`."""
        try:
            return super().run()
        finally:
            self.close()


def _stop(process: subprocess.Popen[str], log: Any) -> None:
    """End the advisor ``process`` (closing its stdin ends its loop) and its ``log``."""
    if process.stdin is not None and not process.stdin.closed:
        try:
            process.stdin.close()
        except BrokenPipeError:
            pass
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if process.stdout is not None:
        process.stdout.close()
    log.close()


def make_engine(
    name: str,
    *args: Any,
    population: int = NSGA2_POPULATION,
    openbox: str | Path = OPENBOX_PYTHON,
    **kwargs: Any,
) -> SearchEngine:
    """The engine ``name`` (one of :data:`ENGINES`) with :class:`SearchEngine`'s arguments
    (``population``: NSGA-II's; ``openbox``: OpenBox's interpreter)."""
    if name == "sgap":
        return SearchEngine(*args, **kwargs)
    if name in ABLATIONS:
        if name in ("sgap_v1", "sgap_flat"):
            space = kwargs["space"]
            kwargs["space"] = FlatSpace(
                **{k: space.ranges[k] for k in ("k_pre", "k_trans", "k_post")},
                graph_aggregators=space.graph_aggregators,
                message_aggregators=space.message_aggregators,
                training=space.training,
            )
        if name == "sgap_v1":
            kwargs["good_fraction"] = None
        if name in ("sgap_v1", "sgap_rand"):
            kwargs["startup"] = "random"
        kwargs["warm_start"] = name == "sgap_warm"
        return SearchEngine(*args, **kwargs)
    if name == "random":
        return RandomSearch(*args, **kwargs)
    if name in ("optuna_tpe", "optuna_nsga2"):
        return OptunaSearch(*args, sampler=name.split("_")[1], population=population, **kwargs)
    if name == "openbox":
        return OpenBoxSearch(*args, python=openbox, **kwargs)
    raise ValueError(f"unknown engine {name!r}; choose from {list(ENGINES)}")


# ---------------------------------------------------------------------- the report
def load_runs(root: Path, dataset: str) -> tuple[dict[str, dict[int, list[Trial]]], list[str]]:
    """The runs stored under ``root/dataset/<engine>-seed<s>/``: ``({engine: {seed: trials
    in trial order}}, objectives)``.

    Raises:
        ValueError: the runs differ in objectives, design space or base config (their
            ``search.json``), so their hypervolumes would not compare.
    """
    runs: dict[str, dict[int, list[Trial]]] = {}
    common: dict[str, Any] | None = None
    for journal in sorted((root / dataset).glob("*-seed*/trials.jsonl")):
        engine, _, seed = journal.parent.name.rpartition("-seed")
        if engine not in ENGINES or not seed.isdigit():
            continue
        settings = json.loads((journal.parent / "search.json").read_text())
        shared = {k: settings.get(k) for k in ("objectives", "space", "base_config", "budgets")}
        if common is None:
            common = shared
        elif shared != common:
            diff = sorted(k for k in shared if shared[k] != common[k])
            raise ValueError(
                f"{journal.parent} differs from the other runs in {diff}; compare runs of one "
                "setting (use another --out for another space or objectives)"
            )
        done: dict[int, Trial] = {}
        for t in read_trials(journal):
            done.setdefault(t.trial, t)  # the first record of a trial number wins, as resume
        runs.setdefault(engine, {})[int(seed)] = [done[k] for k in sorted(done)]
    return runs, list(common["objectives"]) if common else []


def normalised_objectives(
    runs: Mapping[str, Mapping[int, Sequence[Trial]]], objectives: Sequence[str]
) -> dict[tuple[str, int, int], np.ndarray]:
    """``{(engine, seed, trial): normalised objective vector}`` of every finished trial,
    with one min–max normalisation over all of them
    (:func:`~sgap_plugins.core.search.scalarization.normalise`)."""
    keys, rows = [], []
    for engine, seeds in runs.items():
        for seed, trials in seeds.items():
            for t in trials:
                if t.status == "ok":
                    keys.append((engine, seed, t.trial))
                    rows.append([t.objectives[o] for o in objectives])
    if not rows:
        return {}
    values = normalise(np.asarray(rows, dtype=np.float64), objectives)
    return dict(zip(keys, values, strict=True))


def hypervolume_curve(
    trials: Sequence[Trial],
    objectives: Sequence[str],
    scaled: Mapping[tuple[str, int, int], np.ndarray],
    engine: str,
    seed: int,
) -> np.ndarray:
    """Hypervolume ``[len(trials)]`` of the front of trials ``0 … t−1`` for every ``t``
    (failed trials count against the budget), in the normalised objectives ``scaled`` with
    the reference point :data:`REFERENCE` in every objective."""
    ref = [REFERENCE] * len(objectives)
    curve = np.zeros(len(trials))
    for t in range(1, len(trials) + 1):
        front = SearchResult.from_trials(trials[:t], objectives).front
        points = [scaled[(engine, seed, f.trial)] for f in front]
        curve[t - 1] = hypervolume(np.asarray(points), ref) if points else 0.0
    return curve


def hypervolume_table(
    runs: Mapping[str, Mapping[int, Sequence[Trial]]],
    objectives: Sequence[str],
    max_evals: int,
    step: int = 10,
) -> dict[str, Any]:
    """Hypervolume curves and their summary at ``step, 2·step, …, max_evals`` trials.

    Only runs with at least ``max_evals`` trials count (a run still going would pull the
    mean down); the normalisation uses all of their first ``max_evals`` trials.

    Returns:
        ``{"objectives", "max_evals", "reference", "checkpoints": [t…], "engines":
        {engine: {"seeds": [s…], "curves": [[hv after 1 … max_evals trials] per seed],
        "mean": [per checkpoint], "std": [per checkpoint, sample std, 0 for one seed]}}}``.
    """
    complete = {
        engine: {s: list(ts[:max_evals]) for s, ts in seeds.items() if len(ts) >= max_evals}
        for engine, seeds in runs.items()
    }
    complete = {e: s for e, s in complete.items() if s}
    scaled = normalised_objectives(complete, objectives)
    checkpoints = sorted({*range(step, max_evals + 1, step), max_evals})
    out: dict[str, Any] = {
        "objectives": list(objectives),
        "max_evals": max_evals,
        "reference": [REFERENCE] * len(objectives),
        "checkpoints": checkpoints,
        "engines": {},
    }
    for engine in ENGINES:
        if engine not in complete:
            continue
        seeds = sorted(complete[engine])
        curves = np.stack(
            [hypervolume_curve(complete[engine][s], objectives, scaled, engine, s) for s in seeds]
        )
        at = curves[:, [c - 1 for c in checkpoints]]
        std = at.std(axis=0, ddof=1) if len(seeds) > 1 else np.zeros(len(checkpoints))
        out["engines"][engine] = {
            "seeds": seeds,
            "curves": curves.tolist(),
            "mean": at.mean(axis=0).tolist(),
            "std": std.tolist(),
        }
    return out


def markdown(table: Mapping[str, Any], dataset: str, target: Sequence[int] = (30, 60)) -> str:
    """The table as Markdown, with the issue's target (our mean ≥ every peer's mean at
    ``target`` trials) checked where the table has those checkpoints."""
    checkpoints = table["checkpoints"]
    engines = table["engines"]
    lines = [
        f"Hypervolume on {dataset} ({' × '.join(table['objectives'])}; normalised over all "
        f"stored trials, reference {table['reference']}), mean ± std over search seeds:",
        "",
        "| engine | seeds | " + " | ".join(f"{c} trials" for c in checkpoints) + " |",
        "|---|---|" + "---|" * len(checkpoints),
    ]
    for engine, row in engines.items():
        cells = [f"{m:.4f} ± {s:.4f}" for m, s in zip(row["mean"], row["std"], strict=True)]
        seeds = ",".join(str(s) for s in row["seeds"])
        lines.append(f"| {engine} | {seeds} | " + " | ".join(cells) + " |")
    peers = [e for e in engines if e in PEERS]
    if "sgap" in engines and peers:
        lines.append("")
        for t in sorted(set(target)):
            if t not in checkpoints:
                continue
            i = checkpoints.index(t)
            ours = engines["sgap"]["mean"][i]
            best_peer = max(peers, key=lambda e: engines[e]["mean"][i])
            peer = engines[best_peer]["mean"][i]
            verdict = "met" if ours >= peer else "NOT met"
            lines.append(
                f"- {t} trials: sgap {ours:.4f} vs best peer {best_peer} {peer:.4f}: "
                f"target {verdict}"
            )
    return "\n".join(lines) + "\n"


def plot(table: Mapping[str, Any], path: Path, title: str) -> None:
    """Hypervolume against trials: the mean over seeds and a min–max band for our engine
    and each peer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for engine, row in table["engines"].items():
        if engine in ABLATIONS:  # in the table only: seven bands would hide each other
            continue
        curves = np.asarray(row["curves"])
        x = np.arange(1, curves.shape[1] + 1)
        (line,) = ax.plot(x, curves.mean(axis=0), label=f"{engine} (n={len(row['seeds'])})")
        ax.fill_between(
            x, curves.min(axis=0), curves.max(axis=0), alpha=0.2, color=line.get_color()
        )
    ax.set_xlabel("trials")
    ax.set_ylabel("hypervolume (normalised objectives)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(root: Path, dataset: str, max_evals: int, docs: Path) -> str:
    """Write ``search_peers_<dataset>.{md,json,png}`` to ``docs`` from the stored trials;
    return the Markdown."""
    runs, objectives = load_runs(root, dataset)
    table = hypervolume_table(runs, objectives, max_evals)
    if not table["engines"]:
        raise SystemExit(f"no run of {dataset} with {max_evals} trials under {root / dataset}")
    docs.mkdir(parents=True, exist_ok=True)
    text = markdown(table, dataset, target=(30, max_evals))
    (docs / f"search_peers_{dataset}.md").write_text(text)
    (docs / f"search_peers_{dataset}.json").write_text(json.dumps({"dataset": dataset, **table}))
    plot(table, docs / f"search_peers_{dataset}.png", f"{dataset}: hypervolume vs trials")
    return text


# ---------------------------------------------------------------------- the runs
def run_one(
    engine: str, seed: int, args: argparse.Namespace, data: Any, space: DesignSpace
) -> None:
    out = Path(args.out) / data.name / f"{engine}-seed{seed}"
    done = {t.trial for t in read_trials(out / "trials.jsonl")}
    if all(n in done for n in range(args.max_evals)):
        print(f"{out}: {args.max_evals} trials already recorded", file=sys.stderr)
        return
    search = make_engine(
        engine,
        data,
        out,
        args.max_evals,
        objectives=args.objectives,
        space=space,
        workers=args.workers,
        seed=seed,
        hop_cache=cache_dir() / "hops",
        resume=(out / "search.json").exists(),
        progress=not args.no_progress,
        data_root=args.data_root,
        split_seed=args.split_seed,
        presets=False,
        population=args.nsga2_population,
        openbox=args.openbox_python,
    )
    start = time.perf_counter()
    result = search.run()
    print(
        f"{out}: {len(result.trials)} trials, front {len(result.front)}, "
        f"{time.perf_counter() - start:.0f} s",
        file=sys.stderr,
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="cora", choices=DATASET_NAMES)
    p.add_argument("--data-root", default=None)
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument(
        "--engines",
        default=",".join(("sgap", *PEERS)),
        help=f"comma-separated, of {', '.join(ENGINES)} (default: sgap and the peers)",
    )
    p.add_argument("--seeds", default="0,1,2", help="search seeds (also the training seed)")
    p.add_argument("--max-evals", type=int, default=60)
    p.add_argument(
        "--objectives",
        default="val_error,inference_time",
        help="comma-separated; e.g. val_error,params for a deterministic cost",
    )
    p.add_argument(
        "--search-training",
        action="store_true",
        help="search lr, weight decay, hidden, dropout, input dropout too "
        "(DesignSpace.paper(training=...))",
    )
    p.add_argument("--workers", type=int, default=1, help="trial processes per run (default 1)")
    p.add_argument("--nsga2-population", type=int, default=NSGA2_POPULATION)
    p.add_argument(
        "--openbox-python",
        default=str(OPENBOX_PYTHON),
        help="OpenBox's interpreter (default: .venv-openbox/bin/python, make env-openbox)",
    )
    p.add_argument("--out", default="benchmarks/results/search_quality")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--report", action="store_true", help="only write the table and plot")
    p.add_argument("--docs", default="docs/benchmarks", help="where --report writes")
    args = p.parse_args(argv)
    args.objectives = [o for o in args.objectives.split(",") if o]
    engines = [e for e in args.engines.split(",") if e]
    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        p.error(f"--engines: unknown {unknown}; choose from {list(ENGINES)}")
    if args.report:
        print(report(Path(args.out), args.dataset, args.max_evals, Path(args.docs)))
        return 0
    if "openbox" in engines:  # before any run starts, not after the other engines' runs
        try:
            openbox_python(args.openbox_python)
        except FileNotFoundError as err:
            p.error(f"--engines openbox: {err}")
    torch.set_num_threads(1)
    data = load_dataset(args.dataset, args.data_root, args.split_seed)
    space = DesignSpace.paper(training=TrainingRanges() if args.search_training else None)
    for seed in (int(s) for s in args.seeds.split(",") if s):
        for engine in engines:
            run_one(engine, seed, args, data, space)
    return 0


if __name__ == "__main__":
    sys.exit(main())
