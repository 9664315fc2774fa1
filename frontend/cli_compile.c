/*
 * cli_compile.c - `ditc compile` and `ditc cache`: NVRTC through the kernel
 * cache.
 *
 * compile builds every requested entry once per distinct tuning row among the
 * architectures (those whose rows give the same launch geometry share one
 * plan), compiles each plan for the architectures it serves through the
 * cache, and writes plans, CUBINs and (with --weights) the weights into one
 * .ditpack; --report adds the plans' statistics (cli_report.c).  cache build
 * does the same without a pack; ls, verify and clear look after the entries.
 * run, sample and bench on cuda compile their plan here too (cli_compile_plan).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "codegen/emu.h"
#include "frontend/cli.h"
#include "ir/fileio.h"

/* ---- compiling kernels: NVRTC through the kernel cache ------------------------- */

static void cache_warn(void *user, const char *msg) {
  (void)user;
  cli_warn(msg);
}

int cli_compiler_open(Compiler *c, int need_nvrtc) {
  IrErr err;
  memset(c, 0, sizeof *c);
  if (!(c->cache = cg_cache_open(NULL, &err))) return cli_fail("%s", err.msg);
  cg_cache_set_warn(c->cache, cache_warn, NULL);
  if (!need_nvrtc) return 0;
  if (!(c->nv = cg_nvrtc_open(NULL, &err))) {
    cg_cache_close(c->cache);
    return cli_fail("%s", err.msg);
  }
  const char *home = getenv("CUDA_HOME");
  snprintf(c->inc, sizeof c->inc, "%s/include", home && *home ? home : "/usr/local/cuda");
  if (access(c->inc, R_OK) == 0) {
    memmove(c->inc + 2, c->inc, strlen(c->inc) + 1);
    memcpy(c->inc, "-I", 2);
  } else {
    c->inc[0] = 0;  /* NVRTC's built-in headers then */
  }
  return 0;
}

void cli_compiler_close(Compiler *c) {
  cg_nvrtc_close(c->nv);
  cg_cache_close(c->cache);
}

/* Drop ptxas' "Compile time = 4.2 ms" lines, so that the same compile gives
 * the same pack byte for byte. */
static void strip_timing(char *log) {
  char *out = log;
  for (char *line = log; *line;) {
    char *end = strchr(line, '\n');
    size_t len = end ? (size_t)(end - line) + 1 : strlen(line);
    if (!memmem(line, len, "Compile time =", 14)) {
      memmove(out, line, len);
      out += len;
    }
    line += len;
  }
  *out = 0;
}

/* One plan's CUBIN (cli.h).  ptxas' report is cached next to the CUBIN, as an
 * entry of its own keyed like the CUBIN with "/ptxas-log" added to the
 * codegen version, so a cache hit can still report registers and spills.
 * The CUBIN is taken from the cache only together with its report: when the
 * report's entry is missing or corrupt (removed, "will rebuild"), both are
 * compiled again, so the pack is the one a clean compile writes. */
int cli_compile_plan(Compiler *c, const CgPlan *p, const char *arch, unsigned char **cubin, size_t *size,
                        char **log) {
  IrErr err;
  *log = NULL;
  if (cg_nvrtc_check_arch(c->nv, arch, &err)) return cli_fail("%s", err.msg);
  const char *prelude = emu_cuda_prelude_text();
  size_t n = strlen(prelude) + strlen(p->source) + 64;
  char *src = xmalloc(n), name[96];
  snprintf(src, n, "%s\n#line 1 \"ditc_%s.cu\"\n%s", prelude, p->entry, p->source);
  snprintf(name, sizeof name, "ditc_%s.cu", p->entry);
  const char *opts[1] = {c->inc};
  CgCacheRequest rq = {.source = src, .name = name, .arch = arch, .options = opts, .n_options = c->inc[0] ? 1 : 0,
                       .compiler_version = cg_nvrtc_version_string(c->nv), .codegen_version = CG_CODEGEN_VERSION};
  CgCacheRequest lrq = rq;
  lrq.codegen_version = CG_CODEGEN_VERSION "/ptxas-log";
  CgCompiled rep = {0};
  CgNvrtcCacheCtx ctx = {c->nv, &rep};
  CgCacheKey lkey;
  unsigned char *d = NULL;
  size_t dn = 0;
  int hit = 0, rc = 1;
  if (cg_cache_key(&lrq, &lkey, &err)) {
    cli_fail("%s", err.msg);
    goto out;
  }
  int have_log = cg_cache_load(c->cache, arch, &lkey, &d, &dn, &err);
  if (have_log < 0) cache_warn(NULL, err.msg);
  if (have_log == 1 ? cg_cache_get_or_compile(c->cache, &rq, cg_nvrtc_cache_compile, &ctx, cubin, size, &hit, &err)
                    : cg_cache_compile(c->cache, &rq, cg_nvrtc_cache_compile, &ctx, cubin, size, &err)) {
    cli_fail("%s", rep.diag ? rep.diag : err.msg);
    goto out;
  }
  hit ? c->cached++ : c->compiled++;
  if (hit) {
    *log = strndup((const char *)d, dn);
  } else { /* compiled now: its own report, cached for next time */
    *log = xstrdup(rep.log ? rep.log : "");
    strip_timing(*log);
    if (cg_cache_store(c->cache, arch, &lkey, *log, strlen(*log), &err)) cache_warn(NULL, err.msg);
  }
  rc = 0;
out:
  free(d);
  cg_compiled_free(&rep);
  free(src);
  return rc;
}



