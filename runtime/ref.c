/*
 * ref.c - the reference executor: runs an IrGraph on the CPU in fp32.
 *
 * ref_prepare() fixes the batch, evaluates every shape, checks that each op
 * and dtype is supported, and plans storage: leaves point at their data
 * (PARAM: the bound weights, CONST: node->data, INPUT: the caller's tensor at
 * run time), RESHAPE aliases its input, and every other node gets a slot from
 * a free list, taken when the node runs and handed back after its last use
 * (graph outputs are never handed back).  Slots are allocated once, so
 * repeated ref_run() calls allocate nothing but the outputs.
 *
 * The executor keeps pointers into the graph, the weights and (during a
 * run) the inputs: the graph must not change between ref_prepare() and
 * ref_free().
 *
 * Storage is 4 bytes an element: f32 values, or int32 for i32 nodes.  f16 and
 * bf16 nodes hold f32 values rounded to that precision after every op, which
 * is what a half-precision backend computes up to its accumulation order.
 *
 * Kernels: matrix products (linear, matmul, conv2d via im2col) go through
 * cblas_sgemm; everything else is a plain loop that OpenMP splits over rows.
 * One thread pool does all the work: OpenBLAS is set to one thread and the
 * products are split into panels (or batches) that OpenMP threads hand to
 * single-threaded sgemm calls.  Letting OpenBLAS's own pthreads and OpenMP's
 * take turns made each pool spin while the other worked, several times
 * slower than one thread on a busy two-core machine.  Reductions accumulate
 * in double so the oracle's own rounding error stays well below the
 * tolerances it judges others by.
 */
#include "runtime/ref.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* Below this many elements a loop is not worth waking the other threads. */
#define PAR_MIN 16384

typedef struct {
  int rank;
  int64_t d[IR_MAX_RANK];
  int64_t numel;
} Shp;

typedef struct {
  Shp s;
  void *ptr;      /* the node's data at run time (resolved in ref_run for inputs/aliases) */
  int slot;       /* planned slot, or -1 (leaf or alias) */
  int alias;      /* position of the node whose storage this one shares, or -1 */
  int last_use;   /* position of the last node reading this storage (roots only), -1 if none */
  int keep;       /* storage holds a graph output: never reused */
  int fixed;      /* depends on weights and constants only: computed once by ref_prepare */
  float *owned;   /* PARAM rounded to f16/bf16: our own copy */
} RefVal;

struct RefExec {
  IrGraph *g;
  int64_t batch;
  int n;             /* nodes */
  RefVal *v;         /* by position in g->nodes */
  int *pos_of_id;    /* node id -> position */
  IrNode **inputs;
  int n_inputs;
  void **slots;
  size_t *slot_cap;  /* bytes */
  int n_slots;
  float *scratch;    /* im2col columns */
  size_t scratch_n;  /* floats */
};

/* ======================================================================== */
/* helpers                                                                  */
/* ======================================================================== */

static int pos_of(const RefExec *e, const IrNode *n) { return e->pos_of_id[n->id]; }
static RefVal *val_of(RefExec *e, const IrNode *n) { return &e->v[pos_of(e, n)]; }
static RefVal *in_val(RefExec *e, const IrNode *n, int i) { return val_of(e, n->in[i]); }

static int is_floaty(IrDType t) { return t == IR_F32 || t == IR_F16 || t == IR_BF16; }

static const char *node_label(const IrNode *n) { return n->name ? n->name : ""; }

/* "node %12 (linear 'blocks.0.attn.qkv')" style prefix for messages. */
static int node_errf(IrErr *err, const IrNode *n, const char *msg) {
  if (n->name)
    return ir_errf(err, "node %%%d (%s '%s'): %s", n->id, ir_op_name(n->op), n->name, msg);
  return ir_errf(err, "node %%%d (%s): %s", n->id, ir_op_name(n->op), msg);
}

static void shp_str(IrDType t, const int64_t *d, int rank, char *buf, size_t n) {
  size_t o = (size_t)snprintf(buf, n, "%s[", ir_dtype_name(t));
  for (int i = 0; i < rank && o < n; i++)
    o += (size_t)snprintf(buf + o, n - o, i ? ", %lld" : "%lld", (long long)d[i]);
  if (o < n) snprintf(buf + o, n - o, "]");
}

static float round_to(IrDType t, float x) {
  if (t == IR_F16) return ir_f16_to_f32(ir_f32_to_f16(x));
  if (t == IR_BF16) return ir_bf16_to_f32(ir_f32_to_bf16(x));
  return x;
}

static void round_buf(IrDType t, float *p, int64_t n) {
  if (t != IR_F16 && t != IR_BF16) return;
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
  for (int64_t i = 0; i < n; i++) p[i] = round_to(t, p[i]);
}

/* Row-major strides of an input broadcast against an output of rank `rank`
 * (numpy rules, aligned on the right): 0 where the input has size 1 or no axis. */
static void bcast_strides(const Shp *in, int rank, int64_t *st) {
  int off = rank - in->rank;
  int64_t s = 1;
  for (int j = rank - 1; j >= 0; j--) {
    int k = j - off;
    if (k < 0) {
      st[j] = 0;
      continue;
    }
    st[j] = in->d[k] == 1 ? 0 : s;
    s *= in->d[k];
  }
}

/* A strided walk over an output (contiguous) with up to two strided operands.
 * Coalescing merges adjacent axes that every operand steps through
 * contiguously, so equal shapes become one flat loop and the row-vector
 * broadcast becomes two axes. */
typedef struct {
  int rank;
  int64_t d[IR_MAX_RANK];
  int64_t st[2][IR_MAX_RANK];
  int nops;
} Walk;

static void walk_coalesce(Walk *w) {
  int r = 0;
  for (int j = 0; j < w->rank; j++) { /* drop size-1 axes */
    if (w->d[j] == 1) continue;
    w->d[r] = w->d[j];
    for (int k = 0; k < w->nops; k++) w->st[k][r] = w->st[k][j];
    r++;
  }
  if (r == 0) {
    w->rank = 1;
    w->d[0] = 1;
    for (int k = 0; k < w->nops; k++) w->st[k][0] = 0;
    return;
  }
  int m = 0;
  for (int j = 1; j < r; j++) {
    int ok = 1;
    for (int k = 0; k < w->nops; k++)
      if (w->st[k][m] != w->st[k][j] * w->d[j]) ok = 0;
    if (ok) {
      w->d[m] *= w->d[j];
      for (int k = 0; k < w->nops; k++) w->st[k][m] = w->st[k][j];
    } else {
      m++;
      w->d[m] = w->d[j];
      for (int k = 0; k < w->nops; k++) w->st[k][m] = w->st[k][j];
    }
  }
  w->rank = m + 1;
}

/* Offsets of outer row `row` (all axes but the last) for each operand. */
static void walk_offsets(const Walk *w, int64_t row, int64_t *off) {
  for (int k = 0; k < w->nops; k++) off[k] = 0;
  for (int j = w->rank - 2; j >= 0; j--) {
    int64_t i = row % w->d[j];
    row /= w->d[j];
    for (int k = 0; k < w->nops; k++) off[k] += i * w->st[k][j];
  }
}

