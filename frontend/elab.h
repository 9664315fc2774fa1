/*
 * elab.h - the elaborator's internals, shared by elab.c (statements,
 * expressions, scopes, entries, models) and builtins.c (the builtin
 * functions).
 *
 * Values are small structs passed by value; lists and strings live in the
 * elaboration arena and are immutable, so they can be shared freely.  A
 * failed computation yields a POISON value: every operation on poison gives
 * poison without a new message, so one mistake is reported once.
 */
#ifndef DITC_FE_ELAB_H
#define DITC_FE_ELAB_H

#include "frontend/ast.h"
#include "frontend/frontend.h"

/* Limits that keep hostile programs from hanging or exhausting memory. */
enum {
  EL_MAX_CALL_DEPTH = 200,
  EL_MAX_STMTS = 1000000,
  EL_MAX_NODES = 2000000,
  EL_MAX_ARGS = 8,
};
#define EL_MAX_VALUE_BYTES ((size_t)64 << 20)  /* lists, strings, constants */
#define EL_MAX_STACK_BYTES ((size_t)4 << 20)   /* C stack the recursion may use */

typedef enum {
  V_UNSET,  /* an optional builtin argument that was not given */
  V_POISON, /* the result of something that failed (already reported) */
  V_NONE,
  V_INT,
  V_FLOAT,
  V_BOOL,
  V_STR,
  V_LIST,
  V_DIM,    /* a multiple of the batch: i < 0 encodes (-i) * B like IrDim */
  V_TENSOR,
  V_FN,
} VKind;

typedef struct ElList ElList;
typedef struct ElFn ElFn;
typedef struct {
  VKind k;
  union {
    int64_t i;     /* INT, BOOL, DIM */
    double f;      /* FLOAT */
    const char *s; /* STR */
    ElList *l;     /* LIST */
    IrNode *t;     /* TENSOR */
    ElFn *fn;      /* FN */
  };
} Value;

struct ElList {
  int n;
  Value v[];
};

typedef struct Env Env;
typedef struct {
  const char *name;
  Value v;
} Binding;
/* A frame of names: a function call, an entry, a model, the file. */
struct Env {
  Env *parent;
  Binding *b;
  int n, cap;
  int *index;     /* hash of binding positions + 1, once a frame grows large */
  int index_cap;  /* a power of two, or 0 */
};

/* A user function and the frame it was defined in. */
struct ElFn {
  const AstNode *def;
  Env *env;
};

typedef struct {
  const char **key;
  IrNode **val;
  size_t cap, n;
} ElParamMap;

typedef struct {
  FeDiag *diag;
  const FeSource *src;
  Arena arena;          /* values: lists, strings, closures, scope paths */
  size_t bytes;         /* bytes of values allocated, against EL_MAX_VALUE_BYTES */
  IrGraph *g;
  const char *file;     /* src->file, in the graph's arena (for IrLoc) */
  int depth;            /* user function calls in progress */
  long stmts;           /* statements executed */
  int fatal;            /* a budget ran out or too many errors: unwind */
  const char *scope;    /* the parameter scope: "" or "blocks.3.attn" */
  const char *label_of; /* the scope label_copy was made for */
  const char *label_copy;
  ElParamMap params;
  const AstNode *calls[EL_MAX_CALL_DEPTH]; /* the user calls in progress, for notes */
  Value ret;            /* the value of the last `return` */
  const AstNode *ret_stmt; /* and the statement */
  uintptr_t stack_base;
} Elab;

/* ---- elab.c, for builtins.c ---------------------------------------------- */

static inline Value el_poison(void) { return (Value){.k = V_POISON}; }
static inline Value el_none(void) { return (Value){.k = V_NONE}; }
static inline Value el_int(int64_t i) { return (Value){.k = V_INT, .i = i}; }
static inline Value el_float(double f) { return (Value){.k = V_FLOAT, .f = f}; }
static inline Value el_bool(int b) { return (Value){.k = V_BOOL, .i = b != 0}; }
static inline Value el_str(const char *s) { return (Value){.k = V_STR, .s = s}; }
static inline Value el_tensor(IrNode *t) { return (Value){.k = V_TENSOR, .t = t}; }
/* A list value, or POISON for NULL (a failed el_list_new). */
static inline Value el_list_value(ElList *l) { return l ? (Value){.k = V_LIST, .l = l} : el_poison(); }
/* A size: an int, or a dim when it is a (nonzero) multiple of B. */
static inline Value el_size(IrDim d) { return d < 0 ? (Value){.k = V_DIM, .i = d} : el_int(d); }

