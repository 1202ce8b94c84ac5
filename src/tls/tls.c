/*
 * src/tls/tls.c: TLS over any tide stream (tide/tls.h), with OpenSSL 3.
 *
 * OpenSSL reads and writes one end of a BIO pair (`ssl`'s BIO); we hold
 * the other end (`net`). Ciphertext moves between `net` and the inner
 * stream without a copy of ours: BIO_nread0 lends the bytes OpenSSL wrote,
 * which go straight to the inner stream's poll_write, and BIO_nwrite0
 * lends the free space that the inner stream's poll_read fills. The pair's
 * two buffers are allocated once, by BIO_new_bio_pair in tide_tls_new.
 *
 * Each SSL call that answers WANT_READ or WANT_WRITE is followed by
 * "pumping": push what OpenSSL wrote (a reader too: the bytes may be a
 * handshake message or a write's leftovers), and read once from the inner
 * stream if OpenSSL wants to read. When the inner stream answers PENDING,
 * an internal waiter (in_r or in_w) waits on its queue with the stream's
 * own waker (`wk`), which wakes both TLS queues: whoever waits on the TLS
 * stream polls again and pumps again. The internal waiters leave the
 * inner queues when a pump completes (DONE: the inner stream keeps its
 * event armed for the next message) and when the last TLS waiter is
 * dropped while pending (CANCELLED: the inner stream may stop watching).
 *
 * Writes never leave OpenSSL in the middle of a record: SSL_write is
 * called only when the pair's outgoing buffer has room for the whole
 * encrypted record (at most one record per write), so it never answers
 * WANT_WRITE, which would oblige the caller to retry with the same bytes
 * (and make a dropped write corrupt the stream).
 *
 * OpenSSL's error queue is per thread and shared with the application:
 * it is cleared before each SSL call whose errors we read, and after we
 * read them.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "io/internal.h"
#include "tide/tls.h"

/* The plaintext of one write: one record (TLS's maximum fragment). */
#define TLS_RECORD 16384u
/* Room a record of up to TLS_RECORD bytes takes beyond its plaintext, with
 * margin: the header, an explicit IV, a MAC or tag, padding; more records
 * if the peer asked for a smaller maximum fragment (RFC 6066). */
#define TLS_OVERHEAD 4096u

_Static_assert(TIDE_TLS_BUF_SIZE >= 2 * (TLS_RECORD + TLS_OVERHEAD),
               "the pair's buffers hold two records");

struct tide_tls_config {
    SSL_CTX *ctx;
    tide_tls_verify_t verify;
    unsigned char *alpn; /* the wire format: length-prefixed names */
    size_t alpn_len;
};

struct tide_tls {
    tide_stream_t stream;
    tide_waitq_t rq, wq;
    tide_stream_t *inner;
    tide_tls_config_t *cfg;
    SSL *ssl;
    BIO *net;              /* our end of the pair */
    tide_wakeable_t wk;    /* what in_r and in_w wake: both TLS queues */
    tide_waker_t waker;    /* a waker on wk (no reference counting) */
    tide_waiter_t in_r;    /* on inner->rq while a pump waits to read */
    tide_waiter_t in_w;    /* on inner->wq while a pump waits to write */
    int err;               /* the sticky error, or 0 */
    unsigned flags;        /* TIDE_TLS_ALLOW_TRUNCATION */
    unsigned long ssl_err; /* OpenSSL's error behind err, or 0 */
    bool verifying;        /* we verify the peer's certificate */
    bool eof;              /* the inner stream ended */
    bool shut_sent;        /* SSL_shutdown was called (close_notify) */
    bool inner_shut;       /* the inner stream's shutdown completed */
};

/* the internal waker ------------------------------------------------------ */

static struct tide_tls *tls_of_wk(const tide_wakeable_t *w) {
    return TIDE_CONTAINER_OF(w, struct tide_tls, wk);
}

