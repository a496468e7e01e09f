"""Loading a .lgn file: read, validate, optimise (graph passes) and compile.

Target (in docs/benchmarks.md, not asserted): lgnrt.load of the
MNIST-sized network <= 50 ms. time_load_network and time_compile split
time_load into its reading and its compiling halves.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import lgnrt

from .common import SIZES, cached_network, grid, peak_rss_increase


class Load:
    """lgnrt.load and its parts on a saved random network of each size."""

    params = [grid(list(SIZES), ["small"])]
    param_names = ["size"]

    def setup(self, size):
        self.folder = tempfile.mkdtemp(prefix="lgnrt-bench-")
        self.path = os.path.join(self.folder, f"{size}.lgn")
        self.network = cached_network(size)
        lgnrt.save_network(self.network, self.path)

    def teardown(self, size):
        shutil.rmtree(self.folder, ignore_errors=True)

    def time_load(self, size):
        lgnrt.load(self.path)

    def time_load_without_passes(self, size):
        lgnrt.load(self.path, optimize=False)

    def time_load_network(self, size):
        lgnrt.load_network(self.path)

    def time_compile(self, size):
        lgnrt.Model.from_network(self.network)

    def track_file_bytes(self, size):
        return os.path.getsize(self.path)

    track_file_bytes.unit = "bytes"

    def peakmem_load(self, size):
        lgnrt.load(self.path)

    def track_load_peak_increase_bytes(self, size):
        return peak_rss_increase(lambda: lgnrt.load(self.path))

    track_load_peak_increase_bytes.unit = "bytes"
