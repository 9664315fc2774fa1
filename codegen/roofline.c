/*
 * roofline.c - the peak-number table and the roofline prediction
 * (codegen/roofline.h).
 */
#include <strings.h>

#include "codegen/roofline.h"

static const CgGpu gpus[] = {
#define X(id, name, arch, fp32, tf32, f16, bf16, fp8, int8, hbm, source)                                         \
  {#id, name, arch, {[CG_UNIT_MEMORY] = 0, [CG_UNIT_SIMT_F32] = (fp32)*1e12, [CG_UNIT_TC_TF32] = (tf32)*1e12,    \
                     [CG_UNIT_TC_F16] = (f16)*1e12, [CG_UNIT_TC_BF16] = (bf16)*1e12, [CG_UNIT_TC_FP8] = (fp8)*1e12, \
                     [CG_UNIT_TC_INT8] = (int8)*1e12},                                                            \
   (hbm)*1e9, source},
#include "codegen/gpus.def"
#undef X
};

const CgGpu *cg_gpus(int *n) {
  *n = (int)(sizeof gpus / sizeof gpus[0]);
  return gpus;
}

const CgGpu *cg_gpu_find(const char *id) {
  for (size_t i = 0; i < sizeof gpus / sizeof gpus[0]; i++)
    if (!strcasecmp(gpus[i].id, id)) return &gpus[i];
  return NULL;
}

const char *cg_unit_name(CgUnit u) {
  switch (u) {
  case CG_UNIT_MEMORY: return "memory";
  case CG_UNIT_SIMT_F32: return "SIMT fp32";
  case CG_UNIT_TC_TF32: return "tensor core tf32";
  case CG_UNIT_TC_F16: return "tensor core f16";
  case CG_UNIT_TC_BF16: return "tensor core bf16";
  case CG_UNIT_TC_FP8: return "tensor core fp8";
  case CG_UNIT_TC_INT8: return "tensor core int8";
  case CG_UNIT_COUNT: break;
  }
  return "?";
}

CgPrediction cg_predict_step(const CgStep *s, const CgGpu *g) {
  CgPrediction r = {0};
  double bytes = (double)(s->act_read + s->act_written + s->weight_read);
  double rate = s->unit > CG_UNIT_MEMORY && s->unit < CG_UNIT_COUNT ? g->rate[s->unit] : 0;
  if (rate <= 0) rate = g->rate[CG_UNIT_SIMT_F32];
  r.compute_s = s->flops > 0 ? s->flops / rate : 0;
  r.memory_s = bytes / g->bandwidth;
  r.memory_bound = r.memory_s >= r.compute_s;
  r.seconds = r.memory_bound ? r.memory_s : r.compute_s;
  return r;
}

double cg_predict_plan(const CgPlan *p, const CgGpu *g) {
  double t = 0;
  for (int i = 0; i < p->n_steps; i++) t += cg_predict_step(&p->steps[i], g).seconds;
  return t;
}
