/*
 * backend_emu.c - the emulated device backend: runs a CgPlan on the CPU.
 *
 * prepare() compiles the plan's source through the emulator (codegen/emu.h;
 * the emulator caches modules by source text, so preparing forward and
 * forward_with_cfg of one pack compiles each once), checks every kernel is
 * there, and allocates the activation arena (64-byte aligned, zeroed).  The
 * weights blob is used in place when it is 64-byte aligned (a mapped pack),
 * copied otherwise.  run() writes the inputs into the arena in their stored
 * dtype, runs the steps in order - kernels through emu_launch with the one
 * DitcArgs argument, GEMMs through cg_gemm_ref - checks the status word and
 * reads the outputs back.  sample() runs rt_sample_loop with the sampler
 * kernels (codegen/sampler_kernel.h) on buffers of its own next to the
 * arena, exactly the launches the CUDA backend makes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/backend.h"
#include "codegen/emu.h"
#include "ir/fileio.h"

typedef struct {
  const CgPlan *plan;
  EmuModule *mod;
  char *act;
  const char *w;
  void *w_copy;
} Emu;

static int emu_supports(const RtBackend *b, IrOp op) {
  (void)b;
  return op != IR_OP_COUNT; /* the code generator reports what it cannot lower, by node */
}

static void emu_release(Emu *e) {
  if (!e) return;
  free(e->act);
  free(e->w_copy);
  free(e);
}

static void *alloc64(int64_t n) {
  size_t sz = ((size_t)(n > 0 ? n : 1) + 63) / 64 * 64;
  void *p = aligned_alloc(64, sz);
  if (!p) fio_oom(sz);
  memset(p, 0, sz);
  return p;
}

static int emu_prepare(RtBackend *b, const RtModel *m, IrErr *err) {
  const CgPlan *p = m->plan;
  if (!p) return ir_errf(err, "the emu backend runs an execution plan");
  if (p->weights_bytes && !m->blob) return ir_errf(err, "emu backend: the plan needs a weights blob");
  emu_release(b->impl);
  b->impl = NULL;
  char name[128];
  snprintf(name, sizeof name, "ditc plan %s", p->entry);
  EmuModule *mod = emu_module_load(p->source, name, err);
  if (!mod) return -1;
  for (int k = 0; k < p->n_kernels; k++)
    if (!emu_module_has_kernel(mod, p->kernels[k].name))
      return ir_errf(err, "emu backend: the plan's source has no kernel '%s'", p->kernels[k].name);
  Emu *e = xcalloc(1, sizeof *e);
  e->plan = p;
  e->mod = mod;
  e->act = alloc64(p->arena_bytes);
  if (((uintptr_t)m->blob & 63) == 0) {
    e->w = m->blob;
  } else {
    e->w_copy = alloc64(p->weights_bytes);
    memcpy(e->w_copy, m->blob, (size_t)p->weights_bytes);
    e->w = e->w_copy;
  }
  b->impl = e;
  return 0;
}

/* Step s of the plan on the arena as it stands. */
static int emu_step(Emu *e, int s, IrErr *err) {
  const CgPlan *p = e->plan;
  DitcArgs args = {.act = e->act, .w = e->w};
  void *argv[] = {&args};
  const CgStep *st = &p->steps[s];
  if (st->kind == CG_STEP_GEMM) {
    cg_gemm_ref(&st->gemm, e->act, e->w);
    return 0;
  }
  const CgKernel *k = &p->kernels[st->kernel];
  cg_step_args(st, &args);
  EmuDim3 grid = {st->grid[0], st->grid[1], st->grid[2]}, block = {st->block[0], st->block[1], st->block[2]};
  IrErr why;
  if (emu_launch(e->mod, k->name, grid, block, st->shared_bytes, argv, &why))
    return ir_errf(err, "emu: step %d, kernel %s (%s): %s", s, k->name, st->what, why.msg);
  return 0;
}

/* The plan's steps, in order, on the arena as it stands. */
static int emu_forward(Emu *e, IrErr *err) {
  for (int s = 0; s < e->plan->n_steps; s++)
    if (emu_step(e, s, err)) return -1;
  return 0;
}

/* backend.h: locate, the steps from the arena as it stands (the inputs
 * written), each step's result checked as it is made. */
static int emu_locate_steps(Emu *e, char *where, size_t n, IrErr *err) {
  for (int s = 0; s < e->plan->n_steps; s++) {
    if (emu_step(e, s, err)) return -1;
    if (rt_step_nonfinite(e->plan, s, e->act, 0, where, n)) return 1;
  }
  return 0;
}

static int emu_locate(RtBackend *b, const RtTensor *in, char *where, size_t n, IrErr *err) {
  Emu *e = b->impl;
  if (!e) return ir_errf(err, "emu backend: locate before prepare");
  const CgPlan *p = e->plan;
  for (int i = 0; i < p->n_inputs; i++)
    if (rt_io_put(p, &p->inputs[i], &in[i], e->act + p->inputs[i].offset, err)) return -1;
  return emu_locate_steps(e, where, n, err);
}

