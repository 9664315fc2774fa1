/*
 * route_experts.c - run a mixture-of-experts MLP on the tokens routed to each
 * expert instead of on every token.
 *
 * The model language writes the MoE MLP densely (models/dit.dit, moe_mlp):
 *
 *   gates = topk_softmax(logits) {k}                        [..., E]
 *   out   = sum_e linear(act(fc1_e(x)), W2_e, b2_e) * slice(gates, last, e, 1)
 *
 * so every expert runs on every token, E/k times the work.  Each token
 * reaches exactly k experts, so exactly T*k rows are routed (T tokens) and
 * only their split among the experts depends on the data; the rewrite keeps
 * every shape static:
 *
 *   r   = moe_route(logits) {k}          routing table (ir.h)
 *   xs  = moe_gather(x, r) {k}           [T*k, D] rows grouped by expert
 *   h   = moe_linear(xs, r, W1, b1)      W1 = the fc1 weights stacked [E, H, D]
 *   ys  = moe_linear(act(h), r, W2, b2)  W2 = the fc2 weights stacked [E, D, H]
 *   out = moe_combine(ys, r, gates)      each token sums its k gated rows
 *
 * The stacked weights are concat + reshape of the experts' weights, computed
 * once by every backend (weight-only, like hoist-adaln's).
 *
 * fc1_e(x) is linear(x, W1_e, b1_e), or - after hoist-adaln merged the
 * linears that read x (the router and every expert's fc1) - a slice of the
 * merged linear(x, concat(...)).  Then the expert rows are taken from the
 * merged weights and, once the dense experts are gone, the merged linear is
 * narrowed to the rows still read (the router's), so it no longer computes
 * the dense fc1 of every expert.
 *
 * A group is rewritten only when the pattern is exact: one slice and product
 * per expert 0..E-1 (k < E), the products summed by a tree of adds nobody else
 * reads, every expert node used once, the same activation, shapes and dtypes
 * for all experts, and weight-only weights.  Anything else is left untouched.
 */
#include <stdlib.h>

#include "passes/passes.h"

/* Users of every node (by index), built once over the nodes as they are. */
typedef struct {
  int *start, *list; /* users of node i: list[start[i] .. start[i+1]-1] */
  int *uses;         /* including graph outputs */
} Users;

static void users_build(IrGraph *g, Users *u) {
  int n = g->n_nodes;
  u->uses = ir_use_counts(g); /* refreshes node->index */
  u->start = xcalloc((size_t)n + 2, sizeof *u->start);
  for (int i = 0; i < n; i++)
    for (int j = 0; j < g->nodes[i]->n_in; j++) u->start[g->nodes[i]->in[j]->index + 2]++;
  for (int i = 0; i < n; i++) u->start[i + 2] += u->start[i + 1];
  u->list = xmalloc(((size_t)u->start[n + 1] + 1) * sizeof *u->list);
  for (int i = 0; i < n; i++)
    for (int j = 0; j < g->nodes[i]->n_in; j++) u->list[u->start[g->nodes[i]->in[j]->index + 1]++] = i;
}

static void users_free(Users *u) {
  free(u->start);
  free(u->list);
  free(u->uses);
}

/* One expert of a dense MoE: out_e = mul(fc2(act(h)), slice(gates, e)). */
typedef struct {
  IrNode *mul, *fc2, *act, *h;
  IrNode *w1, *b1;     /* fc1's weight and bias (the merged linear's when sliced) */
  IrDim w1_row;        /* first row of the expert in w1 (0 unless h is a slice) */
  IrNode *merged;      /* h is a slice of this merged linear, or NULL */
} Expert;

typedef struct {
  IrGraph *g;
  Users u;
  unsigned char *weight_only;  /* ir_weight_only() of the nodes before the pass */
  int n_orig;                  /* how many there were */
  IrNode **merged;      /* merged linears that lost expert rows: narrowed at the end */
  int n_merged;
} Ctx;

static int used_once(Ctx *c, const IrNode *n) { return c->u.uses[n->index] == 1; }

static int weight_only(Ctx *c, const IrNode *n) {
  return n->index < c->n_orig && c->g->nodes[n->index] == n && c->weight_only[n->index];
}

static int same_lead(const IrShape *a, const IrShape *b) {
  if (a->rank != b->rank) return 0;
  for (int i = 0; i < a->rank - 1; i++)
    if (a->d[i] != b->d[i]) return 0;
  return 1;
}

