/*
 * test_image.c - image_write_grid: files are re-read with libpng's simplified
 * API and checked for size, colour type, tile placement, border and the
 * [-1, 1] -> 0..255 mapping; failures must leave no file behind.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "testutil.h"

#include <dirent.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/image.h"

static char dir[64];

static int setup(void **state) {
  (void)state;
  return tu_tmpdir_make(dir, sizeof dir, "image");
}

static int teardown(void **state) {
  (void)state;
  return tu_tmpdir_remove(dir);
}

/* Number of entries in the test directory. */
static int dir_entries(void) {
  DIR *d = opendir(dir);
  assert_non_null(d);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
  closedir(d);
  return n;
}

typedef struct {
  int w, h, color;
  uint8_t *px; /* w * h * (color ? 3 : 1) */
} Read;

static Read read_png(const char *path) {
  png_image im;
  memset(&im, 0, sizeof im);
  im.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&im, path)) fail_msg("read %s: %s", path, im.message);
  Read r = {(int)im.width, (int)im.height, (im.format & PNG_FORMAT_FLAG_COLOR) != 0, NULL};
  im.format = r.color ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
  r.px = malloc(PNG_IMAGE_SIZE(im));
  if (!png_image_finish_read(&im, NULL, r.px, 0, NULL)) fail_msg("decode %s: %s", path, im.message);
  return r;
}

static void test_grey_grid(void **state) {
  (void)state;
  /* 3 samples of 4x5, 2 a row: 2 x 2 cells of 6 x 7 plus the outer border */
  enum { N = 3, H = 4, W = 5 };
  float x[N * H * W];
  for (int i = 0; i < N * H * W; i++) x[i] = 0.0f;
  x[0] = -1.0f;                 /* sample 0 (0,0) -> 0 */
  x[1] = 1.0f;                  /* sample 0 (0,1) -> 255 */
  x[2] = 2.0f;                  /* clamped -> 255 */
  x[3] = -3.0f;                 /* clamped -> 0 */
  x[4] = 0.5f;                  /* 0.75 * 255 + 0.5 = 191.75 -> 191 */
  x[H * W + 2 * W + 3] = -0.5f; /* sample 1 (2,3): 0.25 * 255 + 0.5 = 64.25 -> 64 */
  x[2 * H * W + W - 1] = 0.999f; /* sample 2 (0,4): 254.8725 + 0.5 -> 255 */
  char path[128];
  snprintf(path, sizeof path, "%s/grid.png", dir);
  IrErr err = {{0}};
  assert_int_equal(image_write_grid(path, x, N, 1, H, W, 2, &err), 0);
  Read r = read_png(path);
  assert_int_equal(r.w, 2 * (W + 2) + 2);
  assert_int_equal(r.h, 2 * (H + 2) + 2);
  assert_false(r.color);
#define PX(y, xx) r.px[(y) * r.w + (xx)]
  assert_int_equal(PX(2, 2), 0);
  assert_int_equal(PX(2, 3), 255);
  assert_int_equal(PX(2, 4), 255);
  assert_int_equal(PX(2, 5), 0);
  assert_int_equal(PX(2, 6), 191);
  assert_int_equal(PX(3, 2), 128); /* 0 -> 127.5 + 0.5 */
  /* sample 1 is the second cell of the first row */
  assert_int_equal(PX(2 + 2, 2 + (W + 2) + 3), 64);
  assert_int_equal(PX(2, 2 + (W + 2)), 128);
  /* sample 2 starts the second row */
  assert_int_equal(PX(2 + (H + 2), 2 + W - 1), 255);
  assert_int_equal(PX(2 + (H + 2) + 1, 2), 128);
  /* borders and the empty fourth cell are black */
  for (int xx = 0; xx < r.w; xx++) assert_int_equal(PX(0, xx) + PX(1, xx) + PX(r.h - 1, xx), 0);
  for (int y = 0; y < r.h; y++) assert_int_equal(PX(y, 0) + PX(y, 1) + PX(y, 2 + W), 0);
  assert_int_equal(PX(2 + (H + 2) + 1, 2 + (W + 2) + 1), 0);
#undef PX
  free(r.px);
  /* the file is readable by others, and no temporary is left */
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  assert_true((st.st_mode & 0444) == 0444);
  assert_int_equal(dir_entries(), 1);
  /* writing again replaces it */
  assert_int_equal(image_write_grid(path, x, 1, 1, H, W, 8, &err), 0);
  r = read_png(path);
  assert_int_equal(r.w, W + 4);
  assert_int_equal(r.h, H + 4);
  free(r.px);
  assert_int_equal(dir_entries(), 1);
  remove(path);
}

