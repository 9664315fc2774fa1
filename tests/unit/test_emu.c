/*
 * test_emu.c - the emulated device: hand-written kernels in ditc's kernel
 * dialect run through emu_module_load/emu_launch and are compared with plain
 * C; the same sources must also compile under NVRTC for sm_90 behind
 * codegen/cuda_prelude.h, through codegen/nvrtc.h (skipped when NVRTC is not
 * installed).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "testutil.h"
#include "testutil_emu.h"

#include "codegen/emu.h"
#include "codegen/nvrtc.h"

#ifndef DITC_SOURCE_DIR
#define DITC_SOURCE_DIR "."
#endif

/* ---- kernel sources ------------------------------------------------------ */

static const char *const SRC_AXPB =
    "typedef struct { const float *__restrict__ x; float *__restrict__ y; float a, b; int n; } AxpbParams;\n"
    "DITC_DEVICE static inline float axpb(float a, float x, float b) { return fmaf(a, x, b); }\n"
    "DITC_KERNEL(k_axpb, AxpbParams, p) {\n"
    "  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < p.n; i += blockDim.x * gridDim.x)\n"
    "    p.y[i] = axpb(p.a, p.x[i], p.b) + __expf(0.0f) * rsqrtf(4.0f) + tanhf(0.0f) + erff(0.0f);\n"
    "}\n";

/* Tree reduction of 256-element chunks; threads past the end return before
 * the first barrier and count as arrived. */
static const char *const SRC_BLOCK_SUM =
    "typedef struct { const float *x; float *out; int n; } BlockSumParams;\n"
    "DITC_KERNEL_BOUNDS(k_block_sum, BlockSumParams, p, 256) {\n"
    "  DITC_SHARED(float, buf, 256);\n"
    "  int t = threadIdx.x, i = blockIdx.x * 256 + t;\n"
    "  int active = ditc_imin(256, p.n - (int)blockIdx.x * 256);\n"
    "  buf[t] = i < p.n ? p.x[i] : 0.0f;\n"
    "  __syncthreads();\n"
    "  if (t >= active && t >= 128) return;\n"
    "  for (int s = 128; s > 0; s >>= 1) {\n"
    "    if (t < s) buf[t] += buf[t + s];\n"
    "    __syncthreads();\n"
    "  }\n"
    "  if (t == 0) p.out[blockIdx.x] = buf[0];\n"
    "}\n";

/* Per warp: total (xor butterfly), max, a down-reduction to lane 0
 * broadcast with __shfl_sync, and an inclusive scan with __shfl_up_sync. */
static const char *const SRC_WARP =
    "typedef struct { const float *x; float *sum, *mx, *down, *scan; int *isum; } WarpParams;\n"
    "DITC_KERNEL(k_warp, WarpParams, p) {\n"
    "  int i = blockIdx.x * blockDim.x + threadIdx.x, lane = threadIdx.x % 32;\n"
    "  float v = p.x[i];\n"
    "  if (blockDim.x % 32 == 0) { /* warp collectives: a partial warp faults (test_warp_partial) */\n"
    "    p.sum[i] = ditc_warp_sum(v);\n"
    "    p.mx[i] = ditc_warp_max(v);\n"
    "  }\n"
    "  float d = v;\n"
    "  for (int o = 16; o > 0; o >>= 1) d += __shfl_down_sync(0xffffffffu, d, o);\n"
    "  p.down[i] = __shfl_sync(0xffffffffu, d, 0);\n"
    "  float s = v;\n"
    "#pragma unroll\n"
    "  for (int o = 1; o < 32; o <<= 1) {\n"
    "    float u = __shfl_up_sync(0xffffffffu, s, o);\n"
    "    if (lane >= o) s += u;\n"
    "  }\n"
    "  p.scan[i] = s;\n"
    "  int k = lane;\n"
    "  for (int o = 8; o > 0; o >>= 1) k += __shfl_xor_sync(0xffffffffu, k, o, 16);\n"
    "  p.isum[i] = k;\n"
    "}\n";

/* Reverses each block's chunk through dynamic shared memory. */
static const char *const SRC_DYN =
    "typedef struct { const float *x; float *y; } RevParams;\n"
    "DITC_KERNEL(k_reverse, RevParams, p) {\n"
    "  DITC_DYN_SHARED(float, buf);\n"
    "  int t = threadIdx.x, base = blockIdx.x * blockDim.x;\n"
    "  buf[t] = p.x[base + t];\n"
    "  __syncthreads();\n"
    "  p.y[base + t] = buf[blockDim.x - 1 - t];\n"
    "}\n";

