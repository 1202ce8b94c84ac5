/*
 * src/core/internal.h: what the core's files share. Never installed.
 */
#ifndef TIDE_CORE_INTERNAL_H
#define TIDE_CORE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
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
    TASK_BWAIT = 1u << 2,    /* a thread blocks in tide_join_wait */
};

/* Task flags only the executor's thread touches. */
enum {
    TASK_RUNNING = 1u << 0,
    TASK_ABORT = 1u << 1,
    TASK_BORROWED = 1u << 2, /* block_on's root: its future is not dropped */
    TASK_NEW = 1u << 3,      /* spawned from another thread: on the remote
                              * queue, not yet on the executor's list */
    TASK_HOOKED = 1u << 4,   /* tide__spawn_ex's hook heads the extra bytes */
};

struct tide_task {
    tide_wakeable_t wk; /* what the task's wakers point at */
    atomic_uint refs;   /* executor (while live), join handle, wakers, queue */
    atomic_uint state;  /* TASK_NOTIFIED | TASK_COMPLETE */
    unsigned flags;     /* TASK_RUNNING | TASK_ABORT | TASK_BORROWED */
    tide_task_t *qnext; /* run queue link */
    tide_task_t *prev, *next;    /* the executor's list of live tasks */
    struct tide__remote *remote; /* the executor's, for wakes from elsewhere,
                                  * and the executor itself (remote->exec) */
    union {
        tide_future_t *fut; /* until TASK_COMPLETE */
        intptr_t output;    /* from TASK_COMPLETE on: the future's result */
    };
    tide_waker_t join_waker; /* the joiner's waker, if it waits */
};

/* A task spawned by tide__spawn_ex is followed by its hook (TASK_HOOKED)
 * and the layer's extra bytes, each max_align_t-aligned: a task that has
 * none pays nothing for them. */
#define TIDE__ALIGN_UP(n)                                                      \
    (((n) + _Alignof(max_align_t) - 1) & ~(_Alignof(max_align_t) - 1))
#define TIDE__TASK_SIZE TIDE__ALIGN_UP(sizeof(struct tide_task))
typedef void (*tide__task_hook_fn)(tide_task_t *t);
static inline tide__task_hook_fn *tide__task_hook(tide_task_t *t) {
    return (tide__task_hook_fn *)(void *)((char *)t + TIDE__TASK_SIZE);
}
/* The extra bytes of a task spawned by tide__spawn_ex with a hook. */
static inline void *tide__task_extra(tide_task_t *t) {
    return (char *)t + TIDE__TASK_SIZE +
           TIDE__ALIGN_UP(sizeof(tide__task_hook_fn));
}

/* What a wake from another thread touches. It outlives the executor for as
 * long as any task does (each task holds a reference), so a thread that
 * wakes a task while the executor is being freed finds `closed` set under
 * the lock instead of freed memory. */
struct tide__remote {
    atomic_uint refs; /* the executor's and one per task */
    pthread_t owner;  /* the executor's thread: wakes from it take no lock */
    pthread_mutex_t lock;
    pthread_cond_t done; /* tide_join_wait: a task with bwaiters finished */
    tide_exec_t *exec;   /* dereferenced on the owner thread only */
    atomic_uint handles; /* live tide_handle_t: they keep notify_ev pending */
    bool closed;         /* the executor is gone: drop what comes */
    tide_task_t *head, *tail;
    int efd; /* eventfd the executor's loop watches */
};

void tide__remote_unref(struct tide__remote *r);

/* What a layer above core attaches to an executor: its per-executor state
 * and the hook that frees it. This is the one way core hears of them (core knows
 * nothing of descriptors, timers, signals or DNS): each layer creates its
 * state on first use and registers it with tide__exec_attach. */
enum tide__ext_id {
    TIDE__EXT_TIME,    /* src/reactor/time.c: the timer heap */
    TIDE__EXT_SIGNAL,  /* src/reactor/signal.c: the listeners */
    TIDE__EXT_REACTOR, /* src/reactor/fd.c: the registrations */
    TIDE__EXT_POOL,    /* src/task/blocking.c: the blocking pool */
    TIDE__EXT_NET,     /* src/net/dns.c: the evdns base */
    TIDE__EXT_MAX
};

