/*
 * cli_npz.c - the .npz file `ditc sample --num-samples` writes: a zip of
 * .npy arrays, stored (not compressed), as numpy.load reads it and the ADM
 * evaluator expects (arr_0 the images; arr_1 the labels).
 *
 * Each member is a local header, the .npy bytes (format 1.0: magic, version,
 * a little-endian header length, the header dict padded with spaces to a
 * multiple of 64 bytes and ended by '\n', then the C-order data), and the
 * central directory names them all.  Plain zip: the whole file stays under
 * 4 GiB (larger ones would need zip64, refused here with a clear message).
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
  unsigned char cd[16][46 + 32];
  size_t cd_len[16];
  uint64_t off = 0;
  if (n > 16) return ir_errf(err, "an .npz of more than 16 arrays");
  for (int i = 0; i < n; i++) {
    const NpzArray *a = &arrays[i];
    char h[512], name[32];
    size_t hl = npy_header(a, h, sizeof h);
    int nl = snprintf(name, sizeof name, "%s.npy", a->name);
    uint64_t size = hl + a->bytes;
    if (!hl || nl >= (int)sizeof name) return ir_errf(err, "%s: array '%s' cannot be named in an .npz", fio_out_path(out), a->name);
    if (off + size + 30 + (uint64_t)nl > 0xFFFFFFF0u)
      return ir_errf(err, "%s: %llu bytes of samples is more than a plain .npz holds (4 GiB); write fewer samples per file",
                     fio_out_path(out), (unsigned long long)(off + size));
    uint32_t crc = crc_update(crc_update(0, h, hl), a->data, a->bytes);
    unsigned char lh[30] = {0};
    put32(lh, 0x04034b50), put16(lh + 4, 20), put32(lh + 14, crc), put32(lh + 18, (uint32_t)size);
    put32(lh + 22, (uint32_t)size), put16(lh + 26, (uint32_t)nl);
    unsigned char *c = cd[i];
    memset(c, 0, 46);
    put32(c, 0x02014b50), put16(c + 4, 20), put16(c + 6, 20), put32(c + 16, crc), put32(c + 20, (uint32_t)size);
    put32(c + 24, (uint32_t)size), put16(c + 28, (uint32_t)nl), put32(c + 42, (uint32_t)off);
    memcpy(c + 46, name, (size_t)nl);
    cd_len[i] = 46 + (size_t)nl;
    if (fio_out_write(out, lh, 30, err) || fio_out_write(out, name, (size_t)nl, err) || fio_out_write(out, h, hl, err) ||
        fio_out_write(out, a->data, a->bytes, err))
      return -1;
    off += 30 + (uint64_t)nl + size;
  }
  uint64_t cd_off = off, cd_size = 0;
  for (int i = 0; i < n; i++) {
    if (fio_out_write(out, cd[i], cd_len[i], err)) return -1;
    cd_size += cd_len[i];
  }
  unsigned char end[22] = {0};
  put32(end, 0x06054b50), put16(end + 8, (uint32_t)n), put16(end + 10, (uint32_t)n);
  put32(end + 12, (uint32_t)cd_size), put32(end + 16, (uint32_t)cd_off);
  return fio_out_write(out, end, 22, err);
}
