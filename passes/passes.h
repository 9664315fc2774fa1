/*
 * passes.h - the pass manager and the passes it knows by name.
 *
 * A pass is `int pass_<name>(IrGraph *, const PassOptions *, IrErr *)`, one
 * file each in passes/.  The registry (passes/pipeline.c) is one table of
 * {name, function, doc}; pipelines are comma-separated lists of names,
 * "default" or "none".  Between passes the manager re-sorts the graph, and in
 * debug and test builds (or with verify set) runs ir_verify().
 */
#ifndef DITC_PASSES_H
#define DITC_PASSES_H

#include "ir/ir.h"

typedef struct {
  int verify;              /* ir_verify() after every pass */
  const char *dump_after;  /* pass name, "all", or NULL */
  FILE *dump;              /* where dumps go (stdout if NULL) */
} PassOptions;

typedef int (*PassFn)(IrGraph *g, const PassOptions *o, IrErr *err);

typedef struct {
  const char *name;
  PassFn fn;
  const char *doc;
} PassInfo;

const PassInfo *pass_table(int *n);
const PassInfo *pass_find(const char *name);
/* The pipeline `ditc` runs when none is named. */
extern const char *const PASS_DEFAULT_PIPELINE;
/* Run `pipeline` ("a,b,c" | "default" | "none"). Unknown names are an error
 * listing the known ones. */
int pass_run_pipeline(IrGraph *g, const char *pipeline, const PassOptions *o, IrErr *err);

/* The passes. */
int pass_dce(IrGraph *g, const PassOptions *o, IrErr *err);
int pass_cse(IrGraph *g, const PassOptions *o, IrErr *err);
int pass_canonicalize(IrGraph *g, const PassOptions *o, IrErr *err);
int pass_fold_constants(IrGraph *g, const PassOptions *o, IrErr *err);
int pass_hoist_adaln(IrGraph *g, const PassOptions *o, IrErr *err);
int pass_fuse(IrGraph *g, const PassOptions *o, IrErr *err);
int pass_plan_memory(IrGraph *g, const PassOptions *o, IrErr *err);

/* The memory planner plan-memory asks for (passes/plan_memory.c), run by the
 * code generator once the plan's buffers are known: buffer i needs bytes[i]
 * (> 0, a multiple of align) from step first[i] to step last[i] inclusive;
 * offset[i] gets a place in one arena such that buffers whose step ranges
 * overlap never overlap in memory (greedy first-fit, largest first).
 * Returns the arena size.  Without the pass every buffer gets its own place
 * (pass_memory_unplanned: the sum of the sizes). */
int64_t pass_memory_plan(int n, const int64_t *bytes, const int *first, const int *last, int64_t *offset);
int64_t pass_memory_unplanned(int n, const int64_t *bytes, int64_t *offset);
int pass_route_experts(IrGraph *g, const PassOptions *o, IrErr *err);

#endif
