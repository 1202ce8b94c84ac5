/*
 * t/testutil.h: helpers shared by the tests of the core and the reactor.
 *
 * Everything here is static inline so that each test program takes only
 * what it uses (-Wunused-function stays quiet). The tests link the
 * convenience library, so the hidden test hook tide__alloc_fail_at and the
 * internal structures are reachable; white-box looks at them are marked.
 */
#ifndef TIDE_T_TESTUTIL_H
#define TIDE_T_TESTUTIL_H

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/dns.h>
#include <event2/event_struct.h>

#include <tide.h>

#include "core/internal.h" /* tide__alloc_fail_at, struct tide_task */
#include "net/internal.h"  /* tide__resolve_set_base */

#include "slowdown.h" /* t_slowdown, t_watchdog_ms */

/* Bound for every block_on and loop helper unless a test says otherwise:
 * far above what any test needs, far below the TCase timeout. Scaled by
 * t_slowdown() (see "Watchdogs" below), as every bound here is. A test
 * program whose single steps take longer (check_net: connects and copies of
 * megabytes through loopback under valgrind) defines it before including
 * this header; its TCase timeouts must stay above it. */
#ifndef T_BOUND_MS
#define T_BOUND_MS 5000u
#endif

/* ------------------------------------------------------------------------
 * Assertions in loops. Check's ck_assert_int_eq names the expressions and
 * their values but not the round of a loop that failed; these do:
 * "iteration 7: n == want: got 3, want == 4". `i` is the loop's counter
 * (any integer type); each operand is evaluated once, as in Check's own.
 * ------------------------------------------------------------------------ */

