/*
 * weights.c - bind a graph's PARAM nodes to checkpoint tensors, or make
 * deterministic random ones.
 *
 * Binding first turns the file into a list of "sources" in the reference
 * naming: one per file tensor, or, for a checkpoint in the Hugging Face
 * diffusers naming of DiT (recognised by "transformer_blocks.*" names),
 * translated names with attn1.to_q/to_k/to_v stacked row-wise into attn.qkv.
 * A diffusers AutoencoderKL checkpoint (recognised by "decoder.*" and
 * "encoder.*" or "post_quant_conv.*" names) keeps its naming, except that
 * the older attention names of its mid block (query, key, value, proj_attn)
 * become the current ones (to_q, to_k, to_v, to_out.0) and the encoder's
 * tensors (encoder.*, quant_conv.*) are left out and counted, as the decoder
 * (models/vae.dit) does not read them.
 * Then every PARAM node is looked up by name and its shape compared exactly.
 * All problems (missing tensors without a default, shape mismatches, tensors
 * the model does not use) are collected and reported in one message, each
 * list cut to its first ~20 entries to fit IrErr.  Only when there are none is
 * anything converted to f32.
 *
 * Random weights: each tensor draws N(0, 0.02) from its own splitmix64 stream,
 * seeded by the run's seed and a hash of the tensor's name, so adding or
 * reordering parameters does not change the others.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/weights.h"

/* ---- growable list of owned strings --------------------------------------- */

typedef struct {
  char **s;
  int n, cap;
} StrList;

static void list_add(StrList *l, char *s) {
  if (l->n == l->cap) {
    l->cap = l->cap ? 2 * l->cap : 16;
    l->s = xrealloc(l->s, (size_t)l->cap * sizeof *l->s);
  }
  l->s[l->n++] = s;
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...) {
  va_list ap;
  va_start(ap, f);
  int n = vsnprintf(NULL, 0, f, ap);
  va_end(ap);
  char *s = xmalloc((size_t)n + 1);
  va_start(ap, f);
  vsnprintf(s, (size_t)n + 1, f, ap);
  va_end(ap);
  return s;
}

static void list_free(StrList *l) {
  for (int i = 0; i < l->n; i++) free(l->s[i]);
  free(l->s);
  memset(l, 0, sizeof *l);
}

/* ---- sources: the checkpoint in reference naming ---------------------------- */

typedef struct {
  char *name;  /* reference naming */
  char *orig;  /* file naming when translated, else NULL */
  int rank;
  int64_t shape[ST_MAX_RANK];
  const StTensor *part[3]; /* stacked along axis 0 */
  int n_part;
  int used;
  int bad; /* could not be assembled; already reported */
} Source;

typedef struct {
  Source *v;
  int n, cap;
} Sources;

static Source *source_add(Sources *s, char *name, char *orig) {
  if (s->n == s->cap) {
    s->cap = s->cap ? 2 * s->cap : 64;
    s->v = xrealloc(s->v, (size_t)s->cap * sizeof *s->v);
  }
  Source *r = &s->v[s->n++];
  memset(r, 0, sizeof *r);
  r->name = name;
  r->orig = orig;
  return r;
}

static void sources_free(Sources *s) {
  for (int i = 0; i < s->n; i++) {
    free(s->v[i].name);
    free(s->v[i].orig);
  }
  free(s->v);
}

static void source_set_one(Source *r, const StTensor *t) {
  r->part[0] = t;
  r->n_part = 1;
  r->rank = t->rank;
  memcpy(r->shape, t->shape, sizeof r->shape);
}

static int starts_with(const char *s, const char *p) { return !strncmp(s, p, strlen(p)); }

/* diffusers -> reference, by prefix; the rest of the name (".weight", ".bias")
 * is carried over.  %d is the block index. */
