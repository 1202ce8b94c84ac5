/*
 * src/reactor/fd.c: registrations, readiness, and the futures that wait
 * for it.
 *
 * Arming. Each direction has one libevent event. It is added when a
 * waiter finds the direction not ready (after an EAGAIN cleared it), and
 * it is logically one-shot: when it fires, everybody waiting is woken and
 * must wait again to hear more. Physically it is EV_PERSIST and stays in
 * the epoll set after firing, because the task it woke nearly always
 * reads, hits EAGAIN and waits again within the same executor turn; a
 * truly one-shot event would cost an epoll_ctl(DEL) and an epoll_ctl(ADD)
 * per message. Who stopped waiting is found out lazily, as mio and Tokio
 * do (they never remove a registration's interest at all): a waiter that
 * completes tells nobody, and an event that fires with nobody to wake is
 * removed in its callback, unless tasks are still queued: then the
 * executor ran out of budget, the task this event woke last time through
 * a poll_*_ready slot may be among them, not yet run (its slot is empty
 * only because it was woken), and removing the event would cost a DEL
 * now and an ADD when it runs. So an event nobody waits on any more lasts
 * until it next fires (it never spins: see below) or its registration
 * is freed. (An earlier design swept, at the end of every turn, each
 * registration whose event had fired, to remove such events at once:
 * about 25 instructions per message, to save one callback per abandoned
 * direction.) The last waiter
 * dropped while pending disarms at once (the queue's on_abandoned): a
 * cancelled operation leaves nothing armed.
 *
 * The read event is level-triggered, the write event edge-triggered
 * where the backend can (epoll: EV_ET). The readiness cache remembers
 * what an event said until an EAGAIN or a short read clears it, so an
 * edge would be enough if the backend said everything: but libevent 2.1's
 * epoll backend turns EPOLLERR and EPOLLHUP into plain EV_READ|EV_WRITE,
 * without EV_CLOSED, so a TCP peer's last data and its reset arriving in
 * one edge looked like data alone; the short read that returned it
 * cleared readiness, and no edge came for the reset (t/fault/
 * check_soak_tls found it). Level-triggered, the backend reports what is
 * still there at its next poll: the reset, the hang-up behind a pipe's
 * last bytes, a Unix stream's data behind a message carrying descriptors.
 * Every stream may then clear on a short read. The cost, compared with an
 * edge, is a report of a descriptor whose woken task has not read yet:
 * while tasks are still queued (a thousand busy connections, more woken
 * than one turn's budget) each poll of the backend repeats it, and the
 * callback returns at once (on_event: nothing new, nobody woken twice);
 * when no task is queued, nobody woken is still to run, so whoever reads
 * next finds the direction ready in the cache and the event is removed,
 * rather than spin. Writes keep the edge: a full send buffer is the only
 * wait, and whatever ends it (space, a reset, a hang-up) wakes the socket
 * anew, which is an edge. Edges are never lost: one that arrives between
 * a write and the clear that follows it fires later and bumps the tick,
 * which voids the clear; and adding an epoll registration reports
 * readiness that is already there. (Backends without edge triggering,
 * poll and select, are level-triggered both ways: correct, with extra
 * callbacks; an event nobody waits on is removed at its first.)
 *
 * Stale events. libevent never runs the callback of an event after
 * event_del, and registrations are single-threaded, so a registration
 * freed (and its descriptor number reused) can't see its predecessor's
 * events; the tick plays the role of nginx's instance bit for guards.
 */
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "reactor/internal.h"

static const unsigned dir_mask[2] = {
    TIDE_READABLE | TIDE_READ_CLOSED,
    TIDE_WRITABLE | TIDE_WRITE_CLOSED,
};
static const unsigned dir_interest[2] = {TIDE_READABLE, TIDE_WRITABLE};

static unsigned ready_for(const struct tide_fd *reg, unsigned interest) {
    unsigned m = 0;
    if (interest & TIDE_READABLE)
        m |= dir_mask[TIDE__RD];
    if (interest & TIDE_WRITABLE)
        m |= dir_mask[TIDE__WR];
    return reg->ready & m;
}

/* ------------------------------------------------------------------------
 * Arming
 * ------------------------------------------------------------------------ */

static void write_cb(evutil_socket_t fd, short what, void *arg);

