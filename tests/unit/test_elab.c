/*
 * test_elab.c - elaboration: graphs built from small models (node counts,
 * shapes, names, labels, locations), parameter scopes and sharing, the
 * symbolic batch, tensor-scalar arithmetic, --set and configurations, error
 * messages with locations, budgets, constants, model lookup, and (when the
 * shared reference data is present) models/dit.dit against the reference
 * checkpoint's names, shapes and pos_embed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <math.h>

#include "frontend/elab.h"
#include "frontend/frontend.h"
#include "testutil.h"

/* ---- helpers ----------------------------------------------------------------- */

typedef struct {
  FeModel m;
  char *diag;
  int errors;
} Built;

static Built build_sets(const char *src, const char *config, const char *entry, const FeSetting *sets,
                        int n_sets) {
  Built b = {0};
  size_t len = 0;
  FILE *d = open_memstream(&b.diag, &len);
  b.errors = fe_build_source("t.dit", src, strlen(src), config, sets, n_sets, entry, d, &b.m);
  fclose(d);
  return b;
}

static Built build(const char *src) { return build_sets(src, NULL, NULL, NULL, 0); }

static void built_free(Built *b) {
  fe_model_free(&b->m);
  free(b->diag);
}

static Built build_ok(const char *src) {
  Built b = build(src);
  if (b.errors) fprintf(stderr, "unexpected errors:\n%s", b.diag);
  assert_int_equal(b.errors, 0);
  assert_non_null(b.m.graph);
  return b;
}

static IrNode *find_param(IrGraph *g, const char *name) {
  for (int i = 0; i < g->n_nodes; i++)
    if (g->nodes[i]->op == IR_PARAM && !strcmp(g->nodes[i]->name, name)) return g->nodes[i];
  return NULL;
}

static int count_op(IrGraph *g, IrOp op) {
  int n = 0;
  for (int i = 0; i < g->n_nodes; i++) n += g->nodes[i]->op == op;
  return n;
}

static void expect_shape(const IrNode *n, const char *want) {
  char buf[128];
  assert_string_equal(ir_shape_str(&n->shape, buf, sizeof buf), want);
}

/* A source with one model whose forward entry has the given inputs and body. */
static char *entry_src(const char *inputs, const char *body) {
  char *s = NULL;
  assert_true(asprintf(&s, "model m(n: int = 4) {\n  entry forward(%s) {\n%s\n  }\n}\n", inputs, body) > 0);
  return s;
}

/* ---- graphs ----------------------------------------------------------------------- */

static const char *tiny =
    "fn dense(x, i: int, o: int) { return linear(x, param weight[o, i], param bias[o]) }\n"
    "model tiny(d: int = 8, depth: int = 2, gain: float = 0.5, act: str = \"relu\", on: bool = true) {\n"
    "  h = d * 2\n"
    "  fn block(x) { return x + relu(dense@fc(x, d, d)) * gain }\n"
    "  entry forward(x: f32[B, 4, d]) {\n"
    "    for i in 0 .. depth { x = block@blocks[i](x) }\n"
    "    return x, dense@head(x, d, h)\n"
    "  }\n"
    "}\n";