#define T_ASSERT_CMP_AT(i, X, OP, Y, T, F)                                     \
    do {                                                                       \
        T t_x_ = (T)(X), t_y_ = (T)(Y);                                        \
        ck_assert_msg(t_x_ OP t_y_,                                            \
                      "iteration %jd: %s %s %s: got %" F ", want %s %" F,      \
                      (intmax_t)(i), #X, #OP, #Y, t_x_, #OP, t_y_);            \
    } while (0)
#define t_assert_int_eq_at(i, X, Y) T_ASSERT_CMP_AT(i, X, ==, Y, intmax_t, "jd")
#define t_assert_int_ne_at(i, X, Y) T_ASSERT_CMP_AT(i, X, !=, Y, intmax_t, "jd")
#define t_assert_int_lt_at(i, X, Y) T_ASSERT_CMP_AT(i, X, <, Y, intmax_t, "jd")
#define t_assert_int_le_at(i, X, Y) T_ASSERT_CMP_AT(i, X, <=, Y, intmax_t, "jd")
#define t_assert_int_gt_at(i, X, Y) T_ASSERT_CMP_AT(i, X, >, Y, intmax_t, "jd")
#define t_assert_int_ge_at(i, X, Y) T_ASSERT_CMP_AT(i, X, >=, Y, intmax_t, "jd")
#define t_assert_uint_eq_at(i, X, Y)                                           \
    T_ASSERT_CMP_AT(i, X, ==, Y, uintmax_t, "ju")
#define t_assert_uint_ne_at(i, X, Y)                                           \
    T_ASSERT_CMP_AT(i, X, !=, Y, uintmax_t, "ju")
#define t_assert_uint_lt_at(i, X, Y)                                           \
    T_ASSERT_CMP_AT(i, X, <, Y, uintmax_t, "ju")
#define t_assert_uint_le_at(i, X, Y)                                           \
    T_ASSERT_CMP_AT(i, X, <=, Y, uintmax_t, "ju")
#define t_assert_uint_gt_at(i, X, Y)                                           \
    T_ASSERT_CMP_AT(i, X, >, Y, uintmax_t, "ju")
#define t_assert_uint_ge_at(i, X, Y)                                           \
    T_ASSERT_CMP_AT(i, X, >=, Y, uintmax_t, "ju")
/* t_assert_at: a condition, with the iteration and the condition's text. */
#define t_assert_at(i, cond)                                                   \
    ck_assert_msg(cond, "iteration %jd: %s", (intmax_t)(i), #cond)

/* t_watchdog_fail: a watchdog of `ms` (scaled) fired: say so and fail the
 * running test. Does not return. */
static inline void t_watchdog_fail(unsigned ms) {
    const char *test = tcase_name();
    if (test == NULL)
        test = "?";
    fprintf(stderr, "watchdog: over %g s in %s (slowdown x%u)\n",
            (double)ms / 1000.0, test, t_slowdown());
    ck_abort_msg("watchdog: over %g s in %s (slowdown x%u)",
                 (double)ms / 1000.0, test, t_slowdown());
}

/* ------------------------------------------------------------------------
 * A counting waker: a custom tide_waker_vtable_t on a t_wake_count_t,
 * which begins with its tide_wakeable_t. `refs` is the number of live
 * references handed out (t_waker_new gives the first): clone adds one,
 * wake and drop take one. All counters are atomic so that other threads
 * may use the waker too.
 * ------------------------------------------------------------------------ */

typedef struct t_wake_count {
    tide_wakeable_t wk;
    atomic_int clones;
    atomic_int wakes;        /* consuming wakes */
    atomic_int wake_by_refs; /* non-consuming wakes */
    atomic_int woken;        /* wakes of either kind */
    atomic_int drops;
    atomic_int refs;
} t_wake_count_t;

static inline t_wake_count_t *t_cw_of(const tide_wakeable_t *w) {
    return TIDE_CONTAINER_OF(w, t_wake_count_t, wk);
}

static inline tide_waker_t t_cw_clone(const tide_wakeable_t *w) {
    t_wake_count_t *c = t_cw_of(w);
    atomic_fetch_add(&c->clones, 1);
    atomic_fetch_add(&c->refs, 1);
    return TIDE_WAKER(w);
}

static inline void t_cw_wake(const tide_wakeable_t *w) {
    t_wake_count_t *c = t_cw_of(w);
    atomic_fetch_add(&c->wakes, 1);
    atomic_fetch_add(&c->woken, 1);
    atomic_fetch_sub(&c->refs, 1);
}

static inline void t_cw_wake_by_ref(const tide_wakeable_t *w) {
    t_wake_count_t *c = t_cw_of(w);
    atomic_fetch_add(&c->wake_by_refs, 1);
    atomic_fetch_add(&c->woken, 1);
}

static inline void t_cw_drop(const tide_wakeable_t *w) {
    t_wake_count_t *c = t_cw_of(w);
    atomic_fetch_add(&c->drops, 1);
    atomic_fetch_sub(&c->refs, 1);
}

/* t_waker_new: reset *c and return its first reference. */
static inline tide_waker_t t_waker_new(t_wake_count_t *c) {
    static const tide_waker_vtable_t vt = {t_cw_clone, t_cw_wake,
                                           t_cw_wake_by_ref, t_cw_drop};
    c->wk.vtable = &vt;
    atomic_init(&c->clones, 0);
    atomic_init(&c->wakes, 0);
    atomic_init(&c->wake_by_refs, 0);
    atomic_init(&c->woken, 0);
    atomic_init(&c->drops, 0);
    atomic_init(&c->refs, 1);
    return TIDE_WAKER(&c->wk);
}

/* Any wake, consuming or not. */
static inline int t_woken(t_wake_count_t *c) {
    return atomic_load(&c->wakes) + atomic_load(&c->wake_by_refs);
}

/* A context for polling a future by hand with a counting waker. */
typedef struct t_hand {
    t_wake_count_t count;
    tide_waker_t waker;
    tide_cx_t cx;
} t_hand_t;

static inline void t_hand_init(t_hand_t *h, tide_exec_t *ex) {
    h->waker = t_waker_new(&h->count);
    tide_cx_init(&h->cx, ex, &h->waker);
}

/* t_hand_poll: poll f with h's context (a fresh budget each time, as the
 * executor gives each task poll). */
static inline tide_poll_t t_hand_poll(t_hand_t *h, tide_future_t *f) {
    tide_cx_init(&h->cx, h->cx.exec, &h->waker);
    return tide_future_poll(f, &h->cx);
}

/* t_hand_done: drop h's own reference and check that no clone leaked. */
static inline void t_hand_done(t_hand_t *h) {
    tide_waker_drop(&h->waker);
    ck_assert_int_eq(atomic_load(&h->count.refs), 0);
}

/* ------------------------------------------------------------------------
 * Executors
 * ------------------------------------------------------------------------ */

static inline tide_exec_t *t_exec_new(void) {
    tide_exec_t *ex = NULL;
    ck_assert_int_eq(tide_exec_new(&ex, NULL, 0), 0);
    ck_assert_ptr_nonnull(ex);
    return ex;
}

static inline tide_exec_stats_t t_stats(const tide_exec_t *ex) {
    tide_exec_stats_t st;
    tide_exec_stats(ex, &st);
    return st;
}

/* White-box: is reg's event for `interest` (TIDE_READABLE or
 * TIDE_WRITABLE) armed? A direction nobody waits on any more keeps its
 * event until it next fires (see src/reactor/fd.c); one whose last waiter
 * was dropped while pending must not. */
static inline bool t_fd_armed(const tide_fd_t *reg, unsigned interest) {
    int d = interest == TIDE_WRITABLE ? TIDE__WR : TIDE__RD;
    return (reg->armed & (1u << d)) != 0;
}

/* t_exec_free_clean: assert nothing is left (no task, no armed event, no
 * registration, no name lookup in flight), then free. */
static inline void t_exec_free_clean(tide_exec_t *ex) {
    tide_exec_stats_t st = t_stats(ex);
    ck_assert_uint_eq(st.tasks, 0);
    ck_assert_uint_eq(st.queued, 0);
    ck_assert_uint_eq(st.armed_events, 0);
    ck_assert_uint_eq(st.registered, 0);
    ck_assert_uint_eq(tide__resolve_outstanding(ex), 0);
    tide_exec_free(ex);
}

/* A timer on the executor's base that stops it and remembers it did. */
typedef struct t_watchdog {
    struct event ev;
    tide_exec_t *ex;
    bool fired;
} t_watchdog_t;

static inline void t_watchdog_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    t_watchdog_t *w = arg;
    w->fired = true;
    tide_exec_stop(w->ex);
}

/* t_block_on_run: tide_exec_block_on with a timer of exactly `ms` that
 * stops it; *fired tells whether it went off. */
static inline int t_block_on_run(tide_exec_t *ex, tide_future_t *fut,
                                 unsigned ms, bool *fired) {
    t_watchdog_t w = {.ex = ex, .fired = false};
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    evtimer_assign(&w.ev, tide_exec_base(ex), t_watchdog_cb, &w);
    evtimer_add(&w.ev, &tv);
    int rc = tide_exec_block_on(ex, fut);
    evtimer_del(&w.ev);
    *fired = w.fired;
    return rc;
}

/* t_block_on_stop_ms: tide_exec_block_on stopped after `ms` (not scaled):
 * -EINTR then, and fut is left pending. For tests of the stop itself. */
static inline int t_block_on_stop_ms(tide_exec_t *ex, tide_future_t *fut,
                                     unsigned ms) {
    bool fired;
    return t_block_on_run(ex, fut, ms, &fired);
}

/* t_block_on_ms: tide_exec_block_on under a watchdog of `ms` (scaled by
 * t_slowdown()). If the watchdog fires before fut completes, the test
 * fails with "watchdog: over N s in test_x"; otherwise the result of
 * block_on is returned (0, or an error of block_on's own such as -ENOMEM).
 * A bound under T_STOP_MAX_MS is taken as a deliberate stop instead (as
 * t_block_on_stop_ms: -EINTR, fut left pending), which is what the tests
 * that pass one mean; new tests should call t_block_on_stop_ms for that. */
static inline int t_block_on_ms(tide_exec_t *ex, tide_future_t *fut,
                                unsigned ms) {
    if (ms < T_STOP_MAX_MS)
        return t_block_on_stop_ms(ex, fut, ms);
    unsigned bound = t_watchdog_ms(ms);
    bool fired;
    int rc = t_block_on_run(ex, fut, bound, &fired);
    if (rc == -EINTR && fired)
        t_watchdog_fail(bound);
    return rc;
}

static inline int t_block_on(tide_exec_t *ex, tide_future_t *fut) {
    return t_block_on_ms(ex, fut, T_BOUND_MS);
}

/* t_run: run fut to completion (bounded: a watchdog of T_BOUND_MS,
 * scaled, fails the test saying so), drop it, give its result. */
static inline intptr_t t_run(tide_exec_t *ex, tide_future_t *fut) {
    int rc = t_block_on(ex, fut);
    ck_assert_msg(rc == 0, "block_on: %s", tide_strerror(rc));
    intptr_t r = fut->result;
    tide_future_drop(fut);
    return r;
}

/* t_run_usec: let ex run for `usec` (its tasks progress meanwhile). */
static inline void t_run_usec(tide_exec_t *ex, uint64_t usec) {
    tide_sleep_t s;
    ck_assert_int_eq(t_run(ex, tide_sleep(&s, usec)), 0);
}

static inline void t_nop_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    (void)arg;
}

