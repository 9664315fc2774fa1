/*
 * fuzz_pack.c - libFuzzer target for the .ditpack reader and for building
 * a pack's plan again from its model record.
 *
 * Each input is opened twice: as is (hashes checked, which a mutation almost
 * always breaks: the error path) and with CG_PACK_SKIP_HASHES, so mutations
 * reach the table-of-contents checks and the JSON parsers.  Whatever is
 * accepted must hold what the reader promises the backends: every index and
 * extent inside what it points into, every plan through cg_plan_check, no
 * plan's source handed out.  Then each plan (the first two) is built again
 * from the model record (frontend/pack_plan.h) - mutated model texts,
 * settings and pipelines reach the front end, the passes and the code
 * generator that way - and what is accepted must be what the pack says: the
 * rebuilt plan passes cg_plan_check, its source hashes to the recorded
 * SHA-256, its inputs and outputs are the stored ones.
 */
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/pack.h"
#include "frontend/pack_plan.h"

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
    DITC_ASSERT(!p->source); /* a pack's text is never handed out */
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
  DITC_ASSERT(pk->record.file && pk->record.file[0] && pk->record.passes && pk->record.passes[0]);
  DITC_ASSERT(strlen(pk->record.text) == pk->record.text_len);
}

/* Plan pp built again: refused, or equal to what the pack says. */
static void check_rebuilt(const CgPack *pk, const CgPackPlan *pp) {
  static FILE *sink;
  if (!sink) sink = fopen("/dev/null", "w");
  FePackPlan fp;
  IrErr err;
  if (fe_pack_plan(pk, pp, sink, &fp, &err)) {
    DITC_ASSERT(err.msg[0] != '\0' && fp.plan == NULL);
    return;
  }
  const CgPlan *p = fp.plan, *stored = pp->plan;
  DITC_ASSERT(fp.view.plan == p && fp.view.blob == pp->blob && fp.view.cubins == pp->cubins);
  DITC_ASSERT(cg_plan_check(p, &err) == 0);
  unsigned char sha[32];
  unsigned len = 0;
  DITC_ASSERT(p->source && EVP_Digest(p->source, strlen(p->source), sha, &len, EVP_sha256(), NULL) == 1);
  DITC_ASSERT(!memcmp(sha, pp->source_sha256, 32));
  DITC_ASSERT(!strcmp(p->entry, stored->entry) && !strcmp(p->tuning, stored->tuning) && p->batch == stored->batch);
  DITC_ASSERT(p->n_steps == stored->n_steps && p->n_weights == stored->n_weights && p->arena_bytes == stored->arena_bytes);
  DITC_ASSERT(p->n_inputs == stored->n_inputs && p->n_outputs == stored->n_outputs);
  for (int i = 0; i < p->n_inputs; i++)
    DITC_ASSERT(!strcmp(p->inputs[i].name, stored->inputs[i].name) && p->inputs[i].offset == stored->inputs[i].offset);
  fe_pack_plan_free(&fp);
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
    for (int i = 0; i < pk->n_plans && i < 2; i++) check_rebuilt(pk, &pk->plans[i]);
    cg_pack_close(pk);
  }
  return 0;
}
