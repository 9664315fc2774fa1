/*
 * test_cuda_sim.c - the simulated CUDA driver and cuBLASLt (DITC_CUDA_SIM=1,
 * runtime/cuda_sim*.c) through cuda_api.h's tables, as the backend uses
 * them: the device it reports (sm_90 by default, sm_80 in a child run with
 * DITC_CUDA_SIM_ARCH), and each class of error a driver rejects, each with
 * the CUresult a GPU gives - a block over the kernel's launch bounds or the
 * device's limits, shared memory over the 48 KiB default and over the
 * architecture's opt-in limit, a misaligned pointer, a device address
 * outside every allocation (sticky, as a fault is), a use after free, a
 * graph replayed after the memory it was captured with was freed, an image
 * it cannot map to a source, an image for another architecture.  cuBLASLt's
 * descriptors are checked against a plain product written from the
 * documentation's definition (orders, transposes, leading dimensions,
 * batches with strides, epilogues with bias, alpha and beta with C, the
 * data and compute types, int8 and FP8 with scales), and the cuda backend
 * itself runs a hand-made plan (a GEMM and a kernel) on it, through its CUDA
 * graph.  The kernel tests need NVRTC to make CUBINs and are skipped
 * without it; the cuBLASLt tests need nothing.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "codegen/emu.h"
#include "codegen/nvrtc.h"
#include "ir/scalar.h"
#include "runtime/backend.h"
#include "runtime/cuda_api.h"
#include "testutil.h"
#include "tiny_plan.h"

/* ---- kernels ---------------------------------------------------------------- */

static const char KERNELS[] =
    "typedef struct { float *x; int n; } KScale;\n"
    "/* x = 2x + 1 */\n"
    "DITC_KERNEL_BOUNDS(k_scale, KScale, p, 128) {\n"
    "  int i = (int)(blockIdx.x * blockDim.x + threadIdx.x);\n"
    "  if (i < p.n) p.x[i] = p.x[i] * 2.0f + 1.0f;\n"
    "}\n"
    "typedef struct { float *x; int n; } KRev;\n"
    "/* x reversed through dynamic shared memory: one block of n threads */\n"
    "DITC_KERNEL(k_rev, KRev, p) {\n"
    "  DITC_DYN_SHARED(float, buf);\n"
    "  int i = (int)threadIdx.x;\n"
    "  if (i < p.n) buf[i] = p.x[i];\n"
    "  __syncthreads();\n"
    "  if (i < p.n) p.x[i] = buf[p.n - 1 - i];\n"
    "}\n";

typedef struct {
  float *x;
  int n;
} KParams;

/* KERNELS compiled for arch by NVRTC (which notes it for the simulation);
 * NULL with why when NVRTC is not here. */
static unsigned char *compile(const char *source, const char *arch, size_t *size, char *why, size_t n) {
  IrErr err;
  CgNvrtc *nv = cg_nvrtc_open(NULL, &err);
  if (!nv) {
    snprintf(why, n, "%.1000s", err.msg);
    return NULL;
  }
  char inc[1100], cuda_inc[1100];
  const char *opts[3];
  tu_nvrtc_dialect_options(inc, cuda_inc, sizeof inc, opts);
  CgCompiled c;
  if (cg_nvrtc_compile(nv, source, "test_cuda_sim.cu", arch, opts, 3, CG_OUT_CUBIN, &c, &err))
    fail_msg("%s", err.msg);
  unsigned char *cubin = c.cubin;
  *size = c.cubin_size;
  c.cubin = NULL;
  cg_compiled_free(&c);
  cg_nvrtc_close(nv);
  return cubin;
}

static unsigned char *sm90_cubin;
static size_t sm90_size;

#define NEED_CUBIN()                                                                            \
  do {                                                                                          \
    char why_[1200];                                                                            \
    if (!sm90_cubin && !(sm90_cubin = compile(KERNELS, "sm_90", &sm90_size, why_, sizeof why_))) \
      TU_SKIP(why_);                                                                            \
  } while (0)

/* ---- the device ----------------------------------------------------------------- */

static RtCudaDevice dev;

static void dev_open(void) {
  IrErr err;
  if (rt_cuda_device_open(0, &dev, &err)) fail_msg("%s", err.msg);
}

/* Releasing the primary context destroys it: every allocation, module and
 * stream, and a fault's sticky error. */
static void dev_close(void) { rt_cuda_device_close(&dev); }

/* After every test: a test that failed half way leaves nothing open for the next. */
static int close_device(void **state) {
  (void)state;
  if (dev.ctx) dev_close();
  return 0;
}

static CUdeviceptr dalloc(size_t n) {
  CUdeviceptr p = 0;
  IrErr err;
  if (RT_CU(&err, "test", MemAlloc, &p, n)) fail_msg("%s", err.msg);
  return p;
}

/* Open the device and load the kernels (the module goes with the context). */
static CUmodule open_with_kernels(CUfunction *scale, CUfunction *rev) {
  IrErr err;
  CUmodule m;
  dev_open();
  if (rt_cuda_module_load(sm90_cubin, "test kernels", &m, &err)) fail_msg("%s", err.msg);
  if (RT_CU(&err, "k_scale", ModuleGetFunction, scale, m, "k_scale")) fail_msg("%s", err.msg);
  if (rev && RT_CU(&err, "k_rev", ModuleGetFunction, rev, m, "k_rev")) fail_msg("%s", err.msg);
  return m;
}

/* cuLaunchKernel of f on KParams {x, n}; the checking macro's message in err. */
static int launch(CUfunction f, unsigned grid, unsigned block, unsigned smem, CUstream s, CUdeviceptr x, int n,
                  IrErr *err) {
  KParams p = {(float *)(uintptr_t)x, n};
  void *argv[] = {&p};
  return RT_CU(err, "test launch", LaunchKernel, f, grid, 1, 1, block, 1, 1, smem, s, argv, NULL);
}

static void has(const char *msg, const char *part) {
  if (!strstr(msg, part)) fail_msg("no \"%s\" in: %s", part, msg);
}

static void test_device(void **state) {
  (void)state;
  IrErr why;
  if (!rt_cuda_available(&why)) fail_msg("%s", why.msg);
  assert_string_equal(rt_cuda_library_path(), "simulated driver (DITC_CUDA_SIM=1)");
  dev_open();
  assert_int_equal(dev.cc_major, 9);
  assert_int_equal(dev.cc_minor, 0);
  assert_int_equal(dev.sm_count, 132);
  assert_int_equal(dev.smem_optin, 227 * 1024);
  assert_true(dev.total_mem == (size_t)80 << 30);
  char s[300];
  assert_string_equal(rt_cuda_device_str(&dev, s, sizeof s),
                      "ditc simulated sm_90 (H100 SXM-like) (sm_90, 132 SMs, 80.0 GiB, driver CUDA 13.0)");
  /* fresh memory is not zeroed (0xff bytes: NaN in every float type); the free count follows */
  size_t free0, free1, total;
  IrErr err;
  assert_int_equal(RT_CU(&err, NULL, MemGetInfo, &free0, &total), 0);
  CUdeviceptr p = dalloc(1000);
  assert_int_equal(p % 256, 0);
  unsigned char host[1000];
  assert_int_equal(RT_CU(&err, NULL, MemcpyDtoH, host, p, sizeof host), 0);
  for (int i = 0; i < 1000; i++) assert_int_equal(host[i], 0xff);
  assert_int_equal(RT_CU(&err, NULL, MemGetInfo, &free1, &total), 0);
  assert_true(free0 - free1 == 1000);
  /* events: the host's clock between two records */
  RtCudaTimer t;
  float ms = -1;
  if (rt_cuda_timer_init(&t, &err) || rt_cuda_timer_start(&t, NULL, &err) || rt_cuda_timer_stop(&t, NULL, &ms, &err))
    fail_msg("%s", err.msg);
  assert_true(ms >= 0 && ms < 1000);
  rt_cuda_timer_free(&t);
  dev_close();
  /* a call without a context: as the driver says it */
  assert_int_equal(RT_CU(&err, "after close", MemAlloc, &p, 16), -1);
  has(err.msg, "CUDA_ERROR_INVALID_CONTEXT (invalid device context)");
}

/* ---- another architecture: a child with DITC_CUDA_SIM_ARCH=sm_80 ------------- */

static int child_sm80(void) {
  RtCudaDevice d;
  IrErr err;
  if (rt_cuda_device_open(0, &d, &err)) return printf("%s", err.msg), 1;
  /* no FP8 matmul before compute capability 8.9 */
  RtBlas *blas;
  RtBlasPlan *fp8;
  RtBlasMatmulDesc fd = {.dtype = IR_E4M3, .m = 4, .n = 16, .k = 16, .trans_b = 1, .d_f32 = 1};
  if (rt_blas_init(&blas, &err)) return printf("%s", err.msg), 1;
  if (!rt_blas_plan_new(blas, &fd, "fp8", &fp8, &err)) return printf("an FP8 matmul planned on sm_80"), 1;
  if (!strstr(err.msg, "compute capability 8.9")) return printf("%s", err.msg), 1;
  rt_blas_free(blas);
  if (d.cc_major != 8 || d.cc_minor != 0 || d.sm_count != 108 || d.smem_optin != 163 * 1024)
    return printf("sm_80 reports %d.%d, %d SMs, %d opt-in", d.cc_major, d.cc_minor, d.sm_count, d.smem_optin), 1;
  char why[1200];
  size_t n90, n80;
  unsigned char *c90 = compile(KERNELS, "sm_90", &n90, why, sizeof why);
  unsigned char *c80 = c90 ? compile(KERNELS, "sm_80", &n80, why, sizeof why) : NULL;
  if (!c80) return printf("SKIP %s", why), 0;
  CUmodule m;
  /* an sm_90 CUBIN does not run on sm_80 */
  if (!rt_cuda_module_load(c90, "sm_90 kernels", &m, &err)) return printf("sm_90 CUBIN loaded on sm_80"), 1;
  if (!strstr(err.msg, "CUDA_ERROR_NO_BINARY_FOR_GPU") || !strstr(err.msg, "the CUBIN is for sm_90, the device is sm_80"))
    return printf("%s", err.msg), 1;
  if (rt_cuda_module_load(c80, "sm_80 kernels", &m, &err)) return printf("%s", err.msg), 1;
  CUfunction rev;
  if (RT_CU(&err, NULL, ModuleGetFunction, &rev, m, "k_rev")) return printf("%s", err.msg), 1;
  /* 200 KiB fits an H100's 227 KiB, not an A100's 163 KiB */
  if (!RT_CU(&err, "k_rev", FuncSetAttribute, rev, RT_CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, 200 * 1024))
    return printf("200 KiB of shared memory accepted on sm_80"), 1;
  if (!strstr(err.msg, "CUDA_ERROR_INVALID_VALUE") || !strstr(err.msg, "sm_80 allows at most 166912"))
    return printf("%s", err.msg), 1;
  if (RT_CU(&err, "k_rev", FuncSetAttribute, rev, RT_CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, 160 * 1024))
    return printf("%s", err.msg), 1;
  free(c90);
  free(c80);
  rt_cuda_device_close(&d);
  return 0;
}

