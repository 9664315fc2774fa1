/*
 * pack_read.c - reading .ditpack files (the layout is in pack.h), and
 * finding a plan and CUBIN in an open pack.
 *
 * Reading trusts nothing: the header, the table of contents, the tiling of
 * the file by the sections and every hash are checked before any section is
 * parsed, and the JSON is then checked field by field, with every offset,
 * extent and index bounded by what it points into, so that what a backend
 * is handed cannot make it read or write outside the arena or the blob.
 * Hashes can be skipped (CG_PACK_SKIP_HASHES) so a fuzzer reaches the
 * parsers; nothing else changes then.  A plan's SOURCE section is hashed,
 * never copied into the plan: the source that runs is regenerated
 * (pack.h), and so is the note for the simulated CUDA driver of which source
 * each CUBIN was compiled from (frontend/pack_plan.c makes it).
 */
#include "codegen/bytes.h"
#include "codegen/pack_format.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>


typedef struct {
  uint32_t kind, ref;
  char arch[9];
  const unsigned char *data;
  uint64_t size;
} RSec;

typedef struct {
  CgPack *pk;
  IrErr *err;
  char where[160];   /* "plan 0 (forward): step 12" */
} Rd;

__attribute__((format(printf, 2, 3))) static int bad(Rd *r, const char *fmt, ...) {
  char msg[700];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (r->where[0])
    return ir_errf(r->err, "%s: %s: %s", r->pk->path, r->where, msg);
  return ir_errf(r->err, "%s: %s", r->pk->path, msg);
}

static int jint(Rd *r, json_t *o, const char *key, int64_t lo, int64_t hi, int64_t *out) {
  json_t *v = json_object_get(o, key);
  if (!v || !json_is_integer(v)) return bad(r, "field '%s' is missing or not an integer", key);
  json_int_t x = json_integer_value(v);
  if (x < lo || x > hi) return bad(r, "field '%s' = %lld is outside [%lld, %lld]", key, (long long)x,
                                   (long long)lo, (long long)hi);
  *out = x;
  return 0;
}

static int jint32(Rd *r, json_t *o, const char *key, int64_t lo, int64_t hi, int *out) {
  int64_t v = 0;
  if (jint(r, o, key, lo, hi, &v)) return -1;
  *out = (int)v;
  return 0;
}

static int jstr(Rd *r, json_t *o, const char *key, int nonempty, const char **out) {
  json_t *v = json_object_get(o, key);
  if (!v || !json_is_string(v)) return bad(r, "field '%s' is missing or not a string", key);
  if (nonempty && !json_string_length(v)) return bad(r, "field '%s' is empty", key);
  if (strlen(json_string_value(v)) != json_string_length(v)) return bad(r, "field '%s' holds a NUL", key);
  *out = arena_strdup(&r->pk->arena, json_string_value(v));
  return 0;
}

static int jarr(Rd *r, json_t *o, const char *key, size_t max, json_t **out) {
  json_t *v = json_object_get(o, key);
  if (!v || !json_is_array(v)) return bad(r, "field '%s' is missing or not an array", key);
  if (json_array_size(v) > max) return bad(r, "field '%s' has %zu entries (at most %zu)", key, json_array_size(v), max);
  *out = v;
  return 0;
}

/* float_only 1: f32, f16, bf16; 0: also i32; 2 (weights): also i8 (a
 * quantised weight's levels). */
static int jdtype(Rd *r, json_t *o, const char *key, int float_only, IrDType *out) {
  const char *s = NULL;
  if (jstr(r, o, key, 1, &s)) return -1;
  if (ir_dtype_parse(s, out) || (float_only == 1 && *out != IR_F32 && *out != IR_F16 && *out != IR_BF16) ||
      (!float_only && (*out == IR_I8 || *out == IR_E4M3)))
    return bad(r, "field '%s': unexpected dtype '%s'", key, s);
  return 0;
}

static int is_ident(const char *s) {
  if (!*s || (*s >= '0' && *s <= '9')) return 0;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_'))
      return 0;
  return 1;
}

/* A shape array of at most IR_MAX_RANK dims in [0, 2^40]; *bytes its size. */
static int jshape(Rd *r, json_t *o, IrDType t, int *rank, int64_t *shape, int64_t *bytes) {
  json_t *a = NULL;
  if (jarr(r, o, "shape", IR_MAX_RANK, &a)) return -1;
  *rank = (int)json_array_size(a);
  __int128 n = (__int128)ir_dtype_size(t);
  for (int i = 0; i < *rank; i++) {
    json_t *d = json_array_get(a, (size_t)i);
    if (!json_is_integer(d) || json_integer_value(d) < 0 || json_integer_value(d) > ((int64_t)1 << 40))
      return bad(r, "shape entry %d is not a size", i);
    shape[i] = json_integer_value(d);
    n *= shape[i];
    if (n > MAX_BYTES) return bad(r, "shape too large");
  }
  *bytes = (int64_t)n;
  return 0;
}

static int read_io(Rd *r, json_t *a, CgIo *io, int n, const char *what) {
  char save[sizeof r->where];
  memcpy(save, r->where, sizeof save);
  for (int i = 0; i < n; i++) {
    json_t *o = json_array_get(a, (size_t)i);
    snprintf(r->where, sizeof r->where, "%s: %s %d", save, what, i);
    int64_t bytes;
    if (!json_is_object(o)) return bad(r, "not an object");
    if (jstr(r, o, "name", 1, &io[i].name) || jdtype(r, o, "dtype", 0, &io[i].dtype) ||
        jshape(r, o, io[i].dtype, &io[i].rank, io[i].shape, &bytes) ||
        jint(r, o, "offset", 0, MAX_BYTES, &io[i].offset))
      return -1;
  }
  memcpy(r->where, save, sizeof save);
  return 0;
}

