/*
 * prelude_shared.h - the dialect helpers both preludes define: the same text
 * under NVRTC (cuda_prelude.h) and under the emulator (emu_prelude.h).
 *
 * Each prelude includes it at the point its own DITC_DEVICE, DITC_XOR_REDUCE,
 * float/half/bf16 conversions and __int_as_float are defined.  When the
 * library embeds the preludes (codegen/embed.c), the include line is replaced
 * by this file's text, so the embedded preludes are self-contained.
 */
#ifndef DITC_PRELUDE_SHARED_H
#define DITC_PRELUDE_SHARED_H

#define DITC_WARP_SIZE 32
#define DITC_INFINITY __int_as_float(0x7f800000)
#define DITC_FLT_MAX 3.402823466e+38f
DITC_DEVICE static inline int ditc_imin(int a, int b) { return a < b ? a : b; }
DITC_DEVICE static inline int ditc_imax(int a, int b) { return a > b ? a : b; }
DITC_DEVICE static inline float ditc_fadd(float a, float b) { return a + b; }
DITC_DEVICE static inline float ditc_warp_sum(float v) {
  DITC_XOR_REDUCE(v, ditc_fadd, 32);
  return v;
}
DITC_DEVICE static inline float ditc_warp_max(float v) {
  DITC_XOR_REDUCE(v, fmaxf, 32);
  return v;
}
DITC_DEVICE static inline float ditc_warp_min(float v) {
  DITC_XOR_REDUCE(v, fminf, 32);
  return v;
}

/* Tensor-core fragments: which element of a matrix element i of a lane's
 * fragment is, as the PTX ISA gives it ("Matrix Fragments for mma.m16n8k16
 * with floating point type" and "Matrix Fragments for mma.m16n8k32",
 * sections 9.7.14.5.8 and 9.7.14.5.10 of PTX ISA 8.x), with g = lane >> 2
 * and t = lane & 3:
 *   m16n8k16 A (16x16 bf16/f16): element i < 8 in a[i/2], bits 16*(i%2) up;
 *            row g + 8*((i>>1)&1), column 2t + (i&1) + 8*(i>>2)
 *            B (16x8): element i < 4 in b[i/2]; row 2t + (i&1) + 8*(i>>1), column g
 *   m16n8k32 A (16x32 s8): element i < 16 in a[i/4], bits 8*(i%4) up;
 *            row g + 8*((i>>2)&1), column 4t + (i&3) + 16*(i>>3)
 *            B (32x8): element i < 8 in b[i/4]; row 4t + (i&3) + 16*(i>>2), column g
 *   C and D of both (16x8, f32 or s32): element i < 4 in c[i];
 *            row g + 8*(i>>1), column 2t + (i&1) */
DITC_DEVICE static inline int ditc_mma_a_row(int lane, int i) { return (lane >> 2) + 8 * ((i >> 1) & 1); }
DITC_DEVICE static inline int ditc_mma_a_col(int lane, int i) { return 2 * (lane & 3) + (i & 1) + 8 * (i >> 2); }
DITC_DEVICE static inline int ditc_mma_b_row(int lane, int i) { return 2 * (lane & 3) + (i & 1) + 8 * (i >> 1); }
DITC_DEVICE static inline int ditc_mma_b_col(int lane, int i) { (void)i; return lane >> 2; }
DITC_DEVICE static inline int ditc_mma_s8_a_row(int lane, int i) { return (lane >> 2) + 8 * ((i >> 2) & 1); }
DITC_DEVICE static inline int ditc_mma_s8_a_col(int lane, int i) { return 4 * (lane & 3) + (i & 3) + 16 * (i >> 3); }
DITC_DEVICE static inline int ditc_mma_s8_b_row(int lane, int i) { return 4 * (lane & 3) + (i & 3) + 16 * (i >> 2); }
DITC_DEVICE static inline int ditc_mma_s8_b_col(int lane, int i) { (void)i; return lane >> 2; }
DITC_DEVICE static inline int ditc_mma_c_row(int lane, int i) { return (lane >> 2) + 8 * (i >> 1); }
DITC_DEVICE static inline int ditc_mma_c_col(int lane, int i) { return 2 * (lane & 3) + (i & 1); }

/* Fragment registers: the lower-numbered element in the low bits. */
DITC_DEVICE static inline unsigned ditc_pack_b16x2(unsigned short lo, unsigned short hi) {
  return (unsigned)lo | ((unsigned)hi << 16);
}
DITC_DEVICE static inline unsigned ditc_pack_bf16x2(float lo, float hi) {
  return ditc_pack_b16x2(__bfloat16_as_ushort(__float2bfloat16_rn(lo)),
                         __bfloat16_as_ushort(__float2bfloat16_rn(hi)));
}
DITC_DEVICE static inline unsigned ditc_pack_f16x2(float lo, float hi) {
  return ditc_pack_b16x2(__half_as_ushort(__float2half_rn(lo)), __half_as_ushort(__float2half_rn(hi)));
}
/* Four signed bytes (each value's low 8 bits), e0 lowest. */
DITC_DEVICE static inline unsigned ditc_pack_s8x4(int e0, int e1, int e2, int e3) {
  return ((unsigned)e0 & 0xffu) | (((unsigned)e1 & 0xffu) << 8) | (((unsigned)e2 & 0xffu) << 16) |
         (((unsigned)e3 & 0xffu) << 24);
}
/* Element i (0: low, 1: high) of a packed pair, as float. */
DITC_DEVICE static inline float ditc_bf16x2_get(unsigned r, int i) {
  return __bfloat162float(__ushort_as_bfloat16((unsigned short)(r >> (16 * (i & 1)))));
}
DITC_DEVICE static inline float ditc_f16x2_get(unsigned r, int i) {
  return __half2float(__ushort_as_half((unsigned short)(r >> (16 * (i & 1)))));
}

#endif /* DITC_PRELUDE_SHARED_H */
