/*
 * t/tls_peer.c: tide's side of t/check_tls_peers.sh, which puts it
 * against peers nobody here wrote (openssl s_server and s_client,
 * Python's ssl module).
 *
 *   tls_peer server CERT KEY echo|greet
 *       listen on 127.0.0.1 (a free port, printed as "port N"), take one
 *       connection, handshake; echo: echo until the client's end of
 *       stream; greet: send "hello from tide\n". Then shut down (close_notify)
 *       and print "end R", R being the read that ended the echo (0 after
 *       close_notify, -103 for -ECONNABORTED...; greet: 0).
 *   tls_peer client PORT CA HOST echo N | rev | hs | drain
 *       connect to 127.0.0.1:PORT and handshake verifying HOST with CA;
 *       echo: send N bytes of a pattern while reading them back, check
 *       them, shut down, expect end of stream; rev: send "hello\n", expect
 *       "olleh\n" (s_server -rev); hs: the handshake only; drain: read
 *       until end of stream or an error, print "end R" (R as above).
 *       Prints "handshake R" and, if it succeeded, "ok" or what was wrong.
 * Exit status 0 when everything it printed is as asked, 1 otherwise, 2 on
 * usage errors.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <tide.h>

#if !TIDE_HAVE_TLS
int main(void) {
    puts("SKIP: built without OpenSSL");
    return 77;
}
#else

static unsigned char pat(uint64_t i) {
    return (unsigned char)(((uint32_t)i * 2654435761u) >> 24 ^
                           (uint32_t)(i >> 16));
}

typedef struct peer {
    tide_future_t fut;
    tide_async_t co;
    tide_tls_t *tls;
    int mode; /* 'e' echo, 'g' greet, 'r' rev, 'h' hs */
    bool server;
    tide_tls_handshake_t hs;
    tide_read_t rd;
    tide_write_all_t wa;
    tide_shutdown_t sd;
    tide_read_exact_t re;
    ssize_t last;
    int bad;
    unsigned char buf[16384];
} peer_t;

/* the server's echo, greet; the client's rev and hs */
static tide_poll_t peer_poll(tide_future_t *f, tide_cx_t *cx) {
    peer_t *p = TIDE_CONTAINER_OF(f, peer_t, fut);
    tide_stream_t *s = tide_tls_stream(p->tls);
    TIDE_BEGIN(&p->co);
    TIDE_AWAIT(&p->co, cx, tide_tls_handshake(&p->hs, p->tls));
    printf("handshake %d\n", (int)tide_async_result(&p->co));
    if (tide_async_result(&p->co) < 0) {
        const char *why = tide_tls_error_reason(p->tls);
        printf("reason %s\n", why != NULL ? why : "-");
        TIDE_RETURN(&p->co, f, tide_async_result(&p->co));
    }
    if (p->mode == 'h')
        TIDE_RETURN(&p->co, f, 0);
    if (p->mode == 'd') {
        do {
            TIDE_AWAIT(&p->co, cx, tide_read(&p->rd, s, p->buf, sizeof p->buf));
            p->last = (ssize_t)tide_async_result(&p->co);
        } while (p->last > 0);
        printf("end %zd\n", p->last);
        fflush(stdout);
        TIDE_RETURN(&p->co, f, p->last);
    }
    if (p->mode == 'e') {
        for (;;) {
            TIDE_AWAIT(&p->co, cx, tide_read(&p->rd, s, p->buf, sizeof p->buf));
            p->last = (ssize_t)tide_async_result(&p->co);
            if (p->last <= 0)
                break;
            TIDE_AWAIT(&p->co, cx,
                       tide_write_all(&p->wa, s, p->buf, (size_t)p->last));
            if (tide_async_result(&p->co) < 0) {
                p->last = (ssize_t)tide_async_result(&p->co);
                break;
            }
        }
    } else if (p->mode == 'g') {
        TIDE_AWAIT(&p->co, cx,
                   tide_write_all(&p->wa, s, "hello from tide\n", 16));
    } else { /* rev */
        TIDE_AWAIT(&p->co, cx, tide_write_all(&p->wa, s, "hello\n", 6));
        TIDE_AWAIT(&p->co, cx, tide_read_exact(&p->re, s, p->buf, 6));
        if (tide_async_result(&p->co) != 6 || memcmp(p->buf, "olleh\n", 6)) {
            puts("rev: wrong answer");
            p->bad = 1;
        }
    }
    TIDE_AWAIT(&p->co, cx, tide_shutdown(&p->sd, s));
    if (p->server)
        printf("end %zd\n", p->last);
    if (tide_async_result(&p->co) < 0) {
        printf("shutdown %d\n", (int)tide_async_result(&p->co));
        p->bad = 1;
    }
    TIDE_END(&p->co, f, 0);
}

