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

/* ==================== helpers shared with emu_prelude.h ================== */
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

#endif /* DITC_CUDA_PRELUDE_H */
