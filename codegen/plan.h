/*
 * plan.h - an execution plan: what the code generator produces and every
 * device backend (emulated, CUDA) runs.
 *
 * A plan is one IR entry (forward, forward_with_cfg) lowered at a fixed batch
 * and precision into
 *   - one CUDA C translation unit holding every generated kernel (the kernel
 *     dialect of codegen/emu_prelude.h: NVRTC compiles it behind
 *     cuda_prelude.h, the host compiler behind emu_prelude.h);
 *   - a straight-line list of steps: kernel launches and matrix products
 *     (served by cuBLASLt on a GPU, by a reference GEMM on the emulator);
 *   - a memory layout: every value lives at a byte offset in one of three
 *     spaces: the activation arena, the weights blob, or nowhere (aliases).
 *
 * Kernels take one argument, `DitcArgs` (below), by value: the base pointers
 * of the spaces and the launch's parameters, the byte offsets in them where
 * the kernel's operands start.  Every shape and stride is a constant in the
 * generated source; the offsets are not, so kernels whose text would differ
 * only in where their operands live (the blocks of a DiT) are one kernel,
 * launched by each step with its own offsets (CgStep.params).  The same
 * launch sequence can be captured once in a CUDA graph.
 */
#ifndef DITC_PLAN_H
#define DITC_PLAN_H

#include "ir/ir.h"

/* The most parameters one kernel takes. */
#define CG_MAX_PARAMS 64

/* The one kernel argument.  The generated source declares it with
 * o[max(CgPlan.n_params, 1)]: a prefix of this struct, which is what a
 * backend passes (kernels read sizeof their own declaration). */
typedef struct {
  char *act;        /* activation arena (inputs and outputs live here too) */
  const char *w;    /* weights blob */
  long long o[CG_MAX_PARAMS]; /* the step's parameters: byte offsets into act or w */
} DitcArgs;

typedef enum { CG_SPACE_ACT, CG_SPACE_WEIGHTS } CgSpace;

typedef struct {
  CgSpace space;
  int64_t offset;   /* bytes */
} CgRef;

typedef enum { CG_EPI_NONE, CG_EPI_BIAS, CG_EPI_GELU_TANH_BIAS } CgEpilogue;

/* D[b] = op(A[b]) op(B[b]) (+ bias[n], then GELU for GELU_TANH_BIAS), all
 * row-major.  op(A) is [m, k], op(B) is [k, n], D is [m, n].  lda/ldb/ldd are
 * row strides and stride_* batch strides, in elements; a batch stride of 0
 * reuses one matrix for every batch entry (broadcast).  Accumulation is f32.
 * A and B share `dtype`; D and the bias are stored in `d_dtype`, which is
 * either `dtype` or f32 (f16/bf16 operands with an f32 result, as cuBLASLt's
 * COMPUTE_32F allows).  d_dtype was added after the first version of this
 * header: whoever fills a CgGemm must set it (IR_F32 is 0, so a zeroed field
 * means an f32 result, not "same as dtype").
 *
 * Integer GEMMs (added later; w8a8's qlinear): dtype IR_I8 with d_dtype
 * IR_I32 is cuBLASLt's IMMA matmul, CUBLAS_COMPUTE_32I with an int32 scale
 * type: D = A B summed exactly in 32-bit integers, alpha 1, no epilogue
 * (cuBLASLt's int32-result path has none).  cuBLASLt runs it only in the TN
 * form, which in these row-major terms is trans_a 0 and trans_b 1 (A [m, k]
 * rows, B [n, k] rows: a linear's activations and weight), with n and k,
 * lda, ldb and ldd multiples of 4 and every operand 16-byte aligned
 * (cg_plan_check refuses anything else, naming the rule).
 *
 * FP8 GEMMs (later still; fp8's qlinear_e4m3): dtype IR_E4M3 with d_dtype
 * IR_F32 is cuBLASLt's FP8 matmul, CUBLAS_COMPUTE_32F, f32 C and D, no scale
 * pointers (the readers apply the per-tensor scales) and no epilogue, alpha
 * 1: D = A B, the decoded products summed in f32.  The TN form only, n and k,
 * lda and ldb multiples of 16, ldd of 4, 16-byte aligned operands, and a
 * plan tuned for sm_89 or later (or the default row). */
typedef struct {
  IrDType dtype;            /* storage of A and B */
  int trans_a, trans_b;
  int64_t m, n, k, batch;
  int64_t lda, ldb, ldd;
  int64_t stride_a, stride_b, stride_d;
  CgRef a, b, d, bias;      /* bias used when epilogue != NONE */
  CgEpilogue epilogue;
  float alpha;              /* D = alpha * AB (+ bias) */
  IrDType d_dtype;          /* storage of D and bias: dtype or IR_F32 */
} CgGemm;

