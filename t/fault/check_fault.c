/*
 * t/fault/check_fault.c: the fault-injection shim itself, and each kind of
 * injected fault against the library, one at a time.
 *
 * First the shim proves that it intercepts the calls the library really
 * makes (recv/send/sendmsg on sockets, read/write/writev on pipes,
 * accept4, connect, sendto, recvmsg): a counter moves for each. Then every
 * fault the soak test mixes is checked alone: EAGAIN on a ready
 * descriptor and EINTR are absorbed (the operation completes, nothing
 * spins), short counts are completed by write_all/read_exact (EAGAIN on a
 * ready descriptor and short reads on a level-triggered reactor only: see
 * fault.h), ECONNRESET
 * and EPIPE surface as the right -E code, EMFILE/ENFILE on accept pause
 * the listener instead of spinning, an interrupted connect still connects.
 */
#include <netinet/in.h>
#include <sys/resource.h>

#include "testutil.h"
#include "fault/fault.h"

#include <tide/net.h>

static void setup(void) {
    fault_reset();
    fault_seed(12345);
}

static void teardown(void) { fault_reset(); }

/* An executor on libevent's poll backend, which tide drives
 * level-triggered both ways: the only kind that can absorb EAGAIN on a
 * writable descriptor (an edge-triggered write waits for an edge that
 * never comes: see fault.h). */
static tide_exec_t *exec_lt(void) {
    setenv("EVENT_NOEPOLL", "1", 1);
    tide_exec_t *ex = t_exec_new();
    unsetenv("EVENT_NOEPOLL");
    ck_assert(!fault_edge_triggered(tide_exec_base(ex)));
    return ex;
}

static void no_leak(void) { ck_assert_int_eq(fault_live_allocs(), 0); }

static unsigned long calls(enum fault_fn fn) {
    fault_stats_t st;
    fault_stats(&st);
    return st.calls[fn];
}

static unsigned long injected(enum fault_kind k) {
    fault_stats_t st;
    fault_stats(&st);
    return st.injected[k];
}

/* A pair of tide streams over a socketpair, or a pipe. */
typedef struct pair {
    tide_unix_t *a, *b;
    tide_stream_t *sa, *sb;
} pair_t;

static void pair_new(pair_t *p, tide_exec_t *ex) {
    ck_assert_int_eq(tide_socketpair(&p->a, &p->b, ex), 0);
    p->sa = tide_unix_stream(p->a);
    p->sb = tide_unix_stream(p->b);
}

static void pair_free(pair_t *p) {
    tide_unix_free(p->a);
    tide_unix_free(p->b);
}

static int fd_of(tide_unix_t *u) { return tide_fd_get(tide_unix_fd(u)); }

static void fill(unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(seed + i * 7u + (i >> 8));
}

/* ------------------------------------------------------------------------
 * Interception
 * ------------------------------------------------------------------------ */

START_TEST(test_fault_intercepts_socket_calls) {
    tide_exec_t *ex = t_exec_new();
    pair_t p;
    pair_new(&p, ex);
    unsigned long send0 = calls(FAULT_SEND), recv0 = calls(FAULT_RECV),
                  sendmsg0 = calls(FAULT_SENDMSG);
    tide_write_t w;
    ck_assert_int_eq(t_run(ex, tide_write(&w, p.sa, "abc", 3)), 3);
    ck_assert_uint_eq(calls(FAULT_SEND), send0 + 1);
    char buf[8];
    tide_read_t r;
    ck_assert_int_eq(t_run(ex, tide_read(&r, p.sb, buf, sizeof buf)), 3);
    ck_assert_uint_eq(calls(FAULT_RECV), recv0 + 1);
    struct iovec iov[2] = {{"de", 2}, {"f", 1}};
    tide_writev_t wv;
    ck_assert_int_eq(t_run(ex, tide_writev(&wv, p.sa, iov, 2)), 3);
    ck_assert_uint_eq(calls(FAULT_SENDMSG), sendmsg0 + 1);
    pair_free(&p);
    t_exec_free_clean(ex);
    no_leak();
}
END_TEST

