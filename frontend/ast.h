/*
 * ast.h - the front end's internals: source text and diagnostics, the syntax
 * tree the parser builds, and the entry points shared by the parser, the
 * elaborator and the public API in frontend.h.
 *
 * The tree is uniform (one AstNode struct, a kind, a few generic fields) and
 * lives in one arena, so bison's error recovery can drop half-built subtrees
 * without leaking and the whole tree is freed at once.  Which fields a kind
 * uses is listed next to the kind.
 */
#ifndef DITC_FE_AST_H
#define DITC_FE_AST_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ir/ir.h"

/* ======================================================================== */
/* sources and diagnostics (diag.c)                                         */
/* ======================================================================== */

/* One source text; `file` is the label printed in diagnostics. */
typedef struct {
  const char *file;
  const char *text;
  size_t len;
} FeSource;

/* Where errors go.  After `limit` errors the rest are counted but not printed
 * and `stop` is set so that callers can give up early. */
typedef struct {
  FILE *out;      /* may be NULL: errors are only counted */
  int n_errors;
  int limit;      /* 0: the default (100) */
  int stop;
  int last_shown; /* the last error was printed: its notes may follow */
} FeDiag;

/* `file:line:col: error: message`, the source line and a caret under col. */
void fe_error(FeDiag *d, const FeSource *src, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
void fe_verror(FeDiag *d, const FeSource *src, int line, int col, const char *fmt, va_list ap);
/* `file:line:col: note: message` after the error it explains (no source echo). */
void fe_note(FeDiag *d, const FeSource *src, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* An error without a position: `where: error: message` (where may be NULL). */
void fe_error_at(FeDiag *d, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ======================================================================== */
/* the syntax tree (ast.c)                                                  */
/* ======================================================================== */

typedef enum {
  /* expressions */
  AST_INT,        /* i; s = spelling */
  AST_FLOAT,      /* f; s = spelling */
  AST_STR,        /* s */
  AST_BOOL,       /* i */
  AST_NONE,
  AST_NAME,       /* s */
  AST_LIST,       /* l1 = elements */
  AST_BINOP,      /* op, a, b; the location is the operator's */
  AST_UNOP,       /* op ('-' or AST_OP_NOT), a */
  AST_CALL,       /* s = callee, l1 = arguments (exprs, then AST_KWARG), l2 = scope path or NULL */
  AST_INDEX,      /* a[b] */
  AST_PARAM,      /* l1 = path, l2 = dims, a = default or NULL */
  AST_KWARG,      /* s = a */
  /* path segments of scoped calls and params */
  AST_SEG_NAME,   /* s */
  AST_SEG_EXPR,   /* [a] */
  /* statements */
  AST_ASSIGN,     /* l1 = targets (AST_NAME), a = value */
  AST_RETURN,     /* l1 = values */
  AST_IF,         /* a = condition, l1 = then, b = else (AST_BLOCK, AST_IF) or NULL */
  AST_BLOCK,      /* l1 = statements */
  AST_FOR,        /* s = variable, a = from, b = to, l1 = body */
  AST_ASSERT,     /* a = condition, b = message or NULL */
  AST_EXPR_STMT,  /* a */
  /* declarations */
  AST_PARAM_DECL, /* s = name, s2 = type or NULL, a = default or NULL */
  AST_INPUT,      /* s = name, s2 = dtype, l1 = dims */
  AST_FN,         /* s = name, l1 = parameters, l2 = body */
  AST_MODEL,      /* s = name, l1 = parameters, l2 = items (statements, AST_FN, AST_ENTRY) */
  AST_ENTRY,      /* s = name, l1 = inputs, l2 = body */
  AST_CONFIG,     /* s = configuration name, s2 = model, l1 = AST_KWARG */
  AST_FILE,       /* l1 = items */
  AST_KIND_COUNT
} AstKind;

/* Operators of AST_BINOP / AST_UNOP: single characters are themselves. */
enum {
  AST_OP_POW = 256, /* ** */
  AST_OP_FLOORDIV,  /* // */
  AST_OP_EQ, AST_OP_NE, AST_OP_LE, AST_OP_GE,
  AST_OP_AND, AST_OP_OR, AST_OP_NOT
};

typedef struct AstNode AstNode;
typedef struct {
  AstNode **v;
  int n, cap;
} AstList;

typedef struct {
  int line, col;
} AstLoc;

struct AstNode {
  AstKind kind;
  AstLoc loc;
  int op;
  const char *s, *s2;
  int64_t i;
  double f;
  AstNode *a, *b;
  AstList *l1, *l2;
};

const char *ast_kind_name(AstKind k);
const char *ast_op_str(int op); /* "+", "**", "and", ... */

/* The parser's context: the arena every node comes from, the source and where
 * errors go.  `root` is the file after a parse (NULL if nothing parsed). */
typedef struct {
  Arena *arena;
  const FeSource *src;
  FeDiag *diag;
  AstNode *root;
  int n_syntax_errors;
} FeParse;

/* The scanner's extra data: the parse it feeds and the current position. */
typedef struct {
  FeParse *ps;
  int line, col;
} FeLex;

/* Constructors used by the grammar's actions (one call each). */
AstLoc ast_loc(int line, int col);
AstList *ast_list(FeParse *p);
AstList *ast_list1(FeParse *p, AstNode *first);
AstList *ast_push(FeParse *p, AstList *l, AstNode *n);
AstList *ast_cons(FeParse *p, AstNode *first, AstList *rest);
AstNode *ast_node(FeParse *p, AstKind k, AstLoc loc);
AstNode *ast_int(FeParse *p, AstLoc loc, int64_t v, const char *spelling);
AstNode *ast_float(FeParse *p, AstLoc loc, double v, const char *spelling);
AstNode *ast_str(FeParse *p, AstLoc loc, const char *s);
AstNode *ast_bool(FeParse *p, AstLoc loc, int v);
AstNode *ast_none(FeParse *p, AstLoc loc);
AstNode *ast_name(FeParse *p, AstLoc loc, const char *s);
AstNode *ast_list_expr(FeParse *p, AstLoc loc, AstList *elems);
AstNode *ast_binop(FeParse *p, AstLoc loc, int op, AstNode *a, AstNode *b);
AstNode *ast_unop(FeParse *p, AstLoc loc, int op, AstNode *a);
AstNode *ast_call(FeParse *p, AstLoc loc, const char *fn, AstList *scope, AstList *args);
AstNode *ast_index(FeParse *p, AstLoc loc, AstNode *a, AstNode *idx);
AstNode *ast_param(FeParse *p, AstLoc loc, AstList *path, AstList *dims, AstNode *def);
AstNode *ast_kwarg(FeParse *p, AstLoc loc, const char *name, AstNode *v);
AstNode *ast_seg_name(FeParse *p, AstLoc loc, const char *s);
AstNode *ast_seg_expr(FeParse *p, AstLoc loc, AstNode *e);
/* Appends the segments of a path element spelled as a number: "3" or "1.2". */
AstList *ast_push_seg_number(FeParse *p, AstList *path, AstLoc loc, const char *spelling);
AstNode *ast_assign(FeParse *p, AstLoc loc, AstList *targets, AstNode *v);
AstNode *ast_return(FeParse *p, AstLoc loc, AstList *values);
AstNode *ast_if(FeParse *p, AstLoc loc, AstNode *cond, AstList *then, AstNode *els);
AstNode *ast_block(FeParse *p, AstLoc loc, AstList *stmts);
AstNode *ast_for(FeParse *p, AstLoc loc, const char *var, AstNode *from, AstNode *to,
                 AstList *body);
AstNode *ast_assert(FeParse *p, AstLoc loc, AstNode *cond, AstNode *msg);
AstNode *ast_expr_stmt(FeParse *p, AstLoc loc, AstNode *e);
AstNode *ast_param_decl(FeParse *p, AstLoc loc, const char *name, const char *type,
                        AstNode *def);
AstNode *ast_input(FeParse *p, AstLoc loc, const char *name, const char *dtype, AstList *dims);
AstNode *ast_fn(FeParse *p, AstLoc loc, const char *name, AstList *params, AstList *body);
AstNode *ast_model(FeParse *p, AstLoc loc, const char *name, AstList *params, AstList *items);
AstNode *ast_entry(FeParse *p, AstLoc loc, const char *name, AstList *inputs, AstList *body);
AstNode *ast_config(FeParse *p, AstLoc loc, const char *name, const char *model,
                    AstList *kwargs);
AstNode *ast_file(FeParse *p, AstLoc loc, AstList *items);

/* An S-expression rendering of a tree, for tests: (call f (int 1) (kw a (name x))). */
void ast_print(const AstNode *n, FILE *out);

/* ======================================================================== */
/* lexing and parsing (lexer.l, parser.y)                                   */
/* ======================================================================== */

/* Parse src into *root (arena-owned); errors go to diag.  Returns the number
 * of lexical and syntax errors (0: *root is a complete file). */
int fe_parse(const FeSource *src, Arena *arena, FeDiag *diag, AstNode **root);

/* For tests: the tokens of src, one per line as "line:col KIND text". */
void fe_dump_tokens(const FeSource *src, FeDiag *diag, FILE *out);

#endif
