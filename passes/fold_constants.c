/*
 * fold_constants.c - evaluate nodes whose inputs are all constants.
 *
 * A node whose inputs are all f32 CONSTs and whose op is elementwise (unary or
 * broadcasting binary), a layout op (reshape, permute, slice, concat), an
 * f32 cast or a reduction (reduce_sum, reduce_mean) is computed here on the
 * host, by the functions the reference executor runs (ir/eval.c, whose
 * elementwise values are ir/scalar.h's, as the generated kernels' are), and
 * replaced by a CONST holding the result; it keeps the node's label.  So a
 * folded constant has the bits the unfolded graph would compute, NaN and
 * infinities included.  Nodes are visited in topological order, so a chain
 * such as sin(scale(arange)) folds in one walk: each replacement is a CONST by
 * the time its users are visited.  The new CONSTs are appended, so the graph
 * is re-sorted before the dead originals go with ir_graph_dce().  Results
 * above FOLD_MAX_ELEMS elements are left alone: a huge constant costs more to
 * store than to compute.
 */
#include <stdlib.h>

#include "passes/passes.h"

#define FOLD_MAX_ELEMS ((int64_t)16 << 20)

static int op_foldable(const IrNode *n) {
  switch (ir_op_class(n->op)) {
  case IR_CLASS_UNARY:
  case IR_CLASS_BINARY:
    return 1; /* a cast only to f32: foldable() asks for an f32 node */
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

/* A node's value as a host array (shapes are fixed: foldable() checked). */
static IrArray array_of(const IrNode *n, void *data) {
  IrArray a = {.dtype = n->dtype, .rank = n->shape.rank, .data = data};
  for (int i = 0; i < n->shape.rank; i++) a.d[i] = n->shape.d[i];
  return a;
}

static int eval(const IrNode *n, float *y, IrErr *err) {
  IrArray out = array_of(n, y), *in = xmalloc((size_t)(n->n_in ? n->n_in : 1) * sizeof *in);
  for (int i = 0; i < n->n_in; i++) in[i] = array_of(n->in[i], n->in[i]->data);
  int rc = 0;
  if (ir_op_class(n->op) == IR_CLASS_UNARY && n->op != IR_CAST)
    ir_eval_unary(n->op, n->attr.f, y, in[0].data, ir_array_numel(&out));
  else if (ir_op_class(n->op) == IR_CLASS_BINARY)
    ir_eval_binary(n->op, &out, &in[0], &in[1]);
  else if (n->op == IR_REDUCE_SUM || n->op == IR_REDUCE_MEAN)
    ir_eval_reduce(n->op, n->attr.axis, &out, &in[0]);
  else
    rc = ir_eval_layout(n->op, &n->attr, 1, &out, n->n_in, in, err);
  free(in);
  return rc;
}

int pass_fold_constants(IrGraph *g, const PassOptions *o, IrErr *err) {
  (void)o;
  int n0 = g->n_nodes, folded = 0;
  for (int i = 0; i < n0; i++) {
    IrNode *n = g->nodes[i];
    if (!foldable(n)) continue;
    int64_t numel = ir_shape_numel(&n->shape, 1);
    float *y = xmalloc((size_t)(numel ? numel : 1) * sizeof *y);
    if (eval(n, y, err)) {
      free(y);
      return -1;
    }
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
