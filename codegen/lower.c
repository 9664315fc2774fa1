/*
 * lower.c - lower an IR graph into an execution plan (plan.h).
 *
 * Seven steps, each a function below:
 *   decide   how each node is lowered on its own: a kernel, a GEMM step, an
 *            alias (reshape shares its input's storage), a leaf (inputs in
 *            the arena, PARAM/CONST in the weights blob) or a computed weight
 *            (a concat/slice/permute/cast of weights only, e.g. hoist-adaln's
 *            stacked adaLN weights, or a weight's int8 levels and scales,
 *            quantize and qscale: a constant of the plan, computed into the
 *            blob by cg_plan_fill_weights, never a step);
 *   groups   the fuse pass's groups (IrNode.fuse, ir/groups.def), each by its
 *            kind and roles, absorbing its members into the anchor's
 *            lowering: attention as one fused kernel reading q/k/v through
 *            the permutes and slices that split the heads (attention.c); a
 *            GEMM epilogue as the GEMM's bias + tanh-GELU; norm groups as one
 *            fused layernorm and map/concat groups as expression trees
 *            (fuse_lower.c).  Only records that ir_group_check() accepts are
 *            read, and a group the kernels' limits refuse (a head dimension
 *            above CG_ATTN_MAX_DIM, a row above CG_NORM_MAX_LEN, a tree over
 *            CG_MAP_MAX_IN leaves) keeps its per-node lowering;
 *   need     which nodes must be materialised: walk back from the outputs
 *            through what each lowering actually reads (so the head-split
 *            permutes a fused attention reads through cost nothing);
 *   storage  each value's storage dtype (the precision policy below);
 *   steps    the ordered list of lowered steps with the buffers they read
 *            and write, adding dtype conversions where a GEMM operand is not
 *            stored in the GEMM's dtype, and copies so that every graph
 *            output has its own buffer in its IR dtype;
 *   place    weights into the blob, those some step reads (a parameter read
 *            only by computed weights is not stored); activation buffers into
 *            the arena by the memory planner (memplan.c);
 *   emit     the source text (kernels.c, attention.c) and the CgSteps (emit.c).
 * Views through layout nodes are in views.c, the weights blob in weights.c.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/lower.h"

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

static int node_err(IrErr *err, const IrNode *n, const char *msg) {
  if (n->loc.file)
    return ir_errf(err, "%s:%d:%d: %%%d %s: %s", n->loc.file, n->loc.line, n->loc.col, n->id,
                   ir_op_name(n->op), msg);
  return ir_errf(err, "%%%d %s%s%s: %s", n->id, ir_op_name(n->op), n->name ? " " : "",
                 n->name ? n->name : "", msg);
}

/* ======================================================================== */
/* decide                                                                   */
/* ======================================================================== */

/* The node a chain of reshapes (aliases) stores its value in. */
static IrNode *alias_root(Ctx *c, IrNode *n) {
  while (inf(c, n)->how == LOW_ALIAS) n = n->in[0];
  return n;
}

/* A weight-only node the blob can hold (CgWeight.op): a layout op, cast or
 * reduce_mean over float weights (PARAM, CONST or themselves computed), e.g.
 * the stacked adaLN weights hoist-adaln makes, kv-heads' averaged K/V rows.
 * Other weight-only nodes stay steps. */
static int computed_weight(Ctx *c, const IrNode *n) {
  int quant = n->op == IR_QSCALE || n->op == IR_QUANTIZE || n->op == IR_QUANTIZE_E4M3; /* a quantised weight, its scales */
  if (n->op != IR_CONCAT && n->op != IR_SLICE && n->op != IR_PERMUTE && n->op != IR_CAST && n->op != IR_REDUCE_MEAN &&
      !quant)
    return 0;
  if (!ir_dtype_is_float(n->dtype) && !quant) return 0;
  for (int i = 0; i < n->n_in; i++) {
    IrNode *x = alias_root(c, n->in[i]);
    if (inf(c, x)->how != LOW_WEIGHT || !ir_dtype_is_float(x->dtype)) return 0;
  }
  return 1;
}

