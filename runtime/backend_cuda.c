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
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cuda_api.h"

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
        .align = gemm_align(g), .d_f32 = g->d_dtype != g->dtype,
    };
    if (g->d_dtype != g->dtype && g->d_dtype != IR_F32) {
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

/* Enqueue every step on the stream (also while capturing). */
static int enqueue(Cuda *c, IrErr *err) {
  const CgPlan *p = c->plan;
  DitcArgs args = {(char *)(uintptr_t)c->act, (const char *)(uintptr_t)c->w};
  void *argv[] = {&args};
  for (int s = 0; s < p->n_steps; s++) {
    const CgStep *st = &p->steps[s];
    if (st->kind == CG_STEP_KERNEL) {
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
  }
  return 0;
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

static void cuda_free(RtBackend *b) {
  cuda_release(b->impl);
  free(b);
}

RtBackend *rt_backend_cuda(IrErr *err) {
  if (!rt_cuda_available(err)) return NULL;
  RtBackend *b = xcalloc(1, sizeof *b);
  *b = (RtBackend){"cuda", cuda_supports, cuda_prepare, cuda_run, cuda_free, NULL};
  return b;
}
