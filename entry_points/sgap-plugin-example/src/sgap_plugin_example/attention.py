"""The ``attention`` message aggregator: a per-node additive attention over hops."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from sgap_plugins import MessageAggregator


class HopAttention(MessageAggregator):
    r"""Per-node attention over the hops (``attention``), additive (Bahdanau) scoring with a
    learnable per-hop prior:

    .. math::
        s_{v,i} = \mathbf{q}^\top \tanh(\mathbf{W}\mathbf{m}^i_v + \mathbf{b}) + c_i,
        \qquad \alpha_{v,i} = \mathrm{softmax}_i(s_{v,i}),
        \qquad \mathbf{h}_v = \sum_{i=0}^{K} \alpha_{v,i}\,\mathbf{m}^i_v

    Input hops ``[B, K+1, F]``, output ``[B, F]`` (``out_dim = in_dim``). Unlike
    ``adaptive`` (one linear gate per hop, squashed by a sigmoid), the score is a small MLP
    with a learnable query ``q``, and the prior ``c`` lets the model prefer hops regardless of
    the node, like ``weighted`` does.

    Args:
        num_hops: ``K + 1``.
        in_dim: feature width ``F``.
        hidden: width of the scoring layer ``W``.
    """

    name = "attention"

    def __init__(self, num_hops: int, in_dim: int, hidden: int = 32) -> None:
        super().__init__(num_hops, in_dim)
        if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
            raise ValueError(f"hidden must be a positive int, got {hidden!r}")
        self.hidden = hidden
        self.proj = nn.Linear(in_dim, hidden)
        self.query = nn.Parameter(torch.empty(hidden))
        self.hop_prior = nn.Parameter(torch.empty(num_hops))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.proj.reset_parameters()
        nn.init.uniform_(self.query, -(self.hidden**-0.5), self.hidden**-0.5)
        nn.init.zeros_(self.hop_prior)

    def attention(self, hops: Tensor) -> Tensor:
        """The weights ``α`` ``[B, K+1]`` (rows sum to 1)."""
        scores = torch.tanh(self.proj(hops)) @ self.query + self.hop_prior
        return torch.softmax(scores, dim=1)

    def forward(self, hops: Tensor) -> Tensor:
        return torch.einsum("bkf,bk->bf", hops, self.attention(hops))
