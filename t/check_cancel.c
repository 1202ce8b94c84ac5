/*
 * t/check_cancel.c: cancellation at every pending point, for every public
 * future, from one table.
 *
 * Each entry says how to set a future up, how to make progress possible
 * after it answered PENDING (feed: one byte to its peer, drain its peer, a
 * connection, a signal, or nothing but time), and what must hold after it
 * is dropped. For k = 1, 2, ... the future is polled by hand (a counting
 * waker) to its k-th PENDING and dropped there; then:
 *   - the waker holds no reference left over (nobody can wake us later),
 *   - no event is armed beyond those the entry's objects own
 *     (tide_exec_stats armed_events back to its value before the future),
 *   - nothing leaks (the fault shim's allocation counter after teardown,
 *     and ASan / valgrind),
 *   - cancel safety: for the cancel-safe futures no byte, connection,
 *     datagram or signal was lost: the next operation sees it; for the
 *     others exactly what the header documents was consumed or written
 *     (read_exact's op->done bytes, write_all's op->done bytes, ...).
 * The loop over k ends when the future completes before its k-th PENDING
 * (never-ending futures stop at max_k).
 *
 * A TLS stream's peer is a second tide_tls_t (the server) over the other
 * end of its socket pair, in the same executor: feed and verify drive it
 * by hand (srv_step), so that it leaves nothing armed between steps. The
 * certificates are made at start-up by t/tls_certs.sh; without an openssl
 * program the "tls" entries are skipped, and without TIDE_HAVE_TLS they
 * are not built.
 */
#include <netinet/in.h>
#include <signal.h>
#include <sys/un.h>

#include "testutil.h"
#include "fault/fault.h"
#include "tls_certs.h"
#include "reactor/internal.h" /* struct tide_fd: idle events */

#include <tide/net.h>
#include <tide/sync.h>
#include <tide/task.h>
#include <tide/fs.h>
#include <tide/libevent.h>
#include <tide/version.h>
#if TIDE_HAVE_TLS
#include <openssl/ssl.h> /* SSL_CTX_set_max_proto_version */
#include <tide/tls.h>
#endif

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>

#define GOT_MAX (4u << 20)
#define BIG 300000 /* bytes for the write futures: several socket buffers */

typedef struct cctx {
    tide_exec_t *ex;
    /* a socket pair: `a` is a tide stream under test, `peer` a raw
     * non-blocking descriptor the test feeds and drains */
    tide_unix_t *a;
    tide_stream_t *sa;
    int peer;
    /* a second pair, for copies */
    tide_unix_t *c;
    tide_stream_t *sc;
    int peer2;
    /* a raw registration */
    /* a bufferevent stream (sa, with peer) */
    tide_bevstream_t *bs;
    /* an evconnlistener as a listener (accepting on addr) */
    tide_evlistener_t *evl;
#if TIDE_HAVE_TLS
    /* TLS: the client ctls over `a` (sa is its stream), the server stls
     * over su, the pair's other end; the server is driven by the feed and
     * verify functions, in the same executor */
    tide_tls_config_t *ccfg, *scfg;
    tide_unix_t *su;
    tide_tls_t *ctls, *stls;
    bool srv_eof;            /* the server read the client's close_notify */
    const char *tls_version; /* what the handshake must agree on */
#endif
    tide_fd_t *reg;
    int regpeer;
    /* listeners, datagram sockets */
    tide_tcp_listener_t *tl;
    tide_unix_listener_t *ul;
    tide_udp_t *udp;
    tide_unix_dgram_t *ud;
    tide_addr_t addr; /* where to connect / send */
    char path[64];
    int rawfd; /* a raw datagram socket or client */
    int clients[64];
    int nclients;
    tide_signal_t sig;
    bool sig_on;
    tide_bufreader_t br;
    unsigned char brbuf[256];
    tide_linecodec_t lc;
    tide_lencodec_t lenc;
    tide_join_t join;
    tide_interval_t iv;
    bool iv_on;
    /* sync objects */
    tide_mpsc_t ch;
    bool ch_on;
    tide_notify_t nt;
    bool nt_on;
    tide_semaphore_t sem;
    bool sem_on;
    tide_oneshot_t os;
    bool os_on, os_sent;
    int sync_item, sync_out;

    uint64_t fed;     /* pattern bytes written to the peer(s) */
    uint64_t prefill; /* zero bytes written to fill a's send buffer */
    size_t ngot;      /* bytes drained from the peer */
    unsigned char *got;
    int dgrams; /* datagrams / connections / signals fed */
    unsigned char out[BIG];
    unsigned char buf[BIG];
    struct iovec iov[3];

    union {
        tide_read_t read;
        tide_write_t write;
        tide_writev_t writev;
        tide_read_exact_t read_exact;
        tide_write_all_t write_all;
        tide_writev_all_t writev_all;
        tide_flush_t flush;
        tide_shutdown_t shutdown;
        tide_copy_t copy;
        tide_copy_bidirectional_t bi;
        tide_bufreader_fill_t fill;
        tide_read_until_t until;
        tide_decode_t dec;
        tide_encode_t enc;
        tide_fd_wait_t wait;
        tide_fd_io_t io;
        tide_sleep_t sleep;
        tide_timeout_t timeout;
        tide_join_all_t join_all;
        tide_select_t select;
        tide_yield_t yield;
        tide_ready_t ready;
        tide_future_t pending;
        tide_tcp_accept_t tacc;
        tide_accept_t gacc;
        tide_serve_t serve;
        tide_tcp_connect_t tconn;
        tide_unix_accept_t uacc;
        tide_unix_connect_t uconn;
        tide_dgram_send_t dsend;
        tide_dgram_recv_t drecv;
        tide_mpsc_send_t msend;
        tide_mpsc_recv_t mrecv;
        tide_notified_t notified;
        tide_semaphore_acquire_t acquire;
        tide_oneshot_recv_t orecv;
        tide_token_wait_t tokw;
        tide_scope_wait_t scopew;
        tide_blocking_t blk;
        tide_fs_open_t fsopen;
        tide_evaccept_t evacc;
#if TIDE_HAVE_TLS
        tide_tls_handshake_t hs;
#endif
    } u;
    tide_file_t *file;
    tide_token_t tok;
    bool tok_on;
    tide_scope_t scope;
    bool scope_on;
    struct event tick; /* a host timer, so that the loop turns while a
                        * pool thread wakes a hand waker */
    bool tick_on;
    /* inner futures for the combinators */
    tide_read_t r1, r2;
    tide_sleep_t s1;
    tide_future_t *futs[2];
    t_io_t tio;
    unsigned char small[64];
} cctx_t;

typedef struct centry {
    const char *name;
    void (*setup)(cctx_t *);
    tide_future_t *(*make)(cctx_t *);
    void (*feed)(cctx_t *);
    /* after the drop; completed: the future answered READY before */
    void (*verify)(cctx_t *, tide_future_t *f, bool completed);
    int max_k; /* 0: until it completes */
} centry_t;

static unsigned char pat(uint64_t off) {
    return (unsigned char)('a' + (off * 7 + off / 13) % 26);
}

/* ------------------------------------------------------------------------
 * Resources
 * ------------------------------------------------------------------------ */

static void set_bufs(int fd, int size) {
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
}

static void pair_a(cctx_t *x) {
    int sv[2];
    t_socketpair(sv);
    set_bufs(sv[0], 8192);
    set_bufs(sv[1], 8192);
    ck_assert_int_eq(tide_unix_from_fd(&x->a, x->ex, sv[0]), 0);
    x->sa = tide_unix_stream(x->a);
    x->peer = sv[1];
}

/* The bufferevent stream: a socket bufferevent over one end of a pair;
 * sa is its stream, so the io entries' feed and verify serve it too. */
static void setup_bev(cctx_t *x) {
    int sv[2];
    t_socketpair(sv);
    struct bufferevent *bev = bufferevent_socket_new(
        tide_exec_base(x->ex), sv[0], BEV_OPT_CLOSE_ON_FREE);
    ck_assert_ptr_nonnull(bev);
    ck_assert_int_eq(tide_bevstream_new(&x->bs, x->ex, bev, TIDE_BEV_OWN), 0);
    x->sa = tide_bevstream_stream(x->bs);
    x->peer = sv[1];
}

static void pair_c(cctx_t *x) {
    int sv[2];
    t_socketpair(sv);
    ck_assert_int_eq(tide_unix_from_fd(&x->c, x->ex, sv[0]), 0);
    x->sc = tide_unix_stream(x->c);
    x->peer2 = sv[1];
}

/* Write `n` pattern bytes into fd (raw; the socket has room). */
static void feed_bytes(cctx_t *x, int fd, size_t n) {
    unsigned char b[64];
    ck_assert_uint_le(n, sizeof b);
    for (size_t i = 0; i < n; i++)
        b[i] = pat(x->fed + i);
    ck_assert_int_eq(write(fd, b, n), (ssize_t)n);
    x->fed += n;
}

#if TIDE_HAVE_TLS
/* The TLS server's side. It is polled by hand, a future at a time, until
 * it has done all it can now: as long as it pends, one non-blocking turn
 * of the loop lets the reactor say whether more is there (the last
 * waiter's drop disarms at once, so an event never outlives the step),
 * and the future is dropped pending once a turn woke nobody. Returns
 * true if f completed. */
static bool srv_step(cctx_t *x, tide_future_t *f) {
    t_hand_t h;
    t_hand_init(&h, x->ex);
    bool done = false;
    for (int i = 0; i < 100000; i++) {
        int w0 = t_woken(&h.count);
        if (t_hand_poll(&h, f) == TIDE_READY) {
            done = true;
            break;
        }
        event_base_loop(tide_exec_base(x->ex), EVLOOP_ONCE | EVLOOP_NONBLOCK);
        if (t_woken(&h.count) == w0)
            break;
    }
    tide_future_drop(f);
    t_hand_done(&h);
    return done;
}

/* The server writes `n` pattern bytes (one record) to the client. */
static void feed_tls(cctx_t *x, size_t n) {
    unsigned char b[64];
    ck_assert_uint_le(n, sizeof b);
    for (size_t i = 0; i < n; i++)
        b[i] = pat(x->fed + i);
    tide_write_all_t w;
    ck_assert_int_eq(
        t_run(x->ex, tide_write_all(&w, tide_tls_stream(x->stls), b, n)),
        (intptr_t)n);
    x->fed += n;
}

/* The server reads all the plaintext it can now into x->got; the
 * client's close_notify sets srv_eof. */
static void drain_tls(cctx_t *x) {
    while (!x->srv_eof) {
        ck_assert_uint_lt(x->ngot, GOT_MAX);
        tide_read_t r;
        if (!srv_step(x, tide_read(&r, tide_tls_stream(x->stls),
                                   x->got + x->ngot, GOT_MAX - x->ngot)))
            break;
        ck_assert_int_ge(r.fut.result, 0);
        if (r.fut.result == 0)
            x->srv_eof = true;
        x->ngot += (size_t)r.fut.result;
    }
}
#endif

/* The peer sends `n` pattern bytes: raw, or through the TLS server. */
static void feed_peer(cctx_t *x, size_t n) {
#if TIDE_HAVE_TLS
    if (x->stls != NULL) {
        feed_tls(x, n);
        return;
    }
#endif
    feed_bytes(x, x->peer, n);
}

