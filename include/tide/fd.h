/*
 * tide/fd.h: the reactor: readiness of a non-blocking descriptor (the
 * AsyncFd of tide).
 *
 * A registration (tide_fd_t) wraps a non-blocking descriptor and caches its
 * readiness per direction. I/O is tried first; only when the kernel answers
 * EAGAIN is the readiness that was observed to block cleared, a waker
 * stored, and the direction's one-shot libevent event (embedded in the
 * registration: no allocation per wait) armed. The event's callback sets
 * the readiness again and wakes whoever waits.
 *
 * Readiness cannot race. Every event that fires bumps the registration's
 * tick; a guard remembers the tick at which it saw readiness, and clearing
 * through a guard whose tick is stale does nothing. So readiness that
 * arrives between an EAGAIN and the clear is never lost.
 *
 * A peer that closed sets TIDE_READ_CLOSED, whenever it closed: an armed
 * event hears it (EV_CLOSED where the backend reports it), and a wait of
 * the readiness API (the futures and tide_fd_poll_read_ready) that answers
 * from readiness no event has refreshed asks the kernel (one poll(2)), so
 * a FIN that came while nobody waited is not missed. A hang-up or an error
 * makes libevent report both
 * directions ready, and the next read or write returns the error. Closed
 * states are final: clearing never removes them, and no event is re-armed
 * for a direction that is closed, so nothing spins.
 *
 * Threads: a registration belongs to its executor's thread.
 *
 * Typical use, with a hand-written I/O function:
 *
 *     static ssize_t do_recv(int fd, void *arg) {
 *         struct my_op *op = arg;
 *         ssize_t n = recv(fd, op->buf, op->len, 0);
 *         return n < 0 ? -errno : n;
 *     }
 *     ...
 *     TIDE_AWAIT(&c->co, cx, tide_fd_async_io(&c->io, c->reg,
 *                                             TIDE_READABLE, do_recv, &c->op));
 *     n = tide_async_result(&c->co);       // bytes, 0 at EOF, or -errno
 */
#ifndef TIDE_FD_H
#define TIDE_FD_H

#include <sys/types.h>

#include "tide/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* tide_fd_t: a registered descriptor (opaque): tide_fd_new, tide_fd_free. */
typedef struct tide_fd tide_fd_t;

/* Readiness bits; TIDE_READABLE and TIDE_WRITABLE double as interests. */
enum {
    TIDE_READABLE = 1u << 0,
    TIDE_WRITABLE = 1u << 1,
    TIDE_READ_CLOSED = 1u << 2,  /* the peer will send nothing more */
    TIDE_WRITE_CLOSED = 1u << 3, /* the peer will read nothing more */
};

/* What a wait saw: the readiness bits and the tick they were seen at. */
typedef struct tide_fd_guard {
    tide_fd_t *fd;  /* the registration it was taken on */
    unsigned ready; /* TIDE_READABLE, TIDE_WRITABLE, ..._CLOSED bits */
    unsigned tick;  /* private */
} tide_fd_guard_t;

/* An I/O function for try_io and async_io: perform one non-blocking
 * operation on fd and return a count (>= 0) or a negative errno; -EAGAIN
 * (or -EWOULDBLOCK) means "would block". */
typedef ssize_t (*tide_fd_io_fn)(int fd, void *arg);

/* ------------------------------------------------------------------------
 * Registration
 * ------------------------------------------------------------------------ */

/*
 * tide_fd_new: register fd, which must already be non-blocking (tide
 * refuses a blocking one rather than change it behind your back). Readiness
 * starts as readable and writable: the first operation is simply tried.
 *
 * Returns 0 and sets *out. Errors: -EINVAL (NULL out or exec), -EBADF (fd
 * is not open), TIDE_EBLOCKING (fd is blocking), -EEXIST (fd is already
 * registered on this executor), -EPERM (a regular file or directory, which
 * epoll cannot watch: they are always "ready"; use blocking I/O on a
 * thread), -ESHUTDOWN (the executor is being freed), -EIO (libevent refused
 * the events), -ENOMEM.
 *
 * Ownership: the registration owns fd from now on: tide_fd_free closes it,
 * tide_fd_into_inner hands it back.
 */
TIDE_EXTERN int tide_fd_new(tide_fd_t **out, tide_exec_t *exec, int fd);

/* tide_fd_free: deregister, close the descriptor and free the registration.
 * Futures still waiting on it complete with -EBADF when next polled (they
 * are woken). NULL is a no-op, and so is a registration that belongs to
 * another object (what tide_tcp_fd, tide_unix_fd, tide_udp_fd or
 * tide_fdstream_fd return: free that object instead). Legal from inside a
 * task that uses it. */
TIDE_EXTERN void tide_fd_free(tide_fd_t *fd);

/* tide_fd_into_inner: deregister and free the registration, handing the
 * descriptor back open and still non-blocking. Waiters are treated as by
 * tide_fd_free. Returns the descriptor, or -EINVAL for NULL or for a
 * registration that belongs to another object (see tide_fd_free). */
TIDE_EXTERN int tide_fd_into_inner(tide_fd_t *fd);

/* tide_fd_get: the registered descriptor. */
TIDE_EXTERN int tide_fd_get(const tide_fd_t *fd);

/* tide_fd_readiness: the cached readiness bits (a hint; no system call). */
TIDE_EXTERN unsigned tide_fd_readiness(const tide_fd_t *fd);

