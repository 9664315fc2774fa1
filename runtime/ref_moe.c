/*
 * ref_moe.c - the reference executor's routed mixture of experts
 * (ref_internal.h; the routing table's layout: ir.h).
 *
 * moe_route picks each token's k experts as topk_softmax does
 * (ref_topk_pick) and lays out the table; gather copies rows by slot,
 * moe_linear is one product per expert over its segment of slots, combine
 * sums each token's slots in increasing expert order.
 */
#include <stdlib.h>
#include <string.h>

#include "ir/scalar.h"
#include "runtime/ref_internal.h"

/* moe_route over logits [T, E]: each token's k experts (increasing), the
 * experts' slot counts, their prefix sums, then the slots in token order. */
void ref_moe_route(int32_t *tab, int64_t len, const float *x, int64_t T, int64_t E, int k) {
  int64_t S = T * k;
  int32_t *off = tab, *tok = tab + E + 1, *slot = tok + S, *ex = slot + S;
  int64_t *pick = xmalloc((size_t)k * sizeof *pick);
  memset(tab, 0, (size_t)len * sizeof *tab);
  for (int64_t t = 0; t < T; t++) {
    ref_topk_pick(x + t * E, E, k, pick);
    for (int j = 1; j < k; j++) /* insertion sort: the token's experts in increasing order */
      for (int u = j; u > 0 && pick[u - 1] > pick[u]; u--) {
        int64_t tmp = pick[u];
        pick[u] = pick[u - 1];
        pick[u - 1] = tmp;
      }
    for (int j = 0; j < k; j++) {
      ex[t * k + j] = (int32_t)pick[j];
      off[pick[j] + 1]++;
    }
  }
  free(pick);
  for (int64_t e = 0; e < E; e++) off[e + 1] += off[e];
  int32_t *fill = xmalloc((size_t)E * sizeof *fill);
  memcpy(fill, off, (size_t)E * sizeof *fill);
  for (int64_t i = 0; i < S; i++) { /* token order: each segment ends up sorted by token */
    int32_t s = fill[ex[i]]++;
    tok[s] = (int32_t)(i / k);
    slot[i] = s;
  }
  free(fill);
}

void ref_moe_gather(float *y, const float *x, const int32_t *tab, int64_t E, int64_t S, int64_t D) {
  const int32_t *tok = tab + E + 1;
#pragma omp parallel for schedule(static) if (S * D > IR_PAR_MIN)
  for (int64_t s = 0; s < S; s++) memcpy(y + s * D, x + (int64_t)tok[s] * D, (size_t)D * sizeof *y);
}

/* One product per expert over its segment of rows. */
void ref_moe_linear(float *y, const float *xs, const int32_t *tab, const float *w, const float *b,
                           int64_t E, int64_t N, int64_t K) {
  for (int64_t e = 0; e < E; e++) {
    int64_t lo = tab[e], rows = tab[e + 1] - lo;
    if (rows <= 0 || N == 0) continue;
    float *ye = y + lo * N;
    if (K == 0) memset(ye, 0, (size_t)(rows * N) * sizeof *ye);
    else ref_gemm(1, rows, N, K, xs + lo * K, K, w + e * N * K, K, ye, N);
    if (b)
      for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < N; j++) ye[r * N + j] += b[e * N + j];
  }
}

/* moe_qlinear (e4m3 0) and moe_qlinear_e4m3 (1) over levels held as floats
 * (i8 whole numbers, e4m3 decoded): i8 products summed in int32 (exact),
 * e4m3 ones in f32 in j order; scaled once as qlinear / qlinear_e4m3 (ir/scalar.h). */
void ref_moe_qlinear(float *y, const float *xq, const int32_t *tab, const float *sx, const float *wq, const float *sw,
                     const float *b, int64_t E, int64_t N, int64_t K, int e4m3) {
  for (int64_t e = 0; e < E; e++) {
    int64_t lo = tab[e], hi = tab[e + 1];
#pragma omp parallel for schedule(static) if ((hi - lo) * N * K > IR_PAR_MIN)
    for (int64_t r = lo; r < hi; r++)
      for (int64_t n = 0; n < N; n++) {
        const float *xr = xq + r * K, *wr = wq + (e * N + n) * K;
        float v;
        if (e4m3) {
          float acc = 0.0f;
          for (int64_t j = 0; j < K; j++) acc += xr[j] * wr[j];
          v = ditc_qlinear_e4m3_scale(acc, sx[0], sw[e]);
        } else {
          int32_t acc = 0;
          for (int64_t j = 0; j < K; j++) acc += (int32_t)xr[j] * (int32_t)wr[j];
          v = ditc_qlinear_scale(acc, sx[r], sw[e * N + n]);
        }
        y[r * N + n] = b ? ditc_add(v, b[e * N + n]) : v;
      }
  }
}

/* Each token sums its own k slots, in increasing expert order (the order of
 * the dense sum the pass replaces). */
void ref_moe_combine(float *y, const float *ys, const int32_t *tab, const float *gates, int64_t T,
                            int64_t E, int k, int64_t D) {
  int64_t S = T * k;
  const int32_t *slot = tab + E + 1 + S, *ex = slot + S;
#pragma omp parallel for schedule(static) if (T * D > IR_PAR_MIN)
  for (int64_t t = 0; t < T; t++) {
    float *yt = y + t * D;
    for (int64_t d = 0; d < D; d++) yt[d] = 0.0f;
    for (int j = 0; j < k; j++) {
      float g = gates[t * E + ex[t * k + j]];
      const float *row = ys + (int64_t)slot[t * k + j] * D;
      for (int64_t d = 0; d < D; d++) yt[d] += row[d] * g;
    }
  }
}
