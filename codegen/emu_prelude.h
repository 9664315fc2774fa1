/*
 * emu_prelude.h - the CUDA built-ins for the emulated device.
 *
 * The emulator (emu.c) compiles a generated kernel source with the host C
 * compiler, `cc -std=gnu11 -O2 -fPIC -shared -include emu_prelude.h`, and runs
 * it on the CPU; the same source goes to NVRTC behind cuda_prelude.h.  This
 * file maps the CUDA built-ins onto calls into the emulator, so one kernel
 * text serves both.  Its text is embedded into the ditc library at build time
 * (emu.c, `.incbin`), so an installed ditc does not need the source tree.
 *
 * ======================= the kernel-source dialect =======================
 * Generated sources are written in the common subset of CUDA C++ (NVRTC)
 * and GNU C11.  What the code generator emits:
 *
 *   Kernels.  Every kernel takes exactly one argument, a params struct by
 *   value, and is declared with
 *       typedef struct { const float *__restrict__ x; float *y; int n; } KAddParams;
 *       DITC_KERNEL(k_add, KAddParams, p) { ... p.x[i] ... }
 *   or DITC_KERNEL_BOUNDS(k_add, KAddParams, p, 256) to add __launch_bounds__.
 *   Under NVRTC this is `extern "C" __global__ void k_add(const KAddParams p)`;
 *   launch it with cuLaunchKernel(..., args = { &params }).  The emulator's
 *   emu_launch takes the same `void **args` (args[0] points to the struct).
 *   The struct holds only scalars and pointers (at most 4 KB), declared in the
 *   same order and types on the host side.  `return;` ends a thread.
 *
 *   Device helpers:  DITC_DEVICE static inline float gelu(float x) { ... }
 *
 *   Shared memory.  Static, per block, declared inside a kernel or helper
 *   body (not at file scope), 16-byte aligned:
 *       DITC_SHARED(float, tile, 256);        -> __shared__ float tile[256]
 *       DITC_SHARED2(float, t2, 32, 33);      -> __shared__ float t2[32][33]
 *   Dynamic (the launch's dyn_shared_bytes), 16-byte aligned:
 *       DITC_DYN_SHARED(float, buf);          -> float *buf
 *   Use them only by indexing: under the emulator they are pointers, so
 *   never take sizeof of them.  Shared memory starts uninitialised, as on
 *   the GPU.
 *
 *   Barriers.  Every live thread of a block must reach the same
 *   __syncthreads() - the same source line, which a helper's barrier is for
 *   all its callers - or have returned: threads that returned count as
 *   arrived.  The emulator reports threads waiting at different lines, or
 *   half a warp in a shuffle while the rest waits elsewhere, as a deadlock.
 *
 *   Built-ins.  threadIdx, blockIdx, blockDim, gridDim (.x .y .z, unsigned),
 *   warpSize (32); __syncthreads(); __syncwarp(); __shfl_sync,
 *   __shfl_xor_sync, __shfl_up_sync, __shfl_down_sync with mask 0xffffffffu
 *   (full warps only; optional width argument) on scalars, __half and
 *   __nv_bfloat16 (lanes that returned or do not exist yield the caller's
 *   own value); ditc_warp_sum/ditc_warp_max/ditc_warp_min
 *   (float, result in every lane); atomicAdd on float, int, unsigned,
 *   unsigned long long; atomicMax/atomicMin on int and unsigned;
 *   atomicExch on int, unsigned, float; atomicCAS on int, unsigned,
 *   unsigned long long; __threadfence(), __threadfence_block(), __ldg(p).
 *
 *   Math.  Only the float (f-suffixed) C functions: expf logf sqrtf fabsf
 *   tanhf erff powf sinf cosf floorf ceilf roundf truncf fmaf fminf fmaxf
 *   exp2f log2f log1pf expm1f copysignf ...; and the CUDA intrinsics
 *   rsqrtf __expf __logf __log2f __powf __sinf __cosf __tanf __fdividef
 *   __frcp_rn __fsqrt_rn __fadd_rn __fmul_rn __fmaf_rn __saturatef
 *   __int_as_float __float_as_int __uint_as_float __float_as_uint.
 *   Double precision only where a kernel must reproduce host double math
 *   (the sampler's normal generator, codegen/sampler_kernel.c): sqrt log
 *   sin cos on double.  The emulator calls the host's libm, so it matches
 *   the host bit for bit; CUDA's are within 1-2 ulp in double.
 *   Integers: ditc_imin, ditc_imax (never min/max: under C they would not be
 *   overloaded and would silently truncate floats).  Constants: DITC_INFINITY,
 *   DITC_FLT_MAX, DITC_WARP_SIZE.  Types: int8_t ... uint64_t, size_t, bool,
 *   float2 float4 int2 int4 with make_float2/make_float4/make_int2/make_int4.
 *
 *   Half precision.  __half (half) and __nv_bfloat16 (nv_bfloat16) are
 *   storage types: load, store, pass them; compute in float through
 *   __half2float, __float2half, __float2half_rn, __bfloat162float,
 *   __float2bfloat16, __float2bfloat16_rn (round to nearest even, NaN ->
 *   0x7fff), __half_as_ushort, __ushort_as_half, __bfloat16_as_ushort,
 *   __ushort_as_bfloat16.
 *
 *   Tensor cores (sm_80 and later; ldmatrix sm_75).  Warp-level, as in PTX:
 *   all 32 lanes of a full warp call the same one together (the emulator
 *   faults the launch on a partial warp, a lane that returned or a lane
 *   elsewhere); fragments are unsigned registers laid out as the PTX ISA's
 *   "Matrix Fragments" sections say, which the shared section's
 *   ditc_mma_{a,b,c}_{row,col}(lane, i) (ditc_mma_s8_... for s8) compute.
 *     ditc_mma_bf16_16816(float d[4], const unsigned a[4], const unsigned b[2],
 *                         const float c[4])   D = A B + C, A 16x16 row-major,
 *     ditc_mma_f16_16816(...)                 B 16x8 "col" (B[k][n] pairs
 *                                             along k), f32 accumulate
 *     ditc_mma_s8_16832(int d[4], const unsigned a[4], const unsigned b[2],
 *                       const int c[4])       s8 x s8 -> s32, wraps on overflow
 *   d may be c.  The emulator adds C and then the products in k order in
 *   f32 (the hardware's order, rounding and subnormal handling are
 *   unspecified: compare with a tolerance).  Registers: ditc_pack_bf16x2(lo,
 *   hi) / ditc_pack_f16x2 (from floats, round to nearest even),
 *   ditc_pack_b16x2 (raw bits), ditc_pack_s8x4(e0..e3), ditc_bf16x2_get(r, i)
 *   / ditc_f16x2_get; the lower-numbered element is in the low bits.
 *   ditc_lane_id() is the lane (the linear thread index mod 32);
 *   ditc_ld_b32(p) loads a 4-byte-aligned register from memory.
 *     ditc_ldmatrix_x1/_x2/_x4(unsigned r[n], const void *row) and _trans:
 *   ldmatrix.m8n8.b16 from shared memory (which the emulator does not check):
 *   lane 8m+j gives the address of row j of 8x8 matrix m (16-byte aligned;
 *   give every lane a valid address, as sm_75 requires);
 *   r[m] of lane l holds row l/4, columns 2(l%4) and +1 (_trans: column l/4,
 *   rows 2(l%4) and +1).
 *     ditc_cp_async_16(void *smem, const void *gmem), _16_zfill(smem, gmem,
 *   src_bytes) (the rest of the 16 bytes zero), ditc_cp_async_commit(),
 *   ditc_cp_async_wait_group(n) (n a constant 0..7: all but the n newest
 *   committed groups have landed), ditc_cp_async_wait_all(): cp.async.cg,
 *   both addresses 16-byte aligned; other threads see the bytes after the
 *   wait and a barrier.  The emulator lands copies at the wait, never before.
 *   Below sm_80, mma and cp.async fail to compile (ptxas: "Unresolved extern
 *   function 'ditc_mma_sync_requires_sm_80'"): plans for sm_75 must not use
 *   them.  Attention, one warp per 16 query rows, tiles in shared memory with
 *   a row pitch LD (elements, a multiple of 8; head dim padded to 16, 72 ->
 *   80), S = Q K^T for 16 keys n0.. (two 8-key tiles) and 16 dims kk.. a step:
 *       unsigned a[4], b[4];  float s0[4] = {0}, s1[4] = {0};
 *       ditc_ldmatrix_x4(a, &Q[(lane & 15) * LD + kk + 8 * (lane >> 4)]);
 *       ditc_ldmatrix_x4(b, &K[(n0 + (lane & 7) + 8 * (lane >> 4)) * LD + kk
 *                              + 8 * ((lane >> 3) & 1)]);
 *       ditc_mma_bf16_16816(s0, a, b, s0);      keys n0..n0+7
 *       ditc_mma_bf16_16816(s1, a, b + 2, s1);  keys n0+8..n0+15
 *   s0[i] is S[ditc_mma_c_row(lane, i)][n0 + ditc_mma_c_col(lane, i)], s1[i]
 *   the same 8 keys on: a query row's 16 scores sit in the 4 lanes of a quad
 *   (max and sum over a row by __shfl_xor_sync 1 and 2).  P becomes A without moving: {pack(s0[0],
 *   s0[1]), pack(s0[2], s0[3]), pack(s1[0], s1[1]), pack(s1[2], s1[3])}; then
 *   O[:, d0..d0+15] += P V[n0..n0+15][d0..d0+15] with
 *       ditc_ldmatrix_x4_trans(b, &V[(n0 + (lane & 15)) * LD + d0 + 8 * (lane >> 4)]);
 *   and two mma calls (b, b + 2) as above.  tests/unit/test_mma.c runs it.
 *
 *   Language.  The intersection of C11 and C++17: no templates, overloading,
 *   references, classes, namespaces, `auto`, operators on __half; no VLAs,
 *   designated initialisers, compound literals or implicit void* conversions
 *   (cast explicitly); no C++ keywords as identifiers (new, this, class,
 *   template, delete, ...); no enums (use int constants or #define); use
 *   __restrict__, never `restrict`; `#pragma unroll` is allowed (the host
 *   compiler ignores it).  Every identifier starting with ditc_emu_ or
 *   DITC_EMU_ is reserved for this prelude.
 *
 * Not supported (by either the emulator or this dialect): wmma and wgmma,
 * other mma shapes and types, TMA, cooperative groups and grid-wide sync,
 * __ballot_sync / __any_sync / __all_sync / __match_sync, shuffles with
 * partial masks, __half2 / __nv_bfloat162 vector math, half arithmetic
 * operators, __constant__ and __device__ global variables, texture and
 * surface objects, printf, assert and __trap, dynamic parallelism, clusters.
 * In the emulator a broken rule the prelude can see (a collective without
 * its full warp, a misaligned ldmatrix or cp.async address) fails the launch
 * with a message; a thread that faults otherwise takes the process with it,
 * as a device fault takes the CUDA context.  A thread's stack is about 248 KB.
 *
 * ============================ how it works ================================
 * emu.c runs a block's threads as fibers on one OS thread (a worker);
 * blocks run on OpenMP threads.  The module uses no thread-local storage
 * (LeakSanitizer trips over dlopen'ed modules' dynamic TLS, and static TLS
 * runs out): each fiber's stack lies in a slot of DITC_EMU_FIBER_SLOT bytes
 * aligned to its size, whose first word points to the fiber's
 * DitcEmuThread, so the built-ins find the current thread from the frame
 * address.  Static shared memory is allocated per declaration and worker on
 * first use (each worker runs one block at a time, so that is per-block
 * storage) and stays until emu_shutdown.  The module exports
 * `ditc_emu_module_init`, which receives the emulator's callbacks, and
 * `ditc_emu_kernel_<name>` per kernel.
 *
 * emu.c includes this file with DITC_EMU_ABI_ONLY defined to share the ABI
 * section below and nothing else.
 */
