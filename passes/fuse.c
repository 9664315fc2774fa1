/*
 * fuse.c - the `fuse` pass: group nodes that one kernel can compute.
 *
 * The pass changes no value; it records groups (IrGroup, ir/groups.def: the
 * group's kind and the nodes playing its roles; IrNode.fuse of every member
 * points to it) and the code generator lowers each group by its kind as one
 * kernel.  Groups, claimed in this order so the larger patterns win:
 *
 *   attention   matmul(q, k^T) [-> scale] -> softmax -> matmul(., v)
 *               [-> permute]: the online-softmax kernel; the N x N scores
 *               never reach memory, the head split (slice / reshape /
 *               permute of the qkv product) and the head merge are its
 *               indexing;
 *   gemm        linear -> gelu_tanh: the GEMM's bias + GELU epilogue (qlinear ->
 *               gelu_tanh: the qlinear kernel's);
 *   norm        [prologue] -> layernorm -> [epilogue]: the elementwise tree
 *               that makes the layernorm's input (DiT: the residual add
 *               x + gate * y of the previous sub-block, whose value is also
 *               stored for the next residual) and the tree over the
 *               normalised value (modulate: x * (1 + scale) + shift), one
 *               warp per row; the epilogue may read the layernorm through
 *               a reshape (a group norm's affine and SiLU: the VAE
 *               decoder's, one group_norm kernel, codegen/fuse_lower.c);
 *   map         every other tree of f32 elementwise nodes whose inner nodes
 *               have no other reader, with the slices, reshapes and
 *               permutes feeding it read through strides (the adaLN chunks,
 *               the patch embedding's transpose under the position add) and
 *               embedding lookups read as gathers from their tables (the
 *               class embedding under the conditioning add);
 *   concat      a concat of such trees and views, one kernel picking a part
 *               per coordinate (the timestep embedding's [cos, sin], the
 *               guidance combine);
 *   quant-rows  quantize(x, qscale(x)) of an activation (passes/quantize.c's
 *               w8a8): each row's scale and int8 levels in one row kernel,
 *               the scales stored for the qlinear after it.
 *
 * Inner nodes must have exactly one reader (graph outputs count): their
 * values then never need storing.  A prologue's root may have other readers
 * when all of them come after the group's anchor in graph order, since the
 * kernel writes it when the anchor runs (the anchor: the group's last node,
 * where its kernel runs).  Every group formed passes ir_group_check(), the
 * one definition of its kind.  The code generator falls back to one kernel
 * per node where a group does not fit its templates (e.g. a head dimension
 * above the attention kernel's limit), so groups never change a result.
 */
#include <stdlib.h>

#include "passes/passes.h"

typedef struct {
  IrGraph *g;
  int *uses;        /* by index, outputs counted */
  IrNode **reader;  /* the only reader of a single-use node, else NULL */
  /* every reader of a node: a list over the graph's edges (first_reader by
   * node index, next_reader by edge, -1 ends; edge_node: the reader's index) */
  int *first_reader, *next_reader, *edge_node;
  unsigned char *is_output;
} Fuse;

static int is_elementwise(const IrNode *n) {
  IrOpClass k = ir_op_class(n->op);
  return (k == IR_CLASS_UNARY || k == IR_CLASS_BINARY) && n->dtype == IR_F32;
}

static int is_layout(const IrNode *n) {
  return n->op == IR_SLICE || n->op == IR_RESHAPE || n->op == IR_PERMUTE;
}

static int single(const Fuse *f, const IrNode *n) { return f->uses[n->index] == 1; }

static int free_node(const IrNode *n) { return n->fuse == NULL; }

/* Layout nodes with one reader between x and the stored value they view:
 * the group reads through them. */
static void claim_layout(Fuse *f, IrNode *x, IrGroup *grp) {
  while (is_layout(x) && single(f, x) && free_node(x)) {
    x->fuse = grp;
    x = x->in[0];
  }
}

/* The tree under n: single-reader free elementwise inputs join it, the
 * layout chains under its leaves too.  Returns the number of nodes marked. */
