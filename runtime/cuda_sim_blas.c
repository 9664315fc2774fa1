/*
 * cuda_sim_blas.c - a simulated cuBLASLt (DITC_CUDA_SIM=1): the entry points
 * of cuda_api.h's rt_lt table, computing matmuls on the host from the
 * descriptors as cublasLt.h and the cuBLASLt documentation define them, not
 * as ditc happens to use them, so a wrong descriptor gives a wrong answer or
 * an error here too.
 *
 * D = epilogue(alpha * op(A) op(B) + beta * C), per batch, where
 *   - every matrix is described by its layout: type, rows, cols, leading
 *     dimension, order (CUBLASLT_ORDER_COL: element (r, c) at c*ld + r;
 *     CUBLASLT_ORDER_ROW: at r*ld + c; the tiled orders are not simulated),
 *     batch count (the same for all four) and strided batch offset;
 *   - op(A) is m x k (A stored k x m with CUBLAS_OP_T), op(B) k x n, C and D
 *     m x n: a layout whose shape disagrees is CUBLAS_STATUS_INVALID_VALUE;
 *   - the products accumulate in the compute type (CUBLAS_COMPUTE_32F in
 *     float, _FAST_TF32 / _FAST_16F / _FAST_16BF after rounding A and B to
 *     that type, _64F in double, _16F rounding to half after every step, _32I
 *     in 32-bit integers); alpha, beta and the epilogue work in the scale
 *     type; the result is rounded once to D's type;
 *   - the epilogue adds the bias vector (one value per row of D, m of them,
 *     CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE apart per batch, of D's type
 *     unless CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE says otherwise) and then
 *     applies ReLU or GELU (the tanh approximation);
 *   - when beta is 0, C is not read (it may hold NaNs, or not be valid);
 *   - alpha and beta are read from host memory (CUBLASLT_POINTER_MODE_HOST)
 *     when cublasLtMatmul is called, or from device memory when it runs.
 * The type combinations accepted are those of cuBLASLt's table for
 * cublasLtMatmul: 16F/16F/16F with COMPUTE_16F; 32F-compute rows with A, B in
 * 32F, 16F, 16BF or 8I (C, D their type or 32F); COMPUTE_32I with 8I A, B and
 * 32I C, D (scale 32I) or 8I C, D (scale 32F, rounded and saturated); 64F;
 * and FP8 (A, B in E4M3/E5M2, not both E5M2; C 16BF, 16F or 32F; D C's type
 * or an FP8 type) with the A/B/C/D scale pointers and AMAX_D:
 * D = scale_D * (alpha * scale_A * scale_B * op(A) op(B) + beta * scale_C * C).
 * int8 (COMPUTE_32I) and FP8 run only in the TN form (A transposed, B not)
 * on column-major layouts, as cuBLASLt requires; int8 also needs m and k and
 * every leading dimension multiples of 4 and 4-byte aligned pointers (its
 * IMMA rules for the regular ordering); FP8 needs compute capability 8.9
 * or later, k and A's and B's leading dimensions multiples of 16 and
 * 16-byte aligned matrices.  Others are
 * CUBLAS_STATUS_NOT_SUPPORTED.  Scale pointers on a combination that does
 * not take them are CUBLAS_STATUS_INVALID_VALUE, as the header says.
 *
 * The heuristic checks the problem the same way and returns one algorithm.
 * It assumes what the preference promises: operands aligned to
 * CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_{A,B,C,D}_BYTES (default 256) and the
 * bias to the alignment of the bias pointer set at the time (cublasLt.h:
 * routines that do not dereference it read its alignment), and it uses a
 * workspace of min(CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, 4 MiB) that
 * every run overwrites.  cublasLtMatmul then refuses, with
 * CUBLAS_STATUS_INVALID_VALUE, a pointer less aligned than its algorithm
 * assumed or than its element, an algorithm chosen for other types, and a
 * workspace smaller than the algorithm needs.  When it runs it checks every
 * operand's whole extent (all batches), the bias, scales, alpha/beta and
 * the workspace against the device's live allocations: outside them the
 * device faults (CUDA_ERROR_ILLEGAL_ADDRESS, sticky) and the call returns
 * CUBLAS_STATUS_EXECUTION_FAILED.  On a capturing stream the matmul, with
 * every descriptor value as it stood, is recorded into the graph.
 */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/cuda_sim.h"

/* cublasStatus_t */
enum {
  ST_SUCCESS = 0,
  ST_NOT_INITIALIZED = 1,
  ST_ALLOC_FAILED = 3,
  ST_INVALID_VALUE = 7,
  ST_ARCH_MISMATCH = 8,
  ST_MAPPING_ERROR = 11,
  ST_EXECUTION_FAILED = 13,
  ST_INTERNAL_ERROR = 14,
  ST_NOT_SUPPORTED = 15,
};

/* cudaDataType_t */
enum {
  T_32F = 0, T_64F = 1, T_16F = 2, T_8I = 3, T_32I = 10, T_16BF = 14, T_E4M3 = 28, T_E5M2 = 29,
};

/* cublasComputeType_t */
enum {
  C_16F = 64, C_16F_PEDANTIC = 65, C_32F = 68, C_32F_PEDANTIC = 69, C_64F = 70, C_64F_PEDANTIC = 71,
  C_32I = 72, C_32I_PEDANTIC = 73, C_32F_FAST_16F = 74, C_32F_FAST_16BF = 75, C_32F_FAST_TF32 = 77,
};

/* cublasLtEpilogue_t */
enum { E_DEFAULT = 1, E_RELU = 2, E_BIAS = 4, E_RELU_BIAS = 6, E_GELU = 32, E_GELU_BIAS = 36 };

enum { ORDER_COL = 0, ORDER_ROW = 1 };
enum { OP_N = 0, OP_T = 1, OP_C = 2 };
enum { FILL_FULL = 2 };

#define SIM_WORKSPACE ((uint64_t)4 << 20)
#define ALGO_TAG 0x4f474c414d495344ull /* "DSIMALGO" */

static const struct {
  int code;
  const char *name, *text;
} STATUSES[] = {
    {ST_SUCCESS, "CUBLAS_STATUS_SUCCESS", "success"},
    {ST_NOT_INITIALIZED, "CUBLAS_STATUS_NOT_INITIALIZED", "the library was not initialized"},
    {ST_ALLOC_FAILED, "CUBLAS_STATUS_ALLOC_FAILED", "the resource allocation failed"},
    {ST_INVALID_VALUE, "CUBLAS_STATUS_INVALID_VALUE", "an invalid numeric value was used as an argument"},
    {ST_ARCH_MISMATCH, "CUBLAS_STATUS_ARCH_MISMATCH", "an absent device architectural feature is required"},
    {ST_MAPPING_ERROR, "CUBLAS_STATUS_MAPPING_ERROR", "an access to GPU memory space failed"},
    {ST_EXECUTION_FAILED, "CUBLAS_STATUS_EXECUTION_FAILED", "the GPU program failed to execute"},
    {ST_INTERNAL_ERROR, "CUBLAS_STATUS_INTERNAL_ERROR", "an internal operation failed"},
    {ST_NOT_SUPPORTED, "CUBLAS_STATUS_NOT_SUPPORTED", "the functionality requested is not supported"},
};