static void feed1(cctx_t *x) { feed_peer(x, 1); }

/* Fill a's send buffer with zeros through its raw descriptor. */
static void prefill(cctx_t *x) {
    x->prefill = t_fill(tide_fd_get(tide_unix_fd(x->a)));
}

/* Drain everything the peer has into x->got. */
static void drain_peer(cctx_t *x) {
#if TIDE_HAVE_TLS
    if (x->stls != NULL) {
        drain_tls(x);
        return;
    }
#endif
    for (;;) {
        ck_assert_uint_lt(x->ngot, GOT_MAX);
        ssize_t n = read(x->peer, x->got + x->ngot, GOT_MAX - x->ngot);
        if (n <= 0)
            break;
        x->ngot += (size_t)n;
    }
}

static void nothing(cctx_t *x) { (void)x; }

/* After a write future: the peer got the prefill (zeros), then exactly
 * `written` bytes of x->out. */
static void check_written(cctx_t *x, size_t written) {
    drain_peer(x);
    ck_assert_uint_eq(x->ngot, x->prefill + written);
    for (size_t i = 0; i < x->prefill; i++)
        t_assert_int_eq_at(i, x->got[i], 0);
    ck_assert_int_eq(memcmp(x->got + x->prefill, x->out, written), 0);
}

/* The stream sa yields the fed bytes from offset `from` on, and no more
 * (nothing was consumed but what the caller says). */
static void check_rest(cctx_t *x, tide_stream_t *s, uint64_t from) {
    size_t n = (size_t)(x->fed - from);
    if (n == 0)
        return;
    tide_read_exact_t r;
    ck_assert_int_eq(t_run(x->ex, tide_read_exact(&r, s, x->buf, n)),
                     (intptr_t)n);
    for (size_t i = 0; i < n; i++)
        t_assert_int_eq_at(i, x->buf[i], pat(from + i));
}

static void fill_out(cctx_t *x) {
    for (size_t i = 0; i < sizeof x->out; i++)
        x->out[i] = (unsigned char)(i * 13 + (i >> 9));
}

/* A bufferevent stream whose output is full: the socket's send buffer
 * is filled with zeros through the descriptor, and TIDE_BEV_WRITE_HIGH
 * zeros wait in the output evbuffer (counted in prefill), so that writes,
 * flushes and shutdowns pend until the peer drains. */
static void setup_bev_write(cctx_t *x) {
    setup_bev(x);
    fill_out(x);
    struct bufferevent *bev = tide_bevstream_bev(x->bs);
    x->prefill = t_fill(bufferevent_getfd(bev));
    static const unsigned char zeros[TIDE_BEV_WRITE_HIGH];
    ck_assert_int_eq(
        evbuffer_add(bufferevent_get_output(bev), zeros, sizeof zeros), 0);
    x->prefill += sizeof zeros;
}

/* Let libevent send what the bufferevent queued, draining the peer as
 * it goes (bounded), so that the peer holds every byte accepted. */
static void bev_settle(cctx_t *x) {
    struct evbuffer *o = bufferevent_get_output(tide_bevstream_bev(x->bs));
    for (int i = 0; i < 100000 && evbuffer_get_length(o) > 0; i++) {
        drain_peer(x);
        event_base_loop(tide_exec_base(x->ex), EVLOOP_ONCE | EVLOOP_NONBLOCK);
    }
    ck_assert_uint_eq(evbuffer_get_length(o), 0);
}

/* ------------------------------------------------------------------------
 * io: single-stream futures
 * ------------------------------------------------------------------------ */

static tide_future_t *mk_read(cctx_t *x) {
    return tide_read(&x->u.read, x->sa, x->small, sizeof x->small);
}
static void vf_read(cctx_t *x, tide_future_t *f, bool done) {
    uint64_t consumed = done ? (uint64_t)f->result : 0;
    feed_peer(x, 3);
    check_rest(x, x->sa, consumed);
}

static tide_future_t *mk_read_exact(cctx_t *x) {
    return tide_read_exact(&x->u.read_exact, x->sa, x->small, 6);
}
static void vf_read_exact(cctx_t *x, tide_future_t *f, bool done) {
    size_t d = x->u.read_exact.done;
    ck_assert_uint_eq(d, done ? 6 : x->fed); /* every fed byte is in buf */
    for (size_t i = 0; i < d; i++)
        t_assert_int_eq_at(i, x->small[i], pat(i));
    if (done)
        ck_assert_int_eq(f->result, 6);
    feed_peer(x, 2);
    check_rest(x, x->sa, d);
}

static void setup_write(cctx_t *x) {
    pair_a(x);
    fill_out(x);
    prefill(x);
}

static tide_future_t *mk_write(cctx_t *x) {
    return tide_write(&x->u.write, x->sa, x->out, BIG);
}
static void vf_write(cctx_t *x, tide_future_t *f, bool done) {
    check_written(x, done ? (size_t)f->result : 0);
}

static tide_future_t *mk_writev(cctx_t *x) {
    x->iov[0] = (struct iovec){x->out, 10};
    x->iov[1] = (struct iovec){x->out + 10, 0};
    x->iov[2] = (struct iovec){x->out + 10, BIG - 10};
    return tide_writev(&x->u.writev, x->sa, x->iov, 3);
}

static tide_future_t *mk_write_all(cctx_t *x) {
    return tide_write_all(&x->u.write_all, x->sa, x->out, BIG);
}
static void vf_write_all(cctx_t *x, tide_future_t *f, bool done) {
    if (done)
        ck_assert_int_eq(f->result, BIG);
    ck_assert_uint_eq(x->u.write_all.done, done ? BIG : x->u.write_all.done);
    check_written(x, x->u.write_all.done);
}

static tide_future_t *mk_writev_all(cctx_t *x) {
    x->iov[0] = (struct iovec){x->out, 1000};
    x->iov[1] = (struct iovec){x->out + 1000, 0};
    x->iov[2] = (struct iovec){x->out + 1000, BIG - 1000};
    return tide_writev_all(&x->u.writev_all, x->sa, x->iov, 3);
}
static void vf_writev_all(cctx_t *x, tide_future_t *f, bool done) {
    if (done)
        ck_assert_int_eq(f->result, BIG);
    check_written(x, x->u.writev_all.done);
}

static tide_future_t *mk_flush(cctx_t *x) {
    return tide_flush(&x->u.flush, x->sa);
}
static void vf_flush(cctx_t *x, tide_future_t *f, bool done) {
    if (done)
        ck_assert_int_eq(f->result, 0);
}

static tide_future_t *mk_shutdown(cctx_t *x) {
    return tide_shutdown(&x->u.shutdown, x->sa);
}
static void vf_shutdown(cctx_t *x, tide_future_t *f, bool done) {
    if (!done)
        return;
    ck_assert_int_eq(f->result, 0);
    char c;
    ck_assert_int_eq(read(x->peer, &c, 1), 0); /* FIN */
}

/* The bufferevent's writes: every byte a write accepted reaches the
 * peer once libevent sent the queue (prefill counts what setup queued). */
static void vf_bev_write(cctx_t *x, tide_future_t *f, bool done) {
    bev_settle(x);
    vf_write(x, f, done);
}
static void vf_bev_write_all(cctx_t *x, tide_future_t *f, bool done) {
    bev_settle(x);
    vf_write_all(x, f, done);
}
static void vf_bev_flush(cctx_t *x, tide_future_t *f, bool done) {
    if (done)
        ck_assert_int_eq(evbuffer_get_length(
                             bufferevent_get_output(tide_bevstream_bev(x->bs))),
                         0);
    vf_flush(x, f, done);
    bev_settle(x);
    check_written(x, 0);
}
static void vf_bev_shutdown(cctx_t *x, tide_future_t *f, bool done) {
    bev_settle(x);
    check_written(x, 0);
    vf_shutdown(x, f, done);
}

#if TIDE_HAVE_TLS
/* ------------------------------------------------------------------------
 * TLS: a client under test over one end of a socket pair, a server (a
 * second tide_tls_t, SERVER role) over the other, both in x->ex.
 * Certificates: t/tls_certs.sh, run by main() into `certs`.
 * ------------------------------------------------------------------------ */

static char certs[256]; /* empty: no certificates (no openssl program) */

static const char *cert(char *buf, size_t len, const char *name) {
    snprintf(buf, len, "%s/%s", certs, name);
    return buf;
}

/* The pair and both TLS streams, no handshake yet; the client offers at
 * most max_version (0: OpenSSL's highest, TLS 1.3). */
static void setup_tls_pair(cctx_t *x, int max_version) {
    char a[512], b[512];
    ck_assert_int_eq(tide_tls_config_new(&x->ccfg), 0);
    ck_assert_int_eq(
        tide_tls_config_set_ca_file(x->ccfg, cert(a, sizeof a, "ca.pem")), 0);
    if (max_version != 0)
        ck_assert_int_eq(SSL_CTX_set_max_proto_version(
                             tide_tls_config_ssl_ctx(x->ccfg), max_version),
                         1);
    x->tls_version = max_version == TLS1_2_VERSION ? "TLSv1.2" : "TLSv1.3";
    ck_assert_int_eq(tide_tls_config_new(&x->scfg), 0);
    ck_assert_int_eq(
        tide_tls_config_set_cert_file(x->scfg, cert(a, sizeof a, "server.pem"),
                                      cert(b, sizeof b, "server.key")),
        0);
    int sv[2];
    t_socketpair(sv);
    set_bufs(sv[0], 8192);
    set_bufs(sv[1], 8192);
    ck_assert_int_eq(tide_unix_from_fd(&x->a, x->ex, sv[0]), 0);
    ck_assert_int_eq(tide_unix_from_fd(&x->su, x->ex, sv[1]), 0);
    ck_assert_int_eq(tide_tls_new(&x->ctls, x->ccfg, tide_unix_stream(x->a),
                                  TIDE_TLS_CLIENT, "localhost", 0),
                     0);
    ck_assert_int_eq(tide_tls_new(&x->stls, x->scfg, tide_unix_stream(x->su),
                                  TIDE_TLS_SERVER, NULL, 0),
                     0);
    x->sa = tide_tls_stream(x->ctls);
}

static void setup_tls_hs(cctx_t *x) { setup_tls_pair(x, 0); }

/* TLS 1.2: the client has two flights, so two pending points: after its
 * ClientHello, and after its Finished (waiting for the server's). */
static void setup_tls12_hs(cctx_t *x) { setup_tls_pair(x, TLS1_2_VERSION); }

/* Both handshakes, joined, to completion (a fresh future for each). */
static void tls_handshake2(cctx_t *x) {
    tide_tls_handshake_t ch, sh;
    tide_future_t *fs[2] = {tide_tls_handshake(&ch, x->ctls),
                            tide_tls_handshake(&sh, x->stls)};
    tide_join_all_t j;
    ck_assert_int_eq(t_run(x->ex, tide_join_all(&j, fs, 2)), 0);
    ck_assert_int_eq(ch.fut.result, 0);
    ck_assert_int_eq(sh.fut.result, 0);
    ck_assert(tide_tls_handshake_done(x->ctls));
    ck_assert(tide_tls_handshake_done(x->stls));
}

