/*
 * shape.c - shape and dtype inference: one rule per op of ops.def.
 *
 * ir_infer() is called when a node is built and again by the verifier, so the
 * rules here are the single definition of what a well-typed node is.  Messages
 * say what was expected and what was found, with shapes spelled as the dump
 * spells them; the caller adds the source location.
 *
 * Symbolic batch: a dimension d < 0 stands for (-d) * B.  Rules accept a
 * symbolic dim wherever the answer is still a multiple of B.
 */
#include <string.h>

#include "ir/ir.h"

#define SHP(s) ir_shape_str((s), (char[128]){0}, 128)

static int need_float(IrOp op, const IrNode *x, int i, IrErr *err) {
  if (ir_dtype_is_float(x->dtype)) return 0;
  return ir_errf(err, "%s: input %d must be a float tensor, got %s%s", ir_op_name(op), i,
                 ir_dtype_name(x->dtype), SHP(&x->shape));
}

/* numpy broadcasting of two shapes; symbolic dims broadcast only with 1 or themselves. */
static int broadcast(IrOp op, const IrShape *a, const IrShape *b, IrShape *out, IrErr *err) {
  int r = a->rank > b->rank ? a->rank : b->rank;
  out->rank = r;
  for (int i = 0; i < r; i++) {
    int ia = a->rank - r + i, ib = b->rank - r + i;
    IrDim da = ia >= 0 ? a->d[ia] : 1, db = ib >= 0 ? b->d[ib] : 1;
    if (da == db || db == 1)
      out->d[i] = da;
    else if (da == 1)
      out->d[i] = db;
    else
      return ir_errf(err, "%s: shapes %s and %s do not broadcast (axis %d: %s vs %s)", ir_op_name(op),
                     SHP(a), SHP(b), i, ir_dim_str(da, (char[32]){0}, 32),
                     ir_dim_str(db, (char[32]){0}, 32));
  }
  return 0;
}

static int check_axis(IrOp op, int axis, int rank, IrErr *err) {
  if (axis < 0 || axis >= rank)
    return ir_errf(err, "%s: axis %d out of range for rank %d", ir_op_name(op), axis, rank);
  return 0;
}

IrDim ir_moe_table_len(IrDim tokens, int k, int experts) {
  if (tokens < 0) return -(3 * (IrDim)k * -tokens + experts + 1);
  return experts + 1 + 3 * (IrDim)k * tokens;
}

int64_t ir_moe_table_experts(IrDim len, IrDim slots) {
  if ((len < 0) != (slots < 0)) return -1;
  int64_t e = (len < 0 ? -len + 3 * slots : len - 3 * slots) - 1;
  return e >= 1 ? e : -1;
}

/* The product of all axes but the last, as one dim (the MoE ops' tokens). */
static int token_count(IrOp op, const IrNode *x, IrDim *out, IrErr *err) {
  if (x->shape.rank < 2)
    return ir_errf(err, "%s: input %s needs rank >= 2 (tokens, features)", ir_op_name(op), SHP(&x->shape));
  IrDim fixed = 1;
  int sym = 0;
  for (int i = 0; i < x->shape.rank - 1; i++) {
    IrDim d = x->shape.d[i];
    if (d < 0 && sym++)
      return ir_errf(err, "%s: at most one axis of %s may depend on the batch", ir_op_name(op), SHP(&x->shape));
    fixed *= d < 0 ? -d : d;
  }
  *out = sym ? -fixed : fixed;
  return 0;
}

/* The expert count E of a routing table `tb` for `slots` routed rows, after
 * checking it is an i32 vector whose length fits (ir_moe_table_len). */
static int table_experts(IrOp op, const IrNode *tb, IrDim slots, int64_t *experts, IrErr *err) {
  if (tb->dtype != IR_I32 || tb->shape.rank != 1)
    return ir_errf(err, "%s: the routing table must be an i32 vector, got %s%s", ir_op_name(op),
                   ir_dtype_name(tb->dtype), SHP(&tb->shape));
  int64_t e = ir_moe_table_experts(tb->shape.d[0], slots);
  if (e < 1)
    return ir_errf(err, "%s: routing table %s does not fit %s routed rows", ir_op_name(op), SHP(&tb->shape),
                   ir_dim_str(slots, (char[32]){0}, 32));
  *experts = e;
  return 0;
}

