/*
 * scalar.h - the one definition of every elementwise op: ditc_<name>() for
 * each UNARY and BINARY row of ops.def but cast (a dtype conversion, done by
 * the dialect's built-ins and ir/half.c).
 *
 * Three compilers read this text, so it is written in the kernel dialect
 * (codegen/emu_prelude.h): the common subset of C11 and CUDA C++, float
 * functions of <math.h> only.
 *   - the host compiler, for constant folding (passes/fold_constants.c) and
 *     the reference executor (runtime/ref.c), through ir/eval.c;
 *   - the host compiler again for the emulated device, and NVRTC for the
 *     GPU: the code generator embeds this file (codegen/emu.c, `.incbin`)
 *     and writes it at the top of every generated source, whose elementwise
 *     expressions are calls of these functions (codegen/codegen.c).
 * DITC_SCALAR_FN is `static inline` for the host compiler and
 * `__device__ __forceinline__` under NVRTC.
 *
 * So folding a constant, the reference executor and the emulated device give
 * the same bits for every input, NaN, infinities, -0 and subnormals included,
 * as long as none of them is compiled with -ffast-math or with floating-point
 * contraction: the library is built with -ffp-contract=off (CMakeLists.txt)
 * and the emulator compiles kernels with it (codegen/emu.c).  Under NVRTC the
 * math functions are CUDA's (within an ulp or two of glibc's) and FMA
 * contraction is on, so the GPU agrees to rounding, not to the bit.
 *
 * NaN follows PyTorch: a NaN operand gives NaN (relu, clamp_min and max
 * included).  ops.def's semantics column says the same in one line per op.
 * Every NaN result is the one NaN 0x7fffffff (CUDA's canonical NaN): IEEE 754
 * leaves a NaN result's sign and payload open, and compilers use that
 * freedom (x * -1.0f becomes -x, which flips a NaN's sign; x86 keeps an
 * operand's payload, a GPU does not), so without this the backends would
 * agree on NaN-ness only.  The check is a compare and a select per value.
 * "Is NaN" is x != x: isnan is a macro in C and a function in CUDA.
 */
#ifndef DITC_IR_SCALAR_H
#define DITC_IR_SCALAR_H

#ifndef DITC_SCALAR_FN
#ifdef __CUDACC__
#define DITC_SCALAR_FN __device__ __forceinline__
#else
#define DITC_SCALAR_FN static inline
#endif
#endif

#ifndef __CUDACC__
#include <math.h>
#endif

/* The NaN every NaN result becomes. */
#ifdef __CUDACC__
#define DITC_SCALAR_NAN __int_as_float(0x7fffffff)
#else
#define DITC_SCALAR_NAN __builtin_nanf("0x3fffff") /* quiet, payload all ones: 0x7fffffff */
#endif

DITC_SCALAR_FN float ditc_nan_canon(float r) { return r != r ? DITC_SCALAR_NAN : r; }

/* ---- unary ---------------------------------------------------------------- */

DITC_SCALAR_FN float ditc_neg(float x) { return ditc_nan_canon(-x); }
/* NaN fails x < 0 and passes; -0 passes as -0 */
DITC_SCALAR_FN float ditc_relu(float x) { return ditc_nan_canon(x < 0.0f ? 0.0f : x); }
DITC_SCALAR_FN float ditc_silu(float x) { return ditc_nan_canon(x / (1.0f + expf(-x))); }
/* x/2 (1 + tanh(u)) = x sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3): no
 * cancellation of 1 + tanh(u) for x < 0, and one expf instead of tanhf */
