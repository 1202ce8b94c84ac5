/*
 * samples/echod/echod.c: tide-echod, an echo daemon written with tide the
 * way tide code is meant to be written: one stackless task per connection
 * (TIDE_BEGIN / TIDE_AWAIT: read, write back, repeat), one accept task per
 * listener, one executor and event loop per thread.
 *
 * Memory per connection: the connection's task state (conn_t, one
 * allocation, 136 bytes; 160 with --idle-timeout, for its place on the
 * worker's idle list), tide's task and the TCP object. No connection owns
 * a buffer. A read borrows one
 * from its thread's pool only for the time of one poll of the stream: if
 * the socket has nothing, the buffer goes back at once and the connection
 * waits for readability holding nothing; if it has data, the buffer is
 * kept until those bytes were written back, then returned. So memory is
 * bounded by the connections that are echoing right now (one buffer
 * each), never by the ones that idle, and a connection never reads more
 * than it could write back (a client that does not read stalls only its
 * own connection, with one buffer). After warm-up nothing is allocated per
 * message: buffers go round the pool.
 *
 * Measured (x86-64, glibc, 16 KiB buffers): 10,000 idle connections cost
 * about 555 bytes of RSS each (588 with --idle-timeout); three
 * allocations per connection (conn_t, tide's task, the TCP object) and
 * none per message; three system calls per echoed small message (recv,
 * send, epoll_wait), the same as a hand-written epoll loop.
 *
 * Threads: with --threads N, each thread runs its own executor on its own
 * event_base and binds its own SO_REUSEPORT socket for each TCP address;
 * the kernel spreads connections among them. Signals are received by the
 * first thread (libevent delivers signals to one event_base per process),
 * which tells the others through a level_t: an atomic level and a
 * tide_notify_t, notified across threads (tide's remote-wake path).
 */
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <tide.h>

#include "options.h"

/* ------------------------------------------------------------------------
 * Logging: stderr, one line each, "echod: " first.
 * ------------------------------------------------------------------------ */

static int verbosity = ECHOD_NORMAL;

static void logmsg(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void logmsg(int level, const char *fmt, ...) {
    if (verbosity < level)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "echod: %s\n", line);
}

/* ------------------------------------------------------------------------
 * Counters. Each is written by one thread only (its worker) and read by
 * the thread that prints them, so a relaxed load and store are enough: no
 * locked instruction on the per-message path.
 * ------------------------------------------------------------------------ */

typedef _Atomic uint64_t counter_t;

static inline uint64_t ctr_get(counter_t *c) {
    return atomic_load_explicit(c, memory_order_relaxed);
}

static inline void ctr_add(counter_t *c, int64_t n) {
    atomic_store_explicit(c, ctr_get(c) + (uint64_t)n, memory_order_relaxed);
}

typedef struct counters {
    counter_t open, total, refused, bytes_in, bytes_out, backoffs;
} counters_t;

/* ------------------------------------------------------------------------
 * until_t: a future ready once a condition holds, rechecked each time a
 * tide_notify_t is notified. Whoever makes the condition true (from any
 * thread) notifies: notify_one keeps a permit when the waiter has not
 * come yet, so no change is missed. Each condition here has one waiter.
 * ------------------------------------------------------------------------ */

typedef struct until {
    tide_future_t fut;
    tide_notify_t *n;
    bool (*holds)(const void *arg);
    const void *arg;
    bool waiting; /* nf is set up */
    tide_notified_t nf;
} until_t;

static tide_poll_t until_poll(tide_future_t *f, tide_cx_t *cx) {
    until_t *u = TIDE_CONTAINER_OF(f, until_t, fut);
    for (;;) {
        if (u->holds(u->arg)) {
            f->result = 0;
            return TIDE_READY;
        }
        if (!u->waiting) {
            tide_notified(&u->nf, u->n);
            u->waiting = true;
        }
        if (tide_future_poll(&u->nf.fut, cx) == TIDE_PENDING)
            return TIDE_PENDING;
        tide_future_drop(&u->nf.fut);
        u->waiting = false;
    }
}

static void until_drop(tide_future_t *f) {
    until_t *u = TIDE_CONTAINER_OF(f, until_t, fut);
    if (u->waiting)
        tide_future_drop(&u->nf.fut); /* passes a notification on */
    u->waiting = false;
}

