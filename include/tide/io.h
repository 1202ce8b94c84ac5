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
 * PENDING after arranging a wake. EAGAIN never escapes as a result, EINTR
 * is retried inside.
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
    /* A future that got PENDING from this stream for `interest`
     * (TIDE_READABLE and/or TIDE_WRITABLE) was dropped: forget the waker it
     * left and disarm what nobody waits on. NULL if there is nothing to do. */
    void (*cancel)(tide_stream_t *s, unsigned interest);
} tide_stream_vt_t;

struct tide_stream {
    const tide_stream_vt_t *vt;
};

/* Direct calls through the vtable (for hand-written poll functions). */
static inline tide_poll_t tide_stream_poll_read(tide_stream_t *s, tide_cx_t *cx,
                                                void *buf, size_t len,
                                                ssize_t *out) {
    return s->vt->poll_read(s, cx, buf, len, out);
}

static inline tide_poll_t tide_stream_poll_write(tide_stream_t *s,
                                                 tide_cx_t *cx, const void *buf,
                                                 size_t len, ssize_t *out) {
    return s->vt->poll_write(s, cx, buf, len, out);
}

/* ------------------------------------------------------------------------
 * Any non-blocking descriptor as a stream (a pipe end, a socket, a tty).
 * ------------------------------------------------------------------------ */

typedef struct tide_fdstream tide_fdstream_t;

/*
 * tide_fdstream_new: register fd (non-blocking; see tide_fd_new for the
 * checks) and make it a stream. Writes to sockets use MSG_NOSIGNAL, so a
 * closed peer gives -EPIPE, never SIGPIPE; for pipes and other
 * descriptors write(2) is used and the caller must ignore SIGPIPE
 * (tide_ignore_sigpipe).
 *
 * Returns 0. Errors: those of tide_fd_new. The stream owns fd:
 * tide_fdstream_free closes it.
 */
TIDE_EXTERN int tide_fdstream_new(tide_fdstream_t **out, tide_exec_t *exec,
                                  int fd);

/* tide_fdstream_free: deregister and close. NULL is a no-op. */
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

#ifdef __cplusplus
}
#endif
#endif
