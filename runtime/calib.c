/*
 * calib.c - calibration statistics on the reference executor (calib.h):
 * the sampler over ref_run, an observer over the sites the passes find, and
 * the cache file.
 */
#include "runtime/calib.h"

#include <errno.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codegen/cache.h"
#include "ir/fileio.h"
#include "passes/prune.h"
#include "runtime/ref.h"
#include "runtime/ref_internal.h"

/* ---- the statistics ------------------------------------------------------------ */

static double *add_stat(RtCalib *c, const char *name, int64_t n) {
  if (c->n == c->cap) c->stats = xrealloc(c->stats, (size_t)(c->cap = c->cap ? 2 * c->cap : 64) * sizeof *c->stats);
  double *v = xcalloc((size_t)n + 1, sizeof *v);
  c->stats[c->n++] = (PassCalibStat){xstrdup(name), n, v};
  c->pc.n = c->n;
  c->pc.stats = c->stats;
  return v;
}

void rt_calib_free(RtCalib *c) {
  for (int i = 0; i < c->n; i++) {
    free((char *)c->stats[i].name);
    free((double *)c->stats[i].v);
  }
  free(c->stats);
  free(c->about);
  memset(c, 0, sizeof *c);
}

void rt_calib_describe(const RtCalibSettings *s, char *buf, size_t n) {
  char lab[64] = "";
  size_t used = 0;
  for (int i = 0; i < s->n_labels && used < sizeof lab - 8; i++)
    used += (size_t)snprintf(lab + used, sizeof lab - used, "%s%d", i ? "," : "", s->labels[i]);
  if (used >= sizeof lab - 8) snprintf(lab + used, sizeof lab - used, ",...");
  snprintf(buf, n, "%d sample%s, %s %d steps of %d, guidance %g, labels %s, seed %llu", s->samples,
           s->samples == 1 ? "" : "s", s->kind == SAMPLER_DDPM ? "ddpm" : "ddim", s->steps, s->diffusion_steps,
           s->cfg_scale, lab, (unsigned long long)s->seed);
}

/* ---- the observer ---------------------------------------------------------------- */

typedef struct {
  const Weights *w;
  PruneAttn *attn;
  PruneBlock *blk;
  PruneMlp *mlp;
  int n_attn, n_blk, n_mlp;
  /* by node id: 1 + the site a node is the proj / gated mul / act / block mid / block out of, else 0 */
  int *proj_of, *mul_of, *act_of, *mid_of, *out_of;
  double **head_sum; int64_t *head_calls;   /* per attention site */
  double **act_sum; int64_t *act_rows;      /* per MLP site */
  double *delta_sum; int64_t *delta_calls;  /* per block */
  double *absmax;                           /* by node id of a linear over a named PARAM, -1: not one */
  float *merged; int64_t merged_cap, merged_n; int merged_site;  /* proj's input, until the gated mul */
  float *xin; int64_t xin_cap, xin_n; int xin_block;              /* the block's input, until its output */
  float *tmp; int64_t tmp_cap;
} Obs;

static float *keep_copy(float **buf, int64_t *cap, const float *v, int64_t n) {
  if (n > *cap) {
    free(*buf);
    *buf = xmalloc((size_t)(*cap = n) * sizeof **buf);
  }
  memcpy(*buf, v, (size_t)n * sizeof **buf);
  return *buf;
}

/* Site s's heads through proj, times the gate: what each adds to the residual. */
static void head_contrib(Obs *ob, RefExec *e, int s, const IrNode *gate_node) {
  const PruneAttn *a = &ob->attn[s];
  const float *pw = weights_get(ob->w, a->pw);
  int64_t gn, D = a->pw->shape.d[0];
  const float *gate = ref_value(e, gate_node, &gn);
  if (!pw || !gate || ob->merged_site != s || !D || ob->merged_n % a->inner) return;
  int64_t R = ob->merged_n / a->inner, P = R * D, per = 0;
  if (gn != P) {
    if (gn % D || !gn || R % (gn / D)) return;
    per = R / (gn / D); /* rows sharing one gate row */
  }
  if (R * D > ob->tmp_cap) {
    free(ob->tmp);
    ob->tmp = xmalloc((size_t)(ob->tmp_cap = R * D) * sizeof *ob->tmp);
  }
  for (int h = 0; h < a->heads; h++) {
    ref_gemm(1, R, D, a->hd, ob->merged + h * a->hd, a->inner, pw + h * a->hd, a->inner, ob->tmp, D);
    double sum = 0;
#pragma omp parallel for reduction(+ : sum) if (R * D > IR_PAR_MIN)
    for (int64_t r = 0; r < R; r++) {
      const float *g = per ? gate + (r / per) * D : gate + r * D;
      for (int64_t o = 0; o < D; o++) sum += fabs((double)g[o] * ob->tmp[r * D + o]);
    }
    ob->head_sum[s][h] += sum / (double)P;
  }
  ob->head_calls[s]++;
}

