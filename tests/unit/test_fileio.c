/*
 * test_fileio.c - ir/fileio.h: readers refuse FIFOs, devices and directories
 * without blocking and enforce their caps by size before reading; outputs
 * replace regular files atomically (mode kept, nothing left on failure),
 * write through symlinks, FIFOs and character devices without replacing
 * them, and carry strerror (ENOSPC via /dev/full); transactions commit all
 * or nothing and refuse two outputs that are one file; a SIGTERM or SIGINT
 * in a process that called fio_install removes its temporaries (and stops a
 * registered child) and still dies of that signal; running out of memory is
 * "ditc: error: out of memory" and exit 1 (a re-executed copy of this test,
 * so that a sanitizer's allocator can be told to return NULL).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ir/fileio.h"

extern char **environ;

static char dir[64];
static char self_exe[4096];

static int setup(void **state) {
  (void)state;
  return tu_tmpdir_make(dir, sizeof dir, "fileio");
}

static int teardown(void **state) {
  (void)state;
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  return system(cmd) == 0 ? 0 : -1;
}

static const char *tp(const char *name) {
  static char buf[64][256]; /* enough for the longest table of paths below */
  static int k;
  char *b = buf[k++ % 64];
  snprintf(b, 256, "%s/%s", dir, name);
  return b;
}

static void put_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  assert_int_equal(fclose(f), 0);
}

static char *slurp(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) return NULL;
  static char buf[4096];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  return buf;
}

/* Entries of the test directory whose name contains part (NULL: all). */
static int count_in(const char *d, const char *part) {
  DIR *dd = opendir(d);
  assert_non_null(dd);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(dd)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && (!part || strstr(e->d_name, part))) n++;
  closedir(dd);
  return n;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- reading ------------------------------------------------------------------- */

static void test_read_refusals(void **state) {
  (void)state;
  IrErr err = {{0}};
  struct stat st;
  char *data;
  size_t len;
  /* missing: errno says so */
  assert_int_equal(fio_open_read(tp("missing"), &st, &err), -1);
  assert_int_equal(errno, ENOENT);
  assert_non_null(strstr(err.msg, "missing: cannot open: No such file"));
  /* a FIFO nobody writes to: refused at once, not a hang */
  assert_int_equal(mkfifo(tp("fifo"), 0600), 0);
  double t0 = now_s();
  assert_int_equal(fio_open_read(tp("fifo"), &st, &err), -2);
  assert_true(S_ISFIFO(st.st_mode));
  assert_int_equal(fio_read_all(tp("fifo"), 100, "a test file", &data, &len, &err), -1);
  assert_true(now_s() - t0 < 2.0);
  assert_non_null(strstr(err.msg, "fifo: is a FIFO, not a regular file"));
  assert_string_equal(fio_err_reason(&err, tp("fifo")), "is a FIFO, not a regular file");
  /* a directory, a character device */
  assert_int_equal(fio_read_all(dir, 100, "a test file", &data, &len, &err), -1);
  assert_non_null(strstr(err.msg, "is a directory, not a regular file"));
  FioMap m;
  assert_int_equal(fio_map("/dev/zero", FIO_NO_CAP, "a test file", &m, &err), -1);
  assert_non_null(strstr(err.msg, "/dev/zero: is a character device, not a regular file"));
  assert_null(m.data);
  /* through a symlink: what it points at counts */
  assert_int_equal(symlink("/dev/zero", tp("zero.dit")), 0);
  assert_int_equal(fio_read_all(tp("zero.dit"), 100, "a model file", &data, &len, &err), -1);
  assert_non_null(strstr(err.msg, "is a character device"));
}

