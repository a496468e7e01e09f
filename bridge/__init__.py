"""Training bridge: train logic gate networks in PyTorch and export them to `.lgn` files.

    from lgnrt.bridge.train import PRESETS, train
    from lgnrt.bridge import export_model
    result = train(PRESETS["demo"])
    export_model(result.model, result.encoder, "model.lgn", result.record)

Needs torch (install `lgnrt[train]`); the runtime in `lgnrt` does not.
"""

from .cage import CageConfig
from .encoders import encode_bits, make_encoder, thermometer_encoder
from .estimators import ESTIMATORS
from .export import export_model, to_network, verify_export
from .layers import GroupSum, LogicLayer
from .model import LogicNet
# The train() function stays in lgnrt.bridge.train: re-exported here it would
# replace the submodule attribute, and `import lgnrt.bridge.train as m` would
# then bind the function.
from .train import PRESETS, TrainConfig, TrainResult

__all__ = [
    "CageConfig", "ESTIMATORS", "GroupSum", "LogicLayer", "LogicNet", "PRESETS", "TrainConfig",
    "TrainResult", "encode_bits", "export_model", "make_encoder", "thermometer_encoder", "to_network",
    "verify_export",
]