DITC_SCALAR_FN float ditc_gelu_tanh(float x) {
  return ditc_nan_canon(x / (1.0f + expf(-2.0f * 0.7978845608028654f * (x + 0.044715f * x * x * x))));
}
DITC_SCALAR_FN float ditc_gelu(float x) { return ditc_nan_canon(0.5f * x * (1.0f + erff(x * 0.70710678118654752f))); }
DITC_SCALAR_FN float ditc_sigmoid(float x) { return ditc_nan_canon(1.0f / (1.0f + expf(-x))); }
DITC_SCALAR_FN float ditc_tanh(float x) { return ditc_nan_canon(tanhf(x)); }
DITC_SCALAR_FN float ditc_exp(float x) { return ditc_nan_canon(expf(x)); }
DITC_SCALAR_FN float ditc_log(float x) { return ditc_nan_canon(logf(x)); }
DITC_SCALAR_FN float ditc_sin(float x) { return ditc_nan_canon(sinf(x)); }
DITC_SCALAR_FN float ditc_cos(float x) { return ditc_nan_canon(cosf(x)); }
DITC_SCALAR_FN float ditc_sqrt(float x) { return ditc_nan_canon(sqrtf(x)); }
DITC_SCALAR_FN float ditc_recip(float x) { return ditc_nan_canon(1.0f / x); }
DITC_SCALAR_FN float ditc_scale(float x, float f) { return ditc_nan_canon(x * f); }
DITC_SCALAR_FN float ditc_add_scalar(float x, float f) { return ditc_nan_canon(x + f); }
/* The exponents PyTorch special-cases, computed the way it does.  In a
 * kernel f is a literal, so the branches fold away. */
DITC_SCALAR_FN float ditc_pow_scalar(float x, float f) {
  float r;
  if (f == 2.0f) r = x * x;
  else if (f == 3.0f) r = x * x * x;
  else if (f == 0.5f) r = sqrtf(x);
  else if (f == -0.5f) r = 1.0f / sqrtf(x);
  else if (f == -1.0f) r = 1.0f / x;
  else if (f == -2.0f) r = 1.0f / (x * x);
  else if (f == 1.0f) r = x;
  else r = powf(x, f);
  return ditc_nan_canon(r);
}
/* NaN fails x < f and passes */
DITC_SCALAR_FN float ditc_clamp_min(float x, float f) { return ditc_nan_canon(x < f ? f : x); }

/* ---- binary --------------------------------------------------------------- */

DITC_SCALAR_FN float ditc_add(float a, float b) { return ditc_nan_canon(a + b); }
DITC_SCALAR_FN float ditc_sub(float a, float b) { return ditc_nan_canon(a - b); }
DITC_SCALAR_FN float ditc_mul(float a, float b) { return ditc_nan_canon(a * b); }
DITC_SCALAR_FN float ditc_div(float a, float b) { return ditc_nan_canon(a / b); }
/* NaN in either operand wins (b's through a > b failing) */
DITC_SCALAR_FN float ditc_max(float a, float b) { return ditc_nan_canon((a != a || a > b) ? a : b); }

/* ---- quantisation (qscale, quantize, dequantize, qlinear in ops.def) ------- */

/* The scale of a row (or tensor) whose largest magnitude is amax: amax / qmax,
 * 1 for an all-zero row (the reference's "a zero row: s = 1"); NaN passes. */
DITC_SCALAR_FN float ditc_qscale(float amax, float qmax) {
  return amax == 0.0f ? 1.0f : ditc_nan_canon(amax / qmax);
}
/* |x| folded into a running max; NaN wins (a NaN row gets a NaN scale) */
DITC_SCALAR_FN float ditc_absmax(float m, float x) {
  float a = fabsf(x);
  return (m != m || a != a) ? DITC_SCALAR_NAN : (a > m ? a : m);
}
/* int8 level of x at scale s: clamp(rint(x / s), -127, 127), rint rounding
 * half to even (the default rounding mode of both the host and CUDA); NaN
 * gives 0.  Returned as a float holding the integer (exact). */
DITC_SCALAR_FN float ditc_quantize_i8(float x, float s) {
  float r = rintf(x / s);
  if (r != r) return 0.0f;
  return r > 127.0f ? 127.0f : (r < -127.0f ? -127.0f : r);
}
/* q (an int8 level) at scale s */
DITC_SCALAR_FN float ditc_dequantize(float q, float s) { return ditc_nan_canon(q * s); }
/* An exact int32 sum of int8 products, scaled once: (acc * sx) * sw (+ b,
 * added by the caller), in this order on every backend. */
