"""Time one training step (forward, backward, Adam) of a LogicNet on random bits.

    python -m lgnrt.bridge.benchmark --widths 8000,8000,8000,8000,8000,8000 --threads 2

prints the median step time in milliseconds over `--steps` steps that
follow `--warmup` untimed ones.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from .estimators import ESTIMATORS
from .model import LogicNet


def measure_step_time(
    widths: tuple[int, ...] = (8000,) * 6,
    n_bits: int = 784,
    n_classes: int = 10,
    batch_size: int = 128,
    estimator: str = "hard_st",
    cage: bool = True,
    steps: int = 20,
    warmup: int = 5,
    device: str = "cpu",
) -> dict:
    """Return the median, min and max step time in milliseconds, with the settings used."""
    generator = torch.Generator().manual_seed(0)
    model = LogicNet(n_bits, widths, n_classes, tau_out=30.0, estimator=estimator,
                     cage=cage and estimator.endswith("_st")).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    bits = (torch.rand(batch_size, n_bits, generator=generator) > 0.5).to(device)
    labels = torch.randint(0, n_classes, (batch_size,), generator=generator).to(device)

    times_ms = []
    for step in range(warmup + steps):
        start = time.perf_counter()
        model.update_temperatures()
        loss = F.cross_entropy(model(bits), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device != "cpu":
            torch.cuda.synchronize()
        if step >= warmup:
            times_ms.append(1000.0 * (time.perf_counter() - start))
    return {
        "median_ms": statistics.median(times_ms),
        "min_ms": min(times_ms),
        "max_ms": max(times_ms),
        "widths": list(widths), "n_bits": n_bits, "batch_size": batch_size, "estimator": estimator,
        "threads": torch.get_num_threads(), "device": device, "steps": steps,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Median training step time of a LogicNet.")
    parser.add_argument("--widths", default="8000,8000,8000,8000,8000,8000", help="layer widths, comma-separated")
    parser.add_argument("--n-bits", type=int, default=784, help="input bits")
    parser.add_argument("--batch-size", type=int, default=128, help="samples per step")
    parser.add_argument("--estimator", default="all", choices=("all",) + ESTIMATORS, help="estimator to time")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps before timing")
    parser.add_argument("--device", default="cpu", help="torch device")
    arguments = parser.parse_args(argv)
    if arguments.threads is not None:
        torch.set_num_threads(arguments.threads)
    widths = tuple(int(width) for width in arguments.widths.split(","))
    estimators = ESTIMATORS if arguments.estimator == "all" else (arguments.estimator,)
    for estimator in estimators:
        result = measure_step_time(widths, arguments.n_bits, batch_size=arguments.batch_size,
                                   estimator=estimator, steps=arguments.steps, warmup=arguments.warmup,
                                   device=arguments.device)
        print(f"{estimator:12s} median {result['median_ms']:7.1f} ms  (min {result['min_ms']:.1f}, "
              f"max {result['max_ms']:.1f}) over {arguments.steps} steps, {result['threads']} threads, "
              f"batch {arguments.batch_size}, widths {arguments.widths}")


if __name__ == "__main__":
    main()
