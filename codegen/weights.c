/*
 * weights.c - the plan's weights blob: computed weights (a concat, slice,
 * permute, cast or reduce_mean of other weights, e.g. hoist-adaln's stacked
 * adaLN weights, kv-heads' averaged K/V rows) are evaluated in f32 from their inputs' values by ir/eval.c (as
 * constant folding and the reference executor evaluate them), and every stored
 * weight is converted to its CgWeight's dtype (cg_plan_fill_weights); the pack
 * reader checks each computed weight with cg_weight_check.
 */
#include <stdlib.h>
#include <string.h>

#include "codegen/plan.h"
#include "ir/scalar.h"

static int64_t shape_numel(int rank, const int64_t *shape) {
  int64_t n = 1;
  for (int j = 0; j < rank; j++) n *= shape[j];
  return n;
}

/* Elements before and after `axis` of a computed weight's shape. */
static void outer_inner(const CgWeight *cw, int axis, int64_t *outer, int64_t *inner) {
  *outer = *inner = 1;
  for (int j = 0; j < cw->rank; j++) {
    if (j < axis) *outer *= cw->shape[j];
    if (j > axis) *inner *= cw->shape[j];
  }
}

static int is_float_dtype(IrDType t) { return t == IR_F32 || t == IR_F16 || t == IR_BF16; }

int cg_weight_check(const CgPlan *p, int i, IrErr *err) {
  const CgWeight *cw = &p->weights[i];
  const char *name = cw->name ? cw->name : "?";
  if (cw->n_in == 0) return 0;
  if (cw->n_in < 0 || !cw->in) return ir_errf(err, "computed weight '%s': no inputs", name);
  if (cw->param_id >= 0 || cw->const_data)
    return ir_errf(err, "computed weight '%s' is also a parameter or constant", name);
  int quant = cw->op == IR_QSCALE || cw->op == IR_QUANTIZE || cw->op == IR_QUANTIZE_E4M3;
  if (!is_float_dtype(cw->dtype) && !(cw->op == IR_QUANTIZE && cw->dtype == IR_I8) &&
      !(cw->op == IR_QUANTIZE_E4M3 && cw->dtype == IR_E4M3))
    return ir_errf(err, "computed weight '%s': dtype %s", name, ir_dtype_name(cw->dtype));
  int64_t numel = shape_numel(cw->rank, cw->shape), in_numel[1] = {0};
  for (int j = 0; j < cw->n_in; j++) {
    int k = cw->in[j];
    if (k < 0 || k >= i) return ir_errf(err, "computed weight '%s': input %d is not an earlier weight", name, k);
    if (!is_float_dtype(p->weights[k].dtype))
      return ir_errf(err, "computed weight '%s': input '%s' is not float", name, p->weights[k].name ? p->weights[k].name : "?");
    if (j == 0) in_numel[0] = shape_numel(p->weights[k].rank, p->weights[k].shape);
  }
  int axis = cw->attr.axis;
  int64_t outer, inner;
  if (quant) { /* qscale reduces from axis on, quantize's scales broadcast; x seen through a reshape (the
               * experts' stacked weights, reshape(concat)) when its own rank is not the weight's */
    const CgWeight *x = &p->weights[cw->in[0]], *sc = cw->n_in > 1 ? &p->weights[cw->in[1]] : NULL;
    int own = x->rank == cw->rank;
    int ok = cw->n_in == (cw->op == IR_QSCALE ? 1 : 2) && (!sc || sc->rank == cw->rank);
    if (ok && cw->op == IR_QSCALE) ok = axis >= 0 && axis < cw->rank && cw->attr.f >= 1.0f;
    if (ok && !own && cw->op == IR_QSCALE) { /* the rows: cw's leading axes, each row the rest of x */
      outer_inner(cw, axis, &outer, &inner);
      ok = outer > 0 && in_numel[0] % outer == 0;
    } else if (ok && !own)
      ok = in_numel[0] == numel;
    for (int j = 0; ok && j < cw->rank; j++) {
      if (cw->op == IR_QSCALE) ok = j < axis ? !own || cw->shape[j] == x->shape[j] : cw->shape[j] == 1;
      else ok = (!own || x->shape[j] == cw->shape[j]) && (sc->shape[j] == 1 || sc->shape[j] == cw->shape[j]);
    }
    if (ok && sc) ok = sc->dtype == IR_F32;
    if (ok) return 0;
    return ir_errf(err, "computed weight '%s': its %s does not fit its inputs", name, ir_op_name(cw->op));
  }
  switch (cw->op) {
  case IR_RESHAPE:
  case IR_CAST:
    if (cw->n_in != 1 || in_numel[0] != numel) break;
    if (cw->op == IR_CAST && !is_float_dtype(cw->attr.to)) break;
    return 0;
  case IR_PERMUTE: {
    unsigned seen = 0;
    if (cw->n_in != 1 || in_numel[0] != numel) break;
    for (int j = 0; j < cw->rank; j++) {
      int q = cw->attr.perm[j];
      if (q < 0 || q >= cw->rank || (seen >> q & 1)) return ir_errf(err, "computed weight '%s': bad permutation", name);
      seen |= 1u << q;
    }
    return 0;
  }
  case IR_REDUCE_MEAN: /* over axes axis..rank-1, kept with size 1 */
    if (cw->n_in != 1 || axis < 0 || axis >= cw->rank || numel == 0 || in_numel[0] % numel) break;
    for (int j = axis; j < cw->rank; j++)
      if (cw->shape[j] != 1) return ir_errf(err, "computed weight '%s': reduced axes must have size 1", name);
    return 0;
  case IR_SLICE:
    if (cw->n_in != 1 || axis < 0 || axis >= cw->rank) break;
    outer_inner(cw, axis, &outer, &inner);
    if (outer * inner == 0) {
      if (numel == 0) return 0;
      break;
    }
    if (in_numel[0] % (outer * inner) || cw->attr.start < 0 || cw->attr.len != cw->shape[axis] ||
        cw->attr.start > in_numel[0] / (outer * inner) - cw->shape[axis])
      break;
    return 0;
  case IR_CONCAT: {
    if (axis < 0 || axis >= cw->rank) break;
    outer_inner(cw, axis, &outer, &inner);
    int64_t along = 0;
    int ok = 1;
    for (int j = 0; j < cw->n_in && ok; j++) {
      const CgWeight *x = &p->weights[cw->in[j]];
      int64_t n = shape_numel(x->rank, x->shape);
      if (outer * inner == 0) {
        ok = n == 0;
      } else {
        ok = n % (outer * inner) == 0;
        along += n / (outer * inner);
      }
    }
    if (!ok || (outer * inner != 0 && along != cw->shape[axis])) break;
    return 0;
  }
  default: return ir_errf(err, "computed weight '%s': op %s cannot be computed into the blob", name, ir_op_name(cw->op));
  }
  return ir_errf(err, "computed weight '%s': its %s does not fit its inputs", name, ir_op_name(cw->op));
}

