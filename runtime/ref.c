/*
 * ref.c - the reference executor: runs an IrGraph on the CPU in fp32.
 *
 * ref_prepare() fixes the batch, evaluates every shape, checks that each op
 * and dtype is supported, and plans storage: leaves point at their data
 * (PARAM: the bound weights, CONST: node->data, INPUT: the caller's tensor at
 * run time), RESHAPE aliases its input, and every other node gets a slot from
 * a free list, taken when the node runs and handed back after its last use
 * (graph outputs are never handed back).  Slots are allocated once, so
 * repeated ref_run() calls allocate nothing but the outputs.  Weight-only
 * nodes (ir_weight_only: stacked weights, folded layouts) get storage of
 * their own and are computed once, by ref_prepare().
 *
 * The executor keeps pointers into the graph, the weights and (during a
 * run) the inputs: the graph must not change between ref_prepare() and
 * ref_free().
 *
 * Storage is 4 bytes an element: f32 values, or int32 for i32 nodes; i8
 * nodes (quantize's int8 levels) hold the levels as f32 whole numbers.  f16 and
 * bf16 nodes hold f32 values rounded to that precision after every op, which
 * is what a half-precision backend computes up to its accumulation order.
 *
 * run_node() dispatches each op: elementwise ops, reductions, layout ops and
 * casts to ir/eval.c (the host evaluation constant folding and the code
 * generator's computed weights share, whose elementwise values are
 * ir/scalar.h's, as the generated kernels' are), the rest to this
 * executor's kernels (ref_internal.h: rows, contractions, mixture of
 * experts).  One thread pool does all the work: OpenMP, with OpenBLAS set to
 * one thread (ref_contract.c says why).
 */
#include "runtime/ref.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/ref_internal.h"

typedef struct {
  RefShape s;
  void *ptr;      /* the node's data at run time (resolved in ref_run for inputs/aliases) */
  int slot;       /* planned slot, or -1 (leaf or alias) */
  int alias;      /* position of the node whose storage this one shares, or -1 */
  int last_use;   /* position of the last node reading this storage (roots only), -1 if none */
  int keep;       /* storage holds a graph output: never reused */
  int fixed;      /* depends on weights and constants only: computed once by ref_prepare */
  float *owned;   /* PARAM rounded to f16/bf16: our own copy */
} RefVal;

struct RefExec {
  IrGraph *g;
  int64_t batch;
  int n;             /* nodes */
  RefVal *v;         /* by position in g->nodes */
  int *pos_of_id;    /* node id -> position */
  IrNode **inputs;
  int n_inputs;
  void **slots;
  size_t *slot_cap;  /* bytes */
  int n_slots;
  float *scratch;    /* im2col columns */
  size_t scratch_n;  /* floats */
  RefObserveFn observe; /* after every node a run computes (calibration), or NULL */
  void *observe_ctx;
};

/* ======================================================================== */
/* helpers                                                                  */
/* ======================================================================== */

static int pos_of(const RefExec *e, const IrNode *n) { return e->pos_of_id[n->id]; }
static RefVal *val_of(RefExec *e, const IrNode *n) { return &e->v[pos_of(e, n)]; }
static RefVal *in_val(RefExec *e, const IrNode *n, int i) { return val_of(e, n->in[i]); }

static int is_floaty(IrDType t) { return t == IR_F32 || t == IR_F16 || t == IR_BF16; }

static const char *node_label(const IrNode *n) { return n->name ? n->name : ""; }

/* "node %12 (linear 'blocks.0.attn.qkv')" style prefix for messages. */
static int node_errf(IrErr *err, const IrNode *n, const char *msg) {
  if (n->name)
    return ir_errf(err, "node %%%d (%s '%s'): %s", n->id, ir_op_name(n->op), n->name, msg);
  return ir_errf(err, "node %%%d (%s): %s", n->id, ir_op_name(n->op), msg);
}

