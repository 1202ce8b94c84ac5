/*
 * t/stress/echoload.c: a load generator for the echo daemon, on raw epoll
 * (no tide: the thing under test is not used to test itself). Loopback
 * only; every mode is bounded in connections and time and stops by itself.
 *
 *   echoload --addr 127.0.0.1:PORT [--pid PID] --mode MODE [options]
 *
 * Modes:
 *   conns      open --conns N connections (at most --inflight connecting at
 *              once), do one round trip on each, hold them all open and
 *              measure the daemon's RSS (--pid), then --rounds more round
 *              trips of --size bytes on every connection, all byte-exact.
 *   flood      for a daemon started with a small descriptor limit: open
 *              --conns N connections it cannot all accept, hold them for
 *              --hold-ms while measuring its CPU time (it must back off,
 *              not spin: at most --max-cpu percent), close them, then check
 *              that new clients are served.
 *   misbehave  for --secs: well-behaved clients doing round trips beside
 *              slow readers (send, never read), slow writers (a byte every
 *              20 ms), clients that reset mid-stream (SO_LINGER 0) and
 *              clients that half-close (shutdown(SHUT_WR), then read the
 *              whole echo and EOF). The daemon's RSS must stay within
 *              --max-rss-mb of where it started; nothing is lost for the
 *              well-behaved and half-closing clients.
 *   soak       for --secs, --conns connections churning (connect, a few
 *              round trips of random size, close) with RSS sampled every
 *              second: after the first quarter (warm-up) it must stay flat
 *              (within --max-growth-kb of the warm-up peak).
 *
 * Data: the byte at offset i of connection id's stream is pat(id, i), so
 * every echoed byte is checked where it lands. Client sockets bind to
 * 127.0.0.2-127.0.0.254 (IP_BIND_ADDRESS_NO_PORT) so that tens of
 * thousands of connections and their TIME_WAITs do not exhaust ephemeral
 * ports. RLIMIT_NOFILE is raised to its hard limit.
 *
 * Output: "echoload: key=value ..." lines, then "echoload: PASS" (exit 0)
 * or "echoload: FAIL: reason" (exit 1).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

/* ------------------------------------------------------------------------
 * Options, clock, daemon probes
 * ------------------------------------------------------------------------ */

static struct {
    struct sockaddr_in addr;
    int pid;
    const char *mode;
    int conns, inflight, rounds, size, secs, hold_ms, timeout;
    int max_cpu, max_rss_mb, max_growth_kb;
    unsigned seed;
} opt = {.conns = 1000,
         .inflight = 256,
         .rounds = 5,
         .size = 64,
         .secs = 10,
         .hold_ms = 2000,
         .timeout = 300,
         .max_cpu = 25,
         .max_rss_mb = 64,
         .max_growth_kb = 2048,
         .seed = 1};

static uint64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t deadline;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("echoload: ");
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
    va_end(ap);
}

static _Noreturn void fail(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static _Noreturn void fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("echoload: FAIL: ");
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
    va_end(ap);
    exit(1);
}

/* The daemon's resident set, KiB (0 without --pid). */
static long daemon_rss_kb(void) {
    if (opt.pid <= 0)
        return 0;
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", opt.pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        fail("daemon %d is gone", opt.pid);
    long kb = 0;
    while (fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

/* The daemon's CPU time (user + system), microseconds. */
static uint64_t daemon_cpu_us(void) {
    if (opt.pid <= 0)
        return 0;
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", opt.pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        fail("daemon %d is gone", opt.pid);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* after the command name */
    if (p == NULL)
        return 0;
    unsigned long ut = 0, st = 0;
    /* fields 3.. after ")": state ppid pgrp session tty tpgid flags minflt
     * cminflt majflt cmajflt utime stime */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
               &ut, &st) != 2)
        return 0;
    long hz = sysconf(_SC_CLK_TCK);
    return (uint64_t)(ut + st) * 1000000u / (uint64_t)hz;
}

/* ------------------------------------------------------------------------
 * Connections
 * ------------------------------------------------------------------------ */

enum kind {
    K_NORMAL,
    K_SLOW_READER,
    K_SLOW_WRITER,
    K_RESETTER,
    K_HALF_CLOSER,
    K_FLOOD,
    NKIND
};
static const char *const kind_name[NKIND] = {
    "normal", "slow_reader", "slow_writer", "resetter", "half_closer", "flood"};

