/*
 * src/io/copy.c: copy and copy_bidirectional.
 *
 * Both run the same state machine per direction (Tokio's CopyBuffer):
 * fill the buffer with one read, write it all out, repeat; at end of
 * stream flush (copy) or shut down (copy_bidirectional) the writer. When
 * the reader has nothing and bytes went out since the last flush, the
 * writer is flushed before waiting, so that a buffering writer never sits
 * on data its peer is waiting for.
 *
 * Cooperative by itself: each buffer filled spends one unit of the task's
 * budget (tide_cx_coop), whether or not the streams spend any.
 *
 * Each direction waits with two waiters of its own: rw on the reader's
 * read queue, ww on the writer's write queue. A stream freed under the
 * copy closes the queue: the copy answers -EBADF at its next poll without
 * touching either stream.
 */
#include "io/internal.h"

static void dir_init(tide__copy_dir_t *d, unsigned char *buf, size_t cap) {
    d->buf = buf;
    d->cap = cap;
    d->pos = d->end = 0;
    d->copied = 0;
    d->read_done = d->need_flush = d->done = false;
    tide_waiter_init(&d->rw);
    tide_waiter_init(&d->ww);
}

static void dir_cancel(tide__copy_dir_t *d) {
    tide__io_cancel(&d->rw);
    tide__io_cancel(&d->ww);
}

/* READY with *out = 0 when the direction has finished, or -errno. */
static tide_poll_t dir_poll(tide__copy_dir_t *d, tide_stream_t *r,
                            tide_stream_t *w, tide_cx_t *cx, bool shut,
                            ssize_t *out) {
    /* A stream freed under us since the last poll: touch neither. (Only a
     * free between polls closes the queues, so once per poll is enough.) */
    int gone = tide_waiter_error(&d->rw) ? tide_waiter_error(&d->rw)
                                         : tide_waiter_error(&d->ww);
    if (gone != 0) {
        *out = gone;
        return TIDE_READY;
    }
    for (;;) {
        if (d->pos == d->end && !d->read_done) {
            /* One unit of the task's budget per buffer: over streams that
             * are always ready (a user's stream that never answers
             * PENDING), the copy alone still yields to its neighbours.
             * It waits on the reader's queue meanwhile, so that a free of
             * the reader still reaches it. */
            if (!tide_cx_coop(cx)) {
                tide__io_wait(&d->rw, r, TIDE_READABLE, cx);
                return TIDE_PENDING;
            }
            d->pos = d->end = 0;
            ssize_t n;
            if (tide_stream_poll_read(r, cx, d->buf, d->cap, &n) ==
                TIDE_PENDING) {
                tide__io_wait(&d->rw, r, TIDE_READABLE, cx);
                if (d->need_flush) {
                    int rc;
                    if (tide_stream_poll_flush(w, cx, &rc) == TIDE_PENDING) {
                        tide__io_wait(&d->ww, w, TIDE_WRITABLE, cx);
                        return TIDE_PENDING;
                    }
                    tide__io_done(&d->ww);
                    if (rc < 0) {
                        *out = rc;
                        return TIDE_READY;
                    }
                    d->need_flush = false;
                }
                return TIDE_PENDING;
            }
            tide__io_done(&d->rw);
            if (n < 0) {
                *out = n;
                return TIDE_READY;
            }
            if (n == 0)
                d->read_done = true;
            else
                d->end = (size_t)n;
        }
        while (d->pos < d->end) {
            ssize_t n;
            if (tide_stream_poll_write(w, cx, d->buf + d->pos, d->end - d->pos,
                                       &n) == TIDE_PENDING) {
                tide__io_wait(&d->ww, w, TIDE_WRITABLE, cx);
                return TIDE_PENDING;
            }
            tide__io_done(&d->ww);
            if (n <= 0) {
                *out = n == 0 ? -EIO : n;
                return TIDE_READY;
            }
            d->pos += (size_t)n;
            d->copied += (uint64_t)n;
            d->need_flush = true;
        }
        if (d->read_done) {
            int rc;
            tide_poll_t p = shut ? tide_stream_poll_shutdown(w, cx, &rc)
                                 : tide_stream_poll_flush(w, cx, &rc);
            if (p == TIDE_PENDING) {
                tide__io_wait(&d->ww, w, TIDE_WRITABLE, cx);
                return TIDE_PENDING;
            }
            tide__io_done(&d->ww);
            if (shut && rc == -ENOTSUP)
                rc = 0; /* cannot half close: leave it open */
            if (rc < 0) {
                *out = rc;
                return TIDE_READY;
            }
            d->need_flush = false;
            d->done = true;
            *out = 0;
            return TIDE_READY;
        }
    }
}

