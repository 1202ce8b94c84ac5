/*
 * t/check_echod.c: the echo daemon (and, last, samples/embed), tested from
 * outside: each test starts the built tide-echod (ECHOD_PATH) on 127.0.0.1
 * port 0, reads the port from its "listening on" line, and talks to it
 * with plain blocking and poll(2)-driven sockets.
 *
 * Every wait is bounded (poll with a deadline, SO_RCVTIMEO/SO_SNDTIMEO on
 * every socket). The daemon is killed and reaped on every path: by the
 * checked teardown, by an atexit handler (a failed assertion exits the
 * test's process), and by PR_SET_PDEATHSIG should the test's process die
 * any other way (Check's timeout kills it with SIGKILL).
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#ifndef ECHOD_PATH
#error "ECHOD_PATH must name the built tide-echod"
#endif
#ifndef EMBED_PATH
#error "EMBED_PATH must name the built samples/embed/embed"
#endif

#include "slowdown.h" /* scales the bound below and Check's timeouts */

/* bound of any single wait in these tests, scaled for sanitizer and
 * valgrind builds, whose daemon is as slow as the tests */
#define T_WAIT_MS ((int)t_watchdog_ms(10000))

/* ------------------------------------------------------------------------
 * Time
 * ------------------------------------------------------------------------ */

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

/* ------------------------------------------------------------------------
 * The daemon process
 * ------------------------------------------------------------------------ */

typedef struct daemon_proc {
    pid_t pid;
    int out;  /* its stdout (read end, non-blocking) */
    int err;  /* its stderr (read end, non-blocking) */
    int port; /* from the first "listening on" line */
    char first_addr[256];
    char errbuf[65536]; /* stderr read so far */
    size_t errlen;
} daemon_proc_t;

static daemon_proc_t D = {.pid = -1, .out = -1, .err = -1};

static void daemon_kill(void) {
    if (D.pid > 0) {
        kill(D.pid, SIGKILL);
        waitpid(D.pid, NULL, 0);
        D.pid = -1;
    }
    if (D.out >= 0)
        close(D.out);
    if (D.err >= 0)
        close(D.err);
    D.out = D.err = -1;
}

/* What the sanitizers print when the daemon runs instrumented: any of it
 * fails the test. */
static const char *sanitizer_report(const char *text) {
    static const char *const marks[] = {"AddressSanitizer", "LeakSanitizer",
                                        "runtime error:", "ThreadSanitizer"};
    for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++)
        if (strstr(text, marks[i]) != NULL)
            return marks[i];
    return NULL;
}

static void drain_stderr(void);

static void teardown(void) {
    if (D.err >= 0)
        drain_stderr();
    daemon_kill();
    const char *bad = sanitizer_report(D.errbuf);
    ck_assert_msg(bad == NULL, "echod reported %s: %s", bad, D.errbuf);
}

static void set_nonblock(int fd) {
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* Start ECHOD_PATH with argv = {ECHOD_PATH, args..., NULL}, capture its
 * stdout and stderr. Does not wait for anything. */
/* RLIMIT_NOFILE for the next daemon started (0: inherit). */
static rlim_t child_nofile;

/* What the next daemon started is handed down, as systemd hands it:
 * child_fds[i] becomes its descriptor 3 + i (inheritable), and each of
 * child_env ("NAME=VALUE") is set in its environment, with
 * "LISTEN_PID=self" meaning the daemon's own pid (set after the fork) and
 * "LISTEN_PID=parent" the test's. Each test runs in a process of its own,
 * so this is reset for each. */
static int child_fds[4];
static int child_nfds;
static const char *child_env[6];
static size_t child_nenv;

static void child_handdown(pid_t parent) {
    int high[4];
    for (int i = 0; i < child_nfds; i++)
        if ((high[i] = fcntl(child_fds[i], F_DUPFD, 64)) < 0)
            _exit(126);
    for (int i = 0; i < child_nfds; i++) {
        if (dup2(high[i], 3 + i) < 0) /* not close-on-exec */
            _exit(126);
        close(high[i]);
    }
    for (size_t i = 0; i < child_nenv; i++) {
        char name[64], value[64];
        const char *eq = strchr(child_env[i], '=');
        snprintf(name, sizeof name, "%.*s", (int)(eq - child_env[i]),
                 child_env[i]);
        snprintf(value, sizeof value, "%s", eq + 1);
        if (strcmp(value, "self") == 0)
            snprintf(value, sizeof value, "%ld", (long)getpid());
        else if (strcmp(value, "parent") == 0)
            snprintf(value, sizeof value, "%ld", (long)parent);
        setenv(name, value, 1);
    }
}

static void spawn_path(const char *path, const char *const *args) {
    static bool atexit_set;
    int out[2], err[2];
    const char *argv[64];
    size_t n = 0;
    argv[n++] = path;
    for (; args[0] != NULL && n < 62; args++)
        argv[n++] = args[0];
    argv[n] = NULL;

    if (!atexit_set) {
        atexit(daemon_kill);
        atexit_set = true;
    }
    ck_assert_int_eq(pipe2(out, O_CLOEXEC), 0);
    ck_assert_int_eq(pipe2(err, O_CLOEXEC), 0);
    pid_t parent = getpid();
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        if (child_nofile != 0) {
            struct rlimit rl = {child_nofile, child_nofile};
            setrlimit(RLIMIT_NOFILE, &rl);
        }
        dup2(out[1], 1);
        dup2(err[1], 2);
        child_handdown(parent);
        execv(path, (char *const *)argv);
        fprintf(stderr, "exec %s: %s\n", path, strerror(errno));
        _exit(127);
    }
    close(out[1]);
    close(err[1]);
    D.pid = pid;
    D.out = out[0];
    D.err = err[0];
    D.errlen = 0;
    D.errbuf[0] = '\0';
    set_nonblock(D.out);
    set_nonblock(D.err);
}

static void spawn_daemon(const char *const *args) {
    spawn_path(ECHOD_PATH, args);
}

/* Read what the daemon wrote to stderr so far into D.errbuf. */
static void drain_stderr(void) {
    for (;;) {
        if (D.errlen + 1 >= sizeof D.errbuf)
            return;
        ssize_t r =
            read(D.err, D.errbuf + D.errlen, sizeof D.errbuf - 1 - D.errlen);
        if (r <= 0)
            return;
        D.errlen += (size_t)r;
        D.errbuf[D.errlen] = '\0';
    }
}

/* Wait until stderr contains `needle` (true) or ms pass (false). */
static bool stderr_wait_for(const char *needle, int ms) {
    int64_t end = now_ms() + ms;
    for (;;) {
        drain_stderr();
        if (strstr(D.errbuf, needle) != NULL)
            return true;
        int64_t left = end - now_ms();
        if (left <= 0)
            return false;
        struct pollfd p = {D.err, POLLIN, 0};
        if (poll(&p, 1, (int)(left > 100 ? 100 : left)) > 0 &&
            (p.revents & POLLHUP) && !(p.revents & POLLIN))
            sleep_ms(10);
    }
}

/* Read stdout lines until `count` "listening on" lines came (or fail). The
 * first one's address goes in D.first_addr and its port in D.port. */
static void wait_listening(int count) {
    char buf[4096];
    size_t len = 0;
    int64_t end = now_ms() + T_WAIT_MS;
    int seen = 0;
    while (seen < count) {
        int64_t left = end - now_ms();
        if (left <= 0) {
            drain_stderr();
            ck_abort_msg("no 'listening on' line from echod; stderr: %s",
                         D.errbuf);
        }
        struct pollfd p = {D.out, POLLIN, 0};
        poll(&p, 1, (int)left);
        ssize_t r = read(D.out, buf + len, sizeof buf - 1 - len);
        if (r == 0) {
            drain_stderr();
            ck_abort_msg("echod closed stdout before listening; stderr: %s",
                         D.errbuf);
        }
        if (r < 0)
            continue;
        len += (size_t)r;
        buf[len] = '\0';
        seen = 0;
        for (char *p2 = buf; (p2 = strstr(p2, "listening on ")) != NULL; p2++) {
            char *eol = strchr(p2, '\n');
            if (eol == NULL)
                break;
            if (seen++ == 0) {
                size_t alen = (size_t)(eol - (p2 + 13));
                ck_assert_uint_lt(alen, sizeof D.first_addr);
                memcpy(D.first_addr, p2 + 13, alen);
                D.first_addr[alen] = '\0';
            }
        }
        ck_assert_uint_lt(len, sizeof buf - 1);
    }
    char *colon = strrchr(D.first_addr, ':');
    D.port = colon != NULL && strncmp(D.first_addr, "unix:", 5) != 0
                 ? atoi(colon + 1)
                 : 0;
}

/* Start the daemon on 127.0.0.1:0 with extra arguments (NULL-ended). */
static void start_echod(const char *first, ...) {
    const char *args[48];
    size_t n = 0;
    args[n++] = "--listen";
    args[n++] = "127.0.0.1:0";
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a != NULL && n < 46;
         a = va_arg(ap, const char *))
        args[n++] = a;
    va_end(ap);
    args[n] = NULL;
    spawn_daemon(args);
    wait_listening(1);
    ck_assert_int_gt(D.port, 0);
}

/* Wait up to ms for the daemon to exit; returns its wait status or -1. */
static int wait_exit(int ms) {
    int64_t end = now_ms() + ms;
    for (;;) {
        int st;
        pid_t r = waitpid(D.pid, &st, WNOHANG);
        if (r == D.pid) {
            D.pid = -1;
            drain_stderr();
            return st;
        }
        if (now_ms() >= end)
            return -1;
        drain_stderr(); /* keep its stderr pipe from filling */
        sleep_ms(5);
    }
}

/* SIGTERM, then expect exit status 0 (so that leak checkers have their
 * say) and nothing from a sanitizer. All clients must be closed. */
static void stop_clean(void) {
    ck_assert_int_eq(kill(D.pid, SIGTERM), 0);
    int st = wait_exit(T_WAIT_MS);
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "exit status %d; stderr: %s", st, D.errbuf);
    const char *bad = sanitizer_report(D.errbuf);
    ck_assert_msg(bad == NULL, "echod reported %s: %s", bad, D.errbuf);
}

static bool daemon_alive(void) {
    return D.pid > 0 && waitpid(D.pid, NULL, WNOHANG) == 0;
}

/* ------------------------------------------------------------------------
 * Sockets
 * ------------------------------------------------------------------------ */

