/*
 * test_sampler.c - the diffusion schedule, the DDPM / DDIM samplers and the
 * Philox RNG.
 *
 * Expected values are derived here independently of runtime/sampler.c: the
 * respaced timesteps by exact integer arithmetic, alphas_cumprod by a sum of
 * log1p, and the sampler steps from closed forms of the reference formulas
 * with fake models whose output is known (eps = 0, constant eps, x = 0).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/sampler.h"
#include "testutil.h"

#define T_FULL 1000

/* alphas_cumprod of the full linear schedule at t, without a running product. */
static double acp_full(int t) {
  double s = 0.0, step = (0.02 - 1e-4) / 999.0;
  for (int i = 0; i <= t; i++) s += log1p(-(i == 999 ? 0.02 : 1e-4 + i * step));
  return exp(s);
}

static void assert_rel(double got, double want, double tol) {
  double rel = fabs(got - want) / fmax(fabs(want), 1e-30);
  if (!(rel <= tol)) fail_msg("got %.17g, want %.17g (rel %.3g > %.3g)", got, want, rel, tol);
}

/* round(i * (T-1) / (S-1)) with ties to even, in exact integer arithmetic. */
static int exact_round_half_even(int64_t num, int64_t den) {
  int64_t q = num / den, r = num % den;
  if (2 * r > den || (2 * r == den && (q & 1))) q++;
  return (int)q;
}

static Diffusion make(int T, int S) {
  Diffusion d;
  IrErr err = {{0}};
  if (diffusion_init(&d, T, "linear", S, &err) != 0) fail_msg("diffusion_init: %s", err.msg);
  return d;
}

/* ---- schedule ------------------------------------------------------------ */

static void test_respacing_10(void **state) {
  (void)state;
  Diffusion d = make(T_FULL, 10);
  const int want[10] = {0, 111, 222, 333, 444, 555, 666, 777, 888, 999};
  assert_int_equal(d.num_steps, 10);
  for (int i = 0; i < 10; i++) assert_int_equal(d.timestep_map[i], want[i]);
  diffusion_free(&d);
}

static void test_respacing_exact(void **state) {
  (void)state;
  const int steps[] = {2, 7, 50, 100, 250, 500};
  for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++) {
    int S = steps[k];
    Diffusion d = make(T_FULL, S);
    assert_int_equal(d.num_steps, S);
    for (int i = 0; i < S; i++)
      assert_int_equal(d.timestep_map[i], exact_round_half_even((int64_t)i * 999, S - 1));
    diffusion_free(&d);
  }
}

static void test_respacing_ties(void **state) {
  (void)state;
  /* stride 499.5: 499.5 rounds to the even 500. */
  Diffusion d = make(T_FULL, 3);
  assert_int_equal(d.timestep_map[1], 500);
  assert_int_equal(d.timestep_map[2], 999);
  diffusion_free(&d);
  /* stride 249.75: 499.5 -> 500, 749.25 -> 749. */
  d = make(T_FULL, 5);
  const int w5[5] = {0, 250, 500, 749, 999};
  for (int i = 0; i < 5; i++) assert_int_equal(d.timestep_map[i], w5[i]);
  diffusion_free(&d);
  /* T = 6, S = 3: stride 2.5 -> 2 (round half down to even), 5. */
  d = make(6, 3);
  assert_int_equal(d.timestep_map[0], 0);
  assert_int_equal(d.timestep_map[1], 2);
  assert_int_equal(d.timestep_map[2], 5);
  diffusion_free(&d);
  /* a single step keeps t = 0; S = T keeps everything. */
  d = make(T_FULL, 1);
  assert_int_equal(d.num_steps, 1);
  assert_int_equal(d.timestep_map[0], 0);
  assert_true(isfinite(d.posterior_log_variance_clipped[0]));
  diffusion_free(&d);
  d = make(T_FULL, T_FULL);
  for (int i = 0; i < T_FULL; i++) assert_int_equal(d.timestep_map[i], i);
  diffusion_free(&d);
  /* S = 999: the exact tie 499 * 999/998 = 499.5 is not a tie after 499
   * floating-point additions; the reference (Python, same doubles) keeps
   * 499 and 501 there and never 500.  Values from running its loop. */
  d = make(T_FULL, 999);
  assert_int_equal(d.timestep_map[498], 498);
  assert_int_equal(d.timestep_map[499], 499);
  assert_int_equal(d.timestep_map[500], 501);
  assert_int_equal(d.timestep_map[998], 999);
  diffusion_free(&d);
}

