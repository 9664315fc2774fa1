/*
 * moe.c - kernels for routed mixture-of-experts execution (the ops
 * route-experts makes; the routing table's layout is in ir.h).
 *
 * A plan's step list is static, so every size here is the worst case fixed
 * at T*k routed rows (T tokens, k experts each, E experts); how the rows
 * split among the experts is read from the routing table in device memory.
 * Everything is deterministic: no atomics, and every sum has a fixed order.
 *
 *   moe_route    two kernels.  pick: one thread per token chooses its k
 *                experts with topk_softmax's own selection (the same code,
 *                so both agree on ties) and writes them in increasing order.
 *                place: one block per expert e counts the choices of experts
 *                below e (a block reduction: e's segment offset), then walks
 *                the tokens in order in chunks of the block, a block-wide
 *                prefix sum giving each routed token its slot, so segments are
 *                sorted by token.
 *   moe_gather   one thread per element: xs[s, :] = x[token(s), :].
 *   moe_linear   a tiled grouped GEMM: grid (row tiles, N tiles).  The row
 *                tiles of all segments together number at most
 *                ceil(S / 64) + E - 1; a block reads the segment bounds,
 *                finds the expert its tile belongs to, and exits when the
 *                segments have fewer tiles.  64x64 tiles, k-steps of 16
 *                through shared memory,
 *                256 threads of 4x4 outputs, f32 accumulation; operands are
 *                read in whatever they are stored in (the precision).
 *                The quantised experts (passes/quantize.c) use the same
 *                kernel: w8's moe_linear over dequantize(wq, sw) reads the
 *                int8 levels from the blob, converts them on the tile load
 *                and applies the row scale on the store (no dequantised
 *                copy); moe_qlinear stages int tiles and sums in int32
 *                (exact, so equal to the reference executor bit for bit),
 *                then ditc_qlinear_scale and the bias; moe_qlinear_e4m3
 *                decodes e4m3 on the load and sums the (exact) products in
 *                f32 in k order, as the reference does, so it too is equal.
 *   moe_combine  one thread per output element sums its token's k gated
 *                rows in increasing expert order.
 */
#include <stdio.h>

#include "codegen/cg_internal.h"

#define MOE_BLOCK 256 /* threads of the place and GEMM blocks (the scans assume it) */
#define MOE_TILE 64   /* GEMM tile edge (rows and columns) */
#define MOE_TK 16     /* GEMM k-step */

/* The routing table's sizes at the plan's batch: E and S = T*k. */
typedef struct {
  int64_t experts, slots;
} MoeDims;

static MoeDims moe_dims(const CgEmit *e, const IrNode *table, IrDim slots_ir) {
  MoeDims d = {.experts = ir_moe_table_experts(table->shape.d[0], slots_ir),
               .slots = ir_dim_eval(slots_ir, e->batch)};
  DITC_ASSERT(d.experts >= 1);
  return d;
}

/* Section starts of the table (ir.h), in elements. */
#define OFF_TOKEN(d) ((long long)(d).experts + 1)
#define OFF_SLOT(d) (OFF_TOKEN(d) + (long long)(d).slots)
#define OFF_EXPERT(d) (OFF_SLOT(d) + (long long)(d).slots)

int cg_moe_operand(const IrNode *n, int j) {
  return (n->op == IR_MOE_GATHER && j == 0) || (n->op == IR_MOE_LINEAR && (j == 0 || j == 2));
}

