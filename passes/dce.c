/*
 * dce.c - dead code elimination: drop every node no graph output depends on.
 *
 * The work is ir_graph_dce() (ir/graph.c); the pass is its named wrapper so
 * the pipeline can run it.  INPUTs stay even when unused (they are the entry's
 * signature); unused PARAMs go, so the weights an executable needs shrink too.
 */
#include "passes/passes.h"

int pass_dce(IrGraph *g, const PassOptions *o, IrErr *err) {
  (void)o;
  (void)err;
  ir_graph_dce(g);
  return 0;
}
