/*
 * ast.c - constructors for the syntax tree and a printer for tests.
 *
 * Everything comes from the parse arena: lists grow by copying into a new
 * arena block (the old one is simply abandoned), which keeps the grammar's
 * actions single constructor calls and makes error recovery leak-free.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/ast.h"

static const char *const kind_names[AST_KIND_COUNT] = {
    [AST_INT] = "int",         [AST_FLOAT] = "float",       [AST_STR] = "str",
    [AST_BOOL] = "bool",       [AST_NONE] = "none",         [AST_NAME] = "name",
    [AST_LIST] = "list",       [AST_BINOP] = "binop",       [AST_UNOP] = "unop",
    [AST_CALL] = "call",       [AST_INDEX] = "index",       [AST_PARAM] = "param",
    [AST_KWARG] = "kw",        [AST_SEG_NAME] = "seg",      [AST_SEG_EXPR] = "seg-expr",
    [AST_ASSIGN] = "assign",   [AST_RETURN] = "return",     [AST_IF] = "if",
    [AST_BLOCK] = "block",     [AST_FOR] = "for",           [AST_ASSERT] = "assert",
    [AST_EXPR_STMT] = "expr",  [AST_PARAM_DECL] = "decl",   [AST_INPUT] = "input",
    [AST_FN] = "fn",           [AST_MODEL] = "model",       [AST_ENTRY] = "entry",
    [AST_CONFIG] = "config",   [AST_FILE] = "file",
};

const char *ast_kind_name(AstKind k) {
  return k >= 0 && k < AST_KIND_COUNT && kind_names[k] ? kind_names[k] : "?";
}

const char *ast_op_str(int op) {
  static char single[AST_OP_POW][2];
  switch (op) {
  case AST_OP_POW: return "**";
  case AST_OP_FLOORDIV: return "//";
  case AST_OP_EQ: return "==";
  case AST_OP_NE: return "!=";
  case AST_OP_LE: return "<=";
  case AST_OP_GE: return ">=";
  case AST_OP_AND: return "and";
  case AST_OP_OR: return "or";
  case AST_OP_NOT: return "not";
  default:
    if (op > 0 && op < AST_OP_POW) {
      single[op][0] = (char)op;
      return single[op];
    }
    return "?";
  }
}

AstLoc ast_loc(int line, int col) { return (AstLoc){line, col}; }

AstList *ast_list(FeParse *p) { return arena_alloc(p->arena, sizeof(AstList)); }

AstList *ast_push(FeParse *p, AstList *l, AstNode *n) {
  if (!l) l = ast_list(p);
  if (!n) return l; /* a part dropped by error recovery */
  if (l->n == l->cap) {
    int cap = l->cap ? 2 * l->cap : 4;
    AstNode **v = arena_alloc(p->arena, (size_t)cap * sizeof *v);
    if (l->n) memcpy(v, l->v, (size_t)l->n * sizeof *v);
    l->v = v;
    l->cap = cap;
  }
  l->v[l->n++] = n;
  return l;
}

AstList *ast_list1(FeParse *p, AstNode *first) { return ast_push(p, ast_list(p), first); }

AstList *ast_cons(FeParse *p, AstNode *first, AstList *rest) {
  AstList *l = ast_list1(p, first);
  for (int i = 0; rest && i < rest->n; i++) ast_push(p, l, rest->v[i]);
  return l;
}

AstNode *ast_node(FeParse *p, AstKind k, AstLoc loc) {
  AstNode *n = arena_alloc(p->arena, sizeof *n);
  n->kind = k;
  n->loc = loc;
  return n;
}

AstNode *ast_int(FeParse *p, AstLoc loc, int64_t v, const char *spelling) {
  AstNode *n = ast_node(p, AST_INT, loc);
  n->i = v;
  n->s = spelling;
  return n;
}

AstNode *ast_float(FeParse *p, AstLoc loc, double v, const char *spelling) {
  AstNode *n = ast_node(p, AST_FLOAT, loc);
  n->f = v;
  n->s = spelling;
  return n;
}

AstNode *ast_str(FeParse *p, AstLoc loc, const char *s) {
  AstNode *n = ast_node(p, AST_STR, loc);
  n->s = s;
  return n;
}

AstNode *ast_bool(FeParse *p, AstLoc loc, int v) {
  AstNode *n = ast_node(p, AST_BOOL, loc);
  n->i = v;
  return n;
}

AstNode *ast_none(FeParse *p, AstLoc loc) { return ast_node(p, AST_NONE, loc); }

AstNode *ast_name(FeParse *p, AstLoc loc, const char *s) {
  AstNode *n = ast_node(p, AST_NAME, loc);
  n->s = s;
  return n;
}

