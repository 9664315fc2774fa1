/*
 * test_calib.c - calibration: which pipelines read statistics
 * (pass_pipeline_needs_calib), the absmax accessor, the statistics measured
 * on a small DiT (names, sizes, determinism; head_out and block delta
 * computed again from a run's values without the observer), and the cache file (round trip, corruption).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "frontend/frontend.h"
#include "passes/calib.h"
#include "passes/passes.h"
#include "passes/prune.h"
#include "runtime/calib.h"
#include "runtime/ref.h"
#include "testutil.h"

static int needs(const char *spec) {
  PassPipeline p;
  IrErr err;
  if (pass_pipeline_parse(spec, &p, &err)) fail_msg("%s: %s", spec, err.msg);
  return pass_pipeline_needs_calib(&p, 0);
}

static void test_needs_calib(void **state) {
  (void)state;
  assert_int_equal(needs("default"), -1);
  assert_int_equal(needs("cse,prune-heads:keep=2"), -1);
  assert_int_equal(needs("cse,prune-heads:keep=2:criterion=calib"), 1);
  assert_int_equal(needs("cse,prune-heads:keep=0:criterion=calib"), -1); /* does nothing */
  assert_int_equal(needs("cse,prune-heads:keep=2:criterion=calib:select=3.3"), -1);
  assert_int_equal(needs("prune-mlp:fraction=0.25:criterion=calib"), 0);
  assert_int_equal(needs("prune-mlp:fraction=0.25"), -1);
  assert_int_equal(needs("cse,dce,prune-blocks:count=1"), 2);
  assert_int_equal(needs("prune-blocks:count=1:select=2"), -1);
  assert_int_equal(needs("prune-blocks:count=0"), -1);
  assert_int_equal(needs("quantize:mode=w8"), -1);
  assert_int_equal(needs("cse,quantize:mode=fp8"), 1);
  assert_int_equal(needs("cse,quantize:mode=fp8:scales=3c000000"), -1); /* the scales given */
  PassPipeline p;
  IrErr err;
  assert_int_equal(pass_pipeline_parse("prune-blocks:count=1,cse,prune-mlp:fraction=0.5:criterion=calib", &p, &err), 0);
  assert_int_equal(pass_pipeline_needs_calib(&p, 0), 0);
  assert_int_equal(pass_pipeline_needs_calib(&p, 1), 2);
  assert_int_equal(pass_pipeline_needs_calib(&p, 3), -1);
}

static void test_absmax(void **state) {
  (void)state;
  double v = 3.5, w[2] = {1, 2}, got = 0;
  PassCalibStat st[2] = {{"linear.blocks.0.attn.qkv.weight.absmax", 1, &v}, {"linear.x.weight.absmax", 2, w}};
  PassCalib c = {2, st, "test"};
  IrErr err;
  assert_int_equal(pass_calib_absmax(&c, "blocks.0.attn.qkv.weight", &got, &err), 0);
  assert_true(got == 3.5);
  assert_int_equal(pass_calib_absmax(&c, "x.weight", &got, &err), -1); /* two values: not an absmax */
  assert_non_null(strstr(err.msg, "linear.x.weight.absmax"));
  assert_int_equal(pass_calib_absmax(NULL, "blocks.0.attn.qkv.weight", &got, &err), -1);
  assert_non_null(strstr(err.msg, "needs calibration data"));
}

/* A small DiT with random weights, calibrated at cse's place. */
typedef struct {
  FeModel m;
  Weights w;
} Small;

static void small_build(Small *s, const char *entry) {
  FeSetting sets[] = {{"depth", "3"}, {"hidden_size", "64"}, {"num_heads", "4"}, {"input_size", "8"},
                      {"num_classes", "4"}, {"patch_size", "2"}, {"in_channels", "4"}};
  IrErr err;
  if (fe_build("DiT-S/2", sets, 7, entry, stderr, &s->m)) fail_msg("the model does not build");
  if (weights_random(s->m.graph, 7, &s->w, &err)) fail_msg("%s", err.msg);
  if (pass_run_pipeline(s->m.graph, "canonicalize,fold-constants,cse", NULL, &err)) fail_msg("%s", err.msg);
}

static void small_free(Small *s) {
  weights_free(&s->w);
  fe_model_free(&s->m);
}

static const int32_t LABELS[] = {0, 1, 2, 3};

static RtCalibSettings small_settings(double cfg) {
  return (RtCalibSettings){.samples = 2, .kind = SAMPLER_DDPM, .steps = 3, .diffusion_steps = 1000, .cfg_scale = cfg,
                           .labels = LABELS, .n_labels = 4, .seed = 5, .channels = 4, .size = 8, .classes = 4,
                           .learn_sigma = 1};
}

static const PassCalibStat *stat_named(const RtCalib *c, const char *name) {
  for (int i = 0; i < c->n; i++)
    if (!strcmp(c->stats[i].name, name)) return &c->stats[i];
  return NULL;
}

