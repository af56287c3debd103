"""The PaSca design space: size, hyperopt encoding and point ↔ config round trips."""

from __future__ import annotations

import pytest
from hyperopt import Trials, base, rand, space_eval

from sgap_plugins.core.config import PRESETS, SGAPConfig
from sgap_plugins.core.search import DesignSpace, TrainingRanges


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


@pytest.mark.parametrize("name", ["sgc", "sign", "s2gc", "pasca_v1", "pasca_v2", "pasca_v3"])
def test_presets_in_space_round_trip(name: str) -> None:
    space = DesignSpace.paper()
    config = PRESETS[name]
    point = space.to_point(config)
    assert space.to_config(point, base=config) == config
    assert space.from_vals(space.to_vals(point)) == point


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
    assert seen["k_pre"] == set(range(11)) and seen["k_post"] == set(range(11))
    assert seen["k_trans"] == set(range(1, 11))
    assert len(seen["ma"]) == 6 and len(seen["ga_pre"]) == 5
