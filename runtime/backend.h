/*
 * backend.h - the devices a model runs on, behind one table of function
 * pointers (the shape of ggml's ggml_backend_i):
 *
 *   ref   the reference executor (ref.h): runs the IR graph itself, fp32;
 *   emu   the emulated device: runs an execution plan (codegen/plan.h) on the
 *         CPU, kernels through codegen/emu.h, GEMMs through cg_gemm_ref;
 *   cuda  runs a plan's CUBIN on a GPU through runtime/cuda_api.h, GEMMs on
 *         cuBLASLt, the forward pass replayed as a CUDA graph after the first.
 *
 * Every backend runs at a fixed batch and takes the same host tensors: one
 * per graph input in ir_graph_inputs() order (the plan's `inputs` order, the
 * same), F32 for float inputs and I32 for integer ones, each of exactly the
 * shape the model expects at that batch; it converts them to the stored
 * dtype (f16/bf16 plans) itself.  Outputs, one per graph output, are F32
 * (I32 for integer outputs), allocated by run() and freed by the caller
 * with rt_tensor_free().
 */
#ifndef DITC_BACKEND_H
#define DITC_BACKEND_H

#include "codegen/pack.h"
#include "codegen/plan.h"
#include "tensor.h"
#include "weights.h"

/* What prepare() needs; each backend reads its part.  Everything is
 * borrowed and must outlive the backend. */
typedef struct {
  /* ref */
  IrGraph *graph;
  const Weights *weights;
  int64_t batch;
  /* emu, cuda */
  const CgPlan *plan;
  const void *blob;              /* the weights blob, plan->weights_bytes of host memory */
  /* cuda */
  const CgPackCubin *cubins;     /* the plan's CUBIN per architecture */
  int n_cubins;
} RtModel;

typedef struct RtBackend RtBackend;
struct RtBackend {
  const char *name;
  /* 1 when this backend can run op (the plan-based ones ask the code generator). */
  int (*supports_op)(const RtBackend *b, IrOp op);
  /* Load the model; 0 or -1 with err. */
  int (*prepare)(RtBackend *b, const RtModel *m, IrErr *err);
  /* One forward pass (see the top); 0 or -1 with err. */
  int (*run)(RtBackend *b, const RtTensor *inputs, RtTensor *outputs, IrErr *err);
  void (*free)(RtBackend *b);
  void *impl;
};

/* "ref", "emu" or "cuda".  cuda fails here, with rt_cuda_available()'s
 * reason, when there is no usable GPU. */
RtBackend *rt_backend_new(const char *name, IrErr *err);
RtBackend *rt_backend_ref(void);
RtBackend *rt_backend_emu(void);
RtBackend *rt_backend_cuda(IrErr *err);
static inline void rt_backend_free(RtBackend *b) {
  if (b) b->free(b);
}

/* ---- shared by the plan-based backends ---------------------------------- */

/* Check host tensor t against plan input io (dtype kind and exact shape;
 * the message says which batch the plan was built for) and write it, in
 * io's dtype, to dst. */
int rt_io_put(const CgPlan *p, const CgIo *io, const RtTensor *t, void *dst, IrErr *err);
/* A new host tensor (F32, or I32 for i32 outputs) from io's bytes at src. */
RtTensor rt_io_get(const CgIo *io, const void *src);
/* Bytes of io at its dtype. */
size_t rt_io_bytes(const CgIo *io);
/* The arena offset of the plan's status word (plan.h), or -1 for none; and
 * the word read after a run, as an error (-1) or 0. */
int64_t rt_status_offset(const CgPlan *p);
int rt_status_check(int32_t status, IrErr *err);

#endif
