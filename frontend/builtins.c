/*
 * builtins.c - the language's builtin functions (LANGUAGE.md, "Builtins").
 *
 * One table row per builtin: its name, its parameters (positional or named,
 * the first `min` required) and the C function that checks the arguments and
 * computes a compile-time value or builds the IR node(s).  Arguments arrive
 * bound to parameter slots (V_UNSET when an optional one was not given);
 * poisoned arguments never get here.  Shape errors come from ir_node_new and
 * point at the call.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/elab.h"

typedef struct {
  Elab *e;
  const ElBuiltin *b;
  const AstNode *call;
  Value a[EL_MAX_ARGS];
  const AstNode *an[EL_MAX_ARGS]; /* argument expressions, NULL when defaulted */
} Call;

typedef Value (*BuiltinFn)(Call *c);

struct ElBuiltin {
  const char *name;
  BuiltinFn fn;
  int min;
  const char *params[EL_MAX_ARGS + 1];
  int op; /* IrOp for the ops that share a function */
};

/* ---- argument checks ---------------------------------------------------- */

static AstLoc arg_loc(const Call *c, int i) { return c->an[i] ? c->an[i]->loc : c->call->loc; }

static int arg_error(Call *c, int i, const char *want) {
  el_error(c->e, arg_loc(c, i), "%s(): argument '%s' must be %s, got %s", c->b->name,
           c->b->params[i], want, el_describe(c->e, c->a[i]));
  return -1;
}

static int given(const Call *c, int i) { return c->a[i].k != V_UNSET; }

/* The arg_* readers set *out on every path, so callers never read garbage. */
static int arg_tensor(Call *c, int i, IrNode **out) {
  *out = NULL;
  if (c->a[i].k != V_TENSOR) return arg_error(c, i, "a tensor");
  *out = c->a[i].t;
  return 0;
}

static int arg_int(Call *c, int i, int64_t lo, int64_t hi, int64_t *out) {
  Value v = c->a[i];
  *out = 0;
  if (v.k != V_INT) return arg_error(c, i, "an int");
  if (v.i < lo || v.i > hi) {
    el_error(c->e, arg_loc(c, i), "%s(): argument '%s' = %" PRId64 " is outside %" PRId64 "..%" PRId64,
             c->b->name, c->b->params[i], v.i, lo, hi);
    return -1;
  }
  *out = v.i;
  return 0;
}

static int arg_num(Call *c, int i, double *out) {
  Value v = c->a[i];
  *out = 0;
  if (v.k == V_INT) *out = (double)v.i;
  else if (v.k == V_FLOAT) *out = v.f;
  else return arg_error(c, i, "a number");
  return 0;
}

static int arg_bool(Call *c, int i, int *out) {
  *out = 0;
  if (c->a[i].k != V_BOOL) return arg_error(c, i, "a bool");
  *out = (int)c->a[i].i;
  return 0;
}

/* An axis of a tensor of rank `rank` (negative counts from the end). */
static int arg_axis(Call *c, int i, int rank, int *out) {
  int64_t a;
  *out = 0;
  if (c->a[i].k != V_INT) return arg_error(c, i, "an int axis");
  a = c->a[i].i;
  if (a < -rank || a >= rank) {
    el_error(c->e, arg_loc(c, i), "%s(): axis %" PRId64 " is out of range for rank %d", c->b->name, a,
             rank);
    return -1;
  }
  *out = (int)(a < 0 ? a + rank : a);
  return 0;
}

/* A size or index that may be a batch multiple: as an IrDim. */
static int arg_size(Call *c, int i, IrDim *out) {
  *out = 0;
  if (c->a[i].k == V_INT || c->a[i].k == V_DIM) {
    *out = c->a[i].i;
    return 0;
  }
  return arg_error(c, i, "an int or a multiple of B");
}

static Value node(Call *c, IrOp op, int n, IrNode *const *in, const IrAttrs *at) {
  return el_node(c->e, c->call->loc, op, n, in, at);
}

static Value reshape(Call *c, IrNode *x, IrShape to) {
  IrAttrs at = {.shape = to};
  return node(c, IR_RESHAPE, 1, &x, &at);
}

/* ---- compile-time builtins ------------------------------------------------ */

static Value bi_int(Call *c) {
  Value v = c->a[0];
  switch (v.k) {
  case V_INT: return v;
  case V_BOOL: return el_int(v.i);
  case V_FLOAT:
    if (!(v.f > -9223372036854775808.0 && v.f < 9223372036854775808.0)) {
      el_error(c->e, c->call->loc, "int(): %g does not fit in an int", v.f);
      return el_poison();
    }
    return el_int((int64_t)v.f);
  case V_STR: {
    char *end;
    errno = 0;
    long long i = strtoll(v.s, &end, 10);
    if (*v.s && !*end && !errno) return el_int(i);
    el_error(c->e, c->call->loc, "int(): \"%s\" is not an integer", v.s);
    return el_poison();
  }
  default: arg_error(c, 0, "a number, bool or str"); return el_poison();
  }
}

static Value bi_float(Call *c) {
  Value v = c->a[0];
  switch (v.k) {
  case V_FLOAT: return v;
  case V_INT:
  case V_BOOL: return el_float((double)v.i);
  case V_STR: {
    char *end;
    double f = strtod(v.s, &end);
    if (*v.s && !*end) return el_float(f);
    el_error(c->e, c->call->loc, "float(): \"%s\" is not a number", v.s);
    return el_poison();
  }
  default: arg_error(c, 0, "a number, bool or str"); return el_poison();
  }
}

