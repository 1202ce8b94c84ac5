/*
 * src/core/combinators.c: join all, select, yield now, ready, pending.
 */
#include "core/internal.h"

/* join all ---------------------------------------------------------------- */

static tide_poll_t join_all_poll(tide_future_t *f, tide_cx_t *cx) {
    tide_join_all_t *j = TIDE_CONTAINER_OF(f, tide_join_all_t, fut);
    for (size_t i = 0; i < j->n && j->left > 0; i++) {
        tide_future_t *sub = j->futs[i];
        if (tide__fut_state(sub) != 0)
            continue; /* done (and dropped) already */
        if (tide_future_poll(sub, cx) == TIDE_READY) {
            tide_future_drop(sub);
            j->left--;
        }
    }
    if (j->left > 0)
        return TIDE_PENDING;
    f->result = 0;
    return TIDE_READY;
}

static void join_all_drop(tide_future_t *f) {
    tide_join_all_t *j = TIDE_CONTAINER_OF(f, tide_join_all_t, fut);
    for (size_t i = 0; i < j->n; i++)
        tide_future_drop(j->futs[i]);
}

static const tide_future_vtable_t join_all_vt = {join_all_poll, join_all_drop};

tide_future_t *tide_join_all(tide_join_all_t *j, tide_future_t **futs,
                             size_t n) {
    j->futs = futs;
    j->n = n;
    j->left = n;
    return tide_future_init(&j->fut, &join_all_vt);
}

/* select ------------------------------------------------------------------ */

static tide_poll_t select_poll(tide_future_t *f, tide_cx_t *cx) {
    tide_select_t *s = TIDE_CONTAINER_OF(f, tide_select_t, fut);
    if (s->n == 0) {
        f->result = -EINVAL;
        return TIDE_READY;
    }
    for (size_t i = 0; i < s->n; i++) {
        if (tide_future_poll(s->futs[i], cx) == TIDE_READY) {
            /* Drop every arm now, the winner included (it holds nothing
             * once ready, and its result stays readable). */
            for (size_t k = 0; k < s->n; k++)
                tide_future_drop(s->futs[k]);
            f->result = (intptr_t)i;
            return TIDE_READY;
        }
    }
    return TIDE_PENDING;
}

static void select_drop(tide_future_t *f) {
    tide_select_t *s = TIDE_CONTAINER_OF(f, tide_select_t, fut);
    for (size_t i = 0; i < s->n; i++)
        tide_future_drop(s->futs[i]);
}

static const tide_future_vtable_t select_vt = {select_poll, select_drop};

tide_future_t *tide_select(tide_select_t *s, tide_future_t **futs, size_t n) {
    s->futs = futs;
    s->n = n;
    return tide_future_init(&s->fut, &select_vt);
}

/* yield now --------------------------------------------------------------- */

static tide_poll_t yield_poll(tide_future_t *f, tide_cx_t *cx) {
    tide_yield_t *y = TIDE_CONTAINER_OF(f, tide_yield_t, fut);
    if (y->yielded) {
        f->result = 0;
        return TIDE_READY;
    }
    y->yielded = true;
    tide_waker_wake_by_ref(cx->waker);
    return TIDE_PENDING;
}

static const tide_future_vtable_t yield_vt = {yield_poll, NULL};

tide_future_t *tide_yield(tide_yield_t *y) {
    y->yielded = false;
    return tide_future_init(&y->fut, &yield_vt);
}

/* ready, pending ------------------------------------------------------------ */

static tide_poll_t ready_poll(tide_future_t *f, tide_cx_t *cx) {
    tide_ready_t *r = TIDE_CONTAINER_OF(f, tide_ready_t, fut);
    f->result = r->value;
    return TIDE_READY;
}

static const tide_future_vtable_t ready_vt = {ready_poll, NULL};

tide_future_t *tide_ready(tide_ready_t *r, intptr_t value) {
    r->value = value;
    return tide_future_init(&r->fut, &ready_vt);
}

static tide_poll_t pending_poll(tide_future_t *f, tide_cx_t *cx) {
    return TIDE_PENDING;
}

static const tide_future_vtable_t pending_vt = {pending_poll, NULL};

tide_future_t *tide_pending(tide_future_t *f) {
    return tide_future_init(f, &pending_vt);
}
