/*
 * calib.c - looking up calibration statistics (calib.h).
 */
#include <stdio.h>
#include <string.h>

#include "passes/calib.h"

const double *pass_calib_find(const PassCalib *c, const char *name, int64_t n) {
  for (int i = 0; c && i < c->n; i++)
    if (!strcmp(c->stats[i].name, name) && c->stats[i].n == n) return c->stats[i].v;
  return NULL;
}

int pass_calib_absmax(const PassCalib *c, const char *weight_name, double *out, IrErr *err) {
  char name[512];
  snprintf(name, sizeof name, "linear.%s.absmax", weight_name);
  if (!c) return ir_errf(err, "--quantize fp8 needs calibration data (--calibrate N)");
  const double *v = pass_calib_find(c, name, 1);
  if (!v) return ir_errf(err, "the calibration data (%s) has no statistic %s of 1 value", c->about ? c->about : "?", name);
  *out = v[0];
  return 0;
}

int pass_calib_head_scores(const PassCalib *c, int site, int heads, double *score, IrErr *err) {
  char name[64];
  snprintf(name, sizeof name, "attn.%d.head_out", site);
  if (!c) return ir_errf(err, "criterion=calib needs calibration data (the command's --calibrate N)");
  const double *v = pass_calib_find(c, name, heads);
  if (!v) return ir_errf(err, "the calibration data (%s) has no statistic %s of %d values", c->about ? c->about : "?", name, heads);
  memcpy(score, v, (size_t)heads * sizeof *score);
  return 0;
}
