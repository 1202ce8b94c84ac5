/*
 * t/check_tls.c: the TLS stream (tide/tls.h): tide client against tide
 * server over loopback TCP. Handshake, ALPN, 64 MiB echoed byte-exact,
 * close_notify as end of stream, truncation detected (and allowed when
 * asked), verification failures (wrong host, self-signed, expired, a
 * missing client certificate), session resumption, and futures dropped or
 * orphaned at their pending points. The certificates are made when the
 * program starts (t/tls_certs.sh, with openssl(1)), in a temporary
 * directory removed at the end.
 *
 * Skipped (77) when tide was built without OpenSSL or there is no openssl
 * program to make certificates with.
 */
#include <tide.h>

#if !TIDE_HAVE_TLS
#include <stdio.h>
int main(void) {
    puts("SKIP: tide was built without OpenSSL (configure --with-openssl): "
         "no TLS stream to test");
    return 77;
}
#else

#define T_BOUND_MS 60000u
#include "testutil.h"
#include "tls_certs.h"

#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <poll.h>
#include <sys/wait.h>

static char certs[256]; /* the directory t/tls_certs.sh filled */

static const char *cert(const char *name) {
    static char path[4][512];
    static int next;
    char *p = path[next++ % 4];
    snprintf(p, sizeof path[0], "%s/%s", certs, name);
    return p;
}

/* configs ------------------------------------------------------------------ */

/* A server config presenting NAME.pem / NAME.key. */
static tide_tls_config_t *server_cfg(const char *name) {
    tide_tls_config_t *cfg;
    char pem[64], key[64];
    snprintf(pem, sizeof pem, "%s.pem", name);
    snprintf(key, sizeof key, "%s.key", name);
    ck_assert_int_eq(tide_tls_config_new(&cfg), 0);
    char certp[512];
    snprintf(certp, sizeof certp, "%s", cert(pem));
    ck_assert_int_eq(tide_tls_config_set_cert_file(cfg, certp, cert(key)), 0);
    return cfg;
}

/* A client config trusting the test CA. */
static tide_tls_config_t *client_cfg(void) {
    tide_tls_config_t *cfg;
    ck_assert_int_eq(tide_tls_config_new(&cfg), 0);
    ck_assert_int_eq(tide_tls_config_set_ca_file(cfg, cert("ca.pem")), 0);
    return cfg;
}

/* a connection ------------------------------------------------------------- */

typedef struct pair {
    tide_exec_t *ex;
    tide_tcp_t *ct, *st; /* client's and server's TCP streams */
    tide_tls_t *c, *s;   /* their TLS streams */
} pair_t;

static void pair_new(pair_t *p, tide_tls_config_t *ccfg,
                     tide_tls_config_t *scfg, const char *host, unsigned cflags,
                     unsigned sflags) {
    int cfd, sfd;
    p->ex = t_exec_new();
    t_tcp_pair(&cfd, &sfd);
    ck_assert_int_eq(tide_tcp_from_fd(&p->ct, p->ex, cfd), 0);
    ck_assert_int_eq(tide_tcp_from_fd(&p->st, p->ex, sfd), 0);
    ck_assert_int_eq(tide_tls_new(&p->c, ccfg, tide_tcp_stream(p->ct),
                                  TIDE_TLS_CLIENT, host, cflags),
                     0);
    ck_assert_int_eq(tide_tls_new(&p->s, scfg, tide_tcp_stream(p->st),
                                  TIDE_TLS_SERVER, NULL, sflags),
                     0);
}

static void pair_free(pair_t *p) {
    tide_tls_free(p->c);
    tide_tls_free(p->s);
    tide_tcp_free(p->ct);
    tide_tcp_free(p->st);
    t_exec_free_clean(p->ex);
}

/* futures for the tests ------------------------------------------------------ */

/* The server: handshake, echo until end of stream (or an error), then
 * shut down. Result: bytes echoed, or the first error. */
typedef struct srv {
    tide_future_t fut;
    tide_async_t co;
    tide_tls_t *tls;
    tide_tls_handshake_t hs;
    tide_read_t rd;
    tide_write_all_t wa;
    tide_shutdown_t sd;
    int hs_rc;    /* the handshake's result */
    ssize_t last; /* the read that ended the echo */
    uint64_t echoed;
    unsigned char buf[16384];
} srv_t;

static tide_poll_t srv_poll(tide_future_t *f, tide_cx_t *cx) {
    srv_t *v = TIDE_CONTAINER_OF(f, srv_t, fut);
    tide_stream_t *s = tide_tls_stream(v->tls);
    TIDE_BEGIN(&v->co);
    TIDE_AWAIT(&v->co, cx, tide_tls_handshake(&v->hs, v->tls));
    v->hs_rc = (int)tide_async_result(&v->co);
    if (v->hs_rc < 0)
        TIDE_RETURN(&v->co, f, v->hs_rc);
    for (;;) {
        TIDE_AWAIT(&v->co, cx, tide_read(&v->rd, s, v->buf, sizeof v->buf));
        v->last = (ssize_t)tide_async_result(&v->co);
        if (v->last <= 0)
            break;
        TIDE_AWAIT(&v->co, cx,
                   tide_write_all(&v->wa, s, v->buf, (size_t)v->last));
        if (tide_async_result(&v->co) < 0)
            TIDE_RETURN(&v->co, f, tide_async_result(&v->co));
        v->echoed += (uint64_t)v->last;
    }
    if (v->last < 0)
        TIDE_RETURN(&v->co, f, v->last);
    TIDE_AWAIT(&v->co, cx, tide_shutdown(&v->sd, s));
    if (tide_async_result(&v->co) < 0)
        TIDE_RETURN(&v->co, f, tide_async_result(&v->co));
    TIDE_END(&v->co, f, (intptr_t)v->echoed);
}