static void test_bad_arguments(void **state) {
  (void)state;
  Diffusion d;
  IrErr err = {{0}};
  assert_int_equal(diffusion_init(&d, 1000, "cosine", 10, &err), -1);
  assert_non_null(strstr(err.msg, "cosine"));
  assert_int_equal(diffusion_init(&d, 1000, "linear", 0, &err), -1);
  assert_non_null(strstr(err.msg, "sampling_steps"));
  assert_int_equal(diffusion_init(&d, 1000, "linear", 1001, &err), -1);
  assert_int_equal(diffusion_init(&d, 0, "linear", 1, &err), -1);
  diffusion_free(&d); /* harmless on a failed init */
}

static void test_full_schedule(void **state) {
  (void)state;
  Diffusion d = make(T_FULL, T_FULL);
  /* Respacing with every step kept reproduces the base betas. */
  assert_rel(d.betas[0], 1e-4, 1e-10);
  assert_rel(d.betas[999], 0.02, 1e-10);
  assert_rel(d.betas[500], 1e-4 + 500 * (0.02 - 1e-4) / 999, 1e-10);
  /* alphas_cumprod at t = 999: by hand exp(-sum beta - ...) ~ 4.0358e-5. */
  assert_rel(d.alphas_cumprod[999], 4.0358e-5, 1e-4);
  assert_rel(d.alphas_cumprod[999], acp_full(999), 1e-12);
  assert_rel(d.alphas_cumprod[0], 1.0 - 1e-4, 1e-15);
  diffusion_free(&d);
  /* T = 500 scales the betas by 1000/500. */
  d = make(500, 500);
  assert_rel(d.betas[0], 2e-4, 1e-10);
  assert_rel(d.betas[499], 0.04, 1e-10);
  diffusion_free(&d);
}

static void test_respaced_coefficients(void **state) {
  (void)state;
  const int steps[] = {10, 50, 250};
  for (size_t k = 0; k < 3; k++) {
    int S = steps[k];
    Diffusion d = make(T_FULL, S);
    double prod = 1.0, sum = 0.0;
    for (int i = 0; i < S; i++) {
      double b = d.betas[i];
      assert_true(b > 0.0 && b < 1.0);
      if (S == 10 && i > 0) assert_true(b > d.betas[i - 1]); /* even gaps: growing */
      prod *= 1.0 - b;
      sum += b;
      /* the kept cumulative products are the full schedule's */
      double a = acp_full(d.timestep_map[i]);
      double ap = i == 0 ? 1.0 : acp_full(d.timestep_map[i - 1]);
      assert_rel(d.alphas_cumprod[i], a, 1e-11);
      assert_rel(d.alphas_cumprod_prev[i], ap, 1e-11);
      assert_rel(d.sqrt_recip_alphas_cumprod[i], 1.0 / sqrt(a), 1e-11);
      assert_rel(d.sqrt_recipm1_alphas_cumprod[i], sqrt((1.0 - a) / a), 1e-9);
      double bb = 1.0 - a / ap;
      assert_rel(b, bb, 1e-9);
      assert_rel(d.posterior_mean_coef1[i], bb * sqrt(ap) / (1.0 - a), 1e-9);
      if (i > 0) {
        assert_rel(d.posterior_variance[i], bb * (1.0 - ap) / (1.0 - a), 1e-9);
        assert_rel(d.posterior_mean_coef2[i], (1.0 - ap) * sqrt(1.0 - bb) / (1.0 - a), 1e-9);
        assert_rel(d.posterior_log_variance_clipped[i], log(d.posterior_variance[i]), 1e-12);
      }
    }
    assert_true(d.posterior_variance[0] == 0.0);
    assert_true(d.posterior_mean_coef2[0] == 0.0);
    assert_rel(d.posterior_mean_coef1[0], 1.0, 1e-12);
    assert_rel(d.posterior_log_variance_clipped[0], log(d.posterior_variance[1]), 1e-15);
    /* the betas telescope back to the full schedule's last alphas_cumprod */
    assert_rel(prod, acp_full(999), 1e-11);
    /* fewer steps, larger betas: the sum grows as S shrinks */
    assert_true(sum > 1.0 && sum < S);
    diffusion_free(&d);
  }
}

/* ---- fake models ---------------------------------------------------------- */

