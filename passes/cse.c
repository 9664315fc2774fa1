/*
 * cse.c - common subexpression elimination by hash-consing.
 *
 * Nodes are visited in topological order and looked up in a hash table keyed
 * by (op, dtype, shape, inputs, the attributes the op uses).  A node equal to
 * one seen before has its uses redirected to the earlier one; since inputs are
 * merged before their users, whole duplicated subtrees collapse bottom-up in
 * one walk.  Leaves are special: CONSTs are equal when their data is, PARAMs
 * when they bind the same checkpoint name (and default), and INPUTs never
 * merge.  The dropped nodes are removed by ir_graph_dce() at the end.
 */
#include <stdlib.h>
#include <string.h>

#include "passes/passes.h"

static uint64_t mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  return h;
}

static uint64_t hash_bytes(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ULL;
  return h;
}

static size_t data_bytes(const IrNode *n) {
  return (size_t)ir_shape_numel(&n->shape, 1) * ir_dtype_size(n->dtype);
}

static uint64_t float_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

/* conv2d's stride and groups: 0 means 1 (ir/shape.c). */
static int conv_default(int v) { return v ? v : 1; }

/* Hash of the attributes the op uses; must agree with attrs_eq(). */
static uint64_t attrs_hash(const IrNode *n, uint64_t h) {
  const IrAttrs *a = &n->attr;
  switch (n->op) {
  case IR_LAYERNORM:
  case IR_SCALE:
  case IR_ADD_SCALAR:
  case IR_POW_SCALAR:
  case IR_CLAMP_MIN:
    return mix(h, float_bits(a->f));
  case IR_REDUCE_SUM:
  case IR_REDUCE_MEAN:
  case IR_CONCAT:
    return mix(h, (uint64_t)a->axis);
  case IR_TOPK_SOFTMAX:
  case IR_MOE_ROUTE:
  case IR_MOE_GATHER:
    return mix(h, (uint64_t)a->k);
  case IR_MATMUL:
    return mix(h, (uint64_t)a->trans_b);
  case IR_CONV2D:
    return mix(mix(mix(h, (uint64_t)conv_default(a->stride)), (uint64_t)a->pad),
               (uint64_t)conv_default(a->groups));
  case IR_CAST:
    return mix(h, (uint64_t)a->to);
  case IR_AVGPOOL2D:
    return mix(mix(h, (uint64_t)a->out_h), (uint64_t)a->out_w);
  case IR_SLICE:
    return mix(mix(mix(h, (uint64_t)a->axis), (uint64_t)a->start), (uint64_t)a->len);
  case IR_PERMUTE:
    for (int i = 0; i < n->shape.rank; i++) h = mix(h, (uint64_t)a->perm[i]);
    return h;
  case IR_RESHAPE:
    h = mix(h, (uint64_t)a->shape.rank);
    for (int i = 0; i < a->shape.rank; i++) h = mix(h, (uint64_t)a->shape.d[i]);
    return h;
  default:
    return h;
  }
}

static int attrs_eq(const IrNode *x, const IrNode *y) {
  const IrAttrs *a = &x->attr, *b = &y->attr;
  switch (x->op) {
  case IR_LAYERNORM:
  case IR_SCALE:
  case IR_ADD_SCALAR:
  case IR_POW_SCALAR:
  case IR_CLAMP_MIN:
    return float_bits(a->f) == float_bits(b->f);
  case IR_REDUCE_SUM:
  case IR_REDUCE_MEAN:
  case IR_CONCAT:
    return a->axis == b->axis;
  case IR_TOPK_SOFTMAX:
  case IR_MOE_ROUTE:
  case IR_MOE_GATHER:
    return a->k == b->k;
  case IR_MATMUL:
    return a->trans_b == b->trans_b;
  case IR_CONV2D:
    return conv_default(a->stride) == conv_default(b->stride) && a->pad == b->pad &&
           conv_default(a->groups) == conv_default(b->groups);
  case IR_CAST:
    return a->to == b->to;
  case IR_AVGPOOL2D:
    return a->out_h == b->out_h && a->out_w == b->out_w;
  case IR_SLICE:
    return a->axis == b->axis && a->start == b->start && a->len == b->len;
  case IR_PERMUTE:
    return memcmp(a->perm, b->perm, (size_t)x->shape.rank * sizeof a->perm[0]) == 0;
  case IR_RESHAPE:
    return ir_shape_eq(&a->shape, &b->shape);
  default:
    return 1;
  }
}

