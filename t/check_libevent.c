/*
 * t/check_libevent.c: the bridges of tide/libevent.h.
 *
 * The bufferevent stream is tested twice over (loop tests, _i): over a
 * socket bufferevent (kind 0) and over a pass-through filter on one
 * (kind 1), which is how an OpenSSL bufferevent sits on its socket.
 */
#include <netinet/in.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>

#include "testutil.h"

#include <tide/libevent.h>

/* ------------------------------------------------------------------------
 * Fixture: a bufferevent stream on one end of a pair, the other end raw
 * ------------------------------------------------------------------------ */

enum { K_SOCKET = 0, K_FILTER = 1 };

typedef struct fx {
    tide_exec_t *ex;
    struct event_base *base;
    struct bufferevent *bev; /* the top one: the filter for K_FILTER */
    tide_bevstream_t *bs;
    tide_stream_t *s;
    int peer; /* raw, non-blocking */
} fx_t;

static int filter_calls;

/* A filter that copies everything through, as a TLS bufferevent would
 * move bytes, without changing them. */
static enum bufferevent_filter_result pass(struct evbuffer *src,
                                           struct evbuffer *dst, ev_ssize_t lim,
                                           enum bufferevent_flush_mode mode,
                                           void *ctx) {
    (void)mode;
    (void)ctx;
    filter_calls++;
    size_t n = evbuffer_get_length(src);
    if (lim >= 0 && (size_t)lim < n)
        n = (size_t)lim;
    if (n > 0)
        evbuffer_remove_buffer(src, dst, n);
    return BEV_OK;
}

/* A bufferevent over fd (the stream owns it, and it closes fd). */
static struct bufferevent *bev_over(struct event_base *base, int fd, int kind) {
    struct bufferevent *b =
        bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    ck_assert_ptr_nonnull(b);
    if (kind == K_FILTER) {
        b = bufferevent_filter_new(b, pass, pass, BEV_OPT_CLOSE_ON_FREE, NULL,
                                   NULL);
        ck_assert_ptr_nonnull(b);
    }
    return b;
}

static void fx_open_fds(fx_t *f, int kind, int mine, int peer) {
    f->ex = t_exec_new();
    f->base = tide_exec_base(f->ex);
    f->peer = peer;
    f->bev = bev_over(f->base, mine, kind);
    ck_assert_int_eq(tide_bevstream_new(&f->bs, f->ex, f->bev, TIDE_BEV_OWN),
                     0);
    f->s = tide_bevstream_stream(f->bs);
    ck_assert_ptr_eq(tide_bevstream_bev(f->bs), f->bev);
}

static void fx_open(fx_t *f, int kind) {
    int sv[2];
    t_socketpair(sv);
    fx_open_fds(f, kind, sv[0], sv[1]);
}

static void fx_open_tcp(fx_t *f, int kind) {
    int c, s;
    t_tcp_pair(&c, &s);
    fx_open_fds(f, kind, c, s);
}

static void fx_close(fx_t *f) {
    tide_bevstream_free(f->bs);
    if (f->peer >= 0)
        close(f->peer);
    t_exec_free_clean(f->ex);
}

/* Read exactly n bytes from the raw peer, running the loop meanwhile. */
static void peer_read(fx_t *f, char *buf, size_t n) {
    size_t got = 0;
    uint64_t deadline = tide_now() + (uint64_t)t_watchdog_ms(T_BOUND_MS) * 1000;
    while (got < n) {
        ssize_t r = read(f->peer, buf + got, n - got);
        if (r > 0) {
            got += (size_t)r;
            continue;
        }
        ck_assert_msg(r < 0 && errno == EAGAIN, "peer read: %zd (%s)", r,
                      strerror(errno));
        ck_assert_msg(tide_now() < deadline, "peer read: %zu of %zu bytes", got,
                      n);
        event_base_loop(f->base, EVLOOP_NONBLOCK);
        t_sleep_ms(1);
    }
}

static unsigned char pat(size_t i) { return (unsigned char)(i * 7 + i / 251); }

/* ------------------------------------------------------------------------
 * The stream
 * ------------------------------------------------------------------------ */

START_TEST(test_bevstream_echo_round_trip) {
    fx_t f;
    fx_open(&f, _i);
    tide_write_all_t wa;
    ck_assert_int_eq(t_run(f.ex, tide_write_all(&wa, f.s, "hello", 5)), 5);
    tide_flush_t fl;
    ck_assert_int_eq(t_run(f.ex, tide_flush(&fl, f.s)), 0);
    ck_assert_uint_eq(evbuffer_get_length(bufferevent_get_output(f.bev)), 0);
    char buf[16] = {0};
    peer_read(&f, buf, 5);
    ck_assert_str_eq(buf, "hello");

    ck_assert_int_eq(write(f.peer, "world", 5), 5);
    tide_read_exact_t re;
    memset(buf, 0, sizeof buf);
    ck_assert_int_eq(t_run(f.ex, tide_read_exact(&re, f.s, buf, 5)), 5);
    ck_assert_str_eq(buf, "world");

    /* writev gathers into the output evbuffer */
    struct iovec iov[3] = {{"ab", 2}, {"", 0}, {"cde", 3}};
    tide_writev_t wv;
    ck_assert_int_eq(t_run(f.ex, tide_writev(&wv, f.s, iov, 3)), 5);
    ck_assert_int_eq(t_run(f.ex, tide_flush(&fl, f.s)), 0);
    memset(buf, 0, sizeof buf);
    peer_read(&f, buf, 5);
    ck_assert_str_eq(buf, "abcde");
    if (_i == K_FILTER)
        ck_assert_int_gt(filter_calls, 0);
    fx_close(&f);
}
END_TEST

