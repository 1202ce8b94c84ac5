/*
 * src/core/waitq.c: waiters and wait queues (see tide/core.h).
 *
 * A doubly linked list whose nodes live in the waiting futures. A wake
 * leaves every waiter on the list (a waiter leaves only when its future
 * completes or is dropped), so that a queue closed between a wake and the
 * next poll still reaches it: that is what makes freeing a stream under a
 * pending future safe.
 */
#include "core/internal.h"

void tide_waitq_init(tide_waitq_t *q,
                     void (*on_empty)(tide_waitq_t *q, tide_waitq_left_t why)) {
    q->head = q->tail = NULL;
    q->n = 0;
    q->on_empty = on_empty;
}

static void unlink_from(tide_waitq_t *q, tide_waiter_t *w) {
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        q->head = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    else
        q->tail = w->prev;
    w->prev = w->next = NULL;
    w->q = NULL;
    q->n--;
}

void tide_waiter_wait(tide_waiter_t *w, tide_waitq_t *q,
                      const tide_waker_t *waker) {
    if (w->q != q) {
        if (w->q != NULL)
            tide_waiter_leave(w, TIDE_WAITQ_DONE);
        w->next = NULL;
        w->prev = q->tail;
        if (q->tail != NULL)
            q->tail->next = w;
        else
            q->head = w;
        q->tail = w;
        w->q = q;
        q->n++;
    }
    tide_waker_register(&w->waker, waker);
}

void tide_waiter_leave(tide_waiter_t *w, tide_waitq_left_t why) {
    tide_waitq_t *q = w->q;
    tide_waker_drop(&w->waker);
    if (q == NULL)
        return;
    unlink_from(q, w);
    if (q->n == 0 && q->on_empty != NULL)
        q->on_empty(q, why);
}

void tide_waitq_wake_all(tide_waitq_t *q) {
    /* A wake may run code (a custom waker) but never unlinks: tide's task
     * wakers only queue the task. */
    for (tide_waiter_t *w = q->head; w != NULL; w = w->next)
        tide_waker_wake_by_ref(&w->waker);
}

void tide_waitq_close(tide_waitq_t *q, int err) {
    TIDE__CHECK(err < 0);
    while (q->head != NULL) {
        tide_waiter_t *w = q->head;
        unlink_from(q, w);
        w->err = err;
        tide_waker_wake(&w->waker);
    }
}
