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
 */
#include "passes/passes.h"

static int rewritable(const IrNode *n) {
  if (n->op != IR_CONV2D || n->dtype != IR_F32) return 0;
  const IrNode *w = n->in[1];
  return (n->attr.groups <= 1) && (n->attr.stride <= 1) && w->shape.d[2] == w->shape.d[3] &&
         !ir_dim_is_sym(w->shape.d[0]) && !ir_dim_is_sym(n->in[0]->shape.d[1]);
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
      if (!(col = ir_node_new(g, IR_IM2COL, 1, &x, &at, c->loc, err))) return -1;
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
