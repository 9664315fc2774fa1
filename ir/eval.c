/*
 * eval.c - ops evaluated on host arrays: the one host implementation of the
 * elementwise ops, reductions and layout ops that constant folding
 * (passes/fold_constants.c), the reference executor (runtime/ref.c) and the
 * code generator's computed weights (codegen/) all call.
 *
 * Elementwise values come from ir/scalar.h, the text generated kernels
 * include too, so a folded constant has the bits the same expression gets
 * at run time.  Broadcasting and permutes walk the output row by row with
 * strided operands; coalescing first merges adjacent axes that every
 * operand steps through contiguously, so equal shapes become one flat loop,
 * a row-vector broadcast two axes, and a permute that keeps the last axis a
 * memcpy per row.  Loops of more than IR_PAR_MIN elements are split among
 * OpenMP threads.  Layout ops move 4-byte elements whatever they hold.
 */
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"
#include "ir/scalar.h"

int64_t ir_array_numel(const IrArray *a) {
  int64_t n = 1;
  for (int i = 0; i < a->rank; i++) n *= a->d[i];
  return n;
}

void ir_bcast_strides(int in_rank, const int64_t *in_d, int rank, int64_t *st) {
  int off = rank - in_rank;
  int64_t s = 1;
  for (int j = rank - 1; j >= 0; j--) {
    int k = j - off;
    if (k < 0) {
      st[j] = 0;
      continue;
    }
    st[j] = in_d[k] == 1 ? 0 : s;
    s *= in_d[k];
  }
}

/* ---- strided walks -------------------------------------------------------- */

/* A walk over a contiguous output with up to two strided operands. */
typedef struct {
  int rank;
  int64_t d[IR_MAX_RANK];
  int64_t st[2][IR_MAX_RANK];
  int nops;
} Walk;

int ir_coalesce_axes(int rank, int64_t *d, int nops, int64_t (*st)[IR_MAX_RANK]) {
  int r = 0;
  for (int j = 0; j < rank; j++) { /* drop size-1 axes */
    if (d[j] == 1) continue;
    d[r] = d[j];
    for (int k = 0; k < nops; k++) st[k][r] = st[k][j];
    r++;
  }
  if (r == 0) return 0;
  int m = 0;
  for (int j = 1; j < r; j++) { /* merge axes every operand steps through contiguously */
    int ok = 1;
    for (int k = 0; k < nops; k++) ok &= st[k][m] == st[k][j] * d[j];
    if (ok) {
      d[m] *= d[j];
    } else {
      m++;
      d[m] = d[j];
    }
    for (int k = 0; k < nops; k++) st[k][m] = st[k][j];
  }
  return m + 1;
}

/* Coalesced, with at least one axis (a scalar walk is one of size 1). */
static void walk_coalesce(Walk *w) {
  w->rank = ir_coalesce_axes(w->rank, w->d, w->nops, w->st);
  if (w->rank == 0) {
    w->rank = 1;
    w->d[0] = 1;
    for (int k = 0; k < w->nops; k++) w->st[k][0] = 0;
  }
}

/* Offsets of outer row `row` (all axes but the last) for each operand. */
static void walk_offsets(const Walk *w, int64_t row, int64_t *off) {
  for (int k = 0; k < w->nops; k++) off[k] = 0;
  for (int j = w->rank - 2; j >= 0; j--) {
    int64_t i = row % w->d[j];
    row /= w->d[j];
    for (int k = 0; k < w->nops; k++) off[k] += i * w->st[k][j];
  }
}

/* ---- elementwise ---------------------------------------------------------- */

#define UNARY_LOOP(EXPR)                                                     \
  do {                                                                       \
    _Pragma("omp parallel for schedule(static) if (n > IR_PAR_MIN)")         \
    for (int64_t i = 0; i < n; i++) y[i] = (EXPR);                           \
  } while (0)