static void shp_str(IrDType t, const int64_t *d, int rank, char *buf, size_t n) {
  size_t o = (size_t)snprintf(buf, n, "%s[", ir_dtype_name(t));
  for (int i = 0; i < rank && o < n; i++)
    o += (size_t)snprintf(buf + o, n - o, i ? ", %lld" : "%lld", (long long)d[i]);
  if (o < n) snprintf(buf + o, n - o, "]");
}

/* Node nd's value (position p) as a host array, for ir/eval.c. */
static IrArray array_at(RefExec *e, const IrNode *nd) {
  RefVal *v = val_of(e, nd);
  IrArray a = {.dtype = nd->dtype, .rank = v->s.rank, .data = v->ptr};
  memcpy(a.d, v->s.d, sizeof a.d);
  return a;
}

/* Row-major strides of an input broadcast against an output of rank `rank`
 * (numpy rules, aligned on the right): 0 where the input has size 1 or no axis. */
/* ======================================================================== */
/* prepare                                                                  */
/* ======================================================================== */

/* Checks an op's inputs and attributes at the concrete batch; fills the
 * scratch need.  Shape inference already ran when the node was built, so
 * failures here mean a graph the executor cannot run, reported, not asserted. */
static int check_node(RefExec *e, const IrNode *nd, IrErr *err) {
  RefVal *v = val_of(e, nd);
  for (int i = 0; i < nd->n_in; i++) {
    IrDType t = nd->in[i]->dtype;
    int int_ok = nd->op == IR_CAST || nd->op == IR_RESHAPE || nd->op == IR_PERMUTE ||
                 nd->op == IR_SLICE || nd->op == IR_CONCAT || (nd->op == IR_EMBEDDING && i == 1) ||
                 (i == 1 && (nd->op == IR_MOE_GATHER || nd->op == IR_MOE_LINEAR || nd->op == IR_MOE_COMBINE ||
                              nd->op == IR_MOE_QLINEAR || nd->op == IR_MOE_QLINEAR_E4M3));
    int quant = nd->op == IR_DEQUANTIZE || nd->op == IR_QLINEAR || nd->op == IR_MOE_QLINEAR; /* i8 operands (ops.def) */
    int fp8 = nd->op == IR_QLINEAR_E4M3 || nd->op == IR_MOE_QLINEAR_E4M3;                  /* e4m3 operands */
    if (!is_floaty(t) && !(t == IR_I32 && int_ok) && !(t == IR_I8 && quant) && !(t == IR_E4M3 && fp8)) {
      char m[160];
      snprintf(m, sizeof m, "input %d has dtype %s, which the reference executor does not run", i,
               ir_dtype_name(t));
      return node_errf(err, nd, m);
    }
  }
  if (!is_floaty(nd->dtype) && nd->dtype != IR_I32 && !(nd->dtype == IR_I8 && nd->op == IR_QUANTIZE) &&
      !(nd->dtype == IR_E4M3 && nd->op == IR_QUANTIZE_E4M3))
    return node_errf(err, nd, "output dtype not supported by the reference executor");
  const RefShape *x = nd->n_in > 0 ? &in_val(e, nd, 0)->s : NULL;
  switch (nd->op) {
  case IR_INPUT: case IR_PARAM: case IR_CONST:
    return 0;
  case IR_LAYERNORM: case IR_SOFTMAX: case IR_TOPK_SOFTMAX:
    if (x->rank < 1) return node_errf(err, nd, "needs rank >= 1");
    if (nd->op == IR_TOPK_SOFTMAX && (nd->attr.k < 1 || nd->attr.k > x->d[x->rank - 1]))
      return node_errf(err, nd, "k out of range for the last axis");
    return 0;
  case IR_REDUCE_SUM: case IR_REDUCE_MEAN: {
    int a = nd->attr.axis < 0 ? nd->attr.axis + x->rank : nd->attr.axis;
    if (a < 0 || a > x->rank) return node_errf(err, nd, "axis out of range");
    return 0;
  }
  case IR_LINEAR:
    if (nd->n_in < 2 || nd->n_in > 3 || in_val(e, nd, 1)->s.rank != 2 || !x || x->rank < 1)
      return node_errf(err, nd, "expects x[..., K], w[N, K][, b[N]]");
    return 0;
  case IR_MATMUL:
    if (x->rank < 2 || in_val(e, nd, 1)->s.rank < 2)
      return node_errf(err, nd, "operands need rank >= 2");
    return 0;
  case IR_CONV2D: {
    const RefShape *w = nd->n_in >= 2 ? &in_val(e, nd, 1)->s : NULL;
    if (!w || nd->n_in > 3 || x->rank != 4 || w->rank != 4 || v->s.rank != 4)
      return node_errf(err, nd, "expects x[N, C, H, W], w[O, C/groups, kh, kw][, b[O]]");
    RefConv c = ref_conv_dims(&nd->attr, x, w, &v->s);
    if (c.c % c.groups || c.o % c.groups || w->d[1] != c.c / c.groups)
      return node_errf(err, nd, "channels do not divide into groups");
    size_t need = ref_conv_scratch(&c);
    if (need > e->scratch_n) e->scratch_n = need;
    return 0;
  }
  case IR_EMBEDDING:
    if (nd->in[1]->dtype != IR_I32 || in_val(e, nd, 0)->s.rank != 2)
      return node_errf(err, nd, "expects table[V, D] and i32 indices");
    return 0;
  case IR_RESHAPE:
    if (v->s.numel != x->numel)
      return node_errf(err, nd, "element count differs at this batch");
    return 0;
  case IR_SLICE: {
    int a = nd->attr.axis;
    int64_t st = ir_dim_eval(nd->attr.start, e->batch), len = ir_dim_eval(nd->attr.len, e->batch);
    if (a < 0 || a >= x->rank || st < 0 || len < 0 || st + len > x->d[a])
      return node_errf(err, nd, "slice out of bounds at this batch");
    return 0;
  }
  case IR_CONCAT:
    if (nd->attr.axis < 0 || nd->attr.axis >= v->s.rank) return node_errf(err, nd, "bad axis");
    return 0;
  case IR_PERMUTE:
  case IR_MOE_ROUTE: case IR_MOE_GATHER: case IR_MOE_LINEAR: case IR_MOE_COMBINE: /* ir/shape.c checked them */
  case IR_MOE_QLINEAR: case IR_MOE_QLINEAR_E4M3:
  case IR_QSCALE: case IR_QUANTIZE: case IR_DEQUANTIZE: case IR_QLINEAR:
  case IR_QUANTIZE_E4M3: case IR_QLINEAR_E4M3:
    return 0;
  case IR_IM2COL:
    if (x->rank != 4 || v->s.rank != 3) return node_errf(err, nd, "expects NCHW input");
    return 0;
  case IR_AVGPOOL2D:
    if (x->rank != 4 || nd->attr.out_h <= 0 || nd->attr.out_w <= 0)
      return node_errf(err, nd, "expects NCHW input and a positive output size");
    return 0;
  default:
    if (ir_op_class(nd->op) == IR_CLASS_UNARY || ir_op_class(nd->op) == IR_CLASS_BINARY) return 0;
    return node_errf(err, nd, "op not supported by the reference executor");
  }
}

