/*
 * t/check_echod_tls.c: tide-echod serving TLS (--tls-cert, --tls-key,
 * --tls-ca), tested from outside with clients written on plain OpenSSL
 * (not tide's TLS stream, which is what the daemon runs): echo, the half
 * close (our close_notify, then every echoed byte and the daemon's
 * close_notify), 16 MiB byte-exact with backpressure (a client that does
 * not read stalls the daemon's reading), a client reset, the SIGTERM
 * drain, --threads, --tls-ca refusing a client without a certificate,
 * and bad files refused before listening.
 *
 * The certificates are made when the program starts (t/tls_certs.sh, with
 * openssl(1)) in a temporary directory removed at the end. Built only
 * when configure found OpenSSL; skipped (77) without an openssl program.
 * Every wait is bounded (poll with deadlines); the daemon is killed and
 * reaped on every path (teardown, atexit, PR_SET_PDEATHSIG).
 */
#include <check.h>
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
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "slowdown.h"
#include "tls_certs.h"

#ifndef ECHOD_PATH
#error "ECHOD_PATH must name the built tide-echod"
#endif

#define T_WAIT_MS ((int)t_watchdog_ms(10000))

static char certs[256]; /* the directory t/tls_certs.sh filled */

static const char *cert(const char *name) {
    static char path[8][512];
    static unsigned next;
    char *p = path[next++ % 8];
    snprintf(p, 512, "%s/%s", certs, name);
    return p;
}

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
 * The daemon
 * ------------------------------------------------------------------------ */

static struct {
    pid_t pid;
    int out, err;
    int port;
    char errbuf[65536];
    size_t errlen;
} D = {.pid = -1, .out = -1, .err = -1};

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

static void drain_stderr(void) {
    while (D.err >= 0 && D.errlen + 1 < sizeof D.errbuf) {
        ssize_t r =
            read(D.err, D.errbuf + D.errlen, sizeof D.errbuf - 1 - D.errlen);
        if (r <= 0)
            return;
        D.errlen += (size_t)r;
        D.errbuf[D.errlen] = '\0';
    }
}

static void teardown(void) {
    drain_stderr();
    daemon_kill();
    ck_assert_msg(strstr(D.errbuf, "Sanitizer") == NULL &&
                      strstr(D.errbuf, "runtime error:") == NULL,
                  "echod: %s", D.errbuf);
}

/* Start the daemon on 127.0.0.1:0 with args (NULL-ended); unless
 * expect_fail, wait for its "listening on" line and take the port. */
static void spawn(bool expect_fail, const char *first, ...) {
    static bool atexit_set;
    const char *argv[40];
    size_t n = 0;
    argv[n++] = ECHOD_PATH;
    argv[n++] = "--listen";
    argv[n++] = "127.0.0.1:0";
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a != NULL && n < 38;
         a = va_arg(ap, const char *))
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    if (!atexit_set) {
        atexit(daemon_kill);
        atexit_set = true;
    }
    int out[2], err[2];
    ck_assert_int_eq(pipe2(out, O_CLOEXEC), 0);
    ck_assert_int_eq(pipe2(err, O_CLOEXEC), 0);
    pid_t parent = getpid();
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        dup2(out[1], 1);
        dup2(err[1], 2);
        execv(ECHOD_PATH, (char *const *)argv);
        _exit(127);
    }
    close(out[1]);
    close(err[1]);
    D.pid = pid;
    D.out = out[0];
    D.err = err[0];
    D.errlen = 0;
    D.errbuf[0] = '\0';
    fcntl(D.err, F_SETFL, O_NONBLOCK);
    if (expect_fail)
        return;
    char buf[1024];
    size_t len = 0;
    int64_t end = now_ms() + T_WAIT_MS;
    char *line;
    while ((line = strstr(buf, "listening on 127.0.0.1:")) == NULL ||
           strchr(line, '\n') == NULL) {
        ck_assert_msg(now_ms() < end, "no 'listening on' line");
        struct pollfd p = {D.out, POLLIN, 0};
        poll(&p, 1, 100);
        if (!(p.revents & (POLLIN | POLLHUP)))
            continue;
        ssize_t r = read(D.out, buf + len, sizeof buf - 1 - len);
        if (r <= 0) {
            sleep_ms(50);
            drain_stderr();
            ck_abort_msg("echod closed stdout; stderr: %s", D.errbuf);
        }
        len += (size_t)r;
        buf[len] = '\0';
    }
    D.port = atoi(line + strlen("listening on 127.0.0.1:"));
    ck_assert_int_gt(D.port, 0);
}

