/*
 * tide/task.h: cancellation tokens, scopes (structured concurrency on a
 * borrowed loop) and the blocking pool.
 *
 * A scope owns the tasks spawned into it: awaiting it waits for every
 * child; cancelling it, or its deadline passing, aborts every child at its
 * next pending point (as tide_join_abort: the executor drops the child's
 * future instead of polling it again, so its drop function disarms what it
 * waited on); freeing it aborts what is left. Scopes nest: cancelling a
 * scope cancels the scopes created inside it, so a child scope is bounded
 * by the earliest deadline of its ancestors. Shutting a server down is
 * cancelling its top scope.
 *
 * Memory: tokens, scopes and their futures live in the caller's memory;
 * spawning a child allocates its task, as tide_spawn does, and nothing
 * else does (a deadline's timer sits in the executor's timer heap, which
 * grows as tide/time.h says).
 *
 * Threads: tokens and scopes belong to their executor's thread. The
 * blocking pool runs functions on threads of its own and completes their
 * futures on the executor's thread.
 */
#ifndef TIDE_TASK_H
#define TIDE_TASK_H

#include "tide/core.h"
#include "tide/time.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------
 * Cancellation tokens
 *
 * A token is cancelled once (later cancels are no-ops); any number of
 * tasks may check it (tide_token_is_cancelled) or await it
 * (tide_token_cancelled). Executor's thread only.
 * ------------------------------------------------------------------------ */

/* A cancellation token (40 bytes on LP64; private fields). */
typedef struct tide_token {
    tide_waitq_t q;                     /* private: the awaiting futures */
    void (*hook)(struct tide_token *t); /* private: a scope's */
    bool cancelled;                     /* private */
} tide_token_t;

/* tide_token_init: a token that is not cancelled. */
TIDE_EXTERN void tide_token_init(tide_token_t *t);

/* tide_token_cancel: cancel t and wake everything that awaits it. A
 * scope's token (tide_scope_token) cancels its scope too. Idempotent. */
TIDE_EXTERN void tide_token_cancel(tide_token_t *t);

/* tide_token_is_cancelled: true once t was cancelled. */
TIDE_EXTERN bool tide_token_is_cancelled(const tide_token_t *t);

/* tide_token_free: release t; futures still awaiting it complete with
 * -EBADF. It does not cancel t. */
TIDE_EXTERN void tide_token_free(tide_token_t *t);

/* The future of tide_token_cancelled (48 bytes on LP64). */
typedef struct tide_token_wait {
    tide_future_t fut;
    tide_waiter_t w;   /* private */
    tide_token_t *tok; /* private */
} tide_token_wait_t;

/* tide_token_cancelled: a future ready once t is cancelled (at once if it
 * is); result 0, or -EBADF if t was freed first. Cancel safe: dropping it
 * loses nothing. */
TIDE_EXTERN tide_future_t *tide_token_cancelled(tide_token_wait_t *w,
                                                tide_token_t *t);

/* ------------------------------------------------------------------------
 * Scopes
 *
 * The result of a scope (of tide_scope_wait, and tide_scope_error) is its
 * first failure: -ETIMEDOUT if its deadline (or an ancestor's) passed,
 * -ECANCELED if it (or an ancestor) was cancelled, the result of the first
 * child that completed with a negative value, else 0. Children aborted by
 * the scope's cancellation complete with -ECANCELED and do not count as
 * failures.
 * ------------------------------------------------------------------------ */

/* Flags for tide_scope_init. */
enum {
    /* The first child that completes with a negative result cancels the
     * scope (and so aborts its siblings). */
    TIDE_SCOPE_FAIL_FAST = 1u << 0
};

/* A scope (216 bytes on LP64; private fields): initialize it where it
 * stays, and never copy or move it. */
typedef struct tide_scope {
    tide_token_t token;               /* private: cancelled with the scope */
    tide_waitq_t q;                   /* private: tide_scope_wait's futures */
    tide_exec_t *exec;                /* private */
    struct tide_scope *parent;        /* private */
    struct tide_scope *kids;          /* private: child scopes */
    struct tide_scope *sprev, *snext; /* private: siblings in parent->kids */
    void *children;                   /* private: the child tasks */
    size_t nchildren;                 /* private */
    uint64_t deadline;                /* private: own; UINT64_MAX: none */
    tide_sleep_t timer;               /* private: fires at the deadline */
    tide_wakeable_t wk;               /* private: what the timer wakes */
    intptr_t error;                   /* private */
    unsigned flags;                   /* private */
    bool timer_on;                    /* private */
} tide_scope_t;

