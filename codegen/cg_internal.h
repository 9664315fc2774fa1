/*
 * cg_internal.h - what the code generator's files share (not for other modules).
 *
 * lower.c decides how each IR node is lowered and drives the emission (with
 * views.c, fuse_lower.c, memplan.c, emit.c and weights.c, sharing lower.h); kernels.c holds one kernel template per op family; attention.c
 * the fused attention kernel; expr.c the elementwise expressions.  Emitters receive values already
 * placed in memory (CgView: a space, an offset and strides) and append a
 * kernel to the source plus its launch step, or GEMM steps, to the plan.
 */
#ifndef DITC_CG_INTERNAL_H
#define DITC_CG_INTERNAL_H

#include "codegen/plan.h"

/* ---- text ------------------------------------------------------------------ */

typedef struct {
  char *s;
  size_t len, cap;
} CgText;

void cg_text_printf(CgText *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A float literal that means exactly f in both C and CUDA ("0.125f", "DITC_INFINITY"). */
const char *cg_float_lit(float f, char buf[48]);

/* ---- launch tuning ----------------------------------------------------------- */

/* Launch geometry, one row per architecture; every kernel template takes its
 * block shape from here, and the generated source names them as CG_* macros,
 * so tuning is an entry in this table (kernels.c, which says why each row has
 * its values).  A row also carries the limits of its architecture that the
 * geometry must fit (cg_tuning_check). */
typedef struct {
  const char *arch;       /* "sm_90"; "default" for every architecture without a row */
  /* the architecture (CUDA C++ Programming Guide, compute capability table) */
  int smem_block;         /* shared memory bytes one block may have (above 48 KB by opt-in) */
  int smem_sm;            /* shared memory bytes per SM */
  int threads_sm;         /* resident threads per SM */
  /* the geometry */
  int block_elementwise;  /* CG_BLOCK_ELEMENTWISE: threads of elementwise / copy kernels */
  int rows_per_block;     /* CG_ROWS_PER_BLOCK: warps (one row each) of row kernels */
  int transpose_tile;     /* CG_TRANSPOSE_TILE: square tile edge of the tiled transpose */
  int transpose_rows;     /* CG_TRANSPOSE_ROWS: thread rows of the tiled transpose block */
  int block_row_thread;   /* CG_BLOCK_ROW_THREAD: threads of one-thread-per-row kernels */
  int attn_warps;         /* CG_ATTN_WARPS: warps of a fused attention block */
  int attn_rows_per_warp; /* CG_ATTN_ROWS_PER_WARP: query rows each warp carries (scalar kernel) */
  int tensor_cores;       /* mma.sync, ldmatrix and cp.async (sm_80 and later): f16/bf16 attention uses them */
} CgTuning;

const CgTuning *cg_tuning_for(const char *arch); /* NULL or no row: the default row */
/* The table itself (tests walk it); *n gets the row count. */
const CgTuning *cg_tuning_rows(int *n);
/* Is row t's geometry legal on its architecture: every block at most 1024
 * threads and whole warps where a kernel assumes them, whole blocks filling
 * threads_sm, the largest fused attention block's shared memory within
 * smem_block and smem_sm?  0, or -1 with a message naming the row and field. */
int cg_tuning_check(const CgTuning *t, IrErr *err);
/* Dynamic shared memory bytes of a fused attention block: `rows` query rows
 * of head dim d, value dim dv (attention.c's layout). */
int64_t cg_attention_smem(int rows, int64_t d, int64_t dv);
/* The execution unit of the attention kernel's products at this precision (roofline.h). */
CgUnit cg_attention_unit(const CgTuning *t, IrDType precision);

/* ---- memory planning (memplan.c) ------------------------------------------------ */

/* Greedy first-fit by decreasing size: buffer i needs bytes[i] (> 0) from
 * step first[i] to step last[i] inclusive; offset[i] gets a place in one
 * arena such that buffers whose step ranges overlap never overlap in memory.
 * Offsets are sums of sizes, so sizes that are multiples of the alignment
 * keep them aligned.  Returns the arena size. */
int64_t cg_memplan_first_fit(int n, const int64_t *bytes, const int *first, const int *last, int64_t *offset);

/* ---- values in memory -------------------------------------------------------- */

/* Where a stored value starts and in what dtype. */
typedef struct {
  CgSpace space;
  IrDType dtype;   /* storage dtype */
  int64_t offset;  /* bytes into its space */
} CgLoc;

/* A strided view of a stored value: element (i_0 .. i_{r-1}) lives at element
 * offset + sum i_j * stride[j] from loc. */
typedef struct {
  CgLoc loc;
  int rank;
  int64_t shape[IR_MAX_RANK];
  int64_t stride[IR_MAX_RANK];
  int64_t offset;
  /* A gathered operand (map kernels only): the view's element offset e is
   * into an embedding's [n, gather_dim] output, whose row r = e / gather_dim
   * is row idx[r] of the table at loc (indices i32 at gather_idx, clamped to
   * gather_rows rows, an out-of-range one setting the plan's status word). */
  int gather;
  CgLoc gather_idx;
  int64_t gather_rows, gather_dim;
  /* A dequantised operand (the fused layernorm's prologue only; added
   * later): loc holds an IMMA GEMM's int32 sums in the layernorm's own shape
   * and layout, and the value at (row, j) is ditc_qlinear_scale(sum,
   * deq_sx[row], deq_sw[j]) (+ deq_b[j] when deq_bias), as the qlinear
   * kernel would have stored it. */
  int deq, deq_bias;
  CgLoc deq_sx, deq_sw, deq_b;
  /* deq over an fp8 GEMM's f32 sums (qlinear_e4m3, added later): the scales
   * are per tensor, the value ditc_qlinear_e4m3_scale(sum, deq_sx[0],
   * deq_sw[0]) (+ the bias), as the reference executor computes it. */
  int deq_e4m3;
  /* The attention kernel's (scalar path) dequantised q, k, v: views of one
   * qlinear's int32 sums [rows, deq_n], element e at row e / deq_n, column
   * e % deq_n, deq_off the view's element offset before cg_view_fold. */
  int64_t deq_n, deq_off;
} CgView;

/* Moves a view's element offset into its location's byte offset (not for
 * gathered views), so kernels see it as a parameter, not a literal. */
void cg_view_fold(CgView *v);
/* A contiguous view of shape (rank, shape) at loc. */
CgView cg_view_contig(CgLoc loc, int rank, const int64_t *shape);

/* ---- emission ------------------------------------------------------------------ */

typedef struct {
  CgPlan *plan;
  const CgTuning *tune;
  int64_t batch;
  CgText src;
  CgStep *steps;
  int n_steps, cap_steps;
  CgKernel *kernels;
  int n_kernels, cap_kernels;
  int64_t status_offset;  /* arena offset of the status word, -1 when none */
  const char *detail;     /* banner line for the next kernels opened without one */
  /* one kernel per shape (emit.c): the kernel being emitted - its text from
   * src offset kstart, its parameters so far - and, per kernel opened, the
   * kernel it turned out to be (canon: itself or an earlier one with the same
   * text) and its text without its name (keys, NULL for duplicates) */
  size_t kstart;
  int closed;
  int n_params, max_params;
  int64_t params[CG_MAX_PARAMS];
  int *canon;
  char **keys;
} CgEmit;

/* A parameter of the kernel being emitted: its index i (the source reads it
 * as a.o[i]) in this kernel's launches, which pass `value`.  Kernel text
 * must not depend on the value, only on the call order, so that kernels that
 * differ only in these values are one. */
int cg_param(CgEmit *e, int64_t value);

/* Opens a kernel for node n (NULL for a helper step): writes the banner
 * naming the node and its concrete shape, and returns the new kernel's index;
 * *name gets its function name "k<index>_<op>". */
int cg_kernel_open(CgEmit *e, const IrNode *n, const char *op, const char *detail,
                   const char **name);
/* Appends a launch of kernel k for node n. */
void cg_launch(CgEmit *e, const IrNode *n, int k, int64_t grid_x, int64_t grid_y, int64_t grid_z,
               int bx, int by, int bz, uint32_t shared_bytes);
void cg_gemm(CgEmit *e, const IrNode *n, const CgGemm *g);

/* C type name of a storage dtype ("float", "__half", "__nv_bfloat16", "int"). */
const char *cg_ctype(IrDType t);
/* Pointer expression of a location: "(const float *)(a.w + a.o[3])", the offset a new
 * parameter of the kernel being emitted (cg_param). */
const char *cg_ptr(CgEmit *e, CgLoc l, int writable, char buf[128]);
/* The expression loading element `idx` of pointer `p` (dtype t) as a float. */
const char *cg_load(IrDType t, const char *p, const char *idx, char buf[256]);

/* ---- kernel templates (kernels.c) ------------------------------------------------ */

/* The statement storing float expression v into p[idx] in dtype t. */
const char *cg_store(IrDType t, const char *p, const char *idx, const char *v, char buf[512]);
/* Declares `name` as a pointer to l on its own line of the kernel body. */
void cg_decl_ptr(CgEmit *e, const char *name, CgLoc l, int writable);
/* A launch of ceil(count / block) blocks of `block` threads. */
void cg_launch_1d(CgEmit *e, const IrNode *n, int k, int64_t count, int block);
/* Kernel body lines: `int pick[k]` = the k largest of row[0 .. len-1] (a
 * pointer of dtype t), in order, the lower index winning ties - the selection
 * topk_softmax and moe_route share, so both pick the same experts. */
void cg_emit_topk_pick(CgEmit *e, IrDType t, const char *row, int64_t len, int k);

/* Elementwise: out[i] = expr(v0, v1, ...) where vj is input j read through
 * its view (views are indexed by output coordinates, so broadcasting, slices
 * and permutes are all strides).  expr NULL with one input: a copy, raw when
 * the dtypes match.  cast_int: the value is converted to or from i32. */
void cg_emit_map(CgEmit *e, const IrNode *n, const char *op, CgView out, int n_in,
                 const CgView *in, const char *expr);
/* The most operands a map kernel (or a fused layernorm's trees) reads. */
#define CG_MAP_MAX_IN 16
/* cg_emit_map with select set: expr may test the output coordinates c0,
 * c1, ... (one per output axis, no merging) to pick concat parts, and each
 * operand is loaded only where expr reads it. */
void cg_emit_map_ex(CgEmit *e, const IrNode *n, const char *op, CgView out, int n_in,
                    const CgView *in, const char *expr, int select);
/* The kernel-dialect expression of elementwise node n over v0 (unary) or v0,
 * v1 (binary), written into buf: a call of ir/scalar.h's ditc_<op>(); NULL
 * for a cast, a plain conversion (expr.c). */
const char *cg_elementwise_expr(const IrNode *n, char *buf, size_t size);
/* ir/scalar.h's text, which every generated source starts with (embed.c). */
const char *cg_scalar_text(void);
/* Concatenation along `axis` of contiguous inputs into contiguous out. */
void cg_emit_concat(CgEmit *e, const IrNode *n, CgView out, int n_in, const CgView *in, int axis);
/* Row kernels over the last axis of a contiguous [rows, len] value. */
void cg_emit_layernorm(CgEmit *e, const IrNode *n, CgLoc out, CgLoc in, int64_t rows, int64_t len,
                       float eps);
void cg_emit_softmax(CgEmit *e, const IrNode *n, CgLoc out, CgLoc in, int64_t rows, int64_t len);
void cg_emit_reduce(CgEmit *e, const IrNode *n, CgLoc out, CgLoc in, int64_t rows, int64_t len,
                    int mean);
/* quantize(x, qscale(x)) of each row (a quant-rows group): the levels into
 * out, the scales into scales[rows]. */
void cg_emit_quant_rows(CgEmit *e, const IrNode *n, CgLoc out, CgLoc scales, CgLoc in, int64_t rows, int64_t len,
                        float qmax);
/* qscale (ops.def) of each row into out[rows]. */
void cg_emit_qscale(CgEmit *e, const IrNode *n, CgLoc out, CgLoc in, int64_t rows, int64_t len, float qmax);
void cg_emit_topk_softmax(CgEmit *e, const IrNode *n, CgLoc out, CgLoc in, int64_t rows,
                          int64_t len, int k);
void cg_emit_embedding(CgEmit *e, const IrNode *n, CgLoc out, CgLoc table, CgLoc idx,
                       int64_t count, int64_t rows, int64_t dim);
/* x [N, C, H, W], w [O, C/groups, KH, KW], bias [O] or NULL -> out [N, O, OH, OW]. */
typedef struct {
  int64_t n, c, h, w, o, kh, kw, oh, ow;
  int stride, pad, groups;
  int up; /* im2col: the input read upsampled (nearest) by up (>= 1) */
} CgConvShape;
void cg_emit_conv2d(CgEmit *e, const IrNode *n, CgLoc out, CgLoc x, CgLoc w, const CgLoc *bias,
                    const CgConvShape *s);
void cg_emit_im2col(CgEmit *e, const IrNode *n, CgLoc out, CgLoc x, const CgConvShape *s);
void cg_emit_avgpool(CgEmit *e, const IrNode *n, CgLoc out, CgLoc x, int64_t planes, int64_t h,
                     int64_t w, int64_t oh, int64_t ow);
/* A layernorm over the last axis with elementwise trees fused on both sides:
 *   h   = pexpr(v0 .. v<n_pin-1>), vi = pin[i] at the element (NULL: v0);
 *         stored to `side` as well when has_side (a value read elsewhere);
 *   out = eexpr(v0, v1 .. v<n_ein-1>), v0 = (h - mean) * rstd, vi = ein[i]
 *         (ein[0] unused; NULL: v0).
 * Every view has out's shape (broadcasts by zero strides); out and side are
 * contiguous.  One warp per row, the row in registers. */
typedef struct {
  int64_t rows, len;
  float eps;
  int n_pin;
  const CgView *pin;
  const char *pexpr;
  int has_side;
  CgView side;
  int n_ein;
  const CgView *ein;
  const char *eexpr;
  CgView out;
  /* quant: out (i8) gets the levels ditc_quantize_i8(r, s) of the row's
   * results r, s = ditc_qscale(max |r|, qmax) stored to scales[row] */
  int quant;
  CgLoc scales;
  float qmax;
  /* e4m3: out (e4m3) gets ditc_quantize_e4m3(r, e4m3_scale[0]) of the
   * results r (fp8's per-tensor scale) */
  int e4m3;
  CgLoc e4m3_scale;
  const char *detail;  /* banner line: the nodes it computes */
} CgNorm;
/* A group norm over x [N, C, HW...] contiguous: rows = N * groups rows of
 * len = cpg * hw values, each normalised by its mean and biased variance
 * (two passes from memory, one warp per row, as the layernorm kernel), then
 * on the store v0 = ditc_mul(v0, w[c]), ditc_add(v0, b[c]) (when present,
 * c = (row % groups) * cpg + j / hw) and `act` over v0 (NULL: none). */
typedef struct {
  CgLoc out, x, w, b;
  int has_w, has_b;
  int64_t rows, len, groups, cpg, hw;
  float eps;
  const char *act;
  const char *detail; /* banner line: the nodes it computes */
} CgGroupNorm;
void cg_emit_group_norm(CgEmit *e, const IrNode *n, const CgGroupNorm *s);
/* The longest row the fused layernorm keeps in registers. */
#define CG_NORM_MAX_LEN 4096
void cg_emit_norm(CgEmit *e, const IrNode *n, const CgNorm *s);
/* Zero the status word (first step of a plan that has one). */
void cg_emit_status_reset(CgEmit *e);

/* ---- mixture of experts (moe.c) ------------------------------------------------- */

/* moe_route, moe_gather, moe_linear, moe_qlinear(_e4m3), moe_combine: `in` holds the locations of
 * n's inputs in operand order. */
void cg_emit_moe(CgEmit *e, const IrNode *n, CgLoc out, const CgLoc *in);
/* w8's moe_linear over dequantize(wq, sw) of int8 expert weights: in holds xs, table, wq, sw[, b]. */
void cg_emit_moe_w8(CgEmit *e, const IrNode *n, CgLoc out, const CgLoc *in);
/* Does n read input j as a matrix-product operand (stored in the precision)? */
int cg_moe_operand(const IrNode *n, int j);

/* ---- quantisation (quant.c) ----------------------------------------------------- */

/* The qlinear kernels of one thread an output element (quant.c): int8
 * levels (qlinear) or e4m3 levels (qlinear_e4m3). */
typedef enum { CG_QLINEAR_I8, CG_QLINEAR_E4M3 } CgQlinearKind;
/* y[m, nn] from xq[m, kk], sx, wq[nn, kk], sw (in[0..3]) and, with has_bias,
 * b[nn] (in[4]): the kind's products summed in k order, scaled once, the
 * bias, the tanh-GELU when gelu. */
void cg_emit_qlinear_loop(CgEmit *e, const IrNode *n, CgQlinearKind kind, CgLoc out, const CgLoc *in, int has_bias,
                          int gelu, int64_t m, int64_t nn, int64_t kk);
/* The value a quantised linear stores: `scaled`, plus the bias
 * b[bias_index] (bias NULL: none), through the tanh-GELU when gelu. */
const char *cg_quant_value(char v[640], const char *scaled, const CgLoc *bias, const char *bias_index, int gelu);
/* A GEMM epilogue's inputs: acc, then sx, sw and b from in[1], in[3], in[4]
 * (in as for qlinear; b only with has_bias). */
void cg_decl_epilogue_inputs(CgEmit *e, CgLoc acc, const CgLoc *in, int has_bias);

/* qlinear: y[m, nn] from xq[m, kk], sx[m], wq[nn, kk], sw[nn] (in[0..3]) and,
 * with has_bias, b[nn] (in[4]); every operand contiguous; gelu: tanh-GELU
 * on the store (a gemm-epilogue group). */
/* qlinear_e4m3 (codegen/quant_fp8.c): y[m, nn] from xq[m, kk], sx, wq[nn, kk],
 * sw (per-tensor scales) and the bias when has_bias. */
void cg_emit_qlinear_e4m3(CgEmit *e, const IrNode *n, CgLoc out, const CgLoc *in, int has_bias, int64_t m, int64_t nn,
                          int64_t kk);
/* The epilogue of fp8's fc1 GEMM (quant_fp8.c): acc f32[m, nn] (the FP8
 * GEMM's sums), sx, sw, b as in[1], in[3], in[4] (as for qlinear_e4m3):
 * y = e4m3 levels of ditc_quantize_e4m3(gelu_tanh(ditc_qlinear_e4m3_scale(
 * acc, sx[0], sw[0]) + b), qs[0]), one thread an element. */
void cg_emit_e4m3_epilogue(CgEmit *e, const IrNode *n, CgLoc out, CgLoc acc, const CgLoc *in, int has_bias, CgLoc qs,
                           int64_t m, int64_t nn);
/* The epilogue of fc1's IMMA GEMM (quant.c): acc i32[m, nn] (the GEMM's D),
 * sx, sw and b from in[1], in[3], in[4] (in as for qlinear), one warp a row:
 * h = gelu_tanh(ditc_qlinear_scale(acc, sx[r], sw[c]) + b[c]), the row's
 * qscale (qmax) into scales[r] and its int8 levels into out. */
void cg_emit_qlinear_epilogue(CgEmit *e, const IrNode *n, CgLoc out, CgLoc scales, CgLoc acc, const CgLoc *in,
                              int has_bias, int64_t m, int64_t nn, float qmax);
void cg_emit_qlinear(CgEmit *e, const IrNode *n, CgLoc out, const CgLoc *in, int has_bias, int gelu, int64_t m,
                     int64_t nn, int64_t kk);
/* w8's mixed-input GEMM: y[m, n] = (sum_k x[m, k] * (float)wq[n, k]) * sw[n]
 * (+ b[n]) (tanh-GELU when gelu), the int8 weight tiles converted to f32 as
 * they are loaded into shared memory, the row scale applied on the store.
 * in: x, wq (i8 [N, K]), sw ([N, 1]), b. */
void cg_emit_wlinear(CgEmit *e, const IrNode *n, CgLoc out, const CgLoc *in, int has_bias, int gelu, int64_t m,
                     int64_t nn, int64_t kk);
/* cg_emit_wlinear's tiling: a block of CG_WLINEAR_TILE^2 threads, each
 * computing CG_WLINEAR_REG^2 outputs, over CG_WLINEAR_K-deep steps of k.
 * A register tile makes each shared-memory load feed REG multiply-adds (on
 * the emulated device, each barrier REG^2 times the work). */
#define CG_WLINEAR_TILE 16
#define CG_WLINEAR_REG 4
#define CG_WLINEAR_K 16

/* ---- fused attention (attention.c) ---------------------------------------------- */

/* out[l.., i, :] = softmax(scale * q[l.., i, :] k[l.., :, :]^T) v[l.., :, :], with
 * `lead` leading dims (broadcast through zero strides).  q, k, v and out are
 * views of rank lead + 2.  `fused` names the nodes it computes (banner). */
/* Grouped K/V heads: q and out have out.shape[axis] heads, k and v
 * out.shape[axis] / group, and q head h reads K/V head h / group (in place:
 * k's and v's views are of the K/V heads).  NULL or group 1: one K/V head per
 * q head. */
typedef struct {
  int axis;       /* the leading axis of the heads */
  int64_t group;  /* q heads per K/V head */
} CgAttnGroup;
/* f16/bf16 plans on a row with tensor cores take the mma.sync kernel, the
 * others the scalar f32 one (attention.c says how each works). */
void cg_emit_attention(CgEmit *e, const IrNode *n, const char *fused, CgView out, CgView q, CgView k,
                       CgView v, float scale, const CgAttnGroup *group);
/* Does a plan of this precision on row t use the tensor-core kernel? */
int cg_attention_uses_mma(const CgTuning *t, IrDType precision);
/* Dynamic shared memory bytes of a tensor-core attention block of `warps`
 * warps (16 query rows each), head dim d, value dim dv (attention.c). */
int64_t cg_attention_smem_mma(int warps, int64_t d, int64_t dv);
/* Head dims the fused kernel takes. */
#define CG_ATTN_MIN_DIM 1
#define CG_ATTN_MAX_DIM 128

#endif
