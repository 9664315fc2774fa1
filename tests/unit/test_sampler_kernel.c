/*
 * test_sampler_kernel.c - the sampler's device kernels (codegen/sampler_kernel.h)
 * on the emulator against runtime/sampler.c: the step kernel against
 * sampler_step_apply for DDPM (learned range, fixed large), DDIM (eta 0 and
 * eta > 0) and an f16 model output; the Philox normal kernel against
 * rng_normal, bit for bit; the inputs kernel against rt_io_put's
 * conversions; the emu backend's sample() on a hand-made toy plan against
 * sampler_run over the same backend's run(); and the sources under NVRTC
 * (skipped when NVRTC is not installed).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "testutil.h"
#include "testutil_emu.h"

#include "runtime/backend.h"
#include "codegen/emu.h"
#include "codegen/nvrtc.h"
#include "codegen/sampler_kernel.h"
#include "runtime/sampler.h"

#ifndef DITC_SOURCE_DIR
#define DITC_SOURCE_DIR "."
#endif

/* ---- helpers ------------------------------------------------------------- */

static EmuModule *sampler_module(IrDType x, IrDType t, IrDType out) {
  IrErr err = {{0}};
  CgSamplerTypes ty = {x, t, out};
  char *src = cg_sampler_source(&ty, &err);
  if (!src) fail_msg("%s", err.msg);
  EmuModule *m = emu_module_load(src, "sampler kernels", &err);
  free(src);
  if (!m) fail_msg("%s", err.msg);
  return m;
}

static void launch(EmuModule *m, const char *kernel, int64_t threads, void *params) {
  IrErr err = {{0}};
  void *argv[] = {params};
  EmuDim3 grid = {(unsigned)((threads + CG_SAMPLER_BLOCK - 1) / CG_SAMPLER_BLOCK), 1, 1};
  EmuDim3 block = {CG_SAMPLER_BLOCK, 1, 1};
  if (emu_launch(m, kernel, grid, block, 0, argv, &err)) fail_msg("%s: %s", kernel, err.msg);
}

/* A deterministic spread of values in [lo, hi). */
static void fill(float *v, int64_t n, uint32_t seed, float lo, float hi) {
  uint32_t s = seed * 2654435761u + 12345u;
  for (int64_t i = 0; i < n; i++) {
    s = s * 1664525u + 1013904223u;
    v[i] = lo + (hi - lo) * (float)(s >> 8) * (1.0f / 16777216.0f);
  }
}

static double rel_l2(const float *a, const float *b, int64_t n) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; i++) {
    double d = (double)a[i] - (double)b[i];
    num += d * d;
    den += (double)b[i] * (double)b[i];
  }
  return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* ---- the step kernel ------------------------------------------------------ */

/* One case: rows 3, C 4, hw 25 (n = 300: a partial second block), a model
 * output with 6 rows (the cfg layout: only the first 3 are read), at kept
 * steps S-1, a middle one and 0 (no noise). */
