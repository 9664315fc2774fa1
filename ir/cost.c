/*
 * cost.c - the cost model: multiply-accumulates, parameters and memory.
 *
 * A MAC is one multiply-accumulate of a contraction; only LINEAR, MOE_LINEAR,
 * MATMUL and CONV2D count, as in the DiT paper's Gflops (fvcore's convention).  Every
 * contraction does numel(output) dot products of length K:
 *   linear  x[..., K] w[N, K]          -> numel(y) * K
 *   moe_linear xs[T*k, K] w[E, N, K]   -> numel(y) * K   (only the routed rows)
 *   matmul  a[..., M, K] b[..., K, N]  -> numel(y) * K   (broadcast batch included)
 *   conv2d  w[O, I/groups, kh, kw]     -> numel(y) * (I/groups) * kh * kw
 * Params are the weights computations read: PARAMs, or the weight-only values
 * built from them (stacked, pruned or averaged by a pass), counted at batch 1;
 * activations are every non-leaf output at the requested batch, except
 * weight-only values (stacked weights), which backends compute once.
 */
#include <stdlib.h>

#include "ir/ir.h"

double ir_node_macs(const IrNode *n, int64_t batch) {
  double out = (double)ir_shape_numel(&n->shape, batch);
  switch (n->op) {
  case IR_LINEAR:
  case IR_MOE_LINEAR: /* routed: T*k rows, not T*E */ {
    const IrShape *x = &n->in[0]->shape;
    return x->rank ? out * (double)ir_dim_eval(x->d[x->rank - 1], batch) : 0.0;
  }
  case IR_QLINEAR:
  case IR_QLINEAR_E4M3:
  case IR_MOE_QLINEAR:
  case IR_MOE_QLINEAR_E4M3: {
    const IrShape *x = &n->in[0]->shape;
    return x->rank ? out * (double)ir_dim_eval(x->d[x->rank - 1], batch) : 0.0;
  }
  case IR_MATMUL: {
    /* K is a's last axis whether or not b is transposed. */
    const IrShape *a = &n->in[0]->shape;
    return a->rank ? out * (double)ir_dim_eval(a->d[a->rank - 1], batch) : 0.0;
  }
  case IR_CONV2D: {
    const IrShape *w = &n->in[1]->shape;
    if (w->rank != 4) return 0.0;
    return out * (double)ir_dim_eval(w->d[1], batch) * (double)ir_dim_eval(w->d[2], batch) *
           (double)ir_dim_eval(w->d[3], batch);
  }
  default:
    return 0.0;
  }
}

void ir_cost(IrGraph *g, int64_t batch, IrDType weight_dtype, IrCost *out) {
  IrCost c = {0};
  /* weight-only values (stacked weights) are computed once by every
   * backend, so they are not activations */
  unsigned char *weight_only = ir_weight_only(g);
  /* the weights the model runs with: weight-only values computed from PARAMs
   * that a computation reads (through reshapes), each once; a PARAM read only
   * to build others (stacked, pruned, averaged weights) is not counted, the
   * value built from it is */
  unsigned char *from_param = xcalloc((size_t)g->n_nodes + 1, 1), *used = xcalloc((size_t)g->n_nodes + 1, 1);
  for (int i = 0; i < g->n_nodes; i++) {
    const IrNode *n = g->nodes[i];
    from_param[i] = n->op == IR_PARAM;
    for (int j = 0; j < n->n_in && weight_only[i]; j++) from_param[i] |= from_param[n->in[j]->index];
    if (weight_only[i]) continue;
    for (int j = 0; j < n->n_in; j++) {
      const IrNode *x = n->in[j];
      while (x->op == IR_RESHAPE && weight_only[x->in[0]->index]) x = x->in[0];
      if (from_param[x->index]) used[x->index] = 1;
    }
  }
  for (int i = 0; i < g->n_outputs; i++)
    if (from_param[g->outputs[i]->index]) used[g->outputs[i]->index] = 1;
  for (int i = 0; i < g->n_nodes; i++)
    if (used[i]) c.params += ir_shape_numel(&g->nodes[i]->shape, 1);
  free(from_param);
  free(used);
  for (int i = 0; i < g->n_nodes; i++) {
    const IrNode *n = g->nodes[i];
    c.nodes++;
    if (ir_op_class(n->op) == IR_CLASS_LEAF) continue;
    c.macs += ir_node_macs(n, batch);
    if (!weight_only[i])
      c.activation_bytes += (double)ir_shape_numel(&n->shape, batch) * (double)ir_dtype_size(n->dtype);
  }
  free(weight_only);
  c.weight_bytes = c.params * (int64_t)ir_dtype_size(weight_dtype);
  *out = c;
}