static Value bi_str(Call *c) {
  Value v = c->a[0];
  char buf[64];
  switch (v.k) {
  case V_STR: return v;
  case V_INT: snprintf(buf, sizeof buf, "%" PRId64, v.i); break;
  case V_BOOL: snprintf(buf, sizeof buf, "%s", v.i ? "true" : "false"); break;
  case V_NONE: snprintf(buf, sizeof buf, "none"); break;
  case V_DIM: ir_dim_str(v.i, buf, sizeof buf); break;
  case V_FLOAT:
    /* the shortest spelling that reads back the same, always float-looking */
    for (int p = 1; p <= 17; p++) {
      snprintf(buf, sizeof buf, "%.*g", p, v.f);
      if (strtod(buf, NULL) == v.f) break;
    }
    if (isfinite(v.f) && !strpbrk(buf, ".e")) strcat(buf, ".0");
    break;
  default: arg_error(c, 0, "a number, bool, str, none or dim"); return el_poison();
  }
  char *s = el_alloc(c->e, c->call->loc, strlen(buf) + 1);
  return s ? el_str(strcpy(s, buf)) : el_poison();
}

static Value bi_len(Call *c) {
  Value v = c->a[0];
  if (v.k == V_LIST) return el_int(v.l->n);
  if (v.k == V_STR) return el_int((int64_t)strlen(v.s));
  arg_error(c, 0, "a list or a str");
  return el_poison();
}

static Value bi_minmax(Call *c) {
  Value a = c->a[0], b = c->a[1];
  int is_max = c->b->name[1] == 'a';
  if (a.k == V_INT && b.k == V_INT) return el_int(is_max ? (a.i > b.i ? a.i : b.i) : (a.i < b.i ? a.i : b.i));
  double x, y;
  if (arg_num(c, 0, &x) || arg_num(c, 1, &y)) return el_poison();
  return (is_max ? x >= y : x <= y) ? a : b;
}

static Value bi_abs(Call *c) {
  Value v = c->a[0];
  if (v.k == V_INT) {
    if (v.i == INT64_MIN) {
      el_error(c->e, c->call->loc, "abs(): integer overflow");
      return el_poison();
    }
    return el_int(v.i < 0 ? -v.i : v.i);
  }
  if (v.k == V_FLOAT) return el_float(fabs(v.f));
  arg_error(c, 0, "a number");
  return el_poison();
}

static Value bi_range(Call *c) {
  int64_t lo = 0, hi;
  if (given(c, 1)) {
    if (arg_int(c, 0, INT64_MIN, INT64_MAX, &lo) || arg_int(c, 1, INT64_MIN, INT64_MAX, &hi))
      return el_poison();
  } else if (arg_int(c, 0, INT64_MIN, INT64_MAX, &hi)) {
    return el_poison();
  }
  int64_t n = hi > lo ? (int64_t)((uint64_t)hi - (uint64_t)lo) : 0;
  if (n < 0 || n > (int64_t)(EL_MAX_VALUE_BYTES / sizeof(Value))) {
    el_fatal(c->e, c->call->loc, "range(): %s elements is too many: stopping",
             n < 0 ? "so many" : arena_printf(&c->e->arena, "%" PRId64, n));
    return el_poison();
  }
  ElList *l = el_list_new(c->e, c->call->loc, (int)n);
  if (!l) return el_poison();
  for (int64_t i = 0; i < n; i++) l->v[i] = el_int(lo + i);
  return (Value){.k = V_LIST, .l = l};
}

static Value bi_error(Call *c) {
  if (c->a[0].k != V_STR) {
    arg_error(c, 0, "a str");
    return el_poison();
  }
  el_error(c->e, c->call->loc, "%s", c->a[0].s);
  return el_poison();
}

static Value bi_shape(Call *c) {
  IrNode *x;
  if (arg_tensor(c, 0, &x)) return el_poison();
  ElList *l = el_list_new(c->e, c->call->loc, x->shape.rank);
  if (!l) return el_poison();
  for (int i = 0; i < x->shape.rank; i++) l->v[i] = el_size(x->shape.d[i]);
  return (Value){.k = V_LIST, .l = l};
}

static Value bi_dim(Call *c) {
  IrNode *x;
  int axis;
  if (arg_tensor(c, 0, &x) || arg_axis(c, 1, x->shape.rank, &axis)) return el_poison();
  return el_size(x->shape.d[axis]);
}

static Value bi_rank(Call *c) {
  IrNode *x;
  if (arg_tensor(c, 0, &x)) return el_poison();
  return el_int(x->shape.rank);
}

/* ---- elementwise ------------------------------------------------------------ */

/* exp / log / sqrt of a number are compile-time; of a tensor, an op. */
static Value bi_unary(Call *c) {
  Value v = c->a[0];
  IrOp op = (IrOp)c->b->op;
  if (v.k == V_INT || v.k == V_FLOAT) {
    double x = v.k == V_INT ? (double)v.i : v.f;
    if (op == IR_EXP) return el_float(exp(x));
    if (op == IR_LOG || op == IR_SQRT) {
      if (op == IR_LOG ? !(x > 0) : !(x >= 0)) {
        el_error(c->e, c->call->loc, "%s(): %g is outside its domain", c->b->name, x);
        return el_poison();
      }
      return el_float(op == IR_LOG ? log(x) : sqrt(x));
    }
  }
  IrNode *x;
  if (v.k != V_TENSOR) {
    arg_error(c, 0, op == IR_EXP || op == IR_LOG || op == IR_SQRT ? "a tensor or a number" : "a tensor");
    return el_poison();
  }
  x = v.t;
  return node(c, op, 1, &x, NULL);
}

