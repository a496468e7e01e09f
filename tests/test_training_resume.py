"""Tests of interrupted training: kills, Ctrl-C, atomic checkpoints, resume, and data checks.

Training runs in a subprocess on the "digits" data set, is stopped with
SIGKILL or SIGINT once a checkpoint exists, and is then resumed. The
resumed run must start at the checkpoint's step, finish, and export a
model whose runtime predictions equal the bridge's hard predictions.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

import lgnrt  # noqa: E402
from lgnrt.datasets import load_dataset, make_dataset  # noqa: E402

train_module = importlib.import_module("lgnrt.bridge.train")
from lgnrt.bridge.train import (  # noqa: E402
    CHECKPOINT_FILE,
    METRICS_FILE,
    MODEL_FILE,
    PRESETS,
    parse_overrides,
    train,
)

# A run that never ends by itself: the tests stop it. eval_every writes a
# metrics line every few steps, so metrics.jsonl shows progress too.
OVERRIDES = ["dataset=digits", "widths=200,200", "steps=100000", "checkpoint_every=5", "eval_every=5",
             "progress=false", "threads=1"]
START_TIMEOUT_S = 120


@pytest.fixture(autouse=True)
def single_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def config_for(out_dir: Path, **changes):
    """Return the TrainConfig that `lgnrt train --preset tiny` builds from OVERRIDES."""
    config = dataclasses.replace(PRESETS["tiny"], out_dir=str(out_dir), **parse_overrides(OVERRIDES))
    return dataclasses.replace(config, **changes)


def restore_default_sigint() -> None:
    # A child of a process that ignores SIGINT would inherit SIG_IGN, and
    # Python would then never raise KeyboardInterrupt.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_training(command: list[str], log_path: Path) -> subprocess.Popen:
    log = open(log_path, "w")
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment,
                               preexec_fn=restore_default_sigint)
    log.close()
    return process


def module_command(out_dir: Path, *extra: str) -> list[str]:
    arguments = [sys.executable, "-m", "lgnrt.bridge", "--preset", "tiny", "--out-dir", str(out_dir)]
    for item in [*OVERRIDES, *extra]:
        arguments += ["--set", item]
    return arguments


def cli_command(out_dir: Path, *extra: str) -> list[str]:
    arguments = [sys.executable, "-m", "lgnrt.cli", "train", "--preset", "tiny", "--out-dir", str(out_dir)]
    for item in [*OVERRIDES, *extra]:
        arguments += ["--set", item]
    return arguments


def checkpoint_step(path: Path) -> int:
    return int(torch.load(path, map_location="cpu", weights_only=True)["step"])


def wait_for_step(process: subprocess.Popen, checkpoint: Path, minimum_step: int, log_path: Path) -> int:
    """Wait until the checkpoint contains step `minimum_step` or later; return its step."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"training ended early with status {process.returncode}:\n{log_path.read_text()}")
        if checkpoint.exists():
            step = checkpoint_step(checkpoint)
            if step >= minimum_step:
                return step
        time.sleep(0.05)
    process.kill()
    pytest.fail(f"no checkpoint at step {minimum_step} within {START_TIMEOUT_S} s:\n{log_path.read_text()}")


# SIGKILL during the third checkpoint write, after half the bytes: the
# worst moment for a write that is not atomic.
KILL_DURING_WRITE = textwrap.dedent("""
    import importlib, io, os, signal, sys
    import torch
    train_module = importlib.import_module("lgnrt.bridge.train")
    real_save = torch.save
    calls = []

    def save_then_die(state, stream, *args, **kwargs):
        calls.append(1)
        if len(calls) < 3:
            return real_save(state, stream, *args, **kwargs)
        buffer = io.BytesIO()
        real_save(state, buffer)
        data = buffer.getvalue()
        stream.write(data[:len(data) // 2])
        stream.flush()
        os.fsync(stream.fileno())
        os.kill(os.getpid(), signal.SIGKILL)

    torch.save = save_then_die
    train_module.main(sys.argv[1:])
""")


