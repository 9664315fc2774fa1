/*
 * hoist_adaln.c - merge the linear layers that read the same activation into
 * one wider linear layer.
 *
 * In DiT every block's adaLN modulation is Linear(SiLU(c)): after CSE all of
 * them (and the final layer's) read the one SiLU(c) node, so the depth + 1
 * small products [B, D] x [D, 6D] become one [B, D] x [D, (6 depth + 2) D]
 * product whose weights are the blocks' weights stacked by rows.  The same
 * rewrite merges any group of linears over one input (e.g. the study's wq and
 * wkv).
 *
 *   y_i = linear(s, W_i, b_i)     ->   y = linear(s, concat(W_1..W_n), concat(b_1..b_n))
 *                                      y_i = slice(y, last axis, offset_i, N_i)
 *
 * The stacked weights depend on parameters only: backends compute such
 * weight-only subgraphs once (the reference executor at prepare time, the code
 * generator into the weights blob), so the concatenation costs nothing per run.
 * Groups need the same weight dtype and either all or no biases; a group is
 * merged only when every weight is a PARAM (or itself weight-only).
 */
#include <stdlib.h>

#include "passes/passes.h"

/* x is weight-only (w: ir_weight_only() of the n nodes before the pass;
 * nodes the pass made are not). */
static int weight_only(const IrGraph *g, const unsigned char *w, int n, const IrNode *x) {
  return x->index < n && g->nodes[x->index] == x && w[x->index];
}

static int mergeable(const IrNode *a, const IrNode *b) {
  return b->op == IR_LINEAR && b->in[0] == a->in[0] && b->n_in == a->n_in &&
         b->in[1]->dtype == a->in[1]->dtype && b->dtype == a->dtype;
}

int pass_hoist_adaln(IrGraph *g, const PassOptions *o, IrErr *err) {
  (void)o;
  int n = g->n_nodes;
  for (int i = 0; i < n; i++) g->nodes[i]->index = i;
  unsigned char *wo = ir_weight_only(g);
  unsigned char *done = xcalloc((size_t)(n ? n : 1), 1);
  IrNode **group = xmalloc((size_t)(n ? n : 1) * sizeof *group);
  /* The linears reading each node, in graph order (next[i]: the next linear
   * after node i over the same input, -1 at the end), so a group is found
   * without scanning the graph per linear; and the replacements, made in one
   * sweep at the end: both keep the pass linear in the graph's size (an MoE
   * model has thousands of linears). */
  int *last = xmalloc((size_t)(n ? n : 1) * sizeof *last);
  int *next = xmalloc((size_t)(n ? n : 1) * sizeof *next);
  IrNode **repl = xcalloc((size_t)(n ? n : 1), sizeof *repl);
  for (int i = 0; i < n; i++) last[i] = next[i] = -1;
  for (int i = 0; i < n; i++) {
    IrNode *a = g->nodes[i];
    if (a->op != IR_LINEAR) continue;
    int x = a->in[0]->index;
    if (x < 0 || x >= n || g->nodes[x] != a->in[0]) continue;
    if (last[x] >= 0) next[last[x]] = i;
    last[x] = i;
  }
  for (int i = 0; i < n; i++) {
    IrNode *a = g->nodes[i];
    if (a->op != IR_LINEAR || done[i]) continue;
    int k = 0;
    for (int j = i; j >= 0; j = next[j]) {
      IrNode *b = g->nodes[j];
      if (done[j] || !mergeable(a, b)) continue;
      int ok = weight_only(g, wo, n, b->in[1]) && (b->n_in < 3 || weight_only(g, wo, n, b->in[2]));
      if (!ok) continue;
      group[k++] = b;
      done[j] = 1;
    }
    if (k < 2) continue;

    IrNode **w = xmalloc((size_t)k * sizeof *w), **bias = xmalloc((size_t)k * sizeof *bias);
    for (int j = 0; j < k; j++) {
      w[j] = group[j]->in[1];
      bias[j] = group[j]->n_in > 2 ? group[j]->in[2] : NULL;
    }
    IrNode *wcat = ir_concat(g, k, w, 0);
    IrNode *bcat = bias[0] ? ir_concat(g, k, bias, 0) : NULL;
    IrNode *merged = ir_linear(g, a->in[0], wcat, bcat);
    wcat->loc = merged->loc = a->loc;
    if (bcat) bcat->loc = a->loc;
    free(w);
    free(bias);
    merged->name = "merged linear";
    int axis = merged->shape.rank - 1;
    IrDim at = 0;
    for (int j = 0; j < k; j++) {
      IrDim len = group[j]->shape.d[axis];
      IrNode *s = ir_slice(g, merged, axis, at, len);
      s->loc = group[j]->loc;
      s->name = group[j]->name;
      repl[group[j]->index] = s;
      at += len;
    }
  }
  ir_replace_uses_map(g, repl, n);
  free(wo);
  free(done);
  free(group);
  free(last);
  free(next);
  free(repl);
  if (ir_graph_toposort(g, err)) return -1;
  ir_graph_dce(g);
  return 0;
}