static Value bi_clamp_min(Call *c) {
  IrNode *x;
  double v;
  if (arg_tensor(c, 0, &x) || arg_num(c, 1, &v)) return el_poison();
  IrAttrs at = {.f = (float)v};
  return node(c, IR_CLAMP_MIN, 1, &x, &at);
}

static Value bi_cast(Call *c) {
  IrNode *x;
  IrAttrs at = {0};
  if (arg_tensor(c, 0, &x)) return el_poison();
  if (c->a[1].k != V_STR || ir_dtype_parse(c->a[1].s, &at.to)) {
    arg_error(c, 1, "a dtype name (\"f32\", \"f16\", \"bf16\", \"i8\", \"i32\")");
    return el_poison();
  }
  return node(c, IR_CAST, 1, &x, &at);
}

static Value bi_maximum(Call *c) {
  IrNode *in[2];
  if (arg_tensor(c, 0, &in[0]) || arg_tensor(c, 1, &in[1])) return el_poison();
  return node(c, IR_MAX, 2, in, NULL);
}

/* ---- normalisation, reductions ---------------------------------------------- */

static Value bi_layernorm(Call *c) {
  IrNode *x;
  double eps = 1e-6;
  if (arg_tensor(c, 0, &x) || (given(c, 1) && arg_num(c, 1, &eps))) return el_poison();
  IrAttrs at = {.f = (float)eps};
  return node(c, IR_LAYERNORM, 1, &x, &at);
}

/* group_norm(x, groups, weight = none, bias = none, eps = 1e-5): torch's
 * F.group_norm.  x is [N, C, ...]; each sample's C channels form `groups`
 * groups of consecutive channels, each normalised over its channels and
 * positions (biased variance), then scaled by weight[C] and shifted by
 * bias[C] per channel.  No op of its own: a layernorm over the rows of
 * reshape(x, [N, groups, -1]), reshaped back, and the per-channel affine as
 * broadcast mul and add, so every backend runs it as it runs those (the
 * code generator as one group_norm kernel, with a SiLU after it:
 * passes/fuse.c, codegen/fuse_lower.c lower_group_norm). */
static int channel_vector(Call *c, int i, int64_t channels, IrNode **out) {
  *out = NULL;
  if (!given(c, i) || c->a[i].k == V_NONE) return 0;
  if (arg_tensor(c, i, out)) return -1;
  if ((*out)->shape.rank != 1 || (*out)->shape.d[0] != channels) {
    char b1[128];
    el_error(c->e, arg_loc(c, i), "%s(): %s must be [%" PRId64 "] (one value a channel), got %s", c->b->name,
             c->b->params[i], channels, ir_shape_str(&(*out)->shape, b1, sizeof b1));
    return -1;
  }
  return 0;
}

/* v[C] as [C, 1, ...] against a tensor of rank `rank` laid out [N, C, ...]. */
static IrNode *per_channel(Call *c, IrNode *v, int rank) {
  IrShape to = {.rank = rank - 1};
  to.d[0] = v->shape.d[0];
  for (int i = 1; i < to.rank; i++) to.d[i] = 1;
  Value r = reshape(c, v, to);
  return r.k == V_TENSOR ? r.t : NULL;
}

static Value bi_group_norm(Call *c) {
  IrNode *x, *w, *b;
  int64_t groups;
  double eps = 1e-5;
  char b1[128];
  if (arg_tensor(c, 0, &x)) return el_poison();
  const IrShape *xs = &x->shape;
  int64_t per = 1;
  int fixed = xs->rank >= 2;
  for (int i = 1; i < xs->rank; i++) {
    fixed &= !ir_dim_is_sym(xs->d[i]);
    per *= xs->d[i];
  }
  if (!fixed) {
    el_error(c->e, c->call->loc, "group_norm(): x must be [N, C, ...] with only N a multiple of B, got %s",
             ir_shape_str(xs, b1, sizeof b1));
    return el_poison();
  }
  int64_t channels = xs->d[1];
  if (arg_int(c, 1, 1, channels, &groups) || channel_vector(c, 2, channels, &w) ||
      channel_vector(c, 3, channels, &b) || (given(c, 4) && arg_num(c, 4, &eps)))
    return el_poison();
  if (channels % groups) {
    el_error(c->e, arg_loc(c, 1), "group_norm(): groups = %" PRId64 " does not divide the %" PRId64 " channels of %s",
             groups, channels, ir_shape_str(xs, b1, sizeof b1));
    return el_poison();
  }
  if (!(eps > 0)) {
    el_error(c->e, arg_loc(c, 4), "group_norm(): eps must be > 0, got %g", eps);
    return el_poison();
  }
  IrShape rows = {.rank = 3, .d = {xs->d[0], groups, per / groups}};
  IrAttrs at = {.f = (float)eps};
  Value v = reshape(c, x, rows);
  if (v.k == V_TENSOR) v = node(c, IR_LAYERNORM, 1, &v.t, &at);
  if (v.k == V_TENSOR) v = reshape(c, v.t, *xs);
  if (v.k == V_TENSOR && w) {
    IrNode *in[2] = {v.t, per_channel(c, w, xs->rank)};
    v = in[1] ? node(c, IR_MUL, 2, in, NULL) : el_poison();
  }
  if (v.k == V_TENSOR && b) {
    IrNode *in[2] = {v.t, per_channel(c, b, xs->rank)};
    v = in[1] ? node(c, IR_ADD, 2, in, NULL) : el_poison();
  }
  return v;
}

