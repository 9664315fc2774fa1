/*
 * ref_contract.c - the reference executor's matrix products: linear,
 * matmul (leading axes broadcast) and conv2d (depthwise directly, otherwise
 * im2col and a product per image and group) (ref_internal.h).
 *
 * Everything goes through cblas_sgemm, with OpenBLAS set to one thread
 * (ref_prepare): the products are split into panels (or batches) that OpenMP
 * threads hand to single-threaded sgemm calls.  Letting OpenBLAS's own
 * pthreads and OpenMP's take turns made each pool spin while the other
 * worked, several times slower than one thread on a busy two-core machine.
 */
#include <cblas.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "runtime/ref_internal.h"

static int max_threads(void) {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

static void sgemm1(int tb, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                   const float *B, int64_t ldb, float *C, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K,
              1.0f, A, (int)lda, B, (int)ldb, 0.0f, C, (int)ldc);
}

/* C[M, N] = A[M, K] B[K, N] (tb: B[N, K]^T), row-major with leading dims.
 * Split into panels along the longer of M and N, each one single-threaded
 * sgemm call, handed out dynamically to the OpenMP threads (a thread
 * descheduled by a busy machine is covered).  Panels along M are a fixed
 * REF_GEMM_ROWS rows whatever the thread count and M: one call over all of a
 * large M computed rows differently from panels (OpenBLAS's blocking follows
 * M), and a row must come out the same whether its sample is sampled alone
 * or in a batch (sample --batch, ranks). */
#define REF_GEMM_ROWS 64
void ref_gemm(int tb, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                 const float *B, int64_t ldb, float *C, int64_t ldc) {
  int nt = max_threads();
  int64_t big = M > N ? M : N;
  if (M * N * K < ((int64_t)1 << 18) || big < 32) {
    sgemm1(tb, M, N, K, A, lda, B, ldb, C, ldc);
    return;
  }
  int split_m = M >= N;
  int64_t parts = 3 * (int64_t)nt;
  int64_t step = split_m ? REF_GEMM_ROWS : (big + parts - 1) / parts;
  step = (step + 7) / 8 * 8; /* whole vector widths */
  parts = (big + step - 1) / step;
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t p = 0; p < parts; p++) {
    int64_t lo = p * step, len = big - lo < step ? big - lo : step;
    if (split_m)
      sgemm1(tb, len, N, K, A + lo * lda, lda, B, ldb, C + lo * ldc, ldc);
    else
      sgemm1(tb, M, len, K, A, lda, tb ? B + lo * ldb : B + lo, ldb, C + lo, ldc);
  }
}

/* y[M, N] = x[M, K] w[N, K]^T (+ b[N]) */
void ref_linear(float *y, const float *x, const float *w, const float *b, int64_t M,
                       int64_t N, int64_t K) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    memset(y, 0, (size_t)(M * N) * sizeof *y);
  } else {
    ref_gemm(1, M, N, K, x, K, w, K, y, N);
  }
  if (b) {
#pragma omp parallel for schedule(static) if (M * N > IR_PAR_MIN)
    for (int64_t r = 0; r < M; r++)
      for (int64_t j = 0; j < N; j++) y[r * N + j] += b[j];
  }
}


void ref_matmul(int tb, float *y, const RefShape *ys, const float *a, const RefShape *as, const float *b,
                const RefShape *bs) {
  int64_t M = as->d[as->rank - 2], K = as->d[as->rank - 1];
  int64_t N = tb ? bs->d[bs->rank - 2] : bs->d[bs->rank - 1];
  if (M == 0 || N == 0) return;
  /* leading (batch) axes broadcast like elementwise ops, in units of matrices */
  int lr = ys->rank - 2;
  int64_t ast[IR_MAX_RANK], bst[IR_MAX_RANK], nb = 1;
  ir_bcast_strides(as->rank - 2, as->d, lr, ast);
  ir_bcast_strides(bs->rank - 2, bs->d, lr, bst);
  for (int j = 0; j < lr; j++) nb *= ys->d[j];
  int64_t a_mats = 1, b_mats = 1;
  for (int j = 0; j < as->rank - 2; j++) a_mats *= as->d[j];
  for (int j = 0; j < bs->rank - 2; j++) b_mats *= bs->d[j];
  if (K == 0) {
    memset(y, 0, (size_t)(nb * M * N) * sizeof *y);
    return;
  }
  int64_t ldb = tb ? K : N;
  if (b_mats == 1 && a_mats == nb) { /* one shared right operand: a single tall product */
    ref_gemm(tb, nb * M, N, K, a, K, b, ldb, y, N);
    return;
  }
  /* Enough matrices to go round: one thread each; else split every product. */
  int by_batch = nb >= 2 * max_threads();
#pragma omp parallel for schedule(dynamic, 1) if (by_batch)
  for (int64_t i = 0; i < nb; i++) {
    int64_t ai = 0, bi = 0, rem = i;
    for (int j = lr - 1; j >= 0; j--) {
      int64_t c = rem % ys->d[j];
      rem /= ys->d[j];
      ai += c * ast[j];
      bi += c * bst[j];
    }
    const float *am = a + ai * M * K, *bm = b + bi * K * N;
    if (by_batch)
      sgemm1(tb, M, N, K, am, K, bm, ldb, y + i * M * N, N);
    else
      ref_gemm(tb, M, N, K, am, K, bm, ldb, y + i * M * N, N);
  }
}

