"""Model configuration: one point of the SGAP design space plus training hyperparameters.

A configuration is a plain immutable value: constructing one checks types and ranges only,
and never consults the plugin registry, builds an aggregator or draws random numbers. The
aggregator names are resolved (and their parameters checked) when an aggregator is built from
them: :meth:`SGAPConfig.pre_aggregator`, :meth:`SGAPConfig.post_aggregator`,
:meth:`SGAPConfig.message_aggregator`, which :class:`~sgap_plugins.core.model.SGAPModel`
and the trainer use.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .graph_aggregators import GraphAggregator
from .message_aggregators import MessageAggregator
from .plugins import graph_aggregator_class, message_aggregator_class

_PARAM_FIELDS = ("ga_pre_params", "ma_params", "ga_post_params")


class FrozenParams(Mapping[str, Any]):
    """A read-only ``name → value`` mapping: the aggregator parameters of an
    :class:`SGAPConfig`. Compares equal to a ``dict`` with the same items; hashable when its
    values are; pickles (configurations cross process boundaries in a search)."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, Any] | None = None) -> None:
        self._items = dict(items or {})

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(frozenset(self._items.items()))

    def __repr__(self) -> str:
        return repr(self._items)

    def __reduce__(self) -> tuple[type[FrozenParams], tuple[dict[str, Any]]]:
        return (type(self), (self._items,))