static void peer_drop(tide_future_t *f) {
    tide_async_drop(&TIDE_CONTAINER_OF(f, peer_t, fut)->co);
}
static const tide_future_vtable_t peer_vt = {peer_poll, peer_drop};

/* the client's echo: a writer and a reader at once */
typedef struct half {
    tide_future_t fut;
    tide_async_t co;
    tide_tls_t *tls;
    bool writer;
    uint64_t total, done;
    size_t n;
    tide_write_all_t wa;
    tide_shutdown_t sd;
    tide_read_t rd;
    ssize_t last; /* the read that ended the reader */
    int bad;
    unsigned char buf[65536];
} half_t;

static tide_poll_t half_poll(tide_future_t *f, tide_cx_t *cx) {
    half_t *h = TIDE_CONTAINER_OF(f, half_t, fut);
    tide_stream_t *s = tide_tls_stream(h->tls);
    TIDE_BEGIN(&h->co);
    if (h->writer) {
        while (h->done < h->total) {
            h->n = sizeof h->buf;
            if (h->n > h->total - h->done)
                h->n = (size_t)(h->total - h->done);
            for (size_t i = 0; i < h->n; i++)
                h->buf[i] = pat(h->done + i);
            TIDE_AWAIT(&h->co, cx, tide_write_all(&h->wa, s, h->buf, h->n));
            if (tide_async_result(&h->co) < 0)
                TIDE_RETURN(&h->co, f, tide_async_result(&h->co));
            h->done += h->n;
        }
        TIDE_AWAIT(&h->co, cx, tide_shutdown(&h->sd, s));
        TIDE_RETURN(&h->co, f, tide_async_result(&h->co));
    }
    for (;;) {
        TIDE_AWAIT(&h->co, cx, tide_read(&h->rd, s, h->buf, sizeof h->buf));
        h->last = (ssize_t)tide_async_result(&h->co);
        if (h->last <= 0)
            break;
        for (ssize_t i = 0; i < h->last; i++)
            if (h->buf[i] != pat(h->done + (uint64_t)i))
                h->bad = 1;
        h->done += (uint64_t)h->last;
    }
    TIDE_END(&h->co, f, h->last);
}

static void half_drop(tide_future_t *f) {
    tide_async_drop(&TIDE_CONTAINER_OF(f, half_t, fut)->co);
}
static const tide_future_vtable_t half_vt = {half_poll, half_drop};

static int usage(void) {
    fputs("usage: tls_peer server CERT KEY echo|greet\n"
          "       tls_peer client PORT CA HOST echo N|rev|hs|drain\n",
          stderr);
    return 2;
}

