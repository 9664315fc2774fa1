/*
 * test_quality.c - the Frechet distance against closed forms (1-D, diagonal,
 * a non-commuting 2x2 pair, singular covariances), feature statistics and the
 * classifier forward pass by hand, and the shipped real-digit statistics
 * (FD of a distribution against itself is 0).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/quality.h"
#include "testutil.h"

static double fd_of(const double *m1, const double *c1, const double *m2, const double *c2, int d) {
  double fd = NAN;
  IrErr err = {{0}};
  if (quality_fd(m1, c1, m2, c2, d, &fd, &err) != 0) fail_msg("quality_fd: %s", err.msg);
  return fd;
}

static void test_fd_1d(void **state) {
  (void)state;
  /* N(0, 4) vs N(1, 9): 1 + (2 - 3)^2 */
  double m1 = 0, c1 = 4, m2 = 1, c2 = 9;
  assert_true(fabs(fd_of(&m1, &c1, &m2, &c2, 1) - 2.0) < 1e-12);
}

static void test_fd_diagonal(void **state) {
  (void)state;
  /* commuting covariances: |dmu|^2 + sum (sqrt a - sqrt b)^2 */
  double m1[3] = {1, 2, 3}, m2[3] = {0, 2, 5};
  double c1[9] = {4, 0, 0, 0, 1, 0, 0, 0, 0.25}, c2[9] = {1, 0, 0, 0, 9, 0, 0, 0, 0.25};
  double want = 1 + 0 + 4 + (2 - 1) * (2 - 1) + (1 - 3) * (1 - 3) + 0;
  assert_true(fabs(fd_of(m1, c1, m2, c2, 3) - want) < 1e-12);
  /* symmetric in its arguments */
  assert_true(fabs(fd_of(m2, c2, m1, c1, 3) - want) < 1e-12);
}

static void test_fd_non_commuting(void **state) {
  (void)state;
  /* S1 = [[2,1],[1,2]], S2 = diag(1, 4): S1 S2 = [[2,4],[1,8]], trace 10, det 12.
   * For a 2x2 M with positive eigenvalues tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)),
   * so FD = 4 + 5 - 2 sqrt(10 + 4 sqrt 3). */
  double m[2] = {0.5, -0.5};
  double s1[4] = {2, 1, 1, 2}, s2[4] = {1, 0, 0, 4};
  double want = 9.0 - 2.0 * sqrt(10.0 + 4.0 * sqrt(3.0));
  assert_true(fabs(fd_of(m, s1, m, s2, 2) - want) < 1e-12);
  assert_true(fabs(fd_of(m, s2, m, s1, 2) - want) < 1e-12);
}

static void test_fd_self_and_singular(void **state) {
  (void)state;
  enum { D = 6 };
  /* a random SPD matrix A A^T + a rank-2 PSD one */
  double a[D * D], s[D * D], p[D * D], mu[D];
  uint32_t r = 12345;
  for (int i = 0; i < D * D; i++) {
    r = r * 1664525u + 1013904223u;
    a[i] = (double)(r >> 8) / 16777216.0 - 0.5;
  }
  for (int i = 0; i < D; i++) {
    mu[i] = i * 0.3;
    for (int j = 0; j < D; j++) {
      double t = 0;
      for (int k = 0; k < D; k++) t += a[i * D + k] * a[j * D + k];
      s[i * D + j] = t;
      p[i * D + j] = a[i * D] * a[j * D] + a[i * D + 1] * a[j * D + 1];
    }
  }
  assert_true(fabs(fd_of(mu, s, mu, s, D)) < 1e-10);
  assert_true(fabs(fd_of(mu, p, mu, p, D)) < 1e-7); /* singular: clamped eigenvalues */
  /* zero covariance on one side: |dmu|^2 + tr S */
  double z[D * D] = {0}, mu0[D] = {0}, trs = 0, dm = 0;
  for (int i = 0; i < D; i++) trs += s[i * D + i], dm += mu[i] * mu[i];
  double fd = fd_of(mu0, z, mu, s, D);
  assert_true(fabs(fd - (dm + trs)) < 1e-10);
  fd = fd_of(mu, s, mu0, z, D);
  assert_true(fabs(fd - (dm + trs)) < 1e-10);
}

