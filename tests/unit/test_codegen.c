/*
 * test_codegen.c - the code generator against the reference executor.
 *
 * Every op gets a small graph built with the IR builders; the graph is run by
 * runtime/ref.c and, lowered by cg_plan_build(), on the emulated device: the
 * plan's source is loaded with emu_module_load(), kernel steps are launched
 * with emu_launch() and GEMM steps run through cg_gemm_ref().  Outputs must
 * match in relative L2: 1e-5 at f32, 1e-2 at f16 and bf16.  Each plan's source
 * must also compile under NVRTC for sm_80 and sm_90 (skipped without NVRTC).
 * End to end: dit-tiny-p2 (forward and forward_with_cfg, f32 and bf16),
 * paper-att-fgq and paper-moe-8e2a from ../shared/reference.
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

#include "codegen/cg_internal.h"
#include "codegen/emu.h"
#include "codegen/nvrtc.h"
#include "frontend/frontend.h"
#include "passes/calib.h"
#include "passes/passes.h"
#include "codegen/plan.h"
#include "runtime/ref.h"
#include "runtime/safetensors.h"
#include "runtime/tensor.h"
#include "runtime/weights.h"

#ifndef DITC_SOURCE_DIR
#define DITC_SOURCE_DIR "."
#endif

/* ---- small helpers --------------------------------------------------------- */

static IrLoc noloc(void) { return (IrLoc){0}; }

static IrShape shp(int rank, ...) {
  va_list ap;
  va_start(ap, rank);
  IrDim d[IR_MAX_RANK];
  for (int i = 0; i < rank; i++) d[i] = va_arg(ap, IrDim);
  va_end(ap);
  return ir_shape_make(rank, d);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static double urand(void) { /* splitmix64 -> [0, 1) */
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return (double)(z >> 11) / 9007199254740992.0;
}

static double rel_l2(const RtTensor *got, const RtTensor *want) {
  int64_t n = rt_numel(want);
  assert_int_equal(rt_numel(got), n);
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; i++) {
    double a, b;
    if (want->dtype == IR_I32) {
      a = ((const int32_t *)got->data)[i];
      b = ((const int32_t *)want->data)[i];
    } else {
      a = ((const float *)got->data)[i];
      b = ((const float *)want->data)[i];
    }
    if (isnan(a) != isnan(b)) return INFINITY;
    num += (a - b) * (a - b);
    den += b * b;
  }
  if (den == 0) return sqrt(num);
  return sqrt(num / den);
}

static CgNvrtc *nvrtc; /* NULL when NVRTC is missing */

static void nvrtc_check(const CgPlan *p, const char *arch, const char *label) {
  if (!nvrtc) return;
  const char *srcdir = getenv("DITC_SRC") ? getenv("DITC_SRC") : DITC_SOURCE_DIR;
  const char *cuda = getenv("CUDA_HOME") ? getenv("CUDA_HOME") : "/usr/local/cuda";
  char inc[1024], cuda_inc[1024];
  snprintf(inc, sizeof inc, "-I%s/codegen", srcdir);
  snprintf(cuda_inc, sizeof cuda_inc, "-I%s/include", cuda);
  const char *opts[] = {inc, cuda_inc, "--pre-include=cuda_prelude.h"};
  CgCompiled out;
  IrErr err = {{0}};
  if (cg_nvrtc_compile(nvrtc, p->source, label, arch, opts, 3, CG_OUT_CUBIN, &out, &err) != 0)
    fail_msg("NVRTC (%s) rejects %s:\n%s", arch, label, out.diag ? out.diag : err.msg);
  for (int k = 0; k < p->n_kernels; k++)
    if (!cg_compiled_find_kernel(&out, p->kernels[k].name))
      fail_msg("%s: kernel %s missing from the CUBIN", label, p->kernels[k].name);
  cg_compiled_free(&out);
}

/* Structural checks every plan must pass. */
static void check_plan_shape(const CgPlan *p) {
  assert_non_null(strstr(p->source, "typedef struct {\n  char *act;\n  const char *w;\n  long long o["));
  assert_true(p->n_params >= 0 && p->n_params <= CG_MAX_PARAMS);
  assert_non_null(strstr(p->source, CG_CODEGEN_VERSION));
  for (int i = 0; i < p->n_inputs; i++) {
    assert_int_equal(p->inputs[i].offset % 256, 0);
    assert_true(p->inputs[i].offset < p->arena_bytes || p->arena_bytes == 0);
  }
  for (int i = 0; i < p->n_outputs; i++) assert_int_equal(p->outputs[i].offset % 256, 0);
  for (int i = 0; i < p->n_weights; i++) {
    const CgWeight *w = &p->weights[i];
    int64_t n = (int64_t)ir_dtype_size(w->dtype);
    for (int j = 0; j < w->rank; j++) n *= w->shape[j];
    assert_true(w->offset == -1 || (w->offset % 256 == 0 && w->offset + n <= p->weights_bytes));
    IrErr err = {{0}};
    if (cg_weight_check(p, i, &err)) fail_msg("%s", err.msg);
  }
  for (int s = 0; s < p->n_steps; s++) {
    const CgStep *st = &p->steps[s];
    assert_non_null(st->what);
    if (st->kind == CG_STEP_KERNEL) {
      assert_true(st->kernel >= 0 && st->kernel < p->n_kernels);
      assert_true(st->grid[0] >= 1 && st->block[0] >= 1);
      assert_true(st->block[0] * st->block[1] * st->block[2] <= 1024);
    } else {
      const CgGemm *g = &st->gemm;
      assert_int_equal(g->d.space, CG_SPACE_ACT);
      int64_t es = (int64_t)ir_dtype_size(g->d_dtype);
      int64_t d_end = g->d.offset + es * ((g->batch - 1) * g->stride_d + (g->m - 1) * g->ldd + g->n);
      assert_true(d_end <= p->arena_bytes);
    }
  }
}

/* Runs plan p on the emulator: inputs in ir_graph_inputs() order, outputs
 * allocated here (IR dtypes, f32 values for float outputs). */
static void run_plan_emu(const CgPlan *p, const Weights *w, const RtTensor *in, RtTensor *out,
                         int *status) {
  IrErr err = {{0}};
  char *act = calloc(1, (size_t)p->arena_bytes + 1);
  char *blob = calloc(1, (size_t)p->weights_bytes + 1);
  assert_non_null(act);
  assert_non_null(blob);
  if (cg_plan_fill_weights(p, weights_values(w), blob, &err)) fail_msg("fill weights: %s", err.msg);
  memset(act, 0x7f, (size_t)p->arena_bytes); /* stale data must not matter */
  for (int i = 0; i < p->n_inputs; i++) {
    assert_int_equal(in[i].dtype, p->inputs[i].dtype);
    memcpy(act + p->inputs[i].offset, in[i].data, rt_nbytes(&in[i]));
  }
  EmuModule *m = emu_module_load(p->source, "codegen_test", &err);
  if (!m) fail_msg("emu: %s", err.msg);
  DitcArgs args = {.act = act, .w = blob};
  void *argv[1] = {&args};
  for (int s = 0; s < p->n_steps; s++) {
    const CgStep *st = &p->steps[s];
    if (st->kind == CG_STEP_GEMM) {
      cg_gemm_ref(&st->gemm, act, blob);
      continue;
    }
    const char *name = p->kernels[st->kernel].name;
    cg_step_args(st, &args);
    EmuDim3 grid = {st->grid[0], st->grid[1], st->grid[2]};
    EmuDim3 block = {st->block[0], st->block[1], st->block[2]};
    if (emu_launch(m, name, grid, block, st->shared_bytes, argv, &err))
      fail_msg("step %d (%s): %s", s, st->what, err.msg);
  }
  for (int i = 0; i < p->n_outputs; i++) {
    const CgIo *io = &p->outputs[i];
    out[i] = rt_tensor_new(io->dtype, io->rank, io->shape);
    memcpy(out[i].data, act + io->offset, rt_nbytes(&out[i]));
  }
  *status = p->status_offset >= 0 ? *(int *)(act + p->status_offset) : 0;
  free(act);
  free(blob);
}

/* Random inputs: floats in [lo, hi], i32 in [0, imax). */
static RtTensor *make_inputs(IrGraph *g, int64_t batch, float lo, float hi, int imax, int *n_out) {
  IrNode **ins;
  int n = ir_graph_inputs(g, &ins);
  RtTensor *t = calloc((size_t)n + 1, sizeof *t);
  for (int i = 0; i < n; i++) {
    int64_t shape[IR_MAX_RANK];
    for (int j = 0; j < ins[i]->shape.rank; j++) shape[j] = ir_dim_eval(ins[i]->shape.d[j], batch);
    t[i] = rt_tensor_new(ins[i]->dtype, ins[i]->shape.rank, shape);
    for (int64_t k = 0; k < rt_numel(&t[i]); k++) {
      if (ins[i]->dtype == IR_I32)
        ((int32_t *)t[i].data)[k] = (int32_t)(urand() * imax);
      else
        ((float *)t[i].data)[k] = (float)(lo + (hi - lo) * urand());
    }
  }
  *n_out = n;
  return t;
}

static void free_tensors(RtTensor *t, int n) {
  for (int i = 0; i < n; i++) rt_tensor_free(&t[i]);
  free(t);
}

/* Fusion and memory planning are passes: fuse 1 runs them on g (records its
 * fusion groups), 0 clears what they decided (one kernel per node, no
 * buffer reuse), FUSE_AS_IS leaves g's groups as they are (a test wrote them). */
#define FUSE_AS_IS (-1)
static void set_fusion(IrGraph *g, int fuse) {
  IrErr err = {{0}};
  if (fuse == FUSE_AS_IS) return;
  for (int i = 0; i < g->n_nodes; i++) g->nodes[i]->fuse = NULL;
  g->memplan = IR_MEMPLAN_NONE;
  if (fuse && pass_run_pipeline(g, "fuse,plan-memory", NULL, &err)) fail_msg("fuse: %s", err.msg);
}

typedef struct {
  float lo, hi;   /* float input range */
  int imax;       /* i32 input range */
  int nvrtc;      /* also compile the f32 plan with NVRTC */
} RunOpts;

/* Build a plan of g at (batch, precision, fuse), run it and the reference on
 * the same inputs, compare every output within tol.  Returns the worst error. */
static double check_graph_at(IrGraph *g, const Weights *w, const RtTensor *in, int64_t batch,
                             IrDType prec, int fuse, double tol, const char *label, int nv) {
  IrErr err = {{0}};
  RefExec *ex = ref_prepare(g, w, batch, &err);
  if (!ex) fail_msg("%s: ref_prepare: %s", label, err.msg);
  RtTensor *want = calloc((size_t)g->n_outputs + 1, sizeof *want);
  if (ref_run(ex, in, want, &err)) fail_msg("%s: ref_run: %s", label, err.msg);
  ref_free(ex);
  set_fusion(g, fuse);
  CgOptions o = {.precision = prec, .batch = batch, .model = label};
  CgPlan *p;
  if (cg_plan_build(g, &o, &p, &err)) fail_msg("%s: cg_plan_build: %s", label, err.msg);
  check_plan_shape(p);
  RtTensor *got = calloc((size_t)g->n_outputs + 1, sizeof *got);
  int status;
  run_plan_emu(p, w, in, got, &status);
  assert_int_equal(status, 0);
  double worst = 0;
  for (int i = 0; i < g->n_outputs; i++) {
    double e = rel_l2(&got[i], &want[i]);
    if (!(e <= tol)) {
      if (getenv("CG_TEST_DUMP")) fprintf(stderr, "%s\n", p->source);
      fail_msg("%s (%s, fuse %d) output %d: relative L2 %g > %g", label, ir_dtype_name(prec), fuse, i,
               e, tol);
    }
    if (e > worst) worst = e;
  }
  if (nv) {
    char name[160];
    snprintf(name, sizeof name, "%s_%s.cu", label, ir_dtype_name(prec));
    nvrtc_check(p, nv == 1 ? "sm_80" : nv == 3 ? "sm_89" : "sm_90", name);
  }
  if (getenv("CG_TEST_VERBOSE"))
    fprintf(stderr, "  %-28s %-4s fuse=%d  rel L2 %.3g  (%d kernels, %d steps, arena %lld)\n", label,
            ir_dtype_name(prec), fuse, worst, p->n_kernels, p->n_steps, (long long)p->arena_bytes);
  cg_plan_free(p);
  free_tensors(got, g->n_outputs);
  free_tensors(want, g->n_outputs);
  return worst;
}

