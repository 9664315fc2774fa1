/*
 * embed.c - the texts compiled into the library: the kernel dialect's two
 * preludes (emu_prelude.h, what the emulator compiles kernels with;
 * cuda_prelude.h, what NVRTC gets), the helpers they share
 * (prelude_shared.h) and ir/scalar.h, the elementwise ops' scalar functions
 * every generated source starts with (codegen/emit.c).
 *
 * Each file is pulled in by the assembler's `.incbin` and ends in a NUL, so
 * an installed ditc needs no source tree.  DITC_SOURCE_DIR comes from CMake
 * (a direct build runs from the repository root); CMakeLists.txt makes this
 * object depend on the four files, so editing one rebuilds it.  A prelude's
 * line that includes prelude_shared.h is replaced by that file's text the
 * first time the prelude is asked for, so the texts handed out include
 * nothing from the source tree.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
EMBED(ditc_prelude_shared_blob, "codegen/prelude_shared.h");
EMBED(ditc_scalar_blob, "ir/scalar.h");
extern const char ditc_emu_prelude_blob[];
extern const char ditc_cuda_prelude_blob[];
extern const char ditc_prelude_shared_blob[];
extern const char ditc_scalar_blob[];

#define SHARED_INCLUDE "#include \"prelude_shared.h\"\n"

/* The prelude with its include line replaced by the shared text (once; the
 * copy lives as long as the process). */
static char *splice_shared(const char *prelude) {
  const char *at = strstr(prelude, SHARED_INCLUDE);
  if (!at) {
    fputs("ditc: internal error: an embedded prelude lacks " SHARED_INCLUDE, stderr);
    abort();
  }
  size_t head = (size_t)(at - prelude), shared = strlen(ditc_prelude_shared_blob);
  const char *tail = at + strlen(SHARED_INCLUDE);
  size_t n = strlen(tail);
  char *s = xmalloc(head + shared + n + 1);
  memcpy(s, prelude, head);
  memcpy(s + head, ditc_prelude_shared_blob, shared);
  memcpy(s + head + shared, tail, n + 1);
  return s;
}

static pthread_once_t splice_once = PTHREAD_ONCE_INIT;
static const char *emu_text, *cuda_text;
static void splice_both(void) {
  emu_text = splice_shared(ditc_emu_prelude_blob);
  cuda_text = splice_shared(ditc_cuda_prelude_blob);
}

const char *emu_prelude_text(void) {
  pthread_once(&splice_once, splice_both);
  return emu_text;
}
const char *emu_cuda_prelude_text(void) {
  pthread_once(&splice_once, splice_both);
  return cuda_text;
}
const char *emu_prelude_shared_text(void) { return ditc_prelude_shared_blob; }
const char *cg_scalar_text(void) { return ditc_scalar_blob; }