/* A kernel that writes past the end of its allocation: the process dies of
 * it, as a GPU's context would, after the simulation says what happened. */
static int child_stray(void) {
  char why[1200];
  size_t n;
  unsigned char *cubin = compile(KERNELS, "sm_90", &n, why, sizeof why);
  if (!cubin) return printf("SKIP %s", why), 0;
  RtCudaDevice d;
  IrErr err;
  CUmodule m;
  CUfunction scale;
  CUdeviceptr x;
  if (rt_cuda_device_open(0, &d, &err) || rt_cuda_module_load(cubin, "kernels", &m, &err) ||
      RT_CU(&err, NULL, ModuleGetFunction, &scale, m, "k_scale") || RT_CU(&err, NULL, MemAlloc, &x, 1024))
    return printf("%s", err.msg), 1;
  fflush(stdout);
  KParams p = {(float *)(uintptr_t)x, 1 << 20};
  void *argv[] = {&p};
  rt_cu.LaunchKernel(scale, 8192, 1, 1, 128, 1, 1, 0, NULL, argv, NULL);
  return printf("the stray kernel did not fault"), 1;
}

static int run_child(const char *what, const char *arch, char *out, size_t n) {
  const char *env[] = {"DITC_TEST_CHILD", what, "DITC_CUDA_SIM_ARCH", arch, NULL};
  return tu_reexec(env, out, n);
}

static void test_other_architectures(void **state) {
  (void)state;
  char out[2048];
  if (run_child("sm80", "sm_80", out, sizeof out)) fail_msg("sm_80 child: %s", out);
  if (!strncmp(out, "SKIP ", 5)) TU_SKIP(out + 5);
  /* an architecture the simulation does not have */
  assert_int_equal(run_child("load", "sm_70", out, sizeof out), 1);
  assert_string_equal(out, "no CUDA device found [simulated driver: DITC_CUDA_SIM_ARCH=sm_70 is not an architecture the "
                           "simulation has (sm_75, sm_80, sm_86, sm_89, sm_90, sm_100, sm_120)]");
}

/* ---- launches ------------------------------------------------------------------ */

static void test_launch_and_bounds(void **state) {
  (void)state;
  NEED_CUBIN();
  CUfunction scale;
  CUmodule m = open_with_kernels(&scale, NULL);
  enum { N = 300 };
  float h[N];
  for (int i = 0; i < N; i++) h[i] = (float)i;
  CUdeviceptr x = dalloc(sizeof h);
  IrErr err;
  assert_int_equal(RT_CU(&err, NULL, MemcpyHtoD, x, h, sizeof h), 0);
  if (launch(scale, 3, 128, 0, NULL, x, N, &err)) fail_msg("%s", err.msg);
  assert_int_equal(RT_CU(&err, NULL, MemcpyDtoH, h, x, sizeof h), 0);
  for (int i = 0; i < N; i++) assert_true(h[i] == 2.0f * (float)i + 1.0f);
  /* over __launch_bounds__(128): too many resources, as a GPU says */
  assert_int_equal(launch(scale, 2, 256, 0, NULL, x, N, &err), -1);
  has(err.msg, "cuLaunchKernel failed: CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES (too many resources requested for launch)");
  has(err.msg, "a block of 256 threads; its __launch_bounds__(128) allows at most 128");
  /* over the device's 1024 threads, or its z limit: an invalid value */
  assert_int_equal(launch(scale, 1, 2048, 0, NULL, x, N, &err), -1);
  has(err.msg, "CUDA_ERROR_INVALID_VALUE");
  has(err.msg, "block (2048, 1, 1) is outside the device's limits");
  KParams p = {(float *)(uintptr_t)x, N};
  void *argv[] = {&p};
  assert_int_equal(RT_CU(&err, NULL, LaunchKernel, scale, 1, 1, 1, 1, 1, 65, 0, NULL, argv, NULL), -1);
  has(err.msg, "CUDA_ERROR_INVALID_VALUE");
  assert_int_equal(RT_CU(&err, NULL, LaunchKernel, scale, 0, 1, 1, 32, 1, 1, 0, NULL, argv, NULL), -1);
  has(err.msg, "grid (0, 1, 1)");
  /* launch configuration errors are not faults: the context goes on */
  if (launch(scale, 3, 128, 0, NULL, x, N, &err)) fail_msg("%s", err.msg);
  assert_int_equal(RT_CU(&err, NULL, MemcpyDtoH, h, x, sizeof h), 0);
  for (int i = 0; i < N; i++) assert_true(h[i] == 4.0f * (float)i + 3.0f);
  CUfunction none;
  assert_int_equal(RT_CU(&err, NULL, ModuleGetFunction, &none, m, "k_none"), -1);
  has(err.msg, "CUDA_ERROR_NOT_FOUND");
  dev_close();
}

static void test_shared_memory_limits(void **state) {
  (void)state;
  NEED_CUBIN();
  CUfunction scale, rev;
  open_with_kernels(&scale, &rev);
  enum { N = 256 };
  float h[N];
  for (int i = 0; i < N; i++) h[i] = (float)i;
  CUdeviceptr x = dalloc(sizeof h);
  IrErr err;
  assert_int_equal(RT_CU(&err, NULL, MemcpyHtoD, x, h, sizeof h), 0);
  /* within the default 48 KiB */
  if (launch(rev, 1, N, N * 4, NULL, x, N, &err)) fail_msg("%s", err.msg);
  /* 64 KiB needs the kernel to opt in first */
  assert_int_equal(launch(rev, 1, N, 64 * 1024, NULL, x, N, &err), -1);
  has(err.msg, "CUDA_ERROR_INVALID_VALUE");
  has(err.msg, "65536 bytes of dynamic shared memory, more than its CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES "
               "(49152: above 48 KiB a kernel must opt in with cuFuncSetAttribute)");
  if (RT_CU(&err, "k_rev", FuncSetAttribute, rev, RT_CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, 64 * 1024))
    fail_msg("%s", err.msg);
  if (launch(rev, 1, N, 64 * 1024, NULL, x, N, &err)) fail_msg("%s", err.msg);
  assert_int_equal(RT_CU(&err, NULL, MemcpyDtoH, h, x, sizeof h), 0);
  for (int i = 0; i < N; i++) assert_true(h[i] == (float)i); /* reversed twice */
  /* more than raised to, and more than sm_90's 227 KiB opt-in */
  assert_int_equal(launch(rev, 1, N, 64 * 1024 + 16, NULL, x, N, &err), -1);
  has(err.msg, "CUDA_ERROR_INVALID_VALUE");
  assert_int_equal(RT_CU(&err, "k_rev", FuncSetAttribute, rev, RT_CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                         227 * 1024 + 1), -1);
  has(err.msg, "kernel k_rev: 232449 bytes of dynamic shared memory; sm_90 allows at most 232448");
  if (RT_CU(&err, "k_rev", FuncSetAttribute, rev, RT_CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, 227 * 1024))
    fail_msg("%s", err.msg);
  dev_close();
}

/* ---- pointers -------------------------------------------------------------------- */

static void test_misaligned(void **state) {
  (void)state;
  dev_open();
  CUdeviceptr p = dalloc(4096);
  IrErr err;
  assert_int_equal(RT_CU(&err, NULL, MemsetD32, p + 4, 7, 8), 0);
  assert_int_equal(RT_CU(&err, "memset", MemsetD32, p + 2, 7, 8), -1);
  has(err.msg, "cuMemsetD32 failed: CUDA_ERROR_INVALID_VALUE (invalid argument)");
  has(err.msg, "is not 4-byte aligned");
  /* cuBLASLt: an f32 matrix off its element's alignment, and off the 256 bytes the default preference
   * promises, are test_lt_refusals' first cases */
  dev_close();
  /* a kernel's float pointer off its element's alignment: the device faults, as a GPU's load would */
  NEED_CUBIN();
  CUfunction scale;
  open_with_kernels(&scale, NULL);
  p = dalloc(4096);
  if (launch(scale, 1, 32, 0, NULL, p + 4, 32, &err)) fail_msg("%s", err.msg);
  assert_int_equal(launch(scale, 1, 32, 0, NULL, p + 2, 32, &err), -1);
  has(err.msg, "cuLaunchKernel failed: CUDA_ERROR_MISALIGNED_ADDRESS (misaligned address)");
  has(err.msg, "kernel k_scale, parameter p.x: device address");
  has(err.msg, "is not 4-byte aligned");
  dev_close();
}