/* The stream entries: the handshake done, nothing in flight. */
static void setup_tls(cctx_t *x) {
    setup_tls_hs(x);
    tls_handshake2(x);
}

/* The client's output backed up: zeros (counted in prefill) are written
 * a record at a time until a write pends (dropped there: it took
 * nothing), so that the socket's send buffer is full and the TLS output
 * buffer has no room for another record; the write futures, the flush
 * and the shutdown then pend until the server drains. */
static void setup_tls_write(cctx_t *x) {
    setup_tls(x);
    fill_out(x);
    static const unsigned char zeros[16384];
    t_hand_t h;
    t_hand_init(&h, x->ex);
    for (int i = 0;; i++) {
        ck_assert_int_lt(i, 100);
        tide_write_t w;
        tide_future_t *f = tide_write(&w, x->sa, zeros, sizeof zeros);
        tide_poll_t p = t_hand_poll(&h, f);
        tide_future_drop(f);
        if (p == TIDE_PENDING)
            break;
        ck_assert_int_eq(f->result, (intptr_t)sizeof zeros);
        x->prefill += sizeof zeros;
    }
    t_hand_done(&h);
    ck_assert_uint_gt(x->prefill, 0);
}

/* Let the client hand all its queued output to the socket (a flush,
 * polled by hand) while the server drains, so that the server holds
 * every byte the client's TLS stream took. */
static void tls_settle(cctx_t *x) {
    t_hand_t h;
    t_hand_init(&h, x->ex);
    tide_flush_t fl;
    tide_future_t *f = tide_flush(&fl, x->sa);
    int i;
    for (i = 0; i < 100000; i++) {
        drain_tls(x);
        if (t_hand_poll(&h, f) == TIDE_READY)
            break;
        event_base_loop(tide_exec_base(x->ex), EVLOOP_ONCE | EVLOOP_NONBLOCK);
    }
    ck_assert_int_lt(i, 100000);
    ck_assert_int_eq(f->result, 0);
    tide_future_drop(f);
    t_hand_done(&h);
    drain_tls(x);
}

/* One byte each way over the established streams. */
static void tls_exchange(cctx_t *x) {
    tide_write_all_t w;
    tide_read_exact_t r;
    unsigned char c = 0;
    ck_assert_int_eq(t_run(x->ex, tide_write_all(&w, x->sa, "c", 1)), 1);
    ck_assert_int_eq(
        t_run(x->ex, tide_read_exact(&r, tide_tls_stream(x->stls), &c, 1)), 1);
    ck_assert_int_eq(c, 'c');
    ck_assert_int_eq(
        t_run(x->ex, tide_write_all(&w, tide_tls_stream(x->stls), "s", 1)), 1);
    ck_assert_int_eq(t_run(x->ex, tide_read_exact(&r, x->sa, &c, 1)), 1);
    ck_assert_int_eq(c, 's');
}

static tide_future_t *mk_tls_handshake(cctx_t *x) {
    return tide_tls_handshake(&x->u.hs, x->ctls);
}
/* The server takes its next step (it reads what the client sent and
 * answers); its own handshake is dropped pending too, which is cancel
 * safe as well. */
static void feed_tls_hs(cctx_t *x) {
    tide_tls_handshake_t sh;
    if (srv_step(x, tide_tls_handshake(&sh, x->stls)))
        ck_assert_int_eq(sh.fut.result, 0);
    x->dgrams++;
}
/* Cancel safe: the progress stays in the client; a fresh handshake joined
 * with the server's completes, and bytes pass both ways. */
static void vf_tls_handshake(cctx_t *x, tide_future_t *f, bool done) {
    if (done) {
        ck_assert_int_eq(f->result, 0);
        ck_assert(tide_tls_handshake_done(x->ctls));
    } else {
        ck_assert(!tide_tls_handshake_done(x->ctls));
    }
    tls_handshake2(x);
    ck_assert_str_eq(tide_tls_version(x->ctls), x->tls_version);
    tls_exchange(x);
}

static void vf_tls_write(cctx_t *x, tide_future_t *f, bool done) {
    tls_settle(x);
    vf_write(x, f, done);
}
static void vf_tls_write_all(cctx_t *x, tide_future_t *f, bool done) {
    tls_settle(x);
    vf_write_all(x, f, done);
}
/* A flush that completed handed every byte queued to the socket: the
 * server reads them all without the client's help. */
static void vf_tls_flush(cctx_t *x, tide_future_t *f, bool done) {
    if (done) {
        ck_assert_int_eq(f->result, 0);
        drain_tls(x);
        ck_assert_uint_eq(x->ngot, x->prefill);
    }
    tls_settle(x);
    check_written(x, 0);
    ck_assert(!x->srv_eof);
    tls_exchange(x);
}
/* The close_notify is made at the first poll; a dropped shutdown leaves it
 * queued behind the prefill (it reaches the server once the output is
 * pushed) and the inner stream open; a second shutdown sends no second
 * close_notify, and shuts the inner stream down. */
static void vf_tls_shutdown(cctx_t *x, tide_future_t *f, bool done) {
    int sfd = tide_fd_get(tide_unix_fd(x->su));
    char c;
    if (done) {
        ck_assert_int_eq(f->result, 0);
    } else {
        tls_settle(x);
        ck_assert_int_eq(read(sfd, &c, 1), -1); /* no FIN yet */
        ck_assert(errno == EAGAIN || errno == EWOULDBLOCK);
        tide_shutdown_t sd;
        ck_assert_int_eq(t_run(x->ex, tide_shutdown(&sd, x->sa)), 0);
    }
    drain_tls(x);
    check_written(x, 0);
    ck_assert(x->srv_eof);
    ck_assert_int_eq(read(sfd, &c, 1), 0); /* FIN, and nothing before it */
    tide_write_t w;
    ck_assert_int_eq(t_run(x->ex, tide_write(&w, x->sa, "x", 1)), -EPIPE);
}
#endif

/* copy: a -> c. The peer of a is fed a byte at a time; after 4 bytes it
 * shuts down, so the copy can complete. */
static void setup_copy(cctx_t *x) {
    pair_a(x);
    pair_c(x);
}
static void feed_copy(cctx_t *x) {
    if (x->fed < 4)
        feed1(x);
    else
        shutdown(x->peer, SHUT_WR);
}
static tide_future_t *mk_copy(cctx_t *x) {
    return tide_copy(&x->u.copy, x->sa, x->sc, x->buf, 1024);
}
static void vf_copy(cctx_t *x, tide_future_t *f, bool done) {
    uint64_t copied = tide_copy_copied(&x->u.copy);
    if (done)
        ck_assert_int_eq(f->result, (intptr_t)x->fed);
    /* documented: copied bytes reached w; read-but-unwritten ones are lost
     * (none here: w is always writable) */
    unsigned char b[64];
    ssize_t n = read(x->peer2, b, sizeof b);
    ck_assert_int_eq(n < 0 ? 0 : n, (ssize_t)copied);
    for (ssize_t i = 0; i < n; i++)
        t_assert_int_eq_at(i, b[i], pat((uint64_t)i));
    if (!done)
        check_rest(x, x->sa, copied);
}

/* copy_bidirectional a <-> c: bytes fed alternately to both peers, then
 * both shut down. */
static void feed_bi(cctx_t *x) {
    if (x->fed < 6) {
        feed_bytes(x, (x->fed & 1) ? x->peer2 : x->peer, 1);
    } else {
        shutdown(x->peer, SHUT_WR);
        shutdown(x->peer2, SHUT_WR);
    }
}
static tide_future_t *mk_bi(cctx_t *x) {
    return tide_copy_bidirectional(&x->u.bi, x->sa, x->sc, x->buf, 2048);
}
static void vf_bi(cctx_t *x, tide_future_t *f, bool done) {
    uint64_t ab = tide_copy_bidirectional_a_to_b(&x->u.bi);
    uint64_t ba = tide_copy_bidirectional_b_to_a(&x->u.bi);
    ck_assert_uint_le(ab + ba, x->fed);
    if (done) {
        ck_assert_int_eq(f->result, 0);
        ck_assert_uint_eq(ab + ba, x->fed);
    }
    unsigned char b[64];
    ssize_t n1 = read(x->peer2, b, sizeof b); /* what a -> c delivered */
    ck_assert_int_eq(n1 < 0 ? 0 : n1, (ssize_t)ab);
    ssize_t n2 = read(x->peer, b, sizeof b);
    ck_assert_int_eq(n2 < 0 ? 0 : n2, (ssize_t)ba);
}

/* ------------------------------------------------------------------------
 * Buffered reading and framing
 * ------------------------------------------------------------------------ */

static void setup_br(cctx_t *x) {
    pair_a(x);
    ck_assert_int_eq(
        tide_bufreader_init(&x->br, x->sa, x->brbuf, sizeof x->brbuf), 0);
    tide_linecodec_init(&x->lc, 64);
    ck_assert_int_eq(tide_lencodec_init(&x->lenc, 2, 0, 64), 0);
}

static tide_future_t *mk_fill(cctx_t *x) {
    return tide_bufreader_fill(&x->u.fill, &x->br);
}
static void vf_fill(cctx_t *x, tide_future_t *f, bool done) {
    size_t len;
    tide_bufreader_data(&x->br, &len);
    ck_assert_uint_eq(len, x->fed); /* kept in the buffer */
    if (done)
        ck_assert_int_eq(f->result, (intptr_t)x->fed);
}

/* A line fed byte by byte: "abcd\n" (the pattern, then a newline). */
static const char line[] = "abcd\n";
static void feed_line(cctx_t *x) {
    ck_assert_uint_lt(x->fed, sizeof line - 1);
    ck_assert_int_eq(write(x->peer, &line[x->fed], 1), 1);
    x->fed++;
}

static tide_future_t *mk_read_line(cctx_t *x) {
    return tide_read_line(&x->u.until, &x->br, (char *)x->small,
                          sizeof x->small);
}
static void vf_read_line(cctx_t *x, tide_future_t *f, bool done) {
    size_t d = x->u.until.done;
    ck_assert_int_eq(memcmp(x->small, line, d), 0);
    if (done) {
        ck_assert_int_eq(f->result, 5);
        ck_assert_str_eq((char *)x->small, line);
        return;
    }
    /* documented: a new read_line at dst + done continues */
    while (x->fed < sizeof line - 1)
        feed_line(x);
    tide_read_until_t r;
    ck_assert_int_eq(
        t_run(x->ex, tide_read_line(&r, &x->br, (char *)x->small + d,
                                    sizeof x->small - d)),
        (intptr_t)(5 - d));
    ck_assert_str_eq((char *)x->small, line);
}

static tide_future_t *mk_read_until(cctx_t *x) {
    return tide_read_until(&x->u.until, &x->br, '\n', x->small,
                           sizeof x->small);
}
static void vf_read_until(cctx_t *x, tide_future_t *f, bool done) {
    size_t d = x->u.until.done;
    ck_assert_int_eq(memcmp(x->small, line, d), 0);
    if (done) {
        ck_assert_int_eq(f->result, 5);
        return;
    }
    while (x->fed < sizeof line - 1)
        feed_line(x);
    tide_read_until_t r;
    ck_assert_int_eq(
        t_run(x->ex, tide_read_until(&r, &x->br, '\n', x->small + d,
                                     sizeof x->small - d)),
        (intptr_t)(5 - d));
    ck_assert_int_eq(memcmp(x->small, line, 5), 0);
}

