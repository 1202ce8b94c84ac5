/*
 * tide/core.h: futures, wakers, tasks, the executor and the combinators.
 *
 * The contract (Rust's Future, in C):
 *
 *   A future is a struct that begins with a tide_future_t. Polling it
 *   answers TIDE_READY, with its value in the future's `result` slot (a
 *   count, a value, or a negative errno), or TIDE_PENDING. A poll may answer
 *   PENDING only after it has arranged for the waker in its tide_cx_t to
 *   be woken when polling again could make progress. A pending future may
 *   be polled again at any time, woken or not (the combinators poll every
 *   branch; tide_exec_wake_all wakes every task): it must then answer as
 *   its state says, never assume something happened. A future that
 *   answered READY is never polled again (an always-on check catches it).
 *
 *   Dropping a future (tide_future_drop) releases what it holds: a future
 *   dropped at a point where it answered PENDING deregisters its waker and
 *   disarms its events. Whoever owns a future drops it exactly once, whether
 *   or not it completed; its `result` stays readable after the drop.
 *
 *   Operation futures (a read, a sleep, an accept) live in the caller's
 *   memory: the caller declares the struct, an init function fills it and
 *   returns the tide_future_t * to await. No I/O operation allocates.
 *
 * Writing a task as sequential code (stackless, like Rust's async fn): the
 * locals that live across awaits go into a struct, and the TIDE_BEGIN /
 * TIDE_AWAIT / TIDE_END macros turn the poll function into a state machine
 * that resumes where it last waited:
 *
 *     typedef struct {
 *         tide_future_t fut;    // what the executor polls and drops
 *         tide_async_t  co;     // where the task resumes
 *         tide_sleep_t  nap;    // operation state lives in the task
 *         int           i;
 *     } ticker_t;
 *
 *     static tide_poll_t ticker_poll(tide_future_t *f, tide_cx_t *cx) {
 *         ticker_t *t = TIDE_CONTAINER_OF(f, ticker_t, fut);
 *         TIDE_BEGIN(&t->co);
 *         for (t->i = 0; t->i < 3; t->i++) {
 *             TIDE_AWAIT(&t->co, cx, tide_sleep(&t->nap, 1000));
 *             printf("tick %d\n", t->i);
 *         }
 *         TIDE_END(&t->co, f, 0);     // the task's result is 0
 *     }
 *
 *     static void ticker_drop(tide_future_t *f) {
 *         ticker_t *t = TIDE_CONTAINER_OF(f, ticker_t, fut);
 *         tide_async_drop(&t->co);    // cancels whatever it was awaiting
 *         free(t);
 *     }
 *
 *     static const tide_future_vtable_t ticker_vt = {ticker_poll,
 *                                                    ticker_drop};
 *
 *     ticker_t *t = calloc(1, sizeof *t);
 *     tide_future_init(&t->fut, &ticker_vt);
 *     tide_spawn(ex, &t->fut, NULL);  // detached; ticker_drop frees it
 *
 * Local variables of the poll function do not survive an await: keep
 * anything needed afterwards in the struct. Two awaits may not share one
 * source line (each is a case label named after its line).
 *
 * Threads: everything here runs on the thread that runs the executor's
 * event_base, except the waker calls (wake, wake_by_ref, clone, drop), which
 * are safe from any thread for the wakers tide hands out.
 */
#ifndef TIDE_CORE_H
#define TIDE_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h> /* TIDE_TASK: calloc, free */

#include "tide/error.h"

#ifdef __cplusplus
extern "C" {
#endif

struct event_base;

/* (private) A function that does not return. */
#if defined(__cplusplus)
#define TIDE__NORETURN [[noreturn]]
#else
#define TIDE__NORETURN _Noreturn
#endif

/* (private) Branch hints for the inline fast paths. */
#if defined(__GNUC__)
#define TIDE__LIKELY(x) __builtin_expect(!!(x), 1)
#define TIDE__UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define TIDE__LIKELY(x) (x)
#define TIDE__UNLIKELY(x) (x)
#endif

/* The answer of every poll. Pending and failed are never packed together:
 * the value or -errno goes into the future's result slot. */
typedef enum tide_poll { TIDE_PENDING = 0, TIDE_READY = 1 } tide_poll_t;

/* tide_exec_t: an executor (opaque), which runs tasks inside one
 * event_base: tide_exec_new creates one, tide_exec_free frees it. */
typedef struct tide_exec tide_exec_t;
/* tide_task_t: a spawned task (opaque; reached through its tide_join_t). */
typedef struct tide_task tide_task_t;
typedef struct tide_future tide_future_t;
typedef struct tide_cx tide_cx_t;

/* TIDE_CONTAINER_OF: the `type` whose member `member` is at ptr: how a poll
 * function finds its state from the tide_future_t * it is given. */
#define TIDE_CONTAINER_OF(ptr, type, member)                                   \
    ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* ------------------------------------------------------------------------
 * Wakers
 *
 * A waker is one pointer, to something that can be woken: an object whose
 * first member is a tide_wakeable_t, the pointer to its kind's vtable (as
 * a C++ object begins with its vtable pointer). The executor's wakers
 * point at a task and count references to it, so holding one never keeps
 * freed memory alive and never allocates. Users may build their own (a
 * test that counts wakes, say): a struct that begins with a
 * tide_wakeable_t, and a vtable.
 * ------------------------------------------------------------------------ */

typedef struct tide_waker tide_waker_t;
typedef struct tide_wakeable tide_wakeable_t;

/* What the wakers of one kind do; each function gets the woken object. */
typedef struct tide_waker_vtable {
    tide_waker_t (*clone)(const tide_wakeable_t *w); /* a new reference */
    void (*wake)(const tide_wakeable_t *w);          /* wake, consuming it */
    void (*wake_by_ref)(const tide_wakeable_t *w);   /* wake, keeping it */
    void (*drop)(const tide_wakeable_t *w);          /* release the ref */
} tide_waker_vtable_t;