static void test_outside_any_allocation(void **state) {
  (void)state;
  NEED_CUBIN();
  CUfunction scale;
  open_with_kernels(&scale, NULL);
  CUdeviceptr x = dalloc(1024), y = dalloc(1024);
  IrErr err;
  float h[256] = {0};
  /* a copy running past the end of its allocation is refused, and is no fault */
  assert_int_equal(RT_CU(&err, "copy", MemcpyHtoD, x + 512, h, 1024), -1);
  has(err.msg, "cuMemcpyHtoD failed: CUDA_ERROR_INVALID_VALUE");
  has(err.msg, "runs 512 bytes past the end of allocation");
  assert_int_equal(RT_CU(&err, NULL, MemcpyHtoD, x, h, 1024), 0);
  /* a kernel handed an address between the allocations: an illegal address */
  CUdeviceptr gap = x + 1024 + 8;
  assert_true(gap < y);
  assert_int_equal(launch(scale, 1, 32, 0, NULL, gap, 32, &err), -1);
  has(err.msg, "cuLaunchKernel failed: CUDA_ERROR_ILLEGAL_ADDRESS (an illegal memory access was encountered)");
  has(err.msg, "kernel k_scale, parameter p.x: device address");
  has(err.msg, "is not inside any allocation");
  /* a kernel that strays past its allocation's end takes the process down, saying why */
  char out[4096];
  const char *env[] = {"DITC_TEST_CHILD", "stray", NULL};
  int st = tu_reexec_status(env, out, sizeof out);
  if (!strncmp(out, "SKIP ", 5)) TU_SKIP(out + 5);
  if (WIFEXITED(st) && WEXITSTATUS(st) == 0) fail_msg("the stray child exited 0: %s", out);
  has(out, "ditc: simulated device: a kernel touched device address 0x");
  has(out, ", outside every live allocation (CUDA_ERROR_ILLEGAL_ADDRESS on a GPU)");
  /* a host pointer is no device address either */
  dev_close();
  open_with_kernels(&scale, NULL);
  assert_int_equal(launch(scale, 1, 32, 0, NULL, (CUdeviceptr)(uintptr_t)h, 32, &err), -1);
  has(err.msg, "CUDA_ERROR_ILLEGAL_ADDRESS");
  has(err.msg, "kernel k_scale, parameter p.x: 0x");
  has(err.msg, "is not a device address");
  /* a fault is sticky: the context is unusable until it is destroyed */
  CUdeviceptr z;
  assert_int_equal(RT_CU(&err, "after the fault", MemAlloc, &z, 16), -1);
  has(err.msg, "CUDA_ERROR_ILLEGAL_ADDRESS");
  has(err.msg, "an earlier fault left the context unusable");
  dev_close();
  dev_open();
  z = dalloc(16);
  assert_true(z > y); /* addresses are never reused */
  dev_close();
}

static void test_use_after_free(void **state) {
  (void)state;
  NEED_CUBIN();
  CUfunction scale;
  open_with_kernels(&scale, NULL);
  CUdeviceptr x = dalloc(1024);
  IrErr err;
  assert_int_equal(RT_CU(&err, NULL, MemFree, x), 0);
  assert_int_equal(RT_CU(&err, "again", MemFree, x), -1);
  has(err.msg, "CUDA_ERROR_INVALID_VALUE");
  has(err.msg, "was freed already (double free)");
  float h[4];
  assert_int_equal(RT_CU(&err, "copy", MemcpyDtoH, h, x, sizeof h), -1);
  has(err.msg, "freed earlier (use after free)");
  assert_int_equal(launch(scale, 1, 32, 0, NULL, x + 64, 32, &err), -1);
  has(err.msg, "CUDA_ERROR_ILLEGAL_ADDRESS");
  has(err.msg, "freed earlier (use after free)");
  dev_close();
}

/* ---- graphs ---------------------------------------------------------------------- */

static void test_graph_replay_after_memory_moved(void **state) {
  (void)state;
  NEED_CUBIN();
  CUfunction scale;
  open_with_kernels(&scale, NULL);
  IrErr err;
  CUstream s;
  if (RT_CU(&err, NULL, StreamCreate, &s, RT_CU_STREAM_NON_BLOCKING)) fail_msg("%s", err.msg);
  enum { N = 64 };
  float h[N];
  for (int i = 0; i < N; i++) h[i] = (float)i;
  CUdeviceptr x = dalloc(sizeof h);
  assert_int_equal(RT_CU(&err, NULL, MemcpyHtoD, x, h, sizeof h), 0);
  /* captured work is recorded, not run */
  CUgraphExec g;
  if (rt_cuda_capture_begin(s, &err) || launch(scale, 1, N, 0, s, x, N, &err) || rt_cuda_capture_end(s, &g, &err))
    fail_msg("%s", err.msg);
  assert_int_equal(RT_CU(&err, NULL, MemcpyDtoH, h, x, sizeof h), 0);
  assert_true(h[5] == 5.0f);
  for (int rep = 0; rep < 2; rep++)
    if (RT_CU(&err, "replay", GraphLaunch, g, s)) fail_msg("%s", err.msg);
  assert_int_equal(RT_CU(&err, NULL, StreamSynchronize, s), 0);
  assert_int_equal(RT_CU(&err, NULL, MemcpyDtoH, h, x, sizeof h), 0);
  for (int i = 0; i < N; i++) assert_true(h[i] == 4.0f * (float)i + 3.0f);
  /* the buffer moves: freed, and a new one made */
  assert_int_equal(RT_CU(&err, NULL, MemFree, x), 0);
  CUdeviceptr x2 = dalloc(sizeof h);
  assert_true(x2 != x);
  assert_int_equal(RT_CU(&err, "stale replay", GraphLaunch, g, s), -1);
  has(err.msg, "cuGraphLaunch failed: CUDA_ERROR_ILLEGAL_ADDRESS");
  has(err.msg, "graph node 0 of 1: kernel k_scale (graph replay), parameter p.x: device address");
  has(err.msg, "freed earlier (use after free); a graph replays the addresses it was captured with");
  dev_close();
}

static void test_capture_rules(void **state) {
  (void)state;
  dev_open();
  IrErr err;
  CUstream s;
  if (RT_CU(&err, NULL, StreamCreate, &s, RT_CU_STREAM_NON_BLOCKING)) fail_msg("%s", err.msg);
  CUdeviceptr x = dalloc(64);
  /* synchronising a capturing stream is not allowed and spoils the capture */
  assert_int_equal(rt_cuda_capture_begin(s, &err), 0);
  assert_int_equal(RT_CU(&err, NULL, MemsetD32Async, x, 1, 16, s), 0);
  assert_int_equal(RT_CU(&err, "sync", StreamSynchronize, s), -1);
  has(err.msg, "CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED (operation not permitted when stream is capturing)");
  CUgraphExec g;
  assert_int_equal(rt_cuda_capture_end(s, &g, &err), -1);
  has(err.msg, "CUDA_ERROR_STREAM_CAPTURE_INVALIDATED");
  assert_null(g);
  /* in global mode a potentially unsafe call is refused; relaxed mode (ditc's) allows it */
  assert_int_equal(RT_CU(&err, NULL, StreamBeginCapture, s, RT_CU_STREAM_CAPTURE_MODE_GLOBAL), 0);
  CUdeviceptr y;
  assert_int_equal(RT_CU(&err, "alloc", MemAlloc, &y, 64), -1);
  has(err.msg, "cuMemAlloc is not permitted while stream");
  assert_int_equal(rt_cuda_capture_end(s, &g, &err), -1);
  assert_int_equal(rt_cuda_capture_begin(s, &err), 0);
  assert_int_equal(RT_CU(&err, NULL, MemAlloc, &y, 64), 0);
  assert_int_equal(RT_CU(&err, NULL, MemsetD32Async, y, 9, 16, s), 0);
  if (rt_cuda_capture_end(s, &g, &err)) fail_msg("%s", err.msg);
  unsigned h[16] = {0};
  assert_int_equal(RT_CU(&err, NULL, MemcpyDtoH, h, y, 64), 0);
  assert_int_equal(h[3], 0xffffffffu); /* recorded, not run */
  assert_int_equal(RT_CU(&err, NULL, GraphLaunch, g, s), 0);
  assert_int_equal(RT_CU(&err, NULL, MemcpyDtoH, h, y, 64), 0);
  assert_int_equal(h[3], 9);
  /* the default stream cannot be captured */
  assert_int_equal(RT_CU(&err, "legacy", StreamBeginCapture, NULL, RT_CU_STREAM_CAPTURE_MODE_RELAXED), -1);
  has(err.msg, "CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED");
  dev_close();
}

/* ---- images ------------------------------------------------------------------ */

static void test_images_it_cannot_map(void **state) {
  (void)state;
  NEED_CUBIN();
  dev_open();
  IrErr err;
  CUmodule m;
  /* compiled while the simulation was not asked for: nothing noted its source */
  static const char OTHER[] = "typedef struct { float *x; int n; } KP;\n"
                              "DITC_KERNEL(k_other, KP, p) { if (threadIdx.x == 0) p.x[0] = 1.0f; }\n";
  setenv("DITC_CUDA_SIM", "0", 1);
  char why[1200];
  size_t n;
  unsigned char *cubin = compile(OTHER, "sm_90", &n, why, sizeof why);
  setenv("DITC_CUDA_SIM", "1", 1);
  assert_non_null(cubin);
  assert_int_equal(rt_cuda_module_load(cubin, "unnoted", &m, &err), -1);
  has(err.msg, "cuModuleLoadDataEx failed: CUDA_ERROR_INVALID_IMAGE (device kernel image is invalid)");
  has(err.msg, "JIT log: simulated driver: this CUBIN");
  has(err.msg, "its source is unknown and it cannot be simulated");
  /* one byte changed: another image, unknown too */
  unsigned char *copy = malloc(sm90_size);
  memcpy(copy, sm90_cubin, sm90_size);
  assert_int_equal(rt_cuda_module_load(copy, "copy", &m, &err), 0); /* the same bytes elsewhere: known */
  copy[sm90_size - 1] ^= 1;
  assert_int_equal(rt_cuda_module_load(copy, "changed", &m, &err), -1);
  has(err.msg, "its source is unknown");
  assert_int_equal(rt_cuda_module_load("// PTX\n.version 8.0\n", "ptx", &m, &err), -1);
  has(err.msg, "the image is not a CUBIN (no ELF header; PTX is not simulated)");
  free(copy);
  free(cubin);
  dev_close();
}

/* ---- cuBLASLt, as documented ------------------------------------------------------ */

/* cudaDataType_t and cuBLASLt's enums (cublasLt.h, library_types.h) */
enum {
  T_32F = 0, T_16F = 2, T_8I = 3, T_32I = 10, T_16BF = 14, T_E4M3 = 28,
  C_32F = 68, C_32I = 72, C_FAST_TF32 = 77,
  A_TRANSA = 3, A_TRANSB = 4, A_EPILOGUE = 7, A_BIAS = 8, A_BIAS_STRIDE = 10, A_SCALE_A = 17, A_SCALE_B = 18,
  A_SCALE_D = 20, A_AMAX_D = 21,
  L_ORDER = 1, L_BATCH = 5, L_STRIDE = 6,
  P_WORKSPACE = 1,
  EPI_DEFAULT = 1, EPI_RELU = 2, EPI_BIAS = 4, EPI_RELU_BIAS = 6, EPI_GELU = 32, EPI_GELU_BIAS = 36,
  ST_INVALID_VALUE = 7, ST_EXECUTION_FAILED = 13, ST_NOT_SUPPORTED = 15,
};