static int root_of(const RefExec *e, int p) {
  while (e->v[p].alias >= 0) p = e->v[p].alias;
  return p;
}

/* Storage plan: walk the nodes in order, give each computed node a free slot
 * (best fit, else a new one), and return slots after their last reader. */
static void plan_slots(RefExec *e) {
  int n = e->n, *free_list = xmalloc((size_t)(n + 1) * sizeof *free_list), n_free = 0;
  size_t cap_slots = 16;
  e->slot_cap = xmalloc(cap_slots * sizeof *e->slot_cap);
  for (int i = 0; i < n; i++) {
    IrNode *nd = e->g->nodes[i];
    RefVal *v = &e->v[i];
    if (v->fixed && ir_op_class(nd->op) != IR_CLASS_LEAF && v->alias < 0) {
      v->owned = xmalloc((size_t)(v->s.numel > 0 ? v->s.numel : 1) * 4);
      v->ptr = v->owned;
    } else if (ir_op_class(nd->op) != IR_CLASS_LEAF && v->alias < 0) {
      size_t need = (size_t)(v->s.numel > 0 ? v->s.numel : 1) * 4;
      int best = -1;
      for (int k = 0; k < n_free; k++) {
        size_t c = e->slot_cap[free_list[k]];
        if (c >= need && (best < 0 || c < e->slot_cap[free_list[best]])) best = k;
      }
      if (best >= 0) {
        v->slot = free_list[best];
        free_list[best] = free_list[--n_free];
      } else {
        if ((size_t)e->n_slots == cap_slots) {
          cap_slots *= 2;
          e->slot_cap = xrealloc(e->slot_cap, cap_slots * sizeof *e->slot_cap);
        }
        e->slot_cap[e->n_slots] = need;
        v->slot = e->n_slots++;
      }
    }
    /* this node's inputs and, if nobody reads it, the node itself */
    for (int k = -1; k < nd->n_in; k++) {
      int r = root_of(e, k < 0 ? i : pos_of(e, nd->in[k]));
      RefVal *rv = &e->v[r];
      int done = rv->last_use == i || (k < 0 && rv->last_use < 0 && r == i);
      if (!done || rv->keep || rv->slot < 0) continue;
      int dup = 0;
      for (int q = 0; q < n_free; q++) dup |= free_list[q] == rv->slot;
      if (!dup) free_list[n_free++] = rv->slot;
    }
  }
  free(free_list);
  e->slots = xcalloc((size_t)(e->n_slots ? e->n_slots : 1), sizeof *e->slots);
  for (int k = 0; k < e->n_slots; k++) e->slots[k] = xmalloc(e->slot_cap[k]);
  for (int i = 0; i < n; i++)
    if (e->v[i].slot >= 0) e->v[i].ptr = e->slots[e->v[i].slot];
}