static const struct {
  const char *from, *to;
} top_map[] = {
    {"pos_embed.proj.", "x_embedder.proj."},
    {"proj_out_1.", "final_layer.adaLN_modulation.1."},
    {"proj_out_2.", "final_layer.linear."},
};
static const struct {
  const char *from, *to;
  int block0_only; /* the shared embedders, stored again in every block */
} block_map[] = {
    {"norm1.emb.timestep_embedder.linear_1.", "t_embedder.mlp.0.", 1},
    {"norm1.emb.timestep_embedder.linear_2.", "t_embedder.mlp.2.", 1},
    {"norm1.emb.class_embedder.embedding_table.", "y_embedder.embedding_table.", 1},
    {"norm1.linear.", "blocks.%d.adaLN_modulation.1.", 0},
    {"attn1.to_out.0.", "blocks.%d.attn.proj.", 0},
    {"ff.net.0.proj.", "blocks.%d.mlp.fc1.", 0},
    {"ff.net.2.", "blocks.%d.mlp.fc2.", 0},
};

typedef struct {
  char *key; /* "blocks.3.attn.qkv.weight" */
  int block;
  char *suffix;
  const StTensor *qkv[3];
} QkvGroup;

/* The q/k/v groups met so far, and an open-addressing index over their keys
 * (a checkpoint may have 100,000 tensors: looking each group up by a linear
 * search would be quadratic). */
typedef struct {
  QkvGroup *v;
  int n, cap;
  int *slot;    /* group index + 1, 0 = empty; size mask + 1, a power of two */
  size_t mask;
} QkvGroups;

/* FNV-1a: names to qkv group slots, and random weights' streams. */
static uint64_t fnv1a(const char *s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
  return h;
}

static int *qkv_slot(QkvGroups *gs, const char *key) {
  for (size_t i = fnv1a(key) & gs->mask;; i = (i + 1) & gs->mask)
    if (!gs->slot[i] || !strcmp(gs->v[gs->slot[i] - 1].key, key)) return &gs->slot[i];
}

/* The group named key, created when new. */
static QkvGroup *qkv_group(QkvGroups *gs, char *key, int block, const char *suffix) {
  if (2 * (size_t)(gs->n + 1) > gs->mask + 1 || !gs->slot) { /* grow: at most half full */
    size_t size = gs->slot ? 2 * (gs->mask + 1) : 64;
    free(gs->slot);
    gs->slot = xcalloc(size, sizeof *gs->slot);
    gs->mask = size - 1;
    for (int j = 0; j < gs->n; j++) *qkv_slot(gs, gs->v[j].key) = j + 1;
  }
  int *slot = qkv_slot(gs, key);
  if (*slot) {
    free(key);
    return &gs->v[*slot - 1];
  }
  if (gs->n == gs->cap) {
    gs->cap = gs->cap ? 2 * gs->cap : 16;
    gs->v = xrealloc(gs->v, (size_t)gs->cap * sizeof *gs->v);
  }
  QkvGroup *gr = &gs->v[gs->n++];
  *gr = (QkvGroup){.key = key, .block = block, .suffix = xstrdup(suffix)};
  *slot = gs->n;
  return gr;
}

static void qkv_groups_free(QkvGroups *gs) {
  for (int j = 0; j < gs->n; j++) {
    free(gs->v[j].key);
    free(gs->v[j].suffix);
  }
  free(gs->v);
  free(gs->slot);
}

/* "transformer_blocks.<i>.<rest>": rest and i, or NULL. */
static const char *block_rest(const char *name, int *block) {
  const char *p = name + strlen("transformer_blocks.");
  if (!starts_with(name, "transformer_blocks.") || *p < '0' || *p > '9') return NULL;
  int b = 0, digits = 0;
  for (; *p >= '0' && *p <= '9'; p++)
    if (++digits > 6) return NULL;
    else b = b * 10 + (*p - '0');
  if (*p != '.') return NULL;
  *block = b;
  return p + 1;
}

/* Translate one diffusers-named tensor: adds a source, joins a qkv group, or
 * drops a per-block copy of the shared embedders. */
