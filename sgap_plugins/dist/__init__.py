"""Propagation across processes and machines.

``torchrun --nproc_per_node P -m sgap_plugins.dist propagate <sgap precompute's options>``
splits the feature columns of ``x`` across the ``P`` ranks (:mod:`.column_shards`): each
rank maps the graph from disk and propagates its own columns, with no communication, and
all ranks write one hop folder that :func:`sgap_plugins.load_hops` reads as one process's.
"""

from .column_shards import TORCHRUN_HINT, NotUnderTorchrun, RankInfo, split_columns

__all__ = ["TORCHRUN_HINT", "NotUnderTorchrun", "RankInfo", "split_columns"]
