/*
 * attention.c - the fused attention kernel: softmax(scale q k^T) v in one
 * pass, the N x M score matrix never leaving the block (online softmax).
 *
 * A block is CG_ATTN_WARPS warps; each warp owns CG_ATTN_ROWS_PER_WARP query
 * rows, so a block covers QR = warps * rows query rows of one (batch, head).
 * The block walks the keys in tiles of 32: the tile's K and V rows are
 * loaded into shared memory (converted to float), every lane scores its own
 * key against each of the warp's query rows (the query rows sit in shared
 * memory, pre-multiplied by the scale), the warp takes the tile's max and
 * sum with shuffles, rescales its running state (max m, sum l) and adds
 * p * V into accumulators that the lanes split along the value dim
 * (lane + 32 c).  The output is acc / l, stored through the out view.
 *
 * q, k, v and out are strided views, so the permutes that split heads out of
 * the qkv projection are read through, not materialised.  Shared memory is
 * dynamic (the launch step's shared_bytes, cg_attention_smem): QR*D +
 * 32*(D+1) + 32*Dv + QR*32 floats, viewed as the four arrays; 42 KB at
 * D = Dv = 128 with the default row's QR = 16, 52 KB with QR = 32, which
 * rows of architectures that allow more than 48 KB per block (by opt-in, as
 * the CUDA backend does) may choose.  The K tile's rows are padded by one
 * float so the 32 lanes reading 32 different keys hit 32 banks.
 */
#include <stdio.h>

#include "codegen/cg_internal.h"

/* The unit the attention kernel's products run on: this kernel is scalar
 * FFMA from shared memory in every precision. */
CgUnit cg_attention_unit(IrDType precision) {
  (void)precision;
  return CG_UNIT_SIMT_F32;
}

int64_t cg_attention_smem(int rows, int64_t d, int64_t dv) {
  return (int64_t)sizeof(float) * (rows * d + 32 * (d + 1) + 32 * dv + rows * 32);
}

/* `base` + sum over the leading coords l<i> * stride[i]: an offset expression. */
static void lead_offset(char *buf, size_t n, const CgView *v, int nl) {
  size_t len = (size_t)snprintf(buf, n, "%lldLL", (long long)v->offset);
  for (int i = 0; i < nl; i++)
    if (v->stride[i]) len += (size_t)snprintf(buf + len, n - len, " + l%d * %lldLL", i, (long long)v->stride[i]);
}

void cg_emit_attention(CgEmit *e, const IrNode *n, const char *fused, CgView out, CgView q, CgView k,
                       CgView v, float scale) {
  int nl = out.rank - 2;
  int64_t N = q.shape[nl], D = q.shape[nl + 1], M = k.shape[nl], Dv = v.shape[nl + 1];
  int64_t groups = 1;
  for (int i = 0; i < nl; i++) groups *= out.shape[i];
  int dc = (int)((Dv + 31) / 32);
  const CgTuning *t = e->tune;
  int qr = t->attn_warps * t->attn_rows_per_warp;
  DITC_ASSERT(D >= CG_ATTN_MIN_DIM && D <= CG_ATTN_MAX_DIM && Dv >= 1 && Dv <= CG_ATTN_MAX_DIM);

  char detail[512], f[48], buf[512], ld[256];
  snprintf(detail, sizeof detail, "%s\n * head dim %lld, %lld queries x %lld keys, online softmax",
           fused ? fused : "fused attention", (long long)D, (long long)N, (long long)M);
  const char *name;
  int kid = cg_kernel_open(e, n, "attention", detail, &name);
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
  const char *names[4] = {"q", "k", "v", "y"};
  const CgView *views[4] = {&q, &k, &v, &out};
  for (int i = 0; i < 4; i++) {
    char p[128];
    cg_text_printf(s, "  %s%s *%s%s = %s;\n", i < 3 ? "const " : "", cg_ctype(views[i]->loc.dtype),
                   i < 3 ? "__restrict__ " : "", names[i], cg_ptr(e, views[i]->loc, i == 3, p));
  }
  cg_text_printf(s,
                 "  int lane = threadIdx.x, warp = threadIdx.y, tid = warp * 32 + lane;\n"
                 "  long long row0 = (long long)blockIdx.x * %d;\n",
                 qr);
  /* leading coordinates (batch, head, ...) from blockIdx.y */
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
    lead_offset(buf, sizeof buf, views[i], nl);
    cg_text_printf(s, "  long long %s_base = %s;\n", names[i], buf);
  }
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
                 cg_load(q.loc.dtype, "q", idx, ld), cg_float_lit(scale, f));
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
                 cg_load(k.loc.dtype, "k", idx, ld));
  snprintf(idx, sizeof idx, "v_base + (j0 + j) * %lldLL + d * %lldLL", (long long)v.stride[nl],
           (long long)v.stride[nl + 1]);
  cg_text_printf(s,
                 "    for (int e = tid; e < %lld; e += 32 * CG_ATTN_WARPS) {\n"
                 "      int j = e / %lld, d = e %% %lld;\n"
                 "      vs[j][d] = j0 + j < %lld ? %s : 0.0f;\n"
                 "    }\n"
                 "    __syncthreads();\n",
                 (long long)(32 * Dv), (long long)Dv, (long long)Dv, (long long)M,
                 cg_load(v.loc.dtype, "v", idx, ld));
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
  char st_idx[256], val[64];
  snprintf(st_idx, sizeof st_idx, "y_base + row * %lldLL + d * %lldLL", (long long)out.stride[nl],
           (long long)out.stride[nl + 1]);
  snprintf(val, sizeof val, "acc[r][c] / l[r]");
  const char *conv = out.loc.dtype == IR_F16    ? "__float2half_rn"
                     : out.loc.dtype == IR_BF16 ? "__float2bfloat16_rn"
                                                : "";
  cg_text_printf(s,
                 "  for (int r = 0; r < CG_ATTN_ROWS_PER_WARP; r++) {\n"
                 "    long long row = row0 + warp * CG_ATTN_ROWS_PER_WARP + r;\n"
                 "    if (row >= %lld) continue;\n"
                 "    for (int c = 0; c < %d; c++) {\n"
                 "      int d = lane + 32 * c;\n"
                 "      if (d < %lld) y[%s] = %s(%s);\n"
                 "    }\n"
                 "  }\n"
                 "}\n\n",
                 (long long)N, dc, (long long)Dv, st_idx, conv, val);
  DITC_ASSERT(groups <= 65535);
  int64_t smem = cg_attention_smem(qr, D, Dv);
  DITC_ASSERT(smem <= t->smem_block);
  cg_launch(e, n, kid, (N + qr - 1) / qr, groups, 1, 32, t->attn_warps, 1, (uint32_t)smem);
}
