"""lgnrt: train logic gate networks in PyTorch and serve them on CPUs with bitwise logic.

Serving needs only numpy and the compiled extension; training lives in
`lgnrt.bridge` and needs torch (install `lgnrt[train]`).
"""

__version__ = "0.1.0"

from .errors import InputError, LgnError, ModelFileError  # noqa: E402
from .lgn_format import load_network, save_network  # noqa: E402
from .model import Model, kernel_info, load, set_kernel_isa  # noqa: E402
from .network import LogicLayer, Network, ThresholdEncoder  # noqa: E402

__all__ = [
    "InputError", "LgnError", "ModelFileError", "LogicLayer", "Model", "Network",
    "ThresholdEncoder", "kernel_info", "load", "load_network", "save_network",
    "set_kernel_isa", "__version__",
]
