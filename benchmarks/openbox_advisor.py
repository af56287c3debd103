"""One OpenBox proposal for ``benchmarks/search_peers.py``, run inside ``.venv-openbox``.

OpenBox (the PaSca authors' engine) pins numpy, scipy and pandas versions that the package's
environments cannot hold, so it runs in its own environment (``make env-openbox``) and this
script imports only OpenBox (with its ConfigSpace) and the standard library. It answers JSON
requests on stdin, one a line, with one JSON line each on stdout (OpenBox's log goes to
stderr), until stdin closes; one process serves a whole search, importing OpenBox once::

    request = {
        "space": DesignSpace.describe(),       # ranges, aggregator labels, training ranges
        "objectives": ["val_error", "inference_time"],   # all minimised
        "seed": 0,                             # the search seed: the initial design
        "n": 7,                                # the proposal number
        "proposal_seed": 123456789,            # seeded by (seed, n): everything else
        "history": [{"point": {...}, "objectives": [0.21, 3.1e-4]},   # a finished trial
                    {"point": {...}, "objectives": null}, ...],       # a failed one
        "running": [{...}, ...],               # points proposed after the history, running
    }
    answer = {"point": {...}}                  # values as DesignSpace points hold them

**The space.** ``k_pre``, ``k_trans`` and ``k_post`` are OpenBox ``Int`` variables over
their inclusive ranges (ordinal integers, as the other engines model them), the aggregators
``Categorical`` over their labels; with training ranges ``lr`` and ``weight_decay`` are
log-scaled ``Real``, ``hidden`` a ``Categorical`` of the widths, ``dropout`` and
``input_dropout`` ``Real``. No conditions: inert keys are drawn too, as for every peer.

**The advisor.** ``AsyncBatchAdvisor(space, num_objectives=m)``, the advisor of OpenBox's
own asynchronous parallel optimiser (``ParallelOptimizer(parallel_strategy="async")``), as
the search runs its trials on ``W`` workers: the generic ``Advisor`` that also knows the
running trials. OpenBox's defaults otherwise: three initial points
(``random_explore_first``: the most spread-out of random samples), a random proposal with
probability 0.1, and Bayesian optimisation whose surrogate and acquisition OpenBox picks
from the space (``auto``): for the six-dimensional architecture space a Gaussian process per
objective and expected hypervolume improvement (EHVI) maximised by interleaved local and
random search, the best candidate neither in the history nor running (the async advisor's
default batch strategy); with the eleven dimensions of the training ranges OpenBox switches
to its probabilistic random forest. The objectives are handed over as measured (OpenBox's
GP standardises them). A failed trial is an OpenBox ``FAILED`` observation, which OpenBox
counts at the worst value seen.

EHVI needs a reference point (OpenBox has no default): :func:`reference_point` takes the
worst value of each objective over the finished trials plus a tenth of its range, the
report's ``REFERENCE = 1.1`` in min–max units, so every trial of the history, the extreme
ones included, adds to the hypervolume that EHVI improves.

**Replay.** At every proposal a fresh advisor, seeded by ``proposal_seed``, is handed the
initial design that a live advisor would have built once from ``seed``, sees the history
trial by trial as a live run would (proposed, then ``update_observation``), is told the
running points, and answers ``get_suggestion``: initial point ``n`` (history plus running)
while there is one, OpenBox's random fallback while fewer than three trials succeeded, then
Bayesian optimisation. The answer is a function of the request alone.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

INT_KEYS = ("k_pre", "k_trans", "k_post")
AGGREGATOR_KEYS = {
    "ga_pre": "graph_aggregators",
    "ma": "message_aggregators",
    "ga_post": "graph_aggregators",
}
ARCH_KEYS = ("k_pre", "ga_pre", "ma", "k_trans", "k_post", "ga_post")
# A tenth of each objective's range beyond its worst value (the report's 1.1).
REFERENCE_MARGIN = 0.1


def build_space(description: Mapping[str, Any]) -> Any:
    """The OpenBox space of a ``DesignSpace.describe()`` dict (see the module docstring)."""
    from openbox import space as sp

    space = sp.Space()
    variables: list[Any] = []
    for key in ARCH_KEYS:
        if key in INT_KEYS:
            lo, hi = description["ranges"][key]
            variables.append(sp.Int(key, int(lo), int(hi)))
        else:
            labels = [label for label, _, _ in description[AGGREGATOR_KEYS[key]]]
            variables.append(sp.Categorical(key, labels))
    training = description.get("training")
    if training is not None:
        variables += [
            sp.Real("lr", *map(float, training["lr"]), log=True),
            sp.Real("weight_decay", *map(float, training["weight_decay"]), log=True),
            sp.Categorical("hidden", [int(h) for h in training["hidden"]]),
            sp.Real("dropout", *map(float, training["dropout"])),
            sp.Real("input_dropout", *map(float, training["input_dropout"])),
        ]
    space.add_variables(variables)
    return space


def to_point(config: Any) -> dict[str, Any]:
    """A DesignSpace point (plain ``int`` / ``float`` / ``str`` values) of an OpenBox
    configuration."""
    point: dict[str, Any] = {}
    for key, value in config.get_dictionary().items():
        if key in INT_KEYS or key == "hidden":
            point[key] = int(value)
        elif key in AGGREGATOR_KEYS:
            point[key] = str(value)
        else:
            point[key] = float(value)
    return point


def reference_point(history: Sequence[Mapping[str, Any]], num_objectives: int) -> list[float]:
    """EHVI's reference point: per objective, the worst finished value plus
    :data:`REFERENCE_MARGIN` of the range (of the value itself when the range is 0, and 1.0
    before any trial finished, when OpenBox proposes from its initial design anyway)."""
    done = [h["objectives"] for h in history if h["objectives"] is not None]
    if not done:
        return [1.0] * num_objectives
    ref = []
    for i in range(num_objectives):
        values = [float(v[i]) for v in done]
        lo, hi = min(values), max(values)
        span = hi - lo if hi > lo else max(abs(hi), 1e-12)
        ref.append(hi + REFERENCE_MARGIN * span)
    return ref


def make_advisor(
    space: Any,
    num_objectives: int,
    ref_point: list[float],
    seed: int,
    initial_configurations: list[Any] | None = None,
) -> Any:
    """OpenBox's ``AsyncBatchAdvisor`` with its defaults for ``num_objectives`` objectives,
    seeded by ``seed``, without log files; ``initial_configurations`` replace the initial
    design it would draw."""
    from openbox import AsyncBatchAdvisor

    return AsyncBatchAdvisor(
        space,
        num_objectives=num_objectives,
        initial_configurations=initial_configurations,
        ref_point=ref_point,
        random_state=seed,
        output_dir=None,
        logger_kwargs={"level": "WARNING", "color": False},
    )


def suggest(request: Mapping[str, Any]) -> dict[str, Any]:
    """The answer to one request (see the module docstring)."""
    from openbox import Observation
    from openbox.utils.constants import FAILED, SUCCESS

    m = len(request["objectives"])
    history = list(request["history"])
    if len(history) + len(request["running"]) != int(request["n"]):
        raise ValueError(
            f"proposal n={request['n']} must follow its history ({len(history)} trials) and "
            f"the running trials ({len(request['running'])})"
        )
    ref = reference_point(history, m)
    space = build_space(request["space"])
    # the initial design of a live run, built once from the search seed
    initial = make_advisor(space, m, ref, int(request["seed"])).initial_configurations
    advisor = make_advisor(space, m, ref, int(request["proposal_seed"]), list(initial))
    for h in history:
        config = _configuration(space, h["point"])
        failed = h["objectives"] is None
        advisor.running_configs.append(config)  # proposed, then observed, as in a live run
        advisor.update_observation(
            Observation(
                config=config,
                objectives=[float("inf")] * m if failed else [float(v) for v in h["objectives"]],
                trial_state=FAILED if failed else SUCCESS,
            )
        )
    advisor.running_configs.extend(_configuration(space, p) for p in request["running"])
    return {"point": to_point(advisor.get_suggestion())}


def _configuration(space: Any, point: Mapping[str, Any]) -> Any:
    from ConfigSpace import Configuration

    names = space.get_hyperparameter_names()
    return Configuration(space, values={k: point[k] for k in names})


def main() -> int:
    """Answer every request line on stdin (an error ends the process with its traceback on
    stderr)."""
    for line in sys.stdin:
        if not line.strip():
            continue
        # OpenBox and its dependencies may print; stdout carries the answers only
        with contextlib.redirect_stdout(sys.stderr):
            answer = suggest(json.loads(line))
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
