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
from .network import Network, validate_network
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


# The kernels are compute-bound, so threads beyond the available cores add
# no speed. The cap turns a mistyped count into an InputError before OpenMP
# tries to start that many threads: libgomp ends the process when it cannot
# create a thread.
MAX_THREADS = 1024

# Values converted at a time when the input is not already uint8 or float32
# with a contiguous feature axis. A 2**19-value chunk needs about
# 11 MiB of temporaries (float64 copy, float32 result, rounding masks). A
# chunk grows beyond that only to give every thread one whole tile, so the
# memory beyond input and outputs does not grow with the batch.
_CONVERT_CHUNK_VALUES = 1 << 19

# Kinds numpy counts as numbers that features may have: bool, unsigned and
# signed integers, floats. timedelta64 is excluded although numpy's type
# tree files it under the integers.
_FEATURE_KINDS = "buif"


def _check_threads(threads) -> int:
    if threads is None:
        return available_cores()
    if isinstance(threads, (bool, np.bool_)) or not isinstance(threads, (int, np.integer)):
        raise InputError(f"threads must be a positive integer or None, got {threads!r}; "
                         "pass None to use every available core")
    if threads < 1:
        raise InputError(f"threads must be a positive integer or None, got {threads}; "
                         "pass 1 for single-threaded use")
    if threads > MAX_THREADS:
        raise InputError(f"threads must be at most {MAX_THREADS}, got {threads}; "
                         f"this process may run on {available_cores()} cores, "
                         "so pass None to use all of them")
    return int(threads)


def _round_up_to_float32(values: np.ndarray) -> np.ndarray:
    """Convert to float32 rounding towards +inf.

    For a float32 threshold t and any real x, x > t exactly when
    round_up(x) > t: round_up(x) >= x, and if x <= t then t is a float32 at
    or above x, so round_up(x) <= t. Comparing the rounded values in
    float32 therefore matches the float64 comparison of the reference.
    """
    # longdouble values beyond the float64 range become infinities, which
    # compare as the original values do against any float32 threshold.
    with np.errstate(over="ignore"):
        wide = np.asarray(values, dtype=np.float64)
        narrow = wide.astype(np.float32)
    below = narrow.astype(np.float64) < wide
    narrow[below] = np.nextafter(narrow[below], np.float32(np.inf))
    return narrow


def as_feature_array(features, n_features: int) -> np.ndarray:
    """Return `features` as a 2-D array after checking its dtype and shape.

    Values are not checked here: `check_finite` does that chunk by chunk,
    so that a large float batch needs no whole-batch temporary. A vector of
    `n_features` values is one sample.
    """
    try:
        array = np.asarray(features)
    except (ValueError, TypeError) as error:
        raise InputError(
            f"features could not be converted to an array ({error}); pass a 2-D array "
            f"or a list of rows with {n_features} numbers each"
        ) from None
    if array.dtype.kind not in _FEATURE_KINDS:
        raise InputError(
            f"features must be a numeric array of bool, integer or float values, got dtype "
            f"{array.dtype}; convert them first, preferably to uint8 or float32"
        )
    if array.ndim == 1 and array.shape[0] == n_features:
        array = array[np.newaxis, :]
    if array.ndim != 2:
        raise InputError(
            f"features must have shape (n_samples, {n_features}), or ({n_features},) for one "
            f"sample, got shape {array.shape}; reshape them to one row per sample"
        )
    if array.shape[1] != n_features:
        raise InputError(
            f"wrong number of features: the model expects {n_features} per sample, "
            f"got {array.shape[1]} (input shape {array.shape}); pass the features the model "
            "was trained on, in the same order"
        )
    return array


def check_finite(array: np.ndarray, first_sample: int = 0) -> None:
    """Raise InputError naming the first NaN or infinity in a float array.

    `first_sample` is the batch index of the array's first row, so that a
    chunk reports the sample's index in the whole batch.
    """
    if array.dtype.kind != "f" or array.size == 0:
        return
    rows = _rows_per_chunk(array.shape[1])
    for start in range(0, array.shape[0], rows):
        part = array[start:start + rows]
        if np.isfinite(part).all():
            continue
        row, column = np.argwhere(~np.isfinite(part))[0]
        sample = first_sample + start + int(row)
        raise InputError(
            f"features contain NaN or infinity at sample {sample}, feature {int(column)} "
            f"(value {part[row, column]}); replace them before predicting"
        )


