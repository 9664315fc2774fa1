/*
 * main.c - the `ditc` command line.
 *
 *   ditc run     MODEL --weights W --input F --output F [--cfg-scale S]   one forward pass
 *   ditc sample  MODEL --weights W --sampler ddpm|ddim --steps N ...      a whole sampling run
 *                (both also take --plan P.ditpack in place of MODEL, --backend ref|emu|cuda,
 *                and --arch sm_XX on emu: the plan of that architecture's tuning row)
 *   ditc compile MODEL --arch sm_80,sm_90 -o OUT.ditpack [--report]     plans + CUBINs in one file
 *                (a plan per distinct tuning row of the architectures)
 *   ditc cache   build MODEL --arch ... | ls | verify | clear            the kernel cache
 *   ditc check   MODEL [--weights W]                                      parse, elaborate, verify, bind
 *   ditc ir      MODEL [--passes P] [--dump-after NAME]                   print the IR
 *   ditc stats   MODEL [--json]                                           parameters, MACs, bytes
 *   ditc compare A.safetensors:T B.safetensors:T [--tol X]                relative L2 error
 *   ditc models                                                            named configurations
 *
 * Each command declares the flags it takes; anything else is a usage error
 * (exit 2).  Errors the user can cause exit 1 with one clear message and leave
 * no output file behind (writers go through a temporary file and a rename).
 * This file only parses arguments and strings the library calls together.
 */
#include <errno.h>
#include <stddef.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "codegen/cache.h"
#include "codegen/nvrtc.h"
#include "codegen/pack.h"
#include "codegen/emu.h"
#include "frontend/frontend.h"
#include "passes/passes.h"
#include "runtime/backend.h"
#include "runtime/cuda_api.h"
#include "runtime/image.h"
#include "runtime/ref.h"
#include "runtime/safetensors.h"
#include "runtime/sampler.h"
#include "runtime/weights.h"

#define DITC_VERSION "0.1.0"

/* ---- options ---------------------------------------------------------------- */

enum {
  F_SET = 1 << 0, F_WEIGHTS = 1 << 1, F_INPUT = 1 << 2, F_OUTPUT = 1 << 3, F_CFG = 1 << 4,
  F_SAMPLER = 1 << 5, F_STEPS = 1 << 6, F_LABELS = 1 << 7, F_SEED = 1 << 8, F_NOISE = 1 << 9,
  F_PASSES = 1 << 10, F_JSON = 1 << 11, F_BATCH = 1 << 12, F_BACKEND = 1 << 13, F_ENTRY = 1 << 14,
  F_TOL = 1 << 15, F_PREFIX = 1 << 16, F_GRID = 1 << 17, F_ARCH = 1 << 18, F_PRECISION = 1 << 19,
  F_PLAN = 1 << 20, F_REPORT = 1 << 21, F_BENCH = 1 << 22, F_SOURCE = 1 << 23,
};

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
  long long seed;
  const char *init_noise, *step_noise;
  const char *passes, *dump_after;
  long long json, batch, verify;
  const char *backend, *entry, *weight_dtype;
  double tol;
  const char *sub;            /* cache: build, ls, verify, clear */
  const char *arch, *precision, *plan;
  long long report;
  const char *source;         /* compile: write the generated CUDA C here */
  long long iters, warmup;    /* bench */
} Opts;

/* One command-line option: which commands take it, what its value is, where
 * it goes.  parse_args() is a loop over this table. */
typedef enum { OPT_FLAG, OPT_STR, OPT_INT, OPT_NUM, OPT_SET } OptKind;

typedef struct {
  const char *name;
  int cmds;                   /* F_ bits: the option is accepted where command_flags() has one */
  OptKind kind;
  size_t at;                  /* offsetof(Opts, field) */
  long long lo, hi;           /* OPT_INT: the range; OPT_NUM: lo = minimum when hi != 0 */
  const char *choices;        /* OPT_STR: "a|b|c", or NULL for any string */
  const char *says;           /* the value, as the error message describes it */
} OptSpec;

#define O(f) offsetof(Opts, f)
static const OptSpec OPTIONS[] = {
    {"--set", F_SET, OPT_SET, 0, 0, 0, NULL, "NAME=VALUE"},
    {"--weights", F_WEIGHTS, OPT_STR, O(weights), 0, 0, NULL, NULL},
    {"--input", F_INPUT, OPT_STR, O(input), 0, 0, NULL, NULL},
    {"--prefix", F_PREFIX, OPT_STR, O(prefix), 0, 0, NULL, NULL},
    {"--output", F_OUTPUT, OPT_STR, O(output), 0, 0, NULL, NULL},
    {"-o", F_OUTPUT, OPT_STR, O(output), 0, 0, NULL, NULL},
    {"--cfg-scale", F_CFG, OPT_NUM, O(cfg_scale), 0, 0, NULL, "a number"},
    {"--cfg-all-channels", F_SAMPLER, OPT_FLAG, O(cfg_all_channels), 0, 0, NULL, NULL},
    {"--sampler", F_SAMPLER, OPT_STR, O(sampler), 0, 0, "ddpm|ddim", "ddpm or ddim"},
    {"--steps", F_STEPS, OPT_INT, O(steps), 1, 100000, NULL, "a whole number >= 1"},
    {"--diffusion-steps", F_STEPS, OPT_INT, O(diffusion_steps), 2, 100000, NULL, "a whole number >= 2"},
    {"--labels", F_LABELS, OPT_STR, O(labels), 0, 0, NULL, NULL},
    {"--labels-from", F_LABELS, OPT_STR, O(labels_from), 0, 0, NULL, NULL},
    {"--repeat", F_LABELS, OPT_INT, O(repeat), 1, 1000000, NULL, "a whole number >= 1"},
    {"--grid-cols", F_GRID, OPT_INT, O(grid_cols), 1, 100000, NULL, "a whole number >= 1"},
    {"--seed", F_SEED, OPT_INT, O(seed), 0, INT64_MAX, NULL, "a whole number >= 0"},
    {"--init-noise", F_NOISE, OPT_STR, O(init_noise), 0, 0, NULL, NULL},
    {"--step-noise", F_NOISE, OPT_STR, O(step_noise), 0, 0, NULL, NULL},
    {"--passes", F_PASSES, OPT_STR, O(passes), 0, 0, NULL, NULL},
    {"--dump-after", F_PASSES, OPT_STR, O(dump_after), 0, 0, NULL, NULL},
    {"--verify", F_PASSES, OPT_FLAG, O(verify), 0, 0, NULL, NULL},
    {"--json", F_JSON, OPT_FLAG, O(json), 0, 0, NULL, NULL},
    {"--batch", F_BATCH, OPT_INT, O(batch), 1, 1 << 20, NULL, "a whole number >= 1"},
    {"--weight-dtype", F_JSON, OPT_STR, O(weight_dtype), 0, 0, "f32|f16|bf16|i8", "f32, f16, bf16 or i8"},
    {"--backend", F_BACKEND, OPT_STR, O(backend), 0, 0, "ref|emu|cuda", "ref, emu or cuda"},
    {"--arch", F_ARCH, OPT_STR, O(arch), 0, 0, NULL, NULL},
    {"--precision", F_PRECISION, OPT_STR, O(precision), 0, 0, "f32|f16|bf16", "f32, f16 or bf16"},
    {"--plan", F_PLAN, OPT_STR, O(plan), 0, 0, NULL, NULL},
    {"--report", F_REPORT, OPT_FLAG, O(report), 0, 0, NULL, NULL},
    {"--source", F_SOURCE, OPT_STR, O(source), 0, 0, NULL, NULL},
    {"--entry", F_ENTRY, OPT_STR, O(entry), 0, 0, NULL, NULL},
    {"--tol", F_TOL, OPT_NUM, O(tol), 0, 1, NULL, "a number >= 0"},
    {"--iters", F_BENCH, OPT_INT, O(iters), 1, 100000, NULL, "a whole number >= 1"},
    {"--warmup", F_BENCH, OPT_INT, O(warmup), 0, 100000, NULL, "a whole number >= 0"},
};
#undef O

static const char *prog = "ditc";

