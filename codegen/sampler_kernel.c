/*
 * sampler_kernel.c - the source of the sampler's device kernels (see
 * sampler_kernel.h): a few lines naming the stored dtypes, then one fixed
 * body in the kernel dialect.
 *
 * The step kernel mirrors runtime/sampler.c's sampler_step_apply operation
 * by operation (change both together); the normal kernel mirrors rng_normal
 * and rng_philox4x32.
 */
#include "codegen/sampler_kernel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The dialect's type, store (from float) and load (to float) for a dtype. */
static int dtype_spell(IrDType t, const char **type, const char **store, const char **load) {
  switch (t) {
  case IR_F32: *type = "float", *store = "", *load = ""; return 0;
  case IR_F16: *type = "__half", *store = "__float2half_rn", *load = "__half2float"; return 0;
  case IR_BF16: *type = "__nv_bfloat16", *store = "__float2bfloat16_rn", *load = "__bfloat162float"; return 0;
  default: return -1;
  }
}

static const char BODY[] =
    "typedef struct {\n"
    "  ditc_smp_x_t *x_in;\n"
    "  ditc_smp_t_t *t_in;\n"
    "  int32_t *y_in;\n"
    "  ditc_smp_t_t *s_in;\n"
    "  const float *x;\n"
    "  const int32_t *labels;\n"
    "  float t, cfg_scale;\n"
    "  int64_t rows, rows_in, img;\n"
    "} DitcSamplerInputs;\n"
    "\n"
    "/* x_in[r, :] = x[r % rows, :]; t, y and cfg_scale alongside. */\n"
    "DITC_KERNEL_BOUNDS(ditc_sampler_inputs, DitcSamplerInputs, p, 256) {\n"
    "  int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;\n"
    "  if (e >= p.rows_in * p.img) return;\n"
    "  int64_t r = e / p.img, q = e - r * p.img;\n"
    "  p.x_in[e] = DITC_SMP_X_STORE(p.x[(r % p.rows) * p.img + q]);\n"
    "  if (e < p.rows_in) {\n"
    "    p.t_in[e] = DITC_SMP_T_STORE(p.t);\n"
    "    p.y_in[e] = p.labels[e];\n"
    "  }\n"
    "  if (e == 0 && p.s_in) p.s_in[0] = DITC_SMP_T_STORE(p.cfg_scale);\n"
    "}\n"
    "\n"
    "typedef struct {\n"
    "  float *x;\n"
    "  const ditc_smp_o_t *model_out;\n"
    "  const float *noise;\n"
    "  const int32_t *status;\n"
    "  int32_t *sticky;\n"
    "  int64_t n, chw, hw;\n"
    "  float sr, srm1, coef1, coef2, max_log, min_log, fixed_log;\n"
    "  float sigma, sqrt_ab_prev, dir_coef;\n"
    "  int ddpm;\n"
    "  int learn_sigma;\n"
    "  int add_noise;\n"
    "} DitcSamplerStep;\n"
    "\n"
    "/* One DDPM / DDIM update of x in place: runtime/sampler.c's\n"
    " * sampler_step_apply in its float32 order, without FMA contraction. */\n"
    "DITC_KERNEL_BOUNDS(ditc_sampler_step, DitcSamplerStep, p, 256) {\n"
    "  int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;\n"
    "  if (e == 0 && p.status) p.sticky[0] |= p.status[0];\n"
    "  if (e >= p.n) return;\n"
    "  int64_t r = e / p.chw, q = e - r * p.chw;\n"
    "  int64_t o = r * (p.learn_sigma ? 2 * p.chw : p.chw) + q;\n"
    "  float xv = p.x[e], eps = DITC_SMP_O_LOAD(p.model_out[o]);\n"
    "  float z = p.noise ? p.noise[e] : 0.0f;\n"
    "  float pred_x0 = __fadd_rn(__fmul_rn(p.sr, xv), -__fmul_rn(p.srm1, eps));\n"
    "  float res;\n"
    "  if (p.ddpm) {\n"
    "    float mean = __fadd_rn(__fmul_rn(p.coef1, pred_x0), __fmul_rn(p.coef2, xv));\n"
    "    float log_var = p.fixed_log;\n"
    "    if (p.learn_sigma) {\n"
    "      float frac = __fadd_rn(DITC_SMP_O_LOAD(p.model_out[o + p.chw]), 1.0f) / 2.0f;\n"
    "      log_var = __fadd_rn(__fmul_rn(frac, p.max_log), __fmul_rn(__fadd_rn(1.0f, -frac), p.min_log));\n"
    "    }\n"
    "    res = p.add_noise ? __fadd_rn(mean, __fmul_rn(expf(__fmul_rn(0.5f, log_var)), z)) : mean;\n"
    "  } else {\n"
    "    float eps2 = __fadd_rn(__fmul_rn(p.sr, xv), -pred_x0) / p.srm1;\n"
    "    float mean = __fadd_rn(__fmul_rn(pred_x0, p.sqrt_ab_prev), __fmul_rn(p.dir_coef, eps2));\n"
    "    res = p.add_noise ? __fadd_rn(mean, __fmul_rn(p.sigma, z)) : mean;\n"
    "  }\n"
    "  p.x[e] = res;\n"
    "}\n"
    "\n"
    "typedef struct {\n"
    "  float *out;\n"
    "  int64_t n;\n"
    "  uint64_t counter;\n"
    "  uint32_t key_lo, key_hi;\n"
    "} DitcSamplerNormal;\n"
    "\n"
    "/* Philox-4x32-10 (Random123's philox4x32_R(10, ...)). */\n"
    "DITC_DEVICE static inline void ditc_smp_philox(uint32_t c[4], uint32_t k0, uint32_t k1) {\n"
    "  for (int round = 0; round < 10; round++) {\n"
    "    if (round > 0) {\n"
    "      k0 += 0x9E3779B9u;\n"
    "      k1 += 0xBB67AE85u;\n"
    "    }\n"
    "    uint64_t p0 = (uint64_t)0xD2511F53u * c[0], p1 = (uint64_t)0xCD9E8D57u * c[2];\n"
    "    uint32_t n0 = (uint32_t)(p1 >> 32) ^ c[1] ^ k0, n1 = (uint32_t)p1;\n"
    "    uint32_t n2 = (uint32_t)(p0 >> 32) ^ c[3] ^ k1, n3 = (uint32_t)p0;\n"
    "    c[0] = n0;\n"
    "    c[1] = n1;\n"
    "    c[2] = n2;\n"
    "    c[3] = n3;\n"
    "  }\n"
    "}\n"
    "\n"
    "/* A word -> uniform in (0, 1), as rng_normal's u01. */\n"
    "DITC_DEVICE static inline double ditc_smp_u01(uint32_t w) {\n"
    "  return ((double)w + 0.5) * (1.0 / 4294967296.0);\n"
    "}\n"
    "\n"
    "/* rng_normal's stream: block b gives normals 4b .. 4b+3 by Box-Muller\n"
    " * in double precision over word pairs (0, 1) and (2, 3). */\n"
    "DITC_KERNEL_BOUNDS(ditc_sampler_normal, DitcSamplerNormal, p, 256) {\n"
    "  int64_t b = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;\n"
    "  if (b * 4 >= p.n) return;\n"
    "  uint64_t ctr = p.counter + (uint64_t)b;\n"
    "  uint32_t w[4];\n"
    "  w[0] = (uint32_t)ctr;\n"
    "  w[1] = (uint32_t)(ctr >> 32);\n"
    "  w[2] = 0u;\n"
    "  w[3] = 0u;\n"
    "  ditc_smp_philox(w, p.key_lo, p.key_hi);\n"
    "  const double two_pi = 6.283185307179586476925286766559;\n"
    "  for (int h = 0; h < 2; h++) {\n"
    "    double rad = sqrt(-2.0 * log(ditc_smp_u01(w[2 * h]))), theta = two_pi * ditc_smp_u01(w[2 * h + 1]);\n"
    "    int64_t i = b * 4 + 2 * h;\n"
    "    if (i < p.n) p.out[i] = (float)(rad * cos(theta));\n"
    "    if (i + 1 < p.n) p.out[i + 1] = (float)(rad * sin(theta));\n"
    "  }\n"
    "}\n";

