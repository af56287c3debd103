"""The PaSca design space as a hyperopt search space.

A *point* is a plain dict of the six architecture dimensions of the PaSca table (DESIGN.md),
with aggregator choices given by their labels::

    {"k_pre": 6, "ga_pre": "aug_na", "ma": "adaptive", "k_trans": 3,
     "k_post": 4, "ga_post": "ppr(0.3)"}

plus, when the space has training ranges, the training hyperparameters (``lr``,
``weight_decay``, ``hidden``, ``dropout``, ``input_dropout``). :meth:`DesignSpace.to_config`
turns a point into an :class:`~sgap_plugins.core.config.SGAPConfig` and
:meth:`DesignSpace.to_point` maps a config back (:meth:`DesignSpace.clip_training` first
moves a config's training values into the ranges). :meth:`DesignSpace.hyperopt_space`
encodes the space for hyperopt (integer dimensions as quantised uniforms so TPE models them
as ordinal, aggregators as ``hp.choice``); :meth:`DesignSpace.to_vals` /
:meth:`DesignSpace.from_vals` convert between a point and hyperopt's internal ``vals``
(choice indices), which is how a search history is handed back to TPE.
:meth:`DesignSpace.suggest_optuna` draws the same space with an Optuna trial (for the
comparison with Optuna's samplers, ``benchmarks/search_peers.py``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..config import SGAPConfig
from ..plugins import (
    graph_aggregator_class,
    graph_aggregator_classes,
    message_aggregator_class,
    message_aggregator_classes,
)

ARCH_KEYS = ("k_pre", "ga_pre", "ma", "k_trans", "k_post", "ga_post")
INT_KEYS = ("k_pre", "k_trans", "k_post")
TRAINING_KEYS = ("lr", "weight_decay", "hidden", "dropout", "input_dropout")


@dataclass(frozen=True)
class AggregatorChoice:
    """One categorical option: a registry ``name`` with fixed ``params`` and a ``label``."""

    label: str
    name: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def matches(self, name: str, params: Mapping[str, Any]) -> bool:
        return self.name == name and dict(self.params) == dict(params)


@dataclass(frozen=True)
class TrainingRanges:
    """Search ranges of the training hyperparameters (log-uniform ``lr`` and
    ``weight_decay``, categorical ``hidden``, uniform ``dropout`` and ``input_dropout``).

    ``input_dropout`` (on the hops, before the message aggregator) spans the same
    ``[0, 0.8]`` as ``dropout``: it holds every preset's value (0, 0.2, 0.5), and sparse
    bag-of-words features such as Cora's tolerate heavy input dropout, while above 0.8 too
    little of a node's features is left to classify it."""

    lr: tuple[float, float] = (1e-3, 0.2)
    weight_decay: tuple[float, float] = (1e-6, 1e-2)
    hidden: tuple[int, ...] = (32, 64, 128, 256)
    dropout: tuple[float, float] = (0.0, 0.8)
    input_dropout: tuple[float, float] = (0.0, 0.8)


PAPER_GRAPH_AGGREGATORS = (
    AggregatorChoice("aug_na", "aug_na", {}),
    AggregatorChoice("ppr(0.1)", "ppr", {"alpha": 0.1}),
    AggregatorChoice("ppr(0.2)", "ppr", {"alpha": 0.2}),
    AggregatorChoice("ppr(0.3)", "ppr", {"alpha": 0.3}),
    AggregatorChoice("triangle", "triangle", {}),
)
# ``weighted`` in the space is the learnable per-hop weighting softmax(θ), initialised at a
# slow decay β(1-β)^i with β = 0.1 (near uniform; β = 0.5 starts with half the weight on the
# raw features and validated ~6 points lower on Cora); the fixed-decay GBP variant is a
# preset, not a separate choice of the table.
PAPER_MESSAGE_AGGREGATORS = (
    AggregatorChoice("none", "none", {}),
    AggregatorChoice("mean", "mean", {}),
    AggregatorChoice("max", "max", {}),
    AggregatorChoice("concat", "concat", {}),
    AggregatorChoice("weighted", "weighted", {"learnable": True, "beta": 0.1}),
    AggregatorChoice("adaptive", "adaptive", {}),
)


def _as_choice(item: str | AggregatorChoice | tuple[str, Mapping[str, Any]]) -> AggregatorChoice:
    if isinstance(item, AggregatorChoice):
        return item
    if isinstance(item, str):
        return AggregatorChoice(item, item, {})
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
        name, params = item
        label = name + (f"({','.join(str(v) for v in params.values())})" if params else "")
        return AggregatorChoice(label, name, dict(params))
    raise TypeError(
        "an aggregator choice is a registry name, a (name, params) tuple or an "
        f"AggregatorChoice; got {item!r}"
    )


