"""PNG plots of a sweep folder written by bridge/sweep.py.

    python -m lgnrt.bridge.plots runs/sweep-fmnist

reads OUT/results.jsonl (and each CAGE run's metrics.jsonl) and writes into
OUT: accuracy_gap_vs_tau.png, gap_heatmap.png, cage_dynamics.png,
gate_usage.png and commitment_by_layer.png. A sweep folder holding
several data sets gets one set of files per data set, suffixed with its
name. Values are means over seeds; bars and bands span min to max.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from lgnrt.gates import GATE_NAMES, N_GATES  # noqa: E402

DPI = 100
ESTIMATOR_ORDER = ("soft_mix", "soft_gumbel", "hard_st", "gumbel_st")
ESTIMATOR_LABELS = {"soft_mix": "Soft-Mix", "soft_gumbel": "Soft-Gumbel", "hard_st": "Hard-ST",
                    "gumbel_st": "Gumbel-ST"}
VARIANT_COLORS = {
    ("soft_mix", False): "tab:blue", ("soft_gumbel", False): "tab:orange",
    ("hard_st", False): "tab:green", ("hard_st", True): "darkgreen",
    ("gumbel_st", False): "tab:red", ("gumbel_st", True): "darkred",
}
# Gate usage and commitment compare estimators at this temperature, the
# usual difflogic setting, or at the sweep's temperature nearest to it.
REFERENCE_TAU = 1.0


def variant_label(estimator: str, cage: bool) -> str:
    label = ESTIMATOR_LABELS.get(estimator, estimator)
    return f"{label} + CAGE" if cage else label


def variant_key(row: dict) -> tuple[str, bool]:
    return row["estimator"], bool(row["cage"])


def ordered_variants(rows: list[dict]) -> list[tuple[str, bool]]:
    variants = {variant_key(row) for row in rows}
    rank = {name: index for index, name in enumerate(ESTIMATOR_ORDER)}
    return sorted(variants, key=lambda v: (rank.get(v[0], len(rank)), v[0], v[1]))


def read_rows(out_dir: Path) -> list[dict]:
    """Return the rows of OUT/results.jsonl with status "ok"."""
    path = Path(out_dir) / "results.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found; run the sweep first")
    with open(path, encoding="utf-8") as stream:
        rows = [json.loads(line) for line in stream if line.strip()]
    return [row for row in rows if row["status"] == "ok"]


def read_history(run_dir: Path) -> list[dict]:
    """Read a run's metrics.jsonl, last entry per step, in step order."""
    by_step = {}
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    with open(path, encoding="utf-8") as stream:
        for line in stream:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            by_step[entry["step"]] = entry
    return [by_step[step] for step in sorted(by_step)]


