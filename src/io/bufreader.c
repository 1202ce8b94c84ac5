/*
 * src/io/bufreader.c: a buffered reader over any stream, read_until and
 * read_line.
 *
 * The buffer holds buf[pos, end). It is compacted (moved to the front)
 * lazily: only when a read needs room at the end and the front is free.
 * Views handed out (tide_bufreader_data, decoded frames) therefore stay
 * valid until the next read into the buffer.
 */
#include <string.h>

#include "io/internal.h"

static tide_bufreader_t *br_of(tide_stream_t *s) {
    return TIDE_CONTAINER_OF(s, tide_bufreader_t, stream);
}

void tide_bufreader_consume(tide_bufreader_t *br, size_t n) {
    size_t avail = br->end - br->pos;
    br->pos += n < avail ? n : avail;
    /* Not reset to 0 here even when empty: a view of the bytes just
     * consumed stays valid until the next read into the buffer. */
}

tide_poll_t tide_bufreader_poll_fill(tide_bufreader_t *br, tide_cx_t *cx,
                                     ssize_t *out) {
    if (br->pos < br->end) {
        *out = (ssize_t)(br->end - br->pos);
        return TIDE_READY;
    }
    ssize_t n;
    if (tide_stream_poll_read(br->inner, cx, br->buf, br->cap, &n) ==
        TIDE_PENDING)
        return TIDE_PENDING;
    br->pos = 0;
    br->end = n > 0 ? (size_t)n : 0;
    *out = n;
    return TIDE_READY;
}

tide_poll_t tide_bufreader_poll_more(tide_bufreader_t *br, tide_cx_t *cx,
                                     ssize_t *out) {
    if (br->pos == br->end) {
        br->pos = br->end = 0;
    } else if (br->end == br->cap) {
        if (br->pos == 0) {
            *out = -ENOBUFS;
            return TIDE_READY;
        }
        memmove(br->buf, br->buf + br->pos, br->end - br->pos);
        br->end -= br->pos;
        br->pos = 0;
    }
    ssize_t n;
    if (tide_stream_poll_read(br->inner, cx, br->buf + br->end,
                              br->cap - br->end, &n) == TIDE_PENDING)
        return TIDE_PENDING;
    if (n > 0)
        br->end += (size_t)n;
    *out = n;
    return TIDE_READY;
}

/* The bufreader as a stream ----------------------------------------------- */

static tide_poll_t br_read(tide_stream_t *s, tide_cx_t *cx, void *buf,
                           size_t len, ssize_t *out) {
    tide_bufreader_t *br = br_of(s);
    if (len == 0) {
        *out = 0;
        return TIDE_READY;
    }
    /* Empty buffer and a large read: skip the copy (as std's BufReader). */
    if (br->pos == br->end && len >= br->cap)
        return tide_stream_poll_read(br->inner, cx, buf, len, out);
    ssize_t n;
    if (tide_bufreader_poll_fill(br, cx, &n) == TIDE_PENDING)
        return TIDE_PENDING;
    if (n <= 0) {
        *out = n;
        return TIDE_READY;
    }
    size_t k = (size_t)n < len ? (size_t)n : len;
    memcpy(buf, br->buf + br->pos, k);
    br->pos += k;
    *out = (ssize_t)k;
    return TIDE_READY;
}

static tide_poll_t br_write(tide_stream_t *s, tide_cx_t *cx, const void *buf,
                            size_t len, ssize_t *out) {
    return tide_stream_poll_write(br_of(s)->inner, cx, buf, len, out);
}

static tide_poll_t br_writev(tide_stream_t *s, tide_cx_t *cx,
                             const struct iovec *iov, int iovcnt,
                             ssize_t *out) {
    return tide_stream_poll_writev(br_of(s)->inner, cx, iov, iovcnt, out);
}

static tide_poll_t br_flush(tide_stream_t *s, tide_cx_t *cx, int *out) {
    return tide_stream_poll_flush(br_of(s)->inner, cx, out);
}

static tide_poll_t br_shutdown(tide_stream_t *s, tide_cx_t *cx, int *out) {
    return tide_stream_poll_shutdown(br_of(s)->inner, cx, out);
}

static const tide_stream_vt_t bufreader_vt = {
    .poll_read = br_read,
    .poll_write = br_write,
    .poll_writev = br_writev,
    .poll_flush = br_flush,
    .poll_shutdown = br_shutdown,
};

