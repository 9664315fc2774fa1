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
 *
 *   fp8    per-tensor scales and OCP e4m3 levels (ir/scalar.h): s_w =
 *          qscale(W, axis 0, qmax 448) = max|W| / 448, w_q = quantize_e4m3(W,
 *          s_w) (both computed into the weights blob); s_x = max|x| / 448, a
 *          constant: max|x| is the calibration statistic
 *          linear.<weight parameter>.absmax (the largest over the weight's
 *          parameters when hoist-adaln merged several), or the option scales
 *          gives s_x itself (what the pass decided, recorded for packs);
 *          x_q = quantize_e4m3(x, s_x), y = qlinear_e4m3(x_q, s_x, w_q, s_w, b)
 *          (products and their sum in f32, k order, scaled once).
 *
 * The experts of a routed MoE (route-experts' ys = moe_linear(xs, table,
 * W[E, N, K], b[E, N])) are block linears too, covered by both scopes when
 * their weights are the blocks' own:
 *   w8     s_w = qscale(W, axis 2) [E, N, 1] (per output row of each expert),
 *          y = moe_linear(xs, table, dequantize(q, s_w), b)
 *   w8a8   s_x = qscale(xs) per routed row [T*k, 1], x_q = quantize(xs, s_x),
 *          y = moe_qlinear(x_q, table, s_x, q, s_w, b)
 *   fp8    s_w = qscale(W, axis 1, qmax 448) [E, 1, 1]: one scale per
 *          expert's weight tensor (each expert is its own linear in the dense
 *          model); s_x one per moe_linear, from the calibration statistic
 *          linear.<expert weight>.absmax (the observer records max|xs| for
 *          every parameter the stacked weight is made of), w_q, x_q as above,
 *          y = moe_qlinear_e4m3(x_q, table, s_x, w_q, s_w, b).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/scalar.h"
#include "passes/calib.h"
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

/* The largest calibration max|x| over the parameters weight w is made of;
 * 0 with *found 0 when none has a statistic (name: the first's statistic). */
static void calib_absmax(const PassCalib *c, const IrNode *w, double *amax, int *found, const char **first) {
  if (w->op == IR_PARAM && w->name) {
    double v;
    IrErr e;
    if (!*first) *first = w->name;
    if (!pass_calib_absmax(c, w->name, &v, &e) && (!*found || v > *amax || v != v)) *amax = v, *found = 1;
    return;
  }
  for (int i = 0; i < w->n_in; i++) calib_absmax(c, w->in[i], amax, found, first);
}

/* The activation scale of covered linear i (l, weight w): from the option
 * scales when given (its i-th word), else from calibration data. */
static int act_scale(const PassOptions *o, const char **words, int i, const IrNode *w, float *s, IrErr *err) {
  if (**words) {
    char *end;
    unsigned long bits = strtoul(*words, &end, 16);
    if (end == *words || end - *words > 8 || (*end && *end != '.'))
      return ir_errf(err, "scales '%.60s': word %d is not the hex bits of an f32", pass_opt_text(o, "scales"), i);
    uint32_t u = (uint32_t)bits;
    memcpy(s, &u, 4);
    if (!(*s > 0.0f) || *s == INFINITY)
      return ir_errf(err, "scales: word %d is not a positive finite scale", i);
    *words = *end ? end + 1 : end;
    return 0;
  }
  if (!o->calib) return ir_errf(err, "--quantize fp8 needs calibration data (--calibrate N)");
  double amax = 0.0;
  int found = 0;
  const char *first = NULL;
  calib_absmax(o->calib, w, &amax, &found, &first);
  if (!found) {
    double v;
    return pass_calib_absmax(o->calib, first ? first : "?", &v, err);
  }
  if (!(amax >= 0.0) || amax > 3.0e38)
    return ir_errf(err, "the calibration max|x| of %s is %g, not a finite magnitude", first, amax);
  *s = ditc_qscale((float)amax, 448.0f);
  return 0;
}

