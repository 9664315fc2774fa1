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
 *   Language.  The intersection of C11 and C++17: no templates, overloading,
 *   references, classes, namespaces, `auto`, operators on __half; no VLAs,
 *   designated initialisers, compound literals or implicit void* conversions
 *   (cast explicitly); no C++ keywords as identifiers (new, this, class,
 *   template, delete, ...); no enums (use int constants or #define); use
 *   __restrict__, never `restrict`; `#pragma unroll` is allowed (the host
 *   compiler ignores it).  Every identifier starting with ditc_emu_ or
 *   DITC_EMU_ is reserved for this prelude.
 *
 * Not supported (by either the emulator or this dialect): tensor cores
 * (wmma, mma.sync, wgmma), cp.async / TMA, cooperative groups and grid-wide
 * sync, __ballot_sync / __any_sync / __all_sync / __match_sync, shuffles with
 * partial masks, __half2 / __nv_bfloat162 vector math, half arithmetic
 * operators, __constant__ and __device__ global variables, texture and
 * surface objects, printf, assert and __trap, dynamic parallelism, clusters.
 * In the emulator a thread that faults takes the process with it, as a
 * device fault takes the CUDA context, and a thread's stack is about 248 KB.
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

#define DITC_EMU_ABI_VERSION 1

typedef struct {
  unsigned int x, y, z;
} uint3;
typedef uint3 dim3;

/* One emulated thread; emu.c embeds it at the head of its fiber record. */
typedef struct {
  uint3 threadIdx, blockIdx;
  dim3 blockDim, gridDim;
  void *dyn_shared; /* this block's dynamic shared memory */
  unsigned worker;  /* which worker (OS thread) runs the block, < DITC_EMU_MAX_WORKERS */
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

/* The exported entry unpacks args[0] into the by-value params struct. */
#define DITC_KERNEL(name, P, p)                                                  \
  static void ditc_emu_body_##name(const P p);                                   \
  __attribute__((visibility("default"))) void ditc_emu_kernel_##name(void **ditc_emu_args); \
  void ditc_emu_kernel_##name(void **ditc_emu_args) {                            \
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
/* Keep this section identical in both preludes. */

#define DITC_WARP_SIZE 32
#define DITC_INFINITY __int_as_float(0x7f800000)
#define DITC_FLT_MAX 3.402823466e+38f
DITC_DEVICE static inline int ditc_imin(int a, int b) { return a < b ? a : b; }
DITC_DEVICE static inline int ditc_imax(int a, int b) { return a > b ? a : b; }
DITC_DEVICE static inline float ditc_warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
DITC_DEVICE static inline float ditc_warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
DITC_DEVICE static inline float ditc_warp_min(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fminf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

#endif /* DITC_EMU_ABI_ONLY */
#endif /* DITC_EMU_PRELUDE_H */