static const char *lt_status_name(RtLtStatus s) {
  for (size_t i = 0; i < sizeof STATUSES / sizeof STATUSES[0]; i++)
    if (STATUSES[i].code == s) return STATUSES[i].name;
  return "CUBLAS_STATUS_UNKNOWN";
}

static const char *lt_status_string(RtLtStatus s) {
  for (size_t i = 0; i < sizeof STATUSES / sizeof STATUSES[0]; i++)
    if (STATUSES[i].code == s) return STATUSES[i].text;
  return "unknown error";
}

static size_t lt_version(void) { return 130000; }
static size_t lt_cudart_version(void) { return 13000; }

/* ======================================================================== */
/* types                                                                    */
/* ======================================================================== */

static size_t type_size(int t) {
  switch (t) {
  case T_32F: case T_32I: return 4;
  case T_64F: return 8;
  case T_16F: case T_16BF: return 2;
  case T_8I: case T_E4M3: case T_E5M2: return 1;
  default: return 0;
  }
}

static const char *type_name(int t) {
  switch (t) {
  case T_32F: return "CUDA_R_32F";
  case T_64F: return "CUDA_R_64F";
  case T_16F: return "CUDA_R_16F";
  case T_16BF: return "CUDA_R_16BF";
  case T_8I: return "CUDA_R_8I";
  case T_32I: return "CUDA_R_32I";
  case T_E4M3: return "CUDA_R_8F_E4M3";
  case T_E5M2: return "CUDA_R_8F_E5M2";
  default: return "an unknown cudaDataType";
  }
}

static int is_fp8(int t) { return t == T_E4M3 || t == T_E5M2; }

/* FP8: E4M3 (bias 7, no infinities, S.1111.111 is NaN, max 448) and E5M2
 * (bias 15, IEEE-like, max 57344).  Stores round to nearest even and
 * saturate finite values to the largest normal. */
static double fp8_load(int t, uint8_t b) {
  int sign = b >> 7, mb = t == T_E4M3 ? 3 : 2, eb = 7 - mb, bias = t == T_E4M3 ? 7 : 15;
  int e = (b >> mb) & ((1 << eb) - 1), m = b & ((1 << mb) - 1);
  double v;
  if (t == T_E4M3 && e == 15 && m == 7) return NAN;
  if (t == T_E5M2 && e == 31) return m ? NAN : (sign ? -INFINITY : INFINITY);
  if (e == 0) v = ldexp((double)m, 1 - bias - mb);
  else v = ldexp((double)((1 << mb) | m), e - bias - mb);
  return sign ? -v : v;
}

static uint8_t fp8_store(int t, double v) {
  int mb = t == T_E4M3 ? 3 : 2, bias = t == T_E4M3 ? 7 : 15;
  double maxv = t == T_E4M3 ? 448.0 : 57344.0;
  if (isnan(v)) return t == T_E4M3 ? 0x7f : 0x7e;
  uint8_t sign = signbit(v) ? 0x80 : 0;
  double a = fabs(v);
  if (a >= maxv) return sign | (t == T_E4M3 ? 0x7e : 0x7b);
  int e;
  frexp(a, &e); /* a = f * 2^e, f in [0.5, 1) */
  int ue = e - 1;   /* unbiased exponent of a in [2^ue, 2^(ue+1)) */
  if (ue < 1 - bias) ue = 1 - bias; /* subnormal range */
  double q = ldexp(a, mb - ue);     /* the mantissa in units of the last place */
  double r = nearbyint(q);          /* round to nearest even (default rounding mode) */
  double back = ldexp(r, ue - mb);
  if (back >= maxv) return sign | (t == T_E4M3 ? 0x7e : 0x7b);
  if (back == 0) return sign;
  int be;
  frexp(back, &be);
  int bue = be - 1;
  if (bue < 1 - bias) return sign | (uint8_t)ldexp(back, bias - 1 + mb); /* subnormal */
  int mant = (int)(ldexp(back, mb - bue)) - (1 << mb);
  return sign | (uint8_t)((bue + bias) << mb) | (uint8_t)mant;
}

static double load(int t, const unsigned char *p, int64_t i) {
  switch (t) {
  case T_32F: { float f; memcpy(&f, p + 4 * i, 4); return f; }
  case T_64F: { double d; memcpy(&d, p + 8 * i, 8); return d; }
  case T_16F: { uint16_t h; memcpy(&h, p + 2 * i, 2); return ir_f16_to_f32(h); }
  case T_16BF: { uint16_t h; memcpy(&h, p + 2 * i, 2); return ir_bf16_to_f32(h); }
  case T_8I: return (int8_t)p[i];
  case T_32I: { int32_t v; memcpy(&v, p + 4 * i, 4); return v; }
  case T_E4M3: case T_E5M2: return fp8_load(t, p[i]);
  }
  ditc_unreachable();
}

static double sat_round(double v, double lo, double hi) {
  if (isnan(v)) return 0;
  v = nearbyint(v);
  return v < lo ? lo : v > hi ? hi : v;
}

static void store(int t, unsigned char *p, int64_t i, double v) {
  switch (t) {
  case T_32F: { float f = (float)v; memcpy(p + 4 * i, &f, 4); return; }
  case T_64F: memcpy(p + 8 * i, &v, 8); return;
  case T_16F: { uint16_t h = ir_f32_to_f16((float)v); memcpy(p + 2 * i, &h, 2); return; }
  case T_16BF: { uint16_t h = ir_f32_to_bf16((float)v); memcpy(p + 2 * i, &h, 2); return; }
  case T_8I: p[i] = (unsigned char)(int8_t)sat_round(v, -128, 127); return;
  case T_32I: { int32_t x = (int32_t)sat_round(v, -2147483648.0, 2147483647.0); memcpy(p + 4 * i, &x, 4); return; }
  case T_E4M3: case T_E5M2: p[i] = fp8_store(t, v); return;
  }
  ditc_unreachable();
}

/* v rounded to a float type (what a value of that type holds). */
static double round_to(int t, double v) {
  switch (t) {
  case T_32F: return (float)v;
  case T_16F: return ir_f16_to_f32(ir_f32_to_f16((float)v));
  case T_16BF: return ir_bf16_to_f32(ir_f32_to_bf16((float)v));
  default: return v;
  }
}

/* TF32: f32 with a 10-bit mantissa, rounded to nearest (ties away). */
static float round_tf32(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u;
  memcpy(&f, &u, 4);
  return f;
}

/* ======================================================================== */
/* descriptors                                                              */
/* ======================================================================== */

typedef struct {
  int compute, scale, pointer_mode, transa, transb, transc, fill;
  uint32_t epilogue;
  uint64_t bias;
  int64_t bias_stride;
  int32_t bias_type;
  uint64_t scale_ptr[4]; /* A, B, C, D */
  uint64_t amax_d;
  int set_unsupported;   /* an attribute the simulation does not compute was set */
  char unsupported[64];
} Matmul;

