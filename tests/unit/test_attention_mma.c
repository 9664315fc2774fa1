/*
 * test_attention_mma.c - the fused attention kernels (codegen/attention.c)
 * emitted on their own and run on the emulated device against attention
 * computed in double on the host: the tensor-core kernel of f16/bf16 plans
 * (mma.sync, ldmatrix, cp.async) at every head dim class up to 128 - 8, 16,
 * 40, 72 (padded to 80), 128 - with query and key counts that are not
 * multiples of the tiles, q/k/v stored in the precision (cp.async tiles) or
 * in f32 (element loads), read through the strided views the qkv projection
 * gives, and grouped K/V heads (q head h reading K/V head h / group in
 * place); the scalar kernel for f32 plans and for rows without tensor cores
 * (sm_75), grouped too.  Tolerance: relative L2 1e-2 (bf16/f16, the issue's
 * bound), 1e-5 (f32).
 *
 * Then the kernels' source under NVRTC for sm_80, 86, 89 and 90: the PTX of
 * the f16/bf16 plans has mma.sync m16n8k16 (bf16 / f16), ldmatrix and
 * cp.async; sm_75's has none.  Without NVRTC that test skips (exit 77).
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

#include "codegen/cg_internal.h"
#include "codegen/emu.h"
#include "codegen/nvrtc.h"

/* One attention problem: B batches of H query heads, H / group K/V heads. */
typedef struct {
  IrDType prec;        /* the plan's precision */
  const char *arch;    /* the tuning row */
  int64_t B, H, group, N, M, D, Dv;
  IrDType qdt, kvdt, odt; /* storage of q, of k and v, of out */
  int packed;          /* q, k, v interleaved as the qkv projection's [B, N, 3, H, D] (group 1, D == Dv) */
} Problem;

typedef struct {
  CgPlan plan;
  CgEmit e;
  char *source;
  int64_t q_at, k_at, v_at, o_at, bytes; /* arena offsets */
  CgView q, k, v, o;
} Built;

static CgView view4(CgLoc loc, int64_t a, int64_t b, int64_t c, int64_t d, int64_t sa, int64_t sb, int64_t sc,
                    int64_t sd, int64_t off) {
  CgView v = {.loc = loc, .rank = 4, .shape = {a, b, c, d}, .stride = {sa, sb, sc, sd}, .offset = off};
  return v;
}

static int64_t align256(int64_t x) { return (x + 255) / 256 * 256; }

static void build(const Problem *p, Built *b) {
  memset(b, 0, sizeof *b);
  b->plan.precision = p->prec;
  b->e.plan = &b->plan;
  b->e.tune = cg_tuning_for(p->arch);
  b->e.batch = p->B;
  int64_t hk = p->H / p->group;
  size_t qs = ir_dtype_size(p->qdt), ks = ir_dtype_size(p->kvdt);
  if (p->packed) {
    /* one [B, N, 3, H, D] buffer (N == M), stored in kvdt */
    int64_t row = 3 * p->H * p->D;
    CgLoc l = {CG_SPACE_ACT, p->kvdt, 0};
    b->q = view4(l, p->B, p->H, p->N, p->D, p->N * row, p->D, row, 1, 0);
    b->k = view4(l, p->B, p->H, p->M, p->D, p->N * row, p->D, row, 1, p->H * p->D);
    b->v = view4(l, p->B, p->H, p->M, p->Dv, p->N * row, p->D, row, 1, 2 * p->H * p->D);
    b->q_at = b->k_at = b->v_at = 0;
    b->o_at = align256(p->B * p->N * row * (int64_t)ks);
  } else {
    b->q_at = 0;
    b->k_at = align256(p->B * p->H * p->N * p->D * (int64_t)qs);
    b->v_at = b->k_at + align256(p->B * hk * p->M * p->D * (int64_t)ks);
    b->o_at = b->v_at + align256(p->B * hk * p->M * p->Dv * (int64_t)ks);
    b->q = view4((CgLoc){CG_SPACE_ACT, p->qdt, b->q_at}, p->B, p->H, p->N, p->D, p->H * p->N * p->D, p->N * p->D,
                 p->D, 1, 0);
    b->k = view4((CgLoc){CG_SPACE_ACT, p->kvdt, b->k_at}, p->B, hk, p->M, p->D, hk * p->M * p->D, p->M * p->D,
                 p->D, 1, 0);
    b->v = view4((CgLoc){CG_SPACE_ACT, p->kvdt, b->v_at}, p->B, hk, p->M, p->Dv, hk * p->M * p->Dv,
                 p->M * p->Dv, p->Dv, 1, 0);
  }
  /* out [B, N, H, Dv] (the permute back), viewed as [B, H, N, Dv] */
  b->o = view4((CgLoc){CG_SPACE_ACT, p->odt, b->o_at}, p->B, p->H, p->N, p->Dv, p->N * p->H * p->Dv, p->Dv,
               p->H * p->Dv, 1, 0);
  b->bytes = b->o_at + p->B * p->N * p->H * p->Dv * (int64_t)ir_dtype_size(p->odt);
  const CgTuning *t = b->e.tune;
  cg_text_printf(&b->e.src,
                 "typedef struct {\n  char *act;\n  const char *w;\n  long long o[%d];\n} DitcArgs;\n"
                 "#define CG_ATTN_WARPS %d\n#define CG_ATTN_ROWS_PER_WARP %d\n",
                 CG_MAX_PARAMS, t->attn_warps, t->attn_rows_per_warp);
  CgAttnGroup g = {1, p->group};
  cg_emit_attention(&b->e, NULL, "test attention", b->o, b->q, b->k, b->v, 1.0f / sqrtf((float)p->D), &g);
  assert_int_equal(b->e.n_kernels, 1);
  assert_int_equal(b->e.n_steps, 1);
  b->source = b->e.src.s;
}

