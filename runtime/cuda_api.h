/*
 * cuda_api.h - the thin GPU runtime under the cuda backend: the CUDA driver
 * API and cuBLASLt, both opened with dlopen at run time.
 *
 * Nothing here links against CUDA, so every ditc binary starts on a machine
 * without a GPU and can say plainly why there is none.  The driver's entry
 * points live in one table (rt_cu), filled once by rt_cuda_load() from
 * "libcuda.so.1" (the toolkit's link stub .../stubs/libcuda.so is refused: it
 * only returns CUDA_ERROR_STUB_LIBRARY).  cuBLASLt's live in rt_lt, filled by
 * rt_blas_load() from "libcublasLt.so.13".
 *
 * Types: our own minimal declarations, so the project builds without the CUDA
 * toolkit's headers.  The handle typedefs use the same struct tags as cuda.h
 * (C11 allows the identical typedef twice), results and enums are plain ints
 * (what the C ABI passes for an enum), and the constants we need carry an RT_
 * prefix, so this header and cuda.h never collide.  Table members drop the
 * "cu" / "cublasLt" prefix for the same reason (cuda.h #defines cuMemAlloc to
 * cuMemAlloc_v2 and so on); each is loaded with dlsym from the exact versioned
 * symbol the CUDA 12/13 headers map the plain name to (cuMemAlloc ->
 * cuMemAlloc_v2, ...).  Every one of them is exported by drivers since CUDA
 * 11.4, so cuGetProcAddress (needed only for per-thread-default-stream
 * variants, which ditc does not use) is not needed.
 *
 * Every driver and cuBLASLt call goes through one checking macro:
 *   if (RT_CU(err, what, LaunchKernel, f, gx, gy, gz, bx, by, bz, smem, s, args, NULL))
 *     return -1;
 * fills err with
 *   "cuLaunchKernel failed: CUDA_ERROR_ILLEGAL_ADDRESS (an illegal memory
 *    access was encountered) at runtime/foo.c:123 (<what>)"
 * where `what` (may be NULL) names the kernel and IR node the call was for.
 *
 * Without a GPU, DITC_CUDA_SIM=1 fills both tables from a simulated driver
 * and cuBLASLt instead (runtime/cuda_sim.h; rt_cuda_library_path() then says
 * "simulated driver (DITC_CUDA_SIM=1)"), so everything here and above - the
 * backend, its CUDA graphs, the cuBLASLt descriptors, the sampler loop on the
 * device - runs unchanged.  The simulated device (sm_90 unless
 * DITC_CUDA_SIM_ARCH names another) runs each CUBIN's kernels from the source
 * NVRTC compiled it from on the emulated device, computes matmuls from the
 * descriptors as cuBLASLt documents them, and checks what a driver checks:
 * launch bounds, registers and the 1024-thread block limit, dynamic shared
 * memory against the 48 KiB default (cuFuncSetAttribute) and the
 * architecture's opt-in limit, the alignment of cuBLASLt's operands and of
 * cuMemsetD32, every device pointer a call or a kernel's parameters hold
 * against the live allocations (outside them, or in a freed one: an illegal
 * address, sticky as on a GPU), capture rules, and graphs replayed after
 * their memory was freed.  It returns the CUresult / cublasStatus_t a GPU
 * would, and RT_CU / RT_LT add the simulation's reason to the message
 * ("... [simulated driver: kernel k3 ...]").  It cannot show timing (events
 * read the host's clock), the hardware's scheduling of blocks and warps,
 * memory-model races, or a stray access a kernel makes beyond its
 * parameters' pointers (past an allocation's end it faults the process).
 *
 * Matmuls: cuBLASLt is column-major, ditc is row-major.  A row-major r x c
 * matrix with row stride ld is, byte for byte, the column-major c x r matrix
 * (its transpose) with leading dimension ld.  So D = op(A) op(B) is computed
 * as D^T = op(B)^T op(A)^T: cuBLASLt's "A" is our B, its "B" is our A, the
 * transpose flags carry over unchanged, and its m, n are our n, m.  A bias
 * over D's columns (one per output feature) is then per row of D^T, which is
 * what CUBLASLT_EPILOGUE_BIAS adds.  rt_blas_colmajor() exposes the mapping.
 */
