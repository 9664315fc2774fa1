/*
 * emu.c - the emulated device: compile a kernel source with the host C
 * compiler, load it, and run its blocks of threads on the CPU.
 *
 * Loading: the source is written to a fresh temporary folder next to a copy
 * of emu_prelude.h (embedded into the library, codegen/embed.c, so an
 * installed ditc needs no source tree), compiled with `$DITC_EMU_CC
 * -std=gnu11 -O2 -fPIC -shared -include emu_prelude.h $DITC_EMU_CFLAGS
 * -ffp-contract=off`, dlopen'ed, and handed the
 * emulator's callbacks through its ditc_emu_module_init.  Modules are cached
 * by source text for the life of the process.  The folder, its files and the
 * compiler's process are registered with ir/fileio.h, so neither a failure
 * nor SIGINT/SIGTERM leaves a ditc-emu-* folder behind.
 *
 * Launching: blocks are shared out to OpenMP threads; each OS thread owns a
 * Worker with one fiber per thread of the block, reused from block
 * to block.  Fiber stacks lie in DITC_EMU_FIBER_SLOT-aligned slots of one
 * mapping: the slot's first page points to the fiber's DitcEmuThread (how the
 * module's built-ins find the current thread), a guard page follows, then
 * the stack.  A Worker's scheduler
 * runs every ready fiber in turn until it ends or waits at a barrier: the
 * block barrier (__syncthreads) or its warp's barrier (shuffles,
 * __syncwarp).  When no fiber is ready it releases a barrier every live
 * thread of its scope has reached - threads that returned count as arrived,
 * CUDA's undefined-but-common behaviour - and when none can be released the
 * block is deadlocked and the launch fails with a message instead of hanging.
 * __syncthreads at different source lines are different barriers.
 *
 * Shuffles go through per-warp slots, double-buffered by a per-thread
 * shuffle count so one warp barrier per shuffle suffices: a thread can only
 * write a buffer again after the next barrier, which every reader of that
 * buffer has passed.  A lane that returned, or that does not exist in a
 * partial warp, or is out of the width segment, yields the caller's value.
 *
 * Warp collectives (the prelude's mma.sync and ldmatrix) are stricter, as
 * the PTX ISA makes them: each lane records the operation's name and a
 * pointer to its operands and waits at the warp barrier; the first lane to
 * resume checks that all 32 lanes are there at the same collective count in
 * the same operation, and the prelude then does the whole warp's work in
 * that lane while the others are still suspended.  A partial warp, a lane
 * that returned, or a lane elsewhere is a fault.  A fault (cb_fault, also
 * the prelude's misaligned addresses) stops the thread where it is; the
 * block is abandoned like a deadlocked one and the launch fails with the
 * message, as a device fault fails a CUDA launch.
 *
 * Fibers switch with a few lines of assembly on x86-64 (ucontext's
 * swapcontext makes a signal-mask system call per switch, ten times the
 * cost) and with ucontext elsewhere.  Built with AddressSanitizer, every fiber switch is announced with
 * __sanitizer_start/finish_switch_fiber so ASan follows the stacks.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <omp.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

#include "codegen/emu.h"
#include "ir/fileio.h"
#define DITC_EMU_ABI_ONLY
#include "codegen/emu_prelude.h"

extern char **environ;

#if defined(__SANITIZE_ADDRESS__)
#define EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EMU_ASAN 1
#endif
#endif
#ifdef EMU_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

/* ---- context switching ---------------------------------------------------- */

static void fiber_main(void);

#if defined(__x86_64__) && !defined(DITC_EMU_UCONTEXT) /* -DDITC_EMU_UCONTEXT tests the other path */
/* ditc_emu_switch(save, next): push the callee-saved registers, store the
 * stack pointer in *save, load next, pop and return into the other context.
 * The x87 and SSE control words are not switched: kernels leave them alone. */
void ditc_emu_switch(void **save, void *next);
__asm__(".text\n"
        ".globl ditc_emu_switch\n.hidden ditc_emu_switch\n.type ditc_emu_switch, @function\n"
        "ditc_emu_switch:\n"
        "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
        "  movq %rsp, (%rdi)\n"
        "  movq %rsi, %rsp\n"
        "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
        "  ret\n"
        ".size ditc_emu_switch, . - ditc_emu_switch\n");

typedef struct {
  void *sp;
} Ctx;

static void ctx_switch(Ctx *from, Ctx *to) { ditc_emu_switch(&from->sp, to->sp); }

