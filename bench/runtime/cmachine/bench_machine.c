// The FMA loops keep every accumulator in a register and use independent chains (more than latency x ports),
// so the loop is bound by FMA issue rate alone: that is the core's f32 peak, the ceiling dense layers are held to.
#include "bench_machine.h"

#include <string.h>
#include <time.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

// Weak: present when OpenBLAS is linked (it is, through CDMLBlas), absent with other BLAS libraries.
extern char *openblas_get_config(void) __attribute__((weak));
extern char *openblas_get_corename(void) __attribute__((weak));

const char *bench_openblas_config(void) { return openblas_get_config ? openblas_get_config() : ""; }
const char *bench_openblas_corename(void) { return openblas_get_corename ? openblas_get_corename() : ""; }

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int bench_cpu_has(const char *isa) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (strcmp(isa, "avx512") == 0) return __builtin_cpu_supports("avx512f");
    if (strcmp(isa, "avx2") == 0) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    (void)isa;
    return 0;
}

#if defined(__x86_64__)
// 16 independent chains of 16 lanes: 512 flops per trip.
__attribute__((target("avx512f"), noinline)) static float fma_loop_avx512(long iterations) {
    __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
    __m512 c0 = _mm512_set1_ps(0.0f), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0;
    __m512 c8 = c0, c9 = c0, c10 = c0, c11 = c0, c12 = c0, c13 = c0, c14 = c0, c15 = c0;
    for (long i = 0; i < iterations; i++) {
        c0 = _mm512_fmadd_ps(c0, a, b); c1 = _mm512_fmadd_ps(c1, a, b); c2 = _mm512_fmadd_ps(c2, a, b);
        c3 = _mm512_fmadd_ps(c3, a, b); c4 = _mm512_fmadd_ps(c4, a, b); c5 = _mm512_fmadd_ps(c5, a, b);
        c6 = _mm512_fmadd_ps(c6, a, b); c7 = _mm512_fmadd_ps(c7, a, b); c8 = _mm512_fmadd_ps(c8, a, b);
        c9 = _mm512_fmadd_ps(c9, a, b); c10 = _mm512_fmadd_ps(c10, a, b); c11 = _mm512_fmadd_ps(c11, a, b);
        c12 = _mm512_fmadd_ps(c12, a, b); c13 = _mm512_fmadd_ps(c13, a, b); c14 = _mm512_fmadd_ps(c14, a, b);
        c15 = _mm512_fmadd_ps(c15, a, b);
    }
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(c0, c1), _mm512_add_ps(c2, c3)),
                             _mm512_add_ps(_mm512_add_ps(c4, c5), _mm512_add_ps(c6, c7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(c8, c9), _mm512_add_ps(c10, c11)),
                                       _mm512_add_ps(_mm512_add_ps(c12, c13), _mm512_add_ps(c14, c15))));
    return _mm512_reduce_add_ps(s);
}

// 12 independent chains of 8 lanes (12 of the 16 ymm registers, the rest hold a, b): 192 flops per trip.
__attribute__((target("avx2,fma"), noinline)) static float fma_loop_avx2(long iterations) {
    __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
    __m256 c0 = _mm256_set1_ps(0.0f), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0;
    __m256 c8 = c0, c9 = c0, c10 = c0, c11 = c0;
    for (long i = 0; i < iterations; i++) {
        c0 = _mm256_fmadd_ps(c0, a, b); c1 = _mm256_fmadd_ps(c1, a, b); c2 = _mm256_fmadd_ps(c2, a, b);
        c3 = _mm256_fmadd_ps(c3, a, b); c4 = _mm256_fmadd_ps(c4, a, b); c5 = _mm256_fmadd_ps(c5, a, b);
        c6 = _mm256_fmadd_ps(c6, a, b); c7 = _mm256_fmadd_ps(c7, a, b); c8 = _mm256_fmadd_ps(c8, a, b);
        c9 = _mm256_fmadd_ps(c9, a, b); c10 = _mm256_fmadd_ps(c10, a, b); c11 = _mm256_fmadd_ps(c11, a, b);
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(c0, c1), _mm256_add_ps(c2, c3)),
                             _mm256_add_ps(_mm256_add_ps(c4, c5), _mm256_add_ps(c6, c7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(c8, c9), _mm256_add_ps(c10, c11)));
    float lanes[8];
    _mm256_storeu_ps(lanes, s);
    return lanes[0] + lanes[1] + lanes[2] + lanes[3] + lanes[4] + lanes[5] + lanes[6] + lanes[7];
}
#endif

volatile float bench_fma_sink;  // keeps the loops' results alive

double bench_fma_peak_gflops(const char *isa, long iterations, int repeats) {
#if defined(__x86_64__)
    if (!bench_cpu_has(isa) || iterations <= 0) return 0;
    int wide = strcmp(isa, "avx512") == 0;
    double flops_per_trip = wide ? 16.0 * 16 * 2 : 12.0 * 8 * 2;
    double best = 0;
    for (int r = 0; r < (repeats > 0 ? repeats : 1); r++) {
        double start = seconds();
        bench_fma_sink = wide ? fma_loop_avx512(iterations) : fma_loop_avx2(iterations);
        double elapsed = seconds() - start;
        if (elapsed > 0 && flops_per_trip * (double)iterations / elapsed / 1e9 > best)
            best = flops_per_trip * (double)iterations / elapsed / 1e9;
    }
    return best;
#else
    (void)isa; (void)iterations; (void)repeats;
    return 0;
#endif
}
