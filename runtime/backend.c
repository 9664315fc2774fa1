/*
 * backend.c - the backend registry, the reference backend (a thin wrapper
 * around ref.h, so `--backend ref` computes exactly what ref_run does), and
 * the input/output conversions the plan-based backends share.
 */
#include "runtime/backend.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/ref.h"

/* ---- ref ------------------------------------------------------------------- */

static int ref_supports(const RtBackend *b, IrOp op) {
  (void)b, (void)op;
  return 1;
}

static int ref_be_prepare(RtBackend *b, const RtModel *m, IrErr *err) {
  if (!m->graph || !m->weights) return ir_errf(err, "the ref backend runs a model graph, not a plan");
  ref_free(b->impl);
  b->impl = ref_prepare(m->graph, m->weights, m->batch, err);
  return b->impl ? 0 : -1;
}

static int ref_be_run(RtBackend *b, const RtTensor *in, RtTensor *out, IrErr *err) {
  if (!b->impl) return ir_errf(err, "ref backend: run before prepare");
  return ref_run(b->impl, in, out, err);
}

static int ref_be_locate(RtBackend *b, const RtTensor *in, char *where, size_t n, IrErr *err) {
  if (!b->impl) return ir_errf(err, "ref backend: locate before prepare");
  return ref_locate_nonfinite(b->impl, in, where, n, err);
}

static void ref_be_free(RtBackend *b) {
  ref_free(b->impl);
  free(b);
}

RtBackend *rt_backend_ref(void) {
  RtBackend *b = xcalloc(1, sizeof *b);
  *b = (RtBackend){"ref", ref_supports, ref_be_prepare, ref_be_run, ref_be_free, NULL, NULL, NULL, NULL, ref_be_locate};
  return b;
}

RtBackend *rt_backend_new(const char *name, IrErr *err) {
  if (!strcmp(name, "ref")) return rt_backend_ref();
  if (!strcmp(name, "emu")) return rt_backend_emu();
  if (!strcmp(name, "cuda")) return rt_backend_cuda(err);
  ir_errf(err, "unknown backend '%s' (ref, emu or cuda)", name);
  return NULL;
}

/* ---- plan inputs and outputs ------------------------------------------------ */

size_t rt_io_bytes(const CgIo *io) {
  size_t n = ir_dtype_size(io->dtype);
  for (int i = 0; i < io->rank; i++) n *= (size_t)io->shape[i];
  return n;
}

static char *dims(int rank, const int64_t *d, char *buf, size_t n) {
  size_t used = (size_t)snprintf(buf, n, "[");
  for (int i = 0; i < rank && used < n; i++)
    used += (size_t)snprintf(buf + used, n - used, "%s%lld", i ? ", " : "", (long long)d[i]);
  if (used < n) snprintf(buf + used, n - used, "]");
  return buf;
}

int rt_io_put(const CgPlan *p, const CgIo *io, const RtTensor *t, void *dst, IrErr *err) {
  char a[96], b[96];
  int same = t->rank == io->rank;
  for (int i = 0; same && i < t->rank; i++) same = t->shape[i] == io->shape[i];
  if (!same)
    return ir_errf(err, "input '%s' has shape %s; the plan expects %s (it was built for batch %lld)", io->name,
                   dims(t->rank, t->shape, a, sizeof a), dims(io->rank, io->shape, b, sizeof b),
                   (long long)p->batch);
  int64_t n = rt_numel(t);
  if (io->dtype == IR_I32) {
    if (t->dtype != IR_I32) return ir_errf(err, "input '%s' must be integers", io->name);
    memcpy(dst, t->data, (size_t)n * 4);
    return 0;
  }
  if (t->dtype != IR_F32) return ir_errf(err, "input '%s' must be f32", io->name);
  const float *s = t->data;
  uint16_t *h = dst;
  switch (io->dtype) {
  case IR_F32: memcpy(dst, s, (size_t)n * 4); return 0;
  case IR_F16: for (int64_t i = 0; i < n; i++) h[i] = ir_f32_to_f16(s[i]); return 0;
  case IR_BF16: for (int64_t i = 0; i < n; i++) h[i] = ir_f32_to_bf16(s[i]); return 0;
  default: return ir_errf(err, "input '%s': unsupported dtype %s", io->name, ir_dtype_name(io->dtype));
  }
}

