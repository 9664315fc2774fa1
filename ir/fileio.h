/*
 * fileio.h - every read and write of a user's file goes through here.
 *
 * Reading.  fio_open_read() looks at the path with stat(2) first and then
 * opens it with O_NONBLOCK | O_CLOEXEC, so a FIFO or a device is refused
 * without blocking and without being opened for real; fstat(2) on the open
 * descriptor then confirms a regular file (the name may have changed between
 * the two), and O_NONBLOCK is cleared.  Everything else is refused with a
 * message naming the path and what it is ("x.dit: is a FIFO, not a regular
 * file").  fio_read_all() reads a whole file under a size cap chosen by the
 * caller from its format (the cap is checked against the file's size before
 * anything is read, so a 100 GB sparse file costs nothing; a file that grows
 * past the cap while being read is refused too); fio_map() maps one
 * read-only.  Reads are EINTR-safe and a short read is an error.
 *
 * Writing.  An output (FioOut) is one file being written:
 *   - a regular file, or a path that does not exist yet: written to a
 *     temporary file beside it ("NAME.tmp.XXXXXX", same directory, so the
 *     rename cannot cross file systems), fsync'd, renamed over the name on
 *     commit, then the directory fsync'd.  An existing file's permission bits
 *     are kept.  Nothing of a failed or interrupted output remains.
 *   - a symlink: the file it points at is the output (atomically replaced when
 *     it is a regular file, created when the link dangles); the link stays.
 *   - a character device (/dev/null, a terminal): written through, never
 *     replaced.
 *   - a FIFO: written through, never replaced.  Opening waits up to
 *     FIO_FIFO_WAIT_MS for a reader to open the other end, then fails with
 *     "is a FIFO and no reader opened it": it never hangs for ever on an
 *     absent reader.  A reader that goes away mid-write is an error
 *     ("Broken pipe"), not a SIGPIPE.
 *   - a directory, a socket, a block device: refused.
 * Write-through outputs cannot be taken back: what was written stays written
 * even when the output is aborted.  Errors carry strerror(3) ("out.png: cannot
 * write: No space left on device"); the first error of an output sticks, and
 * commit reports it.
 *
 * Transactions.  A command with several outputs stages them all in one FioTxn
 * before writing any, and commits them together once everything succeeded:
 * first every output is flushed and fsync'd (where a full disk shows), then
 * the temporaries are renamed into place one after the other.  Any failure
 * before that point leaves nothing new behind.  Should a rename itself fail
 * (after the data is safely on disk, so in practice never), outputs created
 * by the earlier renames are removed; files those renames replaced keep
 * their new content.  Two outputs that are the same file - the same path once
 * symlinks are followed, or the same device and inode (a hard link, a
 * symlink, /dev/null twice) - are refused when the second is added, before
 * anything is written.
 *
 * Cleanup.  Every temporary file or directory the process makes is
 * registered (fio_temp_register); fio_install(), called once by main, installs
 * handlers for SIGINT, SIGTERM and SIGHUP that terminate registered child
 * processes, remove every registered temporary (async-signal-safe: unlink and
 * rmdir of paths built beforehand), and re-raise the signal with its default
 * action, so the exit status still says which signal it was.  The same removal
 * runs on exit and when memory runs out (xmalloc: "ditc: error: out of memory
 * (asked for N bytes)", exit 1).  Only the process that registered a path
 * removes it (a forked child's exit does not touch its parent's files).
 *
 * Messages are "PATH: reason"; fio_err_reason() gives the reason alone for a
 * caller that puts the path elsewhere.  Functions return 0 (or a handle) on
 * success, -1 (or NULL) with err filled otherwise; nothing here exits except
 * through fio_oom().
 */
#ifndef DITC_IR_FILEIO_H
#define DITC_IR_FILEIO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "ir/ir.h"

/* ---- reading ---------------------------------------------------------------- */

/* Open a regular file for reading (see the top).  Returns the descriptor, or
 * -1 when open/stat failed (errno kept: ENOENT for a missing file), or -2 when
 * the path is not a regular file (*st then says what it is); err names the
 * path either way.  st may be NULL. */
int fio_open_read(const char *path, struct stat *st, IrErr *err);

/* Read exactly n bytes from fd: 0, or -1 for an I/O error, or -2 when the
 * file ended first (it shrank), with "PATH: ..." in err. */
int fio_read_exact(int fd, void *buf, size_t n, const char *path, IrErr *err);

/* The whole file into a malloc'd, NUL-terminated buffer (*len excludes the
 * NUL).  cap is the most bytes the format allows; what names the format for
 * the message ("a model file": "x.dit: 20971520 bytes, more than the 16 MiB
 * limit for a model file"). */
int fio_read_all(const char *path, uint64_t cap, const char *what, char **data, size_t *len,
                 IrErr *err);

/* A read-only private mapping of a whole regular file of at most cap bytes
 * (FIO_NO_CAP: no limit but the address space).  data is never NULL (an empty
 * file maps to a static empty buffer). */
