/*
 * cli_resume.c - what `ditc sample --num-samples N --output X.npz` keeps of
 * an unfinished run so that `--resume` continues it: the folder X.npz.partial/
 * with `settings` (one line per setting that changes the file's bytes) and one
 * file per finished batch of each rank (`rRANK-bFIRST`, the batch's uint8
 * images then its int64 labels), each written atomically.  A resume with other
 * settings is refused (the differing lines named); the folder goes once the
 * .npz is committed.  A run without --resume refuses a folder that is there
 * (it holds finished work).
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "frontend/cli.h"

#define SETTINGS_CAP (1u << 20)

static void chunk_path(const CliResume *r, int rank, int64_t first, char *buf, size_t n) {
  snprintf(buf, n, "%s/r%d-b%lld", r->dir, rank, (long long)first);
}

/* The first line of a that b lacks, into out (for the message). */
static void first_diff(const char *a, const char *b, char *out, size_t n) {
  snprintf(out, n, "?");
  for (const char *p = a; *p;) {
    size_t len = strcspn(p, "\n");
    int found = 0;
    for (const char *q = b; *q;) {
      size_t l2 = strcspn(q, "\n");
      if (l2 == len && !strncmp(p, q, len)) found = 1;
      q += l2 + (q[l2] == '\n');
    }
    if (!found) {
      snprintf(out, n, "%.*s", (int)len, p);
      return;
    }
    p += len + (p[len] == '\n');
  }
}

/* Whether dir holds nothing but `settings` (no finished batch). */
static int only_settings(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return 0;
  struct dirent *e;
  int other = 0;
  while ((e = readdir(d)))
    other += strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, "settings");
  closedir(d);
  return !other;
}

int cli_resume_open(CliResume *r, const char *output, const char *settings, int resume, int rank) {
  IrErr err;
  memset(r, 0, sizeof *r);
  if ((size_t)snprintf(r->dir, sizeof r->dir, "%s.partial", output) >= sizeof r->dir)
    return cli_fail("%s: the name is too long", output);
  r->on = 1;
  if (rank) return 0; /* rank 0 makes the folder (the ranks agree before anyone uses it) */
  char path[sizeof r->dir + 32];
  snprintf(path, sizeof path, "%s/settings", r->dir);
  struct stat st;
  if (!stat(r->dir, &st)) {
    if (!S_ISDIR(st.st_mode)) return cli_fail("%s is there and is not a folder of finished batches", r->dir);
    if (!resume && only_settings(r->dir)) { /* nothing finished there: start again */
      cli_resume_clean(r, 0, 1);
      goto fresh;
    }
    if (!resume)
      return cli_fail("%s holds the finished batches of an interrupted run: give --resume to continue it (with the "
                      "same settings), or remove it", r->dir);
    char *old;
    size_t len;
    if (fio_read_all(path, SETTINGS_CAP, "the settings of a run", &old, &len, &err)) return cli_fail("%s", err.msg);
    int same = !strcmp(old, settings);
    char a[256], b[256];
    first_diff(old, settings, a, sizeof a);
    first_diff(settings, old, b, sizeof b);
    free(old);
    if (!same)
      return cli_fail("--resume: %s was started with other settings (it has '%s', this run '%s'); run with the same "
                      "settings, or remove it to start again", r->dir, a, b);
    fprintf(stderr, "ditc: resuming from %s\n", r->dir);
    return 0;
  }
  if (errno != ENOENT) return cli_fail("%s: %s", r->dir, strerror(errno));
fresh:
  if (mkdir(r->dir, 0777)) return cli_fail("%s: cannot create the folder of finished batches: %s", r->dir, strerror(errno));
  FioOut *f = fio_out_open(path, NULL, &err);
  if (!f) return cli_fail("%s", err.msg);
  if (fio_out_write(f, settings, strlen(settings), &err)) {
    fio_out_abort(f);
    return cli_fail("%s", err.msg);
  }
  if (fio_out_commit(f, &err)) return cli_fail("%s", err.msg);
  return 0;
}

int cli_resume_load(const CliResume *r, int rank, int64_t first, void *img, size_t img_bytes, void *lab,
                    size_t lab_bytes) {
  if (!r->on) return 0;
  char path[sizeof r->dir + 64];
  chunk_path(r, rank, first, path, sizeof path);
  if (access(path, F_OK)) return 0;
  IrErr err;
  char *data;
  size_t len;
  if (fio_read_all(path, img_bytes + lab_bytes + 1, "a finished batch", &data, &len, &err)) return 0;
  if (len != img_bytes + lab_bytes) { /* damaged: sampled again */
    free(data);
    return 0;
  }
  memcpy(img, data, img_bytes);
  memcpy(lab, data + img_bytes, lab_bytes);
  free(data);
  return 1;
}

int cli_resume_save(const CliResume *r, int rank, int64_t first, const void *img, size_t img_bytes, const void *lab,
                    size_t lab_bytes) {
  if (!r->on) return 0;
  char path[sizeof r->dir + 64];
  chunk_path(r, rank, first, path, sizeof path);
  IrErr err;
  /* rank 0 made the folder; another machine's rank without a shared file system makes its own */
  if (rank && mkdir(r->dir, 0777) && errno != EEXIST)
    return cli_fail("%s: cannot create the folder of finished batches: %s", r->dir, strerror(errno));
  FioOut *f = fio_out_open(path, NULL, &err);
  if (!f) return cli_fail("%s", err.msg);
  if (fio_out_write(f, img, img_bytes, &err) || fio_out_write(f, lab, lab_bytes, &err)) {
    fio_out_abort(f);
    return cli_fail("%s", err.msg);
  }
  return fio_out_commit(f, &err) ? cli_fail("%s", err.msg) : 0;
}

void cli_resume_clean(const CliResume *r, int rank, int all) {
  if (!r->on) return;
  DIR *d = opendir(r->dir);
  if (!d) return;
  struct dirent *e;
  char path[sizeof r->dir + 300], mine[32];
  int n_mine = snprintf(mine, sizeof mine, "r%d-", rank);
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && (all || !strncmp(e->d_name, mine, (size_t)n_mine))) {
      snprintf(path, sizeof path, "%s/%s", r->dir, e->d_name);
      unlink(path);
    }
  closedir(d);
  if (all) rmdir(r->dir);
}