/* Random weights with O(1) values, so products are not tiny. */
static void bind_weights(IrGraph *g, Weights *w) {
  IrErr err = {{0}};
  if (weights_random(g, 7, w, &err)) fail_msg("weights: %s", err.msg);
  IrNode **params;
  int np = ir_graph_params(g, &params);
  for (int i = 0; i < np; i++) {
    float *d = w->data[params[i]->id];
    for (int64_t k = 0; k < ir_shape_numel(&params[i]->shape, 1); k++) d[k] = (float)(2 * urand() - 1);
  }
}

/* f32 (with the NVRTC check), f16 and bf16; fused and unfused attention. */
static void check_graph(IrGraph *g, const char *label, RunOpts ro) {
  IrErr err = {{0}};
  if (ir_verify(g, &err)) fail_msg("%s: %s", label, err.msg);
  Weights w;
  bind_weights(g, &w);
  const int64_t batch = 2;
  int n_in;
  RtTensor *in = make_inputs(g, batch, ro.lo, ro.hi, ro.imax ? ro.imax : 4, &n_in);
  check_graph_at(g, &w, in, batch, IR_F32, 1, 1e-5, label, ro.nvrtc ? 1 : 0);
  check_graph_at(g, &w, in, batch, IR_F32, 0, 1e-5, label, 0);
  check_graph_at(g, &w, in, batch, IR_F16, 1, 1e-2, label, 0);
  check_graph_at(g, &w, in, batch, IR_BF16, 1, 1e-2, label, ro.nvrtc ? 2 : 0);
  free_tensors(in, n_in);
  in = make_inputs(g, 1, ro.lo, ro.hi, ro.imax ? ro.imax : 4, &n_in);
  check_graph_at(g, &w, in, 1, IR_F32, 1, 1e-5, label, 0);
  free_tensors(in, n_in);
  weights_free(&w);
}

static const RunOpts DEF = {-2.0f, 2.0f, 4, 1};

/* ---- cg_gemm_ref ------------------------------------------------------------- */

static void test_gemm_ref(void **state) {
  (void)state;
  /* batch 3 of [4 x 5] op(A) times op(B) [5 x 6], every transpose, bias + gelu, broadcast B */
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++)
      for (int bcast = 0; bcast < 2; bcast++)
        for (int ep = 0; ep < 3; ep++) {
          const int64_t M = 4, N = 6, K = 5, B = 3;
          float A[3 * 20], Bm[3 * 30], bias[6], act[4096];
          for (int i = 0; i < 60; i++) A[i] = (float)(2 * urand() - 1);
          for (int i = 0; i < 90; i++) Bm[i] = (float)(2 * urand() - 1);
          for (int i = 0; i < 6; i++) bias[i] = (float)(2 * urand() - 1);
          memset(act, 0, sizeof act);
          memcpy(act, A, sizeof A);
          char wblob[1024];
          memcpy(wblob, Bm, sizeof Bm);
          memcpy(wblob + 512, bias, sizeof bias);
          CgGemm g = {.dtype = IR_F32, .trans_a = ta, .trans_b = tb, .m = M, .n = N, .k = K, .batch = B,
                      .lda = ta ? M : K, .ldb = tb ? K : N, .ldd = N, .stride_a = M * K,
                      .stride_b = bcast ? 0 : K * N, .stride_d = M * N,
                      .a = {CG_SPACE_ACT, 0}, .b = {CG_SPACE_WEIGHTS, 0}, .d = {CG_SPACE_ACT, 1024},
                      .bias = {CG_SPACE_WEIGHTS, 512}, .epilogue = (CgEpilogue)ep, .alpha = 0.5f};
          cg_gemm_ref(&g, (char *)act, wblob);
          for (int64_t b = 0; b < B; b++)
            for (int64_t i = 0; i < M; i++)
              for (int64_t j = 0; j < N; j++) {
                double s = 0;
                for (int64_t k = 0; k < K; k++) {
                  double a = ta ? A[b * 20 + k * M + i] : A[b * 20 + i * K + k];
                  int64_t bb = bcast ? 0 : b * 30;
                  double v = tb ? Bm[bb + j * K + k] : Bm[bb + k * N + j];
                  s += a * v;
                }
                s *= 0.5;
                if (ep) s += bias[j];
                if (ep == 2) s = 0.5 * s * (1 + tanh(0.7978845608028654 * (s + 0.044715 * s * s * s)));
                assert_float_equal(act[256 + b * 24 + i * N + j], s, 1e-5);
              }
        }
  /* bf16 storage: one rounding of the f32 result */
  uint16_t a16[4], b16[4], d16[4];
  float av[4] = {1.5f, -2.0f, 0.25f, 3.0f}, bv[4] = {0.5f, 1.0f, -1.0f, 2.0f};
  for (int i = 0; i < 4; i++) a16[i] = ir_f32_to_bf16(av[i]), b16[i] = ir_f32_to_bf16(bv[i]);
  char act2[64], w2[64];
  memcpy(act2, a16, 8);
  memcpy(w2, b16, 8);
  CgGemm g = {.dtype = IR_BF16, .d_dtype = IR_BF16, .m = 2, .n = 2, .k = 2, .batch = 1, .lda = 2,
              .ldb = 2, .ldd = 2, .a = {CG_SPACE_ACT, 0}, .b = {CG_SPACE_WEIGHTS, 0},
              .d = {CG_SPACE_ACT, 16}, .alpha = 1};
  cg_gemm_ref(&g, act2, w2);
  memcpy(d16, act2 + 16, 8);
  assert_float_equal(ir_bf16_to_f32(d16[0]), 1.5 * 0.5 + -2.0 * -1.0, 1e-6);
  assert_float_equal(ir_bf16_to_f32(d16[3]), 0.25 * 1.0 + 3.0 * 2.0, 1e-6);

  /* f16 operands, f32 result and bias, batch 2 (D batches 4 floats apart):
   * the product is exact in f32 and never rounded to half */
  uint16_t a2[8], b2[4];
  float av2[8] = {1.5f, -2.0f, 0.25f, 3.0f, 0.5f, 0.125f, -1.0f, 2.0f}, bias2[2] = {1e-4f, -3.0f};
  for (int i = 0; i < 8; i++) a2[i] = ir_f32_to_f16(av2[i]);
  for (int i = 0; i < 4; i++) b2[i] = ir_f32_to_f16(bv[i]);
  char act3[128] = {0}, w3[64];
  memcpy(act3, a2, 16);
  memcpy(w3, b2, 8);
  memcpy(w3 + 32, bias2, 8);
  CgGemm m = {.dtype = IR_F16, .d_dtype = IR_F32, .m = 2, .n = 2, .k = 2, .batch = 2, .lda = 2,
              .ldb = 2, .ldd = 2, .stride_a = 4, .stride_b = 0, .stride_d = 4,
              .a = {CG_SPACE_ACT, 0}, .b = {CG_SPACE_WEIGHTS, 0}, .d = {CG_SPACE_ACT, 64},
              .bias = {CG_SPACE_WEIGHTS, 32}, .epilogue = CG_EPI_BIAS, .alpha = 1};
  cg_gemm_ref(&m, act3, w3);
  float d32[8];
  memcpy(d32, act3 + 64, 32);
  for (int b = 0; b < 2; b++)
    for (int i = 0; i < 2; i++)
      for (int j = 0; j < 2; j++) {
        float want = av2[4 * b + 2 * i] * bv[j] + av2[4 * b + 2 * i + 1] * bv[2 + j] + bias2[j];
        assert_true(d32[4 * b + 2 * i + j] == want); /* 1e-4 survives: no half rounding */
      }
}

/* ---- per-op graphs ------------------------------------------------------------ */

static void test_unary(void **state) {
  (void)state;
  static const IrOp ops[] = {IR_NEG,  IR_RELU, IR_SILU,  IR_GELU_TANH, IR_GELU,  IR_SIGMOID,
                             IR_TANH, IR_EXP,  IR_LOG,   IR_SIN,       IR_COS,   IR_SQRT,
                             IR_RECIP, IR_SCALE, IR_ADD_SCALAR, IR_POW_SCALAR, IR_CLAMP_MIN};
  IrGraph *g = ir_graph_new("forward");
  IrNode *x = ir_input(g, "x", IR_F32, shp(3, IR_BATCH, (IrDim)5, (IrDim)33), noloc());
  /* log, sqrt, recip and pow get a positive operand */
  IrNode *pos = ir_op1f(g, IR_ADD_SCALAR, ir_un(g, IR_SIGMOID, x), 0.25f);
  for (size_t i = 0; i < sizeof ops / sizeof *ops; i++) {
    int positive = ops[i] == IR_LOG || ops[i] == IR_SQRT || ops[i] == IR_POW_SCALAR || ops[i] == IR_RECIP;
    IrNode *y = ir_op1f(g, ops[i], positive ? pos : x, ops[i] == IR_POW_SCALAR ? 1.7f : -0.75f);
    ir_graph_add_output(g, y, ir_op_name(ops[i]));
  }
  /* pow_scalar's special exponents */
  float ex[] = {2.0f, 3.0f, 0.5f, -0.5f, -1.0f, -2.0f, 1.0f};
  for (size_t i = 0; i < sizeof ex / sizeof *ex; i++)
    ir_graph_add_output(g, ir_op1f(g, IR_POW_SCALAR, pos, ex[i]), arena_printf(&g->arena, "pow_%g", ex[i]));
  check_graph(g, "unary", DEF);
  ir_graph_free(g);
}

static void test_binary_broadcast(void **state) {
  (void)state;
  static const IrOp ops[] = {IR_ADD, IR_SUB, IR_MUL, IR_DIV, IR_MAX};
  IrShape sa[] = {shp(3, IR_BATCH, (IrDim)4, (IrDim)6), shp(4, IR_BATCH, (IrDim)4, (IrDim)1, (IrDim)6),
                  shp(3, IR_BATCH, (IrDim)1, (IrDim)7), shp(2, IR_BATCH, (IrDim)300)};
  IrShape sb[] = {shp(3, IR_BATCH, (IrDim)4, (IrDim)6), shp(2, (IrDim)3, (IrDim)6),
                  shp(0), shp(2, (IrDim)1, (IrDim)1)};
  IrGraph *g = ir_graph_new("forward");
  for (size_t s = 0; s < sizeof sa / sizeof *sa; s++) {
    char name[16];
    snprintf(name, sizeof name, "a%zu", s);
    IrNode *a = ir_input(g, arena_strdup(&g->arena, name), IR_F32, sa[s], noloc());
    snprintf(name, sizeof name, "b%zu", s);
    IrNode *b = ir_input(g, arena_strdup(&g->arena, name), IR_F32, sb[s], noloc());
    /* denominators away from 0 */
    IrNode *ap = ir_op1f(g, IR_ADD_SCALAR, ir_un(g, IR_SIGMOID, a), 0.5f);
    IrNode *bp = ir_op1f(g, IR_ADD_SCALAR, ir_un(g, IR_SIGMOID, b), 0.5f);
    for (size_t i = 0; i < sizeof ops / sizeof *ops; i++) {
      /* the broadcast operand on either side */
      ir_graph_add_output(g, ir_bin(g, ops[i], a, ops[i] == IR_DIV ? bp : b), arena_printf(&g->arena, "ab%zu_%zu", s, i));
      ir_graph_add_output(g, ir_bin(g, ops[i], b, ops[i] == IR_DIV ? ap : a), arena_printf(&g->arena, "ba%zu_%zu", s, i));
    }
  }
  check_graph(g, "binary", DEF);
  ir_graph_free(g);
}

static IrNode *node_attr(IrGraph *g, IrOp op, int n, IrNode **in, IrAttrs at) {
  IrErr err = {{0}};
  IrNode *r = ir_node_new(g, op, n, in, &at, noloc(), &err);
  if (!r) fail_msg("%s: %s", ir_op_name(op), err.msg);
  return r;
}