static size_t tsize(int t) { return t == T_32F || t == T_32I ? 4 : t == T_16F || t == T_16BF ? 2 : 1; }

/* A value as the type holds it. */
static double as_type(int t, double v) {
  if (t == T_16F) return ir_f16_to_f32(ir_f32_to_f16((float)v));
  if (t == T_16BF) return ir_bf16_to_f32(ir_f32_to_bf16((float)v));
  if (t == T_32F) return (float)v;
  return v;
}

static void put(int t, unsigned char *p, int64_t i, double v) {
  float f = (float)v;
  uint16_t h;
  switch (t) {
  case T_32F: memcpy(p + 4 * i, &f, 4); break;
  case T_16F: h = ir_f32_to_f16(f); memcpy(p + 2 * i, &h, 2); break;
  case T_16BF: h = ir_f32_to_bf16(f); memcpy(p + 2 * i, &h, 2); break;
  case T_8I: p[i] = (unsigned char)(int8_t)v; break;
  case T_32I: { int32_t x = (int32_t)v; memcpy(p + 4 * i, &x, 4); break; }
  case T_E4M3: { /* the few values the FP8 test uses, exact in E4M3 */
    static const double vals[] = {0, 0.5, 1, 1.5, 2, 3, 4};
    static const unsigned char bits[] = {0x00, 0x30, 0x38, 0x3c, 0x40, 0x44, 0x48};
    int found = -1;
    for (int k = 0; k < 7; k++)
      if (fabs(v) == vals[k]) found = k;
    assert_true(found >= 0);
    p[i] = bits[found] | (v < 0 ? 0x80 : 0);
    break;
  }
  default: fail_msg("type %d", t);
  }
}

static double get(int t, const unsigned char *p, int64_t i) {
  float f;
  uint16_t h;
  int32_t v;
  switch (t) {
  case T_32F: memcpy(&f, p + 4 * i, 4); return f;
  case T_16F: memcpy(&h, p + 2 * i, 2); return ir_f16_to_f32(h);
  case T_16BF: memcpy(&h, p + 2 * i, 2); return ir_bf16_to_f32(h);
  case T_8I: return (int8_t)p[i];
  case T_32I: memcpy(&v, p + 4 * i, 4); return v;
  default: fail_msg("type %d", t);
  }
  return 0;
}

/* A matrix as cuBLASLt is told it: its logical rows x cols values per batch,
 * and how they lie in memory. */
typedef struct {
  int type, order; /* 0: CUBLASLT_ORDER_COL, 1: _ROW */
  int64_t rows, cols, ld, batch, stride;
  double *v;       /* [batch][rows][cols], logical */
  CUdeviceptr dev;
  RtLtDesc layout;
} Mat;

static int64_t mat_at(const Mat *m, int64_t b, int64_t r, int64_t c) {
  return b * m->stride + (m->order == 0 ? c * m->ld + r : r * m->ld + c);
}

static int64_t mat_elems(const Mat *m) {
  int64_t major = m->order == 0 ? m->cols : m->rows;
  return (m->batch - 1) * m->stride + (major - 1) * m->ld + (m->order == 0 ? m->rows : m->cols);
}

static unsigned seed = 12345;
static double rnd(void) {
  seed = seed * 1103515245u + 12345u;
  return (double)((seed >> 8) % 2001) / 1000.0 - 1.0;
}

/* Fill with values (batches beyond `distinct` repeat batch 0: a stride of 0),
 * upload with NaN bytes between the elements, describe. */
static void mat_make(Mat *m, int type, int order, int64_t rows, int64_t cols, int64_t pad, int64_t batch, int shared,
                     int integers) {
  memset(m, 0, sizeof *m);
  m->type = type, m->order = order, m->rows = rows, m->cols = cols, m->batch = batch;
  m->ld = (order == 0 ? rows : cols) + pad;
  int64_t one = (order == 0 ? cols : rows) * m->ld;
  m->stride = shared ? 0 : one + 3;
  m->v = calloc((size_t)(batch * rows * cols), sizeof(double));
  for (int64_t b = 0; b < batch; b++)
    for (int64_t i = 0; i < rows * cols; i++)
      m->v[b * rows * cols + i] = shared && b ? m->v[i] : as_type(type, integers ? (double)((int)(rnd() * 5)) : rnd());
  size_t bytes = (size_t)mat_elems(m) * tsize(type);
  unsigned char *h = malloc(bytes);
  memset(h, 0xff, bytes);
  for (int64_t b = 0; b < batch; b++)
    for (int64_t r = 0; r < rows; r++)
      for (int64_t c = 0; c < cols; c++) put(type, h, mat_at(m, b, r, c), m->v[(b * rows + r) * cols + c]);
  m->dev = dalloc(bytes);
  IrErr err;
  assert_int_equal(RT_CU(&err, NULL, MemcpyHtoD, m->dev, h, bytes), 0);
  free(h);
  assert_int_equal(RT_LT(&err, NULL, MatrixLayoutCreate, &m->layout, type, (uint64_t)rows, (uint64_t)cols, m->ld), 0);
  int32_t o = order, bc = (int32_t)batch;
  assert_int_equal(RT_LT(&err, NULL, MatrixLayoutSetAttribute, m->layout, L_ORDER, &o, sizeof o), 0);
  if (batch > 1) {
    assert_int_equal(RT_LT(&err, NULL, MatrixLayoutSetAttribute, m->layout, L_BATCH, &bc, sizeof bc), 0);
    assert_int_equal(RT_LT(&err, NULL, MatrixLayoutSetAttribute, m->layout, L_STRIDE, &m->stride, sizeof m->stride), 0);
  }
}

static void mat_free(Mat *m) {
  rt_lt.MatrixLayoutDestroy(m->layout);
  free(m->v);
}

static double gelu_tanh(double x) { return 0.5 * x * (1.0 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))); }

typedef struct {
  int compute, ab_type, d_type, order_a, order_b, order_d, ta, tb, epilogue, batch, shared_b, pad;
  double alpha, beta;
  int64_t bias_stride;
  int64_t m, n, k;
} Case;

/* D = epilogue(alpha op(A) op(B) + beta C + bias), per batch: cuBLASLt's
 * definition; the simulated result must match it. */
static void run_case(RtLtHandle h, const Case *cs, double tol) {
  Mat A, B, C, D;
  int64_t m = cs->m, n = cs->n, k = cs->k;
  mat_make(&A, cs->ab_type, cs->order_a, cs->ta ? k : m, cs->ta ? m : k, cs->pad, cs->batch, 0, cs->compute == C_32I);
  mat_make(&B, cs->ab_type, cs->order_b, cs->tb ? n : k, cs->tb ? k : n, cs->pad, cs->batch, cs->shared_b,
           cs->compute == C_32I);
  mat_make(&C, cs->d_type, cs->order_d, m, n, cs->pad, cs->batch, 0, cs->compute == C_32I);
  mat_make(&D, cs->d_type, cs->order_d, m, n, cs->pad, cs->batch, 0, 0);
  int has_bias = cs->epilogue == EPI_BIAS || cs->epilogue == EPI_RELU_BIAS || cs->epilogue == EPI_GELU_BIAS;
  int bias_type = cs->d_type;
  int64_t nb = (cs->batch - 1) * cs->bias_stride + m;
  double *bias = calloc((size_t)nb, sizeof(double));
  unsigned char *hb = calloc((size_t)nb, 4);
  for (int64_t i = 0; i < nb; i++) put(bias_type, hb, i, bias[i] = as_type(bias_type, rnd()));
  CUdeviceptr dbias = dalloc((size_t)nb * 4);
  IrErr err;
  assert_int_equal(RT_CU(&err, NULL, MemcpyHtoD, dbias, hb, (size_t)nb * 4), 0);
  RtLtDesc op;
  int32_t scale = cs->compute == C_32I ? T_32I : T_32F, ta = cs->ta, tb = cs->tb;
  uint32_t epi = (uint32_t)cs->epilogue;
  assert_int_equal(RT_LT(&err, NULL, MatmulDescCreate, &op, cs->compute, scale), 0);
  assert_int_equal(RT_LT(&err, NULL, MatmulDescSetAttribute, op, A_TRANSA, &ta, sizeof ta), 0);
  assert_int_equal(RT_LT(&err, NULL, MatmulDescSetAttribute, op, A_TRANSB, &tb, sizeof tb), 0);
  assert_int_equal(RT_LT(&err, NULL, MatmulDescSetAttribute, op, A_EPILOGUE, &epi, sizeof epi), 0);
  if (has_bias) {
    const void *bp = (const void *)(uintptr_t)dbias;
    assert_int_equal(RT_LT(&err, NULL, MatmulDescSetAttribute, op, A_BIAS, &bp, sizeof bp), 0);
    assert_int_equal(RT_LT(&err, NULL, MatmulDescSetAttribute, op, A_BIAS_STRIDE, &cs->bias_stride,
                           sizeof cs->bias_stride), 0);
  }
  RtLtDesc pref;
  uint64_t ws_max = 1 << 20;
  assert_int_equal(RT_LT(&err, NULL, MatmulPreferenceCreate, &pref), 0);
  assert_int_equal(RT_LT(&err, NULL, MatmulPreferenceSetAttribute, pref, P_WORKSPACE, &ws_max, sizeof ws_max), 0);
  RtLtHeuristic res;
  int found = 0;
  if (RT_LT(&err, NULL, MatmulAlgoGetHeuristic, h, op, A.layout, B.layout, C.layout, D.layout, pref, 1, &res, &found))
    fail_msg("%s", err.msg);
  assert_int_equal(found, 1);
  CUdeviceptr ws = dalloc(res.workspace_size ? res.workspace_size : 1);
  float fa = (float)cs->alpha, fb = (float)cs->beta;
  int32_t ia = (int32_t)cs->alpha, ib = (int32_t)cs->beta;
  const void *alpha = scale == T_32I ? (const void *)&ia : (const void *)&fa;
  const void *beta = scale == T_32I ? (const void *)&ib : (const void *)&fb;
  if (RT_LT(&err, NULL, Matmul, h, op, alpha, (const void *)(uintptr_t)A.dev, A.layout, (const void *)(uintptr_t)B.dev,
            B.layout, beta, (const void *)(uintptr_t)C.dev, C.layout, (void *)(uintptr_t)D.dev, D.layout, &res.algo,
            (void *)(uintptr_t)ws, res.workspace_size, NULL))
    fail_msg("%s", err.msg);
  size_t dbytes = (size_t)mat_elems(&D) * tsize(cs->d_type);
  unsigned char *hd = malloc(dbytes);
  assert_int_equal(RT_CU(&err, NULL, MemcpyDtoH, hd, D.dev, dbytes), 0);
  double worst = 0, scale_max = 0;
  for (int64_t b = 0; b < cs->batch; b++)
    for (int64_t i = 0; i < m; i++)
      for (int64_t j = 0; j < n; j++) {
        double s = 0;
        for (int64_t p = 0; p < k; p++) {
          double x = cs->ta ? A.v[(b * A.rows + p) * A.cols + i] : A.v[(b * A.rows + i) * A.cols + p];
          double y = cs->tb ? B.v[(b * B.rows + j) * B.cols + p] : B.v[(b * B.rows + p) * B.cols + j];
          s += x * y;
        }
        double v = cs->alpha * s + cs->beta * C.v[(b * m + i) * n + j];
        if (has_bias) v += bias[b * cs->bias_stride + i];
        if (cs->epilogue == EPI_RELU || cs->epilogue == EPI_RELU_BIAS) v = v > 0 ? v : 0;
        if (cs->epilogue == EPI_GELU || cs->epilogue == EPI_GELU_BIAS) v = gelu_tanh(v);
        double got = get(cs->d_type, hd, mat_at(&D, b, i, j));
        if (fabs(got - v) > worst) worst = fabs(got - v);
        if (fabs(v) > scale_max) scale_max = fabs(v);
      }
  if (worst > tol * (scale_max > 1 ? scale_max : 1))
    fail_msg("compute %d, types %d->%d, orders %d%d%d, trans %d%d, epilogue %d, batch %d%s: off by %g (of %g)",
             cs->compute, cs->ab_type, cs->d_type, cs->order_a, cs->order_b, cs->order_d, cs->ta, cs->tb, cs->epilogue,
             cs->batch, cs->shared_b ? " (B shared)" : "", worst, scale_max);
  free(hd);
  free(hb);
  free(bias);
  rt_lt.MatmulPreferenceDestroy(pref);
  rt_lt.MatmulDescDestroy(op);
  mat_free(&A);
  mat_free(&B);
  mat_free(&C);
  mat_free(&D);
}

