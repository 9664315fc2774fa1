/*
 * pack_format.h - what the .ditpack writer (pack_write.c) and reader
 * (pack_read.c) share of the file layout described in pack.h: sizes, the
 * magic, section names, hashing.  Not for other modules.
 */
#ifndef DITC_PACK_FORMAT_H
#define DITC_PACK_FORMAT_H

#include <stdint.h>

#include <openssl/evp.h>

#include "codegen/pack.h"

enum { HDR = 64, TOC_ENTRY = 64, ALIGN = 64, MAX_SECTIONS = 4096, MAX_PLANS = 256 };
static const char MAGIC[8] = {'D', 'I', 'T', 'C', 'P', 'A', 'C', 'K'};

/* Upper bound on any size or offset in a plan: 2^48 bytes. */
#define MAX_BYTES ((int64_t)1 << 48)

static inline const char *sec_name(uint32_t kind) {
  switch (kind) {
  case CG_PACK_SEC_MANIFEST: return "manifest";
  case CG_PACK_SEC_PLAN: return "plan";
  case CG_PACK_SEC_SOURCE: return "source";
  case CG_PACK_SEC_CONSTS: return "consts";
  case CG_PACK_SEC_WEIGHTS: return "weights";
  case CG_PACK_SEC_CUBIN: return "cubin";
  case CG_PACK_SEC_PTXAS: return "ptxas";
  case CG_PACK_SEC_MODEL: return "model";
  case CG_PACK_SEC_MODEL_TEXT: return "model text";
  default: return "unknown";
  }
}

/* Plan p as a pack stores it (pack_write.c): its PLAN JSON (returned,
 * malloc'd, NUL-terminated) naming WEIGHTS blob `blob` (-1: none), and its
 * CONSTS bytes (*consts, malloc'd, *n_consts bytes), CONST values and the
 * PARAM defaults of graph g (NULL: none) in weight order.  data_at, when not
 * NULL, gets each weight's byte offset in the constants (-1: none).  The
 * writer and cg_pack_plan_matches (pack_verify.c) both use it, so "equal to
 * the stored plan" means equal to what the writer would write. */
char *pack_encode_plan(const CgPlan *p, IrGraph *g, int blob, unsigned char **consts, size_t *n_consts,
                       int64_t *data_at);

static inline void sha256(const void *data, size_t n, unsigned char out[32]) {
  unsigned len = 0;
  if (EVP_Digest(data, n, out, &len, EVP_sha256(), NULL) != 1 || len != 32)
    ditc_fatal(__FILE__, __LINE__, "SHA-256 failed");
}

static inline uint64_t align_up(uint64_t v) { return (v + ALIGN - 1) / ALIGN * ALIGN; }

static inline int64_t numel_of(int rank, const int64_t *shape) {
  int64_t n = 1;
  for (int i = 0; i < rank; i++) n *= shape[i];
  return n;
}

#endif
