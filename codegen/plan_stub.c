/*
 * plan_stub.c - TEMPORARY stand-ins for codegen.c's entry points, so the pack
 * branch links before the codegen branch lands.  Delete when merging codegen.
 */
#include <stdlib.h>
#include <string.h>

#include "codegen/plan.h"
#include "tensor.h"

int cg_plan_build(IrGraph *g, const CgOptions *o, CgPlan **out, IrErr *err) {
  (void)g, (void)o, (void)out;
  return ir_errf(err, "codegen: cg_plan_build is not part of this build yet");
}

void cg_plan_free(CgPlan *p) {
  if (!p) return;
  arena_free(&p->arena);
  free(p);
}

int cg_plan_fill_weights(const CgPlan *p, const Weights *w, void *blob, IrErr *err) {
  char *out = blob;
  memset(out, 0, (size_t)p->weights_bytes);
  for (int i = 0; i < p->n_weights; i++) {
    const CgWeight *cw = &p->weights[i];
    int64_t n = 1;
    for (int j = 0; j < cw->rank; j++) n *= cw->shape[j];
    const float *src = cw->const_data;
    if (!src) {
      if (!w || cw->param_id < 0 || cw->param_id >= w->cap || !w->data[cw->param_id])
        return ir_errf(err, "codegen: weight '%s' is not bound", cw->name ? cw->name : "?");
      src = w->data[cw->param_id];
    }
    char *dst = out + cw->offset;
    for (int64_t k = 0; k < n; k++) {
      uint16_t h;
      switch (cw->dtype) {
      case IR_F32: memcpy(dst + 4 * k, &src[k], 4); break;
      case IR_F16: h = rt_f32_to_f16(src[k]); memcpy(dst + 2 * k, &h, 2); break;
      case IR_BF16: h = rt_f32_to_bf16(src[k]); memcpy(dst + 2 * k, &h, 2); break;
      default: return ir_errf(err, "codegen: weight '%s': unsupported dtype", cw->name);
      }
    }
  }
  return 0;
}
