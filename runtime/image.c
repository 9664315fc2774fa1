/*
 * image.c - samples to a PNG grid with libpng.
 *
 * Layout follows torchvision's make_grid(padding=2, pad_value=0) as DiT's
 * save_image uses it: cells of (h + 2) x (w + 2) pixels, a 2-pixel black
 * border round and between the tiles, `ncol` samples a row.  Values go
 * through save_image(normalize=True, value_range=(-1, 1)) in float32:
 * clamp to [-1, 1], (x + 1) / 2, * 255 + 0.5, clamp to [0, 255], truncate.
 * C = 1 is written grey, C = 3 RGB; any other C as C grey tiles per sample,
 * side by side (the grid then has ncol * C columns of tiles).
 *
 * The PNG goes to an output of ir/fileio.h (a temporary file renamed over
 * PATH once complete, or straight through to a device or FIFO); libpng
 * writes through callbacks into it, so a failed write's reason ("No space
 * left on device") reaches the message, and its errors come back through
 * setjmp and leave nothing behind.
 */
#include "runtime/image.h"

#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GRID_PAD 2

/* libpng reports errors here; the message is kept for the caller. */
typedef struct {
  char msg[256];
} PngErr;

static void png_error_cb(png_structp png, png_const_charp msg) {
  PngErr *e = png_get_error_ptr(png);
  if (e) snprintf(e->msg, sizeof e->msg, "%s", msg);
  png_longjmp(png, 1);
}

static void png_warning_cb(png_structp png, png_const_charp msg) {
  (void)png;
  (void)msg; /* library code stays quiet */
}

static uint8_t to_byte(float v) {
  if (isnan(v)) return 0;
  v = v < -1.0f ? -1.0f : v > 1.0f ? 1.0f : v;
  float s = (v + 1.0f) / 2.0f * 255.0f + 0.5f;
  s = s < 0.0f ? 0.0f : s > 255.0f ? 255.0f : s;
  return (uint8_t)s;
}

/* Render the grid into a byte buffer of rows_px x cols_px x planes. */
static uint8_t *render(const float *x, int64_t n, int c, int h, int w, int ncol, int *out_w,
                       int *out_h, int *planes) {
  /* Tiles are single-plane images unless C == 3. */
  int rgb = c == 3;
  int64_t tiles = rgb ? n : n * c;
  int64_t cols = rgb ? ncol : (int64_t)ncol * c;
  if (cols > tiles) cols = tiles;
  int64_t grid_rows = (tiles + cols - 1) / cols;
  int64_t W = cols * (w + GRID_PAD) + GRID_PAD, H = grid_rows * (h + GRID_PAD) + GRID_PAD;
  int np = rgb ? 3 : 1;
  uint8_t *img = xcalloc((size_t)(W * H * np), 1); /* pad value 0: black */
  for (int64_t k = 0; k < tiles; k++) {
    int64_t y0 = (k / cols) * (h + GRID_PAD) + GRID_PAD, x0 = (k % cols) * (w + GRID_PAD) + GRID_PAD;
    for (int y = 0; y < h; y++)
      for (int xx = 0; xx < w; xx++)
        for (int p = 0; p < np; p++) {
          /* RGB tile k = sample k, plane p; grey tile k = plane k % c of sample k / c,
           * both at offset (k * np + p) * h * w in the [N, C, H, W] array */
          float v = x[((k * np + p) * h + y) * (int64_t)w + xx];
          img[((y0 + y) * W + x0 + xx) * np + p] = to_byte(v);
        }
  }
  *out_w = (int)W;
  *out_h = (int)H;
  *planes = np;
  return img;
}

/* libpng writes through these into the output; the output's own message
 * (with strerror: "No space left on device") is what png_error carries. */
typedef struct {
  FioOut *out;
  PngErr *e;
} PngSink;

static void png_write_cb(png_structp png, png_bytep data, size_t n) {
  PngSink *s = png_get_io_ptr(png);
  IrErr err;
  if (fio_out_write(s->out, data, n, &err)) {
    snprintf(s->e->msg, sizeof s->e->msg, "%s", fio_err_reason(&err, fio_out_path(s->out)));
    png_longjmp(png, 1);
  }
}

static void png_flush_cb(png_structp png) { (void)png; }

/* libpng part, kept apart so that no local of image_write_grid_to lives across
 * the setjmp.  Returns 0 or -1 with e->msg. */
static int write_png(PngSink *sink, const uint8_t *img, int W, int H, int planes) {
  PngErr *e = sink->e;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, e, png_error_cb, png_warning_cb);
  if (!png) {
    snprintf(e->msg, sizeof e->msg, "cannot create the libpng writer");
    return -1;
  }
  png_infop info = png_create_info_struct(png);
  if (!info) {
    png_destroy_write_struct(&png, NULL);
    snprintf(e->msg, sizeof e->msg, "cannot create the libpng info");
    return -1;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return -1;
  }
  png_set_write_fn(png, sink, png_write_cb, png_flush_cb);
  png_set_IHDR(png, info, (png_uint_32)W, (png_uint_32)H, 8,
               planes == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int y = 0; y < H; y++) png_write_row(png, img + (size_t)y * (size_t)W * (size_t)planes);
  png_write_end(png, NULL);
  png_destroy_write_struct(&png, &info);
  return 0;
}

/* The grid's shape, or -1 with err naming label. */
static int check_grid(const char *label, int64_t n, int c, int h, int w, int *ncol, IrErr *err) {
  if (n < 1 || c < 1 || h < 1 || w < 1)
    return ir_errf(err, "%s: nothing to write (samples [%lld, %d, %d, %d])", label, (long long)n, c,
                   h, w);
  if (*ncol < 1) {
    *ncol = (int)ceil(sqrt((double)n));
    if (*ncol < 1) *ncol = 1;
  }
  int64_t tiles = c == 3 ? n : n * c;
  int64_t cols = c == 3 ? *ncol : (int64_t)*ncol * c;
  if (cols > tiles) cols = tiles;
  int64_t rows = (tiles + cols - 1) / cols;
  if (cols * (w + GRID_PAD) + GRID_PAD > 0x7fffffff / 3 || rows * (h + GRID_PAD) + GRID_PAD > 0x7fffffff / 3)
    return ir_errf(err, "%s: the image grid would be too large", label);
  return 0;
}

int image_write_grid_to(FioOut *out, const float *x, int64_t n, int c, int h, int w, int ncol,
                        IrErr *err) {
  const char *path = fio_out_path(out);
  if (check_grid(path, n, c, h, w, &ncol, err)) return -1;
  int W, H, planes;
  uint8_t *img = render(x, n, c, h, w, ncol, &W, &H, &planes);
  PngErr pe = {{0}};
  PngSink sink = {out, &pe};
  int rc = write_png(&sink, img, W, H, planes);
  free(img);
  if (rc) ir_errf(err, "%s: %s", path, pe.msg);
  return rc;
}

typedef struct {
  const float *x;
  int64_t n;
  int c, h, w, ncol;
} Grid;

static int write_to(void *ctx, FioOut *out, IrErr *err) {
  const Grid *g = ctx;
  return image_write_grid_to(out, g->x, g->n, g->c, g->h, g->w, g->ncol, err);
}

int image_write_grid(const char *path, const float *x, int64_t n, int c, int h, int w, int ncol,
                     IrErr *err) {
  /* a grid that cannot be drawn is refused before the file is touched */
  if (check_grid(path, n, c, h, w, &ncol, err)) return -1;
  Grid g = {x, n, c, h, w, ncol};
  return fio_save(path, write_to, &g, err);
}