typedef struct {
  uint32_t type;
  int32_t order;
  uint64_t rows, cols;
  int64_t ld;
  int32_t batch;
  int64_t stride;
  int64_t plane;
  uint32_t batch_mode;
} Layout;

typedef struct {
  uint32_t search;
  uint64_t max_ws;
  uint32_t align[4]; /* A, B, C, D */
} Pref;

typedef enum { K_MATMUL = 1, K_LAYOUT, K_PREF } Kind;

struct RtLtOpaque {
  struct RtLtOpaque *next;
  Kind kind;
  union {
    Matmul m;
    Layout l;
    Pref p;
  } u;
};

struct RtLtContext {
  struct RtLtContext *next;
};

static struct RtLtOpaque *descs;
static struct RtLtContext *handles;

SIM_LIST_TAKE(desc_take, struct RtLtOpaque)
SIM_LIST_TAKE(handle_take, struct RtLtContext)

static struct RtLtOpaque *desc_live(RtLtDesc d, Kind k) {
  for (struct RtLtOpaque *x = descs; x; x = x->next)
    if (x == d) return x->kind == k ? x : NULL;
  return NULL;
}

static int handle_live(RtLtHandle h) {
  for (struct RtLtContext *x = handles; x; x = x->next)
    if (x == h) return 1;
  return 0;
}

#define LT_ENTER() \
  sim_detail_clear(); \
  sim_lock()
#define LT_LEAVE(r)  \
  do {               \
    int v_ = (r);    \
    sim_unlock();    \
    return v_;       \
  } while (0)

static RtLtStatus lt_create(RtLtHandle *h) {
  LT_ENTER();
  if (!h) LT_LEAVE(ST_INVALID_VALUE);
  *h = NULL;
  if (sim_ctx_check()) LT_LEAVE(ST_NOT_INITIALIZED); /* the CUDA runtime inside needs a context */
  struct RtLtContext *x = xcalloc(1, sizeof *x);
  x->next = handles;
  handles = x;
  *h = x;
  LT_LEAVE(ST_SUCCESS);
}

static RtLtStatus lt_destroy(RtLtHandle h) {
  LT_ENTER();
  struct RtLtContext *x = handle_take(&handles, h);
  if (!x) LT_LEAVE(sim_fail(ST_NOT_INITIALIZED, "not a cuBLASLt handle"));
  free(x);
  LT_LEAVE(ST_SUCCESS);
}

static RtLtStatus desc_new(RtLtDesc *out, Kind k) {
  struct RtLtOpaque *x = xcalloc(1, sizeof *x);
  x->kind = k;
  x->next = descs;
  descs = x;
  *out = x;
  return ST_SUCCESS;
}

static RtLtStatus desc_destroy(RtLtDesc d, Kind k) {
  LT_ENTER();
  if (!desc_live(d, k)) LT_LEAVE(sim_fail(ST_INVALID_VALUE, "not a live descriptor of that kind"));
  struct RtLtOpaque *x = desc_take(&descs, d);
  free(x);
  LT_LEAVE(ST_SUCCESS);
}

static RtLtStatus lt_matmul_desc_create(RtLtDesc *d, int compute, int scale) {
  LT_ENTER();
  if (!d) LT_LEAVE(ST_INVALID_VALUE);
  desc_new(d, K_MATMUL);
  Matmul *m = &(*d)->u.m;
  m->compute = compute, m->scale = scale, m->pointer_mode = 0;
  m->transa = m->transb = m->transc = OP_N;
  m->fill = FILL_FULL;
  m->epilogue = E_DEFAULT;
  m->bias_type = -1;
  LT_LEAVE(ST_SUCCESS);
}

static RtLtStatus lt_matmul_desc_destroy(RtLtDesc d) { return desc_destroy(d, K_MATMUL); }

/* An attribute's value of exactly its size, or CUBLAS_STATUS_INVALID_VALUE. */
#define ATTR(field, type)                                                                          \
  do {                                                                                             \
    if (size != sizeof(type))                                                                      \
      LT_LEAVE(sim_fail(ST_INVALID_VALUE, "attribute %d takes %zu bytes, not %zu", attr,         \
                        sizeof(type), size));                                                      \
    type v_;                                                                                       \
    memcpy(&v_, buf, sizeof v_);                                                                   \
    field = v_;                                                                                    \
  } while (0)

static RtLtStatus lt_matmul_desc_set(RtLtDesc d, int attr, const void *buf, size_t size) {
  LT_ENTER();
  struct RtLtOpaque *x = desc_live(d, K_MATMUL);
  if (!x || !buf) LT_LEAVE(sim_fail(ST_INVALID_VALUE, "not a live matmul descriptor, or buf is NULL"));
  Matmul *m = &x->u.m;
  switch (attr) {
  case 0: ATTR(m->compute, int32_t); break;
  case 1: ATTR(m->scale, int32_t); break;
  case 2: ATTR(m->pointer_mode, int32_t); break;
  case 3: ATTR(m->transa, int32_t); break;
  case 4: ATTR(m->transb, int32_t); break;
  case 5: ATTR(m->transc, int32_t); break;
  case 6: ATTR(m->fill, int32_t); break;
  case 7: ATTR(m->epilogue, uint32_t); break;
  case 8: ATTR(m->bias, uintptr_t); break;
  case 10: ATTR(m->bias_stride, int64_t); break;
  case 17: case 18: case 19: case 20: ATTR(m->scale_ptr[attr - 17], uintptr_t); break;
  case 21: ATTR(m->amax_d, uintptr_t); break;
  case 26: ATTR(m->bias_type, int32_t); break;
  case 15: { int32_t sm; ATTR(sm, int32_t); (void)sm; break; }   /* SM_COUNT_TARGET: a tuning hint */
  case 25: { int8_t fa; ATTR(fa, int8_t); (void)fa; break; }     /* FAST_ACCUM: may lose accuracy; exact here */
  case 11: case 23: case 24: case 36: { uint64_t p; ATTR(p, uintptr_t); if (p) goto unsupported; break; }
  case 12: case 13: case 14: { int64_t v; ATTR(v, int64_t); if (v) goto unsupported; break; }
  case 22: case 31: case 32: case 33: case 34: case 35: case 37: {
    int32_t v;
    ATTR(v, int32_t);
    if (v != (attr == 22 ? -1 : 0)) goto unsupported;
    break;
  }
  default: LT_LEAVE(sim_fail(ST_INVALID_VALUE, "unknown matmul descriptor attribute %d", attr));
  }
  LT_LEAVE(ST_SUCCESS);
unsupported:
  m->set_unsupported = 1;
  snprintf(m->unsupported, sizeof m->unsupported, "matmul descriptor attribute %d", attr);
  LT_LEAVE(ST_SUCCESS);
}

static RtLtStatus lt_layout_create(RtLtDesc *l, int type, uint64_t rows, uint64_t cols, int64_t ld) {
  LT_ENTER();
  if (!l) LT_LEAVE(ST_INVALID_VALUE);
  desc_new(l, K_LAYOUT);
  (*l)->u.l = (Layout){(uint32_t)type, ORDER_COL, rows, cols, ld, 1, 0, 0, 0};
  LT_LEAVE(ST_SUCCESS);
}