static void test_measure(void **state) {
  (void)state;
  for (int cfg = 0; cfg < 2; cfg++) {
    Small s;
    small_build(&s, cfg ? "forward_with_cfg" : "forward");
    RtCalibSettings st = small_settings(cfg ? 1.5 : 1.0);
    RtCalib a, b;
    IrErr err;
    if (rt_calib_run(s.m.graph, &s.w, &st, &a, &err)) fail_msg("%s", err.msg);
    if (rt_calib_run(s.m.graph, &s.w, &st, &b, &err)) fail_msg("%s", err.msg);
    /* 3 blocks: heads, channels, deltas; every linear's input */
    assert_int_equal(a.n, b.n);
    for (int i = 0; i < 3; i++) {
      char name[64];
      snprintf(name, sizeof name, "attn.%d.head_out", i);
      const PassCalibStat *h = stat_named(&a, name);
      assert_non_null(h);
      assert_int_equal(h->n, 4);
      for (int k = 0; k < 4; k++) assert_true(h->v[k] > 0 && isfinite(h->v[k]));
      snprintf(name, sizeof name, "mlp.%d.act_abs", i);
      assert_non_null(stat_named(&a, name));
      assert_int_equal(stat_named(&a, name)->n, 256);
      snprintf(name, sizeof name, "block.%d.delta", i);
      assert_non_null(stat_named(&a, name));
      assert_true(stat_named(&a, name)->v[0] > 0);
      snprintf(name, sizeof name, "linear.blocks.%d.mlp.fc2.weight.absmax", i);
      assert_non_null(stat_named(&a, name));
    }
    assert_null(stat_named(&a, "attn.3.head_out"));
    for (int i = 0; i < a.n; i++) { /* deterministic */
      assert_string_equal(a.stats[i].name, b.stats[i].name);
      assert_memory_equal(a.stats[i].v, b.stats[i].v, (size_t)a.stats[i].n * sizeof(double));
    }
    assert_non_null(strstr(a.pc.about, "2 samples, ddpm 3 steps"));
    rt_calib_free(&a);
    rt_calib_free(&b);
    small_free(&s);
  }
}

static void test_cache_file(void **state) {
  (void)state;
  char dir[256], path[512];
  assert_int_equal(tu_tmpdir_make(dir, sizeof dir, "calib"), 0);
  snprintf(path, sizeof path, "%s/entry.txt", dir);
  const char *key = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
  Small s;
  small_build(&s, "forward");
  RtCalibSettings st = small_settings(1.0);
  RtCalib a, b;
  IrErr err;
  if (rt_calib_run(s.m.graph, &s.w, &st, &a, &err)) fail_msg("%s", err.msg);
  assert_int_equal(rt_calib_load(path, key, &b, &err), 0); /* no entry */
  assert_int_equal(rt_calib_store(&a, path, key, &err), 0);
  assert_int_equal(rt_calib_load(path, key, &b, &err), 1);
  assert_int_equal(a.n, b.n);
  assert_string_equal(a.about, b.about);
  for (int i = 0; i < a.n; i++) {
    assert_string_equal(a.stats[i].name, b.stats[i].name);
    assert_memory_equal(a.stats[i].v, b.stats[i].v, (size_t)a.stats[i].n * sizeof(double)); /* %.17g: exact */
  }
  rt_calib_free(&b);
  /* another key: refused (and removed) */
  assert_int_equal(rt_calib_load(path, "ff112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", &b, &err), -1);
  assert_int_equal(access(path, F_OK), -1);
  /* one byte changed: refused, removed */
  assert_int_equal(rt_calib_store(&a, path, key, &err), 0);
  FILE *f = fopen(path, "r+");
  assert_non_null(f);
  fseek(f, 40, SEEK_SET);
  fputc('#', f);
  fclose(f);
  assert_int_equal(rt_calib_load(path, key, &b, &err), -1);
  assert_non_null(strstr(err.msg, "corrupt"));
  assert_int_equal(access(path, F_OK), -1);
  rt_calib_free(&a);
  small_free(&s);
  tu_tmpdir_remove(dir);
}

/* The definitions, computed again without the observer: the sampler over
 * ref_run of a graph whose extra outputs are block 0's input and output,
 * and attention 0's merged heads and gate; head_out and delta by naive loops. */
typedef struct {
  RefExec *e;
  const Weights *w;
  const PruneAttn *a;
  RtTensor in[3];
  double head[4], delta;
  int calls;
} Manual;

