/*
 * src/reactor/internal.h: the registration, shared by the reactor and the
 * layers below it (io, net embed a struct tide_fd in their objects so a
 * connection costs one allocation). Never installed.
 */
#ifndef TIDE_REACTOR_INTERNAL_H
#define TIDE_REACTOR_INTERNAL_H

#include "core/internal.h"
#include "tide/fd.h"

/* Direction indexes. */
enum { TIDE__RD = 0, TIDE__WR = 1 };

struct tide__dir {
    struct event ev;    /* persistent; see fd.c for why it is still "one-shot" */
    bool armed;         /* ev is pending in libevent */
    tide_waker_t slot;  /* the poll_*_ready waker */
    unsigned nwait;     /* waiters whose interest includes this direction */
};

struct tide_fd {
    tide_exec_t *exec; /* NULL once the executor is gone */
    int fd;
    unsigned ready;    /* TIDE_READABLE | TIDE_WRITABLE | *_CLOSED */
    unsigned tick;     /* bumped by every event */
    bool embedded;     /* part of a larger object: tide_fd_free won't free */
    bool on_sweep;     /* on exec->sweep: check at the end of the turn */
    struct tide_fd *sweep_next;
    struct tide__dir dir[2];
    tide__waiter_t *waiters;
};

/* Register fd into caller-provided memory (same checks as tide_fd_new). */
int tide__fd_init(struct tide_fd *reg, tide_exec_t *ex, int fd);

/* Deregister: disarm, wake and detach waiters, leave fd open. */
void tide__fd_deinit(struct tide_fd *reg);

/*
 * Readiness for `interest` with a waiter node (node != NULL: any number of
 * waiters) or the direction's single slot (node == NULL; interest must then
 * be one direction). Spends the cooperative budget. READY fills *out.
 */
tide_poll_t tide__fd_poll_ready(struct tide_fd *reg, tide_cx_t *cx,
                                unsigned interest, tide__waiter_t *node,
                                tide_fd_guard_t *out);

/* A future that waited with a node is dropped: unlink it, and disarm what
 * nobody waits on any more. */
void tide__waiter_cancel(tide__waiter_t *node);

/* Keep node on reg's list without waiting for any readiness (interest 0:
 * never woken by events), so that freeing the registration still reaches
 * it while its future waits for something else (a retry timer). Leave with
 * tide__waiter_cancel. */
void tide__waiter_park(struct tide_fd *reg, tide__waiter_t *node);

/* A future that waited through the slot of direction(s) `interest` is
 * dropped: forget the slot's waker and disarm what nobody waits on. */
void tide__fd_slot_cancel(struct tide_fd *reg, unsigned interest);

/* Direction d is not ready and a task other than cx's waits on it through
 * its single slot: waiting too would overwrite that task's waker and leave
 * it asleep forever, so the caller refuses with -EBUSY instead. */
static inline bool tide__fd_slot_busy(const struct tide_fd *reg, int d,
                                      const tide_cx_t *cx) {
    const tide_waker_t *w = &reg->dir[d].slot;
    unsigned bit = d == TIDE__RD ? TIDE_READABLE | TIDE_READ_CLOSED
                                 : TIDE_WRITABLE | TIDE_WRITE_CLOSED;
    return !(reg->ready & bit) && !tide_waker_is_empty(w) &&
           !tide_waker_will_wake(w, cx->waker);
}

/* Clear `bits` (closed states excepted) if no event arrived since `tick`. */
static inline void tide__fd_clear(struct tide_fd *reg, unsigned tick,
                                  unsigned bits) {
    if (reg->tick == tick)
        reg->ready &= ~(bits & (TIDE_READABLE | TIDE_WRITABLE));
}

/* Record a final state learnt from a system call (EOF, EPIPE). */
static inline void tide__fd_set_closed(struct tide_fd *reg, unsigned bits) {
    reg->ready |= bits & (TIDE_READ_CLOSED | TIDE_WRITE_CLOSED);
}

#endif
