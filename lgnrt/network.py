"""In-memory form of a trained logic gate network, shared by the file format,
the reference evaluator, the graph passes and the training bridge's export.

Layout: an encoder turns `n_features` raw features into `n_bits` input bits.
Logic layer k has `width_k` neurons. Neuron i computes
`gates[i](prev[wire_a[i]], prev[wire_b[i]])` from the previous layer's
outputs, which are the input bits for layer 0. The GroupSum head splits the
last layer into `n_classes` contiguous blocks of equal size, and a class
score is its block's count of ones divided by `tau`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .errors import InputError, ModelFileError
from .gates import N_GATES, apply_gates_bool


@dataclass
class ThresholdEncoder:
    """Binarisation of raw features: bit i is `x[feature_index[i]] > threshold[i]`.

    Several bits may read the same feature (a thermometer code). The rule is
    strict: a feature exactly at the threshold gives 0.
    """

    n_features: int
    feature_index: np.ndarray  # int32, shape (n_bits,)
    threshold: np.ndarray  # float32, shape (n_bits,)

    @property
    def n_bits(self) -> int:
        return int(self.feature_index.shape[0])

    def encode(self, features: np.ndarray) -> np.ndarray:
        """Return the input bits, bool of shape (n_samples, n_bits).

        Plain numpy reference; the runtime's packed encoder must match it.
        Comparison is in float64 so uint8 and float32 features give the same
        result as the compiled path.
        """
        features = check_features(features, self.n_features)
        values = features[:, self.feature_index].astype(np.float64)
        return values > self.threshold.astype(np.float64)


@dataclass
class LogicLayer:
    """One layer of two-input gates with fixed wiring into the previous layer."""

    wire_a: np.ndarray  # int32, shape (width,)
    wire_b: np.ndarray  # int32, shape (width,)
    gates: np.ndarray  # uint8, shape (width,), ids 0..15

    @property
    def width(self) -> int:
        return int(self.gates.shape[0])


@dataclass
class Network:
    """A committed (one gate per neuron) logic gate network with its encoder and head."""

    encoder: ThresholdEncoder
    layers: list[LogicLayer]
    n_classes: int
    tau: float = 1.0
    class_names: list[str] | None = None
    training: dict = field(default_factory=dict)

    @property
    def n_features(self) -> int:
        return self.encoder.n_features

    @property
    def n_gates(self) -> int:
        return sum(layer.width for layer in self.layers)

    def validate(self) -> None:
        """Check every structural invariant; raise ModelFileError naming the field."""
        validate_network(self)


def check_features(features, n_features: int) -> np.ndarray:
    """Return `features` as a 2-D numeric array, or raise InputError saying what is wrong."""
    array = np.asarray(features)
    if array.dtype == object or not (
        np.issubdtype(array.dtype, np.integer)
        or np.issubdtype(array.dtype, np.floating)
        or array.dtype == np.bool_
    ):
        raise InputError(
            f"features must be a numeric array, got dtype {array.dtype}; "
            "pass uint8 or float32 values"
        )
    if array.ndim == 1 and array.shape[0] == n_features:
        array = array[np.newaxis, :]
    if array.ndim != 2:
        raise InputError(
            f"features must have shape (n_samples, {n_features}), got shape {array.shape}"
        )
    if array.shape[1] != n_features:
        raise InputError(
            f"wrong number of features: the model expects {n_features} per sample, "
            f"got {array.shape[1]} (input shape {array.shape})"
        )
    if np.issubdtype(array.dtype, np.floating) and array.size and not np.isfinite(array).all():
        bad = np.argwhere(~np.isfinite(array))[0]
        raise InputError(
            f"features contain NaN or infinity at sample {bad[0]}, feature {bad[1]}; "
            "replace them before predicting"
        )
    return array


def _require(condition: bool, field_name: str, problem: str, expected, actual) -> None:
    if not condition:
        raise ModelFileError(field_name, problem, expected, actual)


def _is_integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_finite_number(value) -> bool:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def _check_vector(array, field_name: str, dtype, length: int | None) -> None:
    _require(isinstance(array, np.ndarray), field_name, "not an array", "ndarray", type(array).__name__)
    _require(array.dtype == dtype, field_name, "wrong dtype", np.dtype(dtype).name, array.dtype.name)
    _require(array.ndim == 1, field_name, "wrong rank", 1, array.ndim)
    if length is not None:
        _require(array.shape[0] == length, field_name, "wrong length", length, array.shape[0])


def _check_index_range(array, field_name: str, upper: int) -> None:
    if array.size == 0:
        return
    low, high = int(array.min()), int(array.max())
    _require(low >= 0, field_name, "negative index", f">= 0", low)
    _require(high < upper, field_name, "index out of range", f"< {upper}", high)


def validate_network(network: Network) -> None:
    """Check dims, index bounds, gate ids, counts and head of a network."""
    encoder = network.encoder
    _require(_is_integer(encoder.n_features) and encoder.n_features >= 1,
             "inputs.n_features", "must be a positive integer", ">= 1", encoder.n_features)
    _check_vector(encoder.feature_index, "encoder.feature_index", np.int32, None)
    n_bits = encoder.n_bits
    _require(n_bits >= 1, "encoder.feature_index", "encoder has no input bits", ">= 1 bits", n_bits)
    _check_vector(encoder.threshold, "encoder.threshold", np.float32, n_bits)
    _check_index_range(encoder.feature_index, "encoder.feature_index", encoder.n_features)
    finite = np.isfinite(encoder.threshold)
    _require(bool(finite.all()), "encoder.threshold", "threshold is NaN or infinite",
             "finite values", None if finite.all() else float(encoder.threshold[~finite][0]))

    _require(len(network.layers) >= 1, "nodes", "network has no logic layer", ">= 1 layers", 0)
    previous_width = n_bits
    for k, layer in enumerate(network.layers):
        prefix = f"layers.{k}"
        _check_vector(layer.gates, f"{prefix}.gates", np.uint8, None)
        width = layer.width
        _require(width >= 1, f"{prefix}.gates", "layer has no neurons", ">= 1", width)
        _check_vector(layer.wire_a, f"{prefix}.wire_a", np.int32, width)
        _check_vector(layer.wire_b, f"{prefix}.wire_b", np.int32, width)
        _check_index_range(layer.wire_a, f"{prefix}.wire_a", previous_width)
        _check_index_range(layer.wire_b, f"{prefix}.wire_b", previous_width)
        top_gate = int(layer.gates.max())
        _require(top_gate < N_GATES, f"{prefix}.gates", "gate id out of range", f"<= {N_GATES - 1}", top_gate)
        previous_width = width

    n_classes = network.n_classes
    _require(_is_integer(n_classes) and n_classes >= 1, "outputs.n_classes",
             "must be a positive integer", ">= 1", n_classes)
    _require(previous_width % n_classes == 0, "outputs.n_classes",
             "classes must divide the last layer's width",
             f"a divisor of {previous_width}", n_classes)
    tau = network.tau
    _require(_is_finite_number(tau) and tau > 0,
             "GroupSum.tau", "must be a finite positive number", "> 0", tau)
    if network.class_names is not None:
        names = network.class_names
        _require(isinstance(names, list), "outputs.class_names", "must be a list of strings", "list of str",
                 type(names).__name__)
        not_strings = [i for i, name in enumerate(names) if not isinstance(name, str)]
        _require(not not_strings, "outputs.class_names", "must be a list of strings", "list of str",
                 f"{names[not_strings[0]]!r} at index {not_strings[0]}" if not_strings else None)
        _require(len(names) == n_classes, "outputs.class_names", "wrong count", n_classes, len(names))
    _require(isinstance(network.training, dict), "training", "must be an object", "dict",
             type(network.training).__name__)


def reference_counts(network: Network, features: np.ndarray) -> np.ndarray:
    """Evaluate the network with plain numpy booleans; return class counts.

    Returns int32 of shape (n_samples, n_classes): the number of ones in each
    class's block of the last layer. This is the slow, obviously correct
    evaluator that every fast path is tested against.
    """
    values = network.encoder.encode(features)
    for layer in network.layers:
        values = apply_gates_bool(layer.gates, values[:, layer.wire_a], values[:, layer.wire_b])
    n_samples = values.shape[0]
    group_size = values.shape[1] // network.n_classes
    per_class = values.reshape(n_samples, network.n_classes, group_size)
    return per_class.sum(axis=2, dtype=np.int32)


def reference_predict(network: Network, features: np.ndarray) -> np.ndarray:
    """Return class labels (int64); ties go to the lowest class index."""
    return reference_counts(network, features).argmax(axis=1)
