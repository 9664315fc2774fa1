/*
 * prune.h - what the passes that remove work share (passes/prune_sites.c):
 * finding DiT's softmax attentions and MLPs in a graph, keep masks as the
 * pipeline records them, and weights built from rows or columns of others.
 *
 * The passes change the model's function on purpose (prune-heads, kv-heads,
 * prune-mlp, prune-blocks).  A decision read from data (weights, calibration
 * statistics) is spelled out in the pass's `select` option
 * (pass_opt_decide), so a pack's recorded pipeline builds the same graph
 * without the data.  New weights are weight-only nodes over the PARAMs
 * (slices, concats, reduce_mean): backends compute them once, and the code
 * generator's blob stores only them, so a pruned pack carries its smaller
 * weights.
 */
#ifndef DITC_PASSES_PRUNE_H
#define DITC_PASSES_PRUNE_H

#include "passes/passes.h"

/* One softmax attention as DiT's model file writes it:
 *   qkv = linear(x, w, b)          [.., N, 3 inner]
 *   q, k, v = slice(qkv) -> reshape [.., N, H, hd] -> permute [0,2,1,3]
 *   pv = matmul(softmax(scale(matmul(q, k^T))), v)
 *   merged = reshape(permute(pv)) [.., N, inner];  proj = linear(merged, pw, pb)
 * every inner node read once. */
typedef struct {
  IrNode *qkv, *x, *w, *b;   /* b may be NULL */
  IrNode *proj, *pw, *pb;    /* pb may be NULL */
  int heads;
  int64_t hd, inner;
  int has_scale;
  float scale;
} PruneAttn;

/* One MLP: fc2 = linear(act(fc1 = linear(x, w1, b1)), w2, b2), act an
 * elementwise unary op (gelu_tanh, gelu), fc1 and act read once. */
typedef struct {
  IrNode *fc1, *act, *fc2;
  int64_t hidden;
} PruneMlp;

/* One DiT block around attention site `attn`: mul = gate * proj,
 * mid = in + mul, out the one add reading mid (the MLP's residual), in and
 * out of one shape.  Block i is the i-th such attention. */
typedef struct {
  IrNode *in, *mid, *out, *mul, *gate;
  int attn;
} PruneBlock;

/* The sites in graph order (arrays the caller frees); n may be 0. */
int prune_find_attention(IrGraph *g, PruneAttn **out);
int prune_find_mlps(IrGraph *g, PruneMlp **out);
int prune_find_blocks(IrGraph *g, PruneBlock **out);

/* A label for messages: the node's name or "%id". */
const char *prune_label(const IrNode *n, char *buf, size_t len);

/* keep masks: one per site, hex digits (digit j: bits of indices 4j..4j+3,
 * lowest bit first), sites separated by '.'.  prune_mask_text: masks[s][i]
 * for s < n_sites, i < n (caller frees).  prune_mask_parse: site `site` of
 * text into keep[0..n-1]; -1 with err when it has no such site or a digit
 * names an index >= n. */
char *prune_mask_text(unsigned char *const *masks, int n_sites, const int64_t *n);
int prune_mask_parse(const char *text, int site, int64_t n, unsigned char *keep, IrErr *err);
int prune_mask_sites(const char *text);

/* One keep mask per site, as a pass builds them. */
typedef struct {
  int n;
  unsigned char **keep; /* keep[s][0..size[s]) */
  int64_t *size;
} PruneMasks;
void prune_masks_init(PruneMasks *m, int n);
void prune_masks_free(PruneMasks *m);
/* Spell the masks out as the running pass's `select` (pass_opt_decide). */
void prune_masks_record(const PassOptions *o, const PruneMasks *m);
/* After a rewrite: restore order, remove what no output reads. */
int prune_finish(IrGraph *g, IrErr *err);

/* The rows (axis 0) or columns (axis 1) of weight w whose index i has
 * keep[i / unit] set, as one weight-only node: slices of w's kept runs,
 * concatenated (w itself when all are kept).  `parts` repeats the mask over
 * consecutive parts of the axis (3 for qkv's q, k, v thirds). */
IrNode *prune_take(IrGraph *g, IrNode *w, int axis, int parts, int64_t unit, const unsigned char *keep, int64_t n_keep);

/* Replace attention a by one over qkv weight w and bias b (NULL: none),
 * whose rows are hq query heads then hkv key and hkv value heads (hq a
 * multiple of hkv: groups of hq/hkv query heads read one K/V head, through a
 * broadcast, nothing repeated), and proj weight pw [.., hq hd].  The new
 * nodes carry the old ones' labels. */
void prune_rebuild_attention(IrGraph *g, const PruneAttn *a, IrNode *w, IrNode *b, int hq, int hkv, IrNode *pw);

/* Indices of the `k` largest scores (ties: the lower index) as a mask. */
void prune_keep_best(const double *score, int64_t n, int64_t k, unsigned char *keep);

#endif
