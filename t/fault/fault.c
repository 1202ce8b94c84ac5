/*
 * t/fault/fault.c: the fault-injection shim (see fault.h). Linked only into
 * test programs built with FAULT_LDFLAGS (-Wl,--wrap=...).
 */
#include <dirent.h>
#include <errno.h>
#include <execinfo.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "fault.h"

/* The real functions (the linker maps __real_x to x) and our wrappers
 * (prototypes for -Wmissing-prototypes). */
#define FAULT_DECL(ret, name, ...)                                             \
    ret __real_##name(__VA_ARGS__);                                            \
    ret __wrap_##name(__VA_ARGS__);
FAULT_DECL(ssize_t, read, int, void *, size_t)
FAULT_DECL(ssize_t, write, int, const void *, size_t)
FAULT_DECL(ssize_t, readv, int, const struct iovec *, int)
FAULT_DECL(ssize_t, writev, int, const struct iovec *, int)
FAULT_DECL(ssize_t, recv, int, void *, size_t, int)
FAULT_DECL(ssize_t, send, int, const void *, size_t, int)
FAULT_DECL(ssize_t, recvfrom, int, void *, size_t, int, struct sockaddr *,
           socklen_t *)
FAULT_DECL(ssize_t, sendto, int, const void *, size_t, int,
           const struct sockaddr *, socklen_t)
FAULT_DECL(ssize_t, recvmsg, int, struct msghdr *, int)
FAULT_DECL(ssize_t, sendmsg, int, const struct msghdr *, int)
FAULT_DECL(int, accept4, int, struct sockaddr *, socklen_t *, int)
FAULT_DECL(int, connect, int, const struct sockaddr *, socklen_t)
FAULT_DECL(int, close, int)
FAULT_DECL(void *, tide__malloc, size_t)
FAULT_DECL(void *, tide__calloc, size_t, size_t)
FAULT_DECL(void *, tide__realloc, void *, size_t)
FAULT_DECL(void, tide__free, void *)
#undef FAULT_DECL

/* ------------------------------------------------------------------------
 * State
 * ------------------------------------------------------------------------ */

#define MAXFD 65536

enum { F_TARGET = 1, F_EXCLUDE = 2 };
enum { KIND_UNKNOWN = 0, KIND_STREAM = 1, KIND_DGRAM = 2 };

typedef struct fd_state {
    unsigned char flags;
    unsigned char kind;
    int sticky;    /* errno every read/write gets, or 0 */
    int armed_err; /* fault_arm_hard */
    enum fault_fn armed_fn;
    unsigned long armed_nth;
} fd_state_t;

static fd_state_t fds[MAXFD];
static bool target_all;
static bool have_plan;
static fault_plan_t plan;
static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static fault_stats_t stats;
static atomic_long live_allocs;

static const char *const fn_names[FAULT_NFN] = {
    "read",     "write",  "readv",   "writev",  "recv",    "send",
    "recvfrom", "sendto", "recvmsg", "sendmsg", "accept4", "connect"};

static const char *const kind_names[FAULT_NKIND] = {
    "EAGAIN", "EINTR",  "short",        "ECONNRESET",  "EPIPE",
    "EMFILE", "ENFILE", "ECONNABORTED", "ECONNREFUSED"};

const char *fault_fn_name(enum fault_fn fn) {
    return (unsigned)fn < FAULT_NFN ? fn_names[fn] : "?";
}

const char *fault_kind_name(enum fault_kind k) {
    return (unsigned)k < FAULT_NKIND ? kind_names[k] : "?";
}

