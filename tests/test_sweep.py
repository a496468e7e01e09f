"""Tests of the sweep (bridge/sweep.py), its tables and plots, on a tiny grid of scikit-learn digits."""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("matplotlib")
pytest.importorskip("sklearn")

from lgnrt import cli  # noqa: E402
from lgnrt.bridge import sweep as sweep_module  # noqa: E402
from lgnrt.bridge.sweep import (  # noqa: E402
    RESULTS_FILE,
    RunSpec,
    aggregate,
    build_grid,
    read_metrics,
    read_results,
    steps_to_accuracy,
)
from lgnrt.bridge.train import MODEL_FILE, PRESETS, train  # noqa: E402

# 2 estimators x 2 temperatures x 1 seed, plus one Hard-ST + CAGE run.
# eval_every=4 gives several evaluations in the 23 steps of one epoch.
TINY_ARGUMENTS = [
    "--dataset", "digits", "--preset", "tiny", "--estimators", "hard_st", "soft_mix", "--taus", "0.5", "2",
    "--seeds", "0", "--set", "widths=200,200", "--set", "epochs=1", "--set", "eval_every=4",
    "--set", "threads=1", "--target-accuracy", "0.2",
]
TINY_RUN_IDS = ["hard_st-tau0.5-seed0", "hard_st-tau2-seed0", "hard_st-cage-seed0",
                "soft_mix-tau0.5-seed0", "soft_mix-tau2-seed0"]
PLOT_FILES = ["accuracy_gap_vs_tau.png", "gap_heatmap.png", "cage_dynamics.png", "gate_usage.png",
              "commitment_by_layer.png"]
N_HELD_OUT = 360  # the "digits" loader holds out 360 of 1,797 samples


def run_cli(out_dir: Path, *extra: str) -> int:
    return cli.main(["sweep", *TINY_ARGUMENTS, "--out", str(out_dir), *extra])


class CountingTrain:
    """Wraps bridge.train.train and counts its calls, optionally interrupting one."""

    def __init__(self, interrupt_at: int | None = None, steps_before_interrupt: int = 3):
        self.calls = 0
        self.interrupt_at = interrupt_at
        self.steps_before_interrupt = steps_before_interrupt

    def __call__(self, config, data=None):
        self.calls += 1
        if self.calls == self.interrupt_at:
            # Train part of the run with a checkpoint, then stop as a Ctrl-C would.
            partial = dataclasses.replace(config, steps=self.steps_before_interrupt,
                                          checkpoint_every=self.steps_before_interrupt)
            train(partial, data)
            raise KeyboardInterrupt
        return train(config, data)


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory) -> Path:
    """A sweep folder with the tiny grid run once through `lgnrt sweep`."""
    out_dir = tmp_path_factory.mktemp("sweep") / "tiny"
    assert run_cli(out_dir) == 0
    return out_dir


