/*
 * group.c - fusion groups: the kind and role table (groups.def), the check
 * that a group's record describes its graph, and the upkeep graph surgery
 * does on groups (ir_graph_dce, ir_replace_all_uses in graph.c call it).
 *
 * ir_group_check() is the one definition of each kind: the fuse pass forms
 * only groups it accepts (it asserts so) and the code generator lowers a
 * group by its kind only when it accepts it, so a record that went stale or
 * was written wrong is lowered node by node, never misread.  The kernel's
 * own limits (head dims, row lengths, operand counts, dtypes) are the code
 * generator's to refuse.
 */
#include <stdlib.h>

#include "ir/ir.h"

typedef enum { REQUIRED, OPTIONAL } Presence;
typedef enum { MEMBER, OPERAND } Place;

static const struct {
  const char *name;
  const char *doc;
} kinds[IR_GROUP_KIND_COUNT] = {
#define GROUP(e, name, doc) [IR_GROUP_##e] = {name, doc},
#define ROLE(grp, e, name, presence, place, doc)
#include "ir/groups.def"
#undef GROUP
#undef ROLE
};

static const struct {
  IrGroupKind kind;
  const char *name;
  Presence presence;
  Place place;
} roles[IR_ROLE_COUNT] = {
#define GROUP(e, name, doc)
#define ROLE(grp, e, name, presence, place, doc) [IR_ROLE_##grp##_##e] = {IR_GROUP_##grp, name, presence, place},
#include "ir/groups.def"
#undef GROUP
#undef ROLE
};

const char *ir_group_kind_name(IrGroupKind k) { return (unsigned)k < IR_GROUP_KIND_COUNT ? kinds[k].name : "?"; }
const char *ir_role_name(IrRole r) { return (unsigned)r < IR_ROLE_COUNT ? roles[r].name : "?"; }
IrGroupKind ir_role_kind(IrRole r) { return roles[r].kind; }

IrGroup *ir_group_new(IrGraph *g, IrGroupKind kind) {
  IrGroup *grp = arena_alloc(&g->arena, sizeof *grp);
  grp->kind = kind;
  return grp;
}

IrNode *ir_group_anchor(const IrGroup *grp) {
  for (int r = IR_ROLE_COUNT - 1; r >= 0; r--)
    if (roles[r].kind == grp->kind && roles[r].place == MEMBER && grp->role[r]) return grp->role[r];
  return NULL;
}

static int in_graph(const IrGraph *g, const IrNode *n) {
  return n->index >= 0 && n->index < g->n_nodes && g->nodes[n->index] == n;
}

static int is_elementwise(const IrNode *n) {
  IrOpClass k = ir_op_class(n->op);
  return k == IR_CLASS_UNARY || k == IR_CLASS_BINARY;
}

int ir_read_after(IrGraph *g, const IrNode *x, const IrNode *except, const IrNode *anchor) {
  for (int i = 0; i <= anchor->index; i++) { /* the anchor itself reads it before it is written */
    const IrNode *r = g->nodes[i];
    if (r == except) continue;
    for (int j = 0; j < r->n_in; j++)
      if (r->in[j] == x) return 0;
  }
  return 1;
}

/* "%<id> <op>" of a role's node, for messages. */
#define NODE_FMT "%%%d %s"
#define NODE_ARG(n) (n)->id, ir_op_name((n)->op)

/* Is role node n of op `op`, reading `in0` (and `in1`) as its first inputs? */
static int reads(const IrNode *n, IrOp op, const IrNode *in0, const IrNode *in1) {
  if (n->op != op || n->n_in < (in1 ? 2 : 1) || n->in[0] != in0) return 0;
  return !in1 || n->in[1] == in1;
}