static void emit_route(CgEmit *e, const IrNode *n, CgLoc out, CgLoc logits) {
  const IrNode *x = n->in[0];
  int k = n->attr.k;
  int64_t E = x->shape.d[x->shape.rank - 1], T = ir_shape_numel(&x->shape, e->batch) / E;
  MoeDims d = {.experts = E, .slots = T * k};
  const char *name;

  int kid = cg_kernel_open(e, n, "moe_pick", "each token's k experts, in increasing order", &name);
  cg_text_printf(&e->src, "DITC_KERNEL(%s, DitcArgs, a) {\n", name);
  cg_decl_ptr(e, "x", logits, 0);
  cg_decl_ptr(e, "tab", out, 1);
  cg_text_printf(&e->src,
                 "  long long row = (long long)blockIdx.x * CG_BLOCK_ROW_THREAD + threadIdx.x;\n"
                 "  if (row >= %lld) return;\n"
                 "  const %s *__restrict__ xr = x + row * %lld;\n",
                 (long long)T, cg_ctype(logits.dtype), (long long)E);
  cg_emit_topk_pick(e, logits.dtype, "xr", E, k);
  cg_text_printf(&e->src,
                 "  for (int j = 1; j < %d; j++)\n"
                 "    for (int u = j; u > 0 && pick[u - 1] > pick[u]; u--) {\n"
                 "      int t = pick[u];\n"
                 "      pick[u] = pick[u - 1];\n"
                 "      pick[u - 1] = t;\n"
                 "    }\n"
                 "  for (int j = 0; j < %d; j++) tab[%lldLL + row * %d + j] = pick[j];\n"
                 "}\n\n",
                 k, k, OFF_EXPERT(d), k);
  cg_launch_1d(e, n, kid, T, e->tune->block_row_thread);

  kid = cg_kernel_open(e, n, "moe_place", "block e: offset of expert e, then its slots in token order", &name);
  cg_text_printf(&e->src, "DITC_KERNEL_BOUNDS(%s, DitcArgs, a, %d) {\n", name, MOE_BLOCK);
  cg_decl_ptr(e, "tab", out, 1);
  cg_text_printf(&e->src,
                 "  DITC_SHARED(int, sh, %d);\n"
                 "  int ex = (int)blockIdx.x, tid = (int)threadIdx.x;\n"
                 "  const int *choice = tab + %lldLL;\n"
                 "  /* offset: the choices of lower experts */\n"
                 "  int below = 0;\n"
                 "  for (long long i = tid; i < %lldLL; i += %d) below += choice[i] < ex;\n"
                 "  sh[tid] = below;\n"
                 "  __syncthreads();\n"
                 "  for (int h = %d; h > 0; h >>= 1) {\n"
                 "    if (tid < h) sh[tid] += sh[tid + h];\n"
                 "    __syncthreads();\n"
                 "  }\n"
                 "  int start = sh[0];\n"
                 "  __syncthreads();\n"
                 "  if (tid == 0) {\n"
                 "    tab[ex] = start;\n"
                 "    if (ex == %lld) tab[%lld] = %lld;\n"
                 "  }\n"
                 "  /* placement: tokens in order, a block-wide prefix sum per chunk */\n"
                 "  int run = 0;\n"
                 "  for (long long base = 0; base < %lldLL; base += %d) {\n"
                 "    long long t = base + tid;\n"
                 "    int j_at = -1;\n"
                 "    if (t < %lldLL)\n"
                 "      for (int j = 0; j < %d; j++)\n"
                 "        if (choice[t * %d + j] == ex) j_at = j;\n"
                 "    int flag = j_at >= 0;\n"
                 "    sh[tid] = flag;\n"
                 "    __syncthreads();\n"
                 "    for (int o = 1; o < %d; o <<= 1) {\n"
                 "      int v = tid >= o ? sh[tid - o] : 0;\n"
                 "      __syncthreads();\n"
                 "      sh[tid] += v;\n"
                 "      __syncthreads();\n"
                 "    }\n"
                 "    if (flag) {\n"
                 "      int s = start + run + sh[tid] - 1;\n"
                 "      tab[%lldLL + s] = (int)t;\n"
                 "      tab[%lldLL + t * %d + j_at] = s;\n"
                 "    }\n"
                 "    run += sh[%d];\n"
                 "    __syncthreads();\n"
                 "  }\n"
                 "}\n\n",
                 MOE_BLOCK, OFF_EXPERT(d), (long long)d.slots, MOE_BLOCK, MOE_BLOCK / 2, (long long)(E - 1),
                 (long long)E, (long long)d.slots, (long long)T, MOE_BLOCK, (long long)T, k, k, MOE_BLOCK,
                 OFF_TOKEN(d), OFF_SLOT(d), k, MOE_BLOCK - 1);
  cg_launch(e, n, kid, E, 1, 1, MOE_BLOCK, 1, 1, 0);
}

