/*
 * test_ref_ops.c - the reference executor, op by op.
 *
 * Each test builds a small graph with the IR builders, runs it through
 * ref_prepare/ref_run and compares the result with a naive double-precision
 * implementation written here (or with hand-computed values).  Agreement is
 * judged by the relative L2 error ||got - want|| / ||want||, below TOL unless
 * a test states otherwise.  Also: numpy broadcasting, the symbolic batch,
 * slicing along the batch axis, buffer reuse over a long chain, error
 * messages, a small attention block and top-k ties.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "runtime/ref.h"
#include "testutil.h"

#define TOL 1e-6

/* ---- helpers --------------------------------------------------------------- */

static uint64_t rng = 88172645463325252ull;

static float urand(float lo, float hi) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return lo + (hi - lo) * (float)((rng >> 11) * (1.0 / 9007199254740992.0));
}

static float *rnd(int64_t n, float lo, float hi) {
  float *p = malloc((size_t)(n ? n : 1) * sizeof *p);
  for (int64_t i = 0; i < n; i++) p[i] = urand(lo, hi);
  return p;
}

static double *dalloc(int64_t n) { return calloc((size_t)(n ? n : 1), sizeof(double)); }

static IrShape shp(int rank, ...) {
  IrShape s = {.rank = rank};
  va_list ap;
  va_start(ap, rank);
  for (int i = 0; i < rank; i++) s.d[i] = va_arg(ap, int);
  va_end(ap);
  return s;
}

static IrNode *in_f32(IrGraph *g, const char *name, IrShape s) {
  return ir_input(g, name, IR_F32, s, (IrLoc){0});
}

static IrNode *node(IrGraph *g, IrOp op, int n, IrNode *const *in, IrAttrs a) {
  IrErr err = {{0}};
  IrNode *r = ir_node_new(g, op, n, in, &a, (IrLoc){0}, &err);
  if (!r) fail_msg("building %s: %s", ir_op_name(op), err.msg);
  return r;
}

static RtTensor tens(IrDType t, void *data, int rank, ...) {
  RtTensor x = {.dtype = t, .rank = rank, .data = data};
  va_list ap;
  va_start(ap, rank);
  for (int i = 0; i < rank; i++) x.shape[i] = va_arg(ap, int);
  va_end(ap);
  return x;
}

/* Weights bound by hand: data[id] points at caller-owned arrays. */
typedef struct {
  Weights w;
} TW;

static void tw_init(TW *t, IrGraph *g) {
  t->w.cap = g->next_id + 64;
  t->w.data = calloc((size_t)t->w.cap, sizeof(float *));
}
static IrNode *tw_param(TW *t, IrGraph *g, const char *name, IrShape s, float *data) {
  IrNode *p = ir_param(g, name, IR_F32, s, (IrLoc){0});
  if (p->id >= t->w.cap) {
    t->w.data = realloc(t->w.data, (size_t)(p->id + 64) * sizeof(float *));
    memset(t->w.data + t->w.cap, 0, (size_t)(p->id + 64 - t->w.cap) * sizeof(float *));
    t->w.cap = p->id + 64;
  }
  t->w.data[p->id] = data;
  return p;
}
static void tw_free(TW *t) { free(t->w.data); }

/* Run g at `batch` with the given inputs; outputs into out[]. Fails the test on error. */
static void run(IrGraph *g, const Weights *w, int64_t batch, const RtTensor *in, RtTensor *out) {
  IrErr err = {{0}};
  RefExec *e = ref_prepare(g, w, batch, &err);
  if (!e) fail_msg("ref_prepare: %s", err.msg);
  if (ref_run(e, in, out, &err)) fail_msg("ref_run: %s", err.msg);
  ref_free(e);
}

/* Run and return -1 with the message, for error tests. */
static int run_err(IrGraph *g, const Weights *w, int64_t batch, const RtTensor *in, IrErr *err) {
  RefExec *e = ref_prepare(g, w, batch, err);
  if (!e) return -1;
  RtTensor out[4];
  int rc = ref_run(e, in, out, err);
  if (rc == 0)
    for (int k = 0; k < g->n_outputs; k++) rt_tensor_free(&out[k]);
  ref_free(e);
  return rc;
}

static double rel_l2(const float *got, const double *want, int64_t n) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; i++) {
    double d = got[i] - want[i];
    num += d * d;
    den += want[i] * want[i];
  }
  return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* written so that a NaN error fails */
static int too_far(double rel) { return !(rel <= TOL); }

#define CHECK_CLOSE(got, want, n, tol)                                                       \
  do {                                                                                       \
    double e_ = rel_l2((got), (want), (n));                                                  \
    if (!(e_ <= (tol))) fail_msg("%s:%d: relative L2 error %.3g > %.3g", __FILE__, __LINE__, \
                                 e_, (double)(tol));                                         \
  } while (0)

static void check_shape(const RtTensor *t, int rank, const int64_t *d) {
  assert_int_equal(t->rank, rank);
  for (int i = 0; i < rank; i++) assert_int_equal(t->shape[i], d[i]);
}

/* ---- elementwise ------------------------------------------------------------- */

static double gelu_tanh_d(double x) {
  return 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
}

static void test_unary(void **state) {
  (void)state;
  struct { IrOp op; float f, lo, hi; } cases[] = {
      {IR_NEG, 0, -3, 3},        {IR_RELU, 0, -3, 3},       {IR_SILU, 0, -6, 6},
      {IR_GELU_TANH, 0, -4, 4},  {IR_GELU, 0, -4, 4},       {IR_SIGMOID, 0, -6, 6},
      {IR_TANH, 0, -3, 3},       {IR_EXP, 0, -3, 3},        {IR_LOG, 0, 0.1f, 5},
      {IR_SIN, 0, -6, 6},        {IR_COS, 0, -6, 6},        {IR_SQRT, 0, 0, 5},
      {IR_RECIP, 0, 0.2f, 4},    {IR_SCALE, 0.125f, -3, 3}, {IR_ADD_SCALAR, 1.5f, -3, 3},
      {IR_POW_SCALAR, 2, -3, 3}, {IR_POW_SCALAR, 1.7f, 0.1f, 3}, {IR_POW_SCALAR, -0.5f, 0.1f, 3},
      {IR_CLAMP_MIN, 0.25f, -2, 2},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    IrGraph *g = ir_graph_new("t");
    IrNode *x = in_f32(g, "x", shp(3, 2, 3, 37));
    ir_graph_add_output(g, ir_op1f(g, cases[c].op, x, cases[c].f), "y");
    int64_t n = 2 * 3 * 37;
    float *xs = rnd(n, cases[c].lo, cases[c].hi);
    double *want = dalloc(n), f = cases[c].f;
    for (int64_t i = 0; i < n; i++) {
      double v = xs[i];
      switch (cases[c].op) {
      case IR_NEG: want[i] = -v; break;
      case IR_RELU: want[i] = v > 0 ? v : 0; break;
      case IR_SILU: want[i] = v / (1 + exp(-v)); break;
      case IR_GELU_TANH: want[i] = gelu_tanh_d(v); break;
      case IR_GELU: want[i] = 0.5 * v * (1 + erf(v / sqrt(2))); break;
      case IR_SIGMOID: want[i] = 1 / (1 + exp(-v)); break;
      case IR_TANH: want[i] = tanh(v); break;
      case IR_EXP: want[i] = exp(v); break;
      case IR_LOG: want[i] = log(v); break;
      case IR_SIN: want[i] = sin(v); break;
      case IR_COS: want[i] = cos(v); break;
      case IR_SQRT: want[i] = sqrt(v); break;
      case IR_RECIP: want[i] = 1 / v; break;
      case IR_SCALE: want[i] = v * f; break;
      case IR_ADD_SCALAR: want[i] = v + f; break;
      case IR_POW_SCALAR: want[i] = pow(v, f); break;
      case IR_CLAMP_MIN: want[i] = v > f ? v : f; break;
      default: fail();
      }
    }
    RtTensor in = tens(IR_F32, xs, 3, 2, 3, 37), out;
    run(g, NULL, 1, &in, &out);
    check_shape(&out, 3, (int64_t[]){2, 3, 37});
    if (too_far(rel_l2(out.data, want, n)))
      fail_msg("%s (f=%g): relative L2 error %.3g", ir_op_name(cases[c].op), (double)f,
               rel_l2(out.data, want, n));
    rt_tensor_free(&out);
    free(xs);
    free(want);
    ir_graph_free(g);
  }
}