static void srv_drop(tide_future_t *f) {
    tide_async_drop(&TIDE_CONTAINER_OF(f, srv_t, fut)->co);
}

static const tide_future_vtable_t srv_vt = {srv_poll, srv_drop};

static tide_future_t *srv(srv_t *v, tide_tls_t *tls) {
    memset(v, 0, sizeof *v);
    v->tls = tls;
    return tide_future_init(&v->fut, &srv_vt);
}

/* The client's writer: `total` bytes of the pattern, then shutdown
 * (close_notify, then FIN). Result 0 or the first error. */
typedef struct wtr {
    tide_future_t fut;
    tide_async_t co;
    tide_tls_t *tls;
    tide_write_all_t wa;
    tide_shutdown_t sd;
    uint64_t total, sent;
    size_t n;
    bool no_shutdown;
    unsigned char buf[65536];
} wtr_t;

static tide_poll_t wtr_poll(tide_future_t *f, tide_cx_t *cx) {
    wtr_t *w = TIDE_CONTAINER_OF(f, wtr_t, fut);
    tide_stream_t *s = tide_tls_stream(w->tls);
    TIDE_BEGIN(&w->co);
    while (w->sent < w->total) {
        w->n = sizeof w->buf;
        if (w->n > w->total - w->sent)
            w->n = (size_t)(w->total - w->sent);
        t_pat_fill(w->buf, w->n, w->sent);
        TIDE_AWAIT(&w->co, cx, tide_write_all(&w->wa, s, w->buf, w->n));
        if (tide_async_result(&w->co) < 0)
            TIDE_RETURN(&w->co, f, tide_async_result(&w->co));
        w->sent += w->n;
    }
    if (!w->no_shutdown) {
        TIDE_AWAIT(&w->co, cx, tide_shutdown(&w->sd, s));
        if (tide_async_result(&w->co) < 0)
            TIDE_RETURN(&w->co, f, tide_async_result(&w->co));
    }
    TIDE_END(&w->co, f, 0);
}

static void wtr_drop(tide_future_t *f) {
    tide_async_drop(&TIDE_CONTAINER_OF(f, wtr_t, fut)->co);
}

static const tide_future_vtable_t wtr_vt = {wtr_poll, wtr_drop};

static tide_future_t *wtr(wtr_t *w, tide_tls_t *tls, uint64_t total) {
    memset(w, 0, sizeof *w);
    w->tls = tls;
    w->total = total;
    return tide_future_init(&w->fut, &wtr_vt);
}

/* The client's reader: `total` bytes, checked against the pattern, then
 * one more read, whose result is `last` (0: end of stream). Result: the
 * bytes read, or the first error. */
typedef struct rdr {
    tide_future_t fut;
    tide_async_t co;
    tide_tls_t *tls;
    tide_read_t rd;
    uint64_t total, got;
    ssize_t last;
    bool bad; /* a byte differed from the pattern */
    unsigned char buf[65536];
} rdr_t;

static tide_poll_t rdr_poll(tide_future_t *f, tide_cx_t *cx) {
    rdr_t *r = TIDE_CONTAINER_OF(f, rdr_t, fut);
    tide_stream_t *s = tide_tls_stream(r->tls);
    ssize_t n;
    TIDE_BEGIN(&r->co);
    while (r->got < r->total) {
        TIDE_AWAIT(&r->co, cx, tide_read(&r->rd, s, r->buf, sizeof r->buf));
        n = (ssize_t)tide_async_result(&r->co);
        if (n <= 0)
            TIDE_RETURN(&r->co, f, n < 0 ? n : (ssize_t)r->got);
        if (t_pat_check(r->buf, (size_t)n, r->got) != (size_t)n)
            r->bad = true;
        r->got += (uint64_t)n;
    }
    TIDE_AWAIT(&r->co, cx, tide_read(&r->rd, s, r->buf, sizeof r->buf));
    r->last = (ssize_t)tide_async_result(&r->co);
    TIDE_END(&r->co, f, (intptr_t)r->got);
}

static void rdr_drop(tide_future_t *f) {
    tide_async_drop(&TIDE_CONTAINER_OF(f, rdr_t, fut)->co);
}

static const tide_future_vtable_t rdr_vt = {rdr_poll, rdr_drop};

static tide_future_t *rdr(rdr_t *r, tide_tls_t *tls, uint64_t total) {
    memset(r, 0, sizeof *r);
    r->tls = tls;
    r->total = total;
    r->last = 1;
    return tide_future_init(&r->fut, &rdr_vt);
}