static void check_step(SamplerKind kind, int learn_sigma, double eta, IrDType out_dtype) {
  IrErr err = {{0}};
  Diffusion d;
  assert_int_equal(diffusion_init(&d, 1000, "linear", 10, &err), 0);
  EmuModule *m = sampler_module(IR_F32, IR_F32, out_dtype);
  const int64_t rows = 3, C = 4, hw = 25, chw = C * hw, n = rows * chw;
  const int64_t c_out = learn_sigma ? 2 * C : C, out_n = 2 * rows * c_out * hw;
  float *x = malloc(sizeof(float) * (size_t)n), *xh = malloc(sizeof(float) * (size_t)n);
  float *out = malloc(sizeof(float) * (size_t)out_n), *noise = malloc(sizeof(float) * (size_t)n);
  uint16_t *out16 = malloc(sizeof(uint16_t) * (size_t)out_n);
  int32_t status = 0, sticky = 0;
  const int noisy = kind == SAMPLER_DDPM || eta > 0.0;
  const int steps[] = {9, 4, 0};
  for (size_t s = 0; s < sizeof steps / sizeof *steps; s++) {
    int i = steps[s];
    fill(x, n, (uint32_t)(10 + i), -2.5f, 2.5f);
    fill(out, out_n, (uint32_t)(20 + i), -1.2f, 1.2f);
    fill(noise, n, (uint32_t)(30 + i), -3.0f, 3.0f);
    if (out_dtype != IR_F32) /* the host sees what the kernel loads */
      for (int64_t j = 0; j < out_n; j++) {
        out16[j] = out_dtype == IR_F16 ? ir_f32_to_f16(out[j]) : ir_f32_to_bf16(out[j]);
        out[j] = out_dtype == IR_F16 ? ir_f16_to_f32(out16[j]) : ir_bf16_to_f32(out16[j]);
      }
    memcpy(xh, x, sizeof(float) * (size_t)n);
    SamplerStep k;
    sampler_step_coef(&d, i, eta, &k);
    assert_int_equal(k.i, i);
    assert_int_equal(k.t, d.timestep_map[i]);
    sampler_step_apply(&k, kind, learn_sigma, rows, (int)C, hw, xh, out, noisy ? noise : NULL);
    int add = noisy && i != 0;
    status = (int32_t)s; /* 0, 1, 2: the sticky word collects the bits */
    CgSamplerStepParams p = {
        .x = x, .model_out = out_dtype == IR_F32 ? (const void *)out : (const void *)out16,
        .noise = add ? noise : NULL, .status = &status, .sticky = &sticky, .n = n, .chw = chw, .hw = hw,
        .sr = k.sr, .srm1 = k.srm1, .coef1 = k.coef1, .coef2 = k.coef2, .max_log = k.max_log,
        .min_log = k.min_log, .fixed_log = k.fixed_log, .sigma = k.sigma, .sqrt_ab_prev = k.sqrt_ab_prev,
        .dir_coef = k.dir_coef, .ddpm = kind == SAMPLER_DDPM, .learn_sigma = learn_sigma, .add_noise = add,
    };
    launch(m, CG_SAMPLER_KERNEL_STEP, n, &p);
    double e = rel_l2(x, xh, n);
    if (!(e < 1e-6))
      fail_msg("%s%s eta %g, step %d: relative error %g", kind == SAMPLER_DDPM ? "DDPM" : "DDIM",
               learn_sigma ? " learned" : "", eta, i, e);
    /* the update really moved x: the check can fail */
    float x0[1];
    fill(x0, 1, (uint32_t)(10 + i), -2.5f, 2.5f);
    assert_true(x[0] != x0[0]);
  }
  assert_int_equal(sticky, 3);
  free(x);
  free(xh);
  free(out);
  free(noise);
  free(out16);
  diffusion_free(&d);
}

static void test_step_ddpm_learned(void **state) {
  (void)state;
  check_step(SAMPLER_DDPM, 1, 0.0, IR_F32);
}

static void test_step_ddpm_fixed_large(void **state) {
  (void)state;
  check_step(SAMPLER_DDPM, 0, 0.0, IR_F32);
}

static void test_step_ddim_eta0(void **state) {
  (void)state;
  check_step(SAMPLER_DDIM, 1, 0.0, IR_F32);
  check_step(SAMPLER_DDIM, 0, 0.0, IR_F32);
}

static void test_step_ddim_eta(void **state) {
  (void)state;
  check_step(SAMPLER_DDIM, 0, 0.7, IR_F32);
  check_step(SAMPLER_DDIM, 1, 1.0, IR_F32);
}

static void test_step_half_output(void **state) {
  (void)state;
  check_step(SAMPLER_DDPM, 1, 0.0, IR_F16);
  check_step(SAMPLER_DDIM, 1, 0.0, IR_BF16);
}

/* The coefficients are the ones sampler_run uses: a one-step DDIM at eta 0
 * and a DDPM step computed by hand from the schedule. */
