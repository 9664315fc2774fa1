/*
 * cuda_sim.h - the simulated CUDA driver and cuBLASLt (DITC_CUDA_SIM=1).
 *
 * cuda_api.c fills its tables (rt_cu, rt_lt) from these instead of dlopen
 * when the simulation is asked for; everything above the tables is the
 * real code.  What is simulated, and what is checked, is described at the
 * top of cuda_sim.c (the driver), cuda_sim_image.c (reading CUBINs),
 * cuda_sim_params.c (kernel parameters) and cuda_sim_blas.c (cuBLASLt).
 *
 * The first section is for cuda_api.c; the second is shared by the
 * simulation's own files.
 */
#ifndef DITC_CUDA_SIM_H
#define DITC_CUDA_SIM_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/cuda_api.h"

/* ======================================================================== */
/* for cuda_api.c                                                           */
/* ======================================================================== */

/* Fill t with the simulated driver's entry points; cuBLASLt's. */
void rt_cuda_sim_driver(RtCudaApi *t);
void rt_cuda_sim_blas(RtLtApi *t);
/* What rt_cuda_library_path() shows: "simulated driver (DITC_CUDA_SIM=1)". */
const char *rt_cuda_sim_path(void);
/* The simulation's reason for the last call that failed on this thread
 * ("" when there is none); reading clears it.  Every simulated call but the
 * error-name queries clears it on entry, so it always belongs to the call
 * that just returned. */
const char *rt_cuda_sim_take_detail(char *buf, size_t n);

/* ======================================================================== */
/* between the simulation's files                                           */
/* ======================================================================== */

/* CUresult values beyond cuda_api.h's (cuda.h's numbers) */
enum {
  SIM_ERROR_NOT_INITIALIZED = 3,
  SIM_ERROR_INVALID_DEVICE = 101,
  SIM_ERROR_INVALID_IMAGE = 200,
  SIM_ERROR_INVALID_CONTEXT = 201,
  SIM_ERROR_NO_BINARY_FOR_GPU = 209,
  SIM_ERROR_INVALID_HANDLE = 400,
  SIM_ERROR_ILLEGAL_STATE = 401,
  SIM_ERROR_NOT_FOUND = 500,
  SIM_ERROR_LAUNCH_OUT_OF_RESOURCES = 701,
  SIM_ERROR_MISALIGNED_ADDRESS = 716,
  SIM_ERROR_LAUNCH_FAILED = 719,
  SIM_ERROR_NOT_SUPPORTED = 801,
  SIM_ERROR_STREAM_CAPTURE_UNSUPPORTED = 900,
  SIM_ERROR_STREAM_CAPTURE_INVALIDATED = 901,
};

/* The simulated device's architecture (DITC_CUDA_SIM_ARCH, default sm_90). */
typedef struct {
  const char *arch;       /* "sm_90" */
  int major, minor;
  const char *like;       /* the GPU whose numbers these are */
  int sm_count;
  int smem_per_block_optin; /* max shared memory per block, opted in */
  int smem_per_sm;
  int threads_per_sm;
  size_t total_mem;
} SimArch;
const SimArch *sim_arch(void);

/* One lock for the whole simulated device: the driver's and cuBLASLt's
 * calls take it on entry (never recursively). */
void sim_lock(void);
void sim_unlock(void);

/* printf into this thread's detail (see rt_cuda_sim_take_detail); returns r. */
int sim_fail(int r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Clear this thread's detail (at the start of a call). */
void sim_detail_clear(void);
/* A device fault: the context is unusable from now on (every call returns
 * r) until the primary context is released to zero and retained again. */
int sim_fault(int r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same for a failure whose detail is written already. */
int sim_make_sticky(int r);

/* The functions below are called with the lock held. */

/* 0 when the calling thread has a usable current context, else the CUresult
 * (not initialised, no context, or the context's sticky fault). */
int sim_ctx_check(void);

/* Is [p, p + n) inside one live allocation?  0, else a CUresult with the
 * detail filled ("<what> ... lies in an allocation freed earlier", ...):
 * bad_code for a pointer outside every live allocation.  align > 1 also
 * checks p % align == 0 (bad_align_code otherwise). */
int sim_range_check(uint64_t p, size_t n, size_t align, const char *what, int bad_code, int bad_align_code);

/* An operation on a stream: run now, or recorded into the stream's capture
 * and run at every graph launch.  exec runs it (a CUresult; it checks its own
 * device pointers, so a graph replayed after its memory was freed fails
 * there); clone copies the payload for a graph; free releases it. */
typedef struct {
  const char *name;                 /* "cublasLtMatmul" */
  int (*exec)(void *payload, int replay);
  void *(*clone)(const void *payload);
  void (*free)(void *payload);
  void *payload;
} SimHostOp;
/* Enqueue op on s (NULL: the legacy default stream); takes the payload.
 * Returns the CUresult of running it (0 when it was recorded). */
int sim_enqueue_host(CUstream s, const SimHostOp *op);
/* 1 when s is capturing into a graph. */
int sim_stream_capturing(CUstream s);

/* Defines static T *NAME(T **head, const void *x): takes x off the list at
 * *head (linked through `next`) and returns it, or NULL when it is not on it. */
#define SIM_LIST_TAKE(NAME, T)                   \
  static T *NAME(T **head, const void *x) {      \
    for (T **pp = head; *pp; pp = &(*pp)->next)  \
      if (*pp == x) {                            \
        T *n = *pp;                              \
        *pp = n->next;                           \
        return n;                                \
      }                                          \
    return NULL;                                 \
  }

/* ---- CUBIN images (cuda_sim_image.c) ---------------------------------------- */

#define SIM_MAX_PARAMS 64

typedef struct {
  char *name;
  unsigned max_threads;        /* __launch_bounds__' maximum (x*y*z of maxntid), 0: none */
  unsigned reqntid[3];         /* a required block shape, all 0: none */
  int regs;                    /* registers per thread, -1: not recorded */
  unsigned static_smem;        /* static shared memory the kernel declares, bytes */
  int n_params;
  unsigned param_offset[SIM_MAX_PARAMS], param_size[SIM_MAX_PARAMS]; /* by ordinal */
} SimKernel;

typedef struct {
  size_t size;                 /* bytes of the ELF image */
  int sm;                      /* 90 for an sm_90 CUBIN */
  SimKernel *kernels;
  int n_kernels;
} SimImage;

/* Read a CUBIN (an ELF for an NVIDIA GPU) at image: its size, architecture
 * and the kernels with the attributes a driver reads at launch.  0, or -1
 * with why (never reads past what the ELF headers describe). */
int sim_image_parse(const void *image, SimImage *out, char *why, size_t n);
void sim_image_free(SimImage *im);

/* ---- kernel parameters (cuda_sim_params.c) ----------------------------------- */

typedef struct {
  unsigned offset;             /* of the pointer in the parameter struct */
  unsigned align;              /* its element's alignment (1 when unknown) */
  char name[40];
} SimPtrMember;

typedef struct {
  int known;                   /* 0: the struct was not read; scan for device addresses */
  unsigned size;
  SimPtrMember *ptrs;
  int n_ptrs;
} SimParams;

/* The parameter struct of each of img's kernels (out[k] for kernel k) as
 * source declares it. */
void sim_params_read(const char *source, const SimImage *img, SimParams *out);
void sim_params_free(SimParams *p);

#endif
