/*
 * cli.h - what the `ditc` command line's files share (not part of the
 * library: these files build the ditc executable only).
 *
 *   main.c         the tables of commands and options, argument parsing, help
 *   cli_run.c      running a model on a backend (Runner); run, sample
 *   cli_compile.c  NVRTC through the kernel cache (Compiler); compile, cache
 *   cli_report.c   compile's report: the plans' statistics, as JSON and text
 *   cli_bench.c    bench
 *   cli_inspect.c  check, ir, stats, compare, models
 *   cli_npz.c      the .npz of sample --num-samples
 *   cli_mpi.c      the processes of mpirun ditc sample
 *   cli_vae.c      sample --vae: the latents decoded to images
 *   cli_resume.c   sample --num-samples --resume: the finished batches kept
 *
 * Handlers get the parsed options and return the exit status: 0, 1 after an
 * error (cli_fail) or 2 after a usage error (cli_usage).
 */
#ifndef DITC_CLI_H
#define DITC_CLI_H

#include <jansson.h>

#include "codegen/cache.h"
#include "codegen/nvrtc.h"
#include "codegen/pack.h"
#include "frontend/frontend.h"
#include "frontend/pack_plan.h"
#include "ir/fileio.h"
#include "passes/passes.h"
#include "runtime/backend.h"
#include "runtime/safetensors.h"
#include "runtime/weights.h"

#define DITC_VERSION "0.1.0"

/* Every option of every command, parsed (main.c's option table says which
 * command takes which, and what each means). */
typedef struct {
  const char *cmd;
  const char *model;
  const char *extra;          /* compare: the second operand */
  FeSetting sets[64];
  int n_sets;
  const char *weights, *input, *output, *prefix;
  int has_cfg;                /* --cfg-scale given */
  double cfg_scale;
  long long cfg_all_channels;
  const char *sampler;
  long long steps, diffusion_steps;
  const char *labels, *labels_from;
  long long repeat, grid_cols;
  long long num_samples;      /* sample: --num-samples N (an .npz of N images) */
  const char *vae, *vae_weights; /* sample: --vae CONFIG_OR_DIT_FILE --vae-weights W (decode the samples) */
  long long resume;           /* sample --num-samples: continue from the finished batches */
  long long seed;
  const char *init_noise, *step_noise;
  const char *passes, *dump_after;
  const char *quantize, *quantize_scope; /* --quantize, --quantize-scope: a quantize pass in the pipeline */
  PassPipeline pipeline;      /* --passes (or the default), parsed and checked */
  long long json, batch, verify;
  const char *backend, *entry, *weight_dtype;
  double tol;
  const char *sub;            /* cache: build, ls, verify, clear */
  const char *arch, *precision, *plan;  /* precision: canonical ("f32", "f16", "bf16") */
  long long report;
  const char *source;         /* compile: write the generated CUDA C here */
  long long iters, warmup;    /* bench */
  long long profile;          /* bench: time every step */
  const char *gpu;            /* bench --profile: the peak-table row */
  long long ops, passes_help; /* ir: print the op table / the passes instead */
  /* the flags that stand for a pass (--prune-heads K, ...): the option's
   * name, the pass it puts after cse (a format with one %s), its value */
  struct {
    const char *flag, *pass, *value;
  } pass_flags[8];
  int n_pass_flags;
  long long prune_heads, kv_heads, prune_blocks, calibrate;
  long long cache_interval, cache_warmup; /* sample, stats: step caching (0, -1: not given) */
  long long step_cache;       /* compile: also step caching's two entries of each entry */
  double prune_mlp;
} Opts;

/* ---- messages (main.c) ------------------------------------------------------ */

/* "ditc: error: ..." on stderr; returns 1. */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "ditc: error: ..." and where the running command's usage is; returns 2. */
int cli_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "ditc: warning: ..." */
void cli_warn(const char *msg);

/* The settings a model is built with: --set's, then what flags stand for
 * (--cfg-all-channels: cfg_channels=0).  sets has room for CLI_MAX_SETTINGS;
 * returns how many. */
#define CLI_MAX_SETTINGS 66
int cli_settings(const Opts *o, FeSetting *sets);
/* Elaborate `entry` of o->model and run o->pipeline.  Returns 0 or 1. */
int cli_build(const Opts *o, const char *entry, FeModel *m);
/* The same with step caching's role (passes.h, pass_step_cache): NULL or
 * "none" as cli_build, "full" or "cached" its two entries. */
