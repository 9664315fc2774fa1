/*
 * pack_write.c - writing .ditpack files (the layout is in pack.h).
 *
 * Each plan is serialized when it is added (its JSON, source and constants
 * are copied), so the caller may free it; weights blobs are only borrowed and
 * hashed, and a blob whose size and SHA-256 equal an earlier one's is not
 * stored twice.  Saving lays the sections out at 64-byte boundaries, hashes
 * them into the table of contents and writes them to an output of
 * ir/fileio.h (a temporary file next to the target, fsync'd and renamed into
 * place).
 */
#include "codegen/bytes.h"
#include "codegen/pack_format.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>


typedef struct {
  uint32_t kind, ref;
  char arch[8];
  unsigned char *own;       /* owned bytes, or NULL */
  const void *data;         /* own, or a borrowed blob */
  size_t size;
  unsigned char sha[32];
} WSec;

struct CgPackWriter {
  json_t *meta, *params;
  json_t *model;            /* the MODEL record, or NULL until cg_pack_writer_model */
  char *model_text;
  size_t model_text_len;
  WSec *secs;
  int n_secs, cap_secs;
  int n_plans, n_blobs;
};

CgPackWriter *cg_pack_writer_new(void) {
  CgPackWriter *w = xcalloc(1, sizeof *w);
  w->meta = json_object();
  w->params = json_object();
  return w;
}

void cg_pack_writer_free(CgPackWriter *w) {
  if (!w) return;
  json_decref(w->meta);
  json_decref(w->params);
  json_decref(w->model);
  free(w->model_text);
  for (int i = 0; i < w->n_secs; i++) free(w->secs[i].own);
  free(w->secs);
  free(w);
}

void cg_pack_writer_meta(CgPackWriter *w, const char *key, const char *value) {
  json_object_set_new(w->meta, key, json_string(value ? value : ""));
}

void cg_pack_writer_param(CgPackWriter *w, const char *key, const char *value) {
  json_object_set_new(w->params, key, json_string(value ? value : ""));
}

/* A JSON string for s, or NULL when s is not UTF-8 (after saying which). */
static json_t *utf8(const char *s, const char *what, IrErr *err) {
  json_t *v = json_string(s ? s : "");
  if (!v) ir_errf(err, "the %s '%.200s' is not UTF-8 text: a pack records it as JSON", what, s);
  return v;
}

int cg_pack_writer_model(CgPackWriter *w, const CgPackModel *m, IrErr *err) {
  json_t *rec = json_object(), *sets = json_array(), *v;
  json_object_set_new(rec, "sets", sets);
  int rc = -1;
  for (int i = 0; i < m->n_sets; i++) {
    json_t *kv = json_array();
    json_array_append_new(sets, kv);
    if (!(v = utf8(m->sets[i].key, "setting", err)) || json_array_append_new(kv, v) ||
        !(v = utf8(m->sets[i].value, "setting's value", err)) || json_array_append_new(kv, v))
      goto out;
  }
  if (!(v = utf8(m->file, "model file name", err)) || json_object_set_new(rec, "file", v) ||
      !(v = utf8(m->config, "configuration", err)) || json_object_set_new(rec, "config", v) ||
      !(v = utf8(m->passes ? m->passes : "none", "pass pipeline", err)) || json_object_set_new(rec, "passes", v))
    goto out;
  json_decref(w->model);
  w->model = rec;
  rec = NULL;
  free(w->model_text);
  w->model_text = xmalloc(m->text_len + 1);
  memcpy(w->model_text, m->text, m->text_len);
  w->model_text_len = m->text_len;
  rc = 0;
out:
  json_decref(rec);
  return rc;
}

static WSec *add_sec(CgPackWriter *w, uint32_t kind, uint32_t ref, const char *arch) {
  if (w->n_secs == w->cap_secs)
    w->secs = xrealloc(w->secs, (size_t)(w->cap_secs = w->cap_secs ? 2 * w->cap_secs : 16) * sizeof *w->secs);
  WSec *s = &w->secs[w->n_secs++];
  memset(s, 0, sizeof *s);
  s->kind = kind;
  s->ref = ref;
  if (arch) memcpy(s->arch, arch, strnlen(arch, sizeof s->arch)); /* NUL-padded, not terminated */
  return s;
}

static void sec_own(WSec *s, void *data, size_t size) {
  s->own = data;
  s->data = data;
  s->size = size;
  sha256(data, size, s->sha);
}

static json_t *shape_json(int rank, const int64_t *shape) {
  json_t *a = json_array();
  for (int i = 0; i < rank; i++) json_array_append_new(a, json_integer(shape[i]));
  return a;
}

