/*
 * cuda_api.c - the CUDA driver and cuBLASLt, opened with dlopen (see
 * cuda_api.h for the contract and the row-major -> column-major mapping).
 *
 * Loading runs once per process under pthread_once and remembers its status
 * and message, so every later caller gets the same answer without touching
 * the libraries again.  Symbols are looked up by their exact versioned names
 * (the ones CUDA 12/13's cuda.h maps the plain names to), a few with an older
 * fallback, so any driver from CUDA 11.4 on works.
 */
#include "runtime/cuda_api.h"

#include <dlfcn.h>
#include <limits.h>
#include <link.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/cubin_source.h"
#include "runtime/cuda_sim.h"

RtCudaApi rt_cu;
RtLtApi rt_lt;

#define NO_DRIVER_MSG \
  "no NVIDIA driver: libcuda.so.1 not found (this machine has no GPU, or the driver is not installed)"

/* ======================================================================== */
/* messages                                                                 */
/* ======================================================================== */

/* __FILE__ relative to the source tree, as people read paths in the repo. */
static const char *src_path(const char *file) {
#ifdef DITC_SOURCE_DIR
  size_t n = strlen(DITC_SOURCE_DIR);
  if (!strncmp(file, DITC_SOURCE_DIR, n) && file[n] == '/') return file + n + 1;
#endif
  return file;
}

/* Append to an already filled message (err may be NULL). */
static void err_append(IrErr *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void err_append(IrErr *err, const char *fmt, ...) {
  if (!err) return;
  size_t len = strlen(err->msg);
  if (len + 1 >= sizeof err->msg) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->msg + len, sizeof err->msg - len, fmt, ap);
  va_end(ap);
}

const char *rt_cu_result_str(RtCuResult r, char *buf, size_t n) {
  const char *name = NULL, *text = NULL;
  if (rt_cu.GetErrorName && rt_cu.GetErrorName(r, &name) != RT_CUDA_SUCCESS) name = NULL;
  if (rt_cu.GetErrorString && rt_cu.GetErrorString(r, &text) != RT_CUDA_SUCCESS) text = NULL;
  if (name && text) snprintf(buf, n, "%s (%s)", name, text);
  else if (name) snprintf(buf, n, "%s", name);
  else snprintf(buf, n, "CUDA error %d", r);
  return buf;
}

/* The simulated driver's reason for the failure just reported (nothing
 * when the real driver is loaded). */
static void append_sim_detail(IrErr *err) {
  char why[1100];
  if (*rt_cuda_sim_take_detail(why, sizeof why)) err_append(err, " [simulated driver: %s]", why);
}

static int check_fail(const char *call, const char *status, const char *file, int line,
                      const char *what, IrErr *err) {
  if (what && *what)
    ir_errf(err, "%s failed: %s at %s:%d (%s)", call, status, src_path(file), line, what);
  else
    ir_errf(err, "%s failed: %s at %s:%d", call, status, src_path(file), line);
  append_sim_detail(err);
  return -1;
}

int rt_cu_check(RtCuResult r, const char *call, const char *file, int line, const char *what,
                IrErr *err) {
  if (r == RT_CUDA_SUCCESS) return 0;
  char status[256];
  return check_fail(call, rt_cu_result_str(r, status, sizeof status), file, line, what, err);
}

int rt_lt_check(RtLtStatus s, const char *call, const char *file, int line, const char *what,
                IrErr *err) {
  if (s == 0) return 0; /* CUBLAS_STATUS_SUCCESS */
  const char *name = rt_lt.GetStatusName ? rt_lt.GetStatusName(s) : NULL;
  const char *text = rt_lt.GetStatusString ? rt_lt.GetStatusString(s) : NULL;
  char status[256];
  if (name && text) snprintf(status, sizeof status, "%s (%s)", name, text);
  else if (name) snprintf(status, sizeof status, "%s", name);
  else snprintf(status, sizeof status, "cuBLAS status %d", s);
  return check_fail(call, status, file, line, what, err);
}

/* ======================================================================== */
/* loading                                                                  */
/* ======================================================================== */

typedef struct {
  size_t off;              /* member of the table */
  const char *names[2];    /* tried in order: the versioned name, then an older one */
} Sym;

