/*
 * attention.c - the fused attention kernels: softmax(scale q k^T) v in one
 * pass, the N x M score matrix never leaving the block (online softmax).
 * Two kernels: a tensor-core one for f16/bf16 plans on architectures with
 * mma.sync (the tuning row's tensor_cores), and a scalar f32 one for
 * everything else (f32 plans keep it: tf32 would break their 1e-5 contract).
 *
 * Both read q, k, v and out as strided views, so the permutes that split
 * heads out of the qkv projection are read through, not materialised.  The
 * leading coordinates (batch, head, ...) come from blockIdx.y; with grouped
 * K/V heads (CgAttnGroup) q heads h0 .. h0+group-1 read K/V head h0/group of
 * k and v in place.  Shared memory is dynamic (the launch step's
 * shared_bytes).
 *
 * The scalar kernel.  A block is CG_ATTN_WARPS warps; each warp owns
 * CG_ATTN_ROWS_PER_WARP query rows, so a block covers QR = warps * rows query
 * rows of one (batch, head).  The block walks the keys in tiles of 32: the
 * tile's K and V rows are loaded into shared memory (converted to float),
 * every lane scores its own key against each of the warp's query rows (the
 * query rows sit in shared memory, pre-multiplied by the scale), the warp
 * takes the tile's max and sum with shuffles, rescales its running state (max
 * m, sum l) and adds p * V into accumulators that the lanes split along the
 * value dim (lane + 32 c).  The output is acc / l, stored through the out
 * view.  Shared memory (cg_attention_smem): QR*D + 32*(D+1) + 32*Dv + QR*32
 * floats, viewed as the four arrays; 42 KB at D = Dv = 128 with the default
 * row's QR = 16, 52 KB with QR = 32.  The K tile's rows are padded by one
 * float so the 32 lanes reading 32 different keys hit 32 banks.
 *
 * The tensor-core kernel (FlashAttention-2's loop order).  A block is
 * CG_ATTN_WARPS warps of 16 query rows each.  The head dims are padded with
 * zeros to multiples of 16 (72 -> 80); Q (the block's rows), and one tile of
 * 32 keys of K and V, sit in shared memory as f16/bf16 (the plan's
 * precision) with a row pitch of the padded dim + 8 elements (16-byte rows
 * for ldmatrix, and consecutive rows 16 bytes apart in the banks).  Each warp
 * takes its Q fragments into registers once (ldmatrix), then per key tile
 * S = Q K^T with mma.sync m16n8k16 (f32 accumulate; the four 8-key tiles of
 * S in registers, the layout codegen/emu_prelude.h's attention recipe
 * describes), scales and masks S, updates the running max and sum of each of
 * its two rows per lane (quad shuffles), rescales the output accumulators
 * and adds P V by mma.sync with P taken from S's registers as the A operand
 * and V through ldmatrix.trans.  When a view allows (unit stride along the
 * dim, the storage dtype the precision, 16-byte aligned rows) the tiles are
 * copied with cp.async; otherwise loaded and converted element by element.
 * Shared memory (cg_attention_smem_mma): 2 bytes x (16 W (Dp+8) + 32 (Dp+8)
 * + 32 (Dvp+8)); 52 KB at D = 128 with 8 warps, 35 KB with 4.
 */
#include <stdio.h>
#include <string.h>

#include "codegen/cg_internal.h"

/* The unit the attention kernel's products run on: mma.sync for f16/bf16
 * where the row has tensor cores, else the scalar kernel's FFMA. */
CgUnit cg_attention_unit(const CgTuning *t, IrDType precision) {
  if (!cg_attention_uses_mma(t, precision)) return CG_UNIT_SIMT_F32;
  return precision == IR_BF16 ? CG_UNIT_TC_BF16 : CG_UNIT_TC_F16;
}

int64_t cg_attention_smem(int rows, int64_t d, int64_t dv) {
  return (int64_t)sizeof(float) * (rows * d + 32 * (d + 1) + 32 * dv + rows * 32);
}

/* Keys per tile of the tensor-core kernel. */
#define MMA_KEYS 32

static int64_t pad16(int64_t d) { return (d + 15) / 16 * 16; }

