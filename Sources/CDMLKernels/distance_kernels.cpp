// SIMD distance kernels and their runtime dispatch (see include/dml_kernels.h).
//
// Each x86 path is compiled with a function-level target attribute, so the package needs no global -m flags and
// the binary still runs on any x86-64; cpuid picks the path once. Elsewhere only the scalar path exists (NEON is
// not written yet: the scalar loops are what such CPUs get).

#include "dml_kernels.h"

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#define DML_X86 1
#include <immintrin.h>
#endif

namespace {

// ---------------------------------------------------------------------------------------------------------------
// Scalar: plain sequential loops (the same order of operations as FAISS's generic build).

float l2sqr_scalar(const float* x, const float* y, size_t d) {
    float s = 0;
    for (size_t i = 0; i < d; i++) {
        const float t = x[i] - y[i];
        s += t * t;
    }
    return s;
}

float ip_scalar(const float* x, const float* y, size_t d) {
    float s = 0;
    for (size_t i = 0; i < d; i++) s += x[i] * y[i];
    return s;
}

float norm_scalar(const float* x, size_t d) { return ip_scalar(x, x, d); }

float l1_scalar(const float* x, const float* y, size_t d) {
    float s = 0;
    for (size_t i = 0; i < d; i++) s += std::fabs(x[i] - y[i]);
    return s;
}

float linf_scalar(const float* x, const float* y, size_t d) {
    float s = 0;
    for (size_t i = 0; i < d; i++) s = std::fmax(s, std::fabs(x[i] - y[i]));
    return s;
}

// Loops shared by every path: inlined into each target-attributed wrapper, so the compiler vectorizes them with
// that path's instructions.
template <float (*Dist)(const float*, const float*, size_t)>
inline __attribute__((always_inline)) void rows(float* out, const float* x, const float* y, size_t d, size_t ny) {
    for (size_t i = 0; i < ny; i++) out[i] = Dist(x, y + i * d, d);
}

inline __attribute__((always_inline)) void madd_loop(size_t n, const float* a, float bf, const float* b, float* c) {
    for (size_t i = 0; i < n; i++) c[i] = a[i] + bf * b[i];
}
inline __attribute__((always_inline)) void add_loop(size_t n, const float* a, const float* b, float* c) {
    for (size_t i = 0; i < n; i++) c[i] = a[i] + b[i];
}
inline __attribute__((always_inline)) void add_scalar_loop(size_t n, const float* a, float b, float* c) {
    for (size_t i = 0; i < n; i++) c[i] = a[i] + b;
}
inline __attribute__((always_inline)) void sub_loop(size_t n, const float* a, const float* b, float* c) {
    for (size_t i = 0; i < n; i++) c[i] = a[i] - b[i];
}

inline __attribute__((always_inline)) void pq_tables_loop(size_t m, size_t ksub, const float* centroids, size_t nx,
                                                           const float* x, int inner_product, float* tables) {
    for (size_t i = 0; i < nx; i++) {
        for (size_t j = 0; j < m; j++) {
            const float x0 = x[i * 2 * m + 2 * j], x1 = x[i * 2 * m + 2 * j + 1];
            const float* c = centroids + j * ksub * 2;
            float* out = tables + (i * m + j) * ksub;
            if (inner_product) {
                for (size_t k = 0; k < ksub; k++) out[k] = x0 * c[2 * k] + x1 * c[2 * k + 1];
            } else {
                for (size_t k = 0; k < ksub; k++) {
                    const float t0 = x0 - c[2 * k], t1 = x1 - c[2 * k + 1];
                    out[k] = t0 * t0 + t1 * t1;
                }
            }
        }
    }
}

void l2sqr_ny_scalar(float* dis, const float* x, const float* y, size_t d, size_t ny) {
    rows<l2sqr_scalar>(dis, x, y, d, ny);
}
void ip_ny_scalar(float* ip, const float* x, const float* y, size_t d, size_t ny) {
    rows<ip_scalar>(ip, x, y, d, ny);
}
void transposed_scalar(float* dis, const float* x, const float* y, const float* y_sqlen, size_t d,
                       size_t d_offset, size_t ny) {
    const float xs = norm_scalar(x, d);
    for (size_t i = 0; i < ny; i++) {
        float dp = 0;
        for (size_t j = 0; j < d; j++) dp += x[j] * y[i + j * d_offset];
        dis[i] = xs + y_sqlen[i] - 2 * dp;
    }
}
void madd_scalar(size_t n, const float* a, float bf, const float* b, float* c) { madd_loop(n, a, bf, b, c); }
void add_scalar(size_t n, const float* a, const float* b, float* c) { add_loop(n, a, b, c); }
void add_scalar_scalar(size_t n, const float* a, float b, float* c) { add_scalar_loop(n, a, b, c); }
void sub_scalar(size_t n, const float* a, const float* b, float* c) { sub_loop(n, a, b, c); }
void pq_scalar(size_t m, size_t ksub, const float* cen, size_t nx, const float* x, int ip, float* t) {
    pq_tables_loop(m, ksub, cen, nx, x, ip, t);
}

void l2sqr_by_id_scalar(float* dis, const float* x, const float* base, size_t d, const int32_t* ids, size_t n) {
    for (size_t i = 0; i < n; i++) dis[i] = l2sqr_scalar(x, base + size_t(ids[i]) * d, d);
}
void ip_by_id_scalar(float* ip, const float* x, const float* base, size_t d, const int32_t* ids, size_t n) {
    for (size_t i = 0; i < n; i++) ip[i] = ip_scalar(x, base + size_t(ids[i]) * d, d);
}

const DMLDistanceKernels scalar_kernels = {
    "scalar",     l2sqr_scalar, ip_scalar,   norm_scalar, l1_scalar,         linf_scalar, l2sqr_ny_scalar,
    ip_ny_scalar, transposed_scalar, madd_scalar, add_scalar, add_scalar_scalar, sub_scalar, pq_scalar,
    l2sqr_by_id_scalar, ip_by_id_scalar,
};

#if DML_X86

// A scan over many rows is memory-bound: rows a few KiB ahead are prefetched so more lines are in flight than
// the hardware prefetcher keeps on its own.
inline __attribute__((always_inline)) void prefetch_row_ahead(const float* y, size_t i, size_t d, size_t ny) {
    constexpr size_t kAheadBytes = 4096;
    const size_t ahead = i + kAheadBytes / (d * sizeof(float)) + 1;
    if (ahead >= ny) return;
    const char* row = reinterpret_cast<const char*>(y + ahead * d);
    for (size_t b = 0; b < d * sizeof(float); b += 64) _mm_prefetch(row + b, _MM_HINT_T0);
}
// Rows picked by id, four at a time (one query load feeds four rows; four independent accumulator chains), the
// next four rows' cache lines prefetched while these are computed. Four(x, y0..y3, d, out) must give per row the
// same value as One(x, y, d).
template <void (*Four)(const float*, const float* const*, size_t, float*), float (*One)(const float*, const float*, size_t)>
inline __attribute__((always_inline)) void by_id(float* out, const float* x, const float* base, size_t d,
                                                 const int32_t* ids, size_t n) {
    const size_t row_bytes = d * sizeof(float);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        for (size_t r = i + 4; r < i + 8 && r < n; r++) {
            const char* row = reinterpret_cast<const char*>(base + size_t(ids[r]) * d);
            for (size_t b = 0; b < row_bytes; b += 64) _mm_prefetch(row + b, _MM_HINT_T0);
        }
        const float* rows4[4] = {base + size_t(ids[i]) * d, base + size_t(ids[i + 1]) * d,
                                 base + size_t(ids[i + 2]) * d, base + size_t(ids[i + 3]) * d};
        Four(x, rows4, d, out + i);
    }
    for (; i < n; i++) out[i] = One(x, base + size_t(ids[i]) * d, d);
}

