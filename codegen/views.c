/*
 * views.c - a value read through the layout nodes under it (permute, slice,
 * reshape) as a strided view of the stored node it comes from, so that the
 * fused attention and the fused trees read the head split, slices and
 * permutes in place instead of materialising them.
 */
#include "codegen/lower.h"

NodeView lower_view_contig(Ctx *c, IrNode *n) {
  NodeView v = {.base = n, .rank = n->shape.rank};
  node_shape(c, n, v.shape);
  int64_t s = 1;
  for (int i = v.rank - 1; i >= 0; i--) {
    v.stride[i] = s;
    s *= v.shape[i];
  }
  return v;
}

/* Reshape view u into shape t (rank rt) without copying, if the strides allow. */
static int view_reshape(const NodeView *u, int rt, const int64_t *t, NodeView *out) {
  int64_t a[IR_MAX_RANK], st[IR_MAX_RANK];
  int na = 0;
  for (int i = 0; i < u->rank; i++) {
    if (u->shape[i] == 0) return -1;
    if (u->shape[i] == 1) continue;
    a[na] = u->shape[i];
    st[na++] = u->stride[i];
  }
  *out = *u;
  out->rank = rt;
  int ia = 0, j = 0;
  while (j < rt) {
    out->shape[j] = t[j];
    if (t[j] == 1) {
      out->stride[j++] = 0;
      continue;
    }
    int j0 = j, i0 = ia;
    if (ia >= na) return -1;
    int64_t pj = t[j++], pi = a[ia++];
    while (pi != pj) {
      if (pi < pj) {
        if (ia >= na) return -1;
        pi *= a[ia++];
      } else {
        if (j >= rt) return -1;
        out->shape[j] = t[j];
        pj *= t[j++];
      }
    }
    for (int x = i0; x < ia - 1; x++)
      if (st[x] != st[x + 1] * a[x + 1]) return -1;
    int64_t s = st[ia - 1];
    for (int y = j - 1; y >= j0; y--) {
      out->stride[y] = s;
      s *= t[y];
    }
  }
  return ia == na ? 0 : -1;
}

NodeView lower_view_through(Ctx *c, IrNode *n, LowerThroughFn through, void *arg) {
  if (!through(c, arg, n)) return lower_view_contig(c, n);
  NodeView u = lower_view_through(c, n->in[0], through, arg), v = u;
  switch (n->op) {
  case IR_PERMUTE:
    for (int j = 0; j < n->shape.rank; j++) {
      v.shape[j] = u.shape[n->attr.perm[j]];
      v.stride[j] = u.stride[n->attr.perm[j]];
    }
    return v;
  case IR_SLICE:
    v.offset += ir_dim_eval(n->attr.start, c->batch) * u.stride[n->attr.axis];
    v.shape[n->attr.axis] = ir_dim_eval(n->attr.len, c->batch);
    return v;
  default: {
    int64_t t[IR_MAX_RANK] = {0};
    node_shape(c, n, t);
    if (view_reshape(&u, n->shape.rank, t, &v) == 0) return v;
    return lower_view_contig(c, n);
  }
  }
}

static int any_layout(Ctx *c, void *arg, IrNode *n) {
  (void)c, (void)arg;
  return n->op == IR_PERMUTE || n->op == IR_SLICE || n->op == IR_RESHAPE;
}

NodeView lower_view(Ctx *c, IrNode *n) { return lower_view_through(c, n, any_layout, NULL); }
