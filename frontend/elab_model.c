/*
 * elab_model.c - elaborating a model: every name defined once, the file's and
 * the model's functions bound, the model's parameters from their defaults,
 * the configuration and `--set`, its statements run, then one entry's
 * inputs declared and its body run into the IR graph (fe_elaborate).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/elab.h"

/* ======================================================================== */
/* functions, models, entries                                               */
/* ======================================================================== */

static void check_params(Elab *e, const AstList *params, const char *what) {
  for (int i = 0; i < params->n; i++) {
    const AstNode *p = params->v[i];
    if (!el_known_type(p->s2))
      el_error(e, p->loc, "unknown type '%s' (types: int, float, bool, str, list, tensor)", p->s2);
    el_check_bindable(e, p, what);
    for (int j = 0; j < i; j++)
      if (!strcmp(params->v[j]->s, p->s)) el_error(e, p->loc, "parameter '%s' declared twice", p->s);
  }
}

static void define_fn(Elab *e, Env *env, const AstNode *def) {
  if (el_check_bindable(e, def, "function")) return;
  check_params(e, def->l1, "parameter");
  ElFn *fn = el_alloc(e, def->loc, sizeof *fn);
  if (!fn) return;
  fn->def = def;
  fn->env = env;
  el_env_bind(env, def->s, (Value){.k = V_FN, .fn = fn});
}

static const AstNode *find_config(const AstNode *file, const char *name) {
  const AstNode *found = NULL;
  for (int i = 0; i < file->l1->n; i++) {
    const AstNode *it = file->l1->v[i];
    if (it->kind == AST_CONFIG && !strcmp(it->s, name)) found = it;
  }
  return found;
}

static const AstNode *find_model(const AstNode *file, const char *name) {
  const AstNode *found = NULL;
  for (int i = 0; i < file->l1->n; i++) {
    const AstNode *it = file->l1->v[i];
    if (it->kind == AST_MODEL && (!name || !strcmp(it->s, name))) found = it;
  }
  return found;
}

/* "a, b, c" of a list of named nodes (arena string). */
static const char *names_of(Elab *e, const AstList *l, AstKind kind) {
  char *s = arena_strdup(&e->arena, "");
  for (int i = 0; i < l->n; i++)
    if (l->v[i]->kind == kind) s = arena_printf(&e->arena, "%s%s%s", s, *s ? ", " : "", l->v[i]->s);
  return *s ? s : "none";
}

/* --set NAME=VALUE as the parameter's type (or, untyped, the default's kind;
 * else the first of int, float, bool that parses, else a string). */

/* Binds the model's parameters in order: --set, else the configuration,
 * else the default (which sees the parameters before it). */
static int bind_model_params(Elab *e, Env *genv, Env *menv, const AstNode *model,
                             const AstNode *config, const FeSetting *sets, int n_sets) {
  int errors = e->diag->n_errors;
  const AstList *params = model->l1;
  check_params(e, params, "model parameter");
  for (int k = 0; k < n_sets; k++) {
    int j = 0;
    while (j < params->n && strcmp(params->v[j]->s, sets[k].name)) j++;
    if (j == params->n)
      fe_error_at(e->diag, e->src->file, "--set %s=%s: model '%s' has no parameter '%s' (its parameters: %s)",
                  sets[k].name, sets[k].value, model->s, sets[k].name,
                  names_of(e, params, AST_PARAM_DECL));
  }
  if (config) {
    for (int k = 0; k < config->l1->n; k++) {
      const AstNode *kw = config->l1->v[k];
      int j = 0;
      while (j < params->n && strcmp(params->v[j]->s, kw->s)) j++;
      if (j == params->n)
        el_error(e, kw->loc, "model '%s' has no parameter '%s' (its parameters: %s)", model->s, kw->s,
                 names_of(e, params, AST_PARAM_DECL));
      for (int m = 0; m < k; m++)
        if (!strcmp(config->l1->v[m]->s, kw->s)) el_error(e, kw->loc, "'%s' given twice", kw->s);
    }
  }
  for (int j = 0; j < params->n && !e->fatal; j++) {
    const AstNode *p = params->v[j];
    const FeSetting *set = NULL;
    const AstNode *from_config = NULL;
    for (int k = 0; k < n_sets; k++)
      if (!strcmp(sets[k].name, p->s)) set = &sets[k];
    for (int k = 0; config && k < config->l1->n; k++)
      if (!strcmp(config->l1->v[k]->s, p->s)) from_config = config->l1->v[k];
    Value v;
    AstLoc loc = p->loc;
    if (set) {
      if (el_parse_setting(e, p, set, &v)) v = el_poison();
    } else if (from_config) {
      v = el_eval(e, genv, from_config->a);
      loc = from_config->a->loc;
    } else if (p->a) {
      v = el_eval(e, menv, p->a);
      loc = p->a->loc;
    } else {
      el_error(e, p->loc, "model parameter '%s' has no default and no value was given", p->s);
      v = el_poison();
    }
    if (!el_type_ok(&v, p->s2)) {
      if (set)
        fe_error_at(e->diag, e->src->file, "--set %s=%s: '%s' is not %s", set->name, set->value,
                    set->value, p->s2);
      else
        el_error(e, loc, "model parameter '%s' must be %s, got %s", p->s, p->s2, el_describe(e, v));
      v = el_poison();
    }
    el_env_bind(menv, p->s, v);
  }
  return e->diag->n_errors - errors;
}

