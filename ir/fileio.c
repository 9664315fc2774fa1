/*
 * fileio.c - reading users' files (outputs: fileout.c), and the
 * removal of temporaries on failure, signals and exit (the contract is in
 * fileio.h).
 *
 * The registry of temporaries is a fixed table of slots, because the signal
 * handler may neither allocate nor lock: a slot is claimed with a
 * compare-and-swap, its path written between two increments of a sequence
 * counter (odd while writing), and the handler copies a path only when the
 * counter is even and unchanged across the copy (a seqlock), so a slot being
 * reused by another thread at that moment is skipped rather than read torn.
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

/* ======================================================================== */
/* support                                                                  */
/* ======================================================================== */

const char *fio_type_name(mode_t mode) {
  if (S_ISREG(mode)) return "a regular file";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISLNK(mode)) return "a symbolic link";
  return "not a regular file";
}

const char *fio_err_reason(const IrErr *err, const char *path) {
  size_t n = strlen(path);
  if (!strncmp(err->msg, path, n) && err->msg[n] == ':' && err->msg[n + 1] == ' ') return err->msg + n + 2;
  return err->msg;
}

int fio_has_ext(const char *path, const char *ext) {
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  const char *dot = strrchr(base, '.');
  return dot && !strcasecmp(dot + 1, ext);
}

/* "16 MiB", "4 KiB" or "100000000 bytes". */
static const char *size_str(uint64_t n, char *buf, size_t len) {
  if (n && n % (1u << 20) == 0)
    snprintf(buf, len, "%llu MiB", (unsigned long long)(n >> 20));
  else if (n && n % (1u << 10) == 0)
    snprintf(buf, len, "%llu KiB", (unsigned long long)(n >> 10));
  else
    snprintf(buf, len, "%llu bytes", (unsigned long long)n);
  return buf;
}

/* Six characters no other writer picks: time, pid and a counter through splitmix64. */
void fio_random_suffix(char out[7]) {
  static atomic_ulong counter;
  static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t z = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ ((uint64_t)getpid() << 40) ^
               (atomic_fetch_add(&counter, 1) + 1) * 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  for (int i = 0; i < 6; i++, z /= 62) out[i] = digits[z % 62];
  out[6] = 0;
}

/* ======================================================================== */
/* reading                                                                  */
/* ======================================================================== */

static int not_regular(const char *path, mode_t mode, IrErr *err) {
  ir_errf(err, "%s: is %s, not a regular file", path, fio_type_name(mode));
  return -2;
}

int fio_open_read(const char *path, struct stat *st_out, IrErr *err) {
  struct stat st;
  /* stat first: a device or FIFO is refused without being opened at all */
  if (stat(path, &st) != 0) {
    int e = errno;
    ir_errf(err, "%s: cannot open: %s", path, strerror(e));
    errno = e;
    return -1;
  }
  if (st_out) *st_out = st;
  if (!S_ISREG(st.st_mode)) return not_regular(path, st.st_mode, err);
  /* O_NONBLOCK: should the name have become a FIFO meanwhile, open still returns */
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    int e = errno;
    ir_errf(err, "%s: cannot open: %s", path, strerror(e));
    errno = e;
    return -1;
  }
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    ir_errf(err, "%s: cannot stat: %s", path, strerror(e));
    errno = e;
    return -1;
  }
  if (st_out) *st_out = st;
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return not_regular(path, st.st_mode, err);
  }
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0) (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
  return fd;
}

int fio_read_exact(int fd, void *buf, size_t n, const char *path, IrErr *err) {
  unsigned char *p = buf;
  size_t got = 0;
  while (got < n) {
    ssize_t k = read(fd, p + got, n - got > (1u << 30) ? (1u << 30) : n - got);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) return ir_errf(err, "%s: cannot read: %s", path, strerror(errno));
    if (k == 0) {
      ir_errf(err, "%s: read %zu of %zu bytes: the file shrank while being read", path, got, n);
      return -2;
    }
    got += (size_t)k;
  }
  return 0;
}

static int over_cap(const char *path, uint64_t size, uint64_t cap, const char *what, IrErr *err) {
  char c[32];
  return ir_errf(err, "%s: %llu bytes, more than the %s limit for %s", path, (unsigned long long)size,
                 size_str(cap, c, sizeof c), what);
}

