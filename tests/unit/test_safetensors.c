/*
 * test_safetensors.c - the safetensors reader and writer.
 *
 * Round trips through the writer (every dtype, metadata, zero-size and scalar
 * tensors), conversions (including unaligned data and out-of-range integers),
 * a table of hostile headers that must each be rejected with a message naming
 * the file and the problem, writer failures that must leave no file behind,
 * and every shared reference checkpoint.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"

#include "runtime/safetensors.h"

static char tmpdir[256];

static int setup(void **state) {
  (void)state;
  return tu_tmpdir_make(tmpdir, sizeof tmpdir, "st");
}

static int teardown(void **state) {
  (void)state;
  tu_tmpdir_remove(tmpdir);
  return 0;
}

static char *tpath(const char *name) {
  static char p[512];
  snprintf(p, sizeof p, "%s/%s", tmpdir, name);
  return p;
}

/* Entries of dir (not . and ..), to catch left-over temporary files. */
static int count_entries(const char *dir) {
  DIR *d = opendir(dir);
  assert_non_null(d);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
  closedir(d);
  return n;
}

/* ---- writer round trip --------------------------------------------------- */

static void test_roundtrip(void **state) {
  (void)state;
  StWriter *w = st_writer_new();
  float f32[6] = {1.5f, -2.0f, 0.0f, 3.25f, 1e-3f, -7.0f};
  int64_t s23[2] = {2, 3};
  st_writer_add(w, "w.f32", ST_F32, 2, s23, f32);
  uint16_t f16[3] = {0x3c00, 0xc000, 0x3555}; /* 1, -2, 0.33325195 */
  int64_t s3[1] = {3};
  st_writer_add(w, "w.f16", ST_F16, 1, s3, f16);
  uint16_t bf[3] = {0x3f80, 0x4040, 0xbf00}; /* 1, 3, -0.5 */
  st_writer_add(w, "w.bf16", ST_BF16, 1, s3, bf);
  int64_t i64[3] = {-5, 0, 1000000};
  st_writer_add(w, "t", ST_I64, 1, s3, i64);
  uint8_t u8[3] = {0, 7, 255};
  st_writer_add(w, "u8", ST_U8, 1, s3, u8);
  double f64[3] = {0.5, -1e30, 2.0};
  st_writer_add(w, "f64", ST_F64, 1, s3, f64);
  int64_t s0[2] = {4, 0};
  st_writer_add(w, "empty", ST_F32, 2, s0, NULL);
  float scalar = 42.0f;
  st_writer_add(w, "scalar", ST_F32, 0, NULL, &scalar);
  RtTensor rt = rt_tensor_new(IR_I32, 1, s3);
  ((int32_t *)rt.data)[2] = -9;
  st_writer_add_tensor(w, "rt.i32", &rt);
  rt_tensor_free(&rt);
  st_writer_meta(w, "format", "pt");
  st_writer_meta(w, "note", "first");
  st_writer_meta(w, "note", "second"); /* last value wins */

  IrErr err = {{0}};
  int before = count_entries(tmpdir);
  assert_int_equal(st_writer_save(w, tpath("rt.safetensors"), &err), 0);
  st_writer_free(w);
  assert_int_equal(count_entries(tmpdir), before + 1); /* no temporary left */

  /* Header padded with spaces to a multiple of 8. */
  FILE *fp = fopen(tpath("rt.safetensors"), "rb");
  assert_non_null(fp);
  uint64_t hlen;
  assert_int_equal(fread(&hlen, 8, 1, fp), 1);
  assert_int_equal(hlen % 8, 0);
  char *hdr = calloc(1, hlen + 1);
  assert_int_equal(fread(hdr, 1, hlen, fp), hlen);
  fclose(fp);
  assert_true(hdr[0] == '{');
  assert_non_null(strstr(hdr, "\"__metadata__\":{\"format\":\"pt\",\"note\":\"second\"}"));
  free(hdr);

  StFile *f = st_open(tpath("rt.safetensors"), &err);
  assert_non_null(f);
  assert_string_equal(st_path(f), tpath("rt.safetensors"));
  assert_int_equal(st_count(f), 9);
  /* File order is the order added. */
  const char *order[] = {"w.f32", "w.f16", "w.bf16", "t", "u8", "f64", "empty", "scalar", "rt.i32"};
  for (int i = 0; i < 9; i++) assert_string_equal(st_get(f, i)->name, order[i]);
  assert_null(st_get(f, 9));
  assert_null(st_get(f, -1));
  assert_string_equal(st_metadata(f, "format"), "pt");
  assert_string_equal(st_metadata(f, "note"), "second");
  assert_null(st_metadata(f, "absent"));
  assert_null(st_find(f, "absent"));
  assert_null(st_find(f, "__metadata__"));

  const StTensor *t = st_find(f, "w.f32");
  assert_non_null(t);
  assert_int_equal(t->dtype, ST_F32);
  assert_int_equal(t->rank, 2);
  assert_int_equal(t->shape[0], 2);
  assert_int_equal(t->shape[1], 3);
  assert_int_equal(t->nbytes, 24);
  float out[8];
  assert_int_equal(st_to_f32(t, out, &err), 0);
  assert_memory_equal(out, f32, sizeof f32);

  assert_int_equal(st_to_f32(st_find(f, "w.f16"), out, &err), 0);
  assert_true(out[0] == 1.0f && out[1] == -2.0f && fabsf(out[2] - 0.33325195f) < 1e-7f);
  assert_int_equal(st_to_f32(st_find(f, "w.bf16"), out, &err), 0);
  assert_true(out[0] == 1.0f && out[1] == 3.0f && out[2] == -0.5f);
  assert_int_equal(st_to_f32(st_find(f, "t"), out, &err), 0);
  assert_true(out[0] == -5.0f && out[1] == 0.0f && out[2] == 1e6f);
  assert_int_equal(st_to_f32(st_find(f, "u8"), out, &err), 0);
  assert_true(out[0] == 0.0f && out[1] == 7.0f && out[2] == 255.0f);
  assert_int_equal(st_to_f32(st_find(f, "f64"), out, &err), 0);
  assert_true(out[0] == 0.5f && out[1] == -1e30f && out[2] == 2.0f);
  assert_int_equal(st_find(f, "empty")->nbytes, 0);
  assert_int_equal(st_find(f, "scalar")->rank, 0);
  assert_int_equal(st_to_f32(st_find(f, "scalar"), out, &err), 0);
  assert_true(out[0] == 42.0f);

  int32_t iv[3];
  assert_int_equal(st_to_i32(st_find(f, "t"), iv, &err), 0);
  assert_true(iv[0] == -5 && iv[1] == 0 && iv[2] == 1000000);
  assert_int_equal(st_to_i32(st_find(f, "u8"), iv, &err), 0);
  assert_true(iv[2] == 255);
  assert_int_equal(st_to_i32(st_find(f, "rt.i32"), iv, &err), 0);
  assert_true(iv[0] == 0 && iv[2] == -9);
  /* Floats are not integers. */
  assert_int_equal(st_to_i32(st_find(f, "w.f32"), iv, &err), -1);
  assert_non_null(strstr(err.msg, "tensor 'w.f32': F32 cannot be read as i32"));

  RtTensor r;
  assert_int_equal(st_load(st_find(f, "t"), IR_I32, &r, &err), 0);
  assert_int_equal(r.dtype, IR_I32);
  assert_int_equal(r.rank, 1);
  assert_int_equal(r.shape[0], 3);
  assert_int_equal(((int32_t *)r.data)[2], 1000000);
  rt_tensor_free(&r);
  assert_int_equal(st_load(st_find(f, "w.bf16"), IR_F32, &r, &err), 0);
  assert_true(((float *)r.data)[1] == 3.0f);
  rt_tensor_free(&r);
  assert_int_equal(st_load(st_find(f, "w.bf16"), IR_F16, &r, &err), -1);
  assert_non_null(strstr(err.msg, "f32 or i32"));
  assert_null(r.data);
  st_close(f);
}