/* The model's scalar parameters, for FeModel. */
static void export_params(Elab *e, Env *menv, const AstNode *model, FeModel *out) {
  out->params = arena_alloc(&out->arena, (size_t)(model->l1->n + 1) * sizeof *out->params);
  for (int j = 0; j < model->l1->n; j++) {
    const char *name = model->l1->v[j]->s;
    Binding *b = el_env_find_local(menv, name);
    FeParam p = {.name = arena_strdup(&out->arena, name)};
    switch (b ? b->v.k : V_UNSET) {
    case V_INT: p.kind = FE_VAL_INT; p.i = b->v.i; break;
    case V_BOOL: p.kind = FE_VAL_BOOL; p.i = b->v.i; break;
    case V_FLOAT: p.kind = FE_VAL_FLOAT; p.f = b->v.f; break;
    case V_STR: p.kind = FE_VAL_STR; p.s = arena_strdup(&out->arena, b->v.s); break;
    default: continue; /* lists and the like have no FeParam form */
    }
    out->params[out->n_params++] = p;
  }
  out->entries = arena_alloc(&out->arena, (size_t)(model->l2->n + 1) * sizeof *out->entries);
  for (int j = 0; j < model->l2->n; j++)
    if (model->l2->v[j]->kind == AST_ENTRY)
      out->entries[out->n_entries++] = arena_strdup(&out->arena, model->l2->v[j]->s);
  (void)e;
}

static int elab_entry(Elab *e, Env *menv, const AstNode *entry) {
  Env frame = {.parent = menv};
  el_env_bind(&frame, "B", el_size(IR_BATCH));
  int bad = 0;
  for (int i = 0; i < entry->l1->n && !e->fatal; i++) {
    const AstNode *in = entry->l1->v[i];
    IrDType t;
    IrShape s = {0};
    int ok = 1;
    if (ir_dtype_parse(in->s2, &t)) {
      el_error(e, in->loc, "unknown dtype '%s' for input '%s' (dtypes: f32, f16, bf16, i8, i32)", in->s2,
               in->s);
      ok = 0;
    }
    if (el_eval_shape(e, &frame, in->l1, 1, in->loc, &s)) ok = 0;
    for (int j = 0; j < i; j++)
      if (!strcmp(entry->l1->v[j]->s, in->s)) {
        el_error(e, in->loc, "input '%s' declared twice", in->s);
        ok = 0;
      }
    if (el_check_bindable(e, in, "input")) ok = 0;
    if (ok) {
      el_env_bind(&frame, in->s, el_tensor(ir_input(e->g, in->s, t, s, el_irloc(e, in->loc))));
    } else {
      el_env_bind(&frame, in->s, el_poison());
      bad = 1;
    }
  }
  Exec x = bad || e->fatal ? EX_STOP : el_exec_block(e, &frame, entry->l2);
  if (x == EX_OK) {
    el_error(e, entry->loc, "entry '%s' ends without returning its outputs", entry->s);
  } else if (x == EX_RETURN && e->ret.k != V_POISON) {
    Value r = e->ret;
    int n = r.k == V_LIST ? r.l->n : 1;
    int ok = 1;
    for (int i = 0; i < n; i++) {
      Value v = r.k == V_LIST ? r.l->v[i] : r;
      if (v.k != V_TENSOR) {
        const AstNode *rs = e->ret_stmt;
        AstLoc at = rs->l1->n == n ? rs->l1->v[i]->loc : rs->loc;
        el_error(e, at, "entry '%s' must return tensors; output %d is %s", entry->s, i,
                 el_describe(e, v));
        ok = 0;
      }
    }
    for (int i = 0; i < n && ok; i++) {
      char name[32];
      if (i == 0) snprintf(name, sizeof name, "out");
      else snprintf(name, sizeof name, "out%d", i);
      ir_graph_add_output(e->g, r.k == V_LIST ? r.l->v[i].t : r.t, name);
    }
  }
  el_env_free(&frame);
  return 0;
}

