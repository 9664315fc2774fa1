/*
 * graph.c - IR graphs: dtypes and shapes, the op table, node creation, graph
 * surgery (replace uses, topological sort, dead-code removal) and the
 * analyses passes and backends share (use counts, weight-only nodes).
 *
 * Nodes are created in topological order by construction (inputs exist before
 * their users).  Passes that append or rewire nodes call ir_graph_toposort()
 * to restore it; `index` always mirrors a node's position.
 */
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"

/* ---- dtypes -------------------------------------------------------------- */

static const struct {
  const char *name;
  size_t size;
  int is_float;
} dtypes[IR_DTYPE_COUNT] = {
    [IR_F32] = {"f32", 4, 1}, [IR_F16] = {"f16", 2, 1}, [IR_BF16] = {"bf16", 2, 1},
    [IR_I8] = {"i8", 1, 0},   [IR_I32] = {"i32", 4, 0},
    [IR_E4M3] = {"e4m3", 1, 0},
};

const char *ir_dtype_name(IrDType t) { return (unsigned)t < IR_DTYPE_COUNT ? dtypes[t].name : "?"; }
size_t ir_dtype_size(IrDType t) { return (unsigned)t < IR_DTYPE_COUNT ? dtypes[t].size : 0; }
int ir_dtype_is_float(IrDType t) { return (unsigned)t < IR_DTYPE_COUNT && dtypes[t].is_float; }

int ir_dtype_parse(const char *s, IrDType *out) {
  for (int i = 0; i < IR_DTYPE_COUNT; i++)
    if (!strcmp(s, dtypes[i].name)) {
      *out = (IrDType)i;
      return 0;
    }
  return -1;
}

/* ---- shapes -------------------------------------------------------------- */

char *ir_dim_str(IrDim d, char *buf, size_t n) {
  if (d >= 0)
    snprintf(buf, n, "%lld", (long long)d);
  else if (d == -1)
    snprintf(buf, n, "B");
  else
    snprintf(buf, n, "%lldB", (long long)-d);
  return buf;
}

char *ir_shape_str(const IrShape *s, char *buf, size_t n) {
  size_t used = 0;
  used += (size_t)snprintf(buf, n, "[");
  for (int i = 0; i < s->rank && used < n; i++) {
    char d[32];
    used += (size_t)snprintf(buf + used, n - used, "%s%s", i ? ", " : "", ir_dim_str(s->d[i], d, sizeof d));
  }
  if (used < n) snprintf(buf + used, n - used, "]");
  return buf;
}

int ir_shape_eq(const IrShape *a, const IrShape *b) {
  if (a->rank != b->rank) return 0;
  for (int i = 0; i < a->rank; i++)
    if (a->d[i] != b->d[i]) return 0;
  return 1;
}

int64_t ir_shape_numel(const IrShape *s, int64_t batch) {
  int64_t n = 1;
  for (int i = 0; i < s->rank; i++) n *= ir_dim_eval(s->d[i], batch);
  return n;
}

int ir_shape_count(const IrShape *s, int64_t *fixed, int *sym) {
  int64_t f = 1;
  *sym = 0;
  for (int i = 0; i < s->rank; i++) {
    int64_t d = s->d[i];
    if (d < 0) {
      (*sym)++;
      d = -d;
    }
    if (__builtin_mul_overflow(f, d, &f)) return -1;
  }
  *fixed = f;
  return 0;
}

IrShape ir_shape_make(int rank, const IrDim *d) {
  IrShape s = {0};
  DITC_ASSERT(rank >= 0 && rank <= IR_MAX_RANK);
  s.rank = rank;
  for (int i = 0; i < rank; i++) s.d[i] = d[i];
  return s;
}

/* ---- the op table -------------------------------------------------------- */

static const struct {
  const char *name;
  int arity;
  IrOpClass cls;
  const char *doc;
} ops[IR_OP_COUNT] = {
#define X(e, name, arity, cls, attrs, doc) [IR_##e] = {name, arity, IR_CLASS_##cls, doc},
#include "ir/ops.def"
#undef X
};