int64_t cg_attention_smem_mma(int warps, int64_t d, int64_t dv) {
  return 2 * (16 * (int64_t)warps * (pad16(d) + 8) + MMA_KEYS * (pad16(d) + 8) + MMA_KEYS * (pad16(dv) + 8));
}

int cg_attention_uses_mma(const CgTuning *t, IrDType precision) {
  return t->tensor_cores && (precision == IR_F16 || precision == IR_BF16);
}

/* `base` + sum over the leading coords l<i> * stride[i]: an offset expression.
 * With a group, coordinate `axis` is read as l<axis> / group (grouped K/V heads). */
static void lead_offset(char *buf, size_t n, const CgView *v, int nl, const CgAttnGroup *g) {
  size_t len = (size_t)snprintf(buf, n, "%lldLL", (long long)v->offset);
  for (int i = 0; i < nl; i++) {
    if (!v->stride[i]) continue;
    if (g && g->group > 1 && i == g->axis)
      len += (size_t)snprintf(buf + len, n - len, " + (l%d / %lldLL) * %lldLL", i, (long long)g->group,
                              (long long)v->stride[i]);
    else
      len += (size_t)snprintf(buf + len, n - len, " + l%d * %lldLL", i, (long long)v->stride[i]);
  }
}

/* The pointers q, k, v, y, the leading coordinates l<i> from blockIdx.y and
 * the views' bases q_base .. y_base: what both kernels start with. */
static void emit_prologue(CgEmit *e, CgView out, const CgView *const views[4], const CgAttnGroup *g) {
  CgText *s = &e->src;
  int nl = out.rank - 2;
  static const char *const names[4] = {"q", "k", "v", "y"};
  char buf[512];
  for (int i = 0; i < 4; i++) {
    char p[128];
    cg_text_printf(s, "  %s%s *%s%s = %s;\n", i < 3 ? "const " : "", cg_ctype(views[i]->loc.dtype),
                   i < 3 ? "__restrict__ " : "", names[i], cg_ptr(e, views[i]->loc, i == 3, p));
  }
  if (views[0]->deq) { /* the qkv qlinear's scales and bias, shared by q, k and v */
    cg_decl_ptr(e, "dsx", views[0]->deq_sx, 0);
    cg_decl_ptr(e, "dsw", views[0]->deq_sw, 0);
    if (views[0]->deq_bias) cg_decl_ptr(e, "db", views[0]->deq_b, 0);
  }
  cg_text_printf(s, "  long long rest = blockIdx.y;\n");
  for (int i = nl - 1; i >= 0; i--) {
    if (i)
      cg_text_printf(s, "  long long l%d = rest %% %lld; rest /= %lld;\n", i, (long long)out.shape[i],
                     (long long)out.shape[i]);
    else
      cg_text_printf(s, "  long long l0 = rest;\n");
  }
  if (nl == 0) cg_text_printf(s, "  (void)rest;\n");
  for (int i = 0; i < 4; i++) {
    lead_offset(buf, sizeof buf, views[i], nl, i == 1 || i == 2 ? g : NULL);
    cg_text_printf(s, "  long long %s_base = %s;\n", names[i], buf);
  }
}

static const char *out_conv(IrDType t) {
  return t == IR_F16 ? "__float2half_rn" : t == IR_BF16 ? "__float2bfloat16_rn" : "";
}

/* The out view's element (row, d) of the block's leading coordinates. */
static void out_index(char *buf, size_t n, const CgView *out, int nl) {
  snprintf(buf, n, "y_base + row * %lldLL + d * %lldLL", (long long)out->stride[nl], (long long)out->stride[nl + 1]);
}

/* The launch: blocks of `rows` query rows along x, the leading coordinates along y. */
static void launch_rows(CgEmit *e, const IrNode *n, int kid, int64_t N, int64_t rows, int64_t groups, int64_t smem) {
  DITC_ASSERT(smem <= e->tune->smem_block);
  cg_launch(e, n, kid, (N + rows - 1) / rows, groups, 1, 32, e->tune->attn_warps, 1, (uint32_t)smem);
}