/* ---- building raw files -------------------------------------------------- */

/* u64 length + json + data_len bytes of data (value i & 0xff), at buf + skew. */
static uint8_t *raw(const char *json, size_t data_len, size_t skew, size_t *len) {
  size_t h = strlen(json);
  uint8_t *b = calloc(1, skew + 8 + h + data_len + 1);
  uint64_t hl = h;
  memcpy(b + skew, &hl, 8);
  memcpy(b + skew + 8, json, h);
  for (size_t i = 0; i < data_len; i++) b[skew + 8 + h + i] = (uint8_t)i;
  *len = 8 + h + data_len;
  return b;
}

static void test_unaligned_and_ranges(void **state) {
  (void)state;
  /* A U8 then an F32 at an odd offset, and a buffer starting at an odd address. */
  const char *json =
      "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
      "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[1,9]},"
      "\"c\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[9,25]},"
      "\"d\":{\"dtype\":\"U64\",\"shape\":[1],\"data_offsets\":[25,33]},"
      "\"e\":{\"dtype\":\"I16\",\"shape\":[2],\"data_offsets\":[33,37]}}";
  size_t len;
  uint8_t *b = raw(json, 37, 1, &len);
  uint8_t *data = b + 1 + 8 + strlen(json);
  float fv[2] = {1.25f, -3.5f};
  memcpy(data + 1, fv, 8);
  int64_t iv[2] = {(int64_t)1 << 40, -3};
  memcpy(data + 9, iv, 16);
  uint64_t uv = (uint64_t)1 << 63;
  memcpy(data + 25, &uv, 8);
  int16_t sv[2] = {-32768, 123};
  memcpy(data + 33, sv, 4);

  IrErr err = {{0}};
  StFile *f = st_open_memory(b + 1, len, "odd.safetensors", &err);
  assert_non_null(f);
  float out[2];
  assert_int_equal(st_to_f32(st_find(f, "b"), out, &err), 0);
  assert_true(out[0] == 1.25f && out[1] == -3.5f);
  int32_t o32[2];
  assert_int_equal(st_to_i32(st_find(f, "c"), o32, &err), -1);
  assert_non_null(strstr(err.msg, "tensor 'c': element 0 (1099511627776) does not fit in i32"));
  assert_int_equal(st_to_i32(st_find(f, "d"), o32, &err), -1);
  assert_non_null(strstr(err.msg, "tensor 'd': element 0 (9223372036854775808)"));
  assert_int_equal(st_to_i32(st_find(f, "e"), o32, &err), 0);
  assert_true(o32[0] == -32768 && o32[1] == 123);
  assert_int_equal(st_to_f32(st_find(f, "c"), out, &err), 0);
  assert_true(out[0] == 1099511627776.0f && out[1] == -3.0f);
  st_close(f);
  free(b);
}