#ifndef DITC_CUDA_API_H
#define DITC_CUDA_API_H

#include <stddef.h>
#include <stdint.h>

#include "ir/ir.h"

/* ======================================================================== */
/* driver types and constants (ABI-compatible with cuda.h)                  */
/* ======================================================================== */

typedef int RtCuResult; /* CUresult */
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;
typedef struct CUctx_st *CUcontext;
typedef struct CUmod_st *CUmodule;
typedef struct CUfunc_st *CUfunction;
typedef struct CUstream_st *CUstream;
typedef struct CUevent_st *CUevent;
typedef struct CUgraph_st *CUgraph;
typedef struct CUgraphExec_st *CUgraphExec;

/* CUresult values ditc looks at */
#define RT_CUDA_SUCCESS 0
#define RT_CUDA_ERROR_INVALID_VALUE 1
#define RT_CUDA_ERROR_OUT_OF_MEMORY 2
#define RT_CUDA_ERROR_STUB_LIBRARY 34
#define RT_CUDA_ERROR_NO_DEVICE 100
#define RT_CUDA_ERROR_ILLEGAL_ADDRESS 700

/* CUdevice_attribute */
#define RT_CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT 16
#define RT_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR 75
#define RT_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR 76
#define RT_CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN 97
/* CUjit_option */
#define RT_CU_JIT_INFO_LOG_BUFFER 3
#define RT_CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES 4
#define RT_CU_JIT_ERROR_LOG_BUFFER 5
#define RT_CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES 6
#define RT_CU_JIT_LOG_VERBOSE 12
/* CUfunction_attribute */
#define RT_CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES 8
/* stream, event, capture and instantiate flags */
#define RT_CU_STREAM_DEFAULT 0
#define RT_CU_STREAM_NON_BLOCKING 1
#define RT_CU_EVENT_DEFAULT 0
#define RT_CU_EVENT_DISABLE_TIMING 2
#define RT_CU_STREAM_CAPTURE_MODE_GLOBAL 0
#define RT_CU_STREAM_CAPTURE_MODE_THREAD_LOCAL 1
#define RT_CU_STREAM_CAPTURE_MODE_RELAXED 2

/* ======================================================================== */
/* the driver table                                                         */
/* ======================================================================== */