/* One fused attention: the views, and their dims (nl leading axes). */
typedef struct {
  CgView out, q, k, v;
  float scale;
  const CgAttnGroup *g;
  int nl;
  int64_t N, D, M, Dv, groups;
} Attn;

/* The load of view x (pointer p) at element idx: a dequantised view's int32
 * sum scaled and biased as the qlinear kernel would have stored it. */
static const char *attn_load(CgEmit *e, const CgView *x, const char *p, const char *idx, char ld[256]) {
  if (!x->deq) return cg_load(x->loc.dtype, p, idx, ld);
  /* idx counts from the view's pointer: past deq_off elements once the offset is folded into it */
  const char *el = arena_printf(&e->plan->arena, "(%s) + %lldLL", idx, (long long)(x->deq_off - x->offset));
  const char *sc = x->deq_e4m3 ? arena_printf(&e->plan->arena, "ditc_qlinear_e4m3_scale(%s[%s], dsx[0], dsw[0])", p, idx)
                   : arena_printf(&e->plan->arena, "ditc_qlinear_scale(%s[%s], dsx[(%s) / %lldLL], dsw[(%s) %% %lldLL])",
                                  p, idx, el, (long long)x->deq_n, el, (long long)x->deq_n);
  if (!x->deq_bias) return sc;
  return arena_printf(&e->plan->arena, "ditc_add(%s, db[(%s) %% %lldLL])", sc, el, (long long)x->deq_n);
}

