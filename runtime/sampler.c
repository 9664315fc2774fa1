/*
 * sampler.c - the diffusion schedule and the DDPM / DDIM samplers of the
 * reference DiT code (facebookresearch/DiT: gaussian_diffusion.py, respace.py,
 * create_diffusion), plus a counter-based normal RNG.
 *
 * The schedule is built in float64 exactly as numpy builds it (linspace,
 * sequential cumprod, the same expression for every coefficient), then
 * respaced the way SpacedDiffusion does.  The per-element sampling arithmetic
 * mirrors the reference's torch code: every coefficient is taken as float32
 * (`th.from_numpy(arr)[t].float()`) and combined in float32 in the reference's
 * order, so a sample follows the reference's rounding rather than drifting
 * from it over the steps.
 *
 * RNG: Philox-4x32-10 (Salmon et al., SC'11) keyed by the 64-bit seed, block
 * counter = RtRng.counter; each block's four words give four normals by
 * Box-Muller in double precision.
 */
#include "runtime/sampler.h"

#include "runtime/backend.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ======================================================================== */
/* schedule                                                                 */
/* ======================================================================== */

/* np.linspace(start, stop, n): i * step + start, the last value set to stop. */
static void linspace(double start, double stop, int n, double *out) {
  if (n == 1) {
    out[0] = start;
    return;
  }
  double step = (stop - start) / (double)(n - 1);
  for (int i = 0; i < n; i++) out[i] = (double)i * step + start;
  out[n - 1] = stop;
}

/* respace.space_timesteps(T, [S]) with one section: the stride (T-1)/(S-1) is
 * accumulated in floating point and each position rounded half to even (rint
 * in the default rounding mode is Python's round()). */
static void space_timesteps(int T, int S, int *kept) {
  double stride = S <= 1 ? 1.0 : (double)(T - 1) / (double)(S - 1);
  double cur = 0.0;
  for (int i = 0; i < S; i++) {
    kept[i] = (int)rint(cur);
    cur += stride;
  }
}

int diffusion_init(Diffusion *d, int diffusion_steps, const char *schedule, int sampling_steps,
                   IrErr *err) {
  memset(d, 0, sizeof *d);
  int T = diffusion_steps, S = sampling_steps;
  if (!schedule || strcmp(schedule, "linear") != 0)
    return ir_errf(err, "unknown beta schedule '%s' (only \"linear\" is supported)",
                   schedule ? schedule : "(null)");
  if (T < 1) return ir_errf(err, "diffusion_steps must be >= 1 (got %d)", T);
  if (S < 1 || S > T)
    return ir_errf(err, "sampling_steps must be between 1 and diffusion_steps = %d (got %d)", T, S);

  /* The full T-step schedule (get_named_beta_schedule("linear", T)). */
  double scale = 1000.0 / (double)T;
  double *base_betas = xmalloc(sizeof(double) * (size_t)T);
  linspace(scale * 0.0001, scale * 0.02, T, base_betas);

  int *kept = xmalloc(sizeof(int) * (size_t)S);
  space_timesteps(T, S, kept);

  d->num_steps = S;
  d->timestep_map = kept;
  double **arrays[] = {&d->betas, &d->alphas_cumprod, &d->alphas_cumprod_prev,
                       &d->sqrt_recip_alphas_cumprod, &d->sqrt_recipm1_alphas_cumprod,
                       &d->posterior_variance, &d->posterior_log_variance_clipped,
                       &d->posterior_mean_coef1, &d->posterior_mean_coef2};
  for (size_t k = 0; k < sizeof arrays / sizeof arrays[0]; k++)
    *arrays[k] = xmalloc(sizeof(double) * (size_t)S);

  /* SpacedDiffusion: walk the base alphas_cumprod, keep the chosen steps and
   * give each the beta that reproduces the kept cumulative product. */
  double acp = 1.0, last = 1.0;
  int j = 0;
  for (int t = 0; t < T && j < S; t++) {
    acp *= 1.0 - base_betas[t];
    if (t == kept[j]) {
      d->betas[j++] = 1.0 - acp / last;
      last = acp;
    }
  }
  DITC_ASSERT(j == S);
  free(base_betas);

  /* GaussianDiffusion.__init__ over the respaced betas. */
  double prod = 1.0;
  for (int i = 0; i < S; i++) {
    double beta = d->betas[i];
    d->alphas_cumprod_prev[i] = prod;
    prod *= 1.0 - beta;
    d->alphas_cumprod[i] = prod;
  }
  for (int i = 0; i < S; i++) {
    double beta = d->betas[i], a = d->alphas_cumprod[i], ap = d->alphas_cumprod_prev[i];
    d->sqrt_recip_alphas_cumprod[i] = sqrt(1.0 / a);
    d->sqrt_recipm1_alphas_cumprod[i] = sqrt(1.0 / a - 1.0);
    d->posterior_variance[i] = beta * (1.0 - ap) / (1.0 - a);
    d->posterior_mean_coef1[i] = beta * sqrt(ap) / (1.0 - a);
    d->posterior_mean_coef2[i] = (1.0 - ap) * sqrt(1.0 - beta) / (1.0 - a);
  }
  /* log(append(pv[1], pv[1:])): step 0's posterior variance is 0, so it
   * borrows step 1's.  With a single step the reference has no value at all
   * (and never uses it: step 0 adds no noise); log(beta_0) keeps it finite. */
  for (int i = 0; i < S; i++) {
    double v = S == 1 ? d->betas[0] : d->posterior_variance[i == 0 ? 1 : i];
    d->posterior_log_variance_clipped[i] = log(v);
  }
  return 0;
}