static void usage(FILE *f) {
  fprintf(f,
          "usage: ditc COMMAND MODEL [options]\n"
          "\n"
          "commands:\n"
          "  run      one forward pass: --weights W --input F.safetensors --output F.safetensors\n"
          "           [--cfg-scale S] [--prefix P] (reads P+x, P+t, P+y; writes `out`)\n"
          "  sample   sample images: --weights W --sampler ddpm|ddim --steps N --cfg-scale S\n"
          "           --labels L,... [--repeat K] [--seed N] [--init-noise FILE:TENSOR]\n"
          "           [--step-noise FILE:TENSOR] [--cfg-all-channels] [--grid-cols N]\n"
          "           --output F.safetensors|F.png\n"
          "  check    parse, elaborate and verify MODEL; with --weights, bind them\n"
          "  ir       print MODEL's IR [--entry forward|forward_with_cfg] [--passes a,b|default|none]\n"
          "           [--dump-after PASS|all]\n"
          "  stats    parameters, MACs and bytes [--batch N] [--weight-dtype f32|f16|bf16|i8] [--json]\n"
          "  compare  A.safetensors:TENSOR B.safetensors:TENSOR [--tol X]  relative L2 error of A vs B\n"
          "  models   list the named configurations\n"
          "  bench    time forward passes: MODEL|--plan P [--backend B] [--precision P] [--batch N]\n"
          "           [--entry E] [--iters N] [--warmup N] [--weights W (default random)] [--report]\n"
          "           (--report: one line of JSON; on cuda with the device memory in use, device_bytes)\n"
          "  compile  plans and CUBINs in one file: --arch sm_80,sm_90 -o OUT.ditpack [--weights W]\n"
          "           [--precision f32|f16|bf16] [--batch N] [--entry forward|forward_with_cfg|all]\n"
          "           [--passes P] [--report [--json]] [--source OUT.cu]  (needs NVRTC, not a GPU; --report lists every\n"
          "           step with the bytes it moves; one plan per distinct tuning row of the architectures:\n"
          "           those whose launch geometry is the same share one)\n"
          "  cache    build MODEL --arch ... [--precision P] [--batch N]  fill the kernel cache;\n"
          "           ls | verify | clear [--arch sm_XX]  ($DITC_CACHE_DIR, else ~/.cache/ditc)\n"
          "\n"
          "MODEL is a .dit file, FILE:CONFIG, or a configuration name such as DiT-S/2 (see `ditc models`).\n"
          "Every command that takes MODEL takes --set NAME=VALUE (repeatable) to override a model parameter.\n"
          "--weights takes a safetensors file (reference or diffusers naming) or random[:SEED].\n"
          "run and sample take --plan P.ditpack in place of MODEL (weights from the pack, or --weights)\n"
          "and --backend ref (CPU reference executor), emu (the generated kernels on the CPU) or cuda;\n"
          "the default is cuda when a GPU is present, else ref (emu with --plan).  --precision f32|f16|bf16\n"
          "selects the plan's precision for emu and cuda.  --arch sm_XX (emu) runs the plan of that\n"
          "architecture's tuning row (from the pack, or built here); cuda runs the GPU's own.  On emu and\n"
          "cuda, sample keeps the whole loop on the device (DITC_SAMPLE_ON_HOST=1: the host loop over forward\n"
          "passes instead).\n");
  int n;
  const PassInfo *t = pass_table(&n);
  fprintf(f, "\nEvery command that takes MODEL takes --passes a,b|default|none (default: %s):\n",
          PASS_DEFAULT_PIPELINE);
  for (int i = 0; i < n; i++) fprintf(f, "  %-15s %s\n", t[i].name, t[i].doc);
}

static int die_usage(const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "%s: ", prog);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\nrun `ditc help` for usage\n");
  return 2;
}

static int fail(const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "%s: error: ", prog);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  return 1;
}

static int parse_int(const char *s, long long lo, long long hi, long long *out) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi) return -1;
  *out = v;
  return 0;
}

static int parse_double(const char *s, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || !isfinite(v)) return -1;
  *out = v;
  return 0;
}

static int command_flags(const char *cmd) {
  if (!strcmp(cmd, "run"))
    return F_SET | F_WEIGHTS | F_INPUT | F_OUTPUT | F_CFG | F_PASSES | F_BACKEND | F_PREFIX | F_PLAN | F_PRECISION |
           F_ARCH;
  if (!strcmp(cmd, "sample"))
    return F_SET | F_WEIGHTS | F_OUTPUT | F_CFG | F_SAMPLER | F_STEPS | F_LABELS | F_SEED | F_NOISE |
           F_PASSES | F_BACKEND | F_GRID | F_PLAN | F_PRECISION | F_ARCH;
  if (!strcmp(cmd, "compile"))
    return F_SET | F_WEIGHTS | F_ARCH | F_PRECISION | F_BATCH | F_ENTRY | F_REPORT | F_JSON | F_OUTPUT | F_PASSES |
           F_SOURCE;
  if (!strcmp(cmd, "cache")) return F_SET | F_ARCH | F_PRECISION | F_BATCH | F_ENTRY | F_PASSES;
  if (!strcmp(cmd, "check")) return F_SET | F_WEIGHTS | F_PASSES;
  if (!strcmp(cmd, "ir")) return F_SET | F_PASSES | F_ENTRY;
  if (!strcmp(cmd, "stats")) return F_SET | F_JSON | F_BATCH | F_PASSES | F_ENTRY;
  if (!strcmp(cmd, "bench"))
    return F_SET | F_WEIGHTS | F_BATCH | F_PASSES | F_ENTRY | F_BACKEND | F_PLAN | F_PRECISION | F_BENCH | F_REPORT |
           F_ARCH;
  if (!strcmp(cmd, "compare")) return F_TOL;
  if (!strcmp(cmd, "models")) return 0;
  return -1;
}

/* Store one option's value.  Returns 0, or 2 after a usage message for a bad value. */
static int set_option(Opts *o, const OptSpec *spec, const char *v) {
  char *field = (char *)o + spec->at;
  switch (spec->kind) {
  case OPT_FLAG:
    *(long long *)field = 1;
    return 0;
  case OPT_SET: {
    const char *eq = strchr(v, '=');
    if (!eq || eq == v) return die_usage("--set takes NAME=VALUE, got '%s'", v);
    if (o->n_sets == (int)(sizeof o->sets / sizeof o->sets[0])) return die_usage("too many --set options");
    o->sets[o->n_sets++] = (FeSetting){strndup(v, (size_t)(eq - v)), eq + 1};
    return 0;
  }
  case OPT_STR:
    if (spec->choices) {
      size_t n = strlen(v);
      const char *c = spec->choices;
      int ok = 0;
      while (*c && !ok) {
        size_t len = strcspn(c, "|");
        ok = n && len == n && !strncmp(c, v, n);
        c += len + (c[len] == '|');
      }
      if (!ok) return die_usage("%s is %s, got '%s'", spec->name, spec->says, v);
    }
    *(const char **)field = v;
    return 0;
  case OPT_INT:
    if (parse_int(v, spec->lo, spec->hi, (long long *)field))
      return die_usage("%s takes %s, got '%s'", spec->name, spec->says, v);
    return 0;
  case OPT_NUM:
    if (parse_double(v, (double *)field) || (spec->hi && *(double *)field < (double)spec->lo))
      return die_usage("%s takes %s, got '%s'", spec->name, spec->says, v);
    if (field == (char *)&o->cfg_scale) o->has_cfg = 1;
    return 0;
  }
  ditc_unreachable();
}

/* Parse argv into o.  Returns 0, or an exit status (2) after printing why. */
static int parse_args(int argc, char **argv, Opts *o) {
  int flags = command_flags(o->cmd);
  if (flags < 0) return die_usage("unknown command '%s'", o->cmd);
  o->steps = -1;
  o->diffusion_steps = 1000;
  o->repeat = 1;
  o->tol = -1;
  o->weight_dtype = "f32";
  int first = 2;
  if (!strcmp(o->cmd, "cache")) {
    if (argc < 3 || (strcmp(argv[2], "build") && strcmp(argv[2], "ls") && strcmp(argv[2], "verify") &&
                     strcmp(argv[2], "clear")))
      return die_usage("cache takes build, ls, verify or clear");
    o->sub = argv[2];
    first = 3;
  }
  for (int i = first; i < argc; i++) {
    const char *a = argv[i];
    if (a[0] != '-' || !a[1]) {
      if (!o->model)
        o->model = a;
      else if (!strcmp(o->cmd, "compare") && !o->extra)
        o->extra = a;
      else
        return die_usage("unexpected argument '%s'", a);
      continue;
    }
    const OptSpec *spec = NULL;
    for (size_t k = 0; k < sizeof OPTIONS / sizeof OPTIONS[0] && !spec; k++)
      if (!strcmp(a, OPTIONS[k].name)) spec = &OPTIONS[k];
    if (!spec) return die_usage("unknown option '%s' for '%s'", a, o->cmd);
    if (!(flags & spec->cmds)) return die_usage("'%s' does not take %s", o->cmd, a);
    const char *v = NULL;
    if (spec->kind != OPT_FLAG) {
      if (i + 1 >= argc) return die_usage("%s needs a value", a);
      v = argv[++i];
    }
    if (set_option(o, spec, v)) return 2;
  }
  int no_model = !strcmp(o->cmd, "models") || (o->sub && strcmp(o->sub, "build"));
  if (o->plan && o->model) return die_usage("give MODEL or --plan, not both");
  if (!no_model && !o->model && !o->plan)
    return die_usage("'%s%s%s' needs a MODEL", o->cmd, o->sub ? " " : "", o->sub ? o->sub : "");
  if (no_model && o->model) return die_usage("'%s%s%s' takes no MODEL", o->cmd, o->sub ? " " : "", o->sub ? o->sub : "");
  if (o->sub && strcmp(o->sub, "build") && (o->n_sets || o->batch || o->entry || o->passes || o->precision))
    return die_usage("'cache %s' takes only --arch", o->sub);
  if (!strcmp(o->cmd, "compare") && !o->extra) return die_usage("compare needs two FILE:TENSOR operands");
  return 0;
}

/* ---- building the model ------------------------------------------------------ */

