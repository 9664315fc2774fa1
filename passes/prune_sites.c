/*
 * prune_sites.c - what the passes that remove work share (prune.h).
 */
#include <stdlib.h>
#include <string.h>

#include "passes/prune.h"

const char *prune_label(const IrNode *n, char *buf, size_t len) {
  if (n->name && *n->name) return n->name;
  snprintf(buf, len, "%%%d", n->id);
  return buf;
}

/* reader[i]: the one reader of node i (NULL: none, several, or a graph output). */
static IrNode **single_readers(IrGraph *g) {
  IrNode **r = xcalloc((size_t)g->n_nodes + 1, sizeof *r);
  int *uses = ir_use_counts(g);
  for (int i = 0; i < g->n_nodes; i++)
    for (int j = 0; j < g->nodes[i]->n_in; j++) {
      IrNode *x = g->nodes[i]->in[j];
      if (uses[x->index] == 1) r[x->index] = g->nodes[i];
    }
  free(uses);
  return r;
}

static int is_perm(const IrNode *n, int rank, const int *perm) {
  if (n->op != IR_PERMUTE || n->shape.rank != rank) return 0;
  for (int i = 0; i < rank; i++)
    if (n->attr.perm[i] != perm[i]) return 0;
  return 1;
}

/* h = permute(reshape(slice(qkv, last axis, start, inner))) [.., H, N, hd];
 * the slice's input in *qkv.  0 when h is not that. */
static int head_split(IrNode **rd, IrNode *h, IrNode **qkv, int64_t *start, int64_t *len, int *heads) {
  static const int perm[4] = {0, 2, 1, 3};
  if (!is_perm(h, 4, perm) || rd[h->index] == NULL) return 0;
  IrNode *r = h->in[0];
  if (r->op != IR_RESHAPE || r->shape.rank != 4 || rd[r->index] != h) return 0;
  IrNode *s = r->in[0];
  if (s->op != IR_SLICE || s->shape.rank != 3 || s->attr.axis != 2 || rd[s->index] != r) return 0;
  if (ir_dim_is_sym(s->attr.start) || ir_dim_is_sym(s->attr.len)) return 0;
  if (r->shape.d[0] != s->shape.d[0] || r->shape.d[1] != s->shape.d[1]) return 0;
  *qkv = s->in[0];
  *start = s->attr.start;
  *len = s->attr.len;
  *heads = (int)r->shape.d[2];
  return r->shape.d[2] > 0 && r->shape.d[3] > 0 && r->shape.d[2] * r->shape.d[3] == s->attr.len;
}