static void test_rows(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("forward");
  IrNode *x = ir_input(g, "x", IR_F32, shp(3, IR_BATCH, (IrDim)7, (IrDim)100), noloc());
  ir_graph_add_output(g, ir_op1f(g, IR_LAYERNORM, x, 1e-6f), "ln");
  ir_graph_add_output(g, ir_un(g, IR_SOFTMAX, ir_op1f(g, IR_SCALE, x, 3.0f)), "sm");
  ir_graph_add_output(g, node_attr(g, IR_REDUCE_SUM, 1, &x, (IrAttrs){.axis = 1}), "sum");
  ir_graph_add_output(g, node_attr(g, IR_REDUCE_MEAN, 1, &x, (IrAttrs){.axis = 2}), "mean");
  IrNode *e = ir_input(g, "e", IR_F32, shp(3, IR_BATCH, (IrDim)5, (IrDim)8), noloc());
  ir_graph_add_output(g, node_attr(g, IR_TOPK_SOFTMAX, 1, &e, (IrAttrs){.k = 2}), "top2");
  ir_graph_add_output(g, node_attr(g, IR_TOPK_SOFTMAX, 1, &e, (IrAttrs){.k = 8}), "top8");
  /* short rows (fewer than a warp) and a rank-1 layernorm */
  IrNode *s = ir_input(g, "s", IR_F32, shp(2, IR_BATCH, (IrDim)3), noloc());
  ir_graph_add_output(g, ir_op1f(g, IR_LAYERNORM, s, 1e-5f), "ln_short");
  ir_graph_add_output(g, ir_un(g, IR_SOFTMAX, s), "sm_short");
  check_graph(g, "rows", DEF);
  ir_graph_free(g);
}

static void test_topk_ties(void **state) {
  (void)state;
  /* ties: the lower index wins, as in the reference */
  IrGraph *g = ir_graph_new("forward");
  IrNode *x = ir_input(g, "x", IR_F32, shp(2, IR_BATCH, (IrDim)6), noloc());
  IrNode *r = ir_un(g, IR_RELU, x); /* many exact zeros: ties */
  ir_graph_add_output(g, node_attr(g, IR_TOPK_SOFTMAX, 1, &r, (IrAttrs){.k = 3}), "y");
  RunOpts ro = DEF;
  ro.lo = -3.0f, ro.hi = 0.5f, ro.nvrtc = 0;
  check_graph(g, "topk_ties", ro);
  ir_graph_free(g);
}

static void test_linear(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("forward");
  IrNode *x = ir_input(g, "x", IR_F32, shp(3, IR_BATCH, (IrDim)9, (IrDim)24), noloc());
  IrNode *w = ir_param(g, "w", IR_F32, shp(2, (IrDim)40, (IrDim)24), noloc());
  IrNode *b = ir_param(g, "b", IR_F32, shp(1, (IrDim)40), noloc());
  IrNode *w2 = ir_param(g, "w2", IR_F32, shp(2, (IrDim)16, (IrDim)40), noloc());
  IrNode *h = ir_un(g, IR_GELU_TANH, ir_linear(g, x, w, b)); /* fused epilogue */
  ir_graph_add_output(g, ir_linear(g, h, w2, NULL), "y");     /* no bias */
  IrNode *l = ir_linear(g, x, w, b);                          /* used twice: not fused */
  ir_graph_add_output(g, ir_un(g, IR_GELU_TANH, l), "gelu");
  ir_graph_add_output(g, l, "lin");
  check_graph(g, "linear", DEF);
  ir_graph_free(g);
}

static void test_matmul(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("forward");
  IrNode *a = ir_input(g, "a", IR_F32, shp(4, IR_BATCH, (IrDim)3, (IrDim)5, (IrDim)7), noloc());
  IrNode *b = ir_input(g, "b", IR_F32, shp(4, IR_BATCH, (IrDim)3, (IrDim)7, (IrDim)4), noloc());
  IrNode *bt = ir_input(g, "bt", IR_F32, shp(4, IR_BATCH, (IrDim)3, (IrDim)6, (IrDim)7), noloc());
  IrNode *c2 = ir_input(g, "c2", IR_F32, shp(2, (IrDim)7, (IrDim)4), noloc());
  IrNode *a1 = ir_input(g, "a1", IR_F32, shp(4, IR_BATCH, (IrDim)1, (IrDim)5, (IrDim)7), noloc());
  IrNode *b1 = ir_input(g, "b1", IR_F32, shp(4, (IrDim)1, (IrDim)3, (IrDim)7, (IrDim)4), noloc());
  ir_graph_add_output(g, ir_matmul(g, a, b, 0), "ab");
  ir_graph_add_output(g, ir_matmul(g, a, bt, 1), "abt");
  ir_graph_add_output(g, ir_matmul(g, a, c2, 0), "a_c2");      /* B broadcast: stride 0 */
  ir_graph_add_output(g, ir_matmul(g, a1, b1, 0), "a1_b1");    /* both broadcast: a loop */
  ir_graph_add_output(g, ir_matmul(g, c2, c2, 1), "plain");   /* rank 2, no batch */
  check_graph(g, "matmul", DEF);
  ir_graph_free(g);
}

static void test_conv_pool(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("forward");
  IrNode *x = ir_input(g, "x", IR_F32, shp(4, IR_BATCH, (IrDim)4, (IrDim)8, (IrDim)8), noloc());
  IrNode *w = ir_param(g, "w", IR_F32, shp(4, (IrDim)16, (IrDim)4, (IrDim)2, (IrDim)2), noloc());
  IrNode *b = ir_param(g, "b", IR_F32, shp(1, (IrDim)16), noloc());
  IrNode *in3[3] = {x, w, b};
  ir_graph_add_output(g, node_attr(g, IR_CONV2D, 3, in3, (IrAttrs){.stride = 2}), "patch");
  IrNode *dw = ir_param(g, "dw", IR_F32, shp(4, (IrDim)4, (IrDim)1, (IrDim)3, (IrDim)3), noloc());
  IrNode *db = ir_param(g, "db", IR_F32, shp(1, (IrDim)4), noloc());
  IrNode *in_dw[3] = {x, dw, db};
  ir_graph_add_output(g, node_attr(g, IR_CONV2D, 3, in_dw, (IrAttrs){.pad = 1, .groups = 4}), "depthwise");
  IrNode *gw = ir_param(g, "gw", IR_F32, shp(4, (IrDim)6, (IrDim)2, (IrDim)3, (IrDim)3), noloc());
  IrNode *in_g[2] = {x, gw};
  ir_graph_add_output(g, node_attr(g, IR_CONV2D, 2, in_g, (IrAttrs){.stride = 2, .pad = 1, .groups = 2}),
                      "grouped");
  IrNode *p = ir_input(g, "p", IR_F32, shp(4, IR_BATCH, (IrDim)3, (IrDim)7, (IrDim)9), noloc());
  ir_graph_add_output(g, node_attr(g, IR_AVGPOOL2D, 1, &p, (IrAttrs){.out_h = 3, .out_w = 4}), "pool");
  ir_graph_add_output(g, node_attr(g, IR_AVGPOOL2D, 1, &p, (IrAttrs){.out_h = 7, .out_w = 1}), "pool2");
  check_graph(g, "conv_pool", DEF);
  ir_graph_free(g);
}

static void test_embedding_cast(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("forward");
  IrNode *table = ir_param(g, "table", IR_F32, shp(2, (IrDim)10, (IrDim)12), noloc());
  IrNode *idx = ir_input(g, "idx", IR_I32, shp(2, IR_BATCH, (IrDim)3), noloc());
  IrNode *in[2] = {table, idx};
  ir_graph_add_output(g, node_attr(g, IR_EMBEDDING, 2, in, (IrAttrs){0}), "emb");
  IrNode *f = node_attr(g, IR_CAST, 1, &idx, (IrAttrs){.to = IR_F32});
  ir_graph_add_output(g, f, "as_f32");
  IrNode *back = node_attr(g, IR_CAST, 1, &f, (IrAttrs){.to = IR_I32});
  ir_graph_add_output(g, back, "as_i32");
  IrNode *x = ir_input(g, "x", IR_F32, shp(2, IR_BATCH, (IrDim)50), noloc());
  IrNode *h = node_attr(g, IR_CAST, 1, &x, (IrAttrs){.to = IR_F16});
  IrNode *h2 = ir_op1f(g, IR_SCALE, h, 3.0f);
  ir_graph_add_output(g, node_attr(g, IR_CAST, 1, &h2, (IrAttrs){.to = IR_F32}), "via_f16");
  IrNode *bf = node_attr(g, IR_CAST, 1, &x, (IrAttrs){.to = IR_BF16});
  ir_graph_add_output(g, node_attr(g, IR_CAST, 1, &bf, (IrAttrs){.to = IR_F32}), "via_bf16");
  RunOpts ro = DEF;
  ro.imax = 10;
  check_graph(g, "embedding_cast", ro);
  ir_graph_free(g);
}

/* Builds g (one output: the lookup of `table` [10, 4] at batch 3, plus
 * `add`), runs indices 2, 10, -5: rows clamped, the status word set; then
 * good indices: the status reset by the plan itself.  Returns the steps. */
static int check_out_of_range(IrGraph *g, IrNode *table, float add) {
  Weights w;
  bind_weights(g, &w);
  CgOptions o = {.precision = IR_F32, .batch = 3};
  CgPlan *p;
  IrErr err = {{0}};
  assert_int_equal(cg_plan_build(g, &o, &p, &err), 0);
  assert_true(p->status_offset >= 0);
  int64_t shape[1] = {3};
  RtTensor t = rt_tensor_new(IR_I32, 1, shape), out;
  int32_t bad[3] = {2, 10, -5};
  memcpy(t.data, bad, sizeof bad);
  int status;
  run_plan_emu(p, &w, &t, &out, &status);
  assert_int_equal(status, CG_STATUS_EMBEDDING_RANGE);
  const float *y = out.data, *tab = w.data[table->id];
  for (int j = 0; j < 4; j++) {
    assert_float_equal(y[j], tab[2 * 4 + j] + add, 0);
    assert_float_equal(y[4 + j], tab[9 * 4 + j] + add, 0); /* clamped to the last row */
    assert_float_equal(y[8 + j], tab[j] + add, 0);         /* clamped to row 0 */
  }
  int32_t good[3] = {0, 1, 9};
  memcpy(t.data, good, sizeof good);
  rt_tensor_free(&out);
  run_plan_emu(p, &w, &t, &out, &status);
  assert_int_equal(status, 0);
  int steps = p->n_steps;
  rt_tensor_free(&out);
  rt_tensor_free(&t);
  cg_plan_free(p);
  weights_free(&w);
  return steps;
}

static void test_embedding_out_of_range(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("forward");
  IrNode *table = ir_param(g, "table", IR_F32, shp(2, (IrDim)10, (IrDim)4), noloc());
  IrNode *idx = ir_input(g, "idx", IR_I32, shp(1, IR_BATCH), noloc());
  IrNode *in[2] = {table, idx};
  ir_graph_add_output(g, node_attr(g, IR_EMBEDDING, 2, in, (IrAttrs){0}), "emb");
  check_out_of_range(g, table, 0.0f);
  ir_graph_free(g);
}

static void test_layout(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("forward");
  IrNode *x = ir_input(g, "x", IR_F32, shp(4, IR_BATCH, (IrDim)4, (IrDim)6, (IrDim)8), noloc());
  ir_graph_add_output(g, ir_permute(g, x, (int[]){0, 2, 1, 3}), "p0213");
  ir_graph_add_output(g, ir_permute(g, x, (int[]){3, 1, 0, 2}), "p3102");
  IrNode *t = ir_input(g, "t", IR_F32, shp(3, IR_BATCH, (IrDim)40, (IrDim)36), noloc());
  ir_graph_add_output(g, ir_permute(g, t, (int[]){0, 2, 1}), "transpose"); /* tiled */
  IrNode *u = ir_reshape(g, x, 6, (IrDim[]){IR_BATCH, 2, 2, 3, 2, 8});
  ir_graph_add_output(g, ir_permute(g, u, (int[]){0, 5, 1, 3, 2, 4}), "unpatchify");
  ir_graph_add_output(g, ir_slice(g, x, 2, 1, 4), "slice2");
  ir_graph_add_output(g, ir_slice(g, x, 3, 5, 3), "slice3");
  IrNode *cat[3] = {x, ir_slice(g, x, 1, 0, 2), x};
  ir_graph_add_output(g, ir_concat(g, 3, cat, 1), "concat1");
  IrNode *cat3[2] = {x, ir_op1f(g, IR_SCALE, x, 2.0f)};
  ir_graph_add_output(g, ir_concat(g, 2, cat3, 3), "concat3");
  ir_graph_add_output(g, ir_reshape(g, x, 2, (IrDim[]){IR_BATCH, 192}), "reshape"); /* alias of an input */
  ir_graph_add_output(g, x, "identity");                                          /* an input itself */
  IrNode *sq = ir_op1f(g, IR_SCALE, x, 0.5f);
  ir_graph_add_output(g, sq, "twice_a");
  ir_graph_add_output(g, sq, "twice_b");
  ir_graph_add_output(g, ir_reshape(g, sq, 2, (IrDim[]){IR_BATCH, 192}), "twice_c");
  check_graph(g, "layout", DEF);
  ir_graph_free(g);

  /* the batch axis: slices at B, concat of batch halves (the CFG graph's shape) */
  g = ir_graph_new("forward");
  IrNode *y = ir_input(g, "y", IR_F32, shp(2, (IrDim)-2, (IrDim)5), noloc());
  IrNode *lo = ir_slice(g, y, 0, 0, IR_BATCH), *hi = ir_slice(g, y, 0, IR_BATCH, IR_BATCH);
  IrNode *halves[2] = {hi, ir_bin(g, IR_SUB, lo, hi)};
  ir_graph_add_output(g, ir_concat(g, 2, halves, 0), "swapped");
  IrNode *iy = ir_input(g, "iy", IR_I32, shp(1, (IrDim)-2), noloc());
  IrNode *ih[2] = {ir_slice(g, iy, 0, IR_BATCH, IR_BATCH), ir_slice(g, iy, 0, 0, IR_BATCH)};
  ir_graph_add_output(g, ir_concat(g, 2, ih, 0), "int_swap"); /* i32 copies stay exact */
  ir_graph_add_output(g, ir_permute(g, ir_reshape(g, iy, 2, (IrDim[]){IR_BATCH, 2}), (int[]){1, 0}),
                      "int_permute");
  RunOpts ro = DEF;
  ro.imax = 1 << 30;
  check_graph(g, "batch_axis", ro);
  ir_graph_free(g);
}