static void built_free(Built *b) {
  free(b->e.src.s);
  free(b->e.kernels);
  free(b->e.steps);
  free(b->e.canon);
  free(b->e.keys);
  arena_free(&b->plan.arena);
}

static unsigned lcg(unsigned *s) {
  *s = *s * 1664525u + 1013904223u;
  return *s >> 8;
}

/* Store f at element i of a dtype array; returns the value as stored. */
static float put(void *base, IrDType t, int64_t i, float f) {
  switch (t) {
  case IR_F32: ((float *)base)[i] = f; return f;
  case IR_F16: ((uint16_t *)base)[i] = ir_f32_to_f16(f); return ir_f16_to_f32(((uint16_t *)base)[i]);
  case IR_BF16: ((uint16_t *)base)[i] = ir_f32_to_bf16(f); return ir_bf16_to_f32(((uint16_t *)base)[i]);
  default: fail_msg("dtype"); return 0;
  }
}

static float get(const void *base, IrDType t, int64_t i) {
  switch (t) {
  case IR_F32: return ((const float *)base)[i];
  case IR_F16: return ir_f16_to_f32(((const uint16_t *)base)[i]);
  case IR_BF16: return ir_bf16_to_f32(((const uint16_t *)base)[i]);
  default: fail_msg("dtype"); return 0;
  }
}

static int64_t at(const CgView *v, int64_t b, int64_t h, int64_t i, int64_t d) {
  return v->offset + b * v->stride[0] + h * v->stride[1] + i * v->stride[2] + d * v->stride[3];
}

/* Fill q, k, v through their views (the stored values in vals), run the
 * kernel, compare with attention in double; returns the relative L2 error. */