static Value bi_softmax(Call *c) {
  IrNode *x;
  if (arg_tensor(c, 0, &x)) return el_poison();
  return node(c, IR_SOFTMAX, 1, &x, NULL);
}

static Value bi_reduce(Call *c) {
  IrNode *x;
  IrAttrs at = {.axis = -1};
  if (arg_tensor(c, 0, &x)) return el_poison();
  if (given(c, 1) ? arg_axis(c, 1, x->shape.rank, &at.axis) : 0) return el_poison();
  if (!given(c, 1)) at.axis = x->shape.rank - 1;
  return node(c, (IrOp)c->b->op, 1, &x, &at);
}

static Value bi_topk_softmax(Call *c) {
  IrNode *x;
  int64_t k;
  if (arg_tensor(c, 0, &x) || arg_int(c, 1, 1, INT32_MAX, &k)) return el_poison();
  IrAttrs at = {.k = (int)k};
  return node(c, IR_TOPK_SOFTMAX, 1, &x, &at);
}

/* ---- contractions ------------------------------------------------------------- */

/* linear(x, w, b = none) and conv2d(x, w, b = none, ...): the optional bias. */
static int opt_bias(Call *c, int i, IrNode **in, int *n) {
  if (!given(c, i) || c->a[i].k == V_NONE) return 0;
  if (arg_tensor(c, i, &in[2])) return -1;
  *n = 3;
  return 0;
}

static Value bi_linear(Call *c) {
  IrNode *in[3];
  int n = 2;
  if (arg_tensor(c, 0, &in[0]) || arg_tensor(c, 1, &in[1]) || opt_bias(c, 2, in, &n)) return el_poison();
  return node(c, IR_LINEAR, n, in, NULL);
}

static Value bi_matmul(Call *c) {
  IrNode *in[2];
  int tb = 0;
  if (arg_tensor(c, 0, &in[0]) || arg_tensor(c, 1, &in[1]) || (given(c, 2) && arg_bool(c, 2, &tb)))
    return el_poison();
  IrAttrs at = {.trans_b = tb};
  return node(c, IR_MATMUL, 2, in, &at);
}

static Value bi_conv2d(Call *c) {
  IrNode *in[3];
  int n = 2;
  int64_t stride = 1, pad = 0, groups = 1;
  if (arg_tensor(c, 0, &in[0]) || arg_tensor(c, 1, &in[1]) || opt_bias(c, 2, in, &n) ||
      (given(c, 3) && arg_int(c, 3, 1, 1 << 20, &stride)) ||
      (given(c, 4) && arg_int(c, 4, 0, 1 << 20, &pad)) ||
      (given(c, 5) && arg_int(c, 5, 1, 1 << 20, &groups)))
    return el_poison();
  IrAttrs at = {.stride = (int)stride, .pad = (int)pad, .groups = (int)groups};
  return node(c, IR_CONV2D, n, in, &at);
}

static Value bi_embedding(Call *c) {
  IrNode *in[2];
  if (arg_tensor(c, 0, &in[0]) || arg_tensor(c, 1, &in[1])) return el_poison();
  return node(c, IR_EMBEDDING, 2, in, NULL);
}

/* ---- layout ------------------------------------------------------------------ */

/* reshape(x, shape): entries are ints >= 1, multiples of B, or one -1 that is
 * inferred (a multiple of B when x has one more batch factor than the rest). */
static Value bi_reshape(Call *c) {
  IrNode *x;
  if (arg_tensor(c, 0, &x)) return el_poison();
  Value l = c->a[1];
  if (l.k != V_LIST) {
    arg_error(c, 1, "a list of sizes");
    return el_poison();
  }
  if (l.l->n > IR_MAX_RANK) {
    el_error(c->e, arg_loc(c, 1), "reshape(): rank %d is more than the IR's limit of %d", l.l->n,
             IR_MAX_RANK);
    return el_poison();
  }
  IrShape to = {.rank = l.l->n};
  int infer = -1;
  for (int i = 0; i < l.l->n; i++) {
    Value v = l.l->v[i];
    if (v.k == V_INT && v.i == -1 && infer < 0) {
      infer = i;
      to.d[i] = 1;
    } else if ((v.k == V_INT && v.i >= 1) || v.k == V_DIM) {
      to.d[i] = v.i;
    } else {
      el_error(c->e, arg_loc(c, 1), "reshape(): entry %d must be a size >= 1, a multiple of B or one -1, got %s",
               i, v.k == V_INT ? arena_printf(&c->e->arena, "%" PRId64, v.i) : el_describe(c->e, v));
      return el_poison();
    }
  }
  if (infer >= 0) {
    int64_t fa, fb;
    int sa, sb;
    char b1[128];
    if (ir_shape_count(&x->shape, &fa, &sa) || ir_shape_count(&to, &fb, &sb) || fb == 0 || fa % fb != 0 ||
        (sa != sb && sa != sb + 1) || fa / fb == 0) {
      el_error(c->e, c->call->loc, "reshape(): cannot infer the -1 entry: %s does not divide into the other sizes",
               ir_shape_str(&x->shape, b1, sizeof b1));
      return el_poison();
    }
    to.d[infer] = sa == sb ? fa / fb : -(fa / fb);
  }
  return reshape(c, x, to);
}

