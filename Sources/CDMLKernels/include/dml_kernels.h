/*
 * SIMD float distance kernels with runtime CPU dispatch (AVX-512, AVX2+FMA, scalar).
 *
 * One table of function pointers per instruction set; `dml_distance_kernels()` is the one chosen once from cpuid
 * (or from DMLKIT_SIMD=avx512|avx2|scalar, which can only lower the level: a path the CPU lacks is never chosen).
 * CFaiss routes FAISS 1.7.3's distance symbols (the archive member distances_simd.cpp.o) through this table.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// The kernels of one instruction-set path. Semantics are those of FAISS 1.7.3's `fvec_*` functions.
typedef struct DMLDistanceKernels {
    /// "avx512", "avx2" or "scalar".
    const char *name;
    float (*l2sqr)(const float *x, const float *y, size_t d);
    float (*inner_product)(const float *x, const float *y, size_t d);
    float (*norm_l2sqr)(const float *x, size_t d);
    float (*l1)(const float *x, const float *y, size_t d);
    float (*linf)(const float *x, const float *y, size_t d);
    /// dis[i] = |x - y_i|^2 for `ny` rows of `y` (row stride d).
    void (*l2sqr_ny)(float *dis, const float *x, const float *y, size_t d, size_t ny);
    /// ip[i] = <x, y_i> for `ny` rows of `y` (row stride d).
    void (*inner_products_ny)(float *ip, const float *x, const float *y, size_t d, size_t ny);
    /// dis[i] = |x|^2 + y_sqlen[i] - 2 <x, y[:, i]> where y is d rows of stride d_offset (column i is vector i).
    void (*l2sqr_ny_transposed)(float *dis, const float *x, const float *y, const float *y_sqlen, size_t d,
                                size_t d_offset, size_t ny);
    /// c = a + bf * b.
    void (*madd)(size_t n, const float *a, float bf, const float *b, float *c);
    /// c = a + b.
    void (*add)(size_t n, const float *a, const float *b, float *c);
    /// c = a + b (b a scalar).
    void (*add_scalar)(size_t n, const float *a, float b, float *c);
    /// c = a - b.
    void (*sub)(size_t n, const float *a, const float *b, float *c);
    /// tables[(i * m + j) * ksub + k]: L2 (or inner product) of x_i's 2-d sub-vector j with centroid (j, k);
    /// centroids are m x ksub x 2, x is nx x 2m.
    void (*pq_tables_dsub2)(size_t m, size_t ksub, const float *centroids, size_t nx, const float *x,
                            int inner_product, float *tables);
    /// dis[i] = |x - base_{ids[i]}|^2 for `n` rows of `base` picked by position (row stride d); each value is
    /// bitwise the one `l2sqr` gives for that row. Rows are read four at a time with the next four prefetched
    /// (graph searches: the rows are scattered).
    void (*l2sqr_by_id)(float *dis, const float *x, const float *base, size_t d, const int32_t *ids, size_t n);
    /// ip[i] = <x, base_{ids[i]}>, the same way (bitwise `inner_product` per row).
    void (*inner_products_by_id)(float *ip, const float *x, const float *base, size_t d, const int32_t *ids,
                                 size_t n);
} DMLDistanceKernels;

/// The active kernels (chosen on first use; never NULL).
const DMLDistanceKernels *dml_distance_kernels(void);

/// The kernels of one path ("avx512", "avx2", "scalar"), or NULL when unknown or this CPU lacks it.
const DMLDistanceKernels *dml_distance_kernels_named(const char *name);

/// The path a DMLKIT_SIMD value selects: "scalar", or "avx2" where the CPU has it; anything else (NULL, empty,
/// "avx512", unknown) gives the best path the CPU has.
const DMLDistanceKernels *dml_distance_kernels_for_setting(const char *value);

/// Makes a path the active one (tests and benches); returns 0, or -1 (nothing changed) when it is unavailable.
int dml_distance_kernels_select(const char *name);

/// Test hook: while on, every call through the active table is counted (the counting wrappers then call the
/// chosen path). Proves FAISS's own indexes reach these kernels.
void dml_distance_kernels_set_counting(int on);
/// Calls counted since counting was last switched on.
unsigned long long dml_distance_kernels_call_count(void);

#ifdef __cplusplus
}
#endif