#ifndef DITC_EMU_PRELUDE_H
#define DITC_EMU_PRELUDE_H

/* ============================== ABI ====================================== */

#include <stddef.h>
#include <stdint.h>

#define DITC_EMU_ABI_VERSION 2

typedef struct {
  unsigned int x, y, z;
} uint3;
typedef uint3 dim3;

/* A cp.async copy issued and not yet waited for: 16 bytes to dst, the first
 * src_bytes of them read from src and the rest zeros, in commit group `group`. */
typedef struct {
  void *dst;
  const void *src;
  unsigned src_bytes, group;
} DitcEmuCpAsync;
#define DITC_EMU_CP_ASYNC_MAX 64

/* One emulated thread; emu.c embeds it at the head of its fiber record. */
typedef struct {
  uint3 threadIdx, blockIdx;
  dim3 blockDim, gridDim;
  void *dyn_shared; /* this block's dynamic shared memory */
  unsigned worker;  /* which worker (OS thread) runs the block, < DITC_EMU_MAX_WORKERS */
  /* The thread's pending cp.async copies, oldest first, and how many groups
   * it has committed: the prelude's alone (reset at kernel entry); emu.c
   * gives every thread room for DITC_EMU_CP_ASYNC_MAX copies. */
  DitcEmuCpAsync *cp;
  unsigned cp_n, cp_committed;
} DitcEmuThread;

