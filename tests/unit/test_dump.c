/*
 * test_dump.c - ir_dump() prints the exact, stable text golden files rely on:
 * dense numbering by position, attributes per op, leaves, constants, labels.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "testutil.h"

#include "ir/ir.h"

static const IrLoc NOLOC = {0};

/* The dump of g as a malloc'd string. */

static IrShape shp(int rank, ...) {
  IrShape s = {0};
  va_list ap;
  va_start(ap, rank);
  s.rank = rank;
  for (int i = 0; i < rank; i++) s.d[i] = va_arg(ap, IrDim);
  va_end(ap);
  return s;
}

static IrNode *node(IrGraph *g, IrOp op, int n, IrNode **in, IrAttrs a) {
  IrErr e;
  IrNode *x = ir_node_new(g, op, n, in, &a, NOLOC, &e);
  if (!x) fail_msg("%s", e.msg);
  return x;
}

static void test_small_graph(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("forward");
  IrNode *x = ir_input(g, "x", IR_F32, shp(3, IR_BATCH, (IrDim)4, (IrDim)8), NOLOC);
  IrNode *w = ir_param(g, "fc.weight", IR_F32, shp(2, (IrDim)16, (IrDim)8), NOLOC);
  IrNode *b = ir_param(g, "fc.bias", IR_F32, shp(1, (IrDim)16), NOLOC);
  float vals[3] = {0.5f, 1.0f, 1e-6f};
  IrNode *c = ir_const(g, IR_F32, shp(1, (IrDim)3), vals, NOLOC);
  (void)c;
  IrNode *lin = ir_linear(g, x, w, b);
  lin->name = "fc";
  IrNode *ln = node(g, IR_LAYERNORM, 1, &lin, (IrAttrs){.f = 1e-6f});
  IrNode *r = ir_reshape(g, ln, 4, (IrDim[]){IR_BATCH, 4, 2, 8});
  IrNode *p = ir_permute(g, r, (int[]){0, 2, 1, 3});
  IrNode *s = ir_slice(g, p, 0, 0, IR_BATCH);
  IrNode *sc = ir_op1f(g, IR_SCALE, s, 0.125f);
  IrNode *mm = ir_matmul(g, sc, p, 1);
  IrNode *sum = node(g, IR_REDUCE_SUM, 1, &mm, (IrAttrs){.axis = 2});
  IrNode *cs = node(g, IR_CAST, 1, &sum, (IrAttrs){.to = IR_F16});
  ir_graph_add_output(g, cs, "out");
  ir_graph_add_output(g, lin, "feat");

  char *text = tu_dump_str(g);
  const char *want =
      "graph forward {\n"
      "  %0 = input \"x\" : f32[B, 4, 8]\n"
      "  %1 = param \"fc.weight\" : f32[16, 8]\n"
      "  %2 = param \"fc.bias\" : f32[16]\n"
      "  %3 = const : f32[3] {0.5, 1, 1e-06}\n"
      "  %4 = linear(%0, %1, %2) : f32[B, 4, 16]  # fc\n"
      "  %5 = layernorm(%4) {eps=1e-06} : f32[B, 4, 16]\n"
      "  %6 = reshape(%5) {shape=[B,4,2,8]} : f32[B, 4, 2, 8]\n"
      "  %7 = permute(%6) {perm=[0,2,1,3]} : f32[B, 2, 4, 8]\n"
      "  %8 = slice(%7) {axis=0, start=0, len=B} : f32[B, 2, 4, 8]\n"
      "  %9 = scale(%8) {f=0.125} : f32[B, 2, 4, 8]\n"
      "  %10 = matmul(%9, %7) {trans_b=1} : f32[B, 2, 4, 4]\n"
      "  %11 = reduce_sum(%10) {axis=2} : f32[B, 2, 1, 1]\n"
      "  %12 = cast(%11) {to=f16} : f16[B, 2, 1, 1]\n"
      "  return %12 \"out\", %4 \"feat\"\n"
      "}\n";
  assert_string_equal(text, want);
  free(text);
  ir_graph_free(g);
}