static const tide_future_vtable_t until_vt = {until_poll, until_drop};

/* A future ready once holds(arg), rechecked at each notification of n.
 * Cancel safe. */
static tide_future_t *until(until_t *u, tide_notify_t *n,
                            bool (*holds)(const void *), const void *arg) {
    u->n = n;
    u->holds = holds;
    u->arg = arg;
    u->waiting = false;
    return tide_future_init(&u->fut, &until_vt);
}

/* A level that one thread raises and another's task awaits. */
typedef struct level {
    atomic_uint value;
    tide_notify_t raised;
} level_t;

static void level_init(level_t *l) {
    atomic_init(&l->value, 0);
    tide_notify_init(&l->raised);
}

static unsigned level_get(level_t *l) { return atomic_load(&l->value); }

/* Raise l to at least `to` (add 0) or by `add`. Any thread. */
static void level_raise(level_t *l, unsigned to, unsigned add) {
    unsigned cur = atomic_load(&l->value), next;
    do {
        next = cur + add > to ? cur + add : to;
        if (next == cur)
            return;
    } while (!atomic_compare_exchange_weak(&l->value, &cur, next));
    tide_notify_one(&l->raised);
}

/* The target of a level_wait (until_t's arg). */
typedef struct level_at {
    level_t *l;
    unsigned target;
} level_at_t;

static bool level_reached(const void *arg) {
    const level_at_t *a = arg;
    return level_get(a->l) >= a->target;
}

/* ------------------------------------------------------------------------
 * The per-thread buffer pool: a free list threaded through the buffers
 * themselves. It keeps at most `keep` buffers; more are freed, so a burst
 * of busy connections does not pin its memory for ever.
 * ------------------------------------------------------------------------ */

typedef struct pool {
    void *head;
    size_t nfree, keep, size;
} pool_t;

static void *pool_get(pool_t *p) {
    void *b = p->head;
    if (b != NULL) {
        memcpy(&p->head, b, sizeof p->head);
        p->nfree--;
        return b;
    }
    return malloc(p->size < sizeof(void *) ? sizeof(void *) : p->size);
}

static void pool_put(pool_t *p, void *b) {
    if (b == NULL)
        return;
    if (p->nfree >= p->keep) {
        free(b);
        return;
    }
    memcpy(b, &p->head, sizeof p->head);
    p->head = b;
    p->nfree++;
}

static void pool_destroy(pool_t *p) {
    while (p->head != NULL) {
        void *b = p->head;
        memcpy(&p->head, b, sizeof p->head);
        free(b);
    }
    p->nfree = 0;
}

/* ------------------------------------------------------------------------
 * The daemon, its workers and listeners
 * ------------------------------------------------------------------------ */

typedef struct listener {
    tide_listener_t *l; /* TCP or Unix */
    tide_join_t accept_task;
    bool has_task;
} listener_t;

typedef struct worker {
    unsigned index;
    tide_exec_t *ex;
    pthread_t thread;
    bool thread_started;
    listener_t ls[ECHOD_MAX_LISTEN];
    size_t nls;
    pool_t pool;
    counters_t ctr;
    unsigned next_id;          /* connection numbers, for --verbose */
    tide_notify_t closed;      /* notified when the last connection closes */
    struct conn *idle_head, *idle_tail; /* --idle-timeout: see idle_link */
    level_t stop;              /* 1: stop accepting and drain; 2: now */
    int start_rc;
} worker_t;

static struct daemon {
    echod_options_t opt;
    tide_addr_t addr[ECHOD_MAX_LISTEN]; /* bound addresses, in order */
    bool unix_bound[ECHOD_MAX_LISTEN];  /* a socket file to remove at exit */
    worker_t *workers;
    tide_semaphore_t slots;             /* --max-conns: one per connection */
    level_t finished;                   /* worker threads that are done */
    pthread_mutex_t start_mu;
    pthread_cond_t start_cv;
    unsigned started;                   /* workers that tried to start */
} D;

