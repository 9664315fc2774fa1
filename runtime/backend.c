/*
 * backend.c - the backend registry, the reference backend (a thin wrapper
 * around ref.h, so `--backend ref` computes exactly what ref_run does), and
 * the input/output conversions the plan-based backends share.
 */
#include "backend.h"

#include <stdlib.h>
#include <string.h>

#include "ref.h"

/* ---- ref ------------------------------------------------------------------- */

static int ref_supports(const RtBackend *b, IrOp op) {
  (void)b, (void)op;
  return 1;
}

static int ref_be_prepare(RtBackend *b, const RtModel *m, IrErr *err) {
  if (!m->graph || !m->weights) return ir_errf(err, "the ref backend runs a model graph, not a plan");
  ref_free(b->impl);
  b->impl = ref_prepare(m->graph, m->weights, m->batch, err);
  return b->impl ? 0 : -1;
}

static int ref_be_run(RtBackend *b, const RtTensor *in, RtTensor *out, IrErr *err) {
  if (!b->impl) return ir_errf(err, "ref backend: run before prepare");
  return ref_run(b->impl, in, out, err);
}

static void ref_be_free(RtBackend *b) {
  ref_free(b->impl);
  free(b);
}

RtBackend *rt_backend_ref(void) {
  RtBackend *b = xcalloc(1, sizeof *b);
  *b = (RtBackend){"ref", ref_supports, ref_be_prepare, ref_be_run, ref_be_free, NULL};
  return b;
}

RtBackend *rt_backend_new(const char *name, IrErr *err) {
  if (!strcmp(name, "ref")) return rt_backend_ref();
  if (!strcmp(name, "emu")) return rt_backend_emu();
  if (!strcmp(name, "cuda")) return rt_backend_cuda(err);
  ir_errf(err, "unknown backend '%s' (ref, emu or cuda)", name);
  return NULL;
}

/* ---- plan inputs and outputs ------------------------------------------------ */

size_t rt_io_bytes(const CgIo *io) {
  size_t n = ir_dtype_size(io->dtype);
  for (int i = 0; i < io->rank; i++) n *= (size_t)io->shape[i];
  return n;
}

static char *dims(int rank, const int64_t *d, char *buf, size_t n) {
  size_t used = (size_t)snprintf(buf, n, "[");
  for (int i = 0; i < rank && used < n; i++)
    used += (size_t)snprintf(buf + used, n - used, "%s%lld", i ? ", " : "", (long long)d[i]);
  if (used < n) snprintf(buf + used, n - used, "]");
  return buf;
}

int rt_io_put(const CgPlan *p, const CgIo *io, const RtTensor *t, void *dst, IrErr *err) {
  char a[96], b[96];
  int same = t->rank == io->rank;
  for (int i = 0; same && i < t->rank; i++) same = t->shape[i] == io->shape[i];
  if (!same)
    return ir_errf(err, "input '%s' has shape %s; the plan expects %s (it was built for batch %lld)", io->name,
                   dims(t->rank, t->shape, a, sizeof a), dims(io->rank, io->shape, b, sizeof b),
                   (long long)p->batch);
  int64_t n = rt_numel(t);
  if (io->dtype == IR_I32) {
    if (t->dtype != IR_I32) return ir_errf(err, "input '%s' must be integers", io->name);
    memcpy(dst, t->data, (size_t)n * 4);
    return 0;
  }
  if (t->dtype != IR_F32) return ir_errf(err, "input '%s' must be f32", io->name);
  const float *s = t->data;
  uint16_t *h = dst;
  switch (io->dtype) {
  case IR_F32: memcpy(dst, s, (size_t)n * 4); return 0;
  case IR_F16: for (int64_t i = 0; i < n; i++) h[i] = rt_f32_to_f16(s[i]); return 0;
  case IR_BF16: for (int64_t i = 0; i < n; i++) h[i] = rt_f32_to_bf16(s[i]); return 0;
  default: return ir_errf(err, "input '%s': unsupported dtype %s", io->name, ir_dtype_name(io->dtype));
  }
}

RtTensor rt_io_get(const CgIo *io, const void *src) {
  RtTensor t = rt_tensor_new(io->dtype == IR_I32 ? IR_I32 : IR_F32, io->rank, io->shape);
  int64_t n = rt_numel(&t);
  const uint16_t *h = src;
  float *f = t.data;
  switch (io->dtype) {
  case IR_F32:
  case IR_I32: memcpy(t.data, src, (size_t)n * 4); break;
  case IR_F16: for (int64_t i = 0; i < n; i++) f[i] = rt_f16_to_f32(h[i]); break;
  case IR_BF16: for (int64_t i = 0; i < n; i++) f[i] = rt_bf16_to_f32(h[i]); break;
  default: memset(t.data, 0, rt_nbytes(&t)); break; /* i8 outputs do not occur */
  }
  return t;
}

int64_t rt_status_offset(const CgPlan *p) { return p->status_offset; }

int rt_status_check(int32_t s, IrErr *err) {
  if (!s) return 0;
  if (s == CG_STATUS_EMBEDDING_RANGE)
    return ir_errf(err, "an embedding index (a class label) was out of range for its table");
  return ir_errf(err, "the plan's status word reports error bits 0x%x", (unsigned)s);
}
