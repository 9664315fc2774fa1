/*
 * bench_cpu.c - forward-pass latency of the reference executor on this CPU.
 *
 *   bench_cpu [--models DiT-XS/4,DiT-S/2,...] [--batch 1] [--runs 5] [--out FILE.md]
 *
 * For each model: elaborate `forward`, run the default pass pipeline, bind
 * deterministic random weights, run once to warm up, then time `runs` forward
 * passes (wall clock, CLOCK_MONOTONIC) and report the median and the best,
 * with GMACs and the achieved GMAC/s.  The table goes to stdout and, with
 * --out, to a Markdown file with the command, the host and the date.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "frontend/frontend.h"
#include "passes/passes.h"
#include "runtime/ref.h"
#include "runtime/weights.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Fill every input with deterministic values of the right dtype and shape. */
static void make_inputs(IrGraph *g, int64_t batch, RtTensor *vals, int64_t classes) {
  IrNode **in;
  int n = ir_graph_inputs(g, &in);
  for (int i = 0; i < n; i++) {
    int64_t shape[IR_MAX_RANK];
    for (int d = 0; d < in[i]->shape.rank; d++) shape[d] = ir_dim_eval(in[i]->shape.d[d], batch);
    vals[i] = rt_tensor_new(in[i]->dtype, in[i]->shape.rank, shape);
    int64_t numel = rt_numel(&vals[i]);
    for (int64_t k = 0; k < numel; k++) {
      if (in[i]->dtype == IR_I32)
        ((int32_t *)vals[i].data)[k] = (int32_t)(k % classes);
      else if (!strcmp(in[i]->name, "t"))
        ((float *)vals[i].data)[k] = (float)((k * 97) % 1000);
      else
        ((float *)vals[i].data)[k] = (float)((k * 7919) % 2000) / 1000.0f - 1.0f;
    }
  }
}

static int bench(const char *model, int batch, int runs, FILE *md) {
  FeModel m;
  if (fe_build(model, NULL, 0, "forward", stderr, &m)) return -1;
  IrErr err;
  PassOptions po = {0};
  Weights w = {0};
  RefExec *ex = NULL;
  int rc = -1;
  RtTensor vals[8] = {{0}}, out = {0};
  double *t = calloc((size_t)runs, sizeof *t);
  if (pass_run_pipeline(m.graph, "default", &po, &err) || weights_random(m.graph, 0, &w, &err) ||
      !(ex = ref_prepare(m.graph, &w, batch, &err))) {
    fprintf(stderr, "%s: %s\n", model, err.msg);
    goto done;
  }
  make_inputs(m.graph, batch, vals, fe_param_int(&m, "num_classes", 1000));
  if (ref_run(ex, vals, &out, &err)) {
    fprintf(stderr, "%s: %s\n", model, err.msg);
    goto done;
  }
  rt_tensor_free(&out);
  for (int r = 0; r < runs; r++) {
    double t0 = now();
    if (ref_run(ex, vals, &out, &err)) {
      fprintf(stderr, "%s: %s\n", model, err.msg);
      goto done;
    }
    t[r] = now() - t0;
    rt_tensor_free(&out);
  }
  qsort(t, (size_t)runs, sizeof *t, cmp_double);
  IrCost c;
  ir_cost(m.graph, batch, IR_F32, &c);
  double med = t[runs / 2];
  char line[256];
  snprintf(line, sizeof line, "| %s | %d | %.2f | %.3f | %.1f | %.1f | %.1f |", model, batch, c.params / 1e6,
           c.macs / 1e9, med * 1e3, t[0] * 1e3, c.macs / med / 1e9);
  puts(line);
  if (md) fprintf(md, "%s\n", line);
  rc = 0;
done:
  for (int i = 0; i < 8; i++) rt_tensor_free(&vals[i]);
  free(t);
  ref_free(ex);
  weights_free(&w);
  fe_model_free(&m);
  return rc;
}

int main(int argc, char **argv) {
  const char *models = "DiT-XS/4,DiT-XS/2,DiT-S/4,DiT-S/2,DiT-B/2";
  const char *out = NULL;
  int batch = 1, runs = 5;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--models") && i + 1 < argc) models = argv[++i];
    else if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--runs") && i + 1 < argc) runs = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
    else {
      fprintf(stderr, "usage: bench_cpu [--models A,B] [--batch N] [--runs N] [--out FILE.md]\n");
      return 2;
    }
  }
  if (batch < 1 || runs < 1) {
    fprintf(stderr, "bench_cpu: --batch and --runs must be >= 1\n");
    return 2;
  }
  FILE *md = NULL;
  if (out && !(md = fopen(out, "w"))) {
    perror(out);
    return 1;
  }
  char host[256] = "?";
  gethostname(host, sizeof host);
  time_t now_t = time(NULL);
  char date[64];
  strftime(date, sizeof date, "%Y-%m-%d", gmtime(&now_t));
  const char *head = "| model | batch | params (M) | GMACs | median (ms) | best (ms) | GMAC/s |\n"
                     "|---|---|---|---|---|---|---|";
  if (md) {
    fprintf(md, "# Reference executor (CPU, fp32) forward latency\n\n");
    fprintf(md, "Command: `bench_cpu --models %s --batch %d --runs %d`  \nDate: %s  \nHost: %s, %ld cores online\n\n",
            models, batch, runs, date, host, sysconf(_SC_NPROCESSORS_ONLN));
    fprintf(md, "%s\n", head);
  }
  puts(head);
  char *list = strdup(models);
  int rc = 0;
  for (char *save, *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
    if (bench(tok, batch, runs, md)) rc = 1;
  free(list);
  if (md) fclose(md);
  return rc;
}
