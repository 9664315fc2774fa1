/*
 * quantize.c - int8 quantisation of the linear layers, as
 * ../shared/reference/README.md "Approximating passes" defines it.
 *
 * Options: mode (none | w8 | w8a8 | fp8) and scope (blocks | all).  Every
 * linear the scope covers, y = linear(x, W, b), is rewritten with its weight
 * quantised per output row (symmetric, s_w = max|W_row| / 127, a zero row
 * s_w = 1, q = clamp(rint(W / s_w), -127, 127)):
 *
 *   w8     y = linear(x, dequantize(q, s_w), b)
 *   w8a8   s_x = qscale(x) per row (token), x_q = quantize(x, s_x),
 *          y = qlinear(x_q, s_x, q, s_w, b)   (int32 sum, scaled once)
 *
 * s_w and q depend on the weights only, so every backend computes them once
 * (the code generator into the weights blob, which then holds q as i8 and
 * s_w, not W); dequantize and the activation quantisation run per forward.
 *
 * Scope blocks: linears whose weights are all the blocks' own ("blocks.*"
 * parameters, the adaLN modulation excepted), the study's wq/wkv included
 * after hoist-adaln merged them; all: every linear with a weight-only
 * weight (adaLN modulation, the embedders' MLP, the final layer too).
 * fp8 is not implemented yet: it needs calibrated activation scales.
 */
#include <stdlib.h>
#include <string.h>

#include "passes/passes.h"

/* Are all the parameters weight w is made of the blocks' attention/MLP ones? */
static int in_blocks(const IrNode *w) {
  if (w->op == IR_PARAM) return w->name && !strncmp(w->name, "blocks.", 7) && !strstr(w->name, "adaLN");
  if (w->op != IR_CONCAT && w->op != IR_RESHAPE && w->op != IR_SLICE && w->op != IR_PERMUTE) return 0;
  for (int i = 0; i < w->n_in; i++)
    if (!in_blocks(w->in[i])) return 0;
  return w->n_in > 0;
}

static IrNode *node(IrGraph *g, IrOp op, int n_in, IrNode *const *in, const IrAttrs *at, const IrNode *like,
                    IrErr *err) {
  IrNode *n = ir_node_new(g, op, n_in, in, at, like->loc, err);
  if (n) n->name = like->name;
  return n;
}

/* Per-row scales of x (over its last axis) and x quantised with them. */
static IrNode *quantize_rows(IrGraph *g, IrNode *x, const IrNode *like, IrNode **scales, IrErr *err) {
  IrAttrs at = {.axis = x->shape.rank - 1, .f = 127.0f};
  IrNode *s = node(g, IR_QSCALE, 1, &x, &at, like, err);
  if (!s) return NULL;
  *scales = s;
  return node(g, IR_QUANTIZE, 2, (IrNode *[]){x, s}, &(IrAttrs){0}, like, err);
}

int pass_quantize(IrGraph *g, const PassOptions *o, IrErr *err) {
  const char *mode = pass_opt_choice(o, "mode");
  int all = !strcmp(pass_opt_choice(o, "scope"), "all");
  if (!strcmp(mode, "none")) return 0;
  if (!strcmp(mode, "fp8"))
    return ir_errf(err, "mode fp8 is not implemented yet (it needs calibrated activation scales); "
                        "use w8 or w8a8");
  int w8a8 = !strcmp(mode, "w8a8"), n = g->n_nodes, rc = -1;
  unsigned char *wo = ir_weight_only(g);
  IrNode **lin = xmalloc((size_t)(n ? n : 1) * sizeof *lin);
  int k = 0;
  for (int i = 0; i < n; i++) {
    IrNode *l = g->nodes[i], *w = l->n_in > 1 ? l->in[1] : NULL;
    if (l->op != IR_LINEAR || l->dtype != IR_F32 || w->dtype != IR_F32 || !wo[w->index]) continue;
    if (l->n_in > 2 && l->in[2]->dtype != IR_F32) continue;
    if (all || in_blocks(w)) lin[k++] = l;
  }
  for (int i = 0; i < k; i++) {
    IrNode *l = lin[i], *x = l->in[0], *w = l->in[1], *b = l->n_in > 2 ? l->in[2] : NULL, *sw, *sx, *y;
    IrNode *q = quantize_rows(g, w, l, &sw, err);
    if (!q) goto out;
    if (w8a8) {
      IrNode *xq = quantize_rows(g, x, l, &sx, err);
      if (!xq) goto out;
      IrNode *in[5] = {xq, sx, q, sw, b};
      y = node(g, IR_QLINEAR, b ? 5 : 4, in, &(IrAttrs){0}, l, err);
    } else {
      IrNode *wd = node(g, IR_DEQUANTIZE, 2, (IrNode *[]){q, sw}, &(IrAttrs){0}, l, err);
      if (!wd) goto out;
      IrNode *in[3] = {x, wd, b};
      y = node(g, IR_LINEAR, b ? 3 : 2, in, &(IrAttrs){0}, l, err);
    }
    if (!y) goto out;
    ir_replace_all_uses(g, l, y);
  }
  rc = ir_graph_toposort(g, err); /* the new nodes were appended; dce walks in order */
  if (!rc) ir_graph_dce(g);
out:
  free(lin);
  free(wo);
  return rc;
}
