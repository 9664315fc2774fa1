/*
 * cuda_sim.c - a simulated CUDA driver (DITC_CUDA_SIM=1): the entry points
 * of cuda_api.h's rt_cu table, run against the emulated device.
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
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "codegen/cubin_source.h"
#include "codegen/emu.h"
#include "runtime/cuda_sim.h"

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

enum {
  DEFAULT_SMEM_PER_BLOCK = 48 * 1024,
  MAX_BLOCK_THREADS = 1024,
  REGS_PER_BLOCK = 65536,
  DRIVER_VERSION = 13000,
  ALLOC_ALIGN = 256,
};
#define REGION_BYTES ((size_t)256 << 30)

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

typedef struct {
  uint64_t base, size;   /* what cuMemAlloc returned and was asked for */
  uint64_t map, map_len; /* the pages mapped for it */
  int live;
  long seq;              /* allocation number, for messages */
} Alloc;

struct CUctx_st {
  int refs;              /* primary context retains; alive while > 0 */
  int sticky;            /* a fault: every call returns it */
  int gen;               /* incremented when the context is destroyed */
};

struct CUfunc_st {
  struct CUmod_st *mod;
  const SimKernel *k;
  SimParams params;      /* where its pointers are */
  int max_dyn_smem;      /* CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES */
};

struct CUmod_st {
  struct CUmod_st *next;
  long serial;             /* never reused: a recorded launch names its module by it */
  SimImage img;
  EmuModule *emu;
  struct CUfunc_st *funcs; /* one per image kernel */
};

typedef enum { OP_KERNEL, OP_COPY, OP_SET, OP_EVENT, OP_HOST } OpKind;
typedef enum { COPY_HTOD, COPY_DTOH, COPY_DTOD } CopyDir;

typedef struct {
  OpKind kind;
  union {
    struct {
      struct CUfunc_st *f;
      long serial;       /* f's module's */
      unsigned grid[3], block[3], smem;
      unsigned char *params;
      size_t n;
    } k;
    struct {
      CopyDir dir;
      uint64_t dst, src; /* device sides */
      void *hdst;
      const void *hsrc;
      size_t n;
    } c;
    struct {
      uint64_t dst;
      unsigned value;
      int width; /* bytes per element: 1 or 4 */
      size_t count;
    } s;
    struct CUevent_st *ev;
    SimHostOp h;
  } u;
} Op;

typedef struct {
  Op *ops;
  int n, cap;
} OpList;

struct CUgraph_st {
  struct CUgraph_st *next;
  OpList ops;
};

struct CUgraphExec_st {
  struct CUgraphExec_st *next;
  OpList ops;
};

struct CUstream_st {
  struct CUstream_st *next;
  unsigned flags;
  int capturing, mode, invalid;
  pthread_t capture_thread;
  OpList cap;
};

struct CUevent_st {
  struct CUevent_st *next;
  unsigned flags;
  int recorded;
  struct timespec t;
};

static int initialised;
static struct CUctx_st primary;
static __thread struct CUctx_st *current;

static char *region;   /* the device's address range */
static uint64_t region_base, region_end, region_next;
static Alloc *allocs;  /* sorted by base (allocation only ever moves upwards) */
static int n_allocs, cap_allocs;
static long alloc_seq;
static size_t live_bytes;

static struct CUmod_st *modules;
static struct CUstream_st *streams;
static struct CUevent_st *events;
static struct CUgraph_st *graphs;
static struct CUgraphExec_st *execs;

SIM_LIST_TAKE(module_take, struct CUmod_st)
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
/* memory                                                                   */
/* ======================================================================== */

static size_t page(void) {
  long p = sysconf(_SC_PAGESIZE);
  return p > 0 ? (size_t)p : 4096;
}

/* A kernel that strays past an allocation into the unmapped device range
 * takes the process down (as a fault takes a GPU's context): say what it
 * was first, then let the fault go on to whoever handled it before us (the
 * default action, or a sanitizer's report).  Only async-signal-safe calls. */
static struct sigaction old_segv;