/* t_loop_until: run `base` one iteration at a time until cond(arg) holds
 * or `ms` (scaled by t_slowdown()) have passed; returns cond(arg), and
 * says "watchdog: over N s" on stderr when it is false. For futures
 * polled by hand and for executors on a caller's base. */
static inline bool t_loop_until(struct event_base *base,
                                bool (*cond)(void *arg), void *arg,
                                unsigned ms) {
    ms = t_watchdog_ms(ms);
    struct event wd;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    uint64_t deadline = tide_now() + (uint64_t)ms * 1000u;
    evtimer_assign(&wd, base, t_nop_cb, NULL);
    evtimer_add(&wd, &tv); /* so that EVLOOP_ONCE returns by the deadline */
    while (!cond(arg) && tide_now() < deadline)
        event_base_loop(base, EVLOOP_ONCE);
    evtimer_del(&wd);
    bool ok = cond(arg);
    if (!ok)
        fprintf(stderr, "watchdog: over %g s in %s (t_loop_until)\n",
                (double)ms / 1000.0, tcase_name());
    return ok;
}

/* t_spin_until: a bounded spin for other threads: true once *p >= want,
 * false after `ms` (scaled) have passed. */
static inline bool t_spin_until(atomic_int *p, int want, unsigned ms) {
    uint64_t deadline = tide_now() + (uint64_t)t_watchdog_ms(ms) * 1000u;
    while (atomic_load(p) < want) {
        if (tide_now() > deadline)
            return false;
        sched_yield();
    }
    return true;
}

