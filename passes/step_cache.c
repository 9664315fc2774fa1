/*
 * step_cache.c - the two entries of step caching (FORA: reuse across
 * sampling steps, without retraining).
 *
 * A DiT block adds two gated residual deltas to the token stream:
 *   x_mid = x_in + gate_msa * attn(...)     x_out = x_mid + gate_mlp * mlp(...)
 * A site is such an ADD: add(x, m) of one shape, m a MUL of rank 3 with one
 * operand broadcast over the tokens ([B, 1, D]: the gate) and m depending on
 * x.  That finds the blocks whatever their attention or MLP is (softmax,
 * focused, mediated, mixture of experts).  Sites are numbered in graph
 * order: site 2i is block i's attention, 2i+1 its MLP.
 *
 *   role=full    every site's delta m also becomes a graph output
 *                "cache.<k>" (after the entry's own outputs): the model's
 *                function is unchanged, the deltas are kept;
 *   role=cached  every site's delta m is replaced by a graph input
 *                "cache.<k>" of m's shape and dtype: the blocks' attention,
 *                MLP and adaLN fall away (dce), the embedders, the final
 *                layer and its adaLN still run;
 *   role=none    nothing.
 * The entry is renamed ENTRY.cache_full or ENTRY.cache_step (a pack's plans
 * for the two roles; frontend/pack_plan.c builds them again from the name).
 *
 * The sampler (runtime/backend.h, sampler.h: rt_cache_step_full) runs the
 * full entry on the full steps and hands its cache.<k> outputs to the cached
 * entry's inputs on the steps between.  A graph without sites is an error.
 */
#include <stdlib.h>
#include <string.h>

#include "passes/passes.h"

/* Does node `from` depend on `to`?  seen: scratch of g->n_nodes bytes. */
static int depends(const IrNode *from, const IrNode *to, unsigned char *seen) {
  if (from == to) return 1;
  if (seen[from->index]) return 0;
  seen[from->index] = 1;
  for (int j = 0; j < from->n_in; j++)
    if (depends(from->in[j], to, seen)) return 1;
  return 0;
}

static int gate_like(const IrNode *n, const IrNode *m) {
  return n->shape.rank == 3 && !ir_dim_is_sym(n->shape.d[1]) && n->shape.d[1] == 1 && !ir_shape_eq(&n->shape, &m->shape);
}

/* The delta of site a (an ADD), or NULL when a is not a site. */
static IrNode *site_delta(IrGraph *g, IrNode *a, unsigned char *seen) {
  if (a->op != IR_ADD || a->n_in != 2 || a->shape.rank != 3) return NULL;
  for (int s = 0; s < 2; s++) {
    IrNode *x = a->in[s], *m = a->in[1 - s];
    if (m->op != IR_MUL || !ir_shape_eq(&x->shape, &a->shape) || !ir_shape_eq(&m->shape, &a->shape)) continue;
    if (!gate_like(m->in[0], m) && !gate_like(m->in[1], m)) continue;
    memset(seen, 0, (size_t)g->n_nodes);
    if (depends(m, x, seen)) return m;
  }
  return NULL;
}

int pass_step_cache(IrGraph *g, const PassOptions *o, IrErr *err) {
  const char *role = pass_opt_choice(o, "role");
  if (!strcmp(role, "none")) return 0;
  for (int i = 0; i < g->n_nodes; i++) g->nodes[i]->index = i;
  unsigned char *seen = xmalloc((size_t)g->n_nodes + 1);
  IrNode **delta = xcalloc((size_t)g->n_nodes + 1, sizeof *delta);
  int n = 0;
  for (int i = 0; i < g->n_nodes; i++) {
    IrNode *m = site_delta(g, g->nodes[i], seen);
    if (m) delta[n++] = m;
  }
  free(seen);
  int rc = -1;
  if (n == 0) {
    ir_errf(err, "entry %s has no blocks to cache (no gated residual x + gate * f(x) of tokens)",
            g->name ? g->name : "?");
    goto out;
  }
  for (int k = 0; k < n; k++) {
    char name[32];
    snprintf(name, sizeof name, "cache.%d", k);
    if (!strcmp(role, "full")) {
      ir_graph_add_output(g, delta[k], name);
    } else {
      IrNode *in = ir_input(g, name, delta[k]->dtype, delta[k]->shape, delta[k]->loc);
      ir_replace_all_uses(g, delta[k], in);
    }
  }
  if (ir_graph_toposort(g, err)) goto out;
  ir_graph_dce(g);
  /* the entry's plan is named for its role: a pack holds both beside the plain one */
  char name[200];
  snprintf(name, sizeof name, "%s%s", g->name ? g->name : "forward",
           !strcmp(role, "full") ? PASS_STEP_CACHE_FULL : PASS_STEP_CACHE_STEP);
  g->name = arena_strdup(&g->arena, name);
  rc = 0;
out:
  free(delta);
  return rc;
}

const char *pass_step_cache_role(const char *entry, size_t *base_len) {
  size_t n = strlen(entry), lf = strlen(PASS_STEP_CACHE_FULL), ls = strlen(PASS_STEP_CACHE_STEP);
  if (n > lf && !strcmp(entry + n - lf, PASS_STEP_CACHE_FULL)) return *base_len = n - lf, "full";
  if (n > ls && !strcmp(entry + n - ls, PASS_STEP_CACHE_STEP)) return *base_len = n - ls, "cached";
  *base_len = n;
  return NULL;
}
