/*
 * samples/echod/conn.c: a connection's task (read into a lent buffer,
 * write back, repeat; half close at the end), the idle list, with
 * --idle-timeout the reaper that closes the connections that made no
 * progress, and the eviction of the idlest one at --max-conns.
 *
 * Memory per connection: the connection's task state (conn_t, one
 * allocation, 136 bytes; 160 with --idle-timeout or --max-conns, for its
 * place on the worker's idle list; 168 with --max-conns-per-addr too),
 * tide's task and the TCP object. No connection owns
 * a buffer. A read borrows one from its thread's pool only for the time
 * of one poll of the stream: if the socket has nothing, the buffer goes
 * back at once and the connection waits for readability holding nothing;
 * if it has data, the buffer is kept until those bytes were written back,
 * then returned (or, when the pool would lend it straight back, handed to
 * the next read, which returns it if it pends). So memory is bounded by the connections that are echoing
 * right now (one buffer each), never by the ones that idle, and a
 * connection never reads more than it could write back (a client that
 * does not read stalls only its own connection, with one buffer). After
 * warm-up nothing is allocated per message: buffers go round the pool.
 *
 * --max-buffer-memory: when the pool has no buffer and the budget is
 * spent, lend_read completes with -ENOBUFS instead of reading, and the
 * task waits for a permit (a tide_semaphore acquire, in the same union
 * as the read and the write: conn_t does not grow), then reads with it.
 * The wait is the acquire's, so it is cancel safe and no poll spins; a
 * connection woken by readability pauses holding nothing.
 *
 * Measured (x86-64, glibc, 16 KiB buffers): 10,000 idle connections cost
 * about 555 bytes of RSS each (588 with --idle-timeout or --max-conns,
 * the same with --max-conns-per-addr too; 555 with --max-buffer-memory
 * alone); three
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
 * the drain time. The drain start wakes every task of the worker
 * (tide_exec_wake_all): that is how the waiting ones hear of it, at no
 * cost per read. (A waiter per read on a queue of the worker's, woken by
 * the drain, cost about 250 instructions per message: its link, the
 * waker reference it holds, its leave.) */
typedef struct lend_read {
    tide_future_t fut;
    tide_waiter_t w;    /* on the stream's read queue while pending */
    unsigned char *buf; /* lent by the pool, or NULL */
} lend_read_t;

/* With --idle-timeout or --max-conns (D.track_idle), a connection is on
 * its worker's list of connections in the order of their last progress,
 * the least recent first: one timer per worker (the reaper's) serves
 * them all, a message moves its connection to the end of the list in
 * O(1), and the connection idle the longest is the first one looked at,
 * by the reaper and by an eviction. */
typedef struct idle_link {
    conn_t *prev, *next;
    uint32_t last_ms; /* the last progress, tide_now() in ms (mod 2^32) */
    uint32_t seen;    /* while writing back: op.wr.done when last looked */
} idle_link_t;

enum {
    CONN_WRITING = 1,  /* op is wr (else rd, sd or mem) */
    CONN_EVICTED = 2,  /* closed by an eviction: its slot was handed on */
    CONN_PAUSED = 4,   /* op is mem: waiting for a buffer permit */
    CONN_PERMIT = 8,   /* holds a buffer permit for its next read */
    CONN_DRAINED = 16, /* ended by the drain, idle: as at end of stream */
    CONN_CLOSING = 32, /* op is sd: the half close; no buffer is lent */
};

struct conn {
    tide_future_t fut; /* the task; its result, once it ends, is why it
                          * ended: 0 end of stream, -errno */
    tide_async_t co;
    tide_conn_t *sock; /* TCP or Unix; NULL once the reaper closed it */
    tide_stream_t *s;
    unsigned id;
    unsigned char flags; /* CONN_* */
    union {
        lend_read_t rd;
        tide_write_all_t wr; /* buf: the buffer lend_read was lent */
        tide_shutdown_t sd;
        tide_semaphore_acquire_t mem; /* CONN_PAUSED */
    } op;
    /* Present only with D.track_idle: a conn_t is allocated without it
     * otherwise (offsetof(conn_t, idle) bytes). */
    idle_link_t idle;
    /* Present only with --max-conns-per-addr (and then idle is too). */
    addr_slot_t *addr;
#if TIDE_HAVE_TLS
    /* Present only with --tls-cert (and then idle and addr are too): the
     * TLS stream over sock (s is its stream) and its handshake, bounded
     * by a timeout, which the task awaits before its first read. */
    struct {
        tide_tls_t *t;
        tide_tls_handshake_t hs;
        tide_timeout_t to;
    } tls;
#endif
};

