/*
 * test_shape.c - shape and dtype inference (ir/shape.c) and graph surgery
 * (ir/graph.c): every op's rule on a good case, the symbolic batch, and the
 * messages of the mismatches a model author will hit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ir/ir.h"
#include "testutil.h"

static IrLoc L = {0};

static IrNode *in(IrGraph *g, const char *name, int rank, const IrDim *d) {
  return ir_input(g, name, IR_F32, ir_shape_make(rank, d), L);
}

static void assert_shape(const IrNode *n, const char *want) {
  char buf[128];
  assert_non_null(n);
  assert_string_equal(ir_shape_str(&n->shape, buf, sizeof buf), want);
}

/* Build op over inputs; expect failure whose message contains `frag`. */
static void expect_error(IrGraph *g, IrOp op, int n, IrNode **xs, const IrAttrs *a, const char *frag) {
  IrErr err = {{0}};
  IrNode *r = ir_node_new(g, op, n, xs, a, L, &err);
  assert_null(r);
  if (!strstr(err.msg, frag)) fail_msg("message '%s' lacks '%s'", err.msg, frag);
}

static void test_broadcast(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("t");
  IrNode *x = in(g, "x", 3, (IrDim[]){IR_BATCH, 64, 384});
  IrNode *s = in(g, "s", 3, (IrDim[]){IR_BATCH, 1, 384});
  IrNode *v = in(g, "v", 1, (IrDim[]){384});
  IrNode *bad = in(g, "bad", 2, (IrDim[]){64, 383});
  assert_shape(ir_bin(g, IR_MUL, x, s), "[B, 64, 384]");
  assert_shape(ir_bin(g, IR_ADD, v, x), "[B, 64, 384]");
  expect_error(g, IR_ADD, 2, (IrNode *[]){x, bad}, NULL, "do not broadcast");
  IrNode *x2 = in(g, "x2", 2, (IrDim[]){-2, 8});
  IrNode *x1 = in(g, "x1", 2, (IrDim[]){IR_BATCH, 8});
  expect_error(g, IR_SUB, 2, (IrNode *[]){x2, x1}, NULL, "2B vs B");
  ir_graph_free(g);
}

static void test_linear_matmul(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("t");
  IrNode *x = in(g, "x", 3, (IrDim[]){IR_BATCH, 64, 384});
  IrNode *w = ir_param(g, "w", IR_F32, ir_shape_make(2, (IrDim[]){1152, 384}), L);
  IrNode *b = ir_param(g, "b", IR_F32, ir_shape_make(1, (IrDim[]){1152}), L);
  IrNode *wb = ir_param(g, "wb", IR_F32, ir_shape_make(2, (IrDim[]){10, 383}), L);
  assert_shape(ir_linear(g, x, w, b), "[B, 64, 1152]");
  expect_error(g, IR_LINEAR, 2, (IrNode *[]){x, wb}, NULL, "expects 383");
  expect_error(g, IR_LINEAR, 3, (IrNode *[]){x, w, w}, NULL, "bias");

  IrNode *q = in(g, "q", 4, (IrDim[]){IR_BATCH, 6, 256, 64});
  IrNode *k = in(g, "k", 4, (IrDim[]){IR_BATCH, 6, 256, 64});
  IrNode *kv = in(g, "kv", 4, (IrDim[]){IR_BATCH, 1, 64, 64});
  assert_shape(ir_matmul(g, q, k, 1), "[B, 6, 256, 256]");
  assert_shape(ir_matmul(g, q, kv, 0), "[B, 6, 256, 64]");
  IrAttrs nt = {0};
  expect_error(g, IR_MATMUL, 2, (IrNode *[]){q, in(g, "z", 4, (IrDim[]){IR_BATCH, 6, 32, 64})}, &nt,
               "inner dimensions differ");
  ir_graph_free(g);
}