/* The first member of anything a waker can point at. */
struct tide_wakeable {
    const tide_waker_vtable_t *vtable; /* what its wakers do */
};

/* A waker (8 bytes on LP64). A tide_waker_t value holds one reference:
 * tide_waker_clone makes another, tide_waker_wake and tide_waker_drop
 * release it. */
struct tide_waker {
    const tide_wakeable_t *target; /* NULL: the empty waker */
};

/* TIDE_WAKER_EMPTY: the empty waker as a value, to initialize or assign
 * (C++ has no compound literals and C has no T{...}: one spelling each). */
#ifdef __cplusplus
#define TIDE_WAKER_EMPTY (tide_waker_t{NULL})
#else
#define TIDE_WAKER_EMPTY ((tide_waker_t){NULL})
#endif

/* TIDE_WAKER: a waker value pointing at p (a const tide_wakeable_t *),
 * taking no reference: what a vtable's clone returns once it has counted
 * one, or a borrowed waker for a context. */
#ifdef __cplusplus
#define TIDE_WAKER(p) (tide_waker_t{(p)})
#else
#define TIDE_WAKER(p) ((tide_waker_t){(p)})
#endif

/* tide_waker_clone: a new reference to the same waker (empty if w is). */
TIDE_EXTERN tide_waker_t tide_waker_clone(const tide_waker_t *w);

/* tide_waker_wake: wake and release *w, leaving it empty. No-op if empty.
 * Waking a task twice before it runs queues it once. Any thread. */
TIDE_EXTERN void tide_waker_wake(tide_waker_t *w);

/* tide_waker_wake_by_ref: wake without releasing. No-op if empty. */
TIDE_EXTERN void tide_waker_wake_by_ref(const tide_waker_t *w);

/* tide_waker_drop: release *w and leave it empty. No-op if empty. */
TIDE_EXTERN void tide_waker_drop(tide_waker_t *w);

/* tide_waker_will_wake: true if a and b wake the same thing. */
TIDE_EXTERN bool tide_waker_will_wake(const tide_waker_t *a,
                                      const tide_waker_t *b);

/* tide_waker_register: make *slot hold a reference to w, reusing the one it
 * holds when it already wakes the same task (the common case: no atomic
 * operation), dropping it otherwise. */
TIDE_EXTERN void tide_waker_register(tide_waker_t *slot, const tide_waker_t *w);

/* tide_waker_is_empty: true for the empty waker (one that wakes nothing). */
static inline bool tide_waker_is_empty(const tide_waker_t *w) {
    return w->target == NULL;
}

/* ------------------------------------------------------------------------
 * Waiters and wait queues: the one way to wait
 *
 * A future that waits for something (a stream to become readable, a
 * descriptor, a listener) puts a waiter, embedded in its own memory, on
 * the wait queue of what it waits for: no allocation, any number of
 * waiters per queue, O(1) to leave. Whoever owns the queue wakes every
 * waiter when progress may be possible (each stays on the queue, and must
 * poll again to see whether it can proceed), and closes the queue when it
 * goes away: closing takes every waiter off, records an error in each and
 * wakes it, so a future whose stream was freed by another task completes
 * with that error at its next poll, without touching the freed memory.
 *
 * The rules for a future with a waiter w on queue q:
 *   - at each poll, first check tide_waiter_error(&w): non-zero means q's
 *     owner is gone; complete with it and touch nothing of the owner's;
 *   - on PENDING, tide_waiter_wait(&w, q, cx->waker) (links it once, keeps
 *     the latest waker);
 *   - on READY and on drop, tide_waiter_leave(&w, ...).
 * The owner of q: tide_waitq_wake_all when ready, tide_waitq_close when
 * freed. Single-threaded: a queue and its waiters belong to one executor's
 * thread (the wakers they hold may wake tasks anywhere).
 * ------------------------------------------------------------------------ */

typedef struct tide_waitq tide_waitq_t;

/* A waiter (24 bytes on LP64; its fields are private). Zero it, or
 * tide_waiter_init it, before first use. On a queue, it is a node of the
 * queue's circular list, with a waker; off every queue, prev is NULL and
 * `error` is 0, or the error of a queue closed under it. A waiter on a
 * queue must not move (nor the future it is in: see "Rules" below): its
 * neighbours point at it, and tide checks that they still do at each
 * wait and leave, aborting with a message if not. */
typedef struct tide_waiter {
    struct tide_waiter *prev; /* the queue's links; NULL: on no queue */
    union {
        struct tide_waiter *next; /* on a queue: the queue's links */
        intptr_t error;           /* off every queue: see above */
    };
    tide_waker_t waker; /* woken by the queue's owner */
} tide_waiter_t;

/* Why a waiter leaves its queue. */
typedef enum tide_waitq_left {
    TIDE_WAITQ_DONE = 0,      /* the future completed */
    TIDE_WAITQ_CANCELLED = 1, /* the future was dropped while pending */
} tide_waitq_left_t;

/* What the owner of a queue is told (see tide_waitq_init): one static
 * const table per kind of owner, made with TIDE_WAITQ_OPS:
 *     static const tide_waitq_ops_t my_ops = TIDE_WAITQ_OPS(my_abandoned);
 * on_abandoned, if not NULL, is called when the last waiter leaves
 * because its future was dropped while pending (not when one completes,
 * nor when the queue is closed): the owner may stop watching what the
 * waiters waited for. A waiter that completes tells nobody: its task
 * nearly always waits again at once (the reactor finds out when an event
 * next fires whether it did). */
typedef struct tide_waitq_ops {
    tide_wakeable_t sentinel; /* private: marks the queue's sentinel */
    void (*on_abandoned)(tide_waitq_t *q);
} tide_waitq_ops_t;

/* (private) The vtable that marks a queue's sentinel: never called. */
TIDE_EXTERN extern const tide_waker_vtable_t tide__waitq_sentinel_vtable;