static void test_read_caps(void **state) {
  (void)state;
  IrErr err = {{0}};
  char *data;
  size_t len;
  put_file(tp("small"), "hello");
  assert_int_equal(fio_read_all(tp("small"), 5, "a test file", &data, &len, &err), 0);
  assert_int_equal(len, 5);
  assert_string_equal(data, "hello");
  free(data);
  assert_int_equal(fio_read_all(tp("small"), 4, "a test file", &data, &len, &err), -1);
  assert_null(data);
  assert_non_null(strstr(err.msg, "small: 5 bytes, more than the 4 bytes limit for a test file"));
  /* 100 GB of holes: refused by its size, in no time and no memory */
  int fd = open(tp("sparse"), O_WRONLY | O_CREAT, 0600);
  assert_true(fd >= 0);
  if (ftruncate(fd, (off_t)100 << 30) != 0) {
    close(fd);
    tu_note_skip("this file system cannot make a 100 GB sparse file");
    return;
  }
  close(fd);
  double t0 = now_s();
  assert_int_equal(fio_read_all(tp("sparse"), (uint64_t)16 << 20, "a model file", &data, &len, &err), -1);
  assert_true(now_s() - t0 < 1.0);
  assert_non_null(strstr(err.msg, "107374182400 bytes, more than the 16 MiB limit for a model file"));
  FioMap m;
  assert_int_equal(fio_map(tp("sparse"), 1 << 20, "a pack", &m, &err), -1);
  assert_non_null(strstr(err.msg, "more than the 1 MiB limit for a pack"));
  unlink(tp("sparse"));
  /* mapping: contents, and an empty file */
  assert_int_equal(fio_map(tp("small"), FIO_NO_CAP, "a test file", &m, &err), 0);
  assert_int_equal(m.size, 5);
  assert_memory_equal(m.data, "hello", 5);
  fio_unmap(&m);
  put_file(tp("empty"), "");
  assert_int_equal(fio_map(tp("empty"), FIO_NO_CAP, "a test file", &m, &err), 0);
  assert_non_null(m.data);
  assert_int_equal(m.size, 0);
  fio_unmap(&m);
  /* a file larger than st_size says (as /proc's are): read to the end, capped */
  assert_int_equal(fio_read_all("/proc/self/status", 1 << 20, "a test file", &data, &len, &err), 0);
  assert_true(len > 0 && strstr(data, "Pid:"));
  free(data);
  assert_int_equal(fio_read_all("/proc/self/status", 16, "a test file", &data, &len, &err), -1);
  assert_non_null(strstr(err.msg, "more than the 16 bytes limit"));
}

static void test_read_exact(void **state) {
  (void)state;
  IrErr err = {{0}};
  put_file(tp("six"), "abcdef");
  int fd = fio_open_read(tp("six"), NULL, &err);
  assert_true(fd >= 0);
  char b[8];
  assert_int_equal(fio_read_exact(fd, b, 4, tp("six"), &err), 0);
  assert_memory_equal(b, "abcd", 4);
  assert_int_equal(fio_read_exact(fd, b, 4, tp("six"), &err), -2);
  assert_non_null(strstr(err.msg, "read 2 of 4 bytes"));
  close(fd);
}

static void test_has_ext(void **state) {
  (void)state;
  assert_true(fio_has_ext("a.png", "png"));
  assert_true(fio_has_ext("dir.x/A.PNG", "png"));
  assert_true(fio_has_ext("b.Png", "png"));
  assert_false(fio_has_ext("png", "png"));
  assert_false(fio_has_ext("a.png/x", "png"));
  assert_false(fio_has_ext("a.pngx", "png"));
  assert_true(fio_has_ext("s.SafeTensors", "safetensors"));
}

/* ---- outputs ------------------------------------------------------------------- */

static void test_output_new_and_replace(void **state) {
  (void)state;
  IrErr err = {{0}};
  FioOut *o = fio_out_open(tp("new.txt"), NULL, &err);
  assert_non_null(o);
  assert_int_equal(count_in(dir, ".tmp."), 1);
  assert_int_equal(access(tp("new.txt"), F_OK), -1); /* nothing under the name until commit */
  assert_int_equal(fio_out_printf(o, &err, "%s %d", "one", 1), 0);
  /* more than the buffer, to exercise the direct path */
  size_t big = 200 * 1024;
  char *blob = malloc(big);
  memset(blob, 'x', big);
  assert_int_equal(fio_out_write(o, blob, big, &err), 0);
  assert_int_equal(fio_out_commit(o, &err), 0);
  struct stat st;
  assert_int_equal(stat(tp("new.txt"), &st), 0);
  assert_int_equal(st.st_size, 5 + big);
  assert_int_equal(count_in(dir, ".tmp."), 0);
  free(blob);

  /* replacing: a new inode under the name, the old permission bits */
  put_file(tp("old.txt"), "old");
  assert_int_equal(chmod(tp("old.txt"), 0640), 0);
  struct stat before;
  assert_int_equal(stat(tp("old.txt"), &before), 0);
  o = fio_out_open(tp("old.txt"), NULL, &err);
  assert_non_null(o);
  assert_int_equal(fio_out_write(o, "new", 3, &err), 0);
  assert_string_equal(slurp(tp("old.txt")), "old"); /* untouched until commit */
  assert_int_equal(fio_out_commit(o, &err), 0);
  assert_string_equal(slurp(tp("old.txt")), "new");
  assert_int_equal(stat(tp("old.txt"), &st), 0);
  assert_int_equal(st.st_mode & 0777, 0640);
  assert_true(st.st_ino != before.st_ino);

  /* abort: the old file as it was, no temporary */
  o = fio_out_open(tp("old.txt"), NULL, &err);
  assert_non_null(o);
  assert_int_equal(fio_out_write(o, "junk", 4, &err), 0);
  fio_out_abort(o);
  assert_string_equal(slurp(tp("old.txt")), "new");
  assert_int_equal(count_in(dir, ".tmp."), 0);

  /* refusals, before anything is created */
  assert_null(fio_out_open(dir, NULL, &err));
  assert_non_null(strstr(err.msg, "is a directory"));
  assert_null(fio_out_open(tp("no/such/dir/x"), NULL, &err));
  assert_non_null(strstr(err.msg, "cannot create a temporary file beside it: No such file"));
  assert_null(fio_out_open("", NULL, &err));
  unlink(tp("new.txt"));
  unlink(tp("old.txt"));
}