static void print_counters(void) {
    uint64_t sum[6] = {0};
    for (unsigned i = 0; i < D.opt.threads; i++) {
        counters_t *c = &D.workers[i].ctr;
        sum[0] += ctr_get(&c->open);
        sum[1] += ctr_get(&c->total);
        sum[2] += ctr_get(&c->refused);
        sum[3] += ctr_get(&c->bytes_in);
        sum[4] += ctr_get(&c->bytes_out);
        sum[5] += ctr_get(&c->backoffs);
    }
    fprintf(stderr,
            "echod: connections %llu open, %llu total, %llu refused; bytes "
            "%llu in, %llu out; accept backoffs %llu\n",
            (unsigned long long)sum[0], (unsigned long long)sum[1],
            (unsigned long long)sum[2], (unsigned long long)sum[3],
            (unsigned long long)sum[4], (unsigned long long)sum[5]);
}

/* Listener statistics are the listener thread's to read: each worker
 * publishes its accept backoffs after every accept (and worker 0 before
 * printing). */
static void publish_backoffs(worker_t *w) {
    uint64_t n = 0;
    for (size_t i = 0; i < w->nls; i++) {
        tide_listener_stats_t st;
        if (w->ls[i].l == NULL)
            continue;
        tide_listener_stats(w->ls[i].l, &st);
        n += st.backoffs;
    }
    atomic_store_explicit(&w->ctr.backoffs, n, memory_order_relaxed);
}

/* ------------------------------------------------------------------------
 * A connection
 * ------------------------------------------------------------------------ */

/* The worker whose thread this is: every connection of a thread belongs
 * to its worker, so a connection does not carry a pointer to it. */
static _Thread_local worker_t *self;

typedef struct conn conn_t;

/* lend_read: one read of the connection's stream into a buffer lent by
 * the thread's pool for the duration of the poll. PENDING gives the
 * buffer back (the stream has registered our waker for readability), so
 * a waiting connection holds none; READY keeps it in buf with the result
 * (bytes, 0 at end of stream, -errno) in fut.result. It is the one
 * hand-written future here: tide_read takes a buffer when it is created,
 * and we want one only once there is something to read. */
