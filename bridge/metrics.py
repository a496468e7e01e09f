"""Measurements of a logic gate network during training.

- training-mode accuracy: the estimator's own training forward pass, noise
  included where the estimator uses it, on held-out data;
- deployed accuracy: the argmax gates evaluated with Boolean logic, which is
  what the exported runtime computes;
- selection gap: training-mode minus deployed accuracy, in percentage
  points (exactly 0 for Hard-ST, whose training forward pass is the
  deployed circuit);
- gate commitment: mean max softmax(z) per layer; gate usage: how many
  neurons of each layer deploy each of the 16 gates.
"""

from __future__ import annotations

import torch

from lgnrt.gates import N_GATES

from .cage import commitment
from .model import LogicNet


@torch.no_grad()
def training_mode_accuracy(model: LogicNet, bits: torch.Tensor, labels: torch.Tensor,
                           batch_size: int = 128) -> float:
    """Return the accuracy of the training forward pass, evaluated in batches of `batch_size`.

    Noisy estimators draw fresh noise for every batch, as in training. The
    module's train/eval mode is restored afterwards.
    """
    was_training = model.training
    model.train()
    try:
        correct = 0
        for start in range(0, bits.shape[0], batch_size):
            scores = model(bits[start:start + batch_size])
            correct += int((scores.argmax(dim=1) == labels[start:start + batch_size]).sum())
    finally:
        model.train(was_training)
    return correct / max(bits.shape[0], 1)


@torch.no_grad()
def deployed_accuracy(model: LogicNet, bits: torch.Tensor, labels: torch.Tensor) -> float:
    """Return the accuracy of the deployed circuit (argmax gates, Boolean logic)."""
    predictions = model.hard_predict(bits)
    return int((predictions == labels).sum()) / max(bits.shape[0], 1)


def selection_gap(training_mode: float, deployed: float) -> float:
    """Return training-mode minus deployed accuracy in percentage points."""
    return 100.0 * (training_mode - deployed)


@torch.no_grad()
def gate_commitment(model: LogicNet) -> list[float]:
    """Return the mean max softmax(z) of each layer: 1/16 is undecided, 1 fully committed."""
    return [float(commitment(layer.logits)) for layer in model.layers]


@torch.no_grad()
def gate_usage(model: LogicNet) -> list[list[int]]:
    """Return, per layer, how many neurons deploy each gate id 0 .. 15."""
    return [torch.bincount(ids, minlength=N_GATES).tolist() for ids in model.gate_ids()]


def evaluate(model: LogicNet, bits: torch.Tensor, labels: torch.Tensor, batch_size: int = 128) -> dict:
    """Measure accuracies, selection gap, commitment, usage and CAGE state on held-out data."""
    training_mode = training_mode_accuracy(model, bits, labels, batch_size)
    deployed = deployed_accuracy(model, bits, labels)
    metrics = {
        "training_mode_accuracy": training_mode,
        "deployed_accuracy": deployed,
        "selection_gap": selection_gap(training_mode, deployed),
        "commitment": gate_commitment(model),
        "gate_usage": gate_usage(model),
    }
    if model.cage is not None:
        metrics["tau_b"] = model.cage.temperatures().tolist()
        metrics["confidence_ema"] = model.cage.confidence_ema.tolist()
    return metrics
