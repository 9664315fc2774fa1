/*
 * frontend.h - the DSL front end: parse a model file, elaborate one of its
 * entry points into an IrGraph.  The language is described in
 * frontend/LANGUAGE.md.
 *
 * Diagnostics go to the given stream as `file:line:col: error: ...`, the source
 * line and a caret; the front end reports every error it can find in one run
 * and never exits.
 */
#ifndef DITC_FRONTEND_H
#define DITC_FRONTEND_H

#include "ir/ir.h"

/* `--set NAME=VALUE`: VALUE is parsed as the model parameter's declared type. */
typedef struct {
  const char *name;
  const char *value;
} FeSetting;

typedef enum { FE_VAL_INT, FE_VAL_FLOAT, FE_VAL_BOOL, FE_VAL_STR } FeValKind;

typedef struct {
  const char *name;
  FeValKind kind;
  int64_t i;      /* INT, BOOL */
  double f;       /* FLOAT */
  const char *s;  /* STR */
} FeParam;

/* The result of building: the graph and the model's resolved parameters. */
typedef struct {
  IrGraph *graph;
  const char *model;     /* model name, e.g. "dit" */
  const char *config;    /* configuration name, e.g. "DiT-S/2", or NULL */
  FeParam *params;       /* every model parameter after defaults, config, --set */
  int n_params;
  const char **entries;  /* the names of the model's entries, in file order */
  int n_entries;
  /* The model file it was built from: its name as given and its whole text
   * (NUL-terminated, text_len bytes), what a pack records to build the
   * model again (frontend/pack_plan.h).  (Added later.) */
  const char *file;
  const char *text;
  size_t text_len;
  /* The pass pipeline the graph went through with every decision a pass
   * took from data spelled out (PassOptions.resolved), in the arena; NULL
   * before the passes ran (the command line's cli_build runs them). */
  struct PassPipeline *passes;
  Arena arena;           /* owns params, names and the text */
} FeModel;

/* A model file is DSL text, far below this.  Every model file is read under
 * this cap, and a model text from a pack is held to it. */
#define FE_MODEL_FILE_MAX ((uint64_t)16 << 20)

/* model_spec: "path/to/file.dit", "path/to/file.dit:CONFIG", or a bare
 * configuration name ("DiT-S/2") looked up in the models directory.
 * entry: "forward", "forward_with_cfg", ... (an `entry` of the model), or NULL
 * (as below).
 * Returns 0, or the number of errors reported on diag (> 0). */
int fe_build(const char *model_spec, const FeSetting *sets, int n_sets, const char *entry,
             FILE *diag, FeModel *out);
/* The same from a source text in memory (fuzzing, tests): `label` names it in
 * diagnostics; config NULL means the file's last model with its defaults and
 * entry NULL means "forward", or the model's first entry when it has no
 * forward.  fe_build uses it.  *out is zeroed first and owns nothing unless 0
 * is returned. */
int fe_build_source(const char *label, const char *text, size_t len, const char *config,
                    const FeSetting *sets, int n_sets, const char *entry, FILE *diag,
                    FeModel *out);
void fe_model_free(FeModel *m);

const FeParam *fe_param(const FeModel *m, const char *name);
/* Convenience: the parameter as a number (bools as 0/1); `def` if absent. */
int64_t fe_param_int(const FeModel *m, const char *name, int64_t def);
double fe_param_float(const FeModel *m, const char *name, double def);
/* The parameter's value as text, as a pack's manifest records it ("4",
 * "4.0000000000000000" as %.17g, "true", a string as is): in buf, or p->s. */
const char *fe_param_text(const FeParam *p, char *buf, size_t n);

/* Configurations declared in a model file (or, for NULL, in every file of the
 * models directory), for `ditc models`.  Writes "name\tfile" lines. */
int fe_list_configs(const char *path, FILE *out, FILE *diag);

/* The models directory: $DITC_MODELS, else the build's DITC_MODELS_DIR. */
const char *fe_models_dir(void);

#endif
