/*
 * test_scalar.c - one semantics per elementwise op: constant folding, the
 * reference executor and the emulated device give the same bits.
 *
 * Every UNARY and BINARY op of ops.def (each attribute-taking op at several
 * values of f, NaN and infinities among them; casts through f16, bf16 and
 * i32) is fed quiet NaNs of both signs and two payloads, infinities, both zeros,
 * subnormals, the float range's ends and ordinary values; binary ops every
 * pair of them.  Three graphs compute the
 * same cases: one over CONSTs run through fold-constants (for the f32 cases
 * over f32 constants, all that folding handles), one over INPUTs run on the "ref" backend, the same one
 * lowered by the code generator and run on the "emu" backend.  Each output
 * element must be bit for bit the same, NaNs included (ir/scalar.h makes
 * every NaN result one NaN).  The test fails if an elementwise op of the
 * table has no case here.
 */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "testutil.h"

#include "codegen/emu.h"
#include "ir/scalar.h"
#include "codegen/plan.h"
#include "passes/passes.h"
#include "runtime/backend.h"
#include "runtime/tensor.h"
#include "runtime/weights.h"

static const IrLoc NOLOC = {0};


/* The inputs of unary ops; binary ops take every pair of them. */
static float values[64];
static int n_values, n_pair_values;

static void make_values(void) {
  const uint32_t special[] = {
      /* quiet NaNs of both signs and with a payload; signalling NaNs are
       * outside the contract: compilers assume there are none (gcc folds
       * powf(x, 0) to 1, which glibc's powf gives only for quiet NaNs) */
      0x7fc00000u, 0xffc00000u, 0x7fc12345u,
      0x7f800000u, 0xff800000u, /* +-inf */
      0x00000000u, 0x80000000u, /* +-0 */
      0x00000001u, 0x80000001u, 0x007fffffu, 0x807fffffu, 0x00012345u, /* subnormals */
      0x00800000u, 0x80800000u, /* +-FLT_MIN */
      0x7f7fffffu, 0xff7fffffu, /* +-FLT_MAX */
  };
  const float ordinary[] = {1.0f,  -1.0f, 0.5f,   -0.5f,  2.0f,   -2.0f, 3.0f,    1.5f,  -1.5f,
                            0.1f,  -0.1f, 10.0f,  -10.0f, 88.8f,  -88.0f, -104.0f, 20.0f, 1e-3f,
                            100.0f, -100.0f, 65504.0f, 65520.0f, 3.14159f, 1e30f, -1e30f, 0.75f,
                            1e-7f, -3.7f, 0.044715f};
  n_values = 0;
  for (size_t i = 0; i < sizeof special / sizeof *special; i++) values[n_values++] = tu_from_bits(special[i]);
  for (size_t i = 0; i < sizeof ordinary / sizeof *ordinary; i++) values[n_values++] = ordinary[i];
  n_pair_values = n_values;
}

/* The input of a unary case. */
enum { SRC_VALUES, SRC_INTS, SRC_IN_RANGE };

/* One output of the graphs: op over its inputs at f; a cast to f16 or bf16
 * is cast back to f32. */
typedef struct {
  IrOp op;
  float f;
  IrDType to;
  int src;
} Case;

static Case cases[256];
static int n_cases;

static void add_case(IrOp op, float f, IrDType to, int src) { cases[n_cases++] = (Case){op, f, to, src}; }

