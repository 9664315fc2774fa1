/*
 * test_cuda_api.c - the GPU runtime's loading, refusals and messages, and
 * the row-major -> column-major matmul mapping, all without a GPU.
 *
 * rt_cuda_load() runs once per process, so each loading scenario runs in a
 * child: a fork for environment overrides (DITC_LIBCUDA), a re-exec of this
 * binary for LD_LIBRARY_PATH (which the dynamic loader reads only at start).
 * Where a real driver is installed, loading may succeed; on a machine without
 * one (like CI) the exact messages are checked.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/cuda_api.h"
#include "testutil.h"

#define STUB "/usr/local/cuda/lib64/stubs/libcuda.so"
#define NO_DRIVER \
  "no NVIDIA driver: libcuda.so.1 not found (this machine has no GPU, or the driver is not installed)"

/* ---- children ------------------------------------------------------------ */

/* Run fn in a forked child; its message comes back in msg, its status returned. */
static int in_child(int (*fn)(IrErr *), char *msg, size_t n) {
  int fd[2];
  pid_t pid = tu_fork_piped(fd);
  if (pid == 0) {
    close(fd[0]);
    IrErr err = {{0}};
    int rc = fn(&err);
    ssize_t w = write(fd[1], err.msg, strlen(err.msg));
    (void)w;
    _exit(rc ? 1 : 0);
  }
  close(fd[1]);
  return tu_child_wait(fd[0], pid, msg, n);
}

/* Is a real driver installed here?  Checked in a child to leave us clean. */
static int probe_driver(IrErr *err) {
  (void)err;
  return dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL) ? 0 : 1;
}
static int driver_installed(void) {
  char msg[16];
  return in_child(probe_driver, msg, sizeof msg) == 0;
}

static int child_load(IrErr *err) {
  unsetenv("DITC_LIBCUDA");
  return rt_cuda_load(err);
}

static int child_load_stub_env(IrErr *err) {
  setenv("DITC_LIBCUDA", STUB, 1);
  return rt_cuda_load(err);
}

static int child_load_missing_env(IrErr *err) {
  setenv("DITC_LIBCUDA", "/nonexistent/libcuda.so.1", 1);
  return rt_cuda_load(err);
}

static int child_available(IrErr *err) {
  unsetenv("DITC_LIBCUDA");
  int yes = rt_cuda_available(err);
  /* asking twice gives the same answer (the load is done once) */
  IrErr again = {{0}};
  if (rt_cuda_available(&again) != yes || strcmp(again.msg, err->msg)) {
    snprintf(err->msg, sizeof err->msg, "second answer differs: %.900s", again.msg);
    return 2;
  }
  return yes ? 0 : 1;
}

static int child_device_open(IrErr *err) {
  unsetenv("DITC_LIBCUDA");
  RtCudaDevice d;
  int rc = rt_cuda_device_open(0, &d, err);
  if (!rc) rt_cuda_device_close(&d);
  return rc;
}

static int child_blas_init(IrErr *err) {
  unsetenv("DITC_LIBCUDA");
  RtBlas *b = (RtBlas *)1;
  int rc = rt_blas_init(&b, err);
  if (!rc) rt_blas_free(b);
  else if (b) snprintf(err->msg, sizeof err->msg, "failed init left a handle");
  return rc;
}

static int child_raw_lt_create(IrErr *err) {
  RtLtHandle h = NULL;
  RtLtStatus st = rt_lt.Create(&h);
  snprintf(err->msg, sizeof err->msg, "%s", rt_lt.GetStatusName(st));
  return st != 0 || h == NULL;
}

/* ---- loading the driver ------------------------------------------------------ */

static void test_load_without_driver(void **state) {
  (void)state;
  char msg[1024];
  int rc = in_child(child_load, msg, sizeof msg);
  if (driver_installed()) {
    if (rc) assert_string_equal(msg, "no CUDA device found");
    return;
  }
  assert_int_equal(rc, 1);
  assert_string_equal(msg, NO_DRIVER);
}

static void test_available_says_why(void **state) {
  (void)state;
  char msg[1024];
  int rc = in_child(child_available, msg, sizeof msg);
  assert_int_not_equal(rc, 2);
  if (driver_installed()) return;
  assert_int_equal(rc, 1);
  assert_string_equal(msg, NO_DRIVER);
  assert_int_equal(in_child(child_device_open, msg, sizeof msg), 1);
  assert_string_equal(msg, NO_DRIVER);
}