/* TIDE_WAITQ_OPS: the initializer of a tide_waitq_ops_t. */
#define TIDE_WAITQ_OPS(on_abandoned)                                           \
    { {&tide__waitq_sentinel_vtable}, (on_abandoned) }

/* A wait queue (24 bytes; private fields). A queue is a circular list
 * around a sentinel that points at itself: initialize it where it will
 * stay, and never copy or move it. The sentinel's waker slot points at
 * the owner's ops, which is how a leaving waiter tells the sentinel from
 * another waiter and finds the owner's hook, at no cost per queue. */
struct tide_waitq {
    tide_waiter_t head; /* the list's sentinel (private); first, so that
                         * it is the queue */
};

/* tide_waitq_init: an empty queue telling ops (NULL: nothing to tell). */
TIDE_EXTERN void tide_waitq_init(tide_waitq_t *q, const tide_waitq_ops_t *ops);

/* tide_waitq_wake_all: wake every waiter on q (by reference: each keeps
 * its place and its waker until it leaves). A wake may run code (a custom
 * waker) but must not make a waiter leave: tide's task wakers only queue
 * the task. Inline: every readiness event calls it. */
static inline void tide_waitq_wake_all(tide_waitq_t *q) {
    for (tide_waiter_t *w = q->head.next; w != &q->head; w = w->next)
        w->waker.target->vtable->wake_by_ref(w->waker.target); /* not empty */
}

/* tide_waitq_close: take every waiter off q, leave err (a negative errno,
 * such as -EBADF) in it and wake it, releasing its waker. q is empty and
 * usable afterwards; on_abandoned is not called. */
TIDE_EXTERN void tide_waitq_close(tide_waitq_t *q, int err);

/* tide_waitq_is_empty: true if nobody waits on q. O(1). */
static inline bool tide_waitq_is_empty(const tide_waitq_t *q) {
    return q->head.next == &q->head;
}

/* tide_waitq_len: how many waiters are on q. O(n): for tests and
 * diagnostics. */
TIDE_EXTERN size_t tide_waitq_len(const tide_waitq_t *q);

/* tide_waiter_init: a waiter on no queue, with no error. */
static inline void tide_waiter_init(tide_waiter_t *w) {
    w->prev = NULL;
    w->error = 0;
    w->waker = TIDE_WAKER_EMPTY;
}

/* (private) tide_waiter_leave's part that does something, out of line so
 * that the inline test before it costs a caller with nothing to do (the
 * drop of a completed future) no registers. */
TIDE_EXTERN void tide__waiter_unlink(tide_waiter_t *w, tide_waitq_left_t why);

/* (private) w is on a queue, but not where the queue left it: the future
 * holding it was moved (copied) while pending. Aborts with a message. */
TIDE_EXTERN TIDE__NORETURN void tide__waiter_moved(const tide_waiter_t *w);

/* tide_waiter_wait: put w on q (at the tail, unless it is on a queue
 * already: a waiter stays on the queue it first waited on until it
 * leaves) holding a reference to waker, which must not be empty
 * (replacing the one it held, unless it wakes the same task). Waiting
 * clears a closed queue's error. Inline: it is on every pending I/O
 * operation's path. */
static inline void tide_waiter_wait(tide_waiter_t *w, tide_waitq_t *q,
                                    const tide_waker_t *waker) {
    if (w->prev == NULL) {
        tide_waiter_t *last = q->head.prev;
        w->prev = last;
        w->next = &q->head;
        last->next = w;
        q->head.prev = w;
    } else if (TIDE__UNLIKELY(w->prev->next != w)) {
        tide__waiter_moved(w); /* an always-on check: see tide_waiter_t */
    }
    /* the common case, the same task waiting again, costs a comparison;
     * otherwise one call, to the waker's own clone */
    if (w->waker.target != waker->target) {
        if (w->waker.target != NULL)
            tide_waker_drop(&w->waker);
        w->waker = waker->target->vtable->clone(waker->target);
    }
}

/* tide_waiter_leave: take w off its queue (if any) and release its waker
 * (and a closed queue's error); why says whether the wait completed or
 * was cancelled (the last waiter cancelled calls the queue's
 * on_abandoned). O(1). The queue's sentinel is the only node on it whose
 * waker is empty: the last waiter out finds it on both sides, and the
 * queue through it. */
static inline void tide_waiter_leave(tide_waiter_t *w, tide_waitq_left_t why) {
    if (TIDE__LIKELY(w->prev == NULL && w->waker.target == NULL))
        w->error = 0; /* the usual drop of a completed future */
    else
        tide__waiter_unlink(w, why);
}

/* tide_waiter_is_waiting: true while w is on a queue. */
static inline bool tide_waiter_is_waiting(const tide_waiter_t *w) {
    return w->prev != NULL;
}

/* tide_waiter_error: 0, or the error a closed queue left in w (read it
 * before anything else at each poll; see above). */
static inline int tide_waiter_error(const tide_waiter_t *w) {
    return w->prev == NULL ? (int)w->error : 0;
}

/* ------------------------------------------------------------------------
 * Context
 *
 * What a poll receives: the waker of the task being polled and the
 * executor it runs on (where timers and descriptors find their event_base).
 * `budget` is the cooperative budget: I/O futures spend one unit per
 * operation and, when it is spent, answer PENDING after waking the task, so
 * a task that is always ready still yields to its neighbours.
 * ------------------------------------------------------------------------ */

/* The context of a poll (see above). */
struct tide_cx {
    const tide_waker_t *waker; /* the task's waker: clone it to be woken */
    tide_exec_t *exec;         /* the executor polling, or NULL */
    unsigned budget;           /* private: use tide_cx_init */
};

/* TIDE_BUDGET: the operations a task may do in one poll before tide's I/O
 * futures make it yield (see tide_cx_coop). */
#define TIDE_BUDGET 128

/* tide_cx_init: a context for polling a future by hand (tests, or a
 * runtime of your own). exec may be NULL for futures that need none. */