static void test_const(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("forward");
  IrNode *x = ir_input(g, "x", IR_F32, shp(2, IR_BATCH, (IrDim)8), noloc());
  float cv[8] = {1, 2, 3, 4, -1, -2, 0.5f, 0.25f};
  IrNode *c = ir_const(g, IR_F32, shp(2, (IrDim)1, (IrDim)8), cv, noloc());
  ir_graph_add_output(g, ir_bin(g, IR_MUL, x, c), "y");
  int32_t iv[3] = {3, 1, 2};
  IrNode *ic = ir_const(g, IR_I32, shp(1, (IrDim)3), iv, noloc());
  IrNode *tab = ir_param(g, "tab", IR_F32, shp(2, (IrDim)4, (IrDim)5), noloc());
  IrNode *in[2] = {tab, ic};
  ir_graph_add_output(g, node_attr(g, IR_EMBEDDING, 2, in, (IrAttrs){0}), "emb_const");
  ir_graph_add_output(g, c, "the_const"); /* a CONST output: copied out of the weights */
  check_graph(g, "const", DEF);
  ir_graph_free(g);
}

/* q, k, v split out of one projection, as models/dit.dit produces them. */
static IrGraph *attention_graph(int64_t tokens, int heads, int64_t hd, int with_scale) {
  IrGraph *g = ir_graph_new("forward");
  int64_t dim = heads * hd;
  IrNode *x = ir_input(g, "x", IR_F32, shp(3, IR_BATCH, (IrDim)tokens, (IrDim)16), noloc());
  IrNode *w = ir_param(g, "qkv.weight", IR_F32, shp(2, (IrDim)(3 * dim), (IrDim)16), noloc());
  IrNode *b = ir_param(g, "qkv.bias", IR_F32, shp(1, (IrDim)(3 * dim)), noloc());
  IrNode *qkv = ir_linear(g, x, w, b);
  IrNode *part[3];
  for (int i = 0; i < 3; i++) {
    IrNode *s = ir_slice(g, qkv, 2, i * dim, dim);
    IrNode *r = ir_reshape(g, s, 4, (IrDim[]){IR_BATCH, tokens, heads, hd});
    part[i] = ir_permute(g, r, (int[]){0, 2, 1, 3});
  }
  IrNode *sc = ir_matmul(g, part[0], part[1], 1);
  if (with_scale) sc = ir_op1f(g, IR_SCALE, sc, 1.0f / sqrtf((float)hd));
  IrNode *o = ir_matmul(g, ir_un(g, IR_SOFTMAX, sc), part[2], 0);
  IrNode *t = ir_permute(g, o, (int[]){0, 2, 1, 3});
  ir_graph_add_output(g, ir_reshape(g, t, 3, (IrDim[]){IR_BATCH, tokens, dim}), "y");
  return g;
}

static void test_attention(void **state) {
  (void)state;
  static const struct {
    int64_t tokens;
    int heads;
    int64_t hd;
    int scale;
  } cases[] = {{40, 2, 8, 1}, {64, 2, 64, 1}, {37, 3, 72, 1}, {33, 1, 128, 1}, {5, 2, 16, 0}, {70, 2, 40, 1}};
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    IrGraph *g = attention_graph(cases[i].tokens, cases[i].heads, cases[i].hd, cases[i].scale);
    char label[64];
    snprintf(label, sizeof label, "attention_hd%lld_n%lld", (long long)cases[i].hd,
             (long long)cases[i].tokens);
    /* the fused plan has no softmax kernel and no score-sized buffer */
    CgOptions o = {.precision = IR_F32, .batch = 2};
    CgPlan *p;
    IrErr err = {{0}};
    set_fusion(g, 1);
    assert_int_equal(cg_plan_build(g, &o, &p, &err), 0);
    int fused = 0;
    for (int k = 0; k < p->n_kernels; k++) {
      assert_null(strstr(p->kernels[k].name, "softmax"));
      fused += strstr(p->kernels[k].name, "attention") != NULL;
    }
    assert_int_equal(fused, 1);
    cg_plan_free(p);
    RunOpts ro = DEF;
    ro.lo = -0.5f, ro.hi = 0.5f; /* scores of a few units, as in trained models: softmax not one-hot */
    ro.nvrtc = cases[i].hd == 72 || cases[i].hd == 128;
    check_graph(g, label, ro);
    ir_graph_free(g);
  }
}

/* Buffers are reused: a chain of elementwise ops needs two buffers, not n. */
static void test_memory_reuse(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("forward");
  IrNode *x = ir_input(g, "x", IR_F32, shp(2, IR_BATCH, (IrDim)1000), noloc());
  IrNode *h = x;
  for (int i = 0; i < 20; i++) h = ir_op1f(g, IR_ADD_SCALAR, h, 1.0f);
  ir_graph_add_output(g, h, "y");
  CgOptions o = {.precision = IR_F32, .batch = 4};
  CgPlan *p;
  IrErr err = {{0}};
  assert_int_equal(cg_plan_build(g, &o, &p, &err), 0); /* without plan-memory: a place each */
  assert_int_equal(p->arena_bytes, 21 * 16128);         /* 20 values and the input */
  cg_plan_free(p);
  g->memplan = IR_MEMPLAN_REUSE; /* what plan-memory records */
  assert_int_equal(cg_plan_build(g, &o, &p, &err), 0);
  assert_int_equal(p->arena_unplanned_bytes, 21 * 16128);
  /* input + output + two ping-pong buffers at most */
  assert_true(p->arena_bytes <= 4 * 16128);
  assert_int_equal(p->n_steps, 20);
  cg_plan_free(p);
  RunOpts ro = DEF;
  ro.nvrtc = 0;
  check_graph(g, "chain", ro);
  ir_graph_free(g);
}

/* ---- elementwise fusion ---------------------------------------------------------- */

/* Kernel launches of g's f32 plan at batch 2; *named (may be NULL) gets how
 * many kernels have `name` in their name. */
static int kernel_steps_named(IrGraph *g, int fuse, const char *name, int *named) {
  set_fusion(g, fuse);
  CgOptions o = {.precision = IR_F32, .batch = 2};
  CgPlan *p;
  IrErr err = {{0}};
  if (cg_plan_build(g, &o, &p, &err)) fail_msg("cg_plan_build: %s", err.msg);
  int k = 0;
  for (int i = 0; i < p->n_steps; i++) k += p->steps[i].kind == CG_STEP_KERNEL;
  if (named) {
    *named = 0;
    for (int i = 0; i < p->n_kernels; i++) *named += strstr(p->kernels[i].name, name) != NULL;
  }
  cg_plan_free(p);
  return k;
}

/* The fused f32 plan's GEMM steps with `dtype` operands for arch (NULL: the
 * default tuning), its source naming `text`. */
static int gemm_steps_of(IrGraph *g, IrDType dtype, const char *arch, const char *text) {
  set_fusion(g, 1);
  CgOptions o = {.precision = IR_F32, .batch = 2, .arch = arch};
  CgPlan *p;
  IrErr err = {{0}};
  if (cg_plan_build(g, &o, &p, &err)) fail_msg("cg_plan_build: %s", err.msg);
  int k = 0;
  for (int i = 0; i < p->n_steps; i++) k += p->steps[i].kind == CG_STEP_GEMM && p->steps[i].gemm.dtype == dtype;
  assert_non_null(strstr(p->source, text));
  cg_plan_free(p);
  return k;
}

static int kernel_steps(IrGraph *g, int fuse) { return kernel_steps_named(g, fuse, "", NULL); }

/* Fused and unfused plans against the reference: f32 within 1e-6, bf16 and
 * f16 within 1e-2. */
static void check_fused_at(IrGraph *g, const char *label, int64_t batch) {
  IrErr err = {{0}};
  if (ir_verify(g, &err)) fail_msg("%s: %s", label, err.msg);
  Weights w;
  bind_weights(g, &w);
  int n_in;
  RtTensor *in = make_inputs(g, batch, -2.0f, 2.0f, 4, &n_in);
  for (int fuse = 0; fuse < 2; fuse++) {
    check_graph_at(g, &w, in, batch, IR_F32, fuse, 1e-6, label, 0);
    check_graph_at(g, &w, in, batch, IR_BF16, fuse, 1e-2, label, 0);
    check_graph_at(g, &w, in, batch, IR_F16, fuse, 1e-2, label, 0);
  }
  free_tensors(in, n_in);
  weights_free(&w);
}

static void check_fused(IrGraph *g, const char *label) { check_fused_at(g, label, 2); }

/* adaLN-style chunk of c [B, 3D] as [B, 1, D] */
static IrNode *chunk(IrGraph *g, IrNode *c, int i, int64_t d) {
  return ir_reshape(g, ir_slice(g, c, 1, i * d, d), 3, (IrDim[]){IR_BATCH, 1, (IrDim)d});
}

/* The same through a gather fused into an elementwise kernel (the fuse
 * pass's map group): clamped rows, the status word set, then reset. */
static void test_embedding_gather_fused(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("forward");
  IrNode *table = ir_param(g, "table", IR_F32, shp(2, (IrDim)10, (IrDim)4), noloc());
  IrNode *idx = ir_input(g, "idx", IR_I32, shp(1, IR_BATCH), noloc());
  IrNode *in[2] = {table, idx};
  IrNode *emb = node_attr(g, IR_EMBEDDING, 2, in, (IrAttrs){0});
  ir_graph_add_output(g, ir_op1f(g, IR_ADD_SCALAR, emb, 0.5f), "emb");
  set_fusion(g, 1);
  assert_int_equal(check_out_of_range(g, table, 0.5f), 2); /* the status reset, the fused gather */
  ir_graph_free(g);

  /* in range, fused against unfused against the reference: c = silu(x + table[y]) */
  g = ir_graph_new("forward");
  table = ir_param(g, "table", IR_F32, shp(2, (IrDim)10, (IrDim)6), noloc());
  IrNode *yy[2] = {table, ir_input(g, "y", IR_I32, shp(1, IR_BATCH), noloc())};
  IrNode *x = ir_input(g, "x", IR_F32, shp(2, IR_BATCH, (IrDim)6), noloc());
  IrNode *e2 = node_attr(g, IR_EMBEDDING, 2, yy, (IrAttrs){0});
  ir_graph_add_output(g, ir_un(g, IR_SILU, ir_bin(g, IR_ADD, x, e2)), "c");
  assert_int_equal(kernel_steps(g, 0), 4); /* status, embedding, add, silu */
  assert_int_equal(kernel_steps(g, 1), 2); /* status, one fused kernel */
  check_fused_at(g, "embedding_gather", 3);
  ir_graph_free(g);
}

/* The fused layernorm: residual prologue stored as a side value (read again
 * later), modulate epilogue, rows of 40 and of 1100 (not multiples of 32,
 * several values per lane), at batch 1 and 3; rows longer than the
 * registers hold (5000 > CG_NORM_MAX_LEN) fall back to a layernorm kernel
 * and map kernels around it. */
