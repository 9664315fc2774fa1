/*
 * cuda_prelude.h - the kernel-source dialect under NVRTC.
 *
 * Included before every generated kernel source compiled by NVRTC (as the
 * program's first lines, or with --pre-include=cuda_prelude.h, and
 * -I<cuda>/include for cuda_fp16.h / cuda_bf16.h).  It maps ditc's dialect
 * macros onto CUDA C++; emu_prelude.h maps the same macros onto the CPU
 * emulator.  The dialect itself (what the code generator may emit) is
 * documented at the top of emu_prelude.h.
 */
#ifndef DITC_CUDA_PRELUDE_H
#define DITC_CUDA_PRELUDE_H

#include <cuda_fp16.h>
#include <cuda_bf16.h>

/* NVRTC has no <stdint.h>; these are the LP64 widths the host side uses. */
typedef signed char int8_t;
typedef unsigned char uint8_t;
typedef short int16_t;
typedef unsigned short uint16_t;
typedef int int32_t;
typedef unsigned int uint32_t;
typedef long long int64_t;
typedef unsigned long long uint64_t;

/* One by-value params struct per kernel; cuLaunchKernel args = { &params }. */
#define DITC_KERNEL(name, P, p) extern "C" __global__ void name(const P p)
#define DITC_KERNEL_BOUNDS(name, P, p, max_threads) \
  extern "C" __global__ void __launch_bounds__(max_threads) name(const P p)
#define DITC_DEVICE __device__

#define DITC_SHARED(T, name, n) __shared__ __align__(16) T name[n]
#define DITC_SHARED2(T, name, n, m) __shared__ __align__(16) T name[n][m]
/* One untyped extern array, viewed through a typed pointer, so kernels of one
 * module may use different element types. */
#define DITC_DYN_SHARED(T, name)                                   \
  extern __shared__ __align__(16) unsigned char ditc_dyn_smem_[]; \
  T *name = (T *)ditc_dyn_smem_

/* DITC_XOR_REDUCE(v, OP, WIDTH): v = OP(v, the value of lane ^ o) for o = WIDTH/2, ..., 1 (WIDTH a
 * power of two up to 32, a literal): each group of WIDTH lanes ends with one value, the same in
 * every lane of it.  The whole warp must take part.  The emulator does it as one warp collective. */
#define DITC_XOR_REDUCE(v, OP, WIDTH) \
  for (int ditc_o_ = (WIDTH) / 2; ditc_o_ > 0; ditc_o_ >>= 1) (v) = OP((v), __shfl_xor_sync(0xffffffffu, (v), ditc_o_))

/* ==================== helpers shared with emu_prelude.h ================== */
/* One text for both preludes (codegen/embed.c splices it in here). */
#include "prelude_shared.h"
/* ===================== end of the shared helpers ========================= */

/* ============================ tensor cores ============================== */
/* Inline PTX; the emulator's versions (emu_prelude.h) follow the same PTX
 * ISA sections.  mma.sync m16n8k16/m16n8k32 and cp.async need sm_80; below
 * that these two symbols, declared and never defined, are called instead, so
 * a kernel that uses them fails in ptxas with "Unresolved extern function
 * 'ditc_mma_sync_requires_sm_80'" (or ..._cp_async_...): a plan for sm_75
 * must not use them.  ldmatrix needs sm_75, the oldest architecture NVRTC 13
 * targets (older NVRTCs reject it below sm_75 in ptxas). */
extern "C" __device__ void ditc_mma_sync_requires_sm_80(void);
extern "C" __device__ void ditc_cp_async_requires_sm_80(void);

DITC_DEVICE static inline int ditc_lane_id(void) {
  unsigned l;
  asm volatile("mov.u32 %0, %%laneid;" : "=r"(l));
  return (int)l;
}
DITC_DEVICE static inline unsigned ditc_ld_b32(const void *p) { return *(const unsigned *)p; }

#if __CUDA_ARCH__ >= 800
#define DITC_MMA_16816_(ab, d, a, b, c)                                                           \
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32." ab "." ab ".f32 {%0,%1,%2,%3}, "        \
               "{%4,%5,%6,%7}, {%8,%9}, {%10,%11,%12,%13};\n"                                    \
               : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])                                  \
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]),    \
                 "f"(c[1]), "f"(c[2]), "f"(c[3]))