/* Naive broadcast index: flat output index -> flat input index. */
static int64_t bidx(int64_t i, const IrShape *o, const IrShape *s) {
  int64_t idx = 0, stride = 1;
  for (int j = o->rank - 1; j >= 0; j--) {
    int64_t c = i % o->d[j];
    i /= o->d[j];
    int k = j - (o->rank - s->rank);
    if (k < 0) continue;
    if (s->d[k] != 1) idx += c * stride;
    stride *= s->d[k];
  }
  return idx;
}

static void test_binary_broadcast(void **state) {
  (void)state;
  IrShape pairs[][2] = {
      {shp(3, 2, 3, 40), shp(3, 2, 3, 40)}, /* equal */
      {shp(3, 2, 3, 40), shp(1, 40)},       /* row vector over the last axis */
      {shp(3, 2, 5, 40), shp(3, 2, 1, 40)}, /* adaLN: [B, T, D] with [B, 1, D] */
      {shp(2, 3, 1), shp(2, 1, 4)},         /* outer product */
      {shp(3, 2, 3, 4), shp(1, 1)},         /* scalar */
      {shp(1, 1), shp(3, 2, 3, 4)},         /* scalar on the left */
      {shp(3, 2, 3, 4), shp(2, 3, 1)},      /* column */
      {shp(4, 2, 1, 3, 5), shp(3, 4, 1, 5)},/* both sides broadcast */
      {shp(1, 70000), shp(1, 70000)},       /* one long row, split in pieces */
  };
  IrOp ops[] = {IR_ADD, IR_SUB, IR_MUL, IR_DIV, IR_MAX};
  for (size_t p = 0; p < sizeof pairs / sizeof pairs[0]; p++)
    for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++) {
      IrGraph *g = ir_graph_new("t");
      IrNode *a = in_f32(g, "a", pairs[p][0]), *b = in_f32(g, "b", pairs[p][1]);
      IrNode *y = ir_bin(g, ops[o], a, b);
      ir_graph_add_output(g, y, "y");
      int64_t na = ir_shape_numel(&a->shape, 1), nb = ir_shape_numel(&b->shape, 1);
      int64_t ny = ir_shape_numel(&y->shape, 1);
      float *av = rnd(na, -2, 2), *bv = rnd(nb, 0.5f, 2);
      double *want = dalloc(ny);
      for (int64_t i = 0; i < ny; i++) {
        double x = av[bidx(i, &y->shape, &a->shape)], z = bv[bidx(i, &y->shape, &b->shape)];
        switch (ops[o]) {
        case IR_ADD: want[i] = x + z; break;
        case IR_SUB: want[i] = x - z; break;
        case IR_MUL: want[i] = x * z; break;
        case IR_DIV: want[i] = x / z; break;
        default: want[i] = x > z ? x : z; break;
        }
      }
      RtTensor in[2] = {{.dtype = IR_F32, .rank = a->shape.rank, .data = av},
                        {.dtype = IR_F32, .rank = b->shape.rank, .data = bv}};
      for (int j = 0; j < a->shape.rank; j++) in[0].shape[j] = a->shape.d[j];
      for (int j = 0; j < b->shape.rank; j++) in[1].shape[j] = b->shape.d[j];
      RtTensor out;
      run(g, NULL, 1, in, &out);
      assert_int_equal(rt_numel(&out), ny);
      if (too_far(rel_l2(out.data, want, ny)))
        fail_msg("%s, pair %zu: relative L2 error %.3g", ir_op_name(ops[o]), p,
                 rel_l2(out.data, want, ny));
      rt_tensor_free(&out);
      free(av);
      free(bv);
      free(want);
      ir_graph_free(g);
    }
}

static void test_max_nan_and_values(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("t");
  IrNode *a = in_f32(g, "a", shp(1, 4)), *b = in_f32(g, "b", shp(1, 4));
  ir_graph_add_output(g, ir_bin(g, IR_MAX, a, b), "m");
  ir_graph_add_output(g, ir_un(g, IR_RELU, a), "r");
  float av[4] = {1, NAN, -2, 3}, bv[4] = {NAN, 1, -3, 3};
  RtTensor in[2] = {tens(IR_F32, av, 1, 4), tens(IR_F32, bv, 1, 4)}, out[2];
  run(g, NULL, 1, in, out);
  float *m = out[0].data, *r = out[1].data;
  assert_true(isnan(m[0]) && isnan(m[1])); /* NaN propagates like torch.maximum */
  assert_true(m[2] == -2 && m[3] == 3);
  assert_true(r[0] == 1 && isnan(r[1]) && r[2] == 0 && r[3] == 3);
  rt_tensor_free(&out[0]);
  rt_tensor_free(&out[1]);
  ir_graph_free(g);
}

/* ---- normalisation, reductions ----------------------------------------------- */

static void test_layernorm_softmax(void **state) {
  (void)state;
  int rows = 2 * 7, n = 384;
  IrGraph *g = ir_graph_new("t");
  IrNode *x = in_f32(g, "x", shp(3, 2, 7, n));
  ir_graph_add_output(g, ir_op1f(g, IR_LAYERNORM, x, 1e-6f), "ln");
  ir_graph_add_output(g, ir_un(g, IR_SOFTMAX, x), "sm");
  float *xs = rnd(rows * n, -4, 6);
  for (int j = 0; j < n; j++) xs[j] += 100.0f; /* a row with a large mean */
  double *ln = dalloc(rows * n), *sm = dalloc(rows * n);
  for (int r = 0; r < rows; r++) {
    const float *xr = xs + r * n;
    double mean = 0, var = 0, mx = -INFINITY, s = 0;
    for (int j = 0; j < n; j++) mean += xr[j], mx = fmax(mx, xr[j]);
    mean /= n;
    for (int j = 0; j < n; j++) var += (xr[j] - mean) * (xr[j] - mean);
    var /= n;
    for (int j = 0; j < n; j++) ln[r * n + j] = (xr[j] - mean) / sqrt(var + 1e-6);
    for (int j = 0; j < n; j++) s += exp(xr[j] - mx);
    for (int j = 0; j < n; j++) sm[r * n + j] = exp(xr[j] - mx) / s;
  }
  RtTensor in = tens(IR_F32, xs, 3, 2, 7, n), out[2];
  run(g, NULL, 1, &in, out);
  CHECK_CLOSE(out[0].data, ln, rows * n, TOL);
  CHECK_CLOSE(out[1].data, sm, rows * n, TOL);
  rt_tensor_free(&out[0]);
  rt_tensor_free(&out[1]);
  free(xs);
  free(ln);
  free(sm);
  ir_graph_free(g);
}

