/*
 * emit.c - the last step of lowering: the planned steps become the plan's
 * source text (one kernel per kernel step, from the templates of kernels.c,
 * attention.c and moe.c), its CgSteps (launches and GEMMs) and the bytes each
 * step moves.  Also the emission helpers every template uses
 * (cg_kernel_open, cg_launch, cg_gemm).
 */
#include <stdlib.h>
#include <string.h>

#include "codegen/lower.h"

/* ---- one kernel per shape ----
 * A kernel's text, from its DITC_KERNEL line on with its own name left out,
 * decides which kernel it is: when it equals an earlier kernel's (they
 * differ at most in the offsets their steps pass as parameters), its text is
 * dropped and its launches become launches of the earlier one. */

/* The text of kernel k (just emitted, src from e->kstart on) without its name: malloc'd. */
static char *kernel_key(const CgEmit *e, int k) {
  const char *body = strstr(e->src.s + e->kstart, "DITC_KERNEL");
  DITC_ASSERT(body);
  const char *name = e->kernels[k].name, *at = strstr(body, name);
  DITC_ASSERT(at);
  size_t pre = (size_t)(at - body), nl = strlen(name), rest = strlen(at + nl);
  char *key = xmalloc(pre + rest + 2);
  memcpy(key, body, pre);
  key[pre] = '@';
  memcpy(key + pre + 1, at + nl, rest + 1);
  return key;
}

/* Close the kernel opened last: keep its text, or find it is an earlier one. */
static void kernel_close(CgEmit *e) {
  if (!e->n_kernels || e->closed) return;
  e->closed = 1;
  int k = e->n_kernels - 1;
  char *key = kernel_key(e, k);
  for (int j = 0; j < k; j++)
    if (e->canon[j] == j && !strcmp(e->keys[j], key)) {
      e->canon[k] = j;
      e->src.len = e->kstart;
      e->src.s[e->src.len] = 0;
      free(key);
      return;
    }
  e->keys[k] = key;
}

int cg_param(CgEmit *e, int64_t value) {
  DITC_ASSERT(e->n_params < CG_MAX_PARAMS);
  e->params[e->n_params] = value;
  if (e->n_params + 1 > e->max_params) e->max_params = e->n_params + 1;
  return e->n_params++;
}

void cg_step_args(const CgStep *st, DitcArgs *a) {
  memset(a->o, 0, sizeof a->o);
  for (int i = 0; i < st->n_params && i < CG_MAX_PARAMS; i++) a->o[i] = (long long)st->params[i];
}

int cg_kernel_open(CgEmit *e, const IrNode *n, const char *op, const char *detail,
                   const char **name) {
  kernel_close(e);
  if (e->n_kernels == e->cap_kernels) {
    e->cap_kernels = e->cap_kernels ? 2 * e->cap_kernels : 64;
    e->kernels = xrealloc(e->kernels, (size_t)e->cap_kernels * sizeof *e->kernels);
    e->canon = xrealloc(e->canon, (size_t)e->cap_kernels * sizeof *e->canon);
    e->keys = xrealloc(e->keys, (size_t)e->cap_kernels * sizeof *e->keys);
  }
  int k = e->n_kernels++;
  e->canon[k] = k;
  e->keys[k] = NULL;
  e->closed = 0;
  e->n_params = 0;
  e->kstart = e->src.len;
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
  DITC_ASSERT(k == e->n_kernels - 1 && !e->closed); /* a launch follows its kernel's text */
  s->n_params = e->n_params;
  int64_t *pv = arena_alloc(&e->plan->arena, (size_t)(e->n_params + 1) * sizeof *pv);
  memcpy(pv, e->params, (size_t)e->n_params * sizeof *pv);
  s->params = pv;
}

void cg_gemm(CgEmit *e, const IrNode *n, const CgGemm *g) {
  CgStep *s = new_cgstep(e, n);
  s->kind = CG_STEP_GEMM;
  s->gemm = *g;
}

static CgRef ref_of(CgLoc l) { return (CgRef){.space = l.space, .offset = l.offset}; }


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

/* qlinear l's int8 product as an IMMA GEMM step (plan.h): xq [m, k] rows by
 * wq [n, k] rows into the int32 sums at acc; qlinear_e4m3's as an FP8 GEMM
 * step into f32 sums.  Returns m (0: nothing to do). */
