/*
 * fuzz_safetensors.c - libFuzzer target for the safetensors reader.
 *
 * Every input is handed to st_open_memory(); whatever it accepts must be safe
 * to convert, so every tensor (up to 1M elements, to bound the time per input)
 * goes through st_to_f32 and st_to_i32, and every lookup must find itself.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  IrErr err;
  StFile *f = st_open_memory(data, size, "fuzz", &err);
  if (!f) {
    DITC_ASSERT(err.msg[0] != '\0');
    return 0;
  }
  for (int i = 0; i < st_count(f); i++) {
    const StTensor *t = st_get(f, i);
    DITC_ASSERT(st_find(f, t->name) == t);
    DITC_ASSERT(t->data >= data && t->data + t->nbytes <= data + size);
    int64_t numel = 1;
    for (int k = 0; k < t->rank; k++) numel *= t->shape[k];
    DITC_ASSERT(numel >= 0);
    DITC_ASSERT((size_t)numel * st_dtype_size(t->dtype) == t->nbytes);
    if (numel > (1 << 20)) continue;
    float *out = malloc((size_t)(numel ? numel : 1) * sizeof(float));
    st_to_f32(t, out, &err);
    st_to_i32(t, (int32_t *)out, &err);
    free(out);
  }
  if (st_count(f) > 0) (void)st_metadata(f, "format");
  st_close(f);
  return 0;
}
