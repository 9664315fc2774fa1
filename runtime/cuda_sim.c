/*
 * cuda_sim.c - a simulated CUDA driver (DITC_CUDA_SIM=1): the entry points
 * of cuda_api.h's rt_cu table, run against the emulated device.  Device
 * memory is cuda_sim_mem.c, modules and launches cuda_sim_module.c (their
 * shared declarations: cuda_sim_driver.h); this file has the devices, errors,
 * contexts, streams, events, graphs and the operations streams run.
 *
 * The device.  One GPU of the architecture DITC_CUDA_SIM_ARCH names (default
 * sm_90; sm_75, sm_80, sm_86, sm_89, sm_90, sm_100, sm_120), reporting the
 * compute capability, SM count, shared memory limits and memory size of the
 * GPU in the table below.  Its primary context is the only context.
 *
 * Memory.  Device memory is host memory inside one reserved address range
 * (256 GiB of PROT_NONE address space): every cuMemAlloc maps fresh pages
 * there, places the block at the end of them (256-byte aligned, as cuMemAlloc
 * promises) with an unmapped guard page after, and fills it with 0xff bytes
 * (NaN in every float type), since a GPU's fresh memory holds whatever was
 * there.  cuMemFree unmaps the pages again and addresses are never reused, so
 * a stale pointer is always recognised for what it is.  A registry of every
 * allocation, live or freed, checks each device pointer a call receives:
 * copies and sets (the whole range, else CUDA_ERROR_INVALID_VALUE), kernel
 * parameters (each pointer of the parameter struct, found from the kernel's
 * source by cuda_sim_params.c, must be NULL or lie in a live allocation, else
 * CUDA_ERROR_ILLEGAL_ADDRESS - a host pointer too - and be aligned to its
 * element type, else CUDA_ERROR_MISALIGNED_ADDRESS; for a struct that could
 * not be read, every 8-byte word whose value lies in the device's address
 * range is taken as a pointer), cuBLASLt's operands (the whole matrix:
 * cuda_sim_blas.c).  cuMemsetD32 wants 4-byte alignment.
 *
 * Modules and launches.  cuModuleLoadDataEx reads the CUBIN (cuda_sim_image.c:
 * architecture, kernels, launch bounds, registers, static shared memory,
 * parameter sizes), refuses one for another architecture
 * (CUDA_ERROR_NO_BINARY_FOR_GPU: it must have the device's major and a minor
 * no higher), looks up the source it was compiled from
 * (codegen/cubin_source.h, by the image's SHA-256; an image nothing noted is
 * refused with CUDA_ERROR_INVALID_IMAGE and the reason in the JIT error log)
 * and compiles that very text for the emulated device (codegen/emu.h), with
 * cuda_prelude.h's include guard defined so the emulator's prelude stands in
 * for it.  cuLaunchKernel checks what a driver checks: grid and block against
 * the device's limits (CUDA_ERROR_INVALID_VALUE), threads per block against
 * the kernel's __launch_bounds__ and what its register count allows in 64K
 * registers (CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES, "too many resources
 * requested for launch"), dynamic shared memory against the kernel's
 * CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES (48 KiB minus its static
 * shared memory until cuFuncSetAttribute raises it, at most the
 * architecture's opt-in limit: CUDA_ERROR_INVALID_VALUE).  It copies the
 * parameters (their sizes come from the CUBIN) and runs the grid on the
 * emulator, synchronously.  A kernel the emulator cannot finish (a barrier
 * deadlock) fails with CUDA_ERROR_LAUNCH_FAILED.
 *
 * Streams, events, graphs.  Work runs when it is enqueued, so streams are in
 * order and synchronising is checking for a fault; events take the host's
 * clock.  A stream being captured records its operations (kernel launches
 * with their parameters, copies, sets, event records, cuBLASLt matmuls)
 * instead; cuGraphLaunch runs them again, and each checks its device
 * pointers anew, so a graph replayed after memory it was captured with was
 * freed fails with CUDA_ERROR_ILLEGAL_ADDRESS.  Synchronising a capturing
 * stream (or the context) is CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED and
 * invalidates the capture (cuStreamEndCapture then says
 * CUDA_ERROR_STREAM_CAPTURE_INVALIDATED), and so are the potentially unsafe
 * calls (cuMemAlloc, cuMemFree, synchronous copies and sets, module loads)
 * while a capture runs in global mode, or in thread-local mode on the same
 * thread; relaxed mode, which ditc captures in, allows them.
 *
 * Faults (illegal addresses, failed launches) are sticky as on a GPU: every
 * later call returns the same error until the primary context is released
 * to zero references, which destroys it with everything it owned.  Each
 * failing call leaves its reason in a per-thread detail
 * (rt_cuda_sim_take_detail), which cuda_api.c's checking macros append to
 * their message.
 *
 * What this cannot show: timing, the hardware's scheduling of blocks and
 * warps (blocks run in parallel on the CPU, a block's threads one after
 * another between barriers), memory-model races, or a stray access inside a
 * kernel beyond its parameters' base pointers (past the end of an allocation
 * it faults the process, as the guard page is unmapped; a SIGSEGV handler
 * says so first).
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codegen/cubin_source.h"
#include "codegen/emu.h"
#include "runtime/cuda_sim_driver.h"

/* ======================================================================== */
/* the simulated GPUs                                                       */
/* ======================================================================== */

