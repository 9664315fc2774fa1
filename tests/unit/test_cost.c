/*
 * test_cost.c - the cost model against hand-computed MACs, parameter counts
 * and activation bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "ir/ir.h"
#include "testutil.h"

static const IrLoc NOLOC = {0};

static IrNode *conv(IrGraph *g, IrNode *x, IrNode *w, IrNode *b, int stride, int pad, int groups) {
  IrErr e;
  IrAttrs a = {.stride = stride, .pad = pad, .groups = groups};
  IrNode *in[3] = {x, w, b};
  IrNode *n = ir_node_new(g, IR_CONV2D, b ? 3 : 2, in, &a, NOLOC, &e);
  if (!n) fail_msg("%s", e.msg);
  return n;
}

/* x [B, 256, 384] -> linear(1152) with bias: B*256 rows of 384x1152. */
static void test_linear(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("f");
  IrNode *x = ir_input(g, "x", IR_F32, ir_shape_make(3, (IrDim[]){IR_BATCH, 256, 384}), NOLOC);
  IrNode *w = ir_param(g, "qkv.weight", IR_F32, ir_shape_make(2, (IrDim[]){1152, 384}), NOLOC);
  IrNode *b = ir_param(g, "qkv.bias", IR_F32, ir_shape_make(1, (IrDim[]){1152}), NOLOC);
  IrNode *y = ir_linear(g, x, w, b);
  IrNode *s = ir_un(g, IR_SILU, y);
  ir_graph_add_output(g, s, "out");

  assert_true(ir_node_macs(y, 1) == 256.0 * 384 * 1152);
  assert_true(ir_node_macs(y, 3) == 3.0 * 256 * 384 * 1152);
  assert_true(ir_node_macs(s, 3) == 0.0);
  assert_true(ir_node_macs(x, 3) == 0.0);

  IrCost c;
  ir_cost(g, 2, IR_F16, &c);
  assert_int_equal(c.params, 1152 * 384 + 1152);
  assert_int_equal(c.weight_bytes, (1152 * 384 + 1152) * 2);
  assert_true(c.macs == 2.0 * 256 * 384 * 1152);
  /* linear and silu outputs, f32, at batch 2; leaves do not count. */
  assert_true(c.activation_bytes == 2.0 * (2.0 * 256 * 1152 * 4));
  assert_int_equal(c.nodes, 5);
  ir_graph_free(g);
}

/* Attention scores: q [B, 6, 64, 32] x k^T, k [B, 6, 64, 32] -> [B, 6, 64, 64];
 * then a broadcast matmul with a shared [32, 16] matrix. */
static void test_matmul_broadcast(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("f");
  IrShape qs = ir_shape_make(4, (IrDim[]){IR_BATCH, 6, 64, 32});
  IrNode *q = ir_input(g, "q", IR_F32, qs, NOLOC);
  IrNode *k = ir_input(g, "k", IR_F32, qs, NOLOC);
  IrNode *att = ir_matmul(g, q, k, 1);
  IrNode *m = ir_param(g, "m", IR_F32, ir_shape_make(2, (IrDim[]){32, 16}), NOLOC);
  IrNode *qm = ir_matmul(g, q, m, 0);
  IrNode *m1 = ir_param(g, "m1", IR_F32, ir_shape_make(4, (IrDim[]){1, 6, 16, 8}), NOLOC);
  IrNode *qmm = ir_matmul(g, qm, m1, 0);
  ir_graph_add_output(g, att, "att");
  ir_graph_add_output(g, qmm, "qmm");

  assert_true(ir_node_macs(att, 2) == 2.0 * 6 * 64 * 64 * 32);
  assert_true(ir_node_macs(qm, 2) == 2.0 * 6 * 64 * 16 * 32);
  assert_true(ir_node_macs(qmm, 2) == 2.0 * 6 * 64 * 8 * 16);
  IrCost c;
  ir_cost(g, 2, IR_F32, &c);
  assert_int_equal(c.params, 32 * 16 + 6 * 16 * 8);
  assert_int_equal(c.weight_bytes, (32 * 16 + 6 * 16 * 8) * 4);
  assert_true(c.macs == 2.0 * 6 * 64 * (64 * 32 + 16 * 32 + 8 * 16));
  assert_true(c.activation_bytes == 4.0 * 2 * 6 * 64 * (64 + 16 + 8));
  ir_graph_free(g);
}

/* DiT patch embedding (p = 2): [B, 4, 32, 32] -> [B, 384, 16, 16], and a
 * depthwise 3x3 with padding 1 over 64 channels. */
static void test_conv2d(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("f");
  IrNode *x = ir_input(g, "x", IR_F32, ir_shape_make(4, (IrDim[]){IR_BATCH, 4, 32, 32}), NOLOC);
  IrNode *w = ir_param(g, "x_embedder.proj.weight", IR_F32, ir_shape_make(4, (IrDim[]){384, 4, 2, 2}), NOLOC);
  IrNode *b = ir_param(g, "x_embedder.proj.bias", IR_F32, ir_shape_make(1, (IrDim[]){384}), NOLOC);
  IrNode *pe = conv(g, x, w, b, 2, 0, 1);
  assert_int_equal(pe->shape.d[2], 16);
  assert_true(ir_node_macs(pe, 1) == 384.0 * 16 * 16 * 4 * 2 * 2);
  assert_true(ir_node_macs(pe, 4) == 4.0 * 384 * 16 * 16 * 4 * 2 * 2);

  IrNode *h = ir_input(g, "h", IR_F32, ir_shape_make(4, (IrDim[]){IR_BATCH, 64, 8, 8}), NOLOC);
  IrNode *dw = ir_param(g, "dw.weight", IR_F32, ir_shape_make(4, (IrDim[]){64, 1, 3, 3}), NOLOC);
  IrNode *d = conv(g, h, dw, NULL, 1, 1, 64);
  assert_int_equal(d->shape.d[3], 8);
  assert_true(ir_node_macs(d, 2) == 2.0 * 64 * 8 * 8 * 1 * 3 * 3);
  ir_graph_add_output(g, pe, "out");
  ir_graph_add_output(g, d, "out1");

  IrCost c;
  ir_cost(g, 2, IR_BF16, &c);
  assert_int_equal(c.params, 384 * 4 * 4 + 384 + 64 * 9);
  assert_int_equal(c.weight_bytes, (384 * 4 * 4 + 384 + 64 * 9) * 2);
  assert_true(c.macs == 2.0 * (384 * 256 * 16 + 64 * 64 * 9));
  assert_true(c.activation_bytes == 2.0 * 4 * (384 * 256 + 64 * 64));
  assert_int_equal(c.nodes, 7);
  ir_graph_free(g);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_linear),
      cmocka_unit_test(test_matmul_broadcast),
      cmocka_unit_test(test_conv2d),
  };
  return tu_run_group(tests, NULL, NULL);
}