static int manual_fn(void *ctx, const float *x, const float *t, int64_t rows, float *out, IrErr *err) {
  Manual *m = ctx;
  int64_t img = 4 * 8 * 8;
  memcpy(m->in[0].data, x, (size_t)(rows * img) * sizeof *x);
  for (int64_t i = 0; i < rows; i++) ((float *)m->in[1].data)[i] = t[i], ((int32_t *)m->in[2].data)[i] = LABELS[i % 4];
  RtTensor res[5] = {{0}};
  if (ref_run(m->e, m->in, res, err)) return -1;
  memcpy(out, res[0].data, (size_t)(rows * 2 * img) * sizeof *out);
  const float *xin = res[1].data, *xout = res[2].data, *mg = res[3].data, *gate = res[4].data;
  const float *pw = weights_get(m->w, m->a->pw);
  int64_t n = rt_numel(&res[1]), D = 64, R = n / D, per = R / rows;
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; i++) num += fabs((double)xout[i] - xin[i]), den += fabs((double)xin[i]);
  m->delta += num / den;
  for (int h = 0; h < 4; h++) {
    double sum = 0;
    for (int64_t r = 0; r < R; r++)
      for (int64_t o = 0; o < D; o++) {
        double c = 0;
        for (int64_t j = h * 16; j < (h + 1) * 16; j++) c += (double)mg[r * 64 + j] * pw[o * 64 + j];
        sum += fabs(gate[(r / per) * D + o] * c);
      }
    m->head[h] += sum / (double)(R * D);
  }
  m->calls++;
  for (int k = 0; k < 5; k++) rt_tensor_free(&res[k]);
  return 0;
}

static void test_definitions(void **state) {
  (void)state;
  Small s, s2; /* s2: the graph with the extra outputs (an extra reader changes the sites' matching) */
  small_build(&s, "forward");
  small_build(&s2, "forward");
  IrGraph *g = s2.m.graph;
  PruneBlock *b;
  PruneAttn *a;
  assert_int_equal(prune_find_blocks(g, &b), 3);
  assert_int_equal(prune_find_attention(g, &a), 3);
  ir_graph_add_output(g, b[0].in, "x_in");
  ir_graph_add_output(g, b[0].out, "x_out");
  ir_graph_add_output(g, a[0].proj->in[0], "merged");
  ir_graph_add_output(g, b[0].gate, "gate");
  RtCalibSettings st = small_settings(1.0);
  RtCalib c;
  IrErr err;
  if (rt_calib_run(s.m.graph, &s.w, &st, &c, &err)) fail_msg("%s", err.msg);
  Manual m = {.w = &s2.w, .a = &a[0]};
  int64_t xs[4] = {2, 4, 8, 8};
  m.in[0] = rt_tensor_new(IR_F32, 4, xs);
  m.in[1] = rt_tensor_new(IR_F32, 1, xs);
  m.in[2] = rt_tensor_new(IR_I32, 1, xs);
  if (!(m.e = ref_prepare(g, &s2.w, 2, &err))) fail_msg("%s", err.msg);
  Diffusion d;
  if (diffusion_init(&d, 1000, "linear", 3, &err)) fail_msg("%s", err.msg);
  RtRng rng;
  rng_init(&rng, st.seed);
  float *x = malloc(2 * 256 * sizeof *x);
  rng_normal(&rng, x, 2 * 256);
  SamplerConfig sc = {.kind = SAMPLER_DDPM, .rows = 2, .channels = 4, .height = 8, .width = 8, .learn_sigma = 1,
                      .model = manual_fn, .model_ctx = &m, .noise = sampler_noise_rng, .noise_ctx = &rng};
  if (sampler_run(&d, &sc, x, &err)) fail_msg("%s", err.msg);
  assert_int_equal(m.calls, 3);
  const PassCalibStat *h = stat_named(&c, "attn.0.head_out"), *dl = stat_named(&c, "block.0.delta");
  for (int k = 0; k < 4; k++) assert_true(fabs(h->v[k] - m.head[k] / 3) <= 1e-6 * h->v[k]);
  assert_true(fabs(dl->v[0] - m.delta / 3) <= 1e-9 * dl->v[0]);
  free(x);
  diffusion_free(&d);
  ref_free(m.e);
  for (int k = 0; k < 3; k++) rt_tensor_free(&m.in[k]);
  rt_calib_free(&c);
  free(a);
  free(b);
  small_free(&s);
  small_free(&s2);
}

/* The statistics' key: the weights count. */
static void test_key(void **state) {
  (void)state;
  Small s, t;
  small_build(&s, "forward");
  small_build(&t, "forward");
  char a[65], b[65], c[65];
  rt_calib_key(s.m.graph, &s.w, "x", a);
  rt_calib_key(t.m.graph, &t.w, "x", b);
  assert_string_equal(a, b);
  rt_calib_key(s.m.graph, &s.w, "y", c);
  assert_string_not_equal(a, c);
  IrNode **params;
  ir_graph_params(t.m.graph, &params);
  t.w.data[params[3]->id][0] += 1;
  rt_calib_key(t.m.graph, &t.w, "x", c);
  assert_string_not_equal(a, c);
  small_free(&s);
  small_free(&t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_needs_calib), cmocka_unit_test(test_absmax), cmocka_unit_test(test_measure),
      cmocka_unit_test(test_cache_file), cmocka_unit_test(test_key), cmocka_unit_test(test_definitions),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
