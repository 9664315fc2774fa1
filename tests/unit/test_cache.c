/*
 * test_cache.c - the kernel cache in a fresh temporary directory: misses then
 * hits, what the key depends on, corrupt and truncated entries (reported,
 * removed, rebuilt), two processes building the same kernels at once, and
 * the ls / verify / clear walks.  The "compiler" is a stand-in that derives
 * the payload from the source, so no NVRTC is needed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "codegen/cache.h"
#include "testutil.h"

/* ---- fixtures ----------------------------------------------------------------- */

typedef struct {
  char dir[256];
  CgCache *c;
  int warnings;
  char last_warning[1024];
  int compiles;
  int sleep_us;
} Fx;

static void on_warn(void *user, const char *msg) {
  Fx *f = user;
  f->warnings++;
  snprintf(f->last_warning, sizeof f->last_warning, "%s", msg);
}

/* Payload: a fake ELF header, then the arch and the source, so it depends on both. */
static int fake_compile(void *user, const CgCacheRequest *r, unsigned char **out, size_t *n,
                        IrErr *err) {
  Fx *f = user;
  (void)err;
  f->compiles++;
  if (f->sleep_us) usleep((useconds_t)f->sleep_us);
  size_t ls = strlen(r->source), la = strlen(r->arch);
  *n = 4 + la + 1 + ls;
  *out = malloc(*n);
  memcpy(*out, "\x7f" "ELF", 4);
  memcpy(*out + 4, r->arch, la + 1);
  memcpy(*out + 4 + la + 1, r->source, ls);
  return 0;
}

static int failing_compile(void *user, const CgCacheRequest *r, unsigned char **out, size_t *n,
                           IrErr *err) {
  (void)user;
  (void)r;
  (void)out;
  (void)n;
  return ir_errf(err, "syntax error, of course");
}

static int setup(void **state) {
  Fx *f = calloc(1, sizeof *f);
  snprintf(f->dir, sizeof f->dir, "/tmp/ditc-test-cache-XXXXXX");
  if (!mkdtemp(f->dir)) return -1;
  IrErr err;
  f->c = cg_cache_open(f->dir, &err);
  if (!f->c) return -1;
  cg_cache_set_warn(f->c, on_warn, f);
  *state = f;
  return 0;
}

static int rm_rf(const char *path) {
  struct stat st;
  if (lstat(path, &st) != 0) return 0;
  if (S_ISDIR(st.st_mode)) {
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d))) {
      if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
      char sub[1024];
      snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
      rm_rf(sub);
    }
    if (d) closedir(d);
    return rmdir(path);
  }
  return unlink(path);
}

static int teardown(void **state) {
  Fx *f = *state;
  cg_cache_close(f->c);
  rm_rf(f->dir);
  free(f);
  return 0;
}

static CgCacheRequest req(const char *source, const char *arch) {
  static const char *const opts[] = {"-DN=4", "--use_fast_math"};
  return (CgCacheRequest){.source = source, .name = "k.cu", .arch = arch, .options = opts,
                          .n_options = 2, .compiler_version = "nvrtc 13.0",
                          .codegen_version = "ditc-cg 1"};
}

/* get_or_compile, checking the payload is the one fake_compile makes. */
static int get(Fx *f, const CgCacheRequest *r) {
  unsigned char *data;
  size_t n;
  int hit;
  IrErr err;
  if (cg_cache_get_or_compile(f->c, r, fake_compile, f, &data, &n, &hit, &err))
    fail_msg("%s", err.msg);
  size_t la = strlen(r->arch);
  assert_int_equal(n, 4 + la + 1 + strlen(r->source));
  assert_memory_equal(data, "\x7f" "ELF", 4);
  assert_string_equal((char *)data + 4, r->arch);
  assert_memory_equal(data + 4 + la + 1, r->source, strlen(r->source));
  free(data);
  return hit;
}

