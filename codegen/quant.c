/*
 * quant.c - kernels for the quantisation ops (ops.def; passes/quantize.c).
 * quantize and dequantize are elementwise maps (emit.c lowers them through
 * cg_emit_map with ir/scalar.h's ditc_quantize_i8 / ditc_dequantize) and
 * qscale a row kernel (kernels.c); here:
 *
 *   qlinear  one thread per output element: the int8 products summed in
 *            int32 in k order (exact, so any order gives the same sum), then
 *            ditc_qlinear_scale and the bias, as the reference executor
 *            (ir/eval.c) does: the emulated device equals it bit for bit.
 *            A plain loop, the first version: a tiled kernel on the
 *            tensor cores (mma m16n8k32 s8) gives the same integers.
 *            qlinear_e4m3's kernel (quant_fp8.c) is the same loop over
 *            e4m3 levels (qlinear_kinds).
 *   wlinear  w8's mixed-input GEMM, linear(x, dequantize(wq, sw), b): the
 *            int8 weights stay in the weights blob and the kernel reads
 *            them directly.  A block of CG_WLINEAR_TILE^2 threads computes a
 *            square of (CG_WLINEAR_TILE * CG_WLINEAR_REG)^2 outputs, each
 *            thread CG_WLINEAR_REG^2 of them in registers: x and wq tiles
 *            CG_WLINEAR_K deep staged in shared memory (the int8 levels
 *            converted to f32 on that load), each output's f32 products
 *            summed in k order, the row scale sw[n] (then bias, GELU) on
 *            the store.
 *            No dequantised copy of the weight is ever written.
 */
#include <stdio.h>

#include "codegen/cg_internal.h"

/* The operands' pointers (names[i] for in[i], then b when has_bias) and y. */
static void decl_operands(CgEmit *e, const char *const *names, int n_in, const CgLoc *in, int has_bias, CgLoc out) {
  for (int i = 0; i < n_in; i++) cg_decl_ptr(e, names[i], in[i], 0);
  if (has_bias) cg_decl_ptr(e, "b", in[n_in], 0);
  cg_decl_ptr(e, "y", out, 1);
}

const char *cg_quant_value(char v[640], const char *scaled, const CgLoc *bias, const char *bias_index, int gelu) {
  char ldb[256], v0[560];
  if (bias)
    snprintf(v0, sizeof v0, "ditc_add(%s, %s)", scaled, cg_load(bias->dtype, "b", bias_index, ldb));
  else
    snprintf(v0, sizeof v0, "%s", scaled);
  snprintf(v, 640, gelu ? "ditc_gelu_tanh(%s)" : "%s", v0);
  return v;
}

void cg_decl_epilogue_inputs(CgEmit *e, CgLoc acc, const CgLoc *in, int has_bias) {
  cg_decl_ptr(e, "acc", acc, 0);
  cg_decl_ptr(e, "sx", in[1], 0);
  cg_decl_ptr(e, "sw", in[3], 0);
  if (has_bias) cg_decl_ptr(e, "b", in[4], 0);
}

/* What differs between the kinds: the kernel's name and banner (without and
 * with the tanh-GELU), the levels' C type, the sum's declaration, one
 * product of xr[j] and wr[j], and the sum scaled. */
typedef struct {
  const char *name, *name_gelu, *what, *what_gelu, *level, *acc_init, *product, *scaled;
} QlinearKindText;
static const QlinearKindText qlinear_kinds[] = {
    [CG_QLINEAR_I8] = {"qlinear", "qlinear_gelu", "int8 products summed exactly in int32, scaled once",
                       "int8 products summed exactly in int32, scaled once, bias, tanh-GELU", "int8_t", "int acc = 0",
                       "(int)xr[j] * (int)wr[j]", "ditc_qlinear_scale(acc, sx[r], sw[c])"},
    [CG_QLINEAR_E4M3] = {"qlinear_e4m3", NULL, "e4m3 products summed in f32 in k order, per-tensor scales", NULL,
                         "uint8_t", "float acc = 0.0f", "ditc_e4m3_to_f32(xr[j]) * ditc_e4m3_to_f32(wr[j])",
                         "ditc_qlinear_e4m3_scale(acc, sx[0], sw[0])"},
};

