/*
 * kernels.c - the code generator's kernel templates, one per op family.
 *
 * Each template writes one kernel in ditc's kernel dialect (emu_prelude.h)
 * with every shape, stride, offset and constant baked in as a literal, then
 * appends its launch.  Values are loaded in their storage dtype, converted to
 * float, computed on in float and rounded once on the store.
 *
 *   map        elementwise unary/binary/cast and every pure copy (slice,
 *              permute, broadcast, dtype conversion): an output-indexed
 *              gather whose index math is specialised to the shapes after
 *              merging dims that are contiguous in every operand; a plain
 *              `x[i]` when everything is contiguous; a shared-memory tiled
 *              transpose when the copy swaps the last two axes
 *   concat     one pass over the output, a branch per input
 *   rows       layernorm, softmax, reduce: one warp per row, f32 sums,
 *              layernorm two-pass (mean, then centred variance); group norm
 *              the same per (image, group), its affine and SiLU on the store
 *   topk       one thread per row (rows are expert counts, short)
 *   im2col     one thread per column element (a conv2d as a GEMM)
 *   conv2d     direct, one thread per output; depthwise without the
 *              channel loop
 *   others     embedding (clamped, status flag), adaptive average pool
 *
 * Index arithmetic is `int` when every offset a kernel forms fits in 31
 * bits, else `long long`.
 */
#include <math.h>
#include <stdlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "codegen/cg_internal.h"

/* ======================================================================== */
/* text and names                                                           */
/* ======================================================================== */

void cg_text_printf(CgText *t, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  DITC_ASSERT(n >= 0);
  if (t->len + (size_t)n + 1 > t->cap) {
    size_t cap = t->cap ? t->cap : 4096;
    while (cap < t->len + (size_t)n + 1) cap *= 2;
    t->s = xrealloc(t->s, cap);
    t->cap = cap;
  }
  va_start(ap, fmt);
  vsnprintf(t->s + t->len, t->cap - t->len, fmt, ap);
  va_end(ap);
  t->len += (size_t)n;
}

const char *cg_float_lit(float f, char buf[48]) {
  if (isnan(f)) return strcpy(buf, "__int_as_float(0x7fc00000)");
  if (isinf(f)) return strcpy(buf, f > 0 ? "DITC_INFINITY" : "(-DITC_INFINITY)");
  snprintf(buf, 48, "%.9g", (double)f);
  if (!strpbrk(buf, ".eni")) strcat(buf, ".0");
  strcat(buf, "f");
  if (f < 0) { /* parenthesise so "x - -1.0f" never reads as a decrement */
    memmove(buf + 1, buf, strlen(buf) + 1);
    buf[0] = '(';
    strcat(buf, ")");
  }
  return buf;
}

const char *cg_ctype(IrDType t) {
  switch (t) {
  case IR_F32: return "float";
  case IR_F16: return "__half";
  case IR_BF16: return "__nv_bfloat16";
  case IR_I32: return "int";
  case IR_I8: return "int8_t";
  case IR_E4M3: return "uint8_t"; /* the OCP e4m3 byte (ir/scalar.h) */
  default: ditc_unreachable();
  }
}

const char *cg_ptr(CgEmit *e, CgLoc l, int writable, char buf[128]) {
  DITC_ASSERT(!writable || l.space == CG_SPACE_ACT);
  snprintf(buf, 128, "(%s%s *)(a.%s + a.o[%d])", writable ? "" : "const ", cg_ctype(l.dtype),
           l.space == CG_SPACE_ACT ? "act" : "w", cg_param(e, l.offset));
  return buf;
}

const char *cg_load(IrDType t, const char *p, const char *idx, char buf[256]) {
  switch (t) {
  case IR_F32: snprintf(buf, 256, "%s[%s]", p, idx); break;
  case IR_F16: snprintf(buf, 256, "__half2float(%s[%s])", p, idx); break;
  case IR_BF16: snprintf(buf, 256, "__bfloat162float(%s[%s])", p, idx); break;
  case IR_I32:
  case IR_I8: snprintf(buf, 256, "(float)%s[%s]", p, idx); break;
  case IR_E4M3: snprintf(buf, 256, "ditc_e4m3_to_f32(%s[%s])", p, idx); break;
  default: ditc_unreachable();
  }
  return buf;
}

/* The statement storing float expression v into p[idx]. */
static const char *store(IrDType t, const char *p, const char *idx, const char *v, char buf[512]) {
  switch (t) {
  case IR_F32: snprintf(buf, 512, "%s[%s] = %s;", p, idx, v); break;
  case IR_F16: snprintf(buf, 512, "%s[%s] = __float2half_rn(%s);", p, idx, v); break;
  case IR_BF16: snprintf(buf, 512, "%s[%s] = __float2bfloat16_rn(%s);", p, idx, v); break;
  case IR_I32: snprintf(buf, 512, "%s[%s] = (int)(%s);", p, idx, v); break;
  case IR_I8: snprintf(buf, 512, "%s[%s] = (int8_t)(%s);", p, idx, v); break;
  case IR_E4M3: snprintf(buf, 512, "%s[%s] = ditc_f32_to_e4m3(%s);", p, idx, v); break;
  default: ditc_unreachable();
  }
  return buf;
}

CgView cg_view_contig(CgLoc loc, int rank, const int64_t *shape) {
  CgView v = {.loc = loc, .rank = rank};
  int64_t s = 1;
  for (int i = rank - 1; i >= 0; i--) {
    v.shape[i] = shape[i];
    v.stride[i] = s;
    s *= shape[i];
  }
  return v;
}

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* "int" when n (a count or offset bound) and the block overshoot fit in 31 bits. */
static const char *index_type(int64_t bound) {
  return bound < ((int64_t)1 << 31) - 65536 ? "int" : "long long";
}

/* Declares `name` as a pointer to loc, on its own line. */
static void decl_ptr(CgEmit *e, const char *name, CgLoc l, int writable) {
  char p[128];
  cg_text_printf(&e->src, "  %s%s *%s%s = %s;\n", writable ? "" : "const ", cg_ctype(l.dtype),
                 writable ? "" : "__restrict__ ", name, cg_ptr(e, l, writable, p));
}

static void launch_1d(CgEmit *e, const IrNode *n, int k, int64_t count, int block) {
  int64_t grid = ceil_div(count, block);
  cg_launch(e, n, k, grid > 0 ? grid : 1, 1, 1, block, 1, 1, 0);
}

/* ======================================================================== */
/* map: elementwise and copies                                              */
/* ======================================================================== */

/* Dims and per-operand strides over the output's coordinates, merged. */
typedef struct {
  int rank, n_ops;
  int64_t d[IR_MAX_RANK];
  int64_t s[CG_MAP_MAX_IN + 1][IR_MAX_RANK]; /* s[op][dim]; op n_ops-1 is the output */
} Walk;

static void walk_coalesce(Walk *w) { w->rank = ir_coalesce_axes(w->rank, w->d, w->n_ops, w->s); }

/* Is operand o contiguous over the merged walk (stride 1 on one dim, or no dims)? */
static int walk_contig(const Walk *w, int o) {
  return w->rank == 0 || (w->rank == 1 && w->s[o][0] == 1);
}