def _rows_per_chunk(n_features: int) -> int:
    return max(1, _CONVERT_CHUNK_VALUES // n_features)


def _is_kernel_ready(array: np.ndarray) -> bool:
    """Return True when the kernels can read `array` without a copy."""
    if array.dtype not in (np.uint8, np.float32):
        return False
    return array.shape[0] == 0 or array.strides[1] == array.itemsize


def _convert_for_kernels(array: np.ndarray) -> np.ndarray:
    """Return a uint8 or float32 copy of checked features, contiguous along the feature axis.

    bool becomes uint8 0 and 1. Other integers and floats other than
    float32 go through float64, as in the reference evaluator, and are
    rounded up to float32.
    """
    if array.dtype == np.bool_:
        # astype maps every nonzero byte to 1; a view would pass bytes
        # other than 0 and 1 (from np.frombuffer, say) to the uint8 compare.
        array = array.astype(np.uint8)
    elif array.dtype not in (np.uint8, np.float32):
        array = _round_up_to_float32(array)
    # astype keeps the memory order, so a Fortran-ordered input would still
    # be strided along the feature axis here.
    return np.ascontiguousarray(array)


def prepare_features(features, n_features: int) -> np.ndarray:
    """Validate a whole batch and return a uint8 or float32 array the kernels accept.

    uint8 and float32 pass through, copied only when the feature axis is
    strided, and bool becomes uint8. Every other dtype goes through float64
    and is rounded up to float32. Model.predict does the same per chunk of
    samples; this whole-batch form is for tests of the packer.
    """
    array = as_feature_array(features, n_features)
    check_finite(array)
    if _is_kernel_ready(array):
        return array
    return _convert_for_kernels(array)


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
        array = as_feature_array(features, self.n_features)
        kernels = _kernels()
        # Read once, so that set_kernel_isa in another thread cannot change
        # the kernel path between chunks of one call.
        isa = kernels.ISA_CODES[current_isa()]
        n_threads = self.useful_threads(array.shape[0], n_threads)
        tile_words = self.tile_words(array.shape[0], n_threads)

        if _is_kernel_ready(array):
            check_finite(array)
            return kernels.run(self._program, array, isa, tile_words, n_threads, want_counts)
        return self._run_converting(array, kernels, isa, tile_words, n_threads, want_counts)

    def _run_converting(self, array, kernels, isa, tile_words, n_threads, want_counts):
        """Convert and evaluate a batch chunk by chunk, so no whole-batch copy is made."""
        n_samples = array.shape[0]
        labels = np.empty(n_samples, dtype=np.int64)
        counts = np.empty((n_samples, self.n_classes), dtype=np.int32) if want_counts else None
        # Whole tiles for every thread in each chunk keep all threads busy
        # until the last chunk.
        samples_per_round = 64 * tile_words * n_threads
        rounds = max(1, _rows_per_chunk(self.n_features) // samples_per_round)
        chunk_samples = rounds * samples_per_round

        for start in range(0, n_samples, chunk_samples):
            stop = min(start + chunk_samples, n_samples)
            part = array[start:stop]
            check_finite(part, first_sample=start)
            part_counts, part_labels = kernels.run(self._program, _convert_for_kernels(part), isa,
                                                   tile_words, n_threads, want_counts)
            labels[start:stop] = part_labels
            if want_counts:
                counts[start:stop] = part_counts
        return counts, labels

    def useful_threads(self, n_samples: int, threads: int) -> int:
        """Return how many of `threads` a batch can use without shrinking tiles.

        Each thread gets at least two full-width tiles. Splitting smaller
        batches makes tiles narrower and adds the cost of waking the threads:
        on the 784 -> 5 x 8000 demo network, 2 threads were about 2x slower
        than 1 at 1,000 and 2,048 samples (2-core AMD EPYC, AVX-512).
        """
        words = -(-n_samples // 64)
        full_tiles = -(-words // self._max_tile_words)
        return max(1, min(threads, full_tiles // 2))

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