// ---------------------------------------------------------------------------------------------------------------
// AVX2 + FMA: 8 lanes, two accumulators, a masked load for the tail (masked-off lanes read nothing).

#define AVX2 __attribute__((target("avx2,fma")))

AVX2 inline __m256i tail_mask8(size_t rem) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(rem)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

AVX2 inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AVX2 inline float hmax8(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

struct L2Op8 {
    AVX2 static __m256 step(__m256 acc, __m256 a, __m256 b) {
        const __m256 t = _mm256_sub_ps(a, b);
        return _mm256_fmadd_ps(t, t, acc);
    }
    AVX2 static __m256 merge(__m256 a, __m256 b) { return _mm256_add_ps(a, b); }
    AVX2 static float reduce(__m256 v) { return hsum8(v); }
};
struct IPOp8 {
    AVX2 static __m256 step(__m256 acc, __m256 a, __m256 b) { return _mm256_fmadd_ps(a, b, acc); }
    AVX2 static __m256 merge(__m256 a, __m256 b) { return _mm256_add_ps(a, b); }
    AVX2 static float reduce(__m256 v) { return hsum8(v); }
};
AVX2 inline __m256 abs8(__m256 v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }
struct L1Op8 {
    AVX2 static __m256 step(__m256 acc, __m256 a, __m256 b) { return _mm256_add_ps(acc, abs8(_mm256_sub_ps(a, b))); }
    AVX2 static __m256 merge(__m256 a, __m256 b) { return _mm256_add_ps(a, b); }
    AVX2 static float reduce(__m256 v) { return hsum8(v); }
};
struct LinfOp8 {
    AVX2 static __m256 step(__m256 acc, __m256 a, __m256 b) { return _mm256_max_ps(acc, abs8(_mm256_sub_ps(a, b))); }
    AVX2 static __m256 merge(__m256 a, __m256 b) { return _mm256_max_ps(a, b); }
    AVX2 static float reduce(__m256 v) { return hmax8(v); }
};

template <class Op>
AVX2 inline float reduce8(const float* x, const float* y, size_t d) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= d; i += 16) {
        a0 = Op::step(a0, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i));
        a1 = Op::step(a1, _mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8));
    }
    if (i + 8 <= d) {
        a0 = Op::step(a0, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i));
        i += 8;
    }
    if (i < d) {
        const __m256i m = tail_mask8(d - i);
        a1 = Op::step(a1, _mm256_maskload_ps(x + i, m), _mm256_maskload_ps(y + i, m));
    }
    return Op::reduce(Op::merge(a0, a1));
}