/* The big transfer: a writer of N bytes through the bufferevent stream, a
 * reader on the other end that sleeps every 256 KiB, so that the writer's
 * poll_write has to pend on the watermark and resume. */
#define BIG_N (4u << 20)

typedef struct slow_reader {
    tide_future_t fut;
    tide_async_t co;
    tide_unix_t *u;
    tide_read_t rd;
    tide_sleep_t nap;
    size_t got, next_nap;
    size_t max_queued;
    struct bufferevent *bev; /* the writer's, to watch its queue */
    unsigned char buf[4096];
} slow_reader_t;

static size_t chain_queued(struct bufferevent *b) {
    size_t n = 0;
    for (; b != NULL; b = bufferevent_get_underlying(b))
        n += evbuffer_get_length(bufferevent_get_output(b));
    return n;
}

static tide_poll_t slow_reader_poll(tide_future_t *f, tide_cx_t *cx) {
    slow_reader_t *r = TIDE_CONTAINER_OF(f, slow_reader_t, fut);
    TIDE_BEGIN(&r->co);
    while (r->got < BIG_N) {
        TIDE_AWAIT(
            &r->co, cx,
            tide_read(&r->rd, tide_unix_stream(r->u), r->buf, sizeof r->buf));
        {
            intptr_t n = tide_async_result(&r->co);
            ck_assert_msg(n > 0, "read at %zu: %jd", r->got, (intmax_t)n);
            /* One assertion a read, not a byte: each passing ck_assert
             * is a message to Check's runner (4 MiB of them took valgrind
             * runs minutes to read back). */
            intptr_t bad = 0;
            while (bad < n && r->buf[bad] == pat(r->got + (size_t)bad))
                bad++;
            ck_assert_msg(bad == n, "byte %zu differs", r->got + (size_t)bad);
            r->got += (size_t)n;
            size_t q = chain_queued(r->bev);
            if (q > r->max_queued)
                r->max_queued = q;
        }
        if (r->got >= r->next_nap) {
            r->next_nap += 256u << 10;
            TIDE_AWAIT(&r->co, cx, tide_sleep(&r->nap, 1000));
        }
    }
    TIDE_END(&r->co, f, (intptr_t)r->got);
}

static void slow_reader_drop(tide_future_t *f) {
    tide_async_drop(&TIDE_CONTAINER_OF(f, slow_reader_t, fut)->co);
}

static const tide_future_vtable_t slow_reader_vt = {slow_reader_poll,
                                                    slow_reader_drop};

START_TEST(test_bevstream_large_transfer_with_backpressure) {
    int sv[2];
    t_socketpair(sv);
    fx_t f;
    fx_open_fds(&f, _i, sv[0], -1);
    unsigned char *data = malloc(BIG_N);
    ck_assert_ptr_nonnull(data);
    for (size_t i = 0; i < BIG_N; i++)
        data[i] = pat(i);
    slow_reader_t *r = calloc(1, sizeof *r);
    ck_assert_int_eq(tide_unix_from_fd(&r->u, f.ex, sv[1]), 0);
    r->bev = f.bev;
    r->next_nap = 256u << 10;
    tide_future_init(&r->fut, &slow_reader_vt);

    tide_write_all_t wa;
    t_wrap_t w; /* counts the writer's polls: each one after the first
                 * followed a PENDING */
    tide_future_t *futs[2] = {t_wrap(&w, tide_write_all(&wa, f.s, data, BIG_N)),
                              &r->fut};
    tide_join_all_t ja;
    ck_assert_int_eq(t_block_on_ms(f.ex, tide_join_all(&ja, futs, 2), 20000),
                     0);
    tide_future_drop(&ja.fut);
    ck_assert_int_eq(w.fut.result, (intptr_t)BIG_N);
    ck_assert_int_eq(r->fut.result, (intptr_t)BIG_N);
    ck_assert_msg(w.polls > 8, "the writer pended only %d times", w.polls - 1);
    ck_assert_msg(r->max_queued <= TIDE_BEV_WRITE_HIGH,
                  "%zu bytes queued, over the high mark", r->max_queued);
    tide_unix_free(r->u);
    free(r);
    free(data);
    fx_close(&f);
}
END_TEST

