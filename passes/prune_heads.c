/*
 * prune_heads.c - keep the `keep` best heads of every softmax attention and
 * remove the others: their rows of the qkv projection (in each of the q, k
 * and v thirds), their attention, their columns of proj.  A head whose q, k
 * and v rows are zero outputs exactly 0, so this computes what the seed
 * study's zeroed model computes, with fewer MACs and parameters
 * (../shared/reference/README.md, "Approximating passes").
 *
 * Scores (criterion): l2, |q_h| + |k_h| + |v_h| of the head's qkv weight rows
 * (Frobenius norms); calib, the head's mean contribution to its block's
 * output on calibration data (PassCalib).  Ties keep the lower index.
 * Without the weights (ditc stats, ir) l2 keeps the first `keep` heads.  The
 * decision is spelled out in `select` (prune.h); a given `select` is used as
 * it is.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "passes/calib.h"
#include "passes/prune.h"

/* |q_h| + |k_h| + |v_h| of every head, from qkv weight values w [3 inner, d]. */
static void l2_scores(const PruneAttn *a, const float *w, double *score) {
  int64_t d = a->w->shape.d[1];
  for (int h = 0; h < a->heads; h++) {
    score[h] = 0;
    for (int p = 0; p < 3; p++) {
      double ss = 0;
      const float *r = w + (p * a->inner + h * a->hd) * d;
      for (int64_t i = 0; i < a->hd * d; i++) ss += (double)r[i] * r[i];
      score[h] += sqrt(ss);
    }
  }
}

int pass_prune_heads(IrGraph *g, const PassOptions *o, IrErr *err) {
  int64_t keep = pass_opt_int(o, "keep");
  if (keep == 0) return 0;
  int calib = !strcmp(pass_opt_choice(o, "criterion"), "calib");
  const char *sel = pass_opt_text(o, "select");
  PruneAttn *a;
  int n = prune_find_attention(g, &a), rc = -1;
  char lb[32];
  PruneMasks mk;
  prune_masks_init(&mk, n);
  unsigned char **masks = mk.keep;
  int64_t *sizes = mk.size;
  if (!n) {
    ir_errf(err, "keep=%lld: the model has no softmax attention whose heads could be removed", (long long)keep);
    goto out;
  }
  if (*sel && prune_mask_sites(sel) != n) {
    ir_errf(err, "select has %d masks; the model has %d attentions", prune_mask_sites(sel), n);
    goto out;
  }
  for (int s = 0; s < n; s++) {
    const PruneAttn *at = &a[s];
    if (keep > at->heads) {
      ir_errf(err, "keep=%lld: %s has %d heads", (long long)keep, prune_label(at->qkv, lb, sizeof lb), at->heads);
      goto out;
    }
    sizes[s] = at->heads;
    masks[s] = xcalloc((size_t)at->heads, 1);
    if (*sel) {
      if (prune_mask_parse(sel, s, at->heads, masks[s], err)) goto out;
      int64_t k = 0;
      for (int h = 0; h < at->heads; h++) k += masks[s][h];
      if (k != keep) {
        ir_errf(err, "select: mask %d keeps %lld heads, keep is %lld", s, (long long)k, (long long)keep);
        goto out;
      }
      continue;
    }
    double *score = xcalloc((size_t)at->heads, sizeof *score);
    const float *w = pass_weight(o, at->w);
    if (calib) {
      if (pass_calib_head_scores(o->calib, s, at->heads, score, err)) {
        free(score);
        goto out;
      }
    } else if (w) {
      l2_scores(at, w, score);
    } else {
      for (int h = 0; h < at->heads; h++) score[h] = -h; /* no weights: the first heads */
    }
    prune_keep_best(score, at->heads, keep, masks[s]);
    free(score);
  }
  if (!*sel) prune_masks_record(o, &mk);
  for (int s = 0; s < n; s++) {
    const PruneAttn *at = &a[s];
    if (keep == at->heads) continue;
    IrNode *w = prune_take(g, at->w, 0, 3, at->hd, masks[s], at->heads);
    IrNode *b = at->b ? prune_take(g, at->b, 0, 3, at->hd, masks[s], at->heads) : NULL;
    IrNode *pw = prune_take(g, at->pw, 1, 1, at->hd, masks[s], at->heads);
    prune_rebuild_attention(g, at, w, b, (int)keep, (int)keep, pw);
  }
  rc = prune_finish(g, err);
out:
  prune_masks_free(&mk);
  free(a);
  return rc;
}