static void test_lt_descriptors(void **state) {
  (void)state;
  dev_open();
  IrErr err;
  RtLtHandle h = NULL;
  if (rt_blas_load(&err) || RT_LT(&err, NULL, Create, &h)) fail_msg("%s", err.msg);
  int cases = 0;
  /* f32: every order and transpose, a padded leading dimension, batches with a shared B */
  for (int orders = 0; orders < 8; orders++)
    for (int tr = 0; tr < 4; tr++) {
      Case c = {.compute = C_32F, .ab_type = T_32F, .d_type = T_32F, .order_a = orders & 1, .order_b = orders >> 1 & 1,
                .order_d = orders >> 2, .ta = tr & 1, .tb = tr >> 1, .epilogue = EPI_DEFAULT, .batch = 1 + (tr & 1) * 2,
                .shared_b = tr == 3, .pad = orders & 1 ? 3 : 0, .alpha = 1.0, .m = 7, .n = 5, .k = 6};
      run_case(h, &c, 1e-5);
      cases++;
    }
  /* epilogues, alpha and beta with C, a per-batch bias */
  const int epis[] = {EPI_DEFAULT, EPI_RELU, EPI_BIAS, EPI_RELU_BIAS, EPI_GELU, EPI_GELU_BIAS};
  for (int e = 0; e < 6; e++) {
    Case c = {.compute = C_32F, .ab_type = T_32F, .d_type = T_32F, .ta = 1, .epilogue = epis[e], .batch = 3,
              .alpha = 0.5, .beta = e % 2 ? 0.25 : 0.0, .bias_stride = e == 5 ? 9 : 0, .m = 9, .n = 4, .k = 8};
    run_case(h, &c, 1e-5);
    cases++;
  }
  /* 16-bit operands: their own type or f32 out (ditc's mixed precision) */
  const int halves[] = {T_16BF, T_16F};
  for (int t = 0; t < 2; t++)
    for (int d32 = 0; d32 < 2; d32++) {
      Case c = {.compute = C_32F, .ab_type = halves[t], .d_type = d32 ? T_32F : halves[t], .order_d = 1, .ta = 1,
                .epilogue = EPI_GELU_BIAS, .batch = 2, .shared_b = 1, .alpha = 1.0, .m = 16, .n = 8, .k = 32};
      run_case(h, &c, d32 ? 1e-5 : 1e-2);
      cases++;
    }
  /* int8 in the TN form, 32-bit integer results */
  Case i8 = {.compute = C_32I, .ab_type = T_8I, .d_type = T_32I, .ta = 1, .epilogue = EPI_DEFAULT, .batch = 2,
             .alpha = 2, .beta = 1, .m = 8, .n = 4, .k = 16};
  run_case(h, &i8, 0);
  cases++;
  assert_int_equal(cases, 32 + 6 + 4 + 1);
  rt_lt.Destroy(h);
  dev_close();
}

/* One problem, described by hand, for the refusals. */
typedef struct {
  RtLtDesc op, a, b, c, pref;
  CUdeviceptr A, B, D, ws;
  RtLtHeuristic res;
} Simple;

static void simple_make(Simple *s, int compute, int type, int d_type, int64_t m, int64_t n, int64_t k) {
  IrErr err;
  memset(s, 0, sizeof *s);
  assert_int_equal(RT_LT(&err, NULL, MatmulDescCreate, &s->op, compute, compute == C_32I ? T_32I : T_32F), 0);
  assert_int_equal(RT_LT(&err, NULL, MatrixLayoutCreate, &s->a, type, (uint64_t)m, (uint64_t)k, m), 0);
  assert_int_equal(RT_LT(&err, NULL, MatrixLayoutCreate, &s->b, type, (uint64_t)k, (uint64_t)n, k), 0);
  assert_int_equal(RT_LT(&err, NULL, MatrixLayoutCreate, &s->c, d_type, (uint64_t)m, (uint64_t)n, m), 0);
  assert_int_equal(RT_LT(&err, NULL, MatmulPreferenceCreate, &s->pref), 0);
  uint64_t ws = 1 << 16;
  assert_int_equal(RT_LT(&err, NULL, MatmulPreferenceSetAttribute, s->pref, P_WORKSPACE, &ws, sizeof ws), 0);
  s->A = dalloc(4096), s->B = dalloc(4096), s->D = dalloc(4096), s->ws = dalloc(1 << 16);
}

static int simple_heuristic(RtLtHandle h, Simple *s, IrErr *err) {
  int found = 0;
  return RT_LT(err, "heuristic", MatmulAlgoGetHeuristic, h, s->op, s->a, s->b, s->c, s->c, s->pref, 1, &s->res, &found);
}

static int simple_run(RtLtHandle h, Simple *s, CUdeviceptr A, size_t ws_bytes, IrErr *err) {
  float one = 1, zero = 0;
  return RT_LT(err, "matmul", Matmul, h, s->op, &one, (const void *)(uintptr_t)A, s->a, (const void *)(uintptr_t)s->B,
               s->b, &zero, (const void *)(uintptr_t)s->D, s->c, (void *)(uintptr_t)s->D, s->c, &s->res.algo,
               (void *)(uintptr_t)s->ws, ws_bytes, NULL);
}

static void simple_free(Simple *s) {
  rt_lt.MatmulDescDestroy(s->op);
  rt_lt.MatrixLayoutDestroy(s->a);
  rt_lt.MatrixLayoutDestroy(s->b);
  rt_lt.MatrixLayoutDestroy(s->c);
  rt_lt.MatmulPreferenceDestroy(s->pref);
}