/* Run the server's echo and the client's writer and reader together. */
static void run3(pair_t *p, srv_t *v, wtr_t *w, rdr_t *r, uint64_t total) {
    tide_future_t *fs[3] = {srv(v, p->s), wtr(w, p->c, total),
                            rdr(r, p->c, total)};
    tide_join_all_t j;
    ck_assert_int_eq(t_run(p->ex, tide_join_all(&j, fs, 3)), 0);
}

/* Both handshakes, together: their results in *crc and *src. */
static void handshake2(pair_t *p, int *crc, int *src) {
    tide_tls_handshake_t ch, sh;
    tide_future_t *fs[2] = {tide_tls_handshake(&ch, p->c),
                            tide_tls_handshake(&sh, p->s)};
    tide_join_all_t j;
    ck_assert_int_eq(t_run(p->ex, tide_join_all(&j, fs, 2)), 0);
    *crc = (int)ch.fut.result;
    *src = (int)sh.fut.result;
}

/* A pair for localhost, both handshakes done and succeeded. */
static void pair_connect(pair_t *p, tide_tls_config_t *ccfg,
                         tide_tls_config_t *scfg) {
    pair_new(p, ccfg, scfg, "localhost", 0, 0);
    int crc, src;
    handshake2(p, &crc, &src);
    ck_assert_int_eq(crc, 0);
    ck_assert_int_eq(src, 0);
}

/* tests -------------------------------------------------------------------- */

START_TEST(test_tls_handshake_alpn_echo) {
    tide_tls_config_t *cc = client_cfg(), *sc = server_cfg("server");
    const char *offer[] = {"h2", "tide-echo"}, *accept[] = {"tide-echo"};
    ck_assert_int_eq(tide_tls_config_set_alpn(cc, offer, 2), 0);
    ck_assert_int_eq(tide_tls_config_set_alpn(sc, accept, 1), 0);
    pair_t p;
    pair_new(&p, cc, sc, "localhost", 0, 0);
    ck_assert(!tide_tls_handshake_done(p.c));
    int crc, src;
    handshake2(&p, &crc, &src);
    ck_assert_int_eq(crc, 0);
    ck_assert_int_eq(src, 0);
    ck_assert(tide_tls_handshake_done(p.c) && tide_tls_handshake_done(p.s));
    ck_assert_str_eq(tide_tls_version(p.c), "TLSv1.3");
    size_t len;
    const char *a = tide_tls_alpn(p.c, &len);
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(len, 9);
    ck_assert(memcmp(a, "tide-echo", 9) == 0);
    a = tide_tls_alpn(p.s, &len);
    ck_assert(a != NULL && len == 9 && memcmp(a, "tide-echo", 9) == 0);
    ck_assert_int_eq(tide_tls_verify_result(p.c), X509_V_OK);
    ck_assert_ptr_null(tide_tls_error_reason(p.c));

    /* a few bytes each way; close_notify both ways is end of stream */
    srv_t v;
    wtr_t w;
    rdr_t r;
    run3(&p, &v, &w, &r, 5);
    ck_assert_int_eq(v.fut.result, 5);
    ck_assert_int_eq(v.last, 0); /* the client's close_notify */
    ck_assert_int_eq(w.fut.result, 0);
    ck_assert_int_eq(r.fut.result, 5);
    ck_assert(!r.bad);
    ck_assert_int_eq(r.last, 0); /* the server's close_notify */
    /* reads after close_notify answer 0 again; writes after our own
     * shutdown -EPIPE */
    tide_read_t rd;
    char b[8];
    ck_assert_int_eq(t_run(p.ex, tide_read(&rd, tide_tls_stream(p.c), b, 8)),
                     0);
    tide_write_t wr;
    ck_assert_int_eq(t_run(p.ex, tide_write(&wr, tide_tls_stream(p.c), "x", 1)),
                     -EPIPE);
    pair_free(&p);
    tide_tls_config_free(cc);
    tide_tls_config_free(sc);
}
END_TEST

START_TEST(test_tls_echo_64mib) {
    tide_tls_config_t *cc = client_cfg(), *sc = server_cfg("server");
    pair_t p;
    pair_new(&p, cc, sc, "127.0.0.1", 0, 0);
    const uint64_t total = 64u << 20;
    srv_t *v = malloc(sizeof *v);
    wtr_t *w = malloc(sizeof *w);
    rdr_t *r = malloc(sizeof *r);
    uint64_t t0 = tide_now();
    run3(&p, v, w, r, total);
    double secs = (double)(tide_now() - t0) / 1e6;
    fprintf(stderr, "tls: 64 MiB echoed in %.2f s (%.0f MiB/s each way)\n",
            secs, 64.0 / secs);
    ck_assert_int_eq(v->fut.result, (intptr_t)total);
    ck_assert_int_eq(w->fut.result, 0);
    ck_assert_int_eq(r->fut.result, (intptr_t)total);
    ck_assert_msg(!r->bad, "the echo differs from what was sent");
    ck_assert_int_eq(r->last, 0);
    free(v);
    free(w);
    free(r);
    pair_free(&p);
    tide_tls_config_free(cc);
    tide_tls_config_free(sc);
}
END_TEST