/* Tiled transpose on a 2-D grid of 2-D blocks; also writes the indices. */
static const char *const SRC_TRANSPOSE =
    "typedef struct { const float *in; float *out; int rows, cols; int *where; } TrParams;\n"
    "DITC_KERNEL(k_transpose, TrParams, p) {\n"
    "  DITC_SHARED2(float, tile, 16, 17);\n"
    "  int c = blockIdx.x * 16 + threadIdx.x, r = blockIdx.y * 16 + threadIdx.y;\n"
    "  if (r < p.rows && c < p.cols) {\n"
    "    tile[threadIdx.y][threadIdx.x] = p.in[r * p.cols + c];\n"
    "    p.where[r * p.cols + c] = (int)(threadIdx.x + 100 * threadIdx.y + 10000 * blockIdx.x +\n"
    "        1000000 * blockIdx.y + 100000000 * (blockDim.x == 16 && gridDim.y == 3));\n"
    "  }\n"
    "  __syncthreads();\n"
    "  int oc = blockIdx.y * 16 + threadIdx.x, orow = blockIdx.x * 16 + threadIdx.y;\n"
    "  if (orow < p.cols && oc < p.rows) p.out[orow * p.rows + oc] = tile[threadIdx.x][threadIdx.y];\n"
    "}\n";

static const char *const SRC_HALF =
    "typedef struct { const float *x; const uint16_t *bits; uint16_t *h, *b; float *hf, *bf;\n"
    "                 __half *hs; int n; } HalfParams;\n"
    "DITC_KERNEL(k_half, HalfParams, p) {\n"
    "  int i = blockIdx.x * blockDim.x + threadIdx.x;\n"
    "  if (i >= p.n) return;\n"
    "  __half h = __float2half(p.x[i]);\n"
    "  __nv_bfloat16 b = __float2bfloat16(p.x[i]);\n"
    "  p.h[i] = __half_as_ushort(h);\n"
    "  p.b[i] = __bfloat16_as_ushort(b);\n"
    "  p.hf[i] = __half2float(__ushort_as_half(p.bits[i]));\n"
    "  p.bf[i] = __bfloat162float(__ushort_as_bfloat16(p.bits[i]));\n"
    "  p.hs[i] = __float2half_rn(__half2float(h) + __bfloat162float(__float2bfloat16_rn(0.0f)));\n"
    "}\n";

static const char *const SRC_ATOMIC =
    "typedef struct { const float *x; const int *bin; float *sum; int *count; int *hist;\n"
    "                 unsigned *umax; } AtomParams;\n"
    "DITC_KERNEL(k_atomic, AtomParams, p) {\n"
    "  int i = blockIdx.x * blockDim.x + threadIdx.x;\n"
    "  atomicAdd(p.sum, p.x[i]);\n"
    "  atomicAdd(p.count, 1);\n"
    "  atomicAdd(&p.hist[p.bin[i]], 1);\n"
    "  atomicMax(p.umax, (unsigned)i);\n"
    "}\n";

/* Threads 0-15 and 16-31 wait at different __syncthreads: a deadlock. */
static const char *const SRC_DEADLOCK =
    "typedef struct { float *y; } DlParams;\n"
    "DITC_KERNEL(k_deadlock, DlParams, p) {\n"
    "  if (threadIdx.x < 16) {\n"
    "    __syncthreads();\n"
    "  } else {\n"
    "    __syncthreads();\n"
    "  }\n"
    "  p.y[threadIdx.x] = 1.0f;\n"
    "}\n";

static const char *const SRC_BROKEN =
    "typedef struct { float *y; } BrokenParams;\n"
    "DITC_KERNEL(k_broken, BrokenParams, p) {\n"
    "  p.y[threadIdx.x] = undeclared_thing_42 * 2.0f;\n"
    "}\n";

/* ---- helpers ---------------------------------------------------------------- */

static EmuModule *load(const char *src, const char *name) {
  IrErr err = {{0}};
  EmuModule *m = emu_module_load(src, name, &err);
  if (!m) fail_msg("%s", err.msg);
  return m;
}

