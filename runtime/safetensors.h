/*
 * safetensors.h - strict reader and atomic writer of the safetensors format.
 *
 * Layout: u64 little-endian header length N, N bytes of JSON
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
 *  "__metadata__": {"key": "string", ...}}, then the data buffer.
 * The reader maps the file and rejects anything that does not add up: bad
 * JSON, duplicate names, unknown dtypes, negative or overflowing shapes, offsets
 * outside the buffer, sizes that disagree with dtype x shape, overlapping
 * tensors, and a header that runs past the end of the file.
 */
#ifndef DITC_SAFETENSORS_H
#define DITC_SAFETENSORS_H

#include "ir/fileio.h"
#include "runtime/tensor.h"

typedef enum {
  ST_BOOL, ST_U8, ST_I8, ST_I16, ST_U16, ST_I32, ST_U32, ST_I64, ST_U64,
  ST_F16, ST_BF16, ST_F32, ST_F64, ST_DTYPE_COUNT
} StDType;

const char *st_dtype_name(StDType t);  /* "F32", ... */
size_t st_dtype_size(StDType t);

#define ST_MAX_RANK 8

typedef struct {
  const char *name;
  StDType dtype;
  int rank;
  int64_t shape[ST_MAX_RANK];
  const uint8_t *data;  /* inside the mapping; may be unaligned */
  size_t nbytes;
} StTensor;

typedef struct StFile StFile;

/* Open and validate; NULL with a message naming the file on any problem. */
StFile *st_open(const char *path, IrErr *err);
/* Validate a buffer already in memory (the fuzz target's entry); buf must
 * outlive the StFile. */
StFile *st_open_memory(const uint8_t *buf, size_t len, const char *label, IrErr *err);
void st_close(StFile *f);

int st_count(const StFile *f);
const StTensor *st_get(const StFile *f, int i);           /* in file order */
const StTensor *st_find(const StFile *f, const char *name); /* NULL if absent */
const char *st_metadata(const StFile *f, const char *key); /* NULL if absent */
const char *st_path(const StFile *f);

/* Convert a tensor's elements.  Float targets accept any float or integer
 * source; i32 accepts integer sources whose values fit (else an error naming
 * the tensor).  out must hold numel elements. */
int st_to_f32(const StTensor *t, float *out, IrErr *err);
int st_to_i32(const StTensor *t, int32_t *out, IrErr *err);
/* Load as an RtTensor of the given IR dtype (F32 or I32), owned by the caller. */
int st_load(const StTensor *t, IrDType want, RtTensor *out, IrErr *err);

/* Writer: tensors are copied in; save() writes through an output of
 * ir/fileio.h (a temporary file renamed into place, or straight through to a
 * device or FIFO), so a failed or interrupted save never leaves a
 * half-written file.  write() puts the file into an output the caller opened
 * (one of a transaction's) and leaves committing to it. */
typedef struct StWriter StWriter;
StWriter *st_writer_new(void);
void st_writer_add(StWriter *w, const char *name, StDType dtype, int rank,
                   const int64_t *shape, const void *data);
void st_writer_add_tensor(StWriter *w, const char *name, const RtTensor *t);
void st_writer_meta(StWriter *w, const char *key, const char *value);
int st_writer_save(StWriter *w, const char *path, IrErr *err);
int st_writer_write(StWriter *w, FioOut *o, IrErr *err);
void st_writer_free(StWriter *w);

#endif
