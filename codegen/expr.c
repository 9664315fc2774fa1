/*
 * expr.c - the elementwise ops as expressions of the kernel dialect over the
 * operands v0 (and v1): what a map kernel or a fused tree computes per
 * element.
 */
#include <stdio.h>

#include "codegen/cg_internal.h"

/* The unary expression of op over v0. */
const char *cg_unary_expr(const IrNode *n, char *buf, size_t size) {
  char f[48];
  cg_float_lit(n->attr.f, f);
  switch (n->op) {
  case IR_NEG: return "-v0";
  case IR_RELU: return "(v0 < 0.0f ? 0.0f : v0)"; /* NaN passes, as in torch */
  case IR_SILU: return "v0 / (1.0f + expf(-v0))";
  case IR_GELU_TANH: return "cg_gelu_tanh(v0)";
  case IR_GELU: return "0.5f * v0 * (1.0f + erff(v0 * 0.70710678118654752f))";
  case IR_SIGMOID: return "1.0f / (1.0f + expf(-v0))";
  case IR_TANH: return "tanhf(v0)";
  case IR_EXP: return "expf(v0)";
  case IR_LOG: return "logf(v0)";
  case IR_SIN: return "sinf(v0)";
  case IR_COS: return "cosf(v0)";
  case IR_SQRT: return "sqrtf(v0)";
  case IR_RECIP: return "1.0f / v0";
  case IR_SCALE: snprintf(buf, size, "v0 * %s", f); return buf;
  case IR_ADD_SCALAR: snprintf(buf, size, "v0 + %s", f); return buf;
  case IR_CLAMP_MIN: snprintf(buf, size, "(v0 < %s ? %s : v0)", f, f); return buf;
  case IR_POW_SCALAR: {
    /* the exponents torch special-cases, computed its way (as runtime/ref.c) */
    float p = n->attr.f;
    if (p == 2.0f) return "v0 * v0";
    if (p == 3.0f) return "v0 * v0 * v0";
    if (p == 0.5f) return "sqrtf(v0)";
    if (p == -0.5f) return "1.0f / sqrtf(v0)";
    if (p == -1.0f) return "1.0f / v0";
    if (p == -2.0f) return "1.0f / (v0 * v0)";
    if (p == 1.0f) return "v0";
    snprintf(buf, size, "powf(v0, %s)", f);
    return buf;
  }
  case IR_CAST: return NULL;
  default: ditc_unreachable();
  }
}

const char *cg_binary_expr(IrOp op) {
  switch (op) {
  case IR_ADD: return "v0 + v1";
  case IR_SUB: return "v0 - v1";
  case IR_MUL: return "v0 * v1";
  case IR_DIV: return "v0 / v1";
  case IR_MAX: return "(v0 != v0 || v0 > v1) ? v0 : v1"; /* NaN wins, as in torch */
  default: ditc_unreachable();
  }
}