/* w8's linear(x, dequantize(wq, sw)[, b]) over int8 weights in the blob
 * (passes/quantize.c): the mixed-input kernel reads wq and sw directly, so
 * the dequantised weight is never made. */
static int wlinear(Ctx *c, const IrNode *n) {
  const IrNode *d = n->in[1];
  if (n->dtype != IR_F32 || n->in[0]->dtype != IR_F32 || d->op != IR_DEQUANTIZE || d->shape.rank != 2) return 0;
  const IrNode *q = d->in[0], *s = d->in[1];
  if (q->dtype != IR_I8 || s->dtype != IR_F32 || inf(c, q)->how != LOW_WEIGHT || inf(c, s)->how != LOW_WEIGHT) return 0;
  if (s->shape.rank != 2 || s->shape.d[0] != d->shape.d[0] || s->shape.d[1] != 1) return 0; /* one scale a row */
  return n->n_in < 3 || n->in[2]->dtype == IR_F32;
}

/* w8's moe_linear(xs, table, dequantize(wq, sw)[, b]) over the experts' int8
 * weights in the blob: the grouped GEMM reads wq and sw directly (moe.c). */
static int wmoe(Ctx *c, const IrNode *n) {
  const IrNode *d = n->in[2];
  if (n->dtype != IR_F32 || n->in[0]->dtype != IR_F32 || d->op != IR_DEQUANTIZE || d->shape.rank != 3) return 0;
  const IrNode *q = d->in[0], *s = d->in[1];
  if (q->dtype != IR_I8 || s->dtype != IR_F32 || inf(c, q)->how != LOW_WEIGHT || inf(c, s)->how != LOW_WEIGHT) return 0;
  if (s->shape.rank != 3 || s->shape.d[0] != d->shape.d[0] || s->shape.d[1] != d->shape.d[1] || s->shape.d[2] != 1)
    return 0; /* one scale an expert's row */
  return n->n_in < 4 || n->in[3]->dtype == IR_F32;
}

/* What a LOW_WMOE moe_linear reads: xs, table, wq, sw[, b]. */
static int wmoe_reads(const IrNode *n, IrNode **out) {
  out[0] = n->in[0];
  out[1] = n->in[1];
  out[2] = n->in[2]->in[0];
  out[3] = n->in[2]->in[1];
  if (n->n_in > 3) out[4] = n->in[3];
  return n->n_in > 3 ? 5 : 4;
}

/* A qlinear cuBLASLt's IMMA matmul can run (plan.h, CgGemm: n and k
 * multiples of 4; the arena and blob offsets are 256-byte aligned), its
 * scales per row and per output column, all operands f32 but the levels. */
static int arch_below(const char *arch, int sm);
static int imma_ok(Ctx *c, const IrNode *l) {
  const IrNode *x = l->in[0], *w = l->in[2];
  int64_t k = ir_dim_eval(x->shape.d[x->shape.rank - 1], c->batch);
  if (l->op == IR_QLINEAR_E4M3) { /* cuBLASLt's FP8 matmul: n and k multiples of 16, sm_89 and later */
    if (w->shape.rank != 2 || k % 16 || w->shape.d[0] % 16 || x->dtype != IR_E4M3 || w->dtype != IR_E4M3 ||
        arch_below(c->o->arch, 89))
      return 0;
  } else if (w->shape.rank != 2 || k % 4 || w->shape.d[0] % 4 || x->dtype != IR_I8 || w->dtype != IR_I8)
    return 0;
  if (l->in[1]->dtype != IR_F32 || l->in[3]->dtype != IR_F32 || (l->n_in == 5 && l->in[4]->dtype != IR_F32)) return 0;
  return 1;
}

/* 1 when arch names an architecture ("sm_86", "sm_90a") below sm_<sm>; NULL
 * (arch-independent emulation) is not below any. */
static int arch_below(const char *arch, int sm) {
  int v;
  return arch && sscanf(arch, "sm_%d", &v) == 1 && v < sm;
}

/* What a LOW_WLINEAR linear reads: x, wq, sw[, b]. */
static int wlinear_reads(const IrNode *l, IrNode **out) {
  out[0] = l->in[0];
  out[1] = l->in[1]->in[0];
  out[2] = l->in[1]->in[1];
  if (l->n_in > 2) out[3] = l->in[2];
  return l->n_in > 2 ? 4 : 3;
}

