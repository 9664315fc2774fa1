/*
 * nvrtc.h - NVRTC, loaded at run time: CUDA C++ source -> CUBIN (and PTX).
 *
 * ditc never links against NVRTC.  cg_nvrtc_open() dlopen()s it, so the
 * binary starts on machines without CUDA and only the commands that compile
 * kernels fail, saying which libraries were looked for.  No GPU is needed:
 * NVRTC compiles for whatever architectures the user names ("sm_90a"), and
 * asking for a real sm_XX target makes it run ptxas, so the result is SASS
 * in an ELF CUBIN plus ptxas' resource report (registers, spills, shared
 * memory per kernel), which cg_nvrtc_compile() parses.
 *
 * Every NVRTC call inside nvrtc.c goes through one checking macro; a failure
 * names the call, nvrtc.c's file:line and nvrtcGetErrorString(), and a failed
 * compilation adds the program log and the generated source around every
 * line the log reports an error on (+-3 lines, numbered, the line marked >).
 *
 * A CgNvrtc handle is read-only after cg_nvrtc_open(): any number of threads
 * may compile through one handle at once (NVRTC programs are independent).
 */
#ifndef DITC_CODEGEN_NVRTC_H
#define DITC_CODEGEN_NVRTC_H

#include <stddef.h>

#include "codegen/cache.h"
#include "ir/ir.h"

typedef struct CgNvrtc CgNvrtc;

/* ---- loading -------------------------------------------------------------- */

/* Load NVRTC.  With path == NULL, tries in order: libnvrtc.so.13,
 * libnvrtc.so.12, libnvrtc.so (the dynamic loader's search path), then
 * lib64/ of $CUDA_HOME and of /usr/local/cuda.  With a path, or with
 * $DITC_NVRTC set (when path is NULL), tries only that file.  Returns NULL
 * and "NVRTC not found (looked for a, b, ...): <last loader error>" when
 * none loads or a required entry point is missing. */
CgNvrtc *cg_nvrtc_open(const char *path, IrErr *err);
/* Frees the handle; the library itself stays loaded for the process. */
void cg_nvrtc_close(CgNvrtc *nv); /* NULL is fine */

/* The file that was loaded ("libnvrtc.so.13", or the full path tried). */
const char *cg_nvrtc_path(const CgNvrtc *nv);
/* nvrtcVersion(), read once at open. */
void cg_nvrtc_version(const CgNvrtc *nv, int *major, int *minor);
/* "nvrtc 13.0": a stable string for cache keys and reports. */
const char *cg_nvrtc_version_string(const CgNvrtc *nv);
/* The SM numbers this NVRTC can target (75, 80, 86, ..., 120), ascending;
 * returns the count, 0 when this NVRTC predates nvrtcGetSupportedArchs (then
 * arch support is left to the compiler to judge).  The array is the handle's. */
int cg_nvrtc_supported_archs(const CgNvrtc *nv, const int **sm);

/* ---- architectures ---------------------------------------------------------- */

/* A real GPU target: "sm_" + 2-3 digits + an optional suffix, 'a' (arch-
 * specific features, sm_90a and later) or 'f' (family, sm_100f and later). */
typedef struct {
  int sm;      /* 90 for "sm_90a" */
  char suffix; /* 0, 'a' or 'f' */
} CgArch;

/* Parse and check the spelling; errors explain the expected form. */
int cg_arch_parse(const char *s, CgArch *out, IrErr *err);
/* cg_arch_parse() plus: this NVRTC can target it (when it can tell), else an
 * error listing the supported ones. */
int cg_nvrtc_check_arch(const CgNvrtc *nv, const char *arch, IrErr *err);

/* ---- compiling ------------------------------------------------------------- */

/* ptxas' report for one __global__ function (-1: the log did not say). */
typedef struct {
  char *name;          /* as ptxas names it: mangled unless extern "C" */
  int registers;       /* per thread */
  int spill_stores;    /* bytes */
  int spill_loads;     /* bytes */
  int stack_frame;     /* bytes */
  int smem;            /* static shared memory, bytes (0 when not reported) */
  int barriers;        /* named barriers used (CUDA 12.8+ reports them) */
} CgKernelStats;

enum {
  CG_OUT_CUBIN = 1u << 0, /* SASS for the named sm_XX, in an ELF CUBIN */
  CG_OUT_PTX = 1u << 1,   /* the PTX; alone, compiles for compute_XX, skipping ptxas */
};

typedef struct {
  unsigned char *cubin; /* CG_OUT_CUBIN: the ELF image, else NULL */
  size_t cubin_size;
  char *ptx;            /* CG_OUT_PTX: NUL-terminated PTX, else NULL */
  size_t ptx_size;      /* without the NUL */
  char *log;            /* the program log, "" when empty (warnings land here) */
  CgKernelStats *kernels; /* parsed from the log when ptxas ran, in log order */
  int n_kernels;
  char *diag;           /* on failure: the whole message (err holds its start) */
} CgCompiled;

/* Compile `source` as program `name` (the file name NVRTC's diagnostics use,
 * e.g. "ditc_node12.cu") for `arch`.  NVRTC gets --gpu-architecture=sm_XX
 * (compute_XX for PTX only), -default-device, --std=c++17 unless the caller
 * names a --std, --ptxas-options=-v when a CUBIN is made, then `options`
 * (may be NULL when n_options is 0; an architecture option there is an error:
 * the target is `arch`).  `outputs` is a mask of CG_OUT_*.
 *
 * Returns 0 and fills *out (free with cg_compiled_free()), or -1 with err set;
 * *out then still holds the log and the full message in out->diag, which can
 * be longer than IrErr holds.  Compile errors list, for each error line, the
 * source lines around it, then the whole NVRTC log. */
int cg_nvrtc_compile(const CgNvrtc *nv, const char *source, const char *name, const char *arch,
                     const char *const *options, int n_options, unsigned outputs,
                     CgCompiled *out, IrErr *err);
void cg_compiled_free(CgCompiled *c);

/* Parse ptxas -v output (as found in an NVRTC log) into per-kernel stats;
 * returns the count and an array to free with cg_kernel_stats_free(). */
int cg_ptxas_parse(const char *log, CgKernelStats **out);
void cg_kernel_stats_free(CgKernelStats *k, int n);
/* The kernel called `name` in c, or NULL. */
const CgKernelStats *cg_compiled_find_kernel(const CgCompiled *c, const char *name);

/* A CgCompileFn for cg_cache_get_or_compile(): user is the CgNvrtc; makes
 * r's CUBIN.  r->compiler_version must be cg_nvrtc_version_string(), or the
 * key would not say what compiled the entry (an error otherwise).  ptxas'
 * report is not kept: with report set (may be NULL), a miss fills it (free
 * with cg_compiled_free()); on a hit it stays empty. */
typedef struct {
  const CgNvrtc *nv;
  CgCompiled *report;
} CgNvrtcCacheCtx;
int cg_nvrtc_cache_compile(void *ctx /* CgNvrtcCacheCtx */, const CgCacheRequest *r,
                           unsigned char **out, size_t *out_size, IrErr *err);

#endif
