/*
 * fuse_lower.c - the fuse pass's norm, map and concat groups lowered as
 * expression trees: a tree grows from a root over the elementwise members
 * only the group reads, its leaves being stored values read through their
 * layout chains (views.c); the tree's expression is one map kernel
 * (cg_emit_map_ex), or the prologue and epilogue of one fused layernorm
 * kernel (cg_emit_norm) rooted at the norm group's prologue and epilogue
 * roles.  A map or concat group grows its tree from its root; members that
 * tree cannot take (past CG_MAP_MAX_IN leaves the tree is given up) grow
 * trees of their own, down to a kernel per node, and so do the elementwise
 * members of a norm group the fused layernorm refuses (a row longer than
 * CG_NORM_MAX_LEN).
 */
#include <stdlib.h>
#include <string.h>

#include "codegen/lower.h"

/* A tree being fused: its leaves and the nodes it absorbed (for rollback). */
typedef struct {
  IrNode *root;
  IrNode *leaf[CG_MAP_MAX_IN];
  NodeView lview[CG_MAP_MAX_IN];
  int n_leaves;
  IrNode *absorbed[64];
  Lowering was[64];
  int n_absorbed;
  int overflow;
  int64_t shift[IR_MAX_RANK]; /* inside concat parts: the part's start, per root axis */
  int select;                 /* a concat was fused: the expression uses coordinates */
  int gidx[CG_MAP_MAX_IN];    /* a gathered leaf (an absorbed embedding): its indices' leaf, else -1 */
  int allow_gather;           /* map kernels gather; the fused layernorm does not */
  const IrNode *stop;         /* never absorbed: a leaf (the layernorm's input, under its epilogue) */
} FuseTree;

static FuseTree *tree_new(IrNode *root) {
  FuseTree *t = xcalloc(1, sizeof *t);
  t->root = root;
  for (int j = 0; j < CG_MAP_MAX_IN; j++) t->gidx[j] = -1;
  return t;
}

static int in_tree(const FuseTree *t, const IrNode *x) {
  for (int j = 0; j < t->n_absorbed; j++)
    if (t->absorbed[j] == x) return 1;
  return 0;
}

/* Every reader of x is in its fusion group (so the group may recompute x
 * wherever it is read: it never needs storing). */
static int group_only(Ctx *c, const IrNode *x) { return c->uses[x->index] == c->guses[x->index]; }

/* A concat the tree can compute by picking a part per coordinate: same rank
 * as the root and not broadcast along its axis. */
static int concat_inner(Ctx *c, const FuseTree *t, const IrNode *x) {
  if (x->op != IR_CONCAT || x->dtype != IR_F32 || x->shape.rank != t->root->shape.rank) return 0;
  int ax = x->attr.axis;
  return ir_dim_eval(x->shape.d[ax], c->batch) == ir_dim_eval(t->root->shape.d[ax], c->batch);
}

static int is_elementwise(const IrNode *n) {
  IrOpClass k = ir_op_class(n->op);
  return k == IR_CLASS_UNARY || k == IR_CLASS_BINARY;
}

/* Its value can be recomputed inside the root's expression: an f32
 * elementwise kernel in the root's fusion group read by nothing else (graph
 * outputs count as readers), so the intermediate never needs storing.  It
 * may be a broadcast operand ([B, 1, D] under [B, N, D]): broadcasting
 * composes, so its leaves read at the root's coordinates with their own
 * broadcast give the same values, each recomputed per output element (cheap
 * next to a stored round trip). */
static int fusable_inner(Ctx *c, FuseTree *t, IrNode *x) {
  if (x == t->stop || !grouped(c, t->root, x) || !group_only(c, x)) return 0;
  if (!((is_elementwise(x) && x->dtype == IR_F32) || concat_inner(c, t, x))) return 0;
  Lowering h = inf(c, x)->how;
  return h == LOW_KERNEL || (h == LOW_ABSORBED && in_tree(t, x)); /* read twice: computed twice */
}

static void absorb(Ctx *c, FuseTree *t, IrNode *x) {
  if (in_tree(t, x)) return;
  if (t->n_absorbed == (int)(sizeof t->absorbed / sizeof *t->absorbed)) {
    t->overflow = 1;
    return;
  }
  t->was[t->n_absorbed] = inf(c, x)->how;
  t->absorbed[t->n_absorbed++] = x;
  inf(c, x)->how = LOW_ABSORBED;
}

static void rollback(Ctx *c, FuseTree *t) {
  for (int j = t->n_absorbed - 1; j >= 0; j--) inf(c, t->absorbed[j])->how = t->was[j];
  t->n_absorbed = 0;
}