static int decide(Ctx *c, IrErr *err) {
  for (int i = 0; i < c->g->n_nodes; i++) {
    IrNode *n = c->g->nodes[i];
    NodeInfo *ni = inf(c, n);
    ni->buf = -1;
    if (n->op == IR_LINEAR && n->in[1]->dtype == IR_I8)
      return node_err(err, n, "a linear over an i8 weight is not supported by the code generator (dequantize it)");
    switch (n->op) {
    case IR_INPUT: ni->how = LOW_INPUT; break;
    case IR_PARAM:
    case IR_CONST: ni->how = LOW_WEIGHT; break;
    case IR_RESHAPE: ni->how = LOW_ALIAS; break;
    case IR_LINEAR: ni->how = wlinear(c, n) ? LOW_WLINEAR : LOW_GEMM; break;
    case IR_MATMUL: ni->how = LOW_GEMM; break;
    case IR_MOE_LINEAR: ni->how = wmoe(c, n) ? LOW_WMOE : LOW_KERNEL; break;
    default: ni->how = computed_weight(c, n) ? LOW_WEIGHT : LOW_KERNEL; break;
    }
  }
  return 0;
}

/* ======================================================================== */
/* fusion groups                                                            */
/* ======================================================================== */

/* The node's group, for the code generator: the fuse pass's record when it
 * describes the graph (ir_group_check), else none, so that a stale or wrong
 * record lowers its nodes one by one instead of being misread. */
static void check_groups(Ctx *c) {
  IrGraph *g = c->g;
  unsigned char *ok = xcalloc((size_t)g->n_nodes + 1, 1); /* by anchor index */
  for (int i = 0; i < g->n_nodes; i++) {
    IrNode *n = g->nodes[i];
    IrErr err;
    if (n->fuse && ir_group_anchor(n->fuse) == n) ok[i] = ir_group_check(g, n->fuse, c->uses, &err) == 0;
  }
  for (int i = 0; i < g->n_nodes; i++) {
    IrNode *n = g->nodes[i];
    IrNode *a = n->fuse ? ir_group_anchor(n->fuse) : NULL;
    /* an anchor outside the graph, or after its member, runs no kernel for it */
    if (a && a->index >= i && a->index < g->n_nodes && g->nodes[a->index] == a && ok[a->index])
      inf(c, n)->group = n->fuse;
  }
  free(ok);
  for (int i = 0; i < g->n_nodes; i++)
    for (int j = 0; j < g->nodes[i]->n_in; j++)
      if (grouped(c, g->nodes[i], g->nodes[i]->in[j])) c->guses[g->nodes[i]->in[j]->index]++;
}

/* An attention group as one fused kernel at its anchor (attention.c),
 * reading q, k and v through the layout nodes under them (the head split),
 * and writing through the output permute (the head merge) when there is
 * one; as separate kernels where the kernel's limits refuse it. */
