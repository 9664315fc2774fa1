/*
 * safetensors.c - strict safetensors reader (mmap or caller buffer) and an
 * atomic writer.
 *
 * Reading: the u64 header length is checked against the file and a 100 MB
 * cap, the header is parsed by jansson with JSON_REJECT_DUPLICATES, and every
 * entry is validated before anything is handed out: exactly the keys dtype,
 * shape and data_offsets; a known dtype; a shape of at most 8 non-negative
 * integers whose product (zeros aside) fits in int64 bytes; offsets inside the
 * data buffer whose length is numel * dtype size; no two non-empty tensors
 * sharing a byte.  Holes between tensors are accepted (they harm nothing).
 * "__metadata__" must be an object of strings.
 *
 * st_get() returns tensors in file order: ascending begin offset, ties
 * (zero-size tensors) in header order (jansson >= 2.8 iterates objects in
 * insertion order).  st_find() uses a name-sorted index.
 *
 * Writing: tensors and metadata are copied in and written, in the order they
 * were added (header compact JSON, padded with spaces to a multiple of 8
 * bytes as the reference writer does), to an output of ir/fileio.h: a
 * temporary file renamed over the path once complete, or written through to
 * a device or FIFO.  Any failure removes the temporary file.
 *
 * The format is little-endian; so is every host ditc targets (asserted below),
 * and element reads go through memcpy because data may be unaligned.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "ir/fileio.h"
#include "runtime/safetensors.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors reader assumes a little-endian host");

#define ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000)

static const struct {
  const char *name;
  size_t size;
} dtypes[ST_DTYPE_COUNT] = {
    [ST_BOOL] = {"BOOL", 1}, [ST_U8] = {"U8", 1},   [ST_I8] = {"I8", 1},
    [ST_I16] = {"I16", 2},   [ST_U16] = {"U16", 2}, [ST_I32] = {"I32", 4},
    [ST_U32] = {"U32", 4},   [ST_I64] = {"I64", 8}, [ST_U64] = {"U64", 8},
    [ST_F16] = {"F16", 2},   [ST_BF16] = {"BF16", 2}, [ST_F32] = {"F32", 4},
    [ST_F64] = {"F64", 8},
};

const char *st_dtype_name(StDType t) {
  return (unsigned)t < ST_DTYPE_COUNT ? dtypes[t].name : "?";
}

size_t st_dtype_size(StDType t) {
  DITC_ASSERT((unsigned)t < ST_DTYPE_COUNT);
  return dtypes[t].size;
}

static int dtype_parse(const char *s, StDType *out) {
  for (int i = 0; i < ST_DTYPE_COUNT; i++)
    if (!strcmp(s, dtypes[i].name)) {
      *out = (StDType)i;
      return 0;
    }
  return -1;
}

typedef struct {
  char *key, *value;
} StMeta;

struct StFile {
  char *label;
  FioMap map; /* when st_open mapped the file; zeroed otherwise */
  StTensor *t; /* file order */
  int n;
  const StTensor **by_name; /* into t, sorted by name */
  StMeta *meta;
  int n_meta;
};

void st_close(StFile *f) {
  if (!f) return;
  fio_unmap(&f->map);
  for (int i = 0; i < f->n; i++) free((char *)f->t[i].name);
  for (int i = 0; i < f->n_meta; i++) {
    free(f->meta[i].key);
    free(f->meta[i].value);
  }
  free(f->t);
  free(f->by_name);
  free(f->meta);
  free(f->label);
  free(f);
}

/* ---- header validation --------------------------------------------------- */

/* A JSON integer in [0, INT64_MAX], else -1. */
static int json_nonneg(const json_t *v, int64_t *out) {
  if (!json_is_integer(v)) return -1;
  json_int_t x = json_integer_value(v);
  if (x < 0) return -1;
  *out = (int64_t)x;
  return 0;
}

static int check_metadata(StFile *f, const json_t *meta, IrErr *err) {
  if (!json_is_object(meta))
    return ir_errf(err, "%s: __metadata__ is not an object", f->label);
  f->meta = xcalloc(json_object_size(meta) + 1, sizeof *f->meta);
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)meta, key, v) {
    if (!json_is_string(v))
      return ir_errf(err, "%s: __metadata__ value of '%s' is not a string", f->label, key);
    f->meta[f->n_meta].key = xstrdup(key);
    f->meta[f->n_meta].value = xstrdup(json_string_value(v));
    f->n_meta++;
  }
  return 0;
}