static void test_stub_refused_by_env(void **state) {
  (void)state;
  if (access(STUB, R_OK)) TU_SKIP("the CUDA driver stub " STUB " is not installed");
  char msg[1024];
  assert_int_equal(in_child(child_load_stub_env, msg, sizeof msg), 1);
  assert_string_equal(msg, "no NVIDIA driver: DITC_LIBCUDA=" STUB " is the CUDA toolkit's link "
                           "stub, not the driver; refusing it");
}

static void test_missing_env_library(void **state) {
  (void)state;
  char msg[1024];
  assert_int_equal(in_child(child_load_missing_env, msg, sizeof msg), 1);
  assert_non_null(strstr(msg, "no NVIDIA driver: DITC_LIBCUDA=/nonexistent/libcuda.so.1 cannot "
                              "be loaded: "));
}

/* Re-run this binary with the stub folder on LD_LIBRARY_PATH. */
static void test_stub_refused_on_library_path(void **state) {
  (void)state;
  if (access(STUB, R_OK)) TU_SKIP("the CUDA driver stub " STUB " is not installed");
  const char *env[] = {"LD_LIBRARY_PATH", "/usr/local/cuda/lib64/stubs", "DITC_TEST_CHILD", "load",
                       "DITC_LIBCUDA", NULL, NULL};
  char msg[1024];
  int rc = tu_reexec(env, msg, sizeof msg);
  assert_int_not_equal(rc, 99);
  if (driver_installed()) return; /* libcuda.so.1 is found first */
  assert_int_equal(rc, 1);
  assert_string_equal(msg, NO_DRIVER "; refusing " STUB ": it is the CUDA toolkit's link stub, "
                           "not the driver (take its folder off LD_LIBRARY_PATH)");
}

/* ---- the checking macros ------------------------------------------------------ */

static RtCuResult fake_error_name(RtCuResult r, const char **s) {
  if (r == RT_CUDA_ERROR_ILLEGAL_ADDRESS) return *s = "CUDA_ERROR_ILLEGAL_ADDRESS", 0;
  *s = NULL;
  return RT_CUDA_ERROR_INVALID_VALUE;
}
static RtCuResult fake_error_string(RtCuResult r, const char **s) {
  if (r == RT_CUDA_ERROR_ILLEGAL_ADDRESS) return *s = "an illegal memory access was encountered", 0;
  *s = NULL;
  return RT_CUDA_ERROR_INVALID_VALUE;
}
static int launches;
static RtCuResult fake_launch(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                              unsigned by, unsigned bz, unsigned smem, CUstream s, void **params,
                              void **extra) {
  (void)f, (void)gy, (void)gz, (void)bx, (void)by, (void)bz, (void)smem, (void)s, (void)params;
  (void)extra;
  launches++;
  return gx == 1 ? RT_CUDA_SUCCESS : RT_CUDA_ERROR_ILLEGAL_ADDRESS;
}
static RtCuResult fake_alloc(CUdeviceptr *p, size_t n) {
  *p = 0;
  return n > 100 ? 999 : 0;
}
static RtCuResult fake_sync(void) {
  return RT_CUDA_ERROR_ILLEGAL_ADDRESS;
}

/* The path __FILE__ is shown as: relative to the source tree. */
static const char *this_file(void) {
  const char *f = __FILE__;
#ifdef DITC_SOURCE_DIR
  size_t n = strlen(DITC_SOURCE_DIR);
  if (!strncmp(f, DITC_SOURCE_DIR "/", n + 1)) f += n + 1;
#endif
  return f;
}

