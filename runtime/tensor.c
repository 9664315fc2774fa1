/*
 * tensor.c - dense host tensors (the half-precision conversions they use are
 * the IR's: ir/half.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/tensor.h"

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