/* Validate one tensor entry and fill t (name owned by t); data is set later. */
static int check_entry(StFile *f, const char *name, const json_t *e, uint64_t data_len,
                       StTensor *t, int64_t *begin, IrErr *err) {
  if (!json_is_object(e))
    return ir_errf(err, "%s: tensor '%s': entry is not an object", f->label, name);
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)e, key, v) {
    if (strcmp(key, "dtype") && strcmp(key, "shape") && strcmp(key, "data_offsets"))
      return ir_errf(err, "%s: tensor '%s': unexpected key '%s'", f->label, name, key);
  }
  const json_t *jd = json_object_get(e, "dtype");
  const json_t *js = json_object_get(e, "shape");
  const json_t *jo = json_object_get(e, "data_offsets");
  if (!jd || !js || !jo)
    return ir_errf(err, "%s: tensor '%s': missing '%s'", f->label, name,
                   !jd ? "dtype" : !js ? "shape" : "data_offsets");

  if (!json_is_string(jd))
    return ir_errf(err, "%s: tensor '%s': dtype is not a string", f->label, name);
  if (!strncmp(json_string_value(jd), "F8_", 3))
    return ir_errf(err, "%s: tensor '%s': dtype '%s' (fp8) is a quantised checkpoint's, which ditc does not read; "
                   "give float weights (F32, F16 or BF16): ditc quantises itself (--quantize fp8)", f->label, name,
                   json_string_value(jd));
  if (dtype_parse(json_string_value(jd), &t->dtype))
    return ir_errf(err, "%s: tensor '%s': unknown dtype '%s'", f->label, name,
                   json_string_value(jd));

  if (!json_is_array(js))
    return ir_errf(err, "%s: tensor '%s': shape is not an array", f->label, name);
  size_t rank = json_array_size(js);
  if (rank > ST_MAX_RANK)
    return ir_errf(err, "%s: tensor '%s': rank %zu exceeds %d", f->label, name, rank,
                   ST_MAX_RANK);
  t->rank = (int)rank;
  /* Every non-zero dimension multiplied together must fit, in bytes, so that
   * any prefix or suffix product computed later cannot overflow either. */
  int64_t numel = 1, bound = (int64_t)st_dtype_size(t->dtype);
  for (size_t i = 0; i < rank; i++) {
    if (json_nonneg(json_array_get(js, i), &t->shape[i]))
      return ir_errf(err, "%s: tensor '%s': shape[%zu] is not a non-negative integer",
                     f->label, name, i);
    int64_t d = t->shape[i];
    if (d > 0 && __builtin_mul_overflow(bound, d, &bound))
      return ir_errf(err, "%s: tensor '%s': shape overflows", f->label, name);
    numel *= d;
  }
  uint64_t nbytes = (uint64_t)numel * st_dtype_size(t->dtype);

  int64_t b, en;
  if (!json_is_array(jo) || json_array_size(jo) != 2 ||
      json_nonneg(json_array_get(jo, 0), &b) || json_nonneg(json_array_get(jo, 1), &en))
    return ir_errf(err, "%s: tensor '%s': data_offsets is not [begin, end] of non-negative integers",
                   f->label, name);
  if (b > en || (uint64_t)en > data_len)
    return ir_errf(err, "%s: tensor '%s': data_offsets [%lld, %lld] outside the data buffer (%llu bytes)",
                   f->label, name, (long long)b, (long long)en, (unsigned long long)data_len);
  if ((uint64_t)(en - b) != nbytes) {
    char sb[160];
    return ir_errf(err, "%s: tensor '%s': data_offsets [%lld, %lld] do not match %s %s (%llu bytes)",
                   f->label, name, (long long)b, (long long)en, st_dtype_name(t->dtype),
                   rt_dims_str(t->rank, t->shape, sb, sizeof sb), (unsigned long long)nbytes);
  }
  t->nbytes = (size_t)nbytes;
  *begin = b;
  return 0;
}

typedef struct {
  int64_t begin;
  int order; /* header position */
  StTensor t;
} Entry;