/* Zero-size tensors may share an offset (ties keep header order); holes are fine. */
static void test_order_and_empty(void **state) {
  (void)state;
  const char *json =
      "{\"z\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[20,36]},"
      "\"y\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]},"
      "\"x\":{\"dtype\":\"F16\",\"shape\":[0,3],\"data_offsets\":[4,4]},"
      "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
  size_t len;
  uint8_t *b = raw(json, 36, 0, &len);
  IrErr err = {{0}};
  StFile *f = st_open_memory(b, len, "order", &err);
  assert_non_null(f);
  assert_string_equal(st_get(f, 0)->name, "w");
  assert_string_equal(st_get(f, 1)->name, "y");
  assert_string_equal(st_get(f, 2)->name, "x");
  assert_string_equal(st_get(f, 3)->name, "z");
  st_close(f);
  free(b);

  /* An empty header object is a valid, empty file. */
  b = raw("{}", 0, 0, &len);
  f = st_open_memory(b, len, "empty", &err);
  assert_non_null(f);
  assert_int_equal(st_count(f), 0);
  st_close(f);
  free(b);
}

/* ---- hostile headers ------------------------------------------------------ */

typedef struct {
  const char *what;
  const char *json;     /* NULL: use raw bytes below */
  size_t data_len;
  int64_t len_delta;    /* added to the file length (negative truncates) */
  int64_t hlen_override; /* != 0: header length field */
  const char *expect;
} Hostile;

#define E(dt, shape, offs) "{\"dtype\":\"" dt "\",\"shape\":" shape ",\"data_offsets\":" offs "}"

