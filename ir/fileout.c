/*
 * fileout.c - users' output files (fileio.h: the contract): a regular file
 * or a new path is written to a temporary beside it and renamed over it on
 * commit; a symlink's target is what gets written; a device or FIFO is
 * written through, never replaced; anything else is refused.  Outputs go
 * through a 64 KiB buffer; an output's first error is kept as an errno and
 * the operation that failed, and every later call reports it.  A transaction
 * stages several outputs and commits them together.
 */
#include "ir/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <pthread.h>

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

/* dirname into a malloc'd string: "." for a bare name, "/" for "/x". */
static char *dir_of(const char *path) {
  const char *slash = strrchr(path, '/');
  if (!slash) return xstrdup(".");
  if (slash == path) return xstrdup("/");
  size_t n = (size_t)(slash - path);
  char *d = xmalloc(n + 1);
  memcpy(d, path, n);
  d[n] = 0;
  return d;
}

static const char *base_of(const char *path) {
  const char *slash = strrchr(path, '/');
  return slash ? slash + 1 : path;
}

/* ======================================================================== */
/* outputs                                                                  */
/* ======================================================================== */

enum { OUT_REPLACE, OUT_THROUGH };
enum { OUT_BUF = 64 * 1024 };

struct FioOut {
  char *path;     /* as given, for messages */
  char *target;   /* OUT_REPLACE: the name renamed over (symlinks followed) */
  char *tmp;      /* OUT_REPLACE: the temporary, beside target */
  int temp;       /* its registry handle, or -1 */
  int fd;
  int kind;       /* OUT_* */
  int fifo;
  int created;    /* target did not exist before */
  int renamed;
  /* identity, for "the same file": an existing file's dev and inode, or a
   * new one's directory's dev and inode plus its name */
  dev_t dev;
  ino_t ino;
  char *base;
  /* the first error: errno and what was being done */
  int err_no;
  const char *err_op;
  unsigned char *buf;
  size_t nbuf;
};

/* Where an output goes, found before anything is opened. */
typedef struct {
  char *target;  /* malloc'd */
  int exists;
  struct stat st; /* of target, when it exists */
  dev_t dev;
  ino_t ino;
  char *base;    /* malloc'd for a new file, else NULL */
} Resolved;

static void resolved_free(Resolved *r) {
  free(r->target);
  free(r->base);
}

/* "PATH" or "PATH (-> TARGET)" for messages. */
static void subject(const char *path, const char *target, char *buf, size_t n) {
  if (target && strcmp(path, target))
    snprintf(buf, n, "%s (-> %s)", path, target);
  else
    snprintf(buf, n, "%s", path);
}

/* Follow path's symlinks to the name to write.  An existing file is found with
 * stat(2) (which also follows /proc's magic links); a dangling link is read
 * link by link to the name it would create. */
static int resolve(const char *path, int private_file, Resolved *r, IrErr *err) {
  memset(r, 0, sizeof *r);
  char who[FIO_PATH_MAX + 64];
  if (!*path) return ir_errf(err, "empty output file name");
  struct stat st, lst;
  if (stat(path, &st) == 0) {
    r->exists = 1;
    r->st = st;
    r->dev = st.st_dev;
    r->ino = st.st_ino;
    int link = lstat(path, &lst) == 0 && S_ISLNK(lst.st_mode);
    if (link && S_ISREG(st.st_mode) && !private_file) {
      char *real = realpath(path, NULL);
      if (!real) return ir_errf(err, "%s: cannot follow the symbolic link: %s", path, strerror(errno));
      r->target = xstrdup(real);
      free(real);
    } else {
      r->target = xstrdup(path);
    }
    subject(path, r->target, who, sizeof who);
    if (S_ISDIR(st.st_mode))
      return ir_errf(err, "%s: cannot write: is a directory (no file can be renamed over it)", who);
    if (private_file || S_ISREG(st.st_mode) || S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode)) return 0;
    return ir_errf(err, "%s: is %s; an output must be a regular file, a character device or a FIFO", who,
                   fio_type_name(st.st_mode));
  }
  if (errno != ENOENT) return ir_errf(err, "%s: cannot stat: %s", path, strerror(errno));
  /* a new file, possibly through a dangling symlink */
  char *p = xstrdup(path);
  for (int depth = 0; lstat(p, &lst) == 0 && S_ISLNK(lst.st_mode); depth++) {
    char link[FIO_PATH_MAX];
    ssize_t k = depth < 40 ? readlink(p, link, sizeof link - 1) : -1;
    if (k < 0) {
      int e = depth < 40 ? errno : ELOOP;
      free(p);
      return ir_errf(err, "%s: cannot follow the symbolic link: %s", path, strerror(e));
    }
    link[k] = 0;
    char *next;
    if (link[0] == '/') {
      next = xstrdup(link);
    } else {
      char *d = dir_of(p);
      next = xmalloc(strlen(d) + strlen(link) + 2);
      sprintf(next, "%s/%s", d, link);
      free(d);
    }
    free(p);
    p = next;
  }
  r->target = p;
  r->base = xstrdup(base_of(p));
  char *d = dir_of(p);
  if (stat(d, &st) == 0) {
    r->dev = st.st_dev;
    r->ino = st.st_ino;
  }
  /* a missing directory is reported when the temporary cannot be made */
  free(d);
  return 0;
}

