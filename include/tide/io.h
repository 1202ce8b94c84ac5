/*
 * tide/io.h: byte streams (AsyncRead + AsyncWrite in one small vtable) and
 * the helpers that work on any of them.
 *
 * A stream is any struct that embeds a tide_stream_t whose vtable answers
 * poll_read, poll_write, poll_writev, poll_flush and poll_shutdown. Every
 * tide stream type (TCP, Unix, pipes, any descriptor) implements it, and so
 * can yours: the helpers below (read, write_all, copy, ...) then work on it
 * unchanged.
 *
 * The poll functions follow the core contract: READY with the outcome in
 * *out (a count, 0 at end of stream for reads, or a negative errno), or
 * PENDING. EAGAIN never escapes as a result, EINTR is retried inside.
 *
 * Waiting (the one way to wait, tide/core.h). A stream has a wait queue
 * per direction (rq for reads, wq for writes, flushes and shutdowns; the
 * stream's own, or one it shares with what it wraps). A poll function that
 * answers PENDING has made sure that queue will be woken when polling
 * again could make progress (or has woken cx's task itself); the future
 * that called it then waits on the queue with a waiter in its own memory.
 * So any number of tasks may wait on one direction, each is woken, and
 * dropping one leaves the others alone. Freeing a stream closes its
 * queues: every future still waiting completes with -EBADF at its next
 * poll and never touches the stream again, so a stream may be freed by any
 * task (an admin task closing a victim's connection, a proxy's writer
 * closing on an error while its reader waits on the other half).
 *
 * A stream of your own, over anything with non-blocking reads and writes
 * and a way to hear when they can proceed:
 *
 *     typedef struct {
 *         tide_stream_t stream;
 *         tide_waitq_t rq, wq;
 *         ... // your state
 *     } my_stream_t;
 *
 *     static tide_poll_t my_read(tide_stream_t *s, tide_cx_t *cx, void *buf,
 *                                size_t len, ssize_t *out) {
 *         my_stream_t *m = TIDE_CONTAINER_OF(s, my_stream_t, stream);
 *         ssize_t n = my_try_read(m, buf, len);   // -EAGAIN if nothing yet
 *         if (n == -EAGAIN)
 *             return TIDE_PENDING;  // and when data comes: wake_all(&m->rq)
 *         *out = n;
 *         return TIDE_READY;
 *     }
 *     ...
 *     tide_waitq_init(&m->rq, NULL);
 *     tide_waitq_init(&m->wq, NULL);
 *     tide_stream_init(&m->stream, &my_vt, &m->rq, &m->wq);
 *     ...                       // your event source says data is there:
 *     tide_waitq_wake_all(&m->rq);
 *     ...                       // freeing it:
 *     tide_stream_close(&m->stream);
 *
 * t/check_io.c has one in full (an in-memory pipe), tested with every
 * helper below.
 *
 * End of stream. A read answers 0 (for len > 0) exactly when the stream is
 * at its end, never before, and nothing is cached: every read after the
 * end asks again. For a descriptor that means each read after the kernel
 * first reported EOF is a read(2) that reports it again: a socket whose
 * peer shut down its write side answers 0 every time (as Tokio does), a
 * FIFO that gets a new writer delivers that writer's bytes. Helpers stop
 * at the first 0 (read_exact: TIDE_EEOF; copy: done).
 *
 * Half close is explicit: tide_shutdown closes our write side only (the
 * peer reads 0, we keep reading). A peer that closes makes our reads
 * answer 0 and our writes -EPIPE; a peer that resets (RST) makes the next
 * read or write answer -ECONNRESET, once: after it the kernel reports
 * reads as 0 and writes as -EPIPE.
 */
#ifndef TIDE_IO_H
#define TIDE_IO_H

#include <sys/types.h>
#include <sys/uio.h>

#include "tide/core.h"
#include "tide/fd.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tide_stream tide_stream_t;

/* A stream's operations (its vtable). */
typedef struct tide_stream_vt {
    /* Read up to len bytes into buf. *out: bytes read (> 0), 0 at end of
     * stream (reported once per end: a further read answers 0 again only if
     * the stream really is still at its end), or -errno. len == 0 answers
     * READY with 0 at once. */
    tide_poll_t (*poll_read)(tide_stream_t *s, tide_cx_t *cx, void *buf,
                             size_t len, ssize_t *out);
    /* Write up to len bytes. *out: bytes written (> 0 unless len == 0) or
     * -errno (-EPIPE after the peer closed, -ECONNRESET after a reset). */
    tide_poll_t (*poll_write)(tide_stream_t *s, tide_cx_t *cx, const void *buf,
                              size_t len, ssize_t *out);
    /* Gathering write; NULL means "write the first non-empty buffer". */
    tide_poll_t (*poll_writev)(tide_stream_t *s, tide_cx_t *cx,
                               const struct iovec *iov, int iovcnt,
                               ssize_t *out);
    /* Push buffered bytes to the kernel; NULL means nothing is buffered.
     * *out: 0 or -errno. */
    tide_poll_t (*poll_flush)(tide_stream_t *s, tide_cx_t *cx, int *out);
    /* Flush, then close the write side (FIN for a socket, close for a
     * pipe's write end). *out: 0 or -errno. NULL: -ENOTSUP. */
    tide_poll_t (*poll_shutdown)(tide_stream_t *s, tide_cx_t *cx, int *out);
} tide_stream_vt_t;