static void test_small_model(void **state) {
  (void)state;
  Built b = build_ok(tiny);
  IrGraph *g = b.m.graph;
  IrErr err;
  assert_int_equal(ir_verify(g, &err), 0);
  /* 1 input; per block 2 params + linear + relu + scale + add; head 2 params + linear */
  assert_int_equal(g->n_nodes, 1 + 2 * 6 + 3);
  assert_int_equal(count_op(g, IR_PARAM), 6);
  assert_int_equal(g->n_outputs, 2);
  assert_string_equal(g->output_names[0], "out");
  assert_string_equal(g->output_names[1], "out1");
  expect_shape(g->outputs[0], "[B, 4, 8]");
  expect_shape(g->outputs[1], "[B, 4, 16]");
  expect_shape(find_param(g, "blocks.1.fc.weight"), "[8, 8]");
  expect_shape(find_param(g, "head.weight"), "[16, 8]");
  expect_shape(find_param(g, "head.bias"), "[16]");
  assert_null(find_param(g, "blocks.2.fc.weight"));
  /* labels are the parameter scope, locations the expression */
  IrNode *add = g->outputs[0];
  assert_int_equal(add->op, IR_ADD);
  assert_string_equal(add->name, "blocks.1");
  assert_int_equal(add->loc.line, 4);
  assert_int_equal(add->loc.col, 26);
  assert_string_equal(add->loc.file, "t.dit");
  IrNode *lin = g->outputs[1];
  assert_int_equal(lin->op, IR_LINEAR);
  assert_string_equal(lin->name, "head");
  IrNode *scale = add->in[1];
  assert_int_equal(scale->op, IR_SCALE);
  assert_true(scale->attr.f == 0.5f);
  /* the model's parameters after defaults */
  assert_string_equal(b.m.model, "tiny");
  assert_null(b.m.config);
  assert_int_equal(b.m.n_params, 5);
  assert_int_equal(fe_param_int(&b.m, "d", 0), 8);
  assert_true(fe_param_float(&b.m, "gain", 0) == 0.5);
  assert_int_equal(fe_param(&b.m, "act")->kind, FE_VAL_STR);
  assert_string_equal(fe_param(&b.m, "act")->s, "relu");
  assert_int_equal(fe_param(&b.m, "on")->kind, FE_VAL_BOOL);
  assert_int_equal(fe_param_int(&b.m, "on", 0), 1);
  assert_int_equal(fe_param_int(&b.m, "missing", -7), -7);
  built_free(&b);
}

static void test_param_sharing(void **state) {
  (void)state;
  Built b = build_ok("model m() { entry forward(x: f32[B, 3]) {\n"
                     "  a = param w[3, 3]\n  c = param w[3, 3]\n"
                     "  return linear(x, a) + linear(x, c)\n} }");
  assert_int_equal(count_op(b.m.graph, IR_PARAM), 1);
  IrNode *add = b.m.graph->outputs[0];
  assert_ptr_equal(add->in[0]->in[1], add->in[1]->in[1]);
  built_free(&b);

  b = build("model m() { entry forward(x: f32[B, 3]) {\n"
            "  a = param w[3, 3]\n  c = param w[3, 4]\n  return x\n} }");
  assert_int_equal(b.errors, 1);
  assert_string_equal(b.diag, "t.dit:3:7: error: param 'w' declared again with shape [3, 4] (it was [3, 3] at line 2)\n"
                              "  c = param w[3, 4]\n      ^\n");
  assert_null(b.m.graph);
  built_free(&b);
}

static void test_symbolic_batch(void **state) {
  (void)state;
  char *src = entry_src("x: f32[B, 64, 384], y: f32[2 * B, 8]",
                        "    s = shape(y)\n"
                        "    assert s[0] == 2 * B and s[0] / 2 == B and dim(x, 0) == B and rank(y) == 2\n"
                        "    h, c = chunk(y, 2, 0)\n"
                        "    return reshape(x, [-1, 384]), reshape(x, [s[0] / 2, -1]), slice(y, 0, B, 2 * B), c,\n"
                        "           unsqueeze(h, 0), squeeze(unsqueeze(h, -1), 2), concat([h, c], 0)\n");
  Built b = build_ok(src);
  IrGraph *g = b.m.graph;
  assert_int_equal(g->n_outputs, 7);
  expect_shape(g->outputs[0], "[64B, 384]");
  assert_int_equal(g->outputs[0]->shape.d[0], -64);
  expect_shape(g->outputs[1], "[B, 24576]");
  expect_shape(g->outputs[2], "[B, 8]");
  assert_int_equal(g->outputs[2]->attr.start, -1);
  expect_shape(g->outputs[3], "[B, 8]");
  expect_shape(g->outputs[4], "[1, B, 8]");
  expect_shape(g->outputs[5], "[B, 8]");
  expect_shape(g->outputs[6], "[2B, 8]");
  built_free(&b);
  free(src);

  src = entry_src("x: f32[B, 3]", "    h = B / 2\n    return x");
  b = build(src);
  assert_int_equal(b.errors, 1);
  assert_non_null(strstr(b.diag, "t.dit:3:11: error: B / 2 is not a whole multiple of B\n"));
  built_free(&b);
  free(src);
}

