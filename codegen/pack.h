/*
 * pack.h - the .ditpack artifact: compiled plans of one model in one file.
 *
 * A pack holds a model description (name, configuration, every resolved
 * model parameter as key=value), the model record (the model file's text,
 * the configuration, the --set settings and the pass pipeline: what the
 * plans were built from, as data), one or more execution plans (plan.h;
 * e.g. forward and forward_with_cfg of the same model), for each plan its
 * generated CUDA source and, per GPU architecture, the CUBIN plus ptxas'
 * report, and optionally the weights blob each plan reads.  Plans whose
 * blobs are byte-identical share one WEIGHTS section (forward and
 * forward_with_cfg normally do).
 *
 * A pack's text is never code to the host: the reader hands out plans
 * without their source (CgPlan.source is NULL, only the SOURCE section's
 * SHA-256 is kept), and whoever runs a plan regenerates it from the model
 * record (frontend/pack_plan.h) and holds the result to the pack with
 * cg_pack_plan_matches: the source must hash to the recorded hash, the plan
 * and its constants must be the ones stored.  A CUBIN is code for the GPU,
 * trusted as any binary is.
 *
 * Plans are per architecture: an entry has one plan per distinct launch-
 * tuning row among the architectures it was compiled for (architectures
 * whose rows give the same geometry share a plan), and a plan's CUBINs are
 * the architectures it serves.  So (entry, architecture) -> plan + CUBIN:
 * two plans of one entry never have a CUBIN for the same SM, and where an
 * entry has several plans each has at least one CUBIN.
 *
 * File layout (version 9: GEMM steps may have i8 operands and an i32 result, or e4m3 ones and an f32 result),
 * every integer little-endian:
 *
 *   header, 64 bytes
 *     0   "DITCPACK"          magic
 *     8   u32 version          7 (1: before GEMMs had d_dtype, 2: before computed weights,
 *                              3: one plan per entry, built with the default tuning row,
 *                              4: without the model record, 5: before launches had parameters,
 *                              6: before step caching's entries ENTRY.cache_full and
 *                              ENTRY.cache_step, plans built again with the step-cache pass)
 *     12  u32 n_sections       entries in the table of contents (<= 4096)
 *     16  u64 file_size        the whole file, bytes
 *     24  u64 toc_offset       64
 *     32  u8[32]               SHA-256 of the table of contents
 *   table of contents, n_sections entries of 64 bytes
 *     0   u32 kind             CG_PACK_SEC_*
 *     4   u32 ref              plan index (PLAN, SOURCE, CONSTS, CUBIN, PTXAS),
 *                              blob index (WEIGHTS), 0 (MANIFEST, MODEL, MODEL_TEXT)
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
 *   MODEL     JSON: {"file", "config", "sets": [[name, value], ...], "passes"}:
 *             the model record (CgPackModel), exactly one
 *   MODEL_TEXT the model file's text (no NUL), exactly one
 *
 * Every byte of a pack is checked on reading: magic, version, sizes, the
 * table's hash, every section's hash, alignment, that the sections tile the
 * file with zero padding, and every field of the JSON against what it
 * describes (offsets inside the arena and blob, kernel indices, GEMM extents;
 * every plan passes cg_plan_check, every CUBIN's architecture gets its plan's
 * tuning row).  Hashes only prove the file is whole: anyone can edit a pack
 * and hash it again, which is why a plan runs only as regenerated from the
 * model record and found equal (cg_pack_plan_matches).
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

#define CG_PACK_VERSION 9

enum {
  CG_PACK_SEC_MANIFEST = 1,
  CG_PACK_SEC_PLAN = 2,
  CG_PACK_SEC_SOURCE = 3,
  CG_PACK_SEC_CONSTS = 4,
  CG_PACK_SEC_WEIGHTS = 5,
  CG_PACK_SEC_CUBIN = 6,
  CG_PACK_SEC_PTXAS = 7,
  CG_PACK_SEC_MODEL = 8,
  CG_PACK_SEC_MODEL_TEXT = 9,
};

/* ---- reading ---------------------------------------------------------------- */

