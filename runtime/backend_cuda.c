/*
 * backend_cuda.c - the CUDA backend: runs a CgPlan's CUBIN on a GPU.
 *
 * prepare(): open device 0 (its primary context), pick the plan's CUBIN for
 * the device (cg_pack_pick_cubin: exact sm_XY, else the highest lower one of
 * the same major), load it, look up every kernel, raise the dynamic shared
 * memory limit of kernels that need more than the default 48 KiB, allocate
 * one arena and the weights with cuMemAlloc, upload the weights once, create
 * a stream, and describe every GEMM step once as a cuBLASLt plan.
 *
 * run(): inputs are converted on the host into one staging buffer and copied
 * to the arena on the stream; the steps are enqueued in order (kernels with
 * cuLaunchKernel and args {&DitcArgs}, GEMMs with rt_blas_plan_run); outputs
 * and the status word come back on the same stream, then it is synchronised.
 * After the first successful run the step sequence is captured once into a
 * CUDA graph and later runs launch that graph (inputs and outputs stay plain
 * copies around it: the arena addresses never change).  If capturing fails,
 * runs go on launching the steps one by one.
 *
 * Errors name the driver call, the step, its kernel and its IR node
 * (CgStep.what).  Kernel faults are asynchronous; DITC_CUDA_SYNC=1 makes
 * every step synchronise so a fault is reported at the step that caused it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/backend.h"
#include "codegen/emu.h"
#include "codegen/nvrtc.h"
#include "runtime/cuda_api.h"

typedef struct {
  const CgPlan *plan;
  RtCudaDevice dev;
  int dev_open;
  CUmodule mod;
  CUfunction *fn;           /* per kernel */
  CUdeviceptr act, w;
  CUstream stream;
  RtBlas *blas;
  RtBlasPlan **gemm;        /* per step (NULL for kernel steps) */
  char **what;              /* per step: "step 3: kernel k_x (%42 softmax ...)" */
  unsigned char *stage;     /* host staging for inputs and outputs */
  size_t stage_bytes;
  CUgraphExec graph;
  int ran, no_graph, sync_each;
  size_t free_at_open;      /* device memory free once the context was current */
} Cuda;

static int cuda_supports(const RtBackend *b, IrOp op) {
  (void)b;
  return op != IR_OP_COUNT; /* the code generator reports what it cannot lower, by node */
}

static void cuda_release(Cuda *c) {
  if (!c) return;
  const CgPlan *p = c->plan;
  if (c->graph) rt_cu.GraphExecDestroy(c->graph);
  for (int s = 0; c->gemm && s < p->n_steps; s++) rt_blas_plan_free(c->gemm[s]);
  rt_blas_free(c->blas);
  if (c->stream) rt_cu.StreamDestroy(c->stream);
  if (c->act) rt_cu.MemFree(c->act);
  if (c->w) rt_cu.MemFree(c->w);
  if (c->mod) rt_cu.ModuleUnload(c->mod);
  if (c->dev_open) rt_cuda_device_close(&c->dev);
  for (int s = 0; c->what && s < p->n_steps; s++) free(c->what[s]);
  free(c->what);
  free(c->gemm);
  free(c->fn);
  free(c->stage);
  free(c);
}

static RtBlasEpilogue epilogue_of(CgEpilogue e) {
  switch (e) {
  case CG_EPI_NONE: return RT_BLAS_EPI_NONE;
  case CG_EPI_BIAS: return RT_BLAS_EPI_BIAS;
  case CG_EPI_GELU_TANH_BIAS: return RT_BLAS_EPI_GELU_TANH_BIAS;
  }
  ditc_unreachable();
}

/* The largest power of two (<= 256) dividing every operand's offset: the
 * pointer alignment cuBLASLt may assume (cuMemAlloc gives 256). */
static unsigned gemm_align(const CgGemm *g) {
  int64_t offs[4] = {g->a.offset, g->b.offset, g->d.offset, g->epilogue != CG_EPI_NONE ? g->bias.offset : 0};
  unsigned a = 256;
  for (int i = 0; i < 4; i++)
    while (a > 1 && offs[i] % a) a /= 2;
  return a;
}

