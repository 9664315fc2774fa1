/*
 * calib.h - calibration statistics as the passes read them: data the
 * runtime produces (runtime/calib.h runs the model's sampler on the
 * reference executor) and the command line hands to the pass manager
 * (PassOptions.calib).  The passes never run a model.
 *
 * A PassCalib is a list of named vectors of doubles.  Names say what and
 * where: "<site kind>.<site index>.<statistic>", the site index counting the
 * sites prune_find_attention / prune_find_mlps (passes/prune.h) find in the
 * graph the passes see (runtime/calib.h says exactly how each is measured):
 *   attn.<s>.head_out    per head h: mean over tokens and output channels of
 *                        |gate * (merged[:, h] proj_w[:, h]^T)|, the head's
 *                        gated contribution to the residual stream
 *   mlp.<s>.act_abs      per hidden channel: mean |GELU output|
 *   block.<i>.delta      one value: sum |x_out - x_in| / sum |x_in| of block
 *                        i, averaged over the calibration steps
 *   linear.<weight name>.absmax   one value: the largest |x| of the linear's
 *                        input, e.g. linear.blocks.0.attn.qkv.weight.absmax
 */
#ifndef DITC_PASSES_CALIB_H
#define DITC_PASSES_CALIB_H

#include <stdint.h>

#include "ir/ir.h"

/* What a pass says when it reads calibration data the command did not give it. */
#define PASS_CALIB_NEEDED \
  "needs calibration data, which a command given --weights measures (run, sample, check, bench, compile: " \
  "--calibrate N samples of the model's sampler)"

typedef struct {
  const char *name;
  int64_t n;
  const double *v;
} PassCalibStat;

typedef struct PassCalib {
  int n;
  const PassCalibStat *stats;
  const char *about; /* how they were made, for messages ("8 samples, ddpm 50, cfg 1.5") */
} PassCalib;

/* The statistic `name` with exactly n values, or NULL. */
const double *pass_calib_find(const PassCalib *c, const char *name, int64_t n);
/* Heads' scores of attention site `site` (statistic attn.<site>.head_out);
 * -1 with err when there is no calibration data or no such statistic. */
int pass_calib_head_scores(const PassCalib *c, int site, int heads, double *score, IrErr *err);
/* The first step of p from step `from` on that reads calibration data:
 * prune-heads or prune-mlp with criterion=calib, prune-blocks with a count
 * and no select, quantize with mode=fp8 (and no decision spelled out).
 * Its index, or -1 when none does. */
struct PassPipeline;
int pass_pipeline_needs_calib(const struct PassPipeline *p, int from);

/* The largest |x| seen at the input of the linear whose weight is parameter
 * weight_name (statistic linear.<weight_name>.absmax, one value) into *out;
 * -1 with err when there is no calibration data or no such statistic. */
int pass_calib_absmax(const PassCalib *c, const char *weight_name, double *out, IrErr *err);

#endif