static void make_cases(void) {
  const float fs[] = {2.0f, 3.0f, 0.5f, -0.5f, -1.0f, -2.0f, 1.0f, 0.0f, -0.0f, 1.7f, -3.0f, 1e-3f,
                      INFINITY, -INFINITY, NAN};
  n_cases = 0;
  for (int o = 0; o < IR_OP_COUNT; o++) {
    IrOp op = (IrOp)o;
    IrOpClass k = ir_op_class(op);
    if (k == IR_CLASS_BINARY) {
      add_case(op, 0, IR_F32, 0);
    } else if (op == IR_CAST) {
      add_case(op, 0, IR_F32, SRC_VALUES);   /* f32 -> f32: folds */
      add_case(op, 0, IR_F16, SRC_VALUES);   /* through f16 and back */
      add_case(op, 0, IR_BF16, SRC_VALUES);  /* through bf16 and back */
      add_case(op, 0, IR_F32, SRC_INTS);     /* i32 -> f32 */
      add_case(op, 0, IR_I32, SRC_IN_RANGE); /* f32 -> i32, values that fit */
    } else if (k == IR_CLASS_UNARY) {
      if (ir_op_attrs(op) & (1u << IR_ATTR_F))
        for (size_t i = 0; i < sizeof fs / sizeof *fs; i++) add_case(op, fs[i], IR_F32, 0);
      else
        add_case(op, 0, IR_F32, 0);
    }
  }
  /* every elementwise op of the table is here */
  for (int o = 0; o < IR_OP_COUNT; o++) {
    IrOpClass k = ir_op_class((IrOp)o);
    if (k != IR_CLASS_UNARY && k != IR_CLASS_BINARY) continue;
    int seen = 0;
    for (int c = 0; c < n_cases; c++) seen |= cases[c].op == (IrOp)o;
    if (!seen) fail_msg("elementwise op %s has no case", ir_op_name((IrOp)o));
  }
}

/* The i32 inputs of the i32 -> f32 cast, and the floats that fit in i32. */
static const int32_t ints[] = {0, 1, -1, 7, 16777217, -16777217, 2147483647, -2147483647 - 1, 123456789};
#define N_INTS ((int)(sizeof ints / sizeof *ints))
static float in_range[] = {0.0f, -0.0f, 0.5f, -0.5f, 1.9f, -1.9f, 2147483520.0f, -2147483648.0f, 1e9f, 1e-40f, 3.5f};
#define N_IN_RANGE ((int)(sizeof in_range / sizeof *in_range))

static int64_t case_len(const Case *c) {
  if (ir_op_class(c->op) == IR_CLASS_BINARY) return (int64_t)n_pair_values * n_pair_values;
  return c->src == SRC_INTS ? N_INTS : c->src == SRC_IN_RANGE ? N_IN_RANGE : n_values;
}

/* The leaf values: x (unary), a and b (binary pairs), i (ints). */
static float *xa, *xb;

/* Builds the graph of every case over leaves made by `leaf`. */
typedef IrNode *(*LeafFn)(IrGraph *g, const char *name, IrDType t, int64_t n, const void *data);

static IrNode *const_leaf(IrGraph *g, const char *name, IrDType t, int64_t n, const void *data) {
  (void)name;
  return ir_const(g, t, ir_shape_make(1, (IrDim[]){n}), data, NOLOC);
}

static IrNode *input_leaf(IrGraph *g, const char *name, IrDType t, int64_t n, const void *data) {
  (void)data;
  return ir_input(g, name, t, ir_shape_make(1, (IrDim[]){n}), NOLOC);
}

static IrGraph *build(LeafFn leaf) {
  IrGraph *g = ir_graph_new("forward");
  IrNode *x = leaf(g, "x", IR_F32, n_values, values);
  IrNode *a = leaf(g, "a", IR_F32, (int64_t)n_pair_values * n_pair_values, xa);
  IrNode *b = leaf(g, "b", IR_F32, (int64_t)n_pair_values * n_pair_values, xb);
  IrNode *i = leaf(g, "i", IR_I32, N_INTS, ints);
  IrNode *r = leaf(g, "r", IR_F32, N_IN_RANGE, in_range);
  IrErr err = {{0}};
  for (int k = 0; k < n_cases; k++) {
    const Case *c = &cases[k];
    IrNode *y;
    if (ir_op_class(c->op) == IR_CLASS_BINARY) {
      y = ir_bin(g, c->op, a, b);
    } else if (c->op == IR_CAST) {
      IrAttrs at = {.to = c->to};
      IrNode *in = c->src == SRC_INTS ? i : c->src == SRC_IN_RANGE ? r : x;
      y = ir_node_new(g, IR_CAST, 1, &in, &at, NOLOC, &err);
      if (y && (y->dtype == IR_F16 || y->dtype == IR_BF16)) {
        IrAttrs back = {.to = IR_F32};
        y = ir_node_new(g, IR_CAST, 1, &y, &back, NOLOC, &err);
      }
      if (!y) fail_msg("%s", err.msg);
    } else {
      y = ir_op1f(g, c->op, x, c->f);
    }
    char name[32];
    snprintf(name, sizeof name, "case%d", k);
    ir_graph_add_output(g, y, name);
  }
  return g;
}