void ir_eval_unary(IrOp op, float f, float *y, const float *x, int64_t n) {
  switch (op) {
  case IR_NEG: UNARY_LOOP(ditc_neg(x[i])); break;
  case IR_RELU: UNARY_LOOP(ditc_relu(x[i])); break;
  case IR_SILU: UNARY_LOOP(ditc_silu(x[i])); break;
  case IR_GELU_TANH: UNARY_LOOP(ditc_gelu_tanh(x[i])); break;
  case IR_GELU: UNARY_LOOP(ditc_gelu(x[i])); break;
  case IR_SIGMOID: UNARY_LOOP(ditc_sigmoid(x[i])); break;
  case IR_TANH: UNARY_LOOP(ditc_tanh(x[i])); break;
  case IR_EXP: UNARY_LOOP(ditc_exp(x[i])); break;
  case IR_LOG: UNARY_LOOP(ditc_log(x[i])); break;
  case IR_SIN: UNARY_LOOP(ditc_sin(x[i])); break;
  case IR_COS: UNARY_LOOP(ditc_cos(x[i])); break;
  case IR_SQRT: UNARY_LOOP(ditc_sqrt(x[i])); break;
  case IR_RECIP: UNARY_LOOP(ditc_recip(x[i])); break;
  case IR_SCALE: UNARY_LOOP(ditc_scale(x[i], f)); break;
  case IR_ADD_SCALAR: UNARY_LOOP(ditc_add_scalar(x[i], f)); break;
  case IR_POW_SCALAR: UNARY_LOOP(ditc_pow_scalar(x[i], f)); break;
  case IR_CLAMP_MIN: UNARY_LOOP(ditc_clamp_min(x[i], f)); break;
  default: ditc_unreachable();
  }
}

/* One output row of n values; sa, sb are the operands' strides along it (0:
 * broadcast).  The common stride patterns get loops of their own, which the
 * compiler vectorises. */
#define BIN_ROW(FN)                                                                      \
  do {                                                                                   \
    if (sa == 1 && sb == 1) {                                                            \
      for (int64_t j = 0; j < n; j++) o[j] = FN(a[j], b[j]);                             \
    } else if (sa == 1 && sb == 0) {                                                     \
      float y = b[0];                                                                    \
      for (int64_t j = 0; j < n; j++) o[j] = FN(a[j], y);                                \
    } else if (sa == 0 && sb == 1) {                                                     \
      float x = a[0];                                                                    \
      for (int64_t j = 0; j < n; j++) o[j] = FN(x, b[j]);                                \
    } else {                                                                             \
      for (int64_t j = 0; j < n; j++) o[j] = FN(a[j * sa], b[j * sb]);                   \
    }                                                                                    \
  } while (0)

static void bin_row(IrOp op, float *o, const float *a, int64_t sa, const float *b, int64_t sb, int64_t n) {
  switch (op) {
  case IR_ADD: BIN_ROW(ditc_add); break;
  case IR_SUB: BIN_ROW(ditc_sub); break;
  case IR_MUL: BIN_ROW(ditc_mul); break;
  case IR_DIV: BIN_ROW(ditc_div); break;
  case IR_MAX: BIN_ROW(ditc_max); break;
  default: ditc_unreachable();
  }
}

void ir_eval_binary(IrOp op, IrArray *y, const IrArray *a, const IrArray *b) {
  Walk w = {.rank = y->rank, .nops = 2};
  for (int j = 0; j < y->rank; j++) w.d[j] = y->d[j];
  ir_bcast_strides(a->rank, a->d, y->rank, w.st[0]);
  ir_bcast_strides(b->rank, b->d, y->rank, w.st[1]);
  walk_coalesce(&w);
  int64_t numel = ir_array_numel(y), inner = w.d[w.rank - 1];
  if (inner == 0 || numel == 0) return;
  int64_t rows = numel / inner, sa = w.st[0][w.rank - 1], sb = w.st[1][w.rank - 1];
  float *o = y->data;
  const float *ap = a->data, *bp = b->data;
  if (rows == 1 && inner > IR_PAR_MIN) { /* one long row: split it into pieces instead */
    int64_t piece = 4096, pieces = (inner + piece - 1) / piece;
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < pieces; p++) {
      int64_t lo = p * piece, len = inner - lo < piece ? inner - lo : piece;
      bin_row(op, o + lo, ap + lo * sa, sa, bp + lo * sb, sb, len);
    }
    return;
  }
