/*
 * image.h - write samples as a PNG grid (libpng).
 *
 * Samples [N, C, H, W] in [-1, 1] are clamped and mapped to 0..255, laid out
 * `ncol` per row with a 2-pixel border (torchvision's make_grid look).  C = 1 is
 * grey, C = 3 RGB; other channel counts are shown as C grey tiles side by side.
 * The file is written to a temporary name and renamed: no half-written PNG.
 */
#ifndef DITC_IMAGE_H
#define DITC_IMAGE_H

#include "runtime/tensor.h"

int image_write_grid(const char *path, const float *x, int64_t n, int c, int h, int w, int ncol,
                     IrErr *err);

#endif
