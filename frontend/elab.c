/*
 * elab.c - elaboration: run a model's program at compile time and build the
 * IR graph of one entry.
 *
 * A tree-walking interpreter over the AST.  Compile-time values (ints,
 * floats, bools, strings, lists, batch-sized dims) are computed here; every
 * tensor operation becomes an IR node through ir_node_new, whose shape
 * inference reports mismatches (we add the location).  Loops unroll, calls
 * inline, `if` picks a branch.
 *
 * Scopes: frames of bindings (file -> model -> function call or entry); a
 * function's frame hangs off the frame it was defined in.  Blocks do not open
 * frames.  The parameter scope (e->scope) is a dotted path extended by scoped
 * calls; `param` declares "<scope>.<path>".
 *
 * Errors are reported where they happen and yield POISON, which every later
 * operation passes on silently.  Budgets (call depth, statements, nodes,
 * value memory, C stack) end the whole elaboration with one error.
 *
 * This file: frames, expressions, calls and statements.  elab_model.c runs a
 * model and its entry (fe_elaborate), values.c the arithmetic of values and
 * `--set`, elab_support.c errors, memory and node making.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/elab.h"

Value el_eval(Elab *e, Env *env, const AstNode *n);
Exec el_exec_block(Elab *e, Env *env, const AstList *stmts);

static int stack_ok(Elab *e, AstLoc loc) {
  char probe;
  uintptr_t here = (uintptr_t)&probe;
  uintptr_t used = here < e->stack_base ? e->stack_base - here : here - e->stack_base;
  if (used <= EL_MAX_STACK_BYTES) return 1;
  el_fatal(e, loc, "the program nests too deeply: stopping");
  return 0;
}

/* ---- frames ---------------------------------------------------------------- */

