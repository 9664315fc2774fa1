/*
 * build.c - the front end's public API (frontend.h): find the model file a
 * MODEL argument names, parse it, elaborate the entry, hand back the graph
 * and the model's parameters; list configurations.
 *
 * MODEL is a file, "file:CONFIG", or a bare configuration name looked up in
 * every *.dit file of the models directory (sorted by name).  A name may be
 * defined once in the whole directory: a second definition (in another file
 * or the same one) is an error at it, with a note at the first, both when a
 * name is looked up and when `ditc models` lists them.  Looking through files
 * parses them silently; the file that is then built is parsed again with
 * diagnostics on.  Every model
 * file is read through ir/fileio.h with a 16 MiB cap, so a FIFO, a device or
 * a directory named x.dit - given, or in the models directory - is an error
 * naming it, never a hang or an endless read.
 */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "frontend/elab.h"
#include "frontend/frontend.h"
#include "ir/fileio.h"

const char *fe_models_dir(void) {
  const char *d = getenv("DITC_MODELS");
  if (d && *d) return d;
#ifdef DITC_MODELS_DIR
  return DITC_MODELS_DIR;
#else
  return "models";
#endif
}

static int is_file(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Something other than a regular file or a directory (a FIFO, a device): a
 * name meant as a model file, refused by read_model rather than looked up as
 * a configuration. */
static int is_special(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode);
}

/* FE_MODEL_FILE_MAX (frontend.h) keeps a file that is not a model file
 * (/dev/zero behind a link, a stray dump) from filling memory. */
/* The whole file, NUL-terminated (caller frees); NULL after reporting to d
 * why not (missing, not a regular file, over the cap, unreadable). */
static char *read_model(const char *path, size_t *len, FeDiag *d) {
  char *text;
  IrErr e;
  if (fio_read_all(path, FE_MODEL_FILE_MAX, "a model file", &text, len, &e) == 0) return text;
  fe_error_at(d, path, "cannot read the model file: %s", fio_err_reason(&e, path));
  return NULL;
}

int fe_build_source(const char *label, const char *text, size_t len, const char *config,
                    const FeSetting *sets, int n_sets, const char *entry, FILE *diag,
                    FeModel *out) {
  FeDiag d = {.out = diag};
  FeSource src = {.file = label, .text = text, .len = len};
  Arena arena = {0};
  AstNode *root = NULL;
  memset(out, 0, sizeof *out);
  if (fe_parse(&src, &arena, &d, &root) == 0 && root)
    fe_elaborate(&src, root, config, sets, n_sets, entry, &d, out);
  arena_free(&arena);
  if (!d.n_errors) {
    char *copy = arena_alloc(&out->arena, len + 1);
    memcpy(copy, text, len);
    copy[len] = 0;
    out->file = arena_strdup(&out->arena, label ? label : "<input>");
    out->text = copy;
    out->text_len = len;
  }
  return d.n_errors;
}

static int build_file(const char *path, const char *config, const FeSetting *sets, int n_sets,
                      const char *entry, FILE *diag, FeModel *out) {
  size_t len = 0;
  FeDiag d = {.out = diag};
  char *text = read_model(path, &len, &d);
  if (!text) {
    memset(out, 0, sizeof *out);
    return 1;
  }
  int n = fe_build_source(path, text, len, config, sets, n_sets, entry, diag, out);
  free(text);
  return n;
}

/* The *.dit files of dir, sorted (caller frees each and the array). */
static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static char **list_models(const char *dir, int *n, int *ok) {
  *n = 0;
  DIR *d = opendir(dir);
  *ok = d != NULL;
  if (!d) return NULL;
  char **v = NULL;
  int cap = 0;
  struct dirent *ent;
  while ((ent = readdir(d))) {
    size_t l = strlen(ent->d_name);
    if (l < 5 || strcmp(ent->d_name + l - 4, ".dit")) continue;
    if (*n == cap) {
      cap = cap ? 2 * cap : 8;
      v = xrealloc(v, (size_t)cap * sizeof *v);
    }
    size_t pl = strlen(dir) + l + 2;
    v[*n] = xmalloc(pl);
    snprintf(v[*n], pl, "%s/%s", dir, ent->d_name);
    (*n)++;
  }
  closedir(d);
  if (*n) qsort(v, (size_t)*n, sizeof *v, cmp_str);
  return v;
}

