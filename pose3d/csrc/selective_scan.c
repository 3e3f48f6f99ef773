/* Fused CPU selective scan for pose3d (the contract is in scan_impl.h).
 *
 * Plain C with GCC/Clang vector extensions and no PyTorch headers: it builds in seconds at
 * install time and is called through ctypes (which releases the GIL, so Python threads run
 * work units in parallel). The per-step exponentials are computed on the fly, never
 * materialising the (L, channels, state) tensors that make a pure-PyTorch scan memory bound.
 *
 * Variants: f32v (float32, 8-lane vectors, channels a multiple of 8), f32 (float32, any
 * channel count) and f64 (float64, for tests that hold the kernel to a float64 reference).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_STATE 64
#define MAX_W 16 /* channels per work unit */

/* Arguments shared by forward and backward; ctypes mirrors this layout in pose3d/scan.py. */
typedef struct {
    const void *u, *delta, *A, *B, *C, *D, *delta_bias; /* inputs (D, delta_bias may be NULL) */
    const int64_t *order;                               /* (K, L) or NULL */
    void *y;                                            /* forward output */
    void *hchk;                                         /* (batch, K, nchunks, n, d) saved states */
    const void *dy;                                     /* backward input */
    void *du, *ddelta, *dA, *dB, *dC, *dD, *dbias;       /* backward outputs, some as partials */
    int64_t batch, L, K, d, n;
    int64_t x_sb, x_sl, x_sk;    /* strides of u, y, dy, du, ddelta (channel stride 1) */
    int64_t dl_sb, dl_sl, dl_sk; /* strides of delta (channel stride 1) */
    int64_t B_sb, B_sl, B_sk;    /* strides of B (state stride 1) */
    int64_t C_sb, C_sl, C_sk;    /* strides of C (state stride 1) */
    int64_t chunk;               /* steps between saved states */
    int64_t width;               /* channels per work unit, dividing d */
    int64_t unit_begin, unit_end;
    int64_t softplus;
} ScanArgs;

/* On x86-64 Linux, build an AVX2+FMA clone beside the baseline one; chosen at load time. */
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && !defined(__clang__)
#define KERNEL_ATTR __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define KERNEL_ATTR
#endif
#define ALWAYS_INLINE static inline __attribute__((always_inline))
/* Vector values never cross a call boundary (everything is inlined), so the ABI note that
 * GCC gives for 32-byte vectors in the baseline clone does not apply. */
#pragma GCC diagnostic ignored "-Wpsabi"

typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

ALWAYS_INLINE v8f splat_v8f(float s) { return (v8f){0} + s; } /* compiles to a broadcast */
ALWAYS_INLINE v8f load_v8f(const float *p) {
    v8f v;
    memcpy(&v, p, sizeof v);
    return v;
}
ALWAYS_INLINE void store_v8f(float *p, v8f v) { memcpy(p, &v, sizeof v); }
#if defined(__clang__) || __GNUC__ >= 12
#define SHUFFLE8(a, b, i0, i1, i2, i3, i4, i5, i6, i7) \
    __builtin_shufflevector(a, b, i0, i1, i2, i3, i4, i5, i6, i7)
#else
#define SHUFFLE8(a, b, i0, i1, i2, i3, i4, i5, i6, i7) \
    __builtin_shuffle(a, b, (v8i){i0, i1, i2, i3, i4, i5, i6, i7})
#endif

/* dst[j] = sum of the 8 lanes of t[j], j < cnt: for cnt = 8 a transposing pairwise
 * reduction (14 shuffles and 7 adds for all 8 sums). */
