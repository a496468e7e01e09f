/* Hot loops of the runtime, compiled once per instruction set.
 *
 * lgn_runtime.h includes this file several times, each time with
 * LGN_ISA_SUFFIX (the name suffix) and LGN_ISA_LEVEL (which intrinsics may
 * be used) defined and a target pragma in force, so there is no include
 * guard. Every function name goes through LGN_FN to stay unique.
 *
 * Functions that take the tile width T as an argument are always inlined
 * into wrappers with a literal T (1, 2, 4, 8 or 16), so the word loops have
 * a constant trip count that the compiler unrolls and vectorises.
 */

#ifndef LGN_KERNELS_SHARED
#define LGN_KERNELS_SHARED

#define LGN_INLINE static inline __attribute__((always_inline))
#define LGN_MASK(bit) ((uint64_t)0 - (uint64_t)(bit))

/* How many rows ahead the packer prefetches feature rows. */
#define LGN_PREFETCH_ROWS 16

/* Masks of the algebraic normal form f = k0 ^ k1&a ^ k2&b ^ k3&a&b of gate
 * id g, whose truth table bits are f(0,0)=g>>3, f(0,1)=g>>2, f(1,0)=g>>1,
 * f(1,1)=g (lgnrt/gates.py). With a literal g they are compile-time
 * constants and the expression folds to the gate's own one or two
 * instructions. */
#define LGN_ANF_K0(g) LGN_MASK(((g) >> 3) & 1)
#define LGN_ANF_K1(g) LGN_MASK((((g) >> 3) ^ ((g) >> 1)) & 1)
#define LGN_ANF_K2(g) LGN_MASK((((g) >> 3) ^ ((g) >> 2)) & 1)
#define LGN_ANF_K3(g) LGN_MASK((((g) >> 3) ^ ((g) >> 2) ^ ((g) >> 1) ^ (g)) & 1)

#endif /* LGN_KERNELS_SHARED */

/* ------------------------------------------------------------------------
 * 64x64 bit-matrix transpose
 * ------------------------------------------------------------------------
 * On return, bit c of m[r] is the former bit r of m[c]. Each round swaps
 * the off-diagonal JxJ blocks of every 2Jx2J diagonal block. */

#if LGN_ISA_LEVEL == LGN_ISA_AVX512

/* Rounds with J >= 8 swap whole registers of eight rows. Rounds with J < 8
 * pair lanes inside a register: P is each lane's partner (lane i ^ J),
 * "low" lanes (bit J of the lane index clear) take t << J and "high" lanes
 * (HIGH) take t, where t is computed in the low lane's frame. */
#define LGN_TRANSPOSE_REGISTERS(J, DISTANCE, MASK)                                             \
    do {                                                                                       \
        const __m512i mask = _mm512_set1_epi64((long long)(MASK));                             \
        for (int k = 0; k < 8; k++) {                                                          \
            if (k & (DISTANCE)) {                                                              \
                continue;                                                                      \
            }                                                                                  \
            __m512i t = _mm512_and_si512(                                                      \
                _mm512_xor_si512(_mm512_srli_epi64(v[k], J), v[k + (DISTANCE)]), mask);        \
            v[k] = _mm512_xor_si512(v[k], _mm512_slli_epi64(t, J));                            \
            v[k + (DISTANCE)] = _mm512_xor_si512(v[k + (DISTANCE)], t);                        \
        }                                                                                      \
    } while (0)

#define LGN_TRANSPOSE_LANES(X, P, J, HIGH, MASK)                                               \
    do {                                                                                       \
        const __m512i mask = _mm512_set1_epi64((long long)(MASK));                             \
        __m512i partner = (P);                                                                 \
        __m512i t_low = _mm512_and_si512(_mm512_xor_si512(_mm512_srli_epi64(X, J), partner), mask); \
        __m512i t_high = _mm512_and_si512(_mm512_xor_si512(_mm512_srli_epi64(partner, J), X), mask); \
        __m512i low_result = _mm512_xor_si512(X, _mm512_slli_epi64(t_low, J));                 \
        X = _mm512_mask_xor_epi64(low_result, (__mmask8)(HIGH), X, t_high);                    \
    } while (0)