static tide_waker_t wk_clone(const tide_wakeable_t *w) {
    return TIDE_WAKER(w); /* lives as long as the stream: nothing to count */
}

static void wk_wake_by_ref(const tide_wakeable_t *w) {
    struct tide_tls *t = tls_of_wk(w);
    tide_waitq_wake_all(&t->rq);
    tide_waitq_wake_all(&t->wq);
}

static void wk_drop(const tide_wakeable_t *w) { (void)w; }

static const tide_waker_vtable_t wk_vtable = {wk_clone, wk_wake_by_ref,
                                              wk_wake_by_ref, wk_drop};

/* Nobody waits on the TLS stream any more (the last waiter was dropped
 * while pending): stop waiting on the inner stream. */
static void unpark_all_if_idle(struct tide_tls *t) {
    if (tide_waitq_is_empty(&t->rq) && tide_waitq_is_empty(&t->wq)) {
        tide_waiter_leave(&t->in_r, TIDE_WAITQ_CANCELLED);
        tide_waiter_leave(&t->in_w, TIDE_WAITQ_CANCELLED);
    }
}

static void rq_abandoned(tide_waitq_t *q) {
    unpark_all_if_idle(TIDE_CONTAINER_OF(q, struct tide_tls, rq));
}

static void wq_abandoned(tide_waitq_t *q) {
    unpark_all_if_idle(TIDE_CONTAINER_OF(q, struct tide_tls, wq));
}

static const tide_waitq_ops_t rq_ops = TIDE_WAITQ_OPS(rq_abandoned);
static const tide_waitq_ops_t wq_ops = TIDE_WAITQ_OPS(wq_abandoned);

static void park(struct tide_tls *t, tide_waiter_t *w, tide_waitq_t *q) {
    if (q != NULL) /* a queue-less inner stream woke the task itself */
        tide_waiter_wait(w, q, &t->waker);
}

static void unpark(tide_waiter_t *w) {
    if (tide_waiter_is_waiting(w))
        tide_waiter_leave(w, TIDE_WAITQ_DONE);
}

/* errors ------------------------------------------------------------------ */

static int fail(struct tide_tls *t, int err) {
    if (t->err == 0)
        t->err = err;
    return t->err;
}

/* The inner stream was freed under us (its queue closed on a waiter of
 * ours): never touch it again. */
static bool inner_gone(struct tide_tls *t) {
    if (t->err != 0)
        return true;
    if (tide_waiter_error(&t->in_r) != 0 || tide_waiter_error(&t->in_w) != 0) {
        fail(t, -EBADF);
        return true;
    }
    return false;
}

static int pump_out(struct tide_tls *t, tide_cx_t *cx);

/* An SSL call failed with SSL_ERROR_SSL (or _SYSCALL, which a memory BIO
 * cannot cause but OpenSSL may report for a broken state): record why,
 * let the alert OpenSSL queued reach the peer if the inner stream takes
 * it now, and make it sticky. */
static int fail_ssl(struct tide_tls *t, tide_cx_t *cx) {
    unsigned long e = ERR_peek_last_error();
    long v = SSL_get_verify_result(t->ssl);
    bool ssl_lib = ERR_GET_LIB(e) == ERR_LIB_SSL;
    bool rejected =
        (ssl_lib &&
         (ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED ||
          ERR_GET_REASON(e) == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE)) ||
        (t->verifying && v != X509_V_OK);
    ERR_clear_error();
    if (t->err == 0) {
        (void)pump_out(t, cx); /* best effort: the alert */
        t->ssl_err = e;
    }
    return fail(t, rejected ? -EKEYREJECTED : -EPROTO);
}

/* pumps -------------------------------------------------------------------- */

/* Push what OpenSSL wrote to the inner stream. Returns 0 when all of it
 * was taken, 1 when the inner stream is full (in_w waits on it), or the
 * sticky error. */