typedef struct {
  const unsigned char *data;
  size_t size;
  void *map_; /* private: the mapping, or NULL */
} FioMap;
#define FIO_NO_CAP UINT64_MAX
int fio_map(const char *path, uint64_t cap, const char *what, FioMap *m, IrErr *err);
void fio_unmap(FioMap *m); /* zeroes *m; a zeroed FioMap is fine */

/* "a directory", "a FIFO", "a character device", ... for st_mode. */
const char *fio_type_name(mode_t mode);

/* The reason part of a "PATH: reason" message (all of it when it does not
 * start with path). */
const char *fio_err_reason(const IrErr *err, const char *path);

/* Whether path's extension (after the last '.' of its last component) is ext
 * (given without the dot), ignoring case: fio_has_ext("A.PNG", "png") is 1. */
int fio_has_ext(const char *path, const char *ext);

/* ---- writing ---------------------------------------------------------------- */

#define FIO_FIFO_WAIT_MS 5000

typedef struct FioOut FioOut;

typedef struct {
  /* A file in a directory only ditc writes (the kernel cache): whatever is at
   * the path except a directory is replaced atomically, never written
   * through. */
  int private_file;
  /* The temporary's name in the target's directory, before 6 random
   * characters; NULL: "NAME.tmp.". */
  const char *tmp_prefix;
} FioOutOpts;

/* Start writing path (opts may be NULL: a user's output).  Refusals and
 * failures to create the temporary file are errors here, before any byte is
 * written. */
FioOut *fio_out_open(const char *path, const FioOutOpts *opts, IrErr *err);
/* Buffered; the first error sticks and is returned by every later call. */
int fio_out_write(FioOut *o, const void *buf, size_t n, IrErr *err);
int fio_out_printf(FioOut *o, IrErr *err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The path as given to fio_out_open. */
const char *fio_out_path(const FioOut *o);
/* Finish: flush, fsync, rename into place (or close a write-through output).
 * o is freed whatever the result; on failure nothing new remains. */
int fio_out_commit(FioOut *o, IrErr *err);
/* Give up: remove the temporary file, free o.  NULL is fine. */
void fio_out_abort(FioOut *o);

/* A whole output in one call: open path, let fn write into it, commit, or
 * abort when fn fails (a writer's save-to-a-path). */
typedef int (*FioWriteFn)(void *ctx, FioOut *o, IrErr *err);
int fio_save(const char *path, FioWriteFn fn, void *ctx, IrErr *err);

/* ---- transactions ------------------------------------------------------------- */

typedef struct FioTxn FioTxn;
FioTxn *fio_txn_new(void);
/* Stage one more output (owned by the transaction: do not commit or abort it
 * alone).  NULL with "A and B are the same file" when it is the file of an
 * output already staged, or with fio_out_open's error. */
FioOut *fio_txn_add(FioTxn *t, const char *path, IrErr *err);
/* Commit every staged output (see the top); t is freed whatever the result. */
int fio_txn_commit(FioTxn *t, IrErr *err);
/* Abort every staged output and free t.  NULL is fine. */
void fio_txn_abort(FioTxn *t);

/* ---- cleanup -------------------------------------------------------------------- */

/* Install the SIGINT/SIGTERM/SIGHUP handlers (not for a signal the process
 * was started ignoring, as under nohup) and the removal at exit.  Once, at the
 * start of main; later calls do nothing. */
void fio_install(void);

#define FIO_MAX_TEMPS 128
#define FIO_PATH_MAX 4096
/* Register a temporary file (is_dir 0) or directory (1) to be removed on a
 * signal, on exit or on running out of memory; register before creating it.
 * Returns a handle >= 0, or -1 with err (no free slot, path too long). */
int fio_temp_register(const char *path, int is_dir, IrErr *err);
/* It is gone or has its final name: stop tracking it. -1 is fine. */
void fio_temp_forget(int handle);
/* Remove it now (unlink or rmdir, errors ignored) and forget it. */
void fio_temp_remove(int handle);
/* Make a fresh directory "$TMPDIR/<prefix>XXXXXX" (/tmp when TMPDIR is unset),
 * mode 0700, registered; its path into buf (n bytes).  Returns the handle, or
 * -1 with err. */
int fio_tempdir_make(const char *prefix, char *buf, size_t n, IrErr *err);

/* A child process whose files live in a registered temporary (the emulated
 * device's host compiler, spawned as the leader of its own process group):
 * on a signal its group gets SIGTERM and is waited for before the removal.
 * fio_child_forget when it has been waited for. */
int fio_child_register(pid_t pid, IrErr *err);
void fio_child_forget(pid_t pid);

/* Remove every temporary this process registered, now.  Async-signal-safe. */
void fio_cleanup_now(void);

/* Six random characters [A-Za-z0-9] and a NUL, for temporary names. */
void fio_random_suffix(char out[7]);

/* Out of memory: remove the temporaries, say so on stderr, exit 1. */
_Noreturn void fio_oom(size_t asked);

#endif
