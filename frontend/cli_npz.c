/*
 * cli_npz.c - the .npz file `ditc sample --num-samples` writes: a zip of
 * .npy arrays, stored (not compressed), as numpy.load reads it and the ADM
 * evaluator expects (arr_0 the images; arr_1 the labels).
 *
 * Each member is a local header, the .npy bytes (format 1.0: magic, version,
 * a little-endian header length, the header dict padded with spaces to a
 * multiple of 64 bytes and ended by '\n', then the C-order data), and the
 * central directory names them all.  A file past 4 GiB (50,000 RGB images of
 * 256x256 are 9.8 GB) is zip64: each member's sizes and offset in a zip64
 * extra field, and a zip64 end record and locator before the plain end
 * record (DITC_TEST_ZIP64=1 forces it, for tests on small files).
 */
#include <stdlib.h>
#include <string.h>

#include "frontend/cli.h"
#include "ir/fileio.h"

static uint32_t crc_table[256];

static void crc_init(void) {
  if (crc_table[1]) return;
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    crc_table[i] = c;
  }
}

static uint32_t crc_update(uint32_t crc, const void *buf, size_t n) {
  const unsigned char *p = buf;
  crc = ~crc;
  for (size_t i = 0; i < n; i++) crc = crc_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

static void put16(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)v, p[1] = (unsigned char)(v >> 8);
}
static void put32(unsigned char *p, uint32_t v) {
  put16(p, v & 0xffff), put16(p + 2, v >> 16);
}
static void put64(unsigned char *p, uint64_t v) {
  put32(p, (uint32_t)v), put32(p + 4, (uint32_t)(v >> 32));
}

/* The .npy header of one array (magic through '\n'); returns its length. */
static size_t npy_header(const NpzArray *a, char *h, size_t cap) {
  char shape[200] = "";
  size_t used = 0;
  for (int i = 0; i < a->rank; i++)
    used += (size_t)snprintf(shape + used, sizeof shape - used, "%lld,%s", (long long)a->shape[i],
                             i + 1 < a->rank ? " " : "");
  if (a->rank > 1) shape[used - 1] = '\0'; /* "(N,)" for one axis, "(N, H, W, C)" for more */
  char dict[300];
  int len = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", a->descr, shape);
  size_t total = 10 + (size_t)len + 1, pad = (64 - total % 64) % 64;
  if (total + pad > cap) return 0;
  memcpy(h, "\x93NUMPY\x01\x00", 8);
  put16((unsigned char *)h + 8, (uint32_t)(total + pad - 10));
  memcpy(h + 10, dict, (size_t)len);
  memset(h + 10 + len, ' ', pad);
  h[total + pad - 1] = '\n';
  return total + pad;
}

int cli_npz_write(FioOut *out, const NpzArray *arrays, int n, IrErr *err) {
  crc_init();
  unsigned char cd[16][46 + 32 + 28];
  size_t cd_len[16];
  uint64_t off = 0, total = 22;
  if (n > 16) return ir_errf(err, "an .npz of more than 16 arrays");
  for (int i = 0; i < n; i++) total += 2 * (30 + 16 + 32 + 28) + 512 + arrays[i].bytes; /* a bound */
  const char *force = getenv("DITC_TEST_ZIP64");
  int z64 = total > 0xFFFFFFF0u || (force && *force && strcmp(force, "0"));
  for (int i = 0; i < n; i++) {
    const NpzArray *a = &arrays[i];
    char h[512], name[32];
    size_t hl = npy_header(a, h, sizeof h);
    int nl = snprintf(name, sizeof name, "%s.npy", a->name);
    uint64_t size = hl + a->bytes;
    if (!hl || nl >= (int)sizeof name) return ir_errf(err, "%s: array '%s' cannot be named in an .npz", fio_out_path(out), a->name);
    uint32_t crc = crc_update(crc_update(0, h, hl), a->data, a->bytes);
    uint32_t size32 = z64 ? 0xFFFFFFFFu : (uint32_t)size, ver = z64 ? 45 : 20;
    unsigned char lh[30 + 20] = {0};
    put32(lh, 0x04034b50), put16(lh + 4, ver), put32(lh + 14, crc), put32(lh + 18, size32);
    put32(lh + 22, size32), put16(lh + 26, (uint32_t)nl), put16(lh + 28, z64 ? 20 : 0);
    unsigned char *c = cd[i];
    memset(c, 0, 46);
    put32(c, 0x02014b50), put16(c + 4, ver), put16(c + 6, ver), put32(c + 16, crc), put32(c + 20, size32);
    put32(c + 24, size32), put16(c + 28, (uint32_t)nl), put16(c + 30, z64 ? 28 : 0);
    put32(c + 42, z64 ? 0xFFFFFFFFu : (uint32_t)off);
    memcpy(c + 46, name, (size_t)nl);
    cd_len[i] = 46 + (size_t)nl;
    if (z64) { /* the zip64 extra field: sizes (and in the directory the offset) in 64 bits */
      unsigned char *x = c + cd_len[i];
      put16(x, 1), put16(x + 2, 24), put64(x + 4, size), put64(x + 12, size), put64(x + 20, off);
      cd_len[i] += 28;
      unsigned char *lx = lh + 30;
      put16(lx, 1), put16(lx + 2, 16), put64(lx + 4, size), put64(lx + 12, size);
    }
    if (fio_out_write(out, lh, 30, err) || fio_out_write(out, name, (size_t)nl, err) ||
        (z64 && fio_out_write(out, lh + 30, 20, err)) || fio_out_write(out, h, hl, err) ||
        fio_out_write(out, a->data, a->bytes, err))
      return -1;
    off += 30 + (uint64_t)nl + (z64 ? 20 : 0) + size;
  }
  uint64_t cd_off = off, cd_size = 0;
  for (int i = 0; i < n; i++) {
    if (fio_out_write(out, cd[i], cd_len[i], err)) return -1;
    cd_size += cd_len[i];
  }
  unsigned char end[22] = {0};
  put32(end, 0x06054b50), put16(end + 8, (uint32_t)n), put16(end + 10, (uint32_t)n);
  put32(end + 12, (uint32_t)cd_size), put32(end + 16, z64 ? 0xFFFFFFFFu : (uint32_t)cd_off);
  if (z64) { /* the zip64 end of central directory record, then its locator */
    unsigned char e64[56 + 20] = {0};
    put32(e64, 0x06064b50), put64(e64 + 4, 44), put16(e64 + 12, 45), put16(e64 + 14, 45);
    put64(e64 + 24, (uint64_t)n), put64(e64 + 32, (uint64_t)n), put64(e64 + 40, cd_size), put64(e64 + 48, cd_off);
    put32(e64 + 56, 0x07064b50), put64(e64 + 64, cd_off + cd_size), put32(e64 + 72, 1);
    if (fio_out_write(out, e64, sizeof e64, err)) return -1;
  }
  return fio_out_write(out, end, 22, err);
}
