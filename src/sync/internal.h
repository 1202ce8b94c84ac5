/*
 * src/sync/internal.h: what the sync layer's files share. Never installed.
 *
 * Every waiting future embeds a tide__snode_t. Its state moves, under the
 * object's lock, from IDLE (not yet polled) to QUEUED (on the object's
 * waiters list, holding its task's waker), then to GRANTED (moved to the
 * granted list by whoever completed the wait, which took the waker out
 * to wake it after unlocking) or CLOSED (off every list: the object was
 * closed or freed under it), and to FINISHED when the future completes.
 * The future reads the state first, atomically and without the lock: a
 * CLOSED node completes with -EPIPE touching nothing of the object's, so a
 * future may outlive the object it waited on. Granted nodes stay on a
 * list until their future sees them, so that freeing the object reaches
 * them too.
 */
#ifndef TIDE_SYNC_INTERNAL_H
#define TIDE_SYNC_INTERNAL_H

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "tide/sync.h"

enum {
    SNODE_IDLE = 0,
    SNODE_QUEUED,
    SNODE_GRANTED,     /* the wait is complete (notify_one, permits, slot) */
    SNODE_GRANTED_ALL, /* notify only: by notify_waiters (not passed on) */
    SNODE_CLOSED,
    SNODE_FINISHED,
};

static inline unsigned snode_state(const tide__snode_t *n) {
    return __atomic_load_n(&n->state, __ATOMIC_ACQUIRE);
}

static inline void snode_set(tide__snode_t *n, unsigned st) {
    __atomic_store_n(&n->state, st, __ATOMIC_RELEASE);
}

static inline void snode_init(tide__snode_t *n) {
    n->link.prev = n->link.next = NULL;
    n->waker = TIDE_WAKER_EMPTY;
    n->state = SNODE_IDLE;
}

/* Circular lists around a sentinel. */
static inline void slist_init(tide__slink_t *l) { l->prev = l->next = l; }

static inline bool slist_empty(const tide__slink_t *l) { return l->next == l; }

static inline void slist_push(tide__slink_t *l, tide__slink_t *x) {
    x->prev = l->prev;
    x->next = l;
    l->prev->next = x;
    l->prev = x;
}

static inline void slist_unlink(tide__slink_t *x) {
    x->prev->next = x->next;
    x->next->prev = x->prev;
    x->prev = x->next = NULL;
}

static inline tide__snode_t *snode_of(tide__slink_t *l) {
    return TIDE_CONTAINER_OF(l, tide__snode_t, link);
}

/* Register the task's waker in a queued node (under the lock): the common
 * case, the same task polling again, costs a comparison. */
static inline void snode_register(tide__snode_t *n, const tide_waker_t *w) {
    if (n->waker.target != w->target) {
        tide_waker_drop(&n->waker);
        n->waker = tide_waker_clone(w);
    }
}

/* Wakers taken out under a lock, to wake once it is released (a wake may
 * take the executor's remote lock, and must never run under ours). When
 * the list is full, the caller unlocks, wakes, relocks and goes on. */
#define WAKE_LIST_MAX 16
typedef struct wake_list {
    unsigned n;
    tide_waker_t w[WAKE_LIST_MAX];
} wake_list_t;

static inline void wake_list_take(wake_list_t *wl, tide__snode_t *n) {
    wl->w[wl->n++] = n->waker; /* moved: the node holds no waker now */
    n->waker = TIDE_WAKER_EMPTY;
}

static inline bool wake_list_full(const wake_list_t *wl) {
    return wl->n == WAKE_LIST_MAX;
}

static inline void wake_list_run(wake_list_t *wl) {
    for (unsigned i = 0; i < wl->n; i++)
        tide_waker_wake(&wl->w[i]);
    wl->n = 0;
}

/* Mutexes: failures here mean a corrupted or destroyed object. */
static inline void sync_lock(pthread_mutex_t *m) {
    TIDE__CHECK(pthread_mutex_lock(m) == 0);
}

static inline void sync_unlock(pthread_mutex_t *m) {
    TIDE__CHECK(pthread_mutex_unlock(m) == 0);
}

/* Close every node on list l with SNODE_CLOSED, taking their wakers to
 * wake after m is released (and relocking when wl fills up). Returns how
 * many were closed. */
static inline size_t slist_close_all(pthread_mutex_t *m, tide__slink_t *l,
                                     wake_list_t *wl) {
    size_t k = 0;
    while (!slist_empty(l)) {
        tide__snode_t *n = snode_of(l->next);
        slist_unlink(&n->link);
        wake_list_take(wl, n);
        snode_set(n, SNODE_CLOSED);
        k++;
        if (wake_list_full(wl)) {
            sync_unlock(m);
            wake_list_run(wl);
            sync_lock(m);
        }
    }
    return k;
}

#endif
