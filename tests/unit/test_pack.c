/*
 * test_pack.c - the .ditpack file: round trips (memory and disk), blob
 * sharing, CUBIN selection, weights from the pack or bound by name, and
 * rejection of every kind of damage: truncation, a flipped byte in every
 * section and in the padding, a bad magic or version, and a table of
 * contents or plan that lies (with the hashes recomputed, so only the
 * structural checks can catch it).  Then a pack made from a model as
 * `ditc compile` makes it, whose plan is built again from its model record
 * (frontend/pack_plan.h) and refused after each edit an attacker could make
 * and re-hash: the source (a constructor, an #include), a step, a weight's
 * name or shape, a model parameter, the model text, the pipeline.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "codegen/pack.h"
#include "frontend/pack_plan.h"
#include "runtime/backend.h"
#include "tiny_plan.h"
#include "testutil.h"

static uint64_t rd64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
  return v;
}

static void sha(const void *d, size_t n, unsigned char *out) {
  unsigned len;
  EVP_Digest(d, n, out, &len, EVP_sha256(), NULL);
}

/* A writer with a model record (every pack has one; what it says is only
 * read when a plan is built again, which these hand-made plans are not). */
static CgPackWriter *writer(void) {
  CgPackWriter *w = cg_pack_writer_new();
  static const char text[] = "model tiny() {}\n";
  CgPackParam set = {"d", "4"};
  CgPackModel m = {.file = "tiny.dit", .text = text, .text_len = sizeof text - 1, .config = "Tiny/2",
                   .sets = &set, .n_sets = 1, .passes = "none"};
  IrErr err;
  assert_int_equal(cg_pack_writer_model(w, &m, &err), 0);
  return w;
}

/* Two plans (forward, forward_with_cfg) sharing one blob; CUBINs for sm_80
 * and sm_90 (plan 0) and sm_90 (plan 1). */
static void make_pack(unsigned char **buf, size_t *len, int with_weights) {
  float blob[20];
  tiny_blob(blob);
  CgPackWriter *w = writer();
  cg_pack_writer_meta(w, "producer", "test");
  cg_pack_writer_meta(w, "codegen_version", CG_CODEGEN_VERSION);
  cg_pack_writer_meta(w, "compiler", "nvrtc 13.0");
  cg_pack_writer_meta(w, "model", "tiny");
  cg_pack_writer_meta(w, "config", "Tiny/2");
  cg_pack_writer_meta(w, "spec", "tiny.dit:Tiny/2");
  cg_pack_writer_param(w, "in_channels", "4");
  cg_pack_writer_param(w, "learn_sigma", "true");
  cg_pack_writer_param(w, "mlp_ratio", "4.0");
  CgPlan *p = tiny_plan();
  p->tuning = "sm_80"; /* the row of its CUBINs' architectures */
  assert_int_equal(cg_pack_writer_add_plan(w, p, NULL, with_weights ? blob : NULL), 0);
  p->entry = "forward_with_cfg";
  assert_int_equal(cg_pack_writer_add_plan(w, p, NULL, with_weights ? blob : NULL), 1);
  tiny_plan_free(p);
  cg_pack_writer_add_cubin(w, 0, "sm_80", "CUBIN80", 7, "ptxas info    : Used 10 registers");
  cg_pack_writer_add_cubin(w, 0, "sm_90", "CUBIN90!", 8, NULL);
  cg_pack_writer_add_cubin(w, 1, "sm_90", "CUBIN90?", 8, "");
  IrErr err;
  assert_int_equal(cg_pack_writer_bytes(w, buf, len, &err), 0);
  cg_pack_writer_free(w);
}

static void check_contents(const CgPack *pk) {
  assert_string_equal(pk->model, "tiny");
  assert_string_equal(pk->config, "Tiny/2");
  assert_string_equal(pk->compiler, "nvrtc 13.0");
  assert_string_equal(pk->codegen_version, CG_CODEGEN_VERSION);
  assert_int_equal(pk->n_params, 3);
  assert_int_equal(cg_pack_param_int(pk, "in_channels", -1), 4);
  assert_int_equal(cg_pack_param_int(pk, "learn_sigma", -1), 1);
  assert_int_equal(cg_pack_param_int(pk, "mlp_ratio", -1), -1);
  assert_string_equal(cg_pack_param(pk, "mlp_ratio"), "4.0");
  assert_null(cg_pack_param(pk, "depth"));
  assert_int_equal(pk->n_plans, 2);
  assert_int_equal(pk->n_blobs, 1);    /* identical blobs are stored once */
  const CgPackPlan *pp = cg_pack_find_plan(pk, "forward");
  assert_non_null(pp);
  assert_non_null(cg_pack_find_plan(pk, "forward_with_cfg"));
  assert_null(cg_pack_find_plan(pk, "backward"));
  const CgPlan *p = pp->plan, *want = tiny_plan();
  assert_int_equal(pp->blob, 0);
  assert_int_equal(pk->blobs[0].size, 80);
  float blob[20];
  tiny_blob(blob);
  assert_memory_equal(pk->blobs[0].data, blob, 80);
  /* the source is not handed out, only its hash */
  assert_null(p->source);
  unsigned char want_sha[32];
  sha(TINY_SOURCE, strlen(TINY_SOURCE), want_sha);
  assert_memory_equal(pp->source_sha256, want_sha, 32);
  assert_string_equal(pk->record.file, "tiny.dit");
  assert_string_equal(pk->record.text, "model tiny() {}\n");
  assert_int_equal(pk->record.n_sets, 1);
  assert_string_equal(pk->record.sets[0].value, "4");
  assert_string_equal(pk->record.passes, "none");
  assert_int_equal(p->precision, IR_F32);
  assert_int_equal(p->batch, 2);
  assert_int_equal(p->arena_bytes, 192);
  assert_int_equal(p->weights_bytes, 80);
  assert_int_equal(p->n_kernels, 1);
  assert_string_equal(p->kernels[0].name, "k_add_c");
  assert_string_equal(p->kernels[0].nodes, want->kernels[0].nodes);
  assert_int_equal(p->n_steps, 2);
  const CgGemm *g = &p->steps[0].gemm, *wg = &want->steps[0].gemm;
  assert_int_equal(p->steps[0].kind, CG_STEP_GEMM);
  assert_string_equal(p->steps[0].what, "%2 linear fc");
  assert_int_equal(p->steps[0].node, 2);
  assert_true(g->a.space == wg->a.space && g->a.offset == wg->a.offset);
  assert_true(g->b.space == CG_SPACE_WEIGHTS && g->d.offset == 64);
  assert_true(g->bias.space == wg->bias.space && g->bias.offset == wg->bias.offset);
  assert_true(g->m == 2 && g->n == 3 && g->k == 4 && g->trans_b == 1 && !g->trans_a && g->ldd == 3);
  assert_int_equal(g->epilogue, CG_EPI_BIAS);
  assert_true(g->alpha == 1.0f);
  assert_true(g->dtype == IR_F32 && g->d_dtype == IR_F32);
  assert_int_equal(p->steps[1].kind, CG_STEP_KERNEL);
  assert_int_equal(p->steps[1].block[0], 32);
  assert_int_equal(p->steps[1].grid[2], 1);
  assert_int_equal(p->n_weights, 3);
  assert_string_equal(p->weights[1].name, "fc.bias");
  assert_int_equal(p->weights[1].offset, 48);
  assert_int_equal(p->weights[2].param_id, -1);
  assert_memory_equal(p->weights[2].const_data, TINY_C, sizeof TINY_C);
  assert_null(pp->defaults[0]);
  assert_int_equal(p->n_inputs, 1);
  assert_string_equal(p->inputs[0].name, "x");
  assert_int_equal(p->inputs[0].shape[1], 4);
  assert_int_equal(p->outputs[0].offset, 128);
  assert_int_equal(pp->n_cubins, 2);
  assert_string_equal(pp->cubins[0].arch, "sm_80");
  assert_memory_equal(pp->cubins[0].image, "CUBIN80", 7);
  assert_string_equal(pp->cubins[0].ptxas_log, "ptxas info    : Used 10 registers");
  assert_string_equal(pp->cubins[1].ptxas_log, "");
  tiny_plan_free((CgPlan *)want);
}