static void observe(void *ctx, RefExec *e, const IrNode *nd) {
  Obs *ob = ctx;
  int64_t n;
  int k;
  if (ob->absmax[nd->id] >= 0) {
    const float *x = ref_value(e, nd->in[0], &n);
    double m = ob->absmax[nd->id];
    for (int64_t i = 0; x && i < n; i++) m = fmax(m, fabs((double)x[i]));
    ob->absmax[nd->id] = m;
  }
  if ((k = ob->proj_of[nd->id])) {
    const float *x = ref_value(e, nd->in[0], &n);
    if (x) keep_copy(&ob->merged, &ob->merged_cap, x, n), ob->merged_n = n, ob->merged_site = k - 1;
  }
  if ((k = ob->mul_of[nd->id])) head_contrib(ob, e, ob->blk[k - 1].attn, ob->blk[k - 1].gate);
  if ((k = ob->act_of[nd->id])) {
    const float *v = ref_value(e, nd, &n);
    int64_t h = ob->mlp[k - 1].hidden, rows = h ? n / h : 0;
    double *sum = ob->act_sum[k - 1];
#pragma omp parallel for if (n > IR_PAR_MIN)
    for (int64_t j = 0; j < h; j++) {
      double s = 0;
      for (int64_t r = 0; v && r < rows; r++) s += fabs((double)v[r * h + j]);
      sum[j] += s;
    }
    ob->act_rows[k - 1] += rows;
  }
  if ((k = ob->out_of[nd->id]) && ob->xin_block == k - 1) {
    const float *v = ref_value(e, nd, &n);
    double num = 0, den = 0;
    for (int64_t i = 0; v && i < n && n == ob->xin_n; i++) {
      num += fabs((double)v[i] - ob->xin[i]);
      den += fabs((double)ob->xin[i]);
    }
    if (den > 0) {
      ob->delta_sum[k - 1] += num / den;
      ob->delta_calls[k - 1]++;
    }
    ob->xin_block = -1;
  }
  if ((k = ob->mid_of[nd->id])) { /* after out_of: block i's output is block i+1's input */
    const float *x = ref_value(e, ob->blk[k - 1].in, &n);
    if (x) keep_copy(&ob->xin, &ob->xin_cap, x, n), ob->xin_n = n, ob->xin_block = k - 1;
  }
}

/* Does weight w (a parameter, or route-experts' stack of them) read a named parameter? */
static int has_param(const IrNode *w) {
  if (w->op == IR_PARAM) return w->name != NULL;
  for (int i = 0; i < w->n_in; i++)
    if (has_param(w->in[i])) return 1;
  return 0;
}

/* Statistic linear.<p>.absmax at least m, for every named parameter p weight w is made of
 * (a weight read by several linears: the largest). */
static void absmax_stat(RtCalib *c, const IrNode *w, double m) {
  if (w->op != IR_PARAM) {
    for (int i = 0; i < w->n_in; i++) absmax_stat(c, w->in[i], m);
    return;
  }
  if (!w->name) return;
  char name[400];
  snprintf(name, sizeof name, "linear.%s.absmax", w->name);
  double *v = NULL;
  for (int k = 0; k < c->n && !v; k++)
    if (!strcmp(c->stats[k].name, name)) v = (double *)c->stats[k].v;
  if (!v) v = add_stat(c, name, 1);
  v[0] = fmax(v[0], m);
}