static RtLtStatus lt_layout_destroy(RtLtDesc l) { return desc_destroy(l, K_LAYOUT); }

static RtLtStatus lt_layout_set(RtLtDesc d, int attr, const void *buf, size_t size) {
  LT_ENTER();
  struct RtLtOpaque *x = desc_live(d, K_LAYOUT);
  if (!x || !buf) LT_LEAVE(sim_fail(ST_INVALID_VALUE, "not a live matrix layout, or buf is NULL"));
  Layout *l = &x->u.l;
  switch (attr) {
  case 0: ATTR(l->type, uint32_t); break;
  case 1: ATTR(l->order, int32_t); break;
  case 2: ATTR(l->rows, uint64_t); break;
  case 3: ATTR(l->cols, uint64_t); break;
  case 4: ATTR(l->ld, int64_t); break;
  case 5: ATTR(l->batch, int32_t); break;
  case 6: ATTR(l->stride, int64_t); break;
  case 7: ATTR(l->plane, int64_t); break;
  case 8: ATTR(l->batch_mode, uint32_t); break;
  default: LT_LEAVE(sim_fail(ST_INVALID_VALUE, "unknown matrix layout attribute %d", attr));
  }
  LT_LEAVE(ST_SUCCESS);
}

static RtLtStatus lt_pref_create(RtLtDesc *p) {
  LT_ENTER();
  if (!p) LT_LEAVE(ST_INVALID_VALUE);
  desc_new(p, K_PREF);
  (*p)->u.p = (Pref){0, 0, {256, 256, 256, 256}};
  LT_LEAVE(ST_SUCCESS);
}

static RtLtStatus lt_pref_destroy(RtLtDesc p) { return desc_destroy(p, K_PREF); }

static RtLtStatus lt_pref_set(RtLtDesc d, int attr, const void *buf, size_t size) {
  LT_ENTER();
  struct RtLtOpaque *x = desc_live(d, K_PREF);
  if (!x || !buf) LT_LEAVE(sim_fail(ST_INVALID_VALUE, "not a live matmul preference, or buf is NULL"));
  Pref *p = &x->u.p;
  switch (attr) {
  case 0: ATTR(p->search, uint32_t); break;
  case 1: ATTR(p->max_ws, uint64_t); break;
  case 3: { uint32_t v; ATTR(v, uint32_t); (void)v; break; }   /* REDUCTION_SCHEME_MASK: one scheme here */
  case 5: case 6: case 7: case 8: ATTR(p->align[attr - 5], uint32_t); break;
  case 9: { float v; ATTR(v, float); (void)v; break; }         /* MAX_WAVES_COUNT */
  case 12: { uint64_t v; ATTR(v, uint64_t); (void)v; break; }  /* IMPL_MASK */
  default: LT_LEAVE(sim_fail(ST_INVALID_VALUE, "unknown matmul preference attribute %d", attr));
  }
  LT_LEAVE(ST_SUCCESS);
}

/* ======================================================================== */
/* the problem                                                              */
/* ======================================================================== */

typedef struct {
  Layout a, b, c, d;
  Matmul op;
  int64_t m, n, k, batch;
  int bias_type;       /* resolved */
  int has_bias, relu, gelu;
} Problem;

static int known_type(int t) { return type_size(t) != 0; }

/* The (compute, scale, A, B, C, D) combinations of cuBLASLt's table. */
static int types_ok(const Problem *P) {
  int c = P->op.compute, s = P->op.scale, A = (int)P->a.type, B = (int)P->b.type, C = (int)P->c.type,
      D = (int)P->d.type;
  switch (c) {
  case C_16F: case C_16F_PEDANTIC:
    return s == T_16F && A == T_16F && B == T_16F && C == T_16F && D == T_16F;
  case C_32F: case C_32F_PEDANTIC:
    if (s != T_32F) return 0;
    if (is_fp8(A) || is_fp8(B)) {
      if (!is_fp8(A) || !is_fp8(B) || (A == T_E5M2 && B == T_E5M2)) return 0;
      if (C != T_16BF && C != T_16F && C != T_32F) return 0;
      return D == C || (is_fp8(D) && C != T_32F);
    }
    if (A != B || C != D) return 0;
    if (A == T_32F) return C == T_32F;
    if (A == T_16F || A == T_16BF) return C == A || C == T_32F;
    if (A == T_8I) return C == T_32F;
    return 0;
  case C_32F_FAST_16F: case C_32F_FAST_16BF: case C_32F_FAST_TF32:
    return s == T_32F && A == T_32F && B == T_32F && C == T_32F && D == T_32F;
  case C_64F: case C_64F_PEDANTIC:
    return s == T_64F && A == T_64F && B == T_64F && C == T_64F && D == T_64F;
  case C_32I: case C_32I_PEDANTIC:
    if (A != T_8I || B != T_8I) return 0;
    if (s == T_32I) return C == T_32I && D == T_32I;
    if (s == T_32F) return C == T_8I && D == T_8I;
    return 0;
  default:
    return 0;
  }
}

static int layout_ok(const Layout *l, const char *name) {
  if (!known_type((int)l->type))
    return sim_fail(ST_INVALID_VALUE, "matrix %s: type %u is not a cudaDataType cuBLASLt multiplies", name, l->type);
  if (l->order != ORDER_COL && l->order != ORDER_ROW)
    return sim_fail(ST_NOT_SUPPORTED, "matrix %s: order %d (the simulation reads CUBLASLT_ORDER_COL and _ROW)", name,
                    l->order);
  if (l->rows > INT32_MAX || l->cols > INT32_MAX)
    return sim_fail(ST_NOT_SUPPORTED, "matrix %s: %llu x %llu is beyond int32 sizes", name,
                    (unsigned long long)l->rows, (unsigned long long)l->cols);
  uint64_t need = l->order == ORDER_COL ? l->rows : l->cols;
  if (l->ld < 0 || (uint64_t)l->ld < (need ? need : 1))
    return sim_fail(ST_INVALID_VALUE, "matrix %s: leading dimension %lld below the %s's %llu elements (%s)", name,
                    (long long)l->ld, l->order == ORDER_COL ? "column" : "row", (unsigned long long)need,
                    l->order == ORDER_COL ? "CUBLASLT_ORDER_COL" : "CUBLASLT_ORDER_ROW");
  if (l->batch < 1) return sim_fail(ST_INVALID_VALUE, "matrix %s: batch count %d", name, l->batch);
  if (l->stride < 0) return sim_fail(ST_INVALID_VALUE, "matrix %s: batch stride %lld", name, (long long)l->stride);
  if (l->plane) return sim_fail(ST_NOT_SUPPORTED, "matrix %s: a planar-complex layout", name);
  if (l->batch_mode) return sim_fail(ST_NOT_SUPPORTED, "matrix %s: pointer-array batches are not simulated", name);
  return 0;
}

