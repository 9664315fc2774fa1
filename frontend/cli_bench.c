/*
 * cli_bench.c - `ditc bench`: time forward passes on a backend.
 *
 * Inputs are drawn deterministically (x ~ N(0,1), t spread over 0..999,
 * labels i mod classes, guidance 4); the clock runs around each run() and so
 * includes the host-device copies of inputs and outputs.  The median and the
 * best run are reported, as text or one line of JSON (--report).  --profile
 * then times every step of the plan (backend.h: profile) and prints it beside
 * the roofline's prediction (codegen/roofline.h) for one GPU of the table.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codegen/roofline.h"
#include "frontend/cli.h"
#include "runtime/ref.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* The peak-table row --profile predicts with: --gpu, else the one whose id
 * the device's name contains ("NVIDIA H100 80GB HBM3" -> H100), else H100. */
static const CgGpu *profile_gpu(const Opts *o, const char *device, int *guessed) {
  *guessed = 0;
  if (o->gpu) return cg_gpu_find(o->gpu);
  int n;
  const CgGpu *g = cg_gpus(&n);
  for (int i = 0; i < n; i++) {
    const char *id = !strcmp(g[i].id, "RTX4090") ? "4090" : g[i].id;
    if (strstr(device, id)) return &g[i];
  }
  *guessed = 1;
  return cg_gpu_find("H100");
}

/* --profile: `reps` profiled passes, per step the median, printed (or added
 * to the JSON report) beside the prediction. */
static int profile(const Opts *o, Runner *rn, int reps, json_t *rep) {
  const CgPlan *p = rn->use;
  if (!p || !rn->be->profile)
    return cli_fail("--profile times the steps of a plan: use --backend emu or cuda (the %s backend has none)",
                    rn->backend);
  int n = p->n_steps;
  double *ms = xcalloc((size_t)n * (size_t)reps + 1, sizeof *ms), *col = xcalloc((size_t)reps + 1, sizeof *col);
  const char *device = "?";
  IrErr err;
  for (int r = 0; r < reps; r++)
    if (rn->be->profile(rn->be, ms + (size_t)r * (size_t)n, &device, &err)) {
      free(ms), free(col);
      return cli_fail("%s", err.msg);
    }
  int guessed;
  const CgGpu *g = profile_gpu(o, device, &guessed);
  double total = 0, predicted = 0;
  json_t *steps = json_array();
  for (int s = 0; s < n; s++) {
    for (int r = 0; r < reps; r++) col[r] = ms[(size_t)r * (size_t)n + s];
    qsort(col, (size_t)reps, sizeof *col, cmp_double);
    const CgStep *st = &p->steps[s];
    double m = col[reps / 2], pr = cg_predict_step(st, g).seconds * 1e3;
    total += m, predicted += pr;
    json_array_append_new(steps, json_pack("{s:s, s:s, s:s, s:f, s:f}", "step",
                                           st->kind == CG_STEP_GEMM ? "gemm" : p->kernels[st->kernel].name, "node",
                                           st->what ? st->what : "", "unit", cg_unit_name(st->unit), "measured_ms", m,
                                           "predicted_ms", pr));
  }
  free(ms), free(col);
  json_t *pj = json_pack("{s:s, s:s, s:b, s:i, s:f, s:f, s:o}", "device", device, "predicted_for", g->id,
                         "predicted_for_guessed", guessed, "passes", reps, "measured_total_ms", total,
                         "predicted_total_ms", predicted, "steps", steps);
  if (rep) {
    json_object_set_new(rep, "profile", pj);
    return 0;
  }
  printf("profile: every step timed on %s, median of %d passes; predicted: the roofline for %s (%s)%s\n", device,
         reps, g->name, g->arch, guessed ? ", not this device (--gpu picks the row)" : "");
  printf("  %5s  %-22s %12s %12s %8s  %-17s %s\n", "step", "kernel", "measured ms", "predicted ms", "ratio", "unit",
         "IR node");
  size_t i;
  json_t *sj;
  json_array_foreach(steps, i, sj) {
    double m = json_number_value(json_object_get(sj, "measured_ms")),
           pr = json_number_value(json_object_get(sj, "predicted_ms"));
    char ratio[32] = "-";
    if (pr > 0) snprintf(ratio, sizeof ratio, "%.2f", m / pr);
    printf("  %5zu  %-22s %12.4f %12.4f %8s  %-17s %s\n", i, json_string_value(json_object_get(sj, "step")), m, pr,
           ratio, json_string_value(json_object_get(sj, "unit")), json_string_value(json_object_get(sj, "node")));
  }
  printf("  total  %-22s %12.4f %12.4f %8.2f\n", "", total, predicted, predicted > 0 ? total / predicted : 0.0);
  json_decref(pj);
  return 0;
}

