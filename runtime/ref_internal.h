/*
 * ref_internal.h - what the reference executor's files share: the concrete
 * shape of a value and the kernels runtime/ref.c dispatches to.
 *
 *   ref.c           planning storage, preparing, running (the executor)
 *   ref_rows.c      row-wise and windowed ops: layernorm, softmax,
 *                   topk_softmax, embedding, adaptive average pool
 *   ref_contract.c  matrix products: linear, matmul, conv2d (through sgemm)
 *   ref_moe.c       routed mixture of experts: route, gather, linear, combine
 * Elementwise ops, reductions and layout ops are ir/eval.c's, shared with
 * constant folding and the code generator.  Kernels work on f32 values (int32
 * for routing tables and indices), split their loops among OpenMP threads
 * above IR_PAR_MIN elements, and accumulate sums in double so the oracle's
 * own rounding error stays well below the tolerances it judges others by.
 */
#ifndef DITC_REF_INTERNAL_H
#define DITC_REF_INTERNAL_H

#include "ir/ir.h"

/* A value's shape at the executor's batch. */
typedef struct {
  int rank;
  int64_t d[IR_MAX_RANK];
  int64_t numel;
} RefShape;

/* ---- ref_rows.c ---- */

/* Over rows of n values: y = (x - mean) / sqrt(var + eps), biased variance. */
void ref_layernorm(float *o, const float *x, int64_t rows, int64_t n, float eps);
void ref_softmax(float *o, const float *x, int64_t rows, int64_t n);
/* The k largest of xr[0..n-1] in order, the lower index winning ties: the
 * selection topk_softmax and moe_route share. */
void ref_topk_pick(const float *xr, int64_t n, int k, int64_t *pick);
void ref_topk_softmax(float *o, const float *x, int64_t rows, int64_t n, int k);
/* y[i, :] = table[idx[i], :]; an index outside the table is an error. */
int ref_embedding(float *y, const float *table, const RefShape *ts, const int32_t *idx, int64_t n, IrErr *err);
void ref_avgpool(float *y, const RefShape *ys, const float *x, const RefShape *xs);

/* ---- ref_contract.c ---- */

/* C[M, N] = A[M, K] B[K, N] (tb: B[N, K]^T), row-major with leading dims. */
void ref_gemm(int tb, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B, int64_t ldb,
              float *C, int64_t ldc);
/* y[M, N] = x[M, K] w[N, K]^T (+ b[N]) */
void ref_linear(float *y, const float *x, const float *w, const float *b, int64_t M, int64_t N, int64_t K);
void ref_matmul(int trans_b, float *y, const RefShape *ys, const float *a, const RefShape *as, const float *b,
                const RefShape *bs);

typedef struct {
  int64_t n, c, h, w;      /* input */
  int64_t o, kh, kw;       /* weight [o, c/groups, kh, kw] */
  int64_t oh, ow;          /* output plane */
  int64_t stride, pad, groups;
  int64_t up;              /* im2col: reads x upsampled (nearest) by up; 0 means 1 */
} RefConv;

RefConv ref_conv_dims(const IrAttrs *a, const RefShape *xs, const RefShape *ws, const RefShape *ys);
/* Floats of scratch ref_conv2d needs. */
size_t ref_conv_scratch(const RefConv *c);
void ref_conv2d(const RefConv *c, float *y, const float *x, const float *w, const float *b, float *scratch);
/* IR_IM2COL (ops.def): x [N, C, H, W] (seen upsampled by attribute up) -> y [N, C*k*k, OH*OW]. */
void ref_im2col(const IrAttrs *a, float *y, const RefShape *ys, const float *x, const RefShape *xs);

/* ---- ref_moe.c (the routing table's layout: ir.h) ---- */

void ref_moe_route(int32_t *tab, int64_t len, const float *x, int64_t T, int64_t E, int k);
void ref_moe_gather(float *y, const float *x, const int32_t *tab, int64_t E, int64_t S, int64_t D);
void ref_moe_linear(float *y, const float *xs, const int32_t *tab, const float *w, const float *b, int64_t E,
                    int64_t N, int64_t K);
void ref_moe_qlinear(float *y, const float *xq, const int32_t *tab, const float *sx, const float *wq, const float *sw,
                     const float *b, int64_t E, int64_t N, int64_t K, int e4m3);
void ref_moe_combine(float *y, const float *ys, const int32_t *tab, const float *gates, int64_t T, int64_t E, int k,
                     int64_t D);

#endif