typedef struct {
  int C, HW, learn_sigma;
  float eps;         /* constant eps */
  float v[4];        /* per channel v (learn_sigma) */
  int calls;
  float t_seen[16];  /* t of row 0 at each call */
  int t_uniform;     /* every row got the same t */
  int64_t rows_seen;
  float *x_seen;     /* copy of x at each call: [calls][rows*C*HW] */
  int fail_at;       /* return -1 at this call (-1: never) */
} FakeModel;

static int fake_model(void *ctx, const float *x, const float *t, int64_t rows, float *out,
                      IrErr *err) {
  FakeModel *m = ctx;
  if (m->calls == m->fail_at) return ir_errf(err, "fake model broke");
  int64_t n = rows * m->C * m->HW;
  if (m->x_seen && m->calls < 16) memcpy(m->x_seen + m->calls * n, x, sizeof(float) * (size_t)n);
  if (m->calls < 16) m->t_seen[m->calls] = t[0];
  for (int64_t r = 1; r < rows; r++)
    if (t[r] != t[0]) m->t_uniform = 0;
  m->rows_seen = rows;
  int c_out = m->learn_sigma ? 2 * m->C : m->C;
  for (int64_t r = 0; r < rows; r++)
    for (int c = 0; c < c_out; c++)
      for (int p = 0; p < m->HW; p++)
        out[(r * c_out + c) * m->HW + p] = c < m->C ? m->eps : m->v[c - m->C];
  m->calls++;
  return 0;
}

typedef struct {
  int calls;
  int steps[16];
  int64_t n;
  float value;       /* noise = value * (step + 1) */
} FakeNoise;

static int fake_noise(void *ctx, int step, float *out, int64_t n, IrErr *err) {
  (void)err;
  FakeNoise *z = ctx;
  if (z->calls < 16) z->steps[z->calls] = step;
  z->calls++;
  z->n = n;
  for (int64_t i = 0; i < n; i++) out[i] = z->value * (float)(step + 1);
  return 0;
}

static void count_progress(void *ctx, int done, int total) {
  int *p = ctx;
  assert_int_equal(done, p[0] + 1);
  p[0] = done;
  p[1] = total;
}

static SamplerConfig config(SamplerKind kind, int64_t rows, int C, int H, int W, FakeModel *m,
                            FakeNoise *z) {
  SamplerConfig c;
  memset(&c, 0, sizeof c);
  c.kind = kind;
  c.rows = rows;
  c.channels = C;
  c.height = H;
  c.width = W;
  c.learn_sigma = m->learn_sigma;
  c.model = fake_model;
  c.model_ctx = m;
  c.noise = z ? fake_noise : NULL;
  c.noise_ctx = z;
  return c;
}

/* ---- samplers ------------------------------------------------------------- */

/* eps = 0 under DDIM: pred_x0 = x / sqrt(abar), x_prev = pred_x0 sqrt(abar_prev);
 * over all steps the factors telescope to x_0 = x_T / sqrt(abar_999). */
static void test_ddim_zero_eps(void **state) {
  (void)state;
  Diffusion d = make(T_FULL, 10);
  FakeModel m = {.C = 1, .HW = 4, .fail_at = -1, .t_uniform = 1};
  int prog[2] = {0, 0};
  SamplerConfig c = config(SAMPLER_DDIM, 2, 1, 2, 2, &m, NULL);
  c.progress = count_progress;
  c.progress_ctx = prog;
  float x[8] = {0.01f, -0.02f, 0.003f, 0.0f, 1e-3f, 2e-3f, -5e-3f, 0.004f}, x0[8];
  memcpy(x0, x, sizeof x);
  IrErr err = {{0}};
  assert_int_equal(sampler_run(&d, &c, x, &err), 0);
  double gain = 1.0 / sqrt(acp_full(999));
  for (int i = 0; i < 8; i++) assert_true(fabs(x[i] - x0[i] * gain) <= 1e-5 * fabs(x0[i] * gain) + 1e-9);
  assert_int_equal(m.calls, 10);
  assert_int_equal(prog[0], 10);
  assert_int_equal(prog[1], 10);
  /* the model sees the original timesteps, highest first, same for every row */
  for (int k = 0; k < 10; k++) assert_true(m.t_seen[k] == (float)d.timestep_map[9 - k]);
  assert_true(m.t_uniform);
  assert_int_equal(m.rows_seen, 2);
  diffusion_free(&d);
}

/* S = 2 (t = 0, 999), written out by hand from the reference formulas. */
typedef struct {
  double A, a0, beta1, coef1, coef2, pv1;
} TwoStep;