static void test_cu_check_message(void **state) {
  (void)state;
  RtCudaApi saved = rt_cu;
  memset(&rt_cu, 0, sizeof rt_cu);
  rt_cu.GetErrorName = fake_error_name;
  rt_cu.GetErrorString = fake_error_string;
  rt_cu.LaunchKernel = fake_launch;
  rt_cu.MemAlloc = fake_alloc;
  rt_cu.CtxSynchronize = fake_sync;
  const char *what = "kernel blocks_0_attn_softmax, IR node %42 blocks.0.attn";
  IrErr err = {"untouched"};
  char want[1024];

  launches = 0;
  assert_int_equal(RT_CU(&err, what, LaunchKernel, NULL, 1, 1, 1, 32, 1, 1, 0, NULL, NULL, NULL),
                   0);
  assert_string_equal(err.msg, "untouched");

  int line = __LINE__ + 1;
  int rc = RT_CU(&err, what, LaunchKernel, NULL, 7, 1, 1, 32, 1, 1, 0, NULL, NULL, NULL);
  assert_int_equal(rc, -1);
  assert_int_equal(launches, 2);
  snprintf(want, sizeof want,
           "cuLaunchKernel failed: CUDA_ERROR_ILLEGAL_ADDRESS (an illegal memory access was "
           "encountered) at %s:%d (kernel blocks_0_attn_softmax, IR node %%42 blocks.0.attn)",
           this_file(), line);
  assert_string_equal(err.msg, want);
  assert_string_equal(this_file(), "tests/unit/test_cuda_api.c");

  /* a code the driver cannot name, no context */
  CUdeviceptr p;
  line = __LINE__ + 1;
  assert_int_equal(RT_CU(&err, NULL, MemAlloc, &p, 1000), -1);
  snprintf(want, sizeof want, "cuMemAlloc failed: CUDA error 999 at %s:%d", this_file(), line);
  assert_string_equal(err.msg, want);

  /* a call without arguments; a NULL err is allowed */
  assert_int_equal(RT_CU(NULL, "sync", CtxSynchronize), -1);
  line = __LINE__ + 1;
  assert_int_equal(RT_CU(&err, "", CtxSynchronize), -1);
  snprintf(want, sizeof want,
           "cuCtxSynchronize failed: CUDA_ERROR_ILLEGAL_ADDRESS (an illegal memory access was "
           "encountered) at %s:%d", this_file(), line);
  assert_string_equal(err.msg, want);

  /* without the driver's name functions, the number */
  rt_cu.GetErrorName = NULL;
  rt_cu.GetErrorString = NULL;
  char buf[64];
  assert_string_equal(rt_cu_result_str(700, buf, sizeof buf), "CUDA error 700");
  assert_int_equal(rt_cu_check(700, "cuMemcpyDtoH", "runtime/x.c", 9, "copy out", &err), -1);
  assert_string_equal(err.msg, "cuMemcpyDtoH failed: CUDA error 700 at runtime/x.c:9 (copy out)");
  rt_cu = saved;
}

static const char *fake_status_name(RtLtStatus s) {
  return s == 15 ? "CUBLAS_STATUS_NOT_SUPPORTED" : NULL;
}
static const char *fake_status_string(RtLtStatus s) {
  return s == 15 ? "the functionality requested is not supported" : NULL;
}
static RtLtStatus fake_lt_create(RtLtHandle *h) {
  *h = NULL;
  return 15;
}

static void test_lt_check_message(void **state) {
  (void)state;
  RtLtApi saved = rt_lt;
  memset(&rt_lt, 0, sizeof rt_lt);
  rt_lt.GetStatusName = fake_status_name;
  rt_lt.GetStatusString = fake_status_string;
  rt_lt.Create = fake_lt_create;
  IrErr err = {{0}};
  RtLtHandle h;
  int line = __LINE__ + 1;
  assert_int_equal(RT_LT(&err, "IR node %7 blocks.0.mlp.fc1", Create, &h), -1);
  char want[512];
  snprintf(want, sizeof want,
           "cublasLtCreate failed: CUBLAS_STATUS_NOT_SUPPORTED (the functionality requested is "
           "not supported) at %s:%d (IR node %%7 blocks.0.mlp.fc1)", this_file(), line);
  assert_string_equal(err.msg, want);
  assert_int_equal(rt_lt_check(3, "cublasLtMatmul", "a.c", 1, NULL, &err), -1);
  assert_string_equal(err.msg, "cublasLtMatmul failed: cuBLAS status 3 at a.c:1");
  assert_int_equal(rt_lt_check(0, "cublasLtMatmul", "a.c", 1, NULL, &err), 0);
  rt_lt = saved;
}

/* ---- cuBLASLt ------------------------------------------------------------------ */

static void test_blas_loads_without_gpu(void **state) {
  (void)state;
  IrErr err = {{0}};
  if (access("/usr/local/cuda/lib64/libcublasLt.so.13", R_OK)) TU_SKIP("cuBLASLt 13 is not installed");
  int rc = rt_blas_load(&err);
  if (rc) fail_msg("%s", err.msg);
  assert_true(rt_blas_version() >= 130000);
  assert_non_null(rt_lt.Matmul);
  assert_non_null(rt_lt.MatmulAlgoGetHeuristic);
  assert_string_equal(rt_lt.GetStatusName(0), "CUBLAS_STATUS_SUCCESS");
  assert_int_equal(rt_lt_check(1, "cublasLtCreate", "a.c", 2, NULL, &err), -1);
  assert_string_equal(err.msg, "cublasLtCreate failed: CUBLAS_STATUS_NOT_INITIALIZED (the "
                               "library was not initialized) at a.c:2");
  if (driver_installed()) return;
  /* What cublasLtCreate itself does without a driver: refuses (and leaks a
   * little, hence the child).  rt_blas_init never gets that far (next test). */
  char msg[1024];
  assert_int_equal(in_child(child_raw_lt_create, msg, sizeof msg), 1);
  assert_string_equal(msg, "CUBLAS_STATUS_NOT_INITIALIZED");
}