/* A fresh stack that "returns" into fiber_main with the alignment of a call. */
static int ctx_make(Ctx *c, char *stack, size_t size) {
  uintptr_t top = ((uintptr_t)stack + size) & ~(uintptr_t)15;
  void **sp = (void **)top;
  *--sp = NULL;                /* fiber_main's return address: it never returns */
  void (*entry)(void) = fiber_main;
  sp--;
  memcpy(sp, &entry, sizeof entry); /* where ditc_emu_switch's ret goes */
  for (int i = 0; i < 6; i++) *--sp = NULL; /* rbp rbx r12-r15 */
  c->sp = sp;
  return 0;
}
#else
typedef struct {
  ucontext_t uc;
} Ctx;

static void ctx_switch(Ctx *from, Ctx *to) { swapcontext(&from->uc, &to->uc); }

/* Apart from its callers: getcontext returns twice (-Wclobbered). */
static int ctx_make(Ctx *c, char *stack, size_t size) {
  if (getcontext(&c->uc) != 0) return -1;
  c->uc.uc_stack.ss_sp = stack;
  c->uc.uc_stack.ss_size = size;
  c->uc.uc_link = NULL;
  makecontext(&c->uc, fiber_main, 0);
  return 0;
}
#endif

/* ---- limits (sm_90's) ---------------------------------------------------- */

enum {
  EMU_MAX_THREADS = 1024,
  EMU_MAX_DYN_SHARED = 227 * 1024,
  EMU_WARP = 32,
  EMU_SLOT_BYTES = 16,
};

/* ---- fibers and workers --------------------------------------------------- */

enum { F_READY, F_WAIT_BLOCK, F_WAIT_WARP, F_DONE, F_FAULT };

typedef struct Worker Worker;

typedef struct {
  DitcEmuThread t; /* first: the module's view of this thread */
  Ctx ctx;
  Worker *w;
  char *stack;
  int state;
  int site; /* the __syncthreads line while in F_WAIT_BLOCK */
  unsigned lane, warp, shfl_seq; /* shfl_seq counts shuffles and collectives */
  void *fake_stack; /* ASan's saved fake stack while switched out */
} Fiber;

typedef struct {
  unsigned char bytes[EMU_SLOT_BYTES];
  unsigned seq;
} Slot;

/* A lane's place in a warp collective: op is set while the lane is inside
 * one, done once the warp's work has been done for it. */
typedef struct {
  const char *op;
  void *arg;
  unsigned seq;
  int done;
} Coll;

struct Worker {
  Ctx sched;
  Fiber *fibers;
  Slot *slots; /* [warp][2][lane] */
  Coll *coll;  /* [thread] */
  DitcEmuCpAsync *cp; /* [thread][DITC_EMU_CP_ASYNC_MAX]: the prelude's cp.async queues */
  void **coll_args; /* [warp][lane]: what the lane doing a collective's work gets */
  char fault[200]; /* set by a fault: the block stops */
  unsigned cap; /* fibers, stacks and warps' slots for this many threads */
  char *map;
  size_t map_size, stack_size;
  unsigned char *dyn;
  size_t dyn_cap;
  Fiber *cur;
  DitcEmuEntry entry;
  void **args;
  unsigned live;
  const void *sched_bottom; /* ASan: the OS thread's own stack */
  size_t sched_size;
  void *sched_fake;
};

static __thread Worker *tls_worker;

static size_t page_size(void) {
  long p = sysconf(_SC_PAGESIZE);
  return p > 0 ? (size_t)p : 4096;
}

static void worker_release(Worker *w) {
  if (w->map) munmap(w->map, w->map_size);
  free(w->fibers);
  free(w->slots);
  free(w->coll);
  free(w->coll_args);
  free(w->cp);
  free(w->dyn);
  memset(w, 0, sizeof *w);
}