static void lower_attention(Ctx *c, const IrGroup *grp) {
  IrNode *const *ro = grp->role;
  IrNode *ops[3] = {ro[IR_ROLE_ATTENTION_Q], ro[IR_ROLE_ATTENTION_K], ro[IR_ROLE_ATTENTION_V]};
  IrNode *qk = ro[IR_ROLE_ATTENTION_QK], *sc = ro[IR_ROLE_ATTENTION_SCALE], *sm = ro[IR_ROLE_ATTENTION_SOFTMAX];
  IrNode *pv = ro[IR_ROLE_ATTENTION_PV], *out = ro[IR_ROLE_ATTENTION_OUT];
  int r = pv->shape.rank;
  /* same rank everywhere keeps the leading-dim strides simple */
  for (int i = 0; i < 3; i++)
    if (ops[i]->shape.rank != r) return;
  int64_t d = ir_dim_eval(ops[0]->shape.d[r - 1], c->batch), dv = ir_dim_eval(ops[2]->shape.d[r - 1], c->batch);
  if (d < CG_ATTN_MIN_DIM || d > CG_ATTN_MAX_DIM || dv < 1 || dv > CG_ATTN_MAX_DIM) return;
  int64_t groups = 1;
  for (int i = 0; i < r - 2; i++) groups *= ir_dim_eval(pv->shape.d[i], c->batch);
  if (groups > 65535) return;
  NodeInfo *ni = inf(c, out ? out : pv);
  for (int i = 0; i < 3; i++) {
    ni->qkv[i] = lower_view(c, ops[i]);
    /* broadcast leading dims read with stride 0 */
    for (int j = 0; j < r - 2; j++)
      if (ni->qkv[i].shape[j] == 1 && ir_dim_eval(pv->shape.d[j], c->batch) != 1) ni->qkv[i].stride[j] = 0;
  }
  ni->scale = sc ? sc->attr.f : 1.0f;
  ni->how = LOW_ATTENTION;
  ni->fused = sc ? arena_printf(&c->scratch, "fused attention: %%%d matmul, %%%d scale, %%%d softmax, %%%d matmul",
                                qk->id, sc->id, sm->id, pv->id)
                 : arena_printf(&c->scratch, "fused attention: %%%d matmul, %%%d softmax, %%%d matmul", qk->id,
                                sm->id, pv->id);
  if (out) { /* the kernel writes its result straight into the permuted layout */
    ni->attn = pv;
    ni->fused = arena_printf(&c->scratch, "%s, %%%d permute", ni->fused, out->id);
    inf(c, pv)->how = LOW_ABSORBED;
  }
  inf(c, sm)->how = LOW_ABSORBED;
  inf(c, qk)->how = LOW_ABSORBED;
  if (sc) inf(c, sc)->how = LOW_ABSORBED;
}

/* quant-rows: one row kernel at the quantize, the scales its side value;
 * both must be kernels (a weight's levels and scales are computed weights). */
static void lower_quant_rows(Ctx *c, const IrGroup *grp) {
  IrNode *s = grp->role[IR_ROLE_QUANT_ROWS_SCALE], *q = grp->role[IR_ROLE_QUANT_ROWS_QUANTIZE], *x = q->in[0];
  if (inf(c, s)->how != LOW_KERNEL || inf(c, q)->how != LOW_KERNEL) return;
  /* the rows a fused layernorm makes (the modulated input of qkv and fc1),
   * read by nothing else: that kernel quantises them on its store */
  NodeInfo *xi = inf(c, x);
  if (xi->how == LOW_NORM && !xi->quant && c->uses[x->index] == 2 && q->shape.rank == x->shape.rank) {
    xi->quant = q;
    xi->qscale = s;
    xi->fused = arena_printf(&c->scratch, "%s, %%%d qscale, %%%d quantize", xi->fused, s->id, q->id);
    inf(c, q)->how = inf(c, s)->how = LOW_SIDE;
    return;
  }
  /* fc1's gelu_tanh(qlinear) feeding fc2's per-token quantisation, read by
   * nothing else: an IMMA GEMM into int32, then one kernel applies the scales,
   * bias and GELU and stores fc2's int8 rows and their scales (cuBLASLt's int8
   * path has no epilogues), in place of the qlinear kernel and quant_rows */
  if (xi->how == LOW_QLINEAR_GELU && !xi->quant && c->uses[x->index] == 2 && q->shape.rank == x->shape.rank &&
      xi->store == IR_F32 && imma_ok(c, xi->linear)) {
    xi->quant = q;
    xi->qscale = s;
    inf(c, q)->how = inf(c, s)->how = LOW_SIDE;
    return;
  }
  inf(c, q)->how = LOW_QROWS;
  inf(c, q)->side = s;
  inf(c, s)->how = LOW_SIDE;
}

/* A GEMM epilogue group as one GEMM step applying bias and epilogue on its
 * store; the GEMM has the tanh-GELU epilogue only.  Over a qlinear: its
 * kernel applies the GELU on its store. */