static tide_future_t *mk_line_decode(cctx_t *x) {
    return tide_linecodec_decode(&x->u.dec, &x->lc, &x->br);
}
static void vf_line_decode(cctx_t *x, tide_future_t *f, bool done) {
    if (!done) {
        /* documented: a dropped decode leaves every byte in the reader */
        while (x->fed < sizeof line - 1)
            feed_line(x);
        ck_assert_int_eq(
            t_block_on(x->ex, tide_linecodec_decode(&x->u.dec, &x->lc, &x->br)),
            0);
    }
    ck_assert_int_eq(x->u.dec.fut.result, 1);
    ck_assert_uint_eq(x->u.dec.len, 4);
    ck_assert_int_eq(memcmp(x->u.dec.frame, "abcd", 4), 0);
    if (!done)
        tide_future_drop(&x->u.dec.fut);
    (void)f;
}

/* A length-delimited frame fed byte by byte: 00 03 'x' 'y' 'z'. */
static const unsigned char lframe[] = {0, 3, 'x', 'y', 'z'};
static void feed_lframe(cctx_t *x) {
    ck_assert_uint_lt(x->fed, sizeof lframe);
    ck_assert_int_eq(write(x->peer, &lframe[x->fed], 1), 1);
    x->fed++;
}
static tide_future_t *mk_len_decode(cctx_t *x) {
    return tide_lencodec_decode(&x->u.dec, &x->lenc, &x->br);
}
static void vf_len_decode(cctx_t *x, tide_future_t *f, bool done) {
    if (!done) {
        while (x->fed < sizeof lframe)
            feed_lframe(x);
        ck_assert_int_eq(t_block_on(x->ex, tide_lencodec_decode(
                                               &x->u.dec, &x->lenc, &x->br)),
                         0);
    }
    ck_assert_int_eq(x->u.dec.fut.result, 1);
    ck_assert_uint_eq(x->u.dec.len, 3);
    ck_assert_int_eq(memcmp(x->u.dec.frame, "xyz", 3), 0);
    if (!done)
        tide_future_drop(&x->u.dec.fut);
    (void)f;
}

/* Encoders: a frame bigger than the (pre-filled) send buffer. */
static void setup_enc(cctx_t *x) {
    setup_write(x);
    for (size_t i = 0; i < BIG; i++)
        if (x->out[i] == '\n')
            x->out[i] = 'n';
    tide_linecodec_init(&x->lc, BIG);
    ck_assert_int_eq(tide_lencodec_init(&x->lenc, 4, 0, BIG), 0);
}
static tide_future_t *mk_line_encode(cctx_t *x) {
    return tide_linecodec_encode(&x->u.enc, &x->lc, x->sa, x->out, 100000);
}
static void vf_line_encode(cctx_t *x, tide_future_t *f, bool done) {
    size_t d = x->u.enc.done;
    if (done)
        ck_assert_int_eq(f->result, 100001);
    drain_peer(x);
    ck_assert_uint_eq(x->ngot, x->prefill + d);
    size_t body = d > 100000 ? 100000 : d;
    ck_assert_int_eq(memcmp(x->got + x->prefill, x->out, body), 0);
    if (d == 100001)
        ck_assert_int_eq(x->got[x->prefill + 100000], '\n');
}
static tide_future_t *mk_len_encode(cctx_t *x) {
    return tide_lencodec_encode(&x->u.enc, &x->lenc, x->sa, x->out, 100000);
}
static void vf_len_encode(cctx_t *x, tide_future_t *f, bool done) {
    size_t d = x->u.enc.done;
    if (done)
        ck_assert_int_eq(f->result, 100004);
    drain_peer(x);
    ck_assert_uint_eq(x->ngot, x->prefill + d);
    static const unsigned char hdr[4] = {0, 1, 0x86, 0xa0}; /* 100000 */
    size_t h = d < 4 ? d : 4;
    ck_assert_int_eq(memcmp(x->got + x->prefill, hdr, h), 0);
    if (d > 4)
        ck_assert_int_eq(memcmp(x->got + x->prefill + 4, x->out, d - 4), 0);
}

/* ------------------------------------------------------------------------
 * Reactor: readiness futures
 * ------------------------------------------------------------------------ */

static void setup_reg(cctx_t *x) {
    int sv[2];
    t_socketpair(sv);
    ck_assert_int_eq(tide_fd_new(&x->reg, x->ex, sv[0]), 0);
    x->regpeer = sv[1];
    /* readiness starts optimistic: learn that it is not readable */
    x->tio = (t_io_t){(char *)x->small, sizeof x->small, 0};
    ck_assert_int_eq(tide_fd_try_io(x->reg, TIDE_READABLE, t_read_fn, &x->tio),
                     -EAGAIN);
}

/* ... and not writable either (its send buffer is full) */
static void setup_reg_full(cctx_t *x) {
    setup_reg(x);
    int fd = tide_fd_get(x->reg);
    set_bufs(fd, 4096);
    t_fill(fd);
    x->tio = (t_io_t){(char *)x->small, sizeof x->small, 0};
    ck_assert_int_eq(tide_fd_try_io(x->reg, TIDE_WRITABLE, t_write_fn, &x->tio),
                     -EAGAIN);
}

static void feed_reg(cctx_t *x) {
    ck_assert_int_eq(write(x->regpeer, "r", 1), 1);
    x->fed++;
}
static void drain_reg(cctx_t *x) { t_drain(x->regpeer); }

static tide_future_t *mk_readable(cctx_t *x) {
    return tide_fd_readable(&x->u.wait, x->reg);
}
static tide_future_t *mk_writable(cctx_t *x) {
    return tide_fd_writable(&x->u.wait, x->reg);
}
static tide_future_t *mk_ready(cctx_t *x) {
    return tide_fd_ready(&x->u.wait, x->reg, TIDE_READABLE | TIDE_WRITABLE);
}
/* Cancel safe: readiness is never lost. After the drop, with the peer's
 * byte there, a new wait completes. */
static void vf_readable(cctx_t *x, tide_future_t *f, bool done) {
    if (done) {
        ck_assert_int_eq(f->result, 0);
        return;
    }
    if (x->fed == 0)
        feed_reg(x);
    tide_fd_wait_t w;
    ck_assert_int_eq(t_run(x->ex, tide_fd_readable(&w, x->reg)), 0);
}
static void vf_writable(cctx_t *x, tide_future_t *f, bool done) {
    if (done) {
        ck_assert_int_eq(f->result, 0);
        return;
    }
    drain_reg(x);
    tide_fd_wait_t w;
    ck_assert_int_eq(t_run(x->ex, tide_fd_writable(&w, x->reg)), 0);
}

static tide_future_t *mk_async_io(cctx_t *x) {
    x->tio = (t_io_t){(char *)x->small, sizeof x->small, 0};
    return tide_fd_async_io(&x->u.io, x->reg, TIDE_READABLE, t_read_fn,
                            &x->tio);
}
static void vf_async_io(cctx_t *x, tide_future_t *f, bool done) {
    if (done) {
        ck_assert_int_eq(f->result, 1);
        return;
    }
    /* a dropped async_io never runs fn again and read nothing */
    int calls = x->tio.calls;
    feed_reg(x);
    t_run_for(tide_exec_base(x->ex), 5);
    ck_assert_int_eq(x->tio.calls, calls);
    char c[4];
    ck_assert_int_eq(read(tide_fd_get(x->reg), c, sizeof c), (ssize_t)x->fed);
}

/* ------------------------------------------------------------------------
 * Time and signals
 * ------------------------------------------------------------------------ */

static tide_future_t *mk_sleep(cctx_t *x) {
    return tide_sleep(&x->u.sleep, 2000);
}
static tide_future_t *mk_sleep_until(cctx_t *x) {
    return tide_sleep_until(&x->u.sleep, tide_now() + 2000);
}
static void vf_none(cctx_t *x, tide_future_t *f, bool done) {
    (void)x;
    (void)f;
    (void)done;
}

static void setup_interval(cctx_t *x) {
    ck_assert_int_eq(tide_interval_init(&x->iv, 5000), 0);
    x->iv_on = true;
    ck_assert_int_ge(t_run(x->ex, tide_interval_tick(&x->iv)),
                     1); /* 1 unless late */
}
static tide_future_t *mk_tick(cctx_t *x) { return tide_interval_tick(&x->iv); }
static void vf_tick(cctx_t *x, tide_future_t *f, bool done) {
    if (done)
        ck_assert_int_ge(f->result, 1);
    /* the schedule is as it was: the next tick comes */
    ck_assert_int_ge(t_run(x->ex, tide_interval_tick(&x->iv)), 1);
}

static tide_future_t *mk_timeout(cctx_t *x) {
    return tide_timeout(&x->u.timeout,
                        tide_read(&x->r1, x->sa, x->small, sizeof x->small),
                        3000);
}
static void vf_timeout(cctx_t *x, tide_future_t *f, bool done) {
    if (done)
        ck_assert_int_eq(f->result, -ETIMEDOUT);
    /* the inner read was dropped: it consumed nothing */
    feed_bytes(x, x->peer, 2);
    check_rest(x, x->sa, 0);
}

static void setup_signal(cctx_t *x) {
    ck_assert_int_eq(tide_signal_init(&x->sig, x->ex, SIGUSR1), 0);
    x->sig_on = true;
}
static void feed_signal(cctx_t *x) {
    raise(SIGUSR1);
    x->dgrams++;
}
static tide_future_t *mk_signal(cctx_t *x) { return tide_signal_recv(&x->sig); }
static void vf_signal(cctx_t *x, tide_future_t *f, bool done) {
    if (done) {
        ck_assert_int_ge(f->result, 1);
        return;
    }
    /* a dropped recv consumes nothing */
    if (x->dgrams == 0)
        feed_signal(x);
    ck_assert_int_ge(t_run(x->ex, tide_signal_recv(&x->sig)), 1);
}

/* ------------------------------------------------------------------------
 * Core: join handles and combinators
 * ------------------------------------------------------------------------ */

typedef struct reader_task {
    tide_future_t fut;
    tide_read_t rd;
    tide_stream_t *s;
    unsigned char b[8];
    bool started;
} reader_task_t;

static reader_task_t rtask;

static tide_poll_t rtask_poll(tide_future_t *f, tide_cx_t *cx) {
    reader_task_t *t = TIDE_CONTAINER_OF(f, reader_task_t, fut);
    if (!t->started) {
        tide_read(&t->rd, t->s, t->b, sizeof t->b);
        t->started = true;
    }
    if (tide_future_poll(&t->rd.fut, cx) == TIDE_PENDING)
        return TIDE_PENDING;
    f->result = t->rd.fut.result;
    return TIDE_READY;
}
static void rtask_drop(tide_future_t *f) {
    reader_task_t *t = TIDE_CONTAINER_OF(f, reader_task_t, fut);
    if (t->started)
        tide_future_drop(&t->rd.fut);
}