static void segv_note(int sig, siginfo_t *si, void *uc) {
  uint64_t a = (uint64_t)(uintptr_t)si->si_addr;
  if (a >= region_base && a < region_end) {
    static const char head[] = "ditc: simulated device: a kernel touched device address 0x";
    static const char tail[] = ", outside every live allocation (CUDA_ERROR_ILLEGAL_ADDRESS on a GPU)\n";
    char hex[17];
    for (int i = 15; i >= 0; i--, a >>= 4) hex[i] = "0123456789abcdef"[a & 15];
    hex[16] = 0;
    int i = 0;
    while (hex[i] == '0' && i < 15) i++;
    ssize_t w = write(2, head, sizeof head - 1);
    w = write(2, hex + i, (size_t)(16 - i));
    w = write(2, tail, sizeof tail - 1);
    (void)w;
  }
  if (old_segv.sa_flags & SA_SIGINFO) {
    old_segv.sa_sigaction(sig, si, uc);
  } else if (old_segv.sa_handler != SIG_IGN && old_segv.sa_handler != SIG_DFL) {
    old_segv.sa_handler(sig);
  } else {
    signal(sig, SIG_DFL); /* returning re-executes the access, which now ends the process */
  }
}

static int region_reserve(void) {
  if (region) return 0;
  void *p = mmap(NULL, REGION_BYTES, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return -1;
  region = p;
  region_base = region_next = (uint64_t)(uintptr_t)p;
  region_end = region_base + REGION_BYTES;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = segv_note;
  sa.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, &old_segv);
  return 0;
}

static int in_region(uint64_t p) { return region && p >= region_base && p < region_end; }

/* The allocation whose range [base, base+size] holds p (one past the end
 * counts: a pointer may point there without reading), the live one first. */
static Alloc *alloc_at(uint64_t p) {
  int lo = 0, hi = n_allocs - 1, best = -1;
  while (lo <= hi) { /* last allocation with base <= p */
    int mid = (lo + hi) / 2;
    if (allocs[mid].base <= p) best = mid, lo = mid + 1;
    else hi = mid - 1;
  }
  if (best < 0) return NULL;
  Alloc *a = &allocs[best];
  return p <= a->base + a->size ? a : NULL;
}

int sim_range_check(uint64_t p, size_t n, size_t align, const char *what, int bad_code, int bad_align_code) {
  Alloc *a = alloc_at(p);
  if (!a) {
    if (in_region(p))
      return sim_fail(bad_code, "%s: device address 0x%llx is not inside any allocation", what, (unsigned long long)p);
    return sim_fail(bad_code, "%s: 0x%llx is not a device address (the device's memory is 0x%llx-0x%llx)", what,
                    (unsigned long long)p, (unsigned long long)region_base, (unsigned long long)region_end);
  }
  if (!a->live)
    return sim_fail(bad_code, "%s: device address 0x%llx lies in allocation #%ld [0x%llx, +%llu), freed earlier "
                    "(use after free)", what, (unsigned long long)p, a->seq, (unsigned long long)a->base,
                    (unsigned long long)a->size);
  if (n > a->base + a->size - p)
    return sim_fail(bad_code, "%s: [0x%llx, +%zu) runs %llu bytes past the end of allocation #%ld [0x%llx, +%llu)",
                    what, (unsigned long long)p, n, (unsigned long long)(p + n - (a->base + a->size)), a->seq,
                    (unsigned long long)a->base, (unsigned long long)a->size);
  if (align > 1 && p % align)
    return sim_fail(bad_align_code, "%s: device address 0x%llx is not %zu-byte aligned", what, (unsigned long long)p,
                    align);
  return 0;
}