/* The client's TCP side shut down under the TLS stream (FIN, no
 * close_notify): the server's read is -ECONNABORTED, or 0 when allowed. */
static void truncation(unsigned sflags, ssize_t want) {
    tide_tls_config_t *cc = client_cfg(), *sc = server_cfg("server");
    pair_t p;
    pair_new(&p, cc, sc, "localhost", 0, sflags);
    int crc, src;
    handshake2(&p, &crc, &src);
    ck_assert_int_eq(crc, 0);
    ck_assert_int_eq(src, 0);
    tide_write_all_t wa;
    ck_assert_int_eq(
        t_run(p.ex, tide_write_all(&wa, tide_tls_stream(p.c), "abc", 3)), 3);
    ck_assert_int_eq(tide_tcp_shutdown(p.ct, SHUT_WR), 0);
    tide_read_exact_t re;
    char b[3];
    ck_assert_int_eq(
        t_run(p.ex, tide_read_exact(&re, tide_tls_stream(p.s), b, 3)), 3);
    ck_assert(memcmp(b, "abc", 3) == 0);
    for (int i = 0; i < 2; i++) { /* and again: sticky */
        tide_read_t rd;
        t_assert_int_eq_at(
            i, t_run(p.ex, tide_read(&rd, tide_tls_stream(p.s), b, 3)), want);
    }
    pair_free(&p);
    tide_tls_config_free(cc);
    tide_tls_config_free(sc);
}

START_TEST(test_tls_truncation_detected) { truncation(0, -ECONNABORTED); }
END_TEST

START_TEST(test_tls_truncation_allowed) {
    truncation(TIDE_TLS_ALLOW_TRUNCATION, 0);
}
END_TEST

/* A verifying client refuses the server: -EKEYREJECTED with `why`; the
 * server hears the alert: -EPROTO. */
static void refused(const char *server_cert, const char *host, long why) {
    tide_tls_config_t *cc = client_cfg(), *sc = server_cfg(server_cert);
    pair_t p;
    pair_new(&p, cc, sc, host, 0, 0);
    int crc, src;
    handshake2(&p, &crc, &src);
    ck_assert_int_eq(crc, -EKEYREJECTED);
    ck_assert_int_eq(tide_tls_verify_result(p.c), why);
    ck_assert_ptr_nonnull(tide_tls_error_reason(p.c));
    fprintf(stderr, "tls: %s for %s refused: %s; server: %s\n", server_cert,
            host, tide_tls_error_reason(p.c),
            tide_tls_error_reason(p.s) ? tide_tls_error_reason(p.s) : "-");
    ck_assert_int_eq(src, -EPROTO);
    /* sticky: a read and a write give the same */
    tide_read_t rd;
    char b[1];
    ck_assert_int_eq(t_run(p.ex, tide_read(&rd, tide_tls_stream(p.c), b, 1)),
                     -EKEYREJECTED);
    tide_write_t wr;
    ck_assert_int_eq(t_run(p.ex, tide_write(&wr, tide_tls_stream(p.c), "x", 1)),
                     -EKEYREJECTED);
    pair_free(&p);
    tide_tls_config_free(cc);
    tide_tls_config_free(sc);
}

START_TEST(test_tls_wrong_host_refused) {
    refused("server", "wrong.example", X509_V_ERR_HOSTNAME_MISMATCH);
}
END_TEST

START_TEST(test_tls_wrong_ip_refused) {
    refused("server", "127.0.0.2", X509_V_ERR_IP_ADDRESS_MISMATCH);
}
END_TEST

START_TEST(test_tls_self_signed_refused) {
    refused("self", "localhost", X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT);
}
END_TEST

START_TEST(test_tls_expired_refused) {
    refused("expired", "localhost", X509_V_ERR_CERT_HAS_EXPIRED);
}
END_TEST

START_TEST(test_tls_verify_none_accepts) {
    tide_tls_config_t *cc, *sc = server_cfg("self");
    ck_assert_int_eq(tide_tls_config_new(&cc), 0);
    ck_assert_int_eq(tide_tls_config_set_verify(cc, TIDE_TLS_VERIFY_NONE), 0);
    pair_t p;
    pair_new(&p, cc, sc, NULL, 0, 0); /* no host needed without checks */
    int crc, src;
    handshake2(&p, &crc, &src);
    ck_assert_int_eq(crc, 0);
    ck_assert_int_eq(src, 0);
    pair_free(&p);
    tide_tls_config_free(cc);
    tide_tls_config_free(sc);
}
END_TEST

