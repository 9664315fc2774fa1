/*
 * digits_eval.c - score samples of the trained digits model
 * (../shared/models/README.md): digit accuracy of the MLP classifier and the
 * Frechet distance of its 64-d features against the real digits' statistics.
 *
 *   digits_eval SAMPLES.safetensors [--classifier FILE] [--stats FILE]
 *               [--labels-mod K] [--json]
 *
 * SAMPLES holds "samples" [N, 1, 16, 16] (any float dtype) and optionally
 * "labels" [N] (integers, as `ditc sample` writes them).  Labels are that
 * tensor when present, else i mod 10; --labels-mod K forces i mod K.
 * Samples are clamped to [-1, 1] and flattened row-major, as the reference
 * evaluation does.  Exit status 0 on success, 1 on errors, 2 on usage.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/quality.h"
#include "runtime/safetensors.h"

#ifndef DITC_SOURCE_DIR
#define DITC_SOURCE_DIR "."
#endif

static const char *usage =
    "usage: digits_eval SAMPLES.safetensors [--classifier FILE] [--stats FILE]\n"
    "                   [--labels-mod K] [--json]\n";

/* The copy shipped in models/digits/ (see its README), else $DITC_SHARED/models/NAME. */
static char *default_path(const char *name) {
  const char *shared = getenv("DITC_SHARED");
  char buf[4096];
  snprintf(buf, sizeof buf, "%s/models/digits/%s", DITC_SOURCE_DIR, name);
  if (access(buf, R_OK) && shared && *shared) snprintf(buf, sizeof buf, "%s/models/%s", shared, name);
  return xstrdup(buf);
}

/* A tensor that must exist with the given shape (dims < 0 are free), as f32. */
static float *load_f32(const StFile *f, const char *name, int rank, const int64_t *shape,
                       int64_t *numel, IrErr *err) {
  const StTensor *t = st_find(f, name);
  if (!t) {
    ir_errf(err, "%s: no tensor '%s'", st_path(f), name);
    return NULL;
  }
  int ok = t->rank == rank;
  int64_t n = 1;
  for (int i = 0; ok && i < rank; i++) {
    if (shape[i] >= 0 && t->shape[i] != shape[i]) ok = 0;
    n *= t->shape[i];
  }
  if (!ok) {
    char want[128] = "[", got[128] = "[";
    for (int i = 0; i < rank; i++)
      snprintf(want + strlen(want), sizeof want - strlen(want), "%s%s%lld", i ? ", " : "",
               shape[i] < 0 ? "?" : "", shape[i] < 0 ? 0LL : (long long)shape[i]);
    for (int i = 0; i < t->rank; i++)
      snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? ", " : "",
               (long long)t->shape[i]);
    ir_errf(err, "%s: tensor '%s' has shape %s], expected %s]", st_path(f), name, got, want);
    return NULL;
  }
  float *out = xmalloc(sizeof(float) * (size_t)(n ? n : 1));
  if (st_to_f32(t, out, err) != 0) {
    free(out);
    return NULL;
  }
  if (numel) *numel = n;
  return out;
}

typedef struct {
  QualityMlp mlp;
  float *w[6];
} Classifier;