/* Room for n threads and dyn bytes of dynamic shared memory. */
static int worker_reserve(Worker *w, unsigned n, size_t dyn, char *msg, size_t msg_size) {
  if (n > w->cap) {
    const size_t slot = DITC_EMU_FIBER_SLOT, pg = page_size();
    DITC_ASSERT(slot % pg == 0 && 4 * pg <= slot);
    size_t size = (size_t)(n + 1) * slot; /* one more to align the start */
    char *map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                     -1, 0);
    if (map == MAP_FAILED) {
      snprintf(msg, msg_size, "emu: cannot map %zu bytes of fiber stacks: %s", size, strerror(errno));
      return -1;
    }
    char *base = (char *)(((uintptr_t)map + slot - 1) & ~(uintptr_t)(slot - 1));
    for (unsigned i = 0; i < n; i++)
      if (mprotect(base + (size_t)i * slot + pg, pg, PROT_NONE) != 0) {
        snprintf(msg, msg_size, "emu: mprotect: %s", strerror(errno));
        munmap(map, size);
        return -1;
      }
    if (w->map) munmap(w->map, w->map_size);
    w->map = map;
    w->map_size = size;
    w->stack_size = slot - 2 * pg - 64; /* the stack's top stays inside the slot */
    free(w->fibers);
    free(w->slots);
    free(w->coll);
    free(w->coll_args);
    free(w->cp);
    w->fibers = xcalloc(n, sizeof *w->fibers);
    unsigned warps = (n + EMU_WARP - 1) / EMU_WARP;
    w->slots = xcalloc((size_t)warps * 2 * EMU_WARP, sizeof *w->slots);
    w->coll = xcalloc((size_t)warps * EMU_WARP, sizeof *w->coll);
    w->coll_args = xcalloc((size_t)warps * EMU_WARP, sizeof *w->coll_args);
    w->cp = xcalloc((size_t)n * DITC_EMU_CP_ASYNC_MAX, sizeof *w->cp);
    for (unsigned i = 0; i < n; i++) {
      Fiber *f = &w->fibers[i];
      char *s = base + (size_t)i * slot;
      f->w = w;
      f->stack = s + 2 * pg;
      f->t.cp = w->cp + (size_t)i * DITC_EMU_CP_ASYNC_MAX;
      DitcEmuThread *t = &f->t;
      memcpy(s, &t, sizeof t);
    }
    w->cap = n;
  }
  if (dyn > w->dyn_cap) {
    free(w->dyn);
    w->dyn = aligned_alloc(16, (dyn + 15) & ~(size_t)15);
    if (!w->dyn) {
      w->dyn_cap = 0;
      snprintf(msg, msg_size, "emu: out of memory for %zu bytes of shared memory", dyn);
      return -1;
    }
    w->dyn_cap = dyn;
  }
  return 0;
}

/* Scheduler -> fiber f, until f waits or ends. */
static void switch_to_fiber(Worker *w, Fiber *f) {
  w->cur = f;
#ifdef EMU_ASAN
  __sanitizer_start_switch_fiber(&w->sched_fake, f->stack, w->stack_size);
#endif
  ctx_switch(&w->sched, &f->ctx);
#ifdef EMU_ASAN
  __sanitizer_finish_switch_fiber(w->sched_fake, NULL, NULL);
#endif
}

/* Fiber f -> scheduler; returns when the scheduler runs f again. */
static void fiber_yield(Fiber *f) {
  Worker *w = f->w;
#ifdef EMU_ASAN
  __sanitizer_start_switch_fiber(f->state == F_DONE ? NULL : &f->fake_stack, w->sched_bottom,
                                 w->sched_size);
#endif
  ctx_switch(&f->ctx, &w->sched);
#ifdef EMU_ASAN
  __sanitizer_finish_switch_fiber(f->fake_stack, NULL, NULL);
#endif
}

static void fiber_main(void) {
  Worker *w = tls_worker;
  Fiber *f = w->cur;
#ifdef EMU_ASAN
  __sanitizer_finish_switch_fiber(NULL, &w->sched_bottom, &w->sched_size);
#endif
  w->entry(w->args);
  f->state = F_DONE;
  w->live--;
  fiber_yield(f);
  ditc_unreachable(); /* a finished fiber is never resumed */
}

/* ---- the callbacks the module's built-ins call ------------------------- */

static void cb_syncthreads(DitcEmuThread *t, int line) {
  Fiber *f = (Fiber *)t;
  f->state = F_WAIT_BLOCK;
  f->site = line;
  fiber_yield(f);
}

static void cb_syncwarp(DitcEmuThread *t) {
  Fiber *f = (Fiber *)t;
  f->state = F_WAIT_WARP;
  fiber_yield(f);
}

static void cb_shfl(DitcEmuThread *t, int kind, const void *in, void *out, unsigned size, int arg,
                    int width) {
  Fiber *f = (Fiber *)t;
  DITC_ASSERT(size <= EMU_SLOT_BYTES);
  Slot *s = f->w->slots + ((size_t)f->warp * 2 + (f->shfl_seq & 1)) * EMU_WARP;
  memcpy(s[f->lane].bytes, in, size);
  s[f->lane].seq = f->shfl_seq;
  f->state = F_WAIT_WARP;
  fiber_yield(f);

  if (width <= 0 || width > EMU_WARP || (width & (width - 1))) width = EMU_WARP;
  int lane = (int)f->lane, base = lane & ~(width - 1), src = lane;
  switch (kind) {
  case DITC_EMU_SHFL_IDX: src = base + (arg & (width - 1)); break;
  case DITC_EMU_SHFL_UP: src = lane - arg; break;
  case DITC_EMU_SHFL_DOWN: src = lane + arg; break;
  case DITC_EMU_SHFL_XOR: src = lane ^ arg; break;
  default: ditc_unreachable();
  }
  if (src < base || src >= base + width || s[src].seq != f->shfl_seq) src = lane;
  memcpy(out, src == lane ? in : s[src].bytes, size);
  f->shfl_seq++;
}