/* Definitions that share a namespace: the file's functions, its models and
 * its configurations; each model's functions and its entries.  Each name
 * once: the second definition is an error pointing at the first (a later one
 * silently replacing it would change what a model computes without a word).
 * Sorted, so a file of many definitions costs n log n; reported in the
 * order of the file. */
typedef struct {
  const AstNode *n;
  int ns;      /* the namespace */
  int order;   /* position among the definitions */
  const AstNode *first;  /* a duplicate: the first definition */
} Def;

static int def_cmp(const void *a, const void *b) {
  const Def *x = a, *y = b;
  if (x->ns != y->ns) return x->ns - y->ns;
  int c = strcmp(x->n->s, y->n->s);
  return c ? c : x->order - y->order;
}

static int def_loc_cmp(const void *a, const void *b) {
  const AstLoc *x = &((const Def *)a)->n->loc, *y = &((const Def *)b)->n->loc;
  return x->line != y->line ? x->line - y->line : x->col - y->col;
}

static const char *def_what(AstKind k) {
  switch (k) {
  case AST_FN: return "function";
  case AST_ENTRY: return "entry";
  case AST_MODEL: return "model";
  default: return "configuration";
  }
}

static void add_defs(Def **d, int *n, const AstList *items, int file_level, int model) {
  for (int i = 0; items && i < items->n; i++) {
    const AstNode *it = items->v[i];
    int ns = -1;
    if (file_level) ns = it->kind == AST_FN ? 0 : it->kind == AST_MODEL ? 1 : it->kind == AST_CONFIG ? 2 : -1;
    else ns = it->kind == AST_FN ? 3 + 2 * model : it->kind == AST_ENTRY ? 4 + 2 * model : -1;
    if (ns < 0 || !it->s) continue;
    *d = xrealloc(*d, (size_t)(*n + 1) * sizeof **d);
    (*d)[*n] = (Def){it, ns, *n, NULL};
    (*n)++;
  }
}

static void check_unique(Elab *e, const AstNode *file) {
  Def *d = NULL;
  int n = 0, models = 0;
  add_defs(&d, &n, file->l1, 1, 0);
  for (int i = 0; i < file->l1->n; i++)
    if (file->l1->v[i]->kind == AST_MODEL) add_defs(&d, &n, file->l1->v[i]->l2, 0, models++);
  if (n) qsort(d, (size_t)n, sizeof *d, def_cmp); /* d is NULL for an empty file */
  Def *dup = xmalloc(((size_t)n + 1) * sizeof *dup);
  int dups = 0;
  for (int i = 0, first = 0; i < n; i++) {
    if (i && (d[i].ns != d[i - 1].ns || strcmp(d[i].n->s, d[i - 1].n->s))) first = i;
    if (i != first) dup[dups++] = (Def){d[i].n, d[i].ns, d[i].order, d[first].n};
  }
  qsort(dup, (size_t)dups, sizeof *dup, def_loc_cmp);
  for (int i = 0; i < dups; i++) {
    el_error(e, dup[i].n->loc, "%s '%s' is defined twice", def_what(dup[i].n->kind), dup[i].n->s);
    fe_note(e->diag, e->src, dup[i].first->loc.line, dup[i].first->loc.col, "the first definition of '%s' is here",
            dup[i].n->s);
  }
  free(dup);
  free(d);
}

