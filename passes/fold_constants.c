/*
 * fold_constants.c - evaluate nodes whose inputs are all constants.
 *
 * A node whose inputs are all f32 CONSTs and whose op is elementwise (unary or
 * broadcasting binary), a layout op (reshape, permute, slice, concat) or a
 * reduction (reduce_sum, reduce_mean) is computed here on the host, in small
 * loops of our own, and replaced by a CONST holding the result; it keeps the
 * node's label.  Nodes are visited in topological order, so a chain such as
 * sin(scale(arange)) folds in one walk: each replacement is a CONST by the time
 * its users are visited.  The new CONSTs are appended, so the graph is re-sorted
 * before the dead originals go with ir_graph_dce().  Results above
 * FOLD_MAX_ELEMS elements are left alone: a huge constant costs more to store
 * than to compute.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "passes/passes.h"

#define FOLD_MAX_ELEMS ((int64_t)16 << 20)

/* Row-major strides of a fixed shape. */
static void strides_of(const IrShape *s, int64_t *st) {
  int64_t acc = 1;
  for (int i = s->rank - 1; i >= 0; i--) {
    st[i] = acc;
    acc *= s->d[i];
  }
}

/* Product of dims [from, to). */
static int64_t span(const IrShape *s, int from, int to) {
  int64_t p = 1;
  for (int i = from; i < to; i++) p *= s->d[i];
  return p;
}

static float unary(IrOp op, float x, const IrAttrs *a) {
  switch (op) {
  case IR_NEG: return -x;
  case IR_RELU: return x > 0.0f ? x : 0.0f;
  case IR_SILU: return x / (1.0f + expf(-x));
  case IR_GELU_TANH: {
    const float k = 0.7978845608028654f; /* sqrt(2/pi) */
    return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
  }
  case IR_GELU: return 0.5f * x * (1.0f + erff(x * 0.7071067811865476f));
  case IR_SIGMOID: return 1.0f / (1.0f + expf(-x));
  case IR_TANH: return tanhf(x);
  case IR_EXP: return expf(x);
  case IR_LOG: return logf(x);
  case IR_SIN: return sinf(x);
  case IR_COS: return cosf(x);
  case IR_SQRT: return sqrtf(x);
  case IR_RECIP: return 1.0f / x;
  case IR_SCALE: return x * a->f;
  case IR_ADD_SCALAR: return x + a->f;
  case IR_POW_SCALAR: return powf(x, a->f);
  case IR_CLAMP_MIN: return x < a->f ? a->f : x;
  case IR_CAST: return x; /* only f32 -> f32 gets here */
  default: ditc_unreachable();
  }
}

static float binary(IrOp op, float x, float y) {
  switch (op) {
  case IR_ADD: return x + y;
  case IR_SUB: return x - y;
  case IR_MUL: return x * y;
  case IR_DIV: return x / y;
  case IR_MAX: return x > y ? x : y;
  default: ditc_unreachable();
  }
}

/* numpy broadcasting: input axes align to the right; size-1 axes repeat. */
static void eval_binary(const IrNode *n, float *y) {
  const IrShape *os = &n->shape;
  int64_t bst[2][IR_MAX_RANK] = {{0}};
  for (int k = 0; k < 2; k++) {
    const IrShape *is = &n->in[k]->shape;
    int64_t st[IR_MAX_RANK];
    strides_of(is, st);
    for (int i = 0; i < is->rank; i++) {
      int o = os->rank - is->rank + i;
      bst[k][o] = is->d[i] == 1 ? 0 : st[i];
    }
  }
  const float *a = n->in[0]->data, *b = n->in[1]->data;
  int64_t numel = ir_shape_numel(os, 1);
  for (int64_t e = 0; e < numel; e++) {
    int64_t rem = e, oa = 0, ob = 0;
    for (int i = os->rank - 1; i >= 0; i--) {
      int64_t c = rem % os->d[i];
      rem /= os->d[i];
      oa += c * bst[0][i];
      ob += c * bst[1][i];
    }
    y[e] = binary(n->op, a[oa], b[ob]);
  }
}

/* Output axis j is input axis perm[j]. */
static void eval_permute(const IrNode *n, float *y) {
  const IrNode *x = n->in[0];
  int64_t xst[IR_MAX_RANK], pst[IR_MAX_RANK];
  strides_of(&x->shape, xst);
  for (int j = 0; j < n->shape.rank; j++) pst[j] = xst[n->attr.perm[j]];
  const float *src = x->data;
  int64_t numel = ir_shape_numel(&n->shape, 1);
  for (int64_t e = 0; e < numel; e++) {
    int64_t rem = e, off = 0;
    for (int j = n->shape.rank - 1; j >= 0; j--) {
      off += (rem % n->shape.d[j]) * pst[j];
      rem /= n->shape.d[j];
    }
    y[e] = src[off];
  }
}