static void test_lt_refusals(void **state) {
  (void)state;
  dev_open();
  IrErr err;
  RtLtHandle h = NULL;
  if (rt_blas_load(&err) || RT_LT(&err, NULL, Create, &h)) fail_msg("%s", err.msg);
  Simple s;
  simple_make(&s, C_32F, T_32F, T_32F, 8, 8, 8);
  if (simple_heuristic(h, &s, &err) || simple_run(h, &s, s.A, s.res.workspace_size, &err)) fail_msg("%s", err.msg);
  /* an attribute of the wrong size */
  int64_t wide = 1;
  assert_int_equal(rt_lt.MatmulDescSetAttribute(s.op, A_TRANSA, &wide, sizeof wide), ST_INVALID_VALUE);
  /* misaligned: off the element, and off the 256 bytes the default preference promised */
  assert_int_equal(simple_run(h, &s, s.A + 2, s.res.workspace_size, &err), -1);
  has(err.msg, "cublasLtMatmul failed: CUBLAS_STATUS_INVALID_VALUE");
  has(err.msg, "matrix A at");
  has(err.msg, "is not 256-byte aligned, as the algorithm assumes");
  assert_int_equal(simple_run(h, &s, s.A + 16, s.res.workspace_size, &err), -1);
  has(err.msg, "is not 256-byte aligned");
  /* a workspace smaller than the algorithm's */
  assert_int_equal(simple_run(h, &s, s.A, s.res.workspace_size - 1, &err), -1);
  has(err.msg, "the algorithm needs 65536");
  /* a matrix that runs past its allocation: the device faults */
  assert_int_equal(simple_run(h, &s, s.A + 4096, s.res.workspace_size, &err), -1);
  has(err.msg, "CUBLAS_STATUS_EXECUTION_FAILED");
  has(err.msg, "cublasLtMatmul matrix A: [");
  has(err.msg, "past the end of allocation");
  simple_free(&s);
  rt_lt.Destroy(h);
  dev_close();

  dev_open();
  if (RT_LT(&err, NULL, Create, &h)) fail_msg("%s", err.msg);
  /* shapes that disagree: op(A) 8 x 8 against a C of 8 x 9 */
  simple_make(&s, C_32F, T_32F, T_32F, 8, 8, 8);
  RtLtDesc c9;
  assert_int_equal(RT_LT(&err, NULL, MatrixLayoutCreate, &c9, T_32F, 8, 9, 8), 0);
  RtLtDesc keep = s.c;
  s.c = c9;
  assert_int_equal(simple_heuristic(h, &s, &err), -1);
  has(err.msg, "CUBLAS_STATUS_INVALID_VALUE");
  has(err.msg, "shapes disagree");
  s.c = keep;
  rt_lt.MatrixLayoutDestroy(c9);
  /* a leading dimension below the column's length */
  RtLtDesc thin;
  assert_int_equal(RT_LT(&err, NULL, MatrixLayoutCreate, &thin, T_32F, 8, 8, 7), 0);
  keep = s.a, s.a = thin;
  assert_int_equal(simple_heuristic(h, &s, &err), -1);
  has(err.msg, "leading dimension 7 below the column's 8 elements");
  s.a = keep;
  rt_lt.MatrixLayoutDestroy(thin);
  /* an FP8 scale on an f32 matmul; a bias epilogue without a bias */
  const void *p = (const void *)(uintptr_t)s.ws;
  assert_int_equal(RT_LT(&err, NULL, MatmulDescSetAttribute, s.op, A_SCALE_A, &p, sizeof p), 0);
  assert_int_equal(simple_heuristic(h, &s, &err), -1);
  has(err.msg, "CUBLASLT_MATMUL_DESC_A_SCALE_POINTER is set for a combination that takes no such scale");
  p = NULL;
  assert_int_equal(RT_LT(&err, NULL, MatmulDescSetAttribute, s.op, A_SCALE_A, &p, sizeof p), 0);
  uint32_t epi = EPI_BIAS;
  assert_int_equal(RT_LT(&err, NULL, MatmulDescSetAttribute, s.op, A_EPILOGUE, &epi, sizeof epi), 0);
  if (simple_heuristic(h, &s, &err)) fail_msg("%s", err.msg);
  assert_int_equal(simple_run(h, &s, s.A, s.res.workspace_size, &err), -1);
  has(err.msg, "a bias epilogue without CUBLASLT_MATMUL_DESC_BIAS_POINTER");
  simple_free(&s);
  /* types no cuBLASLt matmul has; int8 outside the TN form */
  simple_make(&s, C_32F, T_16BF, T_16F, 8, 8, 8);
  assert_int_equal(simple_heuristic(h, &s, &err), -1);
  has(err.msg, "CUBLAS_STATUS_NOT_SUPPORTED");
  has(err.msg, "no cuBLASLt matmul has compute type 68, scale type CUDA_R_32F, A CUDA_R_16BF, B CUDA_R_16BF, C "
               "CUDA_R_16F, D CUDA_R_16F");
  simple_free(&s);
  simple_make(&s, C_32I, T_8I, T_32I, 8, 8, 8);
  assert_int_equal(simple_heuristic(h, &s, &err), -1);
  has(err.msg, "int8 matmuls run only in the TN form");
  /* an algorithm chosen for other types */
  Simple f;
  simple_make(&f, C_32F, T_32F, T_32F, 8, 8, 8);
  if (simple_heuristic(h, &f, &err)) fail_msg("%s", err.msg);
  int32_t t = 1;
  assert_int_equal(RT_LT(&err, NULL, MatmulDescSetAttribute, s.op, A_TRANSA, &t, sizeof t), 0);
  s.res = f.res;
  assert_int_equal(simple_run(h, &s, s.A, s.res.workspace_size, &err), -1);
  has(err.msg, "the algorithm was chosen for other compute, scale or matrix types");
  simple_free(&f);
  simple_free(&s);
  rt_lt.Destroy(h);
  dev_close();
}

/* TF32 compute rounds the f32 inputs: the compute type is honoured. */
static void test_lt_compute_types(void **state) {
  (void)state;
  dev_open();
  IrErr err;
  RtLtHandle h = NULL;
  if (rt_blas_load(&err) || RT_LT(&err, NULL, Create, &h)) fail_msg("%s", err.msg);
  float a[4] = {1.0f + 0x1p-20f, 0, 0, 0}, b[4] = {1, 0, 0, 0}, d[4];
  for (int tf32 = 0; tf32 < 2; tf32++) {
    Simple s;
    simple_make(&s, tf32 ? C_FAST_TF32 : C_32F, T_32F, T_32F, 2, 2, 2);
    assert_int_equal(RT_CU(&err, NULL, MemcpyHtoD, s.A, a, sizeof a), 0);
    assert_int_equal(RT_CU(&err, NULL, MemcpyHtoD, s.B, b, sizeof b), 0);
    if (simple_heuristic(h, &s, &err) || simple_run(h, &s, s.A, s.res.workspace_size, &err)) fail_msg("%s", err.msg);
    assert_int_equal(RT_CU(&err, NULL, MemcpyDtoH, d, s.D, sizeof d), 0);
    assert_true(d[0] == (tf32 ? 1.0f : 1.0f + 0x1p-20f));
    simple_free(&s);
  }
  /* FP8 (E4M3, TN) with A, B and D scales and D's amax */
  enum { M = 4, N = 4, K = 16 };
  unsigned char ha[K * M], hb[K * N];
  double av[K * M], bv[K * N];
  static const double vals[] = {0, 0.5, 1, 1.5, 2, 3, 4, -1, -2, -0.5};
  for (int i = 0; i < K * M; i++) put(T_E4M3, ha, i, av[i] = vals[(i * 7) % 10]);
  for (int i = 0; i < K * N; i++) put(T_E4M3, hb, i, bv[i] = vals[(i * 3 + 1) % 10]);
  RtLtDesc op, la, lb, lc;
  assert_int_equal(RT_LT(&err, NULL, MatmulDescCreate, &op, C_32F, T_32F), 0);
  int32_t tt = 1;
  assert_int_equal(RT_LT(&err, NULL, MatmulDescSetAttribute, op, A_TRANSA, &tt, sizeof tt), 0);
  assert_int_equal(RT_LT(&err, NULL, MatrixLayoutCreate, &la, T_E4M3, K, M, K), 0); /* A stored k x m */
  assert_int_equal(RT_LT(&err, NULL, MatrixLayoutCreate, &lb, T_E4M3, K, N, K), 0);
  assert_int_equal(RT_LT(&err, NULL, MatrixLayoutCreate, &lc, T_32F, M, N, M), 0);
  CUdeviceptr A = dalloc(sizeof ha), B = dalloc(sizeof hb), D = dalloc(M * N * 4), sc = dalloc(16);
  float scales[4] = {0.5f, 4.0f, 1.0f, 0.0f};
  assert_int_equal(RT_CU(&err, NULL, MemcpyHtoD, A, ha, sizeof ha), 0);
  assert_int_equal(RT_CU(&err, NULL, MemcpyHtoD, B, hb, sizeof hb), 0);
  assert_int_equal(RT_CU(&err, NULL, MemcpyHtoD, sc, scales, sizeof scales), 0);
  const void *pa = (const void *)(uintptr_t)sc, *pb = (const void *)(uintptr_t)(sc + 4),
             *pm = (const void *)(uintptr_t)(sc + 12);
  assert_int_equal(RT_LT(&err, NULL, MatmulDescSetAttribute, op, A_SCALE_A, &pa, sizeof pa), 0);
  assert_int_equal(RT_LT(&err, NULL, MatmulDescSetAttribute, op, A_SCALE_B, &pb, sizeof pb), 0);
  assert_int_equal(RT_LT(&err, NULL, MatmulDescSetAttribute, op, A_AMAX_D, &pm, sizeof pm), 0);
  float one = 1, zero = 0;
  if (RT_LT(&err, NULL, Matmul, h, op, &one, (const void *)(uintptr_t)A, la, (const void *)(uintptr_t)B, lb, &zero,
            (const void *)(uintptr_t)D, lc, (void *)(uintptr_t)D, lc, NULL, NULL, 0, NULL))
    fail_msg("%s", err.msg);
  float hd[M * N + 1];
  assert_int_equal(RT_CU(&err, NULL, MemcpyDtoH, hd, D, M * N * 4), 0);
  assert_int_equal(RT_CU(&err, NULL, MemcpyDtoH, &hd[M * N], sc + 12, 4), 0);
  double amax = 0;
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      double s = 0;
      for (int p = 0; p < K; p++) s += av[i * K + p] * bv[j * K + p];
      s *= 0.5 * 4.0;
      if (fabs(s) > amax) amax = fabs(s);
      if (hd[j * M + i] != (float)s) fail_msg("FP8 D(%d, %d) = %g, want %g", i, j, hd[j * M + i], s);
    }
  assert_true(hd[M * N] == (float)amax);
  /* FP8 outside the TN form: A not transposed, stored m x k */
  tt = 0;
  RtLtDesc la_n;
  assert_int_equal(RT_LT(&err, NULL, MatrixLayoutCreate, &la_n, T_E4M3, M, K, M), 0);
  assert_int_equal(RT_LT(&err, NULL, MatmulDescSetAttribute, op, A_TRANSA, &tt, sizeof tt), 0);
  assert_int_equal(RT_LT(&err, "fp8 NN", Matmul, h, op, &one, (const void *)(uintptr_t)A, la_n,
                         (const void *)(uintptr_t)B, lb, &zero, (const void *)(uintptr_t)D, lc, (void *)(uintptr_t)D,
                         lc, NULL, NULL, 0, NULL), -1);
  has(err.msg, "CUBLAS_STATUS_NOT_SUPPORTED");
  has(err.msg, "FP8 matmuls run only in the TN form");
  rt_lt.MatrixLayoutDestroy(la_n);
  rt_lt.MatmulDescDestroy(op);
  rt_lt.MatrixLayoutDestroy(la);
  rt_lt.MatrixLayoutDestroy(lb);
  rt_lt.MatrixLayoutDestroy(lc);
  rt_lt.Destroy(h);
  dev_close();
}

