"""Binarising and packing uint8 pixels into 64-sample words.

lgnrt has no public entry point that only packs: Model.predict binarises,
packs, runs the gates and counts in one call. These benchmarks therefore
time predict on a one-layer network that reads every input bit once
(common.packing_network), so that packing dominates. Its one gate layer
costs half a gate per input bit, and counting reads half a bit per input
bit, so the figure is an upper bound on the packing cost.
"""

from __future__ import annotations

import lgnrt

from .common import grid, packing_network, random_pixels

# (features, thresholds per feature): MNIST-like 28 x 28 pixels with one
# threshold, CIFAR-like 32 x 32 x 3 pixels with three.
LAYOUTS = {"mnist": (784, 1), "cifar": (3072, 3)}


class PackDominatedPredict:
    """Model.predict on the packing network, single thread."""

    params = [grid(list(LAYOUTS), ["mnist"]), grid([64, 4096, 65536], [64, 4096])]
    param_names = ["layout", "batch"]

    def setup(self, layout, batch):
        n_features, thresholds = LAYOUTS[layout]
        self.model = lgnrt.Model.from_network(packing_network(n_features, thresholds))
        self.features = random_pixels(batch, n_features)

    def time_predict(self, layout, batch):
        self.model.predict(self.features, threads=1)
