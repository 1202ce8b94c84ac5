/*
 * src/core/waker.c: wakers, the cooperative budget, and the future misuse
 * check.
 */
#include "core/internal.h"

tide_waker_t tide_waker_clone(const tide_waker_t *w) {
    if (w == NULL || w->target == NULL)
        return TIDE_WAKER_EMPTY;
    return w->target->vtable->clone(w->target);
}

void tide_waker_wake(tide_waker_t *w) {
    if (w == NULL || w->target == NULL)
        return;
    const tide_wakeable_t *t = w->target;
    w->target = NULL;
    t->vtable->wake(t);
}

void tide_waker_wake_by_ref(const tide_waker_t *w) {
    if (w != NULL && w->target != NULL)
        w->target->vtable->wake_by_ref(w->target);
}

void tide_waker_drop(tide_waker_t *w) {
    if (w == NULL || w->target == NULL)
        return;
    const tide_wakeable_t *t = w->target;
    w->target = NULL;
    t->vtable->drop(t);
}

bool tide_waker_will_wake(const tide_waker_t *a, const tide_waker_t *b) {
    return a->target == b->target;
}

void tide_waker_register(tide_waker_t *slot, const tide_waker_t *w) {
    if (slot->target == w->target)
        return;
    tide_waker_drop(slot);
    *slot = tide_waker_clone(w);
}

bool tide__cx_spent(tide_cx_t *cx) {
    tide_waker_wake_by_ref(cx->waker);
    return false;
}

void tide__fut_misuse(const tide_future_t *f, const char *what) {
    fprintf(stderr, "tide: future %p %s\n", (const void *)f, what);
    abort();
}