/* splitmix64: small, fast, and good enough for a schedule. */
uint64_t fault_rand(void) {
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

void fault_seed(uint64_t seed) {
    rng_state = seed != 0 ? seed : 0x9e3779b97f4a7c15u;
}

uint64_t fault_seed_from_env(const char *who) {
    uint64_t seed;
    const char *e = getenv("TIDE_FAULT_SEED");
    if (e != NULL && *e != '\0') {
        seed = strtoull(e, NULL, 0);
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed = (uint64_t)ts.tv_sec * 1000000007u + (uint64_t)ts.tv_nsec +
               (uint64_t)getpid();
    }
    fprintf(stderr, "%s: TIDE_FAULT_SEED=%" PRIu64 "\n", who, seed);
    fault_seed(seed);
    return seed;
}

void fault_plan(const fault_plan_t *p) {
    have_plan = p != NULL;
    if (p != NULL)
        plan = *p;
    else
        memset(&plan, 0, sizeof plan);
}

bool fault_edge_triggered(struct event_base *base) {
    return (event_base_get_features(base) & EV_FEATURE_ET) != 0;
}

static fd_state_t *state_of(int fd) {
    return fd >= 0 && fd < MAXFD ? &fds[fd] : NULL;
}

static void forget(fd_state_t *st) { memset(st, 0, sizeof *st); }

void fault_target(int fd, bool on) {
    fd_state_t *st = state_of(fd);
    if (st == NULL)
        return;
    st->sticky = 0;
    st->armed_err = 0;
    st->kind = KIND_UNKNOWN;
    if (on)
        st->flags |= F_TARGET;
    else
        st->flags &= (unsigned char)~F_TARGET;
}

void fault_target_all(bool on) { target_all = on; }

void fault_exclude(int fd, bool on) {
    fd_state_t *st = state_of(fd);
    if (st == NULL)
        return;
    if (on)
        st->flags |= F_EXCLUDE;
    else
        st->flags &= (unsigned char)~F_EXCLUDE;
}

void fault_exclude_open_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return;
    int self = dirfd(d); /* closed below, by libc: not ours to exclude */
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] >= '0' && e->d_name[0] <= '9' &&
            atoi(e->d_name) != self)
            fault_exclude(atoi(e->d_name), true);
    closedir(d);
}

void fault_arm_hard(int fd, enum fault_fn fn, unsigned long nth, int err) {
    fd_state_t *st = state_of(fd);
    if (st == NULL)
        return;
    st->armed_fn = fn;
    st->armed_nth = nth;
    st->armed_err = err;
}

int fault_sticky_error(int fd) {
    fd_state_t *st = state_of(fd);
    return st != NULL ? st->sticky : 0;
}

void fault_reset(void) {
    memset(fds, 0, sizeof fds);
    target_all = false;
    fault_plan(NULL);
    memset(&stats, 0, sizeof stats);
}

void fault_stats(fault_stats_t *out) { *out = stats; }

long fault_live_allocs(void) { return atomic_load(&live_allocs); }

/* ------------------------------------------------------------------------
 * The schedule
 * ------------------------------------------------------------------------ */

/* What a call should do. */
enum act { ACT_REAL, ACT_FAIL, ACT_SHORT, ACT_REAL_THEN_FAIL };

typedef struct decision {
    enum act act;
    int err;
} decision_t;

static bool targeted(const fd_state_t *st) {
    if (st == NULL || (st->flags & F_EXCLUDE))
        return false;
    return target_all || (st->flags & F_TARGET);
}

static bool is_stream(int fd, fd_state_t *st) {
    if (st->kind == KIND_UNKNOWN) {
        int type;
        socklen_t len = sizeof type;
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0)
            st->kind = type == SOCK_STREAM ? KIND_STREAM : KIND_DGRAM;
        else
            st->kind = KIND_STREAM; /* a pipe, a tty: byte streams */
    }
    return st->kind == KIND_STREAM;
}

static bool roll(unsigned *acc, unsigned rate, unsigned r) {
    *acc += rate;
    return r < *acc;
}

static decision_t injected(enum fault_kind k, enum act act, int err) {
    stats.injected[k]++;
    return (decision_t){act, err};
}

