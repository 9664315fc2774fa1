/*
 * prune_blocks.c - drop the `count` whole blocks whose removal changes the
 * model's output least on calibration data: the block's residual
 * contribution relative to its input, |x_out - x_in| / |x_in| averaged over
 * the calibration steps (statistic block.<i>.delta, passes/calib.h).  The
 * residual stream passes through a dropped block.  A block is found from its
 * attention (prune_find_attention): x_mid = x_in + gate * proj(...), and
 * x_out the one add reading x_mid.  With no data at all (ditc stats, ir)
 * the last blocks go.  The dropped blocks are spelled out in `select`.
 */
#include <stdlib.h>
#include <string.h>

#include "passes/calib.h"
#include "passes/prune.h"

int pass_prune_blocks(IrGraph *g, const PassOptions *o, IrErr *err) {
  int64_t count = pass_opt_int(o, "count");
  if (count == 0) return 0;
  const char *sel = pass_opt_text(o, "select");
  PruneBlock *b;
  int n = prune_find_blocks(g, &b), rc = -1;
  unsigned char *drop = xcalloc((size_t)n + 1, 1);
  if (count >= n) {
    ir_errf(err, "count=%lld: the model has %d blocks (at most %d may be dropped)", (long long)count, n, n ? n - 1 : 0);
    goto out;
  }
  if (*sel) {
    int64_t k = 0;
    for (const char *p = sel; *p;) {
      char *end;
      long v = strtol(p, &end, 10);
      if (end == p || v < 0 || v >= n || drop[v] || (*end && *end != '.')) {
        ir_errf(err, "select '%.60s': not a list of distinct block indices below %d", sel, n);
        goto out;
      }
      drop[v] = 1;
      k++;
      p = *end ? end + 1 : end;
    }
    if (k != count) {
      ir_errf(err, "select names %lld blocks, count is %lld", (long long)k, (long long)count);
      goto out;
    }
  } else {
    double *score = xcalloc((size_t)n, sizeof *score);
    if (!o->calib && !o->weight) {
      for (int i = 0; i < n; i++) score[i] = i; /* no data: the last blocks */
    } else {
      for (int i = 0; i < n; i++) {
        char name[64];
        snprintf(name, sizeof name, "block.%d.delta", i);
        const double *v = pass_calib_find(o->calib, name, 1);
        if (!v) {
          ir_errf(err, "dropping blocks needs calibration data with the statistic %s (%s)", name,
                  o->calib ? o->calib->about : "the command's --calibrate N runs the model for it");
          free(score);
          goto out;
        }
        score[i] = -v[0];
      }
    }
    unsigned char *keep = xcalloc((size_t)n, 1);
    prune_keep_best(score, n, count, keep); /* the count best-scored are dropped */
    memcpy(drop, keep, (size_t)n);
    free(keep);
    free(score);
    char *text = xcalloc((size_t)n * 12 + 1, 1), *p = text;
    for (int i = 0; i < n; i++)
      if (drop[i]) p += sprintf(p, "%s%d", p == text ? "" : ".", i);
    pass_opt_decide(o, "select", text);
    free(text);
  }
  /* later blocks first, so that an earlier block's output still names the right node */
  for (int i = n - 1; i >= 0; i--)
    if (drop[i]) ir_replace_all_uses(g, b[i].out, b[i].in);
  g->dropped_params = 1; /* the dropped blocks' weights: in the checkpoint, read by nothing */
  rc = prune_finish(g, err);
out:
  free(drop);
  free(b);
  return rc;
}