/* "relu", "pow_scalar f=0.5", "cast to f16" */
static const char *case_name(const Case *c, char *buf, size_t n) {
  if (c->op == IR_CAST)
    snprintf(buf, n, "cast %s to %s", c->src == SRC_INTS ? "i32" : "f32", ir_dtype_name(c->to));
  else if (ir_op_attrs(c->op) & (1u << IR_ATTR_F))
    snprintf(buf, n, "%s f=%g", ir_op_name(c->op), (double)c->f);
  else
    snprintf(buf, n, "%s", ir_op_name(c->op));
  return buf;
}

/* The input(s) of element e of case c, for messages. */
static const char *input_desc(const Case *c, int64_t e, char *buf, size_t n) {
  if (ir_op_class(c->op) == IR_CLASS_BINARY)
    snprintf(buf, n, "(%g [%08x], %g [%08x])", (double)xa[e], tu_bits(xa[e]), (double)xb[e], tu_bits(xb[e]));
  else if (c->src == SRC_INTS)
    snprintf(buf, n, "(%d)", ints[e]);
  else if (c->src == SRC_IN_RANGE)
    snprintf(buf, n, "(%g [%08x])", (double)in_range[e], tu_bits(in_range[e]));
  else
    snprintf(buf, n, "(%g [%08x])", (double)values[e], tu_bits(values[e]));
  return buf;
}

static RtTensor *run_backend(RtBackend *b, const RtModel *m, IrGraph *g) {
  IrErr err = {{0}};
  if (b->prepare(b, m, &err)) fail_msg("%s prepare: %s", b->name, err.msg);
  RtTensor in[5] = {rt_tensor_new(IR_F32, 1, (int64_t[]){n_values}),
                    rt_tensor_new(IR_F32, 1, (int64_t[]){(int64_t)n_pair_values * n_pair_values}),
                    rt_tensor_new(IR_F32, 1, (int64_t[]){(int64_t)n_pair_values * n_pair_values}),
                    rt_tensor_new(IR_I32, 1, (int64_t[]){N_INTS}), rt_tensor_new(IR_F32, 1, (int64_t[]){N_IN_RANGE})};
  memcpy(in[0].data, values, (size_t)n_values * 4);
  memcpy(in[1].data, xa, (size_t)n_pair_values * n_pair_values * 4);
  memcpy(in[2].data, xb, (size_t)n_pair_values * n_pair_values * 4);
  memcpy(in[3].data, ints, sizeof ints);
  memcpy(in[4].data, in_range, sizeof in_range);
  RtTensor *out = calloc((size_t)g->n_outputs, sizeof *out);
  if (b->run(b, in, out, &err)) fail_msg("%s run: %s", b->name, err.msg);
  for (int k = 0; k < 5; k++) rt_tensor_free(&in[k]);
  return out;
}

static void free_outputs(RtTensor *t, int n) {
  for (int k = 0; k < n; k++) rt_tensor_free(&t[k]);
  free(t);
}

