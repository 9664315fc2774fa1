/*
 * pack_plan.c - recording a pack's model, and building a pack's plan again
 * from that record before it runs (pack_plan.h says why).
 *
 * Building again is the compile's own path with the pack's data as its
 * inputs: fe_build_source over the recorded text (labelled with the pack,
 * so a diagnostic cannot be taken for one in the user's own file), the
 * recorded pipeline parsed against the registry and run, cg_plan_build with
 * the plan's entry, precision, batch and tuning row.  The comparison with
 * the pack is cg_pack_plan_matches (codegen/pack_verify.c) and, here, the
 * manifest's model, configuration and every parameter, written as
 * fe_pack_record writes them.
 */
#include <stdlib.h>
#include <string.h>

#include "codegen/cubin_source.h"
#include "frontend/pack_plan.h"

int fe_pack_record(CgPackWriter *w, const FeModel *m, const FeSetting *sets, int n_sets, const PassPipeline *pl,
                   IrErr *err) {
  cg_pack_writer_meta(w, "model", m->model);
  cg_pack_writer_meta(w, "config", m->config ? m->config : "");
  for (int i = 0; i < m->n_params; i++) {
    char v[64];
    cg_pack_writer_param(w, m->params[i].name, fe_param_text(&m->params[i], v, sizeof v));
  }
  CgPackParam *kv = xcalloc((size_t)n_sets + 1, sizeof *kv);
  for (int i = 0; i < n_sets; i++) kv[i] = (CgPackParam){sets[i].name, sets[i].value};
  char *passes = pass_pipeline_text(pl);
  CgPackModel rec = {.file = m->file, .text = m->text, .text_len = m->text_len, .config = m->config ? m->config : "",
                     .sets = kv, .n_sets = n_sets, .passes = passes};
  int rc = cg_pack_writer_model(w, &rec, err);
  free(passes);
  free(kv);
  return rc;
}

/* The manifest's model, configuration and parameters against the model
 * built from the record. */
static int check_manifest(const CgPack *pk, const FeModel *m, IrErr *err) {
  if (strcmp(pk->model, m->model) || strcmp(pk->config, m->config ? m->config : ""))
    return ir_errf(err, "%s: the manifest names model '%s', configuration '%s'; its model record gives '%s', '%s'",
                   pk->path, pk->model, pk->config, m->model, m->config ? m->config : "");
  for (int i = 0; i < m->n_params; i++) {
    char buf[64];
    const char *want = fe_param_text(&m->params[i], buf, sizeof buf), *got = cg_pack_param(pk, m->params[i].name);
    if (!got || strcmp(got, want))
      return ir_errf(err, "%s: the manifest says model parameter %s = %s%.80s%s; its model record gives %s", pk->path,
                     m->params[i].name, got ? "'" : "", got ? got : "(absent)", got ? "'" : "", want);
  }
  if (pk->n_params != m->n_params)
    for (int i = 0; i < pk->n_params; i++)
      if (!fe_param(m, pk->params[i].key))
        return ir_errf(err, "%s: the manifest has a parameter '%.80s' that model '%s' does not", pk->path,
                       pk->params[i].key, m->model);
  return 0;
}

/* The PARAM defaults the rebuilt plan's weights have in graph g, copied
 * into the plan's arena. */
static const float **defaults_of(CgPlan *p, const IrGraph *g) {
  const float **d = arena_alloc(&p->arena, ((size_t)p->n_weights + 1) * sizeof *d);
  for (int i = 0; i < p->n_weights; i++) {
    const CgWeight *w = &p->weights[i];
    d[i] = NULL;
    if (w->param_id < 0) continue;
    for (int k = 0; k < g->n_nodes; k++) {
      const IrNode *n = g->nodes[k];
      if (n->id != w->param_id || n->op != IR_PARAM || !n->data) continue;
      size_t count = 1;
      for (int j = 0; j < w->rank; j++) count *= (size_t)w->shape[j];
      float *v = arena_alloc(&p->arena, count * sizeof *v + 1);
      memcpy(v, n->data, count * sizeof *v);
      d[i] = v;
      break;
    }
  }
  return d;
}