static double run(const Problem *p, const Built *b) {
  char *act = aligned_alloc(256, (size_t)align256(b->bytes));
  memset(act, 0xff, (size_t)align256(b->bytes)); /* NaN bits: every element read must have been written */
  unsigned s = (unsigned)(p->D * 131 + p->N * 7 + p->group);
  int64_t hk = p->H / p->group;
  for (int64_t bb = 0; bb < p->B; bb++)
    for (int64_t h = 0; h < p->H; h++) {
      for (int64_t i = 0; i < p->N; i++)
        for (int64_t d = 0; d < p->D; d++)
          put(act + b->q.loc.offset, b->q.loc.dtype, at(&b->q, bb, h, i, d), (float)(lcg(&s) % 2001) / 500.0f - 2.0f);
      if (h >= hk && !p->packed) continue;
      for (int64_t j = 0; j < p->M; j++) {
        for (int64_t d = 0; d < p->D; d++)
          put(act + b->k.loc.offset, b->k.loc.dtype, at(&b->k, bb, h, j, d), (float)(lcg(&s) % 2001) / 500.0f - 2.0f);
        for (int64_t d = 0; d < p->Dv; d++)
          put(act + b->v.loc.offset, b->v.loc.dtype, at(&b->v, bb, h, j, d), (float)(lcg(&s) % 2001) / 1000.0f - 1.0f);
      }
    }
  const CgStep *st = &b->e.steps[0];
  IrErr err = {{0}};
  EmuModule *m = emu_module_load(b->source, "test_attention.cu", &err);
  if (!m) fail_msg("%s", err.msg);
  DitcArgs args = {.act = act};
  cg_step_args(st, &args);
  void *argv[] = {&args};
  EmuDim3 grid = {st->grid[0], st->grid[1], st->grid[2]}, block = {st->block[0], st->block[1], st->block[2]};
  if (emu_launch(m, b->e.kernels[0].name, grid, block, st->shared_bytes, argv, &err)) fail_msg("%s", err.msg);
  double num = 0, den = 0;
  double *sc = malloc((size_t)p->M * sizeof *sc);
  float scale = 1.0f / sqrtf((float)p->D);
  for (int64_t bb = 0; bb < p->B; bb++)
    for (int64_t h = 0; h < p->H; h++) {
      int64_t kh = h / p->group;
      for (int64_t i = 0; i < p->N; i++) {
        double mx = -INFINITY, sum = 0;
        for (int64_t j = 0; j < p->M; j++) {
          double x = 0;
          for (int64_t d = 0; d < p->D; d++)
            x += (double)get(act + b->q.loc.offset, b->q.loc.dtype, at(&b->q, bb, h, i, d)) *
                 get(act + b->k.loc.offset, b->k.loc.dtype, at(&b->k, bb, kh, j, d));
          sc[j] = x * scale;
          if (sc[j] > mx) mx = sc[j];
        }
        for (int64_t j = 0; j < p->M; j++) sum += sc[j] = exp(sc[j] - mx);
        for (int64_t d = 0; d < p->Dv; d++) {
          double want = 0;
          for (int64_t j = 0; j < p->M; j++)
            want += sc[j] / sum * get(act + b->v.loc.offset, b->v.loc.dtype, at(&b->v, bb, kh, j, d));
          double got = get(act + b->o.loc.offset, b->o.loc.dtype, at(&b->o, bb, h, i, d));
          if (!isfinite(got)) fail_msg("out[%lld][%lld][%lld][%lld] = %g", (long long)bb, (long long)h, (long long)i,
                                       (long long)d, got);
          num += (got - want) * (got - want), den += want * want;
        }
      }
    }
  free(sc);
  free(act);
  return sqrt(num / den);
}

static int uses_mma(const Built *b) { return strstr(b->source, "ditc_mma_") != NULL; }

static void check(const Problem *p, int want_mma, int want_async) {
  Built b;
  build(p, &b);
  assert_int_equal(uses_mma(&b), want_mma);
  assert_int_equal(strstr(b.source, "ditc_cp_async_16_zfill") != NULL, want_async);
  double e = run(p, &b);
  double tol = p->prec == IR_F32 ? 1e-5 : 1e-2;
  if (!(e < tol))
    fail_msg("%s %s D=%lld Dv=%lld N=%lld M=%lld group %lld: relative L2 %g (tolerance %g)", ir_dtype_name(p->prec),
             b.e.tune->arch, (long long)p->D, (long long)p->Dv, (long long)p->N, (long long)p->M,
             (long long)p->group, e, tol);
  built_free(&b);
}

static void test_tensor_cores_every_head_dim(void **state) {
  (void)state;
  static const int64_t dims[] = {8, 16, 40, 72, 128};
  for (int i = 0; i < 5; i++)
    for (int pb = 0; pb < 2; pb++) {
      IrDType prec = pb ? IR_BF16 : IR_F16;
      /* stored in the precision: cp.async tiles; D = 8 rows are 16 bytes, also copied */
      Problem p = {prec, NULL, 1, 2, 1, 37, 45, dims[i], dims[i], prec, prec, prec, 0};
      check(&p, 1, 1);
      /* q in f32, k and v in the other half type: element loads, f32 out */
      p.qdt = IR_F32, p.kvdt = pb ? IR_F16 : IR_BF16, p.odt = IR_F32;
      check(&p, 1, 0);
    }
  /* a value dim other than the head dim, not a multiple of 8: element loads for v */
  Problem p = {IR_BF16, "sm_90", 2, 2, 1, 70, 33, 24, 20, IR_BF16, IR_BF16, IR_BF16, 0};
  check(&p, 1, 1);
}

