"""The four gate-selection estimators: how a neuron's 16 logits become gate weights.

Each function maps logits z of shape (n_neurons, 16) to weights w of the same
shape. A layer then mixes the relaxed gates with them, so the forward value
of w decides what the layer computes and the gradient of w decides how z
learns:

| estimator   | forward value of w           | gradient of w                   | noise |
|-------------|------------------------------|---------------------------------|-------|
| soft_mix    | softmax(z / tau)             | exact                           | no    |
| soft_gumbel | softmax((z + G) / tau)       | exact                           | yes   |
| hard_st     | onehot(argmax z)             | of softmax(z / tau_b)           | no    |
| gumbel_st   | onehot(argmax (z + G))       | of softmax((z + G) / tau_b)     | yes   |

G is Gumbel(0, 1) noise of shape (n_neurons, 16), drawn afresh on every
call, so one draw is shared by every sample of a batch. tau_b, the backward
temperature of the straight-through estimators, is tau unless CAGE sets it.
Soft-Mix at tau = 1 is the original difflogic training.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lgnrt.gates import N_GATES

ESTIMATORS = ("soft_mix", "soft_gumbel", "hard_st", "gumbel_st")
STRAIGHT_THROUGH_ESTIMATORS = frozenset({"hard_st", "gumbel_st"})
NOISY_ESTIMATORS = frozenset({"soft_gumbel", "gumbel_st"})


def check_estimator(estimator: str) -> str:
    """Return `estimator` if it names one of ESTIMATORS, else raise ValueError."""
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown estimator {estimator!r}; expected one of {', '.join(ESTIMATORS)}")
    return estimator


def check_temperature(value: float, name: str) -> float:
    """Return `value` as a float if it is finite and positive, else raise ValueError."""
    value = float(value)
    if not (value > 0 and value < float("inf")):
        raise ValueError(f"{name} must be a finite positive number, got {value}")
    return value


def gumbel_noise(like: torch.Tensor) -> torch.Tensor:
    """Draw i.i.d. Gumbel(0, 1) noise, -log(-log U) with U ~ Uniform(0, 1), shaped like `like`.

    torch.rand is about 8 times faster than Tensor.exponential_ on CPU
    (measured with torch 2.13, one thread of an AMD EPYC VM), which matters
    at one draw per gate logit and step.
    """
    uniform = torch.rand_like(like)
    # rand may return exactly 0, and the floor keeps both logarithms finite.
    uniform.clamp_min_(torch.finfo(like.dtype).tiny)
    return uniform.log_().neg_().log_().neg_()


def hard_weights(logits: torch.Tensor) -> torch.Tensor:
    """Return onehot(argmax z): the deployed gate of every neuron, shape (n_neurons, 16)."""
    return F.one_hot(logits.argmax(dim=1), N_GATES).to(logits.dtype)


def straight_through(selected: torch.Tensor, probabilities: torch.Tensor) -> torch.Tensor:
    """Return onehot(selected) in the forward pass with the gradient of `probabilities`.

    The surrogate enters as (p - sg(p)), whose forward value is exactly 0, so
    the forward value is exactly the one-hot and the deployed circuit's
    outputs are reproduced bit for bit. The textbook onehot + p - sg(p)
    rounds 1 + p - p and can miss 1 by one ulp.
    """
    one_hot = F.one_hot(selected, N_GATES).to(probabilities.dtype)
    return one_hot + (probabilities - probabilities.detach())


def gate_weights(
    logits: torch.Tensor, estimator: str, tau: float, backward_tau: float | None = None
) -> torch.Tensor:
    """Return the training-mode gate weights of one layer, shape (n_neurons, 16).

    `tau` is the forward temperature of the soft estimators and the default
    backward temperature of the straight-through ones; `backward_tau`
    (CAGE's tau_b) overrides the latter.
    """
    if estimator == "soft_mix":
        return torch.softmax(logits / tau, dim=1)
    if estimator == "soft_gumbel":
        return torch.softmax((logits + gumbel_noise(logits)) / tau, dim=1)

    tau_b = tau if backward_tau is None else backward_tau
    if estimator == "hard_st":
        return straight_through(logits.argmax(dim=1), torch.softmax(logits / tau_b, dim=1))
    if estimator == "gumbel_st":
        perturbed = logits + gumbel_noise(logits)
        return straight_through(perturbed.argmax(dim=1), torch.softmax(perturbed / tau_b, dim=1))
    raise ValueError(f"unknown estimator {estimator!r}; expected one of {', '.join(ESTIMATORS)}")