/* Check descriptors op, A, B, C, D and resolve the problem: 0 or a status. */
static int problem_of(RtLtDesc op, RtLtDesc a, RtLtDesc b, RtLtDesc c, RtLtDesc d, Problem *P) {
  struct RtLtOpaque *o = desc_live(op, K_MATMUL), *la = desc_live(a, K_LAYOUT), *lb = desc_live(b, K_LAYOUT),
                    *lc = desc_live(c, K_LAYOUT), *ld = desc_live(d, K_LAYOUT);
  if (!o || !la || !lb || !lc || !ld)
    return sim_fail(ST_INVALID_VALUE, "the matmul descriptor or a matrix layout is not a live one of its kind");
  memset(P, 0, sizeof *P);
  P->op = o->u.m, P->a = la->u.l, P->b = lb->u.l, P->c = lc->u.l, P->d = ld->u.l;
  const Matmul *m = &P->op;
  int r;
  if ((r = layout_ok(&P->a, "A")) || (r = layout_ok(&P->b, "B")) || (r = layout_ok(&P->c, "C")) ||
      (r = layout_ok(&P->d, "D")))
    return r;
  if (m->set_unsupported) return sim_fail(ST_NOT_SUPPORTED, "%s is set: not simulated", m->unsupported);
  if ((m->transa != OP_N && m->transa != OP_T && m->transa != OP_C) ||
      (m->transb != OP_N && m->transb != OP_T && m->transb != OP_C))
    return sim_fail(ST_INVALID_VALUE, "transa %d / transb %d are not cublasOperation_t values", m->transa, m->transb);
  if (m->transc != OP_N) return sim_fail(ST_NOT_SUPPORTED, "CUBLASLT_MATMUL_DESC_TRANSC must be CUBLAS_OP_N");
  if (m->fill != FILL_FULL) return sim_fail(ST_NOT_SUPPORTED, "fill mode %d (only CUBLAS_FILL_MODE_FULL)", m->fill);
  if (m->pointer_mode != 0 && m->pointer_mode != 1)
    return sim_fail(ST_NOT_SUPPORTED, "pointer mode %d: vector alpha is not simulated", m->pointer_mode);
  int ta = m->transa != OP_N, tb = m->transb != OP_N;
  P->m = (int64_t)P->d.rows, P->n = (int64_t)P->d.cols;
  P->k = (int64_t)(ta ? P->a.rows : P->a.cols);
  int64_t am = (int64_t)(ta ? P->a.cols : P->a.rows);
  int64_t bk = (int64_t)(tb ? P->b.cols : P->b.rows), bn = (int64_t)(tb ? P->b.rows : P->b.cols);
  if (am != P->m || bk != P->k || bn != P->n || P->c.rows != P->d.rows || P->c.cols != P->d.cols)
    return sim_fail(ST_INVALID_VALUE, "shapes disagree: op(A) is %lld x %lld, op(B) %lld x %lld, C %llu x %llu, D "
                    "%llu x %llu (op(A) must be m x k, op(B) k x n, C and D m x n)", (long long)am, (long long)P->k,
                    (long long)bk, (long long)bn, (unsigned long long)P->c.rows, (unsigned long long)P->c.cols,
                    (unsigned long long)P->d.rows, (unsigned long long)P->d.cols);
  if (P->a.batch != P->d.batch || P->b.batch != P->d.batch || P->c.batch != P->d.batch)
    return sim_fail(ST_INVALID_VALUE, "batch counts differ: A %d, B %d, C %d, D %d", P->a.batch, P->b.batch,
                    P->c.batch, P->d.batch);
  P->batch = P->d.batch;
  if (!types_ok(P))
    return sim_fail(ST_NOT_SUPPORTED, "no cuBLASLt matmul has compute type %d, scale type %s, A %s, B %s, C %s, D %s",
                    m->compute, type_name(m->scale), type_name((int)P->a.type), type_name((int)P->b.type),
                    type_name((int)P->c.type), type_name((int)P->d.type));
  int fp8 = is_fp8((int)P->a.type), imma = m->compute == C_32I || m->compute == C_32I_PEDANTIC;
  if ((fp8 || imma) && (m->transa != OP_T || m->transb != OP_N || P->a.order != ORDER_COL ||
                        P->b.order != ORDER_COL || P->d.order != ORDER_COL))
    return sim_fail(ST_NOT_SUPPORTED, "%s matmuls run only in the TN form (A transposed, B not) on column-major "
                    "layouts", fp8 ? "FP8" : "int8");
  /* IMMA over the regular ordering: m and k, and the leading dimensions of
   * A, B and C (D shares C's), multiples of 4 (cublasLtMatmul's IMMA rules) */
  if (imma && (P->m % 4 || P->k % 4))
    return sim_fail(ST_NOT_SUPPORTED, "int8 matmul with m = %lld, k = %lld: IMMA kernels need m and k multiples of 4",
                    (long long)P->m, (long long)P->k);
  if (imma && (P->a.ld % 4 || P->b.ld % 4 || P->c.ld % 4 || P->d.ld % 4))
    return sim_fail(ST_NOT_SUPPORTED, "int8 matmul with leading dimensions A %lld, B %lld, C %lld, D %lld: IMMA "
                    "kernels need multiples of 4", (long long)P->a.ld, (long long)P->b.ld, (long long)P->c.ld,
                    (long long)P->d.ld);
  /* FP8 kernels: compute capability 8.9 and later; A and B in 16-byte
   * columns (k and their leading dimensions multiples of 16 elements) */
  if (fp8 && sim_arch()->major * 10 + sim_arch()->minor < 89)
    return sim_fail(ST_NOT_SUPPORTED, "FP8 matmul on %s: FP8 kernels need compute capability 8.9 or later",
                    sim_arch()->arch);
  if (fp8 && (P->k % 16 || P->a.ld % 16 || P->b.ld % 16))
    return sim_fail(ST_NOT_SUPPORTED, "FP8 matmul with k = %lld, leading dimensions A %lld, B %lld: FP8 kernels need "
                    "multiples of 16", (long long)P->k, (long long)P->a.ld, (long long)P->b.ld);
  for (int i = 0; i < 4; i++)
    if (m->scale_ptr[i] && !(fp8 && (i < 2 || (i == 3 && is_fp8((int)P->d.type)))))
      return sim_fail(ST_INVALID_VALUE, "CUBLASLT_MATMUL_DESC_%c_SCALE_POINTER is set for a combination that takes "
                      "no such scale", "ABCD"[i]);
  if (m->amax_d && !fp8)
    return sim_fail(ST_INVALID_VALUE, "CUBLASLT_MATMUL_DESC_AMAX_D_POINTER is set for a matmul without FP8 inputs");
  switch (m->epilogue) {
  case E_DEFAULT: break;
  case E_RELU: P->relu = 1; break;
  case E_BIAS: P->has_bias = 1; break;
  case E_RELU_BIAS: P->has_bias = P->relu = 1; break;
  case E_GELU: P->gelu = 1; break;
  case E_GELU_BIAS: P->has_bias = P->gelu = 1; break;
  default: return sim_fail(ST_NOT_SUPPORTED, "epilogue %u is not simulated", m->epilogue);
  }
  if (P->has_bias) {
    int D = (int)P->d.type, dflt = D;
    if (imma && D == T_8I) dflt = m->scale;       /* IMMA with 8-bit C: the scale type */
    else if (fp8 && (is_fp8(D) || D == T_32F)) dflt = is_fp8(D) ? (int)P->c.type : T_16BF;
    if (imma && D == T_32I) return sim_fail(ST_NOT_SUPPORTED, "a bias epilogue on an int32 result");
    int bt = m->bias_type < 0 ? dflt : m->bias_type;
    if (bt != dflt && !(bt == (int)P->a.type && !imma) && !(fp8 && (bt == T_16BF || bt == T_16F)))
      return sim_fail(ST_INVALID_VALUE, "bias type %s for a %s result", type_name(bt), type_name(D));
    P->bias_type = bt;
    if (m->bias_stride < 0) return sim_fail(ST_INVALID_VALUE, "bias batch stride %lld", (long long)m->bias_stride);
  }
  return 0;
}