void el_error(Elab *e, AstLoc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A budget ran out: report and unwind everything. */
void el_fatal(Elab *e, AstLoc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Arena memory for values, counted against the budget; NULL (reported) when over. */
void *el_alloc(Elab *e, AstLoc loc, size_t n);
ElList *el_list_new(Elab *e, AstLoc loc, int n);
const char *el_kind_name(VKind k);
/* "int", "f32[B, 4]", "list of 3" ... for messages (arena string). */
const char *el_describe(Elab *e, Value v);
/* A node from ir_node_new with the location and scope label; poison (reported) on error. */
Value el_node(Elab *e, AstLoc loc, IrOp op, int n_in, IrNode *const *in, const IrAttrs *at);
/* A CONST node of f32 data. */
Value el_const_f32(Elab *e, AstLoc loc, IrShape s, const float *data);
IrLoc el_irloc(Elab *e, AstLoc loc);
int el_check_nodes(Elab *e, AstLoc loc);
/* ---- the interpreter, shared by elab.c and elab_model.c ------------------------ */

typedef enum { EX_OK, EX_RETURN, EX_STOP } Exec;

Value el_eval(Elab *e, Env *env, const AstNode *n);
Exec el_exec_stmt(Elab *e, Env *env, const AstNode *s);
Exec el_exec_block(Elab *e, Env *env, const AstList *stmts);
/* Bindings of a frame: the innermost binding of name in env only; bind
 * (replacing one of env's own); free a frame's bindings. */
Binding *el_env_find_local(Env *env, const char *name);
void el_env_bind(Env *env, const char *name, Value v);
void el_env_free(Env *env);
/* n (a function or parameter) may be bound under its name: not a builtin's. */
int el_check_bindable(Elab *e, const AstNode *n, const char *what);
/* A value of a declared parameter type (converting int to float); a type the
 * language knows. */
int el_type_ok(Value *v, const char *type);
int el_known_type(const char *type);
/* The shape of dims (B allowed when allow_batch); 0 or -1 after an error. */
int el_eval_shape(Elab *e, Env *env, const AstList *dims, int allow_batch, AstLoc loc, IrShape *out);

/* a op b and a <cmp> b for the binary operators of the language (values.c);
 * errors are reported at loc and yield POISON. */
Value el_arith(Elab *e, AstLoc loc, int op, Value a, Value b);
Value el_compare(Elab *e, AstLoc loc, int op, Value a, Value b);
/* The value `--set` gives model parameter p (its declared type, else its
 * default's kind, else the first of int, float, bool, str that fits);
 * 0, or -1 after an error (values.c). */
int el_parse_setting(Elab *e, const AstNode *p, const FeSetting *set, Value *out);

/* ---- builtins.c ----------------------------------------------------------- */

typedef struct ElBuiltin ElBuiltin;
const ElBuiltin *el_builtin_find(const char *name);
/* Its index in the table (-1: not a builtin), and back. */
int el_builtin_index(const char *name);
const ElBuiltin *el_builtin_at(int i);
/* Calls a builtin with the call's arguments already evaluated: pos[0..n_pos)
 * and the named ones kw[i] = value of kw_names[i].  Reports its own errors. */
Value el_builtin_call(Elab *e, const ElBuiltin *b, const AstNode *call, const Value *pos,
                      const AstNode *const *pos_node, int n_pos, const char *const *kw_names,
                      const Value *kw, const AstNode *const *kw_node, int n_kw);
/* The full 2-D sin-cos table, [g*g, d] row-major (d a multiple of 4); for tests. */
void el_sincos_2d(int d, int g, float *out);

/* ---- the entry point used by build.c --------------------------------------- */

/* Elaborate `entry` of the model chosen by `config` (NULL: the file's last
 * model with its defaults).  Returns the number of errors; on success fills
 * out (graph, model, config, params). */
int fe_elaborate(const FeSource *src, const AstNode *file, const char *config,
                 const FeSetting *sets, int n_sets, const char *entry, FeDiag *diag, FeModel *out);

#endif
