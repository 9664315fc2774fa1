/*
 * test_nvrtc.c - NVRTC loaded at run time: CUBINs for sm_80 and sm_90 (no
 * GPU needed), ptxas' per-kernel report, compile errors with the marked
 * source lines, architecture checks, and the message when NVRTC is missing.
 * Without NVRTC on the machine the compiling tests skip.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "codegen/nvrtc.h"
#include "testutil.h"

static CgNvrtc *nv;
static IrErr open_err;

static int group_setup(void **state) {
  (void)state;
  nv = cg_nvrtc_open(NULL, &open_err);
  if (!nv) print_message("NVRTC tests skip: %s\n", open_err.msg);
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  cg_nvrtc_close(nv);
  return 0;
}

#define NEED_NVRTC() \
  do { if (!nv) TU_SKIP("NVRTC not found"); } while (0)

/* Two kernels: one with shared memory and a barrier, one calling a device function. */
static const char KERNELS[] =
    "extern \"C\" __global__ void reverse256(float *x) {\n"
    "  __shared__ float s[256];\n"
    "  s[threadIdx.x] = x[threadIdx.x];\n"
    "  __syncthreads();\n"
    "  x[threadIdx.x] = s[255 - threadIdx.x];\n"
    "}\n"
    "extern \"C\" __global__ void axpy(float a, const float *x, float *y, int n) {\n"
    "  int i = blockIdx.x * blockDim.x + threadIdx.x;\n"
    "  if (i < n) y[i] = a * x[i] + y[i];\n"
    "}\n";

static int is_elf(const unsigned char *p, size_t n) {
  return n > 4 && p[0] == 0x7f && p[1] == 'E' && p[2] == 'L' && p[3] == 'F';
}

static void test_version_and_archs(void **state) {
  (void)state;
  NEED_NVRTC();
  int major = 0, minor = -1;
  cg_nvrtc_version(nv, &major, &minor);
  assert_true(major >= 11);
  assert_true(minor >= 0);
  char want[32];
  snprintf(want, sizeof want, "nvrtc %d.%d", major, minor);
  assert_string_equal(cg_nvrtc_version_string(nv), want);
  assert_non_null(cg_nvrtc_path(nv));
  const int *sm;
  int n = cg_nvrtc_supported_archs(nv, &sm);
  if (n > 0) {
    int has90 = 0;
    for (int i = 0; i < n; i++) {
      if (i) assert_true(sm[i] > sm[i - 1]);
      has90 |= sm[i] == 90;
    }
    assert_true(has90);
  }
}

static void compile_for(const char *arch) {
  CgCompiled c;
  IrErr err = {{0}};
  int rc = cg_nvrtc_compile(nv, KERNELS, "test_kernels.cu", arch, NULL, 0, CG_OUT_CUBIN, &c, &err);
  if (rc) fail_msg("%s", err.msg);
  assert_true(is_elf(c.cubin, c.cubin_size));
  assert_null(c.ptx);
  assert_null(c.diag);
  assert_non_null(c.log);
  assert_int_equal(c.n_kernels, 2);
  const CgKernelStats *r = cg_compiled_find_kernel(&c, "reverse256");
  const CgKernelStats *a = cg_compiled_find_kernel(&c, "axpy");
  assert_non_null(r);
  assert_non_null(a);
  assert_null(cg_compiled_find_kernel(&c, "nope"));
  assert_true(r->registers > 0 && r->registers <= 255);
  assert_true(a->registers > 0 && a->registers <= 255);
  assert_int_equal(r->smem, 256 * 4);
  assert_int_equal(a->smem, 0);
  assert_int_equal(r->spill_stores, 0);
  assert_int_equal(r->spill_loads, 0);
  assert_int_equal(a->stack_frame, 0);
  cg_compiled_free(&c);
}

static void test_cubin_sm80(void **state) {
  (void)state;
  NEED_NVRTC();
  compile_for("sm_80");
}

static void test_cubin_sm90(void **state) {
  (void)state;
  NEED_NVRTC();
  compile_for("sm_90");
}

