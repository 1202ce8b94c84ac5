/*
 * t/fault/check_fault_bev.c: the bufferevent stream (tide_bevstream_*)
 * under system-call faults injected into libevent's own readv and writev
 * (t/fault/interpose.c): EAGAIN on a ready descriptor, EINTR and short
 * counts are absorbed by libevent and a round trip stays byte-exact;
 * ECONNRESET on a read and EPIPE on a write surface as those errors, on
 * every later operation too, and the bytes accepted before a failure
 * reached the peer in order.
 */
#include <event2/bufferevent.h>
#include <tide/libevent.h>

#include "testutil.h"
#include "fault/fault.h"

static void setup(void) {
    fault_reset();
    fault_seed(fault_seed_from_env("check_fault_bev"));
}

static void teardown(void) { fault_reset(); }

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

/* Two bufferevent streams over a socketpair; fd[i] is stream i's
 * descriptor. */
typedef struct bpair {
    tide_bevstream_t *bs[2];
    tide_stream_t *s[2];
    int fd[2];
} bpair_t;

static void bpair_new(bpair_t *p, tide_exec_t *ex) {
    int sv[2];
    t_socketpair(sv);
    for (int i = 0; i < 2; i++) {
        struct bufferevent *bev = bufferevent_socket_new(
            tide_exec_base(ex), sv[i], BEV_OPT_CLOSE_ON_FREE);
        ck_assert_ptr_nonnull(bev);
        ck_assert_int_eq(tide_bevstream_new(&p->bs[i], ex, bev, TIDE_BEV_OWN),
                         0);
        p->s[i] = tide_bevstream_stream(p->bs[i]);
        p->fd[i] = sv[i];
    }
}

static void bpair_free(bpair_t *p) {
    for (int i = 0; i < 2; i++)
        tide_bevstream_free(p->bs[i]);
}

static void fill(unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(seed + i * 7u + (i >> 8));
}

static void done(tide_exec_t *ex) {
    t_exec_free_clean(ex);
    ck_assert_int_eq(fault_live_allocs(), 0);
}

/* The shim sees libevent's calls: without it every later check is
 * vacuous. */
START_TEST(test_bev_fault_intercepts_libevent) {
    tide_exec_t *ex = t_exec_new();
    bpair_t p;
    bpair_new(&p, ex);
    unsigned long r0 = calls(FAULT_READV), w0 = calls(FAULT_WRITEV);
    tide_write_all_t w;
    ck_assert_int_eq(t_run(ex, tide_write_all(&w, p.s[0], "hello", 5)), 5);
    tide_flush_t f;
    ck_assert_int_eq(t_run(ex, tide_flush(&f, p.s[0])), 0);
    char buf[8];
    tide_read_exact_t r;
    ck_assert_int_eq(t_run(ex, tide_read_exact(&r, p.s[1], buf, 5)), 5);
    ck_assert_uint_gt(calls(FAULT_WRITEV), w0);
    ck_assert_uint_gt(calls(FAULT_READV), r0);
    bpair_free(&p);
    done(ex);
}
END_TEST

/* EAGAIN although ready, EINTR and short counts, on both descriptors,
 * through a 1 MiB round trip and a shutdown: byte-exact, then end of
 * stream. libevent's bufferevents are level-triggered, so the whole
 * schedule applies on any backend. */
START_TEST(test_bev_fault_soft_mix_round_trip) {
    tide_exec_t *ex = t_exec_new();
    bpair_t p;
    bpair_new(&p, ex);
    fault_target(p.fd[0], true);
    fault_target(p.fd[1], true);
    fault_plan_t plan = {.eagain = 20000, .eintr = 20000, .short_io = 20000};
    fault_plan(&plan);
    enum { N = 1 << 20 };
    unsigned char *out = malloc(N), *in = malloc(N);
    fill(out, N, 5);
    tide_write_all_t w;
    tide_read_exact_t r;
    tide_future_t *fs[2] = {tide_write_all(&w, p.s[0], out, N),
                            tide_read_exact(&r, p.s[1], in, N)};
    tide_join_all_t j;
    ck_assert_int_eq(t_block_on(ex, tide_join_all(&j, fs, 2)), 0);
    ck_assert_int_eq(w.fut.result, N);
    ck_assert_int_eq(r.fut.result, N);
    tide_future_drop(&j.fut);
    ck_assert_int_eq(memcmp(in, out, N), 0);
    tide_shutdown_t sd;
    ck_assert_int_eq(t_run(ex, tide_shutdown(&sd, p.s[0])), 0);
    tide_read_t rd;
    ck_assert_int_eq(t_run(ex, tide_read(&rd, p.s[1], in, 16)), 0);
    ck_assert_uint_gt(injected(FAULT_K_EAGAIN), 3);
    ck_assert_uint_gt(injected(FAULT_K_EINTR), 3);
    ck_assert_uint_gt(injected(FAULT_K_SHORT), 3);
    fault_plan(NULL);
    free(out);
    free(in);
    bpair_free(&p);
    done(ex);
}
END_TEST

