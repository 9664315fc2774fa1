/*
 * bench_ref.c - time the reference executor on a DiT built directly in C.
 *
 *   bench_ref [--depth 12] [--hidden 384] [--heads 6] [--input 32] [--patch 2]
 *             [--classes 1000] [--batch 1] [--runs 5]
 *
 * Builds the DiT forward graph (patch embedding, sin-cos timestep embedding,
 * label embedding, adaLN-Zero blocks with attention and a GELU-tanh MLP, final
 * layer, unpatchify) with the IR builders, binds deterministic random weights
 * by hand, and reports the median and best wall time of ref_run over `runs`
 * runs after one warm-up.  Needs no front end and no checkpoint, so the
 * executor's speed can be watched on its own; defaults are DiT-S/2 at 32x32.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/ref.h"

typedef struct {
  IrGraph *g;
  Weights w;
  uint64_t seed;
} Builder;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static float urand(uint64_t *s) {
  *s = *s * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((*s >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

static IrShape shape(int rank, const IrDim *d) { return ir_shape_make(rank, d); }

/* A PARAM with small random values, bound in b->w. */
static IrNode *param(Builder *b, const char *name, int rank, const IrDim *d) {
  IrNode *p = ir_param(b->g, name, IR_F32, shape(rank, d), (IrLoc){0});
  if (p->id >= b->w.cap) {
    int cap = 2 * p->id + 16;
    b->w.data = xrealloc(b->w.data, (size_t)cap * sizeof *b->w.data);
    memset(b->w.data + b->w.cap, 0, (size_t)(cap - b->w.cap) * sizeof *b->w.data);
    b->w.cap = cap;
  }
  int64_t n = ir_shape_numel(&p->shape, 1);
  float *v = xmalloc((size_t)n * sizeof *v);
  for (int64_t i = 0; i < n; i++) v[i] = 0.05f * urand(&b->seed);
  b->w.data[p->id] = v;
  b->w.n_params += n;
  return p;
}

static IrNode *dense(Builder *b, IrNode *x, const char *pre, int in, int out) {
  char wn[128], bn[128];
  snprintf(wn, sizeof wn, "%s.weight", pre);
  snprintf(bn, sizeof bn, "%s.bias", pre);
  return ir_linear(b->g, x, param(b, wn, 2, (IrDim[]){out, in}), param(b, bn, 1, (IrDim[]){out}));
}

/* chunk i of `n` along the last axis of [B, n*D], as [B, 1, D] */
static IrNode *chunk(IrGraph *g, IrNode *m, int i, int d) {
  return ir_reshape(g, ir_slice(g, m, 1, (IrDim)i * d, d), 3, (IrDim[]){IR_BATCH, 1, d});
}

/* LN(x) * (1 + scale) + shift */
static IrNode *modulate(IrGraph *g, IrNode *x, IrNode *shift, IrNode *scale) {
  IrNode *ln = ir_op1f(g, IR_LAYERNORM, x, 1e-6f);
  return ir_bin(g, IR_ADD, ir_bin(g, IR_MUL, ln, ir_op1f(g, IR_ADD_SCALAR, scale, 1.0f)), shift);
}

static IrNode *attention(Builder *b, IrNode *x, const char *pre, int T, int D, int H) {
  IrGraph *g = b->g;
  int hd = D / H;
  char n[128];
  snprintf(n, sizeof n, "%s.qkv", pre);
  IrNode *qkv = dense(b, x, n, D, 3 * D);
  IrNode *p = ir_permute(g, ir_reshape(g, qkv, 5, (IrDim[]){IR_BATCH, T, 3, H, hd}),
                         (int[]){2, 0, 3, 1, 4});
  IrNode *qkv3[3];
  for (int i = 0; i < 3; i++)
    qkv3[i] = ir_reshape(g, ir_slice(g, p, 0, i, 1), 4, (IrDim[]){IR_BATCH, H, T, hd});
  IrNode *s = ir_op1f(g, IR_SCALE, ir_matmul(g, qkv3[0], qkv3[1], 1), 1.0f / sqrtf((float)hd));
  IrNode *o = ir_matmul(g, ir_un(g, IR_SOFTMAX, s), qkv3[2], 0);
  o = ir_reshape(g, ir_permute(g, o, (int[]){0, 2, 1, 3}), 3, (IrDim[]){IR_BATCH, T, D});
  snprintf(n, sizeof n, "%s.proj", pre);
  return dense(b, o, n, D, D);
}