/* Elaborate `entry` of the model, run the pass pipeline.  Returns 0 or 1. */
static int build(const Opts *o, const char *entry, FeModel *m) {
  FeSetting sets[66];
  int n = o->n_sets;
  memcpy(sets, o->sets, (size_t)n * sizeof *sets);
  if (o->cfg_all_channels) sets[n++] = (FeSetting){"cfg_channels", "0"};
  int errors = fe_build(o->model, sets, n, entry, stderr, m);
  if (errors) {
    fprintf(stderr, "%s: %d error%s\n", prog, errors, errors == 1 ? "" : "s");
    return 1;
  }
  PassOptions po = {.verify = 1, .dump_after = o->dump_after, .dump = stdout};
  IrErr err;
  if (pass_run_pipeline(m->graph, o->passes ? o->passes : "default", &po, &err)) {
    fe_model_free(m);
    return fail("%s", err.msg);
  }
  return 0;
}

/* ---- compiling kernels: NVRTC through the kernel cache ------------------------- */

static void cache_warn(void *user, const char *msg) {
  (void)user;
  fprintf(stderr, "%s: warning: %s\n", prog, msg);
}

/* NVRTC and the kernel cache, opened once per command. */
typedef struct {
  CgNvrtc *nv;
  CgCache *cache;
  char inc[1100];           /* -I<cuda>/include, for cuda_fp16.h / cuda_bf16.h */
  int compiled, cached;
} Compiler;

static int compiler_open(Compiler *c, int need_nvrtc) {
  IrErr err;
  memset(c, 0, sizeof *c);
  if (!(c->cache = cg_cache_open(NULL, &err))) return fail("%s", err.msg);
  cg_cache_set_warn(c->cache, cache_warn, NULL);
  if (!need_nvrtc) return 0;
  if (!(c->nv = cg_nvrtc_open(NULL, &err))) {
    cg_cache_close(c->cache);
    return fail("%s", err.msg);
  }
  const char *home = getenv("CUDA_HOME");
  snprintf(c->inc, sizeof c->inc, "%s/include", home && *home ? home : "/usr/local/cuda");
  if (access(c->inc, R_OK) == 0) {
    memmove(c->inc + 2, c->inc, strlen(c->inc) + 1);
    memcpy(c->inc, "-I", 2);
  } else {
    c->inc[0] = 0;  /* NVRTC's built-in headers then */
  }
  return 0;
}

static void compiler_close(Compiler *c) {
  cg_nvrtc_close(c->nv);
  cg_cache_close(c->cache);
}

/* Drop ptxas' "Compile time = 4.2 ms" lines, so that the same compile gives
 * the same pack byte for byte. */
static void strip_timing(char *log) {
  char *out = log;
  for (char *line = log; *line;) {
    char *end = strchr(line, '\n');
    size_t len = end ? (size_t)(end - line) + 1 : strlen(line);
    if (!memmem(line, len, "Compile time =", 14)) {
      memmove(out, line, len);
      out += len;
    }
    line += len;
  }
  *out = 0;
}

/* One plan's CUBIN for one architecture, from the cache or compiled now.
 * ptxas' report is cached next to the CUBIN, as an entry of its own keyed
 * like the CUBIN with "/ptxas-log" added to the codegen version, so a cache
 * hit can still report registers and spills (*log NULL when it is gone). */
static int compile_plan(Compiler *c, const CgPlan *p, const char *arch, unsigned char **cubin, size_t *size,
                        char **log) {
  IrErr err;
  *log = NULL;
  if (cg_nvrtc_check_arch(c->nv, arch, &err)) return fail("%s", err.msg);
  const char *prelude = emu_cuda_prelude_text();
  size_t n = strlen(prelude) + strlen(p->source) + 64;
  char *src = xmalloc(n), name[96];
  snprintf(src, n, "%s\n#line 1 \"ditc_%s.cu\"\n%s", prelude, p->entry, p->source);
  snprintf(name, sizeof name, "ditc_%s.cu", p->entry);
  const char *opts[1] = {c->inc};
  CgCacheRequest rq = {.source = src, .name = name, .arch = arch, .options = opts, .n_options = c->inc[0] ? 1 : 0,
                       .compiler_version = cg_nvrtc_version_string(c->nv), .codegen_version = CG_CODEGEN_VERSION};
  CgCompiled rep = {0};
  CgNvrtcCacheCtx ctx = {c->nv, &rep};
  int hit = 0, rc = 1;
  if (cg_cache_get_or_compile(c->cache, &rq, cg_nvrtc_cache_compile, &ctx, cubin, size, &hit, &err)) {
    fail("%s", rep.diag ? rep.diag : err.msg);
    goto out;
  }
  hit ? c->cached++ : c->compiled++;
  rq.codegen_version = CG_CODEGEN_VERSION "/ptxas-log";
  CgCacheKey key;
  if (cg_cache_key(&rq, &key, &err)) {
    fail("%s", err.msg);
    goto out;
  }
  if (!hit) {
    *log = xstrdup(rep.log ? rep.log : "");
    strip_timing(*log);
    if (cg_cache_store(c->cache, arch, &key, *log, strlen(*log), &err)) cache_warn(NULL, err.msg);
  } else {
    unsigned char *d;
    size_t dn;
    int got = cg_cache_load(c->cache, arch, &key, &d, &dn, &err);
    if (got < 0) cache_warn(NULL, err.msg);
    if (got == 1) {
      *log = strndup((const char *)d, dn);
      free(d);
    }
  }
  rc = 0;
out:
  cg_compiled_free(&rep);
  free(src);
  return rc;
}

static int parse_precision(const Opts *o, IrDType *t) {
  ir_dtype_parse(o->precision ? o->precision : "f32", t);
  return 0;
}

/* ---- running a model on a backend ----------------------------------------------- */

/* What run and sample execute: the graph of MODEL (ref), a plan built from it
 * here (emu, cuda) or a plan from a pack (--plan), on one backend. */
typedef struct {
  const char *backend;
  FeModel m;
  int built;
  CgPack *pack;
  const CgPackPlan *pp;
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
} Runner;

static const char *default_backend(const Opts *o) {
  if (o->backend) return o->backend;
  if (rt_cuda_available(NULL)) return "cuda";
  return o->plan ? "emu" : "ref";
}

/* "sm_XY" of CUDA device 0.  Returns 0 or 1 (after saying why). */
static int device_arch(char *arch, size_t n) {
  RtCudaDevice dev;
  IrErr err;
  if (rt_cuda_device_open(0, &dev, &err)) return fail("%s", err.msg);
  snprintf(arch, n, "sm_%d%d", dev.cc_major, dev.cc_minor);
  rt_cuda_device_close(&dev);
  return 0;
}

/* Build or load `entry`: with a pack, the plan for the GPU's architecture
 * (cuda), --arch's (emu), or the pack's first for the entry.  Returns 0 or 1
 * (after saying why). */
