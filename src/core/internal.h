/*
 * src/core/internal.h: what the core's files share. Never installed.
 */
#ifndef TIDE_CORE_INTERNAL_H
#define TIDE_CORE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "tide/core.h"

/* An always-on check for invariants whose violation would corrupt memory:
 * unlike assert() it survives -DNDEBUG. */
#define TIDE__CHECK(cond)                                                      \
    do {                                                                       \
        if (__builtin_expect(!(cond), 0))                                      \
            tide__check_failed(#cond, __FILE__, __LINE__);                     \
    } while (0)

_Noreturn void tide__check_failed(const char *what, const char *file, int line);

/* All library allocation goes through these, so a test can make the Nth
 * allocation fail (tide__alloc_fail_at) and check every error path. */
void *tide__malloc(size_t size);
void *tide__calloc(size_t n, size_t size);
void *tide__realloc(void *p, size_t size);
void tide__free(void *p);

/* Test hook: make the allocation `n` calls from now fail (1 = the next
 * one); 0 disarms. Returns how many allocations were made since the last
 * call, so a test can learn how many a constructor makes. */
unsigned long tide__alloc_fail_at(unsigned long n);

/* Task state shared with other threads (atomic bits). */
enum {
    TASK_NOTIFIED = 1u << 0, /* on a run queue, or about to be */
    TASK_COMPLETE = 1u << 1, /* finished: output set, future dropped */
};

/* Task flags only the executor's thread touches. */
enum {
    TASK_RUNNING = 1u << 0,
    TASK_ABORT = 1u << 1,
    TASK_BORROWED = 1u << 2, /* block_on's root: its future is not dropped */
};

struct tide_task {
    atomic_uint refs;  /* executor (while live), join handle, wakers, queue */
    atomic_uint state; /* TASK_NOTIFIED | TASK_COMPLETE */
    unsigned flags;    /* TASK_RUNNING | TASK_ABORT | TASK_BORROWED */
    tide_task_t *qnext;        /* run queue link */
    tide_task_t *prev, *next;  /* the executor's list of live tasks */
    tide_exec_t *exec;
    struct tide__remote *remote; /* the executor's, for wakes from elsewhere */
    tide_future_t *fut;
    intptr_t output;
    tide_waker_t self;        /* borrowed reference handed out in cx */
    tide_waker_t join_waker;  /* the joiner's waker, if it waits */
};

struct tide_fd;

/* What a wake from another thread touches. It outlives the executor for as
 * long as any task does (each task holds a reference), so a thread that
 * wakes a task while the executor is being freed finds `closed` set under
 * the lock instead of freed memory. */
struct tide__remote {
    atomic_uint refs;  /* the executor's and one per task */
    pthread_t owner;   /* the executor's thread: wakes from it take no lock */
    pthread_mutex_t lock;
    bool closed;       /* the executor is gone: drop what comes */
    tide_task_t *head, *tail;
    int efd;           /* eventfd the executor's loop watches */
};

void tide__remote_unref(struct tide__remote *r);

/* The executor's timers (the time layer's, src/reactor/time.c): a binary
 * min-heap of the pending sleeps ordered by (deadline, seq), behind one
 * libevent timer event set for the earliest. seq is the start order, so
 * that equal deadlines fire in the order they were started. */
struct tide__timers {
    struct tide_sleep **heap; /* heap[i]->slot == i + 1 */
    size_t n, cap;
    uint64_t seq;             /* the next start's */
    struct event ev;          /* fires at `at`, for heap[0] */
    uint64_t at;              /* when ev fires, if armed */
    bool assigned, armed;
};

struct tide_exec {
    struct event_base *base;
    bool own_base;
    bool closing;
    bool in_run;       /* inside run_cb */
    bool run_pending;  /* run_ev made active or scheduled, not yet run */
    bool in_block_on;
    bool stop;
    unsigned budget;   /* task polls per turn */
    struct tide__remote *remote;

    struct event run_ev;    /* polls queued tasks */
    struct event notify_ev; /* remote wakes arrive on remote->efd */
    bool notify_added;

    /* local run queue (FIFO), owner thread only */
    tide_task_t *qhead, *qtail;
    size_t queued; /* on the run queue or the deferred list */
    /* tasks that woke themselves while being polled (a yield, a spent
     * budget): they join the run queue when the turn ends, so that they
     * run after the loop has polled; empty outside run_cb */
    tide_task_t *dhead, *dtail;

    /* live tasks */
    tide_task_t *tasks;
    size_t ntasks;

    tide_task_t *root; /* block_on's task */

    /* descriptors registered with tide_fd, indexed by descriptor; owned by
     * the reactor, which sets detach_fds to release them at exec_free */
    struct tide_fd **fds;
    size_t fds_cap;
    size_t nfds;
    void (*detach_fds)(tide_exec_t *ex);
    /* registrations whose events may have nobody left to wake; the reactor
     * disarms those at the end of each turn (sweep_fds) */
    struct tide_fd *sweep;
    void (*sweep_fds)(tide_exec_t *ex);

    /* the net layer's per-executor state (its evdns base), created on first
     * use; net_free releases it at tide_exec_free, after the tasks are
     * dropped and before the base is freed */
    void *net;
    void (*net_free)(tide_exec_t *ex);

    struct tide__timers timers; /* released by timers_free at exec_free */
    void (*timers_free)(tide_exec_t *ex);

    /* signals listening on this executor (tide_signal_t, a reactor type),
     * stopped by detach_signals at tide_exec_free */
    void *signals;
    void (*detach_signals)(tide_exec_t *ex);

    size_t armed; /* events tide has made pending (I/O, timers, signals) */
    tide_exec_stats_t stats;
};

/* executor.c */
void tide__exec_schedule(tide_task_t *t);
void tide__task_unref(tide_task_t *t);
int tide__spawn(tide_exec_t *ex, tide_future_t *fut, unsigned flags,
                tide_task_t **out);

extern const tide_waker_vtable_t tide__task_waker_vtable;

/* Account for an event tide made pending or removed (for the stats and
 * for tests that check nothing is left armed). */
static inline void tide__armed(tide_exec_t *ex, int delta) {
    ex->armed = (size_t)((long)ex->armed + delta);
}

#endif