int cli_build_role(const Opts *o, const char *entry, const char *role, FeModel *m);
/* --precision as a dtype (f32 when not given). */
IrDType cli_precision(const Opts *o);

/* ---- NVRTC through the kernel cache (cli_compile.c) ----------------------- */

/* NVRTC and the kernel cache, opened once per command. */
typedef struct {
  CgNvrtc *nv;
  CgCache *cache;
  char inc[1100];           /* -I<cuda>/include, for cuda_fp16.h / cuda_bf16.h */
  int compiled, cached;
} Compiler;

int cli_compiler_open(Compiler *c, int need_nvrtc);
void cli_compiler_close(Compiler *c);
/* One plan's CUBIN for one architecture, from the cache or compiled now, and
 * ptxas' report (from the cache with the CUBIN, or from compiling both again). */
int cli_compile_plan(Compiler *c, const CgPlan *p, const char *arch, unsigned char **cubin, size_t *size, char **log);

/* ---- running a model on a backend (cli_run.c) ------------------------------ */

/* What run, sample and bench execute: the graph of MODEL (ref), a plan built
 * from it here (emu, cuda) or a plan from a pack (--plan), on one backend. */
typedef struct {
  const char *backend;
  FeModel m;
  int built;
  CgPack *pack;
  const CgPackPlan *pp;       /* with a pack: packed.view, the plan built again from its record */
  FePackPlan packed;
  CgPlan *plan;               /* built here */
  const CgPlan *use;          /* the plan that runs (emu, cuda) */
  Weights w;
  void *blob;                 /* owned weights blob */
  char arch[9];               /* cuda: the GPU's architecture ("sm_90"), else "" */
  CgPackCubin cubin;          /* cuda with MODEL: compiled here */
  unsigned char *cubin_data;
  char *cubin_log;
  RtBackend *be;
  int n_in;                   /* graph inputs, in order */
  const char **in_names;
  IrDType *in_dtypes;
  IrGraph *bind_graph;        /* bind --weights against this graph (step caching's cached entry: the full
                               * entry's, whose PARAMs, of the same ids, it lacks some of); NULL: m.graph */
  FeModel bind_m;             /* --entry ENTRY.cache_step: ENTRY built to bind against (bind_graph) */
} Runner;

int cli_runner_open(const Opts *o, const char *entry, Runner *r);
/* The same for step caching's entries (role "full" or "cached"; NULL: as cli_runner_open). */
int cli_runner_open_role(const Opts *o, const char *entry, const char *role, Runner *r);
int64_t cli_runner_param(const Runner *r, const char *name);
int cli_runner_prepare(const Opts *o, Runner *r, int64_t batch);
/* 0 when `bytes` of host memory fit the limit ($DITC_MEMORY_LIMIT, else what
 * the machine has available); else `ditc: error: WHAT needs about ...` and 1. */
int cli_memory_check(const char *what, double bytes);
void cli_runner_free(Runner *r);

/* The labels of the first n samples `sample` draws: --labels or
 * --labels-from cycled, else its Philox draws from --seed.  0 or 1. */
int cli_sample_labels(const Opts *o, int classes, int64_t n, int32_t *out);

/* ---- calibration data for the passes (cli_calib.c) ------------------------- */

/* When o->pipeline has a pass reading calibration data
 * (pass_pipeline_needs_calib) and the command has weights (spec), the
 * statistics measured on MODEL's graph at that pass's place by the
 * command's sampler (runtime/calib.h), from the cache or measured now
 * (saying so on stderr); else *out NULL.  model: the command's own build
 * (its parameters).  Returns 0 or 1. */
int cli_calibration(const Opts *o, const FeModel *model, const char *spec, const struct PassCalib **out);

/* FILE:TENSOR: open FILE and find TENSOR.  Returns the open file (close it
 * with st_close) and the tensor in *t, or NULL after saying why. */
StFile *cli_open_tensor_spec(const char *spec, const StTensor **t);

/* ---- the .npz of `sample --num-samples` (cli_npz.c) ------------------------ */

