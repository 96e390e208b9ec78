#include "dml_activation.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

// exp(a) as 2^k * p(r), r = a - k ln 2 (ln 2 split in two so k * c1 is exact), |r| <= ln 2 / 2, p the degree-6
// Taylor polynomial (relative error ~1.2e-7). Arguments are clamped to [-87, 87] so 1 + exp stays invertible
// without subnormals. The same constants in every path.
#define EXP_LO -87.0f
#define EXP_HI 87.0f
#define LOG2E 1.44269504088896341f
#define LN2_HI 0.693145751953125f
#define LN2_LO 1.428606765330187e-06f
#define SQRT_HALF 0.70710678118654752f
#define ERF_P 0.3275911f
#define ERF_ONE 8.0f  // erf is 1 in float32 from here on (and infinities stay finite in the polynomial)
#define GELU_TANH_SCALE 1.5957691216057307f  // 2 sqrt(2 / pi)

// Written so the compiler can vectorise the scalar loops (the path on CPUs without AVX2, ARM included): selects
// instead of fminf/fmaxf (a NaN stays NaN), rounding and 2^k through the 1.5 * 2^23 shift instead of libm calls.
static inline float scalar_exp(float a) {
    float x = a < EXP_LO ? EXP_LO : (a > EXP_HI ? EXP_HI : a);
    float shifted = x * LOG2E + 12582912.0f;  // round to nearest: k lands in the low mantissa bits
    float k = shifted - 12582912.0f;
    float r = (x - k * LN2_HI) - k * LN2_LO;
    float p = 1.0f / 720;
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r + 1;
    p = p * r + 1;
    union { float f; unsigned u; } s = {shifted}, scale;
    scale.u = (s.u - 0x4B400000u + 127u) << 23;
    return p * scale.f;
}

static inline float scalar_erf(float u) {
    float a = fabsf(u) > ERF_ONE ? ERF_ONE : fabsf(u), t = 1 / (1 + ERF_P * a);  // NaN stays NaN
    float poly = 1.061405429f;
    poly = poly * t - 1.453152027f;
    poly = poly * t + 1.421413741f;
    poly = poly * t - 0.284496736f;
    poly = poly * t + 0.254829592f;
    float m = 1 - poly * t * scalar_exp(-a * a);
    return u < 0 ? -m : m;
}

static inline float scalar_one(dml_activation_kind kind, float v) {
    switch (kind) {
    case DML_ACTIVATION_SILU: return v / (1 + scalar_exp(-v));
    case DML_ACTIVATION_SIGMOID: return 1 / (1 + scalar_exp(-v));
    case DML_ACTIVATION_GELU_ERF: return 0.5f * v * (1 + scalar_erf(v * SQRT_HALF));
    case DML_ACTIVATION_GELU_TANH: return v / (1 + scalar_exp(-GELU_TANH_SCALE * (v + 0.044715f * v * v * v)));
    }
    return v;
}

static void scalar_loop(dml_activation_kind kind, const float *x, float *y, long n) {
    switch (kind) {  // one loop per kind, so each vectorises
    case DML_ACTIVATION_SILU: for (long i = 0; i < n; i++) y[i] = scalar_one(DML_ACTIVATION_SILU, x[i]); break;
    case DML_ACTIVATION_SIGMOID: for (long i = 0; i < n; i++) y[i] = scalar_one(DML_ACTIVATION_SIGMOID, x[i]); break;
    case DML_ACTIVATION_GELU_ERF: for (long i = 0; i < n; i++) y[i] = scalar_one(DML_ACTIVATION_GELU_ERF, x[i]); break;
    case DML_ACTIVATION_GELU_TANH: for (long i = 0; i < n; i++) y[i] = scalar_one(DML_ACTIVATION_GELU_TANH, x[i]); break;
    }
}

#if defined(__x86_64__)
#include <immintrin.h>

// The same formulas on 8 lanes. Reciprocals: the 12-bit estimate plus one Newton step (~23 bits); max/min take
// the constant first so a NaN lane stays NaN.
#define AVX2 __attribute__((target("avx2,fma")))

AVX2 static inline __m256 exp8(__m256 a) {
    __m256 x = _mm256_min_ps(_mm256_set1_ps(EXP_HI), _mm256_max_ps(_mm256_set1_ps(EXP_LO), a));
    __m256 k = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(LN2_LO), _mm256_fnmadd_ps(k, _mm256_set1_ps(LN2_HI), x));
    __m256 p = _mm256_set1_ps(1.0f / 720);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1));
    __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
}