void diffusion_free(Diffusion *d) {
  if (!d) return;
  free(d->timestep_map);
  free(d->betas);
  free(d->alphas_cumprod);
  free(d->alphas_cumprod_prev);
  free(d->sqrt_recip_alphas_cumprod);
  free(d->sqrt_recipm1_alphas_cumprod);
  free(d->posterior_variance);
  free(d->posterior_log_variance_clipped);
  free(d->posterior_mean_coef1);
  free(d->posterior_mean_coef2);
  memset(d, 0, sizeof *d);
}

/* ======================================================================== */
/* samplers                                                                 */
/* ======================================================================== */

/* Prefix a callback's message with the step it failed in. */
static int step_err(IrErr *err, const char *what, int step, int t) {
  if (!err) return -1;
  char inner[sizeof err->msg];
  memcpy(inner, err->msg, sizeof inner);
  inner[sizeof inner - 1] = '\0';
  return ir_errf(err, "%s failed at sampling step %d (t=%d): %s", what, step, t,
                 inner[0] ? inner : "(no message)");
}

/* The coefficients of kept step i, as float32 the way the reference extracts
 * them, plus the fixed-variance log (FIXED_LARGE when the model does not learn
 * sigma: log(append(posterior_variance[1], betas[1:]))) and DDIM's per-step
 * values, each one float32 value as the reference computes it. */
void sampler_step_coef(const Diffusion *d, int i, double eta, SamplerStep *out) {
  DITC_ASSERT(i >= 0 && i < d->num_steps);
  SamplerStep c;
  c.i = i;
  c.t = d->timestep_map[i];
  c.sr = (float)d->sqrt_recip_alphas_cumprod[i];
  c.srm1 = (float)d->sqrt_recipm1_alphas_cumprod[i];
  c.coef1 = (float)d->posterior_mean_coef1[i];
  c.coef2 = (float)d->posterior_mean_coef2[i];
  c.max_log = (float)log(d->betas[i]);
  c.min_log = (float)d->posterior_log_variance_clipped[i];
  double fixed = i == 0 ? (d->num_steps > 1 ? d->posterior_variance[1] : d->betas[0]) : d->betas[i];
  c.fixed_log = (float)log(fixed);
  c.ab = (float)d->alphas_cumprod[i];
  c.ab_prev = (float)d->alphas_cumprod_prev[i];
  c.sigma = (float)eta * sqrtf((1.0f - c.ab_prev) / (1.0f - c.ab)) * sqrtf(1.0f - c.ab / c.ab_prev);
  c.sqrt_ab_prev = sqrtf(c.ab_prev);
  c.dir_coef = sqrtf(1.0f - c.ab_prev - c.sigma * c.sigma);
  *out = c;
}