typedef struct {
  char arch[9];                 /* "sm_90a" */
  const unsigned char *image;   /* the CUBIN, inside the pack's bytes */
  size_t size;
  const char *ptxas_log;        /* NUL-terminated copy ("" when none was stored) */
} CgPackCubin;

typedef struct {
  CgPlan *plan;                 /* owned by the pack; independent of its bytes.  Its
                                 * source is NULL: a pack's text is not run (above) */
  int blob;                     /* index into CgPack.blobs, or -1: no weights */
  const float **defaults;       /* [plan->n_weights]: a PARAM's default values, or NULL */
  CgPackCubin *cubins;
  int n_cubins;
  unsigned char source_sha256[32]; /* of the SOURCE section: what the source must hash to */
  /* private: the PLAN and CONSTS sections as stored, for cg_pack_plan_matches */
  const unsigned char *plan_json, *consts;
  size_t plan_json_size, consts_size;
} CgPackPlan;

typedef struct {
  const unsigned char *data;    /* inside the pack's bytes, 64-byte aligned when mapped */
  int64_t size;
} CgPackBlob;

typedef struct {
  const char *key, *value;
} CgPackParam;

/* What a pack's plans were built from (the MODEL and MODEL_TEXT sections),
 * enough to build them again: the model file's text, read by ditc's own
 * parser (no code of the file runs), the configuration, the settings and
 * the pass pipeline.  Each plan adds its entry, precision, batch and tuning
 * row (CgPlan.entry, .precision, .batch, .tuning). */
typedef struct {
  const char *file;             /* the model file's name when it was compiled (for messages) */
  const char *text;             /* its text, NUL-terminated; text_len bytes, no NUL inside */
  size_t text_len;
  const char *config;           /* "" for the file's last model with its defaults */
  CgPackParam *sets;            /* the settings (--set), in order */
  int n_sets;
  const char *passes;           /* the pipeline, as pass_pipeline_parse reads it ("none": empty) */
} CgPackModel;

typedef struct {
  const char *path;             /* file name, or the label of a memory pack */
  const char *producer, *codegen_version, *compiler;
  const char *model, *config, *spec;   /* config may be "" */
  CgPackParam *params;          /* the model's resolved parameters */
  int n_params;
  CgPackModel record;           /* the model record */
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

/* Does `built` (a plan built now from pk's model record, g the graph it was
 * built from) equal pack plan pp, so that running it runs what the pack
 * describes?  The pack's codegen version must be this ditc's, built's source
 * must hash to pp's recorded SHA-256, and its plan JSON and constants,
 * written as the writer writes them, must equal the stored ones.  0, or -1
 * with "FILE: plan N (entry): what differs" (the first differing field, with
 * both values).  (pack_verify.c) */
int cg_pack_plan_matches(const CgPack *pk, const CgPackPlan *pp, const CgPlan *built, IrGraph *g, IrErr *err);


/* ---- writing ---------------------------------------------------------------- */

typedef struct CgPackWriter CgPackWriter;

CgPackWriter *cg_pack_writer_new(void);
void cg_pack_writer_free(CgPackWriter *w); /* NULL is fine */
/* Manifest strings: "producer", "codegen_version", "compiler", "model",
 * "config", "spec" (copied). */
void cg_pack_writer_meta(CgPackWriter *w, const char *key, const char *value);
/* A model parameter (copied), in the order given. */
void cg_pack_writer_param(CgPackWriter *w, const char *key, const char *value);
/* The model record (copied; text_len bytes of text).  Every pack needs one:
 * the reader refuses a pack without it.  0, or -1 when a name is not UTF-8
 * (JSON holds only text). */
int cg_pack_writer_model(CgPackWriter *w, const CgPackModel *m, IrErr *err);
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