static void test_fuse_norm(void **state) {
  (void)state;
  const int64_t lens[] = {40, 1100, 5000};
  for (int li = 0; li < 3; li++) {
    int64_t D = lens[li];
    IrGraph *g = ir_graph_new("forward");
    IrNode *x = ir_input(g, "x", IR_F32, shp(3, IR_BATCH, (IrDim)3, (IrDim)D), noloc());
    IrNode *y = ir_input(g, "y", IR_F32, shp(3, IR_BATCH, (IrDim)3, (IrDim)D), noloc());
    IrNode *c = ir_input(g, "c", IR_F32, shp(2, IR_BATCH, (IrDim)(3 * D)), noloc());
    IrNode *r = ir_bin(g, IR_ADD, x, ir_bin(g, IR_MUL, chunk(g, c, 2, D), y));
    IrNode *ln = ir_op1f(g, IR_LAYERNORM, r, 1e-6f);
    IrNode *m = ir_bin(g, IR_ADD, ir_bin(g, IR_MUL, ln, ir_op1f(g, IR_ADD_SCALAR, chunk(g, c, 1, D), 1.0f)),
                       chunk(g, c, 0, D));
    ir_graph_add_output(g, m, "modulated");
    ir_graph_add_output(g, ir_op1f(g, IR_SCALE, r, 0.5f), "residual"); /* r is read after the kernel */
    /* the fused layernorm and the scale; past the limit: the residual tree, the
     * layernorm, the modulate tree and the scale */
    assert_int_equal(kernel_steps(g, 1), D <= CG_NORM_MAX_LEN ? 2 : 4);
    char label[64];
    snprintf(label, sizeof label, "fuse_norm_%lld", (long long)D);
    check_fused_at(g, label, 1);
    check_fused_at(g, label, 3);
    ir_graph_free(g);
  }
}

/* Concat groups: [cos(m), sin(m)] with m shared by both parts, and the
 * guidance tail: a doubled half batch (a part read twice, at two shifts)
 * concatenated with a slice of the same input along another axis; at batch
 * 1 (size-1 parts) and 3. */
static void test_fuse_concat(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("forward");
  IrNode *t = ir_input(g, "t", IR_F32, shp(2, IR_BATCH, (IrDim)1), noloc());
  float f[16];
  for (int i = 0; i < 16; i++) f[i] = 1.0f / (float)(i + 1);
  IrNode *fr = ir_const(g, IR_F32, shp(2, (IrDim)1, (IrDim)16), f, noloc());
  IrNode *m = ir_bin(g, IR_MUL, t, fr);
  ir_graph_add_output(g, ir_concat(g, 2, (IrNode *[]){ir_un(g, IR_COS, m), ir_un(g, IR_SIN, m)}, 1), "emb");
  assert_int_equal(kernel_steps(g, 0), 4);
  assert_int_equal(kernel_steps(g, 1), 1);
  check_fused_at(g, "fuse_concat_emb", 1);
  check_fused_at(g, "fuse_concat_emb", 3);
  ir_graph_free(g);

  g = ir_graph_new("forward");
  IrNode *o = ir_input(g, "o", IR_F32, shp(4, (IrDim)-2, (IrDim)6, (IrDim)3, (IrDim)5), noloc());
  IrNode *s = ir_input(g, "s", IR_F32, shp(0), noloc());
  IrNode *eps = ir_slice(g, o, 1, 0, 2);
  IrNode *cond = ir_slice(g, eps, 0, 0, IR_BATCH), *unc = ir_slice(g, eps, 0, IR_BATCH, IR_BATCH);
  IrNode *h = ir_bin(g, IR_ADD, unc, ir_bin(g, IR_MUL, s, ir_bin(g, IR_SUB, cond, unc)));
  IrNode *both = ir_concat(g, 2, (IrNode *[]){h, h}, 0);
  IrNode *out = ir_concat(g, 2, (IrNode *[]){both, ir_slice(g, o, 1, 2, 4)}, 1);
  ir_graph_add_output(g, out, "out");
  assert_int_equal(kernel_steps(g, 1), 1);
  check_fused_at(g, "fuse_concat_cfg", 1);
  check_fused_at(g, "fuse_concat_cfg", 3);
  ir_graph_free(g);
}

static void test_fuse_elementwise(void **state) {
  (void)state;
  const int64_t D = 16;
  /* modulate x * (1 + scale) + shift with broadcast slices of the adaLN vector */
  IrGraph *g = ir_graph_new("forward");
  IrNode *x = ir_input(g, "x", IR_F32, shp(3, IR_BATCH, (IrDim)5, (IrDim)D), noloc());
  IrNode *c = ir_input(g, "c", IR_F32, shp(2, IR_BATCH, (IrDim)(3 * D)), noloc());
  IrNode *sc = ir_op1f(g, IR_ADD_SCALAR, chunk(g, c, 1, D), 1.0f);
  IrNode *m = ir_bin(g, IR_ADD, ir_bin(g, IR_MUL, x, sc), chunk(g, c, 0, D));
  ir_graph_add_output(g, m, "modulated");
  int unfused = kernel_steps(g, 0), fused = kernel_steps(g, 1);
  assert_int_equal(unfused, 5); /* 2 slices, add_scalar, mul, add */
  assert_int_equal(fused, 1);
  check_fused(g, "fuse_modulate");
  ir_graph_free(g);

  /* residual gate r + gate * silu(h) */
  g = ir_graph_new("forward");
  IrNode *r = ir_input(g, "r", IR_F32, shp(3, IR_BATCH, (IrDim)5, (IrDim)D), noloc());
  IrNode *h = ir_input(g, "h", IR_F32, shp(3, IR_BATCH, (IrDim)5, (IrDim)D), noloc());
  c = ir_input(g, "c", IR_F32, shp(2, IR_BATCH, (IrDim)(3 * D)), noloc());
  IrNode *y = ir_bin(g, IR_ADD, r, ir_bin(g, IR_MUL, chunk(g, c, 2, D), ir_un(g, IR_SILU, h)));
  ir_graph_add_output(g, y, "residual");
  unfused = kernel_steps(g, 0), fused = kernel_steps(g, 1);
  assert_int_equal(unfused, 4);
  assert_int_equal(fused, 1);
  check_fused(g, "fuse_gate");
  ir_graph_free(g);

  /* t = 2x has two readers: it keeps its kernel and buffer; exp/neg fuse */
  g = ir_graph_new("forward");
  x = ir_input(g, "x", IR_F32, shp(3, IR_BATCH, (IrDim)5, (IrDim)D), noloc());
  IrNode *b = ir_input(g, "b", IR_F32, shp(3, IR_BATCH, (IrDim)5, (IrDim)D), noloc());
  IrNode *t = ir_op1f(g, IR_SCALE, x, 2.0f);
  ir_graph_add_output(g, ir_un(g, IR_NEG, ir_un(g, IR_EXP, ir_op1f(g, IR_SCALE, t, 0.25f))), "a");
  ir_graph_add_output(g, ir_bin(g, IR_SUB, t, b), "b");
  unfused = kernel_steps(g, 0), fused = kernel_steps(g, 1);
  assert_int_equal(unfused, 5);
  assert_int_equal(fused, 3);
  check_fused(g, "fuse_shared");
  ir_graph_free(g);

  /* a graph output in the middle of a chain is stored, and the chain still fuses around it */
  g = ir_graph_new("forward");
  x = ir_input(g, "x", IR_F32, shp(2, IR_BATCH, (IrDim)40), noloc());
  IrNode *u = ir_un(g, IR_SIGMOID, ir_op1f(g, IR_SCALE, x, 3.0f));
  ir_graph_add_output(g, u, "mid");
  ir_graph_add_output(g, ir_op1f(g, IR_ADD_SCALAR, ir_un(g, IR_TANH, u), 0.5f), "end");
  assert_int_equal(kernel_steps(g, 0), 4);
  assert_int_equal(kernel_steps(g, 1), 2);
  check_fused(g, "fuse_output_mid");
  ir_graph_free(g);
}

/* The layernorm's input also read by its epilogue (out = ln(x) * m + x): x
 * is no prologue (the anchor reads it), so it is stored by a kernel of its
 * own and read by the fused layernorm twice. */
static void test_fuse_norm_input_in_epilogue(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("forward");
  IrShape s = shp(3, IR_BATCH, (IrDim)4, (IrDim)64);
  IrNode *a = ir_input(g, "a", IR_F32, s, noloc()), *b = ir_input(g, "b", IR_F32, s, noloc());
  IrNode *m = ir_input(g, "m", IR_F32, s, noloc());
  IrNode *x = ir_bin(g, IR_ADD, a, b);
  ir_graph_add_output(g, ir_bin(g, IR_ADD, ir_bin(g, IR_MUL, ir_op1f(g, IR_LAYERNORM, x, 1e-6f), m), x), "out");
  assert_int_equal(kernel_steps(g, 1), 2);
  check_fused_at(g, "fuse_norm_input_in_epilogue", 2);
  ir_graph_free(g);
}

/* ---- lowering by the group record ------------------------------------------------ */

/* g's plan as its groups are, against the reference. */
static void check_as_is(IrGraph *g, const char *label) {
  Weights w;
  bind_weights(g, &w);
  int n_in;
  RtTensor *in = make_inputs(g, 2, -1.0f, 1.0f, 4, &n_in);
  check_graph_at(g, &w, in, 2, IR_F32, FUSE_AS_IS, 1e-5, label, 0);
  free_tensors(in, n_in);
  weights_free(&w);
}

static IrGroup *find_group(IrGraph *g, IrGroupKind kind) {
  for (int i = 0; i < g->n_nodes; i++)
    if (g->nodes[i]->fuse && g->nodes[i]->fuse->kind == kind) return g->nodes[i]->fuse;
  fail_msg("no %s group", ir_group_kind_name(kind));
  return NULL;
}

/* The code generator lowers a group by its record alone: without records a
 * graph is lowered a kernel per node (nothing is matched again), and a record
 * that does not describe the graph (a role missing, played by the wrong
 * node, of another kind) is lowered the same way and still computes the
 * reference's values. */
static void test_group_records(void **state) {
  (void)state;
  IrGraph *g = attention_graph(40, 2, 8, 1);
  int att;
  int unfused = kernel_steps_named(g, 0, "attention", &att);
  assert_int_equal(att, 0);
  int fused = kernel_steps_named(g, 1, "attention", &att);
  assert_int_equal(att, 1);
  assert_true(fused < unfused);
  IrGroup *grp = find_group(g, IR_GROUP_ATTENTION);
  IrNode *sm = grp->role[IR_ROLE_ATTENTION_SOFTMAX];
  grp->role[IR_ROLE_ATTENTION_SOFTMAX] = NULL;
  assert_int_equal(kernel_steps_named(g, FUSE_AS_IS, "attention", &att), unfused);
  assert_int_equal(att, 0);
  grp->role[IR_ROLE_ATTENTION_SOFTMAX] = grp->role[IR_ROLE_ATTENTION_SCALE];
  assert_int_equal(kernel_steps_named(g, FUSE_AS_IS, "attention", &att), unfused);
  assert_int_equal(att, 0);
  check_as_is(g, "record_wrong_role");
  grp->role[IR_ROLE_ATTENTION_SOFTMAX] = sm;
  grp->kind = IR_GROUP_MAP;
  assert_int_equal(kernel_steps_named(g, FUSE_AS_IS, "attention", &att), unfused);
  assert_int_equal(att, 0);
  check_as_is(g, "record_wrong_kind");
  grp->kind = IR_GROUP_ATTENTION; /* the record restored: fused again */
  assert_int_equal(kernel_steps_named(g, FUSE_AS_IS, "attention", &att), fused);
  assert_int_equal(att, 1);
  check_as_is(g, "record_restored");
  ir_graph_free(g);

  /* gemm-epilogue records written by hand: gelu_tanh is the GEMM's epilogue
   * (no kernel), silu is not (a kernel after the GEMM) */
  for (int gelu = 0; gelu < 2; gelu++) {
    g = ir_graph_new("forward");
    IrNode *x = ir_input(g, "x", IR_F32, shp(2, IR_BATCH, (IrDim)8), noloc());
    IrNode *w = ir_param(g, "w", IR_F32, shp(2, (IrDim)6, (IrDim)8), noloc());
    IrNode *b = ir_param(g, "b", IR_F32, shp(1, (IrDim)6), noloc());
    IrNode *l = ir_linear(g, x, w, b), *e = ir_un(g, gelu ? IR_GELU_TANH : IR_SILU, l);
    ir_graph_add_output(g, e, "y");
    grp = ir_group_new(g, IR_GROUP_GEMM_EPILOGUE);
    grp->role[IR_ROLE_GEMM_EPILOGUE_LINEAR] = l;
    grp->role[IR_ROLE_GEMM_EPILOGUE_EPILOGUE] = e;
    l->fuse = e->fuse = grp;
    assert_int_equal(kernel_steps(g, FUSE_AS_IS), gelu ? 0 : 1);
    check_as_is(g, gelu ? "record_gemm_gelu" : "record_gemm_silu");
    ir_graph_free(g);
  }
}

