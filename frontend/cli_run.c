/*
 * cli_run.c - running a model on a backend: `ditc run` and `ditc sample`.
 *
 * A Runner is what runs: MODEL's graph on the reference executor, a plan
 * built from MODEL here (emu, cuda: compiled for the GPU that is present), or
 * a plan from a pack (--plan: the GPU's architecture's, --arch's on emu, or
 * the pack's first), built again from the pack's model record and checked
 * against the pack before anything of it runs (frontend/pack_plan.h).  run feeds it the inputs of a safetensors file; sample
 * drives the DDPM/DDIM sampler with it, on the device when the backend
 * samples there (emu, cuda), else in the host loop over forward passes.
 * bench (cli_bench.c) uses the same Runner.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "codegen/emu.h"
#include "frontend/cli.h"
#include "ir/fileio.h"
#include "runtime/cuda_api.h"
#include "runtime/image.h"
#include "runtime/ref.h"
#include "runtime/sampler.h"

/* ---- running a model on a backend ----------------------------------------------- */

static const char *default_backend(const Opts *o) {
  if (o->backend) return o->backend;
  if (rt_cuda_available(NULL)) return "cuda";
  return o->plan ? "emu" : "ref";
}

/* "sm_XY" of CUDA device 0.  Returns 0 or 1 (after saying why). */
static int device_arch(char *arch, size_t n) {
  RtCudaDevice dev;
  IrErr err;
  if (rt_cuda_device_open(0, &dev, &err)) return cli_fail("%s", err.msg);
  snprintf(arch, n, "sm_%d%d", dev.cc_major, dev.cc_minor);
  rt_cuda_device_close(&dev);
  return 0;
}

/* Build or load `entry` (NULL: forward, else the model's or the pack's first
 * entry): with a pack, the plan for the GPU's architecture (cuda), --arch's
 * (emu), or the pack's first for the entry.  Returns 0 or 1 (after saying
 * why). */
int cli_runner_open(const Opts *o, const char *entry, Runner *r) { return cli_runner_open_role(o, entry, NULL, r); }