START_TEST(test_tls_client_cert) {
    for (int with = 0; with < 2; with++) {
        tide_tls_config_t *cc = client_cfg(), *sc = server_cfg("server");
        ck_assert_int_eq(tide_tls_config_set_ca_file(sc, cert("ca.pem")), 0);
        ck_assert_int_eq(
            tide_tls_config_set_verify(sc, TIDE_TLS_VERIFY_REQUIRE), 0);
        if (with)
            ck_assert_int_eq(tide_tls_config_set_cert_file(
                                 cc, cert("client.pem"), cert("client.key")),
                             0);
        pair_t p;
        pair_new(&p, cc, sc, "localhost", 0, 0);
        srv_t v;
        wtr_t w;
        rdr_t r;
        run3(&p, &v, &w, &r, 100);
        if (with) {
            t_assert_int_eq_at(with, v.fut.result, 100);
            t_assert_int_eq_at(with, r.fut.result, 100);
        } else {
            /* TLS 1.3: the client's handshake is over before the server
             * judges its (missing) certificate; it learns with its read */
            t_assert_int_eq_at(with, v.hs_rc, -EKEYREJECTED);
            t_assert_int_eq_at(with, r.fut.result, -EPROTO);
        }
        pair_free(&p);
        tide_tls_config_free(cc);
        tide_tls_config_free(sc);
    }
}
END_TEST

START_TEST(test_tls_alpn_mismatch) {
    tide_tls_config_t *cc = client_cfg(), *sc = server_cfg("server");
    const char *offer[] = {"h2"}, *accept[] = {"tide-echo"};
    ck_assert_int_eq(tide_tls_config_set_alpn(cc, offer, 1), 0);
    ck_assert_int_eq(tide_tls_config_set_alpn(sc, accept, 1), 0);
    pair_t p;
    pair_new(&p, cc, sc, "localhost", 0, 0);
    int crc, src;
    handshake2(&p, &crc, &src);
    ck_assert_int_eq(crc, -EPROTO);
    ck_assert_int_eq(src, -EPROTO);
    pair_free(&p);
    tide_tls_config_free(cc);
    tide_tls_config_free(sc);
}
END_TEST

START_TEST(test_tls_session_resumed) {
    tide_tls_config_t *cc = client_cfg(), *sc = server_cfg("server");
    tide_tls_session_t *sess = NULL;
    for (int round = 0; round < 2; round++) {
        pair_t p;
        pair_new(&p, cc, sc, "localhost", 0, 0);
        if (round == 0)
            ck_assert_int_eq(tide_tls_session_get(p.c, &sess), -ENOENT);
        else
            ck_assert_int_eq(tide_tls_set_session(p.c, sess), 0);
        srv_t v;
        wtr_t w;
        rdr_t r;
        run3(&p, &v, &w, &r, 10);
        t_assert_int_eq_at(round, r.fut.result, 10);
        t_assert_int_eq_at(round, tide_tls_session_reused(p.c), round == 1);
        t_assert_int_eq_at(round, tide_tls_session_reused(p.s), round == 1);
        if (round == 0) {
            ck_assert_int_eq(tide_tls_session_get(p.c, &sess), 0);
            /* set_session is for a client before its handshake only */
            ck_assert_int_eq(tide_tls_set_session(p.c, sess), -EINVAL);
            ck_assert_int_eq(tide_tls_set_session(p.s, sess), -EINVAL);
        }
        pair_free(&p);
    }
    tide_tls_session_free(sess);
    tide_tls_config_free(cc);
    tide_tls_config_free(sc);
}
END_TEST

START_TEST(test_tls_bad_arguments) {
    tide_tls_config_t *cfg;
    ck_assert_int_eq(tide_tls_config_new(NULL), -EINVAL);
    ck_assert_int_eq(tide_tls_config_new(&cfg), 0);
    ck_assert_int_eq(tide_tls_config_set_cert_file(cfg, "/nonexistent/x.pem",
                                                   cert("server.key")),
                     -ENOENT);
    /* a key that is not the certificate's */
    ck_assert_int_eq(tide_tls_config_set_cert_file(cfg, cert("server.pem"),
                                                   cert("client.key")),
                     -EINVAL);
    /* a file that is no certificate */
    ck_assert_int_eq(tide_tls_config_set_ca_file(cfg, cert("server.ext")),
                     -EINVAL);
    ck_assert_int_eq(tide_tls_config_set_verify(cfg, (tide_tls_verify_t)9),
                     -EINVAL);
    const char *bad[] = {""};
    ck_assert_int_eq(tide_tls_config_set_alpn(cfg, bad, 1), -EINVAL);
    ck_assert_int_eq(tide_tls_config_set_alpn(cfg, NULL, 1), -EINVAL);
    ck_assert_int_eq(tide_tls_config_set_alpn(cfg, NULL, 0), 0);
    ck_assert_ptr_nonnull(tide_tls_config_ssl_ctx(cfg));

    tide_exec_t *ex = t_exec_new();
    int sv[2];
    t_tcp_pair(&sv[0], &sv[1]);
    tide_tcp_t *t;
    ck_assert_int_eq(tide_tcp_from_fd(&t, ex, sv[0]), 0);
    tide_tls_t *tls;
    tide_stream_t *s = tide_tcp_stream(t);
    /* a verifying client must name the server */
    ck_assert_int_eq(tide_tls_new(&tls, cfg, s, TIDE_TLS_CLIENT, NULL, 0),
                     -EINVAL);
    ck_assert_int_eq(tide_tls_new(&tls, cfg, s, (tide_tls_role_t)7, "x", 0),
                     -EINVAL);
    ck_assert_int_eq(tide_tls_new(&tls, cfg, s, TIDE_TLS_CLIENT, "x", 1u << 5),
                     -EINVAL);
    ck_assert_int_eq(tide_tls_new(&tls, NULL, s, TIDE_TLS_CLIENT, "x", 0),
                     -EINVAL);
    ck_assert_int_eq(tide_tls_new(&tls, cfg, NULL, TIDE_TLS_CLIENT, "x", 0),
                     -EINVAL);
    ck_assert_int_eq(tide_tls_new(&tls, cfg, s, TIDE_TLS_CLIENT, "x", 0), 0);
    ck_assert_int_eq(tide_tls_session_get(tls, NULL), -EINVAL);
    ck_assert_int_eq(tide_tls_set_session(tls, NULL), -EINVAL);
    size_t len = 1;
    ck_assert_ptr_null(tide_tls_alpn(tls, &len));
    ck_assert_int_eq(len, 0);
    ck_assert_str_eq(tide_tls_version(tls), "unknown");
    ck_assert_ptr_nonnull(tide_tls_ssl(tls));
    tide_tls_free(tls);
    tide_tls_free(NULL);
    tide_tcp_free(t);
    close(sv[1]);
    t_exec_free_clean(ex);
    tide_tls_config_free(cfg);
    tide_tls_config_free(NULL);
}
END_TEST

