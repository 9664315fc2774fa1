/*
 * test_mma.c - the kernel dialect's tensor-core built-ins (mma.sync
 * m16n8k16 bf16/f16 and m16n8k32 s8, ldmatrix, cp.async) on the emulated
 * device, and the same kernels under NVRTC for sm_80, 86, 89 and 90.
 *
 * The test kernels load and store fragments with their own formulas, written
 * from the PTX ISA's tables ("Matrix Fragments for mma.m16n8k16 with floating
 * point type", "Matrix Fragments for mma.m16n8k32", "Warp-level matrix load
 * instruction: ldmatrix") in a form unlike the prelude's, and the host checks
 * every element against a plain product: a prelude whose layout disagrees
 * with the PTX ISA fails here as it would on a GPU.  Kernels that swap two
 * fragment elements or give B the accumulator's layout show that the check
 * catches such mistakes.  Without NVRTC the NVRTC test skips.
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

/* One m16n8k16 per warp (warp w works on the w-th problem).  Register r of A
 * holds row g + 8*(r&1), columns 2t + 8*(r>>1) and one more; register r of B
 * holds rows 2t + 8r and one more of column g; accumulator i is at row
 * g + 8*(i>>1), column 2t + (i&1).  mode 1 swaps a[0]'s halves, mode 2 loads
 * B with the accumulator's layout, mode 3 swaps a[1] and a[2]. */
static const char *const SRC_MMA =
    "typedef struct { const float *A, *B, *C; float *D; int bf16, mode; } MmaParams;\n"
    "DITC_DEVICE static inline unsigned t_bits16(float v, int bf16) {\n"
    "  return bf16 ? (unsigned)__bfloat16_as_ushort(__float2bfloat16_rn(v))\n"
    "              : (unsigned)__half_as_ushort(__float2half_rn(v));\n"
    "}\n"
    "DITC_KERNEL(k_mma16816, MmaParams, p) {\n"
    "  int lane = threadIdx.x & 31, w = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;\n"
    "  const float *A = p.A + w * 256, *B = p.B + w * 128, *C = p.C + w * 128;\n"
    "  unsigned a[4], b[2];\n"
    "  for (int r = 0; r < 4; r++) {\n"
    "    int row = g + 8 * (r & 1), col = 2 * t + 8 * (r >> 1);\n"
    "    a[r] = t_bits16(A[row * 16 + col], p.bf16) | t_bits16(A[row * 16 + col + 1], p.bf16) << 16;\n"
    "  }\n"
    "  for (int r = 0; r < 2; r++) {\n"
    "    int k = 2 * t + 8 * r;\n"
    "    b[r] = t_bits16(B[k * 8 + g], p.bf16) | t_bits16(B[(k + 1) * 8 + g], p.bf16) << 16;\n"
    "    if (p.mode == 2)\n"
    "      b[r] = t_bits16(B[(g + 8 * r) * 8 + 2 * t], p.bf16) |\n"
    "             t_bits16(B[(g + 8 * r) * 8 + 2 * t + 1], p.bf16) << 16;\n"
    "  }\n"
    "  if (p.mode == 1) a[0] = a[0] >> 16 | a[0] << 16;\n"
    "  if (p.mode == 3) { unsigned x = a[1]; a[1] = a[2]; a[2] = x; }\n"
    "  float c[4], d[4];\n"
    "  for (int i = 0; i < 4; i++) c[i] = C[(g + 8 * (i >> 1)) * 8 + 2 * t + (i & 1)];\n"
    "  if (p.bf16) ditc_mma_bf16_16816(d, a, b, c);\n"
    "  else ditc_mma_f16_16816(d, a, b, c);\n"
    "  for (int i = 0; i < 4; i++) p.D[w * 128 + (g + 8 * (i >> 1)) * 8 + 2 * t + (i & 1)] = d[i];\n"
    "}\n"
    /* m16n8k32 s8: register r of A holds row g + 8*(r&1), columns 4t + 16*(r>>1)
     * and the next three, lowest byte first (as they lie in memory, so one
     * 32-bit load); register r of B rows 4t + 16r and the next three of
     * column g. */
    "typedef struct { const int8_t *A, *B; const int *C; int *D; } MmaS8Params;\n"
    "DITC_KERNEL(k_mma_s8, MmaS8Params, p) {\n"
    "  int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;\n"
    "  unsigned a[4], b[2];\n"
    "  for (int r = 0; r < 4; r++) a[r] = ditc_ld_b32(p.A + (g + 8 * (r & 1)) * 32 + 4 * t + 16 * (r >> 1));\n"
    "  for (int r = 0; r < 2; r++) {\n"
    "    b[r] = 0;\n"
    "    for (int j = 0; j < 4; j++) b[r] |= (unsigned)(uint8_t)p.B[(4 * t + 16 * r + j) * 8 + g] << (8 * j);\n"
    "  }\n"
    "  int c[4], d[4];\n"
    "  for (int i = 0; i < 4; i++) c[i] = p.C[(g + 8 * (i >> 1)) * 8 + 2 * t + (i & 1)];\n"
    "  ditc_mma_s8_16832(d, a, b, c);\n"
    "  for (int i = 0; i < 4; i++) p.D[(g + 8 * (i >> 1)) * 8 + 2 * t + (i & 1)] = d[i];\n"
    "}\n"
    /* The prelude's fragment coordinates and lane, per thread, for the host to check. */
    "typedef struct { int *out; } FragParams;\n"
    "DITC_KERNEL(k_frag, FragParams, p) {\n"
    "  int lane = ditc_lane_id(), *o = p.out + (threadIdx.x + blockDim.x * threadIdx.y) * 97;\n"
    "  o[0] = lane;\n"
    "  for (int i = 0; i < 8; i++) { o[1 + 2 * i] = ditc_mma_a_row(lane, i); o[2 + 2 * i] = ditc_mma_a_col(lane, i); }\n"
    "  for (int i = 0; i < 4; i++) { o[17 + 2 * i] = ditc_mma_b_row(lane, i); o[18 + 2 * i] = ditc_mma_b_col(lane, i); }\n"
    "  for (int i = 0; i < 4; i++) { o[25 + 2 * i] = ditc_mma_c_row(lane, i); o[26 + 2 * i] = ditc_mma_c_col(lane, i); }\n"
    "  for (int i = 0; i < 16; i++) { o[33 + 2 * i] = ditc_mma_s8_a_row(lane, i); o[34 + 2 * i] = ditc_mma_s8_a_col(lane, i); }\n"
    "  for (int i = 0; i < 8; i++) { o[65 + 2 * i] = ditc_mma_s8_b_row(lane, i); o[66 + 2 * i] = ditc_mma_s8_b_col(lane, i); }\n"
    "}\n"
    /* The packing helpers. */
    "typedef struct { const float *x, *y; unsigned *bf, *hf, *s8; float *lo, *hi; } PackParams;\n"
    "DITC_KERNEL(k_pack, PackParams, p) {\n"
    "  int i = threadIdx.x;\n"
    "  p.bf[i] = ditc_pack_bf16x2(p.x[i], p.y[i]);\n"
    "  p.hf[i] = ditc_pack_f16x2(p.x[i], p.y[i]);\n"
    "  p.s8[i] = ditc_pack_s8x4(i, -i, 127 - i, -128 + i);\n"
    "  p.lo[i] = ditc_bf16x2_get(p.bf[i], 0) + ditc_f16x2_get(p.hf[i], 0);\n"
    "  p.hi[i] = ditc_bf16x2_get(p.bf[i], 1) + ditc_f16x2_get(p.hf[i], 1);\n"
    "}\n";