static void set_timeouts(int fd, int ms) {
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* A blocking connection to 127.0.0.1:port, or -errno. */
static int try_connect(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    set_timeouts(fd, T_WAIT_MS);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sin, sizeof sin) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

static int connect_echod(void) {
    int fd = try_connect(D.port);
    ck_assert_msg(fd >= 0, "connect: %s", strerror(-fd));
    return fd;
}

static void send_all(int fd, const void *buf, size_t len) {
    const char *p = buf;
    while (len > 0) {
        ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        ck_assert_msg(w > 0, "send: %s", strerror(errno));
        p += w;
        len -= (size_t)w;
    }
}

/* Read exactly len bytes (fails on EOF, error or timeout). */
static void recv_exact(int fd, void *buf, size_t len) {
    char *p = buf;
    while (len > 0) {
        ssize_t r = recv(fd, p, len, 0);
        if (r < 0 && errno == EINTR)
            continue;
        ck_assert_msg(r > 0, "recv: %s",
                      r == 0 ? "end of stream" : strerror(errno));
        p += r;
        len -= (size_t)r;
    }
}

/* One round trip of len bytes of `msg`. */
static void roundtrip(int fd, const void *msg, size_t len) {
    char back[4096];
    ck_assert_uint_le(len, sizeof back);
    send_all(fd, msg, len);
    recv_exact(fd, back, len);
    ck_assert_msg(memcmp(back, msg, len) == 0, "echo differs");
}

/* Wait until the peer closes: 0 for EOF, -errno for an error (a reset),
 * -ETIMEDOUT if nothing happened in ms. Data that arrives is discarded. */
static int wait_closed(int fd, int ms) {
    int64_t end = now_ms() + ms;
    char buf[4096];
    for (;;) {
        int64_t left = end - now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, (int)left) <= 0)
            continue;
        ssize_t r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (r == 0)
            return 0;
        if (r < 0 && errno != EAGAIN && errno != EINTR)
            return -errno;
    }
}

/* A deterministic byte stream (xorshift), so that both ends can produce
 * and check it without holding it. */
typedef struct gen {
    uint64_t s;
    uint64_t word;
    unsigned left;
} gen_t;

static void gen_init(gen_t *g, uint64_t seed) {
    g->s = seed | 1;
    g->left = 0;
}

static unsigned char gen_byte(gen_t *g) {
    if (g->left == 0) {
        g->s ^= g->s << 13;
        g->s ^= g->s >> 7;
        g->s ^= g->s << 17;
        g->word = g->s;
        g->left = 8;
    }
    unsigned char b = (unsigned char)g->word;
    g->word >>= 8;
    g->left--;
    return b;
}

/* ------------------------------------------------------------------------
 * Echo
 * ------------------------------------------------------------------------ */

START_TEST(test_echod_echoes_binary_data) {
    start_echod(NULL);
    int fd = connect_echod();
    unsigned char msg[1024];
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (unsigned char)(i * 7); /* every byte value, NULs too */
    msg[0] = msg[1] = msg[500] = 0;
    roundtrip(fd, msg, sizeof msg);
    roundtrip(fd, "\0", 1);
    roundtrip(fd, "\r\n\0\xff", 4);
    close(fd);
    stop_clean();
}
END_TEST

/* 64 MiB written and read at once through one connection, byte-exact. */
START_TEST(test_echod_streams_64mib) {
    const size_t total = (size_t)64 << 20;
    start_echod(NULL);
    int fd = connect_echod();
    set_nonblock(fd);
    gen_t wg, rg;
    gen_init(&wg, 42);
    gen_init(&rg, 42);
    size_t sent = 0, got = 0;
    unsigned char wbuf[65536], rbuf[65536];
    size_t wpos = 0, wlen = 0;
    int64_t end = now_ms() + 120000;
    while (got < total) {
        ck_assert_msg(now_ms() < end, "64 MiB took too long: %zu back", got);
        struct pollfd p = {fd, POLLIN | (sent < total ? POLLOUT : 0), 0};
        int pr = poll(&p, 1, 1000);
        ck_assert_int_ge(pr, 0);
        if (p.revents & (POLLERR | POLLHUP | POLLNVAL))
            ck_assert_msg(p.revents & POLLIN, "socket error after %zu", got);
        if ((p.revents & POLLOUT) && sent < total) {
            if (wpos == wlen) {
                wlen = total - sent < sizeof wbuf ? total - sent : sizeof wbuf;
                for (size_t i = 0; i < wlen; i++)
                    wbuf[i] = gen_byte(&wg);
                wpos = 0;
            }
            ssize_t w = send(fd, wbuf + wpos, wlen - wpos, MSG_NOSIGNAL);
            if (w > 0) {
                wpos += (size_t)w;
                sent += (size_t)w;
            } else {
                ck_assert_msg(errno == EAGAIN || errno == EINTR, "send: %s",
                              strerror(errno));
            }
        }
        if (p.revents & POLLIN) {
            ssize_t r = recv(fd, rbuf, sizeof rbuf, 0);
            ck_assert_msg(r != 0, "end of stream after %zu of %zu", got, total);
            if (r < 0) {
                ck_assert_msg(errno == EAGAIN || errno == EINTR, "recv: %s",
                              strerror(errno));
                continue;
            }
            /* (ck_assert marks a point through a pipe on every call:
             * too slow per byte; assert once per chunk.) */
            ssize_t bad = -1;
            for (ssize_t i = 0; i < r; i++)
                if (rbuf[i] != gen_byte(&rg) && bad < 0)
                    bad = i;
            ck_assert_msg(bad < 0, "byte %zu differs", got + (size_t)bad);
            got += (size_t)r;
        }
    }
    ck_assert_uint_eq(sent, total);
    close(fd);
    stop_clean();
}
END_TEST

/* The client shuts down its write side: echod sends back everything it
 * got, then closes its side (the client reads EOF). */
START_TEST(test_echod_half_close) {
    start_echod(NULL);
    int fd = connect_echod();
    const size_t len = 300000; /* more than the socket buffers hold */
    unsigned char *msg = malloc(len), *back = malloc(len + 1);
    ck_assert_ptr_nonnull(msg);
    ck_assert_ptr_nonnull(back);
    gen_t g;
    gen_init(&g, 7);
    for (size_t i = 0; i < len; i++)
        msg[i] = gen_byte(&g);
    /* Write in a child thread's stead: interleave, since neither side's
     * buffers hold it all. */
    set_nonblock(fd);
    size_t sent = 0, got = 0;
    bool shut = false, eof = false;
    int64_t end = now_ms() + T_WAIT_MS;
    while (!eof) {
        ck_assert_msg(now_ms() < end, "no EOF: %zu of %zu back", got, len);
        struct pollfd p = {fd, POLLIN | (sent < len ? POLLOUT : 0), 0};
        poll(&p, 1, 500);
        if ((p.revents & POLLOUT) && sent < len) {
            ssize_t w = send(fd, msg + sent, len - sent, MSG_NOSIGNAL);
            if (w > 0)
                sent += (size_t)w;
        }
        if (sent == len && !shut) {
            ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
            shut = true;
        }
        if (p.revents & (POLLIN | POLLHUP)) {
            ssize_t r = recv(fd, back + got, len + 1 - got, 0);
            if (r == 0)
                eof = true;
            else if (r > 0)
                got += (size_t)r;
            else
                ck_assert_msg(errno == EAGAIN || errno == EINTR, "recv: %s",
                              strerror(errno));
        }
    }
    ck_assert(shut);
    ck_assert_uint_eq(got, len);
    ck_assert(memcmp(msg, back, len) == 0);
    free(msg);
    free(back);
    close(fd);
    stop_clean();
}
END_TEST

/* 1000 connections open at once, each with a round trip. */
START_TEST(test_echod_thousand_connections) {
    enum { N = 1000 };
    struct rlimit rl;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < 2 * N + 64) {
        rlim_t want = 2 * N + 64;
        if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want)
            want = rl.rlim_max;
        rl.rlim_cur = want;
        ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    }
    ck_assert_msg(rl.rlim_cur >= N + 64,
                  "RLIMIT_NOFILE too low for %d connections", N);
    start_echod("--quiet", NULL); /* inherits the raised limit */
    static int fds[N];
    for (int i = 0; i < N; i++)
        fds[i] = connect_echod();
    /* Everyone sends first, then everyone reads: all are open at once. */
    for (int i = 0; i < N; i++) {
        char msg[24];
        snprintf(msg, sizeof msg, "conn %06d\n", i % 1000000);
        send_all(fds[i], msg, 12);
    }
    for (int i = 0; i < N; i++) {
        char msg[24], back[16];
        snprintf(msg, sizeof msg, "conn %06d\n", i % 1000000);
        recv_exact(fds[i], back, 12);
        ck_assert_msg(memcmp(msg, back, 12) == 0, "conn %d got another echo",
                      i);
    }
    for (int i = 0; i < N; i++)
        close(fds[i]);
    ck_assert(daemon_alive());
    stop_clean();
}
END_TEST

/* Clients that reset mid-stream (SO_LINGER 0), while echod still has their
 * data to write back, don't disturb another client. */
START_TEST(test_echod_survives_resets) {
    start_echod(NULL);
    int keep = connect_echod();
    roundtrip(keep, "before", 6);
    static unsigned char junk[1 << 20];
    memset(junk, 'r', sizeof junk);
    for (int round = 0; round < 20; round++) {
        int fd = connect_echod();
        set_nonblock(fd);
        /* Send what fits without reading: echod blocks writing back. */
        size_t sent = 0;
        for (int k = 0; k < 64; k++) {
            ssize_t w = send(fd, junk, sizeof junk, MSG_NOSIGNAL);
            if (w <= 0)
                break;
            sent += (size_t)w;
        }
        ck_assert_uint_gt(sent, 0);
        if (round % 2 == 0)
            sleep_ms(5); /* let echod get into its write */
        struct linger lg = {1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        close(fd); /* RST */
        char msg[32];
        int n = snprintf(msg, sizeof msg, "still here %d", round);
        roundtrip(keep, msg, (size_t)n);
    }
    /* Clients that send and close without reading a byte. */
    for (int round = 0; round < 20; round++) {
        int fd = connect_echod();
        send_all(fd, junk, 100000 < sizeof junk ? 100000 : sizeof junk);
        close(fd);
    }
    roundtrip(keep, "after", 5);
    int fresh = connect_echod();
    roundtrip(fresh, "new one", 7);
    close(fresh);
    close(keep);
    ck_assert(daemon_alive());
    stop_clean();
}
END_TEST

/* CPU time (user + system) of the daemon so far, in clock ticks. */
static long daemon_cpu_ticks(void) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)D.pid);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* after the command name */
    ck_assert_ptr_nonnull(p);
    unsigned long ut = 0, st = 0;
    /* Fields after ')': state(3) ... utime(14) stime(15). */
    ck_assert_int_eq(sscanf(p + 2,
                            "%*c %*d %*d %*d %*d %*d %*u %*u %*u "
                            "%*u %*u %lu %lu",
                            &ut, &st),
                     2);
    return (long)(ut + st);
}

/* Out of descriptors: echod pauses accepting (no busy loop: it stays
 * nearly idle), keeps serving the connections it has, and takes the
 * queued ones once descriptors are free again. */