static void test_reduce(void **state) {
  (void)state;
  for (int axis = 0; axis < 3; axis++) {
    IrGraph *g = ir_graph_new("t");
    IrNode *x = in_f32(g, "x", shp(3, 3, 4, 5));
    IrNode *s = node(g, IR_REDUCE_SUM, 1, &x, (IrAttrs){.axis = axis});
    IrNode *m = node(g, IR_REDUCE_MEAN, 1, &x, (IrAttrs){.axis = axis});
    ir_graph_add_output(g, s, "s");
    ir_graph_add_output(g, m, "m");
    float *xs = rnd(60, -1, 2);
    int64_t d[3] = {3, 4, 5}, rows = 1, inner = 1;
    for (int j = 0; j < 3; j++) *(j < axis ? &rows : &inner) *= d[j];
    double *ws = dalloc(rows), *wm = dalloc(rows);
    for (int64_t r = 0; r < rows; r++) {
      for (int64_t j = 0; j < inner; j++) ws[r] += xs[r * inner + j];
      wm[r] = ws[r] / (double)inner;
    }
    RtTensor in = tens(IR_F32, xs, 3, 3, 4, 5), out[2];
    run(g, NULL, 1, &in, out);
    int64_t ks[3] = {axis > 0 ? 3 : 1, axis > 1 ? 4 : 1, 1};
    check_shape(&out[0], 3, ks);
    CHECK_CLOSE(out[0].data, ws, rows, TOL);
    CHECK_CLOSE(out[1].data, wm, rows, TOL);
    rt_tensor_free(&out[0]);
    rt_tensor_free(&out[1]);
    free(xs);
    free(ws);
    free(wm);
    ir_graph_free(g);
  }
}

static void test_topk_softmax(void **state) {
  (void)state;
  /* random rows vs naive, k = 2 of 8 (the MoE router) */
  {
    IrGraph *g = ir_graph_new("t");
    IrNode *x = in_f32(g, "x", shp(2, 33, 8));
    ir_graph_add_output(g, node(g, IR_TOPK_SOFTMAX, 1, &x, (IrAttrs){.k = 2}), "y");
    float *xs = rnd(33 * 8, -3, 3);
    double *want = dalloc(33 * 8);
    for (int r = 0; r < 33; r++) {
      const float *xr = xs + r * 8;
      int i1 = 0, i2 = -1;
      for (int j = 1; j < 8; j++)
        if (xr[j] > xr[i1]) i1 = j;
      for (int j = 0; j < 8; j++)
        if (j != i1 && (i2 < 0 || xr[j] > xr[i2])) i2 = j;
      double e2 = exp((double)xr[i2] - xr[i1]);
      want[r * 8 + i1] = 1 / (1 + e2);
      want[r * 8 + i2] = e2 / (1 + e2);
    }
    RtTensor in = tens(IR_F32, xs, 2, 33, 8), out;
    run(g, NULL, 1, &in, &out);
    CHECK_CLOSE(out.data, want, 33 * 8, TOL);
    rt_tensor_free(&out);
    free(xs);
    free(want);
    ir_graph_free(g);
  }
  /* ties: the lower index wins */
  {
    IrGraph *g = ir_graph_new("t");
    IrNode *x = in_f32(g, "x", shp(2, 3, 5));
    ir_graph_add_output(g, node(g, IR_TOPK_SOFTMAX, 1, &x, (IrAttrs){.k = 2}), "y");
    float xs[15] = {1, 2, 2, 2, 0,   /* top value 2 three times: indices 1, 2 */
                    5, 1, 5, 1, 5,   /* indices 0, 2 */
                    0, 0, 0, 0, 0};  /* all equal: indices 0, 1 */
    float want[15] = {0, 0.5f, 0.5f, 0, 0, 0.5f, 0, 0.5f, 0, 0, 0.5f, 0.5f, 0, 0, 0};
    RtTensor in = tens(IR_F32, xs, 2, 3, 5), out;
    run(g, NULL, 1, &in, &out);
    const float *y = out.data;
    for (int i = 0; i < 15; i++)
      if (y[i] != want[i]) fail_msg("ties: y[%d] = %g, want %g", i, (double)y[i], (double)want[i]);
    rt_tensor_free(&out);
    ir_graph_free(g);
  }
  /* k = 1 gives a one-hot of the argmax; k = n is a plain softmax */
  {
    IrGraph *g = ir_graph_new("t");
    IrNode *x = in_f32(g, "x", shp(1, 4));
    ir_graph_add_output(g, node(g, IR_TOPK_SOFTMAX, 1, &x, (IrAttrs){.k = 1}), "a");
    ir_graph_add_output(g, node(g, IR_TOPK_SOFTMAX, 1, &x, (IrAttrs){.k = 4}), "b");
    float xs[4] = {0.5f, -1, 3, 1};
    RtTensor in = tens(IR_F32, xs, 1, 4), out[2];
    run(g, NULL, 1, &in, out);
    const float *a = out[0].data;
    assert_true(a[0] == 0 && a[1] == 0 && a[2] == 1 && a[3] == 0);
    double s = 0, want[4];
    for (int j = 0; j < 4; j++) s += exp(xs[j]);
    for (int j = 0; j < 4; j++) want[j] = exp(xs[j]) / s;
    CHECK_CLOSE(out[1].data, want, 4, TOL);
    rt_tensor_free(&out[0]);
    rt_tensor_free(&out[1]);
    ir_graph_free(g);
  }
}

/* ---- contractions ------------------------------------------------------------ */