def copy_sweep(source: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(source, target)
    return target


# ---------------------------------------------------------------------------
# A finished sweep
# ---------------------------------------------------------------------------

def test_sweep_writes_one_row_per_run(finished_sweep):
    rows = read_results(finished_sweep)
    assert [row["run_id"] for row in rows] == TINY_RUN_IDS
    for row in rows:
        assert row["status"] == "ok", row["error"]
        assert (finished_sweep / row["run_id"] / MODEL_FILE).is_file()
        assert (finished_sweep / row["run_id"] / "metrics.jsonl").is_file()
        assert not (finished_sweep / row["run_id"] / "checkpoint.pt").exists()


def test_sweep_runtime_check_covers_held_out(finished_sweep):
    for row in read_results(finished_sweep):
        assert row["runtime_mismatches"] == 0
        assert row["runtime_check"] == f"{N_HELD_OUT}/{N_HELD_OUT} equal"
        assert row["n_test"] == N_HELD_OUT


def test_sweep_hard_st_gap_is_exactly_zero(finished_sweep):
    hard_rows = [row for row in read_results(finished_sweep) if row["estimator"] == "hard_st"]
    assert len(hard_rows) == 3
    for row in hard_rows:
        assert row["selection_gap_points"] == 0.0
        assert row["training_mode_accuracy"] == row["deployed_accuracy"]


def test_sweep_rows_match_metrics(finished_sweep):
    for row in read_results(finished_sweep):
        history = read_metrics(finished_sweep / row["run_id"])
        assert history[-1]["step"] == row["steps"]
        assert history[-1]["deployed_accuracy"] == row["deployed_accuracy"]
        assert row["steps_to_target"] == steps_to_accuracy(history, 0.2)
        assert 0.0 <= row["xor_share"] <= 1.0
        assert row["tau"] == (None if row["cage"] else float(row["run_id"].split("tau")[1].split("-")[0]))


def test_sweep_writes_csv_and_markdown(finished_sweep):
    with open(finished_sweep / "results.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [row["run_id"] for row in rows] == TINY_RUN_IDS
    assert {"deployed_accuracy", "selection_gap_points", "steps_to_target", "wall_time_s"} <= set(rows[0])

    with open(finished_sweep / "summary.csv", newline="") as stream:
        summary = list(csv.DictReader(stream))
    assert len(summary) == 5  # one group per run, with one seed

    markdown = (finished_sweep / "results.md").read_text()
    assert "## Mean [min, max] over seeds" in markdown
    assert "| hard_st-cage-seed0 | ok | hard_st | any | on | 0 |" in markdown
    assert markdown.count(f"{N_HELD_OUT}/{N_HELD_OUT} equal") == 5


def test_sweep_writes_png_plots(finished_sweep):
    for name in PLOT_FILES:
        path = finished_sweep / name
        assert path.is_file(), name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_report_only_rebuilds_plots(finished_sweep, tmp_path):
    out_dir = copy_sweep(finished_sweep, tmp_path)
    for name in PLOT_FILES + ["results.md"]:
        (out_dir / name).unlink()
    assert cli.main(["sweep", "--out", str(out_dir), "--report-only"]) == 0
    for name in PLOT_FILES + ["results.md"]:
        assert (out_dir / name).is_file(), name


# ---------------------------------------------------------------------------
# Resuming
# ---------------------------------------------------------------------------

def test_rerun_skips_finished_runs(finished_sweep, tmp_path, monkeypatch):
    out_dir = copy_sweep(finished_sweep, tmp_path)
    before = {row["run_id"]: row["finished_at"] for row in read_results(out_dir)}
    model_times = {run_id: (out_dir / run_id / MODEL_FILE).stat().st_mtime_ns for run_id in before}
    counter = CountingTrain()
    monkeypatch.setattr(sweep_module, "train", counter)

    assert run_cli(out_dir, "--no-plots") == 0

    assert counter.calls == 0
    assert {row["run_id"]: row["finished_at"] for row in read_results(out_dir)} == before
    for run_id, mtime in model_times.items():
        assert (out_dir / run_id / MODEL_FILE).stat().st_mtime_ns == mtime


def test_interrupted_run_resumes_from_checkpoint(tmp_path, monkeypatch):
    out_dir = tmp_path / "interrupted"
    interrupting = CountingTrain(interrupt_at=2)
    monkeypatch.setattr(sweep_module, "train", interrupting)
    assert run_cli(out_dir, "--no-plots") == 130  # the command line's exit status on KeyboardInterrupt

    rows = read_results(out_dir)
    assert [row["run_id"] for row in rows] == TINY_RUN_IDS[:1]
    assert (out_dir / TINY_RUN_IDS[1] / "checkpoint.pt").is_file()
    assert not (out_dir / "sweep.lock").exists()

    counter = CountingTrain()
    monkeypatch.setattr(sweep_module, "train", counter)
    assert run_cli(out_dir, "--no-plots") == 0

    assert counter.calls == len(TINY_RUN_IDS) - 1
    rows = {row["run_id"]: row for row in read_results(out_dir)}
    assert list(rows) == TINY_RUN_IDS
    resumed = rows[TINY_RUN_IDS[1]]
    assert resumed["resumed"] is True
    assert resumed["status"] == "ok", resumed["error"]
    assert resumed["steps"] == rows[TINY_RUN_IDS[0]]["steps"]
    steps = [entry["step"] for entry in read_metrics(out_dir / TINY_RUN_IDS[1])]
    assert steps == sorted(set(steps))
    assert steps[0] < 4  # the evaluation made before the interruption is kept


def test_changed_settings_are_rejected(finished_sweep, tmp_path, monkeypatch, capsys):
    out_dir = copy_sweep(finished_sweep, tmp_path)
    counter = CountingTrain()
    monkeypatch.setattr(sweep_module, "train", counter)

    assert run_cli(out_dir, "--set", "tau_out=4", "--no-plots") == 2
    assert "--rerun-changed" in capsys.readouterr().err
    assert counter.calls == 0

    assert run_cli(out_dir, "--set", "tau_out=4", "--no-plots", "--rerun-changed") == 0
    assert counter.calls == len(TINY_RUN_IDS)


def test_runtime_mismatch_fails_the_run(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep_module, "runtime_mismatches", lambda *arguments: 7)
    out_dir = tmp_path / "mismatch"
    assert cli.main(["sweep", *TINY_ARGUMENTS, "--estimators", "hard_st", "--taus", "1", "--cage", "off",
                     "--out", str(out_dir), "--no-plots"]) == 1
    (row,) = read_results(out_dir)
    assert row["status"] == "failed"
    assert "7 of 360" in row["error"]
    assert row["runtime_check"] == f"{N_HELD_OUT - 7}/{N_HELD_OUT} equal"


def test_live_lock_blocks_second_sweep(tmp_path):
    out_dir = tmp_path / "locked"
    out_dir.mkdir()
    (out_dir / "sweep.lock").write_text("1\n")  # process 1, init, is always alive
    with pytest.raises(RuntimeError, match="in use by process 1"):
        sweep_module.run_sweep(sweep_module.Sweep(out_dir=out_dir, base=PRESETS["tiny"],
                                                  runs=[RunSpec("hard_st", 1.0, False, 0)]))


# ---------------------------------------------------------------------------
# Grid and helpers
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("cage, every_tau, expected", [
    ("both", False, 4 * 6 + 2),
    ("off", False, 4 * 6),
    ("on", False, 2 * 6 + 2),
    ("both", True, 4 * 6 + 2 * 6),
])
def test_build_grid_counts(cage, every_tau, expected):
    taus = [0.1, 0.25, 0.5, 1, 2, 4]
    estimators = ["soft_mix", "soft_gumbel", "hard_st", "gumbel_st"]
    runs = build_grid(estimators, taus, [0, 1], cage, every_tau)
    assert len(runs) == 2 * expected
    assert len({run.run_id for run in runs}) == len(runs)
    assert all(not run.cage for run in runs if run.estimator.startswith("soft"))


def test_build_grid_rejects_bad_values():
    with pytest.raises(ValueError, match="unknown estimator"):
        build_grid(["hard"], [1.0], [0])
    with pytest.raises(ValueError, match="finite and positive"):
        build_grid(["hard_st"], [0.0], [0])
    with pytest.raises(ValueError, match="CAGE mode"):
        build_grid(["hard_st"], [1.0], [0], cage="sometimes")


def test_cage_runs_ignore_tau():
    # The sweep trains a CAGE run once for all temperatures; this checks the
    # bridge really ignores tau under CAGE.
    for estimator in ("hard_st", "gumbel_st"):
        results = [train(dataclasses.replace(PRESETS["tiny"], widths=(100, 100), epochs=1, estimator=estimator,
                                             cage=True, tau=tau, progress=False, threads=1))
                   for tau in (0.1, 4.0)]
        for low, high in zip(results[0].model.gate_ids(), results[1].model.gate_ids()):
            assert torch.equal(low, high), estimator
        assert results[0].history == [
            {**entry, "elapsed_s": results[0].history[i]["elapsed_s"]} for i, entry in enumerate(results[1].history)
        ], estimator


def test_aggregate_over_seeds():
    rows = [
        {"status": "ok", "dataset": "d", "estimator": "hard_st", "cage": False, "tau": 1.0, "seed": seed,
         "deployed_accuracy": accuracy, "training_mode_accuracy": accuracy, "selection_gap_points": 0.0,
         "final_loss": 1.0, "steps_to_target": steps, "target_accuracy": 0.5, "xor_share": 0.1,
         "xnor_share": 0.1, "wall_time_s": 2.0}
        for seed, accuracy, steps in ((0, 0.5, 10), (1, 0.7, None), (2, 0.9, 30))
    ]
    rows.append({**rows[0], "status": "failed"})
    (entry,) = aggregate(rows)
    assert entry["n_seeds"] == 3
    assert entry["deployed_accuracy_mean"] == pytest.approx(0.7)
    assert entry["deployed_accuracy_min"] == 0.5
    assert entry["deployed_accuracy_max"] == 0.9
    assert entry["n_reached_target"] == 2
    assert entry["steps_to_target_mean"] == 20.0


def test_read_metrics_keeps_last_entry_per_step(tmp_path):
    lines = [{"step": 4, "deployed_accuracy": 0.1}, {"step": 8, "deployed_accuracy": 0.2},
             {"step": 8, "deployed_accuracy": 0.3}, {"step": 12, "deployed_accuracy": 0.5}]
    text = "".join(json.dumps(line) + "\n" for line in lines) + '{"step": 16, "deplo'
    (tmp_path / "metrics.jsonl").write_text(text)
    history = read_metrics(tmp_path)
    assert [entry["step"] for entry in history] == [4, 8, 12]
    assert history[1]["deployed_accuracy"] == 0.3
    assert steps_to_accuracy(history, 0.25) == 8
    assert steps_to_accuracy(history, 0.9) is None


def test_results_file_is_json_lines(finished_sweep):
    lines = (finished_sweep / RESULTS_FILE).read_text().splitlines()
    assert len(lines) == len(TINY_RUN_IDS)
    for line in lines:
        row = json.loads(line)
        assert np.isfinite(row["wall_time_s"])


def test_bad_shared_setting_fails_before_grid(tmp_path, capsys):
    out = tmp_path / "sweep"
    status = cli.main(["sweep", "--dataset", "digits", "--estimators", "hard_st", "--taus", "1",
                       "--seeds", "0", "--out", str(out), "--set", "widths=7", "--set", "epochs=1"])
    assert status == 2
    assert "must be a multiple of n_classes 10" in capsys.readouterr().err
    assert not (out / "results.csv").exists()
