/*
 * src/net/listener.c: listening sockets and the accept future, shared by
 * TCP and Unix listeners.
 *
 * Running out of descriptors. When accept4 fails with EMFILE (or ENFILE,
 * ENOBUFS, ENOMEM) the connection stays queued in the kernel, so the
 * socket stays readable: waiting for readability again would wake at once
 * and spin at 100% CPU until a descriptor frees up (a classic of event
 * loops; libuv reserves a spare descriptor, nginx disables accept events
 * for a while). tide does what nginx does: the listener pauses. Its
 * readiness is not waited on during the pause; accepts park on the
 * listener, and a timer embedded in the listener wakes them when the pause
 * ends. The pause doubles from 1 ms to 1 s while the condition lasts, and
 * resets after a successful accept. The timer is armed only while someone
 * is parked, so an idle paused listener costs nothing and leaves no event
 * behind.
 *
 * Lifetime. Every accept future is linked into its listener's list from
 * init to drop, so freeing the listener can tell each one (they complete
 * with -EBADF), wherever it is: waiting on the descriptor, parked, or
 * woken and not yet polled.
 */
#include <string.h>

#include "net/internal.h"
#include "tide/time.h"

/* ------------------------------------------------------------------------
 * The pause timer
 * ------------------------------------------------------------------------ */

static void timer_disarm(struct tide__listener *l) {
    if (!l->timer_armed)
        return;
    /* After tide_exec_free the base may be gone (it deleted the event
     * itself); touch nothing then. */
    if (l->reg.exec != NULL) {
        event_del(&l->timer);
        tide__armed(l->reg.exec, -1);
    }
    l->timer_armed = false;
}

/* Wake every parked accept; they look at the clock when polled. */
static void wake_parked(struct tide__listener *l) {
    for (tide__accept_t *a = l->accepts; a != NULL; a = a->next) {
        if (!a->parked)
            continue;
        a->parked = false;
        l->nparked--;
        tide_waker_wake(&a->node.waker);
    }
}

static void timer_cb(evutil_socket_t fd, short what, void *arg) {
    struct tide__listener *l = arg;
    (void)fd;
    (void)what;
    l->timer_armed = false;
    if (l->reg.exec != NULL)
        tide__armed(l->reg.exec, -1);
    /* The loop's clock may be coarser than tide_now(): the pause ends when
     * the timer says so, not a few hundred microseconds later. */
    l->paused = false;
    l->stats.paused = false;
    wake_parked(l);
}

static void timer_arm(struct tide__listener *l) {
    if (l->timer_armed || l->reg.exec == NULL)
        return;
    uint64_t now = tide_now();
    uint64_t left = l->resume_at > now ? l->resume_at - now : 0;
    struct timeval tv = {(time_t)(left / TIDE_USEC_PER_SEC),
                         (suseconds_t)(left % TIDE_USEC_PER_SEC)};
    if (event_add(&l->timer, &tv) == 0) {
        l->timer_armed = true;
        tide__armed(l->reg.exec, 1);
    } else {
        /* libevent refused: end the pause rather than park forever. */
        l->paused = false;
        l->stats.paused = false;
    }
}

/* ------------------------------------------------------------------------
 * Listener
 * ------------------------------------------------------------------------ */

int tide__listener_init(struct tide__listener *l, tide_exec_t *ex, int fd) {
    memset(l, 0, sizeof *l);
    int rc = tide__fd_init(&l->reg, ex, fd);
    if (rc < 0)
        return rc;
    l->reg.embedded = true;
    if (evtimer_assign(&l->timer, ex->base, timer_cb, l) != 0) {
        tide__fd_deinit(&l->reg);
        return -EIO;
    }
    tide__ev_prio(ex, &l->timer);
    return 0;
}

void tide__listener_deinit(struct tide__listener *l) {
    timer_disarm(l);
    /* Tell every live accept that the listener is gone, then wake them:
     * tide__fd_deinit wakes those waiting on the descriptor, the parked
     * ones are woken here; the rest will see it when next polled. */
    while (l->accepts != NULL) {
        tide__accept_t *a = l->accepts;
        l->accepts = a->next;
        a->prev = a->next = NULL;
        a->listener = NULL;
        if (a->parked) {
            a->parked = false;
            tide_waker_wake(&a->node.waker);
        }
    }
    l->nparked = 0;
    int fd = l->reg.fd;
    tide__fd_deinit(&l->reg);
    tide__sys_close(fd);
}

void tide__listener_stats(const struct tide__listener *l,
                          tide_listener_stats_t *out) {
    if (out == NULL)
        return;
    if (l == NULL) {
        memset(out, 0, sizeof *out);
        return;
    }
    *out = l->stats;
}