static void start_tls(const char *first, ...) {
    const char *extra[8] = {NULL};
    size_t n = 0;
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a != NULL && n < 7;
         a = va_arg(ap, const char *))
        extra[n++] = a;
    va_end(ap);
    spawn(false, "--tls-cert", cert("server.pem"), "--tls-key",
          cert("server.key"), "--quiet", extra[0], extra[1], extra[2], extra[3],
          extra[4], extra[5], extra[6], (const char *)NULL);
}

static int wait_exit(int ms) {
    int64_t end = now_ms() + ms;
    for (;;) {
        int st;
        if (waitpid(D.pid, &st, WNOHANG) == D.pid) {
            D.pid = -1;
            drain_stderr();
            return st;
        }
        if (now_ms() >= end)
            return -1;
        drain_stderr();
        sleep_ms(5);
    }
}

static void stop_clean(void) {
    ck_assert_int_eq(kill(D.pid, SIGTERM), 0);
    int st = wait_exit(T_WAIT_MS);
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "exit status %d; stderr: %s", st, D.errbuf);
}

/* ------------------------------------------------------------------------
 * The client: OpenSSL over a non-blocking socket, every wait a poll with
 * a deadline.
 * ------------------------------------------------------------------------ */

typedef struct client {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
} client_t;

/* Wait for what OpenSSL asked for (err: SSL_get_error's answer); false
 * at the deadline. */
static bool wait_io(client_t *c, int err, int64_t end) {
    short ev = err == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN;
    int64_t left = end - now_ms();
    if (left <= 0)
        return false;
    struct pollfd p = {c->fd, ev, 0};
    poll(&p, 1, (int)(left > 200 ? 200 : left));
    return true;
}

/* Connect and set up a client (verifying the daemon as localhost against
 * the test CA), with a client certificate if with_cert. No handshake. */
static void client_open(client_t *c, bool with_cert) {
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(c->fd, 0);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)D.port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_msg(connect(c->fd, (struct sockaddr *)&sin, sizeof sin) == 0,
                  "connect: %s", strerror(errno));
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(c->fd, F_SETFL, O_NONBLOCK);
    c->ctx = SSL_CTX_new(TLS_client_method());
    ck_assert_ptr_nonnull(c->ctx);
    ck_assert_int_eq(SSL_CTX_load_verify_file(c->ctx, cert("ca.pem")), 1);
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
    if (with_cert) {
        ck_assert_int_eq(
            SSL_CTX_use_certificate_chain_file(c->ctx, cert("client.pem")), 1);
        ck_assert_int_eq(SSL_CTX_use_PrivateKey_file(c->ctx, cert("client.key"),
                                                     SSL_FILETYPE_PEM),
                         1);
    }
    c->ssl = SSL_new(c->ctx);
    ck_assert_ptr_nonnull(c->ssl);
    SSL_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE |
                             SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_set_tlsext_host_name(c->ssl, "localhost");
    SSL_set1_host(c->ssl, "localhost");
    SSL_set_fd(c->ssl, c->fd);
}

/* The handshake: 1, or 0 with OpenSSL's error queue cleared. */
static int client_handshake(client_t *c) {
    int64_t end = now_ms() + T_WAIT_MS;
    for (;;) {
        int r = SSL_connect(c->ssl);
        if (r == 1)
            return 1;
        int e = SSL_get_error(c->ssl, r);
        if ((e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) ||
            !wait_io(c, e, end)) {
            ERR_clear_error();
            return 0;
        }
    }
}

static void client_connect(client_t *c, bool with_cert) {
    client_open(c, with_cert);
    ck_assert_msg(client_handshake(c) == 1, "handshake failed");
}

