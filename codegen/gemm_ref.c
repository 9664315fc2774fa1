/*
 * gemm_ref.c - the reference implementation of a plan's GEMM step (plan.h).
 *
 * The emulated backend and the code generator's tests run CgGemm steps here:
 * operands are read from the activation arena or the weights blob in the
 * step's operand dtype, widened to f32, multiplied by cblas_sgemm (f32
 * accumulation, as cuBLASLt's COMPUTE_32F), then alpha, the bias and the GELU
 * epilogue are applied in f32 and the result is rounded once to D's dtype
 * (d_dtype: the operands' or f32) - the order a fused cuBLASLt epilogue
 * computes in.
 *
 * i8 operands with an i32 D (w8a8's IMMA GEMM) are summed exactly in int32:
 * the emulated device's integer products equal the reference executor's.
 *
 * e4m3 operands with an f32 D (fp8's GEMM, cuBLASLt's FP8 matmul with
 * COMPUTE_32F) are decoded and their products (exact in f32) summed in f32
 * in k order, the reference executor's qlinear_e4m3 sums bit for bit; the
 * per-tensor scales and the bias are its readers' (lower.c).
 *
 * f32 operands are handed to sgemm in place; f16/bf16 operands are widened
 * into a packed scratch copy first; an f32 D is written in place.  Batches run on OpenMP threads, each a
 * single-threaded sgemm (see runtime/ref_contract.c on why one pool).
 */
#include "codegen/plan.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ir/scalar.h"

static const char *ref_base(CgRef r, char *act, const char *w) {
  return (r.space == CG_SPACE_ACT ? (const char *)act : w) + r.offset;
}

static float load_elem(IrDType t, const char *p, int64_t i) {
  uint16_t h;
  switch (t) {
  case IR_F32: {
    float f;
    memcpy(&f, p + 4 * i, 4);
    return f;
  }
  case IR_F16: memcpy(&h, p + 2 * i, 2); return ir_f16_to_f32(h);
  case IR_BF16: memcpy(&h, p + 2 * i, 2); return ir_bf16_to_f32(h);
  default: ditc_unreachable();
  }
}

static void store_elem(IrDType t, char *p, int64_t i, float v) {
  uint16_t h;
  switch (t) {
  case IR_F32: memcpy(p + 4 * i, &v, 4); return;
  case IR_F16: h = ir_f32_to_f16(v); memcpy(p + 2 * i, &h, 2); return;
  case IR_BF16: h = ir_f32_to_bf16(v); memcpy(p + 2 * i, &h, 2); return;
  default: ditc_unreachable();
  }
}

/* Widen a rows x cols matrix with row stride ld into a packed f32 copy. */
static float *widen(IrDType t, const char *p, int64_t rows, int64_t cols, int64_t ld) {
  float *out = xmalloc((size_t)(rows * cols > 0 ? rows * cols : 1) * sizeof(float));
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++) out[r * cols + c] = load_elem(t, p, r * ld + c);
  return out;
}

static void gemm_one(const CgGemm *g, const char *a, const char *b, char *d, const char *bias) {
  int64_t m = g->m, n = g->n, k = g->k;
  int64_t a_rows = g->trans_a ? k : m, a_cols = g->trans_a ? m : k;
  int64_t b_rows = g->trans_b ? n : k, b_cols = g->trans_b ? k : n;
  float *a_tmp = NULL, *b_tmp = NULL, *d_tmp = NULL;
  const float *af = (const float *)a, *bf = (const float *)b;
  int64_t lda = g->lda, ldb = g->ldb, ldd = g->ldd;
  float *df = (float *)d;
  if (g->dtype != IR_F32) {
    af = a_tmp = widen(g->dtype, a, a_rows, a_cols, g->lda);
    bf = b_tmp = widen(g->dtype, b, b_rows, b_cols, g->ldb);
    lda = a_cols, ldb = b_cols;
  }
  if (g->d_dtype != IR_F32) { /* an f32 result in place; else a packed f32 scratch */
    df = d_tmp = xmalloc((size_t)(m * n > 0 ? m * n : 1) * sizeof(float));
    ldd = n;
  }
  if (k == 0) {
    for (int64_t r = 0; r < m; r++)
      for (int64_t c = 0; c < n; c++) df[r * ldd + c] = 0.0f;
  } else {
    cblas_sgemm(CblasRowMajor, g->trans_a ? CblasTrans : CblasNoTrans,
                g->trans_b ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k, g->alpha, af,
                (int)(lda > 0 ? lda : 1), bf, (int)(ldb > 0 ? ldb : 1), 0.0f, df,
                (int)(ldd > 0 ? ldd : 1));
  }
  for (int64_t r = 0; r < m; r++) {
    for (int64_t c = 0; c < n; c++) {
      float v = df[r * ldd + c];
      if (g->epilogue != CG_EPI_NONE) v += load_elem(g->d_dtype, bias, c);
      if (g->epilogue == CG_EPI_GELU_TANH_BIAS) v = ditc_gelu_tanh(v); /* the op's one definition */
      store_elem(g->d_dtype, d, r * g->ldd + c, v);
    }
  }
  free(a_tmp);
  free(b_tmp);
  free(d_tmp);
}

static int is_float(IrDType t) { return t == IR_F32 || t == IR_F16 || t == IR_BF16; }

/* Each product summed into its output's own accumulator in k order: the
 * operands are first copied into A as m x k rows and B as k x n rows (of
 * the element type E: int for i8, the decoded float for e4m3), then each
 * output row is computed CG_REF_COLS columns at a time - independent sums,
 * which the compiler can keep in vector registers, without changing any
 * sum's order.  Rows run on OpenMP threads. */
