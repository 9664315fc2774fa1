/*
 * test_pass_options.c - pipelines with per-pass options: parsing
 * "a,b:key=value:key=value,c", defaults, each error (unknown pass, unknown
 * option, bad value), the values reaching the pass through its PassOptions,
 * insertion at a fixed place, and the registry's own rows.
 *
 * A test registry with one pass of every option type stands in for real
 * passes with options; the built-in registry is checked too.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "passes/passes.h"

/* What the test pass saw the last times it ran. */
static struct {
  int runs;
  int64_t keep[4];
  double scale[4];
  int on[4];
  char scheme[4][PASS_MAX_CHOICE];
} seen;

static int pass_probe(IrGraph *g, const PassOptions *o, IrErr *err) {
  (void)g;
  (void)err;
  int r = seen.runs++ % 4;
  seen.keep[r] = pass_opt_int(o, "keep");
  seen.scale[r] = pass_opt_float(o, "scale");
  seen.on[r] = pass_opt_bool(o, "on");
  snprintf(seen.scheme[r], sizeof seen.scheme[r], "%s", pass_opt_choice(o, "scheme"));
  return 0;
}

static int pass_plain(IrGraph *g, const PassOptions *o, IrErr *err) {
  (void)g;
  (void)o;
  (void)err;
  return 0;
}

static const PassInfo TABLE[] = {
    {"probe", pass_probe, "reads every kind of option",
     {{"keep", PASS_OPT_INT, "4", "how many to keep", .lo = 1, .hi = 64},
      {"scale", PASS_OPT_FLOAT, "0.5", "a factor", .lo = 0, .hi = 1},
      {.name = "on", .type = PASS_OPT_BOOL, .def = "false", .doc = "a switch"},
      {"scheme", PASS_OPT_CHOICE, "per-tensor", "which scheme", .choices = "per-tensor|per-channel"}}},
    {"plain", pass_plain, "takes no options", PASS_NO_OPTIONS},
};
#define N_TABLE ((int)(sizeof TABLE / sizeof TABLE[0]))

static void parse_ok(const char *spec, PassPipeline *p) {
  IrErr e = {{0}};
  if (pass_pipeline_parse_table(TABLE, N_TABLE, spec, p, &e)) fail_msg("%s: %s", spec, e.msg);
}

/* spec fails with a message containing want. */
static void parse_fails(const char *spec, const char *want) {
  PassPipeline *p = malloc(sizeof *p);
  IrErr e = {{0}};
  int rc = pass_pipeline_parse_table(TABLE, N_TABLE, spec, p, &e);
  free(p);
  if (rc != -1) fail_msg("'%s' was accepted", spec);
  if (!strstr(e.msg, want)) fail_msg("'%s': '%s' does not say '%s'", spec, e.msg, want);
}

static void test_defaults_and_values(void **state) {
  (void)state;
  PassPipeline *p = malloc(sizeof *p);
  parse_ok("probe", p);
  assert_int_equal(p->n, 1);
  assert_ptr_equal(p->steps[0].pass, &TABLE[0]);
  assert_int_equal(p->steps[0].values[0].i, 4);
  assert_true(p->steps[0].values[1].f == 0.5);
  assert_int_equal(p->steps[0].values[2].i, 0);
  assert_string_equal(p->steps[0].values[3].s, "per-tensor");

  parse_ok(" plain , probe:keep=7 : scale=1:on:scheme=per-channel ,plain", p);
  assert_int_equal(p->n, 3);
  assert_ptr_equal(p->steps[1].pass, &TABLE[0]);
  assert_int_equal(p->steps[1].values[0].i, 7);
  assert_true(p->steps[1].values[1].f == 1.0);
  assert_int_equal(p->steps[1].values[2].i, 1);
  assert_string_equal(p->steps[1].values[3].s, "per-channel");
  assert_int_equal(p->steps[1].values[3].i, 1);

  parse_ok("probe:on=off,none,,probe:on=yes", p);
  assert_int_equal(p->n, 2);
  assert_int_equal(p->steps[0].values[2].i, 0);
  assert_int_equal(p->steps[1].values[2].i, 1);
  assert_true(pass_pipeline_runs(p, "probe"));
  assert_false(pass_pipeline_runs(p, "plain"));
  free(p);
}

/* The values reach the pass, each occurrence with its own. */
static void test_values_reach_the_pass(void **state) {
  (void)state;
  PassPipeline *p = malloc(sizeof *p);
  parse_ok("probe:keep=2:scheme=per-channel,plain,probe:scale=0.25:on=true", p);
  IrGraph *g = ir_graph_new("f");
  ir_graph_add_output(g, ir_input(g, "x", IR_F32, ir_shape_make(1, (IrDim[]){IR_BATCH}), (IrLoc){0}), "out");
  IrErr e = {{0}};
  memset(&seen, 0, sizeof seen);
  PassOptions o = {.verify = 1};
  if (pass_pipeline_run(g, p, &o, &e)) fail_msg("%s", e.msg);
  assert_int_equal(seen.runs, 2);
  assert_int_equal(seen.keep[0], 2);
  assert_true(seen.scale[0] == 0.5);
  assert_int_equal(seen.on[0], 0);
  assert_string_equal(seen.scheme[0], "per-channel");
  assert_int_equal(seen.keep[1], 4);
  assert_true(seen.scale[1] == 0.25);
  assert_int_equal(seen.on[1], 1);
  assert_string_equal(seen.scheme[1], "per-tensor");
  ir_graph_free(g);
  free(p);
}