RefConv ref_conv_dims(const IrAttrs *a, const RefShape *xs, const RefShape *ws, const RefShape *ys) {
  RefConv c = {xs->d[0], xs->d[1], xs->d[2], xs->d[3], ws->d[0], ws->d[2], ws->d[3],
               ys->d[2], ys->d[3], a->stride, a->pad, a->groups, 1};
  if (c.stride <= 0) c.stride = 1;
  if (c.groups <= 0) c.groups = 1;
  return c;
}

static int conv_is_depthwise(const RefConv *c) { return c->groups == c->c && c->o == c->c; }

size_t ref_conv_scratch(const RefConv *c) {
  if (conv_is_depthwise(c)) return 0;
  return (size_t)((c->c / c->groups) * c->kh * c->kw * c->oh * c->ow);
}

/* One output plane per (image, channel), each channel with its own kernel. */
static void conv_depthwise(const RefConv *c, float *y, const float *x, const float *w,
                           const float *b) {
  int64_t planes = c->n * c->c;
#pragma omp parallel for schedule(static) if (planes * c->oh * c->ow * c->kh * c->kw > IR_PAR_MIN)
  for (int64_t p = 0; p < planes; p++) {
    int64_t ch = p % c->c;
    const float *xp = x + p * c->h * c->w, *wk = w + ch * c->kh * c->kw;
    float *yp = y + p * c->oh * c->ow;
    for (int64_t i = 0; i < c->oh; i++)
      for (int64_t j = 0; j < c->ow; j++) {
        float acc = 0.0f;
        for (int64_t ki = 0; ki < c->kh; ki++) {
          int64_t r = i * c->stride - c->pad + ki;
          if (r < 0 || r >= c->h) continue;
          for (int64_t kj = 0; kj < c->kw; kj++) {
            int64_t q = j * c->stride - c->pad + kj;
            if (q < 0 || q >= c->w) continue;
            acc += xp[r * c->w + q] * wk[ki * c->kw + kj];
          }
        }
        yp[i * c->ow + j] = acc + (b ? b[ch] : 0.0f);
      }
  }
}

/* General case: per image and group, unfold the receptive fields into columns
 * [cg*kh*kw, oh*ow] and multiply by the group's weights [og, cg*kh*kw].  For the
 * patch embedding (kernel = stride, no padding) the unfold is a pure shuffle. */
/* The columns [cg*kh*kw, oh*ow] of cg channels of one image xg (c's geometry). */
static void unfold(const RefConv *c, int64_t cg, const float *xg, float *col) {
  int64_t kc = cg * c->kh * c->kw, np = c->oh * c->ow, up = c->up > 1 ? c->up : 1, uh = c->h * up, uw = c->w * up;
#pragma omp parallel for schedule(static) if (kc * np > IR_PAR_MIN)
  for (int64_t row = 0; row < kc; row++) {
    int64_t ci = row / (c->kh * c->kw), ki = (row / c->kw) % c->kh, kj = row % c->kw;
    const float *xc = xg + ci * c->h * c->w;
    float *cr = col + row * np;
    for (int64_t i = 0; i < c->oh; i++) {
      int64_t r = i * c->stride - c->pad + ki;
      for (int64_t j = 0; j < c->ow; j++) {
        int64_t q = j * c->stride - c->pad + kj;
        cr[i * c->ow + j] = (r < 0 || r >= uh || q < 0 || q >= uw) ? 0.0f : xc[(r / up) * c->w + q / up];
      }
    }
  }
}

void ref_im2col(const IrAttrs *a, float *y, const RefShape *ys, const float *x, const RefShape *xs) {
  int k = a->k;
  RefConv c = {.n = xs->d[0], .c = xs->d[1], .h = xs->d[2], .w = xs->d[3], .kh = k, .kw = k,
               .stride = a->stride ? a->stride : 1, .pad = a->pad, .groups = 1, .up = a->up ? a->up : 1};
  c.oh = (c.h * c.up + 2 * c.pad - k) / c.stride + 1;
  c.ow = (c.w * c.up + 2 * c.pad - k) / c.stride + 1;
  DITC_ASSERT(ys->d[2] == c.oh * c.ow);
  for (int64_t n = 0; n < c.n; n++) unfold(&c, c.c, x + n * c.c * c.h * c.w, y + n * ys->d[1] * ys->d[2]);
}

static void conv_im2col(const RefConv *c, float *y, const float *x, const float *w,
                        const float *b, float *col) {
  int64_t cg = c->c / c->groups, og = c->o / c->groups;
  int64_t kc = cg * c->kh * c->kw, np = c->oh * c->ow;
  for (int64_t n = 0; n < c->n; n++)
    for (int64_t g = 0; g < c->groups; g++) {
      unfold(c, cg, x + (n * c->c + g * cg) * c->h * c->w, col);
      float *yg = y + (n * c->o + g * og) * np;
      ref_gemm(0, og, np, kc, w + g * og * kc, kc, col, np, yg, np);
    }
  if (b) {
    int64_t planes = c->n * c->o;
#pragma omp parallel for schedule(static) if (planes * np > IR_PAR_MIN)
    for (int64_t p = 0; p < planes; p++)
      for (int64_t j = 0; j < np; j++) y[p * np + j] += b[p % c->o];
  }
}

void ref_conv2d(const RefConv *c, float *y, const float *x, const float *w, const float *b, float *scratch) {
  if (conv_is_depthwise(c)) conv_depthwise(c, y, x, w, b);
  else conv_im2col(c, y, x, w, b, scratch);
}