static const Hostile hostile[] = {
    {"truncated length", "{}", 0, -5, 0, "file too short (5 bytes)"},
    {"empty file", "{}", 0, -10, 0, "file too short (0 bytes)"},
    {"length past end", "{}", 0, 0, 100, "header length 100 runs past the end of the file (10 bytes)"},
    {"length huge", "{}", 0, 0, (int64_t)1 << 40, "exceeds the 100 MB limit"},
    {"length negative as u64", "{}", 0, 0, -1, "exceeds the 100 MB limit"},
    {"bad JSON", "{\"a\": ", 0, 0, 0, "bad JSON header"},
    {"trailing garbage", "{} x", 0, 0, 0, "bad JSON header"},
    {"not an object", "[1, 2]", 0, 0, 0, "header is not a JSON object"},
    {"duplicate key", "{\"a\":" E("F32", "[1]", "[0,4]") ",\"a\":" E("F32", "[1]", "[4,8]") "}", 8,
     0, 0, "duplicate"},
    {"entry not object", "{\"a\": 3}", 0, 0, 0, "tensor 'a': entry is not an object"},
    {"unknown dtype", "{\"a\":" E("F8", "[1]", "[0,1]") "}", 1, 0, 0, "tensor 'a': unknown dtype 'F8'"},
    {"fp8 dtype", "{\"a\":" E("F8_E4M3", "[1]", "[0,1]") "}", 1, 0, 0, "tensor 'a': dtype 'F8_E4M3' (fp8) is a quantised checkpoint's"},
    {"dtype not string", "{\"a\":{\"dtype\":5,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, 0, 0,
     "dtype is not a string"},
    {"negative shape", "{\"a\":" E("F32", "[2,-1]", "[0,4]") "}", 4, 0, 0,
     "tensor 'a': shape[1] is not a non-negative integer"},
    {"float shape", "{\"a\":" E("F32", "[1.5]", "[0,4]") "}", 4, 0, 0, "shape[0] is not a non-negative integer"},
    {"shape not array", "{\"a\":" E("F32", "4", "[0,16]") "}", 16, 0, 0, "shape is not an array"},
    {"rank 9", "{\"a\":" E("U8", "[1,1,1,1,1,1,1,1,1]", "[0,1]") "}", 1, 0, 0, "rank 9 exceeds 8"},
    {"shape overflow", "{\"a\":" E("F32", "[4294967296,4294967296]", "[0,0]") "}", 0, 0, 0,
     "tensor 'a': shape overflows"},
    {"byte overflow", "{\"a\":" E("F64", "[2305843009213693952]", "[0,0]") "}", 0, 0, 0, "shape overflows"},
    {"overflow hidden by zero", "{\"a\":" E("F32", "[0,4294967296,4294967296]", "[0,0]") "}", 0, 0, 0,
     "shape overflows"},
    {"missing offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, 0, 0, "tensor 'a': missing 'data_offsets'"},
    {"extra key", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4, 0, 0,
     "tensor 'a': unexpected key 'x'"},
    {"offsets past end", "{\"a\":" E("F32", "[2]", "[0,8]") "}", 4, 0, 0,
     "tensor 'a': data_offsets [0, 8] outside the data buffer (4 bytes)"},
    {"offsets reversed", "{\"a\":" E("F32", "[1]", "[8,4]") "}", 8, 0, 0, "data_offsets [8, 4] outside"},
    {"offsets negative", "{\"a\":" E("F32", "[1]", "[-4,0]") "}", 8, 0, 0,
     "data_offsets is not [begin, end] of non-negative integers"},
    {"offsets three", "{\"a\":" E("F32", "[1]", "[0,4,8]") "}", 8, 0, 0, "data_offsets is not [begin, end]"},
    {"offsets size mismatch", "{\"blocks.0.attn.qkv.weight\":" E("F32", "[192,64]", "[0,100]") "}", 100, 0, 0,
     "hostile.safetensors: tensor 'blocks.0.attn.qkv.weight': data_offsets [0, 100] do not match F32 [192, 64] (49152 bytes)"},
    {"overlap", "{\"a\":" E("F32", "[2]", "[0,8]") ",\"b\":" E("F32", "[2]", "[4,12]") "}", 12, 0, 0,
     "tensors 'a' [0, 8] and 'b' [4, 12] overlap"},
    {"overlap identical", "{\"a\":" E("F32", "[1]", "[0,4]") ",\"b\":" E("I32", "[1]", "[0,4]") "}", 4, 0, 0,
     "overlap"},
    {"metadata not object", "{\"__metadata__\": [1]}", 0, 0, 0, "__metadata__ is not an object"},
    {"metadata not string", "{\"__metadata__\": {\"k\": 1}}", 0, 0, 0,
     "__metadata__ value of 'k' is not a string"},
    {"file shrunk", "{\"a\":" E("F32", "[4]", "[0,16]") "}", 16, -1, 0,
     "data_offsets [0, 16] outside the data buffer (15 bytes)"},
};

static void test_hostile(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
    const Hostile *h = &hostile[i];
    size_t len;
    uint8_t *b = raw(h->json, h->data_len, 0, &len);
    if (h->hlen_override) memcpy(b, &h->hlen_override, 8);
    len = (size_t)((int64_t)len + h->len_delta);
    IrErr err = {{0}};
    StFile *f = st_open_memory(b, len, "hostile.safetensors", &err);
    if (f) fail_msg("case '%s' was accepted", h->what);
    if (strncmp(err.msg, "hostile.safetensors: ", 21) || !strstr(err.msg, h->expect))
      fail_msg("case '%s': got \"%s\", want \"%s\"", h->what, err.msg, h->expect);
    free(b);
  }
}

