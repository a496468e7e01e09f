"""Serving API: load a network, optimise and compile it, predict with the C kernels.

The compiled extension lgnrt._kernels is imported on first use, so
`import lgnrt` stays cheap and works without it.
"""

from __future__ import annotations

import os
import threading

import numpy as np

from .errors import InputError
from .lgn_format import load_network
from .network import Network, check_features, validate_network
from .passes import PASS_ORDER, compile_program, graph_from_network, run_passes
from .passes import load_kernels as _kernels

# The slot rows of one thread's tile should fit the level-2 cache, because
# random wiring reads rows all over the slot buffer. Within that, wider
# tiles win: on a 2-core AMD EPYC (Zen 4, 1 MiB L2) with the unoptimised
# 784 -> 6 x 8000 network of bench/quick_runtime.py, 8-word tiles (slots
# filling 56% of L2) ran about 20% faster than 4-word tiles (28%), best of
# 12 runs. The fallback is used when the system does not report its L2
# size. NOTE: 512 KiB is an assumption about typical current CPUs.
_FALLBACK_L2_BYTES = 512 * 1024
_SLOT_CACHE_FRACTION = 1.0

_isa_lock = threading.Lock()
_forced_isa: str | None = None


def available_cores() -> int:
    """Return the number of CPU cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def set_kernel_isa(name: str | None) -> None:
    """Force a kernel path ("portable", "avx2", "avx512"), or pass None or "auto" to detect.

    Affects every Model in the process from the next call on; tests use it
    to run each path this CPU supports.
    """
    global _forced_isa
    kernels = _kernels()
    if name is None or name == "auto":
        with _isa_lock:
            _forced_isa = None
        return
    if name not in kernels.ISA_CODES:
        raise ValueError(f"unknown kernel path {name!r}; expected one of "
                         f"{', '.join(kernels.ISA_CODES)} or 'auto'")
    supported = kernels.supported_isas()
    if name not in supported:
        raise ValueError(f"kernel path {name!r} needs CPU features this machine lacks; "
                         f"supported here: {', '.join(supported)}")
    with _isa_lock:
        _forced_isa = name


def current_isa() -> str:
    """Return the kernel path the next call will use."""
    forced = _forced_isa
    return forced if forced is not None else _kernels().detect_isa()


def kernel_info() -> dict:
    """Describe the kernel paths: the one in use, the detected one and all supported ones."""
    kernels = _kernels()
    return {
        "isa": current_isa(),
        "detected": kernels.detect_isa(),
        "supported": kernels.supported_isas(),
        "forced": _forced_isa is not None,
        "tile_words": list(kernels.TILE_WORDS),
        "l2_cache_bytes": kernels.l2_cache_bytes(),
        "cores": available_cores(),
    }


def load(path, *, optimize: bool = True, passes=None) -> "Model":
    """Read a .lgn file and compile it for serving.

    optimize=False skips every graph pass; `passes` selects some of
    "fold", "not", "merge" and "dead" (they always run in that order) and
    overrides `optimize`.
    """
    return Model(load_network(path), optimize=optimize, passes=passes)


def _check_threads(threads) -> int:
    if threads is None:
        return available_cores()
    if isinstance(threads, (bool, np.bool_)) or not isinstance(threads, (int, np.integer)):
        raise InputError(f"threads must be a positive integer or None, got {threads!r}")
    if threads < 1:
        raise InputError(f"threads must be a positive integer or None, got {threads}; "
                         "pass 1 for single-threaded use")
    return int(threads)


def _round_up_to_float32(values: np.ndarray) -> np.ndarray:
    """Convert to float32 rounding towards +inf.

    For a float32 threshold t and any real x, x > t exactly when
    round_up(x) > t: round_up(x) >= x, and if x <= t then t is a float32 at
    or above x, so round_up(x) <= t. Comparing the rounded values in
    float32 therefore matches the float64 comparison of the reference.
    """
    wide = np.asarray(values, dtype=np.float64)
    with np.errstate(over="ignore"):
        narrow = wide.astype(np.float32)
    below = narrow.astype(np.float64) < wide
    narrow[below] = np.nextafter(narrow[below], np.float32(np.inf))
    return narrow


def prepare_features(features, n_features: int) -> np.ndarray:
    """Validate features and return a uint8 or float32 array the kernels accept.

    uint8 and float32 pass through, copied only when the feature axis is
    strided, and bool is viewed as uint8. Every other dtype goes through
    float64, as in the reference evaluator, and is rounded up to float32.
    """
    array = check_features(features, n_features)
    if array.dtype == np.bool_:
        array = array.view(np.uint8)
    elif array.dtype not in (np.uint8, np.float32):
        array = _round_up_to_float32(array)
    if array.shape[0] and array.strides[1] != array.itemsize:
        array = np.ascontiguousarray(array)
    return array


class Model:
    """A network compiled for bit-sliced evaluation on the CPU.

    A Model is immutable after construction and keeps no scratch memory
    between calls, so several Python threads may call it at once.
    """

    def __init__(self, network: Network, *, optimize: bool = True, passes=None):
        validate_network(network)
        if passes is None:
            passes = PASS_ORDER if optimize else ()
        self.network = network
        graph = graph_from_network(network)
        self._graph, self._pass_report = run_passes(graph, passes)
        self._compiled = compile_program(self._graph, network.n_features)
        compiled = self._compiled
        kernels = _kernels()
        arrays = {name: getattr(compiled, name) for name in kernels.ARRAY_TYPES}
        self._program = kernels.Program(arrays, compiled.n_slots, network.n_features)
        self._max_tile_words = self._fit_tile_words()

    @classmethod
    def from_network(cls, network: Network, optimize: bool = True, *, passes=None) -> "Model":
        """Compile an in-memory Network; see `load` for `optimize` and `passes`."""
        return cls(network, optimize=optimize, passes=passes)

    # -- attributes of the network ------------------------------------------

    @property
    def n_features(self) -> int:
        return self.network.n_features

    @property
    def n_classes(self) -> int:
        return self.network.n_classes

    @property
    def class_names(self) -> list[str] | None:
        return self.network.class_names

    @property
    def tau(self) -> float:
        return self.network.tau

    @property
    def training(self) -> dict:
        return self.network.training

    def __repr__(self) -> str:
        return (f"Model(n_features={self.n_features}, n_classes={self.n_classes}, "
                f"gates={self._graph.n_gates}/{self.network.n_gates})")

    # -- evaluation ------------------------------------------------------------

    def predict(self, features, threads=None) -> np.ndarray:
        """Return the label of each sample, int64 (n_samples,); ties go to the lowest class."""
        _, labels = self._run(features, threads, want_counts=False)
        return labels

    def scores(self, features, threads=None) -> np.ndarray:
        """Return each class's count of active outputs, int32 (n_samples, n_classes).

        Divide by `tau` for the GroupSum scores of training; the argmax is
        the same.
        """
        counts, _ = self._run(features, threads, want_counts=True)
        return counts

    def _run(self, features, threads, want_counts: bool):
        n_threads = _check_threads(threads)
        array = prepare_features(features, self.n_features)
        kernels = _kernels()
        isa = kernels.ISA_CODES[current_isa()]
        tile_words = self.tile_words(array.shape[0], n_threads)
        return kernels.run(self._program, array, isa, tile_words, n_threads, want_counts)

    def tile_words(self, n_samples: int, threads: int) -> int:
        """Return the tile width in 64-bit words for a batch.

        The smallest width that gives each thread one tile, capped by the
        width whose slot rows fit the cache budget: a batch of one sample
        runs one word per slot, a large batch the widest cached tile.
        """
        words = -(-n_samples // 64)
        per_thread = max(1, -(-words // threads))
        width = 1
        while width < per_thread and width < self._max_tile_words:
            width *= 2
        return width

    def _fit_tile_words(self) -> int:
        budget = (_kernels().l2_cache_bytes() or _FALLBACK_L2_BYTES) * _SLOT_CACHE_FRACTION
        row_count = self._program.n_slots + 1
        fitting = [t for t in _kernels().TILE_WORDS if row_count * t * 8 <= budget]
        return max(fitting) if fitting else 1

    # -- introspection -----------------------------------------------------------

    def info(self) -> dict:
        """Describe the compiled model: gate counts per pass, layout and kernel path."""
        compiled = self._compiled
        return {
            "n_features": self.n_features,
            "n_classes": self.n_classes,
            "n_input_bits": self.network.encoder.n_bits,
            "input_bits_used": int(np.count_nonzero(compiled.lane_slot < compiled.n_slots)),
            "layers": len(self.network.layers),
            "widths": [layer.width for layer in self.network.layers],
            "gates_before": self.network.n_gates,
            "gates_after": self._graph.n_gates,
            "passes": [dict(entry) for entry in self._pass_report],
            "ops": compiled.n_ops,
            "gate_runs": int(compiled.runs.shape[0]),
            "slots": compiled.n_slots,
            "input_chunks": compiled.n_chunks,
            "kernel": current_isa(),
            "tile_words_max": self._max_tile_words,
            "tile_samples_max": 64 * self._max_tile_words,
            "scratch_bytes_per_thread": self._program.scratch_bytes(self._max_tile_words),
        }
