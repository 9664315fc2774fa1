/*
 * fuzz_parser.c - libFuzzer target for the whole front end: the input is a
 * model file, parsed and elaborated (entry "forward" of its last model) from
 * memory; then the same input as a models directory.  Diagnostics go to
 * /dev/null.  Budgets (statements, nodes, call depth, value memory) keep
 * every input fast.
 *
 * The models directory: the input is cut at each "\n#%%\n" into up to four
 * pieces, written as 0.dit .. 3.dit of a temporary directory that
 * DITC_MODELS names (frontend/build.c); a piece that starts with "#!dir"
 * becomes a directory of that name instead, "#!fifo" a FIFO, "#!link" a
 * symlink to nothing: files that cannot be read.  Over it run what
 * `ditc models` does (every configuration of every file, a second
 * definition of a name an error) and the lookup of each configuration name
 * the input declares (up to two), which reads every file: duplicates
 * across files, unreadable files, parse errors in the files searched.  Only
 * inputs that are several files (they hold the separator) take this second
 * path: parsing dominates the time, and one file is the first path's.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "frontend/frontend.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { MAX_FILES = 4, MAX_NAMES = 2 };
static const char SEP[] = "\n#%%\n";
static char dir[64];

static void remove_dir(void) {
  for (int i = 0; i < MAX_FILES; i++) {
    char p[96];
    snprintf(p, sizeof p, "%s/%d.dit", dir, i);
    if (unlink(p)) rmdir(p);
  }
  rmdir(dir);
}

/* The temporary models directory, emptied. */
static void fresh_dir(void) {
  if (!dir[0]) {
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/ditc-fuzz-models-XXXXXX", tmp && *tmp && strlen(tmp) < 30 ? tmp : "/tmp");
    if (!mkdtemp(dir)) abort();
    setenv("DITC_MODELS", dir, 1);
    atexit(remove_dir);
  }
  for (int i = 0; i < MAX_FILES; i++) {
    char p[96];
    snprintf(p, sizeof p, "%s/%d.dit", dir, i);
    if (unlink(p)) rmdir(p);
  }
}

static int starts(const uint8_t *p, size_t n, const char *s) { return n >= strlen(s) && !memcmp(p, s, strlen(s)); }

static void write_piece(int i, const uint8_t *p, size_t n) {
  char path[96];
  snprintf(path, sizeof path, "%s/%d.dit", dir, i);
  if (starts(p, n, "#!dir")) {
    mkdir(path, 0700);
  } else if (starts(p, n, "#!fifo")) {
    mkfifo(path, 0600);
  } else if (starts(p, n, "#!link")) {
    if (symlink("/nonexistent/ditc-fuzz.dit", path)) abort();
  } else {
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(p, 1, n, f) != n) || fclose(f)) abort();
  }
}

/* Up to MAX_NAMES names of `config "NAME"` in the input that a lookup
 * takes as a configuration name (not a path that exists, not FILE:CONFIG). */
static int config_names(const uint8_t *data, size_t size, char names[][48]) {
  int n = 0;
  const char *key = "config \"";
  size_t kl = strlen(key);
  for (size_t i = 0; i + kl < size && n < MAX_NAMES; i++) {
    if (memcmp(data + i, key, kl)) continue;
    size_t s = i + kl, e = s;
    while (e < size && e - s < 47 && data[e] != '"' && data[e] >= 0x20 && data[e] < 0x7f && data[e] != ':') e++;
    if (e == s || e >= size || data[e] != '"' || data[s] == '/' || data[s] == '.') continue;
    memcpy(names[n], data + s, e - s);
    names[n][e - s] = 0;
    struct stat st;
    if (stat(names[n], &st) == 0 || strstr(names[n], ".dit")) continue;
    n++;
  }
  return n;
}

static void models_dir(const uint8_t *data, size_t size, FILE *sink) {
  fresh_dir();
  size_t at = 0;
  for (int i = 0; i < MAX_FILES && at <= size; i++) {
    const uint8_t *hit = i < MAX_FILES - 1 ? memmem(data + at, size - at, SEP, sizeof SEP - 1) : NULL;
    size_t end = hit ? (size_t)(hit - data) : size;
    write_piece(i, data + at, end - at);
    if (!hit) break;
    at = end + sizeof SEP - 1;
  }
  (void)fe_list_configs(NULL, sink, sink);
  char names[MAX_NAMES][48];
  int n = config_names(data, size, names);
  for (int i = 0; i < n; i++) {
    FeModel m;
    if (fe_build(names[i], NULL, 0, "forward", sink, &m) == 0 && !m.graph) abort();
    fe_model_free(&m);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static FILE *sink;
  if (!sink) sink = fopen("/dev/null", "w");
  FeModel m;
  fe_build_source("fuzz.dit", (const char *)data, size, NULL, NULL, 0, "forward", sink, &m);
  fe_model_free(&m);
  if (memmem(data, size, SEP, sizeof SEP - 1)) models_dir(data, size, sink);
  return 0;
}
