/*
 * test_hoist.c - the hoist-adaln pass: linears over one activation become one
 * product over stacked weights, and the graph computes the same values (the
 * reference executor before and after, random weights).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "passes/passes.h"
#include "runtime/ref.h"
#include "testutil.h"
#include "runtime/weights.h"

static IrLoc L = {0};
static const PassOptions OPTS = {.verify = 1};

static IrNode *param(IrGraph *g, const char *name, int rank, const IrDim *d) {
  return ir_param(g, name, IR_F32, ir_shape_make(rank, d), L);
}

/* c [B, 16] -> silu -> three modulation linears (6x, 6x, 2x widths) and one
 * linear over another activation, which must stay alone. */
static IrGraph *build(void) {
  IrGraph *g = ir_graph_new("forward");
  IrNode *c = ir_input(g, "c", IR_F32, ir_shape_make(2, (IrDim[]){IR_BATCH, 16}), L);
  IrNode *s = ir_un(g, IR_SILU, c);
  const char *names[3] = {"blocks.0.ada", "blocks.1.ada", "final.ada"};
  int widths[3] = {96, 96, 32};
  IrNode *sum = NULL;
  for (int i = 0; i < 3; i++) {
    char w[64], b[64];
    snprintf(w, sizeof w, "%s.weight", names[i]);
    snprintf(b, sizeof b, "%s.bias", names[i]);
    IrNode *y = ir_linear(g, s, param(g, w, 2, (IrDim[]){widths[i], 16}), param(g, b, 1, (IrDim[]){widths[i]}));
    IrNode *first = ir_slice(g, y, 1, 0, 32);
    sum = sum ? ir_bin(g, IR_ADD, sum, first) : first;
  }
  IrNode *other = ir_linear(g, c, param(g, "other.weight", 2, (IrDim[]){32, 16}), NULL);
  ir_graph_add_output(g, ir_bin(g, IR_MUL, sum, other), "out");
  return g;
}

static RtTensor run(IrGraph *g, const float *c_data) {
  Weights w = {0};
  IrErr err;
  assert_int_equal(weights_random(g, 7, &w, &err), 0);
  RefExec *e = ref_prepare(g, &w, 3, &err);
  assert_non_null(e);
  RtTensor in = rt_tensor_new(IR_F32, 2, (int64_t[]){3, 16}), out = {0};
  memcpy(in.data, c_data, 3 * 16 * sizeof(float));
  assert_int_equal(ref_run(e, &in, &out, &err), 0);
  rt_tensor_free(&in);
  ref_free(e);
  weights_free(&w);
  return out;
}

static int count_op(IrGraph *g, IrOp op) {
  int n = 0;
  for (int i = 0; i < g->n_nodes; i++) n += g->nodes[i]->op == op;
  return n;
}

static void test_merges_and_keeps_values(void **state) {
  (void)state;
  float c[48];
  for (int i = 0; i < 48; i++) c[i] = (float)((i * 37) % 19) / 9.0f - 1.0f;
  IrGraph *before = build(), *after = build();
  IrErr err;
  assert_int_equal(pass_run_pipeline(after, "hoist-adaln", &OPTS, &err), 0);
  assert_int_equal(count_op(before, IR_LINEAR), 4);
  assert_int_equal(count_op(after, IR_LINEAR), 2); /* one merged, the other alone */
  assert_int_equal(count_op(after, IR_CONCAT), 2);  /* weights and biases stacked */
  IrNode *merged = NULL;
  for (int i = 0; i < after->n_nodes; i++)
    if (after->nodes[i]->op == IR_LINEAR && after->nodes[i]->in[0]->op == IR_SILU) merged = after->nodes[i];
  assert_non_null(merged);
  assert_int_equal(merged->shape.d[1], 96 + 96 + 32);

  RtTensor a = run(before, c), b = run(after, c);
  assert_int_equal(rt_numel(&a), rt_numel(&b));
  double e2 = tu_rel_l2_sq(b.data, a.data, rt_numel(&a));
  assert_true(e2 >= 0 && e2 < 1e-12); /* same products, same order per element */
  rt_tensor_free(&a);
  rt_tensor_free(&b);
  ir_graph_free(before);
  ir_graph_free(after);
}

static void test_single_linear_untouched(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("f");
  IrNode *x = ir_input(g, "x", IR_F32, ir_shape_make(2, (IrDim[]){IR_BATCH, 8}), L);
  IrNode *y = ir_linear(g, x, param(g, "w", 2, (IrDim[]){4, 8}), NULL);
  ir_graph_add_output(g, y, "out");
  IrErr err;
  int before = g->n_nodes;
  assert_int_equal(pass_run_pipeline(g, "hoist-adaln", &OPTS, &err), 0);
  assert_int_equal(g->n_nodes, before);
  ir_graph_free(g);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_merges_and_keeps_values),
      cmocka_unit_test(test_single_linear_untouched),
  };
  return tu_run_group(tests, NULL, NULL);
}
