"""Message aggregators against brute-force per-node loops; out_dim; gradients."""

from __future__ import annotations

import math

import pytest
import torch

from sgap_plugins import MessageAggregator
from sgap_plugins.core.plugins import message_aggregator_class, message_aggregator_classes

B, H, F = 7, 4, 5  # batch, hops (K + 1), features
BUILTINS = ["none", "mean", "max", "concat", "weighted", "adaptive", "sign"]


@pytest.fixture
def hops():
    return torch.randn(B, H, F, dtype=torch.float64, generator=torch.Generator().manual_seed(0))


def make(name, **params):
    return message_aggregator_class(name)(H, F, **params).double()


def loop(hops, per_node):
    """Apply ``per_node(list_of_hop_vectors) -> vector`` to every node, one at a time."""
    return torch.stack([per_node([hops[b, i] for i in range(H)], b) for b in range(B)])


def test_builtins_registered():
    classes = message_aggregator_classes()
    for name in BUILTINS:
        assert issubclass(classes[name], MessageAggregator)
        assert classes[name].name == name


def test_none_is_last_hop(hops):
    torch.testing.assert_close(make("none")(hops), loop(hops, lambda m, b: m[-1]))


def test_mean(hops):
    torch.testing.assert_close(make("mean")(hops), loop(hops, lambda m, b: sum(m) / len(m)))


def test_max(hops):
    def per_node(m, b):
        return torch.tensor([max(float(v[f]) for v in m) for f in range(F)], dtype=hops.dtype)

    torch.testing.assert_close(make("max")(hops), loop(hops, per_node))


def test_concat(hops):
    agg = make("concat")
    assert agg.out_dim == H * F
    expected = loop(hops, lambda m, b: torch.tensor([float(x) for v in m for x in v]).double())
    torch.testing.assert_close(agg(hops), expected)


@pytest.mark.parametrize("beta", [0.15, 0.5, 1.0])
def test_weighted_fixed_gbp_decay(hops, beta):
    agg = make("weighted", beta=beta)
    assert not list(agg.parameters())
    w = [beta * (1 - beta) ** i for i in range(H)]
    torch.testing.assert_close(agg.weights().double(), torch.tensor(w, dtype=torch.float64))
    expected = loop(hops, lambda m, b: sum(wi * mi for wi, mi in zip(w, m, strict=True)))
    torch.testing.assert_close(agg(hops), expected)


def test_weighted_learnable_is_softmax_of_theta(hops):
    agg = make("weighted", beta=0.3, learnable=True)
    assert [n for n, _ in agg.named_parameters()] == ["theta"]
    # initialised to log of the decay: softmax gives the decay renormalised to sum 1
    decay = [0.3 * 0.7**i for i in range(H)]
    torch.testing.assert_close(
        agg.weights().double(), torch.tensor(decay, dtype=torch.float64) / sum(decay)
    )
    with torch.no_grad():
        agg.theta.copy_(torch.tensor([0.5, -1.0, 2.0, 0.0]))
    e = [math.exp(t) for t in (0.5, -1.0, 2.0, 0.0)]
    w = [x / sum(e) for x in e]
    expected = loop(hops, lambda m, b: sum(wi * mi for wi, mi in zip(w, m, strict=True)))
    torch.testing.assert_close(agg(hops), expected)


def test_weighted_rejects_bad_beta():
    with pytest.raises(ValueError, match="beta"):
        message_aggregator_class("weighted")(H, F, beta=0.0)
    with pytest.raises(ValueError, match="beta"):
        message_aggregator_class("weighted")(H, F, beta=1.5)


def test_adaptive_per_node_gate(hops):
    agg = make("adaptive")
    s = agg.gate.weight.detach()[0]
    bias = float(agg.gate.bias.detach()[0])

    def per_node(m, b):
        scores = [1 / (1 + math.exp(-(float(s @ v) + bias))) for v in m]
        z = sum(math.exp(c) for c in scores)
        return sum((math.exp(c) / z) * v for c, v in zip(scores, m, strict=True))

    torch.testing.assert_close(agg(hops), loop(hops, per_node))
    assert agg.out_dim == F


def test_sign_per_hop_linear_then_concat_then_relu(hops):
    """SIGN's ReLU after the inception layer is part of the aggregator, not of the model."""
    agg = make("sign", hidden=3)
    assert agg.out_dim == H * 3
    wt, bias = agg.weight.detach(), agg.bias.detach()

    def per_node(m, b):
        return torch.cat([torch.clamp(m[i] @ wt[i] + bias[i], min=0.0) for i in range(H)])

    torch.testing.assert_close(agg(hops), loop(hops, per_node))


@pytest.mark.parametrize(
    "name, params, out_dim",
    [
        ("none", {}, F),
        ("mean", {}, F),
        ("max", {}, F),
        ("concat", {}, H * F),
        ("weighted", {}, F),
        ("weighted", {"learnable": True}, F),
        ("adaptive", {}, F),
        ("sign", {"hidden": 6}, H * 6),
    ],
)
def test_out_dim_matches_output(hops, name, params, out_dim):
    agg = make(name, **params)
    assert agg.out_dim == out_dim
    assert agg(hops).shape == (B, out_dim)
    assert f"out_dim={out_dim}" in repr(agg)


@pytest.mark.parametrize(
    "name, params",
    [
        ("none", {}),
        ("mean", {}),
        ("max", {}),
        ("concat", {}),
        ("weighted", {}),
        ("weighted", {"learnable": True}),
        ("adaptive", {}),
        ("sign", {"hidden": 4}),
    ],
)
def test_gradients_flow(hops, name, params):
    agg = make(name, **params)
    x = hops.clone().requires_grad_(True)
    out = agg(x)
    head = torch.randn(out.size(1), dtype=out.dtype, generator=torch.Generator().manual_seed(1))
    (out @ head).sum().backward()
    assert x.grad is not None and bool(torch.isfinite(x.grad).all())
    assert float(x.grad.abs().sum()) > 0
    params_ = list(agg.parameters())
    if name in ("adaptive", "sign") or params.get("learnable"):
        assert params_
    for p in params_:
        assert p.grad is not None and float(p.grad.abs().sum()) > 0, name
    # gradient w.r.t. the input equals a finite-difference estimate on one entry
    eps = 1e-6
    with torch.no_grad():
        bumped = hops.clone()
        bumped[0, 0, 0] += eps
        fd = float(((agg(bumped) - agg(hops)) @ head).sum()) / eps
    assert fd == pytest.approx(float(x.grad[0, 0, 0]), rel=1e-4, abs=1e-6)


def test_only_used_hops_get_gradient(hops):
    x = hops.clone().requires_grad_(True)
    make("none")(x).sum().backward()
    assert bool((x.grad[:, :-1] == 0).all()) and bool((x.grad[:, -1] == 1).all())


@pytest.mark.parametrize(
    "num_hops, in_dim", [(0, 3), (2, 0), (2.0, 3), (2, "3"), (True, 3), (2, True)]
)
def test_base_class_validation(num_hops, in_dim):
    with pytest.raises(ValueError, match="num_hops|in_dim"):
        message_aggregator_class("mean")(num_hops, in_dim)


def test_reset_parameters_reinitialises():
    torch.manual_seed(0)
    agg = message_aggregator_class("weighted")(H, F, learnable=True)
    init = agg.weights().detach().clone()
    with torch.no_grad():
        agg.theta.add_(1.0 + torch.arange(H, dtype=torch.float32))
    assert not torch.allclose(agg.weights(), init)
    agg.reset_parameters()
    torch.testing.assert_close(agg.weights().detach(), init)