@dataclasses.dataclass
class TrainingRun:
    out_dir: Path
    process: subprocess.Popen

    @property
    def log_path(self) -> Path:
        return self.out_dir / "train.log"

    @property
    def checkpoint(self) -> Path:
        return self.out_dir / CHECKPOINT_FILE


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Start every training subprocess at once, so that their slow imports of torch and scikit-learn overlap."""
    commands = {
        "sigkill": lambda out_dir: module_command(out_dir),
        # checkpoint_every=1000 is never reached, so the checkpoint after the
        # interrupt can only come from the interrupt itself.
        "sigint": lambda out_dir: cli_command(out_dir, "checkpoint_every=1000"),
        "kill-during-write": lambda out_dir: [sys.executable, "-c", KILL_DURING_WRITE,
                                              *module_command(out_dir)[3:]],
    }
    started = {}
    for name, command in commands.items():
        out_dir = tmp_path_factory.mktemp(name)
        started[name] = TrainingRun(out_dir, start_training(command(out_dir), out_dir / "train.log"))
    yield started
    for run in started.values():
        if run.process.poll() is None:
            run.process.kill()
            run.process.wait()


def count_train_steps(monkeypatch) -> list[int]:
    """Count calls of the training loop's train_step from now on."""
    calls = []
    original = train_module.train_step

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(train_module, "train_step", counted)
    return calls


def metrics_steps(out_dir: Path) -> list[int]:
    lines = (out_dir / METRICS_FILE).read_text().splitlines()
    return [json.loads(line)["step"] for line in lines]


def assert_runtime_matches_bridge(model_path: Path, bridge_model, encoder, features: np.ndarray) -> None:
    """Check the exported file's runtime labels against the bridge's hard circuit, sample by sample."""
    runtime_labels = lgnrt.load(model_path).predict(features)
    bits = torch.from_numpy(encoder.encode(features))
    bridge_labels = bridge_model.hard_predict(bits).cpu().numpy()
    differing = np.flatnonzero(runtime_labels != bridge_labels)
    assert differing.size == 0, f"{differing.size} of {len(features)} labels differ, first at {differing[:1]}"


# ---------------------------------------------------------------------------
# SIGKILL
# ---------------------------------------------------------------------------

def test_sigkill_then_resume_continues(runs, digits, monkeypatch):
    run = runs["sigkill"]
    process, checkpoint, out_dir = run.process, run.checkpoint, run.out_dir
    try:
        wait_for_step(process, checkpoint, 10, run.log_path)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL

    saved = checkpoint_step(checkpoint)
    assert saved >= 10
    assert saved % 5 == 0, f"checkpoint at step {saved}, expected a multiple of checkpoint_every"

    calls = count_train_steps(monkeypatch)
    result = train(config_for(out_dir, resume=True, steps=saved + 7), digits)
    assert len(calls) == 7, f"resumed run ran {len(calls)} steps from step {saved}, expected 7"
    assert result.record["steps"] == saved + 7
    assert checkpoint_step(checkpoint) == saved + 7

    steps = metrics_steps(out_dir)
    assert steps == sorted(set(steps)), f"metrics steps repeat or go back: {steps}"
    assert steps[-1] == saved + 7

    for features in (digits.test_features, digits.train_features):
        assert_runtime_matches_bridge(out_dir / MODEL_FILE, result.model, result.encoder, features)


def test_kill_during_checkpoint_write_keeps_previous(runs, digits, monkeypatch):
    run = runs["kill-during-write"]
    out_dir = run.out_dir
    run.process.wait(timeout=START_TIMEOUT_S)
    assert run.process.returncode == -signal.SIGKILL, run.log_path.read_text()

    checkpoint = out_dir / CHECKPOINT_FILE
    leftovers = list(out_dir.glob(f".{CHECKPOINT_FILE}.*.tmp"))
    assert len(leftovers) == 1, "the interrupted write should have left its temporary file"
    assert checkpoint_step(checkpoint) == 10

    calls = count_train_steps(monkeypatch)
    result = train(config_for(out_dir, resume=True, steps=12), digits)
    assert len(calls) == 2
    assert result.record["steps"] == 12
    assert_runtime_matches_bridge(out_dir / MODEL_FILE, result.model, result.encoder, digits.test_features)


# ---------------------------------------------------------------------------
# SIGINT (Ctrl-C)
# ---------------------------------------------------------------------------

def interrupted_step(output: str) -> int:
    match = re.search(r"training interrupted at step (\d+) of 100000; checkpoint \S+ contains this step", output)
    assert match, f"no interrupt message in:\n{output}"
    return int(match.group(1))