static int cuda_prepare(RtBackend *b, const RtModel *m, IrErr *err) {
  const CgPlan *p = m->plan;
  if (!p) return ir_errf(err, "the cuda backend runs an execution plan");
  if (p->weights_bytes && !m->blob) return ir_errf(err, "cuda backend: the plan needs a weights blob");
  cuda_release(b->impl);
  b->impl = NULL;
  Cuda *c = xcalloc(1, sizeof *c);
  c->plan = p;
  const char *sync = getenv("DITC_CUDA_SYNC");
  c->sync_each = sync && *sync && strcmp(sync, "0");
  if (rt_cuda_device_open(0, &c->dev, err)) goto fail;
  c->dev_open = 1;
  size_t total;
  if (RT_CU(err, "measuring free device memory", MemGetInfo, &c->free_at_open, &total)) goto fail;

  CgPackPlan pp = {.plan = (CgPlan *)p, .cubins = (CgPackCubin *)m->cubins, .n_cubins = m->n_cubins};
  const CgPackCubin *cub = cg_pack_pick_cubin(&pp, c->dev.cc_major, c->dev.cc_minor, err);
  if (!cub) goto fail;
  char what[256];
  snprintf(what, sizeof what, "plan %s, CUBIN %s", p->entry, cub->arch);
  if (rt_cuda_module_load(cub->image, what, &c->mod, err)) goto fail;

  c->fn = xcalloc((size_t)p->n_kernels + 1, sizeof *c->fn);
  for (int k = 0; k < p->n_kernels; k++) {
    snprintf(what, sizeof what, "kernel %s (%s)", p->kernels[k].name, p->kernels[k].nodes);
    if (RT_CU(err, what, ModuleGetFunction, &c->fn[k], c->mod, p->kernels[k].name)) goto fail;
  }
  c->what = xcalloc((size_t)p->n_steps + 1, sizeof *c->what);
  uint32_t *smem = xcalloc((size_t)p->n_kernels + 1, sizeof *smem);
  for (int s = 0; s < p->n_steps; s++) {
    const CgStep *st = &p->steps[s];
    char buf[512];
    if (st->kind == CG_STEP_KERNEL) {
      snprintf(buf, sizeof buf, "step %d: kernel %s (%s)", s, p->kernels[st->kernel].name, st->what);
      if (st->shared_bytes > smem[st->kernel]) smem[st->kernel] = st->shared_bytes;
    } else {
      snprintf(buf, sizeof buf, "step %d: GEMM (%s)", s, st->what);
    }
    c->what[s] = xstrdup(buf);
  }
  for (int k = 0; k < p->n_kernels; k++) {
    if (smem[k] <= 48 * 1024) continue;
    if ((int)smem[k] > c->dev.smem_optin) {
      ir_errf(err, "kernel %s needs %u bytes of shared memory; %s allows %d", p->kernels[k].name, smem[k],
              c->dev.name, c->dev.smem_optin);
      free(smem);
      goto fail;
    }
    if (RT_CU(err, p->kernels[k].name, FuncSetAttribute, c->fn[k], RT_CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
              (int)smem[k])) {
      free(smem);
      goto fail;
    }
  }
  free(smem);

  if (RT_CU(err, "activation arena", MemAlloc, &c->act, (size_t)(p->arena_bytes ? p->arena_bytes : 1)) ||
      RT_CU(err, "weights", MemAlloc, &c->w, (size_t)(p->weights_bytes ? p->weights_bytes : 1)) ||
      (p->weights_bytes && RT_CU(err, "weights upload", MemcpyHtoD, c->w, m->blob, (size_t)p->weights_bytes)) ||
      RT_CU(err, NULL, StreamCreate, &c->stream, RT_CU_STREAM_NON_BLOCKING))
    goto fail;

  c->gemm = xcalloc((size_t)p->n_steps + 1, sizeof *c->gemm);
  for (int s = 0; s < p->n_steps; s++) {
    const CgStep *st = &p->steps[s];
    if (st->kind != CG_STEP_GEMM) continue;
    if (!c->blas && (rt_blas_load(err) || rt_blas_init(&c->blas, err))) goto fail;
    const CgGemm *g = &st->gemm;
    RtBlasMatmulDesc d = {
        .dtype = g->dtype, .m = g->m, .n = g->n, .k = g->k, .trans_a = g->trans_a, .trans_b = g->trans_b,
        .lda = g->lda, .ldb = g->ldb, .ldd = g->ldd, .batch = g->batch, .stride_a = g->stride_a,
        .stride_b = g->stride_b, .stride_d = g->stride_d, .epilogue = epilogue_of(g->epilogue),
        .align = gemm_align(g), .d_f32 = g->dtype != IR_I8 && g->d_dtype != g->dtype,
    };
    if (g->dtype != IR_I8 && g->d_dtype != g->dtype && g->d_dtype != IR_F32) {
      ir_errf(err, "%s: %s operands with a %s result", c->what[s], ir_dtype_name(g->dtype), ir_dtype_name(g->d_dtype));
      goto fail;
    }
    if (rt_blas_plan_new(c->blas, &d, c->what[s], &c->gemm[s], err)) goto fail;
  }

  c->stage_bytes = 4;
  for (int i = 0; i < p->n_inputs; i++) c->stage_bytes += rt_io_bytes(&p->inputs[i]);
  for (int i = 0; i < p->n_outputs; i++) c->stage_bytes += rt_io_bytes(&p->outputs[i]);
  c->stage = xmalloc(c->stage_bytes);
  b->impl = c;
  return 0;
fail:
  cuda_release(c);
  return -1;
}

