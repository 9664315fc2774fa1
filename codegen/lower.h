/*
 * lower.h - what the lowering files of the code generator share: the state of
 * one cg_plan_build() (Ctx), the lowering decided for every node (NodeInfo)
 * and the buffers and steps it plans.  Not for other modules.
 *
 *   lower.c       the driver: decide, groups, need, storage, steps, place (and why)
 *   views.c       strided views through permute / slice / reshape
 *   fuse_lower.c  the fuse pass's norm, map and concat groups as trees
 *   memplan.c     memory planning: buffer lifetimes and arena offsets
 *   emit.c        the source text and the plan's steps
 *   weights.c     the weights blob (computed weights, conversion)
 */
#ifndef DITC_CG_LOWER_H
#define DITC_CG_LOWER_H

#include "codegen/cg_internal.h"

/* Every arena and blob offset is a multiple of this. */
#define ALIGN 256

typedef enum {
  LOW_NONE,        /* not computed (dead, or not needed) */
  LOW_INPUT,       /* graph input: in the arena, written by the caller */
  LOW_WEIGHT,      /* PARAM / CONST, or a weight-only node: in the weights blob */
  LOW_ALIAS,       /* reshape: its input's storage */
  LOW_KERNEL,      /* a generated kernel */
  LOW_GEMM,        /* linear / matmul: GEMM steps */
  LOW_LINEAR_GELU, /* gelu_tanh(linear(x, w, b)): one GEMM with the GELU epilogue */
  LOW_ATTENTION,   /* anchor of an attention group (its pv matmul or output permute): one kernel */
  LOW_ABSORBED,    /* computed as part of another node's lowering */
  LOW_FUSED,       /* root of an elementwise tree: one map kernel over its leaves */
  LOW_NORM,        /* anchor of a fused layernorm group (cg_emit_norm) */
  LOW_GNORM,       /* anchor of a norm group that is a group norm [+ affine] [+ unary] (cg_emit_group_norm) */
  LOW_SIDE,        /* a value a LOW_NORM / LOW_QROWS kernel also stores (read elsewhere) */
  LOW_QROWS,       /* anchor of a quant-rows group: quantize with its qscale (the side value) */
  LOW_QLINEAR_GELU, /* gelu_tanh(qlinear(...)): the qlinear kernel with the GELU on its store */
  LOW_WLINEAR,     /* linear(x, dequantize(wq, sw), b) of int8 weights: the mixed-input kernel (w8) */
  LOW_WLINEAR_GELU, /* gelu_tanh of such a linear: the mixed-input kernel with the GELU on its store */
  LOW_WMOE,        /* moe_linear(xs, table, dequantize(wq, sw), b) of int8 expert weights: the grouped GEMM
                    * reading wq and sw directly (w8) */
  LOW_QGEMM,       /* a qlinear read only by a fused layernorm's prologue: an IMMA GEMM step storing the
                    * int32 sums, which that kernel scales (+ bias) as it loads them (NodeInfo.deq); a
                    * qlinear_e4m3 likewise, an FP8 GEMM step storing f32 sums */
  LOW_E4M3_GELU,   /* quantize_e4m3(gelu_tanh(qlinear_e4m3(...)), s) (fp8's fc1 feeding fc2), at the
                    * quantize: the FP8 GEMM step into f32 sums (write2), then one kernel applying the
                    * scales, bias and GELU and storing the e4m3 levels (linear: the qlinear_e4m3) */
} Lowering;

/* A strided view of node `base`'s stored value (attention operands). */
typedef struct {
  IrNode *base;
  int rank;
  int64_t shape[IR_MAX_RANK], stride[IR_MAX_RANK], offset;
} NodeView;

typedef struct {
  Lowering how;
  const IrGroup *group;    /* its fusion group, when the record checks out (lower.c check_groups) */
  int need;
  IrDType store;           /* storage dtype (see storage()); an alias: what its readers want */
  int buf;                 /* buffer holding the value, -1 when none */
  IrNode *linear;          /* LOW_LINEAR_GELU, LOW_QLINEAR_GELU, LOW_WLINEAR_GELU: the absorbed linear */
  NodeView qkv[3];         /* LOW_ATTENTION */
  float scale;             /* LOW_ATTENTION */
  IrNode *attn;            /* LOW_ATTENTION rooted at the permute of its result: the final matmul */
  const char *fused;       /* LOW_ATTENTION: the nodes it computes, for the banner */
  /* LOW_FUSED: the stored values read (leaf[j], as the strided view lview[j]
   * of the leaf's shape) and the float expression over v0..v<n_leaves-1>. */
  int n_leaves;
  NodeView *lview;
  const char *expr;
  int select;              /* LOW_FUSED: expr picks concat parts by coordinate (c0, c1, ...) */
  IrNode **lnode;          /* LOW_FUSED: the node each leaf reads (a node read in several concat
                            * parts is several leaves, one per shift) */
  int *gidx;               /* LOW_FUSED: per leaf, -1 or (an embedding gathered from the table
                            * the leaf reads) the leaf of its indices */
  int has_gather;
  /* LOW_NORM: the layernorm, its input tree (n_pleaves leaves pview, pexpr;
   * a plain read of the input when pexpr is NULL), the stored prologue root
   * (side) or NULL; leaves/expr above are the epilogue's, leaf 0 being the
   * normalised value itself. */
  IrNode *ln;
  int n_pleaves;
  NodeView *pview;
  const char *pexpr;
  IrNode *side;
  /* LOW_NORM (or LOW_QLINEAR_GELU: an IMMA GEMM into the int32 scratch
   * buffer write2, then the epilogue kernel) feeding a quantised GEMM (w8a8): the kernel stores the levels
   * quantize(out, qscale(out)) of its result (quant, LOW_SIDE; its buffer is
   * the step's write) and their per-row scales (qscale, LOW_SIDE: write3)
   * instead of the result itself; NULL otherwise. */
  IrNode *quant, *qscale;
  /* LOW_NORM: 1 + the prologue leaf (pview) that reads a LOW_QGEMM's int32
   * sums and dequantises them on load; 0 when none.  Its scales and bias
   * are the step's last reads. */
  int deq;
  /* LOW_GNORM: the stored input [N, C, ...] (the layernorm reads it as
   * [N, groups, -1]), the per-channel weight and bias ([C] values, NULL
   * when absent) and the unary op after them (NULL: none); ln above is the
   * layernorm. */
  IrNode *gn_x, *gn_w, *gn_b, *gn_act;
  /* LOW_NORM feeding an FP8 GEMM (fp8): the quantize_e4m3 (LOW_SIDE) whose
   * e4m3 levels the kernel stores instead of its result (its buffer is the
   * step's write; its per-tensor scale the step's last read); NULL when
   * none. */
  IrNode *e4m3;
} NodeInfo;