static double host_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* backend.h: profile, with the host clock around each step. */
static int emu_profile(RtBackend *b, double *ms, const char **device, IrErr *err) {
  Emu *e = b->impl;
  if (!e) return ir_errf(err, "emu backend: profile before prepare");
  for (int s = 0; s < e->plan->n_steps; s++) {
    double t0 = host_ms();
    if (emu_step(e, s, err)) return -1;
    ms[s] = host_ms() - t0;
  }
  *device = "the emulated device (host clock)";
  return 0;
}

static int emu_run(RtBackend *b, const RtTensor *in, RtTensor *out, IrErr *err) {
  Emu *e = b->impl;
  if (!e) return ir_errf(err, "emu backend: run before prepare");
  const CgPlan *p = e->plan;
  for (int i = 0; i < p->n_inputs; i++)
    if (rt_io_put(p, &p->inputs[i], &in[i], e->act + p->inputs[i].offset, err)) return -1;
  if (emu_forward(e, err)) return -1;
  int64_t so = rt_status_offset(p);
  if (so >= 0) {
    int32_t status;
    memcpy(&status, e->act + so, 4);
    if (rt_status_check(status, err)) return -1;
  }
  for (int i = 0; i < p->n_outputs; i++) out[i] = rt_io_get(&p->outputs[i], e->act + p->outputs[i].offset);
  return 0;
}

/* ---- sampling: the loop of rt_sample_loop on emulated device memory ---------- */

typedef struct {
  Emu *e;
  Emu *c;                     /* step caching: the cached entry (NULL: none) */
  const RtSampleLayout *l;
  const RtSampleRequest *r;
  EmuModule *mod;             /* the sampler kernels */
  float *x, *noise;           /* device-side x and the step's normals */
  int32_t *labels, *sticky;
} EmuSample;

static EmuDim3 grid_for(int64_t threads) {
  EmuDim3 g = {(unsigned)((threads + CG_SAMPLER_BLOCK - 1) / CG_SAMPLER_BLOCK), 1, 1};
  return g;
}

static int emu_sampler_launch(EmuSample *s, const char *kernel, int64_t threads, void *params, IrErr *err) {
  EmuDim3 block = {CG_SAMPLER_BLOCK, 1, 1};
  void *argv[] = {params};
  IrErr why;
  if (emu_launch(s->mod, kernel, grid_for(threads), block, 0, argv, &why))
    return ir_errf(err, "emu: kernel %s: %s", kernel, why.msg);
  return 0;
}

static int es_inputs(void *ctx, const SamplerStep *k, int cached, IrErr *err) {
  EmuSample *s = ctx;
  const RtSampleLayout *l = s->l;
  char *act = cached ? s->c->act : s->e->act;
  const CgIo *x = cached ? l->cx : l->x, *t = cached ? l->ct : l->t, *y = cached ? l->cy : l->y;
  const CgIo *sc = cached ? l->cscale : l->scale;
  CgSamplerInputsParams p = {
      .x_in = act + x->offset, .t_in = act + t->offset, .y_in = (int32_t *)(void *)(act + y->offset),
      .s_in = sc ? act + sc->offset : NULL, .x = s->x, .labels = s->labels, .t = (float)k->t,
      .cfg_scale = s->r->cfg_scale, .rows = s->r->rows, .rows_in = l->rows_in, .img = l->img,
  };
  return emu_sampler_launch(s, CG_SAMPLER_KERNEL_INPUTS, l->rows_in * l->img, &p, err);
}

static int es_forward(void *ctx, int cached, IrErr *err) {
  EmuSample *s = ctx;
  return emu_forward(cached ? s->c : s->e, err);
}

/* The emulated device's memory is the host's: a device-to-device copy. */
static int es_keep(void *ctx, IrErr *err) {
  (void)err;
  EmuSample *s = ctx;
  const RtSampleLayout *l = s->l;
  for (int k = 0; k < l->n_keep; k++)
    memcpy(s->c->act + l->keep_to[k], s->e->act + l->keep_from[k], (size_t)l->keep_bytes[k]);
  return 0;
}

static int es_normal(void *ctx, uint64_t counter, IrErr *err) {
  EmuSample *s = ctx;
  const RtRng *g = s->r->rng;
  CgSamplerNormalParams p = {.out = s->noise, .n = s->l->n, .counter = counter, .key_lo = (uint32_t)g->seed,
                             .key_hi = (uint32_t)(g->seed >> 32)};
  return emu_sampler_launch(s, CG_SAMPLER_KERNEL_NORMAL, (s->l->n + 3) / 4, &p, err);
}

