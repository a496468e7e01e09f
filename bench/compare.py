"""Time lgnrt, PyTorch and onnxruntime on the same circuit and the same inputs.

    python bench/compare.py [--size mnist | --model PATH.lgn] [--batch 65536] [--repeats 5] [--json PATH]

Every backend maps the same uint8 pixels to int64 labels, once on 1 thread
and once on all threads (`--threads`, default: every core this process may
use):

- lgnrt: Model.predict, the compiled bit-sliced runtime;
- torch packed: the circuit in PyTorch eager mode on int64 words of 64
  samples, one bitwise expression per layer (TorchPackedCircuit below),
  the fastest PyTorch formulation this script has;
- torch bridge: the training bridge's LogicNet.hard_predict, which
  evaluates each gate on one uint8 per sample;
- onnxruntime: the model exported by lgnrt.onnx_export in the "packed"
  formulation, with uint8 input.

Each figure is the median of `--repeats` timed calls after one untimed
call. A backend whose untimed call takes longer than `--row-seconds`
divided by `--repeats` gets fewer timed calls; the table shows how many.
The untimed call's labels must equal lgnrt's on 1 thread for every
sample, and lgnrt's must equal the numpy reference evaluator's on the
first 1,024 samples. The script exits with status 1 if any differ.
"""

from __future__ import annotations

import argparse
import ast
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):
    # Run as a script: make the `bench` package importable.
    sys.path.insert(0, str(REPO_ROOT))

import lgnrt  # noqa: E402
from lgnrt.model import available_cores  # noqa: E402
from lgnrt.network import Network, reference_predict  # noqa: E402

from bench.common import ALL_GATE_IDS, SIZES, TWO_INPUT_GATE_IDS, random_network, random_pixels  # noqa: E402

BACKENDS = ("lgnrt", "torch-packed", "torch-bridge", "onnxruntime")

# Samples that the numpy reference evaluator checks lgnrt against.
REFERENCE_SAMPLES = 1024

# Samples per chunk of the torch packed circuit: 64 words per activation
# row, so an 8,000-neuron activation is 4 MB of int64. Chunks of 1,024 to
# 16,384 samples timed within the noise of each other on the machine in
# docs/benchmarks.md.
TORCH_CHUNK_SAMPLES = 4096


# ---------------------------------------------------------------------------
# PyTorch formulations
# ---------------------------------------------------------------------------

class TorchEncoder:
    """The network's threshold encoder on uint8 pixels, in PyTorch.

    For an integer x and a threshold t, x > t exactly when x > floor(t), so
    the comparison runs on uint8 with floor(t) clipped to 0..255. A
    threshold below 0 is always exceeded and is handled by a mask, because
    x > 0 would miss x = 0.
    """

    def __init__(self, network: Network):
        import torch

        encoder = network.encoder
        floor = np.floor(encoder.threshold.astype(np.float64))
        self.feature_index = torch.from_numpy(encoder.feature_index.astype(np.int64))
        self.identity = (encoder.n_bits == encoder.n_features
                         and bool(np.array_equal(encoder.feature_index, np.arange(encoder.n_bits))))
        self.threshold = torch.from_numpy(np.clip(floor, 0, 255).astype(np.uint8)).unsqueeze(1)
        always_on = floor < 0
        self.always_on = torch.from_numpy(always_on).unsqueeze(1) if always_on.any() else None

    def bits(self, pixels):
        """Return the input bits of uint8 pixels (n_samples, n_features) as bool (n_bits, n_samples)."""
        by_feature = pixels.t().contiguous()
        if not self.identity:
            by_feature = by_feature.index_select(0, self.feature_index)
        bits = by_feature > self.threshold
        if self.always_on is not None:
            bits |= self.always_on
        return bits