static void emit_scalar(CgEmit *e, const IrNode *n, const char *name, int kid, const Attn *at) {
  CgView out = at->out, q = at->q, k = at->k, v = at->v;
  float scale = at->scale;
  const CgAttnGroup *g = at->g;
  int nl = at->nl;
  int64_t N = at->N, D = at->D, M = at->M, Dv = at->Dv, groups = at->groups;
  int dc = (int)((Dv + 31) / 32);
  const CgTuning *t = e->tune;
  int qr = t->attn_warps * t->attn_rows_per_warp;
  char f[48], ld[256];
  CgText *s = &e->src;
  cg_text_printf(s, "DITC_KERNEL_BOUNDS(%s, DitcArgs, a, 32 * CG_ATTN_WARPS) {\n", name);
  /* one dynamic buffer, viewed as qs[QR][D], ks[32][D+1], vs[32][Dv], ps[QR*32] */
  long long ks_at = (long long)qr * D, vs_at = ks_at + 32 * (D + 1), ps_at = vs_at + 32 * Dv;
  cg_text_printf(s,
                 "  DITC_DYN_SHARED(float, smem);\n"
                 "  float (*qs)[%lld] = (float (*)[%lld])smem;\n"
                 "  float (*ks)[%lld] = (float (*)[%lld])(smem + %lld);\n"
                 "  float (*vs)[%lld] = (float (*)[%lld])(smem + %lld);\n"
                 "  float *ps = smem + %lld;\n",
                 (long long)D, (long long)D, (long long)(D + 1), (long long)(D + 1), ks_at, (long long)Dv,
                 (long long)Dv, vs_at, ps_at);
  const CgView *views[4] = {&q, &k, &v, &out};
  emit_prologue(e, out, views, g);
  cg_text_printf(s,
                 "  int lane = threadIdx.x, warp = threadIdx.y, tid = warp * 32 + lane;\n"
                 "  long long row0 = (long long)blockIdx.x * %d;\n",
                 qr);
  /* the block's query rows, scaled */
  char idx[256];
  snprintf(idx, sizeof idx, "q_base + (row0 + r) * %lldLL + d * %lldLL", (long long)q.stride[nl],
           (long long)q.stride[nl + 1]);
  cg_text_printf(s,
                 "  for (int e = tid; e < %lld; e += 32 * CG_ATTN_WARPS) {\n"
                 "    int r = e / %lld, d = e %% %lld;\n"
                 "    qs[r][d] = row0 + r < %lld ? %s * %s : 0.0f;\n"
                 "  }\n",
                 (long long)(qr * D), (long long)D, (long long)D, (long long)N,
                 attn_load(e, &q, "q", idx, ld), cg_float_lit(scale, f));
  cg_text_printf(s,
                 "  float m[CG_ATTN_ROWS_PER_WARP], l[CG_ATTN_ROWS_PER_WARP], acc[CG_ATTN_ROWS_PER_WARP][%d];\n"
                 "  for (int r = 0; r < CG_ATTN_ROWS_PER_WARP; r++) {\n"
                 "    m[r] = -DITC_INFINITY;\n"
                 "    l[r] = 0.0f;\n"
                 "    for (int c = 0; c < %d; c++) acc[r][c] = 0.0f;\n"
                 "  }\n",
                 dc, dc);
  cg_text_printf(s, "  for (long long j0 = 0; j0 < %lld; j0 += 32) {\n", (long long)M);
  cg_text_printf(s, "    __syncthreads(); /* the previous tile is consumed */\n");
  snprintf(idx, sizeof idx, "k_base + (j0 + j) * %lldLL + d * %lldLL", (long long)k.stride[nl],
           (long long)k.stride[nl + 1]);
  cg_text_printf(s,
                 "    for (int e = tid; e < %lld; e += 32 * CG_ATTN_WARPS) {\n"
                 "      int j = e / %lld, d = e %% %lld;\n"
                 "      ks[j][d] = j0 + j < %lld ? %s : 0.0f;\n"
                 "    }\n",
                 (long long)(32 * D), (long long)D, (long long)D, (long long)M,
                 attn_load(e, &k, "k", idx, ld));
  snprintf(idx, sizeof idx, "v_base + (j0 + j) * %lldLL + d * %lldLL", (long long)v.stride[nl],
           (long long)v.stride[nl + 1]);
  cg_text_printf(s,
                 "    for (int e = tid; e < %lld; e += 32 * CG_ATTN_WARPS) {\n"
                 "      int j = e / %lld, d = e %% %lld;\n"
                 "      vs[j][d] = j0 + j < %lld ? %s : 0.0f;\n"
                 "    }\n"
                 "    __syncthreads();\n",
                 (long long)(32 * Dv), (long long)Dv, (long long)Dv, (long long)M,
                 attn_load(e, &v, "v", idx, ld));
  cg_text_printf(s,
                 "    int valid = j0 + lane < %lld;\n"
                 "    for (int r = 0; r < CG_ATTN_ROWS_PER_WARP; r++) {\n"
                 "      int qi = warp * CG_ATTN_ROWS_PER_WARP + r;\n"
                 "      float score = 0.0f;\n"
                 "      for (int d = 0; d < %lld; d++) score += qs[qi][d] * ks[lane][d];\n"
                 "      score = valid ? score : -DITC_INFINITY;\n"
                 "      float m_new = fmaxf(m[r], ditc_warp_max(score));\n"
                 "      float corr = expf(m[r] - m_new); /* 0 on the first tile */\n"
                 "      float p = valid ? expf(score - m_new) : 0.0f;\n"
                 "      l[r] = l[r] * corr + ditc_warp_sum(p);\n"
                 "      m[r] = m_new;\n"
                 "      ps[qi * 32 + lane] = p;\n"
                 "      __syncwarp();\n"
                 "      for (int c = 0; c < %d; c++) {\n"
                 "        int d = lane + 32 * c;\n"
                 "        float o = acc[r][c] * corr;\n"
                 "        if (d < %lld)\n"
                 "          for (int j = 0; j < 32; j++) o += ps[qi * 32 + j] * vs[j][d];\n"
                 "        acc[r][c] = o;\n"
                 "      }\n"
                 "    }\n"
                 "  }\n",
                 (long long)M, (long long)D, dc, (long long)Dv);
  char st_idx[256];
  out_index(st_idx, sizeof st_idx, &out, nl);
  cg_text_printf(s,
                 "  for (int r = 0; r < CG_ATTN_ROWS_PER_WARP; r++) {\n"
                 "    long long row = row0 + warp * CG_ATTN_ROWS_PER_WARP + r;\n"
                 "    if (row >= %lld) continue;\n"
                 "    for (int c = 0; c < %d; c++) {\n"
                 "      int d = lane + 32 * c;\n"
                 "      if (d < %lld) y[%s] = %s(acc[r][c] / l[r]);\n"
                 "    }\n"
                 "  }\n"
                 "}\n\n",
                 (long long)N, dc, (long long)Dv, st_idx, out_conv(out.loc.dtype));
  launch_rows(e, n, kid, N, qr, groups, cg_attention_smem(qr, D, Dv));
}

