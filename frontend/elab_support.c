/*
 * elab_support.c - what every part of elaboration uses: errors (with the
 * calls in progress as notes), budgeted memory, describing values, and
 * making IR nodes with the source location and the parameter scope as label.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/elab.h"

/* Where an error inside functions came from: the calls in progress,
 * innermost first (a few; deep recursion is summarised). */
static void call_notes(Elab *e) {
  enum { SHOWN = 4 };
  for (int i = e->depth - 1, k = 0; i >= 0; i--, k++) {
    const AstNode *c = e->calls[i];
    if (k == SHOWN && i > 0) {
      fe_note(e->diag, e->src, c->loc.line, c->loc.col, "... and %d more calls", i + 1);
      break;
    }
    fe_note(e->diag, e->src, c->loc.line, c->loc.col, "in the call of '%s' here", c->s);
  }
}

void el_error(Elab *e, AstLoc loc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fe_verror(e->diag, e->src, loc.line, loc.col, fmt, ap);
  va_end(ap);
  call_notes(e);
  if (e->diag->stop) e->fatal = 1;
}

void el_fatal(Elab *e, AstLoc loc, const char *fmt, ...) {
  if (e->fatal) return;
  va_list ap;
  va_start(ap, fmt);
  fe_verror(e->diag, e->src, loc.line, loc.col, fmt, ap);
  va_end(ap);
  call_notes(e);
  e->fatal = 1;
}

void *el_alloc(Elab *e, AstLoc loc, size_t n) {
  if (n > EL_MAX_VALUE_BYTES || e->bytes + n > EL_MAX_VALUE_BYTES) {
    el_fatal(e, loc, "compile-time values need more than %zu MiB: stopping",
             EL_MAX_VALUE_BYTES >> 20);
    return NULL;
  }
  e->bytes += n;
  return arena_alloc(&e->arena, n);
}

ElList *el_list_new(Elab *e, AstLoc loc, int n) {
  if (n < 0) n = 0;
  ElList *l = el_alloc(e, loc, sizeof(ElList) + (size_t)n * sizeof(Value));
  if (l) l->n = n;
  return l;
}

const char *el_kind_name(VKind k) {
  switch (k) {
  case V_UNSET: return "nothing";
  case V_POISON: return "an error";
  case V_NONE: return "none";
  case V_INT: return "int";
  case V_FLOAT: return "float";
  case V_BOOL: return "bool";
  case V_STR: return "str";
  case V_LIST: return "list";
  case V_DIM: return "dim";
  case V_TENSOR: return "tensor";
  case V_FN: return "function";
  }
  return "?";
}

const char *el_describe(Elab *e, Value v) {
  char buf[160];
  switch (v.k) {
  case V_TENSOR:
    return arena_printf(&e->arena, "tensor %s%s", ir_dtype_name(v.t->dtype),
                        ir_shape_str(&v.t->shape, buf, sizeof buf));
  case V_LIST: return arena_printf(&e->arena, "list of %d", v.l->n);
  case V_DIM: return arena_printf(&e->arena, "dim %s", ir_dim_str(v.i, buf, sizeof buf));
  default: return el_kind_name(v.k);
  }
}

IrLoc el_irloc(Elab *e, AstLoc loc) { return (IrLoc){e->file, loc.line, loc.col}; }

int el_check_nodes(Elab *e, AstLoc loc) {
  if (e->g->n_nodes < EL_MAX_NODES) return 0;
  el_fatal(e, loc, "the graph has more than %d nodes: stopping", EL_MAX_NODES);
  return -1;
}

/* The scope as a node label, copied into the graph once per scope string. */
static const char *scope_label(Elab *e) {
  if (!e->scope[0]) return NULL;
  if (e->label_of != e->scope) {
    e->label_of = e->scope;
    e->label_copy = arena_strdup(&e->g->arena, e->scope);
  }
  return e->label_copy;
}

Value el_node(Elab *e, AstLoc loc, IrOp op, int n_in, IrNode *const *in, const IrAttrs *at) {
  if (el_check_nodes(e, loc)) return el_poison();
  /* wide nodes (concat of many inputs) are memory too */
  size_t in_bytes = (size_t)n_in * sizeof(IrNode *);
  if (n_in > 3 && !el_alloc(e, loc, in_bytes)) return el_poison();
  IrErr err;
  IrNode *n = ir_node_new(e->g, op, n_in, in, at, el_irloc(e, loc), &err);
  if (!n) {
    el_error(e, loc, "%s", err.msg);
    return el_poison();
  }
  n->name = scope_label(e);
  return el_tensor(n);
}

Value el_const_f32(Elab *e, AstLoc loc, IrShape s, const float *data) {
  if (el_check_nodes(e, loc)) return el_poison();
  IrNode *n = ir_const(e->g, IR_F32, s, data, el_irloc(e, loc));
  n->name = scope_label(e);
  return el_tensor(n);
}

/* Guards the recursion: the C stack, not only the call depth, is bounded. */