static int64_t view_extent(const CgView *v) {
  int64_t m = v->offset;
  for (int i = 0; i < v->rank; i++) m += (v->shape[i] - 1) * (v->stride[i] > 0 ? v->stride[i] : 0);
  return m + 1;
}

/* The tiled transpose: out[l][c][r] = in[l][r][c], in and out contiguous. */
static void emit_transpose(CgEmit *e, const IrNode *n, const char *op, CgView out, CgView in,
                           int64_t L, int64_t C, int64_t R) {
  const char *name;
  int k = cg_kernel_open(e, n, op, "tiled transpose", &name);
  const char *it = index_type(L * R * C + in.offset);
  char ld[256], st[512], idx[128];
  cg_text_printf(&e->src, "DITC_KERNEL(%s, DitcArgs, a) {\n", name);
  cg_text_printf(&e->src, "  DITC_SHARED2(float, tile, CG_TRANSPOSE_TILE, CG_TRANSPOSE_TILE + 1);\n");
  decl_ptr(e, "x", in.loc, 0);
  decl_ptr(e, "y", out.loc, 1);
  cg_text_printf(&e->src,
                 "  %s plane = (%s)blockIdx.z;\n"
                 "  %s c0 = (%s)blockIdx.x * CG_TRANSPOSE_TILE, r0 = (%s)blockIdx.y * CG_TRANSPOSE_TILE;\n"
                 "  for (int j = threadIdx.y; j < CG_TRANSPOSE_TILE; j += CG_TRANSPOSE_ROWS) {\n"
                 "    %s r = r0 + j, c = c0 + threadIdx.x;\n",
                 it, it, it, it, it, it);
  snprintf(idx, sizeof idx, "%lld + plane * %lld + r * %lld + c", (long long)in.offset,
           (long long)(R * C), (long long)C);
  cg_text_printf(&e->src, "    if (r < %lld && c < %lld) tile[j][threadIdx.x] = %s;\n  }\n",
                 (long long)R, (long long)C, cg_load(in.loc.dtype, "x", idx, ld));
  cg_text_printf(&e->src,
                 "  __syncthreads();\n"
                 "  for (int j = threadIdx.y; j < CG_TRANSPOSE_TILE; j += CG_TRANSPOSE_ROWS) {\n"
                 "    %s c = c0 + j, r = r0 + threadIdx.x;\n",
                 it);
  snprintf(idx, sizeof idx, "plane * %lld + c * %lld + r", (long long)(R * C), (long long)R);
  cg_text_printf(&e->src, "    if (r < %lld && c < %lld) %s\n  }\n}\n\n", (long long)R,
                 (long long)C, store(out.loc.dtype, "y", idx, "tile[threadIdx.x][j]", st));
  int t = e->tune->transpose_tile;
  cg_launch(e, n, k, ceil_div(C, t), ceil_div(R, t), L, t, e->tune->transpose_rows, 1, 0);
}

/* The load of gathered operand o at element offset `off` of the embedding
 * output it stands for: the row's index, clamped (status |= 1 when it was
 * out of range, as the embedding kernel does), then the table element. */
static const char *gather_load(CgEmit *e, const CgView *v, int o, const char *off, char *buf, size_t size) {
  DITC_ASSERT(e->status_offset >= 0 && v->gather_rows >= 1);
  long long d = (long long)v->gather_dim, rows = (long long)v->gather_rows;
  const char *conv = v->loc.dtype == IR_F16 ? "__half2float" : v->loc.dtype == IR_BF16 ? "__bfloat162float" : "";
  /* off is an offset expression of under 256 characters: this fits in 1024 */
  int n = snprintf(buf, size, "%s(x%d[ditc_gather_row(g%d[(%s) / %lld], %lld, (int *)(a.act + %lld)) * %lld + (%s) %% %lld])",
                   conv, o, o, off, d, rows, (long long)e->status_offset, d, off, d);
  DITC_ASSERT(n > 0 && (size_t)n < size);
  return buf;
}

/* expr with every leaf token v<k> replaced by the load of leaf k, so that
 * only the concat part a coordinate selects is read. */
static char *inline_loads(const char *expr, char (*loads)[1024]) {
  CgText t = {0};
  for (const char *p = expr; *p;) {
    int ident = p > expr && (p[-1] == '_' || (p[-1] >= 'a' && p[-1] <= 'z') || (p[-1] >= 'A' && p[-1] <= 'Z') ||
                             (p[-1] >= '0' && p[-1] <= '9'));
    if (*p == 'v' && !ident && p[1] >= '0' && p[1] <= '9') {
      char *end;
      long k = strtol(p + 1, &end, 10);
      cg_text_printf(&t, "(%s)", loads[k]);
      p = end;
    } else {
      cg_text_printf(&t, "%c", *p++);
    }
  }
  return t.s;
}

void cg_emit_map(CgEmit *e, const IrNode *n, const char *op, CgView out, int n_in,
                 const CgView *in, const char *expr) {
  cg_emit_map_ex(e, n, op, out, n_in, in, expr, 0);
}

void cg_view_fold(CgView *v) {
  /* (a negative offset - a concat part's view - stays a literal: parameters are offsets in a space) */
  if (v->gather || !v->offset || v->loc.offset + v->offset * (int64_t)ir_dtype_size(v->loc.dtype) < 0) return;
  v->loc.offset += v->offset * (int64_t)ir_dtype_size(v->loc.dtype);
  v->offset = 0;
}

