/*
 * tide/sync.h: synchronization between tasks, and between tasks and other
 * threads: a oneshot channel, a bounded multi-producer channel (mpsc), a
 * notification (Notify) and a counting semaphore, as in Tokio's tokio::sync.
 *
 * All four live in the caller's memory, as their operation futures do: a
 * wait allocates nothing (the mpsc's ring is allocated once, at init).
 * Errors are negative errno values; -EPIPE means the other end (or the
 * object) is gone.
 *
 * Threads. The functions that never wait (tide_oneshot_send and _close,
 * tide_mpsc_try_send, _send_blocking and _close, tide_notify_one and
 * _waiters, tide_semaphore_try_acquire, _release and _close) may be
 * called from any thread. The futures are polled and dropped on the
 * thread of the executor that runs their task; tasks of different
 * executors may wait on one object. The mpsc, the notify and the
 * semaphore hold a mutex; the oneshot is lock-free. A thread that
 * completes a wait wakes the waiting task after releasing the lock.
 *
 * Freeing an object (tide_mpsc_free, tide_notify_free,
 * tide_semaphore_free) completes every future still waiting on it with
 * -EPIPE at its next poll without touching the object again, so a task
 * may free one that other tasks wait on; no other thread may be using it
 * then (join them first).
 */
#ifndef TIDE_SYNC_H
#define TIDE_SYNC_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tide/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* (private) A link of the sync objects' lists. */
typedef struct tide__slink {
    struct tide__slink *prev, *next;
} tide__slink_t;

/* (private) What a future waiting on a sync object embeds (32 bytes on
 * LP64): its place on the object's list, the waker the object takes when
 * it completes the wait, and where the wait is (read atomically: another
 * thread may complete it). */
typedef struct tide__snode {
    tide__slink_t link;
    tide_waker_t waker;
    unsigned state;
} tide__snode_t;

/* ------------------------------------------------------------------------
 * Oneshot: one value from one sender (a task or any thread) to one
 * receiving task.
 *
 * Each end finishes exactly once: the sender by tide_oneshot_send or
 * tide_oneshot_close, the receiver by dropping its receive future
 * (tide_oneshot_recv; drop it even if it was never awaited). The struct
 * must stay valid until both have: when the second one finishes, the
 * release function given to tide_oneshot_init is called (on that end's
 * thread), which may free the struct. The value received is copied into
 * the receive future, so it outlives the struct. With no release
 * function, the caller must know both ends are done some other way
 * (joined the sending thread, say). Lock-free: a send is one atomic
 * compare-and-swap and one decrement, plus the wake.
 * ------------------------------------------------------------------------ */

/* A oneshot channel (40 bytes on LP64; fields private). */
typedef struct tide_oneshot {
    uintptr_t state; /* private: the receiver's waker | a 2-bit state */
    intptr_t value;
    unsigned refs; /* the ends not yet finished */
    void (*release)(struct tide_oneshot *o, void *arg);
    void *arg;
} tide_oneshot_t;

/* tide_oneshot_init: an open oneshot, with both ends to finish. release
 * (may be NULL) is called once, by the end that finishes last, with arg;
 * nothing touches o after it. Nothing to free. */
TIDE_EXTERN void tide_oneshot_init(tide_oneshot_t *o,
                                   void (*release)(tide_oneshot_t *o,
                                                   void *arg),
                                   void *arg);

/* tide_oneshot_send: deliver value and finish the sending end. Never waits;
 * any thread. Returns 0 (the receiver will get value), or -EPIPE: the
 * receiver was dropped first, and value was not delivered (it is still
 * the caller's). Sending twice, or after tide_oneshot_close, is undefined
 * behaviour (the struct may have been released). */
TIDE_EXTERN int tide_oneshot_send(tide_oneshot_t *o, intptr_t value);

/* tide_oneshot_close: finish the sending end without sending: the receiver
 * completes with -EPIPE. Any thread. Never call it after a send. */
TIDE_EXTERN void tide_oneshot_close(tide_oneshot_t *o);