static int run_node(RefExec *e, int i, IrErr *err);

RefExec *ref_prepare(IrGraph *g, const Weights *w, int64_t batch, IrErr *err) {
  if (batch < 1) {
    ir_errf(err, "batch must be >= 1, got %lld", (long long)batch);
    return NULL;
  }
  openblas_set_num_threads(1); /* OpenMP splits the products (see the top of the file) */
  RefExec *e = xcalloc(1, sizeof *e);
  e->g = g;
  e->batch = batch;
  e->n = g->n_nodes;
  e->v = xcalloc((size_t)(e->n ? e->n : 1), sizeof *e->v);
  e->pos_of_id = xmalloc((size_t)(g->next_id > 0 ? g->next_id : 1) * sizeof *e->pos_of_id);
  for (int i = 0; i < g->next_id; i++) e->pos_of_id[i] = -1;
  for (int i = 0; i < e->n; i++) {
    IrNode *nd = g->nodes[i];
    DITC_ASSERT(nd->id >= 0 && nd->id < g->next_id);
    e->pos_of_id[nd->id] = i;
  }
  e->n_inputs = ir_graph_inputs(g, &e->inputs);

  for (int i = 0; i < e->n; i++) {
    IrNode *nd = g->nodes[i];
    RefVal *v = &e->v[i];
    v->slot = v->alias = v->last_use = -1;
    v->s.rank = nd->shape.rank;
    v->s.numel = 1;
    for (int j = 0; j < nd->shape.rank; j++) {
      v->s.d[j] = ir_dim_eval(nd->shape.d[j], batch);
      v->s.numel *= v->s.d[j];
    }
    for (int k = 0; k < nd->n_in; k++)
      if (pos_of(e, nd->in[k]) < 0 || pos_of(e, nd->in[k]) >= i) {
        node_errf(err, nd, "input is not an earlier node of the graph (graph not sorted?)");
        goto fail;
      }
    if (check_node(e, nd, err)) goto fail;
    if (nd->op == IR_PARAM) {
      const float *d = w ? weights_get(w, nd) : NULL;
      if (!d) {
        ir_errf(err, "param '%s': no weights bound", node_label(nd));
        goto fail;
      }
      v->ptr = (void *)d;
      if (nd->dtype == IR_F16 || nd->dtype == IR_BF16) { /* hold the values at that precision */
        v->owned = xmalloc((size_t)(v->s.numel ? v->s.numel : 1) * 4);
        memcpy(v->owned, d, (size_t)v->s.numel * 4);
        ir_round_to(nd->dtype, v->owned, v->s.numel);
        v->ptr = v->owned;
      }
    } else if (nd->op == IR_CONST) {
      if (!nd->data || (nd->dtype != IR_F32 && nd->dtype != IR_I32)) {
        node_errf(err, nd, "constant without f32/i32 data");
        goto fail;
      }
      v->ptr = nd->data;
    } else if (nd->op == IR_INPUT) {
      if (nd->dtype != IR_F32 && nd->dtype != IR_I32) {
        ir_errf(err, "input '%s': dtype %s not supported by the reference executor (use f32 or i32)",
                node_label(nd), ir_dtype_name(nd->dtype));
        goto fail;
      }
    } else if (nd->op == IR_RESHAPE) {
      v->alias = pos_of(e, nd->in[0]);
    }
    for (int k = 0; k < nd->n_in; k++) e->v[root_of(e, pos_of(e, nd->in[k]))].last_use = i;
  }
  unsigned char *fixed = ir_weight_only(g); /* the loop above checked the order it needs */
  for (int i = 0; i < e->n; i++) e->v[i].fixed = fixed[i];
  free(fixed);
  for (int k = 0; k < g->n_outputs; k++) e->v[root_of(e, pos_of(e, g->outputs[k]))].keep = 1;
  plan_slots(e);
  if (e->scratch_n) e->scratch = xmalloc(e->scratch_n * sizeof *e->scratch);
  /* Weight-only values (stacked weights, folded layouts) once, here. */
  for (int i = 0; i < e->n; i++)
    if (e->v[i].fixed && ir_op_class(g->nodes[i]->op) != IR_CLASS_LEAF && run_node(e, i, err)) goto fail;
  return e;
fail:
  ref_free(e);
  return NULL;
}