static void test_step_coef(void **state) {
  (void)state;
  IrErr err = {{0}};
  Diffusion d;
  assert_int_equal(diffusion_init(&d, 1000, "linear", 10, &err), 0);
  SamplerStep k;
  sampler_step_coef(&d, 3, 0.5, &k);
  assert_true(k.sr == (float)d.sqrt_recip_alphas_cumprod[3]);
  assert_true(k.coef2 == (float)d.posterior_mean_coef2[3]);
  assert_true(k.fixed_log == (float)log(d.betas[3]));
  float ab = (float)d.alphas_cumprod[3], abp = (float)d.alphas_cumprod_prev[3];
  float sigma = 0.5f * sqrtf((1.0f - abp) / (1.0f - ab)) * sqrtf(1.0f - ab / abp);
  assert_true(k.sigma == sigma);
  assert_true(k.sigma > 0.0f);
  assert_true(k.dir_coef == sqrtf(1.0f - abp - sigma * sigma));
  sampler_step_coef(&d, 0, 0.5, &k);
  assert_true(k.fixed_log == (float)log(d.posterior_variance[1]));
  assert_true(k.ab_prev == 1.0f);
  assert_true(k.sigma == 0.0f);
  diffusion_free(&d);
}

/* ---- the normal generator ---------------------------------------------------- */

static void check_normal(uint64_t seed, uint64_t counter, int64_t n) {
  EmuModule *m = sampler_module(IR_F32, IR_F32, IR_F32);
  float *dev = malloc(sizeof(float) * (size_t)(n + 4)), *host = malloc(sizeof(float) * (size_t)n);
  for (int64_t i = 0; i < n + 4; i++) dev[i] = -12345.0f;
  RtRng r;
  rng_init(&r, seed);
  r.counter = counter;
  rng_normal(&r, host, n);
  assert_true(r.counter == counter + rng_blocks(n));
  CgSamplerNormalParams p = {.out = dev, .n = n, .counter = counter, .key_lo = (uint32_t)seed,
                             .key_hi = (uint32_t)(seed >> 32)};
  launch(m, CG_SAMPLER_KERNEL_NORMAL, (n + 3) / 4, &p);
  for (int64_t i = 0; i < n; i++)
    if (memcmp(&dev[i], &host[i], sizeof(float)))
      fail_msg("seed %llu counter %llu: normal %lld is %.9g on the device, %.9g from rng_normal",
               (unsigned long long)seed, (unsigned long long)counter, (long long)i, dev[i], host[i]);
  for (int i = 0; i < 4; i++) assert_true(dev[n + i] == -12345.0f); /* nothing past n */
  free(dev);
  free(host);
}

static void test_normal_matches_rng(void **state) {
  (void)state;
  check_normal(3, 0, 1024);
  check_normal(3, 256, 1001);
  check_normal(0xdeadbeefcafef00dull, 7, 3);
  check_normal(42, 0xfffffff0ull, 300); /* the counter carries into its high word */
}

/* ---- the inputs kernel -------------------------------------------------------- */

static void test_inputs_kernel(void **state) {
  (void)state;
  IrErr err = {{0}};
  CgSamplerTypes bad = {IR_I32, IR_F32, IR_F32};
  assert_null(cg_sampler_source(&bad, &err));
  assert_non_null(strstr(err.msg, "unsupported"));
  EmuModule *m = sampler_module(IR_F16, IR_BF16, IR_F32);
  enum { ROWS = 2, ROWS_IN = 4, IMG = 10 };
  float x[ROWS * IMG];
  fill(x, ROWS * IMG, 7, -3.0f, 3.0f);
  uint16_t x_in[ROWS_IN * IMG], t_in[ROWS_IN], s_in = 0;
  int32_t y_in[ROWS_IN], labels[ROWS_IN] = {3, 5, 10, 10};
  memset(x_in, 0, sizeof x_in);
  CgSamplerInputsParams p = {.x_in = x_in, .t_in = t_in, .y_in = y_in, .s_in = &s_in, .x = x, .labels = labels,
                             .t = 999.0f, .cfg_scale = 4.5f, .rows = ROWS, .rows_in = ROWS_IN, .img = IMG};
  launch(m, CG_SAMPLER_KERNEL_INPUTS, ROWS_IN * IMG, &p);
  for (int r = 0; r < ROWS_IN; r++) {
    for (int q = 0; q < IMG; q++) assert_int_equal(x_in[r * IMG + q], ir_f32_to_f16(x[(r % ROWS) * IMG + q]));
    assert_int_equal(t_in[r], ir_f32_to_bf16(999.0f));
    assert_int_equal(y_in[r], labels[r]);
  }
  assert_int_equal(s_in, ir_f32_to_bf16(4.5f));
}