int fio_read_all(const char *path, uint64_t cap, const char *what, char **data, size_t *len,
                 IrErr *err) {
  *data = NULL;
  *len = 0;
  struct stat st;
  int fd = fio_open_read(path, &st, err);
  if (fd < 0) return -1;
  uint64_t size = (uint64_t)st.st_size;
  if (size > cap || size >= SIZE_MAX) {
    close(fd);
    return over_cap(path, size, cap, what, err);
  }
  /* st_size is a hint: /proc files say 0, and a file may change while read */
  size_t cap_n = cap >= SIZE_MAX / 4 ? SIZE_MAX / 4 : (size_t)cap;
  size_t bufcap = (size_t)size + 1, n = 0;
  if (bufcap < 4096) bufcap = 4096;
  if (bufcap > cap_n + 1) bufcap = cap_n + 1;
  char *buf = xmalloc(bufcap + 1);
  int rc = 0;
  for (;;) {
    if (n == bufcap) {
      if (n > cap_n) {
        rc = over_cap(path, n, cap, what, err);
        break;
      }
      bufcap = bufcap > cap_n / 2 ? cap_n + 1 : 2 * bufcap;
      buf = xrealloc(buf, bufcap + 1);
    }
    ssize_t k = read(fd, buf + n, bufcap - n);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) {
      rc = ir_errf(err, "%s: cannot read: %s", path, strerror(errno));
      break;
    }
    if (k == 0) break;
    n += (size_t)k;
  }
  if (rc == 0 && n > cap_n) rc = over_cap(path, n, cap, what, err);
  if (rc == 0 && n < (size_t)size)
    rc = ir_errf(err, "%s: read %zu of %llu bytes: the file shrank while being read", path, n,
                 (unsigned long long)size);
  close(fd);
  if (rc) {
    free(buf);
    return -1;
  }
  buf[n] = 0;
  *data = buf;
  *len = n;
  return 0;
}

int fio_map(const char *path, uint64_t cap, const char *what, FioMap *m, IrErr *err) {
  static const unsigned char empty[1];
  memset(m, 0, sizeof *m);
  struct stat st;
  int fd = fio_open_read(path, &st, err);
  if (fd < 0) return -1;
  uint64_t size = (uint64_t)st.st_size;
  if (size > cap || size > SIZE_MAX) {
    close(fd);
    return over_cap(path, size, cap, what, err);
  }
  m->data = empty;
  if (size) {
    void *p = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      close(fd);
      return ir_errf(err, "%s: cannot map: %s", path, strerror(e));
    }
    m->map_ = p;
    m->data = p;
    m->size = (size_t)size;
  }
  close(fd);
  return 0;
}

void fio_unmap(FioMap *m) {
  if (m->map_) munmap(m->map_, m->size);
  memset(m, 0, sizeof *m);
}

/* ======================================================================== */
/* the registry of temporaries, and the signal handler                      */
/* ======================================================================== */

enum { SLOT_FREE, SLOT_BUSY, SLOT_FILE, SLOT_DIR };

typedef struct {
  atomic_int state;
  atomic_uint seq;   /* odd while path is being written */
  atomic_int owner;  /* the pid that registered it */
  char path[FIO_PATH_MAX];
} TempSlot;

static TempSlot temps[FIO_MAX_TEMPS];

enum { MAX_CHILDREN = 8 };
static atomic_int children[MAX_CHILDREN];       /* pids, 0: free */
static atomic_int child_owner[MAX_CHILDREN];

int fio_temp_register(const char *path, int is_dir, IrErr *err) {
  size_t n = strlen(path);
  if (n >= FIO_PATH_MAX) return ir_errf(err, "%s: path too long for a temporary file", path);
  for (int i = 0; i < FIO_MAX_TEMPS; i++) {
    int expect = SLOT_FREE;
    if (!atomic_compare_exchange_strong(&temps[i].state, &expect, SLOT_BUSY)) continue;
    TempSlot *s = &temps[i];
    atomic_fetch_add(&s->seq, 1);
    memcpy(s->path, path, n + 1);
    atomic_store(&s->owner, (int)getpid());
    atomic_fetch_add(&s->seq, 1);
    atomic_store(&s->state, is_dir ? SLOT_DIR : SLOT_FILE);
    return i;
  }
  return ir_errf(err, "%s: more than %d temporary files at once", path, FIO_MAX_TEMPS);
}

void fio_temp_forget(int handle) {
  if (handle >= 0 && handle < FIO_MAX_TEMPS) atomic_store(&temps[handle].state, SLOT_FREE);
}

void fio_temp_remove(int handle) {
  if (handle < 0 || handle >= FIO_MAX_TEMPS) return;
  TempSlot *s = &temps[handle];
  int k = atomic_load(&s->state);
  if (k == SLOT_FILE) (void)unlink(s->path);
  if (k == SLOT_DIR) (void)rmdir(s->path);
  fio_temp_forget(handle);
}

int fio_tempdir_make(const char *prefix, char *buf, size_t n, IrErr *err) {
  const char *tmp = getenv("TMPDIR");
  if (!tmp || !*tmp) tmp = "/tmp";
  for (int attempt = 0; attempt < 100; attempt++) {
    char r[7];
    fio_random_suffix(r);
    int len = snprintf(buf, n, "%s/%s%s", tmp, prefix, r);
    if (len < 0 || (size_t)len >= n) return ir_errf(err, "cannot make a temporary folder in %s: name too long", tmp);
    int h = fio_temp_register(buf, 1, err);
    if (h < 0) return -1;
    if (mkdir(buf, 0700) == 0) return h;
    int e = errno;
    fio_temp_forget(h);
    if (e != EEXIST) return ir_errf(err, "cannot make a temporary folder %s: %s", buf, strerror(e));
  }
  return ir_errf(err, "cannot make a temporary folder in %s: every name tried exists", tmp);
}