static int same_identity(const FioOut *a, const Resolved *b) {
  if (!!a->base != !!b->base || a->dev != b->dev || a->ino != b->ino) return 0;
  return !a->base || !strcmp(a->base, b->base);
}

static FioOut *out_new(const char *path, Resolved *r) {
  FioOut *o = xcalloc(1, sizeof *o);
  o->path = xstrdup(path);
  o->target = r->target;
  o->base = r->base;
  r->target = r->base = NULL;
  o->dev = r->dev;
  o->ino = r->ino;
  o->fd = -1;
  o->temp = -1;
  o->buf = xmalloc(OUT_BUF);
  return o;
}

static void out_free(FioOut *o) {
  free(o->path);
  free(o->target);
  free(o->tmp);
  free(o->base);
  free(o->buf);
  free(o);
}

/* Open a character device or FIFO to write through it. */
static int open_through(FioOut *o, const Resolved *r, IrErr *err) {
  o->kind = OUT_THROUGH;
  o->fifo = S_ISFIFO(r->st.st_mode);
  int waited = 0;
  for (;;) {
    o->fd = open(o->path, O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (o->fd >= 0) break;
    if (errno == EINTR) continue;
    /* ENXIO: a FIFO no one has open for reading (yet) */
    if (errno == ENXIO && o->fifo && waited < FIO_FIFO_WAIT_MS) {
      sleep_ms(20);
      waited += 20;
      continue;
    }
    if (errno == ENXIO && o->fifo)
      return ir_errf(err, "%s: is a FIFO and no reader opened it within %d s", o->path, FIO_FIFO_WAIT_MS / 1000);
    return ir_errf(err, "%s: cannot open: %s", o->path, strerror(errno));
  }
  struct stat st;
  if (fstat(o->fd, &st) != 0) return ir_errf(err, "%s: cannot stat: %s", o->path, strerror(errno));
  if (st.st_dev != r->st.st_dev || st.st_ino != r->st.st_ino)
    return ir_errf(err, "%s: changed while being opened", o->path);
  int fl = fcntl(o->fd, F_GETFL);
  if (fl >= 0) (void)fcntl(o->fd, F_SETFL, fl & ~O_NONBLOCK);
  return 0;
}

/* Make the temporary beside the target. */
static int open_replace(FioOut *o, const Resolved *r, const FioOutOpts *opts, IrErr *err) {
  o->kind = OUT_REPLACE;
  o->created = !r->exists;
  char who[FIO_PATH_MAX + 64];
  subject(o->path, o->target, who, sizeof who);
  int private_file = opts && opts->private_file;
  /* rename(2) would replace a file the user may not write: refuse as open(2) would */
  if (r->exists && !private_file && faccessat(AT_FDCWD, o->target, W_OK, AT_EACCESS) != 0)
    return ir_errf(err, "%s: cannot write: %s", who, strerror(errno));
  char *d = dir_of(o->target);
  const char *pre = opts && opts->tmp_prefix ? opts->tmp_prefix : NULL;
  size_t n = (pre ? strlen(d) + 1 + strlen(pre) : strlen(o->target) + 5) + 8;
  o->tmp = xmalloc(n);
  int rc = -1, tries = 0;
  for (; tries < 100; tries++) {
    char rs[7];
    fio_random_suffix(rs);
    if (pre)
      snprintf(o->tmp, n, "%s/%s%s", d, pre, rs);
    else
      snprintf(o->tmp, n, "%s.tmp.%s", o->target, rs);
    if ((o->temp = fio_temp_register(o->tmp, 0, err)) < 0) {
      tries = -1;
      break;
    }
    mode_t mode = r->exists && S_ISREG(r->st.st_mode) ? (r->st.st_mode & 0777) : 0666;
    o->fd = open(o->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, mode);
    if (o->fd >= 0) {
      if (r->exists && S_ISREG(r->st.st_mode)) {
        (void)fchmod(o->fd, mode); /* the old file's bits, whatever the umask */
        if (geteuid() == 0) (void)!fchown(o->fd, r->st.st_uid, r->st.st_gid);
      }
      rc = 0;
      break;
    }
    int e = errno;
    fio_temp_forget(o->temp);
    o->temp = -1;
    if (e != EEXIST) {
      ir_errf(err, "%s: cannot create a temporary file beside it: %s", who, strerror(e));
      tries = -1;
      break;
    }
  }
  if (tries == 100) ir_errf(err, "%s: cannot create a temporary file beside it: every name tried exists", who);
  free(d);
  return rc;
}

static FioOut *open_resolved(const char *path, Resolved *r, const FioOutOpts *opts, IrErr *err) {
  FioOut *o = out_new(path, r);
  int private_file = opts && opts->private_file;
  int rc = !private_file && r->exists && !S_ISREG(r->st.st_mode) ? open_through(o, r, err)
                                                                 : open_replace(o, r, opts, err);
  if (rc) {
    fio_out_abort(o);
    return NULL;
  }
  return o;
}

FioOut *fio_out_open(const char *path, const FioOutOpts *opts, IrErr *err) {
  Resolved r;
  if (err) err->msg[0] = 0;
  if (resolve(path, opts && opts->private_file, &r, err)) {
    resolved_free(&r);
    return NULL;
  }
  FioOut *o = open_resolved(path, &r, opts, err);
  resolved_free(&r);
  return o;
}

const char *fio_out_path(const FioOut *o) { return o->path; }

/* write(2) that turns a vanished FIFO reader into EPIPE instead of a SIGPIPE:
 * the signal is blocked in this thread around the write and a SIGPIPE the
 * write raised is taken off the pending set. */
static ssize_t write_nopipe(int fd, const void *p, size_t n) {
  sigset_t pipe_set, old, pending;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
  int was_pending = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE);
  ssize_t k = write(fd, p, n);
  int e = errno;
  if (k < 0 && e == EPIPE && !was_pending) {
    struct timespec zero = {0, 0};
    (void)sigtimedwait(&pipe_set, NULL, &zero);
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  errno = e;
  return k;
}

static int fail_out(FioOut *o, const char *op, int e) {
  if (!o->err_no) {
    o->err_no = e ? e : EIO;
    o->err_op = op;
  }
  return -1;
}

static int report(const FioOut *o, IrErr *err) {
  char who[FIO_PATH_MAX + 64];
  subject(o->path, o->kind == OUT_REPLACE ? o->target : NULL, who, sizeof who);
  return ir_errf(err, "%s: %s: %s", who, o->err_op, strerror(o->err_no));
}

static int write_raw(FioOut *o, const unsigned char *p, size_t n) {
  while (n) {
    size_t chunk = n > (1u << 30) ? (1u << 30) : n;
    ssize_t k = o->fifo ? write_nopipe(o->fd, p, chunk) : write(o->fd, p, chunk);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return fail_out(o, "cannot write", k < 0 ? errno : ENOSPC);
    p += k;
    n -= (size_t)k;
  }
  return 0;
}

static int flush_buf(FioOut *o) {
  if (o->err_no) return -1;
  int rc = write_raw(o, o->buf, o->nbuf);
  o->nbuf = 0;
  return rc;
}

int fio_out_write(FioOut *o, const void *buf, size_t n, IrErr *err) {
  if (o->err_no) return report(o, err);
  if (n > OUT_BUF - o->nbuf) {
    if (flush_buf(o)) return report(o, err);
    if (n >= OUT_BUF) return write_raw(o, buf, n) ? report(o, err) : 0;
  }
  memcpy(o->buf + o->nbuf, buf, n);
  o->nbuf += n;
  return 0;
}

int fio_out_printf(FioOut *o, IrErr *err, const char *fmt, ...) {
  char small[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0) return ir_errf(err, "%s: cannot format the output", o->path);
  if ((size_t)n < sizeof small) return fio_out_write(o, small, (size_t)n, err);
  char *big = xmalloc((size_t)n + 1);
  va_start(ap, fmt);
  vsnprintf(big, (size_t)n + 1, fmt, ap);
  va_end(ap);
  int rc = fio_out_write(o, big, (size_t)n, err);
  free(big);
  return rc;
}

void fio_out_abort(FioOut *o) {
  if (!o) return;
  if (o->fd >= 0) close(o->fd);
  if (o->temp >= 0) fio_temp_remove(o->temp);
  if (o->renamed && o->created) (void)unlink(o->target);
  out_free(o);
}

/* Commit outputs together (one, or a transaction's): flush and fsync all,
 * close, then rename; see fileio.h.  Frees every output. */
static int commit_all(FioOut **v, int n, IrErr *err) {
  int bad = -1;
  for (int i = 0; i < n && bad < 0; i++) {
    FioOut *o = v[i];
    if (flush_buf(o) == 0 && o->kind == OUT_REPLACE && fsync(o->fd) != 0) fail_out(o, "cannot write", errno);
    int fd = o->fd;
    o->fd = -1;
    if (close(fd) != 0 && !o->err_no && errno != EINTR) fail_out(o, "cannot write", errno);
    if (o->err_no) bad = i;
  }
  for (int i = 0; i < n && bad < 0; i++) {
    FioOut *o = v[i];
    if (o->kind != OUT_REPLACE) continue;
    if (rename(o->tmp, o->target) != 0) {
      fail_out(o, "cannot rename the temporary file into place", errno);
      bad = i;
      break;
    }
    o->renamed = 1;
    fio_temp_forget(o->temp);
    o->temp = -1;
  }
  if (bad >= 0) {
    report(v[bad], err);
    for (int i = 0; i < n; i++) fio_out_abort(v[i]); /* also takes back new files already renamed */
    return -1;
  }
  /* the new names durable too; failing that loses nothing already written */
  for (int i = 0; i < n; i++) {
    if (v[i]->kind == OUT_REPLACE) {
      char *d = dir_of(v[i]->target);
      int dfd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
      }
      free(d);
    }
    out_free(v[i]);
  }
  return 0;
}

