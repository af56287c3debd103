"""The PaSca design space: size, hyperopt encoding and point ↔ config round trips."""

from __future__ import annotations

import collections
import math

import pytest
import torch
from hyperopt import Trials, base, rand, space_eval

from sgap_plugins.core.config import PRESETS, SGAPConfig
from sgap_plugins.core.search import DesignSpace, TrainingRanges
from sgap_plugins.core.search.space import TRAINING_KEYS


def test_paper_space_size() -> None:
    space = DesignSpace.paper()
    assert space.size() == 181_500 == 11 * 5 * 6 * 10 * 11 * 5
    assert [o.label for o in space.graph_aggregators] == [
        "aug_na",
        "ppr(0.1)",
        "ppr(0.2)",
        "ppr(0.3)",
        "triangle",
    ]
    assert [o.label for o in space.message_aggregators] == [
        "none",
        "mean",
        "max",
        "concat",
        "weighted",
        "adaptive",
    ]


def test_extra_aggregators_are_choices() -> None:
    space = DesignSpace.paper(
        extra_graph_aggregators=[("aug_na", {"r": 0.0})], extra_message_aggregators=["sign"]
    )
    assert space.size() == 11 * 6 * 7 * 10 * 11 * 6
    point = {
        "k_pre": 2,
        "ga_pre": "aug_na(0.0)",
        "ma": "sign",
        "k_trans": 2,
        "k_post": 0,
        "ga_post": "aug_na",
    }
    config = space.to_config(point)
    assert config.ga_pre_params == {"r": 0.0} and config.ma == "sign"
    assert space.to_point(config) == point
    with pytest.raises(ValueError, match="unknown graph aggregator"):
        DesignSpace.paper(extra_graph_aggregators=["no_such_aggregator"])


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("name", ["sgc", "sign", "s2gc", "pasca_v1", "pasca_v2", "pasca_v3"])
def test_presets_in_space_round_trip(name: str, training: bool) -> None:
    """A preset maps to a point and back; with training ranges the point holds its five
    training hyperparameters, input dropout included, and rebuilds it from a default base."""
    space = DesignSpace.paper(training=training)
    config = PRESETS[name]
    point = space.to_point(config)
    assert space.to_config(point, base=config) == config
    assert space.from_vals(space.to_vals(point)) == point
    if training:
        assert point["input_dropout"] == config.input_dropout
        keep = {k: getattr(config, k) for k in ("epochs", "patience")}
        assert space.to_config(point, base=SGAPConfig(**keep)) == config


def test_clip_training_moves_a_config_into_the_ranges() -> None:
    """Continuous training values are clipped to [low, high], hidden snaps to the choice of
    the smallest |log ratio| (ties to the smaller); the architecture is untouched."""
    from fractions import Fraction

    ranges = TrainingRanges(
        lr=(0.01, 0.05),
        weight_decay=(1e-5, 1e-3),
        hidden=(16, 64, 256),
        dropout=(0.1, 0.3),
        input_dropout=(0.2, 0.4),
    )
    space = DesignSpace.paper(training=ranges)
    for hidden, lr, wd, drop, in_drop in [
        (8, 0.2, 0.0, 0.0, 0.5),
        (30, 0.02, 5e-4, 0.2, 0.3),
        (32, 0.001, 1e-2, 0.9, 0.0),  # 32: equally far (ratio 2) from 16 and 64 → 16
        (100, 0.05, 1e-5, 0.3, 0.2),
        (1000, 0.01, 1e-3, 0.1, 0.4),
    ]:
        config = PRESETS["pasca_v3"].replace(
            hidden=hidden, lr=lr, weight_decay=wd, dropout=drop, input_dropout=in_drop
        )
        clipped = space.clip_training(config)
        ratios = sorted((Fraction(max(h, hidden), min(h, hidden)), h) for h in ranges.hidden)
        assert clipped.hidden == ratios[0][1]
        assert clipped.lr == sorted([0.01, lr, 0.05])[1]
        assert clipped.weight_decay == sorted([1e-5, wd, 1e-3])[1]
        assert clipped.dropout == sorted([0.1, drop, 0.3])[1]
        assert clipped.input_dropout == sorted([0.2, in_drop, 0.4])[1]
        assert clipped.replace(**{k: getattr(config, k) for k in TRAINING_KEYS}) == config
        space.to_point(clipped)  # now in the space
    assert DesignSpace.paper().clip_training(PRESETS["sgc"].replace(hidden=7)).hidden == 7


def test_config_outside_space_is_rejected() -> None:
    space = DesignSpace.paper()
    with pytest.raises(ValueError, match="not a choice"):
        space.to_point(PRESETS["gbp"])  # fixed GBP decay: the space's `weighted` is learnable
    with pytest.raises(ValueError, match="outside"):
        space.to_point(SGAPConfig(k_pre=12))


