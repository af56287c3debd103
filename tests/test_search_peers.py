"""The search-quality comparison (benchmarks/search_peers.py): the design space as an Optuna
space, the peers' proposals, and the hypervolume table from stored trials."""

from __future__ import annotations

import itertools
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest

optuna = pytest.importorskip(
    "optuna", reason="optuna is the 'bench' extra, installed in the compat env (.venv) only"
)
import search_peers as peers  # noqa: E402  (benchmarks/, on sys.path by conftest.py)

from sgap_plugins.core.config import SGAPConfig  # noqa: E402
from sgap_plugins.core.search import DesignSpace, TrainingRanges  # noqa: E402
from sgap_plugins.core.search.journal import Journal, Trial  # noqa: E402
from sgap_plugins.core.search.space import ARCH_KEYS, INT_KEYS, AggregatorChoice  # noqa: E402
from sgap_plugins.core.synthetic import csbm  # noqa: E402

SPACES = {
    "paper": DesignSpace.paper(),
    "paper+training": DesignSpace.paper(training=TrainingRanges()),
    "narrow": DesignSpace(
        k_pre=(2, 4),
        k_trans=(1, 3),
        k_post=(0, 2),
        graph_aggregators=[
            AggregatorChoice("aug_na", "aug_na"),
            AggregatorChoice("tri", "triangle"),
        ],
        message_aggregators=[AggregatorChoice("mean", "mean")],
        training=TrainingRanges(
            lr=(0.01, 0.1), hidden=(8, 16), dropout=(0.1, 0.2), input_dropout=(0.3, 0.4)
        ),
    ),
}


# ---------------------------------------------------------------------- the space
@pytest.mark.parametrize("name", list(SPACES))
def test_suggest_optuna_is_the_design_space(name: str):
    """Every dimension of the DesignSpace, with its range, as an Optuna distribution;
    every suggested point is a valid config and round-trips through hyperopt's vals."""
    space = SPACES[name]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    points = []
    for _ in range(300):
        trial = study.ask()
        point = space.suggest_optuna(trial)
        study.tell(trial, 0.0)
        # no conditional parameters: every key in every trial, as in the hyperopt space
        assert set(trial.params) == set(space.keys()) == set(point)
        assert trial.params == point
        space.to_config(point, SGAPConfig())  # raises for a point outside the space
        assert space.from_vals(space.to_vals(point)) == point
        points.append(point)
    dists = study.trials[0].distributions
    for key in INT_KEYS:
        lo, hi = space.ranges[key]
        assert dists[key] == optuna.distributions.IntDistribution(lo, hi)
        assert {p[key] for p in points} == set(range(lo, hi + 1))  # every value reached
    for key in set(ARCH_KEYS) - set(INT_KEYS):
        options = space.message_aggregators if key == "ma" else space.graph_aggregators
        labels = [o.label for o in options]
        assert dists[key] == optuna.distributions.CategoricalDistribution(labels)
        assert {p[key] for p in points} == set(labels)
    t = space.training
    if t is None:
        assert not set(dists) - set(ARCH_KEYS)
        return
    assert dists["lr"] == optuna.distributions.FloatDistribution(*t.lr, log=True)
    assert dists["weight_decay"] == optuna.distributions.FloatDistribution(
        *t.weight_decay, log=True
    )
    assert dists["hidden"] == optuna.distributions.CategoricalDistribution(list(t.hidden))
    assert dists["dropout"] == optuna.distributions.FloatDistribution(*t.dropout)
    assert dists["input_dropout"] == optuna.distributions.FloatDistribution(*t.input_dropout)
    for p in points:  # the searched input dropout is what the config trains with
        assert space.to_config(p).input_dropout == p["input_dropout"]
    # log-uniform: the median of lr is near the geometric mean of its range
    median = float(np.median([p["lr"] for p in points]))
    assert abs(math.log(median) - (math.log(t.lr[0]) + math.log(t.lr[1])) / 2) < 0.35


