# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled core of the runtime: slot allocation, the program object and the
tile loop that runs the C kernels (lgn_runtime.h) over a batch.

Callers (lgnrt.passes and lgnrt.model) validate every argument; the
functions here check only what protects memory: array shapes, dtypes and
index ranges of a Program, once, when it is built.
"""

import time

import numpy as np

cimport cython
cimport numpy as cnp
from cython.parallel cimport parallel, prange
from libc.stdint cimport int32_t, int64_t, uint8_t, uint64_t


cdef extern from "lgn_runtime.h" nogil:
    int LGN_ISA_PORTABLE
    int LGN_ISA_AVX2
    int LGN_ISA_AVX512
    int LGN_MAX_TILE_WORDS

    ctypedef struct lgn_program:
        int32_t n_ops
        int32_t n_runs
        const int32_t *ops
        const int32_t *runs
        int32_t n_slots
        int32_t n_classes
        int32_t count_bits
        int32_t field_bits
        const int32_t *class_row_start
        const int32_t *class_rows
        const int32_t *class_bias
        int32_t n_chunks
        const int32_t *chunk_base
        const int32_t *lane_feature
        const int32_t *lane_slot
        const uint8_t *lane_u8_threshold
        const uint64_t *chunk_u8_ones
        const float *lane_f32_threshold

    ctypedef struct lgn_batch:
        const char *data
        int64_t row_stride
        int64_t row_bytes
        int64_t n_samples
        int32_t is_float32

    ctypedef struct lgn_layout:
        size_t slots
        size_t total

    lgn_layout lgn_scratch_layout(const lgn_program *p, int T)
    uint64_t *lgn_scratch_new(const lgn_program *p, int T)
    void lgn_scratch_free(uint64_t *scratch)
    int lgn_isa_supported(int isa)
    int lgn_detect_isa()
    void lgn_run_tile(int isa, const lgn_program *p, const lgn_batch *batch, int64_t tile, int T,
                      uint64_t *scratch, int32_t *counts, int64_t *labels)
    void lgn_pack_tile(int isa, const lgn_program *p, const lgn_batch *batch, int64_t tile, int T,
                       uint64_t *scratch)
    void lgn_eval_program(int isa, const lgn_program *p, int T, uint64_t *scratch)
    long lgn_l2_cache_bytes()
    void lgn_flag_set(int *flag)


ISA_NAMES = {LGN_ISA_PORTABLE: "portable", LGN_ISA_AVX2: "avx2", LGN_ISA_AVX512: "avx512"}
ISA_CODES = {name: code for code, name in ISA_NAMES.items()}
TILE_WORDS = (1, 2, 4, 8, 16)

# Arrays a Program is built from: (dtype, shape for reshape).
ARRAY_TYPES = {
    "ops": (np.int32, (-1, 4)),
    "runs": (np.int32, (-1, 3)),
    "class_row_start": (np.int32, (-1,)),
    "class_rows": (np.int32, (-1,)),
    "class_bias": (np.int32, (-1,)),
    "chunk_base": (np.int32, (-1,)),
    "lane_feature": (np.int32, (-1,)),
    "lane_slot": (np.int32, (-1,)),
    "lane_u8_threshold": (np.uint8, (-1,)),
    "chunk_u8_ones": (np.uint64, (-1,)),
    "lane_f32_threshold": (np.float32, (-1,)),
}
MAX_TILE_WORDS = LGN_MAX_TILE_WORDS


def supported_isas():
    """Return the names of the kernel paths this CPU can run, widest last."""
    return [name for code, name in sorted(ISA_NAMES.items()) if lgn_isa_supported(code)]


def detect_isa():
    """Return the name of the widest kernel path this CPU can run."""
    return ISA_NAMES[lgn_detect_isa()]


def l2_cache_bytes():
    """Return the level-2 cache size the C library reports, or 0 if unknown."""
    return int(lgn_l2_cache_bytes())


def allocate_slots(const int32_t[:, ::1] op_nodes, const int32_t[::1] input_nodes,
                   const int32_t[::1] output_nodes, int32_t n_nodes):
    """Assign slots to nodes by a linear scan over the program.

    op_nodes is (n_ops, 3): destination node and the two source nodes of
    each op, in execution order. Nodes 0 and 1 (the constants) keep slots 0
    and 1; input_nodes get the next slots because the packer writes them
    all before the first op. A slot returns to a LIFO free list after its
    node's last read, so the working set stays near the widest cut of the
    network and reused slots are the ones most recently in cache. Sources
    are released only after the destination is chosen, so an op never
    writes a slot it reads. Output nodes are never released.

    Returns a tuple: the slot of each node (int32, -1 for nodes without a
    slot) and the number of slots.
    """
    for name, nodes in (("op", op_nodes), ("input", input_nodes), ("output", output_nodes)):
        array = np.asarray(nodes)
        if array.size and (array.min() < 0 or array.max() >= n_nodes):
            raise ValueError(f"{name} node ids must lie in [0, {n_nodes}), got "
                             f"[{array.min()}, {array.max()}]")
    cdef Py_ssize_t n_ops = op_nodes.shape[0]
    cdef Py_ssize_t i, k
    cdef int32_t node, slot, source
    cdef int32_t n_slots = 2
    cdef int64_t never = n_ops + 1

    slot_array = np.full(n_nodes, -1, dtype=np.int32)
    last_array = np.full(n_nodes, -1, dtype=np.int64)
    free_array = np.empty(n_nodes + 2, dtype=np.int32)
    cdef int32_t[::1] slot_of = slot_array
    cdef int64_t[::1] last_read = last_array
    cdef int32_t[::1] free_slots = free_array
    cdef Py_ssize_t n_free = 0

    with nogil:
        for i in range(n_ops):
            last_read[op_nodes[i, 1]] = i
            last_read[op_nodes[i, 2]] = i
        for k in range(output_nodes.shape[0]):
            last_read[output_nodes[k]] = never
        slot_of[0] = 0
        slot_of[1] = 1
        for k in range(input_nodes.shape[0]):
            slot_of[input_nodes[k]] = n_slots
            n_slots += 1

        for i in range(n_ops):
            node = op_nodes[i, 0]
            if n_free > 0:
                n_free -= 1
                slot = free_slots[n_free]
            else:
                slot = n_slots
                n_slots += 1
            slot_of[node] = slot
            for k in range(1, 3):
                source = op_nodes[i, k]
                if source < 2 or last_read[source] != i:
                    continue
                if k == 2 and source == op_nodes[i, 1]:
                    continue
                free_slots[n_free] = slot_of[source]
                n_free += 1
            # A gate nobody reads (possible when dead-gate removal is off)
            # frees its slot at once.
            if last_read[node] < 0:
                free_slots[n_free] = slot
                n_free += 1
    return slot_array, int(n_slots)


cdef class Program:
    """A compiled gate program with its packer plan and class head.

    Instances are immutable and hold no scratch memory, so one Program may
    run in several threads at once.
    """

    cdef lgn_program c
    cdef readonly dict arrays
    cdef readonly int n_slots

    def __init__(self, arrays, int n_slots, int n_features):
        """Build from the arrays of lgnrt.passes.CompiledProgram.

        arrays maps each name in ARRAY_TYPES to an array (copied to the
        listed dtype if needed); n_slots excludes the sink slot.
        """
        arrays = {name: np.ascontiguousarray(arrays[name], dtype=dtype).reshape(shape)
                  for name, (dtype, shape) in ARRAY_TYPES.items()}
        self._check(arrays, n_slots, n_features)
        for array in arrays.values():
            array.setflags(write=False)
        self.arrays = arrays
        self.n_slots = n_slots

        row_counts = np.diff(arrays["class_row_start"])
        count_bits = max(1, int(row_counts.max()).bit_length())
        self.c.n_ops = arrays["ops"].shape[0]
        self.c.n_runs = arrays["runs"].shape[0]
        self.c.n_slots = n_slots
        self.c.n_classes = row_counts.shape[0]
        self.c.count_bits = count_bits
        self.c.field_bits = 8 if count_bits <= 8 else (16 if count_bits <= 16 else 32)
        self.c.n_chunks = arrays["chunk_base"].shape[0]
        self.c.ops = <const int32_t *>_address(arrays["ops"])
        self.c.runs = <const int32_t *>_address(arrays["runs"])
        self.c.class_row_start = <const int32_t *>_address(arrays["class_row_start"])
        self.c.class_rows = <const int32_t *>_address(arrays["class_rows"])
        self.c.class_bias = <const int32_t *>_address(arrays["class_bias"])
        self.c.chunk_base = <const int32_t *>_address(arrays["chunk_base"])
        self.c.lane_feature = <const int32_t *>_address(arrays["lane_feature"])
        self.c.lane_slot = <const int32_t *>_address(arrays["lane_slot"])
        self.c.lane_u8_threshold = <const uint8_t *>_address(arrays["lane_u8_threshold"])
        self.c.chunk_u8_ones = <const uint64_t *>_address(arrays["chunk_u8_ones"])
        self.c.lane_f32_threshold = <const float *>_address(arrays["lane_f32_threshold"])

    @staticmethod
    @cython.wraparound(True)
    def _check(arrays, n_slots, n_features):
        # A wrong index here would make the C kernels read or write out of
        # bounds, so every index is range-checked once.
        def require(condition, message):
            if not condition:
                raise ValueError(f"invalid compiled program: {message}")

        ops = arrays["ops"]
        runs = arrays["runs"]
        require(n_slots >= 2, f"expected at least 2 slots, got {n_slots}")
        if ops.shape[0]:
            require(ops[:, :3].min() >= 0 and ops[:, :3].max() < n_slots, "op slot out of range")
            require(ops[:, 0].min() >= 2, "an op writes a constant slot")
            require(ops[:, 3].min() >= 0 and ops[:, 3].max() < 16, "gate id out of range")
            require(bool(np.all((ops[:, 0] != ops[:, 1]) & (ops[:, 0] != ops[:, 2]))),
                    "an op writes a slot it reads")
        if runs.shape[0]:
            require(bool(np.all(runs[:, 0] <= runs[:, 1])), "run ends before it begins")
            require(runs[0, 0] == 0 and runs[-1, 1] == ops.shape[0], "runs do not cover the ops")
            require(bool(np.all(runs[1:, 0] == runs[:-1, 1])), "runs are not contiguous")
            run_of_op = np.repeat(runs[:, 2], runs[:, 1] - runs[:, 0])
            require(bool(np.all(run_of_op == ops[:, 3])), "run gate differs from its ops")
        else:
            require(ops.shape[0] == 0, "ops without runs")

        start = arrays["class_row_start"]
        rows = arrays["class_rows"]
        require(start.shape[0] >= 2, "expected at least 1 class")
        require(start[0] == 0 and start[-1] == rows.shape[0], "class rows do not cover the row list")
        require(bool(np.all(np.diff(start) >= 0)), "class row ranges are not ordered")
        require(int(np.diff(start).max()) < 2**31 - 1, "class has too many rows")
        require(rows.size == 0 or (rows.min() >= 0 and rows.max() < n_slots), "class row slot out of range")
        require(arrays["class_bias"].shape[0] == start.shape[0] - 1, "one bias per class expected")
        require(bool(np.all(arrays["class_bias"] >= 0)), "negative class bias")

        n_chunks = arrays["chunk_base"].shape[0]
        n_lanes = 64 * n_chunks
        for name in ("lane_feature", "lane_slot", "lane_u8_threshold", "lane_f32_threshold"):
            require(arrays[name].shape == (n_lanes,),
                    f"{name} has {arrays[name].shape[0]} lanes, expected {n_lanes}")
        require(arrays["chunk_u8_ones"].shape == (n_chunks,), "chunk_u8_ones length")
        if n_chunks:
            require(arrays["lane_feature"].min() >= 0 and arrays["lane_feature"].max() < n_features,
                    "lane feature out of range")
            require(arrays["lane_slot"].min() >= 2 and arrays["lane_slot"].max() <= n_slots,
                    "lane slot out of range")
            base = arrays["chunk_base"]
            contiguous = base[base >= 0]
            require(contiguous.size == 0 or contiguous.max() + 64 <= n_features,
                    "contiguous chunk reads past the last feature")

    @property
    def n_ops(self):
        return int(self.c.n_ops)

    @property
    def n_chunks(self):
        return int(self.c.n_chunks)

    def scratch_bytes(self, int tile_words):
        """Return the bytes of scratch one thread needs at this tile width."""
        return int(lgn_scratch_layout(&self.c, tile_words).total * 8)


cdef const void *_address(cnp.ndarray array):
    return cnp.PyArray_DATA(array)


cdef lgn_batch _batch_of(features) except *:
    # features: 2-D uint8 or float32 whose rows may be strided but whose
    # feature axis is contiguous; lgnrt.model arranges that.
    cdef lgn_batch batch
    cdef const uint8_t[:, :] bytes_view
    cdef const float[:, :] float_view
    if features.dtype == np.uint8:
        bytes_view = features
        batch.data = <const char *>&bytes_view[0, 0]
        batch.row_stride = bytes_view.strides[0]
        batch.is_float32 = 0
        if bytes_view.strides[1] != 1:
            raise ValueError("features must be contiguous along the feature axis")
    else:
        float_view = features
        batch.data = <const char *>&float_view[0, 0]
        batch.row_stride = float_view.strides[0]
        batch.is_float32 = 1
        if float_view.strides[1] != 4:
            raise ValueError("features must be contiguous along the feature axis")
    batch.n_samples = features.shape[0]
    batch.row_bytes = features.shape[1] * features.itemsize
    return batch


def _check_run_arguments(features, int isa, int tile_words):
    if features.ndim != 2 or features.dtype not in (np.uint8, np.float32):
        raise ValueError(f"expected 2-D uint8 or float32 features, got {features.dtype} {features.shape}")
    if tile_words not in TILE_WORDS:
        raise ValueError(f"tile width must be one of {TILE_WORDS} words, got {tile_words}")
    if isa not in ISA_NAMES or not lgn_isa_supported(isa):
        raise ValueError(f"kernel path {isa} is not supported by this CPU")


def run(Program program, features, int isa, int tile_words, int threads, bint want_counts):
    """Evaluate a batch; return (counts or None, labels).

    features: 2-D uint8 or float32 array, contiguous along the feature axis,
    with program's feature count. Tiles run in parallel over `threads`
    OpenMP threads, each with its own scratch buffer.
    """
    _check_run_arguments(features, isa, tile_words)
    cdef int64_t n_samples = features.shape[0]
    cdef int32_t n_classes = program.c.n_classes
    labels = np.empty(n_samples, dtype=np.int64)
    counts = np.empty((n_samples, n_classes), dtype=np.int32) if want_counts else None
    if n_samples == 0:
        return counts, labels

    cdef lgn_batch batch = _batch_of(features)
    cdef int64_t[::1] label_view = labels
    cdef int32_t[:, ::1] count_view
    cdef int32_t *count_pointer = NULL
    if want_counts:
        count_view = counts
        count_pointer = &count_view[0, 0]
    cdef int64_t *label_pointer = &label_view[0]
    cdef const lgn_program *prog = &program.c
    cdef int64_t tile_samples = 64 * <int64_t>tile_words
    cdef int64_t n_tiles = (n_samples + tile_samples - 1) // tile_samples
    cdef int64_t tile
    cdef uint64_t *scratch = NULL
    cdef int failed = 0
    cdef int *failed_flag = &failed
    cdef int n_threads = threads if threads < n_tiles else <int>n_tiles

    if n_threads <= 1:
        # No OpenMP region: its start-up cost dominates single-sample calls.
        with nogil:
            scratch = lgn_scratch_new(prog, tile_words)
            if scratch != NULL:
                for tile in range(n_tiles):
                    lgn_run_tile(isa, prog, &batch, tile, tile_words, scratch, count_pointer, label_pointer)
                lgn_scratch_free(scratch)
            else:
                failed = 1
    else:
        with nogil, parallel(num_threads=n_threads):
            scratch = lgn_scratch_new(prog, tile_words)
            if scratch == NULL:
                lgn_flag_set(failed_flag)
            # Dynamic: a thread that gets less CPU time (other processes,
            # frequency differences) takes fewer tiles instead of holding
            # up the others at the end.
            for tile in prange(n_tiles, schedule="dynamic", chunksize=1):
                if scratch != NULL:
                    lgn_run_tile(isa, prog, &batch, tile, tile_words, scratch, count_pointer, label_pointer)
            lgn_scratch_free(scratch)
    if failed:
        raise MemoryError(f"could not allocate {program.scratch_bytes(tile_words)} bytes of scratch per thread")
    return counts, labels


def pack(Program program, features, int isa, int tile_words):
    """Pack every tile and return the slot rows, uint64 (n_tiles, n_slots + 1, tile_words).

    Only the rows of input slots and of the unused-lane sink are written;
    tests use this to check the packer on its own.
    """
    _check_run_arguments(features, isa, tile_words)
    cdef int64_t n_samples = features.shape[0]
    cdef int64_t tile_samples = 64 * <int64_t>tile_words
    cdef int64_t n_tiles = (n_samples + tile_samples - 1) // tile_samples
    cdef int n_rows = program.c.n_slots + 1
    result = np.zeros((n_tiles, n_rows, tile_words), dtype=np.uint64)
    if n_samples == 0:
        return result
    cdef lgn_batch batch = _batch_of(features)
    cdef uint64_t[:, :, ::1] out = result
    cdef uint64_t *scratch = lgn_scratch_new(&program.c, tile_words)
    if scratch == NULL:
        raise MemoryError("could not allocate scratch")
    cdef lgn_layout layout = lgn_scratch_layout(&program.c, tile_words)
    cdef int64_t tile
    cdef Py_ssize_t i
    try:
        for tile in range(n_tiles):
            lgn_pack_tile(isa, &program.c, &batch, tile, tile_words, scratch)
            for i in range(n_rows * tile_words):
                out[tile, i // tile_words, i % tile_words] = scratch[layout.slots + i]
    finally:
        lgn_scratch_free(scratch)
    return result


def time_program(Program program, int isa, int tile_words, int repeats):
    """Return the seconds of one run of the gate program alone on one tile.

    The slots hold whatever the scratch starts with; the work per op does
    not depend on the bit values.
    """
    if tile_words not in TILE_WORDS or repeats < 1:
        raise ValueError(f"expected a tile width in {TILE_WORDS} and repeats >= 1")
    cdef uint64_t *scratch = lgn_scratch_new(&program.c, tile_words)
    if scratch == NULL:
        raise MemoryError("could not allocate scratch")
    cdef int r
    cdef double start
    try:
        lgn_eval_program(isa, &program.c, tile_words, scratch)
        start = time.perf_counter()
        with nogil:
            for r in range(repeats):
                lgn_eval_program(isa, &program.c, tile_words, scratch)
        return (time.perf_counter() - start) / repeats
    finally:
        lgn_scratch_free(scratch)