/* tide_scope_init: an empty scope of tasks on ex, with no deadline.
 * flags: 0 or TIDE_SCOPE_FAIL_FAST. Returns 0. Errors: -EINVAL (NULL, an
 * unknown flag). Executor's thread. The scope must be freed
 * (tide_scope_free) before the executor is. */
TIDE_EXTERN int tide_scope_init(tide_scope_t *s, tide_exec_t *ex,
                                unsigned flags);

/* tide_scope_init_child: a scope inside parent, on parent's executor: it
 * is cancelled with parent (with parent's reason: -ETIMEDOUT when
 * parent's deadline passed), so its deadline is at most its ancestors'
 * (see tide_scope_deadline). If parent is cancelled already, so is s.
 * Freeing parent first cancels s and unlinks it. Returns 0. Errors:
 * -EINVAL (NULL, unknown flag). */
TIDE_EXTERN int tide_scope_init_child(tide_scope_t *s, tide_scope_t *parent,
                                      unsigned flags);

/* tide_scope_spawn: spawn fut as a child of s (allocating its task, as
 * tide_spawn does). The child runs until it completes, or is aborted by
 * the scope's cancellation or its free. join: a join handle as
 * tide_spawn's, or NULL.
 * Returns 0. Errors: -ECANCELED (s is cancelled: no new children), and
 * those of tide_spawn (-EINVAL, -EBUSY, -ENOMEM, -ESHUTDOWN); on error fut
 * is not taken. Executor's thread (from a task or not; from a child too). */
TIDE_EXTERN int tide_scope_spawn(tide_scope_t *s, tide_future_t *fut,
                                 tide_join_t *join);

/* tide_scope_cancel: cancel s (its result becomes -ECANCELED unless it had
 * failed already), its token and its child scopes, and abort every child:
 * each is dropped at its next pending point (before the executor's next
 * turn for those that wait; when its poll returns for one that cancels
 * its own scope). Awaiting s then completes once every child is dropped.
 * Idempotent. */
TIDE_EXTERN void tide_scope_cancel(tide_scope_t *s);

/* tide_scope_set_deadline: cancel s with -ETIMEDOUT once tide_now() >=
 * deadline (at once if it has passed); replaces the deadline set before;
 * UINT64_MAX removes it. Returns 0. Errors: -ENOMEM (the executor's timer
 * heap could not grow: nothing changed). */
TIDE_EXTERN int tide_scope_set_deadline(tide_scope_t *s, uint64_t deadline);

/* tide_scope_deadline: the deadline that bounds s: the earliest of its own
 * and its ancestors'; UINT64_MAX if none has one. O(depth). */
TIDE_EXTERN uint64_t tide_scope_deadline(const tide_scope_t *s);

/* tide_scope_token: s's token (cancelled with s; cancelling it cancels s):
 * what tasks, children or not, check or await to hear of the
 * cancellation. Valid until tide_scope_free. */
TIDE_EXTERN tide_token_t *tide_scope_token(tide_scope_t *s);

/* tide_scope_len: how many children have not completed yet. */
TIDE_EXTERN size_t tide_scope_len(const tide_scope_t *s);

/* tide_scope_error: s's result so far (see above). */
TIDE_EXTERN intptr_t tide_scope_error(const tide_scope_t *s);

/* tide_scope_free: abort every child left (each is dropped before the
 * executor's next turn, after this returns, so its future must not use s
 * in its drop), cancel and unlink the child scopes, complete the futures
 * awaiting s or its token with -EBADF, and stop the deadline's timer. The
 * scope's memory may then be reused. Executor's thread; legal from a
 * child. NULL is a no-op. */
TIDE_EXTERN void tide_scope_free(tide_scope_t *s);

/* The future of tide_scope_wait (48 bytes on LP64). */
typedef struct tide_scope_wait {
    tide_future_t fut;
    tide_waiter_t w;     /* private */
    tide_scope_t *scope; /* private */
} tide_scope_wait_t;

