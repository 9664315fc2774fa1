/*
 * test_backend.c - the backend table: the emulated backend runs a hand-made
 * plan (a GEMM step and a kernel step) and matches the host arithmetic, with
 * the weights blob aligned (used in place) or not (copied); inputs of the
 * wrong shape or dtype are refused with the plan's batch in the message; the
 * ref backend computes exactly what ref_run does; the cuda backend, on a
 * machine without a GPU, refuses with the driver's reason.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "runtime/backend.h"
#include "codegen/emu.h"
#include "runtime/cuda_api.h"
#include "runtime/ref.h"
#include "tiny_plan.h"
#include "testutil.h"

static void run_tiny(int misalign) {
  CgPlan *p = tiny_plan();
  float blob[21];
  tiny_blob(blob + misalign);
  float *wb = blob + misalign;
  IrErr err;
  RtBackend *b = rt_backend_new("emu", &err);
  assert_non_null(b);
  assert_string_equal(b->name, "emu");
  assert_true(b->supports_op(b, IR_SOFTMAX));
  RtModel m = {.plan = p, .blob = wb};
  if (b->prepare(b, &m, &err)) fail_msg("%s", err.msg);
  for (int rep = 0; rep < 2; rep++) {
    RtTensor x = rt_tensor_new(IR_F32, 2, (int64_t[]){2, 4}), y = {0};
    for (int i = 0; i < 8; i++) ((float *)x.data)[i] = (float)(i * (rep + 1)) - 3.0f;
    if (b->run(b, &x, &y, &err)) fail_msg("%s", err.msg);
    float want[6];
    tiny_expect(x.data, want);
    assert_int_equal(y.dtype, IR_F32);
    assert_int_equal(y.rank, 2);
    assert_int_equal(y.shape[1], 3);
    for (int i = 0; i < 6; i++)
      if (fabsf(((float *)y.data)[i] - want[i]) > 1e-5f) fail_msg("y[%d] = %g, want %g", i, ((float *)y.data)[i], want[i]);
    rt_tensor_free(&x);
    rt_tensor_free(&y);
  }
  /* a batch the plan was not built for */
  RtTensor x3 = rt_tensor_new(IR_F32, 2, (int64_t[]){3, 4}), y = {0};
  assert_int_equal(b->run(b, &x3, &y, &err), -1);
  assert_non_null(strstr(err.msg, "built for batch 2"));
  assert_non_null(strstr(err.msg, "[3, 4]"));
  rt_tensor_free(&x3);
  RtTensor xi = rt_tensor_new(IR_I32, 2, (int64_t[]){2, 4});
  assert_int_equal(b->run(b, &xi, &y, &err), -1);
  assert_non_null(strstr(err.msg, "must be f32"));
  rt_tensor_free(&xi);
  rt_backend_free(b);
  tiny_plan_free(p);
}

static void test_emu_tiny_aligned(void **state) {
  (void)state;
  run_tiny(0);
}

static void test_emu_tiny_unaligned(void **state) {
  (void)state;
  run_tiny(1);
}

static void test_emu_errors(void **state) {
  (void)state;
  IrErr err;
  RtBackend *b = rt_backend_emu();
  RtModel none = {0};
  assert_int_equal(b->prepare(b, &none, &err), -1);
  assert_non_null(strstr(err.msg, "plan"));
  RtTensor x = rt_tensor_new(IR_F32, 2, (int64_t[]){2, 4}), y = {0};
  assert_int_equal(b->run(b, &x, &y, &err), -1);
  assert_non_null(strstr(err.msg, "before prepare"));
  /* a kernel the source does not define */
  CgPlan *p = tiny_plan();
  p->kernels[0].name = "k_missing";
  float blob[20];
  tiny_blob(blob);
  RtModel m = {.plan = p, .blob = blob};
  assert_int_equal(b->prepare(b, &m, &err), -1);
  assert_non_null(strstr(err.msg, "k_missing"));
  /* a launch the emulator refuses names the step, kernel and node */
  p->kernels[0].name = "k_add_c";
  p->steps[1].block[0] = 4096;
  assert_int_equal(b->prepare(b, &m, &err), 0);
  assert_int_equal(b->run(b, &x, &y, &err), -1);
  assert_non_null(strstr(err.msg, "step 1"));
  assert_non_null(strstr(err.msg, "k_add_c"));
  assert_non_null(strstr(err.msg, "%3 add"));
  rt_tensor_free(&x);
  rt_backend_free(b);
  tiny_plan_free(p);
  assert_null(rt_backend_new("tpu", &err));
  assert_non_null(strstr(err.msg, "unknown backend 'tpu'"));
}

static void test_ref_is_ref_run(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("forward");
  IrNode *x = ir_input(g, "x", IR_F32, ir_shape_make(2, (IrDim[]){IR_BATCH, 8}), (IrLoc){0});
  IrNode *w = ir_param(g, "fc.weight", IR_F32, ir_shape_make(2, (IrDim[]){5, 8}), (IrLoc){0});
  IrNode *bias = ir_param(g, "fc.bias", IR_F32, ir_shape_make(1, (IrDim[]){5}), (IrLoc){0});
  ir_graph_add_output(g, ir_un(g, IR_SILU, ir_linear(g, x, w, bias)), "out");
  IrErr err;
  Weights wt;
  assert_int_equal(weights_random(g, 1, &wt, &err), 0);
  RtTensor in = rt_tensor_new(IR_F32, 2, (int64_t[]){3, 8}), a = {0}, c = {0};
  for (int i = 0; i < 24; i++) ((float *)in.data)[i] = sinf((float)i);
  RefExec *ex = ref_prepare(g, &wt, 3, &err);
  assert_non_null(ex);
  assert_int_equal(ref_run(ex, &in, &a, &err), 0);
  RtBackend *b = rt_backend_new("ref", &err);
  RtModel m = {.graph = g, .weights = &wt, .batch = 3};
  assert_int_equal(b->prepare(b, &m, &err), 0);
  assert_int_equal(b->run(b, &in, &c, &err), 0);
  assert_int_equal(rt_numel(&c), 15);
  assert_memory_equal(a.data, c.data, 15 * sizeof(float));
  RtModel plan_only = {.plan = (CgPlan *)1};
  assert_int_equal(b->prepare(b, &plan_only, &err), -1);
  rt_backend_free(b);
  ref_free(ex);
  rt_tensor_free(&in);
  rt_tensor_free(&a);
  rt_tensor_free(&c);
  weights_free(&wt);
  ir_graph_free(g);
}

static void test_cuda_without_gpu(void **state) {
  (void)state;
  IrErr why, err;
  if (rt_cuda_available(&why)) TU_SKIP("a GPU is present; this test is about machines without one");
  RtBackend *b = rt_backend_new("cuda", &err);
  assert_null(b);
  assert_string_equal(err.msg, why.msg);
}

static int teardown(void **state) {
  (void)state;
  emu_shutdown();
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_emu_tiny_aligned), cmocka_unit_test(test_emu_tiny_unaligned),
      cmocka_unit_test(test_emu_errors),       cmocka_unit_test(test_ref_is_ref_run),
      cmocka_unit_test(test_cuda_without_gpu),
  };
  return tu_run_group(tests, NULL, teardown);
}