static void lower_gemm_epilogue(Ctx *c, const IrGroup *grp) {
  IrNode *l = grp->role[IR_ROLE_GEMM_EPILOGUE_LINEAR], *e = grp->role[IR_ROLE_GEMM_EPILOGUE_EPILOGUE];
  if (e->op != IR_GELU_TANH) return;
  if (l->op == IR_QLINEAR && inf(c, l)->how == LOW_KERNEL) {
    inf(c, e)->how = LOW_QLINEAR_GELU;
    inf(c, e)->linear = l;
    inf(c, l)->how = LOW_ABSORBED;
    return;
  }
  if (inf(c, l)->how == LOW_WLINEAR) {
    inf(c, e)->how = LOW_WLINEAR_GELU;
    inf(c, e)->linear = l;
    inf(c, l)->how = LOW_ABSORBED;
    return;
  }
  if (inf(c, l)->how != LOW_GEMM) return;
  inf(c, e)->how = LOW_LINEAR_GELU;
  inf(c, e)->linear = l;
  inf(c, l)->how = LOW_ABSORBED;
}

/* A qlinear (w8a8's proj, fc2) read only by one fused layernorm's prologue
 * leaf, in its own shape and layout (the residual x + gate * y): its int32
 * sums come from an IMMA GEMM step and the layernorm scales them and adds the
 * bias as it loads them (the qlinear kernel's exact operations, so the same
 * values), so the qlinear costs no kernel of its own.  One such leaf a
 * layernorm. */
static int only_read_by(Ctx *c, IrNode *q, IrNode *reader);
static int lowering_reads(Ctx *c, IrNode *n, IrNode **out);
static void need(Ctx *c);

static void defer_qlinears(Ctx *c) {
  need(c); /* who reads what, as lowered so far (only_read_by); computed again after */
  for (int i = 0; i < c->g->n_nodes; i++) {
    IrNode *n = c->g->nodes[i];
    NodeInfo *ni = inf(c, n);
    if (ni->how == LOW_ATTENTION) { /* qkv: q, k and v views of one qlinear's [rows, 3 dim] result */
      IrNode *q = ni->qkv[0].base;
      if ((q->op != IR_QLINEAR && q->op != IR_QLINEAR_E4M3) || ni->qkv[1].base != q || ni->qkv[2].base != q || inf(c, q)->how != LOW_KERNEL ||
          !imma_ok(c, q) || cg_attention_uses_mma(cg_tuning_for(c->o->arch), c->o->precision) || !only_read_by(c, q, n))
        continue;
      inf(c, q)->how = LOW_QGEMM;
      ni->deq = 1;
      ni->fused = arena_printf(&c->scratch, "%s, %%%d qlinear's scales", ni->fused, q->id);
      continue;
    }
    if (ni->how != LOW_NORM) continue;
    for (int j = 0; j < ni->n_pleaves && !ni->deq; j++) {
      const NodeView *v = &ni->pview[j];
      IrNode *q = v->base;
      if ((q->op != IR_QLINEAR && q->op != IR_QLINEAR_E4M3) || inf(c, q)->how != LOW_KERNEL || c->uses[q->index] != 1 ||
          !imma_ok(c, q))
        continue;
      if (v->offset || v->rank != q->shape.rank || q->shape.rank < 2 || ni->ln->shape.rank != q->shape.rank) continue;
      int64_t s[IR_MAX_RANK], stride = 1;
      node_shape(c, q, s);
      int same = 1;
      for (int d = v->rank - 1; d >= 0; d--) {
        same &= v->shape[d] == s[d] && v->stride[d] == stride && ir_dim_eval(ni->ln->shape.d[d], c->batch) == s[d];
        stride *= s[d];
      }
      if (!same) continue;
      inf(c, q)->how = LOW_QGEMM;
      ni->deq = j + 1;
      ni->fused = arena_printf(&c->scratch, "%s, %%%d qlinear's scales", ni->fused, q->id);
    }
  }
  for (int i = 0; i < c->g->n_nodes; i++) inf(c, c->g->nodes[i])->need = 0;
}

/* fp8: a quantize_e4m3 at one per-tensor scale whose input only it reads is
 * stored by that input's producer: a fused layernorm stores the e4m3 levels
 * of its results (ditc_quantize_e4m3 on its store: the quantize kernel's
 * operations, so the same bits) instead of the results; and
 * quantize_e4m3(gelu_tanh(qlinear_e4m3)), fc1 feeding fc2, becomes an FP8
 * GEMM step and one kernel applying the scales, the bias and the GELU and
 * storing the levels, in place of three kernels. */