static void launch(EmuModule *m, const char *kernel, EmuDim3 grid, EmuDim3 block, size_t dyn,
                   void *params) {
  IrErr err = {{0}};
  void *args[] = {params};
  if (emu_launch(m, kernel, grid, block, dyn, args, &err) != 0) fail_msg("%s", err.msg);
}

static EmuDim3 d3(unsigned x, unsigned y, unsigned z) {
  EmuDim3 d = {x, y, z};
  return d;
}

/* Deterministic values in [-1, 1). */
static float rnd(unsigned *s) {
  *s = *s * 1664525u + 1013904223u;
  return (float)(*s >> 8) / 8388608.0f - 1.0f;
}

/* ---- tests --------------------------------------------------------------- */

static void test_elementwise_grid_stride(void **state) {
  (void)state;
  enum { N = 10007 };
  struct { const float *x; float *y; float a, b; int n; } p;
  float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
  unsigned s = 1;
  for (int i = 0; i < N; i++) x[i] = rnd(&s) * 10.0f, y[i] = -1e30f;
  p.x = x, p.y = y, p.a = 2.5f, p.b = -0.75f, p.n = N;
  EmuModule *m = load(SRC_AXPB, "axpb");
  launch(m, "k_axpb", d3(7, 1, 1), d3(128, 1, 1), 0, &p); /* 896 threads: stride loop */
  for (int i = 0; i < N; i++) assert_float_equal(y[i], fmaf(2.5f, x[i], -0.75f) + 0.5f, 1e-5);
  assert_ptr_equal(load(SRC_AXPB, "again"), m); /* cached by source */
  free(x);
  free(y);
}

static void test_block_reduction(void **state) {
  (void)state;
  enum { N = 1000, B = (N + 255) / 256 };
  struct { const float *x; float *out; int n; } p;
  float x[N], out[B];
  unsigned s = 2;
  for (int i = 0; i < N; i++) x[i] = rnd(&s);
  p.x = x, p.out = out, p.n = N;
  launch(load(SRC_BLOCK_SUM, "block_sum"), "k_block_sum", d3(B, 1, 1), d3(256, 1, 1), 0, &p);
  for (int b = 0; b < B; b++) {
    double ref = 0;
    for (int i = b * 256; i < N && i < (b + 1) * 256; i++) ref += x[i];
    assert_float_equal(out[b], ref, 1e-4);
  }
}

static void check_warp(unsigned nthreads, unsigned nblocks) {
  unsigned n = nthreads * nblocks;
  float *x = calloc(n, sizeof *x), *sum = calloc(n, 4), *mx = calloc(n, 4), *down = calloc(n, 4),
        *scan = calloc(n, 4);
  int *isum = calloc(n, sizeof *isum);
  struct { const float *x; float *sum, *mx, *down, *scan; int *isum; } p = {x, sum, mx, down, scan, isum};
  unsigned s = 3;
  for (unsigned i = 0; i < n; i++) x[i] = rnd(&s);
  launch(load(SRC_WARP, "warp"), "k_warp", d3(nblocks, 1, 1), d3(nthreads, 1, 1), 0, &p);
  for (unsigned b = 0; b < nblocks; b++)
    for (unsigned w = 0; w < nthreads; w += 32) {
      unsigned lanes = nthreads - w < 32 ? nthreads - w : 32, base = b * nthreads + w;
      double tot = 0, run = 0;
      float m = -INFINITY;
      for (unsigned l = 0; l < lanes; l++) tot += x[base + l], m = fmaxf(m, x[base + l]);
      for (unsigned l = 0; l < lanes; l++) {
        run += x[base + l];
        if (lanes == 32) { /* a partial warp's shuffles read missing lanes: undefined */
          if (nthreads % 32 == 0) assert_float_equal(sum[base + l], tot, 1e-5);
          if (nthreads % 32 == 0) assert_float_equal(mx[base + l], m, 0);
          assert_float_equal(down[base + l], tot, 1e-5);
          assert_int_equal(isum[base + l], (l & 16) ? 16 * 16 + 120 : 120);
        }
        assert_float_equal(scan[base + l], run, 1e-5);
      }
    }
  free(x), free(sum), free(mx), free(down), free(scan), free(isum);
}

static void test_warp_shuffles(void **state) {
  (void)state;
  check_warp(64, 3);
  check_warp(48, 2); /* a partial second warp */
}

