/*
 * fuzz_pack.c - libFuzzer target for the .ditpack reader.
 *
 * Each input is opened twice: as is (hashes checked, which a mutation almost
 * always breaks: the error path) and with CG_PACK_SKIP_HASHES, so mutations
 * reach the table-of-contents checks and the JSON parsers.  Whatever is
 * accepted must hold what the reader promises the backends: every index and
 * extent inside what it points into.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/pack.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const CgPack *pk, const uint8_t *data, size_t size) {
  DITC_ASSERT(pk->n_plans >= 1);
  for (int b = 0; b < pk->n_blobs; b++)
    DITC_ASSERT(pk->blobs[b].data >= data && pk->blobs[b].data + pk->blobs[b].size <= data + size);
  for (int i = 0; i < pk->n_plans; i++) {
    const CgPackPlan *pp = &pk->plans[i];
    const CgPlan *p = pp->plan;
    /* (entry, architecture) names one plan: this one, for each of its CUBINs */
    const CgPackPlan *first = cg_pack_find_plan(pk, p->entry);
    DITC_ASSERT(first && !strcmp(first->plan->entry, p->entry));
    IrErr perr;
    for (int c = 0; c < pp->n_cubins; c++) DITC_ASSERT(cg_pack_find_plan_arch(pk, p->entry, pp->cubins[c].arch, &perr) == pp);
    DITC_ASSERT(p->tuning && p->tuning[0]);
    DITC_ASSERT(cg_plan_check(p, &perr) == 0); /* what the reader accepts passes the one validation */
    DITC_ASSERT(pp->blob < pk->n_blobs);
    for (int s = 0; s < p->n_steps; s++)
      if (p->steps[s].kind == CG_STEP_KERNEL) DITC_ASSERT(p->steps[s].kernel >= 0 && p->steps[s].kernel < p->n_kernels);
    for (int k = 0; k < p->n_outputs; k++) DITC_ASSERT(p->outputs[k].offset <= p->arena_bytes);
    for (int c = 0; c < pp->n_cubins; c++)
      DITC_ASSERT(pp->cubins[c].image >= data && pp->cubins[c].image + pp->cubins[c].size <= data + size);
    IrErr err;
    (void)cg_pack_pick_cubin(pp, 9, 0, &err);
    (void)cg_pack_pick_cubin(pp, 8, 6, &err);
  }
  (void)cg_pack_param_int(pk, "in_channels", 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  IrErr err;
  for (unsigned flags = 0; flags <= CG_PACK_SKIP_HASHES; flags += CG_PACK_SKIP_HASHES) {
    CgPack *pk = cg_pack_open_memory(data, size, "fuzz", flags, &err);
    if (!pk) {
      DITC_ASSERT(err.msg[0] != '\0');
      continue;
    }
    check(pk, data, size);
    cg_pack_close(pk);
  }
  return 0;
}