/* Every ldmatrix form on a 16x24 tile of codes row*256 + column: lanes give
 * the rows of 8x8 matrix m = lane/8 as row (lane&7) + 8*(m&1), column 8*(m>>1);
 * lane misalign (when >= 0) gives an address 2 bytes off. */
static const char *const SRC_LDMATRIX =
    "typedef struct { unsigned *out; int misalign; } LdmParams;\n"
    "DITC_KERNEL(k_ldmatrix, LdmParams, p) {\n"
    "  DITC_SHARED(uint16_t, tile, 16 * 24);\n"
    "  int lane = threadIdx.x & 31;\n"
    "  for (int i = lane; i < 16 * 24; i += 32) tile[i] = (uint16_t)(i / 24 * 256 + i % 24);\n"
    "  __syncwarp();\n"
    "  const uint16_t *row = &tile[((lane & 7) + 8 * ((lane >> 3) & 1)) * 24 + 8 * (lane >> 4)];\n"
    "  if (lane == p.misalign) row += 1;\n"
    "  unsigned r[4], *o = p.out + lane * 14;\n"
    "  ditc_ldmatrix_x1(r, row); o[0] = r[0];\n"
    "  ditc_ldmatrix_x2(r, row); o[1] = r[0]; o[2] = r[1];\n"
    "  ditc_ldmatrix_x4(r, row); for (int m = 0; m < 4; m++) o[3 + m] = r[m];\n"
    "  ditc_ldmatrix_x1_trans(r, row); o[7] = r[0];\n"
    "  ditc_ldmatrix_x2_trans(r, row); o[8] = r[0]; o[9] = r[1];\n"
    "  ditc_ldmatrix_x4_trans(r, row); for (int m = 0; m < 4; m++) o[10 + m] = r[m];\n"
    "}\n";

/* The recipe of the dialect comment: one warp computes O = bf16(Q K^T) V for
 * 16 queries, 16 keys and head dimension 32, Q, K and V staged in shared
 * memory by cp.async, fragments by ldmatrix, P reused from the accumulators. */
