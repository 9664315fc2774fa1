/*
 * test_tensor.c - RtTensor basics and the f16/bf16 conversions.
 *
 * f16 is checked exhaustively: every one of the 65536 bit patterns goes to f32
 * and back unchanged (NaNs stay NaN), and its f32 value agrees with the value
 * computed independently from the fields with ldexp.  Rounding is checked at
 * the halfway points between neighbouring halves, where ties go to even.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "runtime/tensor.h"
#include "testutil.h"


static void test_numel_shape_str(void **state) {
  (void)state;
  int64_t shape[4] = {2, 4, 16, 16};
  RtTensor t = rt_tensor_new(IR_F32, 4, shape);
  assert_int_equal(rt_numel(&t), 2048);
  assert_int_equal(rt_nbytes(&t), 8192);
  char buf[64];
  assert_string_equal(rt_shape_str(&t, buf, sizeof buf), "[2, 4, 16, 16]");
  /* Zeroed. */
  const float *d = t.data;
  for (int i = 0; i < 2048; i++) assert_true(d[i] == 0.0f);
  /* Truncation stays NUL-terminated. */
  char small[6];
  rt_shape_str(&t, small, sizeof small);
  assert_int_equal(strlen(small), 5);
  assert_memory_equal(small, "[2, 4", 5);
  rt_tensor_free(&t);
  assert_null(t.data);

  RtTensor s = rt_tensor_new(IR_I32, 0, NULL); /* scalar */
  assert_int_equal(rt_numel(&s), 1);
  assert_int_equal(rt_nbytes(&s), 4);
  assert_string_equal(rt_shape_str(&s, buf, sizeof buf), "[]");
  rt_tensor_free(&s);

  int64_t z[2] = {3, 0};
  RtTensor e = rt_tensor_new(IR_F16, 2, z);
  assert_int_equal(rt_numel(&e), 0);
  assert_int_equal(rt_nbytes(&e), 0);
  assert_non_null(e.data);
  rt_tensor_free(&e);
}

/* The value of a half computed from its fields, independently of the code under test. */
static double f16_value(uint16_t h) {
  int s = h >> 15, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  double v;
  if (e == 0)
    v = ldexp(m, -24);
  else if (e == 31)
    v = m ? NAN : INFINITY;
  else
    v = ldexp(1024 + m, e - 25);
  return s ? -v : v;
}

static void test_f16_exhaustive(void **state) {
  (void)state;
  int nans = 0;
  for (uint32_t i = 0; i < 65536; i++) {
    uint16_t h = (uint16_t)i;
    float f = ir_f16_to_f32(h);
    double want = f16_value(h);
    if (isnan(want)) {
      nans++;
      assert_true(isnan(f));
      assert_true(isnan(ir_f16_to_f32(ir_f32_to_f16(f))));
      assert_int_equal(ir_f32_to_f16(f) & 0x7c00, 0x7c00);
      continue;
    }
    if ((double)f != want) fail_msg("f16 0x%04x -> %.9g, want %.9g", h, (double)f, want);
    if ((signbit(f) != 0) != (h >> 15)) fail_msg("sign of 0x%04x", h);
    uint16_t back = ir_f32_to_f16(f);
    if (back != h) fail_msg("f16 0x%04x -> %g -> 0x%04x", h, (double)f, back);
  }
  assert_int_equal(nans, 2 * 1023);
}

/* Between consecutive finite halves a < b: just below the midpoint rounds to
 * a, just above to b, the midpoint itself to whichever is even. */