void cg_emit_map_ex(CgEmit *e, const IrNode *n, const char *op, CgView out, int n_in,
                    const CgView *in_views, const char *expr, int select) {
  DITC_ASSERT(n_in >= 1 && n_in <= CG_MAP_MAX_IN);
  CgView in[CG_MAP_MAX_IN];
  for (int o = 0; o < n_in; o++) in[o] = in_views[o], cg_view_fold(&in[o]);
  cg_view_fold(&out);
  Walk w = {.rank = out.rank, .n_ops = n_in + 1};
  int64_t count = 1, bound = view_extent(&out);
  for (int i = 0; i < out.rank; i++) {
    w.d[i] = out.shape[i];
    count *= out.shape[i];
  }
  for (int o = 0; o < n_in; o++) {
    DITC_ASSERT(in[o].rank == out.rank);
    for (int i = 0; i < out.rank; i++) w.s[o][i] = in[o].stride[i];
    int64_t x = view_extent(&in[o]);
    if (x > bound) bound = x;
  }
  for (int i = 0; i < out.rank; i++) w.s[n_in][i] = out.stride[i];
  if (!select) walk_coalesce(&w); /* a select names the output's own coordinates */
  int raw = !expr && in[0].loc.dtype == out.loc.dtype;

  /* A copy that swaps the two innermost merged axes: tile it through shared memory. */
  if (!select && !expr && n_in == 1 && in[0].loc.dtype != IR_I32 && in[0].loc.dtype != IR_I8 && in[0].loc.dtype != IR_E4M3 &&
      w.rank >= 2 && w.rank <= 3 && out.offset == 0) {
    int r = w.rank;
    int64_t C = w.d[r - 2], R = w.d[r - 1], L = r == 3 ? w.d[0] : 1;
    const int64_t *s = w.s[0], *so = w.s[1];
    if (s[r - 1] == C && s[r - 2] == 1 && (r == 2 || s[0] == R * C) && so[r - 1] == 1 &&
        so[r - 2] == R && (r == 2 || so[0] == R * C) && C >= 8 && R >= 8 && L <= 65535) {
      emit_transpose(e, n, op, out, in[0], L, C, R);
      return;
    }
  }

  const char *name;
  int k = cg_kernel_open(e, n, op, NULL, &name);
  const char *it = index_type(bound > count ? bound : count);
  char buf[128], ld[256], st[512];
  cg_text_printf(&e->src, "DITC_KERNEL(%s, DitcArgs, a) {\n", name);
  for (int o = 0; o < n_in; o++) {
    snprintf(buf, sizeof buf, "x%d", o);
    decl_ptr(e, buf, in[o].loc, 0);
    if (in[o].gather) {
      snprintf(buf, sizeof buf, "g%d", o);
      decl_ptr(e, buf, in[o].gather_idx, 0);
    }
  }
  decl_ptr(e, "y", out.loc, 1);
  cg_text_printf(&e->src, "  %s i = (%s)blockIdx.x * CG_BLOCK_ELEMENTWISE + threadIdx.x;\n", it, it);
  cg_text_printf(&e->src, "  if (i >= %lld) return;\n", (long long)count);
  /* Coordinates over the merged dims, only when some operand needs them. */
  int need_coords = 0;
  for (int o = 0; o <= n_in; o++) need_coords |= !walk_contig(&w, o) || select;
  if (need_coords && w.rank > 0) {
    if (w.rank == 1) {
      cg_text_printf(&e->src, "  %s c0 = i;\n", it);
    } else {
      cg_text_printf(&e->src, "  %s rest = i;\n", it);
      for (int d = w.rank - 1; d > 0; d--)
        cg_text_printf(&e->src, "  %s c%d = rest %% %lld; rest /= %lld;\n", it, d,
                       (long long)w.d[d], (long long)w.d[d]);
      cg_text_printf(&e->src, "  %s c0 = rest;\n", it);
    }
  }
  /* The element offset of operand o as an expression. */
  char offs[CG_MAP_MAX_IN + 1][256];
  for (int o = 0; o <= n_in; o++) {
    int64_t base = o < n_in ? in[o].offset : out.offset;
    char *p = offs[o];
    size_t m = sizeof offs[o], len = 0;
    p[0] = 0;
    if (walk_contig(&w, o)) {
      len += (size_t)snprintf(p + len, m - len, "i");
    } else {
      int any = 0;
      for (int d = 0; d < w.rank; d++) {
        if (w.s[o][d] == 0) continue;
        len += (size_t)snprintf(p + len, m - len, any ? " + " : "");
        if (w.s[o][d] == 1)
          len += (size_t)snprintf(p + len, m - len, "c%d", d);
        else
          len += (size_t)snprintf(p + len, m - len, "c%d * %lld", d, (long long)w.s[o][d]);
        any = 1;
      }
      if (!any) len += (size_t)snprintf(p + len, m - len, "0");
    }
    if (base) snprintf(p + len, m - len, " + %lld", (long long)base);
  }
  if (raw) {
    cg_text_printf(&e->src, "  y[%s] = x0[%s];\n}\n\n", offs[n_in], offs[0]);
  } else if (select) {
    char (*loads)[1024] = xmalloc((size_t)n_in * sizeof *loads);
    for (int o = 0; o < n_in; o++) {
      snprintf(buf, sizeof buf, "x%d", o);
      if (in[o].gather)
        gather_load(e, &in[o], o, offs[o], loads[o], sizeof loads[o]);
      else
        snprintf(loads[o], sizeof loads[o], "%s", cg_load(in[o].loc.dtype, buf, offs[o], ld));
    }
    char *body = inline_loads(expr, loads);
    cg_text_printf(&e->src, "  float r = %s;\n  %s\n}\n\n", body, store(out.loc.dtype, "y", offs[n_in], "r", st));
    free(body);
    free(loads);
  } else {
    for (int o = 0; o < n_in; o++) {
      snprintf(buf, sizeof buf, "x%d", o);
      char gl[1024];
      cg_text_printf(&e->src, "  float v%d = %s;\n", o,
                     in[o].gather ? gather_load(e, &in[o], o, offs[o], gl, sizeof gl)
                                  : cg_load(in[o].loc.dtype, buf, offs[o], ld));
    }
    /* the expression apart: a fused tree's can be longer than a store's buffer */
    cg_text_printf(&e->src, "  float r = %s;\n  %s\n}\n\n", expr ? expr : "v0", store(out.loc.dtype, "y", offs[n_in], "r", st));
  }
  launch_1d(e, n, k, count, e->tune->block_elementwise);
}

/* ======================================================================== */
/* concat                                                                   */
/* ======================================================================== */

void cg_emit_concat(CgEmit *e, const IrNode *n, CgView out, int n_in, const CgView *in, int axis) {
  int64_t outer = 1, inner = 1, A = out.shape[axis], count;
  for (int i = 0; i < axis; i++) outer *= out.shape[i];
  for (int i = axis + 1; i < out.rank; i++) inner *= out.shape[i];
  count = outer * A * inner;
  const char *name;
  int k = cg_kernel_open(e, n, "concat", NULL, &name);
  const char *it = index_type(count);
  char buf[64], ld[256], st[512], idx[256];
  cg_text_printf(&e->src, "DITC_KERNEL(%s, DitcArgs, a) {\n", name);
  for (int o = 0; o < n_in; o++) {
    snprintf(buf, sizeof buf, "x%d", o);
    decl_ptr(e, buf, in[o].loc, 0);
  }
  decl_ptr(e, "y", out.loc, 1);
  cg_text_printf(&e->src, "  %s i = (%s)blockIdx.x * CG_BLOCK_ELEMENTWISE + threadIdx.x;\n", it, it);
  cg_text_printf(&e->src, "  if (i >= %lld) return;\n", (long long)count);
  cg_text_printf(&e->src, "  %s inner = i %% %lld, along = (i / %lld) %% %lld, outer = i / %lld;\n",
                 it, (long long)inner, (long long)inner, (long long)A, (long long)(inner * A));
  int64_t start = 0;
  for (int o = 0; o < n_in; o++) {
    int64_t len = in[o].shape[axis];
    snprintf(buf, sizeof buf, "x%d", o);
    snprintf(idx, sizeof idx, "(outer * %lld + along - %lld) * %lld + inner", (long long)len,
             (long long)start, (long long)inner);
    if (o < n_in - 1)
      cg_text_printf(&e->src, "  %sif (along < %lld)\n  ", o ? "else " : "", (long long)(start + len));
    else if (o)
      cg_text_printf(&e->src, "  else\n  ");
    if (in[o].loc.dtype == out.loc.dtype) {
      cg_text_printf(&e->src, "  y[i] = %s[%s];\n", buf, idx);
    } else {
      cg_text_printf(&e->src, "  %s\n", store(out.loc.dtype, "y", "i", cg_load(in[o].loc.dtype, buf, idx, ld), st));
    }
    start += len;
  }
  cg_text_printf(&e->src, "}\n\n");
  launch_1d(e, n, k, count, e->tune->block_elementwise);
}

