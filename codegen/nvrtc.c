/*
 * nvrtc.c - NVRTC through dlopen(): loading, architecture checks, compiling
 * to CUBIN/PTX, readable compile errors and ptxas' resource report.
 *
 * NVRTC's C API is small and stable, so the handful of entry points ditc
 * uses are declared here (from NVIDIA's documentation) instead of including
 * <nvrtc.h>: ditc then builds without the CUDA toolkit too.  Each is called
 * through the handle's table, and every call's status goes through NV_OK,
 * which turns a failure into one message naming the call, this file's line,
 * NVRTC's error string and, for a program, its log with the source lines
 * each error points at.
 */
#include <ctype.h>
#include <dlfcn.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/cubin_source.h"
#include "codegen/nvrtc.h"

#if defined(__SANITIZE_ADDRESS__)
#define DITC_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DITC_LSAN 1
#endif
#endif
#ifdef DITC_LSAN
#include <sanitizer/lsan_interface.h>
#endif

/* LeakSanitizer's stop-the-world tracer crashes at the exit of a process that has NVRTC mapped
 * ("Tracer caught signal 11", google/sanitizers#1353: seen on loaded CI machines in every test
 * that compiles through NVRTC, never reproduced by hand).  Under a sanitizer build the leak check
 * therefore runs once, here, just before NVRTC is first mapped: everything the process leaked
 * until then is reported (and fails the run as the exit check would), and the exit check, which
 * would crash, is off.  Processes that never load NVRTC keep the full check at exit. */
static void leak_check_before_nvrtc(void) {
#ifdef DITC_LSAN
  static int done;
  if (!done) {
    done = 1;
    __lsan_do_leak_check();
  }
#endif
}

/* ---- NVRTC's C API (the subset used) ---------------------------------------- */

typedef int NvResult; /* nvrtcResult: 0 is NVRTC_SUCCESS */
typedef struct NvProgram *NvProgram;
enum { NVRTC_SUCCESS = 0, NVRTC_ERROR_COMPILATION = 6 };

struct CgNvrtc {
  void *lib;
  char *path;
  int major, minor;
  char version[32];
  int *archs;
  int n_archs;
  /* Named as the API names them, so NV_OK's stringified call reads as NVRTC's. */
  const char *(*nvrtcGetErrorString)(NvResult);
  NvResult (*nvrtcVersion)(int *, int *);
  NvResult (*nvrtcGetNumSupportedArchs)(int *);      /* optional (11.2+) */
  NvResult (*nvrtcGetSupportedArchs)(int *);         /* optional (11.2+) */
  NvResult (*nvrtcCreateProgram)(NvProgram *, const char *, const char *, int,
                                 const char *const *, const char *const *);
  NvResult (*nvrtcDestroyProgram)(NvProgram *);
  NvResult (*nvrtcCompileProgram)(NvProgram, int, const char *const *);
  NvResult (*nvrtcGetPTXSize)(NvProgram, size_t *);
  NvResult (*nvrtcGetPTX)(NvProgram, char *);
  NvResult (*nvrtcGetCUBINSize)(NvProgram, size_t *);
  NvResult (*nvrtcGetCUBIN)(NvProgram, char *);
  NvResult (*nvrtcGetProgramLogSize)(NvProgram, size_t *);
  NvResult (*nvrtcGetProgramLog)(NvProgram, char *);
};

/* ---- a growing string ------------------------------------------------------- */

typedef struct {
  char *p;
  size_t len, cap;
} Buf;

static void buf_add(Buf *b, const char *s, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1) cap *= 2;
    b->p = xrealloc(b->p, cap);
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = 0;
}

__attribute__((format(printf, 2, 3))) static void buf_printf(Buf *b, const char *fmt, ...) {
  char small[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n < sizeof small) {
    buf_add(b, small, (size_t)n);
    return;
  }
  char *big = xmalloc((size_t)n + 1);
  va_start(ap, fmt);
  vsnprintf(big, (size_t)n + 1, fmt, ap);
  va_end(ap);
  buf_add(b, big, (size_t)n);
  free(big);
}

/* ---- loading ---------------------------------------------------------------- */