static inline void tide_cx_init(tide_cx_t *cx, tide_exec_t *exec,
                                const tide_waker_t *waker) {
    cx->waker = waker;
    cx->exec = exec;
    cx->budget = TIDE_BUDGET;
}

/* (private) The budget is spent: wake the task, return false. */
TIDE_EXTERN bool tide__cx_spent(tide_cx_t *cx);

/* tide_cx_coop: spend one unit of the task's budget. Returns true if the
 * caller may proceed; false after waking the task: the caller answers
 * PENDING so that other tasks and the host's events get their turn. */
static inline bool tide_cx_coop(tide_cx_t *cx) {
    if (cx->budget > 0) {
        cx->budget--;
        return true;
    }
    return tide__cx_spent(cx);
}

/* ------------------------------------------------------------------------
 * Futures
 * ------------------------------------------------------------------------ */

/* A future's poll function: TIDE_READY with self->result set, or
 * TIDE_PENDING after arranging for cx's waker to be woken. */
typedef tide_poll_t (*tide_poll_fn)(tide_future_t *self, tide_cx_t *cx);
/* A future's drop function: release what self holds, cancelling it if it
 * is still pending. */
typedef void (*tide_drop_fn)(tide_future_t *self);

#if defined(__cplusplus)
#define TIDE__ALIGN8 alignas(8)
#else
#define TIDE__ALIGN8 _Alignas(8)
#endif

/* What the futures of one kind do: one static const table per kind, as
 *     static const tide_future_vtable_t my_vt = {my_poll, my_drop};
 * (8-aligned, whatever the platform: a future keeps its state bits in the
 * low bits of its pointer to it). */
typedef struct tide_future_vtable {
    TIDE__ALIGN8 tide_poll_fn poll; /* called through tide_future_poll */
    tide_drop_fn drop;              /* may be NULL: nothing to release */
} tide_future_vtable_t;

/* The header every future begins with (16 bytes on LP64; see the
 * contract at the top). */
struct tide_future {
    uintptr_t vt;    /* private: the vtable's address | TIDE__FUT_* bits */
    intptr_t result; /* valid once poll answered TIDE_READY */
};

/* DONE: answered READY; DROPPED: dropped; SPAWNED: owned by a task (or
 * borrowed by tide_exec_block_on), so that a second spawn is refused. */
enum { TIDE__FUT_DONE = 1, TIDE__FUT_DROPPED = 2, TIDE__FUT_SPAWNED = 4 };
#define TIDE__FUT_BITS ((uintptr_t)7)

TIDE_EXTERN void tide__fut_misuse(const tide_future_t *f, const char *what);

/* (private) f's vtable and its state bits. */
static inline const tide_future_vtable_t *tide__fut_vtable(
    const tide_future_t *f) {
    return (const tide_future_vtable_t *)(f->vt & ~TIDE__FUT_BITS);
}
static inline unsigned tide__fut_state(const tide_future_t *f) {
    return (unsigned)(f->vt & TIDE__FUT_BITS);
}

/* tide_future_init: set up the header of a future of the kind vt
 * describes (vt must outlive it: a static const table); returns f. */
static inline tide_future_t *tide_future_init(tide_future_t *f,
                                              const tide_future_vtable_t *vt) {
    f->vt = (uintptr_t)vt;
    f->result = 0;
    return f;
}

/* tide_future_poll: poll f once. Polling a future that completed or was
 * dropped aborts the process with a message: it is a use-after-free in
 * waiting, and an always-on check is cheaper than the debugging. */
static inline tide_poll_t tide_future_poll(tide_future_t *f, tide_cx_t *cx) {
    if (f->vt & (TIDE__FUT_DONE | TIDE__FUT_DROPPED))
        tide__fut_misuse(f, "polled after it completed or was dropped");
    if (tide__fut_vtable(f)->poll(f, cx) == TIDE_PENDING)
        return TIDE_PENDING;
    f->vt |= TIDE__FUT_DONE;
    return TIDE_READY;
}

/* tide_future_drop: release what f holds (cancel it if still pending).
 * A second drop of the same future is a no-op. */
static inline void tide_future_drop(tide_future_t *f) {
    if (f == NULL || (f->vt & TIDE__FUT_DROPPED))
        return;
    f->vt |= TIDE__FUT_DROPPED;
    tide_drop_fn drop = tide__fut_vtable(f)->drop;
    if (drop != NULL)
        drop(f);
}

/* tide_future_is_done: true once f answered READY. */
static inline bool tide_future_is_done(const tide_future_t *f) {
    return (f->vt & TIDE__FUT_DONE) != 0;
}

/* ------------------------------------------------------------------------
 * Stackless tasks: await macros
 *
 * TIDE_BEGIN opens a switch on co->line and each await is a case label,
 * as in Duff's device and protothreads. That is what they cost: nothing
 * per await but a store and a jump. Rules, which follow from it:
 *
 *   1. Locals of the poll function do not survive an await: after one,
 *      the function was left and re-entered, and a local holds garbage
 *      (gcc warns only at -O2, with -Wmaybe-uninitialized). Keep anything
 *      needed after an await in the task's struct; a local computed after
 *      the last await before its use (as a stream pointer taken from the
 *      struct at the top of the function) is fine.
 *   2. No await inside a switch of your own (its case labels would
 *      capture the resumption): use if/else around awaits.
 *   3. One await per source line: each is a case label named __LINE__
 *      (two on one line fail to compile: duplicate case value).
 *   4. A future, once polled and until it completes or is dropped, must
 *      not move: a wait queue or the timer heap points at it (Rust's Pin
 *      in C). Keep pending futures in the task's struct, and the struct
 *      where it was allocated. tide checks it, always, where it can (a
 *      waiter's neighbours, a sleep's place in the heap), and aborts with
 *      a message.
 *   5. The awaited future is dropped by TIDE_AWAIT when it completes (its
 *      result stays in tide_async_result) and by tide_async_drop when the
 *      task is dropped first: call tide_async_drop in the task's drop
 *      function, which is what makes aborting a task at any pending point
 *      safe.
 * ------------------------------------------------------------------------ */