/* ======================================================================== */
/* row kernels: one warp per row                                            */
/* ======================================================================== */

/* The common head: x, y, the row index (warp-uniform: whole warps return). */
static int rows_open(CgEmit *e, const IrNode *n, const char *op, CgLoc out, CgLoc in, int64_t rows,
                     int64_t len, int64_t out_len, const char **it) {
  const char *name;
  int k = cg_kernel_open(e, n, op, NULL, &name);
  *it = index_type(rows * (len > out_len ? len : out_len));
  cg_text_printf(&e->src, "DITC_KERNEL_BOUNDS(%s, DitcArgs, a, 32 * CG_ROWS_PER_BLOCK) {\n", name);
  decl_ptr(e, "x", in, 0);
  decl_ptr(e, "y", out, 1);
  cg_text_printf(&e->src, "  %s row = (%s)blockIdx.x * CG_ROWS_PER_BLOCK + threadIdx.y;\n", *it, *it);
  cg_text_printf(&e->src, "  if (row >= %lld) return;\n", (long long)rows);
  cg_text_printf(&e->src, "  const %s *__restrict__ xr = x + row * %lld;\n", cg_ctype(in.dtype), (long long)len);
  if (out_len)
    cg_text_printf(&e->src, "  %s *yr = y + row * %lld;\n", cg_ctype(out.dtype), (long long)out_len);
  return k;
}

static void rows_launch(CgEmit *e, const IrNode *n, int k, int64_t rows) {
  int r = e->tune->rows_per_block;
  cg_launch(e, n, k, ceil_div(rows, r) > 0 ? ceil_div(rows, r) : 1, 1, 1, 32, r, 1, 0);
}

void cg_emit_layernorm(CgEmit *e, const IrNode *n, CgLoc out, CgLoc in, int64_t rows, int64_t len,
                       float eps) {
  const char *it;
  char ld[256], st[512], f[48], v[300];
  int k = rows_open(e, n, "layernorm", out, in, rows, len, len, &it);
  cg_load(in.dtype, "xr", "j", ld);
  cg_text_printf(&e->src,
                 "  float sum = 0.0f;\n"
                 "  for (int j = threadIdx.x; j < %lld; j += 32) sum += %s;\n"
                 "  float mean = ditc_warp_sum(sum) / %lld.0f;\n"
                 "  float sq = 0.0f;\n"
                 "  for (int j = threadIdx.x; j < %lld; j += 32) {\n"
                 "    float d = %s - mean;\n"
                 "    sq += d * d;\n"
                 "  }\n"
                 "  float rstd = 1.0f / sqrtf(ditc_warp_sum(sq) / %lld.0f + %s);\n",
                 (long long)len, ld, (long long)len, (long long)len, ld, (long long)len,
                 cg_float_lit(eps, f));
  snprintf(v, sizeof v, "(%s - mean) * rstd", ld);
  cg_text_printf(&e->src, "  for (int j = threadIdx.x; j < %lld; j += 32) %s\n}\n\n", (long long)len,
                 store(out.dtype, "yr", "j", v, st));
  rows_launch(e, n, k, rows);
}

/* group norm (codegen/fuse_lower.c lower_group_norm): the layernorm kernel's
 * two passes over each (image, group) row, then the per-channel affine and
 * the unary op on the store, so neither the normalised value nor the
 * affine's result is ever stored. */
void cg_emit_group_norm(CgEmit *e, const IrNode *n, const CgGroupNorm *s) {
  const char *it, *name;
  char ld[256], st[512], f[48], wl[256], bl[256];
  int k = cg_kernel_open(e, n, "group_norm", s->detail, &name);
  it = index_type(s->rows * s->len);
  cg_text_printf(&e->src, "DITC_KERNEL_BOUNDS(%s, DitcArgs, a, 32 * CG_ROWS_PER_BLOCK) {\n", name);
  decl_ptr(e, "x", s->x, 0);
  if (s->has_w) decl_ptr(e, "w", s->w, 0);
  if (s->has_b) decl_ptr(e, "b", s->b, 0);
  decl_ptr(e, "y", s->out, 1);
  cg_text_printf(&e->src, "  %s row = (%s)blockIdx.x * CG_ROWS_PER_BLOCK + threadIdx.y;\n", it, it);
  cg_text_printf(&e->src, "  if (row >= %lld) return;\n", (long long)s->rows);
  cg_text_printf(&e->src, "  const %s *__restrict__ xr = x + row * %lld;\n", cg_ctype(s->x.dtype), (long long)s->len);
  cg_text_printf(&e->src, "  %s *yr = y + row * %lld;\n", cg_ctype(s->out.dtype), (long long)s->len);
  cg_text_printf(&e->src, "  const %s ch0 = (row %% %lld) * %lld;\n  (void)ch0;\n", it, (long long)s->groups,
                 (long long)s->cpg);
  cg_load(s->x.dtype, "xr", "j", ld);
  cg_text_printf(&e->src,
                 "  float sum = 0.0f;\n"
                 "  for (%s j = threadIdx.x; j < %lld; j += 32) sum += %s;\n"
                 "  float mean = ditc_warp_sum(sum) / %lld.0f;\n"
                 "  float sq = 0.0f;\n"
                 "  for (%s j = threadIdx.x; j < %lld; j += 32) {\n"
                 "    float d = %s - mean;\n"
                 "    sq += d * d;\n"
                 "  }\n"
                 "  float rstd = 1.0f / sqrtf(ditc_warp_sum(sq) / %lld.0f + %s);\n"
                 "  for (%s j = threadIdx.x; j < %lld; j += 32) {\n"
                 "    float v0 = (%s - mean) * rstd;\n",
                 it, (long long)s->len, ld, (long long)s->len, it, (long long)s->len, ld, (long long)s->len,
                 cg_float_lit(s->eps, f), it, (long long)s->len, ld);
  char ci[96];
  snprintf(ci, sizeof ci, "ch0 + j / %lld", (long long)s->hw);
  if (s->has_w) cg_text_printf(&e->src, "    v0 = ditc_mul(v0, %s);\n", cg_load(s->w.dtype, "w", ci, wl));
  if (s->has_b) cg_text_printf(&e->src, "    v0 = ditc_add(v0, %s);\n", cg_load(s->b.dtype, "b", ci, bl));
  if (s->act) cg_text_printf(&e->src, "    v0 = %s;\n", s->act);
  cg_text_printf(&e->src, "    %s\n  }\n}\n\n", store(s->out.dtype, "yr", "j", "v0", st));
  rows_launch(e, n, k, s->rows);
}

void cg_emit_softmax(CgEmit *e, const IrNode *n, CgLoc out, CgLoc in, int64_t rows, int64_t len) {
  const char *it;
  char ld[256], st[512], v[300];
  int k = rows_open(e, n, "softmax", out, in, rows, len, len, &it);
  cg_load(in.dtype, "xr", "j", ld);
  cg_text_printf(&e->src,
                 "  float mx = -DITC_INFINITY;\n"
                 "  for (int j = threadIdx.x; j < %lld; j += 32) mx = fmaxf(mx, %s);\n"
                 "  mx = ditc_warp_max(mx);\n"
                 "  float sum = 0.0f;\n"
                 "  for (int j = threadIdx.x; j < %lld; j += 32) sum += expf(%s - mx);\n"
                 "  float inv = 1.0f / ditc_warp_sum(sum);\n",
                 (long long)len, ld, (long long)len, ld);
  snprintf(v, sizeof v, "expf(%s - mx) * inv", ld);
  cg_text_printf(&e->src, "  for (int j = threadIdx.x; j < %lld; j += 32) %s\n}\n\n", (long long)len,
                 store(out.dtype, "yr", "j", v, st));
  rows_launch(e, n, k, rows);
}