AVX2 static inline __m256 rcp8(__m256 d) {
    __m256 r = _mm256_rcp_ps(d);
    return _mm256_mul_ps(r, _mm256_fnmadd_ps(d, r, _mm256_set1_ps(2)));
}

AVX2 static inline __m256 one8(dml_activation_kind kind, __m256 v) {
    const __m256 one = _mm256_set1_ps(1);
    switch (kind) {
    case DML_ACTIVATION_SILU: return _mm256_mul_ps(v, rcp8(_mm256_add_ps(one, exp8(_mm256_sub_ps(_mm256_setzero_ps(), v)))));
    case DML_ACTIVATION_SIGMOID: return rcp8(_mm256_add_ps(one, exp8(_mm256_sub_ps(_mm256_setzero_ps(), v))));
    case DML_ACTIVATION_GELU_ERF: {
        __m256 u = _mm256_mul_ps(v, _mm256_set1_ps(SQRT_HALF));
        __m256 sign = _mm256_and_ps(u, _mm256_set1_ps(-0.0f));
        __m256 a = _mm256_min_ps(_mm256_set1_ps(ERF_ONE), _mm256_andnot_ps(_mm256_set1_ps(-0.0f), u));
        __m256 t = rcp8(_mm256_fmadd_ps(a, _mm256_set1_ps(ERF_P), one));
        __m256 poly = _mm256_set1_ps(1.061405429f);
        poly = _mm256_fmadd_ps(poly, t, _mm256_set1_ps(-1.453152027f));
        poly = _mm256_fmadd_ps(poly, t, _mm256_set1_ps(1.421413741f));
        poly = _mm256_fmadd_ps(poly, t, _mm256_set1_ps(-0.284496736f));
        poly = _mm256_fmadd_ps(poly, t, _mm256_set1_ps(0.254829592f));
        __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_mul_ps(a, a)));
        __m256 m = _mm256_fnmadd_ps(_mm256_mul_ps(poly, t), e, one);
        return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), v), _mm256_add_ps(one, _mm256_or_ps(m, sign)));
    }
    case DML_ACTIVATION_GELU_TANH: {  // 0.5 (1 + tanh(u)) = sigmoid(2u): no cancellation for large negative x
        __m256 inner = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_mul_ps(v, v), v), _mm256_set1_ps(0.044715f), v);
        __m256 e = exp8(_mm256_mul_ps(inner, _mm256_set1_ps(-GELU_TANH_SCALE)));
        return _mm256_mul_ps(v, rcp8(_mm256_add_ps(one, e)));
    }
    }
    return v;
}

AVX2 static void avx2_loop(dml_activation_kind kind, const float *x, float *y, long n) {
    long i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, one8(kind, _mm256_loadu_ps(x + i)));
    if (i < n) {  // the tail through a padded block, so an element's value does not depend on where it sits
        float block[8] = {0};
        memcpy(block, x + i, (size_t)(n - i) * sizeof(float));
        _mm256_storeu_ps(block, one8(kind, _mm256_loadu_ps(block)));
        memcpy(y + i, block, (size_t)(n - i) * sizeof(float));
    }
}

#define AVX512 __attribute__((target("avx512f,avx2,fma")))

AVX512 static inline __m512 exp16(__m512 a) {
    __m512 x = _mm512_min_ps(_mm512_set1_ps(EXP_HI), _mm512_max_ps(_mm512_set1_ps(EXP_LO), a));
    __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(LN2_LO), _mm512_fnmadd_ps(k, _mm512_set1_ps(LN2_HI), x));
    __m512 p = _mm512_set1_ps(1.0f / 720);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1));
    return _mm512_scalef_ps(p, k);
}

AVX512 static inline __m512 rcp16(__m512 d) {
    __m512 r = _mm512_rcp14_ps(d);
    return _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2)));
}

