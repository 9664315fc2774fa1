/*
 * codegen.c - lower an IR graph into an execution plan (plan.h).
 *
 * Six steps, each a function below:
 *   decide   how each node is lowered: a kernel, a GEMM step, an alias
 *            (reshape shares its input's storage), a leaf (inputs in the
 *            arena, PARAM/CONST in the weights blob), a computed weight (a
 *            concat/slice/permute/cast of weights only, e.g. hoist-adaln's
 *            stacked adaLN weights: a constant of the plan, computed into the
 *            blob by cg_plan_fill_weights, never a step), or absorbed into a
 *            neighbour (the linear under a tanh-GELU becomes the GEMM's
 *            epilogue; matmul -> scale -> softmax -> matmul becomes one fused
 *            attention kernel reading q/k/v through the permutes and slices
 *            that split the heads, see attention.c);
 *   need     which nodes must be materialised: walk back from the outputs
 *            through what each lowering actually reads (so the head-split
 *            permutes a fused attention reads through cost nothing);
 *   storage  each value's storage dtype (the precision policy below);
 *   steps    the ordered list of lowered steps with the buffers they read
 *            and write, adding dtype conversions where a GEMM operand is not
 *            stored in the GEMM's dtype, and copies so that every graph
 *            output has its own buffer in its IR dtype;
 *   place    weights into the blob, those some step reads (a parameter read
 *            only by computed weights is not stored); buffers into the
 *            arena: lifetimes [first write, last read] over
 *            the step list, then a greedy first-fit by decreasing size, every
 *            offset 256-byte aligned; inputs, outputs and the status word
 *            live for the whole run;
 *   emit     the source text (kernels.c, attention.c) and the CgSteps.
 *
 * Precision (the plan's f32, f16 or bf16) is a mixed-precision storage
 * policy, like autocast: it applies to the operands of matrix products and
 * to nothing else.  Every GEMM (linear, matmul) reads A and B in the
 * precision and accumulates in f32; the fused attention reads q, k and v in
 * whatever they are stored in and computes in f32.  Each value's storage is
 * decided from its readers (storage(), after `need`):
 *   - a value of IR dtype f32 is stored in the precision when every reader
 *     takes it as a GEMM A/B operand or an attention q/k/v (through aliases:
 *     a reshape shares its input's storage), else in f32.  So the residual
 *     stream, layernorm/softmax/reduction inputs and outputs, elementwise
 *     chains (modulation, gates, the focusing norms r^3 / sum r^6 of
 *     paper-att-fgq, the timestep embedding's sin/cos arguments) and the
 *     guidance combine stay f32, while e.g. the modulated layernorm output
 *     feeding qkv, the attention output feeding proj, and the GELU'd fc1
 *     output feeding fc2 are stored in the precision by their producers (a
 *     kernel or GEMM converts on its store: no conversion step);
 *   - GEMM outputs follow the same rule (CgGemm.d_dtype: f32 unless every
 *     reader is a GEMM/attention operand); a bias is read in D's dtype;
 *   - weights (PARAM/CONST, converted by cg_plan_fill_weights) too: a linear's
 *     weight is stored in the precision, biases feeding f32 outputs, conv2d
 *     patch-embedding and depthwise weights, embedding tables and constants
 *     that kernels read stay f32;
 *   - graph inputs keep their IR dtype (the caller writes plain f32/i32);
 *     values whose IR dtype is f16/bf16/i32 keep it, and a GEMM over IR-typed
 *     f16/bf16 values runs in that dtype.
 * A value read both as a GEMM operand and otherwise is stored f32 and gets
 * one conversion step for the GEMMs (operand_in).  Graph outputs are left in
 * their IR dtype (a copy step when the producer stored another).  At f32
 * every value is f32, as before the policy existed.
 *
 * Out-of-range embedding indices do not touch memory outside the table: the
 * kernel clamps them and sets the plan's status word (CgPlan.status_offset),
 * which the first step zeroes; a backend reads it after the run.
 */
#include <stdlib.h>
#include <string.h>

#include "codegen/cg_internal.h"
#include "passes/passes.h"

#define ALIGN 256

typedef enum {
  LOW_NONE,        /* not computed (dead, or not needed) */
  LOW_INPUT,       /* graph input: in the arena, written by the caller */
  LOW_WEIGHT,      /* PARAM / CONST, or a weight-only node: in the weights blob */
  LOW_ALIAS,       /* reshape: its input's storage */
  LOW_KERNEL,      /* a generated kernel */
  LOW_GEMM,        /* linear / matmul: GEMM steps */
  LOW_LINEAR_GELU, /* gelu_tanh(linear(x, w, b)): one GEMM with the GELU epilogue */
  LOW_ATTENTION,   /* the final matmul of a fused attention */
  LOW_ABSORBED,    /* computed as part of another node's lowering */
  LOW_FUSED,       /* root of an elementwise tree: one map kernel over its leaves */
  LOW_NORM,        /* anchor of a fused layernorm group (cg_emit_norm) */
  LOW_SIDE,        /* a prologue root a LOW_NORM kernel also stores (read elsewhere) */
} Lowering;

/* A strided view of node `base`'s stored value (attention operands). */
typedef struct {
  IrNode *base;
  int rank;
  int64_t shape[IR_MAX_RANK], stride[IR_MAX_RANK], offset;
} NodeView;

typedef struct {
  Lowering how;
  int need;
  IrDType store;           /* storage dtype (see storage()); an alias: what its readers want */
  int buf;                 /* buffer holding the value, -1 when none */
  IrNode *linear;          /* LOW_LINEAR_GELU: the absorbed linear */
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
} NodeInfo;