static void test_same_bits(void **state) {
  (void)state;
  make_values();
  make_cases();
  int64_t np = (int64_t)n_pair_values * n_pair_values;
  xa = malloc((size_t)np * 4);
  xb = malloc((size_t)np * 4);
  for (int i = 0; i < n_pair_values; i++)
    for (int j = 0; j < n_pair_values; j++) {
      xa[i * n_pair_values + j] = values[i];
      xb[i * n_pair_values + j] = values[j];
    }
  IrErr err = {{0}};

  /* folding */
  IrGraph *fg = build(const_leaf);
  if (pass_run_pipeline(fg, "fold-constants", NULL, &err)) fail_msg("fold: %s", err.msg);

  /* the reference executor */
  IrGraph *g = build(input_leaf);
  Weights w;
  if (weights_random(g, 1, &w, &err)) fail_msg("%s", err.msg);
  RtBackend *ref = rt_backend_new("ref", &err);
  assert_non_null(ref);
  RtModel rm = {.graph = g, .weights = &w, .batch = 1};
  RtTensor *want = run_backend(ref, &rm, g);

  /* the emulated device */
  CgOptions o = {.precision = IR_F32, .batch = 1, .model = "test_scalar"};
  CgPlan *p;
  if (cg_plan_build(g, &o, &p, &err)) fail_msg("cg_plan_build: %s", err.msg);
  char *blob = calloc(1, (size_t)p->weights_bytes + 1);
  if (cg_plan_fill_weights(p, weights_values(&w), blob, &err)) fail_msg("%s", err.msg);
  RtBackend *emu = rt_backend_new("emu", &err);
  assert_non_null(emu);
  RtModel em = {.plan = p, .blob = blob};
  RtTensor *got = run_backend(emu, &em, g);

  int folded = 0, compared = 0;
  for (int k = 0; k < n_cases; k++) {
    const Case *c = &cases[k];
    char cn[64], id[96];
    int64_t n = case_len(c);
    assert_int_equal(rt_numel(&want[k]), n);
    assert_int_equal(rt_numel(&got[k]), n);
    const IrNode *fn = fg->outputs[k];
    /* folding handles every f32 case over f32 constants */
    int folds = c->to == IR_F32 && c->src == SRC_VALUES;
    if (folds && fn->op != IR_CONST) fail_msg("%s was not folded", case_name(c, cn, sizeof cn));
    folded += folds;
    for (int64_t e = 0; e < n; e++) {
      uint32_t r = ((const uint32_t *)want[k].data)[e], m = ((const uint32_t *)got[k].data)[e];
      uint32_t f = folds ? ((const uint32_t *)fn->data)[e] : r;
      if (r != m || r != f)
        fail_msg("%s%s: folded %08x (%g), reference %08x (%g), emulated %08x (%g)", case_name(c, cn, sizeof cn),
                 input_desc(c, e, id, sizeof id), f, (double)tu_from_bits(f), r, (double)tu_from_bits(r), m,
                 (double)tu_from_bits(m));
      compared++;
    }
  }
  if (getenv("TEST_SCALAR_VERBOSE"))
    fprintf(stderr, "%d cases (%d folded), %d elements compared\n", n_cases, folded, compared);

  free_outputs(want, g->n_outputs);
  free_outputs(got, g->n_outputs);
  rt_backend_free(ref);
  rt_backend_free(emu);
  cg_plan_free(p);
  free(blob);
  weights_free(&w);
  ir_graph_free(g);
  ir_graph_free(fg);
  free(xa);
  free(xb);
}

/* The kernel text calls the same functions: each elementwise node's map
 * kernel is a call of ditc_<op>, and the source carries ir/scalar.h. */
static void test_kernels_call_scalar_h(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("forward");
  IrNode *x = ir_input(g, "x", IR_F32, ir_shape_make(1, (IrDim[]){8}), NOLOC);
  IrNode *y = ir_bin(g, IR_MAX, ir_op1f(g, IR_POW_SCALAR, ir_un(g, IR_RELU, x), 0.5f), x);
  ir_graph_add_output(g, y, "y");
  IrErr err = {{0}};
  CgOptions o = {.precision = IR_F32, .batch = 1};
  CgPlan *p;
  if (cg_plan_build(g, &o, &p, &err)) fail_msg("%s", err.msg);
  assert_non_null(strstr(p->source, "DITC_SCALAR_FN float ditc_relu(float x)"));
  assert_non_null(strstr(p->source, "ditc_relu("));
  assert_non_null(strstr(p->source, "ditc_pow_scalar("));
  assert_non_null(strstr(p->source, "ditc_max("));
  cg_plan_free(p);
  ir_graph_free(g);
}

static int teardown(void **state) {
  (void)state;
  emu_shutdown();
  return 0;
}

/* The quantisation scalars (ir/scalar.h) and ir_eval_quant: round half to
 * even, clamp at +-127, NaN to 0, a zero row's scale 1, and qlinear's sum
 * exact where an f32 sum is not. */
/* ---- fp8 e4m3: ir/scalar.h's conversions against a host model ------------ */

/* The model: OCP FP8 E4M3 from its definition, in double.  Code c (sign
 * bit 7, exponent bits 6..3, mantissa bits 2..0) is NaN when its low seven
 * bits are all ones, else (-1)^s 2^(e-7) (1 + m/8), or m 2^-9 when e = 0. */