static CUdeviceptr at(const Cuda *c, CgRef r) { return (r.space == CG_SPACE_ACT ? c->act : c->w) + (CUdeviceptr)r.offset; }

/* Enqueue step s on the stream (also while capturing). */
static int enqueue_step(Cuda *c, int s, IrErr *err) {
  DitcArgs args = {.act = (char *)(uintptr_t)c->act, .w = (const char *)(uintptr_t)c->w};
  void *argv[] = {&args};
  const CgStep *st = &c->plan->steps[s];
  if (st->kind == CG_STEP_KERNEL) {
    cg_step_args(st, &args); /* cuLaunchKernel copies them (and a capture keeps its copy) */
    if (RT_CU(err, c->what[s], LaunchKernel, c->fn[st->kernel], st->grid[0], st->grid[1], st->grid[2],
              st->block[0], st->block[1], st->block[2], st->shared_bytes, c->stream, argv, NULL))
      return -1;
  } else {
    const CgGemm *g = &st->gemm;
    if (rt_blas_plan_run(c->blas, c->gemm[s], g->alpha, at(c, g->a), at(c, g->b), 0.0f, 0, at(c, g->d),
                         g->epilogue != CG_EPI_NONE ? at(c, g->bias) : 0, c->stream, c->what[s], err))
      return -1;
  }
  if (c->sync_each && RT_CU(err, c->what[s], StreamSynchronize, c->stream)) return -1;
  return 0;
}

/* Enqueue every step on the stream (also while capturing). */
static int enqueue(Cuda *c, IrErr *err) {
  for (int s = 0; s < c->plan->n_steps; s++)
    if (enqueue_step(c, s, err)) return -1;
  return 0;
}

/* backend.h: locate, the steps from the arena as it stands (the inputs
 * written), each step's result copied back and checked once it is made. */
static int cuda_locate_steps(Cuda *c, char *where, size_t n, IrErr *err) {
  char *buf = NULL;
  size_t cap = 0;
  int rc = 0;
  for (int s = 0; s < c->plan->n_steps && !rc; s++) {
    int64_t lo, hi;
    rt_step_span(&c->plan->steps[s], &lo, &hi);
    if (enqueue_step(c, s, err)) rc = -1;
    if (rc || hi <= lo) continue;
    if ((size_t)(hi - lo) > cap) buf = xrealloc(buf, cap = (size_t)(hi - lo));
    if (RT_CU(err, c->what[s], MemcpyDtoHAsync, buf, c->act + (CUdeviceptr)lo, (size_t)(hi - lo), c->stream) ||
        RT_CU(err, c->what[s], StreamSynchronize, c->stream))
      rc = -1;
    else if (rt_step_nonfinite(c->plan, s, buf, lo, where, n))
      rc = 1;
  }
  free(buf);
  return rc;
}