void cg_emit_qlinear_loop(CgEmit *e, const IrNode *n, CgQlinearKind kind, CgLoc out, const CgLoc *in, int has_bias,
                          int gelu, int64_t m, int64_t nn, int64_t kk) {
  const QlinearKindText *q = &qlinear_kinds[kind];
  DITC_ASSERT(!gelu || q->name_gelu);
  const char *name;
  char st[512], v[640];
  int k = cg_kernel_open(e, n, gelu ? q->name_gelu : q->name, gelu ? q->what_gelu : q->what, &name);
  cg_text_printf(&e->src, "DITC_KERNEL(%s, DitcArgs, a) {\n", name);
  decl_operands(e, (const char *const[]){"xq", "sx", "wq", "sw"}, 4, in, has_bias, out);
  cg_quant_value(v, q->scaled, has_bias ? &in[4] : NULL, "c", gelu);
  cg_text_printf(&e->src,
                 "  long long i = (long long)blockIdx.x * CG_BLOCK_ELEMENTWISE + threadIdx.x;\n"
                 "  if (i >= %lldLL) return;\n"
                 "  long long r = i / %lldLL, c = i %% %lldLL;\n"
                 "  const %s *xr = xq + r * %lldLL, *wr = wq + c * %lldLL;\n"
                 "  %s;\n"
                 "  for (int j = 0; j < %lld; j++) acc += %s;\n"
                 "  %s\n"
                 "}\n\n",
                 (long long)(m * nn), (long long)nn, (long long)nn, q->level, (long long)kk, (long long)kk,
                 q->acc_init, (long long)kk, q->product, cg_store(out.dtype, "y", "i", v, st));
  cg_launch_1d(e, n, k, m * nn, e->tune->block_elementwise);
}

void cg_emit_qlinear(CgEmit *e, const IrNode *n, CgLoc out, const CgLoc *in, int has_bias, int gelu, int64_t m,
                     int64_t nn, int64_t kk) {
  cg_emit_qlinear_loop(e, n, CG_QLINEAR_I8, out, in, has_bias, gelu, m, nn, kk);
}

void cg_emit_wlinear(CgEmit *e, const IrNode *n, CgLoc out, const CgLoc *in, int has_bias, int gelu, int64_t m,
                     int64_t nn, int64_t kk) {
  const char *name;
  char ldx[256], st[512], v[640], xi[64], yi[64];
  const int T = CG_WLINEAR_TILE, R = CG_WLINEAR_REG, B = T * R, K = CG_WLINEAR_K;
  int k = cg_kernel_open(e, n, gelu ? "wlinear_gelu" : "wlinear",
                         gelu ? "int8 weight tiles converted on load, f32 sums, row scale, bias, tanh-GELU"
                              : "int8 weight tiles converted on load, f32 sums, row scale on the store", &name);
  cg_text_printf(&e->src, "DITC_KERNEL_BOUNDS(%s, DitcArgs, a, %d) {\n", name, T * T);
  cg_text_printf(&e->src, "  DITC_SHARED2(float, xs, %d, %d);\n  DITC_SHARED2(float, ws, %d, %d);\n", B, K + 1, B, K + 1);
  decl_operands(e, (const char *const[]){"x", "wq", "sw"}, 3, in, has_bias, out);
  cg_quant_value(v, "ditc_dequantize(acc[i][q], sw[c])", has_bias ? &in[3] : NULL, "c", gelu);
  snprintf(xi, sizeof xi, "xr * %lldLL + kx", (long long)kk);
  snprintf(yi, sizeof yi, "r * %lldLL + c", (long long)nn);
  /* Block (bx, by) computes the B x B outputs from row bx*B and column
   * by*B; thread (tx, ty) the R x R of them at rows ty + T*i and columns
   * tx + T*q (strided, so a warp's shared reads are broadcasts or hit
   * distinct banks).  Each K-deep step stages the x rows and the weight
   * rows, every thread loading B*K/(T*T) elements of each. */
  cg_text_printf(&e->src,
                 "  int tx = threadIdx.x, ty = threadIdx.y, t = ty * %d + tx;\n"
                 "  long long r0 = (long long)blockIdx.x * %d, c0 = (long long)blockIdx.y * %d;\n"
                 "  float acc[%d][%d];\n"
                 "  for (int i = 0; i < %d; i++)\n"
                 "    for (int q = 0; q < %d; q++) acc[i][q] = 0.0f;\n"
                 "  for (long long k0 = 0; k0 < %lldLL; k0 += %d) {\n"
                 "    for (int l = t; l < %d; l += %d) {\n"
                 "      int lr = l / %d, lk = l %% %d;\n"
                 "      long long kx = k0 + lk, xr = r0 + lr, wr = c0 + lr;\n"
                 "      xs[lr][lk] = xr < %lldLL && kx < %lldLL ? %s : 0.0f;\n"
                 "      ws[lr][lk] = wr < %lldLL && kx < %lldLL ? (float)wq[wr * %lldLL + kx] : 0.0f;\n"
                 "    }\n"
                 "    __syncthreads();\n"
                 "    for (int j = 0; j < %d; j++) {\n"
                 "      float xv[%d], wv[%d];\n"
                 "      for (int i = 0; i < %d; i++) xv[i] = xs[ty + %d * i][j], wv[i] = ws[tx + %d * i][j];\n"
                 "      for (int i = 0; i < %d; i++)\n"
                 "        for (int q = 0; q < %d; q++) acc[i][q] += xv[i] * wv[q];\n"
                 "    }\n"
                 "    __syncthreads();\n"
                 "  }\n"
                 "  for (int i = 0; i < %d; i++)\n"
                 "    for (int q = 0; q < %d; q++) {\n"
                 "      long long r = r0 + ty + %d * i, c = c0 + tx + %d * q;\n"
                 "      if (r < %lldLL && c < %lldLL) %s\n"
                 "    }\n"
                 "}\n\n",
                 T, B, B, R, R, R, R, (long long)kk, K, B * K, T * T, K, K, (long long)m, (long long)kk,
                 cg_load(in[0].dtype, "x", xi, ldx), (long long)nn, (long long)kk, (long long)kk, K, R, R, R, T, T,
                 R, R, R, R, T, T, (long long)m, (long long)nn, cg_store(out.dtype, "y", yi, v, st));
  int64_t gx = (m + B - 1) / B, gy = (nn + B - 1) / B; /* rows along x: no 65535 limit */
  cg_launch(e, n, k, gx > 0 ? gx : 1, gy > 0 ? gy : 1, 1, T, T, 1, 0);
}