static void test_output_symlinks(void **state) {
  (void)state;
  IrErr err = {{0}};
  assert_int_equal(mkdir(tp("real"), 0700), 0);
  put_file(tp("real/target"), "before");
  assert_int_equal(symlink("real/target", tp("link")), 0);
  FioOut *o = fio_out_open(tp("link"), NULL, &err);
  assert_non_null(o);
  assert_int_equal(count_in(tp("real"), ".tmp."), 1); /* beside the target, not the link */
  assert_int_equal(fio_out_write(o, "after", 5, &err), 0);
  assert_int_equal(fio_out_commit(o, &err), 0);
  struct stat st;
  assert_int_equal(lstat(tp("link"), &st), 0);
  assert_true(S_ISLNK(st.st_mode));
  assert_string_equal(slurp(tp("real/target")), "after");
  assert_int_equal(count_in(tp("real"), ".tmp."), 0);
  /* a dangling link: its target is created, the link stays */
  assert_int_equal(symlink("real/created", tp("dangling")), 0);
  o = fio_out_open(tp("dangling"), NULL, &err);
  assert_non_null(o);
  assert_int_equal(fio_out_write(o, "made", 4, &err), 0);
  assert_int_equal(fio_out_commit(o, &err), 0);
  assert_int_equal(lstat(tp("dangling"), &st), 0);
  assert_true(S_ISLNK(st.st_mode));
  assert_string_equal(slurp(tp("real/created")), "made");
  /* a loop */
  assert_int_equal(symlink("loop2", tp("loop1")), 0);
  assert_int_equal(symlink("loop1", tp("loop2")), 0);
  assert_null(fio_out_open(tp("loop1"), NULL, &err));
  assert_non_null(strstr(err.msg, "symbolic link"));
}

static void test_output_fifo(void **state) {
  (void)state;
  IrErr err = {{0}};
  assert_int_equal(mkfifo(tp("pipe"), 0600), 0);
  /* with a reader: written through, the FIFO stays */
  int rd = open(tp("pipe"), O_RDONLY | O_NONBLOCK);
  assert_true(rd >= 0);
  FioOut *o = fio_out_open(tp("pipe"), NULL, &err);
  assert_non_null(o);
  assert_int_equal(fio_out_write(o, "through", 7, &err), 0);
  assert_int_equal(fio_out_commit(o, &err), 0);
  char b[16] = {0};
  assert_int_equal(read(rd, b, sizeof b), 7);
  assert_string_equal(b, "through");
  struct stat st;
  assert_int_equal(lstat(tp("pipe"), &st), 0);
  assert_true(S_ISFIFO(st.st_mode));
  /* the reader goes away mid-write: EPIPE, not a SIGPIPE */
  o = fio_out_open(tp("pipe"), NULL, &err);
  assert_non_null(o);
  close(rd);
  char chunk[128 * 1024] = {0};
  int rc = fio_out_write(o, chunk, sizeof chunk, &err);
  if (rc == 0) rc = fio_out_commit(o, &err);
  else fio_out_abort(o);
  assert_int_equal(rc, -1);
  assert_non_null(strstr(err.msg, "Broken pipe"));
  /* no reader: a bounded wait, then an error; never replaced */
  double t0 = now_s();
  assert_null(fio_out_open(tp("pipe"), NULL, &err));
  double waited = now_s() - t0;
  assert_true(waited >= FIO_FIFO_WAIT_MS / 1000.0 - 0.1 && waited < FIO_FIFO_WAIT_MS / 1000.0 + 3);
  assert_non_null(strstr(err.msg, "is a FIFO and no reader opened it"));
  assert_int_equal(lstat(tp("pipe"), &st), 0);
  assert_true(S_ISFIFO(st.st_mode));
  assert_int_equal(count_in(dir, ".tmp."), 0);
  unlink(tp("pipe"));
}