static void test_mean_cov(void **state) {
  (void)state;
  /* (1,2), (3,6), (5,4): mean (3,4), covariance [[4,2],[2,4]] with n - 1 */
  const float f[6] = {1, 2, 3, 6, 5, 4};
  double mu[2], cov[4];
  IrErr err = {{0}};
  assert_int_equal(quality_mean_cov(f, 3, 2, mu, cov, &err), 0);
  assert_true(mu[0] == 3.0 && mu[1] == 4.0);
  assert_true(cov[0] == 4.0 && cov[1] == 2.0 && cov[2] == 2.0 && cov[3] == 4.0);
  assert_int_equal(quality_mean_cov(f, 1, 2, mu, cov, &err), -1);
  assert_non_null(strstr(err.msg, "at least 2"));
}

static void test_mlp_by_hand(void **state) {
  (void)state;
  /* in 2 -> hidden 2 -> feat 2 -> classes 3 */
  const float w1[4] = {1, -1, 2, 0}, b1[2] = {0, -1};
  const float w2[4] = {1, 1, -1, 0}, b2[2] = {0.5f, 0};
  const float w3[6] = {1, 0, 0, 1, -1, -1}, b3[3] = {0, 0, 10};
  QualityMlp m = {2, 2, 2, 3, w1, b1, w2, b2, w3, b3};
  /* x = (3, 1): h1 = relu(2, 5) = (2, 5); f = relu(7.5, -2) = (7.5, 0);
   * logits = (7.5, 0, 2.5) -> class 0.
   * x = (0, 1): h1 = relu(-1, -1) = 0; f = (0.5, 0); logits = (0.5, 0, 9.5) -> 2 */
  const float x[4] = {3, 1, 0, 1};
  float feat[4], logits[6];
  quality_mlp_forward(&m, x, 2, feat, logits);
  const float wf[4] = {7.5f, 0, 0.5f, 0}, wl[6] = {7.5f, 0, 2.5f, 0.5f, 0, 9.5f};
  for (int i = 0; i < 4; i++) assert_true(feat[i] == wf[i]);
  for (int i = 0; i < 6; i++) assert_true(logits[i] == wl[i]);
  const int32_t labels[2] = {0, 1};
  assert_true(quality_accuracy(logits, 2, 3, labels) == 0.5);
  const int32_t right[2] = {0, 2};
  assert_true(quality_accuracy(logits, 2, 3, right) == 1.0);
}

/* Path of a file in the shared models folder. */
static void model_path(char *buf, size_t n, const char *name) {
  const char *shared = getenv("DITC_SHARED");
  snprintf(buf, n, "%s/models/%s", shared ? shared : DITC_SOURCE_DIR "/../shared", name);
}

/* Read F32 tensors from a safetensors file with jansson, straight from the
 * format (independent of runtime/safetensors.c).  -1 if the file is absent. */
static int load_f32(const char *file, int n, const char *const *names, const size_t *count,
                    float **dst) {
  char path[1024];
  model_path(path, sizeof path, file);
  FILE *f = fopen(path, "rb");
  if (!f) return -1;
  uint8_t len8[8];
  assert_int_equal(fread(len8, 1, 8, f), 8);
  uint64_t hl = 0;
  for (int i = 7; i >= 0; i--) hl = hl << 8 | len8[i];
  char *hdr = calloc(hl + 1, 1);
  assert_int_equal(fread(hdr, 1, hl, f), hl);
  json_error_t je;
  json_t *root = json_loads(hdr, 0, &je);
  assert_non_null(root);
  for (int k = 0; k < n; k++) {
    json_t *t = json_object_get(root, names[k]);
    assert_non_null(t);
    assert_string_equal(json_string_value(json_object_get(t, "dtype")), "F32");
    json_t *off = json_object_get(t, "data_offsets");
    long begin = (long)json_integer_value(json_array_get(off, 0));
    long end = (long)json_integer_value(json_array_get(off, 1));
    assert_int_equal(end - begin, (long)(count[k] * 4));
    dst[k] = malloc(count[k] * 4);
    assert_int_equal(fseek(f, (long)(8 + hl) + begin, SEEK_SET), 0);
    assert_int_equal(fread(dst[k], 4, count[k], f), count[k]);
  }
  json_decref(root);
  free(hdr);
  fclose(f);
  return 0;
}

static int load_stats(double *mu, double *sigma) {
  const char *names[2] = {"mu", "sigma"};
  const size_t count[2] = {64, 64 * 64};
  float *t[2];
  if (load_f32("digits-real-stats.safetensors", 2, names, count, t) != 0) return -1;
  for (int i = 0; i < 64; i++) mu[i] = t[0][i];
  for (int i = 0; i < 64 * 64; i++) sigma[i] = t[1][i];
  free(t[0]);
  free(t[1]);
  return 0;
}

/* The first 100 samples the original code drew (dit-digits-samples-cfg1.5.png:
 * a 10 x 10 grid, column j = digit j, each 16x16 sample scaled 3x, no border)
 * must be recognised: the README reports 0.982 over 500 such samples. */
