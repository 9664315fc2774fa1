/*
 * calib.h - calibration statistics as the passes read them: data the
 * runtime produces (runtime/calib.h runs the model's sampler on the
 * reference executor) and the command line hands to the pass manager
 * (PassOptions.calib).  The passes never run a model.
 *
 * A PassCalib is a list of named vectors of doubles.  Names say what and
 * where: "<site kind>.<site index>.<statistic>", the site index counting the
 * sites prune_find_attention / prune_find_mlps (passes/prune.h) find in the
 * graph the passes see, e.g. "attn.3.head_out" (per head: mean |gated
 * output| of the head through proj), "mlp.0.act_abs" (per hidden channel:
 * mean |activation|), "block.2.delta" (one value: mean |block output -
 * input| / |input|).  The int8 passes may add their own ("linear.<i>.absmax").
 */
#ifndef DITC_PASSES_CALIB_H
#define DITC_PASSES_CALIB_H

#include <stdint.h>

#include "ir/ir.h"

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

/* The largest |x| seen at the input of the linear whose weight is parameter
 * weight_name (statistic linear.<weight_name>.absmax, one value) into *out;
 * -1 with err when there is no calibration data or no such statistic. */
int pass_calib_absmax(const PassCalib *c, const char *weight_name, double *out, IrErr *err);

#endif
