"""One training step (forward, backward, Adam) of a LogicNet under each estimator.

The step matches lgnrt.bridge.benchmark.measure_step_time: CAGE is on for
the straight-through estimators, batch 128 of random bits. By default only
the small network is timed. Set LGNRT_BENCH_TRAIN_SIZES to a comma-separated
list of sizes from common.SIZES (for example "small,mnist") to add others;
LGNRT_BENCH_QUICK=1 keeps only "small". Target (in docs/benchmarks.md, not
asserted): a 6 x 8000 network at batch 128 on 2 threads <= 60 ms per step.
"""

from __future__ import annotations

import os

from .common import QUICK, SIZES

ESTIMATORS = ["soft_mix", "soft_gumbel", "hard_st", "gumbel_st"]
BATCH_SIZE = 128


def train_sizes() -> list[str]:
    """Return the sizes LGNRT_BENCH_TRAIN_SIZES selects, "small" by default."""
    if QUICK:
        return ["small"]
    names = [name.strip() for name in os.environ.get("LGNRT_BENCH_TRAIN_SIZES", "small").split(",")]
    unknown = [name for name in names if name not in SIZES]
    if unknown:
        raise ValueError(f"invalid LGNRT_BENCH_TRAIN_SIZES entry {unknown[0]!r}. "
                         f"Set it to a comma-separated list of sizes from: {', '.join(SIZES)}")
    return names


class TrainStep:
    """A training step of the bridge's LogicNet on random input bits."""

    params = [train_sizes(), ESTIMATORS, [1, 2]]
    param_names = ["size", "estimator", "threads"]
    timeout = 600

    def setup(self, size, estimator, threads):
        try:
            import torch
            import torch.nn.functional as F
            from lgnrt.bridge.model import LogicNet
        except ImportError as error:
            raise NotImplementedError(f"training benchmarks need torch: {error}") from error
        self.torch = torch
        self.cross_entropy = F.cross_entropy
        self.saved_threads = torch.get_num_threads()
        torch.set_num_threads(threads)

        shape = SIZES[size]
        generator = torch.Generator().manual_seed(0)
        self.model = LogicNet(shape.n_bits, shape.widths, shape.n_classes, tau_out=30.0,
                              estimator=estimator, cage=estimator.endswith("_st"))
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=0.01)
        self.bits = torch.rand(BATCH_SIZE, shape.n_bits, generator=generator) > 0.5
        self.labels = torch.randint(0, shape.n_classes, (BATCH_SIZE,), generator=generator)
        # Untimed steps let Adam allocate its state and torch warm its caches.
        for _ in range(2):
            self.time_step(size, estimator, threads)

    def teardown(self, size, estimator, threads):
        self.torch.set_num_threads(self.saved_threads)

    def time_step(self, size, estimator, threads):
        self.model.update_temperatures()
        loss = self.cross_entropy(self.model(self.bits), self.labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