START_TEST(test_bevstream_eof_after_buffered_data) {
    fx_t f;
    fx_open(&f, _i);
    ck_assert_int_eq(write(f.peer, "abc", 3), 3);
    ck_assert_int_eq(shutdown(f.peer, SHUT_WR), 0);
    /* let the bufferevent read the bytes and the end before anyone reads */
    t_run_for(f.base, 50);
    char buf[8] = {0};
    tide_read_exact_t re;
    ck_assert_int_eq(t_run(f.ex, tide_read_exact(&re, f.s, buf, 3)), 3);
    ck_assert_str_eq(buf, "abc");
    tide_read_t rd;
    ck_assert_int_eq(t_run(f.ex, tide_read(&rd, f.s, buf, sizeof buf)), 0);
    ck_assert_int_eq(t_run(f.ex, tide_read(&rd, f.s, buf, sizeof buf)), 0);
    /* our side can still write, then shut down: the peer reads its end */
    tide_write_all_t wa;
    ck_assert_int_eq(t_run(f.ex, tide_write_all(&wa, f.s, "xy", 2)), 2);
    tide_shutdown_t sd;
    ck_assert_int_eq(t_run(f.ex, tide_shutdown(&sd, f.s)), 0);
    memset(buf, 0, sizeof buf);
    peer_read(&f, buf, 2);
    ck_assert_str_eq(buf, "xy");
    ssize_t n;
    while ((n = read(f.peer, buf, 1)) < 0 && errno == EAGAIN)
        event_base_loop(f.base, EVLOOP_NONBLOCK);
    ck_assert_int_eq(n, 0);
    tide_write_t wr;
    ck_assert_int_eq(t_run(f.ex, tide_write(&wr, f.s, "z", 1)), -EPIPE);
    ck_assert_int_eq(t_run(f.ex, tide_shutdown(&sd, f.s)), 0);
    fx_close(&f);
}
END_TEST

START_TEST(test_bevstream_reset_is_an_errno) {
    fx_t f;
    fx_open_tcp(&f, _i);
    /* a byte our side has not read yet, then a reset */
    ck_assert_int_eq(write(f.peer, "q", 1), 1);
    t_run_for(f.base, 20);
    struct linger lg = {1, 0};
    ck_assert_int_eq(setsockopt(f.peer, SOL_SOCKET, SO_LINGER, &lg, sizeof lg),
                     0);
    close(f.peer);
    f.peer = -1;
    char buf[8];
    tide_read_t rd;
    ck_assert_int_eq(t_run(f.ex, tide_read(&rd, f.s, buf, sizeof buf)), 1);
    ck_assert_int_eq(buf[0], 'q');
    ck_assert_int_eq(t_run(f.ex, tide_read(&rd, f.s, buf, sizeof buf)),
                     -ECONNRESET);
    /* sticky, and writes see it too */
    ck_assert_int_eq(t_run(f.ex, tide_read(&rd, f.s, buf, sizeof buf)),
                     -ECONNRESET);
    tide_write_t wr;
    ck_assert_int_eq(t_run(f.ex, tide_write(&wr, f.s, "z", 1)), -ECONNRESET);
    fx_close(&f);
}
END_TEST

START_TEST(test_bevstream_timeout_is_etimedout) {
    fx_t f;
    fx_open(&f, _i);
    struct timeval tv = {0, 100000};
    ck_assert_int_eq(bufferevent_set_timeouts(f.bev, &tv, NULL), 0);
    char buf[8];
    tide_read_t rd;
    uint64_t t0 = tide_now();
    ck_assert_int_eq(t_run(f.ex, tide_read(&rd, f.s, buf, sizeof buf)),
                     -ETIMEDOUT);
    ck_assert_uint_ge(tide_now() - t0, 90000);
    /* once: the next read waits again, and gets what comes */
    ck_assert_int_eq(write(f.peer, "k", 1), 1);
    ck_assert_int_eq(t_run(f.ex, tide_read(&rd, f.s, buf, sizeof buf)), 1);
    ck_assert_int_eq(buf[0], 'k');
    ck_assert_int_eq(t_run(f.ex, tide_read(&rd, f.s, buf, sizeof buf)),
                     -ETIMEDOUT);
    fx_close(&f);
}
END_TEST

START_TEST(test_bevstream_free_under_pending_read_and_write) {
    fx_t f;
    fx_open(&f, _i);
    t_fill(f.peer); /* so that nothing we write can drain quickly */
    static unsigned char big[1u << 20];
    t_hand_t h;
    t_hand_init(&h, f.ex);
    char buf[8];
    tide_read_t rd;
    tide_write_all_t wa;
    tide_future_t *r = tide_read(&rd, f.s, buf, sizeof buf);
    tide_future_t *w = tide_write_all(&wa, f.s, big, sizeof big);
    ck_assert_int_eq(t_hand_poll(&h, r), TIDE_PENDING);
    ck_assert_int_eq(t_hand_poll(&h, w), TIDE_PENDING);
    ck_assert_uint_ge(wa.done, 1);
    int woken = t_woken(&h.count);
    tide_bevstream_free(f.bs);
    f.bs = NULL;
    ck_assert_int_ge(t_woken(&h.count), woken + 2);
    ck_assert_int_eq(t_hand_poll(&h, r), TIDE_READY);
    ck_assert_int_eq(r->result, -EBADF);
    ck_assert_int_eq(t_hand_poll(&h, w), TIDE_READY);
    ck_assert_int_eq(w->result, -EBADF);
    tide_future_drop(r);
    tide_future_drop(w);
    t_hand_done(&h);
    fx_close(&f);
}
END_TEST

/* An echo through tide_copy (the stream copied onto itself) against a
 * client on the other end that writes, shuts down, and reads it all back. */
#define ECHO_N 300000u

typedef struct writer {
    tide_future_t fut;
    tide_async_t co;
    tide_stream_t *s;
    tide_write_all_t wa;
    tide_shutdown_t sd;
    const unsigned char *out;
} writer_t;