static int64_t emit_imma(Ctx *c, CgEmit *e, const IrNode *n, const IrNode *l, CgLoc xq, CgLoc wq, CgLoc acc) {
  int64_t kk = ir_dim_eval(l->in[0]->shape.d[l->in[0]->shape.rank - 1], c->batch), nn = l->in[2]->shape.d[0];
  int64_t m = kk ? node_numel(c, l->in[0]) / kk : 0;
  if (m == 0 || nn == 0) return 0;
  int fp8 = l->op == IR_QLINEAR_E4M3; /* FP8: e4m3 operands, f32 sums (COMPUTE_32F) */
  CgGemm g = {.dtype = fp8 ? IR_E4M3 : IR_I8, .d_dtype = fp8 ? IR_F32 : IR_I32, .trans_b = 1, .m = m, .n = nn, .k = kk, .batch = 1, .lda = kk,
              .ldb = kk, .ldd = nn, .stride_a = m * kk, .stride_d = m * nn, .a = ref_of(xq), .b = ref_of(wq),
              .d = ref_of(acc), .epilogue = CG_EPI_NONE, .alpha = 1.0f};
  cg_gemm(e, n, &g);
  return m;
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
      if (ni->deq) { /* q, k and v views of a qkv qlinear's int32 sums: scaled and biased on load */
        v[i].deq = 1;
        v[i].deq_e4m3 = nv->base->op == IR_QLINEAR_E4M3;
        v[i].deq_sx = buf_loc(c, st->reads[3]);
        v[i].deq_sw = buf_loc(c, st->reads[4]);
        v[i].deq_bias = st->n_reads > 5;
        if (v[i].deq_bias) v[i].deq_b = buf_loc(c, st->reads[5]);
        v[i].deq_n = nv->base->in[2]->shape.d[0];
      }
    }
    return cg_emit_attention(e, n, ni->fused, ov, v[0], v[1], v[2], ni->scale, NULL);
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
    if (ni->deq) { /* the deferred qlinear's scales and bias follow the leaves */
      CgView *v = &pin[ni->deq - 1];
      int k = ni->n_pleaves + ni->n_leaves - 1;
      v->deq = 1;
      v->deq_e4m3 = ni->pview[ni->deq - 1].base->op == IR_QLINEAR_E4M3;
      v->deq_sx = buf_loc(c, st->reads[k]);
      v->deq_sw = buf_loc(c, st->reads[k + 1]);
      v->deq_bias = st->n_reads > k + 2;
      if (v->deq_bias) v->deq_b = buf_loc(c, st->reads[k + 2]);
    }
    int64_t len = ov.shape[ov.rank - 1];
    CgNorm s = {.rows = node_numel(c, n) / len, .len = len, .eps = ni->ln->attr.f, .n_pin = ni->n_pleaves,
                .pin = pin, .pexpr = ni->pexpr, .has_side = ni->side != NULL, .n_ein = ni->n_leaves, .ein = ein,
                .eexpr = ni->expr, .out = ov, .detail = ni->fused};
    if (ni->side) s.side = node_view(c, ni->side, buf_loc(c, st->write2));
    if (ni->e4m3) { /* the e4m3 levels at the scale read last */
      s.e4m3 = 1;
      s.e4m3_scale = buf_loc(c, st->reads[st->n_reads - 1]);
    }
    if (ni->quant) {
      s.quant = 1;
      s.scales = buf_loc(c, st->write3);
      s.qmax = ni->qscale->attr.f;
    }
    return cg_emit_norm(e, n, &s);
  }
  if (ni->how == LOW_QGEMM) { /* the int32 sums only: the layernorm reading them scales them */
    emit_imma(c, e, n, n, buf_loc(c, st->reads[0]), buf_loc(c, st->reads[1]), out);
    return;
  }
  if (ni->how == LOW_QLINEAR_GELU && ni->quant) { /* IMMA GEMM, then dequant + bias + GELU + quantise rows */
    const IrNode *l = ni->linear;
    CgLoc in[5];
    for (int i = 0; i < l->n_in; i++) in[i] = buf_loc(c, st->reads[i]);
    CgLoc acc = buf_loc(c, st->write2);
    int64_t m = emit_imma(c, e, n, l, in[0], in[2], acc);
    if (m == 0) return;
    return cg_emit_qlinear_epilogue(e, n, out, buf_loc(c, st->write3), acc, in, l->n_in == 5, m, l->in[2]->shape.d[0],
                                    ni->qscale->attr.f);
  }
  if (ni->how == LOW_GNORM) {
    int64_t xs[IR_MAX_RANK], numel = node_numel(c, ni->gn_x);
    node_shape(c, ni->gn_x, xs);
    int64_t rows = node_numel(c, ni->ln) / ir_dim_eval(ni->ln->shape.d[ni->ln->shape.rank - 1], c->batch);
    int64_t groups = ni->ln->shape.d[1], r = 0;
    CgGroupNorm s = {.out = out, .x = buf_loc(c, st->reads[r++]), .rows = rows, .len = numel / rows,
                     .groups = groups, .cpg = xs[1] / groups, .hw = numel / (xs[0] * xs[1]), .eps = ni->ln->attr.f,
                     .has_w = ni->gn_w != NULL, .has_b = ni->gn_b != NULL, .detail = ni->fused};
    if (s.has_w) s.w = buf_loc(c, st->reads[r++]);
    if (s.has_b) s.b = buf_loc(c, st->reads[r++]);
    if (ni->gn_act) s.act = cg_elementwise_expr(ni->gn_act, buf, sizeof buf);
    return cg_emit_group_norm(e, n, &s);
  }
  if (ni->how == LOW_E4M3_GELU) { /* FP8 GEMM, then scales + bias + GELU + e4m3 levels */
    const IrNode *l = ni->linear;
    CgLoc in[6];
    for (int i = 0; i <= l->n_in; i++) in[i] = buf_loc(c, st->reads[i]);
    CgLoc acc = buf_loc(c, st->write2);
    int64_t m = emit_imma(c, e, n, l, in[0], in[2], acc);
    if (m == 0) return;
    return cg_emit_e4m3_epilogue(e, n, out, acc, in, l->n_in == 5, in[l->n_in], m, l->in[2]->shape.d[0]);
  }
  if (ni->how == LOW_QLINEAR_GELU || (ni->how == LOW_KERNEL && n->op == IR_QLINEAR)) {
    const IrNode *l = ni->how == LOW_QLINEAR_GELU ? ni->linear : n;
    CgLoc in[5];
    for (int i = 0; i < l->n_in; i++) in[i] = buf_loc(c, st->reads[i]);
    int64_t kk = ir_dim_eval(l->in[0]->shape.d[l->in[0]->shape.rank - 1], c->batch), nn = l->in[2]->shape.d[0];
    return cg_emit_qlinear(e, n, out, in, l->n_in == 5, ni->how == LOW_QLINEAR_GELU, kk ? node_numel(c, l->in[0]) / kk : 0,
                           nn, kk);
  }
  if (ni->how == LOW_KERNEL && n->op == IR_QLINEAR_E4M3) {
    CgLoc in[5];
    for (int i = 0; i < n->n_in; i++) in[i] = buf_loc(c, st->reads[i]);
    int64_t kk = ir_dim_eval(n->in[0]->shape.d[n->in[0]->shape.rank - 1], c->batch), nn = n->in[2]->shape.d[0];
    return cg_emit_qlinear_e4m3(e, n, out, in, n->n_in == 5, kk ? node_numel(c, n->in[0]) / kk : 0, nn, kk);
  }
  if (ni->how == LOW_WLINEAR || ni->how == LOW_WLINEAR_GELU) {
    const IrNode *l = ni->how == LOW_WLINEAR_GELU ? ni->linear : n, *x = l->in[0];
    CgLoc in[4];
    for (int i = 0; i < st->n_reads && i < 4; i++) in[i] = buf_loc(c, st->reads[i]);
    int64_t kk = ir_dim_eval(x->shape.d[x->shape.rank - 1], c->batch), nn = l->in[1]->shape.d[0];
    return cg_emit_wlinear(e, n, out, in, l->n_in == 3, ni->how == LOW_WLINEAR_GELU, kk ? node_numel(c, x) / kk : 0,
                           nn, kk);
  }
  if (ni->how == LOW_WMOE) {
    CgLoc in[5];
    for (int i = 0; i < st->n_reads && i < 5; i++) in[i] = buf_loc(c, st->reads[i]);
    return cg_emit_moe_w8(e, n, out, in);
  }
  if (ni->how == LOW_QROWS) {
    int64_t len = ov.shape[ov.rank - 1];
    return cg_emit_quant_rows(e, n, out, buf_loc(c, st->write2), buf_loc(c, st->reads[0]), len ? node_numel(c, n) / len : 0,
                              len, ni->side->attr.f);
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
    return cg_emit_map(e, n, ir_op_name(n->op), ov, 1, &iv, cg_elementwise_expr(n, buf, sizeof buf));
  }
  case IR_CLASS_BINARY: {
    CgView iv[2] = {broadcast_view(c, in0, x, n), broadcast_view(c, buf_loc(c, st->reads[1]), n->in[1], n)};
    return cg_emit_map(e, n, ir_op_name(n->op), ov, 2, iv, cg_elementwise_expr(n, buf, sizeof buf));
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
  case IR_MOE_QLINEAR:
  case IR_MOE_QLINEAR_E4M3:
  case IR_MOE_COMBINE: {
    CgLoc in[6];
    for (int i = 0; i < n->n_in && i < 6; i++) in[i] = buf_loc(c, st->reads[i]);
    return cg_emit_moe(e, n, out, in);
  }
  case IR_IM2COL: {
    int64_t k = n->attr.k;
    CgConvShape s = {.n = xs[0], .c = xs[1], .h = xs[2], .w = xs[3], .kh = k, .kw = k,
                     .stride = n->attr.stride ? n->attr.stride : 1, .pad = n->attr.pad, .groups = 1,
                     .up = n->attr.up ? n->attr.up : 1};
    s.oh = (s.h * s.up + 2 * s.pad - k) / s.stride + 1;
    s.ow = (s.w * s.up + 2 * s.pad - k) / s.stride + 1;
    return cg_emit_im2col(e, n, out, in0, &s);
  }
  case IR_AVGPOOL2D:
    return cg_emit_avgpool(e, n, out, in0, xs[0] * xs[1], xs[2], xs[3], n->attr.out_h, n->attr.out_w);
  case IR_QSCALE: {
    int64_t rows = 1, len = 1;
    for (int i = 0; i < xr; i++) *(i < n->attr.axis ? &rows : &len) *= xs[i];
    return cg_emit_qscale(e, n, out, in0, rows, len, n->attr.f);
  }
  case IR_QUANTIZE:
  case IR_DEQUANTIZE: {
    CgView iv[2] = {node_view(c, x, in0), broadcast_view(c, buf_loc(c, st->reads[1]), n->in[1], n)};
    return cg_emit_map(e, n, ir_op_name(n->op), ov, 2, iv,
                       n->op == IR_QUANTIZE ? "ditc_quantize_i8(v0, v1)" : "ditc_dequantize(v0, v1)");
  }
  case IR_QUANTIZE_E4M3: {
    CgView iv[2] = {node_view(c, x, in0), broadcast_view(c, buf_loc(c, st->reads[1]), n->in[1], n)};
    return cg_emit_map(e, n, ir_op_name(n->op), ov, 2, iv, "ditc_quantize_e4m3(v0, v1)");
  }
  case IR_QLINEAR:
  case IR_QLINEAR_E4M3: ditc_unreachable(); /* above */
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

static void emit_header(Ctx *c, CgEmit *e, CgText *h) {
  const CgTuning *t = e->tune;
  cg_text_printf(h,
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
  cg_text_printf(h,
                 "/* the one kernel argument: the spaces and the step's parameters (offsets in them) */\n"
                 "typedef struct {\n"
                 "  char *act;\n"
                 "  const char *w;\n"
                 "  long long o[%d];\n"
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
                 "/* a gathered embedding row: out-of-range indices clamped, status |= 1 */\n"
                 "DITC_DEVICE static inline int ditc_gather_row(int id, int rows, int *status) {\n"
                 "  if (id < 0 || id >= rows) {\n"
                 "    atomicExch(status, 1);\n"
                 "    id = id < 0 ? 0 : rows - 1;\n"
                 "  }\n"
                 "  return id;\n"
                 "}\n\n",
                 c->plan->n_params > 0 ? c->plan->n_params : 1, t->block_elementwise, t->rows_per_block, t->transpose_tile,
                 t->transpose_rows, t->block_row_thread, t->attn_warps, t->attn_rows_per_warp);
  /* the elementwise ops' one definition, shared with folding and the
   * reference executor (expr.c calls it) */
  cg_text_printf(h, "/* ---- ir/scalar.h ---- */\n%s/* ---- end of ir/scalar.h ---- */\n\n", cg_scalar_text());
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
  int wr[3] = {st->write, st->write2, st->write3}, j = 0;
  for (int k = 0; k < 3; k++)
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

/* The contractions lowered step st computes, as 2 x MACs, and their unit.
 * A GEMM step's are its own (several GEMM steps of one matmul: each its
 * product); the attention kernel's are its two products; another kernel's are
 * its node's (the cost model's), on SIMT. */
static void step_work(Ctx *c, const LStep *st, CgStep *s) {
  if (s->kind == CG_STEP_GEMM) {
    const CgGemm *g = &s->gemm;
    s->flops = 2.0 * (double)g->m * (double)g->n * (double)g->k * (double)g->batch;
    s->unit = g->dtype == IR_BF16 ? CG_UNIT_TC_BF16 : g->dtype == IR_F16 ? CG_UNIT_TC_F16
              : g->dtype == IR_I8 ? CG_UNIT_TC_INT8 : g->dtype == IR_E4M3 ? CG_UNIT_TC_FP8 : CG_UNIT_SIMT_F32;
    return;
  }
  s->flops = 0;
  s->unit = CG_UNIT_MEMORY;
  if (st->kind != LS_NODE) return;
  NodeInfo *ni = inf(c, st->node);
  if (ni->how == LOW_ATTENTION) {
    const NodeView *q = &ni->qkv[0], *k = &ni->qkv[1], *v = &ni->qkv[2];
    int nl = q->rank - 2;
    double groups = 1;
    for (int i = 0; i < nl; i++) groups *= (double)q->shape[i];
    s->flops = 2.0 * groups * (double)q->shape[nl] * (double)k->shape[nl] *
               (double)(q->shape[nl + 1] + v->shape[nl + 1]);
    s->unit = cg_attention_unit(cg_tuning_for(c->o->arch), c->o->precision);
    return;
  }
  if ((ni->how == LOW_QLINEAR_GELU && ni->quant) || ni->how == LOW_E4M3_GELU) return; /* its GEMM step's epilogue */
  double macs = ir_node_macs(ni->linear ? ni->linear : st->node, c->batch); /* a GEMM with its epilogue */
  if (macs > 0) s->flops = 2.0 * macs, s->unit = CG_UNIT_SIMT_F32;
}

/* The activation buffers lowered step st writes, on its last launch s
 * (plan.h: CgStep.out_offset). */
static void step_outputs(Ctx *c, const LStep *st, CgStep *s) {
  int wr[2] = {st->write, st->node && inf(c, st->node)->how == LOW_E4M3_GELU ? -1 : st->write2}; /* not its GEMM's sums */
  for (int k = 0; k < 2; k++) {
    const Buf *b = wr[k] >= 0 ? &c->bufs[wr[k]] : NULL;
    if (s->kind != CG_STEP_KERNEL || !b || b->space != CG_SPACE_ACT || b->offset < 0 || b->dtype == IR_I32) continue;
    s->out_offset[k] = b->offset;
    s->out_elems[k] = b->bytes / (int64_t)ir_dtype_size(b->dtype);
    s->out_dtype[k] = b->dtype;
  }
}

void lower_emit(Ctx *c) {
  CgPlan *p = c->plan;
  CgEmit e = {.plan = p, .tune = cg_tuning_for(c->o->arch), .batch = c->batch,
              .status_offset = c->status_buf >= 0 ? c->bufs[c->status_buf].offset : -1};
  p->tuning = e.tune->arch;
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
      step_work(c, st, &e.steps[k]);
    }
    step_outputs(c, st, &e.steps[e.n_steps - 1]);
  }
  kernel_close(&e);
  /* the distinct kernels, in order; every launch names its kernel's */
  int *index = xmalloc((size_t)(e.n_kernels + 1) * sizeof *index);
  p->kernels = arena_alloc(&p->arena, (size_t)(e.n_kernels + 1) * sizeof *p->kernels);
  p->n_kernels = 0;
  for (int k = 0; k < e.n_kernels; k++) {
    if (e.canon[k] == k) p->kernels[index[k] = p->n_kernels++] = e.kernels[k];
    free(e.keys[k]);
  }
  for (int s = 0; s < e.n_steps; s++)
    if (e.steps[s].kind == CG_STEP_KERNEL) e.steps[s].kernel = index[e.canon[e.steps[s].kernel]];
  free(index);
  free(e.canon);
  free(e.keys);
  p->n_params = e.max_params;
  CgText src = {0};
  emit_header(c, &e, &src);
  cg_text_printf(&src, "%s", e.src.s ? e.src.s : "");
  p->source = arena_strdup(&p->arena, src.s);
  free(src.s);
  free(e.src.s);
  p->n_steps = e.n_steps;
  p->steps = arena_alloc(&p->arena, (size_t)(e.n_steps + 1) * sizeof *p->steps);
  if (e.n_steps) memcpy(p->steps, e.steps, (size_t)e.n_steps * sizeof *p->steps);
  p->status_offset = e.status_offset;
  free(e.kernels);
  free(e.steps);
}