/* The fc1 of an expert: h = linear(x, w, b) or slice(linear(x, w, b), last, off, len). */
static int match_fc1(Ctx *c, Expert *x, IrNode **input) {
  IrNode *h = x->h, *l = h;
  x->w1_row = 0;
  x->merged = NULL;
  if (!used_once(c, h)) return 0;
  if (h->op == IR_SLICE) {
    l = h->in[0];
    if (l->op != IR_LINEAR || h->attr.axis != h->shape.rank - 1) return 0;
    x->w1_row = h->attr.start;
    x->merged = l;
  }
  if (l->op != IR_LINEAR || !weight_only(c, l->in[1]) || (l->n_in > 2 && !weight_only(c, l->in[2]))) return 0;
  x->w1 = l->in[1];
  x->b1 = l->n_in > 2 ? l->in[2] : NULL;
  *input = l->in[0];
  return 1;
}

/* The expert whose gate is slice s (of gates g), or 0. */
static int match_expert(Ctx *c, IrNode *g, IrNode *s, Expert *x, IrNode **input) {
  for (int k = c->u.start[s->index]; k < c->u.start[s->index + 1]; k++) {
    IrNode *m = c->g->nodes[c->u.list[k]];
    if (m->op != IR_MUL || m->in[0] == m->in[1] || !used_once(c, m)) continue;
    IrNode *y = m->in[0] == s ? m->in[1] : m->in[0];
    if (y->op != IR_LINEAR || !used_once(c, y) || !ir_shape_eq(&y->shape, &m->shape) ||
        !same_lead(&y->shape, &g->shape))
      continue;
    IrNode *a = y->in[0];
    if (ir_op_class(a->op) != IR_CLASS_UNARY || a->op == IR_CAST || !used_once(c, a)) continue;
    if (!weight_only(c, y->in[1]) || (y->n_in > 2 && !weight_only(c, y->in[2]))) continue;
    *x = (Expert){.mul = m, .fc2 = y, .act = a, .h = a->in[0]};
    if (match_fc1(c, x, input)) return 1;
  }
  return 0;
}

/* Do two experts agree on everything the stacked ops need? */
static int experts_agree(const Expert *a, const Expert *b) {
  return a->act->op == b->act->op && a->act->attr.f == b->act->attr.f &&
         ir_shape_eq(&a->h->shape, &b->h->shape) && ir_shape_eq(&a->fc2->in[1]->shape, &b->fc2->in[1]->shape) &&
         a->fc2->in[1]->dtype == b->fc2->in[1]->dtype && a->fc2->n_in == b->fc2->n_in &&
         a->w1->dtype == b->w1->dtype && !a->b1 == !b->b1 && a->h->dtype == b->h->dtype &&
         (!a->b1 || a->b1->dtype == b->b1->dtype) && (a->fc2->n_in < 3 || a->fc2->in[2]->dtype == b->fc2->in[2]->dtype);
}

/* The root of the add tree summing the experts' products, or NULL. */
static IrNode *sum_root(Ctx *c, const Expert *xs, int n) {
  IrNode *root = xs[0].mul;
  while (used_once(c, root)) {
    int k = c->u.start[root->index];
    if (k == c->u.start[root->index + 1]) break; /* the use is a graph output */
    IrNode *p = c->g->nodes[c->u.list[k]];
    if (p->op != IR_ADD || !ir_shape_eq(&p->shape, &root->shape)) break;
    root = p;
  }
  /* The tree's leaves must be exactly the n products, each once. */
  IrNode **stack = xmalloc(((size_t)n * 2 + 2) * sizeof *stack);
  int sp = 0, leaves = 0, ok = 1;
  stack[sp++] = root;
  while (sp && ok) {
    IrNode *t = stack[--sp];
    int leaf = -1;
    for (int e = 0; e < n && leaf < 0; e++)
      if (xs[e].mul == t) leaf = e;
    if (leaf >= 0) {
      leaves++;
      continue;
    }
    ok = t->op == IR_ADD && (t == root || used_once(c, t)) && ir_shape_eq(&t->shape, &root->shape) &&
         sp + 2 <= 2 * n + 2;
    if (ok) {
      stack[sp++] = t->in[0];
      stack[sp++] = t->in[1];
    }
  }
  free(stack);
  return ok && leaves == n && root != xs[0].mul ? root : NULL;
}

/* Rows [row, row + len) of weight w (axis 0): the concat input that is
 * exactly those rows, else a slice. */