int cli_runner_open_role(const Opts *o, const char *entry, const char *role, Runner *r) {
  IrErr err;
  memset(r, 0, sizeof *r);
  r->backend = default_backend(o);
  if (!strcmp(r->backend, "cuda") && !rt_cuda_available(&err)) return cli_fail("%s", err.msg);
  if (!strcmp(r->backend, "ref") && o->precision && strcmp(o->precision, "f32"))
    return cli_fail("--precision %s needs --backend emu or cuda (ref computes in f32)", o->precision);
  if (o->arch) {
    CgArch ca;
    if (strcmp(r->backend, "emu"))
      return cli_fail("--arch picks the architecture whose plan --backend emu runs; --backend %s %s", r->backend,
                  strcmp(r->backend, "cuda") ? "runs the graph itself" : "uses the GPU's own architecture");
    if (cg_arch_parse(o->arch, &ca, &err)) return cli_fail("--arch: %s", err.msg);
  }
  /* the architecture whose plan runs: the GPU's, --arch's on emu, else the default row */
  const char *arch = o->arch;
  if (!strcmp(r->backend, "cuda")) {
    if (device_arch(r->arch, sizeof r->arch)) return 1;
    arch = r->arch;
  }
  if (o->plan) {
    if (o->n_sets || o->passes || o->precision || o->quantize || o->quantize_scope)
      return cli_fail("--set, --passes, --quantize and --precision do not apply to a pack: they were fixed when it was "
                      "compiled");
    if (!strcmp(r->backend, "ref"))
      return cli_fail("--backend ref runs a MODEL, not a pack; use --backend emu or cuda with --plan");
    if (!(r->pack = cg_pack_open(o->plan, &err))) return cli_fail("%s", err.msg);
    if (!entry) /* the default, as for a model: forward, else the first */
      entry = cg_pack_find_plan(r->pack, "forward") || !r->pack->n_plans ? "forward" : r->pack->plans[0].plan->entry;
    char named[200];
    if (role && strcmp(role, "none")) { /* step caching's entries, as passes/step_cache.c names them */
      snprintf(named, sizeof named, "%s%s", entry, !strcmp(role, "full") ? PASS_STEP_CACHE_FULL : PASS_STEP_CACHE_STEP);
      entry = named;
      if (!cg_pack_find_plan(r->pack, entry))
        return cli_fail("--cache-interval %lld: %s has no plan for '%s' (compile it with --step-cache)",
                        o->cache_interval, o->plan, entry);
    }
    if (!(r->pp = cg_pack_find_plan(r->pack, entry))) {
      char list[256] = "";
      size_t used = 0;
      for (int i = 0; i < r->pack->n_plans && used < sizeof list; i++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", r->pack->plans[i].plan->entry);
      return cli_fail("%s has no plan for '%s' (it has %s; compile with --entry %s or --entry all)", o->plan, entry, list,
                  entry);
    }
    if (arch && !(r->pp = cg_pack_find_plan_arch(r->pack, entry, arch, &err))) return cli_fail("%s", err.msg);
    /* nothing of the pack's text runs: the plan is built again from its
     * model record and must equal the stored one (frontend/pack_plan.h) */
    if (fe_pack_plan(r->pack, r->pp, stderr, &r->packed, &err)) return cli_fail("%s", err.msg);
    r->pp = &r->packed.view;
    r->use = r->pp->plan;
    r->n_in = r->use->n_inputs;
    r->in_names = xcalloc((size_t)r->n_in + 1, sizeof *r->in_names);
    r->in_dtypes = xcalloc((size_t)r->n_in + 1, sizeof *r->in_dtypes);
    for (int i = 0; i < r->n_in; i++) r->in_names[i] = r->use->inputs[i].name, r->in_dtypes[i] = r->use->inputs[i].dtype;
    return 0;
  }
  if (cli_build_role(o, entry, role, &r->m)) return 1;
  r->built = 1;
  IrNode **inputs;
  r->n_in = ir_graph_inputs(r->m.graph, &inputs);
  r->in_names = xcalloc((size_t)r->n_in + 1, sizeof *r->in_names);
  r->in_dtypes = xcalloc((size_t)r->n_in + 1, sizeof *r->in_dtypes);
  for (int i = 0; i < r->n_in; i++) r->in_names[i] = inputs[i]->name, r->in_dtypes[i] = inputs[i]->dtype;
  return 0;
}

/* A model parameter: from the pack, else from the elaborated model. */
int64_t cli_runner_param(const Runner *r, const char *name) {
  return r->pack ? cg_pack_param_int(r->pack, name, 0) : fe_param_int(&r->m, name, 0);
}

/* Bind the weights and prepare the backend at `batch`.  Returns 0 or 1. */
/* The host memory a command may take: $DITC_MEMORY_LIMIT (bytes, or with a
 * K, M, G or T suffix: powers of 1024), else what the machine has available
 * now (MemAvailable + SwapFree of /proc/meminfo; 0 when unknown: no limit).
 * *from says which. */
static double memory_limit(const char **from) {
  const char *env = getenv("DITC_MEMORY_LIMIT");
  if (env && *env) {
    char *end;
    double v = strtod(env, &end);
    const char *u = "KMGT", *p = *end ? strchr(u, *end) : NULL;
    if (p && *p) v *= pow(1024.0, (double)(p - u + 1)), end++;
    *from = "DITC_MEMORY_LIMIT";
    if (v > 0 && !*end) return v;
  }
  *from = "available on this machine";
  FILE *f = fopen("/proc/meminfo", "r");
  if (!f) return 0;
  char line[256];
  double avail = -1, swap = 0, kb;
  while (fgets(line, sizeof line, f)) {
    if (sscanf(line, "MemAvailable: %lf kB", &kb) == 1) avail = kb * 1024;
    if (sscanf(line, "SwapFree: %lf kB", &kb) == 1) swap = kb * 1024;
  }
  fclose(f);
  return avail < 0 ? 0 : avail + swap;
}

int cli_memory_check(const char *what, double bytes) {
  const char *from;
  double limit = memory_limit(&from);
  if (limit <= 0 || bytes <= limit) return 0;
  return cli_fail("%s needs about %.2f GiB of host memory, more than the %.2f GiB %s (DITC_MEMORY_LIMIT=BYTES "
                  "sets the limit)", what, bytes / 1073741824.0, limit / 1073741824.0, from);
}

/* The most bytes of values alive at once when the reference executor runs g
 * at `batch` (it reuses a value's storage after its last reader, ref.c):
 * each computed value from its node to its last use, weight-only values and
 * the outputs for good.  g is in topological order. */
static double ref_peak_bytes(IrGraph *g, int64_t batch) {
  int n = g->n_nodes;
  int *last = xmalloc((size_t)(n ? n : 1) * sizeof *last);
  unsigned char *wo = ir_weight_only(g);
  for (int i = 0; i < n; i++) g->nodes[i]->index = i, last[i] = i;
  for (int i = 0; i < n; i++)
    for (int j = 0; j < g->nodes[i]->n_in; j++) {
      int k = g->nodes[i]->in[j]->index;
      if (k >= 0 && k < n && last[k] < i) last[k] = i;
    }
  for (int i = 0; i < g->n_outputs; i++) last[g->outputs[i]->index] = n;
  double *freed_at = xcalloc((size_t)n + 2, sizeof *freed_at), live = 0, peak = 0;
  for (int i = 0; i < n; i++) {
    const IrNode *x = g->nodes[i];
    double b = (double)ir_shape_numel(&x->shape, batch) * (double)ir_dtype_size(x->dtype);
    live += b;
    if (live > peak) peak = live;
    if (!wo[i]) freed_at[last[i] + 1 <= n ? last[i] + 1 : n + 1] += b;
    live -= freed_at[i + 1];
  }
  free(last);
  free(wo);
  free(freed_at);
  return peak;
}

int cli_runner_prepare(const Opts *o, Runner *r, int64_t batch) {
  IrErr err;
  RtModel md = {.batch = batch};
  char what[160];
  snprintf(what, sizeof what, "%s at batch %lld on %s", o->plan ? o->plan : o->model, (long long)batch, r->backend);
  if (!r->pack) { /* before anything is allocated: the f32 weights, and the reference executor's every value */
    IrCost cost;
    ir_cost(r->m.graph, batch, IR_F32, &cost);
    double need = (double)cost.params * 4 + (!strcmp(r->backend, "ref") ? ref_peak_bytes(r->m.graph, batch) : 0);
    if (cli_memory_check(what, need)) return 1;
  }
  if (r->pack) {
    const void *blob;
    if (r->use->batch != batch)
      return cli_fail("%s was compiled for batch %lld, this run needs batch %lld (compile with --batch %lld)", o->plan,
                  (long long)r->use->batch, (long long)batch, (long long)batch);
    if (rt_pack_weights(r->pack, r->pp, o->weights, &blob, &r->blob, &err)) return cli_fail("%s", err.msg);
    md.plan = r->use;
    md.blob = blob;
    md.cubins = r->pp->cubins;
    md.n_cubins = r->pp->n_cubins;
  } else {
    if (!o->weights) return cli_fail("--weights is required with a MODEL");
    size_t base_len;
    const char *role = r->m.graph->name ? pass_step_cache_role(r->m.graph->name, &base_len) : NULL;
    if (!r->bind_graph && role && !strcmp(role, "cached")) { /* bind as its entry does: it lacks the blocks' PARAMs */
      char base[200];
      snprintf(base, sizeof base, "%.*s", (int)base_len, r->m.graph->name);
      if (cli_build(o, base, &r->bind_m)) return 1;
      r->bind_graph = r->bind_m.graph;
    }
    if (weights_open(r->bind_graph ? r->bind_graph : r->m.graph, o->weights, &r->w, &err))
      return cli_fail("%s", err.msg);
    md.graph = r->m.graph;
    md.weights = &r->w;
    if (strcmp(r->backend, "ref")) {
      CgOptions co = {.batch = batch, .model = r->m.config ? r->m.config : r->m.model,
                      .arch = r->arch[0] ? r->arch : o->arch};
      co.precision = cli_precision(o);
      if (cg_plan_build(r->m.graph, &co, &r->plan, &err)) return cli_fail("%s", err.msg);
      r->use = r->plan;
      IrCost cost;
      ir_cost(r->m.graph, batch, IR_F32, &cost);
      if (cli_memory_check(what, (double)cost.params * 4 + (double)r->plan->weights_bytes +
                                     (!strcmp(r->backend, "emu") ? (double)r->plan->arena_bytes : 0)))
        return 1;
      r->blob = xmalloc((size_t)r->plan->weights_bytes + 1);
      if (cg_plan_fill_weights(r->plan, weights_values(&r->w), r->blob, &err)) return cli_fail("%s", err.msg);
      md.plan = r->plan;
      md.blob = r->blob;
    }
    if (!strcmp(r->backend, "cuda")) {
      /* compile for the GPU that is here (runner_open asked for its architecture) */
      Compiler c;
      memcpy(r->cubin.arch, r->arch, sizeof r->cubin.arch);
      if (cli_compiler_open(&c, 1)) return 1;
      int bad = cli_compile_plan(&c, r->plan, r->cubin.arch, &r->cubin_data, &r->cubin.size, &r->cubin_log);
      cli_compiler_close(&c);
      if (bad) return 1;
      r->cubin.image = r->cubin_data;
      r->cubin.ptxas_log = r->cubin_log ? r->cubin_log : "";
      md.cubins = &r->cubin;
      md.n_cubins = 1;
    }
  }
  if (!(r->be = rt_backend_new(r->backend, &err)) || r->be->prepare(r->be, &md, &err)) return cli_fail("%s", err.msg);
  return 0;
}

void cli_runner_free(Runner *r) {
  rt_backend_free(r->be);
  free(r->blob);
  free(r->cubin_data);
  free(r->cubin_log);
  cg_plan_free(r->plan);
  weights_free(&r->w);
  fe_pack_plan_free(&r->packed);
  cg_pack_close(r->pack);
  free(r->in_names);
  free(r->in_dtypes);
  if (r->built) fe_model_free(&r->m);
  if (r->bind_m.graph) fe_model_free(&r->bind_m);
  memset(r, 0, sizeof *r);
}

/* NaN or Inf in a result is an error, not a file: 0, or the message and 1.
 * what names the result ("the samples"). */
static int check_finite(const char *what, const float *v, int64_t n, int64_t row, const char *hint) {
  IrErr err;
  if (!rt_check_finite(what, v, n, row, &err)) return 0;
  return cli_fail("%s%s%s; nothing was written", err.msg, hint ? ": " : "", hint ? hint : "");
}

/* Why x_0 may hold NaN or Inf when the model's outputs were checked at every
 * step (ref, emu; cuda under DITC_CUDA_SYNC=1), or how to find out. */
static const char *sample_hint(const Runner *rn) {
  const char *sync = getenv("DITC_CUDA_SYNC");
  if (!strcmp(rn->backend, "cuda") && !(sync && *sync && strcmp(sync, "0")))
    return "DITC_CUDA_SYNC=1 checks the model's output at every step and names the first step and kernel to make one";
  return "the model's output was finite at every step, the sampler's update overflowed (a guidance scale too large?)";
}

/* ---- ditc run ----------------------------------------------------------------- */

int cmd_run(const Opts *o) {
  if (!o->input || !o->output) return cli_usage("run needs --input and --output (and --weights with a MODEL)");
  if (!o->plan && !o->weights) return cli_usage("run needs --weights with a MODEL");
  if (fio_has_ext(o->output, "png"))
    return cli_usage("--output '%s': run writes its outputs as safetensors (sample writes PNG grids)", o->output);
  IrErr err;
  /* staged first: a bad output is refused before any work, and the
   * temporary is removed on every failure */
  FioOut *out = fio_out_open(o->output, NULL, &err);
  if (!out) return cli_fail("%s", err.msg);
  Runner rn;
  int rc = 1;
  StFile *in = NULL;
  int n_out = 0;
  RtTensor *vals = NULL, *outs = NULL;
  if (cli_runner_open(o, o->entry ? o->entry : o->has_cfg ? "forward_with_cfg" : NULL, &rn)) goto done;
  const char *entry = rn.built ? rn.m.graph->name : rn.use->entry;
  n_out = rn.use && !rn.built ? rn.use->n_outputs : rn.m.graph->n_outputs;
  vals = xcalloc((size_t)rn.n_in + 1, sizeof *vals);
  outs = xcalloc((size_t)n_out + 1, sizeof *outs);
  if (!(in = st_open(o->input, &err))) {
    cli_fail("%s", err.msg);
    goto done;
  }
  for (int i = 0; i < rn.n_in; i++) {
    const char *name = rn.in_names[i];
    if (!strcmp(name, "cfg_scale")) {
      if (!o->has_cfg) {
        cli_fail("the %s entry takes a guidance scale: give --cfg-scale", entry);
        goto done;
      }
      vals[i] = rt_tensor_new(IR_F32, 0, NULL);
      *(float *)vals[i].data = (float)o->cfg_scale;
      continue;
    }
    char full[256];
    snprintf(full, sizeof full, "%s%s", o->prefix ? o->prefix : "", name);
    const StTensor *t = st_find(in, full);
    if (!t) {
      cli_fail("%s: no tensor '%s' (the model's input '%s')", o->input, full, name);
      goto done;
    }
    if (st_load(t, rn.in_dtypes[i] == IR_I32 ? IR_I32 : IR_F32, &vals[i], &err)) {
      cli_fail("%s", err.msg);
      goto done;
    }
  }
  int64_t batch = rn.built ? ref_batch_of(rn.m.graph, vals, &err) : rn.use->batch;
  if (batch < 0) {
    cli_fail("%s", err.msg);
    goto done;
  }
  if (cli_runner_prepare(o, &rn, batch)) goto done;
  if (rn.be->run(rn.be, vals, outs, &err)) {
    cli_fail("%s", err.msg);
    goto done;
  }
  {
    const char **names = xcalloc((size_t)n_out + 1, sizeof *names);
    for (int i = 0; i < n_out; i++) names[i] = rn.built ? rn.m.graph->output_names[i] : rn.use->outputs[i].name;
    int bad = rt_check_outputs(rn.be, vals, outs, n_out, names, &err);
    free(names);
    if (bad) {
      cli_fail("%s; nothing was written", err.msg);
      goto done;
    }
  }
  StWriter *wr = st_writer_new();
  for (int i = 0; i < n_out; i++)
    st_writer_add_tensor(wr, rn.built ? rn.m.graph->output_names[i] : rn.use->outputs[i].name, &outs[i]);
  st_writer_meta(wr, "producer", "ditc " DITC_VERSION);
  st_writer_meta(wr, "backend", rn.backend);
  int bad = st_writer_write(wr, out, &err) || fio_out_commit(out, &err);
  out = NULL; /* committed, or aborted by the commit */
  if (bad)
    cli_fail("%s", err.msg);
  else
    rc = 0;
  st_writer_free(wr);
done:
  fio_out_abort(out);
  for (int i = 0; vals && i < rn.n_in; i++) rt_tensor_free(&vals[i]);
  for (int i = 0; outs && i < n_out; i++) rt_tensor_free(&outs[i]);
  free(vals);
  free(outs);
  st_close(in);
  cli_runner_free(&rn);
  return rc;
}

/* ---- ditc sample ---------------------------------------------------------------- */

typedef struct {
  RtBackend *be;
  int cfg;
  float cfg_scale;
  const int32_t *labels;
  int32_t null_label;
  int64_t n;         /* samples */
  int64_t img;       /* C*H*W */
  int64_t out_img;   /* C_out*H*W */
  RtTensor in[4];    /* x, t, y, cfg_scale in graph input order */
  int slot_x, slot_t, slot_y, slot_s;
  /* step caching: be runs the full entry (outputs out, cache.0 ..), cbe the
   * cached one (inputs in crn's order); step counts the calls of a loop */
  int interval, warmup, step;
  int n_out;               /* be's outputs */
  RtTensor *kept;          /* [n_out - 1]: the last full step's cache.K */
  RtBackend *cbe;
  const Runner *crn;
  RtTensor *cin;           /* [crn->n_in], borrowed from in and kept */
} ModelCtx;

/* The cached entry's inputs: x, t, y, cfg_scale of the full one's, cache.K the kept deltas. */
static int cached_inputs(ModelCtx *c, IrErr *err) {
  const Runner *r = c->crn;
  if (!c->cin) c->cin = xcalloc((size_t)r->n_in + 1, sizeof *c->cin);
  for (int i = 0; i < r->n_in; i++) {
    const char *nm = r->in_names[i];
    int k;
    char tail;
    if (!strcmp(nm, "x")) c->cin[i] = c->in[c->slot_x];
    else if (!strcmp(nm, "t")) c->cin[i] = c->in[c->slot_t];
    else if (!strcmp(nm, "y")) c->cin[i] = c->in[c->slot_y];
    else if (!strcmp(nm, "cfg_scale") && c->slot_s >= 0) c->cin[i] = c->in[c->slot_s];
    else if (sscanf(nm, "cache.%d%c", &k, &tail) == 1 && k >= 0 && k < c->n_out - 1) c->cin[i] = c->kept[k];
    else return ir_errf(err, "step caching: the cached entry's input '%s' is not one the full entry gives", nm);
  }
  return 0;
}

static int model_fn(void *ctx, const float *x, const float *t, int64_t rows, float *out, IrErr *err) {
  ModelCtx *c = ctx;
  int64_t r = c->cfg ? 2 * rows : rows;
  float *xi = c->in[c->slot_x].data, *ti = c->in[c->slot_t].data;
  int32_t *yi = c->in[c->slot_y].data;
  for (int64_t i = 0; i < r; i++) {
    memcpy(xi + i * c->img, x + (i % rows) * c->img, (size_t)c->img * sizeof *x);
    ti[i] = t[i % rows];
    yi[i] = i < rows ? c->labels[i] : c->null_label;
  }
  if (c->cfg) *(float *)c->in[c->slot_s].data = c->cfg_scale;
  if (c->interval > 0) { /* step caching */
    int cached = !sampler_cache_full(c->step++, c->interval, c->warmup);
    RtTensor res = {0};
    if (cached) {
      if (!c->cbe) return ir_errf(err, "step caching: no cached entry");
      if (cached_inputs(c, err) || c->cbe->run(c->cbe, c->cin, &res, err)) return -1;
      memcpy(out, res.data, (size_t)(rows * c->out_img) * sizeof *out);
      rt_tensor_free(&res);
      return 0;
    }
    RtTensor *all = xcalloc((size_t)c->n_out, sizeof *all);
    if (c->be->run(c->be, c->in, all, err)) {
      free(all);
      return -1;
    }
    memcpy(out, all[0].data, (size_t)(rows * c->out_img) * sizeof *out);
    rt_tensor_free(&all[0]);
    if (!c->kept) c->kept = xcalloc((size_t)c->n_out, sizeof *c->kept);
    for (int k = 0; k + 1 < c->n_out; k++) rt_tensor_free(&c->kept[k]), c->kept[k] = all[k + 1];
    free(all);
    return 0;
  }
  RtTensor res = {0};
  if (c->be->run(c->be, c->in, &res, err)) return -1;
  if (rt_check_outputs(c->be, c->in, &res, 1, NULL, err)) {
    rt_tensor_free(&res);
    return -1;
  }
  memcpy(out, res.data, (size_t)(rows * c->out_img) * sizeof *out);  /* conditional rows */
  rt_tensor_free(&res);
  return 0;
}

typedef struct {
  RtRng rng;
  const float *replay;   /* [steps, R, C, H, W] from --step-noise */
  int64_t replay_rows, replay_steps, img, rows;
} NoiseCtx;

static int noise_fn(void *ctx, int step, float *out, int64_t n, IrErr *err) {
  NoiseCtx *c = ctx;
  if (!c->replay) {
    rng_normal(&c->rng, out, n);
    return 0;
  }
  if (step < 0 || step >= c->replay_steps)
    return ir_errf(err, "--step-noise has %lld steps, the sampler asked for step %d", (long long)c->replay_steps, step);
  for (int64_t r = 0; r < c->rows; r++)
    memcpy(out + r * c->img, c->replay + (step * c->replay_rows + r) * c->img, (size_t)c->img * sizeof *out);
  return 0;
}

static void progress(void *ctx, int done, int total) {
  (void)ctx;
  int width = 40, filled = (int)((int64_t)width * done / total);
  fprintf(stderr, "\rsampling [%.*s%*s] %d/%d", filled, "########################################",
          width - filled, "", done, total);
  if (done == total) fputc('\n', stderr);
  fflush(stderr);
}

/* The model's inputs for `rows` samples (twice as many rows with cfg). */
static int model_ctx_init(ModelCtx *mc, const Runner *rn, int cfg, float cfg_scale, const int32_t *labels,
                          int classes, int64_t n, int C, int S, int learn_sigma) {
  int64_t img = (int64_t)C * S * S;
  int n_in = rn->n_in;
  mc->cfg = cfg;
  mc->cfg_scale = cfg_scale;
  mc->labels = labels;
  mc->null_label = classes;
  mc->n = n;
  mc->img = img;
  mc->out_img = (learn_sigma ? 2 : 1) * img;
  mc->slot_x = mc->slot_t = mc->slot_y = mc->slot_s = -1;
  for (int i = 0; i < n_in && i < 4; i++) {
    const char *nm = rn->in_names[i];
    int64_t rows = cfg ? 2 * n : n;
    int64_t shp[4] = {rows, C, S, S};
    if (!strcmp(nm, "x")) mc->slot_x = i, mc->in[i] = rt_tensor_new(IR_F32, 4, shp);
    else if (!strcmp(nm, "t")) mc->slot_t = i, mc->in[i] = rt_tensor_new(IR_F32, 1, shp);
    else if (!strcmp(nm, "y")) mc->slot_y = i, mc->in[i] = rt_tensor_new(IR_I32, 1, shp);
    else if (!strcmp(nm, "cfg_scale")) mc->slot_s = i, mc->in[i] = rt_tensor_new(IR_F32, 0, NULL);
  }
  if (n_in != (cfg ? 4 : 3) || mc->slot_x < 0 || mc->slot_t < 0 || mc->slot_y < 0 || (cfg && mc->slot_s < 0))
    return cli_fail("the model's %s entry must take x, t, y%s", cfg ? "forward_with_cfg" : "forward",
                    cfg ? ", cfg_scale" : "");
  return 0;
}

/* Step caching, after rn was prepared: prepare crn (the cached entry, when
 * one is open) at the same batch and point mc at both.  0 or 1. */
static int cache_setup(const Opts *o, ModelCtx *mc, const Runner *rn, Runner *crn, int64_t batch) {
  if (o->cache_interval < 1) return 0;
  mc->interval = (int)o->cache_interval;
  mc->warmup = o->cache_warmup < 0 ? 0 : (int)o->cache_warmup;
  mc->n_out = rn->built ? rn->m.graph->n_outputs : rn->use->n_outputs;
  if (!crn || !(crn->built || crn->pack)) return 0;
  if (crn->built) crn->bind_graph = rn->m.graph;
  if (cli_runner_prepare(o, crn, batch)) return 1;
  mc->cbe = crn->be;
  mc->crn = crn;
  return 0;
}

static void cache_free(ModelCtx *mc) {
  for (int k = 0; mc->kept && k + 1 < mc->n_out; k++) rt_tensor_free(&mc->kept[k]);
  free(mc->kept);
  free(mc->cin);
  mc->kept = NULL, mc->cin = NULL;
}

/* The sampling loop over mc->n rows of x (x_T in, x_0 out), with mc->be
 * prepared at that batch.  On a backend that samples on the device (emu,
 * cuda) the whole loop runs there; else, or when it says it cannot, the host
 * loop over run().  DITC_SAMPLE_ON_HOST=1 forces the host loop (to compare
 * the two).  Returns 0 or 1 (after saying why). */
static int sample_loop(Runner *rn, const Diffusion *d, const char *sampler, ModelCtx *mc, NoiseCtx *nc, int C, int S,
                       int learn_sigma, float *x, int show_progress) {
  IrErr err;
  int64_t n = mc->n;
  SamplerConfig sc = {
      .kind = !strcmp(sampler, "ddpm") ? SAMPLER_DDPM : SAMPLER_DDIM,
      .rows = n, .channels = C, .height = S, .width = S, .learn_sigma = learn_sigma, .eta = 0.0,
      .model = model_fn, .model_ctx = mc, .noise = noise_fn, .noise_ctx = nc,
      .progress = show_progress ? progress : NULL,
  };
  const char *on_host = getenv("DITC_SAMPLE_ON_HOST");
  mc->step = 0; /* step caching counts this loop's steps */
  if (rn->be->sample && !(on_host && *on_host && strcmp(on_host, "0"))) {
    RtSampleRequest rq = {
        .diffusion = d, .kind = sc.kind, .eta = sc.eta, .learn_sigma = learn_sigma, .rows = n, .channels = C,
        .height = S, .width = S, .labels = mc->labels, .cfg = mc->cfg, .null_label = mc->null_label,
        .cfg_scale = mc->cfg_scale, .replay = nc->replay, .replay_rows = nc->replay_rows,
        .replay_steps = nc->replay_steps, .rng = &nc->rng, .progress = sc.progress,
        .cache_interval = mc->interval, .cache_warmup = mc->warmup, .cached = mc->cbe,
    };
    int got = rn->be->sample(rn->be, &rq, x, &err);
    if (got == RT_SAMPLE_UNSUPPORTED) {
      static int noted;
      if (!noted++) fprintf(stderr, "ditc: note: sampling on the host: %s\n", err.msg);
    } else if (got) {
      return cli_fail("%s", err.msg);
    } else {
      return 0;
    }
  }
  if (sampler_run(d, &sc, x, &err)) return cli_fail("%s", err.msg);
  return 0;
}

/* "0,3,5-9" -> labels; each in [0, classes]. */
static int parse_labels(const char *s, int repeat, int classes, int32_t **out, int64_t *n_out, int *distinct) {
  int32_t *v = NULL;
  int64_t n = 0, cap = 0;
  const char *p = s;
  while (*p) {
    char *end;
    errno = 0;
    long a = strtol(p, &end, 10), b;
    if (end == p || errno) goto bad;
    b = a;
    if (*end == '-') {
      const char *q = end + 1;
      b = strtol(q, &end, 10);
      if (end == q || errno || b < a) goto bad;
    }
    if (a < 0 || b > classes) {
      free(v);
      return cli_fail("--labels: label %ld is outside 0..%d (%d is the null class)", a < 0 ? a : b, classes, classes);
    }
    for (long x = a; x <= b; x++) {
      if (n == cap) v = xrealloc(v, (size_t)(cap = cap ? 2 * cap : 16) * sizeof *v);
      v[n++] = (int32_t)x;
      if (n > 100000) goto bad;
    }
    if (*end == ',')
      end++;
    else if (*end)
      goto bad;
    p = end;
  }
  if (!n) goto bad;
  *distinct = (int)n;
  int32_t *all = xmalloc((size_t)(n * repeat) * sizeof *all);
  for (int r = 0; r < repeat; r++) memcpy(all + r * n, v, (size_t)n * sizeof *v);
  free(v);
  *out = all;
  *n_out = n * repeat;
  return 0;
bad:
  free(v);
  return cli_fail("--labels takes a list like 0,1,7 or 0-9, got '%s'", s);
}

/* FILE:TENSOR (cli.h). */
StFile *cli_open_tensor_spec(const char *spec, const StTensor **t) {
  const char *colon = strrchr(spec, ':');
  if (!colon || colon == spec || !colon[1]) {
    cli_fail("'%s': expected FILE:TENSOR", spec);
    return NULL;
  }
  char *path = strndup(spec, (size_t)(colon - spec));
  IrErr err;
  StFile *f = st_open(path, &err);
  free(path);
  if (!f) {
    cli_fail("%s", err.msg);
    return NULL;
  }
  if (!(*t = st_find(f, colon + 1))) {
    cli_fail("'%s': no tensor '%s'", spec, colon + 1);
    st_close(f);
    return NULL;
  }
  return f;
}

/* --labels-from FILE:TENSOR: a 1-D integer tensor of labels. */
static int load_labels(const char *spec, int repeat, int classes, int32_t **out, int64_t *n_out, int *distinct) {
  const StTensor *t;
  StFile *f = cli_open_tensor_spec(spec, &t);
  IrErr err;
  if (!f) return 1;
  int rc = 1;
  if (t->rank != 1 || t->shape[0] < 1) {
    cli_fail("'%s': expected a non-empty 1-D tensor of labels", spec);
    goto out;
  }
  int64_t n = t->shape[0];
  int32_t *v = xmalloc((size_t)(n * repeat) * sizeof *v);
  if (st_to_i32(t, v, &err)) {
    free(v);
    cli_fail("%s", err.msg);
    goto out;
  }
  for (int64_t i = 0; i < n; i++)
    if (v[i] < 0 || v[i] > classes) {
      cli_fail("'%s': label %d is outside 0..%d (%d is the null class)", spec, v[i], classes, classes);
      free(v);
      goto out;
    }
  for (int r = 1; r < repeat; r++) memcpy(v + r * n, v, (size_t)n * sizeof *v);
  *out = v;
  *n_out = n * repeat;
  *distinct = (int)n;
  rc = 0;
out:
  st_close(f);
  return rc;
}

/* FILE:TENSOR -> f32 data with at least `need` rows of `img` floats (rank >= 2 after `lead` axes). */
static int load_noise(const char *spec, int lead, int64_t img, int64_t need_rows, float **data, int64_t *rows,
                      int64_t *steps) {
  const StTensor *t;
  StFile *f = cli_open_tensor_spec(spec, &t);
  IrErr err;
  if (!f) return 1;
  int rc = 1;
  int64_t per = 1;
  for (int i = lead + 1; i < t->rank; i++) per *= t->shape[i];
  if (t->rank != lead + 4 || per != img || t->shape[lead] < need_rows) {
    char got[160];
    cli_fail("'%s' is %s %s; expected %s%lld or more, C, H, W] with C*H*W = %lld (the model's sample)", spec,
             st_dtype_name(t->dtype), rt_dims_str(t->rank, t->shape, got, sizeof got), lead ? "[steps, " : "[",
             (long long)need_rows, (long long)img);
    goto out;
  }
  int64_t numel = 1;
  for (int i = 0; i < t->rank; i++) numel *= t->shape[i];
  *data = xmalloc((size_t)numel * sizeof **data);
  if (st_to_f32(t, *data, &err)) {
    free(*data);
    *data = NULL;
    cli_fail("%s", err.msg);
    goto out;
  }
  *rows = t->shape[lead];
  *steps = lead ? t->shape[0] : 1;
  rc = 0;
out:
  st_close(f);
  return rc;
}

/* ---- sample --num-samples: many images to an .npz ------------------------------ */

typedef struct {
  int C, S, classes, learn_sigma, cfg;
} SampleShape;

/* Sample g's random stream: Philox blocks from counter g * 2^32 on, key
 * --seed.  x_T is its first C*H*W normals, step s's noise the C*H*W after
 * the previous step's (each draw starting a fresh block).  So a sample does
 * not depend on the batch it is drawn in, nor on which process draws it. */
static void sample_stream(uint64_t seed, int64_t g, RtRng *r) {
  rng_init(r, seed);
  r->counter = (uint64_t)g << 32;
}

/* Sample g's label without --labels: uniform over the classes, from Philox
 * block {g, 1} of the key --seed (a counter no normal uses: their third word is 0). */
static int32_t sample_label(uint64_t seed, int64_t g, int classes) {
  uint32_t ctr[4] = {(uint32_t)g, (uint32_t)((uint64_t)g >> 32), 1, 0}, key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)}, w[4];
  rng_philox4x32(ctr, key, w);
  return (int32_t)((((uint64_t)w[0] << 32) | w[1]) % (uint64_t)classes);
}