static void LGN_FN(transpose64)(uint64_t *m)
{
    __m512i v[8];
    for (int k = 0; k < 8; k++) {
        v[k] = _mm512_loadu_si512((const void *)(m + 8 * k));
    }
    LGN_TRANSPOSE_REGISTERS(32, 4, 0x00000000FFFFFFFFull);
    LGN_TRANSPOSE_REGISTERS(16, 2, 0x0000FFFF0000FFFFull);
    LGN_TRANSPOSE_REGISTERS(8, 1, 0x00FF00FF00FF00FFull);
    for (int k = 0; k < 8; k++) {
        __m512i x = v[k];
        LGN_TRANSPOSE_LANES(x, _mm512_shuffle_i64x2(x, x, 0x4E), 4, 0xF0, 0x0F0F0F0F0F0F0F0Full);
        LGN_TRANSPOSE_LANES(x, _mm512_permutex_epi64(x, 0x4E), 2, 0xCC, 0x3333333333333333ull);
        LGN_TRANSPOSE_LANES(x, _mm512_shuffle_epi32(x, (_MM_PERM_ENUM)0x4E), 1, 0xAA, 0x5555555555555555ull);
        _mm512_storeu_si512((void *)(m + 8 * k), x);
    }
}

#undef LGN_TRANSPOSE_REGISTERS
#undef LGN_TRANSPOSE_LANES

#else

#define LGN_TRANSPOSE_ROUND(J, MASK)                                        \
    for (int base = 0; base < 64; base += 2 * (J)) {                        \
        for (int i = 0; i < (J); i++) {                                     \
            uint64_t t = ((m[base + i] >> (J)) ^ m[base + i + (J)]) & (MASK); \
            m[base + i] ^= t << (J);                                        \
            m[base + i + (J)] ^= t;                                         \
        }                                                                   \
    }

static void LGN_FN(transpose64)(uint64_t *restrict m)
{
    LGN_TRANSPOSE_ROUND(32, 0x00000000FFFFFFFFull)
    LGN_TRANSPOSE_ROUND(16, 0x0000FFFF0000FFFFull)
    LGN_TRANSPOSE_ROUND(8, 0x00FF00FF00FF00FFull)
    LGN_TRANSPOSE_ROUND(4, 0x0F0F0F0F0F0F0F0Full)
    LGN_TRANSPOSE_ROUND(2, 0x3333333333333333ull)
    LGN_TRANSPOSE_ROUND(1, 0x5555555555555555ull)
}

#undef LGN_TRANSPOSE_ROUND

#endif

/* ------------------------------------------------------------------------
 * Input packer
 * ------------------------------------------------------------------------
 * For each sample, each chunk yields one 64-bit word of lane results (bit l
 * = lane l). A 64x64 transpose of 64 samples' words then gives, per lane,
 * the word of 64 samples that goes into the lane's slot. */

LGN_INLINE uint64_t LGN_FN(gather_u8)(const uint8_t *row, const lgn_program *p, int32_t chunk)
{
    const int32_t *feature = p->lane_feature + 64 * (size_t)chunk;
    const uint8_t *threshold = p->lane_u8_threshold + 64 * (size_t)chunk;
    uint64_t bits = 0;
    for (int l = 0; l < 64; l++) {
        bits |= (uint64_t)(row[feature[l]] > threshold[l]) << l;
    }
    return bits;
}

LGN_INLINE uint64_t LGN_FN(gather_f32)(const float *row, const lgn_program *p, int32_t chunk)
{
    const int32_t *feature = p->lane_feature + 64 * (size_t)chunk;
    const float *threshold = p->lane_f32_threshold + 64 * (size_t)chunk;
    uint64_t bits = 0;
    for (int l = 0; l < 64; l++) {
        bits |= (uint64_t)(row[feature[l]] > threshold[l]) << l;
    }
    return bits;
}

