/*
 * test_memplan.c - the memory planner's first fit (codegen/memplan.c) on
 * hand-made and random buffer sets: buffers live at the same time never
 * share bytes, offsets stay aligned, the arena is as large as its highest
 * buffer end, and buffers with disjoint lifetimes do share space.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>

#include "codegen/cg_internal.h"

/* Every pair live at once is disjoint in memory; returns the highest end. */
static int64_t check_layout(int n, const int64_t *bytes, const int *first, const int *last, const int64_t *off,
                            int64_t align) {
  int64_t top = 0;
  for (int i = 0; i < n; i++) {
    assert_true(off[i] >= 0);
    assert_int_equal(off[i] % align, 0);
    if (off[i] + bytes[i] > top) top = off[i] + bytes[i];
    for (int j = 0; j < i; j++) {
      int live = first[i] <= last[j] && first[j] <= last[i];
      int apart = off[i] + bytes[i] <= off[j] || off[j] + bytes[j] <= off[i];
      if (live && !apart) fail_msg("buffers %d and %d are live together and overlap", i, j);
    }
  }
  return top;
}

/* A chain a -> b -> c -> d: each value dies when the next is made, so two
 * places serve all four; a buffer live throughout keeps its own. */
static void test_chain(void **state) {
  (void)state;
  int64_t bytes[5] = {256, 256, 256, 256, 512};
  int first[5] = {0, 0, 1, 2, 0}, last[5] = {0, 1, 2, 3, 3};
  int64_t off[5];
  int64_t top = cg_memplan_first_fit(5, bytes, first, last, off);
  assert_int_equal(check_layout(5, bytes, first, last, off, 256), top);
  assert_int_equal(top, 512 + 2 * 256);
  assert_int_equal(off[0], off[2]); /* a's place is c's */
}

static uint64_t rng = 0x853c49e6748fea9bull;
static int urand(int n) {
  rng = rng * 6364136223846793005ull + 1442695040888963407ull;
  return (int)((rng >> 33) % (uint64_t)n);
}

static void test_random(void **state) {
  (void)state;
  enum { N = 200 };
  int64_t bytes[N], off[N];
  int first[N], last[N];
  for (int round = 0; round < 50; round++) {
    int n = 1 + urand(N);
    int64_t sum = 0;
    for (int i = 0; i < n; i++) {
      bytes[i] = 256 * (1 + urand(64));
      first[i] = urand(100);
      last[i] = first[i] + urand(20);
      sum += bytes[i];
    }
    int64_t top = cg_memplan_first_fit(n, bytes, first, last, off);
    assert_int_equal(check_layout(n, bytes, first, last, off, 256), top);
    assert_true(top <= sum);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_chain),
      cmocka_unit_test(test_random),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