/* A read that dies with ECONNRESET: the reader's read answers it (once
 * the input is empty), and so does every later read, write and flush. */
START_TEST(test_bev_fault_econnreset_on_read_surfaces) {
    tide_exec_t *ex = t_exec_new();
    bpair_t p;
    bpair_new(&p, ex);
    fault_arm_hard(p.fd[1], FAULT_READV, 1, ECONNRESET);
    tide_write_all_t w;
    ck_assert_int_eq(t_run(ex, tide_write_all(&w, p.s[0], "0123456789", 10)),
                     10);
    char buf[16];
    tide_read_t rd;
    ck_assert_int_eq(t_run(ex, tide_read(&rd, p.s[1], buf, sizeof buf)),
                     -ECONNRESET);
    ck_assert_int_eq(t_run(ex, tide_read(&rd, p.s[1], buf, sizeof buf)),
                     -ECONNRESET);
    tide_write_t wr;
    ck_assert_int_eq(t_run(ex, tide_write(&wr, p.s[1], "x", 1)), -ECONNRESET);
    tide_flush_t f;
    ck_assert_int_eq(t_run(ex, tide_flush(&f, p.s[1])), -ECONNRESET);
    bpair_free(&p);
    done(ex);
}
END_TEST

/* Writes cut to one byte, then EPIPE on the fifth writev: the write was
 * accepted (the bytes are in the output evbuffer), the flush answers
 * -EPIPE, later writes too, and the four bytes sent arrive in order. */
START_TEST(test_bev_fault_epipe_on_write_surfaces) {
    tide_exec_t *ex = t_exec_new();
    bpair_t p;
    bpair_new(&p, ex);
    fault_target(p.fd[0], true);
    fault_plan_t plan = {.short_io = FAULT_RATE_SCALE};
    fault_plan(&plan);
    fault_arm_hard(p.fd[0], FAULT_WRITEV, 5, EPIPE);
    tide_write_all_t w;
    ck_assert_int_eq(t_run(ex, tide_write_all(&w, p.s[0], "0123456789", 10)),
                     10);
    tide_flush_t f;
    ck_assert_int_eq(t_run(ex, tide_flush(&f, p.s[0])), -EPIPE);
    ck_assert_int_eq(t_run(ex, tide_write_all(&w, p.s[0], "x", 1)), -EPIPE);
    tide_shutdown_t sd;
    ck_assert_int_eq(t_run(ex, tide_shutdown(&sd, p.s[0])), -EPIPE);
    fault_plan(NULL);
    char buf[16];
    tide_read_exact_t r;
    ck_assert_int_eq(t_run(ex, tide_read_exact(&r, p.s[1], buf, 4)), 4);
    ck_assert_int_eq(memcmp(buf, "0123", 4), 0);
    bpair_free(&p);
    done(ex);
}
END_TEST

static Suite *bev_fault_suite(void) {
    Suite *s = suite_create("fault_bev");
    TCase *tc = t_tcase(s, "bevstream", 30);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_bev_fault_intercepts_libevent);
    tcase_add_test(tc, test_bev_fault_soft_mix_round_trip);
    tcase_add_test(tc, test_bev_fault_econnreset_on_read_surfaces);
    tcase_add_test(tc, test_bev_fault_epipe_on_write_surfaces);
    return s;
}

int main(void) { return t_run_suite(bev_fault_suite()); }