/* Stops fiber f for good with a message; run_block ends the block. */
static void fiber_fault(Fiber *f, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
static void fiber_fault(Fiber *f, const char *fmt, ...) {
  Worker *w = f->w;
  int n = snprintf(w->fault, sizeof w->fault, "thread (%u,%u,%u): ", f->t.threadIdx.x,
                   f->t.threadIdx.y, f->t.threadIdx.z);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(w->fault + n, sizeof w->fault - (size_t)n, fmt, ap);
  va_end(ap);
  f->state = F_FAULT;
  fiber_yield(f);
  ditc_unreachable(); /* a faulted fiber is never resumed */
}

static void cb_fault(DitcEmuThread *t, const char *msg) { fiber_fault((Fiber *)t, "%s", msg); }

static int cb_collective(DitcEmuThread *t, const char *op, void *arg, void *const **lanes) {
  Fiber *f = (Fiber *)t;
  Worker *w = f->w;
  Coll *mine = &w->coll[f->warp * EMU_WARP + f->lane];
  *mine = (Coll){op, arg, f->shfl_seq, 0};
  f->state = F_WAIT_WARP;
  fiber_yield(f);
  unsigned seq = f->shfl_seq++;
  int done = mine->done;
  mine->op = NULL;
  if (done) return 0;

  /* The first lane back: all 32 must be here, in this very operation. */
  unsigned base = f->warp * EMU_WARP,
           n = f->t.blockDim.x * f->t.blockDim.y * f->t.blockDim.z;
  if (base + EMU_WARP > n)
    fiber_fault(f, "%s needs a full warp, and warp %u of this %u-thread block has %u lanes", op,
                f->warp, n, n - base);
  void **args = w->coll_args + base;
  for (unsigned l = 0; l < EMU_WARP; l++) {
    const Fiber *g = &w->fibers[base + l];
    const Coll *c = &w->coll[base + l];
    if (g == f) {
      args[l] = arg;
      continue;
    }
    if (g->state == F_DONE) fiber_fault(f, "%s: lane %u of the warp has returned", op, l);
    if (!c->op) fiber_fault(f, "%s: lane %u of the warp waits in a shuffle or __syncwarp", op, l);
    if (c->seq != seq || strcmp(c->op, op))
      fiber_fault(f, "%s: lane %u of the warp is in another collective (%s)", op, l, c->op);
    args[l] = c->arg;
  }
  for (unsigned l = 0; l < EMU_WARP; l++) w->coll[base + l].done = 1;
  *lanes = args;
  return 1;
}

/* Static shared memory: kept on a list until emu_shutdown. */
typedef struct SharedBlock {
  struct SharedBlock *next;
  _Alignas(16) unsigned char data[];
} SharedBlock;
static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;
static SharedBlock *shared_blocks;

static void *cb_alloc(size_t size) {
  SharedBlock *b = xcalloc(1, sizeof *b + size);
  pthread_mutex_lock(&shared_lock);
  b->next = shared_blocks;
  shared_blocks = b;
  pthread_mutex_unlock(&shared_lock);
  return b->data;
}

static const DitcEmuRt emu_rt = {DITC_EMU_ABI_VERSION, cb_syncthreads, cb_syncwarp, cb_shfl,
                                 cb_alloc, cb_collective, cb_fault};

/* ---- running one block ---------------------------------------------------- */

typedef struct {
  DitcEmuEntry entry;
  void **args;
  EmuDim3 grid, block;
  unsigned nthreads;
  const char *kernel;
} Launch;

/* Releases whichever barrier is complete; 0 if none is. */
static int release_barrier(Worker *w, unsigned n) {
  Fiber *fs = w->fibers;
  int all_block = 1, site = -1;
  for (unsigned i = 0; i < n && all_block; i++) {
    if (fs[i].state == F_DONE) continue;
    if (fs[i].state != F_WAIT_BLOCK || (site >= 0 && fs[i].site != site)) all_block = 0;
    site = fs[i].site;
  }
  if (all_block) {
    for (unsigned i = 0; i < n; i++)
      if (fs[i].state == F_WAIT_BLOCK) fs[i].state = F_READY;
    return 1;
  }
  int released = 0;
  for (unsigned base = 0; base < n; base += EMU_WARP) {
    unsigned end = base + EMU_WARP < n ? base + EMU_WARP : n;
    int all = 1, any = 0;
    for (unsigned i = base; i < end; i++) {
      if (fs[i].state == F_DONE) continue;
      any = 1;
      if (fs[i].state != F_WAIT_WARP) all = 0;
    }
    if (!all || !any) continue;
    for (unsigned i = base; i < end; i++)
      if (fs[i].state == F_WAIT_WARP) fs[i].state = F_READY;
    released = 1;
  }
  return released;
}

static int describe_wait(const Fiber *f, char *buf, size_t size) {
  if (f->state == F_WAIT_BLOCK)
    return snprintf(buf, size, "thread (%u,%u,%u) waits at __syncthreads on line %d", f->t.threadIdx.x,
                    f->t.threadIdx.y, f->t.threadIdx.z, f->site);
  const Coll *c = &f->w->coll[f->warp * EMU_WARP + f->lane];
  if (c->op)
    return snprintf(buf, size, "thread (%u,%u,%u) waits in %s", f->t.threadIdx.x, f->t.threadIdx.y,
                    f->t.threadIdx.z, c->op);
  return snprintf(buf, size, "thread (%u,%u,%u) waits in a warp shuffle or __syncwarp",
                  f->t.threadIdx.x, f->t.threadIdx.y, f->t.threadIdx.z);
}

/* The block's fibers are left where they are, never to resume. */
static void abandon_block(Worker *w, unsigned n) {
  for (unsigned i = 0; i < n; i++) w->coll[i].op = NULL;
#ifdef EMU_ASAN
  /* The abandoned frames' redzones would poison the stacks' next use. */
  for (unsigned i = 0; i < n; i++) __asan_unpoison_memory_region(w->fibers[i].stack, w->stack_size);
#else
  (void)n;
#endif
}

static int run_block(Worker *w, unsigned worker, const Launch *L, unsigned bx, unsigned by, unsigned bz, char *msg,
                     size_t msg_size) {
  unsigned n = L->nthreads, bdx = L->block.x, bdy = L->block.y;
  w->entry = L->entry;
  w->args = L->args;
  w->live = n;
  for (unsigned i = 0; i < ((n + EMU_WARP - 1) / EMU_WARP) * 2 * EMU_WARP; i++)
    w->slots[i].seq = ~0u;
  for (unsigned i = 0; i < n; i++) {
    Fiber *f = &w->fibers[i];
    f->t.threadIdx = (uint3){i % bdx, i / bdx % bdy, i / (bdx * bdy)};
    f->t.blockIdx = (uint3){bx, by, bz};
    f->t.blockDim = (dim3){L->block.x, L->block.y, L->block.z};
    f->t.gridDim = (dim3){L->grid.x, L->grid.y, L->grid.z};
    f->t.dyn_shared = w->dyn;
    f->t.worker = worker;
    f->state = F_READY;
    f->site = -1;
    f->lane = i % EMU_WARP;
    f->warp = i / EMU_WARP;
    f->shfl_seq = 0;
    f->fake_stack = NULL;
    if (ctx_make(&f->ctx, f->stack, w->stack_size) != 0) {
      snprintf(msg, msg_size, "emu: getcontext: %s", strerror(errno));
      return -1;
    }
  }
  for (;;) {
    for (unsigned i = 0; i < n; i++) {
      if (w->fibers[i].state != F_READY) continue;
      switch_to_fiber(w, &w->fibers[i]);
      if (w->fault[0]) {
        snprintf(msg, msg_size, "emu: kernel %s: block (%u,%u,%u) %s", L->kernel, bx, by, bz, w->fault);
        w->fault[0] = 0;
        abandon_block(w, n);
        return -1;
      }
    }
    if (w->live == 0) return 0;
    if (release_barrier(w, n)) continue;

    /* Deadlock: name two threads that wait at different places. */
    const Fiber *a = NULL, *b = NULL;
    for (unsigned i = 0; i < n && !b; i++) {
      const Fiber *f = &w->fibers[i];
      if (f->state == F_DONE) continue;
      if (!a) a = f;
      else if (f->state != a->state || f->site != a->site) b = f;
    }
    DITC_ASSERT(a && b);
    char da[160], db[160];
    describe_wait(a, da, sizeof da);
    describe_wait(b, db, sizeof db);
    snprintf(msg, msg_size, "emu: kernel %s: block (%u,%u,%u) deadlocked: %s, %s", L->kernel, bx, by,
             bz, da, db);
    abandon_block(w, n);
    return -1;
  }
}

/* ---- launching ------------------------------------------------------------ */

static pthread_mutex_t launch_lock = PTHREAD_MUTEX_INITIALIZER;
static Worker **pool;
static int pool_size;

struct EmuModule {
  EmuModule *next;
  uint64_t hash;
  char *source, *name;
  void *dl;
};

static DitcEmuEntry find_entry(EmuModule *m, const char *kernel) {
  size_t n = strlen(DITC_EMU_KERNEL_PREFIX) + strlen(kernel) + 1;
  char *sym = xmalloc(n);
  snprintf(sym, n, "%s%s", DITC_EMU_KERNEL_PREFIX, kernel);
  void *p = dlsym(m->dl, sym);
  free(sym);
  DitcEmuEntry e;
  memcpy(&e, &p, sizeof e); /* object to function pointer, as dlsym intends */
  return e;
}

int emu_module_has_kernel(EmuModule *m, const char *kernel) {
  return m && kernel && find_entry(m, kernel) != NULL;
}

int emu_launch(EmuModule *m, const char *kernel, EmuDim3 grid, EmuDim3 block,
               size_t dyn_shared_bytes, void **args, IrErr *err) {
  if (!m || !kernel) return ir_errf(err, "emu: launch without a module or kernel name");
  Launch L = {find_entry(m, kernel), args, grid, block, 0, kernel};
  if (!L.entry) return ir_errf(err, "emu: module %s has no kernel '%s'", m->name, kernel);
  if (!args || !args[0])
    return ir_errf(err, "emu: kernel %s: args[0] must point to the params struct", kernel);
  if (!grid.x || !grid.y || !grid.z || grid.x > 0x7fffffffu || grid.y > 65535 || grid.z > 65535)
    return ir_errf(err, "emu: kernel %s: invalid grid (%u,%u,%u)", kernel, grid.x, grid.y, grid.z);
  uint64_t nthreads = (uint64_t)block.x * block.y * block.z;
  if (!nthreads || block.x > 1024 || block.y > 1024 || block.z > 64 || nthreads > EMU_MAX_THREADS)
    return ir_errf(err, "emu: kernel %s: invalid block (%u,%u,%u): at most %d threads", kernel,
                   block.x, block.y, block.z, EMU_MAX_THREADS);
  if (dyn_shared_bytes > EMU_MAX_DYN_SHARED)
    return ir_errf(err, "emu: kernel %s: %zu bytes of dynamic shared memory, at most %d", kernel,
                   dyn_shared_bytes, EMU_MAX_DYN_SHARED);
  L.nthreads = (unsigned)nthreads;

  long long nblocks = (long long)grid.x * grid.y * grid.z;
  int nt = omp_get_max_threads();
  if (nt > DITC_EMU_MAX_WORKERS) nt = DITC_EMU_MAX_WORKERS;
  if (nt > nblocks) nt = (int)nblocks;
  if (nt < 1) nt = 1;

  pthread_mutex_lock(&launch_lock);
  if (pool_size < nt) {
    pool = xrealloc(pool, (size_t)nt * sizeof *pool);
    for (int i = pool_size; i < nt; i++) pool[i] = xcalloc(1, sizeof **pool);
    pool_size = nt;
  }
  int failed = 0; /* written under the critical section, read atomically */
  char msg[sizeof err->msg] = "";
#pragma omp parallel num_threads(nt)
  {
    Worker *w = pool[omp_get_thread_num()];
    char my[sizeof msg] = "";
    int bad = worker_reserve(w, L.nthreads, dyn_shared_bytes, my, sizeof my);
    tls_worker = w;
#pragma omp for schedule(dynamic, 1)
    for (long long b = 0; b < nblocks; b++) {
      if (bad || __atomic_load_n(&failed, __ATOMIC_RELAXED)) continue;
      unsigned bx = (unsigned)(b % grid.x), by = (unsigned)(b / grid.x % grid.y),
               bz = (unsigned)(b / ((long long)grid.x * grid.y));
      bad = run_block(w, (unsigned)omp_get_thread_num(), &L, bx, by, bz, my, sizeof my);
    }
    tls_worker = NULL;
    if (bad) {
#pragma omp critical(ditc_emu_error)
      if (!failed) {
        __atomic_store_n(&failed, 1, __ATOMIC_RELAXED);
        memcpy(msg, my, sizeof msg);
      }
    }
  }
  pthread_mutex_unlock(&launch_lock);
  return failed ? ir_errf(err, "%s", msg) : 0;
}

/* ---- compiling and loading -------------------------------------------- */

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static EmuModule *cache;

static uint64_t fnv1a(uint64_t h, const char *s) {
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
  return (h ^ 0xff) * 0x100000001b3ull; /* separator between strings */
}

/* Splits s on blanks, appending to argv (NULL-terminated, grown as needed). */
static void split_words(const char *s, char ***argv, int *argc) {
  while (s && *s) {
    while (*s == ' ' || *s == '\t' || *s == '\n') s++;
    const char *e = s;
    while (*e && *e != ' ' && *e != '\t' && *e != '\n') e++;
    if (e > s) {
      *argv = xrealloc(*argv, (size_t)(*argc + 2) * sizeof **argv);
      (*argv)[(*argc)++] = strndup(s, (size_t)(e - s));
      if (!(*argv)[*argc - 1]) fio_oom((size_t)(e - s) + 1);
      (*argv)[*argc] = NULL;
    }
    s = e;
  }
}

static void push_arg(char ***argv, int *argc, const char *a) {
  *argv = xrealloc(*argv, (size_t)(*argc + 2) * sizeof **argv);
  (*argv)[(*argc)++] = xstrdup(a);
  (*argv)[*argc] = NULL;
}

static int write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (!f) return -1;
  size_t n = strlen(text);
  int ok = fwrite(text, 1, n, f) == n;
  return (fclose(f) == 0 && ok) ? 0 : -1;
}