/* A fiber's stack slot: this size, aligned to it; its first word is the
 * fiber's DitcEmuThread *, then a guard page, then the stack. */
#define DITC_EMU_FIBER_SLOT (256u * 1024u)
#define DITC_EMU_MAX_WORKERS 256

/* Shuffle kinds. */
#define DITC_EMU_SHFL_IDX 0
#define DITC_EMU_SHFL_UP 1
#define DITC_EMU_SHFL_DOWN 2
#define DITC_EMU_SHFL_XOR 3

/* The emulator's side, handed to the module by ditc_emu_module_init. */
typedef struct {
  int abi_version;
  /* __syncthreads() at source line `line`. */
  void (*syncthreads)(DitcEmuThread *t, int line);
  /* __syncwarp(). */
  void (*syncwarp)(DitcEmuThread *t);
  /* A shuffle of `size` bytes (at most 16) from `in` to `out`. */
  void (*shfl)(DitcEmuThread *t, int kind, const void *in, void *out, unsigned size,
               int arg, int width);
  /* Zeroed, 16-byte aligned memory that lives until emu_shutdown. */
  void *(*alloc)(size_t size);
  /* A warp-collective operation named `op` (mma, ldmatrix): every lane of a
   * full warp calls it with the same op and its own arg.  It returns 1 in
   * exactly one lane, with *lanes pointing to the 32 lanes' args (by lane),
   * while every other lane of the warp is still suspended inside this call:
   * that lane does the whole warp's work through the args (which may point
   * into the other lanes' frames) before it next waits, and the others then
   * return 0.  A partial warp, a lane that has returned, or a lane in another
   * collective or a shuffle faults the block instead, naming the lane. */
  int (*collective)(DitcEmuThread *t, const char *op, void *arg, void *const **lanes);
  /* A device fault: the thread stops, its block stops, and the launch fails
   * with msg.  Never returns. */
  void (*fault)(DitcEmuThread *t, const char *msg);
} DitcEmuRt;

typedef int (*DitcEmuModuleInit)(const DitcEmuRt *rt);
typedef void (*DitcEmuEntry)(void **args);
#define DITC_EMU_KERNEL_PREFIX "ditc_emu_kernel_"

#ifndef DITC_EMU_ABI_ONLY

/* =========================== the runtime ================================= */

#include <math.h>
#include <stdbool.h>
#include <string.h>

static DitcEmuRt ditc_emu_rt;

__attribute__((visibility("default"))) int ditc_emu_module_init(const DitcEmuRt *rt);
__attribute__((visibility("default"))) int ditc_emu_module_init(const DitcEmuRt *rt) {
  ditc_emu_rt = *rt;
  return DITC_EMU_ABI_VERSION;
}

/* The current thread, from the fiber stack slot we are running on. */
__attribute__((always_inline)) static inline DitcEmuThread *ditc_emu_me(void) {
  uintptr_t fp = (uintptr_t)__builtin_frame_address(0);
  return *(DitcEmuThread *const *)(fp & ~(uintptr_t)(DITC_EMU_FIBER_SLOT - 1u));
}