static const tide_future_vtable_t rtask_vt = {rtask_poll, rtask_drop};

static void setup_join(cctx_t *x) {
    pair_a(x);
    memset(&rtask, 0, sizeof rtask);
    rtask.s = x->sa;
    tide_future_init(&rtask.fut, &rtask_vt);
    ck_assert_int_eq(tide_spawn(x->ex, &rtask.fut, &x->join), 0);
}
static tide_future_t *mk_join(cctx_t *x) { return tide_join(&x->join); }
static bool no_tasks(void *arg) { return t_stats(arg).tasks == 0; }
static void vf_join(cctx_t *x, tide_future_t *f, bool done) {
    if (done) {
        ck_assert_int_eq(f->result, 1);
        return;
    }
    /* dropping the handle detached the task: it runs on and finishes */
    if (x->fed == 0)
        feed1(x);
    ck_assert(t_loop_until(tide_exec_base(x->ex), no_tasks, x->ex, T_BOUND_MS));
    ck_assert_int_eq(rtask.fut.result, 1);
}

/* task: tokens, scopes, the blocking pool */
static void setup_token(cctx_t *x) {
    tide_token_init(&x->tok);
    x->tok_on = true;
}
static tide_future_t *mk_token(cctx_t *x) {
    return tide_token_cancelled(&x->u.tokw, &x->tok);
}
static void feed_token(cctx_t *x) { tide_token_cancel(&x->tok); }
static void vf_token(cctx_t *x, tide_future_t *f, bool done) {
    if (done)
        ck_assert_int_eq(f->result, 0);
    ck_assert(tide_waitq_is_empty(&x->tok.q));
}

/* a scope with one child, the reader task: one byte completes it */
static void setup_scope(cctx_t *x) {
    pair_a(x);
    memset(&rtask, 0, sizeof rtask);
    rtask.s = x->sa;
    tide_future_init(&rtask.fut, &rtask_vt);
    ck_assert_int_eq(tide_scope_init(&x->scope, x->ex, 0), 0);
    x->scope_on = true;
    ck_assert_int_eq(tide_scope_spawn(&x->scope, &rtask.fut, NULL), 0);
}
static tide_future_t *mk_scope_wait(cctx_t *x) {
    return tide_scope_wait(&x->u.scopew, &x->scope);
}
static void vf_scope_wait(cctx_t *x, tide_future_t *f, bool done) {
    ck_assert(tide_waitq_is_empty(&x->scope.q));
    if (done) {
        ck_assert_int_eq(f->result, 0);
        ck_assert_int_eq(rtask.fut.result, 1);
        return;
    }
    /* dropping the wait left the child running */
    ck_assert_uint_le(tide_scope_len(&x->scope), 1);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    (void)arg;
}
static void setup_blocking(cctx_t *x) {
    event_assign(&x->tick, tide_exec_base(x->ex), -1, EV_PERSIST, tick_cb, x);
    struct timeval tv = {0, 1000};
    event_add(&x->tick, &tv);
    x->tick_on = true;
}
static intptr_t nap_fn(void *arg) {
    (void)arg;
    usleep(2000);
    return 5;
}
static tide_future_t *mk_blocking(cctx_t *x) {
    return tide_spawn_blocking(&x->u.blk, nap_fn, x);
}
static void vf_blocking(cctx_t *x, tide_future_t *f, bool done) {
    (void)x;
    if (done)
        ck_assert_int_eq(f->result, 5);
}

/* fs: an open, a read of a file (both on the pool) */
static tide_future_t *mk_fs_open(cctx_t *x) {
    return tide_fs_open(&x->u.fsopen, "/dev/null", O_RDONLY, 0);
}
static void vf_fs_open(cctx_t *x, tide_future_t *f, bool done) {
    (void)x;
    if (done) {
        ck_assert_int_ge(f->result, 0);
        close((int)f->result);
    }
}
static void setup_file(cctx_t *x) {
    setup_blocking(x);
    int fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(tide_file_new(&x->file, fd, 64), 0);
}
static tide_future_t *mk_file_read(cctx_t *x) {
    return tide_read(&x->u.read, tide_file_stream(x->file), x->small, 16);
}
static void vf_file_read(cctx_t *x, tide_future_t *f, bool done) {
    if (done) {
        ck_assert_int_eq(f->result, 16);
        return;
    }
    /* nothing lost: the next read gets bytes */
    tide_read_t r;
    ck_assert_int_eq(
        t_run(x->ex, tide_read(&r, tide_file_stream(x->file), x->small, 16)),
        16);
}

static void feed_both(cctx_t *x) {
    feed_bytes(x, (x->fed & 1) ? x->peer2 : x->peer, 1);
}
static tide_future_t *mk_join_all(cctx_t *x) {
    x->futs[0] = tide_read(&x->r1, x->sa, x->small, 8);
    x->futs[1] = tide_read(&x->r2, x->sc, x->small + 8, 8);
    return tide_join_all(&x->u.join_all, x->futs, 2);
}
static void vf_join_all(cctx_t *x, tide_future_t *f, bool done) {
    if (done) {
        ck_assert_int_eq(x->r1.fut.result, 1);
        ck_assert_int_eq(x->r2.fut.result, 1);
    }
    (void)f;
}

static tide_future_t *mk_select(cctx_t *x) {
    x->futs[0] = tide_read(&x->r1, x->sa, x->small, 8);
    x->futs[1] = tide_sleep(&x->s1, 3600 * TIDE_USEC_PER_SEC);
    return tide_select(&x->u.select, x->futs, 2);
}
static void vf_select(cctx_t *x, tide_future_t *f, bool done) {
    if (done)
        ck_assert_int_eq(f->result, 0);
    else
        check_rest(x, x->sa, 0); /* the read was cancel safe */
}

static tide_future_t *mk_yield(cctx_t *x) { return tide_yield(&x->u.yield); }
static tide_future_t *mk_ready_f(cctx_t *x) {
    return tide_ready(&x->u.ready, 42);
}
static tide_future_t *mk_pending(cctx_t *x) {
    return tide_pending(&x->u.pending);
}

/* ------------------------------------------------------------------------
 * Net
 * ------------------------------------------------------------------------ */

static void setup_tcp(cctx_t *x) {
    ck_assert_int_eq(tide_tcp_listener_bind(&x->tl, x->ex, "127.0.0.1:0", 0, 0),
                     0);
    ck_assert_int_eq(tide_tcp_listener_local_addr(x->tl, &x->addr), 0);
}
static void feed_client(cctx_t *x) {
    ck_assert_int_lt(x->nclients, 64);
    int fd = socket(x->addr.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(connect(fd, tide_addr_sockaddr(&x->addr), x->addr.len), 0);
    x->clients[x->nclients++] = fd;
}
static tide_future_t *mk_tcp_accept(cctx_t *x) {
    return tide_tcp_accept(&x->u.tacc, x->tl);
}
static void vf_tcp_accept(cctx_t *x, tide_future_t *f, bool done) {
    if (done) {
        ck_assert_int_eq(f->result, 0);
        tide_tcp_free(x->u.tacc.conn);
        return;
    }
    /* cancel safe: the connection is still in the queue */
    if (x->nclients == 0)
        feed_client(x);
    tide_tcp_accept_t a;
    ck_assert_int_eq(t_run(x->ex, tide_tcp_accept(&a, x->tl)), 0);
    tide_tcp_free(a.conn);
}

/* The evconnlistener bridge, accepting on a fresh 127.0.0.1 port. */
static void setup_evl(cctx_t *x) {
    struct sockaddr_in sin = {.sin_family = AF_INET};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct evconnlistener *lev = evconnlistener_new_bind(
        tide_exec_base(x->ex), NULL, NULL,
        LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_DISABLED, 16,
        (struct sockaddr *)&sin, sizeof sin);
    ck_assert_ptr_nonnull(lev);
    x->addr.len = sizeof x->addr.ss;
    ck_assert_int_eq(getsockname(evconnlistener_get_fd(lev),
                                 (struct sockaddr *)&x->addr.ss, &x->addr.len),
                     0);
    ck_assert_int_eq(tide_evlistener_new(&x->evl, x->ex, lev, TIDE_EVL_OWN), 0);
}
static tide_future_t *mk_evl_accept(cctx_t *x) {
    return tide_evlistener_accept(&x->u.evacc, x->evl);
}
static tide_future_t *mk_evl_accept_conn(cctx_t *x) {
    return tide_evlistener_accept_conn(&x->u.evacc, x->evl);
}
static void evl_take(tide_evaccept_t *a, intptr_t result) {
    if (a->want_conn) {
        ck_assert_int_eq(result, 0);
        tide_conn_free(a->conn);
    } else {
        ck_assert_int_ge(result, 0);
        ck_assert_int_eq(a->fd, (int)result);
        close(a->fd);
    }
}
static void vf_evl_accept(cctx_t *x, tide_future_t *f, bool done) {
    if (done) {
        evl_take(&x->u.evacc, f->result);
        return;
    }
    /* cancel safe: the connection is still queued for the next accept */
    if (x->nclients == 0)
        feed_client(x);
    tide_evaccept_t a;
    tide_future_t *g = x->u.evacc.want_conn
                           ? tide_evlistener_accept_conn(&a, x->evl)
                           : tide_evlistener_accept(&a, x->evl);
    evl_take(&a, t_run(x->ex, g));
}

/* The listener of any kind is the TCP listener under another name
 * (src/net/internal.h): the generic accept and serve on setup_tcp's. */
static tide_listener_t *any_listener(cctx_t *x) {
    return (tide_listener_t *)(void *)x->tl;
}
static tide_future_t *mk_accept(cctx_t *x) {
    return tide_accept(&x->u.gacc, any_listener(x));
}
static void vf_accept(cctx_t *x, tide_future_t *f, bool done) {
    if (done) {
        ck_assert_int_eq(f->result, 0);
        tide_conn_free(x->u.gacc.conn);
        return;
    }
    /* cancel safe: the connection is still in the queue */
    if (x->nclients == 0)
        feed_client(x);
    tide_accept_t a;
    ck_assert_int_eq(t_run(x->ex, tide_accept(&a, any_listener(x))), 0);
    tide_conn_free(a.conn);
}

/* A serve whose handler counts each connection and refuses it (tide
 * closes it): dropped at any point, it has lost none of those fed (each
 * was handed to the handler, or is still in the backlog). */
static int served;
static tide_future_t *count_and_refuse(tide_conn_t *c, void *arg) {
    (void)c;
    (void)arg;
    served++;
    return NULL;
}
static tide_future_t *mk_serve(cctx_t *x) {
    served = 0;
    return tide_serve(&x->u.serve, any_listener(x), count_and_refuse, NULL,
                      NULL);
}
static void vf_serve(cctx_t *x, tide_future_t *f, bool done) {
    ck_assert_msg(!done, "serve completed: %ld", (long)f->result);
    ck_assert_int_le(served, x->nclients);
    for (int i = served; i < x->nclients; i++) { /* the rest, still queued */
        tide_accept_t a;
        t_assert_int_eq_at(i, t_run(x->ex, tide_accept(&a, any_listener(x))),
                           0);
        tide_conn_free(a.conn);
    }
}

static tide_future_t *mk_tcp_connect(cctx_t *x) {
    return tide_tcp_connect_addr(&x->u.tconn, &x->addr);
}
static tide_future_t *mk_tcp_connect_name(cctx_t *x) {
    char hp[64];
    /* the test's own hosts list: nothing here depends on /etc/hosts */
    if (tide__exec_ext(x->ex, TIDE__EXT_NET) == NULL) /* once per executor */
        t_hosts(x->ex, "127.0.0.1 cancel.tide.test\n");
    snprintf(hp, sizeof hp, "cancel.tide.test:%d", tide_addr_port(&x->addr));
    return tide_tcp_connect(&x->u.tconn, hp);
}
static void vf_tcp_connect(cctx_t *x, tide_future_t *f, bool done) {
    if (done) {
        ck_assert_int_eq(f->result, 0);
        tide_tcp_free(x->u.tconn.conn);
    }
    ck_assert_uint_eq(t_stats(x->ex).registered, 1); /* the listener only */
}

static void setup_unix(cctx_t *x) {
    static int seq;
    snprintf(x->path, sizeof x->path, "@tide-cancel-%d-%d", (int)getpid(),
             seq++);
    ck_assert_int_eq(tide_unix_listener_bind(&x->ul, x->ex, x->path, 0, 0), 0);
    ck_assert_int_eq(tide_unix_listener_local_addr(x->ul, &x->addr), 0);
}
static tide_future_t *mk_unix_accept(cctx_t *x) {
    return tide_unix_accept(&x->u.uacc, x->ul);
}
static void vf_unix_accept(cctx_t *x, tide_future_t *f, bool done) {
    if (done) {
        ck_assert_int_eq(f->result, 0);
        tide_unix_free(x->u.uacc.conn);
        return;
    }
    if (x->nclients == 0)
        feed_client(x);
    tide_unix_accept_t a;
    ck_assert_int_eq(t_run(x->ex, tide_unix_accept(&a, x->ul)), 0);
    tide_unix_free(a.conn);
}
static tide_future_t *mk_unix_connect(cctx_t *x) {
    return tide_unix_connect(&x->u.uconn, x->path);
}
static void vf_unix_connect(cctx_t *x, tide_future_t *f, bool done) {
    if (done) {
        ck_assert_int_eq(f->result, 0);
        tide_unix_free(x->u.uconn.conn);
    }
    ck_assert_uint_eq(t_stats(x->ex).registered, 1);
}

/* A Unix listener whose backlog is full: the connect retries on a timer
 * until the test accepts one connection. */
static void setup_unix_full(cctx_t *x) {
    static int seq;
    snprintf(x->path, sizeof x->path, "@tide-cancel-full-%d-%d", (int)getpid(),
             seq++);
    ck_assert_int_eq(tide_unix_listener_bind(&x->ul, x->ex, x->path, 1, 0), 0);
    ck_assert_int_eq(tide_unix_listener_local_addr(x->ul, &x->addr), 0);
    for (;;) {
        ck_assert_int_lt(x->nclients, 64);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        ck_assert_int_ge(fd, 0);
        if (connect(fd, tide_addr_sockaddr(&x->addr), x->addr.len) != 0) {
            ck_assert(errno == EAGAIN || errno == EWOULDBLOCK);
            close(fd);
            break;
        }
        x->clients[x->nclients++] = fd;
    }
}
static void accept_one(cctx_t *x) {
    if (x->dgrams++ > 0)
        return;
    tide_unix_accept_t a;
    ck_assert_int_eq(t_run(x->ex, tide_unix_accept(&a, x->ul)), 0);
    tide_unix_free(a.conn);
}

/* A TCP connect that cannot complete: the raw listener's backlog is full,
 * so its SYN goes unanswered (only dropped, never fed). */
static void setup_tcp_full(cctx_t *x) {
    x->rawfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET,
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(x->rawfd, (struct sockaddr *)&sin, sizeof sin), 0);
    ck_assert_int_eq(listen(x->rawfd, 0), 0);
    x->addr.len = sizeof x->addr.ss;
    ck_assert_int_eq(
        getsockname(x->rawfd, (struct sockaddr *)&x->addr.ss, &x->addr.len), 0);
    /* fill the accept queue (backlog 0 still queues one) */
    for (int i = 0; i < 3; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        connect(fd, tide_addr_sockaddr(&x->addr), x->addr.len);
        x->clients[x->nclients++] = fd;
    }
    t_sleep_ms(20);
}
static void vf_tcp_connect_full(cctx_t *x, tide_future_t *f, bool done) {
    (void)f;
    ck_assert(!done);
    ck_assert_uint_eq(t_stats(x->ex).registered, 0);
}