/* The bytes of a conn_t the options need. */
static size_t conn_size(void) {
    if (D.opt.max_conns_per_addr != 0 || tls_on())
        return sizeof(conn_t);
    return D.track_idle ? offsetof(conn_t, addr) : offsetof(conn_t, idle);
}

static addr_slot_t *conn_addr(conn_t *c) {
    return D.opt.max_conns_per_addr != 0 ? c->addr : NULL;
}

/* The connection's descriptor (for the drain's look at its queue). */
static int conn_fd(const conn_t *c) {
    tide_tcp_t *t = tide_conn_tcp(c->sock);
    return tide_fd_get(t != NULL ? tide_tcp_fd(t)
                                 : tide_unix_fd(tide_conn_unix(c->sock)));
}

/* Draining, the stream's read answered PENDING: does c really have
 * nothing to read? PENDING also means "the task's budget is spent" (it
 * was woken to go on later), which must not end a connection with bytes
 * waiting. One peek, once per connection per drain, answers; over TLS,
 * part of a record already taken in means the rest is on its way. */
static bool nothing_to_read(const conn_t *c) {
#if TIDE_HAVE_TLS
    if (tls_on() && tide_tls_has_buffered_input(c->tls.t))
        return false;
#endif
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
    if (rd->buf == NULL) {
        int err = -ENOMEM;
        if (c->flags & CONN_PERMIT) {
            c->flags &= (unsigned char)~CONN_PERMIT;
            rd->buf = pool_new(p);
        } else {
            rd->buf = pool_get(p, &err);
        }
        if (rd->buf == NULL) { /* -ENOBUFS: the task waits for a permit */
            f->result = err;
            goto done;
        }
    }
    if (tide_stream_poll_read(c->s, cx, rd->buf, p->size, &n) == TIDE_PENDING) {
        pool_put(p, rd->buf);
        rd->buf = NULL;
        if (self->draining && nothing_to_read(c)) {
            c->flags |= CONN_DRAINED;
            f->result = 0; /* as at the end of the client's stream */
            goto done;
        }
        tide_waiter_wait(&rd->w, c->s->rq, cx->waker);
        return TIDE_PENDING;
    }
    f->result = n;
done:
    tide_waiter_leave(&rd->w, TIDE_WAITQ_DONE);
    return TIDE_READY;
}

static void lend_read_drop(tide_future_t *f) {
    lend_read_t *rd = TIDE_CONTAINER_OF(f, lend_read_t, fut);
    tide_waiter_leave(&rd->w, TIDE_WAITQ_CANCELLED);
}

static const tide_future_vtable_t lend_read_vt = {lend_read_poll,
                                                  lend_read_drop};

/* buf: a buffer to read into first (the one just written back: see
 * conn_poll), or NULL to borrow one at the first poll. */
static tide_future_t *lend_read(conn_t *c, unsigned char *buf) {
    tide_waiter_init(&c->op.rd.w);
    c->op.rd.buf = buf;
    return tide_future_init(&c->op.rd.fut, &lend_read_vt);
}

void drain_wake(worker_t *w) {
    w->draining = true;
    /* Every task, not only the connections waiting to read: the others
     * (a write in progress, the listeners, the reaper) poll once for
     * nothing, once per drain. */
    tide_exec_wake_all(w->ex);
}

/* The lent buffer, whichever operation holds it (or NULL). */
static void *conn_buf(conn_t *c) {
    if (c->flags & CONN_CLOSING)
        return NULL; /* op is the shutdown: rd.buf is not a buffer */
    return c->flags & CONN_WRITING ? (void *)c->op.wr.buf : c->op.rd.buf;
}

/* The idle list ------------------------------------------------------------ */

static uint32_t now_ms(void) {
    return (uint32_t)(tide_now() / TIDE_USEC_PER_MSEC);
}

/* (Only with D.track_idle: without it, a conn_t has no idle link.) */
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
    if (!D.track_idle)
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
#if TIDE_HAVE_TLS
    /* The TLS stream first: it borrows the socket. A future waiting on
     * it completes with -EBADF (tide_tls_free), as on a freed socket. */
    if (tls_on()) {
        tide_tls_free(c->tls.t);
        c->tls.t = NULL;
    }
#endif
    tide_conn_free(c->sock);
    c->sock = NULL;
    c->s = NULL;
}

/* The reaper or an eviction closes c, idle too long: freeing its socket
 * completes the operation its task waits on (with -EBADF: see
 * tide_conn_free), and the task ends, telling why (c->sock is NULL). A
 * paused connection (waiting for a buffer permit) is never kicked: it
 * waits on no socket operation, and the wait is ours, not the client's. */
static void idle_kick(conn_t *c) {
    idle_unlink(c);
    free_sock(c);
}

/* The connection --------------------------------------------------------- */

