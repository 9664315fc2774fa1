/*
 * test_attrs.c - every op's attributes round-trip through the op table
 * (ops.def, ir/attrs.c): for each op and each attribute it lists, two nodes
 * that differ only there dump differently and are not merged by CSE, while
 * two equal nodes are; a field the op does not list is cleared by the
 * builder and rejected by the verifier; `ditc ir --ops` lists the columns.
 *
 * Nodes are made with ir_concat (any number of inputs) and then given the op
 * under test: the dump and CSE look at op, inputs, type and attributes only,
 * so the shapes need not be ones the op could infer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "testutil.h"

#include "ir/ir.h"
#include "passes/passes.h"

static const IrLoc NOLOC = {0};
static const IrShape SHAPE4 = {4, {2, 3, 4, 5}};

/* Inputs an op of this arity gets (variadic: 2). */
static int n_inputs(IrOp op) { return ir_op_arity(op) < 0 ? 2 : ir_op_arity(op); }

/* A valid base value for attribute k, or (variant) a different one. */
static void set_attr(IrAttrs *a, IrAttrKey k, int variant) {
  const IrAttrInfo *at = ir_attr_info(k);
  void *p = (char *)a + at->offset;
  switch (at->kind) {
  case IR_ATTR_KIND_FLOAT: *(float *)p = variant ? 0.75f : 0.5f; break;
  case IR_ATTR_KIND_INT: *(int *)p = variant ? 2 : 1; break;
  case IR_ATTR_KIND_INT1: *(int *)p = variant ? 2 : 0; break;
  case IR_ATTR_KIND_FLAG: *(int *)p = variant ? 1 : 0; break;
  case IR_ATTR_KIND_DIM: *(IrDim *)p = variant ? IR_BATCH : 1; break;
  case IR_ATTR_KIND_PERM: {
    int base[IR_MAX_RANK] = {0, 1, 2, 3}, var[IR_MAX_RANK] = {1, 0, 2, 3};
    memcpy(p, variant ? var : base, sizeof base);
    break;
  }
  case IR_ATTR_KIND_SHAPE:
    *(IrShape *)p = variant ? (IrShape){3, {6, 4, 5}} : SHAPE4;
    break;
  case IR_ATTR_KIND_DTYPE: *(IrDType *)p = variant ? IR_F16 : IR_F32; break;
  }
}

/* A node of op over in[0..n-1] with attributes a, shape SHAPE4. */
static IrNode *make(IrGraph *g, IrOp op, IrNode **in, IrAttrs a) {
  IrNode *n = ir_concat(g, n_inputs(op), in, 0);
  n->op = op;
  n->shape = SHAPE4;
  n->attr = a;
  return n;
}

/* The text of node at position pos in the dump, after "= ". */
static char *node_text(const char *dump, int pos) {
  char key[32];
  snprintf(key, sizeof key, "  %%%d = ", pos);
  const char *s = strstr(dump, key);
  assert_non_null(s);
  s += strlen(key);
  const char *e = strchr(s, '\n');
  return strndup(s, (size_t)(e - s));
}

/* Graph x.. -> a, b (both outputs); returns the dump texts of a and b and
 * how many non-leaf nodes CSE leaves. */
static int round_trip(IrOp op, IrAttrs aa, IrAttrs ba, char **ta, char **tb) {
  IrGraph *g = ir_graph_new("forward");
  IrNode *in[4];
  for (int i = 0; i < 4; i++) {
    char name[8];
    snprintf(name, sizeof name, "x%d", i);
    in[i] = ir_input(g, name, IR_F32, SHAPE4, NOLOC);
  }
  IrNode *a = make(g, op, in, aa), *b = make(g, op, in, ba);
  ir_graph_add_output(g, a, "a");
  ir_graph_add_output(g, b, "b");
  char *dump = tu_dump_str(g);
  *ta = node_text(dump, a->index);
  *tb = node_text(dump, b->index);
  free(dump);
  IrErr err = {{0}};
  assert_int_equal(pass_cse(g, NULL, &err), 0);
  int left = 0;
  for (int i = 0; i < g->n_nodes; i++) left += ir_op_class(g->nodes[i]->op) != IR_CLASS_LEAF;
  ir_graph_free(g);
  return left;
}

static IrAttrs base_attrs(IrOp op) {
  IrAttrs a = {0};
  for (int k = 0; k < IR_ATTR_COUNT; k++)
    if (ir_op_attrs(op) >> k & 1u) set_attr(&a, (IrAttrKey)k, 0);
  return a;
}