static int infer_moe(IrOp op, int n, IrNode *const *in, const IrAttrs *at, IrShape *s, IrDType *t,
                     IrErr *err) {
  const IrNode *x = in[0];
  IrDim tokens;
  int64_t experts;
  if (op != IR_MOE_QLINEAR && op != IR_MOE_QLINEAR_E4M3 && need_float(op, x, 0, err)) return -1; /* levels: below */
  switch (op) {
  case IR_MOE_ROUTE: {
    if (token_count(op, x, &tokens, err)) return -1;
    IrDim e = x->shape.d[x->shape.rank - 1];
    if (e < 1) return ir_errf(err, "moe_route: the expert axis must have a fixed size, got %s", SHP(&x->shape));
    if (at->k < 1 || at->k > e) return ir_errf(err, "moe_route: k = %d must be in 1..%lld", at->k, (long long)e);
    *t = IR_I32;
    *s = ir_shape_make(1, (IrDim[]){ir_moe_table_len(tokens, at->k, (int)e)});
    return 0;
  }
  case IR_MOE_GATHER: {
    if (token_count(op, x, &tokens, err)) return -1;
    if (at->k < 1) return ir_errf(err, "moe_gather: k = %d must be >= 1", at->k);
    IrDim slots = tokens * at->k;
    if (table_experts(op, in[1], slots, &experts, err)) return -1;
    *s = ir_shape_make(2, (IrDim[]){slots, x->shape.d[x->shape.rank - 1]});
    return 0;
  }
  case IR_MOE_LINEAR: {
    if (n < 3 || n > 4)
      return ir_errf(err, "moe_linear: takes xs, table, w and an optional bias, got %d inputs", n);
    const IrNode *w = in[2];
    if (x->shape.rank != 2) return ir_errf(err, "moe_linear: xs must be [rows, K], got %s", SHP(&x->shape));
    if (table_experts(op, in[1], x->shape.d[0], &experts, err)) return -1;
    if (w->shape.rank != 3 || w->shape.d[0] != experts || w->shape.d[1] < 0 || w->shape.d[2] != x->shape.d[1])
      return ir_errf(err, "moe_linear: weight must be [%lld, N, %s] (experts, out, in), got %s", (long long)experts,
                     ir_dim_str(x->shape.d[1], (char[32]){0}, 32), SHP(&w->shape));
    if (w->dtype != x->dtype)
      return ir_errf(err, "moe_linear: weight dtype %s does not match xs dtype %s", ir_dtype_name(w->dtype),
                     ir_dtype_name(x->dtype));
    if (n == 4) {
      const IrNode *b = in[3];
      if (b->shape.rank != 2 || b->shape.d[0] != experts || b->shape.d[1] != w->shape.d[1])
        return ir_errf(err, "moe_linear: bias %s does not match weight %s (expected [%lld, %lld])", SHP(&b->shape),
                       SHP(&w->shape), (long long)experts, (long long)w->shape.d[1]);
      if (!ir_dtype_is_float(b->dtype)) return ir_errf(err, "moe_linear: bias must be float");
    }
    *s = ir_shape_make(2, (IrDim[]){x->shape.d[0], w->shape.d[1]});
    return 0;
  }
  case IR_MOE_QLINEAR:
  case IR_MOE_QLINEAR_E4M3: { /* xq, table, sx, wq, sw[, b] */
    const char *nm = ir_op_name(op);
    IrDType lv = op == IR_MOE_QLINEAR ? IR_I8 : IR_E4M3;
    if (n < 5 || n > 6) return ir_errf(err, "%s: takes xq, table, sx, wq, sw and an optional bias, got %d inputs", nm, n);
    const IrNode *w = in[3], *sx = in[2], *sw = in[4];
    if (x->shape.rank != 2) return ir_errf(err, "%s: xq must be [rows, K], got %s", nm, SHP(&x->shape));
    if (table_experts(op, in[1], x->shape.d[0], &experts, err)) return -1;
    if (x->dtype != lv || w->dtype != lv)
      return ir_errf(err, "%s: xq and wq must be %s, got %s and %s", nm, ir_dtype_name(lv), ir_dtype_name(x->dtype),
                     ir_dtype_name(w->dtype));
    if (w->shape.rank != 3 || w->shape.d[0] != experts || w->shape.d[1] < 0 || w->shape.d[2] != x->shape.d[1])
      return ir_errf(err, "%s: weight must be [%lld, N, %s] (experts, out, in), got %s", nm, (long long)experts,
                     ir_dim_str(x->shape.d[1], (char[32]){0}, 32), SHP(&w->shape));
    IrShape ssx = x->shape, ssw = w->shape;
    ssx.d[1] = ssw.d[2] = 1;
    if (op == IR_MOE_QLINEAR_E4M3) ssx.d[0] = 1, ssw.d[1] = 1; /* per tensor: sx [1, 1], sw [E, 1, 1] */
    if (sx->dtype != IR_F32 || !ir_shape_eq(&sx->shape, &ssx) || sw->dtype != IR_F32 || !ir_shape_eq(&sw->shape, &ssw))
      return ir_errf(err, "%s: scales %s and %s must be f32 %s and %s", nm, SHP(&sx->shape), SHP(&sw->shape),
                     SHP(&ssx), SHP(&ssw));
    if (n == 6 && (in[5]->dtype != IR_F32 || in[5]->shape.rank != 2 || in[5]->shape.d[0] != experts ||
                   in[5]->shape.d[1] != w->shape.d[1]))
      return ir_errf(err, "%s: bias %s must be f32 [%lld, %lld]", nm, SHP(&in[5]->shape), (long long)experts,
                     (long long)w->shape.d[1]);
    *s = ir_shape_make(2, (IrDim[]){x->shape.d[0], w->shape.d[1]});
    *t = IR_F32;
    return 0;
  }
  case IR_MOE_COMBINE: {
    const IrNode *g = in[2];
    if (x->shape.rank != 2) return ir_errf(err, "moe_combine: ys must be [rows, D], got %s", SHP(&x->shape));
    if (need_float(op, g, 2, err) || token_count(op, g, &tokens, err)) return -1;
    if (g->dtype != x->dtype)
      return ir_errf(err, "moe_combine: gates dtype %s does not match ys dtype %s", ir_dtype_name(g->dtype),
                     ir_dtype_name(x->dtype));
    IrDim rows = x->shape.d[0];
    if (tokens == 0 || (rows < 0) != (tokens < 0) || rows % tokens || rows / tokens < 1)
      return ir_errf(err, "moe_combine: %s rows are not k rows for each of the %s tokens of gates %s",
                     ir_dim_str(rows, (char[32]){0}, 32), ir_dim_str(tokens, (char[32]){0}, 32), SHP(&g->shape));
    if (table_experts(op, in[1], rows, &experts, err)) return -1;
    if (experts != g->shape.d[g->shape.rank - 1])
      return ir_errf(err, "moe_combine: the routing table is for %lld experts, gates %s", (long long)experts,
                     SHP(&g->shape));
    *s = g->shape;
    s->d[s->rank - 1] = x->shape.d[1];
    return 0;
  }
  default:
    ditc_unreachable();
  }
}