static const SimArch ARCHS[] = {
    /* arch   maj min  like                    SMs  smem/block opt-in  smem/SM  threads/SM  memory */
    {"sm_75", 7, 5, "Tesla T4", 40, 65536, 65536, 1024, (size_t)15 << 30},
    {"sm_80", 8, 0, "A100 80GB", 108, 166912, 167936, 2048, (size_t)80 << 30},
    {"sm_86", 8, 6, "A10", 72, 101376, 102400, 1536, (size_t)24 << 30},
    {"sm_89", 8, 9, "L4", 58, 101376, 102400, 1536, (size_t)24 << 30},
    {"sm_90", 9, 0, "H100 SXM", 132, 232448, 233472, 2048, (size_t)80 << 30},
    {"sm_100", 10, 0, "B200", 148, 232448, 233472, 2048, (size_t)180 << 30},
    {"sm_120", 12, 0, "RTX 5090", 170, 101376, 102400, 1536, (size_t)32 << 30},
};
#define N_ARCHS (int)(sizeof ARCHS / sizeof ARCHS[0])

static const SimArch *the_arch;

const SimArch *sim_arch(void) { return the_arch; }

/* ======================================================================== */
/* lock, details, errors                                                    */
/* ======================================================================== */

static pthread_mutex_t sim_mutex = PTHREAD_MUTEX_INITIALIZER;
void sim_lock(void) { pthread_mutex_lock(&sim_mutex); }
void sim_unlock(void) { pthread_mutex_unlock(&sim_mutex); }

static __thread char detail[1024];

void sim_detail_clear(void) { detail[0] = 0; }

static void vdetail(const char *fmt, va_list ap) { vsnprintf(detail, sizeof detail, fmt, ap); }

int sim_fail(int r, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vdetail(fmt, ap);
  va_end(ap);
  return r;
}

const char *rt_cuda_sim_take_detail(char *buf, size_t n) {
  snprintf(buf, n, "%s", detail);
  detail[0] = 0;
  return buf;
}

const char *rt_cuda_sim_path(void) { return "simulated driver (DITC_CUDA_SIM=1)"; }