static void emit_gather(CgEmit *e, const IrNode *n, CgLoc out, CgLoc x, CgLoc tab) {
  MoeDims d = moe_dims(e, n->in[1], n->shape.d[0]);
  int64_t D = n->shape.d[1];
  const char *name;
  char ld[256], st[512];
  int kid = cg_kernel_open(e, n, "moe_gather", NULL, &name);
  cg_text_printf(&e->src, "DITC_KERNEL(%s, DitcArgs, a) {\n", name);
  cg_decl_ptr(e, "x", x, 0);
  cg_decl_ptr(e, "tab", tab, 0);
  cg_decl_ptr(e, "y", out, 1);
  const char *v = x.dtype == out.dtype ? "x[src]" : cg_load(x.dtype, "x", "src", ld);
  if (x.dtype == out.dtype)
    snprintf(st, sizeof st, "y[i] = x[src];");
  else
    cg_store(out.dtype, "y", "i", v, st);
  cg_text_printf(&e->src,
                 "  long long i = (long long)blockIdx.x * CG_BLOCK_ELEMENTWISE + threadIdx.x;\n"
                 "  if (i >= %lldLL) return;\n"
                 "  long long s = i / %lld, c = i %% %lld;\n"
                 "  long long src = (long long)tab[%lldLL + s] * %lld + c;\n"
                 "  %s\n"
                 "}\n\n",
                 (long long)(d.slots * D), (long long)D, (long long)D, OFF_TOKEN(d), (long long)D, st);
  cg_launch_1d(e, n, kid, d.slots * D, e->tune->block_elementwise);
}

/* The grouped GEMM's kinds: the operands each reads (in[]) and how. */
typedef enum {
  MOE_FLOAT, /* moe_linear: xs, table, w[, b], read in their storage dtype */
  MOE_W8,    /* moe_linear over dequantize(wq, sw) (LOW_WMOE): xs, table, wq, sw[, b]; levels converted on the
              * tile load, the row scale on the store (as wlinear) */
  MOE_I8,    /* moe_qlinear: xq, table, sx, wq, sw[, b]; int tiles, int32 sums, scaled once */
  MOE_E4M3,  /* moe_qlinear_e4m3: likewise, e4m3 decoded on the load, f32 sums in k order */
} MoeKind;

