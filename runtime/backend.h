/*
 * backend.h - the devices a model runs on, behind one table of function
 * pointers (the shape of ggml's ggml_backend_i):
 *
 *   ref   the reference executor (ref.h): runs the IR graph itself, fp32;
 *   emu   the emulated device: runs an execution plan (codegen/plan.h) on the
 *         CPU, kernels through codegen/emu.h, GEMMs through cg_gemm_ref;
 *   cuda  runs a plan's CUBIN on a GPU through runtime/cuda_api.h, GEMMs on
 *         cuBLASLt, the forward pass replayed as a CUDA graph after the first.
 *
 * Every backend runs at a fixed batch and takes the same host tensors: one
 * per graph input in ir_graph_inputs() order (the plan's `inputs` order, the
 * same), F32 for float inputs and I32 for integer ones, each of exactly the
 * shape the model expects at that batch; it converts them to the stored
 * dtype (f16/bf16 plans) itself.  Outputs, one per graph output, are F32
 * (I32 for integer outputs), allocated by run() and freed by the caller
 * with rt_tensor_free().
 *
 * A backend may also run a whole sampling loop itself (`sample`, NULL when
 * it cannot): x stays on the device from x_T to x_0, each step being the
 * forward pass, the step's noise drawn on the device (or taken from a replay
 * tensor uploaded once) and the update of x as a kernel
 * (codegen/sampler_kernel.h).  It computes what sampler_run computes with
 * the backend's run() as the model.
 */
#ifndef DITC_BACKEND_H
#define DITC_BACKEND_H

#include "codegen/pack.h"
#include "codegen/plan.h"
#include "codegen/sampler_kernel.h"
#include "runtime/sampler.h"
#include "runtime/tensor.h"
#include "runtime/weights.h"

/* What prepare() needs; each backend reads its part.  Everything is
 * borrowed and must outlive the backend. */
typedef struct {
  /* ref */
  IrGraph *graph;
  const Weights *weights;
  int64_t batch;
  /* emu, cuda */
  const CgPlan *plan;
  const void *blob;              /* the weights blob, plan->weights_bytes of host memory */
  /* cuda */
  const CgPackCubin *cubins;     /* the plan's CUBIN per architecture */
  int n_cubins;
} RtModel;

/* A whole sampling loop for sample(): what sampler_run gets, with the model
 * being this backend's prepared entry (forward, or forward_with_cfg when cfg
 * is set, whose inputs are x, t, y and cfg_scale).  Everything borrowed. */
typedef struct {
  const Diffusion *diffusion;
  SamplerKind kind;
  double eta;                 /* DDIM */
  int learn_sigma;            /* the model's output has 2C channels */
  int64_t rows;               /* samples; the plan runs 2 * rows with cfg */
  int channels, height, width;
  const int32_t *labels;      /* [rows] */
  int cfg;                    /* rows rows..2rows-1 are the unconditional half */
  int32_t null_label;         /* their label */
  float cfg_scale;
  /* The noise: replay when set - step s's noise for row r is the C*H*W
   * values at (s * replay_rows + r) of [replay_steps, replay_rows, C, H, W] -
   * else normals from rng (its state after x_T was drawn; not advanced here),
   * rows*C*H*W of them per step, the way sampler_noise_rng draws them. */
  const float *replay;
  int64_t replay_rows, replay_steps;
  const RtRng *rng;
  void (*progress)(void *ctx, int done, int total);
  void *progress_ctx;
  /* Step caching (passes/step_cache.c): cache_interval 0 is none; else the
   * steps sampler_cache_full() names run this backend's entry (the full one:
   * it also outputs cache.K, every block's deltas), the others `cached`, a
   * backend of the same kind prepared with the cached entry (inputs x, t, y,
   * cfg_scale and cache.K), which reads the deltas of the last full step,
   * copied on the device.  cached may be NULL when no step is cached. */
  int cache_interval, cache_warmup;
  struct RtBackend *cached;
} RtSampleRequest;

/* What sample() returns when this backend cannot sample on the device after
 * all (err says why): the caller runs sampler_run over run() instead. */
#define RT_SAMPLE_UNSUPPORTED 1

