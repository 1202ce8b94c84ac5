/*
 * src/sync/semaphore.c: a fair counting semaphore (Tokio's
 * batch_semaphore, with a mutex).
 *
 * Invariant: while anybody waits, no permit is free. An acquire that
 * finds the queue empty but too few permits takes what there is and
 * waits, at the head, for the rest; one that finds a queue waits behind
 * it with nothing. Permits released go to the head until it has all it
 * asked for (it moves to the granted list and is woken), then to the
 * next; what is left over is free. So a large acquire at the head blocks
 * later small ones until it is served: nobody starves.
 */
#include "sync/internal.h"

static inline tide_semaphore_acquire_t *acq_of(tide__slink_t *l) {
    return TIDE_CONTAINER_OF(snode_of(l), tide_semaphore_acquire_t, node);
}

int tide_semaphore_init(tide_semaphore_t *s, size_t permits) {
    if (s == NULL)
        return -EINVAL;
    if (permits > TIDE_SEMAPHORE_MAX)
        return -EOVERFLOW;
    int rc = pthread_mutex_init(&s->lock, NULL);
    if (rc != 0)
        return -rc;
    s->permits = permits;
    slist_init(&s->waiters);
    slist_init(&s->granted);
    s->closed = false;
    return 0;
}

/* Under the lock: give k permits to the waiters, head first; the rest are
 * free. May release and retake the lock to wake (wl full). */
static void give_locked(tide_semaphore_t *s, size_t k, wake_list_t *wl) {
    while (k > 0 && !slist_empty(&s->waiters)) {
        tide_semaphore_acquire_t *a = acq_of(s->waiters.next);
        size_t need = a->n - a->got;
        size_t give = k < need ? k : need;
        a->got += give;
        k -= give;
        if (a->got < a->n)
            break; /* k is 0 */
        slist_unlink(&a->node.link);
        slist_push(&s->granted, &a->node.link);
        wake_list_take(wl, &a->node);
        snode_set(&a->node, SNODE_GRANTED);
        if (wake_list_full(wl)) {
            /* the k permits left stay in hand meanwhile: counted free,
             * they would let a try_acquire jump the queue */
            sync_unlock(&s->lock);
            wake_list_run(wl);
            sync_lock(&s->lock);
        }
    }
    s->permits += k;
}

int tide_semaphore_release(tide_semaphore_t *s, size_t n) {
    wake_list_t wl = {0};
    sync_lock(&s->lock);
    if (n > TIDE_SEMAPHORE_MAX - s->permits) {
        sync_unlock(&s->lock);
        return -EOVERFLOW;
    }
    give_locked(s, n, &wl);
    sync_unlock(&s->lock);
    wake_list_run(&wl);
    return 0;
}

int tide_semaphore_try_acquire(tide_semaphore_t *s, size_t n) {
    int rc = 0;
    sync_lock(&s->lock);
    if (s->closed)
        rc = -EPIPE;
    else if (n == 0)
        rc = 0;
    else if (!slist_empty(&s->waiters) || s->permits < n)
        rc = -EAGAIN;
    else
        s->permits -= n;
    sync_unlock(&s->lock);
    return rc;
}

size_t tide_semaphore_available(tide_semaphore_t *s) {
    sync_lock(&s->lock);
    size_t n = s->permits;
    sync_unlock(&s->lock);
    return n;
}

/* Under the lock: fail every waiter (their partial permits are free
 * again); with `all`, the granted ones too (the semaphore is going). */
static void close_locked(tide_semaphore_t *s, bool all, wake_list_t *wl) {
    s->closed = true;
    for (tide__slink_t *l = s->waiters.next; l != &s->waiters; l = l->next)
        s->permits += acq_of(l)->got;
    slist_close_all(&s->lock, &s->waiters, wl);
    if (all)
        slist_close_all(&s->lock, &s->granted, wl);
}