/* ditc_warp_sum is one warp collective on the emulator (DITC_XOR_REDUCE): a block whose last warp
 * is partial, where a GPU's result is undefined, faults with the lane count instead. */
static void test_warp_partial(void **state) {
  (void)state;
  static const char *const src =
      "typedef struct { const float *x; float *y; } PartParams;\n"
      "DITC_KERNEL(k_part, PartParams, p) { p.y[threadIdx.x] = ditc_warp_sum(p.x[threadIdx.x]); }\n";
  float x[48] = {0}, y[48];
  struct { const float *x; float *y; } p = {x, y};
  EmuModule *m = load(src, "part");
  IrErr err = {{0}};
  void *args[] = {&p};
  assert_int_not_equal(emu_launch(m, "k_part", d3(1, 1, 1), d3(48, 1, 1), 0, args, &err), 0);
  assert_non_null(strstr(err.msg, "needs a full warp"));
  assert_non_null(strstr(err.msg, "16 lanes"));
}

static void test_dynamic_shared(void **state) {
  (void)state;
  enum { T = 96, BLOCKS = 5 };
  float x[T * BLOCKS], y[T * BLOCKS];
  for (int i = 0; i < T * BLOCKS; i++) x[i] = (float)i;
  struct { const float *x; float *y; } p = {x, y};
  launch(load(SRC_DYN, "dyn"), "k_reverse", d3(BLOCKS, 1, 1), d3(T, 1, 1), T * sizeof(float), &p);
  for (int b = 0; b < BLOCKS; b++)
    for (int t = 0; t < T; t++) assert_float_equal(y[b * T + t], x[b * T + T - 1 - t], 0);
}

static void test_2d_grid_and_block(void **state) {
  (void)state;
  enum { R = 37, C = 45 };
  float in[R * C], out[R * C];
  int where[R * C];
  for (int i = 0; i < R * C; i++) in[i] = (float)i * 0.5f;
  struct { const float *in; float *out; int rows, cols; int *where; } p = {in, out, R, C, where};
  launch(load(SRC_TRANSPOSE, "transpose"), "k_transpose", d3((C + 15) / 16, (R + 15) / 16, 1),
         d3(16, 16, 1), 0, &p);
  for (int r = 0; r < R; r++)
    for (int c = 0; c < C; c++) {
      assert_float_equal(out[c * R + r], in[r * C + c], 0);
      int want = c % 16 + 100 * (r % 16) + 10000 * (c / 16) + 1000000 * (r / 16) + 100000000;
      assert_int_equal(where[r * C + c], want);
    }
}

/* Reference conversions, independent of the prelude's bit tricks: decode by
 * ldexp, encode by searching the (monotone) positive codes for the nearest. */
static float ref_half_decode(uint16_t h) {
  int e = (h >> 10) & 31, m = h & 1023;
  float v = e == 31 ? (m ? NAN : INFINITY) : e ? ldexpf(1024 + m, e - 25) : ldexpf(m, -24);
  return (h & 0x8000) ? -v : v;
}
static float ref_bf16_decode(uint16_t b) {
  uint32_t u = (uint32_t)b << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}
static uint16_t ref_encode(float x, float (*decode)(uint16_t), uint16_t inf) {
  if (isnan(x)) return 0x7fff;
  uint16_t sign = signbit(x) ? 0x8000 : 0;
  double a = fabs((double)x);
  unsigned lo = 0, hi = inf; /* largest code with decode <= a, in [lo, hi) */
  if (a >= decode(inf)) return sign | inf;
  while (hi - lo > 1) {
    unsigned mid = (lo + hi) / 2;
    if (decode((uint16_t)mid) <= a) lo = mid;
    else hi = mid;
  }
  double below = a - decode((uint16_t)lo), above = (double)decode((uint16_t)(lo + 1)) - a;
  if (lo + 1 == inf) above = (double)decode((uint16_t)lo) * 2 - decode((uint16_t)(lo - 1)) - a;
  unsigned r = below < above ? lo : below > above ? lo + 1 : (lo & 1 ? lo + 1 : lo);
  return sign | (uint16_t)r;
}

