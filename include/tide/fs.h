/*
 * tide/fs.h: files, on the blocking pool.
 *
 * Regular files are always "ready" to the kernel's readiness APIs, so
 * tide does not pretend: every open, read, write and sync here runs as a
 * job of the executor's blocking pool (tide/task.h, tide_spawn_blocking),
 * as Tokio's fs does, and completes on the executor's thread. Each costs a
 * hand-off to a pool thread and back (a lock and a wake each way); read
 * and write in large chunks.
 *
 * An open file is a tide_stream_t (tide/io.h), so every stream helper
 * (read_exact, write_all, copy, buffered reading...) works on it. Reads
 * and writes go through the file's buffer (one allocation, at
 * tide_file_new), one job at a time:
 *   - a read runs read(2) into the buffer and hands out what it got; what a
 *     short read of the caller leaves stays buffered for the next read;
 *   - a write copies up to the buffer's size and answers READY at once;
 *     the pool writes it in the background. Its error, if any, is the
 *     answer of the next write, flush or shutdown: flush (or shutdown)
 *     before freeing a file whose writes matter;
 *   - a write after a read first moves the offset back over the data read
 *     ahead and not consumed (lseek), so the bytes land where the reader
 *     stopped, on files that can seek.
 * Executor's thread only (the pool threads touch a file only inside its
 * jobs).
 */
#ifndef TIDE_FS_H
#define TIDE_FS_H

#include "tide/core.h"
#include "tide/io.h"
#include "tide/task.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The future of tide_fs_open (136 bytes on LP64; private fields). */
typedef struct tide_fs_open {
    tide_future_t fut;
    tide_blocking_t job; /* private */
    const char *path;    /* private */
    int flags;           /* private */
    unsigned mode;       /* private */
} tide_fs_open_t;

/*
 * tide_fs_open: open(2) path on the blocking pool, with O_CLOEXEC added.
 * Result: the new descriptor (blocking mode: give it to tide_file_new, or
 * keep it for your own blocking jobs), or -errno (-ENOENT, -EACCES, ...),
 * or the pool's errors (tide_spawn_blocking). path is borrowed until the
 * future completes or is dropped. Cancel safe: dropped before open ran, it
 * never runs; dropped while it runs, the descriptor it opens is closed on
 * the pool thread.
 */
TIDE_EXTERN tide_future_t *tide_fs_open(tide_fs_open_t *op, const char *path,
                                        int flags, unsigned mode);

/* tide_file_t: an open file as a stream (opaque): tide_file_new creates
 * one, tide_file_free frees it. */
typedef struct tide_file tide_file_t;

/* tide_file_new: wrap fd (a descriptor of a file, opened by tide_fs_open
 * or otherwise; the file takes it and closes it at tide_file_free) in a
 * stream with a buffer of bufsize bytes (0: 64 KiB). Returns 0 and sets
 * *out. Errors: -EINVAL (out NULL, fd < 0), -ENOMEM (fd is not taken
 * then). */
TIDE_EXTERN int tide_file_new(tide_file_t **out, int fd, size_t bufsize);

/* tide_file_stream: the file as a stream, valid until tide_file_free. */
TIDE_EXTERN tide_stream_t *tide_file_stream(tide_file_t *f);

/* tide_file_fd: the file's descriptor. */
TIDE_EXTERN int tide_file_fd(const tide_file_t *f);

/* The future of tide_file_sync (128 bytes on LP64). */
typedef struct tide_file_sync {
    tide_future_t fut;
    tide_file_t *file;   /* private */
    tide_blocking_t job; /* private */
    bool started;        /* private */
    bool data_only;      /* private */
} tide_file_sync_t;

/* tide_file_sync: flush the file's buffered write, then fsync(2) (or
 * fdatasync(2) if data_only) on the pool. Result: 0 or -errno. Cancel
 * safe: dropped, the sync may still run; nothing is lost. Do not free the
 * file while it is pending. */
TIDE_EXTERN tide_future_t *tide_file_sync(tide_file_sync_t *op, tide_file_t *f,
                                          bool data_only);

/* tide_file_free: close the file: futures waiting on its stream complete
 * with -EBADF; a buffered write that has not reached the pool is lost
 * (flush first). If a job of the file is running on a pool thread, that
 * thread frees the file (and closes its descriptor) when the job returns;
 * otherwise it happens here (close(2) of a regular file does not block on
 * a local file system). NULL is a no-op. */
TIDE_EXTERN void tide_file_free(tide_file_t *f);

#ifdef __cplusplus
}
#endif
#endif