const char *ir_op_name(IrOp op) { return (unsigned)op < IR_OP_COUNT ? ops[op].name : "?"; }
int ir_op_arity(IrOp op) { return ops[op].arity; }
IrOpClass ir_op_class(IrOp op) { return ops[op].cls; }
const char *ir_op_doc(IrOp op) { return ops[op].doc; }

/* Both lists of ops.def: the ops with their columns, then the attributes. */
void ir_ops_print(FILE *out) {
  static const char *const cls[] = {"leaf", "unary", "binary", "other"};
  static const char *const kind[] = {[IR_ATTR_KIND_FLOAT] = "float", [IR_ATTR_KIND_INT] = "int",
                                     [IR_ATTR_KIND_INT1] = "int, 0 means 1", [IR_ATTR_KIND_FLAG] = "flag",
                                     [IR_ATTR_KIND_DIM] = "dim", [IR_ATTR_KIND_PERM] = "permutation",
                                     [IR_ATTR_KIND_SHAPE] = "shape", [IR_ATTR_KIND_DTYPE] = "dtype"};
  fprintf(out, "%-20s %-6s %-7s %-18s %s\n", "op", "inputs", "class", "attributes", "semantics");
  for (int i = 0; i < IR_OP_COUNT; i++) {
    char ar[16], at[128] = "-";
    snprintf(ar, sizeof ar, ops[i].arity < 0 ? "any" : "%d", ops[i].arity);
    size_t used = 0;
    for (int k = 0; k < IR_ATTR_COUNT; k++)
      if (ir_op_attrs((IrOp)i) >> k & 1u)
        used += (size_t)snprintf(at + used, sizeof at - used, "%s%s", used ? "," : "", ir_attr_info((IrAttrKey)k)->name);
    fprintf(out, "%-20s %-6s %-7s %-18s %s\n", ops[i].name, ar, cls[ops[i].cls], at, ops[i].doc);
  }
  fprintf(out, "\n%-20s %-15s %s\n", "attribute", "kind", "meaning");
  for (int k = 0; k < IR_ATTR_COUNT; k++) {
    const IrAttrInfo *a = ir_attr_info((IrAttrKey)k);
    fprintf(out, "%-20s %-15s %s\n", a->name, kind[a->kind], a->doc);
  }
}

int ir_op_parse(const char *name, IrOp *out) {
  for (int i = 0; i < IR_OP_COUNT; i++)
    if (!strcmp(name, ops[i].name)) {
      *out = (IrOp)i;
      return 0;
    }
  return -1;
}

/* ---- graphs -------------------------------------------------------------- */

IrGraph *ir_graph_new(const char *name) {
  IrGraph *g = xcalloc(1, sizeof *g);
  g->name = arena_strdup(&g->arena, name ? name : "graph");
  return g;
}

void ir_graph_free(IrGraph *g) {
  if (!g) return;
  free(g->nodes);
  free(g->outputs);
  free(g->output_names);
  arena_free(&g->arena);
  free(g);
}

static void append(IrGraph *g, IrNode *n) {
  if (g->n_nodes == g->cap_nodes) {
    g->cap_nodes = g->cap_nodes ? 2 * g->cap_nodes : 256;
    g->nodes = xrealloc(g->nodes, (size_t)g->cap_nodes * sizeof *g->nodes);
  }
  n->index = g->n_nodes;
  g->nodes[g->n_nodes++] = n;
}

static IrNode *node_alloc(IrGraph *g, IrOp op, int n_in, IrNode *const *in, IrLoc loc) {
  IrNode *n = arena_alloc(&g->arena, sizeof *n);
  n->id = g->next_id++;
  n->op = op;
  n->n_in = n_in;
  n->in = n_in ? arena_alloc(&g->arena, (size_t)n_in * sizeof *n->in) : NULL;
  for (int i = 0; i < n_in; i++) n->in[i] = in[i];
  n->loc = loc;
  return n;
}