START_TEST(test_echod_survives_descriptor_exhaustion) {
    enum { N = 60 };
    child_nofile = 32; /* room for about 20 connections */
    start_echod(NULL);
    static int fds[N];
    for (int i = 0; i < N; i++)
        fds[i] = connect_echod(); /* the kernel queues what echod can't take */
    roundtrip(fds[0], "first", 5);
    roundtrip(fds[1], "second", 6);

    long c0 = daemon_cpu_ticks();
    int64_t t0 = now_ms();
    sleep_ms(1000);
    long used = daemon_cpu_ticks() - c0;
    int64_t wall = now_ms() - t0;
    long hz = sysconf(_SC_CLK_TCK);
    /* Very loose: a spinning loop would burn the whole second. */
    ck_assert_msg(used * 1000 < wall * hz / 2,
                  "echod used %ld ticks in %lld ms while out of descriptors",
                  used, (long long)wall);
    roundtrip(fds[0], "still served", 12);

    for (int i = 0; i < N - 10; i++)
        close(fds[i]);
    for (int i = N - 10; i < N; i++) /* accepted after the pause */
        roundtrip(fds[i], "late but served", 15);
    kill(D.pid, SIGUSR1);
    ck_assert_msg(stderr_wait_for("accept backoffs", T_WAIT_MS), "%s",
                  D.errbuf);
    ck_assert_msg(strstr(D.errbuf, "accept backoffs 0;") == NULL,
                  "no backoff counted: %s", D.errbuf);
    for (int i = N - 10; i < N; i++)
        close(fds[i]);
    stop_clean();
}
END_TEST

/* A client that trickles a byte at a time does not hold up another. */
START_TEST(test_echod_slow_client_does_not_block_others) {
    start_echod(NULL);
    int slow = connect_echod();
    int fast = connect_echod();
    for (int i = 0; i < 20; i++) {
        char b = (char)('a' + i);
        roundtrip(slow, &b, 1);
        for (int k = 0; k < 5; k++)
            roundtrip(fast, "quick and many bytes", 20);
        sleep_ms(5);
    }
    close(slow);
    close(fast);
    stop_clean();
}
END_TEST

START_TEST(test_echod_unix_socket) {
    char dir[] = "/tmp/echod-test-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[64], arg[80];
    snprintf(path, sizeof path, "%s/s", dir);
    snprintf(arg, sizeof arg, "unix:%s", path);
    const char *args[] = {"--listen", arg, "--drain-timeout", "1", NULL};
    spawn_daemon(args);
    wait_listening(1);
    ck_assert_str_eq(D.first_addr, arg);

    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    set_timeouts(fd, T_WAIT_MS);
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sun, sizeof sun), 0);
    roundtrip(fd, "over a unix socket\0!", 20);
    close(fd);

    kill(D.pid, SIGTERM);
    int st = wait_exit(T_WAIT_MS);
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "exit status %d; stderr: %s", st, D.errbuf);
    struct stat sb;
    ck_assert_msg(stat(path, &sb) < 0, "socket file left behind");
    rmdir(dir);
}
END_TEST

START_TEST(test_echod_threads) {
    start_echod("--threads", "4", "--drain-timeout", "1", NULL);
    enum { N = 64 };
    int fds[N];
    for (int i = 0; i < N; i++)
        fds[i] = connect_echod();
    for (int i = 0; i < N; i++) {
        char msg[24];
        int n = snprintf(msg, sizeof msg, "thread %d", i);
        roundtrip(fds[i], msg, (size_t)n);
    }
    for (int i = 0; i < N; i++)
        close(fds[i]);
    kill(D.pid, SIGTERM);
    int st = wait_exit(T_WAIT_MS);
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "exit status %d; stderr: %s", st, D.errbuf);
}
END_TEST

/* ------------------------------------------------------------------------
 * Limits
 * ------------------------------------------------------------------------ */

START_TEST(test_echod_max_conns) {
    start_echod("--max-conns", "2", NULL);
    int a = connect_echod(), b = connect_echod();
    roundtrip(a, "a", 1); /* both are admitted (their echo came back) */
    roundtrip(b, "b", 1);
    int c = connect_echod(); /* the kernel accepts; echod closes it */
    int r = wait_closed(c, T_WAIT_MS);
    ck_assert_msg(r == 0 || r == -ECONNRESET, "third connection: %s",
                  strerror(-r));
    close(c);
    roundtrip(a, "still a", 7);
    roundtrip(b, "still b", 7);
    ck_assert(daemon_alive());

    /* A slot frees up: a new connection gets in (echod may take a moment
     * to see the close). */
    close(a);
    bool in = false;
    int64_t end = now_ms() + T_WAIT_MS;
    while (!in && now_ms() < end) {
        int d = connect_echod();
        char ch;
        send_all(d, "d", 1);
        struct pollfd p = {d, POLLIN, 0};
        if (poll(&p, 1, 1000) > 0 && recv(d, &ch, 1, 0) == 1 && ch == 'd')
            in = true;
        close(d);
        if (!in)
            sleep_ms(20);
    }
    ck_assert_msg(in, "no connection admitted after one closed");
    close(b);
    stop_clean();
}
END_TEST

/* A client that sends and never reads stalls the daemon's write back:
 * no progress in either direction, so it is closed after the timeout (the
 * write waiting on it is cut short, its buffer goes back to the pool),
 * and a busy client meanwhile is served. */
START_TEST(test_echod_idle_timeout_stalled_writer) {
    start_echod("--idle-timeout", "0.3", NULL);
    int stall = connect_echod();
    int busy = connect_echod();
    static char junk[64 * 1024];
    memset(junk, 'j', sizeof junk);
    size_t sent = 0;
    int64_t t0 = now_ms();
    /* fill both directions' buffers: the daemon's write back stalls */
    while (now_ms() - t0 < 2000 * (int64_t)t_slowdown()) {
        ssize_t w = send(stall, junk, sizeof junk, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w > 0) {
            sent += (size_t)w;
            continue;
        }
        if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            roundtrip(busy, "tick", 4); /* never idle */
            sleep_ms(20);               /* the daemon may still take more */
            if (send(stall, junk, 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 &&
                errno == EAGAIN)
                break;
            sent++;
            continue;
        }
        break; /* closed already: checked below */
    }
    ck_assert_uint_gt(sent, 0);
    /* the stalled one is closed (seen without reading from it, which
     * would be progress); the busy one, talking every 50 ms, is not */
    bool closed = false;
    for (int64_t end = now_ms() + T_WAIT_MS; !closed && now_ms() < end;) {
        roundtrip(busy, "tick", 4);
        struct pollfd p = {stall, POLLRDHUP, 0};
        closed = poll(&p, 1, 50) > 0 &&
                 (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
    }
    ck_assert_msg(closed, "the stalled client is still open");
    roundtrip(busy, "alive", 5);
    close(stall);
    close(busy);
    stop_clean();
}
END_TEST

/* --max-conns-wait: at the limit, newcomers wait (in the backlog) instead
 * of being closed, and are served in turn as slots free up. */
START_TEST(test_echod_max_conns_wait) {
    start_echod("--max-conns", "1", "--max-conns-wait", NULL);
    int a = connect_echod();
    roundtrip(a, "a", 1);
    int b = connect_echod(); /* the kernel completes it: the backlog */
    send_all(b, "b", 1);
    struct pollfd p = {b, POLLIN, 0};
    ck_assert_int_eq(poll(&p, 1, 300), 0); /* not served while a is open */
    roundtrip(a, "still a", 7);
    close(a);
    char ch = 0;
    recv_exact(b, &ch, 1); /* a's slot is b's: served, not closed */
    ck_assert_int_eq(ch, 'b');
    roundtrip(b, "b again", 7);
    close(b);
    ck_assert(daemon_alive());
    stop_clean();
}
END_TEST

START_TEST(test_echod_idle_timeout) {
    start_echod("--idle-timeout", "0.3", NULL);
    int idle = connect_echod();
    int busy = connect_echod();
    roundtrip(idle, "x", 1);
    /* The busy one talks every 50 ms for a second: never idle 0.3 s. */
    int64_t t0 = now_ms();
    bool idle_closed = false;
    int64_t closed_after = 0;
    while (now_ms() - t0 < 1000) {
        roundtrip(busy, "tick", 4);
        if (!idle_closed) {
            struct pollfd p = {idle, POLLIN, 0};
            if (poll(&p, 1, 0) > 0) {
                ck_assert_int_eq(wait_closed(idle, 1000), 0);
                idle_closed = true;
                closed_after = now_ms() - t0;
            }
        }
        sleep_ms(50);
    }
    if (!idle_closed) {
        ck_assert_int_eq(wait_closed(idle, T_WAIT_MS), 0);
        closed_after = now_ms() - t0;
    }
    ck_assert_int_ge(closed_after, 250); /* not before its time */
    roundtrip(busy, "alive", 5);
    close(idle);
    close(busy);
    stop_clean();
}
END_TEST

/* ------------------------------------------------------------------------
 * Limits: slow clients, addresses, memory
 * ------------------------------------------------------------------------ */

/* Raise this process's RLIMIT_NOFILE (which the daemon inherits) to at
 * least want, or skip the test when the hard limit is lower. */
static void raise_nofile(rlim_t want) {
    struct rlimit rl;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur >= want)
        return;
    ck_assert_msg(rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want,
                  "RLIMIT_NOFILE hard limit %llu, need %llu",
                  (unsigned long long)rl.rlim_max, (unsigned long long)want);
    rl.rlim_cur = want;
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
}

