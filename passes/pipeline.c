/*
 * pipeline.c - the pass registry and the pass manager.
 *
 * The registry is one table of {name, function, doc, options}; a pass's
 * options (name, type, default, range or choices, one line of help) are
 * columns of its row, so parsing, checking, defaults and `--passes-help` all
 * read the same facts.  A pipeline ("a,b:key=value,c", "default", "none") is
 * parsed into a PassPipeline, every value checked, before anything runs, so a
 * typo fails without touching the graph.  After every pass the manager
 * restores topological order, verifies the graph (always in builds without
 * NDEBUG, else when asked) and dumps it when --dump-after names the pass or
 * "all".
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "passes/passes.h"

static const PassInfo PASSES[] = {
    {"canonicalize", pass_canonicalize,
     "fold reshape/permute chains; drop identity reshape, permute, slice, scale 1, add_scalar 0", PASS_NO_OPTIONS},
    {"fold-constants", pass_fold_constants,
     "evaluate elementwise, layout and reduce ops over constants into one constant", PASS_NO_OPTIONS},
    {"cse", pass_cse, "merge nodes computing the same op over the same inputs and attributes", PASS_NO_OPTIONS},
    {"hoist-adaln", pass_hoist_adaln,
     "merge linears reading one activation (every block's adaLN modulation) into one product", PASS_NO_OPTIONS},
    {"route-experts", pass_route_experts,
     "run a dense mixture-of-experts MLP on the T*k routed rows: moe_route/gather/linear/combine", PASS_NO_OPTIONS},
    {"conv-gemm", pass_conv_gemm,
     "stride-1 conv2d (the VAE decoder's 3x3 and 1x1) as im2col and a matmul: GEMM steps", PASS_NO_OPTIONS},
    {"dce", pass_dce, "remove nodes no output depends on", PASS_NO_OPTIONS},
    {"quantize", pass_quantize,
     "int8 linears: weights per output row (w8), also activations per token with int32 sums (w8a8); "
     "fp8 e4m3 weights and activations, per-tensor scales, the activations' from calibration (fp8)",
     {{"mode", PASS_OPT_CHOICE, "none", "the scheme (none: leave the graph as it is)", .choices = PASS_QUANTIZE_MODES},
      {"scope", PASS_OPT_CHOICE, "blocks", "blocks: the blocks' attention and MLP linears; all: every linear",
       .choices = PASS_QUANTIZE_SCOPES},
      {"scales", PASS_OPT_TEXT, "",
       "fp8: the activation scales, one per covered linear in graph order, each its f32 bits in hex ('.' between; "
       "empty: max|x| / 448 from calibration data)", .lo = 0}}},
    {"fuse", pass_fuse,
     "group nodes into kernels: attention, GEMM + GELU, residual -> layernorm -> modulate, elementwise trees",
     PASS_NO_OPTIONS},
    {"plan-memory", pass_plan_memory, "let activation buffers with disjoint lifetimes share arena space",
     PASS_NO_OPTIONS},
    {"prune-heads", pass_prune_heads,
     "keep the `keep` best heads of every softmax attention, remove the others' qkv rows and proj columns",
     {{"keep", PASS_OPT_INT, "0", "heads kept per block (0: all)", .lo = 0, .hi = 65536},
      {"criterion", PASS_OPT_CHOICE, "l2", "l2: |q_h|+|k_h|+|v_h| of the qkv rows; calib: output on calibration data",
       .choices = "l2|calib"},
      {"select", PASS_OPT_TEXT, "", "the kept heads, a hex mask per block ('.' between; empty: by the criterion)", .lo = 0}}},
    {"kv-heads", pass_kv_heads,
     "grouped-query attention: groups of H/count heads share one K and V head, the mean of theirs",
     {{"count", PASS_OPT_INT, "0", "K/V heads per block (0: as many as query heads)", .lo = 0, .hi = 65536}}},
    {"prune-mlp", pass_prune_mlp,
     "remove the fraction `fraction` of every MLP's hidden channels (fc1 rows, fc2 columns), lowest scores first",
     {{"fraction", PASS_OPT_FLOAT, "0", "the fraction removed, in [0, 1)", .lo = 0, .hi = 0.999999},
      {"criterion", PASS_OPT_CHOICE, "l2",
       "l2: |fc1 row| |fc2 column|; calib: mean |GELU output| on calibration data times |fc2 column|",
       .choices = "l2|calib"},
      {"select", PASS_OPT_TEXT, "", "the kept channels, a hex mask per MLP ('.' between; empty: by the criterion)", .lo = 0}}},
    {"prune-blocks", pass_prune_blocks,
     "drop the `count` blocks whose residual contribution on calibration data is smallest",
     {{"count", PASS_OPT_INT, "0", "blocks dropped", .lo = 0, .hi = 65536},
      {"select", PASS_OPT_TEXT, "", "the dropped blocks' indices ('.' between; empty: by calibration data)", .lo = 0}}},
    {"step-cache", pass_step_cache,
     "step caching's entries: full also outputs every block's gated residual deltas, cached reads them as inputs",
     {{"role", PASS_OPT_CHOICE, "none", "none: nothing; full: output the deltas cache.K; cached: take them as inputs",
       .choices = PASS_STEP_CACHE_ROLES}}},
};

#define N_PASSES ((int)(sizeof PASSES / sizeof PASSES[0]))

const char *const PASS_DEFAULT_PIPELINE =
    "canonicalize,fold-constants,cse,hoist-adaln,route-experts,conv-gemm,canonicalize,dce,fuse,plan-memory";

const PassInfo *pass_table(int *n) {
  if (n) *n = N_PASSES;
  return PASSES;
}

static const PassInfo *find_n(const PassInfo *t, int n, const char *name, size_t len) {
  for (int i = 0; i < n; i++)
    if (strlen(t[i].name) == len && strncmp(t[i].name, name, len) == 0) return &t[i];
  return NULL;
}

const PassInfo *pass_find(const char *name) { return name ? find_n(PASSES, N_PASSES, name, strlen(name)) : NULL; }

/* ---- option values ------------------------------------------------------------ */

