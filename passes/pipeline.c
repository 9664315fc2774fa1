/*
 * pipeline.c - the pass registry and the pass manager.
 *
 * The registry is one table of {name, function, doc}; a pipeline is a
 * comma-separated list of its names (or "default" / "none").  The whole list
 * is resolved before anything runs, so a typo fails without touching the
 * graph.  After every pass the manager restores topological order, verifies
 * the graph (always in builds without NDEBUG, else when asked) and dumps it
 * when --dump-after names the pass or "all".
 */
#include <string.h>

#include "passes/passes.h"

static const PassInfo PASSES[] = {
    {"canonicalize", pass_canonicalize,
     "fold reshape/permute chains; drop identity reshape, permute, slice, scale 1, add_scalar 0"},
    {"fold-constants", pass_fold_constants,
     "evaluate elementwise, layout and reduce ops over constants into one constant"},
    {"cse", pass_cse, "merge nodes computing the same op over the same inputs and attributes"},
    {"hoist-adaln", pass_hoist_adaln,
     "merge linears reading one activation (every block's adaLN modulation) into one product"},
    {"route-experts", pass_route_experts,
     "run a dense mixture-of-experts MLP on the T*k routed rows: moe_route/gather/linear/combine"},
    {"dce", pass_dce, "remove nodes no output depends on"},
    {"fuse", pass_fuse,
     "group nodes into kernels: attention, GEMM + GELU, residual -> layernorm -> modulate, elementwise trees"},
    {"plan-memory", pass_plan_memory, "let activation buffers with disjoint lifetimes share arena space"},
};

#define N_PASSES ((int)(sizeof PASSES / sizeof PASSES[0]))
/* Longest pipeline accepted (names, after expanding "default"). */
#define MAX_PIPELINE 64

const char *const PASS_DEFAULT_PIPELINE =
    "canonicalize,fold-constants,cse,hoist-adaln,route-experts,canonicalize,dce,fuse,plan-memory";

const PassInfo *pass_table(int *n) {
  if (n) *n = N_PASSES;
  return PASSES;
}

static const PassInfo *find_n(const char *name, size_t len) {
  for (int i = 0; i < N_PASSES; i++)
    if (strlen(PASSES[i].name) == len && strncmp(PASSES[i].name, name, len) == 0) return &PASSES[i];
  return NULL;
}

const PassInfo *pass_find(const char *name) { return name ? find_n(name, strlen(name)) : NULL; }

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n'; }

static int unknown_pass(const char *name, size_t len, IrErr *err) {
  char known[512] = "";
  size_t used = 0;
  for (int i = 0; i < N_PASSES && used < sizeof known; i++)
    used += (size_t)snprintf(known + used, sizeof known - used, "%s%s", i ? ", " : "", PASSES[i].name);
  return ir_errf(err, "unknown pass '%.*s' (known: %s; or default, none)", (int)len, name, known);
}

/* Resolve `pipeline` into a list of passes; "default" expands in place and
 * "none" or an empty item adds nothing. */
static int resolve(const char *pipeline, const PassInfo **list, int *n, int depth, IrErr *err) {
  const char *p = pipeline;
  while (*p) {
    while (is_space(*p) || *p == ',') p++;
    const char *start = p;
    while (*p && *p != ',') p++;
    const char *end = p;
    while (end > start && is_space(end[-1])) end--;
    size_t len = (size_t)(end - start);
    if (len == 0) continue;
    if (len == 4 && strncmp(start, "none", 4) == 0) continue;
    if (len == 7 && strncmp(start, "default", 7) == 0) {
      DITC_ASSERT(depth == 0); /* the default pipeline does not name itself */
      if (resolve(PASS_DEFAULT_PIPELINE, list, n, depth + 1, err)) return -1;
      continue;
    }
    const PassInfo *pi = find_n(start, len);
    if (!pi) return unknown_pass(start, len, err);
    if (*n >= MAX_PIPELINE) return ir_errf(err, "pipeline longer than %d passes", MAX_PIPELINE);
    list[(*n)++] = pi;
  }
  return 0;
}

static int want_verify(const PassOptions *o) {
#ifdef NDEBUG
  return o && o->verify;
#else
  (void)o;
  return 1;
#endif
}

int pass_run_pipeline(IrGraph *g, const char *pipeline, const PassOptions *o, IrErr *err) {
  static const PassOptions no_options = {0};
  const PassInfo *list[MAX_PIPELINE];
  int n = 0;
  if (!o) o = &no_options;
  if (!pipeline) pipeline = "default";
  if (resolve(pipeline, list, &n, 0, err)) return -1;
  for (int i = 0; i < n; i++) {
    IrErr perr = {{0}};
    if (list[i]->fn(g, o, &perr)) return ir_errf(err, "pass %s: %s", list[i]->name, perr.msg);
    if (ir_graph_toposort(g, &perr))
      return ir_errf(err, "after pass %s: %s", list[i]->name, perr.msg);
    if (want_verify(o) && ir_verify(g, &perr))
      return ir_errf(err, "after pass %s: invalid IR: %s", list[i]->name, perr.msg);
    if (o->dump_after && (strcmp(o->dump_after, "all") == 0 || strcmp(o->dump_after, list[i]->name) == 0)) {
      FILE *out = o->dump ? o->dump : stdout;
      fprintf(out, "// after %s\n", list[i]->name);
      ir_dump(g, out);
    }
  }
  return 0;
}