static uint64_t combo_of(const Problem *P) {
  return (uint64_t)(uint8_t)P->op.compute | (uint64_t)(uint8_t)P->op.scale << 8 | (uint64_t)(uint8_t)P->a.type << 16 |
         (uint64_t)(uint8_t)P->b.type << 24 | (uint64_t)(uint8_t)P->c.type << 32 | (uint64_t)(uint8_t)P->d.type << 40;
}

static uint32_t ptr_align(uint64_t p) {
  uint32_t a = 256;
  while (a > 1 && p % a) a /= 2;
  return a;
}

/* The algorithm the heuristic returns: what it assumes, in algo.data. */
typedef struct {
  uint32_t align[4], bias_align;
  uint64_t ws;
  uint64_t combo;
} Algo;

static void algo_pack(const Algo *a, RtLtAlgo *out) {
  memset(out, 0, sizeof *out);
  out->data[0] = ALGO_TAG;
  out->data[1] = (uint64_t)a->align[0] | (uint64_t)a->align[1] << 16 | (uint64_t)a->align[2] << 32 |
                 (uint64_t)a->align[3] << 48;
  out->data[2] = a->bias_align;
  out->data[3] = a->ws;
  out->data[4] = a->combo;
}

static int algo_unpack(const RtLtAlgo *in, Algo *a) {
  if (in->data[0] != ALGO_TAG) return -1;
  for (int i = 0; i < 4; i++) a->align[i] = (uint32_t)(in->data[1] >> (16 * i) & 0xffff);
  a->bias_align = (uint32_t)in->data[2];
  a->ws = in->data[3];
  a->combo = in->data[4];
  return 0;
}

static int algo_choose(const Problem *P, const Pref *pref, Algo *out) {
  const int types[4] = {(int)P->a.type, (int)P->b.type, (int)P->c.type, (int)P->d.type};
  for (int i = 0; i < 4; i++) {
    uint32_t al = pref->align[i];
    if (!al || al & (al - 1))
      return sim_fail(ST_INVALID_VALUE, "CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_%c_BYTES %u is not a power of two", "ABCD"[i], al);
    if (al < type_size(types[i]))
      return sim_fail(ST_NOT_SUPPORTED, "no algorithm works with %s elements of %c aligned to only %u bytes",
                      type_name(types[i]), "ABCD"[i], al);
    out->align[i] = al;
  }
  out->bias_align = P->has_bias ? (P->op.bias ? ptr_align(P->op.bias) : 256) : 1;
  out->ws = pref->max_ws < SIM_WORKSPACE ? pref->max_ws : SIM_WORKSPACE;
  out->combo = combo_of(P);
  return 0;
}

static RtLtStatus lt_heuristic(RtLtHandle h, RtLtDesc op, RtLtDesc a, RtLtDesc b, RtLtDesc c, RtLtDesc d,
                               RtLtDesc pref, int requested, RtLtHeuristic *results, int *returned) {
  LT_ENTER();
  if (!handle_live(h)) LT_LEAVE(sim_fail(ST_NOT_INITIALIZED, "not a cuBLASLt handle"));
  if (requested <= 0 || !results || !returned) LT_LEAVE(ST_INVALID_VALUE);
  *returned = 0;
  struct RtLtOpaque *p = desc_live(pref, K_PREF);
  if (!p) LT_LEAVE(sim_fail(ST_INVALID_VALUE, "not a live matmul preference"));
  Problem P;
  Algo al;
  int r = problem_of(op, a, b, c, d, &P);
  if (!r) r = algo_choose(&P, &p->u.p, &al);
  if (r) LT_LEAVE(r);
  memset(&results[0], 0, sizeof results[0]);
  algo_pack(&al, &results[0].algo);
  results[0].workspace_size = (size_t)al.ws;
  results[0].state = ST_SUCCESS;
  results[0].waves_count = 1.0f;
  *returned = 1;
  LT_LEAVE(ST_SUCCESS);
}

/* ======================================================================== */
/* running                                                                  */
/* ======================================================================== */

typedef struct {
  Problem P;
  uint64_t A, B, C, D, ws;
  uint64_t ws_need;
  int pointer_device;
  double alpha, beta;          /* host pointer mode: read at the call */
  uint64_t alpha_dev, beta_dev;
} Run;

/* Bytes from a matrix's first element to past its last, over all batches. */
static uint64_t extent(const Layout *l) {
  if (!l->rows || !l->cols) return 0;
  uint64_t major = l->order == ORDER_COL ? l->cols : l->rows, minor = l->order == ORDER_COL ? l->rows : l->cols;
  uint64_t one = (major - 1) * (uint64_t)l->ld + minor;
  return ((uint64_t)(l->batch - 1) * (uint64_t)l->stride + one) * type_size((int)l->type);
}

static int64_t at(const Layout *l, int64_t r, int64_t c) {
  return l->order == ORDER_COL ? c * l->ld + r : r * l->ld + c;
}

static double read_scalar(int type, uint64_t p) { return load(type, (const unsigned char *)(uintptr_t)p, 0); }

static int check(uint64_t p, uint64_t n, const char *what, int replay) {
  char w[96];
  snprintf(w, sizeof w, "cublasLtMatmul%s %s", replay ? " (graph replay)" : "", what);
  return sim_range_check(p, (size_t)n, 1, w, RT_CUDA_ERROR_ILLEGAL_ADDRESS, RT_CUDA_ERROR_ILLEGAL_ADDRESS);
}

static double gelu_tanh(double x) {
  const double k = 0.7978845608028654;
  return 0.5 * x * (1.0 + tanh(k * (x + 0.044715 * x * x * x)));
}

/* op(M) of one batch as a packed row-major float matrix, rounded as the
 * compute type reads its inputs. */
