/*
 * emu.h - the emulated device: generated CUDA kernels run on the CPU.
 *
 * A kernel source written in ditc's kernel dialect (documented at the top of
 * codegen/emu_prelude.h) is compiled by the host C compiler through the
 * emulator's prelude into a shared object, loaded, and launched with a grid
 * and block like cuLaunchKernel.  Within a block the threads run as fibers
 * that switch at __syncthreads, warp shuffles and warp collectives (mma.sync,
 * ldmatrix); blocks run in parallel on OpenMP threads.  CI has no GPU: this
 * is how it runs the very sources that NVRTC compiles for real devices.
 *
 * Environment: DITC_EMU_CC (default "cc") and DITC_EMU_CFLAGS (extra flags,
 * e.g. "-fsanitize=address" when the host program is ASan-built) are split
 * on blanks; DITC_EMU_KEEP=1 keeps the temporary build folders; TMPDIR.
 */
#ifndef DITC_EMU_H
#define DITC_EMU_H

#include <stddef.h>

#include "ir/ir.h"

typedef struct {
  unsigned x, y, z;
} EmuDim3;

typedef struct EmuModule EmuModule;

/* Compiles `source` (a kernel source in ditc's dialect) and loads it.  `name`
 * names it in messages.  Modules are cached in memory by source text for the
 * life of the process (or until emu_shutdown), so loading the same source
 * again is cheap and returns the same module; the caller does not free it.
 * On a compile error returns NULL with the compiler's output in err. */
EmuModule *emu_module_load(const char *source, const char *name, IrErr *err);

/* 1 if the module defines the kernel, else 0. */
int emu_module_has_kernel(EmuModule *m, const char *kernel);

/* Runs kernel `kernel` over `grid` blocks of `block` threads, with
 * `dyn_shared_bytes` of dynamic shared memory per block; args[0] points to
 * the kernel's params struct (cuLaunchKernel's convention).  Synchronous:
 * returns when every block has finished.  Errors (unknown kernel, bad launch
 * configuration, a barrier deadlock, a fault the prelude detects such as a
 * warp collective without its full warp) return -1 with err filled. */
int emu_launch(EmuModule *m, const char *kernel, EmuDim3 grid, EmuDim3 block,
               size_t dyn_shared_bytes, void **args, IrErr *err);

/* Unloads every cached module and frees the fiber stacks. Not thread safe
 * against concurrent loads or launches. */
void emu_shutdown(void);

/* The preludes' text, embedded into the library at build time
 * (codegen/embed.c): emu_prelude.h (what emu_module_load compiles with) and
 * cuda_prelude.h (for the NVRTC side), each with the helpers they share
 * (prelude_shared.h, emu_prelude_shared_text) in place of its include. */
const char *emu_prelude_text(void);
const char *emu_cuda_prelude_text(void);
const char *emu_prelude_shared_text(void);

#endif /* DITC_EMU_H */