/* The device kernel (codegen/sampler_kernel.c) spells out this same order of
 * float32 operations; change both together. */
void sampler_step_apply(const SamplerStep *k, SamplerKind kind, int learn_sigma, int64_t rows, int channels,
                        int64_t hw, float *x, const float *model_out, const float *noise) {
  const int C = channels, c_out = learn_sigma ? 2 * C : C;
  for (int64_t r = 0; r < rows; r++) {
    for (int c = 0; c < C; c++) {
      float *xp = x + (r * C + c) * hw;
      const float *eps = model_out + (r * c_out + c) * hw;
      const float *v = learn_sigma ? model_out + (r * c_out + C + c) * hw : NULL;
      const float *z = noise ? noise + (r * C + c) * hw : NULL;
      for (int64_t p = 0; p < hw; p++) {
        float xv = xp[p], zv = z ? z[p] : 0.0f;
        float pred_x0 = k->sr * xv - k->srm1 * eps[p];
        float res;
        if (kind == SAMPLER_DDPM) {
          float mean = k->coef1 * pred_x0 + k->coef2 * xv;
          float log_var = k->fixed_log;
          if (v) {
            float frac = (v[p] + 1.0f) / 2.0f;
            log_var = frac * k->max_log + (1.0f - frac) * k->min_log;
          }
          res = k->i != 0 ? mean + expf(0.5f * log_var) * zv : mean;
        } else {
          float eps2 = (k->sr * xv - pred_x0) / k->srm1;
          float mean = pred_x0 * k->sqrt_ab_prev + k->dir_coef * eps2;
          res = k->i != 0 ? mean + k->sigma * zv : mean;
        }
        xp[p] = res;
      }
    }
  }
}

int sampler_run(const Diffusion *d, const SamplerConfig *cfg, float *x, IrErr *err) {
  if (!d || d->num_steps < 1 || !d->timestep_map)
    return ir_errf(err, "sampler: the diffusion schedule is not initialised");
  if (!cfg->model) return ir_errf(err, "sampler: no model callback");
  if (cfg->rows < 1 || cfg->channels < 1 || cfg->height < 1 || cfg->width < 1)
    return ir_errf(err, "sampler: bad sample shape [%lld, %d, %d, %d]", (long long)cfg->rows,
                   cfg->channels, cfg->height, cfg->width);
  if (cfg->kind != SAMPLER_DDPM && cfg->kind != SAMPLER_DDIM)
    return ir_errf(err, "sampler: unknown sampler kind %d", (int)cfg->kind);
  if (cfg->kind == SAMPLER_DDIM && !(cfg->eta >= 0.0))
    return ir_errf(err, "sampler: DDIM eta must be >= 0 (got %g)", cfg->eta);
  int needs_noise = cfg->kind == SAMPLER_DDPM || cfg->eta > 0.0;
  if (needs_noise && !cfg->noise)
    return ir_errf(err, "sampler: %s needs a noise source", cfg->kind == SAMPLER_DDPM ? "DDPM"
                                                                                   : "DDIM with eta > 0");

  const int S = d->num_steps, C = cfg->channels;
  const int64_t rows = cfg->rows, hw = (int64_t)cfg->height * cfg->width;
  const int c_out = cfg->learn_sigma ? 2 * C : C;
  const int64_t n = rows * C * hw;
  float *t = xmalloc(sizeof(float) * (size_t)rows);
  float *out = xmalloc(sizeof(float) * (size_t)(rows * c_out * hw));
  float *noise = xmalloc(sizeof(float) * (size_t)n);
  int rc = 0;

  for (int i = S - 1; i >= 0; i--) {
    const int step = S - 1 - i, orig_t = d->timestep_map[i];
    for (int64_t r = 0; r < rows; r++) t[r] = (float)orig_t;
    if (err) err->msg[0] = '\0';
    if (cfg->model(cfg->model_ctx, x, t, rows, out, err) != 0) {
      rc = step_err(err, "model", step, orig_t);
      break;
    }
    /* The reference draws noise at every step, the last included (where it
     * is multiplied by 0), so a replayed noise sequence stays aligned. */
    if (cfg->noise) {
      if (err) err->msg[0] = '\0';
      if (cfg->noise(cfg->noise_ctx, step, noise, n, err) != 0) {
        rc = step_err(err, "noise source", step, orig_t);
        break;
      }
    } else {
      memset(noise, 0, sizeof(float) * (size_t)n);
    }

    SamplerStep k;
    sampler_step_coef(d, i, cfg->eta, &k);
    sampler_step_apply(&k, cfg->kind, cfg->learn_sigma, rows, C, hw, x, out, noise);
    IrErr xerr;
    if (rt_check_x(x, n, C * hw, &xerr)) {
      if (err) *err = xerr;
      rc = step_err(err, "sampler update", step, orig_t);
      break;
    }
    if (cfg->progress) cfg->progress(cfg->progress_ctx, step + 1, S);
  }
  free(t);
  free(out);
  free(noise);
  return rc;
}

