/*
 * passes.h - the pass manager and the passes it knows by name.
 *
 * A pass is `int pass_<name>(IrGraph *, const PassOptions *, IrErr *)`, one
 * file each in passes/, with its prototype below.  The registry
 * (passes/pipeline.c) is one table of {name, function, doc, options}.  A
 * pipeline is written "a,b:key=value:key=value,c" (or "default", "none"):
 * it is parsed and checked against the registry, every option's value
 * included, before any pass runs.  Between passes the manager re-sorts the
 * graph, and in debug and test builds (or with verify set) runs ir_verify().
 */
#ifndef DITC_PASSES_H
#define DITC_PASSES_H

#include "ir/ir.h"

/* ---- options a pass declares ---------------------------------------------- */

typedef enum {
  PASS_OPT_INT,    /* a whole number, within [lo, hi] when lo < hi */
  PASS_OPT_FLOAT,  /* a finite number, within [lo, hi] when lo < hi */
  PASS_OPT_BOOL,   /* true|false (also 1|0, on|off, yes|no); `name` alone means true */
  PASS_OPT_CHOICE, /* one of `choices`, "a|b|c" */
  PASS_OPT_TEXT,   /* a word of [0-9a-z./_-] (may be empty): a decision a pass spelled out */
} PassOptType;

typedef struct {
  const char *name;    /* [a-z0-9_]+; NULL ends a pass's list */
  PassOptType type;
  const char *def;     /* the default, written as on the command line */
  const char *doc;     /* one line for `ditc ir --passes-help` */
  double lo, hi;       /* INT, FLOAT: the accepted range (lo == hi: any value) */
  const char *choices; /* CHOICE: "a|b|c" */
} PassOptSpec;

#define PASS_MAX_OPTS 8
#define PASS_MAX_CHOICE 32  /* longest choice name + 1 */
/* A registry row's options when the pass takes none. */
#define PASS_NO_OPTIONS {{0}}

/* One option's parsed value. */
typedef struct {
  int64_t i;                 /* INT; BOOL (0 or 1); CHOICE (its index in choices) */
  double f;                  /* FLOAT */
  char s[PASS_MAX_CHOICE];   /* CHOICE: its name */
  const char *t;             /* TEXT: its value (interned: lives as long as the process) */
} PassOptValue;

typedef struct PassInfo PassInfo;
typedef struct PassPipeline PassPipeline;

/* What the manager gives every pass.  The caller of pass_run_pipeline fills
 * the first three; the manager adds, for each pass it calls, the pass's
 * registry row and its option values (read them with pass_opt_*). */
typedef struct {
  int verify;              /* ir_verify() after every pass */
  const char *dump_after;  /* pass name, "all", or NULL */
  FILE *dump;              /* where dumps go (stdout if NULL) */
  const PassInfo *pass;    /* set by the manager: the pass being run */
  const PassOptValue *values; /* set by the manager: one per option of pass->opts, defaults filled in */
  /* Data passes that change the model's function decide with (NULL: none;
   * such a pass then decides by position, or refuses, as its doc says):
   * weight(weight_ctx, param) gives a PARAM node's f32 values or NULL, and
   * calib the calibration statistics (passes/calib.h). */
  const float *(*weight)(void *weight_ctx, const IrNode *param);
  void *weight_ctx;
  const struct PassCalib *calib;
  /* When set, the manager copies the pipeline it runs here first, and a pass
   * spells out what it decided from data in its TEXT options
   * (pass_opt_decide), so that running `resolved` again without the data
   * builds the same graph (packs record it).  step: set by the manager. */
  PassPipeline *resolved;
  int step;
} PassOptions;

typedef int (*PassFn)(IrGraph *g, const PassOptions *o, IrErr *err);

/* A registry row. */
struct PassInfo {
  const char *name;
  PassFn fn;
  const char *doc;
  PassOptSpec opts[PASS_MAX_OPTS]; /* ends at the first without a name */
};

/* A pass's option values.  `name` must be one of the running pass's options,
 * of that type: anything else is a bug in the pass and aborts. */
int64_t pass_opt_int(const PassOptions *o, const char *name);
double pass_opt_float(const PassOptions *o, const char *name);
int pass_opt_bool(const PassOptions *o, const char *name);
const char *pass_opt_choice(const PassOptions *o, const char *name);
const char *pass_opt_text(const PassOptions *o, const char *name);
/* Record the decision `text` as the value of TEXT option `name` of the
 * running step in o->resolved (nothing when o->resolved is NULL). */
void pass_opt_decide(const PassOptions *o, const char *name, const char *text);
/* PARAM node n's f32 values from o->weight, or NULL (not a PARAM, no data). */
const float *pass_weight(const PassOptions *o, const IrNode *n);

/* ---- the registry and pipelines ------------------------------------------- */

const PassInfo *pass_table(int *n);
const PassInfo *pass_find(const char *name);
/* The pipeline `ditc` runs when none is named. */
extern const char *const PASS_DEFAULT_PIPELINE;