static void test_tensor_scalar(void **state) {
  (void)state;
  char *src = entry_src("x: f32[B, 3]", "    return 2 - x, x / 4, 2 / x, x ** 2, x - 1, 3 * x, -x, x + 0.5");
  Built b = build_ok(src);
  IrGraph *g = b.m.graph;
  struct {
    IrOp op;
    float f;
    IrOp inner; /* op of its input, or IR_INPUT */
  } want[] = {{IR_ADD_SCALAR, 2, IR_NEG}, {IR_SCALE, 0.25f, IR_INPUT},   {IR_SCALE, 2, IR_RECIP},
              {IR_POW_SCALAR, 2, IR_INPUT}, {IR_ADD_SCALAR, -1, IR_INPUT}, {IR_SCALE, 3, IR_INPUT},
              {IR_NEG, 0, IR_INPUT},      {IR_ADD_SCALAR, 0.5f, IR_INPUT}};
  assert_int_equal(g->n_outputs, 8);
  for (int i = 0; i < 8; i++) {
    IrNode *n = g->outputs[i];
    assert_int_equal(n->op, want[i].op);
    if (want[i].op != IR_NEG) assert_true(n->attr.f == want[i].f);
    assert_int_equal(n->in[0]->op, want[i].inner);
  }
  built_free(&b);
  free(src);

  src = entry_src("x: f32[B, 3]", "    a = x // 2\n    b = 2 ** x\n    c = x / 0\n    return x");
  b = build(src);
  assert_int_equal(b.errors, 3);
  assert_non_null(strstr(b.diag, "t.dit:3:11: error: operator // is not defined for tensors"));
  assert_non_null(strstr(b.diag, "t.dit:4:11: error: a number raised to a tensor power is not supported"));
  assert_non_null(strstr(b.diag, "t.dit:5:11: error: division of a tensor by zero"));
  built_free(&b);
  free(src);
}

/* ---- settings and configurations ------------------------------------------------- */

static const char *configurable =
    "model m(n: int = 2, f: float = 1.5, on: bool = true, name: str = \"a\", u = 3) {\n"
    "  entry forward(x: f32[B, n]) { return x }\n"
    "}\n"
    "config \"big\" = m(n = 8, f = 2)\n";

static void test_settings(void **state) {
  (void)state;
  FeSetting sets[] = {{"f", "3"}, {"on", "false"}, {"name", "hello"}, {"u", "7"}};
  Built b = build_sets(configurable, "big", NULL, sets, 4);
  assert_int_equal(b.errors, 0);
  assert_string_equal(b.m.config, "big");
  assert_int_equal(fe_param_int(&b.m, "n", 0), 8); /* from the configuration */
  assert_int_equal(fe_param(&b.m, "f")->kind, FE_VAL_FLOAT);
  assert_true(fe_param_float(&b.m, "f", 0) == 3.0); /* --set beats the configuration */
  assert_int_equal(fe_param_int(&b.m, "on", 1), 0);
  assert_string_equal(fe_param(&b.m, "name")->s, "hello");
  assert_int_equal(fe_param(&b.m, "u")->kind, FE_VAL_INT); /* untyped: parsed like its default */
  assert_int_equal(fe_param_int(&b.m, "u", 0), 7);
  expect_shape(b.m.graph->outputs[0], "[B, 8]");
  built_free(&b);

  FeSetting bad[] = {{"n", "abc"}, {"nn", "1"}, {"on", "maybe"}};
  b = build_sets(configurable, NULL, NULL, bad, 3);
  assert_int_equal(b.errors, 3);
  assert_null(b.m.graph);
  assert_string_equal(b.diag,
                      "t.dit: error: --set nn=1: model 'm' has no parameter 'nn' (its parameters: n, f, on, name, u)\n"
                      "t.dit: error: --set n=abc: 'abc' is not an int\n"
                      "t.dit: error: --set on=maybe: 'maybe' is not a bool\n");
  built_free(&b);

  b = build_sets(configurable, "small", NULL, NULL, 0);
  assert_int_equal(b.errors, 1);
  assert_string_equal(b.diag, "t.dit: error: no configuration named 'small' (configurations here: big)\n");
  built_free(&b);

  b = build_sets(configurable, NULL, "backward", NULL, 0);
  assert_int_equal(b.errors, 1);
  assert_string_equal(b.diag, "t.dit: error: model 'm' has no entry 'backward' (its entries: forward)\n");
  built_free(&b);
}