static int claim_tree(Fuse *f, IrNode *n, IrGroup *grp, const IrNode *stop) {
  int count = 1;
  n->fuse = grp;
  for (int i = 0; i < n->n_in; i++) {
    IrNode *x = n->in[i];
    if (x == stop || !free_node(x) || !single(f, x)) continue;
    if (is_elementwise(x))
      count += claim_tree(f, x, grp, stop);
    else if (is_layout(x)) {
      claim_layout(f, x, grp);
      count++;
    } else if (x->op == IR_EMBEDDING && x->dtype == IR_F32) { /* read as a gather from its table */
      x->fuse = grp;
      count++;
    }
  }
  return count;
}

static void fuse_attention(Fuse *f, IrNode *n) {
  if (n->op != IR_MATMUL || n->attr.trans_b || !free_node(n)) return;
  IrNode *sm = n->in[0], *sc = NULL, *qk;
  if (sm->op != IR_SOFTMAX || !single(f, sm)) return;
  qk = sm->in[0];
  if (qk->op == IR_SCALE && single(f, qk)) {
    sc = qk;
    qk = sc->in[0];
  }
  if (qk->op != IR_MATMUL || !qk->attr.trans_b || !single(f, qk)) return;
  IrNode *out = f->reader[n->index];
  if (!out || out->op != IR_PERMUTE || !free_node(out)) out = NULL;
  IrGroup *grp = ir_group_new(f->g, IR_GROUP_ATTENTION);
  IrNode **r = grp->role;
  r[IR_ROLE_ATTENTION_Q] = qk->in[0];
  r[IR_ROLE_ATTENTION_K] = qk->in[1];
  r[IR_ROLE_ATTENTION_V] = n->in[1];
  r[IR_ROLE_ATTENTION_QK] = qk;
  r[IR_ROLE_ATTENTION_SCALE] = sc;
  r[IR_ROLE_ATTENTION_SOFTMAX] = sm;
  r[IR_ROLE_ATTENTION_PV] = n;
  r[IR_ROLE_ATTENTION_OUT] = out;
  qk->fuse = sm->fuse = n->fuse = grp;
  if (sc) sc->fuse = grp;
  if (out) out->fuse = grp;
  claim_layout(f, qk->in[0], grp);
  claim_layout(f, qk->in[1], grp);
  claim_layout(f, n->in[1], grp);
}

static void fuse_gemm_epilogue(Fuse *f, IrNode *n) {
  if (n->op != IR_GELU_TANH || !free_node(n)) return;
  IrNode *l = n->in[0];
  if (!((l->op == IR_LINEAR && l->n_in == 3) || (l->op == IR_QLINEAR && l->n_in == 5)) || !single(f, l) ||
      !free_node(l))
    return;
  IrGroup *grp = ir_group_new(f->g, IR_GROUP_GEMM_EPILOGUE);
  grp->role[IR_ROLE_GEMM_EPILOGUE_LINEAR] = l;
  grp->role[IR_ROLE_GEMM_EPILOGUE_EPILOGUE] = n;
  l->fuse = n->fuse = grp;
}

/* quantize(x, qscale(x)) of an activation (a weight's are computed once):
 * the scales and levels of each row in one kernel. */
static void fuse_quant_rows(Fuse *f, IrNode *q, const unsigned char *weight_only) {
  IrNode *s = q->op == IR_QUANTIZE ? q->in[1] : NULL;
  if (!s || s->op != IR_QSCALE || s->in[0] != q->in[0] || s->attr.axis != s->shape.rank - 1) return;
  if (weight_only[q->index] || !free_node(q) || !free_node(s) || !ir_read_after(f->g, s, q, q)) return;
  IrGroup *grp = ir_group_new(f->g, IR_GROUP_QUANT_ROWS);
  grp->role[IR_ROLE_QUANT_ROWS_SCALE] = s;
  grp->role[IR_ROLE_QUANT_ROWS_QUANTIZE] = q;
  s->fuse = q->fuse = grp;
}