/* The process this is (rank 0 of 1 without mpirun); set by cmd_sample. */
static CliMpi mpi;

/* Under mpirun, each rank on the GPU of its node-local rank: CUDA_VISIBLE_DEVICES
 * narrowed, before anything opens CUDA, to the local rank's entry of the list
 * given (else to the local rank itself). */
static void pick_local_gpu(const CliMpi *m) {
  if (!m->on) return;
  const char *vis = getenv("CUDA_VISIBLE_DEVICES");
  char buf[256] = "";
  if (vis && *vis) {
    int k = 0;
    for (const char *p = vis; *p; k++) {
      size_t len = strcspn(p, ",");
      if (k == m->local_rank) snprintf(buf, sizeof buf, "%.*s", (int)len, p);
      p += len + (p[len] == ',');
    }
    if (!buf[0]) return; /* more ranks on this node than devices listed: leave it to the user */
  } else {
    snprintf(buf, sizeof buf, "%d", m->local_rank);
  }
  setenv("CUDA_VISIBLE_DEVICES", buf, 1);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The settings that change the bytes of sample --num-samples' file (and
 * how it is split into batch files), one per line: what a resume must match. */
static char *run_settings(const Opts *o, const Runner *rn, int64_t B, int R) {
  size_t cap = 8192, used = 0;
  char *s = xmalloc(cap);
#define ADD(...) used += (size_t)snprintf(s + used, used < cap ? cap - used : 0, __VA_ARGS__)
  ADD("ditc %s\nmodel %s\nweights %s\n", DITC_VERSION, o->model ? o->model : o->plan, o->weights ? o->weights : "");
  for (int i = 0; i < o->n_sets; i++) ADD("set %s=%s\n", o->sets[i].name, o->sets[i].value);
  ADD("passes %s\nquantize %s %s\nprecision %s\nbackend %s\n", o->passes ? o->passes : "default",
      o->quantize ? o->quantize : "", o->quantize_scope ? o->quantize_scope : "", o->precision ? o->precision : "f32",
      rn->backend);
  for (int i = 0; i < o->n_pass_flags; i++) ADD("pass %s %s\n", o->pass_flags[i].flag, o->pass_flags[i].value);
  ADD("vae %s %s\nsampler %s\nsteps %lld of %lld\ncfg-scale %.17g%s\nseed %lld\nlabels %s%s\n",
      o->vae ? o->vae : "", o->vae_weights ? o->vae_weights : "", o->sampler, o->steps, o->diffusion_steps,
      o->cfg_scale, o->cfg_all_channels ? " all channels" : "", o->seed, o->labels ? o->labels : "",
      o->labels_from ? o->labels_from : "");
  ADD("num-samples %lld\nbatch %lld\nprocesses %d\n", o->num_samples, (long long)B, R);
#undef ADD
  if (used >= cap) s[cap - 1] = '\0';
  return s;
}