RtTensor rt_io_get(const CgIo *io, const void *src) {
  RtTensor t = rt_tensor_new(io->dtype == IR_I32 ? IR_I32 : IR_F32, io->rank, io->shape);
  int64_t n = rt_numel(&t);
  const uint16_t *h = src;
  float *f = t.data;
  switch (io->dtype) {
  case IR_F32:
  case IR_I32: memcpy(t.data, src, (size_t)n * 4); break;
  case IR_F16: for (int64_t i = 0; i < n; i++) f[i] = ir_f16_to_f32(h[i]); break;
  case IR_BF16: for (int64_t i = 0; i < n; i++) f[i] = ir_bf16_to_f32(h[i]); break;
  default: memset(t.data, 0, rt_nbytes(&t)); break; /* i8 outputs do not occur */
  }
  return t;
}

int64_t rt_status_offset(const CgPlan *p) { return p->status_offset; }

int rt_status_check(int32_t s, IrErr *err) {
  if (!s) return 0;
  if (s == CG_STATUS_EMBEDDING_RANGE)
    return ir_errf(err, "an embedding index (a class label) was out of range for its table");
  return ir_errf(err, "the plan's status word reports error bits 0x%x", (unsigned)s);
}

/* ---- sampling on a device ------------------------------------------------------ */

static const CgIo *input_named(const CgPlan *p, const char *name) {
  for (int i = 0; i < p->n_inputs; i++)
    if (!strcmp(p->inputs[i].name, name)) return &p->inputs[i];
  return NULL;
}

static int float_kind(IrDType t) { return t == IR_F32 || t == IR_F16 || t == IR_BF16; }

static int shape_is(const CgIo *io, int rank, const int64_t *shape) {
  if (io->rank != rank) return 0;
  for (int i = 0; i < rank; i++)
    if (io->shape[i] != shape[i]) return 0;
  return 1;
}

int rt_sample_layout(const CgPlan *p, const RtSampleRequest *r, RtSampleLayout *l, IrErr *err) {
  memset(l, 0, sizeof *l);
  const Diffusion *d = r->diffusion;
  if (!d || d->num_steps < 1 || !d->timestep_map) return ir_errf(err, "sampler: the diffusion schedule is not initialised");
  if (r->rows < 1 || r->channels < 1 || r->height < 1 || r->width < 1)
    return ir_errf(err, "sampler: bad sample shape [%lld, %d, %d, %d]", (long long)r->rows, r->channels, r->height,
                   r->width);
  if (r->kind != SAMPLER_DDPM && r->kind != SAMPLER_DDIM)
    return ir_errf(err, "sampler: unknown sampler kind %d", (int)r->kind);
  if (r->kind == SAMPLER_DDIM && !(r->eta >= 0.0)) return ir_errf(err, "sampler: DDIM eta must be >= 0 (got %g)", r->eta);
  if ((r->kind == SAMPLER_DDPM || r->eta > 0.0) && !r->replay && !r->rng)
    return ir_errf(err, "sampler: %s needs a noise source", r->kind == SAMPLER_DDPM ? "DDPM" : "DDIM with eta > 0");
  if (!r->labels) return ir_errf(err, "sampler: no labels");

  l->x = input_named(p, "x"), l->t = input_named(p, "t"), l->y = input_named(p, "y");
  l->scale = input_named(p, "cfg_scale");
  int n_cache_out = 0;
  for (int i = 1; r->cache_interval && i < p->n_outputs; i++) n_cache_out += !strncmp(p->outputs[i].name, "cache.", 6);
  if (!l->x || !l->t || !l->y || !r->cfg != !l->scale || p->n_inputs != (r->cfg ? 4 : 3) ||
      p->n_outputs != 1 + n_cache_out) {
    ir_errf(err, "plan %s does not take exactly x, t, y%s and give one output", p->entry, r->cfg ? ", cfg_scale" : "");
    return RT_SAMPLE_UNSUPPORTED;
  }
  l->out = &p->outputs[0];
  l->rows_in = r->cfg ? 2 * r->rows : r->rows;
  l->img = (int64_t)r->channels * r->height * r->width;
  l->n = r->rows * l->img;
  int64_t xs[4] = {l->rows_in, r->channels, r->height, r->width};
  int64_t os[4] = {l->rows_in, (r->learn_sigma ? 2 : 1) * r->channels, r->height, r->width};
  if (!shape_is(l->x, 4, xs) || !shape_is(l->t, 1, xs) || !shape_is(l->y, 1, xs) ||
      (l->scale && !shape_is(l->scale, 0, xs)) || !shape_is(l->out, 4, os))
    return ir_errf(err, "plan %s (batch %lld) does not fit %lld samples of [%d, %d, %d]%s", p->entry,
                   (long long)p->batch, (long long)r->rows, r->channels, r->height, r->width,
                   r->cfg ? " with guidance" : "");
  if (!float_kind(l->x->dtype) || !float_kind(l->t->dtype) || l->y->dtype != IR_I32 || !float_kind(l->out->dtype) ||
      (l->scale && l->scale->dtype != l->t->dtype)) {
    ir_errf(err, "plan %s: the sampler kernels do not handle its input/output dtypes", p->entry);
    return RT_SAMPLE_UNSUPPORTED;
  }
  if (r->replay && (r->replay_rows < r->rows || r->replay_steps < d->num_steps))
    return ir_errf(err, "the replayed noise has %lld steps of %lld rows; sampling needs %d steps of %lld",
                   (long long)r->replay_steps, (long long)r->replay_rows, d->num_steps, (long long)r->rows);
  l->types = (CgSamplerTypes){.x = l->x->dtype, .t = l->t->dtype, .out = l->out->dtype};
  l->labels = xmalloc(sizeof *l->labels * (size_t)l->rows_in);
  for (int64_t i = 0; i < l->rows_in; i++) l->labels[i] = i < r->rows ? r->labels[i] : r->null_label;
  return 0;
}

