"""The gate program alone: ns per executed gate per 64 samples (one 64-bit word).

Target (in docs/benchmarks.md, not asserted): <= 0.25 ns per gate per 64
samples. There is no public entry point that runs only the gates, so this
module calls the extension's timing helper lgnrt._kernels.time_program
on the model's compiled program (Model._program). Both are internal and
may change with the runtime. The slots hold whatever the scratch buffer
starts with, which does not change the work per gate.
"""

from __future__ import annotations

import statistics

from lgnrt import _kernels

from .common import SIZES, cached_model, grid

ISAS = list(_kernels.ISA_CODES)

# Runs of the program per timing in track_ns_per_gate, so that one timing
# takes milliseconds rather than microseconds. The median of TIMINGS timings
# is reported.
PROGRAM_RUNS = 50
TIMINGS = 5


class LayerKernel:
    """The compiled gate program on one tile as wide as predict uses for large batches.

    That width is Model.info()["tile_words_max"], the widest tile whose
    slot rows fit the cache budget of lgnrt.model.
    """

    params = [grid(list(SIZES), ["small"]), ISAS]
    param_names = ["size", "isa"]

    def setup(self, size, isa):
        if isa not in _kernels.supported_isas():
            raise NotImplementedError(f"this CPU does not support the {isa} kernel path")
        model = cached_model(size)
        info = model.info()
        self.program = model._program
        self.isa_code = _kernels.ISA_CODES[isa]
        self.tile_words = info["tile_words_max"]
        self.gates = info["ops"]

    def time_program_tile(self, size, isa):
        _kernels.time_program(self.program, self.isa_code, self.tile_words, 1)

    def track_ns_per_gate(self, size, isa):
        seconds = statistics.median(
            _kernels.time_program(self.program, self.isa_code, self.tile_words, PROGRAM_RUNS)
            for _ in range(TIMINGS))
        return seconds / (self.gates * self.tile_words) * 1e9

    track_ns_per_gate.unit = "ns per gate per 64 samples"
