/*
 * cli_inspect.c - the commands that look without running: `ditc check`
 * (parse, elaborate, verify, bind), `ditc ir` (the IR, after a pass, the op
 * table, the passes), `ditc stats` (the cost model), `ditc compare` (the
 * relative L2 error of two tensors) and `ditc models`.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/cli.h"
#include "runtime/sampler.h"

int cmd_check(const Opts *o) {
  /* the default entry first (forward: its weights are bound), then every other entry of the model */
  FeModel first;
  if (cli_build(o, NULL, &first)) return 1;
  int n = first.n_entries, rc = 0;
  for (int e = -1; e < n && !rc; e++) {
    const char *entry = e < 0 ? first.graph->name : first.entries[e];
    if (e >= 0 && !strcmp(entry, first.graph->name)) continue;
    FeModel m;
    if (e < 0) m = first;
    else if (cli_build(o, entry, &m)) {
      rc = 1;
      break;
    }
    IrErr err;
    IrCost c;
    if (ir_verify(m.graph, &err)) {
      rc = cli_fail("%s: the IR does not verify: %s", entry, err.msg);
    } else {
      ir_cost(m.graph, 1, IR_F32, &c);
      printf("%s: %s: %lld nodes, %lld parameters: ok\n", o->model, entry, (long long)c.nodes, (long long)c.params);
      Weights w = {0};
      if (o->weights && e < 0) {
        if (weights_open(m.graph, o->weights, &w, &err)) rc = cli_fail("%s", err.msg);
        else printf("%s: weights %s bind: ok\n", o->model, o->weights);
        weights_free(&w);
      }
    }
    if (e >= 0) fe_model_free(&m);
  }
  fe_model_free(&first);
  return rc;
}

int cmd_ir(const Opts *o) {
  if (o->ops || o->passes_help) {
    if (o->ops) ir_ops_print(stdout);
    if (o->passes_help) pass_print_help(stdout);
    return 0;
  }
  FeModel m;
  if (cli_build(o, o->entry, &m)) return 1;
  if (!o->dump_after) ir_dump(m.graph, stdout);
  fe_model_free(&m);
  return 0;
}

/* stats --cache-interval: MACs per image of a sampling run of --steps S
 * with step caching beside the uncached run; full steps run the entry with
 * every block, cached steps its cached entry (passes/step_cache.c). */
static int stats_cached(const Opts *o, IrDType wt, int64_t batch) {
  if (o->steps < 1) return cli_usage("--cache-interval counts MACs over a sampling run: give --steps S");
  if (o->cache_warmup > o->steps)
    return cli_usage("--cache-warmup %lld is more than the %lld steps (--steps)", o->cache_warmup, o->steps);
  FeModel full, cached;
  if (cli_build_role(o, o->entry, "full", &full)) return 1;
  if (cli_build_role(o, o->entry, "cached", &cached)) {
    fe_model_free(&full);
    return 1;
  }
  IrCost cf, cc;
  ir_cost(full.graph, batch, wt, &cf);
  ir_cost(cached.graph, batch, wt, &cc);
  int S = (int)o->steps, N = (int)o->cache_interval, W = o->cache_warmup < 0 ? 0 : (int)o->cache_warmup;
  int F = sampler_cache_full_steps(S, N, W), C = S - F;
  double per = (cf.macs * F + cc.macs * C) / (double)batch, unc = cf.macs * S / (double)batch;
  double blocks = (cf.macs - cc.macs) * F / (double)batch, blocks_unc = (cf.macs - cc.macs) * S / (double)batch;
  if (o->json) {
    printf("{\"model\": \"%s\", \"entry\": \"%s\", \"batch\": %lld, \"steps\": %d, \"cache_interval\": %d, "
           "\"cache_warmup\": %d, \"full_steps\": %d, \"cached_steps\": %d, \"macs_full_step\": %.0f, "
           "\"macs_cached_step\": %.0f, \"macs_per_image\": %.0f, \"macs_per_image_uncached\": %.0f, "
           "\"block_macs_per_image\": %.0f, \"block_macs_per_image_uncached\": %.0f, \"params\": %lld}\n",
           full.config ? full.config : o->model, o->entry ? o->entry : "forward", (long long)batch, S, N, W, F, C,
           cf.macs, cc.macs, per, unc, blocks, blocks_unc, (long long)cf.params);
  } else {
    printf("model             %s\n", full.config ? full.config : o->model);
    printf("entry             %s (batch %lld)\n", o->entry ? o->entry : "forward", (long long)batch);
    printf("steps             %d: %d full, %d cached (interval %d, warm-up %d)\n", S, F, C, N, W);
    printf("MACs a step       %.0f full, %.0f cached\n", cf.macs, cc.macs);
    printf("MACs per image    %.0f (%.3f G), uncached %.0f (%.3f G): %.1f%%\n", per, per / 1e9, unc, unc / 1e9,
           unc > 0 ? 100.0 * per / unc : 0.0);
    printf("blocks' MACs      %.0f per image, uncached %.0f\n", blocks, blocks_unc);
  }
  fe_model_free(&full);
  fe_model_free(&cached);
  return 0;
}

