/*
 * cuda_sim_driver.h - between the simulated driver's own files: cuda_sim.c
 * (the devices, errors, contexts, streams, events, graphs, the operations a
 * stream runs and the table), cuda_sim_mem.c (device memory: the address
 * range, the allocation registry, the memory calls) and cuda_sim_module.c
 * (modules, functions and launches).  The rest of the simulation (cuBLASLt,
 * images, parameters) sees only cuda_sim.h.
 */
#ifndef DITC_CUDA_SIM_DRIVER_H
#define DITC_CUDA_SIM_DRIVER_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "codegen/emu.h"
#include "runtime/cuda_sim.h"

enum {
  DEFAULT_SMEM_PER_BLOCK = 48 * 1024,
  MAX_BLOCK_THREADS = 1024,
  REGS_PER_BLOCK = 65536,
  DRIVER_VERSION = 13000,
  ALLOC_ALIGN = 256,
};
#define REGION_BYTES ((size_t)256 << 30)


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

/* Every entry point: clear the detail, take the lock, and (for those
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

/* cuda_sim.c */
/* A call that may synchronise the device, refused while a capture forbids it
 * (and the capture invalidated). */
int sim_capture_forbids(const char *call);
/* NULL, the legacy and per-thread default streams, or a live stream. */
int sim_stream_valid(CUstream s);
/* Run op now, or record it into s's capture; takes op's resources. */
int sim_enqueue(CUstream s, Op *op);

/* cuda_sim_mem.c */
/* Reserve the device's address range (once; cuInit). */
int sim_region_reserve(void);
/* p lies in the device's address range. */
int sim_in_region(uint64_t p);
/* Free every live allocation (the context is destroyed). */
void sim_allocs_free_all(void);
/* The memory entry points of the table. */
void sim_mem_table(RtCudaApi *t);

/* cuda_sim_module.c */
/* f is a function of a loaded module (of that serial, when serial >= 0). */
int sim_func_live(const struct CUfunc_st *f, long serial);
/* Unload every module (the context is destroyed). */
void sim_modules_free_all(void);
/* The module and launch entry points of the table. */
void sim_module_table(RtCudaApi *t);

#endif