static void eval_slice(const IrNode *n, float *y) {
  const IrShape *xs = &n->in[0]->shape;
  int ax = n->attr.axis;
  int64_t outer = span(xs, 0, ax), inner = span(xs, ax + 1, xs->rank);
  int64_t d = xs->d[ax], chunk = n->attr.len * inner;
  const float *src = n->in[0]->data;
  for (int64_t o = 0; o < outer; o++)
    memcpy(y + o * chunk, src + (o * d + n->attr.start) * inner, (size_t)chunk * sizeof *y);
}

static void eval_concat(const IrNode *n, float *y) {
  int ax = n->attr.axis;
  int64_t outer = span(&n->shape, 0, ax), inner = span(&n->shape, ax + 1, n->shape.rank);
  for (int64_t o = 0; o < outer; o++)
    for (int k = 0; k < n->n_in; k++) {
      int64_t chunk = n->in[k]->shape.d[ax] * inner;
      memcpy(y, (const float *)n->in[k]->data + o * chunk, (size_t)chunk * sizeof *y);
      y += chunk;
    }
}

/* Axes axis..rank-1 collapse to one value each, accumulated in double. */
static void eval_reduce(const IrNode *n, float *y) {
  const IrShape *xs = &n->in[0]->shape;
  int64_t outer = span(xs, 0, n->attr.axis), inner = span(xs, n->attr.axis, xs->rank);
  const float *src = n->in[0]->data;
  for (int64_t o = 0; o < outer; o++) {
    double acc = 0.0;
    for (int64_t i = 0; i < inner; i++) acc += src[o * inner + i];
    if (n->op == IR_REDUCE_MEAN && inner) acc /= (double)inner;
    y[o] = (float)acc;
  }
}

static int op_foldable(const IrNode *n) {
  switch (ir_op_class(n->op)) {
  case IR_CLASS_UNARY:
    return n->op != IR_CAST || n->attr.to == IR_F32;
  case IR_CLASS_BINARY:
    return 1;
  case IR_CLASS_OTHER:
    return n->op == IR_RESHAPE || n->op == IR_PERMUTE || n->op == IR_SLICE || n->op == IR_CONCAT ||
           n->op == IR_REDUCE_SUM || n->op == IR_REDUCE_MEAN;
  default:
    return 0;
  }
}

static int foldable(const IrNode *n) {
  if (!op_foldable(n) || n->dtype != IR_F32) return 0;
  for (int i = 0; i < n->shape.rank; i++)
    if (n->shape.d[i] < 0) return 0;
  if (ir_shape_numel(&n->shape, 1) > FOLD_MAX_ELEMS) return 0;
  for (int i = 0; i < n->n_in; i++)
    if (n->in[i]->op != IR_CONST || n->in[i]->dtype != IR_F32 || !n->in[i]->data) return 0;
  return 1;
}

static void eval(const IrNode *n, float *y) {
  int64_t numel = ir_shape_numel(&n->shape, 1);
  switch (ir_op_class(n->op)) {
  case IR_CLASS_UNARY: {
    const float *x = n->in[0]->data;
    for (int64_t e = 0; e < numel; e++) y[e] = unary(n->op, x[e], &n->attr);
    return;
  }
  case IR_CLASS_BINARY:
    eval_binary(n, y);
    return;
  default:
    break;
  }
  switch (n->op) {
  case IR_RESHAPE: memcpy(y, n->in[0]->data, (size_t)numel * sizeof *y); return;
  case IR_PERMUTE: eval_permute(n, y); return;
  case IR_SLICE: eval_slice(n, y); return;
  case IR_CONCAT: eval_concat(n, y); return;
  case IR_REDUCE_SUM:
  case IR_REDUCE_MEAN: eval_reduce(n, y); return;
  default: ditc_unreachable();
  }
}

int pass_fold_constants(IrGraph *g, const PassOptions *o, IrErr *err) {
  (void)o;
  int n0 = g->n_nodes, folded = 0;
  for (int i = 0; i < n0; i++) {
    IrNode *n = g->nodes[i];
    if (!foldable(n)) continue;
    int64_t numel = ir_shape_numel(&n->shape, 1);
    float *y = xmalloc((size_t)(numel ? numel : 1) * sizeof *y);
    eval(n, y);
    IrNode *c = ir_const(g, IR_F32, n->shape, y, n->loc);
    free(y);
    c->name = n->name;
    ir_replace_all_uses(g, n, c);
    folded++;
  }
  if (!folded) return 0;
  if (ir_graph_toposort(g, err)) return -1;
  ir_graph_dce(g);
  return 0;
}