START_TEST(test_fault_intercepts_pipe_calls) {
    tide_exec_t *ex = t_exec_new();
    tide_fdstream_t *rd, *wr;
    ck_assert_int_eq(tide_pipe(&rd, &wr, ex), 0);
    unsigned long w0 = calls(FAULT_WRITE), r0 = calls(FAULT_READ),
                  wv0 = calls(FAULT_WRITEV);
    tide_write_t w;
    ck_assert_int_eq(
        t_run(ex, tide_write(&w, tide_fdstream_stream(wr), "ab", 2)), 2);
    ck_assert_uint_eq(calls(FAULT_WRITE), w0 + 1);
    struct iovec iov[2] = {{"c", 1}, {"d", 1}};
    tide_writev_t wv;
    ck_assert_int_eq(
        t_run(ex, tide_writev(&wv, tide_fdstream_stream(wr), iov, 2)), 2);
    ck_assert_uint_eq(calls(FAULT_WRITEV), wv0 + 1);
    char buf[8];
    tide_read_t r;
    ck_assert_int_eq(t_run(ex, tide_read(&r, tide_fdstream_stream(rd), buf, 8)),
                     4);
    ck_assert_uint_eq(calls(FAULT_READ), r0 + 1);
    ck_assert_int_eq(memcmp(buf, "abcd", 4), 0);
    tide_fdstream_free(rd);
    tide_fdstream_free(wr);
    t_exec_free_clean(ex);
    no_leak();
}
END_TEST

START_TEST(test_fault_intercepts_accept_connect_dgram) {
    tide_exec_t *ex = t_exec_new();
    tide_tcp_listener_t *l;
    ck_assert_int_eq(tide_tcp_listener_bind(&l, ex, "127.0.0.1:0", 0, 0), 0);
    tide_addr_t a;
    ck_assert_int_eq(tide_tcp_listener_local_addr(l, &a), 0);
    unsigned long c0 = calls(FAULT_CONNECT), a0 = calls(FAULT_ACCEPT4);
    tide_tcp_connect_t c;
    ck_assert_int_eq(t_run(ex, tide_tcp_connect_addr(&c, &a)), 0);
    ck_assert_uint_ge(calls(FAULT_CONNECT), c0 + 1);
    tide_tcp_accept_t acc;
    ck_assert_int_eq(t_run(ex, tide_tcp_accept(&acc, l)), 0);
    ck_assert_uint_ge(calls(FAULT_ACCEPT4), a0 + 1);
    tide_tcp_free(acc.conn);
    tide_tcp_free(c.conn);
    tide_tcp_listener_free(l);

    tide_udp_t *u1, *u2;
    ck_assert_int_eq(tide_udp_bind(&u1, ex, "127.0.0.1:0", 0), 0);
    ck_assert_int_eq(tide_udp_bind(&u2, ex, "127.0.0.1:0", 0), 0);
    tide_addr_t a2;
    ck_assert_int_eq(tide_udp_local_addr(u2, &a2), 0);
    unsigned long s0 = calls(FAULT_SENDTO), m0 = calls(FAULT_RECVMSG);
    tide_dgram_send_t ds;
    ck_assert_int_eq(t_run(ex, tide_udp_send_to(&ds, u1, "hi", 2, &a2)), 2);
    ck_assert_uint_eq(calls(FAULT_SENDTO), s0 + 1);
    char buf[8];
    tide_dgram_recv_t dr;
    ck_assert_int_eq(t_run(ex, tide_udp_recv_from(&dr, u2, buf, sizeof buf)),
                     2);
    ck_assert_uint_ge(calls(FAULT_RECVMSG), m0 + 1);
    tide_udp_free(u1);
    tide_udp_free(u2);
    t_exec_free_clean(ex);
    no_leak();
}
END_TEST

/* The shim never injects on descriptors nobody targeted, e.g. the
 * executor's eventfd, even with a plan that fails everything. */
