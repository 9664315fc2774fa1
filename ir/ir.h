/*
 * ir.h - ditc's typed graph IR: what every later stage needs of it.
 *
 * A graph is a list of nodes in topological order.  Every node has an op
 * (ops.def), its inputs, an output dtype and shape, and typed attributes.
 * Shapes carry a symbolic batch: a dimension d >= 0 is a fixed size, d < 0
 * means (-d) * B where B is the batch bound at execution time, so one graph
 * serves every batch size (and the classifier-free-guidance graph's 2B rows).
 *
 * Nodes, their input arrays and their names come from the graph's arena and
 * are freed together by ir_graph_free().  Library functions report errors
 * through an IrErr and a non-zero return; nothing here exits, except when
 * memory runs out (xmalloc: a clean error and exit 1, see ir/fileio.h).
 *
 * Sections: support - dtypes and shapes - nodes and graphs - building -
 * host evaluation - verify, dump, cost.
 */
#ifndef DITC_IR_H
#define DITC_IR_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ======================================================================== */
/* support                                                                  */
/* ======================================================================== */

/* An error message filled in by a failing call; the caller decides what to do. */
typedef struct {
  char msg[8192];
} IrErr;

/* printf-style: fill err (may be NULL) and return -1. */
int ir_errf(IrErr *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Internal invariants: say where, then abort.  Never for user errors. */
_Noreturn void ditc_fatal(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define ditc_unreachable() ditc_fatal(__FILE__, __LINE__, "unreachable")
#define DITC_ASSERT(c) \
  do { if (!(c)) ditc_fatal(__FILE__, __LINE__, "assertion failed: %s", #c); } while (0)

/* Checked allocation: out of memory is "ditc: error: out of memory (asked for
 * N bytes)", the temporaries removed and exit 1 (fio_oom, ir/fileio.h). */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);

/* Bump allocator; everything is freed at once. */
typedef struct ArenaBlock ArenaBlock;
typedef struct {
  ArenaBlock *head;
} Arena;
void *arena_alloc(Arena *a, size_t n); /* zeroed, 16-byte aligned */
char *arena_strdup(Arena *a, const char *s);
char *arena_printf(Arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void arena_free(Arena *a);

/* Source location of the DSL expression a node came from (file may be NULL). */
typedef struct {
  const char *file;
  int line, col;
} IrLoc;

/* ======================================================================== */
/* dtypes and shapes                                                        */
/* ======================================================================== */

typedef enum {
  IR_F32,
  IR_F16,
  IR_BF16,
  IR_I8,
  IR_I32,
  IR_E4M3, /* fp8 e4m3 (OCP), 1 byte: only quantize_e4m3 makes it (ir/scalar.h) */
  IR_DTYPE_COUNT
} IrDType;

const char *ir_dtype_name(IrDType t);  /* "f32", "f16", ... */
int ir_dtype_parse(const char *s, IrDType *out); /* 0 on success */
size_t ir_dtype_size(IrDType t);
int ir_dtype_is_float(IrDType t);

/* IEEE half / bfloat16 conversions, round to nearest even (ir/half.c). */
float ir_f16_to_f32(uint16_t h);
uint16_t ir_f32_to_f16(float f);
float ir_bf16_to_f32(uint16_t h);
uint16_t ir_f32_to_bf16(float f);

#define IR_MAX_RANK 6

/* d >= 0: fixed size; d < 0: (-d) * B. */
typedef int64_t IrDim;
#define IR_BATCH ((IrDim)-1)

typedef struct {
  int rank;
  IrDim d[IR_MAX_RANK];
} IrShape;

static inline int ir_dim_is_sym(IrDim d) { return d < 0; }
/* Concrete size for batch B. */
static inline int64_t ir_dim_eval(IrDim d, int64_t batch) { return d < 0 ? -d * batch : d; }
/* Writes "B", "2B", "64", ... into buf; returns buf. */
char *ir_dim_str(IrDim d, char *buf, size_t n);
/* "[2B, 4, 16, 16]" */
char *ir_shape_str(const IrShape *s, char *buf, size_t n);
int ir_shape_eq(const IrShape *a, const IrShape *b);
/* Number of elements for batch B (>= 0). */
int64_t ir_shape_numel(const IrShape *s, int64_t batch);
IrShape ir_shape_make(int rank, const IrDim *d);
/* Element count as fixed * B^sym (symbolic multipliers folded into fixed);
 * -1 on overflow. */
int ir_shape_count(const IrShape *s, int64_t *fixed, int *sym);

/* ======================================================================== */
/* nodes and graphs                                                         */
/* ======================================================================== */

typedef enum {
#define X(e, name, arity, cls, attrs, doc) IR_##e,
#include "ir/ops.def"
#undef X
  IR_OP_COUNT
} IrOp;

typedef enum { IR_CLASS_LEAF, IR_CLASS_UNARY, IR_CLASS_BINARY, IR_CLASS_OTHER } IrOpClass;

const char *ir_op_name(IrOp op);
int ir_op_arity(IrOp op); /* -1 = variadic */
IrOpClass ir_op_class(IrOp op);
const char *ir_op_doc(IrOp op);
int ir_op_parse(const char *name, IrOp *out); /* 0 on success */
/* The op table as `ditc ir --ops` prints it: one op a line, its columns. */
void ir_ops_print(FILE *out);

typedef struct IrNode IrNode;

/* Typed op attributes.  Which an op uses, how each prints and compares: the
 * ATTR rows and ATTRS column of ops.def (ir/attrs.c reads them). */
typedef struct {
  float f;                   /* eps / scalar operand */
  int axis;                  /* reduce_*, slice, concat */
  IrDim start, len;          /* slice (may be symbolic along the batch axis) */
  int k;                     /* topk_softmax, moe_route, moe_gather */
  int perm[IR_MAX_RANK];     /* permute */
  int trans_b;               /* matmul */
  int stride, pad, groups;   /* conv2d */
  int up;                    /* im2col: the nearest upsampling folded into its loads */
  int out_h, out_w;          /* adaptive_avg_pool2d */
  IrShape shape;             /* reshape target */
  IrDType to;                /* cast target */
} IrAttrs;

/* The attributes: one per ATTR row of ops.def. */
typedef enum {
#define ATTR(key, name, field, kind, doc) IR_ATTR_##key,
#include "ir/ops.def"
#undef ATTR
  IR_ATTR_COUNT
} IrAttrKey;

/* How an attribute prints and compares (ops.def explains each). */
typedef enum {
  IR_ATTR_KIND_FLOAT,
  IR_ATTR_KIND_INT,
  IR_ATTR_KIND_INT1,
  IR_ATTR_KIND_FLAG,
  IR_ATTR_KIND_DIM,
  IR_ATTR_KIND_PERM,
  IR_ATTR_KIND_SHAPE,
  IR_ATTR_KIND_DTYPE,
} IrAttrKind;

typedef struct {
  const char *name;  /* as the dump prints it: "eps", "axis", ... */
  size_t offset;     /* of its field in IrAttrs */
  size_t size;       /* of that field */
  IrAttrKind kind;
  const char *doc;
} IrAttrInfo;

const IrAttrInfo *ir_attr_info(IrAttrKey k);
/* The attributes op uses: bit k (1u << k) for each IrAttrKey k. */
unsigned ir_op_attrs(IrOp op);
/* " {k=v, ...}": the attributes n's op uses, in ops.def's order; nothing
 * when none prints (a FLAG that is clear, or no attributes). */
void ir_attrs_print(FILE *out, const IrNode *n);
/* Do a and b (of one op) agree in every attribute the op uses? */
int ir_attrs_eq(const IrNode *a, const IrNode *b);
/* A hash of the attributes n's op uses, consistent with ir_attrs_eq. */
uint64_t ir_attrs_hash(const IrNode *n);
/* Zero the fields of a that no attribute of op lives in (ir_node_new does, so
 * a node holds exactly its op's attributes whatever its builder passed). */
void ir_attrs_keep_used(IrOp op, IrAttrs *a);
/* The fields no attribute of n's op lives in are zero, and each used one is
 * in range for its kind (a valid dtype, a rank within IR_MAX_RANK); 0 or -1
 * with a message (ir_verify: nothing hides in a field CSE never compares). */
int ir_attrs_check(const IrNode *n, IrErr *err);

typedef struct IrGroup IrGroup;
struct IrNode {
  int id;          /* unique in its graph, stable across passes */
  IrOp op;
  IrDType dtype;
  IrShape shape;
  int n_in;
  IrNode **in;
  IrAttrs attr;
  const char *name;  /* INPUT/PARAM: binding name; others: optional label */
  IrLoc loc;
  /* CONST: host data, row-major, dtype f32 or i32 (arena-owned).
   * PARAM: optional default value (f32) used when the checkpoint lacks it. */
  void *data;
  int index;       /* position in g->nodes; kept by ir_graph_reindex() */
  void *aux;       /* scratch for passes and backends; not preserved */
  /* The fusion group the node belongs to (set by the `fuse` pass,
   * passes/fuse.c): its members are computed by one kernel, lowered by the
   * group's kind and roles.  NULL: a kernel of its own.  The reference
   * executor ignores it. */
  IrGroup *fuse;
};

/* A fusion group: what one kernel computes.  The kinds and their roles are
 * one table, ir/groups.def; a node is a member when its `fuse` points to the
 * group, and a role names the member (or, for an operand role, the value
 * read) that plays it.  Groups live in the graph's arena.  Graph surgery
 * keeps them honest: ir_graph_dce() undoes a group one of whose roles left
 * the graph, ir_replace_all_uses() the groups whose edges it rewires; and
 * whoever lowers a group first checks it (ir_group_check), lowering it node
 * by node when the record does not describe the graph. */
typedef enum {
#define GROUP(e, name, doc) IR_GROUP_##e,
#define ROLE(grp, e, name, presence, place, doc)
#include "ir/groups.def"
#undef GROUP
#undef ROLE
  IR_GROUP_KIND_COUNT
} IrGroupKind;

/* Roles of every kind in one enum (IR_ROLE_<KIND>_<ROLE>), so a group's role
 * array is indexed by name; a group uses only its kind's roles. */
typedef enum {
#define GROUP(e, name, doc)
#define ROLE(grp, e, name, presence, place, doc) IR_ROLE_##grp##_##e,
#include "ir/groups.def"
#undef GROUP
#undef ROLE
  IR_ROLE_COUNT
} IrRole;

/* Values a kernel needs come from its roles' nodes (attention's scale is its
 * scale node's f); a later kind needing a value no node carries adds a named
 * field here. */
struct IrGroup {
  IrGroupKind kind;
  IrNode *role[IR_ROLE_COUNT]; /* NULL for an absent optional role and for other kinds' roles */
};

typedef enum {
  IR_MEMPLAN_NONE,  /* every buffer a place of its own (the unplanned layout) */
  IR_MEMPLAN_REUSE, /* buffers whose lifetimes do not overlap share arena space */
} IrMemPlan;

typedef struct {
  Arena arena;
  IrNode **nodes;   /* topological order */
  int n_nodes, cap_nodes;
  int next_id;
  IrNode **outputs;
  const char **output_names;
  int n_outputs;
  const char *name; /* entry name, e.g. "forward" */
  /* How activation buffers share the arena, recorded by the `plan-memory`
   * pass (passes/plan_memory.c) and carried out by the code generator's
   * memory planner (codegen/memplan.c) once the plan's buffers are known. */
  IrMemPlan memplan;
  /* Set by a pass that removed PARAMs on purpose (prune-blocks): binding a
   * checkpoint then ignores its tensors no PARAM reads. */
  int dropped_params;
} IrGraph;

IrGraph *ir_graph_new(const char *name);
void ir_graph_free(IrGraph *g);

/* All INPUT / PARAM nodes in graph order (array from the arena). */
int ir_graph_inputs(IrGraph *g, IrNode ***out);
int ir_graph_params(IrGraph *g, IrNode ***out);
IrNode *ir_graph_find_input(IrGraph *g, const char *name);
void ir_graph_add_output(IrGraph *g, IrNode *n, const char *name);

/* Graph surgery, for passes. */
void ir_replace_all_uses(IrGraph *g, IrNode *old, IrNode *repl);
/* Many replacements in one sweep over the graph: every use of the node at
 * position i (i < n_map, g->nodes[i]->index == i) by map[i], where map[i] is
 * not NULL.  The same as ir_replace_all_uses for each, in O(nodes + edges). */
void ir_replace_uses_map(IrGraph *g, IrNode *const *map, int n_map);
/* Restore topological order and `index` after nodes were appended or rewired.
 * Returns -1 (with err) on a cycle. */
int ir_graph_toposort(IrGraph *g, IrErr *err);
/* Remove nodes not reachable from outputs. Returns how many were removed. */
int ir_graph_dce(IrGraph *g);
/* Number of uses of each node, indexed by node->index (caller frees). */
int *ir_use_counts(IrGraph *g);

/* The routing table of moe_route (i32), for T tokens each routed to k of E
 * experts (S = T*k slots):
 *   [0, E]                   offset[e]: expert e owns slots offset[e] .. offset[e+1]-1
 *                            (offset[0] = 0, offset[E] = S)
 *   E+1 + s                  the token of slot s; slots are sorted by expert,
 *                            then by token
 *   E+1 + S + t*k + j        the slot of token t's j-th expert (its k experts
 *                            in increasing order)
 *   E+1 + 2S + t*k + j       that expert
 * Its length is E+1 + 3S, except that a batch-sized T (T = c*B) makes it
 * (E+1 + 3ck)*B: an IR dim is fixed or a multiple of B, so the E+1 offsets
 * are padded to (E+1)*B and the (E+1)*(B-1) entries at the end are unused. */
IrDim ir_moe_table_len(IrDim tokens, int k, int experts);
/* E from a table length and its slot count S (IR dims); -1 when none fits. */
int64_t ir_moe_table_experts(IrDim len, IrDim slots);

/* Fusion groups (ir/group.c). */
const char *ir_group_kind_name(IrGroupKind k); /* "attention", ... */
const char *ir_role_name(IrRole r);            /* "q", "softmax", ... */
IrGroupKind ir_role_kind(IrRole r);            /* the kind the role belongs to */
/* A group of `kind` with no roles and no members, from g's arena: the fuse
 * pass fills its roles and points its members' `fuse` at it. */
IrGroup *ir_group_new(IrGraph *g, IrGroupKind kind);
/* The node whose step runs the group's kernel: its kind's last member role
 * present (groups.def lists roles in graph order); NULL when none is. */
IrNode *ir_group_anchor(const IrGroup *grp);
/* Does the record describe g: every role of its kind that is required
 * present, no other kind's, member roles members, each role in g, and the
 * kind's own relations between its roles (groups.def, ir/group.c)?  uses: by
 * node index, graph outputs counted (ir_use_counts).  0, or -1 with why. */
int ir_group_check(IrGraph *g, const IrGroup *grp, const int *uses, IrErr *err);
/* Is every reader of x other than `except` after `anchor` in graph order
 * (so a kernel running at the anchor may write x for them; the anchor itself
 * is not after)?  Graph outputs are read after everything. */
int ir_read_after(IrGraph *g, const IrNode *x, const IrNode *except, const IrNode *anchor);
/* Undo a group: its members become kernels of their own. */
void ir_group_dissolve(IrGraph *g, const IrGroup *grp);
/* Group upkeep of graph surgery (graph.c): after ir_graph_dce() a group with
 * a role gone; before ir_replace_all_uses() the groups of old, repl and
 * old's readers (they were formed for the edges as they were). */
void ir_groups_after_dce(IrGraph *g);
void ir_groups_before_replace(IrGraph *g, const IrNode *old, const IrNode *repl);

/* ======================================================================== */
/* building                                                                 */
/* ======================================================================== */

/* Create a node: checks the arity, input dtypes and shapes, infers the output
 * shape (ir/shape.c) and dtype, appends it.  On a user-visible mismatch returns
 * NULL and explains in err (without location: the caller adds it). */
IrNode *ir_node_new(IrGraph *g, IrOp op, int n_in, IrNode *const *in, const IrAttrs *attr,
                    IrLoc loc, IrErr *err);
/* Infer the output shape and dtype of op over inputs (no node is created). */
int ir_infer(IrOp op, int n_in, IrNode *const *in, const IrAttrs *attr, IrShape *shape,
             IrDType *dtype, IrErr *err);

IrNode *ir_input(IrGraph *g, const char *name, IrDType t, IrShape s, IrLoc loc);
IrNode *ir_param(IrGraph *g, const char *name, IrDType t, IrShape s, IrLoc loc);
/* Copies data (numel(s, 1) elements of t, which is IR_F32 or IR_I32); s must be fixed. */
IrNode *ir_const(IrGraph *g, IrDType t, IrShape s, const void *data, IrLoc loc);

/* Convenience builders for C code (passes, tests): abort on a shape error. */
IrNode *ir_un(IrGraph *g, IrOp op, IrNode *x);
IrNode *ir_bin(IrGraph *g, IrOp op, IrNode *a, IrNode *b);
IrNode *ir_op1f(IrGraph *g, IrOp op, IrNode *x, float f); /* SCALE, ADD_SCALAR, LAYERNORM, ... */
IrNode *ir_linear(IrGraph *g, IrNode *x, IrNode *w, IrNode *b /* may be NULL */);
IrNode *ir_matmul(IrGraph *g, IrNode *a, IrNode *b, int trans_b);
IrNode *ir_reshape(IrGraph *g, IrNode *x, int rank, const IrDim *d);
IrNode *ir_permute(IrGraph *g, IrNode *x, const int *perm);
IrNode *ir_slice(IrGraph *g, IrNode *x, int axis, IrDim start, IrDim len);
IrNode *ir_concat(IrGraph *g, int n, IrNode *const *xs, int axis);

/* ======================================================================== */
/* host evaluation (ir/eval.c)                                              */
/* ======================================================================== */

/* The ops folding, the reference executor and the code generator's computed
 * weights evaluate on host arrays, written once.  Elementwise values are
 * ir/scalar.h's, the functions generated kernels call. */

/* A host array: row-major, 4-byte elements; float dtypes hold f32 values
 * (f16 and bf16 ones rounded to that precision), i32 int32 values, i8 f32
 * values that are whole numbers in -127..127 (exact). */
typedef struct {
  IrDType dtype;
  int rank;
  int64_t d[IR_MAX_RANK];
  void *data;
} IrArray;

/* Loops over more elements than this are split among OpenMP threads. */
#define IR_PAR_MIN 16384

int64_t ir_array_numel(const IrArray *a);
/* Strides of an input of shape in_d[in_rank] broadcast (numpy rules, aligned
 * on the right) against rank axes: 0 where it has size 1 or no axis. */
void ir_bcast_strides(int in_rank, const int64_t *in_d, int rank, int64_t *st);
/* Simplify a walk over `rank` axes of sizes d, with nops operands whose
 * strides along them are st[0..nops-1]: drop size-1 axes, merge neighbours
 * every operand steps through contiguously.  Returns the new rank (0 when
 * no axis is left). */
int ir_coalesce_axes(int rank, int64_t *d, int nops, int64_t (*st)[IR_MAX_RANK]);
/* y[i] = op(x[i]) for an elementwise unary op other than cast; f is its
 * attribute (ignored by ops without one).  y may be x. */
void ir_eval_unary(IrOp op, float f, float *y, const float *x, int64_t n);
/* y = op(a, b), a and b broadcast to y's shape; f32 values. */
void ir_eval_binary(IrOp op, IrArray *y, const IrArray *a, const IrArray *b);
/* n values from dtype `from` to `to` (ops.def's cast); y may be x.  float ->
 * i32 truncates; a value that does not fit, or NaN, is an error. */
int ir_eval_cast(IrDType from, IrDType to, void *y, const void *x, int64_t n, IrErr *err);
/* Round n f32 values to f16 or bf16 precision in place (other t: nothing). */
void ir_round_to(IrDType t, float *p, int64_t n);
/* reduce_sum / reduce_mean over axes axis..rank-1, accumulated in double. */
void ir_eval_reduce(IrOp op, int axis, IrArray *y, const IrArray *x);
/* A layout op (reshape, permute, slice, concat) or cast: y, whose shape,
 * dtype and storage the caller provides, from in[0..n_in-1].  batch gives
 * slice's symbolic start its value.  Only cast can fail (ir_eval_cast). */
int ir_eval_layout(IrOp op, const IrAttrs *a, int64_t batch, IrArray *y, int n_in, const IrArray *in,
                   IrErr *err);
/* qscale, quantize, dequantize or qlinear (ops.def): y, whose shape and
 * storage the caller provides, from in[0..n_in-1] (qlinear sums the int8
 * products exactly in int32). */
void ir_eval_quant(IrOp op, const IrAttrs *a, IrArray *y, int n_in, const IrArray *in);
/* Which nodes depend on no graph input: PARAMs, CONSTs and what is computed
 * from them alone (stacked weights, folded layouts), which backends compute
 * once.  One byte per node by position; g must be in topological order
 * (its `index` fields are set).  The caller frees the array. */
unsigned char *ir_weight_only(IrGraph *g);

/* ======================================================================== */
/* verify, dump, cost                                                       */
/* ======================================================================== */

/* Structural check: order, arity, every shape/dtype re-inferred and equal,
 * ids unique, outputs present.  Returns 0 or -1 with a message naming the node. */
int ir_verify(IrGraph *g, IrErr *err);

/* Textual dump, one node a line:
 *   %12 = linear(%3, %10, %11) : f32[B, 256, 384]  # blocks.0.attn.qkv
 * Used by `ditc ir`, `--dump-after` and the golden tests, so it is stable. */
void ir_dump(IrGraph *g, FILE *out);

/* Cost model.  MACs count multiply-accumulates of contractions (linear, matmul,
 * conv2d: one MAC = one "FLOP", the DiT paper / fvcore convention); params and
 * weight bytes count the weights computations read (PARAMs, or what a pass
 * built from them: stacked, pruned, averaged weights); activation bytes sum each non-leaf output
 * that depends on a graph input (moe_linear counts its routed rows only). */
typedef struct {
  int64_t params;
  int64_t weight_bytes;
  double macs;                /* at the given batch */
  double activation_bytes;    /* every non-leaf, non-weight-only output, at the given batch */
  int64_t nodes;
} IrCost;
/* weight_dtype: the dtype weights are stored in for weight_bytes. */
void ir_cost(IrGraph *g, int64_t batch, IrDType weight_dtype, IrCost *out);
/* MACs of one node at batch B (0 for non-contractions). */
double ir_node_macs(const IrNode *n, int64_t batch);

#endif
