/*
 * src/io/split.c: read and write halves of a stream.
 *
 * Thin on purpose: a stream's directions are already independent (one
 * waker slot each), so a half only forwards its own direction's entries,
 * refuses the other's, and masks the cancel hook so a half can never
 * cancel the other half's wait.
 */
#include "io/internal.h"

static tide_stream_t *rh_inner(tide_stream_t *s) {
    return TIDE_CONTAINER_OF(s, tide_read_half_t, stream)->inner;
}

static tide_stream_t *wh_inner(tide_stream_t *s) {
    return TIDE_CONTAINER_OF(s, tide_write_half_t, stream)->inner;
}

static tide_poll_t wrong_read(tide_stream_t *s, tide_cx_t *cx, void *buf,
                              size_t len, ssize_t *out) {
    *out = -EBADF;
    return TIDE_READY;
}

static tide_poll_t wrong_write(tide_stream_t *s, tide_cx_t *cx,
                               const void *buf, size_t len, ssize_t *out) {
    *out = -EBADF;
    return TIDE_READY;
}

static tide_poll_t wrong_writev(tide_stream_t *s, tide_cx_t *cx,
                                const struct iovec *iov, int iovcnt,
                                ssize_t *out) {
    *out = -EBADF;
    return TIDE_READY;
}

static tide_poll_t wrong_int(tide_stream_t *s, tide_cx_t *cx, int *out) {
    *out = -EBADF;
    return TIDE_READY;
}

/* read half --------------------------------------------------------------- */

static tide_poll_t rh_read(tide_stream_t *s, tide_cx_t *cx, void *buf,
                           size_t len, ssize_t *out) {
    return tide_stream_poll_read(rh_inner(s), cx, buf, len, out);
}

static void rh_cancel(tide_stream_t *s, unsigned interest) {
    tide_stream_cancel(rh_inner(s), interest & TIDE_READABLE);
}

static const tide_stream_vt_t read_half_vt = {
    .poll_read = rh_read,
    .poll_write = wrong_write,
    .poll_writev = wrong_writev,
    .poll_flush = wrong_int,
    .poll_shutdown = wrong_int,
    .cancel = rh_cancel,
};

/* write half -------------------------------------------------------------- */

static tide_poll_t wh_write(tide_stream_t *s, tide_cx_t *cx, const void *buf,
                            size_t len, ssize_t *out) {
    return tide_stream_poll_write(wh_inner(s), cx, buf, len, out);
}

static tide_poll_t wh_writev(tide_stream_t *s, tide_cx_t *cx,
                             const struct iovec *iov, int iovcnt,
                             ssize_t *out) {
    return tide_stream_poll_writev(wh_inner(s), cx, iov, iovcnt, out);
}

static tide_poll_t wh_flush(tide_stream_t *s, tide_cx_t *cx, int *out) {
    return tide_stream_poll_flush(wh_inner(s), cx, out);
}

static tide_poll_t wh_shutdown(tide_stream_t *s, tide_cx_t *cx, int *out) {
    return tide_stream_poll_shutdown(wh_inner(s), cx, out);
}

static void wh_cancel(tide_stream_t *s, unsigned interest) {
    tide_stream_cancel(wh_inner(s), interest & TIDE_WRITABLE);
}

static const tide_stream_vt_t write_half_vt = {
    .poll_read = wrong_read,
    .poll_write = wh_write,
    .poll_writev = wh_writev,
    .poll_flush = wh_flush,
    .poll_shutdown = wh_shutdown,
    .cancel = wh_cancel,
};

void tide_split(tide_stream_t *s, tide_read_half_t *rd, tide_write_half_t *wr) {
    if (rd != NULL) {
        rd->stream.vt = &read_half_vt;
        rd->inner = s;
    }
    if (wr != NULL) {
        wr->stream.vt = &write_half_vt;
        wr->inner = s;
    }
}