/* ======================================================================== */
/* elementwise                                                              */
/* ======================================================================== */

/* x/2 (1 + tanh(u)) = x sigmoid(2u): the same function, five times faster
 * than tanhf, and without the cancellation of 1 + tanh(u) for x < 0. */
static float gelu_tanh(float x) {
  const float k = 0.7978845608028654f; /* sqrt(2/pi) */
  return x / (1.0f + expf(-2.0f * k * (x + 0.044715f * x * x * x)));
}

static float pow_scalar(float x, float f) {
  /* The exponents PyTorch special-cases, computed the way it does. */
  if (f == 2.0f) return x * x;
  if (f == 3.0f) return x * x * x;
  if (f == 0.5f) return sqrtf(x);
  if (f == -0.5f) return 1.0f / sqrtf(x);
  if (f == -1.0f) return 1.0f / x;
  if (f == -2.0f) return 1.0f / (x * x);
  if (f == 1.0f) return x;
  return powf(x, f);
}

#define UNARY_LOOP(EXPR)                                                     \
  do {                                                                       \
    _Pragma("omp parallel for schedule(static) if (n > PAR_MIN)")            \
    for (int64_t i = 0; i < n; i++) {                                        \
      float x = xs[i];                                                       \
      o[i] = (EXPR);                                                         \
    }                                                                        \
  } while (0)

static void run_unary(IrOp op, float f, float *o, const float *xs, int64_t n) {
  switch (op) {
  case IR_NEG: UNARY_LOOP(-x); break;
  case IR_RELU: UNARY_LOOP(x < 0.0f ? 0.0f : x); break; /* NaN passes, as in torch */
  case IR_SILU: UNARY_LOOP(x / (1.0f + expf(-x))); break;
  case IR_GELU_TANH: UNARY_LOOP(gelu_tanh(x)); break;
  case IR_GELU: UNARY_LOOP(0.5f * x * (1.0f + erff(x * 0.70710678118654752f))); break;
  case IR_SIGMOID: UNARY_LOOP(1.0f / (1.0f + expf(-x))); break;
  case IR_TANH: UNARY_LOOP(tanhf(x)); break;
  case IR_EXP: UNARY_LOOP(expf(x)); break;
  case IR_LOG: UNARY_LOOP(logf(x)); break;
  case IR_SIN: UNARY_LOOP(sinf(x)); break;
  case IR_COS: UNARY_LOOP(cosf(x)); break;
  case IR_SQRT: UNARY_LOOP(sqrtf(x)); break;
  case IR_RECIP: UNARY_LOOP(1.0f / x); break;
  case IR_SCALE: UNARY_LOOP(x * f); break;
  case IR_ADD_SCALAR: UNARY_LOOP(x + f); break;
  case IR_POW_SCALAR: UNARY_LOOP(pow_scalar(x, f)); break;
  case IR_CLAMP_MIN: UNARY_LOOP(x < f ? f : x); break;
  default: ditc_unreachable();
  }
}

/* CAST between the stored kinds: float values (f32/f16/bf16) and int32.
 * float -> i32 truncates toward zero like torch's .int(); values that do not
 * fit (and NaN) are an error rather than undefined behaviour. */
static int run_cast(const IrNode *n, IrDType from, void *out, const void *in, int64_t cnt,
                    IrErr *err) {
  if (n->dtype == IR_I32 && from == IR_I32) {
    memcpy(out, in, (size_t)cnt * 4);
  } else if (n->dtype == IR_I32) {
    const float *x = in;
    int32_t *y = out;
    for (int64_t i = 0; i < cnt; i++) {
      if (!(x[i] > -2147483649.0f && x[i] < 2147483648.0f)) {
        char m[128];
        snprintf(m, sizeof m, "cast: value %g at %lld does not fit in i32", (double)x[i],
                 (long long)i);
        return node_errf(err, n, m);
      }
      y[i] = (int32_t)x[i];
    }
  } else if (from == IR_I32) {
    const int32_t *x = in;
    float *y = out;
    for (int64_t i = 0; i < cnt; i++) y[i] = (float)x[i];
  } else {
    memcpy(out, in, (size_t)cnt * 4); /* float -> float; rounding follows */
  }
  return 0;
}

#define BIN_ROW(EXPR)                                                        \
  do {                                                                       \
    if (sa == 1 && sb == 1) {                                                \
      for (int64_t j = 0; j < n; j++) { float x = a[j], y = b[j]; o[j] = (EXPR); } \
    } else if (sa == 1 && sb == 0) {                                         \
      float y = b[0];                                                        \
      for (int64_t j = 0; j < n; j++) { float x = a[j]; o[j] = (EXPR); }    \
    } else if (sa == 0 && sb == 1) {                                         \
      float x = a[0];                                                        \
      for (int64_t j = 0; j < n; j++) { float y = b[j]; o[j] = (EXPR); }    \
    } else {                                                                 \
      for (int64_t j = 0; j < n; j++) {                                      \
        float x = a[j * sa], y = b[j * sb];                                  \
        o[j] = (EXPR);                                                       \
      }                                                                      \
    }                                                                        \
  } while (0)

static float max_nan(float x, float y) { return (isnan(x) || x > y) ? x : y; }

static void bin_row(IrOp op, float *o, const float *a, int64_t sa, const float *b, int64_t sb,
                    int64_t n) {
  switch (op) {
  case IR_ADD: BIN_ROW(x + y); break;
  case IR_SUB: BIN_ROW(x - y); break;
  case IR_MUL: BIN_ROW(x * y); break;
  case IR_DIV: BIN_ROW(x / y); break;
  case IR_MAX: BIN_ROW(max_nan(x, y)); break;
  default: ditc_unreachable();
  }
}

static void run_binary(IrOp op, const Shp *os, float *o, const Shp *as, const float *a,
                       const Shp *bs, const float *b) {
  Walk w = {.rank = os->rank, .nops = 2};
  for (int j = 0; j < os->rank; j++) w.d[j] = os->d[j];
  bcast_strides(as, os->rank, w.st[0]);
  bcast_strides(bs, os->rank, w.st[1]);
  walk_coalesce(&w);
  int64_t inner = w.d[w.rank - 1];
  int64_t rows = os->numel / (inner ? inner : 1);
  int64_t sa = w.st[0][w.rank - 1], sb = w.st[1][w.rank - 1];
  if (inner == 0) return;
  if (rows == 1 && inner > PAR_MIN) { /* one long row: split it into pieces instead */
    int64_t piece = 4096, pieces = (inner + piece - 1) / piece;
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < pieces; p++) {
      int64_t lo = p * piece, len = inner - lo < piece ? inner - lo : piece;
      bin_row(op, o + lo, a + lo * sa, sa, b + lo * sb, sb, len);
    }
    return;
  }