typedef struct lend_read {
    tide_future_t fut;
    tide_waiter_t w;    /* on the stream's read queue while pending */
    unsigned char *buf; /* lent by the pool, or NULL */
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

enum { CONN_WRITING = 1 };

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

static tide_poll_t lend_read_poll(tide_future_t *f, tide_cx_t *cx) {
    lend_read_t *rd = TIDE_CONTAINER_OF(f, lend_read_t, fut);
    conn_t *c = TIDE_CONTAINER_OF(rd, conn_t, op.rd);
    pool_t *p = &self->pool;
    ssize_t n;
    if (tide_waiter_error(&rd->w) != 0) { /* the stream was freed */
        f->result = tide_waiter_error(&rd->w);
        return TIDE_READY;
    }
    if (rd->buf == NULL && (rd->buf = pool_get(p)) == NULL) {
        f->result = -ENOMEM;
        return TIDE_READY;
    }
    if (tide_stream_poll_read(c->s, cx, rd->buf, p->size, &n) ==
        TIDE_PENDING) {
        pool_put(p, rd->buf);
        rd->buf = NULL;
        tide_waiter_wait(&rd->w, c->s->rq, cx->waker);
        return TIDE_PENDING;
    }
    if (tide_waiter_is_waiting(&rd->w))
        tide_waiter_leave(&rd->w, TIDE_WAITQ_DONE);
    f->result = n;
    return TIDE_READY;
}

static void lend_read_drop(tide_future_t *f) {
    lend_read_t *rd = TIDE_CONTAINER_OF(f, lend_read_t, fut);
    tide_waiter_leave(&rd->w, TIDE_WAITQ_CANCELLED);
}

static const tide_future_vtable_t lend_read_vt = {
    lend_read_poll, lend_read_drop};

static tide_future_t *lend_read(conn_t *c) {
    tide_waiter_init(&c->op.rd.w);
    c->op.rd.buf = NULL;
    return tide_future_init(&c->op.rd.fut, &lend_read_vt);
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

/* A new connection: refuse it (over --max-conns) or give it a task.
 * With --max-conns-wait, the accept task took its slot before accepting
 * (has_slot). */
static void admit(worker_t *w, tide_conn_t *sock, const tide_addr_t *peer,
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

/* ------------------------------------------------------------------------
 * The accept task: one per listener per thread.
 * ------------------------------------------------------------------------ */

typedef struct acceptor {
    tide_future_t fut;
    tide_async_t co;
    worker_t *w;
    listener_t *l;
    tide_sleep_t nap;
    tide_semaphore_acquire_t slot; /* --max-conns-wait */
    bool has_slot;                 /* the next connection's, taken */
    tide_accept_t acc;
} acceptor_t;

static tide_poll_t acceptor_poll(tide_future_t *f, tide_cx_t *cx) {
    acceptor_t *a = TIDE_CONTAINER_OF(f, acceptor_t, fut);
    int rc;

    TIDE_BEGIN(&a->co);
    for (;;) {
        if (D.opt.max_conns != 0 && D.opt.max_conns_wait && !a->has_slot) {
            /* Full: accept nothing until a connection closes; newcomers
             * wait in the kernel's backlog meanwhile. */
            TIDE_AWAIT(&a->co, cx, tide_semaphore_acquire(&a->slot, &D.slots, 1));
            if (tide_async_result(&a->co) < 0)
                break;
            a->has_slot = true;
        }
        /* Running out of descriptors never completes an accept: the
         * listener pauses by itself (growing delays up to 1 s) and the
         * loop sleeps meanwhile. */
        TIDE_AWAIT(&a->co, cx, tide_accept(&a->acc, a->l->l));
        rc = (int)tide_async_result(&a->co);
        if (rc == 0) {
            admit(a->w, a->acc.conn, &a->acc.peer, a->has_slot);
            a->has_slot = false; /* the connection's now */
            publish_backoffs(a->w);
            continue;
        }
        if (rc == -EBADF)
            break; /* the listener is gone */
        /* Something unexpected (or no memory to wrap a connection):
         * don't spin on it. */
        logmsg(ECHOD_QUIET, "accept: %s", tide_strerror(rc));
        TIDE_AWAIT(&a->co, cx, tide_sleep(&a->nap, 100 * TIDE_USEC_PER_MSEC));
    }
    TIDE_END(&a->co, f, 0);
}

static void acceptor_drop(tide_future_t *f) {
    acceptor_t *a = TIDE_CONTAINER_OF(f, acceptor_t, fut);
    tide_async_drop(&a->co); /* gives back a slot it was waiting for */
    if (a->has_slot)
        tide_semaphore_release(&D.slots, 1);
    free(a);
}

/* ------------------------------------------------------------------------
 * Starting a worker: its executor, its listeners, their accept tasks.
 * ------------------------------------------------------------------------ */

/* Is a Unix socket at path alive (someone accepts on it)? */
static bool unix_socket_alive(const tide_addr_t *a) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return true; /* can't tell: assume so, and don't remove it */
    bool alive = connect(fd, tide_addr_sockaddr(a), a->len) == 0 ||
                 errno != ECONNREFUSED;
    close(fd);
    return alive;
}

static int bind_one(worker_t *w, size_t i, listener_t *l) {
    const char *text = D.opt.listen[i];
    const tide_addr_t *addr = &D.addr[i];
    int rc;
    if (tide_addr_family(addr) == AF_UNIX) {
        rc = tide_listener_bind(&l->l, w->ex, text, 0);
        /* A socket file left by a daemon that died is removed; one that
         * still answers belongs to someone: leave it. */
        if (rc == -EADDRINUSE && !unix_socket_alive(addr))
            rc = tide_listener_bind(&l->l, w->ex, text, TIDE_NET_UNLINK);
        if (rc == 0 && ((const struct sockaddr_un *)(const void *)&addr->ss)
                               ->sun_path[0] != '\0')
            D.unix_bound[i] = true;
        return rc;
    }
    return tide_listener_bind_addr(&l->l, w->ex, addr,
                                   D.opt.threads > 1 ? TIDE_NET_REUSEPORT : 0);
}

static void free_listener(listener_t *l) {
    tide_listener_free(l->l);
    l->l = NULL;
}

static const tide_future_vtable_t acceptor_vt = {acceptor_poll, acceptor_drop};

/* Create w's executor, bind its listeners and spawn their accept tasks.
 * Worker 0 binds first and records the bound addresses (port 0 becomes a
 * real port), which the other workers then bind with SO_REUSEPORT. */
static int worker_start(worker_t *w, char *err, size_t errsize) {
    self = w;
    int rc = tide_exec_new(&w->ex, NULL, 0);
    if (rc < 0) {
        snprintf(err, errsize, "cannot create an executor: %s",
                 tide_strerror(rc));
        return rc;
    }
    if (D.opt.idle_timeout_usec != 0) {
        reaper_t *r = calloc(1, sizeof *r);
        if (r == NULL) {
            snprintf(err, errsize, "out of memory");
            return -ENOMEM;
        }
        tide_future_init(&r->fut, &reaper_vt);
        rc = tide_spawn(w->ex, &r->fut, NULL);
        if (rc < 0) {
            tide_future_drop(&r->fut);
            snprintf(err, errsize, "cannot start: %s", tide_strerror(rc));
            return rc;
        }
    }
    for (size_t i = 0; i < D.opt.nlisten; i++) {
        if (w->index > 0 && tide_addr_family(&D.addr[i]) == AF_UNIX)
            continue; /* Unix sockets have no SO_REUSEPORT: thread 0's */
        listener_t *l = &w->ls[w->nls];
        rc = bind_one(w, i, l);
        if (rc < 0) {
            snprintf(err, errsize, "cannot listen on %s: %s",
                     D.opt.listen[i], tide_strerror(rc));
            return rc;
        }
        w->nls++;
        if (w->index == 0 && tide_addr_family(&D.addr[i]) != AF_UNIX)
            tide_listener_local_addr(l->l, &D.addr[i]);

        acceptor_t *a = calloc(1, sizeof *a);
        if (a == NULL) {
            snprintf(err, errsize, "out of memory");
            return -ENOMEM;
        }
        a->w = w;
        a->l = l;
        tide_future_init(&a->fut, &acceptor_vt);
        rc = tide_spawn(w->ex, &a->fut, &l->accept_task);
        if (rc < 0) {
            tide_future_drop(&a->fut);
            snprintf(err, errsize, "cannot start: %s", tide_strerror(rc));
            return rc;
        }
        l->has_task = true;
    }
    return 0;
}

/* Undo worker_start (and whatever ran since): close the listeners still
 * open, drop every task (each connection's drop closes its socket), free
 * the executor and the pool. */
static void worker_finish(worker_t *w) {
    for (size_t i = 0; i < w->nls; i++) {
        if (w->ls[i].has_task)
            tide_join_detach(&w->ls[i].accept_task);
        w->ls[i].has_task = false;
    }
    /* The executor first: it drops the accept tasks (which refer to
     * their listeners) and the connections (each closes its socket). */
    if (w->ex != NULL) {
        if (ctr_get(&w->ctr.open) > 0)
            logmsg(ECHOD_NORMAL, "closing %llu connection(s)",
                   (unsigned long long)ctr_get(&w->ctr.open));
        tide_exec_free(w->ex);
        w->ex = NULL;
    }
    for (size_t i = 0; i < w->nls; i++)
        if (w->ls[i].l != NULL)
            free_listener(&w->ls[i]);
    pool_destroy(&w->pool);
}

/* ------------------------------------------------------------------------
 * The main task of each worker: run until told to stop, stop accepting,
 * drain, end. Worker 0 owns the signals and tells the others.
 * ------------------------------------------------------------------------ */

static bool no_conns(const void *arg) {
    return ctr_get(&((worker_t *)(uintptr_t)arg)->ctr.open) == 0;
}

typedef struct signals {
    tide_signal_t intr, term, usr1;
} signals_t;

typedef struct main_task {
    tide_future_t fut;
    tide_async_t co;
    worker_t *w;
    signals_t *sig;         /* worker 0 only */
    tide_select_t sel;
    tide_future_t *arms[6];
    size_t narms;
    until_t nw;     /* a level */
    level_at_t at;
    until_t cw;     /* no connection open */
    tide_sleep_t nap;
    uint64_t deadline;
    size_t i;
} main_task_t;

/* The main task's wait for a level (one at a time: m->nw, m->at). */
static tide_future_t *level_wait(main_task_t *m, level_t *l,
                                 unsigned target) {
    m->at = (level_at_t){l, target};
    return until(&m->nw, &l->raised, level_reached, &m->at);
}

static void add_signal_arms(main_task_t *m) {
    m->arms[m->narms++] = tide_signal_recv(&m->sig->intr);
    m->arms[m->narms++] = tide_signal_recv(&m->sig->term);
    m->arms[m->narms++] = tide_signal_recv(&m->sig->usr1);
}

/* Which arm of the last select completed. */
static tide_future_t *chosen(main_task_t *m) {
    intptr_t k = tide_async_result(&m->co);
    return k >= 0 && (size_t)k < m->narms ? m->arms[k] : NULL;
}

static bool chose_usr1(main_task_t *m) {
    return m->sig != NULL && chosen(m) == &m->sig->usr1.fut;
}

static void show_counters(main_task_t *m) {
    publish_backoffs(m->w);
    print_counters();
}

static tide_poll_t main_poll(tide_future_t *f, tide_cx_t *cx) {
    main_task_t *m = TIDE_CONTAINER_OF(f, main_task_t, fut);
    worker_t *w = m->w;
    unsigned others = D.opt.threads - 1;

    TIDE_BEGIN(&m->co);
    /* Serve until SIGINT / SIGTERM (worker 0) or until worker 0 says. */
    for (;;) {
        m->narms = 0;
        if (m->sig != NULL)
            add_signal_arms(m);
        else
            m->arms[m->narms++] = level_wait(m, &w->stop, 1);
        TIDE_AWAIT(&m->co, cx, tide_select(&m->sel, m->arms, m->narms));
        if (chose_usr1(m)) {
            show_counters(m);
            continue;
        }
        break;
    }
    if (m->sig != NULL) {
        uint64_t open = 0;
        for (unsigned i = 0; i < D.opt.threads; i++)
            open += ctr_get(&D.workers[i].ctr.open);
        logmsg(ECHOD_NORMAL,
               "stopping: not accepting; waiting up to %.3g s for %llu open "
               "connection(s)",
               (double)D.opt.drain_timeout_usec / 1e6,
               (unsigned long long)open);
        for (unsigned i = 1; i < D.opt.threads; i++)
            level_raise(&D.workers[i].stop, 1, 0);
    }

    /* Stop accepting: abort each accept task, wait until it is gone (it
     * refers to its listener), then close the listener. */
    for (m->i = 0; m->i < w->nls; m->i++) {
        tide_join_abort(&w->ls[m->i].accept_task);
        TIDE_AWAIT(&m->co, cx, tide_join(&w->ls[m->i].accept_task));
        w->ls[m->i].has_task = false;
        free_listener(&w->ls[m->i]);
    }

    /* Drain: wait for this worker's connections to close (worker 0: and
     * for the other workers to finish), the deadline, or a second
     * signal. */
    m->deadline = tide_now() + D.opt.drain_timeout_usec;
    for (;;) {
        m->narms = 0;
        if (ctr_get(&w->ctr.open) > 0)
            m->arms[m->narms++] = until(&m->cw, &w->closed, no_conns, w);
        else if (m->sig != NULL && others > 0 &&
                 level_get(&D.finished) < others)
            m->arms[m->narms++] = level_wait(m, &D.finished, others);
        else
            break; /* all done */
        m->arms[m->narms++] = tide_sleep_until(&m->nap, m->deadline);
        if (m->sig != NULL)
            add_signal_arms(m);
        else
            m->arms[m->narms++] = level_wait(m, &w->stop, 2);
        TIDE_AWAIT(&m->co, cx, tide_select(&m->sel, m->arms, m->narms));
        if (chose_usr1(m)) {
            show_counters(m);
            continue;
        }
        if (chosen(m) == &m->cw.fut ||
            (m->sig != NULL && chosen(m) == &m->nw.fut))
            continue; /* progress: look again */
        if (m->sig != NULL && chosen(m) != &m->nap.fut)
            logmsg(ECHOD_NORMAL, "second signal: closing now");
        else if (m->sig != NULL)
            logmsg(ECHOD_NORMAL, "drain timeout");
        break;
    }
    if (m->sig != NULL)
        for (unsigned i = 1; i < D.opt.threads; i++)
            level_raise(&D.workers[i].stop, 2, 0);
    TIDE_END(&m->co, f, 0);
}

static void main_drop(tide_future_t *f) {
    main_task_t *m = TIDE_CONTAINER_OF(f, main_task_t, fut);
    tide_async_drop(&m->co);
}

static const tide_future_vtable_t main_vt = {main_poll, main_drop};

/* Run worker w's main task until it ends (the executor then still holds
 * the connections that outlived the drain). */
static void worker_run(worker_t *w, signals_t *sig) {
    main_task_t m;
    memset(&m, 0, sizeof m);
    m.w = w;
    m.sig = sig;
    tide_future_init(&m.fut, &main_vt);
    int rc = tide_exec_block_on(w->ex, &m.fut);
    if (rc < 0)
        logmsg(ECHOD_QUIET, "event loop: %s", tide_strerror(rc));
    tide_future_drop(&m.fut);
}

static void start_report(worker_t *w, int rc) {
    pthread_mutex_lock(&D.start_mu);
    w->start_rc = rc;
    D.started++;
    pthread_cond_broadcast(&D.start_cv);
    pthread_mutex_unlock(&D.start_mu);
}

static void *worker_thread(void *arg) {
    worker_t *w = arg;
    char err[256];
    int rc = worker_start(w, err, sizeof err);
    if (rc < 0)
        logmsg(ECHOD_QUIET, "thread %u: %s", w->index, err);
    start_report(w, rc);
    if (rc == 0)
        worker_run(w, NULL);
    worker_finish(w);
    level_raise(&D.finished, 0, 1);
    return NULL;
}

/* ------------------------------------------------------------------------
 * main
 * ------------------------------------------------------------------------ */

/* Numeric addresses are parsed; "name:port" is looked up (blocking, once,
 * at start-up) and its first address used. */
static int resolve(const char *text, tide_addr_t *out, char *err,
                   size_t errsize) {
    if (tide_addr_parse(out, text) == 0)
        return 0;
    const char *colon = strrchr(text, ':');
    char host[256];
    size_t hlen = colon != NULL ? (size_t)(colon - text) : 0;
    if (colon == NULL || hlen >= sizeof host) {
        snprintf(err, errsize, "bad address '%s'", text);
        return -1;
    }
    memcpy(host, text, hlen);
    host[hlen] = '\0';
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG;
    int g = getaddrinfo(host, colon + 1, &hints, &ai);
    if (g != 0 || ai == NULL) {
        snprintf(err, errsize, "cannot resolve '%.200s': %s", host,
                 g != 0 ? gai_strerror(g) : "no address");
        return -1;
    }
    int rc = tide_addr_from_sockaddr(out, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    if (rc < 0) {
        snprintf(err, errsize, "'%s': %s", text, tide_strerror(rc));
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    char err[256];
    const char *prog = "tide-echod";
    if (argc > 0 && argv[0] != NULL && *argv[0] != '\0') {
        const char *slash = strrchr(argv[0], '/');
        prog = slash != NULL ? slash + 1 : argv[0];
        if (strncmp(prog, "lt-", 3) == 0) /* libtool's in-tree name */
            prog += 3;
    }
    int status = 1;
    signals_t sig;
    bool sig_ready = false;

    if (echod_options_parse(&D.opt, argc, argv, err, sizeof err) < 0) {
        fprintf(stderr, "echod: %s\nTry '%s --help'.\n", err, prog);
        return 2;
    }
    if (D.opt.help) {
        echod_usage(stdout, prog);
        return 0;
    }
    if (D.opt.version) {
        printf("tide-echod (tide %s)\n", tide_version());
        return 0;
    }
    verbosity = D.opt.verbosity;
    tide_ignore_sigpipe(); /* sockets use MSG_NOSIGNAL; belt and braces */

    for (size_t i = 0; i < D.opt.nlisten; i++)
        if (resolve(D.opt.listen[i], &D.addr[i], err, sizeof err) < 0) {
            logmsg(ECHOD_QUIET, "%s", err);
            return 1;
        }

    unsigned n = D.opt.threads;
    D.workers = calloc(n, sizeof *D.workers);
    if (D.workers == NULL) {
        logmsg(ECHOD_QUIET, "out of memory");
        return 1;
    }
    level_init(&D.finished);
    if (D.opt.max_conns != 0)
        tide_semaphore_init(&D.slots, (size_t)D.opt.max_conns);
    pthread_mutex_init(&D.start_mu, NULL);
    pthread_cond_init(&D.start_cv, NULL);
    size_t keep = (4u << 20) / D.opt.buffer_size;
    for (unsigned i = 0; i < n; i++) {
        worker_t *w = &D.workers[i];
        w->index = i;
        w->pool.size = D.opt.buffer_size;
        w->pool.keep = keep < 16 ? 16 : keep;
        level_init(&w->stop);
        tide_notify_init(&w->closed);
    }

    /* Worker 0 runs on this thread and owns the signals. */
    worker_t *w0 = &D.workers[0];
    int rc = worker_start(w0, err, sizeof err);
    if (rc < 0) {
        logmsg(ECHOD_QUIET, "%s", err);
        goto out;
    }
    rc = tide_signal_init(&sig.intr, w0->ex, SIGINT);
    if (rc == 0) {
        rc = tide_signal_init(&sig.term, w0->ex, SIGTERM);
        if (rc == 0) {
            rc = tide_signal_init(&sig.usr1, w0->ex, SIGUSR1);
            if (rc < 0)
                tide_signal_free(&sig.term);
        }
        if (rc < 0)
            tide_signal_free(&sig.intr);
    }
    if (rc < 0) {
        logmsg(ECHOD_QUIET, "signals: %s", tide_strerror(rc));
        goto out;
    }
    sig_ready = true;

    /* The other threads: they block the signals (so that the kernel
     * delivers them to this thread, whose loop libevent wakes). */
    if (n > 1) {
        sigset_t block, old;
        sigemptyset(&block);
        sigaddset(&block, SIGINT);
        sigaddset(&block, SIGTERM);
        sigaddset(&block, SIGUSR1);
        pthread_sigmask(SIG_BLOCK, &block, &old);
        for (unsigned i = 1; i < n; i++) {
            worker_t *w = &D.workers[i];
            rc = pthread_create(&w->thread, NULL, worker_thread, w);
            if (rc != 0) {
                logmsg(ECHOD_QUIET, "cannot start thread %u: %s", i,
                       strerror(rc));
                start_report(w, -rc);
                continue;
            }
            w->thread_started = true;
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        pthread_mutex_lock(&D.start_mu);
        while (D.started < n - 1)
            pthread_cond_wait(&D.start_cv, &D.start_mu);
        pthread_mutex_unlock(&D.start_mu);
        rc = 0;
        for (unsigned i = 1; i < n; i++)
            if (D.workers[i].start_rc < 0)
                rc = D.workers[i].start_rc;
        if (rc < 0) {
            for (unsigned i = 1; i < n; i++)
                level_raise(&D.workers[i].stop, 2, 0);
            goto out;
        }
    }

    for (size_t i = 0; i < D.opt.nlisten; i++) {
        char name[TIDE_ADDR_STRLEN];
        if (tide_addr_format(&D.addr[i], name, sizeof name) < 0)
            snprintf(name, sizeof name, "%s", D.opt.listen[i]);
        printf("echod: listening on %s\n", name);
    }
    fflush(stdout);
    logmsg(ECHOD_NORMAL, "tide %s, %u thread%s, buffers of %zu bytes",
           tide_version(), n, n == 1 ? "" : "s", D.opt.buffer_size);

    worker_run(w0, &sig);
    status = 0;

out:
    for (unsigned i = 1; i < n; i++)
        if (D.workers[i].thread_started)
            pthread_join(D.workers[i].thread, NULL);
    if (sig_ready) {
        tide_signal_free(&sig.intr);
        tide_signal_free(&sig.term);
        tide_signal_free(&sig.usr1);
    }
    worker_finish(w0);
    for (size_t i = 0; i < D.opt.nlisten; i++)
        if (D.unix_bound[i]) {
            const struct sockaddr_un *sun =
                (const struct sockaddr_un *)(const void *)&D.addr[i].ss;
            unlink(sun->sun_path);
        }
    if (status == 0)
        logmsg(ECHOD_NORMAL, "stopped");
    for (unsigned i = 0; i < n; i++) {
        tide_notify_free(&D.workers[i].stop.raised);
        tide_notify_free(&D.workers[i].closed);
    }
    tide_notify_free(&D.finished.raised);
    if (D.opt.max_conns != 0)
        tide_semaphore_free(&D.slots);
    free(D.workers);
    return status;
}