void ref_free(RefExec *e) {
  if (!e) return;
  for (int k = 0; k < e->n_slots; k++) free(e->slots[k]);
  for (int i = 0; i < e->n; i++) free(e->v[i].owned);
  free(e->slots);
  free(e->slot_cap);
  free(e->scratch);
  free(e->v);
  free(e->pos_of_id);
  free(e);
}

/* ======================================================================== */
/* run                                                                      */
/* ======================================================================== */

static int run_node(RefExec *e, int i, IrErr *err) {
  IrNode *nd = e->g->nodes[i];
  RefVal *v = &e->v[i];
  float *y = v->ptr;
  RefVal *x = nd->n_in > 0 ? in_val(e, nd, 0) : NULL;
  const float *xp = x ? x->ptr : NULL;
  IrErr kerr = {{0}};
  switch (nd->op) {
  case IR_INPUT: case IR_PARAM: case IR_CONST:
    return 0;
  case IR_RESHAPE:
    v->ptr = x->ptr;
    return 0;
  case IR_CAST: case IR_PERMUTE: case IR_SLICE: case IR_CONCAT: {
    /* 4-byte moves (i32 included) and casts, which round themselves */
    IrArray out = array_at(e, nd), *in = xmalloc((size_t)nd->n_in * sizeof *in);
    for (int k = 0; k < nd->n_in; k++) in[k] = array_at(e, nd->in[k]);
    int rc = ir_eval_layout(nd->op, &nd->attr, e->batch, &out, nd->n_in, in, &kerr);
    free(in);
    return rc ? node_errf(err, nd, kerr.msg) : 0;
  }
  case IR_ADD: case IR_SUB: case IR_MUL: case IR_DIV: case IR_MAX: {
    IrArray out = array_at(e, nd), a = array_at(e, nd->in[0]), b = array_at(e, nd->in[1]);
    ir_eval_binary(nd->op, &out, &a, &b);
    break;
  }
  case IR_LAYERNORM: case IR_SOFTMAX: case IR_TOPK_SOFTMAX: {
    int64_t n = x->s.d[x->s.rank - 1], rows = n ? x->s.numel / n : 0;
    if (nd->op == IR_LAYERNORM) ref_layernorm(y, xp, rows, n, nd->attr.f);
    else if (nd->op == IR_SOFTMAX) ref_softmax(y, xp, rows, n);
    else ref_topk_softmax(y, xp, rows, n, nd->attr.k);
    break;
  }
  case IR_REDUCE_SUM: case IR_REDUCE_MEAN: {
    IrArray out = array_at(e, nd), in = array_at(e, nd->in[0]);
    ir_eval_reduce(nd->op, nd->attr.axis, &out, &in);
    break;
  }
  case IR_LINEAR: {
    RefVal *w = in_val(e, nd, 1);
    int64_t K = w->s.d[1], N = w->s.d[0], M = K ? x->s.numel / K : v->s.numel / (N ? N : 1);
    ref_linear(y, xp, w->ptr, nd->n_in > 2 ? in_val(e, nd, 2)->ptr : NULL, M, N, K);
    break;
  }
  case IR_MATMUL: {
    RefVal *b = in_val(e, nd, 1);
    ref_matmul(nd->attr.trans_b, y, &v->s, xp, &x->s, b->ptr, &b->s);
    break;
  }
  case IR_CONV2D: {
    RefVal *w = in_val(e, nd, 1);
    RefConv c = ref_conv_dims(&nd->attr, &x->s, &w->s, &v->s);
    ref_conv2d(&c, y, xp, w->ptr, nd->n_in > 2 ? in_val(e, nd, 2)->ptr : NULL, e->scratch);
    break;
  }
  case IR_EMBEDDING: {
    RefVal *ix = in_val(e, nd, 1);
    if (ref_embedding(y, xp, &x->s, ix->ptr, ix->s.numel, &kerr)) return node_errf(err, nd, kerr.msg);
    break;
  }
  case IR_AVGPOOL2D:
    ref_avgpool(y, &v->s, xp, &x->s);
    break;
  case IR_QSCALE: case IR_QUANTIZE: case IR_DEQUANTIZE: case IR_QLINEAR:
  case IR_QUANTIZE_E4M3: case IR_QLINEAR_E4M3: {
    /* i8 values are held as f32 whole numbers, e4m3 ones decoded (ir.h's IrArray) */
    IrArray out = array_at(e, nd), *in = xmalloc((size_t)nd->n_in * sizeof *in);
    for (int k = 0; k < nd->n_in; k++) in[k] = array_at(e, nd->in[k]);
    ir_eval_quant(nd->op, &nd->attr, &out, nd->n_in, in);
    free(in);
    break;
  }
  case IR_IM2COL:
    ref_im2col(&nd->attr, y, &v->s, xp, &x->s);
    break;
  case IR_MOE_ROUTE: {
    int64_t E = x->s.d[x->s.rank - 1];
    ref_moe_route(v->ptr, v->s.numel, xp, E ? x->s.numel / E : 0, E, nd->attr.k);
    return 0;
  }
  case IR_MOE_GATHER: {
    int64_t E = ir_moe_table_experts(nd->in[1]->shape.d[0], nd->shape.d[0]);
    ref_moe_gather(y, xp, in_val(e, nd, 1)->ptr, E, v->s.d[0], v->s.d[1]);
    break;
  }
  case IR_MOE_LINEAR: {
    RefVal *w = in_val(e, nd, 2);
    ref_moe_linear(y, xp, in_val(e, nd, 1)->ptr, w->ptr, nd->n_in > 3 ? in_val(e, nd, 3)->ptr : NULL, w->s.d[0],
                   w->s.d[1], w->s.d[2]);
    break;
  }
  case IR_MOE_QLINEAR:
  case IR_MOE_QLINEAR_E4M3: { /* levels held as floats (ir.h's IrArray) */
    RefVal *w = in_val(e, nd, 3);
    ref_moe_qlinear(y, xp, in_val(e, nd, 1)->ptr, in_val(e, nd, 2)->ptr, w->ptr, in_val(e, nd, 4)->ptr,
                    nd->n_in > 5 ? in_val(e, nd, 5)->ptr : NULL, w->s.d[0], w->s.d[1], w->s.d[2],
                    nd->op == IR_MOE_QLINEAR_E4M3);
    break;
  }
  case IR_MOE_COMBINE: {
    RefVal *gt = in_val(e, nd, 2);
    int64_t E = gt->s.d[gt->s.rank - 1], T = E ? gt->s.numel / E : 0;
    ref_moe_combine(y, xp, in_val(e, nd, 1)->ptr, gt->ptr, T, E, T ? (int)(x->s.d[0] / T) : 0, x->s.d[1]);
    break;
  }
  default:
    if (ir_op_class(nd->op) != IR_CLASS_UNARY) ditc_unreachable(); /* check_node let it in */
    ir_eval_unary(nd->op, nd->attr.f, y, xp, v->s.numel);
    break;
  }
  ir_round_to(nd->dtype, y, v->s.numel);
  return 0;
}