static int n_opts(const PassInfo *pi) {
  int n = 0;
  while (n < PASS_MAX_OPTS && pi->opts[n].name) n++;
  return n;
}

static const char *type_name(PassOptType t) {
  switch (t) {
  case PASS_OPT_INT: return "int";
  case PASS_OPT_FLOAT: return "float";
  case PASS_OPT_BOOL: return "bool";
  case PASS_OPT_CHOICE: return "choice";
  case PASS_OPT_TEXT: return "text";
  }
  ditc_unreachable();
}

/* What a value of s must be, as the error and the help say it. */
static void expected(const PassOptSpec *s, char *buf, size_t n) {
  switch (s->type) {
  case PASS_OPT_INT:
    if (s->lo < s->hi) snprintf(buf, n, "a whole number in %.0f..%.0f", s->lo, s->hi);
    else snprintf(buf, n, "a whole number");
    return;
  case PASS_OPT_FLOAT:
    if (s->lo < s->hi) snprintf(buf, n, "a number in %g..%g", s->lo, s->hi);
    else snprintf(buf, n, "a number");
    return;
  case PASS_OPT_BOOL: snprintf(buf, n, "true or false"); return;
  case PASS_OPT_CHOICE: snprintf(buf, n, "one of %s", s->choices); return;
  case PASS_OPT_TEXT: snprintf(buf, n, "a word of 0-9, a-z and ./_-"); return;
  }
  ditc_unreachable();
}

/* TEXT values live as long as the process (pipelines are copied by value). */
static Arena text_arena;

static const char *intern(const char *s, size_t len) {
  char *t = arena_alloc(&text_arena, len + 1);
  memcpy(t, s, len);
  t[len] = 0;
  return t;
}

static int text_ok(const char *s, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') || strchr("./_-", s[i]))) return 0;
  return 1;
}

static int in_range(const PassOptSpec *s, double v) { return !(s->lo < s->hi) || (v >= s->lo && v <= s->hi); }