static IrNode *weight_rows(IrGraph *g, IrNode *w, IrDim row, IrDim len) {
  if (row == 0 && len == w->shape.d[0]) return w;
  if (w->op == IR_CONCAT && w->attr.axis == 0) {
    IrDim at = 0;
    for (int i = 0; i < w->n_in; i++) {
      IrDim d = w->in[i]->shape.d[0];
      if (row >= at && row + len <= at + d) return weight_rows(g, w->in[i], row - at, len);
      at += d;
    }
  }
  IrNode *s = ir_slice(g, w, 0, row, len);
  s->loc = w->loc;
  return s;
}

/* Stack the experts' [rows, cols] (or [rows]) weights into [E, rows(, cols)]. */
static IrNode *stack_weights(IrGraph *g, IrNode **w, int n, IrLoc loc) {
  IrNode *cat = ir_concat(g, n, w, 0);
  IrDim d[3] = {n, w[0]->shape.d[0], w[0]->shape.rank > 1 ? w[0]->shape.d[1] : 0};
  IrNode *r = ir_reshape(g, cat, w[0]->shape.rank + 1, d);
  cat->loc = r->loc = loc;
  return r;
}

static IrNode *moe_node(Ctx *c, IrOp op, int n_in, IrNode **in, int k, const IrNode *like, IrErr *err) {
  IrAttrs at = {.k = k};
  IrNode *n = ir_node_new(c->g, op, n_in, in, &at, like->loc, err);
  if (n) n->name = like->name;
  return n;
}

/* The stacked weight (j = 1: fc1's, 2: fc2's) or bias (+ 2) of the experts. */
static IrNode *stacked(Ctx *c, const Expert *xs, int n, int which) {
  IrNode **w = xmalloc((size_t)n * sizeof *w);
  for (int e = 0; e < n; e++) {
    const Expert *x = &xs[e];
    IrDim rows = x->h->shape.d[x->h->shape.rank - 1];
    switch (which) {
    case 1: w[e] = weight_rows(c->g, x->w1, x->w1_row, rows); break;
    case 3: w[e] = weight_rows(c->g, x->b1, x->w1_row, rows); break;
    case 2: w[e] = x->fc2->in[1]; break;
    default: w[e] = x->fc2->in[2]; break;
    }
  }
  IrNode *s = stack_weights(c->g, w, n, xs[0].fc2->loc);
  free(w);
  return s;
}

static void remember_merged(Ctx *c, IrNode *l) {
  for (int i = 0; i < c->n_merged; i++)
    if (c->merged[i] == l) return;
  c->merged[c->n_merged++] = l;
}

/* Rewrite the dense MoE whose gates are g, if it is one. */
static void route(Ctx *c, IrNode *g) {
  int rank = g->shape.rank, k = g->attr.k;
  IrDim n = g->shape.d[rank - 1];
  if (rank < 2 || n < 2 || k >= n || n > 4096) return;
  int E = (int)n;
  Expert *xs = xcalloc((size_t)E, sizeof *xs);
  IrNode *input = NULL;
  int found = 0, ok = 1;
  for (int j = c->u.start[g->index]; j < c->u.start[g->index + 1] && ok; j++) {
    IrNode *s = c->g->nodes[c->u.list[j]];
    if (s->op != IR_SLICE || s->attr.axis != rank - 1 || s->attr.len != 1) continue;
    Expert x;
    IrNode *in;
    if (!match_expert(c, g, s, &x, &in)) continue;
    int e = (int)s->attr.start;
    if (xs[e].mul || (input && in != input) || !same_lead(&in->shape, &g->shape)) ok = 0;
    xs[e] = x;
    input = in;
    found++;
  }
  ok = ok && found == E; /* then every expert 0..E-1 has its product */
  for (int e = 1; e < E && ok; e++) ok = experts_agree(&xs[0], &xs[e]);
  IrNode *root = ok ? sum_root(c, xs, E) : NULL;
  if (!root) {
    free(xs);
    return;
  }

  IrErr err = {{0}};
  IrNode *logits = g->in[0];
  IrNode *r = moe_node(c, IR_MOE_ROUTE, 1, &logits, k, g, &err);
  IrNode *gin[2] = {input, r};
  IrNode *xg = r ? moe_node(c, IR_MOE_GATHER, 2, gin, k, g, &err) : NULL;
  if (!xg) { /* e.g. tokens over two batch-sized axes: leave the graph as it is (DCE drops r) */
    free(xs);
    return;
  }
  IrNode *l1[4] = {xg, r, stacked(c, xs, E, 1), xs[0].b1 ? stacked(c, xs, E, 3) : NULL};
  IrNode *h = moe_node(c, IR_MOE_LINEAR, l1[3] ? 4 : 3, l1, 0, g, &err);
  DITC_ASSERT(h);
  IrNode *a = ir_node_new(c->g, xs[0].act->op, 1, &h, &xs[0].act->attr, xs[0].act->loc, &err);
  DITC_ASSERT(a);
  a->name = g->name;
  IrNode *l2[4] = {a, r, stacked(c, xs, E, 2), xs[0].fc2->n_in > 2 ? stacked(c, xs, E, 4) : NULL};
  IrNode *ys = moe_node(c, IR_MOE_LINEAR, l2[3] ? 4 : 3, l2, 0, g, &err);
  DITC_ASSERT(ys);
  IrNode *cin[3] = {ys, r, g};
  IrNode *out = moe_node(c, IR_MOE_COMBINE, 3, cin, 0, g, &err);
  DITC_ASSERT(out && ir_shape_eq(&out->shape, &root->shape) && out->dtype == root->dtype);
  ir_replace_all_uses(c->g, root, out);
  for (int e = 0; e < E; e++)
    if (xs[e].merged) remember_merged(c, xs[e].merged);
  free(xs);
}