ALWAYS_INLINE void store_sums_v8f(float *dst, const v8f *t, int cnt) {
    if (cnt == 8) {
        v8f p01 = SHUFFLE8(t[0], t[1], 0, 8, 2, 10, 4, 12, 6, 14) + SHUFFLE8(t[0], t[1], 1, 9, 3, 11, 5, 13, 7, 15);
        v8f p23 = SHUFFLE8(t[2], t[3], 0, 8, 2, 10, 4, 12, 6, 14) + SHUFFLE8(t[2], t[3], 1, 9, 3, 11, 5, 13, 7, 15);
        v8f p45 = SHUFFLE8(t[4], t[5], 0, 8, 2, 10, 4, 12, 6, 14) + SHUFFLE8(t[4], t[5], 1, 9, 3, 11, 5, 13, 7, 15);
        v8f p67 = SHUFFLE8(t[6], t[7], 0, 8, 2, 10, 4, 12, 6, 14) + SHUFFLE8(t[6], t[7], 1, 9, 3, 11, 5, 13, 7, 15);
        /* p01 lanes: t0[0:2] t1[0:2] t0[2:4] t1[2:4] t0[4:6] t1[4:6] t0[6:8] t1[6:8] (pair sums) */
        v8f q03 = SHUFFLE8(p01, p23, 0, 1, 8, 9, 4, 5, 12, 13) + SHUFFLE8(p01, p23, 2, 3, 10, 11, 6, 7, 14, 15);
        v8f q47 = SHUFFLE8(p45, p67, 0, 1, 8, 9, 4, 5, 12, 13) + SHUFFLE8(p45, p67, 2, 3, 10, 11, 6, 7, 14, 15);
        /* q03 lanes: t0..t3 over lanes 0:4, then t0..t3 over lanes 4:8 */
        store_v8f(dst, SHUFFLE8(q03, q47, 0, 1, 2, 3, 8, 9, 10, 11) + SHUFFLE8(q03, q47, 4, 5, 6, 7, 12, 13, 14, 15));
        return;
    }
    for (int j = 0; j < cnt; j++) {
        v8f v = t[j];
        dst[j] = ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]));
    }
}
ALWAYS_INLINE v8f select_v8f(v8i mask, v8f a, v8f b) {
    return (v8f)(((v8i)a & mask) | ((v8i)b & ~mask));
}

/* exp of 8 floats: Cody-Waite range reduction and the Cephes expf polynomial (about 1 ulp),
 * no branches or tables. Inputs are clamped to [-87, 88]: below -87 it returns
 * exp(-87) ~ 1.6e-38 rather than a denormal or zero, which no scan state can tell apart. */
ALWAYS_INLINE v8f exp_v8f(v8f x) {
    const v8f lo = splat_v8f(-87.0f), hi = splat_v8f(88.0f);
    x = select_v8f(x < lo, lo, x);
    x = select_v8f(x > hi, hi, x); /* only softplus and sigmoid can pass positive arguments */
    const v8f magic = splat_v8f(12582912.0f); /* 1.5 * 2^23: adding it rounds to an integer */
    v8f t = x * 1.44269504088896341f + magic;
    v8i ki = (v8i)t - 0x4B400000; /* that integer, read from the mantissa bits */
    v8f k = t - magic;
    v8f r = x - k * 0.693145751953125f;
    r = r - k * 1.428606765330187045e-06f;
    v8f p = splat_v8f(1.9875691500e-4f);
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    return p * (v8f)((ki + 127) << 23);
}

/* log of 8 floats >= 1 (the Cephes logf polynomial on the mantissa, about 1 ulp). */
ALWAYS_INLINE v8f log_v8f(v8f x) {
    v8i bits = (v8i)x;
    v8i e = ((bits >> 23) & 0xff) - 126; /* x = m * 2^e, m in [0.5, 1) */
    v8f m = (v8f)((bits & 0x007fffff) | 0x3f000000);
    v8i small = m < 0.70710678f; /* -1 where m < sqrt(1/2): use 2m and e - 1 instead */
    v8f ef = __builtin_convertvector(e + small, v8f);
    v8f f = select_v8f(small, m + m, m) - 1.0f;
    v8f z = f * f;
    v8f p = splat_v8f(7.0376836292e-2f);
    p = p * f - 1.1514610310e-1f;
    p = p * f + 1.1676998740e-1f;
    p = p * f - 1.2420140846e-1f;
    p = p * f + 1.4249322787e-1f;
    p = p * f - 1.6668057665e-1f;
    p = p * f + 2.0000714765e-1f;
    p = p * f - 2.4999993993e-1f;
    p = p * f + 3.3333331174e-1f;
    return f + (f * z * p - 0.5f * z) + ef * 0.693147180559945f;
}