/* Parse text as a value of s.  Returns 0, or -1 when it is not one. */
static int parse_value(const PassOptSpec *s, const char *text, PassOptValue *v) {
  char *end;
  memset(v, 0, sizeof *v);
  errno = 0;
  switch (s->type) {
  case PASS_OPT_INT: {
    long long x = strtoll(text, &end, 10);
    if (errno || end == text || *end || !in_range(s, (double)x)) return -1;
    v->i = x;
    return 0;
  }
  case PASS_OPT_FLOAT: {
    double x = strtod(text, &end);
    if (errno || end == text || *end || !isfinite(x) || !in_range(s, x)) return -1;
    v->f = x;
    return 0;
  }
  case PASS_OPT_BOOL: {
    static const char *const yes[] = {"true", "1", "on", "yes"}, *const no[] = {"false", "0", "off", "no"};
    for (int i = 0; i < 4; i++)
      if (!strcasecmp(text, yes[i]) || !strcasecmp(text, no[i])) {
        v->i = !strcasecmp(text, yes[i]);
        return 0;
      }
    return -1;
  }
  case PASS_OPT_CHOICE: {
    size_t len = strlen(text);
    const char *c = s->choices;
    for (int k = 0; *c; k++) {
      size_t cl = strcspn(c, "|");
      if (len && cl == len && !strncmp(c, text, len)) {
        DITC_ASSERT(len < sizeof v->s);
        memcpy(v->s, text, len + 1);
        v->i = k;
        return 0;
      }
      c += cl + (c[cl] == '|');
    }
    return -1;
  }
  case PASS_OPT_TEXT:
    if (!text_ok(text, strlen(text))) return -1;
    v->t = intern(text, strlen(text));
    return 0;
  }
  ditc_unreachable();
}

/* Every option of pi at its default. */
static void fill_defaults(const PassInfo *pi, PassOptValue *values) {
  for (int k = 0; k < n_opts(pi); k++)
    if (parse_value(&pi->opts[k], pi->opts[k].def ? pi->opts[k].def : "", &values[k]))
      ditc_fatal(__FILE__, __LINE__, "pass '%s': the default '%s' of option '%s' is not a valid %s", pi->name,
                 pi->opts[k].def ? pi->opts[k].def : "(none)", pi->opts[k].name, type_name(pi->opts[k].type));
}

/* The value of option `name` of the running pass, checked to be of type t. */
static const PassOptValue *value_of(const PassOptions *o, const char *name, PassOptType t) {
  if (!o || !o->pass || !o->values)
    ditc_fatal(__FILE__, __LINE__, "pass option '%s' read outside the pass manager", name);
  for (int k = 0; k < n_opts(o->pass); k++)
    if (!strcmp(o->pass->opts[k].name, name)) {
      if (o->pass->opts[k].type != t)
        ditc_fatal(__FILE__, __LINE__, "pass '%s' reads its %s option '%s' as a %s", o->pass->name,
                   type_name(o->pass->opts[k].type), name, type_name(t));
      return &o->values[k];
    }
  ditc_fatal(__FILE__, __LINE__, "pass '%s' reads an option '%s' its registry row does not declare", o->pass->name,
             name);
}

int64_t pass_opt_int(const PassOptions *o, const char *name) { return value_of(o, name, PASS_OPT_INT)->i; }
double pass_opt_float(const PassOptions *o, const char *name) { return value_of(o, name, PASS_OPT_FLOAT)->f; }
int pass_opt_bool(const PassOptions *o, const char *name) { return (int)value_of(o, name, PASS_OPT_BOOL)->i; }
const char *pass_opt_choice(const PassOptions *o, const char *name) { return value_of(o, name, PASS_OPT_CHOICE)->s; }
const char *pass_opt_text(const PassOptions *o, const char *name) { return value_of(o, name, PASS_OPT_TEXT)->t; }

void pass_opt_decide(const PassOptions *o, const char *name, const char *text) {
  const PassOptValue *v = value_of(o, name, PASS_OPT_TEXT);
  if (!o->resolved) return;
  DITC_ASSERT(text_ok(text, strlen(text)) && o->step >= 0 && o->step < o->resolved->n &&
              o->resolved->steps[o->step].pass == o->pass);
  o->resolved->steps[o->step].values[v - o->values].t = intern(text, strlen(text));
}

const float *pass_weight(const PassOptions *o, const IrNode *n) {
  if (!o || !o->weight || !n || n->op != IR_PARAM) return NULL;
  return o->weight(o->weight_ctx, n);
}

/* ---- parsing pipelines ---------------------------------------------------------- */

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n'; }