/* A layout node (slice, permute, reshape) in the root's group with one
 * reader: the tree reads through it. */
static int layout_leaf(Ctx *c, FuseTree *t, IrNode *x) {
  if (!grouped(c, t->root, x) || !group_only(c, x)) return 0;
  Lowering h = inf(c, x)->how;
  if (h == LOW_ABSORBED) return in_tree(t, x) && (x->op == IR_SLICE || x->op == IR_PERMUTE || x->op == IR_RESHAPE);
  return (x->op == IR_SLICE || x->op == IR_PERMUTE) ? h == LOW_KERNEL : x->op == IR_RESHAPE ? h == LOW_ALIAS : 0;
}

static int through_leaf(Ctx *c, void *t, IrNode *n) { return layout_leaf(c, t, n); }


/* Leaf index of operand x (read through its layout chain when it has one),
 * appending it when new. */
static int add_leaf(Ctx *c, FuseTree *t, IrNode *x) {
  NodeView v = lower_view_through(c, x, through_leaf, t);
  for (IrNode *y = x; y != v.base; y = y->in[0]) absorb(c, t, y);
  /* inside a concat part the root's coordinates run ahead by the part's
   * start: read at (c - shift), through the strides the root will broadcast
   * the leaf with (broadcast_node_view) */
  IrNode *r = t->root;
  int lead = r->shape.rank - v.rank;
  for (int i = 0; i < r->shape.rank; i++) {
    int j = i - lead;
    int64_t ri = ir_dim_eval(r->shape.d[i], c->batch);
    if (t->shift[i] && j >= 0 && !(v.shape[j] == 1 && ri != 1)) v.offset -= t->shift[i] * v.stride[j];
  }
  for (int j = 0; j < t->n_leaves; j++)
    if (t->leaf[j] == x && t->lview[j].offset == v.offset) return j;
  if (t->n_leaves == CG_MAP_MAX_IN) {
    t->overflow = 1;
    return 0;
  }
  int j = t->n_leaves++;
  t->leaf[j] = x;
  t->lview[j] = v;
  return j;
}

/* Substitutes sub[0], sub[1] for v0, v1 in template tpl. */
static char *subst(Arena *a, const char *tpl, char **sub) {
  CgText t = {0};
  for (const char *p = tpl; *p;) {
    if (p[0] == 'v' && (p[1] == '0' || p[1] == '1') && !(p[2] >= '0' && p[2] <= '9')) {
      cg_text_printf(&t, "(%s)", sub[p[1] - '0']);
      p += 2;
    } else {
      cg_text_printf(&t, "%c", *p++);
    }
  }
  char *r = arena_strdup(a, t.s ? t.s : "");
  free(t.s);
  return r;
}

static char *fuse_expr(Ctx *c, FuseTree *t, IrNode *n);

/* An embedding lookup the tree reads as a gather from its table (the
 * y-embedding under the conditioning add): f32, in the group, read by it
 * alone, the table a float weight. */
static int gather_leaf(Ctx *c, FuseTree *t, IrNode *x) {
  return x->op == IR_EMBEDDING && x->dtype == IR_F32 && grouped(c, t->root, x) && group_only(c, x) &&
         inf(c, x)->how == LOW_KERNEL && inf(c, x->in[0])->how == LOW_WEIGHT && t->allow_gather;
}

/* Leaf for embedding x: a view of x's [n, dim] output (offsets) over x's
 * table (the base read), plus a leaf for its indices. */
static int add_gather(Ctx *c, FuseTree *t, IrNode *x) {
  int before = t->n_leaves;
  int j = add_leaf(c, t, x);
  if (t->n_leaves == before || t->overflow) return j; /* already there */
  t->lview[j].base = x->in[0];
  absorb(c, t, x);
  int k = add_leaf(c, t, x->in[1]);
  t->gidx[j] = k;
  return j;
}

/* Operand x of a tree node: its expression when the tree absorbs it, else a leaf. */
static char *operand_expr(Ctx *c, FuseTree *t, IrNode *x) {
  if (fusable_inner(c, t, x)) {
    absorb(c, t, x);
    return fuse_expr(c, t, x);
  }
  if (gather_leaf(c, t, x)) return arena_printf(&c->scratch, "v%d", add_gather(c, t, x));
  return arena_printf(&c->scratch, "v%d", add_leaf(c, t, x));
}

/* A concat: the part its coordinate along the axis falls in, each part read
 * at coordinates shifted by its start. */