typedef struct {
  CgSpace space;
  IrDType dtype;
  int64_t bytes;
  int64_t offset;          /* assigned by cg_memplan_place() for the arena, place_weights() for weights */
  int first, last;         /* step range it is live in */
  int pinned;              /* live for the whole run */
  int is_input;            /* a graph input's: the caller writes it */
  int weight;              /* CgWeight index of a weights-space buffer, else -1 */
} Buf;

typedef enum { LS_NODE, LS_CONVERT, LS_OUTPUT, LS_STATUS } LsKind;

typedef struct {
  LsKind kind;
  IrNode *node;
  int *reads;              /* buffers read; LS_NODE: per operand, in lowering order */
  int n_reads;
  int write;               /* buffer written, -1 none */
  int write2;              /* a second buffer written (LOW_NORM's side value), -1 none */
  int write3;              /* a third (a LOW_NORM's quantised rows' scales), -1 none */
} LStep;

typedef struct {
  IrGraph *g;
  const CgOptions *o;
  CgPlan *plan;
  int64_t batch;
  NodeInfo *info;          /* by node index */
  int *uses;               /* by node index, graph outputs counted */
  int *guses;              /* by node index: the readers in the node's own fusion group */
  Buf *bufs;
  int n_bufs, cap_bufs;
  LStep *steps;
  int n_steps, cap_steps;
  CgWeight *weights;
  int n_weights, cap_weights;
  int64_t weights_bytes;
  int status_buf;          /* -1 when no kernel reports status */
  Arena scratch;
} Ctx;

static inline int64_t align_up(int64_t x) { return (x + ALIGN - 1) / ALIGN * ALIGN; }

static inline NodeInfo *inf(Ctx *c, const IrNode *n) { return &c->info[n->index]; }

/* a and b are in one fusion group (passes/fuse.c) whose record checks out. */
static inline int grouped(Ctx *c, const IrNode *a, const IrNode *b) {
  return inf(c, a)->group && inf(c, a)->group == inf(c, b)->group;
}

static inline void node_shape(Ctx *c, const IrNode *n, int64_t *shape) {
  for (int i = 0; i < n->shape.rank; i++) shape[i] = ir_dim_eval(n->shape.d[i], c->batch);
}

static inline int64_t node_numel(Ctx *c, const IrNode *n) { return ir_shape_numel(&n->shape, c->batch); }

/* The dtype a GEMM or fused attention computing node n reads its matrix
 * operands in: the precision, or the IR dtype of an explicitly typed product. */
static inline IrDType operand_dtype(Ctx *c, const IrNode *n) {
  return n->dtype == IR_F32 ? c->o->precision : n->dtype;
}

static inline CgLoc buf_loc(Ctx *c, int b) {
  return (CgLoc){.space = c->bufs[b].space, .dtype = c->bufs[b].dtype, .offset = c->bufs[b].offset};
}

static inline const char *node_what(Arena *a, const IrNode *n) {
  return arena_printf(a, "%%%d %s%s%s", n->id, ir_op_name(n->op), n->name ? " " : "", n->name ? n->name : "");
}

/* ---- views (views.c) --------------------------------------------------------- */

/* The contiguous view of n's stored value. */
NodeView lower_view_contig(Ctx *c, IrNode *n);
/* The view of n through the layout nodes under it that `through` accepts
 * (permute, slice, reshape), down to the stored value it reads, the view's
 * base: n itself when `through` refuses it, or a reshape that strides cannot
 * express (e.g. unpatchify's merge of permuted axes), read as stored. */
typedef int (*LowerThroughFn)(Ctx *c, void *arg, IrNode *n);
NodeView lower_view_through(Ctx *c, IrNode *n, LowerThroughFn through, void *arg);
/* Through every layout node (the attention's head split). */
NodeView lower_view(Ctx *c, IrNode *n);

/* ---- fusion groups as trees (fuse_lower.c) -------------------------------------- */

/* A norm group as one cg_emit_norm kernel, where every piece fits. */
void lower_norm(Ctx *c, const IrGroup *grp);
/* The map and concat groups, and the elementwise parts of norm groups left
 * unfused, as one map kernel per tree grown from a member. */
void lower_trees(Ctx *c);

/* ---- memory (memplan.c) --------------------------------------------------------- */

/* Arena offsets of the activation buffers from their lifetimes over the
 * steps, shared as the graph's memplan says.  Returns the arena size;
 * *unplanned gets the size of one place per buffer. */
int64_t cg_memplan_place(Ctx *c, int64_t *unplanned);

/* ---- emission (emit.c) ---------------------------------------------------------- */

/* The source text and the steps of the plan, from the planned steps. */
void lower_emit(Ctx *c);

#endif
