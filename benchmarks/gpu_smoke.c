/*
 * gpu_smoke.c - does the GPU runtime work on this machine?
 *
 *   gpu_smoke [file.cubin [kernel]]
 *
 * Opens device 0 through runtime/cuda_api (driver and cuBLASLt by dlopen),
 * prints it, optionally loads a CUBIN (and looks up a kernel in it), then:
 * launches a hand-written PTX kernel (x = a*x + b; the driver JITs it, ditc
 * compiles nothing), runs a 256x256x256 cuBLASLt sgemm and a linear layer
 * (x W^T + bias) and checks both against the CPU, times the sgemm, and
 * replays kernel + linear from a captured CUDA graph.  Without a GPU it says
 * why and exits 1.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/cuda_api.h"

/* x[i] = a * x[i] + b for i < n; one thread per element. */
static const char SMOKE_PTX[] =
    ".version 7.0\n.target sm_75\n.address_size 64\n"
    ".visible .entry ditc_smoke_axpb(.param .u64 p_x, .param .u32 p_n, .param .f32 p_a,"
    " .param .f32 p_b)\n{\n"
    "  .reg .pred %p;\n  .reg .b32 %r<6>;\n  .reg .f32 %f<4>;\n  .reg .b64 %rd<4>;\n"
    "  ld.param.u64 %rd1, [p_x];\n  ld.param.u32 %r1, [p_n];\n"
    "  ld.param.f32 %f1, [p_a];\n  ld.param.f32 %f2, [p_b];\n"
    "  mov.u32 %r2, %ctaid.x;\n  mov.u32 %r3, %ntid.x;\n  mov.u32 %r4, %tid.x;\n"
    "  mad.lo.s32 %r5, %r2, %r3, %r4;\n  setp.ge.u32 %p, %r5, %r1;\n  @%p bra DONE;\n"
    "  cvta.to.global.u64 %rd2, %rd1;\n  mul.wide.u32 %rd3, %r5, 4;\n"
    "  add.s64 %rd2, %rd2, %rd3;\n  ld.global.f32 %f3, [%rd2];\n"
    "  fma.rn.f32 %f3, %f3, %f1, %f2;\n  st.global.f32 [%rd2], %f3;\n"
    "DONE:\n  ret;\n}\n";

enum { S = 256, NX = 1000 };

static int fail(const IrErr *err) {
  fprintf(stderr, "gpu_smoke: %s\n", err->msg);
  return 1;
}

static void *read_file(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = len >= 0 ? malloc((size_t)len + 1) : NULL;
  if (buf && fread(buf, 1, (size_t)len, f) != (size_t)len) free(buf), buf = NULL;
  if (buf) buf[len] = 0, *n = (size_t)len;
  fclose(f);
  return buf;
}

/* Largest |got - want| (inf for a NaN) over D = A op(B) (+ bias), row-major, op(B) = B^T when tb. */
static double check_gemm(const float *A, const float *B, const float *bias, int tb,
                         const float *got) {
  double worst = 0;
  for (int i = 0; i < S; i++)
    for (int j = 0; j < S; j++) {
      double s = bias ? bias[j] : 0;
      for (int k = 0; k < S; k++) s += (double)A[i * S + k] * (tb ? B[j * S + k] : B[k * S + j]);
      double e = fabs(s - got[i * S + j]);
      if (isnan(e)) return INFINITY; /* fmax would drop it */
      worst = fmax(worst, e);
    }
  return worst;
}

static int launch_axpb(CUfunction f, CUdeviceptr x, float a, float b, CUstream s, IrErr *err) {
  unsigned n = NX;
  void *args[] = {&x, &n, &a, &b};
  return RT_CU(err, "kernel ditc_smoke_axpb", LaunchKernel, f, (NX + 127) / 128, 1, 1, 128, 1, 1,
               0, s, args, NULL);
}