/* A stream: embed one in your type (tide_stream_init). */
struct tide_stream {
    const tide_stream_vt_t *vt; /* the stream's operations */
    tide_waitq_t *rq;           /* waiters for reads; NULL: reads never pend */
    tide_waitq_t *wq; /* waiters for writes, flushes, shutdowns; NULL: never */
};

/* tide_stream_init: set up the header of a stream: its vtable and its two
 * wait queues (see "Waiting" above; NULL for a direction whose polls never
 * answer PENDING, or that wake cx's task themselves). */
static inline void tide_stream_init(tide_stream_t *s,
                                    const tide_stream_vt_t *vt,
                                    tide_waitq_t *rq, tide_waitq_t *wq) {
    s->vt = vt;
    s->rq = rq;
    s->wq = wq;
}

/* tide_stream_close: the stream is going away: close both queues, so that
 * every future waiting on it completes with -EBADF at its next poll. Call
 * it before freeing a stream of your own. */
TIDE_EXTERN void tide_stream_close(tide_stream_t *s);

/* Calls through the vtable, for hand-written poll functions and stream
 * adapters (every helper below uses them). They apply the defaults of the
 * optional entries described above, and they poll again at once when a
 * stream lets -EINTR escape as a result, so helpers never report it. */
static inline tide_poll_t tide_stream_poll_read(tide_stream_t *s, tide_cx_t *cx,
                                                void *buf, size_t len,
                                                ssize_t *out) {
    tide_poll_t p;
    do /* -EINTR from a stream that lets it escape: just ask again */
        p = s->vt->poll_read(s, cx, buf, len, out);
    while (p == TIDE_READY && *out == -EINTR);
    return p;
}

/* tide_stream_poll_write: s's poll_write. */
static inline tide_poll_t tide_stream_poll_write(tide_stream_t *s,
                                                 tide_cx_t *cx, const void *buf,
                                                 size_t len, ssize_t *out) {
    tide_poll_t p;
    do
        p = s->vt->poll_write(s, cx, buf, len, out);
    while (p == TIDE_READY && *out == -EINTR);
    return p;
}

/* tide_stream_poll_writev: s's poll_writev, or poll_write of the first
 * non-empty buffer if it has none. */
static inline tide_poll_t tide_stream_poll_writev(tide_stream_t *s,
                                                  tide_cx_t *cx,
                                                  const struct iovec *iov,
                                                  int iovcnt, ssize_t *out) {
    if (s->vt->poll_writev == NULL) {
        for (int i = 0; i < iovcnt; i++)
            if (iov[i].iov_len > 0)
                return tide_stream_poll_write(s, cx, iov[i].iov_base,
                                              iov[i].iov_len, out);
        *out = iovcnt < 0 ? -EINVAL : 0;
        return TIDE_READY;
    }
    tide_poll_t p;
    do
        p = s->vt->poll_writev(s, cx, iov, iovcnt, out);
    while (p == TIDE_READY && *out == -EINTR);
    return p;
}

/* tide_stream_poll_flush: s's poll_flush; READY with 0 if it has none. */
static inline tide_poll_t tide_stream_poll_flush(tide_stream_t *s,
                                                 tide_cx_t *cx, int *out) {
    if (s->vt->poll_flush == NULL) {
        *out = 0;
        return TIDE_READY;
    }
    tide_poll_t p;
    do
        p = s->vt->poll_flush(s, cx, out);
    while (p == TIDE_READY && *out == -EINTR);
    return p;
}

/* tide_stream_poll_shutdown: s's poll_shutdown; READY with -ENOTSUP if it
 * has none. */
static inline tide_poll_t tide_stream_poll_shutdown(tide_stream_t *s,
                                                    tide_cx_t *cx, int *out) {
    if (s->vt->poll_shutdown == NULL) {
        *out = -ENOTSUP;
        return TIDE_READY;
    }
    tide_poll_t p;
    do
        p = s->vt->poll_shutdown(s, cx, out);
    while (p == TIDE_READY && *out == -EINTR);
    return p;
}

/* ------------------------------------------------------------------------
 * Any non-blocking descriptor as a stream (a pipe end, a socket, a tty).
 * ------------------------------------------------------------------------ */