/* Where a stackless task resumes: one in the task's state struct, zeroed
 * before the first poll, given to TIDE_BEGIN and the await macros. */
typedef struct tide_async {
    int line;                /* where to resume; 0 = start, -1 = finished */
    tide_future_t *awaiting; /* the future being awaited, or NULL */
    intptr_t result;         /* result of the last completed await */
} tide_async_t;

#if defined(__cplusplus) && __cplusplus >= 201703L
#define TIDE__FALLTHROUGH [[fallthrough]]
#elif defined(__GNUC__) && __GNUC__ >= 7
#define TIDE__FALLTHROUGH __attribute__((fallthrough))
#else
#define TIDE__FALLTHROUGH ((void)0)
#endif

/* TIDE_BEGIN: first statement of a resumable poll function. */
#define TIDE_BEGIN(co)                                                         \
    switch ((co)->line) {                                                      \
    case 0:

/* TIDE_AWAIT: evaluate fexpr (a tide_future_t *) once, then poll it until
 * it is READY, answering PENDING to our caller in between. When it
 * completes its result is in tide_async_result(co) and it has been dropped. */
#define TIDE_AWAIT(co, cx, fexpr)                                              \
    do {                                                                       \
        (co)->awaiting = (fexpr);                                              \
        (co)->line = __LINE__;                                                 \
        TIDE__FALLTHROUGH;                                                     \
    case __LINE__:                                                             \
        if (tide_future_poll((co)->awaiting, (cx)) == TIDE_PENDING)            \
            return TIDE_PENDING;                                               \
        (co)->result = (co)->awaiting->result;                                 \
        tide_future_drop((co)->awaiting);                                      \
        (co)->awaiting = NULL;                                                 \
    } while (0)

/* TIDE_YIELD: give the other tasks and the host's events a turn, then go
 * on: the task is polled again in the executor's next turn, after the loop
 * has polled for I/O and run the host's ready events (as tide_yield). */
#define TIDE_YIELD(co, cx)                                                     \
    do {                                                                       \
        (co)->line = __LINE__;                                                 \
        tide_waker_wake_by_ref((cx)->waker);                                   \
        return TIDE_PENDING;                                                   \
    case __LINE__:;                                                            \
    } while (0)

/* TIDE_RETURN: complete the task or future `fut` with `value`. */
#define TIDE_RETURN(co, fut, value)                                            \
    do {                                                                       \
        (fut)->result = (intptr_t)(value);                                     \
        (co)->line = -1;                                                       \
        return TIDE_READY;                                                     \
    } while (0)

/* TIDE_END: last statement; completes `fut` with `value` if control gets
 * here. */
#define TIDE_END(co, fut, value)                                               \
    default:                                                                   \
        break;                                                                 \
        }                                                                      \
        TIDE_RETURN(co, fut, value)

/* ------------------------------------------------------------------------
 * Declaring a task in a few lines
 *
 * The await macros above work on any future. For the common case, a task
 * on the heap that owns its state, these write the ceremony:
 *
 *     typedef struct {
 *         TIDE_TASK_HEAD;          // the future and where it resumes
 *         tide_conn_t *conn;       // its own fields
 *         ...
 *     } echo_t;
 *
 *     static void echo_cleanup(echo_t *self) { tide_conn_free(self->conn); }
 *
 *     TIDE_TASK(echo_t, echo) {    // the body: self is the state, cx the
 *         TIDE_TASK_BEGIN;         // context
 *         TIDE_TASK_TRY(tide_write_all(&self->wr, s, "hi", 2));
 *         TIDE_TASK_END(0);
 *     }
 *
 * TIDE_TASK(type, name) defines, for a state struct `type` that begins
 * with TIDE_TASK_HEAD and a function `static void name_cleanup(type *)`
 * declared before it (what to release when the task ends, however it
 * ends; it may do nothing):
 *   - name_new(): the state, zeroed, on the heap (calloc), its future set
 *     up; NULL without memory;
 *   - name_spawn(ex, self, join): spawn it (join may be NULL); on failure
 *     it is cleaned up and freed, and the error returned;
 *   - the task's drop: the awaited future dropped (tide_async_drop), then
 *     name_cleanup, then free;
 * and opens the body, a function of self and cx. The await rules above
 * hold. The body's macros find self and cx by those names.
 * ------------------------------------------------------------------------ */

/* TIDE_TASK_HEAD: the first member of a TIDE_TASK's state struct. */
#define TIDE_TASK_HEAD                                                         \
    tide_future_t fut;                                                         \
    tide_async_t co

/* TIDE_TASK: see above. */
#define TIDE_TASK(type, name)                                                  \
    static tide_poll_t name##_body(type *self, tide_cx_t *cx);                 \
    static tide_poll_t name##_poll(tide_future_t *f, tide_cx_t *cx) {          \
        return name##_body(TIDE_CONTAINER_OF(f, type, fut), cx);               \
    }                                                                          \
    static void name##_drop(tide_future_t *f) {                                \
        type *self = TIDE_CONTAINER_OF(f, type, fut);                          \
        tide_async_drop(&self->co);                                            \
        name##_cleanup(self);                                                  \
        free(self);                                                            \
    }                                                                          \
    static const tide_future_vtable_t name##_vt = {name##_poll, name##_drop};  \
    static inline type *name##_new(void) {                                     \
        type *self = (type *)calloc(1, sizeof *self);                          \
        if (self != NULL)                                                      \
            tide_future_init(&self->fut, &name##_vt);                          \
        return self;                                                           \
    }                                                                          \
    static inline int name##_spawn(tide_exec_t *ex, type *self,                \
                                   tide_join_t *join) {                        \
        int rc_ = tide_spawn(ex, &self->fut, join);                            \
        if (rc_ < 0)                                                           \
            tide_future_drop(&self->fut);                                      \
        return rc_;                                                            \
    }                                                                          \
    static tide_poll_t name##_body(type *self, tide_cx_t *cx)

