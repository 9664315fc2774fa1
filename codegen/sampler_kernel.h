/*
 * sampler_kernel.h - the sampler's kernels for the device backends: the
 * per-step DDPM / DDIM update of x, a Philox normal generator, and the
 * kernel that writes a step's inputs into a plan's arena.
 *
 * They let a device backend keep the whole sampling loop on the device: per
 * step, `inputs` writes x (both halves under classifier-free guidance), t, y
 * and cfg_scale into the plan's inputs in their stored dtype, the plan's
 * forward pass runs, `normal` draws the step's noise (or a replayed noise
 * tensor already on the device is used), and `step` updates x in place.
 *
 * The source is written in ditc's kernel dialect (codegen/emu_prelude.h), so
 * the emulator and NVRTC compile the same text.  It depends only on the
 * stored dtypes of the plan's x, t and model output, which are baked in.
 * The per-element arithmetic is runtime/sampler.c's sampler_step_apply in
 * the same float32 order, every product and sum written with __fmul_rn /
 * __fadd_rn so NVRTC cannot contract them into FMAs; the coefficients come
 * from sampler_step_coef.  The normal generator is rng_normal's mapping:
 * thread b computes Philox-4x32-10 of counter (base + b) and turns the four
 * words into four normals by Box-Muller in double precision.
 */
#ifndef DITC_CODEGEN_SAMPLER_KERNEL_H
#define DITC_CODEGEN_SAMPLER_KERNEL_H

#include <stdint.h>

#include "ir/ir.h"

/* Stored dtypes the kernels convert from and to: F32, F16 or BF16. */
typedef struct {
  IrDType x;    /* the plan's input x */
  IrDType t;    /* the plan's input t (and cfg_scale) */
  IrDType out;  /* the plan's output (eps, then v with learn_sigma) */
} CgSamplerTypes;

/* The kernels' source (malloc'd, free() it), without a prelude; NULL with
 * err for a dtype other than f32, f16, bf16. */
char *cg_sampler_source(const CgSamplerTypes *ty, IrErr *err);

#define CG_SAMPLER_KERNEL_INPUTS "ditc_sampler_inputs"
#define CG_SAMPLER_KERNEL_STEP "ditc_sampler_step"
#define CG_SAMPLER_KERNEL_NORMAL "ditc_sampler_normal"
/* Threads per block of every sampler kernel (1-D launches). */
#define CG_SAMPLER_BLOCK 256

/* The params structs, declared with the same members in the same order in
 * the source (whose pointers to stored dtypes are void * here). */

/* ditc_sampler_inputs: one thread per element of x_in ([rows_in, img]):
 * x_in[r, :] = x[r % rows, :]; thread r < rows_in also writes t_in[r] = t and
 * y_in[r] = labels[r]; thread 0 writes *s_in = cfg_scale when s_in is set. */
typedef struct {
  void *x_in;                 /* plan input x, stored dtype */
  void *t_in;                 /* plan input t, stored dtype */
  int32_t *y_in;              /* plan input y */
  void *s_in;                 /* plan input cfg_scale, or NULL */
  const float *x;             /* the sampler's x, [rows, img] f32 */
  const int32_t *labels;      /* [rows_in] */
  float t, cfg_scale;
  int64_t rows, rows_in, img;
} CgSamplerInputsParams;

/* ditc_sampler_step: one thread per element of x ([rows, C, hw], n of them).
 * model_out is [>= rows, C_out, hw].  With noise NULL the noise term is 0.
 * Thread 0 also ORs *status into *sticky when status is set, so a backend
 * reads the plan's status word once after the whole loop. */
typedef struct {
  float *x;
  const void *model_out;      /* stored dtype */
  const float *noise;         /* [rows, C, hw] or NULL */
  const int32_t *status;      /* the plan's status word, or NULL */
  int32_t *sticky;
  int64_t n, chw, hw;         /* rows*C*hw, C*hw, H*W */
  float sr, srm1, coef1, coef2, max_log, min_log, fixed_log;
  float sigma, sqrt_ab_prev, dir_coef;
  int ddpm;                   /* 1 DDPM, 0 DDIM */
  int learn_sigma;            /* C_out = 2C, v after eps */
  int add_noise;              /* 0 on the last step (kept index 0) */
} CgSamplerStepParams;

/* ditc_sampler_normal: one thread per Philox block (4 normals):
 * out[4b .. 4b+3] from counter + b, key {key_lo, key_hi}; n values in all. */
typedef struct {
  float *out;
  int64_t n;
  uint64_t counter;
  uint32_t key_lo, key_hi;
} CgSamplerNormalParams;

#endif