#pragma omp parallel for schedule(static) if (os->numel > PAR_MIN)
  for (int64_t r = 0; r < rows; r++) {
    int64_t off[2];
    walk_offsets(&w, r, off);
    bin_row(op, o + r * inner, a + off[0], sa, b + off[1], sb, inner);
  }
}

/* ======================================================================== */
/* normalisation and reductions                                             */
/* ======================================================================== */

static void run_layernorm(float *o, const float *x, int64_t rows, int64_t n, float eps) {
#pragma omp parallel for schedule(static) if (rows * n > PAR_MIN)
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * n;
    float *orow = o + r * n;
    double s = 0;
    for (int64_t j = 0; j < n; j++) s += xr[j];
    double mean = s / (double)n, v = 0;
    for (int64_t j = 0; j < n; j++) v += (xr[j] - mean) * (xr[j] - mean);
    double rstd = 1.0 / sqrt(v / (double)n + (double)eps); /* biased variance, like torch */
    for (int64_t j = 0; j < n; j++) orow[j] = (float)((xr[j] - mean) * rstd);
  }
}

static void run_softmax(float *o, const float *x, int64_t rows, int64_t n) {
#pragma omp parallel for schedule(static) if (rows * n > PAR_MIN)
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * n;
    float *orow = o + r * n;
    float m = -INFINITY;
    for (int64_t j = 0; j < n; j++) m = xr[j] > m ? xr[j] : m;
    double s = 0;
    for (int64_t j = 0; j < n; j++) {
      orow[j] = expf(xr[j] - m);
      s += orow[j];
    }
    float inv = (float)(1.0 / s);
    for (int64_t j = 0; j < n; j++) orow[j] *= inv;
  }
}

static void run_reduce(float *o, const float *x, int64_t rows, int64_t n, int mean) {
#pragma omp parallel for schedule(static) if (rows * n > PAR_MIN)
  for (int64_t r = 0; r < rows; r++) {
    double s = 0;
    for (int64_t j = 0; j < n; j++) s += x[r * n + j];
    o[r] = (float)(mean ? s / (double)n : s);
  }
}

/* The k largest of xr[0..n-1] in order, the lower index winning ties: the
 * selection topk_softmax and moe_route share. */
static void topk_pick(const float *xr, int64_t n, int k, int64_t *pick) {
  for (int t = 0; t < k; t++) {
    int64_t best = -1;
    for (int64_t j = 0; j < n; j++) {
      int taken = 0;
      for (int u = 0; u < t; u++) taken |= pick[u] == j;
      if (taken) continue;
      if (best < 0 || xr[j] > xr[best]) best = j; /* strict: the lower index wins ties */
    }
    pick[t] = best;
  }
}

/* k largest per row (ties: lower index first), softmax over them, 0 elsewhere. */
static void run_topk_softmax(float *o, const float *x, int64_t rows, int64_t n, int k) {
#pragma omp parallel if (rows * n > PAR_MIN)
  {
    int64_t *pick = xmalloc((size_t)k * sizeof *pick);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
      const float *xr = x + r * n;
      float *orow = o + r * n;
      for (int64_t j = 0; j < n; j++) orow[j] = 0.0f;
      topk_pick(xr, n, k, pick);
      float m = xr[pick[0]];
      double s = 0;
      for (int t = 0; t < k; t++) s += expf(xr[pick[t]] - m);
      for (int t = 0; t < k; t++) orow[pick[t]] = (float)(expf(xr[pick[t]] - m) / s);
    }
    free(pick);
  }
}

/* ======================================================================== */
/* contractions                                                             */
/* ======================================================================== */

static int max_threads(void) {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

static void sgemm1(int tb, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                   const float *B, int64_t ldb, float *C, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K,
              1.0f, A, (int)lda, B, (int)ldb, 0.0f, C, (int)ldc);
}

/* C[M, N] = A[M, K] B[K, N] (tb: B[N, K]^T), row-major with leading dims.
 * Split across the OpenMP threads into panels along the longer of M and N,
 * each one single-threaded sgemm call; a few panels per thread, handed out
 * dynamically, so a thread descheduled by a busy machine is covered. */
static void gemm(int tb, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                 const float *B, int64_t ldb, float *C, int64_t ldc) {
  int nt = max_threads();
  int64_t big = M > N ? M : N;
  if (nt == 1 || M * N * K < ((int64_t)1 << 18) || big < 32) {
    sgemm1(tb, M, N, K, A, lda, B, ldb, C, ldc);
    return;
  }
  int64_t parts = 3 * (int64_t)nt;
  int64_t step = (big + parts - 1) / parts;
  step = (step + 7) / 8 * 8; /* whole vector widths */
  parts = (big + step - 1) / step;
  int split_m = M >= N;
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t p = 0; p < parts; p++) {
    int64_t lo = p * step, len = big - lo < step ? big - lo : step;
    if (split_m)
      sgemm1(tb, len, N, K, A + lo * lda, lda, B, ldb, C + lo * ldc, ldc);
    else
      sgemm1(tb, M, len, K, A, lda, tb ? B + lo * ldb : B + lo, ldb, C + lo, ldc);
  }
}

/* y[M, N] = x[M, K] w[N, K]^T (+ b[N]) */
static void run_linear(float *y, const float *x, const float *w, const float *b, int64_t M,
                       int64_t N, int64_t K) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    memset(y, 0, (size_t)(M * N) * sizeof *y);
  } else {
    gemm(1, M, N, K, x, K, w, K, y, N);
  }
  if (b) {
#pragma omp parallel for schedule(static) if (M * N > PAR_MIN)
    for (int64_t r = 0; r < M; r++)
      for (int64_t j = 0; j < N; j++) y[r * N + j] += b[j];
  }
}

/* ======================================================================== */
/* mixture of experts (the routing table's layout: ir.h)                    */
/* ======================================================================== */

/* moe_route over logits [T, E]: each token's k experts (increasing), the
 * experts' slot counts, their prefix sums, then the slots in token order. */
static void run_moe_route(int32_t *tab, int64_t len, const float *x, int64_t T, int64_t E, int k) {
  int64_t S = T * k;
  int32_t *off = tab, *tok = tab + E + 1, *slot = tok + S, *ex = slot + S;
  int64_t *pick = xmalloc((size_t)k * sizeof *pick);
  memset(tab, 0, (size_t)len * sizeof *tab);
  for (int64_t t = 0; t < T; t++) {
    topk_pick(x + t * E, E, k, pick);
    for (int j = 1; j < k; j++) /* insertion sort: the token's experts in increasing order */
      for (int u = j; u > 0 && pick[u - 1] > pick[u]; u--) {
        int64_t tmp = pick[u];
        pick[u] = pick[u - 1];
        pick[u - 1] = tmp;
      }
    for (int j = 0; j < k; j++) {
      ex[t * k + j] = (int32_t)pick[j];
      off[pick[j] + 1]++;
    }
  }
  free(pick);
  for (int64_t e = 0; e < E; e++) off[e + 1] += off[e];
  int32_t *fill = xmalloc((size_t)E * sizeof *fill);
  memcpy(fill, off, (size_t)E * sizeof *fill);
  for (int64_t i = 0; i < S; i++) { /* token order: each segment ends up sorted by token */
    int32_t s = fill[ex[i]]++;
    tok[s] = (int32_t)(i / k);
    slot[i] = s;
  }
  free(fill);
}