class DesignSpace:
    """A finite SGAP architecture space, optionally with training hyperparameter ranges.

    Args:
        k_pre, k_trans, k_post: inclusive ``(low, high)`` integer ranges.
        graph_aggregators: the options of ``GA_pre`` and ``GA_post``.
        message_aggregators: the options of ``MA``.
        training: training hyperparameter ranges, or ``None`` to keep those of the base
            config fixed.
    """

    def __init__(
        self,
        k_pre: tuple[int, int],
        k_trans: tuple[int, int],
        k_post: tuple[int, int],
        graph_aggregators: Sequence[AggregatorChoice],
        message_aggregators: Sequence[AggregatorChoice],
        training: TrainingRanges | None = None,
    ) -> None:
        self.ranges = {"k_pre": tuple(k_pre), "k_trans": tuple(k_trans), "k_post": tuple(k_post)}
        for key, (lo, hi) in self.ranges.items():
            if not (isinstance(lo, int) and isinstance(hi, int) and 0 <= lo <= hi):
                raise ValueError(f"{key} range must be two ints 0 <= low <= high, got {(lo, hi)}")
        if self.ranges["k_trans"][0] < 1:
            raise ValueError("k_trans must be at least 1")
        self.graph_aggregators = tuple(graph_aggregators)
        self.message_aggregators = tuple(message_aggregators)
        self.training = training
        ga_known, ma_known = graph_aggregator_classes(), message_aggregator_classes()
        for kind, options, known in (
            ("graph aggregator", self.graph_aggregators, ga_known),
            ("message aggregator", self.message_aggregators, ma_known),
        ):
            if not options:
                raise ValueError(f"the space needs at least one {kind}")
            labels = [o.label for o in options]
            if len(set(labels)) != len(labels):
                raise ValueError(f"duplicate {kind} labels in {labels}")
            lookup = graph_aggregator_class if known is ga_known else message_aggregator_class
            for o in options:
                if o.name not in known:
                    lookup(o.name)  # raises the registry's error (names disabled plugins)

    # ------------------------------------------------------------------ construction
    @classmethod
    def paper(
        cls,
        extra_graph_aggregators: Iterable[str | AggregatorChoice | tuple[str, Mapping]] = (),
        extra_message_aggregators: Iterable[str | AggregatorChoice | tuple[str, Mapping]] = (),
        training: TrainingRanges | bool | None = None,
    ) -> DesignSpace:
        """The PaSca table: ``K_pre ∈ 0…10``, ``GA ∈ {aug_na, ppr(0.1), ppr(0.2), ppr(0.3),
        triangle}``, ``MA ∈ {none, mean, max, concat, weighted, adaptive}``,
        ``K_trans ∈ 1…10``, ``K_post ∈ 0…10`` — 181,500 architectures.

        Args:
            extra_graph_aggregators: aggregators registered by plugins, added as choices of
                both ``GA_pre`` and ``GA_post`` (a name, a ``(name, params)`` tuple or an
                :class:`AggregatorChoice`).
            extra_message_aggregators: plugin message aggregators added to ``MA``.
            training: ``True`` for the default :class:`TrainingRanges`, or custom ranges.
        """
        ranges = TrainingRanges() if training is True else (training or None)
        return cls(
            k_pre=(0, 10),
            k_trans=(1, 10),
            k_post=(0, 10),
            graph_aggregators=PAPER_GRAPH_AGGREGATORS
            + tuple(_as_choice(a) for a in extra_graph_aggregators),
            message_aggregators=PAPER_MESSAGE_AGGREGATORS
            + tuple(_as_choice(a) for a in extra_message_aggregators),
            training=ranges,
        )

    # ------------------------------------------------------------------ size
    def size(self) -> int:
        """The number of architectures (training hyperparameters are not counted):
        ``|K_pre| · |GA| · |MA| · |K_trans| · |K_post| · |GA|``."""
        n = 1
        for lo, hi in self.ranges.values():
            n *= hi - lo + 1
        return n * len(self.graph_aggregators) ** 2 * len(self.message_aggregators)

    # ------------------------------------------------------------------ hyperopt
    def hyperopt_space(self) -> dict[str, Any]:
        """The hyperopt expression whose samples (through ``space_eval``) are points.

        Integer dimensions are ``hp.quniform(low - 0.5, high + 0.5, 1)`` so every value has
        the same prior mass and TPE treats them as ordered; :meth:`from_vals` rounds and clips.
        """
        from hyperopt import hp

        space: dict[str, Any] = {}
        for key in ARCH_KEYS:
            if key in INT_KEYS:
                lo, hi = self.ranges[key]
                space[key] = hp.quniform(key, lo - 0.5, hi + 0.5, 1)
            elif key == "ma":
                space[key] = hp.choice(key, [o.label for o in self.message_aggregators])
            else:
                space[key] = hp.choice(key, [o.label for o in self.graph_aggregators])
        if self.training is not None:
            t = self.training
            space["lr"] = hp.loguniform("lr", math.log(t.lr[0]), math.log(t.lr[1]))
            space["weight_decay"] = hp.loguniform(
                "weight_decay", math.log(t.weight_decay[0]), math.log(t.weight_decay[1])
            )
            space["hidden"] = hp.choice("hidden", list(t.hidden))
            space["dropout"] = hp.uniform("dropout", t.dropout[0], t.dropout[1])
            space["input_dropout"] = hp.uniform(
                "input_dropout", t.input_dropout[0], t.input_dropout[1]
            )
        return space

    def suggest_optuna(self, trial: Any) -> dict[str, Any]:
        """Draw a point with an Optuna ``trial`` (define-by-run), the same space as
        :meth:`hyperopt_space`: ``suggest_int(key, low, high)`` over the inclusive ranges of
        ``k_pre``, ``k_trans``, ``k_post`` (every integer equally likely, ordered, as the
        quantised uniforms), ``suggest_categorical`` over the aggregator labels, and with
        training ranges ``suggest_float(..., log=True)`` for ``lr`` and ``weight_decay``,
        ``suggest_categorical`` for ``hidden``, ``suggest_float`` for ``dropout`` and
        ``input_dropout``. Like the
        hyperopt space it has no conditional parameters (``ga_pre`` / ``ga_post`` are drawn
        even when ``k_pre`` / ``k_post`` is 0), so both samplers see the same dimensions.

        Optuna is not a dependency of the package: ``trial`` is any object with Optuna's
        ``suggest_int`` / ``suggest_categorical`` / ``suggest_float`` methods.

        Returns:
            The point, valid for :meth:`to_config`.
        """
        point: dict[str, Any] = {}
        for key in ARCH_KEYS:
            if key in INT_KEYS:
                lo, hi = self.ranges[key]
                point[key] = int(trial.suggest_int(key, lo, hi))
            else:
                point[key] = str(trial.suggest_categorical(key, self._labels(key)))
        if self.training is not None:
            t = self.training
            point["lr"] = float(trial.suggest_float("lr", t.lr[0], t.lr[1], log=True))
            point["weight_decay"] = float(
                trial.suggest_float("weight_decay", t.weight_decay[0], t.weight_decay[1], log=True)
            )
            point["hidden"] = int(trial.suggest_categorical("hidden", list(t.hidden)))
            point["dropout"] = float(trial.suggest_float("dropout", t.dropout[0], t.dropout[1]))
            point["input_dropout"] = float(
                trial.suggest_float("input_dropout", t.input_dropout[0], t.input_dropout[1])
            )
        self.validate(point)
        return point

    def latin_hypercube(self, n: int, seed: int) -> list[dict[str, Any]]:
        """``n`` space-filling points: a Latin hypercube sample ``u ∈ [0, 1)^D`` over the
        ``D`` keys (:func:`scipy.stats.qmc.LatinHypercube`, seeded by ``seed``), each
        coordinate mapped by its key's inverse prior CDF: ``⌊u·m⌋``-th of the ``m`` values
        of an integer range or a choice, ``low + u·(high − low)`` for a uniform and the same
        in ``log`` for ``lr`` and ``weight_decay``. Each of the ``n`` strata ``[i/n,
        (i+1)/n)`` of every coordinate holds one point, so each of a dimension's ``m``
        values is drawn about ``n/m`` times, and at least once when ``m`` divides ``n`` or
        ``n ≥ 2m``: ``K_trans = 1`` (a linear model) is in every start-up of 10, 15 or 20
        points, where 10 independent draws miss it with probability ``0.9¹⁰`` (35 %).
        """
        from scipy.stats import qmc

        keys = self.keys()
        sample = qmc.LatinHypercube(d=len(keys), seed=np.random.default_rng(seed)).random(n)
        points = []
        for row in sample:
            point: dict[str, Any] = {}
            for key, u in zip(keys, row, strict=True):
                if key in INT_KEYS:
                    lo, hi = self.ranges[key]
                    point[key] = lo + min(int(u * (hi - lo + 1)), hi - lo)
                elif key in ("ma", "ga_pre", "ga_post"):
                    labels = self._labels(key)
                    point[key] = labels[min(int(u * len(labels)), len(labels) - 1)]
                else:
                    assert self.training is not None
                    if key == "hidden":
                        widths = self.training.hidden
                        point[key] = int(widths[min(int(u * len(widths)), len(widths) - 1)])
                        continue
                    lo, hi = getattr(self.training, key)
                    if key in ("lr", "weight_decay"):
                        point[key] = float(math.exp(math.log(lo) + u * math.log(hi / lo)))
                    else:
                        point[key] = float(lo + u * (hi - lo))
            self.validate(point)
            points.append(point)
        return points

    def _labels(self, key: str) -> list[str]:
        options = self.message_aggregators if key == "ma" else self.graph_aggregators
        return [o.label for o in options]

    def keys(self) -> tuple[str, ...]:
        return ARCH_KEYS + (TRAINING_KEYS if self.training is not None else ())

    def from_vals(self, vals: Mapping[str, Any]) -> dict[str, Any]:
        """A point from hyperopt ``vals`` (scalars or one-element lists; choice indices)."""

        def scalar(v: Any) -> Any:
            return v[0] if isinstance(v, (list, tuple)) else v

        point: dict[str, Any] = {}
        for key in self.keys():
            v = scalar(vals[key])
            if key in INT_KEYS:
                lo, hi = self.ranges[key]
                point[key] = int(min(max(round(float(v)), lo), hi))
            elif key in ("ma", "ga_pre", "ga_post"):
                point[key] = self._labels(key)[int(v)]
            elif key == "hidden":  # a training key: the space has training ranges
                assert self.training is not None
                point[key] = int(self.training.hidden[int(v)])
            else:
                point[key] = float(v)
        return point

    def active_keys(self, point: Mapping[str, Any]) -> tuple[str, ...]:
        """The keys of :meth:`keys` that change the model ``point`` describes. The space is
        flat (every key is drawn), but some keys are inert at some values:

        * ``ga_pre`` and ``ma`` when ``k_pre = 0``: the only hop is the raw features, and
          every message aggregator maps one hop to itself (``mean``/``max``/``none`` of
          one, a softmax weight of 1);
        * ``ga_post`` when ``k_post = 0``: nothing is post-propagated;
        * ``hidden`` and ``dropout`` when ``k_trans = 1``: the MLP is one linear layer.
        """
        inert: set[str] = set()
        if point["k_pre"] == 0:
            inert |= {"ga_pre", "ma"}
        if point["k_post"] == 0:
            inert.add("ga_post")
        if point["k_trans"] == 1:
            inert |= {"hidden", "dropout"}
        return tuple(k for k in self.keys() if k not in inert)

    def model_key(self, point: Mapping[str, Any]) -> str:
        """A string equal for two points exactly when they describe the same model (their
        :meth:`active_keys` and values agree)."""
        return json.dumps({k: point[k] for k in self.active_keys(point)}, sort_keys=True)

    def to_vals(self, point: Mapping[str, Any], active_only: bool = False) -> dict[str, list[Any]]:
        """hyperopt ``vals`` (one-element lists) of a point, the inverse of :meth:`from_vals`.
        With ``active_only`` the inert keys (:meth:`active_keys`) are left out, so that TPE,
        which fits one density per key over the trials that hold it, does not credit a
        value that had no effect with the trial's outcome."""
        self.validate(point)
        vals: dict[str, list[Any]] = {}
        for key in self.active_keys(point) if active_only else self.keys():
            v = point[key]
            if key in ("ma", "ga_pre", "ga_post"):
                vals[key] = [self._labels(key).index(v)]
            elif key == "hidden":
                assert self.training is not None
                vals[key] = [list(self.training.hidden).index(v)]
            else:
                vals[key] = [float(v)]
        return vals

    def validate(self, point: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` unless ``point`` lies in the space."""
        missing = [k for k in self.keys() if k not in point]
        if missing:
            raise ValueError(f"point misses {missing}")
        for key in INT_KEYS:
            lo, hi = self.ranges[key]
            v = point[key]
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ValueError(f"{key}={v!r} is outside [{lo}, {hi}]")
        for key in ("ma", "ga_pre", "ga_post"):
            if point[key] not in self._labels(key):
                raise ValueError(f"{key}={point[key]!r} is not one of {self._labels(key)}")
        if self.training is not None and point["hidden"] not in self.training.hidden:
            raise ValueError(f"hidden={point['hidden']!r} is not one of {self.training.hidden}")

    # ------------------------------------------------------------------ configs
    def to_config(self, point: Mapping[str, Any], base: SGAPConfig | None = None) -> SGAPConfig:
        """The :class:`SGAPConfig` of a point; training hyperparameters not in the point come
        from ``base`` (default: ``SGAPConfig()``)."""
        self.validate(point)
        ga = {o.label: o for o in self.graph_aggregators}
        ma = {o.label: o for o in self.message_aggregators}[point["ma"]]
        changes: dict[str, Any] = {
            "k_pre": point["k_pre"],
            "ga_pre": ga[point["ga_pre"]].name,
            "ga_pre_params": dict(ga[point["ga_pre"]].params),
            "ma": ma.name,
            "ma_params": dict(ma.params),
            "k_trans": point["k_trans"],
            "k_post": point["k_post"],
            "ga_post": ga[point["ga_post"]].name,
            "ga_post_params": dict(ga[point["ga_post"]].params),
        }
        if self.training is not None:
            changes.update({k: point[k] for k in TRAINING_KEYS})
        return (base or SGAPConfig()).replace(**changes)

    def to_point(self, config: SGAPConfig) -> dict[str, Any]:
        """The point of a config that lies in the space (aggregators matched by name and
        parameters); raises ``ValueError`` otherwise."""

        def label(options: Sequence[AggregatorChoice], name: str, params: Mapping, key: str) -> str:
            for o in options:
                if o.matches(name, params):
                    return o.label
            raise ValueError(
                f"{key}={name}{dict(params) or ''} is not a choice of this space "
                f"({[o.label for o in options]})"
            )

        point: dict[str, Any] = {
            "k_pre": config.k_pre,
            "ga_pre": label(self.graph_aggregators, config.ga_pre, config.ga_pre_params, "ga_pre"),
            "ma": label(self.message_aggregators, config.ma, config.ma_params, "ma"),
            "k_trans": config.k_trans,
            "k_post": config.k_post,
            "ga_post": label(
                self.graph_aggregators, config.ga_post, config.ga_post_params, "ga_post"
            ),
        }
        if self.training is not None:
            point.update({k: getattr(config, k) for k in TRAINING_KEYS})
        self.validate(point)
        return point

    def clip_training(self, config: SGAPConfig) -> SGAPConfig:
        """``config`` with its training hyperparameters moved into the training ranges, so
        that :meth:`to_point` accepts them: ``lr``, ``weight_decay``, ``dropout`` and
        ``input_dropout`` clipped to ``[low, high]``, and ``hidden`` snapped to the nearest
        choice on a log scale (widths are compared by ratio: 100 → 128 among 64 and 128;
        a tie goes to the smaller width). The architecture is left as it is, and so is the
        whole config when the space has no training ranges."""
        t = self.training
        if t is None:
            return config
        changes: dict[str, Any] = {
            key: min(max(float(getattr(config, key)), lo), hi)
            for key, (lo, hi) in (
                ("lr", t.lr),
                ("weight_decay", t.weight_decay),
                ("dropout", t.dropout),
                ("input_dropout", t.input_dropout),
            )
        }
        # the ratio larger/smaller orders widths as |log h − log w| does, but exactly: 32
        # is as near 16 as 64 (ratio 2), a tie that float logarithms would break at random
        w = config.hidden
        changes["hidden"] = min(t.hidden, key=lambda h: (max(h, w) / min(h, w), h))
        return config.replace(**changes)

    # ------------------------------------------------------------------ description
    def describe(self) -> dict[str, Any]:
        """A JSON-serialisable description (stored with a search to check ``--resume``)."""
        return {
            "ranges": {k: list(v) for k, v in self.ranges.items()},
            "graph_aggregators": [
                [o.label, o.name, dict(o.params)] for o in self.graph_aggregators
            ],
            "message_aggregators": [
                [o.label, o.name, dict(o.params)] for o in self.message_aggregators
            ],
            "training": None
            if self.training is None
            else {
                "lr": list(self.training.lr),
                "weight_decay": list(self.training.weight_decay),
                "hidden": list(self.training.hidden),
                "dropout": list(self.training.dropout),
                "input_dropout": list(self.training.input_dropout),
            },
        }

    def __repr__(self) -> str:
        return (
            f"DesignSpace({self.size()} architectures, "
            f"GA={[o.label for o in self.graph_aggregators]}, "
            f"MA={[o.label for o in self.message_aggregators]}, "
            f"training={'searched' if self.training else 'fixed'})"
        )