static void test_errors(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("forward");
  IrNode *x = ir_input(g, "x", IR_F32, shp(1, IR_BATCH), noloc());
  ir_graph_add_output(g, ir_un(g, IR_NEG, x), "y");
  CgPlan *p = (CgPlan *)1;
  IrErr err = {{0}};
  CgOptions o = {.precision = IR_I32, .batch = 1};
  assert_int_equal(cg_plan_build(g, &o, &p, &err), -1);
  assert_null(p);
  assert_non_null(strstr(err.msg, "precision"));
  o = (CgOptions){.precision = IR_F32, .batch = 0};
  assert_int_equal(cg_plan_build(g, &o, &p, &err), -1);
  assert_non_null(strstr(err.msg, "batch"));
  cg_plan_free(NULL);
  ir_graph_free(g);
}

/* Expert e of a dense mixture-of-experts MLP, gated: gates[..., e] * fc2(GELU(fc1(x))), D -> H -> D. */
static IrNode *gated_expert(IrGraph *g, IrNode *x, IrNode *gates, int e, int D, int H, const char *w1, const char *b1,
                            const char *w2, const char *b2) {
  IrNode *h = ir_linear(g, x, ir_param(g, w1, IR_F32, shp(2, (IrDim)H, (IrDim)D), noloc()),
                        ir_param(g, b1, IR_F32, shp(1, (IrDim)H), noloc()));
  IrNode *y = ir_linear(g, ir_un(g, IR_GELU, h), ir_param(g, w2, IR_F32, shp(2, (IrDim)D, (IrDim)H), noloc()),
                        ir_param(g, b2, IR_F32, shp(1, (IrDim)D), noloc()));
  return ir_bin(g, IR_MUL, y, ir_slice(g, gates, 2, e, 1));
}

/* A dense MoE MLP (the model language's form) that route-experts routes:
 * 160 tokens a sample, so batch 2 has 320 tokens (two chunks of the place
 * kernel's scan) and about 160 rows an expert (several 64-row tiles, the last
 * partial); hidden 80 makes partial column tiles and k-steps. */
static void test_moe_routed(void **state) {
  (void)state;
  const int E = 4, D = 16, H = 80;
  IrGraph *g = ir_graph_new("f");
  IrNode *x = ir_input(g, "x", IR_F32, shp(3, IR_BATCH, (IrDim)160, (IrDim)D), noloc());
  IrNode *wr = ir_param(g, "router.w", IR_F32, shp(2, (IrDim)E, (IrDim)D), noloc());
  IrNode *gates = node_attr(g, IR_TOPK_SOFTMAX, 1, (IrNode *[]){ir_linear(g, x, wr, NULL)}, (IrAttrs){.k = 2});
  IrNode *sum = NULL;
  for (int e = 0; e < E; e++) {
    char n1[32], b1[32], n2[32], b2[32];
    snprintf(n1, sizeof n1, "e%d.fc1.w", e);
    snprintf(b1, sizeof b1, "e%d.fc1.b", e);
    snprintf(n2, sizeof n2, "e%d.fc2.w", e);
    snprintf(b2, sizeof b2, "e%d.fc2.b", e);
    IrNode *p = gated_expert(g, x, gates, e, D, H, n1, b1, n2, b2);
    sum = sum ? ir_bin(g, IR_ADD, sum, p) : p;
  }
  ir_graph_add_output(g, sum, "y");
  PassOptions po = {.verify = 1};
  IrErr err = {{0}};
  if (pass_run_pipeline(g, "route-experts", &po, &err)) fail_msg("%s", err.msg);
  int routed = 0;
  for (int i = 0; i < g->n_nodes; i++) routed += g->nodes[i]->op == IR_MOE_LINEAR;
  assert_int_equal(routed, 2);
  check_graph(g, "moe routed", DEF);
  ir_graph_free(g);
}

/* ---- end to end against ../shared/reference --------------------------------------------- */


typedef struct {
  const char *name;
  const char *sets[16][2];
} RefCase;

/* The pass pipeline check_reference runs before lowering. */
static const char *ref_pipeline = "default";

/* Runs entry of a reference case through a plan on the emulator; compares with `want`. */
static void check_reference(const RefCase *rc, const char *entry, const char *prefix, IrDType prec,
                            double tol, int nv) {
  char path[1024];
  snprintf(path, sizeof path, "%s/reference/%s.case.safetensors", tu_shared_dir(), rc->name);
  IrErr err = {{0}};
  StFile *cf = st_open(path, &err);
  if (!cf) {
    TU_SKIP(err.msg);
  }
  FeSetting sets[16];
  int ns = 0;
  while (ns < 16 && rc->sets[ns][0]) {
    sets[ns] = (FeSetting){rc->sets[ns][0], rc->sets[ns][1]};
    ns++;
  }
  FeModel m;
  if (fe_build(DITC_SOURCE_DIR "/models/dit.dit", sets, ns, entry, stderr, &m))
    fail_msg("%s: the model does not build", rc->name);
  PassOptions po = {.verify = 1};
  if (pass_run_pipeline(m.graph, ref_pipeline, &po, &err)) fail_msg("%s", err.msg);
  Weights w;
  snprintf(path, sizeof path, "%s/reference/%s.weights.safetensors", tu_shared_dir(), rc->name);
  if (weights_load(m.graph, path, &w, &err)) fail_msg("%s", err.msg);
  IrNode **ins;
  int n_in = ir_graph_inputs(m.graph, &ins);
  RtTensor *in = calloc((size_t)n_in + 1, sizeof *in);
  float cfg_scale = 4.0f;
  for (int i = 0; i < n_in; i++) {
    if (!strcmp(ins[i]->name, "cfg_scale")) {
      in[i] = rt_tensor_new(IR_F32, 0, NULL);
      *(float *)in[i].data = cfg_scale;
      continue;
    }
    char full[128];
    snprintf(full, sizeof full, "%s%s", prefix, ins[i]->name);
    const StTensor *t = st_find(cf, full);
    assert_non_null(t);
    if (st_load(t, ins[i]->dtype, &in[i], &err)) fail_msg("%s", err.msg);
  }
  int64_t batch = ref_batch_of(m.graph, in, &err);
  assert_true(batch >= 1);
  CgOptions o = {.precision = prec, .batch = batch, .model = rc->name};
  CgPlan *p;
  if (cg_plan_build(m.graph, &o, &p, &err)) fail_msg("%s: %s", rc->name, err.msg);
  check_plan_shape(p);
  RtTensor out;
  int status;
  run_plan_emu(p, &w, in, &out, &status);
  assert_int_equal(status, 0);
  char want_name[64];
  snprintf(want_name, sizeof want_name, "%sout", prefix);
  RtTensor want;
  if (st_load(st_find(cf, want_name), IR_F32, &want, &err)) fail_msg("%s", err.msg);
  double e = rel_l2(&out, &want);
  if (getenv("CG_TEST_VERBOSE"))
    fprintf(stderr, "  %s %s %s: rel L2 %.3g (%d kernels, %d steps, arena %lld B, weights %lld B)\n",
            rc->name, entry, ir_dtype_name(prec), e, p->n_kernels, p->n_steps,
            (long long)p->arena_bytes, (long long)p->weights_bytes);
  if (!(e < tol))
    fail_msg("%s %s %s, passes %s: relative L2 %g >= %g", rc->name, entry, ir_dtype_name(prec), ref_pipeline, e, tol);
  if (nv) {
    char name[128];
    snprintf(name, sizeof name, "%s_%s.cu", rc->name, entry);
    nvrtc_check(p, "sm_80", name);
    nvrtc_check(p, "sm_90", name);
  }
  rt_tensor_free(&want);
  rt_tensor_free(&out);
  cg_plan_free(p);
  free_tensors(in, n_in);
  weights_free(&w);
  fe_model_free(&m);
  st_close(cf);
}

static const RefCase DIT_TINY = {"dit-tiny-p2",
                                 {{"input_size", "16"}, {"in_channels", "4"}, {"patch_size", "2"},
                                  {"hidden_size", "64"}, {"depth", "2"}, {"num_heads", "4"},
                                  {"mlp_ratio", "4.0"}, {"num_classes", "10"}, {"learn_sigma", "true"}}};

static void test_e2e_dit_tiny(void **state) {
  (void)state;
  check_reference(&DIT_TINY, "forward", "", IR_F32, 1e-5, 1);
  check_reference(&DIT_TINY, "forward_with_cfg", "cfg_", IR_F32, 1e-5, 1);
  /* Half precision against the f32 reference: only matrix-product operands
   * are rounded (codegen/lower.c's policy), every other value stays f32, and the
   * issue's bound holds for both formats on every case (measured: bf16
   * 3.0e-3, with guidance 4.9e-3; f16 3.7e-4, 5.9e-4). */
  check_reference(&DIT_TINY, "forward", "", IR_BF16, 1e-2, 0);
  check_reference(&DIT_TINY, "forward_with_cfg", "cfg_", IR_BF16, 1e-2, 0);
  check_reference(&DIT_TINY, "forward", "", IR_F16, 1e-2, 1);
  check_reference(&DIT_TINY, "forward_with_cfg", "cfg_", IR_F16, 1e-2, 0);
}

static const RefCase FGQ = {"paper-att-fgq",
                            {{"input_size", "16"}, {"in_channels", "4"}, {"patch_size", "2"},
                             {"hidden_size", "96"}, {"depth", "2"}, {"num_heads", "6"},
                             {"mlp_ratio", "4.0"}, {"num_classes", "10"}, {"learn_sigma", "true"},
                             {"att", "fgq"}, {"mediator_dim", "4"}}};

/* Every pass on its own keeps the result (f32 within 1e-5 of the shared
 * reference, on the emulated device), as does no pass at all: one kernel per
 * node, no buffer reuse.  The default pipeline is checked above. */
static void test_e2e_each_pass(void **state) {
  (void)state;
  int n;
  const PassInfo *t = pass_table(&n);
  ref_pipeline = "none";
  check_reference(&DIT_TINY, "forward_with_cfg", "cfg_", IR_F32, 1e-5, 0);
  for (int i = 0; i < n; i++) {
    ref_pipeline = t[i].name;
    check_reference(&DIT_TINY, "forward_with_cfg", "cfg_", IR_F32, 1e-5, 0);
  }
  ref_pipeline = "fuse,plan-memory";
  check_reference(&FGQ, "forward", "", IR_F32, 1e-5, 0);
  ref_pipeline = "default";
}

static void test_e2e_paper_variants(void **state) {
  (void)state;
  static const RefCase moe = {"paper-moe-8e2a",
                              {{"input_size", "16"}, {"in_channels", "4"}, {"patch_size", "2"},
                               {"hidden_size", "96"}, {"depth", "2"}, {"num_heads", "6"},
                               {"mlp_ratio", "4.0"}, {"num_classes", "10"}, {"learn_sigma", "true"},
                               {"moe_experts", "8"}, {"moe_top_k", "2"}, {"moe_frequency", "1"}}};
  check_reference(&FGQ, "forward", "", IR_F32, 1e-5, 1);
  check_reference(&moe, "forward", "", IR_F32, 1e-5, 1);
  /* the focusing step (r^3, sums of r^6) overflows f16 and loses everything
   * in bf16 unless it stays f32, as the policy keeps it */
  check_reference(&FGQ, "forward", "", IR_F16, 1e-2, 0);
  check_reference(&FGQ, "forward", "", IR_BF16, 1e-2, 1);
  check_reference(&moe, "forward", "", IR_F16, 1e-2, 0);
  check_reference(&moe, "forward", "", IR_BF16, 1e-2, 1);
}

/* Does n depend on a graph input? */
static int reads_input(const IrNode *n, unsigned char *memo) {
  if (memo[n->index]) return memo[n->index] == 1;
  int r = n->op == IR_INPUT;
  for (int i = 0; i < n->n_in && !r; i++) r = reads_input(n->in[i], memo);
  memo[n->index] = r ? 1 : 2;
  return r;
}

/* After the default pipeline every block's adaLN weights are one
 * concat(W_0, ..., W_depth) of parameters: the plan computes it into the
 * blob when the weights are filled, never per run, and keeps the blocks'
 * own copies out of the blob. */