static char *concat_expr(Ctx *c, FuseTree *t, IrNode *n) {
  int ax = n->attr.axis;
  int64_t base = t->shift[ax], start = 0;
  CgText s = {0};
  for (int k = 0; k < n->n_in; k++) {
    int64_t len = ir_dim_eval(n->in[k]->shape.d[ax], c->batch);
    t->shift[ax] = base + start;
    char *part = operand_expr(c, t, n->in[k]);
    if (k < n->n_in - 1)
      cg_text_printf(&s, "(c%d < %lld ? (%s) : ", ax, (long long)(base + start + len), part);
    else
      cg_text_printf(&s, "(%s)", part);
    start += len;
  }
  for (int k = 0; k < n->n_in - 1; k++) cg_text_printf(&s, ")");
  t->shift[ax] = base;
  t->select = 1;
  char *r = arena_strdup(&c->scratch, s.s ? s.s : "0.0f");
  free(s.s);
  return r;
}

/* The expression of node n over the tree's leaves, absorbing what it can. */
static char *fuse_expr(Ctx *c, FuseTree *t, IrNode *n) {
  if (n->op == IR_CONCAT) return concat_expr(c, t, n);
  char *sub[2] = {NULL, NULL}, buf[160];
  for (int i = 0; i < n->n_in && i < 2; i++) sub[i] = operand_expr(c, t, n->in[i]);
  const char *tpl = cg_elementwise_expr(n, buf, sizeof buf);
  return subst(&c->scratch, tpl ? tpl : "v0", sub);
}

/* "fused: %3 mul, %4 add, ..." for the banner: the tree's nodes in graph order. */
static const char *tree_banner(Ctx *c, const char *what, FuseTree *const *trees, int n_trees, IrNode *const *extra,
                               int n_extra) {
  IrNode **all = xmalloc(((size_t)n_trees * 65 + (size_t)n_extra + 1) * sizeof *all);
  int n = 0;
  for (int k = 0; k < n_trees; k++) {
    if (!trees[k]) continue;
    for (int j = 0; j < trees[k]->n_absorbed; j++) all[n++] = trees[k]->absorbed[j];
    all[n++] = trees[k]->root;
  }
  for (int j = 0; j < n_extra; j++) all[n++] = extra[j];
  for (int i = 1; i < n; i++) /* insertion sort by position */
    for (int j = i; j > 0 && all[j - 1]->index > all[j]->index; j--) {
      IrNode *x = all[j];
      all[j] = all[j - 1];
      all[j - 1] = x;
    }
  CgText t = {0};
  cg_text_printf(&t, "%s:", what);
  for (int i = 0; i < n; i++)
    if (!i || all[i] != all[i - 1]) cg_text_printf(&t, "%s %%%d %s", i ? "," : "", all[i]->id, ir_op_name(all[i]->op));
  const char *r = arena_strdup(&c->scratch, t.s);
  free(t.s);
  free(all);
  return r;
}

static void keep_leaves(Ctx *c, NodeView **dst, int *n_dst, const FuseTree *t) {
  *n_dst = t->n_leaves;
  *dst = arena_alloc(&c->scratch, (size_t)(t->n_leaves + 1) * sizeof **dst);
  memcpy(*dst, t->lview, (size_t)t->n_leaves * sizeof **dst);
}

/* Tree groups: map and concat, and norm groups for what the fused
 * layernorm left. */
static int tree_group(const IrGroup *grp) {
  return grp && (grp->kind == IR_GROUP_MAP || grp->kind == IR_GROUP_CONCAT || grp->kind == IR_GROUP_NORM);
}

/* Roots, consumers first, so a tree grows from its group's root (the last
 * member); a tree that outgrows the map kernel's operand count is left
 * unfused, and its members root trees of their own. */
void lower_trees(Ctx *c) {
  for (int i = c->g->n_nodes - 1; i >= 0; i--) {
    IrNode *n = c->g->nodes[i];
    NodeInfo *ni = inf(c, n);
    if (!tree_group(ni->group) || !(is_elementwise(n) || n->op == IR_CONCAT) || ni->how != LOW_KERNEL ||
        n->dtype != IR_F32)
      continue;
    FuseTree *t = tree_new(n);
    t->allow_gather = 1;
    const char *expr = fuse_expr(c, t, n);
    if (t->overflow || !t->n_absorbed) {
      rollback(c, t);
    } else {
      ni->how = LOW_FUSED;
      ni->expr = expr;
      ni->select = t->select;
      ni->lnode = arena_alloc(&c->scratch, (size_t)t->n_leaves * sizeof *ni->lnode);
      memcpy(ni->lnode, t->leaf, (size_t)t->n_leaves * sizeof *ni->lnode);
      ni->gidx = arena_alloc(&c->scratch, (size_t)t->n_leaves * sizeof *ni->gidx);
      memcpy(ni->gidx, t->gidx, (size_t)t->n_leaves * sizeof *ni->gidx);
      for (int j = 0; j < t->n_leaves; j++) ni->has_gather |= t->gidx[j] >= 0;
      keep_leaves(c, &ni->lview, &ni->n_leaves, t);
      ni->fused = tree_banner(c, "fused", &t, 1, NULL, 0);
    }
    free(t);
  }
}