@pytest.mark.parametrize("training", [None, TrainingRanges()])
def test_hyperopt_samples_round_trip(training: TrainingRanges | None) -> None:
    """Points hyperopt samples from the encoded space (as ``vals``) lie in the space, cover
    every value of every dimension, agree with ``space_eval`` and survive
    vals → point → vals and point → config → point."""
    space = DesignSpace.paper(training=training)
    domain = base.Domain(lambda _: 0.0, space.hyperopt_space())
    docs = rand.suggest(list(range(600)), domain, Trials(), seed=0)
    seen: dict[str, set] = {k: set() for k in ("k_pre", "k_trans", "k_post", "ma", "ga_pre")}
    input_dropout = []
    for doc in docs:
        vals = doc["misc"]["vals"]
        point = space.from_vals(vals)
        space.validate(point)
        evaluated = space_eval(space.hyperopt_space(), {k: v[0] for k, v in vals.items()})
        assert {k: evaluated[k] for k in ("ma", "ga_pre", "ga_post")} == {
            k: point[k] for k in ("ma", "ga_pre", "ga_post")
        }
        assert space.from_vals(space.to_vals(point)) == point
        assert space.to_point(space.to_config(point)) == point
        for k in seen:
            seen[k].add(point[k])
        if training is not None:  # the searched input dropout is what the config trains with
            assert space.to_config(point).input_dropout == point["input_dropout"]
            input_dropout.append(point["input_dropout"])
        else:
            assert "input_dropout" not in point
    assert seen["k_pre"] == set(range(11)) and seen["k_post"] == set(range(11))
    assert seen["k_trans"] == set(range(1, 11))
    assert len(seen["ma"]) == 6 and len(seen["ga_pre"]) == 5
    if training is not None:  # uniform over [0, 0.8]: reaches both ends, mean near 0.4
        assert 0.0 <= min(input_dropout) < 0.02 and 0.78 < max(input_dropout) <= 0.8
        assert abs(sum(input_dropout) / len(input_dropout) - 0.4) < 0.03


def _with(point: dict, **changes) -> dict:
    return {**point, **changes}


def test_inert_keys_leave_the_model_unchanged() -> None:
    """``active_keys`` drops exactly the keys that cannot change the model, checked on the
    model itself: with ``k_pre = 0`` every message aggregator of the space maps the one hop
    to itself (also with random weights), with ``k_post = 0`` post-processing is the softmax
    whatever ``ga_post``, and with ``k_trans = 1`` the same seed gives the same network
    whatever ``hidden`` and ``dropout``."""
    from sgap_plugins.core.model import SGAPModel
    from sgap_plugins.core.synthetic import csbm

    space = DesignSpace.paper(training=TrainingRanges())
    base_point = space.to_point(space.clip_training(PRESETS["pasca_v3"]))
    data = csbm(num_nodes=60, num_features=5, seed=0)
    hops = torch.randn(60, 1, 5)

    shallow = _with(base_point, k_pre=0, k_post=0, k_trans=1)
    assert set(space.keys()) - set(space.active_keys(shallow)) == {
        "ga_pre",
        "ma",
        "ga_post",
        "hidden",
        "dropout",
    }
    assert space.active_keys(base_point) == space.keys()

    for ma in space._labels("ma"):
        model = SGAPModel(space.to_config(_with(shallow, ma=ma)), 5, 3).eval()
        with torch.no_grad():
            for p in model.aggregator.parameters():
                p.normal_()
        torch.testing.assert_close(model.aggregator(hops), hops[:, 0], msg=ma)

    logits = torch.randn(60, 3)
    outputs = [
        SGAPModel(space.to_config(_with(shallow, ga_post=ga)), 5, 3).postprocess(
            data.edge_index, logits
        )
        for ga in space._labels("ga_post")
    ]
    for out in outputs:
        torch.testing.assert_close(out, torch.softmax(logits, dim=-1))

    results = []
    for hidden, dropout in ((32, 0.0), (256, 0.7)):
        torch.manual_seed(0)
        model = SGAPModel(space.to_config(_with(shallow, hidden=hidden, dropout=dropout)), 5, 3)
        torch.manual_seed(1)
        results.append(model.train()(hops))  # train mode: a dropout layer would show
    torch.testing.assert_close(results[0], results[1])

    # a point differing in an active key is another model; in inert keys only, the same
    assert space.model_key(shallow) == space.model_key(_with(shallow, ma="max", hidden=256))
    assert space.model_key(shallow) != space.model_key(_with(shallow, lr=shallow["lr"] / 2))
    assert space.to_vals(shallow, active_only=True).keys() == set(space.active_keys(shallow))


@pytest.mark.parametrize("n", [10, 15, 23])
def test_latin_hypercube_fills_every_stratum(n: int) -> None:
    """Each coordinate of the start-up design has one point in each of its ``n`` strata:
    mapped back through the prior CDF, the ``n`` values of ``K_trans`` (10 values) and of a
    log-uniform ``lr`` fall one per stratum, checked by brute force; every point lies in the
    space, and the design is a function of the seed."""
    space = DesignSpace.paper(training=TrainingRanges())
    points = space.latin_hypercube(n, seed=7)
    assert len(points) == n and points == space.latin_hypercube(n, seed=7)
    assert points != space.latin_hypercube(n, seed=8)
    lo, hi = space.training.lr
    strata = sorted(int(n * math.log(p["lr"] / lo) / math.log(hi / lo)) for p in points)
    assert strata == list(range(n))
    counts = collections.Counter(p["k_trans"] for p in points)
    # a value's interval [v/10, (v+1)/10) holds between ⌊n/10⌋ − 1 and ⌈n/10⌉ + 1 strata
    assert all(n // 10 - 1 <= counts[v] <= -(-n // 10) + 1 for v in range(1, 11))
    if n % 10 == 0 or n >= 20:
        assert set(counts) == set(range(1, 11))
    for p in points:
        space.validate(p)
