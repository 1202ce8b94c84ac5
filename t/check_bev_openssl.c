/*
 * t/check_bev_openssl.c: an application's OpenSSL bufferevent as a tide
 * stream (tide/libevent.h). tide knows nothing of TLS here: libevent's
 * bufferevent_openssl does the handshake and the records, and the stream
 * reads and writes its evbuffers. The certificate is made in memory at
 * test time (a P-256 key, self-signed for an hour); the client does not
 * verify it, since verification is OpenSSL's and not what is tested.
 *
 * Built with OpenSSL and libevent_openssl only; without them the program
 * says so and exits 77 (skipped).
 */
#include <signal.h>
#include <stdio.h>

#ifdef HAVE_BEV_OPENSSL

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>

#include "testutil.h"

#include <tide/libevent.h>

#define N (256u << 10)

static SSL_CTX *server_ctx, *client_ctx;

/* A self-signed certificate for a new P-256 key, and the two contexts. */
static void make_contexts(void) {
    EVP_PKEY *key = EVP_EC_gen("P-256");
    ck_assert_ptr_nonnull(key);
    X509 *x = X509_new();
    ck_assert_ptr_nonnull(x);
    ck_assert_int_eq(X509_set_version(x, 2), 1);
    ck_assert_int_eq(ASN1_INTEGER_set(X509_get_serialNumber(x), 1), 1);
    ck_assert_ptr_nonnull(X509_gmtime_adj(X509_getm_notBefore(x), 0));
    ck_assert_ptr_nonnull(X509_gmtime_adj(X509_getm_notAfter(x), 3600));
    ck_assert_int_eq(X509_set_pubkey(x, key), 1);
    X509_NAME *name = X509_get_subject_name(x);
    ck_assert_int_eq(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                                (const unsigned char *)"tide",
                                                -1, -1, 0),
                     1);
    ck_assert_int_eq(X509_set_issuer_name(x, name), 1);
    ck_assert_int_gt(X509_sign(x, key, EVP_sha256()), 0);
    server_ctx = SSL_CTX_new(TLS_server_method());
    client_ctx = SSL_CTX_new(TLS_client_method());
    ck_assert_ptr_nonnull(server_ctx);
    ck_assert_ptr_nonnull(client_ctx);
    ck_assert_int_eq(SSL_CTX_use_certificate(server_ctx, x), 1);
    ck_assert_int_eq(SSL_CTX_use_PrivateKey(server_ctx, key), 1);
    SSL_CTX_set_verify(client_ctx, SSL_VERIFY_NONE, NULL);
    X509_free(x);
    EVP_PKEY_free(key);
}

static void free_contexts(void) {
    SSL_CTX_free(server_ctx);
    SSL_CTX_free(client_ctx);
}

/* The server: an OpenSSL bufferevent that echoes what it reads. */
typedef struct server {
    struct bufferevent *bev;
    int events; /* BEV_EVENT_* seen */
} server_t;

static void server_read(struct bufferevent *bev, void *arg) {
    (void)arg;
    bufferevent_write_buffer(bev, bufferevent_get_input(bev));
}

static void server_event(struct bufferevent *bev, short what, void *arg) {
    (void)bev;
    server_t *srv = arg;
    srv->events |= what;
}

typedef struct fx {
    tide_exec_t *ex;
    struct event_base *base;
    server_t srv;
    struct bufferevent *cbev;
    tide_bevstream_t *bs;
    tide_stream_t *s;
} fx_t;

static void fx_open(fx_t *f) {
    make_contexts();
    f->ex = t_exec_new();
    f->base = tide_exec_base(f->ex);
    int sv[2];
    t_socketpair(sv);
    memset(&f->srv, 0, sizeof f->srv);
    f->srv.bev = bufferevent_openssl_socket_new(
        f->base, sv[1], SSL_new(server_ctx), BUFFEREVENT_SSL_ACCEPTING,
        BEV_OPT_CLOSE_ON_FREE);
    ck_assert_ptr_nonnull(f->srv.bev);
    bufferevent_setcb(f->srv.bev, server_read, NULL, server_event, &f->srv);
    ck_assert_int_eq(bufferevent_enable(f->srv.bev, EV_READ | EV_WRITE), 0);
    /* The application's TLS connection, as it would have made it. */
    f->cbev = bufferevent_openssl_socket_new(
        f->base, sv[0], SSL_new(client_ctx), BUFFEREVENT_SSL_CONNECTING,
        BEV_OPT_CLOSE_ON_FREE);
    ck_assert_ptr_nonnull(f->cbev);
    ck_assert_int_eq(tide_bevstream_new(&f->bs, f->ex, f->cbev, TIDE_BEV_OWN),
                     0);
    f->s = tide_bevstream_stream(f->bs);
}