typedef struct RtBackend RtBackend;
struct RtBackend {
  const char *name;
  /* 1 when this backend can run op (the plan-based ones ask the code generator). */
  int (*supports_op)(const RtBackend *b, IrOp op);
  /* Load the model; 0 or -1 with err. */
  int (*prepare)(RtBackend *b, const RtModel *m, IrErr *err);
  /* One forward pass (see the top); 0 or -1 with err. */
  int (*run)(RtBackend *b, const RtTensor *inputs, RtTensor *outputs, IrErr *err);
  void (*free)(RtBackend *b);
  void *impl;
  /* Optional (NULL: use sampler_run over run()).  After prepare(): x is x_T
   * on entry, x_0 on return, [rows, C, H, W] host memory.  0, -1 with err,
   * or RT_SAMPLE_UNSUPPORTED with err. */
  int (*sample)(RtBackend *b, const RtSampleRequest *r, float *x, IrErr *err);
  /* Optional (NULL: not measured): device memory in use by this backend
   * after prepare() and any runs, in bytes; -1 when it cannot be read. */
  int64_t (*device_bytes)(RtBackend *b);
  /* Optional (NULL: not possible, e.g. ref): after a run(), the forward pass
   * once more on that run's inputs, step by step, each step timed on the
   * device (cuda: an event between every two steps, no graph; emu: the host
   * clock around each step).  ms[s] for step s of the plan; *device names
   * what measured.  0 or -1 with err. */
  int (*profile)(RtBackend *b, double *ms, const char **device, IrErr *err);
  /* Optional (NULL: cannot say): after a run() on `inputs` whose outputs
   * held NaN or Inf, the forward pass once more on them, checking what each
   * node (ref) or step (emu, cuda) writes; where gets the first NaN or
   * infinity and what produced it ("node %12 (linear 'blocks.0.attn.qkv'),
   * value inf at flat index 3", "step 7, kernel k3 (%42 softmax ...), ...").
   * 1 when found, 0 when everything was finite this time, -1 with err. */
  int (*locate)(RtBackend *b, const RtTensor *inputs, char *where, size_t n, IrErr *err);
};

/* "ref", "emu" or "cuda".  cuda fails here, with rt_cuda_available()'s
 * reason, when there is no usable GPU. */
RtBackend *rt_backend_new(const char *name, IrErr *err);
RtBackend *rt_backend_ref(void);
RtBackend *rt_backend_emu(void);
RtBackend *rt_backend_cuda(IrErr *err);
static inline void rt_backend_free(RtBackend *b) {
  if (b) b->free(b);
}

/* ---- NaN and Inf ---------------------------------------------------------- */

/* n floats of v finite: 0; else -1 with err "WHAT holds N NaN or infinite
 * values (the first at flat index I, item I / row, V)" (no item for row 0). */
int rt_check_finite(const char *what, const float *v, int64_t n, int64_t row, IrErr *err);
/* x after a sampling step's update (n floats, row per sample) checked with
 * rt_check_finite, the message saying the model's output was finite. */
int rt_check_x(const float *x, int64_t n, int64_t row, IrErr *err);
/* A run()'s F32 outputs (names[k] names output k; names NULL: one output,
 * "the model's output") checked with
 * rt_check_finite; when one is not finite and b can locate the first value
 * that was not (RtBackend.locate, on the same inputs), err says where too.
 * 0 or -1 with err. */
int rt_check_outputs(RtBackend *b, const RtTensor *inputs, const RtTensor *outs, int n_out, const char *const *names,
                     IrErr *err);
/* The bytes [*lo, *hi) of the arena that step st leaves written (plan.h:
 * CgStep.out_offset, a GEMM's D); *lo == *hi when it writes no float value. */
void rt_step_span(const CgStep *st, int64_t *lo, int64_t *hi);
/* The first NaN or infinity among the float values step s of p wrote, read
 * from mem, which holds the arena's bytes from offset mem_at on (the arena
 * itself with 0, or a copy of rt_step_span's bytes with lo): 1 with where
 * saying which step and value, or 0. */
int rt_step_nonfinite(const CgPlan *p, int s, const char *mem, int64_t mem_at, char *where, size_t n);

/* ---- weights of a pack ---------------------------------------------------- */

/* The weights blob for plan `pp`: with spec NULL the pack's own (borrowed:
 * *owned = NULL); with spec ("random[:SEED]" or a checkpoint, bound by name:
 * reference or diffusers naming, PARAM defaults where the file lacks them)
 * a new host blob (*owned = *blob, free() it).  A pack without weights needs
 * a spec.  Returns 0 or -1. */
int rt_pack_weights(const CgPack *p, const CgPackPlan *pp, const char *spec, const void **blob,
                    void **owned, IrErr *err);

/* ---- shared by the plan-based backends ---------------------------------- */

/* Check host tensor t against plan input io (dtype kind and exact shape;
 * the message says which batch the plan was built for) and write it, in
 * io's dtype, to dst. */
