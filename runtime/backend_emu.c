/*
 * backend_emu.c - the emulated device backend: runs a CgPlan on the CPU.
 *
 * prepare() compiles the plan's source through the emulator (codegen/emu.h;
 * the emulator caches modules by source text, so preparing forward and
 * forward_with_cfg of one pack compiles each once), checks every kernel is
 * there, and allocates the activation arena (64-byte aligned, zeroed).  The
 * weights blob is used in place when it is 64-byte aligned (a mapped pack),
 * copied otherwise.  run() writes the inputs into the arena in their stored
 * dtype, runs the steps in order - kernels through emu_launch with the one
 * DitcArgs argument, GEMMs through cg_gemm_ref - checks the status word and
 * reads the outputs back.
 */
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "codegen/emu.h"

typedef struct {
  const CgPlan *plan;
  EmuModule *mod;
  char *act;
  const char *w;
  void *w_copy;
} Emu;

static int emu_supports(const RtBackend *b, IrOp op) {
  (void)b;
  return op != IR_OP_COUNT; /* the code generator reports what it cannot lower, by node */
}

static void emu_release(Emu *e) {
  if (!e) return;
  free(e->act);
  free(e->w_copy);
  free(e);
}

static void *alloc64(int64_t n) {
  size_t sz = ((size_t)(n > 0 ? n : 1) + 63) / 64 * 64;
  void *p = aligned_alloc(64, sz);
  if (!p) ditc_fatal(__FILE__, __LINE__, "out of memory (%zu bytes)", sz);
  memset(p, 0, sz);
  return p;
}

static int emu_prepare(RtBackend *b, const RtModel *m, IrErr *err) {
  const CgPlan *p = m->plan;
  if (!p) return ir_errf(err, "the emu backend runs an execution plan");
  if (p->weights_bytes && !m->blob) return ir_errf(err, "emu backend: the plan needs a weights blob");
  emu_release(b->impl);
  b->impl = NULL;
  char name[128];
  snprintf(name, sizeof name, "ditc plan %s", p->entry);
  EmuModule *mod = emu_module_load(p->source, name, err);
  if (!mod) return -1;
  for (int k = 0; k < p->n_kernels; k++)
    if (!emu_module_has_kernel(mod, p->kernels[k].name))
      return ir_errf(err, "emu backend: the plan's source has no kernel '%s'", p->kernels[k].name);
  Emu *e = xcalloc(1, sizeof *e);
  e->plan = p;
  e->mod = mod;
  e->act = alloc64(p->arena_bytes);
  if (((uintptr_t)m->blob & 63) == 0) {
    e->w = m->blob;
  } else {
    e->w_copy = alloc64(p->weights_bytes);
    memcpy(e->w_copy, m->blob, (size_t)p->weights_bytes);
    e->w = e->w_copy;
  }
  b->impl = e;
  return 0;
}

static int emu_run(RtBackend *b, const RtTensor *in, RtTensor *out, IrErr *err) {
  Emu *e = b->impl;
  if (!e) return ir_errf(err, "emu backend: run before prepare");
  const CgPlan *p = e->plan;
  for (int i = 0; i < p->n_inputs; i++)
    if (rt_io_put(p, &p->inputs[i], &in[i], e->act + p->inputs[i].offset, err)) return -1;
  DitcArgs args = {e->act, e->w};
  void *argv[] = {&args};
  for (int s = 0; s < p->n_steps; s++) {
    const CgStep *st = &p->steps[s];
    if (st->kind == CG_STEP_GEMM) {
      cg_gemm_ref(&st->gemm, e->act, e->w);
      continue;
    }
    const CgKernel *k = &p->kernels[st->kernel];
    EmuDim3 grid = {st->grid[0], st->grid[1], st->grid[2]}, block = {st->block[0], st->block[1], st->block[2]};
    IrErr why;
    if (emu_launch(e->mod, k->name, grid, block, st->shared_bytes, argv, &why))
      return ir_errf(err, "emu: step %d, kernel %s (%s): %s", s, k->name, st->what, why.msg);
  }
  int64_t so = rt_status_offset(p);
  if (so >= 0) {
    int32_t status;
    memcpy(&status, e->act + so, 4);
    if (rt_status_check(status, err)) return -1;
  }
  for (int i = 0; i < p->n_outputs; i++) out[i] = rt_io_get(&p->outputs[i], e->act + p->outputs[i].offset);
  return 0;
}

static void emu_free(RtBackend *b) {
  emu_release(b->impl);
  free(b);
}

RtBackend *rt_backend_emu(void) {
  RtBackend *b = xcalloc(1, sizeof *b);
  *b = (RtBackend){"emu", emu_supports, emu_prepare, emu_run, emu_free, NULL};
  return b;
}