static void emit_linear(CgEmit *e, const IrNode *n, CgLoc out, const CgLoc *in, MoeKind kind) {
  MoeDims d = moe_dims(e, n->in[1], n->shape.d[0]);
  int wi = kind == MOE_FLOAT || kind == MOE_W8 ? 2 : 3, bi = kind == MOE_FLOAT ? 3 : kind == MOE_W8 ? 4 : 5;
  const IrNode *w = kind == MOE_W8 ? n->in[2]->in[0] : n->in[wi];
  int has_bias = n->n_in > (kind == MOE_FLOAT || kind == MOE_W8 ? 3 : 5);
  int64_t N = w->shape.d[1], K = w->shape.d[2];
  /* Row tiles of all segments together: at most ceil(S / tile) + E - 1. */
  int64_t row_tiles = (d.slots + MOE_TILE - 1) / MOE_TILE + d.experts - 1;
  int64_t col_tiles = (N + MOE_TILE - 1) / MOE_TILE;
  if (row_tiles < 1 || col_tiles < 1) return;
  const char *name;
  char ia[96], ib[96], ibias[96], la[256], lb[256], lbias[256], bias[300], st[512], detail[240], v[400];
  static const char *const how[] = {
      [MOE_FLOAT] = "f32 accumulation",
      [MOE_W8] = "int8 weights converted on the tile load, f32 accumulation, row scale on the store",
      [MOE_I8] = "int8 products summed exactly in int32, scaled once",
      [MOE_E4M3] = "e4m3 products summed in f32 in k order, per-tensor scales"};
  snprintf(detail, sizeof detail, "grouped GEMM over %lld experts' segments: %dx%d tiles, k-step %d, %s",
           (long long)d.experts, MOE_TILE, MOE_TILE, MOE_TK, how[kind]);
  int kid = cg_kernel_open(e, n, kind == MOE_I8 ? "moe_qlinear" : kind == MOE_E4M3 ? "moe_qlinear_e4m3" : kind == MOE_W8 ? "moe_wlinear" : "moe_linear",
                           detail, &name);
  cg_text_printf(&e->src, "DITC_KERNEL_BOUNDS(%s, DitcArgs, a, %d) {\n", name, MOE_BLOCK);
  cg_decl_ptr(e, "xs", in[0], 0);
  cg_decl_ptr(e, "tab", in[1], 0);
  if (kind == MOE_I8 || kind == MOE_E4M3) cg_decl_ptr(e, "sx", in[2], 0);
  cg_decl_ptr(e, "w", in[wi], 0);
  if (kind != MOE_FLOAT) cg_decl_ptr(e, "sw", in[wi + 1], 0);
  if (has_bias) cg_decl_ptr(e, "bias", in[bi], 0);
  cg_decl_ptr(e, "y", out, 1);
  snprintf(ia, sizeof ia, "gr * %lldLL + gk", (long long)K);
  snprintf(ib, sizeof ib, "gc * %lldLL + gk", (long long)K);
  snprintf(ibias, sizeof ibias, "(long long)ex * %lldLL + c", (long long)N);
  if (has_bias) snprintf(bias, sizeof bias, "%s", cg_load(in[bi].dtype, "bias", ibias, lbias));
  const char *acc_t = kind == MOE_I8 ? "int" : "float", *zero = kind == MOE_I8 ? "0" : "0.0f";
  if (kind == MOE_I8) { /* the levels as ints: the sums are exact */
    snprintf(la, sizeof la, "(int)xs[%s]", ia);
    snprintf(lb, sizeof lb, "(int)we[%s]", ib);
  } else {
    cg_load(in[0].dtype, "xs", ia, la);
    cg_load(in[wi].dtype, "we", ib, lb);
  }
  switch (kind) {
  case MOE_FLOAT: snprintf(v, sizeof v, "acc[i][j]"); break;
  case MOE_W8: snprintf(v, sizeof v, "ditc_dequantize(acc[i][j], sw[(long long)ex * %lldLL + c])", (long long)N); break;
  case MOE_I8: snprintf(v, sizeof v, "ditc_qlinear_scale(acc[i][j], sx[r], sw[(long long)ex * %lldLL + c])", (long long)N); break;
  case MOE_E4M3: snprintf(v, sizeof v, "ditc_qlinear_e4m3_scale(acc[i][j], sx[0], sw[ex])"); break;
  }
  char val[800];
  if (has_bias && kind == MOE_FLOAT) snprintf(val, sizeof val, "%s + %s", v, bias);
  else if (has_bias) snprintf(val, sizeof val, "ditc_add(%s, %s)", v, bias);
  else snprintf(val, sizeof val, "%s", v);
  cg_text_printf(&e->src,
                 "  DITC_SHARED2(%s, as, %d, %d);\n"
                 "  DITC_SHARED2(%s, bs, %d, %d);\n"
                 "  int tid = (int)threadIdx.x;\n"
                 "  /* this block's row tile: find its expert from the segment bounds */\n"
                 "  long long tile = blockIdx.x, tiles = 0, lo = 0, hi = 0, row0 = 0;\n"
                 "  int ex = -1;\n"
                 "  for (int q = 0; q < %lld; q++) {\n"
                 "    long long a0 = tab[q], a1 = tab[q + 1], nt = (a1 - a0 + %d) / %d;\n"
                 "    if (tile >= tiles && tile < tiles + nt) {\n"
                 "      ex = q;\n"
                 "      lo = a0;\n"
                 "      hi = a1;\n"
                 "      row0 = a0 + (tile - tiles) * %d;\n"
                 "    }\n"
                 "    tiles += nt;\n"
                 "  }\n"
                 "  if (ex < 0) return; /* the whole block: no segment has this many tiles */\n"
                 "  (void)lo;\n"
                 "  long long col0 = (long long)blockIdx.y * %d;\n"
                 "  const %s *__restrict__ we = w + (long long)ex * %lldLL;\n"
                 "  int tx = tid %% 16, ty = tid / 16;\n"
                 "  %s acc[4][4];\n"
                 "  for (int i = 0; i < 4; i++)\n"
                 "    for (int j = 0; j < 4; j++) acc[i][j] = %s;\n"
                 "  for (long long k0 = 0; k0 < %lldLL; k0 += %d) {\n"
                 "    for (int q = tid; q < %d; q += %d) {\n"
                 "      int r = q / %d, kk = q %% %d;\n"
                 "      long long gr = row0 + r, gk = k0 + kk, gc = col0 + r;\n"
                 "      as[kk][r] = (gr < hi && gk < %lldLL) ? %s : %s;\n"
                 "      bs[kk][r] = (gc < %lldLL && gk < %lldLL) ? %s : %s;\n"
                 "    }\n"
                 "    __syncthreads();\n"
                 "    for (int kk = 0; kk < %d; kk++) {\n"
                 "      %s av[4], bv[4];\n"
                 "      for (int i = 0; i < 4; i++) av[i] = as[kk][ty + 16 * i];\n"
                 "      for (int j = 0; j < 4; j++) bv[j] = bs[kk][tx + 16 * j];\n"
                 "      for (int i = 0; i < 4; i++)\n"
                 "        for (int j = 0; j < 4; j++) acc[i][j] += av[i] * bv[j];\n"
                 "    }\n"
                 "    __syncthreads();\n"
                 "  }\n"
                 "  for (int i = 0; i < 4; i++) {\n"
                 "    long long r = row0 + ty + 16 * i;\n"
                 "    if (r >= hi) continue;\n"
                 "    for (int j = 0; j < 4; j++) {\n"
                 "      long long c = col0 + tx + 16 * j;\n"
                 "      if (c >= %lldLL) continue;\n"
                 "      float v = %s;\n"
                 "      long long o = r * %lldLL + c;\n"
                 "      %s\n"
                 "    }\n"
                 "  }\n"
                 "}\n\n",
                 acc_t, MOE_TK, MOE_TILE + 1, acc_t, MOE_TK, MOE_TILE + 1, (long long)d.experts, MOE_TILE - 1, MOE_TILE,
                 MOE_TILE, MOE_TILE, cg_ctype(in[wi].dtype), (long long)(N * K), acc_t, zero, (long long)K, MOE_TK,
                 MOE_TILE * MOE_TK, MOE_BLOCK, MOE_TK, MOE_TK, (long long)K, la, zero, (long long)N, (long long)K, lb,
                 zero, MOE_TK, acc_t, (long long)N, val, (long long)N, cg_store(out.dtype, "y", "o", "v", st));
  cg_launch(e, n, kid, row_tiles, col_tiles, 1, MOE_BLOCK, 1, 1, 0);
}

