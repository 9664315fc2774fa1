/*
 * cuda_sim_image.c - reading a CUBIN the way the simulated driver needs it.
 *
 * A CUBIN is a 64-bit little-endian ELF with e_machine EM_CUDA (190).  Its
 * size is not passed to cuModuleLoadDataEx, so, as a driver does, we take
 * it from the headers: the furthest of the section table, the program
 * header table and every section with contents.  The architecture is in
 * e_flags (bits 8-15 for ELF ABI version 8 and later, as NVRTC 12.8+ writes
 * it; the low byte before).  Kernels are the global functions marked as
 * entries (st_other bit 0x10).  What a driver checks at launch comes from
 * the .nv.info sections, records of {u8 format, u8 attribute, value}: a
 * format 4 record carries a u16 size and that many bytes, the others a u16
 * value.  We read:
 *   EIATTR_MAX_THREADS (0x05)   x, y, z of __launch_bounds__' maximum
 *   EIATTR_REQNTID (0x10)       a required block shape
 *   EIATTR_KPARAM_INFO (0x17)   per parameter: ordinal, offset, size
 *   EIATTR_REGCOUNT (0x2f)      (in .nv.info) symbol index, registers
 * and the static shared memory from the size of .nv.shared.<kernel>.  From
 * sm_90 on, CUBINs count the 1 KiB per block that CUDA reserves for system
 * use into that section (they carry the symbol .nv.reservedSmem.offset0);
 * the per-block limit a device reports excludes it, so it is taken off.
 * These layouts were read off NVRTC 13's CUBINs; a record format we do not
 * know makes the image unreadable rather than half read.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/cuda_sim.h"

enum {
  ELF_EM_CUDA = 190,
  SHT_SYMTAB = 2,
  SHT_NOBITS = 8,
  SHT_CUDA_INFO = 0x70000000,
  STT_FUNC = 2,
  STB_GLOBAL = 1,
  STO_CUDA_ENTRY = 0x10,
  EIFMT_SVAL = 4,
  EIATTR_MAX_THREADS = 0x05,
  EIATTR_REQNTID = 0x10,
  EIATTR_KPARAM_INFO = 0x17,
  EIATTR_REGCOUNT = 0x2f,
  RESERVED_SMEM = 1024,
};

#define IMAGE_MAX ((size_t)1 << 30) /* no CUBIN of ours comes near a GiB */

