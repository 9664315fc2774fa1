/*
 * testutil.h - small helpers shared by the unit tests: a scratch directory,
 * the shared data folder, an IR dump as a string, a relative L2 error, a
 * float's bits, and honest skips.  Header-only (static functions): every test is its own
 * executable.
 *
 * A test that cannot run here (no NVRTC, no ../shared) calls TU_SKIP(why) or,
 * when only part of it could not run, tu_note_skip(why); the executable's main
 * returns tu_run_group(...), which is TU_SKIP_CODE (ctest's SKIP_RETURN_CODE,
 * tests/CMakeLists.txt) when nothing failed but something was skipped, so ctest
 * reports the test as skipped instead of passed.  CI fails on any skip.
 */
#ifndef DITC_TESTUTIL_H
#define DITC_TESTUTIL_H

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "ir/ir.h"

/* ---- honest skips ---------------------------------------------------------- */

/* The exit status ctest reads as "skipped" (SKIP_RETURN_CODE). */
#define TU_SKIP_CODE 77

static int tu_skipped;

/* Part of a test could not run here: say why; the executable reports skipped. */
static inline void tu_note_skip(const char *why) {
  fprintf(stderr, "SKIPPED: %s\n", why);
  tu_skipped = 1;
}

/* The whole test cannot run here: say why and stop it (cmocka's skip()). */
#define TU_SKIP(why)        \
  do {                      \
    tu_note_skip(why);      \
    skip();                 \
    return;                 \
  } while (0)

/* cmocka_run_group_tests, with skips reported: failures, else TU_SKIP_CODE
 * after any skip, else 0. */
#define tu_run_group(tests, setup, teardown)                         \
  tu_exit_status(cmocka_run_group_tests(tests, setup, teardown))
static inline int tu_exit_status(int failed) { return failed ? failed : tu_skipped ? TU_SKIP_CODE : 0; }

/* A float's bits and back. */
static inline uint32_t tu_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}
static inline float tu_from_bits(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

/* A child's output and wait status: read fd (the pipe's read end) to its end
 * into out (NUL-terminated, at most n - 1 bytes), close it, wait for pid and
 * return waitpid's status. */
static inline int tu_child_wait_status(int fd, pid_t pid, char *out, size_t n) {
  size_t got = 0;
  ssize_t r;
  while (got + 1 < n && (r = read(fd, out + got, n - 1 - got)) > 0) got += (size_t)r;
  out[got] = 0;
  close(fd);
  int st = 0;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  return st;
}

/* The same for a child that must exit normally: its exit status. */
static inline int tu_child_wait(int fd, pid_t pid, char *out, size_t n) {
  int st = tu_child_wait_status(fd, pid, out, n);
  assert_true(WIFEXITED(st));
  return WEXITSTATUS(st);
}

/* A pipe in fd and a fork (stdio flushed first, so that nothing buffered is written twice): the
 * child's 0, the parent's the child's pid. */
static inline pid_t tu_fork_piped(int fd[2]) {
  assert_int_equal(pipe(fd), 0);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  return pid;
}

/* Run this test binary again in a child, its environment changed by env
 * (name, value, name, value, ..., NULL; a NULL value unsets the name), with
 * its stdout and stderr in out: waitpid's status (exit 99: it could not be
 * started).  tu_reexec: the exit status of a child that must exit normally. */
static inline int tu_reexec_status(const char *const *env, char *out, size_t n) {
  int fd[2];
  pid_t pid = tu_fork_piped(fd);
  if (pid == 0) {
    dup2(fd[1], 1);
    dup2(fd[1], 2);
    close(fd[0]);
    close(fd[1]);
    for (int i = 0; env[i]; i += 2)
      if (env[i + 1]) setenv(env[i], env[i + 1], 1);
      else unsetenv(env[i]);
    execl("/proc/self/exe", "test", (char *)NULL);
    _exit(99);
  }
  close(fd[1]);
  return tu_child_wait_status(fd[0], pid, out, n);
}

static inline int tu_reexec(const char *const *env, char *out, size_t n) {
  int st = tu_reexec_status(env, out, n);
  assert_true(WIFEXITED(st));
  return WEXITSTATUS(st);
}

/* mkdtemp "/tmp/ditc_test_<tag>.XXXXXX" into buf; 0 or -1. */
static inline int tu_tmpdir_make(char *buf, size_t n, const char *tag) {
  snprintf(buf, n, "/tmp/ditc_test_%s.XXXXXX", tag);
  return mkdtemp(buf) ? 0 : -1;
}

/* Remove the files (and empty subdirectories) in dir, then dir itself. */
static inline int tu_tmpdir_remove(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return -1;
  struct dirent *e;
  char p[4096];
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    if (remove(p) != 0) rmdir(p);
  }
  closedir(d);
  return rmdir(dir);
}

/* The shared data folder: $DITC_SHARED, else the one beside the source tree. */
static inline const char *tu_shared_dir(void) {
  const char *e = getenv("DITC_SHARED");
  if (e && *e) return e;
#ifdef DITC_SOURCE_DIR
  return DITC_SOURCE_DIR "/../shared";
#else
  return NULL;
#endif
}

/* Squared relative L2 error ||a - b||^2 / ||b||^2 of two f32 arrays of n
 * values (-1 when b is all zeros, which no comparison should accept). */
static inline double tu_rel_l2_sq(const float *a, const float *b, int64_t n) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; i++) {
    double d = (double)a[i] - b[i];
    num += d * d;
    den += (double)b[i] * b[i];
  }
  return den > 0 ? num / den : -1.0;
}

/* ir_dump into a malloc'ed string (the caller frees it). */
static inline char *tu_dump_str(IrGraph *g) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (!f) return NULL;
  ir_dump(g, f);
  fclose(f);
  return buf;
}

/* NVRTC options that compile a source in the kernel dialect: the codegen
 * folder (for cuda_prelude.h, pre-included) and the CUDA headers.  inc and
 * cuda_inc are buffers of n bytes; opts gets the three options. */
static inline void tu_nvrtc_dialect_options(char *inc, char *cuda_inc, size_t n, const char *opts[3]) {
  const char *srcdir = getenv("DITC_SRC") ? getenv("DITC_SRC") : DITC_SOURCE_DIR;
  const char *cuda = getenv("CUDA_HOME") ? getenv("CUDA_HOME") : "/usr/local/cuda";
  snprintf(inc, n, "-I%s/codegen", srcdir);
  snprintf(cuda_inc, n, "-I%s/include", cuda);
  opts[0] = inc;
  opts[1] = cuda_inc;
  opts[2] = "--pre-include=cuda_prelude.h";
}

#endif