static void emit_combine(CgEmit *e, const IrNode *n, CgLoc out, const CgLoc *in) {
  const IrNode *ys = n->in[0], *g = n->in[2];
  MoeDims d = moe_dims(e, n->in[1], ys->shape.d[0]);
  int64_t D = ys->shape.d[1], T = ir_shape_numel(&g->shape, e->batch) / d.experts, k = T ? d.slots / T : 0;
  const char *name;
  char ldy[256], ldg[256], st[512];
  int kid = cg_kernel_open(e, n, "moe_combine", "each token sums its k gated rows, experts in increasing order", &name);
  cg_text_printf(&e->src, "DITC_KERNEL(%s, DitcArgs, a) {\n", name);
  cg_decl_ptr(e, "ys", in[0], 0);
  cg_decl_ptr(e, "tab", in[1], 0);
  cg_decl_ptr(e, "gates", in[2], 0);
  cg_decl_ptr(e, "y", out, 1);
  cg_text_printf(&e->src,
                 "  long long i = (long long)blockIdx.x * CG_BLOCK_ELEMENTWISE + threadIdx.x;\n"
                 "  if (i >= %lldLL) return;\n"
                 "  long long t = i / %lld, c = i %% %lld;\n"
                 "  float acc = 0.0f;\n"
                 "  for (int j = 0; j < %lld; j++) {\n"
                 "    long long q = t * %lld + j;\n"
                 "    long long gi = t * %lld + tab[%lldLL + q], yi = (long long)tab[%lldLL + q] * %lld + c;\n"
                 "    acc += %s * %s;\n"
                 "  }\n"
                 "  %s\n"
                 "}\n\n",
                 (long long)(T * D), (long long)D, (long long)D, (long long)k, (long long)k, (long long)d.experts,
                 OFF_EXPERT(d), OFF_SLOT(d), (long long)D, cg_load(in[0].dtype, "ys", "yi", ldy),
                 cg_load(in[2].dtype, "gates", "gi", ldg), cg_store(out.dtype, "y", "i", "acc", st));
  cg_launch_1d(e, n, kid, T * D, e->tune->block_elementwise);
}

void cg_emit_moe_w8(CgEmit *e, const IrNode *n, CgLoc out, const CgLoc *in) { emit_linear(e, n, out, in, MOE_W8); }

void cg_emit_moe(CgEmit *e, const IrNode *n, CgLoc out, const CgLoc *in) {
  switch (n->op) {
  case IR_MOE_ROUTE: return emit_route(e, n, out, in[0]);
  case IR_MOE_GATHER: return emit_gather(e, n, out, in[0], in[1]);
  case IR_MOE_LINEAR: return emit_linear(e, n, out, in, MOE_FLOAT);
  case IR_MOE_QLINEAR: return emit_linear(e, n, out, in, MOE_I8);
  case IR_MOE_QLINEAR_E4M3: return emit_linear(e, n, out, in, MOE_E4M3);
  case IR_MOE_COMBINE: return emit_combine(e, n, out, in);
  default: ditc_unreachable();
  }
}