def test_optuna_and_hyperopt_draw_the_same_values():
    """Optuna's suggestions and hyperopt's uniform draws of the same DesignSpace reach the
    same values in every discrete dimension and the same interval in every continuous one."""
    from hyperopt import Trials, base, rand

    space = SPACES["paper+training"]
    domain = base.Domain(lambda _: 0.0, space.hyperopt_space())
    hyper = [
        space.from_vals(rand.suggest([i], domain, Trials(), i)[0]["misc"]["vals"])
        for i in range(400)
    ]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    opt = []
    for _ in range(400):
        trial = study.ask()
        opt.append(space.suggest_optuna(trial))
        study.tell(trial, 0.0)
    for key in space.keys():
        a, b = [p[key] for p in hyper], [p[key] for p in opt]
        if isinstance(a[0], float):
            lo, hi = getattr(space.training, key)
            assert lo <= min(a) and max(a) <= hi and lo <= min(b) and max(b) <= hi
        else:
            assert set(a) == set(b), key


# ---------------------------------------------------------------------- the peers
def _history(space: DesignSpace, n: int, fail: int | None = None) -> list[Trial]:
    """``n`` trials at uniform points with a deterministic two-objective outcome."""
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=i))
        point = space.suggest_optuna(study.ask())
        if i == fail:
            out.append(Trial(i, point, {}, "fail", error="boom"))
            continue
        err = 0.9 - 0.05 * point["k_pre"] + 0.01 * point["k_trans"] + 0.01 * rng.random()
        params = 1000.0 * point["k_trans"] + 10.0 * point["k_post"]
        out.append(Trial(i, point, {}, "ok", objectives={"val_error": err, "params": params}))
    return out


def _peer(name: str, tmp_path: Path, **kwargs):
    data = csbm(num_nodes=200, num_features=8, seed=0)
    return peers.make_engine(
        name,
        data,
        tmp_path / name,
        20,
        objectives=["val_error", "params"],
        space=DesignSpace.paper(),
        seed=3,
        progress=False,
        presets=False,
        **kwargs,
    )


@pytest.mark.parametrize("name", ["random", "optuna_tpe", "optuna_nsga2"])
def test_peer_proposals_are_valid_and_a_function_of_seed_n_history(name: str, tmp_path: Path):
    """What the engine's resume relies on: proposal n depends only on (seed, n, history)."""
    history = _history(DesignSpace.paper(), 14, fail=5)
    a = _peer(name, tmp_path, population=4)
    b = _peer(name, tmp_path / "b", population=4)
    for n in (0, 14):
        point = a.propose(n, history[:n])
        DesignSpace.paper().validate(point)
        assert b.propose(n, history[:n]) == point
    assert a.propose(14, history) != a.propose(15, history)  # seeded by n too
    assert a.settings()["engine"] == name


