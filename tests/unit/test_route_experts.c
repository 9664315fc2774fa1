/*
 * test_route_experts.c - the route-experts pass: the DSL's dense MoE MLP
 * becomes moe_route / moe_gather / moe_linear / moe_combine, in both forms it
 * meets (alone, and after hoist-adaln merged the router with every expert's
 * fc1), computes the same values (reference executor, random weights), and
 * counts E/k times fewer expert MACs; graphs without the pattern are left as
 * they are.  Also the new ops' shape rules.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "frontend/frontend.h"
#include "passes/passes.h"
#include "runtime/ref.h"
#include "testutil.h"
#include "runtime/weights.h"

#define DEPTH 2
#define EXPERTS 4
#define TOP_K 2
#define HIDDEN 32
#define TOKENS 16 /* (8 / 2)^2 */

static const PassOptions OPTS = {.verify = 1};

/* The tiny DiT of the golden MoE dump: moe_experts 0 means the dense MLP. */
static IrGraph *build(int experts, int frequency, const char *pipeline) {
  char e[16], f[16], d[16];
  snprintf(e, sizeof e, "%d", experts);
  snprintf(f, sizeof f, "%d", frequency);
  snprintf(d, sizeof d, "%d", DEPTH);
  FeSetting sets[] = {{"input_size", "8"}, {"patch_size", "2"},       {"hidden_size", "32"},
                      {"depth", d},        {"num_heads", "2"},        {"num_classes", "10"},
                      {"moe_experts", e},  {"moe_top_k", "2"},        {"moe_frequency", f}};
  FeModel m;
  if (fe_build(DITC_SOURCE_DIR "/models/dit.dit", sets, 9, "forward", stderr, &m)) fail_msg("model does not build");
  IrGraph *g = m.graph;
  m.graph = NULL;
  fe_model_free(&m);
  IrErr err;
  if (pass_run_pipeline(g, pipeline, &OPTS, &err)) fail_msg("%s: %s", pipeline, err.msg);
  return g;
}

static int count_op(IrGraph *g, IrOp op) {
  int n = 0;
  for (int i = 0; i < g->n_nodes; i++) n += g->nodes[i]->op == op;
  return n;
}

static int widest_linear(IrGraph *g) {
  int64_t w = 0;
  for (int i = 0; i < g->n_nodes; i++)
    if (g->nodes[i]->op == IR_LINEAR && g->nodes[i]->in[0]->shape.rank == 3) {
      const IrShape *s = &g->nodes[i]->shape;
      if (s->d[s->rank - 1] > w) w = s->d[s->rank - 1];
    }
  return (int)w;
}

static void test_rewrites_moe(void **state) {
  (void)state;
  /* after hoist-adaln (the default pipeline) and alone */
  const char *pipelines[2] = {"default", "canonicalize,cse,route-experts,dce"};
  for (int p = 0; p < 2; p++) {
    IrGraph *g = build(EXPERTS, 1, pipelines[p]);
    assert_int_equal(count_op(g, IR_MOE_ROUTE), DEPTH);
    assert_int_equal(count_op(g, IR_MOE_GATHER), DEPTH);
    assert_int_equal(count_op(g, IR_MOE_LINEAR), 2 * DEPTH);
    assert_int_equal(count_op(g, IR_MOE_COMBINE), DEPTH);
    assert_int_equal(count_op(g, IR_TOPK_SOFTMAX), DEPTH); /* the gates stay: combine reads them */
    /* no dense expert product is left, and the merged router linear was narrowed
     * back to the router: the widest token linear is the 3 * hidden qkv */
    assert_int_equal(widest_linear(g), 3 * HIDDEN);
    for (int i = 0; i < g->n_nodes; i++)
      if (g->nodes[i]->op == IR_MOE_LINEAR) assert_int_equal(g->nodes[i]->shape.d[0], -(TOKENS * TOP_K));
    ir_graph_free(g);
  }
}

static void test_frequency(void **state) {
  (void)state;
  IrGraph *g = build(EXPERTS, 2, "default"); /* block 0 MoE, block 1 dense */
  assert_int_equal(count_op(g, IR_MOE_ROUTE), 1);
  assert_int_equal(widest_linear(g), 4 * HIDDEN); /* block 1's dense fc1 */
  ir_graph_free(g);
}

static void test_dense_untouched(void **state) {
  (void)state;
  IrGraph *a = build(0, 1, "canonicalize,cse"), *b = build(0, 1, "canonicalize,cse,route-experts");
  char *da = tu_dump_str(a), *db = tu_dump_str(b);
  assert_string_equal(da, db);
  free(da);
  free(db);
  ir_graph_free(a);
  ir_graph_free(b);
}