static void run_moe_gather(float *y, const float *x, const int32_t *tab, int64_t E, int64_t S, int64_t D) {
  const int32_t *tok = tab + E + 1;
#pragma omp parallel for schedule(static) if (S * D > PAR_MIN)
  for (int64_t s = 0; s < S; s++) memcpy(y + s * D, x + (int64_t)tok[s] * D, (size_t)D * sizeof *y);
}

/* One product per expert over its segment of rows. */
static void run_moe_linear(float *y, const float *xs, const int32_t *tab, const float *w, const float *b,
                           int64_t E, int64_t N, int64_t K) {
  for (int64_t e = 0; e < E; e++) {
    int64_t lo = tab[e], rows = tab[e + 1] - lo;
    if (rows <= 0 || N == 0) continue;
    float *ye = y + lo * N;
    if (K == 0) memset(ye, 0, (size_t)(rows * N) * sizeof *ye);
    else gemm(1, rows, N, K, xs + lo * K, K, w + e * N * K, K, ye, N);
    if (b)
      for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < N; j++) ye[r * N + j] += b[e * N + j];
  }
}

/* Each token sums its own k slots, in increasing expert order (the order of
 * the dense sum the pass replaces). */
static void run_moe_combine(float *y, const float *ys, const int32_t *tab, const float *gates, int64_t T,
                            int64_t E, int k, int64_t D) {
  int64_t S = T * k;
  const int32_t *slot = tab + E + 1 + S, *ex = slot + S;
#pragma omp parallel for schedule(static) if (T * D > PAR_MIN)
  for (int64_t t = 0; t < T; t++) {
    float *yt = y + t * D;
    for (int64_t d = 0; d < D; d++) yt[d] = 0.0f;
    for (int j = 0; j < k; j++) {
      float g = gates[t * E + ex[t * k + j]];
      const float *row = ys + (int64_t)slot[t * k + j] * D;
      for (int64_t d = 0; d < D; d++) yt[d] += row[d] * g;
    }
  }
}

static void run_matmul(const IrNode *nd, float *y, const Shp *ys, const float *a, const Shp *as,
                       const float *b, const Shp *bs) {
  int tb = nd->attr.trans_b;
  int64_t M = as->d[as->rank - 2], K = as->d[as->rank - 1];
  int64_t N = tb ? bs->d[bs->rank - 2] : bs->d[bs->rank - 1];
  if (M == 0 || N == 0) return;
  /* leading (batch) axes broadcast like elementwise ops, in units of matrices */
  Shp al = {.rank = as->rank - 2}, bl = {.rank = bs->rank - 2};
  int lr = ys->rank - 2;
  for (int j = 0; j < al.rank; j++) al.d[j] = as->d[j];
  for (int j = 0; j < bl.rank; j++) bl.d[j] = bs->d[j];
  int64_t ast[IR_MAX_RANK], bst[IR_MAX_RANK], nb = 1;
  bcast_strides(&al, lr, ast);
  bcast_strides(&bl, lr, bst);
  for (int j = 0; j < lr; j++) nb *= ys->d[j];
  int64_t a_mats = 1, b_mats = 1;
  for (int j = 0; j < al.rank; j++) a_mats *= al.d[j];
  for (int j = 0; j < bl.rank; j++) b_mats *= bl.d[j];
  if (K == 0) {
    memset(y, 0, (size_t)(nb * M * N) * sizeof *y);
    return;
  }
  int64_t ldb = tb ? K : N;
  if (b_mats == 1 && a_mats == nb) { /* one shared right operand: a single tall product */
    gemm(tb, nb * M, N, K, a, K, b, ldb, y, N);
    return;
  }
  /* Enough matrices to go round: one thread each; else split every product. */
  int by_batch = nb >= 2 * max_threads();
#pragma omp parallel for schedule(dynamic, 1) if (by_batch)
  for (int64_t i = 0; i < nb; i++) {
    int64_t ai = 0, bi = 0, rem = i;
    for (int j = lr - 1; j >= 0; j--) {
      int64_t c = rem % ys->d[j];
      rem /= ys->d[j];
      ai += c * ast[j];
      bi += c * bst[j];
    }
    const float *am = a + ai * M * K, *bm = b + bi * K * N;
    if (by_batch)
      sgemm1(tb, M, N, K, am, K, bm, ldb, y + i * M * N, N);
    else
      gemm(tb, M, N, K, am, K, bm, ldb, y + i * M * N, N);
  }
}

typedef struct {
  int64_t n, c, h, w;      /* input */
  int64_t o, kh, kw;       /* weight [o, c/groups, kh, kw] */
  int64_t oh, ow;          /* output plane */
  int64_t stride, pad, groups;
} ConvDims;

static ConvDims conv_dims(const IrNode *nd, const Shp *xs, const Shp *ws, const Shp *ys) {
  ConvDims c = {xs->d[0], xs->d[1], xs->d[2], xs->d[3], ws->d[0], ws->d[2], ws->d[3],
                ys->d[2], ys->d[3], nd->attr.stride, nd->attr.pad, nd->attr.groups};
  if (c.stride <= 0) c.stride = 1;
  if (c.groups <= 0) c.groups = 1;
  return c;
}

static int conv_is_depthwise(const ConvDims *c) { return c->groups == c->c && c->o == c->c; }

static size_t conv_scratch(const ConvDims *c) {
  if (conv_is_depthwise(c)) return 0;
  return (size_t)((c->c / c->groups) * c->kh * c->kw * c->oh * c->ow);
}

/* One output plane per (image, channel), each channel with its own kernel. */
static void conv_depthwise(const ConvDims *c, float *y, const float *x, const float *w,
                           const float *b) {
  int64_t planes = c->n * c->c;
#pragma omp parallel for schedule(static) if (planes * c->oh * c->ow * c->kh * c->kw > PAR_MIN)
  for (int64_t p = 0; p < planes; p++) {
    int64_t ch = p % c->c;
    const float *xp = x + p * c->h * c->w, *wk = w + ch * c->kh * c->kw;
    float *yp = y + p * c->oh * c->ow;
    for (int64_t i = 0; i < c->oh; i++)
      for (int64_t j = 0; j < c->ow; j++) {
        float acc = 0.0f;
        for (int64_t ki = 0; ki < c->kh; ki++) {
          int64_t r = i * c->stride - c->pad + ki;
          if (r < 0 || r >= c->h) continue;
          for (int64_t kj = 0; kj < c->kw; kj++) {
            int64_t q = j * c->stride - c->pad + kj;
            if (q < 0 || q >= c->w) continue;
            acc += xp[r * c->w + q] * wk[ki * c->kw + kj];
          }
        }
        yp[i * c->ow + j] = acc + (b ? b[ch] : 0.0f);
      }
  }
}