static void translate(Sources *out, QkvGroups *groups, const StTensor *t) {
  const char *name = t->name;
  for (size_t i = 0; i < sizeof top_map / sizeof top_map[0]; i++)
    if (starts_with(name, top_map[i].from)) {
      Source *r = source_add(out, fmt("%s%s", top_map[i].to, name + strlen(top_map[i].from)),
                             xstrdup(name));
      source_set_one(r, t);
      return;
    }
  int block;
  const char *rest = block_rest(name, &block);
  if (rest) {
    if (block > 0 && starts_with(rest, "norm1.emb.")) return; /* copies of block 0's */
    for (size_t i = 0; i < sizeof block_map / sizeof block_map[0]; i++)
      if (starts_with(rest, block_map[i].from) && (!block_map[i].block0_only || block == 0)) {
        char *to = fmt(block_map[i].to, block);
        Source *r = source_add(out, fmt("%s%s", to, rest + strlen(block_map[i].from)), xstrdup(name));
        free(to);
        source_set_one(r, t);
        return;
      }
    static const char *const qkv_from[3] = {"attn1.to_q.", "attn1.to_k.", "attn1.to_v."};
    for (int k = 0; k < 3; k++)
      if (starts_with(rest, qkv_from[k])) {
        const char *suffix = rest + strlen(qkv_from[k]);
        qkv_group(groups, fmt("blocks.%d.attn.qkv.%s", block, suffix), block, suffix)->qkv[k] = t;
        return;
      }
  }
  /* Not a diffusers name we know: keep it, so it is reported if unused. */
  source_set_one(source_add(out, xstrdup(name), NULL), t);
}

/* Stack each complete q/k/v triple into one source; incomplete ones leave
 * their parts as plain (unused, so reported) sources. */
static void finish_qkv(Sources *out, QkvGroups *groups, StrList *mismatched) {
  for (int j = 0; j < groups->n; j++) {
    QkvGroup *gr = &groups->v[j];
    if (!gr->qkv[0] || !gr->qkv[1] || !gr->qkv[2]) {
      for (int k = 0; k < 3; k++)
        if (gr->qkv[k]) source_set_one(source_add(out, xstrdup(gr->qkv[k]->name), NULL), gr->qkv[k]);
      continue;
    }
    Source *r = source_add(out, gr->key,
                           fmt("transformer_blocks.%d.attn1.to_{q,k,v}.%s", gr->block, gr->suffix));
    gr->key = NULL;
    const StTensor *q = gr->qkv[0];
    int ok = q->rank >= 1;
    for (int k = 1; k < 3 && ok; k++) {
      const StTensor *o = gr->qkv[k];
      ok = o->rank == q->rank && !memcmp(o->shape + 1, q->shape + 1, (size_t)(q->rank - 1) * sizeof(int64_t));
    }
    if (!ok) {
      char a[96], b[96], c[96];
      list_add(mismatched,
               fmt("%s: to_q/to_k/to_v shapes %s, %s, %s cannot be stacked", r->orig,
                   rt_dims_str(q->rank, q->shape, a, sizeof a),
                   rt_dims_str(gr->qkv[1]->rank, gr->qkv[1]->shape, b, sizeof b),
                   rt_dims_str(gr->qkv[2]->rank, gr->qkv[2]->shape, c, sizeof c)));
      r->bad = 1;
      continue;
    }
    r->rank = q->rank;
    memcpy(r->shape, q->shape, sizeof r->shape);
    r->shape[0] = q->shape[0] + gr->qkv[1]->shape[0] + gr->qkv[2]->shape[0];
    for (int k = 0; k < 3; k++) r->part[k] = gr->qkv[k];
    r->n_part = 3;
  }
}

static int source_cmp(const void *a, const void *b) {
  return strcmp(((const Source *)a)->name, ((const Source *)b)->name);
}

static Source *source_find(Sources *s, const char *name) {
  Source key = {.name = (char *)name};
  return bsearch(&key, s->v, (size_t)s->n, sizeof *s->v, source_cmp);
}

static int is_diffusers(const StFile *f) {
  for (int i = 0; i < st_count(f); i++)
    if (starts_with(st_get(f, i)->name, "transformer_blocks.")) return 1;
  return 0;
}

/* ---- AutoencoderKL (the VAE decoder) ------------------------------------------- */