/* fc1's epilogue after its IMMA GEMM: one warp a row, the row's values
 * computed twice from the int32 sums (the same float operations both times,
 * so the same values): first for their largest magnitude and the row's
 * scale, then for the levels, as quant_rows does over a stored row. */
void cg_emit_qlinear_epilogue(CgEmit *e, const IrNode *n, CgLoc out, CgLoc scales, CgLoc acc, const CgLoc *in,
                              int has_bias, int64_t m, int64_t nn, float qmax) {
  const char *name;
  char st[512], v[640], f[48], yi[64];
  int k = cg_kernel_open(e, n, "qlinear_epilogue_quant",
                         "after the int8 GEMM: int32 sums scaled once, bias, tanh-GELU, then the row's int8 levels and scale",
                         &name);
  cg_text_printf(&e->src, "DITC_KERNEL_BOUNDS(%s, DitcArgs, a, 32 * CG_ROWS_PER_BLOCK) {\n", name);
  cg_decl_epilogue_inputs(e, acc, in, has_bias);
  cg_decl_ptr(e, "y", out, 1);
  cg_decl_ptr(e, "s", scales, 1);
  cg_quant_value(v, "ditc_qlinear_scale(ar[c], sx[r], sw[c])", has_bias ? &in[4] : NULL, "c", 1);
  snprintf(yi, sizeof yi, "r * %lldLL + c", (long long)nn);
  cg_text_printf(&e->src,
                 "  long long r = (long long)blockIdx.x * CG_ROWS_PER_BLOCK + threadIdx.y;\n"
                 "  if (r >= %lldLL) return;\n"
                 "  const int *ar = acc + r * %lldLL;\n"
                 "  float qm = 0.0f;\n"
                 "  for (long long c = threadIdx.x; c < %lldLL; c += 32) qm = ditc_absmax(qm, %s);\n"
                 "  DITC_XOR_REDUCE(qm, ditc_absmax, 32);\n"
                 "  float sc = ditc_qscale(qm, %s);\n"
                 "  if (threadIdx.x == 0) s[r] = sc;\n",
                 (long long)m, (long long)nn, (long long)nn, v, cg_float_lit(qmax, f));
  char q[700];
  snprintf(q, sizeof q, "ditc_quantize_i8(%s, sc)", v);
  cg_text_printf(&e->src, "  for (long long c = threadIdx.x; c < %lldLL; c += 32) %s\n}\n\n", (long long)nn,
                 cg_store(out.dtype, "y", yi, q, st));
  int r = e->tune->rows_per_block;
  int64_t g = (m + r - 1) / r;
  cg_launch(e, n, k, g > 0 ? g : 1, 1, 1, 32, r, 1, 0);
}