static const char *const SRC_ATTN =
    "#define T_D 32\n"
    "#define T_LD 40\n"
    "typedef struct { const __nv_bfloat16 *q, *k, *v; float *o; } AttnParams;\n"
    "DITC_KERNEL(k_attn_tile, AttnParams, p) {\n"
    "  DITC_SHARED(__nv_bfloat16, qs, 16 * T_LD);\n"
    "  DITC_SHARED(__nv_bfloat16, ks, 16 * T_LD);\n"
    "  DITC_SHARED(__nv_bfloat16, vs, 16 * T_LD);\n"
    "  int lane = ditc_lane_id();\n"
    "  for (int c = lane; c < 16 * T_D / 8; c += 32) {\n"
    "    int r = c / (T_D / 8), col = c % (T_D / 8) * 8;\n"
    "    ditc_cp_async_16(&qs[r * T_LD + col], p.q + r * T_D + col);\n"
    "    ditc_cp_async_16(&ks[r * T_LD + col], p.k + r * T_D + col);\n"
    "    ditc_cp_async_16(&vs[r * T_LD + col], p.v + r * T_D + col);\n"
    "  }\n"
    "  ditc_cp_async_wait_all();\n"
    "  __syncwarp();\n"
    "  float s[2][4] = {{0, 0, 0, 0}, {0, 0, 0, 0}};\n"
    "  for (int kk = 0; kk < T_D; kk += 16) {\n"
    "    unsigned a[4], b[4];\n"
    "    ditc_ldmatrix_x4(a, &qs[(lane & 15) * T_LD + kk + 8 * (lane >> 4)]);\n"
    "    ditc_ldmatrix_x4(b, &ks[((lane & 7) + 8 * (lane >> 4)) * T_LD + kk + 8 * ((lane >> 3) & 1)]);\n"
    "    ditc_mma_bf16_16816(s[0], a, b, s[0]);\n"
    "    ditc_mma_bf16_16816(s[1], a, b + 2, s[1]);\n"
    "  }\n"
    "  unsigned pa[4] = {ditc_pack_bf16x2(s[0][0], s[0][1]), ditc_pack_bf16x2(s[0][2], s[0][3]),\n"
    "                    ditc_pack_bf16x2(s[1][0], s[1][1]), ditc_pack_bf16x2(s[1][2], s[1][3])};\n"
    "  for (int dd = 0; dd < T_D; dd += 16) {\n"
    "    unsigned b[4];\n"
    "    float o0[4] = {0, 0, 0, 0}, o1[4] = {0, 0, 0, 0};\n"
    "    ditc_ldmatrix_x4_trans(b, &vs[(lane & 15) * T_LD + dd + 8 * (lane >> 4)]);\n"
    "    ditc_mma_bf16_16816(o0, pa, b, o0);\n"
    "    ditc_mma_bf16_16816(o1, pa, b + 2, o1);\n"
    "    for (int i = 0; i < 4; i++) {\n"
    "      int row = ditc_mma_c_row(lane, i), col = ditc_mma_c_col(lane, i);\n"
    "      p.o[row * T_D + dd + col] = o0[i];\n"
    "      p.o[row * T_D + dd + 8 + col] = o1[i];\n"
    "    }\n"
    "  }\n"
    "}\n";

/* Warps that break the collectives' rules, by mode: 1 lane 5 returns first;
 * 2 lanes 16-31 do an ldmatrix; 3 lanes 16-31 shuffle; 4 lanes 16-31 wait at
 * __syncthreads; 0 with a partial warp.  Mode 5: a misaligned ditc_ld_b32. */
static const char *const SRC_FAULT =
    "typedef struct { float *out; int mode; } FaultParams;\n"
    "DITC_KERNEL(k_mma_fault, FaultParams, p) {\n"
    "  DITC_SHARED(uint16_t, tile, 16 * 8);\n"
    "  int lane = threadIdx.x & 31;\n"
    "  unsigned a[4] = {0, 0, 0, 0}, b[2] = {0, 0}, r[4];\n"
    "  float c[4] = {0, 0, 0, 0}, d[4] = {0, 0, 0, 0};\n"
    "  if (p.mode == 1 && lane == 5) return;\n"
    "  if (p.mode == 5) a[0] = ditc_ld_b32(&tile[2 * lane + 1]);\n"
    "  if (p.mode == 2 && lane >= 16) ditc_ldmatrix_x4(r, &tile[(lane & 15) * 8]);\n"
    "  else if (p.mode == 3 && lane >= 16) d[0] = __shfl_xor_sync(0xffffffffu, 1.0f, 1);\n"
    "  else if (p.mode == 4 && lane >= 16) __syncthreads();\n"
    "  else ditc_mma_bf16_16816(d, a, b, c);\n"
    "  p.out[threadIdx.x] = d[0];\n"
    "}\n";

/* cp.async on 64 threads: 16 bytes each (and zero-filled from t % 17 bytes),
 * read back before the wait, after it, and a neighbour's after a barrier; then
 * two committed groups and an uncommitted copy through wait_group(1),
 * wait_group(0) and wait_all. */