/* A scale s of x: the same rank, each axis x's or 1, f32. */
static int check_scales(IrOp op, const IrNode *x, const IrNode *s, IrErr *err) {
  int ok = s->dtype == IR_F32 && s->shape.rank == x->shape.rank;
  for (int i = 0; ok && i < x->shape.rank; i++) ok = s->shape.d[i] == 1 || s->shape.d[i] == x->shape.d[i];
  if (!ok)
    return ir_errf(err, "%s: scales %s%s do not fit %s%s (f32, same rank, each axis its size or 1)", ir_op_name(op),
                   ir_dtype_name(s->dtype), SHP(&s->shape), ir_dtype_name(x->dtype), SHP(&x->shape));
  return 0;
}

static int infer_quant(IrOp op, int n, IrNode *const *in, const IrAttrs *at, IrShape *s, IrDType *t, IrErr *err) {
  const IrNode *x = in[0];
  switch (op) {
  case IR_QSCALE:
    if (need_float(op, x, 0, err) || check_axis(op, at->axis, x->shape.rank, err)) return -1;
    if (!(at->f >= 1.0f)) return ir_errf(err, "qscale: qmax must be >= 1");
    for (int i = at->axis; i < s->rank; i++) s->d[i] = 1;
    *t = IR_F32;
    return 0;
  case IR_QUANTIZE:
    if (need_float(op, x, 0, err) || check_scales(op, x, in[1], err)) return -1;
    *t = IR_I8;
    return 0;
  case IR_DEQUANTIZE:
    if (x->dtype != IR_I8) return ir_errf(err, "dequantize: input 0 must be i8, got %s%s", ir_dtype_name(x->dtype), SHP(&x->shape));
    if (check_scales(op, x, in[1], err)) return -1;
    *t = IR_F32;
    return 0;
  case IR_QUANTIZE_E4M3:
    if (need_float(op, x, 0, err) || check_scales(op, x, in[1], err)) return -1;
    *t = IR_E4M3;
    return 0;
  case IR_QLINEAR_E4M3: {
    if (n < 4 || n > 5) return ir_errf(err, "qlinear_e4m3: takes xq, sx, wq, sw and an optional bias, got %d inputs", n);
    const IrNode *w = in[2];
    if (x->dtype != IR_E4M3 || w->dtype != IR_E4M3)
      return ir_errf(err, "qlinear_e4m3: xq and wq must be e4m3, got %s and %s", ir_dtype_name(x->dtype),
                     ir_dtype_name(w->dtype));
    if (x->shape.rank < 1) return ir_errf(err, "qlinear_e4m3: xq must have rank >= 1");
    if (w->shape.rank != 2 || w->shape.d[0] < 0 || w->shape.d[1] < 0 || w->shape.d[1] != x->shape.d[x->shape.rank - 1])
      return ir_errf(err, "qlinear_e4m3: weight %s must be a fixed [out, in] matching xq %s", SHP(&w->shape), SHP(&x->shape));
    int ok = in[1]->dtype == IR_F32 && in[3]->dtype == IR_F32 && in[3]->shape.rank == 2;
    for (int i = 0; ok && i < in[1]->shape.rank; i++) ok = in[1]->shape.d[i] == 1;
    for (int i = 0; ok && i < 2; i++) ok = in[3]->shape.d[i] == 1;
    if (!ok)
      return ir_errf(err, "qlinear_e4m3: scales %s and %s must be f32, one per tensor (every size 1; sw [1, 1])",
                     SHP(&in[1]->shape), SHP(&in[3]->shape));
    if (n == 5 && (in[4]->dtype != IR_F32 || in[4]->shape.rank != 1 || in[4]->shape.d[0] != w->shape.d[0]))
      return ir_errf(err, "qlinear_e4m3: bias %s must be f32 [%lld]", SHP(&in[4]->shape), (long long)w->shape.d[0]);
    s->d[s->rank - 1] = w->shape.d[0];
    *t = IR_F32;
    return 0;
  }
  case IR_QLINEAR: {
    if (n < 4 || n > 5) return ir_errf(err, "qlinear: takes xq, sx, wq, sw and an optional bias, got %d inputs", n);
    const IrNode *w = in[2];
    if (x->dtype != IR_I8 || w->dtype != IR_I8)
      return ir_errf(err, "qlinear: xq and wq must be i8, got %s and %s", ir_dtype_name(x->dtype), ir_dtype_name(w->dtype));
    if (x->shape.rank < 1) return ir_errf(err, "qlinear: xq must have rank >= 1");
    if (w->shape.rank != 2 || w->shape.d[0] < 0 || w->shape.d[1] < 0 || w->shape.d[1] != x->shape.d[x->shape.rank - 1])
      return ir_errf(err, "qlinear: weight %s must be a fixed [out, in] matching xq %s", SHP(&w->shape), SHP(&x->shape));
    IrShape sx = x->shape, sw = w->shape;
    sx.d[sx.rank - 1] = sw.d[1] = 1;
    if (in[1]->dtype != IR_F32 || !ir_shape_eq(&in[1]->shape, &sx) || in[3]->dtype != IR_F32 ||
        !ir_shape_eq(&in[3]->shape, &sw))
      return ir_errf(err, "qlinear: scales %s and %s must be f32 %s and %s", SHP(&in[1]->shape), SHP(&in[3]->shape),
                     SHP(&sx), SHP(&sw));
    if (n == 5 && (in[4]->dtype != IR_F32 || in[4]->shape.rank != 1 || in[4]->shape.d[0] != w->shape.d[0]))
      return ir_errf(err, "qlinear: bias %s must be f32 [%lld]", SHP(&in[4]->shape), (long long)w->shape.d[0]);
    s->d[s->rank - 1] = w->shape.d[0];
    *t = IR_F32;
    return 0;
  }
  default:
    ditc_unreachable();
  }
}