def test_optuna_replay_gives_the_sampler_the_history(tmp_path: Path):
    """The rebuilt study holds the history's points, objectives and failures, and NSGA-II
    has assigned every replayed trial its generation (population 4: 0,0,0,0,1,1,1,1,...)."""
    history = _history(DesignSpace.paper(), 12)
    nsga = _peer("optuna_nsga2", tmp_path, population=4)
    study = nsga.replay(history, seed=0)
    assert [t.params for t in study.trials] == [h.point for h in history]
    assert [t.values for t in study.trials] == [
        [h.objectives["val_error"], h.objectives["params"]] for h in history
    ]
    gens = [
        next(v for k, v in t.system_attrs.items() if k.endswith(":generation"))
        for t in study.trials
    ]
    assert gens == [i // 4 for i in range(12)]
    failed = _history(DesignSpace.paper(), 6, fail=2)
    states = [t.state for t in _peer("optuna_tpe", tmp_path).replay(failed, seed=0).trials]
    assert states[2] == optuna.trial.TrialState.FAIL and states.count(states[0]) == 5
    with pytest.raises(ValueError, match="population"):
        _peer("optuna_nsga2", tmp_path, population=1)


# ---------------------------------------------------------------------- the report
def _brute_force_hv(points: np.ndarray, ref: float) -> float:
    """Area dominated by ``points`` [n, 2] within the box up to ``(ref, ref)``: the grid of
    every coordinate, each cell counted when a point is ≤ its lower corner."""
    if len(points) == 0:
        return 0.0
    xs = np.unique(np.append(points[:, 0], ref))
    ys = np.unique(np.append(points[:, 1], ref))
    area = 0.0
    for (x0, x1), (y0, y1) in itertools.product(
        zip(xs[:-1], xs[1:], strict=True), zip(ys[:-1], ys[1:], strict=True)
    ):
        if np.any((points[:, 0] <= x0) & (points[:, 1] <= y0)):
            area += (x1 - x0) * (y1 - y0)
    return area


def _store(root: Path, engine: str, seed: int, trials: list[Trial], objectives: list[str]):
    out = root / "toy" / f"{engine}-seed{seed}"
    out.mkdir(parents=True)
    space = DesignSpace.paper()
    settings = {"objectives": objectives, "space": space.describe(), "seed": seed}
    (out / "search.json").write_text(json.dumps(settings))
    journal = Journal(out / "trials.jsonl")
    for t in trials:
        journal.append(t)
    journal.close()


def test_report_table_against_brute_force_hypervolume(tmp_path: Path):
    rng = np.random.default_rng(7)
    objectives = ["val_error", "inference_time"]
    point = DesignSpace.paper().to_point(SGAPConfig())
    raw: dict[tuple[str, int], list[Trial]] = {}
    for engine, seed in itertools.product(["sgap", "random"], [0, 1]):
        trials = []
        for i in range(12):
            if (engine, seed, i) == ("random", 1, 3):
                trials.append(Trial(i, point, {}, "fail", error="boom"))
                continue
            obj = {
                "val_error": float(rng.uniform(0.1, 0.9)),
                "inference_time": 10 ** rng.uniform(-6, -4),
            }
            trials.append(Trial(i, point, {}, "ok", objectives=obj))
        raw[(engine, seed)] = trials
        _store(tmp_path, engine, seed, trials, objectives)
    # an unfinished run: left out of the table and of the normalisation
    _store(tmp_path, "optuna_tpe", 0, raw[("sgap", 0)][:5], objectives)

    runs, objs = peers.load_runs(tmp_path, "toy")
    assert objs == objectives and set(runs) == {"sgap", "random", "optuna_tpe"}
    table = peers.hypervolume_table(runs, objs, max_evals=12, step=4)
    assert table["checkpoints"] == [4, 8, 12] and set(table["engines"]) == {"sgap", "random"}

    # the reference: one min-max normalisation over every finished trial, log10 for time
    ok = [t for ts in raw.values() for t in ts if t.status == "ok"]
    err = np.array([t.objectives["val_error"] for t in ok])
    logt = np.log10([t.objectives["inference_time"] for t in ok])

    def scaled(t: Trial) -> list[float]:
        e = (t.objectives["val_error"] - err.min()) / (err.max() - err.min())
        lt = (math.log10(t.objectives["inference_time"]) - logt.min()) / (logt.max() - logt.min())
        return [e, lt]

    for engine in ("sgap", "random"):
        row = table["engines"][engine]
        assert row["seeds"] == [0, 1]
        expect = np.array(
            [
                [
                    _brute_force_hv(
                        np.array([scaled(t) for t in raw[(engine, s)][:c] if t.status == "ok"]),
                        peers.REFERENCE,
                    )
                    for c in (4, 8, 12)
                ]
                for s in (0, 1)
            ]
        )
        np.testing.assert_allclose(np.asarray(row["curves"])[:, [3, 7, 11]], expect, rtol=1e-12)
        np.testing.assert_allclose(row["mean"], expect.mean(0), rtol=1e-12)
        np.testing.assert_allclose(row["std"], expect.std(0, ddof=1), rtol=1e-12)
        assert np.all(np.diff(np.asarray(row["curves"]), axis=1) >= 0)  # never decreases

    text = peers.report(tmp_path, "toy", 12, tmp_path / "docs")
    assert "| sgap | 0,1 |" in text and "target" in text
    for ext in ("md", "json", "png"):
        assert (tmp_path / "docs" / f"search_peers_toy.{ext}").stat().st_size > 0

    # runs of another setting do not mix into one table
    _store(tmp_path, "optuna_nsga2", 0, raw[("sgap", 0)], ["val_error", "params"])
    with pytest.raises(ValueError, match="objectives"):
        peers.load_runs(tmp_path, "toy")


# ---------------------------------------------------------------------- the OpenBox peer
# OpenBox runs in its own env (make env-openbox, not part of make env): what needs it is
# test_openbox_proposals_replay_a_live_run, which runs where .venv-openbox exists and fails
# instead of skipping with SGAP_REQUIRE_OPENBOX=1.
import openbox_advisor as advisor  # noqa: E402  (imports OpenBox only when it proposes)


def test_openbox_request_round_trips_the_history(tmp_path: Path):
    """The advisor's request holds the space, the seeds, the history (points, objectives in
    the engine's order, None for a failure) and the running points, through JSON."""
    space = DesignSpace.paper()
    history = _history(space, 5, fail=2)
    running = [_history(space, 7)[6].point]
    engine = _peer("openbox", tmp_path, openbox=sys.executable)
    request = json.loads(json.dumps(engine.request(6, history, running)))
    assert request["space"] == json.loads(json.dumps(space.describe()))
    assert request["objectives"] == ["val_error", "params"] and request["seed"] == 3
    assert [h["point"] for h in request["history"]] == [t.point for t in history]
    assert request["running"] == running
    for h, t in zip(request["history"], history, strict=True):
        expect = None if t.status == "fail" else [t.objectives["val_error"], t.objectives["params"]]
        assert h["objectives"] == expect
    other = _peer("openbox", tmp_path / "b", openbox=sys.executable)
    assert other.request(6, history, running)["proposal_seed"] == request["proposal_seed"]
    assert other.request(5, history, [])["proposal_seed"] != request["proposal_seed"]
    with pytest.raises(ValueError, match="must be n"):
        engine.request(6, history, [])
    # EHVI's reference point: the worst finished value + a tenth of the range, failures aside
    ok = np.array(
        [[t.objectives["val_error"], t.objectives["params"]] for t in history if t.status == "ok"]
    )
    ref = advisor.reference_point(request["history"], 2)
    np.testing.assert_allclose(ref, ok.max(0) + 0.1 * (ok.max(0) - ok.min(0)), rtol=1e-12)
    assert np.all(ok < np.asarray(ref))


def test_openbox_errors_name_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    """A missing interpreter names make env-openbox (before any run starts); an interpreter
    without OpenBox gets the advisor's own error quoted."""
    missing = tmp_path / "nowhere" / "python"
    with pytest.raises(FileNotFoundError, match="make env-openbox"):
        _peer("openbox", tmp_path, openbox=missing)
    with pytest.raises(SystemExit):
        peers.main(["--engines", "sgap,openbox", "--openbox-python", str(missing)])
    assert "make env-openbox" in capsys.readouterr().err
    engine = _peer("openbox", tmp_path, openbox=sys.executable)  # this env has no OpenBox
    with pytest.raises(RuntimeError, match="No module named 'openbox'"):
        engine.propose(0, [])


def test_openbox_proposals_replay_a_live_run(tmp_path: Path):
    """OpenBox's proposals: the initial design whatever the number of workers, then points
    neither in the history nor running, the same from a fresh engine (a resume)."""
    if not peers.OPENBOX_PYTHON.exists():
        if os.environ.get("SGAP_REQUIRE_OPENBOX") == "1":
            pytest.fail(f"SGAP_REQUIRE_OPENBOX=1 but {peers.OPENBOX_PYTHON} does not exist")
        pytest.skip("OpenBox's env is not installed (make env-openbox)")
    space = DesignSpace.paper()
    history = _history(space, 5, fail=2)
    a, b = _peer("openbox", tmp_path), _peer("openbox", tmp_path / "b")
    initial = [a.propose(n, []) for n in range(3)]  # n workers: all proposed at once
    assert len({json.dumps(p, sort_keys=True) for p in initial}) == 3
    assert a.propose(2, history[:2]) == initial[2]  # one worker: the same initial design
    # two workers: proposal 5 from trials 0-3 while proposal 4 (from trials 0-2) runs
    running = a.running(5, history[:4])
    assert running == [a.propose(4, history[:3])]
    point = a.propose(5, history[:4])
    space.validate(point)
    assert point not in [t.point for t in history[:4]] + running
    assert b.propose(5, history[:4]) == point  # a fresh engine proposes it all again