/* tide_fdstream_t: a descriptor as a stream (opaque): tide_fdstream_new. */
typedef struct tide_fdstream tide_fdstream_t;

/*
 * tide_fdstream_new: register fd (non-blocking; see tide_fd_new for the
 * checks) and make it a stream. Sockets are read with recv and written
 * with send/sendmsg(MSG_NOSIGNAL), so a closed peer gives -EPIPE, never
 * SIGPIPE; other descriptors use read/write/writev, and the caller must
 * ignore SIGPIPE (tide_ignore_sigpipe) or a write to a pipe whose reader
 * is gone kills the process. One reader and one writer at a time, which
 * may be two tasks (see tide_split); a second task that would wait on a
 * direction another task waits on gets -EBUSY.
 *
 * Shutdown (tide_shutdown, the vtable's poll_shutdown) depends on the
 * descriptor: a socket gets shutdown(SHUT_WR). A descriptor opened
 * write-only (a pipe's write end) can only signal EOF by being closed, so
 * shutdown deregisters and closes it: from then on the stream's writes
 * answer -EPIPE, its reads -EBADF, another shutdown 0, tide_fdstream_fd's
 * descriptor is -1, and tide_fdstream_free (still required) closes nothing.
 * The reader sees EOF only once every copy of the write end is closed (a
 * forked child that inherited one keeps the pipe open). A read-only
 * descriptor answers -EBADF; a non-socket descriptor open for both
 * directions (a tty, a FIFO opened O_RDWR) cannot half close: -ENOTSUP.
 *
 * After tide_exec_free, every operation answers -EBADF (the stream must
 * still be freed). Threads: the executor's thread only.
 *
 * Returns 0. Errors: those of tide_fd_new (-EINVAL, -EBADF,
 * TIDE_EBLOCKING, -EEXIST, -EPERM, -ENOMEM); on error fd is left open. The
 * stream owns fd: tide_fdstream_free closes it.
 */
TIDE_EXTERN int tide_fdstream_new(tide_fdstream_t **out, tide_exec_t *exec,
                                  int fd);

/* tide_fdstream_free: deregister and close (unless a shutdown closed it
 * already), and free. Futures still using the stream must be dropped
 * first. NULL is a no-op. */
TIDE_EXTERN void tide_fdstream_free(tide_fdstream_t *s);

/* tide_fdstream_stream: the stream interface of s. */
TIDE_EXTERN tide_stream_t *tide_fdstream_stream(tide_fdstream_t *s);

/* tide_fdstream_fd: the registration (for readiness waits, try_io). It
 * belongs to the stream: never pass it to tide_fd_free or
 * tide_fd_into_inner. */
TIDE_EXTERN tide_fd_t *tide_fdstream_fd(tide_fdstream_t *s);

/*
 * tide_ignore_sigpipe: set SIGPIPE's disposition to SIG_IGN for the whole
 * process, so that a write(2) to a pipe whose reader is gone fails with
 * -EPIPE instead of killing the process. Sockets never need it (tide sends
 * with MSG_NOSIGNAL); pipes, ttys and FIFOs do. Process-wide: call it once
 * at start-up, before threads exist if the application installs its own
 * SIGPIPE handling. Returns 0, or -errno from sigaction.
 */
TIDE_EXTERN int tide_ignore_sigpipe(void);

/* ------------------------------------------------------------------------
 * Helpers: futures that work on any stream
 *
 * Each lives in the caller's memory; its init function fills it and
 * returns the tide_future_t * to await (TIDE_AWAIT) or to poll by hand.
 * The result is in ->fut.result (read it through tide_async_result after a
 * TIDE_AWAIT). Nothing here allocates.
 *
 * Rules common to all of them:
 * - Any number of futures, in any tasks, may wait on one direction of a
 *   stream: each waits with the waiter in its own struct, and each is
 *   woken. (Two tasks reading one stream at once get the bytes in whatever
 *   order they run: give each its own stream, or a split half, when the
 *   order matters.)
 * - The buffers and iovec arrays given to an init function must stay valid
 *   until the future is dropped. The stream may be freed at any time, by
 *   any task: a future still on it completes with -EBADF at its next poll
 *   (and must still be dropped, which is then safe too).
 * - Dropping a pending future takes its waiter off the stream's queue, so
 *   no waker stays registered; the stream stops watching a direction
 *   nobody waits on (at once when a pending future is dropped, at the end
 *   of the executor's turn when one completes: the task nearly always
 *   waits again, so a message costs no epoll_ctl).
 * - End of stream: a read answers 0 each time the stream is at its end
 *   (for a descriptor: each time the kernel says so), never before.
 * - Threads: the executor's thread only, like the streams they use.
 * ------------------------------------------------------------------------ */

