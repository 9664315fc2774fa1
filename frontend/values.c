/*
 * values.c - arithmetic and comparison of the model language's values at
 * elaboration time: exact 64-bit integer arithmetic (overflow is an error),
 * floats, batch-sized dims (multiples of B), string and list concatenation,
 * and tensor arithmetic, which becomes IR nodes (t op t broadcasts; t op s
 * becomes scale / add_scalar / neg / recip / pow_scalar); and the value a
 * `--set NAME=VALUE` gives a model parameter of its declared type.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/elab.h"

/* ======================================================================== */
/* scalar arithmetic                                                        */
/* ======================================================================== */

static int is_num(Value v) { return v.k == V_INT || v.k == V_FLOAT; }
static double num(Value v) { return v.k == V_INT ? (double)v.i : v.f; }

static Value int_arith(Elab *e, AstLoc loc, int op, int64_t a, int64_t b) {
  int64_t r, a0 = a, b0 = b;
  switch (op) {
  case '+':
    if (__builtin_add_overflow(a, b, &r)) goto overflow;
    return el_int(r);
  case '-':
    if (__builtin_sub_overflow(a, b, &r)) goto overflow;
    return el_int(r);
  case '*':
    if (__builtin_mul_overflow(a, b, &r)) goto overflow;
    return el_int(r);
  case '/':
  case AST_OP_FLOORDIV:
  case '%': {
    if (b == 0) {
      el_error(e, loc, "%s by zero", op == '%' ? "modulo" : "division");
      return el_poison();
    }
    if (a == INT64_MIN && b == -1) goto overflow;
    int64_t q = a / b, m = a % b;
    if (op == '/') {
      if (m != 0) {
        el_error(e, loc, "%" PRId64 " / %" PRId64 " is not exact (use // to round down)", a, b);
        return el_poison();
      }
      return el_int(q);
    }
    if (m != 0 && ((m < 0) != (b < 0))) { /* round toward negative infinity */
      q--;
      m += b;
    }
    return el_int(op == '%' ? m : q);
  }
  case AST_OP_POW: {
    if (b < 0) return el_float(pow((double)a, (double)b));
    int64_t result = 1, base = a;
    while (b > 0) {
      if (b & 1 && __builtin_mul_overflow(result, base, &result)) goto overflow;
      b >>= 1;
      if (b && __builtin_mul_overflow(base, base, &base)) goto overflow;
    }
    return el_int(result);
  }
  }
  ditc_unreachable();
overflow:
  el_error(e, loc, "integer overflow in %" PRId64 " %s %" PRId64, a0, ast_op_str(op), b0);
  return el_poison();
}

static Value float_arith(Elab *e, AstLoc loc, int op, double a, double b) {
  switch (op) {
  case '+': return el_float(a + b);
  case '-': return el_float(a - b);
  case '*': return el_float(a * b);
  case '/':
  case AST_OP_FLOORDIV:
  case '%':
    if (b == 0) {
      el_error(e, loc, "%s by zero", op == '%' ? "modulo" : "division");
      return el_poison();
    }
    if (op == '/') return el_float(a / b);
    if (op == AST_OP_FLOORDIV) return el_float(floor(a / b));
    return el_float(a - floor(a / b) * b);
  case AST_OP_POW: return el_float(pow(a, b));
  }
  ditc_unreachable();
}

/* dims: multiples of B.  d * int, int * d, d / int (exact), d / d (exact: an
 * int), d + d, d - d. */
static Value dim_arith(Elab *e, AstLoc loc, int op, Value a, Value b) {
  char b1[32], b2[32];
  int64_t r;
  if (a.k == V_DIM && b.k == V_DIM && (op == '+' || op == '-')) {
    /* coefficients are -a.i, -b.i */
    if (op == '+' ? __builtin_add_overflow(a.i, b.i, &r) : __builtin_sub_overflow(a.i, b.i, &r))
      goto overflow;
    if (r > 0) {
      el_error(e, loc, "%s - %s is a negative size", ir_dim_str(a.i, b1, 32), ir_dim_str(b.i, b2, 32));
      return el_poison();
    }
    return el_size(r);
  }
  if (op == '*' && (a.k == V_INT || b.k == V_INT)) {
    int64_t c = a.k == V_DIM ? a.i : b.i, k = a.k == V_INT ? a.i : b.i;
    if (k < 0) {
      el_error(e, loc, "a batch-sized dim times a negative number is not a size");
      return el_poison();
    }
    if (__builtin_mul_overflow(c, k, &r)) goto overflow;
    return el_size(r);
  }
  if ((op == '/' || op == AST_OP_FLOORDIV) && a.k == V_DIM && b.k == V_INT) {
    if (b.i <= 0 || a.i % b.i != 0) {
      el_error(e, loc, "%s / %" PRId64 " is not a whole multiple of B", ir_dim_str(a.i, b1, 32), b.i);
      return el_poison();
    }
    return el_size(a.i / b.i);
  }
  if ((op == '/' || op == AST_OP_FLOORDIV) && a.k == V_DIM && b.k == V_DIM) {
    if (a.i % b.i != 0) {
      el_error(e, loc, "%s / %s is not exact", ir_dim_str(a.i, b1, 32), ir_dim_str(b.i, b2, 32));
      return el_poison();
    }
    return el_int(a.i / b.i);
  }
  el_error(e, loc, "unsupported operation %s %s %s on batch sizes (dims support * int, / int, + dim, - dim)",
           a.k == V_DIM ? ir_dim_str(a.i, b1, 32) : el_kind_name(a.k), ast_op_str(op),
           b.k == V_DIM ? ir_dim_str(b.i, b2, 32) : el_kind_name(b.k));
  return el_poison();
overflow:
  el_error(e, loc, "integer overflow in a batch-size computation");
  return el_poison();
}