static int check_input(const IrNode *nd, const RtTensor *t, int64_t batch, IrErr *err) {
  int64_t want[IR_MAX_RANK];
  int ok = t->dtype == nd->dtype && t->rank == nd->shape.rank && t->data;
  for (int j = 0; j < nd->shape.rank; j++) {
    want[j] = ir_dim_eval(nd->shape.d[j], batch);
    if (ok && t->shape[j] != want[j]) ok = 0;
  }
  if (ok) return 0;
  char a[256], b[256];
  shp_str(nd->dtype, want, nd->shape.rank, a, sizeof a);
  if (t->rank < 0 || t->rank > IR_MAX_RANK)
    snprintf(b, sizeof b, "a tensor of rank %d", t->rank);
  else if (!t->data)
    snprintf(b, sizeof b, "a tensor without data");
  else
    shp_str(t->dtype, t->shape, t->rank, b, sizeof b);
  return ir_errf(err, "input '%s': expected %s, got %s", node_label(nd), a, b);
}

int ref_run(RefExec *e, const RtTensor *inputs, RtTensor *outputs, IrErr *err) {
  IrGraph *g = e->g;
  for (int k = 0; k < e->n_inputs; k++) {
    if (check_input(e->inputs[k], &inputs[k], e->batch, err)) return -1;
    val_of(e, e->inputs[k])->ptr = inputs[k].data;
  }
  for (int i = 0; i < e->n; i++) {
    if (e->v[i].fixed) continue;
    if (run_node(e, i, err)) return -1;
    if (e->observe) e->observe(e->observe_ctx, e, g->nodes[i]);
  }
  for (int k = 0; k < g->n_outputs; k++) {
    IrNode *nd = g->outputs[k];
    RefVal *v = val_of(e, nd);
    outputs[k] = rt_tensor_new(nd->dtype, v->s.rank, v->s.d);
    if (nd->dtype == IR_F16 || nd->dtype == IR_BF16) {
      const float *s = v->ptr;
      uint16_t *d = outputs[k].data;
      for (int64_t j = 0; j < v->s.numel; j++)
        d[j] = nd->dtype == IR_F16 ? ir_f32_to_f16(s[j]) : ir_f32_to_bf16(s[j]);
    } else if (v->s.numel) {
      memcpy(outputs[k].data, v->ptr, (size_t)v->s.numel * 4);
    }
  }
  return 0;
}