static int collect(IrGraph *g, IrOp op, IrNode ***out) {
  int n = 0;
  for (int i = 0; i < g->n_nodes; i++) n += g->nodes[i]->op == op;
  IrNode **v = arena_alloc(&g->arena, (size_t)(n ? n : 1) * sizeof *v);
  n = 0;
  for (int i = 0; i < g->n_nodes; i++)
    if (g->nodes[i]->op == op) v[n++] = g->nodes[i];
  *out = v;
  return n;
}

int ir_graph_inputs(IrGraph *g, IrNode ***out) { return collect(g, IR_INPUT, out); }
int ir_graph_params(IrGraph *g, IrNode ***out) { return collect(g, IR_PARAM, out); }

IrNode *ir_graph_find_input(IrGraph *g, const char *name) {
  for (int i = 0; i < g->n_nodes; i++)
    if (g->nodes[i]->op == IR_INPUT && !strcmp(g->nodes[i]->name, name)) return g->nodes[i];
  return NULL;
}

void ir_graph_add_output(IrGraph *g, IrNode *n, const char *name) {
  g->outputs = xrealloc(g->outputs, (size_t)(g->n_outputs + 1) * sizeof *g->outputs);
  g->output_names = xrealloc(g->output_names, (size_t)(g->n_outputs + 1) * sizeof *g->output_names);
  g->outputs[g->n_outputs] = n;
  g->output_names[g->n_outputs] = arena_strdup(&g->arena, name);
  g->n_outputs++;
}

/* ---- building ------------------------------------------------------------ */

IrNode *ir_node_new(IrGraph *g, IrOp op, int n_in, IrNode *const *in, const IrAttrs *attr,
                    IrLoc loc, IrErr *err) {
  IrAttrs none = {0};
  IrShape shape;
  IrDType dtype;
  if (!attr) attr = &none;
  if (ir_infer(op, n_in, in, attr, &shape, &dtype, err)) return NULL;
  IrNode *n = node_alloc(g, op, n_in, in, loc);
  n->attr = *attr;
  ir_attrs_keep_used(op, &n->attr);
  n->shape = shape;
  n->dtype = dtype;
  append(g, n);
  return n;
}

static IrNode *leaf(IrGraph *g, IrOp op, const char *name, IrDType t, IrShape s, IrLoc loc) {
  IrNode *n = node_alloc(g, op, 0, NULL, loc);
  n->name = name ? arena_strdup(&g->arena, name) : NULL;
  n->dtype = t;
  n->shape = s;
  append(g, n);
  return n;
}

IrNode *ir_input(IrGraph *g, const char *name, IrDType t, IrShape s, IrLoc loc) {
  return leaf(g, IR_INPUT, name, t, s, loc);
}

IrNode *ir_param(IrGraph *g, const char *name, IrDType t, IrShape s, IrLoc loc) {
  return leaf(g, IR_PARAM, name, t, s, loc);
}

IrNode *ir_const(IrGraph *g, IrDType t, IrShape s, const void *data, IrLoc loc) {
  DITC_ASSERT(t == IR_F32 || t == IR_I32);
  for (int i = 0; i < s.rank; i++) DITC_ASSERT(s.d[i] >= 0);
  IrNode *n = leaf(g, IR_CONST, NULL, t, s, loc);
  size_t bytes = (size_t)ir_shape_numel(&s, 1) * ir_dtype_size(t);
  n->data = arena_alloc(&g->arena, bytes);
  memcpy(n->data, data, bytes);
  return n;
}

static IrNode *must(IrNode *n, IrErr *err, IrOp op) {
  if (!n) ditc_fatal(__FILE__, __LINE__, "building %s: %s", ir_op_name(op), err->msg);
  return n;
}

static IrLoc noloc(void) { return (IrLoc){0}; }

IrNode *ir_un(IrGraph *g, IrOp op, IrNode *x) {
  IrErr e;
  return must(ir_node_new(g, op, 1, &x, NULL, noloc(), &e), &e, op);
}

IrNode *ir_bin(IrGraph *g, IrOp op, IrNode *a, IrNode *b) {
  IrErr e;
  IrNode *in[2] = {a, b};
  return must(ir_node_new(g, op, 2, in, NULL, noloc(), &e), &e, op);
}