static void test_classifier_on_reference_samples(void **state) {
  (void)state;
  const char *names[6] = {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"};
  const size_t count[6] = {128 * 256, 128, 64 * 128, 64, 10 * 64, 10};
  float *w[6];
  if (load_f32("digits-classifier.safetensors", 6, names, count, w) != 0) {
    TU_SKIP("the digits classifier (../shared/models) not found");
  }
  char path[1024];
  model_path(path, sizeof path, "dit-digits-samples-cfg1.5.png");
  png_image im;
  memset(&im, 0, sizeof im);
  im.version = PNG_IMAGE_VERSION;
  assert_true(png_image_begin_read_from_file(&im, path));
  assert_int_equal(im.width, 480);
  assert_int_equal(im.height, 480);
  im.format = PNG_FORMAT_GRAY;
  uint8_t *px = malloc(PNG_IMAGE_SIZE(im));
  assert_true(png_image_finish_read(&im, NULL, px, 0, NULL));
  float *x = malloc(sizeof(float) * 100 * 256);
  int32_t labels[100];
  for (int s = 0; s < 100; s++) {
    labels[s] = s % 10;
    for (int y = 0; y < 16; y++)
      for (int c = 0; c < 16; c++)
        x[s * 256 + y * 16 + c] =
            px[((s / 10) * 48 + 3 * y + 1) * 480 + (s % 10) * 48 + 3 * c + 1] / 255.0f * 2.0f - 1.0f;
  }
  QualityMlp m = {256, 128, 64, 10, w[0], w[1], w[2], w[3], w[4], w[5]};
  float *feat = malloc(sizeof(float) * 100 * 64), logits[100 * 10];
  quality_mlp_forward(&m, x, 100, feat, logits);
  double acc = quality_accuracy(logits, 100, 10, labels);
  if (!(acc >= 0.95)) fail_msg("accuracy %.3f on the reference samples", acc);
  /* their features are not the real data's: a positive, moderate distance */
  static double mu_r[64], sg_r[64 * 64], mu_s[64], sg_s[64 * 64];
  IrErr err = {{0}};
  assert_int_equal(quality_mean_cov(feat, 100, 64, mu_s, sg_s, &err), 0);
  assert_int_equal(load_stats(mu_r, sg_r), 0);
  double fd = fd_of(mu_s, sg_s, mu_r, sg_r, 64);
  if (!(fd > 1.0 && fd < 20.0)) fail_msg("FD %.3f of 100 reference samples", fd);
  free(feat);
  free(x);
  free(px);
  for (int i = 0; i < 6; i++) free(w[i]);
}

static void test_real_stats(void **state) {
  (void)state;
  static double mu[64], sigma[64 * 64], mu2[64];
  if (load_stats(mu, sigma) != 0) {
    TU_SKIP("the digits statistics (../shared/models) not found");
    return;
  }
  /* sigma, rounded to f32, has eigenvalues a hair below 0 (dead features);
   * clamping them costs ~1e-6, far below the ~1 FD differences of interest */
  double fd = fd_of(mu, sigma, mu, sigma, 64);
  if (!(fabs(fd) < 1e-5)) fail_msg("self FD %g", fd);
  /* shifting the mean by 0.1 in every feature adds exactly 64 * 0.01 */
  for (int i = 0; i < 64; i++) mu2[i] = mu[i] + 0.1;
  assert_true(fabs(fd_of(mu, sigma, mu2, sigma, 64) - 0.64) < 1e-5);
  /* halving the covariance: FD = tr(S) (1 + 1/2 - 2 sqrt(1/2)) */
  static double half[64 * 64];
  double tr = 0;
  for (int i = 0; i < 64 * 64; i++) half[i] = 0.5 * sigma[i];
  for (int i = 0; i < 64; i++) tr += sigma[i * 64 + i];
  double want = tr * (1.5 - 2.0 * sqrt(0.5));
  double got = fd_of(mu, sigma, mu, half, 64);
  if (!(fabs(got - want) < 1e-5 * fmax(1.0, want))) fail_msg("halved: %.9g vs %.9g", got, want);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fd_1d),
      cmocka_unit_test(test_fd_diagonal),
      cmocka_unit_test(test_fd_non_commuting),
      cmocka_unit_test(test_fd_self_and_singular),
      cmocka_unit_test(test_mean_cov),
      cmocka_unit_test(test_mlp_by_hand),
      cmocka_unit_test(test_real_stats),
      cmocka_unit_test(test_classifier_on_reference_samples),
  };
  return tu_run_group(tests, NULL, NULL);
}