static int jdim3(Rd *r, json_t *o, const char *key, uint32_t *d, const int64_t *max) {
  json_t *a = NULL;
  if (jarr(r, o, key, 3, &a)) return -1;
  if (json_array_size(a) != 3) return bad(r, "field '%s' needs 3 entries", key);
  for (int i = 0; i < 3; i++) {
    json_t *v = json_array_get(a, (size_t)i);
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > max[i])
      return bad(r, "field '%s' entry %d is outside [1, %lld]", key, i, (long long)max[i]);
    d[i] = (uint32_t)json_integer_value(v);
  }
  return 0;
}

static int jref(Rd *r, json_t *o, const char *key, CgRef *ref) {
  json_t *a = json_object_get(o, key);
  if (!a || !json_is_array(a) || json_array_size(a) != 2 || !json_is_integer(json_array_get(a, 0)) ||
      !json_is_integer(json_array_get(a, 1)))
    return bad(r, "field '%s' is not [space, offset]", key);
  json_int_t sp = json_integer_value(json_array_get(a, 0)), off = json_integer_value(json_array_get(a, 1));
  if ((sp != CG_SPACE_ACT && sp != CG_SPACE_WEIGHTS) || off < 0 || off > MAX_BYTES)
    return bad(r, "field '%s' has a bad space or offset", key);
  ref->space = (CgSpace)sp;
  ref->offset = off;
  return 0;
}

static int read_gemm(Rd *r, json_t *o, CgGemm *g) {
  if (!json_is_object(o)) return bad(r, "'gemm' is not an object");
  const int64_t big = (int64_t)1 << 31;
  int64_t epi = 0;
  double alpha;
  json_t *al = json_object_get(o, "alpha");
  if (jdtype(r, o, "dtype", 2, &g->dtype) || jdtype(r, o, "d_dtype", 2, &g->d_dtype) ||
      jint32(r, o, "trans_a", 0, 1, &g->trans_a) ||
      jint32(r, o, "trans_b", 0, 1, &g->trans_b) || jint(r, o, "m", 1, big, &g->m) ||
      jint(r, o, "n", 1, big, &g->n) || jint(r, o, "k", 1, big, &g->k) || jint(r, o, "batch", 1, big, &g->batch) ||
      jint(r, o, "lda", 1, big, &g->lda) || jint(r, o, "ldb", 1, big, &g->ldb) || jint(r, o, "ldd", 1, big, &g->ldd) ||
      jint(r, o, "stride_a", 0, MAX_BYTES, &g->stride_a) || jint(r, o, "stride_b", 0, MAX_BYTES, &g->stride_b) ||
      jint(r, o, "stride_d", 0, MAX_BYTES, &g->stride_d) || jref(r, o, "a", &g->a) || jref(r, o, "b", &g->b) ||
      jref(r, o, "d", &g->d) || jref(r, o, "bias", &g->bias) ||
      jint(r, o, "epilogue", CG_EPI_NONE, CG_EPI_GELU_TANH_BIAS, &epi))
    return -1;
  if (!al || !json_is_number(al) || !isfinite(alpha = json_number_value(al)))
    return bad(r, "field 'alpha' is missing or not a finite number");
  /* float operands with a float result, i8 ones with an i32 result (format 8), e4m3 ones with an f32 result
   * (format 9); the rest: cg_plan_check */
  if (!ir_dtype_is_float(g->dtype) && g->dtype != IR_I8 && g->dtype != IR_E4M3)
    return bad(r, "field 'dtype': unexpected GEMM operand dtype '%s'", ir_dtype_name(g->dtype));
  if ((g->dtype == IR_I8) != (g->d_dtype == IR_I32) || (g->dtype != IR_I8 && !ir_dtype_is_float(g->d_dtype)) ||
      (g->dtype == IR_E4M3 && g->d_dtype != IR_F32))
    return bad(r, "field 'd_dtype': unexpected result dtype '%s' for %s operands", ir_dtype_name(g->d_dtype),
               ir_dtype_name(g->dtype));
  g->alpha = (float)alpha;
  g->epilogue = (CgEpilogue)epi;
  return 0;
}

