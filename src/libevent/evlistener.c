/*
 * src/libevent/evlistener.c: an evconnlistener as a source of accept
 * futures.
 *
 * libevent's listener accepts in its own callback, which is ours: each
 * descriptor goes into a ring of TIDE_EVL_QUEUE slots (in the listener,
 * allocated once) and the accept futures waiting on the listener's queue
 * are woken. A full ring disables the evconnlistener (libevent 2.1's
 * accept loop stops when its callback disabled it), so connections wait
 * in the kernel's backlog rather than being accepted and dropped; the
 * accept that frees a slot enables it again. Should a descriptor arrive
 * all the same with the ring full (a libevent whose loop does not check),
 * it is closed and counted in `dropped`: the peer sees a reset, nothing
 * leaks.
 */
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "net/internal.h"
#include "tide/libevent.h"

struct slot {
    int fd;
    tide_addr_t peer;
};

struct tide_evlistener {
    tide_waitq_t q; /* accepts waiting */
    struct evconnlistener *lev;
    tide_exec_t *ex;
    unsigned flags;
    int err;     /* an error the evconnlistener reported, to answer once */
    bool paused; /* we disabled it (ring full, or an error) */
    unsigned head, count;
    unsigned long dropped;
    struct slot ring[TIDE_EVL_QUEUE];
};

static void pause_lev(struct tide_evlistener *l) {
    if (!l->paused) {
        evconnlistener_disable(l->lev);
        l->paused = true;
    }
}

static void resume_lev(struct tide_evlistener *l) {
    if (l->paused && l->err == 0 && l->count < TIDE_EVL_QUEUE &&
        evconnlistener_enable(l->lev) == 0)
        l->paused = false;
}

static void accepted(struct evconnlistener *lev, evutil_socket_t fd,
                     struct sockaddr *sa, int socklen, void *arg) {
    (void)lev;
    struct tide_evlistener *l = arg;
    if (l->count == TIDE_EVL_QUEUE) {
        close(fd);
        l->dropped++;
        return;
    }
    struct slot *sl = &l->ring[(l->head + l->count) % TIDE_EVL_QUEUE];
    sl->fd = fd;
    memset(&sl->peer, 0, sizeof sl->peer);
    if (sa != NULL && socklen > 0 && (size_t)socklen <= sizeof sl->peer.ss) {
        memcpy(&sl->peer.ss, sa, (size_t)socklen);
        sl->peer.len = (socklen_t)socklen;
    }
    if (++l->count == TIDE_EVL_QUEUE)
        pause_lev(l);
    tide_waitq_wake_all(&l->q);
}

static void failed(struct evconnlistener *lev, void *arg) {
    (void)lev;
    struct tide_evlistener *l = arg;
    int e = EVUTIL_SOCKET_ERROR();
    l->err = e > 0 ? -e : -EIO;
    pause_lev(l); /* or libevent calls us again at once, for EMFILE */
    tide_waitq_wake_all(&l->q);
}

int tide_evlistener_new(tide_evlistener_t **out, tide_exec_t *ex,
                        struct evconnlistener *lev, unsigned flags) {
    if (out == NULL || ex == NULL || lev == NULL || (flags & ~TIDE_EVL_OWN))
        return -EINVAL;
    if (evconnlistener_get_base(lev) != tide_exec_base(ex))
        return -EINVAL;
    struct tide_evlistener *l = tide__calloc(1, sizeof *l);
    if (l == NULL)
        return -ENOMEM;
    tide_waitq_init(&l->q, NULL);
    l->lev = lev;
    l->ex = ex;
    l->flags = flags;
    if (evconnlistener_enable(lev) < 0) {
        tide__free(l);
        return -EIO;
    }
    evconnlistener_set_cb(lev, accepted, l);
    evconnlistener_set_error_cb(lev, failed);
    *out = l;
    return 0;
}

void tide_evlistener_free(tide_evlistener_t *l) {
    if (l == NULL)
        return;
    tide_waitq_close(&l->q, -EBADF);
    /* Disabled first: with no callback, libevent's listener would accept
     * and close. */
    evconnlistener_disable(l->lev);
    evconnlistener_set_error_cb(l->lev, NULL);
    evconnlistener_set_cb(l->lev, NULL, NULL);
    if (l->flags & TIDE_EVL_OWN)
        evconnlistener_free(l->lev);
    for (; l->count > 0; l->count--) {
        close(l->ring[l->head].fd);
        l->head = (l->head + 1) % TIDE_EVL_QUEUE;
    }
    tide__free(l);
}

struct evconnlistener *tide_evlistener_lev(tide_evlistener_t *l) {
    return l->lev;
}

/* accept --------------------------------------------------------------- */

static tide_poll_t evaccept_poll(tide_future_t *f, tide_cx_t *cx) {
    tide_evaccept_t *op = TIDE_CONTAINER_OF(f, tide_evaccept_t, fut);
    int e = tide_waiter_error(&op->w);
    if (e != 0 || op->l == NULL) {
        tide_waiter_leave(&op->w, TIDE_WAITQ_DONE);
        f->result = e != 0 ? e : -EINVAL;
        return TIDE_READY;
    }
    struct tide_evlistener *l = op->l;
    if (l->count == 0) {
        if (l->err != 0) {
            f->result = l->err;
            l->err = 0;
            resume_lev(l);
            tide_waiter_leave(&op->w, TIDE_WAITQ_DONE);
            return TIDE_READY;
        }
        tide_waiter_wait(&op->w, &l->q, cx->waker);
        return TIDE_PENDING;
    }
    tide_waiter_leave(&op->w, TIDE_WAITQ_DONE);
    struct slot *sl = &l->ring[l->head];
    l->head = (l->head + 1) % TIDE_EVL_QUEUE;
    l->count--;
    int fd = sl->fd;
    op->peer = sl->peer;
    resume_lev(l);
    if (!op->want_conn) {
        op->fd = fd;
        f->result = fd;
        return TIDE_READY;
    }
    struct tide__sock *s;
    int rc = tide__sock_new(&s, l->ex, fd);
    if (rc < 0) {
        close(fd); /* accepted, but it cannot be carried */
        f->result = rc;
        return TIDE_READY;
    }
    op->conn = (tide_conn_t *)(void *)s;
    f->result = 0;
    return TIDE_READY;
}

static void evaccept_drop(tide_future_t *f) {
    tide_evaccept_t *op = TIDE_CONTAINER_OF(f, tide_evaccept_t, fut);
    tide_waiter_leave(&op->w, TIDE_WAITQ_CANCELLED);
}

static const tide_future_vtable_t evaccept_vt = {evaccept_poll, evaccept_drop};

static tide_future_t *evaccept_init(tide_evaccept_t *op, tide_evlistener_t *l,
                                    bool want_conn) {
    op->fd = -1;
    op->conn = NULL;
    memset(&op->peer, 0, sizeof op->peer);
    op->l = l;
    op->want_conn = want_conn;
    tide_waiter_init(&op->w);
    return tide_future_init(&op->fut, &evaccept_vt);
}

tide_future_t *tide_evlistener_accept(tide_evaccept_t *op,
                                      tide_evlistener_t *l) {
    return evaccept_init(op, l, false);
}

tide_future_t *tide_evlistener_accept_conn(tide_evaccept_t *op,
                                           tide_evlistener_t *l) {
    return evaccept_init(op, l, true);
}