START_TEST(test_fault_untargeted_untouched) {
    tide_exec_t *ex = t_exec_new();
    fault_plan_t plan = {.eagain = FAULT_RATE_SCALE};
    fault_plan(&plan);
    pair_t p;
    pair_new(&p, ex);
    tide_write_all_t w;
    ck_assert_int_eq(t_run(ex, tide_write_all(&w, p.sa, "xyz", 3)), 3);
    ck_assert_uint_eq(injected(FAULT_K_EAGAIN), 0);
    pair_free(&p);
    t_exec_free_clean(ex);
}
END_TEST

/* ------------------------------------------------------------------------
 * Soft faults are absorbed
 * ------------------------------------------------------------------------ */

/* Run a round trip of `len` bytes from sa to sb (write_all, read_exact),
 * while the shim injects on both ends; check the bytes. */
static void round_trip(tide_exec_t *ex, pair_t *p, size_t len) {
    unsigned char *out = malloc(len), *in = malloc(len);
    fill(out, len, 3);
    tide_write_all_t w;
    tide_read_exact_t r;
    tide_future_t *fs[2] = {tide_write_all(&w, p->sa, out, len),
                            tide_read_exact(&r, p->sb, in, len)};
    tide_join_all_t j;
    ck_assert_int_eq(t_block_on(ex, tide_join_all(&j, fs, 2)), 0);
    ck_assert_int_eq(w.fut.result, (intptr_t)len);
    ck_assert_int_eq(r.fut.result, (intptr_t)len);
    tide_future_drop(&j.fut);
    ck_assert_int_eq(memcmp(in, out, len), 0);
    free(out);
    free(in);
}

START_TEST(test_fault_eagain_on_ready_absorbed) {
    tide_exec_t *ex = exec_lt();
    pair_t p;
    pair_new(&p, ex);
    fault_target(fd_of(p.a), true);
    fault_target(fd_of(p.b), true);
    fault_plan_t plan = {.eagain = FAULT_RATE_SCALE / 2};
    fault_plan(&plan);
    round_trip(ex, &p, 300000);
    ck_assert_uint_gt(injected(FAULT_K_EAGAIN), 10);
    fault_plan(NULL);
    pair_free(&p);
    t_exec_free_clean(ex);
    no_leak();
}
END_TEST

START_TEST(test_fault_eintr_retried) {
    tide_exec_t *ex = exec_lt();
    pair_t p;
    pair_new(&p, ex);
    fault_target(fd_of(p.a), true);
    fault_target(fd_of(p.b), true);
    fault_plan_t plan = {.eintr = FAULT_RATE_SCALE / 2};
    fault_plan(&plan);
    round_trip(ex, &p, 300000);
    ck_assert_uint_gt(injected(FAULT_K_EINTR), 10);
    fault_plan(NULL);
    pair_free(&p);
    t_exec_free_clean(ex);
    no_leak();
}
END_TEST

START_TEST(test_fault_short_counts_completed) {
    tide_exec_t *ex = exec_lt();
    pair_t p;
    pair_new(&p, ex);
    fault_target(fd_of(p.a), true);
    fault_target(fd_of(p.b), true);
    fault_plan_t plan = {.short_io = FAULT_RATE_SCALE}; /* every call: 1 byte */
    fault_plan(&plan);
    round_trip(ex, &p, 3000);
    ck_assert_uint_ge(injected(FAULT_K_SHORT), 3000);
    fault_plan(NULL);
    pair_free(&p);
    t_exec_free_clean(ex);
    no_leak();
}
END_TEST