static void fx_close(fx_t *f) {
    tide_bevstream_free(f->bs);
    if (f->srv.bev != NULL)
        bufferevent_free(f->srv.bev);
    t_exec_free_clean(f->ex);
    free_contexts();
}

static unsigned char pat(size_t i) { return (unsigned char)(i * 13 + i / 509); }

/* Write N bytes and read their echo back. */
typedef struct echo {
    tide_future_t fut;
    tide_async_t co;
    tide_stream_t *s;
    unsigned char *out, *in;
    tide_write_all_t wa;
    tide_read_exact_t rx;
} echo_t;

static tide_poll_t echo_poll(tide_future_t *f, tide_cx_t *cx) {
    echo_t *e = TIDE_CONTAINER_OF(f, echo_t, fut);
    TIDE_BEGIN(&e->co);
    TIDE_AWAIT(&e->co, cx, tide_write_all(&e->wa, e->s, e->out, N));
    ck_assert_int_eq(tide_async_result(&e->co), (intptr_t)N);
    TIDE_AWAIT(&e->co, cx, tide_read_exact(&e->rx, e->s, e->in, N));
    TIDE_END(&e->co, f, tide_async_result(&e->co));
}

static void echo_drop(tide_future_t *f) {
    tide_async_drop(&TIDE_CONTAINER_OF(f, echo_t, fut)->co);
}

static const tide_future_vtable_t echo_vt = {echo_poll, echo_drop};

static void echo_through(fx_t *f) {
    echo_t *e = calloc(1, sizeof *e);
    ck_assert_ptr_nonnull(e);
    e->s = f->s;
    e->out = malloc(N);
    e->in = calloc(1, N);
    ck_assert_ptr_nonnull(e->out);
    ck_assert_ptr_nonnull(e->in);
    for (size_t i = 0; i < N; i++)
        e->out[i] = pat(i);
    tide_future_init(&e->fut, &echo_vt);
    ck_assert_int_eq(t_run(f->ex, &e->fut), (intptr_t)N);
    ck_assert_msg(memcmp(e->in, e->out, N) == 0, "the echo differs");
    free(e->out);
    free(e->in);
    free(e);
}

/* Read once: the result of one tide_read. */
static intptr_t read_once(fx_t *f) {
    char buf[64];
    tide_read_t rd;
    return t_run(f->ex, tide_read(&rd, f->s, buf, sizeof buf));
}

/* 256 KiB each way through the handshake, the records and the stream's
 * watermarks, byte-exact. */
START_TEST(test_openssl_bev_echo) {
    fx_t f;
    fx_open(&f);
    echo_through(&f);
    ck_assert_int_eq(f.srv.events & (BEV_EVENT_ERROR | BEV_EVENT_EOF), 0);
    fx_close(&f);
}
END_TEST

/* The server ends with close_notify: the stream reads end of stream. */
START_TEST(test_openssl_bev_close_notify_is_eof) {
    fx_t f;
    fx_open(&f);
    echo_through(&f);
    SSL *ssl = bufferevent_openssl_get_ssl(f.srv.bev);
    ck_assert_int_ge(SSL_shutdown(ssl), 0);
    bufferevent_free(f.srv.bev);
    f.srv.bev = NULL;
    ck_assert_int_eq(read_once(&f), 0);
    fx_close(&f);
}
END_TEST

/* The server's socket closes without close_notify: an error, not an end
 * of stream (a truncation). */
START_TEST(test_openssl_bev_truncation) {
    fx_t f;
    fx_open(&f);
    echo_through(&f);
    bufferevent_free(f.srv.bev);
    f.srv.bev = NULL;
    intptr_t r = read_once(&f);
    ck_assert_msg(r < 0, "a truncated TLS stream read %jd", (intmax_t)r);
    fx_close(&f);
}
END_TEST

static Suite *bev_openssl_suite(void) {
    Suite *s = suite_create("bev_openssl");
    TCase *tc = tcase_create("bevstream");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_openssl_bev_echo);
    tcase_add_test(tc, test_openssl_bev_close_notify_is_eof);
    tcase_add_test(tc, test_openssl_bev_truncation);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    /* OpenSSL's socket BIO writes with write(2): a write to a reset peer
     * raises SIGPIPE, which an application using bufferevent_openssl
     * ignores, as libevent's documentation asks. */
    signal(SIGPIPE, SIG_IGN);
    return t_run_suite(bev_openssl_suite());
}

#else

int main(void) {
    puts("check_bev_openssl: skipped: tide was configured without OpenSSL "
         "or without libevent_openssl (pkg-config libevent_openssl)");
    return 77;
}

#endif