static void free_list(char **v, int n) {
  for (int i = 0; i < n; i++) free(v[i]);
  free(v);
}

/* Calls fn(config_node, src, ctx) for each configuration of the file (src
 * is the file's text, for diagnostics); returns the number of parse errors
 * (reported to d). */
typedef int (*ConfigFn)(const AstNode *config, const FeSource *src, void *ctx);

static int each_config(const char *path, FeDiag *d, FeDiag *io, ConfigFn fn, void *ctx) {
  size_t len = 0;
  char *text = read_model(path, &len, io);
  if (!text) return 1;
  FeSource src = {.file = path, .text = text, .len = len};
  Arena arena = {0};
  AstNode *root = NULL;
  int errors = fe_parse(&src, &arena, d, &root);
  int stop = 0;
  for (int i = 0; root && i < root->l1->n && !stop; i++)
    if (root->l1->v[i]->kind == AST_CONFIG) stop = fn(root->l1->v[i], &src, ctx);
  arena_free(&arena);
  free(text);
  return errors;
}

/* The configurations of the models directory, each name once: where it is
 * first defined.  A name defined again (in another file, or the same one) is
 * an error at the second definition with a note at the first, as the
 * elaborator does for one file (elab_model.c, check_unique). */
typedef struct {
  char *name, *path;
  int line, col;
} Seen;

typedef struct {
  const char *only;  /* look for this name only (NULL: every name) */
  FeDiag *d;         /* where duplicates are reported */
  FILE *out;         /* ditc models: the listing */
  Seen *v;
  int n, cap;
} Configs;

static int add_config(const AstNode *config, const FeSource *src, void *ctx) {
  Configs *s = ctx;
  if (s->only && strcmp(config->s, s->only)) return 0;
  for (int i = 0; i < s->n; i++)
    if (!strcmp(s->v[i].name, config->s)) {
      fe_error(s->d, src, config->loc.line, config->loc.col,
               "configuration '%s' is defined twice in the models directory (%s)", config->s, fe_models_dir());
      FeSource first = {.file = s->v[i].path};
      fe_note(s->d, &first, s->v[i].line, s->v[i].col, "the first definition of '%s' is here", config->s);
      return 0;
    }
  if (s->n == s->cap) s->v = xrealloc(s->v, (size_t)(s->cap = s->cap ? 2 * s->cap : 32) * sizeof *s->v);
  s->v[s->n++] = (Seen){xstrdup(config->s), xstrdup(src->file), config->loc.line, config->loc.col};
  if (s->out) fprintf(s->out, "%s\t%s\n", config->s, src->file);
  return 0;
}

static void free_configs(Configs *s) {
  for (int i = 0; i < s->n; i++) {
    free(s->v[i].name);
    free(s->v[i].path);
  }
  free(s->v);
}

/* Every configuration of the models directory's files (only `only`, when
 * given) into s, duplicates reported to d; parse errors of the files stay
 * quiet (they show when that file is built), a file that cannot be read at
 * all is an error naming it.  Returns the errors reported. */
static int scan_models(char **files, int n, Configs *s, FeDiag *d) {
  FeDiag quiet = {0};
  s->d = d;
  for (int i = 0; i < n && !d->stop; i++) each_config(files[i], &quiet, d, add_config, s);
  return d->n_errors;
}