/* ------------------------------------------------------------------------
 * Waiting for readiness: futures
 *
 * Any number of tasks may wait on one registration at once, each with its
 * own tide_fd_wait_t. Result: 0, with the guard in tide_fd_wait_guard();
 * -EBADF if the registration was freed meanwhile.
 *
 * Cancel safe: dropping a wait loses nothing (readiness is only ever
 * cleared explicitly), and disarms the direction's event once nobody else
 * waits on it.
 * ------------------------------------------------------------------------ */

/* A wait for readiness (the futures below): one waiter per direction, on
 * the registration's wait queue of that direction (tide_waiter_t, in
 * tide/core.h). */
typedef struct tide_fd_wait {
    tide_future_t fut;
    tide_fd_t *reg; /* private */
    tide_waiter_t node[2];
    unsigned interest;
    tide_fd_guard_t guard;
} tide_fd_wait_t;

/* tide_fd_readable: wait until fd is readable (or read-closed). */
TIDE_EXTERN tide_future_t *tide_fd_readable(tide_fd_wait_t *w, tide_fd_t *fd);

/* tide_fd_writable: wait until fd is writable (or write-closed). */
TIDE_EXTERN tide_future_t *tide_fd_writable(tide_fd_wait_t *w, tide_fd_t *fd);

/* tide_fd_ready: wait until any of `interest` (TIDE_READABLE |
 * TIDE_WRITABLE) is ready. The guard says which. interest 0 completes with
 * -EINVAL. */
TIDE_EXTERN tide_future_t *tide_fd_ready(tide_fd_wait_t *w, tide_fd_t *fd,
                                         unsigned interest);

/* tide_fd_wait_guard: the guard of a completed wait. */
static inline tide_fd_guard_t *tide_fd_wait_guard(tide_fd_wait_t *w) {
    return &w->guard;
}

/* ------------------------------------------------------------------------
 * Guards
 * ------------------------------------------------------------------------ */

/* tide_fd_guard_ready: the readiness bits the guard saw. */
static inline unsigned tide_fd_guard_ready(const tide_fd_guard_t *g) {
    return g->ready;
}

/* tide_fd_guard_clear_ready: the operation blocked: clear every readiness
 * the guard saw (closed states excepted), unless a new event arrived since
 * the guard was taken, in which case nothing is cleared. */
TIDE_EXTERN void tide_fd_guard_clear_ready(tide_fd_guard_t *g);

/* tide_fd_guard_clear_ready_matching: clear only `ready` (e.g. just
 * TIDE_READABLE after a read blocked on a guard that saw both). */
TIDE_EXTERN void tide_fd_guard_clear_ready_matching(tide_fd_guard_t *g,
                                                    unsigned ready);

/* tide_fd_guard_try_io: run fn(fd, arg); if it returns -EAGAIN or
 * -EWOULDBLOCK, clear the readiness the guard saw and return -EAGAIN;
 * otherwise return its value and leave the readiness as it is. */
TIDE_EXTERN ssize_t tide_fd_guard_try_io(tide_fd_guard_t *g, tide_fd_io_fn fn,
                                         void *arg);

/* ------------------------------------------------------------------------
 * Without a future
 * ------------------------------------------------------------------------ */

/*
 * tide_fd_poll_read_ready / tide_fd_poll_write_ready: for hand-written
 * poll functions. READY (with *out filled, if out is not NULL) when the
 * direction is ready; otherwise PENDING with cx's waker stored and the
 * event armed. Each direction keeps ONE such waker: the last task to call
 * is the one woken (as in Tokio); to wait from several tasks use the
 * futures above. Also spends the task's cooperative budget: may answer
 * PENDING after waking the task when the budget is spent.
 */
TIDE_EXTERN tide_poll_t tide_fd_poll_read_ready(tide_fd_t *fd, tide_cx_t *cx,
                                                tide_fd_guard_t *out);
TIDE_EXTERN tide_poll_t tide_fd_poll_write_ready(tide_fd_t *fd, tide_cx_t *cx,
                                                 tide_fd_guard_t *out);

/*
 * tide_fd_try_io: if fd is ready for `interest` (one of TIDE_READABLE,
 * TIDE_WRITABLE), run fn(fd, arg) and return its value, clearing that
 * readiness if it returned -EAGAIN/-EWOULDBLOCK (then -EAGAIN is
 * returned). If fd is not ready, fn is not called and -EAGAIN is returned.
 * -EINVAL for a bad interest.
 */
TIDE_EXTERN ssize_t tide_fd_try_io(tide_fd_t *fd, unsigned interest,
                                   tide_fd_io_fn fn, void *arg);

/*
 * tide_fd_async_io: a future that waits for `interest` and runs fn until it
 * returns anything but EAGAIN; result: fn's value. fn may be called more
 * than once (readiness can be spurious), so it must be safe to repeat after
 * EAGAIN. Cancel safe if fn is: a dropped async_io never runs fn again.
 * Result -EINVAL if interest is not exactly one of TIDE_READABLE or
 * TIDE_WRITABLE, -EBADF if the registration is freed while it waits.
 */
typedef struct tide_fd_io {
    tide_future_t fut;
    tide_fd_t *reg; /* private */
    tide_waiter_t node;
    unsigned interest;
    tide_fd_io_fn fn;
    void *arg;
} tide_fd_io_t;

TIDE_EXTERN tide_future_t *tide_fd_async_io(tide_fd_io_t *op, tide_fd_t *fd,
                                            unsigned interest, tide_fd_io_fn fn,
                                            void *arg);

#ifdef __cplusplus
}
#endif
#endif