static void lower_e4m3_producers(Ctx *c) {
  for (int i = 0; i < c->g->n_nodes; i++) {
    IrNode *q = c->g->nodes[i];
    if (q->op != IR_QUANTIZE_E4M3) continue;
    IrNode *x = q->in[0];
    const IrNode *sc = q->in[1]; /* a leaf weight, or computed before x (plan_steps: leaf_buf) */
    if (inf(c, q)->how != LOW_KERNEL || node_numel(c, sc) != 1 || sc->dtype != IR_F32 ||
        c->uses[x->index] != 1 || x->dtype != IR_F32 ||
        !(sc->op == IR_PARAM || sc->op == IR_CONST || sc->index < x->index))
      continue;
    NodeInfo *xi = inf(c, x);
    if (xi->how == LOW_NORM && !xi->quant && !xi->e4m3) {
      xi->e4m3 = q;
      xi->fused = arena_printf(&c->scratch, "%s, %%%d quantize_e4m3", xi->fused, q->id);
      inf(c, q)->how = LOW_SIDE;
      continue;
    }
    IrNode *l = x->op == IR_GELU_TANH ? x->in[0] : NULL;
    if (!l || xi->how != LOW_KERNEL || l->op != IR_QLINEAR_E4M3 || inf(c, l)->how != LOW_KERNEL ||
        c->uses[l->index] != 1 || l->dtype != IR_F32 || !imma_ok(c, l))
      continue;
    inf(c, q)->how = LOW_E4M3_GELU;
    inf(c, q)->linear = l;
    xi->how = inf(c, l)->how = LOW_ABSORBED;
  }
}

/* 1 when no needed node but `reader` reads q's stored value, directly or
 * through aliases of it (which are only views), and q is no graph output. */
static int only_read_by(Ctx *c, IrNode *q, IrNode *reader) {
  for (int i = 0; i < c->g->n_outputs; i++)
    if (alias_root(c, c->g->outputs[i]) == q) return 0;
  IrNode *rd[2 * CG_MAP_MAX_IN + 3];
  for (int i = 0; i < c->g->n_nodes; i++) {
    IrNode *m = c->g->nodes[i];
    Lowering h = inf(c, m)->how;
    if (m == reader || !inf(c, m)->need || h == LOW_ABSORBED || h == LOW_NONE || h == LOW_ALIAS || h == LOW_SIDE ||
        h == LOW_WEIGHT)
      continue;
    if (m->n_in > 2 * CG_MAP_MAX_IN) return 0;
    int k = lowering_reads(c, m, rd);
    for (int j = 0; j < k; j++)
      if (alias_root(c, rd[j]) == q) return 0;
  }
  return 1;
}

/* Every group by its kind, at its anchor; a lowering that refuses a group
 * leaves its nodes as decide() lowered them, one by one.  Elementwise trees
 * come last: they also take the elementwise parts of a norm group the fused
 * layernorm refused. */