static int infer_other(IrOp op, int n, IrNode *const *in, const IrAttrs *at, IrShape *s,
                       IrDType *t, IrErr *err) {
  const IrNode *x = in[0];
  *t = x->dtype;
  *s = x->shape;
  switch (op) {
  case IR_LAYERNORM:
  case IR_SOFTMAX:
    if (need_float(op, x, 0, err)) return -1;
    if (x->shape.rank < 1) return ir_errf(err, "%s: needs rank >= 1", ir_op_name(op));
    if (op == IR_LAYERNORM && !(at->f > 0)) return ir_errf(err, "layernorm: eps must be > 0");
    return 0;

  case IR_REDUCE_SUM:
  case IR_REDUCE_MEAN:
    if (need_float(op, x, 0, err) || check_axis(op, at->axis, x->shape.rank, err)) return -1;
    for (int i = at->axis; i < s->rank; i++) s->d[i] = 1;
    return 0;

  case IR_TOPK_SOFTMAX: {
    if (need_float(op, x, 0, err)) return -1;
    if (x->shape.rank < 1) return ir_errf(err, "topk_softmax: needs rank >= 1");
    IrDim last = x->shape.d[x->shape.rank - 1];
    if (last < 0) return ir_errf(err, "topk_softmax: the last axis must have a fixed size");
    if (at->k < 1 || at->k > last)
      return ir_errf(err, "topk_softmax: k = %d must be in 1..%lld", at->k, (long long)last);
    return 0;
  }

  case IR_LINEAR: {
    if (n < 2 || n > 3) return ir_errf(err, "linear: takes x, w and an optional bias, got %d inputs", n);
    const IrNode *w = in[1];
    if (need_float(op, x, 0, err)) return -1;
    if (x->shape.rank < 1) return ir_errf(err, "linear: x must have rank >= 1");
    if (w->shape.rank != 2 || w->shape.d[0] < 0 || w->shape.d[1] < 0)
      return ir_errf(err, "linear: weight must be a fixed 2-D [out, in] tensor, got %s", SHP(&w->shape));
    if (w->dtype != x->dtype && w->dtype != IR_I8)
      return ir_errf(err, "linear: weight dtype %s does not match x dtype %s", ir_dtype_name(w->dtype),
                     ir_dtype_name(x->dtype));
    IrDim k = x->shape.d[x->shape.rank - 1];
    if (k != w->shape.d[1])
      return ir_errf(err, "linear: x %s has %s features but weight %s expects %lld", SHP(&x->shape),
                     ir_dim_str(k, (char[32]){0}, 32), SHP(&w->shape), (long long)w->shape.d[1]);
    if (n == 3) {
      const IrNode *b = in[2];
      if (b->shape.rank != 1 || b->shape.d[0] != w->shape.d[0])
        return ir_errf(err, "linear: bias %s does not match weight %s (expected [%lld])", SHP(&b->shape),
                       SHP(&w->shape), (long long)w->shape.d[0]);
      if (!ir_dtype_is_float(b->dtype)) return ir_errf(err, "linear: bias must be float");
    }
    s->d[s->rank - 1] = w->shape.d[0];
    return 0;
  }

  case IR_MATMUL: {
    const IrNode *b = in[1];
    if (need_float(op, x, 0, err) || need_float(op, b, 1, err)) return -1;
    if (x->dtype != b->dtype)
      return ir_errf(err, "matmul: dtypes %s and %s differ", ir_dtype_name(x->dtype), ir_dtype_name(b->dtype));
    if (x->shape.rank < 2 || b->shape.rank < 2)
      return ir_errf(err, "matmul: both operands need rank >= 2, got %s and %s", SHP(&x->shape), SHP(&b->shape));
    int ra = x->shape.rank, rb = b->shape.rank;
    IrDim m = x->shape.d[ra - 2], ka = x->shape.d[ra - 1];
    IrDim kb = at->trans_b ? b->shape.d[rb - 1] : b->shape.d[rb - 2];
    IrDim nn = at->trans_b ? b->shape.d[rb - 2] : b->shape.d[rb - 1];
    if (ka != kb)
      return ir_errf(err, "matmul: inner dimensions differ: %s x %s%s", SHP(&x->shape), SHP(&b->shape),
                     at->trans_b ? "^T" : "");
    if (ka < 0 || nn < 0) return ir_errf(err, "matmul: the contracted and column dims must be fixed");
    IrShape la = {ra - 2, {0}}, lb = {rb - 2, {0}}, lo;
    memcpy(la.d, x->shape.d, sizeof(IrDim) * (size_t)(ra - 2));
    memcpy(lb.d, b->shape.d, sizeof(IrDim) * (size_t)(rb - 2));
    if (broadcast(op, &la, &lb, &lo, err)) return -1;
    if (lo.rank + 2 > IR_MAX_RANK) return ir_errf(err, "matmul: result rank too large");
    *s = lo;
    s->d[s->rank++] = m;
    s->d[s->rank++] = nn;
    return 0;
  }

  case IR_CONV2D: {
    if (n < 2 || n > 3) return ir_errf(err, "conv2d: takes x, w and an optional bias, got %d inputs", n);
    const IrNode *w = in[1];
    if (need_float(op, x, 0, err)) return -1;
    if (x->shape.rank != 4 || w->shape.rank != 4)
      return ir_errf(err, "conv2d: x must be [N, C, H, W] and w [O, C/groups, kh, kw], got %s and %s",
                     SHP(&x->shape), SHP(&w->shape));
    int groups = at->groups ? at->groups : 1, stride = at->stride ? at->stride : 1;
    IrDim c = x->shape.d[1], h = x->shape.d[2], wd = x->shape.d[3];
    if (c < 0 || h < 0 || wd < 0) return ir_errf(err, "conv2d: only the batch dim may be symbolic");
    if (groups < 1 || c % groups || w->shape.d[0] % groups)
      return ir_errf(err, "conv2d: groups = %d must divide channels %lld and outputs %lld", groups,
                     (long long)c, (long long)w->shape.d[0]);
    if (w->shape.d[1] * groups != c)
      return ir_errf(err, "conv2d: weight %s expects %lld input channels, x %s has %lld", SHP(&w->shape),
                     (long long)(w->shape.d[1] * groups), SHP(&x->shape), (long long)c);
    if (stride < 1 || at->pad < 0) return ir_errf(err, "conv2d: stride must be >= 1 and padding >= 0");
    IrDim oh = (h + 2 * at->pad - w->shape.d[2]) / stride + 1, ow = (wd + 2 * at->pad - w->shape.d[3]) / stride + 1;
    if (h + 2 * at->pad < w->shape.d[2] || wd + 2 * at->pad < w->shape.d[3])
      return ir_errf(err, "conv2d: kernel %lldx%lld larger than padded input %lldx%lld",
                     (long long)w->shape.d[2], (long long)w->shape.d[3], (long long)(h + 2 * at->pad),
                     (long long)(wd + 2 * at->pad));
    if (n == 3 && (in[2]->shape.rank != 1 || in[2]->shape.d[0] != w->shape.d[0]))
      return ir_errf(err, "conv2d: bias %s does not match %lld output channels", SHP(&in[2]->shape),
                     (long long)w->shape.d[0]);
    IrDim d[4] = {x->shape.d[0], w->shape.d[0], oh, ow};
    *s = ir_shape_make(4, d);
    return 0;
  }

  case IR_EMBEDDING: {
    const IrNode *idx = in[1];
    if (need_float(op, x, 0, err)) return -1;
    if (x->shape.rank != 2 || x->shape.d[0] < 0 || x->shape.d[1] < 0)
      return ir_errf(err, "embedding: table must be a fixed [rows, dim] tensor, got %s", SHP(&x->shape));
    if (idx->dtype != IR_I32)
      return ir_errf(err, "embedding: indices must be i32, got %s", ir_dtype_name(idx->dtype));
    if (idx->shape.rank + 1 > IR_MAX_RANK) return ir_errf(err, "embedding: result rank too large");
    *s = idx->shape;
    s->d[s->rank++] = x->shape.d[1];
    return 0;
  }

  case IR_RESHAPE: {
    int64_t fa, fb;
    int sa, sb;
    const IrShape *to = &at->shape;
    if (to->rank < 0 || to->rank > IR_MAX_RANK) return ir_errf(err, "reshape: bad rank %d", to->rank);
    if (ir_shape_count(&x->shape, &fa, &sa) || ir_shape_count(to, &fb, &sb))
      return ir_errf(err, "reshape: element count overflows");
    if (sb > 1) return ir_errf(err, "reshape: at most one dimension may depend on the batch, got %s", SHP(to));
    if (fa != fb || sa != sb)
      return ir_errf(err, "reshape: cannot reshape %s into %s (element counts differ)", SHP(&x->shape), SHP(to));
    *s = *to;
    return 0;
  }

  case IR_PERMUTE: {
    int seen[IR_MAX_RANK] = {0};
    for (int i = 0; i < x->shape.rank; i++) {
      int p = at->perm[i];
      if (p < 0 || p >= x->shape.rank || seen[p]++)
        return ir_errf(err, "permute: perm is not a permutation of 0..%d", x->shape.rank - 1);
      s->d[i] = x->shape.d[p];
    }
    return 0;
  }

  case IR_SLICE: {
    if (check_axis(op, at->axis, x->shape.rank, err)) return -1;
    IrDim d = x->shape.d[at->axis], st = at->start, len = at->len;
    int ok;
    if (d >= 0)
      ok = st >= 0 && len >= 1 && st + len <= d;
    else /* symbolic axis: start 0 or a multiple of B, len a multiple of B */
      ok = st <= 0 && len < 0 && -st - len <= -d;
    if (!ok) {
      char b1[32], b2[32];
      if (d >= 0) /* a fixed axis: start and length are plain numbers (a negative one is not B's multiple) */
        return ir_errf(err, "slice: start %lld, length %lld is not inside axis %d of %s (0 <= start, 1 <= length, "
                       "start + length <= %lld)", (long long)st, (long long)len, at->axis, SHP(&x->shape),
                       (long long)d);
      return ir_errf(err, "slice: start %s, length %s is not inside axis %d of %s", ir_dim_str(st, b1, 32),
                     ir_dim_str(len, b2, 32), at->axis, SHP(&x->shape));
    }
    s->d[at->axis] = len;
    return 0;
  }

  case IR_CONCAT: {
    if (n < 1) return ir_errf(err, "concat: needs at least one input");
    if (check_axis(op, at->axis, x->shape.rank, err)) return -1;
    IrDim total = 0;
    int sym = x->shape.d[at->axis] < 0;
    for (int i = 0; i < n; i++) {
      const IrNode *y = in[i];
      if (y->dtype != x->dtype || y->shape.rank != x->shape.rank)
        return ir_errf(err, "concat: input %d is %s%s but input 0 is %s%s", i, ir_dtype_name(y->dtype),
                       SHP(&y->shape), ir_dtype_name(x->dtype), SHP(&x->shape));
      for (int a = 0; a < x->shape.rank; a++)
        if (a != at->axis && y->shape.d[a] != x->shape.d[a])
          return ir_errf(err, "concat: input %d %s does not match input 0 %s outside axis %d", i,
                         SHP(&y->shape), SHP(&x->shape), at->axis);
      IrDim d = y->shape.d[at->axis];
      if ((d < 0) != sym)
        return ir_errf(err, "concat: cannot join batch-sized and fixed-size pieces along axis %d", at->axis);
      total += d;
    }
    s->d[at->axis] = total;
    return 0;
  }

  case IR_MOE_ROUTE:
  case IR_MOE_GATHER:
  case IR_MOE_LINEAR:
  case IR_MOE_QLINEAR:
  case IR_MOE_QLINEAR_E4M3:
  case IR_MOE_COMBINE:
    return infer_moe(op, n, in, at, s, t, err);

  case IR_QSCALE:
  case IR_QUANTIZE:
  case IR_DEQUANTIZE:
  case IR_QLINEAR:
  case IR_QUANTIZE_E4M3:
  case IR_QLINEAR_E4M3:
    return infer_quant(op, n, in, at, s, t, err);

  case IR_IM2COL: {
    if (need_float(op, x, 0, err)) return -1;
    if (x->shape.rank != 4 || x->shape.d[1] < 0 || x->shape.d[2] < 0 || x->shape.d[3] < 0)
      return ir_errf(err, "im2col: x must be [N, C, H, W] with fixed C, H, W, got %s", SHP(&x->shape));
    int k = at->k, stride = at->stride ? at->stride : 1, up = at->up ? at->up : 1;
    if (k < 1 || stride < 1 || up < 1 || at->pad < 0)
      return ir_errf(err, "im2col: kernel, stride and up must be >= 1 and padding >= 0");
    int64_t h = x->shape.d[2] * up + 2 * (int64_t)at->pad, w = x->shape.d[3] * up + 2 * (int64_t)at->pad;
    if (k > h || k > w)
      return ir_errf(err, "im2col: kernel %dx%d larger than padded input %lldx%lld", k, k, (long long)h, (long long)w);
    *s = (IrShape){.rank = 3, .d = {x->shape.d[0], x->shape.d[1] * k * k, ((h - k) / stride + 1) * ((w - k) / stride + 1)}};
    return 0;
  }

  case IR_AVGPOOL2D:
    if (need_float(op, x, 0, err)) return -1;
    if (x->shape.rank != 4 || x->shape.d[2] < 0 || x->shape.d[3] < 0)
      return ir_errf(err, "adaptive_avg_pool2d: x must be [N, C, H, W] with fixed H, W, got %s", SHP(&x->shape));
    if (at->out_h < 1 || at->out_w < 1 || at->out_h > x->shape.d[2] || at->out_w > x->shape.d[3])
      return ir_errf(err, "adaptive_avg_pool2d: output %dx%d must be within 1..%lldx%lld", at->out_h, at->out_w,
                     (long long)x->shape.d[2], (long long)x->shape.d[3]);
    s->d[2] = at->out_h;
    s->d[3] = at->out_w;
    return 0;

  default:
    ditc_unreachable();
  }
}