typedef struct t_at_least {
    atomic_int *counter;
    int target;
} t_at_least_t;

static inline bool t_at_least_cond(void *arg) {
    t_at_least_t *a = arg;
    return atomic_load(a->counter) >= a->target;
}

/* t_loop_until_count: run the loop until *counter >= target (bounded). */
static inline bool t_loop_until_count(struct event_base *base,
                                      atomic_int *counter, int target) {
    t_at_least_t a = {counter, target};
    return t_loop_until(base, t_at_least_cond, &a, T_BOUND_MS);
}

typedef struct t_int_at_least {
    const int *p;
    int target;
} t_int_at_least_t;

static inline bool t_int_at_least_cond(void *arg) {
    t_int_at_least_t *a = arg;
    return *(const volatile int *)a->p >= a->target;
}

/* t_loop_until_int: the same for a plain int that only the loop's thread
 * changes. */
static inline bool t_loop_until_int(struct event_base *base, const int *p,
                                    int target) {
    t_int_at_least_t a = {p, target};
    return t_loop_until(base, t_int_at_least_cond, &a, T_BOUND_MS);
}

/* t_run_for: run `base` for `ms` milliseconds (or until it has no events). */
static inline int t_run_for(struct event_base *base, unsigned ms) {
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    event_base_loopexit(base, &tv);
    return event_base_dispatch(base);
}

/* ------------------------------------------------------------------------
 * Name resolution without /etc/hosts
 * ------------------------------------------------------------------------ */