/* Narrow a merged linear (all of whose users are slices of its last axis) to
 * the rows they read. */
static void narrow(IrGraph *g, Users *u, IrNode *l) {
  int ax = l->shape.rank - 1;
  IrDim full = l->shape.d[ax], lo = full, hi = 0;
  if (u->uses[l->index] != u->start[l->index + 1] - u->start[l->index]) return; /* a graph output */
  for (int j = u->start[l->index]; j < u->start[l->index + 1]; j++) {
    IrNode *s = g->nodes[u->list[j]];
    if (s->op != IR_SLICE || s->attr.axis != ax) return;
    if (s->attr.start < lo) lo = s->attr.start;
    if (s->attr.start + s->attr.len > hi) hi = s->attr.start + s->attr.len;
  }
  if (lo >= hi || (lo == 0 && hi == full)) return;
  IrNode *w = weight_rows(g, l->in[1], lo, hi - lo), *b = l->n_in > 2 ? weight_rows(g, l->in[2], lo, hi - lo) : NULL;
  IrNode *nl = ir_linear(g, l->in[0], w, b);
  nl->loc = l->loc;
  nl->name = l->name;
  for (int j = u->start[l->index]; j < u->start[l->index + 1]; j++) {
    IrNode *s = g->nodes[u->list[j]];
    IrNode *ns = nl;
    if (s->attr.start != lo || s->attr.len != hi - lo) {
      ns = ir_slice(g, nl, ax, s->attr.start - lo, s->attr.len);
      ns->loc = s->loc;
      ns->name = s->name;
    } else if (s->name) {
      nl->name = s->name; /* the one remaining piece: name the linear after it (the router) */
    }
    ir_replace_all_uses(g, s, ns);
  }
}

int pass_route_experts(IrGraph *g, const PassOptions *o, IrErr *err) {
  (void)o;
  Ctx c = {.g = g, .n_orig = g->n_nodes};
  c.weight_only = ir_weight_only(g);
  users_build(g, &c.u);
  c.merged = xmalloc(((size_t)g->n_nodes + 1) * sizeof *c.merged);
  for (int i = 0; i < c.n_orig; i++)
    if (g->nodes[i]->op == IR_TOPK_SOFTMAX) route(&c, g->nodes[i]);
  users_free(&c.u);
  free(c.weight_only);
  int rc = 0;
  if (c.n_merged) {
    /* Drop the dense experts first, so the merged linears' remaining users are known. */
    if (ir_graph_toposort(g, err)) rc = -1;
    else ir_graph_dce(g);
    if (!rc) {
      Users u;
      users_build(g, &u);
      for (int i = 0; i < c.n_merged; i++) {
        IrNode *l = c.merged[i];
        if (l->index < g->n_nodes && g->nodes[l->index] == l) narrow(g, &u, l);
      }
      users_free(&u);
    }
  }
  free(c.merged);
  if (rc || ir_graph_toposort(g, err)) return -1;
  ir_graph_dce(g);
  return 0;
}