int prune_find_attention(IrGraph *g, PruneAttn **out) {
  IrNode **rd = single_readers(g);
  int n = 0;
  *out = xcalloc((size_t)g->n_nodes + 1, sizeof **out);
  for (int i = 0; i < g->n_nodes; i++) {
    IrNode *pv = g->nodes[i];
    if (pv->op != IR_MATMUL || pv->attr.trans_b || pv->shape.rank != 4) continue;
    IrNode *sm = pv->in[0], *qk, *sc = NULL;
    if (sm->op != IR_SOFTMAX || rd[sm->index] != pv) continue;
    qk = sm->in[0];
    if (qk->op == IR_SCALE && rd[qk->index] == sm) {
      sc = qk;
      qk = qk->in[0];
    }
    if (qk->op != IR_MATMUL || !qk->attr.trans_b || rd[qk->index] != (sc ? sc : sm)) continue;
    IrNode *qkv[3];
    int64_t start[3], len[3];
    int heads[3];
    IrNode *hs[3] = {qk->in[0], qk->in[1], pv->in[1]};
    int ok = 1;
    for (int j = 0; j < 3 && ok; j++) ok = head_split(rd, hs[j], &qkv[j], &start[j], &len[j], &heads[j]);
    if (!ok || rd[hs[0]->index] != qk || rd[hs[1]->index] != qk || rd[hs[2]->index] != pv) continue;
    int64_t inner = len[0];
    if (qkv[1] != qkv[0] || qkv[2] != qkv[0] || len[1] != inner || len[2] != inner || start[0] != 0 ||
        start[1] != inner || start[2] != 2 * inner || heads[1] != heads[0] || heads[2] != heads[0])
      continue;
    IrNode *l = qkv[0];
    if (l->op != IR_LINEAR || l->shape.rank != 3 || l->shape.d[2] != 3 * inner || l->in[1]->shape.rank != 2) continue;
    /* the head merge and proj */
    static const int perm[4] = {0, 2, 1, 3};
    IrNode *pm = rd[pv->index];
    if (!pm || !is_perm(pm, 4, perm)) continue;
    IrNode *mg = rd[pm->index];
    if (!mg || mg->op != IR_RESHAPE || mg->shape.rank != 3 || mg->shape.d[2] != inner) continue;
    IrNode *pj = rd[mg->index];
    if (!pj || pj->op != IR_LINEAR || pj->in[0] != mg || pj->in[1]->shape.rank != 2) continue;
    PruneAttn *a = &(*out)[n++];
    a->qkv = l;
    a->x = l->in[0];
    a->w = l->in[1];
    a->b = l->n_in > 2 ? l->in[2] : NULL;
    a->proj = pj;
    a->pw = pj->in[1];
    a->pb = pj->n_in > 2 ? pj->in[2] : NULL;
    a->heads = heads[0];
    a->inner = inner;
    a->hd = inner / heads[0];
    a->has_scale = sc != NULL;
    a->scale = sc ? sc->attr.f : 1.0f;
  }
  free(rd);
  return n;
}

int prune_find_mlps(IrGraph *g, PruneMlp **out) {
  IrNode **rd = single_readers(g);
  int n = 0;
  *out = xcalloc((size_t)g->n_nodes + 1, sizeof **out);
  for (int i = 0; i < g->n_nodes; i++) {
    IrNode *f2 = g->nodes[i];
    if (f2->op != IR_LINEAR || f2->in[1]->shape.rank != 2) continue;
    IrNode *act = f2->in[0];
    if ((act->op != IR_GELU_TANH && act->op != IR_GELU) || rd[act->index] != f2) continue;
    IrNode *f1 = act->in[0];
    if (f1->op != IR_LINEAR || rd[f1->index] != act || f1->in[1]->shape.rank != 2) continue;
    int64_t hidden = f1->in[1]->shape.d[0];
    if (f2->in[1]->shape.d[1] != hidden || hidden < 1) continue;
    (*out)[n++] = (PruneMlp){f1, act, f2, hidden};
  }
  free(rd);
  return n;
}

/* ---- masks ---------------------------------------------------------------------- */

static const char HEX[] = "0123456789abcdef";

char *prune_mask_text(unsigned char *const *masks, int n_sites, const int64_t *n) {
  size_t cap = 1;
  for (int s = 0; s < n_sites; s++) cap += (size_t)(n[s] + 3) / 4 + 1;
  char *t = xmalloc(cap), *p = t;
  for (int s = 0; s < n_sites; s++) {
    if (s) *p++ = '.';
    for (int64_t j = 0; j < (n[s] + 3) / 4; j++) {
      int v = 0;
      for (int b = 0; b < 4 && 4 * j + b < n[s]; b++) v |= (masks[s][4 * j + b] ? 1 : 0) << b;
      *p++ = HEX[v];
    }
  }
  *p = 0;
  return t;
}

int prune_mask_sites(const char *text) {
  if (!*text) return 0;
  int n = 1;
  for (const char *p = text; *p; p++) n += *p == '.';
  return n;
}

