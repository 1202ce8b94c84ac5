/*
 * samples/echod/echod.h: what the parts of tide-echod share.
 *
 * tide-echod is an echo daemon written with tide the way tide code is
 * meant to be written: one stackless task per connection (read, write
 * back, repeat), one accept task per listener, one executor and event
 * loop per thread. Its files, by concern:
 *
 *   main.c       the command line, name lookup, threads, exit status
 *   lifecycle.c  each worker's start, its main task (signals, the drain)
 *                and its end
 *   listen.c     listening sockets and their accept tasks
 *   activate.c   sockets handed down: systemd's LISTEN_FDS, --listen-fd
 *   conn.c       a connection's task, its lent buffer, the idle reaper
 *   pool.c       the per-thread buffer pool
 *   level.c      waiting for a condition another thread makes true
 *   stats.c      the counters and their report
 *   log.c        the log
 *   options.c    the command line's parser (pure, fuzzed on its own)
 *
 * Threads: with --threads N, each thread runs its own executor on its own
 * event_base and binds its own SO_REUSEPORT socket for each TCP address;
 * the kernel spreads connections among them. Signals are received by the
 * first thread (libevent delivers signals to one event_base per process),
 * which tells the others through a level_t: an atomic level and a
 * tide_notify_t, notified across threads (tide's remote-wake path). A
 * socket handed down (systemd, --listen-fd) is one socket: every thread
 * accepts on it, each through its own duplicate descriptor (listen.c).
 */
#ifndef ECHOD_H
#define ECHOD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tide.h>

#include "options.h"

/* log.c ------------------------------------------------------------------
 * One line each on stderr, "echod: " first, when the verbosity is at
 * least level (ECHOD_QUIET lines always appear). */

extern int verbosity;