static TwoStep two_step(void) {
  TwoStep s;
  s.A = acp_full(999);
  s.a0 = 1.0 - 1e-4;
  s.beta1 = 1.0 - s.A / s.a0;
  s.coef1 = s.beta1 * sqrt(s.a0) / (1.0 - s.A);
  s.coef2 = (1.0 - s.a0) * sqrt(1.0 - s.beta1) / (1.0 - s.A);
  s.pv1 = s.beta1 * (1.0 - s.a0) / (1.0 - s.A);
  return s;
}

static void test_ddpm_two_steps_by_hand(void **state) {
  (void)state;
  Diffusion d = make(T_FULL, 2);
  assert_int_equal(d.timestep_map[1], 999);
  TwoStep h = two_step();
  /* learned range with v = 0.3: frac = 0.65 */
  float xs[2 * 3];
  FakeModel m = {.C = 1, .HW = 3, .learn_sigma = 1, .eps = 0.5f, .v = {0.3f}, .fail_at = -1,
                 .x_seen = xs};
  FakeNoise z = {.value = 0.25f};
  SamplerConfig c = config(SAMPLER_DDPM, 1, 1, 1, 3, &m, &z);
  float x[3] = {1.0f, -0.5f, 2.0f};
  IrErr err = {{0}};
  assert_int_equal(sampler_run(&d, &c, x, &err), 0);
  const double e = 0.5, z0 = 0.25;
  double log_var = 0.65 * log(h.beta1) + 0.35 * log(h.pv1);
  const double xt[3] = {1.0, -0.5, 2.0};
  for (int p = 0; p < 3; p++) {
    double pred = xt[p] / sqrt(h.A) - sqrt(1.0 / h.A - 1.0) * e;
    double x1 = h.coef1 * pred + h.coef2 * xt[p] + exp(0.5 * log_var) * z0;
    assert_rel(xs[3 + p], x1, 2e-5);  /* what the model saw at the second step */
    /* last step: coef1 = 1, coef2 = 0, no noise: x0 = pred_x0 */
    double x0 = x1 / sqrt(h.a0) - sqrt(1.0 / h.a0 - 1.0) * e;
    assert_rel(x[p], x0, 2e-5);
  }
  /* noise was drawn at both steps, in order, n = rows*C*H*W */
  assert_int_equal(z.calls, 2);
  assert_int_equal(z.steps[0], 0);
  assert_int_equal(z.steps[1], 1);
  assert_int_equal(z.n, 3);
  diffusion_free(&d);
}

static void test_ddim_two_steps_by_hand(void **state) {
  (void)state;
  Diffusion d = make(T_FULL, 2);
  TwoStep h = two_step();
  float xs[2 * 2];
  FakeModel m = {.C = 1, .HW = 2, .learn_sigma = 1, .eps = -0.75f, .v = {0.9f}, .fail_at = -1,
                 .x_seen = xs};
  FakeNoise z = {.value = 3.0f};  /* eta = 0: drawn but unused */
  SamplerConfig c = config(SAMPLER_DDIM, 1, 1, 1, 2, &m, &z);
  float x[2] = {0.7f, -1.3f};
  IrErr err = {{0}};
  assert_int_equal(sampler_run(&d, &c, x, &err), 0);
  const double e = -0.75, xt[2] = {0.7, -1.3};
  for (int p = 0; p < 2; p++) {
    double pred = xt[p] / sqrt(h.A) - sqrt(1.0 / h.A - 1.0) * e;
    double x1 = pred * sqrt(h.a0) + sqrt(1.0 - h.a0) * e;
    assert_rel(xs[2 + p], x1, 2e-5);
    double x0 = x1 / sqrt(h.a0) - sqrt(1.0 / h.a0 - 1.0) * e;
    assert_rel(x[p], x0, 2e-4);  /* x1 - sqrt(1-a0) e cancels: float32 noise */
  }
  assert_int_equal(z.calls, 2);
  diffusion_free(&d);
}

/* x_T = 0 and eps = 0: the mean is 0, so after the first step x = std * z and
 * the model's second input shows the variance the sampler used. */
