"""End-to-end prediction: uint8 pixels in, int64 labels out (Model.predict).

Targets (listed in docs/benchmarks.md, not asserted here): on the
MNIST-sized network at batches of 16,384 or more, <= 100 ns per sample on
1 thread and 2 threads >= 1.8x the speed of 1; batch 1 <= 50 us. asv
reports seconds per call, so ns per sample is the time divided by the
batch.
"""

from __future__ import annotations

from .common import SIZES, cached_model, grid, peak_rss_increase, random_pixels

# The grid crosses 64 because the runtime packs 64 samples into each 64-bit
# word and hands each thread tiles of up to 16 words (1,024 samples). Batch
# 1 runs one word with 63 idle lanes (the latency case) and 64 fills that
# word exactly. 4,096 gives each of 2 threads a few tiles, and 65,536 gives
# them many, which is where throughput is measured.
BATCHES = [1, 64, 4096, 65536]
THREADS = [1, 2]


class Predict:
    """Model.predict across network sizes, batch sizes and thread counts."""

    params = [grid(list(SIZES), ["small"]), BATCHES, THREADS]
    param_names = ["size", "batch", "threads"]
    timeout = 300

    def setup(self, size, batch, threads):
        self.model = cached_model(size)
        self.features = random_pixels(batch, SIZES[size].n_features)
        # The first call of a process starts the OpenMP thread pool.
        self.model.predict(self.features, threads=threads)

    def time_predict(self, size, batch, threads):
        self.model.predict(self.features, threads=threads)


class PredictMillion:
    """Memory of predicting a large batch in one call.

    Besides the input, predict allocates the int64 labels (8 bytes per
    sample) and one scratch tile per thread, so its extra memory should
    grow with the batch only by the labels. peakmem_predict includes the
    input array (784 bytes per sample), and track_peak_increase_bytes
    leaves it out.
    """

    params = [grid([1_000_000], [100_000])]
    param_names = ["n_samples"]
    timeout = 300

    def setup(self, n_samples):
        self.model = cached_model(grid("mnist", "small"))
        self.features = random_pixels(n_samples, self.model.n_features)

    def peakmem_predict(self, n_samples):
        self.model.predict(self.features)

    def track_peak_increase_bytes(self, n_samples):
        return peak_rss_increase(lambda: self.model.predict(self.features))

    track_peak_increase_bytes.unit = "bytes"