/* The three soft faults at once, on a pipe (read/write/writev). */
START_TEST(test_fault_soft_mix_pipe) {
    tide_exec_t *ex = exec_lt();
    tide_fdstream_t *rd, *wr;
    ck_assert_int_eq(tide_pipe(&rd, &wr, ex), 0);
    fault_target(tide_fd_get(tide_fdstream_fd(rd)), true);
    fault_target(tide_fd_get(tide_fdstream_fd(wr)), true);
    fault_plan_t plan = {.eagain = 20000, .eintr = 20000, .short_io = 20000};
    fault_plan(&plan);
    enum { N = 200000 };
    unsigned char *out = malloc(N), *in = malloc(N);
    fill(out, N, 9);
    struct iovec iov[3] = {
        {out, 1000}, {out + 1000, 1}, {out + 1001, N - 1001}};
    tide_writev_all_t w;
    tide_read_exact_t r;
    tide_future_t *fs[2] = {
        tide_writev_all(&w, tide_fdstream_stream(wr), iov, 3),
        tide_read_exact(&r, tide_fdstream_stream(rd), in, N)};
    tide_join_all_t j;
    ck_assert_int_eq(t_block_on(ex, tide_join_all(&j, fs, 2)), 0);
    ck_assert_int_eq(w.fut.result, N);
    ck_assert_int_eq(r.fut.result, N);
    tide_future_drop(&j.fut);
    ck_assert_int_eq(memcmp(in, out, N), 0);
    ck_assert_uint_gt(injected(FAULT_K_EAGAIN) + injected(FAULT_K_EINTR) +
                          injected(FAULT_K_SHORT),
                      3);
    free(out);
    free(in);
    tide_fdstream_free(rd);
    tide_fdstream_free(wr);
    t_exec_free_clean(ex);
    no_leak();
}
END_TEST

/* On the default backend (epoll: writes edge-triggered, reads
 * level-triggered) the schedule leaves out what would stall an
 * edge-triggered write, and the rest is absorbed: spurious EAGAIN and
 * reads cut short while data remains included, which the level-triggered
 * read event reports again. */
START_TEST(test_fault_soft_edge_triggered) {
    tide_exec_t *ex = t_exec_new();
    ck_assert(fault_edge_triggered(tide_exec_base(ex)));
    pair_t p;
    pair_new(&p, ex);
    fault_target(fd_of(p.a), true);
    fault_target(fd_of(p.b), true);
    fault_plan_t plan = {.eagain = 30000,
                         .eintr = 30000,
                         .short_io = 30000,
                         .edge_triggered = true};
    fault_plan(&plan);
    for (int i = 0; i < 20; i++)
        round_trip(ex, &p, 30000);
    ck_assert_uint_gt(injected(FAULT_K_EAGAIN), 0); /* reads only */
    ck_assert_uint_gt(injected(FAULT_K_EINTR), 0);
    ck_assert_uint_gt(injected(FAULT_K_SHORT), 0);
    fault_plan(NULL);
    pair_free(&p);
    t_exec_free_clean(ex);
    no_leak();
}
END_TEST

/* ------------------------------------------------------------------------
 * Hard errors surface
 * ------------------------------------------------------------------------ */

START_TEST(test_fault_econnreset_on_read_surfaces) {
    tide_exec_t *ex = t_exec_new();
    pair_t p;
    pair_new(&p, ex);
    tide_write_all_t w;
    ck_assert_int_eq(t_run(ex, tide_write_all(&w, p.sa, "0123456789", 10)), 10);
    fault_arm_hard(fd_of(p.b), FAULT_RECV, 2, ECONNRESET);
    char buf[16];
    tide_read_exact_t r;
    /* first recv gets 4 bytes, the second one the reset */
    tide_read_exact(&r, p.sb, buf, 4);
    ck_assert_int_eq(t_run(ex, &r.fut), 4);
    tide_read_t rd;
    ck_assert_int_eq(t_run(ex, tide_read(&rd, p.sb, buf, sizeof buf)),
                     -ECONNRESET);
    /* sticky: a dead connection stays dead, reads and writes alike */
    ck_assert_int_eq(t_run(ex, tide_read(&rd, p.sb, buf, sizeof buf)),
                     -ECONNRESET);
    tide_write_t wr;
    ck_assert_int_eq(t_run(ex, tide_write(&wr, p.sb, "x", 1)), -ECONNRESET);
    ck_assert_uint_eq(t_stats(ex).armed_events, 0);
    pair_free(&p);
    t_exec_free_clean(ex);
    no_leak();
}
END_TEST