void cg_emit_reduce(CgEmit *e, const IrNode *n, CgLoc out, CgLoc in, int64_t rows, int64_t len,
                    int mean) {
  const char *it;
  char ld[256], st[512], v[64];
  int k = rows_open(e, n, mean ? "reduce_mean" : "reduce_sum", out, in, rows, len, 0, &it);
  cg_text_printf(&e->src,
                 "  float sum = 0.0f;\n"
                 "  for (int j = threadIdx.x; j < %lld; j += 32) sum += %s;\n"
                 "  sum = ditc_warp_sum(sum);\n",
                 (long long)len, cg_load(in.dtype, "xr", "j", ld));
  snprintf(v, sizeof v, mean ? "sum / %lld.0f" : "sum", (long long)len);
  cg_text_printf(&e->src, "  if (threadIdx.x == 0) %s\n}\n\n", store(out.dtype, "y", "row", v, st));
  rows_launch(e, n, k, rows);
}

/* qscale: the largest |x| of the row (ditc_absmax keeps a NaN) by a
 * butterfly over the warp, then ditc_qscale. */
void cg_emit_qscale(CgEmit *e, const IrNode *n, CgLoc out, CgLoc in, int64_t rows, int64_t len, float qmax) {
  const char *it;
  char ld[256], f[48];
  int k = rows_open(e, n, "qscale", out, in, rows, len, 0, &it);
  cg_text_printf(&e->src,
                 "  float m = 0.0f;\n"
                 "  for (int j = threadIdx.x; j < %lld; j += 32) m = ditc_absmax(m, %s);\n"
                 "  DITC_XOR_REDUCE(m, ditc_absmax, 32);\n"
                 "  if (threadIdx.x == 0) y[row] = ditc_qscale(m, %s);\n}\n\n",
                 (long long)len, cg_load(in.dtype, "xr", "j", ld), cg_float_lit(qmax, f));
  rows_launch(e, n, k, rows);
}

/* quant-rows: qscale's scale of the row (as above) into s[row], then the
 * row's levels ditc_quantize_i8(x, scale) into y. */
void cg_emit_quant_rows(CgEmit *e, const IrNode *n, CgLoc out, CgLoc scales, CgLoc in, int64_t rows, int64_t len,
                        float qmax) {
  const char *it;
  char ld[256], st[512], f[48];
  int k = rows_open(e, n, "quant_rows", out, in, rows, len, len, &it);
  cg_decl_ptr(e, "s", scales, 1);
  cg_text_printf(&e->src,
                 "  float m = 0.0f;\n"
                 "  for (int j = threadIdx.x; j < %lld; j += 32) m = ditc_absmax(m, %s);\n"
                 "  DITC_XOR_REDUCE(m, ditc_absmax, 32);\n"
                 "  float sc = ditc_qscale(m, %s);\n"
                 "  if (threadIdx.x == 0) s[row] = sc;\n",
                 (long long)len, cg_load(in.dtype, "xr", "j", ld), cg_float_lit(qmax, f));
  char v[300];
  snprintf(v, sizeof v, "ditc_quantize_i8(%s, sc)", ld);
  cg_text_printf(&e->src, "  for (int j = threadIdx.x; j < %lld; j += 32) %s\n}\n\n", (long long)len,
                 cg_store(out.dtype, "yr", "j", v, st));
  rows_launch(e, n, k, rows);
}

/* ======================================================================== */
/* topk_softmax: one thread per row                                         */
/* ======================================================================== */

void cg_emit_topk_pick(CgEmit *e, IrDType t, const char *row, int64_t len, int k) {
  char ld[256];
  cg_text_printf(&e->src,
                 "  int pick[%d];\n"
                 "  /* the k largest, in order; the lower index wins ties */\n"
                 "  for (int t = 0; t < %d; t++) {\n"
                 "    int best = -1;\n"
                 "    float best_v = 0.0f;\n"
                 "    for (int j = 0; j < %lld; j++) {\n"
                 "      int taken = 0;\n"
                 "      for (int u = 0; u < t; u++) taken |= pick[u] == j;\n"
                 "      if (taken) continue;\n"
                 "      float v = %s;\n"
                 "      if (best < 0 || v > best_v) {\n"
                 "        best = j;\n"
                 "        best_v = v;\n"
                 "      }\n"
                 "    }\n"
                 "    pick[t] = best;\n"
                 "  }\n",
                 k, k, (long long)len, cg_load(t, row, "j", ld));
}

void cg_emit_topk_softmax(CgEmit *e, const IrNode *n, CgLoc out, CgLoc in, int64_t rows,
                          int64_t len, int k) {
  const char *name;
  int kid = cg_kernel_open(e, n, "topk_softmax", NULL, &name);
  const char *it = index_type(rows * len);
  char ld[256], ld2[256], st[512], st2[512], v[300];
  cg_text_printf(&e->src, "DITC_KERNEL(%s, DitcArgs, a) {\n", name);
  decl_ptr(e, "x", in, 0);
  decl_ptr(e, "y", out, 1);
  cg_text_printf(&e->src,
                 "  %s row = (%s)blockIdx.x * CG_BLOCK_ROW_THREAD + threadIdx.x;\n"
                 "  if (row >= %lld) return;\n"
                 "  const %s *__restrict__ xr = x + row * %lld;\n"
                 "  %s *yr = y + row * %lld;\n",
                 it, it, (long long)rows, cg_ctype(in.dtype), (long long)len, cg_ctype(out.dtype),
                 (long long)len);
  cg_emit_topk_pick(e, in.dtype, "xr", len, k);
  cg_load(in.dtype, "xr", "pick[0]", ld);
  cg_load(in.dtype, "xr", "pick[t]", ld2);
  snprintf(v, sizeof v, "expf(%s - mx) / sum", ld2);
  cg_text_printf(&e->src,
                 "  float mx = %s, sum = 0.0f;\n"
                 "  for (int t = 0; t < %d; t++) sum += expf(%s - mx);\n"
                 "  for (int j = 0; j < %lld; j++) %s\n"
                 "  for (int t = 0; t < %d; t++) %s\n"
                 "}\n\n",
                 ld, k, ld2, (long long)len, store(out.dtype, "yr", "j", "0.0f", st), k,
                 store(out.dtype, "yr", "pick[t]", v, st2));
  launch_1d(e, n, kid, rows, e->tune->block_row_thread);
}

/* ======================================================================== */
/* embedding, conv2d, pooling, status                                       */
/* ======================================================================== */

