/*
 * conv_gemm.c - stride-1 convolutions as matrix products, so that they run as
 * GEMM steps (cuBLASLt on a GPU) instead of the direct conv2d kernel.
 *
 *   y = conv2d(x, w[O, C, k, k], b)        (groups 1, stride 1, padding p)
 *     ->  col = im2col(x)                  [N, C*k*k, OH*OW]  (k = 1, p = 0: reshape(x, [N, C, H*W]))
 *         y   = reshape(matmul(reshape(w, [O, C*k*k]), col), [N, O, OH, OW])
 *               (+ reshape(b, [O, 1, 1]))
 *
 * The matmul broadcasts the weight over the images: one batched GEMM
 * [O, C*k*k] x [C*k*k, OH*OW] writing NCHW directly.  The bias is an
 * elementwise add, which the fuse pass merges with what follows (a residual
 * add, a group norm's affine).  im2col's column order (c, i, j) is the
 * weight's own row-major order, so the weight is only reshaped.  Strided
 * convolutions (DiT's patch embedding, kernel = stride) and grouped ones (the
 * study's depthwise 3x3) keep their kernels; so do non-square windows.
 * This is the VAE decoder's (models/vae.dit) 3x3 and 1x1 convolutions.
 *
 * A nearest upsample in front of a k > 1 convolution (upsample_nearest2d(x,
 * s), which the frontend builds as reshape -> concat of s copies -> reshape
 * -> concat of s copies -> reshape; the decoder's Upsample2D) is folded into
 * the im2col's loads: im2col {up = s} reads x itself at (row / s, column /
 * s), so the upsampled tensor (s^2 times x) is never computed nor stored.
 */
#include "passes/passes.h"

static int rewritable(const IrNode *n) {
  if (n->op != IR_CONV2D || n->dtype != IR_F32) return 0;
  const IrNode *w = n->in[1];
  return (n->attr.groups <= 1) && (n->attr.stride <= 1) && w->shape.d[2] == w->shape.d[3] &&
         !ir_dim_is_sym(w->shape.d[0]) && !ir_dim_is_sym(n->in[0]->shape.d[1]);
}

/* n copies of one value joined along axis: its value, else NULL. */
static IrNode *tiled(const IrNode *n, int axis, int copies) {
  if (n->op != IR_CONCAT || n->attr.axis != axis || n->n_in != copies) return NULL;
  for (int i = 1; i < n->n_in; i++)
    if (n->in[i] != n->in[0]) return NULL;
  return n->in[0];
}

static int dims_are(const IrNode *n, int rank, const IrDim *d) {
  if (n->op != IR_RESHAPE || n->shape.rank != rank) return 0;
  for (int i = 0; i < rank; i++)
    if (n->shape.d[i] != d[i]) return 0;
  return 1;
}

/* x = upsample_nearest2d(x0, s) as the frontend builds it (frontend/builtins.c
 * bi_upsample): x0 [n, c, h, w] -> reshape [n, c, h, w, 1] -> s copies along 4
 * -> reshape [n, c, h, 1, w s] -> s copies along 3 -> reshape [n, c, h s, w s].
 * Returns x0 and sets *s, else NULL. */
static IrNode *upsample_source(IrNode *x, int *s) {
  if (x->op != IR_RESHAPE || x->shape.rank != 4) return NULL;
  IrNode *c2 = x->in[0];
  if (c2->op != IR_CONCAT || c2->n_in < 2) return NULL;
  int f = c2->n_in;
  IrNode *r2 = tiled(c2, 3, f), *c1 = r2 ? r2->in[0] : NULL, *r1 = c1 ? tiled(c1, 4, f) : NULL;
  IrNode *x0 = r1 && r1->op == IR_RESHAPE ? r1->in[0] : NULL;
  if (!x0 || x0->shape.rank != 4) return NULL;
  const IrDim *d = x0->shape.d;
  if (ir_dim_is_sym(d[1]) || ir_dim_is_sym(d[2]) || ir_dim_is_sym(d[3])) return NULL;
  if (!dims_are(r1, 5, (IrDim[]){d[0], d[1], d[2], d[3], 1}) ||
      !dims_are(r2, 5, (IrDim[]){d[0], d[1], d[2], 1, d[3] * f}) ||
      !dims_are(x, 4, (IrDim[]){d[0], d[1], d[2] * f, d[3] * f}))
    return NULL;
  *s = f;
  return x0;
}

int pass_conv_gemm(IrGraph *g, const PassOptions *o, IrErr *err) {
  (void)o;
  int n = g->n_nodes;
  for (int i = 0; i < n; i++) {
    IrNode *c = g->nodes[i];
    if (!rewritable(c)) continue;
    IrNode *x = c->in[0], *w = c->in[1];
    IrDim N = x->shape.d[0], C = x->shape.d[1], O = w->shape.d[0];
    int64_t k = w->shape.d[2];
    IrNode *col;
    if (k == 1 && c->attr.pad == 0) {
      col = ir_reshape(g, x, 3, (IrDim[]){N, C, x->shape.d[2] * x->shape.d[3]});
    } else {
      IrAttrs at = {.k = (int)k, .pad = c->attr.pad, .stride = 1};
      int up = 1;
      IrNode *src = upsample_source(x, &up);
      if (src) at.up = up;
      if (!(col = ir_node_new(g, IR_IM2COL, 1, src ? &src : &x, &at, c->loc, err))) return -1;
    }
    IrNode *wm = ir_reshape(g, w, 2, (IrDim[]){O, C * k * k});
    IrNode *y = ir_reshape(g, ir_matmul(g, wm, col, 0), 4, c->shape.d);
    if (c->n_in == 3) y = ir_bin(g, IR_ADD, y, ir_reshape(g, c->in[2], 3, (IrDim[]){O, 1, 1}));
    for (int j = n; j < g->n_nodes; j++) {
      g->nodes[j]->loc = c->loc;
      if (!g->nodes[j]->name) g->nodes[j]->name = c->name;
    }
    ir_replace_all_uses(g, c, y);
    n = g->n_nodes;
  }
  if (ir_graph_toposort(g, err)) return -1;
  ir_graph_dce(g);
  return 0;
}
