"""PyTorch Geometric adapter: transforms and dataset loading."""

from .transforms import SGAPPostprocess, SGAPPrecompute

__all__ = ["SGAPPostprocess", "SGAPPrecompute"]