void logmsg(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Counters ---------------------------------------------------------------
 * Each is written by one thread only (its worker) and read by the thread
 * that prints them, so a relaxed load and store are enough: no locked
 * instruction on the per-message path. */

typedef _Atomic uint64_t counter_t;

static inline uint64_t ctr_get(counter_t *c) {
    return atomic_load_explicit(c, memory_order_relaxed);
}

static inline void ctr_add(counter_t *c, int64_t n) {
    atomic_store_explicit(c, ctr_get(c) + (uint64_t)n, memory_order_relaxed);
}

typedef struct counters {
    counter_t open, total, refused, bytes_in, bytes_out, backoffs;
} counters_t;

/* level.c ----------------------------------------------------------------
 * until_t: a future ready once a condition holds, rechecked each time a
 * tide_notify_t is notified. Whoever makes the condition true (from any
 * thread) notifies: notify_one keeps a permit when the waiter has not
 * come yet, so no change is missed. Each condition here has one waiter. */

typedef struct until {
    tide_future_t fut;
    tide_notify_t *n;
    bool (*holds)(const void *arg);
    const void *arg;
    bool waiting; /* nf is set up */
    tide_notified_t nf;
} until_t;

/* A future ready once holds(arg), rechecked at each notification of n.
 * Cancel safe. */
tide_future_t *until(until_t *u, tide_notify_t *n,
                     bool (*holds)(const void *), const void *arg);

/* A level that one thread raises and another's task awaits. */
typedef struct level {
    atomic_uint value;
    tide_notify_t raised;
} level_t;

void level_init(level_t *l);
unsigned level_get(level_t *l);
/* Raise l to at least `to` (add 0) or by `add`. Any thread. */
void level_raise(level_t *l, unsigned to, unsigned add);

/* The target of a level wait (an until_t's arg, with level_reached). */
typedef struct level_at {
    level_t *l;
    unsigned target;
} level_at_t;

bool level_reached(const void *arg);

/* pool.c -----------------------------------------------------------------
 * The per-thread buffer pool: a free list threaded through the buffers
 * themselves. It keeps at most `keep` buffers; more are freed, so a burst
 * of busy connections does not pin its memory for ever. */

typedef struct pool {
    void *head;
    size_t nfree, keep, size;
} pool_t;

/* A buffer of p->size bytes, or NULL (out of memory). */
void *pool_get(pool_t *p);
/* Give b back (NULL: nothing). */
void pool_put(pool_t *p, void *b);
void pool_destroy(pool_t *p);

/* The daemon, its workers and listeners ---------------------------------- */

typedef struct listener {
    tide_listener_t *l; /* TCP or Unix */
    tide_join_t accept_task;
    bool has_task;
} listener_t;

typedef struct worker {
    unsigned index;
    tide_exec_t *ex;
    pthread_t thread;
    bool thread_started;
    listener_t ls[ECHOD_MAX_LISTEN];
    size_t nls;
    pool_t pool;
    counters_t ctr;
    unsigned next_id;          /* connection numbers, for --verbose */
    tide_notify_t closed;      /* notified when the last connection closes */
    struct conn *idle_head, *idle_tail; /* --idle-timeout: see conn.c */
    level_t stop;              /* 1: stop accepting and drain; 2: now */
    int start_rc;
} worker_t;

/* A listening socket handed down to the daemon (activate.c). */
typedef struct inherited {
    int fd;              /* worker 0's listener owns it; the others dup it */
    const char *origin;  /* "systemd" or "--listen-fd" */
    char name[64];       /* systemd's LISTEN_FDNAMES entry, or "" */
    tide_addr_t addr;    /* its address, for the "listening on" line */
} inherited_t;

extern struct daemon {
    echod_options_t opt;
    inherited_t inh[ECHOD_MAX_LISTEN];  /* systemd's first, then --listen-fd */
    size_t ninh;
    tide_addr_t addr[ECHOD_MAX_LISTEN]; /* bound addresses, in order */
    bool unix_bound[ECHOD_MAX_LISTEN];  /* a socket file to remove at exit */
    worker_t *workers;
    tide_semaphore_t slots;             /* --max-conns: one per connection */
    level_t finished;                   /* worker threads that are done */
    pthread_mutex_t start_mu;
    pthread_cond_t start_cv;
    unsigned started;                   /* workers that tried to start */
} D;

/* The worker whose thread this is: every connection of a thread belongs
 * to its worker, so a connection does not carry a pointer to it. */
extern _Thread_local worker_t *self;

/* stats.c ---------------------------------------------------------------- */

/* Print every worker's counters, summed, on one line of stderr. */
void print_counters(void);
/* Publish w's listeners' accept backoffs into w's counters (w's thread). */
void publish_backoffs(worker_t *w);

/* conn.c ----------------------------------------------------------------- */

/* A new connection from peer, accepted by worker w: refuse it (over
 * --max-conns) or give it a task. has_slot: the acceptor already holds
 * its --max-conns slot (--max-conns-wait). Takes sock in every case. */
void admit(worker_t *w, tide_conn_t *sock, const tide_addr_t *peer,
           bool has_slot);
/* With --idle-timeout: spawn w's reaper task. Returns 0 or -errno. */
int reaper_start(worker_t *w);

/* listen.c --------------------------------------------------------------- */

/* Bind worker w's socket for --listen number i into w->ls[w->nls] and
 * spawn its accept task. Returns 0, or -errno with a message in err. */
int listen_start(worker_t *w, size_t i, char *err, size_t errsize);
/* Make worker w's listener for inherited socket k (D.inh[k]) into
 * w->ls[w->nls] and spawn its accept task. Returns 0, or -errno with a
 * message in err. */
int inherit_start(worker_t *w, size_t k, char *err, size_t errsize);
/* Close l's socket (its accept task must be gone). */
void free_listener(listener_t *l);

/* activate.c ------------------------------------------------------------
 * Collect the sockets handed down into D.inh: systemd's (LISTEN_PID,
 * LISTEN_FDS, LISTEN_FDNAMES, which it then removes from the environment,
 * as sd_listen_fds(3) does), then --listen-fd's. With any from systemd
 * and no --listen, the default address is not bound. Call it on the main
 * thread before any other starts (it changes the environment). Returns 0,
 * or -1 with a message in err. */
int activation_collect(char *err, size_t errsize);

/* lifecycle.c ------------------------------------------------------------ */

typedef struct signals {
    tide_signal_t intr, term, usr1;
} signals_t;

/* Create w's executor, bind its listeners and spawn their tasks. Returns
 * 0, or -errno with a message in err. */
int worker_start(worker_t *w, char *err, size_t errsize);
/* Serve until told to stop (worker 0: by a signal in sig; the others: by
 * worker 0), then stop accepting and drain. */
void worker_run(worker_t *w, signals_t *sig);
/* Undo worker_start and whatever ran since. */
void worker_finish(worker_t *w);
/* The body of a worker thread other than the first. */
void *worker_thread(void *arg);
/* Tell main that w tried to start, with rc. */
void start_report(worker_t *w, int rc);

#endif
