/*
 * embed.c - the texts compiled into the library: the kernel dialect's two
 * preludes (emu_prelude.h, what the emulator compiles kernels with;
 * cuda_prelude.h, what NVRTC gets) and ir/scalar.h, the elementwise ops'
 * scalar functions every generated source starts with (codegen/emit.c).
 *
 * Each file is pulled in by the assembler's `.incbin` and ends in a NUL, so
 * an installed ditc needs no source tree.  DITC_SOURCE_DIR comes from CMake
 * (a direct build runs from the repository root); CMakeLists.txt makes this
 * object depend on the three files, so editing one rebuilds it.
 */
#include "codegen/cg_internal.h"
#include "codegen/emu.h"

#ifdef DITC_SOURCE_DIR
#define EMBED_PATH(f) DITC_SOURCE_DIR "/" f
#else
#define EMBED_PATH(f) f
#endif
#define EMBED(sym, file)                                                \
  __asm__(".pushsection .rodata\n"                                      \
          ".globl " #sym "\n.hidden " #sym "\n.type " #sym ", STT_OBJECT\n" \
          #sym ":\n.incbin \"" EMBED_PATH(file) "\"\n.byte 0\n"         \
          ".size " #sym ", . - " #sym "\n.popsection\n")
EMBED(ditc_emu_prelude_blob, "codegen/emu_prelude.h");
EMBED(ditc_cuda_prelude_blob, "codegen/cuda_prelude.h");
EMBED(ditc_scalar_blob, "ir/scalar.h");
extern const char ditc_emu_prelude_blob[];
extern const char ditc_cuda_prelude_blob[];
extern const char ditc_scalar_blob[];

const char *emu_prelude_text(void) { return ditc_emu_prelude_blob; }
const char *emu_cuda_prelude_text(void) { return ditc_cuda_prelude_blob; }
const char *cg_scalar_text(void) { return ditc_scalar_blob; }
