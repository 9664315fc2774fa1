/*
 * calib.h - calibration statistics (passes/calib.h) measured on the
 * reference executor: the model's own sampler runs for N samples over the
 * graph the passes see at the place of the first pass that reads them, and
 * an observer (ref_set_observer) accumulates, per site of that graph:
 *
 *   attn.<s>.head_out  per head h of attention site s (prune_find_attention,
 *       for the sites prune_find_blocks finds in a block): the mean over
 *       every row, token and output channel, and over every model call, of
 *       |gate ⊙ (merged[.., h] · proj_w[:, h]ᵀ)|, merged the heads' outputs
 *       proj reads (columns h·hd .. (h+1)·hd), gate the adaLN gate proj's
 *       output is multiplied by: what head h adds to the residual stream (proj's
 *       bias is no head's).  The study's zeroed-head model (reference
 *       README, "Approximating passes") differs from the full one by exactly
 *       the removed heads' terms.
 *   mlp.<s>.act_abs    per hidden channel j of MLP site s (prune_find_mlps):
 *       mean over rows, tokens and calls of |GELU output[.., j]|.
 *   block.<i>.delta    block i (prune_find_blocks): per model call,
 *       Σ|x_out − x_in| / Σ|x_in| over all its values, then the mean over
 *       the calls (the calibration steps).
 *   linear.<weight name>.absmax  per linear whose weight is a named PARAM:
 *       the largest |x| of its input over all calls; per moe_linear
 *       (route-experts' experts), the largest |x| of its routed rows, for
 *       each named PARAM its stacked weight is made of.
 *
 * With guidance (cfg_scale != 1) the graph is forward_with_cfg and the
 * statistics cover its conditional and unconditional rows alike.
 *
 * The cache: one text file per key (rt_calib_cache_path), written
 * atomically, its last line the SHA-256 of the rest; a file that does not
 * check is removed and the statistics computed again.
 */
#ifndef DITC_RUNTIME_CALIB_H
#define DITC_RUNTIME_CALIB_H

#include "passes/calib.h"
#include "runtime/sampler.h"
#include "runtime/weights.h"

typedef struct {
  int samples;              /* N >= 1, sampled at once */
  SamplerKind kind;
  int steps, diffusion_steps;
  double cfg_scale;         /* != 1: g is forward_with_cfg (x, t, y, cfg_scale), else forward (x, t, y) */
  const int32_t *labels;    /* sample g gets labels[g mod n_labels] */
  int n_labels;
  uint64_t seed;            /* x_T and every step's noise from one Philox stream */
  int channels, size, classes, learn_sigma;
} RtCalibSettings;

/* Statistics and the PassCalib view the passes read (c->pc). */
typedef struct {
  PassCalib pc;
  PassCalibStat *stats;
  int n, cap;
  char *about;
} RtCalib;

/* "8 samples, ddpm 50 steps, guidance 1.5, labels 0,1,..., seed 0" */
void rt_calib_describe(const RtCalibSettings *s, char *buf, size_t n);
/* Run the sampler on g (weights w) and measure.  0, or -1 with err. */
int rt_calib_run(IrGraph *g, const Weights *w, const RtCalibSettings *s, RtCalib *c, IrErr *err);
void rt_calib_free(RtCalib *c);

/* SHA-256 hex of `text` followed by every bound PARAM of g (name, shape,
 * values), in graph order: the cache key. */
void rt_calib_key(IrGraph *g, const Weights *w, const char *text, char hex[65]);
/* <kernel cache dir>/calib/<hex>.txt, its directories created.  0 or -1. */
int rt_calib_cache_path(const char *hex, char *buf, size_t n, IrErr *err);
/* 1: read into *c; 0: no such file; -1: a file that does not check (removed,
 * err says why) or cannot be read. */
int rt_calib_load(const char *path, const char *hex, RtCalib *c, IrErr *err);
/* Atomically (ir/fileio.h).  0 or -1. */
int rt_calib_store(const RtCalib *c, const char *path, const char *hex, IrErr *err);

#endif
