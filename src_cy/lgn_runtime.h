/* Bit-sliced evaluation of compiled logic gate networks.
 *
 * Data layout: a tile contains 64*T samples, sample j in bit j%64 of word
 * j/64.
 * Every signal of the network (constant, input bit, gate output) lives in a
 * "slot", a row of T words, so one 64-bit AND evaluates a gate for 64
 * samples. Slot 0 contains all zeros and slot 1 all ones.
 *
 * The hot functions are in lgn_kernels.h, which this header includes once
 * per instruction set with a different name suffix: a portable build, and on
 * x86-64 an AVX2 and an AVX-512 build compiled with target pragmas. One
 * binary therefore runs on any x86-64 CPU and picks the widest unit present
 * at run time (lgn_detect_isa), with no -march flag at build time.
 */
#ifndef LGN_RUNTIME_H
#define LGN_RUNTIME_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Count extraction reads fields of 64-bit words through byte addresses. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "lgnrt kernels assume a little-endian CPU"
#endif

/* LGN_PORTABLE_ONLY builds only the portable kernels, as on non-x86 CPUs. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(LGN_PORTABLE_ONLY)
#define LGN_HAVE_X86_PATHS 1
#include <immintrin.h>
#else
#define LGN_HAVE_X86_PATHS 0
#endif

#define LGN_ISA_PORTABLE 0
#define LGN_ISA_AVX2 1
#define LGN_ISA_AVX512 2

/* Tile widths in words that have a specialised kernel. */
#define LGN_MAX_TILE_WORDS 16

/* Scratch parts start on 64-byte boundaries so that full rows are aligned
 * for 512-bit loads. */
#define LGN_ALIGN_WORDS 8

typedef struct {
    /* Gate program: ops[4*i .. 4*i+3] = dst slot, source a, source b, gate
     * id. Ops are grouped into runs of equal gate id, runs[3*r .. 3*r+2] =
     * first op, end op, gate id, so the gate is a constant inside the loop
     * over a run. dst differs from both sources of its op. */
    int32_t n_ops;
    int32_t n_runs;
    const int32_t *ops;
    const int32_t *runs;

    /* Slots 0 .. n_slots-1; slot n_slots is a write-only sink for unused
     * packer lanes. */
    int32_t n_slots;

    /* Class head: class c counts the ones of rows class_rows[
     * class_row_start[c] .. class_row_start[c+1]) (slot indices) and adds
     * class_bias[c], the number of its outputs that are constant 1.
     * count_bits is the bit length of the largest row count (at least 1),
     * the number of count planes per class. The portable and AVX2 paths
     * read each count from a field_bits-wide field (8, 16 or 32). */
    int32_t n_classes;
    int32_t count_bits;
    int32_t field_bits;
    const int32_t *class_row_start;
    const int32_t *class_rows;
    const int32_t *class_bias;

    /* Input packer: chunks of 64 lanes, lane l of chunk c computes one
     * input bit. chunk_base[c] >= 0 means lane l reads feature
     * chunk_base[c] + l (one contiguous load); -1 means lane l reads
     * lane_feature[64*c + l]. */
    int32_t n_chunks;
    const int32_t *chunk_base;
    const int32_t *lane_feature;
    const int32_t *lane_slot;
    /* uint8 features: bit = (x > lane_u8_threshold) | chunk_u8_ones bit. */
    const uint8_t *lane_u8_threshold;
    const uint64_t *chunk_u8_ones;
    /* float32 features: bit = x > lane_f32_threshold. */
    const float *lane_f32_threshold;
} lgn_program;

typedef struct {
    const char *data;     /* first sample's row; features contiguous in a row */
    int64_t row_stride;   /* bytes between rows, may be negative */
    int64_t row_bytes;    /* bytes of features in one row */
    int64_t n_samples;
    int32_t is_float32;   /* 1: float32 features, 0: uint8 features */
} lgn_batch;

/* Word offsets of the parts of one thread's scratch buffer. */
typedef struct {
    size_t slots;
    size_t lanes;
    size_t planes;
    size_t records;
    size_t total;
} lgn_layout;

static inline size_t lgn_round_up(size_t words)
{
    return (words + LGN_ALIGN_WORDS - 1) / LGN_ALIGN_WORDS * LGN_ALIGN_WORDS;
}

static inline int32_t lgn_record_words(const lgn_program *p)
{
    int32_t classes_per_word = 64 / p->field_bits;
    return (p->n_classes + classes_per_word - 1) / classes_per_word;
}

static inline lgn_layout lgn_scratch_layout(const lgn_program *p, int T)
{
    lgn_layout layout;
    size_t offset = 0;
    layout.slots = offset;
    offset += lgn_round_up((size_t)(p->n_slots + 1) * T);
    layout.lanes = offset;
    offset += lgn_round_up((size_t)p->n_chunks * 64);
    layout.planes = offset;
    offset += lgn_round_up((size_t)p->n_classes * p->count_bits * T);
    /* One transposed 64x64 block per record word, for one word of samples. */
    layout.records = offset;
    offset += lgn_round_up((size_t)lgn_record_words(p) * 64);
    layout.total = offset;
    return layout;
}

/* Allocate one thread's scratch and write the constant slots 0 and 1, which
 * no op ever overwrites. Returns NULL when out of memory. */