/* ---- errors ------------------------------------------------------------------------ */

static void test_shape_error_location(void **state) {
  (void)state;
  char *src = entry_src("a: f32[B, 4, 8], b: f32[7, 3]",
                        "    c = matmul(a, b)\n    d = a + b\n    e = relu(c) + d\n    return a");
  Built b = build(src);
  assert_int_equal(b.errors, 2); /* e uses the failed c and d: no more messages */
  assert_string_equal(b.diag,
                      "t.dit:3:9: error: matmul: inner dimensions differ: [B, 4, 8] x [7, 3]\n"
                      "    c = matmul(a, b)\n        ^\n"
                      "t.dit:4:11: error: add: shapes [B, 4, 8] and [7, 3] do not broadcast (axis 1: 4 vs 7)\n"
                      "    d = a + b\n          ^\n");
  built_free(&b);
  free(src);
}

static void test_errors_without_cascades(void **state) {
  (void)state;
  Built b = build("fn f(x, k: int) { return x }\n"
                  "model m() {\n"
                  "  entry forward(x: f32[B, 3]) {\n"
                  "    a = undefined_thing + 1\n"
                  "    b = undefined_thing * 2\n"
                  "    c = f(x)\n"
                  "    d = f(x, 1, 2)\n"
                  "    e = f(x, \"s\")\n"
                  "    g = relu(x, 3)\n"
                  "    h = nofn(x)\n"
                  "    assert 1 > 2, \"one is not more than two\"\n"
                  "    return x\n"
                  "  }\n"
                  "}\n");
  assert_int_equal(b.errors, 7);
  const char *want[] = {
      "t.dit:4:9: error: undefined name 'undefined_thing'",
      "t.dit:6:9: error: f() is missing the argument 'k'",
      "t.dit:7:9: error: f() takes 2 arguments, got 3",
      "t.dit:8:14: error: argument 'k' of f() must be int, got str",
      "t.dit:9:9: error: relu() takes 1 argument, got 2",
      "t.dit:10:9: error: undefined function 'nofn'",
      "t.dit:11:5: error: assertion failed: one is not more than two",
  };
  for (int i = 0; i < 7; i++) {
    if (!strstr(b.diag, want[i])) fprintf(stderr, "missing %s in\n%s", want[i], b.diag);
    assert_non_null(strstr(b.diag, want[i]));
  }
  built_free(&b);
}

static void test_compile_time_arithmetic(void **state) {
  (void)state;
  char *src = entry_src("x: f32[B, 3]",
                        "    assert 7 // 2 == 3 and -7 // 2 == -4 and -7 % 3 == 2 and 2 ** 10 == 1024\n"
                        "    assert 6 / 3 == 2 and 1 + 0.5 == 1.5 and 2 ** -1 == 0.5 and abs(-3) == 3\n"
                        "    assert min(3, 4) == 3 and max(2.5, 1) == 2.5 and len([1, 2]) == 2 and len(\"abc\") == 3\n"
                        "    assert int(2.9) == 2 and int(\"12\") == 12 and float(3) == 3.0 and str(12) == \"12\"\n"
                        "    assert str(0.1) == \"0.1\" and str(2.0) == \"2.0\" and str(B * 2) == \"2B\" and str(true) == \"true\"\n"
                        "    assert \"a\" + \"b\" == \"ab\" and [1] + [2] == [1, 2] and range(3) == [0, 1, 2]\n"
                        "    assert sqrt(16) == 4.0 and exp(0) == 1.0 and log(1) == 0.0 and not (1 > 2)\n"
                        "    assert range(2, 4)[-1] == 3 and [1, [2, 3]][1][0] == 2 and none == none\n"
                        "    return x");
  Built b = build_ok(src);
  built_free(&b);
  free(src);

  src = entry_src("x: f32[B, 3]",
                  "    a = 9223372036854775807 + 1\n    b = 1 / 0\n    c = 7 / 2\n    d = 3 % 0\n"
                  "    e = 2 ** 64\n    f = [1, 2][5]\n    g = -9223372036854775807 - 2\n    return x");
  b = build(src);
  assert_int_equal(b.errors, 7);
  assert_non_null(strstr(b.diag, "t.dit:3:29: error: integer overflow in 9223372036854775807 + 1"));
  assert_non_null(strstr(b.diag, "t.dit:4:11: error: division by zero"));
  assert_non_null(strstr(b.diag, "t.dit:5:11: error: 7 / 2 is not exact (use // to round down)"));
  assert_non_null(strstr(b.diag, "t.dit:6:11: error: modulo by zero"));
  assert_non_null(strstr(b.diag, "t.dit:7:11: error: integer overflow in 2 ** 64"));
  assert_non_null(strstr(b.diag, "t.dit:8:16: error: index 5 out of range for a list of 2"));
  assert_non_null(strstr(b.diag, "integer overflow in -9223372036854775807 - 2"));
  built_free(&b);
  free(src);
}