/* Input j of computed weight cw as the host array its op reads: the input
 * weight's values in the shape the op sees.  That is the input's own shape
 * only up to reshapes (the lowering looks through them), so it is derived
 * from cw's shape and the input's element count (the checks above hold). */
static IrArray input_array(const CgPlan *p, const CgWeight *cw, int j, float *const *val) {
  const CgWeight *w = &p->weights[cw->in[j]];
  IrArray a = {.dtype = w->dtype, .rank = cw->rank, .data = val[cw->in[j]]};
  for (int k = 0; k < cw->rank; k++) a.d[k] = cw->shape[k];
  if ((cw->op == IR_QSCALE || cw->op == IR_QUANTIZE || cw->op == IR_QUANTIZE_E4M3) && w->rank == cw->rank) {
    for (int k = 0; k < cw->rank; k++) a.d[k] = w->shape[k];
  } else if (cw->op == IR_QSCALE && j == 0) { /* through a reshape: cw's rows, each the rest of x */
    int64_t outer, inner;
    outer_inner(cw, cw->attr.axis, &outer, &inner);
    a.d[cw->attr.axis] = outer ? shape_numel(w->rank, w->shape) / outer : 0;
  } else if (cw->op == IR_PERMUTE) {
    for (int k = 0; k < cw->rank; k++) a.d[cw->attr.perm[k]] = cw->shape[k];
  } else if (cw->op == IR_REDUCE_MEAN) { /* the reduced axes as one */
    a.d[cw->attr.axis] = shape_numel(w->rank, w->shape) / shape_numel(cw->rank, cw->shape);
  } else if (cw->op == IR_SLICE || cw->op == IR_CONCAT) {
    int64_t outer, inner;
    outer_inner(cw, cw->attr.axis, &outer, &inner);
    a.d[cw->attr.axis] = outer * inner != 0 ? shape_numel(w->rank, w->shape) / (outer * inner) : 0;
  }
  return a;
}

/* The f32 values of computed weight cw from its inputs' values, by the host
 * evaluation folding and the reference executor use (ir/eval.c). */
static float *compute_weight(const CgPlan *p, const CgWeight *cw, float *const *val, IrErr *err) {
  int64_t numel = shape_numel(cw->rank, cw->shape);
  float *out = xmalloc((size_t)(numel > 0 ? numel : 1) * sizeof *out);
  IrArray y = {.dtype = cw->op == IR_CAST ? cw->attr.to : IR_F32, .rank = cw->rank, .data = out};
  for (int k = 0; k < cw->rank; k++) y.d[k] = cw->shape[k];
  IrArray *in = xmalloc((size_t)cw->n_in * sizeof *in);
  for (int j = 0; j < cw->n_in; j++) in[j] = input_array(p, cw, j, val);
  int rc = 0;
  if (cw->op == IR_QSCALE || cw->op == IR_QUANTIZE || cw->op == IR_QUANTIZE_E4M3) /* inputs in their own shapes (cg_weight_check) */
    ir_eval_quant(cw->op, &cw->attr, &y, cw->n_in, in);
  else if (cw->op == IR_REDUCE_MEAN)
    ir_eval_reduce(cw->op, cw->attr.axis, &y, &in[0]);
  else
    rc = ir_eval_layout(cw->op, &cw->attr, 1, &y, cw->n_in, in, err);
  free(in);
  if (rc) {
    free(out);
    return NULL;
  }
  return out;
}