static int is_vae(const StFile *f) {
  int dec = 0, other = 0;
  for (int i = 0; i < st_count(f); i++) {
    const char *n = st_get(f, i)->name;
    dec |= starts_with(n, "decoder.");
    other |= starts_with(n, "encoder.") || starts_with(n, "post_quant_conv.");
  }
  return dec && other;
}

/* "...attentions.<i>.query.weight" -> "...attentions.<i>.to_q.weight" (and
 * key, value, proj_attn); NULL when the name has none of the old names. */
static char *vae_new_attention_name(const char *name) {
  static const struct {
    const char *from, *to;
  } renames[] = {{"query.", "to_q."}, {"key.", "to_k."}, {"value.", "to_v."}, {"proj_attn.", "to_out.0."}};
  const char *a = strstr(name, ".attentions.");
  if (!a) return NULL;
  const char *p = a + strlen(".attentions.");
  if (*p < '0' || *p > '9') return NULL;
  while (*p >= '0' && *p <= '9') p++;
  if (*p++ != '.') return NULL;
  for (size_t i = 0; i < sizeof renames / sizeof renames[0]; i++)
    if (starts_with(p, renames[i].from))
      return fmt("%.*s%s%s", (int)(p - name), name, renames[i].to, p + strlen(renames[i].from));
  return NULL;
}

static void vae_sources(const StFile *f, Sources *out, int *ignored) {
  for (int i = 0; i < st_count(f); i++) {
    const StTensor *t = st_get(f, i);
    if (starts_with(t->name, "encoder.") || starts_with(t->name, "quant_conv.")) {
      ++*ignored;
      continue;
    }
    char *renamed = vae_new_attention_name(t->name);
    source_set_one(renamed ? source_add(out, renamed, xstrdup(t->name)) : source_add(out, xstrdup(t->name), NULL), t);
  }
}

static void build_sources(const StFile *f, Sources *out, StrList *mismatched, int *vae_ignored) {
  if (is_vae(f)) {
    vae_sources(f, out, vae_ignored);
  } else if (!is_diffusers(f)) {
    for (int i = 0; i < st_count(f); i++)
      source_set_one(source_add(out, xstrdup(st_get(f, i)->name), NULL), st_get(f, i));
  } else {
    QkvGroups groups = {0};
    for (int i = 0; i < st_count(f); i++) translate(out, &groups, st_get(f, i));
    finish_qkv(out, &groups, mismatched);
    qkv_groups_free(&groups);
  }
  qsort(out->v, (size_t)out->n, sizeof *out->v, source_cmp);
  /* Two file tensors landing on one name (e.g. both namings in one file). */
  for (int i = 1; i < out->n; i++)
    if (!strcmp(out->v[i].name, out->v[i - 1].name)) {
      const Source *a = &out->v[i - 1], *b = &out->v[i];
      list_add(mismatched, fmt("%s: given twice (as %s and %s)", b->name, a->orig ? a->orig : a->name,
                               b->orig ? b->orig : b->name));
      out->v[i].used = 1;
    }
}

/* ---- the one message -------------------------------------------------------- */

/* Append to buf; len counts what would have been written, so callers can
 * tell that it did not fit. */
static size_t app(char *buf, size_t cap, size_t len, const char *f, ...)
    __attribute__((format(printf, 4, 5)));
static size_t app(char *buf, size_t cap, size_t len, const char *f, ...) {
  va_list ap;
  va_start(ap, f);
  int k = len < cap ? vsnprintf(buf + len, cap - len, f, ap) : vsnprintf(NULL, 0, f, ap);
  va_end(ap);
  return len + (size_t)(k > 0 ? k : 0);
}

static size_t append_list(char *buf, size_t cap, size_t len, const char *title, const StrList *l,
                          int limit, const char *sep) {
  if (!l->n) return len;
  len = app(buf, cap, len, "\n  %s: ", title);
  for (int i = 0; i < l->n && i < limit; i++) len = app(buf, cap, len, "%s%s", i ? sep : "", l->s[i]);
  if (l->n > limit) len = app(buf, cap, len, " ... and %d more", l->n - limit);
  return len;
}