/* Give ex a resolver that knows only `hosts` (the lines of a hosts file):
 * no /etc/hosts, no /etc/resolv.conf, so the test's names resolve to what
 * it says, in the order it says, on any machine. evdns answers a name
 * from its hosts list at once, with every address listed for it, in file
 * order. */
static inline void t_hosts(tide_exec_t *ex, const char *hosts) {
    const char *dir = getenv("TMPDIR");
    char path[256];
    snprintf(path, sizeof path, "%s/tide-hosts-XXXXXX",
             dir != NULL && *dir != '\0' ? dir : "/tmp");
    int fd = mkstemp(path);
    ck_assert_msg(fd >= 0, "mkstemp %s: %s", path, strerror(errno));
    size_t len = strlen(hosts);
    ck_assert_int_eq(write(fd, hosts, len), (ssize_t)len);
    close(fd);
    struct evdns_base *dns =
        evdns_base_new(tide_exec_base(ex), EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    ck_assert_ptr_nonnull(dns);
    int rc = evdns_base_load_hosts(dns, path);
    unlink(path);
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(tide__resolve_set_base(ex, dns), 0);
}

/* ------------------------------------------------------------------------
 * Futures for tests
 * ------------------------------------------------------------------------ */

/* A wrapper that counts polls and drops of the future it forwards to (and
 * takes over dropping it). */
typedef struct t_wrap {
    tide_future_t fut;
    tide_future_t *inner;
    int polls, drops;
} t_wrap_t;

static inline tide_poll_t t_wrap_poll(tide_future_t *f, tide_cx_t *cx) {
    t_wrap_t *w = TIDE_CONTAINER_OF(f, t_wrap_t, fut);
    w->polls++;
    if (tide_future_poll(w->inner, cx) == TIDE_PENDING)
        return TIDE_PENDING;
    f->result = w->inner->result;
    return TIDE_READY;
}

static inline void t_wrap_drop(tide_future_t *f) {
    t_wrap_t *w = TIDE_CONTAINER_OF(f, t_wrap_t, fut);
    w->drops++;
    tide_future_drop(w->inner);
}

static inline tide_future_t *t_wrap(t_wrap_t *w, tide_future_t *inner) {
    w->inner = inner;
    w->polls = w->drops = 0;
    static const tide_future_vtable_t t_wrap_vt = {t_wrap_poll, t_wrap_drop};
    return tide_future_init(&w->fut, &t_wrap_vt);
}

/* A nap: a future that sleeps `usec`, then completes with `value`,
 * counting its completions in *done and its drops in *drops (either may be
 * NULL). usec 0: it completes at its first poll; T_NAP_FOREVER: it stays
 * pending and nothing wakes it (only a drop ends it). t_nap sets one up in
 * the caller's memory; t_nap_new makes one on the heap, freed by its
 * drop. */
#define T_NAP_FOREVER UINT64_MAX

typedef struct t_nap {
    tide_future_t fut;
    tide_sleep_t s;
    uint64_t usec;
    intptr_t value;
    int *drops, *done;
    bool sleeping, heap;
} t_nap_t;

static inline tide_poll_t t_nap_poll(tide_future_t *f, tide_cx_t *cx) {
    t_nap_t *n = TIDE_CONTAINER_OF(f, t_nap_t, fut);
    if (n->usec == T_NAP_FOREVER)
        return TIDE_PENDING;
    if (n->usec > 0) {
        if (!n->sleeping) {
            tide_sleep(&n->s, n->usec);
            n->sleeping = true;
        }
        if (tide_future_poll(&n->s.fut, cx) == TIDE_PENDING)
            return TIDE_PENDING;
        tide_future_drop(&n->s.fut);
        n->sleeping = false;
    }
    if (n->done != NULL)
        (*n->done)++;
    f->result = n->value;
    return TIDE_READY;
}

static inline void t_nap_drop(tide_future_t *f) {
    t_nap_t *n = TIDE_CONTAINER_OF(f, t_nap_t, fut);
    if (n->sleeping)
        tide_future_drop(&n->s.fut);
    n->sleeping = false;
    if (n->drops != NULL)
        (*n->drops)++;
    if (n->heap)
        free(n);
}

static inline tide_future_t *t_nap(t_nap_t *n, uint64_t usec, intptr_t value,
                                   int *drops, int *done) {
    static const tide_future_vtable_t vt = {t_nap_poll, t_nap_drop};
    *n = (t_nap_t){.usec = usec, .value = value, .drops = drops, .done = done};
    return tide_future_init(&n->fut, &vt);
}

static inline t_nap_t *t_nap_new(uint64_t usec, intptr_t value, int *drops,
                                 int *done) {
    t_nap_t *n = malloc(sizeof *n);
    ck_assert_ptr_nonnull(n);
    t_nap(n, usec, value, drops, done);
    n->heap = true;
    return n;
}

/* ------------------------------------------------------------------------
 * Byte patterns: byte i of a test stream is t_pat(i). Not periodic over
 * any size the tests send, so a reordered, repeated or lost block shows.
 * ------------------------------------------------------------------------ */

static inline unsigned char t_pat(uint64_t i) {
    return (unsigned char)(((uint32_t)i * 2654435761u) >> 24 ^
                           (uint32_t)(i >> 16));
}

/* t_pat_fill: buf[0, len) = the pattern from stream offset `off`. */
static inline void t_pat_fill(unsigned char *buf, size_t len, uint64_t off) {
    for (size_t i = 0; i < len; i++)
        buf[i] = t_pat(off + i);
}

/* t_pat_check: index of the first byte of buf[0, len) that differs from
 * the pattern at `off`, or len. */
static inline size_t t_pat_check(const unsigned char *buf, size_t len,
                                 uint64_t off) {
    for (size_t i = 0; i < len; i++)
        if (buf[i] != t_pat(off + i))
            return i;
    return len;
}

/* t_pat_assert: fail, naming the stream offset and both values, unless
 * buf[0, len) is the pattern at `off`. */
static inline void t_pat_assert(const unsigned char *buf, size_t len,
                                uint64_t off) {
    size_t i = t_pat_check(buf, len, off);
    if (i < len)
        ck_abort_msg("byte %llu: got %u, want %u",
                     (unsigned long long)(off + i), buf[i], t_pat(off + i));
}

/* ------------------------------------------------------------------------
 * Descriptors
 * ------------------------------------------------------------------------ */

/* t_open_fds: how many of the descriptors 0..1023 are open. */
static inline int t_open_fds(void) {
    int n = 0;
    for (int fd = 0; fd < 1024; fd++)
        if (fcntl(fd, F_GETFD) >= 0)
            n++;
    return n;
}

/* t_small_buffers: shrink fd's socket buffers to 4 KiB (the kernel doubles
 * and rounds it), so that a few writes fill them. */
static inline void t_small_buffers(int fd) {
    int sz = 4096;
    ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz), 0);
    ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz), 0);
}