static IrGraph *build_dit(Builder *b, int depth, int D, int H, int S, int P, int ncls) {
  IrGraph *g = b->g = ir_graph_new("forward");
  int C = 4, Cout = 8, G = S / P, T = G * G;
  IrNode *x = ir_input(g, "x", IR_F32, shape(4, (IrDim[]){IR_BATCH, C, S, S}), (IrLoc){0});
  IrNode *t = ir_input(g, "t", IR_F32, shape(1, (IrDim[]){IR_BATCH}), (IrLoc){0});
  IrNode *y = ir_input(g, "y", IR_I32, shape(1, (IrDim[]){IR_BATCH}), (IrLoc){0});

  IrNode *pe[3] = {x, param(b, "x_embedder.proj.weight", 4, (IrDim[]){D, C, P, P}),
                   param(b, "x_embedder.proj.bias", 1, (IrDim[]){D})};
  IrErr err;
  IrNode *h = ir_node_new(g, IR_CONV2D, 3, pe, &(IrAttrs){.stride = P, .groups = 1}, (IrLoc){0}, &err);
  DITC_ASSERT(h);
  h = ir_permute(g, ir_reshape(g, h, 3, (IrDim[]){IR_BATCH, D, T}), (int[]){0, 2, 1});
  h = ir_bin(g, IR_ADD, h, param(b, "pos_embed", 3, (IrDim[]){1, T, D}));

  float freqs[128];
  for (int k = 0; k < 128; k++) freqs[k] = (float)exp(-log(10000.0) * k / 128.0);
  IrNode *f = ir_const(g, IR_F32, shape(1, (IrDim[]){128}), freqs, (IrLoc){0});
  IrNode *arg = ir_bin(g, IR_MUL, ir_reshape(g, t, 2, (IrDim[]){IR_BATCH, 1}), f);
  IrNode *cs[2] = {ir_un(g, IR_COS, arg), ir_un(g, IR_SIN, arg)};
  IrNode *temb = dense(b, ir_concat(g, 2, cs, 1), "t_embedder.mlp.0", 256, D);
  temb = dense(b, ir_un(g, IR_SILU, temb), "t_embedder.mlp.2", D, D);
  IrNode *emb[2] = {param(b, "y_embedder.embedding_table.weight", 2, (IrDim[]){ncls + 1, D}), y};
  IrNode *yemb = ir_node_new(g, IR_EMBEDDING, 2, emb, &(IrAttrs){0}, (IrLoc){0}, &err);
  DITC_ASSERT(yemb);
  IrNode *sc = ir_un(g, IR_SILU, ir_bin(g, IR_ADD, temb, yemb));

  for (int i = 0; i < depth; i++) {
    char pre[64], n[96];
    snprintf(pre, sizeof pre, "blocks.%d", i);
    snprintf(n, sizeof n, "%s.adaLN_modulation.1", pre);
    IrNode *m = dense(b, sc, n, D, 6 * D);
    snprintf(n, sizeof n, "%s.attn", pre);
    IrNode *a = attention(b, modulate(g, h, chunk(g, m, 0, D), chunk(g, m, 1, D)), n, T, D, H);
    h = ir_bin(g, IR_ADD, h, ir_bin(g, IR_MUL, chunk(g, m, 2, D), a));
    IrNode *u = modulate(g, h, chunk(g, m, 3, D), chunk(g, m, 4, D));
    snprintf(n, sizeof n, "%s.mlp.fc1", pre);
    u = ir_un(g, IR_GELU_TANH, dense(b, u, n, D, 4 * D));
    snprintf(n, sizeof n, "%s.mlp.fc2", pre);
    u = dense(b, u, n, 4 * D, D);
    h = ir_bin(g, IR_ADD, h, ir_bin(g, IR_MUL, chunk(g, m, 5, D), u));
  }
  IrNode *m = dense(b, sc, "final_layer.adaLN_modulation.1", D, 2 * D);
  h = modulate(g, h, chunk(g, m, 0, D), chunk(g, m, 1, D));
  h = dense(b, h, "final_layer.linear", D, P * P * Cout);
  h = ir_reshape(g, h, 6, (IrDim[]){IR_BATCH, G, G, P, P, Cout});
  h = ir_permute(g, h, (int[]){0, 5, 1, 3, 2, 4});
  h = ir_reshape(g, h, 4, (IrDim[]){IR_BATCH, Cout, S, S});
  ir_graph_add_output(g, h, "out");
  return g;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  int depth = 12, D = 384, H = 6, S = 32, P = 2, runs = 5, ncls = 1000;
  int64_t batch = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    int v = atoi(argv[i + 1]);
    if (!strcmp(argv[i], "--depth")) depth = v;
    else if (!strcmp(argv[i], "--hidden")) D = v;
    else if (!strcmp(argv[i], "--heads")) H = v;
    else if (!strcmp(argv[i], "--input")) S = v;
    else if (!strcmp(argv[i], "--patch")) P = v;
    else if (!strcmp(argv[i], "--batch")) batch = v;
    else if (!strcmp(argv[i], "--runs")) runs = v;
    else if (!strcmp(argv[i], "--classes")) ncls = v;
    else {
      fprintf(stderr, "bench_ref: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (depth < 0 || D < 1 || H < 1 || D % H || P < 1 || S % P || batch < 1 || runs < 1 || ncls < 1) {
    fprintf(stderr, "bench_ref: bad configuration\n");
    return 2;
  }
  Builder b = {.seed = 42};
  IrGraph *g = build_dit(&b, depth, D, H, S, P, ncls);

  int64_t xs[4] = {batch, 4, S, S};
  RtTensor in[3] = {rt_tensor_new(IR_F32, 4, xs), rt_tensor_new(IR_F32, 1, &batch),
                    rt_tensor_new(IR_I32, 1, &batch)};
  uint64_t s = 7;
  for (int64_t i = 0; i < rt_numel(&in[0]); i++) ((float *)in[0].data)[i] = urand(&s);
  for (int64_t i = 0; i < batch; i++) {
    ((float *)in[1].data)[i] = (float)(37 * i % 1000);
    ((int32_t *)in[2].data)[i] = (int32_t)(11 * i % ncls);
  }

  IrErr err;
  double t0 = now();
  RefExec *e = ref_prepare(g, &b.w, batch, &err);
  if (!e) {
    fprintf(stderr, "bench_ref: %s\n", err.msg);
    return 1;
  }
  double tprep = now() - t0;
  double *times = xmalloc((size_t)runs * sizeof *times);
  double sum = 0;
  for (int r = -1; r < runs; r++) {
    RtTensor out;
    t0 = now();
    if (ref_run(e, in, &out, &err)) {
      fprintf(stderr, "bench_ref: %s\n", err.msg);
      return 1;
    }
    double dt = now() - t0;
    if (r >= 0) times[r] = dt;
    if (r == runs - 1)
      for (int64_t i = 0; i < rt_numel(&out); i++) sum += ((float *)out.data)[i];
    rt_tensor_free(&out);
  }
  qsort(times, (size_t)runs, sizeof *times, cmp_double);
  printf("DiT depth %d hidden %d heads %d input %d patch %d, batch %lld: %d nodes, %.1fM params\n",
         depth, D, H, S, P, (long long)batch, g->n_nodes, (double)b.w.n_params / 1e6);
  printf("prepare %.1f ms; ref_run median %.1f ms, best %.1f ms over %d runs (checksum %.6g)\n",
         tprep * 1e3, times[runs / 2] * 1e3, times[0] * 1e3, runs, sum);

  ref_free(e);
  for (int k = 0; k < 3; k++) rt_tensor_free(&in[k]);
  for (int i = 0; i < b.w.cap; i++) free(b.w.data[i]);
  free(b.w.data);
  free(times);
  ir_graph_free(g);
  return 0;
}
