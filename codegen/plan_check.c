/*
 * plan_check.c - cg_plan_check(): the one validation of an execution plan,
 * run on what the code generator builds (cg_plan_build) and on every plan a
 * pack reader hands out (pack_read.c), so that a plan a backend runs is
 * consistent however it was made.
 *
 * The pack reader only parses: it bounds each number by its type (sizes to
 * 2^48, dims to 2^31) and copies strings; every relation between fields is
 * checked here:
 *   - the plan: batch >= 1, a matrix precision, a tuning row that exists,
 *     0 to CG_MAX_PARAMS kernel parameters (each launch's offsets within
 *     the larger of the arena and the blob);
 *   - inputs and outputs: at least one of each, names unique among their
 *     kind, each inside the arena, no two overlapping (nor the status word);
 *   - steps: at least one; a launch names a kernel, has a grid and block the
 *     CUDA limits allow (grid.x < 2^31, y and z <= 65535, at most 1024
 *     threads a block), dynamic shared memory within its tuning row's
 *     per-block limit, and no more threads in all than the work a plan of
 *     its sizes can have (so a hand-made grid of 2^31 blocks is refused
 *     instead of running for ever on the emulated device); a GEMM's operands
 *     lie inside their spaces, it writes only the arena, its output batches
 *     do not overlap;
 *   - weights: stored ones inside the blob and disjoint, parameters named
 *     and each name once, constants with data, computed weights well formed
 *     (cg_weight_check).
 * Messages name the part of the plan ("input 1 'y'", "step 12 (%42 ...)").
 */
#include <stdio.h>
#include <string.h>

#include "codegen/cg_internal.h"

/* The most threads one launch may start, in all: every generated kernel has a
 * thread (or a fraction of a warp) per element it writes or per row it
 * reduces, and no value is larger than the arena or the blob holding it. */
static __int128 max_threads(const CgPlan *p) {
  return 8 * ((__int128)p->arena_bytes + p->weights_bytes) + ((__int128)1 << 20);
}

static int64_t io_bytes(const CgIo *io) {
  int64_t n = (int64_t)ir_dtype_size(io->dtype);
  for (int i = 0; i < io->rank; i++) n *= io->shape[i];
  return n;
}

static int overlap(int64_t a, int64_t na, int64_t b, int64_t nb) {
  return na > 0 && nb > 0 && a < b + nb && b < a + na;
}

static int check_io(const CgPlan *p, const CgIo *io, int n, const char *what, IrErr *err) {
  if (n < 1) return ir_errf(err, "the plan has no %ss", what);
  for (int i = 0; i < n; i++) {
    if (!io[i].name || !io[i].name[0]) return ir_errf(err, "%s %d has no name", what, i);
    if (io[i].rank < 0 || io[i].rank > IR_MAX_RANK) return ir_errf(err, "%s '%s' has rank %d", what, io[i].name, io[i].rank);
    for (int k = 0; k < io[i].rank; k++)
      if (io[i].shape[k] < 0) return ir_errf(err, "%s '%s' has a negative dimension", what, io[i].name);
    int64_t b = io_bytes(&io[i]);
    if (io[i].offset < 0 || io[i].offset + b > p->arena_bytes)
      return ir_errf(err, "%s '%s' (%lld bytes at %lld) lies outside the %lld-byte arena", what, io[i].name,
                     (long long)b, (long long)io[i].offset, (long long)p->arena_bytes);
    for (int j = 0; j < i; j++) {
      if (!strcmp(io[i].name, io[j].name)) return ir_errf(err, "%ss %d and %d are both named '%s'", what, j, i, io[i].name);
      if (overlap(io[i].offset, b, io[j].offset, io_bytes(&io[j])))
        return ir_errf(err, "%ss '%s' and '%s' overlap in the arena", what, io[j].name, io[i].name);
    }
    if (p->status_offset >= 0 && overlap(io[i].offset, b, p->status_offset, 4))
      return ir_errf(err, "%s '%s' overlaps the status word", what, io[i].name);
  }
  return 0;
}

/* Bytes spanned by `batch` matrices of rows x cols with row stride ld, stride apart. */
static int span_ok(const CgPlan *p, const char *what, CgRef ref, int64_t batch, int64_t stride, int64_t rows,
                   int64_t ld, int64_t cols, size_t esize, IrErr *err) {
  if (ld < cols)
    return ir_errf(err, "GEMM operand %s: row stride %lld is below its %lld columns", what, (long long)ld,
                   (long long)cols);
  if (ref.offset < 0 || stride < 0 || batch < 1 || rows < 1)
    return ir_errf(err, "GEMM operand %s: a negative offset, stride or extent", what);
  __int128 last = (__int128)(batch - 1) * stride + (__int128)(rows - 1) * ld + cols;
  __int128 end = ref.offset + last * (__int128)esize;
  int64_t limit = ref.space == CG_SPACE_ACT ? p->arena_bytes : p->weights_bytes;
  if (end > limit)
    return ir_errf(err, "GEMM operand %s ends at byte %lld, past the %lld-byte %s", what,
                   (long long)(end > ((int64_t)1 << 62) ? ((int64_t)1 << 62) : end), (long long)limit,
                   ref.space == CG_SPACE_ACT ? "arena" : "weights blob");
  return 0;
}