IrNode *ir_op1f(IrGraph *g, IrOp op, IrNode *x, float f) {
  IrErr e;
  IrAttrs a = {.f = f};
  return must(ir_node_new(g, op, 1, &x, &a, noloc(), &e), &e, op);
}

IrNode *ir_linear(IrGraph *g, IrNode *x, IrNode *w, IrNode *b) {
  IrErr e;
  IrNode *in[3] = {x, w, b};
  return must(ir_node_new(g, IR_LINEAR, b ? 3 : 2, in, NULL, noloc(), &e), &e, IR_LINEAR);
}

IrNode *ir_matmul(IrGraph *g, IrNode *a, IrNode *b, int trans_b) {
  IrErr e;
  IrNode *in[2] = {a, b};
  IrAttrs at = {.trans_b = trans_b};
  return must(ir_node_new(g, IR_MATMUL, 2, in, &at, noloc(), &e), &e, IR_MATMUL);
}

IrNode *ir_reshape(IrGraph *g, IrNode *x, int rank, const IrDim *d) {
  IrErr e;
  IrAttrs at = {.shape = ir_shape_make(rank, d)};
  return must(ir_node_new(g, IR_RESHAPE, 1, &x, &at, noloc(), &e), &e, IR_RESHAPE);
}

IrNode *ir_permute(IrGraph *g, IrNode *x, const int *perm) {
  IrErr e;
  IrAttrs at = {0};
  for (int i = 0; i < x->shape.rank; i++) at.perm[i] = perm[i];
  return must(ir_node_new(g, IR_PERMUTE, 1, &x, &at, noloc(), &e), &e, IR_PERMUTE);
}

IrNode *ir_slice(IrGraph *g, IrNode *x, int axis, IrDim start, IrDim len) {
  IrErr e;
  IrAttrs at = {.axis = axis, .start = start, .len = len};
  return must(ir_node_new(g, IR_SLICE, 1, &x, &at, noloc(), &e), &e, IR_SLICE);
}

IrNode *ir_concat(IrGraph *g, int n, IrNode *const *xs, int axis) {
  IrErr e;
  IrAttrs at = {.axis = axis};
  return must(ir_node_new(g, IR_CONCAT, n, xs, &at, noloc(), &e), &e, IR_CONCAT);
}

/* ---- surgery ------------------------------------------------------------- */

void ir_replace_all_uses(IrGraph *g, IrNode *old, IrNode *repl) {
  ir_groups_before_replace(g, old, repl);
  for (int i = 0; i < g->n_nodes; i++) {
    IrNode *n = g->nodes[i];
    for (int j = 0; j < n->n_in; j++)
      if (n->in[j] == old) n->in[j] = repl;
  }
  for (int i = 0; i < g->n_outputs; i++)
    if (g->outputs[i] == old) g->outputs[i] = repl;
}

void ir_replace_uses_map(IrGraph *g, IrNode *const *map, int n_map) {
  for (int i = 0; i < n_map; i++) /* fusion groups over a replaced node dissolve, as one at a time */
    if (map[i] && (g->nodes[i]->fuse || map[i]->fuse)) ir_groups_before_replace(g, g->nodes[i], map[i]);
  for (int i = 0; i < g->n_nodes; i++) {
    IrNode *n = g->nodes[i];
    for (int j = 0; j < n->n_in; j++) {
      IrNode *x = n->in[j];
      int k = x->index;
      if (k >= 0 && k < n_map && map[k] && g->nodes[k] == x) {
        if (n->fuse) ir_groups_before_replace(g, x, map[k]);
        n->in[j] = map[k];
      }
    }
  }
  for (int i = 0; i < g->n_outputs; i++) {
    int k = g->outputs[i]->index;
    if (k >= 0 && k < n_map && map[k] && g->nodes[k] == g->outputs[i]) g->outputs[i] = map[k];
  }
}

/* Depth-first post-order from every node, in original order so that an
 * already-sorted graph keeps its order.  Iterative: graphs can be deep. */