/* The fields of a computed weight (CgWeight.op), when "op" is there. */
static int read_computed(Rd *r, json_t *o, int index, CgWeight *w, Arena *A) {
  const char *op;
  json_t *in = NULL, *perm = NULL;
  int64_t axis = 0, start = 0, len = 0;
  if (!json_object_get(o, "op")) return 0;
  if (jstr(r, o, "op", 1, &op) || jarr(r, o, "in", 1 << 16, &in) || jarr(r, o, "perm", IR_MAX_RANK, &perm) ||
      jint(r, o, "axis", 0, IR_MAX_RANK - 1, &axis) || jint(r, o, "start", 0, MAX_BYTES, &start) ||
      jint(r, o, "len", 0, MAX_BYTES, &len) || jdtype(r, o, "to", 0, &w->attr.to))
    return -1;
  if (ir_op_parse(op, &w->op)) return bad(r, "unknown op '%.40s'", op);
  if (w->op == IR_QSCALE) { /* its qmax (quantised weights' scales) */
    json_t *q = json_object_get(o, "qmax");
    if (!q || !json_is_number(q) || !isfinite(json_number_value(q)) || json_number_value(q) < 1 ||
        json_number_value(q) > 1e6)
      return bad(r, "field 'qmax' is missing or not a number in 1..1e6");
    w->attr.f = (float)json_number_value(q);
  }
  w->n_in = (int)json_array_size(in);
  if (!w->n_in) return bad(r, "a computed weight without inputs");
  int *ins = arena_alloc(A, (size_t)w->n_in * sizeof *ins);
  for (int j = 0; j < w->n_in; j++) {
    json_t *v = json_array_get(in, (size_t)j);
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= index)
      return bad(r, "input %d is not an earlier weight", j);
    ins[j] = (int)json_integer_value(v);
  }
  w->in = ins;
  if ((int)json_array_size(perm) != w->rank) return bad(r, "field 'perm' needs %d entries", w->rank);
  for (int j = 0; j < w->rank; j++) {
    json_t *v = json_array_get(perm, (size_t)j);
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= IR_MAX_RANK)
      return bad(r, "field 'perm' entry %d is not an axis", j);
    w->attr.perm[j] = (int)json_integer_value(v);
  }
  w->attr.axis = (int)axis;
  w->attr.start = start;
  w->attr.len = len;
  return 0;
}