/* The write direction's event, made the first time it is needed (one
 * allocation per registration at most, never per operation). */
static struct event *write_event(struct tide_fd *reg) {
    if (reg->wev == NULL) {
        struct event *ev = tide__malloc(event_get_struct_event_size());
        if (ev == NULL)
            return NULL;
        if (event_assign(ev, reg->exec->base, reg->fd, reg->wflags, write_cb,
                         reg) != 0) {
            tide__free(ev);
            return NULL;
        }
        tide__ev_prio(reg->exec, ev);
        reg->wev = ev;
    }
    return reg->wev;
}

/* Direction d's event (NULL: the write event, not made yet). */
static struct event *dir_event(struct tide_fd *reg, int d) {
    return d == TIDE__RD ? &reg->rev : reg->wev;
}

static void arm(struct tide_fd *reg, int d) {
    struct tide__dir *dir = &reg->dir[d];
    if ((reg->armed & (1u << d)) || reg->exec == NULL)
        return;
    struct event *ev = d == TIDE__WR ? write_event(reg) : &reg->rev;
    if (ev != NULL && event_add(ev, NULL) == 0) {
        reg->armed |= (unsigned char)(1u << d);
        tide__armed(reg->exec, 1);
        reg->exec->stats.io_arms++;
    } else {
        /* No memory for the event, or libevent refused it (ENOMEM, or a
         * descriptor closed behind our back). Report the direction ready
         * so the caller's next system call surfaces the real error (or
         * tries the event again) instead of waiting forever. */
        reg->ready |= dir_interest[d];
        reg->tick++;
        tide_waitq_wake_all(&dir->q);
    }
}

static void disarm(struct tide_fd *reg, int d) {
    if (!(reg->armed & (1u << d)))
        return;
    event_del(dir_event(reg, d));
    reg->armed &= (unsigned char)~(1u << d);
    if (reg->exec != NULL) {
        tide__armed(reg->exec, -1);
        reg->exec->stats.io_disarms++;
    }
}

static void disarm_if_unwanted(struct tide_fd *reg, int d) {
    if ((reg->armed & (1u << d)) && tide_waitq_is_empty(&reg->dir[d].q) &&
        tide_waker_is_empty(&reg->dir[d].slot))
        disarm(reg, d);
}

/* ------------------------------------------------------------------------
 * Waiters
 * ------------------------------------------------------------------------ */

/* A direction's last waiter was dropped while pending: nobody waits any
 * more, so stop watching at once. (A waiter that completes tells nobody:
 * see the top.) One hook per direction, so that the queue finds its
 * registration by its offset alone. */
static void rd_abandoned(tide_waitq_t *q) {
    disarm_if_unwanted(TIDE_CONTAINER_OF(q, struct tide_fd, dir[TIDE__RD].q),
                       TIDE__RD);
}

static void wr_abandoned(tide_waitq_t *q) {
    disarm_if_unwanted(TIDE_CONTAINER_OF(q, struct tide_fd, dir[TIDE__WR].q),
                       TIDE__WR);
}

/* Wake every waiter of direction d. Returns true if anyone was waiting.
 *
 * Woken waiters stay on the queue (their waker too) until they poll READY
 * or are dropped: a registration freed between the wake and that poll
 * must still reach them to say it is gone, or they would read freed
 * memory. The poll_*_ready slot is the exception: as in Tokio, it is one
 * wake-up for the last caller, consumed here. */
static bool wake_dir(struct tide_fd *reg, int d) {
    struct tide__dir *dir = &reg->dir[d];
    bool waiters = !tide_waitq_is_empty(&dir->q);
    bool slot = !tide_waker_is_empty(&dir->slot);
    if (waiters)
        tide_waitq_wake_all(&dir->q);
    if (slot)
        tide_waker_wake(&dir->slot);
    return waiters || slot;
}

static void on_event(struct tide_fd *reg, int d, short what) {
    unsigned bits = 0;
    if (d == TIDE__RD) {
        if (what & EV_READ)
            bits |= TIDE_READABLE;
        if (what & EV_CLOSED)
            bits |= TIDE_READABLE | TIDE_READ_CLOSED;
    } else {
        bits |= TIDE_WRITABLE;
    }
    if (d == TIDE__RD && (reg->ready & bits) == bits) {
        /* The read event is level-triggered (see the top): this is the
         * backend saying again what the cache already holds, because the
         * task it woke has not read yet. Nobody needs waking twice. If
         * every woken task has run (none queued), whoever reads next
         * finds the direction ready without an event: stop it, or the
         * loop would spin on a descriptor nobody reads. */
        if (reg->exec->qhead == NULL)
            disarm(reg, d);
        return;
    }
    reg->ready |= bits;
    reg->tick++;
    if (!wake_dir(reg, d) && reg->exec->qhead == NULL)
        disarm(reg, d); /* nobody listens: stop until someone waits */
}