/* ditc's row-major matmuls (cuda_api.c's mapping onto cuBLASLt) on the simulated cuBLASLt */
static void test_blas_rowmajor(void **state) {
  (void)state;
  dev_open();
  IrErr err;
  RtBlas *b;
  if (rt_blas_init(&b, &err)) fail_msg("%s", err.msg);
  enum { M = 6, N = 5, K = 7, BATCH = 3, STRIDE = 64 };
  int runs = 0;
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++)
      for (int epi = 0; epi < 3; epi++)
        for (int type = 0; type < 3; type++) {
          IrDType dt = type == 0 ? IR_F32 : IR_BF16;
          int d_f32 = type == 2;
          size_t es = dt == IR_F32 ? 4 : 2, ds = dt == IR_F32 || d_f32 ? 4 : 2;
          RtBlasMatmulDesc d = {.dtype = dt, .m = M, .n = N, .k = K, .trans_a = ta, .trans_b = tb, .batch = BATCH,
                                .stride_a = STRIDE, .stride_b = tb ? 0 : STRIDE, .stride_d = STRIDE,
                                .epilogue = (RtBlasEpilogue)epi, .d_f32 = d_f32};
          double A[BATCH * STRIDE], B[BATCH * STRIDE], bias[N];
          unsigned char ha[BATCH * STRIDE * 4], hb[BATCH * STRIDE * 4], hbias[N * 4], hd[BATCH * STRIDE * 4];
          for (int i = 0; i < BATCH * STRIDE; i++) {
            A[i] = as_type(dt == IR_F32 ? T_32F : T_16BF, rnd());
            B[i] = as_type(dt == IR_F32 ? T_32F : T_16BF, rnd());
            put(dt == IR_F32 ? T_32F : T_16BF, ha, i, A[i]);
            put(dt == IR_F32 ? T_32F : T_16BF, hb, i, B[i]);
          }
          int dtype_d = ds == 4 ? T_32F : T_16BF;
          for (int j = 0; j < N; j++) put(dtype_d, hbias, j, bias[j] = as_type(dtype_d, rnd()));
          CUdeviceptr dA = dalloc(sizeof ha), dB = dalloc(sizeof hb), dD = dalloc(sizeof hd), dbias = dalloc(N * 4);
          assert_int_equal(RT_CU(&err, NULL, MemcpyHtoD, dA, ha, BATCH * STRIDE * es), 0);
          assert_int_equal(RT_CU(&err, NULL, MemcpyHtoD, dB, hb, BATCH * STRIDE * es), 0);
          assert_int_equal(RT_CU(&err, NULL, MemcpyHtoD, dbias, hbias, N * ds), 0);
          if (rt_blas_matmul(b, &d, 0.5f, dA, dB, 0, 0, dD, epi ? dbias : 0, NULL, "rowmajor", &err))
            fail_msg("%s", err.msg);
          assert_int_equal(RT_CU(&err, NULL, MemcpyDtoH, hd, dD, BATCH * STRIDE * ds), 0);
          for (int t = 0; t < BATCH; t++)
            for (int i = 0; i < M; i++)
              for (int j = 0; j < N; j++) {
                double s = 0;
                for (int l = 0; l < K; l++) {
                  double x = ta ? A[t * STRIDE + l * M + i] : A[t * STRIDE + i * K + l];
                  double y = tb ? B[j * K + l] : B[t * STRIDE + l * N + j];
                  s += x * y;
                }
                s *= 0.5;
                if (epi) s += bias[j];
                if (epi == RT_BLAS_EPI_GELU_TANH_BIAS) s = gelu_tanh(s);
                double got = get(dtype_d, hd, t * STRIDE + i * N + j);
                double tol = dtype_d == T_32F ? 1e-5 : 1e-2;
                if (fabs(got - s) > tol * (fabs(s) > 1 ? fabs(s) : 1))
                  fail_msg("ta %d tb %d epi %d type %d: D[%d][%d][%d] = %g, want %g", ta, tb, epi, type, t, i, j, got, s);
              }
          runs++;
        }
  assert_int_equal(runs, 36);
  rt_blas_free(b);
  dev_close();
}

/* The IMMA matmul (i8 A [m, k] rows by B [n, k] rows, i32 D) through rt_blas on the simulated cuBLASLt
 * equals the plan's reference GEMM (cg_gemm_ref: exact int32 sums); and the layouts cuBLASLt's IMMA
 * rules exclude (k or n not a multiple of 4, another transposition, an epilogue) are refused, by the
 * simulation and by the plan validation. */
static void test_blas_int8(void **state) {
  (void)state;
  dev_open();
  IrErr err;
  RtBlas *b;
  if (rt_blas_init(&b, &err)) fail_msg("%s", err.msg);
  enum { M = 5, N = 12, K = 40 };
  int8_t ha[M * K], hb[N * K];
  int32_t got[M * N], want[M * N];
  for (int i = 0; i < M * K; i++) ha[i] = (int8_t)(i * 37 % 255 - 127);
  for (int i = 0; i < N * K; i++) hb[i] = (int8_t)(i * 91 % 255 - 127);
  CUdeviceptr dA = dalloc(sizeof ha), dB = dalloc(sizeof hb), dD = dalloc(sizeof got);
  assert_int_equal(RT_CU(&err, NULL, MemcpyHtoD, dA, ha, sizeof ha), 0);
  assert_int_equal(RT_CU(&err, NULL, MemcpyHtoD, dB, hb, sizeof hb), 0);
  RtBlasMatmulDesc d = {.dtype = IR_I8, .m = M, .n = N, .k = K, .trans_b = 1};
  if (rt_blas_matmul(b, &d, 1.0f, dA, dB, 0, 0, dD, 0, NULL, "int8", &err)) fail_msg("%s", err.msg);
  assert_int_equal(RT_CU(&err, NULL, MemcpyDtoH, got, dD, sizeof got), 0);
  /* the reference GEMM over an "arena" holding A, B and D */
  static char arena[4096] __attribute__((aligned(256)));
  memcpy(arena, ha, sizeof ha);
  memcpy(arena + 256, hb, sizeof hb);
  CgGemm g = {.dtype = IR_I8, .d_dtype = IR_I32, .trans_b = 1, .m = M, .n = N, .k = K, .batch = 1, .lda = K, .ldb = K,
              .ldd = N, .a = {CG_SPACE_ACT, 0}, .b = {CG_SPACE_ACT, 256}, .d = {CG_SPACE_ACT, 1024}, .alpha = 1.0f};
  cg_gemm_ref(&g, arena, NULL);
  memcpy(want, arena + 1024, sizeof want);
  for (int i = 0; i < M * N; i++) {
    int32_t s = 0;
    for (int l = 0; l < K; l++) s += ha[i / N * K + l] * hb[i % N * K + l];
    assert_int_equal(want[i], s);
    assert_int_equal(got[i], s);
  }
  /* what cuBLASLt's IMMA kernels do not run */
  RtBlasPlan *p;
  RtBlasMatmulDesc bad = d;
  bad.k = 42; /* k not a multiple of 4 */
  assert_int_not_equal(rt_blas_plan_new(b, &bad, "int8", &p, &err), 0);
  if (!strstr(err.msg, "multiples of 4")) fail_msg("%s", err.msg);
  bad = d;
  bad.n = 10; /* cuBLASLt's m */
  assert_int_not_equal(rt_blas_plan_new(b, &bad, "int8", &p, &err), 0);
  if (!strstr(err.msg, "multiples of 4")) fail_msg("%s", err.msg);
  bad = d;
  bad.trans_b = 0;
  assert_int_not_equal(rt_blas_plan_new(b, &bad, "int8", &p, &err), 0);
  if (!strstr(err.msg, "TN form")) fail_msg("%s", err.msg);
  bad = d;
  bad.epilogue = RT_BLAS_EPI_BIAS;
  assert_int_not_equal(rt_blas_plan_new(b, &bad, "int8", &p, &err), 0);
  /* the plan validation names the rule */
  CgPlan plan = {.arena_bytes = 4096, .precision = IR_F32, .tuning = "default", .batch = 1, .status_offset = -1};
  CgStep st = {.kind = CG_STEP_GEMM, .gemm = g, .what = "int8"};
  CgIo io[2] = {{.name = "x", .dtype = IR_F32, .rank = 1, .shape = {4}, .offset = 2048},
                {.name = "y", .dtype = IR_F32, .rank = 1, .shape = {4}, .offset = 3072}};
  plan.steps = &st, plan.n_steps = 1;
  plan.inputs = &io[0], plan.n_inputs = 1, plan.outputs = &io[1], plan.n_outputs = 1;
  IrErr pe = {{0}};
  if (cg_plan_check(&plan, &pe)) fail_msg("%s", pe.msg);
  st.gemm.k = 38, st.gemm.lda = st.gemm.ldb = 38;
  assert_int_not_equal(cg_plan_check(&plan, &pe), 0);
  if (!strstr(pe.msg, "IMMA") || !strstr(pe.msg, "multiples of 4")) fail_msg("%s", pe.msg);
  st.gemm = g;
  st.gemm.b.offset = 264; /* 8-byte aligned */
  assert_int_not_equal(cg_plan_check(&plan, &pe), 0);
  if (!strstr(pe.msg, "16-byte aligned")) fail_msg("%s", pe.msg);
  rt_blas_free(b);
  dev_close();
}

/* ---- the cuda backend on the simulation ---------------------------------------------- */