/* softplus as torch and mamba-ssm define it: log1p(exp(x)), and x itself above 20.
 * log1p(z) = log(1 + z) - ((1 + z) - 1 - z) / (1 + z) keeps full precision for small z. */
ALWAYS_INLINE v8f softplus_v8f(v8f x) {
    const v8f cap = splat_v8f(20.0f);
    v8i big = x > cap;
    v8f z = exp_v8f(select_v8f(big, cap, x));
    v8f w = 1.0f + z;
    return select_v8f(big, x, log_v8f(w) - ((w - 1.0f) - z) / w);
}

ALWAYS_INLINE v8f sigmoid_v8f(v8f x) { return 1.0f / (1.0f + exp_v8f(-x)); }
ALWAYS_INLINE float softplus_f32(float x) { return x > 20.0f ? x : log1pf(expf(x)); }
ALWAYS_INLINE float sigmoid_f32(float x) { return 1.0f / (1.0f + expf(-x)); }
ALWAYS_INLINE double softplus_f64(double x) { return x > 20.0 ? x : log1p(exp(x)); }
ALWAYS_INLINE double sigmoid_f64(double x) { return 1.0 / (1.0 + exp(-x)); }

#define REAL float
#define VEC v8f
#define VL 8
#define SUF f32v
#define VEXP exp_v8f
#define VSOFTPLUS softplus_v8f
#define VSIGMOID sigmoid_v8f
#define VSPLAT splat_v8f
#define VLOAD load_v8f
#define VSTORE store_v8f
#define VSTORESUMS store_sums_v8f
#include "scan_impl.h"
#undef REAL
#undef VEC
#undef VL
#undef SUF
#undef VEXP
#undef VSOFTPLUS
#undef VSIGMOID
#undef VSPLAT
#undef VLOAD
#undef VSTORE
#undef VSTORESUMS

/* The scalar variants: one lane per "vector", libm's exp. */
#define VSPLAT(s) (s)
#define VLOAD(p) (*(p))
#define VSTORE(p, v) (*(p) = (v))
#define VSTORESUMS(dst, t, cnt) for (int j_ = 0; j_ < (cnt); j_++) (dst)[j_] = (t)[j_]
#define VL 1

#define REAL float
#define VEC float
#define SUF f32
#define VEXP expf
#define VSOFTPLUS softplus_f32
#define VSIGMOID sigmoid_f32
#include "scan_impl.h"
#undef REAL
#undef VEC
#undef SUF
#undef VEXP
#undef VSOFTPLUS
#undef VSIGMOID

#define REAL double
#define VEC double
#define SUF f64
#define VEXP exp
#define VSOFTPLUS softplus_f64
#define VSIGMOID sigmoid_f64
#include "scan_impl.h"

/* pose3d/scan.py refuses a build whose ScanArgs differs from its ctypes mirror: in size (a
 * field added, removed or retyped) or in meaning (the version, bumped by hand). */
int pose3d_scan_abi_version(void) { return 3; }
size_t pose3d_scan_args_size(void) { return sizeof(ScanArgs); }

/* A module object so that setuptools can build and locate this file as an extension;
 * its functions are reached through ctypes. */
static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_scan_kernel",
    .m_doc = "Fused CPU selective scan (called through ctypes).",
    .m_size = -1,
};
PyMODINIT_FUNC PyInit__scan_kernel(void) { return PyModule_Create(&module); }
