/*
 * cache.c - the on-disk kernel cache: SHA-256 keys, atomically written and
 * fully checked entries, and the walks behind `ditc cache ls|verify|clear`.
 *
 * Entries are only ever created by rename() of a complete, fsync'd file (an
 * output of ir/fileio.h), so a reader sees either nothing or a whole entry.  What can still go wrong (a
 * disk error, a truncated copy, a hand edit) is caught by the header's length
 * and the payload's hash; such an entry is removed and rebuilt.  Hashing uses
 * OpenSSL's EVP interface.  The layout is described in cache.h.
 */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "codegen/bytes.h"
#include "codegen/cache.h"
#include "codegen/cubin_source.h"
#include "ir/fileio.h"

enum {
  HDR_SIZE = 8 + 4 + 4 + 8 + 32 + 32,
  FORMAT_VERSION = 1,
  MAX_ARCH = 31,
};
static const char MAGIC[8] = {'D', 'I', 'T', 'C', 'K', 'C', '0', '1'};
static const char TMP_PREFIX[] = ".tmp-";

struct CgCache {
  char *dir;
  CgCacheWarnFn warn;
  void *warn_user;
  atomic_long hits, misses, corrupt, stores;
};

__attribute__((format(printf, 2, 3))) static void warnf(CgCache *c, const char *fmt, ...) {
  if (!c->warn) return;
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  c->warn(c->warn_user, msg);
}

static char *xprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xprintf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  DITC_ASSERT(n >= 0);
  char *s = xmalloc((size_t)n + 1);
  va_start(ap, fmt);
  vsnprintf(s, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return s;
}

/* ---- directories ------------------------------------------------------------ */

int cg_cache_default_dir(char *buf, size_t n, IrErr *err) {
  const char *d = getenv("DITC_CACHE_DIR");
  const char *x = getenv("XDG_CACHE_HOME");
  const char *h = getenv("HOME");
  int len;
  if (d && *d)
    len = snprintf(buf, n, "%s", d);
  else if (x && x[0] == '/') /* the XDG spec says relative values are to be ignored */
    len = snprintf(buf, n, "%s/ditc", x);
  else if (h && *h)
    len = snprintf(buf, n, "%s/.cache/ditc", h);
  else
    return ir_errf(err, "no directory for the kernel cache: set DITC_CACHE_DIR (or HOME)");
  if (len < 0 || (size_t)len >= n) return ir_errf(err, "kernel cache directory name too long");
  return 0;
}

/* mkdir -p: create what is missing with `mode`; existing parts must be directories. */
static int mkdir_p(const char *path, mode_t mode, IrErr *err) {
  char *p = xstrdup(path);
  int rc = 0;
  for (char *s = p + 1;; s++) {
    if (*s != '/' && *s) continue;
    char saved = *s;
    *s = 0;
    if (mkdir(p, mode) != 0) {
      struct stat st;
      if (errno != EEXIST || stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) {
        rc = ir_errf(err, "cannot create directory %s: %s", p,
                     errno == EEXIST ? "a file is in the way" : strerror(errno));
        break;
      }
    }
    *s = saved;
    if (!saved) break;
  }
  free(p);
  return rc;
}

CgCache *cg_cache_open(const char *dir, IrErr *err) {
  char def[4096];
  if (!dir) {
    if (cg_cache_default_dir(def, sizeof def, err)) return NULL;
    dir = def;
  }
  if (!*dir) {
    ir_errf(err, "empty kernel cache directory name");
    return NULL;
  }
  if (mkdir_p(dir, 0700, err)) return NULL;
  CgCache *c = xcalloc(1, sizeof *c);
  c->dir = xstrdup(dir);
  size_t n = strlen(c->dir);
  while (n > 1 && c->dir[n - 1] == '/') c->dir[--n] = 0;
  return c;
}

void cg_cache_close(CgCache *c) {
  if (!c) return;
  free(c->dir);
  free(c);
}

const char *cg_cache_dir(const CgCache *c) { return c->dir; }

void cg_cache_set_warn(CgCache *c, CgCacheWarnFn fn, void *user) {
  c->warn = fn;
  c->warn_user = user;
}

CgCacheStats cg_cache_stats(const CgCache *c) {
  return (CgCacheStats){atomic_load(&c->hits), atomic_load(&c->misses), atomic_load(&c->corrupt),
                        atomic_load(&c->stores)};
}

