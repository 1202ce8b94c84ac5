/*
 * src/libevent/bevstream.c: a bufferevent as a tide stream.
 *
 * The bytes stay in the bufferevent's evbuffers: a read copies out of the
 * input (evbuffer_remove), a write copies into the output (evbuffer_add),
 * and libevent does the I/O. What the stream adds is the waiting, through
 * evbuffer callbacks rather than the bufferevent's read and write
 * callbacks:
 *   - the input's callback wakes readers when bytes are added (by the
 *     socket read, or by a filter moving bytes up);
 *   - each output evbuffer down the chain of underlying bufferevents has
 *     one that wakes writers when bytes leave it and the chain's total is
 *     at or below TIDE_BEV_WRITE_LOW, or empty. The total matters for a
 *     filter: it moves what it is given to the bufferevent below at once,
 *     so its own output is always empty and the backpressure is further
 *     down. And the bufferevent's write callback is only called at or
 *     below its low watermark for the evbuffer it owns, while a flush has
 *     to hear of the bottom one draining to zero.
 * Evbuffer callbacks also fire for our own evbuffer_add and _remove, with
 * the stream inside an operation: `in_op` keeps those from waking the task
 * that is polling (a spurious extra poll otherwise).
 *
 * Events (the bufferevent's event callback, which is ours) only set state
 * and wake: EOF and ERROR are sticky, a TIMEOUT is reported once to the
 * direction that timed out; see tide/libevent.h.
 */
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "io/internal.h"
#include "tide/libevent.h"

#define CHAIN_MAX 4

struct tide_bevstream {
    tide_stream_t stream;
    tide_waitq_t rq, wq;
    struct bufferevent *chain[CHAIN_MAX]; /* chain[0]: the bufferevent */
    struct evbuffer_cb_entry *out_cb[CHAIN_MAX];
    struct evbuffer_cb_entry *in_cb;
    int depth;
    unsigned flags;
    int err;        /* BEV_EVENT_ERROR's -errno (sticky), or 0 */
    bool eof;       /* BEV_EVENT_EOF seen (sticky) */
    bool rtimeout;  /* a read timeout to report, once */
    bool wtimeout;  /* a write timeout to report, once */
    bool finishing; /* poll_shutdown has begun: writes answer -EPIPE */
    bool shut;      /* poll_shutdown completed */
    bool in_op;     /* inside one of our polls (see above) */
};

static struct tide_bevstream *bs_of(tide_stream_t *s) {
    return TIDE_CONTAINER_OF(s, struct tide_bevstream, stream);
}

/* Bytes waiting for output, down the whole chain. */
static size_t queued(const struct tide_bevstream *s) {
    size_t n = 0;
    for (int i = 0; i < s->depth; i++)
        n += evbuffer_get_length(bufferevent_get_output(s->chain[i]));
    return n;
}

/* Bytes read but not yet moved up to the top input (a filter's backlog). */
static size_t below_input(const struct tide_bevstream *s) {
    size_t n = 0;
    for (int i = 1; i < s->depth; i++)
        n += evbuffer_get_length(bufferevent_get_input(s->chain[i]));
    return n;
}

/* libevent disabled a direction (a timeout): the next operation in it
 * enables it again. */
static void ensure_enabled(struct tide_bevstream *s, short what) {
    struct bufferevent *bev = s->chain[0];
    if (!(bufferevent_get_enabled(bev) & what))
        bufferevent_enable(bev, what);
}

static void in_changed(struct evbuffer *buf,
                       const struct evbuffer_cb_info *info, void *arg) {
    (void)buf;
    struct tide_bevstream *s = arg;
    if (info->n_added > 0 && !s->in_op)
        tide_waitq_wake_all(&s->rq);
}

static void out_changed(struct evbuffer *buf,
                        const struct evbuffer_cb_info *info, void *arg) {
    (void)buf;
    struct tide_bevstream *s = arg;
    if (info->n_deleted > 0 && !s->in_op && !tide_waitq_is_empty(&s->wq) &&
        queued(s) <= TIDE_BEV_WRITE_LOW)
        tide_waitq_wake_all(&s->wq);
}

