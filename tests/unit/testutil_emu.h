/* Helpers for unit tests that run kernels on the CUDA emulator: the group teardown that shuts the
 * emulator down once every test of the file has run.  Header-only, like testutil.h. */
#ifndef DITC_TESTUTIL_EMU_H
#define DITC_TESTUTIL_EMU_H

#include "testutil.h"

#include "codegen/emu.h"

static inline int tu_emu_teardown(void **state) {
  (void)state;
  emu_shutdown();
  return 0;
}

#endif
