/*
 * tuning.c - launch geometry per GPU architecture: the table of rows every
 * kernel template takes its block shape from (CgTuning, cg_internal.h), how
 * an architecture finds its row, and the check that holds each row to its
 * architecture's documented limits.
 */
#include <stdio.h>
#include <string.h>

#include "codegen/cg_internal.h"

/* One row per architecture.  The limits are the CUDA C++ Programming Guide's
 * compute-capability table (and the Ampere/Ada/Hopper tuning guides): shared
 * memory per block with opt-in and per SM, resident threads per SM.  The SM
 * count is a property of the product, not of the architecture, so no row
 * depends on it.  Every architecture has 64K registers per SM and at most
 * 1024 threads per block.  cg_tuning_check holds each row to them
 * (tests/unit/test_tuning.c runs it on every row).
 *
 * What a row decides today:
 *   - block_elementwise 256, rows_per_block 4 (128-thread row blocks),
 *     transpose 32x8 and block_row_thread 128 are the same in every row:
 *     they divide the resident threads of every SM (1024, 1536, 2048) evenly,
 *     and no documented difference between these architectures argues for
 *     another value, so each row keeps the default until it is measured on
 *     the GPU.
 *   - The fused attention block (attention.c) holds QR = warps * rows query
 *     rows plus one 32-key tile of K and V in shared memory: at head dim 128,
 *     42 KB for QR = 16, 52 KB for QR = 32.  Its smem decides how many blocks
 *     an SM holds (each block also costs 1 KB reserved by the system), and QR
 *     how often the K/V tiles are read (once per block: half as often at
 *     QR = 32).  That is where the architectures differ (below). */
static const CgTuning tunings[] = {
    /* Any other architecture (newer ones without a row, and the emulator
     * without --arch): only what every target allows - 48 KB per block
     * without opt-in, 64 KB per SM and 1024 threads per SM (sm_75, the
     * smallest NVRTC 13 targets).  Attention: 4 warps x 4 rows, 42 KB
     * (scalar); tensor cores (every architecture from sm_80 on has
     * mma.sync): 4 warps x 16 rows, 35 KB. */
    {"default", 48 * 1024, 64 * 1024, 1024, 256, 4, 32, 8, 128, 4, 4, 1},
    /* Turing: the default's limits, and no bf16 mma.sync or cp.async (PTX ISA:
     * sm_80), so f16/bf16 attention stays scalar. */
    {"sm_75", 48 * 1024, 64 * 1024, 1024, 256, 4, 32, 8, 128, 4, 4, 0},
    /* A100: 163 KB per block by opt-in, 164 KB and 2048 threads per SM.
     * Attention 8 warps x 4 rows = 32 query rows, 52 KB (past 48 KB: the
     * opt-in): 3 blocks per SM = 24 resident warps, where the default's
     * 42 KB blocks give 3 x 4 = 12, and each K/V tile serves twice the rows. */
    {"sm_80", 163 * 1024, 164 * 1024, 2048, 256, 4, 32, 8, 128, 8, 4, 1},
    /* GA10x: 99 KB per block, 100 KB and 1536 threads per SM.  Two 42 KB
     * attention blocks fit an SM, 52 KB blocks only one; so QR stays 16, spread
     * over 8 warps x 2 rows: 2 blocks = 16 resident warps instead of the
     * default's 8, the same shared memory, half the accumulators per thread. */
    {"sm_86", 99 * 1024, 100 * 1024, 1536, 256, 4, 32, 8, 128, 8, 2, 1},
    /* Ada: the same shared memory and threads per SM as sm_86 (99 KB per
     * block, 100 KB and 1536 threads per SM), so the same choice. */
    {"sm_89", 99 * 1024, 100 * 1024, 1536, 256, 4, 32, 8, 128, 8, 2, 1},
    /* H100: 227 KB per block by opt-in, 228 KB and 2048 threads per SM.  The
     * sm_80 attention block (52 KB): 4 blocks per SM = 32 resident warps.  A
     * larger QR (64 rows, 72 KB: 3 blocks) would trade warps for fewer K/V
     * reads; that waits for a measurement, so the row keeps sm_80's values and
     * the two share one plan. */
    {"sm_90", 227 * 1024, 228 * 1024, 2048, 256, 4, 32, 8, 128, 8, 4, 1},
};

const CgTuning *cg_tuning_rows(int *n) {
  *n = (int)(sizeof tunings / sizeof *tunings);
  return tunings;
}

/* "sm_90" matches the row "sm_90", and so do "sm_90a" and "sm_90f" (the same
 * SM with architecture- or family-specific features). */