START_TEST(test_fault_epipe_on_write_all_surfaces) {
    tide_exec_t *ex = t_exec_new();
    pair_t p;
    pair_new(&p, ex);
    fault_target(fd_of(p.a), true);
    fault_plan_t plan = {.short_io = FAULT_RATE_SCALE};
    fault_plan(&plan);
    fault_arm_hard(fd_of(p.a), FAULT_SEND, 5, EPIPE);
    tide_write_all_t w;
    ck_assert_int_eq(t_run(ex, tide_write_all(&w, p.sa, "0123456789", 10)),
                     -EPIPE);
    ck_assert_uint_eq(w.done, 4); /* 4 single bytes went out before */
    fault_plan(NULL);
    char buf[16];
    tide_read_t r;
    ck_assert_int_eq(t_run(ex, tide_read(&r, p.sb, buf, sizeof buf)), 4);
    ck_assert_int_eq(memcmp(buf, "0123", 4), 0);
    pair_free(&p);
    t_exec_free_clean(ex);
    no_leak();
}
END_TEST

START_TEST(test_fault_reset_in_copy_surfaces) {
    tide_exec_t *ex = t_exec_new();
    pair_t p, q;
    pair_new(&p, ex);
    pair_new(&q, ex);
    /* copy p.b -> q.a; the reader side dies on its 2nd recv, which the
     * FIN after "hello" makes happen */
    fault_arm_hard(fd_of(p.b), FAULT_RECV, 2, ECONNRESET);
    tide_write_all_t w;
    ck_assert_int_eq(t_run(ex, tide_write_all(&w, p.sa, "hello", 5)), 5);
    ck_assert_int_eq(tide_unix_shutdown(p.a, SHUT_WR), 0);
    tide_copy_buf_t *c = malloc(sizeof *c);
    tide_copy_default(c, p.sb, q.sa);
    int rc = t_block_on(ex, &c->copy.fut);
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(c->copy.fut.result, -ECONNRESET);
    ck_assert_uint_eq(tide_copy_copied(&c->copy), 5);
    tide_future_drop(&c->copy.fut);
    free(c);
    char buf[8];
    tide_read_t r;
    ck_assert_int_eq(t_run(ex, tide_read(&r, q.sb, buf, sizeof buf)), 5);
    pair_free(&p);
    pair_free(&q);
    t_exec_free_clean(ex);
    no_leak();
}
END_TEST

/* ------------------------------------------------------------------------
 * accept4 and connect
 * ------------------------------------------------------------------------ */

START_TEST(test_fault_accept_emfile_pauses) {
    tide_exec_t *ex = t_exec_new();
    fault_exclude_open_fds(); /* the executor's own descriptors */
    tide_tcp_listener_t *l;
    ck_assert_int_eq(tide_tcp_listener_bind(&l, ex, "127.0.0.1:0", 0, 0), 0);
    tide_addr_t a;
    ck_assert_int_eq(tide_tcp_listener_local_addr(l, &a), 0);
    int cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_eq(connect(cfd, tide_addr_sockaddr(&a), a.len), 0);
    /* every accept4 fails with EMFILE or ENFILE until the plan is lifted */
    fault_target_all(true);
    fault_plan_t plan = {.emfile = FAULT_RATE_SCALE / 2,
                         .enfile = FAULT_RATE_SCALE / 2};
    fault_plan(&plan);
    tide_tcp_accept_t acc;
    tide_tcp_accept(&acc, l);
    t_hand_t h;
    t_hand_init(&h, ex);
    ck_assert_int_eq(t_hand_poll(&h, &acc.fut), TIDE_PENDING);
    tide_listener_stats_t st;
    tide_tcp_listener_stats(l, &st);
    ck_assert(st.paused);
    ck_assert_uint_eq(st.backoffs, 1);
    /* while the condition lasts the listener backs off: few polls, little
     * CPU, in 300 ms */
    uint64_t cpu0 = t_cpu_usec(), t0 = tide_now();
    while (tide_now() - t0 < 300000) {
        event_base_loop(tide_exec_base(ex), EVLOOP_ONCE);
        if (t_woken(&h.count) > 0) {
            h.count.wakes = 0;
            h.count.wake_by_refs = 0;
            ck_assert_int_eq(t_hand_poll(&h, &acc.fut), TIDE_PENDING);
        }
    }
    uint64_t cpu = t_cpu_usec() - cpu0;
    tide_tcp_listener_stats(l, &st);
    ck_assert_uint_ge(st.backoffs, 5);
    ck_assert_uint_le(st.backoffs, 12); /* 1+2+4+...+256 ms > 300 ms */
    ck_assert_msg(cpu < 150000, "paused listener used %llu us CPU in 300 ms",
                  (unsigned long long)cpu);
    /* the condition ends: the connection is accepted */
    fault_plan(NULL);
    tide_future_drop(&acc.fut);
    ck_assert_int_eq(t_run(ex, tide_tcp_accept(&acc, l)), 0);
    tide_tcp_free(acc.conn);
    t_hand_done(&h);
    close(cfd);
    tide_tcp_listener_free(l);
    t_exec_free_clean(ex);
    no_leak();
}
END_TEST

