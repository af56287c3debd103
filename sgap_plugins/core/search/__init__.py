"""PaSca: multi-objective architecture search over the SGAP design space.

* :class:`DesignSpace` — the paper's 181,500 architectures (plus plugin aggregators and
  optional training ranges) as a hyperopt space; points ↔ :class:`SGAPConfig`.
* :class:`SearchEngine` / :func:`search` — TPE proposals with ParEGO scalarisation or a
  constrained loss, parallel worker processes, durable ``trials.jsonl`` and resume.
* :mod:`~sgap_plugins.core.search.evaluation` — hop stores propagated once per graph
  aggregator and the five objectives of a trial.
* :func:`non_dominated`, :func:`hypervolume` — exact Pareto fronts.

hyperopt (and matplotlib for the plot) come with ``pip install 'sgap-plugins[search]'``.
"""

from .engine import SearchEngine, SearchResult, Trial, read_trials, search
from .evaluation import OBJECTIVES, HopStore, TrialContext, evaluate_trial
from .pareto import dominates, hypervolume, non_dominated
from .space import AggregatorChoice, DesignSpace, TrainingRanges

__all__ = [
    "OBJECTIVES",
    "AggregatorChoice",
    "DesignSpace",
    "HopStore",
    "SearchEngine",
    "SearchResult",
    "TrainingRanges",
    "Trial",
    "TrialContext",
    "dominates",
    "evaluate_trial",
    "hypervolume",
    "non_dominated",
    "read_trials",
    "search",
]