/* Resolve one entry point; required ones failing make the library unusable. */
#define NV_SYM(nv, fn, required)                                        \
  do {                                                                  \
    (nv)->fn = (__typeof__((nv)->fn))dlsym((nv)->lib, #fn);             \
    if (!(nv)->fn && (required)) missing = #fn;                         \
  } while (0)

static int nv_resolve(CgNvrtc *nv, const char **missing_out) {
  const char *missing = NULL;
  NV_SYM(nv, nvrtcGetErrorString, 1);
  NV_SYM(nv, nvrtcVersion, 1);
  NV_SYM(nv, nvrtcGetNumSupportedArchs, 0);
  NV_SYM(nv, nvrtcGetSupportedArchs, 0);
  NV_SYM(nv, nvrtcCreateProgram, 1);
  NV_SYM(nv, nvrtcDestroyProgram, 1);
  NV_SYM(nv, nvrtcCompileProgram, 1);
  NV_SYM(nv, nvrtcGetPTXSize, 1);
  NV_SYM(nv, nvrtcGetPTX, 1);
  NV_SYM(nv, nvrtcGetCUBINSize, 1);
  NV_SYM(nv, nvrtcGetCUBIN, 1);
  NV_SYM(nv, nvrtcGetProgramLogSize, 1);
  NV_SYM(nv, nvrtcGetProgramLog, 1);
  *missing_out = missing;
  return missing ? -1 : 0;
}

static int cmp_int(const void *a, const void *b) {
  int x = *(const int *)a, y = *(const int *)b;
  return (x > y) - (x < y);
}

/* Version and supported architectures, read once so the handle stays const. */
static int nv_query(CgNvrtc *nv, IrErr *err) {
  NvResult r = nv->nvrtcVersion(&nv->major, &nv->minor);
  if (r != NVRTC_SUCCESS)
    return ir_errf(err, "nvrtcVersion failed in %s: %s", nv->path, nv->nvrtcGetErrorString(r));
  snprintf(nv->version, sizeof nv->version, "nvrtc %d.%d", nv->major, nv->minor);
  int n = 0;
  if (nv->nvrtcGetNumSupportedArchs && nv->nvrtcGetSupportedArchs &&
      nv->nvrtcGetNumSupportedArchs(&n) == NVRTC_SUCCESS && n > 0 && n < 1000) {
    nv->archs = xcalloc((size_t)n, sizeof *nv->archs);
    if (nv->nvrtcGetSupportedArchs(nv->archs) == NVRTC_SUCCESS) {
      nv->n_archs = n;
      qsort(nv->archs, (size_t)n, sizeof *nv->archs, cmp_int);
    }
  }
  return 0;
}

CgNvrtc *cg_nvrtc_open(const char *path, IrErr *err) {
  char *cands[8];
  int nc = 0;
  if (!path && getenv("DITC_NVRTC") && *getenv("DITC_NVRTC")) path = getenv("DITC_NVRTC");
  if (path) {
    cands[nc++] = xstrdup(path);
  } else {
    cands[nc++] = xstrdup("libnvrtc.so.13");
    cands[nc++] = xstrdup("libnvrtc.so.12");
    cands[nc++] = xstrdup("libnvrtc.so");
    const char *homes[2] = {getenv("CUDA_HOME"), "/usr/local/cuda"};
    for (int h = 0; h < 2; h++) {
      if (!homes[h] || !*homes[h]) continue;
      if (h == 1 && homes[0] && !strcmp(homes[0], homes[1])) continue;
      size_t n = strlen(homes[h]) + 32;
      cands[nc] = xmalloc(n);
      snprintf(cands[nc++], n, "%s/lib64/libnvrtc.so.13", homes[h]);
      cands[nc] = xmalloc(n);
      snprintf(cands[nc++], n, "%s/lib64/libnvrtc.so", homes[h]);
    }
  }

  CgNvrtc *nv = xcalloc(1, sizeof *nv);
  Buf tried = {0};
  char last[512] = "";
  leak_check_before_nvrtc();
  for (int i = 0; i < nc && !nv->lib; i++) {
    buf_printf(&tried, "%s%s", i ? ", " : "", cands[i]);
    void *lib = dlopen(cands[i], RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      const char *e = dlerror();
      snprintf(last, sizeof last, "%s", e ? e : "unknown loader error");
      continue;
    }
    nv->lib = lib;
    nv->path = xstrdup(cands[i]);
    const char *missing;
    if (nv_resolve(nv, &missing)) {
      /* Not an NVRTC we can use (too old, or some other library): keep looking. */
      snprintf(last, sizeof last, "%s lacks %s", cands[i], missing);
      dlclose(lib);
      nv->lib = NULL;
      free(nv->path);
      nv->path = NULL;
    }
  }
  for (int i = 0; i < nc; i++) free(cands[i]);
  if (!nv->lib) {
    ir_errf(err, "NVRTC not found (looked for %s): %s; install the CUDA toolkit's NVRTC, "
            "or set CUDA_HOME or DITC_NVRTC (the library's path)", tried.p, last);
    free(tried.p);
    free(nv);
    return NULL;
  }
  free(tried.p);
  if (nv_query(nv, err)) {
    cg_nvrtc_close(nv);
    return NULL;
  }
  return nv;
}

void cg_nvrtc_close(CgNvrtc *nv) {
  if (!nv) return;
  /* NVRTC stays mapped: unloading a library with its own C++ runtime buys
   * nothing and orphans what that runtime keeps for the process's lifetime
   * (LeakSanitizer then reports it).  dlopen() counts references, so opening
   * again later reuses the mapping. */
  free(nv->path);
  free(nv->archs);
  free(nv);
}

const char *cg_nvrtc_path(const CgNvrtc *nv) { return nv->path; }

void cg_nvrtc_version(const CgNvrtc *nv, int *major, int *minor) {
  if (major) *major = nv->major;
  if (minor) *minor = nv->minor;
}

const char *cg_nvrtc_version_string(const CgNvrtc *nv) { return nv->version; }

int cg_nvrtc_supported_archs(const CgNvrtc *nv, const int **sm) {
  if (sm) *sm = nv->archs;
  return nv->n_archs;
}

/* ---- architectures ---------------------------------------------------------- */

int cg_arch_parse(const char *s, CgArch *out, IrErr *err) {
  static const char form[] =
      "expected sm_ followed by 2-3 digits and an optional 'a' or 'f' suffix, "
      "e.g. sm_80, sm_90a, sm_100f";
  if (!s || !*s) return ir_errf(err, "no GPU architecture given: %s", form);
  if (!strncmp(s, "compute_", 8))
    return ir_errf(err, "GPU architecture \"%s\" is a virtual (PTX) architecture; name the real "
                   "GPU instead, e.g. sm_%s", s, s + 8);
  if (strncmp(s, "sm_", 3)) return ir_errf(err, "bad GPU architecture \"%s\": %s", s, form);
  const char *p = s + 3;
  int nd = 0, sm = 0;
  while (isdigit((unsigned char)p[nd]) && nd < 4) sm = sm * 10 + (p[nd++] - '0');
  char suffix = 0;
  if (p[nd] == 'a' || p[nd] == 'f') suffix = p[nd];
  if (nd < 2 || nd > 3 || p[0] == '0' || p[nd + (suffix != 0)] != 0)
    return ir_errf(err, "bad GPU architecture \"%s\": %s", s, form);
  if (suffix == 'a' && sm < 90)
    return ir_errf(err, "bad GPU architecture \"%s\": architecture-specific 'a' targets start "
                   "at sm_90a", s);
  if (suffix == 'f' && sm < 100)
    return ir_errf(err, "bad GPU architecture \"%s\": family 'f' targets start at sm_100f", s);
  if (out) {
    out->sm = sm;
    out->suffix = suffix;
  }
  return 0;
}

int cg_nvrtc_check_arch(const CgNvrtc *nv, const char *arch, IrErr *err) {
  CgArch a;
  if (cg_arch_parse(arch, &a, err)) return -1;
  if (nv->n_archs == 0) return 0; /* this NVRTC cannot tell: the compile will */
  for (int i = 0; i < nv->n_archs; i++)
    if (nv->archs[i] == a.sm) return 0;
  Buf list = {0};
  for (int i = 0; i < nv->n_archs; i++) buf_printf(&list, "%ssm_%d", i ? ", " : "", nv->archs[i]);
  ir_errf(err, "GPU architecture %s is not supported by %s (%s); it can target %s", arch,
          nv->version, nv->path, list.p);
  free(list.p);
  return -1;
}

/* ---- the checking macro ----------------------------------------------------- */

/* What a failing NVRTC call is reported against. */
typedef struct {
  const CgNvrtc *nv;
  NvProgram prog;     /* when set, a failure fetches the program log */
  const char *source; /* for the lines around each error */
  const char *name;
  const char *arch;
  IrErr *err;
  int failed;         /* the first failure writes the message; later ones add to it */
  char *log;          /* fetched program log, owned */
  Buf diag;
} NvCall;

static int nv_check(NvCall *cx, NvResult r, const char *call, const char *file, int line);

/* Every NVRTC call: `if (!NV_OK(cx, nv->nvrtcX(...))) goto fail;` */
#define NV_OK(cx, call) (nv_check((cx), (call), #call, __FILE__, __LINE__) == 0)

/* The program log into cx->log ("" when empty); -1 when it cannot be read. */
static int nv_fetch_log(NvCall *cx) {
  const CgNvrtc *nv = cx->nv;
  if (cx->log) return 0;
  size_t n = 0;
  if (!NV_OK(cx, nv->nvrtcGetProgramLogSize(cx->prog, &n))) return -1;
  char *log = xcalloc(n + 1, 1);
  if (n && !NV_OK(cx, nv->nvrtcGetProgramLog(cx->prog, log))) {
    free(log);
    return -1;
  }
  cx->log = log;
  return 0;
}

/* Copy line `no` (1-based) of src into b, marked when it is the error line. */
static void add_source_line(Buf *b, const char *const *starts, int no, int mark) {
  const char *s = starts[no - 1];
  size_t n = strcspn(s, "\r\n");
  enum { MAX_SHOWN = 200 };
  buf_printf(b, "  %c %5d | %.*s%s\n", mark ? '>' : ' ', no, (int)(n > MAX_SHOWN ? MAX_SHOWN : n),
             s, n > MAX_SHOWN ? " ..." : "");
}

/* For each "name(LINE): ... error ..." in the log, that line of the log and
 * the source lines around LINE. */
static void add_error_context(Buf *b, const char *log, const char *name, const char *source) {
  if (!log || !source) return;
  int cap = 64, n_lines = 0;
  const char **starts = xmalloc(sizeof *starts * (size_t)cap);
  for (const char *s = source; *s;) {
    if (n_lines == cap) starts = xrealloc(starts, sizeof *starts * (size_t)(cap *= 2));
    starts[n_lines++] = s;
    const char *nl = strchr(s, '\n');
    if (!nl) break;
    s = nl + 1;
  }
  size_t name_len = strlen(name);
  int shown = 0;
  enum { CONTEXT = 3, MAX_ERRORS = 20 };
  for (const char *l = log; *l && shown < MAX_ERRORS;) {
    const char *end = l + strcspn(l, "\n");
    long no = 0;
    const char *p = l + name_len;
    if (!strncmp(l, name, name_len) && *p == '(' && isdigit((unsigned char)p[1])) {
      char *q;
      no = strtol(p + 1, &q, 10);
      /* Severity is what follows "): " up to the next ':' ("error", "catastrophic error"). */
      if (q[0] == ')' && q[1] == ':') {
        const char *sev = q + 2, *colon = memchr(sev, ':', (size_t)(end - sev));
        int is_error = 0;
        for (const char *t = sev; colon && t + 5 <= colon; t++)
          if (!strncmp(t, "error", 5)) is_error = 1;
        if (!is_error) no = 0;
      } else {
        no = 0;
      }
    }
    if (no > 0) {
      buf_printf(b, "%.*s\n", (int)(end - l), l);
      if (no <= n_lines) {
        int from = no - CONTEXT < 1 ? 1 : (int)no - CONTEXT;
        int to = no + CONTEXT > n_lines ? n_lines : (int)no + CONTEXT;
        for (int i = from; i <= to; i++) add_source_line(b, starts, i, i == no);
      }
      shown++;
    }
    l = *end ? end + 1 : end;
  }
  free(starts);
}

static int nv_check(NvCall *cx, NvResult r, const char *call, const char *file, int line) {
  if (r == NVRTC_SUCCESS) return 0;
  const CgNvrtc *nv = cx->nv;
  const char *what = strstr(call, "nvrtc");
  int fn_len = (int)strcspn(what ? what : call, "(");
  if (cx->failed) {
    /* Failing while reporting (e.g. the log cannot be read): add, don't recurse. */
    buf_printf(&cx->diag, "(then %.*s failed too: %s)\n", fn_len, what ? what : call,
               nv->nvrtcGetErrorString(r));
    return -1;
  }
  cx->failed = 1;
  if (r == NVRTC_ERROR_COMPILATION || !cx->prog)
    buf_printf(&cx->diag, "NVRTC could not compile %s for %s: %s (%.*s at %s:%d)\n",
               cx->name ? cx->name : "?", cx->arch ? cx->arch : "?", nv->nvrtcGetErrorString(r),
               fn_len, what ? what : call, file, line);
  else
    buf_printf(&cx->diag, "NVRTC: %.*s failed for %s (%s): %s (at %s:%d)\n", fn_len,
               what ? what : call, cx->name ? cx->name : "?", cx->arch ? cx->arch : "?",
               nv->nvrtcGetErrorString(r), file, line);
  if (cx->prog && nv_fetch_log(cx) == 0 && cx->log[0]) {
    add_error_context(&cx->diag, cx->log, cx->name, cx->source);
    buf_printf(&cx->diag, "NVRTC log:\n%s", cx->log);
    if (cx->diag.p[cx->diag.len - 1] != '\n') buf_add(&cx->diag, "\n", 1);
  }
  return -1;
}

/* ---- ptxas' report ---------------------------------------------------------- */

static int find_kernel(const CgKernelStats *k, int n, const char *name, size_t len) {
  for (int i = 0; i < n; i++)
    if (strlen(k[i].name) == len && !strncmp(k[i].name, name, len)) return i;
  return -1;
}

/* One ", "-separated item of a ptxas line, e.g. "72 registers" or "0 bytes spill loads". */
static void parse_item(CgKernelStats *k, const char *item) {
  int v, n = -1;
  while (*item == ' ' || *item == '\t') item++;
#define ITEM(fmt, field) \
  if ((n = -1, sscanf(item, fmt "%n", &v, &n)) == 1 && n > 0) { k->field = v; return; }
  ITEM("Used %d registers", registers);
  ITEM("used %d barriers", barriers);
  ITEM("%d bytes stack frame", stack_frame);
  ITEM("%d bytes spill stores", spill_stores);
  ITEM("%d bytes spill loads", spill_loads);
  ITEM("%d bytes smem", smem);
#undef ITEM
}

static void parse_items(CgKernelStats *k, const char *s, const char *end) {
  while (s < end) {
    const char *c = memchr(s, ',', (size_t)(end - s));
    const char *e = c ? c : end;
    char item[128];
    size_t n = (size_t)(e - s) < sizeof item - 1 ? (size_t)(e - s) : sizeof item - 1;
    memcpy(item, s, n);
    item[n] = 0;
    parse_item(k, item);
    s = e + 1;
  }
}

/* ptxas -v prints, per entry function:
 *   Compiling entry function 'k' for 'sm_90'
 *   Function properties for k
 *       N bytes stack frame, N bytes spill stores, N bytes spill loads
 *   Used N registers[, used N barriers][, N bytes smem][, N bytes cmem[0]]
 * and "Function properties" blocks for non-inlined device functions too;
 * those are skipped (their spills are not a kernel's). */
int cg_ptxas_parse(const char *log, CgKernelStats **out) {
  CgKernelStats *k = NULL;
  int n = 0, cap = 0;
  int props = -1, entry = -1; /* kernel the next stack/"Used" line belongs to */
  for (const char *l = log ? log : ""; *l;) {
    const char *end = l + strcspn(l, "\n");
    const char *p;
    size_t len = (size_t)(end - l);
    char line[1024];
    if (len >= sizeof line) len = sizeof line - 1;
    memcpy(line, l, len);
    line[len] = 0;
    if ((p = strstr(line, "Compiling entry function '"))) {
      p += strlen("Compiling entry function '");
      size_t nl = strcspn(p, "'");
      entry = find_kernel(k, n, p, nl);
      if (entry < 0) {
        if (n == cap) k = xrealloc(k, sizeof *k * (size_t)(cap = cap ? 2 * cap : 8));
        k[n] = (CgKernelStats){.registers = -1, .spill_stores = -1, .spill_loads = -1,
                               .stack_frame = -1};
        k[n].name = xmalloc(nl + 1);
        memcpy(k[n].name, p, nl);
        k[n].name[nl] = 0;
        entry = n++;
      }
      props = -1;
    } else if ((p = strstr(line, "Function properties for "))) {
      p += strlen("Function properties for ");
      size_t nl = strcspn(p, " \r");
      props = find_kernel(k, n, p, nl);
    } else if (strstr(line, "bytes stack frame")) {
      if (props >= 0) {
        /* The item list starts at the first digit after the "ptxas ... ." prefix. */
        const char *s = line + strcspn(line, "0123456789");
        parse_items(&k[props], s, line + len);
      }
    } else if ((p = strstr(line, "Used ")) && strstr(line, "registers")) {
      if (entry >= 0) parse_items(&k[entry], p, line + len);
    }
    l = *end ? end + 1 : end;
  }
  *out = k;
  return n;
}

void cg_kernel_stats_free(CgKernelStats *k, int n) {
  for (int i = 0; i < n; i++) free(k[i].name);
  free(k);
}

const CgKernelStats *cg_compiled_find_kernel(const CgCompiled *c, const char *name) {
  int i = find_kernel(c->kernels, c->n_kernels, name, strlen(name));
  return i < 0 ? NULL : &c->kernels[i];
}

/* ---- compiling -------------------------------------------------------------- */

static int starts_with(const char *s, const char *prefix) {
  return !strncmp(s, prefix, strlen(prefix));
}

int cg_nvrtc_compile(const CgNvrtc *nv, const char *source, const char *name, const char *arch,
                     const char *const *options, int n_options, unsigned outputs,
                     CgCompiled *out, IrErr *err) {
  memset(out, 0, sizeof *out);
  CgArch a;
  if (!source || !name) return ir_errf(err, "cg_nvrtc_compile: no source or program name");
  if (!(outputs & (CG_OUT_CUBIN | CG_OUT_PTX)))
    return ir_errf(err, "cg_nvrtc_compile: asked for neither CUBIN nor PTX");
  if (n_options < 0 || (n_options > 0 && !options))
    return ir_errf(err, "cg_nvrtc_compile: bad option list");
  if (cg_nvrtc_check_arch(nv, arch, err) || cg_arch_parse(arch, &a, err)) return -1;

  int has_std = 0;
  for (int i = 0; i < n_options; i++) {
    const char *o = options[i];
    if (!o) return ir_errf(err, "cg_nvrtc_compile: option %d is NULL", i);
    if (starts_with(o, "--gpu-architecture") || starts_with(o, "-arch") ||
        starts_with(o, "--gpu-name") || starts_with(o, "-gpu-name"))
      return ir_errf(err, "NVRTC option \"%s\" names an architecture; the target is %s", o, arch);
    if (starts_with(o, "--std") || starts_with(o, "-std")) has_std = 1;
  }

  /* SASS needs the real sm_XX; PTX alone only the virtual compute_XX. */
  int cubin = (outputs & CG_OUT_CUBIN) != 0;
  char arch_opt[64];
  snprintf(arch_opt, sizeof arch_opt, "--gpu-architecture=%s_%d%.*s", cubin ? "sm" : "compute",
           a.sm, a.suffix ? 1 : 0, &a.suffix);
  const char **opts = xmalloc(sizeof *opts * (size_t)(n_options + 4));
  int no = 0;
  opts[no++] = arch_opt;
  opts[no++] = "-default-device";
  if (!has_std) opts[no++] = "--std=c++17";
  if (cubin) opts[no++] = "--ptxas-options=-v";
  for (int i = 0; i < n_options; i++) opts[no++] = options[i];

  NvCall cx = {.nv = nv, .source = source, .name = name, .arch = arch, .err = err};
  NvProgram prog = NULL;
  int rc = -1;
  if (!NV_OK(&cx, nv->nvrtcCreateProgram(&prog, source, name, 0, NULL, NULL))) goto fail;
  cx.prog = prog;
  if (!NV_OK(&cx, nv->nvrtcCompileProgram(prog, no, opts))) goto fail;
  if (nv_fetch_log(&cx)) goto fail;
  if (cubin) {
    if (!NV_OK(&cx, nv->nvrtcGetCUBINSize(prog, &out->cubin_size))) goto fail;
    out->cubin = xmalloc(out->cubin_size);
    if (!NV_OK(&cx, nv->nvrtcGetCUBIN(prog, (char *)out->cubin))) goto fail;
    out->n_kernels = cg_ptxas_parse(cx.log, &out->kernels);
    /* for the simulated driver: this CUBIN is this source's */
    CgCubinSource note = {source, name, arch, options, n_options};
    cg_cubin_source_note(out->cubin, out->cubin_size, &note);
  }
  if (outputs & CG_OUT_PTX) {
    size_t n = 0; /* counts the NUL */
    if (!NV_OK(&cx, nv->nvrtcGetPTXSize(prog, &n))) goto fail;
    out->ptx = xcalloc(n + 1, 1);
    if (!NV_OK(&cx, nv->nvrtcGetPTX(prog, out->ptx))) goto fail;
    out->ptx_size = strlen(out->ptx);
  }
  rc = 0;
fail:
  if (prog) {
    /* Destroying is checked like any call, but must not hide the first error. */
    NvProgram p = prog;
    if (!NV_OK(&cx, nv->nvrtcDestroyProgram(&p))) rc = -1;
  }
  free(opts);
  out->log = cx.log ? cx.log : xstrdup("");
  if (rc) {
    out->diag = cx.diag.p ? cx.diag.p : xstrdup("NVRTC failed");
    ir_errf(err, "%s", out->diag);
    /* Keep what failed to come out of a half-finished compile from looking usable. */
    free(out->cubin);
    free(out->ptx);
    cg_kernel_stats_free(out->kernels, out->n_kernels);
    out->cubin = NULL;
    out->ptx = NULL;
    out->kernels = NULL;
    out->cubin_size = out->ptx_size = 0;
    out->n_kernels = 0;
  } else {
    free(cx.diag.p);
  }
  return rc;
}

void cg_compiled_free(CgCompiled *c) {
  if (!c) return;
  free(c->cubin);
  free(c->ptx);
  free(c->log);
  free(c->diag);
  cg_kernel_stats_free(c->kernels, c->n_kernels);
  memset(c, 0, sizeof *c);
}

/* ---- the kernel cache's compiler ---------------------------------------------- */

int cg_nvrtc_cache_compile(void *vctx, const CgCacheRequest *r, unsigned char **out,
                           size_t *out_size, IrErr *err) {
  CgNvrtcCacheCtx *ctx = vctx;
  const CgNvrtc *nv = ctx->nv;
  *out = NULL;
  *out_size = 0;
  if (!r->compiler_version || strcmp(r->compiler_version, nv->version))
    return ir_errf(err, "kernel cache request names compiler \"%s\" but %s is loaded",
                   r->compiler_version ? r->compiler_version : "(none)", nv->version);
  CgCompiled c;
  int rc = cg_nvrtc_compile(nv, r->source, r->name ? r->name : "ditc_kernel.cu", r->arch,
                            r->options, r->n_options, CG_OUT_CUBIN, &c, err);
  if (rc == 0) {
    /* The CUBIN moves to the caller; the rest is the report. */
    *out = c.cubin;
    *out_size = c.cubin_size;
    c.cubin = NULL;
    c.cubin_size = 0;
  }
  if (ctx->report)
    *ctx->report = c;
  else
    cg_compiled_free(&c);
  return rc;
}