#pragma omp parallel for schedule(static) if (numel > IR_PAR_MIN)
  for (int64_t r = 0; r < rows; r++) {
    int64_t off[2];
    walk_offsets(&w, r, off);
    bin_row(op, o + r * inner, ap + off[0], sa, bp + off[1], sb, inner);
  }
}

int ir_eval_cast(IrDType from, IrDType to, void *y, const void *x, int64_t n, IrErr *err) {
  if (to == IR_I32 && from != IR_I32) {
    const float *xs = x;
    int32_t *ys = y;
    for (int64_t i = 0; i < n; i++) {
      /* a C cast of a value that does not fit is undefined: say so instead */
      if (!(xs[i] >= -2147483648.0f && xs[i] < 2147483648.0f))
        return ir_errf(err, "cast: value %g at %lld does not fit in i32", (double)xs[i], (long long)i);
      ys[i] = (int32_t)xs[i];
    }
  } else if (from == IR_I32 && to != IR_I32) {
    const int32_t *xs = x;
    float *ys = y;
    for (int64_t i = 0; i < n; i++) ys[i] = (float)xs[i];
  } else if (y != x) {
    memmove(y, x, (size_t)n * 4);
  }
  if (to == IR_F16 || to == IR_BF16) ir_round_to(to, y, n);
  return 0;
}

void ir_round_to(IrDType t, float *p, int64_t n) {
  if (t == IR_F16) {
#pragma omp parallel for schedule(static) if (n > IR_PAR_MIN)
    for (int64_t i = 0; i < n; i++) p[i] = ir_f16_to_f32(ir_f32_to_f16(p[i]));
  } else if (t == IR_BF16) {
#pragma omp parallel for schedule(static) if (n > IR_PAR_MIN)
    for (int64_t i = 0; i < n; i++) p[i] = ir_bf16_to_f32(ir_f32_to_bf16(p[i]));
  }
}

/* ---- reductions ----------------------------------------------------------- */

void ir_eval_reduce(IrOp op, int axis, IrArray *y, const IrArray *x) {
  DITC_ASSERT(op == IR_REDUCE_SUM || op == IR_REDUCE_MEAN);
  int a = axis < 0 ? axis + x->rank : axis;
  int64_t rows = 1, n = 1;
  for (int j = 0; j < x->rank; j++) *(j < a ? &rows : &n) *= x->d[j];
  const float *xs = x->data;
  float *o = y->data;
  /* accumulated in double: the oracle's own error stays below every tolerance */
#pragma omp parallel for schedule(static) if (rows * n > IR_PAR_MIN)
  for (int64_t r = 0; r < rows; r++) {
    double s = 0;
    for (int64_t j = 0; j < n; j++) s += xs[r * n + j];
    o[r] = (float)(op == IR_REDUCE_MEAN ? s / (double)n : s);
  }
}

/* ---- layout --------------------------------------------------------------- */