int prune_mask_parse(const char *text, int site, int64_t n, unsigned char *keep, IrErr *err) {
  const char *p = text;
  for (int s = 0; s < site && p; s++) {
    p = strchr(p, '.');
    if (p) p++;
  }
  if (!p) return ir_errf(err, "select '%.40s%s' has no mask for site %d", text, strlen(text) > 40 ? "..." : "", site);
  size_t len = strcspn(p, ".");
  if ((int64_t)len != (n + 3) / 4)
    return ir_errf(err, "select: mask %d has %zu hex digits; %lld indices need %lld", site, len, (long long)n,
                   (long long)((n + 3) / 4));
  for (int64_t j = 0; j < (int64_t)len; j++) {
    const char *h = strchr(HEX, p[j]);
    if (!h || !p[j]) return ir_errf(err, "select: mask %d: '%c' is not a hex digit", site, p[j]);
    int v = (int)(h - HEX);
    for (int b = 0; b < 4; b++) {
      int64_t i = 4 * j + b;
      if (i < n) keep[i] = (unsigned char)(v >> b & 1);
      else if (v >> b & 1) return ir_errf(err, "select: mask %d names index %lld of %lld", site, (long long)i, (long long)n);
    }
  }
  return 0;
}

void prune_masks_init(PruneMasks *m, int n) {
  m->n = n;
  m->keep = xcalloc((size_t)n + 1, sizeof *m->keep);
  m->size = xcalloc((size_t)n + 1, sizeof *m->size);
}

void prune_masks_free(PruneMasks *m) {
  for (int s = 0; s < m->n; s++) free(m->keep[s]);
  free(m->keep);
  free(m->size);
}

void prune_masks_record(const PassOptions *o, const PruneMasks *m) {
  char *text = prune_mask_text(m->keep, m->n, m->size);
  pass_opt_decide(o, "select", text);
  free(text);
}

int prune_finish(IrGraph *g, IrErr *err) {
  if (ir_graph_toposort(g, err)) return -1;
  ir_graph_dce(g);
  return 0;
}

/* ---- weights from rows or columns -------------------------------------------------- */

IrNode *prune_take(IrGraph *g, IrNode *w, int axis, int parts, int64_t unit, const unsigned char *keep, int64_t n_keep) {
  int64_t kept = 0;
  for (int64_t i = 0; i < n_keep; i++) kept += keep[i] != 0;
  if (kept == n_keep) return w;
  IrNode **pieces = xmalloc((size_t)(parts * n_keep + 1) * sizeof *pieces);
  int np = 0;
  for (int p = 0; p < parts; p++)
    for (int64_t i = 0; i < n_keep;) {
      if (!keep[i]) {
        i++;
        continue;
      }
      int64_t j = i;
      while (j < n_keep && keep[j]) j++;
      pieces[np++] = ir_slice(g, w, axis, (p * n_keep + i) * unit, (j - i) * unit);
      i = j;
    }
  IrNode *r = np == 1 ? pieces[0] : ir_concat(g, np, pieces, axis);
  free(pieces);
  return r;
}

typedef struct {
  double s;
  int64_t i;
} Scored;

/* higher score first; ties: the lower index first */
static int cmp_scored(const void *a, const void *b) {
  const Scored *x = a, *y = b;
  if (x->s != y->s) return x->s > y->s ? -1 : 1;
  return x->i < y->i ? -1 : x->i > y->i;
}

void prune_keep_best(const double *score, int64_t n, int64_t k, unsigned char *keep) {
  memset(keep, 0, (size_t)n);
  if (n <= 0) return;
  Scored *v = xmalloc((size_t)n * sizeof *v);
  for (int64_t i = 0; i < n; i++) v[i] = (Scored){score[i], i};
  qsort(v, (size_t)n, sizeof *v, cmp_scored);
  for (int64_t c = 0; c < k && c < n; c++) keep[v[c].i] = 1;
  free(v);
}

/* ---- attention rebuilt -------------------------------------------------------------- */

static IrNode *labelled(IrNode *n, const IrNode *from) {
  n->name = from->name;
  n->loc = from->loc;
  return n;
}

/* x [B, N, h hd] as heads: [B, h, N, hd], or with groups > 0 as
 * [B, h, groups, N, hd] (x holding h * groups heads, or h heads read by
 * `groups` query heads each when x_groups is 1). */