typedef enum { CG_STEP_KERNEL, CG_STEP_GEMM } CgStepKind;

/* The execution unit a step's arithmetic runs on (codegen/roofline.h). */
typedef enum {
  CG_UNIT_MEMORY,   /* no contraction: moves and transforms data */
  CG_UNIT_SIMT_F32, /* FFMA on the CUDA cores */
  CG_UNIT_TC_TF32,
  CG_UNIT_TC_F16,
  CG_UNIT_TC_BF16,
  CG_UNIT_TC_FP8,
  CG_UNIT_TC_INT8,
  CG_UNIT_COUNT
} CgUnit;

typedef struct {
  CgStepKind kind;
  int node;                 /* IR node position it came from (for messages) */
  const char *what;         /* "%42 softmax blocks.0.attn": for error messages */
  /* CG_STEP_KERNEL */
  int kernel;               /* index into CgPlan.kernels */
  uint32_t grid[3], block[3];
  uint32_t shared_bytes;    /* dynamic shared memory */
  /* CG_STEP_GEMM */
  CgGemm gemm;
  /* Bytes this step reads from and writes to the activation arena and reads
   * from the weights blob: each distinct element of what it reads or writes
   * once (a broadcast operand counts once, a slice only its part).  Filled by
   * cg_plan_build for `compile --report`; not stored in packs (0 there).
   * (Added after the first version of this header.) */
  int64_t act_read, act_written, weight_read;
  /* Its arithmetic, for the roofline (codegen/roofline.h): 2 x the multiply-
   * accumulates of the contractions it computes (0 when none) and the unit
   * they run on.  Filled like act_read, not stored in packs.  (Added later.) */
  double flops;
  CgUnit unit;
  /* CG_STEP_KERNEL: the launch's DitcArgs.o[0 .. n_params-1] (the rest
   * zero); each is a byte offset in the arena or the blob that the kernel
   * adds to a.act or a.w.  (Added with pack format 6.) */
  int n_params;
  const int64_t *params;
  /* The activation buffers a kernel step leaves written, for the check of
   * NaN and Inf (backend.h: locate): arena byte offset, elements and storage
   * dtype, up to two, out_elems[k] 0 for none; set on the last launch of a
   * node's lowering only (a GEMM step's is its D).  Filled by cg_plan_build,
   * not stored in packs (the backends run the plan rebuilt from the model
   * record).  (Added later.) */
  int64_t out_offset[2], out_elems[2];
  IrDType out_dtype[2];
} CgStep;

typedef struct {
  const char *name;         /* function name in the source */
  const char *nodes;        /* IR node(s) it computes, as in its banner */
} CgKernel;

/* A graph input or output: where it lives in the arena, at this batch. */
typedef struct {
  const char *name;
  IrDType dtype;
  int rank;
  int64_t shape[IR_MAX_RANK];
  int64_t offset;           /* in the activation arena */
} CgIo;

/* A weight tensor in the blob, converted to its storage dtype.
 *
 * Besides PARAMs and CONSTs, a weight may be computed from other weights
 * when the blob is filled (added after the first version of this header):
 * a node that depends on PARAM/CONST nodes only (e.g. hoist-adaln's
 * concat(W_0, ..., W_depth)) is a constant of the plan, not a step.  With
 * n_in > 0 the value is op(in[0], ..., in[n_in - 1]) with attr, the inputs
 * being earlier entries of CgPlan.weights read as flat row-major arrays (an
 * input may be a reshape of the entry: only its element count matters); op
 * is CONCAT, SLICE, PERMUTE, RESHAPE, CAST or REDUCE_MEAN over float values; param_id is -1
 * and const_data NULL.  offset -1: not stored in the blob, only read by
 * computed weights (the stacked blocks' weights stay out of it). */
typedef struct {
  const char *name;         /* PARAM name; a computed weight's node ("%12 concat") */
  IrDType dtype;
  int rank;
  int64_t shape[IR_MAX_RANK];
  int64_t offset;           /* in the weights blob, or -1 (see above) */
  int param_id;             /* IR node id of the PARAM (for binding), or -1 for a CONST */
  const float *const_data;  /* CONST: its f32 values (arena-owned) */
  IrOp op;                  /* computed weights: the op (n_in > 0) */
  IrAttrs attr;             /* its attributes (axis, start, perm, to) */
  int n_in;                 /* 0: a PARAM or CONST */
  const int *in;            /* indices of earlier weights (arena-owned) */
} CgWeight;