/* cuBLASLt builds descriptors without a GPU and checks each attribute's size,
 * so this proves the plans' attribute types are right. */
static void test_blas_describe_without_gpu(void **state) {
  (void)state;
  if (access("/usr/local/cuda/lib64/libcublasLt.so.13", R_OK)) TU_SKIP("cuBLASLt 13 is not installed");
  IrDType types[] = {IR_F32, IR_F16, IR_BF16};
  int plans = 0;
  for (int t = 0; t < 3; t++)
    for (int epi = 0; epi < 3; epi++)
      for (int tr = 0; tr < 4; tr++)
        for (int batch = 1; batch <= 3; batch += 2)
        for (int d_f32 = 0; d_f32 <= (t > 0); d_f32++) { /* f16/bf16 operands, f32 result */
          RtBlasMatmulDesc d = {.dtype = types[t], .m = 64, .n = 32, .k = 16, .trans_a = tr & 1,
                                .trans_b = tr >> 1, .batch = batch, .stride_a = 1024,
                                .stride_b = 0, .stride_d = 2048, .epilogue = (RtBlasEpilogue)epi,
                                .align = epi == 1 ? 16 : 0, .d_f32 = d_f32};
          RtBlasPlan *p = NULL;
          IrErr err = {{0}};
          if (rt_blas_plan_describe(&d, "IR node %3 x", &p, &err)) fail_msg("%s", err.msg);
          assert_non_null(p);
          assert_int_equal(rt_blas_plan_workspace(p), 0);
          /* a described plan has no algorithm: it refuses to run */
          assert_int_equal(rt_blas_plan_run(NULL, p, 1, 256, 256, 0, 0, 256, 256, NULL, "node",
                                            &err), -1);
          assert_string_equal(err.msg, "node: the matmul plan has no algorithm (describe only)");
          rt_blas_plan_free(p);
          plans++;
        }
  assert_int_equal(plans, 120);
  /* the i8 (IMMA) matmul runs only the TN form (A [m, k] rows by B [n, k] rows), without an epilogue */
  RtBlasMatmulDesc bad = {.dtype = IR_I8, .m = 1, .n = 1, .k = 1};
  RtBlasPlan *p = (RtBlasPlan *)1;
  IrErr err = {{0}};
  assert_int_equal(rt_blas_plan_describe(&bad, NULL, &p, &err), -1);
  assert_null(p);
  assert_string_equal(err.msg, "matmul: the i8 matmul (int32 result) runs A [m, k] by B [n, k] rows (cuBLASLt's TN "
                               "form) without an epilogue");
  /* the e4m3 (FP8) matmul likewise, into an f32 result */
  bad.dtype = IR_E4M3;
  assert_int_equal(rt_blas_plan_describe(&bad, NULL, &p, &err), -1);
  assert_string_equal(err.msg, "matmul: the e4m3 matmul runs A [m, k] by B [n, k] rows (cuBLASLt's FP8 TN form) into "
                               "an f32 result without an epilogue");
  RtBlasMatmulDesc fp8 = {.dtype = IR_E4M3, .m = 4, .n = 16, .k = 16, .trans_b = 1, .d_f32 = 1};
  if (rt_blas_plan_describe(&fp8, NULL, &p, &err)) fail_msg("%s", err.msg);
  rt_blas_plan_free(p);
  bad.dtype = IR_I32;
  assert_int_equal(rt_blas_plan_describe(&bad, NULL, &p, &err), -1);
  assert_string_equal(err.msg, "matmul: cuBLASLt runs f32, f16, bf16, i8 or e4m3, not i32");
}

static void test_blas_init_without_gpu(void **state) {
  (void)state;
  if (driver_installed()) TU_SKIP("a CUDA driver is installed; this test is about machines without one");
  char msg[1024];
  assert_int_equal(in_child(child_blas_init, msg, sizeof msg), 1);
  assert_string_equal(msg, NO_DRIVER);
}