static int entry_cmp(const void *a, const void *b) {
  const Entry *x = a, *y = b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  return x->order - y->order;
}

static int name_cmp(const void *a, const void *b) {
  return strcmp((*(const StTensor *const *)a)->name, (*(const StTensor *const *)b)->name);
}

static int parse_header(StFile *f, const uint8_t *buf, size_t len, IrErr *err) {
  if (len < 8)
    return ir_errf(err, "%s: file too short (%zu bytes) to hold the header length", f->label, len);
  uint64_t hlen;
  memcpy(&hlen, buf, 8);
  if (hlen > ST_MAX_HEADER)
    return ir_errf(err, "%s: header length %llu exceeds the 100 MB limit", f->label,
                   (unsigned long long)hlen);
  if (hlen > len - 8)
    return ir_errf(err, "%s: header length %llu runs past the end of the file (%zu bytes)",
                   f->label, (unsigned long long)hlen, len);
  const uint8_t *data = buf + 8 + hlen;
  uint64_t data_len = len - 8 - hlen;

  json_error_t jerr;
  json_t *root = json_loadb((const char *)buf + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
  if (!root)
    return ir_errf(err, "%s: bad JSON header: %s (byte %d)", f->label, jerr.text,
                   jerr.position);
  int rc = 0;
  Entry *ents = NULL;
  int n = 0;
  if (!json_is_object(root)) {
    rc = ir_errf(err, "%s: header is not a JSON object", f->label);
    goto out;
  }
  ents = xcalloc(json_object_size(root) + 1, sizeof *ents);
  const char *key;
  json_t *v;
  json_object_foreach(root, key, v) {
    if (!strcmp(key, "__metadata__")) {
      if ((rc = check_metadata(f, v, err))) goto out;
      continue;
    }
    Entry *e = &ents[n];
    e->order = n;
    if ((rc = check_entry(f, key, v, data_len, &e->t, &e->begin, err))) goto out;
    e->t.name = xstrdup(key);
    e->t.data = data + e->begin;
    n++;
  }

  /* File order, then check that non-empty neighbours do not share bytes. */
  qsort(ents, (size_t)n, sizeof *ents, entry_cmp);
  const Entry *prev = NULL;
  for (int i = 0; i < n; i++) {
    const Entry *e = &ents[i];
    if (e->t.nbytes == 0) continue;
    if (prev && prev->begin + (int64_t)prev->t.nbytes > e->begin) {
      rc = ir_errf(err, "%s: tensors '%s' [%lld, %lld] and '%s' [%lld, %lld] overlap", f->label,
                   prev->t.name, (long long)prev->begin,
                   (long long)(prev->begin + (int64_t)prev->t.nbytes), e->t.name,
                   (long long)e->begin, (long long)(e->begin + (int64_t)e->t.nbytes));
      goto out;
    }
    prev = e;
  }

  f->t = xcalloc((size_t)n + 1, sizeof *f->t);
  f->by_name = xcalloc((size_t)n + 1, sizeof *f->by_name);
  for (int i = 0; i < n; i++) {
    f->t[i] = ents[i].t;
    ents[i].t.name = NULL; /* now owned by f */
    f->by_name[i] = &f->t[i];
  }
  f->n = n;
  qsort(f->by_name, (size_t)n, sizeof *f->by_name, name_cmp);

out:
  if (ents)
    for (int i = 0; i < n; i++) free((char *)ents[i].t.name);
  free(ents);
  json_decref(root);
  return rc;
}

StFile *st_open_memory(const uint8_t *buf, size_t len, const char *label, IrErr *err) {
  StFile *f = xcalloc(1, sizeof *f);
  f->label = xstrdup(label ? label : "<memory>");
  if (parse_header(f, buf, len, err)) {
    st_close(f);
    return NULL;
  }
  return f;
}

StFile *st_open(const char *path, IrErr *err) {
  /* Mapped, not read: only the header is bounded (ST_MAX_HEADER), the data
   * may be as large as the file, and only the pages used are ever read. */
  FioMap m;
  if (fio_map(path, FIO_NO_CAP, "a safetensors file", &m, err)) return NULL;
  StFile *f = st_open_memory(m.data, m.size, path, err);
  if (!f) {
    fio_unmap(&m);
    return NULL;
  }
  f->map = m;
  return f;
}

int st_count(const StFile *f) { return f->n; }

const StTensor *st_get(const StFile *f, int i) {
  return i >= 0 && i < f->n ? &f->t[i] : NULL;
}

const StTensor *st_find(const StFile *f, const char *name) {
  int lo = 0, hi = f->n - 1;
  while (lo <= hi) {
    int mid = lo + (hi - lo) / 2;
    const StTensor *t = f->by_name[mid];
    int c = strcmp(name, t->name);
    if (c == 0) return t;
    if (c < 0)
      hi = mid - 1;
    else
      lo = mid + 1;
  }
  return NULL;
}

const char *st_metadata(const StFile *f, const char *key) {
  for (int i = 0; i < f->n_meta; i++)
    if (!strcmp(f->meta[i].key, key)) return f->meta[i].value;
  return NULL;
}

const char *st_path(const StFile *f) { return f->label; }

/* ---- conversions --------------------------------------------------------- */

static int64_t st_numel(const StTensor *t) {
  int64_t n = 1;
  for (int i = 0; i < t->rank; i++) n *= t->shape[i];
  return n;
}

/* Element i of an unaligned little-endian array. */
#define DEF_LOAD(T, fn)                                   \
  static inline T fn(const uint8_t *p, int64_t i) {       \
    T v;                                                  \
    memcpy(&v, p + (size_t)i * sizeof v, sizeof v);       \
    return v;                                             \
  }
DEF_LOAD(int16_t, ld_i16)
DEF_LOAD(uint16_t, ld_u16)
DEF_LOAD(int32_t, ld_i32)
DEF_LOAD(uint32_t, ld_u32)
DEF_LOAD(int64_t, ld_i64)
DEF_LOAD(uint64_t, ld_u64)
DEF_LOAD(double, ld_f64)
#undef DEF_LOAD

int st_to_f32(const StTensor *t, float *out, IrErr *err) {
  (void)err;
  int64_t n = st_numel(t);
  const uint8_t *p = t->data;
  switch (t->dtype) {
  case ST_BOOL: for (int64_t i = 0; i < n; i++) out[i] = p[i] ? 1.0f : 0.0f; break;
  case ST_U8: for (int64_t i = 0; i < n; i++) out[i] = (float)p[i]; break;
  case ST_I8: for (int64_t i = 0; i < n; i++) out[i] = (float)(int8_t)p[i]; break;
  case ST_I16: for (int64_t i = 0; i < n; i++) out[i] = (float)ld_i16(p, i); break;
  case ST_U16: for (int64_t i = 0; i < n; i++) out[i] = (float)ld_u16(p, i); break;
  case ST_I32: for (int64_t i = 0; i < n; i++) out[i] = (float)ld_i32(p, i); break;
  case ST_U32: for (int64_t i = 0; i < n; i++) out[i] = (float)ld_u32(p, i); break;
  case ST_I64: for (int64_t i = 0; i < n; i++) out[i] = (float)ld_i64(p, i); break;
  case ST_U64: for (int64_t i = 0; i < n; i++) out[i] = (float)ld_u64(p, i); break;
  case ST_F16: for (int64_t i = 0; i < n; i++) out[i] = ir_f16_to_f32(ld_u16(p, i)); break;
  case ST_BF16: for (int64_t i = 0; i < n; i++) out[i] = ir_bf16_to_f32(ld_u16(p, i)); break;
  case ST_F32: if (n) memcpy(out, p, (size_t)n * 4); break;
  case ST_F64: for (int64_t i = 0; i < n; i++) out[i] = (float)ld_f64(p, i); break;
  default: ditc_unreachable();
  }
  return 0;
}

/* Integer sources only; 64-bit and u32 values are range-checked. */
int st_to_i32(const StTensor *t, int32_t *out, IrErr *err) {
  int64_t n = st_numel(t);
  const uint8_t *p = t->data;
  for (int64_t i = 0; i < n; i++) {
    int64_t v;
    switch (t->dtype) {
    case ST_BOOL: v = p[i] != 0; break;
    case ST_U8: v = p[i]; break;
    case ST_I8: v = (int8_t)p[i]; break;
    case ST_I16: v = ld_i16(p, i); break;
    case ST_U16: v = ld_u16(p, i); break;
    case ST_I32: v = ld_i32(p, i); break;
    case ST_U32: v = ld_u32(p, i); break;
    case ST_I64: v = ld_i64(p, i); break;
    case ST_U64: {
      uint64_t u = ld_u64(p, i);
      if (u > INT32_MAX)
        return ir_errf(err, "tensor '%s': element %lld (%llu) does not fit in i32", t->name,
                       (long long)i, (unsigned long long)u);
      v = (int64_t)u;
      break;
    }
    default:
      return ir_errf(err, "tensor '%s': %s cannot be read as i32 (integer dtypes only)", t->name,
                     st_dtype_name(t->dtype));
    }
    if (v < INT32_MIN || v > INT32_MAX)
      return ir_errf(err, "tensor '%s': element %lld (%lld) does not fit in i32", t->name,
                     (long long)i, (long long)v);
    out[i] = (int32_t)v;
  }
  return 0;
}

int st_load(const StTensor *t, IrDType want, RtTensor *out, IrErr *err) {
  memset(out, 0, sizeof *out);
  if (want != IR_F32 && want != IR_I32)
    return ir_errf(err, "tensor '%s': cannot load as %s (f32 or i32 only)", t->name,
                   ir_dtype_name(want));
  if (t->rank > IR_MAX_RANK)
    return ir_errf(err, "tensor '%s': rank %d exceeds the IR's %d", t->name, t->rank, IR_MAX_RANK);
  RtTensor r = rt_tensor_new(want, t->rank, t->shape);
  int rc = want == IR_F32 ? st_to_f32(t, r.data, err) : st_to_i32(t, r.data, err);
  if (rc) {
    rt_tensor_free(&r);
    return rc;
  }
  *out = r;
  return 0;
}

/* ---- writer -------------------------------------------------------------- */

typedef struct {
  char *name;
  StDType dtype;
  int rank;
  int64_t shape[ST_MAX_RANK];
  void *data;
  size_t nbytes;
} WEntry;

struct StWriter {
  WEntry *t;
  int n, cap;
  StMeta *meta;
  int n_meta, cap_meta;
  char bad[512]; /* first misuse, reported by save */
};

StWriter *st_writer_new(void) { return xcalloc(1, sizeof(StWriter)); }

void st_writer_free(StWriter *w) {
  if (!w) return;
  for (int i = 0; i < w->n; i++) {
    free(w->t[i].name);
    free(w->t[i].data);
  }
  for (int i = 0; i < w->n_meta; i++) {
    free(w->meta[i].key);
    free(w->meta[i].value);
  }
  free(w->t);
  free(w->meta);
  free(w);
}

void st_writer_add(StWriter *w, const char *name, StDType dtype, int rank, const int64_t *shape,
                   const void *data) {
  if (w->bad[0]) return;
  if ((unsigned)dtype >= ST_DTYPE_COUNT || rank < 0 || rank > ST_MAX_RANK) {
    snprintf(w->bad, sizeof w->bad, "tensor '%s': bad dtype or rank %d", name, rank);
    return;
  }
  if (!strcmp(name, "__metadata__")) {
    snprintf(w->bad, sizeof w->bad, "'__metadata__' cannot name a tensor");
    return;
  }
  for (int i = 0; i < w->n; i++)
    if (!strcmp(w->t[i].name, name)) {
      snprintf(w->bad, sizeof w->bad, "tensor '%s' added twice", name);
      return;
    }
  int64_t numel = 1;
  for (int i = 0; i < rank; i++) {
    if (shape[i] < 0 || __builtin_mul_overflow(numel, shape[i], &numel)) {
      snprintf(w->bad, sizeof w->bad, "tensor '%s': bad shape", name);
      return;
    }
  }
  if (w->n == w->cap) {
    w->cap = w->cap ? 2 * w->cap : 16;
    w->t = xrealloc(w->t, (size_t)w->cap * sizeof *w->t);
  }
  WEntry *e = &w->t[w->n++];
  memset(e, 0, sizeof *e);
  e->name = xstrdup(name);
  e->dtype = dtype;
  e->rank = rank;
  for (int i = 0; i < rank; i++) e->shape[i] = shape[i];
  e->nbytes = (size_t)numel * st_dtype_size(dtype);
  e->data = xmalloc(e->nbytes ? e->nbytes : 1);
  if (e->nbytes) memcpy(e->data, data, e->nbytes);
}

void st_writer_add_tensor(StWriter *w, const char *name, const RtTensor *t) {
  StDType d;
  switch (t->dtype) {
  case IR_F32: d = ST_F32; break;
  case IR_F16: d = ST_F16; break;
  case IR_BF16: d = ST_BF16; break;
  case IR_I8: d = ST_I8; break;
  case IR_I32: d = ST_I32; break;
  default: ditc_unreachable();
  }
  st_writer_add(w, name, d, t->rank, t->shape, t->data);
}

void st_writer_meta(StWriter *w, const char *key, const char *value) {
  for (int i = 0; i < w->n_meta; i++)
    if (!strcmp(w->meta[i].key, key)) { /* last value wins */
      free(w->meta[i].value);
      w->meta[i].value = xstrdup(value);
      return;
    }
  if (w->n_meta == w->cap_meta) {
    w->cap_meta = w->cap_meta ? 2 * w->cap_meta : 8;
    w->meta = xrealloc(w->meta, (size_t)w->cap_meta * sizeof *w->meta);
  }
  w->meta[w->n_meta].key = xstrdup(key);
  w->meta[w->n_meta].value = xstrdup(value);
  w->n_meta++;
}

/* The header JSON: metadata first, then tensors in the order added.  NULL
 * when jansson refuses a key or value (it only takes valid UTF-8). */
static char *writer_header(const StWriter *w) {
  json_t *root = json_object();
  int bad = 0;
  if (w->n_meta) {
    json_t *m = json_object();
    for (int i = 0; i < w->n_meta; i++)
      bad |= json_object_set_new(m, w->meta[i].key, json_string(w->meta[i].value));
    bad |= json_object_set_new(root, "__metadata__", m);
  }
  uint64_t off = 0;
  for (int i = 0; i < w->n && !bad; i++) {
    const WEntry *e = &w->t[i];
    json_t *shape = json_array();
    for (int k = 0; k < e->rank; k++) json_array_append_new(shape, json_integer(e->shape[k]));
    json_t *offs = json_array();
    json_array_append_new(offs, json_integer((json_int_t)off));
    json_array_append_new(offs, json_integer((json_int_t)(off + e->nbytes)));
    off += e->nbytes;
    json_t *o = json_object();
    json_object_set_new(o, "dtype", json_string(st_dtype_name(e->dtype)));
    json_object_set_new(o, "shape", shape);
    json_object_set_new(o, "data_offsets", offs);
    bad |= json_object_set_new(root, e->name, o);
  }
  char *s = bad ? NULL : json_dumps(root, JSON_COMPACT);
  json_decref(root);
  return s;
}

/* The header, or NULL with err naming label. */
static char *checked_header(const StWriter *w, const char *label, IrErr *err) {
  if (w->bad[0]) {
    ir_errf(err, "%s: %s", label, w->bad);
    return NULL;
  }
  char *hdr = writer_header(w);
  if (!hdr)
    ir_errf(err, "%s: cannot encode the header (tensor names and metadata must be UTF-8)", label);
  return hdr;
}

int st_writer_write(StWriter *w, FioOut *o, IrErr *err) {
  char *hdr = checked_header(w, fio_out_path(o), err);
  if (!hdr) return -1;
  size_t hlen = strlen(hdr);
  size_t padded = (hlen + 7) / 8 * 8;
  uint8_t len8[8];
  uint64_t pl = padded;
  memcpy(len8, &pl, 8);
  static const char spaces[8] = "        ";
  int bad = fio_out_write(o, len8, 8, err) || fio_out_write(o, hdr, hlen, err) ||
            fio_out_write(o, spaces, padded - hlen, err);
  for (int i = 0; i < w->n && !bad; i++) bad = fio_out_write(o, w->t[i].data, w->t[i].nbytes, err);
  free(hdr);
  return bad ? -1 : 0;
}

static int write_to(void *w, FioOut *o, IrErr *err) { return st_writer_write(w, o, err); }

int st_writer_save(StWriter *w, const char *path, IrErr *err) {
  /* what can be refused is refused before the file is touched */
  char *hdr = checked_header(w, path, err);
  if (!hdr) return -1;
  free(hdr);
  return fio_save(path, write_to, w, err);
}
