/*
 * half.c - IEEE half and bfloat16 conversions, shared by every stage (folding,
 * the reference executor, weight packing, file readers).
 *
 * They work on the bit patterns rather than relying on a compiler's _Float16,
 * so they behave the same with gcc and clang on any host: round to nearest
 * even, overflow to infinity, subnormals kept.  A NaN becomes 0x7fff, the one
 * NaN CUDA's __float2half_rn and __float2bfloat16_rn give (and the emulated
 * device's, codegen/emu_prelude.h): a value rounded on the host has the bits
 * the generated kernels store (ops.def's cast).
 */
#include <string.h>

#include "ir/ir.h"

static uint32_t f32_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

static float bits_f32(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

float ir_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  if (exp == 0x1f) return bits_f32(sign | 0x7f800000u | (mant << 13)); /* inf / NaN */
  if (exp != 0) return bits_f32(sign | ((exp + 112) << 23) | (mant << 13));
  if (mant == 0) return bits_f32(sign);
  /* Subnormal: mant * 2^-24.  Shift the leading one up to the implicit bit. */
  int e = 113; /* biased f32 exponent of 2^-14 */
  while (!(mant & 0x400)) {
    mant <<= 1;
    e--;
  }
  return bits_f32(sign | ((uint32_t)e << 23) | ((mant & 0x3ff) << 13));
}

/* Shift v right by s (1 <= s < 32), rounding to nearest, ties to even. */
static uint32_t shift_rne(uint32_t v, int s) {
  uint32_t q = v >> s;
  uint32_t rem = v & ((1u << s) - 1);
  uint32_t half = 1u << (s - 1);
  if (rem > half || (rem == half && (q & 1))) q++;
  return q;
}

uint16_t ir_f32_to_f16(float f) {
  uint32_t x = f32_bits(f);
  uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
  uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return 0x7fff; /* NaN, as CUDA */
  if (ax >= 0x47800000u) return sign | 0x7c00; /* >= 65536 (and inf): inf */
  if (ax >= 0x38800000u) {                     /* normal half range */
    /* Rebias the exponent (127 -> 15); rounding may carry into the
     * exponent, which is exactly right, up to inf at 65520. */
    uint32_t h = shift_rne(ax - 0x38000000u, 13);
    return (uint16_t)(sign | (h >= 0x7c00 ? 0x7c00 : h));
  }
  /* Subnormal half: value / 2^-24 = M * 2^(E-126), M with the implicit bit. */
  int e = (int)(ax >> 23);
  if (e < 102) return sign; /* below 2^-25: rounds to zero */
  uint32_t m = (ax & 0x7fffff) | 0x800000;
  return (uint16_t)(sign | shift_rne(m, 126 - e)); /* may round up to 2^-14 */
}

float ir_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t ir_f32_to_bf16(float f) {
  uint32_t x = f32_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return 0x7fff; /* NaN, as CUDA */
  /* Round to nearest even; overflow carries into the exponent up to inf. */
  x += 0x7fffu + ((x >> 16) & 1);
  return (uint16_t)(x >> 16);
}