static uint64_t hash_str(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

/* Small frames are searched linearly; large ones (many distinct names) get a
 * hash index so that lookups in long loops stay cheap. */
enum { ENV_INDEX_FROM = 16 };

Binding *el_env_find_local(Env *env, const char *name) {
  if (!env->index) {
    for (int i = env->n - 1; i >= 0; i--)
      if (!strcmp(env->b[i].name, name)) return &env->b[i];
    return NULL;
  }
  size_t mask = (size_t)env->index_cap - 1;
  for (size_t j = hash_str(name) & mask; env->index[j]; j = (j + 1) & mask)
    if (!strcmp(env->b[env->index[j] - 1].name, name)) return &env->b[env->index[j] - 1];
  return NULL;
}

static void env_index_add(Env *env, int pos) {
  size_t mask = (size_t)env->index_cap - 1, j = hash_str(env->b[pos].name) & mask;
  while (env->index[j]) j = (j + 1) & mask;
  env->index[j] = pos + 1;
}

static Binding *env_find(Env *env, const char *name) {
  for (; env; env = env->parent) {
    Binding *b = el_env_find_local(env, name);
    if (b) return b;
  }
  return NULL;
}

void el_env_bind(Env *env, const char *name, Value v) {
  Binding *b = el_env_find_local(env, name);
  if (b) {
    b->v = v;
    return;
  }
  if (env->n == env->cap) {
    env->cap = env->cap ? 2 * env->cap : 8;
    env->b = xrealloc(env->b, (size_t)env->cap * sizeof *env->b);
  }
  env->b[env->n++] = (Binding){name, v};
  if (env->n >= ENV_INDEX_FROM && 2 * env->n > env->index_cap) {
    free(env->index);
    env->index_cap = env->index_cap ? 2 * env->index_cap : 4 * ENV_INDEX_FROM;
    env->index = xcalloc((size_t)env->index_cap, sizeof *env->index);
    for (int i = 0; i < env->n; i++) env_index_add(env, i);
  } else if (env->index) {
    env_index_add(env, env->n - 1);
  }
}

void el_env_free(Env *env) {
  free(env->b);
  free(env->index);
  env->b = NULL;
  env->index = NULL;
  env->n = env->cap = env->index_cap = 0;
}

/* The builtin a name in the tree refers to, if any.  Looked up once per
 * node and remembered in its (otherwise unused) `op` field: elaboration
 * revisits the same nodes in every loop iteration and call. */
static const ElBuiltin *builtin_of(const AstNode *n) {
  if (n->op == 0) ((AstNode *)n)->op = el_builtin_index(n->s) + 1; /* 0 = unknown: -1 + 1 */
  if (n->op == 0) ((AstNode *)n)->op = -1;
  return n->op > 0 ? el_builtin_at(n->op - 1) : NULL;
}

/* Names that cannot be bound: the builtins. */
int el_check_bindable(Elab *e, const AstNode *n, const char *what) {
  if (!builtin_of(n)) return 0;
  el_error(e, n->loc, "cannot use the builtin '%s' as a %s name", n->s, what);
  return -1;
}

/* ---- params: one node per name ---------------------------------------------- */


static IrNode **param_slot(ElParamMap *m, const char *key, int insert) {
  if (insert && 2 * (m->n + 1) > m->cap) {
    size_t cap = m->cap ? 2 * m->cap : 64;
    const char **k = xcalloc(cap, sizeof *k);
    IrNode **v = xcalloc(cap, sizeof *v);
    for (size_t i = 0; i < m->cap; i++) {
      if (!m->key[i]) continue;
      size_t j = hash_str(m->key[i]) & (cap - 1);
      while (k[j]) j = (j + 1) & (cap - 1);
      k[j] = m->key[i];
      v[j] = m->val[i];
    }
    free(m->key);
    free(m->val);
    m->key = k;
    m->val = v;
    m->cap = cap;
  }
  if (!m->cap) return NULL;
  size_t j = hash_str(key) & (m->cap - 1);
  while (m->key[j]) {
    if (!strcmp(m->key[j], key)) return &m->val[j];
    j = (j + 1) & (m->cap - 1);
  }
  if (!insert) return NULL;
  m->key[j] = key;
  m->n++;
  return &m->val[j];
}

/* ======================================================================== */
/* expressions                                                              */
/* ======================================================================== */

static int want_bool(Elab *e, AstLoc loc, Value v, const char *what) {
  if (v.k == V_BOOL) return 0;
  if (v.k != V_POISON)
    el_error(e, loc, "%s must be a bool (a compile-time value), got %s", what, el_describe(e, v));
  return -1;
}

static Value eval_binop(Elab *e, Env *env, const AstNode *n) {
  if (n->op == AST_OP_AND || n->op == AST_OP_OR) {
    Value a = el_eval(e, env, n->a);
    if (want_bool(e, n->a->loc, a, n->op == AST_OP_AND ? "the operand of 'and'" : "the operand of 'or'"))
      return el_poison();
    if (a.i == (n->op == AST_OP_OR)) return a; /* short circuit */
    Value b = el_eval(e, env, n->b);
    if (want_bool(e, n->b->loc, b, n->op == AST_OP_AND ? "the operand of 'and'" : "the operand of 'or'"))
      return el_poison();
    return b;
  }
  Value a = el_eval(e, env, n->a);
  Value b = el_eval(e, env, n->b);
  if (a.k == V_POISON || b.k == V_POISON || e->fatal) return el_poison();
  switch (n->op) {
  case AST_OP_EQ:
  case AST_OP_NE:
  case '<':
  case AST_OP_LE:
  case '>':
  case AST_OP_GE: return el_compare(e, n->loc, n->op, a, b);
  default: return el_arith(e, n->loc, n->op, a, b);
  }
}

static Value eval_unop(Elab *e, Env *env, const AstNode *n) {
  Value a = el_eval(e, env, n->a);
  if (a.k == V_POISON) return a;
  if (n->op == AST_OP_NOT) {
    if (want_bool(e, n->a->loc, a, "the operand of 'not'")) return el_poison();
    return el_bool(!a.i);
  }
  switch (a.k) {
  case V_INT:
    if (a.i == INT64_MIN) {
      el_error(e, n->loc, "integer overflow in -(%" PRId64 ")", a.i);
      return el_poison();
    }
    return el_int(-a.i);
  case V_FLOAT: return el_float(-a.f);
  case V_TENSOR: return el_node(e, n->loc, IR_NEG, 1, &a.t, NULL);
  default:
    el_error(e, n->loc, "cannot negate %s", el_describe(e, a));
    return el_poison();
  }
}

static Value eval_index(Elab *e, Env *env, const AstNode *n) {
  Value a = el_eval(e, env, n->a);
  Value i = el_eval(e, env, n->b);
  if (a.k == V_POISON || i.k == V_POISON) return el_poison();
  if (a.k != V_LIST) {
    el_error(e, n->loc, "cannot index %s%s", el_describe(e, a),
             a.k == V_TENSOR ? " (use slice, chunk or reshape on tensors)" : "");
    return el_poison();
  }
  if (i.k != V_INT) {
    el_error(e, n->b->loc, "a list index must be an int, got %s", el_describe(e, i));
    return el_poison();
  }
  int64_t k = i.i < 0 ? i.i + a.l->n : i.i;
  if (k < 0 || k >= a.l->n) {
    el_error(e, n->b->loc, "index %" PRId64 " out of range for a list of %d", i.i, a.l->n);
    return el_poison();
  }
  return a.l->v[k];
}

static Value eval_list(Elab *e, Env *env, const AstNode *n) {
  ElList *l = el_list_new(e, n->loc, n->l1->n);
  if (!l) return el_poison();
  int poisoned = 0;
  for (int i = 0; i < n->l1->n; i++) {
    l->v[i] = el_eval(e, env, n->l1->v[i]);
    poisoned |= l->v[i].k == V_POISON;
  }
  return poisoned ? el_poison() : el_list_value(l);
}

static Value lookup(Elab *e, Env *env, const AstNode *n) {
  Binding *b = env_find(env, n->s);
  if (b) return b->v;
  if (builtin_of(n))
    el_error(e, n->loc, "the builtin '%s' can only be called", n->s);
  else
    el_error(e, n->loc, "undefined name '%s'", n->s);
  el_env_bind(env, n->s, el_poison()); /* report it once per frame */
  return el_poison();
}

/* ---- paths and params ------------------------------------------------------ */

/* scope + "." + path, evaluating `[expr]` segments (ints >= 0 or names);
 * NULL (reported) on error. */
static const char *path_join(Elab *e, Env *env, const char *scope, const AstList *path) {
  size_t cap = strlen(scope) + 1;
  for (int i = 0; i < path->n; i++) {
    const AstNode *seg = path->v[i];
    cap += 1 + (seg->kind == AST_SEG_NAME ? strlen(seg->s) : 24);
  }
  const char **parts = xcalloc((size_t)path->n + 1, sizeof *parts);
  int ok = 1;
  for (int i = 0; i < path->n; i++) {
    const AstNode *seg = path->v[i];
    if (seg->kind == AST_SEG_NAME) {
      parts[i] = seg->s;
      continue;
    }
    Value v = el_eval(e, env, seg->a);
    if (v.k == V_INT && v.i >= 0) {
      parts[i] = arena_printf(&e->arena, "%" PRId64, v.i);
    } else if (v.k == V_STR && v.s[0] && !strchr(v.s, '.')) {
      parts[i] = v.s;
      cap += strlen(v.s);
    } else {
      if (v.k != V_POISON)
        el_error(e, seg->a->loc, "a path segment must be an int >= 0 or a name, got %s",
                 el_describe(e, v));
      ok = 0;
    }
  }
  char *buf = ok ? el_alloc(e, path->n ? path->v[0]->loc : (AstLoc){0, 0}, cap) : NULL;
  if (buf) {
    size_t used = strlen(scope);
    memcpy(buf, scope, used);
    for (int i = 0; i < path->n; i++) {
      size_t l = strlen(parts[i]);
      if (used) buf[used++] = '.';
      memcpy(buf + used, parts[i], l);
      used += l;
    }
    buf[used] = 0;
  }
  free(parts);
  return buf;
}

/* A size in a shape: an int >= 0, or a dim where allowed. */
static int eval_dim(Elab *e, Env *env, const AstNode *n, int allow_batch, IrDim *out) {
  Value v = el_eval(e, env, n);
  if (v.k == V_POISON) return -1;
  if (v.k == V_INT && v.i >= 1 && v.i <= INT32_MAX) {
    *out = v.i;
    return 0;
  }
  if (v.k == V_DIM && allow_batch && v.i >= -(int64_t)INT32_MAX) {
    *out = v.i;
    return 0;
  }
  if (v.k == V_DIM)
    el_error(e, n->loc, "%s", allow_batch ? "batch multiple too large" : "a parameter's shape cannot depend on the batch B");
  else
    el_error(e, n->loc, "a dimension must be an int in 1..%d%s, got %s%s", INT32_MAX,
             allow_batch ? " or a multiple of B" : "", el_describe(e, v),
             v.k == V_INT ? arena_printf(&e->arena, " %" PRId64, v.i) : "");
  return -1;
}

int el_eval_shape(Elab *e, Env *env, const AstList *dims, int allow_batch, AstLoc loc,
                      IrShape *s) {
  if (dims->n > IR_MAX_RANK) {
    el_error(e, loc, "rank %d is more than the IR's limit of %d", dims->n, IR_MAX_RANK);
    return -1;
  }
  int bad = 0;
  s->rank = dims->n;
  for (int i = 0; i < dims->n; i++) bad |= eval_dim(e, env, dims->v[i], allow_batch, &s->d[i]);
  return bad ? -1 : 0;
}

/* param path[dims] [default expr] */
static Value eval_param(Elab *e, Env *env, const AstNode *n) {
  const char *name = path_join(e, env, e->scope, n->l1);
  IrShape s = {0};
  int bad = el_eval_shape(e, env, n->l2, 0, n->loc, &s);
  Value def = n->a ? el_eval(e, env, n->a) : el_none();
  if (!name || bad || def.k == V_POISON || e->fatal) return el_poison();
  char b1[128], b2[128];
  IrNode **slot = param_slot(&e->params, name, 0);
  IrNode *p = slot ? *slot : NULL;
  if (p && !ir_shape_eq(&p->shape, &s)) {
    el_error(e, n->loc, "param '%s' declared again with shape %s (it was %s at line %d)", name,
             ir_shape_str(&s, b1, sizeof b1), ir_shape_str(&p->shape, b2, sizeof b2), p->loc.line);
    return el_poison();
  }
  if (def.k != V_NONE) {
    if (def.k != V_TENSOR || def.t->op != IR_CONST || def.t->dtype != IR_F32) {
      el_error(e, n->a->loc,
               "the default of param '%s' must be a constant tensor (e.g. sincos_pos_embed_2d, "
               "constant), got %s",
               name, def.k == V_TENSOR ? arena_printf(&e->arena, "a computed %s", el_describe(e, def))
                                       : el_describe(e, def));
      return el_poison();
    }
    if (!ir_shape_eq(&def.t->shape, &s)) {
      el_error(e, n->a->loc, "the default of param '%s' has shape %s, the param %s", name,
               ir_shape_str(&def.t->shape, b1, sizeof b1), ir_shape_str(&s, b2, sizeof b2));
      return el_poison();
    }
  }
  if (!p) {
    if (el_check_nodes(e, n->loc)) return el_poison();
    p = ir_param(e->g, name, IR_F32, s, el_irloc(e, n->loc));
    *param_slot(&e->params, p->name, 1) = p;
  }
  if (def.k == V_TENSOR && !p->data) {
    size_t bytes = (size_t)ir_shape_numel(&s, 1) * sizeof(float);
    p->data = arena_alloc(&e->g->arena, bytes);
    memcpy(p->data, def.t->data, bytes);
  }
  return el_tensor(p);
}

/* ---- calls ------------------------------------------------------------------ */

int el_type_ok(Value *v, const char *type) {
  if (!type || v->k == V_POISON) return 1;
  if (!strcmp(type, "int")) return v->k == V_INT || v->k == V_DIM;
  if (!strcmp(type, "float")) {
    if (v->k == V_INT) *v = el_float((double)v->i);
    return v->k == V_FLOAT;
  }
  if (!strcmp(type, "bool")) return v->k == V_BOOL;
  if (!strcmp(type, "str")) return v->k == V_STR;
  if (!strcmp(type, "tensor")) return v->k == V_TENSOR;
  if (!strcmp(type, "list")) return v->k == V_LIST;
  return 1; /* unknown types are reported where they are declared */
}

int el_known_type(const char *type) {
  return !type || !strcmp(type, "int") || !strcmp(type, "float") || !strcmp(type, "bool") ||
         !strcmp(type, "str") || !strcmp(type, "tensor") || !strcmp(type, "list");
}

static Value call_user(Elab *e, const AstNode *call, ElFn *fn, const Value *pos,
                       const AstNode *const *pos_node, int n_pos, const char *const *kw_names,
                       const Value *kw, const AstNode *const *kw_node, int n_kw) {
  const AstNode *def = fn->def;
  const AstList *params = def->l1;
  if (e->depth >= EL_MAX_CALL_DEPTH) {
    el_fatal(e, call->loc, "call depth limit (%d) exceeded calling '%s': unbounded recursion?",
             EL_MAX_CALL_DEPTH, def->s);
    return el_poison();
  }
  if (n_pos > params->n) {
    el_error(e, call->loc, "%s() takes %d argument%s, got %d", def->s, params->n,
             params->n == 1 ? "" : "s", n_pos);
    return el_poison();
  }
  Env frame = {.parent = fn->env};
  int bad = 0;
  unsigned char *given = xcalloc((size_t)params->n + 1, 1);
  for (int i = 0; i < n_pos; i++) {
    el_env_bind(&frame, params->v[i]->s, pos[i]);
    given[i] = 1;
  }
  for (int k = 0; k < n_kw; k++) {
    int j = 0;
    while (j < params->n && strcmp(params->v[j]->s, kw_names[k])) j++;
    if (j == params->n) {
      el_error(e, kw_node[k]->loc, "%s() has no parameter named '%s'", def->s, kw_names[k]);
      bad = 1;
    } else if (given[j]) {
      el_error(e, kw_node[k]->loc, "%s() got two values for '%s'", def->s, kw_names[k]);
      bad = 1;
    } else {
      el_env_bind(&frame, params->v[j]->s, kw[k]);
      given[j] = 1;
    }
  }
  int poisoned = 0;
  for (int j = 0; j < params->n && !bad; j++) {
    const AstNode *p = params->v[j];
    if (!given[j]) {
      if (!p->a) {
        el_error(e, call->loc, "%s() is missing the argument '%s'", def->s, p->s);
        bad = 1;
        break;
      }
      el_env_bind(&frame, p->s, el_eval(e, &frame, p->a)); /* defaults see earlier arguments */
    }
    Binding *b = el_env_find_local(&frame, p->s);
    if (!el_type_ok(&b->v, p->s2)) {
      const AstNode *at = j < n_pos ? pos_node[j] : call;
      for (int k = 0; k < n_kw; k++)
        if (!strcmp(kw_names[k], p->s)) at = kw_node[k];
      el_error(e, at->loc, "argument '%s' of %s() must be %s, got %s", p->s, def->s, p->s2,
               el_describe(e, b->v));
      bad = 1;
    }
    poisoned |= b->v.k == V_POISON;
  }
  free(given);
  Value result = el_poison();
  if (!bad && !poisoned && !e->fatal) {
    e->calls[e->depth++] = call;
    Exec x = el_exec_block(e, &frame, def->l2);
    e->depth--;
    result = x == EX_RETURN ? e->ret : x == EX_OK ? el_none() : el_poison();
  }
  el_env_free(&frame);
  return result;
}

static Value eval_call(Elab *e, Env *env, const AstNode *n) {
  if (!stack_ok(e, n->loc)) return el_poison();
  int nargs = n->l1->n;
  Value pos[EL_MAX_ARGS], kw[EL_MAX_ARGS];
  const AstNode *pos_node[EL_MAX_ARGS], *kw_node[EL_MAX_ARGS];
  const char *kw_names[EL_MAX_ARGS];
  Value vals[2 * EL_MAX_ARGS];
  int n_pos = 0, n_kw = 0, bad = 0, poisoned = 0;
  if (nargs > 2 * EL_MAX_ARGS) {
    el_error(e, n->loc, "too many arguments (the limit is %d)", EL_MAX_ARGS);
    return el_poison();
  }
  /* Every argument is evaluated, for its errors, even if the call is bad. */
  for (int i = 0; i < nargs; i++) {
    const AstNode *a = n->l1->v[i];
    vals[i] = el_eval(e, env, a->kind == AST_KWARG ? a->a : a);
    poisoned |= vals[i].k == V_POISON;
  }
  for (int i = 0; i < nargs && !bad; i++) {
    const AstNode *a = n->l1->v[i];
    if (a->kind == AST_KWARG) {
      for (int k = 0; k < n_kw; k++)
        if (!strcmp(kw_names[k], a->s)) {
          el_error(e, a->loc, "argument '%s' given twice", a->s);
          bad = 1;
        }
      if (n_kw == EL_MAX_ARGS) {
        el_error(e, a->loc, "too many arguments (the limit is %d)", EL_MAX_ARGS);
        bad = 1;
        break;
      }
      kw_names[n_kw] = a->s;
      kw_node[n_kw] = a;
      kw[n_kw++] = vals[i];
    } else {
      if (n_kw) {
        el_error(e, a->loc, "a positional argument cannot follow a named one");
        bad = 1;
        break;
      }
      if (n_pos == EL_MAX_ARGS) {
        el_error(e, a->loc, "too many arguments (the limit is %d)", EL_MAX_ARGS);
        bad = 1;
        break;
      }
      pos_node[n_pos] = a;
      pos[n_pos++] = vals[i];
    }
  }
  if (bad || e->fatal) return el_poison();

  const char *outer = e->scope;
  if (n->l2) {
    const char *scope = path_join(e, env, e->scope, n->l2);
    if (!scope) return el_poison();
    e->scope = scope;
  }
  Value result;
  const ElBuiltin *b = builtin_of(n);
  if (b) {
    result = poisoned ? el_poison()
                      : el_builtin_call(e, b, n, pos, pos_node, n_pos, kw_names, kw, kw_node, n_kw);
  } else {
    Binding *fb = env_find(env, n->s);
    if (!fb) {
      el_error(e, n->loc, "undefined function '%s'", n->s);
      el_env_bind(env, n->s, el_poison());
      result = el_poison();
    } else if (fb->v.k == V_POISON) {
      result = el_poison();
    } else if (fb->v.k != V_FN) {
      el_error(e, n->loc, "'%s' is %s, not a function", n->s, el_describe(e, fb->v));
      result = el_poison();
    } else {
      result = call_user(e, n, fb->v.fn, pos, pos_node, n_pos, kw_names, kw, kw_node, n_kw);
    }
  }
  e->scope = outer;
  return result;
}

Value el_eval(Elab *e, Env *env, const AstNode *n) {
  if (e->fatal || !n) return el_poison();
  switch (n->kind) {
  case AST_INT: return el_int(n->i);
  case AST_FLOAT: return el_float(n->f);
  case AST_STR: return el_str(n->s);
  case AST_BOOL: return el_bool((int)n->i);
  case AST_NONE: return el_none();
  case AST_NAME: return lookup(e, env, n);
  case AST_LIST: return eval_list(e, env, n);
  case AST_BINOP:
    if (!stack_ok(e, n->loc)) return el_poison();
    return eval_binop(e, env, n);
  case AST_UNOP:
    if (!stack_ok(e, n->loc)) return el_poison();
    return eval_unop(e, env, n);
  case AST_INDEX: return eval_index(e, env, n);
  case AST_CALL: return eval_call(e, env, n);
  case AST_PARAM: return eval_param(e, env, n);
  default: ditc_unreachable();
  }
}

/* ======================================================================== */
/* statements                                                               */
/* ======================================================================== */

static Exec exec_assign(Elab *e, Env *env, const AstNode *s) {
  Value v = el_eval(e, env, s->a);
  if (e->fatal) return EX_STOP;
  const AstList *t = s->l1;
  for (int i = 0; i < t->n; i++)
    if (el_check_bindable(e, t->v[i], "variable")) v = el_poison();
  if (t->n == 1) {
    el_env_bind(env, t->v[0]->s, v);
    return EX_OK;
  }
  if (v.k != V_POISON && (v.k != V_LIST || v.l->n != t->n)) {
    el_error(e, s->loc, "cannot unpack %s into %d names", el_describe(e, v), t->n);
    v = el_poison();
  }
  for (int i = 0; i < t->n; i++) el_env_bind(env, t->v[i]->s, v.k == V_POISON ? v : v.l->v[i]);
  return EX_OK;
}

static Exec exec_return(Elab *e, Env *env, const AstNode *s) {
  const AstList *l = s->l1;
  if (l->n == 1) {
    e->ret = el_eval(e, env, l->v[0]);
  } else {
    ElList *t = el_list_new(e, s->loc, l->n);
    int poisoned = !t;
    for (int i = 0; i < l->n; i++) {
      Value v = el_eval(e, env, l->v[i]);
      poisoned |= v.k == V_POISON;
      if (t) t->v[i] = v;
    }
    e->ret = poisoned ? el_poison() : el_list_value(t);
  }
  e->ret_stmt = s; /* after the values: calls in them run returns of their own */
  return e->fatal ? EX_STOP : EX_RETURN;
}

Exec el_exec_stmt(Elab *e, Env *env, const AstNode *s);

static Exec exec_if(Elab *e, Env *env, const AstNode *s) {
  Value c = el_eval(e, env, s->a);
  if (e->fatal) return EX_STOP;
  if (want_bool(e, s->a->loc, c, "the condition of 'if'")) return EX_OK;
  if (c.i) return el_exec_block(e, env, s->l1);
  if (!s->b) return EX_OK;
  if (s->b->kind == AST_IF) return el_exec_stmt(e, env, s->b);
  return el_exec_block(e, env, s->b->l1);
}

static int want_int(Elab *e, AstLoc loc, Value v, const char *what, int64_t *out) {
  if (v.k == V_INT) {
    *out = v.i;
    return 0;
  }
  if (v.k != V_POISON) el_error(e, loc, "%s must be an int, got %s", what, el_describe(e, v));
  return -1;
}

static Exec exec_for(Elab *e, Env *env, const AstNode *s) {
  int64_t lo = 0, hi = 0;
  Value a = el_eval(e, env, s->a), b = el_eval(e, env, s->b);
  if (e->fatal) return EX_STOP;
  int bad = want_int(e, s->a->loc, a, "the start of a 'for' range", &lo);
  bad |= want_int(e, s->b->loc, b, "the end of a 'for' range", &hi);
  if (el_check_bindable(e, s, "loop variable") || bad) return EX_OK;
  for (int64_t i = lo; i < hi; i++) {
    /* the body's statements count; an empty body counts its iterations */
    if (s->l1->n == 0 && ++e->stmts > EL_MAX_STMTS) {
      el_fatal(e, s->loc, "more than %d statements elaborated: stopping (an endless loop?)",
               EL_MAX_STMTS);
      return EX_STOP;
    }
    el_env_bind(env, s->s, el_int(i));
    Exec x = el_exec_block(e, env, s->l1);
    if (x != EX_OK) return x;
  }
  return EX_OK;
}

static Exec exec_assert(Elab *e, Env *env, const AstNode *s) {
  Value c = el_eval(e, env, s->a);
  if (e->fatal) return EX_STOP;
  if (want_bool(e, s->a->loc, c, "an assertion") || c.i) return EX_OK;
  if (!s->b) {
    el_error(e, s->loc, "assertion failed");
    return EX_OK;
  }
  Value m = el_eval(e, env, s->b);
  if (m.k == V_STR)
    el_error(e, s->loc, "assertion failed: %s", m.s);
  else if (m.k != V_POISON)
    el_error(e, s->b->loc, "assertion failed (and its message is %s, not a str)", el_describe(e, m));
  return e->fatal ? EX_STOP : EX_OK;
}

Exec el_exec_stmt(Elab *e, Env *env, const AstNode *s) {
  if (e->fatal) return EX_STOP;
  if (++e->stmts > EL_MAX_STMTS) {
    el_fatal(e, s->loc, "more than %d statements elaborated: stopping (an endless loop?)",
             EL_MAX_STMTS);
    return EX_STOP;
  }
  if (!stack_ok(e, s->loc)) return EX_STOP;
  switch (s->kind) {
  case AST_ASSIGN: return exec_assign(e, env, s);
  case AST_RETURN: return exec_return(e, env, s);
  case AST_IF: return exec_if(e, env, s);
  case AST_FOR: return exec_for(e, env, s);
  case AST_ASSERT: return exec_assert(e, env, s);
  case AST_EXPR_STMT:
    el_eval(e, env, s->a);
    return e->fatal ? EX_STOP : EX_OK;
  case AST_FN:
  case AST_ENTRY:
    return EX_OK; /* model items; handled by the model */
  default: ditc_unreachable();
  }
}

Exec el_exec_block(Elab *e, Env *env, const AstList *stmts) {
  for (int i = 0; i < stmts->n; i++) {
    Exec x = el_exec_stmt(e, env, stmts->v[i]);
    if (x != EX_OK) return x;
  }
  return EX_OK;
}