/* The tasks an event woke run at once, in this callback, when no other
 * event is waiting for its own (tide__exec_enter); otherwise in the
 * executor's turn, after those. The turn may free reg: nothing here
 * touches it after. */
static void read_cb(evutil_socket_t fd, short what, void *arg) {
    struct tide_fd *reg = arg;
    tide_exec_t *ex = reg->exec;
    bool run = tide__exec_enter(ex);
    on_event(reg, TIDE__RD, what);
    if (run)
        tide__exec_leave(ex);
}

static void write_cb(evutil_socket_t fd, short what, void *arg) {
    struct tide_fd *reg = arg;
    tide_exec_t *ex = reg->exec;
    bool run = tide__exec_enter(ex);
    on_event(reg, TIDE__WR, what);
    if (run)
        tide__exec_leave(ex);
}

/* ------------------------------------------------------------------------
 * Registration
 * ------------------------------------------------------------------------ */

static void detach(struct tide_fd *reg);

/* tide_exec_free (the executor's hook): detach what is still registered. */
static void detach_all(tide_exec_t *ex, void *state) {
    struct tide__reactor *r = state;
    for (size_t i = 0; i < r->cap; i++)
        if (r->fds[i] != NULL)
            detach(r->fds[i]);
    tide__free(r->fds);
    tide__free(r);
}

int tide__fd_init(struct tide_fd *reg, tide_exec_t *ex, int fd) {
    if (reg == NULL || ex == NULL)
        return -EINVAL;
    if (ex->closing)
        return -ESHUTDOWN;
    int fl = fcntl(fd, F_GETFL);
    if (fd < 0 || fl < 0)
        return -EBADF;
    if (!(fl & O_NONBLOCK))
        return TIDE_EBLOCKING;
    struct stat st;
    if (fstat(fd, &st) == 0 && (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)))
        return -EPERM;
    struct tide__reactor *rt = tide__reactor_of(ex);
    if (rt == NULL) {
        rt = tide__calloc(1, sizeof *rt);
        if (rt == NULL)
            return -ENOMEM;
        tide__exec_attach(ex, TIDE__EXT_REACTOR, rt, detach_all);
    }
    size_t ufd = (size_t)fd;
    if (ufd < rt->cap && rt->fds[ufd] != NULL)
        return -EEXIST;
    if (ufd >= rt->cap) {
        size_t cap = rt->cap ? rt->cap : 64;
        while (cap <= ufd)
            cap *= 2;
        struct tide_fd **n = tide__realloc(rt->fds, cap * sizeof *n);
        if (n == NULL)
            return -ENOMEM;
        memset(n + rt->cap, 0, (cap - rt->cap) * sizeof *n);
        rt->fds = n;
        rt->cap = cap;
    }

    memset(reg, 0, sizeof *reg);
    reg->exec = ex;
    reg->fd = fd;
    static const tide_waitq_ops_t rd_ops = TIDE_WAITQ_OPS(rd_abandoned);
    static const tide_waitq_ops_t wr_ops = TIDE_WAITQ_OPS(wr_abandoned);
    tide_waitq_init(&reg->dir[TIDE__RD].q, &rd_ops);
    tide_waitq_init(&reg->dir[TIDE__WR].q, &wr_ops);
    /* Optimistic: the first operation is tried, not waited for. */
    reg->ready = TIDE_READABLE | TIDE_WRITABLE;
    int features = event_base_get_features(ex->base);
    short et = (features & EV_FEATURE_ET) ? EV_ET : 0; /* see the top */
    short rflags = EV_READ | EV_PERSIST; /* level-triggered: the top */
    if (features & EV_FEATURE_EARLY_CLOSE)
        rflags |= EV_CLOSED;
    reg->wflags = (short)(EV_WRITE | EV_PERSIST | et);
    if (event_assign(&reg->rev, ex->base, fd, rflags, read_cb, reg) != 0)
        return -EIO;
    tide__ev_prio(ex, &reg->rev);
    rt->fds[ufd] = reg;
    ex->registered++;
    return 0;
}

