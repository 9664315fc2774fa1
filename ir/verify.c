/*
 * verify.c - ir_verify(): the structural check run between passes.
 *
 * One walk over g->nodes in order.  A pointer -> position table, built first,
 * answers "is this input in the graph, and where" without dereferencing a
 * pointer that may dangle, so the order check (every input comes before its
 * user) catches cycles and stray nodes alike.  Each non-leaf node's dtype and
 * shape are re-inferred with ir_infer() and compared with what is stored, so a
 * pass that rewires a node without fixing its type is caught right after it
 * runs.  The attributes are checked against ops.def (ir_attrs_check): a field
 * the op does not use must be zero, since neither the dump nor CSE looks at
 * it.  Messages name the node the way the dump does: %<position> (op, label).
 */
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"

/* Open-addressing map from node pointer to position in g->nodes. */
typedef struct {
  const IrNode **keys;
  int *pos;
  size_t mask;
} PosMap;

static size_t ptr_hash(const void *p) {
  uint64_t x = (uint64_t)(uintptr_t)p;
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  return (size_t)x;
}

static void posmap_init(PosMap *m, int n) {
  size_t cap = 16;
  while (cap < (size_t)n * 2 + 1) cap <<= 1;
  m->keys = xcalloc(cap, sizeof *m->keys);
  m->pos = xcalloc(cap, sizeof *m->pos);
  m->mask = cap - 1;
}

static void posmap_free(PosMap *m) {
  free(m->keys);
  free(m->pos);
}

/* Returns the position already stored for p, or stores pos and returns -1. */
static int posmap_put(PosMap *m, const IrNode *p, int pos) {
  size_t h = ptr_hash(p) & m->mask;
  while (m->keys[h]) {
    if (m->keys[h] == p) return m->pos[h];
    h = (h + 1) & m->mask;
  }
  m->keys[h] = p;
  m->pos[h] = pos;
  return -1;
}

static int posmap_get(const PosMap *m, const IrNode *p) {
  size_t h = ptr_hash(p) & m->mask;
  while (m->keys[h]) {
    if (m->keys[h] == p) return m->pos[h];
    h = (h + 1) & m->mask;
  }
  return -1;
}

/* "%12 (linear, blocks.0.attn.qkv)" */
static const char *node_desc(const IrNode *n, int pos, char *buf, size_t len) {
  const char *op = (unsigned)n->op < IR_OP_COUNT ? ir_op_name(n->op) : "?";
  if (n->name && n->name[0])
    snprintf(buf, len, "%%%d (%s, %s)", pos, op, n->name);
  else
    snprintf(buf, len, "%%%d (%s)", pos, op);
  return buf;
}

static int shape_is_fixed(const IrShape *s) {
  for (int i = 0; i < s->rank; i++)
    if (ir_dim_is_sym(s->d[i])) return 0;
  return 1;
}

/* A fixed arity is the op table's; a variadic op's range is its shape rule's
 * (ir_infer, run by check_types), so only a count no op allows is caught here. */
static int check_arity(const IrNode *n, const char *desc, IrErr *err) {
  int a = ir_op_arity(n->op);
  if (a >= 0 && n->n_in != a) return ir_errf(err, "%s: has %d inputs, the op takes %d", desc, n->n_in, a);
  if (n->n_in < 0) return ir_errf(err, "%s: negative input count %d", desc, n->n_in);
  return 0;
}

static int check_leaf(const IrNode *n, const char *desc, IrErr *err) {
  char sb[128];
  switch (n->op) {
  case IR_INPUT:
  case IR_PARAM:
    if (!n->name || !n->name[0]) return ir_errf(err, "%s: %s without a name", desc, ir_op_name(n->op));
    if (n->op == IR_PARAM && !shape_is_fixed(&n->shape))
      return ir_errf(err, "%s: param shape %s depends on the batch", desc,
                     ir_shape_str(&n->shape, sb, sizeof sb));
    return 0;
  case IR_CONST:
    if (!n->data) return ir_errf(err, "%s: const without data", desc);
    if (!shape_is_fixed(&n->shape))
      return ir_errf(err, "%s: const shape %s depends on the batch", desc,
                     ir_shape_str(&n->shape, sb, sizeof sb));
    if (n->dtype != IR_F32 && n->dtype != IR_I32)
      return ir_errf(err, "%s: const of dtype %s (only f32 and i32 are supported)", desc,
                     ir_dtype_name(n->dtype));
    return 0;
  default:
    ditc_unreachable();
  }
}

/* Re-infer dtype and shape from the inputs and compare with the stored ones.
 * The out-parameters start as the stored values: CAST reads its target dtype
 * from there. */
