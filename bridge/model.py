"""LogicNet: a stack of logic layers with a GroupSum head, trainable under any estimator.

Legend for shapes: B = batch size, N = neurons of a layer, K = classes.
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import torch
from torch import nn

from .cage import CageConfig, CageController
from .estimators import STRAIGHT_THROUGH_ESTIMATORS, check_estimator
from .layers import GroupSum, LogicLayer

# Samples per chunk in hard_counts: 4,096 samples of an 8,000-neuron layer
# keep each uint8 activation tensor at 32 MB.
HARD_EVAL_BATCH = 4096


class LogicNet(nn.Module):
    """Logic layers of the given widths on `n_bits` input bits, then GroupSum over `n_classes`.

    `cage` is a CageConfig (or True for the defaults) and needs a
    straight-through estimator. `seed` fixes the wiring and the initial
    logits across platforms for given numpy and torch versions: numpy's
    PCG64 draws the wiring, and a CPU torch.Generator draws the N(0, 1)
    logits.
    """

    def __init__(
        self,
        n_bits: int,
        widths: tuple[int, ...] | list[int],
        n_classes: int,
        tau_out: float = 10.0,
        estimator: str = "hard_st",
        tau: float = 1.0,
        cage: CageConfig | bool | None = None,
        wiring: str = "random",
        seed: int = 0,
    ):
        super().__init__()
        widths = [int(width) for width in widths]
        check_estimator(estimator)
        check_shape(n_bits, widths, n_classes)
        if cage is True:
            cage = CageConfig()
        if cage and estimator not in STRAIGHT_THROUGH_ESTIMATORS:
            raise ValueError(
                f"CAGE sets the backward temperature of a straight-through estimator; "
                f"use estimator 'hard_st' or 'gumbel_st', not {estimator!r}"
            )

        self.n_bits = n_bits
        self.n_classes = n_classes
        self.settings = {
            "n_bits": n_bits, "widths": widths, "n_classes": n_classes, "tau_out": float(tau_out),
            "estimator": estimator, "tau": float(tau), "cage": asdict(cage) if cage else None,
            "wiring": wiring, "seed": seed,
        }
        layer_seeds = [int(child.generate_state(1)[0]) for child in np.random.SeedSequence(seed).spawn(len(widths))]
        in_dims = [n_bits] + widths[:-1]
        self.layers = nn.ModuleList(
            LogicLayer(in_dim, out_dim, estimator, tau, wiring, layer_seed)
            for in_dim, out_dim, layer_seed in zip(in_dims, widths, layer_seeds)
        )
        self.head = GroupSum(n_classes, tau_out)
        self.cage = CageController(cage, len(widths)) if cage else None

    @property
    def estimator(self) -> str:
        return self.layers[0].estimator

    def forward(self, bits: torch.Tensor) -> torch.Tensor:
        """Map input bits (B, n_bits), bool or float, to class scores (B, K)."""
        x = bits.t().to(self.layers[0].logits.dtype).contiguous()  # (n_bits, B)
        for layer in self.layers:
            x = layer(x)  # (N, B)
        return self.head(x)

    def update_temperatures(self) -> list[float] | None:
        """Advance CAGE by one step and set each layer's tau_b; return them (None without CAGE)."""
        if self.cage is None:
            return None
        self.cage.update([layer.logits for layer in self.layers])
        return self.apply_temperatures()

    def apply_temperatures(self) -> list[float] | None:
        """Set each layer's tau_b from CAGE's current EMA, for example after load_state_dict."""
        if self.cage is None:
            return None
        temperatures = self.cage.layer_temperatures(len(self.layers))
        for layer, tau_b in zip(self.layers, temperatures):
            layer.backward_tau = tau_b
        return temperatures

    @torch.no_grad()
    def hard_counts(self, bits: torch.Tensor, batch_size: int = HARD_EVAL_BATCH) -> torch.Tensor:
        """Evaluate the deployed circuit with Boolean logic; return class counts, int64 (B, K).

        Count k is the number of ones among class k's block of the last
        layer. These are the counts the exported runtime must reproduce.
        """
        chunks = [self._hard_counts_chunk(bits[start:start + batch_size])
                  for start in range(0, bits.shape[0], batch_size)]
        if not chunks:
            return torch.zeros(0, self.n_classes, dtype=torch.int64, device=bits.device)
        return torch.cat(chunks)

    def _hard_counts_chunk(self, bits: torch.Tensor) -> torch.Tensor:
        x = bits.t().to(torch.uint8).contiguous()  # (n_bits, B), values in {0, 1}
        for layer in self.layers:
            x = layer.forward_bool(x)  # (N, B)
        n_neurons, batch = x.shape
        blocks = x.view(self.n_classes, n_neurons // self.n_classes, batch)  # (K, N/K, B)
        return blocks.sum(dim=1, dtype=torch.int64).t()

    def hard_predict(self, bits: torch.Tensor, batch_size: int = HARD_EVAL_BATCH) -> torch.Tensor:
        """Return the deployed circuit's labels, int64 (B,); ties go to the lowest class index."""
        # torch.argmax returns the first maximal index, the documented tie rule.
        return self.hard_counts(bits, batch_size).argmax(dim=1)

    def gate_ids(self) -> list[torch.Tensor]:
        """Return each layer's deployed gate ids, int64 (N,)."""
        return [layer.gate_ids() for layer in self.layers]


def check_shape(n_bits: int, widths: list[int], n_classes: int) -> None:
    if n_bits < 1:
        raise ValueError(f"n_bits must be positive, got {n_bits}")
    if not widths or min(widths) < 1:
        raise ValueError(f"widths must be one or more positive layer widths, got {widths}")
    if n_classes < 1:
        raise ValueError(f"n_classes must be positive, got {n_classes}")
    if widths[-1] % n_classes:
        raise ValueError(
            f"the last layer's width {widths[-1]} must be a multiple of n_classes {n_classes}, "
            "because GroupSum gives each class an equal block"
        )