/* An expert's product also read elsewhere: the dense form must stay. */
static void test_partial_pattern_untouched(void **state) {
  (void)state;
  IrGraph *g = build(EXPERTS, 1, "canonicalize,cse");
  IrNode *mul = NULL;
  for (int i = 0; i < g->n_nodes && !mul; i++) {
    IrNode *n = g->nodes[i];
    if (n->op == IR_MUL && n->in[1]->op == IR_SLICE && n->in[1]->in[0]->op == IR_TOPK_SOFTMAX) mul = n;
  }
  assert_non_null(mul);
  ir_graph_add_output(g, mul, "expert0");
  IrErr err;
  assert_int_equal(pass_run_pipeline(g, "route-experts", &OPTS, &err), 0);
  assert_int_equal(count_op(g, IR_MOE_ROUTE), DEPTH - 1); /* only the other block */
  ir_graph_free(g);
}

static RtTensor run(IrGraph *g) {
  Weights w = {0};
  IrErr err;
  assert_int_equal(weights_random(g, 11, &w, &err), 0);
  RefExec *e = ref_prepare(g, &w, 2, &err);
  if (!e) fail_msg("%s", err.msg);
  RtTensor in[3] = {rt_tensor_new(IR_F32, 4, (int64_t[]){2, 4, 8, 8}), rt_tensor_new(IR_F32, 1, (int64_t[]){2}),
                    rt_tensor_new(IR_I32, 1, (int64_t[]){2})};
  float *x = in[0].data;
  for (int i = 0; i < 2 * 4 * 8 * 8; i++) x[i] = sinf(0.37f * (float)i);
  ((float *)in[1].data)[0] = 17.0f;
  ((float *)in[1].data)[1] = 640.0f;
  ((int32_t *)in[2].data)[0] = 3;
  ((int32_t *)in[2].data)[1] = 10;
  RtTensor out = {0};
  if (ref_run(e, in, &out, &err)) fail_msg("%s", err.msg);
  for (int i = 0; i < 3; i++) rt_tensor_free(&in[i]);
  ref_free(e);
  weights_free(&w);
  return out;
}

static void test_same_values(void **state) {
  (void)state;
  IrGraph *dense = build(EXPERTS, 1, "canonicalize,fold-constants,cse,hoist-adaln,dce");
  IrGraph *routed = build(EXPERTS, 1, "default");
  assert_int_equal(count_op(dense, IR_MOE_ROUTE), 0);
  RtTensor a = run(dense), b = run(routed);
  assert_int_equal(rt_numel(&a), rt_numel(&b));
  double e2 = tu_rel_l2_sq(b.data, a.data, rt_numel(&a));
  assert_true(e2 >= 0 && sqrt(e2) < 1e-5);
  rt_tensor_free(&a);
  rt_tensor_free(&b);
  ir_graph_free(dense);
  ir_graph_free(routed);
}

/* Quantised experts (passes/quantize.c covers route-experts' moe_linear): the routed model quantised
 * computes what the dense model quantised does, where each expert is an ordinary block linear whose
 * quantisation ../shared/reference/README.md pins (w8: per-row weight levels and scales, the same rows
 * stacked; w8a8: also the same token rows quantised, whether gathered or not, and exact int32 sums).
 * Only the float sums' order differs (the dense sum adds the unchosen experts' zero-gated terms). */
static void test_quantized_same_values(void **state) {
  (void)state;
  static const char *const modes[2] = {"w8", "w8a8"};
  for (int m = 0; m < 2; m++) {
    char dp[160], rp[160];
    snprintf(dp, sizeof dp, "canonicalize,fold-constants,cse,hoist-adaln,dce,quantize:mode=%s", modes[m]);
    snprintf(rp, sizeof rp, "canonicalize,fold-constants,cse,hoist-adaln,route-experts,canonicalize,dce,quantize:mode=%s",
             modes[m]);
    IrGraph *dense = build(EXPERTS, 1, dp), *routed = build(EXPERTS, 1, rp);
    int covered = 0, left = 0;
    for (int i = 0; i < routed->n_nodes; i++) {
      const IrNode *n = routed->nodes[i];
      covered += m ? n->op == IR_MOE_QLINEAR : n->op == IR_MOE_LINEAR && n->in[2]->op == IR_DEQUANTIZE;
      left += n->op == IR_MOE_LINEAR && n->in[2]->op != IR_DEQUANTIZE;
      if (n->op == IR_MOE_QLINEAR) { /* the scales: per routed row, per expert and output row */
        assert_int_equal(n->in[2]->op, IR_QSCALE);
        assert_int_equal(n->in[2]->shape.d[1], 1);
        assert_int_equal(n->in[4]->shape.rank, 3);
        assert_int_equal(n->in[4]->shape.d[0], EXPERTS);
        assert_int_equal(n->in[4]->shape.d[2], 1);
      }
    }
    assert_int_equal(covered, 2 * DEPTH);
    assert_int_equal(left, 0);
    IrGraph *flt = build(EXPERTS, 1, "default");
    RtTensor a = run(dense), b = run(routed), f = run(flt);
    double e2 = tu_rel_l2_sq(b.data, a.data, rt_numel(&a)), q2 = tu_rel_l2_sq(b.data, f.data, rt_numel(&f));
    if (getenv("RE_VERBOSE")) fprintf(stderr, "%s: routed vs dense %g, vs float %g\n", modes[m], sqrt(e2), sqrt(q2));
    assert_true(e2 >= 0 && sqrt(e2) < 1e-7); /* float experts in one of them: about 6e-6 */
    assert_true(sqrt(q2) > 1e-6);            /* and it is quantised: not the float model's values */
    rt_tensor_free(&a);
    rt_tensor_free(&b);
    rt_tensor_free(&f);
    ir_graph_free(dense);
    ir_graph_free(routed);
    ir_graph_free(flt);
  }
}

