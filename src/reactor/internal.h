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
    tide_waitq_t q;    /* every future waiting for this direction */
    tide_waker_t slot; /* tide_fd_poll_*_ready's: the last caller's waker */
};

/* A registration (240 bytes on LP64, its read event included). Each
 * direction has a persistent libevent event (see fd.c for why it is still
 * "one-shot"): the read direction's is rev, here; the write direction's is
 * allocated the first time a write would block: most connections never
 * fill their send buffer, and an idle one never writes, so they don't
 * carry a second libevent event. */
struct tide_fd {
    tide_exec_t *exec; /* NULL once the executor is gone */
    int fd;
    unsigned tick;        /* bumped by every event */
    unsigned short ready; /* TIDE_READABLE | TIDE_WRITABLE | *_CLOSED */
    short wflags;         /* the write event's flags, for its late assign */
    bool embedded;        /* part of a larger object: tide_fd_free won't free */
    unsigned char armed;  /* bit d: direction d's event is pending */
    struct event *wev;    /* the write direction's event, or NULL */
    struct tide__dir dir[2];
    struct event rev; /* the read direction's event */
};

/* The wait queue of the direction in `interest` (one of TIDE_READABLE,
 * TIDE_WRITABLE). */
static inline tide_waitq_t *tide__fd_q(struct tide_fd *reg, unsigned interest) {
    return &reg->dir[interest == TIDE_WRITABLE ? TIDE__WR : TIDE__RD].q;
}

/* The reactor's per-executor state (tide__exec_ext(ex, TIDE__EXT_REACTOR)),
 * created by the first registration. The table is indexed by descriptor
 * number, so that a second registration of one descriptor is refused in
 * O(1) (-EEXIST): 8 bytes per descriptor number up to the highest one
 * registered, doubling (512 KiB at 65,536 descriptors, 8 MiB at a million;
 * what the kernel keeps per open descriptor is several times that). */
struct tide__reactor {
    struct tide_fd **fds;
    size_t cap;
};

static inline struct tide__reactor *tide__reactor_of(const tide_exec_t *ex) {
    return (struct tide__reactor *)tide__exec_ext(ex, TIDE__EXT_REACTOR);
}

/* Register fd into caller-provided memory (same checks as tide_fd_new). */
int tide__fd_init(struct tide_fd *reg, tide_exec_t *ex, int fd);

/* Deregister: disarm, close every wait queue (waiters complete with
 * -EBADF), leave fd open. */
void tide__fd_deinit(struct tide_fd *reg);

/*
 * Readiness for `interest`. Spends the cooperative budget. READY fills *out
 * (if not NULL). PENDING: the direction's event is armed (or the task was
 * woken: budget spent, or libevent refused the event) and
 *   - node != NULL (interest is then one direction): node is on that
 *     direction's queue with cx's waker; on READY it has left it;
 *   - node == NULL: the caller puts its own waiter on tide__fd_q (a
 *     stream's generic future does, on the stream's queue).
 */
tide_poll_t tide__fd_poll_ready_slow(struct tide_fd *reg, tide_cx_t *cx,
                                     unsigned interest, tide_waiter_t *node,
                                     tide_fd_guard_t *out);

/* The two common cases inline (a direction known ready; a direction not
 * ready whose event is pending already), with budget left: about ten
 * instructions where the whole function costs fifty to seventy.
 * Everything else is tide__fd_poll_ready_slow, which does the same.
 * interest is a constant at every call site, so the masks fold. */
static inline tide_poll_t tide__fd_poll_ready(struct tide_fd *reg,
                                              tide_cx_t *cx, unsigned interest,
                                              tide_waiter_t *node,
                                              tide_fd_guard_t *out) {
    unsigned m = 0;
    if (interest & TIDE_READABLE)
        m |= TIDE_READABLE | TIDE_READ_CLOSED;
    if (interest & TIDE_WRITABLE)
        m |= TIDE_WRITABLE | TIDE_WRITE_CLOSED;
    unsigned r = reg->ready & m;
    if (r != 0 && cx->budget > 0 && reg->exec != NULL &&
        (node == NULL || !tide_waiter_is_waiting(node))) {
        cx->budget--;
        if (out != NULL) {
            out->fd = reg;
            out->ready = r;
            out->tick = reg->tick;
        }
        return TIDE_READY;
    }
    /* Not ready, its event already pending (armed, as it stays between
     * waits): nothing to arm, nothing spent; only the node, if any, joins
     * the direction's queue. The wait that follows a short read. */
    unsigned char dirs = (unsigned char)((interest & TIDE_READABLE ? 1u : 0u) |
                                         (interest & TIDE_WRITABLE ? 2u : 0u));
    if (r == 0 && cx->budget > 0 && reg->exec != NULL &&
        (reg->armed & dirs) == dirs && (node == NULL || dirs != 3)) {
        if (node != NULL)
            tide_waiter_wait(node, tide__fd_q(reg, interest), cx->waker);
        return TIDE_PENDING;
    }
    return tide__fd_poll_ready_slow(reg, cx, interest, node, out);
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

/* The virtual clock, for tide's own tests (time.c): pause the executor's
 * clock at the present (its timers then fire only by advance), move it on
 * by usec (firing what becomes due, in order), or go back to the real
 * clock. pause: 0, -ENOMEM, -EIO. */
int tide__time_pause(tide_exec_t *ex);
void tide__time_advance(tide_exec_t *ex, uint64_t usec);
void tide__time_resume(tide_exec_t *ex);

#endif