static char *path_of(Fx *f, const CgCacheRequest *r) {
  CgCacheKey k;
  char hex[65];
  IrErr err;
  assert_int_equal(cg_cache_key(r, &k, &err), 0);
  cg_cache_key_hex(&k, hex);
  static char path[512];
  snprintf(path, sizeof path, "%s/%s/%.2s/%s.cubin", f->dir, r->arch, hex, hex);
  return path;
}

static long file_size(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* Count files whose name starts with prefix, anywhere under dir. */
static int count_files(const char *dir, const char *prefix) {
  int n = 0;
  DIR *d = opendir(dir);
  struct dirent *e;
  while (d && (e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    char sub[1024];
    snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
    struct stat st;
    if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode))
      n += count_files(sub, prefix);
    else if (!strncmp(e->d_name, prefix, strlen(prefix)))
      n++;
  }
  if (d) closedir(d);
  return n;
}

/* ---- tests -------------------------------------------------------------------- */

static void test_default_dir(void **state) {
  (void)state;
  char *saved[3];
  const char *names[3] = {"DITC_CACHE_DIR", "XDG_CACHE_HOME", "HOME"};
  for (int i = 0; i < 3; i++) saved[i] = getenv(names[i]) ? strdup(getenv(names[i])) : NULL;
  char buf[512];
  IrErr err;
  setenv("DITC_CACHE_DIR", "/d/cache", 1);
  setenv("XDG_CACHE_HOME", "/x", 1);
  setenv("HOME", "/h", 1);
  assert_int_equal(cg_cache_default_dir(buf, sizeof buf, &err), 0);
  assert_string_equal(buf, "/d/cache");
  unsetenv("DITC_CACHE_DIR");
  assert_int_equal(cg_cache_default_dir(buf, sizeof buf, &err), 0);
  assert_string_equal(buf, "/x/ditc");
  setenv("XDG_CACHE_HOME", "relative", 1); /* ignored, as the XDG spec says */
  assert_int_equal(cg_cache_default_dir(buf, sizeof buf, &err), 0);
  assert_string_equal(buf, "/h/.cache/ditc");
  unsetenv("XDG_CACHE_HOME");
  unsetenv("HOME");
  assert_int_equal(cg_cache_default_dir(buf, sizeof buf, &err), -1);
  assert_non_null(strstr(err.msg, "DITC_CACHE_DIR"));
  for (int i = 0; i < 3; i++) {
    if (saved[i]) setenv(names[i], saved[i], 1);
    free(saved[i]);
  }
}

static void test_open_creates_private_dirs(void **state) {
  Fx *f = *state;
  char deep[512];
  snprintf(deep, sizeof deep, "%s/a/b/c/", f->dir);
  IrErr err;
  CgCache *c = cg_cache_open(deep, &err);
  assert_non_null(c);
  assert_int_equal(strcmp(cg_cache_dir(c) + strlen(cg_cache_dir(c)) - 6, "/a/b/c"), 0);
  struct stat st;
  assert_int_equal(stat(cg_cache_dir(c), &st), 0);
  assert_true(S_ISDIR(st.st_mode));
  assert_int_equal(st.st_mode & 0777, 0700);
  cg_cache_close(c);
  /* A file in the way is an error, not a crash. */
  char file[512];
  snprintf(file, sizeof file, "%s/plainfile", f->dir);
  FILE *fp = fopen(file, "w");
  fclose(fp);
  snprintf(deep, sizeof deep, "%s/plainfile/sub", f->dir);
  assert_null(cg_cache_open(deep, &err));
  assert_non_null(strstr(err.msg, "plainfile"));
}