static int pump_out(struct tide_tls *t, tide_cx_t *cx) {
    for (;;) {
        char *p;
        int n = BIO_nread0(t->net, &p);
        if (n <= 0) {
            unpark(&t->in_w);
            return t->err;
        }
        if (inner_gone(t))
            return t->err;
        ssize_t w;
        if (tide_stream_poll_write(t->inner, cx, p, (size_t)n, &w) ==
            TIDE_PENDING) {
            park(t, &t->in_w, t->inner->wq);
            return 1;
        }
        if (w <= 0) {
            unpark(&t->in_w);
            return fail(t, w < 0 ? (int)w : -EIO);
        }
        BIO_nread(t->net, &p, (int)w);
    }
}

enum { PUMP_EOF = 0, PUMP_MORE = 1, PUMP_PENDING = 2 };

/* Read once from the inner stream into the pair. PUMP_MORE: OpenSSL has
 * new bytes; PUMP_EOF: the inner stream ended; PUMP_PENDING: in_r waits
 * on it; or the sticky error. */
static int pump_in(struct tide_tls *t, tide_cx_t *cx) {
    if (t->err != 0)
        return t->err;
    if (t->eof)
        return PUMP_EOF;
    char *p;
    int room = BIO_nwrite0(t->net, &p);
    if (room <= 0)
        return PUMP_MORE; /* full: OpenSSL has plenty to read already */
    if (inner_gone(t))
        return t->err;
    ssize_t n;
    if (tide_stream_poll_read(t->inner, cx, p, (size_t)room, &n) ==
        TIDE_PENDING) {
        park(t, &t->in_r, t->inner->rq);
        return PUMP_PENDING;
    }
    unpark(&t->in_r);
    if (n < 0)
        return fail(t, (int)n);
    if (n == 0) {
        t->eof = true;
        return PUMP_EOF;
    }
    BIO_nwrite(t->net, &p, (int)n);
    return PUMP_MORE;
}

enum { DRIVE_PENDING = 0, DRIVE_RETRY = 1, DRIVE_EOF = 2, DRIVE_CLOSED = 3 };

/* An SSL call answered r (<= 0): do what it asks. DRIVE_RETRY: call it
 * again; DRIVE_PENDING: the inner stream will wake us; DRIVE_EOF: it
 * wants bytes and the inner stream has ended; DRIVE_CLOSED: the peer's
 * close_notify; or the sticky error. */
static int drive(struct tide_tls *t, tide_cx_t *cx, int r) {
    int o, i;
    switch (SSL_get_error(t->ssl, r)) {
    case SSL_ERROR_WANT_READ:
        o = pump_out(t, cx);
        if (o < 0)
            return o;
        i = pump_in(t, cx);
        if (i < 0)
            return i;
        return i == PUMP_MORE  ? DRIVE_RETRY
               : i == PUMP_EOF ? DRIVE_EOF
                               : DRIVE_PENDING;
    case SSL_ERROR_WANT_WRITE:
        o = pump_out(t, cx);
        if (o < 0)
            return o;
        return o == 0 ? DRIVE_RETRY : DRIVE_PENDING;
    case SSL_ERROR_ZERO_RETURN:
        ERR_clear_error();
        return DRIVE_CLOSED;
    default:
        return fail_ssl(t, cx);
    }
}

/* the handshake ------------------------------------------------------------ */

tide_poll_t tide_tls_poll_handshake(tide_tls_t *t, tide_cx_t *cx, int *out) {
    for (;;) {
        if (t->err != 0) {
            *out = t->err;
            return TIDE_READY;
        }
        if (SSL_is_init_finished(t->ssl)) {
            /* our last flight (a client's Finished, a server's tickets)
             * reaches the inner stream before we call it done */
            int o = pump_out(t, cx);
            if (o == 1)
                return TIDE_PENDING;
            *out = o;
            return TIDE_READY;
        }
        ERR_clear_error();
        int r = SSL_do_handshake(t->ssl);
        if (r == 1)
            continue;
        int d = drive(t, cx, r);
        if (d == DRIVE_PENDING)
            return TIDE_PENDING;
        if (d == DRIVE_EOF || d == DRIVE_CLOSED)
            d = fail(t, -ECONNABORTED);
        if (d < 0) {
            *out = d;
            return TIDE_READY;
        }
    }
}