static int unknown_pass(const PassInfo *t, int n, const char *name, size_t len, IrErr *err) {
  char known[512] = "";
  size_t used = 0;
  for (int i = 0; i < n && used < sizeof known; i++)
    used += (size_t)snprintf(known + used, sizeof known - used, "%s%s", i ? ", " : "", t[i].name);
  return ir_errf(err, "unknown pass '%.*s' (known: %s; or default, none)", (int)len, name, known);
}

static int no_option(const PassInfo *pi, const char *key, size_t len, IrErr *err) {
  char list[512] = "";
  size_t used = 0;
  for (int k = 0; k < n_opts(pi) && used < sizeof list; k++)
    used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", k ? ", " : "", pi->opts[k].name);
  if (!n_opts(pi)) return ir_errf(err, "pass '%s' has no option '%.*s' (it takes none)", pi->name, (int)len, key);
  return ir_errf(err, "pass '%s' has no option '%.*s' (its options: %s)", pi->name, (int)len, key, list);
}

/* One option setting "key=value" (or "key" for a bool) of pass pi, from
 * [p, end).  given[k] marks options already set in this item. */
static int parse_setting(const PassInfo *pi, const char *p, const char *end, PassOptValue *values, char *given,
                         IrErr *err) {
  const char *eq = memchr(p, '=', (size_t)(end - p));
  const char *kend = eq ? eq : end;
  while (kend > p && is_space(kend[-1])) kend--;
  size_t klen = (size_t)(kend - p);
  if (!klen) return ir_errf(err, "pass '%s': an option without a name in '%.*s'", pi->name, (int)(end - p), p);
  int k = 0;
  while (k < n_opts(pi) && !(strlen(pi->opts[k].name) == klen && !strncmp(pi->opts[k].name, p, klen))) k++;
  if (k == n_opts(pi)) return no_option(pi, p, klen, err);
  const PassOptSpec *s = &pi->opts[k];
  if (given[k]) return ir_errf(err, "pass '%s': option '%s' given twice", pi->name, s->name);
  given[k] = 1;
  char text[128], want[160];
  const char *v = eq ? eq + 1 : end;
  while (v < end && is_space(*v)) v++;
  size_t vlen = (size_t)(end - v);
  if (!eq && s->type == PASS_OPT_BOOL) { /* `name` alone: true */
    values[k].i = 1;
    return 0;
  }
  expected(s, want, sizeof want);
  if (!eq) return ir_errf(err, "pass '%s': option '%s' needs a value (%s=VALUE: %s)", pi->name, s->name, s->name, want);
  if (s->type == PASS_OPT_TEXT && text_ok(v, vlen)) {
    values[k].t = intern(v, vlen);
    return 0;
  }
  if (vlen < sizeof text) {
    memcpy(text, v, vlen);
    text[vlen] = 0;
    if (!parse_value(s, text, &values[k])) return 0;
  }
  return ir_errf(err, "pass '%s': option '%s' takes %s, got '%.*s'", pi->name, s->name, want, (int)vlen, v);
}

/* Parse `spec` and append its passes to p.  depth guards "default", which
 * does not name itself. */
static int parse_into(const PassInfo *t, int nt, const char *spec, PassPipeline *p, int depth, IrErr *err) {
  const char *s = spec;
  while (*s) {
    while (is_space(*s) || *s == ',') s++;
    const char *start = s;
    while (*s && *s != ',') s++;
    const char *end = s;
    while (end > start && is_space(end[-1])) end--;
    if (end == start) continue;
    const char *colon = memchr(start, ':', (size_t)(end - start));
    const char *nend = colon ? colon : end;
    while (nend > start && is_space(nend[-1])) nend--;
    size_t len = (size_t)(nend - start);
    int is_none = len == 4 && !strncmp(start, "none", 4), is_default = len == 7 && !strncmp(start, "default", 7);
    if ((is_none || is_default) && colon) return ir_errf(err, "'%.*s' takes no options", (int)len, start);
    if (is_none) continue;
    if (is_default) {
      DITC_ASSERT(depth == 0);
      if (parse_into(t, nt, PASS_DEFAULT_PIPELINE, p, depth + 1, err)) return -1;
      continue;
    }
    const PassInfo *pi = find_n(t, nt, start, len);
    if (!pi) return unknown_pass(t, nt, start, len, err);
    if (p->n >= PASS_MAX_PIPELINE) return ir_errf(err, "pipeline longer than %d passes", PASS_MAX_PIPELINE);
    PassStep *st = &p->steps[p->n];
    memset(st, 0, sizeof *st);
    st->pass = pi;
    fill_defaults(pi, st->values);
    char given[PASS_MAX_OPTS] = {0};
    /* the settings: ":key=value" up to the next ':' or the item's end */
    for (const char *q = colon; q && q < end;) {
      const char *o = q + 1, *oend = o;
      while (oend < end && *oend != ':') oend++;
      q = oend < end ? oend : NULL;
      while (o < oend && is_space(*o)) o++;
      while (oend > o && is_space(oend[-1])) oend--;
      if (parse_setting(pi, o, oend, st->values, given, err)) return -1;
    }
    p->n++;
  }
  return 0;
}