/* Numbering follows position, not id: removing nodes renumbers densely. */
static void test_dense_numbering_and_long_const(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("f");
  IrNode *dead = ir_input(g, "unused", IR_F32, shp(1, (IrDim)2), NOLOC);
  IrNode *t = ir_input(g, "t", IR_F32, shp(2, IR_BATCH, (IrDim)1), NOLOC);
  float ar[10];
  for (int i = 0; i < 10; i++) ar[i] = (float)i;
  IrNode *c = ir_const(g, IR_F32, shp(1, (IrDim)10), ar, NOLOC);
  IrNode *m = ir_bin(g, IR_MUL, t, c);
  IrNode *sl = ir_slice(g, m, 1, 2, 5);
  IrNode *sx = ir_un(g, IR_SIN, sl);
  IrNode *cat = ir_concat(g, 2, (IrNode *[]){sx, sx}, 1);
  ir_graph_add_output(g, cat, "emb");
  /* Drop the first node by hand: ids now start at 1 but the dump starts at %0. */
  memmove(g->nodes, g->nodes + 1, (size_t)(g->n_nodes - 1) * sizeof *g->nodes);
  g->n_nodes--;
  for (int i = 0; i < g->n_nodes; i++) g->nodes[i]->index = i;
  (void)dead;

  char *text = tu_dump_str(g);
  const char *want =
      "graph f {\n"
      "  %0 = input \"t\" : f32[B, 1]\n"
      "  %1 = const : f32[10] {0, 1, 2, 3, 4, 5, 6, 7, ... }\n"
      "  %2 = mul(%0, %1) : f32[B, 10]\n"
      "  %3 = slice(%2) {axis=1, start=2, len=5} : f32[B, 5]\n"
      "  %4 = sin(%3) : f32[B, 5]\n"
      "  %5 = concat(%4, %4) {axis=1} : f32[B, 10]\n"
      "  return %5 \"emb\"\n"
      "}\n";
  assert_string_equal(text, want);
  free(text);
  ir_graph_free(g);
}

static void test_conv_pool_and_i32_const(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("forward");
  IrNode *x = ir_input(g, "x", IR_F32, shp(4, (IrDim)-2, (IrDim)4, (IrDim)8, (IrDim)8), NOLOC);
  IrNode *w = ir_param(g, "proj.weight", IR_F32, shp(4, (IrDim)6, (IrDim)4, (IrDim)2, (IrDim)2), NOLOC);
  IrNode *conv = node(g, IR_CONV2D, 2, (IrNode *[]){x, w}, (IrAttrs){.stride = 2});
  IrNode *pool = node(g, IR_AVGPOOL2D, 1, &conv, (IrAttrs){.out_h = 1, .out_w = 1});
  int32_t idx[2] = {3, -1};
  IrNode *ci = ir_const(g, IR_I32, shp(1, (IrDim)2), idx, NOLOC);
  IrNode *tab = ir_param(g, "y_embedder.embedding_table", IR_F32, shp(2, (IrDim)5, (IrDim)6), NOLOC);
  float def[30] = {0};
  tab->data = def;
  IrNode *emb = ir_bin(g, IR_EMBEDDING, tab, ci);
  IrNode *tk = node(g, IR_TOPK_SOFTMAX, 1, &emb, (IrAttrs){.k = 2});
  ir_graph_add_output(g, pool, "out");
  ir_graph_add_output(g, tk, "out1");
  char *text = tu_dump_str(g);
  const char *want =
      "graph forward {\n"
      "  %0 = input \"x\" : f32[2B, 4, 8, 8]\n"
      "  %1 = param \"proj.weight\" : f32[6, 4, 2, 2]\n"
      "  %2 = conv2d(%0, %1) {stride=2, pad=0, groups=1} : f32[2B, 6, 4, 4]\n"
      "  %3 = adaptive_avg_pool2d(%2) {out_h=1, out_w=1} : f32[2B, 6, 1, 1]\n"
      "  %4 = const : i32[2] {3, -1}\n"
      "  %5 = param \"y_embedder.embedding_table\" : f32[5, 6] default {0, 0, 0, 0, 0, 0, 0, 0, ... }\n"
      "  %6 = embedding(%5, %4) : f32[2, 6]\n"
      "  %7 = topk_softmax(%6) {k=2} : f32[2, 6]\n"
      "  return %3 \"out\", %7 \"out1\"\n"
      "}\n";
  assert_string_equal(text, want);
  free(text);
  tab->data = NULL;
  ir_graph_free(g);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_small_graph),
      cmocka_unit_test(test_dense_numbering_and_long_const),
      cmocka_unit_test(test_conv_pool_and_i32_const),
  };
  return tu_run_group(tests, NULL, NULL);
}