@dataclass(frozen=True)
class SGAPConfig:
    """A validated SGAP architecture with its training hyperparameters.

    Architecture (the PaSca design space): ``k_pre`` hops of graph aggregator ``ga_pre``
    (parameters ``ga_pre_params``), message aggregator ``ma`` (``ma_params``), an MLP of
    ``k_trans`` layers, then ``k_post`` steps of ``ga_post`` on the soft predictions.

    The configuration is immutable: the parameter mappings are stored as
    :class:`FrozenParams`; derive a changed copy with :meth:`replace`. Validation checks
    types and ranges; aggregator names and parameters are checked against the registry when
    an aggregator is built (:meth:`pre_aggregator`, :meth:`post_aggregator`,
    :meth:`message_aggregator`).
    """

    k_pre: int = 2
    ga_pre: str = "aug_na"
    ga_pre_params: Mapping[str, Any] = field(default_factory=FrozenParams)
    ma: str = "none"
    ma_params: Mapping[str, Any] = field(default_factory=FrozenParams)
    k_trans: int = 1
    k_post: int = 0
    ga_post: str = "ppr"
    ga_post_params: Mapping[str, Any] = field(default_factory=lambda: FrozenParams({"alpha": 0.3}))
    # training
    hidden: int = 64
    dropout: float = 0.5
    input_dropout: float = 0.0
    lr: float = 0.01
    weight_decay: float = 5e-4
    epochs: int = 200
    patience: int = 50
    batch_size: int = 10_000

    def __post_init__(self) -> None:
        def check_int(name: str, lo: int, hi: int) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ValueError(f"{name} must be an int in [{lo}, {hi}], got {v!r}")

        check_int("k_pre", 0, 64)
        check_int("k_trans", 1, 64)
        check_int("k_post", 0, 64)
        check_int("hidden", 1, 1 << 20)
        check_int("epochs", 1, 1 << 20)
        check_int("patience", 1, 1 << 20)
        check_int("batch_size", 1, 1 << 40)

        def check_number(name: str) -> float:
            # A quoted "0.1" (JSON) is a type error, not a range one: say it needs a number.
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ValueError(
                    f"{name} must be a number, got the {type(v).__name__} {v!r}"
                    + (" (write it without quotes)" if _numeric_text(v) else "")
                )
            return float(v)

        for name in ("dropout", "input_dropout"):
            if not 0.0 <= check_number(name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)!r}")
        if not check_number("lr") > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if not check_number("weight_decay") >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        for name in ("ga_pre", "ma", "ga_post"):
            v = getattr(self, name)
            if not isinstance(v, str) or not v:
                raise ValueError(f"{name} must be an aggregator's registry name, got {v!r}")
        for name in _PARAM_FIELDS:
            v = getattr(self, name)
            if not isinstance(v, Mapping) or not all(isinstance(k, str) for k in v):
                raise ValueError(
                    f"{name} must be a mapping of parameter names (str) to values, got {v!r}"
                )
            # A frozen dataclass sets its fields with object.__setattr__ as well.
            object.__setattr__(self, name, FrozenParams(v))

    # ------------------------------------------------------------------ aggregators
    def pre_aggregator(self) -> GraphAggregator:
        """The pre-processing graph aggregator ``ga_pre(**ga_pre_params)``.

        Raises:
            ValueError: ``ga_pre`` is not a registered name (the message lists them), or a
                parameter value is out of range.
            TypeError: ``ga_pre_params`` names a parameter the aggregator does not take.
        """
        return _graph_aggregator("ga_pre", self.ga_pre, self.ga_pre_params)

    def post_aggregator(self) -> GraphAggregator:
        """The post-processing graph aggregator ``ga_post(**ga_post_params)`` (errors as
        :meth:`pre_aggregator`)."""
        return _graph_aggregator("ga_post", self.ga_post, self.ga_post_params)

    def message_aggregator(self, in_dim: int) -> MessageAggregator:
        """A new message aggregator ``ma(k_pre + 1, in_dim, **ma_params)`` (its parameters
        freshly initialised from the global random state).

        Raises:
            ValueError: ``ma`` is not a registered name (the message lists them), or a
                parameter value is out of range.
            TypeError: ``ma_params`` names a parameter the aggregator does not take.
        """
        if isinstance(in_dim, bool) or not isinstance(in_dim, int) or in_dim < 1:
            raise ValueError(f"in_dim must be a positive int, got {in_dim!r}")
        cls = message_aggregator_class(self.ma, argument="ma")
        try:
            return cls(self.k_pre + 1, in_dim, **self.ma_params)
        except (TypeError, ValueError) as exc:
            raise _bad_params("ma_params", "message aggregator", self.ma, exc) from None

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """Every field; the parameter mappings as plain ``dict`` (JSON-ready)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = copy.deepcopy(dict(value)) if f.name in _PARAM_FIELDS else value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SGAPConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown SGAPConfig field(s) {unknown}; known: {sorted(known)}")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SGAPConfig:
        return cls.from_dict(json.loads(text))

    def replace(self, **changes: Any) -> SGAPConfig:
        """A validated copy with ``changes`` applied (the configuration itself is immutable)."""
        return dataclasses.replace(self, **changes)

    def label(self) -> str:
        """A short human-readable description of the architecture."""

        def ga(name: str, params: Mapping[str, Any]) -> str:
            return name + (f"({','.join(str(v) for v in params.values())})" if params else "")

        post = f" → {ga(self.ga_post, self.ga_post_params)}×{self.k_post}" if self.k_post else ""
        return (
            f"{ga(self.ga_pre, self.ga_pre_params)}×{self.k_pre} → {self.ma} → "
            f"MLP{self.k_trans}{post}"
        )


def _numeric_text(value: Any) -> bool:
    """Whether ``value`` is a string that reads as a number (``"0.1"``)."""
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return isinstance(value, str)


def _bad_params(argument: str, kind: str, name: str, exc: Exception) -> Exception:
    """``exc`` restated with the setting that caused it (``TypeError`` or ``ValueError``)."""
    cls = TypeError if isinstance(exc, TypeError) else ValueError
    return cls(f"{argument}: bad parameters for {kind} {name!r}: {exc}")


def _graph_aggregator(argument: str, name: str, params: Mapping[str, Any]) -> GraphAggregator:
    cls = graph_aggregator_class(name, argument=argument)
    try:
        return cls(**params)
    except (TypeError, ValueError) as exc:
        raise _bad_params(f"{argument}_params", "graph aggregator", name, exc) from None


_PRESET_TABLE: dict[str, SGAPConfig] = {
    # Training hyperparameters below were chosen on Cora's validation accuracy (mean of
    # seeds 0-9 with the trainer's early stopping), never on test accuracy; see
    # docs/results.md for the grids and benchmarks/reproduce_pasca.py for other datasets.
    # SGC: K-step GCN propagation, last hop, one linear layer (K=3 beat K=2 on validation).
    "sgc": SGAPConfig(
        k_pre=3,
        ga_pre="aug_na",
        ma="none",
        k_trans=1,
        lr=0.2,
        weight_decay=1e-5,
        dropout=0.0,
        epochs=100,
        patience=100,
    ),
    # SIGN: the hops concatenated (the design space's `concat`), then a 2-layer MLP; the
    # per-hop inception variant (`ma="sign"`) validated 6-8 points lower on Cora.
    "sign": SGAPConfig(
        k_pre=4,
        ga_pre="aug_na",
        ma="concat",
        k_trans=2,
        hidden=64,
        dropout=0.5,
        input_dropout=0.5,
        lr=0.05,
        weight_decay=5e-5,
        epochs=200,
        patience=100,
    ),
    # S²GC: mean of the hops (a simple spectral filter), one linear layer; K = 10, the
    # design space's largest (the S²GC paper uses 16 on Cora).
    "s2gc": SGAPConfig(
        k_pre=10,
        ga_pre="aug_na",
        ma="mean",
        k_trans=1,
        lr=0.2,
        weight_decay=5e-5,
        dropout=0.0,
        epochs=100,
        patience=100,
    ),
    # GBP: fixed decaying hop weights, an MLP.
    "gbp": SGAPConfig(
        k_pre=10,
        ga_pre="aug_na",
        ma="weighted",
        ma_params={"beta": 0.15},
        k_trans=2,
        hidden=64,
        dropout=0.5,
        input_dropout=0.2,
        lr=0.01,
        weight_decay=5e-4,
        epochs=300,
        patience=100,
    ),
    # APPNP-style: an MLP on raw features, predictions propagated by personalised PageRank.
    "appnp_post": SGAPConfig(
        k_pre=0,
        ma="none",
        k_trans=2,
        hidden=64,
        k_post=10,
        ga_post="ppr",
        ga_post_params={"alpha": 0.1},
        dropout=0.5,
        input_dropout=0.5,
        lr=0.01,
        weight_decay=5e-3,
        epochs=300,
        patience=100,
    ),
    # PaSca-V1: learnable hop weights (started near uniform, β = 0.1) over 3 PPR(0.1) hops.
    "pasca_v1": SGAPConfig(
        k_pre=3,
        ga_pre="ppr",
        ga_pre_params={"alpha": 0.1},
        ma="weighted",
        ma_params={"learnable": True, "beta": 0.1},
        k_trans=2,
        hidden=256,
        dropout=0.5,
        input_dropout=0.5,
        lr=0.01,
        weight_decay=1e-3,
        epochs=300,
        patience=100,
    ),
    "pasca_v2": SGAPConfig(
        k_pre=6,
        ga_pre="aug_na",
        ma="adaptive",
        k_trans=2,
        hidden=64,
        dropout=0.5,
        input_dropout=0.2,
        lr=0.01,
        weight_decay=5e-4,
        epochs=300,
        patience=100,
    ),
    "pasca_v3": SGAPConfig(
        k_pre=6,
        ga_pre="aug_na",
        ma="adaptive",
        k_trans=3,
        hidden=64,
        k_post=4,
        ga_post="ppr",
        ga_post_params={"alpha": 0.3},
        dropout=0.5,
        input_dropout=0.2,
        lr=0.01,
        weight_decay=5e-4,
        epochs=300,
        patience=100,
    ),
}


# Read-only: a preset is an immutable SGAPConfig, and the table itself cannot be rebound.
PRESETS: Mapping[str, SGAPConfig] = MappingProxyType(_PRESET_TABLE)


def preset(name: str, **overrides: Any) -> SGAPConfig:
    """A named preset (``sgc``, ``sign``, ``s2gc``, ``gbp``, ``appnp_post``, ``pasca_v1``,
    ``pasca_v2``, ``pasca_v3``), with optional field overrides applied to a copy."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name].replace(**overrides)