static void test_round_trip_memory(void **state) {
  (void)state;
  unsigned char *buf;
  size_t len;
  make_pack(&buf, &len, 1);
  assert_int_equal(len % 64, 0);
  IrErr err;
  CgPack *pk = cg_pack_open_memory(buf, len, "mem", 0, &err);
  if (!pk) fail_msg("%s", err.msg);
  check_contents(pk);
  cg_pack_close(pk);
  free(buf);
}

static void test_round_trip_file(void **state) {
  (void)state;
  char dir[] = "/tmp/test_pack.XXXXXX", path[64];
  assert_non_null(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/a.ditpack", dir);
  float blob[20];
  tiny_blob(blob);
  CgPackWriter *w = writer();
  cg_pack_writer_meta(w, "model", "tiny");
  CgPlan *p = tiny_plan();
  cg_pack_writer_add_plan(w, p, NULL, blob);
  tiny_plan_free(p);
  IrErr err;
  assert_int_equal(cg_pack_writer_save(w, path, &err), 0);
  cg_pack_writer_free(w);
  CgPack *pk = cg_pack_open(path, &err);
  if (!pk) fail_msg("%s", err.msg);
  assert_int_equal(pk->n_plans, 1);
  assert_string_equal(pk->config, ""); /* meta not given: empty */
  assert_int_equal(((uintptr_t)pk->blobs[0].data) % 64, 0);
  assert_memory_equal(pk->blobs[0].data, blob, 80);
  cg_pack_close(pk);
  /* only the pack is left in the directory: no temporary file */
  char cmd[128];
  snprintf(cmd, sizeof cmd, "test $(ls -A %s | wc -l) = 1", dir);
  assert_int_equal(system(cmd), 0);
  /* a directory that does not exist: a clear error */
  snprintf(path, sizeof path, "%s/no/such/dir/a.ditpack", dir);
  w = cg_pack_writer_new();
  assert_int_equal(cg_pack_writer_save(w, path, &err), -1);
  assert_non_null(strstr(err.msg, "temporary file"));
  cg_pack_writer_free(w);
  assert_null(cg_pack_open(path, &err));
  assert_non_null(strstr(err.msg, "cannot open"));
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
}

static void expect_reject(const unsigned char *buf, size_t len, const char *needle) {
  IrErr err = {{0}};
  CgPack *pk = cg_pack_open_memory(buf, len, "bad.ditpack", 0, &err);
  if (pk) fail_msg("a damaged pack was accepted (expected '%s')", needle);
  if (strncmp(err.msg, "bad.ditpack: ", 13)) fail_msg("message does not name the file: %s", err.msg);
  if (needle && !strstr(err.msg, needle)) fail_msg("expected '%s' in: %s", needle, err.msg);
}

static void test_truncated(void **state) {
  (void)state;
  unsigned char *buf;
  size_t len;
  make_pack(&buf, &len, 1);
  expect_reject(buf, 0, "truncated");
  expect_reject(buf, 63, "truncated");
  for (size_t n = 64; n < len; n += 13) expect_reject(buf, n, "truncated");
  expect_reject(buf, len - 1, "truncated");
  /* trailing bytes too */
  unsigned char *big = calloc(1, len + 64);
  memcpy(big, buf, len);
  expect_reject(big, len + 64, "trailing");
  free(big);
  free(buf);
}

static void test_flipped_bytes(void **state) {
  (void)state;
  unsigned char *buf;
  size_t len;
  make_pack(&buf, &len, 1);
  uint32_t n = buf[12] | buf[13] << 8;
  assert_true(n >= 10);
  /* one flipped byte at the start, middle and end of every section */
  for (uint32_t i = 0; i < n; i++) {
    const unsigned char *e = buf + 64 + 64 * i;
    uint64_t off = rd64(e + 8), size = rd64(e + 16);
    if (!size) continue;
    uint64_t at[3] = {off, off + size / 2, off + size - 1};
    for (int k = 0; k < 3; k++) {
      char needle[32];
      snprintf(needle, sizeof needle, "section %u (", i);
      buf[at[k]] ^= 0x40;
      expect_reject(buf, len, needle);
      expect_reject(buf, len, "corrupt");
      buf[at[k]] ^= 0x40;
    }
  }
  /* the table of contents, its hash, the header */
  buf[64 + 64 * 3 + 9] ^= 1;
  expect_reject(buf, len, "table of contents is corrupt");
  buf[64 + 64 * 3 + 9] ^= 1;
  buf[40] ^= 1;
  expect_reject(buf, len, "table of contents is corrupt");
  buf[40] ^= 1;
  buf[0] = 'X';
  expect_reject(buf, len, "bad magic");
  buf[0] = 'D';
  buf[8] = 2;
  expect_reject(buf, len, "version 2");
  buf[8] = 3; /* before plans per architecture: recompile */
  expect_reject(buf, len, "pack format version 3; this ditc reads version 9 (recompile the pack");
  buf[8] = 4; /* before the model record: recompile */
  expect_reject(buf, len, "version 4; this ditc reads version 9 (recompile the pack with `ditc compile`: version 5 "
                          "records the model");
  buf[8] = 5; /* before launch parameters: recompile */
  expect_reject(buf, len, "version 5; this ditc reads version 9 (recompile the pack with `ditc compile`: version 6 "
                          "passes kernels");
  buf[8] = 6; /* before step caching's entries: recompile */
  expect_reject(buf, len, "version 6; this ditc reads version 9 (recompile the pack with `ditc compile`: version 7 "
                          "may hold step caching's entries");
  buf[8] = 7; /* before int8 GEMM steps: recompile */
  expect_reject(buf, len, "version 7; this ditc reads version 9 (recompile the pack with `ditc compile`: version 8 "
                          "may hold int8 GEMM steps");
  buf[8] = 8; /* before FP8 GEMM steps: recompile */
  expect_reject(buf, len, "version 8; this ditc reads version 9 (recompile the pack with `ditc compile`: version 9 "
                          "may hold FP8 GEMM steps");
  buf[8] = 10;
  expect_reject(buf, len, "version 10");
  buf[8] = 9;
  buf[24] = 65;
  expect_reject(buf, len, "table of contents offset");
  buf[24] = 64;
  /* padding after the manifest (it is never a multiple of 64 here) */
  uint64_t end = rd64(buf + 64 + 8) + rd64(buf + 64 + 16);
  assert_true(end % 64 != 0);
  buf[end] = 1;
  expect_reject(buf, len, "padding");
  buf[end] = 0;
  IrErr err;
  CgPack *pk = cg_pack_open_memory(buf, len, "ok", 0, &err);
  assert_non_null(pk); /* every flip was undone */
  cg_pack_close(pk);
  free(buf);
}

/* Rewrite section i's hash and the table's hash after an edit. */
static void rehash(unsigned char *buf, uint32_t i) {
  unsigned char *e = buf + 64 + 64 * i;
  sha(buf + rd64(e + 8), rd64(e + 16), e + 32);
  uint32_t n = buf[12] | buf[13] << 8;
  sha(buf + 64, 64 * n, buf + 32);
}

static uint32_t find_sec(const unsigned char *buf, uint32_t kind, uint32_t ref) {
  uint32_t n = buf[12] | buf[13] << 8;
  for (uint32_t i = 0; i < n; i++)
    if (buf[64 + 64 * i] == kind && buf[64 + 64 * i + 4] == ref) return i;
  fail_msg("no section of kind %u", kind);
  return 0;
}

/* Replace `from` by `to` (same length) in section i, rehash, expect a rejection. */
static void lie_in_section(const unsigned char *orig, size_t len, uint32_t i, const char *from, const char *to,
                           const char *needle) {
  unsigned char *buf = malloc(len);
  memcpy(buf, orig, len);
  unsigned char *e = buf + 64 + 64 * i;
  char *s = (char *)buf + rd64(e + 8);
  size_t size = rd64(e + 16);
  char *hit = memmem(s, size, from, strlen(from));
  if (!hit) fail_msg("'%s' not found in section %u", from, i);
  assert_int_equal(strlen(from), strlen(to));
  memcpy(hit, to, strlen(to));
  rehash(buf, i);
  expect_reject(buf, len, needle);
  free(buf);
}

static void test_lying_toc(void **state) {
  (void)state;
  unsigned char *buf;
  size_t len;
  make_pack(&buf, &len, 1);
  unsigned char *b = malloc(len);
  /* a section that claims more bytes than it has, with every hash redone */
  memcpy(b, buf, len);
  b[64 + 64 * 1 + 16] += 64;
  rehash(b, 1);
  expect_reject(b, len, "does not follow");
  /* an offset that points back into the table */
  memcpy(b, buf, len);
  b[64 + 64 * 2 + 8] = 64;
  b[64 + 64 * 2 + 9] = 0;
  sha(b + 64, 64 * (b[12] | b[13] << 8), b + 32);
  expect_reject(b, len, "does not follow");
  /* an unknown kind, a plan that does not exist, a bad arch field */
  memcpy(b, buf, len);
  b[64 + 64 * 2] = 99;
  sha(b + 64, 64 * (b[12] | b[13] << 8), b + 32);
  expect_reject(b, len, "unknown kind 99");
  memcpy(b, buf, len);
  b[64 + 64 * find_sec(buf, CG_PACK_SEC_PLAN, 0) + 4] = 7;
  sha(b + 64, 64 * (b[12] | b[13] << 8), b + 32);
  expect_reject(b, len, "plan 7");
  /* the model record: once, with ref 0 */
  memcpy(b, buf, len);
  b[64 + 64 * find_sec(buf, CG_PACK_SEC_MODEL, 0) + 4] = 1;
  sha(b + 64, 64 * (b[12] | b[13] << 8), b + 32);
  expect_reject(b, len, "a second model record, or one with ref 1");
  memcpy(b, buf, len);
  b[64 + 64 * find_sec(buf, CG_PACK_SEC_MODEL_TEXT, 0)] = CG_PACK_SEC_MODEL;
  sha(b + 64, 64 * (b[12] | b[13] << 8), b + 32);
  expect_reject(b, len, "a second model record");
  memcpy(b, buf, len);
  uint32_t cb = find_sec(buf, CG_PACK_SEC_CUBIN, 0);
  b[64 + 64 * cb + 24] = 'x';
  sha(b + 64, 64 * (b[12] | b[13] << 8), b + 32);
  expect_reject(b, len, "architecture");
  /* two sections claiming the same role */
  memcpy(b, buf, len);
  uint32_t src1 = find_sec(buf, CG_PACK_SEC_SOURCE, 1);
  b[64 + 64 * src1 + 4] = 0;
  sha(b + 64, 64 * (b[12] | b[13] << 8), b + 32);
  expect_reject(b, len, "two source sections");
  /* fewer sections than the manifest promises: cut the count */
  memcpy(b, buf, len);
  b[12] -= 1;
  sha(b + 64, 64 * (b[12] | b[13] << 8), b + 32);
  expect_reject(b, len, NULL);
  free(b);

  /* plans whose JSON lies, with hashes redone */
  uint32_t pl = find_sec(buf, CG_PACK_SEC_PLAN, 0), man = find_sec(buf, CG_PACK_SEC_MANIFEST, 0);
  lie_in_section(buf, len, pl, "\"kernel\":0", "\"kernel\":5", "field 'kernel' = 5");
  lie_in_section(buf, len, pl, "\"n\":3", "\"n\":7", "GEMM operand B ends at byte");
  lie_in_section(buf, len, pl, "\"ldd\":3", "\"ldd\":1", "row stride 1");
  /* a GEMM writes its operands' dtype or f32, nothing else */
  lie_in_section(buf, len, pl, "\"d_dtype\":\"f32\"", "\"d_dtype\":\"f16\"", "GEMM with f32 operands writes f16");
  lie_in_section(buf, len, pl, "\"d_dtype\":\"f32\"", "\"d_dtype\":\"i32\"", "field 'd_dtype'");
  lie_in_section(buf, len, pl, "\"d_dtype\":\"f32\"", "\"x_dtype\":\"f32\"", "'d_dtype' is missing");
  lie_in_section(buf, len, pl, "\"offset\":128", "\"offset\":178", "lies outside the 192-byte arena");
  lie_in_section(buf, len, pl, "\"offset\":48", "\"offset\":78", "outside the 80-byte weights blob");
  lie_in_section(buf, len, pl, "\"block\":[32,", "\"block\":[0 ,", "field 'block'");
  lie_in_section(buf, len, pl, "\"name\":\"k_add_c\"", "\"name\":\"k_add;c\"", "not a kernel name");
  lie_in_section(buf, len, pl, "\"weights_blob\":0", "\"weights_blob\":3", "weights_blob");
  lie_in_section(buf, len, pl, "\"precision\":\"f32\"", "\"precision\":\"i32\"", "dtype 'i32'");
  lie_in_section(buf, len, pl, "{\"entry\"", "[\"entry\"", "bad JSON");
  lie_in_section(buf, len, pl, "\"data\":[0,3]", "\"data\":[9,3]", "constants");
  lie_in_section(buf, len, man, "\"plans\":2", "\"plans\":1", "plan 1 of 1");
  lie_in_section(buf, len, man, "\"ditpack\"", "\"ditpak!\"", "not 'ditpack'");
  lie_in_section(buf, len, find_sec(buf, CG_PACK_SEC_PLAN, 1), "\"forward_with_cfg\"", "\"forward\",\"x\":\"cf\"",
                 "plans 0 and 1 of entry 'forward' both have a CUBIN for sm_90/sm_90");
  lie_in_section(buf, len, pl, "\"tuning\":\"sm_80\"", "\"tuning\":\"sm-80\"", "not a tuning row name");
  lie_in_section(buf, len, pl, "\"tuning\":\"sm_80\"", "\"tunin_\":\"sm_80\"", "field 'tuning'");
  /* a CUBIN is launched with its plan's geometry: its architecture must get the plan's row */
  lie_in_section(buf, len, pl, "\"tuning\":\"sm_80\"", "\"tuning\":\"sm_86\"",
                 "built with tuning row sm_86, but has a CUBIN for sm_80, whose row sm_80 launches differently");
  /* the model record */
  uint32_t mr = find_sec(buf, CG_PACK_SEC_MODEL, 0), mt = find_sec(buf, CG_PACK_SEC_MODEL_TEXT, 0);
  lie_in_section(buf, len, mr, "[\"d\",\"4\"]", "[\"d\", 4 ]", "setting 0 is not [name, value]");
  lie_in_section(buf, len, mr, "\"passes\":\"none\"", "\"passes\":  \"\"  ", "field 'passes' is empty");
  lie_in_section(buf, len, mr, "\"file\"", "\"fil_\"", "model record: field 'file'");
  unsigned char *nul = malloc(len);
  memcpy(nul, buf, len);
  nul[rd64(nul + 64 + 64 * mt + 8) + 3] = 0;
  rehash(nul, mt);
  expect_reject(nul, len, "the model text holds a NUL byte");
  free(nul);
  free(buf);
}

/* Plans whose fields are each in range but inconsistent together, written
 * with valid hashes (as a hand-edited, re-hashed pack would be): the one
 * validation (cg_plan_check) refuses them on reading, as it does them
 * directly. */
static void test_inconsistent_plans(void **state) {
  (void)state;
  enum { DUP_INPUT, IN_OUT_OVERLAP, NO_INPUTS, NO_STEPS, WEIGHT_OVERLAP, TUNING, GRID, PARAM_NAME, SMEM, N_CASES };
  static const char *const needle[N_CASES] = {
      "inputs 0 and 1 are both named 'x'", "output 'out' overlaps input 'x'", "the plan has no inputs",
      "the plan has no steps", "weights 'fc.weight' and 'fc.bias' overlap in the blob",
      "tuning row 'sm_5' does not exist", "threads in all", "two parameters are named 'fc.weight'",
      "shared memory, over the"};
  for (int c = 0; c < N_CASES; c++) {
    CgPlan *p = tiny_plan();
    p->tuning = "sm_80";
    switch (c) {
    case DUP_INPUT: {
      CgIo *io = arena_alloc(&p->arena, 2 * sizeof *io);
      io[0] = p->inputs[0];
      io[1] = p->inputs[0];
      io[1].shape[0] = 1;
      io[1].offset = 96;
      p->inputs = io;
      p->n_inputs = 2;
      break;
    }
    case IN_OUT_OVERLAP: p->outputs[0].offset = 16; break;
    case NO_INPUTS: p->n_inputs = 0; break;
    case NO_STEPS: p->n_steps = 0; break;
    case WEIGHT_OVERLAP: p->weights[1].offset = 40; break;
    case TUNING: p->tuning = "sm_5"; break;
    case GRID: p->steps[1].grid[0] = 2147483647u; break;
    case PARAM_NAME: p->weights[1].name = "fc.weight"; break;
    case SMEM: p->steps[1].shared_bytes = 200 * 1024; break;
    }
    IrErr err = {{0}};
    assert_int_equal(cg_plan_check(p, &err), -1);
    if (!strstr(err.msg, needle[c])) fail_msg("case %d: expected '%s' in: %s", c, needle[c], err.msg);
    CgPackWriter *w = writer();
    assert_int_equal(cg_pack_writer_add_plan(w, p, NULL, NULL), 0);
    unsigned char *buf;
    size_t len;
    assert_int_equal(cg_pack_writer_bytes(w, &buf, &len, &err), 0);
    cg_pack_writer_free(w);
    tiny_plan_free(p);
    expect_reject(buf, len, needle[c]);
    free(buf);
  }
  /* and the unchanged plan passes */
  CgPlan *p = tiny_plan();
  p->tuning = "sm_80";
  IrErr err;
  if (cg_plan_check(p, &err)) fail_msg("%s", err.msg);
  tiny_plan_free(p);
}

/* One entry, two plans (two tuning rows), each serving two architectures:
 * (entry, arch) picks the plan; the reader refuses an ambiguous pack. */
static void make_arch_pack(unsigned char **buf, size_t *len, const char *second_arch, int second_cubins) {
  CgPackWriter *w = writer();
  CgPlan *p = tiny_plan();
  p->tuning = "sm_80";
  assert_int_equal(cg_pack_writer_add_plan(w, p, NULL, NULL), 0);
  p->tuning = "sm_86";
  assert_int_equal(cg_pack_writer_add_plan(w, p, NULL, NULL), 1);
  p->entry = "forward_with_cfg";
  assert_int_equal(cg_pack_writer_add_plan(w, p, NULL, NULL), 2);
  tiny_plan_free(p);
  cg_pack_writer_add_cubin(w, 0, "sm_80", "A80", 3, NULL);
  cg_pack_writer_add_cubin(w, 0, "sm_90a", "A90", 3, NULL);
  if (second_cubins) cg_pack_writer_add_cubin(w, 1, "sm_86", "B86", 3, NULL);
  if (second_cubins > 1) cg_pack_writer_add_cubin(w, 1, second_arch, "B89", 3, NULL);
  cg_pack_writer_add_cubin(w, 2, "sm_86", "C86", 3, NULL);
  IrErr err;
  assert_int_equal(cg_pack_writer_bytes(w, buf, len, &err), 0);
  cg_pack_writer_free(w);
}

static void test_plans_per_arch(void **state) {
  (void)state;
  unsigned char *buf;
  size_t len;
  IrErr err;
  make_arch_pack(&buf, &len, "sm_89", 2);
  CgPack *pk = cg_pack_open_memory(buf, len, "arch.ditpack", 0, &err);
  if (!pk) fail_msg("%s", err.msg);
  assert_int_equal(pk->n_plans, 3);
  const CgPackPlan *a = &pk->plans[0], *b = &pk->plans[1];
  assert_string_equal(a->plan->tuning, "sm_80");
  assert_string_equal(b->plan->tuning, "sm_86");
  assert_ptr_equal(cg_pack_find_plan(pk, "forward"), a); /* the first */
  assert_ptr_equal(cg_pack_find_plan_arch(pk, "forward", "sm_80", &err), a);
  assert_ptr_equal(cg_pack_find_plan_arch(pk, "forward", "sm_90", &err), a); /* sm_90a serves an sm_90 */
  assert_ptr_equal(cg_pack_find_plan_arch(pk, "forward", "sm_86", &err), b);
  assert_ptr_equal(cg_pack_find_plan_arch(pk, "forward", "sm_89", &err), b);
  assert_ptr_equal(cg_pack_find_plan_arch(pk, "forward_with_cfg", "sm_86", &err), &pk->plans[2]);
  assert_null(cg_pack_find_plan_arch(pk, "forward", "sm_75", &err));
  assert_non_null(strstr(err.msg, "no plan for 'forward' on sm_75: it was compiled for sm_80, sm_90a, sm_86, sm_89"));
  assert_non_null(strstr(err.msg, "--arch sm_75"));
  assert_null(cg_pack_find_plan_arch(pk, "forward_with_cfg", "sm_80", &err));
  assert_non_null(strstr(err.msg, "compiled for sm_86"));
  assert_null(cg_pack_find_plan_arch(pk, "backward", "sm_80", &err));
  assert_non_null(strstr(err.msg, "no plan for 'backward'"));
  cg_pack_close(pk);
  free(buf);
  /* the same SM in two plans of one entry: which would run? */
  make_arch_pack(&buf, &len, "sm_90", 2);
  expect_reject(buf, len, "plans 0 and 1 of entry 'forward' both have a CUBIN for sm_90a/sm_90");
  free(buf);
  /* a second plan no architecture selects */
  make_arch_pack(&buf, &len, NULL, 0);
  expect_reject(buf, len, "plans 0 and 1 are both for entry 'forward' and one has no CUBIN");
  free(buf);
}

static void test_pick_cubin(void **state) {
  (void)state;
  CgPlan *p = tiny_plan();
  CgPackCubin c[4] = {{.arch = "sm_80"}, {.arch = "sm_86"}, {.arch = "sm_90a"}, {.arch = "sm_89"}};
  CgPackPlan pp = {.plan = p, .cubins = c, .n_cubins = 4};
  IrErr err;
  assert_ptr_equal(cg_pack_pick_cubin(&pp, 8, 0, &err), &c[0]);
  assert_ptr_equal(cg_pack_pick_cubin(&pp, 8, 6, &err), &c[1]);
  assert_ptr_equal(cg_pack_pick_cubin(&pp, 8, 7, &err), &c[1]); /* highest <= of the same major */
  assert_ptr_equal(cg_pack_pick_cubin(&pp, 8, 9, &err), &c[3]);
  assert_ptr_equal(cg_pack_pick_cubin(&pp, 9, 0, &err), &c[2]); /* exact 'a' */
  assert_null(cg_pack_pick_cubin(&pp, 10, 0, &err));             /* no sm_10x */
  assert_non_null(strstr(err.msg, "sm_100"));
  assert_non_null(strstr(err.msg, "sm_80, sm_86, sm_90a, sm_89"));
  assert_null(cg_pack_pick_cubin(&pp, 7, 5, &err));
  pp.n_cubins = 0;
  assert_null(cg_pack_pick_cubin(&pp, 9, 0, &err));
  assert_non_null(strstr(err.msg, "none"));
  tiny_plan_free(p);
}

static void test_weights(void **state) {
  (void)state;
  unsigned char *buf;
  size_t len;
  IrErr err;
  /* from the pack: borrowed */
  make_pack(&buf, &len, 1);
  CgPack *pk = cg_pack_open_memory(buf, len, "w", 0, &err);
  assert_non_null(pk);
  const void *blob;
  void *owned;
  assert_int_equal(rt_pack_weights(pk, &pk->plans[0], NULL, &blob, &owned, &err), 0);
  assert_null(owned);
  assert_ptr_equal(blob, pk->blobs[0].data);
  cg_pack_close(pk);
  free(buf);

  /* no weights in the pack: an error without a spec; bound by name with one,
   * and a PARAM default (kept from the graph) used where random fills the rest */
  IrGraph *g = ir_graph_new("g");
  IrNode *wn = ir_param(g, "fc.weight", IR_F32, ir_shape_make(2, (IrDim[]){3, 4}), (IrLoc){0});
  IrNode *bn = ir_param(g, "fc.bias", IR_F32, ir_shape_make(1, (IrDim[]){3}), (IrLoc){0});
  static float bias_default[3] = {7, 8, 9};
  bn->data = bias_default;
  CgPlan *p = tiny_plan();
  p->weights[0].param_id = wn->id;
  p->weights[1].param_id = bn->id;
  CgPackWriter *w = writer();
  cg_pack_writer_add_plan(w, p, g, NULL);
  assert_int_equal(cg_pack_writer_bytes(w, &buf, &len, &err), 0);
  cg_pack_writer_free(w);
  tiny_plan_free(p);
  ir_graph_free(g);
  pk = cg_pack_open_memory(buf, len, "nw", 0, &err);
  if (!pk) fail_msg("%s", err.msg);
  assert_int_equal(pk->n_blobs, 0);
  assert_int_equal(pk->plans[0].blob, -1);
  assert_non_null(pk->plans[0].defaults[1]);
  assert_int_equal(rt_pack_weights(pk, &pk->plans[0], NULL, &blob, &owned, &err), -1);
  assert_non_null(strstr(err.msg, "holds no weights"));
  assert_int_equal(rt_pack_weights(pk, &pk->plans[0], "random:3", &blob, &owned, &err), 0);
  const float *f = blob;
  assert_ptr_equal(blob, owned);
  for (int i = 0; i < 12; i++) assert_true(f[i] != 0.0f && f[i] > -1 && f[i] < 1);
  assert_true(f[12] == 7 && f[13] == 8 && f[14] == 9);
  assert_true(f[16] == TINY_C[0] && f[18] == TINY_C[2]);
  free(owned);
  assert_int_equal(rt_pack_weights(pk, &pk->plans[0], "/no/such/file.safetensors", &blob, &owned, &err), -1);
  assert_non_null(strstr(err.msg, "file.safetensors"));
  cg_pack_close(pk);
  free(buf);
}

static const float COMPUTED_A[8] = {1, 2, 3, 4, 5, 6, 7, 8}, COMPUTED_B[4] = {-1, -2, -3, -4};

/* A weight computed from parameters (codegen's weight-only nodes): carried
 * as op + inputs, filled from the parameters bound by name, checked on
 * reading. */
static void make_computed_pack(unsigned char **buf, size_t *len) {
  IrGraph *g = ir_graph_new("forward");
  IrNode *x = ir_input(g, "x", IR_F32, ir_shape_make(2, (IrDim[]){IR_BATCH, 4}), (IrLoc){0});
  IrNode *a = ir_param(g, "a", IR_F32, ir_shape_make(2, (IrDim[]){2, 4}), (IrLoc){0});
  IrNode *b = ir_param(g, "b", IR_F32, ir_shape_make(2, (IrDim[]){1, 4}), (IrLoc){0});
  a->data = (void *)COMPUTED_A;
  b->data = (void *)COMPUTED_B;
  IrNode *ab[2] = {a, b};
  ir_graph_add_output(g, ir_linear(g, x, ir_concat(g, 2, ab, 0), NULL), "out");
  CgOptions o = {.precision = IR_F32, .batch = 1};
  CgPlan *p;
  IrErr err;
  if (cg_plan_build(g, &o, &p, &err)) fail_msg("%s", err.msg);
  assert_int_equal(p->n_weights, 3);
  assert_true(p->weights[0].offset == -1 && p->weights[1].offset == -1 && p->weights[2].offset == 0);
  assert_true(p->weights[2].n_in == 2 && p->weights[2].op == IR_CONCAT);
  CgPackWriter *w = writer();
  cg_pack_writer_add_plan(w, p, g, NULL);
  assert_int_equal(cg_pack_writer_bytes(w, buf, len, &err), 0);
  cg_pack_writer_free(w);
  cg_plan_free(p);
  ir_graph_free(g);
}

static void test_computed_weights(void **state) {
  (void)state;
  const float *av = COMPUTED_A, *bv = COMPUTED_B;
  unsigned char *buf;
  size_t len;
  IrErr err;
  make_computed_pack(&buf, &len);
  CgPack *pk = cg_pack_open_memory(buf, len, "cw", 0, &err);
  if (!pk) fail_msg("%s", err.msg);
  const CgWeight *cw = &pk->plans[0].plan->weights[2];
  assert_true(cw->n_in == 2 && cw->in[0] == 0 && cw->in[1] == 1 && cw->op == IR_CONCAT && cw->attr.axis == 0);
  const void *blob;
  void *owned;
  assert_int_equal(rt_pack_weights(pk, &pk->plans[0], "random:1", &blob, &owned, &err), 0);
  const float *f = blob; /* the defaults, stacked */
  for (int i = 0; i < 8; i++) assert_true(f[i] == av[i]);
  for (int i = 0; i < 4; i++) assert_true(f[8 + i] == bv[i]);
  free(owned);
  cg_pack_close(pk);
  uint32_t pl = find_sec(buf, CG_PACK_SEC_PLAN, 0);
  lie_in_section(buf, len, pl, "\"op\":\"concat\"", "\"op\":\"matmul\"", "cannot be computed into the blob");
  lie_in_section(buf, len, pl, "\"in\":[0,1]", "\"in\":[0,0]", "its concat does not fit its inputs");
  lie_in_section(buf, len, pl, "\"in\":[0,1]", "\"in\":[0,2]", "input 1 is not an earlier weight");
  lie_in_section(buf, len, pl, "\"offset\":-1", "\"offset\":-2", "field 'offset'");
  free(buf);
}

/* ---- a pack's plan, built again from its model record ------------------------- */

static const char MODEL[] =
    "fn dense(x, i: int, o: int) { return linear(x, param weight[o, i], param bias[o]) }\n"
    "model tiny(d: int = 8, gain: float = 0.5) {\n"
    "  entry forward(x: f32[B, 4, d]) { return x + relu(dense@fc(x, d, d)) * gain }\n"
    "}\n"
    "config \"tiny/1\" = tiny(d = 4)\n";

/* What `ditc compile` writes for MODEL's tiny/1 with --set gain=0.25, the
 * default pipeline, batch 2, tuning row sm_80, no CUBINs. */
static void make_model_pack(unsigned char **buf, size_t *len) {
  FeSetting set = {"gain", "0.25"};
  FeModel m;
  IrErr err;
  assert_int_equal(fe_build_source("tiny.dit", MODEL, strlen(MODEL), "tiny/1", &set, 1, "forward", stderr, &m), 0);
  PassPipeline pl;
  assert_int_equal(pass_pipeline_parse("default", &pl, &err), 0);
  PassOptions po = {.verify = 1};
  if (pass_pipeline_run(m.graph, &pl, &po, &err)) fail_msg("%s", err.msg);
  CgOptions co = {.precision = IR_F32, .batch = 2, .model = m.config, .arch = "sm_80"};
  CgPlan *p;
  if (cg_plan_build(m.graph, &co, &p, &err)) fail_msg("%s", err.msg);
  CgPackWriter *w = cg_pack_writer_new();
  cg_pack_writer_meta(w, "codegen_version", CG_CODEGEN_VERSION);
  assert_int_equal(fe_pack_record(w, &m, &set, 1, &pl, &err), 0);
  assert_int_equal(cg_pack_writer_add_plan(w, p, m.graph, NULL), 0);
  assert_int_equal(cg_pack_writer_bytes(w, buf, len, &err), 0);
  cg_pack_writer_free(w);
  cg_plan_free(p);
  fe_model_free(&m);
}

/* Open buf and build its plan again: 0, or -1 with the reason in err. */
static int rebuild(const unsigned char *buf, size_t len, IrErr *err, char *source_copy, size_t n) {
  CgPack *pk = cg_pack_open_memory(buf, len, "m.ditpack", 0, err);
  if (!pk) fail_msg("the edited pack should pass the reader's checks: %s", err->msg);
  FePackPlan fp;
  FILE *quiet = fopen("/dev/null", "w");
  int rc = fe_pack_plan(pk, &pk->plans[0], quiet, &fp, err);
  fclose(quiet);
  if (!rc) {
    assert_ptr_equal(fp.view.plan, fp.plan);
    assert_int_equal(fp.view.blob, -1);
    assert_int_equal(cg_plan_check(fp.plan, err), 0);
    if (source_copy) snprintf(source_copy, n, "%s", fp.plan->source);
  }
  fe_pack_plan_free(&fp);
  cg_pack_close(pk);
  return rc;
}

/* Replace `from` by `to` (same length) in the section of kind/ref, re-hash
 * it and the table as an attacker would, and expect the rebuilt plan to be
 * refused with `needle`. */
static void edit_refused(const unsigned char *orig, size_t len, uint32_t kind, const char *from, const char *to,
                         const char *needle) {
  unsigned char *buf = malloc(len);
  memcpy(buf, orig, len);
  uint32_t i = find_sec(buf, kind, 0);
  unsigned char *e = buf + 64 + 64 * i;
  char *hit = memmem(buf + rd64(e + 8), rd64(e + 16), from, strlen(from));
  if (!hit) fail_msg("'%s' not found in section %u", from, i);
  assert_int_equal(strlen(from), strlen(to));
  memcpy(hit, to, strlen(to));
  rehash(buf, i);
  IrErr err = {{0}};
  if (!rebuild(buf, len, &err, NULL, 0)) fail_msg("an edited pack was accepted (expected '%s')", needle);
  if (!strstr(err.msg, needle)) fail_msg("expected '%s' in: %s", needle, err.msg);
  free(buf);
}

static void test_rebuilt_plan(void **state) {
  (void)state;
  unsigned char *buf;
  size_t len;
  make_model_pack(&buf, &len);
  IrErr err;
  char source[256];
  if (rebuild(buf, len, &err, source, sizeof source)) fail_msg("%s", err.msg);
  assert_non_null(strstr(source, "ditc generated kernels"));

  /* the source, with a constructor that would run a command and an
   * #include that would show a file in the compiler's error: refused by its
   * hash before anything compiles it */
  char dir[] = "/tmp/test_pack_src.XXXXXX", secret[80], pwned[80], attack[400];
  assert_non_null(mkdtemp(dir));
  snprintf(secret, sizeof secret, "%s/secret", dir);
  snprintf(pwned, sizeof pwned, "%s/pwned", dir);
  FILE *f = fopen(secret, "w");
  fputs("SECRET-7f3a\n", f);
  fclose(f);
  snprintf(attack, sizeof attack,
           "int system(const char *); __attribute__((constructor)) static void pwn(void) { system(\"touch %s\"); }\n"
           "#include \"%s\"\n",
           pwned, secret);
  unsigned char *b = malloc(len);
  memcpy(b, buf, len);
  uint32_t si = find_sec(b, CG_PACK_SEC_SOURCE, 0);
  assert_true(rd64(b + 64 + 64 * si + 16) > strlen(attack));
  memcpy(b + rd64(b + 64 + 64 * si + 8), attack, strlen(attack));
  rehash(b, si);
  assert_int_equal(rebuild(b, len, &err, NULL, 0), -1);
  assert_non_null(strstr(err.msg, "m.ditpack: plan 0 (forward, tuning row sm_80): its kernel source is not the one its "
                                  "model gives"));
  assert_null(strstr(err.msg, "SECRET-7f3a"));
  assert_int_not_equal(access(pwned, F_OK), 0);
  free(b);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);

  /* edits an attacker could make and re-hash: the plan (a launch, a weight's
   * name and shape, an input), the manifest (a parameter that is not a number,
   * another configuration or code generator), the model record (its text,
   * settings and pipeline) */
  static const struct {
    uint32_t kind;
    const char *from, *to, *needle;
  } edits[] = {
      {CG_PACK_SEC_PLAN, "\"smem\":0,", "\"smem\":4,",
       ".smem' is 4 in the pack, 0 in the plan built from the model (step "},
      /* a launch parameter moving a kernel's operand elsewhere in the arena */
      {CG_PACK_SEC_PLAN, "\"params\":[0", "\"params\":[8",
       ".params[0]' is 8 in the pack, 0 in the plan built from the model (step "},
      {CG_PACK_SEC_PLAN, "\"name\":\"fc.weight\"", "\"name\":\"fc.weighs\"",
       ".name' is \"fc.weighs\" in the pack, \"fc.weight\" in the plan built from the model"},
      {CG_PACK_SEC_PLAN, "\"shape\":[4,4]", "\"shape\":[2,8]",
       ".shape[0]' is 2 in the pack, 4 in the plan built from the model"},
      {CG_PACK_SEC_PLAN, "\"name\":\"x\"", "\"name\":\"y\"",
       "'inputs[0].name' is \"y\" in the pack, \"x\" in the plan built from the model"},
      {CG_PACK_SEC_MANIFEST, "\"gain\":\"0.25\"", "\"gain\":\"abcd\"",
       "the manifest says model parameter gain = 'abcd'; its model record gives 0.25"},
      {CG_PACK_SEC_MANIFEST, "\"config\":\"tiny/1\"", "\"config\":\"tiny/2\"",
       "the manifest names model 'tiny', configuration 'tiny/2'; its model record gives 'tiny', 'tiny/1'"},
      {CG_PACK_SEC_MANIFEST, CG_CODEGEN_VERSION "\"", "ditc-codegen-0\"", "made by code generator 'ditc-codegen-0'"},
      {CG_PACK_SEC_MODEL_TEXT, "model tiny", "modal tiny", "does not build: 1 error"},
      {CG_PACK_SEC_MODEL_TEXT, "tiny(d = 4)", "tiny(d = 6)",
       "the manifest says model parameter d = '4'; its model record gives 6"},
      {CG_PACK_SEC_MODEL, "[\"gain\",\"0.25\"]", "[\"gain\",\"0.75\"]",
       "the manifest says model parameter gain = '0.25'; its model record gives 0.75"},
      {CG_PACK_SEC_MODEL, "[\"gain\",\"0.25\"]", "[\"gain\",\"0.2x\"]", "does not build"},
      {CG_PACK_SEC_MODEL, ",fuse,", ",dce ,", "its kernel source is not the one its model gives"},
      {CG_PACK_SEC_MODEL, ",fuse,", ",fusf,", "its pass pipeline"},
  };
  for (size_t k = 0; k < sizeof edits / sizeof *edits; k++)
    edit_refused(buf, len, edits[k].kind, edits[k].from, edits[k].to, edits[k].needle);
  /* the same JSON with its fields in another order describes the same plan: it runs (as built again) */
  b = malloc(len);
  memcpy(b, buf, len);
  uint32_t pi = find_sec(b, CG_PACK_SEC_PLAN, 0);
  static const char from[] = "{\"entry\":\"forward\",\"tuning\":\"sm_80\"",
                    to[] = "{\"tuning\":\"sm_80\",\"entry\":\"forward\"";
  assert_int_equal(sizeof from, sizeof to);
  assert_memory_equal(b + rd64(b + 64 + 64 * pi + 8), from, sizeof from - 1);
  memcpy(b + rd64(b + 64 + 64 * pi + 8), to, sizeof to - 1);
  rehash(b, pi);
  if (rebuild(b, len, &err, NULL, 0)) fail_msg("%s", err.msg);
  free(b);
  free(buf);
}

