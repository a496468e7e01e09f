"""Shared test helpers: random networks and features that hit their thresholds.

`random_network` and `random_features` are plain functions so any test
module can import them (`from conftest import random_network`); the
fixtures below wrap them with a seeded generator.
"""

from __future__ import annotations

import numpy as np
import pytest

from lgnrt.network import LogicLayer, Network, ThresholdEncoder


def random_network(
    rng: np.random.Generator,
    *,
    n_features: int = 12,
    bits_per_feature: int = 2,
    extra_bits: int = 0,
    widths: tuple[int, ...] = (32, 24, 12),
    n_classes: int = 3,
    same_source_fraction: float = 0.15,
    gate_ids=None,
    threshold_low: float = -20.0,
    threshold_high: float = 275.0,
) -> Network:
    """Return a validated network with random wiring, gates and thermometer encoder.

    Every feature gets `bits_per_feature` thresholds (a thermometer code);
    `extra_bits` more bits read random features, so some features have
    more thresholds than others. Thresholds are drawn from
    [threshold_low, threshold_high), which covers the uint8 edge cases
    (below 0, at and above 255), and about a quarter are whole or half
    numbers, which uint8 and rounded float inputs hit exactly. A fraction
    of the gates reads one source on both inputs. `gate_ids` limits the
    gates drawn (default: all 16).
    """
    feature_index = np.concatenate([
        np.repeat(np.arange(n_features), bits_per_feature),
        rng.integers(0, n_features, extra_bits),
    ]).astype(np.int32)
    n_bits = feature_index.shape[0]
    threshold = rng.uniform(threshold_low, threshold_high, n_bits)
    rounded = rng.random(n_bits) < 0.25
    threshold[rounded] = np.round(threshold[rounded] * 2) / 2
    encoder = ThresholdEncoder(n_features=n_features, feature_index=feature_index,
                               threshold=threshold.astype(np.float32))

    choices = np.arange(16) if gate_ids is None else np.asarray(gate_ids)
    layers = []
    previous = n_bits
    for width in widths:
        wire_a = rng.integers(0, previous, width)
        wire_b = rng.integers(0, previous, width)
        same = rng.random(width) < same_source_fraction
        wire_b[same] = wire_a[same]
        layers.append(LogicLayer(
            wire_a=wire_a.astype(np.int32),
            wire_b=wire_b.astype(np.int32),
            gates=rng.choice(choices, width).astype(np.uint8),
        ))
        previous = width
    network = Network(encoder=encoder, layers=layers, n_classes=n_classes,
                      class_names=[f"class {c}" for c in range(n_classes)])
    network.validate()
    return network


def random_features(rng: np.random.Generator, network: Network, n_samples: int,
                    dtype=np.float32) -> np.ndarray:
    """Return features of `dtype`, about a third of them exactly at a threshold.

    Integer dtypes draw from [-40, 300] clipped to the dtype's range. Float
    dtypes draw from [-30, 285), so every threshold is crossed. Values at a
    threshold test the strict comparison.
    """
    n_features = network.n_features
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return rng.random((n_samples, n_features)) < 0.5
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        values = rng.integers(max(info.min, -40), min(info.max, 300) + 1, (n_samples, n_features))
        return values.astype(dtype)

    values = rng.uniform(-30, 285, (n_samples, n_features))
    encoder = network.encoder
    order = np.argsort(encoder.feature_index, kind="stable")
    bits_per_feature = np.bincount(encoder.feature_index, minlength=n_features)
    first_bit = np.concatenate([[0], np.cumsum(bits_per_feature)[:-1]])

    # Set a third of the values to one of their feature's thresholds.
    rows, columns = np.nonzero(rng.random((n_samples, n_features)) < 0.35)
    has_bits = bits_per_feature[columns] > 0
    rows, columns = rows[has_bits], columns[has_bits]
    pick = (rng.random(columns.size) * bits_per_feature[columns]).astype(np.int64)
    values[rows, columns] = encoder.threshold[order[first_bit[columns] + pick]]
    return values.astype(dtype)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240601)


@pytest.fixture
def small_network(rng) -> Network:
    """A 12-feature, three-layer network with all 16 gates."""
    return random_network(rng)


def tiny_network() -> Network:
    """Return the 3-feature, 2-layer network whose bytes the golden file pins."""
    encoder = ThresholdEncoder(
        n_features=3,
        feature_index=np.array([0, 1, 2, 2], dtype=np.int32),
        threshold=np.array([0.5, 0.5, 0.25, 0.75], dtype=np.float32),
    )
    layers = [
        LogicLayer(np.array([0, 1, 2, 3], np.int32), np.array([1, 2, 3, 0], np.int32),
                   np.array([1, 6, 9, 14], np.uint8)),
        LogicLayer(np.array([0, 1], np.int32), np.array([2, 3], np.int32),
                   np.array([7, 8], np.uint8)),
    ]
    return Network(encoder, layers, n_classes=2, tau=1.0, class_names=["no", "yes"],
                   training={"seed": 0})