static void test_open_errors(void **state) {
  (void)state;
  IrErr err = {{0}};
  assert_null(st_open(tpath("nonexistent.safetensors"), &err));
  assert_non_null(strstr(err.msg, "nonexistent.safetensors: cannot open: No such file"));
  assert_null(st_open(tmpdir, &err));
  assert_non_null(strstr(err.msg, "not a regular file"));
  FILE *fp = fopen(tpath("empty.safetensors"), "wb");
  fclose(fp);
  assert_null(st_open(tpath("empty.safetensors"), &err));
  assert_non_null(strstr(err.msg, "empty.safetensors: file too short (0 bytes)"));
  /* A file on disk with a bad header: the message names the path. */
  size_t len;
  uint8_t *b = raw("{\"a\":" E("Q4", "[1]", "[0,1]") "}", 1, 0, &len);
  fp = fopen(tpath("bad.safetensors"), "wb");
  fwrite(b, 1, len, fp);
  fclose(fp);
  free(b);
  assert_null(st_open(tpath("bad.safetensors"), &err));
  assert_non_null(strstr(err.msg, "bad.safetensors: tensor 'a': unknown dtype 'Q4'"));
}

static void test_writer_errors(void **state) {
  (void)state;
  IrErr err = {{0}};
  float v[2] = {1, 2};
  int64_t s[1] = {2};

  /* Directory missing: nothing created. */
  StWriter *w = st_writer_new();
  st_writer_add(w, "a", ST_F32, 1, s, v);
  assert_int_equal(st_writer_save(w, tpath("nodir/x.safetensors"), &err), -1);
  assert_non_null(strstr(err.msg, "cannot create a temporary file"));
  st_writer_free(w);

  /* Rename fails (the target is a directory): the temporary must be gone. */
  char *target = tpath("is_a_dir");
  assert_int_equal(mkdir(target, 0755), 0);
  int before = count_entries(tmpdir);
  w = st_writer_new();
  st_writer_add(w, "a", ST_F32, 1, s, v);
  assert_int_equal(st_writer_save(w, target, &err), -1);
  assert_non_null(strstr(err.msg, "cannot write"));
  assert_int_equal(count_entries(tmpdir), before);
  st_writer_free(w);
  rmdir(target);

  /* Misuse is reported by save. */
  w = st_writer_new();
  st_writer_add(w, "a", ST_F32, 1, s, v);
  st_writer_add(w, "a", ST_F32, 1, s, v);
  assert_int_equal(st_writer_save(w, tpath("dup.safetensors"), &err), -1);
  assert_non_null(strstr(err.msg, "tensor 'a' added twice"));
  st_writer_free(w);
  w = st_writer_new();
  int64_t neg[1] = {-2};
  st_writer_add(w, "n", ST_F32, 1, neg, v);
  assert_int_equal(st_writer_save(w, tpath("neg.safetensors"), &err), -1);
  assert_non_null(strstr(err.msg, "bad shape"));
  st_writer_free(w);
  assert_int_equal(access(tpath("dup.safetensors"), F_OK), -1);
  w = st_writer_new();
  st_writer_add(w, "bad\xff", ST_F32, 1, s, v);
  assert_int_equal(st_writer_save(w, tpath("utf8.safetensors"), &err), -1);
  assert_non_null(strstr(err.msg, "must be UTF-8"));
  st_writer_free(w);
  w = st_writer_new();
  st_writer_meta(w, "k", "\xc3");
  assert_int_equal(st_writer_save(w, tpath("utf8.safetensors"), &err), -1);
  st_writer_free(w);
  assert_int_equal(access(tpath("utf8.safetensors"), F_OK), -1);

  /* Saving over an existing file replaces it. */
  w = st_writer_new();
  st_writer_add(w, "first", ST_F32, 1, s, v);
  assert_int_equal(st_writer_save(w, tpath("over.safetensors"), &err), 0);
  st_writer_free(w);
  w = st_writer_new();
  st_writer_add(w, "second", ST_F32, 1, s, v);
  assert_int_equal(st_writer_save(w, tpath("over.safetensors"), &err), 0);
  st_writer_free(w);
  StFile *f = st_open(tpath("over.safetensors"), &err);
  assert_non_null(f);
  assert_int_equal(st_count(f), 1);
  assert_non_null(st_find(f, "second"));
  st_close(f);
}