static void test_blas_desc_checks(void **state) {
  (void)state;
  RtBlasColMajor cm;
  IrErr err = {{0}};
  RtBlasMatmulDesc d = {.dtype = IR_F32, .m = 4, .n = 5, .k = 6};
  assert_int_equal(rt_blas_colmajor(&d, &cm, &err), 0);
  d.dtype = IR_I32;
  assert_int_equal(rt_blas_colmajor(&d, &cm, &err), -1);
  assert_string_equal(err.msg, "matmul: cuBLASLt runs f32, f16, bf16, i8 or e4m3, not i32");
  d.dtype = IR_BF16;
  d.k = 0;
  assert_int_equal(rt_blas_colmajor(&d, &cm, &err), -1);
  assert_string_equal(err.msg, "matmul: bad size m=4 n=5 k=0");
  d.k = 6, d.lda = 5;
  assert_int_equal(rt_blas_colmajor(&d, &cm, &err), -1);
  assert_string_equal(err.msg, "matmul: row strides lda=5 ldb=5 ldd=5 are below the rows' "
                               "lengths 6, 5, 5");
  d.lda = 0, d.batch = 3, d.stride_a = 24, d.stride_b = 30, d.stride_d = 19;
  assert_int_equal(rt_blas_colmajor(&d, &cm, &err), -1);
  assert_string_equal(err.msg, "matmul: batch strides a=24 b=30 d=19 (d needs >= 20)");
  d.stride_d = 20;
  assert_int_equal(rt_blas_colmajor(&d, &cm, &err), 0);
  d.align = 1;
  assert_int_equal(rt_blas_colmajor(&d, &cm, &err), -1);
  assert_string_equal(err.msg, "matmul: alignment 1 is not a power of two >= 2");
  d.align = 2, d.d_f32 = 1; /* an f32 D needs 4 */
  assert_int_equal(rt_blas_colmajor(&d, &cm, &err), -1);
  assert_string_equal(err.msg, "matmul: alignment 2 is not a power of two >= 4");
  d.d_f32 = 0;
  d.align = 48;
  assert_int_equal(rt_blas_colmajor(&d, &cm, &err), -1);
  d.align = 0, d.epilogue = (RtBlasEpilogue)7;
  assert_int_equal(rt_blas_colmajor(&d, &cm, &err), -1);
  assert_string_equal(err.msg, "matmul: unknown epilogue 7");
}

/* cuBLASLt's column-major semantics, written from its documentation:
 * D(i, j) = alpha * sum_l opa(i, l) opb(l, j) + beta * C(i, j) (+ bias(i)),
 * element (r, c) of a column-major matrix at r + c * ld. */
static void colmajor_gemm(const RtBlasColMajor *cm, const float *a, const float *b, float *d,
                          const float *bias) {
  for (int64_t t = 0; t < cm->batch; t++)
    for (int64_t i = 0; i < cm->m; i++)
      for (int64_t j = 0; j < cm->n; j++) {
        double s = 0;
        for (int64_t l = 0; l < cm->k; l++) {
          const float *at = a + t * cm->stride_a, *bt = b + t * cm->stride_b;
          double x = cm->transa ? at[l + i * cm->lda] : at[i + l * cm->lda];
          double y = cm->transb ? bt[j + l * cm->ldb] : bt[l + j * cm->ldb];
          s += x * y;
        }
        if (bias) s += bias[i];
        d[t * cm->stride_d + i + j * cm->ldd] = (float)s;
      }
}

/* The row-major meaning ditc wants. */
static void rowmajor_gemm(const RtBlasMatmulDesc *p, const float *A, const float *B, float *D,
                          const float *bias) {
  int64_t lda = p->lda, ldb = p->ldb, ldd = p->ldd;
  for (int64_t t = 0; t < (p->batch ? p->batch : 1); t++)
    for (int64_t i = 0; i < p->m; i++)
      for (int64_t j = 0; j < p->n; j++) {
        double s = 0;
        for (int64_t l = 0; l < p->k; l++) {
          const float *At = A + t * p->stride_a, *Bt = B + t * p->stride_b;
          double x = p->trans_a ? At[l * lda + i] : At[i * lda + l];
          double y = p->trans_b ? Bt[j * ldb + l] : Bt[l * ldb + j];
          s += x * y;
        }
        if (bias) s += bias[j];
        D[t * p->stride_d + i * ldd + j] = (float)s;
      }
}

