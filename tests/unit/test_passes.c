/*
 * test_passes.c - each pass on a small graph (node counts, dump text, folded
 * values) and the pass manager's handling of pipelines and dumps.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "testutil.h"

#include "passes/calib.h"
#include "passes/passes.h"
#include "passes/prune.h"

static const IrLoc NOLOC = {0};
static const PassOptions OPTS = {.verify = 1};


static void expect_dump(IrGraph *g, const char *want) {
  char *text = tu_dump_str(g);
  assert_string_equal(text, want);
  free(text);
}

static void run(IrGraph *g, const char *pipeline) {
  IrErr e = {{0}};
  if (pass_run_pipeline(g, pipeline, &OPTS, &e)) fail_msg("%s: %s", pipeline, e.msg);
}

static IrNode *input(IrGraph *g, const char *name, int rank, const IrDim *d) {
  return ir_input(g, name, IR_F32, ir_shape_make(rank, d), NOLOC);
}

static IrNode *node1(IrGraph *g, IrOp op, IrNode *x, IrAttrs a) {
  IrErr e;
  IrNode *n = ir_node_new(g, op, 1, &x, &a, NOLOC, &e);
  if (!n) fail_msg("%s", e.msg);
  return n;
}

static IrNode *fconst(IrGraph *g, int n, const float *v) {
  return ir_const(g, IR_F32, ir_shape_make(1, (IrDim[]){n}), v, NOLOC);
}

/* ---- dce ------------------------------------------------------------------ */

static void test_dce(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("f");
  IrNode *x = input(g, "x", 2, (IrDim[]){IR_BATCH, 8});
  IrNode *unused = input(g, "t", 1, (IrDim[]){IR_BATCH});
  IrNode *w = ir_param(g, "dead.weight", IR_F32, ir_shape_make(2, (IrDim[]){4, 8}), NOLOC);
  ir_linear(g, x, w, NULL); /* dead */
  IrNode *y = ir_un(g, IR_SILU, x);
  ir_un(g, IR_EXP, y); /* dead */
  ir_graph_add_output(g, y, "out");
  (void)unused;
  assert_int_equal(g->n_nodes, 6);
  run(g, "dce");
  expect_dump(g,
              "graph f {\n"
              "  %0 = input \"x\" : f32[B, 8]\n"
              "  %1 = input \"t\" : f32[B]\n"
              "  %2 = silu(%0) : f32[B, 8]\n"
              "  return %2 \"out\"\n"
              "}\n");
  ir_graph_free(g);
}

/* ---- cse ------------------------------------------------------------------ */

