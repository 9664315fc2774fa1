/*
 * cli_vae.c - `ditc sample --vae CONFIG_OR_DIT_FILE --vae-weights W`: the
 * latents a latent model samples, decoded to images by the VAE's `decode`
 * entry (models/vae.dit), on the sampler's backend.
 *
 * The decoder is a Runner of its own (cli_run.c), built from the named
 * configuration (sd-vae-ft-ema, ...) or the .dit file with latent_size set to
 * the DiT's input_size, its weights bound and its backend prepared at the
 * batch it decodes before any sampling starts, so a VAE that does not fit the
 * DiT (its latent channels) or its weights (every mismatch listed, as for a
 * DiT checkpoint) is refused first.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/cli.h"

int cli_vae_open(const Opts *o, const char *backend, int latent_channels, int latent_size, int64_t batch,
                 CliVae *v) {
  memset(v, 0, sizeof *v);
  if (!o->vae_weights) return cli_fail("--vae needs --vae-weights (the AutoencoderKL checkpoint, diffusers naming)");
  /* the decoder's own options: its model and weights, the sampler's backend
   * and precision; none of the DiT's settings, passes or pack */
  Opts *vo = &v->opts;
  vo->cmd = o->cmd;
  vo->model = o->vae;
  vo->weights = o->vae_weights;
  vo->backend = backend;
  vo->precision = o->precision;
  snprintf(v->latent_size, sizeof v->latent_size, "%d", latent_size);
  vo->sets[0] = (FeSetting){"latent_size", v->latent_size};
  vo->n_sets = 1;
  IrErr err;
  if (pass_pipeline_parse("default", &vo->pipeline, &err)) return cli_fail("%s", err.msg);
  v->open = 1; /* cli_runner_free after a failed open too */
  if (cli_runner_open(vo, "decode", &v->rn)) return 1;
  if (v->rn.n_in != 1 || strcmp(v->rn.in_names[0], "z"))
    return cli_fail("--vae %s: its decode entry must take one input, z", o->vae);
  int64_t lc = cli_runner_param(&v->rn, "latent_channels");
  if (lc != latent_channels)
    return cli_fail("--vae %s decodes latents of %lld channels; the model samples %d (its in_channels)", o->vae,
                    (long long)lc, latent_channels);
  IrNode *out = v->rn.m.graph->outputs[0];
  if (v->rn.m.graph->n_outputs != 1 || out->shape.rank != 4)
    return cli_fail("--vae %s: its decode entry must return one image tensor [B, C, H, W]", o->vae);
  v->C = (int)out->shape.d[1];
  v->H = (int)out->shape.d[2];
  v->W = (int)out->shape.d[3];
  v->latent = (int64_t)latent_channels * latent_size * latent_size;
  v->shape[0] = batch, v->shape[1] = latent_channels, v->shape[2] = latent_size, v->shape[3] = latent_size;
  v->batch = batch;
  return cli_runner_prepare(vo, &v->rn, batch);
}

int cli_vae_decode(CliVae *v, const float *z, float *img) {
  IrErr err;
  RtTensor in = rt_tensor_new(IR_F32, 4, v->shape), res = {0};
  memcpy(in.data, z, (size_t)(v->batch * v->latent) * sizeof *z);
  int bad = v->rn.be->run(v->rn.be, &in, &res, &err);
  if (!bad) memcpy(img, res.data, (size_t)(v->batch * cli_vae_image(v)) * sizeof *img);
  rt_tensor_free(&in);
  rt_tensor_free(&res);
  return bad ? cli_fail("--vae: %s", err.msg) : 0;
}

int64_t cli_vae_image(const CliVae *v) { return (int64_t)v->C * v->H * v->W; }

void cli_vae_free(CliVae *v) {
  if (v->open) cli_runner_free(&v->rn);
  v->open = 0;
}