static const struct {
  int code;
  const char *name, *text;
} ERRORS[] = {
    {0, "CUDA_SUCCESS", "no error"},
    {1, "CUDA_ERROR_INVALID_VALUE", "invalid argument"},
    {2, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory"},
    {3, "CUDA_ERROR_NOT_INITIALIZED", "initialization error"},
    {100, "CUDA_ERROR_NO_DEVICE", "no CUDA-capable device is detected"},
    {101, "CUDA_ERROR_INVALID_DEVICE", "invalid device ordinal"},
    {200, "CUDA_ERROR_INVALID_IMAGE", "device kernel image is invalid"},
    {201, "CUDA_ERROR_INVALID_CONTEXT", "invalid device context"},
    {209, "CUDA_ERROR_NO_BINARY_FOR_GPU", "no kernel image is available for execution on the device"},
    {400, "CUDA_ERROR_INVALID_HANDLE", "invalid resource handle"},
    {401, "CUDA_ERROR_ILLEGAL_STATE", "the operation cannot be performed in the present state"},
    {500, "CUDA_ERROR_NOT_FOUND", "named symbol not found"},
    {700, "CUDA_ERROR_ILLEGAL_ADDRESS", "an illegal memory access was encountered"},
    {701, "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES", "too many resources requested for launch"},
    {716, "CUDA_ERROR_MISALIGNED_ADDRESS", "misaligned address"},
    {719, "CUDA_ERROR_LAUNCH_FAILED", "unspecified launch failure"},
    {801, "CUDA_ERROR_NOT_SUPPORTED", "operation not supported"},
    {900, "CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED", "operation not permitted when stream is capturing"},
    {901, "CUDA_ERROR_STREAM_CAPTURE_INVALIDATED", "operation failed due to a previous error during capture"},
    {999, "CUDA_ERROR_UNKNOWN", "unknown error"},
};

static RtCuResult sim_error_name(RtCuResult r, const char **s) {
  for (size_t i = 0; i < sizeof ERRORS / sizeof ERRORS[0]; i++)
    if (ERRORS[i].code == r) return *s = ERRORS[i].name, RT_CUDA_SUCCESS;
  *s = NULL;
  return RT_CUDA_ERROR_INVALID_VALUE;
}

static RtCuResult sim_error_string(RtCuResult r, const char **s) {
  for (size_t i = 0; i < sizeof ERRORS / sizeof ERRORS[0]; i++)
    if (ERRORS[i].code == r) return *s = ERRORS[i].text, RT_CUDA_SUCCESS;
  *s = NULL;
  return RT_CUDA_ERROR_INVALID_VALUE;
}

/* ======================================================================== */
/* state                                                                    */
/* ======================================================================== */

static int initialised;
static struct CUctx_st primary;
static __thread struct CUctx_st *current;

static struct CUstream_st *streams;
static struct CUevent_st *events;
static struct CUgraph_st *graphs;
static struct CUgraphExec_st *execs;

SIM_LIST_TAKE(stream_take, struct CUstream_st)
SIM_LIST_TAKE(event_take, struct CUevent_st)
SIM_LIST_TAKE(graph_take, struct CUgraph_st)
SIM_LIST_TAKE(exec_take, struct CUgraphExec_st)

int sim_ctx_check(void) {
  if (!initialised) return sim_fail(SIM_ERROR_NOT_INITIALIZED, "cuInit has not been called");
  if (!current || !current->refs)
    return sim_fail(SIM_ERROR_INVALID_CONTEXT, "no current context on this thread (cuCtxSetCurrent)");
  if (current->sticky)
    return sim_fail(current->sticky, "an earlier fault left the context unusable; release the primary context "
                    "to recover");
  return 0;
}

int sim_fault(int r, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vdetail(fmt, ap);
  va_end(ap);
  if (primary.refs && !primary.sticky) primary.sticky = r;
  return r;
}

int sim_make_sticky(int r) {
  if (primary.refs && !primary.sticky) primary.sticky = r;
  return r;
}

/* ======================================================================== */
/* capture bookkeeping                                                      */
/* ======================================================================== */

static const char *mode_name(int m) {
  return m == RT_CU_STREAM_CAPTURE_MODE_GLOBAL ? "global" : m == RT_CU_STREAM_CAPTURE_MODE_THREAD_LOCAL ? "thread-local"
                                                                                                       : "relaxed";
}

/* A potentially unsafe call (one that may synchronise the device) while a
 * capture in global mode runs, or in thread-local mode on this thread:
 * CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED, and the capture is invalidated. */
int sim_capture_forbids(const char *call) {
  for (struct CUstream_st *s = streams; s; s = s->next) {
    if (!s->capturing) continue;
    if (s->mode == RT_CU_STREAM_CAPTURE_MODE_GLOBAL ||
        (s->mode == RT_CU_STREAM_CAPTURE_MODE_THREAD_LOCAL && pthread_equal(s->capture_thread, pthread_self()))) {
      s->invalid = 1;
      return sim_fail(SIM_ERROR_STREAM_CAPTURE_UNSUPPORTED, "%s is not permitted while stream %p is captured in %s "
                      "mode (the capture is invalidated)", call, (void *)s, mode_name(s->mode));
    }
  }
  return 0;
}

/* ======================================================================== */
/* operations                                                               */
/* ======================================================================== */

static struct CUevent_st *event_live(CUevent e);

static int exec_kernel(Op *op, int replay) {
  struct CUfunc_st *f = op->u.k.f;
  if (!sim_func_live(f, op->u.k.serial)) return sim_fail(SIM_ERROR_INVALID_HANDLE, "the kernel's module was unloaded%s",
                                     replay ? " after the graph was captured" : "");
  const char *name = f->k->name;
  const SimParams *ps = &f->params;
  /* The pointers of the parameter struct the source declares; when it could
   * not be read, every pointer-aligned word whose value lies in device memory. */
  int n = ps->known ? ps->n_ptrs : (int)(op->u.k.n / 8);
  for (int i = 0; i < n; i++) {
    size_t off = ps->known ? ps->ptrs[i].offset : 8 * (size_t)i;
    uint64_t w;
    memcpy(&w, op->u.k.params + off, 8);
    if (ps->known ? !w : !sim_in_region(w)) continue;
    char what[300];
    if (ps->known)
      snprintf(what, sizeof what, "kernel %s%s, parameter p.%s", name, replay ? " (graph replay)" : "", ps->ptrs[i].name);
    else
      snprintf(what, sizeof what, "kernel %s%s, parameter bytes %zu-%zu", name, replay ? " (graph replay)" : "", off,
               off + 7);
    int r = sim_range_check(w, 0, ps->known ? ps->ptrs[i].align : 1, what, RT_CUDA_ERROR_ILLEGAL_ADDRESS,
                            SIM_ERROR_MISALIGNED_ADDRESS);
    if (r) {
      if (replay) {
        size_t len = strlen(detail);
        snprintf(detail + len, sizeof detail - len, "; a graph replays the addresses it was captured with");
      }
      return sim_make_sticky(r);
    }
  }
  EmuDim3 grid = {op->u.k.grid[0], op->u.k.grid[1], op->u.k.grid[2]};
  EmuDim3 block = {op->u.k.block[0], op->u.k.block[1], op->u.k.block[2]};
  void *args[] = {op->u.k.params};
  IrErr e;
  if (emu_launch(f->mod->emu, name, grid, block, op->u.k.smem, args, &e))
    return sim_fault(SIM_ERROR_LAUNCH_FAILED, "kernel %s: %s", name, e.msg);
  return 0;
}

static int exec_copy(Op *op, int replay) {
  int bad = replay ? RT_CUDA_ERROR_ILLEGAL_ADDRESS : RT_CUDA_ERROR_INVALID_VALUE;
  const char *w = replay ? "copy (graph replay)" : "copy";
  char what[64];
  int r = 0;
  switch (op->u.c.dir) {
  case COPY_HTOD:
    snprintf(what, sizeof what, "%s destination", w);
    if (!(r = sim_range_check(op->u.c.dst, op->u.c.n, 1, what, bad, bad)))
      memcpy((void *)(uintptr_t)op->u.c.dst, op->u.c.hsrc, op->u.c.n);
    break;
  case COPY_DTOH:
    snprintf(what, sizeof what, "%s source", w);
    if (!(r = sim_range_check(op->u.c.src, op->u.c.n, 1, what, bad, bad)))
      memcpy(op->u.c.hdst, (const void *)(uintptr_t)op->u.c.src, op->u.c.n);
    break;
  case COPY_DTOD:
    snprintf(what, sizeof what, "%s source", w);
    if (!(r = sim_range_check(op->u.c.src, op->u.c.n, 1, what, bad, bad))) {
      snprintf(what, sizeof what, "%s destination", w);
      if (!(r = sim_range_check(op->u.c.dst, op->u.c.n, 1, what, bad, bad)))
        memmove((void *)(uintptr_t)op->u.c.dst, (const void *)(uintptr_t)op->u.c.src, op->u.c.n);
    }
    break;
  }
  return r && replay ? sim_make_sticky(r) : r;
}

static int exec_set(Op *op, int replay) {
  int bad = replay ? RT_CUDA_ERROR_ILLEGAL_ADDRESS : RT_CUDA_ERROR_INVALID_VALUE;
  size_t w = (size_t)op->u.s.width, n = op->u.s.count * w;
  int r = sim_range_check(op->u.s.dst, n, w, replay ? "memset (graph replay)" : "memset", bad,
                          RT_CUDA_ERROR_INVALID_VALUE);
  if (r) return replay ? sim_make_sticky(r) : r;
  unsigned char *p = (unsigned char *)(uintptr_t)op->u.s.dst;
  if (w == 1) {
    memset(p, (int)(op->u.s.value & 0xff), n);
  } else {
    uint32_t v = op->u.s.value;
    for (size_t i = 0; i < op->u.s.count; i++) memcpy(p + 4 * i, &v, 4);
  }
  return 0;
}

static int op_exec(Op *op, int replay) {
  switch (op->kind) {
  case OP_KERNEL: return exec_kernel(op, replay);
  case OP_COPY: return exec_copy(op, replay);
  case OP_SET: return exec_set(op, replay);
  case OP_EVENT:
    if (!event_live(op->u.ev))
      return sim_fail(SIM_ERROR_INVALID_HANDLE, "the event a graph records was destroyed after the capture");
    clock_gettime(CLOCK_MONOTONIC, &op->u.ev->t);
    op->u.ev->recorded = 1;
    return 0;
  case OP_HOST: return op->u.h.exec(op->u.h.payload, replay);
  }
  ditc_unreachable();
}

static void op_free(Op *op) {
  if (op->kind == OP_KERNEL) free(op->u.k.params);
  if (op->kind == OP_HOST && op->u.h.free) op->u.h.free(op->u.h.payload);
}

static Op op_clone(const Op *op) {
  Op c = *op;
  if (op->kind == OP_KERNEL) {
    c.u.k.params = aligned_alloc(16, (op->u.k.n + 15) & ~(size_t)15);
    if (!c.u.k.params) ditc_fatal(__FILE__, __LINE__, "out of memory");
    memcpy(c.u.k.params, op->u.k.params, op->u.k.n);
  }
  if (op->kind == OP_HOST) c.u.h.payload = op->u.h.clone(op->u.h.payload);
  return c;
}

static void list_push(OpList *l, const Op *op) {
  if (l->n == l->cap) {
    l->cap = l->cap ? 2 * l->cap : 16;
    l->ops = xrealloc(l->ops, (size_t)l->cap * sizeof *l->ops);
  }
  l->ops[l->n++] = *op;
}

static void list_free(OpList *l) {
  for (int i = 0; i < l->n; i++) op_free(&l->ops[i]);
  free(l->ops);
  memset(l, 0, sizeof *l);
}

int sim_stream_valid(CUstream s) {
  /* NULL, CU_STREAM_LEGACY (1) and CU_STREAM_PER_THREAD (2) name the default stream */
  if ((uintptr_t)s <= 2) return 1;
  for (struct CUstream_st *x = streams; x; x = x->next)
    if (x == s) return 1;
  return 0;
}

static struct CUstream_st *stream_of(CUstream s) { return (uintptr_t)s <= 2 ? NULL : s; }

int sim_enqueue(CUstream sh, Op *op) {
  struct CUstream_st *s = stream_of(sh);
  if (s && s->capturing) {
    if (s->invalid) {
      op_free(op);
      return sim_fail(SIM_ERROR_STREAM_CAPTURE_INVALIDATED, "the capture of this stream was invalidated earlier");
    }
    list_push(&s->cap, op);
    return 0;
  }
  int r = op_exec(op, 0);
  op_free(op);
  return r;
}

int sim_enqueue_host(CUstream s, const SimHostOp *h) {
  Op op = {.kind = OP_HOST};
  op.u.h = *h;
  if (!sim_stream_valid(s)) {
    op_free(&op);
    return sim_fail(SIM_ERROR_INVALID_HANDLE, "%s: the stream is not a stream of this context", h->name);
  }
  return sim_enqueue(s, &op);
}

int sim_stream_capturing(CUstream s) {
  struct CUstream_st *x = stream_of(s);
  return x && sim_stream_valid(s) && x->capturing;
}

/* ======================================================================== */
/* contexts                                                                 */
/* ======================================================================== */

/* Destroy the primary context and everything it owned. */
static void ctx_destroy(void) {
  sim_allocs_free_all();
  while (execs) {
    struct CUgraphExec_st *x = execs;
    execs = x->next;
    list_free(&x->ops);
    free(x);
  }
  while (graphs) {
    struct CUgraph_st *g = graphs;
    graphs = g->next;
    list_free(&g->ops);
    free(g);
  }
  while (streams) {
    struct CUstream_st *s = streams;
    streams = s->next;
    list_free(&s->cap);
    free(s);
  }
  while (events) {
    struct CUevent_st *e = events;
    events = e->next;
    free(e);
  }
  sim_modules_free_all();
  primary.sticky = 0;
  primary.gen++;
}

static RtCuResult sim_init(unsigned flags) {
  ENTER();
  if (flags) LEAVE(sim_fail(RT_CUDA_ERROR_INVALID_VALUE, "cuInit takes flags 0"));
  if (!the_arch) {
    const char *want = getenv("DITC_CUDA_SIM_ARCH");
    if (!want || !*want) want = "sm_90";
    for (int i = 0; i < N_ARCHS && !the_arch; i++)
      if (!strcmp(ARCHS[i].arch, want)) the_arch = &ARCHS[i];
    if (!the_arch) {
      char list[160] = "";
      for (int i = 0; i < N_ARCHS; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", ARCHS[i].arch);
      LEAVE(sim_fail(RT_CUDA_ERROR_NO_DEVICE, "DITC_CUDA_SIM_ARCH=%s is not an architecture the simulation has "
                     "(%s)", want, list));
    }
  }
  if (sim_region_reserve())
    LEAVE(sim_fail(RT_CUDA_ERROR_OUT_OF_MEMORY, "cannot reserve the simulated device's address range: %s",
                   strerror(errno)));
  initialised = 1;
  LEAVE(0);
}

static RtCuResult sim_driver_version(int *v) {
  sim_detail_clear();
  if (!v) return RT_CUDA_ERROR_INVALID_VALUE;
  *v = DRIVER_VERSION;
  return 0;
}

static RtCuResult sim_device_get(CUdevice *d, int ordinal) {
  ENTER();
  if (!initialised) LEAVE(sim_fail(SIM_ERROR_NOT_INITIALIZED, "cuInit has not been called"));
  if (ordinal != 0) LEAVE(sim_fail(SIM_ERROR_INVALID_DEVICE, "the simulation has one device, 0"));
  *d = 0;
  LEAVE(0);
}

static RtCuResult sim_device_count(int *n) {
  ENTER();
  if (!initialised) LEAVE(sim_fail(SIM_ERROR_NOT_INITIALIZED, "cuInit has not been called"));
  *n = 1;
  LEAVE(0);
}

static RtCuResult sim_device_name(char *name, int len, CUdevice d) {
  ENTER();
  if (!initialised) LEAVE(sim_fail(SIM_ERROR_NOT_INITIALIZED, "cuInit has not been called"));
  if (d != 0) LEAVE(sim_fail(SIM_ERROR_INVALID_DEVICE, "the simulation has one device, 0"));
  if (!name || len < 1) LEAVE(RT_CUDA_ERROR_INVALID_VALUE);
  snprintf(name, (size_t)len, "ditc simulated %s (%s-like)", the_arch->arch, the_arch->like);
  LEAVE(0);
}

static RtCuResult sim_device_attribute(int *v, int attr, CUdevice d) {
  ENTER();
  if (!initialised) LEAVE(sim_fail(SIM_ERROR_NOT_INITIALIZED, "cuInit has not been called"));
  if (d != 0) LEAVE(sim_fail(SIM_ERROR_INVALID_DEVICE, "the simulation has one device, 0"));
  const SimArch *a = the_arch;
  switch (attr) {
  case 1: *v = MAX_BLOCK_THREADS; break;               /* MAX_THREADS_PER_BLOCK */
  case 2: case 3: *v = 1024; break;                    /* MAX_BLOCK_DIM_X, _Y */
  case 4: *v = 64; break;                              /* MAX_BLOCK_DIM_Z */
  case 5: *v = 2147483647; break;                      /* MAX_GRID_DIM_X */
  case 6: case 7: *v = 65535; break;                   /* MAX_GRID_DIM_Y, _Z */
  case 8: *v = DEFAULT_SMEM_PER_BLOCK; break;          /* MAX_SHARED_MEMORY_PER_BLOCK */
  case 9: *v = 65536; break;                           /* TOTAL_CONSTANT_MEMORY */
  case 10: *v = 32; break;                             /* WARP_SIZE */
  case 12: case 82: *v = REGS_PER_BLOCK; break;        /* MAX_REGISTERS_PER_BLOCK, _PER_MULTIPROCESSOR */
  case RT_CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT: *v = a->sm_count; break;
  case 39: *v = a->threads_per_sm; break;              /* MAX_THREADS_PER_MULTIPROCESSOR */
  case 41: *v = 1; break;                              /* UNIFIED_ADDRESSING */
  case RT_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR: *v = a->major; break;
  case RT_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR: *v = a->minor; break;
  case 81: *v = a->smem_per_sm; break;                 /* MAX_SHARED_MEMORY_PER_MULTIPROCESSOR */
  case RT_CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN: *v = a->smem_per_block_optin; break;
  default: LEAVE(sim_fail(RT_CUDA_ERROR_INVALID_VALUE, "device attribute %d is not simulated", attr));
  }
  LEAVE(0);
}

static RtCuResult sim_device_total_mem(size_t *bytes, CUdevice d) {
  ENTER();
  if (!initialised) LEAVE(sim_fail(SIM_ERROR_NOT_INITIALIZED, "cuInit has not been called"));
  if (d != 0) LEAVE(sim_fail(SIM_ERROR_INVALID_DEVICE, "the simulation has one device, 0"));
  *bytes = the_arch->total_mem;
  LEAVE(0);
}

static RtCuResult sim_primary_retain(CUcontext *ctx, CUdevice d) {
  ENTER();
  if (!initialised) LEAVE(sim_fail(SIM_ERROR_NOT_INITIALIZED, "cuInit has not been called"));
  if (d != 0) LEAVE(sim_fail(SIM_ERROR_INVALID_DEVICE, "the simulation has one device, 0"));
  primary.refs++;
  *ctx = &primary;
  LEAVE(0);
}

static RtCuResult sim_primary_release(CUdevice d) {
  ENTER();
  if (!initialised) LEAVE(sim_fail(SIM_ERROR_NOT_INITIALIZED, "cuInit has not been called"));
  if (d != 0) LEAVE(sim_fail(SIM_ERROR_INVALID_DEVICE, "the simulation has one device, 0"));
  if (primary.refs < 1) LEAVE(sim_fail(SIM_ERROR_INVALID_CONTEXT, "the primary context is not retained"));
  if (--primary.refs == 0) ctx_destroy();
  LEAVE(0);
}

static RtCuResult sim_ctx_set_current(CUcontext ctx) {
  ENTER();
  if (!initialised) LEAVE(sim_fail(SIM_ERROR_NOT_INITIALIZED, "cuInit has not been called"));
  if (ctx && (ctx != &primary || !primary.refs))
    LEAVE(sim_fail(SIM_ERROR_INVALID_CONTEXT, "not a live context (the primary context was released)"));
  current = ctx;
  LEAVE(0);
}

static RtCuResult sim_ctx_get_current(CUcontext *ctx) {
  ENTER();
  if (!initialised) LEAVE(sim_fail(SIM_ERROR_NOT_INITIALIZED, "cuInit has not been called"));
  *ctx = current && current->refs ? current : NULL;
  LEAVE(0);
}

static RtCuResult sim_ctx_synchronize(void) {
  ENTER_CTX();
  for (struct CUstream_st *s = streams; s; s = s->next)
    if (s->capturing) {
      s->invalid = 1;
      LEAVE(sim_fail(SIM_ERROR_STREAM_CAPTURE_UNSUPPORTED, "cuCtxSynchronize while stream %p is being captured "
                     "(the capture is invalidated)", (void *)s));
    }
  LEAVE(0);
}

/* ======================================================================== */
/* streams, events, graphs                                                  */
/* ======================================================================== */

static RtCuResult sim_stream_create(CUstream *s, unsigned flags) {
  ENTER_CTX();
  if (!s || flags > RT_CU_STREAM_NON_BLOCKING) LEAVE(RT_CUDA_ERROR_INVALID_VALUE);
  struct CUstream_st *x = xcalloc(1, sizeof *x);
  x->flags = flags;
  x->next = streams;
  streams = x;
  *s = x;
  LEAVE(0);
}

static RtCuResult sim_stream_destroy(CUstream s) {
  ENTER_CTX();
  struct CUstream_st *x = stream_take(&streams, s);
  if (!x) LEAVE(sim_fail(SIM_ERROR_INVALID_HANDLE, "not a stream of this context"));
  list_free(&x->cap);
  free(x);
  LEAVE(0);
}

static RtCuResult sim_stream_sync(CUstream s) {
  ENTER_CTX();
  if (!sim_stream_valid(s)) LEAVE(sim_fail(SIM_ERROR_INVALID_HANDLE, "not a stream of this context"));
  struct CUstream_st *x = stream_of(s);
  if (x && x->capturing) {
    x->invalid = 1;
    LEAVE(sim_fail(SIM_ERROR_STREAM_CAPTURE_UNSUPPORTED, "cuStreamSynchronize on a stream being captured (the "
                   "capture is invalidated)"));
  }
  LEAVE(0); /* work ran when it was enqueued */
}

static RtCuResult sim_event_create(CUevent *e, unsigned flags) {
  ENTER_CTX();
  if (!e || flags & ~7u) LEAVE(RT_CUDA_ERROR_INVALID_VALUE);
  struct CUevent_st *x = xcalloc(1, sizeof *x);
  x->flags = flags;
  x->next = events;
  events = x;
  *e = x;
  LEAVE(0);
}

static struct CUevent_st *event_live(CUevent e) {
  for (struct CUevent_st *x = events; x; x = x->next)
    if (x == e) return x;
  return NULL;
}

static RtCuResult sim_event_destroy(CUevent e) {
  ENTER_CTX();
  struct CUevent_st *x = event_take(&events, e);
  if (!x) LEAVE(sim_fail(SIM_ERROR_INVALID_HANDLE, "not an event of this context"));
  free(x);
  LEAVE(0);
}

static RtCuResult sim_event_record(CUevent e, CUstream s) {
  ENTER_CTX();
  if (!event_live(e) || !sim_stream_valid(s)) LEAVE(sim_fail(SIM_ERROR_INVALID_HANDLE, "not an event or stream of this context"));
  Op op = {.kind = OP_EVENT};
  op.u.ev = e;
  LEAVE(sim_enqueue(s, &op));
}

static RtCuResult sim_event_sync(CUevent e) {
  ENTER_CTX();
  if (!event_live(e)) LEAVE(sim_fail(SIM_ERROR_INVALID_HANDLE, "not an event of this context"));
  LEAVE(0);
}

static RtCuResult sim_event_elapsed(float *ms, CUevent a, CUevent b) {
  ENTER_CTX();
  struct CUevent_st *x = event_live(a), *y = event_live(b);
  if (!ms || !x || !y) LEAVE(sim_fail(SIM_ERROR_INVALID_HANDLE, "not an event of this context"));
  if ((x->flags | y->flags) & RT_CU_EVENT_DISABLE_TIMING)
    LEAVE(sim_fail(SIM_ERROR_INVALID_HANDLE, "an event created with CU_EVENT_DISABLE_TIMING"));
  if (!x->recorded || !y->recorded) LEAVE(sim_fail(SIM_ERROR_INVALID_HANDLE, "an event that was never recorded"));
  *ms = (float)((double)(y->t.tv_sec - x->t.tv_sec) * 1e3 + (double)(y->t.tv_nsec - x->t.tv_nsec) / 1e6);
  LEAVE(0);
}

static RtCuResult sim_begin_capture(CUstream s, int mode) {
  ENTER_CTX();
  struct CUstream_st *x = stream_of(s);
  if (!x) LEAVE(sim_fail(SIM_ERROR_STREAM_CAPTURE_UNSUPPORTED, "the legacy default stream cannot be captured"));
  if (!sim_stream_valid(s)) LEAVE(sim_fail(SIM_ERROR_INVALID_HANDLE, "not a stream of this context"));
  if (mode < RT_CU_STREAM_CAPTURE_MODE_GLOBAL || mode > RT_CU_STREAM_CAPTURE_MODE_RELAXED)
    LEAVE(RT_CUDA_ERROR_INVALID_VALUE);
  if (x->capturing) LEAVE(sim_fail(SIM_ERROR_ILLEGAL_STATE, "the stream is being captured already"));
  x->capturing = 1;
  x->invalid = 0;
  x->mode = mode;
  x->capture_thread = pthread_self();
  LEAVE(0);
}

static RtCuResult sim_end_capture(CUstream s, CUgraph *g) {
  ENTER_CTX();
  if (!g) LEAVE(RT_CUDA_ERROR_INVALID_VALUE);
  *g = NULL;
  struct CUstream_st *x = stream_of(s);
  if (!x || !sim_stream_valid(s)) LEAVE(sim_fail(SIM_ERROR_INVALID_HANDLE, "not a stream of this context"));
  if (!x->capturing) LEAVE(sim_fail(SIM_ERROR_ILLEGAL_STATE, "the stream is not being captured"));
  x->capturing = 0;
  if (x->invalid) {
    list_free(&x->cap);
    LEAVE(sim_fail(SIM_ERROR_STREAM_CAPTURE_INVALIDATED, "an operation during the capture invalidated it"));
  }
  struct CUgraph_st *gr = xcalloc(1, sizeof *gr);
  gr->ops = x->cap;
  memset(&x->cap, 0, sizeof x->cap);
  gr->next = graphs;
  graphs = gr;
  *g = gr;
  LEAVE(0);
}

static RtCuResult sim_graph_instantiate(CUgraphExec *out, CUgraph g, unsigned long long flags) {
  ENTER_CTX();
  if (!out) LEAVE(RT_CUDA_ERROR_INVALID_VALUE);
  *out = NULL;
  struct CUgraph_st *gr = graphs;
  while (gr && gr != g) gr = gr->next;
  if (!gr) LEAVE(sim_fail(SIM_ERROR_INVALID_HANDLE, "not a graph of this context"));
  if (flags) LEAVE(sim_fail(RT_CUDA_ERROR_INVALID_VALUE, "instantiate flags 0x%llx are not simulated", flags));
  struct CUgraphExec_st *x = xcalloc(1, sizeof *x);
  for (int i = 0; i < gr->ops.n; i++) {
    Op c = op_clone(&gr->ops.ops[i]);
    list_push(&x->ops, &c);
  }
  x->next = execs;
  execs = x;
  *out = x;
  LEAVE(0);
}

static RtCuResult sim_graph_launch(CUgraphExec g, CUstream s) {
  ENTER_CTX();
  struct CUgraphExec_st *x = execs;
  while (x && x != g) x = x->next;
  if (!x) LEAVE(sim_fail(SIM_ERROR_INVALID_HANDLE, "not an executable graph of this context"));
  if (!sim_stream_valid(s)) LEAVE(sim_fail(SIM_ERROR_INVALID_HANDLE, "not a stream of this context"));
  if (sim_stream_capturing(s))
    LEAVE(sim_fail(SIM_ERROR_NOT_SUPPORTED, "the simulation does not capture a graph launch into another graph"));
  for (int i = 0; i < x->ops.n; i++) {
    int r = op_exec(&x->ops.ops[i], 1);
    if (r) {
      char why[sizeof detail];
      snprintf(why, sizeof why, "%s", detail);
      LEAVE(sim_fail(r, "graph node %d of %d: %s", i, x->ops.n, why));
    }
  }
  LEAVE(0);
}

static RtCuResult sim_graph_destroy(CUgraph g) {
  ENTER();
  struct CUgraph_st *x = graph_take(&graphs, g);
  if (!x) LEAVE(sim_fail(SIM_ERROR_INVALID_HANDLE, "not a graph"));
  list_free(&x->ops);
  free(x);
  LEAVE(0);
}

static RtCuResult sim_graph_exec_destroy(CUgraphExec g) {
  ENTER();
  struct CUgraphExec_st *x = exec_take(&execs, g);
  if (!x) LEAVE(sim_fail(SIM_ERROR_INVALID_HANDLE, "not an executable graph"));
  list_free(&x->ops);
  free(x);
  LEAVE(0);
}

/* ======================================================================== */
/* the table                                                                */
/* ======================================================================== */

void rt_cuda_sim_driver(RtCudaApi *t) {
  *t = (RtCudaApi){
      .Init = sim_init,
      .DriverGetVersion = sim_driver_version,
      .GetErrorName = sim_error_name,
      .GetErrorString = sim_error_string,
      .DeviceGet = sim_device_get,
      .DeviceGetCount = sim_device_count,
      .DeviceGetName = sim_device_name,
      .DeviceGetAttribute = sim_device_attribute,
      .DeviceTotalMem = sim_device_total_mem,
      .DevicePrimaryCtxRetain = sim_primary_retain,
      .DevicePrimaryCtxRelease = sim_primary_release,
      .CtxSetCurrent = sim_ctx_set_current,
      .CtxGetCurrent = sim_ctx_get_current,
      .CtxSynchronize = sim_ctx_synchronize,
      .StreamCreate = sim_stream_create,
      .StreamDestroy = sim_stream_destroy,
      .StreamSynchronize = sim_stream_sync,
      .EventCreate = sim_event_create,
      .EventDestroy = sim_event_destroy,
      .EventRecord = sim_event_record,
      .EventSynchronize = sim_event_sync,
      .EventElapsedTime = sim_event_elapsed,
      .StreamBeginCapture = sim_begin_capture,
      .StreamEndCapture = sim_end_capture,
      .GraphInstantiateWithFlags = sim_graph_instantiate,
      .GraphLaunch = sim_graph_launch,
      .GraphDestroy = sim_graph_destroy,
      .GraphExecDestroy = sim_graph_exec_destroy,
  };
  sim_mem_table(t);
  sim_module_table(t);
}