static void test_conv_embedding_pool(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("t");
  IrNode *x = in(g, "x", 4, (IrDim[]){IR_BATCH, 4, 32, 32});
  IrNode *w = ir_param(g, "w", IR_F32, ir_shape_make(4, (IrDim[]){384, 4, 2, 2}), L);
  IrAttrs patch = {.stride = 2};
  IrNode *c = ir_node_new(g, IR_CONV2D, 2, (IrNode *[]){x, w}, &patch, L, NULL);
  assert_shape(c, "[B, 384, 16, 16]");
  IrNode *dw = ir_param(g, "dw", IR_F32, ir_shape_make(4, (IrDim[]){384, 1, 3, 3}), L);
  IrAttrs depth = {.pad = 1, .groups = 384};
  assert_shape(ir_node_new(g, IR_CONV2D, 2, (IrNode *[]){c, dw}, &depth, L, NULL), "[B, 384, 16, 16]");
  IrAttrs bad = {.pad = 1, .groups = 5};
  expect_error(g, IR_CONV2D, 2, (IrNode *[]){c, dw}, &bad, "groups");

  IrNode *table = ir_param(g, "table", IR_F32, ir_shape_make(2, (IrDim[]){1001, 384}), L);
  IrNode *y = ir_input(g, "y", IR_I32, ir_shape_make(1, (IrDim[]){IR_BATCH}), L);
  assert_shape(ir_node_new(g, IR_EMBEDDING, 2, (IrNode *[]){table, y}, NULL, L, NULL), "[B, 384]");
  expect_error(g, IR_EMBEDDING, 2, (IrNode *[]){table, x}, NULL, "indices must be i32");

  IrAttrs pool = {.out_h = 2, .out_w = 2};
  assert_shape(ir_node_new(g, IR_AVGPOOL2D, 1, &c, &pool, L, NULL), "[B, 384, 2, 2]");
  ir_graph_free(g);
}

static void test_layout(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("t");
  IrNode *x = in(g, "x", 3, (IrDim[]){IR_BATCH, 64, 1152});
  IrNode *r = ir_reshape(g, x, 5, (IrDim[]){IR_BATCH, 64, 3, 6, 64});
  assert_shape(r, "[B, 64, 3, 6, 64]");
  assert_shape(ir_permute(g, r, (int[]){2, 0, 3, 1, 4}), "[3, B, 6, 64, 64]");
  assert_shape(ir_reshape(g, x, 2, (IrDim[]){-64, 1152}), "[64B, 1152]");
  IrAttrs bad = {.shape = ir_shape_make(2, (IrDim[]){IR_BATCH, 1000})};
  expect_error(g, IR_RESHAPE, 1, &x, &bad, "element counts differ");
  IrAttrs perm = {.perm = {0, 0, 1}};
  expect_error(g, IR_PERMUTE, 1, &x, &perm, "not a permutation");

  IrNode *x2 = in(g, "x2", 2, (IrDim[]){-2, 8});
  assert_shape(ir_slice(g, x2, 0, 0, IR_BATCH), "[B, 8]");
  assert_shape(ir_slice(g, x2, 0, IR_BATCH, IR_BATCH), "[B, 8]");
  assert_shape(ir_slice(g, x2, 1, 3, 5), "[2B, 5]");
  IrAttrs over = {.axis = 0, .start = IR_BATCH, .len = -2};
  expect_error(g, IR_SLICE, 1, &x2, &over, "not inside axis 0");
  IrAttrs over2 = {.axis = 1, .start = 4, .len = 5};
  expect_error(g, IR_SLICE, 1, &x2, &over2, "not inside axis 1");

  IrNode *h = ir_slice(g, x2, 0, 0, IR_BATCH);
  assert_shape(ir_concat(g, 2, (IrNode *[]){h, h}, 0), "[2B, 8]");
  IrNode *f = in(g, "f", 2, (IrDim[]){3, 8});
  IrAttrs cat = {.axis = 0};
  expect_error(g, IR_CONCAT, 2, (IrNode *[]){h, f}, &cat, "batch-sized and fixed-size");
  ir_graph_free(g);
}

