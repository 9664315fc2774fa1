/*
 * tensor.c - dense host tensors and the half-precision conversions.
 *
 * The f16/bf16 conversions work on the bit patterns rather than relying on a
 * compiler's _Float16, so they behave the same with gcc and clang on any host:
 * round to nearest even, overflow to infinity, subnormals kept, NaN stays NaN
 * (quieted, payload's top bits kept).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor.h"

int64_t rt_numel(const RtTensor *t) {
  int64_t n = 1;
  for (int i = 0; i < t->rank; i++) n *= t->shape[i];
  return n;
}

size_t rt_nbytes(const RtTensor *t) {
  return (size_t)rt_numel(t) * ir_dtype_size(t->dtype);
}

RtTensor rt_tensor_new(IrDType dtype, int rank, const int64_t *shape) {
  DITC_ASSERT(rank >= 0 && rank <= IR_MAX_RANK);
  RtTensor t;
  memset(&t, 0, sizeof t);
  t.dtype = dtype;
  t.rank = rank;
  for (int i = 0; i < rank; i++) {
    DITC_ASSERT(shape[i] >= 0);
    t.shape[i] = shape[i];
  }
  /* Always allocate at least one element so an empty tensor still has a
   * distinct, freeable pointer. */
  size_t n = (size_t)rt_numel(&t);
  t.data = xcalloc(n ? n : 1, ir_dtype_size(dtype));
  return t;
}

void rt_tensor_free(RtTensor *t) {
  if (!t) return;
  free(t->data);
  memset(t, 0, sizeof *t);
}

char *rt_dims_str(int rank, const int64_t *dims, char *buf, size_t n) {
  if (n == 0) return buf;
  size_t len = 0;
  buf[0] = '\0';
  /* snprintf into what is left; once full, later calls write nothing. */
#define PUT(...)                                                   \
  do {                                                             \
    if (len < n) {                                                 \
      int k_ = snprintf(buf + len, n - len, __VA_ARGS__);          \
      len = k_ < 0 ? n : len + (size_t)k_;                         \
    }                                                              \
  } while (0)
  PUT("[");
  for (int i = 0; i < rank; i++) PUT(i ? ", %lld" : "%lld", (long long)dims[i]);
  PUT("]");
#undef PUT
  return buf;
}

char *rt_shape_str(const RtTensor *t, char *buf, size_t n) { return rt_dims_str(t->rank, t->shape, buf, n); }

/* ---- half precision ------------------------------------------------------ */

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

float rt_f16_to_f32(uint16_t h) {
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

uint16_t rt_f32_to_f16(float f) {
  uint32_t x = f32_bits(f);
  uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
  uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) /* NaN: keep the payload's top bits, force quiet */
    return (uint16_t)(sign | 0x7e00 | ((ax >> 13) & 0x3ff));
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

float rt_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t rt_f32_to_bf16(float f) {
  uint32_t x = f32_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40); /* quiet NaN */
  /* Round to nearest even; overflow carries into the exponent up to inf. */
  x += 0x7fffu + ((x >> 16) & 1);
  return (uint16_t)(x >> 16);
}
