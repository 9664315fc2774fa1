/*
 * ref_rows.c - the reference executor's row-wise and windowed ops:
 * layernorm, softmax and topk_softmax over the last axis, embedding rows,
 * the adaptive average pool (ref_internal.h).
 *
 * One row per loop iteration, rows shared among OpenMP threads; sums in
 * double.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/ref_internal.h"

void ref_layernorm(float *o, const float *x, int64_t rows, int64_t n, float eps) {
#pragma omp parallel for schedule(static) if (rows * n > IR_PAR_MIN)
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * n;
    float *orow = o + r * n;
    double s = 0;
    for (int64_t j = 0; j < n; j++) s += xr[j];
    double mean = s / (double)n, v = 0;
    for (int64_t j = 0; j < n; j++) v += (xr[j] - mean) * (xr[j] - mean);
    double rstd = 1.0 / sqrt(v / (double)n + (double)eps); /* biased variance, like torch */
    for (int64_t j = 0; j < n; j++) orow[j] = (float)((xr[j] - mean) * rstd);
  }
}

void ref_softmax(float *o, const float *x, int64_t rows, int64_t n) {
#pragma omp parallel for schedule(static) if (rows * n > IR_PAR_MIN)
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * n;
    float *orow = o + r * n;
    float m = -INFINITY;
    for (int64_t j = 0; j < n; j++) m = xr[j] > m ? xr[j] : m;
    double s = 0;
    for (int64_t j = 0; j < n; j++) {
      orow[j] = expf(xr[j] - m);
      s += orow[j];
    }
    float inv = (float)(1.0 / s);
    for (int64_t j = 0; j < n; j++) orow[j] *= inv;
  }
}

void ref_topk_pick(const float *xr, int64_t n, int k, int64_t *pick) {
  for (int t = 0; t < k; t++) {
    int64_t best = -1;
    for (int64_t j = 0; j < n; j++) {
      int taken = 0;
      for (int u = 0; u < t; u++) taken |= pick[u] == j;
      if (taken) continue;
      if (best < 0 || xr[j] > xr[best]) best = j; /* strict: the lower index wins ties */
    }
    pick[t] = best;
  }
}

/* k largest per row (ties: lower index first), softmax over them, 0 elsewhere. */
void ref_topk_softmax(float *o, const float *x, int64_t rows, int64_t n, int k) {
#pragma omp parallel if (rows * n > IR_PAR_MIN)
  {
    int64_t *pick = xmalloc((size_t)k * sizeof *pick);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
      const float *xr = x + r * n;
      float *orow = o + r * n;
      for (int64_t j = 0; j < n; j++) orow[j] = 0.0f;
      ref_topk_pick(xr, n, k, pick);
      float m = xr[pick[0]];
      double s = 0;
      for (int t = 0; t < k; t++) s += expf(xr[pick[t]] - m);
      for (int t = 0; t < k; t++) orow[pick[t]] = (float)(expf(xr[pick[t]] - m) / s);
    }
    free(pick);
  }
}


int ref_embedding(float *y, const float *table, const RefShape *ts, const int32_t *idx, int64_t n, IrErr *err) {
  int64_t V = ts->d[0], D = ts->d[1];
  for (int64_t i = 0; i < n; i++)
    if (idx[i] < 0 || idx[i] >= V) return ir_errf(err, "embedding: index %d out of range [0, %lld)", idx[i], (long long)V);
#pragma omp parallel for schedule(static) if (n * D > IR_PAR_MIN)
  for (int64_t i = 0; i < n; i++) memcpy(y + i * D, table + (int64_t)idx[i] * D, (size_t)D * 4);
  return 0;
}


void ref_avgpool(float *y, const RefShape *ys, const float *x, const RefShape *xs) {
  int64_t planes = xs->d[0] * xs->d[1], H = xs->d[2], W = xs->d[3];
  int64_t oh = ys->d[2], ow = ys->d[3];
#pragma omp parallel for schedule(static) if (planes * H * W > IR_PAR_MIN)
  for (int64_t p = 0; p < planes; p++)
    for (int64_t i = 0; i < oh; i++) {
      int64_t r0 = i * H / oh, r1 = ((i + 1) * H + oh - 1) / oh;
      for (int64_t j = 0; j < ow; j++) {
        int64_t c0 = j * W / ow, c1 = ((j + 1) * W + ow - 1) / ow;
        double s = 0;
        for (int64_t r = r0; r < r1; r++)
          for (int64_t q = c0; q < c1; q++) s += x[(p * H + r) * W + q];
        y[(p * oh + i) * ow + j] = (float)(s / (double)((r1 - r0) * (c1 - c0)));
      }
    }
}