AstNode *ast_list_expr(FeParse *p, AstLoc loc, AstList *elems) {
  AstNode *n = ast_node(p, AST_LIST, loc);
  n->l1 = elems ? elems : ast_list(p);
  return n;
}

AstNode *ast_binop(FeParse *p, AstLoc loc, int op, AstNode *a, AstNode *b) {
  AstNode *n = ast_node(p, AST_BINOP, loc);
  n->op = op;
  n->a = a;
  n->b = b;
  return n;
}

AstNode *ast_unop(FeParse *p, AstLoc loc, int op, AstNode *a) {
  AstNode *n = ast_node(p, AST_UNOP, loc);
  n->op = op;
  n->a = a;
  return n;
}

AstNode *ast_call(FeParse *p, AstLoc loc, const char *fn, AstList *scope, AstList *args) {
  AstNode *n = ast_node(p, AST_CALL, loc);
  n->s = fn;
  n->l1 = args ? args : ast_list(p);
  n->l2 = scope;
  return n;
}

AstNode *ast_index(FeParse *p, AstLoc loc, AstNode *a, AstNode *idx) {
  AstNode *n = ast_node(p, AST_INDEX, loc);
  n->a = a;
  n->b = idx;
  return n;
}

AstNode *ast_param(FeParse *p, AstLoc loc, AstList *path, AstList *dims, AstNode *def) {
  AstNode *n = ast_node(p, AST_PARAM, loc);
  n->l1 = path;
  n->l2 = dims;
  n->a = def;
  return n;
}

AstNode *ast_kwarg(FeParse *p, AstLoc loc, const char *name, AstNode *v) {
  AstNode *n = ast_node(p, AST_KWARG, loc);
  n->s = name;
  n->a = v;
  return n;
}

AstNode *ast_seg_name(FeParse *p, AstLoc loc, const char *s) {
  AstNode *n = ast_node(p, AST_SEG_NAME, loc);
  n->s = s;
  return n;
}

AstNode *ast_seg_expr(FeParse *p, AstLoc loc, AstNode *e) {
  AstNode *n = ast_node(p, AST_SEG_EXPR, loc);
  n->a = e;
  return n;
}

/* `blocks.1.2` lexes as blocks . FLOAT(1.2): a path wants the two segments.
 * Numbers are kept as written ("01" stays "01"), like names. */
AstList *ast_push_seg_number(FeParse *p, AstList *path, AstLoc loc, const char *spelling) {
  const char *dot = strchr(spelling, '.');
  if (!dot) return ast_push(p, path, ast_seg_name(p, loc, spelling));
  size_t n = (size_t)(dot - spelling);
  char *first = arena_alloc(p->arena, n + 1);
  memcpy(first, spelling, n);
  path = ast_push(p, path, ast_seg_name(p, loc, first));
  return ast_push(p, path, ast_seg_name(p, ast_loc(loc.line, loc.col + (int)n + 1), dot + 1));
}

AstNode *ast_assign(FeParse *p, AstLoc loc, AstList *targets, AstNode *v) {
  AstNode *n = ast_node(p, AST_ASSIGN, loc);
  n->l1 = targets;
  n->a = v;
  return n;
}

AstNode *ast_return(FeParse *p, AstLoc loc, AstList *values) {
  AstNode *n = ast_node(p, AST_RETURN, loc);
  n->l1 = values;
  return n;
}

AstNode *ast_if(FeParse *p, AstLoc loc, AstNode *cond, AstList *then, AstNode *els) {
  AstNode *n = ast_node(p, AST_IF, loc);
  n->a = cond;
  n->l1 = then ? then : ast_list(p);
  n->b = els;
  return n;
}

AstNode *ast_block(FeParse *p, AstLoc loc, AstList *stmts) {
  AstNode *n = ast_node(p, AST_BLOCK, loc);
  n->l1 = stmts ? stmts : ast_list(p);
  return n;
}

AstNode *ast_for(FeParse *p, AstLoc loc, const char *var, AstNode *from, AstNode *to,
                 AstList *body) {
  AstNode *n = ast_node(p, AST_FOR, loc);
  n->s = var;
  n->a = from;
  n->b = to;
  n->l1 = body ? body : ast_list(p);
  return n;
}

AstNode *ast_assert(FeParse *p, AstLoc loc, AstNode *cond, AstNode *msg) {
  AstNode *n = ast_node(p, AST_ASSERT, loc);
  n->a = cond;
  n->b = msg;
  return n;
}

AstNode *ast_expr_stmt(FeParse *p, AstLoc loc, AstNode *e) {
  AstNode *n = ast_node(p, AST_EXPR_STMT, loc);
  n->a = e;
  return n;
}