static void lower_groups(Ctx *c) {
  for (int i = 0; i < c->g->n_nodes; i++) {
    IrNode *n = c->g->nodes[i];
    const IrGroup *grp = inf(c, n)->group;
    if (!grp || ir_group_anchor(grp) != n) continue;
    switch (grp->kind) {
    case IR_GROUP_ATTENTION: lower_attention(c, grp); break;
    case IR_GROUP_GEMM_EPILOGUE: lower_gemm_epilogue(c, grp); break;
    case IR_GROUP_NORM: lower_norm(c, grp); break;
    case IR_GROUP_QUANT_ROWS: lower_quant_rows(c, grp); break;
    case IR_GROUP_MAP:
    case IR_GROUP_CONCAT: break; /* lower_trees() */
    case IR_GROUP_KIND_COUNT: ditc_unreachable();
    }
  }
  lower_trees(c);
  lower_e4m3_producers(c);
  defer_qlinears(c);
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
  case LOW_QLINEAR_GELU:
    for (int i = 0; i < ni->linear->n_in; i++) out[i] = ni->linear->in[i];
    return ni->linear->n_in;
  case LOW_WLINEAR: return wlinear_reads(n, out);
  case LOW_WLINEAR_GELU: return wlinear_reads(ni->linear, out);
  case LOW_WMOE: return wmoe_reads(n, out);
  case LOW_ATTENTION:
    for (int i = 0; i < 3; i++) out[i] = ni->qkv[i].base;
    if (ni->deq) { /* the deferred qkv qlinear's sx, sw[, b] */
      const IrNode *q = ni->qkv[0].base;
      out[3] = q->in[1];
      out[4] = q->in[3];
      if (q->n_in == 5) out[5] = q->in[4];
      return q->n_in == 5 ? 6 : 5;
    }
    return 3;
  case LOW_FUSED: /* the stored nodes its leaf views read */
    for (int i = 0; i < ni->n_leaves; i++) out[i] = ni->lview[i].base;
    return ni->n_leaves;
  case LOW_NORM: { /* the prologue's leaves, then the epilogue's but the normalised value */
    int k = 0;
    for (int i = 0; i < ni->n_pleaves; i++) out[k++] = ni->pview[i].base;
    for (int i = 1; i < ni->n_leaves; i++) out[k++] = ni->lview[i].base;
    if (ni->deq) { /* the deferred qlinear's sx, sw[, b] */
      const IrNode *q = ni->pview[ni->deq - 1].base;
      out[k++] = q->in[1];
      out[k++] = q->in[3];
      if (q->n_in == 5) out[k++] = q->in[4];
    }
    if (ni->e4m3) out[k++] = ni->e4m3->in[1]; /* the levels' scale */
    return k;
  }
  case LOW_E4M3_GELU: /* xq, sx, wq, sw[, b], then the levels' scale */
    for (int i = 0; i < ni->linear->n_in; i++) out[i] = ni->linear->in[i];
    out[ni->linear->n_in] = n->in[1];
    return ni->linear->n_in + 1;
  case LOW_QGEMM: /* xq, wq; the scales are read by the layernorm */
    out[0] = n->in[0];
    out[1] = n->in[2];
    return 2;
  case LOW_GNORM: { /* x, then the weight and bias it has */
    int k = 0;
    out[k++] = ni->gn_x;
    if (ni->gn_w) out[k++] = ni->gn_w;
    if (ni->gn_b) out[k++] = ni->gn_b;
    return k;
  }
  case LOW_QROWS: /* x; the scales are its own */
    out[0] = n->in[0];
    return 1;
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
    if ((inf(c, c->g->nodes[i])->how == LOW_NORM || inf(c, c->g->nodes[i])->how == LOW_QROWS ||
         inf(c, c->g->nodes[i])->how == LOW_QLINEAR_GELU) &&
        (inf(c, c->g->nodes[i])->side || inf(c, c->g->nodes[i])->quant || inf(c, c->g->nodes[i])->e4m3))
      inf(c, c->g->nodes[i])->need = 1;
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
      else if ((ni->how == LOW_KERNEL && cg_moe_operand(n, j)) || (ni->how == LOW_WMOE && j == 0))
        t = operand_dtype(c, n); /* routed rows and stacked weights (int8 levels keep their dtype) */
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
  *s = (LStep){.kind = kind, .node = n, .n_reads = n_reads, .write = write, .write2 = -1, .write3 = -1};
  s->reads = arena_alloc(&c->scratch, (size_t)(n_reads ? n_reads : 1) * sizeof(int));
  return s;
}

static int add_weight(Ctx *c, IrNode *n);
/* The buffer of x, read by a step: a PARAM or CONST after its reader in the
 * graph's order (fp8's activation scale, read by the layernorm storing the
 * levels: lower_e4m3_producers) gets its blob buffer here. */