/* Only under DITC_CUDA_SYNC=1, where every step synchronises anyway. */
static int cuda_locate(RtBackend *b, const RtTensor *in, char *where, size_t n, IrErr *err) {
  Cuda *c = b->impl;
  if (!c) return ir_errf(err, "cuda backend: locate before prepare");
  if (!c->sync_each) return ir_errf(err, "DITC_CUDA_SYNC=1 checks every step and names the first");
  const CgPlan *p = c->plan;
  if (rt_cuda_device_bind(&c->dev, err)) return -1;
  for (int i = 0; i < p->n_inputs; i++) {
    const CgIo *io = &p->inputs[i];
    if (rt_io_put(p, io, &in[i], c->stage, err) ||
        RT_CU(err, io->name, MemcpyHtoDAsync, c->act + (CUdeviceptr)io->offset, c->stage, rt_io_bytes(io), c->stream) ||
        RT_CU(err, io->name, StreamSynchronize, c->stream))
      return -1;
  }
  return cuda_locate_steps(c, where, n, err);
}

/* backend.h: profile.  Events e[0..n]: e[s] before step s, e[n] after the
 * last; one synchronisation at the end, so the steps run back to back as in
 * a forward pass (without the graph's launch savings). */
static int cuda_profile(RtBackend *b, double *ms, const char **device, IrErr *err) {
  Cuda *c = b->impl;
  if (!c || !c->ran) return ir_errf(err, "cuda backend: profile before a run");
  if (rt_cuda_device_bind(&c->dev, err)) return -1;
  int n = c->plan->n_steps, made = 0, rc = -1;
  CUevent *ev = xcalloc((size_t)n + 1, sizeof *ev);
  for (; made <= n; made++)
    if (RT_CU(err, "profile event", EventCreate, &ev[made], 0)) goto done;
  if (RT_CU(err, "profile event", EventRecord, ev[0], c->stream)) goto done;
  for (int s = 0; s < n; s++)
    if (enqueue_step(c, s, err) || RT_CU(err, c->what[s], EventRecord, ev[s + 1], c->stream)) goto done;
  if (RT_CU(err, "profiled forward pass", EventSynchronize, ev[n])) goto done;
  for (int s = 0; s < n; s++) {
    float f = 0;
    if (RT_CU(err, c->what[s], EventElapsedTime, &f, ev[s], ev[s + 1])) goto done;
    ms[s] = f;
  }
  *device = c->dev.name;
  rc = 0;
done:
  for (int i = 0; i < made; i++) rt_cu.EventDestroy(ev[i]);
  free(ev);
  return rc;
}

static int cuda_run(RtBackend *b, const RtTensor *in, RtTensor *out, IrErr *err) {
  Cuda *c = b->impl;
  if (!c) return ir_errf(err, "cuda backend: run before prepare");
  const CgPlan *p = c->plan;
  if (rt_cuda_device_bind(&c->dev, err)) return -1;
  size_t off = 0;
  for (int i = 0; i < p->n_inputs; i++) {
    const CgIo *io = &p->inputs[i];
    if (rt_io_put(p, io, &in[i], c->stage + off, err) ||
        RT_CU(err, io->name, MemcpyHtoDAsync, c->act + (CUdeviceptr)io->offset, c->stage + off, rt_io_bytes(io),
              c->stream))
      return -1;
    off += rt_io_bytes(io);
  }
  if (c->graph) {
    if (RT_CU(err, "forward graph", GraphLaunch, c->graph, c->stream)) return -1;
  } else if (enqueue(c, err)) {
    return -1;
  }
  size_t out_at = off;
  for (int i = 0; i < p->n_outputs; i++) {
    const CgIo *io = &p->outputs[i];
    if (RT_CU(err, io->name, MemcpyDtoHAsync, c->stage + off, c->act + (CUdeviceptr)io->offset, rt_io_bytes(io),
              c->stream))
      return -1;
    off += rt_io_bytes(io);
  }
  int32_t status = 0;
  int64_t so = rt_status_offset(p);
  if (so >= 0 && RT_CU(err, "status word", MemcpyDtoHAsync, &status, c->act + (CUdeviceptr)so, 4, c->stream))
    return -1;
  if (RT_CU(err, c->graph ? "forward graph" : "forward pass", StreamSynchronize, c->stream)) return -1;
  if (rt_status_check(status, err)) return -1;
  for (int i = 0; i < p->n_outputs; i++) {
    out[i] = rt_io_get(&p->outputs[i], c->stage + out_at);
    out_at += rt_io_bytes(&p->outputs[i]);
  }
  /* the steps worked once: capture them for the runs to come */
  if (!c->ran++ && !c->graph && !c->no_graph && !c->sync_each) {
    IrErr why;
    CUgraphExec g = NULL;
    c->no_graph = 1;
    if (!rt_cuda_capture_begin(c->stream, &why)) {
      int bad = enqueue(c, &why);
      bad |= rt_cuda_capture_end(c->stream, &g, &why); /* always ends the capture */
      if (!bad && g) {
        c->graph = g;
        c->no_graph = 0;
      } else if (g) {
        rt_cu.GraphExecDestroy(g);
      }
    }
  }
  return 0;
}