static int is_matrix_dtype(IrDType t) { return t == IR_F32 || t == IR_F16 || t == IR_BF16; }

/* The 8-bit GEMMs' operands (one-byte A and B, a four-byte D) at 16-byte
 * aligned bytes, their batches too. */
static int aligned16(const CgGemm *g, const char *dt, const char *rule, IrErr *err) {
  const int64_t offs[] = {g->a.offset, g->b.offset, g->d.offset, g->stride_a, g->stride_b, 4 * g->stride_d};
  for (int i = 0; i < 6; i++)
    if (offs[i] % 16)
      return ir_errf(err, "%s GEMM operand %s at byte %lld: %s here needs 16-byte aligned operands", dt,
                     (const char *[]){"A", "B", "D", "A's batches", "B's batches", "D's batches"}[i], (long long)offs[i], rule);
  return 0;
}

/* cuBLASLt's rules for its 8-bit matmuls, in plan.h's row-major terms, one
 * row per operand type: the TN form (cuBLASLt's A, our B, transposed; its B,
 * our A, not), its m (our n) and k multiples of nk, the leading dimensions of
 * A and B multiples of ld and of D multiples of ldd, the pointers 16-byte
 * aligned (cuBLASLt asks 4 bytes for IMMA, 16 for its fast kernels and for
 * FP8: the plan promises 16), alpha 1 and no epilogue.
 * - IMMA (int8, CUBLAS_COMPUTE_32I) over the regular (column-major) ordering:
 *   an int32 result, which takes no epilogue;
 * - FP8 (e4m3 A and B, CUBLAS_COMPUTE_32F): here an f32 D without scale
 *   pointers or epilogue (the readers apply the per-tensor scales and the
 *   bias), compute capability 8.9 or later (a plan tuned for an older
 *   architecture is refused; the default row is architecture-neutral). */
typedef struct {
  IrDType dtype, d_dtype;
  const char *rule;
  int min_sm, nk, ld, ldd;
  const char *ld_needs, *epi_says; /* the leading dimension rule and the no-epilogue rule, in words */
} Gemm8Rules;

static const Gemm8Rules gemm8_rules[] = {
  {IR_I8, IR_I32, "cuBLASLt's IMMA (int8) matmul", 0, 4, 4, 4, "leading dimensions that are multiples of 4",
   "%s with an i32 result has neither (alpha 1)"},
  {IR_E4M3, IR_F32, "cuBLASLt's FP8 matmul", 89, 16, 16, 4, "16-byte rows (lda, ldb multiples of 16, ldd of 4)",
   "the plan's FP8 GEMMs have neither (alpha 1)"},
};

static int check_gemm8(const CgPlan *p, const CgGemm *g, const Gemm8Rules *r, IrErr *err) {
  const char *dt = ir_dtype_name(r->dtype);
  int sm;
  if (r->min_sm && p->tuning && sscanf(p->tuning, "sm_%d", &sm) == 1 && sm < r->min_sm)
    return ir_errf(err, "%s GEMM in a plan for %s: %s needs sm_%d or later", dt, p->tuning, r->rule, r->min_sm);
  if (g->d_dtype != r->d_dtype)
    return ir_errf(err, "GEMM with %s operands writes %s (%s %s %s)", dt, ir_dtype_name(g->d_dtype), r->rule,
                   r->min_sm ? "here gives" : "gives", ir_dtype_name(r->d_dtype));
  if (g->trans_a || !g->trans_b)
    return ir_errf(err, "%s GEMM with trans_a %d, trans_b %d: %s runs only the TN form (A rows [m, k], B rows [n, k])", dt,
                   g->trans_a, g->trans_b, r->rule);
  if (g->n % r->nk || g->k % r->nk)
    return ir_errf(err, "%s GEMM with n = %lld, k = %lld: %s needs both multiples of %d", dt, (long long)g->n, (long long)g->k,
                   r->rule, r->nk);
  if (g->lda % r->ld || g->ldb % r->ld || g->ldd % r->ldd)
    return ir_errf(err, "%s GEMM with lda %lld, ldb %lld, ldd %lld: %s needs %s", dt, (long long)g->lda, (long long)g->ldb,
                   (long long)g->ldd, r->rule, r->ld_needs);
  if (aligned16(g, dt, r->rule, err)) return -1;
  if (g->epilogue != CG_EPI_NONE || g->alpha != 1.0f) {
    char says[160];
    snprintf(says, sizeof says, r->epi_says, r->rule);
    return ir_errf(err, "%s GEMM with an epilogue or alpha %g: %s", dt, (double)g->alpha, says);
  }
  return 0;
}