int fio_out_commit(FioOut *o, IrErr *err) { return commit_all(&o, 1, err); }

int fio_save(const char *path, FioWriteFn fn, void *ctx, IrErr *err) {
  FioOut *o = fio_out_open(path, NULL, err);
  if (!o) return -1;
  if (fn(ctx, o, err)) {
    fio_out_abort(o);
    return -1;
  }
  return fio_out_commit(o, err);
}

/* ======================================================================== */
/* transactions                                                             */
/* ======================================================================== */

struct FioTxn {
  FioOut **v;
  int n, cap;
};

FioTxn *fio_txn_new(void) { return xcalloc(1, sizeof(FioTxn)); }

FioOut *fio_txn_add(FioTxn *t, const char *path, IrErr *err) {
  Resolved r;
  if (err) err->msg[0] = 0;
  if (resolve(path, 0, &r, err)) {
    resolved_free(&r);
    return NULL;
  }
  for (int i = 0; i < t->n; i++)
    if (same_identity(t->v[i], &r)) {
      ir_errf(err, "%s and %s are the same file: give each output its own", t->v[i]->path, path);
      resolved_free(&r);
      return NULL;
    }
  FioOut *o = open_resolved(path, &r, NULL, err);
  resolved_free(&r);
  if (!o) return NULL;
  if (t->n == t->cap) t->v = xrealloc(t->v, sizeof *t->v * (size_t)(t->cap = t->cap ? 2 * t->cap : 4));
  t->v[t->n++] = o;
  return o;
}

int fio_txn_commit(FioTxn *t, IrErr *err) {
  int rc = commit_all(t->v, t->n, err);
  free(t->v);
  free(t);
  return rc;
}

void fio_txn_abort(FioTxn *t) {
  if (!t) return;
  for (int i = 0; i < t->n; i++) fio_out_abort(t->v[i]);
  free(t->v);
  free(t);
}