/* ---- sampling: the loop of rt_sample_loop on the GPU ------------------------- */
/*
 * sample() keeps x on the device from x_T to x_0.  The sampler kernels
 * (codegen/sampler_kernel.h) are not part of a pack: they are compiled here
 * for this GPU with NVRTC through the kernel cache (a hit after the first
 * time) and loaded for the call; without NVRTC it returns
 * RT_SAMPLE_UNSUPPORTED and the caller samples over run().  Per step, on the
 * one stream: the inputs kernel, the forward pass (the captured graph; the
 * first forward is the warm-up after which it is captured, as in run()), the
 * normal kernel when the step draws noise, the update kernel.  A replayed
 * noise tensor is uploaded once.  The plan's status word is ORed into a
 * sticky word by the update kernel and read once at the end, with x.
 */

typedef struct {
  Cuda *c;
  Cuda *cc;                 /* step caching: the cached entry (NULL: none), run on c's stream */
  const RtSampleLayout *l;
  const RtSampleRequest *r;
  CUmodule mod;
  CUfunction k_inputs, k_step, k_normal;
  CUdeviceptr x, noise, replay, labels, sticky;
} CudaSample;

static void *dptr(CUdeviceptr p) { return (void *)(uintptr_t)p; }

/* Compile (or fetch from the cache) and load the sampler kernels for this
 * GPU.  0, -1 with err, or RT_SAMPLE_UNSUPPORTED when there is no NVRTC (or
 * it cannot target this GPU). */
static int sampler_module(CudaSample *s, IrErr *err) {
  char arch[16], inc[1100] = "", *src = NULL;
  snprintf(arch, sizeof arch, "sm_%d%d", s->c->dev.cc_major, s->c->dev.cc_minor);
  CgNvrtc *nv = cg_nvrtc_open(NULL, err);
  if (!nv) return RT_SAMPLE_UNSUPPORTED;
  CgCache *cache = NULL;
  unsigned char *cubin = NULL;
  size_t size = 0;
  int rc = RT_SAMPLE_UNSUPPORTED, hit = 0;
  if (cg_nvrtc_check_arch(nv, arch, err) || !(cache = cg_cache_open(NULL, err))) goto out;
  rc = -1;
  char *body = cg_sampler_source(&s->l->types, err);
  if (!body) goto out;
  const char *prelude = emu_cuda_prelude_text();
  size_t n = strlen(prelude) + strlen(body) + 64;
  src = xmalloc(n);
  snprintf(src, n, "%s\n#line 1 \"ditc_sampler.cu\"\n%s", prelude, body);
  free(body);
  const char *home = getenv("CUDA_HOME");
  snprintf(inc, sizeof inc, "-I%s/include", home && *home ? home : "/usr/local/cuda");
  const char *opts[1] = {inc};
  CgCacheRequest rq = {.source = src, .name = "ditc_sampler.cu", .arch = arch, .options = opts,
                       .n_options = access(inc + 2, R_OK) == 0 ? 1 : 0,
                       .compiler_version = cg_nvrtc_version_string(nv),
                       .codegen_version = CG_CODEGEN_VERSION "/sampler"};
  CgNvrtcCacheCtx ctx = {nv, NULL};
  if (cg_cache_get_or_compile(cache, &rq, cg_nvrtc_cache_compile, &ctx, &cubin, &size, &hit, err) ||
      rt_cuda_module_load(cubin, "sampler kernels", &s->mod, err) ||
      RT_CU(err, CG_SAMPLER_KERNEL_INPUTS, ModuleGetFunction, &s->k_inputs, s->mod, CG_SAMPLER_KERNEL_INPUTS) ||
      RT_CU(err, CG_SAMPLER_KERNEL_STEP, ModuleGetFunction, &s->k_step, s->mod, CG_SAMPLER_KERNEL_STEP) ||
      RT_CU(err, CG_SAMPLER_KERNEL_NORMAL, ModuleGetFunction, &s->k_normal, s->mod, CG_SAMPLER_KERNEL_NORMAL))
    goto out;
  rc = 0;
out:
  free(cubin);
  free(src);
  cg_cache_close(cache);
  cg_nvrtc_close(nv);
  return rc;
}