int ir_graph_toposort(IrGraph *g, IrErr *err) {
  int n = g->n_nodes;
  unsigned char *state = xcalloc((size_t)(n ? n : 1), 1); /* 0 new, 1 on stack, 2 done */
  IrNode **order = xmalloc((size_t)(n ? n : 1) * sizeof *order);
  IrNode **stack = xmalloc((size_t)(n ? n : 1) * sizeof *stack);
  int *next_in = xcalloc((size_t)(n ? n : 1), sizeof *next_in);
  int n_order = 0, rc = 0;
  for (int i = 0; i < n; i++) g->nodes[i]->index = i;
  for (int root = 0; root < n && !rc; root++) {
    if (state[root]) continue;
    int sp = 0;
    stack[sp++] = g->nodes[root];
    state[root] = 1;
    while (sp > 0) {
      IrNode *top = stack[sp - 1];
      int ti = top->index;
      if (next_in[ti] < top->n_in) {
        IrNode *child = top->in[next_in[ti]++];
        int ci = child->index;
        if (ci < 0 || ci >= n || g->nodes[ci] != child) {
          rc = ir_errf(err, "node %%%d (%s) uses a node that is not in the graph", top->id,
                       ir_op_name(top->op));
          break;
        }
        if (state[ci] == 1) {
          rc = ir_errf(err, "cycle through node %%%d (%s)", child->id, ir_op_name(child->op));
          break;
        }
        if (state[ci] == 0) {
          state[ci] = 1;
          stack[sp++] = child;
        }
      } else {
        state[ti] = 2;
        order[n_order++] = top;
        sp--;
      }
    }
  }
  if (!rc) {
    memcpy(g->nodes, order, (size_t)n * sizeof *order);
    for (int i = 0; i < n; i++) g->nodes[i]->index = i;
  }
  free(state);
  free(order);
  free(stack);
  free(next_in);
  return rc;
}

int ir_graph_dce(IrGraph *g) {
  int n = g->n_nodes;
  for (int i = 0; i < n; i++) g->nodes[i]->index = i;
  unsigned char *live = xcalloc((size_t)(n ? n : 1), 1);
  for (int i = 0; i < g->n_outputs; i++) live[g->outputs[i]->index] = 1;
  /* INPUTs stay: they are the graph's signature even when unused. */
  for (int i = n - 1; i >= 0; i--) {
    IrNode *x = g->nodes[i];
    if (x->op == IR_INPUT) live[i] = 1;
    if (!live[i]) continue;
    for (int j = 0; j < x->n_in; j++) live[x->in[j]->index] = 1;
  }
  int k = 0;
  for (int i = 0; i < n; i++)
    if (live[i]) g->nodes[k++] = g->nodes[i];
  g->n_nodes = k;
  for (int i = 0; i < k; i++) g->nodes[i]->index = i;
  ir_groups_after_dce(g);
  free(live);
  return n - k;
}

int *ir_use_counts(IrGraph *g) {
  int *uses = xcalloc((size_t)(g->n_nodes ? g->n_nodes : 1), sizeof *uses);
  for (int i = 0; i < g->n_nodes; i++) g->nodes[i]->index = i;
  for (int i = 0; i < g->n_nodes; i++)
    for (int j = 0; j < g->nodes[i]->n_in; j++) uses[g->nodes[i]->in[j]->index]++;
  for (int i = 0; i < g->n_outputs; i++) uses[g->outputs[i]->index]++;
  return uses;
}

unsigned char *ir_weight_only(IrGraph *g) {
  unsigned char *w = xcalloc((size_t)(g->n_nodes ? g->n_nodes : 1), 1);
  for (int i = 0; i < g->n_nodes; i++) g->nodes[i]->index = i;
  for (int i = 0; i < g->n_nodes; i++) {
    const IrNode *n = g->nodes[i];
    if (n->op == IR_INPUT) continue;
    w[i] = n->op == IR_PARAM || n->op == IR_CONST || n->n_in > 0;
    for (int j = 0; j < n->n_in && w[i]; j++) w[i] = w[n->in[j]->index];
  }
  return w;
}