enum state { S_FREE, S_CONNECTING, S_OPEN, S_SHUT, S_HOLD };

typedef struct conn {
    int fd;
    uint32_t id;
    unsigned char kind, state;
    int rounds_left;
    uint64_t tx, rx;    /* stream offsets sent / received and checked */
    uint64_t round_end; /* tx target of the current round */
    uint64_t next_us;   /* slow writer: next byte; resetter: when */
    unsigned events;    /* current epoll interest */
} conn_t;

static int ep;
static conn_t *conns;
static int nconns; /* slots */
static uint32_t next_id = 1;
static uint64_t bytes_checked, rounds_done, connects_done, closes_done;
static uint64_t count_kind[NKIND];
static int open_now, connecting_now;
static unsigned rng = 1;

static unsigned rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

static inline unsigned char pat(uint32_t id, uint64_t off) {
    uint64_t x = (off + 1) * 0x9e3779b97f4a7c15u ^ (uint64_t)id * 0xc2b2ae3du;
    return (unsigned char)(x >> 31);
}

static void set_events(conn_t *c, unsigned ev) {
    if (c->events == ev)
        return;
    struct epoll_event e = {.events = ev, .data.u32 = (uint32_t)(c - conns)};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e) != 0)
        fail("epoll_ctl MOD: %s", strerror(errno));
    c->events = ev;
}

static void conn_close(conn_t *c, bool reset) {
    if (reset) {
        struct linger l = {1, 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    close(c->fd); /* also leaves the epoll set */
    if (c->state == S_CONNECTING)
        connecting_now--;
    else
        open_now--;
    c->state = S_FREE;
    c->fd = -1;
    closes_done++;
}

static void start_round(conn_t *c) {
    size_t size = (size_t)opt.size;
    if (strcmp(opt.mode, "soak") == 0 || strcmp(opt.mode, "misbehave") == 0)
        size = 1 + rnd() % (unsigned)(opt.size * 2);
    c->round_end = c->tx + size;
}

/* Open a connection of `kind` in slot c (non-blocking connect). */
static void conn_open(conn_t *c, enum kind kind) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        fail("socket: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in src = {.sin_family = AF_INET};
    src.sin_addr.s_addr = htonl(0x7f000002u + (next_id % 253u));
    if (bind(fd, (struct sockaddr *)&src, sizeof src) != 0)
        fail("bind 127.0.0.x: %s", strerror(errno));
    if (kind == K_SLOW_READER) {
        int small = 4096; /* fill up soon */
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    }
    memset(c, 0, sizeof *c);
    c->fd = fd;
    c->id = next_id++;
    c->kind = (unsigned char)kind;
    c->rounds_left = opt.rounds;
    int rc = connect(fd, (struct sockaddr *)&opt.addr, sizeof opt.addr);
    if (rc != 0 && errno != EINPROGRESS)
        fail("connect: %s", strerror(errno));
    c->state = S_CONNECTING;
    connecting_now++;
    struct epoll_event e = {.events = EPOLLOUT,
                            .data.u32 = (uint32_t)(c - conns)};
    c->events = EPOLLOUT;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) != 0)
        fail("epoll_ctl ADD: %s", strerror(errno));
    count_kind[kind]++;
}

static void on_connected(conn_t *c) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0)
        fail("connect (%s #%u): %s", kind_name[c->kind], c->id, strerror(err));
    connecting_now--;
    open_now++;
    connects_done++;
    c->state = S_OPEN;
    start_round(c);
    switch (c->kind) {
    case K_SLOW_READER:
        c->round_end = c->tx + (UINT64_C(1) << 40); /* sends for ever */
        set_events(c, EPOLLOUT);
        break;
    case K_SLOW_WRITER:
        c->round_end = c->tx + 1;
        c->next_us = now_us();
        set_events(c, EPOLLIN);
        break;
    case K_FLOOD:
        c->state = S_HOLD;
        set_events(c, 0);
        break;
    case K_RESETTER:
        c->next_us = now_us() + 1000u * (1 + rnd() % 50);
        /* FALLTHROUGH */
    default:
        set_events(c, EPOLLIN | EPOLLOUT);
        break;
    }
}