/* General case: per image and group, unfold the receptive fields into columns
 * [cg*kh*kw, oh*ow] and multiply by the group's weights [og, cg*kh*kw].  For the
 * patch embedding (kernel = stride, no padding) the unfold is a pure shuffle. */
static void conv_im2col(const ConvDims *c, float *y, const float *x, const float *w,
                        const float *b, float *col) {
  int64_t cg = c->c / c->groups, og = c->o / c->groups;
  int64_t kc = cg * c->kh * c->kw, np = c->oh * c->ow;
  for (int64_t n = 0; n < c->n; n++)
    for (int64_t g = 0; g < c->groups; g++) {
      const float *xg = x + (n * c->c + g * cg) * c->h * c->w;
#pragma omp parallel for schedule(static) if (kc * np > PAR_MIN)
      for (int64_t row = 0; row < kc; row++) {
        int64_t ci = row / (c->kh * c->kw), ki = (row / c->kw) % c->kh, kj = row % c->kw;
        const float *xc = xg + ci * c->h * c->w;
        float *cr = col + row * np;
        for (int64_t i = 0; i < c->oh; i++) {
          int64_t r = i * c->stride - c->pad + ki;
          for (int64_t j = 0; j < c->ow; j++) {
            int64_t q = j * c->stride - c->pad + kj;
            cr[i * c->ow + j] = (r < 0 || r >= c->h || q < 0 || q >= c->w) ? 0.0f : xc[r * c->w + q];
          }
        }
      }
      float *yg = y + (n * c->o + g * og) * np;
      gemm(0, og, np, kc, w + g * og * kc, kc, col, np, yg, np);
    }
  if (b) {
    int64_t planes = c->n * c->o;
#pragma omp parallel for schedule(static) if (planes * np > PAR_MIN)
    for (int64_t p = 0; p < planes; p++)
      for (int64_t j = 0; j < np; j++) y[p * np + j] += b[p % c->o];
  }
}

static int run_embedding(const IrNode *nd, float *y, const float *table, const Shp *ts,
                         const int32_t *idx, int64_t n, IrErr *err) {
  int64_t V = ts->d[0], D = ts->d[1];
  for (int64_t i = 0; i < n; i++)
    if (idx[i] < 0 || idx[i] >= V) {
      char m[128];
      snprintf(m, sizeof m, "embedding: index %d out of range [0, %lld)", idx[i], (long long)V);
      return node_errf(err, nd, m);
    }
#pragma omp parallel for schedule(static) if (n * D > PAR_MIN)
  for (int64_t i = 0; i < n; i++) memcpy(y + i * D, table + (int64_t)idx[i] * D, (size_t)D * 4);
  return 0;
}

/* ======================================================================== */
/* layout (4-byte elements, whatever their type)                            */
/* ======================================================================== */

static void run_permute(const IrNode *nd, uint32_t *y, const Shp *ys, const uint32_t *x,
                        const Shp *xs) {
  int64_t xst[IR_MAX_RANK], s = 1;
  for (int j = xs->rank - 1; j >= 0; j--) {
    xst[j] = s;
    s *= xs->d[j];
  }
  Walk w = {.rank = ys->rank, .nops = 1};
  for (int j = 0; j < ys->rank; j++) {
    w.d[j] = ys->d[j];
    w.st[0][j] = xst[nd->attr.perm[j]];
  }
  walk_coalesce(&w);
  int64_t inner = w.d[w.rank - 1], sx = w.st[0][w.rank - 1];
  if (ys->numel == 0) return;
  int64_t rows = ys->numel / inner;
#pragma omp parallel for schedule(static) if (ys->numel > PAR_MIN)
  for (int64_t r = 0; r < rows; r++) {
    int64_t off[2]; /* sized for any walk: gcc -O3 cannot see nops == 1 */
    walk_offsets(&w, r, off);
    uint32_t *yr = y + r * inner;
    const uint32_t *xr = x + off[0];
    if (sx == 1)
      memcpy(yr, xr, (size_t)inner * 4);
    else
      for (int64_t j = 0; j < inner; j++) yr[j] = xr[j * sx];
  }
}

/* Copy `outer` blocks of `len` elements from src (stride sstride) to dst (stride dstride). */
static void copy_blocks(uint32_t *dst, int64_t dstride, const uint32_t *src, int64_t sstride,
                        int64_t outer, int64_t len) {
#pragma omp parallel for schedule(static) if (outer * len > PAR_MIN && outer > 1)
  for (int64_t o = 0; o < outer; o++)
    memcpy(dst + o * dstride, src + o * sstride, (size_t)len * 4);
}

static void outer_inner(const Shp *s, int axis, int64_t *outer, int64_t *inner) {
  *outer = 1;
  *inner = 1;
  for (int j = 0; j < axis; j++) *outer *= s->d[j];
  for (int j = axis + 1; j < s->rank; j++) *inner *= s->d[j];
}

static void run_avgpool(float *y, const Shp *ys, const float *x, const Shp *xs) {
  int64_t planes = xs->d[0] * xs->d[1], H = xs->d[2], W = xs->d[3];
  int64_t oh = ys->d[2], ow = ys->d[3];
#pragma omp parallel for schedule(static) if (planes * H * W > PAR_MIN)
  for (int64_t p = 0; p < planes; p++)
    for (int64_t i = 0; i < oh; i++) {
      int64_t r0 = i * H / oh, r1 = ((i + 1) * H + oh - 1) / oh;
      for (int64_t j = 0; j < ow; j++) {
        int64_t c0 = j * W / ow, c1 = ((j + 1) * W + ow - 1) / ow;
        double s = 0;
        for (int64_t r = r0; r < r1; r++)
          for (int64_t q = c0; q < c1; q++) s += x[(p * H + r) * W + q];
        y[(p * oh + i) * ow + j] = (float)(s / (double)((r1 - r0) * (c1 - c0)));
      }
    }
}

/* ======================================================================== */
/* prepare                                                                  */
/* ======================================================================== */

/* Checks an op's inputs and attributes at the concrete batch; fills the
 * scratch need.  Shape inference already ran when the node was built, so
 * failures here mean a graph the executor cannot run, reported, not asserted. */