LGN_INLINE uint64_t LGN_FN(compare_u8)(const uint8_t *x, const uint8_t *threshold)
{
#if LGN_ISA_LEVEL == LGN_ISA_AVX512
    return (uint64_t)_mm512_cmpgt_epu8_mask(_mm512_loadu_si512((const void *)x),
                                            _mm512_loadu_si512((const void *)threshold));
#elif LGN_ISA_LEVEL == LGN_ISA_AVX2
    /* AVX2 only compares signed bytes; flipping the top bit of both sides
     * maps the unsigned order onto the signed one. */
    const __m256i bias = _mm256_set1_epi8((char)0x80);
    uint64_t bits = 0;
    for (int half = 0; half < 2; half++) {
        __m256i value = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(x + 32 * half)), bias);
        __m256i limit = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(threshold + 32 * half)), bias);
        uint32_t part = (uint32_t)_mm256_movemask_epi8(_mm256_cmpgt_epi8(value, limit));
        bits |= (uint64_t)part << (32 * half);
    }
    return bits;
#else
    uint64_t bits = 0;
    for (int l = 0; l < 64; l++) {
        bits |= (uint64_t)(x[l] > threshold[l]) << l;
    }
    return bits;
#endif
}

LGN_INLINE uint64_t LGN_FN(compare_f32)(const float *x, const float *threshold)
{
#if LGN_ISA_LEVEL == LGN_ISA_AVX512
    uint64_t bits = 0;
    for (int quarter = 0; quarter < 4; quarter++) {
        __mmask16 part = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + 16 * quarter),
                                            _mm512_loadu_ps(threshold + 16 * quarter), _CMP_GT_OQ);
        bits |= (uint64_t)part << (16 * quarter);
    }
    return bits;
#elif LGN_ISA_LEVEL == LGN_ISA_AVX2
    uint64_t bits = 0;
    for (int eighth = 0; eighth < 8; eighth++) {
        __m256 greater = _mm256_cmp_ps(_mm256_loadu_ps(x + 8 * eighth),
                                       _mm256_loadu_ps(threshold + 8 * eighth), _CMP_GT_OQ);
        bits |= (uint64_t)(uint32_t)_mm256_movemask_ps(greater) << (8 * eighth);
    }
    return bits;
#else
    uint64_t bits = 0;
    for (int l = 0; l < 64; l++) {
        bits |= (uint64_t)(x[l] > threshold[l]) << l;
    }
    return bits;
#endif
}

/* Lane words of one sample for every chunk: lanes[64*c + s]. */
static void LGN_FN(binarize_sample)(const lgn_program *p, const char *row, int is_float32, uint64_t *lanes, int s)
{
    if (is_float32) {
        const float *values = (const float *)row;
        for (int32_t c = 0; c < p->n_chunks; c++) {
            int32_t base = p->chunk_base[c];
            uint64_t bits = base >= 0
                ? LGN_FN(compare_f32)(values + base, p->lane_f32_threshold + 64 * (size_t)c)
                : LGN_FN(gather_f32)(values, p, c);
            lanes[64 * (size_t)c + s] = bits;
        }
        return;
    }
    const uint8_t *values = (const uint8_t *)row;
    for (int32_t c = 0; c < p->n_chunks; c++) {
        int32_t base = p->chunk_base[c];
        uint64_t bits = base >= 0
            ? LGN_FN(compare_u8)(values + base, p->lane_u8_threshold + 64 * (size_t)c)
            : LGN_FN(gather_u8)(values, p, c);
        lanes[64 * (size_t)c + s] = bits | p->chunk_u8_ones[c];
    }
}

/* Write the input bits of tile `tile` into their slots. Samples past the end
 * of the batch get all-zero input bits. */