/* The exported entry unpacks args[0] into the by-value params struct; a
 * thread starts with no cp.async copies pending (the fiber's record is reused
 * from block to block; copies left pending when a thread ends are dropped). */
#define DITC_KERNEL(name, P, p)                                                  \
  static void ditc_emu_body_##name(const P p);                                   \
  __attribute__((visibility("default"))) void ditc_emu_kernel_##name(void **ditc_emu_args); \
  void ditc_emu_kernel_##name(void **ditc_emu_args) {                            \
    DitcEmuThread *ditc_emu_t = ditc_emu_me();                                   \
    ditc_emu_t->cp_n = ditc_emu_t->cp_committed = 0;                             \
    ditc_emu_body_##name(*(const P *)ditc_emu_args[0]);                          \
  }                                                                              \
  static void ditc_emu_body_##name(const P p)
#define DITC_KERNEL_BOUNDS(name, P, p, max_threads) DITC_KERNEL(name, P, p)
#define DITC_DEVICE

/* Per declaration, one block of memory per worker, made on first use. */
static inline void *ditc_emu_shared(void **site, size_t size) {
  void **slot = &site[ditc_emu_me()->worker];
  if (!*slot) *slot = ditc_emu_rt.alloc(size);
  return *slot;
}
#define DITC_SHARED(T, name, n)                                    \
  static void *ditc_emu_site_##name[DITC_EMU_MAX_WORKERS];         \
  T *const name = (T *)ditc_emu_shared(ditc_emu_site_##name, sizeof(T) * (size_t)(n))
#define DITC_SHARED2(T, name, n, m)                                \
  static void *ditc_emu_site_##name[DITC_EMU_MAX_WORKERS];         \
  T(*const name)[m] = (T(*)[m])ditc_emu_shared(ditc_emu_site_##name, sizeof(T) * (size_t)(n) * (m))
#define DITC_DYN_SHARED(T, name) T *const name = (T *)ditc_emu_me()->dyn_shared

#define threadIdx (ditc_emu_me()->threadIdx)
#define blockIdx (ditc_emu_me()->blockIdx)
#define blockDim (ditc_emu_me()->blockDim)
#define gridDim (ditc_emu_me()->gridDim)
#define warpSize 32

#define __syncthreads() ditc_emu_rt.syncthreads(ditc_emu_me(), __LINE__)
#define __syncwarp(...) ditc_emu_rt.syncwarp(ditc_emu_me())
#define __threadfence() __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define __threadfence_block() __atomic_signal_fence(__ATOMIC_SEQ_CST)
#define __ldg(ptr) (*(ptr))

/* Shuffles are type-generic by value bytes; the mask is ignored (full warps). */
#define DITC_EMU_SHFL_(kind, v, arg, width, ...)                                  \
  __extension__({                                                                 \
    __auto_type ditc_emu_v = (v);                                                 \
    __typeof__(ditc_emu_v) ditc_emu_r;                                            \
    _Static_assert(sizeof ditc_emu_v <= 16, "shuffle of a value over 16 bytes");  \
    ditc_emu_rt.shfl(ditc_emu_me(), kind, &ditc_emu_v, &ditc_emu_r,               \
                     sizeof ditc_emu_v, (int)(arg), (int)(width));                \
    ditc_emu_r;                                                                   \
  })
#define __shfl_sync(mask, v, ...) DITC_EMU_SHFL_(DITC_EMU_SHFL_IDX, v, __VA_ARGS__, 32, 0)
#define __shfl_up_sync(mask, v, ...) DITC_EMU_SHFL_(DITC_EMU_SHFL_UP, v, __VA_ARGS__, 32, 0)
#define __shfl_down_sync(mask, v, ...) DITC_EMU_SHFL_(DITC_EMU_SHFL_DOWN, v, __VA_ARGS__, 32, 0)
#define __shfl_xor_sync(mask, v, ...) DITC_EMU_SHFL_(DITC_EMU_SHFL_XOR, v, __VA_ARGS__, 32, 0)

/* DITC_XOR_REDUCE (cuda_prelude.h says what it computes): one warp collective instead of log2(WIDTH)
 * shuffles, the butterfly done for all 32 lanes by the first lane back, in the shuffles' order, so
 * every lane gets exactly what the shuffles would give it. */
typedef float (*DitcEmuOp2)(float, float);
static inline float ditc_emu_xor_reduce(const char *op, float v, int width, DitcEmuOp2 f) {
  float me = v;
  void *const *lane;
  if (ditc_emu_rt.collective(ditc_emu_me(), op, &me, &lane)) {
    float x[32], y[32];
    for (int l = 0; l < 32; l++) x[l] = *(const float *)lane[l];
    for (int o = width / 2; o > 0; o >>= 1) {
      for (int l = 0; l < 32; l++) y[l] = f(x[l], x[l ^ o]);
      for (int l = 0; l < 32; l++) x[l] = y[l];
    }
    for (int l = 0; l < 32; l++) *(float *)lane[l] = x[l];
  }
  return me;
}
#define DITC_XOR_REDUCE(v, OP, WIDTH) \
  ((v) = ditc_emu_xor_reduce("xor-reduce " #OP " " #WIDTH, (v), (WIDTH), OP))

/* =========================== types ====================================== */

typedef struct { float x, y; } __attribute__((aligned(8))) float2;
typedef struct { float x, y, z, w; } __attribute__((aligned(16))) float4;
typedef struct { int x, y; } __attribute__((aligned(8))) int2;
typedef struct { int x, y, z, w; } __attribute__((aligned(16))) int4;
static inline float2 make_float2(float x, float y) { float2 r = {x, y}; return r; }
static inline float4 make_float4(float x, float y, float z, float w) {
  float4 r = {x, y, z, w};
  return r;
}
static inline int2 make_int2(int x, int y) { int2 r = {x, y}; return r; }
static inline int4 make_int4(int x, int y, int z, int w) { int4 r = {x, y, z, w}; return r; }

/* =========================== atomics ==================================== */
/* Blocks run on parallel OS threads, so these are real atomics. */

static inline float ditc_emu_atomic_add_f32(float *p, float v) {
  uint32_t old = __atomic_load_n((uint32_t *)p, __ATOMIC_RELAXED), upd;
  float f;
  do {
    memcpy(&f, &old, 4);
    float s = f + v;
    memcpy(&upd, &s, 4);
  } while (!__atomic_compare_exchange_n((uint32_t *)p, &old, upd, 1, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED));
  return f;
}
static inline int ditc_emu_atomic_add_i32(int *p, int v) {
  return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}
static inline unsigned ditc_emu_atomic_add_u32(unsigned *p, unsigned v) {
  return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}
static inline unsigned long long ditc_emu_atomic_add_u64(unsigned long long *p,
                                                         unsigned long long v) {
  return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}
#define atomicAdd(p, v)                                       \
  _Generic((p), float *: ditc_emu_atomic_add_f32,             \
               int *: ditc_emu_atomic_add_i32,                \
               unsigned *: ditc_emu_atomic_add_u32,           \
               unsigned long long *: ditc_emu_atomic_add_u64)((p), (v))

#define DITC_EMU_ATOMIC_MINMAX(name, T, cmp)                                          \
  static inline T name(T *p, T v) {                                                   \
    T old = __atomic_load_n(p, __ATOMIC_RELAXED);                                     \
    while ((v cmp old) && !__atomic_compare_exchange_n(p, &old, v, 1, __ATOMIC_RELAXED, \
                                                       __ATOMIC_RELAXED)) {           \
    }                                                                                 \
    return old;                                                                       \
  }
DITC_EMU_ATOMIC_MINMAX(ditc_emu_atomic_max_i32, int, >)
DITC_EMU_ATOMIC_MINMAX(ditc_emu_atomic_max_u32, unsigned, >)
DITC_EMU_ATOMIC_MINMAX(ditc_emu_atomic_min_i32, int, <)
DITC_EMU_ATOMIC_MINMAX(ditc_emu_atomic_min_u32, unsigned, <)
#define atomicMax(p, v) \
  _Generic((p), int *: ditc_emu_atomic_max_i32, unsigned *: ditc_emu_atomic_max_u32)((p), (v))
#define atomicMin(p, v) \
  _Generic((p), int *: ditc_emu_atomic_min_i32, unsigned *: ditc_emu_atomic_min_u32)((p), (v))

static inline int ditc_emu_atomic_exch_i32(int *p, int v) {
  return __atomic_exchange_n(p, v, __ATOMIC_RELAXED);
}
static inline unsigned ditc_emu_atomic_exch_u32(unsigned *p, unsigned v) {
  return __atomic_exchange_n(p, v, __ATOMIC_RELAXED);
}
static inline float ditc_emu_atomic_exch_f32(float *p, float v) {
  uint32_t u, o;
  memcpy(&u, &v, 4);
  o = __atomic_exchange_n((uint32_t *)p, u, __ATOMIC_RELAXED);
  float r;
  memcpy(&r, &o, 4);
  return r;
}
#define atomicExch(p, v)                                                           \
  _Generic((p), int *: ditc_emu_atomic_exch_i32, unsigned *: ditc_emu_atomic_exch_u32, \
               float *: ditc_emu_atomic_exch_f32)((p), (v))

#define DITC_EMU_ATOMIC_CAS(name, T)                                                     \
  static inline T name(T *p, T cmp, T v) {                                               \
    __atomic_compare_exchange_n(p, &cmp, v, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED);      \
    return cmp;                                                                          \
  }
DITC_EMU_ATOMIC_CAS(ditc_emu_atomic_cas_i32, int)
DITC_EMU_ATOMIC_CAS(ditc_emu_atomic_cas_u32, unsigned)
DITC_EMU_ATOMIC_CAS(ditc_emu_atomic_cas_u64, unsigned long long)
#define atomicCAS(p, c, v)                                                        \
  _Generic((p), int *: ditc_emu_atomic_cas_i32, unsigned *: ditc_emu_atomic_cas_u32, \
               unsigned long long *: ditc_emu_atomic_cas_u64)((p), (c), (v))

/* =========================== math ======================================= */

/* Macros over ditc_emu_ functions: glibc declares some of these names. */
static inline float ditc_emu_int_as_float(int i) { float f; memcpy(&f, &i, 4); return f; }
static inline int ditc_emu_float_as_int(float f) { int i; memcpy(&i, &f, 4); return i; }
static inline float ditc_emu_uint_as_float(unsigned u) { float f; memcpy(&f, &u, 4); return f; }
static inline unsigned ditc_emu_float_as_uint(float f) { unsigned u; memcpy(&u, &f, 4); return u; }
static inline float ditc_emu_rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline float ditc_emu_saturatef(float x) { return x > 0.0f ? (x < 1.0f ? x : 1.0f) : 0.0f; }
#define __int_as_float(i) ditc_emu_int_as_float(i)
#define __float_as_int(f) ditc_emu_float_as_int(f)
#define __uint_as_float(u) ditc_emu_uint_as_float(u)
#define __float_as_uint(f) ditc_emu_float_as_uint(f)
#define rsqrtf(x) ditc_emu_rsqrtf(x)
#define __saturatef(x) ditc_emu_saturatef(x)
#define __expf(x) expf(x)
#define __logf(x) logf(x)
#define __log2f(x) log2f(x)
#define __powf(x, y) powf(x, y)
#define __sinf(x) sinf(x)
#define __cosf(x) cosf(x)
#define __tanf(x) tanf(x)
#define __fdividef(x, y) ((float)(x) / (float)(y))
#define __frcp_rn(x) (1.0f / (float)(x))
#define __fsqrt_rn(x) sqrtf(x)
#define __fadd_rn(x, y) ((float)(x) + (float)(y))
#define __fmul_rn(x, y) ((float)(x) * (float)(y))
#define __fmaf_rn(x, y, z) fmaf(x, y, z)

/* ========================= half and bfloat16 ============================ */

typedef struct { unsigned short x; } __half;
typedef struct { unsigned short x; } __nv_bfloat16;
typedef __half half;
typedef __nv_bfloat16 nv_bfloat16;

static inline unsigned short __half_as_ushort(__half h) { return h.x; }
static inline __half __ushort_as_half(unsigned short u) { __half h = {u}; return h; }
static inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return h.x; }
static inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short u) {
  __nv_bfloat16 h = {u};
  return h;
}

/* IEEE binary16, round to nearest even; overflow to infinity, NaN to 0x7fff. */
static inline __half __float2half_rn(float f) {
  uint32_t u = __float_as_uint(f);
  uint32_t sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
  __half h;
  if (a > 0x7f800000u) { h.x = 0x7fff; return h; }
  if (a >= 0x477ff000u) { h.x = (unsigned short)(sign | 0x7c00u); return h; } /* rounds to >= 65520 */
  if (a >= 0x38800000u) { /* normal in half: exponent >= -14 */
    uint32_t m = a - 0x38000000u; /* rebias 127 -> 15, still 23 mantissa bits */
    uint32_t r = m >> 13, rest = m & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (r & 1u))) r++;
    h.x = (unsigned short)(sign | r);
    return h;
  }
  if (a < 0x33000000u) { h.x = (unsigned short)sign; return h; } /* below half the smallest subnormal */
  /* subnormal: value = m * 2^-24 with m < 1024 */
  uint32_t e = a >> 23, mant = (a & 0x7fffffu) | 0x800000u;
  uint32_t shift = 126u - e; /* 14..24 for e in 102..112 */
  uint32_t r = mant >> shift, rest = mant & ((1u << shift) - 1u), half_ulp = 1u << (shift - 1u);
  if (rest > half_ulp || (rest == half_ulp && (r & 1u))) r++;
  h.x = (unsigned short)(sign | r);
  return h;
}
static inline __half __float2half(float f) { return __float2half_rn(f); }
static inline float __half2float(__half h) {
  uint32_t sign = (uint32_t)(h.x & 0x8000u) << 16, e = (h.x >> 10) & 0x1fu, m = h.x & 0x3ffu;
  if (e == 0x1f) return __uint_as_float(sign | 0x7f800000u | (m << 13));
  if (e == 0) {
    float v = (float)m * 0x1p-24f;
    return sign ? -v : v;
  }
  return __uint_as_float(sign | ((e + 112u) << 23) | (m << 13));
}