/* t_socketpair: a connected AF_UNIX stream pair, both O_NONBLOCK. */
static inline void t_socketpair(int sv[2]) {
    ck_assert_int_eq(
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv),
        0);
}

/* t_tcp_pair: a connected loopback TCP pair made with plain sockets: *c
 * the client, *s the accepted end, both non-blocking. */
static inline void t_tcp_pair(int *c, int *s) {
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(l, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET,
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sin;
    ck_assert_int_eq(bind(l, (struct sockaddr *)&sin, sizeof sin), 0);
    ck_assert_int_eq(listen(l, 1), 0);
    ck_assert_int_eq(getsockname(l, (struct sockaddr *)&sin, &len), 0);
    *c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(*c, 0);
    ck_assert_int_eq(connect(*c, (struct sockaddr *)&sin, sizeof sin), 0);
    ck_assert_int_eq(fcntl(*c, F_SETFL, fcntl(*c, F_GETFL) | O_NONBLOCK), 0);
    *s = accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    ck_assert_int_ge(*s, 0);
    close(l);
}

/* t_socketpair_blocking: the same, left in blocking mode. */
static inline void t_socketpair_blocking(int sv[2]) {
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
}

static inline bool t_is_nonblocking(int fd) {
    int fl = fcntl(fd, F_GETFL);
    ck_assert_int_ge(fl, 0);
    return (fl & O_NONBLOCK) != 0;
}

static inline bool t_is_open(int fd) {
    return fcntl(fd, F_GETFD) >= 0 || errno != EBADF;
}

/* t_fill: write into fd until the kernel says EAGAIN; returns bytes. */
static inline size_t t_fill(int fd) {
    static const char chunk[4096];
    size_t total = 0;
    for (;;) {
        ssize_t n = write(fd, chunk, sizeof chunk);
        if (n > 0) {
            total += (size_t)n;
            continue;
        }
        ck_assert(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
        return total;
    }
}

/* t_drain: read from fd until EAGAIN or EOF; returns bytes. */
static inline size_t t_drain(int fd) {
    char buf[4096];
    size_t total = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n > 0) {
            total += (size_t)n;
            continue;
        }
        return total;
    }
}