/* write everything, then shut down (the copy then reads its end) */
static tide_poll_t writer_poll(tide_future_t *f, tide_cx_t *cx) {
    writer_t *w = TIDE_CONTAINER_OF(f, writer_t, fut);
    TIDE_BEGIN(&w->co);
    TIDE_AWAIT(&w->co, cx, tide_write_all(&w->wa, w->s, w->out, ECHO_N));
    ck_assert_int_eq(tide_async_result(&w->co), ECHO_N);
    TIDE_AWAIT(&w->co, cx, tide_shutdown(&w->sd, w->s));
    TIDE_END(&w->co, f, tide_async_result(&w->co));
}

static void writer_drop(tide_future_t *f) {
    tide_async_drop(&TIDE_CONTAINER_OF(f, writer_t, fut)->co);
}

static const tide_future_vtable_t writer_vt = {writer_poll, writer_drop};

START_TEST(test_bevstream_copy_echo) {
    int sv[2];
    t_socketpair(sv);
    fx_t f;
    fx_open_fds(&f, _i, sv[0], -1);
    tide_unix_t *u;
    ck_assert_int_eq(tide_unix_from_fd(&u, f.ex, sv[1]), 0);
    unsigned char *out = malloc(ECHO_N), *in = calloc(1, ECHO_N);
    for (size_t i = 0; i < ECHO_N; i++)
        out[i] = pat(i);
    writer_t w;
    memset(&w, 0, sizeof w);
    w.s = tide_unix_stream(u);
    w.out = out;
    tide_future_init(&w.fut, &writer_vt);
    tide_copy_buf_t cp;
    tide_read_exact_t re;
    tide_future_t *futs[3] = {tide_copy_default(&cp, f.s, f.s), &w.fut,
                              tide_read_exact(&re, w.s, in, ECHO_N)};
    tide_join_all_t ja;
    ck_assert_int_eq(t_block_on_ms(f.ex, tide_join_all(&ja, futs, 3), 20000),
                     0);
    tide_future_drop(&ja.fut);
    ck_assert_int_eq(cp.copy.fut.result, ECHO_N);
    ck_assert_int_eq(w.fut.result, 0);
    ck_assert_int_eq(re.fut.result, ECHO_N);
    ck_assert(memcmp(in, out, ECHO_N) == 0);
    tide_unix_free(u);
    free(out);
    free(in);
    fx_close(&f);
}
END_TEST

START_TEST(test_bevstream_checks_its_arguments) {
    tide_exec_t *ex = t_exec_new();
    tide_exec_t *other = t_exec_new();
    int sv[2];
    t_socketpair(sv);
    struct bufferevent *b = bev_over(tide_exec_base(other), sv[0], K_SOCKET);
    tide_bevstream_t *bs = NULL;
    ck_assert_int_eq(tide_bevstream_new(&bs, ex, b, 0), -EINVAL);
    ck_assert_int_eq(tide_bevstream_new(NULL, other, b, 0), -EINVAL);
    ck_assert_int_eq(tide_bevstream_new(&bs, other, NULL, 0), -EINVAL);
    ck_assert_int_eq(tide_bevstream_new(&bs, other, b, 0x80), -EINVAL);
    ck_assert_ptr_null(bs);
    /* without TIDE_BEV_OWN the bufferevent is still ours after the free */
    ck_assert_int_eq(tide_bevstream_new(&bs, other, b, 0), 0);
    tide_bevstream_free(bs);
    ck_assert_int_eq(bufferevent_write(b, "x", 1), 0);
    bufferevent_free(b);
    close(sv[1]);
    tide_bevstream_free(NULL);
    t_exec_free_clean(other);
    t_exec_free_clean(ex);
}
END_TEST

/* Drop each future at each point where it pended; what the header
 * promises must still hold: no waker kept, nothing lost (read, flush), or
 * exactly op->done bytes written (write_all). */