static void test_rowmajor_mapping(void **state) {
  (void)state;
  enum { M = 5, N = 3, K = 4, PAD = 2, BATCH = 2 };
  static float A[BATCH * 64], B[BATCH * 64], bias[N], got[BATCH * 64], want[BATCH * 64];
  unsigned seed = 7;
  for (size_t i = 0; i < sizeof A / sizeof A[0]; i++) {
    seed = seed * 1103515245u + 12345u;
    A[i] = (float)((seed >> 16) % 17) - 8;
    seed = seed * 1103515245u + 12345u;
    B[i] = (float)((seed >> 16) % 13) - 6;
  }
  for (int j = 0; j < N; j++) bias[j] = 100.0f * (float)(j + 1);
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++)
      for (int bcast = 0; bcast < 2; bcast++) {
        RtBlasMatmulDesc d = {.dtype = IR_F32, .m = M, .n = N, .k = K, .trans_a = ta,
                              .trans_b = tb, .batch = BATCH};
        d.lda = (ta ? M : K) + PAD;
        d.ldb = (tb ? K : N) + PAD;
        d.ldd = N + PAD;
        d.stride_a = 64, d.stride_b = bcast ? 0 : 64, d.stride_d = 64;
        RtBlasColMajor cm;
        IrErr err = {{0}};
        assert_int_equal(rt_blas_colmajor(&d, &cm, &err), 0);
        assert_int_equal(cm.m, N);
        assert_int_equal(cm.n, M);
        assert_int_equal(cm.k, K);
        assert_int_equal(cm.d_rows, N);
        assert_int_equal(cm.d_cols, M);
        /* the layouts cuBLASLt is told must hold op(a) m x k, op(b) k x n */
        assert_int_equal(cm.transa ? cm.a_cols : cm.a_rows, cm.m);
        assert_int_equal(cm.transa ? cm.a_rows : cm.a_cols, cm.k);
        assert_int_equal(cm.transb ? cm.b_cols : cm.b_rows, cm.k);
        assert_int_equal(cm.transb ? cm.b_rows : cm.b_cols, cm.n);
        assert_true(cm.lda >= cm.a_rows && cm.ldb >= cm.b_rows && cm.ldd >= cm.d_rows);
        for (int with_bias = 0; with_bias < 2; with_bias++) {
          memset(got, 0, sizeof got);
          memset(want, 0, sizeof want);
          /* cuBLASLt's A is our B, its B our A */
          colmajor_gemm(&cm, B, A, got, with_bias ? bias : NULL);
          rowmajor_gemm(&d, A, B, want, with_bias ? bias : NULL);
          assert_memory_equal(got, want, sizeof got);
        }
      }
  /* packed defaults */
  RtBlasMatmulDesc p = {.dtype = IR_F16, .m = 8, .n = 16, .k = 32, .trans_b = 1};
  RtBlasColMajor cm;
  assert_int_equal(rt_blas_colmajor(&p, &cm, NULL), 0);
  assert_int_equal(cm.transa, 1);
  assert_int_equal(cm.transb, 0);
  assert_int_equal(cm.lda, 32); /* weight [n, k] row-major: k apart */
  assert_int_equal(cm.ldb, 32); /* x [m, k] */
  assert_int_equal(cm.ldd, 16);
  assert_int_equal(cm.batch, 1);
}

int main(void) {
  unsetenv("DITC_CUDA_SIM"); /* these are the real loader's tests (test_cuda_sim has the simulation's) */
  const char *child = getenv("DITC_TEST_CHILD");
  if (child && !strcmp(child, "load")) {
    IrErr err = {{0}};
    int rc = rt_cuda_load(&err);
    fputs(err.msg, stdout);
    return rc ? 1 : 0;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_load_without_driver),
      cmocka_unit_test(test_available_says_why),
      cmocka_unit_test(test_stub_refused_by_env),
      cmocka_unit_test(test_missing_env_library),
      cmocka_unit_test(test_stub_refused_on_library_path),
      cmocka_unit_test(test_cu_check_message),
      cmocka_unit_test(test_lt_check_message),
      cmocka_unit_test(test_blas_loads_without_gpu),
      cmocka_unit_test(test_blas_describe_without_gpu),
      cmocka_unit_test(test_blas_init_without_gpu),
      cmocka_unit_test(test_blas_desc_checks),
      cmocka_unit_test(test_rowmajor_mapping),
  };
  return tu_run_group(tests, NULL, NULL);
}