/* A receive (32 bytes on LP64): tide_oneshot_recv sets it up. */
typedef struct tide_oneshot_recv {
    tide_future_t fut;
    tide_oneshot_t *o; /* private; NULL once finished */
    intptr_t value;    /* the value, once the future completed with 0 */
} tide_oneshot_recv_t;

/* tide_oneshot_recv: the receiving end, as a future (one per oneshot).
 * Result: 0 once the value arrived (in op->value, also
 * tide_oneshot_recv_value), or -EPIPE if the sender closed without
 * sending. Dropping it finishes the receiving end (whether or not it was
 * polled): a send after that fails with -EPIPE. Cancel safety: a value
 * sent before the drop but not yet received is lost (for a pointer that
 * owns memory, that is a leak: receive before dropping). Polled and
 * dropped on one executor's thread. */
TIDE_EXTERN tide_future_t *tide_oneshot_recv(tide_oneshot_recv_t *op,
                                             tide_oneshot_t *o);

/* tide_oneshot_recv_value: the value received (valid once the receive
 * completed with 0; the future's memory, so it outlives the oneshot). */
static inline intptr_t tide_oneshot_recv_value(const tide_oneshot_recv_t *op) {
    return op->value;
}

/* ------------------------------------------------------------------------
 * Mpsc: a bounded channel of fixed-size items, from many senders (tasks
 * of any executor, and other threads) to one receiving task.
 *
 * The items live in a ring of `capacity` slots of `elem_size` bytes,
 * allocated once by tide_mpsc_init; a send copies the item in, a receive
 * copies it out. Senders that find it full wait in FIFO order: a slot
 * freed by a receive is reserved for the sender that waited longest.
 * Closing (from either side) makes every later send fail with -EPIPE,
 * wakes the waiting senders with -EPIPE, and lets the receiver drain what
 * was sent before, then see 0. C has no destructors to count senders by:
 * the application closes the channel when its last sender is done.
 * ------------------------------------------------------------------------ */

/* An mpsc channel (136 bytes on x86-64 glibc; fields private). */
typedef struct tide_mpsc {
    pthread_mutex_t lock; /* private */
    unsigned char *buf;
    size_t elem, cap, head, len, reserved;
    tide__slink_t waiters, granted; /* senders waiting; given a slot */
    tide__snode_t *rx;              /* the receiver, while it waits */
    bool closed;
} tide_mpsc_t;

/* tide_mpsc_init: a channel of capacity items of elem_size bytes each.
 * Allocates the ring (capacity * elem_size bytes), once. Returns 0.
 * Errors: -EINVAL (NULL, or a size or capacity of 0), -EOVERFLOW
 * (capacity * elem_size overflows), -ENOMEM. On error there is nothing
 * to free. */
TIDE_EXTERN int tide_mpsc_init(tide_mpsc_t *ch, size_t elem_size,
                               size_t capacity);

/* tide_mpsc_free: close the channel, complete every future still waiting
 * on it with -EPIPE (they must still be dropped), free the ring. Items not
 * received are discarded. The memory of ch is the caller's. Call it on the
 * thread of the tasks that use the channel, once no other thread does
 * (a thread blocked in tide_mpsc_send_blocking: close first, join it,
 * then free). NULL is a no-op. */
TIDE_EXTERN void tide_mpsc_free(tide_mpsc_t *ch);

/* tide_mpsc_close: no more sends: later sends and the waiting ones fail
 * with -EPIPE; the receiver gets what was sent before, then 0. Idempotent;
 * any thread, either side. */
TIDE_EXTERN void tide_mpsc_close(tide_mpsc_t *ch);

/* tide_mpsc_try_send: copy *item into the channel if a slot is free and no
 * sender waits before us (fairness). Never waits; any thread. Returns 0.
 * Errors: -EAGAIN (full, or senders are waiting), -EPIPE (closed). */
TIDE_EXTERN int tide_mpsc_try_send(tide_mpsc_t *ch, const void *item);

/* tide_mpsc_send_blocking: as the send future, for a thread that runs no
 * executor: block the calling thread until the item is in the channel
 * (0) or the channel is closed (-EPIPE; the item was not sent). It
 * returns as soon as the receiver takes an item or anybody closes the
 * channel, so a receiver that stops receiving must close the channel.
 * Never call it from an executor's thread: it would block the loop, and
 * the receiver with it. Errors: -EPIPE; -EINVAL (NULL). */