static void test_half_and_bf16(void **state) {
  (void)state;
  enum { N = 4096 };
  float *x = malloc(N * 4), *hf = malloc(N * 4), *bf = malloc(N * 4);
  uint16_t *bits = malloc(N * 2), *h = malloc(N * 2), *b = malloc(N * 2), *hs = malloc(N * 2);
  const float special[] = {0.0f, -0.0f, 1.0f, -1.0f, 65504.0f, 65519.0f, 65520.0f, 1e9f, -1e9f,
                           INFINITY, -INFINITY, NAN, 0x1p-24f, 0x1p-25f, 0x1.8p-25f, 0x1p-26f,
                           0x1p-14f, 0x1.ff8p-15f, 1.0009765625f, 1.00048828125f, 1.00146484375f,
                           3.3895313892515355e38f, 1e-40f, 0x1.fep127f};
  unsigned s = 5, ns = sizeof special / sizeof *special;
  for (unsigned i = 0; i < N; i++) {
    if (i < ns) x[i] = special[i];
    else if (i < 2000) x[i] = ldexpf(rnd(&s), (int)(i % 48) - 30); /* half's whole range */
    else if (i < 3000) { /* exact midpoints between neighbouring halves: ties to even */
      uint16_t c = (uint16_t)(i * 37 % 0x7bff);
      x[i] = (ref_half_decode(c) + ref_half_decode((uint16_t)(c + 1))) * 0.5f;
    } else x[i] = ldexpf(rnd(&s), (int)(i % 200) - 100);
    bits[i] = (uint16_t)(i * 16 + i % 16); /* a spread of every code */
  }
  struct { const float *x; const uint16_t *bits; uint16_t *h, *b; float *hf, *bf; uint16_t *hs; int n; } p =
      {x, bits, h, b, hf, bf, hs, N};
  launch(load(SRC_HALF, "half"), "k_half", d3(N / 128, 1, 1), d3(128, 1, 1), 0, &p);
  for (unsigned i = 0; i < N; i++) {
    assert_int_equal(h[i], ref_encode(x[i], ref_half_decode, 0x7c00));
    assert_int_equal(b[i], ref_encode(x[i], ref_bf16_decode, 0x7f80));
    assert_int_equal(hs[i], h[i] == 0x8000 ? 0 : h[i]); /* -0 + 0 = +0 */
    float rh = ref_half_decode(bits[i]), rb = ref_bf16_decode(bits[i]);
    if (isnan(rh)) assert_true(isnan(hf[i]));
    else assert_memory_equal(&hf[i], &rh, 4);
    if (isnan(rb)) assert_true(isnan(bf[i]));
    else assert_memory_equal(&bf[i], &rb, 4);
  }
  free(x), free(hf), free(bf), free(bits), free(h), free(b), free(hs);
}

static void test_atomics(void **state) {
  (void)state;
  enum { T = 128, BLOCKS = 40, N = T * BLOCKS, BINS = 7 };
  float *x = malloc(N * 4), sum = 0;
  int *bin = malloc(N * sizeof *bin), count = 0, hist[BINS] = {0}, ref[BINS] = {0};
  unsigned umax = 0;
  float ref_sum = 0;
  for (int i = 0; i < N; i++) {
    x[i] = (float)(i % 5) - 1.0f; /* small integers: any order sums exactly */
    bin[i] = (i * 7 + i / 3) % BINS;
    ref_sum += x[i];
    ref[bin[i]]++;
  }
  struct { const float *x; const int *bin; float *sum; int *count; int *hist; unsigned *umax; } p =
      {x, bin, &sum, &count, hist, &umax};
  launch(load(SRC_ATOMIC, "atomic"), "k_atomic", d3(BLOCKS, 1, 1), d3(T, 1, 1), 0, &p);
  assert_float_equal(sum, ref_sum, 0);
  assert_int_equal(count, N);
  assert_memory_equal(hist, ref, sizeof ref);
  assert_int_equal(umax, N - 1);
  free(x);
  free(bin);
}

static void test_compile_error(void **state) {
  (void)state;
  IrErr err = {{0}};
  assert_null(emu_module_load(SRC_BROKEN, "broken", &err));
  assert_non_null(strstr(err.msg, "compiling broken failed"));
  assert_non_null(strstr(err.msg, "undeclared_thing_42")); /* the compiler's own words */
  assert_non_null(strstr(err.msg, "error"));
}