/* ---- the emu backend's sample() on a toy plan ----------------------------------- */

/* A toy "DiT": inputs x [R, C, H, W], t [R], y [R] (and cfg_scale), one
 * output [R, C_out, H, W] with eps = 0.3 x + 5e-4 t + 0.01 y + 0.02 s and,
 * with learn_sigma, v = 0.2 x - 0.1.  Its first step zeroes the status word,
 * the second sets bit 1 for a label above 10 (10 is the null class). */
typedef struct {
  CgPlan plan;
  char source[4096];
  CgIo io[5];
  CgKernel kernels[2];
  CgStep steps[2];
} Toy;

static void toy_init(Toy *toy, int64_t rows, int C, int H, int W, int learn_sigma, int cfg) {
  memset(toy, 0, sizeof *toy);
  int64_t rin = cfg ? 2 * rows : rows, img = (int64_t)C * H * W, c_out = learn_sigma ? 2 * C : C;
  int64_t off_x = 0, off_t = off_x + rin * img * 4, off_y = off_t + rin * 4, off_s = off_y + rin * 4;
  int64_t off_out = off_s + 64, off_st = off_out + rin * c_out * H * W * 4;
  snprintf(toy->source, sizeof toy->source,
           "typedef struct { char *act; const char *w; } DitcArgs;\n"
           "DITC_KERNEL(k_zero, DitcArgs, p) { *(int32_t *)(p.act + %lld) = 0; }\n"
           "DITC_KERNEL(k_toy, DitcArgs, p) {\n"
           "  int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;\n"
           "  if (e >= %lld) return;\n"
           "  const float *x = (const float *)(p.act + %lld), *t = (const float *)(p.act + %lld);\n"
           "  const int32_t *y = (const int32_t *)(p.act + %lld);\n"
           "  float s = %d ? *(const float *)(p.act + %lld) : 0.0f;\n"
           "  float *out = (float *)(p.act + %lld);\n"
           "  int64_t r = e / %lld, q = e %% %lld;\n"
           "  out[r * %lld + q] = 0.3f * x[e] + 0.0005f * t[r] + 0.01f * (float)y[r] + 0.02f * s;\n"
           "  if (%d) out[r * %lld + %lld + q] = 0.2f * x[e] - 0.1f;\n"
           "  if (q == 0 && y[r] > 10) *(int32_t *)(p.act + %lld) = 1;\n"
           "}\n",
           (long long)off_st, (long long)(rin * img), (long long)off_x, (long long)off_t, (long long)off_y,
           cfg, (long long)off_s, (long long)off_out, (long long)img, (long long)img,
           (long long)(c_out * H * W), learn_sigma, (long long)(c_out * H * W), (long long)img, (long long)off_st);
  CgPlan *p = &toy->plan;
  p->entry = cfg ? "forward_with_cfg" : "forward";
  p->precision = IR_F32;
  p->batch = rows;
  p->source = toy->source;
  toy->kernels[0] = (CgKernel){"k_zero", "status"};
  toy->kernels[1] = (CgKernel){"k_toy", "toy"};
  p->kernels = toy->kernels;
  p->n_kernels = 2;
  toy->steps[0] = (CgStep){.kind = CG_STEP_KERNEL, .what = "zero", .kernel = 0, .grid = {1, 1, 1}, .block = {1, 1, 1}};
  toy->steps[1] = (CgStep){.kind = CG_STEP_KERNEL, .what = "toy", .kernel = 1,
                           .grid = {(uint32_t)((rin * img + 127) / 128), 1, 1}, .block = {128, 1, 1}};
  p->steps = toy->steps;
  p->n_steps = 2;
  p->arena_bytes = off_st + 64;
  toy->io[0] = (CgIo){.name = "x", .dtype = IR_F32, .rank = 4, .shape = {rin, C, H, W}, .offset = off_x};
  toy->io[1] = (CgIo){.name = "t", .dtype = IR_F32, .rank = 1, .shape = {rin}, .offset = off_t};
  toy->io[2] = (CgIo){.name = "y", .dtype = IR_I32, .rank = 1, .shape = {rin}, .offset = off_y};
  toy->io[3] = (CgIo){.name = "cfg_scale", .dtype = IR_F32, .rank = 0, .offset = off_s};
  toy->io[4] = (CgIo){.name = "out", .dtype = IR_F32, .rank = 4, .shape = {rin, c_out, H, W}, .offset = off_out};
  p->inputs = toy->io;
  p->n_inputs = cfg ? 4 : 3;
  p->outputs = &toy->io[4];
  p->n_outputs = 1;
  p->status_offset = off_st;
}

