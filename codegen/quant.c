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
 */
#include <stdio.h>

#include "codegen/cg_internal.h"

void cg_emit_qlinear(CgEmit *e, const IrNode *n, CgLoc out, const CgLoc *in, int has_bias, int gelu, int64_t m,
                     int64_t nn, int64_t kk) {
  const char *name;
  char ldb[256], st[512], v0[512], v[560];
  int k = cg_kernel_open(e, n, gelu ? "qlinear_gelu" : "qlinear",
                         gelu ? "int8 products summed exactly in int32, scaled once, bias, tanh-GELU"
                              : "int8 products summed exactly in int32, scaled once", &name);
  cg_text_printf(&e->src, "DITC_KERNEL(%s, DitcArgs, a) {\n", name);
  cg_decl_ptr(e, "xq", in[0], 0);
  cg_decl_ptr(e, "sx", in[1], 0);
  cg_decl_ptr(e, "wq", in[2], 0);
  cg_decl_ptr(e, "sw", in[3], 0);
  if (has_bias) cg_decl_ptr(e, "b", in[4], 0);
  cg_decl_ptr(e, "y", out, 1);
  snprintf(v0, sizeof v0, has_bias ? "ditc_add(ditc_qlinear_scale(acc, sx[r], sw[c]), %s)" : "ditc_qlinear_scale(acc, sx[r], sw[c])",
           has_bias ? cg_load(in[4].dtype, "b", "c", ldb) : "");
  snprintf(v, sizeof v, gelu ? "ditc_gelu_tanh(%s)" : "%s", v0);
  cg_text_printf(&e->src,
                 "  long long i = (long long)blockIdx.x * CG_BLOCK_ELEMENTWISE + threadIdx.x;\n"
                 "  if (i >= %lldLL) return;\n"
                 "  long long r = i / %lldLL, c = i %% %lldLL;\n"
                 "  const int8_t *xr = xq + r * %lldLL, *wr = wq + c * %lldLL;\n"
                 "  int acc = 0;\n"
                 "  for (int j = 0; j < %lld; j++) acc += (int)xr[j] * (int)wr[j];\n"
                 "  %s\n"
                 "}\n\n",
                 (long long)(m * nn), (long long)nn, (long long)nn, (long long)kk, (long long)kk, (long long)kk,
                 cg_store(out.dtype, "y", "i", v, st));
  cg_launch_1d(e, n, k, m * nn, e->tune->block_elementwise);
}