static void LGN_FN(pack_tile)(const lgn_program *p, const lgn_batch *batch, int64_t tile, int T,
                              uint64_t *scratch)
{
    lgn_layout layout = lgn_scratch_layout(p, T);
    uint64_t *slots = scratch + layout.slots;
    uint64_t *lanes = scratch + layout.lanes;
    int64_t first = tile * 64 * (int64_t)T;

    for (int w = 0; w < T; w++) {
        int64_t start = first + 64 * (int64_t)w;
        int64_t remaining = batch->n_samples - start;
        int n_valid = remaining <= 0 ? 0 : (remaining >= 64 ? 64 : (int)remaining);

        for (int s = 0; s < n_valid; s++) {
            const char *row = batch->data + (start + s) * batch->row_stride;
            /* Rows of a large batch come from DRAM; fetching a few rows
             * ahead overlaps that latency with the compares. */
            if (start + s + LGN_PREFETCH_ROWS < batch->n_samples) {
                const char *ahead = row + LGN_PREFETCH_ROWS * batch->row_stride;
                for (int64_t offset = 0; offset < batch->row_bytes; offset += 64) {
                    __builtin_prefetch(ahead + offset, 0, 0);
                }
            }
            LGN_FN(binarize_sample)(p, row, batch->is_float32, lanes, s);
        }
        for (int32_t c = 0; c < p->n_chunks; c++) {
            for (int s = n_valid; s < 64; s++) {
                lanes[64 * (size_t)c + s] = 0;
            }
        }

        for (int32_t c = 0; c < p->n_chunks; c++) {
            uint64_t *block = lanes + 64 * (size_t)c;
            const int32_t *lane_slot = p->lane_slot + 64 * (size_t)c;
            LGN_FN(transpose64)(block);
            for (int l = 0; l < 64; l++) {
                slots[(size_t)lane_slot[l] * T + w] = block[l];
            }
        }
    }
}

/* ------------------------------------------------------------------------
 * Gate program
 * ------------------------------------------------------------------------
 * Ops come grouped in runs of one gate id, so the switch below runs once per
 * run rather than once per gate: a per-gate switch on a random gate mix
 * mispredicts about every other gate. Inside a run the ANF masks are
 * literals, each gate compiles to its own minimal instructions, and the
 * loop over the T words of a row has no branch. */

LGN_INLINE void LGN_FN(gate_row)(uint64_t *restrict dst, const uint64_t *restrict a, const uint64_t *restrict b,
                                 const int T, const uint64_t k0, const uint64_t k1, const uint64_t k2,
                                 const uint64_t k3)
{
    for (int w = 0; w < T; w++) {
        uint64_t x = a[w];
        uint64_t y = b[w];
        dst[w] = k0 ^ (k1 & x) ^ (k2 & y) ^ (k3 & x & y);
    }
}

LGN_INLINE void LGN_FN(gate_run)(const int32_t *restrict ops, int32_t begin, int32_t end, uint64_t *slots,
                                 const int T, const uint64_t k0, const uint64_t k1, const uint64_t k2,
                                 const uint64_t k3)
{
    for (int32_t i = begin; i < end; i++) {
        const int32_t *op = ops + 4 * (size_t)i;
        LGN_FN(gate_row)(slots + (size_t)op[0] * T, slots + (size_t)op[1] * T, slots + (size_t)op[2] * T,
                         T, k0, k1, k2, k3);
    }
}

#define LGN_GATE_CASE(g)                                                                        \
    case g:                                                                                     \
        LGN_FN(gate_run)(p->ops, begin, end, slots, T, LGN_ANF_K0(g), LGN_ANF_K1(g), LGN_ANF_K2(g), \
                         LGN_ANF_K3(g));                                                        \
        break;

