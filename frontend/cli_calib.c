/*
 * cli_calib.c - the calibration data the passes that read it get
 * (--calibrate N): the command's own sampler (sample: its --sampler,
 * --steps, --cfg-scale, labels and --seed; every other command: DDPM 50
 * steps, guidance 1.5, labels 0..C-1, seed 0) over MODEL's graph as the
 * pipeline leaves it just before the first pass that reads the data, on the
 * reference executor, measured once and cached next to the kernel cache
 * (runtime/calib.h), keyed by the weights, the model with its settings, the
 * passes before that place and the calibration settings.  One process
 * measures once for all the entries it builds.
 */
#include <stdlib.h>
#include <string.h>

#include "frontend/cli.h"
#include "runtime/calib.h"

#define CALIB_DEFAULT_SAMPLES 8
#define CALIB_DEFAULT_STEPS 50
#define CALIB_DEFAULT_CFG 1.5

static RtCalib memo;
static char memo_key[65];

static const float *weight_of(void *ctx, const IrNode *param) { return weights_get(ctx, param); }

/* The settings of o's calibration for model m (labels allocated). */
static int settings_of(const Opts *o, const FeModel *m, RtCalibSettings *s) {
  int sample = !strcmp(o->cmd, "sample");
  memset(s, 0, sizeof *s);
  s->samples = o->calibrate ? (int)o->calibrate : CALIB_DEFAULT_SAMPLES;
  s->channels = (int)fe_param_int(m, "in_channels", 0);
  s->size = (int)fe_param_int(m, "input_size", 0);
  s->classes = (int)fe_param_int(m, "num_classes", 0);
  s->learn_sigma = (int)fe_param_int(m, "learn_sigma", 0);
  if (s->channels < 1 || s->size < 1 || s->classes < 1)
    return cli_fail("calibration runs a class-conditional image model's sampler: %s has in_channels %d, "
                    "input_size %d, num_classes %d", o->model, s->channels, s->size, s->classes);
  s->kind = sample && o->sampler && !strcmp(o->sampler, "ddim") ? SAMPLER_DDIM : SAMPLER_DDPM;
  s->steps = sample && o->steps > 0 ? (int)o->steps : CALIB_DEFAULT_STEPS;
  s->diffusion_steps = sample ? (int)o->diffusion_steps : 1000;
  s->cfg_scale = sample ? o->cfg_scale : CALIB_DEFAULT_CFG;
  s->seed = sample ? (uint64_t)o->seed : 0;
  int32_t *labels = xmalloc((size_t)s->samples * sizeof *labels);
  s->labels = labels;
  s->n_labels = s->samples;
  if (sample) return cli_sample_labels(o, s->classes, s->samples, labels);
  for (int g = 0; g < s->samples; g++) labels[g] = g % s->classes;
  return 0;
}

/* What besides the weights the statistics depend on, as text. */
static char *key_text(const Opts *o, const PassPipeline *prefix, const RtCalibSettings *s, const char *entry) {
  char *pipe = pass_pipeline_text(prefix), about[512];
  rt_calib_describe(s, about, sizeof about);
  size_t cap = strlen(pipe) + strlen(o->model) + 2048, len = 0;
  for (int i = 0; i < o->n_sets; i++) cap += strlen(o->sets[i].name) + strlen(o->sets[i].value) + 4;
  char *t = xmalloc(cap);
  len += (size_t)snprintf(t + len, cap - len, "calib 1\nmodel %s\nentry %s\n", o->model, entry);
  FeSetting sets[CLI_MAX_SETTINGS];
  int n = cli_settings(o, sets);
  for (int i = 0; i < n; i++) len += (size_t)snprintf(t + len, cap - len, "set %s=%s\n", sets[i].name, sets[i].value);
  len += (size_t)snprintf(t + len, cap - len, "passes %s\nlearn_sigma %d\n%s\nlabels", pipe, s->learn_sigma, about);
  free(pipe);
  char *full = xmalloc(len + 16 * (size_t)s->n_labels + 2);
  memcpy(full, t, len);
  for (int i = 0; i < s->n_labels; i++) len += (size_t)sprintf(full + len, " %d", s->labels[i]);
  full[len] = 0;
  free(t);
  return full;
}

