/*
 * memplan.c - memory planning: where each activation buffer of a plan lives
 * in the one device arena.
 *
 * The decision is the IR's (IrGraph.memplan, recorded by the `plan-memory`
 * pass, passes/plan_memory.c); the planning is here, once lowering has
 * listed the plan's buffers and steps (lower.c), since only then is it known
 * which values are stored at all, in which dtype, and when:
 *   lifetimes  each buffer is live from the first step that touches it to the
 *              last (a step's reads and writes, the side value a fused
 *              layernorm also stores included); graph inputs, outputs and the
 *              status word are pinned live for the whole run, and so is a
 *              buffer no step touches;
 *   sizes      rounded up to the arena alignment (ALIGN), so every offset
 *              stays aligned;
 *   offsets    IR_MEMPLAN_REUSE: the classic greedy for offline dynamic
 *              storage allocation (cg_memplan_first_fit): buffers by
 *              decreasing size (ties: earlier first), each at the lowest
 *              offset where it overlaps no already placed buffer live at the
 *              same time; IR_MEMPLAN_NONE: one place per buffer, in order
 *              (the unplanned layout, whose size every plan reports too).
 * Weights are not planned here: they live in the blob (lower.c place_weights).
 */
#include <stdlib.h>

#include "codegen/lower.h"

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

int64_t cg_memplan_first_fit(int n, const int64_t *bytes, const int *first, const int *last, int64_t *offset) {
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

/* One place per buffer, in order. */
static int64_t unplanned_layout(int n, const int64_t *bytes, int64_t *offset) {
  int64_t top = 0;
  for (int i = 0; i < n; i++) {
    offset[i] = top;
    top += bytes[i];
  }
  return top;
}

/* Each buffer's live range [first, last] over the step list. */
static void lifetimes(Ctx *c) {
  for (int s = 0; s < c->n_steps; s++) {
    LStep *st = &c->steps[s];
    for (int j = 0; j < st->n_reads; j++) {
      Buf *b = &c->bufs[st->reads[j]];
      if (b->first < 0) b->first = s;
      b->last = s;
    }
    int w[3] = {st->write, st->write2, st->write3};
    for (int j = 0; j < 3; j++) {
      if (w[j] < 0) continue;
      Buf *b = &c->bufs[w[j]];
      if (b->first < 0 || b->first > s) b->first = s;
      if (b->last < s) b->last = s;
    }
  }
}

int64_t cg_memplan_place(Ctx *c, int64_t *unplanned) {
  lifetimes(c);
  int n = 0, *idx = xmalloc((size_t)(c->n_bufs + 1) * sizeof *idx);
  int *first = xmalloc((size_t)(c->n_bufs + 1) * sizeof *first), *last = xmalloc((size_t)(c->n_bufs + 1) * sizeof *last);
  int64_t *bytes = xmalloc((size_t)(c->n_bufs + 1) * sizeof *bytes), *off = xmalloc((size_t)(c->n_bufs + 1) * sizeof *off);
  for (int i = 0; i < c->n_bufs; i++) {
    Buf *b = &c->bufs[i];
    if (b->space != CG_SPACE_ACT) continue;
    if (b->pinned || b->first < 0) {
      b->first = 0;
      b->last = c->n_steps;
    }
    idx[n] = i, first[n] = b->first, last[n] = b->last;
    bytes[n] = align_up(b->bytes > 0 ? b->bytes : 1);
    n++;
  }
  *unplanned = unplanned_layout(n, bytes, off);
  int64_t top = *unplanned;
  switch (c->g->memplan) {
  case IR_MEMPLAN_NONE: break;
  case IR_MEMPLAN_REUSE: top = cg_memplan_first_fit(n, bytes, first, last, off); break;
  }
  for (int i = 0; i < n; i++) c->bufs[idx[i]].offset = off[i];
  free(idx);
  free(first);
  free(last);
  free(bytes);
  free(off);
  return top;
}