static int read_plan(Rd *r, int index, const RSec *psec, const RSec *src, const RSec *consts, CgPackPlan *pp) {
  CgPack *pk = r->pk;
  snprintf(r->where, sizeof r->where, "plan %d", index);
  json_error_t je;
  json_t *root = json_loadb((const char *)psec->data, psec->size, JSON_REJECT_DUPLICATES, &je);
  if (!root) return bad(r, "bad JSON: %s (at byte %d)", je.text, je.position);
  int rc = -1;
  CgPlan *p = xcalloc(1, sizeof *p);
  pp->plan = p;
  pp->blob = -1;
  Arena *A = &p->arena;
  json_t *ks = NULL, *ss = NULL, *ws = NULL, *is = NULL, *os = NULL;
  int64_t batch = 0, status = 0;
  if (!json_is_object(root)) {
    bad(r, "not a JSON object");
    goto out;
  }
  if (jstr(r, root, "entry", 1, &p->entry) || jstr(r, root, "tuning", 1, &p->tuning) ||
      jdtype(r, root, "precision", 1, &p->precision) ||
      jint(r, root, "batch", 1, (int64_t)1 << 31, &batch) ||
      jint(r, root, "arena_bytes", 0, MAX_BYTES, &p->arena_bytes) ||
      jint(r, root, "weights_bytes", 0, MAX_BYTES, &p->weights_bytes) ||
      jint(r, root, "status_offset", -1, MAX_BYTES, &status) ||
      jint32(r, root, "n_params", 0, CG_MAX_PARAMS, &p->n_params) ||
      jint32(r, root, "weights_blob", -1, pk->n_blobs - 1, &pp->blob) ||
      jarr(r, root, "kernels", 1 << 20, &ks) || jarr(r, root, "steps", 1 << 22, &ss) ||
      jarr(r, root, "weights", 1 << 20, &ws) || jarr(r, root, "inputs", 1024, &is) ||
      jarr(r, root, "outputs", 1024, &os))
    goto out;
  p->batch = batch;
  snprintf(r->where, sizeof r->where, "plan %d (%s)", index, p->entry);
  if (!is_ident(p->tuning) || strlen(p->tuning) > 31) {
    bad(r, "'%.40s' is not a tuning row name", p->tuning);
    goto out;
  }
  p->status_offset = status;
  if (pp->blob >= 0 && pk->blobs[pp->blob].size != p->weights_bytes) {
    bad(r, "weights blob %d has %lld bytes, the plan needs %lld", pp->blob, (long long)pk->blobs[pp->blob].size,
        (long long)p->weights_bytes);
    goto out;
  }
  char base[sizeof r->where];
  memcpy(base, r->where, sizeof base);

  p->n_kernels = (int)json_array_size(ks);
  p->kernels = arena_alloc(A, (size_t)p->n_kernels * sizeof *p->kernels + 1);
  for (int i = 0; i < p->n_kernels; i++) {
    json_t *o = json_array_get(ks, (size_t)i);
    snprintf(r->where, sizeof r->where, "%s: kernel %d", base, i);
    if (!json_is_object(o)) {
      bad(r, "not an object");
      goto out;
    }
    const char *name, *nodes;
    if (jstr(r, o, "name", 1, &name) || jstr(r, o, "nodes", 0, &nodes)) goto out;
    if (!is_ident(name) || strlen(name) > 200) {
      bad(r, "'%.60s' is not a kernel name", name);
      goto out;
    }
    p->kernels[i] = (CgKernel){arena_strdup(A, name), arena_strdup(A, nodes)};
  }

  p->n_steps = (int)json_array_size(ss);
  p->steps = arena_alloc(A, (size_t)p->n_steps * sizeof *p->steps + 1);
  static const int64_t grid_max[3] = {2147483647, 65535, 65535}, block_max[3] = {1024, 1024, 64};
  for (int i = 0; i < p->n_steps; i++) {
    json_t *o = json_array_get(ss, (size_t)i);
    CgStep *s = &p->steps[i];
    const char *what;
    snprintf(r->where, sizeof r->where, "%s: step %d", base, i);
    if (!json_is_object(o)) {
      bad(r, "not an object");
      goto out;
    }
    if (jint32(r, o, "node", -1, INT32_MAX, &s->node) || jstr(r, o, "what", 0, &what)) goto out;
    s->what = arena_strdup(A, what);
    json_t *gm = json_object_get(o, "gemm");
    if (gm) {
      s->kind = CG_STEP_GEMM;
      if (read_gemm(r, gm, &s->gemm)) goto out;
      continue;
    }
    int64_t smem;
    s->kind = CG_STEP_KERNEL;
    if (jint32(r, o, "kernel", 0, p->n_kernels - 1, &s->kernel) || jdim3(r, o, "grid", s->grid, grid_max) ||
        jdim3(r, o, "block", s->block, block_max) || jint(r, o, "smem", 0, 1 << 22, &smem))
      goto out;
    s->shared_bytes = (uint32_t)smem;
    json_t *pa;
    if (jarr(r, o, "params", CG_MAX_PARAMS, &pa)) goto out;
    int64_t *pv = arena_alloc(A, (json_array_size(pa) + 1) * sizeof *pv);
    s->n_params = (int)json_array_size(pa);
    for (int k = 0; k < s->n_params; k++) {
      json_t *x = json_array_get(pa, (size_t)k);
      if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) > MAX_BYTES) {
        bad(r, "parameter %d is not an offset in [0, 2^48]", k);
        goto out;
      }
      pv[k] = (int64_t)json_integer_value(x);
    }
    s->params = pv;
  }

  p->n_weights = (int)json_array_size(ws);
  p->weights = arena_alloc(A, (size_t)p->n_weights * sizeof *p->weights + 1);
  pp->defaults = arena_alloc(A, (size_t)p->n_weights * sizeof *pp->defaults + 1);
  for (int i = 0; i < p->n_weights; i++) {
    json_t *o = json_array_get(ws, (size_t)i);
    CgWeight *w = &p->weights[i];
    int64_t bytes;
    snprintf(r->where, sizeof r->where, "%s: weight %d", base, i);
    if (!json_is_object(o)) {
      bad(r, "not an object");
      goto out;
    }
    if (jstr(r, o, "name", 0, &w->name) || jdtype(r, o, "dtype", 2, &w->dtype) ||
        jshape(r, o, w->dtype, &w->rank, w->shape, &bytes) || jint(r, o, "offset", -1, MAX_BYTES, &w->offset) ||
        jint32(r, o, "param_id", -1, INT32_MAX - 1, &w->param_id) || read_computed(r, o, i, w, A))
      goto out;
    if (w->dtype == IR_I8 && w->op != IR_QUANTIZE) {
      bad(r, "an i8 weight that quantize does not compute");
      goto out;
    }
    if (w->dtype == IR_E4M3 && w->op != IR_QUANTIZE_E4M3) {
      bad(r, "an e4m3 weight that quantize_e4m3 does not compute");
      goto out;
    }
    json_t *d = json_object_get(o, "data");
    if (w->n_in) {
      if (d) {
        bad(r, "a computed weight with data");
        goto out;
      }
      continue;
    }
    if (!d) {
      if (w->param_id < 0) {
        bad(r, "a constant without data");
        goto out;
      }
      continue;
    }
    json_int_t off, cnt;
    if (!json_is_array(d) || json_array_size(d) != 2 || !json_is_integer(json_array_get(d, 0)) ||
        !json_is_integer(json_array_get(d, 1)) || (off = json_integer_value(json_array_get(d, 0))) < 0 ||
        (cnt = json_integer_value(json_array_get(d, 1))) != numel_of(w->rank, w->shape) || off % 4 ||
        (uint64_t)off > consts->size || (uint64_t)cnt * 4 > consts->size - (uint64_t)off) {
      bad(r, "field 'data' does not lie inside the constants");
      goto out;
    }
    float *v = arena_alloc(A, (size_t)cnt * 4 + 1);
    memcpy(v, consts->data + off, (size_t)cnt * 4);
    if (w->param_id < 0)
      w->const_data = v;
    else
      pp->defaults[i] = v;
  }

  snprintf(r->where, sizeof r->where, "%s", base);
  p->n_inputs = (int)json_array_size(is);
  p->n_outputs = (int)json_array_size(os);
  p->inputs = arena_alloc(A, (size_t)p->n_inputs * sizeof *p->inputs + 1);
  p->outputs = arena_alloc(A, (size_t)p->n_outputs * sizeof *p->outputs + 1);
  if (read_io(r, is, p->inputs, p->n_inputs, "input") || read_io(r, os, p->outputs, p->n_outputs, "output"))
    goto out;
  /* the source stays in the file: only its hash, for cg_pack_plan_matches */
  p->source = NULL;
  sha256(src->data, (size_t)src->size, pp->source_sha256);
  pp->plan_json = psec->data;
  pp->plan_json_size = (size_t)psec->size;
  pp->consts = consts->data;
  pp->consts_size = (size_t)consts->size;
  IrErr *ce = xmalloc(sizeof *ce);
  if (cg_plan_check(p, ce)) {
    bad(r, "%s", ce->msg);
    free(ce);
    goto out;
  }
  free(ce);
  rc = 0;