#define CU_SYM(m, ...) {offsetof(RtCudaApi, m), {__VA_ARGS__}}
static const Sym CU_SYMS[] = {
    CU_SYM(Init, "cuInit"),
    CU_SYM(DriverGetVersion, "cuDriverGetVersion"),
    CU_SYM(GetErrorName, "cuGetErrorName"),
    CU_SYM(GetErrorString, "cuGetErrorString"),
    CU_SYM(DeviceGet, "cuDeviceGet"),
    CU_SYM(DeviceGetCount, "cuDeviceGetCount"),
    CU_SYM(DeviceGetName, "cuDeviceGetName"),
    CU_SYM(DeviceGetAttribute, "cuDeviceGetAttribute"),
    CU_SYM(DeviceTotalMem, "cuDeviceTotalMem_v2"),
    CU_SYM(DevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain"),
    CU_SYM(DevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2", "cuDevicePrimaryCtxRelease"),
    CU_SYM(CtxSetCurrent, "cuCtxSetCurrent"),
    CU_SYM(CtxGetCurrent, "cuCtxGetCurrent"),
    CU_SYM(CtxSynchronize, "cuCtxSynchronize"),
    CU_SYM(ModuleLoadDataEx, "cuModuleLoadDataEx"),
    CU_SYM(ModuleUnload, "cuModuleUnload"),
    CU_SYM(ModuleGetFunction, "cuModuleGetFunction"),
    CU_SYM(FuncSetAttribute, "cuFuncSetAttribute"),
    CU_SYM(LaunchKernel, "cuLaunchKernel"),
    CU_SYM(MemAlloc, "cuMemAlloc_v2"),
    CU_SYM(MemFree, "cuMemFree_v2"),
    CU_SYM(MemGetInfo, "cuMemGetInfo_v2"),
    CU_SYM(MemsetD8, "cuMemsetD8_v2"),
    CU_SYM(MemsetD8Async, "cuMemsetD8Async"),
    CU_SYM(MemsetD32, "cuMemsetD32_v2"),
    CU_SYM(MemsetD32Async, "cuMemsetD32Async"),
    CU_SYM(MemcpyHtoD, "cuMemcpyHtoD_v2"),
    CU_SYM(MemcpyDtoH, "cuMemcpyDtoH_v2"),
    CU_SYM(MemcpyDtoD, "cuMemcpyDtoD_v2"),
    CU_SYM(MemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2"),
    CU_SYM(MemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2"),
    CU_SYM(MemcpyDtoDAsync, "cuMemcpyDtoDAsync_v2"),
    CU_SYM(StreamCreate, "cuStreamCreate"),
    CU_SYM(StreamDestroy, "cuStreamDestroy_v2"),
    CU_SYM(StreamSynchronize, "cuStreamSynchronize"),
    CU_SYM(EventCreate, "cuEventCreate"),
    CU_SYM(EventDestroy, "cuEventDestroy_v2"),
    CU_SYM(EventRecord, "cuEventRecord"),
    CU_SYM(EventSynchronize, "cuEventSynchronize"),
    /* _v2 arrived in CUDA 12.8 (and is what 13's cuda.h means); same signature */
    CU_SYM(EventElapsedTime, "cuEventElapsedTime_v2", "cuEventElapsedTime"),
    CU_SYM(StreamBeginCapture, "cuStreamBeginCapture_v2"),
    CU_SYM(StreamEndCapture, "cuStreamEndCapture"),
    CU_SYM(GraphInstantiateWithFlags, "cuGraphInstantiateWithFlags"),
    CU_SYM(GraphLaunch, "cuGraphLaunch"),
    CU_SYM(GraphDestroy, "cuGraphDestroy"),
    CU_SYM(GraphExecDestroy, "cuGraphExecDestroy"),
};

#define LT_SYM(m, name) {offsetof(RtLtApi, m), {name, NULL}}
static const Sym LT_SYMS[] = {
    LT_SYM(Create, "cublasLtCreate"),
    LT_SYM(Destroy, "cublasLtDestroy"),
    LT_SYM(GetStatusName, "cublasLtGetStatusName"),
    LT_SYM(GetStatusString, "cublasLtGetStatusString"),
    LT_SYM(GetVersion, "cublasLtGetVersion"),
    LT_SYM(GetCudartVersion, "cublasLtGetCudartVersion"),
    LT_SYM(MatmulDescCreate, "cublasLtMatmulDescCreate"),
    LT_SYM(MatmulDescDestroy, "cublasLtMatmulDescDestroy"),
    LT_SYM(MatmulDescSetAttribute, "cublasLtMatmulDescSetAttribute"),
    LT_SYM(MatrixLayoutCreate, "cublasLtMatrixLayoutCreate"),
    LT_SYM(MatrixLayoutDestroy, "cublasLtMatrixLayoutDestroy"),
    LT_SYM(MatrixLayoutSetAttribute, "cublasLtMatrixLayoutSetAttribute"),
    LT_SYM(MatmulPreferenceCreate, "cublasLtMatmulPreferenceCreate"),
    LT_SYM(MatmulPreferenceDestroy, "cublasLtMatmulPreferenceDestroy"),
    LT_SYM(MatmulPreferenceSetAttribute, "cublasLtMatmulPreferenceSetAttribute"),
    LT_SYM(MatmulAlgoGetHeuristic, "cublasLtMatmulAlgoGetHeuristic"),
    LT_SYM(Matmul, "cublasLtMatmul"),
};

/* Fill a table from lib; on a missing symbol name it in *missing. */
static int resolve(void *lib, void *table, const Sym *syms, size_t n, const char **missing) {
  for (size_t i = 0; i < n; i++) {
    void *p = NULL;
    for (int j = 0; j < 2 && !p && syms[i].names[j]; j++) p = dlsym(lib, syms[i].names[j]);
    if (!p) {
      *missing = syms[i].names[0];
      return -1;
    }
    /* POSIX guarantees object and function pointers share a representation. */
    memcpy((char *)table + syms[i].off, &p, sizeof p);
  }
  return 0;
}

/* Where the dynamic loader found lib (the name itself if it cannot say). */
static void lib_path(void *lib, const char *name, char *buf, size_t n) {
  struct link_map *lm = NULL;
  if (!dlinfo(lib, RTLD_DI_LINKMAP, &lm) && lm && lm->l_name && lm->l_name[0])
    snprintf(buf, n, "%s", lm->l_name);
  else
    snprintf(buf, n, "%s", name);
}

/* The toolkit's link stub lives in .../lib64/stubs/ (also behind symlinks). */
static int is_stub(const char *path) {
  char real[PATH_MAX];
  if (strstr(path, "/stubs/")) return 1;
  return realpath(path, real) && strstr(real, "/stubs/");
}

static int driver_init(const char *path, IrErr *err);

static pthread_once_t cu_once = PTHREAD_ONCE_INIT;
static int cu_status = -1;
static IrErr cu_err;
static char cu_path[PATH_MAX];
static int cu_driver_version;

static int cu_load(IrErr *err) {
  const char *env = getenv("DITC_LIBCUDA");
  const char *name;
  void *lib;
  char path[PATH_MAX];
  if (cg_cuda_sim_requested()) { /* everything above the table stays the real code */
    rt_cuda_sim_driver(&rt_cu);
    snprintf(path, sizeof path, "%s", rt_cuda_sim_path());
    return driver_init(path, err);
  }
  if (env && *env) {
    name = env;
    if (!(lib = dlopen(env, RTLD_NOW | RTLD_LOCAL)))
      return ir_errf(err, "no NVIDIA driver: DITC_LIBCUDA=%s cannot be loaded: %s", env, dlerror());
  } else {
    name = "libcuda.so.1";
    if (!(lib = dlopen(name, RTLD_NOW | RTLD_LOCAL))) {
      name = "libcuda.so";
      lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    }
    if (!lib) return ir_errf(err, NO_DRIVER_MSG);
  }
  lib_path(lib, name, path, sizeof path);
  if (is_stub(path)) {
    dlclose(lib);
    if (env && *env)
      return ir_errf(err, "no NVIDIA driver: DITC_LIBCUDA=%s is the CUDA toolkit's link stub, "
                     "not the driver; refusing it", path);
    if (!strcmp(name, "libcuda.so"))
      return ir_errf(err, NO_DRIVER_MSG "; refusing %s: it is the CUDA toolkit's link stub, not "
                     "the driver (take its folder off LD_LIBRARY_PATH)", path);
    return ir_errf(err, "no NVIDIA driver: %s is the CUDA toolkit's link stub, not the driver; "
                   "refusing it", path);
  }
  const char *missing = NULL;
  if (resolve(lib, &rt_cu, CU_SYMS, sizeof CU_SYMS / sizeof CU_SYMS[0], &missing)) {
    memset(&rt_cu, 0, sizeof rt_cu);
    dlclose(lib);
    return ir_errf(err, "the NVIDIA driver %s has no %s: it is older than CUDA 11.4; update the "
                   "driver", path, missing);
  }
  /* From here the driver may have started threads: keep it mapped even on failure. */
  return driver_init(path, err);
}

/* cuInit and the version, through the filled table. */
static int driver_init(const char *path, IrErr *err) {
  RtCuResult r = rt_cu.Init(0);
  if (r != RT_CUDA_SUCCESS) {
    const char *cvd = getenv("CUDA_VISIBLE_DEVICES");
    if (r == RT_CUDA_ERROR_NO_DEVICE && cvd)
      ir_errf(err, "no CUDA device found (CUDA_VISIBLE_DEVICES=%s)", cvd);
    else if (r == RT_CUDA_ERROR_NO_DEVICE)
      ir_errf(err, "no CUDA device found"), append_sim_detail(err);
    else if (r == RT_CUDA_ERROR_STUB_LIBRARY)
      ir_errf(err, "no NVIDIA driver: %s is the CUDA toolkit's link stub, not the driver", path);
    else
      rt_cu_check(r, "cuInit", __FILE__, __LINE__, path, err);
    memset(&rt_cu, 0, sizeof rt_cu);
    return -1;
  }
  if (RT_CU(err, path, DriverGetVersion, &cu_driver_version)) {
    memset(&rt_cu, 0, sizeof rt_cu);
    return -1;
  }
  snprintf(cu_path, sizeof cu_path, "%s", path);
  return 0;
}

static void cu_load_once(void) {
  cu_status = cu_load(&cu_err);
}

int rt_cuda_load(IrErr *err) {
  pthread_once(&cu_once, cu_load_once);
  if (cu_status) return ir_errf(err, "%s", cu_err.msg);
  return 0;
}

const char *rt_cuda_library_path(void) {
  return cu_path;
}

int rt_cuda_available(IrErr *why) {
  int n = 0;
  if (rt_cuda_load(why) || RT_CU(why, NULL, DeviceGetCount, &n)) return 0;
  if (n < 1) {
    ir_errf(why, "no CUDA device found");
    return 0;
  }
  return 1;
}

static pthread_once_t lt_once = PTHREAD_ONCE_INIT;
static int lt_status = -1;
static IrErr lt_err;

static int lt_load(IrErr *err) {
  /* 12 and 13 agree on every call and struct used here */
  static const char *const names[] = {"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"};
  const char *name = NULL;
  void *lib = NULL;
  if (cg_cuda_sim_requested()) {
    rt_cuda_sim_blas(&rt_lt);
    return 0;
  }
  for (size_t i = 0; i < sizeof names / sizeof names[0] && !lib; i++)
    lib = dlopen(name = names[i], RTLD_NOW | RTLD_LOCAL);
  if (!lib)
    return ir_errf(err, "cuBLASLt not found: libcublasLt.so.13 is not on the library path (it "
                   "comes with the CUDA 13 toolkit)");
  const char *missing = NULL;
  if (resolve(lib, &rt_lt, LT_SYMS, sizeof LT_SYMS / sizeof LT_SYMS[0], &missing)) {
    char path[PATH_MAX];
    lib_path(lib, name, path, sizeof path);
    memset(&rt_lt, 0, sizeof rt_lt);
    dlclose(lib);
    return ir_errf(err, "cuBLASLt %s has no %s: it is too old", path, missing);
  }
  return 0;
}

static void lt_load_once(void) {
  lt_status = lt_load(&lt_err);
}

int rt_blas_load(IrErr *err) {
  pthread_once(&lt_once, lt_load_once);
  if (lt_status) return ir_errf(err, "%s", lt_err.msg);
  return 0;
}

size_t rt_blas_version(void) {
  return rt_blas_load(NULL) ? 0 : rt_lt.GetVersion();
}

/* ======================================================================== */
/* devices, modules, graphs, timing                                         */
/* ======================================================================== */

int rt_cuda_device_open(int ordinal, RtCudaDevice *d, IrErr *err) {
  memset(d, 0, sizeof *d);
  d->ordinal = ordinal;
  int count = 0;
  if (rt_cuda_load(err) || RT_CU(err, NULL, DeviceGetCount, &count)) return -1;
  if (count < 1) return ir_errf(err, "no CUDA device found");
  if (ordinal < 0 || ordinal >= count)
    return ir_errf(err, "CUDA device %d does not exist (this machine has %d)", ordinal, count);
  char what[64];
  snprintf(what, sizeof what, "device %d", ordinal);
  if (RT_CU(err, what, DeviceGet, &d->dev, ordinal) ||
      RT_CU(err, what, DeviceGetName, d->name, (int)sizeof d->name - 1, d->dev) ||
      RT_CU(err, what, DeviceGetAttribute, &d->cc_major,
            RT_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, d->dev) ||
      RT_CU(err, what, DeviceGetAttribute, &d->cc_minor,
            RT_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, d->dev) ||
      RT_CU(err, what, DeviceGetAttribute, &d->sm_count,
            RT_CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, d->dev) ||
      RT_CU(err, what, DeviceGetAttribute, &d->smem_optin,
            RT_CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, d->dev) ||
      RT_CU(err, what, DeviceTotalMem, &d->total_mem, d->dev))
    return -1;
  d->driver_version = cu_driver_version;
  if (RT_CU(err, what, DevicePrimaryCtxRetain, &d->ctx, d->dev)) {
    d->ctx = NULL;
    return -1;
  }
  if (RT_CU(err, what, CtxSetCurrent, d->ctx)) {
    rt_cuda_device_close(d);
    return -1;
  }
  return 0;
}

int rt_cuda_device_bind(const RtCudaDevice *d, IrErr *err) {
  if (!d->ctx) return ir_errf(err, "CUDA device %d is not open", d->ordinal);
  return RT_CU(err, NULL, CtxSetCurrent, d->ctx);
}

void rt_cuda_device_close(RtCudaDevice *d) {
  if (d->ctx && rt_cu.DevicePrimaryCtxRelease) rt_cu.DevicePrimaryCtxRelease(d->dev);
  d->ctx = NULL;
}

char *rt_cuda_device_str(const RtCudaDevice *d, char *buf, size_t n) {
  snprintf(buf, n, "%s (sm_%d%d, %d SMs, %.1f GiB, driver CUDA %d.%d)", d->name, d->cc_major,
           d->cc_minor, d->sm_count, (double)d->total_mem / (1024.0 * 1024.0 * 1024.0),
           d->driver_version / 1000, d->driver_version % 1000 / 10);
  return buf;
}

int rt_cuda_module_load(const void *image, const char *what, CUmodule *out, IrErr *err) {
  *out = NULL;
  if (rt_cuda_load(err)) return -1;
  /* The JIT writes its error log here; the size option comes back as the bytes used. */
  char jit_log[4096] = "";
  int opts[] = {RT_CU_JIT_ERROR_LOG_BUFFER, RT_CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
  void *vals[] = {jit_log, (void *)(uintptr_t)sizeof jit_log};
  RtCuResult r = rt_cu.ModuleLoadDataEx(out, image, 2, opts, vals);
  if (r == RT_CUDA_SUCCESS) return 0;
  *out = NULL;
  rt_cu_check(r, "cuModuleLoadDataEx", __FILE__, __LINE__, what, err);
  jit_log[sizeof jit_log - 1] = 0;
  size_t len = strlen(jit_log);
  while (len && (jit_log[len - 1] == '\n' || jit_log[len - 1] == ' ')) jit_log[--len] = 0;
  if (len) err_append(err, "\nJIT log: %s", jit_log);
  return -1;
}

int rt_cuda_capture_begin(CUstream s, IrErr *err) {
  if (rt_cuda_load(err)) return -1;
  if (!s) return ir_errf(err, "graph capture needs a created stream, not the default stream");
  return RT_CU(err, "graph capture", StreamBeginCapture, s, RT_CU_STREAM_CAPTURE_MODE_RELAXED);
}

int rt_cuda_capture_end(CUstream s, CUgraphExec *out, IrErr *err) {
  *out = NULL;
  if (rt_cuda_load(err)) return -1;
  CUgraph g = NULL;
  if (RT_CU(err, "graph capture", StreamEndCapture, s, &g)) {
    if (g) rt_cu.GraphDestroy(g);
    return -1;
  }
  int rc = RT_CU(err, "graph capture", GraphInstantiateWithFlags, out, g, 0);
  rt_cu.GraphDestroy(g);
  if (rc) *out = NULL;
  return rc;
}

int rt_cuda_timer_init(RtCudaTimer *t, IrErr *err) {
  t->start = t->stop = NULL;
  if (rt_cuda_load(err)) return -1;
  if (RT_CU(err, "timer", EventCreate, &t->start, RT_CU_EVENT_DEFAULT) ||
      RT_CU(err, "timer", EventCreate, &t->stop, RT_CU_EVENT_DEFAULT)) {
    rt_cuda_timer_free(t);
    return -1;
  }
  return 0;
}

int rt_cuda_timer_start(RtCudaTimer *t, CUstream s, IrErr *err) {
  return RT_CU(err, "timer", EventRecord, t->start, s);
}

int rt_cuda_timer_stop(RtCudaTimer *t, CUstream s, float *ms, IrErr *err) {
  *ms = 0;
  return RT_CU(err, "timer", EventRecord, t->stop, s) ||
                 RT_CU(err, "timer", EventSynchronize, t->stop) ||
                 RT_CU(err, "timer", EventElapsedTime, ms, t->start, t->stop)
             ? -1
             : 0;
}

void rt_cuda_timer_free(RtCudaTimer *t) {
  if (t->start && rt_cu.EventDestroy) rt_cu.EventDestroy(t->start);
  if (t->stop && rt_cu.EventDestroy) rt_cu.EventDestroy(t->stop);
  t->start = t->stop = NULL;
}

/* ======================================================================== */
/* cuBLASLt matmuls                                                         */
/* ======================================================================== */

/* cublasLt.h / library_types.h values */
enum {
  LT_COMPUTE_32F = 68,   /* CUBLAS_COMPUTE_32F: full fp32, not _FAST_TF32 (77) */
  LT_COMPUTE_32I = 72,   /* CUBLAS_COMPUTE_32I: int8 products summed in int32 (IMMA) */
  LT_R_8I = 3,           /* CUDA_R_8I */
  LT_R_8F_E4M3 = 28,     /* CUDA_R_8F_E4M3 */
  LT_R_32I = 10,         /* CUDA_R_32I */
  LT_R_32F = 0,          /* CUDA_R_32F */
  LT_R_16F = 2,          /* CUDA_R_16F */
  LT_R_16BF = 14,        /* CUDA_R_16BF */
  LT_OP_N = 0,
  LT_OP_T = 1,
  LT_DESC_TRANSA = 3,    /* int32_t */
  LT_DESC_TRANSB = 4,    /* int32_t */
  LT_DESC_EPILOGUE = 7,  /* uint32_t */
  LT_DESC_BIAS_POINTER = 8, /* const void * */
  LT_EPI_DEFAULT = 1,
  LT_EPI_BIAS = 4,
  LT_EPI_GELU_BIAS = 36, /* GELU (32) | BIAS (4); GELU is the tanh approximation */
  LT_LAYOUT_BATCH_COUNT = 5,           /* int32_t */
  LT_LAYOUT_STRIDED_BATCH_OFFSET = 6,  /* int64_t */
  LT_PREF_MAX_WORKSPACE_BYTES = 1,     /* uint64_t */
  LT_PREF_MIN_ALIGNMENT_A = 5,         /* uint32_t, then B, C, D */
};

/* cuBLAS's advice for Hopper; smaller GPUs need less, but this is cheap. */
#define WORKSPACE_BYTES ((size_t)32 << 20)

struct RtBlas {
  RtLtHandle h;
  CUdeviceptr ws;
  size_t ws_size;
  RtBlasPlan **cache;
  int n_cache, cap_cache;
};

struct RtBlasPlan {
  RtBlasMatmulDesc desc; /* normalised: defaults filled in */
  RtBlasColMajor cm;
  RtLtDesc op, la, lb, ld, pref;
  RtLtAlgo algo;
  int has_algo;
  size_t ws_need;
};

static int lt_dtype(IrDType t) {
  switch (t) {
  case IR_F32: return LT_R_32F;
  case IR_F16: return LT_R_16F;
  case IR_BF16: return LT_R_16BF;
  case IR_I8: return LT_R_8I;
  case IR_E4M3: return LT_R_8F_E4M3;
  default: return -1;
  }
}

/* Fill defaults and check a desc; *n is the normalised copy. */
static int desc_norm(const RtBlasMatmulDesc *d, RtBlasMatmulDesc *n, IrErr *err) {
  memset(n, 0, sizeof *n);
  n->dtype = d->dtype;
  n->m = d->m, n->n = d->n, n->k = d->k;
  n->trans_a = d->trans_a != 0, n->trans_b = d->trans_b != 0;
  n->batch = d->batch ? d->batch : 1;
  n->epilogue = d->epilogue;
  n->align = d->align ? d->align : 256;
  n->d_f32 = d->d_f32 && d->dtype != IR_F32; /* f32 operands: f32 already */
  if (lt_dtype(d->dtype) < 0)
    return ir_errf(err, "matmul: cuBLASLt runs f32, f16, bf16, i8 or e4m3, not %s", ir_dtype_name(d->dtype));
  if (d->dtype == IR_E4M3 && (d->epilogue != RT_BLAS_EPI_NONE || !d->d_f32 || !(!d->trans_a && d->trans_b)))
    return ir_errf(err, "matmul: the e4m3 matmul runs A [m, k] by B [n, k] rows (cuBLASLt's FP8 TN form) into an f32 "
                   "result without an epilogue");
  if (d->dtype == IR_I8 && (d->epilogue != RT_BLAS_EPI_NONE || d->d_f32 || !(!d->trans_a && d->trans_b)))
    return ir_errf(err, "matmul: the i8 matmul (int32 result) runs A [m, k] by B [n, k] rows (cuBLASLt's TN form) "
                   "without an epilogue");
  if (d->m < 1 || d->n < 1 || d->k < 1 || d->m > INT32_MAX || d->n > INT32_MAX ||
      d->k > INT32_MAX)
    return ir_errf(err, "matmul: bad size m=%lld n=%lld k=%lld", (long long)d->m,
                   (long long)d->n, (long long)d->k);
  if (n->batch < 1 || n->batch > INT32_MAX)
    return ir_errf(err, "matmul: bad batch count %lld", (long long)d->batch);
  if ((unsigned)d->epilogue > RT_BLAS_EPI_GELU_TANH_BIAS)
    return ir_errf(err, "matmul: unknown epilogue %d", (int)d->epilogue);
  size_t es = n->d_f32 || d->dtype == IR_I8 ? 4 : ir_dtype_size(d->dtype); /* the widest element (i8: its i32 D) */
  if (n->align & (n->align - 1) || n->align < es)
    return ir_errf(err, "matmul: alignment %u is not a power of two >= %zu", n->align, es);
  /* row lengths of the stored (row-major) A (m x k or k x m) and B (k x n or n x k) */
  int64_t a_cols = n->trans_a ? n->m : n->k;
  int64_t b_cols = n->trans_b ? n->k : n->n;
  n->lda = d->lda ? d->lda : a_cols;
  n->ldb = d->ldb ? d->ldb : b_cols;
  n->ldd = d->ldd ? d->ldd : n->n;
  if (n->lda < a_cols || n->ldb < b_cols || n->ldd < n->n)
    return ir_errf(err, "matmul: row strides lda=%lld ldb=%lld ldd=%lld are below the rows' "
                   "lengths %lld, %lld, %lld", (long long)n->lda, (long long)n->ldb,
                   (long long)n->ldd, (long long)a_cols, (long long)b_cols, (long long)n->n);
  if (n->batch > 1) {
    n->stride_a = d->stride_a, n->stride_b = d->stride_b, n->stride_d = d->stride_d;
    int64_t d_size = (n->m - 1) * n->ldd + n->n;
    if (n->stride_a < 0 || n->stride_b < 0 || n->stride_d < d_size)
      return ir_errf(err, "matmul: batch strides a=%lld b=%lld d=%lld (d needs >= %lld)",
                     (long long)n->stride_a, (long long)n->stride_b, (long long)n->stride_d,
                     (long long)d_size);
  }
  return 0;
}

int rt_blas_colmajor(const RtBlasMatmulDesc *d, RtBlasColMajor *out, IrErr *err) {
  RtBlasMatmulDesc n;
  memset(out, 0, sizeof *out);
  if (desc_norm(d, &n, err)) return -1;
  /* D^T (n x m) = op(B)^T (n x k) . op(A)^T (k x m), all column-major */
  out->transa = n.trans_b, out->transb = n.trans_a;
  out->m = n.n, out->n = n.m, out->k = n.k;
  /* a row-major r x c matrix is a column-major c x r one */
  out->a_rows = n.trans_b ? n.k : n.n, out->a_cols = n.trans_b ? n.n : n.k;
  out->lda = n.ldb, out->stride_a = n.stride_b;
  out->b_rows = n.trans_a ? n.m : n.k, out->b_cols = n.trans_a ? n.k : n.m;
  out->ldb = n.lda, out->stride_b = n.stride_a;
  out->d_rows = n.n, out->d_cols = n.m, out->ldd = n.ldd, out->stride_d = n.stride_d;
  out->batch = n.batch;
  return 0;
}

static int desc_eq(const RtBlasMatmulDesc *a, const RtBlasMatmulDesc *b) {
  return a->dtype == b->dtype && a->m == b->m && a->n == b->n && a->k == b->k &&
         a->trans_a == b->trans_a && a->trans_b == b->trans_b && a->lda == b->lda &&
         a->ldb == b->ldb && a->ldd == b->ldd && a->batch == b->batch &&
         a->stride_a == b->stride_a && a->stride_b == b->stride_b &&
         a->stride_d == b->stride_d && a->epilogue == b->epilogue && a->align == b->align &&
         a->d_f32 == b->d_f32;
}

int rt_blas_init(RtBlas **out, IrErr *err) {
  *out = NULL;
  /* Without a driver cublasLtCreate only answers CUBLAS_STATUS_NOT_INITIALIZED;
   * say the real reason instead. */
  if (rt_cuda_load(err)) return -1;
  CUcontext cur = NULL;
  if (RT_CU(err, "cuBLASLt init", CtxGetCurrent, &cur)) return -1;
  if (!cur)
    return ir_errf(err, "cuBLASLt needs a current CUDA context: open the device first");
  if (rt_blas_load(err)) return -1;
  size_t need = rt_lt.GetCudartVersion();
  if ((size_t)cu_driver_version / 1000 < need / 1000)
    return ir_errf(err, "the NVIDIA driver supports CUDA %d.%d but cuBLASLt %zu needs CUDA "
                   "%zu.x; update the driver", cu_driver_version / 1000,
                   cu_driver_version % 1000 / 10, rt_lt.GetVersion(), need / 1000);
  RtBlas *b = xcalloc(1, sizeof *b);
  if (RT_LT(err, "cuBLASLt init", Create, &b->h)) {
    free(b);
    return -1;
  }
  b->ws_size = WORKSPACE_BYTES;
  if (RT_CU(err, "cuBLASLt workspace", MemAlloc, &b->ws, b->ws_size)) {
    rt_lt.Destroy(b->h);
    free(b);
    return -1;
  }
  *out = b;
  return 0;
}

void rt_blas_free(RtBlas *b) {
  if (!b) return;
  for (int i = 0; i < b->n_cache; i++) rt_blas_plan_free(b->cache[i]);
  free(b->cache);
  if (b->ws) rt_cu.MemFree(b->ws);
  if (b->h) rt_lt.Destroy(b->h);
  free(b);
}

void rt_blas_plan_free(RtBlasPlan *p) {
  if (!p) return;
  if (p->op) rt_lt.MatmulDescDestroy(p->op);
  if (p->la) rt_lt.MatrixLayoutDestroy(p->la);
  if (p->lb) rt_lt.MatrixLayoutDestroy(p->lb);
  if (p->ld) rt_lt.MatrixLayoutDestroy(p->ld);
  if (p->pref) rt_lt.MatmulPreferenceDestroy(p->pref);
  free(p);
}

size_t rt_blas_plan_workspace(const RtBlasPlan *p) {
  return p->ws_need;
}

static int layout_new(RtLtDesc *l, int type, int64_t rows, int64_t cols, int64_t ld,
                      int64_t batch, int64_t stride, const char *what, IrErr *err) {
  if (RT_LT(err, what, MatrixLayoutCreate, l, type, (uint64_t)rows, (uint64_t)cols, ld))
    return -1;
  if (batch == 1) return 0;
  int32_t count = (int32_t)batch;
  return RT_LT(err, what, MatrixLayoutSetAttribute, *l, LT_LAYOUT_BATCH_COUNT, &count,
               sizeof count) ||
                 RT_LT(err, what, MatrixLayoutSetAttribute, *l, LT_LAYOUT_STRIDED_BATCH_OFFSET,
                       &stride, sizeof stride)
             ? -1
             : 0;
}

static const char *desc_str(const RtBlasMatmulDesc *d, char *buf, size_t n) {
  static const char *epi[] = {"", " +bias", " +bias,gelu_tanh"};
  snprintf(buf, n, "%s%s %lldx%lldx%lld%s%s batch %lld%s", ir_dtype_name(d->dtype),
           d->dtype == IR_I8 ? "->i32" : d->d_f32 ? "->f32" : "",
           (long long)d->m, (long long)d->n, (long long)d->k, d->trans_a ? " A^T" : "",
           d->trans_b ? " B^T" : "", (long long)d->batch, epi[d->epilogue]);
  return buf;
}

int rt_blas_plan_describe(const RtBlasMatmulDesc *d, const char *what, RtBlasPlan **out,
                          IrErr *err) {
  *out = NULL;
  if (rt_blas_load(err)) return -1;
  RtBlasPlan *p = xcalloc(1, sizeof *p);
  if (desc_norm(d, &p->desc, err) || rt_blas_colmajor(d, &p->cm, err)) goto fail;
  const RtBlasColMajor *cm = &p->cm;
  int imma = p->desc.dtype == IR_I8;
  int type = lt_dtype(p->desc.dtype), d_type = imma ? LT_R_32I : p->desc.d_f32 ? LT_R_32F : type;
  int32_t ta = cm->transa ? LT_OP_T : LT_OP_N, tb = cm->transb ? LT_OP_T : LT_OP_N;
  uint32_t epi = p->desc.epilogue == RT_BLAS_EPI_BIAS           ? LT_EPI_BIAS
                 : p->desc.epilogue == RT_BLAS_EPI_GELU_TANH_BIAS ? LT_EPI_GELU_BIAS
                                                                 : LT_EPI_DEFAULT;
  if (RT_LT(err, what, MatmulDescCreate, &p->op, imma ? LT_COMPUTE_32I : LT_COMPUTE_32F, imma ? LT_R_32I : LT_R_32F) ||
      RT_LT(err, what, MatmulDescSetAttribute, p->op, LT_DESC_TRANSA, &ta, sizeof ta) ||
      RT_LT(err, what, MatmulDescSetAttribute, p->op, LT_DESC_TRANSB, &tb, sizeof tb) ||
      RT_LT(err, what, MatmulDescSetAttribute, p->op, LT_DESC_EPILOGUE, &epi, sizeof epi))
    goto fail;
  if (p->desc.epilogue != RT_BLAS_EPI_NONE) {
    /* The heuristic reads the bias pointer only for its alignment: stand in
     * with one aligned exactly as promised; each run sets the real one. */
    const void *bias = (const void *)(uintptr_t)p->desc.align;
    if (RT_LT(err, what, MatmulDescSetAttribute, p->op, LT_DESC_BIAS_POINTER, &bias, sizeof bias))
      goto fail;
  }
  if (layout_new(&p->la, type, cm->a_rows, cm->a_cols, cm->lda, cm->batch, cm->stride_a, what,
                 err) ||
      layout_new(&p->lb, type, cm->b_rows, cm->b_cols, cm->ldb, cm->batch, cm->stride_b, what,
                 err) ||
      layout_new(&p->ld, d_type, cm->d_rows, cm->d_cols, cm->ldd, cm->batch, cm->stride_d, what,
                 err))
    goto fail;
  uint64_t ws = WORKSPACE_BYTES;
  uint32_t align = p->desc.align;
  if (RT_LT(err, what, MatmulPreferenceCreate, &p->pref) ||
      RT_LT(err, what, MatmulPreferenceSetAttribute, p->pref, LT_PREF_MAX_WORKSPACE_BYTES, &ws,
            sizeof ws))
    goto fail;
  for (int i = 0; i < 4; i++) /* A, B, C, D */
    if (RT_LT(err, what, MatmulPreferenceSetAttribute, p->pref, LT_PREF_MIN_ALIGNMENT_A + i,
              &align, sizeof align))
      goto fail;
  *out = p;
  return 0;
fail:
  rt_blas_plan_free(p);
  return -1;
}

int rt_blas_plan_new(RtBlas *b, const RtBlasMatmulDesc *d, const char *what, RtBlasPlan **out,
                     IrErr *err) {
  RtBlasPlan *p;
  if (rt_blas_plan_describe(d, what, &p, err)) return -1;
  *out = NULL;
  RtLtHeuristic res;
  int found = 0;
  memset(&res, 0, sizeof res);
  /* C shares D's layout: C may be D itself (in place) */
  if (RT_LT(err, what, MatmulAlgoGetHeuristic, b->h, p->op, p->la, p->lb, p->ld, p->ld, p->pref,
            1, &res, &found)) {
    rt_blas_plan_free(p);
    return -1;
  }
  if (found < 1 || res.state != 0) {
    char ds[160];
    ir_errf(err, "cuBLASLt has no algorithm for the matmul %s%s%s%s",
            desc_str(&p->desc, ds, sizeof ds), what ? " (" : "", what ? what : "", what ? ")" : "");
    rt_blas_plan_free(p);
    return -1;
  }
  p->algo = res.algo;
  p->ws_need = res.workspace_size;
  p->has_algo = 1;
  *out = p;
  return 0;
}

int rt_blas_plan_run(RtBlas *b, RtBlasPlan *p, float alpha, CUdeviceptr A, CUdeviceptr B,
                     float beta, CUdeviceptr C, CUdeviceptr D, CUdeviceptr bias, CUstream s,
                     const char *what, IrErr *err) {
  const char *w = what ? what : "matmul";
  if (!p->has_algo) return ir_errf(err, "%s: the matmul plan has no algorithm (describe only)", w);
  if (!C) {
    if (beta != 0.0f) return ir_errf(err, "%s: beta is %g but there is no C", w, (double)beta);
    C = D; /* not read when beta is 0, but cuBLASLt wants a pointer */
  }
  CUdeviceptr ptrs[] = {A, B, C, D, bias};
  const char *names[] = {"A", "B", "C", "D", "bias"};
  int has_bias = p->desc.epilogue != RT_BLAS_EPI_NONE;
  for (int i = 0; i < 4 + has_bias; i++) {
    if (!ptrs[i]) return ir_errf(err, "%s: matmul %s pointer is NULL", w, names[i]);
    if (ptrs[i] % p->desc.align)
      return ir_errf(err, "%s: matmul %s pointer 0x%llx is not %u-byte aligned as the plan says",
                     w, names[i], ptrs[i], p->desc.align);
  }
  if (has_bias) {
    const void *bp = (const void *)(uintptr_t)bias;
    if (RT_LT(err, what, MatmulDescSetAttribute, p->op, LT_DESC_BIAS_POINTER, &bp, sizeof bp))
      return -1;
  }
  /* the scale type's alpha and beta: int32 for the i8 matmul */
  int32_t ialpha = (int32_t)alpha, ibeta = (int32_t)beta;
  int imma = p->desc.dtype == IR_I8;
  if (imma && ((float)ialpha != alpha || (float)ibeta != beta))
    return ir_errf(err, "%s: the i8 matmul takes integer alpha and beta, not %g and %g", w, (double)alpha, (double)beta);
  const void *pa = imma ? (const void *)&ialpha : (const void *)&alpha, *pb = imma ? (const void *)&ibeta : (const void *)&beta;
  /* cuBLASLt's A is our B and its B our A (see cuda_api.h) */
  return RT_LT(err, what, Matmul, b->h, p->op, pa, (const void *)(uintptr_t)B, p->la,
               (const void *)(uintptr_t)A, p->lb, pb, (const void *)(uintptr_t)C, p->ld,
               (void *)(uintptr_t)D, p->ld, &p->algo, (void *)(uintptr_t)b->ws, b->ws_size, s);
}

int rt_blas_matmul(RtBlas *b, const RtBlasMatmulDesc *d, float alpha, CUdeviceptr A,
                   CUdeviceptr B, float beta, CUdeviceptr C, CUdeviceptr D, CUdeviceptr bias,
                   CUstream s, const char *what, IrErr *err) {
  RtBlasMatmulDesc key;
  if (desc_norm(d, &key, err)) return -1;
  RtBlasPlan *p = NULL;
  for (int i = 0; i < b->n_cache && !p; i++)
    if (desc_eq(&b->cache[i]->desc, &key)) p = b->cache[i];
  if (!p) {
    if (rt_blas_plan_new(b, d, what, &p, err)) return -1;
    if (b->n_cache == b->cap_cache) {
      b->cap_cache = b->cap_cache ? 2 * b->cap_cache : 16;
      b->cache = xrealloc(b->cache, (size_t)b->cap_cache * sizeof *b->cache);
    }
    b->cache[b->n_cache++] = p;
  }
  return rt_blas_plan_run(b, p, alpha, A, B, beta, C, D, bias, s, what, err);
}
