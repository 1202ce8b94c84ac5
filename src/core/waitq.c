/*
 * src/core/waitq.c: waiters and wait queues (see tide/core.h, where the
 * two operations on every pending I/O path, wait and leave, are inline).
 *
 * A circular doubly linked list whose nodes live in the waiting futures,
 * around a sentinel in the queue. Every waiter on a list holds a waker;
 * the sentinel's points at its owner's ops, whose first member is a
 * tide_wakeable_t with a vtable of its own (tide__waitq_sentinel_vtable),
 * and the sentinel is the queue's first member, so that a waiter leaving
 * can tell, from its neighbours alone, that it was the last one, and find
 * the queue and its owner's hook: no back pointer and no count in the
 * waiter (24 bytes), no hook pointer in the queue (24). A wake leaves every waiter on
 * the list (a waiter leaves only when its future completes or is
 * dropped), so that a queue closed between a wake and the next poll still
 * reaches it: that is what makes freeing a stream under a pending future
 * safe.
 */
#include "core/internal.h"

static tide_waker_t sentinel_clone(const tide_wakeable_t *w) {
    return TIDE_WAKER(w);
}
static void sentinel_nop(const tide_wakeable_t *w) { (void)w; }
const tide_waker_vtable_t tide__waitq_sentinel_vtable = {
    sentinel_clone, sentinel_nop, sentinel_nop, sentinel_nop};

static const tide_waitq_ops_t no_ops = TIDE_WAITQ_OPS(NULL);

void tide_waitq_init(tide_waitq_t *q, const tide_waitq_ops_t *ops) {
    q->head.prev = q->head.next = &q->head;
    q->head.waker = TIDE_WAKER(&(ops != NULL ? ops : &no_ops)->sentinel);
}

static bool is_sentinel(const tide_waiter_t *w) {
    return w->waker.target->vtable == &tide__waitq_sentinel_vtable;
}

TIDE__NORETURN void tide__waiter_moved(const tide_waiter_t *w) {
    fprintf(stderr,
            "tide: a future pending at %p was moved (copied) while it "
            "waited: its wait queue still points at where it was. A future "
            "must stay where it was first polled until it completes or is "
            "dropped.\n",
            (const void *)w);
    abort();
}

void tide__waiter_unlink(tide_waiter_t *w, tide_waitq_left_t why) {
    tide_waiter_t *prev = w->prev, *next = w->next;
    if (prev != NULL && TIDE__UNLIKELY(prev->next != w))
        tide__waiter_moved(w);
    if (prev != NULL) {
        prev->next = next;
        next->prev = prev;
        w->prev = NULL;
    }
    w->error = 0; /* and the error, if it held one */
    if (why == TIDE_WAITQ_CANCELLED && prev != NULL && prev == next &&
        is_sentinel(prev)) {
        const tide_waitq_ops_t *ops =
            TIDE_CONTAINER_OF(prev->waker.target, tide_waitq_ops_t, sentinel);
        if (ops->on_abandoned != NULL)
            ops->on_abandoned((tide_waitq_t *)(void *)prev);
    }
    if (w->waker.target != NULL) {
        const tide_wakeable_t *t = w->waker.target;
        w->waker.target = NULL;
        t->vtable->drop(t);
    }
}

size_t tide_waitq_len(const tide_waitq_t *q) {
    size_t n = 0;
    for (const tide_waiter_t *w = q->head.next; w != &q->head; w = w->next)
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