static Value bi_unsqueeze(Call *c) {
  IrNode *x;
  int axis;
  if (arg_tensor(c, 0, &x)) return el_poison();
  if (x->shape.rank >= IR_MAX_RANK) {
    el_error(c->e, c->call->loc, "unsqueeze(): rank %d is already the IR's limit", x->shape.rank);
    return el_poison();
  }
  if (arg_axis(c, 1, x->shape.rank + 1, &axis)) return el_poison();
  IrShape to = {.rank = x->shape.rank + 1};
  for (int i = 0, j = 0; i < to.rank; i++) to.d[i] = i == axis ? 1 : x->shape.d[j++];
  return reshape(c, x, to);
}

static Value bi_squeeze(Call *c) {
  IrNode *x;
  int axis;
  if (arg_tensor(c, 0, &x) || arg_axis(c, 1, x->shape.rank, &axis)) return el_poison();
  if (x->shape.d[axis] != 1) {
    char b1[128];
    el_error(c->e, c->call->loc, "squeeze(): axis %d of %s is not 1", axis,
             ir_shape_str(&x->shape, b1, sizeof b1));
    return el_poison();
  }
  IrShape to = {.rank = x->shape.rank - 1};
  for (int i = 0, j = 0; i < x->shape.rank; i++)
    if (i != axis) to.d[j++] = x->shape.d[i];
  return reshape(c, x, to);
}

static Value bi_permute(Call *c) {
  IrNode *x;
  if (arg_tensor(c, 0, &x)) return el_poison();
  Value l = c->a[1];
  int r = x->shape.rank;
  if (l.k != V_LIST || l.l->n != r) {
    arg_error(c, 1, arena_printf(&c->e->arena, "a list of %d axes", r));
    return el_poison();
  }
  IrAttrs at = {0};
  for (int i = 0; i < r; i++) {
    Value v = l.l->v[i];
    if (v.k != V_INT || v.i < -r || v.i >= r) {
      el_error(c->e, arg_loc(c, 1), "permute(): entry %d must be an axis of a rank-%d tensor", i, r);
      return el_poison();
    }
    at.perm[i] = (int)(v.i < 0 ? v.i + r : v.i);
  }
  return node(c, IR_PERMUTE, 1, &x, &at);
}

static Value bi_transpose(Call *c) {
  IrNode *x;
  int a, b;
  if (arg_tensor(c, 0, &x) || arg_axis(c, 1, x->shape.rank, &a) || arg_axis(c, 2, x->shape.rank, &b))
    return el_poison();
  IrAttrs at = {0};
  for (int i = 0; i < x->shape.rank; i++) at.perm[i] = i;
  at.perm[a] = b;
  at.perm[b] = a;
  return node(c, IR_PERMUTE, 1, &x, &at);
}

static Value slice_node(Call *c, IrNode *x, int axis, IrDim start, IrDim len) {
  IrAttrs at = {.axis = axis, .start = start, .len = len};
  return node(c, IR_SLICE, 1, &x, &at);
}

/* slice(x, axis, start, end): along a fixed axis, ints (negative from the end);
 * along a batch-sized axis, 0 or multiples of B. */
static Value bi_slice(Call *c) {
  IrNode *x;
  int axis;
  IrDim st = 0, en = 0;
  if (arg_tensor(c, 0, &x) || arg_axis(c, 1, x->shape.rank, &axis) || arg_size(c, 2, &st) ||
      arg_size(c, 3, &en))
    return el_poison();
  IrDim d = x->shape.d[axis];
  int sym_st = c->a[2].k == V_DIM, sym_en = c->a[3].k == V_DIM;
  if (d >= 0) {
    if (sym_st || sym_en) {
      el_error(c->e, c->call->loc, "slice(): axis %d has fixed size %" PRId64 ": its bounds cannot depend on B",
               axis, d);
      return el_poison();
    }
    IrDim st0 = st, en0 = en;
    if (st < 0) st += d;
    if (en < 0) en += d;
    if (st < 0 || en > d || st >= en) {
      char from[96] = "";
      if (st0 < 0 || en0 < 0)
        snprintf(from, sizeof from, " (counted from the end: %" PRId64 " to %" PRId64 ")", st, en);
      el_error(c->e, c->call->loc, "slice(): start %" PRId64 ", end %" PRId64 "%s is not a non-empty range of axis %d "
               "of size %" PRId64 " (0 <= start < end <= %" PRId64 "; negative bounds count from the end)", st0, en0,
               from, axis, d, d);
      return el_poison();
    }
  } else if ((!sym_st && st != 0) || (!sym_en && en != 0)) {
    el_error(c->e, c->call->loc, "slice(): axis %d is batch-sized: its bounds must be 0 or multiples of B", axis);
    return el_poison();
  }
  IrDim len;
  if (__builtin_sub_overflow(en, st, &len)) {
    el_error(c->e, c->call->loc, "slice(): bounds overflow");
    return el_poison();
  }
  return slice_node(c, x, axis, st, len);
}

