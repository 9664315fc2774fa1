/*
 * kv_heads.c - multi-head to grouped-query attention without retraining:
 * consecutive groups of H/count heads share one key head and one value head,
 * the mean of the group's k (and v) projection rows and biases; queries are
 * unchanged; head h reads group floor(h / (H/count))
 * (../shared/reference/README.md, "Approximating passes").  The qkv product
 * narrows to inner + 2 count hd outputs, and the attention reads the shared
 * heads through a broadcast ([B, count, H/count, N, hd] queries against
 * [B, count, 1, N, hd] keys and values), so no repeat is materialised: the
 * fused attention kernel reads them in place (stride 0).
 */
#include <stdlib.h>

#include "passes/prune.h"

/* Rows (axis 0) of x [inner(, d)] grouped as [count, G, hd(, d)]: the mean
 * over G, [count hd(, d)], as weight-only nodes. */
static IrNode *group_mean(IrGraph *g, IrNode *x, int count, int groups, int64_t hd) {
  int two = x->shape.rank == 2;
  IrDim d4[4] = {count, groups, hd, two ? x->shape.d[1] : 1};
  static const int perm[4] = {0, 2, 3, 1};
  IrNode *p = ir_permute(g, ir_reshape(g, x, 4, d4), perm); /* [count, hd, d, G] */
  IrErr e;
  IrAttrs at = {.axis = 3};
  IrNode *m = ir_node_new(g, IR_REDUCE_MEAN, 1, &p, &at, x->loc, &e);
  if (!m) ditc_fatal(__FILE__, __LINE__, "kv-heads: %s", e.msg);
  IrDim d2[2] = {(IrDim)count * hd, d4[3]};
  return ir_reshape(g, m, two ? 2 : 1, d2);
}

int pass_kv_heads(IrGraph *g, const PassOptions *o, IrErr *err) {
  int64_t count = pass_opt_int(o, "count");
  if (count == 0) return 0;
  PruneAttn *a;
  int n = prune_find_attention(g, &a);
  char lb[32];
  if (!n) {
    free(a);
    return ir_errf(err, "count=%lld: the model has no softmax attention whose K/V heads could be shared",
                   (long long)count);
  }
  for (int s = 0; s < n; s++)
    if (count > a[s].heads || a[s].heads % count) {
      ir_errf(err, "count=%lld: %s has %d heads, not a multiple of %lld", (long long)count,
              prune_label(a[s].qkv, lb, sizeof lb), a[s].heads, (long long)count);
      free(a);
      return -1;
    }
  for (int s = 0; s < n; s++) {
    const PruneAttn *at = &a[s];
    if (count == at->heads) continue;
    int groups = at->heads / (int)count;
    IrNode *parts[3];
    parts[0] = ir_slice(g, at->w, 0, 0, at->inner);
    for (int j = 1; j < 3; j++)
      parts[j] = group_mean(g, ir_slice(g, at->w, 0, j * at->inner, at->inner), (int)count, groups, at->hd);
    IrNode *w = ir_concat(g, 3, parts, 0), *b = NULL;
    if (at->b) {
      parts[0] = ir_slice(g, at->b, 0, 0, at->inner);
      for (int j = 1; j < 3; j++)
        parts[j] = group_mean(g, ir_slice(g, at->b, 0, j * at->inner, at->inner), (int)count, groups, at->hd);
      b = ir_concat(g, 3, parts, 0);
    }
    prune_rebuild_attention(g, at, w, b, at->heads, (int)count, at->pw);
  }
  free(a);
  return prune_finish(g, err);
}