static void test_cubin_and_ptx(void **state) {
  (void)state;
  NEED_NVRTC();
  CgCompiled c;
  IrErr err = {{0}};
  const char *opts[] = {"-DSCALE=3", "--std=c++17"};
  const char *src = "extern \"C\" __global__ void k(float *x) { x[0] *= SCALE; }\n";
  if (cg_nvrtc_compile(nv, src, "k.cu", "sm_90a", opts, 2, CG_OUT_CUBIN | CG_OUT_PTX, &c, &err))
    fail_msg("%s", err.msg);
  assert_true(is_elf(c.cubin, c.cubin_size));
  assert_non_null(c.ptx);
  assert_int_equal(strlen(c.ptx), c.ptx_size);
  assert_non_null(strstr(c.ptx, ".target sm_90a"));
  assert_non_null(strstr(c.ptx, ".entry k"));
  cg_compiled_free(&c);

  /* PTX alone: no ptxas, so no CUBIN and no kernel report. */
  if (cg_nvrtc_compile(nv, src, "k.cu", "sm_80", opts, 1, CG_OUT_PTX, &c, &err))
    fail_msg("%s", err.msg);
  assert_null(c.cubin);
  assert_int_equal(c.n_kernels, 0);
  assert_non_null(strstr(c.ptx, ".target sm_80"));
  cg_compiled_free(&c);
}

/* Many live values under a tight register cap (24 is the least ptxas takes for
 * sm_90): ptxas must spill, and say so. */
static void test_spills_parsed(void **state) {
  (void)state;
  NEED_NVRTC();
  const char *src =
      "extern \"C\" __global__ void heavy(const float *x, float *y) {\n"
      "  float v[48];\n"
      "  #pragma unroll\n"
      "  for (int i = 0; i < 48; i++) v[i] = x[i * blockDim.x + threadIdx.x];\n"
      "  float s = 0.f;\n"
      "  #pragma unroll\n"
      "  for (int i = 0; i < 48; i++) s += v[i] * v[47 - i] + v[(i * 7) % 48];\n"
      "  #pragma unroll\n"
      "  for (int i = 0; i < 48; i++) y[i * blockDim.x + threadIdx.x] = v[i] * s;\n"
      "}\n";
  const char *opts[] = {"--maxrregcount=24"};
  CgCompiled c;
  IrErr err = {{0}};
  if (cg_nvrtc_compile(nv, src, "heavy.cu", "sm_90", opts, 1, CG_OUT_CUBIN, &c, &err))
    fail_msg("%s", err.msg);
  const CgKernelStats *k = cg_compiled_find_kernel(&c, "heavy");
  assert_non_null(k);
  assert_true(k->registers > 0 && k->registers <= 24);
  assert_true(k->spill_stores > 0);
  assert_true(k->spill_loads > 0);
  assert_true(k->stack_frame > 0);
  cg_compiled_free(&c);
}

static void test_syntax_error(void **state) {
  (void)state;
  NEED_NVRTC();
  const char *src =
      "// line 1\n"
      "// line 2\n"
      "extern \"C\" __global__ void broken(float *x) {\n"
      "  float y = x[0]\n"      /* 4: missing ';' ... */
      "  x[1] = y;\n"           /* 5: ...reported here */
      "}\n"
      "// line 7\n"
      "// line 8\n"
      "// line 9\n"
      "// line 10\n";
  CgCompiled c;
  IrErr err = {{0}};
  assert_int_equal(cg_nvrtc_compile(nv, src, "broken.cu", "sm_90", NULL, 0, CG_OUT_CUBIN, &c, &err),
                   -1);
  assert_null(c.cubin);
  assert_non_null(c.diag);
  /* The call, NVRTC's status, the log's error line, the marked source line. */
  assert_non_null(strstr(c.diag, "NVRTC could not compile broken.cu for sm_90"));
  assert_non_null(strstr(c.diag, "NVRTC_ERROR_COMPILATION"));
  assert_non_null(strstr(c.diag, "nvrtcCompileProgram at "));
  assert_non_null(strstr(c.diag, "broken.cu(5): error"));
  assert_non_null(strstr(c.diag, ">     5 |   x[1] = y;"));
  assert_non_null(strstr(c.diag, "      2 | // line 2"));
  assert_non_null(strstr(c.diag, "      8 | // line 8"));
  assert_null(strstr(c.diag, "      1 | // line 1")); /* only +-3 lines */
  assert_null(strstr(c.diag, "      9 | // line 9"));
  assert_non_null(strstr(c.diag, "NVRTC log:\n"));
  assert_non_null(strstr(c.log, "error"));
  /* The IrErr carries the start of the same message. */
  assert_int_equal(strncmp(err.msg, c.diag, strlen(err.msg)), 0);
  assert_non_null(strstr(err.msg, ">     5 |"));
  cg_compiled_free(&c);
}