/* Longest pipeline (passes, after expanding "default"). */
#define PASS_MAX_PIPELINE 64

typedef struct {
  const PassInfo *pass;
  PassOptValue values[PASS_MAX_OPTS];
} PassStep;

struct PassPipeline {
  int n;
  PassStep steps[PASS_MAX_PIPELINE];
};

/* Parse "a,b:key=value:key=value,c" against the registry into *p: "default"
 * expands to PASS_DEFAULT_PIPELINE, "none" and empty items add nothing, a
 * pass may appear more than once with different options, options left out
 * get their defaults.  Errors name what is wrong: an unknown pass (listing
 * the known ones), an option the pass does not have (listing those it has),
 * a value of the wrong type or out of range (saying what is expected). */
int pass_pipeline_parse(const char *spec, PassPipeline *p, IrErr *err);
/* The same against another registry (tests, tools with passes of their own). */
int pass_pipeline_parse_table(const PassInfo *table, int n_table, const char *spec, PassPipeline *p, IrErr *err);
/* Put the passes of `spec` into p right after the first `after` (a pass
 * name; NULL: at the end).  For command-line flags that stand for a pass
 * with options at a fixed place in the pipeline (`--flag K` meaning
 * "NAME:key=K" after `after`).  Fails, changing nothing, when p does not run
 * `after` or the result would be too long. */
int pass_pipeline_insert(PassPipeline *p, const char *after, const char *spec, IrErr *err);
/* p written out so that pass_pipeline_parse reads it back as p: every pass
 * with every option spelled out ("fuse:x=1,dce"; "none" for no passes), so
 * the text does not depend on the registry's defaults.  Caller frees. */
char *pass_pipeline_text(const PassPipeline *p);
/* Does p run the pass `name`? */
int pass_pipeline_runs(const PassPipeline *p, const char *name);
/* Run p over g. */
int pass_pipeline_run(IrGraph *g, const PassPipeline *p, const PassOptions *o, IrErr *err);
/* Parse and run `pipeline` (NULL: "default"). */
int pass_run_pipeline(IrGraph *g, const char *pipeline, const PassOptions *o, IrErr *err);

/* Every pass, its doc and its options, for `ditc ir --passes-help`. */
void pass_print_help(FILE *out);

/* ---- the passes, one file each (passes/NAME.c) ------------------------------ */

int pass_dce(IrGraph *g, const PassOptions *o, IrErr *err);
int pass_cse(IrGraph *g, const PassOptions *o, IrErr *err);
int pass_canonicalize(IrGraph *g, const PassOptions *o, IrErr *err);
int pass_fold_constants(IrGraph *g, const PassOptions *o, IrErr *err);
int pass_hoist_adaln(IrGraph *g, const PassOptions *o, IrErr *err);
int pass_fuse(IrGraph *g, const PassOptions *o, IrErr *err);
int pass_plan_memory(IrGraph *g, const PassOptions *o, IrErr *err);
int pass_route_experts(IrGraph *g, const PassOptions *o, IrErr *err);
int pass_quantize(IrGraph *g, const PassOptions *o, IrErr *err);

/* quantize's option values, which --quantize and --quantize-scope also take
 * (frontend/main.c), and the pass the flags put it after in the pipeline. */
#define PASS_QUANTIZE_MODES "none|w8|w8a8|fp8"
#define PASS_QUANTIZE_SCOPES "blocks|all"
#define PASS_QUANTIZE_AFTER "dce"

/* conv_gemm.c: stride-1 conv2d as im2col (or a reshape) and a matmul. */
int pass_conv_gemm(IrGraph *g, const PassOptions *o, IrErr *err);

int pass_prune_heads(IrGraph *g, const PassOptions *o, IrErr *err);
int pass_kv_heads(IrGraph *g, const PassOptions *o, IrErr *err);
int pass_prune_mlp(IrGraph *g, const PassOptions *o, IrErr *err);
int pass_prune_blocks(IrGraph *g, const PassOptions *o, IrErr *err);

/* step_cache.c: the full and cached entries of step caching (sampling with
 * --cache-interval).  pass_pipeline_add_step_cache puts step-cache:role=ROLE
 * into p before the first of hoist-adaln, route-experts, conv-gemm, fuse,
 * plan-memory it runs (after every pass that changes the model), else at the
 * end; role NULL or "none" adds nothing. */
#define PASS_STEP_CACHE_ROLES "none|full|cached"
/* What the pass appends to the entry's name (g->name, the plan's entry) for
 * role full and role cached; pass_step_cache_role reads a name back: the
 * role ("full", "cached") and the entry's own name's length, or NULL. */
#define PASS_STEP_CACHE_FULL ".cache_full"
#define PASS_STEP_CACHE_STEP ".cache_step"
const char *pass_step_cache_role(const char *entry, size_t *base_len);
int pass_step_cache(IrGraph *g, const PassOptions *o, IrErr *err);
int pass_pipeline_add_step_cache(PassPipeline *p, const char *role, IrErr *err);

#endif