/* ---- the fuzz target's corpus ---------------------------------------------------- */

/* tests/fuzz/corpus_pack holds packs these tests make: valid_* must open
 * (the current format), broken_* must not.  DITC_UPDATE_CORPUS=1 writes
 * them anew, after a format change.  (valid_model's plan also builds again
 * from its record while the code generator is unchanged; that is the fuzz
 * target's way into the model record, not asserted here.) */
static void test_fuzz_corpus(void **state) {
  (void)state;
  enum { TWO_PLANS, NO_WEIGHTS, COMPUTED, PER_ARCH, MODEL_PACK, N_VALID };
  static const char *const valid[N_VALID] = {"valid_two_plans", "valid_no_weights", "valid_computed_weight",
                                             "valid_plans_per_arch", "valid_model"};
  static const char *const broken[] = {"broken_magic", "broken_toc", "broken_truncated", "broken_version",
                                       "broken_version_3", "broken_version_4"};
  int update = getenv("DITC_UPDATE_CORPUS") && !strcmp(getenv("DITC_UPDATE_CORPUS"), "1");
  char path[600];
  for (int k = 0; k < N_VALID + 6; k++) {
    const char *name = k < N_VALID ? valid[k] : broken[k - N_VALID];
    snprintf(path, sizeof path, "%s/tests/fuzz/corpus_pack/%s", DITC_SOURCE_DIR, name);
    unsigned char *buf = NULL;
    size_t len = 0;
    IrErr err;
    if (update) {
      switch (k) {
      case TWO_PLANS: make_pack(&buf, &len, 1); break;
      case NO_WEIGHTS: make_pack(&buf, &len, 0); break;
      case COMPUTED: make_computed_pack(&buf, &len); break;
      case PER_ARCH: make_arch_pack(&buf, &len, "sm_89", 2); break;
      case MODEL_PACK: make_model_pack(&buf, &len); break;
      default:
        make_pack(&buf, &len, 1);
        if (!strcmp(name, "broken_magic")) buf[3] ^= 1;
        else if (!strcmp(name, "broken_toc")) buf[64 + 64 * 2 + 17] ^= 1;
        else if (!strcmp(name, "broken_truncated")) len -= 100;
        else if (!strcmp(name, "broken_version")) buf[8] = CG_PACK_VERSION + 1;
        else buf[8] = (unsigned char)(name[strlen(name) - 1] - '0');
      }
      FILE *f = fopen(path, "wb");
      assert_non_null(f);
      assert_int_equal(fwrite(buf, 1, len, f), len);
      fclose(f);
      free(buf);
    }
    CgPack *pk = cg_pack_open(path, &err);
    if (k < N_VALID && !pk)
      fail_msg("%s is not a pack of this format (%s): run DITC_UPDATE_CORPUS=1 build/tests/test_pack", path, err.msg);
    if (k >= N_VALID && pk) fail_msg("%s opens", path);
    cg_pack_close(pk);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip_memory), cmocka_unit_test(test_round_trip_file),
      cmocka_unit_test(test_truncated),         cmocka_unit_test(test_flipped_bytes),
      cmocka_unit_test(test_lying_toc),         cmocka_unit_test(test_pick_cubin),
      cmocka_unit_test(test_plans_per_arch),
      cmocka_unit_test(test_weights),           cmocka_unit_test(test_computed_weights),
      cmocka_unit_test(test_inconsistent_plans), cmocka_unit_test(test_rebuilt_plan),
      cmocka_unit_test(test_fuzz_corpus),
  };
  return tu_run_group(tests, NULL, NULL);
}