START_TEST(test_bevstream_drop_at_every_pending_point) {
    static unsigned char big[600000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = pat(i);
    /* write_all: dropped at its k-th PENDING, the peer gets exactly
     * op->done bytes, and in order */
    for (int k = 1;; k++) {
        fx_t f;
        fx_open(&f, _i);
        t_hand_t h;
        t_hand_init(&h, f.ex);
        tide_write_all_t wa;
        tide_future_t *w = tide_write_all(&wa, f.s, big, sizeof big);
        int pends = 0;
        bool done = false;
        static unsigned char in[sizeof big];
        size_t got = 0;
        for (;;) {
            if (t_hand_poll(&h, w) == TIDE_READY) {
                done = true;
                break;
            }
            if (++pends == k)
                break;
            /* progress: the peer drains a little, the loop moves bytes */
            event_base_loop(f.base, EVLOOP_NONBLOCK);
            ssize_t n = read(f.peer, in + got, 32768);
            if (n > 0)
                got += (size_t)n;
            event_base_loop(f.base, EVLOOP_NONBLOCK);
        }
        size_t written = wa.done;
        tide_future_drop(w);
        t_hand_done(&h);
        tide_flush_t fl;
        /* the rest of what was written still goes out */
        tide_future_t *ff = tide_flush(&fl, f.s);
        t_hand_init(&h, f.ex);
        uint64_t deadline =
            tide_now() + (uint64_t)t_watchdog_ms(T_BOUND_MS) * 1000;
        for (;;) {
            if (!tide_future_is_done(ff))
                t_hand_poll(&h, ff);
            ssize_t n = read(f.peer, in + got, sizeof in - got);
            if (n > 0)
                got += (size_t)n;
            if (tide_future_is_done(ff) && n <= 0)
                break; /* flushed, and the peer has read everything */
            event_base_loop(f.base, EVLOOP_NONBLOCK);
            ck_assert_msg(tide_now() < deadline, "k=%d: %zu of %zu", k, got,
                          written);
        }
        ck_assert_int_eq(ff->result, 0);
        tide_future_drop(ff);
        t_hand_done(&h);
        ck_assert_msg(got == written, "k=%d: peer got %zu, done says %zu", k,
                      got, written);
        ck_assert(memcmp(in, big, got) == 0);
        fx_close(&f);
        if (done)
            break;
        ck_assert_int_lt(k, 2000);
    }
    /* read: dropped while pending, the byte that comes next is not lost */
    {
        fx_t f;
        fx_open(&f, _i);
        t_hand_t h;
        t_hand_init(&h, f.ex);
        char buf[4];
        tide_read_t rd;
        tide_future_t *r = tide_read(&rd, f.s, buf, sizeof buf);
        ck_assert_int_eq(t_hand_poll(&h, r), TIDE_PENDING);
        tide_future_drop(r);
        t_hand_done(&h);
        ck_assert_int_eq(write(f.peer, "m", 1), 1);
        ck_assert_int_eq(t_run(f.ex, tide_read(&rd, f.s, buf, sizeof buf)), 1);
        ck_assert_int_eq(buf[0], 'm');
        fx_close(&f);
    }
    /* flush and shutdown: dropped while the output waits, the write side
     * stays open and the bytes still arrive */
    for (int which = 0; which < 2; which++) {
        fx_t f;
        fx_open(&f, _i);
        t_hand_t h;
        t_hand_init(&h, f.ex);
        tide_write_t wr;
        ck_assert_int_eq(t_run(f.ex, tide_write(&wr, f.s, big, 60000)), 60000);
        tide_flush_t fl;
        tide_shutdown_t sd;
        tide_future_t *p =
            which == 0 ? tide_flush(&fl, f.s) : tide_shutdown(&sd, f.s);
        /* the peer reads nothing yet: the kernel's buffers may take all
         * 60000 bytes in the loop's first pass, so poll before it runs */
        ck_assert_int_eq(t_hand_poll(&h, p), TIDE_PENDING);
        tide_future_drop(p);
        t_hand_done(&h);
        ck_assert_int_eq(t_run(f.ex, tide_write(&wr, f.s, big + 60000, 10)),
                         10);
        static unsigned char in[60010];
        peer_read(&f, (char *)in, sizeof in);
        ck_assert(memcmp(in, big, sizeof in) == 0);
        fx_close(&f);
    }
}
END_TEST

/* ------------------------------------------------------------------------
 * The evconnlistener
 * ------------------------------------------------------------------------ */

typedef struct lfx {
    tide_exec_t *ex;
    struct event_base *base;
    struct evconnlistener *lev;
    tide_evlistener_t *l;
    struct sockaddr_in addr;
} lfx_t;

static void lfx_open(lfx_t *f, unsigned flags) {
    f->ex = t_exec_new();
    f->base = tide_exec_base(f->ex);
    struct sockaddr_in sin = {.sin_family = AF_INET,
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    f->lev = evconnlistener_new_bind(
        f->base, NULL, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 256,
        (struct sockaddr *)&sin, sizeof sin);
    ck_assert_ptr_nonnull(f->lev);
    socklen_t len = sizeof f->addr;
    ck_assert_int_eq(getsockname(evconnlistener_get_fd(f->lev),
                                 (struct sockaddr *)&f->addr, &len),
                     0);
    ck_assert_int_eq(tide_evlistener_new(&f->l, f->ex, f->lev, flags), 0);
    ck_assert_ptr_eq(tide_evlistener_lev(f->l), f->lev);
}

static int lfx_connect(lfx_t *f) {
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(c, 0);
    ck_assert_int_eq(connect(c, (struct sockaddr *)&f->addr, sizeof f->addr),
                     0);
    struct timeval tv = {5, 0};
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return c;
}

/* A server: accept n connections as tide_conn_t, echo 4 bytes on each. */
typedef struct server {
    tide_future_t fut;
    tide_async_t co;
    tide_evlistener_t *l;
    int n, i;
    tide_evaccept_t acc;
    tide_conn_t *conn;
    tide_read_exact_t re;
    tide_write_all_t wa;
    char buf[4];
} server_t;

static tide_poll_t server_poll(tide_future_t *f, tide_cx_t *cx) {
    server_t *s = TIDE_CONTAINER_OF(f, server_t, fut);
    TIDE_BEGIN(&s->co);
    for (s->i = 0; s->i < s->n; s->i++) {
        TIDE_AWAIT(&s->co, cx, tide_evlistener_accept_conn(&s->acc, s->l));
        ck_assert_int_eq(tide_async_result(&s->co), 0);
        ck_assert_int_eq(s->acc.peer.ss.ss_family, AF_INET);
        ck_assert_uint_gt(s->acc.peer.len, 0);
        s->conn = s->acc.conn;
        TIDE_AWAIT(
            &s->co, cx,
            tide_read_exact(&s->re, tide_conn_stream(s->conn), s->buf, 4));
        ck_assert_int_eq(tide_async_result(&s->co), 4);
        TIDE_AWAIT(
            &s->co, cx,
            tide_write_all(&s->wa, tide_conn_stream(s->conn), s->buf, 4));
        ck_assert_int_eq(tide_async_result(&s->co), 4);
        tide_conn_free(s->conn);
        s->conn = NULL;
    }
    TIDE_END(&s->co, f, s->i);
}

static void server_drop(tide_future_t *f) {
    server_t *s = TIDE_CONTAINER_OF(f, server_t, fut);
    tide_async_drop(&s->co);
    tide_conn_free(s->conn);
}

static const tide_future_vtable_t server_vt = {server_poll, server_drop};

START_TEST(test_evlistener_accepts_and_echoes) {
    lfx_t f;
    lfx_open(&f, TIDE_EVL_OWN);
    enum { N = 5 };
    int c[N];
    for (int i = 0; i < N; i++) {
        c[i] = lfx_connect(&f);
        char msg[16];
        snprintf(msg, sizeof msg, "p%03d", i);
        ck_assert_int_eq(write(c[i], msg, 4), 4);
    }
    server_t s;
    memset(&s, 0, sizeof s);
    s.l = f.l;
    s.n = N;
    tide_future_init(&s.fut, &server_vt);
    ck_assert_int_eq(t_run(f.ex, &s.fut), N);
    for (int i = 0; i < N; i++) {
        char want[16], got[16] = {0};
        snprintf(want, sizeof want, "p%03d", i);
        ck_assert_int_eq(read(c[i], got, 4), 4);
        ck_assert_str_eq(got, want);
        close(c[i]);
    }
    tide_evlistener_free(f.l);
    t_exec_free_clean(f.ex);
}
END_TEST

/* More connections than the queue holds, with nobody accepting: the
 * listener stops accepting at TIDE_EVL_QUEUE and resumes as accepts take
 * them, so every one is accepted, none dropped. */
START_TEST(test_evlistener_queue_bound_loses_nothing) {
    lfx_t f;
    lfx_open(&f, TIDE_EVL_OWN);
    enum { N = 2 * TIDE_EVL_QUEUE + 6 };
    static int c[N];
    for (int i = 0; i < N; i++)
        c[i] = lfx_connect(&f);
    t_run_for(f.base, 100); /* the ring fills; the rest wait in the kernel */
    for (int i = 0; i < N; i++) {
        tide_evaccept_t acc;
        intptr_t fd = t_run(f.ex, tide_evlistener_accept(&acc, f.l));
        ck_assert_msg(fd >= 0, "accept %d: %jd", i, (intmax_t)fd);
        ck_assert_int_eq(acc.fd, (int)fd);
        ck_assert(t_is_nonblocking((int)fd));
        /* a connection accepted and dropped would read as a reset or an
         * end here: each must still be open for the client */
        ck_assert_int_eq(write((int)fd, "o", 1), 1);
        close((int)fd);
    }
    for (int i = 0; i < N; i++) {
        char b;
        ck_assert_msg(read(c[i], &b, 1) == 1, "client %d: no byte (%s)", i,
                      strerror(errno));
        close(c[i]);
    }
    tide_evlistener_free(f.l);
    t_exec_free_clean(f.ex);
}
END_TEST

START_TEST(test_evlistener_free_under_pending_accept) {
    lfx_t f;
    lfx_open(&f, 0); /* not owned: the evconnlistener outlives it */
    t_hand_t h;
    t_hand_init(&h, f.ex);
    tide_evaccept_t a1, a2;
    tide_future_t *p1 = tide_evlistener_accept(&a1, f.l);
    tide_future_t *p2 = tide_evlistener_accept_conn(&a2, f.l);
    ck_assert_int_eq(t_hand_poll(&h, p1), TIDE_PENDING);
    ck_assert_int_eq(t_hand_poll(&h, p2), TIDE_PENDING);
    /* one connection queued, never accepted: the free closes it */
    int c = lfx_connect(&f);
    int w0 = t_woken(&h.count);
    t_run_for(f.base, 50);
    ck_assert_int_gt(t_woken(&h.count), w0);
    int extra = lfx_connect(&f); /* fills the ring? no: second slot */
    t_run_for(f.base, 50);
    tide_evlistener_free(f.l);
    ck_assert_int_eq(t_hand_poll(&h, p1), TIDE_READY);
    ck_assert_int_eq(p1->result, -EBADF);
    ck_assert_int_eq(t_hand_poll(&h, p2), TIDE_READY);
    ck_assert_int_eq(p2->result, -EBADF);
    tide_future_drop(p1);
    tide_future_drop(p2);
    t_hand_done(&h);
    /* the queued ones were closed: their clients read the end */
    char b;
    ck_assert_int_eq(read(c, &b, 1), 0);
    ck_assert_int_eq(read(extra, &b, 1), 0);
    close(c);
    close(extra);
    /* left disabled: a new connection is not accepted (and not closed) */
    int late = lfx_connect(&f);
    t_run_for(f.base, 30);
    struct timeval tv = {0, 100000};
    setsockopt(late, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ck_assert_int_eq(read(late, &b, 1), -1);
    ck_assert_int_eq(errno, EAGAIN);
    close(late);
    evconnlistener_free(f.lev);
    t_exec_free_clean(f.ex);
}
END_TEST

START_TEST(test_evlistener_checks_its_arguments) {
    lfx_t f;
    lfx_open(&f, TIDE_EVL_OWN);
    tide_exec_t *other = t_exec_new();
    tide_evlistener_t *l2 = NULL;
    ck_assert_int_eq(tide_evlistener_new(&l2, other, f.lev, 0), -EINVAL);
    ck_assert_int_eq(tide_evlistener_new(&l2, f.ex, f.lev, 0x40), -EINVAL);
    ck_assert_int_eq(tide_evlistener_new(NULL, f.ex, f.lev, 0), -EINVAL);
    ck_assert_ptr_null(l2);
    tide_evlistener_free(NULL);
    tide_evlistener_free(f.l);
    t_exec_free_clean(other);
    t_exec_free_clean(f.ex);
}
END_TEST

/* ------------------------------------------------------------------------
 * Callbacks from futures
 * ------------------------------------------------------------------------ */

/* A future that pends `n` times (waking itself), then answers `value`. */
typedef struct later {
    tide_future_t fut;
    int n;
    intptr_t value;
    int *dropped;
} later_t;

static tide_poll_t later_poll(tide_future_t *f, tide_cx_t *cx) {
    later_t *l = TIDE_CONTAINER_OF(f, later_t, fut);
    if (l->n > 0) {
        l->n--;
        tide_waker_wake_by_ref(cx->waker);
        return TIDE_PENDING;
    }
    f->result = l->value;
    return TIDE_READY;
}

static void later_drop(tide_future_t *f) {
    later_t *l = TIDE_CONTAINER_OF(f, later_t, fut);
    if (l->dropped != NULL)
        (*l->dropped)++;
}

static const tide_future_vtable_t later_vt = {later_poll, later_drop};

static tide_future_t *later(later_t *l, int n, intptr_t value, int *dropped) {
    l->n = n;
    l->value = value;
    l->dropped = dropped;
    return tide_future_init(&l->fut, &later_vt);
}

typedef struct done_rec {
    int calls;
    intptr_t result;
    int dropped_before; /* the future's drops seen when done ran */
    int *dropped;
    tide_exec_t *ex;
    bool on_loop;
    tide_join_t *detach; /* detach this handle from done, if set */
} done_rec_t;

static void on_done(intptr_t result, void *arg) {
    done_rec_t *d = arg;
    d->calls++;
    d->result = result;
    d->dropped_before = d->dropped != NULL ? *d->dropped : -1;
    d->on_loop = d->ex->in_run; /* white-box: from the executor's turn */
    if (d->detach != NULL)
        tide_join_detach(d->detach);
}

START_TEST(test_spawn_cb_runs_once_with_the_result) {
    tide_exec_t *ex = t_exec_new();
    int dropped = 0;
    later_t l;
    done_rec_t d = {.dropped = &dropped, .ex = ex};
    tide_join_t j;
    d.detach = &j;
    ck_assert_int_eq(
        tide_spawn_cb(ex, later(&l, 3, 42, &dropped), on_done, &d, &j), 0);
    ck_assert_int_eq(d.calls, 0); /* never from inside the spawn */
    ck_assert(t_loop_until_int(tide_exec_base(ex), &d.calls, 1));
    t_run_for(tide_exec_base(ex), 20);
    ck_assert_int_eq(d.calls, 1);
    ck_assert_int_eq(d.result, 42);
    ck_assert_int_eq(d.dropped_before, 1); /* after the future's drop */
    ck_assert(d.on_loop);
    /* errors: nothing taken, done never called */
    ck_assert_int_eq(tide_spawn_cb(ex, later(&l, 0, 1, NULL), NULL, &d, &j),
                     -EINVAL);
    ck_assert(tide_join_is_finished(&j)); /* an empty handle */
    ck_assert_int_eq(tide_spawn_cb(NULL, &l.fut, on_done, &d, NULL), -EINVAL);
    t_exec_free_clean(ex);
    ck_assert_int_eq(d.calls, 1);
}
END_TEST

START_TEST(test_spawn_cb_abort_calls_done_with_ecanceled) {
    tide_exec_t *ex = t_exec_new();
    int dropped = 0;
    tide_future_t pend;
    (void)dropped;
    done_rec_t d = {.ex = ex};
    tide_join_t j;
    ck_assert_int_eq(tide_spawn_cb(ex, tide_pending(&pend), on_done, &d, &j),
                     0);
    t_run_for(tide_exec_base(ex), 20);
    ck_assert_int_eq(d.calls, 0);
    tide_join_abort(&j);
    ck_assert_int_eq(d.calls, 0); /* at the executor's next turn */
    ck_assert(t_loop_until_int(tide_exec_base(ex), &d.calls, 1));
    t_run_for(tide_exec_base(ex), 20);
    ck_assert_int_eq(d.calls, 1);
    ck_assert_int_eq(d.result, -ECANCELED);
    ck_assert(tide_join_is_finished(&j));
    tide_join_detach(&j);

    /* freeing the executor: done runs from inside tide_exec_free */
    done_rec_t d2 = {.ex = ex};
    tide_future_t pend2;
    ck_assert_int_eq(
        tide_spawn_cb(ex, tide_pending(&pend2), on_done, &d2, NULL), 0);
    t_run_for(tide_exec_base(ex), 10);
    tide_exec_free(ex);
    ck_assert_int_eq(d2.calls, 1);
    ck_assert_int_eq(d2.result, -ECANCELED);
}
END_TEST

typedef struct ev_rec {
    int calls;
    short what;
    intptr_t result_seen;
    intptr_t *result;
} ev_rec_t;

static void ev_fired(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    ev_rec_t *r = arg;
    r->calls++;
    r->what = what;
    r->result_seen = *r->result;
}

START_TEST(test_spawn_event_fires_once_with_the_result) {
    tide_exec_t *ex = t_exec_new();
    struct event_base *base = tide_exec_base(ex);
    intptr_t result = -1;
    ev_rec_t r = {.result = &result};
    struct event *ev = event_new(base, -1, 0, ev_fired, &r);
    later_t l;
    ck_assert_int_eq(
        tide_spawn_event(ex, later(&l, 2, 7, NULL), ev, &result, NULL), 0);
    ck_assert_int_eq(r.calls, 0);
    ck_assert(t_loop_until_int(base, &r.calls, 1));
    t_run_for(base, 20);
    ck_assert_int_eq(r.calls, 1);
    ck_assert_int_eq(r.result_seen, 7);
    ck_assert(r.what & EV_READ);

    /* aborted: fires with -ECANCELED */
    tide_join_t j;
    tide_future_t pend;
    ck_assert_int_eq(tide_spawn_event(ex, tide_pending(&pend), ev, &result, &j),
                     0);
    t_run_for(base, 10);
    ck_assert_int_eq(r.calls, 1);
    tide_join_abort(&j);
    ck_assert(t_loop_until_int(base, &r.calls, 2));
    ck_assert_int_eq(r.result_seen, -ECANCELED);
    tide_join_detach(&j);

    /* an event on another base is refused */
    tide_exec_t *other = t_exec_new();
    struct event *ev2 = event_new(tide_exec_base(other), -1, 0, ev_fired, &r);
    ck_assert_int_eq(tide_spawn_event(ex, later(&l, 0, 1, NULL), ev2, NULL, &j),
                     -EINVAL);
    ck_assert_int_eq(
        tide_spawn_event(ex, later(&l, 0, 1, NULL), NULL, NULL, NULL), -EINVAL);
    event_free(ev2);
    t_exec_free_clean(other);

    event_free(ev);
    t_exec_free_clean(ex);

    /* freed first: *result says so, and the event does not fire, not even
     * on a host's base that outlives the executor */
    struct event_base *host = event_base_new();
    ck_assert_ptr_nonnull(host);
    ck_assert_int_eq(tide_exec_new(&ex, host, 0), 0);
    ev = event_new(host, -1, 0, ev_fired, &r);
    ck_assert_int_eq(
        tide_spawn_event(ex, tide_pending(&pend), ev, &result, NULL), 0);
    event_base_loop(host, EVLOOP_NONBLOCK);
    result = 0;
    tide_exec_free(ex);
    ck_assert_int_eq(result, -ECANCELED);
    event_base_loop(host, EVLOOP_NONBLOCK);
    ck_assert_int_eq(r.calls, 2);
    event_free(ev);
    event_base_free(host);
}
END_TEST

static Suite *libevent_suite(void) {
    Suite *s = suite_create("libevent");
    TCase *tc = tcase_create("bevstream");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_bevstream_echo_round_trip, 0, 2);
    tcase_add_loop_test(tc, test_bevstream_large_transfer_with_backpressure, 0,
                        2);
    tcase_add_loop_test(tc, test_bevstream_eof_after_buffered_data, 0, 2);
    tcase_add_loop_test(tc, test_bevstream_reset_is_an_errno, 0, 2);
    tcase_add_loop_test(tc, test_bevstream_timeout_is_etimedout, 0, 2);
    tcase_add_loop_test(tc, test_bevstream_free_under_pending_read_and_write, 0,
                        2);
    tcase_add_loop_test(tc, test_bevstream_copy_echo, 0, 2);
    tcase_add_loop_test(tc, test_bevstream_drop_at_every_pending_point, 0, 2);
    tcase_add_test(tc, test_bevstream_checks_its_arguments);
    suite_add_tcase(s, tc);

    tc = tcase_create("evlistener");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_evlistener_accepts_and_echoes);
    tcase_add_test(tc, test_evlistener_queue_bound_loses_nothing);
    tcase_add_test(tc, test_evlistener_free_under_pending_accept);
    tcase_add_test(tc, test_evlistener_checks_its_arguments);
    suite_add_tcase(s, tc);

    tc = tcase_create("spawn_cb");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_spawn_cb_runs_once_with_the_result);
    tcase_add_test(tc, test_spawn_cb_abort_calls_done_with_ecanceled);
    tcase_add_test(tc, test_spawn_event_fires_once_with_the_result);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return t_run_suite(libevent_suite()); }