/* The experts' MACs drop by exactly E/k; nothing else changes. */
static void test_macs(void **state) {
  (void)state;
  IrGraph *dense = build(EXPERTS, 1, "none"), *routed = build(EXPERTS, 1, "default");
  IrCost cd, cr;
  ir_cost(dense, 1, IR_F32, &cd);
  ir_cost(routed, 1, IR_F32, &cr);
  double expert_dense = (double)DEPTH * TOKENS * EXPERTS * 2.0 * HIDDEN * 4 * HIDDEN;
  double expert_routed = expert_dense * TOP_K / EXPERTS;
  assert_true(cd.macs - cr.macs == expert_dense - expert_routed);
  assert_int_equal(cd.params, cr.params);
  /* the stacked expert weights are computed once, not activations */
  assert_true(cr.activation_bytes < cd.activation_bytes);
  ir_graph_free(dense);
  ir_graph_free(routed);
}

static void expect_error(IrGraph *g, IrOp op, int n, IrNode **in, int k, const char *needle) {
  IrErr err = {{0}};
  IrAttrs at = {.k = k};
  assert_null(ir_node_new(g, op, n, in, &at, (IrLoc){0}, &err));
  if (!strstr(err.msg, needle)) fail_msg("expected '%s' in: %s", needle, err.msg);
}

static void test_shapes(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("f");
  IrLoc L = {0};
  IrNode *x = ir_input(g, "x", IR_F32, ir_shape_make(3, (IrDim[]){IR_BATCH, 16, 32}), L);
  IrNode *logits = ir_input(g, "l", IR_F32, ir_shape_make(3, (IrDim[]){IR_BATCH, 16, 4}), L);
  IrAttrs k2 = {.k = 2};
  IrNode *r = ir_node_new(g, IR_MOE_ROUTE, 1, &logits, &k2, L, NULL);
  assert_non_null(r);
  assert_int_equal(r->dtype, IR_I32);
  assert_int_equal(r->shape.d[0], -(4 + 1 + 3 * 16 * 2)); /* padded: (E+1 + 3*16k) B */
  expect_error(g, IR_MOE_ROUTE, 1, &logits, 5, "k = 5");
  IrNode *xg = ir_node_new(g, IR_MOE_GATHER, 2, (IrNode *[]){x, r}, &k2, L, NULL);
  assert_non_null(xg);
  assert_int_equal(xg->shape.d[0], -32);
  expect_error(g, IR_MOE_GATHER, 2, (IrNode *[]){x, r}, 3, "does not fit");
  expect_error(g, IR_MOE_GATHER, 2, (IrNode *[]){x, x}, 2, "must be an i32 vector");
  IrNode *w = ir_param(g, "w", IR_F32, ir_shape_make(3, (IrDim[]){4, 8, 32}), L);
  IrNode *w3 = ir_param(g, "w3", IR_F32, ir_shape_make(3, (IrDim[]){3, 8, 32}), L);
  IrNode *b = ir_param(g, "b", IR_F32, ir_shape_make(2, (IrDim[]){4, 8}), L);
  IrNode *h = ir_node_new(g, IR_MOE_LINEAR, 4, (IrNode *[]){xg, r, w, b}, NULL, L, NULL);
  assert_non_null(h);
  assert_int_equal(h->shape.d[1], 8);
  expect_error(g, IR_MOE_LINEAR, 3, (IrNode *[]){xg, r, w3}, 0, "weight must be [4, N, 32]");
  expect_error(g, IR_MOE_LINEAR, 4, (IrNode *[]){xg, r, w, w}, 0, "bias");
  IrNode *out = ir_node_new(g, IR_MOE_COMBINE, 3, (IrNode *[]){h, r, logits}, NULL, L, NULL);
  assert_non_null(out);
  assert_int_equal(out->shape.d[2], 8);
  expect_error(g, IR_MOE_COMBINE, 3, (IrNode *[]){x, r, logits}, 0, "ys must be [rows, D]");
  ir_graph_free(g);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rewrites_moe),   cmocka_unit_test(test_frequency),
      cmocka_unit_test(test_dense_untouched), cmocka_unit_test(test_partial_pattern_untouched),
      cmocka_unit_test(test_same_values),    cmocka_unit_test(test_quantized_same_values),    cmocka_unit_test(test_macs),
      cmocka_unit_test(test_shapes),
  };
  return tu_run_group(tests, NULL, NULL);
}