static int check_node(RefExec *e, const IrNode *nd, IrErr *err) {
  RefVal *v = val_of(e, nd);
  for (int i = 0; i < nd->n_in; i++) {
    IrDType t = nd->in[i]->dtype;
    int int_ok = nd->op == IR_CAST || nd->op == IR_RESHAPE || nd->op == IR_PERMUTE ||
                 nd->op == IR_SLICE || nd->op == IR_CONCAT || (nd->op == IR_EMBEDDING && i == 1) ||
                 (i == 1 && (nd->op == IR_MOE_GATHER || nd->op == IR_MOE_LINEAR || nd->op == IR_MOE_COMBINE));
    if (!is_floaty(t) && !(t == IR_I32 && int_ok)) {
      char m[160];
      snprintf(m, sizeof m, "input %d has dtype %s, which the reference executor does not run", i,
               ir_dtype_name(t));
      return node_errf(err, nd, m);
    }
  }
  if (!is_floaty(nd->dtype) && nd->dtype != IR_I32)
    return node_errf(err, nd, "output dtype not supported by the reference executor");
  const Shp *x = nd->n_in > 0 ? &in_val(e, nd, 0)->s : NULL;
  switch (nd->op) {
  case IR_INPUT: case IR_PARAM: case IR_CONST:
    return 0;
  case IR_LAYERNORM: case IR_SOFTMAX: case IR_TOPK_SOFTMAX:
    if (x->rank < 1) return node_errf(err, nd, "needs rank >= 1");
    if (nd->op == IR_TOPK_SOFTMAX && (nd->attr.k < 1 || nd->attr.k > x->d[x->rank - 1]))
      return node_errf(err, nd, "k out of range for the last axis");
    return 0;
  case IR_REDUCE_SUM: case IR_REDUCE_MEAN: {
    int a = nd->attr.axis < 0 ? nd->attr.axis + x->rank : nd->attr.axis;
    if (a < 0 || a > x->rank) return node_errf(err, nd, "axis out of range");
    return 0;
  }
  case IR_LINEAR:
    if (nd->n_in < 2 || nd->n_in > 3 || in_val(e, nd, 1)->s.rank != 2 || !x || x->rank < 1)
      return node_errf(err, nd, "expects x[..., K], w[N, K][, b[N]]");
    return 0;
  case IR_MATMUL:
    if (x->rank < 2 || in_val(e, nd, 1)->s.rank < 2)
      return node_errf(err, nd, "operands need rank >= 2");
    return 0;
  case IR_CONV2D: {
    const Shp *w = nd->n_in >= 2 ? &in_val(e, nd, 1)->s : NULL;
    if (!w || nd->n_in > 3 || x->rank != 4 || w->rank != 4 || v->s.rank != 4)
      return node_errf(err, nd, "expects x[N, C, H, W], w[O, C/groups, kh, kw][, b[O]]");
    ConvDims c = conv_dims(nd, x, w, &v->s);
    if (c.c % c.groups || c.o % c.groups || w->d[1] != c.c / c.groups)
      return node_errf(err, nd, "channels do not divide into groups");
    size_t need = conv_scratch(&c);
    if (need > e->scratch_n) e->scratch_n = need;
    return 0;
  }
  case IR_EMBEDDING:
    if (nd->in[1]->dtype != IR_I32 || in_val(e, nd, 0)->s.rank != 2)
      return node_errf(err, nd, "expects table[V, D] and i32 indices");
    return 0;
  case IR_RESHAPE:
    if (v->s.numel != x->numel)
      return node_errf(err, nd, "element count differs at this batch");
    return 0;
  case IR_SLICE: {
    int a = nd->attr.axis;
    int64_t st = ir_dim_eval(nd->attr.start, e->batch), len = ir_dim_eval(nd->attr.len, e->batch);
    if (a < 0 || a >= x->rank || st < 0 || len < 0 || st + len > x->d[a])
      return node_errf(err, nd, "slice out of bounds at this batch");
    return 0;
  }
  case IR_CONCAT:
    if (nd->attr.axis < 0 || nd->attr.axis >= v->s.rank) return node_errf(err, nd, "bad axis");
    return 0;
  case IR_PERMUTE:
  case IR_MOE_ROUTE: case IR_MOE_GATHER: case IR_MOE_LINEAR: case IR_MOE_COMBINE: /* ir/shape.c checked them */
    return 0;
  case IR_AVGPOOL2D:
    if (x->rank != 4 || nd->attr.out_h <= 0 || nd->attr.out_w <= 0)
      return node_errf(err, nd, "expects NCHW input and a positive output size");
    return 0;
  default:
    if (ir_op_class(nd->op) == IR_CLASS_UNARY || ir_op_class(nd->op) == IR_CLASS_BINARY) return 0;
    return node_errf(err, nd, "op not supported by the reference executor");
  }
}

static int root_of(const RefExec *e, int p) {
  while (e->v[p].alias >= 0) p = e->v[p].alias;
  return p;
}

/* Storage plan: walk the nodes in order, give each computed node a free slot
 * (best fit, else a new one), and return slots after their last reader. */
static void plan_slots(RefExec *e) {
  int n = e->n, *free_list = xmalloc((size_t)(n + 1) * sizeof *free_list), n_free = 0;
  size_t cap_slots = 16;
  e->slot_cap = xmalloc(cap_slots * sizeof *e->slot_cap);
  for (int i = 0; i < n; i++) {
    IrNode *nd = e->g->nodes[i];
    RefVal *v = &e->v[i];
    if (v->fixed && ir_op_class(nd->op) != IR_CLASS_LEAF && v->alias < 0) {
      v->owned = xmalloc((size_t)(v->s.numel > 0 ? v->s.numel : 1) * 4);
      v->ptr = v->owned;
    } else if (ir_op_class(nd->op) != IR_CLASS_LEAF && v->alias < 0) {
      size_t need = (size_t)(v->s.numel > 0 ? v->s.numel : 1) * 4;
      int best = -1;
      for (int k = 0; k < n_free; k++) {
        size_t c = e->slot_cap[free_list[k]];
        if (c >= need && (best < 0 || c < e->slot_cap[free_list[best]])) best = k;
      }
      if (best >= 0) {
        v->slot = free_list[best];
        free_list[best] = free_list[--n_free];
      } else {
        if ((size_t)e->n_slots == cap_slots) {
          cap_slots *= 2;
          e->slot_cap = xrealloc(e->slot_cap, cap_slots * sizeof *e->slot_cap);
        }
        e->slot_cap[e->n_slots] = need;
        v->slot = e->n_slots++;
      }
    }
    /* this node's inputs and, if nobody reads it, the node itself */
    for (int k = -1; k < nd->n_in; k++) {
      int r = root_of(e, k < 0 ? i : pos_of(e, nd->in[k]));
      RefVal *rv = &e->v[r];
      int done = rv->last_use == i || (k < 0 && rv->last_use < 0 && r == i);
      if (!done || rv->keep || rv->slot < 0) continue;
      int dup = 0;
      for (int q = 0; q < n_free; q++) dup |= free_list[q] == rv->slot;
      if (!dup) free_list[n_free++] = rv->slot;
    }
  }
  free(free_list);
  e->slots = xcalloc((size_t)(e->n_slots ? e->n_slots : 1), sizeof *e->slots);
  for (int k = 0; k < e->n_slots; k++) e->slots[k] = xmalloc(e->slot_cap[k]);
  for (int i = 0; i < n; i++)
    if (e->v[i].slot >= 0) e->v[i].ptr = e->slots[e->v[i].slot];
}

static int run_node(RefExec *e, int i, IrErr *err);

