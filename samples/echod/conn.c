/*
 * samples/echod/conn.c: a connection's task (read into a lent buffer,
 * write back, repeat; half close at the end), and with --idle-timeout the
 * reaper that closes the connections that made no progress.
 *
 * Memory per connection: the connection's task state (conn_t, one
 * allocation, 136 bytes; 160 with --idle-timeout, for its place on the
 * worker's idle list), tide's task and the TCP object. No connection owns
 * a buffer. A read borrows one from its thread's pool only for the time
 * of one poll of the stream: if the socket has nothing, the buffer goes
 * back at once and the connection waits for readability holding nothing;
 * if it has data, the buffer is kept until those bytes were written back,
 * then returned. So memory is bounded by the connections that are echoing
 * right now (one buffer each), never by the ones that idle, and a
 * connection never reads more than it could write back (a client that
 * does not read stalls only its own connection, with one buffer). After
 * warm-up nothing is allocated per message: buffers go round the pool.
 *
 * Measured (x86-64, glibc, 16 KiB buffers): 10,000 idle connections cost
 * about 555 bytes of RSS each (588 with --idle-timeout); three
 * allocations per connection (conn_t, tide's task, the TCP object) and
 * none per message; three system calls per echoed small message (recv,
 * send, epoll_wait), the same as a hand-written epoll loop.
 */
#include <stdlib.h>
#include <sys/socket.h>

#include "echod.h"

_Thread_local worker_t *self;

typedef struct conn conn_t;

/* lend_read: one read of the connection's stream into a buffer lent by
 * the thread's pool for the duration of the poll. PENDING gives the
 * buffer back (the stream has registered our waker for readability), so
 * a waiting connection holds none; READY keeps it in buf with the result
 * (bytes, 0 at end of stream, -errno) in fut.result. It is the one
 * hand-written future here: tide_read takes a buffer when it is created,
 * and we want one only once there is something to read.
 *
 * The drain: once its worker drains, a connection that would wait for
 * input ends instead (READY with 0, CONN_DRAINED set), as at the end of
 * the client's stream: everything it received has been written back, so
 * it half closes (the client reads every echoed byte, then EOF) and goes.
 * A connection with bytes in flight (being written back, or still in the
 * socket's receive queue) keeps going until it has none; only those use
 * the drain time. The waiting ones are on the worker's drain queue too,
 * which the drain start wakes: that is how the idle ones hear of it.
 * (The second waiter costs nothing: lend_read_t stays no larger than
 * tide_write_all_t, its neighbour in conn_t's union.) */
typedef struct lend_read {
    tide_future_t fut;
    tide_waiter_t w;    /* on the stream's read queue while pending */
    unsigned char *buf; /* lent by the pool, or NULL */
    tide_waiter_t dw;   /* on the worker's drain queue while pending */
} lend_read_t;

/* With --idle-timeout, a connection is on its worker's list of
 * connections in the order of their last progress, the least recent
 * first: one timer per worker (the reaper's) serves them all, a message
 * moves its connection to the end of the list in O(1), and the
 * connection idle the longest is the first one looked at. */
typedef struct idle_link {
    conn_t *prev, *next;
    uint32_t last_ms; /* the last progress, tide_now() in ms (mod 2^32) */
    uint32_t seen;    /* while writing back: op.wr.done when last looked */
} idle_link_t;

enum { CONN_WRITING = 1, CONN_DRAINED = 2 };

struct conn {
    tide_future_t fut;   /* the task; its result, once it ends, is why it
                          * ended: 0 end of stream, -errno */
    tide_async_t co;
    tide_conn_t *sock;   /* TCP or Unix; NULL once the reaper closed it */
    tide_stream_t *s;
    unsigned id;
    unsigned char flags; /* CONN_* */
    union {
        lend_read_t rd;
        tide_write_all_t wr; /* buf: the buffer lend_read was lent */
        tide_shutdown_t sd;
    } op;
    /* Present only with --idle-timeout: a conn_t is allocated without it
     * otherwise (offsetof(conn_t, idle) bytes). */
    idle_link_t idle;
};