static enum fault_kind kind_of_err(int err) {
    switch (err) {
    case EAGAIN:
        return FAULT_K_EAGAIN;
    case EINTR:
        return FAULT_K_EINTR;
    case ECONNRESET:
        return FAULT_K_ECONNRESET;
    case EPIPE:
        return FAULT_K_EPIPE;
    case EMFILE:
        return FAULT_K_EMFILE;
    case ENFILE:
        return FAULT_K_ENFILE;
    case ECONNABORTED:
        return FAULT_K_ECONNABORTED;
    default:
        return FAULT_K_ECONNREFUSED;
    }
}

static bool is_sticky_kind(int err) {
    return err == ECONNRESET || err == EPIPE;
}

static decision_t decide(enum fault_fn fn, int fd, size_t len) {
    stats.calls[fn]++;
    fd_state_t *st = state_of(fd);
    if (st == NULL)
        return (decision_t){ACT_REAL, 0};

    bool is_read = fn == FAULT_READ || fn == FAULT_READV || fn == FAULT_RECV ||
                   fn == FAULT_RECVFROM || fn == FAULT_RECVMSG;
    bool is_write = fn == FAULT_WRITE || fn == FAULT_WRITEV ||
                    fn == FAULT_SEND || fn == FAULT_SENDTO ||
                    fn == FAULT_SENDMSG;

    /* An error armed at an exact point, targeted or not. */
    if (st->armed_err != 0 && st->armed_fn == fn && --st->armed_nth == 0) {
        int err = st->armed_err;
        st->armed_err = 0;
        if (is_sticky_kind(err) && !plan.not_sticky)
            st->sticky = err;
        return injected(kind_of_err(err), ACT_FAIL, err);
    }
    /* A dead connection stays dead for reads and writes. */
    if (st->sticky != 0 && (is_read || is_write)) {
        stats.injected[kind_of_err(st->sticky)]++;
        return (decision_t){ACT_FAIL, st->sticky};
    }
    if (!have_plan || !targeted(st))
        return (decision_t){ACT_REAL, 0};
    stats.targeted[fn]++;

    unsigned r = (unsigned)(fault_rand() % FAULT_RATE_SCALE), acc = 0;
    bool et = plan.edge_triggered;
    if (fn == FAULT_CONNECT) {
        if (roll(&acc, plan.eintr, r))
            return injected(FAULT_K_EINTR, ACT_REAL_THEN_FAIL, EINTR);
        if (roll(&acc, plan.connrefused, r))
            return injected(FAULT_K_ECONNREFUSED, ACT_FAIL, ECONNREFUSED);
        return (decision_t){ACT_REAL, 0};
    }
    if (roll(&acc, plan.eagain, r)) {
        /* tide's write events are edge-triggered there: the descriptor is
         * ready, no edge would ever come (reads are level-triggered) */
        if (et && is_write)
            return (decision_t){ACT_REAL, 0};
        return injected(FAULT_K_EAGAIN, ACT_FAIL, EAGAIN);
    }
    if (roll(&acc, plan.eintr, r))
        return injected(FAULT_K_EINTR, ACT_FAIL, EINTR);
    if (fn == FAULT_ACCEPT4) {
        if (roll(&acc, plan.emfile, r))
            return injected(FAULT_K_EMFILE, ACT_FAIL, EMFILE);
        if (roll(&acc, plan.enfile, r))
            return injected(FAULT_K_ENFILE, ACT_FAIL, ENFILE);
        if (roll(&acc, plan.econnaborted, r))
            return injected(FAULT_K_ECONNABORTED, ACT_FAIL, ECONNABORTED);
        return (decision_t){ACT_REAL, 0};
    }
    if (roll(&acc, plan.short_io, r)) {
        /* a short count only means something on a byte stream */
        if (len > 1 && is_stream(fd, st))
            return injected(FAULT_K_SHORT, ACT_SHORT, 0);
        return (decision_t){ACT_REAL, 0};
    }
    int hard = 0;
    if (roll(&acc, plan.reset, r))
        hard = ECONNRESET;
    else if (is_write && roll(&acc, plan.epipe, r))
        hard = EPIPE;
    if (hard != 0) {
        if (!plan.not_sticky)
            st->sticky = hard;
        return injected(kind_of_err(hard), ACT_FAIL, hard);
    }
    return (decision_t){ACT_REAL, 0};
}

