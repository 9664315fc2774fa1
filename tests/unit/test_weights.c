/*
 * test_weights.c - binding PARAM nodes to checkpoints, and random weights.
 *
 * Graphs are built by hand from ir_param nodes (the DiT parameter list for a
 * given configuration, or a few loose ones); checkpoints are written with the
 * safetensors writer into a temporary directory.  Covered: exact binding with
 * dtype conversion and defaults, all three kinds of problem reported in one
 * message, long lists summarised to fit, the diffusers naming (q/k/v stacking,
 * per-block embedder copies ignored), the shared reference checkpoints against
 * the DiT parameter list, and deterministic non-zero random weights.
 */
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"

#include "runtime/weights.h"

static char tmpdir[256];

static int setup(void **state) {
  (void)state;
  return tu_tmpdir_make(tmpdir, sizeof tmpdir, "weights");
}

static int teardown(void **state) {
  (void)state;
  tu_tmpdir_remove(tmpdir);
  return 0;
}

static char *tpath(const char *name) {
  static char p[512];
  snprintf(p, sizeof p, "%s/%s", tmpdir, name);
  return p;
}

static IrNode *param(IrGraph *g, const char *name, int rank, const IrDim *d) {
  return ir_param(g, name, IR_F32, ir_shape_make(rank, d), (IrLoc){0});
}

static IrNode *param_default(IrGraph *g, const char *name, int rank, const IrDim *d, float base) {
  IrNode *n = param(g, name, rank, d);
  int64_t numel = ir_shape_numel(&n->shape, 1);
  float *v = arena_alloc(&g->arena, (size_t)numel * sizeof *v);
  for (int64_t i = 0; i < numel; i++) v[i] = base + (float)i;
  n->data = v;
  return n;
}

#define P(g, name, ...) param(g, name, (int)(sizeof((IrDim[]){__VA_ARGS__}) / sizeof(IrDim)), (IrDim[]){__VA_ARGS__})

/* The DiT parameter list, reference naming.  pos_embed gets a default. */
typedef struct {
  int depth, d, p, c, c_out, classes, tokens;
} DitCfg;

static IrGraph *dit_graph(const DitCfg *k) {
  IrGraph *g = ir_graph_new("forward");
  int64_t D = k->d;
  param_default(g, "pos_embed", 3, (IrDim[]){1, k->tokens, D}, 0.5f);
  P(g, "x_embedder.proj.weight", D, k->c, k->p, k->p);
  P(g, "x_embedder.proj.bias", D);
  P(g, "t_embedder.mlp.0.weight", D, 256);
  P(g, "t_embedder.mlp.0.bias", D);
  P(g, "t_embedder.mlp.2.weight", D, D);
  P(g, "t_embedder.mlp.2.bias", D);
  P(g, "y_embedder.embedding_table.weight", k->classes + 1, D);
  for (int i = 0; i < k->depth; i++) {
    char n[128];
#define B(suffix, ...) (snprintf(n, sizeof n, "blocks.%d." suffix, i), P(g, n, __VA_ARGS__))
    B("attn.qkv.weight", 3 * D, D);
    B("attn.qkv.bias", 3 * D);
    B("attn.proj.weight", D, D);
    B("attn.proj.bias", D);
    B("mlp.fc1.weight", 4 * D, D);
    B("mlp.fc1.bias", 4 * D);
    B("mlp.fc2.weight", D, 4 * D);
    B("mlp.fc2.bias", D);
    B("adaLN_modulation.1.weight", 6 * D, D);
    B("adaLN_modulation.1.bias", 6 * D);
#undef B
  }
  P(g, "final_layer.linear.weight", (int64_t)k->p * k->p * k->c_out, D);
  P(g, "final_layer.linear.bias", (int64_t)k->p * k->p * k->c_out);
  P(g, "final_layer.adaLN_modulation.1.weight", 2 * D, D);
  P(g, "final_layer.adaLN_modulation.1.bias", 2 * D);
  return g;
}

static int64_t graph_param_count(IrGraph *g) {
  IrNode **ps;
  int n = ir_graph_params(g, &ps);
  int64_t s = 0;
  for (int i = 0; i < n; i++) s += ir_shape_numel(&ps[i]->shape, 1);
  return s;
}

static IrNode *find_param(IrGraph *g, const char *name) {
  IrNode **ps;
  int n = ir_graph_params(g, &ps);
  for (int i = 0; i < n; i++)
    if (!strcmp(ps[i]->name, name)) return ps[i];
  fail_msg("no PARAM %s", name);
  return NULL;
}