/* TIDE_TASK_BEGIN: in a TIDE_TASK's body, TIDE_BEGIN on self. */
#define TIDE_TASK_BEGIN TIDE_BEGIN(&self->co)
/* TIDE_TASK_AWAIT: in a TIDE_TASK's body, TIDE_AWAIT on self and cx. */
#define TIDE_TASK_AWAIT(f) TIDE_AWAIT(&self->co, cx, (f))
/* TIDE_TASK_RESULT: in a TIDE_TASK's body, the last await's result. */
#define TIDE_TASK_RESULT tide_async_result(&self->co)
/* TIDE_TASK_RETURN: in a TIDE_TASK's body, end the task with v. */
#define TIDE_TASK_RETURN(v) TIDE_RETURN(&self->co, &self->fut, (v))
/* TIDE_TASK_END: a TIDE_TASK's last statement (TIDE_END on self). */
#define TIDE_TASK_END(v) TIDE_END(&self->co, &self->fut, (v))
/* TIDE_TASK_TRY: in a TIDE_TASK's body, await f and, if its result is
 * negative, end the task with it. */
#define TIDE_TASK_TRY(f)                                                       \
    do {                                                                       \
        TIDE_TASK_AWAIT(f);                                                    \
        if (TIDE_TASK_RESULT < 0)                                              \
            TIDE_TASK_RETURN(TIDE_TASK_RESULT);                                \
    } while (0)

/* tide_async_result: the result of the last completed TIDE_AWAIT. */
static inline intptr_t tide_async_result(const tide_async_t *co) {
    return co->result;
}

/* tide_async_drop: drop the future the task is waiting on, if any. Call it
 * from the task's drop function: that is what makes aborting a task at a
 * pending point disarm the events it was waiting on. */
static inline void tide_async_drop(tide_async_t *co) {
    if (co->awaiting != NULL) {
        tide_future_drop(co->awaiting);
        co->awaiting = NULL;
    }
}

/* ------------------------------------------------------------------------
 * Executor
 * ------------------------------------------------------------------------ */

/* Flags for tide_exec_new. */
enum {
    /* When tide creates the event_base: ask libevent for timers with
     * microsecond precision (a timerfd on epoll). Costs one timerfd_settime
     * per loop iteration, so it is off by default; without it the epoll
     * backend rounds a wait up to the next millisecond. */
    TIDE_EXEC_PRECISE_TIMER = 1u << 0
};

/*
 * tide_exec_new: create an executor.
 *
 * base: an event_base the caller owns and runs (embedding: tide adds its
 * events to it and never dispatches, frees or reconfigures it), or NULL to
 * have tide create one of its own, freed by tide_exec_free. One executor
 * per event_base. Create the executor on the thread that will run its loop:
 * wakes from that thread take the lock-free path, all others the locked
 * one.
 *
 * The executor adds two internal events to the base: the one that runs
 * tasks (made active when a task is woken, never pending otherwise) and one
 * on an eventfd that carries wakes from other threads, pending only while
 * the executor has live tasks. So a host's event_base_dispatch keeps running
 * while tide has tasks, and returns as before once it has none.
 *
 * Returns 0 and sets *out. Errors: -EINVAL (out NULL, unknown flag),
 * -ENOMEM, -EMFILE/-ENFILE (no descriptor for the eventfd), -EIO (libevent
 * refused the base or an event).
 */
TIDE_EXTERN int tide_exec_new(tide_exec_t **out, struct event_base *base,
                              unsigned flags);

/*
 * tide_exec_free: drop every task (each task's future is dropped, so its
 * events are disarmed and its drop function runs; their joiners see
 * -ECANCELED), remove every event the executor added, detach descriptors
 * still registered (they are not closed: their tide_fd_free still closes
 * them later), stop signals still listening (a later tide_signal_free is a
 * no-op), and free the base if tide created it. NULL is a no-op.
 * Must not be called from inside a task or while the base is dispatching
 * one of the executor's callbacks. Futures the executor does not own (one
 * borrowed by tide_exec_block_on, one polled by hand) must be dropped
 * before it: their timers and waits refer to it. Wakes from other threads
 * during or after the free are safe and do nothing.
 */
TIDE_EXTERN void tide_exec_free(tide_exec_t *ex);

/* tide_exec_base: the event_base the executor runs on. */
TIDE_EXTERN struct event_base *tide_exec_base(tide_exec_t *ex);

/*
 * tide_exec_block_on: run the executor's own event_base until fut
 * completes, then return 0 (fut->result holds its value). The future is
 * polled as a task; it is borrowed, not dropped: the caller drops it.
 * Other spawned tasks run meanwhile and keep running on later calls.
 *
 * Like Tokio's block_on, it waits forever for a future that nothing will
 * ever wake.
 *
 * Errors: -EINVAL (NULL, or fut already completed or dropped), -EPERM (the
 * base belongs to the caller: tide never dispatches a base it did not
 * create; run your loop instead), -EBUSY (called from inside the loop, or
 * fut is a spawned task's), -EINTR (tide_exec_stop before fut completed;
 * fut is left pending: poll it again with another block_on or drop it. A
 * future that completes in the same poll that calls tide_exec_stop has
 * completed: block_on returns 0), -EDEADLK (the
 * base has no event left, which only happens if libevent refused ours),
 * -ENOMEM, -EIO (event_base_loop failed).
 */
TIDE_EXTERN int tide_exec_block_on(tide_exec_t *ex, tide_future_t *fut);

/* tide_exec_stop: make a running tide_exec_block_on return -EINTR at the
 * end of the current loop iteration (the future stays pending), unless the
 * future completed by then: completion wins. */
TIDE_EXTERN void tide_exec_stop(tide_exec_t *ex);

