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
 * SAMPLES may also be an .npz as `ditc sample --num-samples` writes it (the
 * ADM evaluator's input): arr_0 uint8 [N, H, W, C], read back as
 * (u - 127.5) / 127.5 in [N, C, H, W], and arr_1 the labels (any integer dtype).
 * Samples are clamped to [-1, 1] and flattened row-major, as the reference
 * evaluation does.  Exit status 0 on success, 1 on errors, 2 on usage.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ir/fileio.h"
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

/* ---- .npz (stored zip of .npy) ---- */

static uint32_t rd16(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t rd32(const unsigned char *p) { return rd16(p) | rd16(p + 2) << 16; }

typedef struct {
  char descr[8];
  int rank;
  int64_t shape[4], numel;
  const unsigned char *data;
} NpyView;

/* Member NAME.npy of the stored zip in buf: its dtype, shape and data. */
static int npz_find(const unsigned char *buf, size_t len, const char *path, const char *name, NpyView *v, IrErr *err) {
  size_t at = 0, nl = strlen(name);
  while (at + 30 <= len && rd32(buf + at) == 0x04034b50) {
    uint32_t method = rd16(buf + at + 8), size = rd32(buf + at + 18), fnl = rd16(buf + at + 26), xl = rd16(buf + at + 28);
    const unsigned char *fn = buf + at + 30, *d = fn + fnl + xl;
    if ((size_t)(d - buf) + size > len) break;
    if (fnl == nl + 4 && !memcmp(fn, name, nl) && !memcmp(fn + nl, ".npy", 4)) {
      if (method != 0) return ir_errf(err, "%s: %s.npy is compressed (write the .npz with np.savez, not savez_compressed)", path, name);
      if (size < 12 || memcmp(d, "\x93NUMPY", 6)) return ir_errf(err, "%s: %s.npy is not a .npy", path, name);
      size_t hl = d[6] == 1 ? rd16(d + 8) : rd32(d + 8), h0 = d[6] == 1 ? 10 : 12;
      if (h0 + hl > size || hl > 1000) return ir_errf(err, "%s: %s.npy has a bad header", path, name);
      char h[1024];
      memcpy(h, d + h0, hl);
      h[hl] = 0;
      const char *de = strstr(h, "'descr': '"), *sh = strstr(h, "'shape': (");
      if (!de || !sh || strstr(h, "'fortran_order': True")) return ir_errf(err, "%s: %s.npy: unsupported header %s", path, name, h);
      snprintf(v->descr, sizeof v->descr, "%.*s", (int)strcspn(de + 10, "'"), de + 10);
      v->rank = 0;
      v->numel = 1;
      for (const char *q = sh + 10; *q && *q != ')';) {
        char *end;
        long long x = strtoll(q, &end, 10);
        if (end == q || v->rank == 4) return ir_errf(err, "%s: %s.npy: unsupported shape in %s", path, name, h);
        v->shape[v->rank++] = x;
        v->numel *= x;
        q = end + strspn(end, ", ");
      }
      v->data = d + h0 + hl;
      return 0;
    }
    at = (size_t)(d - buf) + size;
  }
  return ir_errf(err, "%s: no array %s (a stored .npz as `ditc sample --num-samples` writes)", path, name);
}

/* samples [N, C, H, W] in [-1, 1] and labels (NULL when arr_1 is absent) from an .npz. */
static int load_npz(const char *path, float **x, int64_t shape[4], int32_t **labels, IrErr *err) {
  char *buf;
  size_t len;
  if (fio_read_all(path, (uint64_t)1 << 34, "an .npz", &buf, &len, err)) return -1;
  NpyView a, y;
  int rc = -1;
  const unsigned char *b = (const unsigned char *)buf;
  if (npz_find(b, len, path, "arr_0", &a, err)) goto out;
  if (strcmp(a.descr, "|u1") || a.rank != 4) {
    ir_errf(err, "%s: arr_0 must be uint8 [N, H, W, C], got '%s' of rank %d", path, a.descr, a.rank);
    goto out;
  }
  int64_t N = a.shape[0], H = a.shape[1], W = a.shape[2], C = a.shape[3];
  *x = xmalloc(sizeof(float) * (size_t)(a.numel ? a.numel : 1));
  for (int64_t n = 0; n < N; n++)
    for (int64_t i = 0; i < H * W; i++)
      for (int64_t c = 0; c < C; c++)
        (*x)[(n * C + c) * H * W + i] = ((float)a.data[(n * H * W + i) * C + c] - 127.5f) / 127.5f;
  shape[0] = N, shape[1] = C, shape[2] = H, shape[3] = W;
  *labels = NULL;
  IrErr e2;
  if (!npz_find(b, len, path, "arr_1", &y, &e2)) {
    int sz = y.descr[2] - '0';
    if (y.rank != 1 || y.shape[0] != N || !strchr("iu", y.descr[1]) || (sz != 1 && sz != 2 && sz != 4 && sz != 8)) {
      ir_errf(err, "%s: arr_1 must be [%lld] integer labels, got '%s'", path, (long long)N, y.descr);
      free(*x);
      goto out;
    }
    *labels = xmalloc(sizeof(int32_t) * (size_t)(N ? N : 1));
    for (int64_t i = 0; i < N; i++) {
      int64_t v = 0;
      for (int k = sz - 1; k >= 0; k--) v = (v << 8) | y.data[i * sz + k];
      if (y.descr[1] == 'i' && sz < 8 && (v >> (8 * sz - 1)) & 1) v -= (int64_t)1 << (8 * sz);
      (*labels)[i] = (int32_t)v;
    }
  }
  rc = 0;
out:
  free(buf);
  return rc;
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
  int64_t N, per;
  const char *label_source = "i mod 10";
  labels = NULL;
  if (fio_has_ext(samples_path, "npz")) {
    int64_t xs[4];
    int32_t *given = NULL;
    if (load_npz(samples_path, &x, xs, &given, &err)) goto fail;
    N = xs[0], per = xs[1] * xs[2] * xs[3];
    if (per != cls.mlp.in || N < 2) {
      free(given);
      ir_errf(&err, "%s: arr_0 must hold N >= 2 images of %d values (the classifier's input), got %lld of %lld",
              samples_path, cls.mlp.in, (long long)N, (long long)per);
      goto fail;
    }
    if (given && !labels_mod) {
      labels = given;
      label_source = "arr_1";
    } else {
      free(given);
    }
  } else {
    if (!(sf = st_open(samples_path, &err))) goto fail;
    const StTensor *st = st_find(sf, "samples");
    if (!st) {
      ir_errf(&err, "%s: no tensor 'samples'", samples_path);
      goto fail;
    }
    per = 1;
    for (int i = 1; i < st->rank; i++) per *= st->shape[i];
    if (st->rank != 4 || per != cls.mlp.in || st->shape[0] < 2) {
      ir_errf(&err,
              "%s: 'samples' must be [N >= 2, C, H, W] with C*H*W = %d (the classifier's input), "
              "got rank %d with %lld values a sample",
              samples_path, cls.mlp.in, st->rank, (long long)per);
      goto fail;
    }
    N = st->shape[0];
    int64_t xs[4] = {N, st->shape[1], st->shape[2], st->shape[3]};
    if (!(x = load_f32(sf, "samples", 4, xs, NULL, &err))) goto fail;
    const StTensor *lt = labels_mod ? NULL : st_find(sf, "labels");
    if (lt) {
      if (lt->rank != 1 || lt->shape[0] != N) {
        ir_errf(&err, "%s: 'labels' must be [%lld]", samples_path, (long long)N);
        goto fail;
      }
      labels = xmalloc(sizeof(int32_t) * (size_t)N);
      if (st_to_i32(lt, labels, &err) != 0) goto fail;
      label_source = "the 'labels' tensor";
    }
  }
  for (int64_t i = 0; i < N * per; i++) x[i] = isnan(x[i]) ? 0.0f : fminf(1.0f, fmaxf(-1.0f, x[i]));
  if (labels) {
    for (int64_t i = 0; i < N; i++)
      if (labels[i] < 0 || labels[i] >= K) {
        ir_errf(&err, "%s: label %d of sample %lld is not a digit class 0..%d", samples_path,
                labels[i], (long long)i, K - 1);
        goto fail;
      }
  } else {
    labels = xmalloc(sizeof(int32_t) * (size_t)N);
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
