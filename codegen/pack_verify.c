/*
 * pack_verify.c - cg_pack_plan_matches(): is a plan built now from a pack's
 * model record the plan the pack stores?
 *
 * The pack's hashes prove only that it is whole; anyone can edit and
 * re-hash it.  So nothing of a plan's text runs: the caller builds the plan
 * again from the model record (frontend/pack_plan.c) and this compares the
 * two, refusing the pack on the first difference.  The comparison goes
 * through the writer's own encoding (pack_encode_plan), so "equal" means
 * "the writer would have written these bytes", and a field added to the plan
 * JSON is compared without an edit here.  The source is compared by
 * SHA-256 against the SOURCE section's; the constants byte for byte.  When
 * the JSON bytes differ, both sides are parsed and walked in step to name
 * the first field that differs, with both values; a pack whose JSON only
 * reorders or respaces the same values is accepted (the plan that runs is
 * the rebuilt one either way).
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/pack_format.h"

/* A JSON value, short, for a message. */
static void show(const json_t *v, char *buf, size_t n) {
  if (!v) {
    snprintf(buf, n, "(absent)");
    return;
  }
  char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(9));
  if (!t) {
    snprintf(buf, n, "?");
    return;
  }
  if (strlen(t) + 1 > n && n > 4)
    snprintf(buf, n, "%.*s...", (int)(n - 4), t);
  else
    snprintf(buf, n, "%s", t);
  free(t);
}

/* The first place where a (the pack's) and b (the rebuilt plan's) differ:
 * its path in *path ("steps[3].grid[0]"), the two values in av/bv.  0 when
 * they are equal, 1 for different values, 2 for arrays of different
 * lengths. */
static int first_diff(const json_t *a, const json_t *b, char *path, size_t np, const json_t **av, const json_t **bv) {
  if (a && b && json_typeof(a) == json_typeof(b)) {
    size_t at = strlen(path);
    if (json_is_object(a)) {
      const char *key;
      const json_t *v;
      /* the rebuilt plan's keys first (in the writer's order), then any the pack adds */
      json_object_foreach((json_t *)b, key, v) {
        snprintf(path + at, np - at, "%s%s", at ? "." : "", key);
        int d = first_diff(json_object_get(a, key), v, path, np, av, bv);
        if (d) return d;
      }
      json_object_foreach((json_t *)a, key, v)
        if (!json_object_get(b, key)) {
          snprintf(path + at, np - at, "%s%s", at ? "." : "", key);
          *av = v;
          *bv = NULL;
          return 1;
        }
      path[at] = 0;
      return 0;
    }
    if (json_is_array(a)) {
      size_t na = json_array_size(a), nb = json_array_size(b);
      for (size_t i = 0; i < na && i < nb; i++) {
        snprintf(path + at, np - at, "[%zu]", i);
        int d = first_diff(json_array_get(a, i), json_array_get(b, i), path, np, av, bv);
        if (d) return d;
      }
      path[at] = 0;
      if (na != nb) {
        *av = a;
        *bv = b;
        return 2;
      }
      return 0;
    }
    if (json_equal((json_t *)a, (json_t *)b)) return 0;
  } else if (!a && !b) {
    return 0;
  }
  *av = a;
  *bv = b;
  return 1;
}

/* "step 3 (%12 softmax ...)" for a path into steps[], else "". */
static void step_label(const json_t *b, const char *path, char *buf, size_t n) {
  buf[0] = 0;
  size_t i;
  if (sscanf(path, "steps[%zu]", &i) != 1) return;
  const json_t *s = json_array_get(json_object_get(b, "steps"), i);
  const char *what = json_string_value(json_object_get(s, "what"));
  if (what && *what) snprintf(buf, n, " (step %zu is %.80s)", i, what);
}

int cg_pack_plan_matches(const CgPack *pk, const CgPackPlan *pp, const CgPlan *built, IrGraph *g, IrErr *err) {
  const CgPlan *p = pp->plan;
  int index = (int)(pp - pk->plans);
  char where[200];
  snprintf(where, sizeof where, "%s: plan %d (%s, tuning row %s)", pk->path, index, p->entry, p->tuning);
  if (strcmp(pk->codegen_version, CG_CODEGEN_VERSION))
    return ir_errf(err, "%s: made by code generator '%s'; this ditc's is '%s' (recompile the pack with `ditc compile`)",
                   pk->path, pk->codegen_version, CG_CODEGEN_VERSION);
  unsigned char sha[32];
  const char *src = built->source ? built->source : "";
  sha256(src, strlen(src), sha);
  if (memcmp(sha, pp->source_sha256, 32))
    return ir_errf(err, "%s: its kernel source is not the one its model gives (the SOURCE section's SHA-256 "
                        "differs): the pack was altered, or made from other code",
                   where);
  unsigned char *consts;
  size_t n_consts;
  int64_t *data_at = xmalloc(((size_t)built->n_weights + 1) * sizeof *data_at);
  char *text = pack_encode_plan(built, g, pp->blob, &consts, &n_consts, data_at);
  int rc = 0;
  if (strlen(text) != pp->plan_json_size || memcmp(text, pp->plan_json, pp->plan_json_size)) {
    json_t *a = json_loadb((const char *)pp->plan_json, pp->plan_json_size, 0, NULL), *b = json_loads(text, 0, NULL);
    DITC_ASSERT(a && b); /* the reader parsed the one, the writer wrote the other */
    char path[256] = "", va[120], vb[120], label[120];
    const json_t *av = NULL, *bv = NULL;
    int d = first_diff(a, b, path, sizeof path, &av, &bv);
    if (d == 2) {
      rc = ir_errf(err, "%s: is not the plan its model gives: '%s' has %zu entries in the pack, %zu in the plan "
                        "built from the model",
                   where, path, json_array_size(av), json_array_size(bv));
    } else if (d) {
      show(av, va, sizeof va);
      show(bv, vb, sizeof vb);
      step_label(b, path, label, sizeof label);
      rc = ir_errf(err, "%s: is not the plan its model gives: '%s' is %s in the pack, %s in the plan built from the "
                        "model%s",
                   where, path, va, vb, label);
    }
    json_decref(a);
    json_decref(b);
  }
  if (!rc && (n_consts != pp->consts_size || memcmp(consts, pp->consts, n_consts))) {
    size_t at = 0;
    while (at < n_consts && at < pp->consts_size && consts[at] == pp->consts[at]) at++;
    int w = -1;
    for (int i = 0; i < built->n_weights; i++)
      if (data_at[i] >= 0 && (size_t)data_at[i] <= at) w = i;
    rc = ir_errf(err, "%s: its constants (CONST weights and parameter defaults) are not the ones its model gives: "
                      "they differ at byte %zu%s%s%s",
                 where, at, w >= 0 ? " (weight '" : "", w >= 0 ? built->weights[w].name : "", w >= 0 ? "')" : "");
  }
  free(text);
  free(consts);
  free(data_at);
  return rc;
}
