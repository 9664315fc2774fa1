/*
 * test_tuning.c - the launch-tuning table (codegen/kernels.c): every row's
 * geometry is legal on its architecture, and the check refuses rows that are
 * not; architectures find their rows (sm_90a the sm_90 row, others the
 * default, sm_75 its own: no tensor cores); a plan built for an architecture follows its row - the CG_*
 * macros in the source, the attention launches' block, grid and dynamic
 * shared memory - and computes the reference's numbers: dit-tiny-p2 from
 * ../shared/reference on the emulated backend within 1e-5 for the default,
 * sm_86 and sm_90 rows, whose attention geometry differs.  Each plan's source
 * also compiles under NVRTC for its architecture (skipped without NVRTC).
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

#include "runtime/backend.h"
#include "codegen/cg_internal.h"
#include "codegen/emu.h"
#include "codegen/nvrtc.h"
#include "frontend/frontend.h"
#include "passes/passes.h"
#include "runtime/safetensors.h"

static void test_rows_are_legal(void **state) {
  (void)state;
  int n;
  const CgTuning *rows = cg_tuning_rows(&n);
  assert_true(n >= 5);
  assert_string_equal(rows[0].arch, "default");
  for (int i = 0; i < n; i++) {
    IrErr err = {{0}};
    if (cg_tuning_check(&rows[i], &err)) fail_msg("%s", err.msg);
    /* the default row serves architectures it knows nothing of: no opt-in */
    if (i == 0) assert_int_equal(rows[i].smem_block, 48 * 1024);
  }
}

/* Copies of real rows, each broken in one way. */
static void expect_refused(CgTuning t, const char *needle) {
  IrErr err = {{0}};
  if (!cg_tuning_check(&t, &err)) fail_msg("row %s accepted (expected '%s')", t.arch, needle);
  if (!strstr(err.msg, needle)) fail_msg("expected '%s' in: %s", needle, err.msg);
}

static void test_check_refuses(void **state) {
  (void)state;
  CgTuning d = *cg_tuning_for(NULL), a = *cg_tuning_for("sm_86"), t;
  t = d, t.block_elementwise = 2048;
  expect_refused(t, "block_elementwise gives 2048 threads per block (1 to 1024)");
  t = d, t.block_elementwise = 200;
  expect_refused(t, "not whole warps");
  t = d, t.block_row_thread = 384; /* 1024 resident threads are not whole blocks of 384 */
  expect_refused(t, "block_row_thread gives 384 threads per block, which does not divide the 1024");
  t = d, t.rows_per_block = 64;
  expect_refused(t, "rows_per_block (32 lanes each) gives 2048");
  t = d, t.transpose_tile = 64, t.transpose_rows = 32;
  expect_refused(t, "transpose_tile x transpose_rows gives 2048 threads per block");
  t = a, t.transpose_tile = 128, t.transpose_rows = 2;
  expect_refused(t, "static shared memory");
  t = d, t.attn_warps = 0;
  expect_refused(t, "a count below 1");
  /* sm_80's 32-row attention block needs the opt-in the default row cannot assume */
  t = d, t.attn_warps = 8, t.attn_rows_per_warp = 4;
  expect_refused(t, "need 53376 bytes of shared memory at head dim 128; a block may have 49152");
  t = a, t.attn_warps = 16, t.attn_rows_per_warp = 8;
  expect_refused(t, "a block may have 101376");
  /* the tensor-core block: 16 warps of 16 rows is 87040 bytes at head dim 128 (the scalar one fits) */
  t = d, t.attn_warps = 16, t.attn_rows_per_warp = 1;
  expect_refused(t, "tensor-core attention blocks of 16 warps need 87040 bytes");
  t.tensor_cores = 0;
  IrErr ok = {{0}};
  if (cg_tuning_check(&t, &ok)) fail_msg("%s", ok.msg);
  t = a, t.smem_block = 200 * 1024;
  expect_refused(t, "do not describe a GPU");
}