int tide_bufreader_init(tide_bufreader_t *br, tide_stream_t *inner, void *buf,
                        size_t cap) {
    if (br == NULL || inner == NULL || buf == NULL || cap == 0)
        return -EINVAL;
    /* Its futures wait where the inner stream's would: freeing the inner
     * stream reaches them. */
    tide_stream_init(&br->stream, &bufreader_vt, inner->rq, inner->wq);
    br->inner = inner;
    br->buf = buf;
    br->cap = cap;
    br->pos = br->end = 0;
    return 0;
}

/* fill -------------------------------------------------------------------- */

static tide_poll_t fill_poll(tide_future_t *f, tide_cx_t *cx) {
    tide_bufreader_fill_t *op =
        TIDE_CONTAINER_OF(f, tide_bufreader_fill_t, fut);
    TIDE__IO_GONE(&op->w, f);
    ssize_t n;
    if (tide_bufreader_poll_fill(op->br, cx, &n) == TIDE_PENDING) {
        tide__io_wait(&op->w, &op->br->stream, TIDE_READABLE, cx);
        return TIDE_PENDING;
    }
    tide__io_done(&op->w);
    f->result = n;
    return TIDE_READY;
}

static void fill_drop(tide_future_t *f) {
    tide_bufreader_fill_t *op =
        TIDE_CONTAINER_OF(f, tide_bufreader_fill_t, fut);
    tide__io_cancel(&op->w);
}

static const tide_future_vtable_t fill_vt = {fill_poll, fill_drop};

tide_future_t *tide_bufreader_fill(tide_bufreader_fill_t *op,
                                   tide_bufreader_t *br) {
    op->br = br;
    tide_waiter_init(&op->w);
    return tide_future_init(&op->fut, &fill_vt);
}

/* read_until, read_line ---------------------------------------------------- */

static tide_poll_t until_finish(tide_read_until_t *op, intptr_t result) {
    if (op->nul)
        op->dst[op->done] = '\0';
    op->fut.result = result;
    return TIDE_READY;
}

static tide_poll_t until_poll(tide_future_t *f, tide_cx_t *cx) {
    tide_read_until_t *op = TIDE_CONTAINER_OF(f, tide_read_until_t, fut);
    if (tide_waiter_error(&op->w) != 0)
        return until_finish(op, tide_waiter_error(&op->w));
    if (op->cap < (op->nul ? 2u : 1u)) {
        if (op->nul && op->cap == 1)
            op->dst[0] = '\0';
        f->result = -EINVAL;
        return TIDE_READY;
    }
    size_t room = op->cap - (op->nul ? 1 : 0);
    tide_bufreader_t *br = op->br;
    for (;;) {
        if (op->done == room)
            return until_finish(op, TIDE_EFRAME);
        ssize_t n;
        if (tide_bufreader_poll_fill(br, cx, &n) == TIDE_PENDING) {
            tide__io_wait(&op->w, &op->br->stream, TIDE_READABLE, cx);
            return TIDE_PENDING;
        }
        tide__io_done(&op->w);
        if (n < 0)
            return until_finish(op, n);
        if (n == 0)
            return until_finish(op, (intptr_t)op->done);
        size_t want = room - op->done;
        if ((size_t)n < want)
            want = (size_t)n;
        const unsigned char *src = br->buf + br->pos;
        const unsigned char *hit = memchr(src, op->delim, want);
        size_t k = hit != NULL ? (size_t)(hit - src) + 1 : want;
        memcpy(op->dst + op->done, src, k);
        br->pos += k;
        op->done += k;
        if (hit != NULL)
            return until_finish(op, (intptr_t)op->done);
    }
}

static void until_drop(tide_future_t *f) {
    tide_read_until_t *op = TIDE_CONTAINER_OF(f, tide_read_until_t, fut);
    tide__io_cancel(&op->w);
}

static const tide_future_vtable_t until_vt = {until_poll, until_drop};

static tide_future_t *until_init(tide_read_until_t *op, tide_bufreader_t *br,
                                 int delim, void *dst, size_t cap, bool nul) {
    op->done = 0;
    op->br = br;
    op->dst = dst;
    op->cap = dst != NULL ? cap : 0;
    op->delim = (unsigned char)delim;
    op->nul = nul;
    tide_waiter_init(&op->w);
    return tide_future_init(&op->fut, &until_vt);
}

tide_future_t *tide_read_until(tide_read_until_t *op, tide_bufreader_t *br,
                               int delim, void *dst, size_t cap) {
    return until_init(op, br, delim, dst, cap, false);
}

tide_future_t *tide_read_line(tide_read_until_t *op, tide_bufreader_t *br,
                              char *dst, size_t cap) {
    return until_init(op, br, '\n', dst, cap, true);
}
