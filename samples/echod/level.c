/*
 * samples/echod/level.c: waiting, in a task, for a condition that another
 * task or thread makes true (until_t), and a level raised across threads
 * (level_t). See echod.h.
 */
#include "echod.h"

static tide_poll_t until_poll(tide_future_t *f, tide_cx_t *cx) {
    until_t *u = TIDE_CONTAINER_OF(f, until_t, fut);
    for (;;) {
        if (u->holds(u->arg)) {
            f->result = 0;
            return TIDE_READY;
        }
        if (!u->waiting) {
            tide_notified(&u->nf, u->n);
            u->waiting = true;
        }
        if (tide_future_poll(&u->nf.fut, cx) == TIDE_PENDING)
            return TIDE_PENDING;
        tide_future_drop(&u->nf.fut);
        u->waiting = false;
    }
}

static void until_drop(tide_future_t *f) {
    until_t *u = TIDE_CONTAINER_OF(f, until_t, fut);
    if (u->waiting)
        tide_future_drop(&u->nf.fut); /* passes a notification on */
    u->waiting = false;
}

static const tide_future_vtable_t until_vt = {until_poll, until_drop};

tide_future_t *until(until_t *u, tide_notify_t *n, bool (*holds)(const void *),
                     const void *arg) {
    u->n = n;
    u->holds = holds;
    u->arg = arg;
    u->waiting = false;
    return tide_future_init(&u->fut, &until_vt);
}

void level_init(level_t *l) {
    atomic_init(&l->value, 0);
    tide_notify_init(&l->raised);
}

unsigned level_get(level_t *l) { return atomic_load(&l->value); }

void level_raise(level_t *l, unsigned to, unsigned add) {
    unsigned cur = atomic_load(&l->value), next;
    do {
        next = cur + add > to ? cur + add : to;
        if (next == cur)
            return;
    } while (!atomic_compare_exchange_weak(&l->value, &cur, next));
    tide_notify_one(&l->raised);
}

bool level_reached(const void *arg) {
    const level_at_t *a = arg;
    return level_get(a->l) >= a->target;
}