/* Datagrams: the socket under test and a raw peer. */
static void setup_udp(cctx_t *x) {
    ck_assert_int_eq(tide_udp_bind(&x->udp, x->ex, "127.0.0.1:0", 0), 0);
    ck_assert_int_eq(tide_udp_local_addr(x->udp, &x->addr), 0);
    x->rawfd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    ck_assert_int_ge(x->rawfd, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET,
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(x->rawfd, (struct sockaddr *)&sin, sizeof sin), 0);
}
static void setup_udp_connected(cctx_t *x) {
    setup_udp(x);
    tide_addr_t raw;
    raw.len = sizeof raw.ss;
    ck_assert_int_eq(
        getsockname(x->rawfd, (struct sockaddr *)&raw.ss, &raw.len), 0);
    char text[TIDE_ADDR_STRLEN];
    ck_assert_int_gt(tide_addr_format(&raw, text, sizeof text), 0);
    ck_assert_int_eq(tide_udp_connect(x->udp, text), 0);
}
static void feed_dgram(cctx_t *x) {
    char d[8];
    snprintf(d, sizeof d, "d%d", x->dgrams);
    ck_assert_int_eq(sendto(x->rawfd, d, strlen(d), 0,
                            tide_addr_sockaddr(&x->addr), x->addr.len),
                     (ssize_t)strlen(d));
    x->dgrams++;
}
static tide_future_t *mk_udp_recv_from(cctx_t *x) {
    return tide_udp_recv_from(&x->u.drecv, x->udp, x->small, sizeof x->small);
}
static tide_future_t *mk_udp_recv(cctx_t *x) {
    return tide_udp_recv(&x->u.drecv, x->udp, x->small, sizeof x->small);
}
static void vf_udp_recv(cctx_t *x, tide_future_t *f, bool done) {
    if (done) {
        ck_assert_int_eq(f->result, 2);
        ck_assert_int_eq(memcmp(x->small, "d0", 2), 0);
        return;
    }
    /* cancel safe: the datagram is still queued */
    if (x->dgrams == 0)
        feed_dgram(x);
    tide_dgram_recv_t r;
    ck_assert_int_eq(
        t_run(x->ex, tide_udp_recv_from(&r, x->udp, x->small, sizeof x->small)),
        2);
    ck_assert_int_eq(memcmp(x->small, "d0", 2), 0);
}
static tide_future_t *mk_udp_send_to(cctx_t *x) {
    tide_addr_t raw;
    raw.len = sizeof raw.ss;
    getsockname(x->rawfd, (struct sockaddr *)&raw.ss, &raw.len);
    x->addr = raw;
    return tide_udp_send_to(&x->u.dsend, x->udp, "hey", 3, &x->addr);
}
static tide_future_t *mk_udp_send(cctx_t *x) {
    return tide_udp_send(&x->u.dsend, x->udp, "hey", 3);
}
static void vf_udp_send(cctx_t *x, tide_future_t *f, bool done) {
    char b[8];
    ssize_t n = recv(x->rawfd, b, sizeof b, 0);
    if (done) {
        ck_assert_int_eq(f->result, 3);
        ck_assert_int_eq(n, 3);
    } else {
        ck_assert_int_lt(n, 0); /* sent entirely or not at all */
    }
}

/* Unix datagrams: the tide socket sends to a raw receiver whose queue is
 * full, so the send waits until the test drains it. */
static void setup_ud_send(cctx_t *x) {
    static int seq;
    snprintf(x->path, sizeof x->path, "@tide-cancel-dg-%d-%d", (int)getpid(),
             seq++);
    char text[80];
    snprintf(text, sizeof text, "unix:%s", x->path);
    ck_assert_int_eq(tide_addr_parse(&x->addr, text), 0);
    x->rawfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    ck_assert_int_ge(x->rawfd, 0);
    ck_assert_int_eq(bind(x->rawfd, tide_addr_sockaddr(&x->addr), x->addr.len),
                     0);
    ck_assert_int_eq(tide_unix_dgram_bind(&x->ud, x->ex, NULL, 0), 0);
    ck_assert_int_eq(tide_unix_dgram_connect(x->ud, x->path), 0);
    int fd = tide_fd_get(tide_unix_dgram_fd(x->ud));
    while (send(fd, "p", 1, 0) == 1)
        x->dgrams++;
    ck_assert(errno == EAGAIN || errno == EWOULDBLOCK);
}
static void drain_ud(cctx_t *x) {
    char b[8];
    while (recv(x->rawfd, b, sizeof b, 0) > 0)
        x->ngot++;
}
static tide_future_t *mk_ud_send(cctx_t *x) {
    return tide_unix_dgram_send(&x->u.dsend, x->ud, "q", 1);
}
static void vf_ud_send(cctx_t *x, tide_future_t *f, bool done) {
    drain_ud(x);
    ck_assert_uint_eq(x->ngot, (size_t)x->dgrams + (done ? 1 : 0));
    if (done)
        ck_assert_int_eq(f->result, 1);
}

/* The same, unconnected: send_to the receiver's address. */
static void setup_ud_send_to(cctx_t *x) {
    static int seq;
    snprintf(x->path, sizeof x->path, "@tide-cancel-dt-%d-%d", (int)getpid(),
             seq++);
    char text[80];
    snprintf(text, sizeof text, "unix:%s", x->path);
    ck_assert_int_eq(tide_addr_parse(&x->addr, text), 0);
    x->rawfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    ck_assert_int_ge(x->rawfd, 0);
    ck_assert_int_eq(bind(x->rawfd, tide_addr_sockaddr(&x->addr), x->addr.len),
                     0);
    ck_assert_int_eq(tide_unix_dgram_bind(&x->ud, x->ex, NULL, 0), 0);
    int fd = tide_fd_get(tide_unix_dgram_fd(x->ud));
    while (sendto(fd, "p", 1, 0, tide_addr_sockaddr(&x->addr), x->addr.len) ==
           1)
        x->dgrams++;
    ck_assert(errno == EAGAIN || errno == EWOULDBLOCK);
}
static tide_future_t *mk_ud_send_to(cctx_t *x) {
    return tide_unix_dgram_send_to(&x->u.dsend, x->ud, "q", 1, &x->addr);
}

