"""Time the runtime on a randomly wired network and print the figures.

    python bench/quick_runtime.py [--samples 65536] [--width 8000] [--layers 6]

The network has 784 uint8 features (one threshold per feature, as for
binarised 28x28 images), `--layers` layers of `--width` random gates with
random wiring, and 10 classes. Printed figures, each the median of
`--repeats` runs:

- end to end: uint8 features to labels (Model.predict), ns per sample, on
  1 thread and on every core, with the speed-up (meaningful only when the
  cores are otherwise idle), and on 1 thread without graph passes. Each
  shows the median and best wall time and the median CPU time of the
  process, which other processes on the machine inflate the least;
- layer kernel: the gate program alone on one tile, in ns per executed
  gate per 64 samples;
- batch 1: predict on one sample, microseconds;
- load: lgnrt.load of a saved .lgn file (read, validate, optimise,
  compile), milliseconds.

Random gates degenerate over several layers: about a third of each
layer's gates ignore an input or are constant, and folding them leaves
roughly a quarter of the gates of the default network. The unoptimised
figure shows the gate kernel on all 48,000 gates.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import lgnrt  # noqa: E402
from lgnrt.model import _kernels, available_cores  # noqa: E402
from lgnrt.network import LogicLayer, Network, ThresholdEncoder  # noqa: E402


def random_network(n_features: int, width: int, n_layers: int, n_classes: int, seed: int) -> Network:
    rng = np.random.default_rng(seed)
    encoder = ThresholdEncoder(
        n_features=n_features,
        feature_index=np.arange(n_features, dtype=np.int32),
        threshold=np.full(n_features, 127.5, dtype=np.float32),
    )
    layers = []
    previous = n_features
    for _ in range(n_layers):
        layers.append(LogicLayer(
            wire_a=rng.integers(0, previous, width).astype(np.int32),
            wire_b=rng.integers(0, previous, width).astype(np.int32),
            gates=rng.integers(0, 16, width).astype(np.uint8),
        ))
        previous = width
    return Network(encoder=encoder, layers=layers, n_classes=n_classes)


def measure_runs(function, repeats: int) -> dict:
    """Return the median and best wall time and the median CPU time of the process, in seconds."""
    function()
    wall, cpu = [], []
    for _ in range(repeats):
        start_wall = time.perf_counter()
        start_cpu = time.process_time()
        function()
        cpu.append(time.process_time() - start_cpu)
        wall.append(time.perf_counter() - start_wall)
    return {"median": statistics.median(wall), "best": min(wall), "cpu": statistics.median(cpu)}


def median_seconds(function, repeats: int) -> float:
    return measure_runs(function, repeats)["median"]


def per_sample(timing: dict, n_samples: int) -> str:
    return (f"{timing['median'] / n_samples * 1e9:.1f} ns/sample median, {timing['best'] / n_samples * 1e9:.1f} best, "
            f"{timing['cpu'] / n_samples * 1e9:.1f} CPU")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=65536, help="batch size of the throughput runs")
    parser.add_argument("--width", type=int, default=8000, help="gates per layer")
    parser.add_argument("--layers", type=int, default=6, help="number of logic layers")
    parser.add_argument("--repeats", type=int, default=7, help="runs per figure; the median is printed")
    parser.add_argument("--isa", default="auto", help="kernel path: portable, avx2, avx512 or auto")
    arguments = parser.parse_args()

    lgnrt.set_kernel_isa(arguments.isa)
    network = random_network(784, arguments.width, arguments.layers, 10, seed=1)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "random.lgn")
        lgnrt.save_network(network, path)
        load_seconds = median_seconds(lambda: lgnrt.load(path), arguments.repeats)
        model = lgnrt.load(path)

    info = model.info()
    rng = np.random.default_rng(2)
    features = rng.integers(0, 256, (arguments.samples, 784), dtype=np.uint8)
    cores = available_cores()

    single = measure_runs(lambda: model.predict(features, threads=1), arguments.repeats)
    parallel = measure_runs(lambda: model.predict(features, threads=cores), arguments.repeats)
    unoptimized = lgnrt.Model.from_network(network, optimize=False)
    plain = measure_runs(lambda: unoptimized.predict(features, threads=1), arguments.repeats)
    one_sample = features[:1]
    latency = median_seconds(lambda: model.predict(one_sample, threads=1), max(arguments.repeats, 200))

    tile_words = info["tile_words_max"]
    kernels = _kernels()
    isa_code = kernels.ISA_CODES[info["kernel"]]
    layer_seconds = statistics.median(
        kernels.time_program(model._program, isa_code, tile_words, 20) for _ in range(arguments.repeats))

    print(f"network: 784 -> {arguments.layers} x {arguments.width} -> 10, "
          f"gates {info['gates_before']} -> {info['gates_after']} after passes, "
          f"{info['slots']} slots, {info['input_chunks']} packer chunks")
    print(f"kernel: {info['kernel']}, tile {tile_words} words ({64 * tile_words} samples), cores {cores}")
    n = arguments.samples
    print(f"end to end, batch {n}, 1 thread: {per_sample(single, n)} "
          f"({n / single['median'] / 1e6:.2f} M samples/s median)")
    print(f"end to end, batch {n}, {cores} threads: {per_sample(parallel, n)}; speed-up "
          f"{single['median'] / parallel['median']:.2f}x median, {single['best'] / parallel['best']:.2f}x best")
    print(f"end to end, batch {n}, 1 thread, no graph passes ({network.n_gates} gates, "
          f"tile {unoptimized.info()['tile_words_max']} words): {per_sample(plain, n)}")
    print(f"layer kernel: {layer_seconds / (info['ops'] * tile_words) * 1e9:.3f} ns per gate per 64 samples "
          f"({layer_seconds / (info['gates_before'] * tile_words) * 1e9:.3f} per gate of the unoptimised network)")
    print(f"batch 1 latency: {latency * 1e6:.1f} us (median)")
    print(f"load (read, validate, optimise, compile): {load_seconds * 1e3:.1f} ms (median)")


if __name__ == "__main__":
    main()