out:
  json_decref(root);
  r->where[0] = 0;
  return rc;
}

static int read_manifest(Rd *r, const RSec *s) {
  CgPack *pk = r->pk;
  snprintf(r->where, sizeof r->where, "manifest");
  json_error_t je;
  json_t *root = json_loadb((const char *)s->data, s->size, JSON_REJECT_DUPLICATES, &je);
  if (!root) return bad(r, "bad JSON: %s (at byte %d)", je.text, je.position);
  int rc = -1;
  const char *format;
  int64_t plans = 0, blobs = 0;
  json_t *params;
  if (!json_is_object(root)) {
    bad(r, "not a JSON object");
    goto out;
  }
  if (jstr(r, root, "format", 1, &format) || jstr(r, root, "producer", 0, &pk->producer) ||
      jstr(r, root, "codegen_version", 0, &pk->codegen_version) || jstr(r, root, "compiler", 0, &pk->compiler) ||
      jstr(r, root, "model", 0, &pk->model) || jstr(r, root, "config", 0, &pk->config) ||
      jstr(r, root, "spec", 0, &pk->spec) || jint(r, root, "plans", 1, MAX_PLANS, &plans) ||
      jint(r, root, "blobs", 0, MAX_PLANS, &blobs))
    goto out;
  if (strcmp(format, "ditpack")) {
    bad(r, "format is '%s', not 'ditpack'", format);
    goto out;
  }
  params = json_object_get(root, "params");
  if (!params || !json_is_object(params) || json_object_size(params) > 4096) {
    bad(r, "field 'params' is missing or not an object");
    goto out;
  }
  pk->n_params = (int)json_object_size(params);
  pk->params = arena_alloc(&pk->arena, (size_t)pk->n_params * sizeof *pk->params + 1);
  const char *key;
  json_t *v;
  int i = 0;
  json_object_foreach(params, key, v) {
    if (!json_is_string(v)) {
      bad(r, "parameter '%.60s' is not a string", key);
      goto out;
    }
    pk->params[i].key = arena_strdup(&pk->arena, key);
    pk->params[i].value = arena_strdup(&pk->arena, json_string_value(v));
    i++;
  }
  pk->n_plans = (int)plans;
  pk->n_blobs = (int)blobs;
  rc = 0;
out:
  json_decref(root);
  r->where[0] = 0;
  return rc;
}

/* "sm_90a" -> 90 and 'a'. */
static int arch_num(const char *a, char *suffix) {
  int v = 0;
  const char *p = a + 3;
  while (*p >= '0' && *p <= '9') v = v * 10 + (*p++ - '0');
  *suffix = *p;
  return v;
}

static int arch_ok(const char *a) {
  if (strncmp(a, "sm_", 3) || !a[3]) return 0;
  for (const char *p = a + 3; *p; p++)
    if (!((*p >= '0' && *p <= '9') || *p == 'a' || *p == 'f')) return 0;
  return 1;
}

/* Plan p against the earlier plans of its entry: (entry, SM) picks one plan,
 * so no two have a CUBIN for the same SM, and none of several goes without. */
static int entry_clash(Rd *r, int p) {
  const CgPackPlan *pp = &r->pk->plans[p];
  for (int q = 0; q < p; q++) {
    const CgPackPlan *qp = &r->pk->plans[q];
    if (strcmp(qp->plan->entry, pp->plan->entry)) continue;
    if (!pp->n_cubins || !qp->n_cubins)
      return bad(r, "plans %d and %d are both for entry '%s' and one has no CUBIN: no architecture selects it", q, p,
                 pp->plan->entry);
    for (int i = 0; i < pp->n_cubins; i++)
      for (int j = 0; j < qp->n_cubins; j++) {
        char sa, sb;
        if (arch_num(pp->cubins[i].arch, &sa) == arch_num(qp->cubins[j].arch, &sb))
          return bad(r, "plans %d and %d of entry '%s' both have a CUBIN for %s/%s", q, p, pp->plan->entry,
                     qp->cubins[j].arch, pp->cubins[i].arch);
      }
  }
  return 0;
}

/* Plan p's CUBINs are for architectures that get its tuning row (or one of
 * the same geometry): a CUBIN is launched with its plan's grids and blocks. */
static int cubin_rows(Rd *r, int p) {
  const CgPackPlan *pp = &r->pk->plans[p];
  for (int c = 0; c < pp->n_cubins; c++)
    if (!cg_tuning_same(pp->cubins[c].arch, pp->plan->tuning))
      return bad(r, "plan %d (%s) was built with tuning row %s, but has a CUBIN for %s, whose row %s launches "
                 "differently", p, pp->plan->entry, pp->plan->tuning, pp->cubins[c].arch,
                 cg_tuning_name(pp->cubins[c].arch));
  return 0;
}