/* sampler_run's model over the backend's run(), as ditc sample's host loop. */
typedef struct {
  RtBackend *be;
  const RtSampleRequest *r;
  RtTensor in[4];
  int64_t img, out_img;
} HostModel;

static int host_model(void *ctx, const float *x, const float *t, int64_t rows, float *out, IrErr *err) {
  HostModel *h = ctx;
  int64_t rin = h->r->cfg ? 2 * rows : rows;
  float *xi = h->in[0].data, *ti = h->in[1].data;
  int32_t *yi = h->in[2].data;
  for (int64_t i = 0; i < rin; i++) {
    memcpy(xi + i * h->img, x + (i % rows) * h->img, sizeof(float) * (size_t)h->img);
    ti[i] = t[i % rows];
    yi[i] = i < rows ? h->r->labels[i] : h->r->null_label;
  }
  if (h->r->cfg) *(float *)h->in[3].data = h->r->cfg_scale;
  RtTensor res = {0};
  if (h->be->run(h->be, h->in, &res, err)) return -1;
  memcpy(out, res.data, sizeof(float) * (size_t)(rows * h->out_img));
  rt_tensor_free(&res);
  return 0;
}

typedef struct {
  const RtSampleRequest *r;
  RtRng rng;
} HostNoise;

static int host_noise(void *ctx, int step, float *out, int64_t n, IrErr *err) {
  HostNoise *h = ctx;
  (void)err;
  if (!h->r->replay) {
    rng_normal(&h->rng, out, n);
    return 0;
  }
  int64_t img = n / h->r->rows;
  for (int64_t r = 0; r < h->r->rows; r++)
    memcpy(out + r * img, h->r->replay + (step * h->r->replay_rows + r) * img, sizeof(float) * (size_t)img);
  return 0;
}