void cg_emit_embedding(CgEmit *e, const IrNode *n, CgLoc out, CgLoc table, CgLoc idx,
                       int64_t count, int64_t rows, int64_t dim) {
  const char *name;
  int k = cg_kernel_open(e, n, "embedding", "out-of-range indices: clamped, status |= 1", &name);
  const char *it = index_type(count * dim > rows * dim ? count * dim : rows * dim);
  char ld[256], st[512];
  DITC_ASSERT(e->status_offset >= 0);
  cg_text_printf(&e->src, "DITC_KERNEL(%s, DitcArgs, a) {\n", name);
  decl_ptr(e, "table", table, 0);
  decl_ptr(e, "idx", idx, 0);
  decl_ptr(e, "y", out, 1);
  cg_text_printf(&e->src,
                 "  %s i = (%s)blockIdx.x * CG_BLOCK_ELEMENTWISE + threadIdx.x;\n"
                 "  if (i >= %lld) return;\n"
                 "  %s r = i / %lld, c = i %% %lld;\n"
                 "  %s id = idx[r];\n"
                 "  if (id < 0 || id >= %lld) {\n"
                 "    atomicExch((int *)(a.act + %lld), 1);\n"
                 "    id = id < 0 ? 0 : %lld;\n"
                 "  }\n",
                 it, it, (long long)(count * dim), it, (long long)dim, (long long)dim, it,
                 (long long)rows, (long long)e->status_offset, (long long)(rows - 1));
  if (table.dtype == out.dtype)
    cg_text_printf(&e->src, "  y[i] = table[id * %lld + c];\n}\n\n", (long long)dim);
  else {
    char idx_s[64];
    snprintf(idx_s, sizeof idx_s, "id * %lld + c", (long long)dim);
    cg_text_printf(&e->src, "  %s\n}\n\n", store(out.dtype, "y", "i", cg_load(table.dtype, "table", idx_s, ld), st));
  }
  launch_1d(e, n, k, count * dim, e->tune->block_elementwise);
}

void cg_emit_conv2d(CgEmit *e, const IrNode *n, CgLoc out, CgLoc x, CgLoc w, const CgLoc *bias,
                    const CgConvShape *s) {
  int64_t cpg = s->c / s->groups, opg = s->o / s->groups;
  int depthwise = cpg == 1 && opg == 1;
  int64_t count = s->n * s->o * s->oh * s->ow;
  const char *name;
  int k = cg_kernel_open(e, n, "conv2d", depthwise ? "direct, depthwise" : "direct", &name);
  int64_t big = s->n * s->c * s->h * s->w;
  const char *it = index_type(count > big ? count : big);
  char ld[256], ldw[256], st[512];
  cg_text_printf(&e->src, "DITC_KERNEL(%s, DitcArgs, a) {\n", name);
  decl_ptr(e, "x", x, 0);
  decl_ptr(e, "w", w, 0);
  if (bias) decl_ptr(e, "bias", *bias, 0);
  decl_ptr(e, "y", out, 1);
  cg_text_printf(&e->src,
                 "  %s i = (%s)blockIdx.x * CG_BLOCK_ELEMENTWISE + threadIdx.x;\n"
                 "  if (i >= %lld) return;\n"
                 "  %s ow = i %% %lld, oh = (i / %lld) %% %lld, o = (i / %lld) %% %lld, b = i / %lld;\n",
                 it, it, (long long)count, it, (long long)s->ow, (long long)s->ow, (long long)s->oh,
                 (long long)(s->ow * s->oh), (long long)s->o, (long long)(s->ow * s->oh * s->o));
  cg_text_printf(&e->src, "  float acc = %s;\n", bias ? cg_load(bias->dtype, "bias", "o", ld) : "0.0f");
  if (depthwise)
    cg_text_printf(&e->src, "  {\n    %s c = o;\n", it);
  else
    cg_text_printf(&e->src, "  for (int ci = 0; ci < %lld; ci++) {\n    %s c = (o / %lld) * %lld + ci;\n",
                   (long long)cpg, it, (long long)opg, (long long)cpg);
  cg_text_printf(&e->src,
                 "    for (int kh = 0; kh < %lld; kh++) {\n"
                 "      %s ih = oh * %d - %d + kh;\n"
                 "      if (ih < 0 || ih >= %lld) continue;\n"
                 "      for (int kw = 0; kw < %lld; kw++) {\n"
                 "        %s iw = ow * %d - %d + kw;\n"
                 "        if (iw < 0 || iw >= %lld) continue;\n",
                 (long long)s->kh, it, s->stride, s->pad, (long long)s->h, (long long)s->kw, it,
                 s->stride, s->pad, (long long)s->w);
  char xi[128], wi[128];
  snprintf(xi, sizeof xi, "((b * %lld + c) * %lld + ih) * %lld + iw", (long long)s->c, (long long)s->h,
           (long long)s->w);
  snprintf(wi, sizeof wi, "((o * %lld + %s) * %lld + kh) * %lld + kw", (long long)cpg,
           depthwise ? "0" : "ci", (long long)s->kh, (long long)s->kw);
  cg_text_printf(&e->src, "        acc += %s * %s;\n      }\n    }\n  }\n", cg_load(x.dtype, "x", xi, ld),
                 cg_load(w.dtype, "w", wi, ldw));
  cg_text_printf(&e->src, "  %s\n}\n\n", store(out.dtype, "y", "i", "acc", st));
  launch_1d(e, n, k, count, e->tune->block_elementwise);
}

/* im2col (ops.def): one thread per column element, zeros outside the image;
 * the GEMM that follows (passes/conv_gemm.c) does the convolution's MACs.
 * With up > 1 the window moves over the input upsampled (nearest) by up and
 * reads x at (ih / up, iw / up): the upsampled tensor is never stored. */
void cg_emit_im2col(CgEmit *e, const IrNode *n, CgLoc out, CgLoc x, const CgConvShape *s) {
  int64_t kk = s->kh * s->kw, np = s->oh * s->ow, count = s->n * s->c * kk * np;
  int up = s->up > 1 ? s->up : 1;
  const char *name;
  int k = cg_kernel_open(e, n, "im2col", NULL, &name);
  int64_t big = s->n * s->c * s->h * s->w;
  const char *it = index_type(count > big ? count : big);
  char ld[256], st[512], xi[200];
  if (up == 1)
    snprintf(xi, sizeof xi, "((b * %lld + c) * %lld + ih) * %lld + iw", (long long)s->c, (long long)s->h,
             (long long)s->w);
  else
    snprintf(xi, sizeof xi, "((b * %lld + c) * %lld + ih / %d) * %lld + iw / %d", (long long)s->c,
             (long long)s->h, up, (long long)s->w, up);
  cg_text_printf(&e->src, "DITC_KERNEL(%s, DitcArgs, a) {\n", name);
  decl_ptr(e, "x", x, 0);
  decl_ptr(e, "y", out, 1);
  cg_text_printf(&e->src,
                 "  %s i = (%s)blockIdx.x * CG_BLOCK_ELEMENTWISE + threadIdx.x;\n"
                 "  if (i >= %lld) return;\n"
                 "  %s p = i %% %lld, r = (i / %lld) %% %lld, b = i / %lld;\n"
                 "  %s c = r / %lld, ih = (p / %lld) * %d - %d + (r / %lld) %% %lld, iw = (p %% %lld) * %d - %d + r %% %lld;\n"
                 "  float v = 0.0f;\n"
                 "  if (ih >= 0 && ih < %lld && iw >= 0 && iw < %lld) v = %s;\n",
                 it, it, (long long)count, it, (long long)np, (long long)np, (long long)(s->c * kk),
                 (long long)(np * s->c * kk), it, (long long)kk, (long long)s->ow, s->stride, s->pad,
                 (long long)s->kw, (long long)s->kh, (long long)s->ow, s->stride, s->pad, (long long)s->kw,
                 (long long)(s->h * up), (long long)(s->w * up), cg_load(x.dtype, "x", xi, ld));
  cg_text_printf(&e->src, "  %s\n}\n\n", store(out.dtype, "y", "i", "v", st));
  launch_1d(e, n, k, count, e->tune->block_elementwise);
}

