/*
 * cuda_sim_module.c - the simulated driver's modules and launches (cuda_sim.c's
 * top comment, "Modules and launches"): cuModuleLoadDataEx reads the CUBIN,
 * finds the source NVRTC compiled it from and compiles that for the emulated
 * device; cuModuleGetFunction, cuFuncSetAttribute; cuLaunchKernel checks the
 * launch as a driver would and enqueues it.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/cubin_source.h"
#include "runtime/cuda_sim_driver.h"

static struct CUmod_st *modules;

SIM_LIST_TAKE(module_take, struct CUmod_st)

static void module_free(struct CUmod_st *m) {
  for (int i = 0; i < m->img.n_kernels; i++) sim_params_free(&m->funcs[i].params);
  free(m->funcs);
  sim_image_free(&m->img);
  free(m);
}

int sim_func_live(const struct CUfunc_st *f, long serial) {
  for (struct CUmod_st *m = modules; m; m = m->next)
    if (f >= m->funcs && f < m->funcs + m->img.n_kernels) return serial < 0 || m->serial == serial;
  return 0;
}

/* ======================================================================== */
/* modules and launches                                                     */
/* ======================================================================== */

/* The JIT error log the caller passed (CU_JIT_ERROR_LOG_BUFFER and its size,
 * which comes back as the bytes written). */