/* Time `iters` forward passes after `warmup` on the chosen backend, inputs
 * drawn deterministically (x ~ N(0,1), t spread over 0..999, labels i mod
 * classes, guidance 4).  Wall clock around each run(), which includes the
 * host-device copies of inputs and outputs. */
int cmd_bench(const Opts *o) {
  Opts oo = *o;
  if (o->gpu && !o->profile) return cli_usage("--gpu goes with --profile");
  if (o->gpu && !cg_gpu_find(o->gpu)) {
    int n;
    const CgGpu *g = cg_gpus(&n);
    char ids[128] = "";
    for (int i = 0; i < n; i++) snprintf(ids + strlen(ids), sizeof ids - strlen(ids), "%s%s", i ? ", " : "", g[i].id);
    return cli_usage("--gpu %s: not a row of codegen/gpus.def (%s)", o->gpu, ids);
  }
  if (o->profile && o->backend && !strcmp(o->backend, "ref"))
    return cli_usage("--profile times the steps of a plan: use --backend emu or cuda (ref runs the IR, not a plan)");
  if (!oo.weights && !oo.plan) oo.weights = "random";
  const char *entry = oo.entry ? oo.entry : "forward";
  int64_t batch = oo.batch ? oo.batch : 1;
  int iters = oo.iters ? (int)oo.iters : 20, warmup = oo.iters || oo.warmup ? (int)oo.warmup : 3;
  Runner rn;
  IrErr err;
  int rc = 1, n_out = 0;
  RtTensor *vals = NULL, *outs = NULL;
  json_t *prof = NULL;
  double *t = xcalloc((size_t)iters, sizeof *t);
  if (cli_runner_open(&oo, entry, &rn) || cli_runner_prepare(&oo, &rn, batch)) goto done;
  n_out = rn.use && !rn.built ? rn.use->n_outputs : rn.m.graph->n_outputs;
  vals = xcalloc((size_t)rn.n_in + 1, sizeof *vals);
  outs = xcalloc((size_t)n_out + 1, sizeof *outs);
  int64_t classes = cli_runner_param(&rn, "num_classes"), rows = batch;
  RtRng rng;
  rng_init(&rng, 0);
  for (int i = 0; i < rn.n_in; i++) {
    int64_t shape[4] = {0}, rank = 0;
    const char *nm = rn.in_names[i];
    size_t base_len; /* ENTRY.cache_full / ENTRY.cache_step: step caching's entries of ENTRY */
    pass_step_cache_role(entry, &base_len);
    int cfg = base_len == strlen("forward_with_cfg") && !strncmp(entry, "forward_with_cfg", base_len);
    rows = cfg ? 2 * batch : batch;
    if (!strcmp(nm, "x")) {
      int64_t c = cli_runner_param(&rn, "in_channels"), s = cli_runner_param(&rn, "input_size");
      shape[0] = rows, shape[1] = c, shape[2] = s, shape[3] = s, rank = 4;
    } else if (!strcmp(nm, "t") || !strcmp(nm, "y")) {
      shape[0] = rows, rank = 1;
    } else if (!strncmp(nm, "cache.", 6)) { /* a kept block delta [rows, tokens, hidden] */
      int64_t s = cli_runner_param(&rn, "input_size"), p = cli_runner_param(&rn, "patch_size");
      shape[0] = rows, shape[1] = p > 0 ? (s / p) * (s / p) : 0, shape[2] = cli_runner_param(&rn, "hidden_size");
      rank = 3;
    } else if (strcmp(nm, "cfg_scale")) {
      cli_fail("bench does not know how to fill the input '%s'", nm);
      goto done;
    }
    vals[i] = rt_tensor_new(rn.in_dtypes[i], (int)rank, shape);
    int64_t n = rt_numel(&vals[i]);
    int normal = !strcmp(nm, "x") || !strncmp(nm, "cache.", 6);
    if (normal) rng_normal(&rng, vals[i].data, n);
    for (int64_t k = 0; k < n && !normal; k++) {
      int64_t v = !strcmp(nm, "t") ? (k * 97) % 1000 : !strcmp(nm, "y") ? k % (classes + 1) : 4;
      if (vals[i].dtype == IR_I32) ((int32_t *)vals[i].data)[k] = (int32_t)v;
      else ((float *)vals[i].data)[k] = (float)v;
    }
  }
  for (int r = 0; r < warmup + iters; r++) {
    double t0 = now_s();
    if (rn.be->run(rn.be, vals, outs, &err)) {
      cli_fail("%s", err.msg);
      goto done;
    }
    if (r >= warmup) t[r - warmup] = now_s() - t0;
    for (int k = 0; k < n_out; k++) rt_tensor_free(&outs[k]);
  }
  qsort(t, (size_t)iters, sizeof *t, cmp_double);
  double med = t[iters / 2], imgs = (double)batch / med;
  const CgPlan *p = rn.use;
  const char *model = oo.plan ? oo.plan : oo.model;
  if (oo.report && oo.profile) { /* measured before anything is printed: no half a report */
    prof = json_object();
    if (profile(&oo, &rn, iters, prof)) goto done;
  }
  if (oo.report) {
    printf("{\"model\": \"%s\", \"entry\": \"%s\", \"backend\": \"%s\", \"precision\": \"%s\", "
           "\"batch\": %lld, \"iters\": %d, \"median_ms\": %.4f, \"min_ms\": %.4f, \"images_per_s\": %.3f",
           model, entry, rn.backend, p ? ir_dtype_name(p->precision) : "f32", (long long)batch, iters, med * 1e3,
           t[0] * 1e3, imgs);
    if (p)
      printf(", \"tuning\": \"%s\", \"steps\": %d, \"arena_bytes\": %lld, \"weights_bytes\": %lld", p->tuning,
             p->n_steps, (long long)p->arena_bytes, (long long)p->weights_bytes);
    if (rn.be->device_bytes) printf(", \"device_bytes\": %lld", (long long)rn.be->device_bytes(rn.be));
    if (prof) {
      char *txt = json_dumps(json_object_get(prof, "profile"), JSON_COMPACT);
      printf(", \"profile\": %s", txt);
      free(txt);
    }
    printf("}\n");
  } else {
    printf("%s %s on %s (%s), batch %lld: median %.3f ms, best %.3f ms over %d runs, %.2f images/s\n", model,
           entry, rn.backend, p ? ir_dtype_name(p->precision) : "f32", (long long)batch, med * 1e3, t[0] * 1e3,
           iters, imgs);
    if (oo.profile && profile(&oo, &rn, iters, NULL)) goto done;
  }
  rc = 0;
done:
  for (int i = 0; i < rn.n_in && vals; i++) rt_tensor_free(&vals[i]);
  free(vals);
  free(outs);
  free(t);
  json_decref(prof);
  cli_runner_free(&rn);
  return rc;
}