int rt_sample_layout_cached(const CgPlan *p, const CgPlan *c, const RtSampleRequest *r, RtSampleLayout *l,
                            IrErr *err) {
  int rc = rt_sample_layout(p, r, l, err);
  if (rc) return rc;
  l->cx = input_named(c, "x"), l->ct = input_named(c, "t"), l->cy = input_named(c, "y");
  l->cscale = input_named(c, "cfg_scale");
  l->cout = c->n_outputs == 1 ? &c->outputs[0] : NULL;
  int n = p->n_outputs - 1;
  if (!l->cx || !l->ct || !l->cy || !l->cscale != !l->scale || !l->cout || n < 1 ||
      c->n_inputs != (l->scale ? 4 : 3) + n || rt_io_bytes(l->cx) != rt_io_bytes(l->x) ||
      rt_io_bytes(l->cout) != rt_io_bytes(l->out) || l->cx->dtype != l->x->dtype || l->ct->dtype != l->t->dtype ||
      l->cout->dtype != l->out->dtype) {
    rt_sample_layout_free(l);
    return ir_errf(err, "step caching: plan %s's cached entry does not take its full entry's %d kept deltas", p->entry,
                   n);
  }
  l->n_keep = n;
  l->keep_from = xmalloc(sizeof(int64_t) * (size_t)n);
  l->keep_to = xmalloc(sizeof(int64_t) * (size_t)n);
  l->keep_bytes = xmalloc(sizeof(int64_t) * (size_t)n);
  for (int k = 0; k < n; k++) {
    const CgIo *o = &p->outputs[1 + k], *i = input_named(c, o->name);
    if (!i || i->dtype != o->dtype || rt_io_bytes(i) != rt_io_bytes(o)) {
      rt_sample_layout_free(l);
      return ir_errf(err, "step caching: the cached entry has no input like the full entry's output %s", o->name);
    }
    l->keep_from[k] = o->offset, l->keep_to[k] = i->offset, l->keep_bytes[k] = (int64_t)rt_io_bytes(o);
  }
  return 0;
}

void rt_sample_layout_free(RtSampleLayout *l) {
  if (!l) return;
  free(l->keep_from);
  free(l->keep_to);
  free(l->keep_bytes);
  free(l->labels);
  memset(l, 0, sizeof *l);
}

/* Prefix err with the step, as sampler_run does. */
static int sample_step_err(IrErr *err, const char *what, int step, int t) {
  if (!err) return -1;
  char inner[sizeof err->msg];
  memcpy(inner, err->msg, sizeof inner);
  inner[sizeof inner - 1] = '\0';
  return ir_errf(err, "%s failed at sampling step %d (t=%d): %s", what, step, t, inner[0] ? inner : "(no message)");
}

