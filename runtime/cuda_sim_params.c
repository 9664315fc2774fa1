/*
 * cuda_sim_params.c - where the pointers are in a kernel's parameters, read
 * from the kernel's source, so the simulated driver can check each one at
 * launch (a device address in a live allocation, aligned to its element).
 *
 * The kernel dialect (codegen/emu_prelude.h) declares every kernel as
 * DITC_KERNEL(name, P, p) or DITC_KERNEL_BOUNDS(name, P, p, n) over one
 * parameter struct `typedef struct { ... } P;` of scalars and pointers.  The
 * source is cut into tokens (comments, string literals and preprocessor
 * lines dropped), the struct's members are laid out as C lays them out
 * (LP64: each member at the next multiple of its alignment, the size a
 * multiple of the largest), with the sizes of C's scalar types, the <stdint.h>
 * names, __half and __nv_bfloat16, the vector types and the source's own
 * typedefs of those.  A layout is used only when its size is the size the
 * CUBIN gives the parameter; otherwise (a struct we cannot read) the driver
 * falls back to treating every pointer-aligned word whose value lies in the
 * device's address range as a pointer.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/cuda_sim.h"

typedef struct {
  const char *p;
  int n;
} Tok;

typedef struct {
  Tok *t;
  int n, cap;
} Toks;

static void push(Toks *ts, const char *p, int n) {
  if (ts->n == ts->cap) {
    ts->cap = ts->cap ? 2 * ts->cap : 1024;
    ts->t = xrealloc(ts->t, (size_t)ts->cap * sizeof *ts->t);
  }
  ts->t[ts->n++] = (Tok){p, n};
}

static void tokenize(const char *s, Toks *ts) {
  int line_start = 1;
  while (*s) {
    if (*s == '\n') {
      line_start = 1;
      s++;
    } else if (isspace((unsigned char)*s)) {
      s++;
    } else if (line_start && *s == '#') { /* a preprocessor line, with its continuations */
      while (*s && !(*s == '\n' && s[-1] != '\\')) s++;
    } else if (s[0] == '/' && s[1] == '/') {
      while (*s && *s != '\n') s++;
    } else if (s[0] == '/' && s[1] == '*') {
      const char *e = strstr(s + 2, "*/");
      s = e ? e + 2 : s + strlen(s);
    } else if (*s == '"' || *s == '\'') {
      char q = *s++;
      while (*s && *s != q) s += s[0] == '\\' && s[1] ? 2 : 1;
      if (*s) s++;
      line_start = 0;
    } else if (isalnum((unsigned char)*s) || *s == '_') {
      const char *b = s;
      while (isalnum((unsigned char)*s) || *s == '_') s++;
      push(ts, b, (int)(s - b));
      line_start = 0;
    } else {
      push(ts, s, 1);
      s++;
      line_start = 0;
    }
  }
}

static int is(const Tok *t, const char *w) { return (int)strlen(w) == t->n && !memcmp(t->p, w, (size_t)t->n); }
static int ident(const Tok *t) { return isalpha((unsigned char)t->p[0]) || t->p[0] == '_'; }

typedef struct {
  unsigned size, align;
} Shape;

static const struct {
  const char *name;
  unsigned size, align;
} SCALARS[] = {
    {"char", 1, 1}, {"signed char", 1, 1}, {"unsigned char", 1, 1}, {"bool", 1, 1}, {"_Bool", 1, 1},
    {"int8_t", 1, 1}, {"uint8_t", 1, 1}, {"short", 2, 2}, {"unsigned short", 2, 2}, {"int16_t", 2, 2},
    {"uint16_t", 2, 2}, {"__half", 2, 2}, {"half", 2, 2}, {"__nv_bfloat16", 2, 2}, {"nv_bfloat16", 2, 2},
    {"int", 4, 4}, {"unsigned", 4, 4}, {"unsigned int", 4, 4}, {"signed", 4, 4}, {"signed int", 4, 4},
    {"int32_t", 4, 4}, {"uint32_t", 4, 4}, {"float", 4, 4}, {"long", 8, 8}, {"unsigned long", 8, 8},
    {"long long", 8, 8}, {"unsigned long long", 8, 8}, {"int64_t", 8, 8}, {"uint64_t", 8, 8}, {"size_t", 8, 8},
    {"double", 8, 8}, {"float2", 8, 8}, {"int2", 8, 8}, {"float4", 16, 16}, {"int4", 16, 16},
};

static int type_word(const Tok *t) {
  static const char *const words[] = {"unsigned", "signed", "long", "short", "int", "char", "float", "double", "bool",
                                      "_Bool"};
  for (size_t i = 0; i < sizeof words / sizeof *words; i++)
    if (is(t, words[i])) return 1;
  return 0;
}

static int qualifier(const Tok *t) {
  return is(t, "const") || is(t, "volatile") || is(t, "__restrict__") || is(t, "__restrict") || is(t, "restrict");
}

typedef struct {
  Toks ts;
  /* the source's typedefs of scalars */
  struct {
    Tok name;
    Shape shape;
  } *defs;
  int n_defs;
} Src;

static Shape scalar(const Src *s, const Tok *w, int n) {
  char buf[64] = "";
  size_t len = 0;
  for (int i = 0; i < n; i++) {
    if ((size_t)w[i].n + 2 > sizeof buf - len) return (Shape){0, 0};
    len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%.*s", i ? " " : "", w[i].n, w[i].p);
  }
  for (size_t i = 0; i < sizeof SCALARS / sizeof *SCALARS; i++)
    if (!strcmp(buf, SCALARS[i].name)) return (Shape){SCALARS[i].size, SCALARS[i].align};
  if (n == 1)
    for (int i = s->n_defs - 1; i >= 0; i--)
      if (s->defs[i].name.n == w[0].n && !memcmp(s->defs[i].name.p, w[0].p, (size_t)w[0].n)) return s->defs[i].shape;
  return (Shape){0, 0};
}