int pass_pipeline_parse_table(const PassInfo *table, int n_table, const char *spec, PassPipeline *p, IrErr *err) {
  p->n = 0;
  return parse_into(table, n_table, spec ? spec : "default", p, 0, err);
}

int pass_pipeline_parse(const char *spec, PassPipeline *p, IrErr *err) {
  return pass_pipeline_parse_table(PASSES, N_PASSES, spec, p, err);
}

int pass_pipeline_runs(const PassPipeline *p, const char *name) {
  for (int i = 0; i < p->n; i++)
    if (!strcmp(p->steps[i].pass->name, name)) return 1;
  return 0;
}

/* Move the last step to position at. */
static int move_last(PassPipeline *p, int at) {
  PassStep last = p->steps[p->n - 1];
  memmove(&p->steps[at + 1], &p->steps[at], (size_t)(p->n - 1 - at) * sizeof p->steps[0]);
  p->steps[at] = last;
  return 0;
}

int pass_pipeline_insert(PassPipeline *p, const char *after, const char *spec, IrErr *err) {
  int at = p->n, rc = -1;
  if (after) {
    for (at = 0; at < p->n && strcmp(p->steps[at].pass->name, after); at++) {}
    if (at == p->n) return ir_errf(err, "'%s' goes after pass '%s', which the pipeline does not run", spec, after);
    at++;
  }
  PassPipeline *add = xmalloc(sizeof *add);
  if (pass_pipeline_parse(spec, add, err)) goto out;
  if (p->n + add->n > PASS_MAX_PIPELINE) {
    ir_errf(err, "pipeline longer than %d passes", PASS_MAX_PIPELINE);
    goto out;
  }
  memmove(&p->steps[at + add->n], &p->steps[at], (size_t)(p->n - at) * sizeof p->steps[0]);
  memcpy(&p->steps[at], add->steps, (size_t)add->n * sizeof p->steps[0]);
  p->n += add->n;
  rc = 0;
out:
  free(add);
  return rc;
}

int pass_pipeline_add_step_cache(PassPipeline *p, const char *role, IrErr *err) {
  if (!role || !strcmp(role, "none")) return 0;
  char spec[64];
  snprintf(spec, sizeof spec, "step-cache:role=%s", role);
  const char *before[] = {"hoist-adaln", "route-experts", "conv-gemm", "fuse", "plan-memory"};
  for (size_t k = 0; k < sizeof before / sizeof before[0]; k++)
    for (int at = 0; at < p->n; at++)
      if (!strcmp(p->steps[at].pass->name, before[k]))
        return pass_pipeline_insert(p, NULL, spec, err) ? -1 : move_last(p, at);
  return pass_pipeline_insert(p, NULL, spec, err);
}