typedef struct {
  CgSpace space;
  IrDType dtype;
  int64_t bytes;
  int64_t offset;          /* assigned by place() for the arena, at creation for weights */
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

static int64_t align_up(int64_t x) { return (x + ALIGN - 1) / ALIGN * ALIGN; }

/* a and b were put in one fusion group by the fuse pass (passes/fuse.c). */
static int grouped(const IrNode *a, const IrNode *b) { return a->fuse && a->fuse == b->fuse; }

static NodeInfo *inf(Ctx *c, const IrNode *n) { return &c->info[n->index]; }

static void node_shape(Ctx *c, const IrNode *n, int64_t *shape) {
  for (int i = 0; i < n->shape.rank; i++) shape[i] = ir_dim_eval(n->shape.d[i], c->batch);
}

static int64_t node_numel(Ctx *c, const IrNode *n) { return ir_shape_numel(&n->shape, c->batch); }

/* The dtype a GEMM or fused attention computing node n reads its matrix
 * operands in: the precision, or the IR dtype of an explicitly typed product. */
static IrDType operand_dtype(Ctx *c, const IrNode *n) {
  return n->dtype == IR_F32 ? c->o->precision : n->dtype;
}

static int new_buf(Ctx *c, CgSpace space, IrDType dtype, int64_t numel) {
  if (c->n_bufs == c->cap_bufs) {
    c->cap_bufs = c->cap_bufs ? 2 * c->cap_bufs : 256;
    c->bufs = xrealloc(c->bufs, (size_t)c->cap_bufs * sizeof *c->bufs);
  }
  Buf *b = &c->bufs[c->n_bufs];
  *b = (Buf){.space = space, .dtype = dtype, .bytes = numel * (int64_t)ir_dtype_size(dtype),
             .offset = -1, .first = -1, .last = -1, .weight = -1};
  return c->n_bufs++;
}

static CgLoc buf_loc(Ctx *c, int b) {
  return (CgLoc){.space = c->bufs[b].space, .dtype = c->bufs[b].dtype, .offset = c->bufs[b].offset};
}

static const char *node_what(Arena *a, const IrNode *n) {
  return arena_printf(a, "%%%d %s%s%s", n->id, ir_op_name(n->op), n->name ? " " : "", n->name ? n->name : "");
}

static int node_err(IrErr *err, const IrNode *n, const char *msg) {
  if (n->loc.file)
    return ir_errf(err, "%s:%d:%d: %%%d %s: %s", n->loc.file, n->loc.line, n->loc.col, n->id,
                   ir_op_name(n->op), msg);
  return ir_errf(err, "%%%d %s%s%s: %s", n->id, ir_op_name(n->op), n->name ? " " : "",
                 n->name ? n->name : "", msg);
}

/* ======================================================================== */
/* views through permute / slice / reshape                                  */
/* ======================================================================== */

static NodeView view_contig(Ctx *c, IrNode *n) {
  NodeView v = {.base = n, .rank = n->shape.rank};
  node_shape(c, n, v.shape);
  int64_t s = 1;
  for (int i = v.rank - 1; i >= 0; i--) {
    v.stride[i] = s;
    s *= v.shape[i];
  }
  return v;
}

/* Reshape view u into shape t (rank rt) without copying, if the strides allow. */
static int view_reshape(const NodeView *u, int rt, const int64_t *t, NodeView *out) {
  int64_t a[IR_MAX_RANK], st[IR_MAX_RANK];
  int na = 0;
  for (int i = 0; i < u->rank; i++) {
    if (u->shape[i] == 0) return -1;
    if (u->shape[i] == 1) continue;
    a[na] = u->shape[i];
    st[na++] = u->stride[i];
  }
  *out = *u;
  out->rank = rt;
  int ia = 0, j = 0;
  while (j < rt) {
    out->shape[j] = t[j];
    if (t[j] == 1) {
      out->stride[j++] = 0;
      continue;
    }
    int j0 = j, i0 = ia;
    if (ia >= na) return -1;
    int64_t pj = t[j++], pi = a[ia++];
    while (pi != pj) {
      if (pi < pj) {
        if (ia >= na) return -1;
        pi *= a[ia++];
      } else {
        if (j >= rt) return -1;
        out->shape[j] = t[j];
        pj *= t[j++];
      }
    }
    for (int x = i0; x < ia - 1; x++)
      if (st[x] != st[x + 1] * a[x + 1]) return -1;
    int64_t s = st[ia - 1];
    for (int y = j - 1; y >= j0; y--) {
      out->stride[y] = s;
      s *= t[y];
    }
  }
  return ia == na ? 0 : -1;
}

/* The view of n's value in terms of a stored node, looking through layout ops. */
/* The view of n through the layout nodes under it that `through` accepts
 * (permute, slice, reshape), down to the stored value it reads, the view's
 * base: n itself when `through` refuses it, or a reshape that strides cannot
 * express (e.g. unpatchify's merge of permuted axes), read as stored. */
typedef int (*ThroughFn)(Ctx *c, void *arg, IrNode *n);

static NodeView resolve_view_through(Ctx *c, IrNode *n, ThroughFn through, void *arg) {
  if (!through(c, arg, n)) return view_contig(c, n);
  NodeView u = resolve_view_through(c, n->in[0], through, arg), v = u;
  switch (n->op) {
  case IR_PERMUTE:
    for (int j = 0; j < n->shape.rank; j++) {
      v.shape[j] = u.shape[n->attr.perm[j]];
      v.stride[j] = u.stride[n->attr.perm[j]];
    }
    return v;
  case IR_SLICE:
    v.offset += ir_dim_eval(n->attr.start, c->batch) * u.stride[n->attr.axis];
    v.shape[n->attr.axis] = ir_dim_eval(n->attr.len, c->batch);
    return v;
  default: {
    int64_t t[IR_MAX_RANK] = {0};
    node_shape(c, n, t);
    if (view_reshape(&u, n->shape.rank, t, &v) == 0) return v;
    return view_contig(c, n);
  }
  }
}

static int any_layout(Ctx *c, void *arg, IrNode *n) {
  (void)c, (void)arg;
  return n->op == IR_PERMUTE || n->op == IR_SLICE || n->op == IR_RESHAPE;
}

/* Through every layout node (the attention's head split). */
static NodeView resolve_view(Ctx *c, IrNode *n) { return resolve_view_through(c, n, any_layout, NULL); }

/* ======================================================================== */
/* decide                                                                   */
/* ======================================================================== */

/* matmul(softmax([scale](matmul(q, k, trans_b))), v) rooted at n, each inner
 * node used once: fill the attention operands and absorb the inner nodes. */
static int match_attention(Ctx *c, IrNode *n) {
  if (n->op != IR_MATMUL || n->attr.trans_b) return 0;
  IrNode *sm = n->in[0], *v = n->in[1], *sc = NULL, *qk;
  if (sm->op != IR_SOFTMAX || c->uses[sm->index] != 1 || !grouped(n, sm)) return 0;
  qk = sm->in[0];
  float scale = 1.0f;
  if (qk->op == IR_SCALE) {
    if (c->uses[qk->index] != 1 || !grouped(n, qk)) return 0;
    sc = qk;
    scale = sc->attr.f;
    qk = sc->in[0];
  }
  if (qk->op != IR_MATMUL || !qk->attr.trans_b || c->uses[qk->index] != 1 || !grouped(n, qk)) return 0;
  IrNode *q = qk->in[0], *k = qk->in[1];
  int r = n->shape.rank;
  /* same rank everywhere keeps the leading-dim strides simple */
  if (q->shape.rank != r || k->shape.rank != r || v->shape.rank != r) return 0;
  int64_t d = ir_dim_eval(q->shape.d[r - 1], c->batch), dv = ir_dim_eval(v->shape.d[r - 1], c->batch);
  if (d < CG_ATTN_MIN_DIM || d > CG_ATTN_MAX_DIM || dv < 1 || dv > CG_ATTN_MAX_DIM) return 0;
  int64_t groups = 1;
  for (int i = 0; i < r - 2; i++) groups *= ir_dim_eval(n->shape.d[i], c->batch);
  if (groups > 65535) return 0;
  NodeInfo *ni = inf(c, n);
  IrNode *ops[3] = {q, k, v};
  for (int i = 0; i < 3; i++) {
    ni->qkv[i] = resolve_view(c, ops[i]);
    /* broadcast leading dims read with stride 0 */
    for (int j = 0; j < r - 2; j++)
      if (ni->qkv[i].shape[j] == 1 && ir_dim_eval(n->shape.d[j], c->batch) != 1) ni->qkv[i].stride[j] = 0;
  }
  ni->scale = scale;
  ni->how = LOW_ATTENTION;
  ni->fused = sc ? arena_printf(&c->scratch, "fused attention: %%%d matmul, %%%d scale, %%%d softmax, %%%d matmul",
                                qk->id, sc->id, sm->id, n->id)
                 : arena_printf(&c->scratch, "fused attention: %%%d matmul, %%%d softmax, %%%d matmul", qk->id,
                                sm->id, n->id);
  inf(c, sm)->how = LOW_ABSORBED;
  inf(c, qk)->how = LOW_ABSORBED;
  if (sc) inf(c, sc)->how = LOW_ABSORBED;
  return 1;
}

/* The node a chain of reshapes (aliases) stores its value in. */
static IrNode *alias_root(Ctx *c, IrNode *n) {
  while (inf(c, n)->how == LOW_ALIAS) n = n->in[0];
  return n;
}

/* A weight-only node the blob can hold (CgWeight.op): a layout op or cast
 * over float weights (PARAM, CONST or themselves computed), e.g. the stacked
 * adaLN weights hoist-adaln makes.  Other weight-only nodes stay steps. */
static int computed_weight(Ctx *c, const IrNode *n) {
  if (n->op != IR_CONCAT && n->op != IR_SLICE && n->op != IR_PERMUTE && n->op != IR_CAST) return 0;
  if (!ir_dtype_is_float(n->dtype)) return 0;
  for (int i = 0; i < n->n_in; i++) {
    IrNode *x = alias_root(c, n->in[i]);
    if (inf(c, x)->how != LOW_WEIGHT || !ir_dtype_is_float(x->dtype)) return 0;
  }
  return 1;
}

static int decide(Ctx *c, IrErr *err) {
  for (int i = 0; i < c->g->n_nodes; i++) {
    IrNode *n = c->g->nodes[i];
    NodeInfo *ni = inf(c, n);
    ni->buf = -1;
    if (n->dtype == IR_I8) return node_err(err, n, "i8 tensors are not supported by the code generator yet");
    switch (n->op) {
    case IR_INPUT: ni->how = LOW_INPUT; break;
    case IR_PARAM:
    case IR_CONST: ni->how = LOW_WEIGHT; break;
    case IR_RESHAPE: ni->how = LOW_ALIAS; break;
    case IR_PERMUTE: {
      /* the attention writes its result straight into the permuted layout */
      IrNode *m = n->in[0];
      NodeInfo *mi = inf(c, m);
      if (computed_weight(c, n)) {
        ni->how = LOW_WEIGHT;
      } else if (mi->how == LOW_ATTENTION && !mi->attn && c->uses[m->index] == 1 && grouped(n, m)) {
        *ni = *mi;
        ni->attn = m;
        ni->fused = arena_printf(&c->scratch, "%s, %%%d permute", mi->fused, n->id);
        mi->how = LOW_ABSORBED;
      } else {
        ni->how = LOW_KERNEL;
      }
      break;
    }
    case IR_LINEAR: ni->how = LOW_GEMM; break;
    case IR_MATMUL:
      if (!match_attention(c, n)) ni->how = LOW_GEMM;
      break;
    case IR_GELU_TANH: {
      IrNode *l = n->in[0];
      if (l->op == IR_LINEAR && l->n_in == 3 && c->uses[l->index] == 1 && inf(c, l)->how == LOW_GEMM &&
          grouped(n, l)) {
        ni->how = LOW_LINEAR_GELU;
        ni->linear = l;
        inf(c, l)->how = LOW_ABSORBED;
      } else {
        ni->how = LOW_KERNEL;
      }
      break;
    }
    default: ni->how = computed_weight(c, n) ? LOW_WEIGHT : LOW_KERNEL; break;
    }
  }
  return 0;
}

/* ======================================================================== */
/* need                                                                     */
/* ======================================================================== */

/* The nodes a lowering reads, in operand order. */
static int lowering_reads(Ctx *c, IrNode *n, IrNode **out) {
  NodeInfo *ni = inf(c, n);
  switch (ni->how) {
  case LOW_ALIAS:
  case LOW_KERNEL:
  case LOW_GEMM:
    for (int i = 0; i < n->n_in; i++) out[i] = n->in[i];
    return n->n_in;
  case LOW_LINEAR_GELU:
    for (int i = 0; i < ni->linear->n_in; i++) out[i] = ni->linear->in[i];
    return ni->linear->n_in;
  case LOW_ATTENTION:
    for (int i = 0; i < 3; i++) out[i] = ni->qkv[i].base;
    return 3;
  case LOW_FUSED: /* the stored nodes its leaf views read */
    for (int i = 0; i < ni->n_leaves; i++) out[i] = ni->lview[i].base;
    return ni->n_leaves;
  case LOW_NORM: { /* the prologue's leaves, then the epilogue's but the normalised value */
    int k = 0;
    for (int i = 0; i < ni->n_pleaves; i++) out[k++] = ni->pview[i].base;
    for (int i = 1; i < ni->n_leaves; i++) out[k++] = ni->lview[i].base;
    return k;
  }
  case LOW_WEIGHT: /* a computed weight reads its inputs when the blob is filled */
    for (int i = 0; i < n->n_in; i++) out[i] = n->in[i];
    return n->n_in;
  default: return 0;
  }
}

static void need(Ctx *c) {
  for (int i = 0; i < c->g->n_outputs; i++) inf(c, c->g->outputs[i])->need = 1;
  /* a kernel that stores a side value runs whenever that value is needed;
   * after dce every group anchor is live, so run them all */
  for (int i = 0; i < c->g->n_nodes; i++)
    if (inf(c, c->g->nodes[i])->how == LOW_NORM && inf(c, c->g->nodes[i])->side) inf(c, c->g->nodes[i])->need = 1;
  IrNode **rd = NULL;
  int cap = 0;
  for (int i = c->g->n_nodes - 1; i >= 0; i--) {
    IrNode *n = c->g->nodes[i];
    if (!inf(c, n)->need) continue;
    DITC_ASSERT(inf(c, n)->how != LOW_ABSORBED);
    if (n->n_in + 2 * CG_MAP_MAX_IN + 3 > cap) {
      cap = n->n_in + 2 * CG_MAP_MAX_IN + 3;
      rd = xrealloc(rd, (size_t)cap * sizeof *rd);
    }
    int k = lowering_reads(c, n, rd);
    for (int j = 0; j < k; j++) inf(c, rd[j])->need = 1;
  }
  free(rd);
}

/* ======================================================================== */
/* storage                                                                  */
/* ======================================================================== */

/* What a reader wants: *want is -1 (no reader yet), one dtype, or f32 once
 * readers disagree (f32 serves every kernel; a GEMM operand gets converted). */
static void want_add(IrDType *want, IrDType t) {
  if ((int)*want < 0)
    *want = t;
  else if (*want != t)
    *want = IR_F32;
}

/* Each needed node's storage dtype, readers before producers (the precision
 * policy at the top of this file). */
static void storage(Ctx *c) {
  IrGraph *g = c->g;
  IrDType *want = xmalloc(((size_t)g->n_nodes + 1) * sizeof *want);
  for (int i = 0; i < g->n_nodes; i++) want[i] = (IrDType)-1;
  for (int i = 0; i < g->n_outputs; i++) want_add(&want[g->outputs[i]->index], g->outputs[i]->dtype);
  IrNode **rd = NULL;
  int cap = 0;
  for (int i = g->n_nodes - 1; i >= 0; i--) {
    IrNode *n = g->nodes[i];
    NodeInfo *ni = inf(c, n);
    if (!ni->need) continue;
    if (n->dtype != IR_F32 || ni->how == LOW_INPUT || (int)want[i] < 0)
      ni->store = n->dtype;
    else
      ni->store = want[i];
    if (n->n_in + 2 * CG_MAP_MAX_IN + 3 > cap) {
      cap = n->n_in + 2 * CG_MAP_MAX_IN + 3;
      rd = xrealloc(rd, (size_t)cap * sizeof *rd);
    }
    int k = lowering_reads(c, n, rd);
    for (int j = 0; j < k; j++) {
      IrDType t = IR_F32; /* a kernel computes in f32 */
      if (ni->how == LOW_GEMM || ni->how == LOW_LINEAR_GELU)
        t = j < 2 ? operand_dtype(c, n) : ni->store; /* the bias is read in D's dtype */
      else if (ni->how == LOW_ATTENTION)
        t = operand_dtype(c, n);
      else if (ni->how == LOW_ALIAS)
        t = ni->store;
      else if (ni->how == LOW_KERNEL && cg_moe_operand(n, j)) /* routed rows and stacked weights */
        t = operand_dtype(c, n);
      else if (ni->how == LOW_WEIGHT)
        t = rd[j]->dtype; /* computed at fill time from exact values */
      want_add(&want[rd[j]->index], t);
    }
  }
  free(rd);
  free(want);
}

/* ======================================================================== */
/* steps                                                                    */
/* ======================================================================== */

static LStep *add_step(Ctx *c, LsKind kind, IrNode *n, int n_reads, int write) {
  if (c->n_steps == c->cap_steps) {
    c->cap_steps = c->cap_steps ? 2 * c->cap_steps : 256;
    c->steps = xrealloc(c->steps, (size_t)c->cap_steps * sizeof *c->steps);
  }
  LStep *s = &c->steps[c->n_steps++];
  *s = (LStep){.kind = kind, .node = n, .n_reads = n_reads, .write = write, .write2 = -1};
  s->reads = arena_alloc(&c->scratch, (size_t)(n_reads ? n_reads : 1) * sizeof(int));
  return s;
}

static int add_weight(Ctx *c, IrNode *n) {
  if (c->n_weights == c->cap_weights) {
    c->cap_weights = c->cap_weights ? 2 * c->cap_weights : 64;
    c->weights = xrealloc(c->weights, (size_t)c->cap_weights * sizeof *c->weights);
  }
  IrDType t = inf(c, n)->store;
  int b = new_buf(c, CG_SPACE_WEIGHTS, t, node_numel(c, n));
  c->bufs[b].weight = c->n_weights;
  CgWeight *w = &c->weights[c->n_weights++];
  Arena *a = &c->plan->arena;
  int leaf = n->op == IR_PARAM || n->op == IR_CONST;
  *w = (CgWeight){.name = leaf ? (n->name ? arena_strdup(a, n->name) : NULL) : node_what(a, n),
                  .dtype = t,
                  .rank = n->shape.rank,
                  .offset = -1, /* place_weights() */
                  .param_id = n->op == IR_PARAM ? n->id : -1};
  node_shape(c, n, w->shape);
  if (n->op == IR_CONST) {
    size_t bytes = (size_t)node_numel(c, n) * 4; /* f32 values or i32 bits */
    void *d = arena_alloc(a, bytes ? bytes : 1);
    memcpy(d, n->data, bytes);
    w->const_data = d;
  }
  if (!leaf) {
    int *in = arena_alloc(a, (size_t)n->n_in * sizeof *in);
    for (int i = 0; i < n->n_in; i++) in[i] = c->bufs[inf(c, n->in[i])->buf].weight;
    w->op = n->op;
    w->attr = n->attr;
    w->n_in = n->n_in;
    w->in = in;
  }
  return b;
}

/* Blob offsets, in weight order, for the weights some step reads; the others
 * (inputs of computed weights only) are not stored. */
static void place_weights(Ctx *c) {
  unsigned char *read = xcalloc((size_t)c->n_bufs + 1, 1);
  for (int s = 0; s < c->n_steps; s++)
    for (int j = 0; j < c->steps[s].n_reads; j++) read[c->steps[s].reads[j]] = 1;
  for (int b = 0; b < c->n_bufs; b++) {
    if (c->bufs[b].weight < 0 || !read[b]) continue;
    c->bufs[b].offset = c->weights[c->bufs[b].weight].offset = c->weights_bytes;
    c->weights_bytes = align_up(c->weights_bytes + c->bufs[b].bytes);
  }
  free(read);
}

/* Buffer holding node x's value in dtype t: x's own, or a converted copy made
 * by a step before the current one (one per value and dtype). */
static int operand_in(Ctx *c, IrNode *x, IrDType t, int **conv_cache) {
  int b = inf(c, x)->buf;
  if (c->bufs[b].dtype == t) return b;
  int *cache = conv_cache[x->index];
  if (cache && cache[t] >= 0) return cache[t];
  if (!cache) {
    cache = conv_cache[x->index] = arena_alloc(&c->scratch, IR_DTYPE_COUNT * sizeof(int));
    for (int i = 0; i < IR_DTYPE_COUNT; i++) cache[i] = -1;
  }
  int nb = new_buf(c, CG_SPACE_ACT, t, node_numel(c, x));
  LStep *s = add_step(c, LS_CONVERT, x, 1, nb);
  s->reads[0] = b;
  return cache[t] = nb;
}

static int plan_steps(Ctx *c) {
  IrGraph *g = c->g;
  int **conv_cache = xcalloc((size_t)g->n_nodes + 1, sizeof *conv_cache);
  int has_status = 0;
  for (int i = 0; i < g->n_nodes; i++)
    has_status |= (g->nodes[i]->op == IR_EMBEDDING || inf(c, g->nodes[i])->has_gather) && inf(c, g->nodes[i])->need;
  c->status_buf = -1;
  if (has_status) {
    c->status_buf = new_buf(c, CG_SPACE_ACT, IR_I32, 1);
    c->bufs[c->status_buf].pinned = 1;
    add_step(c, LS_STATUS, NULL, 0, c->status_buf);
  }
  for (int i = 0; i < g->n_nodes; i++) {
    IrNode *n = g->nodes[i];
    NodeInfo *ni = inf(c, n);
    if (n->op == IR_INPUT) { /* every input has a place, used or not */
      ni->buf = new_buf(c, CG_SPACE_ACT, n->dtype, node_numel(c, n));
      c->bufs[ni->buf].pinned = c->bufs[ni->buf].is_input = 1;
      continue;
    }
    if (!ni->need) continue;
    switch (ni->how) {
    case LOW_WEIGHT: ni->buf = add_weight(c, n); break;
    case LOW_ALIAS: ni->buf = inf(c, n->in[0])->buf; break;
    case LOW_SIDE: break; /* its buffer comes with its LOW_NORM anchor's step */
    case LOW_KERNEL:
    case LOW_FUSED:
    case LOW_NORM:
    case LOW_ATTENTION: {
      IrNode *rd[2 * CG_MAP_MAX_IN + 3];
      IrNode **r = n->n_in > 2 * CG_MAP_MAX_IN ? xmalloc((size_t)(n->n_in + 3) * sizeof *r) : rd;
      int k = lowering_reads(c, n, r);
      ni->buf = new_buf(c, CG_SPACE_ACT, ni->store, node_numel(c, n));
      int status = n->op == IR_EMBEDDING || ni->has_gather; /* it may set the status word */
      LStep *s = add_step(c, LS_NODE, n, k + status, ni->buf);
      for (int j = 0; j < k; j++) s->reads[j] = inf(c, r[j])->buf;
      if (status) s->reads[k] = c->status_buf;
      if (ni->how == LOW_NORM && ni->side) {
        NodeInfo *si = inf(c, ni->side);
        s->write2 = si->buf = new_buf(c, CG_SPACE_ACT, si->store, node_numel(c, ni->side));
      }
      if (r != rd) free(r);
      break;
    }
    case LOW_GEMM:
    case LOW_LINEAR_GELU: {
      IrNode *rd[3];
      int k = lowering_reads(c, n, rd);
      int ops[3];
      for (int j = 0; j < k; j++) ops[j] = operand_in(c, rd[j], j < 2 ? operand_dtype(c, n) : ni->store, conv_cache);
      ni->buf = new_buf(c, CG_SPACE_ACT, ni->store, node_numel(c, n));
      LStep *s = add_step(c, LS_NODE, n, k, ni->buf);
      memcpy(s->reads, ops, (size_t)k * sizeof(int));
      break;
    }
    default: ditc_unreachable();
    }
  }
  free(conv_cache);

  /* Outputs: each in a buffer of its own, in its IR dtype, live to the end. */
  int *claimed = xcalloc((size_t)c->n_bufs + 1, sizeof *claimed);
  for (int i = 0; i < g->n_outputs; i++) {
    IrNode *n = g->outputs[i];
    int b = inf(c, n)->buf;
    Buf *bb = &c->bufs[b];
    if (bb->space == CG_SPACE_ACT && bb->dtype == n->dtype && !claimed[b] && !bb->is_input) {
      claimed[b] = 1;
      bb->pinned = 1;
      continue;
    }
    int nb = new_buf(c, CG_SPACE_ACT, n->dtype, node_numel(c, n));
    c->bufs[nb].pinned = 1;
    LStep *s = add_step(c, LS_OUTPUT, n, 1, nb);
    s->reads[0] = b;
  }
  free(claimed);
  return 0;
}

/* The buffer each output ends in: the last LS_OUTPUT step for it, else its own. */
static int output_buf(Ctx *c, int i, int *used) {
  IrNode *n = c->g->outputs[i];
  for (int s = 0; s < c->n_steps; s++)
    if (c->steps[s].kind == LS_OUTPUT && c->steps[s].node == n && !used[s]) {
      used[s] = 1;
      return c->steps[s].write;
    }
  return inf(c, n)->buf;
}

/* ======================================================================== */
/* place                                                                    */
/* ======================================================================== */

/* Live ranges over the step list, then offsets: shared by liveness when the
 * graph went through plan-memory (passes/plan_memory.c), one place per
 * buffer otherwise.  *unplanned gets the size without reuse. */
static int64_t place(Ctx *c, int64_t *unplanned) {
  for (int s = 0; s < c->n_steps; s++) {
    LStep *st = &c->steps[s];
    for (int j = 0; j < st->n_reads; j++) {
      Buf *b = &c->bufs[st->reads[j]];
      if (b->first < 0) b->first = s;
      b->last = s;
    }
    int w[2] = {st->write, st->write2};
    for (int j = 0; j < 2; j++) {
      if (w[j] < 0) continue;
      Buf *b = &c->bufs[w[j]];
      if (b->first < 0 || b->first > s) b->first = s;
      if (b->last < s) b->last = s;
    }
  }
  int n = 0, *idx = xmalloc((size_t)(c->n_bufs + 1) * sizeof *idx);
  int *first = xmalloc((size_t)(c->n_bufs + 1) * sizeof *first), *last = xmalloc((size_t)(c->n_bufs + 1) * sizeof *last);
  int64_t *bytes = xmalloc((size_t)(c->n_bufs + 1) * sizeof *bytes), *off = xmalloc((size_t)(c->n_bufs + 1) * sizeof *off);
  for (int i = 0; i < c->n_bufs; i++) {
    Buf *b = &c->bufs[i];
    if (b->space != CG_SPACE_ACT) continue;
    if (b->pinned || b->first < 0) {
      b->first = 0;
      b->last = c->n_steps;
    }
    idx[n] = i, first[n] = b->first, last[n] = b->last;
    bytes[n] = align_up(b->bytes > 0 ? b->bytes : 1);
    n++;
  }
  *unplanned = pass_memory_unplanned(n, bytes, off);
  int64_t top = c->g->memory_planned ? pass_memory_plan(n, bytes, first, last, off) : *unplanned;
  for (int i = 0; i < n; i++) c->bufs[idx[i]].offset = off[i];
  free(idx);
  free(first);
  free(last);
  free(bytes);
  free(off);
  return top;
}

/* ======================================================================== */
/* emit                                                                     */
/* ======================================================================== */

int cg_kernel_open(CgEmit *e, const IrNode *n, const char *op, const char *detail,
                   const char **name) {
  if (e->n_kernels == e->cap_kernels) {
    e->cap_kernels = e->cap_kernels ? 2 * e->cap_kernels : 64;
    e->kernels = xrealloc(e->kernels, (size_t)e->cap_kernels * sizeof *e->kernels);
  }
  int k = e->n_kernels++;
  Arena *a = &e->plan->arena;
  *name = arena_printf(a, "k%d_%s", k, op);
  char shape[256] = "";
  if (n) {
    size_t len = (size_t)snprintf(shape, sizeof shape, "[");
    for (int i = 0; i < n->shape.rank; i++)
      len += (size_t)snprintf(shape + len, sizeof shape - len, i ? ", %lld" : "%lld",
                              (long long)ir_dim_eval(n->shape.d[i], e->batch));
    snprintf(shape + len, sizeof shape - len, "]");
  }
  const char *nodes = n ? arena_printf(a, "%s : %s%s", node_what(a, n), ir_dtype_name(n->dtype), shape)
                        : arena_strdup(a, op);
  e->kernels[k] = (CgKernel){.name = *name, .nodes = nodes};
  cg_text_printf(&e->src, "/* %s */\n", nodes);
  if (!detail) detail = e->detail;
  if (detail) cg_text_printf(&e->src, "/* %s */\n", detail);
  return k;
}

static CgStep *new_cgstep(CgEmit *e, const IrNode *n) {
  if (e->n_steps == e->cap_steps) {
    e->cap_steps = e->cap_steps ? 2 * e->cap_steps : 256;
    e->steps = xrealloc(e->steps, (size_t)e->cap_steps * sizeof *e->steps);
  }
  CgStep *s = &e->steps[e->n_steps++];
  memset(s, 0, sizeof *s);
  s->node = n ? n->index : -1;
  s->what = n ? node_what(&e->plan->arena, n) : "status reset";
  return s;
}

void cg_launch(CgEmit *e, const IrNode *n, int k, int64_t gx, int64_t gy, int64_t gz, int bx, int by,
               int bz, uint32_t shared_bytes) {
  DITC_ASSERT(gx >= 1 && gx < ((int64_t)1 << 31) && gy >= 1 && gy <= 65535 && gz >= 1 && gz <= 65535);
  CgStep *s = new_cgstep(e, n);
  s->kind = CG_STEP_KERNEL;
  s->kernel = k;
  s->grid[0] = (uint32_t)gx, s->grid[1] = (uint32_t)gy, s->grid[2] = (uint32_t)gz;
  s->block[0] = (uint32_t)bx, s->block[1] = (uint32_t)by, s->block[2] = (uint32_t)bz;
  s->shared_bytes = shared_bytes;
}

void cg_gemm(CgEmit *e, const IrNode *n, const CgGemm *g) {
  CgStep *s = new_cgstep(e, n);
  s->kind = CG_STEP_GEMM;
  s->gemm = *g;
}

static CgRef ref_of(CgLoc l) { return (CgRef){.space = l.space, .offset = l.offset}; }

/* The unary expression of op over v0. */
static const char *unary_expr(const IrNode *n, char *buf, size_t size) {
  char f[48];
  cg_float_lit(n->attr.f, f);
  switch (n->op) {
  case IR_NEG: return "-v0";
  case IR_RELU: return "(v0 < 0.0f ? 0.0f : v0)"; /* NaN passes, as in torch */
  case IR_SILU: return "v0 / (1.0f + expf(-v0))";
  case IR_GELU_TANH: return "cg_gelu_tanh(v0)";
  case IR_GELU: return "0.5f * v0 * (1.0f + erff(v0 * 0.70710678118654752f))";
  case IR_SIGMOID: return "1.0f / (1.0f + expf(-v0))";
  case IR_TANH: return "tanhf(v0)";
  case IR_EXP: return "expf(v0)";
  case IR_LOG: return "logf(v0)";
  case IR_SIN: return "sinf(v0)";
  case IR_COS: return "cosf(v0)";
  case IR_SQRT: return "sqrtf(v0)";
  case IR_RECIP: return "1.0f / v0";
  case IR_SCALE: snprintf(buf, size, "v0 * %s", f); return buf;
  case IR_ADD_SCALAR: snprintf(buf, size, "v0 + %s", f); return buf;
  case IR_CLAMP_MIN: snprintf(buf, size, "(v0 < %s ? %s : v0)", f, f); return buf;
  case IR_POW_SCALAR: {
    /* the exponents torch special-cases, computed its way (as runtime/ref.c) */
    float p = n->attr.f;
    if (p == 2.0f) return "v0 * v0";
    if (p == 3.0f) return "v0 * v0 * v0";
    if (p == 0.5f) return "sqrtf(v0)";
    if (p == -0.5f) return "1.0f / sqrtf(v0)";
    if (p == -1.0f) return "1.0f / v0";
    if (p == -2.0f) return "1.0f / (v0 * v0)";
    if (p == 1.0f) return "v0";
    snprintf(buf, size, "powf(v0, %s)", f);
    return buf;
  }
  case IR_CAST: return NULL;
  default: ditc_unreachable();
  }
}

static const char *binary_expr(IrOp op) {
  switch (op) {
  case IR_ADD: return "v0 + v1";
  case IR_SUB: return "v0 - v1";
  case IR_MUL: return "v0 * v1";
  case IR_DIV: return "v0 / v1";
  case IR_MAX: return "(v0 != v0 || v0 > v1) ? v0 : v1"; /* NaN wins, as in torch */
  default: ditc_unreachable();
  }
}

/* Input x read at the output's coordinates with numpy broadcasting. */
static CgView broadcast_view(Ctx *c, CgLoc loc, const IrNode *x, const IrNode *out) {
  int64_t xs[IR_MAX_RANK];
  node_shape(c, x, xs);
  CgView v = cg_view_contig(loc, x->shape.rank, xs), r = {.loc = loc, .rank = out->shape.rank};
  int lead = out->shape.rank - x->shape.rank;
  for (int i = 0; i < r.rank; i++) {
    r.shape[i] = ir_dim_eval(out->shape.d[i], c->batch);
    int j = i - lead;
    r.stride[i] = (j < 0 || (xs[j] == 1 && r.shape[i] != 1)) ? 0 : v.stride[j];
  }
  return r;
}

/* ======================================================================== */
/* elementwise fusion                                                       */
/* ======================================================================== */

/* A tree being fused: its leaves and the nodes it absorbed (for rollback). */
typedef struct {
  IrNode *root;
  IrNode *leaf[CG_MAP_MAX_IN];
  NodeView lview[CG_MAP_MAX_IN];
  int n_leaves;
  IrNode *absorbed[64];
  Lowering was[64];
  int n_absorbed;
  int overflow;
  int64_t shift[IR_MAX_RANK]; /* inside concat parts: the part's start, per root axis */
  int select;                 /* a concat was fused: the expression uses coordinates */
  int gidx[CG_MAP_MAX_IN];    /* a gathered leaf (an absorbed embedding): its indices' leaf, else -1 */
  int allow_gather;           /* map kernels gather; the fused layernorm does not */
} FuseTree;

static FuseTree *tree_new(IrNode *root) {
  FuseTree *t = xcalloc(1, sizeof *t);
  t->root = root;
  for (int j = 0; j < CG_MAP_MAX_IN; j++) t->gidx[j] = -1;
  return t;
}

static int in_tree(const FuseTree *t, const IrNode *x) {
  for (int j = 0; j < t->n_absorbed; j++)
    if (t->absorbed[j] == x) return 1;
  return 0;
}

/* Every reader of x is in its fusion group (so the group may recompute x
 * wherever it is read: it never needs storing). */
static int group_only(Ctx *c, const IrNode *x) { return c->uses[x->index] == c->guses[x->index]; }

/* A concat the tree can compute by picking a part per coordinate: same rank
 * as the root and not broadcast along its axis. */
static int concat_inner(Ctx *c, const FuseTree *t, const IrNode *x) {
  if (x->op != IR_CONCAT || x->dtype != IR_F32 || x->shape.rank != t->root->shape.rank) return 0;
  int ax = x->attr.axis;
  return ir_dim_eval(x->shape.d[ax], c->batch) == ir_dim_eval(t->root->shape.d[ax], c->batch);
}

static int is_elementwise(const IrNode *n) {
  IrOpClass k = ir_op_class(n->op);
  return k == IR_CLASS_UNARY || k == IR_CLASS_BINARY;
}

/* Its value can be recomputed inside the root's expression: an f32
 * elementwise kernel in the root's fusion group read by nothing else (graph
 * outputs count as readers), so the intermediate never needs storing.  It
 * may be a broadcast operand ([B, 1, D] under [B, N, D]): broadcasting
 * composes, so its leaves read at the root's coordinates with their own
 * broadcast give the same values, each recomputed per output element (cheap
 * next to a stored round trip). */
static int fusable_inner(Ctx *c, FuseTree *t, IrNode *x) {
  if (!grouped(t->root, x) || !group_only(c, x)) return 0;
  if (!((is_elementwise(x) && x->dtype == IR_F32) || concat_inner(c, t, x))) return 0;
  Lowering h = inf(c, x)->how;
  return h == LOW_KERNEL || (h == LOW_ABSORBED && in_tree(t, x)); /* read twice: computed twice */
}

static void absorb(Ctx *c, FuseTree *t, IrNode *x) {
  if (in_tree(t, x)) return;
  if (t->n_absorbed == (int)(sizeof t->absorbed / sizeof *t->absorbed)) {
    t->overflow = 1;
    return;
  }
  t->was[t->n_absorbed] = inf(c, x)->how;
  t->absorbed[t->n_absorbed++] = x;
  inf(c, x)->how = LOW_ABSORBED;
}

static void rollback(Ctx *c, FuseTree *t) {
  for (int j = t->n_absorbed - 1; j >= 0; j--) inf(c, t->absorbed[j])->how = t->was[j];
  t->n_absorbed = 0;
}

/* A layout node (slice, permute, reshape) in the root's group with one
 * reader: the tree reads through it. */
static int layout_leaf(Ctx *c, FuseTree *t, IrNode *x) {
  if (!grouped(t->root, x) || !group_only(c, x)) return 0;
  Lowering h = inf(c, x)->how;
  if (h == LOW_ABSORBED) return in_tree(t, x) && (x->op == IR_SLICE || x->op == IR_PERMUTE || x->op == IR_RESHAPE);
  return (x->op == IR_SLICE || x->op == IR_PERMUTE) ? h == LOW_KERNEL : x->op == IR_RESHAPE ? h == LOW_ALIAS : 0;
}

static int through_leaf(Ctx *c, void *t, IrNode *n) { return layout_leaf(c, t, n); }


/* Leaf index of operand x (read through its layout chain when it has one),
 * appending it when new. */
static int add_leaf(Ctx *c, FuseTree *t, IrNode *x) {
  NodeView v = resolve_view_through(c, x, through_leaf, t);
  for (IrNode *y = x; y != v.base; y = y->in[0]) absorb(c, t, y);
  /* inside a concat part the root's coordinates run ahead by the part's
   * start: read at (c - shift), through the strides the root will broadcast
   * the leaf with (broadcast_node_view) */
  IrNode *r = t->root;
  int lead = r->shape.rank - v.rank;
  for (int i = 0; i < r->shape.rank; i++) {
    int j = i - lead;
    int64_t ri = ir_dim_eval(r->shape.d[i], c->batch);
    if (t->shift[i] && j >= 0 && !(v.shape[j] == 1 && ri != 1)) v.offset -= t->shift[i] * v.stride[j];
  }
  for (int j = 0; j < t->n_leaves; j++)
    if (t->leaf[j] == x && t->lview[j].offset == v.offset) return j;
  if (t->n_leaves == CG_MAP_MAX_IN) {
    t->overflow = 1;
    return 0;
  }
  int j = t->n_leaves++;
  t->leaf[j] = x;
  t->lview[j] = v;
  return j;
}

/* Substitutes sub[0], sub[1] for v0, v1 in template tpl. */
static char *subst(Arena *a, const char *tpl, char **sub) {
  CgText t = {0};
  for (const char *p = tpl; *p;) {
    if (p[0] == 'v' && (p[1] == '0' || p[1] == '1') && !(p[2] >= '0' && p[2] <= '9')) {
      cg_text_printf(&t, "(%s)", sub[p[1] - '0']);
      p += 2;
    } else {
      cg_text_printf(&t, "%c", *p++);
    }
  }
  char *r = arena_strdup(a, t.s ? t.s : "");
  free(t.s);
  return r;
}

static char *fuse_expr(Ctx *c, FuseTree *t, IrNode *n);

/* An embedding lookup the tree reads as a gather from its table (the
 * y-embedding under the conditioning add): f32, in the group, read by it
 * alone, the table a float weight. */
static int gather_leaf(Ctx *c, FuseTree *t, IrNode *x) {
  return x->op == IR_EMBEDDING && x->dtype == IR_F32 && grouped(t->root, x) && group_only(c, x) &&
         inf(c, x)->how == LOW_KERNEL && inf(c, x->in[0])->how == LOW_WEIGHT && t->allow_gather;
}

/* Leaf for embedding x: a view of x's [n, dim] output (offsets) over x's
 * table (the base read), plus a leaf for its indices. */
static int add_gather(Ctx *c, FuseTree *t, IrNode *x) {
  int before = t->n_leaves;
  int j = add_leaf(c, t, x);
  if (t->n_leaves == before || t->overflow) return j; /* already there */
  t->lview[j].base = x->in[0];
  absorb(c, t, x);
  int k = add_leaf(c, t, x->in[1]);
  t->gidx[j] = k;
  return j;
}

/* Operand x of a tree node: its expression when the tree absorbs it, else a leaf. */
static char *operand_expr(Ctx *c, FuseTree *t, IrNode *x) {
  if (fusable_inner(c, t, x)) {
    absorb(c, t, x);
    return fuse_expr(c, t, x);
  }
  if (gather_leaf(c, t, x)) return arena_printf(&c->scratch, "v%d", add_gather(c, t, x));
  return arena_printf(&c->scratch, "v%d", add_leaf(c, t, x));
}

/* A concat: the part its coordinate along the axis falls in, each part read
 * at coordinates shifted by its start. */
static char *concat_expr(Ctx *c, FuseTree *t, IrNode *n) {
  int ax = n->attr.axis;
  int64_t base = t->shift[ax], start = 0;
  CgText s = {0};
  for (int k = 0; k < n->n_in; k++) {
    int64_t len = ir_dim_eval(n->in[k]->shape.d[ax], c->batch);
    t->shift[ax] = base + start;
    char *part = operand_expr(c, t, n->in[k]);
    if (k < n->n_in - 1)
      cg_text_printf(&s, "(c%d < %lld ? (%s) : ", ax, (long long)(base + start + len), part);
    else
      cg_text_printf(&s, "(%s)", part);
    start += len;
  }
  for (int k = 0; k < n->n_in - 1; k++) cg_text_printf(&s, ")");
  t->shift[ax] = base;
  t->select = 1;
  char *r = arena_strdup(&c->scratch, s.s ? s.s : "0.0f");
  free(s.s);
  return r;
}

/* The expression of node n over the tree's leaves, absorbing what it can. */
static char *fuse_expr(Ctx *c, FuseTree *t, IrNode *n) {
  if (n->op == IR_CONCAT) return concat_expr(c, t, n);
  char *sub[2] = {NULL, NULL}, buf[160];
  for (int i = 0; i < n->n_in && i < 2; i++) sub[i] = operand_expr(c, t, n->in[i]);
  const char *tpl = ir_op_class(n->op) == IR_CLASS_BINARY ? binary_expr(n->op) : unary_expr(n, buf, sizeof buf);
  return subst(&c->scratch, tpl ? tpl : "v0", sub);
}

/* "fused: %3 mul, %4 add, ..." for the banner: the tree's nodes in graph order. */
static const char *tree_banner(Ctx *c, const char *what, FuseTree *const *trees, int n_trees, IrNode *const *extra,
                               int n_extra) {
  IrNode **all = xmalloc(((size_t)n_trees * 65 + (size_t)n_extra + 1) * sizeof *all);
  int n = 0;
  for (int k = 0; k < n_trees; k++) {
    if (!trees[k]) continue;
    for (int j = 0; j < trees[k]->n_absorbed; j++) all[n++] = trees[k]->absorbed[j];
    all[n++] = trees[k]->root;
  }
  for (int j = 0; j < n_extra; j++) all[n++] = extra[j];
  for (int i = 1; i < n; i++) /* insertion sort by position */
    for (int j = i; j > 0 && all[j - 1]->index > all[j]->index; j--) {
      IrNode *x = all[j];
      all[j] = all[j - 1];
      all[j - 1] = x;
    }
  CgText t = {0};
  cg_text_printf(&t, "%s:", what);
  for (int i = 0; i < n; i++)
    if (!i || all[i] != all[i - 1]) cg_text_printf(&t, "%s %%%d %s", i ? "," : "", all[i]->id, ir_op_name(all[i]->op));
  const char *r = arena_strdup(&c->scratch, t.s);
  free(t.s);
  free(all);
  return r;
}

static void keep_leaves(Ctx *c, NodeView **dst, int *n_dst, const FuseTree *t) {
  *n_dst = t->n_leaves;
  *dst = arena_alloc(&c->scratch, (size_t)(t->n_leaves + 1) * sizeof **dst);
  memcpy(*dst, t->lview, (size_t)t->n_leaves * sizeof **dst);
}

/* Roots, consumers first, so a tree grows from its last node; a tree that
 * outgrows the map kernel's operand count is left unfused. */
static void fuse_elementwise(Ctx *c) {
  for (int i = c->g->n_nodes - 1; i >= 0; i--) {
    IrNode *n = c->g->nodes[i];
    NodeInfo *ni = inf(c, n);
    if (!(is_elementwise(n) || n->op == IR_CONCAT) || ni->how != LOW_KERNEL || n->dtype != IR_F32 || !n->fuse)
      continue;
    FuseTree *t = tree_new(n);
    t->allow_gather = 1;
    const char *expr = fuse_expr(c, t, n);
    if (t->overflow || !t->n_absorbed) {
      rollback(c, t);
    } else {
      ni->how = LOW_FUSED;
      ni->expr = expr;
      ni->select = t->select;
      ni->lnode = arena_alloc(&c->scratch, (size_t)t->n_leaves * sizeof *ni->lnode);
      memcpy(ni->lnode, t->leaf, (size_t)t->n_leaves * sizeof *ni->lnode);
      ni->gidx = arena_alloc(&c->scratch, (size_t)t->n_leaves * sizeof *ni->gidx);
      memcpy(ni->gidx, t->gidx, (size_t)t->n_leaves * sizeof *ni->gidx);
      for (int j = 0; j < t->n_leaves; j++) ni->has_gather |= t->gidx[j] >= 0;
      keep_leaves(c, &ni->lview, &ni->n_leaves, t);
      ni->fused = tree_banner(c, "fused", &t, 1, NULL, 0);
    }
    free(t);
  }
}

static int same_shape(Ctx *c, const IrNode *a, const IrNode *b) {
  if (a->shape.rank != b->shape.rank) return 0;
  for (int i = 0; i < a->shape.rank; i++)
    if (ir_dim_eval(a->shape.d[i], c->batch) != ir_dim_eval(b->shape.d[i], c->batch)) return 0;
  return 1;
}

/* Is every reader of x but `except` after `anchor` in graph order (steps
 * run in that order, and the anchor's kernel writes x)? */
static int read_after(Ctx *c, const IrNode *x, const IrNode *except, const IrNode *anchor) {
  for (int i = 0; i < anchor->index; i++) {
    IrNode *r = c->g->nodes[i];
    if (r == except) continue;
    for (int j = 0; j < r->n_in; j++)
      if (r->in[j] == x) return 0;
  }
  return 1;
}

/* A layernorm group of the fuse pass: [prologue tree] -> layernorm ->
 * [epilogue tree rooted at the anchor] as one cg_emit_norm kernel, when
 * every piece fits (f32, one shape, a row short enough for registers);
 * otherwise the group's elementwise parts fuse as ordinary trees. */
static void fuse_norm(Ctx *c, IrNode *ln) {
  IrNode *root = ln->fuse, *x = ln->in[0];
  int64_t len = ir_dim_eval(ln->shape.d[ln->shape.rank - 1], c->batch);
  if (!root || inf(c, ln)->how != LOW_KERNEL || ln->dtype != IR_F32 || len < 1 || len > CG_NORM_MAX_LEN) return;
  if (root != ln && (!is_elementwise(root) || inf(c, root)->how != LOW_KERNEL || root->dtype != IR_F32 ||
                     !same_shape(c, root, ln) || c->uses[ln->index] != 1))
    return;
  FuseTree *epi = NULL, *pro = NULL;
  const char *eexpr = NULL, *pexpr = NULL;
  if (root != ln) {
    epi = tree_new(root);
    epi->leaf[0] = ln; /* v0: the normalised value */
    epi->n_leaves = 1;
    eexpr = fuse_expr(c, epi, root);
    int reached = 0; /* the tree must reach the layernorm through absorbed nodes */
    for (int j = 0; j < epi->n_absorbed; j++)
      for (int k = 0; k < epi->absorbed[j]->n_in; k++) reached |= epi->absorbed[j]->in[k] == ln;
    for (int k = 0; k < root->n_in; k++) reached |= root->in[k] == ln;
    if (epi->overflow || !reached) {
      rollback(c, epi);
      free(epi);
      return;
    }
  }
  int side = 0;
  if (grouped(x, ln) && is_elementwise(x) && inf(c, x)->how == LOW_KERNEL && x->dtype == IR_F32 &&
      same_shape(c, x, ln) && (c->uses[x->index] == 1 || read_after(c, x, ln, root))) {
    pro = tree_new(x);
    pexpr = fuse_expr(c, pro, x);
    if (pro->overflow) {
      rollback(c, pro);
      free(pro);
      pro = NULL;
      pexpr = NULL;
    } else {
      side = c->uses[x->index] > 1;
    }
  }
  if (!pro) { /* the input as stored (through the group's layout nodes) */
    pro = tree_new(ln);
    add_leaf(c, pro, x);
  }
  NodeInfo *ri = inf(c, root);
  ri->how = LOW_NORM;
  ri->ln = ln;
  ri->expr = eexpr;
  ri->pexpr = pexpr;
  if (epi) {
    keep_leaves(c, &ri->lview, &ri->n_leaves, epi);
  } else {
    ri->n_leaves = 1;
    ri->lview = arena_alloc(&c->scratch, sizeof *ri->lview);
    ri->lview[0] = view_contig(c, ln);
  }
  keep_leaves(c, &ri->pview, &ri->n_pleaves, pro);
  if (root != ln) inf(c, ln)->how = LOW_ABSORBED;
  if (pexpr) {
    inf(c, x)->how = side ? LOW_SIDE : LOW_ABSORBED;
    ri->side = side ? x : NULL;
  }
  FuseTree *trees[2] = {pexpr ? pro : NULL, epi};
  ri->fused = tree_banner(c, "fused layernorm", trees, 2, &ln, 1);
  free(epi);
  free(pro);
}

static void fuse_norms(Ctx *c) {
  for (int i = 0; i < c->g->n_nodes; i++)
    if (c->g->nodes[i]->op == IR_LAYERNORM) fuse_norm(c, c->g->nodes[i]);
}

/* Leaf view v (of its node's shape) read at the output's coordinates with
 * numpy broadcasting. */
static CgView broadcast_node_view(Ctx *c, CgLoc loc, const NodeView *v, const IrNode *out) {
  CgView r = {.loc = loc, .rank = out->shape.rank, .offset = v->offset};
  int lead = out->shape.rank - v->rank;
  for (int i = 0; i < r.rank; i++) {
    r.shape[i] = ir_dim_eval(out->shape.d[i], c->batch);
    int j = i - lead;
    r.stride[i] = (j < 0 || (v->shape[j] == 1 && r.shape[i] != 1)) ? 0 : v->stride[j];
  }
  return r;
}

static void emit_gemm_linear(Ctx *c, CgEmit *e, IrNode *n, const LStep *st, CgEpilogue epi) {
  IrNode *lin = epi == CG_EPI_GELU_TANH_BIAS ? inf(c, n)->linear : n;
  IrNode *x = lin->in[0], *w = lin->in[1];
  int64_t K = ir_dim_eval(x->shape.d[x->shape.rank - 1], c->batch), N = w->shape.d[0];
  int64_t M = K ? node_numel(c, x) / K : node_numel(c, n) / (N ? N : 1);
  if (M == 0 || N == 0) return;
  CgLoc d = buf_loc(c, st->write);
  DITC_ASSERT(buf_loc(c, st->reads[0]).dtype == buf_loc(c, st->reads[1]).dtype);
  CgGemm g = {.dtype = buf_loc(c, st->reads[0]).dtype, .d_dtype = d.dtype, .trans_b = 1, .m = M, .n = N, .k = K, .batch = 1,
              .lda = K, .ldb = K, .ldd = N, .stride_a = M * K, .stride_b = 0, .stride_d = M * N,
              .a = ref_of(buf_loc(c, st->reads[0])), .b = ref_of(buf_loc(c, st->reads[1])),
              .d = ref_of(d), .epilogue = CG_EPI_NONE, .alpha = 1.0f};
  if (lin->n_in == 3) {
    g.bias = ref_of(buf_loc(c, st->reads[2]));
    g.epilogue = epi == CG_EPI_GELU_TANH_BIAS ? CG_EPI_GELU_TANH_BIAS : CG_EPI_BIAS;
  }
  cg_gemm(e, n, &g);
}

/* Batched matmul: leading dims merged where every operand allows; what is
 * left beyond one batch dim becomes a loop of GEMM steps. */
static void emit_gemm_matmul(Ctx *c, CgEmit *e, IrNode *n, const LStep *st) {
  IrNode *a = n->in[0], *b = n->in[1];
  int r = n->shape.rank - 2, ra = a->shape.rank - 2, rb = b->shape.rank - 2;
  int64_t M = ir_dim_eval(n->shape.d[r], c->batch), N = ir_dim_eval(n->shape.d[r + 1], c->batch);
  int64_t K = ir_dim_eval(a->shape.d[ra + 1], c->batch);
  int64_t sa[IR_MAX_RANK], sb[IR_MAX_RANK], sd[IR_MAX_RANK], dims[IR_MAX_RANK];
  int64_t ma = M * K, mb = K * N, md = M * N;
  for (int i = r - 1; i >= 0; i--) {
    dims[i] = ir_dim_eval(n->shape.d[i], c->batch);
    int ia = i - (r - ra), ib = i - (r - rb);
    int64_t da = ia >= 0 ? ir_dim_eval(a->shape.d[ia], c->batch) : 1;
    int64_t db = ib >= 0 ? ir_dim_eval(b->shape.d[ib], c->batch) : 1;
    sa[i] = (da == 1 && dims[i] != 1) ? 0 : ma;
    sb[i] = (db == 1 && dims[i] != 1) ? 0 : mb;
    sd[i] = md;
    ma *= da, mb *= db, md *= dims[i];
  }
  /* merge leading dims (drop size 1, join contiguous) */
  int nd = 0;
  for (int i = 0; i < r; i++) {
    if (dims[i] == 1) continue;
    if (nd && sa[nd - 1] == sa[i] * dims[i] && sb[nd - 1] == sb[i] * dims[i] && sd[nd - 1] == sd[i] * dims[i]) {
      dims[nd - 1] *= dims[i];
      sa[nd - 1] = sa[i], sb[nd - 1] = sb[i], sd[nd - 1] = sd[i];
    } else {
      dims[nd] = dims[i], sa[nd] = sa[i], sb[nd] = sb[i], sd[nd] = sd[i];
      nd++;
    }
  }
  if (M == 0 || N == 0) return;
  CgLoc la = buf_loc(c, st->reads[0]), lb = buf_loc(c, st->reads[1]), ld = buf_loc(c, st->write);
  DITC_ASSERT(la.dtype == lb.dtype);
  int64_t es = (int64_t)ir_dtype_size(la.dtype), ds = (int64_t)ir_dtype_size(ld.dtype);
  CgGemm g = {.dtype = la.dtype, .d_dtype = ld.dtype, .trans_b = n->attr.trans_b, .m = M, .n = N, .k = K, .batch = 1,
              .lda = K, .ldb = n->attr.trans_b ? K : N, .ldd = N, .stride_a = M * K,
              .stride_b = K * N, .stride_d = M * N, .epilogue = CG_EPI_NONE, .alpha = 1.0f};
  if (nd >= 1) {
    g.batch = dims[nd - 1];
    g.stride_a = sa[nd - 1], g.stride_b = sb[nd - 1], g.stride_d = sd[nd - 1];
  }
  int64_t outer = 1;
  for (int i = 0; i < nd - 1; i++) outer *= dims[i];
  for (int64_t o = 0; o < outer; o++) {
    int64_t rest = o, oa = 0, ob = 0, od = 0;
    for (int i = nd - 2; i >= 0; i--) {
      int64_t ci = rest % dims[i];
      rest /= dims[i];
      oa += ci * sa[i], ob += ci * sb[i], od += ci * sd[i];
    }
    g.a = ref_of(la), g.b = ref_of(lb), g.d = ref_of(ld);
    g.a.offset += oa * es, g.b.offset += ob * es, g.d.offset += od * ds;
    cg_gemm(e, n, &g);
  }
}

static CgView node_view(Ctx *c, const IrNode *n, CgLoc loc) {
  int64_t s[IR_MAX_RANK];
  node_shape(c, n, s);
  return cg_view_contig(loc, n->shape.rank, s);
}

static void emit_node(Ctx *c, CgEmit *e, const LStep *st) {
  IrNode *n = st->node;
  NodeInfo *ni = inf(c, n);
  CgLoc out = buf_loc(c, st->write);
  CgView ov = node_view(c, n, out);
  char buf[160];
  if (node_numel(c, n) == 0) return;
  if (ni->how == LOW_GEMM && n->op == IR_LINEAR) return emit_gemm_linear(c, e, n, st, CG_EPI_BIAS);
  if (ni->how == LOW_GEMM) return emit_gemm_matmul(c, e, n, st);
  if (ni->how == LOW_LINEAR_GELU) return emit_gemm_linear(c, e, n, st, CG_EPI_GELU_TANH_BIAS);
  if (ni->how == LOW_ATTENTION) {
    if (ni->attn) { /* out is the permute of the attention result: write through the inverse */
      CgView mv = node_view(c, ni->attn, out);
      for (int j = 0; j < ov.rank; j++) mv.stride[n->attr.perm[j]] = ov.stride[j];
      ov = mv;
    }
    CgView v[3];
    for (int i = 0; i < 3; i++) {
      const NodeView *nv = &ni->qkv[i];
      v[i] = (CgView){.loc = buf_loc(c, st->reads[i]), .rank = nv->rank, .offset = nv->offset};
      memcpy(v[i].shape, nv->shape, sizeof nv->shape);
      memcpy(v[i].stride, nv->stride, sizeof nv->stride);
    }
    return cg_emit_attention(e, n, ni->fused, ov, v[0], v[1], v[2], ni->scale);
  }
  if (ni->how == LOW_FUSED) {
    CgView v[CG_MAP_MAX_IN];
    for (int j = 0; j < ni->n_leaves; j++) v[j] = broadcast_node_view(c, buf_loc(c, st->reads[j]), &ni->lview[j], n);
    for (int j = 0; j < ni->n_leaves; j++)
      if (ni->gidx[j] >= 0) { /* lview[j] views the embedding's output; its base is the table */
        const IrNode *tab = ni->lview[j].base;
        v[j].gather = 1;
        v[j].gather_idx = buf_loc(c, st->reads[ni->gidx[j]]);
        v[j].gather_rows = ir_dim_eval(tab->shape.d[0], c->batch);
        v[j].gather_dim = ir_dim_eval(tab->shape.d[1], c->batch);
      }
    e->detail = ni->fused;
    cg_emit_map_ex(e, n, "fused", ov, ni->n_leaves, v, ni->expr, ni->select);
    e->detail = NULL;
    return;
  }
  if (ni->how == LOW_NORM) {
    CgView pin[CG_MAP_MAX_IN], ein[CG_MAP_MAX_IN];
    for (int j = 0; j < ni->n_pleaves; j++)
      pin[j] = broadcast_node_view(c, buf_loc(c, st->reads[j]), &ni->pview[j], ni->ln);
    for (int j = 1; j < ni->n_leaves; j++)
      ein[j] = broadcast_node_view(c, buf_loc(c, st->reads[ni->n_pleaves + j - 1]), &ni->lview[j], n);
    int64_t len = ov.shape[ov.rank - 1];
    CgNorm s = {.rows = node_numel(c, n) / len, .len = len, .eps = ni->ln->attr.f, .n_pin = ni->n_pleaves,
                .pin = pin, .pexpr = ni->pexpr, .has_side = ni->side != NULL, .n_ein = ni->n_leaves, .ein = ein,
                .eexpr = ni->expr, .out = ov, .detail = ni->fused};
    if (ni->side) s.side = node_view(c, ni->side, buf_loc(c, st->write2));
    return cg_emit_norm(e, n, &s);
  }
  DITC_ASSERT(ni->how == LOW_KERNEL);
  CgLoc in0 = buf_loc(c, st->reads[0]);
  IrNode *x = n->in[0];
  int64_t xs[IR_MAX_RANK];
  node_shape(c, x, xs);
  int xr = x->shape.rank;
  switch (ir_op_class(n->op)) {
  case IR_CLASS_UNARY: {
    CgView iv = node_view(c, x, in0);
    return cg_emit_map(e, n, ir_op_name(n->op), ov, 1, &iv, unary_expr(n, buf, sizeof buf));
  }
  case IR_CLASS_BINARY: {
    CgView iv[2] = {broadcast_view(c, in0, x, n), broadcast_view(c, buf_loc(c, st->reads[1]), n->in[1], n)};
    return cg_emit_map(e, n, ir_op_name(n->op), ov, 2, iv, binary_expr(n->op));
  }
  default: break;
  }
  int64_t last = xr ? xs[xr - 1] : 1, numel = node_numel(c, x);
  switch (n->op) {
  case IR_LAYERNORM:
    return cg_emit_layernorm(e, n, out, in0, last ? numel / last : 0, last, n->attr.f);
  case IR_SOFTMAX: return cg_emit_softmax(e, n, out, in0, last ? numel / last : 0, last);
  case IR_TOPK_SOFTMAX:
    return cg_emit_topk_softmax(e, n, out, in0, last ? numel / last : 0, last, n->attr.k);
  case IR_REDUCE_SUM:
  case IR_REDUCE_MEAN: {
    int64_t rows = 1, len = 1;
    for (int i = 0; i < xr; i++) *(i < n->attr.axis ? &rows : &len) *= xs[i];
    return cg_emit_reduce(e, n, out, in0, rows, len, n->op == IR_REDUCE_MEAN);
  }
  case IR_EMBEDDING:
    return cg_emit_embedding(e, n, out, in0, buf_loc(c, st->reads[1]), node_numel(c, n->in[1]),
                             xs[0], xs[1]);
  case IR_CONV2D: {
    const IrNode *w = n->in[1];
    CgConvShape s = {.n = xs[0], .c = xs[1], .h = xs[2], .w = xs[3], .o = w->shape.d[0],
                     .kh = w->shape.d[2], .kw = w->shape.d[3], .oh = ov.shape[2], .ow = ov.shape[3],
                     .stride = n->attr.stride ? n->attr.stride : 1, .pad = n->attr.pad,
                     .groups = n->attr.groups ? n->attr.groups : 1};
    CgLoc bias = n->n_in == 3 ? buf_loc(c, st->reads[2]) : out;
    return cg_emit_conv2d(e, n, out, in0, buf_loc(c, st->reads[1]), n->n_in == 3 ? &bias : NULL, &s);
  }
  case IR_MOE_ROUTE:
  case IR_MOE_GATHER:
  case IR_MOE_LINEAR:
  case IR_MOE_COMBINE: {
    CgLoc in[4];
    for (int i = 0; i < n->n_in && i < 4; i++) in[i] = buf_loc(c, st->reads[i]);
    return cg_emit_moe(e, n, out, in);
  }
  case IR_AVGPOOL2D:
    return cg_emit_avgpool(e, n, out, in0, xs[0] * xs[1], xs[2], xs[3], n->attr.out_h, n->attr.out_w);
  case IR_PERMUTE: {
    CgView iv = node_view(c, x, in0), pv = {.loc = in0, .rank = ov.rank};
    for (int j = 0; j < ov.rank; j++) {
      pv.shape[j] = ov.shape[j];
      pv.stride[j] = iv.stride[n->attr.perm[j]];
    }
    return cg_emit_map(e, n, "permute", ov, 1, &pv, NULL);
  }
  case IR_SLICE: {
    CgView iv = node_view(c, x, in0);
    int ax = n->attr.axis;
    iv.offset = ir_dim_eval(n->attr.start, c->batch) * iv.stride[ax];
    iv.shape[ax] = ov.shape[ax];
    return cg_emit_map(e, n, "slice", ov, 1, &iv, NULL);
  }
  case IR_CONCAT: {
    CgView *iv = xmalloc((size_t)n->n_in * sizeof *iv);
    for (int i = 0; i < n->n_in; i++) iv[i] = node_view(c, n->in[i], buf_loc(c, st->reads[i]));
    cg_emit_concat(e, n, ov, n->n_in, iv, n->attr.axis);
    free(iv);
    return;
  }
  default: ditc_unreachable();
  }
}

static void emit_copy(Ctx *c, CgEmit *e, const LStep *st, const char *op) {
  if (node_numel(c, st->node) == 0) return;
  CgView ov = node_view(c, st->node, buf_loc(c, st->write));
  CgView iv = node_view(c, st->node, buf_loc(c, st->reads[0]));
  cg_emit_map(e, st->node, op, ov, 1, &iv, NULL);
}

static void emit_header(Ctx *c, CgEmit *e) {
  const CgTuning *t = e->tune;
  cg_text_printf(&e->src,
                 "/*\n"
                 " * ditc generated kernels\n"
                 " *   model:     %s\n"
                 " *   entry:     %s\n"
                 " *   batch:     %lld\n"
                 " *   precision: %s\n"
                 " *   codegen:   %s\n"
                 " * Shapes, strides and offsets are literals for this batch.  Graph inputs and\n"
                 " * outputs keep their IR dtypes; matrix-product operands are stored in the\n"
                 " * precision, other values in f32; all computing is f32.\n"
                 " * Arena bytes: %lld, weights bytes: %lld.\n"
                 " */\n\n",
                 c->o->model ? c->o->model : "(unnamed)", c->g->name ? c->g->name : "?",
                 (long long)c->batch, ir_dtype_name(c->o->precision), CG_CODEGEN_VERSION,
                 (long long)c->plan->arena_bytes, (long long)c->weights_bytes);
  cg_text_printf(&e->src,
                 "typedef struct {\n"
                 "  char *act;\n"
                 "  const char *w;\n"
                 "} DitcArgs;\n\n"
                 "/* launch geometry (a row of codegen/kernels.c's tuning table; not named here, so\n"
                 " * architectures whose rows agree share this source and its cached CUBINs) */\n"
                 "#define CG_BLOCK_ELEMENTWISE %d\n"
                 "#define CG_ROWS_PER_BLOCK %d\n"
                 "#define CG_TRANSPOSE_TILE %d\n"
                 "#define CG_TRANSPOSE_ROWS %d\n"
                 "#define CG_BLOCK_ROW_THREAD %d\n"
                 "#define CG_ATTN_WARPS %d\n"
                 "#define CG_ATTN_ROWS_PER_WARP %d\n\n"
                 "/* x/2 (1 + tanh(u)) = x sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3) */\n"
                 "DITC_DEVICE static inline float cg_gelu_tanh(float x) {\n"
                 "  return x / (1.0f + expf(-2.0f * 0.7978845608028654f * (x + 0.044715f * x * x * x)));\n"
                 "}\n\n"
                 "/* a gathered embedding row: out-of-range indices clamped, status |= 1 */\n"
                 "DITC_DEVICE static inline int ditc_gather_row(int id, int rows, int *status) {\n"
                 "  if (id < 0 || id >= rows) {\n"
                 "    atomicExch(status, 1);\n"
                 "    id = id < 0 ? 0 : rows - 1;\n"
                 "  }\n"
                 "  return id;\n"
                 "}\n\n",
                 t->block_elementwise, t->rows_per_block, t->transpose_tile,
                 t->transpose_rows, t->block_row_thread, t->attn_warps, t->attn_rows_per_warp);
}

/* ---- bytes each step moves (plan.h: CgStep.act_read ...) ---- */

/* Distinct elements of a node view: broadcast (stride 0) axes count once. */
static int64_t view_elems(const NodeView *v) {
  int64_t m = 1;
  for (int i = 0; i < v->rank; i++)
    if (v->stride[i] != 0) m *= v->shape[i];
  return m;
}

static void count_read(Ctx *c, int b, int64_t elems, int64_t *act, int64_t *w) {
  int64_t bytes = elems * (int64_t)ir_dtype_size(c->bufs[b].dtype);
  *(c->bufs[b].space == CG_SPACE_WEIGHTS ? w : act) += bytes;
}

/* What lowered step st moves: reads as the lowering reads them (a leaf
 * through its view, a slice kernel only its part), writes whole. */
static void step_bytes(Ctx *c, const LStep *st, int64_t *act_read, int64_t *act_written, int64_t *w_read) {
  *act_read = *act_written = *w_read = 0;
  int wr[2] = {st->write, st->write2}, j = 0;
  for (int k = 0; k < 2; k++)
    if (wr[k] >= 0 && c->bufs[wr[k]].space == CG_SPACE_ACT) *act_written += c->bufs[wr[k]].bytes;
  NodeInfo *ni = st->kind == LS_NODE ? inf(c, st->node) : NULL;
  switch (ni ? ni->how : LOW_NONE) {
  case LOW_FUSED:
    for (; j < ni->n_leaves; j++) {
      int seen = 0; /* the same node in another concat part: the same elements */
      for (int k = 0; k < j; k++) seen |= ni->lnode[k] == ni->lnode[j];
      if (!seen) count_read(c, st->reads[j], view_elems(&ni->lview[j]), act_read, w_read);
    }
    break;
  case LOW_NORM:
    for (int i = 0; i < ni->n_pleaves; i++, j++) count_read(c, st->reads[j], view_elems(&ni->pview[i]), act_read, w_read);
    for (int i = 1; i < ni->n_leaves; i++, j++) count_read(c, st->reads[j], view_elems(&ni->lview[i]), act_read, w_read);
    break;
  case LOW_ATTENTION:
    for (; j < 3; j++) count_read(c, st->reads[j], view_elems(&ni->qkv[j]), act_read, w_read);
    break;
  case LOW_KERNEL: /* a slice reads its part, an embedding the rows it looks up */
    if (st->node->op == IR_SLICE || st->node->op == IR_EMBEDDING)
      count_read(c, st->reads[j++], node_numel(c, st->node), act_read, w_read);
    break;
  default: break;
  }
  for (; j < st->n_reads; j++) { /* the rest whole */
    Buf *b = &c->bufs[st->reads[j]];
    count_read(c, st->reads[j], b->bytes / (int64_t)ir_dtype_size(b->dtype), act_read, w_read);
  }
}

static void emit_all(Ctx *c) {
  CgPlan *p = c->plan;
  CgEmit e = {.plan = p, .tune = cg_tuning_for(c->o->arch), .batch = c->batch,
              .status_offset = c->status_buf >= 0 ? c->bufs[c->status_buf].offset : -1};
  p->tuning = e.tune->arch;
  emit_header(c, &e);
  for (int s = 0; s < c->n_steps; s++) {
    LStep *st = &c->steps[s];
    int first = e.n_steps;
    switch (st->kind) {
    case LS_STATUS: cg_emit_status_reset(&e); break;
    case LS_NODE: emit_node(c, &e, st); break;
    case LS_CONVERT: emit_copy(c, &e, st, "convert"); break;
    case LS_OUTPUT: emit_copy(c, &e, st, "output"); break;
    }
    int made = e.n_steps - first;
    if (!made) continue;
    int64_t r, w, wr; /* several GEMM steps of one matmul share its bytes evenly */
    step_bytes(c, st, &r, &w, &wr);
    for (int k = first; k < e.n_steps; k++) {
      e.steps[k].act_read = r / made;
      e.steps[k].act_written = w / made;
      e.steps[k].weight_read = wr / made;
    }
  }
  p->source = arena_strdup(&p->arena, e.src.s ? e.src.s : "");
  free(e.src.s);
  p->n_kernels = e.n_kernels;
  p->kernels = arena_alloc(&p->arena, (size_t)(e.n_kernels + 1) * sizeof *p->kernels);
  if (e.n_kernels) memcpy(p->kernels, e.kernels, (size_t)e.n_kernels * sizeof *p->kernels);
  p->n_steps = e.n_steps;
  p->steps = arena_alloc(&p->arena, (size_t)(e.n_steps + 1) * sizeof *p->steps);
  if (e.n_steps) memcpy(p->steps, e.steps, (size_t)e.n_steps * sizeof *p->steps);
  p->status_offset = e.status_offset;
  free(e.kernels);
  free(e.steps);
}

/* ======================================================================== */
/* the plan                                                                 */
/* ======================================================================== */

static void fill_io(Ctx *c, CgIo *io, const IrNode *n, int b) {
  *io = (CgIo){.name = n->name ? arena_strdup(&c->plan->arena, n->name) : NULL, .dtype = n->dtype,
               .rank = n->shape.rank, .offset = c->bufs[b].offset};
  node_shape(c, n, io->shape);
}

int cg_plan_build(IrGraph *g, const CgOptions *o, CgPlan **out, IrErr *err) {
  *out = NULL;
  if (o->batch < 1) return ir_errf(err, "codegen: batch must be >= 1, got %lld", (long long)o->batch);
  if (o->precision != IR_F32 && o->precision != IR_F16 && o->precision != IR_BF16)
    return ir_errf(err, "codegen: precision must be f32, f16 or bf16, got %s", ir_dtype_name(o->precision));
  if (ir_verify(g, err)) return -1;
  CgPlan *p = xcalloc(1, sizeof *p);
  Ctx c = {.g = g, .o = o, .plan = p, .batch = o->batch};
  c.uses = ir_use_counts(g); /* also refreshes node->index */
  c.info = xcalloc((size_t)g->n_nodes + 1, sizeof *c.info);
  int rc = -1;
  c.guses = xcalloc((size_t)g->n_nodes + 1, sizeof *c.guses);
  for (int i = 0; i < g->n_nodes; i++)
    for (int j = 0; j < g->nodes[i]->n_in; j++)
      if (grouped(g->nodes[i], g->nodes[i]->in[j])) c.guses[g->nodes[i]->in[j]->index]++;
  if (decide(&c, err)) goto done;
  fuse_norms(&c);
  fuse_elementwise(&c);
  need(&c);
  storage(&c);
  if (plan_steps(&c)) goto done;
  place_weights(&c);
  p->arena_bytes = place(&c, &p->arena_unplanned_bytes);
  p->entry = arena_strdup(&p->arena, g->name ? g->name : "forward");
  p->precision = o->precision;
  p->batch = o->batch;
  p->weights_bytes = c.weights_bytes;
  p->n_weights = c.n_weights;
  p->weights = arena_alloc(&p->arena, (size_t)(c.n_weights + 1) * sizeof *p->weights);
  if (c.n_weights) memcpy(p->weights, c.weights, (size_t)c.n_weights * sizeof *p->weights);
  IrNode **ins;
  p->n_inputs = ir_graph_inputs(g, &ins);
  p->inputs = arena_alloc(&p->arena, (size_t)(p->n_inputs + 1) * sizeof *p->inputs);
  for (int i = 0; i < p->n_inputs; i++) fill_io(&c, &p->inputs[i], ins[i], inf(&c, ins[i])->buf);
  p->n_outputs = g->n_outputs;
  p->outputs = arena_alloc(&p->arena, (size_t)(g->n_outputs + 1) * sizeof *p->outputs);
  int *used = xcalloc((size_t)c.n_steps + 1, sizeof *used);
  for (int i = 0; i < g->n_outputs; i++) {
    fill_io(&c, &p->outputs[i], g->outputs[i], output_buf(&c, i, used));
    if (g->output_names[i]) p->outputs[i].name = arena_strdup(&p->arena, g->output_names[i]);
  }
  free(used);
  emit_all(&c);
  rc = 0;
done:
  free(c.uses);
  free(c.guses);
  free(c.info);
  free(c.bufs);
  free(c.steps);
  free(c.weights);
  arena_free(&c.scratch);
  if (rc) {
    cg_plan_free(p);
    return -1;
  }
  *out = p;
  return 0;
}

void cg_plan_free(CgPlan *p) {
  if (!p) return;
  arena_free(&p->arena);
  free(p);
}

/* ======================================================================== */
/* weights                                                                  */
/* ======================================================================== */


static int64_t shape_numel(int rank, const int64_t *shape) {
  int64_t n = 1;
  for (int j = 0; j < rank; j++) n *= shape[j];
  return n;
}

/* Elements before and after `axis` of a computed weight's shape. */
static void outer_inner(const CgWeight *cw, int axis, int64_t *outer, int64_t *inner) {
  *outer = *inner = 1;
  for (int j = 0; j < cw->rank; j++) {
    if (j < axis) *outer *= cw->shape[j];
    if (j > axis) *inner *= cw->shape[j];
  }
}

static int is_float_dtype(IrDType t) { return t == IR_F32 || t == IR_F16 || t == IR_BF16; }

int cg_weight_check(const CgPlan *p, int i, IrErr *err) {
  const CgWeight *cw = &p->weights[i];
  const char *name = cw->name ? cw->name : "?";
  if (cw->n_in == 0) return 0;
  if (cw->n_in < 0 || !cw->in) return ir_errf(err, "computed weight '%s': no inputs", name);
  if (cw->param_id >= 0 || cw->const_data)
    return ir_errf(err, "computed weight '%s' is also a parameter or constant", name);
  if (!is_float_dtype(cw->dtype)) return ir_errf(err, "computed weight '%s': dtype %s", name, ir_dtype_name(cw->dtype));
  int64_t numel = shape_numel(cw->rank, cw->shape), in_numel[1] = {0};
  for (int j = 0; j < cw->n_in; j++) {
    int k = cw->in[j];
    if (k < 0 || k >= i) return ir_errf(err, "computed weight '%s': input %d is not an earlier weight", name, k);
    if (!is_float_dtype(p->weights[k].dtype))
      return ir_errf(err, "computed weight '%s': input '%s' is not float", name, p->weights[k].name ? p->weights[k].name : "?");
    if (j == 0) in_numel[0] = shape_numel(p->weights[k].rank, p->weights[k].shape);
  }
  int axis = cw->attr.axis;
  int64_t outer, inner;
  switch (cw->op) {
  case IR_RESHAPE:
  case IR_CAST:
    if (cw->n_in != 1 || in_numel[0] != numel) break;
    if (cw->op == IR_CAST && !is_float_dtype(cw->attr.to)) break;
    return 0;
  case IR_PERMUTE: {
    unsigned seen = 0;
    if (cw->n_in != 1 || in_numel[0] != numel) break;
    for (int j = 0; j < cw->rank; j++) {
      int q = cw->attr.perm[j];
      if (q < 0 || q >= cw->rank || (seen >> q & 1)) return ir_errf(err, "computed weight '%s': bad permutation", name);
      seen |= 1u << q;
    }
    return 0;
  }
  case IR_SLICE:
    if (cw->n_in != 1 || axis < 0 || axis >= cw->rank) break;
    outer_inner(cw, axis, &outer, &inner);
    if (outer * inner == 0) {
      if (numel == 0) return 0;
      break;
    }
    if (in_numel[0] % (outer * inner) || cw->attr.start < 0 || cw->attr.len != cw->shape[axis] ||
        cw->attr.start > in_numel[0] / (outer * inner) - cw->shape[axis])
      break;
    return 0;
  case IR_CONCAT: {
    if (axis < 0 || axis >= cw->rank) break;
    outer_inner(cw, axis, &outer, &inner);
    int64_t along = 0;
    int ok = 1;
    for (int j = 0; j < cw->n_in && ok; j++) {
      const CgWeight *x = &p->weights[cw->in[j]];
      int64_t n = shape_numel(x->rank, x->shape);
      if (outer * inner == 0) {
        ok = n == 0;
      } else {
        ok = n % (outer * inner) == 0;
        along += n / (outer * inner);
      }
    }
    if (!ok || (outer * inner != 0 && along != cw->shape[axis])) break;
    return 0;
  }
  default: return ir_errf(err, "computed weight '%s': op %s cannot be computed into the blob", name, ir_op_name(cw->op));
  }
  return ir_errf(err, "computed weight '%s': its %s does not fit its inputs", name, ir_op_name(cw->op));
}

/* The f32 values of computed weight cw from its inputs' values (the checks
 * above hold). */
static float *compute_weight(const CgPlan *p, const CgWeight *cw, float *const *val) {
  int64_t numel = shape_numel(cw->rank, cw->shape);
  float *out = xmalloc((size_t)(numel > 0 ? numel : 1) * sizeof *out);
  const float *x = val[cw->in[0]];
  int64_t outer, inner;
  switch (cw->op) {
  case IR_RESHAPE: memcpy(out, x, (size_t)numel * sizeof *out); break;
  case IR_CAST:
    for (int64_t j = 0; j < numel; j++)
      out[j] = cw->attr.to == IR_F16 ? ir_f16_to_f32(ir_f32_to_f16(x[j]))
               : cw->attr.to == IR_BF16 ? ir_bf16_to_f32(ir_f32_to_bf16(x[j]))
                                         : x[j];
    break;
  case IR_SLICE: {
    outer_inner(cw, cw->attr.axis, &outer, &inner);
    if (!numel) break;
    int64_t len = cw->shape[cw->attr.axis], in_len = shape_numel(p->weights[cw->in[0]].rank, p->weights[cw->in[0]].shape) / (outer * inner);
    for (int64_t o = 0; o < outer; o++)
      memcpy(out + o * len * inner, x + (o * in_len + cw->attr.start) * inner, (size_t)(len * inner) * sizeof *out);
    break;
  }
  case IR_CONCAT: {
    outer_inner(cw, cw->attr.axis, &outer, &inner);
    if (!numel) break;
    int64_t along = cw->shape[cw->attr.axis], at = 0;
    for (int j = 0; j < cw->n_in; j++) {
      const CgWeight *w = &p->weights[cw->in[j]];
      int64_t len = shape_numel(w->rank, w->shape) / (outer * inner);
      for (int64_t o = 0; o < outer; o++)
        memcpy(out + (o * along + at) * inner, val[cw->in[j]] + o * len * inner, (size_t)(len * inner) * sizeof *out);
      at += len;
    }
    break;
  }
  case IR_PERMUTE: { /* out axis j is input axis perm[j] */
    int r = cw->rank;
    int64_t in_shape[IR_MAX_RANK], in_stride[IR_MAX_RANK], idx[IR_MAX_RANK] = {0}, step[IR_MAX_RANK];
    for (int j = 0; j < r; j++) in_shape[cw->attr.perm[j]] = cw->shape[j];
    for (int j = r - 1, s = 1; j >= 0; j--) {
      in_stride[j] = s;
      s *= in_shape[j];
    }
    for (int j = 0; j < r; j++) step[j] = in_stride[cw->attr.perm[j]];
    for (int64_t e = 0, off = 0; e < numel; e++) {
      out[e] = x[off];
      for (int j = r - 1; j >= 0; j--) { /* odometer over the output's coordinates */
        off += step[j];
        if (++idx[j] < cw->shape[j]) break;
        off -= step[j] * cw->shape[j];
        idx[j] = 0;
      }
    }
    break;
  }
  default: ditc_unreachable();
  }
  return out;
}

/* n values src (f32; i32 bits for an i32 CONST) into dst in dtype t. */
static int store_weight(const CgWeight *cw, const float *src, int64_t n, char *dst, IrErr *err) {
  switch (cw->dtype) {
  case IR_F32: memcpy(dst, src, (size_t)n * 4); break;
  case IR_I32:
    if (cw->const_data) {
      memcpy(dst, src, (size_t)n * 4); /* i32 bits */
    } else {
      for (int64_t j = 0; j < n; j++) ((int32_t *)dst)[j] = (int32_t)src[j];
    }
    break;
  case IR_F16:
    for (int64_t j = 0; j < n; j++) {
      uint16_t h = ir_f32_to_f16(src[j]);
      memcpy(dst + 2 * j, &h, 2);
    }
    break;
  case IR_BF16:
    for (int64_t j = 0; j < n; j++) {
      uint16_t h = ir_f32_to_bf16(src[j]);
      memcpy(dst + 2 * j, &h, 2);
    }
    break;
  default: return ir_errf(err, "codegen: weight '%s' has unsupported dtype %s", cw->name ? cw->name : "?",
                          ir_dtype_name(cw->dtype));
  }
  return 0;
}

int cg_plan_fill_weights(const CgPlan *p, CgParamValues values, void *blob, IrErr *err) {
  char *out = blob;
  memset(out, 0, (size_t)p->weights_bytes);
  /* values of the weights computed weights read, f32 (owned when computed or rounded) */
  float **val = xcalloc((size_t)p->n_weights + 1, sizeof *val);
  unsigned char *owned = xcalloc((size_t)p->n_weights + 1, 1), *read = xcalloc((size_t)p->n_weights + 1, 1);
  int rc = -1;
  for (int i = 0; i < p->n_weights; i++)
    for (int j = 0; j < p->weights[i].n_in; j++)
      if (p->weights[i].in[j] >= 0 && p->weights[i].in[j] < i) read[p->weights[i].in[j]] = 1;
  for (int i = 0; i < p->n_weights; i++) {
    const CgWeight *cw = &p->weights[i];
    int64_t n = shape_numel(cw->rank, cw->shape);
    const float *src = cw->const_data;
    if (cw->n_in) {
      if (cg_weight_check(p, i, err)) goto out;
      src = val[i] = compute_weight(p, cw, val);
      owned[i] = 1;
    } else if (!src) {
      if (cw->param_id < 0 || cw->param_id >= values.n || !values.by_id || !values.by_id[cw->param_id]) {
        ir_errf(err, "codegen: weight '%s' is not bound", cw->name ? cw->name : "?");
        goto out;
      }
      src = values.by_id[cw->param_id];
    }
    if (read[i] && !cw->n_in) {
      /* a half-typed parameter holds half values (as runtime/ref.c does) */
      if (cw->dtype == IR_F16 || cw->dtype == IR_BF16) {
        float *r = xmalloc((size_t)(n > 0 ? n : 1) * sizeof *r);
        for (int64_t j = 0; j < n; j++)
          r[j] = cw->dtype == IR_F16 ? ir_f16_to_f32(ir_f32_to_f16(src[j])) : ir_bf16_to_f32(ir_f32_to_bf16(src[j]));
        val[i] = r;
        owned[i] = 1;
      } else {
        val[i] = (float *)src;
      }
    }
    if (cw->offset >= 0 && store_weight(cw, src, n, out + cw->offset, err)) goto out;
  }
  rc = 0;
out:
  for (int i = 0; i < p->n_weights; i++)
    if (owned[i]) free(val[i]);
  free(val);
  free(owned);
  free(read);
  return rc;
}
