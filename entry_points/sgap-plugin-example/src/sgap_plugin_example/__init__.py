"""An example sgap-plugins plugin.

Registers, through the ``sgap_plugins`` entry-point group (see ``pyproject.toml``):

* the graph aggregator ``heat`` (:class:`HeatKernel`), heat-kernel diffusion
  :math:`e^{-\\tau(\\mathbf{I} - \\hat{\\mathbf{A}})}` by its Taylor series;
* the message aggregator ``attention`` (:class:`HopAttention`), a per-node attention over hops.
"""

from .attention import HopAttention
from .heat import HeatKernel

__version__ = "0.1.0"

__all__ = ["HeatKernel", "HopAttention", "__version__"]