/* The first of node i's n values that is NaN or infinite, or -1. */
static int64_t first_nonfinite(const RefExec *e, int i) {
  const IrNode *nd = e->g->nodes[i];
  const float *y = e->v[i].ptr;
  if (!is_floaty(nd->dtype) || !y) return -1;
  for (int64_t j = 0; j < e->v[i].s.numel; j++)
    if (!isfinite(y[j])) return j;
  return -1;
}

int ref_locate_nonfinite(RefExec *e, const RtTensor *inputs, char *where, size_t n, IrErr *err) {
  for (int k = 0; k < e->n_inputs; k++) {
    if (check_input(e->inputs[k], &inputs[k], e->batch, err)) return -1;
    val_of(e, e->inputs[k])->ptr = inputs[k].data;
  }
  for (int i = 0; i < e->n; i++) {
    if (!e->v[i].fixed && run_node(e, i, err)) return -1;
    int64_t j = first_nonfinite(e, i);
    if (j < 0) continue;
    const IrNode *nd = e->g->nodes[i];
    char at[96] = "";
    if (nd->loc.file) snprintf(at, sizeof at, " at %s:%d", nd->loc.file, nd->loc.line);
    snprintf(where, n, "node %%%d (%s%s%s%s%s), value %g at flat index %lld", nd->id, ir_op_name(nd->op),
             nd->name ? " '" : "", nd->name ? nd->name : "", nd->name ? "'" : "", at,
             (double)((const float *)e->v[i].ptr)[j], (long long)j);
    return 1;
  }
  return 0;
}

