/*
 * fuse.c - the `fuse` pass: group nodes that one kernel can compute.
 *
 * The pass changes no value; it marks groups (IrNode.fuse = the group's
 * anchor, its last node) and the code generator lowers each group as one
 * kernel.  Groups, claimed in this order so the larger patterns win:
 *
 *   attention   matmul(q, k^T) [-> scale] -> softmax -> matmul(., v)
 *               [-> permute]: the online-softmax kernel; the N x N scores
 *               never reach memory, the head split (slice / reshape /
 *               permute of the qkv product) and the head merge are its
 *               indexing;
 *   gemm        linear -> gelu_tanh: the GEMM's bias + GELU epilogue;
 *   norm        [prologue] -> layernorm -> [epilogue]: the elementwise tree
 *               that makes the layernorm's input (DiT: the residual add
 *               x + gate * y of the previous sub-block, whose value is also
 *               stored for the next residual) and the tree over the
 *               normalised value (modulate: x * (1 + scale) + shift), one
 *               warp per row;
 *   map         every other tree of f32 elementwise nodes whose inner nodes
 *               have no other reader, with the slices, reshapes and
 *               permutes feeding it read through strides (the adaLN chunks,
 *               the patch embedding's transpose under the position add) and
 *               embedding lookups read as gathers from their tables (the
 *               class embedding under the conditioning add);
 *   concat      a concat of such trees and views, one kernel picking a part
 *               per coordinate (the timestep embedding's [cos, sin], the
 *               guidance combine).
 *
 * Inner nodes must have exactly one reader (graph outputs count): their
 * values then never need storing.  A prologue's root may have other readers
 * when all of them come after the group's anchor in graph order, since the
 * kernel writes it when the anchor runs.  The code generator re-checks what
 * it lowers and falls back to one kernel per node where a group does not fit
 * its templates (e.g. a head dimension above the attention kernel's limit),
 * so the marks are hints and never change a result.
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
static void claim_layout(Fuse *f, IrNode *x, IrNode *anchor) {
  while (is_layout(x) && single(f, x) && free_node(x)) {
    x->fuse = anchor;
    x = x->in[0];
  }
}

/* The tree under n: single-reader free elementwise inputs join it, the
 * layout chains under its leaves too.  Returns the number of nodes marked. */