static size_t iov_total(const struct iovec *iov, int n) {
    size_t t = 0;
    for (int i = 0; i < n; i++)
        t += iov[i].iov_len;
    return t;
}

/* One byte of the first non-empty buffer, as a one-element array. */
static int iov_short(const struct iovec *iov, int n, struct iovec *one) {
    for (int i = 0; i < n; i++)
        if (iov[i].iov_len > 0) {
            one->iov_base = iov[i].iov_base;
            one->iov_len = 1;
            return 1;
        }
    return 0;
}

#define FAIL_WITH(d)                                                           \
    do {                                                                       \
        errno = (d).err;                                                       \
        return -1;                                                             \
    } while (0)

/* ------------------------------------------------------------------------
 * The wrappers
 * ------------------------------------------------------------------------ */

ssize_t __wrap_read(int fd, void *buf, size_t len) {
    decision_t d = decide(FAULT_READ, fd, len);
    if (d.act == ACT_FAIL)
        FAIL_WITH(d);
    return __real_read(fd, buf, d.act == ACT_SHORT ? 1 : len);
}

ssize_t __wrap_write(int fd, const void *buf, size_t len) {
    decision_t d = decide(FAULT_WRITE, fd, len);
    if (d.act == ACT_FAIL)
        FAIL_WITH(d);
    return __real_write(fd, buf, d.act == ACT_SHORT ? 1 : len);
}

ssize_t __wrap_readv(int fd, const struct iovec *iov, int n) {
    decision_t d = decide(FAULT_READV, fd, iov_total(iov, n));
    if (d.act == ACT_FAIL)
        FAIL_WITH(d);
    struct iovec one;
    if (d.act == ACT_SHORT && iov_short(iov, n, &one))
        return __real_readv(fd, &one, 1);
    return __real_readv(fd, iov, n);
}

ssize_t __wrap_writev(int fd, const struct iovec *iov, int n) {
    decision_t d = decide(FAULT_WRITEV, fd, iov_total(iov, n));
    if (d.act == ACT_FAIL)
        FAIL_WITH(d);
    struct iovec one;
    if (d.act == ACT_SHORT && iov_short(iov, n, &one))
        return __real_writev(fd, &one, 1);
    return __real_writev(fd, iov, n);
}

ssize_t __wrap_recv(int fd, void *buf, size_t len, int flags) {
    decision_t d = decide(FAULT_RECV, fd, len);
    if (d.act == ACT_FAIL)
        FAIL_WITH(d);
    return __real_recv(fd, buf, d.act == ACT_SHORT ? 1 : len, flags);
}

ssize_t __wrap_send(int fd, const void *buf, size_t len, int flags) {
    decision_t d = decide(FAULT_SEND, fd, len);
    if (d.act == ACT_FAIL)
        FAIL_WITH(d);
    return __real_send(fd, buf, d.act == ACT_SHORT ? 1 : len, flags);
}

ssize_t __wrap_recvfrom(int fd, void *buf, size_t len, int flags,
                        struct sockaddr *sa, socklen_t *salen) {
    decision_t d = decide(FAULT_RECVFROM, fd, len);
    if (d.act == ACT_FAIL)
        FAIL_WITH(d);
    return __real_recvfrom(fd, buf, d.act == ACT_SHORT ? 1 : len, flags, sa,
                           salen);
}

ssize_t __wrap_sendto(int fd, const void *buf, size_t len, int flags,
                      const struct sockaddr *sa, socklen_t salen) {
    decision_t d = decide(FAULT_SENDTO, fd, len);
    if (d.act == ACT_FAIL)
        FAIL_WITH(d);
    return __real_sendto(fd, buf, d.act == ACT_SHORT ? 1 : len, flags, sa,
                         salen);
}