static double e4m3_model_value(int c) {
  int e = (c >> 3) & 15, m = c & 7;
  double v = e ? ldexp(1.0 + m / 8.0, e - 7) : ldexp((double)m, -9);
  return (c & 0x80) ? -v : v;
}
/* Encoding by search: the nearest of the 127 non-negative finite codes to
 * |x|, a tie to the one with an even mantissa (an even code), beyond 448
 * (infinities too) 448; the sign kept (-0 is 0x80); NaN 0x7f. */
static int e4m3_model_encode(float x) {
  if (x != x) return 0x7f;
  double a = fabs((double)x);
  int best = 0x7e;
  if (a < 448.0) {
    double bd = INFINITY;
    for (int c = 0; c <= 0x7e; c++) {
      double d = fabs(e4m3_model_value(c) - a);
      if (d < bd || (d == bd && !(c & 1))) bd = d, best = c;
    }
  }
  return (signbit(x) ? 0x80 : 0) | best;
}

static void test_e4m3_conversion(void **state) {
  (void)state;
  /* every code decodes to the model's value (NaN to the canonical NaN),
   * and every finite one encodes back to itself */
  for (int c = 0; c < 256; c++) {
    float v = ditc_e4m3_to_f32((unsigned char)c);
    if ((c & 0x7f) == 0x7f) {
      uint32_t u;
      memcpy(&u, &v, 4);
      assert_true(v != v);
      assert_int_equal(u, 0x7fffffffu);
      assert_int_equal(ditc_f32_to_e4m3(v), 0x7f);
      continue;
    }
    if ((double)v != e4m3_model_value(c) || !!signbit(v) != !!(c & 0x80)) fail_msg("code 0x%02x decodes to %a", c, v);
    assert_int_equal(ditc_f32_to_e4m3(v), c);
  }
  assert_true(ditc_e4m3_to_f32(0x7e) == 448.0f && ditc_e4m3_to_f32(0x01) == 0x1p-9f && ditc_e4m3_to_f32(0x08) == 0x1p-6f);
  /* encoding: each pair of neighbouring codes' midpoint (a tie) and the
   * floats next to it, both signs; then a sweep of magnitudes from below
   * the smallest subnormal to beyond 448, and the special values */
  int n = 0;
  for (int c = 0; c < 0x7e; c++) {
    float mid = (float)((e4m3_model_value(c) + e4m3_model_value(c + 1)) / 2); /* exact: 5 bits */
    float t[5] = {mid, nextafterf(mid, 0.0f), nextafterf(mid, INFINITY), ditc_e4m3_to_f32((unsigned char)c), mid * 0.999f};
    for (int k = 0; k < 5; k++)
      for (int s = 0; s < 2; s++, n++) {
        float x = s ? -t[k] : t[k];
        if (ditc_f32_to_e4m3(x) != e4m3_model_encode(x))
          fail_msg("encode(%a) = 0x%02x, the model 0x%02x", x, ditc_f32_to_e4m3(x), e4m3_model_encode(x));
      }
  }
  for (float x = 0x1p-14f; x < 2000.0f; x *= 1.0009765625f, n++) /* 2^-14 .. 2000, ~1/1024 apart */
    for (int s = 0; s < 2; s++) {
      float y = s ? -x : x;
      if (ditc_f32_to_e4m3(y) != e4m3_model_encode(y))
        fail_msg("encode(%a) = 0x%02x, the model 0x%02x", y, ditc_f32_to_e4m3(y), e4m3_model_encode(y));
    }
  const float special[] = {0.0f, -0.0f, 448.0f, 463.99997f, 464.0f, 480.0f, 1e30f, FLT_MAX, INFINITY, -INFINITY,
                           0x1p-10f, 0x1.8p-10f, 0x1p-149f, 0x1p-6f, 0x1.fp-7f, NAN, -NAN};
  for (size_t k = 0; k < sizeof special / sizeof special[0]; k++, n++)
    assert_int_equal(ditc_f32_to_e4m3(special[k]), e4m3_model_encode(special[k]));
  assert_true(n > 10000);
  /* the saturation, tie and NaN rules spelled out */
  assert_int_equal(ditc_f32_to_e4m3(INFINITY), 0x7e);
  assert_int_equal(ditc_f32_to_e4m3(-1e9f), 0xfe);
  assert_int_equal(ditc_f32_to_e4m3(NAN), 0x7f);
  assert_int_equal(ditc_f32_to_e4m3(-0.0f), 0x80);
  assert_int_equal(ditc_f32_to_e4m3(0x1p-10f), 0x00);   /* half the smallest subnormal: tie to 0 */
  assert_int_equal(ditc_f32_to_e4m3(0x1.8p-9f), 0x02);  /* 1.5 subnormal steps: tie to 2 */
  assert_int_equal(ditc_f32_to_e4m3(1.0625f), 0x38);    /* 1 + 1/16: tie to 1.0 */
  assert_int_equal(ditc_f32_to_e4m3(1.1875f), 0x3a);    /* 1 + 3/16: tie to 1.25 */
  /* quantize at a scale and the qlinear scaling */
  assert_true(ditc_quantize_e4m3(3.0f, 2.0f) == 1.5f);
  assert_true(ditc_quantize_e4m3(1e6f, 1.0f) == 448.0f);
  assert_true(ditc_qlinear_e4m3_scale(2.0f, 0.5f, 4.0f) == 4.0f);
}