static int die(const char *what, int rc) {
    fprintf(stderr, "tls_peer: %s: %s\n", what, tide_strerror(rc));
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 5)
        return usage();
    bool server = strcmp(argv[1], "server") == 0;
    tide_exec_t *ex;
    int rc = tide_exec_new(&ex, NULL, 0);
    if (rc < 0)
        return die("exec", rc);
    tide_tls_config_t *cfg;
    if ((rc = tide_tls_config_new(&cfg)) < 0)
        return die("config", rc);
    int fd;
    const char *mode;
    if (server) {
        mode = argv[4];
        if ((rc = tide_tls_config_set_cert_file(cfg, argv[2], argv[3])) < 0)
            return die("certificate", rc);
        int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sin = {.sin_family = AF_INET,
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof sin;
        if (l < 0 || bind(l, (struct sockaddr *)&sin, sizeof sin) < 0 ||
            listen(l, 1) < 0 ||
            getsockname(l, (struct sockaddr *)&sin, &len) < 0)
            return die("listen", -errno);
        printf("port %u\n", ntohs(sin.sin_port));
        fflush(stdout);
        fd = accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return die("accept", -errno);
        close(l);
    } else {
        if (argc < 6)
            return usage();
        mode = argv[5];
        if ((rc = tide_tls_config_set_ca_file(cfg, argv[3])) < 0)
            return die("CA file", rc);
        struct sockaddr_in sin = {.sin_family = AF_INET,
                                  .sin_port = htons((uint16_t)atoi(argv[2])),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof sin) < 0)
            return die("connect", -errno);
        if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0)
            return die("fcntl", -errno);
    }
    tide_tcp_t *tcp;
    if ((rc = tide_tcp_from_fd(&tcp, ex, fd)) < 0)
        return die("tcp", rc);
    /* the peers answer each other in records: without TCP_NODELAY, Nagle
     * and the peer's delayed ACKs stall each round trip by 40 ms */
    if ((rc = tide_tcp_set_nodelay(tcp, true)) < 0)
        return die("nodelay", rc);
    tide_tls_t *tls;
    if ((rc = tide_tls_new(&tls, cfg, tide_tcp_stream(tcp),
                           server ? TIDE_TLS_SERVER : TIDE_TLS_CLIENT,
                           server ? NULL : argv[4], 0)) < 0)
        return die("tls", rc);
    int status = 0;
    if (!server && strcmp(mode, "echo") == 0) {
        if (argc < 7)
            return usage();
        static peer_t hs;
        memset(&hs, 0, sizeof hs);
        hs.tls = tls;
        hs.mode = 'h';
        tide_future_init(&hs.fut, &peer_vt);
        if ((rc = tide_exec_block_on(ex, &hs.fut)) < 0 || hs.fut.result < 0)
            return 1;
        tide_future_drop(&hs.fut);
        static half_t w, r;
        memset(&w, 0, sizeof w);
        memset(&r, 0, sizeof r);
        w.tls = r.tls = tls;
        w.writer = true;
        w.total = r.total = strtoull(argv[6], NULL, 10);
        tide_future_t *fs[2] = {tide_future_init(&w.fut, &half_vt),
                                tide_future_init(&r.fut, &half_vt)};
        tide_join_all_t j;
        if ((rc = tide_exec_block_on(ex, tide_join_all(&j, fs, 2))) < 0)
            return die("block_on", rc);
        tide_future_drop(&j.fut);
        if (w.fut.result < 0 || r.fut.result != 0 || r.bad ||
            r.done != r.total) {
            printf("echo: writer %jd, reader %jd after %" PRIu64 " of %" PRIu64
                   " bytes%s\n",
                   (intmax_t)w.fut.result, (intmax_t)r.fut.result, r.done,
                   r.total, r.bad ? ", bytes differ" : "");
            status = 1;
        } else {
            printf("ok %" PRIu64 "\n", r.done);
        }
    } else {
        static peer_t p;
        memset(&p, 0, sizeof p);
        p.tls = tls;
        p.server = server;
        p.mode = strcmp(mode, "echo") == 0    ? 'e'
                 : strcmp(mode, "greet") == 0 ? 'g'
                 : strcmp(mode, "rev") == 0   ? 'r'
                 : strcmp(mode, "hs") == 0    ? 'h'
                 : strcmp(mode, "drain") == 0 ? 'd'
                                              : 0;
        if (p.mode == 0 || (server && p.mode != 'e' && p.mode != 'g') ||
            (!server && p.mode != 'r' && p.mode != 'h' && p.mode != 'd'))
            return usage();
        tide_future_init(&p.fut, &peer_vt);
        if ((rc = tide_exec_block_on(ex, &p.fut)) < 0)
            return die("block_on", rc);
        status = p.fut.result < 0 || p.bad;
        if (status == 0 && !server)
            puts("ok");
        tide_future_drop(&p.fut);
    }
    fflush(stdout);
    tide_tls_free(tls);
    tide_tcp_free(tcp);
    tide_tls_config_free(cfg);
    tide_exec_free(ex);
    return status;
}

#endif
