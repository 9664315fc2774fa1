/*
 * pack.h - the .ditpack artifact: compiled plans of one model in one file.
 *
 * A pack holds a model description (name, configuration, every resolved
 * model parameter as key=value), one or more execution plans (plan.h; e.g.
 * forward and forward_with_cfg of the same model), for each plan its
 * generated CUDA source (so `--backend emu` runs a pack without CUDA) and,
 * per GPU architecture, the CUBIN plus ptxas' report, and optionally the
 * weights blob each plan reads.  Plans whose blobs are byte-identical share
 * one WEIGHTS section (forward and forward_with_cfg normally do).
 *
 * Plans are per architecture: an entry has one plan per distinct launch-
 * tuning row among the architectures it was compiled for (architectures
 * whose rows give the same geometry share a plan), and a plan's CUBINs are
 * the architectures it serves.  So (entry, architecture) -> plan + CUBIN:
 * two plans of one entry never have a CUBIN for the same SM, and where an
 * entry has several plans each has at least one CUBIN.
 *
 * File layout (version 4), every integer little-endian:
 *
 *   header, 64 bytes
 *     0   "DITCPACK"          magic
 *     8   u32 version          4 (1: before GEMMs had d_dtype, 2: before computed weights,
 *                              3: one plan per entry, built with the default tuning row)
 *     12  u32 n_sections       entries in the table of contents (<= 4096)
 *     16  u64 file_size        the whole file, bytes
 *     24  u64 toc_offset       64
 *     32  u8[32]               SHA-256 of the table of contents
 *   table of contents, n_sections entries of 64 bytes
 *     0   u32 kind             CG_PACK_SEC_*
 *     4   u32 ref              plan index (PLAN, SOURCE, CONSTS, CUBIN, PTXAS),
 *                              blob index (WEIGHTS), 0 (MANIFEST)
 *     8   u64 offset           multiple of 64
 *     16  u64 size             bytes
 *     24  char[8] arch         CUBIN/PTXAS: "sm_90a", NUL-padded; else zeros
 *     32  u8[32]               SHA-256 of the section's bytes
 *   sections, in table order, each at the next multiple of 64; the gaps are
 *   zero bytes and the file ends at the last section's end rounded up to 64.
 *
 * Sections:
 *   MANIFEST  JSON: {"format": "ditpack", "producer", "codegen_version",
 *             "compiler", "model", "config", "spec", "params": {k: "v"},
 *             "plans": N, "blobs": M}
 *   PLAN      JSON: one CgPlan (entry, tuning, precision, batch, sizes,
 *             kernels, steps, weights, inputs, outputs; see pack.c)
 *   SOURCE    the generated CUDA C (no NUL)
 *   CONSTS    f32 values: CONST weights and PARAM defaults (e.g. the fixed
 *             pos_embed), which the plan's "weights" refer to by offset
 *   WEIGHTS   a weights blob (plan->weights_bytes); optional
 *   CUBIN     an ELF CUBIN for `arch`
 *   PTXAS     ptxas' -v log for that CUBIN (text; may be empty)
 *
 * Every byte of a pack is checked on reading: magic, version, sizes, the
 * table's hash, every section's hash, alignment, that the sections tile the
 * file with zero padding, and every field of the JSON against what it
 * describes (offsets inside the arena and blob, kernel indices, GEMM extents).
 * A truncated or altered pack is an error naming the file and the problem,
 * never a crash.  A pack is mapped, not read (its weights may be gigabytes):
 * its size is bounded by its own header's file_size, which must equal the
 * file's.  Writing goes to a temporary file in the target directory, fsync'd
 * and renamed into place (ir/fileio.h).
 */
#ifndef DITC_CODEGEN_PACK_H
#define DITC_CODEGEN_PACK_H

#include <stddef.h>
#include <stdint.h>

#include "codegen/plan.h"
#include "ir/fileio.h"

#define CG_PACK_VERSION 4

enum {
  CG_PACK_SEC_MANIFEST = 1,
  CG_PACK_SEC_PLAN = 2,
  CG_PACK_SEC_SOURCE = 3,
  CG_PACK_SEC_CONSTS = 4,
  CG_PACK_SEC_WEIGHTS = 5,
  CG_PACK_SEC_CUBIN = 6,
  CG_PACK_SEC_PTXAS = 7,
};

/* ---- reading ---------------------------------------------------------------- */

typedef struct {
  char arch[9];                 /* "sm_90a" */
  const unsigned char *image;   /* the CUBIN, inside the pack's bytes */
  size_t size;
  const char *ptxas_log;        /* NUL-terminated copy ("" when none was stored) */
} CgPackCubin;

