/*
 * image.h - write samples as a PNG grid (libpng).
 *
 * Samples [N, C, H, W] in [-1, 1] are clamped and mapped to 0..255, laid out
 * `ncol` per row with a 2-pixel border (torchvision's make_grid look).  C = 1 is
 * grey, C = 3 RGB; other channel counts are shown as C grey tiles side by side.
 * The file is written to a temporary name and renamed: no half-written PNG
 * (an output of ir/fileio.h; _to writes into one the caller opened, e.g. as
 * part of a transaction, and leaves committing to it).
 */
#ifndef DITC_IMAGE_H
#define DITC_IMAGE_H

#include "ir/fileio.h"
#include "runtime/tensor.h"

int image_write_grid(const char *path, const float *x, int64_t n, int c, int h, int w, int ncol,
                     IrErr *err);
int image_write_grid_to(FioOut *out, const float *x, int64_t n, int c, int h, int w, int ncol,
                        IrErr *err);

#endif