static void test_miss_then_hit(void **state) {
  Fx *f = *state;
  CgCacheRequest r = req("__global__ void k() {}\n", "sm_90");
  assert_int_equal(get(f, &r), 0);
  assert_int_equal(f->compiles, 1);
  assert_int_equal(get(f, &r), 1);
  assert_int_equal(get(f, &r), 1);
  assert_int_equal(f->compiles, 1);
  CgCacheStats s = cg_cache_stats(f->c);
  assert_int_equal(s.misses, 1);
  assert_int_equal(s.hits, 2);
  assert_int_equal(s.stores, 1);
  assert_int_equal(s.corrupt, 0);
  /* The entry: where the header says, header + payload long, with the magic. */
  const char *p = path_of(f, &r);
  assert_int_equal(file_size(p), 88 + 4 + 6 + (long)strlen(r.source));
  FILE *fp = fopen(p, "rb");
  char magic[9] = {0};
  assert_int_equal(fread(magic, 1, 8, fp), 8);
  fclose(fp);
  assert_string_equal(magic, "DITCKC01");
  /* The same kernel for another GPU is another entry. */
  CgCacheRequest r80 = r;
  r80.arch = "sm_80";
  assert_int_equal(get(f, &r80), 0);
  assert_int_equal(get(f, &r80), 1);
  assert_int_equal(f->warnings, 0);
  /* A failing compile is an error, and nothing is stored. */
  CgCacheRequest bad = req("oops", "sm_90");
  unsigned char *data;
  size_t n;
  int hit;
  IrErr err;
  assert_int_equal(cg_cache_get_or_compile(f->c, &bad, failing_compile, f, &data, &n, &hit, &err),
                   -1);
  assert_string_equal(err.msg, "syntax error, of course");
  assert_null(data);
  assert_int_equal(file_size(path_of(f, &bad)), -1);
}

static void test_key_depends_on_everything(void **state) {
  (void)state;
  IrErr err;
  CgCacheRequest base = req("src", "sm_90");
  CgCacheKey k0, k;
  assert_int_equal(cg_cache_key(&base, &k0, &err), 0);
  assert_int_equal(cg_cache_key(&base, &k, &err), 0);
  assert_memory_equal(k0.b, k.b, 32);

  CgCacheRequest r = base;
  r.source = "src ";
  assert_int_equal(cg_cache_key(&r, &k, &err), 0);
  assert_memory_not_equal(k0.b, k.b, 32);
  r = base;
  r.arch = "sm_90a";
  assert_int_equal(cg_cache_key(&r, &k, &err), 0);
  assert_memory_not_equal(k0.b, k.b, 32);
  r = base;
  r.compiler_version = "nvrtc 13.1";
  assert_int_equal(cg_cache_key(&r, &k, &err), 0);
  assert_memory_not_equal(k0.b, k.b, 32);
  r = base;
  r.codegen_version = "ditc-cg 2";
  assert_int_equal(cg_cache_key(&r, &k, &err), 0);
  assert_memory_not_equal(k0.b, k.b, 32);
  r = base;
  r.name = "other.cu";
  assert_int_equal(cg_cache_key(&r, &k, &err), 0);
  assert_memory_not_equal(k0.b, k.b, 32);
  const char *more[] = {"-DN=4", "--use_fast_math", "-lineinfo"};
  r = base;
  r.options = more;
  r.n_options = 3;
  assert_int_equal(cg_cache_key(&r, &k, &err), 0);
  assert_memory_not_equal(k0.b, k.b, 32);
  const char *changed[] = {"-DN=8", "--use_fast_math"};
  r.options = changed;
  r.n_options = 2;
  assert_int_equal(cg_cache_key(&r, &k, &err), 0);
  assert_memory_not_equal(k0.b, k.b, 32);
  /* Options are a set: their order does not matter... */
  const char *swapped[] = {"--use_fast_math", "-DN=4"};
  r.options = swapped;
  assert_int_equal(cg_cache_key(&r, &k, &err), 0);
  assert_memory_equal(k0.b, k.b, 32);
  /* ...but how they split into strings does (length prefixes). */
  const char *joined[] = {"-DN=4--use_fast_math"};
  r.options = joined;
  r.n_options = 1;
  assert_int_equal(cg_cache_key(&r, &k, &err), 0);
  assert_memory_not_equal(k0.b, k.b, 32);

  /* Hex round trip, and bad arch names (they become directory names). */
  char hex[65];
  cg_cache_key_hex(&k0, hex);
  assert_int_equal(strlen(hex), 64);
  assert_int_equal(cg_cache_key_parse(hex, &k), 0);
  assert_memory_equal(k0.b, k.b, 32);
  assert_int_equal(cg_cache_key_parse("abc", &k), -1);
  hex[10] = 'G';
  assert_int_equal(cg_cache_key_parse(hex, &k), -1);
  const char *bad_arch[] = {"", "../etc", "sm 90", "sm/90", NULL};
  for (int i = 0; i < 5; i++) {
    r = base;
    r.arch = bad_arch[i];
    assert_int_equal(cg_cache_key(&r, &k, &err), -1);
    assert_non_null(strstr(err.msg, "architecture"));
  }
}