LGN_INLINE void LGN_FN(eval_runs)(const lgn_program *p, uint64_t *slots, const int T)
{
    for (int32_t r = 0; r < p->n_runs; r++) {
        const int32_t *run = p->runs + 3 * (size_t)r;
        int32_t begin = run[0];
        int32_t end = run[1];
        switch (run[2]) {
            LGN_GATE_CASE(0) LGN_GATE_CASE(1) LGN_GATE_CASE(2) LGN_GATE_CASE(3)
            LGN_GATE_CASE(4) LGN_GATE_CASE(5) LGN_GATE_CASE(6) LGN_GATE_CASE(7)
            LGN_GATE_CASE(8) LGN_GATE_CASE(9) LGN_GATE_CASE(10) LGN_GATE_CASE(11)
            LGN_GATE_CASE(12) LGN_GATE_CASE(13) LGN_GATE_CASE(14) LGN_GATE_CASE(15)
            default:
                break;
        }
    }
}

#undef LGN_GATE_CASE

/* ------------------------------------------------------------------------
 * Class counter
 * ------------------------------------------------------------------------
 * Each class's output rows are summed bit-sliced into count_bits planes of
 * T words (plane k = bit k of every sample's count). Blocks of 16 rows go
 * through a Harley-Seal network of carry-save adders in local arrays, which
 * become registers once the word loop is unrolled. Its 15 full adders fold
 * 16 rows into the running ones/twos/fours/eights and one row of weight
 * 16, and a ripple-carry add puts that row into the planes. The cost is
 * about two vector ops per row plus count_bits-4 half adders per 16 rows,
 * with no data-dependent branch. A carry-save tree that keeps pending rows
 * per level needs such branches, and they mispredict. */

/* planes += row * 2^from, over planes from .. count_bits-1. Bits carried
 * out of the top plane are always zero, because a count never exceeds the
 * number of rows, which is below 2^count_bits. */
LGN_INLINE void LGN_FN(ripple_add)(uint64_t *restrict planes, int from, int count_bits,
                                   const uint64_t *restrict row, const int T)
{
    uint64_t carry[LGN_MAX_TILE_WORDS];
    for (int w = 0; w < T; w++) {
        carry[w] = row[w];
    }
    for (int k = from; k < count_bits; k++) {
        uint64_t *plane = planes + (size_t)k * T;
        for (int w = 0; w < T; w++) {
            uint64_t value = plane[w];
            plane[w] = value ^ carry[w];
            carry[w] &= value;
        }
    }
}

/* Carry-save adder: high * 2 + low = a + b + c, bitwise. */
#define LGN_CSA(high, low, a, b, c)           \
    do {                                      \
        uint64_t u_ = (a) ^ (b);              \
        uint64_t b_ = (b);                    \
        uint64_t c_ = (c);                    \
        high = ((a) & b_) | (u_ & c_);        \
        low = u_ ^ c_;                        \
    } while (0)