int rt_sample_loop(const RtSampleRequest *r, const RtSampleLayout *l, const RtSampleOps *ops, void *ctx,
                   IrErr *err) {
  const Diffusion *d = r->diffusion;
  const int S = d->num_steps;
  const int noisy = r->kind == SAMPLER_DDPM || r->eta > 0.0;
  /* sampler_run draws a step's noise at every step (the last one's unused),
   * so step s's normals start at block base + s * blocks(n). */
  uint64_t counter = r->rng ? r->rng->counter : 0;
  const int N = r->cache_interval, W = r->cache_warmup;
  for (int i = S - 1; i >= 0; i--) {
    const int step = S - 1 - i;
    const int cached = N > 0 && !sampler_cache_full(step, N, W);
    const int keep = N > 0 && !cached && i > 0 && !sampler_cache_full(step + 1, N, W);
    SamplerStep k;
    sampler_step_coef(d, i, r->eta, &k);
    if (err) err->msg[0] = '\0';
    if (cached && !r->cached) return ir_errf(err, "step caching: no cached entry for step %d", step);
    /* a cached step's output is the final layer's over kept deltas: x is checked after the update */
    if (ops->inputs(ctx, &k, cached, err) || ops->forward(ctx, cached, err) ||
        (!cached && ops->check && ops->check(ctx, &k, err)) || (keep && ops->keep(ctx, err)))
      return sample_step_err(err, "model", step, k.t);
    RtNoiseKind nk = RT_NOISE_NONE;
    int64_t at = 0;
    if (noisy && i != 0) {
      if (r->replay) {
        nk = RT_NOISE_REPLAY;
        at = (int64_t)step * r->replay_rows * l->img;
      } else {
        if (ops->normal(ctx, counter, err)) return sample_step_err(err, "noise source", step, k.t);
        nk = RT_NOISE_RNG;
      }
    }
    counter += rng_blocks(l->n);
    if (ops->update(ctx, &k, cached, nk, at, err) || (ops->check_x && ops->check_x(ctx, err)))
      return sample_step_err(err, "sampler update", step, k.t);
    if (r->progress) r->progress(r->progress_ctx, step + 1, S);
  }
  return 0;
}

/* ---- NaN and Inf ---------------------------------------------------------- */

int rt_check_finite(const char *what, const float *v, int64_t n, int64_t row, IrErr *err) {
  int64_t bad = 0, first = -1;
  for (int64_t i = 0; i < n; i++)
    if (!isfinite(v[i])) bad++, first = first < 0 ? i : first;
  if (!bad) return 0;
  char item[48] = "";
  if (row > 0) snprintf(item, sizeof item, ", item %lld", (long long)(first / row));
  return ir_errf(err, "%s holds %lld NaN or infinite value%s (the first at flat index %lld%s, %g)", what,
                 (long long)bad, bad == 1 ? "" : "s", (long long)first, item, (double)v[first]);
}

int rt_check_x(const float *x, int64_t n, int64_t row, IrErr *err) {
  if (!rt_check_finite("x after the update", x, n, row, err)) return 0;
  size_t used = strlen(err->msg);
  snprintf(err->msg + used, sizeof err->msg - used, "; the model's output was finite (a guidance scale too large?)");
  return -1;
}

int rt_check_outputs(RtBackend *b, const RtTensor *inputs, const RtTensor *outs, int n_out, const char *const *names,
                     IrErr *err) {
  for (int i = 0; i < n_out; i++) {
    char what[160];
    if (names)
      snprintf(what, sizeof what, "output '%s' (%s backend)", names[i], b->name);
    else
      snprintf(what, sizeof what, "the model's output (%s backend)", b->name);
    const RtTensor *t = &outs[i];
    if (t->dtype != IR_F32 || !rt_check_finite(what, t->data, rt_numel(t), t->rank > 1 ? rt_numel(t) / t->shape[0] : 0, err))
      continue;
    char where[400];
    IrErr lerr;
    int found = b->locate ? b->locate(b, inputs, where, sizeof where, &lerr) : 0;
    size_t used = strlen(err->msg);
    if (found == 1)
      snprintf(err->msg + used, sizeof err->msg - used, "; the first to appear: %s", where);
    else if (found < 0)
      snprintf(err->msg + used, sizeof err->msg - used, " (where the first appeared is not known: %s)", lerr.msg);
    return -1;
  }
  return 0;
}

void rt_step_span(const CgStep *st, int64_t *lo, int64_t *hi) {
  *lo = *hi = 0;
  if (st->kind == CG_STEP_GEMM) {
    const CgGemm *g = &st->gemm;
    if (g->d.space != CG_SPACE_ACT || g->m <= 0 || g->n <= 0 || g->batch <= 0) return;
    int64_t es = (int64_t)ir_dtype_size(g->d_dtype);
    *lo = g->d.offset;
    *hi = g->d.offset + ((g->batch - 1) * g->stride_d + (g->m - 1) * g->ldd + g->n) * es;
    return;
  }
  int any = 0;
  for (int k = 0; k < 2; k++) {
    IrDType dt = st->out_dtype[k];
    if (st->out_elems[k] <= 0 || (dt != IR_F32 && dt != IR_F16 && dt != IR_BF16)) continue;
    int64_t a = st->out_offset[k], z = a + st->out_elems[k] * (int64_t)ir_dtype_size(dt);
    if (!any || a < *lo) *lo = a;
    if (!any || z > *hi) *hi = z;
    any = 1;
  }
}