static const char *const SRC_CP =
    "typedef struct { const uint8_t *g; uint8_t *before, *after, *next, *zf, *w1, *w0, *wall; } CpParams;\n"
    "DITC_KERNEL(k_cp_async, CpParams, p) {\n"
    "  DITC_SHARED(uint8_t, s, 64 * 16);\n"
    "  DITC_SHARED(uint8_t, z, 64 * 16);\n"
    "  DITC_SHARED(uint8_t, s3, 64 * 48);\n"
    "  int t = threadIdx.x;\n"
    "  for (int i = 0; i < 16; i++) { s[t * 16 + i] = 0xab; z[t * 16 + i] = 0xcd; }\n"
    "  for (int i = 0; i < 48; i++) s3[t * 48 + i] = 0x11;\n"
    "  ditc_cp_async_16(&s[t * 16], p.g + t * 16);\n"
    "  ditc_cp_async_16_zfill(&z[t * 16], p.g + t * 16, t % 17);\n"
    "  ditc_cp_async_commit();\n"
    "  for (int i = 0; i < 16; i++) p.before[t * 16 + i] = s[t * 16 + i];\n"
    "  ditc_cp_async_wait_group(0);\n"
    "  __syncthreads();\n"
    "  for (int i = 0; i < 16; i++) {\n"
    "    p.after[t * 16 + i] = s[t * 16 + i];\n"
    "    p.next[t * 16 + i] = s[(t + 1) % 64 * 16 + i];\n"
    "    p.zf[t * 16 + i] = z[t * 16 + i];\n"
    "  }\n"
    "  for (int j = 0; j < 3; j++) {\n"
    "    ditc_cp_async_16(&s3[t * 48 + 16 * j], p.g + 1024 * (j + 1) + t * 16);\n"
    "    if (j < 2) ditc_cp_async_commit();\n"
    "  }\n"
    "  ditc_cp_async_wait_group(1);\n"
    "  for (int i = 0; i < 48; i++) p.w1[t * 48 + i] = s3[t * 48 + i];\n"
    "  ditc_cp_async_wait_group(0);\n"
    "  for (int i = 0; i < 48; i++) p.w0[t * 48 + i] = s3[t * 48 + i];\n"
    "  ditc_cp_async_wait_all();\n"
    "  for (int i = 0; i < 48; i++) p.wall[t * 48 + i] = s3[t * 48 + i];\n"
    "}\n"
    /* More copies in flight than the emulator queues (70 per thread, one
     * group), the source misaligned by `skew` bytes. */
    "typedef struct { const uint8_t *g; uint8_t *out; int skew; } CpManyParams;\n"
    "DITC_KERNEL(k_cp_many, CpManyParams, p) {\n"
    "  DITC_DYN_SHARED(uint8_t, buf);\n"
    "  int t = threadIdx.x;\n"
    "  for (int j = 0; j < 70; j++) ditc_cp_async_16(&buf[(t * 70 + j) * 16], p.g + p.skew + (t * 70 + j) * 16);\n"
    "  ditc_cp_async_wait_all();\n"
    "  for (int i = 0; i < 70 * 16; i++) p.out[t * 70 * 16 + i] = buf[t * 70 * 16 + i];\n"
    "}\n";

/* ---- helpers ---------------------------------------------------------------- */

static EmuModule *load(const char *src, const char *name) {
  IrErr err = {{0}};
  EmuModule *m = emu_module_load(src, name, &err);
  if (!m) fail_msg("%s", err.msg);
  return m;
}

static EmuDim3 d3(unsigned x, unsigned y, unsigned z) {
  EmuDim3 d = {x, y, z};
  return d;
}

/* 0, or -1 with the emulator's message in err. */
static int try_launch(const char *src, const char *kernel, EmuDim3 grid, EmuDim3 block, size_t dyn,
                      void *params, IrErr *err) {
  void *args[] = {params};
  return emu_launch(load(src, kernel), kernel, grid, block, dyn, args, err);
}

static void launch(const char *src, const char *kernel, EmuDim3 grid, EmuDim3 block, size_t dyn,
                   void *params) {
  IrErr err = {{0}};
  if (try_launch(src, kernel, grid, block, dyn, params, &err) != 0) fail_msg("%s", err.msg);
}

static void expect_launch_error(const char *src, const char *kernel, EmuDim3 block, void *params,
                                const char *want) {
  IrErr err = {{0}};
  assert_int_equal(try_launch(src, kernel, d3(1, 1, 1), block, 0, params, &err), -1);
  if (!strstr(err.msg, want)) fail_msg("want \"%s\" in: %s", want, err.msg);
}

static unsigned lcg(unsigned *s) {
  *s = *s * 1664525u + 1013904223u;
  return *s >> 8;
}

/* ---- m16n8k16 ----------------------------------------------------------------- */

typedef struct {
  const float *A, *B, *C;
  float *D;
  int bf16, mode;
} MmaParams;

enum { WARPS = 3 };

/* Runs k_mma16816 over WARPS problems; returns how many of D's elements
 * differ from C + A B computed in double (exact for these integer inputs);
 * the first mismatch goes to stderr when `report`. */
static int mma16816_mismatches(const float *A, const float *B, const float *C, int bf16, int mode,
                               int report) {
  float D[WARPS * 128];
  MmaParams p = {A, B, C, D, bf16, mode};
  launch(SRC_MMA, "k_mma16816", d3(1, 1, 1), d3(32 * WARPS, 1, 1), 0, &p);
  int bad = 0;
  for (int w = 0; w < WARPS; w++)
    for (int i = 0; i < 16; i++)
      for (int n = 0; n < 8; n++) {
        double want = C[w * 128 + i * 8 + n];
        for (int k = 0; k < 16; k++) want += (double)A[w * 256 + i * 16 + k] * B[w * 128 + k * 8 + n];
        float got = D[w * 128 + i * 8 + n];
        if (got != (float)want && bad++ == 0 && report)
          fprintf(stderr, "warp %d D[%d][%d] = %g, want %g (held by lane %d)\n", w, i, n, got, want,
                  (i % 8) * 4 + n / 2);
      }
  return bad;
}

/* Three problems: A's elements i*16 + k - 128 (each distinct, exact in bf16)
 * against a selection of rows of B; then small random integers twice. */
static void mma_inputs(float *A, float *B, float *C, unsigned seed) {
  unsigned s = seed;
  for (int i = 0; i < 16; i++)
    for (int k = 0; k < 16; k++) {
      A[i * 16 + k] = (float)(i * 16 + k - 128);
      for (int w = 1; w < WARPS; w++) A[w * 256 + i * 16 + k] = (float)((int)(lcg(&s) % 15) - 7);
    }
  for (int k = 0; k < 16; k++)
    for (int n = 0; n < 8; n++) {
      B[k * 8 + n] = k == (5 * n + 3) % 16;
      for (int w = 1; w < WARPS; w++) B[w * 128 + k * 8 + n] = (float)((int)(lcg(&s) % 9) - 4);
    }
  for (int w = 0; w < WARPS; w++)
    for (int i = 0; i < 128; i++) C[w * 128 + i] = w ? (float)((int)(lcg(&s) % 21) - 10) : 0.0f;
}