typedef struct tide__ext {
    void *state;
    /* at tide_exec_free, after every task was dropped and before the base
     * is freed; layers are freed from the highest id down (net before the
     * reactor, the reactor before time) */
    void (*free)(tide_exec_t *ex, void *state);
} tide__ext_t;

struct tide_exec {
    struct event_base *base;
    bool own_base;
    bool closing;
    bool in_run;      /* inside run_cb */
    bool run_pending; /* run_ev made active or scheduled, not yet run */
    bool in_block_on;
    bool stop;
    unsigned budget; /* task polls per turn */
    int prio;        /* libevent priority of tide's events; -1: default */
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

    tide__ext_t ext[TIDE__EXT_MAX]; /* the upper layers' (see above) */

    size_t armed;      /* events tide has made pending (I/O, timers, signals) */
    size_t registered; /* descriptors registered (kept by the reactor) */
    tide_exec_stats_t stats;
};

/* tide__ev_prio: give ev, just assigned on ex's base, the priority set
 * with tide_exec_set_priority (nothing if none was set). */
static inline void tide__ev_prio(const tide_exec_t *ex, struct event *ev) {
    if (ex->prio >= 0)
        (void)event_priority_set(ev, ex->prio);
}

/* executor.c */
void tide__exec_schedule(tide_task_t *t);

/* A callback of one of tide's own events (the reactor's) that wakes
 * tasks runs them itself, in a turn of their own right after the wakes,
 * rather than through run_ev: libevent's activation and dispatch of
 * run_ev cost about 220 instructions, once per message at one busy
 * connection. Between enter and leave a wake only queues (nothing is
 * polled while the callback walks its waiters); leave runs the turn if
 * anything was queued. enter returns false, and the caller must not
 * call leave, inside a turn already (a task's poll) or while the
 * executor is being freed. The caller must not touch what a task may
 * free after leave. */
static inline bool tide__exec_enter(tide_exec_t *ex) {
    if (ex->in_run || ex->run_pending || ex->closing ||
        event_base_get_num_events(ex->base, EVENT_BASE_COUNT_ACTIVE) != 0)
        return false;
    ex->in_run = true; /* the wakes below only queue (run_later) */
    return true;
}
void tide__exec_leave(tide_exec_t *ex);
void tide__task_unref(tide_task_t *t);
int tide__spawn(tide_exec_t *ex, tide_future_t *fut, unsigned flags,
                tide_task_t **out);
/* tide__spawn with `extra` bytes after the task (tide__task_extra) and a
 * hook called when it finishes (may be NULL). */
int tide__spawn_ex(tide_exec_t *ex, tide_future_t *fut, unsigned flags,
                   size_t extra, void (*on_finish)(tide_task_t *),
                   tide_task_t **out);
/* Make *j a join handle on t (taking a reference), or an empty one if t
 * is NULL: what tide_spawn gives, for the layers that spawn through
 * tide__spawn_ex. */
void tide__join_init(tide_join_t *j, tide_task_t *t);
/* Abort t (tide_join_abort's working part). */
void tide__task_abort(tide_task_t *t);

extern const tide_waker_vtable_t tide__task_waker_vtable;

/* A layer's state on ex, or NULL before it attached any. */
static inline void *tide__exec_ext(const tide_exec_t *ex,
                                   enum tide__ext_id id) {
    return ex->ext[id].state;
}

/* Attach (or replace) a layer's state and its hook. */
static inline void tide__exec_attach(tide_exec_t *ex, enum tide__ext_id id,
                                     void *state,
                                     void (*free_fn)(tide_exec_t *, void *)) {
    ex->ext[id].state = state;
    ex->ext[id].free = free_fn;
}

/* Account for an event tide made pending or removed (for the stats and
 * for tests that check nothing is left armed). */
static inline void tide__armed(tide_exec_t *ex, int delta) {
    ex->armed = (size_t)((long)ex->armed + delta);
}

#endif