/* The connection's descriptor (for the drain's look at its queue). */
static int conn_fd(const conn_t *c) {
    tide_tcp_t *t = tide_conn_tcp(c->sock);
    return tide_fd_get(t != NULL ? tide_tcp_fd(t)
                                 : tide_unix_fd(tide_conn_unix(c->sock)));
}

/* Draining, the stream's read answered PENDING: does c really have
 * nothing to read? PENDING also means "the task's budget is spent" (it
 * was woken to go on later), which must not end a connection with bytes
 * waiting. One peek, once per connection per drain, answers. */
static bool nothing_to_read(const conn_t *c) {
    char b;
    ssize_t r = recv(conn_fd(c), &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

static tide_poll_t lend_read_poll(tide_future_t *f, tide_cx_t *cx) {
    lend_read_t *rd = TIDE_CONTAINER_OF(f, lend_read_t, fut);
    conn_t *c = TIDE_CONTAINER_OF(rd, conn_t, op.rd);
    pool_t *p = &self->pool;
    ssize_t n;
    if (tide_waiter_error(&rd->w) != 0) { /* the stream was freed */
        f->result = tide_waiter_error(&rd->w);
        goto done;
    }
    if (rd->buf == NULL && (rd->buf = pool_get(p)) == NULL) {
        f->result = -ENOMEM;
        goto done;
    }
    if (tide_stream_poll_read(c->s, cx, rd->buf, p->size, &n) ==
        TIDE_PENDING) {
        pool_put(p, rd->buf);
        rd->buf = NULL;
        if (self->draining && nothing_to_read(c)) {
            c->flags |= CONN_DRAINED;
            f->result = 0; /* as at the end of the client's stream */
            goto done;
        }
        tide_waiter_wait(&rd->w, c->s->rq, cx->waker);
        tide_waiter_wait(&rd->dw, &self->drain_q, cx->waker);
        return TIDE_PENDING;
    }
    f->result = n;
done:
    tide_waiter_leave(&rd->w, TIDE_WAITQ_DONE);
    tide_waiter_leave(&rd->dw, TIDE_WAITQ_DONE);
    return TIDE_READY;
}

static void lend_read_drop(tide_future_t *f) {
    lend_read_t *rd = TIDE_CONTAINER_OF(f, lend_read_t, fut);
    tide_waiter_leave(&rd->w, TIDE_WAITQ_CANCELLED);
    tide_waiter_leave(&rd->dw, TIDE_WAITQ_CANCELLED);
}

static const tide_future_vtable_t lend_read_vt = {
    lend_read_poll, lend_read_drop};

static tide_future_t *lend_read(conn_t *c) {
    tide_waiter_init(&c->op.rd.w);
    tide_waiter_init(&c->op.rd.dw);
    c->op.rd.buf = NULL;
    return tide_future_init(&c->op.rd.fut, &lend_read_vt);
}

void drain_wake(worker_t *w) {
    w->draining = true;
    tide_waitq_wake_all(&w->drain_q);
}

/* The lent buffer, whichever operation holds it (or NULL). */
static void *conn_buf(conn_t *c) {
    return c->flags & CONN_WRITING ? (void *)c->op.wr.buf : c->op.rd.buf;
}

/* The idle list ------------------------------------------------------------ */

static uint32_t now_ms(void) {
    return (uint32_t)(tide_now() / TIDE_USEC_PER_MSEC);
}

/* (Only with --idle-timeout: without it, a conn_t has no idle link.) */
static void idle_unlink(conn_t *c) {
    worker_t *w = self;
    if (c->idle.prev != NULL)
        c->idle.prev->idle.next = c->idle.next;
    else if (w->idle_head == c)
        w->idle_head = c->idle.next;
    else
        return; /* on no list */
    if (c->idle.next != NULL)
        c->idle.next->idle.prev = c->idle.prev;
    else
        w->idle_tail = c->idle.prev;
    c->idle.prev = c->idle.next = NULL;
}

/* c made progress: it goes to the end of the list. */
static void idle_touch(conn_t *c) {
    if (D.opt.idle_timeout_usec == 0)
        return;
    worker_t *w = self;
    c->idle.last_ms = now_ms();
    if (w->idle_tail == c)
        return;
    idle_unlink(c);
    c->idle.prev = w->idle_tail;
    if (w->idle_tail != NULL)
        w->idle_tail->idle.next = c;
    else
        w->idle_head = c;
    w->idle_tail = c;
}

static void free_sock(conn_t *c) {
    if (c->sock == NULL)
        return;
    tide_conn_free(c->sock);
    c->sock = NULL;
    c->s = NULL;
}

/* The reaper closes c, idle too long: freeing its socket completes the
 * operation its task waits on (with -EBADF: see tide_conn_free), and the
 * task ends, telling why (c->sock is NULL). */
static void idle_kick(conn_t *c) {
    idle_unlink(c);
    free_sock(c);
}

/* The connection --------------------------------------------------------- */

static tide_poll_t conn_poll(tide_future_t *f, tide_cx_t *cx) {
    conn_t *c = TIDE_CONTAINER_OF(f, conn_t, fut);
    intptr_t n;

    TIDE_BEGIN(&c->co);
    for (;;) {
        TIDE_AWAIT(&c->co, cx, lend_read(c));
        n = tide_async_result(&c->co);
        if (c->sock == NULL || n <= 0) {
            pool_put(&self->pool, c->op.rd.buf);
            /* 0: the client is done sending */
            f->result = c->sock == NULL ? -ETIMEDOUT : n;
            break;
        }
        ctr_add(&self->ctr.bytes_in, n);
        idle_touch(c);
        c->flags |= CONN_WRITING;
        if (D.opt.idle_timeout_usec != 0)
            c->idle.seen = 0;
        TIDE_AWAIT(&c->co, cx,
                   tide_write_all(&c->op.wr, c->s, c->op.rd.buf, (size_t)n));
        c->flags &= (unsigned char)~CONN_WRITING;
        pool_put(&self->pool, (void *)c->op.wr.buf);
        ctr_add(&self->ctr.bytes_out, (int64_t)c->op.wr.done);
        n = tide_async_result(&c->co);
        if (c->sock == NULL || n < 0) {
            f->result = c->sock == NULL ? -ETIMEDOUT : n;
            break;
        }
        idle_touch(c);
    }
    if (f->result == 0) {
        /* Half close: everything received has been written back; send
         * our FIN too. The task then ends and the socket is closed. */
        TIDE_AWAIT(&c->co, cx, tide_shutdown(&c->op.sd, c->s));
    }
    TIDE_END(&c->co, f, f->result);
}

static void conn_drop(tide_future_t *f) {
    conn_t *c = TIDE_CONTAINER_OF(f, conn_t, fut);
    worker_t *w = self;
    bool done = tide_future_is_done(f);
    if (!done) { /* aborted: the buffer is still lent */
        pool_put(&w->pool, conn_buf(c));
        c->flags &= (unsigned char)~CONN_WRITING;
        c->op.rd.buf = NULL;
    }
    tide_async_drop(&c->co);
    if (D.opt.idle_timeout_usec != 0)
        idle_unlink(c);
    free_sock(c);
    int why = (int)f->result;
    if (verbosity >= ECHOD_VERBOSE)
        logmsg(ECHOD_VERBOSE, "conn %u closed (%s)", c->id,
               !done                ? "shutting down"
               : why == 0 && (c->flags & CONN_DRAINED) ? "idle at the drain"
               : why == 0           ? "end of stream"
               : why == -ETIMEDOUT  ? "idle timeout"
                                    : tide_strerror(why));
    free(c);
    if (D.opt.max_conns != 0)
        tide_semaphore_release(&D.slots, 1);
    ctr_add(&w->ctr.open, -1);
    if (ctr_get(&w->ctr.open) == 0)
        tide_notify_one(&w->closed);
}

static const tide_future_vtable_t conn_vt = {conn_poll, conn_drop};

/* The reaper ---------------------------------------------------------------
 * With --idle-timeout, one task per worker closes the connections that
 * made no progress, in either direction, for the timeout: it looks at the
 * head of the idle list (the least recent progress) and sleeps until the
 * head's time is up. A connection writing back to a client that reads
 * slowly is not idle while its write moves (op.wr.done grows). */

typedef struct reaper {
    tide_future_t fut;
    tide_async_t co;
    tide_sleep_t nap;
} reaper_t;

static tide_poll_t reaper_poll(tide_future_t *f, tide_cx_t *cx) {
    reaper_t *r = TIDE_CONTAINER_OF(f, reaper_t, fut);
    worker_t *w = self;
    uint32_t limit = (uint32_t)((D.opt.idle_timeout_usec +
                                 TIDE_USEC_PER_MSEC - 1) /
                                TIDE_USEC_PER_MSEC);
    TIDE_BEGIN(&r->co);
    for (;;) {
        uint32_t now = now_ms(), wait = limit;
        conn_t *c;
        while ((c = w->idle_head) != NULL) {
            uint32_t idle = now - c->idle.last_ms;
            if (idle < limit) {
                wait = limit - idle;
                break;
            }
            if ((c->flags & CONN_WRITING) &&
                c->op.wr.done != c->idle.seen) {
                c->idle.seen = (uint32_t)c->op.wr.done;
                idle_touch(c); /* its write moved: progress */
                continue;
            }
            idle_kick(c);
        }
        TIDE_AWAIT(&r->co, cx,
                   tide_sleep(&r->nap, (uint64_t)wait * TIDE_USEC_PER_MSEC));
    }
    TIDE_END(&r->co, f, 0);
}

static void reaper_drop(tide_future_t *f) {
    reaper_t *r = TIDE_CONTAINER_OF(f, reaper_t, fut);
    tide_async_drop(&r->co);
    free(r);
}

static const tide_future_vtable_t reaper_vt = {reaper_poll, reaper_drop};

int reaper_start(worker_t *w) {
    reaper_t *r = calloc(1, sizeof *r);
    if (r == NULL)
        return -ENOMEM;
    tide_future_init(&r->fut, &reaper_vt);
    int rc = tide_spawn(w->ex, &r->fut, NULL);
    if (rc < 0)
        tide_future_drop(&r->fut);
    return rc;
}

/* The door ---------------------------------------------------------------- */

void admit(worker_t *w, tide_conn_t *sock, const tide_addr_t *peer,
           bool has_slot) {
    unsigned id = ++w->next_id;
    char name[TIDE_ADDR_STRLEN] = "?";
    if (verbosity >= ECHOD_VERBOSE)
        tide_addr_format(peer, name, sizeof name);

    if (D.opt.max_conns != 0 && !has_slot &&
        tide_semaphore_try_acquire(&D.slots, 1) < 0) {
        ctr_add(&w->ctr.refused, 1);
        logmsg(ECHOD_VERBOSE, "conn %u from %s refused (--max-conns %llu)",
               id, name, (unsigned long long)D.opt.max_conns);
        goto close;
    }
    size_t size = D.opt.idle_timeout_usec != 0 ? sizeof(conn_t)
                                               : offsetof(conn_t, idle);
    conn_t *c = calloc(1, size);
    if (c == NULL) {
        if (D.opt.max_conns != 0)
            tide_semaphore_release(&D.slots, 1);
        logmsg(ECHOD_QUIET, "conn %u from %s: out of memory", id, name);
        goto close;
    }
    c->sock = sock;
    c->s = tide_conn_stream(sock);
    c->id = id;
    if (tide_conn_tcp(sock) != NULL) /* echo small messages at once */
        tide_tcp_set_nodelay(tide_conn_tcp(sock), true);
    tide_future_init(&c->fut, &conn_vt);
    ctr_add(&w->ctr.open, 1);
    ctr_add(&w->ctr.total, 1);
    idle_touch(c);
    int rc = tide_spawn(w->ex, &c->fut, NULL);
    if (rc < 0) {
        /* Not taken: the drop function undoes the counting and closes. */
        logmsg(ECHOD_QUIET, "conn %u: %s", id, tide_strerror(rc));
        tide_future_drop(&c->fut);
        return;
    }
    logmsg(ECHOD_VERBOSE, "conn %u from %s", id, name);
    return;
close:
    tide_conn_free(sock);
}