static void client_close(client_t *c) {
    SSL_free(c->ssl);
    SSL_CTX_free(c->ctx);
    close(c->fd);
    c->fd = -1;
}

/* Write all of buf (bounded). */
static void client_write(client_t *c, const void *buf, size_t len) {
    int64_t end = now_ms() + T_WAIT_MS;
    const char *p = buf;
    while (len > 0) {
        int w = SSL_write(c->ssl, p, (int)(len > 65536 ? 65536 : len));
        if (w > 0) {
            p += w;
            len -= (size_t)w;
            continue;
        }
        int e = SSL_get_error(c->ssl, w);
        ck_assert_msg(e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE,
                      "SSL_write: error %d", e);
        ck_assert_msg(wait_io(c, e, end), "write timed out");
    }
}

/* One read: bytes (> 0), 0 at the daemon's close_notify, -1 for an
 * error (a reset, an alert), -2 at the deadline. */
static int client_read(client_t *c, void *buf, size_t cap, int64_t end) {
    for (;;) {
        int r = SSL_read(c->ssl, buf, (int)cap);
        if (r > 0)
            return r;
        int e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_ZERO_RETURN)
            return 0;
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
            ERR_clear_error();
            return -1;
        }
        if (!wait_io(c, e, end))
            return -2;
    }
}

static void client_read_exact(client_t *c, void *buf, size_t len) {
    int64_t end = now_ms() + T_WAIT_MS;
    char *p = buf;
    while (len > 0) {
        int r = client_read(c, p, len, end);
        ck_assert_msg(r > 0, "read: %d", r);
        p += r;
        len -= (size_t)r;
    }
}

/* Send our close_notify (the half close: we may still read). */
static void client_shutdown(client_t *c) {
    int64_t end = now_ms() + T_WAIT_MS;
    for (;;) {
        int r = SSL_shutdown(c->ssl);
        if (r >= 0)
            return; /* 0: sent, theirs not yet received */
        int e = SSL_get_error(c->ssl, r);
        ck_assert_msg(e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ,
                      "SSL_shutdown: error %d", e);
        ck_assert_msg(wait_io(c, e, end), "shutdown timed out");
    }
}

static void roundtrip(client_t *c, const char *msg) {
    char back[256];
    size_t len = strlen(msg);
    client_write(c, msg, len);
    client_read_exact(c, back, len);
    ck_assert_msg(memcmp(back, msg, len) == 0, "echo differs");
}

/* A deterministic byte stream (xorshift) both ends can check. */
typedef struct gen {
    uint64_t s;
} gen_t;

static unsigned char gen_byte(gen_t *g) {
    g->s ^= g->s << 13;
    g->s ^= g->s >> 7;
    g->s ^= g->s << 17;
    return (unsigned char)(g->s >> 24);
}

/* One SSL_read of c's echo of g's stream: the bytes it read (> 0), each
 * checked against g with one assertion (one per byte costs Check a
 * message to its parent) and counted in *got; or -SSL_get_error's
 * answer. */
static int read_echo(client_t *c, gen_t *g, size_t *got) {
    static unsigned char in[65536];
    int r = SSL_read(c->ssl, in, sizeof in);
    if (r <= 0)
        return -SSL_get_error(c->ssl, r);
    int i = 0;
    while (i < r && in[i] == gen_byte(g))
        i++;
    ck_assert_msg(i == r, "byte %zu differs", *got + (size_t)i);
    *got += (size_t)r;
    return r;
}

/* Write up to max of the len - *off bytes at p + *off to fd, moving *off
 * on: true if some went, false if fd's buffer is full. */
static bool write_some(int fd, const unsigned char *p, size_t len, size_t *off,
                       size_t max) {
    size_t n = len - *off < max ? len - *off : max;
    ssize_t w = write(fd, p + *off, n);
    if (w > 0) {
        *off += (size_t)w;
        return true;
    }
    ck_assert_msg(errno == EAGAIN, "write: %s", strerror(errno));
    return false;
}