// reduce8 on four rows at once, each row with reduce8's own steps (so bitwise its result).
template <class Op>
AVX2 inline void reduce8_x4(const float* x, const float* const* y, size_t d, float* out) {
    __m256 a0[4], a1[4];
    for (int r = 0; r < 4; r++) a0[r] = a1[r] = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= d; i += 16) {
        const __m256 x0 = _mm256_loadu_ps(x + i), x1 = _mm256_loadu_ps(x + i + 8);
        for (int r = 0; r < 4; r++) {
            a0[r] = Op::step(a0[r], x0, _mm256_loadu_ps(y[r] + i));
            a1[r] = Op::step(a1[r], x1, _mm256_loadu_ps(y[r] + i + 8));
        }
    }
    if (i + 8 <= d) {
        const __m256 x0 = _mm256_loadu_ps(x + i);
        for (int r = 0; r < 4; r++) a0[r] = Op::step(a0[r], x0, _mm256_loadu_ps(y[r] + i));
        i += 8;
    }
    if (i < d) {
        const __m256i m = tail_mask8(d - i);
        const __m256 x1 = _mm256_maskload_ps(x + i, m);
        for (int r = 0; r < 4; r++) a1[r] = Op::step(a1[r], x1, _mm256_maskload_ps(y[r] + i, m));
    }
    for (int r = 0; r < 4; r++) out[r] = Op::reduce(Op::merge(a0[r], a1[r]));
}