/* The arch becomes a directory name: nothing that could climb out of the cache. */
static int check_arch(const char *arch, IrErr *err) {
  size_t n = arch ? strlen(arch) : 0;
  if (n == 0 || n > MAX_ARCH || strspn(arch, "abcdefghijklmnopqrstuvwxyz"
                                             "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != n)
    return ir_errf(err, "kernel cache: bad architecture name \"%s\" (letters, digits, '_')",
                   arch ? arch : "(null)");
  return 0;
}

/* ---- hashing ---------------------------------------------------------------- */

static int sha256(const void *data, size_t n, unsigned char out[32]) {
  unsigned int len = 0;
  return EVP_Digest(data, n, out, &len, EVP_sha256(), NULL) == 1 && len == 32 ? 0 : -1;
}


/* Length-prefixed, so no two different field lists hash the same bytes. */
static int hash_field(EVP_MD_CTX *md, const char *s) {
  unsigned char len[8];
  size_t n = s ? strlen(s) : 0;
  put_u64(len, n);
  return EVP_DigestUpdate(md, len, 8) == 1 && (n == 0 || EVP_DigestUpdate(md, s, n) == 1) ? 0 : -1;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int cg_cache_key(const CgCacheRequest *r, CgCacheKey *key, IrErr *err) {
  if (!r->source) return ir_errf(err, "kernel cache: no source to key");
  if (check_arch(r->arch, err)) return -1;
  if (r->n_options < 0 || (r->n_options > 0 && !r->options))
    return ir_errf(err, "kernel cache: bad option list");
  const char **opts = xmalloc(sizeof *opts * (size_t)(r->n_options + 1));
  for (int i = 0; i < r->n_options; i++) opts[i] = r->options[i] ? r->options[i] : "";
  qsort(opts, (size_t)r->n_options, sizeof *opts, cmp_str);

  EVP_MD_CTX *md = EVP_MD_CTX_new();
  unsigned int len = 0;
  int ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1;
  ok = ok && hash_field(md, "ditc kernel cache key 1") == 0;
  ok = ok && hash_field(md, r->codegen_version) == 0;
  ok = ok && hash_field(md, r->compiler_version) == 0;
  ok = ok && hash_field(md, r->arch) == 0;
  ok = ok && hash_field(md, r->name) == 0;
  ok = ok && hash_field(md, r->source) == 0;
  unsigned char cnt[8];
  put_u64(cnt, (uint64_t)r->n_options);
  ok = ok && EVP_DigestUpdate(md, cnt, 8) == 1;
  for (int i = 0; ok && i < r->n_options; i++) ok = hash_field(md, opts[i]) == 0;
  ok = ok && EVP_DigestFinal_ex(md, key->b, &len) == 1 && len == 32;
  EVP_MD_CTX_free(md);
  free(opts);
  return ok ? 0 : ir_errf(err, "kernel cache: SHA-256 (OpenSSL) failed");
}

void cg_cache_key_hex(const CgCacheKey *k, char hex[65]) {
  static const char digits[] = "0123456789abcdef";
  for (int i = 0; i < 32; i++) {
    hex[2 * i] = digits[k->b[i] >> 4];
    hex[2 * i + 1] = digits[k->b[i] & 15];
  }
  hex[64] = 0;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

int cg_cache_key_parse(const char *s, CgCacheKey *k) {
  for (int i = 0; i < 64; i++)
    if (hexval(s[i]) < 0) return -1;
  if (s[64]) return -1;
  for (int i = 0; i < 32; i++) k->b[i] = (unsigned char)(hexval(s[2 * i]) << 4 | hexval(s[2 * i + 1]));
  return 0;
}

/* ---- entries ---------------------------------------------------------------- */

static char *entry_path(const CgCache *c, const char *arch, const char *hex) {
  return xprintf("%s/%s/%.2s/%s.cubin", c->dir, arch, hex, hex);
}

enum { ENTRY_OK, ENTRY_MISSING, ENTRY_IOERR, ENTRY_CORRUPT };

/* Read and check the entry at path against key.  ENTRY_OK: *payload (malloc'd)
 * and *size set.  Otherwise `why` says what is wrong; *st is the file's
 * identity when it was opened (so a corrupt one can be removed without
 * racing a fresh rename into its place).  The size is checked against the
 * cap and the header before the payload is read: a huge or sparse file costs
 * a stat and 88 bytes. */
static int read_entry(const char *path, const CgCacheKey *key, unsigned char **payload,
                      size_t *size, struct stat *st, char *why, size_t whyn) {
  IrErr e;
  int fd = fio_open_read(path, st, &e);
  if (fd == -2) { /* a FIFO, a directory...: not ours, never read */
    snprintf(why, whyn, "is %s, not a regular file", fio_type_name(st->st_mode));
    return ENTRY_CORRUPT;
  }
  if (fd < 0) {
    int missing = errno == ENOENT;
    snprintf(why, whyn, "%s", fio_err_reason(&e, path));
    return missing ? ENTRY_MISSING : ENTRY_IOERR;
  }
  int rc = ENTRY_CORRUPT;
  unsigned char hdr[HDR_SIZE], *buf = NULL;
  uint64_t n = (uint64_t)st->st_size;
  uint64_t len = 0;
  if (n < HDR_SIZE) {
    snprintf(why, whyn, "truncated: %llu bytes, shorter than the header", (unsigned long long)n);
    goto out;
  }
  if (n - HDR_SIZE > CG_CACHE_MAX_PAYLOAD) {
    snprintf(why, whyn, "%llu bytes, more than an entry may hold (%d MiB)", (unsigned long long)n,
             CG_CACHE_MAX_PAYLOAD >> 20);
    goto out;
  }
  int got = fio_read_exact(fd, hdr, HDR_SIZE, path, &e);
  if (got) {
    snprintf(why, whyn, "%s", fio_err_reason(&e, path));
    rc = got == -2 ? ENTRY_CORRUPT : ENTRY_IOERR;
    goto out;
  }
  len = get_u64(hdr + 16);
  if (memcmp(hdr, MAGIC, sizeof MAGIC)) {
    snprintf(why, whyn, "bad magic");
    goto out;
  } else if (get_u32(hdr + 8) != FORMAT_VERSION) {
    snprintf(why, whyn, "unknown format version %u", get_u32(hdr + 8));
    goto out;
  } else if (memcmp(hdr + 56, key->b, 32)) {
    snprintf(why, whyn, "key in the header does not match");
    goto out;
  } else if (len != n - HDR_SIZE) {
    snprintf(why, whyn, "payload should be %llu bytes, file holds %llu", (unsigned long long)len,
             (unsigned long long)(n - HDR_SIZE));
    goto out;
  }
  buf = xmalloc((size_t)len + 1);
  if ((got = fio_read_exact(fd, buf, (size_t)len, path, &e))) {
    snprintf(why, whyn, "%s", fio_err_reason(&e, path));
    rc = got == -2 ? ENTRY_CORRUPT : ENTRY_IOERR;
    goto out;
  }
  unsigned char hash[32];
  if (sha256(buf, (size_t)len, hash) || memcmp(hash, hdr + 24, 32)) {
    snprintf(why, whyn, "payload hash does not match");
  } else {
    *payload = buf;
    *size = (size_t)len;
    buf = NULL;
    rc = ENTRY_OK;
  }
out:
  free(buf);
  close(fd);
  return rc;
}

/* Remove the bad entry at path (a file, or an empty directory), but only if
 * it is still the one found bad: a fresh entry renamed into its place since
 * stays.  0 when it is gone (or was replaced), -1 with the reason in why
 * when it is still in the way (a directory with files in it, no
 * permission): nothing can be stored there then. */
static int remove_bad(const char *path, const struct stat *bad, char *why, size_t whyn) {
  struct stat now;
  if (stat(path, &now) != 0 || now.st_dev != bad->st_dev || now.st_ino != bad->st_ino) return 0;
  if ((S_ISDIR(now.st_mode) ? rmdir(path) : unlink(path)) != 0 && errno != ENOENT) {
    snprintf(why, whyn, "%s", strerror(errno));
    return -1;
  }
  return 0;
}

/* cg_cache_load; *blocked set when a bad entry could not be removed (so a
 * store there would fail too, and is not tried). */
static int load(CgCache *c, const char *arch, const CgCacheKey *key, unsigned char **data, size_t *size,
                int *blocked, IrErr *err) {
  *data = NULL;
  *size = 0;
  *blocked = 0;
  if (check_arch(arch, err)) return -1;
  char hex[65], why[256], rm_why[128];
  cg_cache_key_hex(key, hex);
  char *path = entry_path(c, arch, hex);
  struct stat st;
  int rc = read_entry(path, key, data, size, &st, why, sizeof why);
  int ret = 0;
  switch (rc) {
  case ENTRY_OK:
    atomic_fetch_add(&c->hits, 1);
    ret = 1;
    break;
  case ENTRY_MISSING:
    atomic_fetch_add(&c->misses, 1);
    break;
  case ENTRY_CORRUPT:
    atomic_fetch_add(&c->corrupt, 1);
    atomic_fetch_add(&c->misses, 1);
    /* say what was done, not what was meant */
    if (remove_bad(path, &st, rm_why, sizeof rm_why) == 0) {
      warnf(c, "kernel cache: corrupt entry %s (%s); removed, will rebuild", path, why);
    } else {
      *blocked = 1;
      warnf(c, "kernel cache: corrupt entry %s (%s); it cannot be removed (%s), so the kernel is compiled and "
               "not cached until it is",
            path, why, rm_why);
    }
    break;
  default:
    ret = ir_errf(err, "kernel cache: cannot read %s: %s", path, why);
    break;
  }
  free(path);
  return ret;
}

int cg_cache_load(CgCache *c, const char *arch, const CgCacheKey *key, unsigned char **data,
                  size_t *size, IrErr *err) {
  int blocked;
  return load(c, arch, key, data, size, &blocked, err);
}

int cg_cache_store(CgCache *c, const char *arch, const CgCacheKey *key, const void *data,
                   size_t size, IrErr *err) {
  if (check_arch(arch, err)) return -1;
  if (size > CG_CACHE_MAX_PAYLOAD)
    return ir_errf(err, "kernel cache: a %zu-byte kernel is more than an entry may hold (%d MiB)", size,
                   CG_CACHE_MAX_PAYLOAD >> 20);
  char hex[65];
  cg_cache_key_hex(key, hex);
  unsigned char hdr[HDR_SIZE] = {0};
  memcpy(hdr, MAGIC, sizeof MAGIC);
  put_u32(hdr + 8, FORMAT_VERSION);
  put_u64(hdr + 16, size);
  memcpy(hdr + 56, key->b, 32);
  if (sha256(data, size, hdr + 24)) return ir_errf(err, "kernel cache: SHA-256 (OpenSSL) failed");

  char *dir = xprintf("%s/%s/%.2s", c->dir, arch, hex);
  char *prefix = xprintf("%s%.16s-", TMP_PREFIX, hex);
  char *path = entry_path(c, arch, hex);
  int rc = -1;
  IrErr e;
  /* Complete and durable before it gets its name: readers never see less. */
  FioOutOpts opts = {.private_file = 1, .tmp_prefix = prefix};
  FioOut *out = NULL;
  if (mkdir_p(dir, 0700, err)) goto done;
  if (!(out = fio_out_open(path, &opts, &e)) || fio_out_write(out, hdr, sizeof hdr, &e) ||
      fio_out_write(out, data, size, &e)) {
    fio_out_abort(out);
    ir_errf(err, "kernel cache: %s", e.msg);
    goto done;
  }
  if (fio_out_commit(out, &e)) {
    ir_errf(err, "kernel cache: %s", e.msg);
    goto done;
  }
  atomic_fetch_add(&c->stores, 1);
  rc = 0;
done:
  free(dir);
  free(prefix);
  free(path);
  return rc;
}

/* Compile r, note its source for the simulated driver, and store it unless
 * `store` is 0. */
static int compile_store(CgCache *c, const CgCacheRequest *r, const CgCacheKey *key, int store, CgCompileFn compile,
                         void *user, unsigned char **data, size_t *size, IrErr *err) {
  if (compile(user, r, data, size, err)) {
    free(*data);
    *data = NULL;
    *size = 0;
    return -1;
  }
  CgCubinSource note = {r->source, r->name, r->arch, r->options, r->n_options};
  cg_cubin_source_note(*data, *size, &note);
  IrErr lerr;
  if (store && cg_cache_store(c, r->arch, key, *data, *size, &lerr))
    warnf(c, "%s (the kernel is used uncached)", lerr.msg);
  return 0;
}

int cg_cache_get_or_compile(CgCache *c, const CgCacheRequest *r, CgCompileFn compile, void *user,
                            unsigned char **data, size_t *size, int *hit, IrErr *err) {
  *data = NULL;
  *size = 0;
  *hit = 0;
  CgCacheKey key;
  if (cg_cache_key(r, &key, err)) return -1;
  IrErr lerr;
  int blocked;
  int rc = load(c, r->arch, &key, data, size, &blocked, &lerr);
  if (rc == 1) {
    /* for the simulated driver: the key covers source and options, so this is their CUBIN */
    CgCubinSource note = {r->source, r->name, r->arch, r->options, r->n_options};
    *hit = 1;
    cg_cubin_source_note(*data, *size, &note);
    return 0;
  }
  /* An unreadable cache only costs a compile. */
  if (rc < 0) warnf(c, "%s", lerr.msg);
  return compile_store(c, r, &key, !blocked, compile, user, data, size, err);
}

int cg_cache_compile(CgCache *c, const CgCacheRequest *r, CgCompileFn compile, void *user, unsigned char **data,
                     size_t *size, IrErr *err) {
  *data = NULL;
  *size = 0;
  CgCacheKey key;
  if (cg_cache_key(r, &key, err)) return -1;
  return compile_store(c, r, &key, 1, compile, user, data, size, err);
}

/* ---- walks: ls, verify, clear ----------------------------------------------- */

static int is_entry_name(const char *name, const char *sub) {
  CgCacheKey k;
  char hex[65];
  if (strlen(name) != 64 + 6 || strcmp(name + 64, ".cubin") || strncmp(name, sub, 2)) return 0;
  memcpy(hex, name, 64);
  hex[64] = 0;
  return cg_cache_key_parse(hex, &k) == 0;
}

/* name: the file's name in <arch>/<sub>/; path: its full path. */
typedef int (*VisitFn)(CgCache *c, void *ctx, const char *arch, const char *sub, const char *name,
                       const char *path);

/* Calls visit for every file in <dir>/<arch>/<xx>/ (one arch, or all).  With
 * prune, removes the directories left empty afterwards. */
static int walk(CgCache *c, const char *only_arch, VisitFn visit, void *ctx, int prune,
                IrErr *err) {
  if (only_arch && check_arch(only_arch, err)) return -1;
  DIR *top = opendir(c->dir);
  if (!top) return ir_errf(err, "kernel cache: cannot read %s: %s", c->dir, strerror(errno));
  int rc = 0;
  struct dirent *a;
  while (rc == 0 && (a = readdir(top))) {
    if (a->d_name[0] == '.' || check_arch(a->d_name, NULL)) continue;
    if (only_arch && strcmp(a->d_name, only_arch)) continue;
    char *adir = xprintf("%s/%s", c->dir, a->d_name);
    DIR *ad = opendir(adir);
    if (!ad) {
      if (errno != ENOTDIR)
        rc = ir_errf(err, "kernel cache: cannot read %s: %s", adir, strerror(errno));
      free(adir);
      continue;
    }
    struct dirent *s;
    while (rc == 0 && (s = readdir(ad))) {
      if (strlen(s->d_name) != 2 || hexval(s->d_name[0]) < 0 || hexval(s->d_name[1]) < 0) continue;
      char *sdir = xprintf("%s/%s", adir, s->d_name);
      DIR *sd = opendir(sdir);
      if (!sd) {
        if (errno != ENOTDIR)
          rc = ir_errf(err, "kernel cache: cannot read %s: %s", sdir, strerror(errno));
        free(sdir);
        continue;
      }
      struct dirent *f;
      while (rc == 0 && (f = readdir(sd))) {
        if (!strcmp(f->d_name, ".") || !strcmp(f->d_name, "..")) continue;
        char *path = xprintf("%s/%s", sdir, f->d_name);
        rc = visit(c, ctx, a->d_name, s->d_name, f->d_name, path);
        free(path);
      }
      closedir(sd);
      if (prune) (void)rmdir(sdir); /* fails, harmlessly, when not empty */
      free(sdir);
    }
    closedir(ad);
    if (prune) (void)rmdir(adir);
    free(adir);
  }
  closedir(top);
  return rc;
}

typedef struct {
  CgCacheEntry *e;
  int n, cap;
} ListCtx;

static int visit_list(CgCache *c, void *vctx, const char *arch, const char *sub,
                      const char *name, const char *path) {
  (void)c;
  ListCtx *l = vctx;
  /* Only files a lookup would find: named by their key, under its prefix. */
  if (!is_entry_name(name, sub)) return 0;
  struct stat st;
  if (stat(path, &st) != 0) return 0; /* removed meanwhile */
  if (l->n == l->cap) l->e = xrealloc(l->e, sizeof *l->e * (size_t)(l->cap = l->cap ? 2 * l->cap : 64));
  CgCacheEntry *e = &l->e[l->n++];
  memset(e, 0, sizeof *e);
  snprintf(e->arch, sizeof e->arch, "%s", arch);
  memcpy(e->key, name, 64);
  e->key[64] = 0;
  e->size = (int64_t)st.st_size;
  e->mtime = (int64_t)st.st_mtime;
  return 0;
}

static int cmp_entry(const void *a, const void *b) {
  const CgCacheEntry *x = a, *y = b;
  int r = strcmp(x->arch, y->arch);
  return r ? r : strcmp(x->key, y->key);
}

int cg_cache_list(CgCache *c, const char *arch, CgCacheEntry **entries, int *n, IrErr *err) {
  ListCtx l = {0};
  *entries = NULL;
  *n = 0;
  if (walk(c, arch, visit_list, &l, 0, err)) {
    free(l.e);
    return -1;
  }
  if (l.n) qsort(l.e, (size_t)l.n, sizeof *l.e, cmp_entry);
  *entries = l.e;
  *n = l.n;
  return 0;
}

typedef struct {
  int remove_bad, ok, bad;
} VerifyCtx;

static int visit_verify(CgCache *c, void *vctx, const char *arch, const char *sub,
                        const char *name, const char *path) {
  (void)arch;
  VerifyCtx *v = vctx;
  if (!is_entry_name(name, sub)) return 0;
  CgCacheKey key;
  char hex[65];
  memcpy(hex, name, 64);
  hex[64] = 0;
  cg_cache_key_parse(hex, &key);
  unsigned char *data = NULL;
  size_t size;
  struct stat st;
  char why[256];
  int rc = read_entry(path, &key, &data, &size, &st, why, sizeof why);
  free(data);
  if (rc == ENTRY_OK) {
    v->ok++;
  } else if (rc != ENTRY_MISSING) {
    v->bad++;
    char rm_why[128] = "";
    int kept = 0;
    if (v->remove_bad) {
      if (rc == ENTRY_CORRUPT)
        kept = remove_bad(path, &st, rm_why, sizeof rm_why);
      else if (unlink(path) != 0 && errno != ENOENT)
        kept = -1, snprintf(rm_why, sizeof rm_why, "%s", strerror(errno));
    }
    warnf(c, "kernel cache: %s %s (%s)%s%s", rc == ENTRY_CORRUPT ? "corrupt entry" : "unreadable", path, why,
          !v->remove_bad ? "" : kept ? "; it cannot be removed: " : "; removed", rm_why);
  }
  return 0;
}

int cg_cache_verify(CgCache *c, const char *arch, int remove_bad, int *n_ok, int *n_bad,
                    IrErr *err) {
  VerifyCtx v = {.remove_bad = remove_bad};
  int rc = walk(c, arch, visit_verify, &v, 0, err);
  if (n_ok) *n_ok = v.ok;
  if (n_bad) *n_bad = v.bad;
  return rc;
}

static int visit_clear(CgCache *c, void *vctx, const char *arch, const char *sub,
                       const char *name, const char *path) {
  (void)arch;
  int entry = is_entry_name(name, sub);
  /* A temporary file may belong to a builder still running: its rename then
   * fails and it warns; nothing wrong is ever read. */
  if (!entry && strncmp(name, TMP_PREFIX, strlen(TMP_PREFIX))) return 0;
  if (unlink(path) != 0) {
    if (errno != ENOENT) warnf(c, "kernel cache: cannot remove %s: %s", path, strerror(errno));
    return 0;
  }
  if (entry) ++*(int *)vctx;
  return 0;
}

int cg_cache_clear(CgCache *c, const char *arch, int *n_removed, IrErr *err) {
  int removed = 0;
  int rc = walk(c, arch, visit_clear, &removed, 1, err);
  if (n_removed) *n_removed = removed;
  return rc;
}