/* copy ------------------------------------------------------------------- */

static tide_poll_t copy_poll(tide_future_t *f, tide_cx_t *cx) {
    tide_copy_t *op = TIDE_CONTAINER_OF(f, tide_copy_t, fut);
    if (op->d.buf == NULL || op->d.cap == 0) {
        f->result = -EINVAL;
        return TIDE_READY;
    }
    ssize_t rc;
    if (dir_poll(&op->d, op->r, op->w, cx, false, &rc) == TIDE_PENDING)
        return TIDE_PENDING;
    f->result = rc < 0 ? (intptr_t)rc : (intptr_t)op->d.copied;
    return TIDE_READY;
}

/* Dropped: leave both queues (a finished copy has left them already, so
 * the streams' next users keep the events the reactor left armed). */
static void copy_drop(tide_future_t *f) {
    tide_copy_t *op = TIDE_CONTAINER_OF(f, tide_copy_t, fut);
    dir_cancel(&op->d);
}

static const tide_future_vtable_t copy_vt = {copy_poll, copy_drop};

tide_future_t *tide_copy(tide_copy_t *op, tide_stream_t *r, tide_stream_t *w,
                         void *buf, size_t len) {
    op->r = r;
    op->w = w;
    dir_init(&op->d, buf, len);
    return tide_future_init(&op->fut, &copy_vt);
}

/* copy_bidirectional ----------------------------------------------------- */

static tide_poll_t bidi_poll(tide_future_t *f, tide_cx_t *cx) {
    tide_copy_bidirectional_t *op =
        TIDE_CONTAINER_OF(f, tide_copy_bidirectional_t, fut);
    if (op->ab.buf == NULL || op->ab.cap == 0) {
        f->result = -EINVAL;
        return TIDE_READY;
    }
    /* The directions take turns at going first: when both are always
     * ready, the first spends the task's whole budget, and a fixed order
     * would starve the second. */
    tide__copy_dir_t *d[2] = {&op->ab, &op->ba};
    tide_stream_t *from[2] = {op->a, op->b}, *to[2] = {op->b, op->a};
    int first = op->ba_first ? 1 : 0;
    op->ba_first = !op->ba_first;
    for (int k = 0; k < 2; k++) {
        int i = first ^ k;
        ssize_t rc;
        if (!d[i]->done &&
            dir_poll(d[i], from[i], to[i], cx, true, &rc) == TIDE_READY &&
            rc < 0) {
            f->result = rc;
            return TIDE_READY;
        }
    }
    if (!op->ab.done || !op->ba.done)
        return TIDE_PENDING;
    f->result = 0;
    return TIDE_READY;
}

/* As copy_drop, for both directions. */
static void bidi_drop(tide_future_t *f) {
    tide_copy_bidirectional_t *op =
        TIDE_CONTAINER_OF(f, tide_copy_bidirectional_t, fut);
    dir_cancel(&op->ab);
    dir_cancel(&op->ba);
}

static const tide_future_vtable_t bidi_vt = {bidi_poll, bidi_drop};

tide_future_t *tide_copy_bidirectional(tide_copy_bidirectional_t *op,
                                       tide_stream_t *a, tide_stream_t *b,
                                       void *buf, size_t len) {
    op->a = a;
    op->b = b;
    op->ba_first = false;
    size_t half = len / 2;
    unsigned char *p = buf;
    if (p == NULL || half == 0) {
        dir_init(&op->ab, NULL, 0);
        dir_init(&op->ba, NULL, 0);
    } else {
        dir_init(&op->ab, p, half);
        dir_init(&op->ba, p + half, half);
    }
    return tide_future_init(&op->fut, &bidi_vt);
}
