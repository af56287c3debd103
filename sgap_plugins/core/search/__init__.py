"""PaSca: multi-objective architecture search over the SGAP design space.

* :mod:`~sgap_plugins.core.search.space` — :class:`DesignSpace`, the paper's 181,500
  architectures (plus plugin aggregators and optional training ranges) as a hyperopt space;
  points ↔ :class:`SGAPConfig`.
* :mod:`~sgap_plugins.core.search.engine` — :class:`SearchEngine` / :func:`search`: TPE
  proposals and their scheduling, resume.
* :mod:`~sgap_plugins.core.search.scalarization` — normalisation, ParEGO's augmented
  Chebyshev function, the constrained loss.
* :mod:`~sgap_plugins.core.search.executors` — the :class:`Executor` protocol and
  :class:`LocalProcessPool` (worker processes, timeouts, crash handling).
* :mod:`~sgap_plugins.core.search.ray_executor` — :class:`RayExecutor`: trials as Ray
  tasks sharing the hop stores (``pip install 'sgap-plugins[ray]'``; Ray is imported only
  when one is created).
* :mod:`~sgap_plugins.core.search.journal` — :class:`Trial` records and the durable,
  schema-versioned ``trials.jsonl``.
* :mod:`~sgap_plugins.core.search.evaluation` — hop stores propagated once per graph
  aggregator and the five objectives of a trial.
* :mod:`~sgap_plugins.core.search.result` / :mod:`~sgap_plugins.core.search.pareto` —
  :class:`SearchResult`, exact Pareto fronts (:func:`non_dominated`, :func:`hypervolume`).

hyperopt (and matplotlib for the plot) come with ``pip install 'sgap-plugins[search]'``.
"""

from .engine import SearchEngine, search
from .evaluation import OBJECTIVES, HopStore, TrialContext, evaluate_trial
from .executors import Executor, LocalProcessPool, TrialJob, TrialOutcome
from .journal import JournalError, Trial, read_trials
from .pareto import dominates, hypervolume, non_dominated
from .ray_executor import RayExecutor
from .result import SearchResult
from .space import AggregatorChoice, DesignSpace, TrainingRanges

__all__ = [
    "OBJECTIVES",
    "AggregatorChoice",
    "DesignSpace",
    "Executor",
    "HopStore",
    "JournalError",
    "LocalProcessPool",
    "RayExecutor",
    "SearchEngine",
    "SearchResult",
    "TrainingRanges",
    "Trial",
    "TrialContext",
    "TrialJob",
    "TrialOutcome",
    "dominates",
    "evaluate_trial",
    "hypervolume",
    "non_dominated",
    "read_trials",
    "search",
]