/* ------------------------------------------------------------------------
 * Tests
 * ------------------------------------------------------------------------ */

START_TEST(test_echod_tls_echo_and_half_close) {
    start_tls(NULL);
    client_t c;
    client_connect(&c, false);
    ck_assert_str_eq(SSL_get_version(c.ssl), "TLSv1.3");
    roundtrip(&c, "hello over TLS\n");
    /* The half close: 100 kB in flight, then our close_notify; every byte
     * comes back, then the daemon's close_notify (a clean 0, not a bare
     * end of the socket). */
    static char big[100000], back[100000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)('a' + i % 26);
    client_write(&c, big, sizeof big);
    client_shutdown(&c);
    client_read_exact(&c, back, sizeof back);
    ck_assert(memcmp(big, back, sizeof big) == 0);
    char b;
    ck_assert_int_eq(client_read(&c, &b, 1, now_ms() + T_WAIT_MS), 0);
    ck_assert(SSL_get_shutdown(c.ssl) & SSL_RECEIVED_SHUTDOWN);
    client_close(&c);
    stop_clean();
}
END_TEST

/* 16 MiB through the daemon byte-exact, and backpressure: a client that
 * writes without reading is stopped (its writes block) long before the
 * whole stream is sent, because the daemon reads no more than it can
 * write back; then it reads and everything arrives. */