static void test_quant_semantics(void **state) {
  (void)state;
  static const float cases[][3] = {/* x, s, level */
                                   {2.5f, 1, 2},     {3.5f, 1, 4},   {-2.5f, 1, -2}, {-3.5f, 1, -4},
                                   {0.49f, 1, 0},    {200, 1, 127},  {-200, 1, -127}, {1.0f, 0.5f, 2},
                                   {127.5f, 1, 127}, {-0.0f, 1, 0}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    assert_true(ditc_quantize_i8(cases[i][0], cases[i][1]) == cases[i][2]);
  assert_true(ditc_quantize_i8(NAN, 1) == 0 && ditc_quantize_i8(1, 0) == 127 && ditc_quantize_i8(-1, 0) == -127);
  assert_true(ditc_qscale(0, 127) == 1 && ditc_qscale(254, 127) == 2);
  assert_true(isnan(ditc_qscale(ditc_absmax(ditc_absmax(0, NAN), 3), 127)));
  assert_true(ditc_absmax(ditc_absmax(0, -5), 3) == 5);
  assert_true(ditc_dequantize(-127, 0.5f) == -63.5f);

  /* qscale per row and quantize through ir_eval_quant */
  float w[6] = {1, -2, 0.5f, 0, 0, 0}, sc[2], q[6];
  IrArray wa = {IR_F32, 2, {2, 3}, w}, sa = {IR_F32, 2, {2, 1}, sc}, qa = {IR_I8, 2, {2, 3}, q};
  ir_eval_quant(IR_QSCALE, &(IrAttrs){.axis = 1, .f = 127}, &sa, 1, &wa);
  assert_true(sc[0] == 2.0f / 127.0f && sc[1] == 1.0f);
  ir_eval_quant(IR_QUANTIZE, &(IrAttrs){0}, &qa, 2, (IrArray[]){wa, sa});
  assert_true(q[0] == 64 && q[1] == -127 && q[2] == 32 && q[3] == 0); /* 63.5 -> 64, 31.75 -> 32 */

  /* 1100 x (127 * 127), 3 x 1, 1100 x -(127 * 127): exactly 3 in int32 */
  enum { K = 2203 };
  float *xq = malloc(K * sizeof *xq), *wq = malloc(K * sizeof *wq), one = 1, y = 0;
  for (int k = 0; k < K; k++) {
    xq[k] = k < 1100 || k >= 1103 ? 127 : 1;
    wq[k] = k < 1100 ? 127 : k < 1103 ? 1 : -127;
  }
  IrArray in[4] = {{IR_I8, 2, {1, K}, xq}, {IR_F32, 2, {1, 1}, &one}, {IR_I8, 2, {1, K}, wq}, {IR_F32, 2, {1, 1}, &one}};
  IrArray ya = {IR_F32, 2, {1, 1}, &y};
  ir_eval_quant(IR_QLINEAR, &(IrAttrs){0}, &ya, 4, in);
  assert_true(y == 3.0f);
  free(xq);
  free(wq);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_same_bits),
      cmocka_unit_test(test_kernels_call_scalar_h),
      cmocka_unit_test(test_quant_semantics),
      cmocka_unit_test(test_e4m3_conversion),
  };
  return tu_run_group(tests, NULL, teardown);
}