int ir_infer(IrOp op, int n_in, IrNode *const *in, const IrAttrs *at, IrShape *shape, IrDType *dtype,
             IrErr *err) {
  if ((unsigned)op >= IR_OP_COUNT) return ir_errf(err, "unknown op %d", (int)op);
  int arity = ir_op_arity(op);
  if (arity >= 0 && n_in != arity)
    return ir_errf(err, "%s: takes %d input%s, got %d", ir_op_name(op), arity, arity == 1 ? "" : "s", n_in);
  for (int i = 0; i < n_in; i++)
    if (!in[i]) return ir_errf(err, "%s: input %d is missing", ir_op_name(op), i);
  switch (ir_op_class(op)) {
  case IR_CLASS_LEAF:
    return ir_errf(err, "%s: leaves are made with ir_input/ir_param/ir_const", ir_op_name(op));
  case IR_CLASS_UNARY:
    *shape = in[0]->shape;
    if (op == IR_CAST) {
      if ((unsigned)at->to >= IR_DTYPE_COUNT) return ir_errf(err, "cast: bad target dtype");
      *dtype = at->to;
      return 0;
    }
    *dtype = in[0]->dtype;
    return need_float(op, in[0], 0, err);
  case IR_CLASS_BINARY:
    if (in[0]->dtype != in[1]->dtype)
      return ir_errf(err, "%s: dtypes %s and %s differ", ir_op_name(op), ir_dtype_name(in[0]->dtype),
                     ir_dtype_name(in[1]->dtype));
    if (need_float(op, in[0], 0, err)) return -1;
    *dtype = in[0]->dtype;
    return broadcast(op, &in[0]->shape, &in[1]->shape, shape, err);
  case IR_CLASS_OTHER:
    return infer_other(op, n_in, in, at, shape, dtype, err);
  }
  ditc_unreachable();
}