static void alloc_poison_free(Alloc *a) {
  /* Give the pages back and make every later touch fault. */
  madvise((void *)(uintptr_t)a->map, a->map_len, MADV_DONTNEED);
  mprotect((void *)(uintptr_t)a->map, a->map_len, PROT_NONE);
  a->live = 0;
  live_bytes -= a->size;
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
static int capture_forbids(const char *call) {
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

static void module_free(struct CUmod_st *m) {
  for (int i = 0; i < m->img.n_kernels; i++) sim_params_free(&m->funcs[i].params);
  free(m->funcs);
  sim_image_free(&m->img);
  free(m);
}

/* f is a function of a loaded module (of that serial, when serial >= 0). */
static int func_live(const struct CUfunc_st *f, long serial) {
  for (struct CUmod_st *m = modules; m; m = m->next)
    if (f >= m->funcs && f < m->funcs + m->img.n_kernels) return serial < 0 || m->serial == serial;
  return 0;
}

static struct CUevent_st *event_live(CUevent e);

static int exec_kernel(Op *op, int replay) {
  struct CUfunc_st *f = op->u.k.f;
  if (!func_live(f, op->u.k.serial)) return sim_fail(SIM_ERROR_INVALID_HANDLE, "the kernel's module was unloaded%s",
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
    if (ps->known ? !w : !in_region(w)) continue;
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

static int stream_valid(CUstream s) {
  /* NULL, CU_STREAM_LEGACY (1) and CU_STREAM_PER_THREAD (2) name the default stream */
  if ((uintptr_t)s <= 2) return 1;
  for (struct CUstream_st *x = streams; x; x = x->next)
    if (x == s) return 1;
  return 0;
}

static struct CUstream_st *stream_of(CUstream s) { return (uintptr_t)s <= 2 ? NULL : s; }

/* Run op now, or record it into s's capture; takes op's resources. */
static int enqueue(CUstream sh, Op *op) {
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
  if (!stream_valid(s)) {
    op_free(&op);
    return sim_fail(SIM_ERROR_INVALID_HANDLE, "%s: the stream is not a stream of this context", h->name);
  }
  return enqueue(s, &op);
}

int sim_stream_capturing(CUstream s) {
  struct CUstream_st *x = stream_of(s);
  return x && stream_valid(s) && x->capturing;
}

/* ======================================================================== */
/* contexts                                                                 */
/* ======================================================================== */

/* Destroy the primary context and everything it owned. */
static void ctx_destroy(void) {
  for (int i = 0; i < n_allocs; i++)
    if (allocs[i].live) alloc_poison_free(&allocs[i]);
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
  while (modules) {
    struct CUmod_st *m = modules;
    modules = m->next;
    module_free(m);
  }
  primary.sticky = 0;
  primary.gen++;
}

/* Every entry point below: clear the detail, take the lock, and (for those
 * that need one) check the context. */
#define ENTER()          \
  sim_detail_clear();    \
  sim_lock();            \
  int r_ = 0;            \
  (void)r_
#define ENTER_CTX()              \
  ENTER();                       \
  if ((r_ = sim_ctx_check())) {  \
    sim_unlock();                \
    return r_;                   \
  }
#define LEAVE(r)   \
  do {             \
    int v_ = (r);  \
    sim_unlock();  \
    return v_;     \
  } while (0)

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
  if (region_reserve())
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
/* memory calls                                                             */
/* ======================================================================== */

static RtCuResult sim_mem_alloc(CUdeviceptr *p, size_t bytes) {
  ENTER_CTX();
  if (!p) LEAVE(RT_CUDA_ERROR_INVALID_VALUE);
  *p = 0;
  if ((r_ = capture_forbids("cuMemAlloc"))) LEAVE(r_);
  if (!bytes) LEAVE(sim_fail(RT_CUDA_ERROR_INVALID_VALUE, "cuMemAlloc of 0 bytes"));
  if (bytes > the_arch->total_mem - live_bytes)
    LEAVE(sim_fail(RT_CUDA_ERROR_OUT_OF_MEMORY, "%zu bytes asked for, %zu of the simulated %s's %zu free", bytes,
                   the_arch->total_mem - live_bytes, the_arch->like, the_arch->total_mem));
  size_t pg = page(), len = (bytes + pg - 1) / pg * pg;
  if (len + pg > region_end - region_next)
    LEAVE(sim_fail(RT_CUDA_ERROR_OUT_OF_MEMORY, "the simulated device's address range is used up (addresses are "
                   "never reused)"));
  uint64_t map = region_next;
  if (mprotect((void *)(uintptr_t)map, len, PROT_READ | PROT_WRITE))
    LEAVE(sim_fail(RT_CUDA_ERROR_OUT_OF_MEMORY, "cannot map %zu bytes: %s", len, strerror(errno)));
  region_next += len + pg; /* the page after stays unmapped: a guard */
  uint64_t base = (map + len - bytes) / ALLOC_ALIGN * ALLOC_ALIGN;
  memset((void *)(uintptr_t)base, 0xff, bytes);
  if (n_allocs == cap_allocs) {
    cap_allocs = cap_allocs ? 2 * cap_allocs : 64;
    allocs = xrealloc(allocs, (size_t)cap_allocs * sizeof *allocs);
  }
  allocs[n_allocs++] = (Alloc){base, bytes, map, len, 1, ++alloc_seq};
  live_bytes += bytes;
  *p = base;
  LEAVE(0);
}

static RtCuResult sim_mem_free(CUdeviceptr p) {
  ENTER_CTX();
  if (!p) LEAVE(0);
  if ((r_ = capture_forbids("cuMemFree"))) LEAVE(r_);
  Alloc *a = alloc_at(p);
  if (!a || a->base != p)
    LEAVE(sim_fail(RT_CUDA_ERROR_INVALID_VALUE, "cuMemFree(0x%llx): not an address cuMemAlloc returned",
                   (unsigned long long)p));
  if (!a->live)
    LEAVE(sim_fail(RT_CUDA_ERROR_INVALID_VALUE, "cuMemFree(0x%llx): allocation #%ld was freed already (double free)",
                   (unsigned long long)p, a->seq));
  alloc_poison_free(a);
  LEAVE(0);
}

static RtCuResult sim_mem_info(size_t *free_bytes, size_t *total) {
  ENTER_CTX();
  *free_bytes = the_arch->total_mem - live_bytes;
  *total = the_arch->total_mem;
  LEAVE(0);
}

static int copy_op(CUstream s, int sync, CopyDir dir, CUdeviceptr dst, CUdeviceptr src, void *hdst, const void *hsrc,
                   size_t n) {
  if (sync) {
    int r = capture_forbids(dir == COPY_HTOD ? "cuMemcpyHtoD" : dir == COPY_DTOH ? "cuMemcpyDtoH" : "cuMemcpyDtoD");
    if (r) return r;
  }
  if (!stream_valid(s)) return sim_fail(SIM_ERROR_INVALID_HANDLE, "not a stream of this context");
  if (n == 0) return 0;
  if ((dir == COPY_HTOD && !hsrc) || (dir == COPY_DTOH && !hdst))
    return sim_fail(RT_CUDA_ERROR_INVALID_VALUE, "a NULL host pointer");
  Op op = {.kind = OP_COPY};
  op.u.c.dir = dir, op.u.c.dst = dst, op.u.c.src = src, op.u.c.hdst = hdst, op.u.c.hsrc = hsrc, op.u.c.n = n;
  return enqueue(s, &op);
}

static RtCuResult sim_htod(CUdeviceptr dst, const void *src, size_t n) {
  ENTER_CTX();
  LEAVE(copy_op(NULL, 1, COPY_HTOD, dst, 0, NULL, src, n));
}
static RtCuResult sim_dtoh(void *dst, CUdeviceptr src, size_t n) {
  ENTER_CTX();
  LEAVE(copy_op(NULL, 1, COPY_DTOH, 0, src, dst, NULL, n));
}
static RtCuResult sim_dtod(CUdeviceptr dst, CUdeviceptr src, size_t n) {
  ENTER_CTX();
  LEAVE(copy_op(NULL, 1, COPY_DTOD, dst, src, NULL, NULL, n));
}
static RtCuResult sim_htod_async(CUdeviceptr dst, const void *src, size_t n, CUstream s) {
  ENTER_CTX();
  LEAVE(copy_op(s, 0, COPY_HTOD, dst, 0, NULL, src, n));
}
static RtCuResult sim_dtoh_async(void *dst, CUdeviceptr src, size_t n, CUstream s) {
  ENTER_CTX();
  LEAVE(copy_op(s, 0, COPY_DTOH, 0, src, dst, NULL, n));
}
static RtCuResult sim_dtod_async(CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream s) {
  ENTER_CTX();
  LEAVE(copy_op(s, 0, COPY_DTOD, dst, src, NULL, NULL, n));
}

static int set_op(CUstream s, int sync, CUdeviceptr p, unsigned v, int width, size_t n) {
  if (sync) {
    int r = capture_forbids(width == 1 ? "cuMemsetD8" : "cuMemsetD32");
    if (r) return r;
  }
  if (!stream_valid(s)) return sim_fail(SIM_ERROR_INVALID_HANDLE, "not a stream of this context");
  if (n == 0) return 0;
  Op op = {.kind = OP_SET};
  op.u.s.dst = p, op.u.s.value = v, op.u.s.width = width, op.u.s.count = n;
  return enqueue(s, &op);
}

static RtCuResult sim_memset8(CUdeviceptr p, unsigned char v, size_t n) {
  ENTER_CTX();
  LEAVE(set_op(NULL, 1, p, v, 1, n));
}
static RtCuResult sim_memset8_async(CUdeviceptr p, unsigned char v, size_t n, CUstream s) {
  ENTER_CTX();
  LEAVE(set_op(s, 0, p, v, 1, n));
}
static RtCuResult sim_memset32(CUdeviceptr p, unsigned v, size_t n) {
  ENTER_CTX();
  LEAVE(set_op(NULL, 1, p, v, 4, n));
}
static RtCuResult sim_memset32_async(CUdeviceptr p, unsigned v, size_t n, CUstream s) {
  ENTER_CTX();
  LEAVE(set_op(s, 0, p, v, 4, n));
}

/* ======================================================================== */
/* modules and launches                                                     */
/* ======================================================================== */

/* The JIT error log the caller passed (CU_JIT_ERROR_LOG_BUFFER and its size,
 * which comes back as the bytes written). */
static void jit_log(unsigned n, int *opts, void **vals, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void jit_log(unsigned n, int *opts, void **vals, const char *fmt, ...) {
  char *buf = NULL;
  size_t size = 0;
  int size_at = -1;
  for (unsigned i = 0; opts && vals && i < n; i++) {
    if (opts[i] == RT_CU_JIT_ERROR_LOG_BUFFER) buf = vals[i];
    if (opts[i] == RT_CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES) size = (size_t)(uintptr_t)vals[i], size_at = (int)i;
  }
  va_list ap;
  va_start(ap, fmt);
  if (buf && size) {
    vsnprintf(buf, size, fmt, ap);
    vals[size_at] = (void *)(uintptr_t)(strlen(buf) + 1);
  }
  va_end(ap);
}

/* A CUBIN for sm_XY runs on devices of major X and minor >= Y.  (Which of
 * sm_90 and sm_90a the image is, an arch-specific one running only on its
 * own device, does not change the answer for the devices simulated here.) */
static int arch_runs(int image_sm, const SimArch *a) {
  return image_sm / 10 == a->major && image_sm % 10 <= a->minor;
}

/* The option list NVRTC got, as the emulator can honour it: -D as #defines;
 * include paths and the prelude's pre-include (the emulator has its own)
 * do not matter; anything else we cannot reproduce refuses the image. */
static int options_to_defines(const CgCubinSource *src, char **defs, char *why, size_t n) {
  size_t cap = 64, len = 0;
  char *d = xmalloc(cap);
  d[0] = 0;
  for (int i = 0; i < src->n_options; i++) {
    const char *o = src->options[i];
    if (!strncmp(o, "-I", 2) || !strncmp(o, "--include-path", 14) || !strncmp(o, "--std", 5) ||
        !strncmp(o, "-std", 4) || !strcmp(o, "-default-device") || !strcmp(o, "--pre-include=cuda_prelude.h") ||
        !strcmp(o, "-lineinfo") || !strcmp(o, "--generate-line-info"))
      continue;
    const char *def = !strncmp(o, "-D", 2) ? o + 2 : !strncmp(o, "--define-macro=", 15) ? o + 15 : NULL;
    if (!def || !*def) {
      free(d);
      snprintf(why, n, "it was compiled with the NVRTC option \"%s\", which the simulation cannot reproduce", o);
      return -1;
    }
    const char *eq = strchr(def, '=');
    size_t need = strlen(def) + 16;
    while (len + need >= cap) d = xrealloc(d, cap *= 2);
    if (eq) len += (size_t)snprintf(d + len, cap - len, "#define %.*s %s\n", (int)(eq - def), def, eq + 1);
    else len += (size_t)snprintf(d + len, cap - len, "#define %s 1\n", def);
  }
  *defs = d;
  return 0;
}

static RtCuResult sim_module_load(CUmodule *out, const void *image, unsigned n_opts, int *opts, void **vals) {
  ENTER_CTX();
  if (!out) LEAVE(RT_CUDA_ERROR_INVALID_VALUE);
  *out = NULL;
  if ((r_ = capture_forbids("cuModuleLoadDataEx"))) LEAVE(r_);
  char why[512];
  SimImage img;
  if (sim_image_parse(image, &img, why, sizeof why)) {
    jit_log(n_opts, opts, vals, "simulated driver: %s", why);
    LEAVE(SIM_ERROR_INVALID_IMAGE);
  }
  if (!arch_runs(img.sm, the_arch)) {
    jit_log(n_opts, opts, vals, "simulated driver: the CUBIN is for sm_%d, the device is %s", img.sm, the_arch->arch);
    sim_image_free(&img);
    LEAVE(SIM_ERROR_NO_BINARY_FOR_GPU);
  }
  CgCubinSource src;
  if (!cg_cubin_source_find(image, img.size, &src)) {
    jit_log(n_opts, opts, vals, "simulated driver: this CUBIN (%zu bytes) was not compiled by NVRTC or fetched from the "
            "kernel cache in this process, so its source is unknown and it cannot be simulated", img.size);
    sim_image_free(&img);
    LEAVE(SIM_ERROR_INVALID_IMAGE);
  }
  char *defs;
  if (options_to_defines(&src, &defs, why, sizeof why)) {
    jit_log(n_opts, opts, vals, "simulated driver: %s", why);
    sim_image_free(&img);
    LEAVE(SIM_ERROR_INVALID_IMAGE);
  }
  /* The text NVRTC compiled; its copy of cuda_prelude.h drops out by its
   * include guard, and emu_prelude.h (pre-included by the emulator) maps the
   * dialect instead. */
  size_t n = strlen(defs) + strlen(src.source) + 64;
  char *text = xmalloc(n);
  snprintf(text, n, "#define DITC_CUDA_PRELUDE_H 1\n%s%s", defs, src.source);
  free(defs);
  IrErr e;
  char name[128];
  snprintf(name, sizeof name, "sim %s", src.name);
  EmuModule *emu = emu_module_load(text, name, &e);
  free(text);
  if (!emu) {
    jit_log(n_opts, opts, vals, "simulated driver: the emulator cannot compile the CUBIN's source %s: %.3000s", src.name,
            e.msg);
    sim_image_free(&img);
    LEAVE(SIM_ERROR_INVALID_IMAGE);
  }
  for (int i = 0; i < img.n_kernels; i++)
    if (!emu_module_has_kernel(emu, img.kernels[i].name)) {
      jit_log(n_opts, opts, vals, "simulated driver: the CUBIN has a kernel %s that its source %s lacks",
              img.kernels[i].name, src.name);
      sim_image_free(&img);
      LEAVE(SIM_ERROR_INVALID_IMAGE);
    }
  static long serials;
  struct CUmod_st *m = xcalloc(1, sizeof *m);
  m->serial = ++serials;
  m->img = img;
  m->emu = emu;
  m->funcs = xcalloc((size_t)img.n_kernels + 1, sizeof *m->funcs);
  SimParams *params = xcalloc((size_t)img.n_kernels + 1, sizeof *params);
  sim_params_read(src.source, &m->img, params);
  for (int i = 0; i < img.n_kernels; i++) {
    int dflt = DEFAULT_SMEM_PER_BLOCK - (int)img.kernels[i].static_smem;
    m->funcs[i] = (struct CUfunc_st){m, &m->img.kernels[i], params[i], dflt > 0 ? dflt : 0};
  }
  free(params);
  m->next = modules;
  modules = m;
  *out = m;
  LEAVE(0);
}

static struct CUmod_st *module_live(CUmodule mod) {
  for (struct CUmod_st *m = modules; m; m = m->next)
    if (m == mod) return m;
  return NULL;
}

static RtCuResult sim_module_unload(CUmodule mod) {
  ENTER_CTX();
  if ((r_ = capture_forbids("cuModuleUnload"))) LEAVE(r_);
  struct CUmod_st *m = module_take(&modules, mod);
  if (!m) LEAVE(sim_fail(SIM_ERROR_INVALID_HANDLE, "not a loaded module"));
  module_free(m);
  LEAVE(0);
}

static RtCuResult sim_module_function(CUfunction *f, CUmodule mod, const char *name) {
  ENTER_CTX();
  struct CUmod_st *m = module_live(mod);
  if (!m) LEAVE(sim_fail(SIM_ERROR_INVALID_HANDLE, "not a loaded module"));
  if (!f || !name) LEAVE(RT_CUDA_ERROR_INVALID_VALUE);
  for (int i = 0; i < m->img.n_kernels; i++)
    if (!strcmp(m->img.kernels[i].name, name)) {
      *f = &m->funcs[i];
      LEAVE(0);
    }
  LEAVE(sim_fail(SIM_ERROR_NOT_FOUND, "the module has no kernel named %s", name));
}

static RtCuResult sim_func_attribute(CUfunction f, int attr, int value) {
  ENTER_CTX();
  if (!f || !func_live(f, -1)) LEAVE(sim_fail(SIM_ERROR_INVALID_HANDLE, "not a function of a loaded module"));
  if (attr == RT_CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES) {
    int most = the_arch->smem_per_block_optin - (int)f->k->static_smem;
    if (value < 0 || value > most)
      LEAVE(sim_fail(RT_CUDA_ERROR_INVALID_VALUE, "kernel %s: %d bytes of dynamic shared memory; %s allows at most "
                     "%d (%d opt-in per block less %u static)", f->k->name, value, the_arch->arch, most,
                     the_arch->smem_per_block_optin, f->k->static_smem));
    f->max_dyn_smem = value;
    LEAVE(0);
  }
  if (attr == 9) { /* PREFERRED_SHARED_MEMORY_CARVEOUT: a hint, percent or -1 */
    if (value < -1 || value > 100) LEAVE(sim_fail(RT_CUDA_ERROR_INVALID_VALUE, "carveout %d%%", value));
    LEAVE(0);
  }
  LEAVE(sim_fail(RT_CUDA_ERROR_INVALID_VALUE, "function attribute %d is not simulated", attr));
}

/* The most threads a block of f may have: __launch_bounds__, and what its
 * registers allow (allocated per warp in units of 256). */
static unsigned max_threads(const SimKernel *k, char *why, size_t n) {
  unsigned most = MAX_BLOCK_THREADS;
  snprintf(why, n, "the device's %d", MAX_BLOCK_THREADS);
  if (k->max_threads && k->max_threads < most) {
    most = k->max_threads;
    snprintf(why, n, "its __launch_bounds__(%u)", k->max_threads);
  }
  if (k->regs > 0) {
    unsigned per_warp = ((unsigned)k->regs * 32 + 255) / 256 * 256;
    unsigned by_regs = REGS_PER_BLOCK / per_warp * 32;
    if (by_regs < most) {
      most = by_regs;
      snprintf(why, n, "its %d registers per thread in %d per block", k->regs, REGS_PER_BLOCK);
    }
  }
  return most;
}

static RtCuResult sim_launch(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                             unsigned bz, unsigned smem, CUstream s, void **params, void **extra) {
  ENTER_CTX();
  if (!f || !func_live(f, -1)) LEAVE(sim_fail(SIM_ERROR_INVALID_HANDLE, "not a function of a loaded module"));
  const SimKernel *k = f->k;
  if (!stream_valid(s)) LEAVE(sim_fail(SIM_ERROR_INVALID_HANDLE, "kernel %s: not a stream of this context", k->name));
  if (!gx || !gy || !gz || gx > 2147483647u || gy > 65535 || gz > 65535)
    LEAVE(sim_fail(RT_CUDA_ERROR_INVALID_VALUE, "kernel %s: grid (%u, %u, %u) is outside (1..2^31-1, 1..65535, "
                   "1..65535)", k->name, gx, gy, gz));
  uint64_t threads = (uint64_t)bx * by * bz;
  if (!bx || !by || !bz || bx > 1024 || by > 1024 || bz > 64 || threads > MAX_BLOCK_THREADS)
    LEAVE(sim_fail(RT_CUDA_ERROR_INVALID_VALUE, "kernel %s: block (%u, %u, %u) is outside the device's limits "
                   "(x, y <= 1024, z <= 64, at most %d threads)", k->name, bx, by, bz, MAX_BLOCK_THREADS));
  if ((k->reqntid[0] || k->reqntid[1] || k->reqntid[2]) &&
      (bx != k->reqntid[0] || by != k->reqntid[1] || bz != k->reqntid[2]))
    LEAVE(sim_fail(RT_CUDA_ERROR_INVALID_VALUE, "kernel %s requires blocks of (%u, %u, %u), not (%u, %u, %u)", k->name,
                   k->reqntid[0], k->reqntid[1], k->reqntid[2], bx, by, bz));
  char why[160];
  unsigned most = max_threads(k, why, sizeof why);
  if (threads > most)
    LEAVE(sim_fail(SIM_ERROR_LAUNCH_OUT_OF_RESOURCES, "kernel %s: a block of %llu threads; %s allow%s at most %u",
                   k->name, (unsigned long long)threads, why, strstr(why, "registers") ? "" : "s", most));
  if ((int)smem > f->max_dyn_smem)
    LEAVE(sim_fail(RT_CUDA_ERROR_INVALID_VALUE, "kernel %s: %u bytes of dynamic shared memory, more than its "
                   "CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES (%d%s)", k->name, smem, f->max_dyn_smem,
                   f->max_dyn_smem + (int)k->static_smem <= DEFAULT_SMEM_PER_BLOCK
                       ? ": above 48 KiB a kernel must opt in with cuFuncSetAttribute"
                       : ""));
  if (params && extra) LEAVE(sim_fail(RT_CUDA_ERROR_INVALID_VALUE, "kernel %s: both kernelParams and extra", k->name));
  /* Parameters: kernelParams[i] points to parameter i, or extra carries one buffer. */
  const void *buf = NULL;
  size_t buf_size = 0;
  for (int i = 0; extra && extra[i]; i += 2) {
    if (extra[i] == (void *)(uintptr_t)1) buf = extra[i + 1];                               /* BUFFER_POINTER */
    else if (extra[i] == (void *)(uintptr_t)2) buf_size = *(const size_t *)extra[i + 1];    /* BUFFER_SIZE */
    else LEAVE(sim_fail(RT_CUDA_ERROR_INVALID_VALUE, "kernel %s: unknown launch option in extra", k->name));
  }
  if (k->n_params != 1)
    LEAVE(sim_fail(SIM_ERROR_NOT_SUPPORTED, "kernel %s has %d parameters; the simulation runs the kernel dialect's "
                   "kernels, which take one parameter struct", k->name, k->n_params));
  size_t n = k->param_size[0];
  if (!params && (!buf || buf_size < k->param_offset[0] + n))
    LEAVE(sim_fail(RT_CUDA_ERROR_INVALID_VALUE, "kernel %s: no parameters given for its %zu bytes", k->name, n));
  Op op = {.kind = OP_KERNEL};
  op.u.k.f = f;
  op.u.k.serial = f->mod->serial;
  op.u.k.grid[0] = gx, op.u.k.grid[1] = gy, op.u.k.grid[2] = gz;
  op.u.k.block[0] = bx, op.u.k.block[1] = by, op.u.k.block[2] = bz;
  op.u.k.smem = smem;
  op.u.k.n = n;
  op.u.k.params = aligned_alloc(16, (n + 15) & ~(size_t)15);
  if (!op.u.k.params) ditc_fatal(__FILE__, __LINE__, "out of memory");
  memset(op.u.k.params, 0, (n + 15) & ~(size_t)15);
  memcpy(op.u.k.params, params ? params[0] : (const char *)buf + k->param_offset[0], n);
  LEAVE(enqueue(s, &op));
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
  if (!stream_valid(s)) LEAVE(sim_fail(SIM_ERROR_INVALID_HANDLE, "not a stream of this context"));
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
  if (!event_live(e) || !stream_valid(s)) LEAVE(sim_fail(SIM_ERROR_INVALID_HANDLE, "not an event or stream of this context"));
  Op op = {.kind = OP_EVENT};
  op.u.ev = e;
  LEAVE(enqueue(s, &op));
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
  if (!stream_valid(s)) LEAVE(sim_fail(SIM_ERROR_INVALID_HANDLE, "not a stream of this context"));
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
  if (!x || !stream_valid(s)) LEAVE(sim_fail(SIM_ERROR_INVALID_HANDLE, "not a stream of this context"));
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
  if (!stream_valid(s)) LEAVE(sim_fail(SIM_ERROR_INVALID_HANDLE, "not a stream of this context"));
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
      .ModuleLoadDataEx = sim_module_load,
      .ModuleUnload = sim_module_unload,
      .ModuleGetFunction = sim_module_function,
      .FuncSetAttribute = sim_func_attribute,
      .LaunchKernel = sim_launch,
      .MemAlloc = sim_mem_alloc,
      .MemFree = sim_mem_free,
      .MemGetInfo = sim_mem_info,
      .MemsetD8 = sim_memset8,
      .MemsetD8Async = sim_memset8_async,
      .MemsetD32 = sim_memset32,
      .MemsetD32Async = sim_memset32_async,
      .MemcpyHtoD = sim_htod,
      .MemcpyDtoH = sim_dtoh,
      .MemcpyDtoD = sim_dtod,
      .MemcpyHtoDAsync = sim_htod_async,
      .MemcpyDtoHAsync = sim_dtoh_async,
      .MemcpyDtoDAsync = sim_dtod_async,
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
}