static void test_errors(void **state) {
  (void)state;
  parse_fails("plain,nope", "unknown pass 'nope' (known: probe, plain; or default, none)");
  parse_fails("plain:x=1", "pass 'plain' has no option 'x' (it takes none)");
  parse_fails("probe:kep=1", "pass 'probe' has no option 'kep' (its options: keep, scale, on, scheme)");
  parse_fails("probe:keep=abc", "pass 'probe': option 'keep' takes a whole number in 1..64, got 'abc'");
  parse_fails("probe:keep=65", "option 'keep' takes a whole number in 1..64, got '65'");
  parse_fails("probe:keep=1.5", "got '1.5'");
  parse_fails("probe:scale=2", "option 'scale' takes a number in 0..1, got '2'");
  parse_fails("probe:scale=nan", "got 'nan'");
  parse_fails("probe:on=maybe", "option 'on' takes true or false, got 'maybe'");
  parse_fails("probe:scheme=per-row", "option 'scheme' takes one of per-tensor|per-channel, got 'per-row'");
  parse_fails("probe:keep", "option 'keep' needs a value (keep=VALUE: a whole number in 1..64)");
  parse_fails("probe:keep=", "got ''");
  parse_fails("probe:keep=2:keep=3", "option 'keep' given twice");
  parse_fails("probe:", "an option without a name");
  parse_fails("probe:=3", "an option without a name");
  parse_fails("none:keep=1", "'none' takes no options");
  parse_fails("default:keep=1", "'default' takes no options");
}

/* The built-in registry: every row's defaults parse, "default" expands, the
 * issue's example is refused as an option error, not an unknown pass. */
static void test_registry(void **state) {
  (void)state;
  PassPipeline *p = malloc(sizeof *p);
  IrErr e = {{0}};
  int n;
  const PassInfo *t = pass_table(&n);
  for (int i = 0; i < n; i++) {
    assert_int_equal(pass_pipeline_parse(t[i].name, p, &e), 0);
    assert_int_equal(p->n, 1);
    for (int k = 0; k < PASS_MAX_OPTS && t[i].opts[k].name; k++) {
      assert_non_null(t[i].opts[k].doc);
      assert_non_null(t[i].opts[k].def);
    }
  }
  assert_int_equal(pass_pipeline_parse("default", p, &e), 0);
  assert_int_equal(p->n, 10);
  assert_string_equal(p->steps[0].pass->name, "canonicalize");
  assert_string_equal(p->steps[5].pass->name, "conv-gemm");
  assert_string_equal(p->steps[9].pass->name, "plan-memory");
  assert_int_equal(pass_pipeline_parse("cse:no_such_option=1", p, &e), -1);
  assert_string_equal(e.msg, "pass 'cse' has no option 'no_such_option' (it takes none)");
  free(p);
}

/* A pass put at a fixed place, as a command-line flag for it would. */
static void test_insert(void **state) {
  (void)state;
  PassPipeline *p = malloc(sizeof *p);
  IrErr e = {{0}};
  assert_int_equal(pass_pipeline_parse("default", p, &e), 0);
  assert_int_equal(pass_pipeline_insert(p, "cse", "dce,canonicalize", &e), 0);
  assert_int_equal(p->n, 12);
  assert_string_equal(p->steps[2].pass->name, "cse");
  assert_string_equal(p->steps[3].pass->name, "dce");
  assert_string_equal(p->steps[4].pass->name, "canonicalize");
  assert_string_equal(p->steps[5].pass->name, "hoist-adaln");
  assert_int_equal(pass_pipeline_insert(p, NULL, "fuse", &e), 0);
  assert_string_equal(p->steps[12].pass->name, "fuse");

  assert_int_equal(pass_pipeline_parse("dce", p, &e), 0);
  assert_int_equal(pass_pipeline_insert(p, "cse", "fuse", &e), -1);
  assert_non_null(strstr(e.msg, "'fuse' goes after pass 'cse', which the pipeline does not run"));
  assert_int_equal(pass_pipeline_insert(p, "dce", "cse:x=1", &e), -1);
  assert_non_null(strstr(e.msg, "pass 'cse' has no option 'x'"));
  assert_int_equal(p->n, 1);
  for (int i = 1; i < PASS_MAX_PIPELINE; i++) assert_int_equal(pass_pipeline_insert(p, "dce", "cse", &e), 0);
  assert_int_equal(pass_pipeline_insert(p, "dce", "cse", &e), -1);
  assert_non_null(strstr(e.msg, "pipeline longer than 64 passes"));
  assert_int_equal(p->n, PASS_MAX_PIPELINE);
  free(p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults_and_values),
      cmocka_unit_test(test_values_reach_the_pass),
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_registry),
      cmocka_unit_test(test_insert),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