/* The model record: one MODEL (JSON) and one MODEL_TEXT section. */
static int read_model(Rd *r, const RSec *secs, uint32_t n) {
  CgPack *pk = r->pk;
  CgPackModel *m = &pk->record;
  const RSec *rec = NULL, *text = NULL;
  for (uint32_t i = 1; i < n; i++) {
    const RSec **slot = secs[i].kind == CG_PACK_SEC_MODEL        ? &rec
                        : secs[i].kind == CG_PACK_SEC_MODEL_TEXT ? &text
                                                                 : NULL;
    if (!slot) continue;
    if (*slot || secs[i].ref) return bad(r, "section %u (%s): a second model record, or one with ref %u", i,
                                         sec_name(secs[i].kind), secs[i].ref);
    *slot = &secs[i];
  }
  if (!rec || !text)
    return bad(r, "the pack has no model record (made by an older ditc?): recompile it with `ditc compile`");
  snprintf(r->where, sizeof r->where, "model record");
  if (memchr(text->data, 0, (size_t)text->size)) return bad(r, "the model text holds a NUL byte");
  char *t = arena_alloc(&pk->arena, (size_t)text->size + 1);
  memcpy(t, text->data, (size_t)text->size);
  m->text = t;
  m->text_len = (size_t)text->size;
  json_error_t je;
  json_t *root = json_loadb((const char *)rec->data, (size_t)rec->size, JSON_REJECT_DUPLICATES, &je), *sets = NULL;
  if (!root) return bad(r, "bad JSON: %s (at byte %d)", je.text, je.position);
  int rc = -1;
  if (!json_is_object(root)) {
    bad(r, "not a JSON object");
    goto out;
  }
  if (jstr(r, root, "file", 1, &m->file) || jstr(r, root, "config", 0, &m->config) ||
      jstr(r, root, "passes", 1, &m->passes) || jarr(r, root, "sets", 4096, &sets))
    goto out;
  m->n_sets = (int)json_array_size(sets);
  m->sets = arena_alloc(&pk->arena, (size_t)m->n_sets * sizeof *m->sets + 1);
  for (int i = 0; i < m->n_sets; i++) {
    json_t *kv = json_array_get(sets, (size_t)i), *k = json_array_get(kv, 0), *v = json_array_get(kv, 1);
    if (!json_is_array(kv) || json_array_size(kv) != 2 || !json_is_string(k) || !json_is_string(v) ||
        strlen(json_string_value(k)) != json_string_length(k) ||
        strlen(json_string_value(v)) != json_string_length(v)) {
      bad(r, "setting %d is not [name, value] (two strings)", i);
      goto out;
    }
    m->sets[i].key = arena_strdup(&pk->arena, json_string_value(k));
    m->sets[i].value = arena_strdup(&pk->arena, json_string_value(v));
  }
  rc = 0;
out:
  json_decref(root);
  r->where[0] = 0;
  return rc;
}

