"""CAGE: a backward temperature for straight-through estimators that follows gate commitment.

The forward pass stays hard. Only the temperature tau_b of the surrogate
softmax changes, once per training step:

    c      = mean over neurons of max_i softmax(z)_i        (gate commitment)
    c_ema  = beta * c_ema + (1 - beta) * c
    frac   = clip((c_ema - 1/16) / (1 - 1/16), 0, 1)
    tau_b  = tau_max - (tau_max - tau_min) * frac

so tau_b starts near tau_max while the logits are undecided (max softmax
near 1/16) and falls toward tau_min as the gates commit. NOTE: the
constants below and the single tau_b shared by all layers are defaults that
have not been checked against the method's original publication, so each
is an option.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from lgnrt.gates import N_GATES

from .estimators import check_temperature


@dataclass(frozen=True)
class CageConfig:
    tau_max: float = 3.0  # tau_b while no gate is committed
    tau_min: float = 0.5  # tau_b once every gate is fully committed
    beta: float = 0.99  # EMA decay per step: the confidence averages about 100 steps
    per_layer: bool = False  # one tau_b per layer instead of one for the network
    # Start of the EMA; None starts it at the first measured confidence
    # (about 0.25 for N(0, 1) logits), 1/16 starts tau_b at exactly tau_max.
    initial_confidence: float | None = None

    def __post_init__(self):
        check_temperature(self.tau_max, "CAGE tau_max")
        check_temperature(self.tau_min, "CAGE tau_min")
        if self.tau_min > self.tau_max:
            raise ValueError(f"CAGE tau_min ({self.tau_min}) must not exceed tau_max ({self.tau_max})")
        if not 0.0 <= self.beta < 1.0:
            raise ValueError(f"CAGE beta must be in [0, 1), got {self.beta}")
        if self.initial_confidence is not None and not 0.0 <= self.initial_confidence <= 1.0:
            raise ValueError(f"CAGE initial_confidence must be in [0, 1], got {self.initial_confidence}")

    def to_dict(self) -> dict:
        return asdict(self)


def backward_temperature(confidence: torch.Tensor, tau_max: float, tau_min: float) -> torch.Tensor:
    """Map EMA confidence to tau_b: 1/16 or less gives tau_max, 1 gives tau_min, linear between."""
    uniform = 1.0 / N_GATES
    fraction = ((confidence - uniform) / (1.0 - uniform)).clamp(0.0, 1.0)
    return tau_max - (tau_max - tau_min) * fraction


def commitment(logits: torch.Tensor) -> torch.Tensor:
    """Return the mean over neurons of max softmax(z), a scalar tensor; logits are (n_neurons, 16)."""
    return torch.softmax(logits, dim=1).amax(dim=1).mean()


class CageController(nn.Module):
    """State of CAGE for a stack of layers; the EMA lives in buffers so state_dict carries it."""

    def __init__(self, config: CageConfig, n_layers: int):
        super().__init__()
        self.config = config
        n_groups = n_layers if config.per_layer else 1
        self.register_buffer("confidence_ema", torch.zeros(n_groups, dtype=torch.float64))
        self.register_buffer("n_updates", torch.zeros((), dtype=torch.int64))

    @torch.no_grad()
    def update(self, logits: list[torch.Tensor]) -> torch.Tensor:
        """Fold the current commitment into the EMA; return tau_b per group, float64.

        `logits` contains one (n_neurons, 16) tensor per layer. The global
        confidence weights every neuron equally, so wide layers count more.
        """
        per_layer = torch.stack([commitment(z).double() for z in logits])
        if self.config.per_layer:
            confidence = per_layer
        else:
            sizes = torch.tensor([z.shape[0] for z in logits], dtype=torch.float64, device=per_layer.device)
            confidence = ((per_layer * sizes).sum() / sizes.sum()).reshape(1)

        if self.n_updates.item() == 0:
            start = self.config.initial_confidence
            self.confidence_ema.copy_(confidence if start is None else torch.full_like(confidence, start))
        beta = self.config.beta
        self.confidence_ema.mul_(beta).add_((1.0 - beta) * confidence)
        self.n_updates.add_(1)
        return self.temperatures()

    def temperatures(self) -> torch.Tensor:
        """Return tau_b per group (one entry, or one per layer) from the current EMA."""
        return backward_temperature(self.confidence_ema, self.config.tau_max, self.config.tau_min)

    def layer_temperatures(self, n_layers: int) -> list[float]:
        """Return tau_b for each of `n_layers` layers as Python floats."""
        values = self.temperatures().tolist()
        return values if self.config.per_layer else values * n_layers