static uint16_t rd16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const unsigned char *p) { return (uint32_t)rd16(p) | (uint32_t)rd16(p + 2) << 16; }
static uint64_t rd64(const unsigned char *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

typedef struct {
  uint32_t name, type, link, info;
  uint64_t off, size, entsize;
} Sec;

typedef struct {
  const unsigned char *b;
  size_t size;
  Sec *secs;
  int n_secs;
  const Sec *strtab; /* section names */
} Elf;

static int fail(char *why, size_t n, const char *msg) {
  snprintf(why, n, "%s", msg);
  return -1;
}

/* A NUL-terminated string at off of section s, or NULL. */
static const char *str_at(const Elf *e, const Sec *s, uint64_t off) {
  if (!s || s->type == SHT_NOBITS || off >= s->size) return NULL;
  const char *p = (const char *)e->b + s->off + off;
  return memchr(p, 0, (size_t)(s->size - off)) ? p : NULL;
}

static const char *sec_name(const Elf *e, const Sec *s) { return str_at(e, e->strtab, s->name); }

static const Sec *sec_find(const Elf *e, const char *prefix, const char *name) {
  size_t pl = strlen(prefix);
  for (int i = 0; i < e->n_secs; i++) {
    const char *n = sec_name(e, &e->secs[i]);
    if (n && !strncmp(n, prefix, pl) && !strcmp(n + pl, name)) return &e->secs[i];
  }
  return NULL;
}

/* Walk the records of an .nv.info section; fn gets each (attr, format,
 * value bytes, value size).  -1 on a record we cannot read. */
typedef void (*InfoFn)(void *ctx, int attr, const unsigned char *v, unsigned vsize);
static int info_walk(const Elf *e, const Sec *s, InfoFn fn, void *ctx) {
  const unsigned char *p = e->b + s->off, *end = p + s->size;
  while (p < end) {
    if (end - p < 4) return -1;
    int fmt = p[0], attr = p[1];
    if (fmt == EIFMT_SVAL) {
      unsigned n = rd16(p + 2);
      if ((size_t)(end - p - 4) < n) return -1;
      fn(ctx, attr, p + 4, n);
      p += 4 + n;
    } else if (fmt >= 1 && fmt <= 3) { /* no value, a byte, a half word: in the u16 */
      fn(ctx, attr, p + 2, 2);
      p += 4;
    } else {
      return -1;
    }
  }
  return 0;
}

static void kernel_attr(void *ctx, int attr, const unsigned char *v, unsigned n) {
  SimKernel *k = ctx;
  if ((attr == EIATTR_MAX_THREADS || attr == EIATTR_REQNTID) && n == 12) {
    unsigned x = rd32(v), y = rd32(v + 4), z = rd32(v + 8);
    if (attr == EIATTR_MAX_THREADS) k->max_threads = x * y * z;
    else k->reqntid[0] = x, k->reqntid[1] = y, k->reqntid[2] = z;
  } else if (attr == EIATTR_KPARAM_INFO && n == 12) {
    unsigned ordinal = rd16(v + 4), offset = rd16(v + 6), size = rd32(v + 8) >> 18;
    if (ordinal < SIM_MAX_PARAMS) {
      k->param_offset[ordinal] = offset;
      k->param_size[ordinal] = size;
      if ((int)ordinal + 1 > k->n_params) k->n_params = (int)ordinal + 1;
    } else {
      k->n_params = SIM_MAX_PARAMS + 1; /* refused below */
    }
  }
}

typedef struct {
  uint32_t sym;
  int regs;
} RegCount;
typedef struct {
  RegCount *r;
  int n;
} RegCounts;

static void global_attr(void *ctx, int attr, const unsigned char *v, unsigned n) {
  RegCounts *rc = ctx;
  if (attr != EIATTR_REGCOUNT || n != 8) return;
  rc->r = xrealloc(rc->r, (size_t)(rc->n + 1) * sizeof *rc->r);
  rc->r[rc->n++] = (RegCount){rd32(v), (int)rd32(v + 4)};
}

void sim_image_free(SimImage *im) {
  for (int i = 0; im->kernels && i < im->n_kernels; i++) free(im->kernels[i].name);
  free(im->kernels);
  memset(im, 0, sizeof *im);
}

int sim_image_parse(const void *image, SimImage *out, char *why, size_t nwhy) {
  memset(out, 0, sizeof *out);
  const unsigned char *b = image;
  if (!b) return fail(why, nwhy, "the image pointer is NULL");
  if (memcmp(b, "\177ELF", 4)) {
    if (rd32(b) == 0xba55ed50u) return fail(why, nwhy, "the image is a fatbin; the simulated driver loads CUBINs only");
    return fail(why, nwhy, "the image is not a CUBIN (no ELF header; PTX is not simulated)");
  }
  if (b[4] != 2 || b[5] != 1 || rd16(b + 18) != ELF_EM_CUDA)
    return fail(why, nwhy, "the ELF image is not a 64-bit little-endian CUBIN for an NVIDIA GPU");
  uint32_t flags = rd32(b + 48);
  int sm = b[8] >= 8 ? (int)(flags >> 8 & 0xff) : (int)(flags & 0xff);
  uint64_t phoff = rd64(b + 32), shoff = rd64(b + 40);
  unsigned phent = rd16(b + 54), phnum = rd16(b + 56), shent = rd16(b + 58), shnum = rd16(b + 60),
           shstr = rd16(b + 62);
  if (shent != 64 || !shnum || shstr >= shnum || shoff > IMAGE_MAX || phoff > IMAGE_MAX)
    return fail(why, nwhy, "the CUBIN's section table is malformed");
  size_t size = (size_t)shoff + (size_t)shnum * shent;
  if (phnum && phoff + (size_t)phnum * phent > size) size = (size_t)(phoff + (size_t)phnum * phent);
  Elf e = {b, 0, xcalloc(shnum, sizeof(Sec)), (int)shnum, NULL};
  for (unsigned i = 0; i < shnum; i++) {
    const unsigned char *h = b + shoff + (size_t)i * 64;
    Sec *s = &e.secs[i];
    s->name = rd32(h), s->type = rd32(h + 4), s->off = rd64(h + 24), s->size = rd64(h + 32);
    s->link = rd32(h + 40), s->info = rd32(h + 44), s->entsize = rd64(h + 56);
    if (s->type == SHT_NOBITS) continue;
    if (s->off > IMAGE_MAX || s->size > IMAGE_MAX) {
      free(e.secs);
      return fail(why, nwhy, "a section of the CUBIN lies beyond any plausible size");
    }
    if (s->off + s->size > size) size = (size_t)(s->off + s->size);
  }
  e.size = size;
  e.strtab = &e.secs[shstr];
  const Sec *symtab = NULL;
  for (int i = 0; i < e.n_secs && !symtab; i++)
    if (e.secs[i].type == SHT_SYMTAB && e.secs[i].entsize == 24 && e.secs[i].link < shnum) symtab = &e.secs[i];
  if (!symtab) {
    free(e.secs);
    return fail(why, nwhy, "the CUBIN has no symbol table");
  }
  const Sec *symstr = &e.secs[symtab->link];
  RegCounts rc = {0};
  int bad = 0, reserved = 0;
  for (int i = 0; i < e.n_secs; i++) {
    const char *n = sec_name(&e, &e.secs[i]);
    if (n && e.secs[i].type == SHT_CUDA_INFO && !strcmp(n, ".nv.info") && info_walk(&e, &e.secs[i], global_attr, &rc))
      bad = 1;
  }
  size_t nsym = (size_t)(symtab->size / 24);
  for (size_t i = 0; i < nsym && !bad; i++) {
    const unsigned char *s = b + symtab->off + i * 24;
    const char *name = str_at(&e, symstr, rd32(s));
    int info = s[4], other = s[5];
    if (name && !strcmp(name, ".nv.reservedSmem.offset0")) reserved = 1;
    if (!name || (info & 0xf) != STT_FUNC || info >> 4 != STB_GLOBAL || !(other & STO_CUDA_ENTRY)) continue;
    out->kernels = xrealloc(out->kernels, (size_t)(out->n_kernels + 1) * sizeof *out->kernels);
    SimKernel *k = &out->kernels[out->n_kernels++];
    memset(k, 0, sizeof *k);
    k->name = xstrdup(name);
    k->regs = -1;
    for (int r = 0; r < rc.n; r++)
      if (rc.r[r].sym == i) k->regs = rc.r[r].regs;
    const Sec *ki = sec_find(&e, ".nv.info.", name);
    if (ki && info_walk(&e, ki, kernel_attr, k)) bad = 1;
    if (k->n_params > SIM_MAX_PARAMS) bad = 1;
    const Sec *sh = sec_find(&e, ".nv.shared.", name);
    k->static_smem = sh ? (unsigned)sh->size : 0;
  }
  for (int i = 0; i < out->n_kernels; i++)
    if (reserved && out->kernels[i].static_smem >= RESERVED_SMEM) out->kernels[i].static_smem -= RESERVED_SMEM;
  free(rc.r);
  free(e.secs);
  if (bad) {
    sim_image_free(out);
    return fail(why, nwhy, "the CUBIN's .nv.info records are not in a format the simulated driver reads");
  }
  out->size = size;
  out->sm = sm;
  return 0;
}