AVX2 float l2sqr_avx2(const float* x, const float* y, size_t d) { return reduce8<L2Op8>(x, y, d); }
AVX2 float ip_avx2(const float* x, const float* y, size_t d) { return reduce8<IPOp8>(x, y, d); }
AVX2 float norm_avx2(const float* x, size_t d) { return reduce8<IPOp8>(x, x, d); }
AVX2 float l1_avx2(const float* x, const float* y, size_t d) { return reduce8<L1Op8>(x, y, d); }
AVX2 float linf_avx2(const float* x, const float* y, size_t d) { return reduce8<LinfOp8>(x, y, d); }
AVX2 void l2sqr_ny_avx2(float* dis, const float* x, const float* y, size_t d, size_t ny) {
    for (size_t i = 0; i < ny; i++) {
        prefetch_row_ahead(y, i, d, ny);
        dis[i] = reduce8<L2Op8>(x, y + i * d, d);
    }
}
AVX2 void ip_ny_avx2(float* ip, const float* x, const float* y, size_t d, size_t ny) {
    for (size_t i = 0; i < ny; i++) {
        prefetch_row_ahead(y, i, d, ny);
        ip[i] = reduce8<IPOp8>(x, y + i * d, d);
    }
}
// Eight vectors at a time: their components are contiguous in each row of y.
AVX2 void transposed_avx2(float* dis, const float* x, const float* y, const float* y_sqlen, size_t d,
                          size_t d_offset, size_t ny) {
    const float xs = reduce8<IPOp8>(x, x, d);
    for (size_t i = 0; i < ny; i += 8) {
        const __m256i m = tail_mask8(ny - i < 8 ? ny - i : 8);
        __m256 dp = _mm256_setzero_ps();
        for (size_t j = 0; j < d; j++)
            dp = _mm256_fmadd_ps(_mm256_set1_ps(x[j]), _mm256_maskload_ps(y + j * d_offset + i, m), dp);
        const __m256 r = _mm256_fnmadd_ps(_mm256_set1_ps(2.0f), dp,
                                          _mm256_add_ps(_mm256_set1_ps(xs), _mm256_maskload_ps(y_sqlen + i, m)));
        _mm256_maskstore_ps(dis + i, m, r);
    }
}
AVX2 void madd_avx2(size_t n, const float* a, float bf, const float* b, float* c) { madd_loop(n, a, bf, b, c); }
AVX2 void add_avx2(size_t n, const float* a, const float* b, float* c) { add_loop(n, a, b, c); }
AVX2 void add_scalar_avx2(size_t n, const float* a, float b, float* c) { add_scalar_loop(n, a, b, c); }
AVX2 void sub_avx2(size_t n, const float* a, const float* b, float* c) { sub_loop(n, a, b, c); }
AVX2 void pq_avx2(size_t m, size_t ksub, const float* cen, size_t nx, const float* x, int ip, float* t) {
    pq_tables_loop(m, ksub, cen, nx, x, ip, t);
}

AVX2 void l2sqr4_avx2(const float* x, const float* const* y, size_t d, float* out) { reduce8_x4<L2Op8>(x, y, d, out); }
AVX2 void ip4_avx2(const float* x, const float* const* y, size_t d, float* out) { reduce8_x4<IPOp8>(x, y, d, out); }
AVX2 void l2sqr_by_id_avx2(float* dis, const float* x, const float* base, size_t d, const int32_t* ids, size_t n) {
    by_id<l2sqr4_avx2, l2sqr_avx2>(dis, x, base, d, ids, n);
}
AVX2 void ip_by_id_avx2(float* ip, const float* x, const float* base, size_t d, const int32_t* ids, size_t n) {
    by_id<ip4_avx2, ip_avx2>(ip, x, base, d, ids, n);
}

const DMLDistanceKernels avx2_kernels = {
    "avx2",     l2sqr_avx2,      ip_avx2,   norm_avx2, l1_avx2,         linf_avx2, l2sqr_ny_avx2,
    ip_ny_avx2, transposed_avx2, madd_avx2, add_avx2,  add_scalar_avx2, sub_avx2,  pq_avx2,
    l2sqr_by_id_avx2, ip_by_id_avx2,
};

// ---------------------------------------------------------------------------------------------------------------
// AVX-512F: 16 lanes, two accumulators, a masked tail.

#define AVX512 __attribute__((target("avx512f")))

AVX512 inline __mmask16 tail_mask16(size_t rem) { return static_cast<__mmask16>((1u << rem) - 1u); }
AVX512 inline __m512 abs16(__m512 v) {
    return _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(0x7fffffff)));
}