static void test_unary_reduce_cast(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("t");
  IrNode *x = in(g, "x", 4, (IrDim[]){IR_BATCH, 6, 64, 16});
  assert_shape(ir_op1f(g, IR_LAYERNORM, x, 1e-6f), "[B, 6, 64, 16]");
  IrAttrs red = {.axis = 2};
  assert_shape(ir_node_new(g, IR_REDUCE_SUM, 1, &x, &red, L, NULL), "[B, 6, 1, 1]");
  IrAttrs k = {.k = 2};
  IrNode *logits = in(g, "l", 3, (IrDim[]){IR_BATCH, 64, 8});
  assert_shape(ir_node_new(g, IR_TOPK_SOFTMAX, 1, &logits, &k, L, NULL), "[B, 64, 8]");
  IrAttrs k9 = {.k = 9};
  expect_error(g, IR_TOPK_SOFTMAX, 1, &logits, &k9, "k = 9");
  IrAttrs cast = {.to = IR_I32};
  IrNode *c = ir_node_new(g, IR_CAST, 1, &x, &cast, L, NULL);
  assert_int_equal(c->dtype, IR_I32);
  expect_error(g, IR_SILU, 1, &c, NULL, "must be a float tensor");
  expect_error(g, IR_ADD, 1, &x, NULL, "takes 2 inputs, got 1");
  ir_graph_free(g);
}

static void test_surgery(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("t");
  IrNode *x = in(g, "x", 2, (IrDim[]){IR_BATCH, 8});
  IrNode *a = ir_un(g, IR_SILU, x);
  IrNode *dead = ir_un(g, IR_RELU, x);
  IrNode *b = ir_un(g, IR_EXP, a);
  ir_graph_add_output(g, b, "out");
  (void)dead;
  /* Rewire b to a node appended after it, then restore the order. */
  IrNode *late = ir_un(g, IR_TANH, x);
  b->in[0] = late;
  IrErr err;
  assert_int_equal(ir_graph_toposort(g, &err), 0);
  assert_true(late->index < b->index);
  assert_int_equal(ir_graph_dce(g), 2); /* silu and relu are dead */
  assert_int_equal(g->n_nodes, 3);
  int *uses = ir_use_counts(g);
  assert_int_equal(uses[x->index], 1);
  assert_int_equal(uses[b->index], 1);
  free(uses);
  /* A cycle is reported, not looped on. */
  late->in[0] = b;
  assert_int_equal(ir_graph_toposort(g, &err), -1);
  assert_non_null(strstr(err.msg, "cycle"));
  ir_graph_free(g);
}

static void test_dims(void **state) {
  (void)state;
  char buf[32];
  assert_string_equal(ir_dim_str(IR_BATCH, buf, sizeof buf), "B");
  assert_string_equal(ir_dim_str(-3, buf, sizeof buf), "3B");
  assert_string_equal(ir_dim_str(7, buf, sizeof buf), "7");
  assert_int_equal(ir_dim_eval(-3, 5), 15);
  IrShape s = ir_shape_make(3, (IrDim[]){-2, 4, 16});
  assert_int_equal(ir_shape_numel(&s, 3), 6 * 4 * 16);
  IrDType t;
  assert_int_equal(ir_dtype_parse("bf16", &t), 0);
  assert_int_equal(t, IR_BF16);
  assert_int_equal(ir_dtype_parse("f64", &t), -1);
  IrOp op;
  assert_int_equal(ir_op_parse("layernorm", &op), 0);
  assert_int_equal(op, IR_LAYERNORM);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_broadcast), cmocka_unit_test(test_linear_matmul),
      cmocka_unit_test(test_conv_embedding_pool), cmocka_unit_test(test_layout),
      cmocka_unit_test(test_unary_reduce_cast), cmocka_unit_test(test_surgery),
      cmocka_unit_test(test_dims),
  };
  return tu_run_group(tests, NULL, NULL);
}