/* tide_scope_wait: a future ready once s has no child left (at once if it
 * has none); result: s's result (see above), or -EBADF if s was freed
 * first. Cancel safe: dropping it leaves the scope and its children as
 * they were. */
TIDE_EXTERN tide_future_t *tide_scope_wait(tide_scope_wait_t *w,
                                           tide_scope_t *s);

/* ------------------------------------------------------------------------
 * The blocking pool
 *
 * tide_spawn_blocking runs a function that blocks (a file read, a DNS
 * library, a compression call) on one of a small pool of threads that
 * belong to the executor, so that the loop keeps running, and completes a
 * future with the function's result on the executor's thread. The threads
 * start lazily, one more each time a job is queued while none is idle, up
 * to the pool's size (4 unless tide_blocking_set_threads says otherwise),
 * and stay until the executor is freed, which cancels the queued jobs and
 * joins the threads after their running jobs return. Jobs start in the
 * order they were queued (first polled); with more jobs than threads, the
 * rest wait in the queue.
 * ------------------------------------------------------------------------ */

/* A blocking function: runs on a pool thread; its return value is the
 * future's result. */
typedef intptr_t (*tide_blocking_fn)(void *arg);

/* The future of tide_spawn_blocking (96 bytes on LP64; private fields):
 * it is also the job's node in the pool's queue. */
typedef struct tide_blocking {
    tide_future_t fut;
    tide_blocking_fn fn;               /* private */
    void *arg;                         /* private */
    struct tide_blocking *prev, *next; /* private: the pool's queue */
    void *pool;                        /* private */
    void *worker;                      /* private: running it */
    tide_waker_t waker;                /* private */
    intptr_t value;                    /* private */
    void (*discard)(intptr_t value);   /* private */
    int state;                         /* private */
} tide_blocking_t;

/*
 * tide_spawn_blocking: a future that runs fn(arg) on the executor's
 * blocking pool and completes with its result. The job is queued at the
 * future's first poll (on an executor: cx->exec).
 *
 * Result: fn's return value; -ENOMEM (the pool could not be created),
 * -EAGAIN (no pool thread could be started), -ECANCELED (the executor was
 * freed before fn ran), -EINVAL (polled without an executor).
 *
 * Cancel safety: dropping the future before fn started removes it from
 * the queue, and fn never runs. Dropped after fn started, fn runs to
 * completion on its thread and its result is discarded: whatever fn
 * allocated or opened for its result is then lost unless arg says where
 * to find it. fn and arg must stay valid until the future is dropped or
 * completes, and until the executor is freed if fn may be running.
 *
 * fn runs on another thread: it must not touch the executor or anything
 * of its thread (futures, tasks, streams), except wakers.
 */
TIDE_EXTERN tide_future_t *tide_spawn_blocking(tide_blocking_t *b,
                                               tide_blocking_fn fn, void *arg);

/* tide_blocking_on_discard: have the pool thread call discard(result)
 * when fn returns for a future that was dropped while fn ran (to close a
 * descriptor fn opened, say: fn's arg may be gone by then, so discard
 * gets only the result). Set it before the first poll. */
TIDE_EXTERN void tide_blocking_on_discard(tide_blocking_t *b,
                                          void (*discard)(intptr_t value));

/* tide_blocking_set_threads: the most threads ex's blocking pool may run
 * (n > 0; default 4). Lowering it below the threads already started
 * leaves those running (they are not stopped). Returns 0. Errors:
 * -EINVAL (n == 0), -ENOMEM, -ESHUTDOWN. Executor's thread. */
TIDE_EXTERN int tide_blocking_set_threads(tide_exec_t *ex, unsigned n);

/* Counters of an executor's blocking pool. */
typedef struct tide_blocking_stats {
    unsigned threads; /* started (and not yet joined) */
    unsigned idle;    /* of those, waiting for a job */
    unsigned max;     /* the pool's size */
    size_t queued;    /* jobs waiting for a thread */
    uint64_t jobs;    /* jobs started since the pool was created */
} tide_blocking_stats_t;

/* tide_blocking_stats: fill *out (all zero, max the default, before the
 * pool was first used). Executor's thread. */
TIDE_EXTERN void tide_blocking_stats(tide_exec_t *ex,
                                     tide_blocking_stats_t *out);

#ifdef __cplusplus
}
#endif
#endif