struct L2Op16 {
    AVX512 static __m512 step(__m512 acc, __m512 a, __m512 b) {
        const __m512 t = _mm512_sub_ps(a, b);
        return _mm512_fmadd_ps(t, t, acc);
    }
    AVX512 static __m512 merge(__m512 a, __m512 b) { return _mm512_add_ps(a, b); }
    AVX512 static float reduce(__m512 v) { return _mm512_reduce_add_ps(v); }
};
struct IPOp16 {
    AVX512 static __m512 step(__m512 acc, __m512 a, __m512 b) { return _mm512_fmadd_ps(a, b, acc); }
    AVX512 static __m512 merge(__m512 a, __m512 b) { return _mm512_add_ps(a, b); }
    AVX512 static float reduce(__m512 v) { return _mm512_reduce_add_ps(v); }
};
struct L1Op16 {
    AVX512 static __m512 step(__m512 acc, __m512 a, __m512 b) { return _mm512_add_ps(acc, abs16(_mm512_sub_ps(a, b))); }
    AVX512 static __m512 merge(__m512 a, __m512 b) { return _mm512_add_ps(a, b); }
    AVX512 static float reduce(__m512 v) { return _mm512_reduce_add_ps(v); }
};
struct LinfOp16 {
    AVX512 static __m512 step(__m512 acc, __m512 a, __m512 b) { return _mm512_max_ps(acc, abs16(_mm512_sub_ps(a, b))); }
    AVX512 static __m512 merge(__m512 a, __m512 b) { return _mm512_max_ps(a, b); }
    AVX512 static float reduce(__m512 v) { return _mm512_reduce_max_ps(v); }
};

template <class Op>
AVX512 inline float reduce16(const float* x, const float* y, size_t d) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= d; i += 32) {
        a0 = Op::step(a0, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i));
        a1 = Op::step(a1, _mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(y + i + 16));
    }
    if (i + 16 <= d) {
        a0 = Op::step(a0, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i));
        i += 16;
    }
    if (i < d) {
        const __mmask16 m = tail_mask16(d - i);
        a1 = Op::step(a1, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i));
    }
    return Op::reduce(Op::merge(a0, a1));
}

// reduce16 on four rows at once, each row with reduce16's own steps (so bitwise its result).
template <class Op>
AVX512 inline void reduce16_x4(const float* x, const float* const* y, size_t d, float* out) {
    __m512 a0[4], a1[4];
    for (int r = 0; r < 4; r++) a0[r] = a1[r] = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= d; i += 32) {
        const __m512 x0 = _mm512_loadu_ps(x + i), x1 = _mm512_loadu_ps(x + i + 16);
        for (int r = 0; r < 4; r++) {
            a0[r] = Op::step(a0[r], x0, _mm512_loadu_ps(y[r] + i));
            a1[r] = Op::step(a1[r], x1, _mm512_loadu_ps(y[r] + i + 16));
        }
    }
    if (i + 16 <= d) {
        const __m512 x0 = _mm512_loadu_ps(x + i);
        for (int r = 0; r < 4; r++) a0[r] = Op::step(a0[r], x0, _mm512_loadu_ps(y[r] + i));
        i += 16;
    }
    if (i < d) {
        const __mmask16 m = tail_mask16(d - i);
        const __m512 x1 = _mm512_maskz_loadu_ps(m, x + i);
        for (int r = 0; r < 4; r++) a1[r] = Op::step(a1[r], x1, _mm512_maskz_loadu_ps(m, y[r] + i));
    }
    for (int r = 0; r < 4; r++) out[r] = Op::reduce(Op::merge(a0[r], a1[r]));
}