static void obs_init(Obs *ob, IrGraph *g, const Weights *w) {
  memset(ob, 0, sizeof *ob);
  ob->w = w;
  ob->n_attn = prune_find_attention(g, &ob->attn);
  ob->n_blk = prune_find_blocks(g, &ob->blk);
  ob->n_mlp = prune_find_mlps(g, &ob->mlp);
  size_t ids = (size_t)g->next_id + 1;
  ob->proj_of = xcalloc(ids, sizeof(int));
  ob->mul_of = xcalloc(ids, sizeof(int));
  ob->act_of = xcalloc(ids, sizeof(int));
  ob->mid_of = xcalloc(ids, sizeof(int));
  ob->out_of = xcalloc(ids, sizeof(int));
  ob->absmax = xmalloc(ids * sizeof(double));
  for (size_t i = 0; i < ids; i++) ob->absmax[i] = -1;
  for (int i = 0; i < g->n_nodes; i++) {
    const IrNode *nd = g->nodes[i];
    if ((nd->op == IR_LINEAR && nd->in[1]->op == IR_PARAM && nd->in[1]->name) ||
        (nd->op == IR_MOE_LINEAR && has_param(nd->in[2])))
      ob->absmax[nd->id] = 0;
  }
  ob->head_sum = xcalloc((size_t)ob->n_attn + 1, sizeof *ob->head_sum);
  ob->head_calls = xcalloc((size_t)ob->n_attn + 1, sizeof *ob->head_calls);
  for (int s = 0; s < ob->n_attn; s++) {
    ob->head_sum[s] = xcalloc((size_t)ob->attn[s].heads, sizeof(double));
    ob->proj_of[ob->attn[s].proj->id] = s + 1;
  }
  ob->act_sum = xcalloc((size_t)ob->n_mlp + 1, sizeof *ob->act_sum);
  ob->act_rows = xcalloc((size_t)ob->n_mlp + 1, sizeof *ob->act_rows);
  for (int s = 0; s < ob->n_mlp; s++) {
    ob->act_sum[s] = xcalloc((size_t)ob->mlp[s].hidden, sizeof(double));
    ob->act_of[ob->mlp[s].act->id] = s + 1;
  }
  ob->delta_sum = xcalloc((size_t)ob->n_blk + 1, sizeof *ob->delta_sum);
  ob->delta_calls = xcalloc((size_t)ob->n_blk + 1, sizeof *ob->delta_calls);
  for (int b = 0; b < ob->n_blk; b++) {
    ob->mul_of[ob->blk[b].mul->id] = b + 1;
    ob->mid_of[ob->blk[b].mid->id] = b + 1;
    ob->out_of[ob->blk[b].out->id] = b + 1;
  }
  ob->merged_site = ob->xin_block = -1;
}

/* The accumulated sums as statistics. */
static void obs_finish(Obs *ob, IrGraph *g, RtCalib *c) {
  char name[400];
  for (int s = 0; s < ob->n_attn; s++) {
    if (!ob->head_calls[s]) continue;
    snprintf(name, sizeof name, "attn.%d.head_out", s);
    double *v = add_stat(c, name, ob->attn[s].heads);
    for (int h = 0; h < ob->attn[s].heads; h++) v[h] = ob->head_sum[s][h] / (double)ob->head_calls[s];
  }
  for (int s = 0; s < ob->n_mlp; s++) {
    if (!ob->act_rows[s]) continue;
    snprintf(name, sizeof name, "mlp.%d.act_abs", s);
    double *v = add_stat(c, name, ob->mlp[s].hidden);
    for (int64_t j = 0; j < ob->mlp[s].hidden; j++) v[j] = ob->act_sum[s][j] / (double)ob->act_rows[s];
  }
  for (int b = 0; b < ob->n_blk; b++) {
    if (!ob->delta_calls[b]) continue;
    snprintf(name, sizeof name, "block.%d.delta", b);
    add_stat(c, name, 1)[0] = ob->delta_sum[b] / (double)ob->delta_calls[b];
  }
  for (int i = 0; i < g->n_nodes; i++) {
    const IrNode *nd = g->nodes[i];
    if (ob->absmax[nd->id] < 0) continue;
    /* a routed MoE's experts: max|xs| over the routed rows, for each expert's parameters */
    absmax_stat(c, nd->in[nd->op == IR_MOE_LINEAR ? 2 : 1], ob->absmax[nd->id]);
  }
}