static void fuse_norm(Fuse *f, IrNode *ln) {
  if (ln->op != IR_LAYERNORM || ln->dtype != IR_F32 || !free_node(ln)) return;
  /* the epilogue: climb while the value has one elementwise reader; right
   * after the layernorm also through one reshape (a group norm, ir's
   * layernorm over reshape(x, [N, groups, -1]) reshaped back before its
   * per-channel affine: frontend/builtins.c), which the tree reads through */
  IrNode *root = ln, *top = ln;
  for (IrNode *r; single(f, top) && (r = f->reader[top->index]) && free_node(r);) {
    if (is_elementwise(r))
      root = top = r;
    else if (top == ln && r->op == IR_RESHAPE)
      top = r;
    else
      break;
  }
  /* the prologue: the tree making the input, stored too when read elsewhere */
  IrNode *x = ln->in[0];
  int prologue = is_elementwise(x) && free_node(x) && (single(f, x) || ir_read_after(f->g, x, ln, root));
  if (root == ln && !prologue) return;
  IrGroup *grp = ir_group_new(f->g, IR_GROUP_NORM);
  grp->role[IR_ROLE_NORM_LAYERNORM] = ln;
  if (root != ln) {
    grp->role[IR_ROLE_NORM_EPILOGUE] = root;
    claim_tree(f, root, grp, ln);
  }
  ln->fuse = grp;
  if (prologue) {
    grp->role[IR_ROLE_NORM_PROLOGUE] = x;
    claim_tree(f, x, grp, NULL);
  }
}

/* The group every reader of x is in, or NULL when they differ, one is in
 * none or x is a graph output. */
static IrGroup *readers_group(const Fuse *f, const IrNode *x) {
  if (f->is_output[x->index]) return NULL;
  IrGroup *a = NULL;
  for (int r = f->first_reader[x->index]; r >= 0; r = f->next_reader[r]) {
    IrNode *rn = f->g->nodes[f->edge_node[r]];
    if (!rn->fuse || (a && rn->fuse != a)) return NULL;
    a = rn->fuse;
  }
  return a;
}

/* Groups whose kernel is an elementwise tree at its anchor, which can
 * recompute a shared input where it is read: map and concat groups and norm
 * groups with an epilogue (not a GEMM's epilogue, nor a norm anchored at
 * its layernorm). */
static int tree_anchored(const IrGroup *grp) {
  return grp->kind == IR_GROUP_MAP || grp->kind == IR_GROUP_CONCAT ||
         (grp->kind == IR_GROUP_NORM && grp->role[IR_ROLE_NORM_EPILOGUE]);
}

/* Pull into such a group every free elementwise, layout or concat node all
 * of whose readers are in that group: the kernel recomputes it where it is
 * read (once per reader), so it is never stored.  A norm group's layernorm
 * reads its input as stored when that is not the prologue (through layout
 * nodes, which may join): an elementwise or concat input stays out.
 * Repeats until nothing moves, since pulling one node can free its inputs'
 * readers. */
static void fuse_shared(Fuse *f) {
  for (int moved = 1; moved;) {
    moved = 0;
    for (int i = f->g->n_nodes - 1; i >= 0; i--) {
      IrNode *x = f->g->nodes[i];
      if (!free_node(x) || !(is_elementwise(x) || is_layout(x) || (x->op == IR_CONCAT && x->dtype == IR_F32)))
        continue;
      IrGroup *a = readers_group(f, x);
      if (a && tree_anchored(a) &&
          !(a->kind == IR_GROUP_NORM && a->role[IR_ROLE_NORM_LAYERNORM]->in[0] == x && !is_layout(x))) {
        x->fuse = a;
        moved = 1;
      }
    }
  }
}

/* concat of parts that are elementwise trees or views: one kernel picking a
 * part per coordinate (the timestep embedding's [cos, sin]; the guidance
 * combine's [eps, eps, rest]; the doubled half batch of forward_with_cfg). */