static void test_tensor_cores_read_the_qkv_projection(void **state) {
  (void)state;
  /* DiT-XL/2's head dim 72 and 256 tokens, two heads, q/k/v interleaved in one buffer */
  Problem p = {IR_BF16, "sm_80", 1, 2, 1, 256, 256, 72, 72, IR_BF16, IR_BF16, IR_BF16, 1};
  check(&p, 1, 1);
  p.prec = IR_F16, p.kvdt = IR_F16, p.odt = IR_F16, p.arch = "sm_86", p.N = p.M = 100;
  check(&p, 1, 1);
}

static void test_grouped_kv_heads(void **state) {
  (void)state;
  /* 8 query heads, 2 and 4 K/V heads, on both kernels */
  for (int g = 2; g <= 4; g *= 2) {
    Problem p = {IR_BF16, NULL, 2, 8, g, 19, 50, 72, 72, IR_BF16, IR_BF16, IR_BF16, 0};
    check(&p, 1, 1);
    p.prec = IR_F32, p.qdt = p.kvdt = p.odt = IR_F32;
    check(&p, 0, 0);
  }
  Built b;
  Problem p = {IR_BF16, NULL, 1, 4, 2, 16, 16, 16, 16, IR_BF16, IR_BF16, IR_BF16, 0};
  build(&p, &b);
  assert_non_null(strstr(b.source, "(l1 / 2LL)"));
  assert_non_null(strstr(b.source, "2 query heads per K/V head"));
  built_free(&b);
}

static void test_scalar_where_no_tensor_cores(void **state) {
  (void)state;
  /* f32 plans keep the scalar kernel (1e-5); so do f16/bf16 plans on sm_75 */
  Problem p = {IR_F32, "sm_90", 1, 2, 1, 37, 45, 72, 72, IR_F32, IR_F32, IR_F32, 0};
  check(&p, 0, 0);
  p.prec = IR_BF16, p.arch = "sm_75", p.qdt = p.kvdt = p.odt = IR_BF16;
  check(&p, 0, 0);
}

/* ---- NVRTC --------------------------------------------------------------------- */

static void test_nvrtc_ptx_has_mma(void **state) {
  (void)state;
  IrErr err = {{0}};
  CgNvrtc *nv = cg_nvrtc_open(NULL, &err);
  if (!nv) {
    TU_SKIP(err.msg);
  }
  char inc[1024], cuda_inc[1024];
  const char *opts[3];
  tu_nvrtc_dialect_options(inc, cuda_inc, sizeof inc, opts);
  static const char *const archs[] = {"sm_80", "sm_86", "sm_89", "sm_90", "sm_75"};
  for (int a = 0; a < 5; a++)
    for (int pb = 0; pb < 2; pb++) {
      IrDType prec = pb ? IR_BF16 : IR_F16;
      Problem p = {prec, archs[a], 2, 16, 1, 256, 256, 72, 72, prec, prec, prec, 1};
      Built b;
      build(&p, &b);
      CgCompiled out;
      if (cg_nvrtc_compile(nv, b.source, "attention.cu", archs[a], opts, 3, CG_OUT_CUBIN | CG_OUT_PTX, &out, &err))
        fail_msg("NVRTC (%s) rejects the attention kernel:\n%s", archs[a], out.diag ? out.diag : err.msg);
      int tc = a < 4;
      char want[96];
      snprintf(want, sizeof want, "mma.sync.aligned.m16n8k16.row.col.f32.%s.%s.f32", pb ? "bf16" : "f16",
               pb ? "bf16" : "f16");
      if ((strstr(out.ptx, want) != NULL) != tc) fail_msg("%s %s: the PTX %s '%s'", archs[a], ir_dtype_name(prec),
                                                         tc ? "lacks" : "has", want);
      assert_int_equal(strstr(out.ptx, "ldmatrix.sync.aligned") != NULL, tc);
      assert_int_equal(strstr(out.ptx, "cp.async") != NULL, tc);
      assert_int_equal(out.cubin_size > 0, 1);
      cg_compiled_free(&out);
      built_free(&b);
    }
  cg_nvrtc_close(nv);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_tensor_cores_every_head_dim),
      cmocka_unit_test(test_tensor_cores_read_the_qkv_projection),
      cmocka_unit_test(test_grouped_kv_heads),
      cmocka_unit_test(test_scalar_where_no_tensor_cores),
      cmocka_unit_test(test_nvrtc_ptx_has_mma),
  };
  return tu_run_group(tests, NULL, tu_emu_teardown);
}
