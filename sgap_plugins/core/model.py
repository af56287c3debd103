"""The SGAP model: message aggregator → MLP, plus the post-processing step."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .arguments import check_positive_int
from .config import SGAPConfig, preset
from .propagation import as_csr_graph, propagate_csr


class SGAPModel(nn.Module):
    """The trainable part of an SGAP architecture.

    ``forward`` maps precomputed hops ``[B, K_pre+1, F]`` to logits ``[B, C]``:

    .. math::
        \\mathbf{h}_v = \\mathrm{MA}(\\mathbf{m}^0_v, \\dots, \\mathbf{m}^{K}_v), \\qquad
        \\hat{\\mathbf{y}}_v = \\mathrm{MLP}_{K_{trans}}(\\mathbf{h}_v)

    and :meth:`postprocess` propagates the soft predictions ``softmax(ŷ)`` ``k_post`` steps
    with ``ga_post`` (label propagation). Any non-linearity between the message aggregator
    and the MLP belongs to the aggregator (SIGN's ReLU after its inception layer is part of
    ``sign``'s ``forward``), so a plugin aggregator can have one too.

    Constructing the model resolves ``ma`` and ``ga_post`` in the plugin registry: an unknown
    name or a bad parameter raises here, naming the setting. The same seed gives the same
    initial weights whether ``config`` is a preset name or that preset's configuration.

    Args:
        config: an :class:`SGAPConfig` or a preset name.
        in_dim: feature width ``F``.
        num_classes: ``C``.
    """

    def __init__(self, config: SGAPConfig | str, in_dim: int, num_classes: int) -> None:
        super().__init__()
        if isinstance(config, str):
            config = preset(config)
        if not isinstance(config, SGAPConfig):
            raise TypeError(f"config must be an SGAPConfig or a preset name, got {config!r}")
        self.config = config
        self.in_dim = in_dim
        self.num_classes = check_positive_int(num_classes, "num_classes")
        self.aggregator = config.message_aggregator(in_dim)
        self.post_aggregator = config.post_aggregator()
        self.input_dropout = nn.Dropout(config.input_dropout)
        dims = [self.aggregator.out_dim] + [config.hidden] * (config.k_trans - 1) + [num_classes]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
            if i > 0:
                layers += [nn.ReLU(), nn.Dropout(config.dropout)]
            layers.append(nn.Linear(a, b))
        self.mlp = nn.Sequential(*layers)
        self.reset_parameters()

    @classmethod
    def from_preset(cls, name: str, in_dim: int, num_classes: int, **overrides: Any) -> SGAPModel:
        return cls(preset(name, **overrides), in_dim, num_classes)

    def reset_parameters(self) -> None:
        self.aggregator.reset_parameters()
        for module in self.mlp:
            if isinstance(module, nn.Linear):
                module.reset_parameters()

    def forward(self, hops: Tensor) -> Tensor:
        if hops.dim() != 3 or hops.size(1) != self.config.k_pre + 1 or hops.size(2) != self.in_dim:
            raise ValueError(
                f"hops must have shape [B, k_pre+1={self.config.k_pre + 1}, F={self.in_dim}], "
                f"got {list(hops.shape)}"
            )
        return self.mlp(self.aggregator(self.input_dropout(hops)))

    @torch.no_grad()
    def postprocess(self, graph: Any, logits: Tensor, **graph_kwargs: Any) -> Tensor:
        """Propagate soft predictions ``k_post`` steps with ``ga_post``; returns ``[N, C]``
        probabilities (the softmax of ``logits`` when ``k_post == 0``)."""
        probs = torch.softmax(logits.float(), dim=-1)
        if self.config.k_post == 0:
            return probs
        if isinstance(graph, Tensor):  # an edge_index: one prediction row per node
            graph_kwargs.setdefault("num_nodes", probs.size(0))
        csr = as_csr_graph(graph, **graph_kwargs)
        if probs.size(0) != csr.num_nodes:
            raise ValueError(
                f"logits has {probs.size(0)} rows but the graph has {csr.num_nodes} nodes; "
                "post-processing needs predictions for every node"
            )
        return propagate_csr(csr, self.post_aggregator, probs, self.config.k_post)[-1]