void ref_set_observer(RefExec *e, RefObserveFn fn, void *ctx) {
  e->observe = fn;
  e->observe_ctx = ctx;
}

const float *ref_value(RefExec *e, const IrNode *n, int64_t *numel) {
  RefVal *v = val_of(e, n);
  *numel = v->s.numel;
  return n->dtype == IR_I32 ? NULL : v->ptr;
}

int64_t ref_batch_of(IrGraph *g, const RtTensor *inputs, IrErr *err) {
  int64_t B = -1;
  const char *who = NULL;
  /* the INPUT nodes in graph order, as ir_graph_inputs() lists them, without
   * taking arena memory on every call */
  for (int i = 0, k = 0; i < g->n_nodes; i++) {
    const IrNode *nd = g->nodes[i];
    if (nd->op != IR_INPUT) continue;
    k++;
    const RtTensor *in = &inputs[k - 1];
    if (in->rank != nd->shape.rank) {
      ir_errf(err, "input '%s': expected rank %d, got %d", node_label(nd), nd->shape.rank,
              in->rank);
      return -1;
    }
    for (int j = 0; j < nd->shape.rank; j++) {
      IrDim d = nd->shape.d[j];
      if (!ir_dim_is_sym(d)) continue;
      int64_t got = in->shape[j], m = -d;
      char ds[32];
      if (got < m || got % m) {
        ir_errf(err, "input '%s': dim %d is %lld, not a positive multiple of %lld (declared %s)",
                node_label(nd), j, (long long)got, (long long)m, ir_dim_str(d, ds, sizeof ds));
        return -1;
      }
      if (B >= 0 && got / m != B) {
        ir_errf(err, "input '%s': dim %d implies batch %lld, but input '%s' implies %lld",
                node_label(nd), j, (long long)(got / m), who, (long long)B);
        return -1;
      }
      B = got / m;
      who = node_label(nd);
    }
  }
  return B < 0 ? 1 : B;
}