static int runner_open(const Opts *o, const char *entry, Runner *r) {
  IrErr err;
  memset(r, 0, sizeof *r);
  r->backend = default_backend(o);
  if (!strcmp(r->backend, "cuda") && !rt_cuda_available(&err)) return fail("%s", err.msg);
  if (!strcmp(r->backend, "ref") && o->precision && strcmp(o->precision, "f32"))
    return fail("--precision %s needs --backend emu or cuda (ref computes in f32)", o->precision);
  if (o->arch) {
    CgArch ca;
    if (strcmp(r->backend, "emu"))
      return fail("--arch picks the architecture whose plan --backend emu runs; --backend %s %s", r->backend,
                  strcmp(r->backend, "cuda") ? "runs the graph itself" : "uses the GPU's own architecture");
    if (cg_arch_parse(o->arch, &ca, &err)) return fail("--arch: %s", err.msg);
  }
  /* the architecture whose plan runs: the GPU's, --arch's on emu, else the default row */
  const char *arch = o->arch;
  if (!strcmp(r->backend, "cuda")) {
    if (device_arch(r->arch, sizeof r->arch)) return 1;
    arch = r->arch;
  }
  if (o->plan) {
    if (o->n_sets || o->passes || o->precision)
      return fail("--set, --passes and --precision do not apply to a pack: they were fixed when it was compiled");
    if (!strcmp(r->backend, "ref"))
      return fail("--backend ref runs a MODEL, not a pack; use --backend emu or cuda with --plan");
    if (!(r->pack = cg_pack_open(o->plan, &err))) return fail("%s", err.msg);
    if (!(r->pp = cg_pack_find_plan(r->pack, entry))) {
      char list[256] = "";
      size_t used = 0;
      for (int i = 0; i < r->pack->n_plans && used < sizeof list; i++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", r->pack->plans[i].plan->entry);
      return fail("%s has no plan for '%s' (it has %s; compile with --entry %s or --entry all)", o->plan, entry, list,
                  entry);
    }
    if (arch && !(r->pp = cg_pack_find_plan_arch(r->pack, entry, arch, &err))) return fail("%s", err.msg);
    r->use = r->pp->plan;
    r->n_in = r->use->n_inputs;
    r->in_names = xcalloc((size_t)r->n_in + 1, sizeof *r->in_names);
    r->in_dtypes = xcalloc((size_t)r->n_in + 1, sizeof *r->in_dtypes);
    for (int i = 0; i < r->n_in; i++) r->in_names[i] = r->use->inputs[i].name, r->in_dtypes[i] = r->use->inputs[i].dtype;
    return 0;
  }
  if (build(o, entry, &r->m)) return 1;
  r->built = 1;
  IrNode **inputs;
  r->n_in = ir_graph_inputs(r->m.graph, &inputs);
  r->in_names = xcalloc((size_t)r->n_in + 1, sizeof *r->in_names);
  r->in_dtypes = xcalloc((size_t)r->n_in + 1, sizeof *r->in_dtypes);
  for (int i = 0; i < r->n_in; i++) r->in_names[i] = inputs[i]->name, r->in_dtypes[i] = inputs[i]->dtype;
  return 0;
}

/* A model parameter: from the pack, else from the elaborated model. */
static int64_t runner_param(const Runner *r, const char *name) {
  return r->pack ? cg_pack_param_int(r->pack, name, 0) : fe_param_int(&r->m, name, 0);
}

/* Bind the weights and prepare the backend at `batch`.  Returns 0 or 1. */
static int runner_prepare(const Opts *o, Runner *r, int64_t batch) {
  IrErr err;
  RtModel md = {.batch = batch};
  if (r->pack) {
    const void *blob;
    if (r->use->batch != batch)
      return fail("%s was compiled for batch %lld, this run needs batch %lld (compile with --batch %lld)", o->plan,
                  (long long)r->use->batch, (long long)batch, (long long)batch);
    if (rt_pack_weights(r->pack, r->pp, o->weights, &blob, &r->blob, &err)) return fail("%s", err.msg);
    md.plan = r->use;
    md.blob = blob;
    md.cubins = r->pp->cubins;
    md.n_cubins = r->pp->n_cubins;
  } else {
    if (!o->weights) return fail("--weights is required with a MODEL");
    if (weights_open(r->m.graph, o->weights, &r->w, &err)) return fail("%s", err.msg);
    md.graph = r->m.graph;
    md.weights = &r->w;
    if (strcmp(r->backend, "ref")) {
      CgOptions co = {.batch = batch, .model = r->m.config ? r->m.config : r->m.model,
                      .arch = r->arch[0] ? r->arch : o->arch};
      parse_precision(o, &co.precision);
      if (cg_plan_build(r->m.graph, &co, &r->plan, &err)) return fail("%s", err.msg);
      r->use = r->plan;
      r->blob = xmalloc((size_t)r->plan->weights_bytes + 1);
      if (cg_plan_fill_weights(r->plan, weights_values(&r->w), r->blob, &err)) return fail("%s", err.msg);
      md.plan = r->plan;
      md.blob = r->blob;
    }
    if (!strcmp(r->backend, "cuda")) {
      /* compile for the GPU that is here (runner_open asked for its architecture) */
      Compiler c;
      memcpy(r->cubin.arch, r->arch, sizeof r->cubin.arch);
      if (compiler_open(&c, 1)) return 1;
      int bad = compile_plan(&c, r->plan, r->cubin.arch, &r->cubin_data, &r->cubin.size, &r->cubin_log);
      compiler_close(&c);
      if (bad) return 1;
      r->cubin.image = r->cubin_data;
      r->cubin.ptxas_log = r->cubin_log ? r->cubin_log : "";
      md.cubins = &r->cubin;
      md.n_cubins = 1;
    }
  }
  if (!(r->be = rt_backend_new(r->backend, &err)) || r->be->prepare(r->be, &md, &err)) return fail("%s", err.msg);
  return 0;
}

static void runner_free(Runner *r) {
  rt_backend_free(r->be);
  free(r->blob);
  free(r->cubin_data);
  free(r->cubin_log);
  cg_plan_free(r->plan);
  weights_free(&r->w);
  cg_pack_close(r->pack);
  free(r->in_names);
  free(r->in_dtypes);
  if (r->built) fe_model_free(&r->m);
  memset(r, 0, sizeof *r);
}

/* ---- ditc run ----------------------------------------------------------------- */

static int cmd_run(const Opts *o) {
  if (!o->input || !o->output) return die_usage("run needs --input and --output (and --weights with a MODEL)");
  if (!o->plan && !o->weights) return die_usage("run needs --weights with a MODEL");
  Runner rn;
  IrErr err;
  int rc = 1;
  StFile *in = NULL;
  int n_out = 0;
  RtTensor *vals = NULL, *outs = NULL;
  if (runner_open(o, o->has_cfg ? "forward_with_cfg" : "forward", &rn)) goto done;
  n_out = rn.use && !rn.built ? rn.use->n_outputs : rn.m.graph->n_outputs;
  vals = xcalloc((size_t)rn.n_in + 1, sizeof *vals);
  outs = xcalloc((size_t)n_out + 1, sizeof *outs);
  if (!(in = st_open(o->input, &err))) {
    fail("%s", err.msg);
    goto done;
  }
  for (int i = 0; i < rn.n_in; i++) {
    const char *name = rn.in_names[i];
    if (!strcmp(name, "cfg_scale")) {
      vals[i] = rt_tensor_new(IR_F32, 0, NULL);
      *(float *)vals[i].data = (float)o->cfg_scale;
      continue;
    }
    char full[256];
    snprintf(full, sizeof full, "%s%s", o->prefix ? o->prefix : "", name);
    const StTensor *t = st_find(in, full);
    if (!t) {
      fail("%s: no tensor '%s' (the model's input '%s')", o->input, full, name);
      goto done;
    }
    if (st_load(t, rn.in_dtypes[i] == IR_I32 ? IR_I32 : IR_F32, &vals[i], &err)) {
      fail("%s", err.msg);
      goto done;
    }
  }
  int64_t batch = rn.built ? ref_batch_of(rn.m.graph, vals, &err) : rn.use->batch;
  if (batch < 0) {
    fail("%s", err.msg);
    goto done;
  }
  if (runner_prepare(o, &rn, batch)) goto done;
  if (rn.be->run(rn.be, vals, outs, &err)) {
    fail("%s", err.msg);
    goto done;
  }
  StWriter *wr = st_writer_new();
  for (int i = 0; i < n_out; i++)
    st_writer_add_tensor(wr, rn.built ? rn.m.graph->output_names[i] : rn.use->outputs[i].name, &outs[i]);
  st_writer_meta(wr, "producer", "ditc " DITC_VERSION);
  st_writer_meta(wr, "backend", rn.backend);
  if (st_writer_save(wr, o->output, &err))
    fail("%s", err.msg);
  else
    rc = 0;
  st_writer_free(wr);
done:
  for (int i = 0; vals && i < rn.n_in; i++) rt_tensor_free(&vals[i]);
  for (int i = 0; outs && i < n_out; i++) rt_tensor_free(&outs[i]);
  free(vals);
  free(outs);
  st_close(in);
  runner_free(&rn);
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
} ModelCtx;

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
  RtTensor res = {0};
  if (c->be->run(c->be, c->in, &res, err)) return -1;
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
      return fail("--labels: label %ld is outside 0..%d (%d is the null class)", a < 0 ? a : b, classes, classes);
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
  return fail("--labels takes a list like 0,1,7 or 0-9, got '%s'", s);
}

/* FILE:TENSOR: open FILE and find TENSOR.  Returns the open file (close it
 * with st_close) and the tensor in *t, or NULL after saying why. */
static StFile *open_tensor_spec(const char *spec, const StTensor **t) {
  const char *colon = strrchr(spec, ':');
  if (!colon || colon == spec || !colon[1]) {
    fail("'%s': expected FILE:TENSOR", spec);
    return NULL;
  }
  char *path = strndup(spec, (size_t)(colon - spec));
  IrErr err;
  StFile *f = st_open(path, &err);
  free(path);
  if (!f) {
    fail("%s", err.msg);
    return NULL;
  }
  if (!(*t = st_find(f, colon + 1))) {
    fail("'%s': no tensor '%s'", spec, colon + 1);
    st_close(f);
    return NULL;
  }
  return f;
}