static unsigned char txbuf[1 << 16];

/* Send what the round still has to send. */
static void do_send(conn_t *c) {
    while (c->tx < c->round_end) {
        size_t n = (size_t)(c->round_end - c->tx);
        if (n > sizeof txbuf)
            n = sizeof txbuf;
        for (size_t i = 0; i < n; i++)
            txbuf[i] = pat(c->id, c->tx + i);
        ssize_t w = send(c->fd, txbuf, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            fail("send (%s #%u): %s", kind_name[c->kind], c->id,
                 strerror(errno));
        }
        c->tx += (uint64_t)w;
    }
    if (c->kind == K_HALF_CLOSER && c->state == S_OPEN) {
        shutdown(c->fd, SHUT_WR);
        c->state = S_SHUT;
    }
    set_events(c, c->kind == K_SLOW_READER ? EPOLLOUT : EPOLLIN);
}

static unsigned char rxbuf[1 << 16];

/* Read and check what arrived. Returns false if the connection ended. */
static bool do_recv(conn_t *c) {
    for (;;) {
        ssize_t r = recv(c->fd, rxbuf, sizeof rxbuf, 0);
        if (r < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return true;
            fail("recv (%s #%u): %s", kind_name[c->kind], c->id,
                 strerror(errno));
        }
        if (r == 0) {
            if (c->kind == K_HALF_CLOSER && c->state == S_SHUT) {
                if (c->rx != c->tx)
                    fail("half-closer #%u: EOF after %llu of %llu bytes", c->id,
                         (unsigned long long)c->rx, (unsigned long long)c->tx);
                rounds_done++;
                conn_close(c, false);
                return false;
            }
            fail("%s #%u: unexpected EOF after %llu bytes (sent %llu)",
                 kind_name[c->kind], c->id, (unsigned long long)c->rx,
                 (unsigned long long)c->tx);
        }
        for (ssize_t i = 0; i < r; i++)
            if (rxbuf[i] != pat(c->id, c->rx + (uint64_t)i))
                fail("%s #%u: byte %llu differs", kind_name[c->kind], c->id,
                     (unsigned long long)(c->rx + (uint64_t)i));
        c->rx += (uint64_t)r;
        bytes_checked += (uint64_t)r;
        if (c->rx > c->tx)
            fail("%s #%u: more bytes back than sent", kind_name[c->kind],
                 c->id);
    }
}

/* A round trip ended (rx caught up with round_end): what next. */
static void after_round(conn_t *c) {
    rounds_done++;
    switch (c->kind) {
    case K_SLOW_WRITER:
        c->round_end = c->tx + 1;
        c->next_us = now_us() + 20000;
        set_events(c, EPOLLIN);
        return;
    case K_NORMAL:
        if (--c->rounds_left <= 0 && strcmp(opt.mode, "conns") != 0) {
            conn_close(c, false);
            return;
        }
        if (c->rounds_left <= 0) { /* conns mode: hold */
            c->state = S_HOLD;
            set_events(c, 0);
            return;
        }
        start_round(c);
        set_events(c, EPOLLIN | EPOLLOUT);
        return;
    default:
        start_round(c);
        set_events(c, EPOLLIN | EPOLLOUT);
        return;
    }
}

/* One pass of the loop: wait up to ms for events and handle them. */
static void pump(int ms) {
    struct epoll_event evs[512];
    int n = epoll_wait(ep, evs, 512, ms);
    if (n < 0 && errno != EINTR)
        fail("epoll_wait: %s", strerror(errno));
    for (int i = 0; i < n; i++) {
        conn_t *c = &conns[evs[i].data.u32];
        if (c->state == S_FREE)
            continue;
        if (c->state == S_CONNECTING) {
            on_connected(c);
            continue;
        }
        if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
            if (!do_recv(c))
                continue;
            if (c->kind != K_HALF_CLOSER && c->kind != K_SLOW_READER &&
                c->rx == c->round_end && c->tx == c->round_end)
                after_round(c);
        }
        if (c->state != S_FREE && (evs[i].events & EPOLLOUT) &&
            (c->events & EPOLLOUT))
            do_send(c);
    }
    if (now_us() > deadline)
        fail("timed out (mode %s)", opt.mode);
}

