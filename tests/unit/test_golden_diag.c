/*
 * test_golden_diag.c - golden diagnostics: every tests/golden/diag/NAME.dit is
 * built and its diagnostics compared byte for byte with NAME.expected.
 *
 * A .dit file may say how to build it in comment lines anywhere:
 *   # entry: NAME        the entry to elaborate (default: forward)
 *   # config: NAME       the configuration to use (default: the last model)
 *   # set: NAME=VALUE    a --set override (any number of them)
 * The expected file holds the diagnostics exactly as printed, then a line
 * "# errors: N" with the returned error count.  Files are labelled
 * tests/golden/diag/NAME.dit, whatever the source directory, so the output is
 * stable.  The source directory is $DITC_SRC, else DITC_SOURCE_DIR.
 * DITC_UPDATE_GOLDEN=1 rewrites the .expected files instead of comparing.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "frontend/frontend.h"
#include "testutil.h"

static const char *src_dir(void) {
  const char *s = getenv("DITC_SRC");
  return s && *s ? s : DITC_SOURCE_DIR;
}

static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *buf = NULL;
  size_t n = 0;
  FILE *m = open_memstream(&buf, &n);
  char chunk[4096];
  size_t got;
  while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) fwrite(chunk, 1, got, m);
  fclose(f);
  fclose(m);
  if (len) *len = n;
  return buf;
}

/* The value of "# key: value" comment lines (all of them for `set`). */
static int directives(char *text, const char *key, char **vals, int max) {
  int n = 0;
  size_t kl = strlen(key);
  for (char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
    char *p = line;
    while (*p == ' ' || *p == '\t') p++;
    if (*p != '#') continue;
    p++;
    while (*p == ' ') p++;
    if (strncmp(p, key, kl) || p[kl] != ':') continue;
    p += kl + 1;
    while (*p == ' ') p++;
    size_t l = strcspn(p, "\r\n");
    if (n < max) vals[n++] = strndup(p, l);
  }
  return n;
}

static void check_one(void **state) {
  const char *name = *state;
  char path[1024], expected_path[1024], label[512];
  snprintf(path, sizeof path, "%s/tests/golden/diag/%s.dit", src_dir(), name);
  snprintf(expected_path, sizeof expected_path, "%s/tests/golden/diag/%s.expected", src_dir(), name);
  snprintf(label, sizeof label, "tests/golden/diag/%s.dit", name);
  size_t len = 0;
  char *text = slurp(path, &len);
  assert_non_null(text);

  char *entry[1] = {NULL}, *config[1] = {NULL}, *set[64];
  int has_entry = directives(text, "entry", entry, 1);
  int has_config = directives(text, "config", config, 1);
  int n_sets = directives(text, "set", set, 64);
  FeSetting sets[64];
  for (int i = 0; i < n_sets; i++) {
    char *eq = strchr(set[i], '=');
    assert_non_null(eq);
    *eq = 0;
    sets[i] = (FeSetting){set[i], eq + 1};
  }

  char *got = NULL;
  size_t got_len = 0;
  FILE *diag = open_memstream(&got, &got_len);
  FeModel m;
  int errors = fe_build_source(label, text, len, has_config ? config[0] : NULL, sets, n_sets,
                               has_entry ? entry[0] : "forward", diag, &m);
  fprintf(diag, "# errors: %d\n", errors);
  fclose(diag);
  fe_model_free(&m);

  const char *update = getenv("DITC_UPDATE_GOLDEN");
  if (update && !strcmp(update, "1")) {
    FILE *f = fopen(expected_path, "wb");
    assert_non_null(f);
    fwrite(got, 1, got_len, f);
    fclose(f);
  } else {
    char *want = slurp(expected_path, NULL);
    if (!want) fprintf(stderr, "%s: missing (DITC_UPDATE_GOLDEN=1 writes it); got:\n%s", expected_path, got);
    assert_non_null(want);
    if (strcmp(want, got)) fprintf(stderr, "%s: got:\n%s--- expected:\n%s", name, got, want);
    assert_string_equal(got, want);
    free(want);
  }
  /* every golden file is about errors */
  assert_true(errors > 0);
  free(got);
  free(text);
  free(entry[0]);
  free(config[0]);
  for (int i = 0; i < n_sets; i++) free(set[i]);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(void) {
  char dir[1024];
  snprintf(dir, sizeof dir, "%s/tests/golden/diag", src_dir());
  DIR *d = opendir(dir);
  if (!d) {
    fprintf(stderr, "cannot open %s\n", dir);
    return 1;
  }
  char *names[512];
  int n = 0;
  struct dirent *ent;
  while ((ent = readdir(d)) && n < 512) {
    size_t l = strlen(ent->d_name);
    if (l > 4 && !strcmp(ent->d_name + l - 4, ".dit")) names[n++] = strndup(ent->d_name, l - 4);
  }
  closedir(d);
  qsort(names, (size_t)n, sizeof *names, cmp_str);
  struct CMUnitTest *tests = calloc((size_t)n + 1, sizeof *tests);
  for (int i = 0; i < n; i++)
    tests[i] = (struct CMUnitTest){.name = names[i], .test_func = check_one, .initial_state = names[i]};
  int rc = tu_exit_status(_cmocka_run_group_tests("golden_diag", tests, (size_t)n, NULL, NULL));
  for (int i = 0; i < n; i++) free(names[i]);
  free(tests);
  return rc;
}
