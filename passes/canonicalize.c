/*
 * canonicalize.c - local rewrites that make the graph smaller and more uniform.
 *
 *   reshape(reshape(x))      -> reshape(x)
 *   permute(permute(x))      -> permute(x) with the composed permutation
 *   slice(slice(x)) on one axis -> slice(x) with the summed start (the
 *                               per-block chunks of hoist-adaln's merged
 *                               product read it directly)
 *   reshape / permute that leave x unchanged           -> x
 *   scale by 1, add_scalar 0, pow_scalar 1             -> x
 *   cast to the input's own dtype                      -> x
 *   slice covering the whole axis                      -> x
 *
 * One walk in topological order suffices: a node's inputs are already in
 * canonical form when it is visited, so chains collapse as the walk goes.
 * Merging with the producer rewires the node in place (the producer's input
 * comes earlier still, so the order holds); removals redirect the uses.  Every
 * rewrite keeps the node's dtype and shape, re-checked with ir_infer() before a
 * rewired node is kept.  Producers left without users go with ir_graph_dce().
 */
#include "passes/passes.h"

/* Does n, rewired as it now is, still produce its stored dtype and shape? */
static int still_valid(IrNode *n) {
  IrShape s = n->shape;
  IrDType t = n->dtype;
  if (ir_infer(n->op, n->n_in, n->in, &n->attr, &s, &t, NULL)) return 0;
  return t == n->dtype && ir_shape_eq(&s, &n->shape);
}

/* Bypass a node whose output equals its only input. */
static int is_noop(const IrNode *n) {
  const IrNode *x = n->n_in == 1 ? n->in[0] : NULL;
  if (!x || x->dtype != n->dtype || !ir_shape_eq(&x->shape, &n->shape)) return 0;
  switch (n->op) {
  case IR_RESHAPE:
  case IR_CAST: /* to the dtype it already has */
    return 1;
  case IR_PERMUTE:
    for (int i = 0; i < n->shape.rank; i++)
      if (n->attr.perm[i] != i) return 0;
    return 1;
  case IR_SLICE:
    return n->attr.start == 0 && n->attr.len == x->shape.d[n->attr.axis];
  case IR_SCALE:
  case IR_POW_SCALAR:
    return n->attr.f == 1.0f;
  case IR_ADD_SCALAR:
    return n->attr.f == 0.0f;
  default:
    return 0;
  }
}

/* reshape(reshape(x)) -> reshape(x); permute(permute(x)) -> permute(x);
 * slice(slice(x)) -> slice(x) when both cut the same axis at fixed starts. */
static int merge_with_producer(IrNode *n) {
  IrNode *inner = n->n_in == 1 ? n->in[0] : NULL;
  if (!inner || inner->op != n->op) return 0;
  if (n->op == IR_RESHAPE) {
    n->in[0] = inner->in[0];
    if (still_valid(n)) return 1;
    n->in[0] = inner;
    return 0;
  }
  if (n->op == IR_PERMUTE) {
    /* Axis j of n is axis perm[j] of inner, which is axis inner.perm[perm[j]] of x. */
    IrAttrs saved = n->attr;
    for (int j = 0; j < n->shape.rank; j++) n->attr.perm[j] = inner->attr.perm[saved.perm[j]];
    n->in[0] = inner->in[0];
    if (still_valid(n)) return 1;
    n->attr = saved;
    n->in[0] = inner;
    return 0;
  }
  if (n->op == IR_SLICE && inner->attr.axis == n->attr.axis && n->attr.start >= 0 && inner->attr.start >= 0) {
    IrAttrs saved = n->attr;
    n->attr.start += inner->attr.start;
    n->in[0] = inner->in[0];
    if (still_valid(n)) return 1;
    n->attr = saved;
    n->in[0] = inner;
    return 0;
  }
  return 0;
}

int pass_canonicalize(IrGraph *g, const PassOptions *o, IrErr *err) {
  (void)o;
  (void)err;
  int changed = 0;
  for (int i = 0; i < g->n_nodes; i++) {
    IrNode *n = g->nodes[i];
    if (ir_op_class(n->op) == IR_CLASS_LEAF) continue;
    changed += merge_with_producer(n);
    if (is_noop(n)) {
      ir_replace_all_uses(g, n, n->in[0]);
      changed++;
    }
  }
  if (changed) ir_graph_dce(g);
  return 0;
}