/* ---- exact binding ---------------------------------------------------------- */

static void test_bind_exact(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("forward");
  IrNode *inp = ir_input(g, "x", IR_F32, ir_shape_make(2, (IrDim[]){IR_BATCH, 2}), (IrLoc){0});
  IrNode *w = P(g, "a.weight", 3, 2);
  IrNode *b = P(g, "a.bias", 3);
  IrNode *pe = param_default(g, "pos_embed", 3, (IrDim[]){1, 4, 2}, 10.0f);

  StWriter *wr = st_writer_new();
  uint16_t wh[6] = {0x3c00, 0x4000, 0x4200, 0xbc00, 0x3800, 0x0000}; /* 1 2 3 -1 .5 0 */
  st_writer_add(wr, "a.weight", ST_F16, 2, (int64_t[]){3, 2}, wh);
  float bv[3] = {0.25f, -4.0f, 8.0f};
  st_writer_add(wr, "a.bias", ST_F32, 1, (int64_t[]){3}, bv);
  IrErr err = {{0}};
  assert_int_equal(st_writer_save(wr, tpath("exact.safetensors"), &err), 0);
  st_writer_free(wr);

  Weights ws;
  if (weights_load(g, tpath("exact.safetensors"), &ws, &err)) fail_msg("%s", err.msg);
  assert_int_equal(ws.cap, g->next_id);
  assert_int_equal(ws.n_params, 6 + 3 + 8);
  const float *wv = weights_get(&ws, w);
  assert_non_null(wv);
  const float want[6] = {1, 2, 3, -1, 0.5f, 0};
  assert_memory_equal(wv, want, sizeof want);
  assert_memory_equal(weights_get(&ws, b), bv, sizeof bv);
  const float *pv = weights_get(&ws, pe); /* default */
  for (int i = 0; i < 8; i++) assert_true(pv[i] == 10.0f + (float)i);
  assert_ptr_not_equal(pv, pe->data); /* owned copy */
  assert_null(weights_get(&ws, inp));
  weights_free(&ws);
  assert_null(ws.data);

  /* A checkpoint that carries pos_embed overrides the default. */
  wr = st_writer_new();
  st_writer_add(wr, "a.weight", ST_F16, 2, (int64_t[]){3, 2}, wh);
  st_writer_add(wr, "a.bias", ST_F32, 1, (int64_t[]){3}, bv);
  float pev[8] = {-1, -2, -3, -4, -5, -6, -7, -8};
  st_writer_add(wr, "pos_embed", ST_F32, 3, (int64_t[]){1, 4, 2}, pev);
  assert_int_equal(st_writer_save(wr, tpath("exact2.safetensors"), &err), 0);
  st_writer_free(wr);
  assert_int_equal(weights_open(g, tpath("exact2.safetensors"), &ws, &err), 0);
  assert_memory_equal(weights_get(&ws, pe), pev, sizeof pev);
  weights_free(&ws);

  assert_int_equal(weights_load(g, tpath("absent.safetensors"), &ws, &err), -1);
  assert_non_null(strstr(err.msg, "absent.safetensors: cannot open"));
  ir_graph_free(g);
}

/* ---- all problems at once ---------------------------------------------------- */

static void test_bind_problems(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("forward");
  P(g, "blocks.0.attn.qkv.weight", 288, 96);
  P(g, "x.bias", 4);
  P(g, "ok", 2);
  param_default(g, "has_default", 1, (IrDim[]){2}, 1.0f);

  StWriter *wr = st_writer_new();
  float *z = calloc(192 * 64, sizeof *z);
  st_writer_add(wr, "blocks.0.attn.qkv.weight", ST_F32, 2, (int64_t[]){192, 64}, z);
  st_writer_add(wr, "ok", ST_F32, 1, (int64_t[]){2}, z);
  st_writer_add(wr, "extra.weight", ST_F32, 1, (int64_t[]){3}, z);
  free(z);
  IrErr err = {{0}};
  assert_int_equal(st_writer_save(wr, tpath("bad.safetensors"), &err), 0);
  st_writer_free(wr);

  Weights ws;
  assert_int_equal(weights_load(g, tpath("bad.safetensors"), &ws, &err), -1);
  assert_null(ws.data);
  assert_int_equal(ws.cap, 0);
  const char *m = err.msg;
  assert_non_null(strstr(m, "bad.safetensors: checkpoint does not fit the model (1 missing, 1 mismatched, 1 unexpected)"));
  assert_non_null(strstr(m, "\n  missing: x.bias"));
  assert_non_null(strstr(m, "\n  mismatched: blocks.0.attn.qkv.weight: checkpoint has [192, 64], model expects [288, 96]"));
  assert_non_null(strstr(m, "\n  unexpected: extra.weight"));
  assert_null(strstr(m, "has_default"));
  assert_null(strstr(m, "missing: x.bias, ok"));

  /* A symbolic PARAM shape is the model's fault, reported with the rest. */
  P(g, "sym", IR_BATCH, 2);
  assert_int_equal(weights_load(g, tpath("bad.safetensors"), &ws, &err), -1);
  assert_non_null(strstr(err.msg, "sym: model shape [B, 2] is not fixed"));
  assert_int_equal(weights_random(g, 1, &ws, &err), -1);
  assert_non_null(strstr(err.msg, "sym: model shape [B, 2] is not fixed"));
  ir_graph_free(g);
}