RefExec *ref_prepare(IrGraph *g, const Weights *w, int64_t batch, IrErr *err) {
  if (batch < 1) {
    ir_errf(err, "batch must be >= 1, got %lld", (long long)batch);
    return NULL;
  }
  openblas_set_num_threads(1); /* OpenMP splits the products (see the top of the file) */
  RefExec *e = xcalloc(1, sizeof *e);
  e->g = g;
  e->batch = batch;
  e->n = g->n_nodes;
  e->v = xcalloc((size_t)(e->n ? e->n : 1), sizeof *e->v);
  e->pos_of_id = xmalloc((size_t)(g->next_id > 0 ? g->next_id : 1) * sizeof *e->pos_of_id);
  for (int i = 0; i < g->next_id; i++) e->pos_of_id[i] = -1;
  for (int i = 0; i < e->n; i++) {
    IrNode *nd = g->nodes[i];
    DITC_ASSERT(nd->id >= 0 && nd->id < g->next_id);
    e->pos_of_id[nd->id] = i;
  }
  e->n_inputs = ir_graph_inputs(g, &e->inputs);

  for (int i = 0; i < e->n; i++) {
    IrNode *nd = g->nodes[i];
    RefVal *v = &e->v[i];
    v->slot = v->alias = v->last_use = -1;
    v->s.rank = nd->shape.rank;
    v->s.numel = 1;
    for (int j = 0; j < nd->shape.rank; j++) {
      v->s.d[j] = ir_dim_eval(nd->shape.d[j], batch);
      v->s.numel *= v->s.d[j];
    }
    for (int k = 0; k < nd->n_in; k++)
      if (pos_of(e, nd->in[k]) < 0 || pos_of(e, nd->in[k]) >= i) {
        node_errf(err, nd, "input is not an earlier node of the graph (graph not sorted?)");
        goto fail;
      }
    if (check_node(e, nd, err)) goto fail;
    if (nd->op == IR_PARAM) {
      const float *d = w ? weights_get(w, nd) : NULL;
      if (!d) {
        ir_errf(err, "param '%s': no weights bound", node_label(nd));
        goto fail;
      }
      v->ptr = (void *)d;
      if (nd->dtype == IR_F16 || nd->dtype == IR_BF16) { /* hold the values at that precision */
        v->owned = xmalloc((size_t)(v->s.numel ? v->s.numel : 1) * 4);
        memcpy(v->owned, d, (size_t)v->s.numel * 4);
        round_buf(nd->dtype, v->owned, v->s.numel);
        v->ptr = v->owned;
      }
    } else if (nd->op == IR_CONST) {
      if (!nd->data || (nd->dtype != IR_F32 && nd->dtype != IR_I32)) {
        node_errf(err, nd, "constant without f32/i32 data");
        goto fail;
      }
      v->ptr = nd->data;
    } else if (nd->op == IR_INPUT) {
      if (nd->dtype != IR_F32 && nd->dtype != IR_I32) {
        ir_errf(err, "input '%s': dtype %s not supported by the reference executor (use f32 or i32)",
                node_label(nd), ir_dtype_name(nd->dtype));
        goto fail;
      }
    } else if (nd->op == IR_RESHAPE) {
      v->alias = pos_of(e, nd->in[0]);
    }
    v->fixed = nd->op == IR_PARAM || nd->op == IR_CONST;
    if (nd->op != IR_INPUT && nd->n_in > 0) {
      v->fixed = 1;
      for (int k = 0; k < nd->n_in; k++) v->fixed &= e->v[pos_of(e, nd->in[k])].fixed;
    }
    for (int k = 0; k < nd->n_in; k++) e->v[root_of(e, pos_of(e, nd->in[k]))].last_use = i;
  }
  for (int k = 0; k < g->n_outputs; k++) e->v[root_of(e, pos_of(e, g->outputs[k]))].keep = 1;
  plan_slots(e);
  if (e->scratch_n) e->scratch = xmalloc(e->scratch_n * sizeof *e->scratch);
  /* Weight-only values (stacked weights, folded layouts) once, here. */
  for (int i = 0; i < e->n; i++)
    if (e->v[i].fixed && ir_op_class(g->nodes[i]->op) != IR_CLASS_LEAF && run_node(e, i, err)) goto fail;
  return e;
fail:
  ref_free(e);
  return NULL;
}

void ref_free(RefExec *e) {
  if (!e) return;
  for (int k = 0; k < e->n_slots; k++) free(e->slots[k]);
  for (int i = 0; i < e->n; i++) free(e->v[i].owned);
  free(e->slots);
  free(e->slot_cap);
  free(e->scratch);
  free(e->v);
  free(e->pos_of_id);
  free(e);
}

/* ======================================================================== */
/* run                                                                      */
/* ======================================================================== */