static void test_linear(void **state) {
  (void)state;
  /* small; then big enough that the product is split into row panels (M
   * large) or column panels (N large) across threads */
  struct { int M0, K, N, bias; } cases[] = {{3, 48, 40, 0}, {3, 48, 40, 1}, {150, 64, 70, 1},
                                           {3, 100, 1000, 1}, {1, 384, 2304, 1}};
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    int K = cases[c].K, N = cases[c].N, M0 = cases[c].M0, M = 2 * M0, with_bias = cases[c].bias;
    IrGraph *g = ir_graph_new("t");
    TW tw;
    tw_init(&tw, g);
    float *wv = rnd(N * K, -1, 1), *bv = rnd(N, -1, 1);
    IrNode *x = in_f32(g, "x", shp(3, 2, M0, K));
    IrNode *w = tw_param(&tw, g, "w", shp(2, N, K), wv);
    IrNode *b = with_bias ? tw_param(&tw, g, "b", shp(1, N), bv) : NULL;
    ir_graph_add_output(g, ir_linear(g, x, w, b), "y");
    float *xs = rnd(M * K, -1, 1);
    double *want = dalloc(M * N);
    for (int m = 0; m < M; m++)
      for (int n = 0; n < N; n++) {
        double s = with_bias ? bv[n] : 0;
        for (int k = 0; k < K; k++) s += (double)xs[m * K + k] * wv[n * K + k];
        want[m * N + n] = s;
      }
    RtTensor in = tens(IR_F32, xs, 3, 2, M0, K), out;
    run(g, &tw.w, 1, &in, &out);
    check_shape(&out, 3, (int64_t[]){2, M0, N});
    if (too_far(rel_l2(out.data, want, M * N)))
      fail_msg("linear case %zu: %.3g", c, rel_l2(out.data, want, M * N));
    rt_tensor_free(&out);
    free(xs);
    free(wv);
    free(bv);
    free(want);
    tw_free(&tw);
    ir_graph_free(g);
  }
}

static void test_matmul(void **state) {
  (void)state;
  struct { IrShape a, b; int tb; } cases[] = {
      {shp(4, 2, 3, 4, 5), shp(4, 2, 3, 5, 6), 0}, /* batched */
      {shp(4, 2, 3, 4, 5), shp(4, 2, 3, 6, 5), 1}, /* batched, b transposed (q k^T) */
      {shp(3, 3, 4, 5), shp(2, 5, 6), 0},          /* shared right operand */
      {shp(2, 4, 5), shp(3, 3, 5, 6), 0},          /* shared left operand */
      {shp(4, 2, 1, 4, 5), shp(3, 3, 6, 5), 1},    /* leading axes broadcast both ways */
      {shp(3, 2, 40, 64), shp(3, 2, 64, 300), 0},  /* few big products: each split in panels */
      {shp(3, 2, 300, 64), shp(3, 2, 50, 64), 1},  /* ... row panels, b transposed */
      {shp(3, 12, 64, 32), shp(3, 12, 64, 32), 1}, /* many: one product per thread */
      {shp(3, 3, 128, 64), shp(2, 64, 70), 0},     /* shared right operand, split */
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    IrGraph *g = ir_graph_new("t");
    IrNode *a = in_f32(g, "a", cases[c].a), *b = in_f32(g, "b", cases[c].b);
    IrNode *y = ir_matmul(g, a, b, cases[c].tb);
    ir_graph_add_output(g, y, "y");
    int64_t na = ir_shape_numel(&a->shape, 1), nb = ir_shape_numel(&b->shape, 1);
    int64_t ny = ir_shape_numel(&y->shape, 1);
    float *av = rnd(na, -1, 1), *bv = rnd(nb, -1, 1);
    double *want = dalloc(ny);
    int ra = a->shape.rank, rb = b->shape.rank, ry = y->shape.rank;
    int64_t M = a->shape.d[ra - 2], K = a->shape.d[ra - 1], N = y->shape.d[ry - 1];
    /* leading shapes as matrices-of-one for the broadcast index helper */
    IrShape la = a->shape, lb = b->shape, ly = y->shape;
    la.rank -= 2;
    lb.rank -= 2;
    ly.rank -= 2;
    int64_t nmat = ny / (M * N);
    for (int64_t i = 0; i < nmat; i++) {
      const float *am = av + bidx(i, &ly, &la) * M * K, *bm = bv + bidx(i, &ly, &lb) * K * N;
      for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
          double s = 0;
          for (int64_t k = 0; k < K; k++)
            s += (double)am[m * K + k] * (cases[c].tb ? bm[n * K + k] : bm[k * N + n]);
          want[(i * M + m) * N + n] = s;
        }
    }
    RtTensor in[2] = {{.dtype = IR_F32, .rank = ra, .data = av}, {.dtype = IR_F32, .rank = rb, .data = bv}};
    for (int j = 0; j < ra; j++) in[0].shape[j] = a->shape.d[j];
    for (int j = 0; j < rb; j++) in[1].shape[j] = b->shape.d[j];
    RtTensor out;
    run(g, NULL, 1, in, &out);
    assert_int_equal(rt_numel(&out), ny);
    if (too_far(rel_l2(out.data, want, ny)))
      fail_msg("matmul case %zu: %.3g", c, rel_l2(out.data, want, ny));
    rt_tensor_free(&out);
    free(av);
    free(bv);
    free(want);
    ir_graph_free(g);
  }
}

static void conv_naive(double *y, const float *x, const float *w, const float *b, int N, int C,
                       int H, int W, int O, int kh, int kw, int s, int p, int groups, int OH, int OW) {
  int cg = C / groups, og = O / groups;
  for (int n = 0; n < N; n++)
    for (int o = 0; o < O; o++)
      for (int i = 0; i < OH; i++)
        for (int j = 0; j < OW; j++) {
          double acc = b ? b[o] : 0;
          int g = o / og;
          for (int c = 0; c < cg; c++)
            for (int ki = 0; ki < kh; ki++)
              for (int kj = 0; kj < kw; kj++) {
                int r = i * s - p + ki, q = j * s - p + kj;
                if (r < 0 || r >= H || q < 0 || q >= W) continue;
                acc += (double)x[((n * C + g * cg + c) * H + r) * W + q] *
                       w[((o * cg + c) * kh + ki) * kw + kj];
              }
          y[((n * O + o) * OH + i) * OW + j] = acc;
        }
}

static void test_conv2d(void **state) {
  (void)state;
  struct { int N, C, H, W, O, k, s, p, groups, bias; } cases[] = {
      {2, 4, 16, 16, 24, 2, 2, 0, 1, 1}, /* patch embedding */
      {1, 4, 9, 7, 6, 3, 1, 1, 2, 0},    /* grouped 3x3, same padding */
      {2, 8, 8, 8, 8, 3, 1, 1, 8, 1},    /* depthwise 3x3 */
      {1, 3, 10, 9, 5, 3, 2, 1, 1, 1},   /* strided */
      {1, 4, 6, 6, 8, 3, 2, 1, 4, 1},    /* grouped with a channel multiplier */
      {1, 4, 32, 32, 64, 2, 2, 0, 1, 1}, /* patch embedding big enough to split */
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    int N = cases[c].N, C = cases[c].C, H = cases[c].H, W = cases[c].W, O = cases[c].O;
    int k = cases[c].k, s = cases[c].s, p = cases[c].p, gr = cases[c].groups;
    int OH = (H + 2 * p - k) / s + 1, OW = (W + 2 * p - k) / s + 1;
    IrGraph *g = ir_graph_new("t");
    TW tw;
    tw_init(&tw, g);
    float *wv = rnd(O * (C / gr) * k * k, -1, 1), *bv = rnd(O, -1, 1);
    IrNode *in3[3];
    in3[0] = in_f32(g, "x", shp(4, N, C, H, W));
    in3[1] = tw_param(&tw, g, "w", shp(4, O, C / gr, k, k), wv);
    in3[2] = tw_param(&tw, g, "b", shp(1, O), bv);
    IrNode *y = node(g, IR_CONV2D, cases[c].bias ? 3 : 2, in3,
                     (IrAttrs){.stride = s, .pad = p, .groups = gr});
    ir_graph_add_output(g, y, "y");
    float *xs = rnd(N * C * H * W, -1, 1);
    double *want = dalloc(N * O * OH * OW);
    conv_naive(want, xs, wv, cases[c].bias ? bv : NULL, N, C, H, W, O, k, k, s, p, gr, OH, OW);
    RtTensor in = tens(IR_F32, xs, 4, N, C, H, W), out;
    run(g, &tw.w, 1, &in, &out);
    check_shape(&out, 4, (int64_t[]){N, O, OH, OW});
    if (too_far(rel_l2(out.data, want, N * O * OH * OW)))
      fail_msg("conv case %zu: %.3g", c, rel_l2(out.data, want, N * O * OH * OW));
    rt_tensor_free(&out);
    free(xs);
    free(wv);
    free(bv);
    free(want);
    tw_free(&tw);
    ir_graph_free(g);
  }
}