static void test_budgets(void **state) {
  (void)state;
  Built b = build("fn f(n: int) { return f(n + 1) }\n"
                  "model m() { entry forward(x: f32[B]) { y = f(0)\n return x } }\n");
  assert_int_equal(b.errors, 1);
  assert_non_null(strstr(b.diag, "t.dit:1:23: error: call depth limit (200) exceeded calling 'f'"));
  built_free(&b);

  b = build("model m() { entry forward(x: f32[B]) {\n for i in 0 .. 1000000000000 { }\n return x } }\n");
  assert_int_equal(b.errors, 1);
  assert_non_null(strstr(b.diag, "t.dit:2:2: error: more than 1000000 statements elaborated: stopping"));
  built_free(&b);

  b = build("model m() { entry forward(x: f32[B]) {\n s = \"ab\"\n for i in 0 .. 64 { s = s + s }\n return x } }\n");
  assert_int_equal(b.errors, 1);
  assert_non_null(strstr(b.diag, "t.dit:3:27: error: compile-time values need more than 64 MiB: stopping"));
  built_free(&b);

  /* exponential recursion runs into the statement budget */
  b = build("fn f(n: int) { if n == 0 { return 0 }\n return f(n - 1) + f(n - 1) }\n"
            "model m() { entry forward(x: f32[B]) { y = f(60)\n return x } }\n");
  assert_int_equal(b.errors, 1);
  assert_non_null(strstr(b.diag, "statements elaborated: stopping"));
  built_free(&b);

  /* the error limit stops a flood; the count is what was shown */
  b = build("model m() { entry forward(x: f32[B]) {\n for i in 0 .. 1000 { assert false }\n return x } }\n");
  assert_int_equal(b.errors, 100);
  assert_non_null(strstr(b.diag, "error: too many errors: stopping after the first 100\n"));
  {
    int shown = 0;
    for (const char *q = b.diag; (q = strstr(q, ": error: ")); q++) shown++;
    assert_int_equal(shown, 100);
  }
  built_free(&b);
}

/* ---- constants ---------------------------------------------------------------------- */

static void test_constants(void **state) {
  (void)state;
  char *src = entry_src("x: f32[B, 3]",
                        "    return constant([[1, 2.5], [3, 4]]), arange(3), constant(7), x + constant([1, 2, 3])");
  Built b = build_ok(src);
  IrGraph *g = b.m.graph;
  IrNode *c = g->outputs[0];
  assert_int_equal(c->op, IR_CONST);
  expect_shape(c, "[2, 2]");
  const float *v = c->data;
  assert_true(v[0] == 1 && v[1] == 2.5f && v[2] == 3 && v[3] == 4);
  expect_shape(g->outputs[1], "[3]");
  v = g->outputs[1]->data;
  assert_true(v[0] == 0 && v[1] == 1 && v[2] == 2);
  expect_shape(g->outputs[2], "[]");
  assert_true(*(float *)g->outputs[2]->data == 7);
  expect_shape(g->outputs[3], "[B, 3]");
  built_free(&b);
  free(src);

  src = entry_src("x: f32[B, 3]", "    c = constant([[1, 2], [3]])\n    return x");
  b = build(src);
  assert_int_equal(b.errors, 1);
  assert_non_null(strstr(b.diag, "constant(): the nested list is not rectangular"));
  built_free(&b);
  free(src);
}