int fio_child_register(pid_t pid, IrErr *err) {
  for (int i = 0; i < MAX_CHILDREN; i++) {
    int expect = 0;
    if (atomic_compare_exchange_strong(&children[i], &expect, -1)) {
      atomic_store(&child_owner[i], (int)getpid());
      atomic_store(&children[i], (int)pid);
      return 0;
    }
  }
  return ir_errf(err, "more than %d child processes at once", MAX_CHILDREN);
}

void fio_child_forget(pid_t pid) {
  for (int i = 0; i < MAX_CHILDREN; i++) {
    int expect = (int)pid;
    if (pid > 0 && atomic_compare_exchange_strong(&children[i], &expect, 0)) return;
  }
}

/* SIGTERM to each registered child's process group, then wait (up to about
 * two seconds, then SIGKILL) until the group is gone, so that nothing writes
 * into a folder being removed.  Async-signal-safe. */
static void stop_children(void) {
  int me = (int)getpid(), any = 0;
  for (int i = 0; i < MAX_CHILDREN; i++) {
    int pid = atomic_load(&children[i]);
    if (pid > 0 && atomic_load(&child_owner[i]) == me) {
      (void)kill(-pid, SIGTERM); /* the group: a compiler's own children too */
      (void)kill(pid, SIGTERM);
      any = 1;
    }
  }
  if (!any) return;
  for (int round = 0; round < 250; round++) {
    int alive = 0;
    for (int i = 0; i < MAX_CHILDREN; i++) {
      int pid = atomic_load(&children[i]);
      if (pid <= 0 || atomic_load(&child_owner[i]) != me) continue;
      /* 0: not exited yet; then any member of its group still there */
      if (waitpid(pid, NULL, WNOHANG) == 0 || kill(-pid, 0) == 0) {
        alive = 1;
        if (round == 200) {
          (void)kill(-pid, SIGKILL);
          (void)kill(pid, SIGKILL);
        }
      }
    }
    if (!alive) return;
    struct timespec ts = {0, 10 * 1000000L};
    (void)nanosleep(&ts, NULL);
  }
}

/* One pass over the slots of kind k: unlink or rmdir each path (seqlock read). */
static void remove_kind(int k) {
  int me = (int)getpid();
  char p[FIO_PATH_MAX];
  for (int i = 0; i < FIO_MAX_TEMPS; i++) {
    TempSlot *s = &temps[i];
    if (atomic_load(&s->state) != k) continue;
    unsigned s1 = atomic_load(&s->seq);
    if ((s1 & 1) || atomic_load(&s->owner) != me) continue;
    size_t j = 0;
    while (j + 1 < sizeof p && (p[j] = s->path[j])) j++;
    p[j] = 0;
    if (atomic_load(&s->seq) != s1 || atomic_load(&s->state) != k) continue;
    if (k == SLOT_FILE)
      (void)unlink(p);
    else
      (void)rmdir(p);
  }
}

void fio_cleanup_now(void) {
  stop_children();
  remove_kind(SLOT_FILE);
  /* nested folders: a parent's rmdir fails until its children are gone */
  for (int pass = 0; pass < 4; pass++) remove_kind(SLOT_DIR);
}

static atomic_flag dying = ATOMIC_FLAG_INIT;
static const int caught[] = {SIGINT, SIGTERM, SIGHUP};

static void on_signal(int sig) {
  /* A second signal, on another thread, waits for the first to finish. */
  if (atomic_flag_test_and_set(&dying))
    for (;;) pause();
  fio_cleanup_now();
  /* Default action, re-raised: pending while this handler runs (the signal is
   * blocked here), delivered - and the process ended - as it returns. */
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_DFL;
  sigemptyset(&sa.sa_mask);
  (void)sigaction(sig, &sa, NULL);
  (void)raise(sig);
}

static void cleanup_at_exit(void) { fio_cleanup_now(); }

void fio_install(void) {
  static atomic_flag done = ATOMIC_FLAG_INIT;
  if (atomic_flag_test_and_set(&done)) return;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  for (size_t i = 0; i < sizeof caught / sizeof *caught; i++) sigaddset(&sa.sa_mask, caught[i]);
  for (size_t i = 0; i < sizeof caught / sizeof *caught; i++) {
    struct sigaction old;
    if (sigaction(caught[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN) continue;
    (void)sigaction(caught[i], &sa, NULL);
  }
  atexit(cleanup_at_exit);
}

_Noreturn void fio_oom(size_t asked) {
  fio_cleanup_now();
  char msg[96];
  int n = snprintf(msg, sizeof msg, "ditc: error: out of memory (asked for %zu bytes)\n", asked);
  fflush(stdout);
  if (n > 0) (void)!write(2, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
  _exit(1);
}
