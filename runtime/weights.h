/*
 * weights.h - bind a graph's PARAM nodes to checkpoint tensors.
 *
 * Every PARAM node names a tensor (reference DiT naming, e.g.
 * "blocks.3.attn.qkv.weight").  Binding checks every name and shape and reports
 * all missing, unexpected and mismatched tensors in one message.  Checkpoints in
 * the Hugging Face diffusers naming of DiT are recognised and translated
 * (to_q/to_k/to_v concatenated into qkv, norm1.linear -> adaLN_modulation.1, ...).
 * PARAM nodes with a default (node->data, e.g. the fixed sin-cos pos_embed) use
 * it when the checkpoint does not carry the tensor.
 */
#ifndef DITC_WEIGHTS_H
#define DITC_WEIGHTS_H

#include "codegen/plan.h"
#include "runtime/safetensors.h"

typedef struct {
  int cap;        /* size of data[], = graph->next_id when bound */
  float **data;   /* data[node->id]: f32 values of PARAM node (owned), else NULL */
  int64_t n_params;
  /* NaN or infinite values among the checkpoint's (not an error: the caller
   * warns), the tensors holding any, and the first such tensor's name (the
   * graph's string). */
  int64_t nonfinite;
  int nonfinite_tensors;
  const char *nonfinite_first;
  /* An AutoencoderKL checkpoint's encoder tensors (encoder.*, quant_conv.*),
   * left out of the binding: the decoder does not read them (the caller says
   * so once). */
  int vae_encoder_ignored;
} Weights;

/* From a checkpoint file.  Returns 0, or -1 with every problem listed in err
 * (err->msg is truncated sensibly when the list is long). */
int weights_bind_file(IrGraph *g, const StFile *f, Weights *w, IrErr *err);
int weights_load(IrGraph *g, const char *path, Weights *w, IrErr *err);
/* Deterministic random weights for any configuration: every tensor non-zero,
 * N(0, 0.02) for weights, small non-zero biases; defaults used where given. */
int weights_random(IrGraph *g, uint64_t seed, Weights *w, IrErr *err);
/* `spec` is "random", "random:SEED" or a path.  A checkpoint holding NaN or
 * infinite values binds, with a warning on stderr naming the first tensor. */
int weights_open(IrGraph *g, const char *spec, Weights *w, IrErr *err);
const float *weights_get(const Weights *w, const IrNode *param);
void weights_free(Weights *w);
/* The bound values as the code generator reads them (cg_plan_fill_weights). */
static inline CgParamValues weights_values(const Weights *w) {
  return (CgParamValues){w->cap, (const float *const *)w->data};
}

#endif