static void obs_free(Obs *ob) {
  for (int s = 0; s < ob->n_attn; s++) free(ob->head_sum[s]);
  for (int s = 0; s < ob->n_mlp; s++) free(ob->act_sum[s]);
  free(ob->head_sum), free(ob->head_calls), free(ob->act_sum), free(ob->act_rows);
  free(ob->delta_sum), free(ob->delta_calls), free(ob->absmax);
  free(ob->proj_of), free(ob->mul_of), free(ob->act_of), free(ob->mid_of), free(ob->out_of);
  free(ob->attn), free(ob->blk), free(ob->mlp);
  free(ob->merged), free(ob->xin), free(ob->tmp);
}

/* ---- the sampler over the reference executor ------------------------------------ */

typedef struct {
  RefExec *e;
  const RtCalibSettings *s;
  RtTensor in[4];
  int slot_x, slot_t, slot_y, slot_s;
  int64_t img, out_img;
} Model;

static int model_fn(void *ctx, const float *x, const float *t, int64_t rows, float *out, IrErr *err) {
  Model *m = ctx;
  int cfg = m->s->cfg_scale != 1.0;
  int64_t r = cfg ? 2 * rows : rows;
  float *xi = m->in[m->slot_x].data, *ti = m->in[m->slot_t].data;
  int32_t *yi = m->in[m->slot_y].data;
  for (int64_t i = 0; i < r; i++) {
    memcpy(xi + i * m->img, x + (i % rows) * m->img, (size_t)m->img * sizeof *x);
    ti[i] = t[i % rows];
    yi[i] = i < rows ? m->s->labels[i % m->s->n_labels] : m->s->classes;
  }
  if (cfg) *(float *)m->in[m->slot_s].data = (float)m->s->cfg_scale;
  RtTensor res[8] = {{0}};
  if (ref_run(m->e, m->in, res, err)) return -1;
  memcpy(out, res[0].data, (size_t)(rows * m->out_img) * sizeof *out);
  for (int k = 0; k < 8; k++) rt_tensor_free(&res[k]);
  return 0;
}

int rt_calib_run(IrGraph *g, const Weights *w, const RtCalibSettings *s, RtCalib *c, IrErr *err) {
  memset(c, 0, sizeof *c);
  int cfg = s->cfg_scale != 1.0, rc = -1;
  if (s->samples < 1 || s->n_labels < 1 || s->channels < 1 || s->size < 1)
    return ir_errf(err, "calibration needs at least one sample and one label of a class-conditional image model");
  if (g->n_outputs > 8) return ir_errf(err, "calibration: the graph has %d outputs (at most 8)", g->n_outputs);
  Model m = {.s = s, .slot_x = -1, .slot_t = -1, .slot_y = -1, .slot_s = -1};
  m.img = (int64_t)s->channels * s->size * s->size;
  m.out_img = (s->learn_sigma ? 2 : 1) * m.img;
  IrNode **inputs;
  int n_in = ir_graph_inputs(g, &inputs);
  int64_t rows = cfg ? 2 * (int64_t)s->samples : s->samples, shp[4] = {rows, s->channels, s->size, s->size};
  for (int i = 0; i < n_in && i < 4; i++) {
    const char *nm = inputs[i]->name ? inputs[i]->name : "";
    if (!strcmp(nm, "x")) m.slot_x = i, m.in[i] = rt_tensor_new(IR_F32, 4, shp);
    else if (!strcmp(nm, "t")) m.slot_t = i, m.in[i] = rt_tensor_new(IR_F32, 1, shp);
    else if (!strcmp(nm, "y")) m.slot_y = i, m.in[i] = rt_tensor_new(IR_I32, 1, shp);
    else if (!strcmp(nm, "cfg_scale")) m.slot_s = i, m.in[i] = rt_tensor_new(IR_F32, 0, NULL);
  }
  Obs ob;
  Diffusion d = {0};
  float *x = NULL;
  obs_init(&ob, g, w);
  if (n_in != (cfg ? 4 : 3) || m.slot_x < 0 || m.slot_t < 0 || m.slot_y < 0 || (cfg && m.slot_s < 0)) {
    ir_errf(err, "calibration: the model's %s entry must take x, t, y%s", cfg ? "forward_with_cfg" : "forward",
            cfg ? ", cfg_scale" : "");
    goto out;
  }
  if (!(m.e = ref_prepare(g, w, s->samples, err))) goto out;
  ref_set_observer(m.e, observe, &ob);
  if (diffusion_init(&d, s->diffusion_steps, "linear", s->steps, err)) goto out;
  RtRng rng;
  rng_init(&rng, s->seed);
  x = xmalloc((size_t)(s->samples * m.img) * sizeof *x);
  rng_normal(&rng, x, s->samples * m.img);
  SamplerConfig sc = {
      .kind = s->kind, .rows = s->samples, .channels = s->channels, .height = s->size, .width = s->size,
      .learn_sigma = s->learn_sigma, .eta = 0.0, .model = model_fn, .model_ctx = &m,
      .noise = sampler_noise_rng, .noise_ctx = &rng,
  };
  if (sampler_run(&d, &sc, x, err)) goto out;
  obs_finish(&ob, g, c);
  char about[256];
  rt_calib_describe(s, about, sizeof about);
  c->pc.about = c->about = xstrdup(about);
  rc = 0;
out:
  if (rc) rt_calib_free(c);
  free(x);
  diffusion_free(&d);
  ref_free(m.e);
  obs_free(&ob);
  for (int i = 0; i < 4; i++) rt_tensor_free(&m.in[i]);
  return rc;
}