/* The .npz is written: each rank removes its batch files, then (all of them
 * gone) the folder goes; a rank on another machine without a shared file
 * system removes its own (collective). */
static void clean_partial(const CliResume *rs, int me) {
  cli_resume_clean(rs, me, 0);
  cli_mpi_all_ok(&mpi, 1);
  cli_resume_clean(rs, me, 1);
}

/* Latents [n, C, S, S] as the safetensors tensor `z` at path.  0 or 1. */
static int write_latents(const char *path, const float *z, int64_t n, const SampleShape *sh) {
  IrErr err;
  FioOut *f = fio_out_open(path, NULL, &err);
  if (!f) return cli_fail("%s", err.msg);
  StWriter *wr = st_writer_new();
  int64_t shp[4] = {n, sh->C, sh->S, sh->S};
  st_writer_add(wr, "z", ST_F32, 4, shp, z);
  int bad = st_writer_write(wr, f, &err);
  if (bad)
    fio_out_abort(f);
  else
    bad = fio_out_commit(f, &err) != 0; /* a failed commit aborts */
  st_writer_free(wr);
  return bad ? cli_fail("%s", err.msg) : 0;
}

/* --num-samples N: batches of --batch rows (the last one padded with the
 * samples after N, which are dropped), each sample's noise and label from
 * (--seed, its index g), images as uint8 NHWC clamp(127.5 x + 128) truncated
 * (sample_ddp.py), labels int64.  Writes out (committed or aborted here).
 * given/n_given: --labels or --labels-from, cycled (g mod n_given), or NULL.
 * Returns 0 or 1. */