/* The base type at t[*i] (qualifiers skipped): its shape, 0 when unknown;
 * *i moves past it. */
static Shape base_type(const Src *s, int *i, int end) {
  const Tok *t = s->ts.t;
  Tok words[4];
  int n = 0;
  while (*i < end && (qualifier(&t[*i]) || (type_word(&t[*i]) && n < 4))) {
    if (!qualifier(&t[*i])) words[n++] = t[*i];
    (*i)++;
  }
  if (!n && *i < end && ident(&t[*i])) words[n++] = t[(*i)++];
  while (*i < end && qualifier(&t[*i])) (*i)++;
  return n ? scalar(s, words, n) : (Shape){0, 0};
}

/* typedef <scalar> NAME; (one level, in order) */
static void read_typedefs(Src *s) {
  const Tok *t = s->ts.t;
  for (int i = 0; i < s->ts.n; i++) {
    if (!is(&t[i], "typedef")) continue;
    int j = i + 1, e = j;
    while (e < s->ts.n && !is(&t[e], ";") && !is(&t[e], "{")) e++;
    if (e >= s->ts.n || !is(&t[e], ";") || e - j < 2 || !ident(&t[e - 1])) continue;
    int k = j;
    Shape sh = base_type(s, &k, e - 1);
    if (!sh.size || k != e - 1) continue;
    s->defs = xrealloc(s->defs, (size_t)(s->n_defs + 1) * sizeof *s->defs);
    s->defs[s->n_defs].name = t[e - 1];
    s->defs[s->n_defs++].shape = sh;
  }
}

static unsigned round_up(unsigned v, unsigned a) { return (v + a - 1) / a * a; }

/* Lay out the members between tokens b and e (the struct's braces). */
static int layout(const Src *s, int b, int e, SimParams *out) {
  const Tok *t = s->ts.t;
  unsigned off = 0, max_align = 1;
  int i = b;
  while (i < e) {
    Shape base = base_type(s, &i, e);
    if (!base.size) return -1;
    for (;;) { /* declarators: *... name [N]... */
      int stars = 0;
      while (i < e && (is(&t[i], "*") || qualifier(&t[i]))) stars += is(&t[i++], "*");
      if (i >= e || !ident(&t[i])) return -1;
      Tok name = t[i++];
      unsigned count = 1;
      while (i + 2 < e && is(&t[i], "[") && isdigit((unsigned char)t[i + 1].p[0]) && is(&t[i + 2], "]")) {
        count *= (unsigned)strtoul(t[i + 1].p, NULL, 10);
        i += 3;
      }
      Shape m = stars ? (Shape){8, 8} : base;
      off = round_up(off, m.align);
      if (stars) {
        for (unsigned c = 0; c < count; c++) {
          out->ptrs = xrealloc(out->ptrs, (size_t)(out->n_ptrs + 1) * sizeof *out->ptrs);
          SimPtrMember *pm = &out->ptrs[out->n_ptrs++];
          pm->offset = off + 8 * c;
          pm->align = stars > 1 ? 8 : base.align;
          snprintf(pm->name, sizeof pm->name, "%.*s", name.n, name.p);
        }
      }
      off += m.size * count;
      if (m.align > max_align) max_align = m.align;
      if (i < e && is(&t[i], ",")) {
        i++;
        continue;
      }
      if (i < e && is(&t[i], ";")) {
        i++;
        break;
      }
      return -1;
    }
  }
  out->size = round_up(off, max_align);
  return 0;
}

/* The struct P of kernel k's declaration: its layout, or -1. */
static int params_of(const Src *s, const char *kernel, SimParams *out) {
  const Tok *t = s->ts.t;
  int n = s->ts.n;
  const Tok *P = NULL;
  for (int i = 0; i + 4 < n && !P; i++)
    if ((is(&t[i], "DITC_KERNEL") || is(&t[i], "DITC_KERNEL_BOUNDS")) && is(&t[i + 1], "(") && is(&t[i + 2], kernel) &&
        is(&t[i + 3], ",") && ident(&t[i + 4]))
      P = &t[i + 4];
  if (!P) return -1;
  for (int i = 0; i + 2 < n; i++) {
    if (!is(&t[i], "}") || t[i + 1].n != P->n || memcmp(t[i + 1].p, P->p, (size_t)P->n) || !is(&t[i + 2], ";"))
      continue;
    int depth = 0, open = i;
    for (; open >= 0; open--) {
      if (is(&t[open], "}")) depth++;
      if (is(&t[open], "{") && --depth == 0) break;
    }
    if (open < 2 || !is(&t[open - 1], "struct") || !is(&t[open - 2], "typedef")) return -1;
    return layout(s, open + 1, i, out);
  }
  return -1;
}

void sim_params_read(const char *source, const SimImage *img, SimParams *out) {
  Src s = {0};
  tokenize(source, &s.ts);
  read_typedefs(&s);
  for (int k = 0; k < img->n_kernels; k++) {
    SimParams *p = &out[k];
    memset(p, 0, sizeof *p);
    const SimKernel *kn = &img->kernels[k];
    if (kn->n_params == 1 && !params_of(&s, kn->name, p) && p->size == kn->param_size[0]) {
      p->known = 1;
    } else {
      free(p->ptrs);
      memset(p, 0, sizeof *p);
    }
  }
  free(s.ts.t);
  free(s.defs);
}

void sim_params_free(SimParams *p) {
  free(p->ptrs);
  memset(p, 0, sizeof *p);
}
