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
 *   conn.c       a connection's task, its lent buffer, the idle list,
 *                the idle reaper and eviction
 *   limits.c     the door: --max-conns (and eviction at the limit),
 *                --max-conns-per-addr (a table shared by the threads)
 *   pool.c       the per-thread buffer pool, --max-buffer-memory
 *   level.c      waiting for a condition another thread makes true
 *   stats.c      the counters and their report
 *   log.c        the log
 *   options.c    the command line's parser (pure, fuzzed on its own)
 *   tls.c        --tls-cert, --tls-key, --tls-ca: the TLS config
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
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tide.h>

#include "options.h"

/* log.c ------------------------------------------------------------------
 * One line each on stderr or in --log-file, "echod: " first, when the
 * verbosity is at least level (ECHOD_QUIET lines always appear). Any
 * thread; never blocks: a line that finds the log's ring full is dropped
 * and counted (see log.c). */

extern int verbosity;

void logmsg(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Open path (NULL: stderr) for appending; the log's writer thread (with
 * every signal blocked) starts with the first line logged or the first
 * reopen. Returns 0, or -errno with a message in err. */
int log_start(const char *path, char *err, size_t errsize);
/* --log-file, or NULL (stderr). */
const char *log_file(void);
/* Ask the writer to reopen --log-file once the lines queued so far are
 * written (SIGHUP, after logrotate renamed it). Never blocks. */
void log_reopen(void);
/* Lines dropped so far (the ring was full, or writing failed). */
uint64_t log_dropped(void);
/* Flush (while the writer makes progress: at most a second without),
 * then end the writer. */
void log_stop(void);

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
    counter_t refused_addr; /* of refused: over --max-conns-per-addr */
    counter_t evicted;      /* closed to make room (--max-conns) */
    counter_t mem_waits;    /* reads paused for --max-buffer-memory */
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
tide_future_t *until(until_t *u, tide_notify_t *n, bool (*holds)(const void *),
                     const void *arg);

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
 * of busy connections does not pin its memory for ever (buffers of a page
 * or more are mappings of their own, so a freed one really goes back to
 * the system: see pool.c). With --max-buffer-memory, each buffer that
 * exists (lent or kept) holds a permit of `budget`, shared by the
 * threads. */

typedef struct pool {
    void *head;
    size_t nfree, keep, size;
    size_t map_size;          /* mmap'd buffers: size in whole pages; 0:
                               * malloc'd (smaller than a page) */
    tide_semaphore_t *budget; /* --max-buffer-memory, or NULL */
    atomic_uint *waiting;     /* connections waiting for a permit */
} pool_t;

/* Set up p for buffers of size bytes, keeping at most keep. */
void pool_init(pool_t *p, size_t size, size_t keep, tide_semaphore_t *budget,
               atomic_uint *waiting);
/* The memory one buffer takes (what a permit of the budget stands for). */
size_t pool_buffer_cost(size_t size);
/* A buffer of p->size bytes, or NULL with *err: -ENOMEM, or -ENOBUFS (the
 * budget is spent: acquire a permit of p->budget, then pool_new). */
void *pool_get(pool_t *p, int *err);
/* A new buffer for a permit the caller holds (it becomes the buffer's),
 * or NULL (out of memory; the permit is given back). */
void *pool_new(pool_t *p);
/* Give b back (NULL: nothing). */
void pool_put(pool_t *p, void *b);
/* Would pool_put(p, b) keep b on the free list, so that the next pool_get
 * gives it straight back? Then a caller about to do both may keep b.
 * Inline: it is asked once per echoed message. */
static inline bool pool_would_keep(const pool_t *p) {
    return p->nfree < p->keep &&
           (p->waiting == NULL ||
            atomic_load_explicit(p->waiting, memory_order_relaxed) == 0);
}
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
    unsigned next_id;     /* connection numbers, for --verbose */
    tide_notify_t closed; /* notified when the last connection closes */
    struct conn *idle_head, *idle_tail; /* D.track_idle: see conn.c */
    level_t stop;  /* 1: stop accepting and drain; 2: now */
    bool draining; /* connections end rather than wait to read */
    int start_rc;
} worker_t;

/* A listening socket handed down to the daemon (activate.c). */
typedef struct inherited {
    int fd;             /* worker 0's listener owns it; the others dup it */
    const char *origin; /* "systemd" or "--listen-fd" */
    char name[64];      /* systemd's LISTEN_FDNAMES entry, or "" */
    tide_addr_t addr;   /* its address, for the "listening on" line */
} inherited_t;