static void test_rgb_grid(void **state) {
  (void)state;
  enum { N = 2, C = 3, H = 2, W = 2 };
  float x[N * C * H * W] = {0};
  /* sample 1, pixel (1,0): R = 1, G = -1, B = 0.5 */
  x[((1 * C + 0) * H + 1) * W + 0] = 1.0f;
  x[((1 * C + 1) * H + 1) * W + 0] = -1.0f;
  x[((1 * C + 2) * H + 1) * W + 0] = 0.5f;
  char path[128];
  snprintf(path, sizeof path, "%s/rgb.png", dir);
  IrErr err = {{0}};
  assert_int_equal(image_write_grid(path, x, N, C, H, W, 1, &err), 0);
  Read r = read_png(path);
  assert_true(r.color);
  assert_int_equal(r.w, W + 4);
  assert_int_equal(r.h, 2 * (H + 2) + 2);
  /* one column: sample 1 is below sample 0 */
  const uint8_t *p = r.px + ((2 + (H + 2) + 1) * r.w + 2) * 3;
  assert_int_equal(p[0], 255);
  assert_int_equal(p[1], 0);
  assert_int_equal(p[2], 191);
  p = r.px + (2 * r.w + 2) * 3;
  assert_int_equal(p[0], 128);
  assert_int_equal(p[1], 128);
  assert_int_equal(p[2], 128);
  free(r.px);
  remove(path);
}

static void test_channels_side_by_side(void **state) {
  (void)state;
  /* C = 4 (a latent): each sample's channels as 4 grey tiles in a row */
  enum { N = 2, C = 4, H = 3, W = 3 };
  float x[N * C * H * W];
  for (int s = 0; s < N; s++)
    for (int c = 0; c < C; c++)
      for (int i = 0; i < H * W; i++) x[(s * C + c) * H * W + i] = -1.0f + 0.25f * (float)(s * C + c);
  char path[128];
  snprintf(path, sizeof path, "%s/latent.png", dir);
  IrErr err = {{0}};
  assert_int_equal(image_write_grid(path, x, N, C, H, W, 1, &err), 0);
  Read r = read_png(path);
  assert_false(r.color);
  assert_int_equal(r.w, C * (W + 2) + 2);
  assert_int_equal(r.h, N * (H + 2) + 2);
  for (int s = 0; s < N; s++)
    for (int c = 0; c < C; c++) {
      float v = -1.0f + 0.25f * (float)(s * C + c);
      int want = (int)((v + 1.0f) / 2.0f * 255.0f + 0.5f);
      assert_int_equal(r.px[(2 + s * (H + 2) + 1) * r.w + 2 + c * (W + 2) + 1], want);
    }
  free(r.px);
  remove(path);
}

static void test_failures_leave_nothing(void **state) {
  (void)state;
  float x[16] = {0};
  IrErr err = {{0}};
  char path[160];
  /* a directory that does not exist */
  snprintf(path, sizeof path, "%s/missing/sub/grid.png", dir);
  assert_int_equal(image_write_grid(path, x, 1, 1, 4, 4, 1, &err), -1);
  assert_non_null(strstr(err.msg, path));
  assert_non_null(strstr(err.msg, "No such file"));
  assert_int_equal(dir_entries(), 0);
  /* the target is a directory: the temporary is written, the rename fails,
   * and the temporary must go */
  snprintf(path, sizeof path, "%s/taken", dir);
  assert_int_equal(mkdir(path, 0755), 0);
  err.msg[0] = '\0';
  assert_int_equal(image_write_grid(path, x, 1, 1, 4, 4, 1, &err), -1);
  assert_non_null(strstr(err.msg, "rename"));
  assert_int_equal(dir_entries(), 1);
  rmdir(path);
  /* nothing to write */
  snprintf(path, sizeof path, "%s/empty.png", dir);
  assert_int_equal(image_write_grid(path, x, 0, 1, 4, 4, 1, &err), -1);
  assert_int_equal(dir_entries(), 0);
}

static void test_default_columns(void **state) {
  (void)state;
  /* ncol <= 0: ceil(sqrt(n)) columns -> 10 samples in 4 columns, 3 rows */
  float x[10 * 2 * 2] = {0};
  char path[128];
  snprintf(path, sizeof path, "%s/auto.png", dir);
  IrErr err = {{0}};
  assert_int_equal(image_write_grid(path, x, 10, 1, 2, 2, 0, &err), 0);
  Read r = read_png(path);
  assert_int_equal(r.w, 4 * 4 + 2);
  assert_int_equal(r.h, 3 * 4 + 2);
  free(r.px);
  remove(path);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_grey_grid),
      cmocka_unit_test(test_rgb_grid),
      cmocka_unit_test(test_channels_side_by_side),
      cmocka_unit_test(test_failures_leave_nothing),
      cmocka_unit_test(test_default_columns),
  };
  return tu_run_group(tests, setup, teardown);
}