static void test_embedding(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("t");
  TW tw;
  tw_init(&tw, g);
  float *table = rnd(11 * 6, -1, 1);
  IrNode *in2[2] = {tw_param(&tw, g, "table", shp(2, 11, 6), table),
                    ir_input(g, "y", IR_I32, shp(1, IR_BATCH), (IrLoc){0})};
  ir_graph_add_output(g, node(g, IR_EMBEDDING, 2, in2, (IrAttrs){0}), "e");
  int32_t idx[3] = {10, 0, 4};
  RtTensor in = tens(IR_I32, idx, 1, 3), out;
  run(g, &tw.w, 3, &in, &out);
  check_shape(&out, 2, (int64_t[]){3, 6});
  for (int i = 0; i < 3; i++)
    assert_memory_equal((float *)out.data + i * 6, table + idx[i] * 6, 6 * sizeof(float));
  rt_tensor_free(&out);
  /* out of range, both ways: an error, never a read outside the table */
  IrErr err = {{0}};
  int32_t bad[3] = {1, 12, 2};
  in.data = bad;
  assert_int_equal(run_err(g, &tw.w, 3, &in, &err), -1);
  assert_non_null(strstr(err.msg, "embedding: index 12 out of range [0, 11)"));
  int32_t neg[3] = {-1, 0, 0};
  in.data = neg;
  assert_int_equal(run_err(g, &tw.w, 3, &in, &err), -1);
  assert_non_null(strstr(err.msg, "embedding: index -1 out of range [0, 11)"));
  free(table);
  tw_free(&tw);
  ir_graph_free(g);
}

/* ---- layout ------------------------------------------------------------------ */

static void test_layout(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("t");
  IrNode *x = in_f32(g, "x", shp(4, 2, 3, 4, 5));
  IrNode *r = ir_reshape(g, x, 3, (IrDim[]){6, 4, 5});
  IrNode *p = ir_permute(g, x, (int[]){2, 0, 3, 1});
  IrNode *s = ir_slice(g, x, 2, 1, 2);
  IrNode *parts[3] = {x, ir_slice(g, x, 1, 0, 1), x};
  IrNode *c = ir_concat(g, 3, parts, 1);
  ir_graph_add_output(g, r, "r");
  ir_graph_add_output(g, p, "p");
  ir_graph_add_output(g, s, "s");
  ir_graph_add_output(g, c, "c");
  float xs[120];
  for (int i = 0; i < 120; i++) xs[i] = (float)i;
  RtTensor in = tens(IR_F32, xs, 4, 2, 3, 4, 5), out[4];
  run(g, NULL, 1, &in, out);
  /* reshape keeps the order */
  check_shape(&out[0], 3, (int64_t[]){6, 4, 5});
  assert_memory_equal(out[0].data, xs, sizeof xs);
  /* permute: y[i0, i1, i2, i3] = x[i1, i3, i0, i2] */
  check_shape(&out[1], 4, (int64_t[]){4, 2, 5, 3});
  const float *y = out[1].data;
  for (int a = 0; a < 4; a++)
    for (int b = 0; b < 2; b++)
      for (int d = 0; d < 5; d++)
        for (int e = 0; e < 3; e++)
          assert_true(y[((a * 2 + b) * 5 + d) * 3 + e] == xs[((b * 3 + e) * 4 + a) * 5 + d]);
  /* slice: axis 2, rows 1..2 */
  check_shape(&out[2], 4, (int64_t[]){2, 3, 2, 5});
  y = out[2].data;
  for (int a = 0; a < 2; a++)
    for (int b = 0; b < 3; b++)
      for (int i = 0; i < 2; i++)
        for (int j = 0; j < 5; j++)
          assert_true(y[((a * 3 + b) * 2 + i) * 5 + j] == xs[((a * 3 + b) * 4 + i + 1) * 5 + j]);
  /* concat along axis 1: x, x[:, 0:1], x */
  check_shape(&out[3], 4, (int64_t[]){2, 7, 4, 5});
  y = out[3].data;
  for (int a = 0; a < 2; a++)
    for (int b = 0; b < 7; b++) {
      int src = b < 3 ? b : b == 3 ? 0 : b - 4;
      assert_memory_equal(y + (a * 7 + b) * 20, xs + (a * 3 + src) * 20, 20 * sizeof(float));
    }
  for (int k = 0; k < 4; k++) rt_tensor_free(&out[k]);
  ir_graph_free(g);
}

static void test_layout_i32(void **state) {
  (void)state;
  /* layout ops move i32 values bit for bit */
  IrGraph *g = ir_graph_new("t");
  IrNode *x = ir_input(g, "y", IR_I32, shp(2, 2, 3), (IrLoc){0});
  IrNode *p = ir_permute(g, x, (int[]){1, 0});
  IrNode *parts[2] = {ir_reshape(g, p, 1, (IrDim[]){6}), ir_slice(g, ir_reshape(g, x, 1, (IrDim[]){6}), 0, 4, 2)};
  ir_graph_add_output(g, ir_concat(g, 2, parts, 0), "c");
  int32_t xs[6] = {-7, 1 << 30, 3, 2147483647, -2147483647 - 1, 0x7fc00001};
  RtTensor in = tens(IR_I32, xs, 2, 2, 3), out;
  run(g, NULL, 1, &in, &out);
  assert_int_equal(out.dtype, IR_I32);
  int32_t want[8] = {-7, 2147483647, 1 << 30, -2147483647 - 1, 3, 0x7fc00001, -2147483647 - 1, 0x7fc00001};
  assert_memory_equal(out.data, want, sizeof want);
  rt_tensor_free(&out);
  ir_graph_free(g);
}