static Value bi_chunk(Call *c) {
  IrNode *x;
  int64_t n;
  int axis = 0;
  if (arg_tensor(c, 0, &x) || arg_int(c, 1, 1, 4096, &n)) return el_poison();
  if (x->shape.rank < 1) {
    arg_error(c, 0, "a tensor of rank >= 1");
    return el_poison();
  }
  if (!given(c, 2)) axis = x->shape.rank - 1;
  else if (arg_axis(c, 2, x->shape.rank, &axis)) return el_poison();
  IrDim d = x->shape.d[axis];
  if (d % n != 0) {
    char b1[128];
    el_error(c->e, c->call->loc, "chunk(): axis %d of %s does not split into %" PRId64 " equal parts", axis,
             ir_shape_str(&x->shape, b1, sizeof b1), n);
    return el_poison();
  }
  ElList *l = el_list_new(c->e, c->call->loc, (int)n);
  if (!l) return el_poison();
  IrDim len = d / n;
  for (int64_t i = 0; i < n; i++) {
    l->v[i] = slice_node(c, x, axis, i * len, len);
    if (l->v[i].k != V_TENSOR) return el_poison();
  }
  return (Value){.k = V_LIST, .l = l};
}

static Value bi_concat(Call *c) {
  Value l = c->a[0];
  if (l.k != V_LIST || l.l->n < 1) {
    arg_error(c, 0, "a non-empty list of tensors");
    return el_poison();
  }
  IrNode **in = xmalloc((size_t)l.l->n * sizeof *in);
  Value r = el_poison();
  int ok = 1, axis = 0;
  for (int i = 0; i < l.l->n && ok; i++) {
    if (l.l->v[i].k != V_TENSOR) {
      el_error(c->e, arg_loc(c, 0), "concat(): element %d of the list is %s, not a tensor", i,
               el_describe(c->e, l.l->v[i]));
      ok = 0;
    } else {
      in[i] = l.l->v[i].t;
    }
  }
  if (ok && !arg_axis(c, 1, in[0]->shape.rank, &axis)) {
    IrAttrs at = {.axis = axis};
    r = node(c, IR_CONCAT, l.l->n, in, &at);
  }
  free(in);
  return r;
}

/* n copies of x joined along axis (repeat() and upsample_nearest2d()). */
static Value tile_after(Call *c, IrNode *x, int axis, int64_t n) {
  IrNode **in = xmalloc((size_t)n * sizeof *in);
  for (int64_t i = 0; i < n; i++) in[i] = x;
  IrAttrs at = {.axis = axis};
  Value r = node(c, IR_CONCAT, (int)n, in, &at);
  free(in);
  return r;
}

static Value bi_repeat(Call *c) {
  IrNode *x;
  int64_t n;
  int axis;
  if (arg_tensor(c, 0, &x) || arg_int(c, 1, 1, 65536, &n) || arg_axis(c, 2, x->shape.rank, &axis))
    return el_poison();
  if (n == 1) return el_tensor(x);
  return tile_after(c, x, axis, n);
}

/* upsample_nearest2d(x, scale = 2): torch's F.interpolate(x, scale_factor =
 * scale, mode = "nearest") for an integer scale: y[n, c, i, j] = x[n, c, i /
 * scale, j / scale].  No op of its own: each axis is a reshape and a concat
 * of `scale` copies (as repeat()); conv-gemm recognises exactly this chain
 * in front of a convolution and folds it into the im2col's loads
 * (passes/conv_gemm.c upsample_source). */
static Value bi_upsample(Call *c) {
  IrNode *x;
  int64_t s = 2;
  char b1[128];
  if (arg_tensor(c, 0, &x) || (given(c, 1) && arg_int(c, 1, 1, 64, &s))) return el_poison();
  const IrShape *xs = &x->shape;
  if (xs->rank != 4 || ir_dim_is_sym(xs->d[1]) || ir_dim_is_sym(xs->d[2]) || ir_dim_is_sym(xs->d[3])) {
    el_error(c->e, c->call->loc, "upsample_nearest2d(): x must be [N, C, H, W] with only N a multiple of B, got %s",
             ir_shape_str(xs, b1, sizeof b1));
    return el_poison();
  }
  if (s == 1) return el_tensor(x);
  IrDim n = xs->d[0], ch = xs->d[1], h = xs->d[2], w = xs->d[3];
  Value v = reshape(c, x, (IrShape){.rank = 5, .d = {n, ch, h, w, 1}});
  if (v.k == V_TENSOR) v = tile_after(c, v.t, 4, s);                                   /* [n, c, h, w, s] */
  if (v.k == V_TENSOR) v = reshape(c, v.t, (IrShape){.rank = 5, .d = {n, ch, h, 1, w * s}});
  if (v.k == V_TENSOR) v = tile_after(c, v.t, 3, s);                                   /* [n, c, h, s, w s] */
  if (v.k == V_TENSOR) v = reshape(c, v.t, (IrShape){.rank = 4, .d = {n, ch, h * s, w * s}});
  return v;
}