int rt_io_put(const CgPlan *p, const CgIo *io, const RtTensor *t, void *dst, IrErr *err);
/* A new host tensor (F32, or I32 for i32 outputs) from io's bytes at src. */
RtTensor rt_io_get(const CgIo *io, const void *src);
/* Bytes of io at its dtype. */
size_t rt_io_bytes(const CgIo *io);
/* The arena offset of the plan's status word (plan.h), or -1 for none; and
 * the word read after a run, as an error (-1) or 0. */
int64_t rt_status_offset(const CgPlan *p);
int rt_status_check(int32_t status, IrErr *err);

/* ---- sampling on a device, shared by emu and cuda ---------------------------- */

/* Where a sampling loop's values live in a plan. */
typedef struct {
  const CgIo *x, *t, *y, *scale;  /* the plan's inputs (scale NULL without cfg) */
  const CgIo *out;                /* its output */
  int64_t rows_in;                /* rows the plan runs (2 * rows with cfg) */
  int64_t img;                    /* C*H*W */
  int64_t n;                      /* rows * img: elements of x */
  CgSamplerTypes types;           /* for cg_sampler_source() */
  int32_t *labels;                /* [rows_in]: what y holds every step (malloc'd) */
  /* step caching: the cached entry's x, t, y, scale and output, and per
   * delta its place in the full entry's outputs and the cached entry's inputs */
  const CgIo *cx, *ct, *cy, *cscale, *cout;
  int n_keep;
  int64_t *keep_from, *keep_to, *keep_bytes;
} RtSampleLayout;

/* Check r against plan p (inputs x, t, y(, cfg_scale) of the right shapes,
 * one output of [rows_in, C or 2C, H, W], a noise source) and fill *l.
 * Returns 0, -1 with err for a bad request, or RT_SAMPLE_UNSUPPORTED when
 * the plan is not a DiT entry the sampler kernels can drive. */
int rt_sample_layout(const CgPlan *p, const RtSampleRequest *r, RtSampleLayout *l, IrErr *err);
/* With step caching (r->cached set): also the cached entry's plan c, whose
 * cache.K inputs must match p's cache.K outputs one for one. */
int rt_sample_layout_cached(const CgPlan *p, const CgPlan *c, const RtSampleRequest *r, RtSampleLayout *l,
                            IrErr *err);
void rt_sample_layout_free(RtSampleLayout *l);

/* The noise a step's update adds. */
typedef enum {
  RT_NOISE_NONE,    /* no noise term (DDIM with eta 0, and the last step) */
  RT_NOISE_RNG,     /* the buffer normal() just filled */
  RT_NOISE_REPLAY,  /* the replay tensor at element offset replay_at */
} RtNoiseKind;

/* A backend's launches for rt_sample_loop; each returns 0 or -1 with err. */
/* `cached` is 1 on a step that runs the cached entry (step caching), else 0. */
typedef struct {
  /* ditc_sampler_inputs with t = k->t, into that entry's inputs */
  int (*inputs)(void *ctx, const SamplerStep *k, int cached, IrErr *err);
  /* that entry's forward pass */
  int (*forward)(void *ctx, int cached, IrErr *err);
  /* ditc_sampler_normal: the noise buffer from Philox block `counter` on */
  int (*normal)(void *ctx, uint64_t counter, IrErr *err);
  /* ditc_sampler_step with k's coefficients, over that entry's output */
  int (*update)(void *ctx, const SamplerStep *k, int cached, RtNoiseKind noise, int64_t replay_at, IrErr *err);
  /* Optional (NULL: not checked): after a full step's forward, -1 with err when
   * the model's output holds NaN or Inf (saying where it first appeared), else 0 */
  int (*check)(void *ctx, const SamplerStep *k, IrErr *err);
  /* Optional (NULL: not checked): after update, -1 with err (rt_check_x)
   * when x holds NaN or Inf, else 0 */
  int (*check_x)(void *ctx, IrErr *err);
  /* step caching: after a full step, copy the l->n_keep deltas (device to device) */
  int (*keep)(void *ctx, IrErr *err);
} RtSampleOps;

/* The loop of sampler_run, steps i = S-1 .. 0, as launches: inputs, forward,
 * normal (when the step adds noise from the rng), update; then progress.
 * Errors name the step as sampler_run's do. */
int rt_sample_loop(const RtSampleRequest *r, const RtSampleLayout *l, const RtSampleOps *ops, void *ctx,
                   IrErr *err);

#endif