static void widen(const Layout *l, const unsigned char *base, int trans, int64_t rows, int64_t cols, int round,
                  float *out) {
  for (int64_t i = 0; i < rows; i++)
    for (int64_t j = 0; j < cols; j++) {
      float v = (float)load((int)l->type, base, trans ? at(l, j, i) : at(l, i, j));
      if (round == C_32F_FAST_TF32) v = round_tf32(v);
      else if (round == C_32F_FAST_16F) v = (float)round_to(T_16F, v);
      else if (round == C_32F_FAST_16BF) v = (float)round_to(T_16BF, v);
      out[i * cols + j] = v;
    }
}

/* acc[m x n] (row-major) = op(A) op(B) of one batch, in the compute type. */
static void products(const Problem *P, const unsigned char *a, const unsigned char *b, double *acc) {
  int64_t m = P->m, n = P->n, k = P->k;
  int ta = P->op.transa != OP_N, tb = P->op.transb != OP_N, c = P->op.compute;
  if (c == C_64F || c == C_64F_PEDANTIC || c == C_16F || c == C_16F_PEDANTIC || c == C_32I || c == C_32I_PEDANTIC) {
    for (int64_t i = 0; i < m; i++)
      for (int64_t j = 0; j < n; j++) {
        double s = 0;
        int32_t si = 0;
        for (int64_t p = 0; p < k; p++) {
          double x = load((int)P->a.type, a, ta ? at(&P->a, p, i) : at(&P->a, i, p));
          double y = load((int)P->b.type, b, tb ? at(&P->b, j, p) : at(&P->b, p, j));
          if (c == C_32I || c == C_32I_PEDANTIC) si = (int32_t)((uint32_t)si + (uint32_t)((int32_t)x * (int32_t)y));
          else if (c == C_16F || c == C_16F_PEDANTIC) s = round_to(T_16F, s + round_to(T_16F, x * y));
          else s += x * y;
        }
        acc[i * n + j] = c == C_32I || c == C_32I_PEDANTIC ? (double)si : s;
      }
    return;
  }
  /* float accumulation: widen op(A), op(B) and multiply with sgemm */
  float *fa = xmalloc((size_t)(m * k > 0 ? m * k : 1) * sizeof(float));
  float *fb = xmalloc((size_t)(k * n > 0 ? k * n : 1) * sizeof(float));
  float *fd = xcalloc((size_t)(m * n > 0 ? m * n : 1), sizeof(float));
  widen(&P->a, a, ta, m, k, c, fa);
  widen(&P->b, b, tb, k, n, c, fb);
  if (k > 0)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)n, (int)k, 1.0f, fa, (int)(k ? k : 1), fb,
                (int)(n ? n : 1), 0.0f, fd, (int)(n ? n : 1));
  for (int64_t i = 0; i < m * n; i++) acc[i] = fd[i];
  free(fa);
  free(fb);
  free(fd);
}

static int run_exec(void *payload, int replay) {
  const Run *R = payload;
  const Problem *P = &R->P;
  const Matmul *o = &P->op;
  int fp8 = is_fp8((int)P->a.type), r;
  int read_c = 0;
  double alpha = R->alpha, beta = R->beta;
  if (R->pointer_device) {
    size_t ss = type_size(o->scale);
    if ((r = check(R->alpha_dev, ss, "alpha", replay)) || (r = check(R->beta_dev, ss, "beta", replay)))
      return sim_make_sticky(r);
    alpha = read_scalar(o->scale, R->alpha_dev);
    beta = read_scalar(o->scale, R->beta_dev);
  }
  read_c = beta != 0;
  const char *names[] = {"matrix A", "matrix B", "matrix C", "matrix D"};
  const uint64_t ptrs[] = {R->A, R->B, R->C, R->D};
  const Layout *ls[] = {&P->a, &P->b, &P->c, &P->d};
  for (int i = 0; i < 4; i++) {
    if (i == 2 && !read_c) continue;
    if ((r = check(ptrs[i], extent(ls[i]), names[i], replay))) goto fault;
  }
  if (P->has_bias) {
    uint64_t n = ((uint64_t)(P->batch - 1) * (uint64_t)o->bias_stride + (uint64_t)P->m) * type_size(P->bias_type);
    if ((r = check(o->bias, n, "bias", replay))) goto fault;
  }
  for (int i = 0; i < 4; i++)
    if (o->scale_ptr[i] && (r = check(o->scale_ptr[i], 4, "scale", replay))) goto fault;
  if (o->amax_d && (r = check(o->amax_d, 4, "amax of D", replay))) goto fault;
  if (R->ws_need && (r = check(R->ws, R->ws_need, "workspace", replay))) goto fault;
  /* the algorithm's scratch: whatever else lived there is gone */
  if (R->ws_need) memset((void *)(uintptr_t)R->ws, 0xa5, (size_t)R->ws_need);

  double sa = o->scale_ptr[0] ? read_scalar(T_32F, o->scale_ptr[0]) : 1.0;
  double sb = o->scale_ptr[1] ? read_scalar(T_32F, o->scale_ptr[1]) : 1.0;
  double sc = o->scale_ptr[2] ? read_scalar(T_32F, o->scale_ptr[2]) : 1.0;
  double sd = o->scale_ptr[3] ? read_scalar(T_32F, o->scale_ptr[3]) : 1.0;
  int64_t m = P->m, n = P->n;
  double *acc = xmalloc((size_t)(m * n > 0 ? m * n : 1) * sizeof(double));
  double *out = xmalloc((size_t)(m * n > 0 ? m * n : 1) * sizeof(double));
  double amax = 0;
  int st = o->scale; /* the epilogue's arithmetic */
  for (int64_t bt = 0; bt < P->batch; bt++) {
    const unsigned char *a = (const unsigned char *)(uintptr_t)R->A + (size_t)(bt * P->a.stride) * type_size((int)P->a.type);
    const unsigned char *b = (const unsigned char *)(uintptr_t)R->B + (size_t)(bt * P->b.stride) * type_size((int)P->b.type);
    const unsigned char *c = read_c ? (const unsigned char *)(uintptr_t)R->C + (size_t)(bt * P->c.stride) * type_size((int)P->c.type) : NULL;
    unsigned char *d = (unsigned char *)(uintptr_t)R->D + (size_t)(bt * P->d.stride) * type_size((int)P->d.type);
    const unsigned char *bias = P->has_bias ? (const unsigned char *)(uintptr_t)o->bias +
                                                  (size_t)(bt * o->bias_stride) * type_size(P->bias_type)
                                            : NULL;
    products(P, a, b, acc);
    for (int64_t i = 0; i < m; i++)
      for (int64_t j = 0; j < n; j++) {
        double v = acc[i * n + j];
        if (fp8) v = round_to(st, round_to(st, sa * sb) * v);
        v = round_to(st, alpha * v);
        if (c) v = round_to(st, v + round_to(st, beta * round_to(st, sc * load((int)P->c.type, c, at(&P->c, i, j)))));
        if (bias) v = round_to(st, v + load(P->bias_type, bias, i));
        if (P->relu) v = v > 0 ? v : 0;
        if (P->gelu) v = round_to(st, gelu_tanh(v));
        if (fabs(v) > amax) amax = fabs(v);
        if (is_fp8((int)P->d.type)) v = round_to(st, v * sd);
        out[i * n + j] = v;
      }
    /* all of C was read before any of D is written (C may be D) */
    for (int64_t i = 0; i < m; i++)
      for (int64_t j = 0; j < n; j++) store((int)P->d.type, d, at(&P->d, i, j), out[i * n + j]);
  }
  if (o->amax_d) {
    float f = (float)amax;
    memcpy((void *)(uintptr_t)o->amax_d, &f, 4);
  }
  free(acc);
  free(out);
  return 0;
fault:
  return sim_make_sticky(r);
}