DITC_SCALAR_FN float ditc_qlinear_scale(int acc, float sx, float sw) {
  return ditc_nan_canon((float)acc * sx * sw);
}

/* ---- fp8 e4m3 (OCP FP8 E4M3; quantize_e4m3, qlinear_e4m3 in ops.def) ------
 * A byte S.EEEE.MMM: bias 7, normals 2^(E-7) (1 + M/8) for E >= 1,
 * subnormals M 2^-9 for E = 0, the largest finite 448 (S.1111.110), no
 * infinities and one NaN pattern per sign (S.1111.111).  The encoding rounds
 * to nearest, ties to even, and saturates: every finite or infinite value
 * beyond 448 in magnitude becomes +-448 (PTX cvt.rn.satfinite's rule); NaN
 * becomes 0x7f; -0 stays 0x80.  The decoding is exact (every code is an f32);
 * 0x7f and 0xff decode to the canonical NaN.  Host arrays hold e4m3 values
 * decoded, as floats (like i8 levels), so a value is on the e4m3 grid exactly
 * when encode(decode(c)) == c. */
#ifdef __CUDACC__
#define DITC_F32_BITS(x) __float_as_uint(x)
#define DITC_BITS_F32(u) __uint_as_float(u)
#else
DITC_SCALAR_FN unsigned ditc_f32_bits_(float x) {
  union { float f; unsigned u; } v;
  v.f = x;
  return v.u;
}
DITC_SCALAR_FN float ditc_bits_f32_(unsigned u) {
  union { float f; unsigned u; } v;
  v.u = u;
  return v.f;
}
#define DITC_F32_BITS(x) ditc_f32_bits_(x)
#define DITC_BITS_F32(u) ditc_bits_f32_(u)
#endif

DITC_SCALAR_FN unsigned char ditc_f32_to_e4m3(float x) {
  unsigned u = DITC_F32_BITS(x), a = u & 0x7fffffffu, s = (u >> 24) & 0x80u;
  if (a > 0x7f800000u) return 0x7f;                    /* NaN */
  if (a >= 0x43e00000u) return (unsigned char)(s | 0x7eu); /* >= 448, infinities: saturate */
  if (a < 0x3c800000u) /* below 2^-6: a multiple of 2^-9, rint (ties to even) of |x| 2^9 (exact scaling) */
    return (unsigned char)(s | (unsigned)rintf(DITC_BITS_F32(a) * 512.0f)); /* 8 is 2^-6, code 0x08 */
  /* a normal: keep 3 of the 23 mantissa bits, ties to even; a carry moves into the exponent */
  unsigned r = (a + 0x7ffffu + ((a >> 20) & 1u)) >> 20;
  unsigned c = r - (120u << 3); /* f32 exponent bias 127, e4m3's 7 */
  return (unsigned char)(s | (c > 0x7eu ? 0x7eu : c));
}
DITC_SCALAR_FN float ditc_e4m3_to_f32(unsigned char c) {
  unsigned s = (unsigned)(c & 0x80u) << 24, e = (c >> 3) & 15u, m = c & 7u;
  if ((c & 0x7fu) == 0x7fu) return DITC_SCALAR_NAN;
  if (e == 0) {
    float v = (float)m * 0.001953125f; /* m 2^-9, exact */
    return s ? -v : v;
  }
  return DITC_BITS_F32(s | ((e + 120u) << 23) | (m << 20));
}
/* x at per-tensor scale s on the e4m3 grid, decoded: e4m3(x / s) as a float */
DITC_SCALAR_FN float ditc_quantize_e4m3(float x, float s) { return ditc_e4m3_to_f32(ditc_f32_to_e4m3(x / s)); }
/* An f32 sum (k order) of products of e4m3 values, scaled once: (acc * sx) * sw
 * (+ b, added by the caller).  The products are exact in f32 (4-bit
 * significands); the sum rounds in f32, in k order, on every backend. */
DITC_SCALAR_FN float ditc_qlinear_e4m3_scale(float acc, float sx, float sw) { return ditc_nan_canon(acc * sx * sw); }

#endif /* DITC_IR_SCALAR_H */