#define CG_REF_COLS 16
#define GEMM_LOWP(NAME, E, ACC, LOAD, PRODUCT)                                                              \
  static void NAME(const CgGemm *g, const uint8_t *a, const uint8_t *b, char *d) {                          \
    int64_t m = g->m, n = g->n, k = g->k;                                                                   \
    E *A = xmalloc((size_t)(m * k > 0 ? m * k : 1) * sizeof *A);                                            \
    E *B = xmalloc((size_t)(k * n > 0 ? k * n : 1) * sizeof *B);                                            \
    for (int64_t r = 0; r < m; r++)                                                                         \
      for (int64_t j = 0; j < k; j++) A[r * k + j] = LOAD(a[g->trans_a ? j * g->lda + r : r * g->lda + j]); \
    for (int64_t j = 0; j < k; j++)                                                                         \
      for (int64_t c = 0; c < n; c++) B[j * n + c] = LOAD(b[g->trans_b ? c * g->ldb + j : j * g->ldb + c]); \
    _Pragma("omp parallel for schedule(static) if (m * n * k > (1 << 20))")                                 \
    for (int64_t r = 0; r < m; r++)                                                                         \
      for (int64_t c0 = 0; c0 < n; c0 += CG_REF_COLS) {                                                     \
        ACC acc[CG_REF_COLS] = {0};                                                                         \
        int64_t w = n - c0 < CG_REF_COLS ? n - c0 : CG_REF_COLS;                                            \
        for (int64_t j = 0; j < k; j++) {                                                                   \
          E x = A[r * k + j];                                                                               \
          const E *br = B + j * n + c0;                                                                     \
          if (w == CG_REF_COLS) /* a fixed count: the vectorised loop */                                    \
            for (int u = 0; u < CG_REF_COLS; u++) acc[u] += PRODUCT(x, br[u]);                              \
          else                                                                                              \
            for (int u = 0; u < w; u++) acc[u] += PRODUCT(x, br[u]);                                        \
        }                                                                                                   \
        for (int u = 0; u < w; u++) {                                                                       \
          ACC v = acc[u];                                                                                   \
          memcpy(d + 4 * (r * g->ldd + c0 + u), &v, 4);                                                     \
        }                                                                                                   \
      }                                                                                                     \
    free(A);                                                                                                \
    free(B);                                                                                                \
  }

/* The integer GEMM (i8 operands, i32 D, cuBLASLt's COMPUTE_32I): each sum
 * exact (any order gives the same integer), wrapping as the hardware's
 * adders do (never reached by int8 levels below 2^17 products): summed in
 * uint32_t, whose wrap is defined, and stored as the int32 of its bits. */
#define I8_LOAD(v) ((int)(int8_t)(v))
#define I8_PRODUCT(x, y) ((uint32_t)((x) * (y)))
GEMM_LOWP(gemm_i8, int, uint32_t, I8_LOAD, I8_PRODUCT)

/* The FP8 GEMM (e4m3 operands, f32 D): decoded products summed in f32 in k
 * order (ir/eval.c's qlinear_e4m3 loop; a product of two e4m3 values is
 * exact in f32, so contracting into an fma changes nothing). */
#define E4M3_PRODUCT(x, y) ((x) * (y))
GEMM_LOWP(gemm_e4m3, float, float, ditc_e4m3_to_f32, E4M3_PRODUCT)

void cg_gemm_ref(const CgGemm *g, char *act, const char *w) {
  if (g->dtype == IR_E4M3) {
    DITC_ASSERT(g->d_dtype == IR_F32 && g->epilogue == CG_EPI_NONE && g->alpha == 1.0f && g->d.space == CG_SPACE_ACT);
    const char *a = ref_base(g->a, act, w), *b = ref_base(g->b, act, w);
    for (int64_t i = 0; i < g->batch; i++)
      gemm_e4m3(g, (const uint8_t *)a + i * g->stride_a, (const uint8_t *)b + i * g->stride_b,
                act + g->d.offset + 4 * i * g->stride_d);
    return;
  }
  if (g->dtype == IR_I8) {
    DITC_ASSERT(g->d_dtype == IR_I32 && g->epilogue == CG_EPI_NONE && g->d.space == CG_SPACE_ACT);
    const char *a = ref_base(g->a, act, w), *b = ref_base(g->b, act, w);
    for (int64_t i = 0; i < g->batch; i++)
      gemm_i8(g, (const uint8_t *)a + i * g->stride_a, (const uint8_t *)b + i * g->stride_b,
              act + g->d.offset + 4 * i * g->stride_d);
    return;
  }
  DITC_ASSERT(is_float(g->dtype) && (g->d_dtype == g->dtype || g->d_dtype == IR_F32));
  const char *a = ref_base(g->a, act, w), *b = ref_base(g->b, act, w);
  char *d = act + g->d.offset;
  DITC_ASSERT(g->d.space == CG_SPACE_ACT);
  const char *bias = g->epilogue != CG_EPI_NONE ? ref_base(g->bias, act, w) : NULL;
  size_t es = ir_dtype_size(g->dtype), ds = ir_dtype_size(g->d_dtype);
#pragma omp parallel for schedule(dynamic, 1) if (g->batch > 1)
  for (int64_t i = 0; i < g->batch; i++)
    gemm_one(g, a + (size_t)(i * g->stride_a) * es, b + (size_t)(i * g->stride_b) * es,
             d + (size_t)(i * g->stride_d) * ds, bias);
}