static void check_mma16816(int bf16) {
  float A[WARPS * 256], B[WARPS * 128], C[WARPS * 128];
  mma_inputs(A, B, C, bf16 ? 7 : 8);
  assert_int_equal(mma16816_mismatches(A, B, C, bf16, 0, 1), 0);
  /* the check catches layout mistakes: two elements swapped, B given the
   * accumulator's layout, rows+8 and columns+8 confused */
  for (int mode = 1; mode <= 3; mode++) assert_true(mma16816_mismatches(A, B, C, bf16, mode, 0) > 0);
}

static void test_mma_bf16_layout(void **state) {
  (void)state;
  check_mma16816(1);
}

static void test_mma_f16_layout(void **state) {
  (void)state;
  check_mma16816(0);
}

/* Values that round: the emulator adds C and the 16 products in k order in
 * f32 (the order the prelude documents), so it matches that sum to the bit. */
static void test_mma_rounding_order(void **state) {
  (void)state;
  float A[WARPS * 256], B[WARPS * 128], C[WARPS * 128], D[WARPS * 128];
  unsigned s = 11;
  for (int i = 0; i < WARPS * 256; i++) A[i] = tu_from_bits(tu_bits((float)(lcg(&s) % 2001) / 700.0f - 1.3f) & 0xffff0000u);
  for (int i = 0; i < WARPS * 128; i++) B[i] = tu_from_bits(tu_bits((float)(lcg(&s) % 2001) / 300.0f - 3.1f) & 0xffff0000u);
  for (int i = 0; i < WARPS * 128; i++) C[i] = (float)(lcg(&s) % 1000) / 77.0f;
  MmaParams p = {A, B, C, D, 1, 0};
  launch(SRC_MMA, "k_mma16816", d3(1, 1, 1), d3(32 * WARPS, 1, 1), 0, &p);
  int rounded = 0;
  for (int w = 0; w < WARPS; w++)
    for (int i = 0; i < 16; i++)
      for (int n = 0; n < 8; n++) {
        float acc = C[w * 128 + i * 8 + n];
        double exact = acc;
        for (int k = 0; k < 16; k++) {
          float prod = A[w * 256 + i * 16 + k] * B[w * 128 + k * 8 + n];
          acc += prod;
          exact += (double)A[w * 256 + i * 16 + k] * B[w * 128 + k * 8 + n];
        }
        assert_memory_equal(&D[w * 128 + i * 8 + n], &acc, 4);
        rounded += (double)acc != exact;
      }
  assert_true(rounded > 0); /* the inputs did exercise f32 rounding */
}

/* ---- m16n8k32 s8 --------------------------------------------------------------- */

static void test_mma_s8_layout_and_wrap(void **state) {
  (void)state;
  _Alignas(16) int8_t A[16 * 32];
  int8_t B[32 * 8];
  int C[128], D[128];
  unsigned s = 3;
  for (int i = 0; i < 16 * 32; i++) A[i] = (int8_t)(lcg(&s) % 256 - 128);
  for (int i = 0; i < 32 * 8; i++) B[i] = (int8_t)(lcg(&s) % 256 - 128);
  /* row 0 against column 0 at the extremes: 32 * 128 * 128 on top of C's
   * INT32_MAX - 1000 wraps to a negative sum; row 1 x column 1 at -128*127 */
  for (int k = 0; k < 32; k++) A[k] = -128, B[k * 8] = -128, A[32 + k] = -128, B[k * 8 + 1] = 127;
  for (int i = 0; i < 128; i++) C[i] = (int)(lcg(&s) % 2001) - 1000;
  C[0] = INT32_MAX - 1000;
  C[9] = INT32_MIN + 5;
  struct { const int8_t *A, *B; const int *C; int *D; } p = {A, B, C, D};
  launch(SRC_MMA, "k_mma_s8", d3(1, 1, 1), d3(32, 1, 1), 0, &p);
  for (int i = 0; i < 16; i++)
    for (int n = 0; n < 8; n++) {
      uint32_t want = (uint32_t)C[i * 8 + n];
      for (int k = 0; k < 32; k++) want += (uint32_t)(A[i * 32 + k] * B[k * 8 + n]);
      int32_t w;
      memcpy(&w, &want, 4);
      if (D[i * 8 + n] != w) fail_msg("D[%d][%d] = %d, want %d", i, n, D[i * 8 + n], w);
    }
  assert_true(D[0] < 0);          /* wrapped around */
  assert_true(D[9] > 0);          /* and the other way */
}

/* ---- the prelude's fragment coordinates and packing ------------------------ */