static void test_sincos(void **state) {
  (void)state;
  /* d = 8: q = 2 frequencies, w = [1, 1/100]; g = 2: tokens (r, c) = (0,0) (0,1) (1,0) (1,1) */
  float t[4 * 8];
  el_sincos_2d(8, 2, t);
  const float *tok1 = t + 8; /* row 0, column 1: the first half encodes the column */
  assert_float_equal(tok1[0], (float)sin(1.0), 1e-7);
  assert_float_equal(tok1[1], (float)sin(0.01), 1e-7);
  assert_float_equal(tok1[2], (float)cos(1.0), 1e-7);
  assert_float_equal(tok1[3], (float)cos(0.01), 1e-7);
  assert_float_equal(tok1[4], 0, 0);
  assert_float_equal(tok1[6], 1, 0);
  const float *tok2 = t + 16; /* row 1, column 0 */
  assert_float_equal(tok2[0], 0, 0);
  assert_float_equal(tok2[4], (float)sin(1.0), 1e-7);
  assert_float_equal(tok2[7], (float)cos(0.01), 1e-7);

  /* as a param default */
  char *src = entry_src("x: f32[B, 4, 8]",
                        "    return x + param pos[1, 4, 8] default sincos_pos_embed_2d(8, 2)");
  Built b = build_ok(src);
  IrNode *p = find_param(b.m.graph, "pos");
  assert_non_null(p);
  assert_non_null(p->data);
  assert_memory_equal(p->data, t, sizeof t);
  built_free(&b);
  free(src);

  src = entry_src("x: f32[B, 4, 8]", "    return x + param pos[1, 4, 8] default x");
  b = build(src);
  assert_int_equal(b.errors, 1);
  assert_non_null(strstr(b.diag, "the default of param 'pos' must be a constant tensor"));
  built_free(&b);
  free(src);
}

/* ---- models on disk ------------------------------------------------------------------ */

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static void test_model_lookup(void **state) {
  (void)state;
  char dir[] = "/tmp/ditc-test-models-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char a[256], bfile[256], spec[300];
  snprintf(a, sizeof a, "%s/a.dit", dir);
  snprintf(bfile, sizeof bfile, "%s/b.dit", dir);
  write_file(a, configurable);
  write_file(bfile, "model other(k: int = 1) { entry forward(x: f32[B, k]) { return x } }\n"
                    "config \"Other/1\" = other(k = 5)\n");
  const char *old = getenv("DITC_MODELS");
  char *saved = old ? strdup(old) : NULL;
  setenv("DITC_MODELS", dir, 1);
  assert_string_equal(fe_models_dir(), dir);

  FeModel m;
  FILE *null = fopen("/dev/null", "w");
  assert_int_equal(fe_build("Other/1", NULL, 0, "forward", null, &m), 0);
  assert_string_equal(m.config, "Other/1");
  assert_int_equal(fe_param_int(&m, "k", 0), 5);
  fe_model_free(&m);

  snprintf(spec, sizeof spec, "%s:big", a);
  assert_int_equal(fe_build(spec, NULL, 0, "forward", null, &m), 0);
  assert_int_equal(fe_param_int(&m, "n", 0), 8);
  fe_model_free(&m);

  assert_int_equal(fe_build(a, NULL, 0, "forward", null, &m), 0);
  assert_null(m.config);
  assert_int_equal(fe_param_int(&m, "n", 0), 2);
  fe_model_free(&m);

  char *buf = NULL;
  size_t len = 0;
  FILE *d = open_memstream(&buf, &len);
  assert_int_equal(fe_build("Nope/1", NULL, 0, "forward", d, &m), 1);
  fclose(d);
  assert_null(m.graph);
  assert_non_null(strstr(buf, "unknown model 'Nope/1'"));
  assert_non_null(strstr(buf, "(configurations: big, Other/1)"));
  free(buf);

  d = open_memstream(&buf, &len);
  assert_int_equal(fe_list_configs(NULL, d, null), 0);
  fclose(d);
  char want[700];
  snprintf(want, sizeof want, "big\t%s\nOther/1\t%s\n", a, bfile);
  assert_string_equal(buf, want);
  free(buf);

  /* Other/1 again in a third file: building it is an error at the second
   * definition pointing at the first; other names still build; the listing
   * has each name once and reports the duplicate */
  char cfile[256];
  snprintf(cfile, sizeof cfile, "%s/c.dit", dir);
  write_file(cfile, "model third(k: int = 1) { entry forward(x: f32[B, k]) { return x } }\n"
                    "config \"Other/1\" = third(k = 6)\n");
  d = open_memstream(&buf, &len);
  assert_int_equal(fe_build("Other/1", NULL, 0, "forward", d, &m), 1);
  fclose(d);
  assert_null(m.graph);
  snprintf(want, sizeof want, "%s:2:8: error: configuration 'Other/1' is defined twice in the models directory (%s)",
           cfile, dir);
  if (!strstr(buf, want)) fail_msg("expected '%s' in: %s", want, buf);
  snprintf(want, sizeof want, "%s:2:8: note: the first definition of 'Other/1' is here", bfile);
  if (!strstr(buf, want)) fail_msg("expected '%s' in: %s", want, buf);
  free(buf);
  assert_int_equal(fe_build("big", NULL, 0, "forward", null, &m), 0);
  fe_model_free(&m);
  char *errs = NULL;
  size_t elen = 0;
  FILE *e = open_memstream(&errs, &elen);
  d = open_memstream(&buf, &len);
  assert_int_equal(fe_list_configs(NULL, d, e), 1);
  fclose(d);
  fclose(e);
  snprintf(want, sizeof want, "big\t%s\nOther/1\t%s\n", a, bfile);
  assert_string_equal(buf, want);
  assert_non_null(strstr(errs, "c.dit:2:8: error: configuration 'Other/1' is defined twice"));
  free(buf);
  free(errs);
  unlink(cfile);

  fclose(null);
  if (saved) setenv("DITC_MODELS", saved, 1);
  else unsetenv("DITC_MODELS");
  free(saved);
  unlink(a);
  unlink(bfile);
  rmdir(dir);
}