extern struct daemon {
    echod_options_t opt;
    inherited_t inh[ECHOD_MAX_LISTEN]; /* systemd's first, then --listen-fd */
    size_t ninh;
    tide_addr_t addr[ECHOD_MAX_LISTEN]; /* bound addresses, in order */
    bool unix_bound[ECHOD_MAX_LISTEN];  /* a socket file to remove at exit */
    worker_t *workers;
    tide_semaphore_t slots;     /* --max-conns: one per connection */
    tide_semaphore_t bufmem;    /* --max-buffer-memory: one permit
                                         * per buffer (see pool.c) */
    atomic_uint bufmem_waiting; /* connections waiting for one */
    bool track_idle;            /* connections are on idle lists:
                                         * --idle-timeout, or eviction */
    bool evict;                 /* evict at --max-conns */
    level_t finished;           /* worker threads that are done */
    pthread_mutex_t start_mu;
    pthread_cond_t start_cv;
    unsigned started; /* workers that tried to start */
#if TIDE_HAVE_TLS
    /* --tls-cert: one config (SSL_CTX), loaded at start-up, shared by
     * every thread's connections (OpenSSL allows that once the SSL_CTX
     * is no longer changed); NULL: plain TCP. */
    tide_tls_config_t *tls;
#endif
} D;

/* The worker whose thread this is: every connection of a thread belongs
 * to its worker, so a connection does not carry a pointer to it. */
extern _Thread_local worker_t *self;

/* tls.c -------------------------------------------------------------------
 * With --tls-cert, every accepted connection is a TLS stream over its
 * socket (conn.c), made from D.tls. */

/* Load the --tls-* files into D.tls (nothing without --tls-cert).
 * Returns 0, or -1 with a message in err (a bad file, or a tide built
 * without OpenSSL). Call before any listener starts. */
int tls_setup(char *err, size_t errsize);
/* Free D.tls (after every connection is gone). */
void tls_teardown(void);
/* Is TLS on (--tls-cert)? */
bool tls_on(void);

/* How long a TLS handshake may take: --idle-timeout, or this without. */
#define ECHOD_TLS_HANDSHAKE_USEC (10u * 1000000u)

/* stats.c ---------------------------------------------------------------- */

/* Log every worker's counters, summed, on one line (even with --quiet). */
void print_counters(void);
/* Publish w's listeners' accept backoffs into w's counters (w's thread). */
void publish_backoffs(worker_t *w);

/* conn.c ----------------------------------------------------------------- */

/* A new connection from peer, accepted by worker w: refuse it (see
 * limits_enter) or give it a task. has_slot: the acceptor already holds
 * its --max-conns slot (--max-conns-wait). Takes sock in every case. */
void admit(worker_t *w, tide_conn_t *sock, const tide_addr_t *peer,
           bool has_slot);
/* With --idle-timeout: spawn w's reaper task. Returns 0 or -errno. */
int reaper_start(worker_t *w);
/* Close the connection of worker w (its thread) idle the longest, if it
 * has been idle at least --evict-idle, handing its --max-conns slot to
 * the caller. Returns whether one was. */
bool conn_evict_idlest(worker_t *w);

/* w starts draining (w's thread): from now on each of its connections
 * half closes and ends as soon as it would wait for input; those waiting
 * now are woken to do so. */
void drain_wake(worker_t *w);

/* limits.c ---------------------------------------------------------------
 * The door. A newcomer over --max-conns-per-addr is refused; at
 * --max-conns it evicts (conn_evict_idlest) or is refused. */

typedef struct addr_slot addr_slot_t;

/* Set up the per-address table (with --max-conns-per-addr). Returns 0 or
 * -errno. */
int limits_init(void);
void limits_free(void);
/* May a connection from peer, accepted by w (on its thread), be opened?
 * true: it holds a --max-conns slot (if there is a limit) and *slot is
 * its place in the per-address table (or NULL) until limits_leave. false:
 * refused and counted (a slot the acceptor held, has_slot, is given
 * back); why says which limit, for the log. */
bool limits_enter(worker_t *w, const tide_addr_t *peer, bool has_slot,
                  addr_slot_t **slot, const char **why);
/* A connection admitted by limits_enter closed: give its place back, and
 * its slot unless it handed it on (it was evicted). Any thread. */
void limits_leave(addr_slot_t *slot, bool release_slot);

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

/* The signals worker 0 handles (doc/tide-echod.1, SIGNALS), nginx's
 * convention: INT and TERM stop (a drain bounded by --drain-timeout; a
 * second one closes at once), QUIT stops with a drain bounded by nothing,
 * HUP reopens --log-file, USR1 prints the counters, USR2 is logged and
 * ignored. Every other thread blocks them all. */
enum {
    SIGNAL_INT,
    SIGNAL_TERM,
    SIGNAL_QUIT,
    SIGNAL_HUP,
    SIGNAL_USR1,
    SIGNAL_USR2,
    NSIGNALS
};

extern const int signal_number[NSIGNALS];
extern const char *const signal_name[NSIGNALS];

/* Block the signals above in the calling thread; *old: the mask before. */
void block_signals(sigset_t *old);

typedef struct signals {
    tide_signal_t s[NSIGNALS];
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