int fe_build(const char *model_spec, const FeSetting *sets, int n_sets, const char *entry,
             FILE *diag, FeModel *out) {
  memset(out, 0, sizeof *out);
  if (!model_spec || !*model_spec) {
    FeDiag d = {.out = diag};
    fe_error_at(&d, NULL, "no model given");
    return 1;
  }
  if (is_file(model_spec) || is_special(model_spec))
    return build_file(model_spec, NULL, sets, n_sets, entry, diag, out);

  /* file.dit:CONFIG */
  const char *colon = strrchr(model_spec, ':');
  if (colon && colon > model_spec) {
    size_t pl = (size_t)(colon - model_spec);
    char *path = xmalloc(pl + 1);
    memcpy(path, model_spec, pl);
    path[pl] = 0;
    if (is_file(path) || is_special(path)) {
      int n = build_file(path, colon + 1, sets, n_sets, entry, diag, out);
      free(path);
      return n;
    }
    free(path);
  }

  /* a path that does not exist: say so rather than search for it as a name */
  size_t sl = strlen(model_spec);
  if (sl > 4 && !strcmp(model_spec + sl - 4, ".dit"))
    return build_file(model_spec, NULL, sets, n_sets, entry, diag, out);

  /* a configuration name: every file is searched, so that a second
   * definition of it is an error rather than silently the loser */
  const char *dir = fe_models_dir();
  int n = 0, ok;
  char **files = list_models(dir, &n, &ok);
  FeDiag d = {.out = diag};
  Configs s = {.only = model_spec};
  int errors = scan_models(files, n, &s, &d);
  if (!errors && s.n) {
    errors = build_file(s.v[0].path, model_spec, sets, n_sets, entry, diag, out);
  } else if (!errors) {
    Configs all = {0};
    FeDiag none = {0};
    scan_models(files, n, &all, &none);
    size_t cap = 16, used = 0;
    char *names = xmalloc(cap);
    names[0] = 0;
    for (int i = 0; i < all.n; i++) {
      size_t l = strlen(all.v[i].name);
      if (used + l + 3 > cap) names = xrealloc(names, cap = 2 * (used + l + 3));
      used += (size_t)snprintf(names + used, cap - used, "%s%s", used ? ", " : "", all.v[i].name);
    }
    fe_error_at(&d, NULL,
                "unknown model '%s': it is not a file, and no model file in %s declares a configuration of "
                "that name (configurations: %s)",
                model_spec, dir, used ? names : "none");
    free(names);
    free_configs(&all);
    errors = d.n_errors;
  }
  free_configs(&s);
  free_list(files, n);
  return errors;
}

int fe_list_configs(const char *path, FILE *out, FILE *diag) {
  FeDiag d = {.out = diag};
  Configs s = {.out = out, .d = &d};
  if (path) {
    each_config(path, &d, &d, add_config, &s);
    free_configs(&s);
    return d.n_errors;
  }
  int n = 0, ok;
  const char *dir = fe_models_dir();
  char **files = list_models(dir, &n, &ok);
  if (!ok) {
    fe_error_at(&d, dir, "cannot list the models directory: %s", strerror(errno));
    return d.n_errors;
  }
  for (int i = 0; i < n && !d.stop; i++) each_config(files[i], &d, &d, add_config, &s);
  free_configs(&s);
  free_list(files, n);
  return d.n_errors;
}

void fe_model_free(FeModel *m) {
  if (!m) return;
  ir_graph_free(m->graph);
  arena_free(&m->arena);
  memset(m, 0, sizeof *m);
}

const FeParam *fe_param(const FeModel *m, const char *name) {
  for (int i = 0; m && i < m->n_params; i++)
    if (!strcmp(m->params[i].name, name)) return &m->params[i];
  return NULL;
}

int64_t fe_param_int(const FeModel *m, const char *name, int64_t def) {
  const FeParam *p = fe_param(m, name);
  if (!p) return def;
  switch (p->kind) {
  case FE_VAL_INT:
  case FE_VAL_BOOL: return p->i;
  case FE_VAL_FLOAT: return p->f > -9e18 && p->f < 9e18 ? (int64_t)p->f : def;
  default: return def;
  }
}

const char *fe_param_text(const FeParam *p, char *buf, size_t n) {
  switch (p->kind) {
  case FE_VAL_INT: snprintf(buf, n, "%lld", (long long)p->i); break;
  case FE_VAL_FLOAT: snprintf(buf, n, "%.17g", p->f); break;
  case FE_VAL_BOOL: snprintf(buf, n, "%s", p->i ? "true" : "false"); break;
  case FE_VAL_STR: return p->s;
  }
  return buf;
}

double fe_param_float(const FeModel *m, const char *name, double def) {
  const FeParam *p = fe_param(m, name);
  if (!p) return def;
  switch (p->kind) {
  case FE_VAL_INT:
  case FE_VAL_BOOL: return (double)p->i;
  case FE_VAL_FLOAT: return p->f;
  default: return def;
  }
}
