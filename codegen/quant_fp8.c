/*
 * quant_fp8.c - the kernel of qlinear_e4m3 (ops.def; passes/quantize.c mode
 * fp8).  quantize_e4m3 is an elementwise map (emit.c, cg_emit_map with
 * ir/scalar.h's ditc_quantize_e4m3; stores encode with ditc_f32_to_e4m3,
 * loads decode with ditc_e4m3_to_f32, kernels.c), computed into the weights
 * blob for a weight.
 *
 *   qlinear_e4m3  one thread per output element: the decoded e4m3 products
 *                 (exact in f32) summed in f32 in k order, then
 *                 ditc_qlinear_e4m3_scale and the bias, as the reference
 *                 executor (ir/eval.c) does: the emulated device equals it
 *                 bit for bit.  Only for a linear cuBLASLt's FP8 matmul does
 *                 not run (n or k not a multiple of 16, an architecture
 *                 before sm_89) or whose result is read elsewhere.
 *   qlinear_e4m3_epilogue  after fc1's FP8 GEMM step (lower.c,
 *                 LOW_E4M3_GELU): scales, bias, tanh-GELU and fc2's e4m3
 *                 levels from the GEMM's f32 sums.
 *
 * The other qlinear_e4m3s are FP8 GEMM steps (plan.h CgGemm, e4m3 operands,
 * f32 D) whose readers apply the scales and bias as they load the sums (the
 * attention kernel, the fused layernorm: CgView.deq_e4m3).
 */
#include <stdio.h>

#include "codegen/cg_internal.h"

void cg_emit_qlinear_e4m3(CgEmit *e, const IrNode *n, CgLoc out, const CgLoc *in, int has_bias, int64_t m, int64_t nn,
                          int64_t kk) {
  const char *name;
  char ldb[256], st[512], v[560];
  int k = cg_kernel_open(e, n, "qlinear_e4m3", "e4m3 products summed in f32 in k order, per-tensor scales", &name);
  cg_text_printf(&e->src, "DITC_KERNEL(%s, DitcArgs, a) {\n", name);
  cg_decl_ptr(e, "xq", in[0], 0);
  cg_decl_ptr(e, "sx", in[1], 0);
  cg_decl_ptr(e, "wq", in[2], 0);
  cg_decl_ptr(e, "sw", in[3], 0);
  if (has_bias) cg_decl_ptr(e, "b", in[4], 0);
  cg_decl_ptr(e, "y", out, 1);
  snprintf(v, sizeof v, has_bias ? "ditc_add(ditc_qlinear_e4m3_scale(acc, sx[0], sw[0]), %s)" : "ditc_qlinear_e4m3_scale(acc, sx[0], sw[0])%s",
           has_bias ? cg_load(in[4].dtype, "b", "c", ldb) : "");
  cg_text_printf(&e->src,
                 "  long long i = (long long)blockIdx.x * CG_BLOCK_ELEMENTWISE + threadIdx.x;\n"
                 "  if (i >= %lldLL) return;\n"
                 "  long long r = i / %lldLL, c = i %% %lldLL;\n"
                 "  const uint8_t *xr = xq + r * %lldLL, *wr = wq + c * %lldLL;\n"
                 "  float acc = 0.0f;\n"
                 "  for (int j = 0; j < %lld; j++) acc += ditc_e4m3_to_f32(xr[j]) * ditc_e4m3_to_f32(wr[j]);\n"
                 "  %s\n"
                 "}\n\n",
                 (long long)(m * nn), (long long)nn, (long long)nn, (long long)kk, (long long)kk, (long long)kk,
                 cg_store(out.dtype, "y", "i", v, st));
  cg_launch_1d(e, n, k, m * nn, e->tune->block_elementwise);
}

/* fp8's fc1 epilogue after its FP8 GEMM: one thread an element, the
 * qlinear_e4m3 kernel's value (scaled once, then the bias), the tanh-GELU
 * and quantize_e4m3 - the operations of the three kernels it replaces, in
 * their order, so the same bits. */
void cg_emit_e4m3_epilogue(CgEmit *e, const IrNode *n, CgLoc out, CgLoc acc, const CgLoc *in, int has_bias, CgLoc qs,
                           int64_t m, int64_t nn) {
  const char *name;
  char ldb[256], st[512], v[700], bi[48];
  int k = cg_kernel_open(e, n, "qlinear_e4m3_epilogue",
                         "after the FP8 GEMM: f32 sums scaled once, bias, tanh-GELU, then the e4m3 levels", &name);
  cg_text_printf(&e->src, "DITC_KERNEL(%s, DitcArgs, a) {\n", name);
  cg_decl_ptr(e, "acc", acc, 0);
  cg_decl_ptr(e, "sx", in[1], 0);
  cg_decl_ptr(e, "sw", in[3], 0);
  if (has_bias) cg_decl_ptr(e, "b", in[4], 0);
  cg_decl_ptr(e, "qs", qs, 0);
  cg_decl_ptr(e, "y", out, 1);
  if (has_bias)
    snprintf(v, sizeof v, "ditc_quantize_e4m3(ditc_gelu_tanh(ditc_add(ditc_qlinear_e4m3_scale(acc[i], sx[0], sw[0]), %s)), qs[0])",
             cg_load(in[4].dtype, "b", (snprintf(bi, sizeof bi, "i %% %lldLL", (long long)nn), bi), ldb));
  else
    snprintf(v, sizeof v, "ditc_quantize_e4m3(ditc_gelu_tanh(ditc_qlinear_e4m3_scale(acc[i], sx[0], sw[0])), qs[0])");
  cg_text_printf(&e->src,
                 "  long long i = (long long)blockIdx.x * CG_BLOCK_ELEMENTWISE + threadIdx.x;\n"
                 "  if (i >= %lldLL) return;\n"
                 "  %s\n"
                 "}\n\n",
                 (long long)(m * nn), cg_store(out.dtype, "y", "i", v, st));
  cg_launch_1d(e, n, k, m * nn, e->tune->block_elementwise);
}
