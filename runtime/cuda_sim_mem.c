/*
 * cuda_sim_mem.c - the simulated driver's device memory (cuda_sim.c's top
 * comment, "Memory"): one reserved address range, fresh pages per
 * allocation with a guard page after, a registry of every allocation (live
 * or freed) that checks each device pointer a call receives, and the memory
 * calls: cuMemAlloc, cuMemFree, cuMemGetInfo, copies and sets.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "runtime/cuda_sim_driver.h"

typedef struct {
  uint64_t base, size;   /* what cuMemAlloc returned and was asked for */
  uint64_t map, map_len; /* the pages mapped for it */
  int live;
  long seq;              /* allocation number, for messages */
} Alloc;

static char *region;   /* the device's address range */
static uint64_t region_base, region_end, region_next;
static Alloc *allocs;  /* sorted by base (allocation only ever moves upwards) */
static int n_allocs, cap_allocs;
static long alloc_seq;
static size_t live_bytes;

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

int sim_region_reserve(void) {
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

int sim_in_region(uint64_t p) { return region && p >= region_base && p < region_end; }

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
    if (sim_in_region(p))
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
/* memory calls                                                             */
/* ======================================================================== */

static RtCuResult sim_mem_alloc(CUdeviceptr *p, size_t bytes) {
  ENTER_CTX();
  if (!p) LEAVE(RT_CUDA_ERROR_INVALID_VALUE);
  *p = 0;
  if ((r_ = sim_capture_forbids("cuMemAlloc"))) LEAVE(r_);
  if (!bytes) LEAVE(sim_fail(RT_CUDA_ERROR_INVALID_VALUE, "cuMemAlloc of 0 bytes"));
  if (bytes > sim_arch()->total_mem - live_bytes)
    LEAVE(sim_fail(RT_CUDA_ERROR_OUT_OF_MEMORY, "%zu bytes asked for, %zu of the simulated %s's %zu free", bytes,
                   sim_arch()->total_mem - live_bytes, sim_arch()->like, sim_arch()->total_mem));
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
  if ((r_ = sim_capture_forbids("cuMemFree"))) LEAVE(r_);
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
  *free_bytes = sim_arch()->total_mem - live_bytes;
  *total = sim_arch()->total_mem;
  LEAVE(0);
}

static int copy_op(CUstream s, int sync, CopyDir dir, CUdeviceptr dst, CUdeviceptr src, void *hdst, const void *hsrc,
                   size_t n) {
  if (sync) {
    int r = sim_capture_forbids(dir == COPY_HTOD ? "cuMemcpyHtoD" : dir == COPY_DTOH ? "cuMemcpyDtoH" : "cuMemcpyDtoD");
    if (r) return r;
  }
  if (!sim_stream_valid(s)) return sim_fail(SIM_ERROR_INVALID_HANDLE, "not a stream of this context");
  if (n == 0) return 0;
  if ((dir == COPY_HTOD && !hsrc) || (dir == COPY_DTOH && !hdst))
    return sim_fail(RT_CUDA_ERROR_INVALID_VALUE, "a NULL host pointer");
  Op op = {.kind = OP_COPY};
  op.u.c.dir = dir, op.u.c.dst = dst, op.u.c.src = src, op.u.c.hdst = hdst, op.u.c.hsrc = hsrc, op.u.c.n = n;
  return sim_enqueue(s, &op);
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
    int r = sim_capture_forbids(width == 1 ? "cuMemsetD8" : "cuMemsetD32");
    if (r) return r;
  }
  if (!sim_stream_valid(s)) return sim_fail(SIM_ERROR_INVALID_HANDLE, "not a stream of this context");
  if (n == 0) return 0;
  Op op = {.kind = OP_SET};
  op.u.s.dst = p, op.u.s.value = v, op.u.s.width = width, op.u.s.count = n;
  return sim_enqueue(s, &op);
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

void sim_allocs_free_all(void) {
  for (int i = 0; i < n_allocs; i++)
    if (allocs[i].live) alloc_poison_free(&allocs[i]);
}

void sim_mem_table(RtCudaApi *t) {
  t->MemAlloc = sim_mem_alloc;
  t->MemFree = sim_mem_free;
  t->MemGetInfo = sim_mem_info;
  t->MemsetD8 = sim_memset8;
  t->MemsetD8Async = sim_memset8_async;
  t->MemsetD32 = sim_memset32;
  t->MemsetD32Async = sim_memset32_async;
  t->MemcpyHtoD = sim_htod;
  t->MemcpyDtoH = sim_dtoh;
  t->MemcpyDtoD = sim_dtod;
  t->MemcpyHtoDAsync = sim_htod_async;
  t->MemcpyDtoHAsync = sim_dtoh_async;
  t->MemcpyDtoDAsync = sim_dtod_async;
}