AVX512 static inline __m512 one16(dml_activation_kind kind, __m512 v) {
    const __m512 one = _mm512_set1_ps(1);
    switch (kind) {
    case DML_ACTIVATION_SILU: return _mm512_mul_ps(v, rcp16(_mm512_add_ps(one, exp16(_mm512_sub_ps(_mm512_setzero_ps(), v)))));
    case DML_ACTIVATION_SIGMOID: return rcp16(_mm512_add_ps(one, exp16(_mm512_sub_ps(_mm512_setzero_ps(), v))));
    case DML_ACTIVATION_GELU_ERF: {
        __m512 u = _mm512_mul_ps(v, _mm512_set1_ps(SQRT_HALF));
        __m512i sign = _mm512_and_si512(_mm512_castps_si512(u), _mm512_set1_epi32((int)0x80000000u));
        __m512 a = _mm512_min_ps(_mm512_set1_ps(ERF_ONE),
                                 _mm512_castsi512_ps(_mm512_andnot_si512(_mm512_set1_epi32((int)0x80000000u), _mm512_castps_si512(u))));
        __m512 t = rcp16(_mm512_fmadd_ps(a, _mm512_set1_ps(ERF_P), one));
        __m512 poly = _mm512_set1_ps(1.061405429f);
        poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(-1.453152027f));
        poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(1.421413741f));
        poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(-0.284496736f));
        poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(0.254829592f));
        __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(a, a)));
        __m512 m = _mm512_fnmadd_ps(_mm512_mul_ps(poly, t), e, one);
        __m512 erf = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(m), sign));
        return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), v), _mm512_add_ps(one, erf));
    }
    case DML_ACTIVATION_GELU_TANH: {
        __m512 inner = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_mul_ps(v, v), v), _mm512_set1_ps(0.044715f), v);
        __m512 e = exp16(_mm512_mul_ps(inner, _mm512_set1_ps(-GELU_TANH_SCALE)));
        return _mm512_mul_ps(v, rcp16(_mm512_add_ps(one, e)));
    }
    }
    return v;
}

AVX512 static void avx512_loop(dml_activation_kind kind, const float *x, float *y, long n) {
    long i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, one16(kind, _mm512_loadu_ps(x + i)));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(y + i, m, one16(kind, _mm512_maskz_loadu_ps(m, x + i)));
    }
}
#endif

typedef void (*loop_fn)(dml_activation_kind, const float *, float *, long);

// The loop of a named path, NULL when the CPU lacks it.
static loop_fn loop_named(const char *path) {
    if (strcmp(path, "scalar") == 0) return scalar_loop;
#if defined(__x86_64__)
    int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (strcmp(path, "avx2") == 0 && avx2) return avx2_loop;
    if (strcmp(path, "avx512") == 0 && avx2 && __builtin_cpu_supports("avx512f")) return avx512_loop;
#endif
    return NULL;
}

static loop_fn chosen_loop;
static const char *chosen_name;

static void choose(void) {
    // The widest path the CPU has, at most the one DMLKIT_SIMD names.
    static const char *const paths[] = {"avx512", "avx2", "scalar"};
    const char *wanted = getenv("DMLKIT_SIMD");
    int first = 0;
    for (int i = 0; wanted && i < 3; i++)
        if (strcmp(wanted, paths[i]) == 0) first = i;
    loop_fn loop = NULL;
    const char *name = NULL;
    for (int i = first; i < 3 && !loop; i++) loop = loop_named(name = paths[i]);
    // Every thread that races here computes the same pair: the stores are idempotent.
    __atomic_store_n(&chosen_name, name, __ATOMIC_RELAXED);
    __atomic_store_n(&chosen_loop, loop, __ATOMIC_RELEASE);
}

void dml_activation(dml_activation_kind kind, const float *x, float *y, long count) {
    loop_fn loop = __atomic_load_n(&chosen_loop, __ATOMIC_ACQUIRE);
    if (!loop) {
        choose();
        loop = __atomic_load_n(&chosen_loop, __ATOMIC_ACQUIRE);
    }
    if (count > 0) loop(kind, x, y, count);
}

int dml_activation_on(const char *path, dml_activation_kind kind, const float *x, float *y, long count) {
    loop_fn loop = path ? loop_named(path) : NULL;
    if (!loop) return -1;
    if (count > 0) loop(kind, x, y, count);
    return 0;
}

const char *dml_activation_path(void) {
    if (!__atomic_load_n(&chosen_loop, __ATOMIC_ACQUIRE)) choose();
    return __atomic_load_n(&chosen_name, __ATOMIC_RELAXED);
}