static void test_weight_only(void **state) {
  (void)state;
  FeSetting sets[] = {{"depth", "2"}};
  FeModel m;
  if (fe_build("DiT-S/2", sets, 1, "forward", stderr, &m)) fail_msg("DiT-S/2 does not build");
  IrErr err = {{0}};
  PassOptions po = {.verify = 1};
  if (pass_run_pipeline(m.graph, "default", &po, &err)) fail_msg("%s", err.msg);
  IrGraph *g = m.graph;
  int stacked = 0;
  for (int i = 0; i < g->n_nodes; i++) {
    IrNode *n = g->nodes[i];
    int params = n->op == IR_CONCAT;
    for (int j = 0; j < n->n_in && params; j++) params = n->in[j]->op == IR_PARAM;
    stacked += params;
  }
  assert_int_equal(stacked, 2); /* weights and biases */

  CgOptions o = {.precision = IR_F32, .batch = 2};
  CgPlan *p;
  if (cg_plan_build(g, &o, &p, &err)) fail_msg("%s", err.msg);
  check_plan_shape(p);
  unsigned char *memo = calloc((size_t)g->n_nodes + 1, 1);
  int concat_steps = 0;
  for (int i = 0; i < p->n_steps; i++) {
    const CgStep *st = &p->steps[i];
    if (st->node < 0) continue;
    const IrNode *n = g->nodes[st->node];
    if (!reads_input(n, memo)) fail_msg("step %d computes the weight-only %s", i, st->what);
    concat_steps += st->kind == CG_STEP_KERNEL && n->op == IR_CONCAT;
  }
  assert_int_equal(concat_steps, 1); /* the timestep embedding's [cos, sin] (with its sin/cos/mul fused) */
  free(memo);
  int computed = 0, unstored = 0;
  for (int i = 0; i < p->n_weights; i++) {
    computed += p->weights[i].n_in > 0 && p->weights[i].op == IR_CONCAT;
    unstored += p->weights[i].offset < 0;
  }
  assert_int_equal(computed, 2);
  assert_int_equal(unstored, 2 * 3); /* (2 blocks + final layer) x (weight, bias) */
  cg_plan_free(p);

  Weights w;
  if (weights_random(g, 11, &w, &err)) fail_msg("%s", err.msg);
  int n_in;
  RtTensor *in = make_inputs(g, 2, 0.0f, 999.0f, 1000, &n_in);
  check_graph_at(g, &w, in, 2, IR_F32, 1, 1e-5, "DiT-S/2 depth 2", 0);
  check_graph_at(g, &w, in, 2, IR_BF16, 1, 1e-2, "DiT-S/2 depth 2", 0);
  free_tensors(in, n_in);
  weights_free(&w);
  fe_model_free(&m);
}

/* Quantised linears (passes/quantize.c) on the emulated device: w8a8's
 * qscale and quantize kernels (or their quant-rows kernel, fused) and its
 * qlinear kernel give the reference executor's bits
 * (integer sums, one order of float operations), w8's dequantize + GEMM is
 * within f32 rounding; NVRTC compiles both.  74 rows, fc1's 72 outputs and K 40 cover
 * the w8 kernel's partial tiles in every direction (64-square blocks, 16-deep k steps). */
static void test_quantized(void **state) {
  (void)state;
  for (int w8a8 = 0; w8a8 < 2; w8a8++) {
    IrGraph *g = ir_graph_new("forward");
    IrNode *x = ir_input(g, "x", IR_F32, shp(3, IR_BATCH, (IrDim)37, (IrDim)40), noloc());
    IrNode *w = ir_param(g, "blocks.0.mlp.fc1.weight", IR_F32, shp(2, (IrDim)72, (IrDim)40), noloc());
    IrNode *b = ir_param(g, "blocks.0.mlp.fc1.bias", IR_F32, shp(1, (IrDim)72), noloc());
    IrNode *w2 = ir_param(g, "blocks.0.mlp.fc2.weight", IR_F32, shp(2, (IrDim)8, (IrDim)72), noloc());
    IrNode *h = ir_un(g, IR_GELU_TANH, ir_linear(g, x, w, b));
    ir_graph_add_output(g, ir_linear(g, h, w2, NULL), "y"); /* no bias */
    PassOptions po = {.verify = 1};
    IrErr err = {{0}};
    if (pass_run_pipeline(g, w8a8 ? "quantize:mode=w8a8,fuse" : "quantize:mode=w8,fuse", &po, &err))
      fail_msg("%s", err.msg);
    int quantised = 0;
    for (int i = 0; i < g->n_nodes; i++) quantised += g->nodes[i]->op == (w8a8 ? IR_QLINEAR : IR_DEQUANTIZE);
    assert_int_equal(quantised, 2);
    Weights wt;
    bind_weights(g, &wt);
    int n_in;
    RtTensor *in = make_inputs(g, 2, -2.0f, 2.0f, 4, &n_in);
    const char *label = w8a8 ? "w8a8" : "w8";
    if (w8a8) { /* fused: x's quant-rows kernel; fc1 an IMMA GEMM (int32) whose epilogue kernel applies the
                 * scales, bias and GELU and writes fc2's int8 rows and scales; fc2's qlinear kernel */
      int rows, gelu, epi;
      int fused = kernel_steps_named(g, 1, "quant_rows", &rows);
      kernel_steps_named(g, 1, "qlinear_gelu", &gelu);
      kernel_steps_named(g, 1, "qlinear_epilogue_quant", &epi);
      assert_int_equal(rows, 1);
      assert_int_equal(gelu, 0);
      assert_int_equal(epi, 1);
      assert_int_equal(fused, 3);
      assert_int_equal(kernel_steps(g, 0), fused + 4);
      set_fusion(g, 1);
      CgOptions o = {.precision = IR_F32, .batch = 2};
      CgPlan *p;
      if (cg_plan_build(g, &o, &p, &err)) fail_msg("cg_plan_build: %s", err.msg);
      int imma = 0;
      for (int i = 0; i < p->n_steps; i++)
        if (p->steps[i].kind == CG_STEP_GEMM) {
          const CgGemm *gm = &p->steps[i].gemm;
          assert_int_equal(gm->dtype, IR_I8);
          assert_int_equal(gm->d_dtype, IR_I32);
          assert_int_equal(gm->k, 40);
          assert_int_equal(gm->n, 72);
          imma++;
        }
      assert_int_equal(imma, 1);
      cg_plan_free(p);
    }
    check_graph_at(g, &wt, in, 2, IR_F32, 1, w8a8 ? 0.0 : 1e-6, label, 1);
    check_graph_at(g, &wt, in, 2, IR_F32, 0, w8a8 ? 0.0 : 1e-6, label, 0);
    check_graph_at(g, &wt, in, 2, IR_BF16, 1, 1e-2, label, 2);
    free_tensors(in, n_in);
    weights_free(&wt);
    ir_graph_free(g);
  }
}

/* w8a8's proj/fc2 shape: a qlinear read only by a residual add feeding a layernorm.  The qlinear
 * becomes an IMMA GEMM step (int32 sums) and the fused layernorm scales them and adds the bias as it
 * loads them: no qlinear kernel; within f32 rounding of the reference (the layernorm's own sums) and
 * NVRTC compiles the plan. */
static void test_quantized_deferred(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("forward");
  IrNode *x = ir_input(g, "x", IR_F32, shp(3, IR_BATCH, (IrDim)9, (IrDim)40), noloc());
  IrNode *r = ir_input(g, "r", IR_F32, shp(3, IR_BATCH, (IrDim)9, (IrDim)24), noloc());
  IrNode *w = ir_param(g, "blocks.0.attn.proj.weight", IR_F32, shp(2, (IrDim)24, (IrDim)40), noloc());
  IrNode *b = ir_param(g, "blocks.0.attn.proj.bias", IR_F32, shp(1, (IrDim)24), noloc());
  IrNode *sum = ir_bin(g, IR_ADD, r, ir_linear(g, x, w, b));
  ir_graph_add_output(g, ir_op1f(g, IR_LAYERNORM, sum, 1e-6f), "ln");
  PassOptions po = {.verify = 1};
  IrErr err = {{0}};
  if (pass_run_pipeline(g, "quantize:mode=w8a8,fuse", &po, &err)) fail_msg("%s", err.msg);
  Weights wt;
  bind_weights(g, &wt);
  int n_in;
  RtTensor *in = make_inputs(g, 2, -2.0f, 2.0f, 4, &n_in);
  int qk;
  kernel_steps_named(g, 1, "qlinear", &qk);
  assert_int_equal(qk, 0);
  assert_int_equal(gemm_steps_of(g, IR_I8, NULL, "ditc_qlinear_scale("), 1);
  check_graph_at(g, &wt, in, 2, IR_F32, 1, 1e-6, "w8a8 deferred", 1);
  check_graph_at(g, &wt, in, 2, IR_BF16, 1, 1e-2, "w8a8 deferred bf16", 0);
  free_tensors(in, n_in);
  weights_free(&wt);
  ir_graph_free(g);
}

/* fp8 with cuBLASLt's shapes (n and k multiples of 16): a block's MLP, layernorm -> modulate -> fc1 -> GELU ->
 * fc2 -> residual -> layernorm.  The first layernorm stores its rows' e4m3 levels, fc1 is an FP8 GEMM
 * step and one epilogue kernel (scales, bias, GELU, fc2's levels), fc2 an FP8 GEMM step whose sums the
 * second layernorm scales and biases as it loads them: 3 kernels, 2 GEMM steps, no qlinear_e4m3 or
 * quantize_e4m3 kernel; within f32 rounding of the reference (the layernorms' own sums: the GEMM and
 * its epilogue give the reference's bits, test_quantized_fp8); NVRTC compiles the plan for sm_89 and
 * sm_90. */
static void test_quantized_fp8_gemm(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("forward");
  IrNode *x = ir_input(g, "x", IR_F32, shp(3, IR_BATCH, (IrDim)9, (IrDim)32), noloc());
  IrNode *w1 = ir_param(g, "blocks.0.mlp.fc1.weight", IR_F32, shp(2, (IrDim)64, (IrDim)32), noloc());
  IrNode *b1 = ir_param(g, "blocks.0.mlp.fc1.bias", IR_F32, shp(1, (IrDim)64), noloc());
  IrNode *w2 = ir_param(g, "blocks.0.mlp.fc2.weight", IR_F32, shp(2, (IrDim)32, (IrDim)64), noloc());
  IrNode *b2 = ir_param(g, "blocks.0.mlp.fc2.bias", IR_F32, shp(1, (IrDim)32), noloc());
  IrNode *sc = ir_input(g, "scale", IR_F32, shp(3, IR_BATCH, (IrDim)1, (IrDim)32), noloc());
  IrNode *sh = ir_input(g, "shift", IR_F32, shp(3, IR_BATCH, (IrDim)1, (IrDim)32), noloc());
  IrNode *mod = ir_bin(g, IR_ADD, ir_bin(g, IR_MUL, ir_op1f(g, IR_LAYERNORM, x, 1e-6f), sc), sh); /* adaLN's modulate */
  IrNode *h = ir_un(g, IR_GELU_TANH, ir_linear(g, mod, w1, b1));
  IrNode *y = ir_bin(g, IR_ADD, x, ir_linear(g, h, w2, b2));
  ir_graph_add_output(g, ir_op1f(g, IR_LAYERNORM, y, 1e-6f), "y");
  static const double a1 = 3.0, a2 = 2.0;
  const PassCalibStat st[2] = {{"linear.blocks.0.mlp.fc1.weight.absmax", 1, &a1},
                               {"linear.blocks.0.mlp.fc2.weight.absmax", 1, &a2}};
  PassCalib cal = {.n = 2, .stats = st, .about = "test"};
  PassOptions po = {.verify = 1, .calib = &cal};
  IrErr err = {{0}};
  if (pass_run_pipeline(g, "quantize:mode=fp8,fuse", &po, &err)) fail_msg("%s", err.msg);
  Weights wt;
  bind_weights(g, &wt);
  int n_in, named;
  RtTensor *in = make_inputs(g, 2, -2.0f, 2.0f, 4, &n_in);
  assert_int_equal(kernel_steps_named(g, 1, "qlinear_e4m3_epilogue", &named), 3);
  assert_int_equal(named, 1);
  kernel_steps_named(g, 1, "quantize_e4m3", &named);
  assert_int_equal(named, 0);
  assert_int_equal(gemm_steps_of(g, IR_E4M3, NULL, "ditc_qlinear_e4m3_scale("), 2);
  /* an architecture before sm_89: the qlinear_e4m3 kernels, no FP8 GEMM step */
  assert_int_equal(gemm_steps_of(g, IR_E4M3, "sm_86", "qlinear_e4m3"), 0);
  check_graph_at(g, &wt, in, 2, IR_F32, 1, 1e-6, "fp8 gemm", 3);
  check_graph_at(g, &wt, in, 2, IR_F32, 0, 1e-6, "fp8 gemm", 2);
  check_graph_at(g, &wt, in, 2, IR_BF16, 1, 5e-2, "fp8 gemm", 0);
  free_tensors(in, n_in);
  weights_free(&wt);
  ir_graph_free(g);
}