static tide_poll_t hs_poll(tide_future_t *f, tide_cx_t *cx) {
    tide_tls_handshake_t *op = TIDE_CONTAINER_OF(f, tide_tls_handshake_t, fut);
    TIDE__IO_GONE(&op->w, f);
    int rc;
    if (tide_tls_poll_handshake(op->tls, cx, &rc) == TIDE_PENDING) {
        tide_waiter_wait(&op->w, &op->tls->rq, cx->waker);
        return TIDE_PENDING;
    }
    tide__io_done(&op->w);
    f->result = rc;
    return TIDE_READY;
}

static void hs_drop(tide_future_t *f) {
    tide_tls_handshake_t *op = TIDE_CONTAINER_OF(f, tide_tls_handshake_t, fut);
    tide__io_cancel(&op->w);
}

static const tide_future_vtable_t hs_vt = {hs_poll, hs_drop};

tide_future_t *tide_tls_handshake(tide_tls_handshake_t *op, tide_tls_t *t) {
    op->tls = t;
    tide_waiter_init(&op->w);
    return tide_future_init(&op->fut, &hs_vt);
}

bool tide_tls_handshake_done(const tide_tls_t *t) {
    return SSL_is_init_finished(t->ssl);
}

/* Before a read, a write or a shutdown: the sticky error if there is one,
 * else the handshake if it is not done. 1 to go on, 0 pending, or an
 * error. */
static int ensure_handshake(struct tide_tls *t, tide_cx_t *cx) {
    if (t->err != 0)
        return t->err; /* sticky: before any handshake state */
    if (SSL_is_init_finished(t->ssl))
        return 1;
    int rc;
    if (tide_tls_poll_handshake(t, cx, &rc) == TIDE_PENDING)
        return 0;
    return rc < 0 ? rc : 1;
}

/* the stream --------------------------------------------------------------- */

static struct tide_tls *tls_of(tide_stream_t *s) {
    return TIDE_CONTAINER_OF(s, struct tide_tls, stream);
}

static tide_poll_t tls_read(tide_stream_t *s, tide_cx_t *cx, void *buf,
                            size_t len, ssize_t *out) {
    struct tide_tls *t = tls_of(s);
    if (len == 0) {
        *out = 0;
        return TIDE_READY;
    }
    for (;;) {
        int h = ensure_handshake(t, cx);
        if (h == 0)
            return TIDE_PENDING;
        if (h < 0) {
            *out = h;
            return TIDE_READY;
        }
        ERR_clear_error();
        size_t n;
        if (SSL_read_ex(t->ssl, buf, len, &n) == 1) {
            /* whatever the read made OpenSSL answer (a key update) goes
             * out now if it can; if not, in_w wakes us to push it */
            (void)pump_out(t, cx);
            *out = (ssize_t)n;
            return TIDE_READY;
        }
        int d = drive(t, cx, 0);
        switch (d) {
        case DRIVE_RETRY:
            continue;
        case DRIVE_PENDING:
            return TIDE_PENDING;
        case DRIVE_CLOSED:
            *out = 0;
            return TIDE_READY;
        case DRIVE_EOF:
            *out = (t->flags & TIDE_TLS_ALLOW_TRUNCATION) ? 0 : -ECONNABORTED;
            return TIDE_READY;
        default:
            *out = d;
            return TIDE_READY;
        }
    }
}