/* The daemon's resident memory in KiB (VmRSS). */
static long daemon_rss_kib(void) {
    char path[64], line[256];
    long kib = -1;
    snprintf(path, sizeof path, "/proc/%d/status", (int)D.pid);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    while (fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    ck_assert_int_gt(kib, 0);
    return kib;
}

/* The daemon's counters, from a fresh SIGUSR1 line. */
typedef struct echod_ctr {
    unsigned long long open, total, refused, refused_addr, evicted, in, out,
        backoffs, waits;
} echod_ctr_t;

static echod_ctr_t daemon_counters(void) {
    drain_stderr();
    size_t from = D.errlen;
    ck_assert_int_eq(kill(D.pid, SIGUSR1), 0);
    echod_ctr_t c;
    const char *line = NULL;
    for (int64_t end = now_ms() + T_WAIT_MS; line == NULL;) {
        ck_assert_msg(now_ms() < end, "no counters; stderr: %s", D.errbuf);
        stderr_wait_for("buffer waits", 100);
        const char *p = strstr(D.errbuf + from, "echod: connections");
        if (p != NULL && strchr(p, '\n') != NULL)
            line = p;
    }
    int n = sscanf(line,
                   "echod: connections %llu open, %llu total, %llu refused "
                   "(%llu per address), %llu evicted; bytes %llu in, %llu "
                   "out; log lines dropped %*u; accept backoffs %llu; buffer "
                   "waits %llu",
                   &c.open, &c.total, &c.refused, &c.refused_addr, &c.evicted,
                   &c.in, &c.out, &c.backoffs, &c.waits);
    ck_assert_msg(n == 9, "counters line: %s", line);
    return c;
}

/* Wait until the daemon has no open connection. */
static void wait_no_conns(void) {
    int64_t end = now_ms() + T_WAIT_MS;
    while (daemon_counters().open != 0) {
        ck_assert_msg(now_ms() < end, "connections still open");
        sleep_ms(50);
    }
}

/* A non-blocking connection from local address `from` (NULL: any). */
static int connect_from(const char *from, int rcvbuf) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    set_timeouts(fd, T_WAIT_MS);
    if (rcvbuf > 0) {
        /* Before connect: the window offered, and the segment size. With
         * loopback's 64 KiB segments the daemon's send buffer grows to
         * megabytes before its write back stalls; with small segments
         * it stays small, so a stalled write comes soon. */
        int mss = 536;
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
        setsockopt(fd, IPPROTO_TCP, TCP_MAXSEG, &mss, sizeof mss);
    }
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    if (from != NULL) {
        ck_assert_int_eq(inet_pton(AF_INET, from, &sin.sin_addr), 1);
        ck_assert_msg(bind(fd, (struct sockaddr *)&sin, sizeof sin) == 0,
                      "bind %s: %s", from, strerror(errno));
    }
    sin.sin_port = htons((uint16_t)D.port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_msg(connect(fd, (struct sockaddr *)&sin, sizeof sin) == 0,
                  "connect: %s", strerror(errno));
    return fd;
}

/* One round trip that may fail (the daemon closed the connection). */
static bool try_roundtrip(int fd, const char *msg, size_t len, int ms) {
    char back[64];
    size_t got = 0;
    if (send(fd, msg, len, MSG_NOSIGNAL) != (ssize_t)len)
        return false;
    int64_t end = now_ms() + ms;
    while (got < len) {
        int64_t left = end - now_ms();
        struct pollfd p = {fd, POLLIN, 0};
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            return false;
        ssize_t r = recv(fd, back + got, len - got, MSG_DONTWAIT);
        if (r <= 0)
            return false;
        got += (size_t)r;
    }
    return memcmp(back, msg, len) == 0;
}

/* A slowloris holds every --max-conns slot: 32 connections that send a
 * byte every 3 s (and reconnect when closed). Newcomers that talk at once
 * still get in, each evicting the connection idle the longest (idle over
 * --evict-idle, 1 s by default), and the evictions are counted. Without
 * eviction every newcomer is refused. */
START_TEST(test_echod_slowloris_evicted) {
    enum { N = 32, CLIENTS = 20 };
    start_echod("--max-conns", "32", NULL);
    int slow[N];
    int64_t next[N];
    int64_t t0 = now_ms();
    for (int i = 0; i < N; i++) {
        slow[i] = connect_from(NULL, 0);
        next[i] = t0 + i * 3000 / N; /* spread over the 3 s */
    }
    int admitted = 0, tried = 0;
    int64_t next_client = t0 + 1500; /* the first slots got older */
    while (tried < CLIENTS) {
        ck_assert_msg(now_ms() - t0 < 60000, "took too long");
        int64_t now = now_ms();
        for (int i = 0; i < N; i++) {
            char b[64];
            ssize_t r = recv(slow[i], b, sizeof b, MSG_DONTWAIT);
            bool closed = r == 0 || (r < 0 && errno != EAGAIN);
            if (!closed && now >= next[i]) {
                closed = send(slow[i], "x", 1, MSG_NOSIGNAL) != 1;
                next[i] = now + 3000;
            }
            if (closed) { /* evicted: the attack comes back */
                close(slow[i]);
                slow[i] = connect_from(NULL, 0);
                next[i] = now + 3000;
            }
        }
        if (now >= next_client) {
            int fd = connect_from(NULL, 0);
            admitted += try_roundtrip(fd, "hello", 5, 2000);
            close(fd);
            tried++;
            next_client = now_ms() + 150;
        }
        sleep_ms(10);
    }
    echod_ctr_t c = daemon_counters();
    ck_assert_msg(admitted == CLIENTS,
                  "%d of %d clients served (%llu "
                  "evicted, %llu refused)",
                  admitted, CLIENTS, c.evicted, c.refused);
    ck_assert_uint_ge(c.evicted, CLIENTS);
    for (int i = 0; i < N; i++)
        close(slow[i]);
    stop_clean();
}
END_TEST

/* --max-conns-per-addr 3: the fourth connection from 127.0.0.1 is
 * refused (and counted), one from 127.0.0.2 (loopback too, on Linux) is
 * served, and once one of the first three closes, 127.0.0.1 gets in
 * again. */
START_TEST(test_echod_max_conns_per_addr) {
    start_echod("--max-conns-per-addr", "3", NULL);
    int a[3];
    for (int i = 0; i < 3; i++) {
        a[i] = connect_from("127.0.0.1", 0);
        roundtrip(a[i], "a", 1);
    }
    int extra = connect_from("127.0.0.1", 0);
    int r = wait_closed(extra, T_WAIT_MS);
    ck_assert_msg(r == 0 || r == -ECONNRESET, "fourth connection: %s",
                  strerror(-r));
    close(extra);
    int other = connect_from("127.0.0.2", 0);
    roundtrip(other, "from another address", 20);
    echod_ctr_t c = daemon_counters();
    ck_assert_uint_eq(c.refused, 1);
    ck_assert_uint_eq(c.refused_addr, 1);
    ck_assert_uint_eq(c.open, 4);
    for (int i = 0; i < 3; i++)
        roundtrip(a[i], "still", 5);

    close(a[0]);
    bool in = false;
    for (int64_t end = now_ms() + T_WAIT_MS; !in && now_ms() < end;) {
        int fd = connect_from("127.0.0.1", 0);
        in = try_roundtrip(fd, "again", 5, 1000);
        close(fd);
        if (!in)
            sleep_ms(20);
    }
    ck_assert_msg(in, "127.0.0.1 not admitted after one of its closed");
    close(a[1]);
    close(a[2]);
    close(other);
    stop_clean();
}
END_TEST

/* The per-address table with several workers (each accepts and closes
 * on its own thread, so the table is shared; under TSan this is the test
 * that reaches it from threads): 8 connections from 127.0.0.1 are in,
 * the ninth is refused, and 40 times one closes and a new one gets its
 * place, whichever workers serve them. */
START_TEST(test_echod_max_conns_per_addr_threads) {
    start_echod("--threads", "4", "--max-conns-per-addr", "8", NULL);
    enum { N = 8 };
    int a[N];
    for (int i = 0; i < N; i++) {
        a[i] = connect_from("127.0.0.1", 0);
        roundtrip(a[i], "a", 1);
    }
    int extra = connect_from("127.0.0.1", 0);
    int r = wait_closed(extra, T_WAIT_MS);
    ck_assert_msg(r == 0 || r == -ECONNRESET, "ninth connection: %s",
                  strerror(-r));
    close(extra);
    for (int k = 0; k < 40; k++) {
        int i = k % N;
        close(a[i]);
        a[i] = -1;
        for (int64_t end = now_ms() + T_WAIT_MS; a[i] < 0 && now_ms() < end;) {
            int fd = connect_from("127.0.0.1", 0);
            if (try_roundtrip(fd, "again", 5, 1000)) {
                a[i] = fd;
            } else {
                close(fd);
                sleep_ms(5);
            }
        }
        ck_assert_msg(a[i] >= 0, "round %d: not admitted after a close", k);
    }
    for (int i = 0; i < N; i++)
        roundtrip(a[i], "still", 5);
    echod_ctr_t c = daemon_counters();
    ck_assert_uint_ge(c.refused_addr, 1);
    ck_assert_uint_eq(c.open, N);
    for (int i = 0; i < N; i++)
        close(a[i]);
    stop_clean();
}
END_TEST

/* Clients that send and never read, each with a small receive window:
 * the daemon's write back to each stalls, holding a buffer. */
typedef struct burst {
    int n;
    int *fd;
    size_t *sent, *got;
    gen_t *tx, *rx;
    size_t len; /* bytes each client sends in all */
} burst_t;

static void burst_open(burst_t *b, int n, size_t len) {
    b->n = n;
    b->len = len;
    b->fd = calloc((size_t)n, sizeof *b->fd);
    b->sent = calloc((size_t)n, sizeof *b->sent);
    b->got = calloc((size_t)n, sizeof *b->got);
    b->tx = calloc((size_t)n, sizeof *b->tx);
    b->rx = calloc((size_t)n, sizeof *b->rx);
    ck_assert(b->fd && b->sent && b->got && b->tx && b->rx);
    for (int i = 0; i < n; i++) {
        b->fd[i] = connect_from(NULL, 4096);
        set_nonblock(b->fd[i]);
        gen_init(&b->tx[i], (uint64_t)i + 1);
        gen_init(&b->rx[i], (uint64_t)i + 1);
    }
}

/* Send without reading until every client's send would block (or it sent
 * all): then each has filled the daemon's buffers both ways. */
static void burst_fill(burst_t *b) {
    static unsigned char chunk[16384];
    bool more = true;
    int64_t end = now_ms() + 4 * T_WAIT_MS;
    while (more) {
        ck_assert_msg(now_ms() < end, "clients could not fill");
        more = false;
        for (int i = 0; i < b->n; i++) {
            if (b->sent[i] == b->len)
                continue;
            size_t k = b->len - b->sent[i];
            if (k > sizeof chunk)
                k = sizeof chunk;
            gen_t save = b->tx[i];
            for (size_t j = 0; j < k; j++)
                chunk[j] = gen_byte(&b->tx[i]);
            ssize_t w = send(b->fd[i], chunk, k, MSG_NOSIGNAL | MSG_DONTWAIT);
            ck_assert_msg(w > 0 || errno == EAGAIN, "send: %s",
                          strerror(errno));
            /* the generator goes back to what was not taken */
            b->tx[i] = save;
            for (ssize_t j = 0; j < (w > 0 ? w : 0); j++)
                gen_byte(&b->tx[i]);
            if (w > 0) {
                b->sent[i] += (size_t)w;
                more = true;
            }
        }
        if (!more) { /* the daemon may still be reading: look again */
            sleep_ms(50);
            for (int i = 0; i < b->n && !more; i++) {
                if (b->sent[i] == b->len)
                    continue;
                struct pollfd p = {b->fd[i], POLLOUT, 0};
                more = poll(&p, 1, 0) > 0;
            }
        }
    }
}

/* The highest RSS seen over ~1 s (the daemon settles). */
static long settle_rss_kib(void) {
    long peak = 0;
    for (int i = 0; i < 10; i++) {
        long r = daemon_rss_kib();
        if (r > peak)
            peak = r;
        sleep_ms(100);
    }
    return peak;
}

/* Now read everything back, sending the rest meanwhile; every byte must
 * come back, in order. */
static void burst_finish(burst_t *b) {
    static unsigned char chunk[16384];
    int64_t end = now_ms() + 6 * T_WAIT_MS;
    struct pollfd *p = calloc((size_t)b->n, sizeof *p);
    ck_assert_ptr_nonnull(p);
    for (;;) {
        int busy = 0;
        for (int i = 0; i < b->n; i++) {
            p[i].fd = b->fd[i];
            p[i].events = (short)((b->sent[i] < b->len ? POLLOUT : 0) |
                                  (b->got[i] < b->len ? POLLIN : 0));
            if (p[i].events == 0)
                p[i].fd = -1;
            else
                busy++;
        }
        if (busy == 0)
            break;
        if (now_ms() >= end) {
            size_t sent = 0, got = 0;
            for (int i = 0; i < b->n; i++)
                sent += b->sent[i], got += b->got[i];
            echod_ctr_t c = daemon_counters();
            ck_abort_msg("%d clients did not get all back (%zu bytes sent, "
                         "%zu received of %zu; the daemon: %llu in, %llu "
                         "out, %llu buffer waits)",
                         busy, sent, got, (size_t)b->n * b->len, c.in, c.out,
                         c.waits);
        }
        if (poll(p, (nfds_t)b->n, 1000) <= 0)
            continue;
        for (int i = 0; i < b->n; i++) {
            if (p[i].revents & POLLIN) {
                ssize_t r = recv(b->fd[i], chunk, sizeof chunk, MSG_DONTWAIT);
                ck_assert_msg(r > 0 || (r < 0 && errno == EAGAIN),
                              "client %d: recv %zd after %zu bytes: %s", i, r,
                              b->got[i], r == 0 ? "end" : strerror(errno));
                /* (no ck_assert per byte: each is a write to Check's
                 * pipe) */
                ssize_t bad = -1;
                for (ssize_t j = 0; j < r; j++)
                    if (chunk[j] != gen_byte(&b->rx[i]) && bad < 0)
                        bad = j;
                ck_assert_msg(bad < 0, "client %d: byte %zu differs", i,
                              b->got[i] + (size_t)bad);
                if (r > 0)
                    b->got[i] += (size_t)r;
            }
            if ((p[i].revents & POLLOUT) && b->sent[i] < b->len) {
                size_t k = b->len - b->sent[i];
                if (k > sizeof chunk)
                    k = sizeof chunk;
                gen_t save = b->tx[i];
                for (size_t j = 0; j < k; j++)
                    chunk[j] = gen_byte(&b->tx[i]);
                ssize_t w =
                    send(b->fd[i], chunk, k, MSG_NOSIGNAL | MSG_DONTWAIT);
                b->tx[i] = save;
                for (ssize_t j = 0; j < (w > 0 ? w : 0); j++)
                    gen_byte(&b->tx[i]);
                if (w > 0)
                    b->sent[i] += (size_t)w;
            }
        }
    }
    free(p);
}

static void burst_close(burst_t *b) {
    for (int i = 0; i < b->n; i++)
        close(b->fd[i]);
    free(b->fd);
    free(b->sent);
    free(b->got);
    free(b->tx);
    free(b->rx);
}

/* 1,000 clients that never read each stall a 64 KiB buffer (about
 * 50 MiB in all). Once they close, the daemon's RSS comes back near where it was
 * before the burst (the pool keeps up to 4 MiB), instead of staying at
 * the peak. */
START_TEST(test_echod_memory_returns_after_burst) {
    enum { N = 1000 };
    raise_nofile(2 * N + 64);
    start_echod("--quiet", "--buffer-size", "64k", NULL);
    int warm = connect_echod();
    roundtrip(warm, "warm up", 7);
    close(warm);
    long base = settle_rss_kib();
    burst_t b;
    burst_open(&b, N, 512u << 10);
    burst_fill(&b);
    long peak = settle_rss_kib();
    burst_close(&b);
    wait_no_conns();
    long after = settle_rss_kib();
    fprintf(stderr,
            "memory_returns: RSS %ld KiB before, %ld at the peak, "
            "%ld after\n",
            base, peak, after);
    ck_assert_msg(peak - base > N * 8,
                  "the burst cost only %ld KiB: it "
                  "tests nothing",
                  peak - base);
    ck_assert_msg(after - base < (peak - base) / 4,
                  "RSS %ld KiB before, %ld at the peak, %ld after", base, peak,
                  after);
    stop_clean();
}
END_TEST

/* --max-buffer-memory 2M bounds the buffers of the same burst (the
 * connections with data to read wait for a buffer: counted), and when
 * the clients finally read, every byte comes back. */
START_TEST(test_echod_max_buffer_memory) {
    enum { N = 500 };
    raise_nofile(2 * N + 64);
    start_echod("--quiet", "--buffer-size", "64k", "--max-buffer-memory", "2M",
                NULL);
    int warm = connect_echod();
    roundtrip(warm, "warm up", 7);
    close(warm);
    long base = settle_rss_kib();
    burst_t b;
    burst_open(&b, N, 256u << 10);
    burst_fill(&b);
    long peak = settle_rss_kib();
    fprintf(stderr,
            "max_buffer_memory: RSS %ld KiB before, %ld with %d "
            "stalled clients\n",
            base, peak, N);
    /* 2 MiB of buffers, ~1 KiB per connection, and slack */
    ck_assert_msg(peak - base < 2048 + N * 2 + 4096,
                  "RSS %ld KiB before, %ld during", base, peak);
    echod_ctr_t c = daemon_counters();
    ck_assert_uint_gt(c.waits, 0);
    burst_finish(&b);
    for (int i = 0; i < N; i++)
        ck_assert_uint_eq(b.got[i], b.len);
    burst_close(&b);
    c = daemon_counters();
    ck_assert_uint_eq(c.in, (unsigned long long)N * (256u << 10) + 7);
    ck_assert_uint_eq(c.out, c.in);
    stop_clean();
}
END_TEST

/* ------------------------------------------------------------------------
 * Signals
 * ------------------------------------------------------------------------ */

/* A client that streams a generated byte sequence (non-blocking) and
 * reads the echo back at its own pace, checking every byte. */
typedef struct streamer {
    int fd;
    gen_t wg, rg;
    size_t total, sent, got;
    unsigned char wbuf[65536];
    size_t wpos, wlen;
} streamer_t;

/* A connection to the daemon with the smallest send buffer (fixed
 * before the handshake, so that the kernel does not grow it: a few KiB),
 * so that what it sends is soon in the daemon's receive queue. A drain
 * closes a connection once it would wait for input: the few KiB still
 * in our queue then must reach the daemon before it has emptied its
 * receive queue (full, hundreds of KiB: they do, at its first read, which
 * opens its window). */
static int connect_small_buffers(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    int size = 1; /* the kernel's minimum */
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    set_timeouts(fd, T_WAIT_MS);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)D.port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_msg(connect(fd, (struct sockaddr *)&sin, sizeof sin) == 0,
                  "connect: %s", strerror(errno));
    return fd;
}