/*
 * tide_read: read up to len bytes (one poll_read). Result: bytes read
 * (> 0), 0 at end of stream (or if len is 0), or -errno (-ECONNRESET,
 * -EBADF, ...).
 * Cancel safe: dropped before completion, nothing was read.
 */
typedef struct tide_read {
    tide_future_t fut;
    tide_stream_t *s; /* private */
    void *buf;
    size_t len;
    tide_waiter_t w; /* on the stream's queue while pending */
} tide_read_t;

TIDE_EXTERN tide_future_t *tide_read(tide_read_t *op, tide_stream_t *s,
                                     void *buf, size_t len);

/*
 * tide_write: write up to len bytes (one poll_write). Result: bytes
 * written (> 0, possibly fewer than len; 0 if len is 0), or -errno (-EPIPE
 * after the peer closed, -ECONNRESET after a reset).
 * Cancel safe: dropped before completion, nothing was written.
 */
typedef struct tide_write {
    tide_future_t fut;
    tide_stream_t *s; /* private */
    const void *buf;
    size_t len;
    tide_waiter_t w; /* on the stream's queue while pending */
} tide_write_t;

TIDE_EXTERN tide_future_t *tide_write(tide_write_t *op, tide_stream_t *s,
                                      const void *buf, size_t len);

/*
 * tide_writev: a gathering write (one poll_writev; streams without one
 * write the first non-empty buffer). Result: bytes written, possibly fewer
 * than the total, or -errno as tide_write; -EINVAL if iovcnt < 0.
 * Cancel safe: dropped before completion, nothing was written.
 */
typedef struct tide_writev {
    tide_future_t fut;
    tide_stream_t *s; /* private */
    const struct iovec *iov;
    int iovcnt;
    tide_waiter_t w; /* on the stream's queue while pending */
} tide_writev_t;

TIDE_EXTERN tide_future_t *tide_writev(tide_writev_t *op, tide_stream_t *s,
                                       const struct iovec *iov, int iovcnt);

/*
 * tide_read_exact: read exactly len bytes into buf. Result: len; or
 * TIDE_EEOF if the stream ended first; or -errno. In every case op->done
 * says how many bytes arrived in buf[0, done) (for TIDE_EEOF: the count
 * that did arrive before the end).
 * Not cancel safe: dropped part way, the op->done bytes already in buf
 * have been consumed from the stream (they are not lost if the caller
 * reads op->done: a new read_exact for the rest can continue from there).
 */
typedef struct tide_read_exact {
    tide_future_t fut;
    size_t done;      /* read-only: bytes in buf so far */
    tide_stream_t *s; /* private */
    unsigned char *buf;
    size_t len;
    tide_waiter_t w; /* on the stream's queue while pending */
} tide_read_exact_t;

TIDE_EXTERN tide_future_t *tide_read_exact(tide_read_exact_t *op,
                                           tide_stream_t *s, void *buf,
                                           size_t len);

/*
 * tide_write_all: write all len bytes. Result: len, or -errno (-EPIPE,
 * -ECONNRESET, -EIO if the stream accepted 0 bytes of a non-empty write).
 * In every case op->done is how many bytes were written (for an error:
 * before it).
 * Not cancel safe: dropped part way, buf[0, op->done) has been written and
 * the rest has not.
 */
typedef struct tide_write_all {
    tide_future_t fut;
    size_t done;      /* read-only: bytes written so far */
    tide_stream_t *s; /* private */
    const unsigned char *buf;
    size_t len;
    tide_waiter_t w; /* on the stream's queue while pending */
} tide_write_all_t;

TIDE_EXTERN tide_future_t *tide_write_all(tide_write_all_t *op,
                                          tide_stream_t *s, const void *buf,
                                          size_t len);

/*
 * tide_writev_all: write every byte of iov[0, iovcnt) (the array is read,
 * never modified). Result: the total, or -errno as tide_write_all; -EINVAL
 * if iovcnt < 0. op->done as for tide_write_all (counted across buffers).
 * Not cancel safe: dropped part way, the first op->done bytes have been
 * written.
 */
typedef struct tide_writev_all {
    tide_future_t fut;
    size_t done;      /* read-only: bytes written so far */
    tide_stream_t *s; /* private */
    const struct iovec *iov;
    int iovcnt;
    int idx;         /* first buffer not fully written */
    size_t off;      /* bytes of iov[idx] written */
    tide_waiter_t w; /* on the stream's queue while pending */
} tide_writev_all_t;

TIDE_EXTERN tide_future_t *tide_writev_all(tide_writev_all_t *op,
                                           tide_stream_t *s,
                                           const struct iovec *iov, int iovcnt);

/*
 * tide_flush: push what the stream buffers to its destination (nothing to
 * do for the descriptor streams). Result: 0 or -errno.
 * Cancel safe: the stream keeps what it buffered.
 */