/* ---- models/dit.dit against the reference checkpoint -------------------------------- */

static const char *src_dir(void) {
  const char *s = getenv("DITC_SRC");
  return s && *s ? s : DITC_SOURCE_DIR;
}

static void test_dit_against_reference(void **state) {
  (void)state;
  char model[512], weights[512];
  const char *shared = getenv("DITC_SHARED");
  snprintf(model, sizeof model, "%s/models/dit.dit", src_dir());
  snprintf(weights, sizeof weights, "%s/reference/dit-tiny-p2.weights.safetensors",
           shared && *shared ? shared : "../shared");
  FILE *f = fopen(weights, "rb");
  if (access(model, R_OK) != 0 || !f) {
    if (f) fclose(f);
    TU_SKIP("models/dit.dit or the shared reference weights not found");
  }
  uint64_t hlen = 0;
  assert_int_equal(fread(&hlen, 8, 1, f), 1);
  char *header = malloc(hlen + 1);
  assert_int_equal(fread(header, 1, hlen, f), hlen);
  header[hlen] = 0;
  json_t *h = json_loads(header, 0, NULL);
  assert_non_null(h);

  FeSetting sets[] = {{"input_size", "16"}, {"in_channels", "4"}, {"patch_size", "2"}, {"hidden_size", "64"},
                      {"depth", "2"},       {"num_heads", "4"},   {"num_classes", "10"}};
  FeModel m;
  assert_int_equal(fe_build(model, sets, 7, "forward", stderr, &m), 0);
  IrNode **params;
  int np = ir_graph_params(m.graph, &params);
  assert_int_equal(np, (int)json_object_size(h) - (json_object_get(h, "__metadata__") ? 1 : 0));
  for (int i = 0; i < np; i++) {
    json_t *t = json_object_get(h, params[i]->name);
    if (!t) fprintf(stderr, "not in the checkpoint: %s\n", params[i]->name);
    assert_non_null(t);
    json_t *shape = json_object_get(t, "shape");
    assert_int_equal((int)json_array_size(shape), params[i]->shape.rank);
    for (int k = 0; k < params[i]->shape.rank; k++)
      assert_int_equal(json_integer_value(json_array_get(shape, k)), params[i]->shape.d[k]);
  }
  /* pos_embed: the computed default equals the stored tensor */
  IrNode *pos = find_param(m.graph, "pos_embed");
  assert_non_null(pos->data);
  json_t *pt = json_object_get(h, "pos_embed");
  assert_string_equal(json_string_value(json_object_get(pt, "dtype")), "F32");
  json_t *off = json_object_get(pt, "data_offsets");
  size_t n = (size_t)(json_integer_value(json_array_get(off, 1)) - json_integer_value(json_array_get(off, 0))) / 4;
  assert_int_equal(n, 64 * 64);
  float *ref = malloc(n * 4);
  fseek(f, (long)(8 + hlen + (uint64_t)json_integer_value(json_array_get(off, 0))), SEEK_SET);
  assert_int_equal(fread(ref, 4, n, f), n);
  double maxdiff = 0;
  for (size_t i = 0; i < n; i++) {
    double dd = fabs((double)ref[i] - ((float *)pos->data)[i]);
    if (dd > maxdiff) maxdiff = dd;
  }
  assert_true(maxdiff < 1e-6);
  free(ref);
  fe_model_free(&m);
  json_decref(h);
  free(header);
  fclose(f);
}