/* Damage an entry with `damage`, then check it is reported, removed and rebuilt. */
static void check_rebuilt(Fx *f, const CgCacheRequest *r, const char *why) {
  int warnings = f->warnings, compiles = f->compiles;
  long corrupt = cg_cache_stats(f->c).corrupt;
  assert_int_equal(get(f, r), 0); /* a miss: never trusted */
  assert_int_equal(f->compiles, compiles + 1);
  assert_int_equal(f->warnings, warnings + 1);
  assert_non_null(strstr(f->last_warning, "corrupt entry"));
  assert_non_null(strstr(f->last_warning, path_of(f, r)));
  if (!strstr(f->last_warning, why)) fail_msg("warning \"%s\" lacks \"%s\"", f->last_warning, why);
  assert_int_equal(cg_cache_stats(f->c).corrupt, corrupt + 1);
  assert_int_equal(get(f, r), 1); /* rebuilt and stored again */
  assert_int_equal(f->warnings, warnings + 1);
}

static void flip_byte(const char *path, long off) {
  int fd = open(path, O_RDWR);
  assert_true(fd >= 0);
  unsigned char b;
  assert_int_equal(pread(fd, &b, 1, off), 1);
  b ^= 0x20;
  assert_int_equal(pwrite(fd, &b, 1, off), 1);
  close(fd);
}

static void test_corrupt_entries(void **state) {
  Fx *f = *state;
  CgCacheRequest r = req("__global__ void corrupt_me() { /* a longer body */ }\n", "sm_90");
  assert_int_equal(get(f, &r), 0);
  const char *p = path_of(f, &r);
  long full = file_size(p);

  assert_int_equal(truncate(p, full - 7), 0); /* payload cut short */
  check_rebuilt(f, &r, "payload should be");
  assert_int_equal(file_size(p), full);

  assert_int_equal(truncate(p, 40), 0); /* header cut short */
  check_rebuilt(f, &r, "truncated");

  flip_byte(p, full - 3); /* payload bit rot */
  check_rebuilt(f, &r, "hash");

  flip_byte(p, 2); /* magic */
  check_rebuilt(f, &r, "magic");

  flip_byte(p, 60); /* the key in the header */
  check_rebuilt(f, &r, "key");

  /* A hit directly through load, and a plain miss for an unknown key. */
  CgCacheKey k;
  IrErr err;
  unsigned char *data;
  size_t n;
  assert_int_equal(cg_cache_key(&r, &k, &err), 0);
  assert_int_equal(cg_cache_load(f->c, "sm_90", &k, &data, &n, &err), 1);
  free(data);
  k.b[0] ^= 1;
  assert_int_equal(cg_cache_load(f->c, "sm_90", &k, &data, &n, &err), 0);
  assert_null(data);
}

