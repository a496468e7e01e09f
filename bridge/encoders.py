"""Binarisation of raw features into input bits, shared by training and deployment.

Every helper builds a lgnrt.network.ThresholdEncoder, and `encode_bits`
produces the training input with that encoder's own `encode`: the function
the runtime's reference evaluator calls. The exported model therefore
receives exactly the bits the network was trained on.
"""

from __future__ import annotations

import numpy as np
import torch

from lgnrt.datasets import Dataset
from lgnrt.network import ThresholdEncoder

ENCODINGS = ("uniform", "quantile", "fixed")


def thermometer_encoder(n_features: int, thresholds) -> ThresholdEncoder:
    """Build an encoder with one bit per (feature, threshold), bit = feature > threshold.

    `thresholds` is either a sequence of k values shared by every feature or
    an array of shape (n_features, k). Bits are feature-major: bit
    f * k + j compares feature f with its j-th threshold.
    """
    table = np.asarray(thresholds, dtype=np.float64)
    if table.ndim == 1:
        table = np.broadcast_to(table, (n_features, table.shape[0]))
    if table.ndim != 2 or table.shape[0] != n_features or table.shape[1] == 0:
        raise ValueError(
            f"thresholds must have shape (k,) or ({n_features}, k) with k >= 1, got {np.shape(thresholds)}"
        )
    if not np.isfinite(table).all():
        raise ValueError("thresholds must be finite")
    n_levels = table.shape[1]
    feature_index = np.repeat(np.arange(n_features, dtype=np.int32), n_levels)
    return ThresholdEncoder(n_features, feature_index, table.reshape(-1).astype(np.float32))


def uniform_thresholds(low: float, high: float, n_levels: int) -> np.ndarray:
    """Return `n_levels` thresholds splitting [low, high] into equal parts.

    One level over pixels 0 .. 255 gives 127.5, that is, bit = pixel >= 128.
    """
    if n_levels < 1:
        raise ValueError(f"n_levels must be at least 1, got {n_levels}")
    return low + (high - low) * np.arange(1, n_levels + 1) / (n_levels + 1)


def quantile_thresholds(train_features: np.ndarray, n_levels: int) -> np.ndarray:
    """Return per-feature quantiles at 1/(k+1), ..., k/(k+1) of the training features, shape (F, k)."""
    if n_levels < 1:
        raise ValueError(f"n_levels must be at least 1, got {n_levels}")
    levels = np.arange(1, n_levels + 1) / (n_levels + 1)
    return np.quantile(np.asarray(train_features, dtype=np.float64), levels, axis=0).T


def make_encoder(
    dataset: Dataset,
    encoding: str = "uniform",
    n_levels: int = 1,
    thresholds: tuple[float, ...] | None = None,
) -> ThresholdEncoder:
    """Build the encoder for a data set.

    "uniform": `n_levels` evenly spaced thresholds inside the data set's
    value range, or inside each feature's training min .. max when the
    range is not declared. "quantile": per-feature training quantiles.
    "fixed": the given `thresholds` for every feature.
    """
    n_features = dataset.n_features
    if encoding == "fixed":
        if not thresholds:
            raise ValueError("encoding 'fixed' needs thresholds, for example (127.5,)")
        return thermometer_encoder(n_features, thresholds)
    if encoding == "quantile":
        return thermometer_encoder(n_features, quantile_thresholds(dataset.train_features, n_levels))
    if encoding == "uniform":
        if dataset.value_range is not None:
            low, high = dataset.value_range
            return thermometer_encoder(n_features, uniform_thresholds(low, high, n_levels))
        low = dataset.train_features.min(axis=0).astype(np.float64)
        high = dataset.train_features.max(axis=0).astype(np.float64)
        table = np.stack([uniform_thresholds(lo, hi, n_levels) for lo, hi in zip(low, high)])
        return thermometer_encoder(n_features, table)
    raise ValueError(f"unknown encoding {encoding!r}; expected one of {', '.join(ENCODINGS)}")


def encode_bits(encoder: ThresholdEncoder, features: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """Return the input bits of `features` as a bool tensor (n_samples, n_bits) on `device`."""
    return torch.from_numpy(encoder.encode(features)).to(device)