START_TEST(test_echod_tls_16mib_backpressure) {
    start_tls(NULL);
    client_t c;
    client_connect(&c, false);
    int small = 64 * 1024;
    setsockopt(c.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    setsockopt(c.fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    const size_t total = 16u << 20;
    static unsigned char out[65536];
    gen_t wg = {0x9e3779b97f4a7c15u}, rg = wg;
    size_t sent = 0, got = 0, pending = 0;
    size_t off = 0;

    /* Phase 1: write only, until writing stalls for 300 ms. */
    int64_t stall = 0;
    while (sent < total) {
        if (pending == 0) {
            pending = sizeof out;
            if (pending > total - sent)
                pending = total - sent;
            for (size_t i = 0; i < pending; i++)
                out[i] = gen_byte(&wg);
            off = 0;
        }
        int w = SSL_write(c.ssl, out + off, (int)(pending - off));
        if (w > 0) {
            sent += (size_t)w;
            off += (size_t)w;
            if (off == pending)
                pending = 0;
            stall = 0;
            continue;
        }
        int e = SSL_get_error(c.ssl, w);
        ck_assert_int_eq(e, SSL_ERROR_WANT_WRITE);
        if (stall == 0)
            stall = now_ms();
        if (now_ms() - stall > 300)
            break;
        struct pollfd p = {c.fd, POLLOUT, 0};
        poll(&p, 1, 50);
    }
    /* What the kernel holds (the daemon's socket buffers, autotuned to
     * at most tcp_rmem and tcp_wmem's maximum: 6 and 4 MiB by default, and
     * ours, 64 KiB) is less than the stream: a daemon that read on
     * without writing back would have taken it all. */
    ck_assert_msg(sent + (1u << 20) < total,
                  "sent %zu of %zu bytes without reading: no backpressure",
                  sent, total);
    ck_assert_uint_gt(sent, 0);

    /* Phase 2: both ways, to the end. */
    int64_t end = now_ms() + 4 * T_WAIT_MS;
    while (got < total) {
        ck_assert_msg(now_ms() < end, "timed out at %zu of %zu", got, total);
        bool moved = false;
        if (sent < total || pending != 0) {
            if (pending == 0) {
                pending = sizeof out;
                if (pending > total - sent)
                    pending = total - sent;
                for (size_t i = 0; i < pending; i++)
                    out[i] = gen_byte(&wg);
                off = 0;
            }
            int w = SSL_write(c.ssl, out + off, (int)(pending - off));
            if (w > 0) {
                sent += (size_t)w;
                off += (size_t)w;
                if (off == pending)
                    pending = 0;
                moved = true;
            } else {
                int e = SSL_get_error(c.ssl, w);
                ck_assert_msg(e == SSL_ERROR_WANT_WRITE ||
                                  e == SSL_ERROR_WANT_READ,
                              "SSL_write: %d", e);
            }
        }
        int r = read_echo(&c, &rg, &got);
        if (r > 0)
            moved = true;
        else
            ck_assert_msg(r == -SSL_ERROR_WANT_READ ||
                              r == -SSL_ERROR_WANT_WRITE,
                          "SSL_read: %d after %zu bytes", -r, got);
        if (!moved) {
            struct pollfd p = {
                c.fd, (short)(POLLIN | (sent < total ? POLLOUT : 0)), 0};
            poll(&p, 1, 50);
        }
    }
    ck_assert_uint_eq(got, total);
    client_shutdown(&c);
    char b;
    ck_assert_int_eq(client_read(&c, &b, 1, now_ms() + T_WAIT_MS), 0);
    client_close(&c);
    stop_clean();
}
END_TEST

/* A client that resets its connection (mid-handshake and mid-echo)
 * costs the daemon that connection only. */
START_TEST(test_echod_tls_client_reset) {
    start_tls(NULL);
    struct linger lg = {1, 0};
    for (int i = 0; i < 20; i++) {
        client_t c;
        if (i % 2 == 0) {
            client_connect(&c, false);
            char junk[5000];
            memset(junk, 'r', sizeof junk);
            client_write(&c, junk, sizeof junk);
        } else {
            client_open(&c, false);
            SSL_connect(c.ssl); /* the ClientHello only */
            ERR_clear_error();
        }
        setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        client_close(&c); /* RST */
    }
    client_t c;
    client_connect(&c, false);
    roundtrip(&c, "still here\n");
    client_close(&c);
    stop_clean();
}
END_TEST

/* SIGTERM: an idle client gets the daemon's close_notify at once; a
 * client with bytes in flight gets every byte the daemon received back,
 * then close_notify; the daemon exits 0. The busy client writes without
 * reading until both ways stall, encrypting into memory and writing the
 * ciphertext itself, so that it knows which records reached the daemon
 * whole and which one only in part. That one it completes after the
 * signal, once every whole record came back: the daemon, holding part of
 * a record, must wait for the rest rather than count the connection as
 * idle (it did, and lost the record: a reset, or a close_notify before
 * the last bytes). A stall between two records is undone by reading what
 * came back, until one comes in the middle of a record. */
START_TEST(test_echod_tls_sigterm_drains) {
    /* the drain bound is above the echo of what is in flight (5 MB and
     * more) in the slowest build; a drain that ends early is the fault */
    start_tls("--drain-timeout", "60", NULL);
    client_t idle, busy;
    client_connect(&idle, false);
    roundtrip(&idle, "idle\n");
    client_connect(&busy, false);
    int small = 64 * 1024;
    setsockopt(busy.fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    BIO *mem = BIO_new(BIO_s_mem());
    ck_assert_ptr_nonnull(mem);
    SSL_set0_wbio(busy.ssl, mem); /* busy.ssl owns it */
    gen_t wg = {0x2545f4914f6cdd1du}, rg = wg;
    static unsigned char plain[16384], rec[16384 + 1024];
    size_t rec_len = 0, rec_off = 0; /* the record being written */
    size_t sent = 0; /* the plaintext of the records written whole */
    size_t got = 0;  /* what came back */
    int64_t end = now_ms() + T_WAIT_MS;
    for (;;) {
        ck_assert_msg(now_ms() < end && sent < (64u << 20),
                      "no stall: %zu bytes sent without reading", sent);
        if (rec_off == rec_len) {
            for (size_t i = 0; i < sizeof plain; i++)
                plain[i] = gen_byte(&wg);
            ck_assert_int_eq(SSL_write(busy.ssl, plain, sizeof plain),
                             (int)sizeof plain);
            int n = BIO_read(mem, rec, (int)sizeof rec);
            ck_assert_int_gt(n, (int)sizeof plain);
            ck_assert_int_eq(BIO_ctrl_pending(mem), 0); /* one record */
            rec_len = (size_t)n;
            rec_off = 0;
        }
        /* small writes: the stall comes in the middle of a record */
        if (write_some(busy.fd, rec, rec_len, &rec_off, 1000)) {
            if (rec_off == rec_len)
                sent += sizeof plain;
            continue;
        }
        struct pollfd p = {busy.fd, POLLOUT, 0};
        if (poll(&p, 1, 300) > 0)
            continue;
        /* stalled: the daemon waits for us to read */
        if (rec_off > 0)
            break;
        /* between two records: read what came back, and stall again */
        int r;
        while ((r = read_echo(&busy, &rg, &got)) > 0)
            continue;
        ck_assert_int_eq(r, -SSL_ERROR_WANT_READ);
    }
    ck_assert_uint_gt(sent, got);
    ck_assert_int_eq(kill(D.pid, SIGTERM), 0);
    char b;
    ck_assert_int_eq(client_read(&idle, &b, 1, now_ms() + T_WAIT_MS), 0);

    size_t expect = sent + sizeof plain; /* with the record begun */
    end = now_ms() + 2 * T_WAIT_MS;
    for (bool eof = false; !eof;) {
        ck_assert_msg(now_ms() < end, "echo: %zu of %zu bytes back", got,
                      expect);
        bool moved = false;
        bool rest = rec_off < rec_len && got == sent;
        if (rest && write_some(busy.fd, rec, rec_len, &rec_off, rec_len))
            moved = true;
        int r = read_echo(&busy, &rg, &got);
        if (r > 0) {
            moved = true;
        } else {
            eof = r == -SSL_ERROR_ZERO_RETURN;
            ck_assert_msg(eof || r == -SSL_ERROR_WANT_READ,
                          "SSL_read: error %d after %zu of %zu bytes", -r, got,
                          expect);
        }
        if (!moved && !eof) {
            struct pollfd p = {busy.fd, POLLIN, 0};
            if (rest)
                p.events |= POLLOUT;
            poll(&p, 1, 100);
        }
    }
    ck_assert_uint_eq(got, expect);
    int st = wait_exit(T_WAIT_MS);
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "exit status %d; stderr: %s", st, D.errbuf);
    client_close(&idle);
    client_close(&busy);
}
END_TEST

START_TEST(test_echod_tls_threads) {
    start_tls("--threads", "3", NULL);
    client_t c[12];
    for (int i = 0; i < 12; i++)
        client_connect(&c[i], false);
    for (int r = 0; r < 3; r++)
        for (int i = 0; i < 12; i++) {
            char msg[48]; /* room for any int, as the compiler checks */
            snprintf(msg, sizeof msg, "conn %d round %d\n", i, r);
            roundtrip(&c[i], msg);
        }
    for (int i = 0; i < 12; i++)
        client_close(&c[i]);
    stop_clean();
}
END_TEST

/* --tls-ca: a client without a certificate is refused (TLS 1.3: its
 * handshake ends before the daemon's verdict, which comes as an alert at
 * its first read); one with a certificate from the CA is served. */
START_TEST(test_echod_tls_ca_requires_client_cert) {
    start_tls("--tls-ca", cert("ca.pem"), NULL);
    client_t c;
    client_open(&c, false);
    int ok = client_handshake(&c);
    if (ok == 1) {
        client_write(&c, "x", 1);
        char b;
        ck_assert_int_eq(client_read(&c, &b, 1, now_ms() + T_WAIT_MS), -1);
    }
    client_close(&c);
    client_connect(&c, true);
    roundtrip(&c, "with a certificate\n");
    client_close(&c);
    stop_clean();
}
END_TEST

/* A client certificate from another CA (self-signed) is refused too:
 * --tls-ca trusts its file alone. */
START_TEST(test_echod_tls_ca_refuses_other_cert) {
    start_tls("--tls-ca", cert("ca.pem"), NULL);
    client_t c;
    client_open(&c, false);
    ck_assert_int_eq(SSL_use_certificate_chain_file(c.ssl, cert("self.pem")),
                     1);
    ck_assert_int_eq(
        SSL_use_PrivateKey_file(c.ssl, cert("self.key"), SSL_FILETYPE_PEM), 1);
    if (client_handshake(&c) == 1) {
        client_write(&c, "x", 1);
        char b;
        ck_assert_int_eq(client_read(&c, &b, 1, now_ms() + T_WAIT_MS), -1);
    }
    client_close(&c);
    stop_clean();
}
END_TEST

/* A client that connects and never speaks is closed once the handshake
 * bound (--idle-timeout here) is over. */
START_TEST(test_echod_tls_handshake_timeout) {
    start_tls("--idle-timeout", "0.3", NULL);
    client_t c;
    /* before the connect: client_open builds its SSL_CTX after it, which
     * under valgrind takes longer than the bound itself */
    int64_t t0 = now_ms();
    client_open(&c, false);
    struct pollfd p = {c.fd, POLLIN, 0};
    ck_assert_int_eq(poll(&p, 1, T_WAIT_MS), 1);
    char b;
    ck_assert_int_le(recv(c.fd, &b, 1, 0), 0);
    ck_assert_int_ge(now_ms() - t0, 250);
    client_close(&c);
    stop_clean();
}
END_TEST

static void expect_exit1(const char *needle, const char *a, const char *b,
                         const char *c2, const char *d) {
    spawn(true, a, b, c2, d, (const char *)NULL);
    int st = wait_exit(T_WAIT_MS);
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 1,
                  "exit status %d; stderr: %s", st, D.errbuf);
    ck_assert_msg(strstr(D.errbuf, needle) != NULL, "stderr: %s", D.errbuf);
    char buf[256];
    ssize_t r = read(D.out, buf, sizeof buf - 1);
    buf[r > 0 ? r : 0] = '\0';
    ck_assert_msg(strstr(buf, "listening") == NULL, "it listened: %s", buf);
    close(D.out);
    close(D.err);
    D.out = D.err = -1;
}

START_TEST(test_echod_tls_bad_files_exit_1) {
    expect_exit1("No such file", "--tls-cert", "/nonexistent/cert.pem",
                 "--tls-key", cert("server.key"));
    /* a key that is not the certificate's */
    expect_exit1("does not match", "--tls-cert", cert("server.pem"),
                 "--tls-key", cert("client.key"));
    /* a key file given as the certificate */
    expect_exit1("--tls-cert", "--tls-cert", cert("server.key"), "--tls-key",
                 cert("server.key"));
    spawn(true, "--tls-cert", cert("server.pem"), "--tls-key",
          cert("server.key"), "--tls-ca", "/nonexistent/ca.pem",
          (const char *)NULL);
    int st = wait_exit(T_WAIT_MS);
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 1,
                  "exit status %d; stderr: %s", st, D.errbuf);
    ck_assert_msg(strstr(D.errbuf, "--tls-ca") != NULL, "stderr: %s", D.errbuf);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("echod_tls");
    const struct {
        const char *name;
        const TTest *test;
        int secs;
    } cases[] = {
        {"echo_half_close", test_echod_tls_echo_and_half_close, 30},
        {"16mib_backpressure", test_echod_tls_16mib_backpressure, 120},
        {"client_reset", test_echod_tls_client_reset, 30},
        {"sigterm_drains", test_echod_tls_sigterm_drains, 30},
        {"threads", test_echod_tls_threads, 30},
        {"ca_requires_cert", test_echod_tls_ca_requires_client_cert, 30},
        {"ca_refuses_other", test_echod_tls_ca_refuses_other_cert, 30},
        {"handshake_timeout", test_echod_tls_handshake_timeout, 30},
        {"bad_files", test_echod_tls_bad_files_exit_1, 30},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_set_timeout(
            tc, (double)t_watchdog_ms((unsigned)cases[i].secs * 1000u) / 1000);
        tcase_add_checked_fixture(tc, NULL, teardown);
        tcase_add_test(tc, cases[i].test);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void) {
    int made = t_tls_certs_make(certs, sizeof certs, "tide-echod-tls", NULL);
    if (made != 0)
        return made;
    signal(SIGPIPE, SIG_IGN);
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    t_tls_certs_remove(certs);
    return failed == 0 ? 0 : 1;
}