static int parse(CgPack *pk, const unsigned char *buf, size_t len, unsigned flags, IrErr *err) {
  Rd rd = {.pk = pk, .err = err}, *r = &rd;
  if (len < HDR) return bad(r, "truncated: %zu bytes, less than the 64-byte header", len);
  if (memcmp(buf, MAGIC, 8)) return bad(r, "not a ditc pack (bad magic)");
  uint32_t version = get_u32(buf + 8), n = get_u32(buf + 12);
  uint64_t fsize = get_u64(buf + 16), toc = get_u64(buf + 24);
  if (version != CG_PACK_VERSION)
    return bad(r, "pack format version %u; this ditc reads version %d (recompile the pack with `ditc compile`%s)",
               version, CG_PACK_VERSION,
               version == 8   ? ": version 9 may hold FP8 GEMM steps (e4m3 operands, an f32 result)"
               : version == 7 ? ": version 8 may hold int8 GEMM steps (i8 operands, an i32 result: cuBLASLt's IMMA)"
               : version == 6 ? ": version 7 may hold step caching's entries (ENTRY.cache_full, ENTRY.cache_step)"
               : version == 5 ? ": version 6 passes kernels their operands' offsets as launch parameters"
               : version == 4 ? ": version 5 records the model its plans are built again from before they run"
               : version == 3 ? ": version 4 holds a plan per architecture's tuning"
                              : "");
  if (fsize != len)
    return bad(r, "%s: the header says %llu bytes, the file has %zu", fsize > len ? "truncated" : "trailing bytes",
               (unsigned long long)fsize, len);
  if (toc != HDR) return bad(r, "bad table of contents offset %llu", (unsigned long long)toc);
  if (n < 1 || n > MAX_SECTIONS) return bad(r, "bad section count %u", n);
  uint64_t toc_end = HDR + (uint64_t)n * TOC_ENTRY;
  if (toc_end > len) return bad(r, "truncated: the table of contents runs past the end");
  unsigned char sha[32];
  if (!(flags & CG_PACK_SKIP_HASHES)) {
    sha256(buf + HDR, (size_t)(toc_end - HDR), sha);
    if (memcmp(sha, buf + 32, 32)) return bad(r, "the table of contents is corrupt (SHA-256 mismatch)");
  }
  RSec *secs = xcalloc(n, sizeof *secs);
  int rc = -1;
  uint64_t at = toc_end;
  for (uint32_t i = 0; i < n; i++) {
    const unsigned char *e = buf + HDR + (size_t)i * TOC_ENTRY;
    RSec *s = &secs[i];
    s->kind = get_u32(e);
    s->ref = get_u32(e + 4);
    uint64_t off = get_u64(e + 8);
    s->size = get_u64(e + 16);
    memcpy(s->arch, e + 24, 8);
    if (s->kind < CG_PACK_SEC_MANIFEST || s->kind > CG_PACK_SEC_MODEL_TEXT) {
      bad(r, "section %u has an unknown kind %u", i, s->kind);
      goto out;
    }
    if (off != align_up(at) || off > len || s->size > len - off) {
      bad(r, "section %u (%s) at %llu, %llu bytes, does not follow the previous one inside the file", i,
          sec_name(s->kind), (unsigned long long)off, (unsigned long long)s->size);
      goto out;
    }
    for (uint64_t k = at; k < off; k++)
      if (buf[k]) {
        bad(r, "non-zero padding before section %u", i);
        goto out;
      }
    s->data = buf + off;
    at = off + s->size;
    int cubin = s->kind == CG_PACK_SEC_CUBIN || s->kind == CG_PACK_SEC_PTXAS;
    if (cubin ? !arch_ok(s->arch) : memcmp(e + 24, "\0\0\0\0\0\0\0\0", 8)) {
      bad(r, "section %u (%s) has a bad architecture field", i, sec_name(s->kind));
      goto out;
    }
    if (!(flags & CG_PACK_SKIP_HASHES)) {
      sha256(s->data, (size_t)s->size, sha);
      if (memcmp(sha, e + 32, 32)) {
        bad(r, "section %u (%s%s%s) is corrupt (SHA-256 mismatch)", i, sec_name(s->kind), cubin ? " " : "",
            cubin ? s->arch : "");
        goto out;
      }
    }
  }
  if (align_up(at) != len) {
    bad(r, "%llu bytes after the last section", (unsigned long long)(len - at));
    goto out;
  }
  for (uint64_t k = at; k < len; k++)
    if (buf[k]) {
      bad(r, "non-zero padding at the end");
      goto out;
    }
  /* the manifest first: it says how many plans and blobs to expect */
  if (secs[0].kind != CG_PACK_SEC_MANIFEST || secs[0].ref) {
    bad(r, "the first section is not the manifest");
    goto out;
  }
  for (uint32_t i = 1; i < n; i++)
    if (secs[i].kind == CG_PACK_SEC_MANIFEST) {
      bad(r, "more than one manifest");
      goto out;
    }
  if (read_manifest(r, &secs[0]) || read_model(r, secs, n)) goto out;
  pk->blobs = arena_alloc(&pk->arena, (size_t)pk->n_blobs * sizeof *pk->blobs + 1);
  pk->plans = arena_alloc(&pk->arena, (size_t)pk->n_plans * sizeof *pk->plans);
  for (int b = 0; b < pk->n_blobs; b++) pk->blobs[b].size = -1;
  const RSec **per = xcalloc((size_t)pk->n_plans * 3, sizeof *per); /* PLAN, SOURCE, CONSTS */
  for (uint32_t i = 1; i < n; i++) {
    RSec *s = &secs[i];
    if (s->kind == CG_PACK_SEC_MODEL || s->kind == CG_PACK_SEC_MODEL_TEXT) continue; /* read_model's */
    int limit = s->kind == CG_PACK_SEC_WEIGHTS ? pk->n_blobs : pk->n_plans;
    if (s->ref >= (uint32_t)limit) {
      bad(r, "section %u (%s) refers to %s %u of %d", i, sec_name(s->kind),
          s->kind == CG_PACK_SEC_WEIGHTS ? "blob" : "plan", s->ref, limit);
      goto out_per;
    }
    if (s->kind == CG_PACK_SEC_WEIGHTS) {
      if (pk->blobs[s->ref].size >= 0) {
        bad(r, "weights blob %u appears twice", s->ref);
        goto out_per;
      }
      pk->blobs[s->ref] = (CgPackBlob){s->data, (int64_t)s->size};
    } else if (s->kind <= CG_PACK_SEC_CONSTS) {
      const RSec **slot = &per[s->ref * 3 + (s->kind - CG_PACK_SEC_PLAN)];
      if (*slot) {
        bad(r, "plan %u has two %s sections", s->ref, sec_name(s->kind));
        goto out_per;
      }
      *slot = s;
    } else {
      CgPackPlan *pp = &pk->plans[s->ref];
      int found = -1;
      for (int c = 0; c < pp->n_cubins; c++)
        if (!strcmp(pp->cubins[c].arch, s->arch)) found = c;
      if (s->kind == CG_PACK_SEC_CUBIN) {
        if (found >= 0) {
          bad(r, "plan %u has two CUBINs for %s", s->ref, s->arch);
          goto out_per;
        }
        CgPackCubin *nc = arena_alloc(&pk->arena, (size_t)(pp->n_cubins + 1) * sizeof *nc);
        if (pp->n_cubins) memcpy(nc, pp->cubins, (size_t)pp->n_cubins * sizeof *nc);
        pp->cubins = nc;
        CgPackCubin *c = &pp->cubins[pp->n_cubins++];
        memcpy(c->arch, s->arch, sizeof c->arch);
        c->image = s->data;
        c->size = (size_t)s->size;
        c->ptxas_log = NULL;
      } else {
        if (found < 0 || pp->cubins[found].ptxas_log) {
          bad(r, "section %u: a ptxas report without its CUBIN (plan %u, %s)", i, s->ref, s->arch);
          goto out_per;
        }
        char *log = arena_alloc(&pk->arena, (size_t)s->size + 1);
        memcpy(log, s->data, (size_t)s->size);
        pp->cubins[found].ptxas_log = log;
      }
    }
  }
  for (int b = 0; b < pk->n_blobs; b++)
    if (pk->blobs[b].size < 0) {
      bad(r, "weights blob %d is missing", b);
      goto out_per;
    }
  for (int p = 0; p < pk->n_plans; p++) {
    for (int k = 0; k < 3; k++)
      if (!per[p * 3 + k]) {
        bad(r, "plan %d has no %s section", p, sec_name((uint32_t)(CG_PACK_SEC_PLAN + k)));
        goto out_per;
      }
    CgPackPlan *pp = &pk->plans[p];
    for (int c = 0; c < pp->n_cubins; c++)
      if (!pp->cubins[c].ptxas_log) pp->cubins[c].ptxas_log = "";
    if (read_plan(r, p, per[p * 3], per[p * 3 + 1], per[p * 3 + 2], pp) || entry_clash(r, p) ||
        cubin_rows(r, p))
      goto out_per;
  }
  rc = 0;
out_per:
  free(per);
out:
  free(secs);
  return rc;
}

