/*
 * roofline.h - predicted time of a plan's steps on the GPUs of a table of
 * peak numbers (codegen/gpus.def), for `ditc compile --report` and `ditc bench
 * --profile`.
 *
 * Each step of a plan carries its work (CgStep.flops: 2 x the multiply-
 * accumulates of the contractions it computes, the cost model's MACs; 0 for
 * steps that only move and transform data) and the execution unit that work
 * runs on (CgStep.unit, chosen by the code generator: cuBLASLt's tensor cores
 * for f16/bf16 GEMMs, SIMT FFMA for f32 GEMMs and the scalar attention kernel).
 * A step's predicted time on a GPU is the roofline's
 *     max(flops / peak(unit), bytes / bandwidth)
 * with bytes = what the step reads and writes (CgStep.act_read + act_written +
 * weight_read).  It ignores launch latency, tail effects and caches, so it is
 * a lower bound: measured times are expected above it, and a step far above
 * it is the one to look at.
 */
#ifndef DITC_ROOFLINE_H
#define DITC_ROOFLINE_H

#include "codegen/plan.h"

typedef struct {
  const char *id;     /* "H100" */
  const char *name;   /* "H100-SXM5-80GB" */
  const char *arch;   /* "sm_90" */
  /* peak rates in FLOP/s (int8: OP/s) by unit, 0 where the GPU has none */
  double rate[CG_UNIT_COUNT];
  double bandwidth;   /* bytes/s */
  const char *source; /* where the numbers come from */
} CgGpu;

/* The table; *n gets the row count. */
const CgGpu *cg_gpus(int *n);
/* The row named id ("H100", case-insensitive), or NULL. */
const CgGpu *cg_gpu_find(const char *id);
/* "tensor core bf16", "SIMT fp32", "memory", ... */
const char *cg_unit_name(CgUnit u);

typedef struct {
  double seconds;     /* max(compute, memory) */
  double compute_s, memory_s;
  int memory_bound;   /* memory_s >= compute_s */
} CgPrediction;

/* Step s on gpu g.  A unit the GPU lacks (fp8 before sm_89) is predicted at
 * its SIMT fp32 rate. */
CgPrediction cg_predict_step(const CgStep *s, const CgGpu *g);
/* Sum over the steps of plan p (one forward pass at p->batch). */
double cg_predict_plan(const CgPlan *p, const CgGpu *g);

#endif