char *pass_pipeline_text(const PassPipeline *p) {
  size_t cap = 64, len = 0;
  char *out = xmalloc(cap);
  out[0] = 0;
  for (int i = 0; i < p->n; i++) {
    const PassInfo *pi = p->steps[i].pass;
    size_t item_cap = PASS_MAX_OPTS * 160 + 64;
    for (int k = 0; k < n_opts(pi); k++)
      if (pi->opts[k].type == PASS_OPT_TEXT && p->steps[i].values[k].t) item_cap += strlen(p->steps[i].values[k].t);
    char *item = xmalloc(item_cap);
    int at = snprintf(item, item_cap, "%s%s", i ? "," : "", pi->name);
    for (int k = 0; k < n_opts(pi); k++) {
      const PassOptSpec *s = &pi->opts[k];
      const PassOptValue *v = &p->steps[i].values[k];
      char val[64];
      const char *vs = val;
      switch (s->type) {
      case PASS_OPT_INT: snprintf(val, sizeof val, "%lld", (long long)v->i); break;
      case PASS_OPT_FLOAT: snprintf(val, sizeof val, "%.17g", v->f); break; /* strtod reads it back exactly */
      case PASS_OPT_BOOL: snprintf(val, sizeof val, "%s", v->i ? "true" : "false"); break;
      case PASS_OPT_CHOICE: snprintf(val, sizeof val, "%s", v->s); break;
      case PASS_OPT_TEXT: vs = v->t ? v->t : ""; break;
      }
      at += snprintf(item + at, item_cap - (size_t)at, ":%s=%s", s->name, vs);
    }
    size_t il = strlen(item);
    if (len + il + 1 > cap) out = xrealloc(out, cap = 2 * (len + il + 1));
    memcpy(out + len, item, il + 1);
    len += il;
    free(item);
  }
  if (!p->n) {
    free(out);
    out = xstrdup("none");
  }
  return out;
}

/* ---- running ----------------------------------------------------------------------- */

static int want_verify(const PassOptions *o) {
#ifdef NDEBUG
  return o->verify;
#else
  (void)o;
  return 1;
#endif
}

int pass_pipeline_run(IrGraph *g, const PassPipeline *p, const PassOptions *o, IrErr *err) {
  static const PassOptions no_options = {0};
  if (!o) o = &no_options;
  if (o->resolved && o->resolved != p) *o->resolved = *p;
  for (int i = 0; i < p->n; i++) {
    const PassInfo *pi = p->steps[i].pass;
    PassOptions po = *o;
    po.pass = pi;
    po.values = p->steps[i].values;
    po.step = i;
    IrErr perr = {{0}};
    if (pi->fn(g, &po, &perr)) return ir_errf(err, "pass %s: %s", pi->name, perr.msg);
    if (ir_graph_toposort(g, &perr)) return ir_errf(err, "after pass %s: %s", pi->name, perr.msg);
    if (want_verify(o) && ir_verify(g, &perr)) return ir_errf(err, "after pass %s: invalid IR: %s", pi->name, perr.msg);
    if (o->dump_after && (strcmp(o->dump_after, "all") == 0 || strcmp(o->dump_after, pi->name) == 0)) {
      FILE *out = o->dump ? o->dump : stdout;
      fprintf(out, "// after %s\n", pi->name);
      ir_dump(g, out);
    }
  }
  return 0;
}

int pass_run_pipeline(IrGraph *g, const char *pipeline, const PassOptions *o, IrErr *err) {
  PassPipeline *p = xmalloc(sizeof *p);
  int rc = pass_pipeline_parse(pipeline, p, err);
  if (!rc) rc = pass_pipeline_run(g, p, o, err);
  free(p);
  return rc;
}

/* ---- help ---------------------------------------------------------------------------- */

void pass_print_help(FILE *out) {
  fprintf(out,
          "passes: --passes a,b:key=value:key=value,c (or default, none; a pass may appear more than once)\n");
  for (int i = 0; i < N_PASSES; i++) {
    const PassInfo *pi = &PASSES[i];
    fprintf(out, "  %-15s %s\n", pi->name, pi->doc);
    for (int k = 0; k < n_opts(pi); k++) {
      const PassOptSpec *s = &pi->opts[k];
      char want[160], key[64];
      expected(s, want, sizeof want);
      snprintf(key, sizeof key, ":%s=%s", s->name, s->type == PASS_OPT_INT ? "N" : s->type == PASS_OPT_FLOAT ? "X"
                                                   : s->type == PASS_OPT_BOOL ? "BOOL"
                                                   : s->type == PASS_OPT_TEXT ? "TEXT" : "CHOICE");
      fprintf(out, "  %15s   %-18s %s (%s; default %s)\n", "", key, s->doc, want, s->def[0] ? s->def : "empty");
    }
  }
  fprintf(out, "default: %s\n", PASS_DEFAULT_PIPELINE);
}
