/*
 * src/core/waitq.c: waiters and wait queues (see tide/core.h).
 *
 * A circular doubly linked list whose nodes live in the waiting futures,
 * around a sentinel in the queue; the sentinel's waker carries a vtable of
 * its own, so that a waiter leaving can tell, from its neighbours alone,
 * that it was the last one (and find the queue to tell its owner): no
 * back pointer and no count in the waiter, which is 32 bytes. A wake
 * leaves every waiter on the list (a waiter leaves only when its future
 * completes or is dropped), so that a queue closed between a wake and the
 * next poll still reaches it: that is what makes freeing a stream under a
 * pending future safe.
 */
#include "core/internal.h"

/* The sentinel's waker: never woken, cloned or dropped; only its address
 * matters. */
static void sentinel_bad(const void *data) {
    (void)data;
    TIDE__CHECK(!"a wait queue's sentinel was woken");
}
static tide_waker_t sentinel_clone(const void *data) {
    sentinel_bad(data);
    return TIDE_WAKER_EMPTY;
}
static const tide_waker_vtable_t sentinel_vt = {sentinel_clone, sentinel_bad,
                                                sentinel_bad, sentinel_bad};

static bool is_sentinel(const tide_waiter_t *w) {
    return w->waker.vtable == &sentinel_vt;
}

void tide_waitq_init(tide_waitq_t *q,
                     void (*on_empty)(tide_waitq_t *q, tide_waitq_left_t why)) {
    q->head.prev = q->head.next = &q->head;
    q->head.waker = (tide_waker_t){&sentinel_vt, q};
    q->on_empty = on_empty;
}

size_t tide_waitq_len(const tide_waitq_t *q) {
    size_t n = 0;
    for (const tide_waiter_t *w = q->head.next; w != &q->head; w = w->next)
        n++;
    return n;
}

void tide_waiter_wait(tide_waiter_t *w, tide_waitq_t *q,
                      const tide_waker_t *waker) {
    if (w->prev == NULL) {
        if (w->waker.vtable == NULL)
            w->waker.data = NULL; /* a closed queue's error: waiting anew */
        tide_waiter_t *last = q->head.prev;
        w->prev = last;
        w->next = &q->head;
        last->next = w;
        q->head.prev = w;
    }
    tide_waker_register(&w->waker, waker);
}

void tide_waiter_leave(tide_waiter_t *w, tide_waitq_left_t why) {
    tide_waiter_t *prev = w->prev, *next = w->next;
    if (prev == NULL) {
        tide_waker_drop(&w->waker);
        w->waker.data = NULL; /* and the error, if any */
        return;
    }
    prev->next = next;
    next->prev = prev;
    w->prev = w->next = NULL;
    tide_waker_drop(&w->waker);
    /* The last one out: only the sentinel is left, linked to itself. */
    if (prev == next && is_sentinel(prev)) {
        tide_waitq_t *q = (tide_waitq_t *)(uintptr_t)prev->waker.data;
        if (q->on_empty != NULL)
            q->on_empty(q, why);
    }
}

void tide_waitq_wake_all(tide_waitq_t *q) {
    /* A wake may run code (a custom waker) but never unlinks: tide's task
     * wakers only queue the task. */
    for (tide_waiter_t *w = q->head.next; w != &q->head; w = w->next)
        tide_waker_wake_by_ref(&w->waker);
}

void tide_waitq_close(tide_waitq_t *q, int err) {
    TIDE__CHECK(err < 0);
    while (q->head.next != &q->head) {
        tide_waiter_t *w = q->head.next;
        q->head.next = w->next;
        w->next->prev = &q->head;
        w->prev = w->next = NULL;
        tide_waker_wake(&w->waker); /* leaves it empty */
        w->waker.data = (const void *)(intptr_t)err;
    }
}