/* A character device to write to: as root a private copy made with mknod
 * (the real one is never at risk), else the system's (which a non-root
 * process could not replace anyway). */
static const char *char_device(const char *name, unsigned minor, char *buf, size_t n) {
  snprintf(buf, n, "%s/%s", dir, name);
  if (geteuid() == 0 && mknod(buf, S_IFCHR | 0666, makedev(1, minor)) == 0) {
    int fd = open(buf, O_WRONLY);
    if (fd >= 0) {
      close(fd);
      return buf;
    }
    unlink(buf);
  }
  snprintf(buf, n, "/dev/%s", name);
  return buf;
}

static void test_output_devices(void **state) {
  (void)state;
  IrErr err = {{0}};
  char nb[256], fb[256];
  const char *null_dev = char_device("null", 3, nb, sizeof nb);
  const char *full_dev = char_device("full", 7, fb, sizeof fb);
  struct stat before, after;
  assert_int_equal(stat(null_dev, &before), 0);
  assert_true(S_ISCHR(before.st_mode));
  FioOut *o = fio_out_open(null_dev, NULL, &err);
  assert_non_null(o);
  assert_int_equal(fio_out_write(o, "gone", 4, &err), 0);
  assert_int_equal(fio_out_commit(o, &err), 0);
  assert_int_equal(stat(null_dev, &after), 0);
  assert_true(S_ISCHR(after.st_mode));
  assert_int_equal(after.st_ino, before.st_ino);
  assert_int_equal(after.st_rdev, before.st_rdev);
  /* a full device: the reason, as strerror says it */
  o = fio_out_open(full_dev, NULL, &err);
  assert_non_null(o);
  int rc = fio_out_write(o, "x", 1, &err);
  if (rc == 0) rc = fio_out_commit(o, &err);
  else fio_out_abort(o);
  assert_int_equal(rc, -1);
  assert_non_null(strstr(err.msg, "cannot write: No space left on device"));
  assert_int_equal(stat(full_dev, &after), 0);
  assert_true(S_ISCHR(after.st_mode));
  /* a socket is refused, as input and as output */
  int s = socket(AF_UNIX, SOCK_STREAM, 0);
  assert_true(s >= 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", tp("sock"));
  assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof sa), 0);
  assert_null(fio_out_open(tp("sock"), NULL, &err));
  assert_non_null(strstr(err.msg, "is a socket; an output must be"));
  assert_int_equal(fio_open_read(tp("sock"), NULL, &err), -2);
  assert_non_null(strstr(err.msg, "is a socket, not a regular file"));
  close(s);
  unlink(tp("sock"));
  if (null_dev[1] != 'd') unlink(null_dev);
  if (full_dev[1] != 'd') unlink(full_dev);
}

/* ---- transactions ---------------------------------------------------------------- */