static void jit_log(unsigned n, int *opts, void **vals, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void jit_log(unsigned n, int *opts, void **vals, const char *fmt, ...) {
  char *buf = NULL;
  size_t size = 0;
  int size_at = -1;
  for (unsigned i = 0; opts && vals && i < n; i++) {
    if (opts[i] == RT_CU_JIT_ERROR_LOG_BUFFER) buf = vals[i];
    if (opts[i] == RT_CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES) size = (size_t)(uintptr_t)vals[i], size_at = (int)i;
  }
  va_list ap;
  va_start(ap, fmt);
  if (buf && size) {
    vsnprintf(buf, size, fmt, ap);
    vals[size_at] = (void *)(uintptr_t)(strlen(buf) + 1);
  }
  va_end(ap);
}

/* A CUBIN for sm_XY runs on devices of major X and minor >= Y.  (Which of
 * sm_90 and sm_90a the image is, an arch-specific one running only on its
 * own device, does not change the answer for the devices simulated here.) */
static int arch_runs(int image_sm, const SimArch *a) {
  return image_sm / 10 == a->major && image_sm % 10 <= a->minor;
}

/* The option list NVRTC got, as the emulator can honour it: -D as #defines;
 * include paths and the prelude's pre-include (the emulator has its own)
 * do not matter; anything else we cannot reproduce refuses the image. */
static int options_to_defines(const CgCubinSource *src, char **defs, char *why, size_t n) {
  size_t cap = 64, len = 0;
  char *d = xmalloc(cap);
  d[0] = 0;
  for (int i = 0; i < src->n_options; i++) {
    const char *o = src->options[i];
    if (!strncmp(o, "-I", 2) || !strncmp(o, "--include-path", 14) || !strncmp(o, "--std", 5) ||
        !strncmp(o, "-std", 4) || !strcmp(o, "-default-device") || !strcmp(o, "--pre-include=cuda_prelude.h") ||
        !strcmp(o, "-lineinfo") || !strcmp(o, "--generate-line-info"))
      continue;
    const char *def = !strncmp(o, "-D", 2) ? o + 2 : !strncmp(o, "--define-macro=", 15) ? o + 15 : NULL;
    if (!def || !*def) {
      free(d);
      snprintf(why, n, "it was compiled with the NVRTC option \"%s\", which the simulation cannot reproduce", o);
      return -1;
    }
    const char *eq = strchr(def, '=');
    size_t need = strlen(def) + 16;
    while (len + need >= cap) d = xrealloc(d, cap *= 2);
    if (eq) len += (size_t)snprintf(d + len, cap - len, "#define %.*s %s\n", (int)(eq - def), def, eq + 1);
    else len += (size_t)snprintf(d + len, cap - len, "#define %s 1\n", def);
  }
  *defs = d;
  return 0;
}

static RtCuResult sim_module_load(CUmodule *out, const void *image, unsigned n_opts, int *opts, void **vals) {
  ENTER_CTX();
  if (!out) LEAVE(RT_CUDA_ERROR_INVALID_VALUE);
  *out = NULL;
  if ((r_ = sim_capture_forbids("cuModuleLoadDataEx"))) LEAVE(r_);
  char why[512];
  SimImage img;
  if (sim_image_parse(image, &img, why, sizeof why)) {
    jit_log(n_opts, opts, vals, "simulated driver: %s", why);
    LEAVE(SIM_ERROR_INVALID_IMAGE);
  }
  if (!arch_runs(img.sm, sim_arch())) {
    jit_log(n_opts, opts, vals, "simulated driver: the CUBIN is for sm_%d, the device is %s", img.sm, sim_arch()->arch);
    sim_image_free(&img);
    LEAVE(SIM_ERROR_NO_BINARY_FOR_GPU);
  }
  CgCubinSource src;
  if (!cg_cubin_source_find(image, img.size, &src)) {
    jit_log(n_opts, opts, vals, "simulated driver: this CUBIN (%zu bytes) was not compiled by NVRTC or fetched from the "
            "kernel cache in this process, so its source is unknown and it cannot be simulated", img.size);
    sim_image_free(&img);
    LEAVE(SIM_ERROR_INVALID_IMAGE);
  }
  char *defs;
  if (options_to_defines(&src, &defs, why, sizeof why)) {
    jit_log(n_opts, opts, vals, "simulated driver: %s", why);
    sim_image_free(&img);
    LEAVE(SIM_ERROR_INVALID_IMAGE);
  }
  /* The text NVRTC compiled; its copy of cuda_prelude.h drops out by its
   * include guard, and emu_prelude.h (pre-included by the emulator) maps the
   * dialect instead. */
  size_t n = strlen(defs) + strlen(src.source) + 64;
  char *text = xmalloc(n);
  snprintf(text, n, "#define DITC_CUDA_PRELUDE_H 1\n%s%s", defs, src.source);
  free(defs);
  IrErr e;
  char name[128];
  snprintf(name, sizeof name, "sim %s", src.name);
  EmuModule *emu = emu_module_load(text, name, &e);
  free(text);
  if (!emu) {
    jit_log(n_opts, opts, vals, "simulated driver: the emulator cannot compile the CUBIN's source %s: %.3000s", src.name,
            e.msg);
    sim_image_free(&img);
    LEAVE(SIM_ERROR_INVALID_IMAGE);
  }
  for (int i = 0; i < img.n_kernels; i++)
    if (!emu_module_has_kernel(emu, img.kernels[i].name)) {
      jit_log(n_opts, opts, vals, "simulated driver: the CUBIN has a kernel %s that its source %s lacks",
              img.kernels[i].name, src.name);
      sim_image_free(&img);
      LEAVE(SIM_ERROR_INVALID_IMAGE);
    }
  static long serials;
  struct CUmod_st *m = xcalloc(1, sizeof *m);
  m->serial = ++serials;
  m->img = img;
  m->emu = emu;
  m->funcs = xcalloc((size_t)img.n_kernels + 1, sizeof *m->funcs);
  SimParams *params = xcalloc((size_t)img.n_kernels + 1, sizeof *params);
  sim_params_read(src.source, &m->img, params);
  for (int i = 0; i < img.n_kernels; i++) {
    int dflt = DEFAULT_SMEM_PER_BLOCK - (int)img.kernels[i].static_smem;
    m->funcs[i] = (struct CUfunc_st){m, &m->img.kernels[i], params[i], dflt > 0 ? dflt : 0};
  }
  free(params);
  m->next = modules;
  modules = m;
  *out = m;
  LEAVE(0);
}

static struct CUmod_st *module_live(CUmodule mod) {
  for (struct CUmod_st *m = modules; m; m = m->next)
    if (m == mod) return m;
  return NULL;
}

static RtCuResult sim_module_unload(CUmodule mod) {
  ENTER_CTX();
  if ((r_ = sim_capture_forbids("cuModuleUnload"))) LEAVE(r_);
  struct CUmod_st *m = module_take(&modules, mod);
  if (!m) LEAVE(sim_fail(SIM_ERROR_INVALID_HANDLE, "not a loaded module"));
  module_free(m);
  LEAVE(0);
}

static RtCuResult sim_module_function(CUfunction *f, CUmodule mod, const char *name) {
  ENTER_CTX();
  struct CUmod_st *m = module_live(mod);
  if (!m) LEAVE(sim_fail(SIM_ERROR_INVALID_HANDLE, "not a loaded module"));
  if (!f || !name) LEAVE(RT_CUDA_ERROR_INVALID_VALUE);
  for (int i = 0; i < m->img.n_kernels; i++)
    if (!strcmp(m->img.kernels[i].name, name)) {
      *f = &m->funcs[i];
      LEAVE(0);
    }
  LEAVE(sim_fail(SIM_ERROR_NOT_FOUND, "the module has no kernel named %s", name));
}

static RtCuResult sim_func_attribute(CUfunction f, int attr, int value) {
  ENTER_CTX();
  if (!f || !sim_func_live(f, -1)) LEAVE(sim_fail(SIM_ERROR_INVALID_HANDLE, "not a function of a loaded module"));
  if (attr == RT_CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES) {
    int most = sim_arch()->smem_per_block_optin - (int)f->k->static_smem;
    if (value < 0 || value > most)
      LEAVE(sim_fail(RT_CUDA_ERROR_INVALID_VALUE, "kernel %s: %d bytes of dynamic shared memory; %s allows at most "
                     "%d (%d opt-in per block less %u static)", f->k->name, value, sim_arch()->arch, most,
                     sim_arch()->smem_per_block_optin, f->k->static_smem));
    f->max_dyn_smem = value;
    LEAVE(0);
  }
  if (attr == 9) { /* PREFERRED_SHARED_MEMORY_CARVEOUT: a hint, percent or -1 */
    if (value < -1 || value > 100) LEAVE(sim_fail(RT_CUDA_ERROR_INVALID_VALUE, "carveout %d%%", value));
    LEAVE(0);
  }
  LEAVE(sim_fail(RT_CUDA_ERROR_INVALID_VALUE, "function attribute %d is not simulated", attr));
}

/* The most threads a block of f may have: __launch_bounds__, and what its
 * registers allow (allocated per warp in units of 256). */
static unsigned max_threads(const SimKernel *k, char *why, size_t n) {
  unsigned most = MAX_BLOCK_THREADS;
  snprintf(why, n, "the device's %d", MAX_BLOCK_THREADS);
  if (k->max_threads && k->max_threads < most) {
    most = k->max_threads;
    snprintf(why, n, "its __launch_bounds__(%u)", k->max_threads);
  }
  if (k->regs > 0) {
    unsigned per_warp = ((unsigned)k->regs * 32 + 255) / 256 * 256;
    unsigned by_regs = REGS_PER_BLOCK / per_warp * 32;
    if (by_regs < most) {
      most = by_regs;
      snprintf(why, n, "its %d registers per thread in %d per block", k->regs, REGS_PER_BLOCK);
    }
  }
  return most;
}

static RtCuResult sim_launch(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                             unsigned bz, unsigned smem, CUstream s, void **params, void **extra) {
  ENTER_CTX();
  if (!f || !sim_func_live(f, -1)) LEAVE(sim_fail(SIM_ERROR_INVALID_HANDLE, "not a function of a loaded module"));
  const SimKernel *k = f->k;
  if (!sim_stream_valid(s)) LEAVE(sim_fail(SIM_ERROR_INVALID_HANDLE, "kernel %s: not a stream of this context", k->name));
  if (!gx || !gy || !gz || gx > 2147483647u || gy > 65535 || gz > 65535)
    LEAVE(sim_fail(RT_CUDA_ERROR_INVALID_VALUE, "kernel %s: grid (%u, %u, %u) is outside (1..2^31-1, 1..65535, "
                   "1..65535)", k->name, gx, gy, gz));
  uint64_t threads = (uint64_t)bx * by * bz;
  if (!bx || !by || !bz || bx > 1024 || by > 1024 || bz > 64 || threads > MAX_BLOCK_THREADS)
    LEAVE(sim_fail(RT_CUDA_ERROR_INVALID_VALUE, "kernel %s: block (%u, %u, %u) is outside the device's limits "
                   "(x, y <= 1024, z <= 64, at most %d threads)", k->name, bx, by, bz, MAX_BLOCK_THREADS));
  if ((k->reqntid[0] || k->reqntid[1] || k->reqntid[2]) &&
      (bx != k->reqntid[0] || by != k->reqntid[1] || bz != k->reqntid[2]))
    LEAVE(sim_fail(RT_CUDA_ERROR_INVALID_VALUE, "kernel %s requires blocks of (%u, %u, %u), not (%u, %u, %u)", k->name,
                   k->reqntid[0], k->reqntid[1], k->reqntid[2], bx, by, bz));
  char why[160];
  unsigned most = max_threads(k, why, sizeof why);
  if (threads > most)
    LEAVE(sim_fail(SIM_ERROR_LAUNCH_OUT_OF_RESOURCES, "kernel %s: a block of %llu threads; %s allow%s at most %u",
                   k->name, (unsigned long long)threads, why, strstr(why, "registers") ? "" : "s", most));
  if ((int)smem > f->max_dyn_smem)
    LEAVE(sim_fail(RT_CUDA_ERROR_INVALID_VALUE, "kernel %s: %u bytes of dynamic shared memory, more than its "
                   "CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES (%d%s)", k->name, smem, f->max_dyn_smem,
                   f->max_dyn_smem + (int)k->static_smem <= DEFAULT_SMEM_PER_BLOCK
                       ? ": above 48 KiB a kernel must opt in with cuFuncSetAttribute"
                       : ""));
  if (params && extra) LEAVE(sim_fail(RT_CUDA_ERROR_INVALID_VALUE, "kernel %s: both kernelParams and extra", k->name));
  /* Parameters: kernelParams[i] points to parameter i, or extra carries one buffer. */
  const void *buf = NULL;
  size_t buf_size = 0;
  for (int i = 0; extra && extra[i]; i += 2) {
    if (extra[i] == (void *)(uintptr_t)1) buf = extra[i + 1];                               /* BUFFER_POINTER */
    else if (extra[i] == (void *)(uintptr_t)2) buf_size = *(const size_t *)extra[i + 1];    /* BUFFER_SIZE */
    else LEAVE(sim_fail(RT_CUDA_ERROR_INVALID_VALUE, "kernel %s: unknown launch option in extra", k->name));
  }
  if (k->n_params != 1)
    LEAVE(sim_fail(SIM_ERROR_NOT_SUPPORTED, "kernel %s has %d parameters; the simulation runs the kernel dialect's "
                   "kernels, which take one parameter struct", k->name, k->n_params));
  size_t n = k->param_size[0];
  if (!params && (!buf || buf_size < k->param_offset[0] + n))
    LEAVE(sim_fail(RT_CUDA_ERROR_INVALID_VALUE, "kernel %s: no parameters given for its %zu bytes", k->name, n));
  Op op = {.kind = OP_KERNEL};
  op.u.k.f = f;
  op.u.k.serial = f->mod->serial;
  op.u.k.grid[0] = gx, op.u.k.grid[1] = gy, op.u.k.grid[2] = gz;
  op.u.k.block[0] = bx, op.u.k.block[1] = by, op.u.k.block[2] = bz;
  op.u.k.smem = smem;
  op.u.k.n = n;
  op.u.k.params = aligned_alloc(16, (n + 15) & ~(size_t)15);
  if (!op.u.k.params) ditc_fatal(__FILE__, __LINE__, "out of memory");
  memset(op.u.k.params, 0, (n + 15) & ~(size_t)15);
  memcpy(op.u.k.params, params ? params[0] : (const char *)buf + k->param_offset[0], n);
  LEAVE(sim_enqueue(s, &op));
}

void sim_modules_free_all(void) {
  while (modules) {
    struct CUmod_st *m = modules;
    modules = m->next;
    module_free(m);
  }
}

void sim_module_table(RtCudaApi *t) {
  t->ModuleLoadDataEx = sim_module_load;
  t->ModuleUnload = sim_module_unload;
  t->ModuleGetFunction = sim_module_function;
  t->FuncSetAttribute = sim_func_attribute;
  t->LaunchKernel = sim_launch;
}
