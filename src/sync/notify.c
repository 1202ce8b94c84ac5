/*
 * src/sync/notify.c: Tokio's Notify. A mutex guards the waiters (FIFO) and
 * the permit; a woken waiter is moved to the granted list with its waker
 * taken out, and woken after the unlock, so notify_one from another
 * thread never touches a task's state under our lock.
 */
#include "sync/internal.h"

int tide_notify_init(tide_notify_t *n) {
    if (n == NULL)
        return -EINVAL;
    int rc = pthread_mutex_init(&n->lock, NULL);
    if (rc != 0)
        return -rc;
    slist_init(&n->waiters);
    slist_init(&n->granted);
    n->permit = false;
    return 0;
}

/* Under the lock: wake the head waiter, or store the permit. */
static void notify_one_locked(tide_notify_t *n, wake_list_t *wl) {
    if (slist_empty(&n->waiters)) {
        n->permit = true;
        return;
    }
    tide__snode_t *w = snode_of(n->waiters.next);
    slist_unlink(&w->link);
    slist_push(&n->granted, &w->link);
    wake_list_take(wl, w);
    snode_set(w, SNODE_GRANTED);
}

void tide_notify_one(tide_notify_t *n) {
    wake_list_t wl = {0};
    sync_lock(&n->lock);
    notify_one_locked(n, &wl);
    sync_unlock(&n->lock);
    wake_list_run(&wl);
}

void tide_notify_waiters(tide_notify_t *n) {
    wake_list_t wl = {0};
    sync_lock(&n->lock);
    /* only those waiting now: they move to a list of our own first, so
     * that one woken while the lock is released for a wake (its task may
     * run on another thread, complete and wait again) is a later waiter;
     * a node dropped meanwhile unlinks itself from our list, under the
     * lock, as from any other */
    tide__slink_t now;
    slist_init(&now);
    if (!slist_empty(&n->waiters)) {
        now.next = n->waiters.next;
        now.prev = n->waiters.prev;
        now.next->prev = now.prev->next = &now;
        slist_init(&n->waiters);
    }
    while (!slist_empty(&now)) {
        tide__snode_t *w = snode_of(now.next);
        slist_unlink(&w->link);
        slist_push(&n->granted, &w->link);
        wake_list_take(&wl, w);
        snode_set(w, SNODE_GRANTED_ALL);
        if (wake_list_full(&wl)) {
            sync_unlock(&n->lock);
            wake_list_run(&wl);
            sync_lock(&n->lock);
        }
    }
    sync_unlock(&n->lock);
    wake_list_run(&wl);
}

void tide_notify_free(tide_notify_t *n) {
    if (n == NULL)
        return;
    wake_list_t wl = {0};
    sync_lock(&n->lock);
    slist_close_all(&n->lock, &n->waiters, &wl);
    slist_close_all(&n->lock, &n->granted, &wl);
    sync_unlock(&n->lock);
    wake_list_run(&wl);
    pthread_mutex_destroy(&n->lock);
}

static tide_poll_t notified_poll(tide_future_t *f, tide_cx_t *cx) {
    tide_notified_t *op = TIDE_CONTAINER_OF(f, tide_notified_t, fut);
    if (snode_state(&op->node) == SNODE_CLOSED) {
        f->result = -EPIPE; /* n is gone: touch nothing of it */
        return TIDE_READY;
    }
    tide_notify_t *n = op->n;
    sync_lock(&n->lock);
    switch (op->node.state) { /* ours to read under the lock */
    case SNODE_IDLE:
        if (n->permit) {
            n->permit = false;
            break;
        }
        slist_push(&n->waiters, &op->node.link);
        snode_register(&op->node, cx->waker);
        snode_set(&op->node, SNODE_QUEUED);
        sync_unlock(&n->lock);
        return TIDE_PENDING;
    case SNODE_QUEUED:
        snode_register(&op->node, cx->waker);
        sync_unlock(&n->lock);
        return TIDE_PENDING;
    case SNODE_GRANTED:
    case SNODE_GRANTED_ALL:
        slist_unlink(&op->node.link);
        break;
    case SNODE_CLOSED: /* freed while we took the lock: cannot be */
    default:
        TIDE__CHECK(!"notified: bad state");
    }
    snode_set(&op->node, SNODE_FINISHED);
    sync_unlock(&n->lock);
    f->result = 0;
    return TIDE_READY;
}

static void notified_drop(tide_future_t *f) {
    tide_notified_t *op = TIDE_CONTAINER_OF(f, tide_notified_t, fut);
    unsigned st = snode_state(&op->node);
    if (st == SNODE_IDLE || st == SNODE_CLOSED || st == SNODE_FINISHED)
        return; /* on no list, holding no waker */
    tide_notify_t *n = op->n;
    wake_list_t wl = {0};
    tide_waker_t mine = TIDE_WAKER_EMPTY;
    sync_lock(&n->lock);
    st = op->node.state;
    if (st != SNODE_CLOSED) {
        slist_unlink(&op->node.link);
        if (st == SNODE_GRANTED) /* chosen by notify_one: pass it on */
            notify_one_locked(n, &wl);
        mine = op->node.waker;
        op->node.waker = TIDE_WAKER_EMPTY;
        snode_set(&op->node, SNODE_FINISHED);
    }
    sync_unlock(&n->lock);
    tide_waker_drop(&mine);
    wake_list_run(&wl);
}

static const tide_future_vtable_t notified_vt = {notified_poll, notified_drop};

tide_future_t *tide_notified(tide_notified_t *op, tide_notify_t *n) {
    snode_init(&op->node);
    op->n = n;
    return tide_future_init(&op->fut, &notified_vt);
}