static void streamer_init(streamer_t *st, int fd, size_t total, uint64_t seed) {
    memset(st, 0, sizeof *st);
    st->fd = fd;
    st->total = total;
    gen_init(&st->wg, seed);
    gen_init(&st->rg, seed);
    set_nonblock(fd);
}

/* Send what the socket takes now (up to total); the bytes sent. */
static size_t streamer_send(streamer_t *st) {
    size_t before = st->sent;
    while (st->sent < st->total) {
        if (st->wpos == st->wlen) {
            size_t left = st->total - st->sent;
            st->wlen = left < sizeof st->wbuf ? left : sizeof st->wbuf;
            for (size_t i = 0; i < st->wlen; i++)
                st->wbuf[i] = gen_byte(&st->wg);
            st->wpos = 0;
        }
        ssize_t w = send(st->fd, st->wbuf + st->wpos, st->wlen - st->wpos,
                         MSG_NOSIGNAL);
        if (w < 0) {
            ck_assert_msg(errno == EAGAIN || errno == EINTR, "send: %s",
                          strerror(errno));
            break;
        }
        st->wpos += (size_t)w;
        st->sent += (size_t)w;
    }
    return st->sent - before;
}

/* Read up to max bytes that are there now, checking them: the count, or
 * -1 at the end of the stream (which must come after every byte sent). */
static ssize_t streamer_read(streamer_t *st, size_t max) {
    unsigned char buf[65536];
    if (max > sizeof buf)
        max = sizeof buf;
    ssize_t r = recv(st->fd, buf, max, 0);
    if (r == 0) {
        ck_assert_msg(st->got == st->sent,
                      "end of stream after %zu of %zu bytes", st->got,
                      st->sent);
        return -1;
    }
    if (r < 0) {
        ck_assert_msg(errno == EAGAIN || errno == EINTR,
                      "recv after %zu of %zu bytes: %s", st->got, st->sent,
                      strerror(errno));
        return 0;
    }
    ssize_t bad = -1;
    for (ssize_t i = 0; i < r; i++)
        if (buf[i] != gen_byte(&st->rg) && bad < 0)
            bad = i;
    ck_assert_msg(bad < 0, "byte %zu differs", st->got + (size_t)bad);
    st->got += (size_t)r;
    return r;
}

/* Make st busy: send, reading nothing, until for 500 ms the socket
 * takes no more. The daemon's receive queue is then full (our send queue
 * waits for its window), so the daemon has not read for 500 ms: it is
 * stalled in its write back to us, with the sockets' buffers full both
 * ways (megabytes: the kernel grows them). Everything sent but a few KiB
 * (our send queue: see connect_small_buffers) is in the daemon's hands,
 * and none of it has come back. st's total becomes what was sent. */
static void streamer_make_busy(streamer_t *st) {
    int64_t end = now_ms() + T_WAIT_MS;
    for (int still = 0; still < 25;) {
        ck_assert_msg(now_ms() < end, "the daemon takes it all: %zu sent",
                      st->sent);
        if (streamer_send(st) > 0) {
            still = 0;
        } else {
            still++;
            sleep_ms(20);
        }
    }
    st->total = st->sent;
}

/* Read the rest of st's echo: every byte, then the end of the stream. */
static void streamer_finish(streamer_t *st, int64_t end) {
    for (;;) {
        ck_assert_msg(now_ms() < end, "echo: %zu of %zu bytes back", st->got,
                      st->sent);
        struct pollfd p = {st->fd, POLLIN, 0};
        poll(&p, 1, 100);
        if (streamer_read(st, 65536) < 0)
            break;
    }
    ck_assert_uint_eq(st->got, st->total);
}

/* SIGTERM with an idle connection and a busy one (a client that streams
 * and reads slowly, so that bytes are in flight): the idle one is closed
 * at once (EOF, not the drain timeout), no new connection is served, the
 * busy one gets every byte back, byte-exact, then EOF, and the daemon
 * exits 0 as soon as it is closed (well before the drain timeout). */
START_TEST(test_echod_sigterm_drains) {
    start_echod("--drain-timeout", "20", NULL);
    int idle = connect_echod();
    roundtrip(idle, "before", 6);
    static streamer_t st;
    streamer_init(&st, connect_small_buffers(), (size_t)256 << 20, 11);
    streamer_make_busy(&st);
    int64_t t0 = now_ms();
    kill(D.pid, SIGTERM);
    int r = wait_closed(idle, T_WAIT_MS);
    int64_t idle_ms = now_ms() - t0;
    ck_assert_msg(r == 0, "idle connection: %s", strerror(-r));
    ck_assert_msg(idle_ms < 2000 * (int64_t)t_slowdown(),
                  "the idle connection took %lld ms to close",
                  (long long)idle_ms);
    size_t in_flight = st.sent - st.got;
    ck_assert_uint_gt(in_flight, 0); /* not read since */
    r = try_connect(D.port);
    if (r >= 0) { /* the listener is closed: a connection can't be echoed */
        int w = wait_closed(r, 2000);
        close(r);
        ck_assert_msg(w != -ETIMEDOUT, "new connection accepted in drain");
    }
    ck_assert(daemon_alive());
    streamer_finish(&st, now_ms() + T_WAIT_MS);
    close(st.fd);
    close(idle);
    int status = wait_exit(T_WAIT_MS);
    ck_assert_msg(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "exit status %d; stderr: %s", status, D.errbuf);
    ck_assert_int_lt(now_ms() - t0, 15000); /* not the 20 s deadline */
    fprintf(stderr,
            "sigterm: idle closed after %lld ms; %zu bytes in "
            "flight, all back\n",
            (long long)idle_ms, in_flight);
}
END_TEST