def by_tau(rows: list[dict], key: str, scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Group rows by tau; return taus and the mean, min and max of `key` times `scale`."""
    groups: dict[float, list[float]] = defaultdict(list)
    for row in rows:
        groups[row["tau"]].append(scale * row[key])
    taus = sorted(groups)
    values = [groups[tau] for tau in taus]
    return (np.array(taus), np.array([np.mean(v) for v in values]), np.array([np.min(v) for v in values]),
            np.array([np.max(v) for v in values]))


def seed_stats(rows: list[dict], key: str, scale: float) -> tuple[float, float, float]:
    values = [scale * row[key] for row in rows]
    return float(np.mean(values)), float(np.min(values)), float(np.max(values))


def nearest_tau(rows: list[dict], target: float = REFERENCE_TAU) -> float | None:
    taus = sorted({row["tau"] for row in rows if row["tau"] is not None})
    if not taus:
        return None
    return min(taus, key=lambda tau: abs(math.log(tau) - math.log(target)))


def reference_rows(rows: list[dict]) -> tuple[dict[tuple[str, bool], list[dict]], float | None]:
    """Pick, per variant, the rows at the temperature nearest REFERENCE_TAU (CAGE runs: any tau)."""
    tau = nearest_tau(rows)
    chosen: dict[tuple[str, bool], list[dict]] = defaultdict(list)
    for row in rows:
        if row["tau"] is None or row["tau"] == tau:
            chosen[variant_key(row)].append(row)
    return chosen, tau


# ---------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------

def plot_accuracy_and_gap(rows: list[dict], path: Path, title: str) -> None:
    """Accuracy (training-mode and deployed) and selection gap against tau, one column per estimator.

    CAGE runs trained once for all temperatures appear as horizontal lines.
    """
    estimators = [e for e in ESTIMATOR_ORDER if any(row["estimator"] == e for row in rows)]
    estimators += sorted({row["estimator"] for row in rows} - set(estimators))
    # Shared y per row, so gaps compare across estimators at a glance.
    figure, axes = plt.subplots(2, len(estimators), figsize=(3.2 * len(estimators), 5.6), squeeze=False,
                                sharex=True, sharey="row")
    all_taus = sorted({row["tau"] for row in rows if row["tau"] is not None})
    for column, estimator in enumerate(estimators):
        accuracy_axis, gap_axis = axes[0, column], axes[1, column]
        for cage in (False, True):
            members = [row for row in rows if row["estimator"] == estimator and bool(row["cage"]) == cage]
            swept = [row for row in members if row["tau"] is not None]
            fixed = [row for row in members if row["tau"] is None]
            suffix = " + CAGE" if cage else ""
            style = "--" if cage else "-"
            if swept:
                for key, marker, label in (("training_mode_accuracy", "o", "training-mode"),
                                           ("deployed_accuracy", "s", "deployed")):
                    taus, mean, low, high = by_tau(swept, key, 100.0)
                    accuracy_axis.errorbar(taus, mean, yerr=[mean - low, high - mean], marker=marker,
                                           linestyle=style, capsize=2, label=label + suffix)
                taus, mean, low, high = by_tau(swept, "selection_gap_points", 1.0)
                gap_axis.errorbar(taus, mean, yerr=[mean - low, high - mean], marker="o", linestyle=style,
                                  capsize=2, label="gap" + suffix)
            if fixed and all_taus:
                span = [all_taus[0], all_taus[-1]]
                for key, color, label in (("training_mode_accuracy", "tab:purple", "training-mode"),
                                          ("deployed_accuracy", "black", "deployed")):
                    mean, low, high = seed_stats(fixed, key, 100.0)
                    accuracy_axis.plot(span, [mean, mean], linestyle=style, color=color,
                                       label=f"{label}{suffix} (tau-free)")
                    accuracy_axis.fill_between(span, [low, low], [high, high], color=color, alpha=0.12)
                mean, low, high = seed_stats(fixed, "selection_gap_points", 1.0)
                gap_axis.plot(span, [mean, mean], linestyle=style, color="black", label=f"gap{suffix} (tau-free)")
        accuracy_axis.set_title(ESTIMATOR_LABELS.get(estimator, estimator))
        accuracy_axis.set_ylim(0, 100)
        gap_axis.axhline(0.0, color="grey", linewidth=0.8)
        gap_axis.set_xscale("log")
        gap_axis.set_xlabel("temperature tau")
        accuracy_axis.legend(fontsize=6, loc="lower right")
        gap_axis.legend(fontsize=6)
        for axis in (accuracy_axis, gap_axis):
            axis.grid(True, alpha=0.3)
            if all_taus:
                axis.set_xticks(all_taus)
                axis.set_xticklabels([f"{tau:g}" for tau in all_taus])
                axis.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axes[0, 0].set_ylabel("held-out accuracy (%)")
    axes[1, 0].set_ylabel("selection gap (points)")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    plt.close(figure)


def plot_gap_heatmap(rows: list[dict], path: Path, title: str) -> None:
    """Mean selection gap, rows estimator (and CAGE), columns tau; a tau-free CAGE run fills its row."""
    variants = ordered_variants(rows)
    taus = sorted({row["tau"] for row in rows if row["tau"] is not None})
    if not taus:
        taus = [None]
    table = np.full((len(variants), len(taus)), np.nan)
    for i, variant in enumerate(variants):
        members = [row for row in rows if variant_key(row) == variant]
        for j, tau in enumerate(taus):
            cell = [row["selection_gap_points"] for row in members if row["tau"] == tau or row["tau"] is None]
            if cell:
                table[i, j] = float(np.mean(cell))

    limit = max(1.0, float(np.nanmax(np.abs(table)))) if np.isfinite(table).any() else 1.0
    figure, axis = plt.subplots(figsize=(1.1 * len(taus) + 2.6, 0.55 * len(variants) + 1.6))
    image = axis.imshow(table, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    for i in range(len(variants)):
        for j in range(len(taus)):
            if np.isfinite(table[i, j]):
                color = "white" if abs(table[i, j]) > 0.6 * limit else "black"
                axis.text(j, i, f"{table[i, j]:.1f}", ha="center", va="center", fontsize=8, color=color)
    axis.set_xticks(range(len(taus)))
    axis.set_xticklabels(["any" if tau is None else f"{tau:g}" for tau in taus])
    axis.set_yticks(range(len(variants)))
    axis.set_yticklabels([variant_label(*variant) for variant in variants])
    axis.set_xlabel("temperature tau (CAGE runs do not depend on it)")
    figure.colorbar(image, ax=axis, label="selection gap (points)")
    axis.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    plt.close(figure)


def plot_cage_dynamics(rows: list[dict], out_dir: Path, path: Path, title: str) -> bool:
    """tau_b and EMA confidence against step for every CAGE run; return False when there is none."""
    cage_rows = [row for row in rows if row["cage"]]
    if not cage_rows:
        return False

    figure, (tau_axis, confidence_axis) = plt.subplots(1, 2, figsize=(9.0, 3.6))
    labelled = set()
    for row in cage_rows:
        history = [entry for entry in read_history(out_dir / row["run_id"]) if "tau_b" in entry]
        if not history:
            continue
        steps = [entry["step"] for entry in history]
        # Mean over layers, which is the single global value unless CAGE runs per layer.
        tau_b = [float(np.mean(entry["tau_b"])) for entry in history]
        confidence = [float(np.mean(entry["confidence_ema"])) for entry in history]
        variant = variant_key(row)
        label = variant_label(*variant) if variant not in labelled else None
        labelled.add(variant)
        color = VARIANT_COLORS.get(variant)
        tau_axis.plot(steps, tau_b, color=color, alpha=0.8, label=label)
        confidence_axis.plot(steps, confidence, color=color, alpha=0.8, label=label)

    tau_max = max(row["config"].get("cage_tau_max", 0.0) for row in cage_rows)
    tau_axis.set_ylim(0.0, 1.05 * tau_max if tau_max > 0 else None)
    confidence_axis.set_ylim(0.0, 1.0)
    tau_axis.set_xlabel("training step")
    tau_axis.set_ylabel("backward temperature tau_b")
    confidence_axis.set_xlabel("training step")
    confidence_axis.set_ylabel("EMA gate commitment")
    confidence_axis.axhline(1.0 / N_GATES, color="grey", linewidth=0.8, linestyle=":")
    for axis in (tau_axis, confidence_axis):
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=7)

    figure.suptitle(title + " (one line per seed, at evaluation steps)")
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    plt.close(figure)
    return True


def plot_gate_usage(rows: list[dict], path: Path, title: str) -> None:
    """Share of each of the 16 gates over all layers, per estimator variant, at the reference tau."""
    chosen, tau = reference_rows(rows)
    variants = [variant for variant in ordered_variants(rows) if variant in chosen]
    figure, axis = plt.subplots(figsize=(11.0, 4.0))
    width = 0.8 / max(len(variants), 1)
    positions = np.arange(N_GATES)
    for index, variant in enumerate(variants):
        shares = []
        for row in chosen[variant]:
            usage = np.asarray(row["final"]["gate_usage"], dtype=np.float64).sum(axis=0)
            shares.append(100.0 * usage / usage.sum())
        axis.bar(positions + (index - (len(variants) - 1) / 2) * width, np.mean(shares, axis=0), width,
                 label=variant_label(*variant), color=VARIANT_COLORS.get(variant))
    axis.axhline(100.0 / N_GATES, color="grey", linestyle=":", linewidth=1.0, label="uniform (6.25%)")
    axis.set_xticks(positions)
    axis.set_xticklabels(GATE_NAMES, rotation=45, ha="right", fontsize=8)
    axis.set_ylabel("share of gates (%)")
    axis.grid(True, axis="y", alpha=0.3)
    axis.legend(fontsize=7, ncol=2)
    axis.set_title(f"{title}, tau = {'-' if tau is None else f'{tau:g}'} (CAGE runs: tau-free)")
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    plt.close(figure)


def plot_commitment(rows: list[dict], path: Path, title: str) -> None:
    """Final gate commitment (mean max softmax) per layer, per estimator variant, at the reference tau."""
    chosen, tau = reference_rows(rows)
    figure, axis = plt.subplots(figsize=(5.6, 3.8))
    for variant in ordered_variants(rows):
        if variant not in chosen:
            continue
        values = np.array([row["final"]["commitment"] for row in chosen[variant]])  # (seeds, layers)
        layers = np.arange(1, values.shape[1] + 1)
        mean, low, high = values.mean(axis=0), values.min(axis=0), values.max(axis=0)
        axis.errorbar(layers, mean, yerr=[mean - low, high - mean], marker="o", capsize=2,
                      label=variant_label(*variant), color=VARIANT_COLORS.get(variant))
    axis.axhline(1.0 / N_GATES, color="grey", linestyle=":", linewidth=1.0, label="undecided (1/16)")
    axis.set_ylim(0, 1.05)
    axis.set_xlabel("layer")
    axis.set_ylabel("mean max softmax(z)")
    axis.xaxis.get_major_locator().set_params(integer=True)
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=7)
    axis.set_title(f"{title}, tau = {'-' if tau is None else f'{tau:g}'}")
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    plt.close(figure)


def write_plots(out_dir: str | Path) -> list[Path]:
    """Write every plot of a sweep folder; return the paths written."""
    out_dir = Path(out_dir)
    rows = read_rows(out_dir)
    datasets = sorted({row["dataset"] for row in rows})
    written: list[Path] = []
    for dataset in datasets:
        members = [row for row in rows if row["dataset"] == dataset]
        suffix = f"-{dataset}" if len(datasets) > 1 else ""
        name = dataset
        plot_accuracy_and_gap(members, out_dir / f"accuracy_gap_vs_tau{suffix}.png",
                              f"{name}: held-out accuracy and selection gap")
        plot_gap_heatmap(members, out_dir / f"gap_heatmap{suffix}.png", f"{name}: selection gap (points)")
        plot_gate_usage(members, out_dir / f"gate_usage{suffix}.png", f"{name}: deployed gate usage")
        plot_commitment(members, out_dir / f"commitment_by_layer{suffix}.png", f"{name}: gate commitment")
        written += [out_dir / f"{stem}{suffix}.png"
                    for stem in ("accuracy_gap_vs_tau", "gap_heatmap", "gate_usage", "commitment_by_layer")]
        cage_path = out_dir / f"cage_dynamics{suffix}.png"
        if plot_cage_dynamics(members, out_dir, cage_path, f"{name}: CAGE"):
            written.append(cage_path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the PNG plots of a sweep folder from its results.jsonl.")
    parser.add_argument("out", help="sweep folder, as given to lgnrt sweep --out")
    arguments = parser.parse_args(argv)
    for path in write_plots(arguments.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