static json_t *ref_json(CgRef r) {
  json_t *a = json_array();
  json_array_append_new(a, json_integer(r.space));
  json_array_append_new(a, json_integer(r.offset));
  return a;
}

static json_t *dim3_json(const uint32_t *d) {
  json_t *a = json_array();
  for (int i = 0; i < 3; i++) json_array_append_new(a, json_integer(d[i]));
  return a;
}

static json_t *io_json(const CgIo *io, int n) {
  json_t *a = json_array();
  for (int i = 0; i < n; i++)
    json_array_append_new(a, json_pack("{s:s, s:s, s:o, s:I}", "name", io[i].name ? io[i].name : "",
                                       "dtype", ir_dtype_name(io[i].dtype), "shape",
                                       shape_json(io[i].rank, io[i].shape), "offset",
                                       (json_int_t)io[i].offset));
  return a;
}

static json_t *gemm_json(const CgGemm *g) {
  json_t *o = json_object();
  json_object_set_new(o, "dtype", json_string(ir_dtype_name(g->dtype)));
  json_object_set_new(o, "d_dtype", json_string(ir_dtype_name(g->d_dtype)));
  json_object_set_new(o, "trans_a", json_integer(g->trans_a));
  json_object_set_new(o, "trans_b", json_integer(g->trans_b));
  const char *names[] = {"m", "n", "k", "batch", "lda", "ldb", "ldd", "stride_a", "stride_b", "stride_d"};
  const int64_t vals[] = {g->m, g->n, g->k, g->batch, g->lda, g->ldb, g->ldd, g->stride_a, g->stride_b, g->stride_d};
  for (int i = 0; i < 10; i++) json_object_set_new(o, names[i], json_integer(vals[i]));
  json_object_set_new(o, "a", ref_json(g->a));
  json_object_set_new(o, "b", ref_json(g->b));
  json_object_set_new(o, "d", ref_json(g->d));
  json_object_set_new(o, "bias", ref_json(g->bias));
  json_object_set_new(o, "epilogue", json_integer(g->epilogue));
  json_object_set_new(o, "alpha", json_real(g->alpha));
  return o;
}

static const IrNode *find_param(IrGraph *g, int id) {
  if (!g) return NULL;
  for (int i = 0; i < g->n_nodes; i++)
    if (g->nodes[i]->id == id && g->nodes[i]->op == IR_PARAM) return g->nodes[i];
  return NULL;
}

char *pack_encode_plan(const CgPlan *p, IrGraph *g, int blob_index, unsigned char **consts_out, size_t *n_consts,
                       int64_t *data_at) {
  /* constants and defaults, 4-byte aligned by construction */
  size_t cap = 0, used = 0;
  unsigned char *consts = NULL;
  json_t *weights = json_array();
  for (int i = 0; i < p->n_weights; i++) {
    const CgWeight *cw = &p->weights[i];
    json_t *o = json_pack("{s:s, s:s, s:o, s:I, s:i}", "name", cw->name ? cw->name : "", "dtype",
                          ir_dtype_name(cw->dtype), "shape", shape_json(cw->rank, cw->shape), "offset",
                          (json_int_t)cw->offset, "param_id", cw->param_id);
    if (cw->n_in) { /* computed when the blob is filled */
      json_t *in = json_array(), *perm = json_array();
      for (int j = 0; j < cw->n_in; j++) json_array_append_new(in, json_integer(cw->in[j]));
      for (int j = 0; j < cw->rank; j++) json_array_append_new(perm, json_integer(cw->attr.perm[j]));
      json_object_set_new(o, "op", json_string(ir_op_name(cw->op)));
      json_object_set_new(o, "in", in);
      json_object_set_new(o, "axis", json_integer(cw->attr.axis));
      json_object_set_new(o, "start", json_integer(cw->attr.start));
      json_object_set_new(o, "len", json_integer(cw->attr.len));
      json_object_set_new(o, "perm", perm);
      json_object_set_new(o, "to", json_string(ir_dtype_name(cw->attr.to)));
      if (cw->op == IR_QSCALE) json_object_set_new(o, "qmax", json_real(cw->attr.f));
    }
    const float *data = cw->const_data;
    if (!data && cw->param_id >= 0) {
      const IrNode *n = find_param(g, cw->param_id);
      if (n && n->data) data = n->data;
    }
    if (data_at) data_at[i] = data ? (int64_t)used : -1;
    if (data) {
      size_t bytes = (size_t)numel_of(cw->rank, cw->shape) * sizeof(float);
      if (used + bytes > cap) consts = xrealloc(consts, cap = 2 * (used + bytes) + 64);
      memcpy(consts + used, data, bytes);
      json_object_set_new(o, "data", json_pack("[I, I]", (json_int_t)used, (json_int_t)(bytes / 4)));
      used += bytes;
    }
    json_array_append_new(weights, o);
  }
  json_t *kernels = json_array();
  for (int i = 0; i < p->n_kernels; i++)
    json_array_append_new(kernels, json_pack("{s:s, s:s}", "name", p->kernels[i].name,
                                             "nodes", p->kernels[i].nodes ? p->kernels[i].nodes : ""));
  json_t *steps = json_array();
  for (int i = 0; i < p->n_steps; i++) {
    const CgStep *s = &p->steps[i];
    json_t *o = json_pack("{s:i, s:s}", "node", s->node, "what", s->what ? s->what : "");
    if (s->kind == CG_STEP_KERNEL) {
      json_object_set_new(o, "kernel", json_integer(s->kernel));
      json_object_set_new(o, "grid", dim3_json(s->grid));
      json_object_set_new(o, "block", dim3_json(s->block));
      json_object_set_new(o, "smem", json_integer(s->shared_bytes));
      json_t *pa = json_array();
      for (int k = 0; k < s->n_params; k++) json_array_append_new(pa, json_integer((json_int_t)s->params[k]));
      json_object_set_new(o, "params", pa);
    } else {
      json_object_set_new(o, "gemm", gemm_json(&s->gemm));
    }
    json_array_append_new(steps, o);
  }
  json_t *root = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:i}", "entry", p->entry ? p->entry : "",
                           "tuning", p->tuning ? p->tuning : "default", "precision", ir_dtype_name(p->precision), "batch", (json_int_t)p->batch,
                           "arena_bytes", (json_int_t)p->arena_bytes, "weights_bytes",
                           (json_int_t)p->weights_bytes, "status_offset",
                           (json_int_t)p->status_offset, "weights_blob", blob_index);
  json_object_set_new(root, "n_params", json_integer(p->n_params));
  json_object_set_new(root, "kernels", kernels);
  json_object_set_new(root, "steps", steps);
  json_object_set_new(root, "weights", weights);
  json_object_set_new(root, "inputs", io_json(p->inputs, p->n_inputs));
  json_object_set_new(root, "outputs", io_json(p->outputs, p->n_outputs));
  char *text = json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(9));
  json_decref(root);
  DITC_ASSERT(text);
  *consts_out = consts ? consts : xmalloc(1);
  *n_consts = used;
  return text;
}

