/*
 * plan_memory.c - the `plan-memory` pass: record that activation buffers
 * share arena space where their lifetimes do not overlap.
 *
 * Buffers are only known once the code generator has lowered the graph (its
 * fusion decides which values are stored at all, its precision policy their
 * sizes, its step order their lifetimes), so the pass records the decision
 * on the graph (IrGraph.memplan), the way `fuse` records its groups, and the
 * code generator's memory planner, codegen/memplan.c, carries it out.
 * Without the pass every buffer gets a place of its own, which is what
 * `--passes none` reports as the unplanned peak.
 */
#include "passes/passes.h"

int pass_plan_memory(IrGraph *g, const PassOptions *o, IrErr *err) {
  (void)o;
  (void)err;
  g->memplan = IR_MEMPLAN_REUSE;
  return 0;
}