static char *read_file(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) return xstrdup("");
  size_t cap = 4096, n = 0;
  char *buf = xmalloc(cap);
  size_t got;
  while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
    n += got;
    if (cap - n < 2) buf = xrealloc(buf, cap *= 2);
  }
  fclose(f);
  buf[n] = 0;
  return buf;
}

/* A file-name-safe stem from the module's name. */
static void file_stem(const char *name, char *out, size_t size) {
  size_t j = 0;
  for (const char *p = name && *name ? name : "kernel"; *p && j + 1 < size && j < 48; p++)
    out[j++] = (*p == '_' || *p == '-' || *p == '.' || (*p >= '0' && *p <= '9') ||
                (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z'))
                   ? *p
                   : '_';
  out[j] = 0;
}

/* Runs argv with stdout and stderr into log_path; the exit status or -1.
 * The compiler leads its own process group, registered with ir/fileio.h, so
 * that on SIGINT/SIGTERM it and its own children (cc1, as, ld) are stopped
 * before the temporary folder they write into is removed; the signals are
 * held until it is registered, and the child starts with the caller's mask. */
static int run_compiler(char **argv, const char *log_path, IrErr *err) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  sigset_t hold, old;
  sigemptyset(&hold);
  sigaddset(&hold, SIGINT);
  sigaddset(&hold, SIGTERM);
  sigaddset(&hold, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &hold, &old);
  posix_spawnattr_t at;
  posix_spawnattr_init(&at);
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK);
  posix_spawnattr_setpgroup(&at, 0);
  posix_spawnattr_setsigmask(&at, &old);
  pid_t pid;
  int rc = posix_spawnp(&pid, argv[0], &fa, &at, argv, environ);
  posix_spawnattr_destroy(&at);
  posix_spawn_file_actions_destroy(&fa);
  IrErr lerr;
  int tracked = rc == 0 && fio_child_register(pid, &lerr) == 0;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc != 0) return ir_errf(err, "emu: cannot run the host compiler '%s': %s", argv[0], strerror(rc));
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) {
      if (tracked) fio_child_forget(pid);
      return ir_errf(err, "emu: waitpid: %s", strerror(errno));
    }
  if (tracked) fio_child_forget(pid);
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return ir_errf(err, "emu: the host compiler '%s' died (status %d)", argv[0], status);
}