typedef struct {
  CgPlan *plan;                 /* owned by the pack; independent of its bytes */
  int blob;                     /* index into CgPack.blobs, or -1: no weights */
  const float **defaults;       /* [plan->n_weights]: a PARAM's default values, or NULL */
  CgPackCubin *cubins;
  int n_cubins;
} CgPackPlan;

typedef struct {
  const unsigned char *data;    /* inside the pack's bytes, 64-byte aligned when mapped */
  int64_t size;
} CgPackBlob;

typedef struct {
  const char *key, *value;
} CgPackParam;

typedef struct {
  const char *path;             /* file name, or the label of a memory pack */
  const char *producer, *codegen_version, *compiler;
  const char *model, *config, *spec;   /* config may be "" */
  CgPackParam *params;          /* the model's resolved parameters */
  int n_params;
  CgPackPlan *plans;
  int n_plans;
  CgPackBlob *blobs;
  int n_blobs;
  /* private */
  Arena arena;
  FioMap map;                   /* cg_pack_open's mapping; zeroed for a memory pack */
} CgPack;

/* Flags of cg_pack_open_memory. */
enum {
  CG_PACK_SKIP_HASHES = 1u << 0, /* fuzzing only: lets mutated inputs reach the parsers */
};

/* Map and validate a pack; NULL with "FILE: problem" in err. */
CgPack *cg_pack_open(const char *path, IrErr *err);
/* The same over bytes in memory (tests, fuzzing); buf must outlive the pack. */
CgPack *cg_pack_open_memory(const void *buf, size_t len, const char *label, unsigned flags,
                            IrErr *err);
void cg_pack_close(CgPack *p); /* NULL is fine */

/* A model parameter's value, or NULL; as an integer (booleans 0/1), or def
 * when absent or not an integer. */
const char *cg_pack_param(const CgPack *p, const char *key);
int64_t cg_pack_param_int(const CgPack *p, const char *key, int64_t def);
/* The first plan for `entry` (the one of the first architecture it was
 * compiled for), or NULL. */
const CgPackPlan *cg_pack_find_plan(const CgPack *p, const char *entry);
/* The plan for `entry` on architecture `arch` ("sm_86"; a suffix as in
 * "sm_90a" is ignored): the one with a CUBIN for that SM.  NULL with an error
 * naming the architectures the pack's plans for `entry` serve. */
const CgPackPlan *cg_pack_find_plan_arch(const CgPack *p, const char *entry, const char *arch, IrErr *err);
/* The CUBIN to load on a device of compute capability major.minor: the exact
 * sm_XY (plain, 'a' or 'f'), else the highest plain or 'f' sm_XZ with Z < Y of
 * the same major; else NULL and an error listing the pack's architectures. */
const CgPackCubin *cg_pack_pick_cubin(const CgPackPlan *pp, int major, int minor, IrErr *err);


/* ---- writing ---------------------------------------------------------------- */

typedef struct CgPackWriter CgPackWriter;

CgPackWriter *cg_pack_writer_new(void);
void cg_pack_writer_free(CgPackWriter *w); /* NULL is fine */
/* Manifest strings: "producer", "codegen_version", "compiler", "model",
 * "config", "spec" (copied). */
void cg_pack_writer_meta(CgPackWriter *w, const char *key, const char *value);
/* A model parameter (copied), in the order given. */
void cg_pack_writer_param(CgPackWriter *w, const char *key, const char *value);
/* Add a plan (serialized now: the plan may be freed afterwards).  g, when
 * given, is the graph the plan was built from: its PARAM defaults are kept.
 * blob (plan->weights_bytes bytes, or NULL for none) is borrowed until the
 * writer is saved or freed; a blob identical to an earlier one is stored
 * once.  Returns the plan's index. */
int cg_pack_writer_add_plan(CgPackWriter *w, const CgPlan *plan, IrGraph *g, const void *blob);
/* A CUBIN for plan `plan` (copied), with ptxas' log (may be NULL). */
void cg_pack_writer_add_cubin(CgPackWriter *w, int plan, const char *arch, const void *cubin,
                              size_t size, const char *ptxas_log);
/* Write atomically to path (an output of ir/fileio.h); 0 or -1 with err.
 * Or into an output the caller opened (one of a transaction's), leaving the
 * commit to it.  Or build it in memory. */
int cg_pack_writer_save(CgPackWriter *w, const char *path, IrErr *err);
int cg_pack_writer_write(CgPackWriter *w, FioOut *out, IrErr *err);
int cg_pack_writer_bytes(CgPackWriter *w, unsigned char **out, size_t *size, IrErr *err);

#endif