TIDE_EXTERN int tide_mpsc_send_blocking(tide_mpsc_t *ch, const void *item);

/* tide_mpsc_len: items in the channel now (a snapshot). Any thread. */
TIDE_EXTERN size_t tide_mpsc_len(tide_mpsc_t *ch);

/* A send (64 bytes on LP64): tide_mpsc_send sets it up. */
typedef struct tide_mpsc_send {
    tide_future_t fut;
    tide__snode_t node; /* private */
    tide_mpsc_t *ch;
    const void *item;
} tide_mpsc_send_t;

/* tide_mpsc_send: a future that copies *item (elem_size bytes, borrowed:
 * valid until the future completes or is dropped) into the channel,
 * waiting for a free slot (backpressure). Result: 0, or -EPIPE (closed or
 * freed: the item was not sent). Cancel safe: a send dropped while pending
 * sent nothing, and a slot reserved for it passes to the next sender. */
TIDE_EXTERN tide_future_t *tide_mpsc_send(tide_mpsc_send_t *op, tide_mpsc_t *ch,
                                          const void *item);

/* A receive (64 bytes on LP64): tide_mpsc_recv sets it up. */
typedef struct tide_mpsc_recv {
    tide_future_t fut;
    tide__snode_t node; /* private */
    tide_mpsc_t *ch;
    void *out;
} tide_mpsc_recv_t;

/* tide_mpsc_recv: a future that copies the oldest item into out (elem_size
 * bytes). Result: 1 (an item), 0 (closed, and every item sent before the
 * close was received), -EPIPE (freed under it), -EBUSY (another receive
 * is waiting on the channel: there is one receiver). Cancel safe: a
 * receive dropped while pending took nothing. */
TIDE_EXTERN tide_future_t *tide_mpsc_recv(tide_mpsc_recv_t *op, tide_mpsc_t *ch,
                                          void *out);

/* tide_mpsc_try_recv: take the oldest item into out if there is one. For
 * the receiver (any thread, but one receiver). Returns 1 (an item), 0
 * (closed and drained), -EAGAIN (empty). */
TIDE_EXTERN int tide_mpsc_try_recv(tide_mpsc_t *ch, void *out);

/* ------------------------------------------------------------------------
 * Notify: wake one task or all the tasks that wait, as Tokio's Notify.
 *
 * tide_notify_one wakes the task that waited longest, or, when nobody
 * waits, stores one permit that the next tide_notified consumes at once
 * (permits do not add up: at most one is stored). tide_notify_waiters
 * wakes every task that waits now and stores nothing.
 * ------------------------------------------------------------------------ */

/* A notification (80 bytes on x86-64 glibc; fields private). */
typedef struct tide_notify {
    pthread_mutex_t lock; /* private */
    tide__slink_t waiters, granted;
    bool permit;
} tide_notify_t;

/* tide_notify_init: no waiter, no permit. Returns 0; -EINVAL (NULL). */
TIDE_EXTERN int tide_notify_init(tide_notify_t *n);

/* tide_notify_free: complete every future still waiting with -EPIPE (they
 * must still be dropped). The memory is the caller's. Call it on the
 * tasks' thread once no other thread uses n. NULL is a no-op. */
TIDE_EXTERN void tide_notify_free(tide_notify_t *n);

/* tide_notify_one: wake the longest waiting tide_notified, or store the
 * permit if none waits. Any thread. */
TIDE_EXTERN void tide_notify_one(tide_notify_t *n);

/* tide_notify_waiters: wake every tide_notified waiting now (one that has
 * been polled and not completed); store nothing. Any thread. */
TIDE_EXTERN void tide_notify_waiters(tide_notify_t *n);

/* A wait for a notification (56 bytes on LP64): tide_notified sets it
 * up. */
typedef struct tide_notified {
    tide_future_t fut;
    tide__snode_t node; /* private */
    tide_notify_t *n;
} tide_notified_t;