/* ---- the cache ----------------------------------------------------------------------- */

static void hex_of(const unsigned char *b, int n, char *hex) {
  for (int i = 0; i < n; i++) snprintf(hex + 2 * i, 3, "%02x", b[i]);
}

void rt_calib_key(IrGraph *g, const Weights *w, const char *text, char hex[65]) {
  EVP_MD_CTX *h = EVP_MD_CTX_new();
  unsigned char md[32];
  unsigned len = 0;
  if (!h || EVP_DigestInit_ex(h, EVP_sha256(), NULL) != 1) ditc_fatal(__FILE__, __LINE__, "SHA-256 failed");
  EVP_DigestUpdate(h, text, strlen(text) + 1);
  for (int i = 0; i < g->n_nodes; i++) { /* statistics of routed experts since observer 2: not an older file's */
    if (g->nodes[i]->op != IR_MOE_LINEAR) continue;
    EVP_DigestUpdate(h, "observer 2", 11);
    break;
  }
  for (int i = 0; i < g->n_nodes; i++) {
    const IrNode *nd = g->nodes[i];
    const float *v = nd->op == IR_PARAM ? weights_get(w, nd) : NULL;
    if (!v) continue;
    int64_t n = ir_shape_numel(&nd->shape, 1);
    EVP_DigestUpdate(h, nd->name ? nd->name : "", nd->name ? strlen(nd->name) + 1 : 1);
    EVP_DigestUpdate(h, &n, sizeof n);
    EVP_DigestUpdate(h, v, (size_t)n * sizeof *v);
  }
  if (EVP_DigestFinal_ex(h, md, &len) != 1 || len != 32) ditc_fatal(__FILE__, __LINE__, "SHA-256 failed");
  EVP_MD_CTX_free(h);
  hex_of(md, 32, hex);
}

int rt_calib_cache_path(const char *hex, char *buf, size_t n, IrErr *err) {
  char dir[1024];
  if (cg_cache_default_dir(dir, sizeof dir - 8, err)) return -1;
  strcat(dir, "/calib");
  CgCache *cc = cg_cache_open(dir, err); /* creates the directory (and its parents), mode 0700 */
  if (!cc) return -1;
  cg_cache_close(cc);
  if ((size_t)snprintf(buf, n, "%s/%s.txt", dir, hex) >= n) return ir_errf(err, "calibration cache path too long");
  return 0;
}

#define MAGIC "ditc-calib 1"

