"""The `lgnrt` command line: train, sweep, demo, eval, bench, info and export-onnx.

Serving commands (eval, bench, info, export-onnx) never import torch; the
training commands import the bridge only when they run.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from .errors import LgnError

logger = logging.getLogger("lgnrt")


# ---------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------

def throughput(model, features: np.ndarray, threads: int, repeats: int) -> float:
    """Return the median samples per second of `model.predict` over `repeats` runs."""
    model.predict(features[: min(len(features), 64)], threads=threads)  # warm-up
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict(features, threads=threads)
        rates.append(len(features) / max(time.perf_counter() - start, 1e-9))
    return float(np.median(rates))


def tile_to(features: np.ndarray, n_samples: int) -> np.ndarray:
    """Return `n_samples` rows made by repeating `features` (for throughput runs)."""
    repeats = -(-n_samples // len(features))
    return np.ascontiguousarray(np.tile(features, (repeats, 1))[:n_samples])


def throughput_table(model, features: np.ndarray, batches: list[int], threads: list[int],
                     repeats: int) -> list[dict]:
    rows = []
    for batch in batches:
        batch_features = tile_to(features, batch)
        for n_threads in threads:
            rate = throughput(model, batch_features, n_threads, repeats)
            rows.append({"batch": batch, "threads": n_threads, "samples_per_s": rate,
                         "ns_per_sample": 1e9 / rate})
    return rows


def print_throughput(rows: list[dict]) -> None:
    print(f"{'batch':>9} {'threads':>7} {'samples/s':>14} {'ns/sample':>10}")
    for row in rows:
        print(f"{row['batch']:>9} {row['threads']:>7} {row['samples_per_s']:>14,.0f} "
              f"{row['ns_per_sample']:>10.1f}")


def load_eval_dataset(name: str | None, model):
    """Load the data set named on the command line or in the model's training record."""
    from .datasets import load_dataset

    name = name or model.training.get("dataset")
    if not name:
        raise LgnError("the model's training record names no data set; pass --dataset NAME")
    return load_dataset(name)


# ---------------------------------------------------------------------------
# Subcommands
# ---------------------------------------------------------------------------

def command_info(arguments) -> int:
    from .model import load

    model = load(arguments.model)
    info = model.info()
    if arguments.json:
        print(json.dumps({"info": info, "training": model.training}, indent=2, default=str))
        return 0
    width = max(len(key) for key in info) + 2
    print(f"{'model:':<{width}} {arguments.model}")
    for key, value in info.items():
        print(f"{key + ':':<{width}} {value}")
    if model.training:
        print("training record:")
        for key, value in model.training.items():
            print(f"  {key + ':':<24} {value}")
    return 0


def command_eval(arguments) -> int:
    from .model import load

    model = load(arguments.model)
    data = load_eval_dataset(arguments.dataset, model)
    labels = model.predict(data.test_features, threads=arguments.threads)
    accuracy = float((labels == data.test_labels).mean())
    print(f"data set {data.name}: {data.n_test} held-out samples")
    print(f"deployed accuracy (lgnrt runtime): {accuracy:.4%}")

    recorded = model.training.get("test_accuracy")
    same_split = model.training.get("test_fingerprint") == data.fingerprint()
    if recorded is None:
        print("the model's training record has no held-out accuracy to compare with")
        return 0
    print(f"accuracy recorded at training:     {recorded:.4%}")
    if not same_split:
        print("the held-out split differs from the one recorded at training; accuracies are not comparable")
        return 0
    n_correct = int((labels == data.test_labels).sum())
    if n_correct != round(recorded * data.n_test):
        print(f"MISMATCH: {n_correct} correct now, {round(recorded * data.n_test)} at training")
        return 1
    print("match: same held-out split, same number of correct predictions")
    return 0


def command_bench(arguments) -> int:
    from .model import load

    model = load(arguments.model)
    if arguments.dataset:
        features = load_eval_dataset(arguments.dataset, model).test_features
    else:
        rng = np.random.default_rng(0)
        features = rng.integers(0, 256, size=(4096, model.n_features), dtype=np.uint8)
    rows = throughput_table(model, features, arguments.batch, arguments.threads, arguments.repeat)
    print_throughput(rows)
    return 0


def command_export_onnx(arguments) -> int:
    from .lgn_format import load_network
    from .onnx_export import export_onnx

    network = load_network(arguments.model)
    export_onnx(network, arguments.output)
    print(f"wrote {arguments.output}")
    return 0