typedef struct {
  Arena arena;              /* owns every string and array below */
  const char *entry;        /* "forward", ... */
  IrDType precision;        /* matrix-product operands: f32, f16 or bf16 (codegen/lower.c: the policy) */
  int64_t batch;
  const char *source;       /* the generated CUDA C translation unit */
  CgKernel *kernels;
  int n_kernels;
  CgStep *steps;
  int n_steps;
  int64_t arena_bytes;      /* activation arena size */
  /* The arena size if no buffers shared space (what the plan-memory pass
   * saves is the difference; added after the first version). */
  int64_t arena_unplanned_bytes;
  CgWeight *weights;
  int n_weights;
  int64_t weights_bytes;
  CgIo *inputs;             /* in ir_graph_inputs() order */
  int n_inputs;
  CgIo *outputs;            /* in graph output order */
  int n_outputs;
  /* Arena offset of an int32 status word, or -1 when the plan has none.  The
   * plan's first step zeroes it; kernels that meet bad data set bits (1: an
   * embedding index out of range, clamped); a backend checks it after a run.
   * (Added after the first version of this header.) */
  int64_t status_offset;
  /* The launch-tuning row the kernels were generated with ("sm_90",
   * "default"): the CG_* geometry in the source and every launch step's
   * grid, block and shared bytes follow it.  (Added later.) */
  const char *tuning;
  /* The most parameters any kernel takes (added with pack format 6); the
   * source declares DitcArgs.o with that many, at least 1. */
  int n_params;
} CgPlan;

/* A launch's DitcArgs.o from its step (codegen/emit.c); act and w untouched. */
void cg_step_args(const CgStep *st, DitcArgs *a);

/* Bits of the status word. */
#define CG_STATUS_EMBEDDING_RANGE 1

typedef struct {
  IrDType precision;        /* f32 (default), f16, bf16 */
  int64_t batch;            /* >= 1 */
  const char *model;        /* for the source banner only; NULL is fine (added later) */
  /* The GPU architecture the launch geometry is tuned for ("sm_86", "sm_90a");
   * NULL, or one without a row of its own, takes the default row (added
   * later).  The plan computes the same values for every row. */
  const char *arch;
} CgOptions;
/* Which nodes share a kernel is the IR's fusion groups (IrNode.fuse, set by
 * the fuse pass), whether buffers share arena space its memplan (set by the
 * plan-memory pass): `--passes none` lowers one kernel per node into an
 * arena without reuse. */

/* The tuning row architecture `arch` gets: its name ("sm_90" for sm_90 and
 * sm_90a; "default" for NULL and architectures without a row). */
const char *cg_tuning_name(const char *arch);
/* 1 when architectures a and b get the same launch geometry: one plan then
 * serves both. */
int cg_tuning_same(const char *a, const char *b);

/* Lower graph g (after passes) into a plan.  Errors name the node. */
int cg_plan_build(IrGraph *g, const CgOptions *o, CgPlan **out, IrErr *err);
void cg_plan_free(CgPlan *p);

/* The f32 values of a model's parameters, by PARAM node id: by_id[id] for
 * 0 <= id < n, NULL where unbound.  Whoever binds a checkpoint fills it
 * (runtime/weights.h: weights_values()); the code generator only reads it. */
typedef struct {
  int n;
  const float *const *by_id;
} CgParamValues;

/* Fill the weights blob (weights_bytes, host memory) from the bound values,
 * computing the computed weights (in f32, from their inputs' values) and
 * converting each to its CgWeight's dtype. */
int cg_plan_fill_weights(const CgPlan *p, CgParamValues values, void *blob, IrErr *err);
/* Check computed weight i of p (no-op for a PARAM/CONST): its op, inputs
 * (earlier weights, float), attributes and element counts fit together, so
 * filling it reads and writes only inside its arrays.  The pack reader runs
 * it on every weight.  0 or -1 with a message naming the weight. */
int cg_weight_check(const CgPlan *p, int i, IrErr *err);

/* The one validation of a plan (plan_check.c): run on every plan the code
 * generator builds and every plan read from a pack.  Checks every relation
 * between its fields (I/O inside the arena and disjoint, launches within the
 * CUDA limits and the tuning row's, GEMM operands inside their spaces,
 * weights inside the blob and disjoint, ...).  0, or -1 with a message
 * naming the part of the plan. */
int cg_plan_check(const CgPlan *p, IrErr *err);

/* Runs one GEMM step on the host: the reference the emulated backend and the
 * tests use.  act is the activation arena, w the weights blob.  Operands are
 * widened to f32, multiplied with f32 accumulation, the epilogue applied in
 * f32 and D rounded once to g->d_dtype; i8 operands are multiplied exactly in
 * int32 (an int32 D).  (codegen/gemm_ref.c) */
void cg_gemm_ref(const CgGemm *g, char *act, const char *w);

/* Bump when generated code changes meaning: it is part of every cache key. */
#define CG_CODEGEN_VERSION "ditc-codegen-5"

#endif