static int same_shape(Ctx *c, const IrNode *a, const IrNode *b) {
  if (a->shape.rank != b->shape.rank) return 0;
  for (int i = 0; i < a->shape.rank; i++)
    if (ir_dim_eval(a->shape.d[i], c->batch) != ir_dim_eval(b->shape.d[i], c->batch)) return 0;
  return 1;
}

/* n through its reshapes: the stored value it views in row-major order. */
static IrNode *below_reshapes(IrNode *n) {
  while (n->op == IR_RESHAPE) n = n->in[0];
  return n;
}

/* v [1.., C, 1..] or [C, 1..] against x [N, C, ...] (a reshape of a [C]
 * value: one value a channel): that value, else NULL. */
static IrNode *channel_operand(Ctx *c, const IrNode *grp_node, IrNode *v, const IrNode *x) {
  int r = x->shape.rank, vr = v->shape.rank;
  if (v->op != IR_RESHAPE || v->fuse != grp_node->fuse || vr > r || vr < r - 1) return NULL;
  int at = 1 - (r - vr); /* v's axis facing x's channels */
  for (int i = 0; i < vr; i++)
    if (v->shape.d[i] != (i == at ? x->shape.d[1] : 1)) return NULL;
  IrNode *b = below_reshapes(v);
  return b->dtype == IR_F32 && node_numel(c, b) == x->shape.d[1] ? b : NULL;
}

/* A norm group that is a group norm: root = [act](add(mul(reshape(ln, xs),
 * w), b)) over ln = layernorm(reshape(x, [N, G, -1])), x [N, C, ...], the
 * mul, the add and act each optional: one cg_emit_group_norm kernel reading x,
 * w and b.  Returns 1 when it lowered the group. */
static int lower_group_norm(Ctx *c, const IrGroup *grp) {
  IrNode *ln = grp->role[IR_ROLE_NORM_LAYERNORM], *root = grp->role[IR_ROLE_NORM_EPILOGUE];
  if (!root || ln->dtype != IR_F32 || ln->shape.rank != 3 || ln->in[0]->op != IR_RESHAPE) return 0;
  IrNode *x = below_reshapes(ln->in[0]);
  if (x->shape.rank < 3 || ir_dim_is_sym(x->shape.d[1]) || ln->shape.d[1] < 1 || x->shape.d[1] % ln->shape.d[1] ||
      x->dtype != IR_F32 || !same_shape(c, root, x) || ir_dim_eval(ln->shape.d[0], c->batch) != ir_dim_eval(x->shape.d[0], c->batch))
    return 0;
  IrNode *cur = root, *act = NULL, *w = NULL, *b = NULL, *chain[4];
  int n_chain = 0;
  if (ir_op_class(cur->op) == IR_CLASS_UNARY && cur->op != IR_CAST) chain[n_chain++] = act = cur, cur = cur->in[0];
  if (cur->op == IR_ADD && (b = channel_operand(c, root, cur->in[1], x))) chain[n_chain++] = cur, cur = cur->in[0];
  if (cur->op == IR_MUL && (w = channel_operand(c, root, cur->in[1], x))) chain[n_chain++] = cur, cur = cur->in[0];
  if (cur->op != IR_RESHAPE || cur->in[0] != ln || cur->fuse != grp || !n_chain) return 0;
  chain[n_chain++] = cur;
  for (int i = 0; i < n_chain; i++) /* each read once, by the next: the group's epilogue */
    if (chain[i]->fuse != grp || chain[i]->dtype != IR_F32 || (i && c->uses[chain[i]->index] != 1) ||
        (inf(c, chain[i])->how != LOW_KERNEL && inf(c, chain[i])->how != LOW_ALIAS))
      return 0;
  if (inf(c, ln)->how != LOW_KERNEL || c->uses[ln->index] != 1) return 0;
  Lowering xh = inf(c, x)->how; /* x is read as stored */
  if (xh == LOW_ABSORBED || xh == LOW_NONE || xh == LOW_SIDE) return 0;
  NodeInfo *ri = inf(c, root);
  for (int i = 1; i < n_chain; i++) inf(c, chain[i])->how = LOW_ABSORBED;
  inf(c, ln)->how = LOW_ABSORBED;
  ri->how = LOW_GNORM;
  ri->ln = ln;
  ri->gn_x = x, ri->gn_w = w, ri->gn_b = b, ri->gn_act = act;
  IrNode *members[5] = {ln};
  for (int i = 0; i < n_chain; i++) members[1 + i] = chain[i];
  ri->fused = tree_banner(c, "fused group norm", NULL, 0, members, 1 + n_chain);
  return 1;
}