START_TEST(test_fault_accept_econnaborted_skipped) {
    tide_exec_t *ex = t_exec_new();
    fault_exclude_open_fds(); /* the executor's own descriptors */
    tide_tcp_listener_t *l;
    ck_assert_int_eq(tide_tcp_listener_bind(&l, ex, "127.0.0.1:0", 0, 0), 0);
    tide_addr_t a;
    ck_assert_int_eq(tide_tcp_listener_local_addr(l, &a), 0);
    int cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_eq(connect(cfd, tide_addr_sockaddr(&a), a.len), 0);
    fault_target_all(true);
    fault_plan_t plan = {.econnaborted = FAULT_RATE_SCALE / 2,
                         .eintr = FAULT_RATE_SCALE / 4};
    fault_plan(&plan);
    tide_tcp_accept_t acc;
    ck_assert_int_eq(t_run(ex, tide_tcp_accept(&acc, l)), 0);
    tide_tcp_free(acc.conn);
    fault_plan(NULL);
    close(cfd);
    tide_tcp_listener_free(l);
    t_exec_free_clean(ex);
    no_leak();
}
END_TEST

START_TEST(test_fault_connect_interrupted_still_connects) {
    tide_exec_t *ex = t_exec_new();
    fault_exclude_open_fds(); /* the executor's own descriptors */
    tide_tcp_listener_t *l;
    ck_assert_int_eq(tide_tcp_listener_bind(&l, ex, "127.0.0.1:0", 0, 0), 0);
    tide_addr_t a;
    ck_assert_int_eq(tide_tcp_listener_local_addr(l, &a), 0);
    fault_target_all(true);
    fault_plan_t plan = {.eintr = FAULT_RATE_SCALE};
    fault_plan(&plan);
    tide_tcp_connect_t c;
    ck_assert_int_eq(t_run(ex, tide_tcp_connect_addr(&c, &a)), 0);
    ck_assert_uint_ge(injected(FAULT_K_EINTR), 1);
    fault_plan(NULL);
    tide_tcp_accept_t acc;
    ck_assert_int_eq(t_run(ex, tide_tcp_accept(&acc, l)), 0);
    tide_write_all_t w;
    ck_assert_int_eq(
        t_run(ex, tide_write_all(&w, tide_tcp_stream(c.conn), "ok", 2)), 2);
    char buf[4];
    tide_read_exact_t r;
    ck_assert_int_eq(
        t_run(ex, tide_read_exact(&r, tide_tcp_stream(acc.conn), buf, 2)), 2);
    tide_tcp_free(acc.conn);
    tide_tcp_free(c.conn);
    tide_tcp_listener_free(l);
    t_exec_free_clean(ex);
    no_leak();
}
END_TEST

