/*
 * tensor.h - a dense host tensor, the currency between the runtime's parts
 * (files, executors, sampler).  Row-major, fixed shape, dtype from the IR.
 */
#ifndef DITC_TENSOR_H
#define DITC_TENSOR_H

#include "ir/ir.h"

typedef struct {
  IrDType dtype;
  int rank;
  int64_t shape[IR_MAX_RANK];
  void *data;   /* owned by whoever made it unless said otherwise */
} RtTensor;

int64_t rt_numel(const RtTensor *t);
size_t rt_nbytes(const RtTensor *t);
/* Allocate (zeroed) data for the given dtype and shape. */
RtTensor rt_tensor_new(IrDType dtype, int rank, const int64_t *shape);
void rt_tensor_free(RtTensor *t);
/* "[2, 4, 16, 16]" */
char *rt_shape_str(const RtTensor *t, char *buf, size_t n);
/* The same for any rank and dims array. */
char *rt_dims_str(int rank, const int64_t *dims, char *buf, size_t n);

#endif