/* --labels-from FILE:TENSOR: a 1-D integer tensor of labels. */
static int load_labels(const char *spec, int repeat, int classes, int32_t **out, int64_t *n_out, int *distinct) {
  const StTensor *t;
  StFile *f = open_tensor_spec(spec, &t);
  IrErr err;
  if (!f) return 1;
  int rc = 1;
  if (t->rank != 1 || t->shape[0] < 1) {
    fail("'%s': expected a non-empty 1-D tensor of labels", spec);
    goto out;
  }
  int64_t n = t->shape[0];
  int32_t *v = xmalloc((size_t)(n * repeat) * sizeof *v);
  if (st_to_i32(t, v, &err)) {
    free(v);
    fail("%s", err.msg);
    goto out;
  }
  for (int64_t i = 0; i < n; i++)
    if (v[i] < 0 || v[i] > classes) {
      fail("'%s': label %d is outside 0..%d (%d is the null class)", spec, v[i], classes, classes);
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
  StFile *f = open_tensor_spec(spec, &t);
  IrErr err;
  if (!f) return 1;
  int rc = 1;
  int64_t per = 1;
  for (int i = lead + 1; i < t->rank; i++) per *= t->shape[i];
  if (t->rank != lead + 4 || per != img || t->shape[lead] < need_rows) {
    fail("'%s' has shape %s-like rank %d; expected %s[%lld+, C, H, W] matching the model (%lld values per sample)",
         spec, st_dtype_name(t->dtype), t->rank, lead ? "[steps, " : "", (long long)need_rows, (long long)img);
    goto out;
  }
  int64_t numel = 1;
  for (int i = 0; i < t->rank; i++) numel *= t->shape[i];
  *data = xmalloc((size_t)numel * sizeof **data);
  if (st_to_f32(t, *data, &err)) {
    free(*data);
    *data = NULL;
    fail("%s", err.msg);
    goto out;
  }
  *rows = t->shape[lead];
  *steps = lead ? t->shape[0] : 1;
  rc = 0;
out:
  st_close(f);
  return rc;
}

static int cmd_sample(const Opts *o) {
  if (!(o->weights || o->plan) || !o->output || !o->sampler || o->steps < 0 || !o->has_cfg ||
      !(o->labels || o->labels_from))
    return die_usage("sample needs --weights (or --plan), --sampler, --steps, --cfg-scale, --labels and --output");
  if (o->labels && o->labels_from) return die_usage("give --labels or --labels-from, not both");
  const char *ext = strrchr(o->output, '.');
  int png = ext && !strcmp(ext, ".png");
  int cfg = o->cfg_scale != 1.0;
  Runner rn;
  if (runner_open(o, cfg ? "forward_with_cfg" : "forward", &rn)) {
    runner_free(&rn);
    return 1;
  }
  if (rn.pack && o->cfg_all_channels && runner_param(&rn, "cfg_channels") != 0) {
    runner_free(&rn);
    return fail("--cfg-all-channels is fixed when a pack is compiled: compile it with --set cfg_channels=0");
  }
  int C = (int)runner_param(&rn, "in_channels"), S = (int)runner_param(&rn, "input_size");
  int classes = (int)runner_param(&rn, "num_classes"), learn_sigma = (int)runner_param(&rn, "learn_sigma");
  int rc = 1;
  IrErr err;
  Diffusion d = {0};
  int32_t *labels = NULL;
  float *x = NULL, *init = NULL;
  NoiseCtx nc = {0};
  ModelCtx mc = {0};
  int64_t n = 0, img = (int64_t)C * S * S;
  int distinct = 0;
  if (o->labels_from ? load_labels(o->labels_from, o->repeat, classes, &labels, &n, &distinct)
                     : parse_labels(o->labels, o->repeat, classes, &labels, &n, &distinct))
    goto done;
  if (diffusion_init(&d, o->diffusion_steps, "linear", o->steps, &err)) {
    fail("%s", err.msg);
    goto done;
  }
  nc.img = img;
  nc.rows = n;
  rng_init(&nc.rng, o->seed);
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

  int n_in = rn.n_in;
  mc.cfg = cfg;
  mc.cfg_scale = (float)o->cfg_scale;
  mc.labels = labels;
  mc.null_label = classes;
  mc.n = n;
  mc.img = img;
  mc.out_img = (learn_sigma ? 2 : 1) * img;
  mc.slot_x = mc.slot_t = mc.slot_y = mc.slot_s = -1;
  for (int i = 0; i < n_in && i < 4; i++) {
    const char *nm = rn.in_names[i];
    int64_t rows = cfg ? 2 * n : n;
    int64_t shp[4] = {rows, C, S, S};
    if (!strcmp(nm, "x")) mc.slot_x = i, mc.in[i] = rt_tensor_new(IR_F32, 4, shp);
    else if (!strcmp(nm, "t")) mc.slot_t = i, mc.in[i] = rt_tensor_new(IR_F32, 1, shp);
    else if (!strcmp(nm, "y")) mc.slot_y = i, mc.in[i] = rt_tensor_new(IR_I32, 1, shp);
    else if (!strcmp(nm, "cfg_scale")) mc.slot_s = i, mc.in[i] = rt_tensor_new(IR_F32, 0, NULL);
  }
  if (n_in != (cfg ? 4 : 3) || mc.slot_x < 0 || mc.slot_t < 0 || mc.slot_y < 0 || (cfg && mc.slot_s < 0)) {
    fail("the model's %s entry must take x, t, y%s", cfg ? "forward_with_cfg" : "forward", cfg ? ", cfg_scale" : "");
    goto done;
  }
  if (runner_prepare(o, &rn, n)) goto done;
  mc.be = rn.be;
  SamplerConfig sc = {
      .kind = !strcmp(o->sampler, "ddpm") ? SAMPLER_DDPM : SAMPLER_DDIM,
      .rows = n, .channels = C, .height = S, .width = S, .learn_sigma = learn_sigma, .eta = 0.0,
      .model = model_fn, .model_ctx = &mc, .noise = noise_fn, .noise_ctx = &nc,
      .progress = isatty(2) ? progress : NULL,
  };
  /* On a backend that samples on the device (emu, cuda) the whole loop runs
   * there; else, or when it says it cannot, the host loop over run().
   * DITC_SAMPLE_ON_HOST=1 forces the host loop (to compare the two). */
  int sampled = 0;
  const char *on_host = getenv("DITC_SAMPLE_ON_HOST");
  if (rn.be->sample && !(on_host && *on_host && strcmp(on_host, "0"))) {
    RtSampleRequest rq = {
        .diffusion = &d, .kind = sc.kind, .eta = sc.eta, .learn_sigma = learn_sigma, .rows = n, .channels = C,
        .height = S, .width = S, .labels = labels, .cfg = cfg, .null_label = classes, .cfg_scale = mc.cfg_scale,
        .replay = nc.replay, .replay_rows = nc.replay_rows, .replay_steps = nc.replay_steps, .rng = &nc.rng,
        .progress = sc.progress,
    };
    int got = rn.be->sample(rn.be, &rq, x, &err);
    if (got == RT_SAMPLE_UNSUPPORTED) {
      fprintf(stderr, "%s: note: sampling on the host: %s\n", prog, err.msg);
    } else if (got) {
      fail("%s", err.msg);
      goto done;
    } else {
      sampled = 1;
    }
  }
  if (!sampled && sampler_run(&d, &sc, x, &err)) {
    fail("%s", err.msg);
    goto done;
  }
  if (png) {
    if (image_write_grid(o->output, x, n, C, S, S, o->grid_cols ? o->grid_cols : distinct, &err)) {
      fail("%s", err.msg);
      goto done;
    }
  } else {
    StWriter *wr = st_writer_new();
    int64_t shp[4] = {n, C, S, S};
    st_writer_add(wr, "samples", ST_F32, 4, shp, x);
    st_writer_add(wr, "labels", ST_I32, 1, shp, labels);
    st_writer_meta(wr, "producer", "ditc " DITC_VERSION);
    st_writer_meta(wr, "sampler", o->sampler);
    int bad = st_writer_save(wr, o->output, &err);
    st_writer_free(wr);
    if (bad) {
      fail("%s", err.msg);
      goto done;
    }
  }
  rc = 0;
done:
  for (int i = 0; i < 4; i++) rt_tensor_free(&mc.in[i]);
  free(labels);
  free(x);
  free(init);
  free((void *)nc.replay);
  diffusion_free(&d);
  runner_free(&rn);
  return rc;
}

/* ---- ditc compile / ditc cache ---------------------------------------------------- */

/* "sm_80,sm_90" -> checked names (pointers into a copy owned by *buf). */
static int parse_archs(const char *list, char **buf, const char **archs, int max) {
  int n = 0;
  *buf = xstrdup(list);
  for (char *save = NULL, *a = strtok_r(*buf, ",", &save); a; a = strtok_r(NULL, ",", &save)) {
    CgArch ca;
    IrErr err;
    if (cg_arch_parse(a, &ca, &err)) return die_usage("--arch: %s", err.msg);
    if (n == max) return die_usage("--arch: at most %d architectures", max);
    for (int i = 0; i < n; i++)
      if (!strcmp(archs[i], a)) return die_usage("--arch names %s twice", a);
    archs[n++] = a;
  }
  if (!n) return die_usage("--arch needs at least one architecture, e.g. sm_90");
  return -n;  /* negative: the count (0 and 2 are the usage-error codes) */
}

/* "blocks.<i>" or "blocks.<i>.*" -> i, else -1. */
static int block_of(const char *label) {
  if (!label || strncmp(label, "blocks.", 7)) return -1;
  const char *p = label + 7;
  if (*p < '0' || *p > '9') return -1;
  int i = 0;
  while (*p >= '0' && *p <= '9' && i < 1000000) i = i * 10 + (*p++ - '0');
  return *p == '.' || !*p ? i : -1;
}

typedef struct {
  int steps, kernel_steps, gemm_steps, per_block;
  int64_t act_moved;
  json_t *list; /* per step: what it is and the bytes it moves */
} PlanStats;

/* Counts per forward pass.  Launches per block: steps whose IR node carries a
 * "blocks.<i>" label, the most over i.  Activation bytes moved: the sum over
 * the steps of the arena bytes each reads and writes (CgStep.act_read ...,
 * every distinct element once per step). */
static PlanStats plan_stats(const CgPlan *p, IrGraph *g) {
  PlanStats s = {.steps = p->n_steps, .list = json_array()};
  int max_block = -1;
  for (int i = 0; i < p->n_steps; i++) {
    const CgStep *st = &p->steps[i];
    const IrNode *n = st->node >= 0 && st->node < g->n_nodes ? g->nodes[st->node] : NULL;
    int b = n ? block_of(n->name) : -1;
    if (b > max_block) max_block = b;
    if (st->kind == CG_STEP_GEMM)
      s.gemm_steps++;
    else
      s.kernel_steps++;
    s.act_moved += st->act_read + st->act_written;
    json_array_append_new(s.list, json_pack("{s:s, s:s, s:I, s:I, s:I}", "step",
                                            st->kind == CG_STEP_GEMM ? "gemm" : p->kernels[st->kernel].name, "node",
                                            st->what ? st->what : "", "act_read", (json_int_t)st->act_read,
                                            "act_written", (json_int_t)st->act_written, "weight_read",
                                            (json_int_t)st->weight_read));
  }
  int *count = xcalloc((size_t)max_block + 2, sizeof *count);
  for (int i = 0; i < p->n_steps; i++) {
    const CgStep *st = &p->steps[i];
    const IrNode *n = st->node >= 0 && st->node < g->n_nodes ? g->nodes[st->node] : NULL;
    int b = n ? block_of(n->name) : -1;
    if (b >= 0 && ++count[b] > s.per_block) s.per_block = count[b];
  }
  free(count);
  return s;
}

/* ptxas' report of one kernel as JSON / text (stats NULL: not available). */
static json_t *kernel_json(const CgKernel *k, const CgKernelStats *ks) {
  if (!ks) return json_pack("{s:s, s:n}", "name", k->name, "registers");
  return json_pack("{s:s, s:i, s:i, s:i, s:i, s:i}", "name", k->name, "registers", ks->registers, "spill_stores",
                   ks->spill_stores, "spill_loads", ks->spill_loads, "stack_frame", ks->stack_frame, "smem", ks->smem);
}

static const CgKernelStats *find_stats(const CgKernelStats *ks, int n, const char *name) {
  for (int i = 0; i < n; i++)
    if (ks[i].name && !strcmp(ks[i].name, name)) return &ks[i];
  return NULL;
}

/* Does q keep its weights where p does, so that one blob serves both?  A
 * tuning row changes kernels and launches, not where the weights live; this
 * checks it rather than assumes it. */
static int same_weights(const CgPlan *p, const CgPlan *q) {
  if (p->n_weights != q->n_weights || p->weights_bytes != q->weights_bytes) return 0;
  for (int i = 0; i < p->n_weights; i++) {
    const CgWeight *a = &p->weights[i], *b = &q->weights[i];
    if (a->offset != b->offset || a->dtype != b->dtype || a->rank != b->rank || a->param_id != b->param_id ||
        a->n_in != b->n_in || memcmp(a->shape, b->shape, (size_t)a->rank * sizeof *a->shape))
      return 0;
  }
  return 1;
}

/* Plan p's weights blob from --weights, kept in *blobs until the pack is written. */
static const void *fill_blob(const Opts *o, FeModel *m, const CgPlan *p, void ***blobs, int *n_blobs) {
  Weights wt;
  IrErr err;
  if (weights_open(m->graph, o->weights, &wt, &err)) {
    fail("%s", err.msg);
    return NULL;
  }
  void *b = xmalloc((size_t)p->weights_bytes + 1);
  *blobs = xrealloc(*blobs, (size_t)(*n_blobs + 1) * sizeof **blobs);
  (*blobs)[(*n_blobs)++] = b;
  int bad = cg_plan_fill_weights(p, weights_values(&wt), b, &err);
  weights_free(&wt);
  if (bad) fail("%s", err.msg);
  return bad ? NULL : b;
}

static void pack_meta(CgPackWriter *w, const FeModel *m) {
  cg_pack_writer_meta(w, "model", m->model);
  cg_pack_writer_meta(w, "config", m->config ? m->config : "");
  for (int i = 0; i < m->n_params; i++) {
    const FeParam *fp = &m->params[i];
    char v[64];
    switch (fp->kind) {
    case FE_VAL_INT: snprintf(v, sizeof v, "%lld", (long long)fp->i); break;
    case FE_VAL_FLOAT: snprintf(v, sizeof v, "%.17g", fp->f); break;
    case FE_VAL_BOOL: snprintf(v, sizeof v, "%s", fp->i ? "true" : "false"); break;
    case FE_VAL_STR: break;
    }
    cg_pack_writer_param(w, fp->name, fp->kind == FE_VAL_STR ? fp->s : v);
  }
}

/* Plan p's statistics as a new entry of rep's "plans" (its "archs" filled later). */
static json_t *plan_report(json_t *rep, const CgPlan *p, IrGraph *g, const char *entry) {
  PlanStats st = plan_stats(p, g);
  json_t *pj = json_pack("{s:s, s:s, s:i, s:i, s:i, s:i, s:i, s:I, s:I, s:I, s:I, s:I, s:o}", "entry", entry,
                         "tuning", p->tuning, "kernels_per_forward", st.steps, "kernel_launches", st.kernel_steps,
                         "gemm_steps", st.gemm_steps, "kernels", p->n_kernels, "kernels_per_block", st.per_block,
                         "activation_bytes_moved", (json_int_t)st.act_moved, "peak_activation_bytes",
                         (json_int_t)p->arena_bytes, "unplanned_activation_bytes",
                         (json_int_t)p->arena_unplanned_bytes, "arena_bytes", (json_int_t)p->arena_bytes,
                         "weights_bytes", (json_int_t)p->weights_bytes, "steps", st.list);
  json_object_set_new(pj, "archs", json_object());
  json_array_append_new(json_object_get(rep, "plans"), pj);
  return pj;
}

/* Arch's CUBIN of plan p in the report (ptxas' numbers when log is there). */
static void arch_report(json_t *pj, const CgPlan *p, const char *arch, size_t size, const char *log) {
  CgKernelStats *ks = NULL;
  int nk = log ? cg_ptxas_parse(log, &ks) : 0;
  json_t *kj = json_array();
  int max_regs = 0, spills = 0;
  for (int k = 0; k < p->n_kernels; k++) {
    const CgKernelStats *s = log ? find_stats(ks, nk, p->kernels[k].name) : NULL;
    if (s && s->registers > max_regs) max_regs = s->registers;
    if (s && (s->spill_stores > 0 || s->spill_loads > 0)) spills++;
    json_array_append_new(kj, kernel_json(&p->kernels[k], s));
  }
  json_object_set_new(json_object_get(pj, "archs"), arch,
                      json_pack("{s:s, s:b, s:I, s:i, s:i, s:o}", "tuning", cg_tuning_name(arch), "ptxas_report",
                                log != NULL, "cubin_bytes", (json_int_t)size, "max_registers", max_regs,
                                "kernels_spilling", spills, "kernels", kj));
  cg_kernel_stats_free(ks, nk);
}

/* Build every requested entry, one plan per distinct tuning row among the
 * architectures (those whose rows give the same geometry share it), and
 * compile each plan for the architectures it serves; with w (compile) also
 * add plans, weights and CUBINs to the pack and the report to rep. */
static int compile_entries(const Opts *o, Compiler *c, const char **archs, int n_archs, CgPackWriter *w,
                           json_t *rep) {
  const char *all[] = {"forward", "forward_with_cfg"};
  const char *one[] = {o->entry};
  int all_entries = !o->entry || !strcmp(o->entry, "all");
  const char **entries = all_entries ? all : one;
  int n_entries = all_entries ? 2 : 1;
  void **blobs = NULL;
  int n_blobs = 0, rc = 1;
  DITC_ASSERT(n_archs >= 1 && n_archs <= 32);
  /* --source: written next to its place, renamed there once complete */
  FILE *src = NULL;
  char *src_tmp = NULL;
  if (o->source && w) {
    size_t len = strlen(o->source) + 16;
    src_tmp = xmalloc(len);
    snprintf(src_tmp, len, "%s.tmp.XXXXXX", o->source);
    int fd = mkstemp(src_tmp);
    if (fd < 0 || !(src = fdopen(fd, "w"))) {
      fail("%s: cannot create a temporary file next to it: %s", o->source, strerror(errno));
      if (fd >= 0) close(fd);
      free(src_tmp);
      return 1;
    }
  }
  for (int e = 0; e < n_entries; e++) {
    FeModel m;
    IrErr err;
    if (build(o, entries[e], &m)) goto out;
    if (w && e == 0) pack_meta(w, &m);
    CgPlan *plans[32] = {0};
    const void *blob[32] = {0};
    json_t *pj[32] = {0};
    int which[32], first[32], idx[32] = {0}, n_plans = 0, bad = 0;
    for (int a = 0; a < n_archs && !bad; a++) {
      which[a] = -1;
      for (int k = 0; k < n_plans && which[a] < 0; k++)
        if (cg_tuning_same(archs[first[k]], archs[a])) which[a] = k;
      if (which[a] >= 0) continue;
      int k = which[a] = n_plans++;
      first[k] = a;
      CgOptions co = {.batch = o->batch ? o->batch : 1, .model = m.config ? m.config : m.model, .arch = archs[a]};
      parse_precision(o, &co.precision);
      if (cg_plan_build(m.graph, &co, &plans[k], &err)) {
        fail("%s: %s", entries[e], err.msg);
        bad = 1;
        break;
      }
      if (w && o->weights) {
        blob[k] = k && same_weights(plans[0], plans[k]) ? blob[0] : fill_blob(o, &m, plans[k], &blobs, &n_blobs);
        if (!blob[k]) {
          bad = 1;
          break;
        }
      }
      if (w) idx[k] = cg_pack_writer_add_plan(w, plans[k], m.graph, blob[k]);
      if (rep) pj[k] = plan_report(rep, plans[k], m.graph, entries[e]);
      if (src) fprintf(src, "/* ==== plan %s, tuning row %s ==== */\n%s\n", entries[e], plans[k]->tuning, plans[k]->source);
    }
    for (int a = 0; a < n_archs && !bad; a++) {
      const CgPlan *p = plans[which[a]];
      unsigned char *cubin;
      size_t size;
      char *log;
      if (compile_plan(c, p, archs[a], &cubin, &size, &log)) {
        bad = 1;
        break;
      }
      if (w) cg_pack_writer_add_cubin(w, idx[which[a]], archs[a], cubin, size, log);
      if (rep) arch_report(pj[which[a]], p, archs[a], size, log);
      free(cubin);
      free(log);
    }
    for (int k = 0; k < n_plans; k++) cg_plan_free(plans[k]);
    fe_model_free(&m);
    if (bad) goto out;
  }
  if (w && o->output) {
    IrErr err;
    if (cg_pack_writer_save(w, o->output, &err)) {
      fail("%s", err.msg);
      goto out;
    }
  }
  if (src) { /* complete: move it into place */
    int bad = fflush(src) != 0 || ferror(src);
    bad |= fclose(src) != 0;
    src = NULL;
    if (bad || rename(src_tmp, o->source)) {
      fail("%s: cannot write the generated source: %s", o->source, strerror(errno));
      goto out;
    }
  }
  rc = 0;
out:
  if (src) fclose(src);
  if (src_tmp && rc) unlink(src_tmp);
  free(src_tmp);
  for (int i = 0; i < n_blobs; i++) free(blobs[i]);
  free(blobs);
  return rc;
}

static void print_report(const json_t *rep, FILE *f) {
  size_t i;
  json_t *pj;
  json_array_foreach(json_object_get(rep, "plans"), i, pj) {
    const char *tuning = json_string_value(json_object_get(pj, "tuning"));
    fprintf(f, "plan %s (%s, batch %lld, tuning row %s)\n", json_string_value(json_object_get(pj, "entry")),
            json_string_value(json_object_get(rep, "precision")),
            (long long)json_integer_value(json_object_get(rep, "batch")), tuning);
    fprintf(f, "  launches per forward   %lld (%lld kernels, %lld GEMMs; %lld distinct kernels)\n",
            (long long)json_integer_value(json_object_get(pj, "kernels_per_forward")),
            (long long)json_integer_value(json_object_get(pj, "kernel_launches")),
            (long long)json_integer_value(json_object_get(pj, "gemm_steps")),
            (long long)json_integer_value(json_object_get(pj, "kernels")));
    fprintf(f, "  launches per block     %lld\n", (long long)json_integer_value(json_object_get(pj, "kernels_per_block")));
    json_int_t peak = json_integer_value(json_object_get(pj, "peak_activation_bytes"));
    json_int_t unplanned = json_integer_value(json_object_get(pj, "unplanned_activation_bytes"));
    fprintf(f, "  peak activation memory %lld bytes (%.2f MiB; %.2f MiB without buffer reuse)\n", (long long)peak,
            (double)peak / 1048576.0, (double)unplanned / 1048576.0);
    json_int_t moved = json_integer_value(json_object_get(pj, "activation_bytes_moved"));
    fprintf(f, "  activation bytes moved %lld (%.2f MiB)\n", (long long)moved, (double)moved / 1048576.0);
    fprintf(f, "  weights                %lld bytes (%.2f MiB)\n",
            (long long)json_integer_value(json_object_get(pj, "weights_bytes")),
            (double)json_integer_value(json_object_get(pj, "weights_bytes")) / 1048576.0);
    fprintf(f, "  %5s  %-22s %12s %12s %12s  %s\n", "step", "kernel", "act read", "act written", "weights read",
            "IR node");
    size_t si;
    json_t *sj;
    json_array_foreach(json_object_get(pj, "steps"), si, sj) {
      fprintf(f, "  %5zu  %-22s %12lld %12lld %12lld  %s\n", si, json_string_value(json_object_get(sj, "step")),
              (long long)json_integer_value(json_object_get(sj, "act_read")),
              (long long)json_integer_value(json_object_get(sj, "act_written")),
              (long long)json_integer_value(json_object_get(sj, "weight_read")),
              json_string_value(json_object_get(sj, "node")));
    }
    const char *arch;
    json_t *aj;
    json_object_foreach(json_object_get(pj, "archs"), arch, aj) {
      const char *row = json_string_value(json_object_get(aj, "tuning"));
      fprintf(f, "  %s: tuning row %s%s%s, CUBIN %lld bytes%s\n", arch, row,
              strcmp(row, tuning) ? ", the same geometry as " : "", strcmp(row, tuning) ? tuning : "",
              (long long)json_integer_value(json_object_get(aj, "cubin_bytes")),
              json_is_true(json_object_get(aj, "ptxas_report")) ? "" : " (ptxas report not in the cache)");
      fprintf(f, "    %-40s %5s %13s %6s %6s\n", "kernel", "regs", "spill st/ld", "stack", "smem");
      size_t k;
      json_t *kj;
      json_array_foreach(json_object_get(aj, "kernels"), k, kj) {
        json_t *r = json_object_get(kj, "registers");
        if (json_is_null(r)) {
          fprintf(f, "    %-40s %5s\n", json_string_value(json_object_get(kj, "name")), "-");
          continue;
        }
        char sp[32];
        snprintf(sp, sizeof sp, "%lld/%lld", (long long)json_integer_value(json_object_get(kj, "spill_stores")),
                 (long long)json_integer_value(json_object_get(kj, "spill_loads")));
        fprintf(f, "    %-40s %5lld %13s %6lld %6lld\n", json_string_value(json_object_get(kj, "name")),
                (long long)json_integer_value(r), sp,
                (long long)json_integer_value(json_object_get(kj, "stack_frame")),
                (long long)json_integer_value(json_object_get(kj, "smem")));
      }
    }
  }
}

static int cmd_compile(const Opts *o) {
  if (!o->output) return die_usage("compile needs -o OUT.ditpack");
  if (!o->arch) return die_usage("compile needs --arch, e.g. --arch sm_80,sm_90");
  if (o->json && !o->report) return die_usage("--json goes with --report");
  if (o->entry && strcmp(o->entry, "all") && strcmp(o->entry, "forward") && strcmp(o->entry, "forward_with_cfg"))
    return die_usage("--entry is forward, forward_with_cfg or all, got '%s'", o->entry);
  char *archbuf;
  const char *archs[32];
  int n_archs = parse_archs(o->arch, &archbuf, archs, 32);
  if (n_archs >= 0) {
    free(archbuf);
    return n_archs ? n_archs : 2;
  }
  n_archs = -n_archs;
  Compiler c;
  if (compiler_open(&c, 1)) {
    free(archbuf);
    return 1;
  }
  FILE *info = o->json ? stderr : stdout;
  CgPackWriter *w = cg_pack_writer_new();
  cg_pack_writer_meta(w, "producer", "ditc " DITC_VERSION);
  cg_pack_writer_meta(w, "codegen_version", CG_CODEGEN_VERSION);
  cg_pack_writer_meta(w, "compiler", cg_nvrtc_version_string(c.nv));
  cg_pack_writer_meta(w, "spec", o->model);
  json_t *rep = o->report ? json_pack("{s:s, s:s, s:I, s:[]}", "model", o->model, "precision",
                                      o->precision ? o->precision : "f32", "batch",
                                      (json_int_t)(o->batch ? o->batch : 1), "plans")
                          : NULL;
  int rc = compile_entries(o, &c, archs, n_archs, w, rep);
  if (!rc) {
    fprintf(info, "nvrtc: %d compiled, %d from cache\n", c.compiled, c.cached);
    fprintf(info, "wrote %s (%s, %s, %s%s)\n", o->output, o->precision ? o->precision : "f32", o->arch,
            o->weights ? "weights " : "no weights", o->weights ? o->weights : "");
  }
  if (!rc && rep) {
    json_t *first = json_array_get(json_object_get(rep, "plans"), 0);
    const char *keys[] = {"kernels_per_forward", "kernels_per_block", "activation_bytes_moved", "peak_activation_bytes",
                          "unplanned_activation_bytes"};
    for (int i = 0; i < 5; i++) json_object_set(rep, keys[i], json_object_get(first, keys[i]));
    json_object_set_new(rep, "nvrtc", json_pack("{s:s, s:i, s:i}", "version", cg_nvrtc_version_string(c.nv),
                                               "compiled", c.compiled, "from_cache", c.cached));
    if (o->json) {
      char *text = json_dumps(rep, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
      printf("%s\n", text);
      free(text);
    } else {
      print_report(rep, stdout);
    }
  }
  json_decref(rep);
  cg_pack_writer_free(w);
  compiler_close(&c);
  free(archbuf);
  return rc;
}

static int cmd_cache(const Opts *o) {
  Compiler c;
  IrErr err;
  if (!strcmp(o->sub, "build")) {
    if (!o->arch) return die_usage("cache build needs --arch, e.g. --arch sm_90");
    char *archbuf;
    const char *archs[32];
    int n_archs = parse_archs(o->arch, &archbuf, archs, 32);
    if (n_archs >= 0) {
      free(archbuf);
      return n_archs ? n_archs : 2;
    }
    if (compiler_open(&c, 1)) {
      free(archbuf);
      return 1;
    }
    int rc = compile_entries(o, &c, archs, -n_archs, NULL, NULL);
    if (!rc) printf("nvrtc: %d compiled, %d from cache (%s)\n", c.compiled, c.cached, cg_cache_dir(c.cache));
    compiler_close(&c);
    free(archbuf);
    return rc;
  }
  if (o->arch) {
    CgArch ca;
    if (cg_arch_parse(o->arch, &ca, &err)) return die_usage("--arch: %s", err.msg);
  }
  if (compiler_open(&c, 0)) return 1;
  int rc = 0;
  if (!strcmp(o->sub, "ls")) {
    CgCacheEntry *e;
    int n;
    if (cg_cache_list(c.cache, o->arch, &e, &n, &err)) {
      rc = fail("%s", err.msg);
    } else {
      int64_t total = 0;
      for (int i = 0; i < n; i++) {
        char when[32];
        time_t t = (time_t)e[i].mtime;
        strftime(when, sizeof when, "%Y-%m-%d %H:%M", localtime(&t));
        printf("%-8s %s %10lld  %s\n", e[i].arch, e[i].key, (long long)e[i].size, when);
        total += e[i].size;
      }
      printf("%d entr%s, %lld bytes in %s\n", n, n == 1 ? "y" : "ies", (long long)total, cg_cache_dir(c.cache));
      free(e);
    }
  } else if (!strcmp(o->sub, "verify")) {
    int ok = 0, bad = 0;
    if (cg_cache_verify(c.cache, o->arch, 1, &ok, &bad, &err))
      rc = fail("%s", err.msg);
    else
      printf("%d entr%s ok, %d bad (removed)\n", ok, ok == 1 ? "y" : "ies", bad);
    if (!rc && bad) rc = 1;
  } else {
    int n = 0;
    if (cg_cache_clear(c.cache, o->arch, &n, &err))
      rc = fail("%s", err.msg);
    else
      printf("removed %d entr%s from %s\n", n, n == 1 ? "y" : "ies", cg_cache_dir(c.cache));
  }
  compiler_close(&c);
  return rc;
}

/* ---- ditc bench ------------------------------------------------------------------ */

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
static int cmd_bench(const Opts *o) {
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
  if (runner_open(&oo, entry, &rn) || runner_prepare(&oo, &rn, batch)) goto done;
  n_out = rn.use && !rn.built ? rn.use->n_outputs : rn.m.graph->n_outputs;
  vals = xcalloc((size_t)rn.n_in + 1, sizeof *vals);
  outs = xcalloc((size_t)n_out + 1, sizeof *outs);
  int64_t classes = runner_param(&rn, "num_classes"), rows = batch;
  RtRng rng;
  rng_init(&rng, 0);
  for (int i = 0; i < rn.n_in; i++) {
    int64_t shape[4] = {0}, rank = 0;
    const char *nm = rn.in_names[i];
    int cfg = !strcmp(entry, "forward_with_cfg");
    rows = cfg ? 2 * batch : batch;
    if (!strcmp(nm, "x")) {
      int64_t c = runner_param(&rn, "in_channels"), s = runner_param(&rn, "input_size");
      shape[0] = rows, shape[1] = c, shape[2] = s, shape[3] = s, rank = 4;
    } else if (!strcmp(nm, "t") || !strcmp(nm, "y")) {
      shape[0] = rows, rank = 1;
    } else if (strcmp(nm, "cfg_scale")) {
      fail("bench does not know how to fill the input '%s'", nm);
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
      fail("%s", err.msg);
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
  runner_free(&rn);
  return rc;
}

/* ---- ditc check / ir / stats / models / compare ---------------------------------- */

static int cmd_check(const Opts *o) {
  const char *entries[] = {"forward", "forward_with_cfg"};
  for (int e = 0; e < 2; e++) {
    FeModel m;
    if (build(o, entries[e], &m)) return 1;
    IrErr err;
    if (ir_verify(m.graph, &err)) {
      fe_model_free(&m);
      return fail("%s: the IR does not verify: %s", entries[e], err.msg);
    }
    IrCost c;
    ir_cost(m.graph, 1, IR_F32, &c);
    printf("%s: %s: %lld nodes, %lld parameters: ok\n", o->model, entries[e], (long long)c.nodes,
           (long long)c.params);
    if (o->weights && e == 0) {
      Weights w = {0};
      if (weights_open(m.graph, o->weights, &w, &err)) {
        fe_model_free(&m);
        return fail("%s", err.msg);
      }
      printf("%s: weights %s bind: ok\n", o->model, o->weights);
      weights_free(&w);
    }
    fe_model_free(&m);
  }
  return 0;
}

static int cmd_ir(const Opts *o) {
  FeModel m;
  if (build(o, o->entry ? o->entry : "forward", &m)) return 1;
  if (!o->dump_after) ir_dump(m.graph, stdout);
  fe_model_free(&m);
  return 0;
}

static int cmd_stats(const Opts *o) {
  FeModel m;
  if (build(o, o->entry ? o->entry : "forward", &m)) return 1;
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
  StFile *f = open_tensor_spec(spec, &t);
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
    return fail("%s", err.msg);
  }
  return 0;
}

static int cmd_compare(const Opts *o) {
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
    rc = fail("shapes differ: %s is %s, %s is %s", o->model, sa, o->extra, sb);
  } else {
    double num = 0, den = 0, maxabs = 0;
    int nonfinite = 0;
    for (int64_t i = 0; i < na; i++) {
      double d = (double)a[i] - b[i];
      if (!isfinite(a[i]) || !isfinite(b[i])) nonfinite++;
      num += d * d;
      den += (double)b[i] * b[i];
      if (fabs(d) > maxabs) maxabs = fabs(d);
    }
    double rel = den > 0 ? sqrt(num / den) : sqrt(num);
    printf("%s vs %s: shape %s, relative L2 error %.3e, max abs error %.3e\n", o->model, o->extra, sa, rel, maxabs);
    if (nonfinite) rc = fail("%d non-finite values", nonfinite);
    else if (o->tol >= 0 && !(rel <= o->tol)) rc = fail("relative L2 error %.3e is above the tolerance %.1e", rel, o->tol);
  }
  free(a);
  free(b);
  return rc;
}

/* OpenMP worker threads that busy-wait between the executor's many short
 * parallel loops collapse when the cores are shared (measured: DiT-S/2 2.3 s
 * instead of 0.17 s under a load of 5).  libgomp reads OMP_WAIT_POLICY before
 * main runs, so when the user has not chosen one, choose passive and start
 * again once. */
static void prefer_passive_openmp(char **argv) {
  if (getenv("OMP_WAIT_POLICY")) return;
  setenv("OMP_WAIT_POLICY", "passive", 1);
  execv("/proc/self/exe", argv); /* only returns on failure: carry on as we are */
}

int main(int argc, char **argv) {
  prefer_passive_openmp(argv);
  if (argc < 2 || !strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (!strcmp(argv[1], "--version")) {
    printf("ditc %s\n", DITC_VERSION);
    return 0;
  }
  Opts o = {0};
  o.cmd = argv[1];
  int rc = parse_args(argc, argv, &o);
  if (!rc) {
    if (!strcmp(o.cmd, "run")) rc = cmd_run(&o);
    else if (!strcmp(o.cmd, "sample")) rc = cmd_sample(&o);
    else if (!strcmp(o.cmd, "check")) rc = cmd_check(&o);
    else if (!strcmp(o.cmd, "ir")) rc = cmd_ir(&o);
    else if (!strcmp(o.cmd, "stats")) rc = cmd_stats(&o);
    else if (!strcmp(o.cmd, "bench")) rc = cmd_bench(&o);
    else if (!strcmp(o.cmd, "compare")) rc = cmd_compare(&o);
    else if (!strcmp(o.cmd, "compile")) rc = cmd_compile(&o);
    else if (!strcmp(o.cmd, "cache")) rc = cmd_cache(&o);
    else if (!strcmp(o.cmd, "models")) rc = fe_list_configs(NULL, stdout, stderr) ? 1 : 0;
  }
  for (int i = 0; i < o.n_sets; i++) free((char *)o.sets[i].name);
  return rc;
}
