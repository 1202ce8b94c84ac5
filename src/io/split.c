/*
 * src/io/split.c: read and write halves of a stream.
 *
 * Thin on purpose: a stream's directions are already independent (one
 * wait queue each), so a half only forwards its own direction's entries,
 * refuses the other's, and shares only its own direction's queue: a
 * future on a half waits where a future on the stream would, so freeing
 * the stream reaches it.
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

static tide_poll_t wrong_write(tide_stream_t *s, tide_cx_t *cx, const void *buf,
                               size_t len, ssize_t *out) {
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

static const tide_stream_vt_t read_half_vt = {
    .poll_read = rh_read,
    .poll_write = wrong_write,
    .poll_writev = wrong_writev,
    .poll_flush = wrong_int,
    .poll_shutdown = wrong_int,
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

static const tide_stream_vt_t write_half_vt = {
    .poll_read = wrong_read,
    .poll_write = wh_write,
    .poll_writev = wh_writev,
    .poll_flush = wh_flush,
    .poll_shutdown = wh_shutdown,
};

void tide_split(tide_stream_t *s, tide_read_half_t *rd, tide_write_half_t *wr) {
    if (rd != NULL) {
        tide_stream_init(&rd->stream, &read_half_vt, s->rq, NULL);
        rd->inner = s;
    }
    if (wr != NULL) {
        tide_stream_init(&wr->stream, &write_half_vt, NULL, s->wq);
        wr->inner = s;
    }
}
