"""Tests of the example plugin that need no installation (``pythonpath = ["src"]``)."""

from __future__ import annotations

import importlib.metadata
import math

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse
import scipy.sparse.linalg
import torch
from sgap_plugin_example import HeatKernel, HopAttention, plugin

from sgap_plugins import propagate
from sgap_plugins.core.plugin_checks import check_graph_aggregator, check_message_aggregator
from sgap_plugins.core.plugins import graph_aggregator_classes, message_aggregator_classes


def small_graph(seed: int = 0, n: int = 9) -> tuple[torch.Tensor, np.ndarray]:
    """A random undirected graph with an isolated last node: ``edge_index`` and dense ``A``."""
    rng = np.random.default_rng(seed)
    a = np.triu((rng.random((n, n)) < 0.35).astype(np.float64), 1)
    a[-1, :] = a[:, -1] = 0.0
    a = a + a.T
    dst, src = np.nonzero(a)
    return torch.tensor(np.stack([src, dst])), a


def gcn_norm(a: np.ndarray) -> np.ndarray:
    """``D̃^{-1/2}(A + I)D̃^{-1/2}``, written independently of sgap_plugins."""
    a_tilde = a + np.eye(len(a))
    d = a_tilde.sum(1) ** -0.5
    return d[:, None] * a_tilde * d[None, :]


@pytest.mark.parametrize("tau", [0.5, 3.0])
def test_heat_matches_dense_expm(tau: float) -> None:
    edge_index, a = small_graph()
    x = torch.randn(len(a), 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    heat = HeatKernel(tau=tau)
    hops = propagate(edge_index, x, 30, heat)
    expected = scipy.linalg.expm(-tau * (np.eye(len(a)) - gcn_norm(a))) @ x.numpy()
    np.testing.assert_allclose(heat.diffuse(hops).numpy(), expected, rtol=1e-5, atol=1e-6)


def test_heat_hops_are_taylor_terms_and_truncation_bound_holds() -> None:
    edge_index, a = small_graph(seed=3)
    x = torch.rand(len(a), 3, dtype=torch.float64)
    heat = HeatKernel(tau=2.0)
    k = 4
    hops = propagate(edge_index, x, k, heat)
    a_hat = gcn_norm(a)
    for t in range(k + 1):
        term = 2.0**t / math.factorial(t) * np.linalg.matrix_power(a_hat, t) @ x.numpy()
        np.testing.assert_allclose(hops[t].numpy(), term, rtol=1e-5, atol=1e-7)
    exact = scipy.sparse.linalg.expm_multiply(
        -2.0 * (scipy.sparse.identity(len(a)) - scipy.sparse.csr_matrix(a_hat)), x.numpy()
    )
    error = np.linalg.norm(heat.diffuse(hops).numpy() - exact)
    assert error <= heat.truncation_error(k) * np.linalg.norm(x.numpy()) + 1e-9
    assert error > 0.01 * heat.truncation_error(k) * np.linalg.norm(x.numpy())


def test_heat_rejects_bad_tau() -> None:
    for tau in (0.0, -1.0, float("inf"), float("nan"), True, "3"):
        with pytest.raises(ValueError, match="tau"):
            HeatKernel(tau=tau)


@pytest.mark.parametrize("num_hops", [1, 4])
def test_attention_is_a_convex_combination_of_hops(num_hops: int) -> None:
    torch.manual_seed(0)
    module = HopAttention(num_hops, 6, hidden=8)
    hops = torch.randn(5, num_hops, 6, requires_grad=True)
    alpha = module.attention(hops)
    assert alpha.shape == (5, num_hops)
    torch.testing.assert_close(alpha.sum(1), torch.ones(5))
    out = module(hops)
    assert out.shape == (5, module.out_dim) == (5, 6)
    torch.testing.assert_close(out, (alpha[:, :, None] * hops).sum(1))
    out.sum().backward()
    assert module.query.grad is not None and hops.grad is not None


def test_hooks_return_classes_that_pass_the_self_checks() -> None:
    assert plugin.sgap_graph_aggregators() == [HeatKernel]
    assert plugin.sgap_message_aggregators() == [HopAttention]
    check_graph_aggregator(HeatKernel)
    check_message_aggregator(HopAttention)


def test_registered_when_installed() -> None:
    if not importlib.metadata.entry_points(group="sgap_plugins", name="example"):
        pytest.skip("sgap-plugin-example is not installed (pip install .)")
    assert graph_aggregator_classes()["heat"] is HeatKernel
    assert message_aggregator_classes()["attention"] is HopAttention
    edge_index, a = small_graph(seed=1)
    x = torch.rand(len(a), 2, dtype=torch.float64)
    by_name = propagate(edge_index, x, 3, "heat", tau=2.0)  # the registry passes parameters on
    torch.testing.assert_close(by_name, propagate(edge_index, x, 3, HeatKernel(tau=2.0)))