/* The file's text without its last line ("end <sha256>"). */
static char *body_text(const RtCalib *c, const char *hex) {
  size_t cap = 256, len = 0;
  char *s = xmalloc(cap);
#define PUT(...)                                                                  \
  do {                                                                            \
    int k_ = snprintf(NULL, 0, __VA_ARGS__);                                      \
    if (len + (size_t)k_ + 1 > cap) s = xrealloc(s, cap = 2 * (len + (size_t)k_ + 1)); \
    snprintf(s + len, cap - len, __VA_ARGS__);                                    \
    len += (size_t)k_;                                                            \
  } while (0)
  PUT("%s\nkey %s\nabout %s\nstats %d\n", MAGIC, hex, c->about ? c->about : "", c->n);
  for (int i = 0; i < c->n; i++) {
    PUT("%s %lld", c->stats[i].name, (long long)c->stats[i].n);
    for (int64_t j = 0; j < c->stats[i].n; j++) PUT(" %.17g", c->stats[i].v[j]);
    PUT("\n");
  }
#undef PUT
  return s;
}

static void sha_hex(const char *s, size_t n, char hex[65]) {
  unsigned char md[32];
  unsigned len = 0;
  if (EVP_Digest(s, n, md, &len, EVP_sha256(), NULL) != 1 || len != 32) ditc_fatal(__FILE__, __LINE__, "SHA-256 failed");
  hex_of(md, 32, hex);
}

int rt_calib_store(const RtCalib *c, const char *path, const char *hex, IrErr *err) {
  char *body = body_text(c, hex), sum[65];
  sha_hex(body, strlen(body), sum);
  FioOutOpts oo = {.private_file = 1};
  FioOut *o = fio_out_open(path, &oo, err);
  int rc = -1;
  if (o && !fio_out_printf(o, err, "%send %s\n", body, sum)) {
    rc = fio_out_commit(o, err);
    o = NULL;
  }
  fio_out_abort(o);
  free(body);
  return rc;
}

/* Parse text (checked) into c.  0 or -1. */
static int parse_body(char *text, const char *hex, RtCalib *c) {
  char *save = NULL, *line = strtok_r(text, "\n", &save);
  if (!line || strcmp(line, MAGIC)) return -1;
  line = strtok_r(NULL, "\n", &save);
  if (!line || strncmp(line, "key ", 4) || strcmp(line + 4, hex)) return -1;
  line = strtok_r(NULL, "\n", &save);
  if (!line || strncmp(line, "about ", 6)) return -1;
  c->pc.about = c->about = xstrdup(line + 6);
  line = strtok_r(NULL, "\n", &save);
  int n;
  if (!line || sscanf(line, "stats %d", &n) != 1 || n < 0) return -1;
  for (int i = 0; i < n; i++) {
    if (!(line = strtok_r(NULL, "\n", &save))) return -1;
    char *sp = strchr(line, ' '), *end;
    if (!sp || sp == line) return -1;
    *sp = 0;
    errno = 0;
    long long k = strtoll(sp + 1, &end, 10);
    if (errno || k < 1 || k > (1LL << 30)) return -1;
    double *v = add_stat(c, line, k);
    for (long long j = 0; j < k; j++) {
      char *p = end;
      v[j] = strtod(p, &end);
      if (end == p || !isfinite(v[j])) return -1;
    }
    if (*end) return -1;
  }
  return strtok_r(NULL, "\n", &save) ? -1 : 0;
}

int rt_calib_load(const char *path, const char *hex, RtCalib *c, IrErr *err) {
  memset(c, 0, sizeof *c);
  char *data;
  size_t len;
  if (access(path, F_OK)) return 0;
  if (fio_read_all(path, 1ULL << 31, "calibration cache entry", &data, &len, err)) return -1;
  /* the last line: "end <sha256 of the bytes before it>" */
  char *end = len >= 69 ? data + len - 69 : NULL, sum[65];
  int ok = end && !memcmp(end, "end ", 4) && data[len - 1] == '\n' && memchr(data, 0, len) == NULL;
  if (ok) {
    sha_hex(data, (size_t)(end - data), sum);
    ok = !memcmp(end + 4, sum, 64);
  }
  if (ok) {
    *end = 0;
    ok = !parse_body(data, hex, c);
  }
  free(data);
  if (ok) return 1;
  rt_calib_free(c);
  unlink(path);
  return ir_errf(err, "calibration cache entry %s is corrupt: removed, will recompute", path);
}
