/*
 * src/io/ops.c: the single-stream helper futures: read, write, writev,
 * read_exact, write_all, writev_all, flush, shutdown.
 *
 * Each waits with the waiter in its own struct: on the stream's queue when
 * a poll answers PENDING, off it when one answers READY (a completed
 * operation holds no waker, and leaving "done" rather than "cancelled"
 * lets the reactor keep the event armed for the next operation on the
 * stream: no epoll_ctl per message), off it when dropped. A waiter whose
 * queue was closed (the stream was freed) answers -EBADF before the stream
 * is touched.
 */
#include "io/internal.h"

void tide_stream_close(tide_stream_t *s) {
    if (s->rq != NULL)
        tide_waitq_close(s->rq, -EBADF);
    if (s->wq != NULL && s->wq != s->rq)
        tide_waitq_close(s->wq, -EBADF);
}

/* read ------------------------------------------------------------------- */

static tide_poll_t read_poll(tide_future_t *f, tide_cx_t *cx) {
    tide_read_t *op = TIDE_CONTAINER_OF(f, tide_read_t, fut);
    TIDE__IO_GONE(&op->w, f);
    ssize_t n;
    if (tide_stream_poll_read(op->s, cx, op->buf, op->len, &n) ==
        TIDE_PENDING) {
        tide__io_wait(&op->w, op->s, TIDE_READABLE, cx);
        return TIDE_PENDING;
    }
    tide__io_done(&op->w);
    f->result = n;
    return TIDE_READY;
}

static void read_drop(tide_future_t *f) {
    tide_read_t *op = TIDE_CONTAINER_OF(f, tide_read_t, fut);
    tide__io_cancel(&op->w);
}

static const tide_future_vtable_t read_vt = {read_poll, read_drop};

tide_future_t *tide_read(tide_read_t *op, tide_stream_t *s, void *buf,
                         size_t len) {
    op->s = s;
    op->buf = buf;
    op->len = len;
    tide_waiter_init(&op->w);
    return tide_future_init(&op->fut, &read_vt);
}

/* write ------------------------------------------------------------------ */

static tide_poll_t write_poll(tide_future_t *f, tide_cx_t *cx) {
    tide_write_t *op = TIDE_CONTAINER_OF(f, tide_write_t, fut);
    TIDE__IO_GONE(&op->w, f);
    ssize_t n;
    if (tide_stream_poll_write(op->s, cx, op->buf, op->len, &n) ==
        TIDE_PENDING) {
        tide__io_wait(&op->w, op->s, TIDE_WRITABLE, cx);
        return TIDE_PENDING;
    }
    tide__io_done(&op->w);
    f->result = n;
    return TIDE_READY;
}

static void write_drop(tide_future_t *f) {
    tide_write_t *op = TIDE_CONTAINER_OF(f, tide_write_t, fut);
    tide__io_cancel(&op->w);
}

static const tide_future_vtable_t write_vt = {write_poll, write_drop};

tide_future_t *tide_write(tide_write_t *op, tide_stream_t *s, const void *buf,
                          size_t len) {
    op->s = s;
    op->buf = buf;
    op->len = len;
    tide_waiter_init(&op->w);
    return tide_future_init(&op->fut, &write_vt);
}

/* writev ----------------------------------------------------------------- */

static tide_poll_t writev_poll(tide_future_t *f, tide_cx_t *cx) {
    tide_writev_t *op = TIDE_CONTAINER_OF(f, tide_writev_t, fut);
    TIDE__IO_GONE(&op->w, f);
    ssize_t n;
    if (tide_stream_poll_writev(op->s, cx, op->iov, op->iovcnt, &n) ==
        TIDE_PENDING) {
        tide__io_wait(&op->w, op->s, TIDE_WRITABLE, cx);
        return TIDE_PENDING;
    }
    tide__io_done(&op->w);
    f->result = n;
    return TIDE_READY;
}

static void writev_drop(tide_future_t *f) {
    tide_writev_t *op = TIDE_CONTAINER_OF(f, tide_writev_t, fut);
    tide__io_cancel(&op->w);
}

static const tide_future_vtable_t writev_vt = {writev_poll, writev_drop};

tide_future_t *tide_writev(tide_writev_t *op, tide_stream_t *s,
                           const struct iovec *iov, int iovcnt) {
    op->s = s;
    op->iov = iov;
    op->iovcnt = iovcnt;
    tide_waiter_init(&op->w);
    return tide_future_init(&op->fut, &writev_vt);
}

