/*
 * quality.c - digit classifier forward pass, accuracy, feature statistics and
 * the Frechet distance.
 *
 * FD needs tr(sqrtm(S1 S2)).  S1 S2 is not symmetric, but it is similar to
 * the symmetric positive semi-definite A = S1^(1/2) S2 S1^(1/2), so its square
 * root's trace is sum sqrt(eig(A)): two symmetric eigen-decompositions with
 * LAPACK's dsyev (OpenBLAS), no complex arithmetic.  Tiny negative eigenvalues
 * from rounding are clamped to 0.
 */
#include "runtime/quality.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* LAPACK (Fortran ABI: everything by reference, hidden string lengths last). */
extern void dsyev_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda,
                   double *w, double *work, const int *lwork, int *info, size_t jobz_len,
                   size_t uplo_len);

static void dense_relu(const float *w, const float *b, const float *x, int in, int out, int relu,
                       float *y) {
  for (int o = 0; o < out; o++) {
    double s = b[o];
    const float *row = w + (size_t)o * (size_t)in;
    for (int i = 0; i < in; i++) s += (double)row[i] * x[i];
    y[o] = relu && s < 0.0 ? 0.0f : (float)s;
  }
}

void quality_mlp_forward(const QualityMlp *m, const float *x, int64_t n, float *feat,
                         float *logits) {
  float *h1 = xmalloc(sizeof(float) * (size_t)m->hidden);
  float *f = xmalloc(sizeof(float) * (size_t)m->feat);
  float *lg = xmalloc(sizeof(float) * (size_t)m->classes);
  for (int64_t r = 0; r < n; r++) {
    dense_relu(m->w1, m->b1, x + r * m->in, m->in, m->hidden, 1, h1);
    dense_relu(m->w2, m->b2, h1, m->hidden, m->feat, 1, f);
    if (feat) memcpy(feat + r * m->feat, f, sizeof(float) * (size_t)m->feat);
    if (logits) {
      dense_relu(m->w3, m->b3, f, m->feat, m->classes, 0, lg);
      memcpy(logits + r * m->classes, lg, sizeof(float) * (size_t)m->classes);
    }
  }
  free(h1);
  free(f);
  free(lg);
}

double quality_accuracy(const float *logits, int64_t n, int classes, const int32_t *labels) {
  if (n <= 0) return 0.0;
  int64_t hit = 0;
  for (int64_t r = 0; r < n; r++) {
    const float *l = logits + r * classes;
    int best = 0;
    for (int c = 1; c < classes; c++)
      if (l[c] > l[best]) best = c;
    hit += best == labels[r];
  }
  return (double)hit / (double)n;
}

int quality_mean_cov(const float *feat, int64_t n, int d, double *mu, double *cov, IrErr *err) {
  if (n < 2) return ir_errf(err, "feature statistics need at least 2 samples (got %lld)", (long long)n);
  for (int j = 0; j < d; j++) mu[j] = 0.0;
  for (int64_t r = 0; r < n; r++)
    for (int j = 0; j < d; j++) mu[j] += feat[r * d + j];
  for (int j = 0; j < d; j++) mu[j] /= (double)n;
  memset(cov, 0, sizeof(double) * (size_t)d * (size_t)d);
  double *c = xmalloc(sizeof(double) * (size_t)d);
  for (int64_t r = 0; r < n; r++) {
    for (int j = 0; j < d; j++) c[j] = feat[r * d + j] - mu[j];
    for (int i = 0; i < d; i++)
      for (int j = i; j < d; j++) cov[i * d + j] += c[i] * c[j];
  }
  for (int i = 0; i < d; i++)
    for (int j = i; j < d; j++) cov[j * d + i] = cov[i * d + j] /= (double)(n - 1);
  free(c);
  return 0;
}

/* Eigen-decomposition of the symmetric a [d, d] in place: w gets the
 * eigenvalues, a (if vectors) the eigenvectors, eigenvector j contiguous at
 * a + j*d (LAPACK's column-major columns; a is symmetric so the storage order
 * of the input does not matter). */
static int sym_eig(double *a, int d, double *w, int vectors, IrErr *err) {
  const char jobz = vectors ? 'V' : 'N', uplo = 'U';
  int info = 0, lwork = -1;
  double query = 0.0;
  dsyev_(&jobz, &uplo, &d, a, &d, w, &query, &lwork, &info, 1, 1);
  if (info != 0) return ir_errf(err, "LAPACK dsyev workspace query failed (info %d)", info);
  lwork = (int)query;
  if (lwork < 3 * d) lwork = 3 * d;
  double *work = xmalloc(sizeof(double) * (size_t)lwork);
  dsyev_(&jobz, &uplo, &d, a, &d, w, work, &lwork, &info, 1, 1);
  free(work);
  if (info != 0) return ir_errf(err, "LAPACK dsyev failed (info %d)", info);
  return 0;
}

int quality_fd(const double *mu1, const double *cov1, const double *mu2, const double *cov2, int d,
               double *fd, IrErr *err) {
  if (d < 1) return ir_errf(err, "Frechet distance: dimension must be >= 1 (got %d)", d);
  size_t dd = (size_t)d * (size_t)d;
  double *v = xmalloc(sizeof(double) * dd), *w = xmalloc(sizeof(double) * (size_t)d);
  double *root = xmalloc(sizeof(double) * dd), *tmp = xmalloc(sizeof(double) * dd);
  double *a = xmalloc(sizeof(double) * dd);
  int rc = -1;

  double dist = 0.0, tr = 0.0;
  for (int i = 0; i < d; i++) {
    dist += (mu1[i] - mu2[i]) * (mu1[i] - mu2[i]);
    tr += cov1[i * d + i] + cov2[i * d + i];
  }

  /* root = cov1^(1/2) = V diag(sqrt(max(l, 0))) V^T (cov1 symmetrised first) */
  for (int i = 0; i < d; i++)
    for (int j = 0; j < d; j++) v[i * d + j] = 0.5 * (cov1[i * d + j] + cov1[j * d + i]);
  if (sym_eig(v, d, w, 1, err) != 0) goto done;
  for (int k = 0; k < d; k++) w[k] = w[k] > 0.0 ? sqrt(w[k]) : 0.0;
  for (int i = 0; i < d; i++)
    for (int j = i; j < d; j++) {
      double s = 0.0;
      for (int k = 0; k < d; k++) s += v[k * d + i] * w[k] * v[k * d + j];
      root[i * d + j] = root[j * d + i] = s;
    }
  /* a = root cov2 root, symmetrised */
  for (int i = 0; i < d; i++)
    for (int j = 0; j < d; j++) {
      double s = 0.0;
      for (int k = 0; k < d; k++) s += root[i * d + k] * cov2[k * d + j];
      tmp[i * d + j] = s;
    }
  for (int i = 0; i < d; i++)
    for (int j = 0; j < d; j++) {
      double s = 0.0;
      for (int k = 0; k < d; k++) s += tmp[i * d + k] * root[k * d + j];
      a[i * d + j] = s;
    }
  for (int i = 0; i < d; i++)
    for (int j = i + 1; j < d; j++) a[i * d + j] = a[j * d + i] = 0.5 * (a[i * d + j] + a[j * d + i]);
  if (sym_eig(a, d, w, 0, err) != 0) goto done;
  double tr_root = 0.0;
  for (int k = 0; k < d; k++) tr_root += w[k] > 0.0 ? sqrt(w[k]) : 0.0;
  *fd = dist + tr - 2.0 * tr_root;
  rc = 0;
done:
  free(v);
  free(w);
  free(root);
  free(tmp);
  free(a);
  return rc;
}
