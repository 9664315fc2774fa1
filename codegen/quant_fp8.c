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
  cg_emit_qlinear_loop(e, n, CG_QLINEAR_E4M3, out, in, has_bias, 0, m, nn, kk);
}

/* fp8's fc1 epilogue after its FP8 GEMM: one thread an element, the
 * qlinear_e4m3 kernel's value (scaled once, then the bias), the tanh-GELU
 * and quantize_e4m3 - the operations of the three kernels it replaces, in
 * their order, so the same bits. */
void cg_emit_e4m3_epilogue(CgEmit *e, const IrNode *n, CgLoc out, CgLoc acc, const CgLoc *in, int has_bias, CgLoc qs,
                           int64_t m, int64_t nn) {
  const char *name;
  char st[512], h[640], v[700], bi[48];
  int k = cg_kernel_open(e, n, "qlinear_e4m3_epilogue",
                         "after the FP8 GEMM: f32 sums scaled once, bias, tanh-GELU, then the e4m3 levels", &name);
  cg_text_printf(&e->src, "DITC_KERNEL(%s, DitcArgs, a) {\n", name);
  cg_decl_epilogue_inputs(e, acc, in, has_bias);
  cg_decl_ptr(e, "qs", qs, 0);
  cg_decl_ptr(e, "y", out, 1);
  snprintf(bi, sizeof bi, "i %% %lldLL", (long long)nn);
  cg_quant_value(h, "ditc_qlinear_e4m3_scale(acc[i], sx[0], sw[0])", has_bias ? &in[4] : NULL, bi, 1);
  snprintf(v, sizeof v, "ditc_quantize_e4m3(%s, qs[0])", h);
  cg_text_printf(&e->src,
                 "  long long i = (long long)blockIdx.x * CG_BLOCK_ELEMENTWISE + threadIdx.x;\n"
                 "  if (i >= %lldLL) return;\n"
                 "  %s\n"
                 "}\n\n",
                 (long long)(m * nn), cg_store(out.dtype, "y", "i", v, st));
  cg_launch_1d(e, n, k, m * nn, e->tune->block_elementwise);
}