static void test_f16_rounding(void **state) {
  (void)state;
  for (uint32_t i = 0; i < 0x7bff; i++) {
    uint16_t a = (uint16_t)i, b = (uint16_t)(i + 1);
    double mid = (f16_value(a) + f16_value(b)) / 2; /* exact in double, and in float */
    float fm = (float)mid;
    assert_true((double)fm == mid);
    uint16_t even = (a & 1) ? b : a;
    if (ir_f32_to_f16(fm) != even) fail_msg("tie between 0x%04x and 0x%04x", a, b);
    if (ir_f32_to_f16(nextafterf(fm, 0)) != a) fail_msg("below mid 0x%04x", a);
    if (ir_f32_to_f16(nextafterf(fm, INFINITY)) != b) fail_msg("above mid 0x%04x", a);
    /* Negative side mirrors. */
    if (ir_f32_to_f16(-fm) != (uint16_t)(even | 0x8000)) fail_msg("neg tie 0x%04x", a);
  }
  /* Overflow: 65504 is the largest half; the midpoint to the next (65520) is
   * a tie that goes to "even" infinity. */
  assert_int_equal(ir_f32_to_f16(65504.0f), 0x7bff);
  assert_int_equal(ir_f32_to_f16(65519.99f), 0x7bff);
  assert_int_equal(ir_f32_to_f16(65520.0f), 0x7c00);
  assert_int_equal(ir_f32_to_f16(1e10f), 0x7c00);
  assert_int_equal(ir_f32_to_f16(-1e10f), 0xfc00);
  assert_int_equal(ir_f32_to_f16(INFINITY), 0x7c00);
  assert_int_equal(ir_f32_to_f16(-INFINITY), 0xfc00);
  /* Underflow: half the smallest subnormal ties to zero, a bit more rounds up. */
  assert_int_equal(ir_f32_to_f16(ldexpf(1, -25)), 0x0000);
  assert_int_equal(ir_f32_to_f16(nextafterf(ldexpf(1, -25), 1)), 0x0001);
  assert_int_equal(ir_f32_to_f16(ldexpf(1, -26)), 0x0000);
  assert_int_equal(ir_f32_to_f16(-ldexpf(1, -30)), 0x8000);
  assert_int_equal(ir_f32_to_f16(tu_from_bits(1)), 0x0000); /* f32 subnormal */
  assert_int_equal(ir_f32_to_f16(-0.0f), 0x8000);
  assert_int_equal(ir_f32_to_f16(1.0f), 0x3c00);
  assert_int_equal(ir_f32_to_f16(-2.0f), 0xc000);
  assert_int_equal(ir_f32_to_f16(0.1f), 0x2e66);
  /* every NaN becomes CUDA's 0x7fff, as the generated kernels store it */
  assert_int_equal(ir_f32_to_f16(NAN), 0x7fff);
  assert_int_equal(ir_f32_to_f16(tu_from_bits(0xffc12345)), 0x7fff);
}

static void test_bf16(void **state) {
  (void)state;
  /* Every bf16 round-trips through f32 (NaNs stay NaN) and equals the top half of its f32. */
  for (uint32_t i = 0; i < 65536; i++) {
    uint16_t h = (uint16_t)i;
    float f = ir_bf16_to_f32(h);
    assert_int_equal(tu_bits(f), (uint32_t)h << 16);
    if (isnan(f)) {
      assert_true(isnan(ir_bf16_to_f32(ir_f32_to_bf16(f))));
      continue;
    }
    assert_int_equal(ir_f32_to_bf16(f), h);
  }
  /* Ties to even, and just off the tie. */
  assert_int_equal(ir_f32_to_bf16(tu_from_bits(0x3f808000)), 0x3f80); /* tie, 0x3f80 even */
  assert_int_equal(ir_f32_to_bf16(tu_from_bits(0x3f818000)), 0x3f82); /* tie, rounds up to even */
  assert_int_equal(ir_f32_to_bf16(tu_from_bits(0x3f808001)), 0x3f81);
  assert_int_equal(ir_f32_to_bf16(tu_from_bits(0x3f807fff)), 0x3f80);
  assert_int_equal(ir_f32_to_bf16(tu_from_bits(0x7f7fffff)), 0x7f80); /* FLT_MAX -> inf */
  assert_int_equal(ir_f32_to_bf16(-INFINITY), 0xff80);
  assert_true(isnan(ir_bf16_to_f32(ir_f32_to_bf16(tu_from_bits(0x7f800001))))); /* payload in low bits */
  assert_int_equal(ir_f32_to_bf16(3.0f), 0x4040);
  assert_int_equal(ir_f32_to_bf16(tu_from_bits(0xffc12345)), 0x7fff); /* NaN, as CUDA */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_numel_shape_str),
      cmocka_unit_test(test_f16_exhaustive),
      cmocka_unit_test(test_f16_rounding),
      cmocka_unit_test(test_bf16),
  };
  return tu_run_group(tests, NULL, NULL);
}