/* ---- shared reference checkpoints ----------------------------------------- */


static int check_dir(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    size_t l = strlen(e->d_name);
    if (l < 12 || strcmp(e->d_name + l - 12, ".safetensors")) continue;
    char p[2048];
    snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    IrErr err = {{0}};
    StFile *f = st_open(p, &err);
    if (!f) fail_msg("%s", err.msg);
    assert_true(st_count(f) > 0);
    for (int i = 0; i < st_count(f); i++) {
      const StTensor *t = st_get(f, i);
      int64_t numel = 1;
      for (int k = 0; k < t->rank; k++) numel *= t->shape[k];
      float *buf = malloc((size_t)(numel ? numel : 1) * sizeof *buf);
      assert_int_equal(st_to_f32(t, buf, &err), 0);
      for (int64_t k = 0; k < numel; k++)
        if (!isfinite(buf[k])) fail_msg("%s: %s[%lld] is not finite", p, t->name, (long long)k);
      free(buf);
    }
    st_close(f);
    n++;
  }
  closedir(d);
  return n;
}

static void test_shared_reference(void **state) {
  (void)state;
  const char *sh = tu_shared_dir();
  char dir[1200];
  snprintf(dir, sizeof dir, "%s/reference", sh ? sh : "");
  if (!sh || access(dir, R_OK)) {
    TU_SKIP("the shared reference directory not found");
  }
  int n = check_dir(dir);
  assert_true(n >= 2);
  snprintf(dir, sizeof dir, "%s/models", sh);
  if (!access(dir, R_OK)) check_dir(dir);

  /* Known facts about one checkpoint and one case file. */
  IrErr err = {{0}};
  snprintf(dir, sizeof dir, "%s/reference/dit-tiny-p2.weights.safetensors", sh);
  StFile *f = st_open(dir, &err);
  assert_non_null(f);
  assert_int_equal(st_count(f), 32); /* and __metadata__ */
  assert_string_equal(st_metadata(f, "format"), "pt");
  assert_non_null(strstr(st_metadata(f, "config"), "\"hidden_size\": 64"));
  const StTensor *pe = st_find(f, "pos_embed");
  assert_non_null(pe);
  assert_int_equal(pe->dtype, ST_F32);
  assert_int_equal(pe->rank, 3);
  assert_int_equal(pe->shape[1], 64); /* (16/2)^2 tokens */
  assert_int_equal(pe->shape[2], 64); /* hidden 64 */
  const StTensor *qkv = st_find(f, "blocks.1.attn.qkv.weight");
  assert_non_null(qkv);
  assert_int_equal(qkv->shape[0], 192);
  assert_int_equal(qkv->shape[1], 64);
  /* pos_embed row 0: column 0 and row 0, so sin(0) = 0 and cos(0) = 1 halves. */
  float *v = malloc(64 * 64 * sizeof *v);
  assert_int_equal(st_to_f32(pe, v, &err), 0);
  assert_true(v[0] == 0.0f && v[16] == 1.0f && v[32] == 0.0f && v[48] == 1.0f);
  free(v);
  st_close(f);

  snprintf(dir, sizeof dir, "%s/reference/dit-tiny-p4-eps.weights.safetensors", sh);
  f = st_open(dir, &err);
  assert_non_null(f);
  assert_int_equal(st_find(f, "x_embedder.proj.weight")->dtype, ST_F16);
  st_close(f);

  snprintf(dir, sizeof dir, "%s/reference/dit-tiny-p2.case.safetensors", sh);
  f = st_open(dir, &err);
  assert_non_null(f);
  const StTensor *t = st_find(f, "t");
  assert_non_null(t);
  assert_int_equal(t->dtype, ST_I64);
  int32_t tv[2];
  assert_int_equal(st_to_i32(t, tv, &err), 0);
  assert_true(tv[0] >= 0 && tv[0] < 1000 && tv[1] >= 0 && tv[1] < 1000);
  st_close(f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_roundtrip),
      cmocka_unit_test(test_unaligned_and_ranges),
      cmocka_unit_test(test_order_and_empty),
      cmocka_unit_test(test_hostile),
      cmocka_unit_test(test_open_errors),
      cmocka_unit_test(test_writer_errors),
      cmocka_unit_test(test_shared_reference),
  };
  return tu_run_group(tests, setup, teardown);
}