static void test_fragment_coordinates(void **state) {
  (void)state;
  enum { BX = 16, BY = 4, N = BX * BY };
  int *out = calloc(N * 97, sizeof *out);
  struct { int *out; } p = {out};
  launch(SRC_MMA, "k_frag", d3(1, 1, 1), d3(BX, BY, 1), 0, &p);
  for (int tid = 0; tid < N; tid++) {
    const int *o = out + tid * 97;
    int lane = tid % 32, g = lane / 4, t = lane % 4;
    assert_int_equal(o[0], lane);
    for (int i = 0; i < 8; i++) { /* PTX: rows g for a0,a1,a4,a5; columns +8 from a4 */
      assert_int_equal(o[1 + 2 * i], (i < 2 || (i >= 4 && i < 6)) ? g : g + 8);
      assert_int_equal(o[2 + 2 * i], t * 2 + (i & 1) + (i >= 4 ? 8 : 0));
    }
    for (int i = 0; i < 4; i++) {
      assert_int_equal(o[17 + 2 * i], t * 2 + (i & 1) + (i >= 2 ? 8 : 0));
      assert_int_equal(o[18 + 2 * i], g);
      assert_int_equal(o[25 + 2 * i], i < 2 ? g : g + 8);
      assert_int_equal(o[26 + 2 * i], t * 2 + (i & 1));
    }
    for (int i = 0; i < 16; i++) {
      assert_int_equal(o[33 + 2 * i], (i < 4 || (i >= 8 && i < 12)) ? g : g + 8);
      assert_int_equal(o[34 + 2 * i], t * 4 + (i & 3) + (i >= 8 ? 16 : 0));
    }
    for (int i = 0; i < 8; i++) {
      assert_int_equal(o[65 + 2 * i], t * 4 + (i & 3) + (i >= 4 ? 16 : 0));
      assert_int_equal(o[66 + 2 * i], g);
    }
  }
  free(out);
}

/* IEEE half bits of a value exactly representable as a normal half. */
static unsigned half_bits(float v) {
  unsigned sign = v < 0 ? 0x8000u : 0;
  int e;
  float m = frexpf(fabsf(v), &e); /* v = m 2^e, m in [0.5, 1) */
  return sign | (unsigned)(e - 1 + 15) << 10 | (unsigned)((m * 2.0f - 1.0f) * 1024.0f);
}

static void test_packing(void **state) {
  (void)state;
  enum { N = 32 };
  float x[N], y[N], lo[N], hi[N];
  unsigned bf[N], hf[N], s8[N];
  for (int i = 0; i < N; i++) x[i] = (float)(i + 1) * 0.25f, y[i] = -(float)(2 * i + 3) * 0.125f;
  struct { const float *x, *y; unsigned *bf, *hf, *s8; float *lo, *hi; } p = {x, y, bf, hf, s8, lo, hi};
  launch(SRC_MMA, "k_pack", d3(1, 1, 1), d3(N, 1, 1), 0, &p);
  for (int i = 0; i < N; i++) {
    assert_int_equal(bf[i], (tu_bits(x[i]) >> 16) | (tu_bits(y[i]) & 0xffff0000u));
    assert_int_equal(hf[i], half_bits(x[i]) | half_bits(y[i]) << 16);
    assert_int_equal(s8[i], (unsigned)(i & 0xff) | (unsigned)(-i & 0xff) << 8 |
                                (unsigned)((127 - i) & 0xff) << 16 | (unsigned)((-128 + i) & 0xff) << 24);
    assert_float_equal(lo[i], 2 * x[i], 0);
    assert_float_equal(hi[i], 2 * y[i], 0);
  }
}

/* ---- ldmatrix ------------------------------------------------------------------ */

/* Element (r, c) of the 8x8 matrix m as the test kernel's lanes address it. */
static unsigned ldm_code(int m, int r, int c) { return (unsigned)((8 * (m & 1) + r) * 256 + 8 * (m >> 1) + c); }

/* Lane l's register for matrix m: row l/4, columns 2(l%4) and one more;
 * transposed, column l/4 of rows 2(l%4) and one more; low half first. */
static unsigned ldm_want(int m, int l, int trans) {
  int a = l / 4, b = 2 * (l % 4);
  return trans ? ldm_code(m, b, a) | ldm_code(m, b + 1, a) << 16
               : ldm_code(m, a, b) | ldm_code(m, a, b + 1) << 16;
}

static void test_ldmatrix(void **state) {
  (void)state;
  unsigned out[32 * 14];
  struct { unsigned *out; int misalign; } p = {out, -1};
  launch(SRC_LDMATRIX, "k_ldmatrix", d3(1, 1, 1), d3(32, 1, 1), 0, &p);
  for (int l = 0; l < 32; l++) {
    const unsigned *o = out + l * 14;
    for (int trans = 0; trans < 2; trans++) {
      const unsigned *q = o + 7 * trans; /* x1: q[0]; x2: q[1..2]; x4: q[3..6] */
      assert_int_equal(q[0], ldm_want(0, l, trans));
      for (int m = 0; m < 2; m++) assert_int_equal(q[1 + m], ldm_want(m, l, trans));
      for (int m = 0; m < 4; m++) assert_int_equal(q[3 + m], ldm_want(m, l, trans));
    }
  }
  /* a row address off by 2 bytes is a fault naming the lane */
  p.misalign = 3;
  expect_launch_error(SRC_LDMATRIX, "k_ldmatrix", d3(32, 1, 1), &p,
                      "thread (0,0,0): ldmatrix.x1: lane 3 gives a row address that is not 16-byte aligned");
}

/* ---- the attention recipe ----------------------------------------------------- */

static uint16_t bf16_of_int(int v) { return (uint16_t)(tu_bits((float)v) >> 16); }

