/*
 * attrs.c - op attributes, driven by ops.def: how they print, compare, hash
 * and are checked.
 *
 * The ATTR rows give each attribute its IrAttrs field and kind; the ATTRS
 * column of the X rows says which attributes an op uses.  Everything else
 * here is one loop over an op's attributes with a switch on the kind, so the
 * dump, CSE and the verifier cannot disagree about an op: a new op's
 * attributes are its row, and an op without a row entry has none (CSE then
 * compares nothing, and the verifier makes sure nothing is there).
 */
#include <string.h>

#include "ir/ir.h"

/* A pointer to each kind's field type: ops.def's rows are checked against
 * IrAttrs at compile time. */
#define IR_ATTR_PTR_FLOAT float *
#define IR_ATTR_PTR_INT int *
#define IR_ATTR_PTR_INT1 int *
#define IR_ATTR_PTR_FLAG int *
#define IR_ATTR_PTR_DIM IrDim *
#define IR_ATTR_PTR_PERM int(*)[IR_MAX_RANK]
#define IR_ATTR_PTR_SHAPE IrShape *
#define IR_ATTR_PTR_DTYPE IrDType *

#define ATTR(key, name, field, kind, doc)                                                  \
  _Static_assert(_Generic(&((IrAttrs *)0)->field, IR_ATTR_PTR_##kind: 1, default: 0),     \
                 "ops.def: attribute " name " is not of kind " #kind);
#include "ir/ops.def"
#undef ATTR

static const IrAttrInfo attrs[IR_ATTR_COUNT] = {
#define ATTR(key, name, field, kind, doc) \
  [IR_ATTR_##key] = {name, offsetof(IrAttrs, field), sizeof(((IrAttrs *)0)->field), IR_ATTR_KIND_##kind, doc},
#include "ir/ops.def"
#undef ATTR
};

static const unsigned op_attrs[IR_OP_COUNT] = {
#define X(e, name, arity, cls, at, doc) [IR_##e] = at,
#include "ir/ops.def"
#undef X
};

const IrAttrInfo *ir_attr_info(IrAttrKey k) { return &attrs[k]; }
unsigned ir_op_attrs(IrOp op) { return (unsigned)op < IR_OP_COUNT ? op_attrs[op] : 0; }

/* Field access by kind. */
static const void *field(const IrNode *n, IrAttrKey k) { return (const char *)&n->attr + attrs[k].offset; }
static int int_of(const IrNode *n, IrAttrKey k) {
  int v;
  memcpy(&v, field(n, k), sizeof v);
  return attrs[k].kind == IR_ATTR_KIND_INT1 && v == 0 ? 1 : v;
}
static float float_of(const IrNode *n, IrAttrKey k) {
  float v;
  memcpy(&v, field(n, k), sizeof v);
  return v;
}
static uint32_t float_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}
/* PERM: the entries that mean something, one per axis of the node. */
static int perm_len(const IrNode *n) {
  return n->shape.rank >= 0 && n->shape.rank <= IR_MAX_RANK ? n->shape.rank : 0;
}

#define FOR_ATTRS(n, k)                                         \
  for (unsigned set_ = ir_op_attrs((n)->op), k = 0; k < IR_ATTR_COUNT; k++) \
    if (set_ >> k & 1u)

void ir_attrs_print(FILE *out, const IrNode *n) {
  int shown = 0;
  FOR_ATTRS(n, k) {
    const IrAttrInfo *at = &attrs[k];
    if (at->kind == IR_ATTR_KIND_FLAG && !int_of(n, (IrAttrKey)k)) continue;
    fprintf(out, "%s%s=", shown++ ? ", " : " {", at->name);
    char buf[32];
    switch (at->kind) {
    case IR_ATTR_KIND_FLOAT: fprintf(out, "%g", float_of(n, (IrAttrKey)k)); break;
    case IR_ATTR_KIND_INT:
    case IR_ATTR_KIND_INT1:
    case IR_ATTR_KIND_FLAG: fprintf(out, "%d", int_of(n, (IrAttrKey)k)); break;
    case IR_ATTR_KIND_DIM: {
      IrDim d;
      memcpy(&d, field(n, (IrAttrKey)k), sizeof d);
      fputs(ir_dim_str(d, buf, sizeof buf), out);
      break;
    }
    case IR_ATTR_KIND_PERM: {
      const int *p = field(n, (IrAttrKey)k);
      fputc('[', out);
      for (int i = 0; i < perm_len(n); i++) fprintf(out, "%s%d", i ? "," : "", p[i]);
      fputc(']', out);
      break;
    }
    case IR_ATTR_KIND_SHAPE: {
      const IrShape *s = field(n, (IrAttrKey)k);
      fputc('[', out);
      for (int i = 0; i < s->rank && i < IR_MAX_RANK; i++)
        fprintf(out, "%s%s", i ? "," : "", ir_dim_str(s->d[i], buf, sizeof buf));
      fputc(']', out);
      break;
    }
    case IR_ATTR_KIND_DTYPE: {
      IrDType t;
      memcpy(&t, field(n, (IrAttrKey)k), sizeof t);
      fputs(ir_dtype_name(t), out);
      break;
    }
    }
  }
  if (shown) fputc('}', out);
}

int ir_attrs_eq(const IrNode *x, const IrNode *y) {
  if (x->op != y->op) return 0;
  FOR_ATTRS(x, k) {
    const void *a = field(x, (IrAttrKey)k), *b = field(y, (IrAttrKey)k);
    switch (attrs[k].kind) {
    case IR_ATTR_KIND_FLOAT:
      if (float_bits(float_of(x, (IrAttrKey)k)) != float_bits(float_of(y, (IrAttrKey)k))) return 0;
      break;
    case IR_ATTR_KIND_INT:
    case IR_ATTR_KIND_INT1:
    case IR_ATTR_KIND_FLAG:
      if (int_of(x, (IrAttrKey)k) != int_of(y, (IrAttrKey)k)) return 0;
      break;
    case IR_ATTR_KIND_PERM:
      if (perm_len(x) != perm_len(y) || memcmp(a, b, (size_t)perm_len(x) * sizeof(int))) return 0;
      break;
    case IR_ATTR_KIND_SHAPE:
      if (!ir_shape_eq(a, b)) return 0;
      break;
    case IR_ATTR_KIND_DIM:
    case IR_ATTR_KIND_DTYPE:
      if (memcmp(a, b, attrs[k].size)) return 0;
      break;
    }
  }
  return 1;
}

static uint64_t mix(uint64_t h, uint64_t v) { return (h ^ v) * 0x100000001b3ULL; }

uint64_t ir_attrs_hash(const IrNode *n) {
  uint64_t h = 0xcbf29ce484222325ULL;
  FOR_ATTRS(n, k) {
    const void *p = field(n, (IrAttrKey)k);
    h = mix(h, k);
    switch (attrs[k].kind) {
    case IR_ATTR_KIND_FLOAT: h = mix(h, float_bits(float_of(n, (IrAttrKey)k))); break;
    case IR_ATTR_KIND_INT:
    case IR_ATTR_KIND_INT1:
    case IR_ATTR_KIND_FLAG: h = mix(h, (uint64_t)(int64_t)int_of(n, (IrAttrKey)k)); break;
    case IR_ATTR_KIND_PERM:
      for (int i = 0; i < perm_len(n); i++) h = mix(h, (uint64_t)(int64_t)((const int *)p)[i]);
      break;
    case IR_ATTR_KIND_SHAPE: {
      const IrShape *s = p;
      h = mix(h, (uint64_t)(int64_t)s->rank);
      for (int i = 0; i < s->rank && i < IR_MAX_RANK; i++) h = mix(h, (uint64_t)s->d[i]);
      break;
    }
    case IR_ATTR_KIND_DIM: {
      IrDim d;
      memcpy(&d, p, sizeof d);
      h = mix(h, (uint64_t)d);
      break;
    }
    case IR_ATTR_KIND_DTYPE: {
      IrDType t;
      memcpy(&t, p, sizeof t);
      h = mix(h, (uint64_t)t);
      break;
    }
    }
  }
  return h;
}

static int all_zero(const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++)
    if (b[i]) return 0;
  return 1;
}

/* The attributes whose fields op's attributes live in (eps and f share one). */
static unsigned used_fields(IrOp op) {
  unsigned used = 0, set = ir_op_attrs(op);
  for (unsigned k = 0; k < IR_ATTR_COUNT; k++)
    for (unsigned j = 0; j < IR_ATTR_COUNT; j++)
      if ((set >> j & 1u) && attrs[j].offset == attrs[k].offset) used |= 1u << k;
  return used;
}

void ir_attrs_keep_used(IrOp op, IrAttrs *a) {
  unsigned used = used_fields(op);
  for (unsigned k = 0; k < IR_ATTR_COUNT; k++)
    if (!(used >> k & 1u)) memset((char *)a + attrs[k].offset, 0, attrs[k].size);
}

int ir_attrs_check(const IrNode *n, IrErr *err) {
  unsigned used_field = used_fields(n->op), set = ir_op_attrs(n->op);
  for (unsigned k = 0; k < IR_ATTR_COUNT; k++) {
    const IrAttrInfo *at = &attrs[k];
    const void *p = field(n, (IrAttrKey)k);
    if (!(used_field >> k & 1u)) {
      if (!all_zero(p, at->size))
        return ir_errf(err, "attribute %s is set, but %s does not use it", at->name, ir_op_name(n->op));
      continue;
    }
    if (!(set >> k & 1u)) continue;
    if (at->kind == IR_ATTR_KIND_DTYPE) {
      IrDType t;
      memcpy(&t, p, sizeof t);
      if ((unsigned)t >= IR_DTYPE_COUNT) return ir_errf(err, "attribute %s: invalid dtype %d", at->name, (int)t);
    } else if (at->kind == IR_ATTR_KIND_SHAPE) {
      const IrShape *s = p;
      if (s->rank < 0 || s->rank > IR_MAX_RANK) return ir_errf(err, "attribute %s: invalid rank %d", at->name, s->rank);
    }
  }
  return 0;
}