static int check_types(IrNode *n, const char *desc, IrErr *err) {
  IrShape shape = n->shape;
  IrDType dtype = n->dtype;
  IrErr ierr = {{0}};
  if (ir_infer(n->op, n->n_in, n->in, &n->attr, &shape, &dtype, &ierr))
    return ir_errf(err, "%s: %s", desc, ierr.msg);
  if (dtype != n->dtype)
    return ir_errf(err, "%s: stored dtype %s but inputs give %s", desc, ir_dtype_name(n->dtype),
                   ir_dtype_name(dtype));
  if (!ir_shape_eq(&shape, &n->shape)) {
    char a[128], b[128];
    return ir_errf(err, "%s: stored shape %s but inputs give %s", desc,
                   ir_shape_str(&n->shape, a, sizeof a), ir_shape_str(&shape, b, sizeof b));
  }
  return 0;
}

static int check_node(IrGraph *g, const PosMap *m, int i, IrErr *err) {
  IrNode *n = g->nodes[i];
  char desc[256];
  if ((unsigned)n->op >= IR_OP_COUNT) return ir_errf(err, "%%%d: invalid op %d", i, (int)n->op);
  node_desc(n, i, desc, sizeof desc);
  if (n->index != i) return ir_errf(err, "%s: index field is %d, position is %d", desc, n->index, i);
  if ((unsigned)n->dtype >= IR_DTYPE_COUNT) return ir_errf(err, "%s: invalid dtype %d", desc, (int)n->dtype);
  if (n->shape.rank < 0 || n->shape.rank > IR_MAX_RANK)
    return ir_errf(err, "%s: invalid rank %d", desc, n->shape.rank);
  if (check_arity(n, desc, err)) return -1;
  IrErr aerr = {{0}};
  if (ir_attrs_check(n, &aerr)) return ir_errf(err, "%s: %s", desc, aerr.msg);
  if (n->n_in > 0 && !n->in) return ir_errf(err, "%s: input array missing", desc);
  for (int j = 0; j < n->n_in; j++) {
    if (!n->in[j]) return ir_errf(err, "%s: input %d is null", desc, j);
    int p = posmap_get(m, n->in[j]);
    if (p < 0) return ir_errf(err, "%s: input %d is not a node of the graph", desc, j);
    if (p >= i)
      return ir_errf(err, "%s: input %d is %%%d, which does not come before it (cycle or order)",
                     desc, j, p);
  }
  if (ir_op_class(n->op) == IR_CLASS_LEAF) return check_leaf(n, desc, err);
  return check_types(n, desc, err);
}

static int check_input_names(IrGraph *g, IrErr *err) {
  for (int i = 0; i < g->n_nodes; i++) {
    IrNode *a = g->nodes[i];
    if (a->op != IR_INPUT) continue;
    for (int j = 0; j < i; j++) {
      IrNode *b = g->nodes[j];
      if (b->op == IR_INPUT && strcmp(a->name, b->name) == 0) {
        char desc[256];
        return ir_errf(err, "%s: input name \"%s\" is already used by %%%d", node_desc(a, i, desc, sizeof desc),
                       a->name, j);
      }
    }
  }
  return 0;
}

int ir_verify(IrGraph *g, IrErr *err) {
  if (!g) return ir_errf(err, "no graph");
  if (g->n_nodes < 0 || (g->n_nodes > 0 && !g->nodes)) return ir_errf(err, "graph: bad node list");
  PosMap m;
  posmap_init(&m, g->n_nodes);
  unsigned char *seen = xcalloc((size_t)(g->next_id > 0 ? g->next_id : 1), 1);
  int rc = 0;
  for (int i = 0; i < g->n_nodes && !rc; i++) {
    IrNode *n = g->nodes[i];
    if (!n) {
      rc = ir_errf(err, "%%%d: null node", i);
      break;
    }
    char desc[256];
    node_desc(n, i, desc, sizeof desc);
    int prev = posmap_put(&m, n, i);
    if (prev >= 0) rc = ir_errf(err, "%s: the same node is also at %%%d", desc, prev);
    else if (n->id < 0 || n->id >= g->next_id)
      rc = ir_errf(err, "%s: id %d outside [0, %d)", desc, n->id, g->next_id);
    else if (seen[n->id])
      rc = ir_errf(err, "%s: id %d is used twice", desc, n->id);
    else
      seen[n->id] = 1;
  }
  for (int i = 0; i < g->n_nodes && !rc; i++) rc = check_node(g, &m, i, err);
  if (!rc) rc = check_input_names(g, err);
  if (!rc && g->n_outputs <= 0) rc = ir_errf(err, "graph %s: no outputs", g->name ? g->name : "?");
  for (int k = 0; k < g->n_outputs && !rc; k++) {
    const char *oname = g->output_names && g->output_names[k] ? g->output_names[k] : "?";
    if (!g->outputs[k]) rc = ir_errf(err, "output %d \"%s\" is null", k, oname);
    else if (posmap_get(&m, g->outputs[k]) < 0)
      rc = ir_errf(err, "output %d \"%s\" is not a node of the graph", k, oname);
  }
  free(seen);
  posmap_free(&m);
  return rc;
}