static void event_cb(struct bufferevent *bev, short what, void *arg) {
    (void)bev;
    struct tide_bevstream *s = arg;
    if (what & BEV_EVENT_ERROR) {
        int e = EVUTIL_SOCKET_ERROR();
        if (s->err == 0)
            s->err = e > 0 ? -e : -EIO;
    } else if (what & BEV_EVENT_EOF) {
        if (what & BEV_EVENT_WRITING) {
            if (s->err == 0)
                s->err = -EPIPE;
        } else {
            s->eof = true;
        }
    }
    if (what & BEV_EVENT_TIMEOUT) {
        if (what & BEV_EVENT_READING)
            s->rtimeout = true;
        if (what & BEV_EVENT_WRITING)
            s->wtimeout = true;
    }
    tide_waitq_wake_all(&s->rq);
    tide_waitq_wake_all(&s->wq);
}

static tide_poll_t bs_read(tide_stream_t *st, tide_cx_t *cx, void *buf,
                           size_t len, ssize_t *out) {
    (void)cx;
    struct tide_bevstream *s = bs_of(st);
    if (len == 0) {
        *out = 0;
        return TIDE_READY;
    }
    struct evbuffer *in = bufferevent_get_input(s->chain[0]);
    if (evbuffer_get_length(in) > 0) {
        s->in_op = true;
        int n = evbuffer_remove(in, buf, len); /* copies; never allocates */
        s->in_op = false;
        if (n > 0) {
            *out = n;
            return TIDE_READY;
        }
    }
    if (s->rtimeout) {
        s->rtimeout = false;
        *out = -ETIMEDOUT;
        return TIDE_READY;
    }
    if (below_input(s) == 0) {
        /* every byte that came before the end or the error has been read */
        if (s->err != 0) {
            *out = s->err;
            return TIDE_READY;
        }
        if (s->eof) {
            *out = 0;
            return TIDE_READY;
        }
    }
    ensure_enabled(s, EV_READ);
    return TIDE_PENDING; /* in_changed or event_cb wakes rq */
}

/* What a write, flush or shutdown answers before looking at the output:
 * an error, a timeout (once), or 1 to go on. */
static int write_state(struct tide_bevstream *s) {
    if (s->err != 0)
        return s->err;
    if (s->wtimeout) {
        s->wtimeout = false;
        return -ETIMEDOUT;
    }
    ensure_enabled(s, EV_WRITE);
    return 1;
}

static tide_poll_t bs_writev(tide_stream_t *st, tide_cx_t *cx,
                             const struct iovec *iov, int iovcnt,
                             ssize_t *out) {
    (void)cx;
    struct tide_bevstream *s = bs_of(st);
    if (iovcnt < 0) {
        *out = -EINVAL;
        return TIDE_READY;
    }
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    if (total == 0) {
        *out = 0;
        return TIDE_READY;
    }
    if (s->finishing) {
        *out = -EPIPE;
        return TIDE_READY;
    }
    int rc = write_state(s);
    if (rc <= 0) {
        *out = rc;
        return TIDE_READY;
    }
    size_t q = queued(s);
    if (q >= TIDE_BEV_WRITE_HIGH)
        return TIDE_PENDING; /* out_changed wakes wq at the low mark */
    size_t room = TIDE_BEV_WRITE_HIGH - q;
    struct evbuffer *o = bufferevent_get_output(s->chain[0]);
    size_t done = 0;
    s->in_op = true;
    for (int i = 0; i < iovcnt && done < room; i++) {
        size_t n = iov[i].iov_len;
        if (n > room - done)
            n = room - done;
        if (n == 0)
            continue;
        if (evbuffer_add(o, iov[i].iov_base, n) < 0)
            break;
        done += n;
    }
    s->in_op = false;
    *out = done > 0 ? (ssize_t)done : -ENOMEM;
    return TIDE_READY;
}

static tide_poll_t bs_write(tide_stream_t *st, tide_cx_t *cx, const void *buf,
                            size_t len, ssize_t *out) {
    struct iovec iov = {(void *)(uintptr_t)buf, len};
    return bs_writev(st, cx, &iov, 1, out);
}

static tide_poll_t bs_flush(tide_stream_t *st, tide_cx_t *cx, int *out) {
    (void)cx;
    struct tide_bevstream *s = bs_of(st);
    int rc = write_state(s);
    if (rc <= 0) {
        *out = rc;
        return TIDE_READY;
    }
    if (!s->finishing) {
        /* a filter may hold bytes back until told to flush */
        s->in_op = true;
        bufferevent_flush(s->chain[0], EV_WRITE, BEV_FLUSH);
        s->in_op = false;
    }
    if (queued(s) > 0)
        return TIDE_PENDING;
    *out = 0;
    return TIDE_READY;
}