static inline __nv_bfloat16 __float2bfloat16_rn(float f) {
  uint32_t u = __float_as_uint(f);
  __nv_bfloat16 b;
  if ((u & 0x7fffffffu) > 0x7f800000u) { b.x = 0x7fff; return b; }
  u += 0x7fffu + ((u >> 16) & 1u);
  b.x = (unsigned short)(u >> 16);
  return b;
}
static inline __nv_bfloat16 __float2bfloat16(float f) { return __float2bfloat16_rn(f); }
static inline float __bfloat162float(__nv_bfloat16 b) { return __uint_as_float((uint32_t)b.x << 16); }

/* ==================== helpers shared with cuda_prelude.h ================= */
/* One text for both preludes (codegen/embed.c splices it in here). */
#include "prelude_shared.h"
/* ===================== end of the shared helpers ========================= */

/* ======================= tensor cores, emulated ========================= */
/* mma.sync and ldmatrix are warp collectives (DitcEmuRt.collective): the
 * lane that gets the warp's operands assembles the whole matrices through
 * the fragment functions above, computes, and scatters the results to every
 * lane.  cp.async copies wait in the thread's queue until the wait that
 * covers them, never earlier, so a kernel that reads the destination before
 * waiting (and, for other threads, a barrier) sees the old bytes. */