static int report(IrErr *err, const char *file, const StrList *missing, const StrList *mismatched,
                  const StrList *unexpected) {
  if (!err) return -1;
  char big[8192];
  size_t cap = sizeof big;
  for (int limit = 20;; limit--) {
    size_t len = app(big, cap, 0, "%s: checkpoint does not fit the model (%d missing, "
                     "%d mismatched, %d unexpected)",
                     file, missing->n, mismatched->n, unexpected->n);
    len = append_list(big, cap, len, "missing", missing, limit, ", ");
    len = append_list(big, cap, len, "mismatched", mismatched, limit, "; ");
    len = append_list(big, cap, len, "unexpected", unexpected, limit, ", ");
    if (len < sizeof err->msg || limit <= 1) break;
  }
  size_t n = strlen(big);
  if (n >= sizeof err->msg) /* even one of each is too long: cut and say so */
    memcpy(big + sizeof err->msg - 5, " ...", 5);
  return ir_errf(err, "%s", big);
}

/* ---- binding ------------------------------------------------------------------ */

static int param_shape(const IrNode *p, int64_t *dims) {
  for (int i = 0; i < p->shape.rank; i++) {
    if (ir_dim_is_sym(p->shape.d[i])) return -1;
    dims[i] = p->shape.d[i];
  }
  return 0;
}

/* A checkpoint already quantised (TorchAO, bitsandbytes, torch.ao): integer
 * levels where float weights are expected, or the scales, zero points and
 * packed levels those tools store beside them.  ditc reads float weights and
 * quantises itself; such a file is refused naming its first such tensor
 * (names the model has as parameters never count). */
static const char *const QUANT_SUFFIXES[] = {"_scale", ".scale", "qweight", ".SCB", ".zero_point", "_zero_point",
                                             "scale_inv", ".absmax", ".quant_map", "quant_state", "_packed_params",
                                             ".weight_format"};

static int is_param_name(IrNode *const *params, int np, const char *name) {
  for (int i = 0; i < np; i++)
    if (params[i]->name && !strcmp(params[i]->name, name)) return 1;
  return 0;
}

static int refuse_quantised(const StFile *f, IrNode *const *params, int np, IrErr *err) {
  static const char accepted[] = "ditc reads float checkpoints (F32, F16 or BF16 weights) and quantises them itself "
                                 "(--quantize w8|w8a8|fp8): give the float checkpoint";
  for (int i = 0; i < st_count(f); i++) {
    const StTensor *t = st_get(f, i);
    size_t n = strlen(t->name);
    int param = is_param_name(params, np, t->name);
    if ((t->dtype == ST_I8 || t->dtype == ST_U8) && (param || (n >= 6 && !strcmp(t->name + n - 6, "weight"))))
      return ir_errf(err, "%s: tensor '%s' is %s where a float weight is expected: a quantised checkpoint; %s",
                     st_path(f), t->name, st_dtype_name(t->dtype), accepted);
    if (param) continue;
    for (size_t k = 0; k < sizeof QUANT_SUFFIXES / sizeof QUANT_SUFFIXES[0]; k++) {
      size_t m = strlen(QUANT_SUFFIXES[k]);
      if (n >= m && (!strcmp(t->name + n - m, QUANT_SUFFIXES[k]) ||
                     (QUANT_SUFFIXES[k][0] != '.' && QUANT_SUFFIXES[k][0] != '_' && strstr(t->name, QUANT_SUFFIXES[k]))))
        return ir_errf(err, "%s: tensor '%s' is a quantisation's %s beside the weights: a quantised checkpoint; %s",
                       st_path(f), t->name, QUANT_SUFFIXES[k][0] == '.' || QUANT_SUFFIXES[k][0] == '_' ? QUANT_SUFFIXES[k] + 1 : QUANT_SUFFIXES[k], accepted);
    }
  }
  return 0;
}