static void test_backend_tiny_plan(void **state) {
  (void)state;
  /* the plan's source as the CLI compiles it: the dialect prelude, then the kernels */
  const char *prelude = emu_cuda_prelude_text();
  size_t n = strlen(prelude) + sizeof TINY_SOURCE + 64;
  char *src = malloc(n);
  snprintf(src, n, "%s\n#line 1 \"ditc_forward.cu\"\n%s", prelude, TINY_SOURCE);
  CgPackCubin cub = {.arch = "sm_90", .ptxas_log = ""};
  unsigned char *image = NULL;
  IrErr err;
  CgNvrtc *nv = cg_nvrtc_open(NULL, &err);
  if (!nv) {
    free(src);
    TU_SKIP(err.msg);
  }
  char inc[1100];
  snprintf(inc, sizeof inc, "-I%s/include", getenv("CUDA_HOME") ? getenv("CUDA_HOME") : "/usr/local/cuda");
  const char *opts[1] = {inc};
  CgCompiled c;
  if (cg_nvrtc_compile(nv, src, "ditc_forward.cu", "sm_90", opts, 1, CG_OUT_CUBIN, &c, &err)) fail_msg("%s", err.msg);
  image = c.cubin, cub.size = c.cubin_size, c.cubin = NULL;
  cub.image = image;
  cg_compiled_free(&c);
  cg_nvrtc_close(nv);
  CgPlan *p = tiny_plan();
  float blob[20];
  tiny_blob(blob);
  RtBackend *b = rt_backend_new("cuda", &err);
  if (!b) fail_msg("%s", err.msg);
  RtModel m = {.plan = p, .blob = blob, .cubins = &cub, .n_cubins = 1};
  if (b->prepare(b, &m, &err)) fail_msg("%s", err.msg);
  /* the first run launches the steps and captures them; the later ones replay the graph */
  for (int rep = 0; rep < 3; rep++) {
    RtTensor x = rt_tensor_new(IR_F32, 2, (int64_t[]){2, 4}), y = {0};
    for (int i = 0; i < 8; i++) ((float *)x.data)[i] = (float)(i * (rep + 1)) - 3.0f;
    if (b->run(b, &x, &y, &err)) fail_msg("run %d: %s", rep, err.msg);
    float want[6];
    tiny_expect(x.data, want);
    for (int i = 0; i < 6; i++)
      if (fabsf(((float *)y.data)[i] - want[i]) > 1e-5f) fail_msg("run %d: y[%d] = %g, want %g", rep, i, ((float *)y.data)[i], want[i]);
    rt_tensor_free(&x);
    rt_tensor_free(&y);
  }
  assert_true(b->device_bytes(b) > 0);
  rt_backend_free(b);
  /* a step whose block is over the device's limit: the driver's refusal names the step */
  p->steps[1].block[0] = 2048;
  b = rt_backend_new("cuda", &err);
  if (b->prepare(b, &m, &err)) fail_msg("%s", err.msg);
  RtTensor x = rt_tensor_new(IR_F32, 2, (int64_t[]){2, 4}), y = {0};
  assert_int_equal(b->run(b, &x, &y, &err), -1);
  has(err.msg, "cuLaunchKernel failed: CUDA_ERROR_INVALID_VALUE (invalid argument) at runtime/backend_cuda.c");
  has(err.msg, "(step 1: kernel k_add_c (%3 add))");
  has(err.msg, "[simulated driver: kernel k_add_c: block (2048, 1, 1) is outside the device's limits");
  rt_tensor_free(&x);
  rt_backend_free(b);
  tiny_plan_free(p);
  free(image);
  free(src);
}

static int teardown(void **state) {
  (void)state;
  free(sm90_cubin);
  sm90_cubin = NULL;
  emu_shutdown();
  return 0;
}

/* The FP8 matmul (e4m3 A [m, k] rows by B [n, k] rows, f32 D, COMPUTE_32F) through rt_blas on the
 * simulated cuBLASLt equals the plan's reference GEMM (cg_gemm_ref: the decoded products summed in f32
 * in k order; values on a quarter grid keep every sum exact, so any order agrees); the forms cuBLASLt's
 * FP8 kernels do not run (k not a multiple of 16, another transposition, an epilogue) are refused, by
 * the simulation and by the plan validation (which also refuses a plan for an architecture before
 * sm_89 and an operand not 16-byte aligned). */
static void test_blas_fp8(void **state) {
  (void)state;
  dev_open();
  IrErr err;
  RtBlas *b;
  if (rt_blas_init(&b, &err)) fail_msg("%s", err.msg);
  enum { M = 5, N = 32, K = 48 };
  uint8_t ha[M * K], hb[N * K];
  float got[M * N], want[M * N];
  for (int i = 0; i < M * K; i++) ha[i] = ditc_f32_to_e4m3((float)(i * 37 % 17 - 8) * 0.25f);
  for (int i = 0; i < N * K; i++) hb[i] = ditc_f32_to_e4m3((float)(i * 91 % 29 - 14) * 0.5f);
  CUdeviceptr dA = dalloc(sizeof ha), dB = dalloc(sizeof hb), dD = dalloc(sizeof got);
  assert_int_equal(RT_CU(&err, NULL, MemcpyHtoD, dA, ha, sizeof ha), 0);
  assert_int_equal(RT_CU(&err, NULL, MemcpyHtoD, dB, hb, sizeof hb), 0);
  RtBlasMatmulDesc d = {.dtype = IR_E4M3, .m = M, .n = N, .k = K, .trans_b = 1, .d_f32 = 1};
  if (rt_blas_matmul(b, &d, 1.0f, dA, dB, 0, 0, dD, 0, NULL, "fp8", &err)) fail_msg("%s", err.msg);
  assert_int_equal(RT_CU(&err, NULL, MemcpyDtoH, got, dD, sizeof got), 0);
  static char arena[4096] __attribute__((aligned(256)));
  memcpy(arena, ha, sizeof ha);
  memcpy(arena + 256, hb, sizeof hb);
  CgGemm g = {.dtype = IR_E4M3, .d_dtype = IR_F32, .trans_b = 1, .m = M, .n = N, .k = K, .batch = 1, .lda = K,
              .ldb = K, .ldd = N, .a = {CG_SPACE_ACT, 0}, .b = {CG_SPACE_ACT, 256}, .d = {CG_SPACE_ACT, 2048},
              .alpha = 1.0f};
  cg_gemm_ref(&g, arena, NULL);
  memcpy(want, arena + 2048, sizeof want);
  for (int i = 0; i < M * N; i++) {
    double s = 0;
    for (int l = 0; l < K; l++) s += (double)ditc_e4m3_to_f32(ha[i / N * K + l]) * ditc_e4m3_to_f32(hb[i % N * K + l]);
    if (want[i] != (float)s || got[i] != (float)s) fail_msg("D[%d]: reference %g, simulated %g, want %g", i, want[i], got[i], s);
  }
  /* what cuBLASLt's FP8 kernels do not run */
  RtBlasPlan *p;
  RtBlasMatmulDesc bad = d;
  bad.k = 40; /* k not a multiple of 16 */
  assert_int_not_equal(rt_blas_plan_new(b, &bad, "fp8", &p, &err), 0);
  if (!strstr(err.msg, "multiples of 16")) fail_msg("%s", err.msg);
  bad = d;
  bad.trans_b = 0;
  assert_int_not_equal(rt_blas_plan_new(b, &bad, "fp8", &p, &err), 0);
  if (!strstr(err.msg, "TN form")) fail_msg("%s", err.msg);
  bad = d;
  bad.epilogue = RT_BLAS_EPI_BIAS;
  assert_int_not_equal(rt_blas_plan_new(b, &bad, "fp8", &p, &err), 0);
  /* the plan validation names the rule */
  CgPlan plan = {.arena_bytes = 4096, .precision = IR_F32, .tuning = "sm_90", .batch = 1, .status_offset = -1};
  CgStep st = {.kind = CG_STEP_GEMM, .gemm = g, .what = "fp8"};
  CgIo io[2] = {{.name = "x", .dtype = IR_F32, .rank = 1, .shape = {4}, .offset = 3840},
                {.name = "y", .dtype = IR_F32, .rank = 1, .shape = {4}, .offset = 3968}};
  plan.steps = &st, plan.n_steps = 1;
  plan.inputs = &io[0], plan.n_inputs = 1, plan.outputs = &io[1], plan.n_outputs = 1;
  IrErr pe = {{0}};
  if (cg_plan_check(&plan, &pe)) fail_msg("%s", pe.msg);
  st.gemm.k = 40, st.gemm.lda = st.gemm.ldb = 40;
  assert_int_not_equal(cg_plan_check(&plan, &pe), 0);
  if (!strstr(pe.msg, "FP8") || !strstr(pe.msg, "multiples of 16")) fail_msg("%s", pe.msg);
  st.gemm = g;
  st.gemm.b.offset = 264; /* 8-byte aligned */
  assert_int_not_equal(cg_plan_check(&plan, &pe), 0);
  if (!strstr(pe.msg, "16-byte aligned")) fail_msg("%s", pe.msg);
  st.gemm = g;
  st.gemm.trans_b = 0, st.gemm.ldb = N;
  assert_int_not_equal(cg_plan_check(&plan, &pe), 0);
  if (!strstr(pe.msg, "TN form")) fail_msg("%s", pe.msg);
  st.gemm = g;
  plan.tuning = "sm_86";
  assert_int_not_equal(cg_plan_check(&plan, &pe), 0);
  if (!strstr(pe.msg, "sm_89")) fail_msg("%s", pe.msg);
  rt_blas_free(b);
  dev_close();
}

int main(void) {
  /* before anything loads the driver or compiles a kernel */
  setenv("DITC_CUDA_SIM", "1", 1);
  const char *child = getenv("DITC_TEST_CHILD");
  if (child && !strcmp(child, "load")) {
    IrErr err = {{0}};
    int rc = rt_cuda_load(&err);
    fputs(err.msg, stdout);
    return rc ? 1 : 0;
  }
  if (child && !strcmp(child, "stray")) return child_stray();
  if (child && !strcmp(child, "sm80")) {
    int rc = child_sm80();
    emu_shutdown();
    return rc;
  }
  unsetenv("DITC_CUDA_SIM_ARCH");
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_device, close_device),
      cmocka_unit_test_teardown(test_other_architectures, close_device),
      cmocka_unit_test_teardown(test_launch_and_bounds, close_device),
      cmocka_unit_test_teardown(test_shared_memory_limits, close_device),
      cmocka_unit_test_teardown(test_misaligned, close_device),
      cmocka_unit_test_teardown(test_outside_any_allocation, close_device),
      cmocka_unit_test_teardown(test_use_after_free, close_device),
      cmocka_unit_test_teardown(test_graph_replay_after_memory_moved, close_device),
      cmocka_unit_test_teardown(test_capture_rules, close_device),
      cmocka_unit_test_teardown(test_images_it_cannot_map, close_device),
      cmocka_unit_test_teardown(test_lt_descriptors, close_device),
      cmocka_unit_test_teardown(test_lt_refusals, close_device),
      cmocka_unit_test_teardown(test_lt_compute_types, close_device),
      cmocka_unit_test_teardown(test_blas_rowmajor, close_device),
      cmocka_unit_test_teardown(test_blas_int8, close_device),
      cmocka_unit_test_teardown(test_blas_fp8, close_device),
      cmocka_unit_test_teardown(test_backend_tiny_plan, close_device),
  };
  return tu_run_group(tests, NULL, teardown);
}