AVX512 float l2sqr_avx512(const float* x, const float* y, size_t d) { return reduce16<L2Op16>(x, y, d); }
AVX512 float ip_avx512(const float* x, const float* y, size_t d) { return reduce16<IPOp16>(x, y, d); }
AVX512 float norm_avx512(const float* x, size_t d) { return reduce16<IPOp16>(x, x, d); }
AVX512 float l1_avx512(const float* x, const float* y, size_t d) { return reduce16<L1Op16>(x, y, d); }
AVX512 float linf_avx512(const float* x, const float* y, size_t d) { return reduce16<LinfOp16>(x, y, d); }
AVX512 void l2sqr_ny_avx512(float* dis, const float* x, const float* y, size_t d, size_t ny) {
    for (size_t i = 0; i < ny; i++) {
        prefetch_row_ahead(y, i, d, ny);
        dis[i] = reduce16<L2Op16>(x, y + i * d, d);
    }
}
AVX512 void ip_ny_avx512(float* ip, const float* x, const float* y, size_t d, size_t ny) {
    for (size_t i = 0; i < ny; i++) {
        prefetch_row_ahead(y, i, d, ny);
        ip[i] = reduce16<IPOp16>(x, y + i * d, d);
    }
}
AVX512 void transposed_avx512(float* dis, const float* x, const float* y, const float* y_sqlen, size_t d,
                              size_t d_offset, size_t ny) {
    const float xs = reduce16<IPOp16>(x, x, d);
    for (size_t i = 0; i < ny; i += 16) {
        const __mmask16 m = tail_mask16(ny - i < 16 ? ny - i : 16);
        __m512 dp = _mm512_setzero_ps();
        for (size_t j = 0; j < d; j++)
            dp = _mm512_fmadd_ps(_mm512_set1_ps(x[j]), _mm512_maskz_loadu_ps(m, y + j * d_offset + i), dp);
        const __m512 r = _mm512_fnmadd_ps(_mm512_set1_ps(2.0f), dp,
                                          _mm512_add_ps(_mm512_set1_ps(xs), _mm512_maskz_loadu_ps(m, y_sqlen + i)));
        _mm512_mask_storeu_ps(dis + i, m, r);
    }
}
AVX512 void madd_avx512(size_t n, const float* a, float bf, const float* b, float* c) { madd_loop(n, a, bf, b, c); }
AVX512 void add_avx512(size_t n, const float* a, const float* b, float* c) { add_loop(n, a, b, c); }
AVX512 void add_scalar_avx512(size_t n, const float* a, float b, float* c) { add_scalar_loop(n, a, b, c); }
AVX512 void sub_avx512(size_t n, const float* a, const float* b, float* c) { sub_loop(n, a, b, c); }
AVX512 void pq_avx512(size_t m, size_t ksub, const float* cen, size_t nx, const float* x, int ip, float* t) {
    pq_tables_loop(m, ksub, cen, nx, x, ip, t);
}

AVX512 void l2sqr4_avx512(const float* x, const float* const* y, size_t d, float* out) {
    reduce16_x4<L2Op16>(x, y, d, out);
}
AVX512 void ip4_avx512(const float* x, const float* const* y, size_t d, float* out) {
    reduce16_x4<IPOp16>(x, y, d, out);
}
AVX512 void l2sqr_by_id_avx512(float* dis, const float* x, const float* base, size_t d, const int32_t* ids,
                               size_t n) {
    by_id<l2sqr4_avx512, l2sqr_avx512>(dis, x, base, d, ids, n);
}
AVX512 void ip_by_id_avx512(float* ip, const float* x, const float* base, size_t d, const int32_t* ids, size_t n) {
    by_id<ip4_avx512, ip_avx512>(ip, x, base, d, ids, n);
}

const DMLDistanceKernels avx512_kernels = {
    "avx512",     l2sqr_avx512,      ip_avx512,   norm_avx512, l1_avx512,         linf_avx512, l2sqr_ny_avx512,
    ip_ny_avx512, transposed_avx512, madd_avx512, add_avx512,  add_scalar_avx512, sub_avx512,  pq_avx512,
    l2sqr_by_id_avx512, ip_by_id_avx512,
};

bool cpu_has_avx2() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }
bool cpu_has_avx512() { return __builtin_cpu_supports("avx512f") && cpu_has_avx2(); }

#endif  // DML_X86

// ---------------------------------------------------------------------------------------------------------------
// Dispatch.

const DMLDistanceKernels* best_available() {
#if DML_X86
    if (cpu_has_avx512()) return &avx512_kernels;
    if (cpu_has_avx2()) return &avx2_kernels;
#endif
    return &scalar_kernels;
}

}  // namespace

// The path a DMLKIT_SIMD value asks for, lowered to what the CPU has ("avx512" on an AVX2-only CPU gives avx2).
extern "C" const DMLDistanceKernels* dml_distance_kernels_for_setting(const char* wanted) {
    const DMLDistanceKernels* best = best_available();
    if (wanted == nullptr || *wanted == 0) return best;
    if (std::strcmp(wanted, "scalar") == 0) return &scalar_kernels;
#if DML_X86
    if (std::strcmp(wanted, "avx2") == 0 && cpu_has_avx2()) return &avx2_kernels;
#endif
    return best;
}