static int cs_launch(CudaSample *s, CUfunction f, const char *what, int64_t threads, void *params, IrErr *err) {
  void *argv[] = {params};
  unsigned grid = (unsigned)((threads + CG_SAMPLER_BLOCK - 1) / CG_SAMPLER_BLOCK);
  if (RT_CU(err, what, LaunchKernel, f, grid, 1, 1, CG_SAMPLER_BLOCK, 1, 1, 0, s->c->stream, argv, NULL)) return -1;
  return s->c->sync_each ? RT_CU(err, what, StreamSynchronize, s->c->stream) : 0;
}

static int cs_inputs(void *ctx, const SamplerStep *k, int cached, IrErr *err) {
  CudaSample *s = ctx;
  const RtSampleLayout *l = s->l;
  CUdeviceptr act = cached ? s->cc->act : s->c->act;
  const CgIo *x = cached ? l->cx : l->x, *t = cached ? l->ct : l->t, *y = cached ? l->cy : l->y;
  const CgIo *sc = cached ? l->cscale : l->scale;
  CgSamplerInputsParams p = {
      .x_in = dptr(act + (CUdeviceptr)x->offset), .t_in = dptr(act + (CUdeviceptr)t->offset),
      .y_in = dptr(act + (CUdeviceptr)y->offset),
      .s_in = sc ? dptr(act + (CUdeviceptr)sc->offset) : NULL, .x = dptr(s->x),
      .labels = dptr(s->labels), .t = (float)k->t, .cfg_scale = s->r->cfg_scale, .rows = s->r->rows,
      .rows_in = l->rows_in, .img = l->img,
  };
  return cs_launch(s, s->k_inputs, CG_SAMPLER_KERNEL_INPUTS, l->rows_in * l->img, &p, err);
}

/* The forward pass: the graph once there is one; else the steps, and after
 * the first time (the warm-up) the capture, as run() does it. */
static int cs_forward(void *ctx, int cached, IrErr *err) {
  Cuda *c = cached ? ((CudaSample *)ctx)->cc : ((CudaSample *)ctx)->c;
  if (c->graph) return RT_CU(err, "forward graph", GraphLaunch, c->graph, c->stream);
  if (enqueue(c, err)) return -1;
  if (c->ran++ || c->no_graph || c->sync_each) return 0;
  if (RT_CU(err, "forward pass", StreamSynchronize, c->stream)) return -1;
  IrErr why;
  CUgraphExec g = NULL;
  c->no_graph = 1;
  if (!rt_cuda_capture_begin(c->stream, &why)) {
    int bad = enqueue(c, &why);
    bad |= rt_cuda_capture_end(c->stream, &g, &why);
    if (!bad && g) {
      c->graph = g;
      c->no_graph = 0;
    } else if (g) {
      rt_cu.GraphExecDestroy(g);
    }
  }
  return 0;
}

static int cs_normal(void *ctx, uint64_t counter, IrErr *err) {
  CudaSample *s = ctx;
  const RtRng *g = s->r->rng;
  CgSamplerNormalParams p = {.out = dptr(s->noise), .n = s->l->n, .counter = counter,
                             .key_lo = (uint32_t)g->seed, .key_hi = (uint32_t)(g->seed >> 32)};
  return cs_launch(s, s->k_normal, CG_SAMPLER_KERNEL_NORMAL, (s->l->n + 3) / 4, &p, err);
}