static Value concat_values(Elab *e, AstLoc loc, Value a, Value b) {
  if (a.k == V_STR) {
    size_t la = strlen(a.s), lb = strlen(b.s);
    char *s = el_alloc(e, loc, la + lb + 1);
    if (!s) return el_poison();
    memcpy(s, a.s, la);
    memcpy(s + la, b.s, lb + 1);
    return el_str(s);
  }
  if ((int64_t)a.l->n + b.l->n > INT_MAX / 2) {
    el_fatal(e, loc, "list too long: stopping");
    return el_poison();
  }
  ElList *l = el_list_new(e, loc, a.l->n + b.l->n);
  if (!l) return el_poison();
  memcpy(l->v, a.l->v, (size_t)a.l->n * sizeof(Value));
  memcpy(l->v + a.l->n, b.l->v, (size_t)b.l->n * sizeof(Value));
  return el_list_value(l);
}

/* ======================================================================== */
/* tensor arithmetic                                                        */
/* ======================================================================== */

static Value scalar_op(Elab *e, AstLoc loc, IrOp op, IrNode *x, double f) {
  IrAttrs at = {.f = (float)f};
  return el_node(e, loc, op, 1, &x, &at);
}

/* t op t broadcasts; t op s and s op t become scale / add_scalar / neg / recip
 * / pow_scalar as LANGUAGE.md says. */
static Value tensor_arith(Elab *e, AstLoc loc, int op, Value a, Value b) {
  if (a.k == V_TENSOR && b.k == V_TENSOR) {
    IrOp ir;
    switch (op) {
    case '+': ir = IR_ADD; break;
    case '-': ir = IR_SUB; break;
    case '*': ir = IR_MUL; break;
    case '/': ir = IR_DIV; break;
    default:
      el_error(e, loc, "operator %s is not defined between tensors (use + - * /)", ast_op_str(op));
      return el_poison();
    }
    IrNode *in[2] = {a.t, b.t};
    return el_node(e, loc, ir, 2, in, NULL);
  }
  Value s = a.k == V_TENSOR ? b : a;
  IrNode *t = a.k == V_TENSOR ? a.t : b.t;
  if (!is_num(s)) {
    el_error(e, loc, "cannot apply %s to %s and %s (a tensor combines with a tensor, an int or a float)",
             ast_op_str(op), el_describe(e, a), el_describe(e, b));
    return el_poison();
  }
  double f = num(s);
  int tensor_left = a.k == V_TENSOR;
  switch (op) {
  case '+': return scalar_op(e, loc, IR_ADD_SCALAR, t, f);
  case '*': return scalar_op(e, loc, IR_SCALE, t, f);
  case '-':
    if (tensor_left) return scalar_op(e, loc, IR_ADD_SCALAR, t, -f);
    {
      Value n = el_node(e, loc, IR_NEG, 1, &t, NULL);
      return n.k == V_TENSOR ? scalar_op(e, loc, IR_ADD_SCALAR, n.t, f) : n;
    }
  case '/':
    if (tensor_left) {
      if (f == 0) {
        el_error(e, loc, "division of a tensor by zero");
        return el_poison();
      }
      return scalar_op(e, loc, IR_SCALE, t, 1.0 / f);
    }
    {
      Value r = el_node(e, loc, IR_RECIP, 1, &t, NULL);
      return r.k == V_TENSOR ? scalar_op(e, loc, IR_SCALE, r.t, f) : r;
    }
  case AST_OP_POW:
    if (tensor_left) return scalar_op(e, loc, IR_POW_SCALAR, t, f);
    el_error(e, loc, "a number raised to a tensor power is not supported (tensor ** number is)");
    return el_poison();
  default:
    el_error(e, loc, "operator %s is not defined for tensors (use + - * / **)", ast_op_str(op));
    return el_poison();
  }
}

static int values_equal(Value a, Value b) {
  if (is_num(a) && is_num(b)) {
    if (a.k == V_INT && b.k == V_INT) return a.i == b.i;
    return num(a) == num(b);
  }
  if (a.k != b.k) return 0;
  switch (a.k) {
  case V_NONE: return 1;
  case V_BOOL:
  case V_DIM: return a.i == b.i;
  case V_STR: return !strcmp(a.s, b.s);
  case V_LIST:
    if (a.l->n != b.l->n) return 0;
    for (int i = 0; i < a.l->n; i++)
      if (!values_equal(a.l->v[i], b.l->v[i])) return 0;
    return 1;
  case V_TENSOR: return a.t == b.t;
  case V_FN: return a.fn == b.fn;
  default: return 0;
  }
}