int fe_pack_plan(const CgPack *pk, const CgPackPlan *pp, FILE *diag, FePackPlan *out, IrErr *err) {
  const CgPackModel *rec = &pk->record;
  const CgPlan *stored = pp->plan;
  memset(out, 0, sizeof *out);
  if (rec->text_len > FE_MODEL_FILE_MAX)
    return ir_errf(err, "%s: its model text has %zu bytes; a model file may have %llu", pk->path, rec->text_len,
                   (unsigned long long)FE_MODEL_FILE_MAX);
  FeSetting *sets = xcalloc((size_t)rec->n_sets + 1, sizeof *sets);
  for (int i = 0; i < rec->n_sets; i++) sets[i] = (FeSetting){rec->sets[i].key, rec->sets[i].value};
  size_t ll = strlen(pk->path) + strlen(rec->file) + 32;
  char *label = xmalloc(ll);
  snprintf(label, ll, "%s (model file %s)", pk->path, rec->file);
  FeModel m;
  PassPipeline *pl = xmalloc(sizeof *pl);
  int rc = -1;
  /* step caching's entries (ENTRY.cache_full, ENTRY.cache_step) are ENTRY with the step-cache pass */
  size_t base_len;
  const char *role = pass_step_cache_role(stored->entry, &base_len);
  char *entry = xmalloc(base_len + 1);
  memcpy(entry, stored->entry, base_len);
  entry[base_len] = '\0';
  int errors = fe_build_source(label, rec->text, rec->text_len, rec->config[0] ? rec->config : NULL, sets,
                               rec->n_sets, entry, diag, &m);
  free(entry);
  if (errors) {
    ir_errf(err, "%s: the model it records (file %s%s%s, entry %s) does not build: %d error%s (above)", pk->path,
            rec->file, rec->config[0] ? ", configuration " : "", rec->config, stored->entry, errors,
            errors == 1 ? "" : "s");
    goto out;
  }
  IrErr e;
  if (pass_pipeline_parse(rec->passes, pl, &e)) {
    ir_errf(err, "%s: its pass pipeline '%.200s': %s", pk->path, rec->passes, e.msg);
    goto out_model;
  }
  PassOptions po = {.verify = 1};
  if (pass_pipeline_add_step_cache(pl, role, &e) || pass_pipeline_run(m.graph, pl, &po, &e)) {
    ir_errf(err, "%s: building its model again: %s", pk->path, e.msg);
    goto out_model;
  }
  CgOptions co = {.precision = stored->precision, .batch = stored->batch, .model = m.config ? m.config : m.model,
                  .arch = stored->tuning};
  if (cg_plan_build(m.graph, &co, &out->plan, &e)) {
    ir_errf(err, "%s: building plan %d (%s) again: %s", pk->path, (int)(pp - pk->plans), stored->entry, e.msg);
    goto out_model;
  }
  if (check_manifest(pk, &m, err) || cg_pack_plan_matches(pk, pp, out->plan, m.graph, err)) goto out_model;
  out->view = *pp;
  out->view.plan = out->plan;
  out->view.defaults = defaults_of(out->plan, m.graph);
  /* for the simulated CUDA driver: the CUBINs of this plan were compiled from this source */
  for (int c = 0; c < pp->n_cubins; c++) {
    CgCubinSource note = {out->plan->source, stored->entry, pp->cubins[c].arch, NULL, 0};
    cg_cubin_source_note(pp->cubins[c].image, pp->cubins[c].size, &note);
  }
  rc = 0;
out_model:
  fe_model_free(&m);
out:
  if (rc) fe_pack_plan_free(out);
  free(pl);
  free(label);
  free(sets);
  return rc;
}

void fe_pack_plan_free(FePackPlan *p) {
  if (!p) return;
  cg_plan_free(p->plan);
  memset(p, 0, sizeof *p);
}