START_TEST(test_fault_connect_refused_surfaces) {
    tide_exec_t *ex = t_exec_new();
    fault_exclude_open_fds(); /* the executor's own descriptors */
    tide_tcp_listener_t *l;
    ck_assert_int_eq(tide_tcp_listener_bind(&l, ex, "127.0.0.1:0", 0, 0), 0);
    tide_addr_t a;
    ck_assert_int_eq(tide_tcp_listener_local_addr(l, &a), 0);
    fault_target_all(true);
    fault_plan_t plan = {.connrefused = FAULT_RATE_SCALE};
    fault_plan(&plan);
    tide_tcp_connect_t c;
    ck_assert_int_eq(t_run(ex, tide_tcp_connect_addr(&c, &a)), -ECONNREFUSED);
    fault_plan(NULL);
    tide_tcp_listener_free(l);
    t_exec_free_clean(ex);
    no_leak();
}
END_TEST

START_TEST(test_fault_dgram_soft_faults) {
    tide_exec_t *ex = exec_lt();
    tide_udp_t *u1, *u2;
    ck_assert_int_eq(tide_udp_bind(&u1, ex, "127.0.0.1:0", 0), 0);
    ck_assert_int_eq(tide_udp_bind(&u2, ex, "127.0.0.1:0", 0), 0);
    tide_addr_t a2;
    ck_assert_int_eq(tide_udp_local_addr(u2, &a2), 0);
    fault_target(tide_fd_get(tide_udp_fd(u1)), true);
    fault_target(tide_fd_get(tide_udp_fd(u2)), true);
    fault_plan_t plan = {.eagain = 30000, .eintr = 30000, .short_io = 30000};
    fault_plan(&plan);
    for (int i = 0; i < 200; i++) {
        char out[64], in[64];
        int len = 1 + i % 60;
        fill((unsigned char *)out, (size_t)len, (unsigned)i);
        tide_dgram_send_t ds;
        ck_assert_int_eq(
            t_run(ex, tide_udp_send_to(&ds, u1, out, (size_t)len, &a2)), len);
        tide_dgram_recv_t dr;
        ck_assert_int_eq(t_run(ex, tide_udp_recv_from(&dr, u2, in, sizeof in)),
                         len);
        ck_assert_int_eq(memcmp(in, out, (size_t)len), 0);
    }
    ck_assert_uint_eq(injected(FAULT_K_SHORT), 0); /* never on datagrams */
    ck_assert_uint_gt(injected(FAULT_K_EAGAIN) + injected(FAULT_K_EINTR), 10);
    fault_plan(NULL);
    tide_udp_free(u1);
    tide_udp_free(u2);
    t_exec_free_clean(ex);
    no_leak();
}
END_TEST

static Suite *fault_suite(void) {
    Suite *s = suite_create("fault");
    TCase *tc = tcase_create("shim");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_fault_intercepts_socket_calls);
    tcase_add_test(tc, test_fault_intercepts_pipe_calls);
    tcase_add_test(tc, test_fault_intercepts_accept_connect_dgram);
    tcase_add_test(tc, test_fault_untargeted_untouched);
    suite_add_tcase(s, tc);

    tc = tcase_create("soft");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_fault_eagain_on_ready_absorbed);
    tcase_add_test(tc, test_fault_eintr_retried);
    tcase_add_test(tc, test_fault_short_counts_completed);
    tcase_add_test(tc, test_fault_soft_mix_pipe);
    tcase_add_test(tc, test_fault_dgram_soft_faults);
    tcase_add_test(tc, test_fault_soft_edge_triggered);
    suite_add_tcase(s, tc);

    tc = tcase_create("hard");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_fault_econnreset_on_read_surfaces);
    tcase_add_test(tc, test_fault_epipe_on_write_all_surfaces);
    tcase_add_test(tc, test_fault_reset_in_copy_surfaces);
    suite_add_tcase(s, tc);

    tc = tcase_create("accept_connect");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_fault_accept_emfile_pauses);
    tcase_add_test(tc, test_fault_accept_econnaborted_skipped);
    tcase_add_test(tc, test_fault_connect_interrupted_still_connects);
    tcase_add_test(tc, test_fault_connect_refused_surfaces);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return t_run_suite(fault_suite()); }