static uint64_t node_hash(const IrNode *n) {
  uint64_t h = mix(mix(0xcbf29ce484222325ULL, (uint64_t)n->op), (uint64_t)n->dtype);
  h = mix(h, (uint64_t)n->shape.rank);
  for (int i = 0; i < n->shape.rank; i++) h = mix(h, (uint64_t)n->shape.d[i]);
  switch (n->op) {
  case IR_INPUT:
    return mix(h, (uint64_t)n->id); /* never equal to another node */
  case IR_PARAM:
    return n->name ? hash_bytes(h, n->name, strlen(n->name)) : h;
  case IR_CONST:
    return hash_bytes(h, n->data, data_bytes(n));
  default:
    for (int i = 0; i < n->n_in; i++) h = mix(h, (uint64_t)n->in[i]->id);
    return attrs_hash(n, h);
  }
}

static int nodes_eq(const IrNode *a, const IrNode *b) {
  if (a->op != b->op || a->dtype != b->dtype || !ir_shape_eq(&a->shape, &b->shape)) return 0;
  switch (a->op) {
  case IR_INPUT:
    return a == b;
  case IR_PARAM:
    if (!a->name || !b->name || strcmp(a->name, b->name) != 0) return 0;
    if (!a->data || !b->data) return !a->data && !b->data;
    return memcmp(a->data, b->data, data_bytes(a)) == 0;
  case IR_CONST:
    return memcmp(a->data, b->data, data_bytes(a)) == 0;
  default:
    if (a->n_in != b->n_in) return 0;
    for (int i = 0; i < a->n_in; i++)
      if (a->in[i] != b->in[i]) return 0;
    return attrs_eq(a, b);
  }
}

/* The longest common prefix of labels a and b that ends at a '.' or at the
 * end of both ("blocks.0.attn", "blocks.1.attn" -> "blocks"); NULL when they
 * share nothing; the other when one is NULL. */
static const char *shared_label(IrGraph *g, const char *a, const char *b) {
  if (!a || !b) return a ? a : b;
  if (!strcmp(a, b)) return a;
  size_t end = 0;
  for (size_t i = 0; a[i] && a[i] == b[i]; i++)
    if ((a[i + 1] == '.' || !a[i + 1]) && (b[i + 1] == '.' || !b[i + 1])) end = i + 1;
  return end ? arena_printf(&g->arena, "%.*s", (int)end, a) : NULL;
}

int pass_cse(IrGraph *g, const PassOptions *o, IrErr *err) {
  (void)o;
  (void)err;
  size_t cap = 16;
  while (cap < (size_t)g->n_nodes * 2 + 1) cap <<= 1;
  IrNode **table = xcalloc(cap, sizeof *table);
  int merged = 0;
  for (int i = 0; i < g->n_nodes; i++) {
    IrNode *n = g->nodes[i];
    size_t h = (size_t)node_hash(n) & (cap - 1);
    while (table[h] && !nodes_eq(table[h], n)) h = (h + 1) & (cap - 1);
    if (!table[h]) {
      table[h] = n;
      continue;
    }
    /* One node now does the work of both: it keeps the part of the two labels
     * they share (blocks.0 and blocks.1 -> blocks), or the duplicate's label
     * when it had none. */
    if (ir_op_class(n->op) != IR_CLASS_LEAF) table[h]->name = shared_label(g, table[h]->name, n->name);
    ir_replace_all_uses(g, n, table[h]);
    merged++;
  }
  free(table);
  if (merged) ir_graph_dce(g);
  return 0;
}