static void test_every_attribute_round_trips(void **state) {
  (void)state;
  int listed = 0;
  for (int o = 0; o < IR_OP_COUNT; o++) {
    IrOp op = (IrOp)o;
    if (ir_op_class(op) == IR_CLASS_LEAF) continue;
    IrAttrs base = base_attrs(op);
    char *ta, *tb;
    /* equal nodes merge and dump alike */
    assert_int_equal(round_trip(op, base, base, &ta, &tb), 1);
    assert_string_equal(ta, tb);
    free(ta), free(tb);
    for (int k = 0; k < IR_ATTR_COUNT; k++) {
      if (!(ir_op_attrs(op) >> k & 1u)) continue;
      listed |= 1 << k;
      IrAttrs var = base;
      set_attr(&var, (IrAttrKey)k, 1);
      int left = round_trip(op, base, var, &ta, &tb);
      if (left != 2 || !strcmp(ta, tb))
        fail_msg("%s: nodes differing in %s: CSE left %d, dumps \"%s\" and \"%s\"", ir_op_name(op),
                 ir_attr_info((IrAttrKey)k)->name, left, ta, tb);
      /* the attribute is named in the dump, with its value */
      char key[40];
      snprintf(key, sizeof key, "%s=", ir_attr_info((IrAttrKey)k)->name);
      assert_non_null(strstr(tb, key));
      free(ta), free(tb);
    }
  }
  /* every attribute belongs to some op */
  assert_int_equal(listed, (1 << IR_ATTR_COUNT) - 1);
}

static void test_kind_rules(void **state) {
  (void)state;
  char *ta, *tb;
  /* INT1: 0 means 1, in the dump and in CSE */
  IrAttrs z = base_attrs(IR_CONV2D), one = z;
  one.stride = 1;
  one.groups = 1;
  assert_int_equal(round_trip(IR_CONV2D, z, one, &ta, &tb), 1);
  assert_string_equal(ta, tb);
  assert_non_null(strstr(ta, "{stride=1, pad=1, groups=1}"));
  free(ta), free(tb);
  /* FLAG: nothing printed when clear */
  IrAttrs nt = {0}, tr = {.trans_b = 1};
  assert_int_equal(round_trip(IR_MATMUL, nt, tr, &ta, &tb), 2);
  assert_null(strchr(ta, '{'));
  assert_non_null(strstr(tb, "{trans_b=1}"));
  free(ta), free(tb);
  /* FLOAT: compared by bits, so -0 and 0 are different scalars */
  IrAttrs pz = {.f = 0.0f}, nz = {.f = -0.0f};
  assert_int_equal(round_trip(IR_SCALE, pz, nz, &ta, &tb), 2);
  free(ta), free(tb);
  /* PERM: only the node's rank counts */
  IrAttrs p1 = {.perm = {3, 2, 1, 0}}, p2 = {.perm = {3, 2, 1, 0, 5}};
  assert_int_equal(round_trip(IR_PERMUTE, p1, p2, &ta, &tb), 1);
  assert_string_equal(ta, "permute(%0) {perm=[3,2,1,0]} : f32[2, 3, 4, 5]");
  free(ta), free(tb);
}

/* A field the op does not list: cleared by ir_node_new, refused by ir_verify. */
static void test_unused_fields(void **state) {
  (void)state;
  IrGraph *g = ir_graph_new("forward");
  IrNode *x = ir_input(g, "x", IR_F32, SHAPE4, NOLOC);
  IrNode *y = ir_op1f(g, IR_NEG, x, 2.5f); /* neg has no f */
  assert_true(y->attr.f == 0.0f);
  IrNode *s = ir_op1f(g, IR_SCALE, y, 2.5f);
  assert_true(s->attr.f == 2.5f);
  ir_graph_add_output(g, s, "y");
  IrErr err = {{0}};
  assert_int_equal(ir_verify(g, &err), 0);
  y->attr.k = 3;
  assert_int_not_equal(ir_verify(g, &err), 0);
  assert_non_null(strstr(err.msg, "attribute k is set, but neg does not use it"));
  y->attr.k = 0;
  s->attr.axis = 1;
  assert_int_not_equal(ir_verify(g, &err), 0);
  assert_non_null(strstr(err.msg, "attribute axis is set, but scale does not use it"));
  ir_graph_free(g);
}

static void test_ops_listing(void **state) {
  (void)state;
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  assert_non_null(f);
  ir_ops_print(f);
  fclose(f);
  assert_non_null(strstr(buf, "attributes"));
  assert_non_null(strstr(buf, "\nslice                1      other   axis,start,len     "));
  assert_non_null(strstr(buf, "\nconv2d               any    other   stride,pad,groups  "));
  assert_non_null(strstr(buf, "\nneg                  1      unary   -                  "));
  assert_non_null(strstr(buf, "\nstride               int, 0 means 1 "));
  for (int o = 0; o < IR_OP_COUNT; o++) {
    char key[64];
    snprintf(key, sizeof key, "\n%-20s ", ir_op_name((IrOp)o));
    assert_non_null(strstr(buf, key));
  }
  free(buf);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_attribute_round_trips),
      cmocka_unit_test(test_kind_rules),
      cmocka_unit_test(test_unused_fields),
      cmocka_unit_test(test_ops_listing),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