static void test_txn(void **state) {
  (void)state;
  IrErr err = {{0}};
  /* all or nothing: committed together */
  FioTxn *t = fio_txn_new();
  FioOut *a = fio_txn_add(t, tp("a.out"), &err), *b = fio_txn_add(t, tp("b.out"), &err);
  assert_non_null(a);
  assert_non_null(b);
  assert_int_equal(fio_out_write(a, "A", 1, &err), 0);
  assert_int_equal(fio_out_write(b, "B", 1, &err), 0);
  assert_int_equal(access(tp("a.out"), F_OK), -1);
  assert_int_equal(fio_txn_commit(t, &err), 0);
  assert_string_equal(slurp(tp("a.out")), "A");
  assert_string_equal(slurp(tp("b.out")), "B");

  /* aborted: nothing new, the old files as they were */
  t = fio_txn_new();
  a = fio_txn_add(t, tp("a.out"), &err);
  assert_non_null(a);
  assert_non_null(fio_txn_add(t, tp("c.out"), &err));
  assert_int_equal(fio_out_write(a, "changed", 7, &err), 0);
  fio_txn_abort(t);
  assert_string_equal(slurp(tp("a.out")), "A");
  assert_int_equal(access(tp("c.out"), F_OK), -1);
  assert_int_equal(count_in(dir, ".tmp."), 0);

  /* the same file, however it is named: refused before anything is written */
  assert_int_equal(link(tp("a.out"), tp("hard.out")), 0);
  assert_int_equal(symlink("a.out", tp("soft.out")), 0);
  assert_int_equal(symlink("new.out", tp("to_new.out")), 0);
  char dot[300];
  snprintf(dot, sizeof dot, "%s/./a.out", dir);
  const char *same[][2] = {
      {tp("a.out"), tp("a.out")},   {tp("a.out"), dot},
      {tp("a.out"), tp("hard.out")}, {tp("soft.out"), tp("a.out")},
      {tp("new.out"), tp("new.out")}, {tp("to_new.out"), tp("new.out")},
  };
  for (size_t i = 0; i < sizeof same / sizeof *same; i++) {
    t = fio_txn_new();
    assert_non_null(fio_txn_add(t, same[i][0], &err));
    if (fio_txn_add(t, same[i][1], &err)) fail_msg("case %zu: %s and %s taken for two files", i, same[i][0], same[i][1]);
    assert_non_null(strstr(err.msg, "are the same file"));
    fio_txn_abort(t);
  }
  assert_string_equal(slurp(tp("a.out")), "A");
  assert_int_equal(access(tp("new.out"), F_OK), -1);
  assert_int_equal(count_in(dir, ".tmp."), 0);

  /* a failure of one output after the others were written: none remains */
  char fb[256];
  const char *full_dev = char_device("full", 7, fb, sizeof fb);
  t = fio_txn_new();
  a = fio_txn_add(t, tp("first.out"), &err);
  b = fio_txn_add(t, full_dev, &err);
  assert_non_null(a);
  assert_non_null(b);
  assert_int_equal(fio_out_write(a, "first", 5, &err), 0);
  assert_int_equal(fio_out_write(b, "x", 1, &err), 0); /* buffered: fails at commit */
  assert_int_equal(fio_txn_commit(t, &err), -1);
  assert_non_null(strstr(err.msg, "No space left on device"));
  assert_int_equal(access(tp("first.out"), F_OK), -1);
  assert_int_equal(count_in(dir, ".tmp."), 0);
  unlink(tp("a.out"));
  unlink(tp("b.out"));
  unlink(tp("hard.out"));
  unlink(tp("soft.out"));
  unlink(tp("to_new.out"));
}

static void test_private_file(void **state) {
  (void)state;
  IrErr err = {{0}};
  /* the cache's entries: whatever sits at the name is replaced, with its prefix */
  assert_int_equal(mkfifo(tp("entry"), 0600), 0);
  FioOutOpts opts = {.private_file = 1, .tmp_prefix = ".tmp-entry-"};
  FioOut *o = fio_out_open(tp("entry"), &opts, &err);
  assert_non_null(o);
  assert_int_equal(count_in(dir, ".tmp-entry-"), 1);
  assert_int_equal(fio_out_write(o, "payload", 7, &err), 0);
  assert_int_equal(fio_out_commit(o, &err), 0);
  assert_string_equal(slurp(tp("entry")), "payload");
  assert_int_equal(count_in(dir, ".tmp-entry-"), 0);
  unlink(tp("entry"));
}

/* ---- cleanup on signals and out of memory ------------------------------------------ */

/* In a child: install the handlers, leave a temporary output, a temporary
 * folder with a file and a registered child process (its pid to `report`),
 * then wait to be killed. */
static void signal_child(int report, const char *tmpdir) {
  IrErr err;
  fio_install();
  setenv("TMPDIR", tmpdir, 1);
  char path[512], d[512], f[600];
  snprintf(path, sizeof path, "%s/out.bin", tmpdir);
  FioOut *o = fio_out_open(path, NULL, &err);
  if (!o || fio_out_write(o, "partial", 7, &err)) _exit(10);
  if (fio_tempdir_make("ditc-emu-", d, sizeof d, &err) < 0) _exit(11);
  snprintf(f, sizeof f, "%s/module.so", d);
  if (fio_temp_register(f, 0, &err) < 0) _exit(12);
  FILE *fp = fopen(f, "w");
  if (!fp) _exit(13);
  fputs("x", fp);
  fclose(fp);
  posix_spawnattr_t at;
  posix_spawnattr_init(&at);
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&at, 0);
  pid_t pid;
  char *argv[] = {"sleep", "60", NULL};
  if (posix_spawnp(&pid, "sleep", NULL, &at, argv, environ) != 0) _exit(14);
  if (fio_child_register(pid, &err)) _exit(15);
  if (write(report, &pid, sizeof pid) != sizeof pid) _exit(16);
  for (;;) pause();
}