static tide_poll_t tls_write(tide_stream_t *s, tide_cx_t *cx, const void *buf,
                             size_t len, ssize_t *out) {
    struct tide_tls *t = tls_of(s);
    if (len == 0) {
        *out = 0;
        return TIDE_READY;
    }
    for (;;) {
        if (t->err != 0) {
            *out = t->err;
            return TIDE_READY;
        }
        if (t->shut_sent) {
            *out = -EPIPE;
            return TIDE_READY;
        }
        int h = ensure_handshake(t, cx);
        if (h == 0)
            return TIDE_PENDING;
        if (h < 0) {
            *out = h;
            return TIDE_READY;
        }
        size_t n = len < TLS_RECORD ? len : TLS_RECORD;
        if (BIO_ctrl_get_write_guarantee(SSL_get_wbio(t->ssl)) <
            n + TLS_OVERHEAD) {
            int o = pump_out(t, cx);
            if (o < 0) {
                *out = o;
                return TIDE_READY;
            }
            if (o == 1)
                return TIDE_PENDING;
            /* the buffer is empty now: room for two records */
        }
        ERR_clear_error();
        size_t w;
        if (SSL_write_ex(t->ssl, buf, n, &w) == 1) {
            /* the bytes are taken: report them even if the push fails
             * (the error is sticky: the next operation answers it) */
            (void)pump_out(t, cx);
            *out = (ssize_t)w;
            return TIDE_READY;
        }
        int d = drive(t, cx, 0);
        if (d == DRIVE_RETRY)
            continue;
        if (d == DRIVE_PENDING)
            return TIDE_PENDING;
        if (d == DRIVE_EOF || d == DRIVE_CLOSED)
            d = -EPIPE; /* OpenSSL wanted to read for a write: not here */
        *out = d;
        return TIDE_READY;
    }
}

static tide_poll_t tls_flush(tide_stream_t *s, tide_cx_t *cx, int *out) {
    struct tide_tls *t = tls_of(s);
    int o = pump_out(t, cx);
    if (o == 1)
        return TIDE_PENDING;
    if (o < 0 || inner_gone(t)) {
        *out = t->err != 0 ? t->err : o;
        return TIDE_READY;
    }
    if (tide_stream_poll_flush(t->inner, cx, out) == TIDE_PENDING) {
        park(t, &t->in_w, t->inner->wq);
        return TIDE_PENDING;
    }
    unpark(&t->in_w);
    return TIDE_READY;
}

static tide_poll_t tls_shutdown(tide_stream_t *s, tide_cx_t *cx, int *out) {
    struct tide_tls *t = tls_of(s);
    if (t->inner_shut) {
        *out = 0;
        return TIDE_READY;
    }
    while (!t->shut_sent) {
        int h = ensure_handshake(t, cx);
        if (h == 0)
            return TIDE_PENDING;
        if (h < 0) {
            *out = h;
            return TIDE_READY;
        }
        ERR_clear_error();
        int r = SSL_shutdown(t->ssl);
        if (r >= 0) { /* 0: sent, the peer's not yet seen; 1: both */
            t->shut_sent = true;
            break;
        }
        int d = drive(t, cx, r);
        if (d == DRIVE_PENDING)
            return TIDE_PENDING;
        if (d == DRIVE_CLOSED || d == DRIVE_EOF) {
            t->shut_sent = true; /* nothing more can be said */
            break;
        }
        if (d < 0) {
            *out = d;
            return TIDE_READY;
        }
    }
    int o = pump_out(t, cx);
    if (o == 1)
        return TIDE_PENDING;
    if (o < 0 || inner_gone(t)) {
        *out = t->err != 0 ? t->err : o;
        return TIDE_READY;
    }
    if (tide_stream_poll_shutdown(t->inner, cx, out) == TIDE_PENDING) {
        park(t, &t->in_w, t->inner->wq);
        return TIDE_PENDING;
    }
    unpark(&t->in_w);
    if (*out == 0)
        t->inner_shut = true;
    return TIDE_READY;
}

static const tide_stream_vt_t tls_vt = {
    .poll_read = tls_read,
    .poll_write = tls_write,
    .poll_writev = NULL, /* one record per write: the first buffer */
    .poll_flush = tls_flush,
    .poll_shutdown = tls_shutdown,
};