static void first_step_std(SamplerKind kind, double eta, int learn_sigma, int S, int C,
                           const float *v, float *std_out) {
  Diffusion d = make(T_FULL, S);
  float xs[2 * 2 * 4 * 4];
  FakeModel m = {.C = C, .HW = 4, .learn_sigma = learn_sigma, .fail_at = -1, .x_seen = xs};
  for (int c = 0; c < C && v; c++) m.v[c] = v[c];
  FakeNoise z = {.value = 1.0f};  /* step 0 noise = 1 */
  SamplerConfig c = config(kind, 2, C, 2, 2, &m, &z);
  c.eta = eta;
  float x[2 * 4 * 4] = {0};
  IrErr err = {{0}};
  assert_int_equal(sampler_run(&d, &c, x, &err), 0);
  int64_t n = 2 * C * 4;
  for (int r = 0; r < 2; r++)
    for (int ch = 0; ch < C; ch++)
      for (int p = 0; p < 4; p++) {
        float got = xs[n + (r * C + ch) * 4 + p];
        if (r == 0 && p == 0) std_out[ch] = got;
        assert_true(got == xs[n + ch * 4]); /* same over rows and pixels */
      }
  diffusion_free(&d);
}

static void test_variance_paths(void **state) {
  (void)state;
  Diffusion d = make(T_FULL, 3);
  double beta2 = d.betas[2], pv2 = d.posterior_variance[2];
  diffusion_free(&d);
  float sd[4];
  /* FIXED_LARGE (no learned sigma): std = sqrt(beta_t) */
  first_step_std(SAMPLER_DDPM, 0.0, 0, 3, 1, NULL, sd);
  assert_rel(sd[0], sqrt(beta2), 1e-6);
  /* learned range, channel 0 at v = -1 (posterior variance), channel 1 at v = +1 (beta):
   * also checks that eps is the first C channels and v the last C */
  const float v[2] = {-1.0f, 1.0f};
  first_step_std(SAMPLER_DDPM, 0.0, 1, 3, 2, v, sd);
  assert_rel(sd[0], sqrt(pv2), 1e-6);
  assert_rel(sd[1], sqrt(beta2), 1e-6);
  /* DDIM eta = 1: sigma^2 is the posterior variance */
  first_step_std(SAMPLER_DDIM, 1.0, 1, 3, 1, v, sd);
  assert_rel(sd[0], sqrt(pv2), 1e-5);
  /* DDIM eta = 0.5: half of it */
  first_step_std(SAMPLER_DDIM, 0.5, 0, 3, 1, NULL, sd);
  assert_rel(sd[0], 0.5 * sqrt(pv2), 1e-5);
  /* DDIM eta = 0: deterministic, x stays 0 */
  first_step_std(SAMPLER_DDIM, 0.0, 0, 3, 1, NULL, sd);
  assert_true(sd[0] == 0.0f);
}

static void test_noise_replay_order(void **state) {
  (void)state;
  Diffusion d = make(T_FULL, 7);
  FakeModel m = {.C = 2, .HW = 6, .fail_at = -1, .t_uniform = 1};
  FakeNoise z = {.value = 1.0f};
  SamplerConfig c = config(SAMPLER_DDPM, 3, 2, 2, 3, &m, &z);
  float x[3 * 2 * 6] = {0};
  IrErr err = {{0}};
  assert_int_equal(sampler_run(&d, &c, x, &err), 0);
  assert_int_equal(z.calls, 7);
  for (int k = 0; k < 7; k++) {
    assert_int_equal(z.steps[k], k);
    assert_true(m.t_seen[k] == (float)d.timestep_map[6 - k]);
  }
  assert_int_equal(z.n, 3 * 2 * 6);
  assert_true(m.t_seen[0] == 999.0f && m.t_seen[6] == 0.0f);
  assert_true(m.t_uniform);
  diffusion_free(&d);
}

static void test_errors(void **state) {
  (void)state;
  Diffusion d = make(T_FULL, 4);
  FakeModel m = {.C = 1, .HW = 1, .fail_at = 2};
  FakeNoise z = {.value = 1.0f};
  SamplerConfig c = config(SAMPLER_DDPM, 1, 1, 1, 1, &m, &z);
  float x[1] = {0.5f};
  IrErr err = {{0}};
  assert_int_equal(sampler_run(&d, &c, x, &err), -1);
  assert_non_null(strstr(err.msg, "step 2"));
  assert_non_null(strstr(err.msg, "fake model broke"));
  /* DDPM without a noise source */
  m.fail_at = -1;
  c.noise = NULL;
  assert_int_equal(sampler_run(&d, &c, x, &err), -1);
  assert_non_null(strstr(err.msg, "noise"));
  /* DDIM eta = 0 needs none */
  c.kind = SAMPLER_DDIM;
  assert_int_equal(sampler_run(&d, &c, x, &err), 0);
  c.eta = 0.5;
  assert_int_equal(sampler_run(&d, &c, x, &err), -1);
  c.eta = -1.0;
  assert_int_equal(sampler_run(&d, &c, x, &err), -1);
  c.eta = 0.0;
  c.rows = 0;
  assert_int_equal(sampler_run(&d, &c, x, &err), -1);
  diffusion_free(&d);
}