/* A norm group: [prologue tree] -> layernorm -> [epilogue tree rooted at
 * the anchor] as one cg_emit_norm kernel, when every piece fits (f32, one
 * shape, a row short enough for registers); otherwise lower_trees() fuses
 * the group's elementwise parts as ordinary trees. */
void lower_norm(Ctx *c, const IrGroup *grp) {
  if (lower_group_norm(c, grp)) return;
  IrNode *ln = grp->role[IR_ROLE_NORM_LAYERNORM], *x = ln->in[0], *p = grp->role[IR_ROLE_NORM_PROLOGUE];
  IrNode *root = grp->role[IR_ROLE_NORM_EPILOGUE] ? grp->role[IR_ROLE_NORM_EPILOGUE] : ln;
  int64_t len = ir_dim_eval(ln->shape.d[ln->shape.rank - 1], c->batch);
  if (inf(c, ln)->how != LOW_KERNEL || ln->dtype != IR_F32 || len < 1 || len > CG_NORM_MAX_LEN) return;
  if (root != ln && (inf(c, root)->how != LOW_KERNEL || root->dtype != IR_F32 || !same_shape(c, root, ln))) return;
  FuseTree *epi = NULL, *pro = NULL;
  const char *eexpr = NULL, *pexpr = NULL;
  if (root != ln) {
    epi = tree_new(root);
    epi->stop = x; /* read as stored: computed by the prologue, or a kernel of its own */
    epi->leaf[0] = ln; /* v0: the normalised value */
    epi->n_leaves = 1;
    eexpr = fuse_expr(c, epi, root);
    int reached = 0; /* the tree must reach the layernorm through absorbed nodes */
    for (int j = 0; j < epi->n_absorbed; j++)
      for (int k = 0; k < epi->absorbed[j]->n_in; k++) reached |= epi->absorbed[j]->in[k] == ln;
    for (int k = 0; k < root->n_in; k++) reached |= root->in[k] == ln;
    if (epi->overflow || !reached) {
      rollback(c, epi);
      free(epi);
      return;
    }
  }
  int side = 0;
  /* a prologue read elsewhere is read after the anchor (ir_group_check): the kernel stores it */
  if (p && inf(c, p)->how == LOW_KERNEL && p->dtype == IR_F32 && same_shape(c, p, ln)) {
    pro = tree_new(x);
    pexpr = fuse_expr(c, pro, x);
    if (pro->overflow) {
      rollback(c, pro);
      free(pro);
      pro = NULL;
      pexpr = NULL;
    } else {
      side = c->uses[x->index] > 1;
    }
  }
  if (!pro) { /* the input as stored (through the group's layout nodes) */
    pro = tree_new(ln);
    add_leaf(c, pro, x);
  }
  NodeInfo *ri = inf(c, root);
  ri->how = LOW_NORM;
  ri->ln = ln;
  ri->expr = eexpr;
  ri->pexpr = pexpr;
  if (epi) {
    keep_leaves(c, &ri->lview, &ri->n_leaves, epi);
  } else {
    ri->n_leaves = 1;
    ri->lview = arena_alloc(&c->scratch, sizeof *ri->lview);
    ri->lview[0] = lower_view_contig(c, ln);
  }
  keep_leaves(c, &ri->pview, &ri->n_pleaves, pro);
  if (root != ln) inf(c, ln)->how = LOW_ABSORBED;
  if (pexpr) {
    inf(c, x)->how = side ? LOW_SIDE : LOW_ABSORBED;
    ri->side = side ? x : NULL;
  }
  FuseTree *trees[2] = {pexpr ? pro : NULL, epi};
  ri->fused = tree_banner(c, "fused layernorm", trees, 2, &ln, 1);
  free(epi);
  free(pro);
}