static int sample_npz(const Opts *o, Runner *rn, Runner *crn, const Diffusion *d, const SampleShape *sh,
                      const int32_t *given, int64_t n_given, FioOut *out) {
  IrErr err;
  int64_t N = o->num_samples, img = (int64_t)sh->C * sh->S * sh->S;
  int R = mpi.size, me = mpi.rank;
  int64_t mine = me < N ? (N - me + R - 1) / R : 0; /* this rank's samples: g = me + R k */
  int64_t per_rank = (N + R - 1) / R;               /* rank 0's, the most any rank has */
  int64_t B = o->batch ? o->batch : rn->pack ? rn->use->batch : 32;
  if (B > per_rank) B = per_rank;
  if (rn->pack && B != rn->use->batch) B = rn->use->batch; /* a pack runs its own batch; extra rows are dropped */
  int ddpm = !strcmp(o->sampler, "ddpm"), steps = d->num_steps, rc = 1;
  if (me) fio_out_abort(out), out = NULL; /* rank 0 writes the file */
  /* the images: the samples themselves, or with --vae what it decodes them to */
  CliVae vae = {0};
  CliResume rs = {0};
  int ok = !o->vae || !cli_vae_open(o, rn->backend, sh->C, sh->S, B, &vae);
  if (!cli_mpi_all_ok(&mpi, ok)) {
    cli_vae_free(&vae);
    fio_out_abort(out);
    if (ok) cli_fail("another rank failed (its message above); nothing was written");
    return 1;
  }
  int IC = o->vae ? vae.C : sh->C, IH = o->vae ? vae.H : sh->S, IW = o->vae ? vae.W : sh->S;
  int64_t pix = (int64_t)IC * IH * IW, hw = (int64_t)IH * IW;
  float *dec = o->vae ? xmalloc((size_t)(B * pix) * sizeof *dec) : NULL;
  uint8_t *images = xmalloc((size_t)((me ? mine : N) * pix) + 1), *my_img = xmalloc((size_t)(mine * pix) + 1);
  int64_t *lab64 = xmalloc((size_t)(me ? mine : N) * sizeof *lab64 + 1), *my_lab = xmalloc((size_t)mine * sizeof *my_lab + 1);
  double t0 = now_s();
  int32_t *labels = xmalloc((size_t)B * sizeof *labels);
  float *x = xmalloc((size_t)(B * img) * sizeof *x), *replay = NULL;
  ModelCtx mc = {0};
  NoiseCtx nc = {0};
  if (ddpm) replay = xmalloc((size_t)((int64_t)steps * B * img) * sizeof *replay);
  const char *fail_rank = getenv("DITC_TEST_FAIL_RANK"); /* tests: this rank fails after its first batch */
  /* tests: this rank's latents (what the VAE decoded) also go to this file, as `z` for run --entry decode */
  const char *keep_path = getenv("DITC_TEST_LATENTS");
  float *keep = keep_path && *keep_path ? xmalloc((size_t)(mine * img) * sizeof *keep + 1) : NULL;
  ok = !model_ctx_init(&mc, rn, sh->cfg, (float)o->cfg_scale, labels, sh->classes, B, sh->C, sh->S, sh->learn_sigma) &&
       !cli_runner_prepare(o, rn, B) && !cache_setup(o, &mc, rn, crn, B);
  if (!cli_mpi_all_ok(&mpi, ok)) goto failed;
  /* the finished batches are kept in X.npz.partial/ (--resume continues from them) */
  char *settings = run_settings(o, rn, B, R);
  ok = !cli_resume_open(&rs, o->output, settings, (int)o->resume, me);
  free(settings);
  if (!cli_mpi_all_ok(&mpi, ok)) goto failed;
  const char *stop = getenv("DITC_TEST_STOP_AFTER"); /* tests: fail after sampling that many batches */
  int64_t sampled = 0, resumed_n = 0;
  mc.be = rn->be;
  nc.img = img;
  nc.rows = B;
  nc.replay = ddpm ? replay : NULL;
  nc.replay_rows = B;
  nc.replay_steps = steps;
  rng_init(&nc.rng, (uint64_t)o->seed); /* not drawn from: every step's noise is replayed */
  int tty = isatty(2) && me == 0;
  t0 = now_s();
  for (int64_t first = 0; first < per_rank; first += B) {
    /* every rank takes part in every round, an idle one (more ranks than samples) too */
    int64_t rows = mine - first < B ? mine - first : B;
    int have = ok && rows > 0 &&
               cli_resume_load(&rs, me, first, my_img + first * pix, (size_t)(rows * pix), my_lab + first,
                               (size_t)rows * sizeof *my_lab);
    if (have) resumed_n += rows;
    for (int64_t r = 0; ok && !have && rows > 0 && r < B; r++) {
      int64_t g = me + (first + r) * R; /* past N: padding, dropped */
      RtRng rg;
      sample_stream((uint64_t)o->seed, g, &rg);
      rng_normal(&rg, x + r * img, img);
      for (int s = 0; ddpm && s < steps; s++) rng_normal(&rg, replay + ((int64_t)s * B + r) * img, img);
      labels[r] = given ? given[g % n_given] : sample_label((uint64_t)o->seed, g, sh->classes);
    }
    if (ok && !have && rows > 0 && sample_loop(rn, d, o->sampler, &mc, &nc, sh->C, sh->S, sh->learn_sigma, x, 0))
      ok = 0;
    if (ok && !have && rows > 0 && check_finite("the sampled x_0", x, rows * img, img, sample_hint(rn))) ok = 0;
    if (ok && fail_rank && atoi(fail_rank) == me) ok = !cli_fail("DITC_TEST_FAIL_RANK: rank %d fails on purpose", me);
    if (ok && !have && rows > 0 && o->vae && cli_vae_decode(&vae, x, dec)) ok = 0;
    if (ok && stop && *stop && !have && rows > 0 && ++sampled > atoll(stop))
      ok = !cli_fail("DITC_TEST_STOP_AFTER=%s: stopped on purpose after %s batch(es); --resume continues", stop, stop);
    if (!cli_mpi_all_ok(&mpi, ok)) goto failed;
    if (keep && !have) memcpy(keep + first * img, x, (size_t)(rows * img) * sizeof *x);
    const float *src = o->vae ? dec : x;
    for (int64_t r = 0; !have && r < rows; r++) {
      int64_t k = first + r;
      uint8_t *dst = my_img + k * pix;
      for (int c = 0; c < IC; c++)
        for (int64_t p = 0; p < hw; p++) {
          float v = 127.5f * src[(r * IC + c) * hw + p] + 128.0f;
          dst[p * IC + c] = (uint8_t)(v != v ? 0 : v < 0 ? 0 : v > 255 ? 255 : v);
        }
      my_lab[k] = labels[r];
    }
    if (ok && !have && rows > 0)
      ok = !cli_resume_save(&rs, me, first, my_img + first * pix, (size_t)(rows * pix), my_lab + first,
                            (size_t)rows * sizeof *my_lab);
    int64_t done_n = (first + B) * R < N ? (first + B) * R : N; /* about: every rank's rounds run together */
    double el = now_s() - t0, rate = (double)(done_n - resumed_n * R) / (el > 0 ? el : 1e-9);
    if (tty) {
      int width = 30, filled = (int)((int64_t)width * done_n / N);
      fprintf(stderr, "\rsampling [%.*s%*s] %lld/%lld  %.2f images/s  ETA %.0fs ", filled,
              "##############################", width - filled, "", (long long)done_n, (long long)N, rate,
              (double)(N - done_n) / rate);
      if (done_n == N) fputc('\n', stderr);
      fflush(stderr);
    }
  }
  double el = now_s() - t0, el_all = cli_mpi_max(&mpi, el);
  /* rank 0 puts everything at its index */
  for (int64_t k = 0; me == 0 && k < mine; k++) {
    memcpy(images + k * R * pix, my_img + k * pix, (size_t)pix);
    lab64[k * R] = my_lab[k];
  }
  cli_mpi_gather(&mpi, images, my_img, N, (size_t)pix);
  cli_mpi_gather(&mpi, lab64, my_lab, N, sizeof *lab64);
  if (R > 1)
    fprintf(stderr, "ditc: rank %d of %d: %lld images in %.1f s: %.2f images/s\n", me, R, (long long)mine, el,
            (double)mine / (el > 0 ? el : 1e-9));
  if (keep && write_latents(keep_path, keep, mine, sh)) ok = 0;
  if (me) {
    rc = cli_mpi_all_ok(&mpi, ok) ? 0 : 1;
    if (!rc) clean_partial(&rs, me);
    goto done;
  }
  NpzArray arr[2] = {
      {"arr_0", "|u1", 4, {N, IH, IW, IC}, images, (size_t)(N * pix)},
      {"arr_1", "<i8", 1, {N}, lab64, (size_t)N * sizeof *lab64},
  };
  ok = ok && !cli_npz_write(out, arr, 2, &err) && !fio_out_commit(out, &err);
  out = NULL;
  if (!ok) cli_fail("%s", err.msg);
  if (!cli_mpi_all_ok(&mpi, ok)) goto done; /* the other ranks learn that the write failed */
  clean_partial(&rs, me);
  fprintf(stderr, "ditc: %lld images in %.1f s: %.2f images/s (%d process%s, %.2f images/s a process, batch %lld, %s)\n",
          (long long)N, el_all, (double)N / (el_all > 0 ? el_all : 1e-9), R, R > 1 ? "es" : "",
          (double)N / R / (el_all > 0 ? el_all : 1e-9), (long long)B, rn->backend);
  rc = 0;
  goto done;
failed:
  if (ok) cli_fail("another rank failed (its message above); nothing was written");
done:
  fio_out_abort(out);
  cli_vae_free(&vae);
  free(dec);
  free(keep);
  for (int i = 0; i < 4; i++) rt_tensor_free(&mc.in[i]);
  cache_free(&mc);
  free(images);
  free(lab64);
  free(my_img);
  free(my_lab);
  free(labels);
  free(x);
  free(replay);
  return rc;
}

