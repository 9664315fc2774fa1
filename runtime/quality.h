/*
 * quality.h - the numbers that judge samples of the trained digits model
 * (../shared/models/README.md): the MLP digit classifier's forward pass,
 * digit accuracy, feature statistics and the Frechet distance (FID's formula
 * on the classifier's 64-d features).  Pure math over caller-owned arrays;
 * loading the classifier and the statistics is the caller's business.
 */
#ifndef DITC_QUALITY_H
#define DITC_QUALITY_H

#include "runtime/tensor.h"

/* The digits classifier: h1 = relu(W1 x + b1), f = relu(W2 h1 + b2),
 * logits = W3 f + b3.  Weights are row-major [out, in] (PyTorch Linear);
 * the arrays are borrowed, not owned. */
typedef struct {
  int in, hidden, feat, classes;       /* 256, 128, 64, 10 */
  const float *w1, *b1, *w2, *b2, *w3, *b3;
} QualityMlp;

/* x [n, in] -> feat [n, feat] (may be NULL), logits [n, classes] (may be NULL). */
void quality_mlp_forward(const QualityMlp *m, const float *x, int64_t n, float *feat,
                         float *logits);

/* Fraction of rows whose arg-max logit (first on ties) equals labels[i]. */
double quality_accuracy(const float *logits, int64_t n, int classes, const int32_t *labels);

/* Mean [d] and covariance [d, d] (n - 1 divisor) of n rows of d features,
 * accumulated in double.  Needs n >= 2. */
int quality_mean_cov(const float *feat, int64_t n, int d, double *mu, double *cov, IrErr *err);

/* Frechet distance between N(mu1, cov1) and N(mu2, cov2) (covariances
 * row-major [d, d], symmetric):
 *   |mu1 - mu2|^2 + tr(cov1) + tr(cov2) - 2 tr((cov1 cov2)^(1/2)),
 * the last trace as sum sqrt(eig(cov1^(1/2) cov2 cov1^(1/2))), eigenvalues
 * clamped at 0 (LAPACK dsyev).  Returns 0, or -1 if LAPACK fails. */
int quality_fd(const double *mu1, const double *cov1, const double *mu2, const double *cov2, int d,
               double *fd, IrErr *err);

#endif