/* read_exact ------------------------------------------------------------- */

static tide_poll_t read_exact_poll(tide_future_t *f, tide_cx_t *cx) {
    tide_read_exact_t *op = TIDE_CONTAINER_OF(f, tide_read_exact_t, fut);
    TIDE__IO_GONE(&op->w, f);
    while (op->done < op->len) {
        ssize_t n;
        if (tide_stream_poll_read(op->s, cx, op->buf + op->done,
                                  op->len - op->done, &n) == TIDE_PENDING) {
            tide__io_wait(&op->w, op->s, TIDE_READABLE, cx);
            return TIDE_PENDING;
        }
        tide__io_done(&op->w);
        if (n <= 0) {
            f->result = n == 0 ? TIDE_EEOF : n;
            return TIDE_READY;
        }
        op->done += (size_t)n;
    }
    f->result = (intptr_t)op->len;
    return TIDE_READY;
}

static void read_exact_drop(tide_future_t *f) {
    tide_read_exact_t *op = TIDE_CONTAINER_OF(f, tide_read_exact_t, fut);
    tide__io_cancel(&op->w);
}

static const tide_future_vtable_t read_exact_vt = {read_exact_poll,
                                                   read_exact_drop};

tide_future_t *tide_read_exact(tide_read_exact_t *op, tide_stream_t *s,
                               void *buf, size_t len) {
    op->done = 0;
    op->s = s;
    op->buf = buf;
    op->len = len;
    tide_waiter_init(&op->w);
    return tide_future_init(&op->fut, &read_exact_vt);
}

/* write_all -------------------------------------------------------------- */

static tide_poll_t write_all_poll(tide_future_t *f, tide_cx_t *cx) {
    tide_write_all_t *op = TIDE_CONTAINER_OF(f, tide_write_all_t, fut);
    TIDE__IO_GONE(&op->w, f);
    while (op->done < op->len) {
        ssize_t n;
        if (tide_stream_poll_write(op->s, cx, op->buf + op->done,
                                   op->len - op->done, &n) == TIDE_PENDING) {
            tide__io_wait(&op->w, op->s, TIDE_WRITABLE, cx);
            return TIDE_PENDING;
        }
        tide__io_done(&op->w);
        if (n <= 0) {
            /* 0 for a non-empty write: the stream cannot take bytes and
             * never will (Rust's WriteZero); don't spin on it. */
            f->result = n == 0 ? -EIO : n;
            return TIDE_READY;
        }
        op->done += (size_t)n;
    }
    f->result = (intptr_t)op->len;
    return TIDE_READY;
}

static void write_all_drop(tide_future_t *f) {
    tide_write_all_t *op = TIDE_CONTAINER_OF(f, tide_write_all_t, fut);
    tide__io_cancel(&op->w);
}

static const tide_future_vtable_t write_all_vt = {write_all_poll,
                                                  write_all_drop};

tide_future_t *tide_write_all(tide_write_all_t *op, tide_stream_t *s,
                              const void *buf, size_t len) {
    op->done = 0;
    op->s = s;
    op->buf = buf;
    op->len = len;
    tide_waiter_init(&op->w);
    return tide_future_init(&op->fut, &write_all_vt);
}

/* writev_all ------------------------------------------------------------- */

/* How many iovecs one gathering write passes (the rest go in the next). */
#define WRITEV_BATCH 64

tide_poll_t tide__poll_writev_all(tide_stream_t *s, tide_cx_t *cx,
                                  const struct iovec *iov, int iovcnt, int *idx,
                                  size_t *off, size_t *done, tide_waiter_t *wt,
                                  ssize_t *out) {
    for (;;) {
        /* Skip what is written (and empty buffers). */
        while (*idx < iovcnt && *off >= iov[*idx].iov_len) {
            *off = 0;
            (*idx)++;
        }
        if (*idx >= iovcnt) {
            *out = (ssize_t)*done;
            return TIDE_READY;
        }
        /* The caller's array is const: write from a copy of its next few
         * entries, the first one advanced past what was written. */
        struct iovec v[WRITEV_BATCH];
        int n = 0;
        for (int i = *idx; i < iovcnt && n < WRITEV_BATCH; i++) {
            if (iov[i].iov_len == 0)
                continue;
            v[n] = iov[i];
            if (i == *idx) {
                v[n].iov_base = (char *)v[n].iov_base + *off;
                v[n].iov_len -= *off;
            }
            n++;
        }
        ssize_t w;
        if (tide_stream_poll_writev(s, cx, v, n, &w) == TIDE_PENDING) {
            tide__io_wait(wt, s, TIDE_WRITABLE, cx);
            return TIDE_PENDING;
        }
        tide__io_done(wt);
        if (w <= 0) {
            *out = w == 0 ? -EIO : w;
            return TIDE_READY;
        }
        *done += (size_t)w;
        /* Advance idx/off by w bytes. */
        size_t left = (size_t)w;
        while (left > 0 && *idx < iovcnt) {
            size_t room = iov[*idx].iov_len - *off;
            if (left < room) {
                *off += left;
                left = 0;
            } else {
                left -= room;
                *off = 0;
                (*idx)++;
            }
        }
    }
}