/* Why a connection whose socket we freed ended. */
static int kicked_why(const conn_t *c) {
    return c->flags & CONN_EVICTED ? -ECONNABORTED : -ETIMEDOUT;
}

static tide_poll_t conn_poll(tide_future_t *f, tide_cx_t *cx) {
    conn_t *c = TIDE_CONTAINER_OF(f, conn_t, fut);
    intptr_t n;
    /* The buffer just written back, handed to the next read when the pool
     * would lend it again at once anyway (pool_would_keep): a put and a
     * get fewer per message. Only ever set just before the read starts
     * (no await in between); the read gives it back if it pends. */
    unsigned char *keep = NULL;

    TIDE_BEGIN(&c->co);
#if TIDE_HAVE_TLS
    if (tls_on()) {
        /* The handshake, within --idle-timeout (or 10 s): a client that
         * connects and says nothing holds no connection for ever. */
        TIDE_AWAIT(&c->co, cx,
                   tide_timeout(&c->tls.to,
                                tide_tls_handshake(&c->tls.hs, c->tls.t),
                                D.opt.idle_timeout_usec != 0
                                    ? D.opt.idle_timeout_usec
                                    : ECHOD_TLS_HANDSHAKE_USEC));
        n = tide_async_result(&c->co);
        if (c->sock == NULL || n < 0) {
            f->result = c->sock == NULL ? kicked_why(c) : n;
            if (verbosity >= ECHOD_VERBOSE && c->sock != NULL &&
                tide_tls_error_reason(c->tls.t) != NULL)
                logmsg(ECHOD_VERBOSE, "conn %u: TLS handshake: %s", c->id,
                       tide_tls_error_reason(c->tls.t));
            TIDE_RETURN(&c->co, f, f->result);
        }
        idle_touch(c);
    }
#endif
    for (;;) {
        TIDE_AWAIT(&c->co, cx, lend_read(c, keep));
        keep = NULL;
        n = tide_async_result(&c->co);
        if (n == -ENOBUFS && c->sock != NULL) {
            /* --max-buffer-memory is reached: wait for a permit (the
             * next buffer freed, by any thread), then read with it. */
            ctr_add(&self->ctr.mem_waits, 1);
            c->flags |= CONN_PAUSED;
            atomic_fetch_add(&D.bufmem_waiting, 1);
            TIDE_AWAIT(&c->co, cx,
                       tide_semaphore_acquire(&c->op.mem, &D.bufmem, 1));
            atomic_fetch_sub(&D.bufmem_waiting, 1);
            c->flags &= (unsigned char)~CONN_PAUSED;
            n = tide_async_result(&c->co);
            if (n < 0) { /* the semaphore is gone: shutting down */
                f->result = n;
                break;
            }
            c->flags |= CONN_PERMIT;
            idle_touch(c); /* paused by us, not idle */
            continue;
        }
        if (c->sock == NULL || n <= 0) {
            pool_put(&self->pool, c->op.rd.buf);
            /* 0: the client is done sending */
            f->result = c->sock == NULL ? kicked_why(c) : n;
            break;
        }
        ctr_add(&self->ctr.bytes_in, n);
        idle_touch(c);
        c->flags |= CONN_WRITING;
        if (D.track_idle)
            c->idle.seen = 0;
        TIDE_AWAIT(&c->co, cx,
                   tide_write_all(&c->op.wr, c->s, c->op.rd.buf, (size_t)n));
        c->flags &= (unsigned char)~CONN_WRITING;
        ctr_add(&self->ctr.bytes_out, (int64_t)c->op.wr.done);
        n = tide_async_result(&c->co);
        if (c->sock == NULL || n < 0 || !pool_would_keep(&self->pool))
            pool_put(&self->pool, (void *)c->op.wr.buf);
        else
            keep = (unsigned char *)c->op.wr.buf;
        if (c->sock == NULL || n < 0) {
            f->result = c->sock == NULL ? kicked_why(c) : n;
            break;
        }
        idle_touch(c);
    }
    if (f->result == 0) {
        /* Half close: everything received has been written back; send
         * our FIN too. The task then ends and the socket is closed. */
        c->flags |= CONN_CLOSING;
        TIDE_AWAIT(&c->co, cx, tide_shutdown(&c->op.sd, c->s));
    }
    TIDE_END(&c->co, f, f->result);
}