static void test_launch_errors(void **state) {
  (void)state;
  IrErr err = {{0}};
  EmuModule *m = load(SRC_AXPB, "axpb");
  float y[4];
  struct { const float *x; float *y; float a, b; int n; } p = {y, y, 1, 0, 4};
  void *args[] = {&p};
  assert_int_equal(emu_launch(m, "k_nope", d3(1, 1, 1), d3(4, 1, 1), 0, args, &err), -1);
  assert_non_null(strstr(err.msg, "no kernel 'k_nope'"));
  assert_int_equal(emu_launch(m, "printf", d3(1, 1, 1), d3(4, 1, 1), 0, args, &err), -1);
  assert_false(emu_module_has_kernel(m, "axpb")); /* a helper, not a kernel */
  assert_true(emu_module_has_kernel(m, "k_axpb"));
  assert_int_equal(emu_launch(m, "k_axpb", d3(1, 1, 1), d3(1025, 1, 1), 0, args, &err), -1);
  assert_non_null(strstr(err.msg, "invalid block"));
  assert_int_equal(emu_launch(m, "k_axpb", d3(0, 1, 1), d3(4, 1, 1), 0, args, &err), -1);
  assert_non_null(strstr(err.msg, "invalid grid"));
  assert_int_equal(emu_launch(m, "k_axpb", d3(1, 1, 1), d3(4, 1, 1), 1 << 20, args, &err), -1);
  assert_non_null(strstr(err.msg, "dynamic shared memory"));
}

static void test_deadlock_reported(void **state) {
  (void)state;
  IrErr err = {{0}};
  float y[64];
  struct { float *y; } p = {y};
  void *args[] = {&p};
  EmuModule *m = load(SRC_DEADLOCK, "deadlock");
  assert_int_equal(emu_launch(m, "k_deadlock", d3(3, 1, 1), d3(64, 1, 1), 0, args, &err), -1);
  assert_non_null(strstr(err.msg, "deadlocked"));
  assert_non_null(strstr(err.msg, "line 4"));
  assert_non_null(strstr(err.msg, "line 6"));
  /* the emulator is still usable afterwards */
  test_block_reduction(state);
}

/* ---- the same sources under NVRTC ------------------------------------------- */

static void test_sources_compile_under_nvrtc(void **state) {
  (void)state;
  IrErr err = {{0}};
  CgNvrtc *nv = cg_nvrtc_open(NULL, &err);
  if (!nv) TU_SKIP(err.msg);
  char inc[1024], cuda_inc[1024];
  const char *opts[3];
  tu_nvrtc_dialect_options(inc, cuda_inc, sizeof inc, opts);
  const char *const good[] = {SRC_AXPB,      SRC_BLOCK_SUM, SRC_WARP,   SRC_DYN,
                              SRC_TRANSPOSE, SRC_HALF,      SRC_ATOMIC, SRC_DEADLOCK};
  const char *const kernels[] = {"k_axpb",      "k_block_sum", "k_warp",   "k_reverse",
                                 "k_transpose", "k_half",      "k_atomic", "k_deadlock"};
  for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
    CgCompiled out;
    if (cg_nvrtc_compile(nv, good[i], kernels[i], "sm_90", opts, 3, CG_OUT_CUBIN, &out, &err) != 0)
      fail_msg("NVRTC rejects %s:\n%s", kernels[i], out.diag ? out.diag : err.msg);
    assert_non_null(cg_compiled_find_kernel(&out, kernels[i])); /* extern "C": unmangled */
    cg_compiled_free(&out);
  }
  CgCompiled out;
  assert_int_equal(cg_nvrtc_compile(nv, SRC_BROKEN, "broken", "sm_90", opts, 3, CG_OUT_CUBIN, &out,
                                    &err),
                   -1);
  assert_non_null(strstr(out.diag ? out.diag : err.msg, "undeclared_thing_42"));
  cg_compiled_free(&out);
  cg_nvrtc_close(nv);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_elementwise_grid_stride),
      cmocka_unit_test(test_block_reduction),
      cmocka_unit_test(test_warp_shuffles),
      cmocka_unit_test(test_warp_partial),
      cmocka_unit_test(test_dynamic_shared),
      cmocka_unit_test(test_2d_grid_and_block),
      cmocka_unit_test(test_half_and_bf16),
      cmocka_unit_test(test_atomics),
      cmocka_unit_test(test_compile_error),
      cmocka_unit_test(test_launch_errors),
      cmocka_unit_test(test_deadlock_reported),
      cmocka_unit_test(test_sources_compile_under_nvrtc),
  };
  return tu_run_group(tests, NULL, tu_emu_teardown);
}