/* The same with --threads: every worker closes its idle connections at
 * once (worker 0 tells the others), and the daemon exits at once. */
START_TEST(test_echod_sigterm_threads_idle) {
    enum { N = 16 };
    start_echod("--threads", "4", "--drain-timeout", "20", NULL);
    int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = connect_echod();
        roundtrip(fds[i], "idle", 4);
    }
    int64_t t0 = now_ms();
    kill(D.pid, SIGTERM);
    for (int i = 0; i < N; i++) {
        int r = wait_closed(fds[i], T_WAIT_MS);
        ck_assert_msg(r == 0, "connection %d: %s after %lld ms", i,
                      strerror(-r), (long long)(now_ms() - t0));
        close(fds[i]);
    }
    int64_t took = now_ms() - t0;
    ck_assert_msg(took < 2000 * (int64_t)t_slowdown(),
                  "the idle connections took %lld ms to close",
                  (long long)took);
    int status = wait_exit(T_WAIT_MS);
    ck_assert_msg(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "exit status %d; stderr: %s", status, D.errbuf);
    ck_assert_int_lt(now_ms() - t0, 4000 * (int64_t)t_slowdown());
}
END_TEST

/* SIGTERM with a connection that has bytes in flight and never reads:
 * exit 0 once the drain timeout is over; the connection is closed. */
START_TEST(test_echod_sigterm_drain_timeout) {
    start_echod("--drain-timeout", "0.5", NULL);
    int fd = connect_echod();
    roundtrip(fd, "hold", 4);
    static streamer_t st;
    streamer_init(&st, fd, (size_t)64 << 20, 5);
    int64_t end = now_ms() + T_WAIT_MS;
    while (streamer_send(&st) > 0 || (sleep_ms(50), streamer_send(&st) > 0))
        ck_assert_msg(now_ms() < end, "the daemon takes it all");
    int64_t t0 = now_ms();
    kill(D.pid, SIGTERM);
    int s = wait_exit(T_WAIT_MS);
    int64_t took = now_ms() - t0;
    ck_assert_msg(s != -1 && WIFEXITED(s) && WEXITSTATUS(s) == 0,
                  "exit status %d; stderr: %s", s, D.errbuf);
    ck_assert_int_ge(took, 400);
    ck_assert_int_lt(took, 5000);
    int r = wait_closed(fd, T_WAIT_MS);
    ck_assert_msg(r == 0 || r == -ECONNRESET, "%s", strerror(-r));
    close(fd);
}
END_TEST

/* SIGQUIT: a drain bounded by no time. The idle connection is closed at
 * once; the busy one is still served long after --drain-timeout and gets
 * every byte back; then the daemon exits 0. */
START_TEST(test_echod_sigquit_drains) {
    start_echod("--drain-timeout", "0.3", NULL);
    int idle = connect_echod();
    roundtrip(idle, "before", 6);
    static streamer_t st;
    streamer_init(&st, connect_small_buffers(), (size_t)256 << 20, 13);
    streamer_make_busy(&st);
    int64_t t0 = now_ms();
    kill(D.pid, SIGQUIT);
    int r = wait_closed(idle, T_WAIT_MS);
    int64_t idle_ms = now_ms() - t0;
    ck_assert_msg(r == 0, "idle connection: %s", strerror(-r));
    ck_assert_int_lt(idle_ms, 2000 * (int64_t)t_slowdown());
    sleep_ms(1000); /* three drain timeouts, reading nothing */
    drain_stderr();
    ck_assert_msg(daemon_alive(), "stderr: %s", D.errbuf);
    streamer_finish(&st, now_ms() + T_WAIT_MS);
    close(st.fd);
    close(idle);
    int s = wait_exit(T_WAIT_MS);
    ck_assert_msg(s != -1 && WIFEXITED(s) && WEXITSTATUS(s) == 0,
                  "exit status %d; stderr: %s", s, D.errbuf);
    ck_assert_msg(strstr(D.errbuf, "SIGQUIT: stopping") != NULL, "%s",
                  D.errbuf);
    ck_assert_msg(strstr(D.errbuf, "drain timeout") == NULL, "%s", D.errbuf);
}
END_TEST

/* SIGHUP (with the log on stderr: nothing to reopen) and SIGUSR2 leave
 * the daemon running and serving, each with a line in the log. */
START_TEST(test_echod_sighup_sigusr2_keep_serving) {
    start_echod(NULL);
    int fd = connect_echod();
    roundtrip(fd, "before", 6);
    kill(D.pid, SIGHUP);
    ck_assert_msg(stderr_wait_for("SIGHUP: ", T_WAIT_MS), "stderr: %s",
                  D.errbuf);
    kill(D.pid, SIGUSR2);
    ck_assert_msg(stderr_wait_for("SIGUSR2: ignored", T_WAIT_MS), "stderr: %s",
                  D.errbuf);
    ck_assert(daemon_alive());
    roundtrip(fd, "after", 5);
    int fresh = connect_echod();
    roundtrip(fresh, "new one", 7);
    close(fresh);
    close(fd);
    stop_clean();
}
END_TEST

/* The daemon's threads (/proc/PID/task). */
static int daemon_threads(void) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)D.pid);
    DIR *d = opendir(path);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* --quiet, one worker and nothing logged yet: one thread (the log's
 * writer starts with the first line, so that glibc's recv and send take
 * their single-threaded path); the first line (SIGUSR1's counters, logged
 * even with --quiet) starts it, and the daemon goes on serving. */
START_TEST(test_echod_log_thread_on_demand) {
    start_echod("--quiet", NULL);
    int fd = connect_echod();
    roundtrip(fd, "quiet", 5);
    ck_assert_int_eq(daemon_threads(), 1);
    kill(D.pid, SIGUSR1);
    ck_assert_msg(stderr_wait_for("buffer waits", T_WAIT_MS), "stderr: %s",
                  D.errbuf);
    /* Two, or three under TSan: its runtime starts a background thread
     * of its own once the process has a second one. */
    int n = daemon_threads();
    ck_assert_msg(n == 2 || (n == 3 && getenv("TSAN_OPTIONS") != NULL),
                  "%d threads after the first line is logged", n);
    roundtrip(fd, "logged", 6);
    close(fd);
    stop_clean();
}
END_TEST

/* Does file `path` contain `needle`? (false if it cannot be read) */
static bool file_has(const char *path, const char *needle) {
    static char buf[65536];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    return strstr(buf, needle) != NULL;
}

static bool file_wait_for(const char *path, const char *needle, int ms) {
    for (int64_t end = now_ms() + ms; now_ms() < end; sleep_ms(10))
        if (file_has(path, needle))
            return true;
    return file_has(path, needle);
}

/* --log-file and SIGHUP, as logrotate uses them: the log is renamed, HUP
 * makes the daemon open a new file at the path, and the lines after it
 * go there (the daemon still serving all along). */
START_TEST(test_echod_sighup_reopens_log_file) {
    char dir[] = "/tmp/echod-log-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[64], old[64];
    snprintf(path, sizeof path, "%s/echod.log", dir);
    snprintf(old, sizeof old, "%s/echod.log.1", dir);
    start_echod("--log-file", path, "--verbose", NULL);
    int a = connect_echod();
    roundtrip(a, "one", 3);
    ck_assert_msg(file_wait_for(path, "conn 1 from", T_WAIT_MS),
                  "no 'conn 1' in %s", path);
    ck_assert_int_eq(rename(path, old), 0);
    kill(D.pid, SIGHUP);
    ck_assert_msg(file_wait_for(path, "reopened", T_WAIT_MS),
                  "no new log at %s", path);
    ck_assert(daemon_alive());
    int b = connect_echod();
    roundtrip(b, "two", 3);
    roundtrip(a, "one again", 9);
    ck_assert_msg(file_wait_for(path, "conn 2 from", T_WAIT_MS),
                  "no 'conn 2' in the new %s", path);
    ck_assert(file_has(old, "SIGHUP: reopening the log file"));
    ck_assert(!file_has(old, "conn 2 from"));
    close(a);
    close(b);
    stop_clean();
    ck_assert(file_has(path, "stopped"));
    drain_stderr();
    ck_assert_msg(strstr(D.errbuf, "conn 1") == NULL,
                  "log lines on stderr with --log-file: %s", D.errbuf);
    unlink(path);
    unlink(old);
    rmdir(dir);
}
END_TEST

/* Read the daemon's stderr until `needle`, keeping only a tail of it in
 * D.errbuf (there may be far more than it holds). */
static bool stderr_scan_for(const char *needle, int ms) {
    int64_t end = now_ms() + ms;
    for (;;) {
        if (D.errlen > sizeof D.errbuf / 2) { /* keep the last 4 KiB */
            memmove(D.errbuf, D.errbuf + D.errlen - 4096, 4096);
            D.errlen = 4096;
            D.errbuf[D.errlen] = '\0';
        }
        drain_stderr();
        if (strstr(D.errbuf, needle) != NULL)
            return true;
        if (now_ms() >= end)
            return false;
        struct pollfd p = {D.err, POLLIN, 0};
        poll(&p, 1, 50);
    }
}

/* --verbose with a log reader that never reads (stderr a pipe, full):
 * echoing goes on; the lines that did not fit are dropped and counted,
 * and the log says so once it is read again. */
START_TEST(test_echod_log_reader_never_reads) {
    enum { N = 3000 };
    start_echod("--verbose", NULL);
    /* two lines each, about 80 bytes: several times a pipe and the ring */
    int64_t t0 = now_ms(), end = t0 + 60000 * (int64_t)t_slowdown();
    int i;
    for (i = 0; i < N && now_ms() < end; i++) {
        int fd = connect_echod();
        roundtrip(fd, "ping", 4); /* fails (a timeout) if the daemon stalls */
        close(fd);
    }
    ck_assert_int_eq(i, N);
    int64_t took = now_ms() - t0;
    ck_assert_msg(stderr_scan_for(" log line(s) dropped", T_WAIT_MS),
                  "no drop notice; stderr's tail: %s", D.errbuf);
    kill(D.pid, SIGUSR1);
    ck_assert_msg(stderr_scan_for("accept backoffs", T_WAIT_MS),
                  "no counters; stderr's tail: %s", D.errbuf);
    const char *c = strstr(D.errbuf, "log lines dropped ");
    ck_assert_ptr_nonnull(c);
    unsigned long long dropped = strtoull(c + 18, NULL, 10);
    ck_assert_msg(dropped > 0, "%s", c);
    fprintf(stderr,
            "log reader: %d connections in %lld ms, %llu lines "
            "dropped\n",
            N, (long long)took, dropped);
    stop_clean();
}
END_TEST

START_TEST(test_echod_sigint_idle_exits_zero) {
    start_echod("--quiet", NULL);
    kill(D.pid, SIGINT);
    int st = wait_exit(T_WAIT_MS);
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "exit status %d; stderr: %s", st, D.errbuf);
    ck_assert_msg(D.errlen == 0, "--quiet, yet stderr: %s", D.errbuf);
}
END_TEST