/* Can view x's rows be copied 16 bytes at a time into a tile of the
 * precision: unit stride along the dim, stored in the precision, and every
 * row start (base offset, row and leading strides) 16-byte aligned. */
static int async_ok(const CgView *x, int nl, int64_t dim, IrDType prec) {
  if (x->loc.dtype != prec || x->stride[nl + 1] != 1 || dim % 8 || x->loc.offset % 16 || x->offset % 8 ||
      x->stride[nl] % 8)
    return 0;
  for (int i = 0; i < nl; i++)
    if (x->stride[i] % 8) return 0;
  return 1;
}

/* Statements filling tile `dst` (pitch `pitch` elements) with `rows` rows of
 * view `x` (pointer `p`, base `p_base`) from row `r0` on, `dim` of its `pdim`
 * padded columns; rows at or past `limit` and the padding are zero.  Uses
 * cp.async (committed, not waited for) when `async`. */
static void emit_tile_load(CgText *s, const char *ind, const char *dst, int64_t pitch, const char *p,
                           const CgView *x, int nl, const char *r0, int64_t rows, int64_t dim, int64_t pdim,
                           int64_t limit, int async, const char *bits) {
  if (async) {
    /* 8 elements a copy; the padding columns (dim .. pdim) are zeroed apart */
    cg_text_printf(s,
                   "%sfor (int e = tid; e < %lld; e += 32 * CG_ATTN_WARPS) {\n"
                   "%s  int r = e / %lld, c = e %% %lld * 8;\n"
                   "%s  int ok = %s + r < %lldLL;\n"
                   "%s  const %s *src = %s + %s_base + (ok ? (%s + r) * %lldLL + c : 0);\n"
                   "%s  ditc_cp_async_16_zfill(&%s[r * %lld + c], src, ok ? 16 : 0);\n"
                   "%s}\n",
                   ind, (long long)(rows * dim / 8), ind, (long long)(dim / 8), (long long)(dim / 8), ind, r0,
                   (long long)limit, ind, cg_ctype(x->loc.dtype), p, p, r0, (long long)x->stride[nl], ind, dst,
                   (long long)pitch, ind);
    if (pdim > dim)
      cg_text_printf(s,
                     "%sfor (int e = tid; e < %lld; e += 32 * CG_ATTN_WARPS)\n"
                     "%s  %s[e / %lld * %lld + %lld + e %% %lld] = 0;\n",
                     ind, (long long)(rows * (pdim - dim)), ind, dst, (long long)(pdim - dim), (long long)pitch,
                     (long long)dim, (long long)(pdim - dim));
    cg_text_printf(s, "%sditc_cp_async_commit();\n", ind);
    return;
  }
  char idx[256], ld[256];
  snprintf(idx, sizeof idx, "%s_base + (%s + r) * %lldLL + c * %lldLL", p, r0, (long long)x->stride[nl],
           (long long)x->stride[nl + 1]);
  cg_text_printf(s,
                 "%sfor (int e = tid; e < %lld; e += 32 * CG_ATTN_WARPS) {\n"
                 "%s  int r = e / %lld, c = e %% %lld;\n"
                 "%s  %s[r * %lld + c] = %s + r < %lldLL && c < %lld ? %s%s)) : 0;\n"
                 "%s}\n",
                 ind, (long long)(rows * pdim), ind, (long long)pdim, (long long)pdim, ind, dst, (long long)pitch,
                 r0, (long long)limit, (long long)dim, bits, cg_load(x->loc.dtype, p, idx, ld), ind);
}

