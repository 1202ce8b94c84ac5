/*
 * src/io/internal.h: what the io layer shares with the layers below it
 * (net embeds a tide__fdstream in its stream types). Never installed.
 */
#ifndef TIDE_IO_INTERNAL_H
#define TIDE_IO_INTERNAL_H

#include "reactor/internal.h"
#include "tide/io.h"

/* A registered descriptor plus the stream vtable that reads and writes it.
 * TCP, Unix and pipe streams are this, embedded; only the vtable differs
 * where the descriptor kind needs it (MSG_NOSIGNAL for sockets).
 *
 * The read side and the write side are independent: a task may read while
 * another writes (each direction has its own wait queue in reg, which are
 * the stream's rq and wq), which is what makes tide_split free. */
struct tide_fdstream {
    tide_stream_t stream;
    struct tide_fd reg;
    bool is_socket; /* send(MSG_NOSIGNAL) rather than write(2) */
    bool eof_seen;  /* a read has seen end of stream (informational: reads
                     * after it still ask the kernel, see io.h) */
    bool closed;    /* the descriptor is closed (poll_shutdown of a pipe's
                     * write end, or deinit): every operation fails, the
                     * descriptor number is never touched again */
};

/* Set up s (already allocated, embedded or not) around fd, which must be
 * non-blocking. The registration is marked embedded (tide_fd_free on it
 * would not free it; callers must not call tide_fd_free on it at all).
 * Returns 0 or the errors of tide_fd_new (-EBADF, TIDE_EBLOCKING, -EEXIST,
 * -EPERM, -ENOMEM, -EINVAL, -ESHUTDOWN). On error nothing is registered and
 * fd is left open. */
int tide__fdstream_init(struct tide_fdstream *s, tide_exec_t *ex, int fd);

/* Deregister (waiters are woken and see -EBADF); closes the descriptor if
 * close_fd and it is still open (poll_shutdown may have closed a pipe's
 * write end already: then nothing is closed twice). Idempotent. Returns the
 * descriptor if it is left open, else -1. */
int tide__fdstream_deinit(struct tide_fdstream *s, bool close_fd);

/* The fdstream vtable and its functions, for stream types that embed a
 * tide__fdstream and override only some entries. Each takes the
 * tide_stream_t * of the embedded struct tide_fdstream (&fs->stream). */
extern const tide_stream_vt_t tide__fdstream_vt;
tide_poll_t tide__fdstream_poll_read(tide_stream_t *s, tide_cx_t *cx, void *buf,
                                     size_t len, ssize_t *out);
tide_poll_t tide__fdstream_poll_write(tide_stream_t *s, tide_cx_t *cx,
                                      const void *buf, size_t len,
                                      ssize_t *out);
tide_poll_t tide__fdstream_poll_writev(tide_stream_t *s, tide_cx_t *cx,
                                       const struct iovec *iov, int iovcnt,
                                       ssize_t *out);
tide_poll_t tide__fdstream_poll_shutdown(tide_stream_t *s, tide_cx_t *cx,
                                         int *out);

/* Helpers shared by the io futures: their side of the wait protocol
 * (tide/core.h, "Waiters"; tide/io.h, "Waiting"). */

/* The stream's queue for `dir` (TIDE_READABLE or TIDE_WRITABLE). */
static inline tide_waitq_t *tide__io_q(tide_stream_t *s, unsigned dir) {
    return dir == TIDE_READABLE ? s->rq : s->wq;
}

/* A poll of s for `dir` answered PENDING: wait on its queue (a stream
 * without one has woken the task itself). */
static inline void tide__io_wait(tide_waiter_t *w, tide_stream_t *s,
                                 unsigned dir, tide_cx_t *cx) {
    tide_waitq_t *q = tide__io_q(s, dir);
    if (q != NULL)
        tide_waiter_wait(w, q, cx->waker);
}

/* The poll answered READY: leave the queue (if on it). */
static inline void tide__io_done(tide_waiter_t *w) {
    if (tide_waiter_is_waiting(w))
        tide_waiter_leave(w, TIDE_WAITQ_DONE);
}

/* The future is dropped. */
static inline void tide__io_cancel(tide_waiter_t *w) {
    tide_waiter_leave(w, TIDE_WAITQ_CANCELLED);
}

/* Before touching the stream: if it was freed under the waiter, complete
 * with the error the closed queue left (-EBADF). */
#define TIDE__IO_GONE(w, f)                                                    \
    do {                                                                       \
        if (tide_waiter_error(w) != 0) {                                       \
            (f)->result = tide_waiter_error(w);                                \
            return TIDE_READY;                                                 \
        }                                                                      \
    } while (0)

/* Write every byte of iov[0, iovcnt) starting at (*idx, *off), advancing
 * them and *done; w waits on s's wq while PENDING. READY with *out = *done,
 * or -errno (-EIO for a write of 0). */
tide_poll_t tide__poll_writev_all(tide_stream_t *s, tide_cx_t *cx,
                                  const struct iovec *iov, int iovcnt, int *idx,
                                  size_t *off, size_t *done, tide_waiter_t *w,
                                  ssize_t *out);

#endif