/* config ------------------------------------------------------------------- */

static int alpn_select(SSL *ssl, const unsigned char **out,
                       unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg) {
    (void)ssl;
    tide_tls_config_t *cfg = arg;
    unsigned char *sel;
    if (cfg->alpn_len == 0)
        return SSL_TLSEXT_ERR_NOACK;
    if (SSL_select_next_proto(&sel, outlen, cfg->alpn, (unsigned)cfg->alpn_len,
                              in, inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL; /* RFC 7301: no_application_protocol */
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

int tide_tls_config_new(tide_tls_config_t **out) {
    if (out == NULL)
        return -EINVAL;
    tide_tls_config_t *cfg = tide__calloc(1, sizeof *cfg);
    if (cfg == NULL)
        return -ENOMEM;
    cfg->ctx = SSL_CTX_new(TLS_method());
    if (cfg->ctx == NULL)
        goto fail;
    if (SSL_CTX_set_min_proto_version(cfg->ctx, TLS1_2_VERSION) != 1)
        goto fail;
    SSL_CTX_set_options(cfg->ctx, SSL_OP_NO_RENEGOTIATION);
    /* the session cache of a server that verifies clients needs a
     * context, or resumption fails */
    static const unsigned char sid_ctx[] = "tide";
    if (SSL_CTX_set_session_id_context(cfg->ctx, sid_ctx, sizeof sid_ctx - 1) !=
        1)
        goto fail;
    /* no system CA store is not an error: a CA file may come */
    (void)SSL_CTX_set_default_verify_paths(cfg->ctx);
    SSL_CTX_set_alpn_select_cb(cfg->ctx, alpn_select, cfg);
    ERR_clear_error();
    cfg->verify = TIDE_TLS_VERIFY_DEFAULT;
    *out = cfg;
    return 0;
fail:
    ERR_clear_error();
    SSL_CTX_free(cfg->ctx);
    tide__free(cfg);
    return -ENOMEM;
}

void tide_tls_config_free(tide_tls_config_t *cfg) {
    if (cfg == NULL)
        return;
    SSL_CTX_free(cfg->ctx);
    tide__free(cfg->alpn);
    tide__free(cfg);
}

/* -errno if path cannot be read, else 0 (OpenSSL's own errors say only
 * "system lib"). */
static int readable(const char *path) {
    return access(path, R_OK) == 0 ? 0 : -errno;
}

int tide_tls_config_set_cert_file(tide_tls_config_t *cfg, const char *cert_file,
                                  const char *key_file) {
    if (cfg == NULL || cert_file == NULL || key_file == NULL)
        return -EINVAL;
    int rc = readable(cert_file);
    if (rc == 0)
        rc = readable(key_file);
    if (rc < 0)
        return rc;
    if (SSL_CTX_use_certificate_chain_file(cfg->ctx, cert_file) != 1 ||
        SSL_CTX_use_PrivateKey_file(cfg->ctx, key_file, SSL_FILETYPE_PEM) !=
            1 ||
        SSL_CTX_check_private_key(cfg->ctx) != 1)
        rc = -EINVAL;
    ERR_clear_error();
    return rc;
}

int tide_tls_config_set_ca_file(tide_tls_config_t *cfg, const char *ca_file) {
    if (cfg == NULL || ca_file == NULL)
        return -EINVAL;
    int rc = readable(ca_file);
    if (rc < 0)
        return rc;
    if (SSL_CTX_load_verify_locations(cfg->ctx, ca_file, NULL) != 1)
        rc = -EINVAL;
    ERR_clear_error();
    return rc;
}

int tide_tls_config_set_verify(tide_tls_config_t *cfg, tide_tls_verify_t mode) {
    if (cfg == NULL || (unsigned)mode > TIDE_TLS_VERIFY_REQUIRE)
        return -EINVAL;
    cfg->verify = mode;
    return 0;
}

int tide_tls_config_set_alpn(tide_tls_config_t *cfg, const char *const *protos,
                             size_t n) {
    if (cfg == NULL || (protos == NULL && n > 0))
        return -EINVAL;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = protos[i] == NULL ? 0 : strlen(protos[i]);
        if (l == 0 || l > 255)
            return -EINVAL;
        total += 1 + l;
    }
    if (total > 0xffff)
        return -EINVAL;
    unsigned char *wire = NULL;
    if (total > 0) {
        wire = tide__malloc(total);
        if (wire == NULL)
            return -ENOMEM;
        size_t off = 0;
        for (size_t i = 0; i < n; i++) {
            size_t l = strlen(protos[i]);
            wire[off++] = (unsigned char)l;
            memcpy(wire + off, protos[i], l);
            off += l;
        }
    }
    /* returns 0 on success, unlike the rest of OpenSSL */
    if (SSL_CTX_set_alpn_protos(cfg->ctx, wire, (unsigned)total) != 0) {
        ERR_clear_error();
        tide__free(wire);
        return -ENOMEM;
    }
    tide__free(cfg->alpn);
    cfg->alpn = wire;
    cfg->alpn_len = total;
    return 0;
}

struct ssl_ctx_st *tide_tls_config_ssl_ctx(tide_tls_config_t *cfg) {
    return cfg->ctx;
}

/* streams ------------------------------------------------------------------ */

static bool is_ip_literal(const char *host) {
    unsigned char a[16];
    return inet_pton(AF_INET, host, a) == 1 ||
           inet_pton(AF_INET6, host, a) == 1;
}

int tide_tls_new(tide_tls_t **out, tide_tls_config_t *cfg, tide_stream_t *inner,
                 tide_tls_role_t role, const char *host, unsigned flags) {
    if (out == NULL || cfg == NULL || inner == NULL ||
        (role != TIDE_TLS_CLIENT && role != TIDE_TLS_SERVER) ||
        (flags & ~(unsigned)TIDE_TLS_ALLOW_TRUNCATION))
        return -EINVAL;
    bool client = role == TIDE_TLS_CLIENT;
    bool verifying = client ? cfg->verify != TIDE_TLS_VERIFY_NONE
                            : (cfg->verify == TIDE_TLS_VERIFY_PEER ||
                               cfg->verify == TIDE_TLS_VERIFY_REQUIRE);
    if (client && verifying && host == NULL)
        return -EINVAL;
    int rc = -ENOMEM;
    struct tide_tls *t = tide__calloc(1, sizeof *t);
    if (t == NULL)
        return -ENOMEM;
    BIO *ours = NULL;
    t->ssl = SSL_new(cfg->ctx);
    if (t->ssl == NULL)
        goto fail;
    if (BIO_new_bio_pair(&ours, TIDE_TLS_BUF_SIZE, &t->net,
                         TIDE_TLS_BUF_SIZE) != 1)
        goto fail;
    SSL_set_bio(t->ssl, ours, ours); /* the SSL owns its end now */
    if (client) {
        SSL_set_connect_state(t->ssl);
        if (host != NULL) {
            rc = -EINVAL;
            if (is_ip_literal(host)) {
                if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl),
                                                  host) != 1)
                    goto fail;
            } else if (SSL_set_tlsext_host_name(t->ssl, host) != 1 ||
                       SSL_set1_host(t->ssl, host) != 1) {
                goto fail;
            }
        }
        SSL_set_verify(t->ssl, verifying ? SSL_VERIFY_PEER : SSL_VERIFY_NONE,
                       NULL);
    } else {
        SSL_set_accept_state(t->ssl);
        int mode = SSL_VERIFY_NONE;
        if (cfg->verify == TIDE_TLS_VERIFY_PEER)
            mode = SSL_VERIFY_PEER;
        else if (cfg->verify == TIDE_TLS_VERIFY_REQUIRE)
            mode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
        SSL_set_verify(t->ssl, mode, NULL);
    }
    t->inner = inner;
    t->cfg = cfg;
    t->flags = flags;
    t->verifying = verifying;
    t->wk.vtable = &wk_vtable;
    t->waker = TIDE_WAKER(&t->wk);
    tide_waiter_init(&t->in_r);
    tide_waiter_init(&t->in_w);
    tide_waitq_init(&t->rq, &rq_ops);
    tide_waitq_init(&t->wq, &wq_ops);
    tide_stream_init(&t->stream, &tls_vt, &t->rq, &t->wq);
    *out = t;
    return 0;