AstNode *ast_param_decl(FeParse *p, AstLoc loc, const char *name, const char *type,
                        AstNode *def) {
  AstNode *n = ast_node(p, AST_PARAM_DECL, loc);
  n->s = name;
  n->s2 = type;
  n->a = def;
  return n;
}

AstNode *ast_input(FeParse *p, AstLoc loc, const char *name, const char *dtype, AstList *dims) {
  AstNode *n = ast_node(p, AST_INPUT, loc);
  n->s = name;
  n->s2 = dtype;
  n->l1 = dims ? dims : ast_list(p);
  return n;
}

AstNode *ast_fn(FeParse *p, AstLoc loc, const char *name, AstList *params, AstList *body) {
  AstNode *n = ast_node(p, AST_FN, loc);
  n->s = name;
  n->l1 = params ? params : ast_list(p);
  n->l2 = body ? body : ast_list(p);
  return n;
}

AstNode *ast_model(FeParse *p, AstLoc loc, const char *name, AstList *params, AstList *items) {
  AstNode *n = ast_node(p, AST_MODEL, loc);
  n->s = name;
  n->l1 = params ? params : ast_list(p);
  n->l2 = items ? items : ast_list(p);
  return n;
}

AstNode *ast_entry(FeParse *p, AstLoc loc, const char *name, AstList *inputs, AstList *body) {
  AstNode *n = ast_node(p, AST_ENTRY, loc);
  n->s = name;
  n->l1 = inputs ? inputs : ast_list(p);
  n->l2 = body ? body : ast_list(p);
  return n;
}

AstNode *ast_config(FeParse *p, AstLoc loc, const char *name, const char *model,
                    AstList *kwargs) {
  AstNode *n = ast_node(p, AST_CONFIG, loc);
  n->s = name;
  n->s2 = model;
  n->l1 = kwargs ? kwargs : ast_list(p);
  return n;
}

AstNode *ast_file(FeParse *p, AstLoc loc, AstList *items) {
  AstNode *n = ast_node(p, AST_FILE, loc);
  n->l1 = items ? items : ast_list(p);
  p->root = n;
  return n;
}

/* ---- printing ------------------------------------------------------------ */

static void print_list(const AstList *l, FILE *out) {
  fputc('(', out);
  for (int i = 0; l && i < l->n; i++) {
    if (i) fputc(' ', out);
    ast_print(l->v[i], out);
  }
  fputc(')', out);
}

static void print_str(const char *s, FILE *out) {
  fputc('"', out);
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') fprintf(out, "\\%c", *s);
    else if (*s == '\n') fputs("\\n", out);
    else fputc(*s, out);
  }
  fputc('"', out);
}

/* (kind fields...), children in field order; lists in parentheses. */
void ast_print(const AstNode *n, FILE *out) {
  if (!n) {
    fputs("_", out);
    return;
  }
  fprintf(out, "(%s", ast_kind_name(n->kind));
  switch (n->kind) {
  case AST_INT: fprintf(out, " %lld", (long long)n->i); break;
  case AST_FLOAT: fprintf(out, " %g", n->f); break;
  case AST_STR: fputc(' ', out); print_str(n->s, out); break;
  case AST_BOOL: fputs(n->i ? " true" : " false", out); break;
  case AST_BINOP:
  case AST_UNOP: fprintf(out, " %s", ast_op_str(n->op)); break;
  case AST_CONFIG: fputc(' ', out); print_str(n->s, out); fprintf(out, " %s", n->s2); break;
  default:
    if (n->s) fprintf(out, " %s", n->s);
    if (n->s2) fprintf(out, ":%s", n->s2);
    break;
  }
  if (n->kind == AST_CALL && n->l2) {
    fputs(" @", out);
    print_list(n->l2, out);
  }
  if (n->kind == AST_ASSIGN) { /* targets, value */
    fputc(' ', out);
    print_list(n->l1, out);
    fputc(' ', out);
    ast_print(n->a, out);
    fputc(')', out);
    return;
  }
  if (n->a) { fputc(' ', out); ast_print(n->a, out); }
  if (n->kind == AST_IF) { /* condition, then, else */
    fputc(' ', out);
    print_list(n->l1, out);
    if (n->b) { fputc(' ', out); ast_print(n->b, out); }
    fputc(')', out);
    return;
  }
  if (n->b) { fputc(' ', out); ast_print(n->b, out); }
  if (n->l1) { fputc(' ', out); print_list(n->l1, out); }
  if (n->l2 && n->kind != AST_CALL) { fputc(' ', out); print_list(n->l2, out); }
  fputc(')', out);
}