const CgTuning *cg_tuning_for(const char *arch) {
  for (size_t i = 1; arch && i < sizeof tunings / sizeof *tunings; i++) {
    size_t len = strlen(tunings[i].arch);
    const char *rest = arch + len;
    if (!strncmp(arch, tunings[i].arch, len) && (!*rest || ((*rest == 'a' || *rest == 'f') && !rest[1])))
      return &tunings[i];
  }
  return &tunings[0];
}

const char *cg_tuning_name(const char *arch) { return cg_tuning_for(arch)->arch; }

int cg_tuning_same(const char *a, const char *b) {
  const CgTuning *x = cg_tuning_for(a), *y = cg_tuning_for(b);
  return x->block_elementwise == y->block_elementwise && x->rows_per_block == y->rows_per_block &&
         x->transpose_tile == y->transpose_tile && x->transpose_rows == y->transpose_rows &&
         x->block_row_thread == y->block_row_thread && x->attn_warps == y->attn_warps &&
         x->attn_rows_per_warp == y->attn_rows_per_warp && x->tensor_cores == y->tensor_cores;
}

/* A block of `threads` threads: at most 1024, whole warps when `warps`, and
 * whole blocks fill the SM's resident threads (a 384-thread block on a
 * 1024-thread SM would leave a quarter of them idle at best). */
static int check_block(const CgTuning *t, const char *field, int64_t threads, int warps, IrErr *err) {
  if (threads < 1 || threads > 1024)
    return ir_errf(err, "tuning row %s: %s gives %lld threads per block (1 to 1024)", t->arch, field,
                   (long long)threads);
  if (warps && threads % 32)
    return ir_errf(err, "tuning row %s: %s gives %lld threads per block, not whole warps", t->arch, field,
                   (long long)threads);
  if (t->threads_sm % threads)
    return ir_errf(err, "tuning row %s: %s gives %lld threads per block, which does not divide the %d an SM holds",
                   t->arch, field, (long long)threads, t->threads_sm);
  return 0;
}

int cg_tuning_check(const CgTuning *t, IrErr *err) {
  if (t->smem_block < 48 * 1024 || t->smem_block + 1024 > t->smem_sm || t->threads_sm < 1024)
    return ir_errf(err, "tuning row %s: its limits do not describe a GPU (%d B per block, %d B and %d threads per SM)",
                   t->arch, t->smem_block, t->smem_sm, t->threads_sm);
  if (t->rows_per_block < 1 || t->transpose_tile < 1 || t->transpose_rows < 1 || t->attn_warps < 1 ||
      t->attn_rows_per_warp < 1)
    return ir_errf(err, "tuning row %s: a count below 1", t->arch);
  if (check_block(t, "block_elementwise", t->block_elementwise, 1, err) ||
      check_block(t, "block_row_thread", t->block_row_thread, 1, err) ||
      check_block(t, "rows_per_block (32 lanes each)", 32 * (int64_t)t->rows_per_block, 1, err) ||
      check_block(t, "transpose_tile x transpose_rows", (int64_t)t->transpose_tile * t->transpose_rows, 1, err) ||
      check_block(t, "attn_warps (32 lanes each)", 32 * (int64_t)t->attn_warps, 1, err))
    return -1;
  /* the transpose tile is static shared memory: 48 KB on every architecture */
  int64_t tile = (int64_t)sizeof(float) * t->transpose_tile * (t->transpose_tile + 1);
  if (tile > 48 * 1024)
    return ir_errf(err, "tuning row %s: a %dx%d transpose tile needs %lld bytes of static shared memory (48 KB)",
                   t->arch, t->transpose_tile, t->transpose_tile, (long long)tile);
  int64_t attn = cg_attention_smem(t->attn_warps * t->attn_rows_per_warp, CG_ATTN_MAX_DIM, CG_ATTN_MAX_DIM);
  if (attn > t->smem_block)
    return ir_errf(err, "tuning row %s: attention blocks of %d x %d rows need %lld bytes of shared memory at head "
                   "dim %d; a block may have %d",
                   t->arch, t->attn_warps, t->attn_rows_per_warp, (long long)attn, CG_ATTN_MAX_DIM, t->smem_block);
  if (attn + 1024 > t->smem_sm)
    return ir_errf(err, "tuning row %s: an attention block (%lld bytes + 1 KB reserved) does not fit an SM's %d",
                   t->arch, (long long)attn, t->smem_sm);
  int64_t mma = cg_attention_smem_mma(t->attn_warps, CG_ATTN_MAX_DIM, CG_ATTN_MAX_DIM);
  if (t->tensor_cores && (mma > t->smem_block || mma + 1024 > t->smem_sm))
    return ir_errf(err, "tuning row %s: tensor-core attention blocks of %d warps need %lld bytes of shared memory "
                   "at head dim %d; a block may have %d",
                   t->arch, t->attn_warps, (long long)mma, CG_ATTN_MAX_DIM, t->smem_block);
  return 0;
}