/* Two processes build the same 20 kernels at the same moment. */
static void test_concurrent_builders(void **state) {
  Fx *f = *state;
  enum { KEYS = 20, PROCS = 2 };
  char src[KEYS][64];
  for (int i = 0; i < KEYS; i++) snprintf(src[i], sizeof src[i], "__global__ void k%d() {}\n", i);
  int go[2];
  assert_int_equal(pipe(go), 0);
  pid_t pid[PROCS];
  for (int p = 0; p < PROCS; p++) {
    pid[p] = fork();
    assert_true(pid[p] >= 0);
    if (pid[p] == 0) {
      close(go[1]);
      char b;
      if (read(go[0], &b, 1) != 0) _exit(10); /* released when the parent closes the pipe */
      IrErr err;
      CgCache *c = cg_cache_open(f->dir, &err);
      if (!c) _exit(11);
      Fx mine = {.sleep_us = 3000};
      for (int i = 0; i < KEYS; i++) {
        CgCacheRequest r = req(src[i], "sm_90");
        unsigned char *data;
        size_t n;
        int hit;
        if (cg_cache_get_or_compile(c, &r, fake_compile, &mine, &data, &n, &hit, &err)) _exit(12);
        if (n != 4 + 6 + strlen(src[i]) || memcmp(data + 10, src[i], strlen(src[i]))) _exit(13);
        free(data);
      }
      CgCacheStats s = cg_cache_stats(c);
      if (s.corrupt != 0 || s.hits + s.misses != KEYS) _exit(14);
      cg_cache_close(c);
      _exit(0);
    }
  }
  close(go[0]);
  close(go[1]);
  for (int p = 0; p < PROCS; p++) {
    int st;
    assert_int_equal(waitpid(pid[p], &st, 0), pid[p]);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
  }
  int ok = -1, bad = -1;
  IrErr err;
  assert_int_equal(cg_cache_verify(f->c, NULL, 0, &ok, &bad, &err), 0);
  assert_int_equal(ok, KEYS);
  assert_int_equal(bad, 0);
  assert_int_equal(count_files(f->dir, ".tmp-"), 0);
  for (int i = 0; i < KEYS; i++) {
    CgCacheRequest r = req(src[i], "sm_90");
    assert_int_equal(get(f, &r), 1);
  }
  assert_int_equal(f->compiles, 0);
  assert_int_equal(f->warnings, 0);
}