static void test_avgpool(void **state) {
  (void)state;
  struct { int H, W, oh, ow; } cases[] = {{5, 7, 3, 2}, {8, 8, 4, 4}, {6, 6, 1, 1}, {4, 4, 4, 4}};
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    int H = cases[c].H, W = cases[c].W, oh = cases[c].oh, ow = cases[c].ow;
    IrGraph *g = ir_graph_new("t");
    IrNode *x = in_f32(g, "x", shp(4, 2, 3, H, W));
    ir_graph_add_output(g, node(g, IR_AVGPOOL2D, 1, &x, (IrAttrs){.out_h = oh, .out_w = ow}), "y");
    float *xs = rnd(6 * H * W, -1, 1);
    double *want = dalloc(6 * oh * ow);
    for (int pl = 0; pl < 6; pl++)
      for (int i = 0; i < oh; i++)
        for (int j = 0; j < ow; j++) {
          /* window i: floor(i*H/o) .. ceil((i+1)*H/o) - 1 */
          int r0 = (int)floor((double)i * H / oh), r1 = (int)ceil((double)(i + 1) * H / oh);
          int c0 = (int)floor((double)j * W / ow), c1 = (int)ceil((double)(j + 1) * W / ow);
          double s = 0;
          for (int r = r0; r < r1; r++)
            for (int q = c0; q < c1; q++) s += xs[(pl * H + r) * W + q];
          want[(pl * oh + i) * ow + j] = s / ((r1 - r0) * (c1 - c0));
        }
    RtTensor in = tens(IR_F32, xs, 4, 2, 3, H, W), out;
    run(g, NULL, 1, &in, &out);
    check_shape(&out, 4, (int64_t[]){2, 3, oh, ow});
    CHECK_CLOSE(out.data, want, 6 * oh * ow, TOL);
    rt_tensor_free(&out);
    free(xs);
    free(want);
    ir_graph_free(g);
  }
}

static void test_cast(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("t");
  IrNode *x = in_f32(g, "x", shp(1, 6));
  IrNode *i = node(g, IR_CAST, 1, &x, (IrAttrs){.to = IR_I32});
  ir_graph_add_output(g, i, "i");
  ir_graph_add_output(g, node(g, IR_CAST, 1, &i, (IrAttrs){.to = IR_F32}), "back");
  IrNode *h = node(g, IR_CAST, 1, &x, (IrAttrs){.to = IR_F16});
  ir_graph_add_output(g, node(g, IR_CAST, 1, &h, (IrAttrs){.to = IR_F32}), "f16");
  IrNode *bf = node(g, IR_CAST, 1, &x, (IrAttrs){.to = IR_BF16});
  ir_graph_add_output(g, node(g, IR_CAST, 1, &bf, (IrAttrs){.to = IR_F32}), "bf16");
  float xs[6] = {-2.7f, 2.7f, 0.5f, -0.5f, 1.0001f, 1000.06f};
  RtTensor in = tens(IR_F32, xs, 1, 6), out[4];
  run(g, NULL, 1, &in, out);
  assert_int_equal(out[0].dtype, IR_I32);
  int32_t wi[6] = {-2, 2, 0, 0, 1, 1000}; /* toward zero */
  assert_memory_equal(out[0].data, wi, sizeof wi);
  float wb[6] = {-2, 2, 0, 0, 1, 1000};
  assert_memory_equal(out[1].data, wb, sizeof wb);
  const float *f16 = out[2].data, *b16 = out[3].data;
  /* f16: 11 significant bits; 1.0001 -> 1, 1000.06 -> 1000; 2.7 -> 2.69921875 */
  assert_true(f16[4] == 1.0f && f16[5] == 1000.0f && f16[1] == 2.69921875f && f16[2] == 0.5f);
  /* bf16: 8 significant bits; 2.7 -> 2.703125, 1000.06 -> 1000 */
  assert_true(b16[1] == 2.703125f && b16[5] == 1000.0f && b16[4] == 1.0f);
  for (int k = 0; k < 4; k++) rt_tensor_free(&out[k]);
  /* a value that does not fit in i32 is an error */
  float big[6] = {0, 0, 3e9f, 0, 0, 0};
  in.data = big;
  IrErr err = {{0}};
  assert_int_equal(run_err(g, NULL, 1, &in, &err), -1);
  assert_non_null(strstr(err.msg, "does not fit in i32"));
  ir_graph_free(g);
}

static void test_const_and_f16_chain(void **state) {
  (void)state;
  /* CONST f32 and i32 leaves, and an f16 node rounded after each op */
  IrGraph *g = ir_graph_new("t");
  float cv[3] = {0.1f, 0.2f, 0.3f};
  int32_t iv[2] = {2, 0};
  IrNode *c = ir_const(g, IR_F32, shp(1, 3), cv, (IrLoc){0});
  IrNode *ci = ir_const(g, IR_I32, shp(1, 2), iv, (IrLoc){0});
  IrNode *in2[2] = {ir_reshape(g, c, 2, (IrDim[]){3, 1}), ci};
  ir_graph_add_output(g, node(g, IR_EMBEDDING, 2, in2, (IrAttrs){0}), "e");
  IrNode *h = node(g, IR_CAST, 1, &c, (IrAttrs){.to = IR_F16});
  IrNode *h3 = ir_op1f(g, IR_SCALE, h, 3.0f);
  ir_graph_add_output(g, node(g, IR_CAST, 1, &h3, (IrAttrs){.to = IR_F32}), "h");
  RtTensor out[2];
  run(g, NULL, 1, NULL, out);
  const float *e = out[0].data, *hv = out[1].data;
  assert_true(e[0] == 0.3f && e[1] == 0.1f);
  for (int j = 0; j < 3; j++) {
    float r = ir_f16_to_f32(ir_f32_to_f16(cv[j]));
    float want = ir_f16_to_f32(ir_f32_to_f16(r * 3.0f));
    assert_true(hv[j] == want);
  }
  rt_tensor_free(&out[0]);
  rt_tensor_free(&out[1]);
  ir_graph_free(g);
}

/* ---- batch, errors, chains ---------------------------------------------------- */

static void test_symbolic_batch(void **state) {
  (void)state;
  int K = 8, N = 5;
  IrGraph *g = ir_graph_new("t");
  TW tw;
  tw_init(&tw, g);
  float *wv = rnd(N * K, -1, 1), *bv = rnd(N, -1, 1);
  IrNode *x = in_f32(g, "x", shp(3, IR_BATCH, 2, K));
  IrNode *t = in_f32(g, "t", shp(1, IR_BATCH));
  IrNode *y = ir_linear(g, x, tw_param(&tw, g, "w", shp(2, N, K), wv), tw_param(&tw, g, "b", shp(1, N), bv));
  IrNode *tt = ir_reshape(g, t, 3, (IrDim[]){IR_BATCH, 1, 1});
  ir_graph_add_output(g, ir_bin(g, IR_MUL, y, tt), "y");
  for (int B = 1; B <= 3; B += 2) {
    float *xs = rnd(B * 2 * K, -1, 1), *ts = rnd(B, 0, 1);
    double *want = dalloc(B * 2 * N);
    for (int r = 0; r < B * 2; r++)
      for (int n = 0; n < N; n++) {
        double s = bv[n];
        for (int k = 0; k < K; k++) s += (double)xs[r * K + k] * wv[n * K + k];
        want[r * N + n] = s * ts[r / 2];
      }
    RtTensor in[2] = {tens(IR_F32, xs, 3, B, 2, K), tens(IR_F32, ts, 1, B)}, out;
    IrErr err = {{0}};
    assert_int_equal(ref_batch_of(g, in, &err), B);
    run(g, &tw.w, B, in, &out);
    check_shape(&out, 3, (int64_t[]){B, 2, N});
    CHECK_CLOSE(out.data, want, B * 2 * N, TOL);
    rt_tensor_free(&out);
    free(xs);
    free(ts);
    free(want);
  }
  free(wv);
  free(bv);
  tw_free(&tw);
  ir_graph_free(g);
}