/* fp8: the k covered linears lin[] rewritten over e4m3 (see the top). */
static int quantize_fp8(IrGraph *g, const PassOptions *o, IrNode **lin, int k, IrErr *err) {
  const char *words = pass_opt_text(o, "scales"), *given = words;
  char *text = xcalloc((size_t)k * 9 + 1, 1), *p = text;
  int rc = -1;
  for (int i = 0; i < k; i++) {
    IrNode *l = lin[i], *x = l->in[0];
    int moe = l->op == IR_MOE_LINEAR, wi = moe ? 2 : 1;
    IrNode *w = l->in[wi], *b = l->n_in > wi + 1 ? l->in[wi + 1] : NULL;
    float sv;
    if (act_scale(o, &words, i, w, &sv, err)) goto out;
    uint32_t u;
    memcpy(&u, &sv, 4);
    p += sprintf(p, "%s%x", i ? "." : "", (unsigned)u);
    IrShape one = {.rank = x->shape.rank};
    for (int j = 0; j < one.rank; j++) one.d[j] = 1;
    IrNode *sx = ir_const(g, IR_F32, one, &sv, l->loc);
    IrNode *sw = node(g, IR_QSCALE, 1, &w, &(IrAttrs){.axis = moe, .f = 448.0f}, l, err); /* MoE: per expert */
    if (!sw) goto out;
    IrNode *wq = node(g, IR_QUANTIZE_E4M3, 2, (IrNode *[]){w, sw}, &(IrAttrs){0}, l, err);
    IrNode *xq = wq ? node(g, IR_QUANTIZE_E4M3, 2, (IrNode *[]){x, sx}, &(IrAttrs){0}, l, err) : NULL, *y = NULL;
    if (xq && moe)
      y = node(g, IR_MOE_QLINEAR_E4M3, b ? 6 : 5, (IrNode *[]){xq, l->in[1], sx, wq, sw, b}, &(IrAttrs){0}, l, err);
    else if (xq)
      y = node(g, IR_QLINEAR_E4M3, b ? 5 : 4, (IrNode *[]){xq, sx, wq, sw, b}, &(IrAttrs){0}, l, err);
    if (!y) goto out;
    ir_replace_all_uses(g, l, y);
  }
  if (*words) {
    ir_errf(err, "scales '%.60s' has more words than the %d linears the scope covers", given, k);
    goto out;
  }
  if (!*given) pass_opt_decide(o, "scales", text);
  rc = 0;
out:
  free(text);
  return rc;
}

int pass_quantize(IrGraph *g, const PassOptions *o, IrErr *err) {
  const char *mode = pass_opt_choice(o, "mode");
  int all = !strcmp(pass_opt_choice(o, "scope"), "all");
  if (!strcmp(mode, "none")) return 0;
  int w8a8 = !strcmp(mode, "w8a8"), n = g->n_nodes, rc = -1;
  unsigned char *wo = ir_weight_only(g);
  IrNode **lin = xmalloc((size_t)(n ? n : 1) * sizeof *lin);
  int k = 0;
  for (int i = 0; i < n; i++) { /* the linears and MoE experts covered, in graph order */
    IrNode *l = g->nodes[i];
    int wi = l->op == IR_MOE_LINEAR ? 2 : 1;
    if ((l->op != IR_LINEAR && l->op != IR_MOE_LINEAR) || l->dtype != IR_F32) continue;
    IrNode *w = l->in[wi];
    if (w->dtype != IR_F32 || !wo[w->index] || l->in[0]->dtype != IR_F32) continue;
    if (l->n_in > wi + 1 && l->in[wi + 1]->dtype != IR_F32) continue;
    if (all || in_blocks(w)) lin[k++] = l;
  }
  if (!strcmp(mode, "fp8")) {
    if (quantize_fp8(g, o, lin, k, err)) goto out;
    k = 0; /* done */
  } else if (*pass_opt_text(o, "scales")) {
    ir_errf(err, "scales goes with mode=fp8");
    goto out;
  }
  for (int i = 0; i < k; i++) {
    IrNode *l = lin[i], *x = l->in[0], *sw, *sx, *y;
    int moe = l->op == IR_MOE_LINEAR, wi = moe ? 2 : 1;
    IrNode *w = l->in[wi], *b = l->n_in > wi + 1 ? l->in[wi + 1] : NULL;
    IrNode *q = quantize_rows(g, w, l, &sw, err); /* MoE: [E, N, 1], per expert and output row */
    if (!q) goto out;
    if (moe) {
      IrNode *xq = w8a8 ? quantize_rows(g, x, l, &sx, err) : NULL;
      IrNode *wd = w8a8 ? NULL : node(g, IR_DEQUANTIZE, 2, (IrNode *[]){q, sw}, &(IrAttrs){0}, l, err);
      if (!xq && !wd) goto out;
      if (w8a8)
        y = node(g, IR_MOE_QLINEAR, b ? 6 : 5, (IrNode *[]){xq, l->in[1], sx, q, sw, b}, &(IrAttrs){0}, l, err);
      else
        y = node(g, IR_MOE_LINEAR, b ? 4 : 3, (IrNode *[]){x, l->in[1], wd, b}, &(IrAttrs){0}, l, err);
    } else if (w8a8) {
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