typedef struct tide_flush {
    tide_future_t fut;
    tide_stream_t *s; /* private */
    tide_waiter_t w;  /* on the stream's queue while pending */
} tide_flush_t;

TIDE_EXTERN tide_future_t *tide_flush(tide_flush_t *op, tide_stream_t *s);

/*
 * tide_shutdown: flush, then close the stream's write side: a socket sends
 * FIN (the peer reads 0; we can still read), a pipe's write end is closed.
 * Result: 0, -ENOTSUP (the stream cannot half close: a tty, a stream whose
 * vtable has no poll_shutdown), -ENOTCONN (a socket no longer connected,
 * e.g. after a reset), or -errno. A second shutdown answers 0 or the
 * kernel's error again.
 * Cancel safe: dropped while flushing, the write side is still open.
 */
typedef struct tide_shutdown {
    tide_future_t fut;
    tide_stream_t *s; /* private */
    tide_waiter_t w;  /* on the stream's queue while pending */
} tide_shutdown_t;

TIDE_EXTERN tide_future_t *tide_shutdown(tide_shutdown_t *op, tide_stream_t *s);

/* ------------------------------------------------------------------------
 * Copying
 * ------------------------------------------------------------------------ */

/* The buffer size of tide_copy_buf_t and tide_copy_bidirectional_buf_t
 * (per direction). Measured on 256 MiB through Unix socketpairs (one
 * thread also running producer and consumer): 4 KiB buffers copy at about
 * 40% of the speed of 256 KiB ones, 16 KiB at 75-90%, 64 KiB at 90-100%.
 * 16 KiB keeps a proxy's copy_bidirectional at 32 KiB per connection;
 * bulk transfers that matter can pass a larger buffer to tide_copy. */
#define TIDE_COPY_BUF_SIZE 16384

/* One direction of a copy (private; shared by the two copy futures). */
typedef struct tide__copy_dir {
    unsigned char *buf;
    size_t cap, pos, end;
    uint64_t copied;
    bool read_done, need_flush, done;
    tide_waiter_t rw, ww; /* on the reader's rq / the writer's wq */
} tide__copy_dir_t;

/*
 * tide_copy: read from r and write everything to w until r reports end of
 * stream, then flush w (w is not shut down: see tide_shutdown). buf/len
 * is the caller's buffer (any size > 0; larger means fewer system calls:
 * tide_copy_buf_t carries one of TIDE_COPY_BUF_SIZE). When r has nothing
 * to give and bytes were written since the last flush, w is flushed, so a
 * buffering writer cannot hold data back forever.
 *
 * Result: total bytes copied, or -errno from either side (-EINVAL if buf
 * is NULL or len is 0). tide_copy_copied() is the count written to w so
 * far, also after an error. r == w is allowed (an echo).
 * Not cancel safe: dropped part way, tide_copy_copied() bytes reached w,
 * and bytes read from r but not yet written (at most len) are lost.
 */
typedef struct tide_copy {
    tide_future_t fut;
    tide_stream_t *r, *w; /* private */
    tide__copy_dir_t d;
} tide_copy_t;

TIDE_EXTERN tide_future_t *tide_copy(tide_copy_t *op, tide_stream_t *r,
                                     tide_stream_t *w, void *buf, size_t len);

/* tide_copy_copied: bytes written to w so far. */
static inline uint64_t tide_copy_copied(const tide_copy_t *op) {
    return op->d.copied;
}

/* A copy that carries its own buffer. */
typedef struct tide_copy_buf {
    tide_copy_t copy; /* the copy: tide_copy_copied(&op->copy) */
    unsigned char buf[TIDE_COPY_BUF_SIZE]; /* private */
} tide_copy_buf_t;

/* tide_copy_default: tide_copy with op's own buffer. */
static inline tide_future_t *tide_copy_default(tide_copy_buf_t *op,
                                               tide_stream_t *r,
                                               tide_stream_t *w) {
    return tide_copy(&op->copy, r, w, op->buf, sizeof op->buf);
}

/*
 * tide_copy_bidirectional: copy a -> b and b -> a at once. When one side
 * reports end of stream, the other side's write half is shut down
 * (poll_shutdown: FIN for a socket), so half-closes propagate each way;
 * the future completes when both directions have ended. A side whose
 * stream cannot half close (-ENOTSUP) is left open.
 *
 * buf/len is split in two halves, one per direction (len >= 2); the _buf
 * variant carries TIDE_COPY_BUF_SIZE per direction.
 *
 * Result: 0, or the first -errno either direction met (the other
 * direction stops there too); -EINVAL if buf is NULL or len < 2. Bytes
 * each way: tide_copy_bidirectional_a_to_b() / _b_to_a(), also after an
 * error.
 * Not cancel safe, as tide_copy, for each direction.
 */