/* A peer that accepts the TCP connection but says nothing: the client's
 * handshake waits (its ClientHello sent); dropped there, it leaves no
 * waiter on the TCP stream (its read event is disarmed) and nothing
 * leaks; a new handshake continues, and a bounded one times out. */
START_TEST(test_tls_handshake_dropped_while_pending) {
    tide_tls_config_t *cc = client_cfg();
    tide_exec_t *ex = t_exec_new();
    int cfd, sfd;
    t_tcp_pair(&cfd, &sfd);
    tide_tcp_t *ct;
    ck_assert_int_eq(tide_tcp_from_fd(&ct, ex, cfd), 0);
    tide_tls_t *c;
    ck_assert_int_eq(tide_tls_new(&c, cc, tide_tcp_stream(ct), TIDE_TLS_CLIENT,
                                  "localhost", 0),
                     0);
    t_hand_t h;
    t_hand_init(&h, ex);
    tide_tls_handshake_t hs;
    tide_future_t *f = tide_tls_handshake(&hs, c);
    ck_assert_int_eq(t_hand_poll(&h, f), TIDE_PENDING);
    ck_assert(t_fd_armed(tide_tcp_fd(ct), TIDE_READABLE));
    char hello[4096];
    t_sleep_ms(20);
    ssize_t n = read(sfd, hello, sizeof hello);
    ck_assert_int_gt(n, 5);
    ck_assert_int_eq(hello[0], 0x16); /* a handshake record */
    tide_future_drop(f);
    ck_assert(!t_fd_armed(tide_tcp_fd(ct), TIDE_READABLE));
    ck_assert_int_eq(tide_waitq_len(tide_tls_stream(c)->rq), 0);
    t_hand_done(&h);

    /* a bounded handshake: the timeout wins, nothing is left behind */
    tide_timeout_t to;
    ck_assert_int_eq(
        t_run(ex, tide_timeout(&to, tide_tls_handshake(&hs, c), 50000)),
        -ETIMEDOUT);
    ck_assert(!t_fd_armed(tide_tcp_fd(ct), TIDE_READABLE));
    tide_tls_free(c);
    tide_tcp_free(ct);
    close(sfd);
    t_exec_free_clean(ex);
    tide_tls_config_free(cc);
}
END_TEST

/* A read pending after the handshake, dropped: nothing is lost (the next
 * read gets the byte the server sends afterwards) and no waiter is left. */
START_TEST(test_tls_read_dropped_while_pending) {
    tide_tls_config_t *cc = client_cfg(), *sc = server_cfg("server");
    pair_t p;
    pair_connect(&p, cc, sc);
    t_hand_t h;
    t_hand_init(&h, p.ex);
    char b[16];
    for (int i = 0; i < 3; i++) {
        tide_read_t rd;
        tide_future_t *f = tide_read(&rd, tide_tls_stream(p.c), b, sizeof b);
        t_assert_int_eq_at(i, t_hand_poll(&h, f), TIDE_PENDING);
        t_assert_at(i, t_fd_armed(tide_tcp_fd(p.ct), TIDE_READABLE));
        tide_future_drop(f);
        t_assert_at(i, !t_fd_armed(tide_tcp_fd(p.ct), TIDE_READABLE));
    }
    t_hand_done(&h);
    tide_write_all_t wa;
    ck_assert_int_eq(
        t_run(p.ex, tide_write_all(&wa, tide_tls_stream(p.s), "late", 4)), 4);
    tide_read_exact_t re;
    ck_assert_int_eq(
        t_run(p.ex, tide_read_exact(&re, tide_tls_stream(p.c), b, 4)), 4);
    ck_assert(memcmp(b, "late", 4) == 0);
    pair_free(&p);
    tide_tls_config_free(cc);
    tide_tls_config_free(sc);
}
END_TEST

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Take n whole TLS records off fd (bounded), reading no byte beyond
 * them: their bytes into buf; returns how many. */
