"""Random networks, inputs and grid settings shared by the asv suite and bench/compare.py.

Every network and input comes from a seeded numpy generator, so each run
times the same work. Network sizes:

- "small": 784 uint8 features, one threshold each -> 2 x 1000 gates -> 10 classes.
- "mnist": 784 features, one threshold each -> 6 x 8000 gates -> 10 classes.
- "cifar": 3072 features (32 x 32 x 3), three thresholds each (9216 bits)
  -> 4 x 12000 gates -> 10 classes.

Set LGNRT_BENCH_QUICK=1 to trim every grid to the small network and small
batches, so that `asv run --quick` finishes in a few minutes.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import numpy as np

import lgnrt
from lgnrt.network import LogicLayer, Network, ThresholdEncoder

QUICK = os.environ.get("LGNRT_BENCH_QUICK", "").strip() not in ("", "0")

ALL_GATE_IDS = np.arange(16, dtype=np.uint8)

# Gates whose output depends on both inputs (AND, A_AND_NOT_B, NOT_A_AND_B,
# XOR, OR, NOR, XNOR, A_OR_NOT_B, NOT_A_OR_B, NAND), so that no graph pass
# can fold them away or drop one of their inputs.
TWO_INPUT_GATE_IDS = np.array([1, 2, 4, 6, 7, 8, 9, 11, 13, 14], dtype=np.uint8)


@dataclass(frozen=True)
class NetworkSize:
    """Shape of a benchmark network: features, thresholds per feature, layer widths, classes."""

    n_features: int
    thresholds_per_feature: int
    widths: tuple[int, ...]
    n_classes: int

    @property
    def n_bits(self) -> int:
        return self.n_features * self.thresholds_per_feature

    def describe(self) -> str:
        layers = f"{len(self.widths)} x {self.widths[0]}" if len(set(self.widths)) == 1 else \
            " -> ".join(str(width) for width in self.widths)
        bits = str(self.n_bits) if self.thresholds_per_feature == 1 else \
            f"{self.thresholds_per_feature} x {self.n_features}"
        return f"{bits} bits -> {layers} -> {self.n_classes}"


SIZES = {
    "small": NetworkSize(784, 1, (1000, 1000), 10),
    "mnist": NetworkSize(784, 1, (8000,) * 6, 10),
    "cifar": NetworkSize(3072, 3, (12000,) * 4, 10),
}


def grid(full: list, quick: list) -> list:
    """Return the `quick` parameter values under LGNRT_BENCH_QUICK=1, else `full`."""
    return quick if QUICK else full


def threshold_encoder(n_features: int, thresholds_per_feature: int) -> ThresholdEncoder:
    """Build a thermometer code on uint8 pixels with thresholds spread evenly over 0..255.

    One threshold per feature is 127.5, three are 63.5, 127.5 and 191.5.
    """
    levels = (np.arange(1, thresholds_per_feature + 1) * 256 / (thresholds_per_feature + 1) - 0.5)
    return ThresholdEncoder(
        n_features=n_features,
        feature_index=np.repeat(np.arange(n_features), thresholds_per_feature).astype(np.int32),
        threshold=np.tile(levels, n_features).astype(np.float32),
    )


def balanced_wiring(n_inputs: int, width: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draw wires so that each input feeds floor or ceil(2 * width / n_inputs) gate inputs.

    This is how the training bridge wires a new network, so no input is
    left unread the way independent draws would leave about e**-2 of them.
    """
    n_rounds = -(-2 * width // n_inputs)
    sources = np.concatenate([rng.permutation(n_inputs) for _ in range(n_rounds)])[: 2 * width]
    sources = rng.permutation(sources)
    return sources[:width].astype(np.int32), sources[width:].astype(np.int32)


def random_network(size: NetworkSize, seed: int = 0, gate_ids: np.ndarray = ALL_GATE_IDS) -> Network:
    """Build a randomly wired network of `size` with gates drawn uniformly from `gate_ids`.

    Six of the 16 gates ignore an input (the constants, and the copies and
    negations of one input). The graph passes fold them as they would in a
    trained network, and the folding spreads to the gates that read them.
    Model.info() reports the gate counts before and after the passes.
    """
    rng = np.random.default_rng(seed)
    layers = []
    previous = size.n_bits
    for width in size.widths:
        wire_a, wire_b = balanced_wiring(previous, width, rng)
        layers.append(LogicLayer(wire_a=wire_a, wire_b=wire_b, gates=rng.choice(gate_ids, width).astype(np.uint8)))
        previous = width
    network = Network(encoder=threshold_encoder(size.n_features, size.thresholds_per_feature),
                      layers=layers, n_classes=size.n_classes)
    network.validate()
    return network


def packing_network(n_features: int, thresholds_per_feature: int, seed: int = 0) -> Network:
    """Build a one-layer network that reads every input bit once, with 2 classes.

    Gate i reads bits 2i and 2i + 1 through a gate that depends on both,
    so the graph passes keep every input bit and the runtime packs them
    all. The gate layer adds half a gate per input bit.
    """
    encoder = threshold_encoder(n_features, thresholds_per_feature)
    n_bits = encoder.n_bits
    if n_bits % 4:
        raise ValueError(f"packing_network needs a multiple of 4 input bits, got {n_bits}")
    rng = np.random.default_rng(seed)
    width = n_bits // 2
    layer = LogicLayer(
        wire_a=np.arange(0, n_bits, 2, dtype=np.int32),
        wire_b=np.arange(1, n_bits, 2, dtype=np.int32),
        gates=rng.choice(TWO_INPUT_GATE_IDS, width).astype(np.uint8),
    )
    network = Network(encoder=encoder, layers=[layer], n_classes=2)
    network.validate()
    return network


@functools.lru_cache(maxsize=4)
def cached_network(size_name: str, seed: int = 0) -> Network:
    """Return the random network of SIZES[size_name], built once per process."""
    return random_network(SIZES[size_name], seed)


@functools.lru_cache(maxsize=4)
def cached_model(size_name: str, seed: int = 0) -> lgnrt.Model:
    """Return the compiled model of `cached_network(size_name, seed)`, built once per process."""
    return lgnrt.Model.from_network(cached_network(size_name, seed))


def random_pixels(n_samples: int, n_features: int, seed: int = 1) -> np.ndarray:
    """Draw uniform uint8 pixels of shape (n_samples, n_features)."""
    return np.random.default_rng(seed).integers(0, 256, (n_samples, n_features), dtype=np.uint8)


def _resident_bytes(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise NotImplementedError(f"/proc/self/status has no {field} line")


def peak_rss_increase(function) -> int:
    """Call `function` and return how far the peak resident set rose above the resident set before it, in bytes.

    Unlike asv's peakmem_ figures, this leaves out memory the process held
    before the call (the input array, imported modules). It resets the
    peak with /proc/self/clear_refs, so it works on Linux only and raises
    NotImplementedError elsewhere, which makes asv skip the benchmark.
    """
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        before = _resident_bytes("VmRSS")
    except OSError as error:
        raise NotImplementedError(f"cannot reset the peak resident set: {error}") from error
    function()
    return _resident_bytes("VmHWM") - before