int weights_bind_file(IrGraph *g, const StFile *f, Weights *w, IrErr *err) {
  memset(w, 0, sizeof *w);
  IrNode **params;
  int np = ir_graph_params(g, &params);
  if (refuse_quantised(f, params, np, err)) return -1;
  Sources src = {0};
  StrList missing = {0}, mismatched = {0}, unexpected = {0};
  int vae_ignored = 0;
  build_sources(f, &src, &mismatched, &vae_ignored);

  /* Pass 1: decide every parameter, collecting problems. */
  Source **bind = xcalloc((size_t)np + 1, sizeof *bind);
  for (int i = 0; i < np; i++) {
    const IrNode *p = params[i];
    int64_t dims[IR_MAX_RANK];
    char a[128], b[128];
    if (param_shape(p, dims)) {
      list_add(&mismatched, fmt("%s: model shape %s is not fixed", p->name,
                                ir_shape_str(&p->shape, a, sizeof a)));
      continue;
    }
    Source *s = source_find(&src, p->name);
    if (!s) {
      if (!p->data) list_add(&missing, xstrdup(p->name));
      continue;
    }
    s->used = 1;
    if (s->bad) continue;
    int float_parts = 1;
    for (int k = 0; k < s->n_part; k++)
      if (s->part[k]->dtype != ST_F32 && s->part[k]->dtype != ST_F16 && s->part[k]->dtype != ST_BF16) {
        list_add(&mismatched, fmt("%s: stored as %s; weights must be F32, F16 or BF16", s->part[k]->name,
                                  st_dtype_name(s->part[k]->dtype)));
        float_parts = 0;
      }
    if (!float_parts) continue;
    if (s->rank != p->shape.rank || memcmp(s->shape, dims, (size_t)s->rank * sizeof *dims)) {
      list_add(&mismatched, fmt("%s: checkpoint has %s, model expects %s", p->name,
                                rt_dims_str(s->rank, s->shape, a, sizeof a),
                                rt_dims_str(p->shape.rank, dims, b, sizeof b)));
      continue;
    }
    bind[i] = s;
  }
  for (int i = 0; i < src.n && !g->dropped_params; i++)
    if (!src.v[i].used)
      list_add(&unexpected, src.v[i].orig ? fmt("%s (as %s)", src.v[i].orig, src.v[i].name)
                                          : xstrdup(src.v[i].name));

  int rc = 0;
  if (missing.n || mismatched.n || unexpected.n) {
    rc = report(err, st_path(f), &missing, &mismatched, &unexpected);
    goto out;
  }

  /* Pass 2: convert. */
  w->cap = g->next_id;
  w->data = xcalloc((size_t)w->cap + 1, sizeof *w->data);
  for (int i = 0; i < np && !rc; i++) {
    const IrNode *p = params[i];
    DITC_ASSERT(p->id >= 0 && p->id < w->cap);
    int64_t numel = ir_shape_numel(&p->shape, 1);
    w->n_params += numel;
    if (w->data[p->id]) continue; /* the same node listed twice */
    float *buf = xmalloc((size_t)(numel ? numel : 1) * sizeof *buf);
    w->data[p->id] = buf;
    if (!bind[i]) { /* default */
      memcpy(buf, p->data, (size_t)numel * sizeof *buf);
      continue;
    }
    float *start = buf;
    for (int k = 0; k < bind[i]->n_part && !rc; k++) {
      const StTensor *t = bind[i]->part[k];
      rc = st_to_f32(t, buf, err);
      buf += t->nbytes / st_dtype_size(t->dtype);
    }
    int64_t bad = 0;
    for (int64_t j = 0; j < numel; j++) bad += !isfinite(start[j]);
    if (bad) {
      if (!w->nonfinite_tensors++) w->nonfinite_first = p->name;
      w->nonfinite += bad;
    }
  }
  if (rc) weights_free(w);
  else w->vae_encoder_ignored = vae_ignored;

out:
  free(bind);
  sources_free(&src);
  list_free(&missing);
  list_free(&mismatched);
  list_free(&unexpected);
  return rc;
}

int weights_load(IrGraph *g, const char *path, Weights *w, IrErr *err) {
  memset(w, 0, sizeof *w);
  StFile *f = st_open(path, err);
  if (!f) return -1;
  int rc = weights_bind_file(g, f, w, err);
  st_close(f);
  return rc;
}