static int claim_tree(Fuse *f, IrNode *n, IrNode *anchor, const IrNode *stop) {
  int count = 1;
  n->fuse = anchor;
  for (int i = 0; i < n->n_in; i++) {
    IrNode *x = n->in[i];
    if (x == stop || !free_node(x) || !single(f, x)) continue;
    if (is_elementwise(x))
      count += claim_tree(f, x, anchor, stop);
    else if (is_layout(x)) {
      claim_layout(f, x, anchor);
      count++;
    } else if (x->op == IR_EMBEDDING && x->dtype == IR_F32) { /* read as a gather from its table */
      x->fuse = anchor;
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
  IrNode *anchor = n;
  IrNode *r = f->reader[n->index];
  if (r && r->op == IR_PERMUTE && free_node(r)) anchor = r;
  qk->fuse = sm->fuse = n->fuse = anchor;
  if (sc) sc->fuse = anchor;
  if (anchor != n) anchor->fuse = anchor;
  claim_layout(f, qk->in[0], anchor);
  claim_layout(f, qk->in[1], anchor);
  claim_layout(f, n->in[1], anchor);
}

static void fuse_gemm_gelu(Fuse *f, IrNode *n) {
  if (n->op != IR_GELU_TANH || !free_node(n)) return;
  IrNode *l = n->in[0];
  if (l->op != IR_LINEAR || l->n_in != 3 || !single(f, l) || !free_node(l)) return;
  l->fuse = n->fuse = n;
}

/* Every reader of x but the layernorm comes after anchor. */
static int readers_after(Fuse *f, const IrNode *x, const IrNode *ln, const IrNode *anchor) {
  for (int i = 0; i < f->g->n_nodes; i++) {
    IrNode *r = f->g->nodes[i];
    if (r == ln) continue;
    for (int j = 0; j < r->n_in; j++)
      if (r->in[j] == x && r->index < anchor->index) return 0;
  }
  return 1; /* graph outputs are read after everything */
}

static void fuse_norm(Fuse *f, IrNode *ln) {
  if (ln->op != IR_LAYERNORM || ln->dtype != IR_F32 || !free_node(ln)) return;
  /* the epilogue: climb while the value has one elementwise reader */
  IrNode *root = ln;
  while (single(f, root) && f->reader[root->index] && is_elementwise(f->reader[root->index]) &&
         free_node(f->reader[root->index]))
    root = f->reader[root->index];
  /* the prologue: the tree making the input, stored too when read elsewhere */
  IrNode *x = ln->in[0];
  int prologue = is_elementwise(x) && free_node(x) && (single(f, x) || readers_after(f, x, ln, root));
  if (root == ln && !prologue) return;
  if (root != ln) claim_tree(f, root, root, ln);
  ln->fuse = root;
  if (prologue) claim_tree(f, x, root, NULL);
}

/* The anchor every reader of x has, or NULL when they differ, one has none
 * or x is a graph output. */
static IrNode *readers_anchor(const Fuse *f, const IrNode *x) {
  if (f->is_output[x->index]) return NULL;
  IrNode *a = NULL;
  for (int r = f->first_reader[x->index]; r >= 0; r = f->next_reader[r]) {
    IrNode *rn = f->g->nodes[f->edge_node[r]];
    if (!rn->fuse || (a && rn->fuse != a)) return NULL;
    a = rn->fuse;
  }
  return a;
}

/* The anchor of a group of elementwise kernels (a map tree, a layernorm's
 * epilogue), not of a GEMM's GELU epilogue. */
static int map_anchor(const IrNode *a) {
  return is_elementwise(a) && !(a->op == IR_GELU_TANH && a->in[0]->op == IR_LINEAR && a->in[0]->fuse == a);
}

/* Pull into a map or concat group every free elementwise, layout or concat
 * node all of whose readers are in that group: the kernel recomputes it
 * where it is read (once per reader), so it is never stored.  Repeats until
 * nothing moves, since pulling one node can free its inputs' readers. */
static void fuse_shared(Fuse *f) {
  for (int moved = 1; moved;) {
    moved = 0;
    for (int i = f->g->n_nodes - 1; i >= 0; i--) {
      IrNode *x = f->g->nodes[i];
      if (!free_node(x) || !(is_elementwise(x) || is_layout(x) || (x->op == IR_CONCAT && x->dtype == IR_F32)))
        continue;
      IrNode *a = readers_anchor(f, x);
      if (a && (map_anchor(a) || a->op == IR_CONCAT)) {
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
  n->fuse = n;
  int count = 0;
  for (int i = 0; i < n->n_in; i++) {
    IrNode *x = n->in[i];
    int here = 0; /* the concat may read a part twice (the doubled half batch) */
    for (int j = 0; j < n->n_in; j++) here += n->in[j] == x;
    if (!free_node(x) || f->uses[x->index] != here) continue;
    if (is_elementwise(x))
      count += claim_tree(f, x, n, NULL);
    else if (is_layout(x))
      claim_layout(f, x, n), count++;
    else if (x->op == IR_CONCAT && x->dtype == IR_F32)
      x->fuse = n, count++;
  }
  if (!count) n->fuse = NULL;
}

static void fuse_map(Fuse *f, IrNode *n) {
  if (!is_elementwise(n) || !free_node(n)) return;
  if (claim_tree(f, n, n, NULL) == 1) n->fuse = NULL; /* alone: nothing fused */
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
  for (int i = g->n_nodes - 1; i >= 0; i--) fuse_gemm_gelu(&f, g->nodes[i]);
  for (int i = 0; i < g->n_nodes; i++) fuse_norm(&f, g->nodes[i]);
  for (int i = g->n_nodes - 1; i >= 0; i--) fuse_concat(&f, g->nodes[i]);
  fuse_shared(&f);
  for (int i = g->n_nodes - 1; i >= 0; i--) fuse_map(&f, g->nodes[i]);
  fuse_shared(&f);
  free(f.uses);
  free(f.reader);
  free(f.first_reader);
  free(f.next_reader);
  free(f.edge_node);
  free(f.is_output);
  return 0;
}
