"""Torch modules of a logic gate network: the logic layer, its wiring and the GroupSum head.

Activations flow neuron-major, shape (N, B), so a layer's wiring gathers
whole contiguous rows. Legend: B = batch size, N = neurons of a layer,
I = outputs of the previous layer (or input bits), K = classes.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from lgnrt.gates import N_GATES, RELAXATION

from .estimators import check_estimator, check_temperature, gate_weights, hard_weights

WIRINGS = ("random", "unique")


# ---------------------------------------------------------------------------
# Wiring
# ---------------------------------------------------------------------------

def random_wiring(in_dim: int, out_dim: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draw wires so every input feeds floor or ceil(2 * out_dim / in_dim) gate inputs.

    The 2 * out_dim gate inputs take whole permutations of range(in_dim) in
    turn, then one shuffle deals them out to the a and b sides, so a == b
    may happen. Returns int64 arrays wire_a and wire_b of shape (out_dim,).
    """
    n_rounds = -(-2 * out_dim // in_dim)  # ceil division
    sources = np.concatenate([rng.permutation(in_dim) for _ in range(n_rounds)])[: 2 * out_dim]
    sources = rng.permutation(sources)
    return sources[:out_dim].astype(np.int64), sources[out_dim:].astype(np.int64)


def max_unique_pairs(in_dim: int) -> int:
    """Return the number of distinct unordered pairs {a, b}, a != b, of `in_dim` inputs."""
    return in_dim * (in_dim - 1) // 2


def unique_wiring(in_dim: int, out_dim: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draw `out_dim` distinct unordered pairs {a, b} with a != b, each in a random order.

    Pairs are sampled without replacement by their index in the row-major
    list of pairs (0, 1), (0, 2), ..., (I-2, I-1), so every count up to
    I * (I - 1) / 2 works, that maximum included. Input usage is not
    balanced the way `random_wiring` balances it.
    """
    n_pairs = max_unique_pairs(in_dim)
    if out_dim > n_pairs:
        raise ValueError(
            f"'unique' wiring needs out_dim <= {n_pairs} distinct pairs of {in_dim} inputs, "
            f"got out_dim {out_dim}; use 'random' wiring or a wider previous layer"
        )
    pair_index = rng.choice(n_pairs, size=out_dim, replace=False)
    # first_pair[i] = index of pair (i, i + 1), the first pair whose smaller input is i.
    smaller = np.arange(in_dim, dtype=np.int64)
    first_pair = smaller * (2 * in_dim - smaller - 1) // 2
    low = np.searchsorted(first_pair, pair_index, side="right") - 1
    high = pair_index - first_pair[low] + low + 1
    swap = rng.random(out_dim) < 0.5
    wire_a = np.where(swap, high, low).astype(np.int64)
    wire_b = np.where(swap, low, high).astype(np.int64)
    return wire_a, wire_b


def make_wiring(
    scheme: str, in_dim: int, out_dim: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Draw a layer's wiring by scheme name ("random" or "unique")."""
    if in_dim < 1 or out_dim < 1:
        raise ValueError(f"layer dimensions must be positive, got in_dim {in_dim}, out_dim {out_dim}")
    if scheme == "random":
        return random_wiring(in_dim, out_dim, rng)
    if scheme == "unique":
        return unique_wiring(in_dim, out_dim, rng)
    raise ValueError(f"unknown wiring {scheme!r}; expected one of {', '.join(WIRINGS)}")


# ---------------------------------------------------------------------------
# Modules
# ---------------------------------------------------------------------------

class LogicLayer(nn.Module):
    """A layer of `out_dim` two-input gates, each a learned choice among the 16 gates.

    Neuron i reads inputs wire_a[i] and wire_b[i] and has logits z[i] of
    shape (16,). With mixing weights w = estimator(z), shape (N, 16), the
    layer computes the four coefficients e = w @ RELAXATION, shape (N, 4),
    and outputs e0 + e1 a + e2 b + e3 ab, which is sum_g w_g gate_g(a, b)
    without materialising the 16 candidate outputs. In training mode w comes
    from the estimator; in eval mode w = onehot(argmax z), the deployed
    gates. The wiring is stored in buffers, so state_dict saves it.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        estimator: str = "soft_mix",
        tau: float = 1.0,
        wiring: str = "random",
        seed: int = 0,
    ):
        super().__init__()
        self.in_dim = in_dim
        self.out_dim = out_dim
        self.estimator = check_estimator(estimator)
        self.tau = check_temperature(tau, "tau")
        # CAGE's tau_b; None makes the straight-through estimators use tau.
        self.backward_tau: float | None = None

        rng = np.random.default_rng(seed)
        wire_a, wire_b = make_wiring(wiring, in_dim, out_dim, rng)
        self.register_buffer("wire_a", torch.from_numpy(wire_a))
        self.register_buffer("wire_b", torch.from_numpy(wire_b))
        generator = torch.Generator().manual_seed(int(rng.integers(2**63)))
        self.logits = nn.Parameter(torch.randn(out_dim, N_GATES, generator=generator))
        # Derived from the gate table, so it stays out of state_dict.
        relaxation = torch.tensor(RELAXATION, dtype=torch.float32)
        self.register_buffer("relaxation", relaxation, persistent=False)

    def mixing_weights(self) -> torch.Tensor:
        """Return the gate weights this mode uses, shape (N, 16)."""
        if not self.training:
            return hard_weights(self.logits)
        return gate_weights(self.logits, self.estimator, self.tau, self.backward_tau)

    def gate_ids(self) -> torch.Tensor:
        """Return the deployed gate of every neuron, argmax z, int64 of shape (N,)."""
        return self.logits.detach().argmax(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map activations (I, B) to (N, B)."""
        coefficients = (self.mixing_weights() @ self.relaxation).unsqueeze(-1)  # (N, 4, 1)
        e0, e1, e2, e3 = coefficients.unbind(dim=1)  # each (N, 1)
        a = x.index_select(0, self.wire_a)  # (N, B)
        b = x.index_select(0, self.wire_b)  # (N, B)
        return torch.addcmul(e0, e2, b) + a * torch.addcmul(e1, e3, b)

    @torch.no_grad()
    def forward_bool(self, x: torch.Tensor) -> torch.Tensor:
        """Evaluate the deployed gates with integer logic: uint8 (I, B) in {0, 1} to uint8 (N, B).

        The output is bit (3 - 2a - b) of the gate id, the truth-table rule
        that defines gate ids, so no floating point is involved.
        """
        gates = self.gate_ids().to(torch.uint8).unsqueeze(1)  # (N, 1)
        a = x.index_select(0, self.wire_a)  # (N, B)
        b = x.index_select(0, self.wire_b)  # (N, B)
        shift = 3 - (2 * a + b)
        return (gates >> shift) & 1

    def extra_repr(self) -> str:
        return f"in_dim={self.in_dim}, out_dim={self.out_dim}, estimator={self.estimator!r}, tau={self.tau}"


class GroupSum(nn.Module):
    """Class scores from the last layer: K contiguous blocks of N/K neurons, each summed, over tau."""

    def __init__(self, n_classes: int, tau: float = 1.0):
        super().__init__()
        self.n_classes = n_classes
        self.tau = check_temperature(tau, "tau_out")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map activations (N, B) to scores (B, K)."""
        n_neurons, batch = x.shape
        blocks = x.view(self.n_classes, n_neurons // self.n_classes, batch)  # (K, N/K, B)
        return blocks.sum(dim=1).t() / self.tau

    def extra_repr(self) -> str:
        return f"n_classes={self.n_classes}, tau={self.tau}"