/* step caching: the deltas from the full entry's arena to the cached one's */
static int cs_keep(void *ctx, IrErr *err) {
  CudaSample *s = ctx;
  const RtSampleLayout *l = s->l;
  for (int k = 0; k < l->n_keep; k++)
    if (RT_CU(err, "kept deltas", MemcpyDtoDAsync, s->cc->act + (CUdeviceptr)l->keep_to[k],
              s->c->act + (CUdeviceptr)l->keep_from[k], (size_t)l->keep_bytes[k], s->c->stream))
      return -1;
  return 0;
}

static int cs_update(void *ctx, const SamplerStep *k, int cached, RtNoiseKind nk, int64_t replay_at, IrErr *err) {
  CudaSample *s = ctx;
  const RtSampleLayout *l = s->l;
  Cuda *e = cached ? s->cc : s->c;
  int64_t so = rt_status_offset(e->plan);
  CUdeviceptr noise = nk == RT_NOISE_RNG ? s->noise
                      : nk == RT_NOISE_REPLAY ? s->replay + (CUdeviceptr)replay_at * sizeof(float) : 0;
  CgSamplerStepParams p = {
      .x = dptr(s->x), .model_out = dptr(e->act + (CUdeviceptr)(cached ? l->cout : l->out)->offset),
      .noise = dptr(noise), .status = so >= 0 ? dptr(e->act + (CUdeviceptr)so) : NULL, .sticky = dptr(s->sticky),
      .n = l->n, .chw = l->img, .hw = (int64_t)s->r->height * s->r->width,
      .sr = k->sr, .srm1 = k->srm1, .coef1 = k->coef1, .coef2 = k->coef2, .max_log = k->max_log,
      .min_log = k->min_log, .fixed_log = k->fixed_log, .sigma = k->sigma, .sqrt_ab_prev = k->sqrt_ab_prev,
      .dir_coef = k->dir_coef, .ddpm = s->r->kind == SAMPLER_DDPM, .learn_sigma = s->r->learn_sigma,
      .add_noise = nk != RT_NOISE_NONE,
  };
  return cs_launch(s, s->k_step, CG_SAMPLER_KERNEL_STEP, l->n, &p, err);
}

/* Under DITC_CUDA_SYNC=1: the model's output copied back after every
 * forward pass; NaN or Inf is an error saying which step first made one
 * (the step's inputs again, then step by step). */
static int cs_check(void *ctx, const SamplerStep *k, IrErr *err) {
  CudaSample *s = ctx;
  const RtSampleLayout *l = s->l;
  Cuda *c = s->c;
  if (!c->sync_each) return 0;
  if (RT_CU(err, l->out->name, MemcpyDtoHAsync, c->stage, c->act + (CUdeviceptr)l->out->offset, rt_io_bytes(l->out),
            c->stream) ||
      RT_CU(err, l->out->name, StreamSynchronize, c->stream))
    return -1;
  RtTensor out = rt_io_get(l->out, c->stage);
  int bad = rt_check_finite("the model's output (cuda backend)", out.data, rt_numel(&out), rt_numel(&out) / l->rows_in, err);
  rt_tensor_free(&out);
  if (!bad) return 0;
  char where[400];
  IrErr lerr;
  int found = cs_inputs(ctx, k, 0, &lerr) ? -1 : cuda_locate_steps(c, where, sizeof where, &lerr);
  size_t used = strlen(err->msg);
  if (found == 1) snprintf(err->msg + used, sizeof err->msg - used, "; the first to appear: %s", where);
  return -1;
}

/* Under DITC_CUDA_SYNC=1: x copied back after every update and checked. */
static int cs_check_x(void *ctx, IrErr *err) {
  CudaSample *s = ctx;
  if (!s->c->sync_each) return 0;
  size_t xb = (size_t)s->l->n * sizeof(float);
  float *x = xmalloc(xb);
  int rc = RT_CU(err, "sampler x", MemcpyDtoHAsync, x, s->x, xb, s->c->stream) ||
                   RT_CU(err, "sampler x", StreamSynchronize, s->c->stream)
               ? -1
               : rt_check_x(x, s->l->n, s->l->img, err);
  free(x);
  return rc;
}