/* Timed actions: slow writers' bytes, resetters' resets. */
static void tick(void) {
    uint64_t t = now_us();
    for (int i = 0; i < nconns; i++) {
        conn_t *c = &conns[i];
        if (c->state != S_OPEN)
            continue;
        if (c->kind == K_SLOW_WRITER && c->tx < c->round_end && t >= c->next_us)
            do_send(c);
        else if (c->kind == K_RESETTER && t >= c->next_us)
            conn_close(c, true); /* RST with data in flight both ways */
    }
}

static conn_t *free_slot(void) {
    for (int i = 0; i < nconns; i++)
        if (conns[i].state == S_FREE)
            return &conns[i];
    return NULL;
}

static void setup(int slots) {
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if ((rlim_t)slots + 64 > rl.rlim_cur)
        fail("need %d descriptors, the limit is %llu", slots + 64,
             (unsigned long long)rl.rlim_cur);
    ep = epoll_create1(EPOLL_CLOEXEC);
    nconns = slots;
    conns = calloc((size_t)slots, sizeof *conns);
    for (int i = 0; i < slots; i++)
        conns[i].fd = -1;
}

static void close_all(void) {
    for (int i = 0; i < nconns; i++)
        if (conns[i].state != S_FREE)
            conn_close(&conns[i], false);
}

/* ------------------------------------------------------------------------
 * Modes
 * ------------------------------------------------------------------------ */

static int count_state(int state) {
    int n = 0;
    for (int i = 0; i < nconns; i++)
        n += conns[i].state == state;
    return n;
}

static void mode_conns(void) {
    setup(opt.conns);
    long rss0 = daemon_rss_kb();
    uint64_t t0 = now_us();
    /* connect everything, a window at a time; each does one round trip
     * and then holds (rounds = 1 for this phase) */
    int want_rounds = opt.rounds;
    opt.rounds = 1;
    int opened = 0;
    while (count_state(S_HOLD) < opt.conns) {
        while (opened < opt.conns && connecting_now < opt.inflight) {
            conn_open(&conns[opened], K_NORMAL);
            opened++;
        }
        pump(100);
    }
    uint64_t t1 = now_us();
    long rss1 = daemon_rss_kb();
    say("phase=connected conns=%d secs=%.2f daemon_rss_kb=%ld before_kb=%ld "
        "rss_per_conn_bytes=%.0f",
        opt.conns, (double)(t1 - t0) / 1e6, rss1, rss0,
        opt.conns ? (double)(rss1 - rss0) * 1024.0 / opt.conns : 0.0);
    /* the remaining round trips on every connection at once */
    for (int i = 0; i < nconns; i++) {
        conn_t *c = &conns[i];
        c->rounds_left = want_rounds;
        c->state = S_OPEN;
        start_round(c);
        set_events(c, EPOLLIN | EPOLLOUT);
    }
    while (count_state(S_HOLD) < opt.conns)
        pump(100);
    uint64_t t2 = now_us();
    long rss2 = daemon_rss_kb();
    say("phase=echoed conns=%d rounds=%llu bytes_checked=%llu secs=%.2f "
        "daemon_rss_kb=%ld",
        opt.conns, (unsigned long long)rounds_done,
        (unsigned long long)bytes_checked, (double)(t2 - t1) / 1e6, rss2);
    if (rounds_done != (uint64_t)opt.conns * (uint64_t)(want_rounds + 1))
        fail("%llu round trips, expected %llu", (unsigned long long)rounds_done,
             (unsigned long long)opt.conns * (uint64_t)(want_rounds + 1));
    close_all();
}

/* Serve-check: n fresh clients, one round trip each, within `secs`. */
static void fresh_clients(int n, int secs) {
    uint64_t until = now_us() + (uint64_t)secs * 1000000u;
    uint64_t r0 = rounds_done;
    opt.rounds = 1;
    for (int i = 0; i < n; i++) {
        conn_t *c = free_slot();
        conn_open(c, K_NORMAL);
    }
    while (rounds_done - r0 < (uint64_t)n) {
        if (now_us() > until)
            fail("new clients not served within %d s (%llu of %d)", secs,
                 (unsigned long long)(rounds_done - r0), n);
        pump(50);
    }
}