static void emit_mma(CgEmit *e, const IrNode *n, const char *name, int kid, const Attn *at) {
  CgView out = at->out, q = at->q, k = at->k, v = at->v;
  int nl = at->nl;
  int64_t N = at->N, D = at->D, M = at->M, Dv = at->Dv, groups = at->groups;
  const CgTuning *t = e->tune;
  IrDType prec = e->plan->precision;
  int bf = prec == IR_BF16;
  const char *mma = bf ? "ditc_mma_bf16_16816" : "ditc_mma_f16_16816";
  const char *pack = bf ? "ditc_pack_bf16x2" : "ditc_pack_f16x2";
  /* a float's bits in the precision: "<bits><float>))" */
  const char *bits = bf ? "__bfloat16_as_ushort(__float2bfloat16_rn(" : "__half_as_ushort(__float2half_rn(";
  int64_t Dp = pad16(D), Dvp = pad16(Dv), ldk = Dp + 8, ldv = Dvp + 8;
  int64_t qr = 16 * (int64_t)t->attn_warps;
  int aq = async_ok(&q, nl, D, prec), ak = async_ok(&k, nl, D, prec), av = async_ok(&v, nl, Dv, prec);
  CgText *s = &e->src;
  long long ks_at = (long long)(qr * ldk), vs_at = ks_at + MMA_KEYS * ldk;
  cg_text_printf(s, "DITC_KERNEL_BOUNDS(%s, DitcArgs, a, 32 * CG_ATTN_WARPS) {\n", name);
  cg_text_printf(s,
                 "  /* Q [%lld][%lld], K [%d][%lld], V [%d][%lld] as %s bits (pitch = padded dim + 8) */\n"
                 "  DITC_DYN_SHARED(unsigned short, smem);\n"
                 "  unsigned short *qs = smem, *ks = smem + %lld, *vs = smem + %lld;\n",
                 (long long)qr, (long long)ldk, MMA_KEYS, (long long)ldk, MMA_KEYS, (long long)ldv,
                 bf ? "bf16" : "f16", ks_at, vs_at);
  const CgView *views[4] = {&q, &k, &v, &out};
  emit_prologue(e, out, views, at->g);
  cg_text_printf(s,
                 "  int lane = threadIdx.x, warp = threadIdx.y, tid = warp * 32 + lane;\n"
                 "  long long row0 = (long long)blockIdx.x * %lld;\n",
                 (long long)qr);
  emit_tile_load(s, "  ", "qs", ldk, "q", &q, nl, "row0", qr, D, Dp, N, aq, bits);
  if (aq) cg_text_printf(s, "  ditc_cp_async_wait_all();\n");
  cg_text_printf(s, "  __syncthreads();\n");
  /* the warp's Q fragments, then the running state of its lane's two rows */
  cg_text_printf(s,
                 "  unsigned qa[%lld][4];\n"
                 "#pragma unroll\n"
                 "  for (int kk = 0; kk < %lld; kk++)\n"
                 "    ditc_ldmatrix_x4(qa[kk], &qs[(warp * 16 + (lane & 15)) * %lld + kk * 16 + 8 * (lane >> 4)]);\n"
                 "  float o[%lld][4];\n"
                 "#pragma unroll\n"
                 "  for (int c = 0; c < %lld; c++) o[c][0] = o[c][1] = o[c][2] = o[c][3] = 0.0f;\n"
                 "  float rm0 = -DITC_INFINITY, rm1 = -DITC_INFINITY, rs0 = 0.0f, rs1 = 0.0f;\n",
                 (long long)(Dp / 16), (long long)(Dp / 16), (long long)ldk, (long long)(Dvp / 8),
                 (long long)(Dvp / 8));
  char f[48];
  cg_text_printf(s, "  for (long long j0 = 0; j0 < %lldLL; j0 += %d) {\n", (long long)M, MMA_KEYS);
  cg_text_printf(s, "    __syncthreads(); /* the previous tile is consumed */\n");
  emit_tile_load(s, "    ", "ks", ldk, "k", &k, nl, "j0", MMA_KEYS, D, Dp, M, ak, bits);
  emit_tile_load(s, "    ", "vs", ldv, "v", &v, nl, "j0", MMA_KEYS, Dv, Dvp, M, av, bits);
  if (ak || av) cg_text_printf(s, "    ditc_cp_async_wait_all();\n");
  cg_text_printf(s, "    __syncthreads();\n");
  /* S = Q K^T: four 8-key tiles */
  cg_text_printf(s,
                 "    float sc[%d][4];\n"
                 "#pragma unroll\n"
                 "    for (int t = 0; t < %d; t++) sc[t][0] = sc[t][1] = sc[t][2] = sc[t][3] = 0.0f;\n"
                 "#pragma unroll\n"
                 "    for (int kk = 0; kk < %lld; kk++) {\n"
                 "#pragma unroll\n"
                 "      for (int n0 = 0; n0 < %d; n0 += 16) {\n"
                 "        unsigned b[4];\n"
                 "        ditc_ldmatrix_x4(b, &ks[(n0 + (lane & 7) + 8 * (lane >> 4)) * %lld + kk * 16 + 8 * ((lane >> 3) & 1)]);\n"
                 "        %s(sc[n0 / 8], qa[kk], b, sc[n0 / 8]);\n"
                 "        %s(sc[n0 / 8 + 1], qa[kk], b + 2, sc[n0 / 8 + 1]);\n"
                 "      }\n"
                 "    }\n",
                 MMA_KEYS / 8, MMA_KEYS / 8, (long long)(Dp / 16), MMA_KEYS, (long long)ldk, mma, mma);
  /* scale, mask the keys past M, the rows' tile max (a row's scores are in a quad) */
  cg_text_printf(s,
                 "    float x0 = -DITC_INFINITY, x1 = -DITC_INFINITY;\n"
                 "#pragma unroll\n"
                 "    for (int t = 0; t < %d; t++)\n"
                 "#pragma unroll\n"
                 "      for (int i = 0; i < 4; i++) {\n"
                 "        long long j = j0 + t * 8 + 2 * (lane & 3) + (i & 1);\n"
                 "        float sv = j < %lldLL ? sc[t][i] * %s : -DITC_INFINITY;\n"
                 "        sc[t][i] = sv;\n"
                 "        if (i < 2) x0 = fmaxf(x0, sv); else x1 = fmaxf(x1, sv);\n"
                 "      }\n"
                 "    DITC_XOR_REDUCE(x0, fmaxf, 4);\n"
                 "    DITC_XOR_REDUCE(x1, fmaxf, 4);\n"
                 "    float n0m = fmaxf(rm0, x0), n1m = fmaxf(rm1, x1);\n"
                 "    float c0 = expf(rm0 - n0m), c1 = expf(rm1 - n1m); /* 0 on the first tile */\n"
                 "    rm0 = n0m, rm1 = n1m;\n"
                 "    float r0 = 0.0f, r1 = 0.0f;\n"
                 "#pragma unroll\n"
                 "    for (int t = 0; t < %d; t++)\n"
                 "#pragma unroll\n"
                 "      for (int i = 0; i < 4; i++) {\n"
                 "        float pv = expf(sc[t][i] - (i < 2 ? rm0 : rm1));\n"
                 "        sc[t][i] = pv;\n"
                 "        if (i < 2) r0 += pv; else r1 += pv;\n"
                 "      }\n"
                 "    DITC_XOR_REDUCE(r0, ditc_fadd, 4);\n"
                 "    DITC_XOR_REDUCE(r1, ditc_fadd, 4);\n"
                 "    rs0 = rs0 * c0 + r0, rs1 = rs1 * c1 + r1;\n"
                 "#pragma unroll\n"
                 "    for (int c = 0; c < %lld; c++) o[c][0] *= c0, o[c][1] *= c0, o[c][2] *= c1, o[c][3] *= c1;\n",
                 MMA_KEYS / 8, (long long)M, cg_float_lit(at->scale, f), MMA_KEYS / 8, (long long)(Dvp / 8));
  /* O += P V: P's registers are the A operand of 16 keys at a time */
  cg_text_printf(s,
                 "#pragma unroll\n"
                 "    for (int kc = 0; kc < %d; kc++) {\n"
                 "      unsigned pa[4];\n"
                 "      pa[0] = %s(sc[2 * kc][0], sc[2 * kc][1]);\n"
                 "      pa[1] = %s(sc[2 * kc][2], sc[2 * kc][3]);\n"
                 "      pa[2] = %s(sc[2 * kc + 1][0], sc[2 * kc + 1][1]);\n"
                 "      pa[3] = %s(sc[2 * kc + 1][2], sc[2 * kc + 1][3]);\n"
                 "#pragma unroll\n"
                 "      for (int dd = 0; dd < %lld; dd++) {\n"
                 "        unsigned b[4];\n"
                 "        ditc_ldmatrix_x4_trans(b, &vs[(kc * 16 + (lane & 15)) * %lld + dd * 16 + 8 * (lane >> 4)]);\n"
                 "        %s(o[2 * dd], pa, b, o[2 * dd]);\n"
                 "        %s(o[2 * dd + 1], pa, b + 2, o[2 * dd + 1]);\n"
                 "      }\n"
                 "    }\n"
                 "  }\n",
                 MMA_KEYS / 16, pack, pack, pack, pack, (long long)(Dvp / 16), (long long)ldv, mma, mma);
  /* O / l through the out view: lane holds rows lane/4 and +8, columns 2(lane%4) and +1 of each 8 */
  char st_idx[256];
  out_index(st_idx, sizeof st_idx, &out, nl);
  cg_text_printf(s,
                 "  float i0 = 1.0f / rs0, i1 = 1.0f / rs1;\n"
                 "#pragma unroll\n"
                 "  for (int c = 0; c < %lld; c++)\n"
                 "#pragma unroll\n"
                 "    for (int i = 0; i < 4; i++) {\n"
                 "      long long row = row0 + warp * 16 + (lane >> 2) + 8 * (i >> 1);\n"
                 "      int d = c * 8 + 2 * (lane & 3) + (i & 1);\n"
                 "      if (row < %lldLL && d < %lld) y[%s] = %s(o[c][i] * (i < 2 ? i0 : i1));\n"
                 "    }\n"
                 "}\n\n",
                 (long long)(Dvp / 8), (long long)N, (long long)Dv, st_idx, out_conv(out.loc.dtype));
  launch_rows(e, n, kid, N, qr, groups, cg_attention_smem_mma(t->attn_warps, D, Dv));
}