/* Every configuration of models/dit.dit, both entries, and the block variants. */
static void test_dit_all_configs(void **state) {
  (void)state;
  char model[512];
  snprintf(model, sizeof model, "%s/models/dit.dit", src_dir());
  if (access(model, R_OK) != 0) TU_SKIP("models/dit.dit not found");
  char *buf = NULL;
  size_t len = 0;
  FILE *out = open_memstream(&buf, &len);
  assert_int_equal(fe_list_configs(model, out, stderr), 0);
  fclose(out);
  int n = 0;
  for (char *line = buf; *line; n++) {
    char *tab = strchr(line, '\t'), *nl = strchr(line, '\n');
    assert_non_null(tab);
    assert_non_null(nl);
    *tab = 0;
    char spec[700];
    snprintf(spec, sizeof spec, "%s:%s", model, line);
    const char *entries[] = {"forward", "forward_with_cfg"};
    for (int e = 0; e < 2; e++) {
      FeModel m;
      assert_int_equal(fe_build(spec, NULL, 0, entries[e], stderr, &m), 0);
      assert_int_equal(m.graph->n_outputs, 1);
      IrNode *o = m.graph->outputs[0];
      assert_int_equal(o->shape.rank, 4);
      assert_int_equal(o->shape.d[0], e == 0 ? -1 : -2);
      assert_int_equal(o->shape.d[1], 2 * fe_param_int(&m, "in_channels", 0));
      assert_int_equal(o->shape.d[2], fe_param_int(&m, "input_size", 0));
      IrErr err;
      if (ir_verify(m.graph, &err)) fprintf(stderr, "%s %s: %s\n", spec, entries[e], err.msg);
      assert_int_equal(ir_verify(m.graph, &err), 0);
      fe_model_free(&m);
    }
    line = nl + 1;
  }
  assert_true(n >= 10);
  free(buf);

  const char *variants[][2] = {{"att", "med"}, {"att", "fgq"}, {"att", "fmq"}, {"att", "shallow"},
                               {"moe_experts", "4"}, {"learn_sigma", "false"}};
  char spec[700];
  snprintf(spec, sizeof spec, "%s:DiT-S/2", model);
  for (size_t v = 0; v < sizeof variants / sizeof *variants; v++) {
    FeSetting sets[] = {{variants[v][0], variants[v][1]}};
    FeModel m;
    assert_int_equal(fe_build(spec, sets, 1, "forward", stderr, &m), 0);
    assert_int_equal(m.graph->n_outputs, 1);
    IrErr err;
    assert_int_equal(ir_verify(m.graph, &err), 0);
    fe_model_free(&m);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_small_model),
      cmocka_unit_test(test_param_sharing),
      cmocka_unit_test(test_symbolic_batch),
      cmocka_unit_test(test_tensor_scalar),
      cmocka_unit_test(test_settings),
      cmocka_unit_test(test_shape_error_location),
      cmocka_unit_test(test_errors_without_cascades),
      cmocka_unit_test(test_compile_time_arithmetic),
      cmocka_unit_test(test_budgets),
      cmocka_unit_test(test_constants),
      cmocka_unit_test(test_sincos),
      cmocka_unit_test(test_model_lookup),
      cmocka_unit_test(test_dit_against_reference),
      cmocka_unit_test(test_dit_all_configs),
  };
  return tu_run_group(tests, NULL, NULL);
}