static void test_attention_tile_recipe(void **state) {
  (void)state;
  enum { D = 32 };
  _Alignas(16) uint16_t q[16 * D], k[16 * D], v[16 * D];
  int qi[16 * D], ki[16 * D], vi[16 * D];
  float o[16 * D];
  unsigned s = 5;
  for (int i = 0; i < 16 * D; i++) {
    qi[i] = (int)(lcg(&s) % 5) - 2, ki[i] = (int)(lcg(&s) % 5) - 2, vi[i] = (int)(lcg(&s) % 7) - 3;
    q[i] = bf16_of_int(qi[i]), k[i] = bf16_of_int(ki[i]), v[i] = bf16_of_int(vi[i]);
  }
  struct { const uint16_t *q, *k, *v; float *o; } p = {q, k, v, o};
  launch(SRC_ATTN, "k_attn_tile", d3(1, 1, 1), d3(32, 1, 1), 0, &p);
  for (int i = 0; i < 16; i++)
    for (int d = 0; d < D; d++) {
      int want = 0; /* |S| <= 128: exact in bf16 */
      for (int j = 0; j < 16; j++) {
        int sij = 0;
        for (int e = 0; e < D; e++) sij += qi[i * D + e] * ki[j * D + e];
        want += sij * vi[j * D + d];
      }
      if (o[i * D + d] != (float)want) fail_msg("O[%d][%d] = %g, want %d", i, d, o[i * D + d], want);
    }
}

/* ---- collectives' rules --------------------------------------------------------- */

static void test_collective_faults(void **state) {
  (void)state;
  float out[64];
  struct { float *out; int mode; } p = {out, 1};
  expect_launch_error(SRC_FAULT, "k_mma_fault", d3(32, 1, 1), &p,
                      "mma.sync.m16n8k16.bf16: lane 5 of the warp has returned");
  p.mode = 2;
  expect_launch_error(SRC_FAULT, "k_mma_fault", d3(32, 1, 1), &p,
                      "lane 16 of the warp is in another collective (ldmatrix.x4)");
  p.mode = 3;
  expect_launch_error(SRC_FAULT, "k_mma_fault", d3(64, 1, 1), &p,
                      "lane 16 of the warp waits in a shuffle or __syncwarp");
  p.mode = 4;
  expect_launch_error(SRC_FAULT, "k_mma_fault", d3(32, 1, 1), &p, "deadlocked");
  IrErr err = {{0}};
  assert_int_equal(try_launch(SRC_FAULT, "k_mma_fault", d3(1, 1, 1), d3(32, 1, 1), 0, &p, &err), -1);
  assert_non_null(strstr(err.msg, "waits in mma.sync.m16n8k16.bf16"));
  assert_non_null(strstr(err.msg, "waits at __syncthreads"));
  p.mode = 5;
  expect_launch_error(SRC_FAULT, "k_mma_fault", d3(32, 1, 1), &p,
                      "ditc_ld_b32: the address is not 4-byte aligned");
  p.mode = 0;
  expect_launch_error(SRC_FAULT, "k_mma_fault", d3(48, 1, 1), &p,
                      "needs a full warp, and warp 1 of this 48-thread block has 16 lanes");
  /* the rules kept, the same module runs; then the emulator is still usable */
  launch(SRC_FAULT, "k_mma_fault", d3(4, 1, 1), d3(64, 1, 1), 0, &p);
  for (int i = 0; i < 64; i++) assert_float_equal(out[i], 0.0f, 0);
}

/* ---- cp.async ------------------------------------------------------------------- */

static void test_cp_async(void **state) {
  (void)state;
  enum { T = 64 };
  _Alignas(16) uint8_t g[4096];
  uint8_t before[T * 16], after[T * 16], next[T * 16], zf[T * 16], w1[T * 48], w0[T * 48], wall[T * 48];
  for (int i = 0; i < 4096; i++) g[i] = (uint8_t)(i * 7 + i / 256);
  struct { const uint8_t *g; uint8_t *before, *after, *next, *zf, *w1, *w0, *wall; } p =
      {g, before, after, next, zf, w1, w0, wall};
  launch(SRC_CP, "k_cp_async", d3(2, 1, 1), d3(T, 1, 1), 0, &p);
  for (int t = 0; t < T; t++) {
    for (int i = 0; i < 16; i++) {
      assert_int_equal(before[t * 16 + i], 0xab); /* the emulator lands copies at the wait */
      assert_int_equal(after[t * 16 + i], g[t * 16 + i]);
      assert_int_equal(next[t * 16 + i], g[(t + 1) % T * 16 + i]);
      assert_int_equal(zf[t * 16 + i], i < t % 17 ? g[t * 16 + i] : 0);
    }
    for (int j = 0; j < 3; j++)
      for (int i = 0; i < 16; i++) {
        uint8_t src = g[1024 * (j + 1) + t * 16 + i];
        assert_int_equal(w1[t * 48 + 16 * j + i], j == 0 ? src : 0x11); /* one group in flight */
        assert_int_equal(w0[t * 48 + 16 * j + i], j < 2 ? src : 0x11); /* uncommitted: pending */
        assert_int_equal(wall[t * 48 + 16 * j + i], src);
      }
  }
}

static void test_cp_async_queue_and_alignment(void **state) {
  (void)state;
  enum { T = 32, BYTES = T * 70 * 16 };
  uint8_t *g = aligned_alloc(16, BYTES + 16), *out = malloc(BYTES);
  for (int i = 0; i < BYTES + 16; i++) g[i] = (uint8_t)(i * 13 + i / 999);
  struct { const uint8_t *g; uint8_t *out; int skew; } p = {g, out, 0};
  launch(SRC_CP, "k_cp_many", d3(1, 1, 1), d3(T, 1, 1), BYTES, &p);
  assert_memory_equal(out, g, BYTES);
  p.skew = 4;
  IrErr err = {{0}};
  assert_int_equal(try_launch(SRC_CP, "k_cp_many", d3(1, 1, 1), d3(T, 1, 1), BYTES, &p, &err), -1);
  assert_non_null(strstr(err.msg, "cp.async: an address that is not 16-byte aligned"));
  free(g);
  free(out);
}