/* ------------------------------------------------------------------------
 * Accept
 * ------------------------------------------------------------------------ */

void tide__accept_init(tide__accept_t *a, struct tide__listener *l) {
    memset(a, 0, sizeof *a);
    a->listener = l;
    if (l == NULL)
        return;
    a->next = l->accepts;
    if (l->accepts != NULL)
        l->accepts->prev = a;
    l->accepts = a;
}

static void unpark(struct tide__listener *l, tide__accept_t *a) {
    if (!a->parked)
        return;
    a->parked = false;
    l->nparked--;
    if (l->nparked == 0)
        timer_disarm(l);
}

/* Wait for the end of the pause. The node is not on the descriptor's list
 * (a parked accept must not make the loop watch the listener). */
static tide_poll_t park(struct tide__listener *l, tide__accept_t *a,
                        tide_cx_t *cx) {
    if (tide_waiter_is_waiting(&a->node)) /* also drops its waker */
        tide_waiter_leave(&a->node, TIDE_WAITQ_CANCELLED);
    tide_waker_register(&a->node.waker, cx->waker);
    if (!a->parked) {
        a->parked = true;
        l->nparked++;
    }
    timer_arm(l);
    if (!l->paused) /* the timer could not be armed */
        tide_waker_wake_by_ref(cx->waker);
    return TIDE_PENDING;
}

/* accept4's errors that concern one connection, not the listener: the
 * peer aborted it, a firewall refused it, or (Linux passes the new
 * socket's pending network errors to accept) the network failed under it.
 * The next connection may be fine: skip it. */
static bool skippable(int e) {
    switch (e) {
    case ECONNABORTED:
    case EPROTO:
    case EPERM:
    case ENETDOWN:
    case ENOPROTOOPT:
    case EHOSTDOWN:
#ifdef ENONET
    case ENONET:
#endif
    case EHOSTUNREACH:
    case ENETUNREACH:
        return true;
    default:
        return false;
    }
}

/* Out of a resource that other connections hold: pause, don't spin. */
static bool exhausted(int e) {
    return e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM;
}

tide_poll_t tide__accept_poll(tide__accept_t *a, tide_cx_t *cx, int *res,
                              tide_addr_t *peer) {
    struct tide__listener *l = a->listener;
    if (tide_waiter_error(&a->node) || l == NULL || l->reg.exec == NULL) {
        *res = -EBADF;
        return TIDE_READY;
    }
    if (l->paused) {
        if (tide_now() < l->resume_at)
            return park(l, a, cx);
        l->paused = false;
        l->stats.paused = false;
    }
    unpark(l, a);
    for (;;) {
        tide_fd_guard_t g;
        if (tide__fd_poll_ready(&l->reg, cx, TIDE_READABLE, &a->node, &g) ==
            TIDE_PENDING)
            return TIDE_PENDING;
        int fd = tide__sys_accept(l->reg.fd, peer);
        if (fd >= 0) {
            l->delay = 0;
            l->stats.backoff_usec = 0;
            l->stats.accepted++;
            *res = fd;
            return TIDE_READY;
        }
        int e = -fd;
        if (e == EAGAIN || e == EWOULDBLOCK) {
            tide__fd_clear(&l->reg, g.tick, TIDE_READABLE);
            continue;
        }
        if (skippable(e)) {
            /* Each pass spends budget in tide__fd_poll_ready, so a flood
             * of aborted connections still lets other tasks run. */
            l->stats.skipped++;
            continue;
        }
        if (exhausted(e)) {
            l->delay = tide__backoff_next(l->delay, TIDE__BACKOFF_MAX_USEC);
            l->resume_at = tide_now() + l->delay;
            l->paused = true;
            l->stats.paused = true;
            l->stats.backoffs++;
            l->stats.backoff_usec = l->delay;
            return park(l, a, cx);
        }
        peer->len = 0;
        *res = -e;
        return TIDE_READY;
    }
}

void tide__accept_drop(tide__accept_t *a) {
    struct tide__listener *l = a->listener;
    if (l == NULL) {
        tide_waker_drop(&a->node.waker);
        return;
    }
    if (a->parked) {
        unpark(l, a);
        tide_waker_drop(&a->node.waker);
    } else {
        tide_waiter_leave(&a->node, TIDE_WAITQ_CANCELLED);
    }
    if (a->prev != NULL)
        a->prev->next = a->next;
    else
        l->accepts = a->next;
    if (a->next != NULL)
        a->next->prev = a->prev;
    a->prev = a->next = NULL;
    a->listener = NULL;
}