START_TEST(test_echod_sigusr1_prints_counters) {
    start_echod("--quiet", NULL); /* the counters print even so */
    int fd = connect_echod();
    static const char msg[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    for (int i = 0; i < 10; i++)
        roundtrip(fd, msg, 36); /* 360 bytes each way */
    kill(D.pid, SIGUSR1);
    ck_assert_msg(stderr_wait_for("accept backoffs", T_WAIT_MS),
                  "no counters; stderr: %s", D.errbuf);
    ck_assert_msg(strstr(D.errbuf, "1 open, 1 total, 0 refused") != NULL, "%s",
                  D.errbuf);
    ck_assert_msg(strstr(D.errbuf, "bytes 360 in, 360 out") != NULL, "%s",
                  D.errbuf);
    ck_assert(daemon_alive()); /* SIGUSR1 does not stop it */
    roundtrip(fd, "ok", 2);
    close(fd);
    stop_clean();
}
END_TEST

/* ------------------------------------------------------------------------
 * The command line
 * ------------------------------------------------------------------------ */

/* Run echod with args; it must exit with `status` within a second; its
 * stderr must contain `needle` (if not NULL). */
static void expect_exit(int status, const char *needle,
                        const char *const *args) {
    spawn_daemon(args);
    int st = wait_exit(1000);
    ck_assert_msg(st != -1, "still running after 1 s (args: %s ...)",
                  args[0] != NULL ? args[0] : "");
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == status,
                  "status %d, wanted exit %d (args: %s ...)", st, status,
                  args[0] != NULL ? args[0] : "");
    if (needle != NULL)
        ck_assert_msg(strstr(D.errbuf, needle) != NULL, "stderr lacks '%s': %s",
                      needle, D.errbuf);
    daemon_kill(); /* closes the pipes */
}

START_TEST(test_echod_bad_arguments_exit_2) {
    const char *unknown[] = {"--frobnicate", NULL};
    const char *bad_port[] = {"--listen", "127.0.0.1:99999", NULL};
    const char *no_port[] = {"--listen", "127.0.0.1", NULL};
    const char *bad_ip[] = {"--listen", "127.0.0.300:80", NULL};
    const char *threads0[] = {"--threads", "0", NULL};
    const char *threads_x[] = {"--threads=many", NULL};
    const char *missing[] = {"--listen", NULL};
    const char *missing2[] = {"--listen", "127.0.0.1:0", "--max-conns", NULL};
    const char *buf_small[] = {"--buffer-size", "1", NULL};
    const char *idle_neg[] = {"--idle-timeout", "-1", NULL};
    const char *stray[] = {"stray", NULL};
    const char *unix_empty[] = {"--listen", "unix:", NULL};
    const char *per_addr_x[] = {"--max-conns-per-addr", "some", NULL};
    const char *evict_neg[] = {"--evict-idle", "-1", NULL};
    const char *bufmem_x[] = {"--max-buffer-memory", "lots", NULL};
    /* less than one buffer, whichever option comes first */
    const char *bufmem_small[] = {"--max-buffer-memory", "64k", "--buffer-size",
                                  "128k", NULL};
    const char *log_empty[] = {"--log-file=", NULL};
    const char *log_missing[] = {"--log-file", NULL};
    const char *log_short[] = {"-L", "x", NULL}; /* no short form */
    const char *log_cannot[] = {"--listen", "127.0.0.1:0", "--log-file",
                                "/nonexistent-echod-dir/log", NULL};
    const char *fd_x[] = {"--listen-fd", "x", NULL};
    const char *fd_neg[] = {"--listen-fd=-1", NULL};
    const char *fd_big[] = {"--listen-fd", "99999999999", NULL};
    const char *fd_twice[] = {"--listen-fd", "3", "--listen-fd=3", NULL};
    const char *fd_missing[] = {"--listen-fd", NULL};
    expect_exit(2, "unknown option '--frobnicate'", unknown);
    expect_exit(2, "bad port '99999'", bad_port);
    expect_exit(2, "missing port", no_port);
    expect_exit(2, "bad IPv4 address", bad_ip);
    expect_exit(2, "--threads", threads0);
    expect_exit(2, "--threads", threads_x);
    expect_exit(2, "--listen needs a value", missing);
    expect_exit(2, "--max-conns needs a value", missing2);
    expect_exit(2, "--buffer-size", buf_small);
    expect_exit(2, "--idle-timeout", idle_neg);
    expect_exit(2, "unexpected argument 'stray'", stray);
    expect_exit(2, "unix", unix_empty);
    expect_exit(2, "--max-conns-per-addr wants a count", per_addr_x);
    expect_exit(2, "--evict-idle wants seconds", evict_neg);
    expect_exit(2, "--max-buffer-memory wants bytes", bufmem_x);
    expect_exit(2, "less than one buffer", bufmem_small);
    expect_exit(2, "--log-file wants a file name", log_empty);
    expect_exit(2, "--log-file needs a value", log_missing);
    expect_exit(2, "unknown option '-L'", log_short);
    expect_exit(1, "cannot open the log file /nonexistent-echod-dir/log",
                log_cannot);
    expect_exit(2, "--listen-fd wants a descriptor number", fd_x);
    expect_exit(2, "--listen-fd wants a descriptor number", fd_neg);
    expect_exit(2, "--listen-fd wants a descriptor number", fd_big);
    expect_exit(2, "--listen-fd 3 given twice", fd_twice);
    expect_exit(2, "--listen-fd needs a value", fd_missing);
    /* The --tls-* options: cert and key together, --tls-ca with them. */
    const char *tls_nokey[] = {"--tls-cert", "c.pem", NULL};
    const char *tls_nocert[] = {"--tls-key=k.pem", NULL};
    const char *tls_ca_alone[] = {"--tls-ca", "ca.pem", NULL};
    const char *tls_empty[] = {"--tls-cert=", "--tls-key", "k", NULL};
    expect_exit(2, "--tls-cert needs --tls-key too", tls_nokey);
    expect_exit(2, "--tls-key needs --tls-cert too", tls_nocert);
    expect_exit(2, "--tls-ca needs --tls-cert and --tls-key", tls_ca_alone);
    expect_exit(2, "--tls-cert wants a file name", tls_empty);
}
END_TEST

/* --tls-cert with files that do not exist: exit 1 before listening,
 * saying so (with OpenSSL: the file is missing; without: this tide-echod
 * has no TLS). t/check_echod_tls tests TLS itself. */
START_TEST(test_echod_tls_flags_exit_1) {
    const char *args[] = {"--listen",   "127.0.0.1:0",
                          "--tls-cert", "/nonexistent-echod-dir/cert.pem",
                          "--tls-key",  "/nonexistent-echod-dir/key.pem",
                          NULL};
    spawn_daemon(args);
    int st = wait_exit(T_WAIT_MS);
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 1,
                  "status %d; stderr: %s", st, D.errbuf);
    ck_assert_msg(strstr(D.errbuf, "--tls-cert") != NULL &&
                      (strstr(D.errbuf, "No such file") != NULL ||
                       strstr(D.errbuf, "built without TLS") != NULL),
                  "stderr: %s", D.errbuf);
    char out[256];
    ssize_t r = read(D.out, out, sizeof out - 1);
    out[r > 0 ? r : 0] = '\0';
    ck_assert_msg(strstr(out, "listening") == NULL, "it listened: %s", out);
    daemon_kill();
}
END_TEST

START_TEST(test_echod_help_and_version) {
    const char *help[] = {"--help", NULL};
    const char *version[] = {"--version", NULL};
    char out[8192];
    spawn_daemon(help);
    int st = wait_exit(1000);
    ck_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    ssize_t n = read(D.out, out, sizeof out - 1);
    ck_assert_int_gt(n, 0);
    out[n] = '\0';
    ck_assert_msg(strstr(out, "--listen") && strstr(out, "--drain-timeout") &&
                      strstr(out, "--max-conns-per-addr") &&
                      strstr(out, "--evict-idle") &&
                      strstr(out, "--max-buffer-memory"),
                  "%s", out);
    daemon_kill();
    spawn_daemon(version);
    st = wait_exit(1000);
    ck_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    n = read(D.out, out, sizeof out - 1);
    ck_assert_int_gt(n, 0);
    out[n] = '\0';
    ck_assert_msg(strstr(out, "tide ") != NULL, "%s", out);
}
END_TEST

/* A port that is taken: a clean error and exit status 1. */
START_TEST(test_echod_address_in_use_exits_1) {
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(l, 0);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(l, (struct sockaddr *)&sin, sizeof sin), 0);
    ck_assert_int_eq(listen(l, 1), 0);
    socklen_t sl = sizeof sin;
    getsockname(l, (struct sockaddr *)&sin, &sl);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", ntohs(sin.sin_port));
    const char *args[] = {"--listen", addr, NULL};
    expect_exit(1, "cannot listen on", args);
    close(l);
}
END_TEST

/* ------------------------------------------------------------------------
 * Sockets handed down: systemd's socket activation, --listen-fd
 * ------------------------------------------------------------------------ */

/* A listening TCP socket on 127.0.0.1, blocking and inheritable as systemd
 * makes one; its port in *port. */
static int listening_tcp(int *port) {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(l, 0);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(l, (struct sockaddr *)&sin, sizeof sin), 0);
    ck_assert_int_eq(listen(l, 16), 0);
    socklen_t sl = sizeof sin;
    ck_assert_int_eq(getsockname(l, (struct sockaddr *)&sin, &sl), 0);
    *port = ntohs(sin.sin_port);
    return l;
}

static void hand_down(int fd) {
    ck_assert_int_lt(child_nfds, 4);
    child_fds[child_nfds++] = fd;
}

static void put_env(const char *kv) {
    ck_assert_uint_lt(child_nenv, 6);
    child_env[child_nenv++] = kv;
}

static void roundtrip_port(int port, const char *msg) {
    int fd = try_connect(port);
    ck_assert_msg(fd >= 0, "connect to %d: %s", port, strerror(-fd));
    roundtrip(fd, msg, strlen(msg));
    close(fd);
}

START_TEST(test_echod_systemd_socket_activation) {
    int port, l = listening_tcp(&port);
    char dir[] = "/tmp/echod-test-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s/s", dir);
    int u = socket(AF_UNIX, SOCK_STREAM, 0);
    ck_assert_int_ge(u, 0);
    ck_assert_int_eq(bind(u, (struct sockaddr *)&sun, sizeof sun), 0);
    ck_assert_int_eq(listen(u, 16), 0);
    hand_down(l); /* fd 3 */
    hand_down(u); /* fd 4 */
    put_env("LISTEN_FDS=2");
    put_env("LISTEN_PID=self");
    put_env("LISTEN_FDNAMES=tcp:local");
    /* no --listen: systemd's sockets replace the default address */
    const char *args[] = {"--threads", "2", "--drain-timeout", "1", NULL};
    spawn_daemon(args);
    close(l); /* the daemon's copies only, from now on */
    close(u);
    wait_listening(2);
    ck_assert_msg(D.port == port,
                  "listening on %s, not the port handed "
                  "down (%d)",
                  D.first_addr, port);
    ck_assert_msg(stderr_wait_for("fd 4 from systemd (local)", T_WAIT_MS), "%s",
                  D.errbuf);
    for (int i = 0; i < 8; i++) /* both threads accept on it */
        roundtrip_port(port, "activated by systemd");
    int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(c, 0);
    set_timeouts(c, T_WAIT_MS);
    ck_assert_int_eq(connect(c, (struct sockaddr *)&sun, sizeof sun), 0);
    roundtrip(c, "over systemd's unix socket", 26);
    close(c);
    stop_clean();
    /* systemd's socket file is systemd's: the daemon leaves it */
    struct stat sb;
    ck_assert_msg(stat(sun.sun_path, &sb) == 0, "socket file removed");
    unlink(sun.sun_path);
    rmdir(dir);
}
END_TEST