/* ---- RNG ------------------------------------------------------------------ */

static void test_philox_kat(void **state) {
  (void)state;
  /* Random123's known-answer vectors for philox4x32_R(10, ...) */
  static const uint32_t kat[3][10] = {
      {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
      {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x408f276d,
       0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
      {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09,
       0x94fdcceb, 0x5001e420, 0x24126ea1},
  };
  for (int k = 0; k < 3; k++) {
    uint32_t out[4];
    rng_philox4x32(kat[k], kat[k] + 4, out);
    for (int j = 0; j < 4; j++) assert_int_equal(out[j], kat[k][6 + j]);
  }
}

static double u01(uint32_t w) { return ((double)w + 0.5) / 4294967296.0; }

static void test_rng_normal(void **state) {
  (void)state;
  RtRng r;
  rng_init(&r, 0);
  float z[6];
  rng_normal(&r, z, 4);
  /* seed 0, block 0 is the first KAT: Box-Muller of its words */
  const uint32_t w[4] = {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8};
  const double tau = 2.0 * acos(-1.0);
  double r0 = sqrt(-2.0 * log(u01(w[0]))), r1 = sqrt(-2.0 * log(u01(w[2])));
  assert_rel(z[0], r0 * cos(tau * u01(w[1])), 1e-6);
  assert_rel(z[1], r0 * sin(tau * u01(w[1])), 1e-6);
  assert_rel(z[2], r1 * cos(tau * u01(w[3])), 1e-6);
  assert_rel(z[3], r1 * sin(tau * u01(w[3])), 1e-6);
  assert_true(r.counter == 1);
  /* the counter advances: the next call is new, and a split call equals one call */
  float a[8], b[8];
  rng_normal(&r, a, 4);
  assert_true(a[0] != z[0]);
  rng_init(&r, 0);
  rng_normal(&r, b, 8);
  assert_true(memcmp(b, z, 4 * sizeof(float)) == 0);
  assert_true(memcmp(b + 4, a, 4 * sizeof(float)) == 0);
  /* a partial block is dropped: 6 then 2 skips two values */
  rng_init(&r, 0);
  rng_normal(&r, z, 6);
  assert_true(r.counter == 2);
  /* seeds differ */
  RtRng s;
  rng_init(&s, 1);
  rng_normal(&s, a, 4);
  assert_true(memcmp(a, b, 4 * sizeof(float)) != 0);
  /* the NoiseFn wrapper draws from the same stream */
  rng_init(&s, 0);
  IrErr err = {{0}};
  assert_int_equal(sampler_noise_rng(&s, 0, a, 8, &err), 0);
  assert_true(memcmp(a, b, sizeof a) == 0);
}

static void test_rng_moments(void **state) {
  (void)state;
  enum { N = 200000 };
  float *z = malloc(sizeof(float) * N);
  RtRng r;
  rng_init(&r, 12345);
  rng_normal(&r, z, N);
  double m = 0, v = 0, tail = 0;
  for (int i = 0; i < N; i++) m += z[i];
  m /= N;
  for (int i = 0; i < N; i++) {
    v += (z[i] - m) * (z[i] - m);
    if (fabs(z[i]) > 1.959964) tail++;
  }
  v /= N - 1;
  assert_true(fabs(m) < 0.01);
  assert_true(fabs(v - 1.0) < 0.015);
  assert_true(fabs(tail / N - 0.05) < 0.003);
  free(z);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_respacing_10),
      cmocka_unit_test(test_respacing_exact),
      cmocka_unit_test(test_respacing_ties),
      cmocka_unit_test(test_bad_arguments),
      cmocka_unit_test(test_full_schedule),
      cmocka_unit_test(test_respaced_coefficients),
      cmocka_unit_test(test_ddim_zero_eps),
      cmocka_unit_test(test_ddpm_two_steps_by_hand),
      cmocka_unit_test(test_ddim_two_steps_by_hand),
      cmocka_unit_test(test_variance_paths),
      cmocka_unit_test(test_noise_replay_order),
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_philox_kat),
      cmocka_unit_test(test_rng_normal),
      cmocka_unit_test(test_rng_moments),
  };
  return tu_run_group(tests, NULL, NULL);
}
