"""Export of a trained LogicNet to the runtime's Network and to `.lgn` files."""

from __future__ import annotations

import os
import platform

import numpy as np
import torch

import lgnrt
from lgnrt.lgn_format import save_network
from lgnrt.network import LogicLayer as CircuitLayer
from lgnrt.network import Network, ThresholdEncoder, reference_predict

from .model import LogicNet


def to_network(
    model: LogicNet,
    encoder: ThresholdEncoder,
    record: dict | None = None,
    class_names: list[str] | tuple[str, ...] | None = None,
) -> Network:
    """Build the committed circuit: the encoder, argmax gates, wiring and GroupSum tau.

    `record` becomes the network's training record and must be
    JSON-serialisable without NaN or infinity.
    """
    if encoder.n_bits != model.n_bits:
        raise ValueError(
            f"encoder produces {encoder.n_bits} bits but the model reads {model.n_bits}; "
            "export with the encoder the model was trained with"
        )
    layers = [
        CircuitLayer(
            wire_a=layer.wire_a.detach().cpu().numpy().astype(np.int32),
            wire_b=layer.wire_b.detach().cpu().numpy().astype(np.int32),
            gates=layer.gate_ids().cpu().numpy().astype(np.uint8),
        )
        for layer in model.layers
    ]
    network = Network(
        encoder=encoder,
        layers=layers,
        n_classes=model.n_classes,
        tau=float(model.head.tau),
        class_names=list(class_names) if class_names is not None else None,
        training=dict(record or {}),
    )
    network.validate()
    return network


def export_model(
    model: LogicNet,
    encoder: ThresholdEncoder,
    path: str | os.PathLike,
    record: dict | None = None,
    class_names: list[str] | tuple[str, ...] | None = None,
) -> Network:
    """Write the committed circuit to a `.lgn` file at `path` atomically; return the Network."""
    network = to_network(model, encoder, record, class_names)
    save_network(network, path)
    return network


def verify_export(network: Network, model: LogicNet, encoder: ThresholdEncoder, features: np.ndarray) -> None:
    """Raise RuntimeError unless the runtime's reference predicts what the model's hard circuit predicts.

    Compares labels sample by sample on `features`, the raw (not binarised)
    features.
    """
    expected = model.hard_predict(torch.from_numpy(encoder.encode(features)).to(_device(model))).cpu().numpy()
    actual = reference_predict(network, features)
    mismatched = np.flatnonzero(expected != actual)
    if mismatched.size:
        raise RuntimeError(
            f"exported network disagrees with the trained model's hard circuit on "
            f"{mismatched.size} of {len(expected)} samples, first at sample {mismatched[0]}"
        )


def library_versions() -> dict:
    """Return the versions of Python, numpy, torch and lgnrt, for training records."""
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "lgnrt": lgnrt.__version__,
    }


def _device(model: LogicNet) -> torch.device:
    return model.layers[0].logits.device