static void test_arch_lookup(void **state) {
  (void)state;
  static const char *const own[] = {"sm_80", "sm_86", "sm_89", "sm_90"};
  for (int i = 0; i < 4; i++) assert_string_equal(cg_tuning_name(own[i]), own[i]);
  assert_string_equal(cg_tuning_name("sm_90a"), "sm_90");
  assert_string_equal(cg_tuning_name("sm_100f"), "default");
  assert_string_equal(cg_tuning_name("sm_75"), "sm_75");
  assert_string_equal(cg_tuning_name("sm_800"), "default");
  assert_string_equal(cg_tuning_name("sm_8"), "default");
  assert_string_equal(cg_tuning_name(NULL), "default");
  /* rows with the same geometry share a plan; the others differ where the
   * shared memory differs (attention) */
  assert_true(cg_tuning_same("sm_80", "sm_90"));
  assert_true(cg_tuning_same("sm_86", "sm_89"));
  assert_false(cg_tuning_same("sm_86", "sm_90"));
  assert_false(cg_tuning_same("sm_80", NULL));
  assert_false(cg_tuning_same("sm_86", "sm_75"));
  /* sm_75 has the default's geometry but no tensor cores (mma.sync needs sm_80) */
  assert_false(cg_tuning_same("sm_75", "sm_120"));
  assert_true(cg_tuning_same("sm_100", "sm_120"));
  assert_false(cg_tuning_for("sm_75")->tensor_cores);
  assert_true(cg_tuning_for("sm_120")->tensor_cores);
}

/* ---- plans per architecture against the reference ------------------------------- */

static const char *const TINY_SETS[][2] = {
    {"input_size", "16"}, {"in_channels", "4"}, {"patch_size", "2"},    {"hidden_size", "64"},
    {"depth", "2"},       {"num_heads", "4"},   {"mlp_ratio", "4.0"},   {"num_classes", "10"},
    {"learn_sigma", "true"}};

/* Plan p follows row t: the macros its source defines and its attention launches. */
static void check_follows_row(const CgPlan *p, const CgTuning *t) {
  assert_string_equal(p->tuning, t->arch);
  char want[96];
  snprintf(want, sizeof want, "#define CG_ATTN_WARPS %d\n#define CG_ATTN_ROWS_PER_WARP %d\n", t->attn_warps,
           t->attn_rows_per_warp);
  if (!strstr(p->source, want)) fail_msg("%s: the source does not define\n%s", t->arch, want);
  snprintf(want, sizeof want, "#define CG_BLOCK_ELEMENTWISE %d\n#define CG_ROWS_PER_BLOCK %d\n", t->block_elementwise,
           t->rows_per_block);
  if (!strstr(p->source, want)) fail_msg("%s: the source does not define\n%s", t->arch, want);
  int qr = t->attn_warps * t->attn_rows_per_warp, attn = 0;
  for (int s = 0; s < p->n_steps; s++) {
    const CgStep *st = &p->steps[s];
    if (st->kind != CG_STEP_KERNEL || !strstr(p->kernels[st->kernel].name, "attention")) continue;
    attn++;
    /* dit-tiny-p2: 64 tokens, head dim 16 */
    assert_int_equal(st->block[0], 32);
    assert_int_equal(st->block[1], t->attn_warps);
    assert_int_equal(st->grid[0], (64 + qr - 1) / qr);
    assert_int_equal(st->shared_bytes, cg_attention_smem(qr, 16, 16));
  }
  assert_int_equal(attn, 2); /* one per block */
}

static RtTensor run_on_emu(const CgPlan *p, const Weights *w, StFile *cf) {
  IrErr err = {{0}};
  void *blob = malloc((size_t)p->weights_bytes + 1);
  if (cg_plan_fill_weights(p, weights_values(w), blob, &err)) fail_msg("%s", err.msg);
  RtTensor in[3] = {{0}}, out = {0};
  assert_int_equal(p->n_inputs, 3);
  for (int i = 0; i < 3; i++) {
    const StTensor *t = st_find(cf, p->inputs[i].name);
    assert_non_null(t);
    if (st_load(t, p->inputs[i].dtype == IR_I32 ? IR_I32 : IR_F32, &in[i], &err)) fail_msg("%s", err.msg);
  }
  RtBackend *b = rt_backend_emu();
  RtModel m = {.plan = p, .blob = blob};
  if (b->prepare(b, &m, &err) || b->run(b, in, &out, &err)) fail_msg("%s: %s", p->tuning, err.msg);
  rt_backend_free(b);
  for (int i = 0; i < 3; i++) rt_tensor_free(&in[i]);
  free(blob);
  return out;
}