static void check_signal(int sig) {
  char tmpdir[300];
  snprintf(tmpdir, sizeof tmpdir, "%s/sig%d", dir, sig);
  assert_int_equal(mkdir(tmpdir, 0700), 0);
  int p[2];
  assert_int_equal(pipe(p), 0);
  pid_t c = fork();
  assert_true(c >= 0);
  if (c == 0) {
    close(p[0]);
    signal_child(p[1], tmpdir);
  }
  close(p[1]);
  pid_t grandchild = 0;
  assert_int_equal(read(p[0], &grandchild, sizeof grandchild), sizeof grandchild);
  close(p[0]);
  assert_int_equal(count_in(tmpdir, ".tmp."), 1);
  assert_int_equal(count_in(tmpdir, "ditc-emu-"), 1);
  assert_int_equal(kill(c, sig), 0);
  int status;
  assert_int_equal(waitpid(c, &status, 0), c);
  assert_true(WIFSIGNALED(status));
  assert_int_equal(WTERMSIG(status), sig);
  assert_int_equal(count_in(tmpdir, NULL), 0);
  /* the registered child's process group is gone too */
  assert_int_equal(kill(grandchild, 0), -1);
  assert_int_equal(rmdir(tmpdir), 0);
}

static void test_signals(void **state) {
  (void)state;
  check_signal(SIGTERM);
  check_signal(SIGINT);
  check_signal(SIGHUP);
}

/* Run in a fresh copy of this executable: a sanitizer's allocator then
 * returns NULL for a request too large instead of reporting it. */
static int oom_child(const char *tmpdir) {
  IrErr err;
  fio_install();
  char path[512];
  snprintf(path, sizeof path, "%s/staged.out", tmpdir);
  FioOut *o = fio_out_open(path, NULL, &err);
  if (!o) return 20;
  void *p = xmalloc((size_t)1 << 62);
  return p ? 21 : 22; /* not reached */
}

static void test_out_of_memory(void **state) {
  (void)state;
  char tmpdir[300], log[320];
  snprintf(tmpdir, sizeof tmpdir, "%s/oom", dir);
  snprintf(log, sizeof log, "%s/oom.log", dir);
  assert_int_equal(mkdir(tmpdir, 0700), 0);
  pid_t c = fork();
  assert_true(c >= 0);
  if (c == 0) {
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || dup2(fd, 2) < 0) _exit(30);
    setenv("ASAN_OPTIONS", "allocator_may_return_null=1:detect_leaks=0", 1);
    execl(self_exe, self_exe, "--oom-child", tmpdir, (char *)NULL);
    _exit(31);
  }
  int status;
  assert_int_equal(waitpid(c, &status, 0), c);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 1);
  char *text = slurp(log);
  assert_non_null(text);
  assert_non_null(strstr(text, "ditc: error: out of memory (asked for 4611686018427387904 bytes)"));
  assert_int_equal(count_in(tmpdir, NULL), 0); /* the staged output's temporary is gone */
  rmdir(tmpdir);
  unlink(log);
}

int main(int argc, char **argv) {
  if (argc == 3 && !strcmp(argv[1], "--oom-child")) return oom_child(argv[2]);
  ssize_t n = readlink("/proc/self/exe", self_exe, sizeof self_exe - 1);
  if (n > 0) self_exe[n] = 0;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_read_refusals),
      cmocka_unit_test(test_read_caps),
      cmocka_unit_test(test_read_exact),
      cmocka_unit_test(test_has_ext),
      cmocka_unit_test(test_output_new_and_replace),
      cmocka_unit_test(test_output_symlinks),
      cmocka_unit_test(test_output_fifo),
      cmocka_unit_test(test_output_devices),
      cmocka_unit_test(test_txn),
      cmocka_unit_test(test_private_file),
      cmocka_unit_test(test_signals),
      cmocka_unit_test(test_out_of_memory),
  };
  return tu_run_group(tests, setup, teardown);
}