static void mode_flood(void) {
    setup(opt.conns + 64);
    /* connections beyond what the daemon can accept: they sit in its
     * listen queue while it is out of descriptors */
    for (int i = 0; i < opt.conns; i++) {
        conn_open(&conns[i], K_FLOOD);
        while (connecting_now >= opt.inflight)
            pump(50);
    }
    while (connecting_now > 0)
        pump(50);
    /* give the daemon a moment to hit the limit, then measure */
    uint64_t settle = now_us() + 300000;
    while (now_us() < settle)
        pump(50);
    uint64_t c0 = daemon_cpu_us(), w0 = now_us();
    while (now_us() - w0 < (uint64_t)opt.hold_ms * 1000u)
        pump(50);
    uint64_t cpu = daemon_cpu_us() - c0, wall = now_us() - w0;
    double pct = 100.0 * (double)cpu / (double)wall;
    say("phase=flood conns=%d hold_ms=%d daemon_cpu_ms=%.1f cpu_pct=%.1f "
        "daemon_rss_kb=%ld",
        opt.conns, opt.hold_ms, (double)cpu / 1000.0, pct, daemon_rss_kb());
    if (pct > opt.max_cpu)
        fail("daemon used %.1f%% CPU while out of descriptors (max %d%%)", pct,
             opt.max_cpu);
    close_all();
    fresh_clients(5, 15);
    say("phase=recovered fresh_clients=5");
}

static void mode_misbehave(void) {
    /* slots: normals churn, the others stay */
    int nnormal = 40, nslowr = 20, nsloww = 20, nreset = 10, nhalf = 10;
    setup(nnormal + nslowr + nsloww + nreset + nhalf);
    long rss0 = daemon_rss_kb(), rss_max = rss0;
    int k = 0;
    for (int i = 0; i < nslowr; i++)
        conn_open(&conns[k++], K_SLOW_READER);
    for (int i = 0; i < nsloww; i++)
        conn_open(&conns[k++], K_SLOW_WRITER);
    uint64_t end = now_us() + (uint64_t)opt.secs * 1000000u, next_sample = 0;
    opt.rounds = 3;
    while (now_us() < end) {
        /* keep the churning kinds topped up */
        for (int i = nslowr + nsloww; i < nconns; i++) {
            if (conns[i].state != S_FREE)
                continue;
            int j = i - nslowr - nsloww;
            conn_open(&conns[i], j < nnormal            ? K_NORMAL
                                 : j < nnormal + nreset ? K_RESETTER
                                                        : K_HALF_CLOSER);
        }
        pump(10);
        tick();
        if (now_us() >= next_sample) {
            long r = daemon_rss_kb();
            if (r > rss_max)
                rss_max = r;
            next_sample = now_us() + 500000;
        }
    }
    /* slow readers never read: their daemon side is stuck writing; that
     * must cost it a bounded amount */
    uint64_t slow_sent = 0;
    for (int i = 0; i < nslowr; i++)
        slow_sent += conns[i].tx;
    say("phase=misbehave secs=%d connects=%llu round_trips=%llu "
        "bytes_checked=%llu "
        "slow_reader_bytes_sent=%llu resets=%llu half_closes=%llu "
        "daemon_rss_kb_start=%ld daemon_rss_kb_max=%ld",
        opt.secs, (unsigned long long)connects_done,
        (unsigned long long)rounds_done, (unsigned long long)bytes_checked,
        (unsigned long long)slow_sent,
        (unsigned long long)count_kind[K_RESETTER],
        (unsigned long long)count_kind[K_HALF_CLOSER], rss0, rss_max);
    if (rss_max - rss0 > (long)opt.max_rss_mb * 1024)
        fail("daemon RSS grew by %ld KiB (max %d MiB)", rss_max - rss0,
             opt.max_rss_mb);
    if (count_kind[K_HALF_CLOSER] < 2 || rounds_done < 10)
        fail("too little traffic to judge");
    close_all();
    fresh_clients(5, 15);
}