static CgPack *pack_new(const char *label) {
  CgPack *pk = xcalloc(1, sizeof *pk);
  pk->path = arena_strdup(&pk->arena, label ? label : "pack");
  return pk;
}

CgPack *cg_pack_open_memory(const void *buf, size_t len, const char *label, unsigned flags, IrErr *err) {
  CgPack *pk = pack_new(label);
  if (parse(pk, buf, len, flags, err)) {
    cg_pack_close(pk);
    return NULL;
  }
  return pk;
}

CgPack *cg_pack_open(const char *path, IrErr *err) {
  CgPack *pk = pack_new(path);
  if (fio_map(path, FIO_NO_CAP, "a pack", &pk->map, err) ||
      parse(pk, pk->map.data, pk->map.size, 0, err)) {
    cg_pack_close(pk);
    return NULL;
  }
  return pk;
}

void cg_pack_close(CgPack *pk) {
  if (!pk) return;
  for (int i = 0; pk->plans && i < pk->n_plans; i++)
    if (pk->plans[i].plan) {
      arena_free(&pk->plans[i].plan->arena);
      free(pk->plans[i].plan);
    }
  fio_unmap(&pk->map);
  arena_free(&pk->arena);
  free(pk);
}

/* ======================================================================== */
/* lookups                                                                  */
/* ======================================================================== */

const char *cg_pack_param(const CgPack *p, const char *key) {
  for (int i = 0; i < p->n_params; i++)
    if (!strcmp(p->params[i].key, key)) return p->params[i].value;
  return NULL;
}

int64_t cg_pack_param_int(const CgPack *p, const char *key, int64_t def) {
  const char *v = cg_pack_param(p, key);
  if (!v) return def;
  if (!strcmp(v, "true")) return 1;
  if (!strcmp(v, "false")) return 0;
  char *end;
  errno = 0;
  long long x = strtoll(v, &end, 10);
  return errno || end == v || *end ? def : x;
}

const CgPackPlan *cg_pack_find_plan(const CgPack *p, const char *entry) {
  for (int i = 0; i < p->n_plans; i++)
    if (!strcmp(p->plans[i].plan->entry, entry)) return &p->plans[i];
  return NULL;
}


const CgPackPlan *cg_pack_find_plan_arch(const CgPack *p, const char *entry, const char *arch, IrErr *err) {
  char sfx;
  int want = strncmp(arch, "sm_", 3) ? -1 : arch_num(arch, &sfx);
  char list[512] = "";
  size_t used = 0;
  int plans = 0;
  for (int i = 0; i < p->n_plans; i++) {
    const CgPackPlan *pp = &p->plans[i];
    if (strcmp(pp->plan->entry, entry)) continue;
    plans++;
    for (int c = 0; c < pp->n_cubins; c++) {
      if (arch_num(pp->cubins[c].arch, &sfx) == want) return pp;
      if (used < sizeof list)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", used ? ", " : "", pp->cubins[c].arch);
    }
  }
  if (!plans) {
    ir_errf(err, "%s has no plan for '%s'", p->path, entry);
    return NULL;
  }
  ir_errf(err, "%s has no plan for '%s' on %s: it was compiled for %s (recompile with --arch %s)", p->path, entry,
          arch, used ? list : "no architecture (no CUBINs)", arch);
  return NULL;
}

const CgPackCubin *cg_pack_pick_cubin(const CgPackPlan *pp, int major, int minor, IrErr *err) {
  int want = major * 10 + minor;
  const CgPackCubin *best = NULL;
  int best_sm = -1, exact_plain = 0;
  for (int i = 0; i < pp->n_cubins; i++) {
    char sfx;
    int sm = arch_num(pp->cubins[i].arch, &sfx);
    if (sm == want) {
      /* prefer the plain target over 'a'/'f' on an exact match */
      if (!best || best_sm != want || (!exact_plain && !sfx)) best = &pp->cubins[i], exact_plain = !sfx;
      best_sm = want;
    } else if (best_sm != want && sm / 10 == major && sm < want && sfx != 'a' && sm > best_sm) {
      best = &pp->cubins[i];
      best_sm = sm;
    }
  }
  if (best) return best;
  char list[512] = "";
  size_t used = 0;
  for (int i = 0; i < pp->n_cubins && used < sizeof list; i++)
    used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", pp->cubins[i].arch);
  ir_errf(err, "the pack has no CUBIN for this GPU (sm_%d%d) in plan '%s'; it has: %s (recompile with --arch sm_%d%d)",
          major, minor, pp->plan->entry, pp->n_cubins ? list : "none", major, minor);
  return NULL;
}