/* ---- ditc compile / ditc cache ---------------------------------------------------- */

/* "sm_80,sm_90" -> *n checked names, pointers into a copy in *buf that the
 * caller frees.  Returns 0, or 2 after a usage message (*buf freed). */
static int check_archs(char *buf, const char **archs, int max, int *n) {
  *n = 0;
  for (char *save = NULL, *a = strtok_r(buf, ",", &save); a; a = strtok_r(NULL, ",", &save)) {
    CgArch ca;
    IrErr err;
    if (cg_arch_parse(a, &ca, &err)) return cli_usage("--arch: %s", err.msg);
    if (*n == max) return cli_usage("--arch: at most %d architectures", max);
    for (int i = 0; i < *n; i++)
      if (!strcmp(archs[i], a)) return cli_usage("--arch names %s twice", a);
    archs[(*n)++] = a;
  }
  if (!*n) return cli_usage("--arch needs at least one architecture, e.g. sm_90");
  return 0;
}

static int parse_archs(const char *list, char **buf, const char **archs, int max, int *n) {
  *buf = xstrdup(list);
  if (!check_archs(*buf, archs, max, n)) return 0;
  free(*buf);
  *buf = NULL;
  return 2;
}

/* Does q keep its weights where p does, so that one blob serves both?  A
 * tuning row changes kernels and launches, not where the weights live; this
 * checks it rather than assumes it. */
static int same_weights(const CgPlan *p, const CgPlan *q) {
  if (p->n_weights != q->n_weights || p->weights_bytes != q->weights_bytes) return 0;
  for (int i = 0; i < p->n_weights; i++) {
    const CgWeight *a = &p->weights[i], *b = &q->weights[i];
    if (a->offset != b->offset || a->dtype != b->dtype || a->rank != b->rank || a->param_id != b->param_id ||
        a->n_in != b->n_in || memcmp(a->shape, b->shape, (size_t)a->rank * sizeof *a->shape))
      return 0;
  }
  return 1;
}

/* Plan p's weights blob from --weights, kept in *blobs until the pack is written. */
static const void *fill_blob(const Opts *o, IrGraph *bind, const CgPlan *p, void ***blobs, int *n_blobs) {
  Weights wt;
  IrErr err;
  if (weights_open(bind, o->weights, &wt, &err)) {
    cli_fail("%s", err.msg);
    return NULL;
  }
  void *b = xmalloc((size_t)p->weights_bytes + 1);
  *blobs = xrealloc(*blobs, (size_t)(*n_blobs + 1) * sizeof **blobs);
  (*blobs)[(*n_blobs)++] = b;
  int bad = cg_plan_fill_weights(p, weights_values(&wt), b, &err);
  weights_free(&wt);
  if (bad) cli_fail("%s", err.msg);
  return bad ? NULL : b;
}

/* Build every requested entry, one plan per distinct tuning row among the
 * architectures (those whose rows give the same geometry share it), and
 * compile each plan for the architectures it serves; with w (compile) also
 * add plans, weights and CUBINs to the pack and the report to rep. */