static void fuse_concat(Fuse *f, IrNode *n) {
  if (n->op != IR_CONCAT || n->dtype != IR_F32 || !free_node(n)) return;
  IrGroup *grp = ir_group_new(f->g, IR_GROUP_CONCAT);
  grp->role[IR_ROLE_CONCAT_ROOT] = n;
  n->fuse = grp;
  int count = 0;
  for (int i = 0; i < n->n_in; i++) {
    IrNode *x = n->in[i];
    int here = 0; /* the concat may read a part twice (the doubled half batch) */
    for (int j = 0; j < n->n_in; j++) here += n->in[j] == x;
    if (!free_node(x) || f->uses[x->index] != here) continue;
    if (is_elementwise(x))
      count += claim_tree(f, x, grp, NULL);
    else if (is_layout(x))
      claim_layout(f, x, grp), count++;
    else if (x->op == IR_CONCAT && x->dtype == IR_F32)
      x->fuse = grp, count++;
  }
  if (!count) n->fuse = NULL;
}

static void fuse_map(Fuse *f, IrNode *n) {
  if (!is_elementwise(n) || !free_node(n)) return;
  IrGroup *grp = ir_group_new(f->g, IR_GROUP_MAP);
  grp->role[IR_ROLE_MAP_ROOT] = n;
  if (claim_tree(f, n, grp, NULL) == 1) n->fuse = NULL; /* alone: nothing fused */
}

int pass_fuse(IrGraph *g, const PassOptions *o, IrErr *err) {
  (void)o;
  (void)err;
  Fuse f = {.g = g, .uses = ir_use_counts(g)};
  f.reader = xcalloc((size_t)g->n_nodes + 1, sizeof *f.reader);
  for (int i = 0; i < g->n_nodes; i++) {
    IrNode *n = g->nodes[i];
    n->fuse = NULL; /* the pass decides afresh */
    for (int j = 0; j < n->n_in; j++)
      if (f.uses[n->in[j]->index] == 1) f.reader[n->in[j]->index] = n;
  }
  for (int i = 0; i < g->n_outputs; i++) f.reader[g->outputs[i]->index] = NULL;
  size_t edges = 0;
  for (int i = 0; i < g->n_nodes; i++) edges += (size_t)g->nodes[i]->n_in;
  f.first_reader = xmalloc(((size_t)g->n_nodes + 1) * sizeof *f.first_reader);
  f.next_reader = xmalloc((edges + 1) * sizeof *f.next_reader);
  f.edge_node = xmalloc((edges + 1) * sizeof *f.edge_node);
  f.is_output = xcalloc((size_t)g->n_nodes + 1, 1);
  for (int i = 0; i < g->n_nodes; i++) f.first_reader[i] = -1;
  for (int i = 0; i < g->n_outputs; i++) f.is_output[g->outputs[i]->index] = 1;
  int r = 0;
  for (int i = 0; i < g->n_nodes; i++)
    for (int j = 0; j < g->nodes[i]->n_in; j++, r++) {
      int x = g->nodes[i]->in[j]->index;
      f.edge_node[r] = i;
      f.next_reader[r] = f.first_reader[x];
      f.first_reader[x] = r;
    }
  for (int i = g->n_nodes - 1; i >= 0; i--) fuse_attention(&f, g->nodes[i]);
  for (int i = g->n_nodes - 1; i >= 0; i--) fuse_gemm_epilogue(&f, g->nodes[i]);
  for (int i = 0; i < g->n_nodes; i++) fuse_norm(&f, g->nodes[i]);
  unsigned char *weight_only = ir_weight_only(g);
  for (int i = 0; i < g->n_nodes; i++) fuse_quant_rows(&f, g->nodes[i], weight_only);
  free(weight_only);
  for (int i = g->n_nodes - 1; i >= 0; i--) fuse_concat(&f, g->nodes[i]);
  fuse_shared(&f);
  for (int i = g->n_nodes - 1; i >= 0; i--) fuse_map(&f, g->nodes[i]);
  fuse_shared(&f);
  for (int i = 0; i < g->n_nodes; i++) {
    IrNode *n = g->nodes[i];
    IrErr e;
    if (n->fuse && ir_group_anchor(n->fuse) == n && ir_group_check(g, n->fuse, f.uses, &e))
      ditc_fatal(__FILE__, __LINE__, "fuse formed a group its kind does not allow: %s", e.msg);
  }
  free(f.uses);
  free(f.reader);
  free(f.first_reader);
  free(f.next_reader);
  free(f.edge_node);
  free(f.is_output);
  return 0;
}