int main(int argc, char **argv) {
  IrErr err = {{0}};
  RtCudaDevice dev;
  char buf[512];
  if (rt_cuda_device_open(0, &dev, &err)) return fail(&err);
  printf("device: %s\ndriver: %s\n", rt_cuda_device_str(&dev, buf, sizeof buf),
         rt_cuda_library_path());
  if (rt_blas_load(&err)) return fail(&err);
  printf("cuBLASLt: %zu\n", rt_blas_version());

  if (argc > 1) { /* a CUBIN from NVRTC or the kernel cache */
    size_t n = 0;
    void *image = read_file(argv[1], &n);
    CUmodule m;
    CUfunction f;
    if (!image) return ir_errf(&err, "cannot read %s", argv[1]), fail(&err);
    if (rt_cuda_module_load(image, argv[1], &m, &err)) return fail(&err);
    if (argc > 2 && RT_CU(&err, argv[2], ModuleGetFunction, &f, m, argv[2])) return fail(&err);
    printf("loaded %s (%zu bytes)%s%s\n", argv[1], n, argc > 2 ? ", found kernel " : "",
           argc > 2 ? argv[2] : "");
    rt_cu.ModuleUnload(m);
    free(image);
  }

  int bad = 0;
  CUstream s;
  CUmodule mod;
  CUfunction axpb;
  if (RT_CU(&err, NULL, StreamCreate, &s, RT_CU_STREAM_NON_BLOCKING) ||
      rt_cuda_module_load(SMOKE_PTX, "smoke PTX", &mod, &err) ||
      RT_CU(&err, NULL, ModuleGetFunction, &axpb, mod, "ditc_smoke_axpb"))
    return fail(&err);

  /* kernel launch */
  float *hx = malloc(NX * sizeof *hx);
  for (int i = 0; i < NX; i++) hx[i] = (float)i;
  CUdeviceptr dx;
  if (RT_CU(&err, NULL, MemAlloc, &dx, NX * sizeof *hx) ||
      RT_CU(&err, NULL, MemcpyHtoDAsync, dx, hx, NX * sizeof *hx, s) ||
      launch_axpb(axpb, dx, 2.0f, 1.0f, s, &err) ||
      RT_CU(&err, NULL, MemcpyDtoHAsync, hx, dx, NX * sizeof *hx, s) ||
      RT_CU(&err, NULL, StreamSynchronize, s))
    return fail(&err);
  for (int i = 0; i < NX; i++) bad += hx[i] != 2.0f * (float)i + 1.0f;
  printf("kernel launch: %s\n", bad ? "WRONG" : "ok");

  /* sgemm and linear layer against the CPU */
  size_t mat = (size_t)S * S * sizeof(float);
  float *A = malloc(mat), *B = malloc(mat), *D = malloc(mat), bias[S];
  unsigned seed = 1;
  for (int i = 0; i < S * S; i++) {
    seed = seed * 1664525u + 1013904223u;
    A[i] = (float)(seed >> 8) / 8388608.0f - 1.0f;
    seed = seed * 1664525u + 1013904223u;
    B[i] = (float)(seed >> 8) / 8388608.0f - 1.0f;
  }
  for (int j = 0; j < S; j++) bias[j] = 0.01f * (float)j;
  CUdeviceptr dA, dB, dD, dbias;
  RtBlas *blas = NULL;
  if (RT_CU(&err, NULL, MemAlloc, &dA, mat) || RT_CU(&err, NULL, MemAlloc, &dB, mat) ||
      RT_CU(&err, NULL, MemAlloc, &dD, mat) || RT_CU(&err, NULL, MemAlloc, &dbias, sizeof bias) ||
      RT_CU(&err, NULL, MemcpyHtoD, dA, A, mat) || RT_CU(&err, NULL, MemcpyHtoD, dB, B, mat) ||
      RT_CU(&err, NULL, MemcpyHtoD, dbias, bias, sizeof bias) || rt_blas_init(&blas, &err))
    return fail(&err);
  RtBlasMatmulDesc gemm = {.dtype = IR_F32, .m = S, .n = S, .k = S};
  RtBlasMatmulDesc linear = gemm;
  linear.trans_b = 1, linear.epilogue = RT_BLAS_EPI_BIAS;
  /* fp32 without TF32: errors near 1e-5; TF32 would give ~1e-3 */
  const double tol = 2e-4;
  if (RT_CU(&err, NULL, MemsetD8Async, dD, 0xff, mat, s) ||
      rt_blas_matmul(blas, &gemm, 1.0f, dA, dB, 0.0f, 0, dD, 0, s, "sgemm", &err) ||
      RT_CU(&err, NULL, MemcpyDtoHAsync, D, dD, mat, s) || RT_CU(&err, NULL, StreamSynchronize, s))
    return fail(&err);
  double e1 = check_gemm(A, B, NULL, 0, D);
  if (RT_CU(&err, NULL, MemsetD8Async, dD, 0xff, mat, s) ||
      rt_blas_matmul(blas, &linear, 1.0f, dA, dB, 0.0f, 0, dD, dbias, s, "linear", &err) ||
      RT_CU(&err, NULL, MemcpyDtoHAsync, D, dD, mat, s) || RT_CU(&err, NULL, StreamSynchronize, s))
    return fail(&err);
  double e2 = check_gemm(A, B, bias, 1, D);
  bad += !(e1 <= tol) + !(e2 <= tol);
  printf("sgemm %dx%dx%d: max error %.3g %s\nlinear + bias: max error %.3g %s\n", S, S, S, e1,
         e1 <= tol ? "ok" : "WRONG", e2, e2 <= tol ? "ok" : "WRONG");

  /* timing */
  RtCudaTimer t;
  float ms = 0;
  if (rt_cuda_timer_init(&t, &err) || rt_cuda_timer_start(&t, s, &err)) return fail(&err);
  for (int r = 0; r < 100; r++)
    if (rt_blas_matmul(blas, &gemm, 1.0f, dA, dB, 0.0f, 0, dD, 0, s, "sgemm", &err))
      return fail(&err);
  if (rt_cuda_timer_stop(&t, s, &ms, &err)) return fail(&err);
  printf("sgemm: %.1f us each, %.0f GFLOP/s\n", 1000.0 * ms / 100,
         2.0 * S * S * S * 100 / (ms * 1e6));
  rt_cuda_timer_free(&t);

  /* graph: x = 2x + 1 then linear, captured once, replayed twice */
  RtBlasPlan *plan;
  CUgraphExec exec;
  for (int i = 0; i < NX; i++) hx[i] = (float)i;
  if (RT_CU(&err, NULL, MemcpyHtoD, dx, hx, NX * sizeof *hx) ||
      rt_blas_plan_new(blas, &linear, "linear", &plan, &err) ||
      RT_CU(&err, NULL, MemsetD8Async, dD, 0, mat, s) || RT_CU(&err, NULL, StreamSynchronize, s) ||
      rt_cuda_capture_begin(s, &err))
    return fail(&err);
  if (launch_axpb(axpb, dx, 2.0f, 1.0f, s, &err) ||
      rt_blas_plan_run(blas, plan, 1.0f, dA, dB, 0.0f, 0, dD, dbias, s, "linear", &err)) {
    CUgraphExec ignored;
    rt_cuda_capture_end(s, &ignored, NULL);
    return fail(&err);
  }
  if (rt_cuda_capture_end(s, &exec, &err) || RT_CU(&err, "graph", GraphLaunch, exec, s) ||
      RT_CU(&err, "graph", GraphLaunch, exec, s) ||
      RT_CU(&err, NULL, MemcpyDtoHAsync, hx, dx, NX * sizeof *hx, s) ||
      RT_CU(&err, NULL, MemcpyDtoHAsync, D, dD, mat, s) || RT_CU(&err, NULL, StreamSynchronize, s))
    return fail(&err);
  int gbad = 0;
  for (int i = 0; i < NX; i++) gbad += hx[i] != 4.0f * (float)i + 3.0f; /* 2(2x+1)+1 */
  double e3 = check_gemm(A, B, bias, 1, D);
  gbad += !(e3 <= tol);
  bad += gbad;
  printf("graph replay: %s (linear max error %.3g)\n", gbad ? "WRONG" : "ok", e3);

  rt_cu.GraphExecDestroy(exec);
  rt_blas_plan_free(plan);
  rt_blas_free(blas);
  rt_cu.MemFree(dA), rt_cu.MemFree(dB), rt_cu.MemFree(dD), rt_cu.MemFree(dbias), rt_cu.MemFree(dx);
  rt_cu.ModuleUnload(mod);
  rt_cu.StreamDestroy(s);
  rt_cuda_device_close(&dev);
  free(A), free(B), free(D), free(hx);
  printf("gpu_smoke: %s\n", bad ? "FAILED" : "ok");
  return bad ? 1 : 0;
}