class TorchPackedCircuit:
    """The committed circuit on int64 words, each holding one bit of 64 samples.

    Packing puts bit i of byte m of the bit-major byte array at sample
    i * n_bytes + m, so that every shift reads a contiguous row. Gates use
    the algebraic normal form of lgnrt.gates.ANF with all-ones or all-zeros
    masks k0..k3: out = k0 ^ (a & (k1 ^ (k3 & b))) ^ (k2 & b). Class counts
    come from a bit-sliced adder tree over each class's block of the last
    layer, so no tensor ever holds one byte per neuron and sample.
    """

    def __init__(self, network: Network, chunk_samples: int = TORCH_CHUNK_SAMPLES):
        import torch

        from lgnrt.gates import ANF

        if sys.byteorder != "little":
            raise RuntimeError("TorchPackedCircuit views uint8 bytes as int64 words and needs a little-endian CPU")
        if chunk_samples % 64:
            raise ValueError(f"chunk_samples must be a multiple of 64, got {chunk_samples}")
        self.encoder = TorchEncoder(network)
        self.n_classes = network.n_classes
        self.chunk_samples = chunk_samples
        self.layers = []
        for layer in network.layers:
            masks = torch.from_numpy(np.where(ANF[layer.gates].astype(bool), -1, 0).astype(np.int64))
            self.layers.append((
                torch.from_numpy(layer.wire_a.astype(np.int64)),
                torch.from_numpy(layer.wire_b.astype(np.int64)),
                [masks[:, column:column + 1].contiguous() for column in range(4)],
            ))
        self.bit_positions = torch.arange(64, dtype=torch.int64)

    def predict(self, pixels):
        """Return int64 labels (n_samples,) of uint8 pixels (n_samples, n_features), ties to the lowest class."""
        import torch

        with torch.no_grad():
            chunks = [self._predict_chunk(pixels[start:start + self.chunk_samples])
                      for start in range(0, pixels.shape[0], self.chunk_samples)]
        return torch.cat(chunks)

    def _predict_chunk(self, pixels):
        import torch
        import torch.nn.functional as F

        n_samples = pixels.shape[0]
        bits = self.encoder.bits(pixels).view(torch.uint8)
        padding = -n_samples % 64
        if padding:
            bits = F.pad(bits, (0, padding))
        n_bits, n_padded = bits.shape

        # bytes[j, m] bit i = bits[j, i * n_bytes + m]
        by_bit = bits.view(n_bits, 8, n_padded // 8)
        packed = by_bit[:, 0].clone()
        for bit in range(1, 8):
            packed.bitwise_or_(by_bit[:, bit] << bit)
        values = packed.view(torch.int64)  # (n_bits, words)

        for wire_a, wire_b, (k0, k1, k2, k3) in self.layers:
            a = values.index_select(0, wire_a)
            b = values.index_select(0, wire_b)
            out = torch.bitwise_and(k3, b)
            out.bitwise_xor_(k1)
            out.bitwise_and_(a)
            out.bitwise_xor_(k0)
            b.bitwise_and_(k2)
            out.bitwise_xor_(b)
            values = out

        counts = self._class_counts(values)  # (n_classes, n_padded)
        return counts[:, :n_samples].argmax(dim=0)

    def _class_counts(self, values):
        """Count the ones of each class block per sample; return int64 (n_classes, samples)."""
        import torch
        import torch.nn.functional as F

        n_neurons, n_words = values.shape
        # planes[p][c, r, w]: bit p of partial count r of class c, for the 64 samples of word w.
        planes = [values.view(self.n_classes, n_neurons // self.n_classes, n_words)]
        while planes[0].shape[1] > 1:
            if planes[0].shape[1] % 2:
                planes = [F.pad(plane, (0, 0, 0, 1)) for plane in planes]
            half = planes[0].shape[1] // 2
            summed = []
            carry = None
            for plane in planes:
                low, high = plane[:, :half], plane[:, half:]
                partial = low ^ high
                if carry is None:
                    carry = low & high
                    summed.append(partial)
                else:
                    summed.append(partial ^ carry)
                    carry = (low & high) | (carry & partial)
            summed.append(carry)
            planes = summed

        stacked = torch.stack([plane[:, 0] for plane in planes])  # (n_planes, n_classes, words)
        bits = (stacked.unsqueeze(-1) >> self.bit_positions) & 1  # (n_planes, n_classes, words, 64)
        place_values = (1 << torch.arange(len(planes), dtype=torch.int64)).view(-1, 1, 1, 1)
        counts = (bits * place_values).sum(dim=0)  # (n_classes, words, 64)
        # Bit 8 * byte + i of word w is sample i * n_bytes + 8 * w + byte.
        counts = counts.view(self.n_classes, n_words, 8, 8).permute(0, 3, 1, 2)
        return counts.reshape(self.n_classes, n_words * 64)


def bridge_logic_net(network: Network):
    """Build the training bridge's LogicNet whose hard circuit is `network`."""
    import torch

    from lgnrt.bridge.model import LogicNet

    widths = [layer.width for layer in network.layers]
    model = LogicNet(network.encoder.n_bits, widths, network.n_classes, tau_out=network.tau, estimator="hard_st")
    with torch.no_grad():
        for module, layer in zip(model.layers, network.layers):
            module.wire_a.copy_(torch.from_numpy(layer.wire_a.astype(np.int64)))
            module.wire_b.copy_(torch.from_numpy(layer.wire_b.astype(np.int64)))
            logits = torch.zeros(layer.width, 16)
            logits[torch.arange(layer.width), torch.from_numpy(layer.gates.astype(np.int64))] = 1.0
            module.logits.copy_(logits)
    return model.eval()


# ---------------------------------------------------------------------------
# Backends: each returns a function from uint8 pixels to int64 labels
# ---------------------------------------------------------------------------

def lgnrt_predictor(model: lgnrt.Model, threads: int):
    return lambda pixels: model.predict(pixels, threads=threads)


def torch_packed_predictor(network: Network, threads: int):
    import torch

    circuit = TorchPackedCircuit(network)
    return _with_torch_threads(threads, lambda pixels: circuit.predict(torch.from_numpy(pixels)).numpy())


def torch_bridge_predictor(network: Network, threads: int):
    import torch

    encoder = TorchEncoder(network)
    logic_net = bridge_logic_net(network)

    def predict(pixels):
        with torch.no_grad():
            bits = encoder.bits(torch.from_numpy(pixels)).t()  # (n_samples, n_bits)
            return logic_net.hard_predict(bits).numpy()

    return _with_torch_threads(threads, predict)


def _with_torch_threads(threads: int, function):
    import torch

    def call(pixels):
        saved = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return function(pixels)
        finally:
            torch.set_num_threads(saved)

    return call


def onnxruntime_predictor(onnx_bytes: bytes, threads: int):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    return lambda pixels: session.run(["labels"], {"features": pixels})[0]


# ---------------------------------------------------------------------------
# Timing and checks
# ---------------------------------------------------------------------------

def measure_backend(predict, pixels, repeats: int, row_seconds: float):
    """Return (labels of the untimed call, median seconds, timed calls)."""
    start = time.perf_counter()
    labels = np.asarray(predict(pixels))
    first_seconds = time.perf_counter() - start
    calls = max(1, min(repeats, int(row_seconds / max(first_seconds, 1e-9))))
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        predict(pixels)
        times.append(time.perf_counter() - start)
    return labels, statistics.median(times), calls


def count_mismatches(labels: np.ndarray, expected: np.ndarray) -> tuple[int, int | None]:
    """Return the number of differing labels and the first differing index (None if equal)."""
    if labels.shape != expected.shape:
        return expected.shape[0], 0
    differ = np.flatnonzero(labels.astype(np.int64) != expected)
    return int(differ.size), (int(differ[0]) if differ.size else None)


# ---------------------------------------------------------------------------
# Machine, build and version description
# ---------------------------------------------------------------------------

def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def compiler_description() -> dict:
    """Describe the C compiler and flags that build the extension, as far as this process can tell.

    The compiler and its base flags are Python's (sysconfig CC and CFLAGS);
    setup.py adds COMPILE_ARGS, read from the source tree if it is there.
    """
    compiler = sysconfig.get_config_var("CC") or "unknown"
    version = "unknown"
    try:
        output = subprocess.run([compiler.split()[0], "--version"], capture_output=True, text=True,
                                timeout=10, check=False).stdout
        version = output.splitlines()[0] if output else "unknown"
    except (OSError, subprocess.SubprocessError):
        pass
    return {
        "compiler": compiler,
        "compiler_version": version,
        "python_cflags": sysconfig.get_config_var("CFLAGS") or "",
        "setup_py_compile_args": setup_compile_args(),
    }


def setup_compile_args() -> list[str] | None:
    """Return COMPILE_ARGS from setup.py next to this folder, or None if it cannot be read."""
    try:
        tree = ast.parse((REPO_ROOT / "setup.py").read_text())
    except (OSError, SyntaxError):
        return None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(target, ast.Name) and target.id == "COMPILE_ARGS" for target in node.targets):
            try:
                return list(ast.literal_eval(node.value))
            except ValueError:
                return None
    return None


def library_versions() -> dict:
    versions = {"python": platform.python_version(), "lgnrt": lgnrt.__version__, "numpy": np.__version__}
    for name in ("torch", "onnxruntime", "onnx"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            versions[name] = None
    return versions


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------

def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="mnist",
                        help="random network to build (default: mnist, 784 -> 6 x 8000 -> 10)")
    parser.add_argument("--model", type=Path, help="time this .lgn file instead of a random network")
    parser.add_argument("--gate-set", choices=("all", "two-input"), default="all",
                        help="gates of the random network: all 16 ids, or only the 10 that read both "
                             "inputs, which the graph passes cannot fold (default: all)")
    parser.add_argument("--batch", type=int, default=65536, help="samples per call (default: 65536)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per row; the median is reported")
    parser.add_argument("--row-seconds", type=float, default=30.0,
                        help="time budget per row in seconds; slower backends get fewer timed calls")
    parser.add_argument("--threads", type=int, default=available_cores(),
                        help="thread count of the 'all threads' rows (default: cores available)")
    parser.add_argument("--backends", default=",".join(BACKENDS),
                        help=f"comma-separated subset of {','.join(BACKENDS)} (lgnrt always runs)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random network; pixels use seed + 1")
    parser.add_argument("--json", type=Path, help="also write settings, machine and results to this JSON file")
    arguments = parser.parse_args(argv)
    if arguments.batch < 1 or arguments.repeats < 1 or arguments.threads < 1:
        parser.error("--batch, --repeats and --threads must be positive")
    backends = [name.strip() for name in arguments.backends.split(",") if name.strip()]
    unknown = [name for name in backends if name not in BACKENDS]
    if unknown:
        parser.error(f"invalid backend {unknown[0]!r}; choose from {', '.join(BACKENDS)}")
    arguments.backends = ["lgnrt"] + [name for name in backends if name != "lgnrt"]
    return arguments


def describe_network(network: Network) -> str:
    widths = [layer.width for layer in network.layers]
    layers = f"{len(widths)} x {widths[0]}" if len(set(widths)) == 1 else " -> ".join(map(str, widths))
    return f"{network.n_features} features, {network.encoder.n_bits} bits -> {layers} -> {network.n_classes}"


def build_rows(arguments, network: Network, model: lgnrt.Model, pixels: np.ndarray) -> list[dict]:
    """Time every backend on 1 and on all threads; return one result per row."""
    thread_counts = sorted({1, arguments.threads})
    onnx_bytes = None
    if "onnxruntime" in arguments.backends:
        from lgnrt.onnx_export import export_onnx

        onnx_bytes = export_onnx(network, input_dtype="uint8", formulation="packed").SerializeToString()

    factories = {
        "lgnrt": lambda threads: lgnrt_predictor(model, threads),
        "torch-packed": lambda threads: torch_packed_predictor(network, threads),
        "torch-bridge": lambda threads: torch_bridge_predictor(network, threads),
        "onnxruntime": lambda threads: onnxruntime_predictor(onnx_bytes, threads),
    }
    rows = []
    expected = None
    for backend in arguments.backends:
        for threads in thread_counts:
            print(f"timing {backend} on {threads} thread(s) ...", file=sys.stderr, flush=True)
            labels, seconds, calls = measure_backend(factories[backend](threads), pixels,
                                                  arguments.repeats, arguments.row_seconds)
            if expected is None:
                expected = labels
            mismatches, first = count_mismatches(labels, expected)
            rows.append({"backend": backend, "threads": threads, "timed_calls": calls, "median_seconds": seconds,
                         "samples_per_second": pixels.shape[0] / seconds,
                         "ns_per_sample": seconds / pixels.shape[0] * 1e9,
                         "mismatches": mismatches, "first_mismatch": first})
    baseline = rows[0]["ns_per_sample"]
    for row in rows:
        row["time_ratio_to_lgnrt_1_thread"] = row["ns_per_sample"] / baseline
    return rows


def format_table(rows: list[dict]) -> str:
    header = (f"{'backend':<14} {'threads':>7} {'calls':>5} {'samples/s':>14} {'ns/sample':>11} "
              f"{'time / lgnrt 1T':>15} {'labels':>9}")
    lines = [header, "-" * len(header)]
    for row in rows:
        labels = "equal" if row["mismatches"] == 0 else f"{row['mismatches']} DIFF"
        lines.append(f"{row['backend']:<14} {row['threads']:>7} {row['timed_calls']:>5} "
                     f"{row['samples_per_second']:>14,.0f} {row['ns_per_sample']:>11,.1f} "
                     f"{row['time_ratio_to_lgnrt_1_thread']:>14.2f}x {labels:>9}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None

    if arguments.model is not None:
        model = lgnrt.load(arguments.model)
        network = model.network
        source = str(arguments.model)
    else:
        gate_ids = ALL_GATE_IDS if arguments.gate_set == "all" else TWO_INPUT_GATE_IDS
        network = random_network(SIZES[arguments.size], seed=arguments.seed, gate_ids=gate_ids)
        model = lgnrt.Model.from_network(network)
        source = f"random '{arguments.size}' network, seed {arguments.seed}, gates: {arguments.gate_set}"
    pixels = random_pixels(arguments.batch, network.n_features, seed=arguments.seed + 1)

    reference_count = min(arguments.batch, REFERENCE_SAMPLES)
    reference_mismatches, _ = count_mismatches(model.predict(pixels[:reference_count], threads=1),
                                               reference_predict(network, pixels[:reference_count]))
    rows = build_rows(arguments, network, model, pixels)

    info = model.info()
    kernels = lgnrt.kernel_info()
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name] + (sys.argv[1:] if argv is None else argv)),
        "network": {"source": source, "shape": describe_network(network), "gates_before": info["gates_before"],
                    "gates_after": info["gates_after"], "input_bits_used": info["input_bits_used"]},
        "batch": arguments.batch,
        "machine": {"cpu": cpu_model(), "cores_available": available_cores(), "cpu_count": os.cpu_count(),
                    "kernel_isa": kernels["isa"], "supported_isas": kernels["supported"],
                    "l2_cache_bytes": kernels["l2_cache_bytes"], "tile_samples_max": info["tile_samples_max"],
                    "platform": platform.platform(), "load_average_before": load_before,
                    "load_average_after": os.getloadavg() if hasattr(os, "getloadavg") else None},
        "build": compiler_description(),
        "versions": library_versions(),
        "reference_check": {"samples": reference_count, "mismatches": reference_mismatches},
        "results": rows,
    }

    print_report(report)
    if arguments.json is not None:
        arguments.json.write_text(json.dumps(report, indent=2) + "\n")

    failures = [f"{row['backend']} on {row['threads']} thread(s): {row['mismatches']} labels differ from "
                f"lgnrt on 1 thread, first at sample {row['first_mismatch']}"
                for row in rows if row["mismatches"]]
    if reference_mismatches:
        failures.append(f"lgnrt differs from the numpy reference on {reference_mismatches} of the first "
                        f"{reference_count} samples")
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    return 1 if failures else 0