static void test_bad_arch(void **state) {
  (void)state;
  const char *bad[] = {"", "sm_9", "sm_1000", "sm_090", "sm90", "compute_90", "sm_90x",
                       "sm_80a", "sm_90f", "sm_", "SM_90", "sm_90aa"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    IrErr err = {{0}};
    CgArch a;
    if (cg_arch_parse(bad[i], &a, &err) == 0) fail_msg("accepted \"%s\"", bad[i]);
    assert_non_null(strstr(err.msg, "architecture"));
  }
  IrErr err = {{0}};
  CgArch a;
  assert_int_equal(cg_arch_parse("sm_90a", &a, &err), 0);
  assert_int_equal(a.sm, 90);
  assert_int_equal(a.suffix, 'a');
  assert_int_equal(cg_arch_parse("sm_100f", &a, &err), 0);
  assert_int_equal(a.sm, 100);
  assert_int_equal(a.suffix, 'f');
  assert_int_equal(cg_arch_parse("sm_75", &a, &err), 0);
  assert_int_equal(a.suffix, 0);
  assert_int_equal(cg_arch_parse("compute_90", &a, &err), -1);
  assert_non_null(strstr(err.msg, "sm_90"));

  NEED_NVRTC();
  /* Well spelt but too old for this NVRTC: the message lists what it can do. */
  if (cg_nvrtc_supported_archs(nv, NULL) > 0) {
    assert_int_equal(cg_nvrtc_check_arch(nv, "sm_35", &err), -1);
    assert_non_null(strstr(err.msg, "not supported"));
    assert_non_null(strstr(err.msg, "sm_90"));
  }
  CgCompiled c;
  assert_int_equal(cg_nvrtc_compile(nv, KERNELS, "k.cu", "sm_9", NULL, 0, CG_OUT_CUBIN, &c, &err),
                   -1);
  assert_non_null(strstr(err.msg, "sm_9"));
  cg_compiled_free(&c);
  /* The target is the arch argument, not an option. */
  const char *opts[] = {"--gpu-architecture=sm_80"};
  assert_int_equal(cg_nvrtc_compile(nv, KERNELS, "k.cu", "sm_90", opts, 1, CG_OUT_CUBIN, &c, &err),
                   -1);
  assert_non_null(strstr(err.msg, "names an architecture"));
  cg_compiled_free(&c);
}

static void test_bad_option(void **state) {
  (void)state;
  NEED_NVRTC();
  const char *opts[] = {"--no-such-option"};
  CgCompiled c;
  IrErr err = {{0}};
  assert_int_equal(cg_nvrtc_compile(nv, KERNELS, "k.cu", "sm_90", opts, 1, CG_OUT_CUBIN, &c, &err),
                   -1);
  assert_non_null(strstr(err.msg, "NVRTC_ERROR_INVALID_OPTION"));
  assert_non_null(strstr(err.msg, "nvrtcCompileProgram"));
  cg_compiled_free(&c);
}

static void test_not_found(void **state) {
  (void)state;
  IrErr err = {{0}};
  CgNvrtc *none = cg_nvrtc_open("/nonexistent/libnvrtc.so.13", &err);
  assert_null(none);
  assert_non_null(strstr(err.msg, "NVRTC not found (looked for /nonexistent/libnvrtc.so.13)"));
  /* A library that is not NVRTC is not accepted either. */
  none = cg_nvrtc_open("libc.so.6", &err);
  assert_null(none);
  assert_non_null(strstr(err.msg, "NVRTC not found"));
  assert_non_null(strstr(err.msg, "lacks nvrtc"));
}