static int load_classifier(const char *path, Classifier *c, IrErr *err) {
  memset(c, 0, sizeof *c);
  StFile *f = st_open(path, err);
  if (!f) return -1;
  /* shapes follow from fc1/fc2/fc3.weight; the biases must agree */
  const char *names[6] = {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"};
  int dims[4] = {-1, -1, -1, -1}; /* in, hidden, feat, classes */
  int rc = -1;
  for (int l = 0; l < 3; l++) {
    const StTensor *t = st_find(f, names[2 * l]);
    if (!t || t->rank != 2) {
      ir_errf(err, "%s: '%s' missing or not a matrix", path, names[2 * l]);
      goto done;
    }
    if (dims[l] >= 0 && t->shape[1] != dims[l]) {
      ir_errf(err, "%s: '%s' takes %lld inputs, the layer before gives %d", path, names[2 * l],
              (long long)t->shape[1], dims[l]);
      goto done;
    }
    dims[l] = (int)t->shape[1];
    dims[l + 1] = (int)t->shape[0];
    int64_t ws[2] = {dims[l + 1], dims[l]}, bs[1] = {dims[l + 1]};
    if (!(c->w[2 * l] = load_f32(f, names[2 * l], 2, ws, NULL, err))) goto done;
    if (!(c->w[2 * l + 1] = load_f32(f, names[2 * l + 1], 1, bs, NULL, err))) goto done;
  }
  c->mlp = (QualityMlp){dims[0], dims[1], dims[2], dims[3], c->w[0], c->w[1], c->w[2], c->w[3],
                        c->w[4], c->w[5]};
  rc = 0;
done:
  st_close(f);
  return rc;
}

static void classifier_free(Classifier *c) {
  for (int i = 0; i < 6; i++) free(c->w[i]);
}

int main(int argc, char **argv) {
  const char *samples_path = NULL;
  char *cls_path = NULL, *stats_path = NULL;
  int labels_mod = 0, json = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--json")) {
      json = 1;
    } else if (!strcmp(a, "--classifier") || !strcmp(a, "--stats") || !strcmp(a, "--labels-mod")) {
      if (i + 1 >= argc) {
        fprintf(stderr, "digits_eval: %s needs a value\n%s", a, usage);
        return 2;
      }
      const char *v = argv[++i];
      if (!strcmp(a, "--classifier")) {
        free(cls_path);
        cls_path = xstrdup(v);
      } else if (!strcmp(a, "--stats")) {
        free(stats_path);
        stats_path = xstrdup(v);
      } else {
        char *end;
        long k = strtol(v, &end, 10);
        if (*end || k < 1 || k > 1000000) {
          fprintf(stderr, "digits_eval: --labels-mod needs a positive integer, got '%s'\n", v);
          return 2;
        }
        labels_mod = (int)k;
      }
    } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      fputs(usage, stdout);
      return 0;
    } else if (a[0] == '-' && a[1]) {
      fprintf(stderr, "digits_eval: unknown option '%s'\n%s", a, usage);
      return 2;
    } else if (!samples_path) {
      samples_path = a;
    } else {
      fprintf(stderr, "digits_eval: more than one samples file ('%s', '%s')\n%s", samples_path, a,
              usage);
      return 2;
    }
  }
  if (!samples_path) {
    fputs(usage, stderr);
    return 2;
  }
  if (!cls_path) cls_path = default_path("digits-classifier.safetensors");
  if (!stats_path) stats_path = default_path("digits-real-stats.safetensors");

  IrErr err = {{0}};
  int rc = 1;
  Classifier cls = {0};
  StFile *sf = NULL, *stf = NULL;
  float *x = NULL, *feat = NULL, *logits = NULL, *mu_f = NULL, *sigma_f = NULL;
  int32_t *labels = NULL;
  double *mu_r = NULL, *sigma_r = NULL, *mu_s = NULL, *sigma_s = NULL;

  if (load_classifier(cls_path, &cls, &err) != 0) goto fail;
  const int D = cls.mlp.feat, K = cls.mlp.classes;

  /* real statistics */
  if (!(stf = st_open(stats_path, &err))) goto fail;
  int64_t mus[1] = {D}, sgs[2] = {D, D};
  if (!(mu_f = load_f32(stf, "mu", 1, mus, NULL, &err))) goto fail;
  if (!(sigma_f = load_f32(stf, "sigma", 2, sgs, NULL, &err))) goto fail;
  mu_r = xmalloc(sizeof(double) * (size_t)D);
  sigma_r = xmalloc(sizeof(double) * (size_t)D * (size_t)D);
  for (int i = 0; i < D; i++) mu_r[i] = mu_f[i];
  for (int i = 0; i < D * D; i++) sigma_r[i] = sigma_f[i];

  /* samples and labels */
  if (!(sf = st_open(samples_path, &err))) goto fail;
  const StTensor *st = st_find(sf, "samples");
  if (!st) {
    ir_errf(&err, "%s: no tensor 'samples'", samples_path);
    goto fail;
  }
  int64_t per = 1;
  for (int i = 1; i < st->rank; i++) per *= st->shape[i];
  if (st->rank != 4 || per != cls.mlp.in || st->shape[0] < 2) {
    ir_errf(&err,
            "%s: 'samples' must be [N >= 2, C, H, W] with C*H*W = %d (the classifier's input), "
            "got rank %d with %lld values a sample",
            samples_path, cls.mlp.in, st->rank, (long long)per);
    goto fail;
  }
  int64_t N = st->shape[0];
  int64_t xs[4] = {N, st->shape[1], st->shape[2], st->shape[3]};
  if (!(x = load_f32(sf, "samples", 4, xs, NULL, &err))) goto fail;
  for (int64_t i = 0; i < N * per; i++) x[i] = isnan(x[i]) ? 0.0f : fminf(1.0f, fmaxf(-1.0f, x[i]));

  labels = xmalloc(sizeof(int32_t) * (size_t)N);
  const StTensor *lt = labels_mod ? NULL : st_find(sf, "labels");
  const char *label_source = "i mod 10";
  if (lt) {
    if (lt->rank != 1 || lt->shape[0] != N) {
      ir_errf(&err, "%s: 'labels' must be [%lld]", samples_path, (long long)N);
      goto fail;
    }
    if (st_to_i32(lt, labels, &err) != 0) goto fail;
    for (int64_t i = 0; i < N; i++)
      if (labels[i] < 0 || labels[i] >= K) {
        ir_errf(&err, "%s: label %d of sample %lld is not a digit class 0..%d", samples_path,
                labels[i], (long long)i, K - 1);
        goto fail;
      }
    label_source = "the 'labels' tensor";
  } else {
    int mod = labels_mod ? labels_mod : 10;
    for (int64_t i = 0; i < N; i++) labels[i] = (int32_t)(i % mod);
    label_source = labels_mod ? "i mod K" : "i mod 10";
  }

  /* classify, statistics, distance */
  feat = xmalloc(sizeof(float) * (size_t)(N * D));
  logits = xmalloc(sizeof(float) * (size_t)(N * K));
  quality_mlp_forward(&cls.mlp, x, N, feat, logits);
  double acc = quality_accuracy(logits, N, K, labels);
  mu_s = xmalloc(sizeof(double) * (size_t)D);
  sigma_s = xmalloc(sizeof(double) * (size_t)D * (size_t)D);
  double fd;
  if (quality_mean_cov(feat, N, D, mu_s, sigma_s, &err) != 0) goto fail;
  if (quality_fd(mu_s, sigma_s, mu_r, sigma_r, D, &fd, &err) != 0) goto fail;

  /* per-class accuracy, to see which digits a change hurts */
  int64_t *hit = xcalloc((size_t)K, sizeof(int64_t)), *cnt = xcalloc((size_t)K, sizeof(int64_t));
  for (int64_t i = 0; i < N; i++) {
    int32_t y = labels[i];
    if (y < 0 || y >= K) continue;
    cnt[y]++;
    hit[y] += quality_accuracy(logits + i * K, 1, K, labels + i) == 1.0;
  }
  if (json) {
    printf("{\"samples\": %lld, \"accuracy\": %.6f, \"fd\": %.6f, \"per_class_accuracy\": [",
           (long long)N, acc, fd);
    for (int k = 0; k < K; k++) {
      if (cnt[k]) printf("%s%.6f", k ? ", " : "", (double)hit[k] / (double)cnt[k]);
      else printf("%snull", k ? ", " : "");
    }
    printf("]}\n");
  } else {
    printf("samples         %lld (labels: %s)\n", (long long)N, label_source);
    printf("digit accuracy  %.4f\n", acc);
    printf("FD              %.4f\n", fd);
    printf("per digit      ");
    for (int k = 0; k < K; k++)
      if (cnt[k]) printf(" %d:%.2f", k, (double)hit[k] / (double)cnt[k]);
    printf("\n");
  }
  free(hit);
  free(cnt);
  rc = 0;
  goto done;
fail:
  fprintf(stderr, "digits_eval: %s\n", err.msg);
done:
  classifier_free(&cls);
  st_close(sf);
  st_close(stf);
  free(x);
  free(feat);
  free(logits);
  free(mu_f);
  free(sigma_f);
  free(labels);
  free(mu_r);
  free(sigma_r);
  free(mu_s);
  free(sigma_s);
  free(cls_path);
  free(stats_path);
  return rc;
}