def print_report(report: dict) -> None:
    machine, build, versions, network = report["machine"], report["build"], report["versions"], report["network"]
    print(f"date: {report['date']}")
    print(f"command: {report['command']}")
    print(f"network: {network['shape']} ({network['source']}); gates {network['gates_before']} -> "
          f"{network['gates_after']} after the graph passes")
    print(f"batch: {report['batch']} uint8 samples; labels checked against lgnrt on 1 thread, and lgnrt "
          f"against the numpy reference on {report['reference_check']['samples']} samples "
          f"({report['reference_check']['mismatches']} differ)")
    print(f"machine: {machine['cpu']}, {machine['cores_available']} cores available of {machine['cpu_count']}, "
          f"{machine['platform']}")
    print(f"lgnrt kernel: {machine['kernel_isa']} (supported: {', '.join(machine['supported_isas'])}), "
          f"L2 {machine['l2_cache_bytes']} bytes, tiles of up to {machine['tile_samples_max']} samples")
    load_before, load_after = machine["load_average_before"], machine["load_average_after"]
    if load_before is not None:
        print(f"load average (1, 5, 15 min): before {', '.join(f'{v:.2f}' for v in load_before)}; "
              f"after {', '.join(f'{v:.2f}' for v in load_after)}")
    print(f"compiler: {build['compiler']}, version: {build['compiler_version']}")
    print(f"flags: Python CFLAGS {build['python_cflags']!r} + setup.py {build['setup_py_compile_args']}")
    print("versions: " + ", ".join(f"{name} {version}" for name, version in versions.items()))
    print()
    print(format_table(report["results"]))


if __name__ == "__main__":
    sys.exit(main())
