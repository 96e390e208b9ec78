// Vectorised exp-based activations for the runtime's own loops and conv/linear epilogues: SiLU, sigmoid and
// GELU (erf and tanh forms). oneDNN 2.6's eltwise post-ops for these cost 0.4-0.6 ns per element on AVX-512,
// about twice these loops (bench/RESULTS.md), and the Swift loops they replace did not vectorise.
#ifndef DML_ACTIVATION_H
#define DML_ACTIVATION_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    DML_ACTIVATION_SILU = 0,      // x / (1 + exp(-x))
    DML_ACTIVATION_SIGMOID = 1,   // 1 / (1 + exp(-x))
    DML_ACTIVATION_GELU_ERF = 2,  // 0.5 x (1 + erf(x / sqrt 2)), erf as Abramowitz & Stegun 7.1.26
    DML_ACTIVATION_GELU_TANH = 3  // 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))), as x sigmoid(2 ...)
} dml_activation_kind;

/// `y[i] = f(x[i])` for `count` elements; `x` and `y` may be the same buffer. Relative error below 1e-6
/// (GELU erf: 5e-7 absolute in erf). NaN stays NaN.
void dml_activation(dml_activation_kind kind, const float *x, float *y, long count);

/// The instruction set the loops run with: "avx512", "avx2" or "scalar" (the best the CPU has, lowered by
/// DMLKIT_SIMD=avx2|scalar, the setting the index kernels read).
const char *dml_activation_path(void);

/// `dml_activation` on the named path ("avx512", "avx2", "scalar"), for tests and A/B runs; -1 (nothing
/// written) when this CPU or build lacks it.
int dml_activation_on(const char *path, dml_activation_kind kind, const float *x, float *y, long count);

#ifdef __cplusplus
}
#endif

#endif
