// Machine facts for the runtime benchmark: the CPU's measured f32 FMA peak and what the linked OpenBLAS runs.
#ifndef BENCH_MACHINE_H
#define BENCH_MACHINE_H

#ifdef __cplusplus
extern "C" {
#endif

/// Whether this CPU and OS can run the kernel: "avx512" (AVX-512F) or "avx2" (AVX2 + FMA). 0 for unknown names.
int bench_cpu_has(const char *isa);

/// Single-thread f32 FMA throughput in GFLOP/s of a register-only loop for "avx512" or "avx2" (best of `repeats`
/// runs of `iterations` loop trips); 0 when the CPU lacks the instructions or the name is unknown.
double bench_fma_peak_gflops(const char *isa, long iterations, int repeats);

/// OpenBLAS's build configuration string and the kernel family it picked for this CPU, or "" when the BLAS
/// linked in is not OpenBLAS.
const char *bench_openblas_config(void);
const char *bench_openblas_corename(void);

#ifdef __cplusplus
}
#endif

#endif