Value el_compare(Elab *e, AstLoc loc, int op, Value a, Value b) {
  if (a.k == V_TENSOR || b.k == V_TENSOR) {
    el_error(e, loc, "comparison %s needs compile-time values, got %s and %s", ast_op_str(op),
             el_describe(e, a), el_describe(e, b));
    return el_poison();
  }
  if (op == AST_OP_EQ) return el_bool(values_equal(a, b));
  if (op == AST_OP_NE) return el_bool(!values_equal(a, b));
  int c;
  if (is_num(a) && is_num(b)) {
    if (a.k == V_INT && b.k == V_INT) c = (a.i > b.i) - (a.i < b.i);
    else c = (num(a) > num(b)) - (num(a) < num(b));
  } else if (a.k == V_STR && b.k == V_STR) {
    c = strcmp(a.s, b.s);
    c = (c > 0) - (c < 0);
  } else if (a.k == V_DIM && b.k == V_DIM) {
    c = (a.i < b.i) - (a.i > b.i); /* more negative = larger */
  } else {
    el_error(e, loc, "cannot order %s and %s with %s", el_describe(e, a), el_describe(e, b),
             ast_op_str(op));
    return el_poison();
  }
  switch (op) {
  case '<': return el_bool(c < 0);
  case AST_OP_LE: return el_bool(c <= 0);
  case '>': return el_bool(c > 0);
  case AST_OP_GE: return el_bool(c >= 0);
  }
  ditc_unreachable();
}

Value el_arith(Elab *e, AstLoc loc, int op, Value a, Value b) {
  if (a.k == V_TENSOR || b.k == V_TENSOR) return tensor_arith(e, loc, op, a, b);
  if (a.k == V_INT && b.k == V_INT) return int_arith(e, loc, op, a.i, b.i);
  if (is_num(a) && is_num(b)) return float_arith(e, loc, op, num(a), num(b));
  if (a.k == V_DIM || b.k == V_DIM) return dim_arith(e, loc, op, a, b);
  if (op == '+' && ((a.k == V_STR && b.k == V_STR) || (a.k == V_LIST && b.k == V_LIST)))
    return concat_values(e, loc, a, b);
  el_error(e, loc, "unsupported operand types for %s: %s and %s", ast_op_str(op), el_describe(e, a),
           el_describe(e, b));
  return el_poison();
}

/* ---- --set NAME=VALUE ---------------------------------------------------- */

/* A number of --set's list form: an int, else a finite float. */
static int parse_number(const char *s, size_t len, Value *out) {
  char buf[64], *end;
  while (len && *s == ' ') s++, len--;
  while (len && s[len - 1] == ' ') len--;
  if (!len || len >= sizeof buf) return -1;
  memcpy(buf, s, len);
  buf[len] = 0;
  errno = 0;
  long long i = strtoll(buf, &end, 10);
  if (!*end && errno == 0) return *out = el_int(i), 0;
  errno = 0;
  double f = strtod(buf, &end);
  if (!*end && isfinite(f)) return *out = el_float(f), 0;
  return -1;
}

/* --set NAME=32,64 (or [32, 64], or [] for the empty list): a list of numbers. */
static int parse_list_setting(Elab *e, const FeSetting *set, Value *out) {
  const char *v = set->value;
  size_t len = strlen(v);
  if (len >= 2 && v[0] == '[' && v[len - 1] == ']') v++, len -= 2;
  int n = 0;
  for (size_t i = 0; i < len; i++) n += v[i] == ',';
  int empty = 1;
  for (size_t i = 0; i < len; i++) empty &= v[i] == ' ';
  ElList *l = el_list_new(e, (AstLoc){0}, empty ? 0 : n + 1);
  if (!l) return -1;
  for (int k = 0; k < l->n; k++) {
    const char *comma = memchr(v, ',', len);
    size_t item = comma ? (size_t)(comma - v) : len;
    if (parse_number(v, item, &l->v[k])) {
      size_t lead = 0, n = item;
      while (lead < n && v[lead] == ' ') lead++;
      while (n > lead && v[n - 1] == ' ') n--;
      fe_error_at(e->diag, e->src->file, "--set %s=%s: item %d ('%.*s') is not a number (a list is "
                  "written 1,2,3 or [1,2,3])", set->name, set->value, k + 1, (int)(n - lead), v + lead);
      return -1;
    }
    v += item + (comma != NULL);
    len -= item + (comma != NULL);
  }
  *out = el_list_value(l);
  return 0;
}

int el_parse_setting(Elab *e, const AstNode *p, const FeSetting *set, Value *out) {
  const char *type = p->s2, *v = set->value;
  char *end;
  if ((type && !strcmp(type, "list")) || (!type && p->a && p->a->kind == AST_LIST))
    return parse_list_setting(e, set, out);
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
