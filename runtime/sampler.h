/*
 * sampler.h - diffusion schedules and the DDPM / DDIM samplers of the
 * reference DiT code (facebookresearch/DiT `diffusion/`).
 *
 * Schedule: `diffusion_steps` linear betas 1e-4 .. 0.02 (scaled by 1000 /
 * diffusion_steps as the reference does), respaced to `sampling_steps` kept
 * timesteps round(i * (T-1)/(S-1)) (round half to even, stride accumulated in
 * floating point).  Coefficients in float64, as the reference computes them;
 * each step then takes them as float32 and does the per-element arithmetic in
 * float32 in the reference's order (torch's `_extract_into_tensor(...).float()`).
 * Variance: learned range when learn_sigma, else FIXED_LARGE (what
 * create_diffusion picks for learn_sigma=False).  No clipping of x_0.
 *
 * The model is a callback: the sampler hands it x for `rows` rows and the
 * *original* timestep of every row, and it writes eps (and, with learn_sigma,
 * the variance values v as the last C channels).  Classifier-free guidance lives
 * in the model graph (forward_with_cfg), not here.
 */
#ifndef DITC_SAMPLER_H
#define DITC_SAMPLER_H

#include "runtime/tensor.h"

typedef struct {
  int num_steps;        /* S, kept steps */
  int *timestep_map;    /* [S] original timestep of kept step i */
  double *betas;        /* [S] respaced */
  double *alphas_cumprod, *alphas_cumprod_prev;
  double *sqrt_recip_alphas_cumprod, *sqrt_recipm1_alphas_cumprod;
  double *posterior_variance, *posterior_log_variance_clipped;
  double *posterior_mean_coef1, *posterior_mean_coef2;
} Diffusion;

/* schedule: "linear" (the only one DiT trains with). */
int diffusion_init(Diffusion *d, int diffusion_steps, const char *schedule, int sampling_steps,
                   IrErr *err);
void diffusion_free(Diffusion *d);

/* Model callback: x [rows, C, H, W], t[rows] (original timesteps, as floats);
 * writes out [rows, C_out, H, W].  Returns 0 or -1 with err. */
typedef int (*ModelFn)(void *ctx, const float *x, const float *t, int64_t rows, float *out,
                       IrErr *err);

/* A source of N(0,1) noise: fill n floats. `step` is -1 for the initial x_T,
 * else the index of the sampling step (0 = first, highest t). */
typedef int (*NoiseFn)(void *ctx, int step, float *out, int64_t n, IrErr *err);

typedef enum { SAMPLER_DDPM, SAMPLER_DDIM } SamplerKind;

typedef struct {
  SamplerKind kind;
  int64_t rows;          /* N */
  int channels, height, width;
  int learn_sigma;       /* model output has 2C channels, learned-range variance */
  double eta;            /* DDIM only; 0 = deterministic */
  ModelFn model; void *model_ctx;
  NoiseFn noise; void *noise_ctx;
  /* Called after each step (progress); may be NULL. */
  void (*progress)(void *ctx, int done, int total); void *progress_ctx;
} SamplerConfig;

/* x: in x_T (filled by the caller, e.g. with rng_normal), out x_0, [N, C, H, W].
 * Steps i = S-1 .. 0: model(x, t = timestep_map[i]); noise(step = S-1-i) at
 * every step when cfg->noise is set (the last step's noise is unused, as in
 * the reference); noise may be NULL only for DDIM with eta = 0. */
int sampler_run(const Diffusion *d, const SamplerConfig *cfg, float *x, IrErr *err);

/* One sampling step's coefficients, float32 as the per-element arithmetic
 * takes them: the host loop (sampler_run) and the device sampler kernels
 * (codegen/sampler_kernel.h) both get them from sampler_step_coef, so the
 * schedule math has one definition. */
typedef struct {
  int i;                     /* kept step index (S-1 first); 0 is the last step: no noise added */
  int t;                     /* its original timestep, timestep_map[i] */
  float sr, srm1;            /* sqrt_recip(m1)_alphas_cumprod */
  float coef1, coef2;        /* DDPM posterior mean */
  float max_log, min_log;    /* DDPM learned range: log beta, clipped log posterior variance */
  float fixed_log;           /* DDPM FIXED_LARGE: log(append(posterior_variance[1], betas[1:]))[i] */
  float ab, ab_prev;         /* alphas_cumprod(_prev) */
  float sigma;               /* DDIM: eta * sqrt((1-ab_prev)/(1-ab)) * sqrt(1-ab/ab_prev) */
  float sqrt_ab_prev;        /* DDIM: sqrt(ab_prev) */
  float dir_coef;            /* DDIM: sqrt(1 - ab_prev - sigma^2) */
} SamplerStep;

/* Step i's coefficients (0 <= i < num_steps); eta matters for DDIM only. */
void sampler_step_coef(const Diffusion *d, int i, double eta, SamplerStep *out);

/* The per-element update of one step, in place: x [rows, C, hw]; model_out
 * [rows, C_out, hw] (C_out = 2C with learn_sigma: eps, then v); noise [rows,
 * C, hw] or NULL for zeros.  New x = mean (+ noise term unless k->i == 0). */
void sampler_step_apply(const SamplerStep *k, SamplerKind kind, int learn_sigma, int64_t rows, int channels,
                        int64_t hw, float *x, const float *model_out, const float *noise);

/* Step caching (--cache-interval N, --cache-warmup W; passes/step_cache.c):
 * sampling step s (0 = the first) is full - every block runs and its deltas
 * are kept - when s < W or (s - W) is a multiple of N; the others reuse the
 * last full step's deltas.  So of S steps W + ceil((S - W) / N) are full
 * (step 0 always is).  N 1: every step full. */
static inline int sampler_cache_full(int step, int interval, int warmup) {
  return interval <= 1 || step < warmup || (step - warmup) % interval == 0;
}
static inline int sampler_cache_full_steps(int steps, int interval, int warmup) {
  if (warmup > steps) warmup = steps;
  return interval <= 1 ? steps : warmup + (steps - warmup + interval - 1) / interval;
}

/* Deterministic N(0,1) generator (Philox-4x32-10 + Box-Muller) keyed by seed. */
typedef struct {
  uint64_t seed;
  uint64_t counter;
} RtRng;
void rng_init(RtRng *r, uint64_t seed);
/* Fills n normals from blocks counter, counter+1, ... (4 normals a block;
 * each call starts a fresh block, so the stream depends only on seed, the
 * counter and n). */
void rng_normal(RtRng *r, float *out, int64_t n);
/* The blocks (counter values) one rng_normal call of n values consumes. */
static inline uint64_t rng_blocks(int64_t n) { return (uint64_t)(n + 3) / 4; }
/* The raw Philox-4x32-10 block function (Random123's philox4x32_R(10, ...)).
 * rng_normal uses ctr = {counter lo, counter hi, 0, 0}, key = {seed lo, seed hi}
 * and turns words (a, b) into r cos(2 pi u_b), r sin(2 pi u_b) with
 * r = sqrt(-2 ln u_a), u_w = (w + 0.5) / 2^32, in double precision. */
void rng_philox4x32(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);
/* A NoiseFn over an RtRng (ctx is the RtRng *): every call draws n normals. */
int sampler_noise_rng(void *ctx, int step, float *out, int64_t n, IrErr *err);

#endif