/* tide_exec_set_budget: how many task polls one turn of the executor may
 * make before it gives the loop back to the host's events (default 1024;
 * 0 restores the default). A budget below the number of tasks that are
 * ready at once costs more than the extra turns: tasks still queued when
 * the loop polls its backend again have their descriptors reported again
 * (tide's read events are level-triggered), one callback each per turn;
 * doc/design.md ("Sharing the loop with the host") has the figures. */
TIDE_EXTERN void tide_exec_set_budget(tide_exec_t *ex, unsigned polls);

/* tide_exec_wake_all: wake every live task of ex, as if each had been
 * woken by one of its wakers: each is polled once more (in this turn or
 * the next, within the budget), whether or not what it waits for has
 * happened. For a flag every task should look at (a server's drain: "end
 * rather than wait for input") without a waiter per wait on a queue of
 * its own. O(live tasks); a task woken twice before it runs is polled
 * once, and a completed task is not polled. A spurious wake is harmless
 * to every future that keeps the contract above (a pending future may be
 * polled at any time). Owner thread only, and may be called from a task's
 * poll (the calling task is woken too: it runs again next turn).
 * Errors: -EINVAL (ex is NULL). */
TIDE_EXTERN int tide_exec_wake_all(tide_exec_t *ex);

/*
 * tide_exec_set_priority: the libevent priority (event_priority_set) of
 * the events tide adds to ex's base: its own two events at once, and from
 * then on the descriptor, timer, listener and evhttp events it assigns
 * (events assigned before the call keep theirs, so call it right after
 * tide_exec_new; signals keep libevent's default). 0 is the most urgent;
 * the base must have been given more than `priority` queues with
 * event_base_priority_init; -1 goes back to libevent's default for what
 * is assigned next.
 *
 * What it is for: libevent runs, in each pass of its loop, every active
 * event of the most urgent priority that has any, and nothing of the
 * lower ones; at one priority every ready event gets one callback per
 * pass, so tide (one turn per pass, polling up to the budget of
 * tide_exec_set_budget) shares the loop with the host's events per
 * event, not per unit of work. Below the host's events (a larger
 * number), tide runs in the passes where the host has nothing ready;
 * above them, the host's events wait while tide has work. doc/design.md
 * ("Sharing the loop") has the measurements.
 *
 * May be called at any time on the executor's thread, from a task's poll
 * too: tide's own events move even while queued to run (a wake, a spawn
 * or a remote wake waiting for the loop), and what they owe still runs.
 * Returns 0. Errors: -EINVAL (NULL ex, priority < -1 or not below
 * event_base_get_npriorities; nothing changed), -EIO (libevent refused
 * the priority; not expected). Executor's thread only.
 */
TIDE_EXTERN int tide_exec_set_priority(tide_exec_t *ex, int priority);

/* Counters, for tests, benchmarks and the curious. */
typedef struct tide_exec_stats {
    size_t tasks;          /* live tasks */
    size_t queued;         /* tasks waiting to be polled */
    size_t armed_events;   /* I/O, timer and signal events tide has pending */
    size_t registered;     /* descriptors registered with tide_fd */
    uint64_t polls;        /* task polls since creation */
    uint64_t turns;        /* runs of the executor's internal event */
    uint64_t yields;       /* turns that left tasks queued for the next turn
                            (out of budget, or tasks that yielded) */
    uint64_t remote_wakes; /* wakes that came from another thread */
    uint64_t io_arms;      /* descriptor events added (an epoll_ctl each) */
    uint64_t io_disarms;   /* descriptor events removed (an epoll_ctl each) */
} tide_exec_stats_t;

/* tide_exec_stats: fill *out with the current counters. */
TIDE_EXTERN void tide_exec_stats(const tide_exec_t *ex, tide_exec_stats_t *out);

/* ------------------------------------------------------------------------
 * Tasks and join handles
 * ------------------------------------------------------------------------ */

/* A join handle lives in the caller's memory. It is a future: awaiting it
 * (tide_join(j)) gives the task's result, or -ECANCELED if the task was
 * aborted or its executor freed first. */
typedef struct tide_join {
    tide_future_t fut;
    tide_task_t *task; /* private */
} tide_join_t;

/*
 * tide_spawn: make fut a task on ex. The task is allocated once, here; from
 * now on the task owns fut and drops it exactly once: after it completes,
 * when it is aborted, or when the executor is freed. The task is polled
 * first from the executor's event, not from inside this call.
 *
 * join: where to put a join handle, or NULL for a detached task.
 *
 * Returns 0. Errors: -EINVAL (NULL ex or fut, or a future that already
 * completed or was dropped), -EBUSY (fut is already a task's, on this or
 * another executor, or borrowed by a running tide_exec_block_on: a future
 * is spawned once), -ENOMEM, -ESHUTDOWN (the executor is being freed). On
 * error fut is not taken: the caller still owns it (and must drop it,
 * unless the error is -EBUSY: then its task does).
 *
 * Must be called on the executor's thread (from a task or not).
 */
TIDE_EXTERN int tide_spawn(tide_exec_t *ex, tide_future_t *fut,
                           tide_join_t *join);

/* tide_join: the handle as a future to await. Result: the task's result or
 * -ECANCELED. Cancel safe: dropping it (or the task awaiting it) detaches
 * the task, which keeps running. */
static inline tide_future_t *tide_join(tide_join_t *j) { return &j->fut; }

/* tide_join_abort: abort the task. If it has not completed, its future is
 * dropped at its next pending point (now, if it is waiting: before the
 * executor's next turn) instead of being polled again; its drop function
 * runs and the joiner sees -ECANCELED. No effect on a completed task. The
 * handle stays valid and must still be awaited, detached or dropped. */
TIDE_EXTERN void tide_join_abort(tide_join_t *j);

/* tide_join_detach: let the task run on without anyone waiting for it.
 * The handle becomes empty; the same as tide_future_drop(tide_join(j)). */
TIDE_EXTERN void tide_join_detach(tide_join_t *j);

