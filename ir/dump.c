/*
 * dump.c - ir_dump(): the stable textual form of a graph.
 *
 *   graph forward {
 *     %0 = input "x" : f32[B, 256, 384]
 *     %1 = param "blocks.0.mlp.fc1.weight" : f32[1536, 384]
 *     %2 = const : f32[128] {0, 1, 2, 3, 4, 5, 6, 7, ... }
 *     %3 = param "blocks.0.mlp.fc1.bias" : f32[1536]
 *     %4 = linear(%0, %1, %3) : f32[B, 256, 1536] fused(%5 gemm-epilogue linear)
 *     %5 = gelu_tanh(%4) : f32[B, 256, 1536] fused(%5 gemm-epilogue epilogue)
 *     return %5 "out"
 *   }
 *
 * Nodes are numbered densely by position, not by id, so the text of a graph
 * does not depend on which passes created and deleted nodes before it: golden
 * files stay stable.  Attributes are the ones ops.def lists for the op, printed
 * as its ATTR rows say (ir_attrs_print); source locations are left out on
 * purpose.  `fused(%k kind role)` marks the members of a fusion group
 * (ir/groups.def): %k is the group's anchor, then its kind and the roles the
 * node plays in it; a
 * comment line after the header says when the plan-memory pass ran.
 */
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"

#define DUMP_CONST_VALUES 8

/* id -> position, for the node references; -1 for nodes outside the graph. */
typedef struct {
  int *pos;
  int n;
} Numbering;

static void number_nodes(IrGraph *g, Numbering *num) {
  num->n = g->next_id > 0 ? g->next_id : 1;
  num->pos = xmalloc((size_t)num->n * sizeof *num->pos);
  for (int i = 0; i < num->n; i++) num->pos[i] = -1;
  for (int i = 0; i < g->n_nodes; i++) {
    int id = g->nodes[i]->id;
    if (id >= 0 && id < num->n) num->pos[id] = i;
  }
}

static void print_ref(FILE *out, const Numbering *num, const IrNode *n) {
  if (!n) fputs("%null", out);
  else if (n->id >= 0 && n->id < num->n && num->pos[n->id] >= 0) fprintf(out, "%%%d", num->pos[n->id]);
  else fprintf(out, "%%?id%d", n->id);  /* not in the graph: only in broken graphs */
}

/* A string in double quotes, with quotes and backslashes escaped. */
static void print_quoted(FILE *out, const char *s) {
  fputc('"', out);
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') fputc('\\', out);
    fputc(*s, out);
  }
  fputc('"', out);
}

static void print_type(FILE *out, const IrNode *n) {
  char buf[256];
  fprintf(out, " : %s%s", ir_dtype_name(n->dtype), ir_shape_str(&n->shape, buf, sizeof buf));
}

/* The first few values of a CONST (or of a PARAM's default). */
static void print_values(FILE *out, const IrNode *n) {
  int64_t numel = ir_shape_numel(&n->shape, 1);
  int64_t shown = numel < DUMP_CONST_VALUES ? numel : DUMP_CONST_VALUES;
  fputs(" {", out);
  for (int64_t i = 0; i < shown; i++) {
    if (i) fputs(", ", out);
    if (n->dtype == IR_I32) fprintf(out, "%d", ((const int32_t *)n->data)[i]);
    else fprintf(out, "%g", ((const float *)n->data)[i]);
  }
  if (shown < numel) fputs(", ... ", out);
  fputc('}', out);
}

/* " fused(%a kind role...)": the group's anchor and kind, the roles n
 * plays; the anchor also names the roles played outside the group
 * (attention reading q, k, v as stored) as role=%k. */
static void print_group(FILE *out, const Numbering *num, const IrNode *n) {
  const IrGroup *grp = n->fuse;
  const IrNode *anchor = ir_group_anchor(grp);
  fputs(" fused(", out);
  print_ref(out, num, anchor);
  fprintf(out, " %s", ir_group_kind_name(grp->kind));
  for (int r = 0; r < IR_ROLE_COUNT; r++)
    if (grp->role[r] == n) fprintf(out, " %s", ir_role_name((IrRole)r));
  for (int r = 0; r < IR_ROLE_COUNT && anchor == n; r++)
    if (grp->role[r] && grp->role[r]->fuse != grp) {
      fprintf(out, " %s=", ir_role_name((IrRole)r));
      print_ref(out, num, grp->role[r]);
    }
  fputc(')', out);
}

static void dump_node(FILE *out, const Numbering *num, const IrNode *n, int pos) {
  fprintf(out, "  %%%d = %s", pos, ir_op_name(n->op));
  switch (n->op) {
  case IR_INPUT:
  case IR_PARAM:
    fputc(' ', out);
    print_quoted(out, n->name ? n->name : "");
    print_type(out, n);
    if (n->op == IR_PARAM && n->data) {
      fputs(" default", out);
      print_values(out, n);
    }
    fputc('\n', out);
    return;
  case IR_CONST:
    print_type(out, n);
    if (n->data) print_values(out, n);
    break;
  default:
    fputc('(', out);
    for (int i = 0; i < n->n_in; i++) {
      if (i) fputs(", ", out);
      print_ref(out, num, n->in[i]);
    }
    fputc(')', out);
    ir_attrs_print(out, n);
    print_type(out, n);
    break;
  }
  if (n->fuse) print_group(out, num, n);
  if (n->name && n->name[0]) fprintf(out, "  # %s", n->name);
  fputc('\n', out);
}

void ir_dump(IrGraph *g, FILE *out) {
  Numbering num;
  number_nodes(g, &num);
  fprintf(out, "graph %s {\n", g->name ? g->name : "main");
  if (g->memplan == IR_MEMPLAN_REUSE) fputs("  // memory: planned (buffers with disjoint lifetimes share arena space)\n", out);
  for (int i = 0; i < g->n_nodes; i++) dump_node(out, &num, g->nodes[i], i);
  fputs("  return", out);
  for (int k = 0; k < g->n_outputs; k++) {
    fputs(k ? ", " : " ", out);
    print_ref(out, &num, g->outputs[k]);
    if (g->output_names && g->output_names[k]) {
      fputc(' ', out);
      print_quoted(out, g->output_names[k]);
    }
  }
  fputs("\n}\n", out);
  free(num.pos);
}