/* Compiles and dlopens; the handle or NULL. */
static void *compile_and_open(const char *source, const char *name, const char *cc,
                              const char *cflags, IrErr *err) {
  /* The folder and every file in it are registered (ir/fileio.h) before they
   * exist, so a failure, SIGINT/SIGTERM or running out of memory removes them;
   * DITC_EMU_KEEP keeps them for a look. */
  const char *keep_env = getenv("DITC_EMU_KEEP");
  int keep = keep_env && *keep_env && strcmp(keep_env, "0");
  char dir[512], stem[64], src[700], pre[700], so[700], log[700];
  IrErr lerr;
  int hdir = fio_tempdir_make("ditc-emu-", dir, sizeof dir, &lerr);
  if (hdir < 0) {
    ir_errf(err, "emu: %s", lerr.msg);
    return NULL;
  }
  if (keep) fio_temp_forget(hdir);
  file_stem(name, stem, sizeof stem);
  snprintf(src, sizeof src, "%s/%s.c", dir, stem);
  snprintf(pre, sizeof pre, "%s/emu_prelude.h", dir);
  snprintf(so, sizeof so, "%s/%s.so", dir, stem);
  snprintf(log, sizeof log, "%s/compile.log", dir);
  const char *files[] = {src, pre, so, log};
  int hfile[4] = {-1, -1, -1, -1};

  void *dl = NULL;
  char **argv = NULL;
  int argc = 0;
  for (int i = 0; i < 4 && !keep; i++)
    if ((hfile[i] = fio_temp_register(files[i], 0, &lerr)) < 0) {
      ir_errf(err, "emu: %s", lerr.msg);
      goto done;
    }
  if (write_file(pre, emu_prelude_text()) != 0 || write_file(src, source) != 0) {
    ir_errf(err, "emu: cannot write to %s: %s", dir, strerror(errno));
    goto done;
  }
  split_words(cc, &argv, &argc);
  if (argc == 0) push_arg(&argv, &argc, "cc");
  static const char *const flags[] = {
      "-std=gnu11", "-O2", "-fPIC", "-shared", "-fno-math-errno",
      /* what C would merely warn about is an error under NVRTC */
      "-Werror=implicit-function-declaration", "-Werror=implicit-int", "-Werror=int-conversion",
      "-Werror=incompatible-pointer-types", "-Werror=return-type"};
  for (size_t i = 0; i < sizeof flags / sizeof *flags; i++) push_arg(&argv, &argc, flags[i]);
  split_words(cflags, &argv, &argc);
  /* after the user's flags: no contraction into FMAs the source does not
   * spell out, so kernels compute ir/scalar.h's functions to the bit as the
   * host library does (built with the same flag) */
  const char *tail[] = {"-ffp-contract=off", "-include", pre, "-x", "c", src, "-x", "none", "-o", so, "-lm"};
  for (size_t i = 0; i < sizeof tail / sizeof *tail; i++) push_arg(&argv, &argc, tail[i]);

  int rc = run_compiler(argv, log, err);
  if (rc > 0) {
    char *out = read_file(log);
    ir_errf(err, "emu: compiling %s failed (%s exited with %d):\n%s", name, argv[0], rc, out);
    free(out);
  } else if (rc == 0) {
    dl = dlopen(so, RTLD_NOW | RTLD_LOCAL);
    if (!dl) ir_errf(err, "emu: cannot load %s: %s", name, dlerror());
  }

done:
  for (int i = 0; i < argc; i++) free(argv[i]);
  free(argv);
  if (!keep) {
    for (int i = 0; i < 4; i++) fio_temp_remove(hfile[i]);
    fio_temp_remove(hdir);
  }
  return dl;
}

