"""Message aggregators: combine the ``K+1`` hops of each node into one vector.

Every aggregator is a :class:`torch.nn.Module` constructed as
``Cls(num_hops, in_dim, **params)`` whose ``forward`` maps a mini-batch of hops
``[B, K+1, F]`` (``num_hops = K+1``) to ``[B, out_dim]``, the input of the model's MLP. An
aggregator whose output needs a non-linearity applies it in ``forward`` (SIGN's ReLU after
its inception layer, :class:`SignHops`): the model adds nothing between the two.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from .arguments import check_positive_int


class MessageAggregator(nn.Module):
    """Base class. Subclasses set a unique ``name``, accept ``(num_hops, in_dim, **params)``,
    set :attr:`out_dim` in ``__init__`` and implement ``forward(hops: [B, K+1, F]) ->
    [B, out_dim]``, including any output activation."""

    name: ClassVar[str] = ""
    out_dim: int

    def __init__(self, num_hops: int, in_dim: int) -> None:
        super().__init__()
        self.num_hops = check_positive_int(num_hops, "num_hops", "K + 1")
        self.in_dim = check_positive_int(in_dim, "in_dim")
        self.out_dim = in_dim

    def reset_parameters(self) -> None:
        """Re-initialise learnable parameters (none by default)."""

    def extra_repr(self) -> str:
        return f"num_hops={self.num_hops}, in_dim={self.in_dim}, out_dim={self.out_dim}"


class LastHop(MessageAggregator):
    """``none`` (SGC): the last hop, :math:`\\mathbf{h}_v = \\mathbf{m}^K_v`."""

    name = "none"

    def forward(self, hops: Tensor) -> Tensor:
        return hops[:, -1]


class MeanHops(MessageAggregator):
    """``mean`` (S²GC): :math:`\\mathbf{h}_v = \\frac{1}{K+1}\\sum_{i=0}^K \\mathbf{m}^i_v`."""

    name = "mean"

    def forward(self, hops: Tensor) -> Tensor:
        return hops.mean(dim=1)


class MaxHops(MessageAggregator):
    """``max``: element-wise maximum over hops."""

    name = "max"

    def forward(self, hops: Tensor) -> Tensor:
        return hops.amax(dim=1)


class ConcatHops(MessageAggregator):
    """``concat`` (SIGN): :math:`\\mathbf{h}_v = \\Vert_{i=0}^K \\mathbf{m}^i_v`,
    ``out_dim = (K+1) F``."""

    name = "concat"

    def __init__(self, num_hops: int, in_dim: int) -> None:
        super().__init__(num_hops, in_dim)
        self.out_dim = num_hops * in_dim

    def forward(self, hops: Tensor) -> Tensor:
        return hops.reshape(hops.size(0), -1)


class WeightedHops(MessageAggregator):
    """``weighted``: :math:`\\mathbf{h}_v = \\sum_i w_i \\mathbf{m}^i_v`.

    With ``learnable=False`` the weights are GBP's fixed decay :math:`w_i = \\beta(1-\\beta)^i`;
    with ``learnable=True`` they are :math:`\\mathrm{softmax}(\\theta)_i`, ``θ`` initialised to
    the log of that decay.

    Args:
        beta: decay in ``(0, 1]``.
        learnable: learn the per-hop weights.
    """

    name = "weighted"

    def __init__(
        self, num_hops: int, in_dim: int, beta: float = 0.5, learnable: bool = False
    ) -> None:
        super().__init__(num_hops, in_dim)
        if not 0.0 < beta <= 1.0:
            raise ValueError(f"beta must be in (0, 1], got {beta!r}")
        self.beta = float(beta)
        self.learnable = bool(learnable)
        decay = self.beta * (1.0 - self.beta) ** torch.arange(num_hops, dtype=torch.float32)
        self.register_buffer("decay", decay)
        self.theta = nn.Parameter(torch.empty(num_hops)) if learnable else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.theta is not None:
            with torch.no_grad():
                self.theta.copy_(self.decay.clamp_min(1e-6).log())

    def weights(self) -> Tensor:
        """The current per-hop weights ``[K+1]``."""
        return torch.softmax(self.theta, 0) if self.theta is not None else self.decay

    def forward(self, hops: Tensor) -> Tensor:
        return torch.einsum("bkf,k->bf", hops, self.weights().to(hops.dtype))


class AdaptiveHops(MessageAggregator):
    """``adaptive``: a per-node gate over hops,

    .. math::
        \\mathbf{h}_v = \\sum_i w_{v,i} \\mathbf{m}^i_v, \\qquad
        w_{v,i} = \\mathrm{softmax}_i\\, \\sigma(\\mathbf{s}^\\top \\mathbf{m}^i_v + b).
    """

    name = "adaptive"

    def __init__(self, num_hops: int, in_dim: int) -> None:
        super().__init__(num_hops, in_dim)
        self.gate = nn.Linear(in_dim, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.gate.reset_parameters()

    def forward(self, hops: Tensor) -> Tensor:
        scores = torch.sigmoid(self.gate(hops).squeeze(-1))  # [B, K+1]
        w = torch.softmax(scores, dim=1)
        return torch.einsum("bkf,bk->bf", hops, w)


class SignHops(MessageAggregator):
    """``sign``: a separate linear map per hop, concatenated, then SIGN's ReLU (its inception
    layer and the non-linearity that follows it):
    :math:`\\mathbf{h}_v = \\mathrm{ReLU}(\\Vert_{i=0}^K (\\Theta_i \\mathbf{m}^i_v +
    \\mathbf{b}_i))`, ``out_dim = (K+1) hidden``.

    Args:
        hidden: width of each per-hop projection.
    """

    name = "sign"

    def __init__(self, num_hops: int, in_dim: int, hidden: int = 64) -> None:
        super().__init__(num_hops, in_dim)
        self.hidden = int(hidden)
        self.weight = nn.Parameter(torch.empty(num_hops, in_dim, self.hidden))
        self.bias = nn.Parameter(torch.empty(num_hops, self.hidden))
        self.out_dim = num_hops * self.hidden
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / self.in_dim**0.5
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, hops: Tensor) -> Tensor:
        out = torch.einsum("bkf,kfh->bkh", hops, self.weight) + self.bias
        return torch.relu(out.reshape(hops.size(0), -1))