/* Sum rows `rows` (slot indices) into count_bits planes of T words. */
LGN_INLINE void LGN_FN(count_rows)(const uint64_t *slots, const int32_t *rows, int32_t n_rows, int count_bits,
                                   uint64_t *planes, const int T)
{
    uint64_t ones[LGN_MAX_TILE_WORDS];
    uint64_t twos[LGN_MAX_TILE_WORDS];
    uint64_t fours[LGN_MAX_TILE_WORDS];
    uint64_t eights[LGN_MAX_TILE_WORDS];
    uint64_t sixteens[LGN_MAX_TILE_WORDS];
    for (int w = 0; w < T; w++) {
        ones[w] = 0;
        twos[w] = 0;
        fours[w] = 0;
        eights[w] = 0;
    }
    for (size_t i = 0; i < (size_t)count_bits * T; i++) {
        planes[i] = 0;
    }

    int32_t r = 0;
    for (; r + 16 <= n_rows; r += 16) {
        const uint64_t *p[16];
        for (int i = 0; i < 16; i++) {
            p[i] = slots + (size_t)rows[r + i] * T;
        }
        for (int w = 0; w < T; w++) {
            uint64_t o = ones[w];
            uint64_t t = twos[w];
            uint64_t f = fours[w];
            uint64_t e = eights[w];
            uint64_t twos_a, twos_b, fours_a, fours_b, eights_a, eights_b, sixteen;
            LGN_CSA(twos_a, o, o, p[0][w], p[1][w]);
            LGN_CSA(twos_b, o, o, p[2][w], p[3][w]);
            LGN_CSA(fours_a, t, t, twos_a, twos_b);
            LGN_CSA(twos_a, o, o, p[4][w], p[5][w]);
            LGN_CSA(twos_b, o, o, p[6][w], p[7][w]);
            LGN_CSA(fours_b, t, t, twos_a, twos_b);
            LGN_CSA(eights_a, f, f, fours_a, fours_b);
            LGN_CSA(twos_a, o, o, p[8][w], p[9][w]);
            LGN_CSA(twos_b, o, o, p[10][w], p[11][w]);
            LGN_CSA(fours_a, t, t, twos_a, twos_b);
            LGN_CSA(twos_a, o, o, p[12][w], p[13][w]);
            LGN_CSA(twos_b, o, o, p[14][w], p[15][w]);
            LGN_CSA(fours_b, t, t, twos_a, twos_b);
            LGN_CSA(eights_b, f, f, fours_a, fours_b);
            LGN_CSA(sixteen, e, e, eights_a, eights_b);
            ones[w] = o;
            twos[w] = t;
            fours[w] = f;
            eights[w] = e;
            sixteens[w] = sixteen;
        }
        LGN_FN(ripple_add)(planes, 4, count_bits, sixteens, T);
    }
    for (; r < n_rows; r++) {
        LGN_FN(ripple_add)(planes, 0, count_bits, slots + (size_t)rows[r] * T, T);
    }
    LGN_FN(ripple_add)(planes, 0, count_bits, ones, T);
    LGN_FN(ripple_add)(planes, 1, count_bits, twos, T);
    LGN_FN(ripple_add)(planes, 2, count_bits, fours, T);
    LGN_FN(ripple_add)(planes, 3, count_bits, eights, T);
}

#undef LGN_CSA

LGN_INLINE void LGN_FN(count_classes)(const lgn_program *p, uint64_t *scratch, const lgn_layout *layout,
                                      const int T)
{
    const uint64_t *slots = scratch + layout->slots;
    for (int32_t c = 0; c < p->n_classes; c++) {
        int32_t begin = p->class_row_start[c];
        int32_t end = p->class_row_start[c + 1];
        LGN_FN(count_rows)(slots, p->class_rows + begin, end - begin, p->count_bits,
                           scratch + layout->planes + (size_t)c * p->count_bits * T, T);
    }
}

/* Read the counts of valid samples from the transposed records, add the
 * bias, store them and the argmax. FIELD_BITS is a literal, so each count
 * is one zero-extending load. */
LGN_INLINE void LGN_FN(read_counts)(const lgn_program *p, const uint64_t *records, int64_t first_sample,
                                    int n_valid, int32_t *counts, int64_t *labels, const int FIELD_BITS)
{
    const int classes_per_word = 64 / FIELD_BITS;
    for (int s = 0; s < n_valid; s++) {
        int64_t sample = first_sample + s;
        int32_t best_class = 0;
        int64_t best_count = -1;
        int32_t c = 0;
        for (int32_t k = 0; c < p->n_classes; k++) {
            const unsigned char *record = (const unsigned char *)(records + 64 * (size_t)k + s);
            for (int j = 0; j < classes_per_word && c < p->n_classes; j++, c++) {
                int64_t count;
                if (FIELD_BITS == 8) {
                    count = record[j];
                } else if (FIELD_BITS == 16) {
                    uint16_t field;
                    memcpy(&field, record + 2 * j, sizeof field);
                    count = field;
                } else {
                    uint32_t field;
                    memcpy(&field, record + 4 * j, sizeof field);
                    count = field;
                }
                count += p->class_bias[c];
                if (counts != NULL) {
                    counts[sample * p->n_classes + c] = (int32_t)count;
                }
                /* Strict > keeps the lowest class index on ties. */
                if (count > best_count) {
                    best_count = count;
                    best_class = c;
                }
            }
        }
        if (labels != NULL) {
            labels[sample] = best_class;
        }
    }
}