static void *run_clone(const void *p) {
  Run *r = xmalloc(sizeof *r);
  memcpy(r, p, sizeof *r);
  return r;
}

static RtLtStatus lt_matmul(RtLtHandle h, RtLtDesc op, const void *alpha, const void *A, RtLtDesc adesc,
                            const void *B, RtLtDesc bdesc, const void *beta, const void *C, RtLtDesc cdesc, void *D,
                            RtLtDesc ddesc, const RtLtAlgo *algo, void *ws, size_t ws_bytes, CUstream s) {
  LT_ENTER();
  if (!handle_live(h)) LT_LEAVE(sim_fail(ST_NOT_INITIALIZED, "not a cuBLASLt handle"));
  int cr = sim_ctx_check();
  if (cr == SIM_ERROR_NOT_INITIALIZED || cr == SIM_ERROR_INVALID_CONTEXT) LT_LEAVE(ST_NOT_INITIALIZED);
  if (cr) LT_LEAVE(ST_EXECUTION_FAILED);
  Run R;
  memset(&R, 0, sizeof R);
  int r = problem_of(op, adesc, bdesc, cdesc, ddesc, &R.P);
  if (r) LT_LEAVE(r);
  const Problem *P = &R.P;
  int imma = P->op.compute == C_32I || P->op.compute == C_32I_PEDANTIC, fp8 = is_fp8((int)P->a.type);
  Algo al;
  if (algo) {
    if (algo_unpack(algo, &al))
      LT_LEAVE(sim_fail(ST_INVALID_VALUE, "the algorithm was not returned by cublasLtMatmulAlgoGetHeuristic"));
    if (al.combo != combo_of(P))
      LT_LEAVE(sim_fail(ST_INVALID_VALUE, "the algorithm was chosen for other compute, scale or matrix types"));
  } else { /* "if algo is NULL, an implicit heuristics query with default search preferences" */
    Pref dflt = {0, 0, {256, 256, 256, 256}};
    if ((r = algo_choose(P, &dflt, &al))) LT_LEAVE(r);
  }
  if (ws_bytes < al.ws)
    LT_LEAVE(sim_fail(ST_INVALID_VALUE, "workspace of %zu bytes; the algorithm needs %llu", ws_bytes,
                      (unsigned long long)al.ws));
  if (al.ws && !ws) LT_LEAVE(sim_fail(ST_INVALID_VALUE, "the algorithm needs a workspace and it is NULL"));
  if (!alpha || !beta) LT_LEAVE(sim_fail(ST_INVALID_VALUE, "alpha or beta is NULL"));
  R.A = (uint64_t)(uintptr_t)A, R.B = (uint64_t)(uintptr_t)B, R.C = (uint64_t)(uintptr_t)C, R.D = (uint64_t)(uintptr_t)D;
  R.ws = (uint64_t)(uintptr_t)ws;
  R.ws_need = al.ws;
  R.pointer_device = P->op.pointer_mode == 1;
  if (R.pointer_device) {
    R.alpha_dev = (uint64_t)(uintptr_t)alpha, R.beta_dev = (uint64_t)(uintptr_t)beta;
  } else {
    R.alpha = load(P->op.scale, alpha, 0);
    R.beta = load(P->op.scale, beta, 0);
  }
  /* pointers the algorithm cannot work with: their element's, and what the algorithm assumed */
  const char *names[] = {"A", "B", "C", "D"};
  const uint64_t ptrs[] = {R.A, R.B, R.C, R.D};
  const Layout *ls[] = {&P->a, &P->b, &P->c, &P->d};
  for (int i = 0; i < 4; i++) {
    if (i == 2 && !R.pointer_device && R.beta == 0) continue;
    if (!ptrs[i]) LT_LEAVE(sim_fail(ST_INVALID_VALUE, "matrix %s is NULL", names[i]));
    uint64_t need = type_size((int)ls[i]->type);
    if (imma && need < 4) need = 4; /* IMMA: every matrix pointer 4-byte aligned */
    if (fp8 && need < 16) need = 16; /* FP8: every matrix pointer 16-byte aligned */
    if (al.align[i] > need) need = al.align[i];
    if (ptrs[i] % need)
      LT_LEAVE(sim_fail(ST_INVALID_VALUE, "matrix %s at 0x%llx is not %llu-byte aligned, as the algorithm assumes (%s "
                        "elements, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_%s_BYTES %u)", names[i],
                        (unsigned long long)ptrs[i], (unsigned long long)need, type_name((int)ls[i]->type), names[i],
                        al.align[i]));
  }
  if (P->has_bias) {
    uint64_t need = type_size(P->bias_type) > al.bias_align ? type_size(P->bias_type) : al.bias_align;
    if (!P->op.bias) LT_LEAVE(sim_fail(ST_INVALID_VALUE, "a bias epilogue without CUBLASLT_MATMUL_DESC_BIAS_POINTER"));
    if (P->op.bias % need)
      LT_LEAVE(sim_fail(ST_INVALID_VALUE, "the bias at 0x%llx is not %llu-byte aligned, as the algorithm assumed from "
                        "the bias pointer the heuristic saw", (unsigned long long)P->op.bias, (unsigned long long)need));
  }
  Run *payload = run_clone(&R);
  SimHostOp hop = {"cublasLtMatmul", run_exec, run_clone, free, payload};
  r = sim_enqueue_host(s, &hop);
  if (r == SIM_ERROR_INVALID_HANDLE) LT_LEAVE(ST_INVALID_VALUE);
  LT_LEAVE(r ? ST_EXECUTION_FAILED : ST_SUCCESS);
}

void rt_cuda_sim_blas(RtLtApi *t) {
  *t = (RtLtApi){
      .Create = lt_create,
      .Destroy = lt_destroy,
      .GetStatusName = lt_status_name,
      .GetStatusString = lt_status_string,
      .GetVersion = lt_version,
      .GetCudartVersion = lt_cudart_version,
      .MatmulDescCreate = lt_matmul_desc_create,
      .MatmulDescDestroy = lt_matmul_desc_destroy,
      .MatmulDescSetAttribute = lt_matmul_desc_set,
      .MatrixLayoutCreate = lt_layout_create,
      .MatrixLayoutDestroy = lt_layout_destroy,
      .MatrixLayoutSetAttribute = lt_layout_set,
      .MatmulPreferenceCreate = lt_pref_create,
      .MatmulPreferenceDestroy = lt_pref_destroy,
      .MatmulPreferenceSetAttribute = lt_pref_set,
      .MatmulAlgoGetHeuristic = lt_heuristic,
      .Matmul = lt_matmul,
  };
}