def command_train(arguments) -> int:
    from .bridge.train import PRESETS, train, parse_overrides
    import dataclasses

    if arguments.preset not in PRESETS:
        raise ValueError(f"unknown preset {arguments.preset!r}; expected one of {', '.join(sorted(PRESETS))}")
    overrides = parse_overrides(arguments.set)
    if "out_dir" in overrides:
        raise ValueError("set the output folder with --out-dir, not --set out_dir")
    config = dataclasses.replace(PRESETS[arguments.preset], out_dir=arguments.out_dir, **overrides)
    result = train(config)
    print(f"deployed accuracy {result.deployed_accuracy:.4%}, training-mode accuracy "
          f"{result.training_mode_accuracy:.4%}, wall time {result.wall_time_s:.0f} s")
    print(f"wrote {Path(arguments.out_dir) / 'model.lgn'}")
    return 0


def command_sweep(arguments) -> int:
    from .bridge.sweep import main as sweep_main

    return sweep_main(arguments.arguments, prog="lgnrt sweep")


def command_demo(arguments) -> int:
    from .demo import run_demo

    return run_demo(arguments)


# ---------------------------------------------------------------------------
# Parser
# ---------------------------------------------------------------------------

def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lgnrt", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress at INFO level")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="train on real digits, export, load, benchmark and verify")
    demo.add_argument("--out", default="runs/demo", help="folder for model.lgn and metrics (default runs/demo)")
    demo.add_argument("--preset", default="demo", help="training preset (default demo)")
    demo.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                      help="override a training setting, e.g. --set epochs=5")
    demo.set_defaults(handler=command_demo)

    train = commands.add_parser("train", help="train a network and write DIR/model.lgn")
    train.add_argument("--preset", default="demo",
                       help="base configuration: demo, tiny, mnist or fashion-mnist (default demo)")
    train.add_argument("--out-dir", required=True, help="folder for model.lgn, metrics.jsonl and checkpoints")
    train.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                       help="override a setting, e.g. --set estimator=soft_mix --set tau=0.5")
    train.set_defaults(handler=command_train)

    # The sweep parses its own options (`lgnrt sweep --help`), so this parser
    # passes every argument through without importing torch. prefix_chars="+"
    # keeps argparse from reading "--out" and the like as options of its own.
    sweep = commands.add_parser("sweep", add_help=False, prefix_chars="+",
                                help="train an estimator x temperature x CAGE x seed grid; tables and plots")
    sweep.add_argument("arguments", nargs=argparse.REMAINDER, help="options of the sweep; see lgnrt sweep --help")
    sweep.set_defaults(handler=command_sweep)

    evaluate = commands.add_parser("eval", help="deployed accuracy of a model, compared with its training record")
    evaluate.add_argument("model", help="path of a .lgn file")
    evaluate.add_argument("--dataset", help="data set name (default: the one in the training record)")
    evaluate.add_argument("--threads", type=positive_int, default=None, help="worker threads (default all cores)")
    evaluate.set_defaults(handler=command_eval)

    bench = commands.add_parser("bench", help="inference throughput in samples per second")
    bench.add_argument("model", help="path of a .lgn file")
    bench.add_argument("--batch", type=positive_int, nargs="+", default=[1, 1000, 65536],
                       help="batch sizes in samples (default 1 1000 65536)")
    bench.add_argument("--threads", type=positive_int, nargs="+", default=[1, 2],
                       help="thread counts (default 1 2)")
    bench.add_argument("--repeat", type=positive_int, default=5, help="timed runs per cell; the median is shown")
    bench.add_argument("--dataset", help="time on this data set's held-out features (default random uint8)")
    bench.set_defaults(handler=command_bench)

    info = commands.add_parser("info", help="what a .lgn file contains")
    info.add_argument("model", help="path of a .lgn file")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(handler=command_info)

    onnx = commands.add_parser("export-onnx", help="convert a .lgn file to ONNX")
    onnx.add_argument("model", help="path of a .lgn file")
    onnx.add_argument("output", help="path of the .onnx file to write")
    onnx.set_defaults(handler=command_export_onnx)
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if arguments.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return arguments.handler(arguments)
    except (LgnError, ValueError, FileNotFoundError, IsADirectoryError, ImportError) as error:
        print(f"lgnrt {arguments.command}: error: {error}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"lgnrt {arguments.command}: error: out of memory; use a smaller batch or data set",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lgnrt {arguments.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
