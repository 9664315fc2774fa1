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
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/elab.h"

typedef enum { EX_OK, EX_RETURN, EX_STOP } Exec;

static Value eval(Elab *e, Env *env, const AstNode *n);
static Exec exec_block(Elab *e, Env *env, const AstList *stmts);

/* ======================================================================== */
/* errors, memory, small helpers                                            */
/* ======================================================================== */

/* Where an error inside functions came from: the calls in progress,
 * innermost first (a few; deep recursion is summarised). */
static void call_notes(Elab *e) {
  enum { SHOWN = 4 };
  for (int i = e->depth - 1, k = 0; i >= 0; i--, k++) {
    const AstNode *c = e->calls[i];
    if (k == SHOWN && i > 0) {
      fe_note(e->diag, e->src, c->loc.line, c->loc.col, "... and %d more calls", i + 1);
      break;
    }
    fe_note(e->diag, e->src, c->loc.line, c->loc.col, "in the call of '%s' here", c->s);
  }
}

void el_error(Elab *e, AstLoc loc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fe_verror(e->diag, e->src, loc.line, loc.col, fmt, ap);
  va_end(ap);
  call_notes(e);
  if (e->diag->stop) e->fatal = 1;
}

void el_fatal(Elab *e, AstLoc loc, const char *fmt, ...) {
  if (e->fatal) return;
  va_list ap;
  va_start(ap, fmt);
  fe_verror(e->diag, e->src, loc.line, loc.col, fmt, ap);
  va_end(ap);
  call_notes(e);
  e->fatal = 1;
}

void *el_alloc(Elab *e, AstLoc loc, size_t n) {
  if (n > EL_MAX_VALUE_BYTES || e->bytes + n > EL_MAX_VALUE_BYTES) {
    el_fatal(e, loc, "compile-time values need more than %zu MiB: stopping",
             EL_MAX_VALUE_BYTES >> 20);
    return NULL;
  }
  e->bytes += n;
  return arena_alloc(&e->arena, n);
}

ElList *el_list_new(Elab *e, AstLoc loc, int n) {
  if (n < 0) n = 0;
  ElList *l = el_alloc(e, loc, sizeof(ElList) + (size_t)n * sizeof(Value));
  if (l) l->n = n;
  return l;
}

const char *el_kind_name(VKind k) {
  switch (k) {
  case V_UNSET: return "nothing";
  case V_POISON: return "an error";
  case V_NONE: return "none";
  case V_INT: return "int";
  case V_FLOAT: return "float";
  case V_BOOL: return "bool";
  case V_STR: return "str";
  case V_LIST: return "list";
  case V_DIM: return "dim";
  case V_TENSOR: return "tensor";
  case V_FN: return "function";
  }
  return "?";
}

const char *el_describe(Elab *e, Value v) {
  char buf[160];
  switch (v.k) {
  case V_TENSOR:
    return arena_printf(&e->arena, "tensor %s%s", ir_dtype_name(v.t->dtype),
                        ir_shape_str(&v.t->shape, buf, sizeof buf));
  case V_LIST: return arena_printf(&e->arena, "list of %d", v.l->n);
  case V_DIM: return arena_printf(&e->arena, "dim %s", ir_dim_str(v.i, buf, sizeof buf));
  default: return el_kind_name(v.k);
  }
}

IrLoc el_irloc(Elab *e, AstLoc loc) { return (IrLoc){e->file, loc.line, loc.col}; }

int el_check_nodes(Elab *e, AstLoc loc) {
  if (e->g->n_nodes < EL_MAX_NODES) return 0;
  el_fatal(e, loc, "the graph has more than %d nodes: stopping", EL_MAX_NODES);
  return -1;
}

/* The scope as a node label, copied into the graph once per scope string. */
static const char *scope_label(Elab *e) {
  if (!e->scope[0]) return NULL;
  if (e->label_of != e->scope) {
    e->label_of = e->scope;
    e->label_copy = arena_strdup(&e->g->arena, e->scope);
  }
  return e->label_copy;
}

Value el_node(Elab *e, AstLoc loc, IrOp op, int n_in, IrNode *const *in, const IrAttrs *at) {
  if (el_check_nodes(e, loc)) return el_poison();
  /* wide nodes (concat of many inputs) are memory too */
  size_t in_bytes = (size_t)n_in * sizeof(IrNode *);
  if (n_in > 3 && !el_alloc(e, loc, in_bytes)) return el_poison();
  IrErr err;
  IrNode *n = ir_node_new(e->g, op, n_in, in, at, el_irloc(e, loc), &err);
  if (!n) {
    el_error(e, loc, "%s", err.msg);
    return el_poison();
  }
  n->name = scope_label(e);
  return el_tensor(n);
}