static double value_at(IrDType dt, const char *p, int64_t i) {
  uint16_t h;
  float f;
  if (dt == IR_F32) return memcpy(&f, p + 4 * i, 4), f;
  memcpy(&h, p + 2 * i, 2);
  return dt == IR_F16 ? ir_f16_to_f32(h) : ir_bf16_to_f32(h);
}

/* The first NaN or Inf of n values of dtype dt at p, as flat index; -1 for none. */
static int64_t first_bad(IrDType dt, const char *p, int64_t n, int64_t stride, int64_t rows, int64_t bstride,
                         int64_t batches, double *v) {
  for (int64_t b = 0; b < batches; b++)
    for (int64_t r = 0; r < rows; r++)
      for (int64_t j = 0; j < n; j++)
        if (!isfinite(*v = value_at(dt, p, b * bstride + r * stride + j))) return (b * rows + r) * n + j;
  return -1;
}

int rt_step_nonfinite(const CgPlan *p, int s, const char *mem, int64_t mem_at, char *where, size_t n) {
  const CgStep *st = &p->steps[s];
  double v = 0;
  int64_t at = -1;
  if (st->kind == CG_STEP_GEMM) {
    const CgGemm *g = &st->gemm;
    int64_t lo, hi;
    rt_step_span(st, &lo, &hi);
    if (hi > lo) at = first_bad(g->d_dtype, mem + (lo - mem_at), g->n, g->ldd, g->m, g->stride_d, g->batch, &v);
  } else {
    for (int k = 0; k < 2 && at < 0; k++) {
      IrDType dt = st->out_dtype[k];
      if (st->out_elems[k] > 0 && (dt == IR_F32 || dt == IR_F16 || dt == IR_BF16))
        at = first_bad(dt, mem + (st->out_offset[k] - mem_at), st->out_elems[k], 0, 1, 0, 1, &v);
    }
  }
  if (at < 0) return 0;
  if (st->kind == CG_STEP_GEMM)
    snprintf(where, n, "step %d, a GEMM (%s), value %g at flat index %lld of its result", s, st->what, v, (long long)at);
  else
    snprintf(where, n, "step %d, kernel %s (%s), value %g at flat index %lld of its result", s,
             p->kernels[st->kernel].name, st->what, v, (long long)at);
  return 1;
}

/* ---- weights of a pack ---------------------------------------------------- */

int rt_pack_weights(const CgPack *pk, const CgPackPlan *pp, const char *spec, const void **blob, void **owned,
                    IrErr *err) {
  const CgPlan *p = pp->plan;
  *owned = NULL;
  *blob = NULL;
  if (!spec) {
    if (pp->blob < 0)
      return ir_errf(err, "%s holds no weights: give --weights FILE (or random[:SEED])", pk->path);
    *blob = pk->blobs[pp->blob].data;
    return 0;
  }
  /* A graph of just the parameters, named as in the model: weights_open binds
   * it as it would the whole model (diffusers names, defaults, random). */
  IrGraph *g = ir_graph_new("pack-weights");
  int max_id = -1;
  for (int i = 0; i < p->n_weights; i++)
    if (p->weights[i].param_id > max_id) max_id = p->weights[i].param_id;
  IrNode **by_id = xcalloc((size_t)max_id + 2, sizeof *by_id);
  for (int i = 0; i < p->n_weights; i++) {
    const CgWeight *cw = &p->weights[i];
    if (cw->param_id < 0 || by_id[cw->param_id]) continue;
    IrDim d[IR_MAX_RANK];
    for (int k = 0; k < cw->rank; k++) d[k] = cw->shape[k];
    IrNode *n = ir_param(g, cw->name, IR_F32, ir_shape_make(cw->rank, d), (IrLoc){0});
    n->data = (void *)pp->defaults[i];
    by_id[cw->param_id] = n;
  }
  Weights w = {0}, mapped = {0};
  int rc = -1;
  if (weights_open(g, spec, &w, err)) goto out;
  mapped.cap = max_id + 1;
  mapped.data = xcalloc((size_t)mapped.cap + 1, sizeof *mapped.data);
  for (int id = 0; id <= max_id; id++)
    if (by_id[id]) mapped.data[id] = w.data[by_id[id]->id];
  void *b = xmalloc((size_t)p->weights_bytes + 1);
  if (cg_plan_fill_weights(p, weights_values(&mapped), b, err)) {
    free(b);
    goto out;
  }
  *blob = *owned = b;
  rc = 0;
out:
  free(mapped.data);
  weights_free(&w);
  free(by_id);
  ir_graph_free(g);
  return rc;
}