/* n values src (f32; i32 bits for an i32 CONST) into dst in dtype t. */
static int store_weight(const CgWeight *cw, const float *src, int64_t n, char *dst, IrErr *err) {
  switch (cw->dtype) {
  case IR_F32: memcpy(dst, src, (size_t)n * 4); break;
  case IR_I32:
    if (cw->const_data) {
      memcpy(dst, src, (size_t)n * 4); /* i32 bits */
    } else {
      for (int64_t j = 0; j < n; j++) ((int32_t *)dst)[j] = (int32_t)src[j];
    }
    break;
  case IR_I8: /* int8 levels, whole numbers in -127..127 (ditc_quantize_i8): only quantize computes them */
    if (cw->op != IR_QUANTIZE || !cw->n_in)
      return ir_errf(err, "codegen: weight '%s' is i8 but not computed by quantize", cw->name ? cw->name : "?");
    for (int64_t j = 0; j < n; j++) ((int8_t *)dst)[j] = (int8_t)src[j];
    break;
  case IR_E4M3: /* e4m3 values held decoded (ditc_quantize_e4m3): their codes, exact */
    if (cw->op != IR_QUANTIZE_E4M3 || !cw->n_in)
      return ir_errf(err, "codegen: weight '%s' is e4m3 but not computed by quantize_e4m3", cw->name ? cw->name : "?");
    for (int64_t j = 0; j < n; j++) ((uint8_t *)dst)[j] = ditc_f32_to_e4m3(src[j]);
    break;
  case IR_F16:
    for (int64_t j = 0; j < n; j++) {
      uint16_t h = ir_f32_to_f16(src[j]);
      memcpy(dst + 2 * j, &h, 2);
    }
    break;
  case IR_BF16:
    for (int64_t j = 0; j < n; j++) {
      uint16_t h = ir_f32_to_bf16(src[j]);
      memcpy(dst + 2 * j, &h, 2);
    }
    break;
  default: return ir_errf(err, "codegen: weight '%s' has unsupported dtype %s", cw->name ? cw->name : "?",
                          ir_dtype_name(cw->dtype));
  }
  return 0;
}

int cg_plan_fill_weights(const CgPlan *p, CgParamValues values, void *blob, IrErr *err) {
  char *out = blob;
  memset(out, 0, (size_t)p->weights_bytes);
  /* values of the weights computed weights read, f32 (owned when computed or rounded) */
  float **val = xcalloc((size_t)p->n_weights + 1, sizeof *val);
  unsigned char *owned = xcalloc((size_t)p->n_weights + 1, 1), *read = xcalloc((size_t)p->n_weights + 1, 1);
  int rc = -1;
  for (int i = 0; i < p->n_weights; i++)
    for (int j = 0; j < p->weights[i].n_in; j++)
      if (p->weights[i].in[j] >= 0 && p->weights[i].in[j] < i) read[p->weights[i].in[j]] = 1;
  for (int i = 0; i < p->n_weights; i++) {
    const CgWeight *cw = &p->weights[i];
    int64_t n = shape_numel(cw->rank, cw->shape);
    const float *src = cw->const_data;
    if (cw->n_in) {
      if (cg_weight_check(p, i, err)) goto out;
      if (!(src = val[i] = compute_weight(p, cw, val, err))) goto out;
      owned[i] = 1;
    } else if (!src) {
      if (cw->param_id < 0 || cw->param_id >= values.n || !values.by_id || !values.by_id[cw->param_id]) {
        ir_errf(err, "codegen: weight '%s' is not bound", cw->name ? cw->name : "?");
        goto out;
      }
      src = values.by_id[cw->param_id];
    }
    if (read[i] && !cw->n_in) {
      /* a half-typed parameter holds half values (as runtime/ref.c does) */
      if (cw->dtype == IR_F16 || cw->dtype == IR_BF16) {
        float *r = xmalloc((size_t)(n > 0 ? n : 1) * sizeof *r);
        memcpy(r, src, (size_t)n * sizeof *r);
        ir_round_to(cw->dtype, r, n);
        val[i] = r;
        owned[i] = 1;
      } else {
        val[i] = (float *)src;
      }
    }
    if (cw->offset >= 0 && store_weight(cw, src, n, out + cw->offset, err)) goto out;
  }
  rc = 0;
out:
  for (int i = 0; i < p->n_weights; i++)
    if (owned[i]) free(val[i]);
  free(val);
  free(owned);
  free(read);
  return rc;
}