__attribute__((noreturn)) static inline void ditc_emu_fault(const char *msg) {
  ditc_emu_rt.fault(ditc_emu_me(), msg);
  __builtin_unreachable();
}

/* "<op>: lane <l> <why>" (no stdio in the module). */
__attribute__((noreturn)) static inline void ditc_emu_fault_lane(const char *op, int lane,
                                                                  const char *why) {
  char msg[160];
  size_t n = strlen(op), w = strlen(why);
  if (n > 60) n = 60;
  if (w > 80) w = 80;
  memcpy(msg, op, n);
  memcpy(msg + n, ": lane ", 7);
  n += 7;
  if (lane >= 10) msg[n++] = (char)('0' + lane / 10);
  msg[n++] = (char)('0' + lane % 10);
  msg[n++] = ' ';
  memcpy(msg + n, why, w);
  msg[n + w] = 0;
  ditc_emu_fault(msg);
}

static inline int ditc_lane_id(void) {
  return (int)((threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z)) & 31u);
}

static inline unsigned ditc_ld_b32(const void *p) {
  if ((uintptr_t)p & 3u) ditc_emu_fault("ditc_ld_b32: the address is not 4-byte aligned");
  unsigned r;
  memcpy(&r, p, 4);
  return r;
}

/* One lane's operands, where the working lane finds them. */
typedef struct {
  void *d;
  const unsigned *a, *b;
  const void *c;
} DitcEmuMmaArgs;