char *cg_sampler_source(const CgSamplerTypes *ty, IrErr *err) {
  const char *xt, *xs, *xl, *tt, *ts, *tl, *ot, *os, *ol;
  if (dtype_spell(ty->x, &xt, &xs, &xl) || dtype_spell(ty->t, &tt, &ts, &tl) ||
      dtype_spell(ty->out, &ot, &os, &ol)) {
    ir_errf(err, "sampler kernels: unsupported stored dtype (x %s, t %s, output %s)", ir_dtype_name(ty->x),
            ir_dtype_name(ty->t), ir_dtype_name(ty->out));
    return NULL;
  }
  (void)xl, (void)tl, (void)os;
  char head[1024];
  int n = snprintf(head, sizeof head,
                   "/* ditc sampler kernels: x stored as %s, t as %s, model output as %s */\n"
                   "typedef %s ditc_smp_x_t;\n#define DITC_SMP_X_STORE(v) %s(v)\n"
                   "typedef %s ditc_smp_t_t;\n#define DITC_SMP_T_STORE(v) %s(v)\n"
                   "typedef %s ditc_smp_o_t;\n#define DITC_SMP_O_LOAD(v) %s(v)\n\n",
                   ir_dtype_name(ty->x), ir_dtype_name(ty->t), ir_dtype_name(ty->out), xt, xs, tt, ts, ot, ol);
  DITC_ASSERT(n > 0 && (size_t)n < sizeof head);
  size_t len = (size_t)n + sizeof BODY;
  char *src = xmalloc(len);
  memcpy(src, head, (size_t)n);
  memcpy(src + n, BODY, sizeof BODY);
  return src;
}