static void test_bind_summarised(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("forward");
  char n[128];
  for (int i = 0; i < 60; i++) {
    snprintf(n, sizeof n, "a.rather.long.module.path.number.%02d.weight", i);
    P(g, n, 2);
  }
  for (int i = 0; i < 30; i++) {
    snprintf(n, sizeof n, "mm.%02d", i);
    P(g, n, 3);
  }
  StWriter *wr = st_writer_new();
  float z[4] = {1, 2, 3, 4};
  for (int i = 0; i < 30; i++) {
    snprintf(n, sizeof n, "mm.%02d", i);
    st_writer_add(wr, n, ST_F32, 1, (int64_t[]){4}, z);
  }
  for (int i = 0; i < 45; i++) {
    snprintf(n, sizeof n, "unused.checkpoint.tensor.%02d", i);
    st_writer_add(wr, n, ST_F32, 1, (int64_t[]){1}, z);
  }
  IrErr err = {{0}};
  assert_int_equal(st_writer_save(wr, tpath("many.safetensors"), &err), 0);
  st_writer_free(wr);

  Weights ws;
  assert_int_equal(weights_load(g, tpath("many.safetensors"), &ws, &err), -1);
  const char *m = err.msg;
  assert_true(strlen(m) < sizeof err.msg - 1 || m[strlen(m) - 1] != '.'); /* fits, not cut */
  assert_non_null(strstr(m, "(60 missing, 30 mismatched, 45 unexpected)"));
  assert_non_null(strstr(m, "missing: a.rather.long.module.path.number.00.weight"));
  assert_non_null(strstr(m, "mismatched: mm.00: checkpoint has [4], model expects [3]"));
  assert_non_null(strstr(m, "unexpected: unused.checkpoint.tensor.00"));
  assert_non_null(strstr(m, " more\n  mismatched"));
  assert_non_null(strstr(m, " more\n  unexpected"));
  /* Each list says how many it left out, and the three counts add up. */
  const char *p = strstr(m, "missing: ");
  int shown = 1;
  for (const char *q = p; (q = strstr(q + 1, ", a.rather")) && q < strstr(m, "\n  mismatched"); ) shown++;
  char tail[64];
  snprintf(tail, sizeof tail, "... and %d more", 60 - shown);
  assert_non_null(strstr(m, tail));
  ir_graph_free(g);
}

/* Weights are floating point: an I32 or BOOL tensor is refused by name, not
 * converted (the reader is strict: F32, F16, BF16). */
static void test_bind_integer_dtypes(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("forward");
  P(g, "a.weight", 2);
  P(g, "a.bias", 2);
  P(g, "ok", 2);
  StWriter *wr = st_writer_new();
  int32_t iv[2] = {400000000, 7};
  uint8_t bv[2] = {1, 0};
  float fv[2] = {1, 2};
  st_writer_add(wr, "a.weight", ST_I32, 1, (int64_t[]){2}, iv);
  st_writer_add(wr, "a.bias", ST_BOOL, 1, (int64_t[]){2}, bv);
  st_writer_add(wr, "ok", ST_F32, 1, (int64_t[]){2}, fv);
  IrErr err = {{0}};
  assert_int_equal(st_writer_save(wr, tpath("ints.safetensors"), &err), 0);
  st_writer_free(wr);
  Weights ws;
  assert_int_equal(weights_load(g, tpath("ints.safetensors"), &ws, &err), -1);
  assert_non_null(strstr(err.msg, "a.weight: stored as I32; weights must be F32, F16 or BF16"));
  assert_non_null(strstr(err.msg, "a.bias: stored as BOOL; weights must be F32, F16 or BF16"));
  assert_null(strstr(err.msg, "ok:"));
  ir_graph_free(g);
}