/* ptxas' report as older toolkits print it (cmem, no barriers), with a device function. */
static void test_ptxas_parse(void **state) {
  (void)state;
  const char *log =
      "ptxas info    : 0 bytes gmem\n"
      "ptxas info    : Compiling entry function '_Z3fooPf' for 'sm_80'\n"
      "ptxas info    : Function properties for _Z3fooPf\n"
      "    8 bytes stack frame, 4 bytes spill stores, 12 bytes spill loads\n"
      "ptxas info    : Used 40 registers, 2048 bytes smem, 360 bytes cmem[0]\n"
      "ptxas info    : Function properties for helper\n"
      "    64 bytes stack frame, 100 bytes spill stores, 100 bytes spill loads\n"
      "ptxas info    : Compiling entry function 'bar' for 'sm_80'\n"
      "ptxas info    : Function properties for bar\n"
      "ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\n"
      "ptxas info    : Used 8 registers, used 1 barriers, 360 bytes cmem[0]\n";
  CgKernelStats *k;
  int n = cg_ptxas_parse(log, &k);
  assert_int_equal(n, 2);
  assert_string_equal(k[0].name, "_Z3fooPf");
  assert_int_equal(k[0].registers, 40);
  assert_int_equal(k[0].smem, 2048);
  assert_int_equal(k[0].stack_frame, 8);
  assert_int_equal(k[0].spill_stores, 4);
  assert_int_equal(k[0].spill_loads, 12);
  assert_string_equal(k[1].name, "bar");
  assert_int_equal(k[1].registers, 8);
  assert_int_equal(k[1].barriers, 1);
  assert_int_equal(k[1].smem, 0);
  assert_int_equal(k[1].spill_stores, 0);
  cg_kernel_stats_free(k, n);
  assert_int_equal(cg_ptxas_parse("", &k), 0);
  cg_kernel_stats_free(k, 0);
}

/* Through the kernel cache: a miss compiles (with ptxas' report), a hit
 * returns the same CUBIN without compiling. */
static void test_through_cache(void **state) {
  (void)state;
  NEED_NVRTC();
  char dir[] = "/tmp/ditc-test-nvrtc-cache-XXXXXX";
  assert_non_null(mkdtemp(dir));
  IrErr err;
  CgCache *cache = cg_cache_open(dir, &err);
  assert_non_null(cache);
  CgCacheRequest r = {.source = KERNELS, .name = "k.cu", .arch = "sm_90",
                      .compiler_version = cg_nvrtc_version_string(nv),
                      .codegen_version = "test 1"};
  CgCompiled report;
  CgNvrtcCacheCtx ctx = {nv, &report};
  unsigned char *a, *b;
  size_t na, nb;
  int hit;
  if (cg_cache_get_or_compile(cache, &r, cg_nvrtc_cache_compile, &ctx, &a, &na, &hit, &err))
    fail_msg("%s", err.msg);
  assert_int_equal(hit, 0);
  assert_true(is_elf(a, na));
  assert_int_equal(report.n_kernels, 2);
  assert_null(report.cubin); /* moved to the caller */
  cg_compiled_free(&report);
  ctx.report = NULL;
  if (cg_cache_get_or_compile(cache, &r, cg_nvrtc_cache_compile, &ctx, &b, &nb, &hit, &err))
    fail_msg("%s", err.msg);
  assert_int_equal(hit, 1);
  assert_int_equal(na, nb);
  assert_memory_equal(a, b, na);
  free(a);
  free(b);
  /* A request that names another compiler would poison the cache: refused. */
  r.compiler_version = "nvrtc 1.0";
  r.codegen_version = "test 2";
  assert_int_equal(
      cg_cache_get_or_compile(cache, &r, cg_nvrtc_cache_compile, &ctx, &a, &na, &hit, &err), -1);
  assert_non_null(strstr(err.msg, "nvrtc 1.0"));
  int removed;
  assert_int_equal(cg_cache_clear(cache, NULL, &removed, &err), 0);
  assert_int_equal(removed, 1);
  cg_cache_close(cache);
  assert_int_equal(rmdir(dir), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_version_and_archs), cmocka_unit_test(test_cubin_sm80),
      cmocka_unit_test(test_cubin_sm90),        cmocka_unit_test(test_cubin_and_ptx),
      cmocka_unit_test(test_spills_parsed),     cmocka_unit_test(test_syntax_error),
      cmocka_unit_test(test_bad_arch),          cmocka_unit_test(test_bad_option),
      cmocka_unit_test(test_not_found),         cmocka_unit_test(test_ptxas_parse),
      cmocka_unit_test(test_through_cache),
  };
  return tu_run_group(tests, group_setup, group_teardown);
}