#else
#define DITC_MMA_16816_(ab, d, a, b, c) ditc_mma_sync_requires_sm_80()
#endif
DITC_DEVICE static inline void ditc_mma_bf16_16816(float d[4], const unsigned a[4], const unsigned b[2],
                                                   const float c[4]) {
  DITC_MMA_16816_("bf16", d, a, b, c);
}
DITC_DEVICE static inline void ditc_mma_f16_16816(float d[4], const unsigned a[4], const unsigned b[2],
                                                  const float c[4]) {
  DITC_MMA_16816_("f16", d, a, b, c);
}
DITC_DEVICE static inline void ditc_mma_s8_16832(int d[4], const unsigned a[4], const unsigned b[2],
                                                 const int c[4]) {
#if __CUDA_ARCH__ >= 800
  asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
               "{%8,%9}, {%10,%11,%12,%13};\n"
               : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "r"(c[0]),
                 "r"(c[1]), "r"(c[2]), "r"(c[3]));
#else
  ditc_mma_sync_requires_sm_80();
#endif
}

#define DITC_SMEM_ADDR_(p) ((unsigned)__cvta_generic_to_shared(p))
DITC_DEVICE static inline void ditc_ldmatrix_x1(unsigned r[1], const void *row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n" : "=r"(r[0]) : "r"(DITC_SMEM_ADDR_(row)));
}
DITC_DEVICE static inline void ditc_ldmatrix_x2(unsigned r[2], const void *row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1]) : "r"(DITC_SMEM_ADDR_(row)));
}
DITC_DEVICE static inline void ditc_ldmatrix_x4(unsigned r[4], const void *row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(DITC_SMEM_ADDR_(row)));
}
DITC_DEVICE static inline void ditc_ldmatrix_x1_trans(unsigned r[1], const void *row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];\n"
               : "=r"(r[0]) : "r"(DITC_SMEM_ADDR_(row)));
}
DITC_DEVICE static inline void ditc_ldmatrix_x2_trans(unsigned r[2], const void *row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1]) : "r"(DITC_SMEM_ADDR_(row)));
}
DITC_DEVICE static inline void ditc_ldmatrix_x4_trans(unsigned r[4], const void *row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(DITC_SMEM_ADDR_(row)));
}

#if __CUDA_ARCH__ >= 800
DITC_DEVICE static inline void ditc_cp_async_16_zfill(void *smem, const void *gmem, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n"
               :: "r"(DITC_SMEM_ADDR_(smem)), "l"(gmem), "r"(src_bytes));
}
DITC_DEVICE static inline void ditc_cp_async_16(void *smem, const void *gmem) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" :: "r"(DITC_SMEM_ADDR_(smem)), "l"(gmem));
}
DITC_DEVICE static inline void ditc_cp_async_commit(void) { asm volatile("cp.async.commit_group;\n" ::); }
#define ditc_cp_async_wait_group(n) asm volatile("cp.async.wait_group %0;\n" :: "n"(n) : "memory")
DITC_DEVICE static inline void ditc_cp_async_wait_all(void) {
  asm volatile("cp.async.wait_all;\n" ::: "memory");
}
#else
DITC_DEVICE static inline void ditc_cp_async_16_zfill(void *smem, const void *gmem, int src_bytes) {
  (void)smem, (void)gmem, (void)src_bytes;
  ditc_cp_async_requires_sm_80();
}
DITC_DEVICE static inline void ditc_cp_async_16(void *smem, const void *gmem) {
  (void)smem, (void)gmem;
  ditc_cp_async_requires_sm_80();
}
DITC_DEVICE static inline void ditc_cp_async_commit(void) { ditc_cp_async_requires_sm_80(); }
#define ditc_cp_async_wait_group(n) ditc_cp_async_requires_sm_80()
DITC_DEVICE static inline void ditc_cp_async_wait_all(void) { ditc_cp_async_requires_sm_80(); }
#endif

#endif /* DITC_CUDA_PRELUDE_H */