static int compile_entries(const Opts *o, Compiler *c, const char **archs, int n_archs, CgPackWriter *w,
                           FioOut *pack_out, FioOut *src, json_t *rep) {
  const char *one[] = {o->entry};
  const char **entries = one;
  int n_entries = 1;
  void **blobs = NULL;
  int n_blobs = 0, rc = 1;
  DITC_ASSERT(n_archs >= 1 && n_archs <= 32);
  FeModel names = {0}; /* "all": every entry of the model, in file order */
  if (!o->entry || !strcmp(o->entry, "all")) {
    if (cli_build(o, NULL, &names)) return 1;
    entries = names.entries;
    n_entries = names.n_entries;
  }
  /* --step-cache: each entry also as step caching's full and cached entries (ENTRY.cache_full,
   * ENTRY.cache_step); the cached one binds the weights as the entry does (it lacks the blocks') */
  static const char *const roles[] = {NULL, "full", "cached"};
  for (int er = 0; er < n_entries * 3; er++) {
    int e = er / 3;
    const char *role = roles[er % 3];
    if (role && !o->step_cache) continue;
    FeModel m, bm = {0};
    IrErr err;
    if (cli_build_role(o, entries[e], role, &m)) goto out;
    if (role && !strcmp(role, "cached") && w && o->weights && cli_build(o, entries[e], &bm)) {
      fe_model_free(&m);
      goto out;
    }
    IrGraph *bind = bm.graph ? bm.graph : m.graph;
    if (w && er == 0) {
      FeSetting sets[CLI_MAX_SETTINGS];
      if (fe_pack_record(w, &m, sets, cli_settings(o, sets), m.passes, &err)) {
        cli_fail("%s", err.msg);
        fe_model_free(&m);
        goto out;
      }
    }
    CgPlan *plans[32] = {0};
    const void *blob[32] = {0};
    json_t *pj[32] = {0};
    int which[32], first[32], idx[32] = {0}, n_plans = 0, bad = 0;
    for (int a = 0; a < n_archs && !bad; a++) {
      which[a] = -1;
      for (int k = 0; k < n_plans && which[a] < 0; k++)
        if (cg_tuning_same(archs[first[k]], archs[a])) which[a] = k;
      if (which[a] >= 0) continue;
      int k = which[a] = n_plans++;
      first[k] = a;
      CgOptions co = {.batch = o->batch ? o->batch : 1, .model = m.config ? m.config : m.model, .arch = archs[a]};
      co.precision = cli_precision(o);
      if (cg_plan_build(m.graph, &co, &plans[k], &err)) {
        cli_fail("%s: %s", entries[e], err.msg);
        bad = 1;
        break;
      }
      if (w && o->weights) {
        blob[k] = k && same_weights(plans[0], plans[k]) ? blob[0] : fill_blob(o, bind, plans[k], &blobs, &n_blobs);
        if (!blob[k]) {
          bad = 1;
          break;
        }
      }
      if (w) idx[k] = cg_pack_writer_add_plan(w, plans[k], m.graph, blob[k]);
      if (rep) pj[k] = cli_plan_report(rep, plans[k], m.graph, m.graph->name);
      if (src && fio_out_printf(src, &err, "/* ==== plan %s, tuning row %s ==== */\n%s\n", m.graph->name,
                                plans[k]->tuning, plans[k]->source)) {
        cli_fail("%s", err.msg);
        bad = 1;
      }
    }
    for (int a = 0; a < n_archs && !bad; a++) {
      const CgPlan *p = plans[which[a]];
      unsigned char *cubin;
      size_t size;
      char *log;
      if (cli_compile_plan(c, p, archs[a], &cubin, &size, &log)) {
        bad = 1;
        break;
      }
      if (w) cg_pack_writer_add_cubin(w, idx[which[a]], archs[a], cubin, size, log);
      if (rep) cli_arch_report(pj[which[a]], p, archs[a], size, log);
      free(cubin);
      free(log);
    }
    for (int k = 0; k < n_plans; k++) cg_plan_free(plans[k]);
    fe_model_free(&m);
    if (bm.graph) fe_model_free(&bm);
    if (bad) goto out;
  }
  if (w && pack_out) {
    IrErr err;
    if (cg_pack_writer_write(w, pack_out, &err)) {
      cli_fail("%s", err.msg);
      goto out;
    }
  }
  rc = 0;
out:
  for (int i = 0; i < n_blobs; i++) free(blobs[i]);
  free(blobs);
  fe_model_free(&names);
  return rc;
}