static void test_ls_verify_clear(void **state) {
  Fx *f = *state;
  IrErr err;
  const char *archs[] = {"sm_80", "sm_80", "sm_80", "sm_90", "sm_90"};
  const char *srcs[] = {"a", "b", "c", "d", "e"};
  for (int i = 0; i < 5; i++) {
    CgCacheRequest r = req(srcs[i], archs[i]);
    assert_int_equal(get(f, &r), 0);
  }
  /* Strays a walk must not take for entries. */
  char stray[600];
  CgCacheRequest r0 = req("a", "sm_80");
  snprintf(stray, sizeof stray, "%s", path_of(f, &r0));
  strcpy(strrchr(stray, '/') + 1, ".tmp-deadbeef-XXXXXX");
  int fd = mkstemp(stray);
  assert_true(fd >= 0);
  close(fd);
  char readme[600];
  snprintf(readme, sizeof readme, "%s/README", f->dir);
  FILE *fp = fopen(readme, "w");
  fputs("not an entry\n", fp);
  fclose(fp);

  CgCacheEntry *e;
  int n;
  assert_int_equal(cg_cache_list(f->c, NULL, &e, &n, &err), 0);
  assert_int_equal(n, 5);
  for (int i = 0; i < n; i++) {
    assert_string_equal(e[i].arch, i < 3 ? "sm_80" : "sm_90");
    if (i != 0 && i != 3) assert_true(strcmp(e[i - 1].key, e[i].key) < 0);
    assert_int_equal(strlen(e[i].key), 64);
    assert_int_equal(e[i].size, 88 + 4 + 6 + 1);
    assert_true(e[i].mtime > time(NULL) - 3600 && e[i].mtime <= time(NULL) + 5);
  }
  free(e);
  assert_int_equal(cg_cache_list(f->c, "sm_90", &e, &n, &err), 0);
  assert_int_equal(n, 2);
  free(e);
  assert_int_equal(cg_cache_list(f->c, "sm_75", &e, &n, &err), 0);
  assert_int_equal(n, 0);
  free(e);
  assert_int_equal(cg_cache_list(f->c, "../x", &e, &n, &err), -1);

  /* verify: one bad entry, reported; kept unless asked to remove. */
  CgCacheRequest rd = req("d", "sm_90");
  char bad_path[600];
  snprintf(bad_path, sizeof bad_path, "%s", path_of(f, &rd));
  flip_byte(bad_path, file_size(bad_path) - 1);
  int ok, bad;
  assert_int_equal(cg_cache_verify(f->c, NULL, 0, &ok, &bad, &err), 0);
  assert_int_equal(ok, 4);
  assert_int_equal(bad, 1);
  assert_int_equal(f->warnings, 1);
  assert_non_null(strstr(f->last_warning, bad_path));
  assert_true(file_size(bad_path) > 0);
  assert_int_equal(cg_cache_verify(f->c, "sm_80", 0, &ok, &bad, &err), 0);
  assert_int_equal(ok, 3);
  assert_int_equal(bad, 0);
  assert_int_equal(cg_cache_verify(f->c, NULL, 1, &ok, &bad, &err), 0);
  assert_int_equal(bad, 1);
  assert_int_equal(file_size(bad_path), -1);
  assert_int_equal(cg_cache_verify(f->c, NULL, 0, &ok, &bad, &err), 0);
  assert_int_equal(ok, 4);
  assert_int_equal(bad, 0);

  /* clear one arch: its entries, leftover temporaries and directories go. */
  int removed;
  assert_int_equal(cg_cache_clear(f->c, "sm_80", &removed, &err), 0);
  assert_int_equal(removed, 3);
  assert_int_equal(count_files(f->dir, ".tmp-"), 0);
  char archdir[600];
  snprintf(archdir, sizeof archdir, "%s/sm_80", f->dir);
  assert_int_equal(file_size(archdir), -1);
  assert_int_equal(cg_cache_list(f->c, NULL, &e, &n, &err), 0);
  assert_int_equal(n, 1);
  assert_string_equal(e[0].arch, "sm_90");
  free(e);
  /* clear all: the cache directory itself and foreign files stay. */
  assert_int_equal(cg_cache_clear(f->c, NULL, &removed, &err), 0);
  assert_int_equal(removed, 1);
  assert_int_equal(cg_cache_list(f->c, NULL, &e, &n, &err), 0);
  assert_int_equal(n, 0);
  free(e);
  assert_true(file_size(readme) > 0);
  snprintf(archdir, sizeof archdir, "%s/sm_90", f->dir);
  assert_int_equal(file_size(archdir), -1);
  /* And the cache still works afterwards. */
  CgCacheRequest r = req("a", "sm_80");
  assert_int_equal(get(f, &r), 0);
  assert_int_equal(get(f, &r), 1);
}

/* Entries that are not files, or too large: refused by type and by size
 * before a byte of payload is read, never a hang; removed and rebuilt, or,
 * where they cannot be removed, said so and left alone. */
