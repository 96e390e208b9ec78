// FAISS 1.7.3's distance functions, routed through DMLKit's SIMD kernels.
//
// Debian's libfaiss.a is a generic x86-64 build: its member distances_simd.cpp.o holds scalar loops. This file
// defines every global symbol of that member (same names, signatures and results), so the static linker resolves
// FAISS's own calls (Flat, HNSW, IVF, PQ tables, k-means) here and never pulls the member in. If a FAISS update
// adds a symbol to the member that something calls, the member is pulled and the link fails with duplicate
// definitions; DMLIndexTests also compares the member's symbol list with this file's (FaissKernelLinkTests).

#include <cmath>
#include <cstddef>

#include "dml_kernels.h"

namespace faiss {

namespace {
inline const DMLDistanceKernels* k() { return dml_distance_kernels(); }

size_t argmin_or_zero(const float* dis, size_t n) {
    size_t best = 0;
    float min_dis = HUGE_VALF;
    for (size_t i = 0; i < n; i++) {
        if (dis[i] < min_dis) {
            min_dis = dis[i];
            best = i;
        }
    }
    return best;
}
}  // namespace

// The reference versions (FAISS keeps them for its tests): plain scalar loops.
float fvec_L2sqr_ref(const float* x, const float* y, size_t d) {
    return dml_distance_kernels_named("scalar")->l2sqr(x, y, d);
}
float fvec_inner_product_ref(const float* x, const float* y, size_t d) {
    return dml_distance_kernels_named("scalar")->inner_product(x, y, d);
}
float fvec_norm_L2sqr_ref(const float* x, size_t d) { return dml_distance_kernels_named("scalar")->norm_l2sqr(x, d); }
float fvec_L1_ref(const float* x, const float* y, size_t d) { return dml_distance_kernels_named("scalar")->l1(x, y, d); }
float fvec_Linf_ref(const float* x, const float* y, size_t d) {
    return dml_distance_kernels_named("scalar")->linf(x, y, d);
}
void fvec_L2sqr_ny_ref(float* dis, const float* x, const float* y, size_t d, size_t ny) {
    dml_distance_kernels_named("scalar")->l2sqr_ny(dis, x, y, d, ny);
}
void fvec_inner_products_ny_ref(float* ip, const float* x, const float* y, size_t d, size_t ny) {
    dml_distance_kernels_named("scalar")->inner_products_ny(ip, x, y, d, ny);
}
void fvec_L2sqr_ny_y_transposed_ref(float* dis, const float* x, const float* y, const float* y_sqlen, size_t d,
                                    size_t d_offset, size_t ny) {
    dml_distance_kernels_named("scalar")->l2sqr_ny_transposed(dis, x, y, y_sqlen, d, d_offset, ny);
}
size_t fvec_L2sqr_ny_nearest_ref(float* tmp, const float* x, const float* y, size_t d, size_t ny) {
    fvec_L2sqr_ny_ref(tmp, x, y, d, ny);
    return argmin_or_zero(tmp, ny);
}
size_t fvec_L2sqr_ny_nearest_y_transposed_ref(float* tmp, const float* x, const float* y, const float* y_sqlen,
                                              size_t d, size_t d_offset, size_t ny) {
    fvec_L2sqr_ny_y_transposed_ref(tmp, x, y, y_sqlen, d, d_offset, ny);
    return argmin_or_zero(tmp, ny);
}

// The dispatched versions.
float fvec_L2sqr(const float* x, const float* y, size_t d) { return k()->l2sqr(x, y, d); }
float fvec_inner_product(const float* x, const float* y, size_t d) { return k()->inner_product(x, y, d); }
float fvec_norm_L2sqr(const float* x, size_t d) { return k()->norm_l2sqr(x, d); }
float fvec_L1(const float* x, const float* y, size_t d) { return k()->l1(x, y, d); }
float fvec_Linf(const float* x, const float* y, size_t d) { return k()->linf(x, y, d); }
void fvec_L2sqr_ny(float* dis, const float* x, const float* y, size_t d, size_t ny) {
    k()->l2sqr_ny(dis, x, y, d, ny);
}
void fvec_inner_products_ny(float* ip, const float* x, const float* y, size_t d, size_t ny) {
    k()->inner_products_ny(ip, x, y, d, ny);
}
size_t fvec_L2sqr_ny_nearest(float* tmp, const float* x, const float* y, size_t d, size_t ny) {
    k()->l2sqr_ny(tmp, x, y, d, ny);
    return argmin_or_zero(tmp, ny);
}
size_t fvec_L2sqr_ny_nearest_y_transposed(float* tmp, const float* x, const float* y, const float* y_sqlen,
                                          size_t d, size_t d_offset, size_t ny) {
    k()->l2sqr_ny_transposed(tmp, x, y, y_sqlen, d, d_offset, ny);
    return argmin_or_zero(tmp, ny);
}
void fvec_madd(size_t n, const float* a, float bf, const float* b, float* c) { k()->madd(n, a, bf, b, c); }
// FAISS's contract: -1 when n is 0 (or every value is >= 1e20).
int fvec_madd_and_argmin(size_t n, const float* a, float bf, const float* b, float* c) {
    k()->madd(n, a, bf, b, c);
    float vmin = 1e20f;
    int imin = -1;
    for (size_t i = 0; i < n; i++) {
        if (c[i] < vmin) {
            vmin = c[i];
            imin = static_cast<int>(i);
        }
    }
    return imin;
}
void fvec_add(size_t d, const float* a, const float* b, float* c) { k()->add(d, a, b, c); }
void fvec_add(size_t d, const float* a, float b, float* c) { k()->add_scalar(d, a, b, c); }
void fvec_sub(size_t d, const float* a, const float* b, float* c) { k()->sub(d, a, b, c); }
// d is the full dimension (2 per sub-quantizer); centroids are (d/2) x ksub x 2.
void compute_PQ_dis_tables_dsub2(size_t d, size_t ksub, const float* centroids, size_t nx, const float* x,
                                 bool is_inner_product, float* dis_tables) {
    k()->pq_tables_dsub2(d / 2, ksub, centroids, nx, x, is_inner_product ? 1 : 0, dis_tables);
}

}  // namespace faiss