static tide_poll_t bs_shutdown(tide_stream_t *st, tide_cx_t *cx, int *out) {
    struct tide_bevstream *s = bs_of(st);
    if (s->shut) {
        *out = 0;
        return TIDE_READY;
    }
    /* First a flush, which a dropped shutdown leaves undone harmlessly
     * (cancel safe: the write side is still open); only then is the
     * filter told that nothing more comes, which cannot be undone. */
    tide_poll_t p = bs_flush(st, cx, out);
    if (p == TIDE_PENDING || *out < 0)
        return p;
    if (!s->finishing) {
        s->finishing = true;
        s->in_op = true;
        bufferevent_flush(s->chain[0], EV_WRITE, BEV_FINISHED);
        s->in_op = false;
    }
    if (queued(s) > 0)
        return TIDE_PENDING; /* a filter's trailer */
    evutil_socket_t fd = bufferevent_getfd(s->chain[s->depth - 1]);
    int type;
    socklen_t tl = sizeof type;
    if (fd >= 0 && getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0 &&
        shutdown(fd, SHUT_WR) < 0 && errno != ENOTCONN) {
        *out = -errno;
        return TIDE_READY;
    }
    s->shut = true;
    *out = 0;
    return TIDE_READY;
}

static const tide_stream_vt_t bevstream_vt = {
    .poll_read = bs_read,
    .poll_write = bs_write,
    .poll_writev = bs_writev,
    .poll_flush = bs_flush,
    .poll_shutdown = bs_shutdown,
};

/* Take off what the stream added to the chain (idempotent per entry). */
static void detach(struct tide_bevstream *s) {
    if (s->in_cb != NULL)
        evbuffer_remove_cb_entry(bufferevent_get_input(s->chain[0]), s->in_cb);
    s->in_cb = NULL;
    for (int i = 0; i < s->depth; i++) {
        if (s->out_cb[i] != NULL)
            evbuffer_remove_cb_entry(bufferevent_get_output(s->chain[i]),
                                     s->out_cb[i]);
        s->out_cb[i] = NULL;
    }
}

int tide_bevstream_new(tide_bevstream_t **out, tide_exec_t *ex,
                       struct bufferevent *bev, unsigned flags) {
    if (out == NULL || ex == NULL || bev == NULL || (flags & ~TIDE_BEV_OWN))
        return -EINVAL;
    if (bufferevent_get_base(bev) != tide_exec_base(ex))
        return -EINVAL;
    struct tide_bevstream *s = tide__calloc(1, sizeof *s);
    if (s == NULL)
        return -ENOMEM;
    for (struct bufferevent *b = bev; b != NULL;
         b = bufferevent_get_underlying(b)) {
        if (s->depth == CHAIN_MAX) {
            tide__free(s);
            return -EINVAL;
        }
        s->chain[s->depth++] = b;
    }
    s->flags = flags;
    tide_waitq_init(&s->rq, NULL);
    tide_waitq_init(&s->wq, NULL);
    tide_stream_init(&s->stream, &bevstream_vt, &s->rq, &s->wq);

    s->in_cb = evbuffer_add_cb(bufferevent_get_input(bev), in_changed, s);
    if (s->in_cb == NULL)
        goto fail;
    for (int i = 0; i < s->depth; i++) {
        s->out_cb[i] = evbuffer_add_cb(bufferevent_get_output(s->chain[i]),
                                       out_changed, s);
        if (s->out_cb[i] == NULL)
            goto fail;
    }
    if (bufferevent_enable(bev, EV_READ | EV_WRITE) < 0)
        goto fail;
    /* From here on nothing fails: bev is changed only now. */
    size_t lo, hi;
    if (bufferevent_getwatermark(bev, EV_READ, &lo, &hi) == 0 && hi == 0)
        bufferevent_setwatermark(bev, EV_READ, lo, TIDE_BEV_READ_HIGH);
    bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
    bufferevent_setcb(bev, NULL, NULL, event_cb, s);
    *out = s;
    return 0;
fail:
    detach(s);
    tide__free(s);
    return -EIO;
}

void tide_bevstream_free(tide_bevstream_t *s) {
    if (s == NULL)
        return;
    tide_stream_close(&s->stream); /* waiters complete with -EBADF */
    detach(s);
    struct bufferevent *bev = s->chain[0];
    bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
    if (s->flags & TIDE_BEV_OWN)
        bufferevent_free(bev);
    tide__free(s);
}

tide_stream_t *tide_bevstream_stream(tide_bevstream_t *s) { return &s->stream; }

struct bufferevent *tide_bevstream_bev(tide_bevstream_t *s) {
    return s->chain[0];
}
