/*
 * plan_memory.c - the `plan-memory` pass: liveness-based reuse of the
 * activation arena.
 *
 * Buffers are only known once the code generator has lowered the graph (its
 * fusion decides which values are stored at all, its precision policy their
 * sizes, its step order their lifetimes), so the pass works in two halves:
 * pass_plan_memory() records on the graph that the plan is to be planned,
 * and the code generator, after lowering, hands its buffers to
 * pass_memory_plan() below.  Without the pass every buffer gets a place of
 * its own, which is what `--passes none` reports as the unplanned peak.
 *
 * The planner is the classic greedy for offline dynamic storage allocation:
 * buffers by decreasing size (ties: earlier first), each at the lowest offset
 * where it overlaps no already placed buffer that is live at the same time.
 * Sizes are multiples of the arena alignment, so every offset stays aligned.
 */
#include <stdlib.h>

#include "passes/passes.h"

int pass_plan_memory(IrGraph *g, const PassOptions *o, IrErr *err) {
  (void)o;
  (void)err;
  g->memory_planned = 1;
  return 0;
}

typedef struct {
  const int64_t *bytes;
  const int *first;
  const int64_t *offset;
} Order;

static int cmp_size_desc(const void *a, const void *b, void *ctx) {
  const Order *o = ctx;
  int x = *(const int *)a, y = *(const int *)b;
  if (o->bytes[x] != o->bytes[y]) return o->bytes[x] > o->bytes[y] ? -1 : 1;
  if (o->first[x] != o->first[y]) return o->first[x] < o->first[y] ? -1 : 1;
  return x - y;
}

static int cmp_offset(const void *a, const void *b, void *ctx) {
  const Order *o = ctx;
  int64_t x = o->offset[*(const int *)a], y = o->offset[*(const int *)b];
  return x < y ? -1 : x > y;
}

int64_t pass_memory_plan(int n, const int64_t *bytes, const int *first, const int *last, int64_t *offset) {
  Order ord = {.bytes = bytes, .first = first, .offset = offset};
  int *order = xmalloc((size_t)(n + 1) * sizeof *order);
  int *placed = xmalloc((size_t)(n + 1) * sizeof *placed);
  int *conflict = xmalloc((size_t)(n + 1) * sizeof *conflict);
  for (int i = 0; i < n; i++) order[i] = i;
  qsort_r(order, (size_t)n, sizeof *order, cmp_size_desc, &ord);
  int64_t top = 0;
  int n_placed = 0;
  for (int i = 0; i < n; i++) {
    int b = order[i], nc = 0;
    for (int j = 0; j < n_placed; j++) {
      int p = placed[j];
      if (first[p] <= last[b] && first[b] <= last[p]) conflict[nc++] = p;
    }
    qsort_r(conflict, (size_t)nc, sizeof *conflict, cmp_offset, &ord);
    int64_t at = 0;
    for (int j = 0; j < nc; j++) {
      int p = conflict[j];
      if (offset[p] >= at + bytes[b]) break; /* the gap before p fits */
      if (offset[p] + bytes[p] > at) at = offset[p] + bytes[p];
    }
    offset[b] = at;
    if (at + bytes[b] > top) top = at + bytes[b];
    placed[n_placed++] = b;
  }
  free(order);
  free(placed);
  free(conflict);
  return top;
}

int64_t pass_memory_unplanned(int n, const int64_t *bytes, int64_t *offset) {
  int64_t top = 0;
  for (int i = 0; i < n; i++) {
    offset[i] = top;
    top += bytes[i];
  }
  return top;
}