fail:
    ERR_clear_error();
    SSL_free(t->ssl); /* and `ours`, if it was given to it */
    BIO_free(t->net);
    tide__free(t);
    return rc;
}

void tide_tls_free(tide_tls_t *t) {
    if (t == NULL)
        return;
    /* off the inner queues first (harmless if the inner stream was freed
     * and its queue closed: the waiters are on no queue then) */
    tide_waiter_leave(&t->in_r, TIDE_WAITQ_CANCELLED);
    tide_waiter_leave(&t->in_w, TIDE_WAITQ_CANCELLED);
    tide_stream_close(&t->stream); /* waiters complete with -EBADF */
    SSL_free(t->ssl);
    BIO_free(t->net);
    tide__free(t);
}

tide_stream_t *tide_tls_stream(tide_tls_t *t) { return &t->stream; }

bool tide_tls_has_buffered_input(const tide_tls_t *t) {
    /* SSL_has_pending counts a partly read record (OpenSSL keeps its
     * bytes in the record layer's buffer); the pair may hold more */
    return SSL_has_pending(t->ssl) || BIO_ctrl_wpending(t->net) > 0;
}

const char *tide_tls_alpn(const tide_tls_t *t, size_t *len) {
    const unsigned char *p = NULL;
    unsigned int n = 0;
    SSL_get0_alpn_selected(t->ssl, &p, &n);
    *len = n;
    return n > 0 ? (const char *)p : NULL;
}