typedef struct tide_copy_bidirectional {
    tide_future_t fut;
    tide_stream_t *a, *b; /* private */
    tide__copy_dir_t ab, ba;
    bool ba_first; /* which direction this poll starts with */
} tide_copy_bidirectional_t;

TIDE_EXTERN tide_future_t *tide_copy_bidirectional(
    tide_copy_bidirectional_t *op, tide_stream_t *a, tide_stream_t *b,
    void *buf, size_t len);

/* tide_copy_bidirectional_a_to_b: bytes written to b so far. */
static inline uint64_t tide_copy_bidirectional_a_to_b(
    const tide_copy_bidirectional_t *op) {
    return op->ab.copied;
}

/* tide_copy_bidirectional_b_to_a: bytes written to a so far. */
static inline uint64_t tide_copy_bidirectional_b_to_a(
    const tide_copy_bidirectional_t *op) {
    return op->ba.copied;
}

/* A bidirectional copy that carries its own buffers. */
typedef struct tide_copy_bidirectional_buf {
    tide_copy_bidirectional_t copy; /* the copy, for the byte counts */
    unsigned char buf[2 * TIDE_COPY_BUF_SIZE]; /* private */
} tide_copy_bidirectional_buf_t;

/* tide_copy_bidirectional_default: tide_copy_bidirectional with op's own
 * buffers. */
static inline tide_future_t *tide_copy_bidirectional_default(
    tide_copy_bidirectional_buf_t *op, tide_stream_t *a, tide_stream_t *b) {
    return tide_copy_bidirectional(&op->copy, a, b, op->buf, sizeof op->buf);
}

/* ------------------------------------------------------------------------
 * Split: a read half and a write half, for two tasks
 *
 * A stream's read side and write side are independent (each direction has
 * its own wait queue), so one task may read while another writes. The
 * halves make that explicit and safe to hand out: the read half's vtable
 * only reads, the write half's only writes (the other entries answer
 * -EBADF), and each half waits on its own direction's queue only, so
 * dropping a pending read never disturbs the writer.
 *
 * The halves borrow s: freeing s completes every future waiting on
 * either half with -EBADF (as for s itself); a half must not be used for
 * new operations after that. The halves hold no resources (no free). Every tide stream supports this; a stream
 * of your own does if its two directions share no unprotected state.
 * ------------------------------------------------------------------------ */

/* The read half of a stream (see tide_split). */
typedef struct tide_read_half {
    tide_stream_t stream; /* the half as a stream: tide_read_half_stream */
    tide_stream_t *inner; /* private */
} tide_read_half_t;

/* The write half of a stream (see tide_split). */
typedef struct tide_write_half {
    tide_stream_t stream; /* the half as a stream: tide_write_half_stream */
    tide_stream_t *inner; /* private */
} tide_write_half_t;

/* tide_split: fill *rd and *wr (either may be NULL) as halves of s. */
TIDE_EXTERN void tide_split(tide_stream_t *s, tide_read_half_t *rd,
                            tide_write_half_t *wr);

/* tide_read_half_stream: the read half as a stream, to read from. */
static inline tide_stream_t *tide_read_half_stream(tide_read_half_t *h) {
    return &h->stream;
}

/* tide_write_half_stream: the write half as a stream, to write to. */
static inline tide_stream_t *tide_write_half_stream(tide_write_half_t *h) {
    return &h->stream;
}

/* ------------------------------------------------------------------------
 * Buffered reading
 *
 * A tide_bufreader reads its inner stream in chunks into a caller-provided
 * buffer and serves reads, read_until and the frame decoders from it. It is
 * itself a stream: reads come from the buffer (or straight from the inner
 * stream when the buffer is empty and the read is at least as large as
 * the buffer), writes, flush and shutdown go to the inner stream, so it can
 * stand in for the inner stream everywhere (copy, split, ...). Once
 * wrapped, read the inner stream only through the bufreader, or the
 * buffered bytes would be skipped.
 * ------------------------------------------------------------------------ */

/* A buffered reader (see above); tide_bufreader_init sets it up. */
typedef struct tide_bufreader {
    tide_stream_t stream; /* the bufreader as a stream: tide_bufreader_stream */
    tide_stream_t *inner; /* private */
    unsigned char *buf;
    size_t cap, pos, end; /* buffered bytes: buf[pos, end) */
} tide_bufreader_t;

/* tide_bufreader_init: wrap inner with buf[0, cap) (caller memory, valid
 * until the bufreader is no longer used). Returns 0; -EINVAL if an
 * argument is NULL or cap is 0. Nothing to free. */
TIDE_EXTERN int tide_bufreader_init(tide_bufreader_t *br, tide_stream_t *inner,
                                    void *buf, size_t cap);

/* tide_bufreader_stream: the bufreader as a stream (reads from the buffer,
 * the rest goes to the inner stream). */
static inline tide_stream_t *tide_bufreader_stream(tide_bufreader_t *br) {
    return &br->stream;
}