/* ======================================================================== */
/* RNG                                                                      */
/* ======================================================================== */

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

void rng_philox4x32(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
  uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
  uint32_t k0 = key[0], k1 = key[1];
  for (int round = 0; round < 10; round++) {
    if (round > 0) {
      k0 += PHILOX_W0;
      k1 += PHILOX_W1;
    }
    uint64_t p0 = (uint64_t)PHILOX_M0 * c0, p1 = (uint64_t)PHILOX_M1 * c2;
    uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n1 = (uint32_t)p1;
    uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1, n3 = (uint32_t)p0;
    c0 = n0, c1 = n1, c2 = n2, c3 = n3;
  }
  out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

void rng_init(RtRng *r, uint64_t seed) {
  r->seed = seed;
  r->counter = 0;
}

/* A 32-bit word -> uniform in the open interval (0, 1): log() never sees 0. */
static double u01(uint32_t w) { return ((double)w + 0.5) * (1.0 / 4294967296.0); }

/* Every call starts on a fresh block; the unused normals of its last block
 * are dropped, so the stream depends only on (seed, counter, n). */
void rng_normal(RtRng *r, float *out, int64_t n) {
  const double two_pi = 6.283185307179586476925286766559;
  uint32_t key[2] = {(uint32_t)r->seed, (uint32_t)(r->seed >> 32)};
  for (int64_t i = 0; i < n; i += 4) {
    uint32_t ctr[4] = {(uint32_t)r->counter, (uint32_t)(r->counter >> 32), 0, 0}, w[4];
    rng_philox4x32(ctr, key, w);
    r->counter++;
    double z[4];
    for (int h = 0; h < 2; h++) {
      double rad = sqrt(-2.0 * log(u01(w[2 * h]))), theta = two_pi * u01(w[2 * h + 1]);
      z[2 * h] = rad * cos(theta);
      z[2 * h + 1] = rad * sin(theta);
    }
    for (int j = 0; j < 4 && i + j < n; j++) out[i + j] = (float)z[j];
  }
}

int sampler_noise_rng(void *ctx, int step, float *out, int64_t n, IrErr *err) {
  (void)step;
  if (!ctx) return ir_errf(err, "sampler_noise_rng: no RtRng");
  rng_normal(ctx, out, n);
  return 0;
}