static tide_poll_t writev_all_poll(tide_future_t *f, tide_cx_t *cx) {
    tide_writev_all_t *op = TIDE_CONTAINER_OF(f, tide_writev_all_t, fut);
    TIDE__IO_GONE(&op->w, f);
    if (op->iovcnt < 0) {
        f->result = -EINVAL;
        return TIDE_READY;
    }
    ssize_t r;
    if (tide__poll_writev_all(op->s, cx, op->iov, op->iovcnt, &op->idx,
                              &op->off, &op->done, &op->w, &r) == TIDE_PENDING)
        return TIDE_PENDING;
    f->result = r;
    return TIDE_READY;
}

static void writev_all_drop(tide_future_t *f) {
    tide_writev_all_t *op = TIDE_CONTAINER_OF(f, tide_writev_all_t, fut);
    tide__io_cancel(&op->w);
}

static const tide_future_vtable_t writev_all_vt = {writev_all_poll,
                                                   writev_all_drop};

tide_future_t *tide_writev_all(tide_writev_all_t *op, tide_stream_t *s,
                               const struct iovec *iov, int iovcnt) {
    op->done = 0;
    op->s = s;
    op->iov = iov;
    op->iovcnt = iovcnt;
    op->idx = 0;
    op->off = 0;
    tide_waiter_init(&op->w);
    return tide_future_init(&op->fut, &writev_all_vt);
}

/* flush, shutdown -------------------------------------------------------- */

static tide_poll_t flush_poll(tide_future_t *f, tide_cx_t *cx) {
    tide_flush_t *op = TIDE_CONTAINER_OF(f, tide_flush_t, fut);
    TIDE__IO_GONE(&op->w, f);
    int rc;
    if (tide_stream_poll_flush(op->s, cx, &rc) == TIDE_PENDING) {
        tide__io_wait(&op->w, op->s, TIDE_WRITABLE, cx);
        return TIDE_PENDING;
    }
    tide__io_done(&op->w);
    f->result = rc;
    return TIDE_READY;
}

static void flush_drop(tide_future_t *f) {
    tide_flush_t *op = TIDE_CONTAINER_OF(f, tide_flush_t, fut);
    tide__io_cancel(&op->w);
}

static const tide_future_vtable_t flush_vt = {flush_poll, flush_drop};

tide_future_t *tide_flush(tide_flush_t *op, tide_stream_t *s) {
    op->s = s;
    tide_waiter_init(&op->w);
    return tide_future_init(&op->fut, &flush_vt);
}

static tide_poll_t shutdown_poll(tide_future_t *f, tide_cx_t *cx) {
    tide_shutdown_t *op = TIDE_CONTAINER_OF(f, tide_shutdown_t, fut);
    TIDE__IO_GONE(&op->w, f);
    int rc;
    if (tide_stream_poll_shutdown(op->s, cx, &rc) == TIDE_PENDING) {
        tide__io_wait(&op->w, op->s, TIDE_WRITABLE, cx);
        return TIDE_PENDING;
    }
    tide__io_done(&op->w);
    f->result = rc;
    return TIDE_READY;
}

static void shutdown_drop(tide_future_t *f) {
    tide_shutdown_t *op = TIDE_CONTAINER_OF(f, tide_shutdown_t, fut);
    tide__io_cancel(&op->w);
}

static const tide_future_vtable_t shutdown_vt = {shutdown_poll, shutdown_drop};

tide_future_t *tide_shutdown(tide_shutdown_t *op, tide_stream_t *s) {
    op->s = s;
    tide_waiter_init(&op->w);
    return tide_future_init(&op->fut, &shutdown_vt);
}
