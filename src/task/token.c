/*
 * src/task/token.c: cancellation tokens, a wait queue and a flag.
 */
#include "core/internal.h"
#include "tide/task.h"

void tide_token_init(tide_token_t *t) {
    tide_waitq_init(&t->q, NULL);
    t->hook = NULL;
    t->cancelled = false;
}

void tide_token_cancel(tide_token_t *t) {
    if (t->cancelled)
        return;
    t->cancelled = true;
    /* The waiters stay on the queue until they poll READY or are
     * dropped (the rule of every wait queue). */
    tide_waitq_wake_all(&t->q);
    if (t->hook != NULL)
        t->hook(t);
}

bool tide_token_is_cancelled(const tide_token_t *t) { return t->cancelled; }

void tide_token_free(tide_token_t *t) { tide_waitq_close(&t->q, -EBADF); }

static tide_poll_t token_wait_poll(tide_future_t *f, tide_cx_t *cx) {
    tide_token_wait_t *w = TIDE_CONTAINER_OF(f, tide_token_wait_t, fut);
    int err = tide_waiter_error(&w->w);
    if (err != 0) {
        f->result = err;
        return TIDE_READY;
    }
    if (w->tok->cancelled) {
        tide_waiter_leave(&w->w, TIDE_WAITQ_DONE);
        f->result = 0;
        return TIDE_READY;
    }
    tide_waiter_wait(&w->w, &w->tok->q, cx->waker);
    return TIDE_PENDING;
}

static void token_wait_drop(tide_future_t *f) {
    tide_token_wait_t *w = TIDE_CONTAINER_OF(f, tide_token_wait_t, fut);
    tide_waiter_leave(&w->w, TIDE_WAITQ_CANCELLED);
}

static const tide_future_vtable_t token_wait_vt = {token_wait_poll,
                                                   token_wait_drop};

tide_future_t *tide_token_cancelled(tide_token_wait_t *w, tide_token_t *t) {
    tide_waiter_init(&w->w);
    w->tok = t;
    return tide_future_init(&w->fut, &token_wait_vt);
}