def test_ctrl_c_saves_checkpoint_then_resume(runs, digits, monkeypatch, caplog):
    run = runs["sigint"]
    process, out_dir = run.process, run.out_dir
    deadline = time.monotonic() + START_TIMEOUT_S
    while not (out_dir / METRICS_FILE).exists():
        assert process.poll() is None, run.log_path.read_text()
        assert time.monotonic() < deadline, f"training did not start:\n{run.log_path.read_text()}"
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    process.wait(timeout=60)
    output = run.log_path.read_text()

    assert process.returncode == 130, output
    assert "Traceback" not in output
    assert "lgnrt train: interrupted" in output
    step = interrupted_step(output)
    assert "--set resume=true" in output
    checkpoint = out_dir / CHECKPOINT_FILE
    assert checkpoint_step(checkpoint) == step
    assert not list(out_dir.glob(f".{CHECKPOINT_FILE}.*.tmp")), "a temporary checkpoint file was left behind"
    assert not (out_dir / MODEL_FILE).exists()

    # Resume with the same settings plus resume; the command-line form is
    # `lgnrt train ... --set resume=true`.
    calls = count_train_steps(monkeypatch)
    config = config_for(out_dir, checkpoint_every=1000, resume=True, steps=step + 4)
    with caplog.at_level(logging.INFO, logger=train_module.__name__):
        result = train(config, digits)
    assert f"resumed from {checkpoint} at step {step}" in caplog.text
    assert len(calls) == 4, f"resumed run ran {len(calls)} steps from step {step}, expected 4"
    assert checkpoint_step(checkpoint) == step + 4
    assert lgnrt.load(out_dir / MODEL_FILE).training["steps"] == step + 4
    assert_runtime_matches_bridge(out_dir / MODEL_FILE, result.model, result.encoder, digits.test_features)


# ---------------------------------------------------------------------------
# Invalid data sets are rejected before training
# ---------------------------------------------------------------------------

def invalid_datasets(digits) -> dict:
    labels_too_high = digits.train_labels.copy()
    labels_too_high[7] = 10
    negative_labels = digits.test_labels.copy()
    negative_labels[3] = -1
    float_labels = digits.train_labels.astype(np.float64)
    nan_features = digits.train_features.astype(np.float32)
    nan_features[2, 5] = np.nan
    empty_features = digits.train_features[:0]
    return {
        "label above range": (dataclasses.replace(digits, train_labels=labels_too_high),
                              "train part: label 10 is out of range; expected 0 .. 9 for 10 classes"),
        "negative label": (dataclasses.replace(digits, test_labels=negative_labels),
                           "test part: label -1 is out of range"),
        "float labels": (dataclasses.replace(digits, train_labels=float_labels), "labels must be integers"),
        "wrong image size": (dataclasses.replace(digits, image_shape=(7, 7)),
                             "image size 7x7 does not match 64 features"),
        "cropped images": (dataclasses.replace(digits, train_features=digits.train_features[:, :63],
                                        test_features=digits.test_features[:, :63]),
                           "image size 8x8 does not match 63 features"),
        "empty train part": (dataclasses.replace(digits, train_features=empty_features,
                                          train_labels=digits.train_labels[:0]),
                             "train part: the part is empty"),
        "empty test part": (dataclasses.replace(digits, test_features=digits.test_features[:0],
                                         test_labels=digits.test_labels[:0]),
                            "test part: the part is empty"),
        "labels and rows differ": (dataclasses.replace(digits, train_labels=digits.train_labels[:-1]),
                                   "feature rows but labels of shape"),
        "feature counts differ": (dataclasses.replace(digits, test_features=digits.test_features[:, :60]),
                                  "60 features per sample, but the train part has 64"),
        "NaN feature": (dataclasses.replace(digits, train_features=nan_features, value_range=None),
                        "features contain NaN or infinity"),
        "values outside range": (dataclasses.replace(digits, value_range=(0, 15)), "outside the declared range 0 .. 15"),
        "one class": (dataclasses.replace(digits, class_names=("only",)), "needs at least 2 classes"),
    }


def test_invalid_data_rejected_before_training(tmp_path, digits, monkeypatch):
    calls = count_train_steps(monkeypatch)
    for name, (dataset, message) in invalid_datasets(digits).items():
        out_dir = tmp_path / name.replace(" ", "-")
        with pytest.raises(ValueError) as caught:
            train(config_for(out_dir, steps=3), dataset)
        assert message in str(caught.value), f"{name}: {caught.value}"
        assert not out_dir.exists(), f"{name}: output folder written before the data check"
    assert not calls, "a training step ran on invalid data"


def test_make_dataset_rejects_empty_split(digits):
    features = digits.train_features
    labels = digits.train_labels
    for n_test in (0, features.shape[0]):
        with pytest.raises(ValueError, match=f"held-out size must be between 1 and n_samples - 1 = "
                                             f"{features.shape[0] - 1}, got {n_test}"):
            make_dataset("digits-copy", features, labels, digits.class_names, n_test, seed=0)
    with pytest.raises(ValueError, match="label 12 is out of range"):
        make_dataset("digits-copy", features, np.where(labels == 3, 12, labels), digits.class_names, 100, seed=0)