static void detach(struct tide_fd *reg) {
    tide_exec_t *ex = reg->exec;
    if (ex == NULL)
        return;
    /* Every waiter, whatever it waits on, completes with -EBADF at its
     * next poll, without touching the registration again. */
    for (int d = 0; d < 2; d++) {
        disarm(reg, d);
        if (d == TIDE__WR && reg->wev != NULL) {
            tide__free(reg->wev);
            reg->wev = NULL;
        }
        tide_waitq_close(&reg->dir[d].q, -EBADF);
        /* a poll_*_ready caller holds only a waker: wake it, so that it
         * learns the registration is gone instead of sleeping forever */
        tide_waker_wake(&reg->dir[d].slot);
    }
    tide__reactor_of(ex)->fds[reg->fd] = NULL;
    ex->registered--;
    reg->exec = NULL;
}

void tide__fd_deinit(struct tide_fd *reg) { detach(reg); }

int tide_fd_new(tide_fd_t **out, tide_exec_t *exec, int fd) {
    if (out == NULL)
        return -EINVAL;
    struct tide_fd *reg = tide__malloc(sizeof *reg);
    if (reg == NULL)
        return -ENOMEM;
    int rc = tide__fd_init(reg, exec, fd);
    if (rc < 0) {
        tide__free(reg);
        return rc;
    }
    *out = reg;
    return 0;
}

void tide_fd_free(tide_fd_t *reg) {
    if (reg == NULL)
        return;
    int fd = tide_fd_into_inner(reg);
    if (fd >= 0)
        close(fd);
}

int tide_fd_into_inner(tide_fd_t *reg) {
    /* A registration that belongs to a TCP, Unix, UDP or fdstream object
     * is that object's to release: closing its descriptor here would
     * leave the object to close the same number again later. */
    if (reg == NULL || reg->embedded)
        return -EINVAL;
    int fd = reg->fd;
    detach(reg);
    if (!reg->embedded)
        tide__free(reg);
    return fd;
}

int tide_fd_get(const tide_fd_t *reg) { return reg->fd; }

unsigned tide_fd_readiness(const tide_fd_t *reg) { return reg->ready; }

/* ------------------------------------------------------------------------
 * Readiness
 * ------------------------------------------------------------------------ */

tide_poll_t tide__fd_poll_ready_slow(struct tide_fd *reg, tide_cx_t *cx,
                                     unsigned interest, tide_waiter_t *node,
                                     tide_fd_guard_t *out) {
    if (!tide_cx_coop(cx)) {
        /* On the queue on every path that answers PENDING, this one
         * included, so that freeing the registration always reaches the
         * node: its future then completes with -EBADF instead of reading
         * freed memory. */
        if (node != NULL && reg->exec != NULL)
            tide_waiter_wait(node, tide__fd_q(reg, interest), cx->waker);
        return TIDE_PENDING;
    }
    unsigned r = ready_for(reg, interest);
    if (r != 0 || reg->exec == NULL) {
        if (node != NULL && tide_waiter_is_waiting(node))
            tide_waiter_leave(node, TIDE_WAITQ_DONE);
        if (out != NULL) {
            out->fd = reg;
            out->ready = reg->exec != NULL ? r : interest;
            out->tick = reg->tick;
        }
        return TIDE_READY;
    }
    /* The budget unit was not spent on I/O: give it back. */
    cx->budget++;
    for (int d = 0; d < 2; d++) {
        if (!(interest & dir_interest[d]))
            continue;
        /* before arming: a refused event wakes the queue at once */
        if (node != NULL)
            tide_waiter_wait(node, &reg->dir[d].q, cx->waker);
        arm(reg, d);
    }
    /* arm() may have found the direction ready after all (libevent
     * refused the event): don't sleep on it. */
    if (ready_for(reg, interest) != 0)
        tide_waker_wake_by_ref(cx->waker);
    return TIDE_PENDING;
}