static int sample_main(const Opts *o, int cfg);

int cmd_sample(const Opts *o) {
  if (!(o->weights || o->plan) || !o->output || !o->sampler || o->steps < 0 || !o->has_cfg ||
      !(o->labels || o->labels_from || o->num_samples))
    return cli_usage("sample needs --weights (or --plan), --sampler, --steps, --cfg-scale, --labels and --output");
  if (o->num_samples && !fio_has_ext(o->output, "npz"))
    return cli_usage("--num-samples writes an .npz for the ADM evaluator: --output '%s' must end in .npz", o->output);
  if (!o->num_samples && (fio_has_ext(o->output, "npz") || o->batch))
    return cli_usage("--output F.npz and --batch go with --num-samples N");
  if (o->num_samples && (o->init_noise || o->step_noise || o->repeat > 1 || o->grid_cols))
    return cli_usage("--num-samples draws each sample's noise from (--seed, its index): --init-noise, --step-noise, "
                     "--repeat and --grid-cols do not apply");
  if (o->labels && o->labels_from) return cli_usage("give --labels or --labels-from, not both");
  if (o->vae_weights && !o->vae) return cli_usage("--vae-weights goes with --vae CONFIG_OR_DIT_FILE");
  if (o->vae && !o->vae_weights)
    return cli_usage("--vae needs --vae-weights (the AutoencoderKL checkpoint, diffusers naming)");
  if (o->resume && !o->num_samples) return cli_usage("--resume continues a --num-samples run");
  if (o->step_noise && !strcmp(o->sampler, "ddim"))
    return cli_usage("--step-noise replays DDPM's per-step noise; DDIM (eta 0) adds none");
  if (o->cache_warmup >= 0 && o->cache_interval < 1) return cli_usage("--cache-warmup %lld goes with --cache-interval N", o->cache_warmup);
  if (o->cache_warmup > o->steps)
    return cli_usage("--cache-warmup %lld is more than the %lld sampling steps (--steps)", o->cache_warmup, o->steps);
  if (o->cache_interval >= 1 && o->plan && o->weights)
    return cli_fail("--cache-interval %lld with --plan runs the pack's own weights: leave out --weights (or compile "
                    "the pack with them)", o->cache_interval);
  /* .png in any case is a PNG grid; .safetensors or a name without an
   * extension (a device, a FIFO) the samples as safetensors */
  int png = fio_has_ext(o->output, "png");
  const char *base = strrchr(o->output, '/'), *ext = strrchr(base ? base : o->output, '.');
  if (ext && !png && !o->num_samples && !fio_has_ext(o->output, "safetensors"))
    return cli_usage("--output '%s': sample writes a PNG grid (.png) or the samples as safetensors (.safetensors)",
                     o->output);
  int cfg = o->cfg_scale != 1.0;
  if (o->num_samples) {
    if (cli_mpi_init(&mpi)) return 1;
    pick_local_gpu(&mpi);
    int rc = sample_main(o, cfg);
    cli_mpi_finalize(&mpi);
    return rc;
  }
  return sample_main(o, cfg);
}