static void test_batch_of(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("t");
  in_f32(g, "x", shp(2, -2, 4)); /* 2B rows */
  in_f32(g, "t", shp(1, IR_BATCH));
  IrErr err = {{0}};
  RtTensor in[2] = {tens(IR_F32, NULL, 2, 6, 4), tens(IR_F32, NULL, 1, 3)};
  assert_int_equal(ref_batch_of(g, in, &err), 3);
  in[0].shape[0] = 7; /* not a multiple of 2 */
  assert_int_equal(ref_batch_of(g, in, &err), -1);
  assert_non_null(strstr(err.msg, "input 'x'"));
  in[0].shape[0] = 4; /* B = 2 from x, 3 from t */
  assert_int_equal(ref_batch_of(g, in, &err), -1);
  assert_non_null(strstr(err.msg, "input 't'"));
  in[0].shape[0] = 0;
  assert_int_equal(ref_batch_of(g, in, &err), -1);
  in[0].rank = 3;
  assert_int_equal(ref_batch_of(g, in, &err), -1);
  assert_non_null(strstr(err.msg, "rank"));
  ir_graph_free(g);
  /* no symbolic dims: batch 1 */
  g = ir_graph_new("t");
  in_f32(g, "x", shp(1, 4));
  in[0] = tens(IR_F32, NULL, 1, 4);
  assert_int_equal(ref_batch_of(g, in, &err), 1);
  ir_graph_free(g);
}

static void test_slice_batch_axis(void **state) {
  (void)state;
  /* the classifier-free-guidance pattern: x is [2B, 3]; cond = x[0:B], uncond = x[B:2B] */
  IrGraph *g = ir_graph_new("t");
  IrNode *x = in_f32(g, "x", shp(2, -2, 3));
  IrNode *cond = ir_slice(g, x, 0, 0, IR_BATCH), *unc = ir_slice(g, x, 0, IR_BATCH, IR_BATCH);
  IrNode *d = ir_bin(g, IR_SUB, cond, unc);
  IrNode *parts[2] = {d, cond};
  ir_graph_add_output(g, ir_concat(g, 2, parts, 0), "y");
  for (int B = 1; B <= 3; B++) {
    float xs[18];
    for (int i = 0; i < 6 * B; i++) xs[i] = (float)(i * i);
    RtTensor in = tens(IR_F32, xs, 2, 2 * B, 3), out;
    run(g, NULL, B, &in, &out);
    check_shape(&out, 2, (int64_t[]){2 * B, 3});
    const float *y = out.data;
    for (int r = 0; r < B; r++)
      for (int j = 0; j < 3; j++) {
        assert_true(y[r * 3 + j] == xs[r * 3 + j] - xs[(r + B) * 3 + j]);
        assert_true(y[(B + r) * 3 + j] == xs[r * 3 + j]);
      }
    rt_tensor_free(&out);
  }
  ir_graph_free(g);
}

static void test_input_errors(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("t");
  IrNode *x = in_f32(g, "x", shp(4, IR_BATCH, 4, 16, 16));
  ir_graph_add_output(g, ir_un(g, IR_NEG, x), "y");
  float *xs = calloc(3 * 4 * 16 * 16, sizeof(float));
  IrErr err = {{0}};
  RtTensor in = tens(IR_F32, xs, 4, 3, 4, 16, 16);
  assert_int_equal(run_err(g, NULL, 2, &in, &err), -1);
  assert_string_equal(err.msg, "input 'x': expected f32[2, 4, 16, 16], got f32[3, 4, 16, 16]");
  in = tens(IR_I32, xs, 4, 2, 4, 16, 16);
  assert_int_equal(run_err(g, NULL, 2, &in, &err), -1);
  assert_string_equal(err.msg, "input 'x': expected f32[2, 4, 16, 16], got i32[2, 4, 16, 16]");
  in = tens(IR_F32, xs, 3, 2, 4, 16);
  assert_int_equal(run_err(g, NULL, 2, &in, &err), -1);
  assert_string_equal(err.msg, "input 'x': expected f32[2, 4, 16, 16], got f32[2, 4, 16]");
  in = tens(IR_F32, xs, 4, 2, 4, 16, 16);
  assert_int_equal(run_err(g, NULL, 2, &in, &err), 0);
  assert_int_equal(run_err(g, NULL, 0, &in, &err), -1); /* batch 0 */
  free(xs);
  ir_graph_free(g);
  /* a PARAM without weights */
  g = ir_graph_new("t");
  IrNode *p = ir_param(g, "blocks.0.w", IR_F32, shp(1, 3), (IrLoc){0});
  ir_graph_add_output(g, ir_un(g, IR_NEG, p), "y");
  assert_null(ref_prepare(g, NULL, 1, &err));
  assert_non_null(strstr(err.msg, "param 'blocks.0.w'"));
  ir_graph_free(g);
}

/* A long chain where early values are read late: catches a slot handed back
 * too early, and checks slots are shared (fewer than the nodes). */
static void test_chain_reuse(void **state) {
  (void)state;
  int n = 1000;
  IrGraph *g = ir_graph_new("t");
  IrNode *x = in_f32(g, "x", shp(1, n));
  IrNode *keep = ir_op1f(g, IR_SCALE, x, 2.0f); /* read again at the very end */
  IrNode *h = x;
  for (int i = 0; i < 30; i++) h = ir_op1f(g, i % 2 ? IR_ADD_SCALAR : IR_SCALE, h, i % 2 ? 0.5f : 0.9f);
  IrNode *mid = ir_reshape(g, h, 2, (IrDim[]){10, 100}); /* alias, then more work on it */
  IrNode *m2 = ir_un(g, IR_NEG, ir_op1f(g, IR_SCALE, mid, 3.0f));
  IrNode *y = ir_bin(g, IR_ADD, ir_reshape(g, m2, 1, (IrDim[]){n}), keep);
  ir_graph_add_output(g, y, "y");
  ir_graph_add_output(g, mid, "mid"); /* an alias that is also an output */
  ir_graph_add_output(g, x, "x");     /* an input passed through */
  float *xs = rnd(n, -1, 1);
  double *wy = dalloc(n), *wm = dalloc(n), *wx = dalloc(n);
  for (int j = 0; j < n; j++) {
    double v = xs[j];
    for (int i = 0; i < 30; i++) v = i % 2 ? v + 0.5 : v * 0.9;
    wm[j] = v;
    wy[j] = -(v * 3) + 2.0 * xs[j];
    wx[j] = xs[j];
  }
  RtTensor in = tens(IR_F32, xs, 1, n), out[3];
  IrErr err = {{0}};
  RefExec *e = ref_prepare(g, NULL, 1, &err);
  assert_non_null(e);
  for (int rep = 0; rep < 2; rep++) { /* the same executor twice */
    assert_int_equal(ref_run(e, &in, out, &err), 0);
    CHECK_CLOSE(out[0].data, wy, n, TOL);
    check_shape(&out[1], 2, (int64_t[]){10, 100});
    CHECK_CLOSE(out[1].data, wm, n, TOL);
    CHECK_CLOSE(out[2].data, wx, n, 0);
    for (int k = 0; k < 3; k++) rt_tensor_free(&out[k]);
  }
  ref_free(e);
  free(xs);
  free(wy);
  free(wm);
  free(wx);
  ir_graph_free(g);
}