static int leaf_buf(Ctx *c, IrNode *x) {
  NodeInfo *xi = inf(c, x);
  if (xi->buf < 0 && xi->need && xi->how == LOW_WEIGHT && (x->op == IR_PARAM || x->op == IR_CONST))
    xi->buf = add_weight(c, x);
  return xi->buf;
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
    case LOW_WEIGHT:
      if (ni->buf < 0) ni->buf = add_weight(c, n); /* unless a step before read it (leaf_buf) */
      break;
    case LOW_ALIAS: ni->buf = inf(c, n->in[0])->buf; break;
    case LOW_SIDE: break; /* its buffer comes with its LOW_NORM / LOW_QROWS anchor's step */
    case LOW_QROWS:
    case LOW_QLINEAR_GELU:
    case LOW_E4M3_GELU:
    case LOW_WLINEAR:
    case LOW_WLINEAR_GELU:
    case LOW_WMOE:
    case LOW_KERNEL:
    case LOW_FUSED:
    case LOW_NORM:
    case LOW_GNORM:
    case LOW_ATTENTION: {
      IrNode *rd[2 * CG_MAP_MAX_IN + 3];
      IrNode **r = n->n_in > 2 * CG_MAP_MAX_IN ? xmalloc((size_t)(n->n_in + 3) * sizeof *r) : rd;
      int k = lowering_reads(c, n, r);
      if (ni->quant) /* a LOW_NORM storing its levels: its own value is never stored */
        ni->buf = inf(c, ni->quant)->buf = new_buf(c, CG_SPACE_ACT, IR_I8, node_numel(c, ni->quant));
      else if (ni->e4m3) /* its e4m3 levels, likewise */
        ni->buf = inf(c, ni->e4m3)->buf = new_buf(c, CG_SPACE_ACT, IR_E4M3, node_numel(c, ni->e4m3));
      else
        ni->buf = new_buf(c, CG_SPACE_ACT, ni->store, node_numel(c, n));
      int status = n->op == IR_EMBEDDING || ni->has_gather; /* it may set the status word */
      LStep *s = add_step(c, LS_NODE, n, k + status, ni->buf);
      for (int j = 0; j < k; j++) s->reads[j] = leaf_buf(c, r[j]);
      if (status) s->reads[k] = c->status_buf;
      if ((ni->how == LOW_NORM || ni->how == LOW_QROWS) && ni->side) {
        NodeInfo *si = inf(c, ni->side);
        s->write2 = si->buf = new_buf(c, CG_SPACE_ACT, si->store, node_numel(c, ni->side));
      }
      if (ni->quant) s->write3 = inf(c, ni->qscale)->buf = new_buf(c, CG_SPACE_ACT, IR_F32, node_numel(c, ni->qscale));
      if (ni->how == LOW_QLINEAR_GELU && ni->quant) /* the IMMA GEMM's int32 sums, read by the epilogue kernel */
        s->write2 = new_buf(c, CG_SPACE_ACT, IR_I32, node_numel(c, n));
      if (ni->how == LOW_E4M3_GELU) /* the FP8 GEMM's f32 sums, likewise */
        s->write2 = new_buf(c, CG_SPACE_ACT, IR_F32, node_numel(c, n));
      if (r != rd) free(r);
      break;
    }
    case LOW_QGEMM: { /* the GEMM's sums: int32 (IMMA) or f32 (FP8) */
      ni->buf = new_buf(c, CG_SPACE_ACT, n->op == IR_QLINEAR_E4M3 ? IR_F32 : IR_I32, node_numel(c, n));
      LStep *s = add_step(c, LS_NODE, n, 2, ni->buf);
      s->reads[0] = inf(c, n->in[0])->buf;
      s->reads[1] = inf(c, n->in[2])->buf;
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
  check_groups(&c);
  if (decide(&c, err)) goto done;
  lower_groups(&c);
  need(&c);
  storage(&c);
  if (plan_steps(&c)) goto done;
  place_weights(&c);
  p->arena_bytes = cg_memplan_place(&c, &p->arena_unplanned_bytes);
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
  lower_emit(&c);
  if (cg_plan_check(p, err)) { /* a plan the code generator makes must pass what a pack's must */
    char msg[sizeof err->msg];
    snprintf(msg, sizeof msg, "%s", err->msg);
    ir_errf(err, "codegen: internal error: the plan fails its validation: %s", msg);
    goto done;
  }
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