static void test_hostile_entries(void **state) {
  Fx *f = *state;
  CgCacheRequest r = req("hostile", "sm_90");
  assert_int_equal(get(f, &r), 0);
  char path[512];
  snprintf(path, sizeof path, "%s", path_of(f, &r));
  unsigned char hdr[88];
  FILE *fp = fopen(path, "rb");
  assert_non_null(fp);
  assert_int_equal(fread(hdr, 1, sizeof hdr, fp), sizeof hdr);
  fclose(fp);

  /* a FIFO nobody writes to */
  assert_int_equal(unlink(path), 0);
  assert_int_equal(mkfifo(path, 0600), 0);
  int compiles = f->compiles;
  time_t t0 = time(NULL);
  assert_int_equal(get(f, &r), 0);
  assert_true(time(NULL) - t0 < 5);
  assert_int_equal(f->compiles, compiles + 1);
  assert_non_null(strstr(f->last_warning, "is a FIFO, not a regular file"));
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  assert_true(S_ISREG(st.st_mode)); /* rebuilt as a file */

  /* an empty directory: removed and rebuilt, as the warning says */
  assert_int_equal(unlink(path), 0);
  assert_int_equal(mkdir(path, 0700), 0);
  compiles = f->compiles;
  assert_int_equal(get(f, &r), 0);
  assert_int_equal(f->compiles, compiles + 1);
  assert_non_null(strstr(f->last_warning, "is a directory, not a regular file); removed, will rebuild"));
  assert_int_equal(stat(path, &st), 0);
  assert_true(S_ISREG(st.st_mode));
  assert_int_equal(get(f, &r), 1);
  /* one with a file in it cannot be removed: the warning says so (once), the
   * kernel is compiled each time and never stored, nothing of it is touched */
  assert_int_equal(unlink(path), 0);
  assert_int_equal(mkdir(path, 0700), 0);
  char inner[600];
  snprintf(inner, sizeof inner, "%s/keep", path);
  fp = fopen(inner, "w");
  assert_non_null(fp);
  fclose(fp);
  for (int k = 0; k < 2; k++) {
    int warnings = f->warnings;
    compiles = f->compiles;
    assert_int_equal(get(f, &r), 0);
    assert_int_equal(f->compiles, compiles + 1);
    assert_int_equal(f->warnings, warnings + 1);
    assert_non_null(strstr(f->last_warning, "is a directory, not a regular file); it cannot be removed"));
    assert_null(strstr(f->last_warning, "removed, will rebuild"));
    assert_non_null(strstr(f->last_warning, "not cached"));
  }
  assert_int_equal(access(inner, F_OK), 0);
  assert_int_equal(unlink(inner), 0);
  assert_int_equal(rmdir(path), 0);
  assert_int_equal(get(f, &r), 0);
  assert_int_equal(get(f, &r), 1);

  /* 100 GB of holes behind a header that agrees with them */
  uint64_t len = ((uint64_t)100 << 30) - sizeof hdr;
  for (int i = 0; i < 8; i++) hdr[16 + i] = (unsigned char)(len >> (8 * i));
  int fd = open(path, O_WRONLY | O_TRUNC);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, hdr, sizeof hdr), (ssize_t)sizeof hdr);
  int sparse = ftruncate(fd, (off_t)100 << 30) == 0;
  close(fd);
  if (!sparse) {
    tu_note_skip("this file system cannot make a 100 GB sparse file");
    return;
  }
  t0 = time(NULL);
  assert_int_equal(get(f, &r), 0);
  assert_true(time(NULL) - t0 < 5);
  assert_non_null(strstr(f->last_warning, "107374182400 bytes, more than an entry may hold"));
  assert_true(file_size(path) < 1 << 20);
  assert_int_equal(get(f, &r), 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_default_dir),
      cmocka_unit_test_setup_teardown(test_open_creates_private_dirs, setup, teardown),
      cmocka_unit_test_setup_teardown(test_miss_then_hit, setup, teardown),
      cmocka_unit_test(test_key_depends_on_everything),
      cmocka_unit_test_setup_teardown(test_corrupt_entries, setup, teardown),
      cmocka_unit_test_setup_teardown(test_concurrent_builders, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ls_verify_clear, setup, teardown),
      cmocka_unit_test_setup_teardown(test_hostile_entries, setup, teardown),
  };
  return tu_run_group(tests, NULL, NULL);
}