EmuModule *emu_module_load(const char *source, const char *name, IrErr *err) {
  if (!source) {
    ir_errf(err, "emu: no kernel source");
    return NULL;
  }
  if (!name) name = "kernel";
  const char *cc = getenv("DITC_EMU_CC"), *cflags = getenv("DITC_EMU_CFLAGS");
  if (!cc || !*cc) cc = "cc";
  if (!cflags) cflags = "";
  uint64_t h = fnv1a(fnv1a(fnv1a(0xcbf29ce484222325ull, cc), cflags), source);

  pthread_mutex_lock(&cache_lock);
  EmuModule *m;
  for (m = cache; m; m = m->next)
    if (m->hash == h && !strcmp(m->source, source)) goto out;

  void *dl = compile_and_open(source, name, cc, cflags, err);
  if (!dl) goto out;
  void *init_sym = dlsym(dl, "ditc_emu_module_init");
  DitcEmuModuleInit init;
  memcpy(&init, &init_sym, sizeof init);
  int abi = init ? init(&emu_rt) : -1;
  if (abi != DITC_EMU_ABI_VERSION) {
    ir_errf(err, "emu: %s was not built with this emulator's prelude (ABI %d, want %d)", name, abi,
            DITC_EMU_ABI_VERSION);
    dlclose(dl);
    goto out;
  }
  m = xcalloc(1, sizeof *m);
  m->hash = h;
  m->source = xstrdup(source);
  m->name = xstrdup(name);
  m->dl = dl;
  m->next = cache;
  cache = m;
out:
  pthread_mutex_unlock(&cache_lock);
  return m;
}

void emu_shutdown(void) {
  pthread_mutex_lock(&cache_lock);
  while (cache) {
    EmuModule *m = cache;
    cache = m->next;
    dlclose(m->dl);
    free(m->source);
    free(m->name);
    free(m);
  }
  pthread_mutex_unlock(&cache_lock);
  pthread_mutex_lock(&launch_lock);
  for (int i = 0; i < pool_size; i++) {
    worker_release(pool[i]);
    free(pool[i]);
  }
  free(pool);
  pool = NULL;
  pool_size = 0;
  pthread_mutex_unlock(&launch_lock);
  pthread_mutex_lock(&shared_lock);
  while (shared_blocks) {
    SharedBlock *b = shared_blocks;
    shared_blocks = b->next;
    free(b);
  }
  pthread_mutex_unlock(&shared_lock);
}