static int run_node(RefExec *e, int i, IrErr *err) {
  IrNode *nd = e->g->nodes[i];
  RefVal *v = &e->v[i];
  float *y = v->ptr;
  RefVal *x = nd->n_in > 0 ? in_val(e, nd, 0) : NULL;
  const float *xp = x ? x->ptr : NULL;
  switch (nd->op) {
  case IR_INPUT: case IR_PARAM: case IR_CONST:
    return 0;
  case IR_RESHAPE:
    v->ptr = x->ptr;
    return 0;
  case IR_CAST:
    if (run_cast(nd, nd->in[0]->dtype, y, xp, v->s.numel, err)) return -1;
    break;
  case IR_ADD: case IR_SUB: case IR_MUL: case IR_DIV: case IR_MAX: {
    RefVal *b = in_val(e, nd, 1);
    run_binary(nd->op, &v->s, y, &x->s, xp, &b->s, b->ptr);
    break;
  }
  case IR_LAYERNORM: case IR_SOFTMAX: case IR_TOPK_SOFTMAX: {
    int64_t n = x->s.d[x->s.rank - 1], rows = n ? x->s.numel / n : 0;
    if (nd->op == IR_LAYERNORM) run_layernorm(y, xp, rows, n, nd->attr.f);
    else if (nd->op == IR_SOFTMAX) run_softmax(y, xp, rows, n);
    else run_topk_softmax(y, xp, rows, n, nd->attr.k);
    break;
  }
  case IR_REDUCE_SUM: case IR_REDUCE_MEAN: {
    int a = nd->attr.axis < 0 ? nd->attr.axis + x->s.rank : nd->attr.axis;
    int64_t rows = 1, n = 1;
    for (int j = 0; j < x->s.rank; j++) *(j < a ? &rows : &n) *= x->s.d[j];
    run_reduce(y, xp, rows, n, nd->op == IR_REDUCE_MEAN);
    break;
  }
  case IR_LINEAR: {
    RefVal *w = in_val(e, nd, 1);
    int64_t K = w->s.d[1], N = w->s.d[0], M = K ? x->s.numel / K : v->s.numel / (N ? N : 1);
    run_linear(y, xp, w->ptr, nd->n_in > 2 ? in_val(e, nd, 2)->ptr : NULL, M, N, K);
    break;
  }
  case IR_MATMUL: {
    RefVal *b = in_val(e, nd, 1);
    run_matmul(nd, y, &v->s, xp, &x->s, b->ptr, &b->s);
    break;
  }
  case IR_CONV2D: {
    RefVal *w = in_val(e, nd, 1);
    const float *b = nd->n_in > 2 ? in_val(e, nd, 2)->ptr : NULL;
    ConvDims c = conv_dims(nd, &x->s, &w->s, &v->s);
    if (conv_is_depthwise(&c)) conv_depthwise(&c, y, xp, w->ptr, b);
    else conv_im2col(&c, y, xp, w->ptr, b, e->scratch);
    break;
  }
  case IR_EMBEDDING: {
    RefVal *ix = in_val(e, nd, 1);
    if (run_embedding(nd, y, xp, &x->s, ix->ptr, ix->s.numel, err)) return -1;
    break;
  }
  case IR_PERMUTE:
    run_permute(nd, (uint32_t *)y, &v->s, x->ptr, &x->s);
    return 0;
  case IR_SLICE: {
    int a = nd->attr.axis;
    int64_t outer, inner, st = ir_dim_eval(nd->attr.start, e->batch);
    outer_inner(&x->s, a, &outer, &inner);
    copy_blocks((uint32_t *)y, v->s.d[a] * inner, (const uint32_t *)x->ptr + st * inner,
                x->s.d[a] * inner, outer, v->s.d[a] * inner);
    return 0;
  }
  case IR_CONCAT: {
    int a = nd->attr.axis;
    int64_t outer, inner, at = 0;
    outer_inner(&v->s, a, &outer, &inner);
    for (int k = 0; k < nd->n_in; k++) {
      RefVal *p = in_val(e, nd, k);
      int64_t len = p->s.d[a] * inner;
      copy_blocks((uint32_t *)y + at, v->s.d[a] * inner, p->ptr, len, outer, len);
      at += len;
    }
    return 0;
  }
  case IR_AVGPOOL2D:
    run_avgpool(y, &v->s, xp, &x->s);
    break;
  case IR_MOE_ROUTE: {
    int64_t E = x->s.d[x->s.rank - 1];
    run_moe_route(v->ptr, v->s.numel, xp, E ? x->s.numel / E : 0, E, nd->attr.k);
    return 0;
  }
  case IR_MOE_GATHER: {
    int64_t E = ir_moe_table_experts(nd->in[1]->shape.d[0], nd->shape.d[0]);
    run_moe_gather(y, xp, in_val(e, nd, 1)->ptr, E, v->s.d[0], v->s.d[1]);
    break;
  }
  case IR_MOE_LINEAR: {
    RefVal *w = in_val(e, nd, 2);
    run_moe_linear(y, xp, in_val(e, nd, 1)->ptr, w->ptr, nd->n_in > 3 ? in_val(e, nd, 3)->ptr : NULL, w->s.d[0],
                   w->s.d[1], w->s.d[2]);
    break;
  }
  case IR_MOE_COMBINE: {
    RefVal *gt = in_val(e, nd, 2);
    int64_t E = gt->s.d[gt->s.rank - 1], T = E ? gt->s.numel / E : 0;
    run_moe_combine(y, xp, in_val(e, nd, 1)->ptr, gt->ptr, T, E, T ? (int)(x->s.d[0] / T) : 0, x->s.d[1]);
    break;
  }
  default:
    if (ir_op_class(nd->op) != IR_CLASS_UNARY) ditc_unreachable(); /* check_node let it in */
    run_unary(nd->op, nd->attr.f, y, xp, v->s.numel);
    break;
  }
  round_buf(nd->dtype, y, v->s.numel);
  return 0;
}

static int check_input(const IrNode *nd, const RtTensor *t, int64_t batch, IrErr *err) {
  int64_t want[IR_MAX_RANK];
  int ok = t->dtype == nd->dtype && t->rank == nd->shape.rank && t->data;
  for (int j = 0; j < nd->shape.rank; j++) {
    want[j] = ir_dim_eval(nd->shape.d[j], batch);
    if (ok && t->shape[j] != want[j]) ok = 0;
  }
  if (ok) return 0;
  char a[256], b[256];
  shp_str(nd->dtype, want, nd->shape.rank, a, sizeof a);
  if (t->rank < 0 || t->rank > IR_MAX_RANK)
    snprintf(b, sizeof b, "a tensor of rank %d", t->rank);
  else if (!t->data)
    snprintf(b, sizeof b, "a tensor without data");
  else
    shp_str(t->dtype, t->shape, t->rank, b, sizeof b);
  return ir_errf(err, "input '%s': expected %s, got %s", node_label(nd), a, b);
}

int ref_run(RefExec *e, const RtTensor *inputs, RtTensor *outputs, IrErr *err) {
  IrGraph *g = e->g;
  for (int k = 0; k < e->n_inputs; k++) {
    if (check_input(e->inputs[k], &inputs[k], e->batch, err)) return -1;
    val_of(e, e->inputs[k])->ptr = inputs[k].data;
  }
  for (int i = 0; i < e->n; i++)
    if (!e->v[i].fixed && run_node(e, i, err)) return -1;
  for (int k = 0; k < g->n_outputs; k++) {
    IrNode *nd = g->outputs[k];
    RefVal *v = val_of(e, nd);
    outputs[k] = rt_tensor_new(nd->dtype, v->s.rank, v->s.d);
    if (nd->dtype == IR_F16 || nd->dtype == IR_BF16) {
      const float *s = v->ptr;
      uint16_t *d = outputs[k].data;
      for (int64_t j = 0; j < v->s.numel; j++)
        d[j] = nd->dtype == IR_F16 ? ir_f32_to_f16(s[j]) : ir_f32_to_bf16(s[j]);
    } else if (v->s.numel) {
      memcpy(outputs[k].data, v->ptr, (size_t)v->s.numel * 4);
    }
  }
  return 0;
}

int64_t ref_batch_of(IrGraph *g, const RtTensor *inputs, IrErr *err) {
  int64_t B = -1;
  const char *who = NULL;
  /* the INPUT nodes in graph order, as ir_graph_inputs() lists them, without
   * taking arena memory on every call */
  for (int i = 0, k = 0; i < g->n_nodes; i++) {
    const IrNode *nd = g->nodes[i];
    if (nd->op != IR_INPUT) continue;
    k++;
    const RtTensor *in = &inputs[k - 1];
    if (in->rank != nd->shape.rank) {
      ir_errf(err, "input '%s': expected rank %d, got %d", node_label(nd), nd->shape.rank,
              in->rank);
      return -1;
    }
    for (int j = 0; j < nd->shape.rank; j++) {
      IrDim d = nd->shape.d[j];
      if (!ir_dim_is_sym(d)) continue;
      int64_t got = in->shape[j], m = -d;
      char ds[32];
      if (got < m || got % m) {
        ir_errf(err, "input '%s': dim %d is %lld, not a positive multiple of %lld (declared %s)",
                node_label(nd), j, (long long)got, (long long)m, ir_dim_str(d, ds, sizeof ds));
        return -1;
      }
      if (B >= 0 && got / m != B) {
        ir_errf(err, "input '%s': dim %d implies batch %lld, but input '%s' implies %lld",
                node_label(nd), j, (long long)(got / m), who, (long long)B);
        return -1;
      }
      B = got / m;
      who = node_label(nd);
    }
  }
  return B < 0 ? 1 : B;
}
