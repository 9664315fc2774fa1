/*
 * prune_mlp.c - remove the fraction `fraction` of every MLP's hidden
 * channels (rows of fc1 and its bias, columns of fc2), lowest scores first;
 * the mixture-of-experts experts are MLPs too.  floor(fraction * hidden)
 * channels go.  Scores (criterion): l2, |fc1 row| |fc2 column|; calib, the
 * channel's mean |activation| on calibration data times |fc2 column|.  Ties
 * keep the lower index; without the weights the first channels are kept.
 * The decision is spelled out in `select` (prune.h).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "passes/calib.h"
#include "passes/prune.h"

/* |fc2 column j| of every j, times |fc1 row j| (l2) or the calibration
 * statistic mlp.<site>.act_abs. */
static int scores(const PassOptions *o, const PruneMlp *m, int site, int calib, double *score, IrErr *err) {
  const float *w1 = pass_weight(o, m->fc1->in[1]), *w2 = pass_weight(o, m->fc2->in[1]);
  int64_t h = m->hidden, d1 = m->fc1->in[1]->shape.d[1], d2 = m->fc2->in[1]->shape.d[0];
  const double *act = NULL;
  if (calib) {
    char name[64];
    snprintf(name, sizeof name, "mlp.%d.act_abs", site);
    if (!o->calib) return ir_errf(err, "criterion=calib " PASS_CALIB_NEEDED);
    if (!(act = pass_calib_find(o->calib, name, h)))
      return ir_errf(err, "the calibration data has no statistic %s of %lld values", name, (long long)h);
  }
  if (!w2 || (!calib && !w1)) { /* no weights: the first channels */
    for (int64_t j = 0; j < h; j++) score[j] = act ? act[j] : (double)-j;
    return 0;
  }
  for (int64_t j = 0; j < h; j++) {
    double c = 0, r = 0;
    for (int64_t i = 0; i < d2; i++) c += (double)w2[i * h + j] * w2[i * h + j];
    if (!calib)
      for (int64_t i = 0; i < d1; i++) r += (double)w1[j * d1 + i] * w1[j * d1 + i];
    score[j] = sqrt(c) * (calib ? act[j] : sqrt(r));
  }
  return 0;
}

int pass_prune_mlp(IrGraph *g, const PassOptions *o, IrErr *err) {
  double fraction = pass_opt_float(o, "fraction");
  if (fraction == 0) return 0;
  int calib = !strcmp(pass_opt_choice(o, "criterion"), "calib");
  const char *sel = pass_opt_text(o, "select");
  PruneMlp *m;
  int n = prune_find_mlps(g, &m), rc = -1;
  PruneMasks mk;
  prune_masks_init(&mk, n);
  unsigned char **masks = mk.keep;
  int64_t *sizes = mk.size, *kept = xcalloc((size_t)n + 1, sizeof *kept);
  if (!n) {
    ir_errf(err, "fraction=%g: the model has no MLP (linear -> GELU -> linear) whose channels could be removed", fraction);
    goto out;
  }
  if (*sel && prune_mask_sites(sel) != n) {
    ir_errf(err, "select has %d masks; the model has %d MLPs", prune_mask_sites(sel), n);
    goto out;
  }
  for (int s = 0; s < n; s++) {
    int64_t h = m[s].hidden;
    sizes[s] = h;
    kept[s] = h - (int64_t)floor(fraction * (double)h);
    masks[s] = xcalloc((size_t)h, 1);
    if (*sel) {
      if (prune_mask_parse(sel, s, h, masks[s], err)) goto out;
      int64_t k = 0;
      for (int64_t j = 0; j < h; j++) k += masks[s][j];
      if (k != kept[s]) {
        ir_errf(err, "select: mask %d keeps %lld channels, fraction=%g keeps %lld", s, (long long)k, fraction,
                (long long)kept[s]);
        goto out;
      }
      continue;
    }
    double *score = xcalloc((size_t)h, sizeof *score);
    int bad = scores(o, &m[s], s, calib, score, err);
    if (!bad) prune_keep_best(score, h, kept[s], masks[s]);
    free(score);
    if (bad) goto out;
  }
  if (!*sel) prune_masks_record(o, &mk);
  for (int s = 0; s < n; s++) {
    const PruneMlp *p = &m[s];
    if (kept[s] == p->hidden) continue;
    IrNode *w1 = prune_take(g, p->fc1->in[1], 0, 1, 1, masks[s], p->hidden);
    IrNode *b1 = p->fc1->n_in > 2 ? prune_take(g, p->fc1->in[2], 0, 1, 1, masks[s], p->hidden) : NULL;
    IrNode *w2 = prune_take(g, p->fc2->in[1], 1, 1, 1, masks[s], p->hidden);
    IrNode *f1 = ir_linear(g, p->fc1->in[0], w1, b1);
    f1->name = p->fc1->name;
    f1->loc = p->fc1->loc;
    IrNode *act = ir_un(g, p->act->op, f1);
    act->name = p->act->name;
    act->loc = p->act->loc;
    IrNode *f2 = ir_linear(g, act, w2, p->fc2->n_in > 2 ? p->fc2->in[2] : NULL);
    f2->name = p->fc2->name;
    f2->loc = p->fc2->loc;
    ir_replace_all_uses(g, p->fc2, f2);
  }
  rc = prune_finish(g, err);
out:
  prune_masks_free(&mk);
  free(kept);
  free(m);
  return rc;
}