/* x_0 from the backend's sample() and from sampler_run over its run(). */
static void check_backend_sample(SamplerKind kind, double eta, int learn_sigma, int cfg, int replay) {
  IrErr err = {{0}};
  const int64_t rows = 3;
  const int C = 2, H = 3, W = 5, S = 6;
  const int64_t img = (int64_t)C * H * W, n = rows * img;
  Toy toy;
  toy_init(&toy, rows, C, H, W, learn_sigma, cfg);
  RtBackend *be = rt_backend_emu();
  RtModel md = {.plan = &toy.plan, .batch = rows};
  if (be->prepare(be, &md, &err)) fail_msg("%s", err.msg);
  assert_non_null(be->sample);
  Diffusion d;
  assert_int_equal(diffusion_init(&d, 1000, "linear", S, &err), 0);
  int32_t labels[3] = {1, 7, 4};
  float *replay_buf = NULL;
  RtRng rng;
  rng_init(&rng, 3);
  float *x = malloc(sizeof(float) * (size_t)n), *xh = malloc(sizeof(float) * (size_t)n);
  rng_normal(&rng, x, n);
  memcpy(xh, x, sizeof(float) * (size_t)n);
  if (replay) {
    replay_buf = malloc(sizeof(float) * (size_t)(S * (rows + 1) * img));
    fill(replay_buf, S * (rows + 1) * img, 99, -2.0f, 2.0f);
  }
  RtSampleRequest r = {.diffusion = &d, .kind = kind, .eta = eta, .learn_sigma = learn_sigma, .rows = rows,
                       .channels = C, .height = H, .width = W, .labels = labels, .cfg = cfg, .null_label = 10,
                       .cfg_scale = 2.5f, .replay = replay_buf, .replay_rows = rows + 1, .replay_steps = S,
                       .rng = replay ? NULL : &rng};
  if (be->sample(be, &r, x, &err)) fail_msg("%s", err.msg);

  HostModel hm = {.be = be, .r = &r, .img = img, .out_img = (learn_sigma ? 2 : 1) * img};
  int64_t rin = cfg ? 2 * rows : rows, sx[4] = {rin, C, H, W};
  hm.in[0] = rt_tensor_new(IR_F32, 4, sx);
  hm.in[1] = rt_tensor_new(IR_F32, 1, sx);
  hm.in[2] = rt_tensor_new(IR_I32, 1, sx);
  hm.in[3] = rt_tensor_new(IR_F32, 0, NULL);
  HostNoise hn = {.r = &r, .rng = rng};
  SamplerConfig sc = {.kind = kind, .rows = rows, .channels = C, .height = H, .width = W,
                      .learn_sigma = learn_sigma, .eta = eta, .model = host_model, .model_ctx = &hm,
                      .noise = host_noise, .noise_ctx = &hn};
  if (sampler_run(&d, &sc, xh, &err)) fail_msg("%s", err.msg);
  double e = rel_l2(x, xh, n);
  if (!(e < 1e-6)) fail_msg("device sampling differs from the host loop: relative error %g", e);
  /* and the sample is not x_T */
  float xt[1];
  RtRng r0;
  rng_init(&r0, 3);
  rng_normal(&r0, xt, 1);
  assert_true(x[0] != xt[0]);

  for (int i = 0; i < 4; i++) rt_tensor_free(&hm.in[i]);
  free(x);
  free(xh);
  free(replay_buf);
  diffusion_free(&d);
  rt_backend_free(be);
}

static void test_backend_sample_ddpm(void **state) {
  (void)state;
  check_backend_sample(SAMPLER_DDPM, 0.0, 1, 0, 0);
  check_backend_sample(SAMPLER_DDPM, 0.0, 0, 1, 0);
  check_backend_sample(SAMPLER_DDPM, 0.0, 1, 1, 1); /* replayed noise */
}

static void test_backend_sample_ddim(void **state) {
  (void)state;
  check_backend_sample(SAMPLER_DDIM, 0.0, 1, 1, 0);
  check_backend_sample(SAMPLER_DDIM, 0.6, 0, 0, 0);
  check_backend_sample(SAMPLER_DDIM, 0.6, 1, 1, 1);
}

