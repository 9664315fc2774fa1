/*
 * calib.c - looking up calibration statistics (calib.h).
 */
#include <stdio.h>
#include <string.h>

#include "passes/calib.h"
#include "passes/passes.h"

const double *pass_calib_find(const PassCalib *c, const char *name, int64_t n) {
  for (int i = 0; c && i < c->n; i++)
    if (!strcmp(c->stats[i].name, name) && c->stats[i].n == n) return c->stats[i].v;
  return NULL;
}

int pass_calib_head_scores(const PassCalib *c, int site, int heads, double *score, IrErr *err) {
  char name[64];
  snprintf(name, sizeof name, "attn.%d.head_out", site);
  if (!c) return ir_errf(err, "criterion=calib " PASS_CALIB_NEEDED);
  const double *v = pass_calib_find(c, name, heads);
  if (!v) return ir_errf(err, "the calibration data (%s) has no statistic %s of %d values", c->about ? c->about : "?", name, heads);
  memcpy(score, v, (size_t)heads * sizeof *score);
  return 0;
}

int pass_calib_absmax(const PassCalib *c, const char *weight_name, double *out, IrErr *err) {
  char name[320];
  snprintf(name, sizeof name, "linear.%s.absmax", weight_name ? weight_name : "");
  if (!c) return ir_errf(err, "%s " PASS_CALIB_NEEDED, name);
  const double *v = pass_calib_find(c, name, 1);
  if (!v) return ir_errf(err, "the calibration data (%s) has no statistic %s", c->about ? c->about : "?", name);
  *out = v[0];
  return 0;
}

/* Step st's option `name` (NULL: the pass has none of that name). */
static const PassOptValue *step_opt(const PassStep *st, const char *name) {
  for (int k = 0; k < PASS_MAX_OPTS && st->pass->opts[k].name; k++)
    if (!strcmp(st->pass->opts[k].name, name)) return &st->values[k];
  return NULL;
}

int pass_pipeline_needs_calib(const PassPipeline *p, int from) {
  for (int i = from < 0 ? 0 : from; i < p->n; i++) {
    const PassStep *st = &p->steps[i];
    const char *name = st->pass->name;
    const PassOptValue *crit = step_opt(st, "criterion"), *sel = step_opt(st, "select");
    int undecided = !sel || !sel->t || !*sel->t;
    if ((!strcmp(name, "prune-heads") || !strcmp(name, "prune-mlp")) && crit && !strcmp(crit->s, "calib") && undecided) {
      const PassOptValue *amount = step_opt(st, !strcmp(name, "prune-heads") ? "keep" : "fraction");
      if (amount && (amount->i || amount->f)) return i;
    }
    if (!strcmp(name, "prune-blocks") && undecided && step_opt(st, "count") && step_opt(st, "count")->i) return i;
    const PassOptValue *mode = step_opt(st, "mode");
    const PassOptValue *scales = step_opt(st, "scales"); /* given: nothing to measure */
    if (!strcmp(name, "quantize") && mode && !strcmp(mode->s, "fp8") && (!scales || !scales->t || !*scales->t)) return i;
  }
  return -1;
}
