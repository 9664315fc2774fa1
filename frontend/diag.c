/*
 * diag.c - the front end's error reports.
 *
 * An error is `file:line:col: error: message`, then the offending source line
 * as written and a caret line that copies the line's tabs (and turns every
 * other byte into a space) so the caret lands under the column in any tab
 * width.  Columns count bytes from 1.  After `limit` errors the stream gets a
 * single "too many errors" line, `stop` tells callers to give up, and the
 * count stays at `limit` (the errors shown).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "frontend/ast.h"

enum { FE_DIAG_DEFAULT_LIMIT = 100 };

/* Counts the error; returns 1 if it should be printed. */
static int diag_take(FeDiag *d) {
  int limit = d->limit > 0 ? d->limit : FE_DIAG_DEFAULT_LIMIT;
  if (d->n_errors < limit) {
    d->n_errors++;
    d->last_shown = d->out != NULL;
    return d->out != NULL;
  }
  /* past the limit: say so once; the count stays the number shown, so the
   * summary a caller prints agrees with what is on the screen */
  d->last_shown = 0;
  if (!d->stop && d->out) fprintf(d->out, "error: too many errors: stopping after the first %d\n", limit);
  d->stop = 1;
  return 0;
}

/* The source line `line` (1-based) of src: its start and length. */
static const char *source_line(const FeSource *src, int line, size_t *len) {
  if (!src || !src->text || line < 1) return NULL;
  const char *p = src->text, *end = src->text + src->len;
  for (int l = 1; l < line; l++) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl) return NULL;
    p = nl + 1;
  }
  if (p == end) return NULL; /* the empty "line" after a final newline */
  const char *nl = memchr(p, '\n', (size_t)(end - p));
  *len = (size_t)((nl ? nl : end) - p);
  if (*len > 0 && p[*len - 1] == '\r') (*len)--;
  return p;
}

void fe_verror(FeDiag *d, const FeSource *src, int line, int col, const char *fmt, va_list ap) {
  if (!diag_take(d)) return;
  const char *file = src && src->file ? src->file : "<input>";
  fprintf(d->out, "%s:%d:%d: error: ", file, line, col);
  vfprintf(d->out, fmt, ap);
  fputc('\n', d->out);
  size_t len = 0;
  const char *text = source_line(src, line, &len);
  if (!text) return;
  fwrite(text, 1, len, d->out);
  fputc('\n', d->out);
  for (size_t i = 0; col > 0 && i + 1 < (size_t)col; i++)
    fputc(i < len && text[i] == '\t' ? '\t' : ' ', d->out);
  fputs("^\n", d->out);
}

void fe_error(FeDiag *d, const FeSource *src, int line, int col, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fe_verror(d, src, line, col, fmt, ap);
  va_end(ap);
}

void fe_note(FeDiag *d, const FeSource *src, int line, int col, const char *fmt, ...) {
  if (!d->last_shown) return;
  const char *file = src && src->file ? src->file : "<input>";
  fprintf(d->out, "%s:%d:%d: note: ", file, line, col);
  va_list ap;
  va_start(ap, fmt);
  vfprintf(d->out, fmt, ap);
  va_end(ap);
  fputc('\n', d->out);
}

void fe_error_at(FeDiag *d, const char *where, const char *fmt, ...) {
  if (!diag_take(d)) return;
  if (where) fprintf(d->out, "%s: ", where);
  fputs("error: ", d->out);
  va_list ap;
  va_start(ap, fmt);
  vfprintf(d->out, fmt, ap);
  va_end(ap);
  fputc('\n', d->out);
}
