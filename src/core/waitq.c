/*
 * src/core/waitq.c: waiters and wait queues (see tide/core.h, where the
 * two operations on every pending I/O path, wait and leave, are inline).
 *
 * A circular doubly linked list whose nodes live in the waiting futures,
 * around a sentinel in the queue. Every waiter on a list holds a waker;
 * the sentinel's is empty, and the sentinel is the queue's first member,
 * so that a waiter leaving can tell, from its neighbours alone, that it
 * was the last one (and find the queue to tell its owner): no back
 * pointer and no count in the waiter, which is 24 bytes. A wake leaves every waiter on
 * the list (a waiter leaves only when its future completes or is
 * dropped), so that a queue closed between a wake and the next poll still
 * reaches it: that is what makes freeing a stream under a pending future
 * safe.
 */
#include "core/internal.h"

void tide_waitq_init(tide_waitq_t *q, void (*on_abandoned)(tide_waitq_t *q)) {
    q->head.prev = q->head.next = &q->head;
    q->head.waker = TIDE_WAKER_EMPTY;
    q->on_abandoned = on_abandoned;
}

/* The queue's sentinel is the only node on it whose waker is empty: the
 * last waiter out finds it on both sides, and the queue through it. */
void tide__waiter_unlink(tide_waiter_t *w, tide_waitq_left_t why) {
    tide_waiter_t *prev = w->prev, *next = w->next;
    if (prev != NULL) {
        prev->next = next;
        next->prev = prev;
        w->prev = NULL;
    }
    w->error = 0; /* and the error, if it held one */
    if (why == TIDE_WAITQ_CANCELLED && prev != NULL && prev == next &&
        prev->waker.target == NULL) {
        tide_waitq_t *q = (tide_waitq_t *)(void *)prev;
        if (q->on_abandoned != NULL)
            q->on_abandoned(q);
    }
    if (w->waker.target != NULL) {
        const tide_wakeable_t *t = w->waker.target;
        w->waker.target = NULL;
        t->vtable->drop(t);
    }
}

size_t tide_waitq_len(const tide_waitq_t *q) {
    size_t n = 0;
    for (const tide_waiter_t *w = q->head.next; w != &q->head;
         w = w->next)
        n++;
    return n;
}

void tide_waitq_close(tide_waitq_t *q, int err) {
    TIDE__CHECK(err < 0);
    while (q->head.next != &q->head) {
        tide_waiter_t *w = q->head.next;
        q->head.next = w->next;
        w->next->prev = &q->head;
        w->prev = NULL;
        w->error = err;
        tide_waker_wake(&w->waker); /* leaves it empty */
    }
}