static inline float ditc_emu_b16_value(unsigned reg, int i, int bf16) {
  return bf16 ? ditc_bf16x2_get(reg, i) : ditc_f16x2_get(reg, i);
}

/* m16n8k16, f32 accumulate: every sum starts at C and adds the 16 products in
 * k order, each product and sum rounded to f32 (products of two bf16 or f16
 * values are exact in f32 unless a bf16 product leaves f32's range).  The
 * hardware's order and internal rounding are unspecified, so results may
 * differ from a GPU's in the last bits when the sums round. */
static inline void ditc_emu_mma_16816(const char *op, int bf16, float d[4], const unsigned a[4],
                                      const unsigned b[2], const float c[4]) {
  DitcEmuMmaArgs me = {d, a, b, c};
  void *const *lane;
  if (!ditc_emu_rt.collective(ditc_emu_me(), op, &me, &lane)) return;
  float A[16][16], B[16][8], D[16][8];
  for (int l = 0; l < 32; l++) {
    const DitcEmuMmaArgs *m = (const DitcEmuMmaArgs *)lane[l];
    for (int i = 0; i < 8; i++)
      A[ditc_mma_a_row(l, i)][ditc_mma_a_col(l, i)] = ditc_emu_b16_value(m->a[i >> 1], i, bf16);
    for (int i = 0; i < 4; i++) {
      B[ditc_mma_b_row(l, i)][ditc_mma_b_col(l, i)] = ditc_emu_b16_value(m->b[i >> 1], i, bf16);
      D[ditc_mma_c_row(l, i)][ditc_mma_c_col(l, i)] = ((const float *)m->c)[i];
    }
  }
  for (int r = 0; r < 16; r++)
    for (int n = 0; n < 8; n++) {
      float s = D[r][n];
      for (int k = 0; k < 16; k++) s += A[r][k] * B[k][n];
      D[r][n] = s;
    }
  for (int l = 0; l < 32; l++) {
    float *out = (float *)((const DitcEmuMmaArgs *)lane[l])->d;
    for (int i = 0; i < 4; i++) out[i] = D[ditc_mma_c_row(l, i)][ditc_mma_c_col(l, i)];
  }
}

static inline void ditc_mma_bf16_16816(float d[4], const unsigned a[4], const unsigned b[2],
                                       const float c[4]) {
  ditc_emu_mma_16816("mma.sync.m16n8k16.bf16", 1, d, a, b, c);
}
static inline void ditc_mma_f16_16816(float d[4], const unsigned a[4], const unsigned b[2],
                                      const float c[4]) {
  ditc_emu_mma_16816("mma.sync.m16n8k16.f16", 0, d, a, b, c);
}

/* m16n8k32 s8 x s8 -> s32, without .satfinite: the sums wrap around 2^32. */
static inline void ditc_mma_s8_16832(int d[4], const unsigned a[4], const unsigned b[2], const int c[4]) {
  DitcEmuMmaArgs me = {d, a, b, c};
  void *const *lane;
  if (!ditc_emu_rt.collective(ditc_emu_me(), "mma.sync.m16n8k32.s8", &me, &lane)) return;
  int A[16][32], B[32][8];
  uint32_t D[16][8];
  for (int l = 0; l < 32; l++) {
    const DitcEmuMmaArgs *m = (const DitcEmuMmaArgs *)lane[l];
    for (int i = 0; i < 16; i++) {
      int v = (int)((m->a[i >> 2] >> (8 * (i & 3))) & 0xffu);
      A[ditc_mma_s8_a_row(l, i)][ditc_mma_s8_a_col(l, i)] = v >= 128 ? v - 256 : v;
    }
    for (int i = 0; i < 8; i++) {
      int v = (int)((m->b[i >> 2] >> (8 * (i & 3))) & 0xffu);
      B[ditc_mma_s8_b_row(l, i)][ditc_mma_s8_b_col(l, i)] = v >= 128 ? v - 256 : v;
    }
    for (int i = 0; i < 4; i++)
      D[ditc_mma_c_row(l, i)][ditc_mma_c_col(l, i)] = (uint32_t)((const int *)m->c)[i];
  }
  for (int r = 0; r < 16; r++)
    for (int n = 0; n < 8; n++)
      for (int k = 0; k < 32; k++) D[r][n] += (uint32_t)(A[r][k] * B[k][n]);
  for (int l = 0; l < 32; l++) {
    int *out = (int *)((const DitcEmuMmaArgs *)lane[l])->d;
    for (int i = 0; i < 4; i++) memcpy(&out[i], &D[ditc_mma_c_row(l, i)][ditc_mma_c_col(l, i)], 4);
  }
}