const char *tide_tls_version(const tide_tls_t *t) {
    return SSL_is_init_finished(t->ssl) ? SSL_get_version(t->ssl) : "unknown";
}

long tide_tls_verify_result(const tide_tls_t *t) {
    return SSL_get_verify_result(t->ssl);
}

const char *tide_tls_error_reason(const tide_tls_t *t) {
    if (t->err == -EKEYREJECTED) {
        long v = SSL_get_verify_result(t->ssl);
        if (v != X509_V_OK)
            return X509_verify_cert_error_string(v);
    }
    if (t->ssl_err == 0)
        return NULL;
    const char *r = ERR_reason_error_string(t->ssl_err);
    return r != NULL ? r : "unknown TLS error";
}

struct ssl_st *tide_tls_ssl(tide_tls_t *t) {
    return t->ssl;
}

int tide_tls_session_get(tide_tls_t *t, tide_tls_session_t **out) {
    if (t == NULL || out == NULL)
        return -EINVAL;
    SSL_SESSION *s = SSL_get1_session(t->ssl);
    if (s == NULL)
        return -ENOENT;
    if (!SSL_SESSION_is_resumable(s)) {
        SSL_SESSION_free(s);
        return -ENOENT;
    }
    *out = (tide_tls_session_t *)(void *)s;
    return 0;
}

int tide_tls_set_session(tide_tls_t *t, tide_tls_session_t *s) {
    if (t == NULL || s == NULL || SSL_is_server(t->ssl) ||
        SSL_in_before(t->ssl) == 0)
        return -EINVAL;
    int rc =
        SSL_set_session(t->ssl, (SSL_SESSION *)(void *)s) == 1 ? 0 : -EINVAL;
    ERR_clear_error();
    return rc;
}

void tide_tls_session_free(tide_tls_session_t *s) {
    SSL_SESSION_free((SSL_SESSION *)(void *)s);
}

bool tide_tls_session_reused(const tide_tls_t *t) {
    return SSL_session_reused(t->ssl) == 1;
}
