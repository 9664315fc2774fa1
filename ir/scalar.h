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

#endif /* DITC_IR_SCALAR_H */