void tide_semaphore_close(tide_semaphore_t *s) {
    wake_list_t wl = {0};
    sync_lock(&s->lock);
    close_locked(s, false, &wl);
    sync_unlock(&s->lock);
    wake_list_run(&wl);
}

void tide_semaphore_free(tide_semaphore_t *s) {
    if (s == NULL)
        return;
    wake_list_t wl = {0};
    sync_lock(&s->lock);
    close_locked(s, true, &wl);
    sync_unlock(&s->lock);
    wake_list_run(&wl);
    pthread_mutex_destroy(&s->lock);
}

static tide_poll_t acquire_poll(tide_future_t *f, tide_cx_t *cx) {
    tide_semaphore_acquire_t *a =
        TIDE_CONTAINER_OF(f, tide_semaphore_acquire_t, fut);
    if (snode_state(&a->node) == SNODE_CLOSED) {
        a->got = 0; /* given back by the close */
        f->result = -EPIPE;
        return TIDE_READY;
    }
    if (a->n == 0) {
        f->result = 0;
        return TIDE_READY;
    }
    if (a->n > TIDE_SEMAPHORE_MAX) {
        f->result = -EINVAL;
        return TIDE_READY;
    }
    tide_semaphore_t *s = a->s;
    sync_lock(&s->lock);
    switch (a->node.state) {
    case SNODE_IDLE:
        if (s->closed) {
            sync_unlock(&s->lock);
            f->result = -EPIPE;
            return TIDE_READY;
        }
        if (slist_empty(&s->waiters)) {
            if (s->permits >= a->n) {
                s->permits -= a->n;
                a->got = a->n;
                break;
            }
            a->got = s->permits; /* the head: hold what there is */
            s->permits = 0;
        }
        slist_push(&s->waiters, &a->node.link);
        snode_register(&a->node, cx->waker);
        snode_set(&a->node, SNODE_QUEUED);
        sync_unlock(&s->lock);
        return TIDE_PENDING;
    case SNODE_QUEUED:
        snode_register(&a->node, cx->waker);
        sync_unlock(&s->lock);
        return TIDE_PENDING;
    case SNODE_GRANTED:
        slist_unlink(&a->node.link);
        break;
    default:
        TIDE__CHECK(!"semaphore acquire: bad state");
    }
    snode_set(&a->node, SNODE_FINISHED);
    sync_unlock(&s->lock);
    f->result = 0;
    return TIDE_READY;
}

static void acquire_drop(tide_future_t *f) {
    tide_semaphore_acquire_t *a =
        TIDE_CONTAINER_OF(f, tide_semaphore_acquire_t, fut);
    unsigned st = snode_state(&a->node);
    if (st == SNODE_IDLE || st == SNODE_CLOSED || st == SNODE_FINISHED)
        return; /* on no list; permits, if any, are the caller's */
    tide_semaphore_t *s = a->s;
    wake_list_t wl = {0};
    tide_waker_t mine = TIDE_WAKER_EMPTY;
    sync_lock(&s->lock);
    if (a->node.state != SNODE_CLOSED) {
        slist_unlink(&a->node.link);
        mine = a->node.waker;
        a->node.waker = TIDE_WAKER_EMPTY;
        snode_set(&a->node, SNODE_FINISHED);
        size_t back = a->got; /* partial, or all n if granted */
        a->got = 0;
        /* even with nothing to give back, the next waiter may now be the
         * head: it holds nothing, and no permit is free (the invariant),
         * so there is nothing to do for it until a release */
        give_locked(s, back, &wl);
    }
    sync_unlock(&s->lock);
    tide_waker_drop(&mine);
    wake_list_run(&wl);
}

static const tide_future_vtable_t acquire_vt = {acquire_poll, acquire_drop};

tide_future_t *tide_semaphore_acquire(tide_semaphore_acquire_t *op,
                                      tide_semaphore_t *s, size_t n) {
    snode_init(&op->node);
    op->s = s;
    op->n = n;
    op->got = 0;
    return tide_future_init(&op->fut, &acquire_vt);
}