static double rel_err(const RtTensor *got, const RtTensor *want) {
  int64_t n = rt_numel(want);
  assert_int_equal(rt_numel(got), n);
  double d = 0, s = 0;
  for (int64_t i = 0; i < n; i++) {
    double g = ((const float *)got->data)[i], r = ((const float *)want->data)[i];
    d += (g - r) * (g - r), s += r * r;
  }
  return sqrt(d / (s > 0 ? s : 1));
}

static void nvrtc_compiles(const CgPlan *p, const char *arch) {
  IrErr err = {{0}};
  CgNvrtc *nv = cg_nvrtc_open(NULL, &err);
  if (!nv) {
    tu_note_skip(err.msg);
    return;
  }
  char inc[1024], cuda_inc[1024];
  const char *opts[3];
  tu_nvrtc_dialect_options(inc, cuda_inc, sizeof inc, opts);
  CgCompiled out;
  if (cg_nvrtc_compile(nv, p->source, "tuning.cu", arch, opts, 3, CG_OUT_CUBIN, &out, &err))
    fail_msg("NVRTC (%s) rejects the %s plan:\n%s", arch, p->tuning, out.diag ? out.diag : err.msg);
  cg_compiled_free(&out);
  cg_nvrtc_close(nv);
}

static void test_reference_per_arch(void **state) {
  (void)state;
  char path[1024];
  snprintf(path, sizeof path, "%s/reference/dit-tiny-p2.case.safetensors", tu_shared_dir());
  IrErr err = {{0}};
  StFile *cf = st_open(path, &err);
  if (!cf) {
    TU_SKIP(err.msg);
  }
  FeSetting sets[9];
  for (int i = 0; i < 9; i++) sets[i] = (FeSetting){TINY_SETS[i][0], TINY_SETS[i][1]};
  FeModel m;
  if (fe_build(DITC_SOURCE_DIR "/models/dit.dit", sets, 9, "forward", stderr, &m)) fail_msg("the model does not build");
  PassOptions po = {.verify = 1};
  if (pass_run_pipeline(m.graph, "default", &po, &err)) fail_msg("%s", err.msg);
  Weights w;
  snprintf(path, sizeof path, "%s/reference/dit-tiny-p2.weights.safetensors", tu_shared_dir());
  if (weights_load(m.graph, path, &w, &err)) fail_msg("%s", err.msg);
  RtTensor want;
  if (st_load(st_find(cf, "out"), IR_F32, &want, &err)) fail_msg("%s", err.msg);
  static const char *const archs[] = {NULL, "sm_86", "sm_90"};
  uint32_t smem[3];
  for (int a = 0; a < 3; a++) {
    CgOptions o = {.precision = IR_F32, .batch = 2, .arch = archs[a]};
    CgPlan *p;
    if (cg_plan_build(m.graph, &o, &p, &err)) fail_msg("%s", err.msg);
    check_follows_row(p, cg_tuning_for(archs[a]));
    for (int s = 0; s < p->n_steps; s++)
      if (p->steps[s].kind == CG_STEP_KERNEL && strstr(p->kernels[p->steps[s].kernel].name, "attention"))
        smem[a] = p->steps[s].shared_bytes;
    RtTensor out = run_on_emu(p, &w, cf);
    double e = rel_err(&out, &want);
    if (!(e < 1e-5)) fail_msg("%s plan: relative L2 %g against the reference", p->tuning, e);
    nvrtc_compiles(p, archs[a] ? archs[a] : "sm_75");
    rt_tensor_free(&out);
    cg_plan_free(p);
  }
  /* the rows differ where it counts: sm_86 keeps 16 query rows a block, sm_90 takes 32 */
  assert_int_equal(smem[0], smem[1]);
  assert_true(smem[2] > smem[1]);
  rt_tensor_free(&want);
  weights_free(&w);
  fe_model_free(&m);
  st_close(cf);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rows_are_legal),
      cmocka_unit_test(test_check_refuses),
      cmocka_unit_test(test_arch_lookup),
      cmocka_unit_test(test_reference_per_arch),
  };
  return tu_run_group(tests, NULL, tu_emu_teardown);
}