static Value bi_avgpool(Call *c) {
  IrNode *x;
  int64_t oh, ow;
  if (arg_tensor(c, 0, &x) || arg_int(c, 1, 1, INT32_MAX, &oh) || arg_int(c, 2, 1, INT32_MAX, &ow))
    return el_poison();
  IrAttrs at = {.out_h = (int)oh, .out_w = (int)ow};
  return node(c, IR_AVGPOOL2D, 1, &x, &at);
}

/* ---- constants -------------------------------------------------------------- */

#define MAX_CONST_ELEMS ((int64_t)(EL_MAX_VALUE_BYTES / sizeof(float)))

static Value bi_arange(Call *c) {
  int64_t n;
  if (arg_int(c, 0, 1, MAX_CONST_ELEMS, &n)) return el_poison();
  float *v = el_alloc(c->e, c->call->loc, (size_t)n * sizeof *v);
  if (!v) return el_poison();
  for (int64_t i = 0; i < n; i++) v[i] = (float)i;
  IrDim d = n;
  return el_const_f32(c->e, c->call->loc, ir_shape_make(1, &d), v);
}

/* The shape of a nested list of numbers; -1 (reported) if it is not one. */
static int nested_shape(Call *c, Value v, int depth, IrShape *s) {
  if (v.k == V_INT || v.k == V_FLOAT) {
    s->rank = depth;
    return 0;
  }
  if (v.k != V_LIST || v.l->n == 0 || depth >= IR_MAX_RANK) {
    el_error(c->e, arg_loc(c, 0), "constant(): expected a number or a non-empty (nested) list of numbers of rank <= %d",
             IR_MAX_RANK);
    return -1;
  }
  s->d[depth] = v.l->n;
  return nested_shape(c, v.l->v[0], depth + 1, s);
}

static int fill_nested(Call *c, Value v, const IrShape *s, int depth, float *out, int64_t *at) {
  if (depth == s->rank) {
    if (v.k != V_INT && v.k != V_FLOAT) goto ragged;
    out[(*at)++] = (float)(v.k == V_INT ? (double)v.i : v.f);
    return 0;
  }
  if (v.k != V_LIST || v.l->n != s->d[depth]) goto ragged;
  for (int i = 0; i < v.l->n; i++)
    if (fill_nested(c, v.l->v[i], s, depth + 1, out, at)) return -1;
  return 0;
ragged:
  el_error(c->e, arg_loc(c, 0), "constant(): the nested list is not rectangular");
  return -1;
}

static Value bi_constant(Call *c) {
  IrShape s = {0};
  int64_t n, at = 0;
  int sym;
  if (nested_shape(c, c->a[0], 0, &s) || ir_shape_count(&s, &n, &sym) || n > MAX_CONST_ELEMS) return el_poison();
  float *v = el_alloc(c->e, c->call->loc, (size_t)n * sizeof *v);
  if (!v || fill_nested(c, c->a[0], &s, 0, v, &at)) return el_poison();
  return el_const_f32(c->e, c->call->loc, s, v);
}

void el_sincos_2d(int d, int g, float *out) {
  int q = d / 4;
  for (int r = 0; r < g; r++)
    for (int col = 0; col < g; col++) {
      float *t = out + ((size_t)r * g + col) * d;
      for (int k = 0; k < q; k++) {
        double w = 1.0 / pow(10000.0, (double)k / q);
        t[k] = (float)sin(col * w);
        t[q + k] = (float)cos(col * w);
        t[2 * q + k] = (float)sin(r * w);
        t[3 * q + k] = (float)cos(r * w);
      }
    }
}

static Value bi_sincos(Call *c) {
  int64_t d, g;
  if (arg_int(c, 0, 4, 1 << 24, &d) || arg_int(c, 1, 1, 1 << 16, &g)) return el_poison();
  if (d % 4) {
    el_error(c->e, arg_loc(c, 0), "sincos_pos_embed_2d(): d = %" PRId64 " must be a multiple of 4", d);
    return el_poison();
  }
  if (g * g * d > MAX_CONST_ELEMS) {
    el_fatal(c->e, c->call->loc, "sincos_pos_embed_2d(): %" PRId64 " x %" PRId64 " positions are too many: stopping",
             g * g, d);
    return el_poison();
  }
  float *v = el_alloc(c->e, c->call->loc, (size_t)(g * g * d) * sizeof *v);
  if (!v) return el_poison();
  el_sincos_2d((int)d, (int)g, v);
  IrDim dims[3] = {1, g * g, d};
  return el_const_f32(c->e, c->call->loc, ir_shape_make(3, dims), v);
}

/* ---- the table ---------------------------------------------------------------- */

#define UNARY(name, op) {name, bi_unary, 1, {"x"}, op}

