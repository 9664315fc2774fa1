/*
 * test_verify.c - ir_verify() accepts well-formed graphs and rejects each kind
 * of corruption with a message that names the offending node.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "ir/ir.h"
#include "testutil.h"

static const IrLoc NOLOC = {0};

/* A small attention-like graph:
 *   %0 x [B, 64, 96]   %1 w [192, 96]   %2 b [192]
 *   %3 linear -> [B, 64, 192] "blocks.0.attn.qkv"
 *   %4 layernorm   %5 reshape [B, 64, 2, 96]   %6 permute [0,2,1,3]
 */
typedef struct {
  IrGraph *g;
  IrNode *x, *w, *b, *lin, *ln, *r, *p;
} Fixture;

static int setup(void **state) {
  static Fixture f;
  IrDim xs[3] = {IR_BATCH, 64, 96}, ws[2] = {192, 96}, bs[1] = {192};
  f.g = ir_graph_new("forward");
  f.x = ir_input(f.g, "x", IR_F32, ir_shape_make(3, xs), NOLOC);
  f.w = ir_param(f.g, "blocks.0.attn.qkv.weight", IR_F32, ir_shape_make(2, ws), NOLOC);
  f.b = ir_param(f.g, "blocks.0.attn.qkv.bias", IR_F32, ir_shape_make(1, bs), NOLOC);
  f.lin = ir_linear(f.g, f.x, f.w, f.b);
  f.lin->name = "blocks.0.attn.qkv";
  f.ln = ir_op1f(f.g, IR_LAYERNORM, f.lin, 1e-6f);
  f.r = ir_reshape(f.g, f.ln, 4, (IrDim[]){IR_BATCH, 64, 2, 96});
  f.p = ir_permute(f.g, f.r, (int[]){0, 2, 1, 3});
  ir_graph_add_output(f.g, f.p, "out");
  *state = &f;
  return 0;
}

static int teardown(void **state) {
  Fixture *f = *state;
  ir_graph_free(f->g);
  return 0;
}

/* ir_verify fails and its message contains `want`. */
static void expect_error(IrGraph *g, const char *want) {
  IrErr e = {{0}};
  assert_int_equal(ir_verify(g, &e), -1);
  if (!strstr(e.msg, want)) fail_msg("message \"%s\" lacks \"%s\"", e.msg, want);
}

static void test_valid(void **state) {
  Fixture *f = *state;
  IrErr e = {{0}};
  if (ir_verify(f->g, &e)) fail_msg("%s", e.msg);
  /* Consts and unused inputs are fine too. */
  float v[2] = {1, 2};
  ir_const(f->g, IR_F32, ir_shape_make(1, (IrDim[]){2}), v, NOLOC);
  ir_input(f->g, "t", IR_F32, ir_shape_make(1, (IrDim[]){IR_BATCH}), NOLOC);
  if (ir_verify(f->g, &e)) fail_msg("%s", e.msg);
}

static void test_wrong_stored_shape(void **state) {
  Fixture *f = *state;
  f->lin->shape.d[2] = 96;
  expect_error(f->g, "%3 (linear, blocks.0.attn.qkv): stored shape [B, 64, 96] but inputs give [B, 64, 192]");
}

static void test_wrong_stored_dtype(void **state) {
  Fixture *f = *state;
  f->ln->dtype = IR_F16;
  expect_error(f->g, "%4 (layernorm): stored dtype f16 but inputs give f32");
}

static void test_inference_error(void **state) {
  Fixture *f = *state;
  f->p->attr.perm[1] = 1; /* [0,1,1,3] is no permutation */
  expect_error(f->g, "%6 (permute): permute: perm is not a permutation");
}

static void test_out_of_order(void **state) {
  Fixture *f = *state;
  /* Swap linear and layernorm: layernorm now comes before its input. */
  f->g->nodes[3] = f->ln;
  f->g->nodes[4] = f->lin;
  f->ln->index = 3;
  f->lin->index = 4;
  expect_error(f->g, "%3 (layernorm): input 0 is %4, which does not come before it");
}

static void test_cycle(void **state) {
  Fixture *f = *state;
  f->lin->in[0] = f->p; /* linear <- ... <- permute <- ... <- linear */
  expect_error(f->g, "%3 (linear, blocks.0.attn.qkv): input 0 is %6");
}

static void test_input_not_in_graph(void **state) {
  Fixture *f = *state;
  IrGraph *other = ir_graph_new("other");
  IrNode *y = ir_input(other, "y", IR_F32, f->ln->shape, NOLOC);
  f->r->in[0] = y;
  expect_error(f->g, "%5 (reshape): input 0 is not a node of the graph");
  ir_graph_free(other);
}

static void test_bad_arity(void **state) {
  Fixture *f = *state;
  f->lin->n_in = 1;
  expect_error(f->g, "%3 (linear, blocks.0.attn.qkv): linear: takes x, w and an optional bias, got 1 inputs");
}

static void test_bad_arity_fixed(void **state) {
  Fixture *f = *state;
  f->ln->n_in = 0;
  expect_error(f->g, "%4 (layernorm): has 0 inputs, the op takes 1");
}

static void test_duplicate_input_name(void **state) {
  Fixture *f = *state;
  ir_input(f->g, "x", IR_F32, ir_shape_make(1, (IrDim[]){IR_BATCH}), NOLOC);
  expect_error(f->g, "%7 (input, x): input name \"x\" is already used by %0");
}

static void test_missing_output(void **state) {
  Fixture *f = *state;
  f->g->n_outputs = 0;
  expect_error(f->g, "no outputs");
}

static void test_output_not_in_graph(void **state) {
  Fixture *f = *state;
  IrGraph *other = ir_graph_new("other");
  f->g->outputs[0] = ir_input(other, "y", IR_F32, f->ln->shape, NOLOC);
  expect_error(f->g, "output 0 \"out\" is not a node of the graph");
  ir_graph_free(other);
}

static void test_bad_ids_and_index(void **state) {
  Fixture *f = *state;
  f->r->id = f->ln->id;
  expect_error(f->g, "%5 (reshape): id 4 is used twice");
  f->r->id = f->g->next_id;
  expect_error(f->g, "%5 (reshape): id 7 outside [0, 7)");
  f->r->id = 5;
  f->r->index = 2;
  expect_error(f->g, "%5 (reshape): index field is 2, position is 5");
}

static void test_leaf_rules(void **state) {
  Fixture *f = *state;
  f->w->shape.d[0] = IR_BATCH;
  expect_error(f->g, "%1 (param, blocks.0.attn.qkv.weight): param shape [B, 96] depends on the batch");
  f->w->shape.d[0] = 192;
  f->x->name = NULL;
  expect_error(f->g, "%0 (input): input without a name");
  f->x->name = "x";
  float v = 1;
  IrNode *c = ir_const(f->g, IR_F32, ir_shape_make(1, (IrDim[]){1}), &v, NOLOC);
  c->data = NULL;
  expect_error(f->g, "%7 (const): const without data");
}

int main(void) {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_valid),          T(test_wrong_stored_shape),  T(test_wrong_stored_dtype),
      T(test_inference_error), T(test_out_of_order),       T(test_cycle),
      T(test_input_not_in_graph), T(test_bad_arity),       T(test_bad_arity_fixed),
      T(test_duplicate_input_name), T(test_missing_output), T(test_output_not_in_graph),
      T(test_bad_ids_and_index), T(test_leaf_rules),
  };
  return tu_run_group(tests, NULL, NULL);
}