namespace {

std::atomic<const DMLDistanceKernels*> active{nullptr};

// Counting: the wrappers count, then forward to `counted` (the path that was active when counting began).
std::atomic<unsigned long long> calls{0};
std::atomic<const DMLDistanceKernels*> counted{&scalar_kernels};

inline const DMLDistanceKernels* inner() {
    calls.fetch_add(1, std::memory_order_relaxed);
    return counted.load(std::memory_order_relaxed);
}

const DMLDistanceKernels counting_kernels = {
    "counting",
    [](const float* x, const float* y, size_t d) { return inner()->l2sqr(x, y, d); },
    [](const float* x, const float* y, size_t d) { return inner()->inner_product(x, y, d); },
    [](const float* x, size_t d) { return inner()->norm_l2sqr(x, d); },
    [](const float* x, const float* y, size_t d) { return inner()->l1(x, y, d); },
    [](const float* x, const float* y, size_t d) { return inner()->linf(x, y, d); },
    [](float* o, const float* x, const float* y, size_t d, size_t n) { inner()->l2sqr_ny(o, x, y, d, n); },
    [](float* o, const float* x, const float* y, size_t d, size_t n) { inner()->inner_products_ny(o, x, y, d, n); },
    [](float* o, const float* x, const float* y, const float* s, size_t d, size_t off, size_t n) {
        inner()->l2sqr_ny_transposed(o, x, y, s, d, off, n);
    },
    [](size_t n, const float* a, float bf, const float* b, float* c) { inner()->madd(n, a, bf, b, c); },
    [](size_t n, const float* a, const float* b, float* c) { inner()->add(n, a, b, c); },
    [](size_t n, const float* a, float b, float* c) { inner()->add_scalar(n, a, b, c); },
    [](size_t n, const float* a, const float* b, float* c) { inner()->sub(n, a, b, c); },
    [](size_t m, size_t ksub, const float* cen, size_t nx, const float* x, int ip, float* t) {
        inner()->pq_tables_dsub2(m, ksub, cen, nx, x, ip, t);
    },
    [](float* o, const float* x, const float* b, size_t d, const int32_t* ids, size_t n) {
        inner()->l2sqr_by_id(o, x, b, d, ids, n);
    },
    [](float* o, const float* x, const float* b, size_t d, const int32_t* ids, size_t n) {
        inner()->inner_products_by_id(o, x, b, d, ids, n);
    },
};

}  // namespace

extern "C" const DMLDistanceKernels* dml_distance_kernels(void) {
    const DMLDistanceKernels* k = active.load(std::memory_order_acquire);
    if (k != nullptr) return k;
    const DMLDistanceKernels* chosen = dml_distance_kernels_for_setting(std::getenv("DMLKIT_SIMD"));
    active.compare_exchange_strong(k, chosen, std::memory_order_acq_rel);
    return active.load(std::memory_order_acquire);
}

extern "C" const DMLDistanceKernels* dml_distance_kernels_named(const char* name) {
    if (name == nullptr) return nullptr;
    if (std::strcmp(name, "scalar") == 0) return &scalar_kernels;
#if DML_X86
    if (std::strcmp(name, "avx2") == 0 && cpu_has_avx2()) return &avx2_kernels;
    if (std::strcmp(name, "avx512") == 0 && cpu_has_avx512()) return &avx512_kernels;
#endif
    return nullptr;
}

extern "C" int dml_distance_kernels_select(const char* name) {
    const DMLDistanceKernels* k = dml_distance_kernels_named(name);
    if (k == nullptr) return -1;
    active.store(k, std::memory_order_release);
    return 0;
}

extern "C" void dml_distance_kernels_set_counting(int on) {
    const DMLDistanceKernels* now = dml_distance_kernels();
    if (on) {
        if (now == &counting_kernels) return;
        counted.store(now, std::memory_order_relaxed);
        calls.store(0, std::memory_order_relaxed);
        active.store(&counting_kernels, std::memory_order_release);
    } else if (now == &counting_kernels) {
        active.store(counted.load(std::memory_order_relaxed), std::memory_order_release);
    }
}

extern "C" unsigned long long dml_distance_kernels_call_count(void) { return calls.load(std::memory_order_relaxed); }