static int check_attention(const IrGroup *grp, const int *uses, IrErr *err) {
  IrNode *const *r = grp->role;
  IrNode *qk = r[IR_ROLE_ATTENTION_QK], *sc = r[IR_ROLE_ATTENTION_SCALE], *sm = r[IR_ROLE_ATTENTION_SOFTMAX];
  IrNode *pv = r[IR_ROLE_ATTENTION_PV], *out = r[IR_ROLE_ATTENTION_OUT];
  if (!reads(qk, IR_MATMUL, r[IR_ROLE_ATTENTION_Q], r[IR_ROLE_ATTENTION_K]) || !qk->attr.trans_b)
    return ir_errf(err, "attention: qk " NODE_FMT " is not matmul(q, k) {trans_b=1}", NODE_ARG(qk));
  if (sc && !reads(sc, IR_SCALE, qk, NULL)) return ir_errf(err, "attention: scale " NODE_FMT " is not scale(qk)", NODE_ARG(sc));
  if (!reads(sm, IR_SOFTMAX, sc ? sc : qk, NULL))
    return ir_errf(err, "attention: softmax " NODE_FMT " does not read the %s", NODE_ARG(sm), sc ? "scale" : "scores");
  if (!reads(pv, IR_MATMUL, sm, r[IR_ROLE_ATTENTION_V]) || pv->attr.trans_b)
    return ir_errf(err, "attention: pv " NODE_FMT " is not matmul(softmax, v)", NODE_ARG(pv));
  if (out && !reads(out, IR_PERMUTE, pv, NULL)) return ir_errf(err, "attention: out " NODE_FMT " is not permute(pv)", NODE_ARG(out));
  /* the scores, their scale and softmax, and a permuted result never exist outside the kernel */
  IrNode *inner[4] = {qk, sc, sm, out ? pv : NULL};
  for (int i = 0; i < 4; i++)
    if (inner[i] && uses[inner[i]->index] != 1)
      return ir_errf(err, "attention: " NODE_FMT " has %d readers, the kernel keeps it inside", NODE_ARG(inner[i]),
                     uses[inner[i]->index]);
  return 0;
}

static int check_gemm_epilogue(const IrGroup *grp, const int *uses, IrErr *err) {
  IrNode *l = grp->role[IR_ROLE_GEMM_EPILOGUE_LINEAR], *e = grp->role[IR_ROLE_GEMM_EPILOGUE_EPILOGUE];
  if (!(l->op == IR_LINEAR && l->n_in == 3) && !(l->op == IR_QLINEAR && l->n_in == 5))
    return ir_errf(err, "gemm-epilogue: " NODE_FMT " is not a linear or qlinear with a bias", NODE_ARG(l));
  if (ir_op_class(e->op) != IR_CLASS_UNARY || e->in[0] != l)
    return ir_errf(err, "gemm-epilogue: epilogue " NODE_FMT " is not a unary op of the linear", NODE_ARG(e));
  if (uses[l->index] != 1) return ir_errf(err, "gemm-epilogue: the linear has %d readers", uses[l->index]);
  return 0;
}

static int check_quant_rows(IrGraph *g, const IrGroup *grp, IrErr *err) {
  IrNode *s = grp->role[IR_ROLE_QUANT_ROWS_SCALE], *q = grp->role[IR_ROLE_QUANT_ROWS_QUANTIZE];
  if (s->op != IR_QSCALE || s->attr.axis != s->shape.rank - 1)
    return ir_errf(err, "quant-rows: scale " NODE_FMT " is not a qscale over the last axis", NODE_ARG(s));
  if (q->op != IR_QUANTIZE || q->in[1] != s || q->in[0] != s->in[0])
    return ir_errf(err, "quant-rows: " NODE_FMT " is not quantize(x, qscale(x))", NODE_ARG(q));
  if (!ir_read_after(g, s, q, q))
    return ir_errf(err, "quant-rows: the scales " NODE_FMT " are read before the kernel runs", NODE_ARG(s));
  return 0;
}

static int check_norm(IrGraph *g, const IrGroup *grp, const int *uses, IrErr *err) {
  IrNode *ln = grp->role[IR_ROLE_NORM_LAYERNORM], *pro = grp->role[IR_ROLE_NORM_PROLOGUE];
  IrNode *epi = grp->role[IR_ROLE_NORM_EPILOGUE];
  if (ln->op != IR_LAYERNORM) return ir_errf(err, "norm: " NODE_FMT " is not a layernorm", NODE_ARG(ln));
  if (epi && (!is_elementwise(epi) || uses[ln->index] != 1))
    return ir_errf(err, "norm: epilogue " NODE_FMT " is not elementwise over a layernorm read once", NODE_ARG(epi));
  if (pro && (pro != ln->in[0] || !is_elementwise(pro)))
    return ir_errf(err, "norm: prologue " NODE_FMT " is not the elementwise input of the layernorm", NODE_ARG(pro));
  /* the kernel writes a prologue value read elsewhere when the anchor runs */
  if (pro && uses[pro->index] != 1 && !ir_read_after(g, pro, ln, ir_group_anchor(grp)))
    return ir_errf(err, "norm: prologue " NODE_FMT " is read before the kernel writes it", NODE_ARG(pro));
  return 0;
}