static IrNode *split(IrGraph *g, IrNode *x, int h, int x_groups, int64_t hd, const IrNode *from) {
  IrDim b = x->shape.d[0], n = x->shape.d[1];
  if (x_groups == 0) {
    IrDim d[4] = {b, n, h, hd};
    static const int perm[4] = {0, 2, 1, 3};
    return labelled(ir_permute(g, labelled(ir_reshape(g, x, 4, d), from), perm), from);
  }
  IrDim d[5] = {b, n, h, x_groups, hd};
  static const int perm[5] = {0, 2, 3, 1, 4};
  return labelled(ir_permute(g, labelled(ir_reshape(g, x, 5, d), from), perm), from);
}

void prune_rebuild_attention(IrGraph *g, const PruneAttn *a, IrNode *w, IrNode *b, int hq, int hkv, IrNode *pw) {
  const IrNode *from = a->proj->in[0]; /* the head merge: the attention's own label */
  int64_t hd = a->hd;
  IrNode *qkv = labelled(ir_linear(g, a->x, w, b), a->qkv);
  IrNode *q = labelled(ir_slice(g, qkv, 2, 0, hq * hd), from);
  IrNode *k = labelled(ir_slice(g, qkv, 2, hq * hd, hkv * hd), from);
  IrNode *v = labelled(ir_slice(g, qkv, 2, (int64_t)(hq + hkv) * hd, hkv * hd), from);
  int grouped = hq != hkv;
  IrNode *qh = split(g, q, grouped ? hkv : hq, grouped ? hq / hkv : 0, hd, from);
  IrNode *kh = split(g, k, hkv, grouped ? 1 : 0, hd, from);
  IrNode *vh = split(g, v, hkv, grouped ? 1 : 0, hd, from);
  IrNode *s = labelled(ir_matmul(g, qh, kh, 1), from);
  if (a->has_scale) s = labelled(ir_op1f(g, IR_SCALE, s, a->scale), from);
  IrNode *p = labelled(ir_un(g, IR_SOFTMAX, s), from);
  IrNode *pv = labelled(ir_matmul(g, p, vh, 0), from);
  static const int perm4[4] = {0, 2, 1, 3}, perm5[5] = {0, 3, 1, 2, 4};
  IrNode *m = labelled(ir_permute(g, pv, grouped ? perm5 : perm4), from);
  IrDim d[3] = {qkv->shape.d[0], qkv->shape.d[1], (IrDim)hq * hd};
  IrNode *merged = labelled(ir_reshape(g, m, 3, d), from);
  IrNode *proj = labelled(ir_linear(g, merged, pw, a->pb), a->proj);
  ir_replace_all_uses(g, a->proj, proj);
}

/* The only ADD among x's readers (NULL: none or several). */
static IrNode *add_reader(IrGraph *g, const IrNode *x, IrNode **other) {
  IrNode *found = NULL;
  for (int i = 0; i < g->n_nodes; i++) {
    IrNode *n = g->nodes[i];
    if (n->op != IR_ADD || (n->in[0] != x && n->in[1] != x)) continue;
    if (found) return NULL;
    found = n;
  }
  if (found && other) *other = found->in[0] == x ? found->in[1] : found->in[0];
  return found;
}

int prune_find_blocks(IrGraph *g, PruneBlock **out) {
  PruneAttn *a;
  int n = prune_find_attention(g, &a), k = 0;
  *out = xcalloc((size_t)n + 1, sizeof **out);
  for (int s = 0; s < n; s++) {
    IrNode *mul = NULL;
    for (int i = 0; i < g->n_nodes && !mul; i++)
      if (g->nodes[i]->op == IR_MUL && (g->nodes[i]->in[0] == a[s].proj || g->nodes[i]->in[1] == a[s].proj))
        mul = g->nodes[i];
    IrNode *x_in = NULL, *x_mid = mul ? add_reader(g, mul, &x_in) : NULL;
    IrNode *x_out = x_mid ? add_reader(g, x_mid, NULL) : NULL;
    if (!x_out || !ir_shape_eq(&x_in->shape, &x_out->shape)) continue;
    (*out)[k++] = (PruneBlock){x_in, x_mid, x_out, mul, mul->in[0] == a[s].proj ? mul->in[1] : mul->in[0], s};
  }
  free(a);
  return k;
}