/* ldmatrix.m8n8.b16: matrix m's row j starts at lane 8m+j's address; lane l
 * gets, of matrix m in r[m], row l/4's elements 2(l%4) and 2(l%4)+1, or with
 * .trans column l/4's elements in rows 2(l%4) and 2(l%4)+1 (PTX ISA,
 * "Warp-level matrix load instruction: ldmatrix", 9.7.14.5.15). */
typedef struct {
  unsigned *r;
  const void *row;
} DitcEmuLdmArgs;

static inline void ditc_emu_ldmatrix(const char *op, int num, int trans, unsigned *r, const void *row) {
  DitcEmuLdmArgs me = {r, row};
  void *const *lane;
  if (!ditc_emu_rt.collective(ditc_emu_me(), op, &me, &lane)) return;
  const unsigned char *rows[32];
  for (int l = 0; l < 8 * num; l++) {
    rows[l] = (const unsigned char *)((const DitcEmuLdmArgs *)lane[l])->row;
    if ((uintptr_t)rows[l] & 15u) ditc_emu_fault_lane(op, l, "gives a row address that is not 16-byte aligned");
  }
  unsigned out[32][4];
  for (int l = 0; l < 32; l++)
    for (int m = 0; m < num; m++) {
      const unsigned char *const *mr = rows + 8 * m;
      unsigned short lo, hi;
      if (trans) {
        memcpy(&lo, mr[2 * (l & 3)] + 2 * (l >> 2), 2);
        memcpy(&hi, mr[2 * (l & 3) + 1] + 2 * (l >> 2), 2);
      } else {
        memcpy(&lo, mr[l >> 2] + 4 * (l & 3), 2);
        memcpy(&hi, mr[l >> 2] + 4 * (l & 3) + 2, 2);
      }
      out[l][m] = ditc_pack_b16x2(lo, hi);
    }
  for (int l = 0; l < 32; l++) memcpy(((const DitcEmuLdmArgs *)lane[l])->r, out[l], 4u * (unsigned)num);
}
/* ditc_ldmatrix_x<N>[_trans](r, row): N matrices, transposed or not. */
#define DITC_EMU_LDMATRIX(num, trans, sfx, op_sfx)                                   \
  static inline void ditc_ldmatrix_x##num##sfx(unsigned r[num], const void *row) { \
    ditc_emu_ldmatrix("ldmatrix.x" #num op_sfx, num, trans, r, row);               \
  }
DITC_EMU_LDMATRIX(1, 0, , "")
DITC_EMU_LDMATRIX(2, 0, , "")
DITC_EMU_LDMATRIX(4, 0, , "")
DITC_EMU_LDMATRIX(1, 1, _trans, ".trans")
DITC_EMU_LDMATRIX(2, 1, _trans, ".trans")
DITC_EMU_LDMATRIX(4, 1, _trans, ".trans")
#undef DITC_EMU_LDMATRIX

/* cp.async.cg 16 bytes: queued in the thread's record, done at the wait. */
static inline void ditc_emu_cp_do(const DitcEmuCpAsync *c) {
  memcpy(c->dst, c->src, c->src_bytes);
  memset((unsigned char *)c->dst + c->src_bytes, 0, 16u - c->src_bytes);
}
static inline void ditc_cp_async_16_zfill(void *smem, const void *gmem, int src_bytes) {
  DitcEmuThread *t = ditc_emu_me();
  if (((uintptr_t)smem | (uintptr_t)gmem) & 15u)
    ditc_emu_fault("cp.async: an address that is not 16-byte aligned");
  if (src_bytes < 0 || src_bytes > 16) ditc_emu_fault("cp.async: src_bytes outside 0..16");
  if (t->cp_n == DITC_EMU_CP_ASYNC_MAX) { /* the oldest lands now: the hardware may land it any time */
    ditc_emu_cp_do(&t->cp[0]);
    memmove(t->cp, t->cp + 1, (DITC_EMU_CP_ASYNC_MAX - 1) * sizeof *t->cp);
    t->cp_n--;
  }
  DitcEmuCpAsync *c = &t->cp[t->cp_n++];
  c->dst = smem;
  c->src = gmem;
  c->src_bytes = (unsigned)src_bytes;
  c->group = t->cp_committed;
}
static inline void ditc_cp_async_16(void *smem, const void *gmem) { ditc_cp_async_16_zfill(smem, gmem, 16); }
static inline void ditc_cp_async_commit(void) { ditc_emu_me()->cp_committed++; }
/* Every group but the n most recently committed lands, in issue order;
 * copies not yet committed stay pending. */
static inline void ditc_emu_cp_async_wait_group(unsigned n) {
  DitcEmuThread *t = ditc_emu_me();
  unsigned keep = 0;
  for (unsigned i = 0; i < t->cp_n; i++) {
    if (t->cp[i].group + n < t->cp_committed) ditc_emu_cp_do(&t->cp[i]);
    else t->cp[keep++] = t->cp[i];
  }
  t->cp_n = keep;
}
/* n must be a constant, as PTX's immediate operand is. */
#define ditc_cp_async_wait_group(n)                                                  \
  __extension__({                                                                    \
    _Static_assert((n) >= 0 && (n) <= 7, "ditc_cp_async_wait_group: a constant 0..7"); \
    ditc_emu_cp_async_wait_group((unsigned)(n));                                     \
  })
static inline void ditc_cp_async_wait_all(void) {
  ditc_cp_async_commit();
  ditc_emu_cp_async_wait_group(0);
}

#endif /* DITC_EMU_ABI_ONLY */
#endif /* DITC_EMU_PRELUDE_H */