static const ElBuiltin builtins[] = {
    /* compile-time */
    {"int", bi_int, 1, {"x"}, 0},
    {"float", bi_float, 1, {"x"}, 0},
    {"str", bi_str, 1, {"x"}, 0},
    {"len", bi_len, 1, {"x"}, 0},
    {"min", bi_minmax, 2, {"a", "b"}, 0},
    {"max", bi_minmax, 2, {"a", "b"}, 0},
    {"abs", bi_abs, 1, {"x"}, 0},
    {"range", bi_range, 1, {"n", "end"}, 0},
    {"error", bi_error, 1, {"msg"}, 0},
    {"shape", bi_shape, 1, {"t"}, 0},
    {"dim", bi_dim, 2, {"t", "axis"}, 0},
    {"rank", bi_rank, 1, {"t"}, 0},
    /* elementwise (exp, log, sqrt also on numbers) */
    UNARY("neg", IR_NEG),
    UNARY("relu", IR_RELU),
    UNARY("silu", IR_SILU),
    UNARY("gelu", IR_GELU),
    UNARY("gelu_tanh", IR_GELU_TANH),
    UNARY("sigmoid", IR_SIGMOID),
    UNARY("tanh", IR_TANH),
    UNARY("exp", IR_EXP),
    UNARY("log", IR_LOG),
    UNARY("sin", IR_SIN),
    UNARY("cos", IR_COS),
    UNARY("sqrt", IR_SQRT),
    UNARY("recip", IR_RECIP),
    {"clamp_min", bi_clamp_min, 2, {"x", "v"}, 0},
    {"cast", bi_cast, 2, {"x", "dtype"}, 0},
    {"maximum", bi_maximum, 2, {"a", "b"}, 0},
    /* normalisation, reductions */
    {"layernorm", bi_layernorm, 1, {"x", "eps"}, 0},
    {"group_norm", bi_group_norm, 2, {"x", "groups", "weight", "bias", "eps"}, 0},
    {"softmax", bi_softmax, 1, {"x"}, 0},
    {"sum", bi_reduce, 1, {"x", "axis"}, IR_REDUCE_SUM},
    {"mean", bi_reduce, 1, {"x", "axis"}, IR_REDUCE_MEAN},
    {"topk_softmax", bi_topk_softmax, 2, {"x", "k"}, 0},
    /* contractions */
    {"linear", bi_linear, 2, {"x", "w", "b"}, 0},
    {"matmul", bi_matmul, 2, {"a", "b", "transpose_b"}, 0},
    {"conv2d", bi_conv2d, 2, {"x", "w", "b", "stride", "padding", "groups"}, 0},
    {"embedding", bi_embedding, 2, {"table", "idx"}, 0},
    /* layout */
    {"reshape", bi_reshape, 2, {"x", "shape"}, 0},
    {"unsqueeze", bi_unsqueeze, 2, {"x", "axis"}, 0},
    {"squeeze", bi_squeeze, 2, {"x", "axis"}, 0},
    {"permute", bi_permute, 2, {"x", "perm"}, 0},
    {"transpose", bi_transpose, 3, {"x", "a", "b"}, 0},
    {"slice", bi_slice, 4, {"x", "axis", "start", "end"}, 0},
    {"chunk", bi_chunk, 2, {"x", "n", "axis"}, 0},
    {"concat", bi_concat, 2, {"list", "axis"}, 0},
    {"repeat", bi_repeat, 3, {"x", "n", "axis"}, 0},
    {"adaptive_avg_pool2d", bi_avgpool, 3, {"x", "oh", "ow"}, 0},
    {"upsample_nearest2d", bi_upsample, 1, {"x", "scale"}, 0},
    /* constants */
    {"arange", bi_arange, 1, {"n"}, 0},
    {"constant", bi_constant, 1, {"x"}, 0},
    {"sincos_pos_embed_2d", bi_sincos, 2, {"d", "g"}, 0},
};

int el_builtin_index(const char *name) {
  for (size_t i = 0; i < sizeof builtins / sizeof *builtins; i++)
    if (!strcmp(builtins[i].name, name)) return (int)i;
  return -1;
}

const ElBuiltin *el_builtin_at(int i) { return &builtins[i]; }

const ElBuiltin *el_builtin_find(const char *name) {
  int i = el_builtin_index(name);
  return i < 0 ? NULL : &builtins[i];
}

static int n_params(const ElBuiltin *b) {
  int n = 0;
  while (n < EL_MAX_ARGS && b->params[n]) n++;
  return n;
}

Value el_builtin_call(Elab *e, const ElBuiltin *b, const AstNode *call, const Value *pos,
                      const AstNode *const *pos_node, int n_pos, const char *const *kw_names,
                      const Value *kw, const AstNode *const *kw_node, int n_kw) {
  Call c = {.e = e, .b = b, .call = call};
  int np = n_params(b);
  if (n_pos > np) {
    el_error(e, call->loc, "%s() takes %s%d argument%s, got %d", b->name, b->min < np ? "at most " : "", np,
             np == 1 ? "" : "s", n_pos);
    return el_poison();
  }
  for (int i = 0; i < n_pos; i++) {
    c.a[i] = pos[i];
    c.an[i] = pos_node[i];
  }
  for (int k = 0; k < n_kw; k++) {
    int j = 0;
    while (j < np && strcmp(b->params[j], kw_names[k])) j++;
    if (j == np) {
      el_error(e, kw_node[k]->loc, "%s() has no parameter named '%s'", b->name, kw_names[k]);
      return el_poison();
    }
    if (c.an[j]) {
      el_error(e, kw_node[k]->loc, "%s() got two values for '%s'", b->name, kw_names[k]);
      return el_poison();
    }
    c.a[j] = kw[k];
    c.an[j] = kw_node[k];
  }
  for (int i = 0; i < b->min; i++)
    if (!c.an[i]) {
      el_error(e, call->loc, "%s() is missing the argument '%s' (it takes %d%s)", b->name, b->params[i], b->min,
               b->min < np ? arena_printf(&e->arena, " to %d", np) : "");
      return el_poison();
    }
  return b->fn(&c);
}