int cli_calibration(const Opts *o, const FeModel *model, const char *spec, const PassCalib **out) {
  *out = NULL;
  const PassPipeline *p = &o->pipeline;
  int first = pass_pipeline_needs_calib(p, 0);
  if (first < 0 || !spec) return 0;
  /* statistics by site index: after blocks are dropped, a later pass's sites are not the measured ones
   * (linear.<weight>.absmax, named by weight, still are) */
  for (int k = first; !strcmp(p->steps[first].pass->name, "prune-blocks") && (k = pass_pipeline_needs_calib(p, k + 1)) >= 0;)
    if (strcmp(p->steps[k].pass->name, "quantize"))
      return cli_fail("prune-blocks drops blocks on calibration data, and a later pass (%s) reads statistics of the "
                      "blocks as they were: give the dropped blocks (prune-blocks:count=N:select=I.J)",
                      p->steps[k].pass->name);
  RtCalibSettings s;
  IrErr err;
  FeModel m;
  FeSetting sets[CLI_MAX_SETTINGS];
  int n = cli_settings(o, sets), rc = 1;
  const char *entry = NULL;
  Weights w = {0};
  PassPipeline *prefix = xmalloc(sizeof *prefix);
  char *text = NULL;
  memset(&s, 0, sizeof s);
  memset(&m, 0, sizeof m);
  if (settings_of(o, model, &s)) goto out;
  entry = s.cfg_scale != 1.0 ? "forward_with_cfg" : "forward";
  if (fe_build(o->model, sets, n, entry, stderr, &m)) {
    cli_fail("%s: calibration needs the entry %s (errors above)", o->model, entry);
    goto out;
  }
  if (weights_open(m.graph, spec, &w, &err)) {
    cli_fail("%s", err.msg);
    goto free_model;
  }
  *prefix = *p;
  prefix->n = first;
  PassOptions po = {.verify = 1, .weight = weight_of, .weight_ctx = &w};
  if (pass_pipeline_run(m.graph, prefix, &po, &err)) {
    cli_fail("calibration: %s", err.msg);
    goto free_model;
  }
  text = key_text(o, prefix, &s, entry);
  char key[65], path[1200], about[512];
  rt_calib_key(m.graph, &w, text, key);
  if (memo.pc.stats && !strcmp(memo_key, key)) {
    *out = &memo.pc;
    rc = 0;
    goto free_model;
  }
  rt_calib_free(&memo);
  rt_calib_describe(&s, about, sizeof about);
  int cached = !rt_calib_cache_path(key, path, sizeof path, &err);
  if (!cached) cli_warn(err.msg);
  int got = cached ? rt_calib_load(path, key, &memo, &err) : 0;
  if (got < 0) cli_warn(err.msg);
  if (got > 0) {
    fprintf(stderr, "ditc: calibration: %s, from the cache (%s)\n", memo.about, path);
  } else {
    fprintf(stderr, "ditc: calibration: running %s on the reference executor for %s (cached in %s)\n", about,
            p->steps[first].pass->name, cached ? path : "nowhere: no cache directory");
    if (rt_calib_run(m.graph, &w, &s, &memo, &err)) {
      cli_fail("calibration: %s", err.msg);
      goto free_model;
    }
    if (cached && rt_calib_store(&memo, path, key, &err)) cli_warn(err.msg);
  }
  memcpy(memo_key, key, sizeof key);
  *out = &memo.pc;
  rc = 0;
free_model:
  weights_free(&w);
  fe_model_free(&m);
out:
  free(text);
  free((int32_t *)s.labels);
  free(prefix);
  return rc;
}