/* tide_join_is_finished: true once the task has completed or was dropped,
 * and for an empty handle (detached, or from a failed spawn). Join handles
 * are used on the executor's thread only, except as tide_handle_spawn
 * says (this function is one of those that any thread may call). */
TIDE_EXTERN bool tide_join_is_finished(const tide_join_t *j);

/*
 * tide_join_wait: block the calling thread until the task has completed,
 * then store its result (or -ECANCELED: aborted, or its executor freed
 * first) in *result (may be NULL). For a thread that is not the
 * executor's: a task finishes only on its executor's thread, so waiting
 * there could never return.
 * Returns 0. Errors: -EINVAL (an empty handle), -EDEADLK (called on the
 * executor's thread; await tide_join(j) there instead).
 * Any thread, for a handle that nobody awaits meanwhile. The handle must
 * still be detached or dropped afterwards (from any thread, if it was
 * never awaited).
 */
TIDE_EXTERN int tide_join_wait(tide_join_t *j, intptr_t *result);

/* ------------------------------------------------------------------------
 * Handles: spawning onto an executor from any thread
 *
 * A handle is a reference to an executor that other threads may hold and
 * use (Tokio's Handle). It stays valid after the executor is freed, and
 * then refuses spawns with -ESHUTDOWN; free it with tide_handle_free.
 *
 * What a join handle from tide_handle_spawn can do from a thread that is
 * not the executor's: tide_join_wait (block for the result),
 * tide_join_is_finished (poll for it), and tide_join_detach or
 * tide_future_drop(tide_join(j)) once. What it cannot: be awaited
 * (tide_join is a future of the executor's thread) or tide_join_abort'ed;
 * do either only on the executor's thread, and then only there.
 * ------------------------------------------------------------------------ */

/* tide_handle_t: a thread-safe reference to an executor (opaque). */
typedef struct tide_handle tide_handle_t;

/* tide_exec_handle: a new handle on ex. Executor's thread.
 * Returns 0 and sets *out. Errors: -EINVAL (NULL), -ESHUTDOWN (ex is
 * being freed). */
TIDE_EXTERN int tide_exec_handle(tide_exec_t *ex, tide_handle_t **out);

/* tide_handle_free: release a handle. NULL is a no-op. Any thread. */
TIDE_EXTERN void tide_handle_free(tide_handle_t *h);

/*
 * tide_handle_spawn: make fut a task on h's executor, from any thread.
 * The task is allocated here, by the calling thread; it is handed to the
 * executor through its remote queue (the one wakes from other threads
 * use, under its mutex, with one eventfd write per batch), and fut is
 * first polled on the executor's thread. From the call on, fut belongs
 * to the task: the calling thread must not touch it again (not even its
 * result: read that through the join handle).
 *
 * The executor picks it up at its loop's next pass: its eventfd's event
 * is pending while it has a live task or a live handle (so that a host's
 * loop, which returns when nothing is pending, keeps running for the
 * threads that may spawn; once the last handle is freed and no task is
 * left, it returns again).
 * An accepted task that the executor is freed before polling is dropped
 * on the executor's thread, at tide_exec_free; its joiner sees
 * -ECANCELED.
 *
 * join: where to put a join handle, or NULL (see above for what it can do
 * from this thread).
 * Returns 0. Errors: -EINVAL (NULL h or fut, or fut completed or dropped),
 * -EBUSY (fut is already a task's), -ENOMEM, -ESHUTDOWN (the executor is
 * being or has been freed). On error fut is not taken.
 * Any thread, the executor's included (there it is tide_spawn).
 */
TIDE_EXTERN int tide_handle_spawn(tide_handle_t *h, tide_future_t *fut,
                                  tide_join_t *join);

/* ------------------------------------------------------------------------
 * Combinators. Each borrows the futures it is given and takes over their
 * dropping: it drops each one exactly once (when it completes, when it
 * loses, or when the combinator itself is dropped).
 * ------------------------------------------------------------------------ */

/* join all: READY when every future is; result 0. Each future's own
 * result is in its slot. A woken join all polls every unfinished future
 * (O(n) a wake; fine for the handful it is meant for). Cancel safety: as
 * safe as the least safe of its futures. */
typedef struct tide_join_all {
    tide_future_t fut;
    tide_future_t **futs; /* private */
    size_t n, left;
} tide_join_all_t;

TIDE_EXTERN tide_future_t *tide_join_all(tide_join_all_t *j,
                                         tide_future_t **futs, size_t n);

/* select: READY as soon as one future is; result = its index. The others
 * are dropped at once, so their events are disarmed and they can be read
 * no more. Futures are polled in order, so an earlier one wins a tie.
 * n == 0 completes with -EINVAL. */
typedef struct tide_select {
    tide_future_t fut;
    tide_future_t **futs; /* private */
    size_t n;
} tide_select_t;

TIDE_EXTERN tide_future_t *tide_select(tide_select_t *s, tide_future_t **futs,
                                       size_t n);

/* yield now: PENDING once (after waking itself), READY the next time;
 * result 0. Lets the executor run other tasks and the loop its events: a
 * task that wakes itself while it is being polled (as here, or when its
 * budget is spent) is polled again in the next turn, after the loop has
 * polled for I/O and run the host's ready events, never in the same one.
 * (A task woken by another task runs in the current turn, within the
 * turn's budget of polls.) */
typedef struct tide_yield {
    tide_future_t fut;
    bool yielded; /* private */
} tide_yield_t;

TIDE_EXTERN tide_future_t *tide_yield(tide_yield_t *y);

/* A future that is ready at once with `value`: handy in tests and as a
 * placeholder arm of a select. */
typedef struct tide_ready {
    tide_future_t fut;
    intptr_t value; /* private */
} tide_ready_t;

TIDE_EXTERN tide_future_t *tide_ready(tide_ready_t *r, intptr_t value);

/* A future that is never ready (until dropped). */
TIDE_EXTERN tide_future_t *tide_pending(tide_future_t *f);

#ifdef __cplusplus
}
#endif
#endif