START_TEST(test_echod_listen_fd) {
    int port, l = listening_tcp(&port);
    hand_down(l); /* fd 3 */
    const char *args[] = {"--listen",  "127.0.0.1:0", "--listen-fd",     "3",
                          "--threads", "3",           "--drain-timeout", "1",
                          NULL};
    spawn_daemon(args);
    close(l);
    wait_listening(2); /* --listen's line first, then fd 3's */
    ck_assert_int_ne(D.port, port);
    ck_assert_msg(stderr_wait_for("fd 3 from --listen-fd", T_WAIT_MS), "%s",
                  D.errbuf);
    for (int i = 0; i < 8; i++) {
        roundtrip_port(port, "through an inherited socket");
        roundtrip_port(D.port, "and through --listen");
    }
    stop_clean();
}
END_TEST

/* LISTEN_PID names another process (here the test's, as a child that
 * inherited systemd's environment would see it): the sockets are not the
 * daemon's, which listens on --listen only and leaves fd 3 alone. */
START_TEST(test_echod_systemd_wrong_pid_ignored) {
    int port, l = listening_tcp(&port);
    hand_down(l);
    put_env("LISTEN_FDS=1");
    put_env("LISTEN_PID=parent");
    start_echod("--drain-timeout", "1", NULL);
    ck_assert_int_ne(D.port, port);
    ck_assert_msg(stderr_wait_for("not this process", T_WAIT_MS), "%s",
                  D.errbuf);
    roundtrip_port(D.port, "on --listen");
    /* the socket handed down queues the connection, but nobody accepts */
    int c = try_connect(port);
    ck_assert_int_ge(c, 0);
    send_all(c, "anyone?", 7);
    struct pollfd p = {c, POLLIN, 0};
    ck_assert_int_eq(poll(&p, 1, 300), 0);
    close(c);
    close(l);
    stop_clean();
}
END_TEST

/* A descriptor handed down that is no listening socket: a message that
 * says so, and exit 1 (the daemon cannot serve what it was given). */
START_TEST(test_echod_bad_descriptor_exits_1) {
    int sv[2];
    ck_assert_int_eq(pipe(sv), 0);
    hand_down(sv[0]); /* fd 3: a pipe */
    const char *pipe_args[] = {"--listen-fd", "3", NULL};
    expect_exit(1, "cannot listen on fd 3 (--listen-fd): not a socket",
                pipe_args);
    close(sv[0]);
    close(sv[1]);
    child_nfds = 0;

    int s = socket(AF_INET, SOCK_STREAM, 0); /* bound, never listening */
    ck_assert_int_ge(s, 0);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(s, (struct sockaddr *)&sin, sizeof sin), 0);
    hand_down(s);
    const char *unlistened[] = {"--listen-fd", "3", NULL};
    expect_exit(1, "fd 3 (--listen-fd): a socket that is not listening",
                unlistened);
    const char *closed_fd[] = {"--listen-fd", "9", NULL};
    expect_exit(1, "fd 9 (--listen-fd): not an open descriptor", closed_fd);
    put_env("LISTEN_FDS=1");
    put_env("LISTEN_PID=self");
    const char *none[] = {NULL};
    expect_exit(1, "fd 3 (systemd): a socket that is not listening", none);
    close(s);
    child_nfds = 0;

    int d = socket(AF_INET, SOCK_DGRAM, 0);
    ck_assert_int_ge(d, 0);
    hand_down(d);
    expect_exit(1, "fd 3 (systemd): not a stream socket", none);
    close(d);
    child_nfds = 0;
    child_nenv = 0;
    put_env("LISTEN_FDS=many");
    put_env("LISTEN_PID=self");
    expect_exit(1, "bad LISTEN_FDS 'many'", none);
}
END_TEST

/* ------------------------------------------------------------------------
 * samples/embed: evhttp and tide tasks in one loop
 * ------------------------------------------------------------------------ */

/* Read the daemon's stdout until it holds `lines` newlines. */
static void read_stdout_lines(char *buf, size_t cap, int lines) {
    size_t len = 0;
    int64_t end = now_ms() + T_WAIT_MS;
    buf[0] = '\0';
    for (;;) {
        int nl = 0;
        for (const char *p = buf; (p = strchr(p, '\n')) != NULL; p++)
            nl++;
        if (nl >= lines)
            return;
        int64_t left = end - now_ms();
        drain_stderr();
        ck_assert_msg(left > 0, "stdout so far: %s; stderr: %s", buf, D.errbuf);
        struct pollfd p = {D.out, POLLIN, 0};
        poll(&p, 1, (int)left);
        ssize_t r = read(D.out, buf + len, cap - 1 - len);
        ck_assert_msg(r != 0, "stdout closed: %s; stderr: %s", buf, D.errbuf);
        if (r > 0) {
            len += (size_t)r;
            buf[len] = '\0';
        }
        ck_assert_uint_lt(len, cap - 1);
    }
}

static int port_after(const char *text, const char *label) {
    const char *p = strstr(text, label);
    ck_assert_msg(p != NULL, "no '%s' in: %s", label, text);
    p = strstr(p, "127.0.0.1:");
    ck_assert_ptr_nonnull(p);
    return atoi(p + 10);
}

/* A whole HTTP/1.0 response to GET path. */
static void http_get(int port, const char *path, char *resp, size_t cap) {
    int fd = try_connect(port);
    ck_assert_msg(fd >= 0, "connect: %s", strerror(-fd));
    char req[256];
    int n =
        snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: x\r\n\r\n", path);
    send_all(fd, req, (size_t)n);
    size_t len = 0;
    for (;;) {
        ssize_t r = recv(fd, resp + len, cap - 1 - len, 0);
        if (r < 0 && errno == EINTR)
            continue;
        ck_assert_msg(r >= 0, "recv: %s", strerror(errno));
        if (r == 0)
            break;
        len += (size_t)r;
        ck_assert_uint_lt(len, cap - 1);
    }
    resp[len] = '\0';
    close(fd);
}

START_TEST(test_embed_serves_http_and_echo_together) {
    const char *args[] = {"0", "0", NULL};
    char out[1024], resp[4096];
    spawn_path(EMBED_PATH, args);
    read_stdout_lines(out, sizeof out, 2);
    int http = port_after(out, "http on"), echo = port_after(out, "echo on");
    ck_assert_int_gt(http, 0);
    ck_assert_int_gt(echo, 0);

    int e = try_connect(echo);
    ck_assert_msg(e >= 0, "connect: %s", strerror(-e));
    roundtrip(e, "tide side\0", 10);
    http_get(http, "/", resp, sizeof resp);
    ck_assert_msg(strstr(resp, " 200 ") != NULL, "%s", resp);
    ck_assert_msg(strstr(resp, "hello from evhttp") != NULL, "%s", resp);
    ck_assert_msg(strstr(resp, "1 connections (1 open)") != NULL, "%s", resp);
    roundtrip(e, "still echoing", 13); /* both sides keep working */
    close(e);

    kill(D.pid, SIGINT);
    int st = wait_exit(T_WAIT_MS);
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "exit status %d; stderr: %s", st, D.errbuf);
    const char *bad = sanitizer_report(D.errbuf);
    ck_assert_msg(bad == NULL, "embed reported %s: %s", bad, D.errbuf);
}
END_TEST

static Suite *echod_suite(void) {
    Suite *s = suite_create("echod");
    struct {
        const char *name;
        const TTest *test;
        int timeout;
    } cases[] = {
        {"echo", test_echod_echoes_binary_data, 30},
        {"tls_flags", test_echod_tls_flags_exit_1, 30},
        {"stream", test_echod_streams_64mib, 180},
        {"half_close", test_echod_half_close, 30},
        {"many", test_echod_thousand_connections, 60},
        {"resets", test_echod_survives_resets, 60},
        {"slow", test_echod_slow_client_does_not_block_others, 30},
        {"emfile", test_echod_survives_descriptor_exhaustion, 30},
        {"unix", test_echod_unix_socket, 30},
        {"threads", test_echod_threads, 30},
        {"max_conns", test_echod_max_conns, 30},
        {"max_conns_wait", test_echod_max_conns_wait, 30},
        {"idle", test_echod_idle_timeout, 30},
        {"idle_stalled_writer", test_echod_idle_timeout_stalled_writer, 30},
        {"slowloris", test_echod_slowloris_evicted, 90},
        {"per_addr", test_echod_max_conns_per_addr, 30},
        {"per_addr_threads", test_echod_max_conns_per_addr_threads, 60},
        {"memory_after_burst", test_echod_memory_returns_after_burst, 120},
        {"max_buffer_memory", test_echod_max_buffer_memory, 120},
        {"sigterm", test_echod_sigterm_drains, 30},
        {"drain_timeout", test_echod_sigterm_drain_timeout, 30},
        {"sigterm_threads", test_echod_sigterm_threads_idle, 30},
        {"sigquit", test_echod_sigquit_drains, 30},
        {"sighup_sigusr2", test_echod_sighup_sigusr2_keep_serving, 30},
        {"log_thread_on_demand", test_echod_log_thread_on_demand, 30},
        {"sighup_log_file", test_echod_sighup_reopens_log_file, 30},
        {"log_reader", test_echod_log_reader_never_reads, 120},
        {"sigint", test_echod_sigint_idle_exits_zero, 30},
        {"sigusr1", test_echod_sigusr1_prints_counters, 30},
        {"args", test_echod_bad_arguments_exit_2, 60},
        {"help", test_echod_help_and_version, 30},
        {"in_use", test_echod_address_in_use_exits_1, 30},
        {"systemd", test_echod_systemd_socket_activation, 30},
        {"listen_fd", test_echod_listen_fd, 30},
        {"systemd_wrong_pid", test_echod_systemd_wrong_pid_ignored, 30},
        {"bad_fd", test_echod_bad_descriptor_exits_1, 30},
        {"embed", test_embed_serves_http_and_echo_together, 30},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        TCase *tc = tcase_create(cases[i].name);
        /* the daemon inherits RLIMIT_NOFILE, which valgrind only
         * virtualises for the test, and valgrind's RSS is its own:
         * make check-valgrind skips these */
        if (strcmp(cases[i].name, "emfile") == 0 ||
            strncmp(cases[i].name, "memory", 6) == 0 ||
            strcmp(cases[i].name, "max_buffer_memory") == 0)
            tcase_set_tags(tc, "no-valgrind");
        tcase_add_checked_fixture(tc, NULL, teardown);
        tcase_set_timeout(tc, cases[i].timeout);
        tcase_add_test(tc, cases[i].test);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    SRunner *sr = srunner_create(echod_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
