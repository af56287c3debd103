"""Registration self-checks of aggregator classes, run on tiny inputs.

The registry (:mod:`sgap_plugins.core.plugins`) offers a newly registered aggregator only
after it passes :func:`check_graph_aggregator` or :func:`check_message_aggregator`; plugin
authors can call the same functions in their own tests.

The checks touch tensors of a few dozen elements: below ATen's parallel grain size, so no
operator starts intra-op threads and the process-wide thread setting stays untouched. They
run without autograd and inside :func:`torch.random.fork_rng`, so that a seeded program draws
the same numbers whether or not a registry was built on the way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor

from .graph import CSRGraph
from .graph_aggregators import GraphAggregator
from .message_aggregators import MessageAggregator

__all__ = ["PluginCheckError", "check_graph_aggregator", "check_message_aggregator"]


class PluginCheckError(ValueError):
    """An aggregator class failed its registration self-check."""


def _tiny_graphs() -> list[CSRGraph]:
    """Five nodes: a triangle 0-1-2, a directed edge 2 → 3 and an isolated node 4; once
    unweighted and once with unequal positive weights."""
    src = torch.tensor([0, 1, 1, 2, 2, 0, 2])
    dst = torch.tensor([1, 0, 2, 1, 0, 2, 3])
    edge_index = torch.stack([src, dst])
    weight = torch.tensor([1.0, 2.0, 0.5, 1.5, 1.0, 3.0, 0.25])
    return [
        CSRGraph.from_edge_index(edge_index, 5),
        CSRGraph.from_edge_index(edge_index, 5, weight),
    ]


@contextlib.contextmanager
def _isolated_torch() -> Iterator[None]:
    """No autograd, and the global random state restored on exit (an aggregator's
    initialisation draws from it)."""
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        yield


def _finite(t: Tensor) -> bool:
    return bool(torch.isfinite(t).all())


def _call(what: str, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``, turning any exception into a :class:`PluginCheckError` about ``what``."""
    try:
        return fn(*args)
    except Exception as exc:
        raise PluginCheckError(f"{what} raised {type(exc).__name__}: {exc}") from exc


def _describe(value: Any) -> str:
    if isinstance(value, Tensor):
        return f"a {value.dtype} tensor of shape {list(value.shape)}"
    return f"a {type(value).__name__}"


def _expect_float_tensor(what: str, value: Any, shape: tuple[int, ...], shape_text: str) -> None:
    """Raise :class:`PluginCheckError` unless ``value`` (what ``what`` returned) is a
    floating tensor of ``shape`` (``shape_text`` in the message)."""
    if (
        not isinstance(value, Tensor)
        or tuple(value.shape) != shape
        or not value.is_floating_point()
    ):
        raise PluginCheckError(
            f"{what} returned {_describe(value)}; expected a floating tensor of shape {shape_text}"
        )


def check_graph_aggregator(cls: type[GraphAggregator]) -> None:
    """Self-check of a graph aggregator class before it is offered.

    Instantiates ``cls()`` (every parameter needs a default), then on a 5-node graph
    (unweighted and weighted, with a directed edge and an isolated node) checks that
    :meth:`~GraphAggregator.transition` returns a :class:`CSRGraph` of 5 nodes with finite
    weights and that two steps ``m^t = combine(W m^{t-1}, m^0, t)`` give finite floating
    ``[5, 3]`` tensors without modifying ``m^0``. The global random state is left untouched.
    Takes a few milliseconds.

    Raises:
        PluginCheckError: naming the first problem found.
    """
    with _isolated_torch():
        agg = _call(f"{cls.__name__}() (every parameter needs a default)", cls)
        x = torch.linspace(-1.0, 1.0, 15).reshape(5, 3)
        for graph in _tiny_graphs():
            kind = "weighted" if graph.weight is not None else "unweighted"
            w = _call(f"transition() of a tiny {kind} graph", agg.transition, graph)
            if not isinstance(w, CSRGraph) or w.num_nodes != graph.num_nodes:
                got = f"{w.num_nodes} nodes" if isinstance(w, CSRGraph) else _describe(w)
                raise PluginCheckError(
                    f"transition() of a {graph.num_nodes}-node {kind} graph returned {got}; "
                    f"expected a CSRGraph of {graph.num_nodes} nodes"
                )
            if w.weight is not None and not _finite(w.weight):
                raise PluginCheckError(f"transition() gives NaN or inf weights ({kind} graph)")
            matrix = w.to_torch_csr(torch.float32)
            m0 = x.clone()
            prev = m0
            for t in (1, 2):
                what = f"combine(..., t={t})"
                cur = _call(what, agg.combine, matrix @ prev, m0, t)
                _expect_float_tensor(what, cur, tuple(x.shape), str(list(x.shape)))
                if not _finite(cur):
                    raise PluginCheckError(f"hop {t} has NaN or inf ({kind} graph)")
                prev = cur
            if not torch.equal(m0, x):
                raise PluginCheckError("combine() modified the hop-0 message m0 in place")


def check_message_aggregator(cls: type[MessageAggregator]) -> None:
    """Self-check of a message aggregator class before it is offered.

    For ``num_hops`` 1 (``K = 0``) and 3, instantiates ``cls(num_hops, 4)`` and checks that
    :attr:`~MessageAggregator.out_dim` is a positive int and that ``forward`` maps hops
    ``[2, num_hops, 4]`` to a finite floating ``[2, out_dim]`` tensor (in eval mode, without
    gradients). The global random state is left untouched. Takes about a millisecond.

    Raises:
        PluginCheckError: naming the first problem found.
    """
    in_dim, batch = 4, 2
    with _isolated_torch():
        for num_hops in (1, 3):
            module = _call(
                f"{cls.__name__}(num_hops={num_hops}, in_dim={in_dim})", cls, num_hops, in_dim
            )
            out_dim = getattr(module, "out_dim", None)
            if isinstance(out_dim, bool) or not isinstance(out_dim, int) or out_dim < 1:
                raise PluginCheckError(f"out_dim is {out_dim!r}, not a positive int")
            hops = torch.linspace(-1.0, 1.0, batch * num_hops * in_dim)
            hops = hops.reshape(batch, num_hops, in_dim)
            module.eval()
            what = f"forward() of hops {list(hops.shape)}"
            out = _call(what, module, hops)
            _expect_float_tensor(what, out, (batch, out_dim), f"[{batch}, out_dim={out_dim}]")
            if not _finite(out):
                raise PluginCheckError(f"forward() of hops {list(hops.shape)} gives NaN or inf")