int cg_pack_writer_add_plan(CgPackWriter *w, const CgPlan *p, IrGraph *g, const void *blob) {
  int index = w->n_plans++;
  /* the weights blob, shared with an identical earlier one */
  int blob_index = -1;
  if (blob) {
    unsigned char sha[32];
    sha256(blob, (size_t)p->weights_bytes, sha);
    for (int i = 0; i < w->n_secs && blob_index < 0; i++)
      if (w->secs[i].kind == CG_PACK_SEC_WEIGHTS && w->secs[i].size == (size_t)p->weights_bytes &&
          !memcmp(w->secs[i].sha, sha, 32))
        blob_index = (int)w->secs[i].ref;
    if (blob_index < 0) {
      blob_index = w->n_blobs++;
      WSec *s = add_sec(w, CG_PACK_SEC_WEIGHTS, (uint32_t)blob_index, NULL);
      s->data = blob;
      s->size = (size_t)p->weights_bytes;
      memcpy(s->sha, sha, 32);
    }
  }
  unsigned char *consts;
  size_t used;
  char *text = pack_encode_plan(p, g, blob_index, &consts, &used, NULL);
  sec_own(add_sec(w, CG_PACK_SEC_PLAN, (uint32_t)index, NULL), text, strlen(text));
  const char *src = p->source ? p->source : "";
  sec_own(add_sec(w, CG_PACK_SEC_SOURCE, (uint32_t)index, NULL), xstrdup(src), strlen(src));
  sec_own(add_sec(w, CG_PACK_SEC_CONSTS, (uint32_t)index, NULL), consts, used);
  return index;
}

void cg_pack_writer_add_cubin(CgPackWriter *w, int plan, const char *arch, const void *cubin,
                              size_t size, const char *ptxas_log) {
  DITC_ASSERT(plan >= 0 && plan < w->n_plans && arch && strlen(arch) < 8);
  unsigned char *copy = xmalloc(size ? size : 1);
  memcpy(copy, cubin, size);
  sec_own(add_sec(w, CG_PACK_SEC_CUBIN, (uint32_t)plan, arch), copy, size);
  const char *log = ptxas_log ? ptxas_log : "";
  sec_own(add_sec(w, CG_PACK_SEC_PTXAS, (uint32_t)plan, arch), xstrdup(log), strlen(log));
}

typedef int (*PutFn)(void *user, const void *data, size_t n);