int cmd_compile(const Opts *o) {
  if (!o->output) return cli_usage("compile needs -o OUT.ditpack");
  if (!o->arch) return cli_usage("compile needs --arch, e.g. --arch sm_80,sm_90");
  if (o->json && !o->report) return cli_usage("--json goes with --report");
  char *archbuf;
  const char *archs[32];
  int n_archs;
  if (parse_archs(o->arch, &archbuf, archs, 32, &n_archs)) return 2;
  Compiler c;
  if (cli_compiler_open(&c, 1)) {
    free(archbuf);
    return 1;
  }
  FILE *info = o->json ? stderr : stdout;
  /* -o and --source: one transaction, staged before any work, committed
   * together when everything succeeded; the same file twice is refused */
  IrErr err;
  FioTxn *txn = fio_txn_new();
  FioOut *pack_out = fio_txn_add(txn, o->output, &err);
  FioOut *src_out = pack_out && o->source ? fio_txn_add(txn, o->source, &err) : NULL;
  if (!pack_out || (o->source && !src_out)) {
    cli_fail("%s", err.msg);
    fio_txn_abort(txn);
    free(archbuf);
    cli_compiler_close(&c);
    return 1;
  }
  CgPackWriter *w = cg_pack_writer_new();
  cg_pack_writer_meta(w, "producer", "ditc " DITC_VERSION);
  cg_pack_writer_meta(w, "codegen_version", CG_CODEGEN_VERSION);
  cg_pack_writer_meta(w, "compiler", cg_nvrtc_version_string(c.nv));
  cg_pack_writer_meta(w, "spec", o->model);
  json_t *rep = o->report ? json_pack("{s:s, s:s, s:I, s:[]}", "model", o->model, "precision",
                                      o->precision ? o->precision : "f32", "batch",
                                      (json_int_t)(o->batch ? o->batch : 1), "plans")
                          : NULL;
  int rc = compile_entries(o, &c, archs, n_archs, w, pack_out, src_out, rep);
  if (!rc && fio_txn_commit(txn, &err)) rc = cli_fail("%s", err.msg);
  else if (rc) fio_txn_abort(txn);
  if (!rc) {
    fprintf(info, "nvrtc: %d compiled, %d from cache\n", c.compiled, c.cached);
    fprintf(info, "wrote %s (%s, %s, %s%s)\n", o->output, o->precision ? o->precision : "f32", o->arch,
            o->weights ? "weights " : "no weights", o->weights ? o->weights : "");
  }
  if (!rc && rep) {
    json_t *first = json_array_get(json_object_get(rep, "plans"), 0);
    const char *keys[] = {"kernels_per_forward", "kernels_per_block", "activation_bytes_moved", "peak_activation_bytes",
                          "unplanned_activation_bytes"};
    for (int i = 0; i < 5; i++) json_object_set(rep, keys[i], json_object_get(first, keys[i]));
    json_object_set_new(rep, "nvrtc", json_pack("{s:s, s:i, s:i}", "version", cg_nvrtc_version_string(c.nv),
                                               "compiled", c.compiled, "from_cache", c.cached));
    if (o->json) {
      char *text = json_dumps(rep, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
      printf("%s\n", text);
      free(text);
    } else {
      cli_print_report(rep, stdout);
    }
  }
  json_decref(rep);
  cg_pack_writer_free(w);
  cli_compiler_close(&c);
  free(archbuf);
  return rc;
}

int cmd_cache(const Opts *o) {
  Compiler c;
  IrErr err;
  if (!strcmp(o->sub, "build")) {
    if (!o->arch) return cli_usage("cache build needs --arch, e.g. --arch sm_90");
    char *archbuf;
    const char *archs[32];
    int n_archs;
    if (parse_archs(o->arch, &archbuf, archs, 32, &n_archs)) return 2;
    if (cli_compiler_open(&c, 1)) {
      free(archbuf);
      return 1;
    }
    int rc = compile_entries(o, &c, archs, n_archs, NULL, NULL, NULL, NULL);
    if (!rc) printf("nvrtc: %d compiled, %d from cache (%s)\n", c.compiled, c.cached, cg_cache_dir(c.cache));
    cli_compiler_close(&c);
    free(archbuf);
    return rc;
  }
  if (o->arch) {
    CgArch ca;
    if (cg_arch_parse(o->arch, &ca, &err)) return cli_usage("--arch: %s", err.msg);
  }
  if (cli_compiler_open(&c, 0)) return 1;
  int rc = 0;
  if (!strcmp(o->sub, "ls")) {
    CgCacheEntry *e;
    int n;
    if (cg_cache_list(c.cache, o->arch, &e, &n, &err)) {
      rc = cli_fail("%s", err.msg);
    } else {
      int64_t total = 0;
      for (int i = 0; i < n; i++) {
        char when[32];
        time_t t = (time_t)e[i].mtime;
        strftime(when, sizeof when, "%Y-%m-%d %H:%M", localtime(&t));
        printf("%-8s %s %10lld  %s\n", e[i].arch, e[i].key, (long long)e[i].size, when);
        total += e[i].size;
      }
      printf("%d entr%s, %lld bytes in %s\n", n, n == 1 ? "y" : "ies", (long long)total, cg_cache_dir(c.cache));
      free(e);
    }
  } else if (!strcmp(o->sub, "verify")) {
    int ok = 0, bad = 0;
    if (cg_cache_verify(c.cache, o->arch, 1, &ok, &bad, &err))
      rc = cli_fail("%s", err.msg);
    else
      printf("%d entr%s ok, %d bad (removed)\n", ok, ok == 1 ? "y" : "ies", bad);
    if (!rc && bad) rc = 1;
  } else {
    int n = 0;
    if (cg_cache_clear(c.cache, o->arch, &n, &err))
      rc = cli_fail("%s", err.msg);
    else
      printf("removed %d entr%s from %s\n", n, n == 1 ? "y" : "ies", cg_cache_dir(c.cache));
  }
  cli_compiler_close(&c);
  return rc;
}

