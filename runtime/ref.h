/*
 * ref.h - the reference executor: runs the IR on the CPU in fp32.
 *
 * Plain, obviously correct C, one function per op; matrix products through
 * OpenBLAS, loops over rows through OpenMP.  It is the oracle every other
 * backend is compared with, and the CPU backend for users without a GPU.
 */
#ifndef DITC_REF_H
#define DITC_REF_H

#include "runtime/tensor.h"
#include "runtime/weights.h"

typedef struct RefExec RefExec;

/* Prepare to run g at a fixed batch: concrete shapes, buffer lifetimes. */
RefExec *ref_prepare(IrGraph *g, const Weights *w, int64_t batch, IrErr *err);
/* inputs: one per INPUT node in graph order (ir_graph_inputs), dtype and shape
 * as declared at this batch (F32 or I32).  outputs: one per graph output,
 * allocated here, freed by the caller with rt_tensor_free. */
int ref_run(RefExec *e, const RtTensor *inputs, RtTensor *outputs, IrErr *err);
void ref_free(RefExec *e);
/* After a ref_run whose outputs held NaN or Inf: the graph once more on the
 * same inputs, node by node, checking each float value (weights, inputs and
 * values computed once included); where gets the first that holds a NaN or
 * an infinity ("node %12 (linear 'blocks.0.attn.qkv' at m.dit:40), value inf
 * at flat index 3").  Returns 1 when found, 0 when every value is finite, -1
 * with err. */
int ref_locate_nonfinite(RefExec *e, const RtTensor *inputs, char *where, size_t n, IrErr *err);

/* An observer (calibration, runtime/calib.h): called by ref_run after every
 * node it computes (not the leaves, nor the weight-only nodes ref_prepare
 * computed), in graph order.  While it runs, ref_value gives the values of
 * that node and of its inputs (other nodes' storage may already hold
 * something else).  fn NULL: none. */
typedef void (*RefObserveFn)(void *ctx, RefExec *e, const IrNode *node);
void ref_set_observer(RefExec *e, RefObserveFn fn, void *ctx);
/* Node n's f32 values at the executor's batch (NULL for an i32 node), their
 * count in *numel. */
const float *ref_value(RefExec *e, const IrNode *n, int64_t *numel);

/* Deduce the batch from the inputs' leading dims; -1 with err if inconsistent. */
int64_t ref_batch_of(IrGraph *g, const RtTensor *inputs, IrErr *err);

#endif