void cg_emit_avgpool(CgEmit *e, const IrNode *n, CgLoc out, CgLoc x, int64_t planes, int64_t h,
                     int64_t w, int64_t oh, int64_t ow) {
  int64_t count = planes * oh * ow;
  const char *name;
  int k = cg_kernel_open(e, n, "adaptive_avg_pool2d", NULL, &name);
  const char *it = index_type(planes * h * w > count ? planes * h * w : count);
  char ld[256], st[512], xi[128];
  snprintf(xi, sizeof xi, "(plane * %lld + yy) * %lld + xx", (long long)h, (long long)w);
  cg_text_printf(&e->src, "DITC_KERNEL(%s, DitcArgs, a) {\n", name);
  decl_ptr(e, "x", x, 0);
  decl_ptr(e, "y", out, 1);
  cg_text_printf(&e->src,
                 "  %s i = (%s)blockIdx.x * CG_BLOCK_ELEMENTWISE + threadIdx.x;\n"
                 "  if (i >= %lld) return;\n"
                 "  %s ox = i %% %lld, oy = (i / %lld) %% %lld, plane = i / %lld;\n"
                 "  /* window: floor(o * H / OH) .. ceil((o + 1) * H / OH) - 1 */\n"
                 "  %s y0 = oy * %lld / %lld, y1 = ((oy + 1) * %lld + %lld) / %lld;\n"
                 "  %s x0 = ox * %lld / %lld, x1 = ((ox + 1) * %lld + %lld) / %lld;\n"
                 "  float sum = 0.0f;\n"
                 "  for (%s yy = y0; yy < y1; yy++)\n"
                 "    for (%s xx = x0; xx < x1; xx++) sum += %s;\n",
                 it, it, (long long)count, it, (long long)ow, (long long)ow, (long long)oh,
                 (long long)(ow * oh), it, (long long)h, (long long)oh, (long long)h,
                 (long long)(oh - 1), (long long)oh, it, (long long)w, (long long)ow, (long long)w,
                 (long long)(ow - 1), (long long)ow, it, it,
                 cg_load(x.dtype, "x", xi, ld));
  cg_text_printf(&e->src, "  %s\n}\n\n", store(out.dtype, "y", "i", "sum / (float)((y1 - y0) * (x1 - x0))", st));
  launch_1d(e, n, k, count, e->tune->block_elementwise);
}

void cg_emit_status_reset(CgEmit *e) {
  const char *name;
  int k = cg_kernel_open(e, NULL, "status_reset", NULL, &name);
  cg_text_printf(&e->src,
                 "DITC_KERNEL(%s, DitcArgs, a) {\n"
                 "  if (threadIdx.x == 0) *(int *)(a.act + %lld) = 0;\n"
                 "}\n\n",
                 name, (long long)e->status_offset);
  cg_launch(e, NULL, k, 1, 1, 1, 1, 1, 1, 0);
}

/* ======================================================================== */
/* fused layernorm: prologue -> layernorm -> epilogue, one warp per row     */
/* ======================================================================== */

/* Declares the element offset of view v at the row's coordinates as
 * `rb<name>` (without the last axis, which the loops add as j * stride). */
static void row_base(CgEmit *e, const char *name, const CgView *v, const char *it) {
  CgText t = {0};
  cg_text_printf(&t, "%lld", (long long)v->offset);
  for (int d = 0; d < v->rank - 1; d++)
    if (v->stride[d]) cg_text_printf(&t, " + c%d * %lld", d, (long long)v->stride[d]);
  cg_text_printf(&e->src, "  const %s rb%s = %s;\n", it, name, t.s);
  free(t.s);
}

/* `float v<i> = <leaf i at (row, j)>;` for leaves first..n-1 of views. */
static void load_leaves(CgEmit *e, const char *prefix, int first, int n, const CgView *v, const char *indent) {
  char p[32], idx[96], ld[256];
  for (int i = first; i < n; i++) {
    snprintf(p, sizeof p, "%s%d", prefix, i);
    if (v[i].stride[v[i].rank - 1] == 1)
      snprintf(idx, sizeof idx, "rb%s%d + j", prefix, i);
    else
      snprintf(idx, sizeof idx, "rb%s%d + j * %lld", prefix, i, (long long)v[i].stride[v[i].rank - 1]);
    if (v[i].deq) { /* the GEMM's sum scaled once, then the bias: the qlinear's value */
      const char *sc = v[i].deq_e4m3 ? arena_printf(&e->plan->arena, "ditc_qlinear_e4m3_scale(%s[%s], %ssx[0], %ssw[0])", p,
                                                     idx, p, p)
                                     : arena_printf(&e->plan->arena, "ditc_qlinear_scale(%s[%s], %ssx[row], %ssw[j])", p,
                                                     idx, p, p);
      if (v[i].deq_bias)
        cg_text_printf(&e->src, "%sfloat v%d = ditc_add(%s, %s);\n", indent, i, sc,
                       cg_load(v[i].deq_b.dtype, arena_printf(&e->plan->arena, "%sb", p), "j", ld));
      else
        cg_text_printf(&e->src, "%sfloat v%d = %s;\n", indent, i, sc);
      continue;
    }
    cg_text_printf(&e->src, "%sfloat v%d = %s;\n", indent, i, cg_load(v[i].loc.dtype, p, idx, ld));
  }
}

