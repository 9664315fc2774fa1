/*
 * pack_plan.h - what a pack records of the model its plans come from, and
 * the plan that runs from a pack: built again from that record.
 *
 * A pack is data, but its SOURCE sections are C that the emulated device
 * would compile with the host compiler, and anyone can edit a pack and hash
 * it again.  So no text of a pack is ever compiled or launched as it is:
 * compile records the model (the model file's text, parsed by ditc's own
 * parser, no code of it runs; configuration, settings, pass pipeline), and
 * before a plan runs it is built again from that record (fe_build_source,
 * the pipeline, cg_plan_build at the plan's entry, precision, batch and
 * tuning row) and held to the pack (cg_pack_plan_matches: source hash, plan
 * JSON, constants; here: the manifest's model, configuration and
 * parameters).  Any difference refuses the pack.  Both backends then run
 * the plan built here; a CUBIN is code for the GPU and is trusted as any
 * binary is, but it is launched with these grids, blocks and offsets.
 * Building DiT-XL/2's plan again takes about 0.1 s (README, "Safety").
 */
#ifndef DITC_FRONTEND_PACK_PLAN_H
#define DITC_FRONTEND_PACK_PLAN_H

#include <stdio.h>

#include "codegen/pack.h"
#include "frontend/frontend.h"
#include "passes/passes.h"

/* Record m in w: the manifest's "model", "config" and "params", and the
 * model record (m's file and text, sets[0..n_sets), the pipeline pl).  The
 * settings must be those m was built with.  0, or -1 with err. */
int fe_pack_record(CgPackWriter *w, const FeModel *m, const FeSetting *sets, int n_sets, const PassPipeline *pl,
                   IrErr *err);

typedef struct {
  CgPackPlan view;   /* the pack's plan with `plan` and `defaults` the rebuilt ones: what a backend gets */
  CgPlan *plan;      /* the rebuilt plan (owns the defaults too) */
} FePackPlan;

/* Build plan pp of pk again from pk's model record and check it against the
 * pack; on success *out holds the rebuilt plan, and each of pp's CUBINs is
 * noted as compiled from its source (for the simulated CUDA driver).  The
 * model's diagnostics, if the record does not build, go to diag.  0, or -1
 * with "PACK: ..." saying what differs or fails. */
int fe_pack_plan(const CgPack *pk, const CgPackPlan *pp, FILE *diag, FePackPlan *out, IrErr *err);
void fe_pack_plan_free(FePackPlan *p); /* a zeroed one is fine */

#endif
