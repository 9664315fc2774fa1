/*
 * cubin_source.c - the process-wide list of CUBINs and the sources they came
 * from (see cubin_source.h): a linked list under a mutex, keyed by the
 * SHA-256 of the image.  Processes compile a handful of plans, so a list is
 * enough.
 */
#include "codegen/cubin_source.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"

typedef struct Note {
  struct Note *next;
  unsigned char hash[32];
  size_t size;
  CgCubinSource src; /* owned copies */
} Note;

static pthread_mutex_t notes_lock = PTHREAD_MUTEX_INITIALIZER;
static Note *notes;

int cg_cuda_sim_requested(void) {
  const char *e = getenv("DITC_CUDA_SIM");
  return e && *e && strcmp(e, "0") != 0;
}

static int image_hash(const void *p, size_t n, unsigned char out[32]) {
  unsigned len = 0;
  return EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) == 1 && len == 32 ? 0 : -1;
}

static Note *find_locked(const unsigned char hash[32], size_t size) {
  for (Note *n = notes; n; n = n->next)
    if (n->size == size && !memcmp(n->hash, hash, 32)) return n;
  return NULL;
}

void cg_cubin_source_note(const void *cubin, size_t size, const CgCubinSource *src) {
  unsigned char h[32];
  if (!cg_cuda_sim_requested() || !cubin || !size || !src || !src->source) return;
  if (image_hash(cubin, size, h)) return;
  pthread_mutex_lock(&notes_lock);
  if (!find_locked(h, size)) {
    Note *n = xcalloc(1, sizeof *n);
    memcpy(n->hash, h, 32);
    n->size = size;
    n->src.source = xstrdup(src->source);
    n->src.name = xstrdup(src->name ? src->name : "");
    n->src.arch = xstrdup(src->arch ? src->arch : "");
    n->src.n_options = src->n_options > 0 ? src->n_options : 0;
    char **opts = xcalloc((size_t)n->src.n_options + 1, sizeof *opts);
    for (int i = 0; i < n->src.n_options; i++) opts[i] = xstrdup(src->options[i] ? src->options[i] : "");
    n->src.options = (const char *const *)opts;
    n->next = notes;
    notes = n;
  }
  pthread_mutex_unlock(&notes_lock);
}

int cg_cubin_source_find(const void *cubin, size_t size, CgCubinSource *out) {
  unsigned char h[32];
  if (!cubin || !size || image_hash(cubin, size, h)) return 0;
  pthread_mutex_lock(&notes_lock);
  Note *n = find_locked(h, size);
  if (n) *out = n->src;
  pthread_mutex_unlock(&notes_lock);
  return n != NULL;
}
