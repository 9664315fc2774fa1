/*
 * cubin_source.h - which kernel source each CUBIN of this process was
 * compiled from, for the simulated CUDA driver (runtime/cuda_sim.c).
 *
 * A GPU runs a CUBIN's SASS; the simulation runs the source the CUBIN was
 * compiled from on the emulated device (codegen/emu.h).  A CUBIN does not
 * carry its source, so the places that hand out CUBINs note the pair here:
 * cg_nvrtc_compile for every CUBIN NVRTC makes, cg_cache_get_or_compile for
 * every one the kernel cache returns (its key covers source, options,
 * compiler and architecture, so a hit is that source's CUBIN), and
 * fe_pack_plan (frontend/pack_plan.h) for a pack's CUBINs: the source of
 * their plan as built again from the pack's model record and found equal to
 * the pack's, never the pack's own text (without the prelude, which the
 * emulator replaces anyway).  The simulated driver looks an image up by the SHA-256 of
 * its bytes; an image nobody noted is unknown to it and refused, never
 * matched by guesswork.
 *
 * Notes are kept only while the simulation is asked for (DITC_CUDA_SIM set
 * and not "0", read by cg_cuda_sim_requested: the one place that names the
 * variable); otherwise noting is a no-op.  Notes live until the process
 * ends.  Thread-safe.
 */
#ifndef DITC_CODEGEN_CUBIN_SOURCE_H
#define DITC_CODEGEN_CUBIN_SOURCE_H

#include <stddef.h>

/* 1 when DITC_CUDA_SIM asks for the simulated CUDA driver, else 0. */
int cg_cuda_sim_requested(void);

/* What a CUBIN was compiled from: NVRTC's source text (with the dialect
 * prelude as its first lines, or pre-included through an option), the
 * program name, the target and NVRTC's options. */
typedef struct {
  const char *source;
  const char *name;
  const char *arch;
  const char *const *options;
  int n_options;
} CgCubinSource;

/* Remember that the size bytes at cubin were compiled from src (its strings
 * are copied).  A no-op unless cg_cuda_sim_requested(). */
void cg_cubin_source_note(const void *cubin, size_t size, const CgCubinSource *src);

/* 1 and *out (valid for the life of the process) when those bytes were
 * noted, else 0. */
int cg_cubin_source_find(const void *cubin, size_t size, CgCubinSource *out);

#endif