int cmd_stats(const Opts *o) {
  FeModel m;
  if (o->cache_interval < 1 && (o->steps >= 1 || o->cache_warmup >= 0))
    return cli_usage("--steps and --cache-warmup go with --cache-interval N");
  if (o->cache_interval >= 1) {
    IrDType wt0;
    ir_dtype_parse(o->weight_dtype, &wt0);
    return stats_cached(o, wt0, o->batch ? o->batch : 1);
  }
  if (cli_build(o, o->entry, &m)) return 1;
  IrDType wt;
  ir_dtype_parse(o->weight_dtype, &wt);
  int64_t batch = o->batch ? o->batch : 1;
  IrCost c;
  ir_cost(m.graph, batch, wt, &c);
  if (o->json) {
    printf("{\"model\": \"%s\", \"entry\": \"%s\", \"batch\": %lld, \"params\": %lld, \"macs\": %.0f, "
           "\"gmacs\": %.4f, \"weight_bytes\": %lld, \"weight_dtype\": \"%s\", \"activation_bytes\": %.0f, "
           "\"nodes\": %lld}\n",
           m.config ? m.config : o->model, m.graph->name, (long long)batch, (long long)c.params, c.macs,
           c.macs / 1e9, (long long)c.weight_bytes, o->weight_dtype, c.activation_bytes, (long long)c.nodes);
  } else {
    printf("model             %s\n", m.config ? m.config : o->model);
    printf("entry             %s (batch %lld)\n", m.graph->name, (long long)batch);
    printf("parameters        %lld (%.2f M)\n", (long long)c.params, c.params / 1e6);
    printf("MACs              %.0f (%.3f G)\n", c.macs, c.macs / 1e9);
    printf("weight bytes      %lld (%s, %.1f MiB)\n", (long long)c.weight_bytes, o->weight_dtype,
           c.weight_bytes / 1048576.0);
    printf("activation bytes  %.0f (every node's output, %.1f MiB)\n", c.activation_bytes,
           c.activation_bytes / 1048576.0);
    printf("IR nodes          %lld\n", (long long)c.nodes);
  }
  fe_model_free(&m);
  return 0;
}

static int load_operand(const char *spec, float **v, int64_t *n, char *shape, size_t shape_n) {
  const StTensor *t;
  StFile *f = cli_open_tensor_spec(spec, &t);
  IrErr err;
  if (!f) return 1;
  int64_t numel = 1;
  for (int i = 0; i < t->rank; i++) numel *= t->shape[i];
  rt_dims_str(t->rank, t->shape, shape, shape_n);
  *v = xmalloc((size_t)(numel ? numel : 1) * sizeof **v);
  *n = numel;
  int rc = st_to_f32(t, *v, &err);
  st_close(f);
  if (rc) {
    free(*v);
    return cli_fail("%s", err.msg);
  }
  return 0;
}

int cmd_compare(const Opts *o) {
  float *a = NULL, *b = NULL;
  int64_t na, nb;
  char sa[128], sb[128];
  if (load_operand(o->model, &a, &na, sa, sizeof sa)) return 1;
  if (load_operand(o->extra, &b, &nb, sb, sizeof sb)) {
    free(a);
    return 1;
  }
  int rc = 0;
  if (strcmp(sa, sb)) {
    rc = cli_fail("shapes differ: %s is %s, %s is %s", o->model, sa, o->extra, sb);
  } else {
    double num = 0, den = 0, maxabs = 0;
    int64_t bad[2] = {0, 0}, first = -1; /* non-finite elements of each side, the first position */
    for (int64_t i = 0; i < na; i++) {
      int fa = isfinite(a[i]), fb = isfinite(b[i]);
      if (!fa || !fb) {
        bad[0] += !fa, bad[1] += !fb;
        if (first < 0) first = i;
        continue; /* NaN would hide every other difference: the errors cover the finite pairs */
      }
      double d = (double)a[i] - b[i];
      num += d * d;
      den += (double)b[i] * b[i];
      if (fabs(d) > maxabs) maxabs = fabs(d);
    }
    double rel = den > 0 ? sqrt(num / den) : sqrt(num);
    if (first >= 0) {
      printf("%s vs %s: shape %s, relative L2 error %.3e and max abs error %.3e over the finite pairs; "
             "non-finite: %lld in the first, %lld in the second\n", o->model, o->extra, sa, rel, maxabs,
             (long long)bad[0], (long long)bad[1]);
      rc = cli_fail("non-finite values: %lld in %s, %lld in %s; the first at flat index %lld (%g vs %g)",
                    (long long)bad[0], o->model, (long long)bad[1], o->extra, (long long)first, (double)a[first],
                    (double)b[first]);
    } else {
      printf("%s vs %s: shape %s, relative L2 error %.3e, max abs error %.3e\n", o->model, o->extra, sa, rel, maxabs);
    }
    if (!rc && o->tol >= 0 && !(rel <= o->tol)) rc = cli_fail("relative L2 error %.3e is above the tolerance %.1e", rel, o->tol);
  }
  free(a);
  free(b);
  return rc;
}


int cmd_models(const Opts *o) {
  (void)o;
  return fe_list_configs(NULL, stdout, stderr) ? 1 : 0;
}