/* ---- random weights ------------------------------------------------------------ */

static uint64_t splitmix64(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Uniform in (0, 1]: never 0, so log() is finite. */
static double uniform01(uint64_t *s) { return ((splitmix64(s) >> 11) + 1) * 0x1.0p-53; }

int weights_random(IrGraph *g, uint64_t seed, Weights *w, IrErr *err) {
  memset(w, 0, sizeof *w);
  IrNode **params;
  int np = ir_graph_params(g, &params);
  for (int i = 0; i < np; i++) {
    int64_t dims[IR_MAX_RANK];
    char a[128];
    if (param_shape(params[i], dims))
      return ir_errf(err, "%s: model shape %s is not fixed", params[i]->name,
                     ir_shape_str(&params[i]->shape, a, sizeof a));
  }
  w->cap = g->next_id;
  w->data = xcalloc((size_t)w->cap + 1, sizeof *w->data);
  for (int i = 0; i < np; i++) {
    const IrNode *p = params[i];
    DITC_ASSERT(p->id >= 0 && p->id < w->cap);
    int64_t numel = ir_shape_numel(&p->shape, 1);
    w->n_params += numel;
    if (w->data[p->id]) continue;
    float *buf = xmalloc((size_t)(numel ? numel : 1) * sizeof *buf);
    w->data[p->id] = buf;
    if (p->data) {
      memcpy(buf, p->data, (size_t)numel * sizeof *buf);
      continue;
    }
    /* Box-Muller, both outputs used; an exact zero is redrawn so every
     * element, not just every tensor, is non-zero. */
    uint64_t s = seed ^ fnv1a(p->name);
    splitmix64(&s);
    for (int64_t k = 0; k < numel;) {
      double r = sqrt(-2.0 * log(uniform01(&s))), th = 2.0 * M_PI * uniform01(&s);
      float z[2] = {(float)(0.02 * r * cos(th)), (float)(0.02 * r * sin(th))};
      for (int j = 0; j < 2 && k < numel; j++)
        if (z[j] != 0.0f) buf[k++] = z[j];
    }
  }
  return 0;
}

int weights_open(IrGraph *g, const char *spec, Weights *w, IrErr *err) {
  memset(w, 0, sizeof *w);
  if (!spec || !*spec) return ir_errf(err, "no weights given (a path, \"random\" or \"random:SEED\")");
  if (!strcmp(spec, "random")) return weights_random(g, 0, w, err);
  if (starts_with(spec, "random:")) {
    const char *s = spec + 7;
    char *end;
    errno = 0;
    unsigned long long seed = strtoull(s, &end, 10);
    if (*s < '0' || *s > '9' || *end || errno)
      return ir_errf(err, "bad seed in '%s': expected random:N with N a non-negative integer "
                     "below 2^64", spec);
    return weights_random(g, (uint64_t)seed, w, err);
  }
  if (weights_load(g, spec, w, err)) return -1;
  if (w->vae_encoder_ignored)
    fprintf(stderr, "ditc: note: %s: %d encoder tensors (encoder.*, quant_conv.*) ignored: decoding reads only "
            "decoder.* and post_quant_conv.*\n", spec, w->vae_encoder_ignored);
  /* Not an error (a checkpoint may mean it), but worth a word: NaN weights
   * make NaN samples. */
  if (w->nonfinite)
    fprintf(stderr, "ditc: warning: %s: %lld NaN or infinite values in %d tensor%s (the first: %s)\n", spec,
            (long long)w->nonfinite, w->nonfinite_tensors, w->nonfinite_tensors == 1 ? "" : "s",
            w->nonfinite_first);
  return 0;
}

const float *weights_get(const Weights *w, const IrNode *param) {
  if (!w || !w->data || param->id < 0 || param->id >= w->cap) return NULL;
  return w->data[param->id];
}

void weights_free(Weights *w) {
  if (!w) return;
  for (int i = 0; i < w->cap && w->data; i++) free(w->data[i]);
  free(w->data);
  memset(w, 0, sizeof *w);
}