ssize_t __wrap_recvmsg(int fd, struct msghdr *msg, int flags) {
    decision_t d = decide(FAULT_RECVMSG, fd,
                          iov_total(msg->msg_iov, (int)msg->msg_iovlen));
    if (d.act == ACT_FAIL)
        FAIL_WITH(d);
    struct iovec one;
    if (d.act == ACT_SHORT &&
        iov_short(msg->msg_iov, (int)msg->msg_iovlen, &one)) {
        struct msghdr m = *msg;
        m.msg_iov = &one;
        m.msg_iovlen = 1;
        ssize_t n = __real_recvmsg(fd, &m, flags);
        msg->msg_namelen = m.msg_namelen;
        msg->msg_controllen = m.msg_controllen;
        msg->msg_flags = m.msg_flags;
        return n;
    }
    return __real_recvmsg(fd, msg, flags);
}

ssize_t __wrap_sendmsg(int fd, const struct msghdr *msg, int flags) {
    decision_t d = decide(FAULT_SENDMSG, fd,
                          iov_total(msg->msg_iov, (int)msg->msg_iovlen));
    if (d.act == ACT_FAIL)
        FAIL_WITH(d);
    struct iovec one;
    if (d.act == ACT_SHORT &&
        iov_short(msg->msg_iov, (int)msg->msg_iovlen, &one)) {
        struct msghdr m = *msg;
        m.msg_iov = &one;
        m.msg_iovlen = 1;
        return __real_sendmsg(fd, &m, flags);
    }
    return __real_sendmsg(fd, msg, flags);
}

int __wrap_accept4(int fd, struct sockaddr *sa, socklen_t *salen, int flags) {
    decision_t d = decide(FAULT_ACCEPT4, fd, 0);
    if (d.act == ACT_FAIL)
        FAIL_WITH(d);
    return __real_accept4(fd, sa, salen, flags);
}

int __wrap_connect(int fd, const struct sockaddr *sa, socklen_t salen) {
    decision_t d = decide(FAULT_CONNECT, fd, 0);
    if (d.act == ACT_FAIL)
        FAIL_WITH(d);
    int rc = __real_connect(fd, sa, salen);
    if (d.act == ACT_REAL_THEN_FAIL && (rc == 0 || errno == EINPROGRESS))
        FAIL_WITH(d); /* a signal arrived; the connection goes on */
    return rc;
}

int __wrap_close(int fd) {
    fd_state_t *st = state_of(fd);
    if (st != NULL)
        forget(st);
    return __real_close(fd);
}

/* ------------------------------------------------------------------------
 * Allocation counting
 * ------------------------------------------------------------------------ */

/* TIDE_FAULT_TRACE=1: print where each failed allocation came from. */
static void trace_failure(const char *fn) {
    static int on = -1;
    if (on < 0)
        on = getenv("TIDE_FAULT_TRACE") != NULL;
    if (!on)
        return;
    void *bt[16];
    int n = backtrace(bt, 16);
    fprintf(stderr, "fault: %s returned NULL at:\n", fn);
    backtrace_symbols_fd(bt, n, 2);
}

void *__wrap_tide__malloc(size_t size) {
    void *p = __real_tide__malloc(size);
    if (p == NULL)
        trace_failure("tide__malloc");
    if (p != NULL)
        atomic_fetch_add(&live_allocs, 1);
    return p;
}

void *__wrap_tide__calloc(size_t n, size_t size) {
    void *p = __real_tide__calloc(n, size);
    if (p == NULL)
        trace_failure("tide__calloc");
    if (p != NULL)
        atomic_fetch_add(&live_allocs, 1);
    return p;
}

void *__wrap_tide__realloc(void *p, size_t size) {
    void *q = __real_tide__realloc(p, size);
    if (q == NULL && size != 0)
        trace_failure("tide__realloc");
    if (p == NULL && q != NULL)
        atomic_fetch_add(&live_allocs, 1);
    else if (p != NULL && q == NULL && size == 0)
        atomic_fetch_sub(&live_allocs, 1); /* realloc(p, 0) freed p */
    return q;
}

void __wrap_tide__free(void *p) {
    if (p != NULL)
        atomic_fetch_sub(&live_allocs, 1);
    __real_tide__free(p);
}