/* Member X is the driver's cuX, loaded from the symbol named in cuda_api.c. */
typedef struct {
  RtCuResult (*Init)(unsigned flags);
  RtCuResult (*DriverGetVersion)(int *version);
  RtCuResult (*GetErrorName)(RtCuResult r, const char **s);
  RtCuResult (*GetErrorString)(RtCuResult r, const char **s);

  RtCuResult (*DeviceGet)(CUdevice *dev, int ordinal);
  RtCuResult (*DeviceGetCount)(int *count);
  RtCuResult (*DeviceGetName)(char *name, int len, CUdevice dev);
  RtCuResult (*DeviceGetAttribute)(int *value, int attrib, CUdevice dev);
  RtCuResult (*DeviceTotalMem)(size_t *bytes, CUdevice dev);
  RtCuResult (*DevicePrimaryCtxRetain)(CUcontext *ctx, CUdevice dev);
  RtCuResult (*DevicePrimaryCtxRelease)(CUdevice dev);
  RtCuResult (*CtxSetCurrent)(CUcontext ctx);
  RtCuResult (*CtxGetCurrent)(CUcontext *ctx);
  RtCuResult (*CtxSynchronize)(void);

  RtCuResult (*ModuleLoadDataEx)(CUmodule *mod, const void *image, unsigned n_options,
                                 int *options, void **option_values);
  RtCuResult (*ModuleUnload)(CUmodule mod);
  RtCuResult (*ModuleGetFunction)(CUfunction *f, CUmodule mod, const char *name);
  RtCuResult (*FuncSetAttribute)(CUfunction f, int attrib, int value);
  RtCuResult (*LaunchKernel)(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                             unsigned by, unsigned bz, unsigned shared_bytes, CUstream s,
                             void **params, void **extra);

  RtCuResult (*MemAlloc)(CUdeviceptr *p, size_t bytes);
  RtCuResult (*MemFree)(CUdeviceptr p);
  RtCuResult (*MemGetInfo)(size_t *free_bytes, size_t *total_bytes);
  RtCuResult (*MemsetD8)(CUdeviceptr p, unsigned char v, size_t n);
  RtCuResult (*MemsetD8Async)(CUdeviceptr p, unsigned char v, size_t n, CUstream s);
  RtCuResult (*MemsetD32)(CUdeviceptr p, unsigned v, size_t n);
  RtCuResult (*MemsetD32Async)(CUdeviceptr p, unsigned v, size_t n, CUstream s);
  RtCuResult (*MemcpyHtoD)(CUdeviceptr dst, const void *src, size_t bytes);
  RtCuResult (*MemcpyDtoH)(void *dst, CUdeviceptr src, size_t bytes);
  RtCuResult (*MemcpyDtoD)(CUdeviceptr dst, CUdeviceptr src, size_t bytes);
  RtCuResult (*MemcpyHtoDAsync)(CUdeviceptr dst, const void *src, size_t bytes, CUstream s);
  RtCuResult (*MemcpyDtoHAsync)(void *dst, CUdeviceptr src, size_t bytes, CUstream s);
  RtCuResult (*MemcpyDtoDAsync)(CUdeviceptr dst, CUdeviceptr src, size_t bytes, CUstream s);

  RtCuResult (*StreamCreate)(CUstream *s, unsigned flags);
  RtCuResult (*StreamDestroy)(CUstream s);
  RtCuResult (*StreamSynchronize)(CUstream s);
  RtCuResult (*EventCreate)(CUevent *e, unsigned flags);
  RtCuResult (*EventDestroy)(CUevent e);
  RtCuResult (*EventRecord)(CUevent e, CUstream s);
  RtCuResult (*EventSynchronize)(CUevent e);
  RtCuResult (*EventElapsedTime)(float *ms, CUevent start, CUevent end);

  RtCuResult (*StreamBeginCapture)(CUstream s, int mode);
  RtCuResult (*StreamEndCapture)(CUstream s, CUgraph *g);
  RtCuResult (*GraphInstantiateWithFlags)(CUgraphExec *exec, CUgraph g, unsigned long long flags);
  RtCuResult (*GraphLaunch)(CUgraphExec exec, CUstream s);
  RtCuResult (*GraphDestroy)(CUgraph g);
  RtCuResult (*GraphExecDestroy)(CUgraphExec exec);
} RtCudaApi;

/* Filled by a successful rt_cuda_load(), all NULL before (and after a
 * failed one).  Tests may install fakes in it. */
extern RtCudaApi rt_cu;

/* Open the driver and cuInit it, once per process (thread-safe); later calls
 * return the first call's status and message.  Library search:
 * the simulated driver when DITC_CUDA_SIM=1 (before anything else),
 * $DITC_LIBCUDA when set (only that file), else "libcuda.so.1", else
 * "libcuda.so"; a library living in a .../stubs/ folder is refused.
 * Errors: "no NVIDIA driver: libcuda.so.1 not found (this machine has no GPU,
 * or the driver is not installed)", "no CUDA device found", ... */
int rt_cuda_load(IrErr *err);

/* 1 when the driver loads and sees at least one device, else 0 with the
 * reason in why (may be NULL).  The CLI picks --backend cuda by default when
 * this says yes, ref otherwise, and prints the reason. */
int rt_cuda_available(IrErr *why);

/* The path the driver was loaded from ("" before a successful load). */
const char *rt_cuda_library_path(void);

/* The checking macro and the function behind it: 0 when r is CUDA_SUCCESS,
 * else fill err (see the top of this file) and return -1.  `call` is the
 * driver function's name, `what` the caller's context (NULL for none).
 * File paths are shown relative to the source tree (DITC_SOURCE_DIR). */