static int check_gemm(const CgPlan *p, const CgGemm *g, IrErr *err) {
  const Gemm8Rules *r8 = NULL;
  for (size_t i = 0; i < sizeof gemm8_rules / sizeof gemm8_rules[0]; i++)
    if (gemm8_rules[i].dtype == g->dtype) r8 = &gemm8_rules[i];
  if (r8 && check_gemm8(p, g, r8, err)) return -1;
  if (!r8 && (!is_matrix_dtype(g->dtype) || (g->d_dtype != g->dtype && g->d_dtype != IR_F32)))
    return ir_errf(err, "GEMM with %s operands writes %s (only the operands' dtype or f32)", ir_dtype_name(g->dtype),
                   ir_dtype_name(g->d_dtype));
  if (g->m < 1 || g->n < 1 || g->k < 1 || g->batch < 1) return ir_errf(err, "GEMM with an empty extent");
  if (g->d.space != CG_SPACE_ACT) return ir_errf(err, "GEMM writes into the weights blob");
  if (g->epilogue < CG_EPI_NONE || g->epilogue > CG_EPI_GELU_TANH_BIAS) return ir_errf(err, "GEMM with an unknown epilogue");
  if (g->batch > 1 && g->stride_d < g->m * g->ldd) return ir_errf(err, "GEMM output batches overlap");
  size_t es = ir_dtype_size(g->dtype), ds = ir_dtype_size(g->d_dtype);
  int64_t ar = g->trans_a ? g->k : g->m, ac = g->trans_a ? g->m : g->k;
  int64_t br = g->trans_b ? g->n : g->k, bc = g->trans_b ? g->k : g->n;
  if (span_ok(p, "A", g->a, g->batch, g->stride_a, ar, g->lda, ac, es, err) ||
      span_ok(p, "B", g->b, g->batch, g->stride_b, br, g->ldb, bc, es, err) ||
      span_ok(p, "D", g->d, g->batch, g->stride_d, g->m, g->ldd, g->n, ds, err))
    return -1;
  if (g->epilogue != CG_EPI_NONE && span_ok(p, "bias", g->bias, 1, 0, 1, g->n, g->n, ds, err)) return -1;
  return 0;
}

static int check_launch(const CgPlan *p, const CgTuning *t, const CgStep *s, IrErr *err) {
  if (s->kernel < 0 || s->kernel >= p->n_kernels) return ir_errf(err, "launches kernel %d of %d", s->kernel, p->n_kernels);
  static const uint32_t grid_max[3] = {2147483647u, 65535, 65535};
  for (int i = 0; i < 3; i++) {
    if (s->grid[i] < 1 || s->grid[i] > grid_max[i])
      return ir_errf(err, "grid %c = %u is outside [1, %u]", "xyz"[i], s->grid[i], grid_max[i]);
    if (s->block[i] < 1) return ir_errf(err, "block %c = 0", "xyz"[i]);
  }
  /* parameters: the kernel reads a.o[0 .. n_params-1] as offsets into act or w */
  if (s->n_params < 0 || s->n_params > p->n_params || (s->n_params && !s->params))
    return ir_errf(err, "%d parameters; the plan's kernels take at most %d", s->n_params, p->n_params);
  for (int i = 0; i < s->n_params; i++)
    if (s->params[i] < 0 || s->params[i] > (p->arena_bytes > p->weights_bytes ? p->arena_bytes : p->weights_bytes))
      return ir_errf(err, "parameter %d = %lld lies outside the arena and the weights blob", i,
                     (long long)s->params[i]);
  uint64_t threads = (uint64_t)s->block[0] * s->block[1] * s->block[2];
  if (threads > 1024) return ir_errf(err, "a block of %llu threads (at most 1024)", (unsigned long long)threads);
  if (s->shared_bytes > (uint32_t)t->smem_block)
    return ir_errf(err, "%u bytes of shared memory, over the %d a block may have on %s", s->shared_bytes,
                   t->smem_block, t->arch);
  __int128 all = (__int128)s->grid[0] * s->grid[1] * s->grid[2] * threads;
  if (all > max_threads(p))
    return ir_errf(err, "%.3g threads in all, more than a plan of %lld arena and %lld weight bytes can use",
                   (double)all, (long long)p->arena_bytes, (long long)p->weights_bytes);
  return 0;
}

static int64_t weight_bytes(const CgWeight *w) {
  int64_t n = (int64_t)ir_dtype_size(w->dtype);
  for (int i = 0; i < w->rank; i++) n *= w->shape[i];
  return n;
}