/* One array of an .npz: name ("arr_0"), numpy descr ("|u1", "<i8"), shape, C-order bytes. */
typedef struct {
  const char *name, *descr;
  int rank;
  int64_t shape[4];
  const void *data;
  size_t bytes;
} NpzArray;
/* Write the arrays as a stored (uncompressed) zip of NAME.npy members.  0 or -1. */
int cli_npz_write(FioOut *out, const NpzArray *arrays, int n, IrErr *err);

/* ---- sample --vae: the latents decoded to images (cli_vae.c) -------------- */

typedef struct {
  Opts opts;                 /* the decoder's: --vae, --vae-weights, the sampler's backend and precision */
  char latent_size[24];
  Runner rn;
  int open;
  int C, H, W;               /* the images */
  int64_t latent, batch;     /* floats of one latent; latents per decode */
  int64_t shape[4];
} CliVae;
/* Build o->vae's decode entry at latent_size, check it decodes latent_channels
 * and bind --vae-weights (every mismatch listed), prepared on `backend` at
 * `batch`.  0 or 1 (after saying why); cli_vae_free either way. */
int cli_vae_open(const Opts *o, const char *backend, int latent_channels, int latent_size, int64_t batch, CliVae *v);
/* batch latents z -> batch images [C, H, W] in img.  0 or 1. */
int cli_vae_decode(CliVae *v, const float *z, float *img);
/* Floats of one image. */
int64_t cli_vae_image(const CliVae *v);
void cli_vae_free(CliVae *v);

/* ---- sample --num-samples --resume: the finished batches (cli_resume.c) ---- */

typedef struct {
  char dir[4096];            /* X.npz.partial */
  int on;
} CliResume;
/* Rank 0: make output.partial/ with `settings`, or with resume check the one
 * there against them (a folder there without resume is refused).  0 or 1. */
int cli_resume_open(CliResume *r, const char *output, const char *settings, int resume, int rank);
/* A finished batch of rank's from `first` into img and lab: 1, else 0 (not there). */
int cli_resume_load(const CliResume *r, int rank, int64_t first, void *img, size_t img_bytes, void *lab,
                    size_t lab_bytes);
/* Keep a finished batch (atomically).  0 or 1. */
int cli_resume_save(const CliResume *r, int rank, int64_t first, const void *img, size_t img_bytes, const void *lab,
                    size_t lab_bytes);
/* After the .npz is committed: remove rank's batch files, or with `all`
 * everything and the folder. */
void cli_resume_clean(const CliResume *r, int rank, int all);

/* ---- the processes of `mpirun ditc sample` (cli_mpi.c) ---------------------- */

typedef struct {
  int on;                    /* joined MPI_COMM_WORLD (built with MPI and started by mpirun) */
  int rank, size, local_rank;
} CliMpi;
/* Join MPI when built with it and started by a launcher, else rank 0 of 1.  0 or 1. */
int cli_mpi_init(CliMpi *m);
/* Whether every rank says ok (a collective: every rank calls it as often). */
int cli_mpi_all_ok(const CliMpi *m, int ok);
/* The largest v of all ranks (collective). */
double cli_mpi_max(const CliMpi *m, double v);
/* Rank 0 gets, at all + g * per, the `per` bytes every other rank holds for
 * its samples g = rank, rank + R, ... < n in `mine` (collective). */
void cli_mpi_gather(const CliMpi *m, void *all, const void *mine, int64_t n, size_t per);
void cli_mpi_finalize(CliMpi *m);

/* ---- compile's report (cli_report.c) --------------------------------------- */

/* Plan p's statistics as a new entry of rep's "plans" (its "archs" filled by
 * cli_arch_report). */
json_t *cli_plan_report(json_t *rep, const CgPlan *p, IrGraph *g, const char *entry);
/* Arch's CUBIN of plan p in the plan's entry (ptxas' numbers when log is there). */
void cli_arch_report(json_t *pj, const CgPlan *p, const char *arch, size_t size, const char *log);
/* The report as text. */
void cli_print_report(const json_t *rep, FILE *f);

/* ---- the commands ----------------------------------------------------------- */

int cmd_run(const Opts *o);
int cmd_sample(const Opts *o);
int cmd_compile(const Opts *o);
int cmd_cache(const Opts *o);
int cmd_bench(const Opts *o);
int cmd_check(const Opts *o);
int cmd_ir(const Opts *o);
int cmd_stats(const Opts *o);
int cmd_compare(const Opts *o);
int cmd_models(const Opts *o);

#endif
