/*
 * src/sync/oneshot.c: one value, one sender, one receiver, lock-free.
 *
 * One word says everything: its low two bits are the state (OPEN, SENT,
 * TX_CLOSED, RX_CLOSED) and, while OPEN, the rest is the receiver's waker
 * (the pointer a tide_waker_t holds; a tide_wakeable_t begins with a
 * pointer, so it is at least 4-aligned). The sender leaves OPEN with one
 * compare-and-swap that takes the waker out in the same step, so after it
 * the sender touches nothing but the end count: the receiver that sees
 * SENT may be the last end and release the struct. Each end's last access
 * is the decrement of `refs`; the one that brings it to 0 calls release.
 */
#include "sync/internal.h"

enum { OS_OPEN = 0, OS_SENT = 1, OS_TX_CLOSED = 2, OS_RX_CLOSED = 3 };
#define OS_TAG ((uintptr_t)3)

static inline unsigned tag_of(uintptr_t s) { return (unsigned)(s & OS_TAG); }

static inline const tide_wakeable_t *waker_of(uintptr_t s) {
    return (const tide_wakeable_t *)(s & ~OS_TAG);
}

static void finish_end(tide_oneshot_t *o) {
    void (*release)(tide_oneshot_t *, void *) = o->release;
    void *arg = o->arg;
    if (__atomic_sub_fetch(&o->refs, 1, __ATOMIC_ACQ_REL) == 0 && release)
        release(o, arg);
}

/* Leave OPEN for `to` (SENT or TX_CLOSED): false if the receiver was
 * dropped first. Wakes the receiver. */
static bool tx_finish(tide_oneshot_t *o, unsigned to) {
    uintptr_t cur = __atomic_load_n(&o->state, __ATOMIC_ACQUIRE);
    for (;;) {
        TIDE__CHECK(tag_of(cur) == OS_OPEN || tag_of(cur) == OS_RX_CLOSED);
        if (tag_of(cur) == OS_RX_CLOSED)
            return false;
        if (__atomic_compare_exchange_n(&o->state, &cur, (uintptr_t)to, false,
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            break;
    }
    tide_waker_t w = TIDE_WAKER(waker_of(cur)); /* the reference it held */
    tide_waker_wake(&w);
    return true;
}

int tide_oneshot_send(tide_oneshot_t *o, intptr_t value) {
    /* the receiver reads it only after it sees SENT, published below */
    o->value = value;
    int rc = tx_finish(o, OS_SENT) ? 0 : -EPIPE;
    finish_end(o);
    return rc;
}

void tide_oneshot_close(tide_oneshot_t *o) {
    (void)tx_finish(o, OS_TX_CLOSED);
    finish_end(o);
}

static tide_poll_t rx_poll(tide_future_t *f, tide_cx_t *cx) {
    tide_oneshot_recv_t *op = TIDE_CONTAINER_OF(f, tide_oneshot_recv_t, fut);
    tide_oneshot_t *o = op->o;
    uintptr_t cur = __atomic_load_n(&o->state, __ATOMIC_ACQUIRE);
    for (;;) {
        switch (tag_of(cur)) {
        case OS_SENT:
            op->value = o->value;
            f->result = 0;
            return TIDE_READY;
        case OS_TX_CLOSED:
            f->result = -EPIPE;
            return TIDE_READY;
        case OS_OPEN:
            break;
        default:
            TIDE__CHECK(!"oneshot receive polled after its drop");
        }
        if (waker_of(cur) == cx->waker->target)
            return TIDE_PENDING; /* the same task, already registered */
        tide_waker_t nw = tide_waker_clone(cx->waker);
        TIDE__CHECK(((uintptr_t)nw.target & OS_TAG) == 0);
        if (__atomic_compare_exchange_n(&o->state, &cur,
                                        (uintptr_t)nw.target | OS_OPEN, false,
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
            tide_waker_t old = TIDE_WAKER(waker_of(cur));
            tide_waker_drop(&old);
            return TIDE_PENDING;
        }
        tide_waker_drop(&nw); /* the sender finished meanwhile: look again */
    }
}

static void rx_drop(tide_future_t *f) {
    tide_oneshot_recv_t *op = TIDE_CONTAINER_OF(f, tide_oneshot_recv_t, fut);
    tide_oneshot_t *o = op->o;
    op->o = NULL;
    uintptr_t cur = __atomic_load_n(&o->state, __ATOMIC_ACQUIRE);
    while (tag_of(cur) == OS_OPEN) {
        if (__atomic_compare_exchange_n(&o->state, &cur,
                                        (uintptr_t)OS_RX_CLOSED, false,
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
            tide_waker_t old = TIDE_WAKER(waker_of(cur));
            tide_waker_drop(&old);
            break;
        }
    }
    finish_end(o);
}

static const tide_future_vtable_t rx_vt = {rx_poll, rx_drop};

void tide_oneshot_init(tide_oneshot_t *o,
                       void (*release)(tide_oneshot_t *o, void *arg),
                       void *arg) {
    o->state = OS_OPEN;
    o->value = 0;
    o->refs = 2;
    o->release = release;
    o->arg = arg;
}

tide_future_t *tide_oneshot_recv(tide_oneshot_recv_t *op, tide_oneshot_t *o) {
    op->o = o;
    op->value = 0;
    return tide_future_init(&op->fut, &rx_vt);
}