/* ---- the preludes ----------------------------------------------------------------- */

/* The helpers both preludes define are one text, spliced into both embedded
 * preludes in place of their include line. */
static void test_shared_section_identical(void **state) {
  (void)state;
  const char *shared = emu_prelude_shared_text();
  assert_non_null(strstr(shared, "ditc_mma_a_row")); /* the fragment functions are in it */
  const char *texts[] = {emu_prelude_text(), emu_cuda_prelude_text()};
  for (int i = 0; i < 2; i++) {
    const char *at = strstr(texts[i], shared);
    assert_non_null(at);
    assert_null(strstr(at + 1, shared)); /* once */
    assert_null(strstr(texts[i], "#include \"prelude_shared.h\""));
  }
}

/* ---- the same kernels under NVRTC --------------------------------------------------- */

static int nvrtc_compile(CgNvrtc *nv, const char *src, const char *arch, CgCompiled *out, IrErr *err) {
  char inc[1024], cuda_inc[1024];
  const char *opts[3];
  tu_nvrtc_dialect_options(inc, cuda_inc, sizeof inc, opts);
  return cg_nvrtc_compile(nv, src, "test_mma.cu", arch, opts, 3, CG_OUT_CUBIN | CG_OUT_PTX, out, err);
}

static void test_nvrtc_archs(void **state) {
  (void)state;
  IrErr err = {{0}};
  CgNvrtc *nv = cg_nvrtc_open(NULL, &err);
  if (!nv) TU_SKIP(err.msg);
  size_t n = strlen(SRC_MMA) + strlen(SRC_LDMATRIX) + strlen(SRC_ATTN) + strlen(SRC_FAULT) + strlen(SRC_CP) + 1;
  char *all = malloc(n);
  snprintf(all, n, "%s%s%s%s%s", SRC_MMA, SRC_LDMATRIX, SRC_ATTN, SRC_FAULT, SRC_CP);
  const char *const archs[] = {"sm_80", "sm_86", "sm_89", "sm_90"};
  const char *const ptx[] = {
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32",
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32",
      "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32",
      "ldmatrix.sync.aligned.m8n8.x1.shared.b16",
      "ldmatrix.sync.aligned.m8n8.x2.shared.b16",
      "ldmatrix.sync.aligned.m8n8.x4.shared.b16",
      "ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16",
      "ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16",
      "ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16",
      "cp.async.cg.shared.global",
      "cp.async.commit_group",
      "cp.async.wait_group 1",
      "cp.async.wait_all",
      "%laneid",
  };
  const char *const kernels[] = {"k_mma16816", "k_mma_s8", "k_frag",      "k_pack",    "k_ldmatrix",
                                 "k_attn_tile", "k_mma_fault", "k_cp_async", "k_cp_many"};
  for (size_t a = 0; a < sizeof archs / sizeof *archs; a++) {
    CgCompiled out;
    if (nvrtc_compile(nv, all, archs[a], &out, &err) != 0)
      fail_msg("NVRTC rejects the tensor-core kernels for %s:\n%s", archs[a], out.diag ? out.diag : err.msg);
    for (size_t i = 0; i < sizeof ptx / sizeof *ptx; i++)
      if (!strstr(out.ptx, ptx[i])) fail_msg("%s: the PTX has no %s", archs[a], ptx[i]);
    for (size_t i = 0; i < sizeof kernels / sizeof *kernels; i++)
      assert_non_null(cg_compiled_find_kernel(&out, kernels[i]));
    cg_compiled_free(&out);
  }
  /* below sm_80: mma.sync is a compile error that says why; ldmatrix compiles */
  CgCompiled out;
  assert_int_equal(nvrtc_compile(nv, SRC_MMA, "sm_75", &out, &err), -1);
  assert_non_null(strstr(out.diag ? out.diag : err.msg, "ditc_mma_sync_requires_sm_80"));
  cg_compiled_free(&out);
  if (nvrtc_compile(nv, SRC_LDMATRIX, "sm_75", &out, &err) != 0)
    fail_msg("ldmatrix for sm_75:\n%s", out.diag ? out.diag : err.msg);
  assert_non_null(strstr(out.ptx, "ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16"));
  cg_compiled_free(&out);
  free(all);
  cg_nvrtc_close(nv);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_mma_bf16_layout),
      cmocka_unit_test(test_mma_f16_layout),
      cmocka_unit_test(test_mma_rounding_order),
      cmocka_unit_test(test_mma_s8_layout_and_wrap),
      cmocka_unit_test(test_fragment_coordinates),
      cmocka_unit_test(test_packing),
      cmocka_unit_test(test_ldmatrix),
      cmocka_unit_test(test_attention_tile_recipe),
      cmocka_unit_test(test_collective_faults),
      cmocka_unit_test(test_cp_async),
      cmocka_unit_test(test_cp_async_queue_and_alignment),
      cmocka_unit_test(test_shared_section_identical),
      cmocka_unit_test(test_nvrtc_archs),
  };
  return tu_run_group(tests, NULL, tu_emu_teardown);
}