/* A wait of the readiness API answered from the cache: readiness that no
 * event has refreshed since (optimistic after registration, or cached while
 * the read event was swept away) says nothing of a peer that closed
 * meanwhile, because only an armed event hears the hang-up. Ask the kernel
 * then, so that TIDE_READ_CLOSED is reported whenever the peer has closed,
 * not only when a wait happened to be armed when the FIN came. One poll(2)
 * per such wait; none while the event is armed (it reports the hang-up
 * itself), and never on the streams' read path, which learns the end of
 * stream from read() returning 0. */
static void probe_closed(struct tide_fd *reg, unsigned interest) {
    if (!(interest & TIDE_READABLE) || reg->exec == NULL ||
        (reg->ready & (TIDE_READABLE | TIDE_READ_CLOSED)) != TIDE_READABLE ||
        (reg->armed & (1u << TIDE__RD)))
        return;
    struct pollfd p = {.fd = reg->fd, .events = POLLIN | POLLRDHUP};
    int n;
    do
        n = poll(&p, 1, 0);
    while (n < 0 && errno == EINTR);
    /* POLLRDHUP: a socket's peer shut down its write side; POLLHUP: a
     * socket hung up entirely, or a pipe lost its last writer. */
    if (n == 1 && (p.revents & (POLLRDHUP | POLLHUP)))
        reg->ready |= TIDE_READ_CLOSED;
}

static tide_poll_t public_ready(struct tide_fd *reg, tide_cx_t *cx,
                                unsigned interest, tide_fd_guard_t *out) {
    if (tide__fd_poll_ready(reg, cx, interest, NULL, out) == TIDE_PENDING)
        return TIDE_PENDING;
    if (reg->exec != NULL && (out->ready & TIDE_READABLE) &&
        !(out->ready & TIDE_READ_CLOSED)) {
        probe_closed(reg, interest);
        out->ready |= reg->ready & TIDE_READ_CLOSED;
    }
    return TIDE_READY;
}

tide_poll_t tide_fd_poll_read_ready(tide_fd_t *reg, tide_cx_t *cx,
                                    tide_fd_guard_t *out) {
    tide_fd_guard_t g;
    if (out == NULL)
        out = &g;
    if (public_ready(reg, cx, TIDE_READABLE, out) == TIDE_READY)
        return TIDE_READY;
    tide_waker_register(&reg->dir[TIDE__RD].slot, cx->waker);
    return TIDE_PENDING;
}

tide_poll_t tide_fd_poll_write_ready(tide_fd_t *reg, tide_cx_t *cx,
                                     tide_fd_guard_t *out) {
    if (tide__fd_poll_ready(reg, cx, TIDE_WRITABLE, NULL, out) == TIDE_READY)
        return TIDE_READY;
    tide_waker_register(&reg->dir[TIDE__WR].slot, cx->waker);
    return TIDE_PENDING;
}

/* ------------------------------------------------------------------------
 * Guards and try_io
 * ------------------------------------------------------------------------ */

void tide_fd_guard_clear_ready(tide_fd_guard_t *g) {
    tide__fd_clear(g->fd, g->tick, g->ready);
}

void tide_fd_guard_clear_ready_matching(tide_fd_guard_t *g, unsigned ready) {
    tide__fd_clear(g->fd, g->tick, g->ready & ready);
    g->ready &= ~(ready & (TIDE_READABLE | TIDE_WRITABLE));
}

static bool would_block(ssize_t r) { return r == -EAGAIN || r == -EWOULDBLOCK; }

ssize_t tide_fd_guard_try_io(tide_fd_guard_t *g, tide_fd_io_fn fn, void *arg) {
    ssize_t r = fn(g->fd->fd, arg);
    if (would_block(r)) {
        tide_fd_guard_clear_ready(g);
        return -EAGAIN;
    }
    return r;
}

ssize_t tide_fd_try_io(tide_fd_t *reg, unsigned interest, tide_fd_io_fn fn,
                       void *arg) {
    if (interest != TIDE_READABLE && interest != TIDE_WRITABLE)
        return -EINVAL;
    unsigned r = ready_for(reg, interest);
    if (r == 0)
        return -EAGAIN;
    unsigned tick = reg->tick;
    ssize_t n = fn(reg->fd, arg);
    if (would_block(n)) {
        tide__fd_clear(reg, tick, r);
        return -EAGAIN;
    }
    return n;
}

/* ------------------------------------------------------------------------
 * Futures: readable, writable, ready, async_io
 * ------------------------------------------------------------------------ */