static void setup_ud_recv(cctx_t *x) {
    static int seq;
    snprintf(x->path, sizeof x->path, "@tide-cancel-dr-%d-%d", (int)getpid(),
             seq++);
    ck_assert_int_eq(tide_unix_dgram_bind(&x->ud, x->ex, x->path, 0), 0);
    ck_assert_int_eq(tide_unix_dgram_local_addr(x->ud, &x->addr), 0);
    x->rawfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    ck_assert_int_ge(x->rawfd, 0);
}
/* Connected: receives only from the raw peer, bound at a path too. */
static void setup_ud_recv_connected(cctx_t *x) {
    setup_ud_recv(x);
    char peer[80];
    snprintf(peer, sizeof peer, "@%s-peer", x->path + 1);
    tide_addr_t pa;
    char text[96];
    snprintf(text, sizeof text, "unix:%s", peer);
    ck_assert_int_eq(tide_addr_parse(&pa, text), 0);
    ck_assert_int_eq(bind(x->rawfd, tide_addr_sockaddr(&pa), pa.len), 0);
    ck_assert_int_eq(tide_unix_dgram_connect(x->ud, peer), 0);
}
static tide_future_t *mk_ud_recv(cctx_t *x) {
    return tide_unix_dgram_recv(&x->u.drecv, x->ud, x->small, sizeof x->small);
}

static tide_future_t *mk_ud_recv_from(cctx_t *x) {
    return tide_unix_dgram_recv_from(&x->u.drecv, x->ud, x->small,
                                     sizeof x->small);
}
static void vf_ud_recv(cctx_t *x, tide_future_t *f, bool done) {
    if (done) {
        ck_assert_int_eq(f->result, 2);
        return;
    }
    if (x->dgrams == 0)
        feed_dgram(x);
    tide_dgram_recv_t r;
    ck_assert_int_eq(t_run(x->ex, tide_unix_dgram_recv_from(&r, x->ud, x->small,
                                                            sizeof x->small)),
                     2);
    ck_assert_int_eq(memcmp(x->small, "d0", 2), 0);
}

/* ------------------------------------------------------------------------
 * sync
 * ------------------------------------------------------------------------ */

/* oneshot: fed by a send; a dropped receive makes the send fail */
static void setup_oneshot(cctx_t *x) {
    tide_oneshot_init(&x->os, NULL, NULL);
    x->os_on = true;
}
static void feed_oneshot(cctx_t *x) {
    ck_assert_int_eq(tide_oneshot_send(&x->os, 9), 0);
    x->os_sent = true;
    x->dgrams++;
}
static tide_future_t *mk_oneshot(cctx_t *x) {
    return tide_oneshot_recv(&x->u.orecv, &x->os);
}
static void vf_oneshot(cctx_t *x, tide_future_t *f, bool done) {
    if (done) {
        ck_assert_int_eq(f->result, 0);
        ck_assert_int_eq(tide_oneshot_recv_value(&x->u.orecv), 9);
        return;
    }
    ck_assert(!x->os_sent);
    ck_assert_int_eq(tide_oneshot_send(&x->os, 9), -EPIPE);
    x->os_sent = true;
}

/* mpsc receive: fed one item; a dropped receive took nothing */
static void setup_mpsc(cctx_t *x) {
    ck_assert_int_eq(tide_mpsc_init(&x->ch, sizeof(int), 1), 0);
    x->ch_on = true;
}
static void feed_mpsc_item(cctx_t *x) {
    int v = 7;
    ck_assert_int_eq(tide_mpsc_try_send(&x->ch, &v), 0);
    x->dgrams++;
}
static tide_future_t *mk_mpsc_recv(cctx_t *x) {
    return tide_mpsc_recv(&x->u.mrecv, &x->ch, &x->sync_out);
}
static void vf_mpsc_recv(cctx_t *x, tide_future_t *f, bool done) {
    if (done) {
        ck_assert_int_eq(f->result, 1);
        ck_assert_int_eq(x->sync_out, 7);
        return;
    }
    if (x->dgrams == 0)
        feed_mpsc_item(x);
    int out = 0;
    ck_assert_int_eq(tide_mpsc_try_recv(&x->ch, &out), 1);
    ck_assert_int_eq(out, 7);
}

/* mpsc send on a full channel: fed by a receive (which reserves the slot
 * for it); a dropped send sent nothing and holds no slot */
static void setup_mpsc_full(cctx_t *x) {
    setup_mpsc(x);
    int v = 100;
    ck_assert_int_eq(tide_mpsc_try_send(&x->ch, &v), 0);
    x->sync_item = 200;
}
static void feed_mpsc_slot(cctx_t *x) {
    int out = 0;
    ck_assert_int_eq(tide_mpsc_try_recv(&x->ch, &out), 1);
    ck_assert_int_eq(out, 100);
    x->dgrams++;
}
static tide_future_t *mk_mpsc_send(cctx_t *x) {
    return tide_mpsc_send(&x->u.msend, &x->ch, &x->sync_item);
}
static void vf_mpsc_send(cctx_t *x, tide_future_t *f, bool done) {
    int out = 0, v = 300;
    if (done) {
        ck_assert_int_eq(f->result, 0);
        ck_assert_int_eq(tide_mpsc_try_recv(&x->ch, &out), 1);
        ck_assert_int_eq(out, 200);
        return;
    }
    if (x->dgrams == 0)
        feed_mpsc_slot(x);
    ck_assert_int_eq(tide_mpsc_try_recv(&x->ch, &out), -EAGAIN); /* not sent */
    ck_assert_int_eq(tide_mpsc_try_send(&x->ch, &v), 0);         /* slot free */
}

/* notified: fed by notify_one; a dropped wait leaves the notification */
static void setup_notify(cctx_t *x) {
    ck_assert_int_eq(tide_notify_init(&x->nt), 0);
    x->nt_on = true;
}
static void feed_notify(cctx_t *x) {
    tide_notify_one(&x->nt);
    x->dgrams++;
}
static tide_future_t *mk_notified(cctx_t *x) {
    return tide_notified(&x->u.notified, &x->nt);
}
static void vf_notified(cctx_t *x, tide_future_t *f, bool done) {
    if (done) {
        ck_assert_int_eq(f->result, 0);
        return;
    }
    if (x->dgrams == 0)
        feed_notify(x); /* nobody waits now: stored */
    tide_notified_t n;
    ck_assert_int_eq(t_run(x->ex, tide_notified(&n, &x->nt)), 0);
}

/* semaphore acquire of 2 with 1 free: holds 1 at once, fed 1; a
 * dropped acquire gives back all it held */
static void setup_sem(cctx_t *x) {
    ck_assert_int_eq(tide_semaphore_init(&x->sem, 1), 0);
    x->sem_on = true;
}
static void feed_sem(cctx_t *x) {
    ck_assert_int_eq(tide_semaphore_release(&x->sem, 1), 0);
    x->dgrams++;
}
static tide_future_t *mk_acquire(cctx_t *x) {
    return tide_semaphore_acquire(&x->u.acquire, &x->sem, 2);
}
static void vf_acquire(cctx_t *x, tide_future_t *f, bool done) {
    if (done) {
        ck_assert_int_eq(f->result, 0);
        ck_assert_uint_eq(tide_semaphore_available(&x->sem), 0);
        return;
    }
    ck_assert_uint_eq(tide_semaphore_available(&x->sem),
                      1u + (unsigned)x->dgrams);
    ck_assert_int_eq(
        tide_semaphore_try_acquire(&x->sem, 1u + (unsigned)x->dgrams), 0);
}

/* ------------------------------------------------------------------------
 * The table
 * ------------------------------------------------------------------------ */