static void test_cse_merges_subexpressions(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("f");
  IrNode *x = input(g, "x", 2, (IrDim[]){IR_BATCH, 8});
  IrNode *y = input(g, "y", 2, (IrDim[]){IR_BATCH, 8}); /* same type, other name: kept */
  /* Two copies of scale(silu(x), 2) + the same const. */
  float v[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  IrNode *t[2];
  for (int i = 0; i < 2; i++) {
    IrNode *c = fconst(g, 8, v);
    IrNode *s = ir_op1f(g, IR_SCALE, ir_un(g, IR_SILU, x), 2.0f);
    t[i] = ir_bin(g, IR_ADD, s, c);
  }
  IrNode *other = ir_op1f(g, IR_SCALE, ir_un(g, IR_SILU, x), 3.0f); /* differs in f */
  IrNode *sum = ir_bin(g, IR_ADD, ir_bin(g, IR_MUL, t[0], t[1]), other);
  IrNode *sy = ir_bin(g, IR_ADD, ir_un(g, IR_SILU, y), sum);
  ir_graph_add_output(g, sy, "out");
  ir_graph_add_output(g, t[1], "aux");
  run(g, "cse");
  expect_dump(g,
              "graph f {\n"
              "  %0 = input \"x\" : f32[B, 8]\n"
              "  %1 = input \"y\" : f32[B, 8]\n"
              "  %2 = const : f32[8] {1, 2, 3, 4, 5, 6, 7, 8}\n"
              "  %3 = silu(%0) : f32[B, 8]\n"
              "  %4 = scale(%3) {f=2} : f32[B, 8]\n"
              "  %5 = add(%4, %2) : f32[B, 8]\n"
              "  %6 = scale(%3) {f=3} : f32[B, 8]\n"
              "  %7 = mul(%5, %5) : f32[B, 8]\n"
              "  %8 = add(%7, %6) : f32[B, 8]\n"
              "  %9 = silu(%1) : f32[B, 8]\n"
              "  %10 = add(%9, %8) : f32[B, 8]\n"
              "  return %10 \"out\", %5 \"aux\"\n"
              "}\n");
  ir_graph_free(g);
}

/* A merged node keeps what its labels share: it now serves both places. */
static void test_cse_labels(void **state) {
  (void)state;
  static const char *const cases[][3] = {
      {"blocks.0", "blocks.1", "blocks"},
      {"blocks.0.attn", "blocks.0.mlp", "blocks.0"},
      {"blocks.0", "blocks.0.attn", "blocks.0"},
      {"blocks.1", "blocks.12", "blocks"},
      {"blocks.0", "final_layer", NULL},
      {NULL, "t_embedder", "t_embedder"},
      {"y_embedder", "y_embedder", "y_embedder"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    IrGraph *g = ir_graph_new("f");
    IrNode *x = input(g, "x", 1, (IrDim[]){IR_BATCH});
    IrNode *a = ir_un(g, IR_SILU, x), *b = ir_un(g, IR_SILU, x);
    a->name = cases[i][0];
    b->name = cases[i][1];
    ir_graph_add_output(g, ir_bin(g, IR_ADD, a, b), "out");
    run(g, "cse");
    const char *got = g->outputs[0]->in[0]->name;
    if (cases[i][2] ? !got || strcmp(got, cases[i][2]) : got != NULL)
      fail_msg("%s + %s: label %s, want %s", cases[i][0] ? cases[i][0] : "(none)", cases[i][1],
               got ? got : "(none)", cases[i][2] ? cases[i][2] : "(none)");
    ir_graph_free(g);
  }
}

static void test_cse_leaves(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("f");
  IrShape ws = ir_shape_make(2, (IrDim[]){4, 4});
  IrNode *x = input(g, "x", 2, (IrDim[]){IR_BATCH, 4});
  IrNode *w1 = ir_param(g, "w", IR_F32, ws, NOLOC);
  IrNode *w2 = ir_param(g, "w", IR_F32, ws, NOLOC); /* same binding: merged */
  IrNode *w3 = ir_param(g, "v", IR_F32, ws, NOLOC); /* other name: kept */
  float a[2] = {1, 2}, b[2] = {1, 3};
  IrNode *c1 = fconst(g, 2, a), *c2 = fconst(g, 2, b); /* different data: kept */
  IrNode *l1 = ir_linear(g, x, w1, NULL), *l2 = ir_linear(g, x, w2, NULL), *l3 = ir_linear(g, x, w3, NULL);
  IrNode *cc = ir_concat(g, 2, (IrNode *[]){c1, c2}, 0);
  IrNode *out = ir_bin(g, IR_ADD, ir_bin(g, IR_ADD, l1, l2), ir_bin(g, IR_ADD, l3, cc));
  ir_graph_add_output(g, out, "out");
  int before = g->n_nodes;
  run(g, "cse");
  assert_int_equal(g->n_nodes, before - 2); /* one param, one linear */
  int params = 0, consts = 0;
  for (int i = 0; i < g->n_nodes; i++) {
    params += g->nodes[i]->op == IR_PARAM;
    consts += g->nodes[i]->op == IR_CONST;
  }
  assert_int_equal(params, 2);
  assert_int_equal(consts, 2);
  ir_graph_free(g);
}

/* ---- canonicalize ------------------------------------------------------- */

static void test_canonicalize(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("f");
  IrNode *x = input(g, "x", 3, (IrDim[]){IR_BATCH, 4, 6});
  /* reshape(reshape(x)) -> one reshape */
  IrNode *r1 = ir_reshape(g, x, 2, (IrDim[]){IR_BATCH, 24});
  IrNode *r2 = ir_reshape(g, r1, 4, (IrDim[]){IR_BATCH, 2, 3, 4});
  /* permute(permute()) composes: [B,2,3,4] -> [B,3,4,2] -> [B,3,2,4] is [0,2,1,3];
   * an identity permute vanishes */
  IrNode *p1 = ir_permute(g, r2, (int[]){0, 2, 3, 1});
  IrNode *p2 = ir_permute(g, p1, (int[]){0, 1, 3, 2});
  IrNode *p3 = ir_permute(g, p2, (int[]){0, 1, 2, 3});
  /* no-op scalars and a whole-axis slice vanish */
  IrNode *s = ir_op1f(g, IR_SCALE, p3, 1.0f);
  IrNode *a = ir_op1f(g, IR_ADD_SCALAR, s, 0.0f);
  IrNode *sl = ir_slice(g, a, 1, 0, 3);
  IrNode *sb = ir_slice(g, sl, 0, 0, IR_BATCH);
  IrNode *keep = ir_op1f(g, IR_SCALE, sb, 0.5f);
  /* reshape back to x's shape through a chain: becomes x itself */
  IrNode *back = ir_reshape(g, ir_reshape(g, x, 1, (IrDim[]){-24}), 3, (IrDim[]){IR_BATCH, 4, 6});
  IrNode *c = node1(g, IR_CAST, back, (IrAttrs){.to = IR_F32});
  ir_graph_add_output(g, keep, "out");
  ir_graph_add_output(g, c, "same");
  run(g, "canonicalize");
  expect_dump(g,
              "graph f {\n"
              "  %0 = input \"x\" : f32[B, 4, 6]\n"
              "  %1 = reshape(%0) {shape=[B,2,3,4]} : f32[B, 2, 3, 4]\n"
              "  %2 = permute(%1) {perm=[0,2,1,3]} : f32[B, 3, 2, 4]\n"
              "  %3 = scale(%2) {f=0.5} : f32[B, 3, 2, 4]\n"
              "  return %3 \"out\", %0 \"same\"\n"
              "}\n");
  ir_graph_free(g);
}

/* Permutations that compose to the identity disappear entirely; a partial
 * slice and a real reshape stay. */
static void test_canonicalize_keeps_real_work(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("f");
  IrNode *x = input(g, "x", 3, (IrDim[]){IR_BATCH, 4, 6});
  IrNode *p = ir_permute(g, ir_permute(g, x, (int[]){0, 2, 1}), (int[]){0, 2, 1});
  IrNode *sl = ir_slice(g, p, 2, 1, 5);
  IrNode *sc = ir_op1f(g, IR_ADD_SCALAR, sl, 1.0f);
  ir_graph_add_output(g, sc, "out");
  run(g, "canonicalize");
  expect_dump(g,
              "graph f {\n"
              "  %0 = input \"x\" : f32[B, 4, 6]\n"
              "  %1 = slice(%0) {axis=2, start=1, len=5} : f32[B, 4, 5]\n"
              "  %2 = add_scalar(%1) {f=1} : f32[B, 4, 5]\n"
              "  return %2 \"out\"\n"
              "}\n");
  ir_graph_free(g);
}

/* ---- fold-constants ----------------------------------------------------- */

static const IrNode *only_const(IrGraph *g) {
  const IrNode *c = NULL;
  for (int i = 0; i < g->n_nodes; i++)
    if (g->nodes[i]->op == IR_CONST) {
      assert_null(c);
      c = g->nodes[i];
    }
  assert_non_null(c);
  return c;
}

/* The timestep-embedding pattern: freqs = exp(arange(n) * -k); emb = [cos, sin](t * freqs). */
static void test_fold_sin_arange(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("f");
  IrNode *t = input(g, "t", 2, (IrDim[]){IR_BATCH, 1});
  float ar[8];
  for (int i = 0; i < 8; i++) ar[i] = (float)i;
  IrNode *c = fconst(g, 8, ar);
  IrNode *s = ir_un(g, IR_SIN, ir_op1f(g, IR_ADD_SCALAR, ir_op1f(g, IR_SCALE, c, 0.5f), 0.25f));
  IrNode *two = ir_bin(g, IR_MUL, s, s);
  IrNode *y = ir_bin(g, IR_MUL, t, two);
  ir_graph_add_output(g, y, "out");
  run(g, "fold-constants");
  assert_int_equal(g->n_nodes, 3); /* t, the folded const, mul */
  const IrNode *k = only_const(g);
  assert_int_equal(k->shape.rank, 1);
  assert_int_equal(k->shape.d[0], 8);
  assert_ptr_equal(y->in[1], k);
  const float *v = k->data;
  for (int i = 0; i < 8; i++) {
    float want = sinf(i * 0.5f + 0.25f);
    assert_float_equal(v[i], want * want, 1e-6);
  }
  ir_graph_free(g);
}

static void test_fold_layout_and_reduce(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("f");
  float v[6] = {0, 1, 2, 3, 4, 5};
  IrNode *c = ir_const(g, IR_F32, ir_shape_make(2, (IrDim[]){2, 3}), v, NOLOC);
  IrNode *p = ir_permute(g, c, (int[]){1, 0});                 /* [[0,3],[1,4],[2,5]] */
  IrNode *sl = ir_slice(g, p, 0, 1, 2);                        /* [[1,4],[2,5]] */
  IrNode *cat = ir_concat(g, 2, (IrNode *[]){sl, p}, 0);       /* [5, 2] */
  IrNode *r = ir_reshape(g, cat, 2, (IrDim[]){2, 5});          /* [[1,4,2,5,0],[3,1,4,2,5]] */
  IrNode *m = node1(g, IR_REDUCE_MEAN, r, (IrAttrs){.axis = 1}); /* [[2.4],[3]] */
  float row[3] = {10, 20, 30};
  IrNode *b = ir_bin(g, IR_ADD, m, fconst(g, 3, row));         /* broadcast [2,1]+[3] -> [2,3] */
  IrNode *x = input(g, "x", 2, (IrDim[]){IR_BATCH, 3});
  IrNode *y = ir_bin(g, IR_MUL, x, node1(g, IR_REDUCE_SUM, b, (IrAttrs){.axis = 0}));
  ir_graph_add_output(g, y, "out");
  ir_graph_add_output(g, cat, "cat");
  run(g, "fold-constants");
  /* x, two consts (the reduce_sum result and the cat output), mul */
  assert_int_equal(g->n_nodes, 4);
  const IrNode *sum = y->in[1], *cc = g->outputs[1];
  assert_int_equal(sum->op, IR_CONST);
  assert_int_equal(cc->op, IR_CONST);
  const float want_cat[10] = {1, 4, 2, 5, 0, 3, 1, 4, 2, 5};
  for (int i = 0; i < 10; i++) assert_float_equal(((const float *)cc->data)[i], want_cat[i], 0);
  /* sum of [[12.4,22.4,32.4],[13,23,33]] = 67.2 + 69 */
  assert_int_equal(sum->shape.rank, 2);
  assert_int_equal(sum->shape.d[0], 1);
  assert_int_equal(sum->shape.d[1], 1);
  assert_float_equal(((const float *)sum->data)[0], 136.2, 1e-4);
  ir_graph_free(g);
}

static void test_fold_leaves_non_constants(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("f");
  IrNode *x = input(g, "x", 1, (IrDim[]){4});
  float v[4] = {1, 2, 3, 4};
  IrNode *y = ir_bin(g, IR_ADD, x, fconst(g, 4, v));
  IrNode *p = ir_param(g, "p", IR_F32, ir_shape_make(1, (IrDim[]){4}), NOLOC);
  IrNode *z = ir_un(g, IR_EXP, p);
  ir_graph_add_output(g, ir_bin(g, IR_ADD, y, z), "out");
  int before = g->n_nodes;
  run(g, "fold-constants");
  assert_int_equal(g->n_nodes, before);
  ir_graph_free(g);
}

/* ---- fuse ---------------------------------------------------------------- */

/* The group's record describes g (ir_group_check). */
static void expect_valid(IrGraph *g, const IrGroup *grp) {
  IrErr e = {{0}};
  int *uses = ir_use_counts(g);
  int rc = ir_group_check(g, grp, uses, &e);
  free(uses);
  if (rc) fail_msg("%s", e.msg);
}

/* residual r = x + g * y; out = layernorm(r) * s + t; r also read by `late`
 * (after the modulate) or `early` (before it). */
static void test_fuse_norm_groups(void **state) {
  (void)state;
  for (int early = 0; early < 2; early++) {
    IrGraph *g = ir_graph_new("f");
    IrDim d[3] = {IR_BATCH, 4, 8};
    IrNode *x = input(g, "x", 3, d), *y = input(g, "y", 3, d), *gt = input(g, "g", 3, d);
    IrNode *s = input(g, "s", 3, d), *t = input(g, "t", 3, d);
    IrNode *r = ir_bin(g, IR_ADD, x, ir_bin(g, IR_MUL, gt, y));
    IrNode *e = early ? ir_op1f(g, IR_SCALE, r, 2.0f) : NULL;
    IrNode *ln = ir_op1f(g, IR_LAYERNORM, r, 1e-6f);
    IrNode *out = ir_bin(g, IR_ADD, ir_bin(g, IR_MUL, ln, s), t);
    IrNode *late = early ? e : ir_op1f(g, IR_SCALE, r, 2.0f);
    ir_graph_add_output(g, out, "out");
    ir_graph_add_output(g, late, "late");
    run(g, "fuse");
    const IrGroup *grp = ln->fuse;
    assert_non_null(grp);
    assert_int_equal(grp->kind, IR_GROUP_NORM); /* layernorm -> modulate, anchored at the last add */
    assert_ptr_equal(grp->role[IR_ROLE_NORM_LAYERNORM], ln);
    assert_ptr_equal(grp->role[IR_ROLE_NORM_EPILOGUE], out);
    assert_ptr_equal(ir_group_anchor(grp), out);
    assert_ptr_equal(out->fuse, grp);
    assert_ptr_equal(out->in[0]->fuse, grp);
    if (early) {
      assert_true(r->fuse != grp); /* read before the kernel would write it */
      assert_null(grp->role[IR_ROLE_NORM_PROLOGUE]);
    } else {
      assert_ptr_equal(grp->role[IR_ROLE_NORM_PROLOGUE], r); /* the residual add is the kernel's prologue */
      assert_ptr_equal(r->fuse, grp);
      assert_ptr_equal(r->in[1]->fuse, grp);
    }
    assert_null(late->fuse); /* alone: nothing to fuse with */
    expect_valid(g, grp);
    ir_graph_free(g);
  }
}

/* out = layernorm(x) * m + x: the anchor reads x, so x is no prologue (the
 * kernel would read it while writing it) and stays out of the group. */
static void test_fuse_norm_input_in_epilogue(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("f");
  IrDim d[3] = {IR_BATCH, 4, 8};
  IrNode *a = input(g, "a", 3, d), *b = input(g, "b", 3, d), *m = input(g, "m", 3, d);
  IrNode *x = ir_bin(g, IR_ADD, a, b);
  IrNode *ln = ir_op1f(g, IR_LAYERNORM, x, 1e-6f);
  IrNode *out = ir_bin(g, IR_ADD, ir_bin(g, IR_MUL, ln, m), x);
  ir_graph_add_output(g, out, "out");
  run(g, "fuse");
  assert_int_equal(ln->fuse->kind, IR_GROUP_NORM);
  assert_null(ln->fuse->role[IR_ROLE_NORM_PROLOGUE]);
  assert_null(x->fuse);
  ir_graph_free(g);
}

/* attention: one group with its roles; linear -> gelu_tanh: a gemm-epilogue
 * group; the dump names kinds and roles; the pass decides afresh when run
 * again. */
static void test_fuse_attention_and_gemm(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("f");
  IrDim d[3] = {IR_BATCH, 16, 8};
  IrNode *q = input(g, "q", 3, d), *k = input(g, "k", 3, d), *v = input(g, "v", 3, d);
  IrNode *qk = ir_matmul(g, q, k, 1);
  IrNode *sc = ir_op1f(g, IR_SCALE, qk, 0.35f);
  IrNode *sm = node1(g, IR_SOFTMAX, sc, (IrAttrs){0});
  IrNode *o = ir_matmul(g, sm, v, 0);
  IrNode *w = ir_param(g, "w", IR_F32, ir_shape_make(2, (IrDim[]){8, 8}), NOLOC);
  IrNode *b = ir_param(g, "b", IR_F32, ir_shape_make(1, (IrDim[]){8}), NOLOC);
  IrNode *l = ir_linear(g, o, w, b);
  IrNode *ge = ir_un(g, IR_GELU_TANH, l);
  ir_graph_add_output(g, ge, "out");
  run(g, "fuse");
  const IrGroup *at = o->fuse;
  assert_non_null(at);
  assert_int_equal(at->kind, IR_GROUP_ATTENTION);
  IrNode *want[] = {q, k, v, qk, sc, sm, o, NULL};
  for (int r = IR_ROLE_ATTENTION_Q; r <= IR_ROLE_ATTENTION_OUT; r++) assert_ptr_equal(at->role[r], want[r - IR_ROLE_ATTENTION_Q]);
  assert_ptr_equal(ir_group_anchor(at), o);
  assert_ptr_equal(qk->fuse, at);
  assert_ptr_equal(sc->fuse, at);
  assert_ptr_equal(sm->fuse, at);
  assert_null(q->fuse); /* operands read as stored: roles, not members */
  expect_valid(g, at);
  const IrGroup *gm = ge->fuse;
  assert_int_equal(gm->kind, IR_GROUP_GEMM_EPILOGUE);
  assert_ptr_equal(gm->role[IR_ROLE_GEMM_EPILOGUE_LINEAR], l);
  assert_ptr_equal(gm->role[IR_ROLE_GEMM_EPILOGUE_EPILOGUE], ge);
  assert_ptr_equal(l->fuse, gm);
  expect_valid(g, gm);
  expect_dump(g,
              "graph f {\n"
              "  %0 = input \"q\" : f32[B, 16, 8]\n"
              "  %1 = input \"k\" : f32[B, 16, 8]\n"
              "  %2 = input \"v\" : f32[B, 16, 8]\n"
              "  %3 = matmul(%0, %1) {trans_b=1} : f32[B, 16, 16] fused(%6 attention qk)\n"
              "  %4 = scale(%3) {f=0.35} : f32[B, 16, 16] fused(%6 attention scale)\n"
              "  %5 = softmax(%4) : f32[B, 16, 16] fused(%6 attention softmax)\n"
              "  %6 = matmul(%5, %2) : f32[B, 16, 8] fused(%6 attention pv q=%0 k=%1 v=%2)\n"
              "  %7 = param \"w\" : f32[8, 8]\n"
              "  %8 = param \"b\" : f32[8]\n"
              "  %9 = linear(%6, %7, %8) : f32[B, 16, 8] fused(%10 gemm-epilogue linear)\n"
              "  %10 = gelu_tanh(%9) : f32[B, 16, 8] fused(%10 gemm-epilogue epilogue)\n"
              "  return %10 \"out\"\n"
              "}\n");
  run(g, "fuse");
  assert_true(o->fuse != at); /* a new record */
  assert_int_equal(o->fuse->kind, IR_GROUP_ATTENTION);
  assert_int_equal(l->fuse->kind, IR_GROUP_GEMM_EPILOGUE);
  ir_graph_free(g);
}

/* The head split and merge join the attention group: q, k, v are the
 * head-split permutes (members), the output permute is the anchor. */
static void test_fuse_attention_heads(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("f");
  IrNode *qkv = input(g, "qkv", 3, (IrDim[]){IR_BATCH, 16, 48});
  IrNode *part[3];
  for (int i = 0; i < 3; i++) {
    IrNode *r = ir_reshape(g, ir_slice(g, qkv, 2, i * 16, 16), 4, (IrDim[]){IR_BATCH, 16, 2, 8});
    part[i] = ir_permute(g, r, (int[]){0, 2, 1, 3});
  }
  IrNode *sm = node1(g, IR_SOFTMAX, ir_matmul(g, part[0], part[1], 1), (IrAttrs){0});
  IrNode *o = ir_matmul(g, sm, part[2], 0);
  IrNode *t = ir_permute(g, o, (int[]){0, 2, 1, 3});
  ir_graph_add_output(g, ir_reshape(g, t, 3, (IrDim[]){IR_BATCH, 16, 16}), "y");
  run(g, "fuse");
  const IrGroup *at = t->fuse;
  assert_int_equal(at->kind, IR_GROUP_ATTENTION);
  assert_ptr_equal(at->role[IR_ROLE_ATTENTION_OUT], t);
  assert_ptr_equal(ir_group_anchor(at), t);
  assert_null(at->role[IR_ROLE_ATTENTION_SCALE]);
  for (int i = 0; i < 3; i++) {
    assert_ptr_equal(at->role[IR_ROLE_ATTENTION_Q + i], part[i]);
    assert_ptr_equal(part[i]->fuse, at);              /* the permute */
    assert_ptr_equal(part[i]->in[0]->fuse, at);       /* the reshape */
    assert_ptr_equal(part[i]->in[0]->in[0]->fuse, at); /* the slice */
  }
  assert_null(qkv->fuse);
  expect_valid(g, at);
  ir_graph_free(g);
}

/* map: an elementwise tree over views (root: its last node); concat:
 * [cos(m), sin(m)], m shared by both parts joining as well. */
static void test_fuse_map_and_concat(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("f");
  IrNode *x = input(g, "x", 3, (IrDim[]){IR_BATCH, 4, 8});
  IrNode *c = input(g, "c", 2, (IrDim[]){IR_BATCH, 16});
  IrNode *sh = ir_reshape(g, ir_slice(g, c, 1, 0, 8), 3, (IrDim[]){IR_BATCH, 1, 8});
  IrNode *mul = ir_bin(g, IR_MUL, x, ir_op1f(g, IR_ADD_SCALAR, sh, 1.0f));
  IrNode *m = ir_un(g, IR_SILU, mul);
  ir_graph_add_output(g, m, "map");
  IrNode *t = input(g, "t", 2, (IrDim[]){IR_BATCH, 1});
  IrNode *tm = ir_op1f(g, IR_SCALE, t, 3.0f);
  IrNode *cat = ir_concat(g, 2, (IrNode *[]){ir_un(g, IR_COS, tm), ir_un(g, IR_SIN, tm)}, 1);
  ir_graph_add_output(g, cat, "emb");
  run(g, "fuse");
  const IrGroup *mg = m->fuse;
  assert_int_equal(mg->kind, IR_GROUP_MAP);
  assert_ptr_equal(mg->role[IR_ROLE_MAP_ROOT], m);
  assert_ptr_equal(ir_group_anchor(mg), m);
  assert_ptr_equal(mul->fuse, mg);
  assert_ptr_equal(sh->fuse, mg);
  assert_ptr_equal(sh->in[0]->fuse, mg);
  expect_valid(g, mg);
  const IrGroup *cg = cat->fuse;
  assert_int_equal(cg->kind, IR_GROUP_CONCAT);
  assert_ptr_equal(cg->role[IR_ROLE_CONCAT_ROOT], cat);
  assert_ptr_equal(cat->in[0]->fuse, cg);
  assert_ptr_equal(cat->in[1]->fuse, cg);
  assert_ptr_equal(tm->fuse, cg); /* read by both parts: recomputed in each */
  expect_valid(g, cg);
  ir_graph_free(g);
}

/* ir_group_check refuses records that do not describe the graph. */
static void test_group_check(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("f");
  IrDim d[3] = {IR_BATCH, 16, 8};
  IrNode *q = input(g, "q", 3, d), *k = input(g, "k", 3, d), *v = input(g, "v", 3, d);
  IrNode *qk = ir_matmul(g, q, k, 1);
  IrNode *sm = node1(g, IR_SOFTMAX, qk, (IrAttrs){0});
  IrNode *o = ir_matmul(g, sm, v, 0);
  ir_graph_add_output(g, o, "out");
  run(g, "fuse");
  IrGroup *at = o->fuse;
  expect_valid(g, at);
  int *uses = ir_use_counts(g);
  IrErr e;
  at->role[IR_ROLE_ATTENTION_SOFTMAX] = NULL; /* a required role missing */
  assert_int_equal(ir_group_check(g, at, uses, &e), -1);
  at->role[IR_ROLE_ATTENTION_SOFTMAX] = qk; /* played by the wrong node */
  assert_int_equal(ir_group_check(g, at, uses, &e), -1);
  at->role[IR_ROLE_ATTENTION_SOFTMAX] = sm;
  at->role[IR_ROLE_ATTENTION_V] = q; /* an operand the graph does not read there */
  assert_int_equal(ir_group_check(g, at, uses, &e), -1);
  at->role[IR_ROLE_ATTENTION_V] = v;
  at->role[IR_ROLE_MAP_ROOT] = o; /* another kind's role */
  assert_int_equal(ir_group_check(g, at, uses, &e), -1);
  at->role[IR_ROLE_MAP_ROOT] = NULL;
  sm->fuse = NULL; /* a member role outside the group */
  assert_int_equal(ir_group_check(g, at, uses, &e), -1);
  sm->fuse = at;
  uses[qk->index] = 2; /* the scores read outside the kernel */
  assert_int_equal(ir_group_check(g, at, uses, &e), -1);
  uses[qk->index] = 1;
  assert_int_equal(ir_group_check(g, at, uses, &e), 0);
  free(uses);
  ir_graph_free(g);
}

/* Graph surgery after fuse undoes the groups it touches: canonicalize drops
 * the scale by 1 (ir_replace_all_uses, then dce): the attention group goes,
 * and fuse forms it again without the scale. */
static void test_groups_after_surgery(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("f");
  IrDim d[3] = {IR_BATCH, 16, 8};
  IrNode *q = input(g, "q", 3, d), *k = input(g, "k", 3, d), *v = input(g, "v", 3, d);
  IrNode *qk = ir_matmul(g, q, k, 1);
  IrNode *sm = node1(g, IR_SOFTMAX, ir_op1f(g, IR_SCALE, qk, 1.0f), (IrAttrs){0});
  IrNode *o = ir_matmul(g, sm, v, 0);
  ir_graph_add_output(g, ir_un(g, IR_EXP, ir_un(g, IR_NEG, o)), "out");
  run(g, "fuse");
  assert_non_null(o->fuse);
  IrNode *e = g->nodes[g->n_nodes - 1];
  const IrGroup *mg = e->fuse;
  assert_int_equal(mg->kind, IR_GROUP_MAP);
  run(g, "canonicalize");
  for (int i = 0; i < g->n_nodes; i++) assert_true(!g->nodes[i]->fuse || g->nodes[i]->fuse == mg);
  assert_ptr_equal(e->fuse, mg); /* untouched */
  run(g, "fuse");
  assert_int_equal(o->fuse->kind, IR_GROUP_ATTENTION);
  assert_null(o->fuse->role[IR_ROLE_ATTENTION_SCALE]);
  assert_ptr_equal(sm->in[0], qk);
  ir_graph_free(g);
}

/* The kind table: names, every role of its kind, and a member role each
 * kind requires (its anchor). */
static void test_group_table(void **state) {
  (void)state;
  assert_string_equal(ir_group_kind_name(IR_GROUP_ATTENTION), "attention");
  assert_string_equal(ir_group_kind_name(IR_GROUP_GEMM_EPILOGUE), "gemm-epilogue");
  assert_string_equal(ir_role_name(IR_ROLE_ATTENTION_SOFTMAX), "softmax");
  assert_int_equal(ir_role_kind(IR_ROLE_NORM_PROLOGUE), IR_GROUP_NORM);
  IrGraph *g = ir_graph_new("f");
  for (int kd = 0; kd < IR_GROUP_KIND_COUNT; kd++) {
    IrGroup *grp = ir_group_new(g, (IrGroupKind)kd);
    assert_null(ir_group_anchor(grp));
    assert_string_not_equal(ir_group_kind_name((IrGroupKind)kd), "?");
    for (int r = 0; r < IR_ROLE_COUNT; r++) {
      if ((int)ir_role_kind((IrRole)r) != kd) continue;
      for (int r2 = 0; r2 < r; r2++) /* role names are unique in their kind */
        if ((int)ir_role_kind((IrRole)r2) == kd) assert_string_not_equal(ir_role_name((IrRole)r), ir_role_name((IrRole)r2));
    }
  }
  ir_graph_free(g);
}

/* ---- the pass manager ---------------------------------------------------- */

static void test_pipeline_unknown_pass(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("f");
  IrNode *x = input(g, "x", 1, (IrDim[]){IR_BATCH});
  IrNode *d = ir_un(g, IR_EXP, x); /* dead: shows nothing ran */
  ir_graph_add_output(g, x, "out");
  IrErr e = {{0}};
  assert_int_equal(pass_run_pipeline(g, "dce,frobnicate", &OPTS, &e), -1);
  assert_non_null(strstr(e.msg, "unknown pass 'frobnicate'"));
  assert_non_null(strstr(e.msg, "canonicalize, fold-constants, cse, hoist-adaln, route-experts, conv-gemm, dce"));
  assert_int_equal(g->n_nodes, 2);
  assert_ptr_equal(g->nodes[1], d);
  ir_graph_free(g);
}

/* quantize: which linears each scope covers, what w8 and w8a8 make of
 * them, and mode none leaving the graph alone. */
static int count_op(const IrGraph *g, IrOp op) {
  int n = 0;
  for (int i = 0; i < g->n_nodes; i++) n += g->nodes[i]->op == op;
  return n;
}

static IrGraph *two_linears(void) {
  IrGraph *g = ir_graph_new("f");
  IrNode *x = input(g, "x", 2, (IrDim[]){IR_BATCH, 8});
  IrNode *w = ir_param(g, "blocks.0.attn.qkv.weight", IR_F32, ir_shape_make(2, (IrDim[]){6, 8}), NOLOC);
  IrNode *b = ir_param(g, "blocks.0.attn.qkv.bias", IR_F32, ir_shape_make(1, (IrDim[]){6}), NOLOC);
  IrNode *w2 = ir_param(g, "final_layer.linear.weight", IR_F32, ir_shape_make(2, (IrDim[]){4, 6}), NOLOC);
  ir_graph_add_output(g, ir_linear(g, ir_linear(g, x, w, b), w2, NULL), "out");
  return g;
}

static void test_quantize(void **state) {
  (void)state;
  static const struct {
    const char *passes;
    int linear, dequantize, qlinear, qscale;
  } cases[] = {
      {"quantize", 2, 0, 0, 0},
      {"quantize:mode=w8", 2, 1, 0, 1},
      {"quantize:mode=w8:scope=all", 2, 2, 0, 2},
      {"quantize:mode=w8a8", 1, 0, 1, 2},
      {"quantize:mode=w8a8:scope=all", 0, 0, 2, 4},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    IrGraph *g = two_linears();
    IrErr e = {{0}};
    assert_int_equal(pass_run_pipeline(g, cases[i].passes, &OPTS, &e), 0);
    assert_int_equal(count_op(g, IR_LINEAR), cases[i].linear);
    assert_int_equal(count_op(g, IR_DEQUANTIZE), cases[i].dequantize);
    assert_int_equal(count_op(g, IR_QLINEAR), cases[i].qlinear);
    assert_int_equal(count_op(g, IR_QSCALE), cases[i].qscale);
    assert_int_equal(count_op(g, IR_QUANTIZE), cases[i].qscale);
    ir_graph_free(g);
  }
  IrGraph *g = two_linears();
  IrErr e = {{0}};
  assert_int_equal(pass_run_pipeline(g, "quantize:mode=fp8", &OPTS, &e), -1);
  assert_non_null(strstr(e.msg, "--quantize fp8 needs calibration data (--calibrate N)"));
  ir_graph_free(g);
  /* fp8 with calibration data: one statistic per covered linear's weight,
   * s_x = max|x| / 448 as a constant, the weight's per-tensor scale and its
   * e4m3 codes, and the decision spelled out as f32 bits */
  static const double amax = 448.0 * 0.25, amax2 = 7.0;
  const PassCalibStat st[2] = {{"linear.blocks.0.attn.qkv.weight.absmax", 1, &amax},
                               {"linear.final_layer.linear.weight.absmax", 1, &amax2}};
  PassCalib cal = {.n = 1, .stats = st, .about = "synthetic"};
  PassPipeline res;
  PassOptions po = OPTS;
  po.calib = &cal;
  po.resolved = &res;
  g = two_linears();
  assert_int_equal(pass_run_pipeline(g, "quantize:mode=fp8", &po, &e), 0);
  assert_int_equal(count_op(g, IR_QLINEAR_E4M3), 1);
  assert_int_equal(count_op(g, IR_QUANTIZE_E4M3), 2);
  assert_int_equal(count_op(g, IR_LINEAR), 1); /* the final layer: scope blocks */
  for (int i = 0; i < g->n_nodes; i++) {
    const IrNode *n = g->nodes[i];
    if (n->op == IR_QUANTIZE_E4M3) assert_int_equal(n->dtype, IR_E4M3);
    if (n->op == IR_QLINEAR_E4M3) {
      const IrNode *sx = n->in[1], *sw = n->in[3];
      assert_int_equal(sx->op, IR_CONST);
      assert_true(((const float *)sx->data)[0] == 0.25f);
      assert_int_equal(sw->op, IR_QSCALE);
      assert_true(sw->attr.f == 448.0f && sw->attr.axis == 0);
    }
  }
  char *text = pass_pipeline_text(&res);
  assert_non_null(strstr(text, "scales=3e800000"));
  free(text);
  ir_graph_free(g);
  /* the recorded scales rebuild it without data; a statistic missing, a bad
   * or surplus word, scales without fp8: errors */
  g = two_linears();
  assert_int_equal(pass_run_pipeline(g, "quantize:mode=fp8:scales=3e800000", &OPTS, &e), 0);
  assert_int_equal(count_op(g, IR_QLINEAR_E4M3), 1);
  ir_graph_free(g);
  static const struct { const char *passes; const char *msg; int calib; } bad[] = {
      {"quantize:mode=fp8:scope=all", "no statistic linear.final_layer.linear.weight.absmax", 1},
      {"quantize:mode=fp8:scales=3e800000.3e800000", "more words than the 1 linears", 0},
      {"quantize:mode=fp8:scales=zz", "not the hex bits of an f32", 0},
      {"quantize:mode=fp8:scales=ff800000", "not a positive finite scale", 0},
      {"quantize:mode=w8:scales=3e800000", "scales goes with mode=fp8", 0},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    g = two_linears();
    po.resolved = NULL;
    po.calib = bad[i].calib ? &cal : NULL;
    assert_int_equal(pass_run_pipeline(g, bad[i].passes, &po, &e), -1);
    if (!strstr(e.msg, bad[i].msg)) fail_msg("%s: '%s' lacks '%s'", bad[i].passes, e.msg, bad[i].msg);
    ir_graph_free(g);
  }
}

/* prune.h's keep masks: written and read back, wrong lengths and stray bits
 * refused; a TEXT option spelled out by a pass reaches `resolved` and the
 * pipeline's text. */
static void test_prune_masks_and_decisions(void **state) {
  (void)state;
  unsigned char a[6] = {1, 0, 0, 1, 1, 0}, b[3] = {0, 1, 1};
  unsigned char *m[2] = {a, b};
  int64_t n[2] = {6, 3};
  char *t = prune_mask_text(m, 2, n);
  assert_string_equal(t, "91.6");
  assert_int_equal(prune_mask_sites(t), 2);
  unsigned char got[6];
  IrErr e = {{0}};
  assert_int_equal(prune_mask_parse(t, 0, 6, got, &e), 0);
  assert_memory_equal(got, a, 6);
  assert_int_equal(prune_mask_parse(t, 1, 3, got, &e), 0);
  assert_memory_equal(got, b, 3);
  assert_int_equal(prune_mask_parse(t, 2, 3, got, &e), -1);
  assert_int_equal(prune_mask_parse("9", 0, 3, got, &e), -1); /* bit 3 of 3 indices */
  assert_non_null(strstr(e.msg, "index 3"));
  assert_int_equal(prune_mask_parse("91", 0, 3, got, &e), -1);
  free(t);
  double score[5] = {1, 3, 3, 0, 2};
  unsigned char keep[5];
  prune_keep_best(score, 5, 2, keep); /* ties: the lower index */
  assert_memory_equal(keep, ((unsigned char[]){0, 1, 1, 0, 0}), 5);

  PassPipeline *p = malloc(sizeof *p), *r = malloc(sizeof *r);
  assert_int_equal(pass_pipeline_parse("prune-heads:keep=1,dce", p, &e), 0);
  IrGraph *g = ir_graph_new("f");
  IrNode *x = input(g, "x", 1, (IrDim[]){IR_BATCH});
  ir_graph_add_output(g, ir_un(g, IR_EXP, x), "out");
  PassOptions o = OPTS;
  o.resolved = r;
  assert_int_equal(pass_pipeline_run(g, p, &o, &e), -1); /* no attention */
  assert_non_null(strstr(e.msg, "no softmax attention"));
  assert_int_equal(pass_pipeline_parse("prune-heads:keep=1:select=3.a,dce", p, &e), 0);
  char *text = pass_pipeline_text(p);
  assert_non_null(strstr(text, "prune-heads:keep=1:criterion=l2:select=3.a,dce"));
  free(text);
  assert_int_equal(pass_pipeline_parse("prune-heads:select=A", p, &e), -1);
  ir_graph_free(g);
  free(p);
  free(r);
}

/* step caching's pass goes before hoist-adaln (after the passes that remove work), else at the end */
static void test_step_cache_placement(void **state) {
  (void)state;
  PassPipeline *p = malloc(sizeof *p);
  IrErr err;
  assert_int_equal(pass_pipeline_parse("default,prune-heads:keep=2", p, &err), 0);
  int n = p->n;
  assert_int_equal(pass_pipeline_add_step_cache(p, NULL, &err), 0);
  assert_int_equal(pass_pipeline_add_step_cache(p, "none", &err), 0);
  assert_int_equal(p->n, n);
  assert_int_equal(pass_pipeline_add_step_cache(p, "cached", &err), 0);
  assert_int_equal(p->n, n + 1);
  int at = -1;
  for (int i = 0; i < p->n; i++)
    if (!strcmp(p->steps[i].pass->name, "step-cache")) at = i;
  assert_true(at > 0);
  assert_string_equal(p->steps[at + 1].pass->name, "hoist-adaln");
  assert_string_equal(p->steps[at].values[0].s, "cached");
  assert_int_equal(pass_pipeline_parse("cse,dce", p, &err), 0);
  assert_int_equal(pass_pipeline_add_step_cache(p, "full", &err), 0);
  assert_string_equal(p->steps[2].pass->name, "step-cache");
  size_t len;
  assert_string_equal(pass_step_cache_role("forward" PASS_STEP_CACHE_FULL, &len), "full");
  assert_int_equal(len, 7);
  assert_string_equal(pass_step_cache_role("forward_with_cfg" PASS_STEP_CACHE_STEP, &len), "cached");
  assert_int_equal(len, 16);
  assert_null(pass_step_cache_role("forward", &len));
  free(p);
}

static void test_pipeline_registry_and_dump(void **state) {
  (void)state;
  int n;
  const PassInfo *t = pass_table(&n);
  assert_int_equal(n, 15);
  for (int i = 0; i < n; i++) {
    assert_ptr_equal(pass_find(t[i].name), &t[i]);
    assert_non_null(t[i].doc);
  }
  assert_null(pass_find("nope"));
  assert_ptr_equal(pass_find("fold-constants")->fn, pass_fold_constants);

  IrGraph *g = ir_graph_new("f");
  IrNode *x = input(g, "x", 1, (IrDim[]){IR_BATCH});
  IrNode *a = ir_un(g, IR_EXP, x), *b = ir_un(g, IR_EXP, x);
  ir_graph_add_output(g, ir_bin(g, IR_ADD, ir_op1f(g, IR_SCALE, a, 1.0f), b), "out");

  IrErr e = {{0}};
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  PassOptions o = {.verify = 1, .dump_after = "cse", .dump = f};
  assert_int_equal(pass_run_pipeline(g, " none , ", &o, &e), 0);
  assert_int_equal(g->n_nodes, 5);
  assert_int_equal(pass_run_pipeline(g, "default", &o, &e), 0);
  fclose(f);
  assert_string_equal(buf,
                      "// after cse\n"
                      "graph f {\n"
                      "  %0 = input \"x\" : f32[B]\n"
                      "  %1 = exp(%0) : f32[B]\n"
                      "  %2 = add(%1, %1) : f32[B]\n"
                      "  return %2 \"out\"\n"
                      "}\n");
  free(buf);

  /* "all" dumps after every pass, in order. */
  buf = NULL;
  f = open_memstream(&buf, &len);
  o.dump_after = "all";
  o.dump = f;
  assert_int_equal(pass_run_pipeline(g, "dce,cse", &o, &e), 0);
  fclose(f);
  char *second = strstr(buf, "// after cse\n");
  assert_non_null(second);
  assert_true(strncmp(buf, "// after dce\n", 13) == 0);
  free(buf);
  ir_graph_free(g);
}

/* The manager verifies after each pass: a pass that breaks the IR is named. */
static void test_pipeline_verifies(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("f");
  IrNode *x = input(g, "x", 1, (IrDim[]){IR_BATCH});
  IrNode *y = ir_un(g, IR_EXP, x);
  ir_graph_add_output(g, y, "out");
  y->shape.d[0] = 3; /* corrupt: dce leaves it, the verifier catches it */
  IrErr e = {{0}};
  assert_int_equal(pass_run_pipeline(g, "dce", &OPTS, &e), -1);
  assert_non_null(strstr(e.msg, "after pass dce"));
  assert_non_null(strstr(e.msg, "%1 (exp): stored shape [3] but inputs give [B]"));
  ir_graph_free(g);
}

/* ---- conv-gemm ---------------------------------------------------------------- */

/* A 3x3 (padding 1) and a 1x1 conv become im2col / a reshape and a matmul (+
 * the bias); a strided conv (a patch embedding) and a depthwise one stay. */
static void test_conv_gemm(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("f");
  IrNode *x = input(g, "x", 4, (IrDim[]){IR_BATCH, 4, 6, 6});
  IrNode *w3 = ir_param(g, "w3", IR_F32, ir_shape_make(4, (IrDim[]){8, 4, 3, 3}), NOLOC);
  IrNode *b3 = ir_param(g, "b3", IR_F32, ir_shape_make(1, (IrDim[]){8}), NOLOC);
  IrNode *w1 = ir_param(g, "w1", IR_F32, ir_shape_make(4, (IrDim[]){8, 8, 1, 1}), NOLOC);
  IrNode *wp = ir_param(g, "wp", IR_F32, ir_shape_make(4, (IrDim[]){8, 8, 2, 2}), NOLOC);
  IrNode *wd = ir_param(g, "wd", IR_F32, ir_shape_make(4, (IrDim[]){8, 1, 3, 3}), NOLOC);
  IrErr e;
  IrAttrs pad1 = {.pad = 1}, none = {0}, patch = {.stride = 2}, dw = {.pad = 1, .groups = 8};
  IrNode *c3 = ir_node_new(g, IR_CONV2D, 3, (IrNode *[]){x, w3, b3}, &pad1, NOLOC, &e);
  IrNode *c1 = ir_node_new(g, IR_CONV2D, 2, (IrNode *[]){c3, w1}, &none, NOLOC, &e);
  IrNode *cp = ir_node_new(g, IR_CONV2D, 2, (IrNode *[]){c1, wp}, &patch, NOLOC, &e);
  IrNode *cd = ir_node_new(g, IR_CONV2D, 2, (IrNode *[]){c1, wd}, &dw, NOLOC, &e);
  assert_non_null(cp);
  assert_non_null(cd);
  ir_graph_add_output(g, cp, "patch");
  ir_graph_add_output(g, cd, "depthwise");
  run(g, "conv-gemm");
  assert_int_equal(count_op(g, IR_CONV2D), 2);
  assert_int_equal(count_op(g, IR_IM2COL), 1);
  assert_int_equal(count_op(g, IR_MATMUL), 2);
  for (int i = 0; i < g->n_nodes; i++)
    if (g->nodes[i]->op == IR_IM2COL) assert_int_equal(g->nodes[i]->shape.d[1], 36);
  ir_graph_free(g);
}

/* upsample_nearest2d's copies (frontend/builtins.c: reshape -> concat -> reshape
 * -> concat -> reshape) in front of a 3x3 conv fold into its im2col {up=2},
 * which reads x itself; the copies are gone.  A concat of two different
 * values of that shape is no upsample and stays. */
static IrNode *copies(IrGraph *g, IrNode *a, IrNode *b, int axis) {
  IrErr e;
  IrAttrs at = {.axis = axis};
  return ir_node_new(g, IR_CONCAT, 2, (IrNode *[]){a, b}, &at, NOLOC, &e);
}

static void test_conv_gemm_upsample(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("f");
  IrNode *x = input(g, "x", 4, (IrDim[]){IR_BATCH, 4, 6, 6});
  IrNode *w3 = ir_param(g, "w3", IR_F32, ir_shape_make(4, (IrDim[]){8, 4, 3, 3}), NOLOC);
  IrNode *r1 = ir_reshape(g, x, 5, (IrDim[]){IR_BATCH, 4, 6, 6, 1});
  IrNode *r2 = ir_reshape(g, copies(g, r1, r1, 4), 5, (IrDim[]){IR_BATCH, 4, 6, 1, 12});
  IrNode *up = ir_reshape(g, copies(g, r2, r2, 3), 4, (IrDim[]){IR_BATCH, 4, 12, 12});
  IrNode *r2b = ir_reshape(g, copies(g, r1, ir_bin(g, IR_ADD, r1, r1), 4), 5, (IrDim[]){IR_BATCH, 4, 6, 1, 12});
  IrNode *notup = ir_reshape(g, copies(g, r2b, r2b, 3), 4, (IrDim[]){IR_BATCH, 4, 12, 12});
  IrErr e;
  IrAttrs pad1 = {.pad = 1};
  IrNode *c = ir_node_new(g, IR_CONV2D, 2, (IrNode *[]){up, w3}, &pad1, NOLOC, &e);
  IrNode *d = ir_node_new(g, IR_CONV2D, 2, (IrNode *[]){notup, w3}, &pad1, NOLOC, &e);
  assert_non_null(c);
  assert_non_null(d);
  ir_graph_add_output(g, c, "y");
  ir_graph_add_output(g, d, "z");
  run(g, "conv-gemm");
  int folded = 0, plain = 0;
  for (int i = 0; i < g->n_nodes; i++) {
    IrNode *n = g->nodes[i];
    if (n->op != IR_IM2COL) continue;
    assert_int_equal(n->shape.d[1], 36);
    assert_int_equal(n->shape.d[2], 144);
    if (n->attr.up == 2) {
      assert_ptr_equal(n->in[0], x);
      folded++;
    } else {
      assert_int_equal(n->attr.up, 0);
      plain++;
    }
  }
  assert_int_equal(folded, 1);
  assert_int_equal(plain, 1);
  assert_int_equal(count_op(g, IR_CONCAT), 2); /* the non-upsample's two */
  ir_graph_free(g);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_conv_gemm),
      cmocka_unit_test(test_conv_gemm_upsample),
      cmocka_unit_test(test_dce),
      cmocka_unit_test(test_cse_merges_subexpressions),
      cmocka_unit_test(test_cse_labels),
      cmocka_unit_test(test_cse_leaves),
      cmocka_unit_test(test_canonicalize),
      cmocka_unit_test(test_canonicalize_keeps_real_work),
      cmocka_unit_test(test_fold_sin_arange),
      cmocka_unit_test(test_fold_layout_and_reduce),
      cmocka_unit_test(test_fold_leaves_non_constants),
      cmocka_unit_test(test_fuse_norm_groups),
      cmocka_unit_test(test_fuse_attention_and_gemm),
      cmocka_unit_test(test_fuse_attention_heads),
      cmocka_unit_test(test_fuse_norm_input_in_epilogue),
      cmocka_unit_test(test_fuse_map_and_concat),
      cmocka_unit_test(test_group_check),
      cmocka_unit_test(test_groups_after_surgery),
      cmocka_unit_test(test_group_table),
      cmocka_unit_test(test_pipeline_unknown_pass),
      cmocka_unit_test(test_step_cache_placement), cmocka_unit_test(test_pipeline_registry_and_dump),
      cmocka_unit_test(test_quantize),
      cmocka_unit_test(test_prune_masks_and_decisions),
      cmocka_unit_test(test_pipeline_verifies),
  };
  return tu_run_group(tests, NULL, NULL);
}