static void mode_soak(void) {
    setup(opt.conns);
    uint64_t t0 = now_us(), end = t0 + (uint64_t)opt.secs * 1000000u;
    uint64_t warm = t0 + (uint64_t)opt.secs * 250000u, next_sample = t0;
    long warm_max = 0, late_max = 0, late_min = 0;
    opt.rounds = 4;
    int samples = 0;
    printf("echoload: rss_kb");
    while (now_us() < end) {
        for (int i = 0; i < nconns; i++)
            if (conns[i].state == S_FREE)
                conn_open(&conns[i],
                          (rnd() % 8 == 0) ? K_HALF_CLOSER : K_NORMAL);
        pump(10);
        uint64_t t = now_us();
        if (t >= next_sample) {
            long r = daemon_rss_kb();
            printf(" %ld", r);
            samples++;
            if (t < warm) {
                if (r > warm_max)
                    warm_max = r;
            } else {
                if (r > late_max)
                    late_max = r;
                if (late_min == 0 || r < late_min)
                    late_min = r;
            }
            next_sample = t + 1000000;
        }
    }
    printf("\n");
    say("phase=soak secs=%d conns=%d connects=%llu round_trips=%llu "
        "bytes_checked=%llu rss_warmup_max_kb=%ld rss_after_max_kb=%ld "
        "rss_after_min_kb=%ld",
        opt.secs, opt.conns, (unsigned long long)connects_done,
        (unsigned long long)rounds_done, (unsigned long long)bytes_checked,
        warm_max, late_max, late_min);
    if (opt.pid > 0 && late_max > warm_max + opt.max_growth_kb)
        fail("daemon RSS not flat: %ld KiB after warm-up, %ld KiB peak during "
             "it",
             late_max, warm_max);
    close_all();
}

/* ------------------------------------------------------------------------ */

static int intarg(const char *s) { return (int)strtol(s, NULL, 10); }

int main(int argc, char **argv) {
    const char *addr = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--addr"))
            addr = v;
        else if (!strcmp(k, "--pid"))
            opt.pid = intarg(v);
        else if (!strcmp(k, "--mode"))
            opt.mode = v;
        else if (!strcmp(k, "--conns"))
            opt.conns = intarg(v);
        else if (!strcmp(k, "--inflight"))
            opt.inflight = intarg(v);
        else if (!strcmp(k, "--rounds"))
            opt.rounds = intarg(v);
        else if (!strcmp(k, "--size"))
            opt.size = intarg(v);
        else if (!strcmp(k, "--secs"))
            opt.secs = intarg(v);
        else if (!strcmp(k, "--hold-ms"))
            opt.hold_ms = intarg(v);
        else if (!strcmp(k, "--timeout"))
            opt.timeout = intarg(v);
        else if (!strcmp(k, "--max-cpu"))
            opt.max_cpu = intarg(v);
        else if (!strcmp(k, "--max-rss-mb"))
            opt.max_rss_mb = intarg(v);
        else if (!strcmp(k, "--max-growth-kb"))
            opt.max_growth_kb = intarg(v);
        else if (!strcmp(k, "--seed"))
            opt.seed = (unsigned)intarg(v);
        else
            fail("unknown option %s", k);
    }
    if (addr == NULL || opt.mode == NULL) {
        fprintf(stderr, "usage: echoload --addr 127.0.0.1:PORT --mode "
                        "conns|flood|misbehave|soak [--pid PID] [...]\n");
        return 2;
    }
    char host[64];
    const char *colon = strrchr(addr, ':');
    if (colon == NULL || (size_t)(colon - addr) >= sizeof host)
        fail("bad --addr %s", addr);
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    opt.addr.sin_family = AF_INET;
    opt.addr.sin_port = htons((uint16_t)intarg(colon + 1));
    if (inet_pton(AF_INET, host, &opt.addr.sin_addr) != 1 ||
        (ntohl(opt.addr.sin_addr.s_addr) >> 24) != 127)
        fail("--addr must be a loopback IPv4 address, not %s", addr);
    rng = opt.seed ? opt.seed : 1;
    deadline = now_us() + (uint64_t)opt.timeout * 1000000u;

    if (!strcmp(opt.mode, "conns"))
        mode_conns();
    else if (!strcmp(opt.mode, "flood"))
        mode_flood();
    else if (!strcmp(opt.mode, "misbehave"))
        mode_misbehave();
    else if (!strcmp(opt.mode, "soak"))
        mode_soak();
    else
        fail("unknown mode %s", opt.mode);
    say("PASS mode=%s", opt.mode);
    return 0;
}