static size_t take_records(int fd, unsigned char *buf, size_t cap, int n) {
    size_t got = 0, end = 0; /* end: where the records begun so far end */
    int64_t until = mono_ms() + T_BOUND_MS;
    for (int seen = 0; seen < n || got < end;) {
        if (got == end + 5) { /* the next header is in: its length */
            end += 5 + ((size_t)buf[end + 3] << 8 | buf[end + 4]);
            seen++;
            continue;
        }
        size_t want = (got < end ? end : end + 5) - got;
        ck_assert_uint_le(got + want, cap);
        ck_assert_msg(mono_ms() < until, "%zu bytes of %d records", got, n);
        struct pollfd pfd = {fd, POLLIN, 0};
        poll(&pfd, 1, 50);
        ssize_t r = recv(fd, buf + got, want, MSG_DONTWAIT);
        if (r > 0)
            got += (size_t)r;
    }
    return got;
}

/* tide_tls_has_buffered_input: false with nothing taken in; true with
 * part of a record (the server's record reaches the client in two pieces,
 * written raw to the server's socket), with decrypted bytes not yet read
 * and with a second record still ciphertext; false again once every byte
 * was read. The read that waits on the partial record times out (it is
 * dropped): the bytes it took in stay. */
START_TEST(test_tls_buffered_input) {
    tide_tls_config_t *cc = client_cfg(), *sc = server_cfg("server");
    pair_t p;
    pair_connect(&p, cc, sc);
    /* a first byte takes the server's session tickets in with it */
    tide_write_all_t wa;
    tide_read_exact_t re;
    char b[16];
    ck_assert_int_eq(
        t_run(p.ex, tide_write_all(&wa, tide_tls_stream(p.s), "x", 1)), 1);
    ck_assert_int_eq(
        t_run(p.ex, tide_read_exact(&re, tide_tls_stream(p.c), b, 1)), 1);
    ck_assert(!tide_tls_has_buffered_input(p.c));

    /* one record, taken off the client's socket before tide reads it */
    ck_assert_int_eq(
        t_run(p.ex, tide_write_all(&wa, tide_tls_stream(p.s), "hello", 5)), 5);
    int cfd = tide_fd_get(tide_tcp_fd(p.ct));
    int sfd = tide_fd_get(tide_tcp_fd(p.st));
    unsigned char rec[256];
    size_t n = take_records(cfd, rec, sizeof rec, 1);
    ck_assert_uint_gt(n, 10);
    ck_assert_int_eq(write(sfd, rec, 10), 10);
    /* reads that time out (are dropped) until the 10 bytes are in */
    for (int i = 0; i < 100 && !tide_tls_has_buffered_input(p.c); i++) {
        tide_read_t rd;
        tide_timeout_t to;
        ck_assert_int_eq(
            t_run(p.ex,
                  tide_timeout(
                      &to, tide_read(&rd, tide_tls_stream(p.c), b, sizeof b),
                      20 * TIDE_USEC_PER_MSEC)),
            -ETIMEDOUT);
    }
    ck_assert(tide_tls_has_buffered_input(p.c));
    ck_assert_int_eq(write(sfd, rec + 10, n - 10), (ssize_t)n - 10);
    ck_assert_int_eq(
        t_run(p.ex, tide_read_exact(&re, tide_tls_stream(p.c), b, 2)), 2);
    ck_assert(tide_tls_has_buffered_input(p.c)); /* "llo", decrypted */
    ck_assert_int_eq(
        t_run(p.ex, tide_read_exact(&re, tide_tls_stream(p.c), b + 2, 3)), 3);
    ck_assert(memcmp(b, "hello", 5) == 0);
    ck_assert(!tide_tls_has_buffered_input(p.c));

    /* two records taken in by one read of the socket (they arrive in one
     * write): while the client reads the first, the second waits, still
     * ciphertext */
    ck_assert_int_eq(
        t_run(p.ex, tide_write_all(&wa, tide_tls_stream(p.s), "ab", 2)), 2);
    ck_assert_int_eq(
        t_run(p.ex, tide_write_all(&wa, tide_tls_stream(p.s), "cd", 2)), 2);
    n = take_records(cfd, rec, sizeof rec, 2);
    ck_assert_int_eq(write(sfd, rec, n), (ssize_t)n);
    ck_assert_int_eq(
        t_run(p.ex, tide_read_exact(&re, tide_tls_stream(p.c), b, 2)), 2);
    ck_assert(tide_tls_has_buffered_input(p.c));
    ck_assert_int_eq(
        t_run(p.ex, tide_read_exact(&re, tide_tls_stream(p.c), b + 2, 2)), 2);
    ck_assert(memcmp(b, "abcd", 4) == 0);
    ck_assert(!tide_tls_has_buffered_input(p.c));
    pair_free(&p);
    tide_tls_config_free(cc);
    tide_tls_config_free(sc);
}
END_TEST

/* The TLS stream freed under a pending read, and the TCP stream freed
 * under another TLS stream's pending read: both complete with -EBADF. */