int fe_elaborate(const FeSource *src, const AstNode *file, const char *config_name,
                 const FeSetting *sets, int n_sets, const char *entry_name, FeDiag *diag,
                 FeModel *out) {
  char probe;
  int errors0 = diag->n_errors;
  memset(out, 0, sizeof *out);
  Elab el = {.diag = diag, .src = src, .scope = "", .stack_base = (uintptr_t)&probe};
  Elab *e = &el;
  const char *where = src->file ? src->file : "<input>";

  check_unique(e, file);
  if (diag->n_errors != errors0) {
    arena_free(&e->arena);
    return diag->n_errors - errors0;
  }

  const AstNode *config = NULL, *model = NULL;
  if (config_name) {
    config = find_config(file, config_name);
    if (!config) {
      const char *names = names_of(e, file->l1, AST_CONFIG);
      fe_error_at(diag, where, "no configuration named '%s' (configurations here: %s)", config_name,
                  names);
    } else {
      model = find_model(file, config->s2);
      if (!model) el_error(e, config->loc, "configuration '%s' names an unknown model '%s'", config->s, config->s2);
    }
  } else {
    model = find_model(file, NULL);
    if (!model) fe_error_at(diag, where, "no model in this file");
  }
  if (!model) {
    arena_free(&e->arena);
    return diag->n_errors - errors0;
  }

  if (!entry_name) { /* the default: forward, else the model's first entry */
    for (int i = 0; i < model->l2->n; i++) {
      const AstNode *it = model->l2->v[i];
      if (it->kind == AST_ENTRY && (!entry_name || !strcmp(it->s, "forward"))) entry_name = it->s;
    }
    if (!entry_name) entry_name = "forward";
  }
  e->g = ir_graph_new(entry_name);
  e->file = src->file ? arena_strdup(&e->g->arena, src->file) : NULL;
  Env genv = {0}, menv = {0};
  menv.parent = &genv;
  for (int i = 0; i < file->l1->n; i++)
    if (file->l1->v[i]->kind == AST_FN) define_fn(e, &genv, file->l1->v[i]);

  bind_model_params(e, &genv, &menv, model, config, sets, n_sets);
  const AstNode *entry = NULL;
  if (diag->n_errors == errors0) {
    for (int i = 0; i < model->l2->n && !e->fatal; i++) {
      const AstNode *it = model->l2->v[i];
      if (it->kind == AST_FN) define_fn(e, &menv, it);
      else if (it->kind == AST_ENTRY) {
        if (!strcmp(it->s, entry_name)) entry = it;
      } else if (el_exec_stmt(e, &menv, it) == EX_RETURN) {
        el_error(e, it->loc, "'return' outside a function or entry");
      }
    }
    if (!entry && diag->n_errors == errors0)
      fe_error_at(diag, where, "model '%s' has no entry '%s' (its entries: %s)", model->s, entry_name,
                  names_of(e, model->l2, AST_ENTRY));
  }
  /* Errors in the model's own statements (a failed assert) make the entry
   * meaningless: stop there rather than report the consequences. */
  if (entry && diag->n_errors == errors0) elab_entry(e, &menv, entry);

  int errors = diag->n_errors - errors0;
  if (!errors) {
    out->graph = e->g;
    out->model = arena_strdup(&out->arena, model->s);
    out->config = config ? arena_strdup(&out->arena, config->s) : NULL;
    export_params(e, &menv, model, out);
  } else {
    ir_graph_free(e->g);
  }
  el_env_free(&menv);
  el_env_free(&genv);
  free(e->params.key);
  free(e->params.val);
  arena_free(&e->arena);
  return errors;
}