int ir_group_check(IrGraph *g, const IrGroup *grp, const int *uses, IrErr *err) {
  if ((unsigned)grp->kind >= IR_GROUP_KIND_COUNT) return ir_errf(err, "fusion group of unknown kind %d", (int)grp->kind);
  const char *kind = kinds[grp->kind].name;
  for (int r = 0; r < IR_ROLE_COUNT; r++) {
    IrNode *n = grp->role[r];
    if (roles[r].kind != grp->kind) {
      if (n) return ir_errf(err, "%s: has role %s of %s", kind, roles[r].name, kinds[roles[r].kind].name);
      continue;
    }
    if (!n) {
      if (roles[r].presence == REQUIRED) return ir_errf(err, "%s: role %s missing", kind, roles[r].name);
      continue;
    }
    if (!in_graph(g, n)) return ir_errf(err, "%s: role %s is not a node of the graph", kind, roles[r].name);
    if (roles[r].place == MEMBER && n->fuse != grp)
      return ir_errf(err, "%s: role %s " NODE_FMT " is not a member", kind, roles[r].name, NODE_ARG(n));
  }
  switch (grp->kind) {
  case IR_GROUP_ATTENTION: return check_attention(grp, uses, err);
  case IR_GROUP_GEMM_EPILOGUE: return check_gemm_epilogue(grp, uses, err);
  case IR_GROUP_NORM: return check_norm(g, grp, uses, err);
  case IR_GROUP_QUANT_ROWS: return check_quant_rows(g, grp, err);
  case IR_GROUP_MAP: {
    IrNode *root = grp->role[IR_ROLE_MAP_ROOT];
    return is_elementwise(root) ? 0 : ir_errf(err, "map: root " NODE_FMT " is not elementwise", NODE_ARG(root));
  }
  case IR_GROUP_CONCAT: {
    IrNode *root = grp->role[IR_ROLE_CONCAT_ROOT];
    return root->op == IR_CONCAT ? 0 : ir_errf(err, "concat: root " NODE_FMT " is not a concat", NODE_ARG(root));
  }
  case IR_GROUP_KIND_COUNT: break;
  }
  ditc_unreachable();
}

void ir_group_dissolve(IrGraph *g, const IrGroup *grp) {
  for (int i = 0; i < g->n_nodes; i++)
    if (g->nodes[i]->fuse == grp) g->nodes[i]->fuse = NULL;
}

/* ---- upkeep for graph surgery (graph.c) --------------------------------------- */

/* After dce: a group one of whose roles died has no kernel to be part of. */
void ir_groups_after_dce(IrGraph *g) {
  for (int i = 0; i < g->n_nodes; i++) {
    const IrGroup *grp = g->nodes[i]->fuse;
    if (!grp) continue;
    for (int r = 0; r < IR_ROLE_COUNT; r++)
      if (grp->role[r] && !in_graph(g, grp->role[r])) {
        g->nodes[i]->fuse = NULL;
        break;
      }
  }
}

/* Before the readers of old are moved to repl: a group was decided for the
 * edges as they were, so the groups of old, repl and old's readers go. */
void ir_groups_before_replace(IrGraph *g, const IrNode *old, const IrNode *repl) {
  int n = 0, cap = 8;
  const IrGroup **gone = xmalloc((size_t)cap * sizeof *gone);
  gone[n++] = old->fuse;
  gone[n++] = repl->fuse;
  for (int i = 0; i < g->n_nodes; i++) {
    const IrNode *r = g->nodes[i];
    if (!r->fuse) continue;
    for (int j = 0; j < r->n_in; j++)
      if (r->in[j] == old) {
        if (n == cap) gone = xrealloc(gone, (size_t)(cap *= 2) * sizeof *gone);
        gone[n++] = r->fuse;
        break;
      }
  }
  for (int i = 0; i < g->n_nodes; i++)
    for (int k = 0; k < n && g->nodes[i]->fuse; k++)
      if (gone[k] && g->nodes[i]->fuse == gone[k]) g->nodes[i]->fuse = NULL;
  free(gone);
}