START_TEST(test_tls_freed_under_pending_read) {
    tide_tls_config_t *cc = client_cfg(), *sc = server_cfg("server");
    pair_t p;
    pair_connect(&p, cc, sc);
    t_hand_t h;
    t_hand_init(&h, p.ex);
    char b[16];
    tide_read_t rd;
    tide_future_t *f = tide_read(&rd, tide_tls_stream(p.c), b, sizeof b);
    ck_assert_int_eq(t_hand_poll(&h, f), TIDE_PENDING);
    int woken = t_woken(&h.count);
    tide_tls_free(p.c);
    p.c = NULL;
    ck_assert_int_gt(t_woken(&h.count), woken);
    ck_assert_int_eq(t_hand_poll(&h, f), TIDE_READY);
    ck_assert_int_eq(f->result, -EBADF);
    tide_future_drop(f);
    ck_assert(!t_fd_armed(tide_tcp_fd(p.ct), TIDE_READABLE));

    /* the server's TCP stream freed under its TLS stream's read */
    f = tide_read(&rd, tide_tls_stream(p.s), b, sizeof b);
    ck_assert_int_eq(t_hand_poll(&h, f), TIDE_PENDING);
    woken = t_woken(&h.count);
    tide_tcp_free(p.st);
    p.st = NULL;
    ck_assert_int_gt(t_woken(&h.count), woken);
    ck_assert_int_eq(t_hand_poll(&h, f), TIDE_READY);
    ck_assert_int_eq(f->result, -EBADF);
    tide_future_drop(f);
    /* sticky, and the freed TCP stream is never touched again */
    tide_write_t wr;
    ck_assert_int_eq(t_run(p.ex, tide_write(&wr, tide_tls_stream(p.s), "x", 1)),
                     -EBADF);
    t_hand_done(&h);
    pair_free(&p);
    tide_tls_config_free(cc);
    tide_tls_config_free(sc);
}
END_TEST

/* TLS over TLS: the inner stream can be any stream. */
START_TEST(test_tls_over_tls) {
    tide_tls_config_t *cc = client_cfg(), *sc = server_cfg("server");
    pair_t p;
    pair_new(&p, cc, sc, "localhost", 0, 0);
    tide_tls_t *c2, *s2;
    ck_assert_int_eq(tide_tls_new(&c2, cc, tide_tls_stream(p.c),
                                  TIDE_TLS_CLIENT, "localhost", 0),
                     0);
    ck_assert_int_eq(
        tide_tls_new(&s2, sc, tide_tls_stream(p.s), TIDE_TLS_SERVER, NULL, 0),
        0);
    srv_t *v = malloc(sizeof *v);
    wtr_t *w = malloc(sizeof *w);
    rdr_t *r = malloc(sizeof *r);
    const uint64_t total = 1u << 20;
    tide_future_t *fs[3] = {srv(v, s2), wtr(w, c2, total), rdr(r, c2, total)};
    tide_join_all_t j;
    ck_assert_int_eq(t_run(p.ex, tide_join_all(&j, fs, 3)), 0);
    ck_assert_int_eq(v->fut.result, (intptr_t)total);
    ck_assert_int_eq(r->fut.result, (intptr_t)total);
    ck_assert(!r->bad);
    ck_assert_int_eq(r->last, 0);
    free(v);
    free(w);
    free(r);
    tide_tls_free(c2);
    tide_tls_free(s2);
    pair_free(&p);
    tide_tls_config_free(cc);
    tide_tls_config_free(sc);
}
END_TEST

static Suite *tls_suite(void) {
    Suite *s = suite_create("tls");
    TCase *tc = t_tcase(s, "tls", 30);
    tcase_add_test(tc, test_tls_handshake_alpn_echo);
    tcase_add_test(tc, test_tls_truncation_detected);
    tcase_add_test(tc, test_tls_truncation_allowed);
    tcase_add_test(tc, test_tls_wrong_host_refused);
    tcase_add_test(tc, test_tls_wrong_ip_refused);
    tcase_add_test(tc, test_tls_self_signed_refused);
    tcase_add_test(tc, test_tls_expired_refused);
    tcase_add_test(tc, test_tls_verify_none_accepts);
    tcase_add_test(tc, test_tls_client_cert);
    tcase_add_test(tc, test_tls_alpn_mismatch);
    tcase_add_test(tc, test_tls_session_resumed);
    tcase_add_test(tc, test_tls_bad_arguments);
    tcase_add_test(tc, test_tls_handshake_dropped_while_pending);
    tcase_add_test(tc, test_tls_read_dropped_while_pending);
    tcase_add_test(tc, test_tls_buffered_input);
    tcase_add_test(tc, test_tls_freed_under_pending_read);
    tcase_add_test(tc, test_tls_over_tls);
    TCase *big = t_tcase(s, "tls_big", 120);
    tcase_add_test(big, test_tls_echo_64mib);
    return s;
}

int main(void) {
    int made = t_tls_certs_make(certs, sizeof certs, "tide-tls", NULL);
    if (made != 0)
        return made;
    int rc = t_run_suite(tls_suite());
    t_tls_certs_remove(certs);
    return rc;
}

#endif