Value el_const_f32(Elab *e, AstLoc loc, IrShape s, const float *data) {
  if (el_check_nodes(e, loc)) return el_poison();
  IrNode *n = ir_const(e->g, IR_F32, s, data, el_irloc(e, loc));
  n->name = scope_label(e);
  return el_tensor(n);
}

/* Guards the recursion: the C stack, not only the call depth, is bounded. */
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

static Binding *env_find_local(Env *env, const char *name) {
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
    Binding *b = env_find_local(env, name);
    if (b) return b;
  }
  return NULL;
}

static void env_bind(Env *env, const char *name, Value v) {
  Binding *b = env_find_local(env, name);
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

static void env_free(Env *env) {
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
static int check_bindable(Elab *e, const AstNode *n, const char *what) {
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
    Value a = eval(e, env, n->a);
    if (want_bool(e, n->a->loc, a, n->op == AST_OP_AND ? "the operand of 'and'" : "the operand of 'or'"))
      return el_poison();
    if (a.i == (n->op == AST_OP_OR)) return a; /* short circuit */
    Value b = eval(e, env, n->b);
    if (want_bool(e, n->b->loc, b, n->op == AST_OP_AND ? "the operand of 'and'" : "the operand of 'or'"))
      return el_poison();
    return b;
  }
  Value a = eval(e, env, n->a);
  Value b = eval(e, env, n->b);
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
  Value a = eval(e, env, n->a);
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
  Value a = eval(e, env, n->a);
  Value i = eval(e, env, n->b);
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
    l->v[i] = eval(e, env, n->l1->v[i]);
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
  env_bind(env, n->s, el_poison()); /* report it once per frame */
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
    Value v = eval(e, env, seg->a);
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
  Value v = eval(e, env, n);
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

static int eval_shape(Elab *e, Env *env, const AstList *dims, int allow_batch, AstLoc loc,
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
  int bad = eval_shape(e, env, n->l2, 0, n->loc, &s);
  Value def = n->a ? eval(e, env, n->a) : el_none();
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

static int type_ok(Value *v, const char *type) {
  if (!type || v->k == V_POISON) return 1;
  if (!strcmp(type, "int")) return v->k == V_INT || v->k == V_DIM;
  if (!strcmp(type, "float")) {
    if (v->k == V_INT) *v = el_float((double)v->i);
    return v->k == V_FLOAT;
  }
  if (!strcmp(type, "bool")) return v->k == V_BOOL;
  if (!strcmp(type, "str")) return v->k == V_STR;
  if (!strcmp(type, "tensor")) return v->k == V_TENSOR;
  return 1; /* unknown types are reported where they are declared */
}

static int known_type(const char *type) {
  return !type || !strcmp(type, "int") || !strcmp(type, "float") || !strcmp(type, "bool") ||
         !strcmp(type, "str") || !strcmp(type, "tensor");
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
    env_bind(&frame, params->v[i]->s, pos[i]);
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
      env_bind(&frame, params->v[j]->s, kw[k]);
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
      env_bind(&frame, p->s, eval(e, &frame, p->a)); /* defaults see earlier arguments */
    }
    Binding *b = env_find_local(&frame, p->s);
    if (!type_ok(&b->v, p->s2)) {
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
    Exec x = exec_block(e, &frame, def->l2);
    e->depth--;
    result = x == EX_RETURN ? e->ret : x == EX_OK ? el_none() : el_poison();
  }
  env_free(&frame);
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
    vals[i] = eval(e, env, a->kind == AST_KWARG ? a->a : a);
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
      env_bind(env, n->s, el_poison());
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

static Value eval(Elab *e, Env *env, const AstNode *n) {
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
  Value v = eval(e, env, s->a);
  if (e->fatal) return EX_STOP;
  const AstList *t = s->l1;
  for (int i = 0; i < t->n; i++)
    if (check_bindable(e, t->v[i], "variable")) v = el_poison();
  if (t->n == 1) {
    env_bind(env, t->v[0]->s, v);
    return EX_OK;
  }
  if (v.k != V_POISON && (v.k != V_LIST || v.l->n != t->n)) {
    el_error(e, s->loc, "cannot unpack %s into %d names", el_describe(e, v), t->n);
    v = el_poison();
  }
  for (int i = 0; i < t->n; i++) env_bind(env, t->v[i]->s, v.k == V_POISON ? v : v.l->v[i]);
  return EX_OK;
}

static Exec exec_return(Elab *e, Env *env, const AstNode *s) {
  const AstList *l = s->l1;
  if (l->n == 1) {
    e->ret = eval(e, env, l->v[0]);
  } else {
    ElList *t = el_list_new(e, s->loc, l->n);
    int poisoned = !t;
    for (int i = 0; i < l->n; i++) {
      Value v = eval(e, env, l->v[i]);
      poisoned |= v.k == V_POISON;
      if (t) t->v[i] = v;
    }
    e->ret = poisoned ? el_poison() : el_list_value(t);
  }
  e->ret_stmt = s; /* after the values: calls in them run returns of their own */
  return e->fatal ? EX_STOP : EX_RETURN;
}

static Exec exec_stmt(Elab *e, Env *env, const AstNode *s);

static Exec exec_if(Elab *e, Env *env, const AstNode *s) {
  Value c = eval(e, env, s->a);
  if (e->fatal) return EX_STOP;
  if (want_bool(e, s->a->loc, c, "the condition of 'if'")) return EX_OK;
  if (c.i) return exec_block(e, env, s->l1);
  if (!s->b) return EX_OK;
  if (s->b->kind == AST_IF) return exec_stmt(e, env, s->b);
  return exec_block(e, env, s->b->l1);
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
  Value a = eval(e, env, s->a), b = eval(e, env, s->b);
  if (e->fatal) return EX_STOP;
  int bad = want_int(e, s->a->loc, a, "the start of a 'for' range", &lo);
  bad |= want_int(e, s->b->loc, b, "the end of a 'for' range", &hi);
  if (check_bindable(e, s, "loop variable") || bad) return EX_OK;
  for (int64_t i = lo; i < hi; i++) {
    /* the body's statements count; an empty body counts its iterations */
    if (s->l1->n == 0 && ++e->stmts > EL_MAX_STMTS) {
      el_fatal(e, s->loc, "more than %d statements elaborated: stopping (an endless loop?)",
               EL_MAX_STMTS);
      return EX_STOP;
    }
    env_bind(env, s->s, el_int(i));
    Exec x = exec_block(e, env, s->l1);
    if (x != EX_OK) return x;
  }
  return EX_OK;
}

static Exec exec_assert(Elab *e, Env *env, const AstNode *s) {
  Value c = eval(e, env, s->a);
  if (e->fatal) return EX_STOP;
  if (want_bool(e, s->a->loc, c, "an assertion") || c.i) return EX_OK;
  if (!s->b) {
    el_error(e, s->loc, "assertion failed");
    return EX_OK;
  }
  Value m = eval(e, env, s->b);
  if (m.k == V_STR)
    el_error(e, s->loc, "assertion failed: %s", m.s);
  else if (m.k != V_POISON)
    el_error(e, s->b->loc, "assertion failed (and its message is %s, not a str)", el_describe(e, m));
  return e->fatal ? EX_STOP : EX_OK;
}

static Exec exec_stmt(Elab *e, Env *env, const AstNode *s) {
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
    eval(e, env, s->a);
    return e->fatal ? EX_STOP : EX_OK;
  case AST_FN:
  case AST_ENTRY:
    return EX_OK; /* model items; handled by the model */
  default: ditc_unreachable();
  }
}

static Exec exec_block(Elab *e, Env *env, const AstList *stmts) {
  for (int i = 0; i < stmts->n; i++) {
    Exec x = exec_stmt(e, env, stmts->v[i]);
    if (x != EX_OK) return x;
  }
  return EX_OK;
}

/* ======================================================================== */
/* functions, models, entries                                               */
/* ======================================================================== */

static void check_params(Elab *e, const AstList *params, const char *what) {
  for (int i = 0; i < params->n; i++) {
    const AstNode *p = params->v[i];
    if (!known_type(p->s2))
      el_error(e, p->loc, "unknown type '%s' (types: int, float, bool, str, tensor)", p->s2);
    check_bindable(e, p, what);
    for (int j = 0; j < i; j++)
      if (!strcmp(params->v[j]->s, p->s)) el_error(e, p->loc, "parameter '%s' declared twice", p->s);
  }
}

static void define_fn(Elab *e, Env *env, const AstNode *def) {
  if (check_bindable(e, def, "function")) return;
  check_params(e, def->l1, "parameter");
  ElFn *fn = el_alloc(e, def->loc, sizeof *fn);
  if (!fn) return;
  fn->def = def;
  fn->env = env;
  env_bind(env, def->s, (Value){.k = V_FN, .fn = fn});
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
static int parse_setting(Elab *e, const AstNode *p, const FeSetting *set, Value *out) {
  const char *type = p->s2, *v = set->value;
  char *end;
  if (!type) {
    if (p->a && p->a->kind == AST_INT) type = "int";
    else if (p->a && p->a->kind == AST_FLOAT) type = "float";
    else if (p->a && p->a->kind == AST_BOOL) type = "bool";
    else if (p->a && p->a->kind == AST_STR) type = "str";
  }
  int want_int = !type || !strcmp(type, "int"), want_float = !type || !strcmp(type, "float");
  if (want_int && *v) {
    errno = 0;
    long long i = strtoll(v, &end, 10);
    if (!*end && errno == 0) {
      *out = el_int(i);
      return 0;
    }
  }
  if (want_float && *v) {
    errno = 0;
    double f = strtod(v, &end);
    if (!*end && isfinite(f)) {
      *out = el_float(f);
      return 0;
    }
  }
  if (!type || !strcmp(type, "bool")) {
    if (!strcmp(v, "true") || !strcmp(v, "1")) return *out = el_bool(1), 0;
    if (!strcmp(v, "false") || !strcmp(v, "0")) return *out = el_bool(0), 0;
  }
  if (!type || !strcmp(type, "str")) {
    *out = el_str(arena_strdup(&e->arena, v));
    return 0;
  }
  fe_error_at(e->diag, e->src->file, "--set %s=%s: '%s' is not %s %s", set->name, set->value, v,
              !strcmp(type, "int") ? "an" : "a", type);
  return -1;
}

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
      if (parse_setting(e, p, set, &v)) v = el_poison();
    } else if (from_config) {
      v = eval(e, genv, from_config->a);
      loc = from_config->a->loc;
    } else if (p->a) {
      v = eval(e, menv, p->a);
      loc = p->a->loc;
    } else {
      el_error(e, p->loc, "model parameter '%s' has no default and no value was given", p->s);
      v = el_poison();
    }
    if (!type_ok(&v, p->s2)) {
      if (set)
        fe_error_at(e->diag, e->src->file, "--set %s=%s: '%s' is not %s", set->name, set->value,
                    set->value, p->s2);
      else
        el_error(e, loc, "model parameter '%s' must be %s, got %s", p->s, p->s2, el_describe(e, v));
      v = el_poison();
    }
    env_bind(menv, p->s, v);
  }
  return e->diag->n_errors - errors;
}

