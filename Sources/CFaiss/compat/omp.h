/*
 * The part of OpenMP's <omp.h> that the FAISS headers and our shim use.
 *
 * Swift's clang does not see GCC's private <omp.h>, and FAISS's impl/HNSW.h includes it. The lock type matches
 * libgomp's layout (4 bytes, 4-aligned); the shim itself only calls the thread-count functions, resolved from libgomp.
 */
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    unsigned char _x[4];
} __attribute__((__aligned__(4))) omp_lock_t;

void omp_init_lock(omp_lock_t *lock);
void omp_destroy_lock(omp_lock_t *lock);
void omp_set_lock(omp_lock_t *lock);
void omp_unset_lock(omp_lock_t *lock);
void omp_set_num_threads(int threads);
int omp_get_max_threads(void);
int omp_get_num_threads(void);
int omp_get_thread_num(void);
int omp_in_parallel(void);

#ifdef __cplusplus
}
#endif