static int cuda_sample(RtBackend *b, const RtSampleRequest *r, float *x, IrErr *err) {
  Cuda *c = b->impl;
  if (!c) return ir_errf(err, "cuda backend: sample before prepare");
  RtSampleLayout l;
  Cuda *cc = NULL;
  if (r->cached && (strcmp(r->cached->name, b->name) || !(cc = r->cached->impl)))
    return ir_errf(err, "cuda backend: step caching's cached entry is not a prepared cuda backend");
  int rc = cc ? rt_sample_layout_cached(c->plan, cc->plan, r, &l, err) : rt_sample_layout(c->plan, r, &l, err);
  if (rc) return rc;
  CudaSample s = {.c = c, .cc = cc, .l = &l, .r = r};
  if (rt_cuda_device_bind(&c->dev, err)) {
    rt_sample_layout_free(&l);
    return -1;
  }
  /* one stream for the whole loop: the cached entry's launches go on c's */
  CUstream own = cc ? cc->stream : NULL;
  if (cc) cc->stream = c->stream;
  if ((rc = sampler_module(&s, err))) goto out;
  rc = -1;
  size_t xb = (size_t)l.n * sizeof(float), lb = (size_t)l.rows_in * sizeof(int32_t);
  size_t rb = r->replay ? (size_t)(r->replay_steps * r->replay_rows * l.img) * sizeof(float) : 0;
  if (RT_CU(err, "sampler x", MemAlloc, &s.x, xb) || RT_CU(err, "sampler noise", MemAlloc, &s.noise, xb) ||
      RT_CU(err, "sampler labels", MemAlloc, &s.labels, lb) || RT_CU(err, "sampler status", MemAlloc, &s.sticky, 4) ||
      (rb && RT_CU(err, "replayed noise", MemAlloc, &s.replay, rb)) ||
      RT_CU(err, "x_T upload", MemcpyHtoDAsync, s.x, x, xb, c->stream) ||
      RT_CU(err, "labels upload", MemcpyHtoDAsync, s.labels, l.labels, lb, c->stream) ||
      (rb && RT_CU(err, "replayed noise upload", MemcpyHtoDAsync, s.replay, r->replay, rb, c->stream)) ||
      RT_CU(err, "sampler status", MemsetD32Async, s.sticky, 0, 1, c->stream))
    goto out;
  RtSampleOps ops = {cs_inputs, cs_forward, cs_normal, cs_update, cs_check, cs_check_x, cs_keep};
  int32_t status = 0;
  if (rt_sample_loop(r, &l, &ops, &s, err) || RT_CU(err, "x_0", MemcpyDtoHAsync, x, s.x, xb, c->stream) ||
      RT_CU(err, "sampler status", MemcpyDtoHAsync, &status, s.sticky, 4, c->stream) ||
      RT_CU(err, "sampling loop", StreamSynchronize, c->stream) || rt_status_check(status, err))
    goto out;
  rc = 0;
out:
  if (rc) rt_cu.StreamSynchronize(c->stream); /* nothing may still use the buffers */
  CUdeviceptr bufs[] = {s.x, s.noise, s.replay, s.labels, s.sticky};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
    if (bufs[i]) rt_cu.MemFree(bufs[i]);
  if (s.mod) rt_cu.ModuleUnload(s.mod);
  if (cc) cc->stream = own;
  rt_sample_layout_free(&l);
  return rc;
}

static void cuda_free(RtBackend *b) {
  cuda_release(b->impl);
  free(b);
}

/* Device memory taken since prepare() made the context current: the arena,
 * the weights, cuBLASLt's workspace, the CUDA graph and the module, all of
 * which stay allocated, so after a run this is the peak.  (Other processes'
 * allocations in between would count too.) */
static int64_t cuda_device_bytes(RtBackend *b) {
  Cuda *c = b->impl;
  size_t free_now, total;
  if (!c || rt_cu.MemGetInfo(&free_now, &total) != 0) return -1;
  return c->free_at_open > free_now ? (int64_t)(c->free_at_open - free_now) : 0;
}

RtBackend *rt_backend_cuda(IrErr *err) {
  if (!rt_cuda_available(err)) return NULL;
  RtBackend *b = xcalloc(1, sizeof *b);
  *b = (RtBackend){"cuda", cuda_supports, cuda_prepare, cuda_run, cuda_free, NULL, cuda_sample, cuda_device_bytes,
                   cuda_profile, cuda_locate};
  return b;
}