static inline uint64_t *lgn_scratch_new(const lgn_program *p, int T)
{
    lgn_layout layout = lgn_scratch_layout(p, T);
    void *memory = NULL;
    if (posix_memalign(&memory, 64, layout.total * sizeof(uint64_t)) != 0) {
        return NULL;
    }
    uint64_t *scratch = (uint64_t *)memory;
    memset(scratch, 0, layout.total * sizeof(uint64_t));
    for (int w = 0; w < T; w++) {
        scratch[layout.slots + (size_t)T + w] = ~(uint64_t)0;
    }
    return scratch;
}

static inline void lgn_scratch_free(uint64_t *scratch)
{
    free(scratch);
}

/* Per-ISA kernels. LGN_FN(name) expands to name_<suffix>. */
#define LGN_CONCAT_(a, b) a##_##b
#define LGN_CONCAT(a, b) LGN_CONCAT_(a, b)
#define LGN_FN(name) LGN_CONCAT(name, LGN_ISA_SUFFIX)

#define LGN_ISA_SUFFIX portable
#define LGN_ISA_LEVEL LGN_ISA_PORTABLE
#include "lgn_kernels.h"
#undef LGN_ISA_SUFFIX
#undef LGN_ISA_LEVEL

#if LGN_HAVE_X86_PATHS

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2")
#endif
#define LGN_ISA_SUFFIX avx2
#define LGN_ISA_LEVEL LGN_ISA_AVX2
#include "lgn_kernels.h"
#undef LGN_ISA_SUFFIX
#undef LGN_ISA_LEVEL
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

/* prefer-vector-width=512: GCC's generic tuning otherwise vectorises the
 * word loops with 256-bit registers even where AVX-512 is enabled. */
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,prefer-vector-width=512")
#endif
#define LGN_ISA_SUFFIX avx512
#define LGN_ISA_LEVEL LGN_ISA_AVX512
#include "lgn_kernels.h"
#undef LGN_ISA_SUFFIX
#undef LGN_ISA_LEVEL
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#endif /* LGN_HAVE_X86_PATHS */

/* 1 when this CPU can run the kernels of `isa`. */
static inline int lgn_isa_supported(int isa)
{
    if (isa == LGN_ISA_PORTABLE) {
        return 1;
    }
#if LGN_HAVE_X86_PATHS
    __builtin_cpu_init();
    if (isa == LGN_ISA_AVX2) {
        return __builtin_cpu_supports("avx2") ? 1 : 0;
    }
    if (isa == LGN_ISA_AVX512) {
        return (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
                && __builtin_cpu_supports("avx512vl")) ? 1 : 0;
    }
#endif
    return 0;
}

static inline int lgn_detect_isa(void)
{
    if (lgn_isa_supported(LGN_ISA_AVX512)) {
        return LGN_ISA_AVX512;
    }
    if (lgn_isa_supported(LGN_ISA_AVX2)) {
        return LGN_ISA_AVX2;
    }
    return LGN_ISA_PORTABLE;
}

/* Evaluate tile `tile` of the batch: pack, run the program, count classes.
 * counts (n_samples x n_classes) and labels (n_samples) may each be NULL. */
static inline void lgn_run_tile(int isa, const lgn_program *p, const lgn_batch *batch, int64_t tile,
                                int T, uint64_t *scratch, int32_t *counts, int64_t *labels)
{
#if LGN_HAVE_X86_PATHS
    if (isa == LGN_ISA_AVX512) {
        run_tile_avx512(p, batch, tile, T, scratch, counts, labels);
        return;
    }
    if (isa == LGN_ISA_AVX2) {
        run_tile_avx2(p, batch, tile, T, scratch, counts, labels);
        return;
    }
#endif
    (void)isa;
    run_tile_portable(p, batch, tile, T, scratch, counts, labels);
}

/* Pack one tile's input bits into the scratch slots and stop there; tests
 * use it to read the packed words. */
static inline void lgn_pack_tile(int isa, const lgn_program *p, const lgn_batch *batch, int64_t tile,
                                 int T, uint64_t *scratch)
{
#if LGN_HAVE_X86_PATHS
    if (isa == LGN_ISA_AVX512) {
        pack_tile_avx512(p, batch, tile, T, scratch);
        return;
    }
    if (isa == LGN_ISA_AVX2) {
        pack_tile_avx2(p, batch, tile, T, scratch);
        return;
    }
#endif
    (void)isa;
    pack_tile_portable(p, batch, tile, T, scratch);
}

/* Run only the gate program on the scratch slots; the layer benchmark
 * times this alone. */
static inline void lgn_eval_program(int isa, const lgn_program *p, int T, uint64_t *scratch)
{
#if LGN_HAVE_X86_PATHS
    if (isa == LGN_ISA_AVX512) {
        eval_program_avx512(p, T, scratch);
        return;
    }
    if (isa == LGN_ISA_AVX2) {
        eval_program_avx2(p, T, scratch);
        return;
    }
#endif
    (void)isa;
    eval_program_portable(p, T, scratch);
}

/* Size of the level-2 cache in bytes, or 0 when the system does not report
 * it. */
static inline long lgn_l2_cache_bytes(void)
{
#if defined(_SC_LEVEL2_CACHE_SIZE)
    long size = sysconf(_SC_LEVEL2_CACHE_SIZE);
    return size > 0 ? size : 0;
#else
    return 0;
#endif
}

static inline void lgn_flag_set(int *flag)
{
    __atomic_store_n(flag, 1, __ATOMIC_RELAXED);
}

#endif /* LGN_RUNTIME_H */