/* Emit the whole pack through put(). */
static int emit(CgPackWriter *w, PutFn put, void *user) {
  json_t *man = json_deep_copy(w->meta);
  static const char *const keys[] = {"producer", "codegen_version", "compiler", "model", "config", "spec"};
  for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
    if (!json_object_get(man, keys[i])) json_object_set_new(man, keys[i], json_string(""));
  json_object_set_new(man, "format", json_string("ditpack"));
  json_object_set(man, "params", w->params);
  json_object_set_new(man, "plans", json_integer(w->n_plans));
  json_object_set_new(man, "blobs", json_integer(w->n_blobs));
  char *text = json_dumps(man, JSON_COMPACT);
  json_decref(man);
  DITC_ASSERT(text);
  WSec mansec = {.kind = CG_PACK_SEC_MANIFEST};
  sec_own(&mansec, text, strlen(text));
  /* the model record right after the manifest (absent only in packs tests
   * make to see them refused) */
  WSec modsec = {.kind = CG_PACK_SEC_MODEL}, textsec = {.kind = CG_PACK_SEC_MODEL_TEXT};
  int has_model = w->model != NULL;
  if (has_model) {
    char *mt = json_dumps(w->model, JSON_COMPACT);
    DITC_ASSERT(mt);
    sec_own(&modsec, mt, strlen(mt));
    textsec.data = w->model_text;
    textsec.size = w->model_text_len;
    sha256(w->model_text, w->model_text_len, textsec.sha);
  }

  int n = w->n_secs + 1 + 2 * has_model, k = 0;
  const WSec **all = xmalloc((size_t)n * sizeof *all);
  all[k++] = &mansec;
  if (has_model) all[k++] = &modsec, all[k++] = &textsec;
  for (int i = 0; i < w->n_secs; i++) all[k++] = &w->secs[i];
  size_t toc_bytes = (size_t)n * TOC_ENTRY;
  unsigned char *head = xcalloc(1, HDR + toc_bytes);
  uint64_t off = align_up(HDR + toc_bytes);
  uint64_t *offs = xmalloc((size_t)n * sizeof *offs);
  for (int i = 0; i < n; i++) {
    unsigned char *e = head + HDR + (size_t)i * TOC_ENTRY;
    offs[i] = off;
    put_u32(e, all[i]->kind);
    put_u32(e + 4, all[i]->ref);
    put_u64(e + 8, off);
    put_u64(e + 16, all[i]->size);
    memcpy(e + 24, all[i]->arch, 8);
    memcpy(e + 32, all[i]->sha, 32);
    off = align_up(off + all[i]->size);
  }
  memcpy(head, MAGIC, 8);
  put_u32(head + 8, CG_PACK_VERSION);
  put_u32(head + 12, (uint32_t)n);
  put_u64(head + 16, off);
  put_u64(head + 24, HDR);
  sha256(head + HDR, toc_bytes, head + 32);
  static const unsigned char zeros[ALIGN];
  int rc = put(user, head, HDR + toc_bytes);
  uint64_t at = HDR + toc_bytes;
  for (int i = 0; i < n && !rc; i++) {
    if (offs[i] > at) rc = put(user, zeros, (size_t)(offs[i] - at));
    if (!rc && all[i]->size) rc = put(user, all[i]->data, all[i]->size);
    at = offs[i] + all[i]->size;
  }
  if (!rc && off > at) rc = put(user, zeros, (size_t)(off - at));
  free(offs);
  free(head);
  free(all);
  free(mansec.own);
  free(modsec.own);
  return rc;
}

typedef struct {
  unsigned char *buf;
  size_t len, cap;
} MemOut;

static int put_mem(void *user, const void *data, size_t n) {
  MemOut *m = user;
  if (m->len + n > m->cap) m->buf = xrealloc(m->buf, m->cap = 2 * (m->len + n));
  memcpy(m->buf + m->len, data, n);
  m->len += n;
  return 0;
}

int cg_pack_writer_bytes(CgPackWriter *w, unsigned char **out, size_t *size, IrErr *err) {
  (void)err;
  MemOut m = {0};
  emit(w, put_mem, &m);
  *out = m.buf;
  *size = m.len;
  return 0;
}

typedef struct {
  FioOut *out;
  IrErr *err;
} OutSink;

static int put_out(void *user, const void *data, size_t n) {
  OutSink *s = user;
  return fio_out_write(s->out, data, n, s->err);
}

int cg_pack_writer_write(CgPackWriter *w, FioOut *out, IrErr *err) {
  OutSink s = {out, err};
  return emit(w, put_out, &s);
}

static int write_to(void *w, FioOut *out, IrErr *err) { return cg_pack_writer_write(w, out, err); }

int cg_pack_writer_save(CgPackWriter *w, const char *path, IrErr *err) {
  return fio_save(path, write_to, w, err);
}