/* fp8 (quantize mode=fp8, calibration statistics given here): the e4m3
 * quantize kernels (activations; the weights' codes computed into the blob),
 * the qlinear_e4m3 kernel, and the FP8 GEMM step with its epilogue kernel
 * give the reference executor's bits (decoded products exact in f32, summed
 * in k order); NVRTC compiles the plan for sm_89 and sm_90. */
static void test_quantized_fp8(void **state) {
  (void)state;
  /* the shapes: the qlinear_e4m3 kernels (k 40: no FP8 GEMM); fc1 as an FP8 GEMM step and its epilogue
   * kernel (n and k multiples of 16), fc2 (a graph output) the qlinear_e4m3 kernel */
  static const int64_t dims[2][3] = {{40, 24, 8}, {48, 32, 16}};
  for (int t = 0; t < 2; t++) {
    const int64_t K = dims[t][0], N1 = dims[t][1], N2 = dims[t][2];
    IrGraph *g = ir_graph_new("forward");
    IrNode *x = ir_input(g, "x", IR_F32, shp(3, IR_BATCH, (IrDim)9, (IrDim)K), noloc());
    IrNode *w = ir_param(g, "blocks.0.mlp.fc1.weight", IR_F32, shp(2, (IrDim)N1, (IrDim)K), noloc());
    IrNode *b = ir_param(g, "blocks.0.mlp.fc1.bias", IR_F32, shp(1, (IrDim)N1), noloc());
    IrNode *w2 = ir_param(g, "blocks.0.mlp.fc2.weight", IR_F32, shp(2, (IrDim)N2, (IrDim)N1), noloc());
    IrNode *h = ir_un(g, IR_GELU_TANH, ir_linear(g, x, w, b));
    ir_graph_add_output(g, ir_linear(g, h, w2, NULL), "y");
    /* fc1's input saturates above 1.5 (inputs reach 2), fc2's is calibrated wide */
    static const double a1 = 1.5, a2 = 40.0;
    const PassCalibStat st[2] = {{"linear.blocks.0.mlp.fc1.weight.absmax", 1, &a1},
                                 {"linear.blocks.0.mlp.fc2.weight.absmax", 1, &a2}};
    PassCalib cal = {.n = 2, .stats = st, .about = "test"};
    PassOptions po = {.verify = 1, .calib = &cal};
    IrErr err = {{0}};
    if (pass_run_pipeline(g, "quantize:mode=fp8,fuse", &po, &err)) fail_msg("%s", err.msg);
    int q = 0;
    for (int i = 0; i < g->n_nodes; i++) q += g->nodes[i]->op == IR_QLINEAR_E4M3;
    assert_int_equal(q, 2);
    Weights wt;
    bind_weights(g, &wt);
    int n_in;
    RtTensor *in = make_inputs(g, 2, -2.0f, 2.0f, 4, &n_in);
    int named;
    kernel_steps_named(g, 1, "qlinear_e4m3_epilogue", &named);
    assert_int_equal(named, t);
    check_graph_at(g, &wt, in, 2, IR_F32, 1, 0.0, "fp8", 3);
    check_graph_at(g, &wt, in, 2, IR_F32, 0, 0.0, "fp8", 2);
    check_graph_at(g, &wt, in, 2, IR_BF16, 1, 5e-2, "fp8", 3);
    free_tensors(in, n_in);
    weights_free(&wt);
    ir_graph_free(g);
  }
}

/* The routed experts quantised (passes/quantize.c after route-experts): w8's grouped GEMM reads the
 * int8 levels and row scales from the blob (no dequantize kernel, no f32 expert weight stored) within
 * 1e-6 of the reference; w8a8's moe_qlinear (int32 sums) and fp8's moe_qlinear_e4m3 (exact products
 * summed in k order) give the reference executor's bits.  NVRTC compiles every plan for sm_80, sm_86
 * and sm_89 (fp8: sm_89 and sm_90).  The shapes of test_moe_routed: several row tiles an expert, partial
 * column tiles and k-steps. */
static void test_quantized_moe(void **state) {
  (void)state;
  static const char *const modes[3] = {"w8", "w8a8", "fp8"};
  const int E = 4, D = 16, H = 80;
  for (int m = 0; m < 3; m++) {
    IrGraph *g = ir_graph_new("f");
    IrNode *x = ir_input(g, "x", IR_F32, shp(3, IR_BATCH, (IrDim)160, (IrDim)D), noloc());
    IrNode *wr = ir_param(g, "router.w", IR_F32, shp(2, (IrDim)E, (IrDim)D), noloc()); /* not a block's: f32 */
    IrNode *gates = node_attr(g, IR_TOPK_SOFTMAX, 1, (IrNode *[]){ir_linear(g, x, wr, NULL)}, (IrAttrs){.k = 2});
    IrNode *sum = NULL;
    PassCalibStat st[8];
    static const double amax[2] = {2.0, 1.5}; /* fc1's input reaches 2; fc2's saturates above 1.5 */
    char names[8][64];
    for (int e = 0; e < E; e++) {
      char n1[48], b1[48], n2[48], b2[48];
      snprintf(n1, sizeof n1, "blocks.0.mlp.experts.%d.fc1.weight", e);
      snprintf(b1, sizeof b1, "blocks.0.mlp.experts.%d.fc1.bias", e);
      snprintf(n2, sizeof n2, "blocks.0.mlp.experts.%d.fc2.weight", e);
      snprintf(b2, sizeof b2, "blocks.0.mlp.experts.%d.fc2.bias", e);
      for (int j = 0; j < 2; j++) {
        snprintf(names[2 * e + j], sizeof names[0], "linear.%s.absmax", j ? n2 : n1);
        st[2 * e + j] = (PassCalibStat){names[2 * e + j], 1, &amax[j]};
      }
      IrNode *p = gated_expert(g, x, gates, e, D, H, n1, b1, n2, b2);
      sum = sum ? ir_bin(g, IR_ADD, sum, p) : p;
    }
    ir_graph_add_output(g, sum, "y");
    PassCalib cal = {.n = 8, .stats = st, .about = "test"};
    PassOptions po = {.verify = 1, .calib = &cal};
    IrErr err = {{0}};
    char pipe[96];
    snprintf(pipe, sizeof pipe, "route-experts,dce,quantize:mode=%s,fuse", modes[m]);
    if (pass_run_pipeline(g, pipe, &po, &err)) fail_msg("%s", err.msg);
    int quantised = 0, plain = 0;
    for (int i = 0; i < g->n_nodes; i++) {
      const IrNode *n = g->nodes[i];
      quantised += m == 0 ? n->op == IR_MOE_LINEAR && n->in[2]->op == IR_DEQUANTIZE
                          : n->op == (m == 1 ? IR_MOE_QLINEAR : IR_MOE_QLINEAR_E4M3);
      plain += n->op == IR_MOE_LINEAR && n->in[2]->op != IR_DEQUANTIZE;
    }
    assert_int_equal(quantised, 2);
    assert_int_equal(plain, 0);
    /* the plan: the grouped GEMMs of their kind, no dequantised copy of the experts' weights */
    set_fusion(g, 1);
    CgOptions o = {.precision = IR_F32, .batch = 2};
    CgPlan *p;
    if (cg_plan_build(g, &o, &p, &err)) fail_msg("cg_plan_build: %s", err.msg);
    static const char *const kernel[3] = {"moe_wlinear", "moe_qlinear", "moe_qlinear_e4m3"};
    int named = 0, deq = 0;
    for (int i = 0; i < p->n_kernels; i++) {
      named += strstr(p->kernels[i].name, kernel[m]) != NULL && (m != 1 || !strstr(p->kernels[i].name, "e4m3"));
      deq += strstr(p->kernels[i].name, "dequantize") != NULL;
    }
    assert_int_equal(named, 2);
    assert_int_equal(deq, 0);
    int64_t f32_expert = 0; /* f32 weights of the experts' size in the blob: none */
    for (int i = 0; i < p->n_weights; i++)
      if (p->weights[i].dtype == IR_F32 && p->weights[i].offset >= 0) { /* stored (not only an input) */
        int64_t n = 1;
        for (int j = 0; j < p->weights[i].rank; j++) n *= p->weights[i].shape[j];
        f32_expert += n >= (int64_t)E * H * D / 2;
      }
    assert_int_equal(f32_expert, 0);
    static const char *const archs[3][3] = {{"sm_80", "sm_86", "sm_89"}, {"sm_80", "sm_86", "sm_89"}, {"sm_89", "sm_90"}};
    for (int a = 0; a < 3 && archs[m][a]; a++) {
      char label[64];
      snprintf(label, sizeof label, "moe_%s_%s.cu", modes[m], archs[m][a]);
      nvrtc_check(p, archs[m][a], label);
    }
    cg_plan_free(p);
    Weights wt;
    bind_weights(g, &wt);
    int n_in;
    RtTensor *in = make_inputs(g, 2, -2.0f, 2.0f, 4, &n_in);
    char label[32];
    snprintf(label, sizeof label, "moe %s", modes[m]);
    /* the whole MoE (the router's f32 GEMM and the gated combine: f32 rounding), then fc2's routed rows */
    check_graph_at(g, &wt, in, 2, IR_F32, 1, 1e-6, label, 0);
    check_graph_at(g, &wt, in, 2, IR_BF16, 1, m == 2 ? 5e-2 : 1e-2, label, 0);
    IrNode *ys = g->outputs[0]->in[0];
    assert_int_equal(ys->op, m == 0 ? IR_MOE_LINEAR : m == 1 ? IR_MOE_QLINEAR : IR_MOE_QLINEAR_E4M3);
    g->outputs[0] = ys; /* the combine is no longer read */
    check_graph_at(g, &wt, in, 2, IR_F32, 1, m ? 0.0 : 1e-6, label, 0);
    check_graph_at(g, &wt, in, 2, IR_F32, 0, m ? 0.0 : 1e-6, label, 0);
    free_tensors(in, n_in);
    weights_free(&wt);
    ir_graph_free(g);
  }
}

static int setup_all(void **state) {
  (void)state;
  IrErr err = {{0}};
  nvrtc = cg_nvrtc_open(NULL, &err);
  if (!nvrtc) tu_note_skip(err.msg); /* the NVRTC checks of every plan */
  return 0;
}

static int teardown_all(void **state) {
  (void)state;
  cg_nvrtc_close(nvrtc);
  emu_shutdown();
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_gemm_ref),
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_unary),
      cmocka_unit_test(test_binary_broadcast),
      cmocka_unit_test(test_rows),
      cmocka_unit_test(test_topk_ties),
      cmocka_unit_test(test_linear),
      cmocka_unit_test(test_matmul),
      cmocka_unit_test(test_conv_pool),
      cmocka_unit_test(test_embedding_cast),
      cmocka_unit_test(test_embedding_out_of_range),
      cmocka_unit_test(test_embedding_gather_fused),
      cmocka_unit_test(test_layout),
      cmocka_unit_test(test_const),
      cmocka_unit_test(test_attention),
      cmocka_unit_test(test_memory_reuse),
      cmocka_unit_test(test_fuse_elementwise),
      cmocka_unit_test(test_fuse_norm),
      cmocka_unit_test(test_fuse_concat),
      cmocka_unit_test(test_e2e_each_pass),
      cmocka_unit_test(test_weight_only),
      cmocka_unit_test(test_moe_routed),
      cmocka_unit_test(test_e2e_dit_tiny),
      cmocka_unit_test(test_e2e_paper_variants),
      /* last: they draw from the shared random stream, whose draws the tests above were tuned on */
      cmocka_unit_test(test_fuse_norm_input_in_epilogue),
      cmocka_unit_test(test_group_records),
      cmocka_unit_test(test_quantized),
      cmocka_unit_test(test_quantized_deferred),
      cmocka_unit_test(test_quantized_fp8),
      cmocka_unit_test(test_quantized_fp8_gemm),
      cmocka_unit_test(test_quantized_moe),
  };
  return tu_run_group(tests, setup_all, teardown_all);
}