/* tide_bufreader_data: the bytes buffered now (*len of them; no I/O). The
 * pointer stays valid until the next call that reads into the buffer
 * (poll_fill, poll_more, and every future below). */
static inline const void *tide_bufreader_data(const tide_bufreader_t *br,
                                              size_t *len) {
    *len = br->end - br->pos;
    return br->buf + br->pos;
}

/* tide_bufreader_consume: mark n buffered bytes as used (n is clamped to
 * what is buffered). */
TIDE_EXTERN void tide_bufreader_consume(tide_bufreader_t *br, size_t n);

/*
 * tide_bufreader_poll_fill: make sure something is buffered: if the buffer
 * is empty, read once from the inner stream. *out: bytes buffered (> 0), 0
 * at end of stream, or -errno. For hand-written decoders, which wait on
 * PENDING as any stream future does: on tide_bufreader_stream(br)->rq.
 */
TIDE_EXTERN tide_poll_t tide_bufreader_poll_fill(tide_bufreader_t *br,
                                                 tide_cx_t *cx, ssize_t *out);

/*
 * tide_bufreader_poll_more: read once more from the inner stream, after
 * what is buffered (moving it to the start of the buffer if the end is
 * reached). *out: bytes added (> 0), 0 at end of stream, -ENOBUFS if the
 * buffer is full, or -errno. Invalidates pointers from
 * tide_bufreader_data.
 */
TIDE_EXTERN tide_poll_t tide_bufreader_poll_more(tide_bufreader_t *br,
                                                 tide_cx_t *cx, ssize_t *out);

/*
 * tide_bufreader_fill: a future of poll_fill. Result: bytes buffered (see
 * tide_bufreader_data), 0 at end of stream, or -errno.
 * Cancel safe: bytes read are kept in the buffer.
 */
typedef struct tide_bufreader_fill {
    tide_future_t fut;
    tide_bufreader_t *br; /* private */
    tide_waiter_t w;      /* on the stream's queue while pending */
} tide_bufreader_fill_t;

TIDE_EXTERN tide_future_t *tide_bufreader_fill(tide_bufreader_fill_t *op,
                                               tide_bufreader_t *br);

/*
 * tide_read_until: copy bytes from br into dst[0, cap) up to and including
 * the first `delim`. Result: bytes stored (the delimiter included when
 * found: dst[result - 1] == delim); if the stream ends first, the bytes
 * that came (0 if none: end of stream); TIDE_EFRAME if cap bytes were
 * stored without a delimiter (the rest of the record is still unread: call
 * again to continue it); -EINVAL if cap is 0; or -errno. op->done is the
 * count in dst in every case.
 * Cancel safe in the sense that nothing is lost: the op->done bytes moved
 * to dst are consumed from the reader; a new read_until at dst + done
 * continues.
 */
typedef struct tide_read_until {
    tide_future_t fut;
    size_t done;          /* read-only: bytes stored in dst */
    tide_bufreader_t *br; /* private */
    unsigned char *dst;
    size_t cap;
    int delim;
    bool nul;
    tide_waiter_t w; /* on the stream's queue while pending */
} tide_read_until_t;

TIDE_EXTERN tide_future_t *tide_read_until(tide_read_until_t *op,
                                           tide_bufreader_t *br, int delim,
                                           void *dst, size_t cap);

/*
 * tide_read_line: tide_read_until(br, '\n') that keeps room for a
 * terminating NUL: at most cap - 1 bytes are stored and dst is always
 * NUL-terminated on completion (also after an error). The newline is kept
 * (as in Tokio's read_line); result and op->done count bytes without the
 * NUL. TIDE_EFRAME: the line is longer than cap - 1 bytes (the first cap -
 * 1 are in dst). -EINVAL if cap < 2. Cancel safety as read_until.
 */
TIDE_EXTERN tide_future_t *tide_read_line(tide_read_until_t *op,
                                          tide_bufreader_t *br, char *dst,
                                          size_t cap);

/* ------------------------------------------------------------------------
 * Framing: lines and length-delimited frames
 *
 * Decoders read frames from a tide_bufreader and hand each one back as a
 * view into the bufreader's buffer (op->frame, op->len), valid until the
 * next operation on that bufreader: no copy, no allocation. So a frame
 * must fit in the buffer, and the decoders check it: each codec has a
 * maximum frame size and answers -EINVAL when the buffer cannot hold a
 * frame of that size. Input beyond the maximum is rejected with
 * TIDE_EFRAME without buffering it (no unbounded growth).
 *
 * Decode results: 1 (a frame is in op->frame / op->len), 0 (clean end of
 * stream: no partial frame), TIDE_EEOF (the stream ended inside a frame;
 * length-delimited only), TIDE_EFRAME, -EINVAL, or -errno from the stream.
 * Decoding is cancel safe: a frame is consumed only when it is returned, a
 * dropped decode leaves every byte in the bufreader.
 *
 * Encoders write one frame to any stream with writev_all semantics:
 * result = bytes written (frame plus framing), TIDE_EFRAME when the frame
 * is over the maximum (nothing is written), -errno; op->done is the count
 * written. Not cancel safe: dropped part way, the first op->done bytes of
 * the framed data were written and the stream is mid-frame.
 * ------------------------------------------------------------------------ */

