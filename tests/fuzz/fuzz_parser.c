/*
 * fuzz_parser.c - libFuzzer target for the whole front end: the input is a
 * model file, parsed and elaborated (entry "forward" of its last model) from
 * memory.  Diagnostics go to /dev/null; nothing touches the disk.  Budgets
 * (statements, nodes, call depth, value memory) keep every input fast.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "frontend/frontend.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static FILE *sink;
  if (!sink) sink = fopen("/dev/null", "w");
  FeModel m;
  fe_build_source("fuzz.dit", (const char *)data, size, NULL, NULL, 0, "forward", sink, &m);
  fe_model_free(&m);
  return 0;
}