static void conn_drop(tide_future_t *f) {
    conn_t *c = TIDE_CONTAINER_OF(f, conn_t, fut);
    worker_t *w = self;
    bool done = tide_future_is_done(f);
    if (c->flags & CONN_PAUSED) { /* aborted waiting for a permit */
        /* tide_async_drop below drops the acquire: it gives back what it
         * was granted */
        atomic_fetch_sub(&D.bufmem_waiting, 1);
    } else if (!done) { /* aborted: the buffer is still lent */
        pool_put(&w->pool, conn_buf(c));
        c->flags &= (unsigned char)~CONN_WRITING;
        c->op.rd.buf = NULL;
    }
    if (c->flags & CONN_PERMIT) /* granted, not yet used */
        tide_semaphore_release(&D.bufmem, 1);
    tide_async_drop(&c->co);
    if (D.track_idle)
        idle_unlink(c);
    free_sock(c);
    int why = (int)f->result;
    if (verbosity >= ECHOD_VERBOSE)
        logmsg(ECHOD_VERBOSE, "conn %u closed (%s)", c->id,
               !done                                   ? "shutting down"
               : why == 0 && (c->flags & CONN_DRAINED) ? "idle at the drain"
               : why == 0                              ? "end of stream"
               : why == -ETIMEDOUT                     ? "idle timeout"
               : why == -ECONNABORTED                  ? "evicted (--max-conns)"
                                                       : tide_strerror(why));
    limits_leave(conn_addr(c), !(c->flags & CONN_EVICTED));
    free(c);
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

/* Is c, at the head of the idle list, busy after all (then it moves to
 * the end)? Its write back moved since last looked at, or it waits for
 * a buffer permit (our doing, not the client's). */
static bool busy(conn_t *c) {
    if ((c->flags & CONN_WRITING) && c->op.wr.done != c->idle.seen) {
        c->idle.seen = (uint32_t)c->op.wr.done;
        idle_touch(c); /* its write moved: progress */
        return true;
    }
    if (c->flags & CONN_PAUSED) {
        idle_touch(c);
        return true;
    }
    return false;
}

static tide_poll_t reaper_poll(tide_future_t *f, tide_cx_t *cx) {
    reaper_t *r = TIDE_CONTAINER_OF(f, reaper_t, fut);
    worker_t *w = self;
    uint32_t limit =
        (uint32_t)((D.opt.idle_timeout_usec + TIDE_USEC_PER_MSEC - 1) /
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
            if (busy(c))
                continue;
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

/* Eviction ----------------------------------------------------------------
 * At --max-conns, a newcomer takes the place of the connection idle the
 * longest (limits.c says when). The walk from the head of the list moves
 * the busy ones to the end, so it looks at each connection at most once
 * and stops at the first one idle less than --evict-idle: the list is in
 * order of last progress. */

bool conn_evict_idlest(worker_t *w) {
    uint32_t now = now_ms();
    uint64_t min =
        (D.opt.evict_idle_usec + TIDE_USEC_PER_MSEC - 1) / TIDE_USEC_PER_MSEC;
    uint64_t left = ctr_get(&w->ctr.open);
    conn_t *c;
    while ((c = w->idle_head) != NULL && left-- > 0) {
        if (now - c->idle.last_ms < min)
            return false;
        if (busy(c))
            continue;
        c->flags |= CONN_EVICTED; /* its slot is the newcomer's */
        if (verbosity >= ECHOD_VERBOSE)
            logmsg(ECHOD_VERBOSE, "conn %u evicted, idle %u ms", c->id,
                   (unsigned)(now - c->idle.last_ms));
        idle_kick(c);
        return true;
    }
    return false;
}

/* The door ---------------------------------------------------------------- */

void admit(worker_t *w, tide_conn_t *sock, const tide_addr_t *peer,
           bool has_slot) {
    unsigned id = ++w->next_id;
    char name[TIDE_ADDR_STRLEN] = "?";
    const char *why = NULL;
    addr_slot_t *slot;
    if (verbosity >= ECHOD_VERBOSE)
        tide_addr_format(peer, name, sizeof name);

    if (!limits_enter(w, peer, has_slot, &slot, &why)) {
        logmsg(ECHOD_VERBOSE, "conn %u from %s refused (%s)", id, name, why);
        goto close;
    }
    conn_t *c = calloc(1, conn_size());
    if (c == NULL) {
        limits_leave(slot, true);
        logmsg(ECHOD_QUIET, "conn %u from %s: out of memory", id, name);
        goto close;
    }
    if (D.opt.max_conns_per_addr != 0)
        c->addr = slot;
    c->sock = sock;
    c->s = tide_conn_stream(sock);
#if TIDE_HAVE_TLS
    if (tls_on()) {
        int trc =
            tide_tls_new(&c->tls.t, D.tls, c->s, TIDE_TLS_SERVER, NULL, 0);
        if (trc < 0) {
            limits_leave(slot, true);
            free(c);
            logmsg(ECHOD_QUIET, "conn %u from %s: TLS: %s", id, name,
                   tide_strerror(trc));
            goto close;
        }
        c->s = tide_tls_stream(c->tls.t);
    }
#endif
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