static int es_update(void *ctx, const SamplerStep *k, int cached, RtNoiseKind nk, int64_t replay_at, IrErr *err) {
  EmuSample *s = ctx;
  const RtSampleLayout *l = s->l;
  Emu *e = cached ? s->c : s->e;
  int64_t so = rt_status_offset(e->plan);
  const float *noise = nk == RT_NOISE_RNG ? s->noise : nk == RT_NOISE_REPLAY ? s->r->replay + replay_at : NULL;
  CgSamplerStepParams p = {
      .x = s->x, .model_out = e->act + (cached ? l->cout : l->out)->offset, .noise = noise,
      .status = so >= 0 ? (const int32_t *)(const void *)(e->act + so) : NULL, .sticky = s->sticky,
      .n = l->n, .chw = l->img, .hw = (int64_t)s->r->height * s->r->width,
      .sr = k->sr, .srm1 = k->srm1, .coef1 = k->coef1, .coef2 = k->coef2, .max_log = k->max_log,
      .min_log = k->min_log, .fixed_log = k->fixed_log, .sigma = k->sigma, .sqrt_ab_prev = k->sqrt_ab_prev,
      .dir_coef = k->dir_coef, .ddpm = s->r->kind == SAMPLER_DDPM, .learn_sigma = s->r->learn_sigma,
      .add_noise = nk != RT_NOISE_NONE,
  };
  return emu_sampler_launch(s, CG_SAMPLER_KERNEL_STEP, l->n, &p, err);
}

/* The model's output after a forward pass: NaN or Inf is an error saying
 * which step first made one (the step's inputs again, then step by step). */
static int es_check(void *ctx, const SamplerStep *k, IrErr *err) {
  EmuSample *s = ctx;
  const RtSampleLayout *l = s->l;
  RtTensor out = rt_io_get(l->out, s->e->act + l->out->offset);
  int bad = rt_check_finite("the model's output (emu backend)", out.data, rt_numel(&out), l->img ? rt_numel(&out) / l->rows_in : 0, err);
  rt_tensor_free(&out);
  if (!bad) return 0;
  char where[400];
  IrErr lerr;
  int found = es_inputs(ctx, k, 0, &lerr) ? -1 : emu_locate_steps(s->e, where, sizeof where, &lerr);
  size_t used = strlen(err->msg);
  if (found == 1) snprintf(err->msg + used, sizeof err->msg - used, "; the first to appear: %s", where);
  return -1;
}

static int es_check_x(void *ctx, IrErr *err) {
  EmuSample *s = ctx;
  return rt_check_x(s->x, s->l->n, s->l->img, err);
}

/* The replay tensor is used where it lies: the emulated device's memory is
 * the host's, so "uploading it once" is nothing to do. */
static int emu_sample(RtBackend *b, const RtSampleRequest *r, float *x, IrErr *err) {
  Emu *e = b->impl;
  if (!e) return ir_errf(err, "emu backend: sample before prepare");
  RtSampleLayout l;
  Emu *c = NULL;
  if (r->cached) {
    if (strcmp(r->cached->name, b->name) || !(c = r->cached->impl))
      return ir_errf(err, "emu backend: step caching's cached entry is not a prepared emu backend");
  }
  int rc = c ? rt_sample_layout_cached(e->plan, c->plan, r, &l, err) : rt_sample_layout(e->plan, r, &l, err);
  if (rc) return rc;
  EmuSample s = {.e = e, .c = c, .l = &l, .r = r};
  char *src = cg_sampler_source(&l.types, err);
  rc = -1;
  if (!src || !(s.mod = emu_module_load(src, "ditc sampler kernels", err))) goto out;
  s.x = alloc64(l.n * (int64_t)sizeof(float));
  s.noise = alloc64(l.n * (int64_t)sizeof(float));
  s.labels = alloc64(l.rows_in * (int64_t)sizeof(int32_t));
  s.sticky = alloc64(sizeof(int32_t));
  memcpy(s.x, x, (size_t)l.n * sizeof(float));
  memcpy(s.labels, l.labels, (size_t)l.rows_in * sizeof(int32_t));
  RtSampleOps ops = {es_inputs, es_forward, es_normal, es_update, es_check, es_check_x, es_keep};
  if (rt_sample_loop(r, &l, &ops, &s, err) || rt_status_check(*s.sticky, err)) goto out;
  memcpy(x, s.x, (size_t)l.n * sizeof(float));
  rc = 0;
out:
  free(src);
  free(s.x);
  free(s.noise);
  free(s.labels);
  free(s.sticky);
  rt_sample_layout_free(&l);
  return rc;
}

static void emu_free(RtBackend *b) {
  emu_release(b->impl);
  free(b);
}

RtBackend *rt_backend_emu(void) {
  RtBackend *b = xcalloc(1, sizeof *b);
  *b = (RtBackend){"emu", emu_supports, emu_prepare, emu_run, emu_free, NULL, emu_sample, NULL, emu_profile, emu_locate};
  return b;
}