void cg_emit_attention(CgEmit *e, const IrNode *n, const char *fused, CgView out, CgView q, CgView k,
                       CgView v, float scale, const CgAttnGroup *g) {
  int nl = out.rank - 2;
  int64_t N = q.shape[nl], D = q.shape[nl + 1], M = k.shape[nl], Dv = v.shape[nl + 1];
  int64_t groups = 1;
  for (int i = 0; i < nl; i++) groups *= out.shape[i];
  Attn at = {out, q, k, v, scale, g, nl, N, D, M, Dv, groups};
  DITC_ASSERT(D >= CG_ATTN_MIN_DIM && D <= CG_ATTN_MAX_DIM && Dv >= 1 && Dv <= CG_ATTN_MAX_DIM);
  DITC_ASSERT(groups <= 65535);
  q.deq_off = q.offset, k.deq_off = k.offset, v.deq_off = v.offset;
  at.q.deq_off = q.offset, at.k.deq_off = k.offset, at.v.deq_off = v.offset;
  cg_view_fold(&out), cg_view_fold(&q), cg_view_fold(&k), cg_view_fold(&v);
  DITC_ASSERT(!g || g->group < 2 || (g->axis >= 0 && g->axis < nl && out.shape[g->axis] % g->group == 0));
  int tc = cg_attention_uses_mma(e->tune, e->plan->precision);
  DITC_ASSERT(!tc || (!q.deq && !k.deq && !v.deq)); /* lower.c defers qkv to the scalar kernel only */
  char detail[512];
  snprintf(detail, sizeof detail, "%s\n * head dim %lld, %lld queries x %lld keys, online softmax%s",
           fused ? fused : "fused attention", (long long)D, (long long)N, (long long)M,
           tc ? ", mma.sync tensor cores" : "");
  if (g && g->group > 1)
    snprintf(detail + strlen(detail), sizeof detail - strlen(detail), ", %lld query heads per K/V head",
             (long long)g->group);
  const char *name;
  int kid = cg_kernel_open(e, n, "attention", detail, &name);
  if (tc)
    emit_mma(e, n, name, kid, &at);
  else
    emit_scalar(e, n, name, kid, &at);
}
