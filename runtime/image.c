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
 * The PNG goes to PATH.tmp.XXXXXX in the same directory and is renamed over
 * PATH only once complete; libpng's errors come back through setjmp and
 * leave nothing behind.
 */
#include "runtime/image.h"

#include <errno.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* libpng part, kept apart so that no local of image_write_grid lives across
 * the setjmp.  Returns 0 or -1 with e->msg. */
static int write_png(FILE *f, const uint8_t *img, int W, int H, int planes, PngErr *e) {
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
  png_init_io(png, f);
  png_set_IHDR(png, info, (png_uint_32)W, (png_uint_32)H, 8,
               planes == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int y = 0; y < H; y++) png_write_row(png, img + (size_t)y * (size_t)W * (size_t)planes);
  png_write_end(png, NULL);
  png_destroy_write_struct(&png, &info);
  return 0;
}

int image_write_grid(const char *path, const float *x, int64_t n, int c, int h, int w, int ncol,
                     IrErr *err) {
  if (n < 1 || c < 1 || h < 1 || w < 1)
    return ir_errf(err, "%s: nothing to write (samples [%lld, %d, %d, %d])", path, (long long)n, c,
                   h, w);
  if (ncol < 1) {
    ncol = (int)ceil(sqrt((double)n));
    if (ncol < 1) ncol = 1;
  }
  int64_t tiles = c == 3 ? n : n * c;
  int64_t cols = c == 3 ? ncol : (int64_t)ncol * c;
  if (cols > tiles) cols = tiles;
  int64_t rows = (tiles + cols - 1) / cols;
  if (cols * (w + GRID_PAD) + GRID_PAD > 0x7fffffff / 3 || rows * (h + GRID_PAD) + GRID_PAD > 0x7fffffff / 3)
    return ir_errf(err, "%s: the image grid would be too large", path);

  size_t len = strlen(path);
  char *tmp = xmalloc(len + 16);
  snprintf(tmp, len + 16, "%s.tmp.XXXXXX", path);
  int fd = mkstemp(tmp);
  if (fd < 0) {
    int e = errno;
    free(tmp);
    return ir_errf(err, "%s: cannot create a temporary file: %s", path, strerror(e));
  }
  fchmod(fd, 0644); /* mkstemp's 0600 would be a surprise on an image */
  FILE *f = fdopen(fd, "wb");
  if (!f) {
    int e = errno;
    close(fd);
    unlink(tmp);
    free(tmp);
    return ir_errf(err, "%s: %s", path, strerror(e));
  }

  int W, H, planes;
  uint8_t *img = render(x, n, c, h, w, ncol, &W, &H, &planes);
  PngErr pe = {{0}};
  int rc = write_png(f, img, W, H, planes, &pe);
  free(img);
  int io_err = ferror(f);
  if (fclose(f) != 0 || io_err) {
    if (rc == 0) snprintf(pe.msg, sizeof pe.msg, "write failed: %s", strerror(errno));
    rc = -1;
  }
  if (rc == 0 && rename(tmp, path) != 0) {
    snprintf(pe.msg, sizeof pe.msg, "cannot rename the temporary file into place: %s",
             strerror(errno));
    rc = -1;
  }
  if (rc != 0) {
    unlink(tmp);
    ir_errf(err, "%s: %s", path, pe.msg);
  }
  free(tmp);
  return rc;
}