/* y axis j is x axis perm[j]. */
static void eval_permute(const int *perm, IrArray *y, const IrArray *x) {
  int64_t xst[IR_MAX_RANK], s = 1, numel = ir_array_numel(y);
  for (int j = x->rank - 1; j >= 0; j--) {
    xst[j] = s;
    s *= x->d[j];
  }
  Walk w = {.rank = y->rank, .nops = 1};
  for (int j = 0; j < y->rank; j++) {
    w.d[j] = y->d[j];
    w.st[0][j] = xst[perm[j]];
  }
  walk_coalesce(&w);
  int64_t inner = w.d[w.rank - 1], sx = w.st[0][w.rank - 1];
  if (numel == 0) return;
  int64_t rows = numel / inner;
  uint32_t *yp = y->data;
  const uint32_t *xp = x->data;
#pragma omp parallel for schedule(static) if (numel > IR_PAR_MIN)
  for (int64_t r = 0; r < rows; r++) {
    int64_t off[2]; /* sized for any walk: gcc -O3 cannot see nops == 1 */
    walk_offsets(&w, r, off);
    uint32_t *yr = yp + r * inner;
    const uint32_t *xr = xp + off[0];
    if (sx == 1)
      memcpy(yr, xr, (size_t)inner * 4);
    else
      for (int64_t j = 0; j < inner; j++) yr[j] = xr[j * sx];
  }
}

/* Copy `outer` blocks of `len` elements from src (stride sstride) to dst (stride dstride). */
static void copy_blocks(uint32_t *dst, int64_t dstride, const uint32_t *src, int64_t sstride, int64_t outer,
                        int64_t len) {
#pragma omp parallel for schedule(static) if (outer * len > IR_PAR_MIN && outer > 1)
  for (int64_t o = 0; o < outer; o++) memcpy(dst + o * dstride, src + o * sstride, (size_t)len * 4);
}

static void outer_inner(const IrArray *s, int axis, int64_t *outer, int64_t *inner) {
  *outer = *inner = 1;
  for (int j = 0; j < axis; j++) *outer *= s->d[j];
  for (int j = axis + 1; j < s->rank; j++) *inner *= s->d[j];
}

int ir_eval_layout(IrOp op, const IrAttrs *at, int64_t batch, IrArray *y, int n_in, const IrArray *in,
                   IrErr *err) {
  int64_t numel = ir_array_numel(y), outer, inner;
  switch (op) {
  case IR_RESHAPE:
    if (numel && y->data != in[0].data) memmove(y->data, in[0].data, (size_t)numel * 4);
    return 0;
  case IR_CAST:
    return ir_eval_cast(in[0].dtype, y->dtype, y->data, in[0].data, numel, err);
  case IR_PERMUTE:
    eval_permute(at->perm, y, &in[0]);
    return 0;
  case IR_SLICE: {
    int a = at->axis;
    int64_t st = ir_dim_eval(at->start, batch);
    outer_inner(&in[0], a, &outer, &inner);
    copy_blocks(y->data, y->d[a] * inner, (const uint32_t *)in[0].data + st * inner, in[0].d[a] * inner, outer,
                y->d[a] * inner);
    return 0;
  }
  case IR_CONCAT: {
    int a = at->axis;
    int64_t done = 0;
    outer_inner(y, a, &outer, &inner);
    for (int k = 0; k < n_in; k++) {
      int64_t len = in[k].d[a] * inner;
      copy_blocks((uint32_t *)y->data + done, y->d[a] * inner, in[k].data, len, outer, len);
      done += len;
    }
    return 0;
  }
  default: ditc_unreachable();
  }
}

/* ---- quantisation ----------------------------------------------------------- */

/* Offset into scales s (same rank as the walked array, each axis its size or
 * 1) of element i of an array of shape d. */
static int64_t scale_offset(int rank, const int64_t *d, const int64_t *sd, int64_t i) {
  int64_t off = 0, st = 1;
  for (int j = rank - 1; j >= 0; j--) {
    int64_t c = i % d[j];
    i /= d[j];
    if (sd[j] != 1) off += c * st;
    st *= sd[j];
  }
  return off;
}