void cg_emit_norm(CgEmit *e, const IrNode *n, const CgNorm *norm) {
  /* the views' element offsets folded into their pointers (parameters) */
  CgNorm s_ = *norm, *s = &s_;
  CgView pin[CG_MAP_MAX_IN], ein[CG_MAP_MAX_IN];
  DITC_ASSERT(s->n_pin <= CG_MAP_MAX_IN && s->n_ein <= CG_MAP_MAX_IN);
  for (int i = 0; i < s->n_pin; i++) pin[i] = norm->pin[i], cg_view_fold(&pin[i]);
  for (int i = 0; i < s->n_ein; i++) ein[i] = norm->ein[i], cg_view_fold(&ein[i]);
  s->pin = pin, s->ein = ein;
  cg_view_fold(&s->side);
  cg_view_fold(&s->out);
  const char *name;
  int k = cg_kernel_open(e, n, "layernorm_fused", s->detail, &name);
  int64_t rows = s->rows, len = s->len, per_lane = (len + 31) / 32, bound = rows * len;
  for (int i = 0; i < s->n_pin; i++)
    if (view_extent(&s->pin[i]) > bound) bound = view_extent(&s->pin[i]);
  for (int i = 1; i < s->n_ein; i++)
    if (view_extent(&s->ein[i]) > bound) bound = view_extent(&s->ein[i]);
  const char *it = index_type(bound);
  const CgView *shape = &s->out; /* every view has the output's shape */
  char buf[32], st[512], f[48];
  cg_text_printf(&e->src, "DITC_KERNEL_BOUNDS(%s, DitcArgs, a, 32 * CG_ROWS_PER_BLOCK) {\n", name);
  for (int i = 0; i < s->n_pin; i++) {
    snprintf(buf, sizeof buf, "p%d", i);
    decl_ptr(e, buf, s->pin[i].loc, 0);
    if (!s->pin[i].deq) continue;
    snprintf(buf, sizeof buf, "p%dsx", i);
    decl_ptr(e, buf, s->pin[i].deq_sx, 0);
    snprintf(buf, sizeof buf, "p%dsw", i);
    decl_ptr(e, buf, s->pin[i].deq_sw, 0);
    snprintf(buf, sizeof buf, "p%db", i);
    if (s->pin[i].deq_bias) decl_ptr(e, buf, s->pin[i].deq_b, 0);
  }
  for (int i = 1; i < s->n_ein; i++) {
    snprintf(buf, sizeof buf, "e%d", i);
    decl_ptr(e, buf, s->ein[i].loc, 0);
  }
  if (s->has_side) decl_ptr(e, "side", s->side.loc, 1);
  decl_ptr(e, "y", s->out.loc, 1);
  if (s->quant) decl_ptr(e, "qsc", s->scales, 1);
  if (s->e4m3) decl_ptr(e, "qs8", s->e4m3_scale, 0);
  cg_text_printf(&e->src, "  %s row = (%s)blockIdx.x * CG_ROWS_PER_BLOCK + threadIdx.y;\n", it, it);
  cg_text_printf(&e->src, "  if (row >= %lld) return;\n", (long long)rows);
  /* the row's coordinates over the leading axes */
  if (shape->rank >= 2) {
    cg_text_printf(&e->src, "  %s rest = row;\n", it);
    for (int d = shape->rank - 2; d > 0; d--)
      cg_text_printf(&e->src, "  %s c%d = rest %% %lld; rest /= %lld;\n", it, d, (long long)shape->shape[d],
                     (long long)shape->shape[d]);
    cg_text_printf(&e->src, "  %s c0 = rest;\n ", it);
    for (int d = 0; d < shape->rank - 1; d++) cg_text_printf(&e->src, " (void)c%d;", d);
    cg_text_printf(&e->src, "\n");
  }
  for (int i = 0; i < s->n_pin; i++) {
    snprintf(buf, sizeof buf, "p%d", i);
    row_base(e, buf, &s->pin[i], it);
  }
  for (int i = 1; i < s->n_ein; i++) {
    snprintf(buf, sizeof buf, "e%d", i);
    row_base(e, buf, &s->ein[i], it);
  }
  if (s->has_side) row_base(e, "side", &s->side, it);
  row_base(e, "y", &s->out, it);
  /* pass 1: the input row into registers (the prologue computed once), its sum */
  cg_text_printf(&e->src,
                 "  float h[%lld];\n"
                 "  float sum = 0.0f;\n"
                 "#pragma unroll\n"
                 "  for (int t = 0; t < %lld; t++) {\n"
                 "    int j = threadIdx.x + 32 * t;\n"
                 "    h[t] = 0.0f;\n"
                 "    if (j < %lld) {\n",
                 (long long)per_lane, (long long)per_lane, (long long)len);
  load_leaves(e, "p", 0, s->n_pin, s->pin, "      ");
  cg_text_printf(&e->src, "      h[t] = %s;\n", s->pexpr ? s->pexpr : "v0"); /* unbounded length */
  if (s->has_side) cg_text_printf(&e->src, "      %s\n", store(s->side.loc.dtype, "side", "rbside + j", "h[t]", st));
  cg_text_printf(&e->src,
                 "      sum += h[t];\n"
                 "    }\n"
                 "  }\n"
                 "  float mean = ditc_warp_sum(sum) / %lld.0f;\n"
                 "  float sq = 0.0f;\n"
                 "#pragma unroll\n"
                 "  for (int t = 0; t < %lld; t++) {\n"
                 "    float d = h[t] - mean;\n"
                 "    if (threadIdx.x + 32 * t < %lld) sq += d * d;\n"
                 "  }\n"
                 "  float rstd = 1.0f / sqrtf(ditc_warp_sum(sq) / %lld.0f + %s);\n"
                 "%s"
                 "#pragma unroll\n"
                 "  for (int t = 0; t < %lld; t++) {\n"
                 "    int j = threadIdx.x + 32 * t;\n"
                 "    if (j < %lld) {\n"
                 "      float v0 = (h[t] - mean) * rstd;\n",
                 (long long)len, (long long)per_lane, (long long)len, (long long)len, cg_float_lit(s->eps, f),
                 s->quant ? "  float qm = 0.0f;\n" : "", (long long)per_lane, (long long)len);
  load_leaves(e, "e", 1, s->n_ein, s->ein, "      ");
  if (!s->quant) {
    cg_text_printf(&e->src, "      float r = %s;\n      %s\n    }\n  }\n}\n\n", s->eexpr ? s->eexpr : "v0",
                   store(s->out.loc.dtype, "y", "rby + j", s->e4m3 ? "ditc_quantize_e4m3(r, qs8[0])" : "r", st));
    rows_launch(e, n, k, rows);
    return;
  }
  /* the results kept in h, their largest magnitude, then the levels (as quant_rows) */
  cg_text_printf(&e->src,
                 "      h[t] = %s;\n"
                 "      qm = ditc_absmax(qm, h[t]);\n"
                 "    }\n"
                 "  }\n"
                 "  DITC_XOR_REDUCE(qm, ditc_absmax, 32);\n"
                 "  float sc = ditc_qscale(qm, %s);\n"
                 "  if (threadIdx.x == 0) qsc[row] = sc;\n"
                 "#pragma unroll\n"
                 "  for (int t = 0; t < %lld; t++) {\n"
                 "    int j = threadIdx.x + 32 * t;\n"
                 "    if (j < %lld) %s\n"
                 "  }\n"
                 "}\n\n",
                 s->eexpr ? s->eexpr : "v0", cg_float_lit(s->qmax, f), (long long)per_lane, (long long)len,
                 store(s->out.loc.dtype, "y", "rby + j", "ditc_quantize_i8(h[t], sc)", st));
  rows_launch(e, n, k, rows);
}

/* ======================================================================== */
/* helpers other kernel files use (moe.c)                                   */
/* ======================================================================== */

const char *cg_store(IrDType t, const char *p, const char *idx, const char *v, char buf[512]) {
  return store(t, p, idx, v, buf);
}

void cg_decl_ptr(CgEmit *e, const char *name, CgLoc l, int writable) { decl_ptr(e, name, l, writable); }

void cg_launch_1d(CgEmit *e, const IrNode *n, int k, int64_t count, int block) {
  launch_1d(e, n, k, count, block);
}