static const centry_t entries[] = {
    /* io */
    {"read", pair_a, mk_read, feed1, vf_read, 0},
    {"read_exact", pair_a, mk_read_exact, feed1, vf_read_exact, 0},
    {"write", setup_write, mk_write, drain_peer, vf_write, 0},
    {"writev", setup_write, mk_writev, drain_peer, vf_write, 0},
    {"write_all", setup_write, mk_write_all, drain_peer, vf_write_all, 0},
    {"writev_all", setup_write, mk_writev_all, drain_peer, vf_writev_all, 0},
    {"flush", pair_a, mk_flush, nothing, vf_flush, 0},
    {"shutdown", pair_a, mk_shutdown, nothing, vf_shutdown, 0},
    {"copy", setup_copy, mk_copy, feed_copy, vf_copy, 0},
    {"copy_bidirectional", setup_copy, mk_bi, feed_bi, vf_bi, 0},
    {"bufreader_fill", setup_br, mk_fill, feed1, vf_fill, 0},
    {"read_line", setup_br, mk_read_line, feed_line, vf_read_line, 0},
    {"read_until", setup_br, mk_read_until, feed_line, vf_read_until, 0},
    {"linecodec_decode", setup_br, mk_line_decode, feed_line, vf_line_decode,
     0},
    {"lencodec_decode", setup_br, mk_len_decode, feed_lframe, vf_len_decode, 0},
    {"linecodec_encode", setup_enc, mk_line_encode, drain_peer, vf_line_encode,
     0},
    {"lencodec_encode", setup_enc, mk_len_encode, drain_peer, vf_len_encode, 0},
    /* libevent bridges: a bufferevent stream */
    {"bevstream read", setup_bev, mk_read, feed1, vf_read, 0},
    {"bevstream read_exact", setup_bev, mk_read_exact, feed1, vf_read_exact, 0},
    {"bevstream write", setup_bev_write, mk_write, drain_peer, vf_bev_write, 0},
    {"bevstream write_all", setup_bev_write, mk_write_all, drain_peer,
     vf_bev_write_all, 0},
    {"bevstream flush", setup_bev_write, mk_flush, drain_peer, vf_bev_flush, 0},
    {"bevstream shutdown", setup_bev_write, mk_shutdown, drain_peer,
     vf_bev_shutdown, 0},
#if TIDE_HAVE_TLS
    /* TLS (tide/tls.h): a client against a tide server; names start with
     * "tls" (skipped without certificates) */
    {"tls_handshake", setup_tls_hs, mk_tls_handshake, feed_tls_hs,
     vf_tls_handshake, 0},
    {"tls_handshake(TLS 1.2)", setup_tls12_hs, mk_tls_handshake, feed_tls_hs,
     vf_tls_handshake, 0},
    {"tls read", setup_tls, mk_read, feed1, vf_read, 0},
    {"tls read_exact", setup_tls, mk_read_exact, feed1, vf_read_exact, 0},
    {"tls write", setup_tls_write, mk_write, drain_peer, vf_tls_write, 0},
    {"tls write_all", setup_tls_write, mk_write_all, drain_peer,
     vf_tls_write_all, 0},
    {"tls flush", setup_tls_write, mk_flush, drain_peer, vf_tls_flush, 0},
    {"tls shutdown", setup_tls_write, mk_shutdown, drain_peer, vf_tls_shutdown,
     0},
#endif
    /* libevent bridges: an evconnlistener */
    {"evlistener_accept", setup_evl, mk_evl_accept, feed_client, vf_evl_accept,
     0},
    {"evlistener_accept_conn", setup_evl, mk_evl_accept_conn, feed_client,
     vf_evl_accept, 0},
    /* reactor */
    {"fd_readable", setup_reg, mk_readable, feed_reg, vf_readable, 0},
    {"fd_writable", setup_reg_full, mk_writable, drain_reg, vf_writable, 0},
    {"fd_ready", setup_reg_full, mk_ready, feed_reg, vf_readable, 0},
    {"fd_async_io", setup_reg, mk_async_io, feed_reg, vf_async_io, 0},
    /* time, signals */
    {"sleep", NULL, mk_sleep, nothing, vf_none, 0},
    {"sleep_until", NULL, mk_sleep_until, nothing, vf_none, 0},
    {"interval_tick", setup_interval, mk_tick, nothing, vf_tick, 0},
    {"timeout", pair_a, mk_timeout, nothing, vf_timeout, 0},
    {"signal_recv", setup_signal, mk_signal, feed_signal, vf_signal, 0},
    /* core */
    {"join", setup_join, mk_join, feed1, vf_join, 0},
    {"join_all", setup_copy, mk_join_all, feed_both, vf_join_all, 0},
    {"select", pair_a, mk_select, feed1, vf_select, 0},
    {"yield", NULL, mk_yield, nothing, vf_none, 0},
    {"ready", NULL, mk_ready_f, nothing, vf_none, 0},
    {"pending", NULL, mk_pending, nothing, vf_none, 3},
    /* task */
    {"token_cancelled", setup_token, mk_token, feed_token, vf_token, 0},
    {"scope_wait", setup_scope, mk_scope_wait, feed1, vf_scope_wait, 0},
    {"spawn_blocking", setup_blocking, mk_blocking, nothing, vf_blocking, 0},
    /* fs */
    {"fs_open", setup_blocking, mk_fs_open, nothing, vf_fs_open, 0},
    {"file_read", setup_file, mk_file_read, nothing, vf_file_read, 0},
    /* net */
    {"tcp_accept", setup_tcp, mk_tcp_accept, feed_client, vf_tcp_accept, 0},
    {"accept", setup_tcp, mk_accept, feed_client, vf_accept, 0},
    {"serve", setup_tcp, mk_serve, feed_client, vf_serve, 3},
    {"tcp_connect_addr", setup_tcp, mk_tcp_connect, nothing, vf_tcp_connect, 0},
    {"tcp_connect(name)", setup_tcp, mk_tcp_connect_name, nothing,
     vf_tcp_connect, 0},
    {"unix_accept", setup_unix, mk_unix_accept, feed_client, vf_unix_accept, 0},
    {"unix_connect", setup_unix, mk_unix_connect, nothing, vf_unix_connect, 0},
    {"unix_connect(full backlog)", setup_unix_full, mk_unix_connect, accept_one,
     vf_unix_connect, 0},
    {"tcp_connect(no answer)", setup_tcp_full, mk_tcp_connect, nothing,
     vf_tcp_connect_full, 1},
    {"udp_recv_from", setup_udp, mk_udp_recv_from, feed_dgram, vf_udp_recv, 0},
    {"udp_recv", setup_udp_connected, mk_udp_recv, feed_dgram, vf_udp_recv, 0},
    {"udp_send_to", setup_udp, mk_udp_send_to, nothing, vf_udp_send, 0},
    {"udp_send", setup_udp_connected, mk_udp_send, nothing, vf_udp_send, 0},
    {"unix_dgram_send", setup_ud_send, mk_ud_send, drain_ud, vf_ud_send, 0},
    {"unix_dgram_send_to", setup_ud_send_to, mk_ud_send_to, drain_ud,
     vf_ud_send, 0},
    {"unix_dgram_recv_from", setup_ud_recv, mk_ud_recv_from, feed_dgram,
     vf_ud_recv, 0},
    {"unix_dgram_recv", setup_ud_recv_connected, mk_ud_recv, feed_dgram,
     vf_ud_recv, 0},
    /* sync */
    {"oneshot_recv", setup_oneshot, mk_oneshot, feed_oneshot, vf_oneshot, 0},
    {"mpsc_recv", setup_mpsc, mk_mpsc_recv, feed_mpsc_item, vf_mpsc_recv, 0},
    {"mpsc_send", setup_mpsc_full, mk_mpsc_send, feed_mpsc_slot, vf_mpsc_send,
     0},
    {"notified", setup_notify, mk_notified, feed_notify, vf_notified, 0},
    {"semaphore_acquire", setup_sem, mk_acquire, feed_sem, vf_acquire, 0},
};
#define NENTRIES ((int)(sizeof entries / sizeof entries[0]))

static void teardown(cctx_t *x) {
    if (x->tok_on)
        tide_token_free(&x->tok);
    if (x->scope_on) {
        /* the child left is aborted: dropped at the executor's next turn */
        tide_scope_free(&x->scope);
        ck_assert(
            t_loop_until(tide_exec_base(x->ex), no_tasks, x->ex, T_BOUND_MS));
    }
    if (x->tick_on)
        event_del(&x->tick);
    tide_file_free(x->file);
    if (x->iv_on)
        tide_interval_drop(&x->iv);
    if (x->sig_on)
        tide_signal_free(&x->sig);
    if (x->os_on && !x->os_sent)
        tide_oneshot_close(&x->os);
    if (x->ch_on)
        tide_mpsc_free(&x->ch);
    if (x->nt_on)
        tide_notify_free(&x->nt);
    if (x->sem_on)
        tide_semaphore_free(&x->sem);
#if TIDE_HAVE_TLS
    /* before their inner streams and configs */
    tide_tls_free(x->ctls);
    tide_tls_free(x->stls);
    tide_unix_free(x->su);
    tide_tls_config_free(x->ccfg);
    tide_tls_config_free(x->scfg);
#endif
    tide_bevstream_free(x->bs);
    tide_evlistener_free(x->evl);
    tide_unix_free(x->a);
    tide_unix_free(x->c);
    tide_fd_free(x->reg);
    tide_tcp_listener_free(x->tl);
    tide_unix_listener_free(x->ul);
    tide_udp_free(x->udp);
    tide_unix_dgram_free(x->ud);
    int fds[] = {x->peer, x->peer2, x->regpeer, x->rawfd};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        if (fds[i] > 0)
            close(fds[i]);
    for (int i = 0; i < x->nclients; i++)
        close(x->clients[i]);
}

typedef struct woke {
    t_hand_t *h;
    int before;
} woke_t;

static bool woken_since(void *arg) {
    woke_t *w = arg;
    return t_woken(&w->h->count) > w->before;
}

/* Events armed on descriptors for nobody: the reactor keeps a direction's
 * event in the epoll set after the operation that armed it completed (it
 * is removed the first time it fires for nobody, or with its
 * registration); that is by design, not a leak. Counted white-box, so
 * that what a dropped future leaves behind can be told apart. */
static size_t idle_armed(tide_exec_t *ex) {
    size_t n = 0;
    struct tide__reactor *r = tide__reactor_of(ex);
    for (size_t i = 0; r != NULL && i < r->cap; i++) {
        struct tide_fd *reg = r->fds[i];
        if (reg == NULL)
            continue;
        for (int d = 0; d < 2; d++)
            if ((reg->armed & (1u << d)) && tide_waitq_is_empty(&reg->dir[d].q))
                n++;
    }
    return n;
}

/* Events armed with somebody to wake (or timers, signals). */
static size_t busy_armed(tide_exec_t *ex) {
    return t_stats(ex).armed_events - idle_armed(ex);
}

/* Run e's future to its k-th PENDING and drop it there (or let it
 * complete first). Returns true if it completed. */
static bool run_k(const centry_t *e, int k, int *pendings) {
    cctx_t *x = calloc(1, sizeof *x);
    x->got = malloc(GOT_MAX);
    x->peer = x->peer2 = x->regpeer = x->rawfd = -1;
    x->ex = t_exec_new();
    if (e->setup != NULL)
        e->setup(x);
    size_t busy0 = busy_armed(x->ex);
    size_t reg0 = t_stats(x->ex).registered;
    t_hand_t h;
    t_hand_init(&h, x->ex);
    tide_future_t *f = e->make(x);
    int pend = 0;
    bool done = false;
    for (;;) {
        woke_t w = {&h, t_woken(&h.count)};
        if (t_hand_poll(&h, f) == TIDE_READY) {
            done = true;
            break;
        }
        pend++;
        if (pend == k)
            break;
        e->feed(x);
        if (e->max_k != 0)
            continue; /* nothing will ever wake it */
        ck_assert_msg(
            t_loop_until(tide_exec_base(x->ex), woken_since, &w, T_BOUND_MS),
            "%s: not woken after pending %d", e->name, pend);
    }
    tide_future_drop(f);
    /* the dropped future left no waker behind: only our own reference */
    ck_assert_msg(atomic_load(&h.count.refs) == 1,
                  "%s dropped at pending %d: %d waker reference(s) left",
                  e->name, pend, atomic_load(&h.count.refs) - 1);
    if (!done) {
        ck_assert_msg(busy_armed(x->ex) == busy0,
                      "%s dropped at pending %d: %zu event(s) left armed",
                      e->name, pend, busy_armed(x->ex) - busy0);
        ck_assert_uint_eq(t_stats(x->ex).registered, reg0);
        /* and nothing wakes us later */
        int w0 = t_woken(&h.count);
        t_run_for(tide_exec_base(x->ex), 3);
        ck_assert_msg(t_woken(&h.count) == w0, "%s: woken after its drop",
                      e->name);
    }
    e->verify(x, f, done);
    t_hand_done(&h);
    teardown(x);
    /* the lazily kept events went with their registrations */
    t_exec_free_clean(x->ex);
    ck_assert_msg(fault_live_allocs() == 0,
                  "%s dropped at pending %d: %ld leaked", e->name, pend,
                  fault_live_allocs());
    free(x->got);
    free(x);
    *pendings = pend;
    return done;
}

START_TEST(test_cancel_every_pending_point) {
    const centry_t *e = &entries[_i];
    int k, pend = 0;
#if TIDE_HAVE_TLS
    if (strncmp(e->name, "tls", 3) == 0 && certs[0] == '\0') {
        printf("cancel: %-27s skipped: no openssl program to make the "
               "certificates with\n",
               e->name);
        return;
    }
#endif
    for (k = 1; k < 200; k++) {
        if (run_k(e, k, &pend))
            break;
        if (e->max_k != 0 && k >= e->max_k)
            break;
    }
    ck_assert_msg(k < 200, "%s: still pending after 200 polls", e->name);
    bool never = e->max_k != 0 && k >= e->max_k;
    printf("cancel: %-27s dropped at each of %d pending point(s)%s\n", e->name,
           never ? k : k - 1,
           never ? " (never completes)" : ", then completed");
}
END_TEST

static Suite *cancel_suite(void) {
    Suite *s = suite_create("cancel");
    TCase *tc = t_tcase(s, "every_future", 60);
    tcase_add_loop_test(tc, test_cancel_every_pending_point, 0, NENTRIES);
    return s;
}

int main(void) {
#if TIDE_HAVE_TLS
    /* The TLS entries' certificates; without an openssl program to make
     * them, certs stays empty and those entries pass as skipped. */
    if (t_tls_certs_make(certs, sizeof certs, "tide-cancel",
                         "tls entries skipped") == 99)
        return 99;
#endif
    int rc = t_run_suite(cancel_suite());
#if TIDE_HAVE_TLS
    if (certs[0] != '\0')
        t_tls_certs_remove(certs);
#endif
    return rc;
}