/* An I/O function for try_io / async_io that counts its calls. */
typedef struct t_io {
    char *buf;
    size_t len;
    int calls;
} t_io_t;

static inline ssize_t t_read_fn(int fd, void *arg) {
    t_io_t *io = arg;
    io->calls++;
    ssize_t n = read(fd, io->buf, io->len);
    return n < 0 ? -errno : n;
}

static inline ssize_t t_write_fn(int fd, void *arg) {
    t_io_t *io = arg;
    io->calls++;
    ssize_t n = write(fd, io->buf, io->len);
    return n < 0 ? -errno : n;
}

/* An I/O function that answers EAGAIN without touching the descriptor. */
static inline ssize_t t_eagain_fn(int fd, void *arg) {
    (void)fd;
    t_io_t *io = arg;
    io->calls++;
    return -EAGAIN;
}

/* t_reg_cleared: a new socketpair in sv, sv[0] registered on ex, its read
 * readiness cleared the honest way (a read hit EAGAIN through try_io). */
static inline tide_fd_t *t_reg_cleared(tide_exec_t *ex, int sv[2]) {
    tide_fd_t *reg = NULL;
    t_socketpair(sv);
    ck_assert_int_eq(tide_fd_new(&reg, ex, sv[0]), 0);
    char c;
    t_io_t io = {&c, 1, 0};
    ck_assert_int_eq(tide_fd_try_io(reg, TIDE_READABLE, t_read_fn, &io),
                     -EAGAIN);
    ck_assert_int_eq(io.calls, 1);
    ck_assert_uint_eq(tide_fd_readiness(reg) & TIDE_READABLE, 0);
    return reg;
}

/* t_reg_fill: fill the registered descriptor through try_io until the kernel says
 * EAGAIN, which clears its write readiness. Returns the bytes written. */
static inline size_t t_reg_fill(tide_fd_t *reg) {
    static char chunk[4096];
    t_io_t io = {chunk, sizeof chunk, 0};
    size_t total = 0;
    for (int i = 0; i < 100000; i++) {
        ssize_t n = tide_fd_try_io(reg, TIDE_WRITABLE, t_write_fn, &io);
        if (n == -EAGAIN)
            break;
        ck_assert_int_gt(n, 0);
        total += (size_t)n;
    }
    ck_assert_uint_eq(tide_fd_readiness(reg) & TIDE_WRITABLE, 0);
    return total;
}

/* ------------------------------------------------------------------------
 * Time
 * ------------------------------------------------------------------------ */

/* CPU time used by the process, microseconds. */
static inline uint64_t t_cpu_usec(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static inline void t_sleep_ms(unsigned ms) {
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ------------------------------------------------------------------------
 * Running a suite
 * ------------------------------------------------------------------------ */

/* t_tcase: a test case named `name` with a per-test timeout of `secs`
 * (scaled like every TCase timeout: see slowdown.h), added to s. */
static inline TCase *t_tcase(Suite *s, const char *name, double secs) {
    TCase *tc = tcase_create(name);
    tcase_set_timeout(tc, secs);
    suite_add_tcase(s, tc);
    return tc;
}

static inline int t_run_suite(Suite *s) {
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#endif
