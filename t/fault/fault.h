/*
 * t/fault/fault.h: a test-only shim that makes the system calls of the
 * library fail on a seeded random schedule, and counts the library's live
 * allocations.
 *
 * How it gets in: the test programs that use it are linked with
 * -Wl,--wrap=read,--wrap=write,... (FAULT_WRAP_FLAGS in t/reliability.mk).
 * The linker then sends every call to read() made by an object of the
 * program (the test's own objects and those of the static convenience
 * library src/libtide-internal.la) to __wrap_read() here, which calls
 * __real_read() (the libc function) unless the schedule says to fail.
 * Shared libraries (libc itself, libevent) are not affected: libevent's own
 * epoll_wait and reads of its internal descriptors are never touched. The
 * release library is built without any of this, so it costs nothing there.
 *
 * Injection happens only on descriptors the test targets (fault_target) or
 * on every descriptor once fault_target_all(true) (except those excluded
 * with fault_exclude), so the executor's eventfd and Check's own pipes are
 * left alone. The calls are counted on every descriptor, targeted or not,
 * so a test can prove that the wrapping intercepts the library's calls.
 *
 * What the schedule injects, each with its own rate (per 100,000 calls;
 * see fault_plan_t.edge_triggered for what an edge-triggered reactor can
 * take):
 *   EAGAIN although the descriptor is ready (the real call is not made),
 *   EINTR (not made either), short counts (the real call is made with 1
 *   byte, on stream descriptors only), and the hard errors ECONNRESET
 *   (reads and writes) and EPIPE (writes); for accept4 EMFILE, ENFILE and
 *   ECONNABORTED; for connect EINTR after the real call (the connection goes
 *   on, as after a signal) and ECONNREFUSED.
 * A hard error is sticky (the default): once injected on a descriptor every
 * later read or write on it fails the same way, as on a dead connection.
 * fault_arm_hard injects one at an exact point instead of at random.
 *
 * The random schedule comes from a seed: fault_seed_from_env() reads
 * TIDE_FAULT_SEED (decimal or 0x hex) or picks one from the clock, and
 * prints it so that a failing run can be replayed.
 *
 * close() is wrapped as well, only to forget a descriptor's state.
 *
 * Single-threaded: the shim's state is plain globals, meant for the
 * executor's thread. Allocation counting (fault_live_allocs) is atomic.
 */
#ifndef TIDE_T_FAULT_H
#define TIDE_T_FAULT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* The wrapped calls, for counters and for fault_arm_hard. */
enum fault_fn {
    FAULT_READ,
    FAULT_WRITE,
    FAULT_READV,
    FAULT_WRITEV,
    FAULT_RECV,
    FAULT_SEND,
    FAULT_RECVFROM,
    FAULT_SENDTO,
    FAULT_RECVMSG,
    FAULT_SENDMSG,
    FAULT_ACCEPT4,
    FAULT_CONNECT,
    FAULT_NFN
};

/* What was injected, for counters. */
enum fault_kind {
    FAULT_K_EAGAIN,
    FAULT_K_EINTR,
    FAULT_K_SHORT,
    FAULT_K_ECONNRESET,
    FAULT_K_EPIPE,
    FAULT_K_EMFILE,
    FAULT_K_ENFILE,
    FAULT_K_ECONNABORTED,
    FAULT_K_ECONNREFUSED,
    FAULT_NKIND
};

/* Rates per 100,000 calls on a targeted descriptor. */
typedef struct fault_plan {
    unsigned eagain, eintr, short_io;
    unsigned reset;                        /* ECONNRESET on reads and writes */
    unsigned epipe;                        /* EPIPE on writes */
    unsigned emfile, enfile, econnaborted; /* accept4 */
    unsigned connrefused;                  /* connect */
    bool not_sticky;                       /* hard errors hit one call only */
    /* The reactor is edge-triggered (epoll, where tide's write events
     * use EV_ET; its read events are level-triggered everywhere): inject
     * only what a kernel can really do there. An edge-triggered write
     * event trusts that EAGAIN means "full": it waits for the next edge,
     * and a descriptor that was still writable gives none, so a spurious
     * EAGAIN on a write would stall the stream for ever. With this set,
     * EAGAIN is never injected on writes; reads and accept4 take it, and
     * every other fault. A reactor on libevent's poll backend
     * (EVENT_NOEPOLL=1) is level-triggered both ways and takes the whole
     * schedule. */
    bool edge_triggered;
} fault_plan_t;

#define FAULT_RATE_SCALE 100000u

typedef struct fault_stats {
    unsigned long calls[FAULT_NFN];    /* every descriptor */
    unsigned long targeted[FAULT_NFN]; /* calls on targeted descriptors */
    unsigned long injected[FAULT_NKIND];
} fault_stats_t;

/* fault_seed: set the schedule's seed (0 is replaced by a fixed value). */
void fault_seed(uint64_t seed);

/* fault_seed_from_env: TIDE_FAULT_SEED, or a seed from the clock; prints
 * "<who>: TIDE_FAULT_SEED=<seed>" on stderr and returns it. */
uint64_t fault_seed_from_env(const char *who);

/* fault_rand: the schedule's generator, for tests that want their own
 * reproducible choices from the same seed (splitmix64). */
uint64_t fault_rand(void);

/* fault_plan: the rates to use from now on (NULL: inject nothing). */
void fault_plan(const fault_plan_t *plan);

/* fault_edge_triggered: does a tide executor on this event_base use
 * edge-triggered events (libevent's EV_FEATURE_ET: epoll)? For
 * fault_plan_t.edge_triggered. */
struct event_base;
bool fault_edge_triggered(struct event_base *base);

/* fault_target: inject on fd (or stop, with on = false). Clears any
 * sticky error and armed fault on fd. close() is wrapped too: closing a
 * descriptor forgets everything about it (target, exclusion, sticky error,
 * armed fault), so a reused descriptor number starts clean. */
void fault_target(int fd, bool on);

/* fault_target_all: inject on every descriptor not excluded. */
void fault_target_all(bool on);

/* fault_exclude: never inject on fd (the executor's eventfd, say). */
void fault_exclude(int fd, bool on);

/* fault_exclude_open_fds: exclude every descriptor open now (the
 * executor's eventfd and epoll descriptor, Check's pipes, stdio), so that
 * fault_target_all(true) reaches only the sockets made afterwards. */
void fault_exclude_open_fds(void);

/* fault_arm_hard: the `nth` call (1 = the next) of `fn` on fd fails with
 * `err` (ECONNRESET, EPIPE, EMFILE, ...), whatever the plan says; sticky
 * unless the plan says not_sticky. fd need not be targeted. */
void fault_arm_hard(int fd, enum fault_fn fn, unsigned long nth, int err);

/* fault_sticky_error: the sticky error recorded on fd, or 0. */
int fault_sticky_error(int fd);

/* fault_reset: no plan, no target, no exclusion, no armed fault, counters
 * zeroed; the seed is kept. */
void fault_reset(void);

/* fault_stats: the counters since the last reset. */
void fault_stats(fault_stats_t *out);

/* Live allocations made through tide__malloc / tide__calloc /
 * tide__realloc and not yet given back to tide__free (counted by wrapping
 * those functions). 0 after everything is freed, in any build, with or
 * without a sanitizer. */
long fault_live_allocs(void);

/* The name of a wrapped function or of an injected kind, for messages. */
const char *fault_fn_name(enum fault_fn fn);
const char *fault_kind_name(enum fault_kind k);

#endif