/* A decode: the next frame from a bufreader (the codecs' decode futures). */
typedef struct tide_decode {
    tide_future_t fut;
    const void *frame; /* read-only, after result 1 */
    size_t len;        /* read-only: the frame's length, after result 1 */
    const void *codec; /* private */
    tide_bufreader_t *br;
    size_t scanned;
    tide_waiter_t w; /* on the stream's queue while pending */
} tide_decode_t;

/* An encode: one frame written to a stream (the codecs' encode futures). */
typedef struct tide_encode {
    tide_future_t fut;
    size_t done;      /* read-only: bytes written so far */
    tide_stream_t *s; /* private */
    struct iovec iov[2];
    int idx;
    size_t off;
    int err;
    tide_waiter_t w; /* on the stream's queue while pending */
    unsigned char hdr[8];
} tide_encode_t;

/*
 * Line codec: frames end with "\n"; a "\r" right before it is dropped too.
 * max_len bounds a line's length without its line ending; the bufreader
 * must hold max_len + 2 bytes. A line over max_len gives TIDE_EFRAME once
 * and is skipped (up to and including its "\n"), so the next decode
 * returns the line after it. At end of stream, a last line without "\n"
 * is returned as a frame.
 */
typedef struct tide_linecodec {
    size_t max_len;  /* set by tide_linecodec_init */
    bool discarding; /* private: skipping the rest of a line over max */
} tide_linecodec_t;

/* tide_linecodec_init: max_len 0 means "no line longer than the buffer
 * allows" (cap - 2). */
TIDE_EXTERN void tide_linecodec_init(tide_linecodec_t *c, size_t max_len);

/* tide_linecodec_decode: the next line, without its line ending. */
TIDE_EXTERN tide_future_t *tide_linecodec_decode(tide_decode_t *op,
                                                 tide_linecodec_t *c,
                                                 tide_bufreader_t *br);

/* tide_linecodec_encode: write line[0, len) and "\n". Result len + 1.
 * TIDE_EFRAME if len > max_len (max_len 0: no limit); -EINVAL if the line
 * contains '\n' (nothing is written in both cases). */
TIDE_EXTERN tide_future_t *tide_linecodec_encode(tide_encode_t *op,
                                                 const tide_linecodec_t *c,
                                                 tide_stream_t *s,
                                                 const void *line, size_t len);

/*
 * Length-delimited codec: each frame is a length field of len_bytes
 * (1 to 8) bytes, big-endian unless TIDE_LENCODEC_LITTLE_ENDIAN, followed
 * by that many bytes of payload. max_frame bounds the payload; the
 * bufreader must hold len_bytes + max_frame bytes. A length field over
 * max_frame gives TIDE_EFRAME and is left in the buffer: the stream cannot
 * be resynchronised, and every later decode answers TIDE_EFRAME again.
 */
enum { TIDE_LENCODEC_LITTLE_ENDIAN = 1u << 0 };

/* The length-delimited codec's settings (tide_lencodec_init fills them). */
typedef struct tide_lencodec {
    size_t max_frame;   /* the largest payload */
    unsigned len_bytes; /* bytes in the length field, 1 to 8 */
    bool little_endian; /* the length field's byte order */
} tide_lencodec_t;

/* tide_lencodec_init: returns 0; -EINVAL if len_bytes is not 1..8 or flags
 * has unknown bits. 4 and 8 MiB are the usual choices (as in Tokio's
 * LengthDelimitedCodec). */
TIDE_EXTERN int tide_lencodec_init(tide_lencodec_t *c, unsigned len_bytes,
                                   unsigned flags, size_t max_frame);

/* tide_lencodec_decode: the next frame's payload. */
TIDE_EXTERN tide_future_t *tide_lencodec_decode(tide_decode_t *op,
                                                const tide_lencodec_t *c,
                                                tide_bufreader_t *br);

/* tide_lencodec_encode: write the length field, then data[0, len).
 * Result len_bytes + len. TIDE_EFRAME if len > max_frame or len does not
 * fit in len_bytes (nothing is written). */
TIDE_EXTERN tide_future_t *tide_lencodec_encode(tide_encode_t *op,
                                                const tide_lencodec_t *c,
                                                tide_stream_t *s,
                                                const void *data, size_t len);

#ifdef __cplusplus
}
#endif
#endif