/* tide_notified: a future that completes (result 0) at a notify_one that
 * chose it, a notify_waiters while it waits, or at once on its first poll
 * if a permit is stored (consuming it). -EPIPE if n was freed. A future
 * starts waiting at its first poll. Cancel safe: one dropped after a
 * notify_one chose it, before it saw it, passes the notification on (to
 * the next waiter, or as the permit); nothing else is lost. */
TIDE_EXTERN tide_future_t *tide_notified(tide_notified_t *op, tide_notify_t *n);

/* ------------------------------------------------------------------------
 * Semaphore: a count of permits, acquired and released in any amounts.
 *
 * Fair (FIFO): an acquire that cannot be served waits behind those that
 * came before it, and later ones (even small, even try_acquire) wait
 * behind it, so a large acquire is never starved by small ones. Permits
 * released go to the waiter at the head first (it may hold some while it
 * waits for the rest), then to the next.
 * ------------------------------------------------------------------------ */

/* A semaphore (88 bytes on x86-64 glibc; fields private). */
typedef struct tide_semaphore {
    pthread_mutex_t lock; /* private */
    size_t permits;       /* free: not assigned to any waiter */
    tide__slink_t waiters, granted;
    bool closed;
} tide_semaphore_t;

/* TIDE_SEMAPHORE_MAX: the most permits a semaphore may hold. */
#define TIDE_SEMAPHORE_MAX (SIZE_MAX >> 2)

/* tide_semaphore_init: a semaphore with `permits` free permits. Returns
 * 0. Errors: -EINVAL (NULL), -EOVERFLOW (over TIDE_SEMAPHORE_MAX). */
TIDE_EXTERN int tide_semaphore_init(tide_semaphore_t *s, size_t permits);

/* tide_semaphore_free: complete every acquire still waiting with -EPIPE
 * (they must still be dropped), including those given their permits but
 * not yet polled. The memory is the caller's. On the tasks' thread, once
 * no other thread uses s. NULL is a no-op. */
TIDE_EXTERN void tide_semaphore_free(tide_semaphore_t *s);

/* tide_semaphore_close: every waiting and later acquire fails with -EPIPE
 * (an acquire already given its permits still completes with them);
 * release still works. Idempotent; any thread. */
TIDE_EXTERN void tide_semaphore_close(tide_semaphore_t *s);

/* tide_semaphore_try_acquire: take n permits now if they are free and no
 * acquire waits (fairness). Any thread. Returns 0. Errors: -EAGAIN, -EPIPE
 * (closed). n == 0 always succeeds. */
TIDE_EXTERN int tide_semaphore_try_acquire(tide_semaphore_t *s, size_t n);

/* tide_semaphore_release: give n permits back (or add new ones): to the
 * waiters at the head first. Any thread. Returns 0. Errors: -EOVERFLOW
 * (the count would exceed TIDE_SEMAPHORE_MAX; nothing was released). */
TIDE_EXTERN int tide_semaphore_release(tide_semaphore_t *s, size_t n);

/* tide_semaphore_available: the free permits now (a snapshot). */
TIDE_EXTERN size_t tide_semaphore_available(tide_semaphore_t *s);

/* An acquire (72 bytes on LP64): tide_semaphore_acquire sets it up. */
typedef struct tide_semaphore_acquire {
    tide_future_t fut;
    tide__snode_t node; /* private */
    tide_semaphore_t *s;
    size_t n, got; /* wanted; assigned so far */
} tide_semaphore_acquire_t;

/* tide_semaphore_acquire: a future that takes n permits, waiting its turn
 * (FIFO). Result: 0 (the caller holds n permits: give them back with
 * tide_semaphore_release), -EPIPE (closed or freed; it holds none), or
 * -EINVAL (n over TIDE_SEMAPHORE_MAX: it could never be granted).
 * n == 0 completes at once. Cancel safe: a dropped acquire gives back the
 * permits assigned to it (all n if it was complete but not yet polled),
 * and the next waiter proceeds. */
TIDE_EXTERN tide_future_t *tide_semaphore_acquire(tide_semaphore_acquire_t *op,
                                                  tide_semaphore_t *s,
                                                  size_t n);

#ifdef __cplusplus
}
#endif
#endif
