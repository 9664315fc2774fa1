/*
 * cse.c - common subexpression elimination by hash-consing.
 *
 * Nodes are visited in topological order and looked up in a hash table keyed
 * by (op, dtype, shape, inputs, the attributes the op uses: exactly those
 * ops.def lists, compared as their kinds say, ir_attrs_eq).  A node equal to
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
    return mix(h, ir_attrs_hash(n));
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
    return ir_attrs_eq(a, b);
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