static int check_weights(const CgPlan *p, IrErr *err) {
  for (int i = 0; i < p->n_weights; i++) {
    const CgWeight *w = &p->weights[i];
    const char *name = w->name ? w->name : "?";
    if (w->rank < 0 || w->rank > IR_MAX_RANK) return ir_errf(err, "weight %d '%s' has rank %d", i, name, w->rank);
    for (int k = 0; k < w->rank; k++)
      if (w->shape[k] < 0) return ir_errf(err, "weight %d '%s' has a negative dimension", i, name);
    int64_t b = weight_bytes(w);
    if (w->offset < -1 || (w->offset >= 0 && w->offset + b > p->weights_bytes))
      return ir_errf(err, "weight %d '%s' lies outside the %lld-byte weights blob", i, name,
                     (long long)p->weights_bytes);
    if (w->n_in) {
      if (w->param_id >= 0 || w->const_data) return ir_errf(err, "computed weight %d '%s' with data or a parameter id", i, name);
      if (cg_weight_check(p, i, err)) return -1;
    } else if (w->param_id >= 0) {
      if (!w->name || !w->name[0]) return ir_errf(err, "weight %d: a parameter without a name", i);
      if (!ir_dtype_is_float(w->dtype)) return ir_errf(err, "parameter '%s' is stored as %s", name, ir_dtype_name(w->dtype));
    } else if (!w->const_data) {
      return ir_errf(err, "weight %d '%s': a constant without data", i, name);
    }
    for (int j = 0; j < i; j++) {
      const CgWeight *v = &p->weights[j];
      if (w->offset >= 0 && v->offset >= 0 && overlap(w->offset, b, v->offset, weight_bytes(v)))
        return ir_errf(err, "weights '%s' and '%s' overlap in the blob", v->name ? v->name : "?", name);
      if (w->param_id >= 0 && v->param_id >= 0 && w->param_id != v->param_id && !strcmp(w->name, v->name))
        return ir_errf(err, "two parameters are named '%s'", name);
    }
  }
  return 0;
}

int cg_plan_check(const CgPlan *p, IrErr *err) {
  if (p->batch < 1) return ir_errf(err, "batch %lld", (long long)p->batch);
  if (p->n_params < 0 || p->n_params > CG_MAX_PARAMS)
    return ir_errf(err, "kernels with %d parameters (0 to %d)", p->n_params, CG_MAX_PARAMS);
  if (!is_matrix_dtype(p->precision)) return ir_errf(err, "precision %s (f32, f16 or bf16)", ir_dtype_name(p->precision));
  int n_rows;
  const CgTuning *rows = cg_tuning_rows(&n_rows), *t = NULL;
  for (int i = 0; i < n_rows && !t; i++)
    if (p->tuning && !strcmp(p->tuning, rows[i].arch)) t = &rows[i];
  if (!t) {
    char known[256] = "";
    size_t used = 0;
    for (int i = 0; i < n_rows && used < sizeof known; i++)
      used += (size_t)snprintf(known + used, sizeof known - used, "%s%s", i ? ", " : "", rows[i].arch);
    return ir_errf(err, "tuning row '%.40s' does not exist (known: %s)", p->tuning ? p->tuning : "", known);
  }
  if (p->arena_bytes < 0 || p->weights_bytes < 0) return ir_errf(err, "negative arena or blob size");
  if (p->status_offset < -1 || (p->status_offset >= 0 && p->status_offset + 4 > p->arena_bytes))
    return ir_errf(err, "the status word lies outside the arena");
  if (check_io(p, p->inputs, p->n_inputs, "input", err) || check_io(p, p->outputs, p->n_outputs, "output", err))
    return -1;
  for (int i = 0; i < p->n_outputs; i++)
    for (int j = 0; j < p->n_inputs; j++)
      if (overlap(p->outputs[i].offset, io_bytes(&p->outputs[i]), p->inputs[j].offset, io_bytes(&p->inputs[j])))
        return ir_errf(err, "output '%s' overlaps input '%s' in the arena", p->outputs[i].name, p->inputs[j].name);
  if (p->n_steps < 1) return ir_errf(err, "the plan has no steps");
  for (int i = 0; i < p->n_steps; i++) {
    const CgStep *s = &p->steps[i];
    IrErr e;
    int bad = s->kind == CG_STEP_GEMM     ? check_gemm(p, &s->gemm, &e)
              : s->kind == CG_STEP_KERNEL ? check_launch(p, t, s, &e)
                                          : ir_errf(&e, "an unknown kind of step");
    if (bad) return ir_errf(err, "step %d (%s): %s", i, s->what ? s->what : "?", e.msg);
  }
  return check_weights(p, err);
}
