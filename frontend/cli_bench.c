/*
 * cli_bench.c - `ditc bench`: time forward passes on a backend.
 *
 * Inputs are drawn deterministically (x ~ N(0,1), t spread over 0..999,
 * labels i mod classes, guidance 4); the clock runs around each run() and so
 * includes the host-device copies of inputs and outputs.  The median and the
 * best run are reported, as text or one line of JSON (--report).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* Time `iters` forward passes after `warmup` on the chosen backend, inputs
 * drawn deterministically (x ~ N(0,1), t spread over 0..999, labels i mod
 * classes, guidance 4).  Wall clock around each run(), which includes the
 * host-device copies of inputs and outputs. */
int cmd_bench(const Opts *o) {
  Opts oo = *o;
  if (!oo.weights && !oo.plan) oo.weights = "random";
  const char *entry = oo.entry ? oo.entry : "forward";
  int64_t batch = oo.batch ? oo.batch : 1;
  int iters = oo.iters ? (int)oo.iters : 20, warmup = oo.iters || oo.warmup ? (int)oo.warmup : 3;
  Runner rn;
  IrErr err;
  int rc = 1, n_out = 0;
  RtTensor *vals = NULL, *outs = NULL;
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
    int cfg = !strcmp(entry, "forward_with_cfg");
    rows = cfg ? 2 * batch : batch;
    if (!strcmp(nm, "x")) {
      int64_t c = cli_runner_param(&rn, "in_channels"), s = cli_runner_param(&rn, "input_size");
      shape[0] = rows, shape[1] = c, shape[2] = s, shape[3] = s, rank = 4;
    } else if (!strcmp(nm, "t") || !strcmp(nm, "y")) {
      shape[0] = rows, rank = 1;
    } else if (strcmp(nm, "cfg_scale")) {
      cli_fail("bench does not know how to fill the input '%s'", nm);
      goto done;
    }
    vals[i] = rt_tensor_new(rn.in_dtypes[i], (int)rank, shape);
    int64_t n = rt_numel(&vals[i]);
    if (!strcmp(nm, "x")) rng_normal(&rng, vals[i].data, n);
    for (int64_t k = 0; k < n && strcmp(nm, "x"); k++) {
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
  if (oo.report) {
    printf("{\"model\": \"%s\", \"entry\": \"%s\", \"backend\": \"%s\", \"precision\": \"%s\", "
           "\"batch\": %lld, \"iters\": %d, \"median_ms\": %.4f, \"min_ms\": %.4f, \"images_per_s\": %.3f",
           model, entry, rn.backend, p ? ir_dtype_name(p->precision) : "f32", (long long)batch, iters, med * 1e3,
           t[0] * 1e3, imgs);
    if (p)
      printf(", \"tuning\": \"%s\", \"steps\": %d, \"arena_bytes\": %lld, \"weights_bytes\": %lld", p->tuning,
             p->n_steps, (long long)p->arena_bytes, (long long)p->weights_bytes);
    if (rn.be->device_bytes) printf(", \"device_bytes\": %lld", (long long)rn.be->device_bytes(rn.be));
    printf("}\n");
  } else {
    printf("%s %s on %s (%s), batch %lld: median %.3f ms, best %.3f ms over %d runs, %.2f images/s\n", model,
           entry, rn.backend, p ? ir_dtype_name(p->precision) : "f32", (long long)batch, med * 1e3, t[0] * 1e3,
           iters, imgs);
  }
  rc = 0;
done:
  for (int i = 0; i < rn.n_in && vals; i++) rt_tensor_free(&vals[i]);
  free(vals);
  free(outs);
  free(t);
  cli_runner_free(&rn);
  return rc;
}