#define RT_CU(err, what, fn, ...) \
  rt_cu_check(rt_cu.fn(__VA_ARGS__), "cu" #fn, __FILE__, __LINE__, (what), (err))
int rt_cu_check(RtCuResult r, const char *call, const char *file, int line, const char *what,
                IrErr *err);
/* "CUDA_ERROR_ILLEGAL_ADDRESS (an illegal memory access was encountered)", or
 * "CUDA error 700" when the driver cannot name it. */
const char *rt_cu_result_str(RtCuResult r, char *buf, size_t n);

/* ======================================================================== */
/* devices, modules, graphs, timing                                         */
/* ======================================================================== */

typedef struct {
  int ordinal;
  CUdevice dev;
  CUcontext ctx;        /* the device's primary context, retained and current */
  char name[256];
  int cc_major, cc_minor;
  int sm_count;
  int smem_optin;       /* max dynamic shared memory per block, opted in (bytes) */
  size_t total_mem;     /* bytes */
  int driver_version;   /* 13000 for CUDA 13.0 */
} RtCudaDevice;

/* Load the driver, query device `ordinal`, retain its primary context (the
 * one the CUDA runtime inside cuBLASLt uses too) and make it current on the
 * calling thread.  Other threads call rt_cuda_device_bind() before any work. */
int rt_cuda_device_open(int ordinal, RtCudaDevice *d, IrErr *err);
int rt_cuda_device_bind(const RtCudaDevice *d, IrErr *err);
void rt_cuda_device_close(RtCudaDevice *d);
/* "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs, 79.2 GiB, driver CUDA 13.0)" */
char *rt_cuda_device_str(const RtCudaDevice *d, char *buf, size_t n);

/* Load a CUBIN / fatbin (or NUL-terminated PTX) image.  On failure the
 * message carries the head of the driver's JIT error log.  `what` names the
 * module for messages (the kernel or cache file). */
int rt_cuda_module_load(const void *image, const char *what, CUmodule *out, IrErr *err);

/* Stream capture into an executable graph.  Capture runs in relaxed mode so
 * that cuBLASLt may query things while the stream records; do one warm-up run
 * before capturing so every module is loaded.  end_capture always ends the
 * capture (also on failure) and destroys the intermediate CUgraph. */
int rt_cuda_capture_begin(CUstream s, IrErr *err);
int rt_cuda_capture_end(CUstream s, CUgraphExec *out, IrErr *err);

/* Event pair for timing work on a stream. */
typedef struct {
  CUevent start, stop;
} RtCudaTimer;
int rt_cuda_timer_init(RtCudaTimer *t, IrErr *err);
int rt_cuda_timer_start(RtCudaTimer *t, CUstream s, IrErr *err);
/* Record stop, wait for it, and give the milliseconds between the two. */
int rt_cuda_timer_stop(RtCudaTimer *t, CUstream s, float *ms, IrErr *err);
void rt_cuda_timer_free(RtCudaTimer *t);

/* ======================================================================== */
/* cuBLASLt                                                                 */
/* ======================================================================== */

typedef int RtLtStatus; /* cublasStatus_t */
typedef struct RtLtContext *RtLtHandle;
typedef struct RtLtOpaque *RtLtDesc; /* matmul, layout and preference descriptors */
typedef struct {
  uint64_t data[8];
} RtLtAlgo; /* cublasLtMatmulAlgo_t */
typedef struct {
  RtLtAlgo algo;
  size_t workspace_size;
  RtLtStatus state;
  float waves_count;
  int reserved[4];
} RtLtHeuristic; /* cublasLtMatmulHeuristicResult_t */

/* Member X is cublasLtX. */
typedef struct {
  RtLtStatus (*Create)(RtLtHandle *h);
  RtLtStatus (*Destroy)(RtLtHandle h);
  const char *(*GetStatusName)(RtLtStatus s);
  const char *(*GetStatusString)(RtLtStatus s);
  size_t (*GetVersion)(void);
  size_t (*GetCudartVersion)(void);
  RtLtStatus (*MatmulDescCreate)(RtLtDesc *d, int compute_type, int scale_type);
  RtLtStatus (*MatmulDescDestroy)(RtLtDesc d);
  RtLtStatus (*MatmulDescSetAttribute)(RtLtDesc d, int attr, const void *buf, size_t size);
  RtLtStatus (*MatrixLayoutCreate)(RtLtDesc *l, int type, uint64_t rows, uint64_t cols, int64_t ld);
  RtLtStatus (*MatrixLayoutDestroy)(RtLtDesc l);
  RtLtStatus (*MatrixLayoutSetAttribute)(RtLtDesc l, int attr, const void *buf, size_t size);
  RtLtStatus (*MatmulPreferenceCreate)(RtLtDesc *p);
  RtLtStatus (*MatmulPreferenceDestroy)(RtLtDesc p);
  RtLtStatus (*MatmulPreferenceSetAttribute)(RtLtDesc p, int attr, const void *buf, size_t size);
  RtLtStatus (*MatmulAlgoGetHeuristic)(RtLtHandle h, RtLtDesc op, RtLtDesc a, RtLtDesc b,
                                       RtLtDesc c, RtLtDesc d, RtLtDesc pref, int requested,
                                       RtLtHeuristic *results, int *returned);
  RtLtStatus (*Matmul)(RtLtHandle h, RtLtDesc op, const void *alpha, const void *a, RtLtDesc adesc,
                       const void *b, RtLtDesc bdesc, const void *beta, const void *c,
                       RtLtDesc cdesc, void *d, RtLtDesc ddesc, const RtLtAlgo *algo,
                       void *workspace, size_t workspace_bytes, CUstream s);
} RtLtApi;

extern RtLtApi rt_lt;

/* Same contract as RT_CU, for cuBLASLt: "cublasLtMatmul failed:
 * CUBLAS_STATUS_NOT_SUPPORTED (the functionality requested is not supported)
 * at file:line (what)".  cuBLASLt's own CUBLASLT_LOG_LEVEL=1 (environment)
 * prints why it refused a problem. */
#define RT_LT(err, what, fn, ...) \
  rt_lt_check(rt_lt.fn(__VA_ARGS__), "cublasLt" #fn, __FILE__, __LINE__, (what), (err))
int rt_lt_check(RtLtStatus s, const char *call, const char *file, int line, const char *what,
                IrErr *err);

/* dlopen "libcublasLt.so.13" (else .so.12, else "libcublasLt.so") and fill
 * rt_lt, once; with DITC_CUDA_SIM=1 the simulated cuBLASLt instead.
 * Needs no GPU.  rt_blas_version(): cublasLtGetVersion(), 0 if not loaded. */
int rt_blas_load(IrErr *err);
size_t rt_blas_version(void);

typedef enum {
  RT_BLAS_EPI_NONE,
  RT_BLAS_EPI_BIAS,           /* D[i, j] += bias[j] */
  RT_BLAS_EPI_GELU_TANH_BIAS, /* D = gelu_tanh(D + bias): the op gelu_tanh, not erf gelu */
} RtBlasEpilogue;

/* D[b] = alpha * op(A[b]) op(B[b]) + beta * C[b] over row-major matrices.
 * op(A) is m x k (A stored k x m when trans_a), op(B) is k x n (B stored
 * n x k when trans_b: the layout of a linear layer's weight), D and C are
 * m x n with the same layout (C may be D, or absent when beta is 0).  ld*
 * are row strides of the stored matrices in elements (0: packed).  Batches
 * are stride_* elements apart; stride_a or stride_b 0 reuses one matrix for
 * every batch; stride_d must be >= the matrix size when batch > 1.  A, B,
 * C, D and bias share one dtype (f32, f16 or bf16), except that with d_f32
 * f16/bf16 A and B give an f32 C, D and bias (cuBLASLt's mixed-precision
 * COMPUTE_32F rows; the bias takes D's type, its default).  Accumulation and
 * alpha/beta are f32 (CUBLAS_COMPUTE_32F, never TF32, so f32 results match
 * the reference).  The bias (n values) is the same for every batch.
 * dtype i8 (added later) is cuBLASLt's IMMA matmul: i8 A and B, an int32
 * D (and C), CUBLAS_COMPUTE_32I with an int32 scale type (alpha and beta
 * must be integers), no epilogue, and only A [m, k] by B [n, k] (trans_a 0,
 * trans_b 1: cuBLASLt's TN form).  dtype e4m3 (later still) is its FP8
 * matmul: e4m3 A and B with d_f32 (an f32 C and D), CUBLAS_COMPUTE_32F, no
 * scale pointers (scales 1: the plan's readers apply fp8's per-tensor scales),
 * no epilogue, the TN form only; sm_89 and later. */
typedef struct {
  IrDType dtype;                        /* A and B (and C, D, bias unless d_f32) */
  int64_t m, n, k;
  int trans_a, trans_b;
  int64_t lda, ldb, ldd;
  int64_t batch;                        /* 0 is taken as 1 */
  int64_t stride_a, stride_b, stride_d;
  RtBlasEpilogue epilogue;
  unsigned align;                       /* bytes every pointer is aligned to; 0: 256 (cuMemAlloc's) */
  int d_f32;                            /* C, D, bias in f32 (added later; 0: all in dtype) */
} RtBlasMatmulDesc;

/* The column-major problem handed to cuBLASLt for a row-major desc: matrix
 * "a" is our B, "b" is our A, d is D^T (see the top of the file). */
typedef struct {
  int transa, transb;
  int64_t m, n, k;
  int64_t a_rows, a_cols, lda, stride_a;
  int64_t b_rows, b_cols, ldb, stride_b;
  int64_t d_rows, d_cols, ldd, stride_d;
  int64_t batch;
} RtBlasColMajor;

/* Check a desc (shapes, strides, dtype) and fill its column-major form. */
int rt_blas_colmajor(const RtBlasMatmulDesc *d, RtBlasColMajor *out, IrErr *err);

typedef struct RtBlas RtBlas;         /* handle + workspace + plan cache */
typedef struct RtBlasPlan RtBlasPlan; /* descriptors + chosen algorithm */

/* Needs a device opened with rt_cuda_device_open() and current; refuses
 * (without touching cuBLASLt) when there is none.  One RtBlas serves one
 * stream at a time: its workspace is shared by every matmul it runs. */
int rt_blas_init(RtBlas **out, IrErr *err);
void rt_blas_free(RtBlas *b);

/* Describe once, run many times (also while a stream is being captured into
 * a graph: a run only sets the bias pointer and enqueues the matmul).  A plan
 * is used by one thread at a time.  `what` names the IR node for messages. */
int rt_blas_plan_new(RtBlas *b, const RtBlasMatmulDesc *d, const char *what, RtBlasPlan **out,
                     IrErr *err);
int rt_blas_plan_run(RtBlas *b, RtBlasPlan *p, float alpha, CUdeviceptr A, CUdeviceptr B,
                     float beta, CUdeviceptr C, CUdeviceptr D, CUdeviceptr bias, CUstream s,
                     const char *what, IrErr *err);
void rt_blas_plan_free(RtBlasPlan *p);
/* Only the descriptors, no algorithm (so it cannot run): needs cuBLASLt but
 * no GPU, so tests and early checks can see cuBLASLt accept a desc. */
int rt_blas_plan_describe(const RtBlasMatmulDesc *d, const char *what, RtBlasPlan **out,
                          IrErr *err);
/* The algorithm's workspace need and the plan's problem, for logs. */
size_t rt_blas_plan_workspace(const RtBlasPlan *p);

/* One-shot form: the plan comes from b's cache (keyed by the whole desc) and
 * is made on first use. */
int rt_blas_matmul(RtBlas *b, const RtBlasMatmulDesc *d, float alpha, CUdeviceptr A,
                   CUdeviceptr B, float beta, CUdeviceptr C, CUdeviceptr D, CUdeviceptr bias,
                   CUstream s, const char *what, IrErr *err);

#endif