void ir_eval_quant(IrOp op, const IrAttrs *at, IrArray *y, int n_in, const IrArray *in) {
  const IrArray *x = &in[0];
  const float *xp = x->data;
  float *yp = y->data;
  switch (op) {
  case IR_QSCALE: {
    int64_t rows = 1, len = 1;
    for (int j = 0; j < x->rank; j++) *(j < at->axis ? &rows : &len) *= x->d[j];
#pragma omp parallel for schedule(static) if (rows * len > IR_PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
      float m = 0.0f;
      for (int64_t j = 0; j < len; j++) m = ditc_absmax(m, xp[r * len + j]);
      yp[r] = ditc_qscale(m, at->f);
    }
    return;
  }
  case IR_QUANTIZE_E4M3: /* e4m3 values held decoded */
    for (int64_t i = 0, n = ir_array_numel(x); i < n; i++)
      yp[i] = ditc_quantize_e4m3(xp[i], ((const float *)in[1].data)[scale_offset(x->rank, x->d, in[1].d, i)]);
    return;
  case IR_QLINEAR_E4M3: {
    const IrArray *w = &in[2];
    int64_t N = w->d[0], K = w->d[1], M = K ? ir_array_numel(x) / K : ir_array_numel(y) / (N ? N : 1);
    const float *wp = w->data, *b = n_in > 4 ? in[4].data : NULL;
    float sx = ((const float *)in[1].data)[0], sw = ((const float *)in[3].data)[0];
#pragma omp parallel for schedule(static) if (M * N * K > IR_PAR_MIN)
    for (int64_t m = 0; m < M; m++)
      for (int64_t nn = 0; nn < N; nn++) {
        float acc = 0.0f; /* f32, k order, products exact (ditc_qlinear_e4m3_scale) */
        const float *xr = xp + m * K, *wr = wp + nn * K;
        for (int64_t k = 0; k < K; k++) acc += xr[k] * wr[k];
        float v = ditc_qlinear_e4m3_scale(acc, sx, sw);
        yp[m * N + nn] = b ? ditc_add(v, b[nn]) : v;
      }
    return;
  }
  case IR_QUANTIZE:
  case IR_DEQUANTIZE: {
    int64_t n = ir_array_numel(x);
    const float *sp = in[1].data;
#pragma omp parallel for schedule(static) if (n > IR_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
      float s = sp[scale_offset(x->rank, x->d, in[1].d, i)];
      yp[i] = op == IR_QUANTIZE ? ditc_quantize_i8(xp[i], s) : ditc_dequantize(xp[i], s);
    }
    return;
  }
  case IR_QLINEAR: {
    const IrArray *w = &in[2];
    int64_t N = w->d[0], K = w->d[1], M = K ? ir_array_numel(x) / K : ir_array_numel(y) / (N ? N : 1);
    const float *sx = in[1].data, *wp = w->data, *sw = in[3].data, *b = n_in > 4 ? in[4].data : NULL;
    /* the int8 levels as int8, for an exact int32 sum */
    int8_t *xq = xmalloc((size_t)(M * K > 0 ? M * K : 1)), *wq = xmalloc((size_t)(N * K > 0 ? N * K : 1));
    for (int64_t i = 0; i < M * K; i++) xq[i] = (int8_t)xp[i];
    for (int64_t i = 0; i < N * K; i++) wq[i] = (int8_t)wp[i];
#pragma omp parallel for schedule(static) if (M * N * K > IR_PAR_MIN)
    for (int64_t m = 0; m < M; m++)
      for (int64_t nn = 0; nn < N; nn++) {
        int32_t acc = 0;
        const int8_t *xr = xq + m * K, *wr = wq + nn * K;
        for (int64_t k = 0; k < K; k++) acc += (int32_t)xr[k] * (int32_t)wr[k];
        float v = ditc_qlinear_scale(acc, sx[m], sw[nn]);
        yp[m * N + nn] = b ? ditc_add(v, b[nn]) : v;
      }
    free(xq);
    free(wq);
    return;
  }
  default: ditc_unreachable();
  }
}
