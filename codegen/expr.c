/*
 * expr.c - the elementwise ops as expressions of the kernel dialect over the
 * operands v0 (and v1): what a map kernel or a fused tree computes per
 * element.
 *
 * Each is a call of the op's one definition, ditc_<name>() of ir/scalar.h,
 * whose text starts every generated source (codegen/emit.c) and which
 * constant folding and the reference executor call too.  An op with the
 * scalar attribute f (ops.def) gets it as a literal second argument, so the
 * branches on it fold away at compile time.
 */
#include <stdio.h>

#include "codegen/cg_internal.h"

const char *cg_elementwise_expr(const IrNode *n, char *buf, size_t size) {
  IrOpClass k = ir_op_class(n->op);
  DITC_ASSERT(k == IR_CLASS_UNARY || k == IR_CLASS_BINARY);
  if (n->op == IR_CAST) return NULL;
  if (k == IR_CLASS_BINARY) {
    snprintf(buf, size, "ditc_%s(v0, v1)", ir_op_name(n->op));
  } else if (ir_op_attrs(n->op) & (1u << IR_ATTR_F)) {
    char f[48];
    snprintf(buf, size, "ditc_%s(v0, %s)", ir_op_name(n->op), cg_float_lit(n->attr.f, f));
  } else {
    snprintf(buf, size, "ditc_%s(v0)", ir_op_name(n->op));
  }
  return buf;
}