#if LGN_ISA_LEVEL == LGN_ISA_AVX512

/* Counts of word w straight from the planes, 16 samples per register: bit
 * plane b of class c, shifted to the group, is a lane mask for adding 2^b.
 * The argmax runs across classes with one compare per class, and counts
 * go through a class-major buffer (16 per class) into the sample-major
 * output. */
static void LGN_FN(emit_counts)(const lgn_program *p, uint64_t *scratch, const lgn_layout *layout, int T,
                                int w, int64_t first_sample, int n_valid, int32_t *counts, int64_t *labels)
{
    const uint64_t *planes = scratch + layout->planes;
    int32_t *group_counts = (int32_t *)(scratch + layout->records);
    int nb = p->count_bits;
    int32_t n_classes = p->n_classes;

    for (int g = 0; 16 * g < n_valid; g++) {
        int in_group = n_valid - 16 * g < 16 ? n_valid - 16 * g : 16;
        __mmask16 valid = (__mmask16)((1u << in_group) - 1);
        __m512i best = _mm512_set1_epi32(-1);
        __m512i best_class = _mm512_setzero_si512();
        for (int32_t c = 0; c < n_classes; c++) {
            const uint64_t *class_planes = planes + (size_t)c * nb * T + w;
            __m512i count = _mm512_set1_epi32(p->class_bias[c]);
            for (int b = 0; b < nb; b++) {
                __mmask16 bits = (__mmask16)(class_planes[(size_t)b * T] >> (16 * g));
                count = _mm512_mask_add_epi32(count, bits, count, _mm512_set1_epi32(1 << b));
            }
            /* Strict > keeps the lowest class index on ties. */
            __mmask16 greater = _mm512_cmpgt_epi32_mask(count, best);
            best = _mm512_mask_mov_epi32(best, greater, count);
            best_class = _mm512_mask_mov_epi32(best_class, greater, _mm512_set1_epi32(c));
            if (counts != NULL) {
                _mm512_storeu_si512((void *)(group_counts + 16 * (size_t)c), count);
            }
        }

        int64_t group_first = first_sample + 16 * g;
        if (labels != NULL) {
            __m512i low = _mm512_cvtepi32_epi64(_mm512_castsi512_si256(best_class));
            __m512i high = _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(best_class, 1));
            _mm512_mask_storeu_epi64(labels + group_first, (__mmask8)valid, low);
            _mm512_mask_storeu_epi64(labels + group_first + 8, (__mmask8)(valid >> 8), high);
        }
        if (counts != NULL) {
            for (int s = 0; s < in_group; s++) {
                int32_t *row = counts + (group_first + s) * n_classes;
                for (int32_t c = 0; c < n_classes; c++) {
                    row[c] = group_counts[16 * (size_t)c + s];
                }
            }
        }
    }
}

#else

/* Turn the count planes of word w (64 samples) into per-sample counts.
 * Record word k gathers the planes of classes k*(64/field_bits) onward,
 * class j of the word at rows j*field_bits + b. After a 64x64 transpose,
 * word k of sample s contains those classes' counts as byte-aligned
 * fields. */