/* sample, past the checks of its options. */
static int sample_main(const Opts *o, int cfg) {
  IrErr err;
  int png = fio_has_ext(o->output, "png");
  FioOut *out = fio_out_open(o->output, NULL, &err);
  if (!out) return cli_fail("%s", err.msg);
  Runner rn, crn = {0};
  const char *entry = cfg ? "forward_with_cfg" : "forward";
  int caching = o->cache_interval >= 1;
  int cached_steps = caching ? (int)o->steps - sampler_cache_full_steps((int)o->steps, (int)o->cache_interval,
                                                                       o->cache_warmup < 0 ? 0 : (int)o->cache_warmup)
                             : 0;
  if (cli_runner_open_role(o, entry, caching ? "full" : NULL, &rn) ||
      (cached_steps > 0 && cli_runner_open_role(o, entry, "cached", &crn))) {
    cli_runner_free(&rn);
    cli_runner_free(&crn);
    fio_out_abort(out);
    return 1;
  }
  if (rn.pack && o->cfg_all_channels && cli_runner_param(&rn, "cfg_channels") != 0) {
    cli_runner_free(&rn);
    cli_runner_free(&crn);
    fio_out_abort(out);
    return cli_fail("--cfg-all-channels is fixed when a pack is compiled: compile it with --set cfg_channels=0");
  }
  int C = (int)cli_runner_param(&rn, "in_channels"), S = (int)cli_runner_param(&rn, "input_size");
  int classes = (int)cli_runner_param(&rn, "num_classes"), learn_sigma = (int)cli_runner_param(&rn, "learn_sigma");
  if (C < 1 || S < 1 || classes < 1) {
    cli_runner_free(&rn);
    cli_runner_free(&crn);
    fio_out_abort(out);
    return cli_fail("sample needs a class-conditional image model: %s has in_channels %d, input_size %d, "
                    "num_classes %d (each must be set and >= 1)", o->model ? o->model : o->plan, C, S, classes);
  }
  int rc = 1;
  Diffusion d = {0};
  int32_t *labels = NULL;
  float *x = NULL, *init = NULL;
  NoiseCtx nc = {0};
  ModelCtx mc = {0};
  int64_t n = 0, img = (int64_t)C * S * S;
  int distinct = 0;
  CliVae vae = {0};
  float *dec = NULL;
  if ((o->labels || o->labels_from) &&
      (o->labels_from ? load_labels(o->labels_from, o->repeat, classes, &labels, &n, &distinct)
                      : parse_labels(o->labels, o->repeat, classes, &labels, &n, &distinct)))
    goto done;
  if (png && !o->vae && C != 1 && C != 3) {
    cli_fail("%s samples latents (in_channels %d), not images: decode them with --vae sd-vae-ft-ema --vae-weights "
             "VAE.safetensors (diffusers' AutoencoderKL checkpoint) for a PNG, or write the latents with --output "
             "F.safetensors", o->model ? o->model : o->plan, C);
    goto done;
  }
  if (diffusion_init(&d, o->diffusion_steps, "linear", o->steps, &err)) {
    cli_fail("%s", err.msg);
    goto done;
  }
  if (o->num_samples) {
    SampleShape sh = {.C = C, .S = S, .classes = classes, .learn_sigma = learn_sigma, .cfg = cfg};
    if (!sample_npz(o, &rn, &crn, &d, &sh, labels, n, out)) rc = 0;
    out = NULL; /* committed or aborted there */
    goto done;
  }
  nc.img = img;
  nc.rows = n;
  rng_init(&nc.rng, o->seed);
  {
    char what[96]; /* x, its start, the model's inputs and outputs; replayed step noise on top */
    snprintf(what, sizeof what, "sampling %lld image%s at once", (long long)n, n == 1 ? "" : "s");
    if (cli_memory_check(what, 4.0 * (double)n * (double)img * (4 + (o->step_noise ? o->steps : 0)))) goto done;
  }
  x = xmalloc((size_t)(n * img) * sizeof *x);
  if (o->init_noise) {
    int64_t rows, steps;
    if (load_noise(o->init_noise, 0, img, n, &init, &rows, &steps)) goto done;
    memcpy(x, init, (size_t)(n * img) * sizeof *x);
  } else {
    rng_normal(&nc.rng, x, n * img);
  }
  if (o->step_noise && load_noise(o->step_noise, 1, img, n, (float **)&nc.replay, &nc.replay_rows, &nc.replay_steps))
    goto done;

  if (model_ctx_init(&mc, &rn, cfg, (float)o->cfg_scale, labels, classes, n, C, S, learn_sigma)) goto done;
  if (cli_runner_prepare(o, &rn, n) || cache_setup(o, &mc, &rn, &crn, n)) goto done;
  if (o->vae && cli_vae_open(o, rn.backend, C, S, n, &vae)) goto done; /* checked before any sampling */
  mc.be = rn.be;
  if (sample_loop(&rn, &d, o->sampler, &mc, &nc, C, S, learn_sigma, x, isatty(2))) goto done;
  if (check_finite("the sampled x_0", x, n * img, img, sample_hint(&rn))) goto done;
  /* the images: the samples, or what --vae decodes them to */
  const float *pic = x;
  int IC = C, IH = S, IW = S;
  if (o->vae) {
    dec = xmalloc((size_t)(n * cli_vae_image(&vae)) * sizeof *dec);
    if (cli_vae_decode(&vae, x, dec) || check_finite("the decoded images", dec, n * cli_vae_image(&vae),
                                                       cli_vae_image(&vae), "the VAE overflowed"))
      goto done;
    pic = dec, IC = vae.C, IH = vae.H, IW = vae.W;
  }
  if (png) {
    if (image_write_grid_to(out, pic, n, IC, IH, IW, o->grid_cols ? o->grid_cols : distinct, &err)) {
      cli_fail("%s", err.msg);
      goto done;
    }
  } else {
    StWriter *wr = st_writer_new();
    int64_t shp[4] = {n, IC, IH, IW}, lshp[4] = {n, C, S, S};
    st_writer_add(wr, "samples", ST_F32, 4, shp, pic);
    if (o->vae) st_writer_add(wr, "z", ST_F32, 4, lshp, x); /* the latents: the VAE decode entry's input */
    st_writer_add(wr, "labels", ST_I32, 1, shp, labels);
    st_writer_meta(wr, "producer", "ditc " DITC_VERSION);
    st_writer_meta(wr, "sampler", o->sampler);
    int bad = st_writer_write(wr, out, &err);
    st_writer_free(wr);
    if (bad) {
      cli_fail("%s", err.msg);
      goto done;
    }
  }
  if (fio_out_commit(out, &err)) {
    out = NULL; /* aborted by the failed commit */
    cli_fail("%s", err.msg);
    goto done;
  }
  out = NULL;
  rc = 0;
done:
  fio_out_abort(out);
  for (int i = 0; i < 4; i++) rt_tensor_free(&mc.in[i]);
  free(labels);
  free(x);
  free(init);
  free(dec);
  cli_vae_free(&vae);
  free((void *)nc.replay);
  diffusion_free(&d);
  cache_free(&mc);
  cli_runner_free(&rn);
  cli_runner_free(&crn);
  return rc;
}


int cli_sample_labels(const Opts *o, int classes, int64_t n, int32_t *out) {
  int32_t *given = NULL;
  int64_t n_given = 0;
  int distinct;
  if ((o->labels || o->labels_from) &&
      (o->labels_from ? load_labels(o->labels_from, 1, classes, &given, &n_given, &distinct)
                      : parse_labels(o->labels, 1, classes, &given, &n_given, &distinct)))
    return 1;
  for (int64_t g = 0; g < n; g++)
    out[g] = given && n_given ? given[g % n_given] : sample_label((uint64_t)o->seed, g, classes);
  free(given);
  return 0;
}