/* The model's scalar parameters, for FeModel. */
static void export_params(Elab *e, Env *menv, const AstNode *model, FeModel *out) {
  out->params = arena_alloc(&out->arena, (size_t)(model->l1->n + 1) * sizeof *out->params);
  for (int j = 0; j < model->l1->n; j++) {
    const char *name = model->l1->v[j]->s;
    Binding *b = env_find_local(menv, name);
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
  (void)e;
}

static int elab_entry(Elab *e, Env *menv, const AstNode *entry) {
  Env frame = {.parent = menv};
  env_bind(&frame, "B", el_size(IR_BATCH));
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
    if (eval_shape(e, &frame, in->l1, 1, in->loc, &s)) ok = 0;
    for (int j = 0; j < i; j++)
      if (!strcmp(entry->l1->v[j]->s, in->s)) {
        el_error(e, in->loc, "input '%s' declared twice", in->s);
        ok = 0;
      }
    if (check_bindable(e, in, "input")) ok = 0;
    if (ok) {
      env_bind(&frame, in->s, el_tensor(ir_input(e->g, in->s, t, s, el_irloc(e, in->loc))));
    } else {
      env_bind(&frame, in->s, el_poison());
      bad = 1;
    }
  }
  Exec x = bad || e->fatal ? EX_STOP : exec_block(e, &frame, entry->l2);
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
  env_free(&frame);
  return 0;
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
      } else if (exec_stmt(e, &menv, it) == EX_RETURN) {
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
  env_free(&menv);
  env_free(&genv);
  free(e->params.key);
  free(e->params.val);
  arena_free(&e->arena);
  return errors;
}