static void LGN_FN(emit_counts)(const lgn_program *p, uint64_t *scratch, const lgn_layout *layout, int T,
                                int w, int64_t first_sample, int n_valid, int32_t *counts, int64_t *labels)
{
    const uint64_t *planes = scratch + layout->planes;
    uint64_t *records = scratch + layout->records;
    int32_t n_record_words = lgn_record_words(p);
    int field_bits = p->field_bits;
    int classes_per_word = 64 / field_bits;
    int nb = p->count_bits;

    for (int32_t k = 0; k < n_record_words; k++) {
        uint64_t *block = records + 64 * (size_t)k;
        for (int r = 0; r < 64; r++) {
            block[r] = 0;
        }
        for (int j = 0; j < classes_per_word; j++) {
            int32_t c = k * classes_per_word + j;
            if (c >= p->n_classes) {
                break;
            }
            for (int b = 0; b < nb; b++) {
                block[j * field_bits + b] = planes[((size_t)c * nb + b) * T + w];
            }
        }
        LGN_FN(transpose64)(block);
    }

    switch (field_bits) {
        case 8: LGN_FN(read_counts)(p, records, first_sample, n_valid, counts, labels, 8); break;
        case 16: LGN_FN(read_counts)(p, records, first_sample, n_valid, counts, labels, 16); break;
        default: LGN_FN(read_counts)(p, records, first_sample, n_valid, counts, labels, 32); break;
    }
}

#endif

/* ------------------------------------------------------------------------
 * Per-width wrappers and the tile driver
 * ------------------------------------------------------------------------ */

#define LGN_DEFINE_WIDTH(T)                                                              \
    static void LGN_FN(eval_T##T)(const lgn_program *p, uint64_t *slots)                 \
    {                                                                                    \
        LGN_FN(eval_runs)(p, slots, T);                                                  \
    }                                                                                    \
    static void LGN_FN(count_T##T)(const lgn_program *p, uint64_t *scratch, const lgn_layout *layout) \
    {                                                                                    \
        LGN_FN(count_classes)(p, scratch, layout, T);                                    \
    }

LGN_DEFINE_WIDTH(1)
LGN_DEFINE_WIDTH(2)
LGN_DEFINE_WIDTH(4)
LGN_DEFINE_WIDTH(8)
LGN_DEFINE_WIDTH(16)

#undef LGN_DEFINE_WIDTH

static void LGN_FN(eval_program)(const lgn_program *p, int T, uint64_t *scratch)
{
    lgn_layout layout = lgn_scratch_layout(p, T);
    uint64_t *slots = scratch + layout.slots;
    switch (T) {
        case 1: LGN_FN(eval_T1)(p, slots); break;
        case 2: LGN_FN(eval_T2)(p, slots); break;
        case 4: LGN_FN(eval_T4)(p, slots); break;
        case 8: LGN_FN(eval_T8)(p, slots); break;
        default: LGN_FN(eval_T16)(p, slots); break;
    }
}

static void LGN_FN(run_tile)(const lgn_program *p, const lgn_batch *batch, int64_t tile, int T,
                             uint64_t *scratch, int32_t *counts, int64_t *labels)
{
    lgn_layout layout = lgn_scratch_layout(p, T);

    LGN_FN(pack_tile)(p, batch, tile, T, scratch);
    LGN_FN(eval_program)(p, T, scratch);
    switch (T) {
        case 1: LGN_FN(count_T1)(p, scratch, &layout); break;
        case 2: LGN_FN(count_T2)(p, scratch, &layout); break;
        case 4: LGN_FN(count_T4)(p, scratch, &layout); break;
        case 8: LGN_FN(count_T8)(p, scratch, &layout); break;
        default: LGN_FN(count_T16)(p, scratch, &layout); break;
    }

    int64_t first = tile * 64 * (int64_t)T;
    for (int w = 0; w < T; w++) {
        int64_t start = first + 64 * (int64_t)w;
        int64_t remaining = batch->n_samples - start;
        if (remaining <= 0) {
            break;
        }
        int n_valid = remaining >= 64 ? 64 : (int)remaining;
        LGN_FN(emit_counts)(p, scratch, &layout, T, w, start, n_valid, counts, labels);
    }
}
