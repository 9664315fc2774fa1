/*
 * tiny_plan.h - a hand-made execution plan for the pack and backend tests:
 * y = (x W^T + b) + c, with x an f32[2, 4] input, W f32[3, 4] and b f32[3]
 * parameters, c an f32[3] constant; a GEMM step then one kernel step.
 * Weights: W at 0, b at 48, c at 64 (blob of 80 bytes).  Arena: x at 0,
 * the GEMM's D at 64, y at 128 (192 bytes).
 */
#ifndef DITC_TESTS_TINY_PLAN_H
#define DITC_TESTS_TINY_PLAN_H

#include <stdlib.h>
#include <string.h>

#include "codegen/plan.h"

static const char TINY_SOURCE[] =
    "typedef struct { char *act; const char *w; } DitcArgs;\n"
    "/* %3 add : f32[2, 3] */\n"
    "DITC_KERNEL(k_add_c, DitcArgs, p) {\n"
    "  int i = (int)threadIdx.x;\n"
    "  if (i >= 6) return;\n"
    "  const float *d = (const float *)(p.act + 64);\n"
    "  const float *c = (const float *)(p.w + 64);\n"
    "  float *y = (float *)(p.act + 128);\n"
    "  y[i] = d[i] + c[i % 3];\n"
    "}\n";

static const float TINY_C[3] = {0.5f, -1.0f, 2.0f};

static inline CgPlan *tiny_plan(void) {
  CgPlan *p = calloc(1, sizeof *p);
  Arena *a = &p->arena;
  p->entry = "forward";
  p->precision = IR_F32;
  p->batch = 2;
  p->source = TINY_SOURCE;
  p->n_kernels = 1;
  p->kernels = arena_alloc(a, sizeof *p->kernels);
  p->kernels[0] = (CgKernel){"k_add_c", "%3 add : f32[2, 3]"};
  p->n_steps = 2;
  p->steps = arena_alloc(a, 2 * sizeof *p->steps);
  p->steps[0] = (CgStep){.kind = CG_STEP_GEMM, .node = 2, .what = "%2 linear fc"};
  p->steps[0].gemm = (CgGemm){.dtype = IR_F32, .d_dtype = IR_F32, .trans_b = 1, .m = 2, .n = 3, .k = 4, .batch = 1,
                              .lda = 4, .ldb = 4, .ldd = 3, .a = {CG_SPACE_ACT, 0},
                              .b = {CG_SPACE_WEIGHTS, 0}, .d = {CG_SPACE_ACT, 64},
                              .bias = {CG_SPACE_WEIGHTS, 48}, .epilogue = CG_EPI_BIAS, .alpha = 1.0f};
  p->steps[1] = (CgStep){.kind = CG_STEP_KERNEL, .node = 3, .what = "%3 add", .kernel = 0,
                         .grid = {1, 1, 1}, .block = {32, 1, 1}};
  p->arena_bytes = 192;
  p->weights_bytes = 80;
  p->n_weights = 3;
  p->weights = arena_alloc(a, 3 * sizeof *p->weights);
  p->weights[0] = (CgWeight){.name = "fc.weight", .dtype = IR_F32, .rank = 2, .shape = {3, 4}, .offset = 0, .param_id = 1};
  p->weights[1] = (CgWeight){.name = "fc.bias", .dtype = IR_F32, .rank = 1, .shape = {3}, .offset = 48, .param_id = 2};
  p->weights[2] = (CgWeight){.name = "c", .dtype = IR_F32, .rank = 1, .shape = {3}, .offset = 64, .param_id = -1,
                             .const_data = TINY_C};
  p->n_inputs = 1;
  p->inputs = arena_alloc(a, sizeof *p->inputs);
  p->inputs[0] = (CgIo){.name = "x", .dtype = IR_F32, .rank = 2, .shape = {2, 4}, .offset = 0};
  p->n_outputs = 1;
  p->outputs = arena_alloc(a, sizeof *p->outputs);
  p->outputs[0] = (CgIo){.name = "out", .dtype = IR_F32, .rank = 2, .shape = {2, 3}, .offset = 128};
  p->status_offset = -1;
  return p;
}

static inline void tiny_plan_free(CgPlan *p) {
  arena_free(&p->arena);
  free(p);
}

/* W[j][k] = 0.1 (j + 1) (k - 1), b = {1, 2, 3}; and c from the plan. */
static inline void tiny_blob(float blob[20]) {
  for (int j = 0; j < 3; j++)
    for (int k = 0; k < 4; k++) blob[j * 4 + k] = 0.1f * (float)(j + 1) * (float)(k - 1);
  for (int j = 0; j < 3; j++) blob[12 + j] = (float)(j + 1);
  for (int j = 0; j < 3; j++) blob[16 + j] = TINY_C[j];
  blob[15] = blob[19] = 0;
}

/* The expected y for input x. */
static inline void tiny_expect(const float *x, float *y) {
  float blob[20];
  tiny_blob(blob);
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 3; j++) {
      float s = 0;
      for (int k = 0; k < 4; k++) s += x[i * 4 + k] * blob[j * 4 + k];
      y[i * 3 + j] = s + blob[12 + j] + TINY_C[j];
    }
}

#endif