/* A checkpoint already quantised is refused naming the tensor and what is
 * accepted: int8/uint8 levels where a float weight is expected, and the
 * scales and packed levels TorchAO, bitsandbytes and torch.ao put beside the
 * weights; fp8 tensors already at reading. */
static void test_bind_quantised(void **state) {
  (void)state;
  static const struct {
    const char *name;
    StDType dtype;
    const char *msg;
  } cases[] = {
      {"a.weight", ST_I8, "tensor 'a.weight' is I8 where a float weight is expected: a quantised checkpoint"},
      {"a.weight", ST_U8, "tensor 'a.weight' is U8 where a float weight is expected"},
      {"a.weight_scale", ST_F32, "tensor 'a.weight_scale' is a quantisation's scale beside the weights"},
      {"a.scale", ST_F32, "tensor 'a.scale' is a quantisation's scale"},
      {"a.qweight", ST_I32, "tensor 'a.qweight' is a quantisation's qweight"},
      {"a.SCB", ST_F32, "tensor 'a.SCB'"},
      {"a.weight.quant_state.bitsandbytes__nf4", ST_U8, "quant_state"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    IrGraph *g = ir_graph_new("forward");
    P(g, "a.weight", 4);
    P(g, "ok", 2);
    StWriter *wr = st_writer_new();
    float fv[4] = {1, 2, 3, 4};
    int8_t qv[4] = {1, 2, 3, 4};
    int is_w = !strcmp(cases[i].name, "a.weight");
    if (!is_w) st_writer_add(wr, "a.weight", ST_F32, 1, (int64_t[]){4}, fv);
    st_writer_add(wr, cases[i].name, cases[i].dtype, 1, (int64_t[]){cases[i].dtype == ST_F32 || cases[i].dtype == ST_I32 ? 1 : 4},
                  cases[i].dtype == ST_F32 || cases[i].dtype == ST_I32 ? (const void *)fv : (const void *)qv);
    st_writer_add(wr, "ok", ST_F32, 1, (int64_t[]){2}, fv);
    IrErr err = {{0}};
    assert_int_equal(st_writer_save(wr, tpath("quantised.safetensors"), &err), 0);
    st_writer_free(wr);
    Weights ws;
    assert_int_equal(weights_load(g, tpath("quantised.safetensors"), &ws, &err), -1);
    if (!strstr(err.msg, cases[i].msg) || !strstr(err.msg, "F32, F16 or BF16") || !strstr(err.msg, "--quantize"))
      fail_msg("%s: '%s'", cases[i].name, err.msg);
    ir_graph_free(g);
  }
}

/* NaN and infinite weights bind (a checkpoint may hold them on purpose) but
 * are counted, so the command line can warn naming the first tensor. */
static void test_bind_nonfinite(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("forward");
  P(g, "a", 3);
  P(g, "b", 2);
  P(g, "c", 2);
  StWriter *wr = st_writer_new();
  float av[3] = {1, 2, 3}, bv[2] = {NAN, INFINITY}, cv[2] = {-INFINITY, 0};
  st_writer_add(wr, "a", ST_F32, 1, (int64_t[]){3}, av);
  st_writer_add(wr, "b", ST_F32, 1, (int64_t[]){2}, bv);
  st_writer_add(wr, "c", ST_F32, 1, (int64_t[]){2}, cv);
  IrErr err = {{0}};
  assert_int_equal(st_writer_save(wr, tpath("nan.safetensors"), &err), 0);
  st_writer_free(wr);
  Weights ws;
  if (weights_load(g, tpath("nan.safetensors"), &ws, &err)) fail_msg("%s", err.msg);
  assert_int_equal(ws.nonfinite, 3);
  assert_int_equal(ws.nonfinite_tensors, 2);
  assert_string_equal(ws.nonfinite_first, "b");
  weights_free(&ws);
  ir_graph_free(g);
}

/* A diffusers-named checkpoint of 100,000 tensors binds in well under a
 * second (its q/k/v triples are found by hashing; a linear search per tensor
 * took over a minute).  A hang guard, not a benchmark: the bound is 30x what
 * an ASan build needs. */
static void test_bind_many_diffusers_tensors(void **state) {
  (void)state;
  enum { BLOCKS = 33334 };
  /* a raw safetensors file: one F32 value a tensor, tensor i at byte 4 i */
  size_t cap = (size_t)BLOCKS * 3 * 112 + 64, len = 0, data = (size_t)BLOCKS * 3 * 4;
  char *hdr = malloc(cap);
  len += (size_t)snprintf(hdr + len, cap - len, "{");
  for (int b = 0; b < BLOCKS; b++)
    for (int k = 0; k < 3; k++)
      len += (size_t)snprintf(hdr + len, cap - len, "%s\"transformer_blocks.%d.attn1.to_%c.weight\":"
                              "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[%d,%d]}",
                              b || k ? "," : "", b, "qkv"[k], 4 * (3 * b + k), 4 * (3 * b + k) + 4);
  len += (size_t)snprintf(hdr + len, cap - len, "}");
  uint8_t *buf = calloc(1, 8 + len + data);
  uint64_t n = len;
  for (int i = 0; i < 8; i++) buf[i] = (uint8_t)(n >> (8 * i));
  memcpy(buf + 8, hdr, len);
  free(hdr);
  IrErr err = {{0}};
  StFile *f = st_open_memory(buf, 8 + len + data, "many.safetensors", &err);
  if (!f) fail_msg("%s", err.msg);
  IrGraph *g = ir_graph_new("forward");
  P(g, "blocks.0.attn.qkv.weight", 3);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  Weights ws;
  assert_int_equal(weights_bind_file(g, f, &ws, &err), -1); /* the other blocks are unexpected */
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
  assert_non_null(strstr(err.msg, "(0 missing, 0 mismatched, 33333 unexpected)"));
  if (s > 15.0) fail_msg("binding 100,002 tensors took %.1f s", s);
  st_close(f);
  ir_graph_free(g);
  free(buf);
}

/* ---- diffusers naming ---------------------------------------------------------- */

typedef struct {
  StWriter *w;
  int k;
} Filler;

/* Tensor k holds (k+1)*1000 + element index, so every value says where it came from. */
static int add_pattern(Filler *f, const char *name, int rank, const int64_t *shape) {
  int64_t numel = 1;
  for (int i = 0; i < rank; i++) numel *= shape[i];
  float *v = malloc((size_t)numel * sizeof *v);
  int k = f->k++;
  for (int64_t i = 0; i < numel; i++) v[i] = (float)((k + 1) * 1000 + i);
  st_writer_add(f->w, name, ST_F32, rank, shape, v);
  free(v);
  return k;
}

static void expect_pattern(const float *v, int64_t n, int k, int64_t start) {
  for (int64_t i = 0; i < n; i++)
    if (v[i] != (float)((k + 1) * 1000 + start + i))
      fail_msg("element %lld: %g, want source %d element %lld", (long long)i, (double)v[i], k,
               (long long)(start + i));
}

static void test_diffusers(void **state) {
  (void)state;
  const DitCfg cfg = {.depth = 2, .d = 4, .p = 2, .c = 1, .c_out = 2, .classes = 3, .tokens = 4};
  const int64_t D = cfg.d;
  IrGraph *g = dit_graph(&cfg);
  Filler f = {st_writer_new(), 0};
#define S(...) (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]){__VA_ARGS__}
  int k_xw = add_pattern(&f, "pos_embed.proj.weight", S(D, 1, 2, 2));
  int k_xb = add_pattern(&f, "pos_embed.proj.bias", S(D));
  int k_t0w = -1, k_t2b = -1, k_y = -1, k_q = -1, k_k = -1, k_v = -1, k_qb = -1, k_ada1 = -1,
      k_fc2 = -1, k_out = -1, k_po1 = -1, k_po2b = -1;
  char n[160];
  for (int i = 0; i < cfg.depth; i++) {
#define A(suffix, ...) (snprintf(n, sizeof n, "transformer_blocks.%d." suffix, i), add_pattern(&f, n, S(__VA_ARGS__)))
    int a = A("norm1.emb.timestep_embedder.linear_1.weight", D, 256);
    A("norm1.emb.timestep_embedder.linear_1.bias", D);
    A("norm1.emb.timestep_embedder.linear_2.weight", D, D);
    int b = A("norm1.emb.timestep_embedder.linear_2.bias", D);
    int c = A("norm1.emb.class_embedder.embedding_table.weight", cfg.classes + 1, D);
    if (i == 0) k_t0w = a, k_t2b = b, k_y = c;
    A("norm1.linear.weight", 6 * D, D);
    int ab = A("norm1.linear.bias", 6 * D);
    int q = A("attn1.to_q.weight", D, D);
    int kk = A("attn1.to_k.weight", D, D);
    int v = A("attn1.to_v.weight", D, D);
    int qb = A("attn1.to_q.bias", D);
    A("attn1.to_k.bias", D);
    A("attn1.to_v.bias", D);
    A("attn1.to_out.0.weight", D, D);
    int ob = A("attn1.to_out.0.bias", D);
    A("ff.net.0.proj.weight", 4 * D, D);
    A("ff.net.0.proj.bias", 4 * D);
    int fc2 = A("ff.net.2.weight", D, 4 * D);
    A("ff.net.2.bias", D);
#undef A
    if (i == 1) k_q = q, k_k = kk, k_v = v, k_qb = qb, k_ada1 = ab, k_fc2 = fc2, k_out = ob;
  }
  add_pattern(&f, "proj_out_1.weight", S(2 * D, D));
  k_po1 = add_pattern(&f, "proj_out_1.bias", S(2 * D));
  add_pattern(&f, "proj_out_2.weight", S(8, D));
  k_po2b = add_pattern(&f, "proj_out_2.bias", S(8));
  IrErr err = {{0}};
  assert_int_equal(st_writer_save(f.w, tpath("diffusers.safetensors"), &err), 0);
  st_writer_free(f.w);

  Weights ws;
  if (weights_load(g, tpath("diffusers.safetensors"), &ws, &err)) fail_msg("%s", err.msg);
  assert_int_equal(ws.n_params, graph_param_count(g));
  expect_pattern(weights_get(&ws, find_param(g, "x_embedder.proj.weight")), D * 4, k_xw, 0);
  expect_pattern(weights_get(&ws, find_param(g, "x_embedder.proj.bias")), D, k_xb, 0);
  expect_pattern(weights_get(&ws, find_param(g, "t_embedder.mlp.0.weight")), D * 256, k_t0w, 0);
  expect_pattern(weights_get(&ws, find_param(g, "t_embedder.mlp.2.bias")), D, k_t2b, 0);
  expect_pattern(weights_get(&ws, find_param(g, "y_embedder.embedding_table.weight")), 4 * D, k_y, 0);
  const float *qkv = weights_get(&ws, find_param(g, "blocks.1.attn.qkv.weight"));
  expect_pattern(qkv, D * D, k_q, 0);
  expect_pattern(qkv + D * D, D * D, k_k, 0);
  expect_pattern(qkv + 2 * D * D, D * D, k_v, 0);
  const float *qkvb = weights_get(&ws, find_param(g, "blocks.1.attn.qkv.bias"));
  expect_pattern(qkvb, D, k_qb, 0);
  expect_pattern(qkvb + D, D, k_qb + 1, 0);
  expect_pattern(qkvb + 2 * D, D, k_qb + 2, 0);
  expect_pattern(weights_get(&ws, find_param(g, "blocks.1.adaLN_modulation.1.bias")), 6 * D, k_ada1, 0);
  expect_pattern(weights_get(&ws, find_param(g, "blocks.1.mlp.fc2.weight")), 4 * D * D, k_fc2, 0);
  expect_pattern(weights_get(&ws, find_param(g, "blocks.1.attn.proj.bias")), D, k_out, 0);
  expect_pattern(weights_get(&ws, find_param(g, "final_layer.adaLN_modulation.1.bias")), 2 * D, k_po1, 0);
  expect_pattern(weights_get(&ws, find_param(g, "final_layer.linear.bias")), 8, k_po2b, 0);
  const float *pe = weights_get(&ws, find_param(g, "pos_embed")); /* default */
  assert_true(pe[0] == 0.5f && pe[15] == 15.5f);
  weights_free(&ws);

  /* Block 1 without to_v: its qkv is missing, the parts it has are unexpected. */
  f = (Filler){st_writer_new(), 0};
  add_pattern(&f, "transformer_blocks.1.attn1.to_q.weight", S(D, D));
  add_pattern(&f, "transformer_blocks.1.attn1.to_k.weight", S(D, D));
  add_pattern(&f, "transformer_blocks.0.attn1.to_q.weight", S(D, D));
  add_pattern(&f, "transformer_blocks.0.attn1.to_k.weight", S(D, D));
  add_pattern(&f, "transformer_blocks.0.attn1.to_v.weight", S(D + 1, D + 1));
  add_pattern(&f, "proj_out_2.weight", S(9, D));
#undef S
  assert_int_equal(st_writer_save(f.w, tpath("diffusers_bad.safetensors"), &err), 0);
  st_writer_free(f.w);
  assert_int_equal(weights_load(g, tpath("diffusers_bad.safetensors"), &ws, &err), -1);
  const char *m = err.msg;
  assert_non_null(strstr(m, "blocks.1.attn.qkv.weight"));
  assert_non_null(strstr(m, "unexpected: transformer_blocks.1.attn1.to_k.weight, transformer_blocks.1.attn1.to_q.weight"));
  assert_non_null(strstr(m, "transformer_blocks.0.attn1.to_{q,k,v}.weight: to_q/to_k/to_v shapes [4, 4], [4, 4], [5, 5] cannot be stacked"));
  assert_non_null(strstr(m, "final_layer.linear.weight: checkpoint has [9, 4], model expects [8, 4]"));
  ir_graph_free(g);
}

/* ---- shared reference checkpoints ------------------------------------------------- */


static void bind_reference(const char *file, const DitCfg *cfg, int64_t want_params) {
  char path[1200];
  snprintf(path, sizeof path, "%s/%s", tu_shared_dir(), file);
  IrGraph *g = dit_graph(cfg);
  Weights ws;
  IrErr err = {{0}};
  if (weights_load(g, path, &ws, &err)) fail_msg("%s", err.msg);
  if (want_params >= 0) assert_int_equal(ws.n_params, want_params);
  /* The stored pos_embed replaced the default: its first row is sin 0 / cos 1. */
  const float *pe = weights_get(&ws, find_param(g, "pos_embed"));
  assert_true(pe[0] == 0.0f && pe[cfg->d / 4] == 1.0f);
  /* Every tensor is non-zero (the reference's initialisation was overridden). */
  IrNode **ps;
  int np = ir_graph_params(g, &ps);
  for (int i = 0; i < np; i++) {
    const float *v = weights_get(&ws, ps[i]);
    int64_t n = ir_shape_numel(&ps[i]->shape, 1), nz = 0;
    for (int64_t j = 0; j < n; j++) nz += v[j] != 0.0f;
    if (!nz) fail_msg("%s: %s is all zero", file, ps[i]->name);
  }
  weights_free(&ws);

  /* One block too many: the model's extra block is missing. */
  DitCfg deeper = *cfg;
  deeper.depth++;
  IrGraph *g2 = dit_graph(&deeper);
  assert_int_equal(weights_load(g2, path, &ws, &err), -1);
  char want[128];
  snprintf(want, sizeof want, "(10 missing, 0 mismatched, 0 unexpected)\n  missing: blocks.%d.", cfg->depth);
  assert_non_null(strstr(err.msg, want));
  ir_graph_free(g2);
  ir_graph_free(g);
}

static void test_shared_reference(void **state) {
  (void)state;
  char probe[1200];
  snprintf(probe, sizeof probe, "%s/reference/dit-tiny-p2.weights.safetensors", tu_shared_dir() ? tu_shared_dir() : "");
  if (!tu_shared_dir() || access(probe, R_OK)) {
    TU_SKIP("the shared reference checkpoints not found");
  }
  /* Parameter counts computed independently from the configurations. */
  const DitCfg p2 = {.depth = 2, .d = 64, .p = 2, .c = 4, .c_out = 8, .classes = 10, .tokens = 64};
  int64_t D = 64;
  int64_t per_block = 3 * D * D + 3 * D + D * D + D + 8 * D * D + 4 * D + D + 6 * D * D + 6 * D;
  int64_t p2_params = 64 * D + D * 16 + D + D * 256 + D + D * D + D + 11 * D + 2 * per_block +
                      32 * D + 32 + 2 * D * D + 2 * D;
  bind_reference("reference/dit-tiny-p2.weights.safetensors", &p2, p2_params);
  const DitCfg p4 = {.depth = 3, .d = 96, .p = 4, .c = 4, .c_out = 4, .classes = 10, .tokens = 16};
  D = 96;
  per_block = 3 * D * D + 3 * D + D * D + D + 8 * D * D + 4 * D + D + 6 * D * D + 6 * D;
  int64_t p4_params = 16 * D + D * 64 + D + D * 256 + D + D * D + D + 11 * D + 3 * per_block +
                      64 * D + 64 + 2 * D * D + 2 * D;
  bind_reference("reference/dit-tiny-p4-eps.weights.safetensors", &p4, p4_params); /* stored F16 */
  const DitCfg digits = {.depth = 4, .d = 128, .p = 2, .c = 1, .c_out = 2, .classes = 10, .tokens = 64};
  snprintf(probe, sizeof probe, "%s/models/dit-digits.weights.safetensors", tu_shared_dir());
  if (!access(probe, R_OK)) bind_reference("models/dit-digits.weights.safetensors", &digits, -1);
}

/* ---- random weights ------------------------------------------------------------ */

static void test_random(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("forward");
  IrNode *big = P(g, "blocks.0.mlp.fc1.weight", 256, 64);
  IrNode *bias = P(g, "blocks.0.mlp.fc1.bias", 256);
  IrNode *one = P(g, "scalar_like", 1);
  IrNode *def = param_default(g, "pos_embed", 3, (IrDim[]){1, 2, 2}, -3.0f);
  IrErr err = {{0}};
  Weights a, b, c;
  assert_int_equal(weights_random(g, 42, &a, &err), 0);
  assert_int_equal(weights_random(g, 42, &b, &err), 0);
  assert_int_equal(weights_random(g, 43, &c, &err), 0);
  assert_int_equal(a.n_params, 256 * 64 + 256 + 1 + 4);
  assert_int_equal(a.cap, g->next_id);
  IrNode *nodes[3] = {big, bias, one};
  for (int i = 0; i < 3; i++) {
    int64_t n = ir_shape_numel(&nodes[i]->shape, 1);
    const float *va = weights_get(&a, nodes[i]), *vb = weights_get(&b, nodes[i]), *vc = weights_get(&c, nodes[i]);
    assert_memory_equal(va, vb, (size_t)n * sizeof *va);          /* deterministic */
    assert_memory_not_equal(va, vc, (size_t)n * sizeof *va);      /* seed matters */
    for (int64_t j = 0; j < n; j++) {
      if (va[j] == 0.0f || !isfinite(va[j])) fail_msg("%s[%lld] = %g", nodes[i]->name, (long long)j, (double)va[j]);
    }
  }
  /* Different tensors get different streams. */
  assert_memory_not_equal(weights_get(&a, big), weights_get(&a, bias), 256 * sizeof(float));
  /* N(0, 0.02): 16384 samples pin the mean and std down to a few percent. */
  const float *v = weights_get(&a, big);
  double s = 0, s2 = 0;
  for (int j = 0; j < 256 * 64; j++) s += v[j], s2 += (double)v[j] * v[j];
  double mean = s / (256 * 64), sd = sqrt(s2 / (256 * 64) - mean * mean);
  assert_true(fabs(mean) < 0.001);
  assert_true(fabs(sd - 0.02) < 0.001);
  /* Defaults are used as given. */
  const float *pd = weights_get(&a, def);
  for (int j = 0; j < 4; j++) assert_true(pd[j] == -3.0f + (float)j);
  weights_free(&b);
  weights_free(&c);

  /* Adding a parameter does not change the others. */
  P(g, "another", 5);
  assert_int_equal(weights_random(g, 42, &b, &err), 0);
  assert_memory_equal(weights_get(&a, big), weights_get(&b, big), 256 * 64 * sizeof(float));
  weights_free(&b);

  /* Specs. */
  assert_int_equal(weights_open(g, "random:42", &b, &err), 0);
  assert_memory_equal(weights_get(&a, big), weights_get(&b, big), 256 * 64 * sizeof(float));
  weights_free(&b);
  assert_int_equal(weights_open(g, "random", &b, &err), 0);
  assert_int_equal(weights_random(g, 0, &c, &err), 0);
  assert_memory_equal(weights_get(&c, big), weights_get(&b, big), 256 * 64 * sizeof(float));
  weights_free(&b);
  weights_free(&c);
  assert_int_equal(weights_open(g, "random:18446744073709551615", &b, &err), 0);
  weights_free(&b);
  const char *bad[] = {"random:", "random:abc", "random:-1", "random:12x", "random: 3",
                       "random:18446744073709551616"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    if (weights_open(g, bad[i], &b, &err) != -1) fail_msg("'%s' accepted", bad[i]);
    assert_non_null(strstr(err.msg, "bad seed"));
    assert_null(b.data);
  }
  assert_int_equal(weights_open(g, tpath("no-such-file.safetensors"), &b, &err), -1);
  assert_non_null(strstr(err.msg, "cannot open"));
  weights_free(&a);
  ir_graph_free(g);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bind_exact),
      cmocka_unit_test(test_bind_problems),
      cmocka_unit_test(test_bind_summarised),
      cmocka_unit_test(test_bind_quantised),
      cmocka_unit_test(test_bind_integer_dtypes),
      cmocka_unit_test(test_bind_nonfinite),
      cmocka_unit_test(test_bind_many_diffusers_tensors),
      cmocka_unit_test(test_diffusers),
      cmocka_unit_test(test_shared_reference),
      cmocka_unit_test(test_random),
  };
  return tu_run_group(tests, setup, teardown);
}