static void test_backend_sample_errors(void **state) {
  (void)state;
  IrErr err = {{0}};
  Toy toy;
  toy_init(&toy, 2, 1, 2, 2, 0, 1);
  RtBackend *be = rt_backend_emu();
  RtModel md = {.plan = &toy.plan, .batch = 2};
  assert_int_equal(be->prepare(be, &md, &err), 0);
  Diffusion d;
  assert_int_equal(diffusion_init(&d, 1000, "linear", 4, &err), 0);
  int32_t labels[2] = {1, 11}; /* 11: out of range, the plan's status word says so */
  float x[8] = {0}, replay[3 * 2 * 4] = {0};
  RtRng rng;
  rng_init(&rng, 1);
  RtSampleRequest r = {.diffusion = &d, .kind = SAMPLER_DDPM, .rows = 2, .channels = 1, .height = 2, .width = 2,
                       .labels = labels, .cfg = 1, .null_label = 10, .cfg_scale = 1.5f, .rng = &rng};
  assert_int_equal(be->sample(be, &r, x, &err), -1);
  assert_non_null(strstr(err.msg, "embedding index"));
  labels[1] = 2;
  r.replay = replay, r.replay_rows = 2, r.replay_steps = 3; /* one step short */
  assert_int_equal(be->sample(be, &r, x, &err), -1);
  assert_non_null(strstr(err.msg, "3 steps"));
  r.replay = NULL, r.rng = NULL; /* DDPM needs noise */
  assert_int_equal(be->sample(be, &r, x, &err), -1);
  assert_non_null(strstr(err.msg, "noise"));
  r.rng = &rng, r.cfg = 0; /* the plan takes cfg_scale: not a forward entry */
  assert_int_equal(be->sample(be, &r, x, &err), RT_SAMPLE_UNSUPPORTED);
  r.cfg = 1, r.channels = 2; /* shapes that do not fit */
  assert_int_equal(be->sample(be, &r, x, &err), -1);
  assert_non_null(strstr(err.msg, "does not fit"));
  diffusion_free(&d);
  rt_backend_free(be);
  /* the reference backend keeps the host loop */
  RtBackend *ref = rt_backend_ref();
  assert_null(ref->sample);
  rt_backend_free(ref);
}

/* ---- the sources under NVRTC -------------------------------------------------- */

static void test_sources_compile_under_nvrtc(void **state) {
  (void)state;
  IrErr err = {{0}};
  CgNvrtc *nv = cg_nvrtc_open(NULL, &err);
  if (!nv) TU_SKIP(err.msg);
  char inc[1024], cuda_inc[1024];
  const char *opts[3];
  tu_nvrtc_dialect_options(inc, cuda_inc, sizeof inc, opts);
  const IrDType types[][3] = {{IR_F32, IR_F32, IR_F32}, {IR_F16, IR_F16, IR_F16}, {IR_BF16, IR_BF16, IR_BF16},
                              {IR_F16, IR_F32, IR_BF16}};
  const char *kernels[] = {CG_SAMPLER_KERNEL_INPUTS, CG_SAMPLER_KERNEL_STEP, CG_SAMPLER_KERNEL_NORMAL};
  for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
    CgSamplerTypes ty = {types[i][0], types[i][1], types[i][2]};
    char *src = cg_sampler_source(&ty, &err);
    assert_non_null(src);
    CgCompiled out;
    if (cg_nvrtc_compile(nv, src, "ditc_sampler.cu", "sm_90", opts, 3, CG_OUT_CUBIN, &out, &err) != 0)
      fail_msg("NVRTC rejects the sampler kernels:\n%s", out.diag ? out.diag : err.msg);
    for (int k = 0; k < 3; k++) {
      const CgKernelStats *ks = cg_compiled_find_kernel(&out, kernels[k]);
      assert_non_null(ks);
      assert_int_equal(ks->spill_stores, 0);
    }
    cg_compiled_free(&out);
    free(src);
  }
  cg_nvrtc_close(nv);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_step_ddpm_learned),
      cmocka_unit_test(test_step_ddpm_fixed_large),
      cmocka_unit_test(test_step_ddim_eta0),
      cmocka_unit_test(test_step_ddim_eta),
      cmocka_unit_test(test_step_half_output),
      cmocka_unit_test(test_step_coef),
      cmocka_unit_test(test_normal_matches_rng),
      cmocka_unit_test(test_inputs_kernel),
      cmocka_unit_test(test_backend_sample_ddpm),
      cmocka_unit_test(test_backend_sample_ddim),
      cmocka_unit_test(test_backend_sample_errors),
      cmocka_unit_test(test_sources_compile_under_nvrtc),
  };
  return tu_run_group(tests, NULL, tu_emu_teardown);
}