static tide_poll_t wait_poll(tide_future_t *f, tide_cx_t *cx) {
    tide_fd_wait_t *w = TIDE_CONTAINER_OF(f, tide_fd_wait_t, fut);
    if (tide_waiter_error(&w->node[0]) || tide_waiter_error(&w->node[1]) ||
        w->reg == NULL || w->reg->exec == NULL) {
        /* freed, or detached by tide_exec_free */
        f->result = -EBADF;
        return TIDE_READY;
    }
    if (w->interest == 0) {
        f->result = -EINVAL;
        return TIDE_READY;
    }
    struct tide_fd *reg = w->reg;
    if (public_ready(reg, cx, w->interest, &w->guard) == TIDE_READY) {
        for (int d = 0; d < 2; d++)
            if (tide_waiter_is_waiting(&w->node[d]))
                tide_waiter_leave(&w->node[d], TIDE_WAITQ_DONE);
        f->result = 0;
        return TIDE_READY;
    }
    for (int d = 0; d < 2; d++)
        if (w->interest & dir_interest[d])
            tide_waiter_wait(&w->node[d], &reg->dir[d].q, cx->waker);
    return TIDE_PENDING;
}

static void wait_drop(tide_future_t *f) {
    tide_fd_wait_t *w = TIDE_CONTAINER_OF(f, tide_fd_wait_t, fut);
    tide_waiter_leave(&w->node[0], TIDE_WAITQ_CANCELLED);
    tide_waiter_leave(&w->node[1], TIDE_WAITQ_CANCELLED);
}

static const tide_future_vtable_t wait_vt = {wait_poll, wait_drop};

tide_future_t *tide_fd_ready(tide_fd_wait_t *w, tide_fd_t *reg,
                             unsigned interest) {
    w->reg = reg;
    tide_waiter_init(&w->node[0]);
    tide_waiter_init(&w->node[1]);
    w->interest = interest & (TIDE_READABLE | TIDE_WRITABLE);
    w->guard = (tide_fd_guard_t){reg, 0, 0};
    return tide_future_init(&w->fut, &wait_vt);
}

tide_future_t *tide_fd_readable(tide_fd_wait_t *w, tide_fd_t *reg) {
    return tide_fd_ready(w, reg, TIDE_READABLE);
}

tide_future_t *tide_fd_writable(tide_fd_wait_t *w, tide_fd_t *reg) {
    return tide_fd_ready(w, reg, TIDE_WRITABLE);
}

/* async_io waits with a node too, so that freeing the registration under
 * it is safe (it completes with -EBADF) and dropping it disarms. */
static tide_poll_t async_io_poll(tide_future_t *f, tide_cx_t *cx) {
    tide_fd_io_t *op = TIDE_CONTAINER_OF(f, tide_fd_io_t, fut);
    if (op->interest != TIDE_READABLE && op->interest != TIDE_WRITABLE) {
        f->result = -EINVAL;
        return TIDE_READY;
    }
    for (;;) {
        struct tide_fd *reg = op->reg;
        if (tide_waiter_error(&op->node) || reg == NULL || reg->exec == NULL) {
            f->result = -EBADF;
            return TIDE_READY;
        }
        tide_fd_guard_t g;
        if (tide__fd_poll_ready(reg, cx, op->interest, &op->node, &g) ==
            TIDE_PENDING)
            return TIDE_PENDING;
        ssize_t r = op->fn(reg->fd, op->arg);
        if (!would_block(r)) {
            f->result = r;
            return TIDE_READY;
        }
        tide__fd_clear(reg, g.tick, g.ready);
    }
}

static void async_io_drop(tide_future_t *f) {
    tide_fd_io_t *op = TIDE_CONTAINER_OF(f, tide_fd_io_t, fut);
    tide_waiter_leave(&op->node, TIDE_WAITQ_CANCELLED);
}

static const tide_future_vtable_t async_io_vt = {async_io_poll, async_io_drop};

tide_future_t *tide_fd_async_io(tide_fd_io_t *op, tide_fd_t *reg,
                                unsigned interest, tide_fd_io_fn fn,
                                void *arg) {
    op->reg = reg;
    tide_waiter_init(&op->node);
    op->interest = interest;
    op->fn = fn;
    op->arg = arg;
    return tide_future_init(&op->fut, &async_io_vt);
}