/* A value read only through an alias, much later, while same-sized values come
 * and go; and a permute whose output must not land on its own input. */
static void test_alias_lifetime(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("t");
  IrNode *x = in_f32(g, "x", shp(2, 20, 50));
  IrNode *a = ir_op1f(g, IR_SCALE, x, 2.0f);
  IrNode *b = ir_reshape(g, a, 2, (IrDim[]){50, 20}); /* read at the very end only */
  IrNode *c = ir_un(g, IR_NEG, x);
  for (int i = 0; i < 6; i++) c = ir_permute(g, ir_op1f(g, IR_ADD_SCALAR, c, 1.0f), (int[]){1, 0});
  IrNode *y = ir_bin(g, IR_ADD, ir_reshape(g, c, 2, (IrDim[]){50, 20}), b);
  ir_graph_add_output(g, y, "y");
  float *xs = rnd(1000, -1, 1);
  double *want = dalloc(1000);
  for (int j = 0; j < 1000; j++) want[j] = (-xs[j] + 6.0) + 2.0 * xs[j]; /* six transposes: identity */
  RtTensor in = tens(IR_F32, xs, 2, 20, 50), out;
  run(g, NULL, 1, &in, &out);
  CHECK_CLOSE(out.data, want, 1000, TOL);
  rt_tensor_free(&out);
  free(xs);
  free(want);
  ir_graph_free(g);
}

/* ---- a small attention block --------------------------------------------------- */

static void test_attention(void **state) {
  (void)state;
  enum { B = 2, T = 16, D = 32, H = 4, HD = D / H };
  IrGraph *g = ir_graph_new("t");
  TW tw;
  tw_init(&tw, g);
  float *wqkv = rnd(3 * D * D, -0.3f, 0.3f), *bqkv = rnd(3 * D, -0.1f, 0.1f);
  float *wp = rnd(D * D, -0.3f, 0.3f), *bp = rnd(D, -0.1f, 0.1f);
  IrNode *x = in_f32(g, "x", shp(3, IR_BATCH, T, D));
  IrNode *qkv = ir_linear(g, x, tw_param(&tw, g, "qkv.weight", shp(2, 3 * D, D), wqkv),
                          tw_param(&tw, g, "qkv.bias", shp(1, 3 * D), bqkv));
  IrNode *r = ir_reshape(g, qkv, 5, (IrDim[]){IR_BATCH, T, 3, H, HD});
  IrNode *p = ir_permute(g, r, (int[]){2, 0, 3, 1, 4}); /* [3, B, H, T, HD] */
  IrNode *q = ir_reshape(g, ir_slice(g, p, 0, 0, 1), 4, (IrDim[]){IR_BATCH, H, T, HD});
  IrNode *k = ir_reshape(g, ir_slice(g, p, 0, 1, 1), 4, (IrDim[]){IR_BATCH, H, T, HD});
  IrNode *v = ir_reshape(g, ir_slice(g, p, 0, 2, 1), 4, (IrDim[]){IR_BATCH, H, T, HD});
  IrNode *s = ir_op1f(g, IR_SCALE, ir_matmul(g, q, k, 1), 1.0f / sqrtf((float)HD));
  IrNode *o = ir_matmul(g, ir_un(g, IR_SOFTMAX, s), v, 0); /* [B, H, T, HD] */
  IrNode *ot = ir_reshape(g, ir_permute(g, o, (int[]){0, 2, 1, 3}), 3, (IrDim[]){IR_BATCH, T, D});
  IrNode *y = ir_linear(g, ot, tw_param(&tw, g, "proj.weight", shp(2, D, D), wp),
                        tw_param(&tw, g, "proj.bias", shp(1, D), bp));
  ir_graph_add_output(g, y, "y");

  float *xs = rnd(B * T * D, -1, 1);
  static double qk[B][T][3 * D], att[B][T][D], want[B * T * D];
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++)
      for (int n = 0; n < 3 * D; n++) {
        double acc = bqkv[n];
        for (int j = 0; j < D; j++) acc += (double)xs[(b * T + t) * D + j] * wqkv[n * D + j];
        qk[b][t][n] = acc;
      }
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++)
      for (int t = 0; t < T; t++) {
        double sc[T], mx = -INFINITY, sum = 0;
        for (int u = 0; u < T; u++) {
          double d = 0;
          for (int j = 0; j < HD; j++) d += qk[b][t][h * HD + j] * qk[b][u][D + h * HD + j];
          sc[u] = d / sqrt(HD);
          mx = fmax(mx, sc[u]);
        }
        for (int u = 0; u < T; u++) sum += sc[u] = exp(sc[u] - mx);
        for (int j = 0; j < HD; j++) {
          double acc = 0;
          for (int u = 0; u < T; u++) acc += sc[u] / sum * qk[b][u][2 * D + h * HD + j];
          att[b][t][h * HD + j] = acc;
        }
      }
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++)
      for (int n = 0; n < D; n++) {
        double acc = bp[n];
        for (int j = 0; j < D; j++) acc += att[b][t][j] * wp[n * D + j];
        want[(b * T + t) * D + n] = acc;
      }
  RtTensor in = tens(IR_F32, xs, 3, B, T, D), out;
  run(g, &tw.w, B, &in, &out);
  check_shape(&out, 3, (int64_t[]){B, T, D});
  CHECK_CLOSE(out.data, want, B * T * D, TOL);
  rt_tensor_free(&out);
  free(xs);
  free(wqkv);
  free(bqkv);
  free(wp);
  free(bp);
  tw_free(&tw);
  ir_graph_free(g);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_unary),
      cmocka_unit_test(test_binary_broadcast),
      cmocka_unit_test(test_max_nan_and_values),
      cmocka_unit_test(test_layernorm_softmax),
      cmocka_unit_test(test_reduce),
      cmocka_unit_test(test_topk_softmax),
      cmocka_unit_test(test_linear),
      cmocka_unit_test(test_matmul),
      cmocka_unit_test(test_conv2d),
      cmocka_unit_test(test_embedding),
      cmocka_unit_test(test_layout),
      cmocka_unit_test(test_layout_i32),
      cmocka_unit_test(test_avgpool),
      cmocka_unit_test(test_cast),
      cmocka_unit_test(test_const_and_f16_chain),
      cmocka_unit_test(test_symbolic_batch),
      cmocka_unit_test(test_batch_of),
      cmocka_unit_test(test_slice_batch_axis),
      cmocka_unit_test(test_input_errors),
      cmocka_unit_test(test_chain_reuse),
      cmocka_unit_test(test_alias_lifetime),
      cmocka_unit_test(test_attention),
  };
  return tu_run_group(tests, NULL, NULL);
}
