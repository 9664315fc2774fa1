/*
 * cache.h - the per-user on-disk cache of compiled kernels.
 *
 * A kernel is compiled once per (source, options, compiler, architecture,
 * codegen version) and kept as
 *     <dir>/<arch>/<first 2 hex digits>/<64 hex digits>.cubin
 * where the hex is the SHA-256 key over those inputs.  <dir> is
 * $DITC_CACHE_DIR, else $XDG_CACHE_HOME/ditc, else $HOME/.cache/ditc.
 *
 * An entry is a fixed header followed by the payload (the CUBIN):
 *     "DITCKC01"                      8 bytes, magic
 *     format version (1)              u32 little-endian
 *     reserved (0)                    u32
 *     payload length                  u64 little-endian
 *     SHA-256 of the payload          32 bytes
 *     key                             32 bytes
 * A payload is at most CG_CACHE_MAX_PAYLOAD bytes (CUBINs are a few MB); an
 * entry's size is checked against that and its header before the payload is
 * read.  Entries are written to a temporary file in the same directory,
 * fsync'd and rename()d into place, so concurrent builders never see half-written entries
 * (the last rename wins, with identical content).  Loading checks magic,
 * version, key, length and payload hash; an entry that fails is reported
 * through the warning callback, counted, removed and treated as a miss: it
 * is never trusted.  The warning says what was done: "removed, will
 * rebuild", or, for what cannot be removed (a directory with files in it),
 * that it stays and the kernel is compiled without being cached.  Nothing
 * here prints.
 *
 * A handle's counters are atomic; one handle may be shared by threads, and
 * any number of processes may share a directory.
 */
#ifndef DITC_CODEGEN_CACHE_H
#define DITC_CODEGEN_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "ir/ir.h"

typedef struct CgCache CgCache;

#define CG_CACHE_MAX_PAYLOAD (256 << 20)

/* Called with one line, no newline: a corrupt entry, an entry that could not
 * be stored (the kernel is still returned), a file that could not be removed. */
typedef void (*CgCacheWarnFn)(void *user, const char *msg);

/* The directory the cache uses when none is named (see the top); -1 when
 * neither DITC_CACHE_DIR, XDG_CACHE_HOME nor HOME says. */
int cg_cache_default_dir(char *buf, size_t n, IrErr *err);

/* Open (creating it, and missing parents, mode 0700) the cache in dir, or in
 * the default directory when dir is NULL. */
CgCache *cg_cache_open(const char *dir, IrErr *err);
void cg_cache_close(CgCache *c); /* NULL is fine */
const char *cg_cache_dir(const CgCache *c);
void cg_cache_set_warn(CgCache *c, CgCacheWarnFn fn, void *user);

/* ---- keys ------------------------------------------------------------------- */

typedef struct {
  unsigned char b[32];
} CgCacheKey;

/* What a compiled kernel depends on. */
typedef struct {
  const char *source;             /* the generated CUDA C */
  const char *name;               /* program name: NVRTC writes it into the line info */
  const char *arch;               /* "sm_90a"; also a directory name, so [A-Za-z0-9_] */
  const char *const *options;     /* compile options; hashed sorted, so their order does not */
  int n_options;                  /*   matter (pass "-Dx=1" as one option, not two) */
  const char *compiler_version;   /* cg_nvrtc_version_string(): "nvrtc 13.0" */
  const char *codegen_version;    /* the caller's: bump when generated code's meaning changes */
} CgCacheRequest;

/* SHA-256 over every field, each length-prefixed, options sorted.  NULL
 * name/options/versions hash as empty; source and arch are required. */
int cg_cache_key(const CgCacheRequest *r, CgCacheKey *key, IrErr *err);
void cg_cache_key_hex(const CgCacheKey *k, char hex[65]);
/* 64 hex digits -> key; -1 when s is not that. */
int cg_cache_key_parse(const char *s, CgCacheKey *k);

/* ---- lookup and store -------------------------------------------------------- */

/* 1: hit, *data (malloc'd) and *size filled.  0: miss, including an entry
 * that was corrupt (warned, counted, removed).  -1: an I/O error other than
 * "no such entry" (err says which file). */
int cg_cache_load(CgCache *c, const char *arch, const CgCacheKey *key, unsigned char **data,
                  size_t *size, IrErr *err);
/* Atomically (re)place the entry; 0, or -1 with err. */
int cg_cache_store(CgCache *c, const char *arch, const CgCacheKey *key, const void *data,
                   size_t size, IrErr *err);

/* Compiles r->source for r->arch: 0 and a malloc'd *out, or -1 with err. */
typedef int (*CgCompileFn)(void *user, const CgCacheRequest *r, unsigned char **out,
                           size_t *out_size, IrErr *err);

/* Lookup; on a miss compile and store.  Returns 0 with *data and *size (the
 * caller frees *data) and *hit (1: from the cache, 0: compiled now), or -1
 * when compiling (or reading the cache) failed.  A failed store is only a
 * warning: the compiled kernel is still returned. */
int cg_cache_get_or_compile(CgCache *c, const CgCacheRequest *r, CgCompileFn compile, void *user,
                            unsigned char **data, size_t *size, int *hit, IrErr *err);

/* Compile and store, whatever the cache holds: for a caller that needs what
 * only a compile gives besides the kernel (ptxas' report, when its own
 * entry is gone).  0 with *data (the caller frees it), or -1. */
int cg_cache_compile(CgCache *c, const CgCacheRequest *r, CgCompileFn compile, void *user, unsigned char **data,
                     size_t *size, IrErr *err);

typedef struct {
  long hits, misses, corrupt, stores; /* corrupt entries count as misses too */
} CgCacheStats;
CgCacheStats cg_cache_stats(const CgCache *c);

/* ---- ditc cache ls | verify | clear ----------------------------------------- */

typedef struct {
  char arch[32];
  char key[65];   /* hex */
  int64_t size;   /* file size in bytes, header included */
  int64_t mtime;  /* seconds since the epoch */
} CgCacheEntry;

/* Every entry (of one arch, or all when arch is NULL), sorted by arch then
 * key.  Temporary files of builders in progress are not entries.  *entries is
 * malloc'd (free() it); returns 0 or -1. */
int cg_cache_list(CgCache *c, const char *arch, CgCacheEntry **entries, int *n, IrErr *err);

/* Check every entry (of arch, or all) fully; each bad one is reported through
 * the warning callback and, with remove_bad, removed.  Counts go to *n_ok and
 * *n_bad (either may be NULL).  Returns 0, or -1 when the walk itself fails. */
int cg_cache_verify(CgCache *c, const char *arch, int remove_bad, int *n_ok, int *n_bad,
                    IrErr *err);

/* Remove every entry (of arch, or all), leftover temporary files, and the
 * directories emptied; *n_removed counts entries (may be NULL). */
int cg_cache_clear(CgCache *c, const char *arch, int *n_removed, IrErr *err);

#endif
