/*
 * t/check_fd.c: the reactor: registration, readiness, guards, try_io,
 * async_io, the per-direction waker slot, closing and freeing.
 */
#include <sys/stat.h>

#include "tide/io.h"
#include "testutil.h"

/* ------------------------------------------------------------------------
 * Registration
 * ------------------------------------------------------------------------ */

START_TEST(test_fd_new_blocking_refused) {
    tide_exec_t *ex = t_exec_new();
    int sv[2];
    t_socketpair_blocking(sv);
    tide_fd_t *reg = NULL;
    ck_assert_int_eq(tide_fd_new(&reg, ex, sv[0]), TIDE_EBLOCKING);
    ck_assert_ptr_null(reg);
    ck_assert(!t_is_nonblocking(sv[0])); /* left as it was */
    ck_assert(t_is_open(sv[0]));
    ck_assert_uint_eq(t_stats(ex).registered, 0);
    close(sv[0]);
    close(sv[1]);
    t_exec_free_clean(ex);
}
END_TEST

START_TEST(test_fd_new_closed_ebadf) {
    tide_exec_t *ex = t_exec_new();
    int sv[2];
    t_socketpair(sv);
    close(sv[0]);
    close(sv[1]);
    tide_fd_t *reg = NULL;
    ck_assert_int_eq(tide_fd_new(&reg, ex, sv[0]), -EBADF);
    ck_assert_int_eq(tide_fd_new(&reg, ex, -1), -EBADF);
    ck_assert_ptr_null(reg);
    ck_assert_uint_eq(t_stats(ex).registered, 0);
    t_exec_free_clean(ex);
}
END_TEST

START_TEST(test_fd_new_regular_file_eperm) {
    tide_exec_t *ex = t_exec_new();
    char path[] = "/tmp/tide-check-fd-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    unlink(path);
    ck_assert_int_eq(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
    tide_fd_t *reg = NULL;
    ck_assert_int_eq(tide_fd_new(&reg, ex, fd), -EPERM);
    ck_assert(t_is_open(fd));
    close(fd);
    int dfd = open("/", O_RDONLY | O_DIRECTORY | O_NONBLOCK | O_CLOEXEC);
    ck_assert_int_ge(dfd, 0);
    ck_assert_int_eq(tide_fd_new(&reg, ex, dfd), -EPERM);
    close(dfd);
    ck_assert_ptr_null(reg);
    ck_assert_uint_eq(t_stats(ex).registered, 0);
    t_exec_free_clean(ex);
}
END_TEST

START_TEST(test_fd_new_twice_eexist) {
    tide_exec_t *ex = t_exec_new();
    int sv[2];
    t_socketpair(sv);
    tide_fd_t *reg = NULL, *again = NULL;
    ck_assert_int_eq(tide_fd_new(&reg, ex, sv[0]), 0);
    ck_assert_int_eq(tide_fd_new(&again, ex, sv[0]), -EEXIST);
    ck_assert_ptr_null(again);
    ck_assert_uint_eq(t_stats(ex).registered, 1);
    ck_assert_int_eq(tide_fd_get(reg), sv[0]);
    tide_fd_free(reg);
    close(sv[1]);
    t_exec_free_clean(ex);
}
END_TEST

START_TEST(test_fd_new_invalid) {
    tide_exec_t *ex = t_exec_new();
    int sv[2];
    t_socketpair(sv);
    tide_fd_t *reg = NULL;
    ck_assert_int_eq(tide_fd_new(NULL, ex, sv[0]), -EINVAL);
    ck_assert_int_eq(tide_fd_new(&reg, NULL, sv[0]), -EINVAL);
    ck_assert_ptr_null(reg);
    ck_assert_int_eq(tide_fd_into_inner(NULL), -EINVAL);
    tide_fd_free(NULL);
    ck_assert(t_is_open(sv[0]));
    close(sv[0]);
    close(sv[1]);
    t_exec_free_clean(ex);
}
END_TEST

START_TEST(test_fd_into_inner_keeps_open) {
    tide_exec_t *ex = t_exec_new();
    int sv[2];
    t_socketpair(sv);
    tide_fd_t *reg = NULL;
    ck_assert_int_eq(tide_fd_new(&reg, ex, sv[0]), 0);
    ck_assert_uint_eq(t_stats(ex).registered, 1);
    ck_assert_int_eq(tide_fd_into_inner(reg), sv[0]);
    ck_assert_uint_eq(t_stats(ex).registered, 0);
    ck_assert(t_is_open(sv[0]));
    ck_assert(t_is_nonblocking(sv[0]));
    ck_assert_int_eq(write(sv[1], "x", 1), 1);
    char c;
    ck_assert_int_eq(read(sv[0], &c, 1), 1);
    /* registered again, as if new */
    ck_assert_int_eq(tide_fd_new(&reg, ex, sv[0]), 0);
    ck_assert_uint_eq(tide_fd_readiness(reg), TIDE_READABLE | TIDE_WRITABLE);
    tide_fd_free(reg);
    ck_assert(!t_is_open(sv[0]));
    close(sv[1]);
    t_exec_free_clean(ex);
}
END_TEST

START_TEST(test_fd_free_closes_and_number_reusable) {
    tide_exec_t *ex = t_exec_new();
    int sv[2];
    t_socketpair(sv);
    /* a high descriptor number grows the table */
    int hi = fcntl(sv[0], F_DUPFD_CLOEXEC, 900);
    ck_assert_int_ge(hi, 900);
    tide_fd_t *reg = NULL, *rhi = NULL;
    ck_assert_int_eq(tide_fd_new(&reg, ex, sv[0]), 0);
    ck_assert_int_eq(tide_fd_new(&rhi, ex, hi), 0);
    ck_assert_uint_eq(t_stats(ex).registered, 2);
    tide_fd_free(reg);
    tide_fd_free(rhi);
    ck_assert(!t_is_open(sv[0]));
    ck_assert(!t_is_open(hi));
    ck_assert_uint_eq(t_stats(ex).registered, 0);
    /* the same numbers, reused by new descriptors, register afresh */
    int again = dup2(sv[1], sv[0]);
    ck_assert_int_eq(again, sv[0]);
    ck_assert(t_is_nonblocking(again));
    ck_assert_int_eq(tide_fd_new(&reg, ex, again), 0);
    tide_fd_free(reg);
    close(sv[1]);
    t_exec_free_clean(ex);
}
END_TEST

/* ------------------------------------------------------------------------
 * Readable, writable, ready
 * ------------------------------------------------------------------------ */

START_TEST(test_fd_readable_optimistic_then_waits) {
    tide_exec_t *ex = t_exec_new();
    int sv[2];
    t_socketpair(sv);
    tide_fd_t *reg = NULL;
    ck_assert_int_eq(tide_fd_new(&reg, ex, sv[0]), 0);
    t_hand_t h;
    t_hand_init(&h, ex);
    tide_fd_wait_t w;
    /* fresh: readiness is assumed, the first operation is simply tried */
    tide_future_t *f = tide_fd_readable(&w, reg);
    ck_assert_int_eq(t_hand_poll(&h, f), TIDE_READY);
    ck_assert_int_eq(f->result, 0);
    tide_fd_guard_t g = *tide_fd_wait_guard(&w);
    ck_assert_ptr_eq(g.fd, reg);
    ck_assert_uint_eq(tide_fd_guard_ready(&g), TIDE_READABLE);
    tide_future_drop(f);
    char c;
    ck_assert_int_eq(read(sv[0], &c, 1), -1);
    ck_assert_int_eq(errno, EAGAIN);
    tide_fd_guard_clear_ready(&g);

    f = tide_fd_readable(&w, reg);
    ck_assert_int_eq(t_hand_poll(&h, f), TIDE_PENDING);
    ck_assert_uint_eq(t_stats(ex).armed_events, 1);
    t_run_for(tide_exec_base(ex), 10);
    ck_assert_int_eq(t_woken(&h.count), 0);
    ck_assert_int_eq(write(sv[1], "y", 1), 1);
    ck_assert(t_loop_until_count(tide_exec_base(ex), &h.count.woken, 1));
    ck_assert_int_eq(t_hand_poll(&h, f), TIDE_READY);
    ck_assert_uint_eq(tide_fd_guard_ready(tide_fd_wait_guard(&w)) &
                          TIDE_READABLE,
                      TIDE_READABLE);
    tide_future_drop(f);
    ck_assert_int_eq(read(sv[0], &c, 1), 1);
    ck_assert_int_eq(c, 'y');
    tide_fd_free(reg);
    close(sv[1]);
    t_hand_done(&h);
    t_exec_free_clean(ex);
}
END_TEST

START_TEST(test_fd_writable_waits_for_room) {
    tide_exec_t *ex = t_exec_new();
    int sv[2];
    t_socketpair(sv);
    tide_fd_t *reg = NULL;
    ck_assert_int_eq(tide_fd_new(&reg, ex, sv[0]), 0);
    ck_assert_uint_gt(t_reg_fill(reg), 0);
    t_hand_t h;
    t_hand_init(&h, ex);
    tide_fd_wait_t w;
    tide_future_t *f = tide_fd_writable(&w, reg);
    ck_assert_int_eq(t_hand_poll(&h, f), TIDE_PENDING);
    ck_assert_uint_eq(t_stats(ex).armed_events, 1);
    ck_assert_uint_gt(t_drain(sv[1]), 0);
    ck_assert(t_loop_until_count(tide_exec_base(ex), &h.count.woken, 1));
    ck_assert_int_eq(t_hand_poll(&h, f), TIDE_READY);
    ck_assert_uint_eq(tide_fd_guard_ready(tide_fd_wait_guard(&w)),
                      TIDE_WRITABLE);
    tide_future_drop(f);
    tide_fd_free(reg);
    close(sv[1]);
    t_hand_done(&h);
    t_exec_free_clean(ex);
}
END_TEST

START_TEST(test_fd_ready_interest) {
    tide_exec_t *ex = t_exec_new();
    int sv[2];
    t_socketpair(sv);
    tide_fd_t *reg = NULL;
    ck_assert_int_eq(tide_fd_new(&reg, ex, sv[0]), 0);
    t_hand_t h;
    t_hand_init(&h, ex);
    tide_fd_wait_t w;
    tide_future_t *f = tide_fd_ready(&w, reg, TIDE_READABLE | TIDE_WRITABLE);
    ck_assert_int_eq(t_hand_poll(&h, f), TIDE_READY);
    ck_assert_uint_eq(tide_fd_guard_ready(tide_fd_wait_guard(&w)),
                      TIDE_READABLE | TIDE_WRITABLE);
    tide_future_drop(f);
    /* interest 0 */
    f = tide_fd_ready(&w, reg, 0);
    ck_assert_int_eq(t_hand_poll(&h, f), TIDE_READY);
    ck_assert_int_eq(f->result, -EINVAL);
    tide_future_drop(f);
    /* only what is ready is reported */
    char c;
    t_io_t io = {&c, 1, 0};
    ck_assert_int_eq(tide_fd_try_io(reg, TIDE_READABLE, t_read_fn, &io),
                     -EAGAIN);
    f = tide_fd_ready(&w, reg, TIDE_READABLE | TIDE_WRITABLE);
    ck_assert_int_eq(t_hand_poll(&h, f), TIDE_READY);
    ck_assert_uint_eq(tide_fd_guard_ready(tide_fd_wait_guard(&w)),
                      TIDE_WRITABLE);
    tide_future_drop(f);
    tide_fd_free(reg);
    close(sv[1]);
    t_hand_done(&h);
    t_exec_free_clean(ex);
}
END_TEST

/* Tasks that wait for readability on one registration, and a writer. */
typedef struct rwait {
    tide_future_t fut;
    tide_async_t co;
    tide_fd_wait_t w;
    tide_fd_t *reg;
    unsigned saw;
    int *woke;
} rwait_t;

static tide_poll_t rwait_poll(tide_future_t *f, tide_cx_t *cx) {
    rwait_t *r = TIDE_CONTAINER_OF(f, rwait_t, fut);
    TIDE_BEGIN(&r->co);
    TIDE_AWAIT(&r->co, cx, tide_fd_readable(&r->w, r->reg));
    r->saw = tide_fd_guard_ready(tide_fd_wait_guard(&r->w));
    (*r->woke)++;
    TIDE_END(&r->co, f, tide_async_result(&r->co));
}

static void rwait_drop(tide_future_t *f) {
    rwait_t *r = TIDE_CONTAINER_OF(f, rwait_t, fut);
    tide_async_drop(&r->co);
}

typedef struct late_writer {
    tide_future_t fut;
    tide_async_t co;
    tide_sleep_t nap;
    int fd;
} late_writer_t;

static tide_poll_t late_writer_poll(tide_future_t *f, tide_cx_t *cx) {
    late_writer_t *w = TIDE_CONTAINER_OF(f, late_writer_t, fut);
    TIDE_BEGIN(&w->co);
    TIDE_AWAIT(&w->co, cx, tide_sleep(&w->nap, 3000));
    TIDE_END(&w->co, f, write(w->fd, "z", 1));
}

static const tide_future_vtable_t late_writer_vt = {late_writer_poll, NULL};

static const tide_future_vtable_t rwait_vt = {rwait_poll, rwait_drop};

START_TEST(test_fd_two_readers_both_wake) {
    tide_exec_t *ex = t_exec_new();
    int sv[2];
    tide_fd_t *reg = t_reg_cleared(ex, sv);
    int woke = 0;
    rwait_t a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    a.reg = b.reg = reg;
    a.woke = b.woke = &woke;
    tide_future_init(&a.fut, &rwait_vt);
    tide_future_init(&b.fut, &rwait_vt);
    tide_join_t ja, jb;
    ck_assert_int_eq(tide_spawn(ex, &a.fut, &ja), 0);
    ck_assert_int_eq(tide_spawn(ex, &b.fut, &jb), 0);
    t_run_for(tide_exec_base(ex), 5);
    ck_assert_int_eq(woke, 0);
    ck_assert_uint_eq(t_stats(ex).armed_events, 1); /* one event for both */
    late_writer_t lw;
    memset(&lw, 0, sizeof lw);
    lw.fd = sv[1];
    tide_future_init(&lw.fut, &late_writer_vt);
    ck_assert_int_eq(t_run(ex, &lw.fut), 1);
    ck_assert_int_eq(t_run(ex, tide_join(&ja)), 0);
    ck_assert_int_eq(t_run(ex, tide_join(&jb)), 0);
    ck_assert_int_eq(woke, 2);
    ck_assert_uint_eq(a.saw & TIDE_READABLE, TIDE_READABLE);
    ck_assert_uint_eq(b.saw & TIDE_READABLE, TIDE_READABLE);
    tide_fd_free(reg);
    close(sv[1]);
    t_exec_free_clean(ex);
}
END_TEST

/* A task that is woken, reads everything, and goes to sleep: the read
 * event it no longer waits on stays (the reactor finds out lazily, as mio
 * does) until it next fires, for nobody, and is removed then. */
typedef struct idle_after {
    tide_future_t fut;
    tide_async_t co;
    tide_fd_wait_t w;
    tide_sleep_t nap;
    tide_fd_t *reg;
    int peer;
    size_t got;
    size_t armed_after_read, armed_while_asleep;
} idle_after_t;

static tide_poll_t idle_after_poll(tide_future_t *f, tide_cx_t *cx) {
    idle_after_t *t = TIDE_CONTAINER_OF(f, idle_after_t, fut);
    TIDE_BEGIN(&t->co);
    TIDE_AWAIT(&t->co, cx, tide_fd_readable(&t->w, t->reg));
    t->got = t_drain(tide_fd_get(t->reg));
    t->armed_after_read = t_stats(cx->exec).armed_events;
    ck_assert_int_eq(write(t->peer, "y", 1), 1); /* for nobody */
    TIDE_AWAIT(&t->co, cx, tide_sleep(&t->nap, 5000));
    t->armed_while_asleep = t_stats(cx->exec).armed_events;
    TIDE_END(&t->co, f, 0);
}

static const tide_future_vtable_t idle_after_vt = {idle_after_poll, NULL};

START_TEST(test_fd_event_nobody_waits_on_is_removed) {
    tide_exec_t *ex = t_exec_new();
    int sv[2];
    tide_fd_t *reg = t_reg_cleared(ex, sv);
    idle_after_t t;
    memset(&t, 0, sizeof t);
    t.reg = reg;
    t.peer = sv[1];
    t.armed_while_asleep = 99;
    tide_future_init(&t.fut, &idle_after_vt);
    late_writer_t lw;
    memset(&lw, 0, sizeof lw);
    lw.fd = sv[1];
    tide_future_init(&lw.fut, &late_writer_vt);
    ck_assert_int_eq(tide_spawn(ex, &lw.fut, NULL), 0);
    ck_assert_int_eq(t_run(ex, &t.fut), 0);
    ck_assert_uint_eq(t.got, 1);
    ck_assert_uint_eq(t.armed_after_read, 1); /* kept, nobody waiting */
    /* the sleep's own event has fired by then; the read event fired for
     * nobody and is gone */
    ck_assert_uint_eq(t.armed_while_asleep, 0);
    ck_assert_uint_eq(t_stats(ex).armed_events, 0);
    tide_fd_free(reg);
    close(sv[1]);
    t_exec_free_clean(ex);
}
END_TEST

START_TEST(test_fd_wait_drop_disarms) {
    tide_exec_t *ex = t_exec_new();
    int sv[2];
    tide_fd_t *reg = t_reg_cleared(ex, sv);
    t_hand_t h1, h2;
    t_hand_init(&h1, ex);
    t_hand_init(&h2, ex);
    tide_fd_wait_t w1, w2;
    tide_future_t *f1 = tide_fd_readable(&w1, reg);
    tide_future_t *f2 = tide_fd_readable(&w2, reg);
    ck_assert_int_eq(t_hand_poll(&h1, f1), TIDE_PENDING);
    ck_assert_int_eq(t_hand_poll(&h2, f2), TIDE_PENDING);
    ck_assert_uint_eq(t_stats(ex).armed_events, 1);
    tide_future_drop(f1); /* somebody still waits: stays armed */
    ck_assert_uint_eq(t_stats(ex).armed_events, 1);
    tide_future_drop(f2); /* the last one: disarmed */
    ck_assert_uint_eq(t_stats(ex).armed_events, 0);
    /* readiness that arrives now wakes nobody and is not lost */
    ck_assert_int_eq(write(sv[1], "q", 1), 1);
    t_run_for(tide_exec_base(ex), 10);
    ck_assert_int_eq(t_woken(&h1.count) + t_woken(&h2.count), 0);
    tide_fd_wait_t w3;
    tide_future_t *f3 = tide_fd_readable(&w3, reg);
    ck_assert_int_eq(t_hand_poll(&h1, f3), TIDE_PENDING);
    ck_assert(t_loop_until_count(tide_exec_base(ex), &h1.count.woken, 1));
    ck_assert_int_eq(t_hand_poll(&h1, f3), TIDE_READY);
    tide_future_drop(f3);
    tide_fd_free(reg);
    close(sv[1]);
    t_hand_done(&h1);
    t_hand_done(&h2);
    t_exec_free_clean(ex);
}
END_TEST

/* ------------------------------------------------------------------------
 * Guards
 * ------------------------------------------------------------------------ */

START_TEST(test_fd_guard_clear_ready_matching) {
    tide_exec_t *ex = t_exec_new();
    int sv[2];
    t_socketpair(sv);
    tide_fd_t *reg = NULL;
    ck_assert_int_eq(tide_fd_new(&reg, ex, sv[0]), 0);
    t_hand_t h;
    t_hand_init(&h, ex);
    tide_fd_wait_t w;
    tide_future_t *f = tide_fd_ready(&w, reg, TIDE_READABLE | TIDE_WRITABLE);
    ck_assert_int_eq(t_hand_poll(&h, f), TIDE_READY);
    tide_fd_guard_t g = *tide_fd_wait_guard(&w);
    tide_future_drop(f);
    ck_assert_uint_eq(g.ready, TIDE_READABLE | TIDE_WRITABLE);
    char c;
    ck_assert_int_eq(read(sv[0], &c, 1), -1); /* the read blocks */
    tide_fd_guard_clear_ready_matching(&g, TIDE_READABLE);
    ck_assert_uint_eq(tide_fd_readiness(reg), TIDE_WRITABLE);
    ck_assert_uint_eq(tide_fd_guard_ready(&g), TIDE_WRITABLE);
    /* a writer is not held up; a reader waits */
    f = tide_fd_writable(&w, reg);
    ck_assert_int_eq(t_hand_poll(&h, f), TIDE_READY);
    tide_future_drop(f);
    f = tide_fd_readable(&w, reg);
    ck_assert_int_eq(t_hand_poll(&h, f), TIDE_PENDING);
    tide_future_drop(f);
    ck_assert_uint_eq(t_stats(ex).armed_events, 0);
    tide_fd_free(reg);
    close(sv[1]);
    t_hand_done(&h);
    t_exec_free_clean(ex);
}
END_TEST

START_TEST(test_fd_guard_clear_ready_clears_what_it_saw) {
    tide_exec_t *ex = t_exec_new();
    int sv[2];
    t_socketpair(sv);
    tide_fd_t *reg = NULL;
    ck_assert_int_eq(tide_fd_new(&reg, ex, sv[0]), 0);
    t_hand_t h;
    t_hand_init(&h, ex);
    tide_fd_wait_t w;
    tide_future_t *f = tide_fd_readable(&w, reg);
    ck_assert_int_eq(t_hand_poll(&h, f), TIDE_READY);
    tide_fd_guard_t g = *tide_fd_wait_guard(&w);
    tide_future_drop(f);
    tide_fd_guard_clear_ready(&g); /* saw READABLE only */
    ck_assert_uint_eq(tide_fd_readiness(reg), TIDE_WRITABLE);
    f = tide_fd_ready(&w, reg, TIDE_READABLE | TIDE_WRITABLE);
    ck_assert_int_eq(t_hand_poll(&h, f), TIDE_READY);
    g = *tide_fd_wait_guard(&w);
    tide_future_drop(f);
    tide_fd_guard_clear_ready(&g);
    ck_assert_uint_eq(tide_fd_readiness(reg), 0);
    tide_fd_free(reg);
    close(sv[1]);
    t_hand_done(&h);
    t_exec_free_clean(ex);
}
END_TEST

static ssize_t fail_eio_fn(int fd, void *arg) {
    ((t_io_t *)arg)->calls++;
    return -EIO;
}

START_TEST(test_fd_guard_try_io) {
    tide_exec_t *ex = t_exec_new();
    int sv[2];
    t_socketpair(sv);
    tide_fd_t *reg = NULL;
    ck_assert_int_eq(tide_fd_new(&reg, ex, sv[0]), 0);
    t_hand_t h;
    t_hand_init(&h, ex);
    tide_fd_wait_t w;
    char buf[8];
    t_io_t io = {buf, sizeof buf, 0};
    ck_assert_int_eq(write(sv[1], "abc", 3), 3);
    tide_future_t *f = tide_fd_readable(&w, reg);
    ck_assert_int_eq(t_hand_poll(&h, f), TIDE_READY);
    tide_fd_guard_t g = *tide_fd_wait_guard(&w);
    tide_future_drop(f);
    /* success and other errors leave readiness as it is */
    ck_assert_int_eq(tide_fd_guard_try_io(&g, t_read_fn, &io), 3);
    ck_assert_uint_eq(tide_fd_readiness(reg) & TIDE_READABLE, TIDE_READABLE);
    ck_assert_int_eq(tide_fd_guard_try_io(&g, fail_eio_fn, &io), -EIO);
    ck_assert_uint_eq(tide_fd_readiness(reg) & TIDE_READABLE, TIDE_READABLE);
    /* EAGAIN clears it */
    ck_assert_int_eq(tide_fd_guard_try_io(&g, t_read_fn, &io), -EAGAIN);
    ck_assert_uint_eq(tide_fd_readiness(reg) & TIDE_READABLE, 0);
    ck_assert_int_eq(io.calls, 3);
    tide_fd_free(reg);
    close(sv[1]);
    t_hand_done(&h);
    t_exec_free_clean(ex);
}
END_TEST

START_TEST(test_fd_try_io_not_ready_skips_fn) {
    tide_exec_t *ex = t_exec_new();
    int sv[2];
    tide_fd_t *reg = t_reg_cleared(ex, sv);
    char buf[8];
    t_io_t io = {buf, sizeof buf, 0};
    ck_assert_int_eq(write(sv[1], "abc", 3), 3); /* data, but nobody saw it */
    ck_assert_int_eq(tide_fd_try_io(reg, TIDE_READABLE, t_read_fn, &io),
                     -EAGAIN);
    ck_assert_int_eq(io.calls, 0);
    ck_assert_int_eq(
        tide_fd_try_io(reg, TIDE_READABLE | TIDE_WRITABLE, t_read_fn, &io),
        -EINVAL);
    ck_assert_int_eq(tide_fd_try_io(reg, 0, t_read_fn, &io), -EINVAL);
    ck_assert_int_eq(io.calls, 0);
    /* the write direction is still ready */
    io.buf = (char *)"w";
    io.len = 1;
    ck_assert_int_eq(tide_fd_try_io(reg, TIDE_WRITABLE, t_write_fn, &io), 1);
    ck_assert_int_eq(io.calls, 1);
    tide_fd_free(reg);
    close(sv[1]);
    t_exec_free_clean(ex);
}
END_TEST

START_TEST(test_fd_try_io_clears_only_on_eagain) {
    tide_exec_t *ex = t_exec_new();
    int sv[2];
    t_socketpair(sv);
    tide_fd_t *reg = NULL;
    ck_assert_int_eq(tide_fd_new(&reg, ex, sv[0]), 0);
    char buf[8];
    t_io_t io = {buf, sizeof buf, 0};
    ck_assert_int_eq(write(sv[1], "hello", 5), 5);
    ck_assert_int_eq(tide_fd_try_io(reg, TIDE_READABLE, t_read_fn, &io), 5);
    ck_assert_uint_eq(tide_fd_readiness(reg) & TIDE_READABLE, TIDE_READABLE);
    ck_assert_int_eq(tide_fd_try_io(reg, TIDE_READABLE, fail_eio_fn, &io),
                     -EIO);
    ck_assert_uint_eq(tide_fd_readiness(reg) & TIDE_READABLE, TIDE_READABLE);
    ck_assert_int_eq(tide_fd_try_io(reg, TIDE_READABLE, t_read_fn, &io),
                     -EAGAIN);
    ck_assert_int_eq(io.calls, 3);
    ck_assert_uint_eq(tide_fd_readiness(reg), TIDE_WRITABLE);
    ck_assert_int_eq(tide_fd_try_io(reg, TIDE_READABLE, t_read_fn, &io),
                     -EAGAIN);
    ck_assert_int_eq(io.calls, 3); /* not ready: fn not called */
    /* an I/O function's own EAGAIN works the same on the write side */
    ck_assert_int_eq(tide_fd_try_io(reg, TIDE_WRITABLE, t_eagain_fn, &io),
                     -EAGAIN);
    ck_assert_uint_eq(tide_fd_readiness(reg), 0);
    tide_fd_free(reg);
    close(sv[1]);
    t_exec_free_clean(ex);
}
END_TEST

/* ------------------------------------------------------------------------
 * async_io
 * ------------------------------------------------------------------------ */

START_TEST(test_fd_async_io_waits_then_reads) {
    tide_exec_t *ex = t_exec_new();
    int sv[2];
    t_socketpair(sv);
    tide_fd_t *reg = NULL;
    ck_assert_int_eq(tide_fd_new(&reg, ex, sv[0]), 0);
    t_hand_t h;
    t_hand_init(&h, ex);
    char buf[16];
    t_io_t io = {buf, sizeof buf, 0};
    tide_fd_io_t op;
    tide_future_t *f =
        tide_fd_async_io(&op, reg, TIDE_READABLE, t_read_fn, &io);
    ck_assert_int_eq(t_hand_poll(&h, f), TIDE_PENDING);
    ck_assert_int_eq(io.calls, 1); /* tried, EAGAIN, now waiting */
    ck_assert_uint_eq(t_stats(ex).armed_events, 1);
    ck_assert_int_eq(write(sv[1], "data", 4), 4);
    ck_assert(t_loop_until_count(tide_exec_base(ex), &h.count.woken, 1));
    ck_assert_int_eq(t_hand_poll(&h, f), TIDE_READY);
    ck_assert_int_eq(f->result, 4);
    ck_assert_int_eq(io.calls, 2);
    ck_assert_int_eq(memcmp(buf, "data", 4), 0);
    tide_future_drop(f);
    /* a write that doesn't block completes at once */
    io = (t_io_t){(char *)"out", 3, 0};
    f = tide_fd_async_io(&op, reg, TIDE_WRITABLE, t_write_fn, &io);
    ck_assert_int_eq(t_hand_poll(&h, f), TIDE_READY);
    ck_assert_int_eq(f->result, 3);
    tide_future_drop(f);
    /* EOF is a result like any other (drain first: closing a unix socket
     * with unread data would reset the connection instead) */
    ck_assert_uint_eq(t_drain(sv[1]), 3);
    close(sv[1]);
    io = (t_io_t){buf, sizeof buf, 0};
    f = tide_fd_async_io(&op, reg, TIDE_READABLE, t_read_fn, &io);
    for (int i = 0; i < 100 && t_hand_poll(&h, f) == TIDE_PENDING; i++)
        t_loop_until_count(tide_exec_base(ex), &h.count.woken, 2 + i);
    ck_assert(tide_future_is_done(f));
    ck_assert_int_eq(f->result, 0);
    tide_future_drop(f);
    tide_fd_free(reg);
    t_hand_done(&h);
    t_exec_free_clean(ex);
}
END_TEST

START_TEST(test_fd_async_io_bad_interest) {
    tide_exec_t *ex = t_exec_new();
    int sv[2];
    t_socketpair(sv);
    tide_fd_t *reg = NULL;
    ck_assert_int_eq(tide_fd_new(&reg, ex, sv[0]), 0);
    t_hand_t h;
    t_hand_init(&h, ex);
    char buf[4];
    t_io_t io = {buf, sizeof buf, 0};
    tide_fd_io_t op;
    tide_future_t *f = tide_fd_async_io(&op, reg, TIDE_READABLE | TIDE_WRITABLE,
                                        t_read_fn, &io);
    ck_assert_int_eq(t_hand_poll(&h, f), TIDE_READY);
    ck_assert_int_eq(f->result, -EINVAL);
    tide_future_drop(f);
    f = tide_fd_async_io(&op, reg, 0, t_read_fn, &io);
    ck_assert_int_eq(t_hand_poll(&h, f), TIDE_READY);
    ck_assert_int_eq(f->result, -EINVAL);
    tide_future_drop(f);
    ck_assert_int_eq(io.calls, 0);
    tide_fd_free(reg);
    close(sv[1]);
    t_hand_done(&h);
    t_exec_free_clean(ex);
}
END_TEST

START_TEST(test_fd_async_io_drop_never_calls_again) {
    tide_exec_t *ex = t_exec_new();
    int sv[2];
    t_socketpair(sv);
    tide_fd_t *reg = NULL;
    ck_assert_int_eq(tide_fd_new(&reg, ex, sv[0]), 0);
    t_hand_t h;
    t_hand_init(&h, ex);
    char buf[4];
    t_io_t io = {buf, sizeof buf, 0};
    tide_fd_io_t op;
    tide_future_t *f =
        tide_fd_async_io(&op, reg, TIDE_READABLE, t_read_fn, &io);
    ck_assert_int_eq(t_hand_poll(&h, f), TIDE_PENDING);
    tide_future_drop(f);
    ck_assert_uint_eq(t_stats(ex).armed_events, 0);
    ck_assert_int_eq(write(sv[1], "abcd", 4), 4);
    t_run_for(tide_exec_base(ex), 10);
    ck_assert_int_eq(io.calls, 1);
    ck_assert_int_eq(t_woken(&h.count), 0);
    ck_assert_int_eq(read(sv[0], buf, sizeof buf), 4); /* nothing lost */
    tide_fd_free(reg);
    close(sv[1]);
    t_hand_done(&h);
    t_exec_free_clean(ex);
}
END_TEST

/* ------------------------------------------------------------------------
 * poll_read_ready / poll_write_ready from a hand-written future
 * ------------------------------------------------------------------------ */

START_TEST(test_fd_poll_read_ready_last_waker_wins) {
    tide_exec_t *ex = t_exec_new();
    int sv[2];
    tide_fd_t *reg = t_reg_cleared(ex, sv);
    t_hand_t a, b;
    t_hand_init(&a, ex);
    t_hand_init(&b, ex);
    tide_fd_guard_t g;
    ck_assert_int_eq(tide_fd_poll_read_ready(reg, &a.cx, &g), TIDE_PENDING);
    ck_assert_int_eq(atomic_load(&a.count.refs), 2); /* the slot's clone */
    ck_assert_int_eq(tide_fd_poll_read_ready(reg, &b.cx, &g), TIDE_PENDING);
    ck_assert_int_eq(atomic_load(&a.count.refs), 1); /* replaced */
    ck_assert_int_eq(atomic_load(&b.count.refs), 2);
    /* the same waker again keeps its reference */
    ck_assert_int_eq(tide_fd_poll_read_ready(reg, &b.cx, &g), TIDE_PENDING);
    ck_assert_int_eq(atomic_load(&b.count.clones), 1);
    ck_assert_uint_eq(t_stats(ex).armed_events, 1);
    ck_assert_int_eq(write(sv[1], "r", 1), 1);
    ck_assert(t_loop_until_count(tide_exec_base(ex), &b.count.woken, 1));
    ck_assert_int_eq(t_woken(&a.count), 0);
    ck_assert_int_eq(tide_fd_poll_read_ready(reg, &b.cx, &g), TIDE_READY);
    ck_assert_ptr_eq(g.fd, reg);
    ck_assert_uint_eq(g.ready & TIDE_READABLE, TIDE_READABLE);
    tide_fd_free(reg);
    close(sv[1]);
    t_hand_done(&a);
    t_hand_done(&b);
    t_exec_free_clean(ex);
}
END_TEST

START_TEST(test_fd_poll_write_ready_by_hand) {
    tide_exec_t *ex = t_exec_new();
    int sv[2];
    t_socketpair(sv);
    tide_fd_t *reg = NULL;
    ck_assert_int_eq(tide_fd_new(&reg, ex, sv[0]), 0);
    t_hand_t h;
    t_hand_init(&h, ex);
    tide_fd_guard_t g;
    ck_assert_int_eq(tide_fd_poll_write_ready(reg, &h.cx, &g), TIDE_READY);
    ck_assert_uint_eq(g.ready, TIDE_WRITABLE);
    t_reg_fill(reg);
    ck_assert_int_eq(tide_fd_poll_write_ready(reg, &h.cx, NULL), TIDE_PENDING);
    /* the read side is not involved */
    ck_assert_int_eq(tide_fd_poll_read_ready(reg, &h.cx, NULL), TIDE_READY);
    t_drain(sv[1]);
    ck_assert(t_loop_until_count(tide_exec_base(ex), &h.count.woken, 1));
    ck_assert_int_eq(tide_fd_poll_write_ready(reg, &h.cx, &g), TIDE_READY);
    ck_assert_uint_eq(g.ready, TIDE_WRITABLE);
    tide_fd_free(reg);
    close(sv[1]);
    t_hand_done(&h);
    t_exec_free_clean(ex);
}
END_TEST

START_TEST(test_fd_poll_ready_spends_budget) {
    tide_exec_t *ex = t_exec_new();
    int sv[2];
    t_socketpair(sv);
    tide_fd_t *reg = NULL;
    ck_assert_int_eq(tide_fd_new(&reg, ex, sv[0]), 0);
    t_hand_t h;
    t_hand_init(&h, ex);
    int ready = 0;
    while (tide_fd_poll_read_ready(reg, &h.cx, NULL) == TIDE_READY &&
           ready < 10 * TIDE_BUDGET)
        ready++;
    /* ready every time until the budget ran out; then PENDING after a
     * wake, so that an always-ready descriptor can't hog the executor */
    ck_assert_int_eq(ready, TIDE_BUDGET);
    ck_assert_int_eq(atomic_load(&h.count.wake_by_refs), 1);
    ck_assert_uint_eq(t_stats(ex).armed_events, 0);
    tide_fd_free(reg);
    close(sv[1]);
    t_hand_done(&h);
    t_exec_free_clean(ex);
}
END_TEST

/* ------------------------------------------------------------------------
 * Races and closing
 * ------------------------------------------------------------------------ */

START_TEST(test_fd_stale_guard_does_not_clear) {
    tide_exec_t *ex = t_exec_new();
    int sv[2];
    t_socketpair(sv);
    tide_fd_t *reg = NULL;
    ck_assert_int_eq(tide_fd_new(&reg, ex, sv[0]), 0);
    t_hand_t ha, hb;
    t_hand_init(&ha, ex);
    t_hand_init(&hb, ex);
    /* A and B take guards at the same tick */
    tide_fd_wait_t wa, wb;
    tide_future_t *fa = tide_fd_readable(&wa, reg);
    tide_future_t *fb = tide_fd_readable(&wb, reg);
    ck_assert_int_eq(t_hand_poll(&ha, fa), TIDE_READY);
    ck_assert_int_eq(t_hand_poll(&hb, fb), TIDE_READY);
    tide_fd_guard_t ga = *tide_fd_wait_guard(&wa);
    tide_fd_guard_t gb = *tide_fd_wait_guard(&wb);
    tide_future_drop(fa);
    tide_future_drop(fb);
    /* both reads hit EAGAIN */
    char c;
    ck_assert_int_eq(read(sv[0], &c, 1), -1);
    ck_assert_int_eq(read(sv[0], &c, 1), -1);
    /* A clears and waits */
    tide_fd_guard_clear_ready(&ga);
    ck_assert_uint_eq(tide_fd_readiness(reg) & TIDE_READABLE, 0);
    fa = tide_fd_readable(&wa, reg);
    ck_assert_int_eq(t_hand_poll(&ha, fa), TIDE_PENDING);
    ck_assert_uint_eq(t_stats(ex).armed_events, 1);
    /* readiness arrives; the loop wakes A */
    ck_assert_int_eq(write(sv[1], "n", 1), 1);
    ck_assert(t_loop_until_count(tide_exec_base(ex), &ha.count.woken, 1));
    /* B, late, clears through its stale guard: nothing is lost */
    tide_fd_guard_clear_ready(&gb);
    ck_assert_uint_eq(tide_fd_readiness(reg) & TIDE_READABLE, TIDE_READABLE);
    tide_fd_guard_clear_ready_matching(&gb, TIDE_READABLE);
    ck_assert_uint_eq(tide_fd_readiness(reg) & TIDE_READABLE, TIDE_READABLE);
    fb = tide_fd_readable(&wb, reg);
    ck_assert_int_eq(t_hand_poll(&hb, fb), TIDE_READY);
    ck_assert_int_eq(t_hand_poll(&ha, fa), TIDE_READY);
    tide_future_drop(fa);
    tide_future_drop(fb);
    ck_assert_int_eq(read(sv[0], &c, 1), 1);
    tide_fd_free(reg);
    close(sv[1]);
    t_hand_done(&ha);
    t_hand_done(&hb);
    t_exec_free_clean(ex);
}
END_TEST

static bool early_close_supported(tide_exec_t *ex) {
    return (event_base_get_features(tide_exec_base(ex)) &
            EV_FEATURE_EARLY_CLOSE) != 0;
}

START_TEST(test_fd_peer_close_gives_readiness) {
    tide_exec_t *ex = t_exec_new();
    int sv[2];
    tide_fd_t *reg = t_reg_cleared(ex, sv);
    t_hand_t h;
    t_hand_init(&h, ex);
    tide_fd_wait_t w;
    tide_future_t *f = tide_fd_readable(&w, reg);
    ck_assert_int_eq(t_hand_poll(&h, f), TIDE_PENDING);
    close(sv[1]);
    ck_assert(t_loop_until_count(tide_exec_base(ex), &h.count.woken, 1));
    ck_assert_int_eq(t_hand_poll(&h, f), TIDE_READY);
    unsigned want = TIDE_READABLE;
    if (early_close_supported(ex))
        want |= TIDE_READ_CLOSED;
    ck_assert_uint_eq(tide_fd_guard_ready(tide_fd_wait_guard(&w)) & want, want);
    ck_assert_uint_eq(tide_fd_readiness(reg) & want, want);
    tide_future_drop(f);
    char c;
    ck_assert_int_eq(read(sv[0], &c, 1), 0); /* EOF */
    /* clearing never removes a closed state: waiting again is immediate */
    tide_fd_guard_t g = *tide_fd_wait_guard(&w);
    tide_fd_guard_clear_ready(&g);
    f = tide_fd_readable(&w, reg);
    if (early_close_supported(ex)) {
        ck_assert_int_eq(t_hand_poll(&h, f), TIDE_READY);
        ck_assert_uint_eq(tide_fd_guard_ready(tide_fd_wait_guard(&w)) &
                              TIDE_READ_CLOSED,
                          TIDE_READ_CLOSED);
    } else {
        for (int i = 0; i < 100 && t_hand_poll(&h, f) == TIDE_PENDING; i++)
            t_loop_until_count(tide_exec_base(ex), &h.count.woken, 2 + i);
        ck_assert(tide_future_is_done(f));
    }
    tide_future_drop(f);
    tide_fd_free(reg);
    t_hand_done(&h);
    t_exec_free_clean(ex);
}
END_TEST

/* The write direction's libevent event is made the first time a write
 * would block (an idle connection carries one event, not two). Without
 * memory for it, the wait reports the direction ready (so that the next
 * system call is tried again, not waited on forever), and the next wait
 * makes it. */
START_TEST(test_fd_write_event_made_on_first_block_enomem_then_ok) {
    tide_exec_t *ex = t_exec_new();
    int sv[2];
    t_socketpair(sv);
    tide_fd_t *reg = NULL;
    ck_assert_int_eq(tide_fd_new(&reg, ex, sv[0]), 0);
    t_reg_fill(reg);
    t_hand_t h;
    t_hand_init(&h, ex);
    tide_fd_wait_t w;
    /* no memory for the event: PENDING, but woken at once, then READY */
    tide__alloc_fail_at(1);
    tide_future_t *f = tide_fd_writable(&w, reg);
    ck_assert_int_eq(t_hand_poll(&h, f), TIDE_PENDING);
    ck_assert_int_ge(t_woken(&h.count), 1);
    tide__alloc_fail_at(0);
    ck_assert_uint_eq(t_stats(ex).armed_events, 0);
    ck_assert_int_eq(t_hand_poll(&h, f), TIDE_READY);
    tide_future_drop(f);
    t_reg_fill(reg); /* the write still blocks: readiness cleared again */
    /* memory again: the event is made and armed, nobody is woken until the
     * peer reads */
    int woken = t_woken(&h.count);
    f = tide_fd_writable(&w, reg);
    ck_assert_int_eq(t_hand_poll(&h, f), TIDE_PENDING);
    ck_assert_int_eq(t_woken(&h.count), woken);
    ck_assert_uint_eq(t_stats(ex).armed_events, 1);
    t_drain(sv[1]);
    ck_assert(
        t_loop_until_count(tide_exec_base(ex), &h.count.woken, woken + 1));
    ck_assert_int_eq(t_hand_poll(&h, f), TIDE_READY);
    tide_future_drop(f);
    t_hand_done(&h);
    tide_fd_free(reg); /* frees the event too: ASan and valgrind check */
    close(sv[1]);
    t_exec_free_clean(ex);
}
END_TEST

/* TIDE_READ_CLOSED whenever the peer has closed (issue 10, item 10), not
 * only when a wait was armed as the FIN arrived. */
static unsigned ready_now(tide_exec_t *ex, tide_fd_t *reg) {
    tide_fd_wait_t w;
    tide_future_t *f = tide_fd_ready(&w, reg, TIDE_READABLE);
    ck_assert_int_eq(t_run(ex, f), 0);
    unsigned r = tide_fd_guard_ready(tide_fd_wait_guard(&w));
    tide_future_drop(f);
    return r;
}

START_TEST(test_fd_read_closed_seen_without_armed_wait) {
    tide_exec_t *ex = t_exec_new();
    /* 1. closed before the registration: its optimistic readiness */
    int sv[2];
    t_socketpair(sv);
    close(sv[1]);
    tide_fd_t *reg = NULL;
    ck_assert_int_eq(tide_fd_new(&reg, ex, sv[0]), 0);
    for (int i = 0; i < 3; i++)
        ck_assert_msg(ready_now(ex, reg) & TIDE_READ_CLOSED,
                      "try %d: READ_CLOSED missing after the peer closed", i);
    tide_fd_free(reg);

    /* 2. data came and woke a wait; the reader left some unread; more
     * came for nobody, so the event was removed; then the peer closed
     * while nobody waited */
    reg = t_reg_cleared(ex, sv);
    ck_assert_int_eq(write(sv[1], "ab", 2), 2);
    unsigned r = ready_now(ex, reg); /* waits: the event fires */
    ck_assert_uint_eq(r & TIDE_READABLE, TIDE_READABLE);
    ck_assert_uint_eq(r & TIDE_READ_CLOSED, 0);
    ck_assert_int_eq(write(sv[1], "c", 1), 1);
    (void)t_run_for(tide_exec_base(ex), 5); /* it fires for nobody */
    ck_assert_uint_eq(t_stats(ex).armed_events, 0);
    close(sv[1]);
    for (int i = 0; i < 3; i++)
        ck_assert_msg(ready_now(ex, reg) & TIDE_READ_CLOSED,
                      "try %d: READ_CLOSED missing after the peer closed", i);
    tide_fd_free(reg);

    /* 3. a pipe whose last writer is gone (POLLHUP, not RDHUP) */
    int p[2];
    ck_assert_int_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    ck_assert_int_eq(tide_fd_new(&reg, ex, p[0]), 0);
    ck_assert_uint_eq(ready_now(ex, reg) & TIDE_READ_CLOSED, 0);
    close(p[1]);
    ck_assert(ready_now(ex, reg) & TIDE_READ_CLOSED);
    tide_fd_free(reg);

    /* 4. a peer still open: no READ_CLOSED */
    reg = t_reg_cleared(ex, sv);
    ck_assert_int_eq(write(sv[1], "x", 1), 1);
    ck_assert_uint_eq(ready_now(ex, reg) & TIDE_READ_CLOSED, 0);
    tide_fd_free(reg);
    close(sv[1]);
    t_exec_free_clean(ex);
}
END_TEST

/* After EOF: read to EOF, wait again (immediate), then sleep 50 ms with the
 * registration idle; the executor must stay quiet meanwhile. */
typedef struct eof_task {
    tide_future_t fut;
    tide_async_t co;
    tide_fd_t *reg;
    tide_fd_wait_t w;
    tide_sleep_t nap;
    int i;
    int eofs;
    uint64_t polls, turns, cpu, wall;
    size_t armed_after;
} eof_task_t;

static tide_poll_t eof_task_poll(tide_future_t *f, tide_cx_t *cx) {
    eof_task_t *t = TIDE_CONTAINER_OF(f, eof_task_t, fut);
    TIDE_BEGIN(&t->co);
    for (t->i = 0; t->i < 3; t->i++) {
        TIDE_AWAIT(&t->co, cx, tide_fd_readable(&t->w, t->reg));
        if (tide_async_result(&t->co) < 0)
            TIDE_RETURN(&t->co, f, tide_async_result(&t->co));
        char c;
        if (read(tide_fd_get(t->reg), &c, 1) == 0)
            t->eofs++;
        tide_fd_guard_clear_ready(tide_fd_wait_guard(&t->w));
    }
    {
        tide_exec_stats_t st = t_stats(cx->exec);
        t->polls = st.polls;
        t->turns = st.turns;
        t->cpu = t_cpu_usec();
        t->wall = tide_now();
    }
    TIDE_AWAIT(&t->co, cx, tide_sleep(&t->nap, 50 * TIDE_USEC_PER_MSEC));
    {
        tide_exec_stats_t st = t_stats(cx->exec);
        t->polls = st.polls - t->polls;
        t->turns = st.turns - t->turns;
        t->cpu = t_cpu_usec() - t->cpu;
        t->wall = tide_now() - t->wall;
        t->armed_after = st.armed_events;
    }
    TIDE_END(&t->co, f, 0);
}

static void eof_task_drop(tide_future_t *f) {
    eof_task_t *t = TIDE_CONTAINER_OF(f, eof_task_t, fut);
    tide_async_drop(&t->co);
}

static const tide_future_vtable_t eof_task_vt = {eof_task_poll, eof_task_drop};

START_TEST(test_fd_eof_wait_again_does_not_spin) {
    tide_exec_t *ex = t_exec_new();
    int sv[2];
    tide_fd_t *reg = t_reg_cleared(ex, sv);
    /* arm the read event the honest way: someone waits, then the peer
     * closes and wakes it */
    t_hand_t h;
    t_hand_init(&h, ex);
    tide_fd_wait_t w;
    tide_future_t *f = tide_fd_readable(&w, reg);
    ck_assert_int_eq(t_hand_poll(&h, f), TIDE_PENDING);
    close(sv[1]);
    ck_assert(t_loop_until_count(tide_exec_base(ex), &h.count.woken, 1));
    ck_assert_int_eq(t_hand_poll(&h, f), TIDE_READY);
    tide_future_drop(f);
    t_hand_done(&h);

    eof_task_t t;
    memset(&t, 0, sizeof t);
    t.reg = reg;
    tide_future_init(&t.fut, &eof_task_vt);
    ck_assert_int_eq(t_run(ex, &t.fut), 0);
    ck_assert_int_eq(t.eofs, 3);
    ck_assert_uint_ge(t.wall, 50 * TIDE_USEC_PER_MSEC);
    ck_assert_uint_le(t.polls, 3);
    ck_assert_uint_le(t.turns, 5);
    ck_assert_uint_lt(t.cpu, t.wall / 2); /* very loose: a spin is ~100% */
    /* the read event nobody waits on may stay: edge-triggered, at end of
     * stream, it fires no more (costing nothing: no callback above) */
    ck_assert_uint_le(t.armed_after, 1);
    tide_fd_free(reg); /* and it goes with its registration */
    ck_assert_uint_eq(t_stats(ex).armed_events, 0);
    t_exec_free_clean(ex);
}
END_TEST

/* Tasks waiting on a registration that another task frees. */
typedef struct freer {
    tide_future_t fut;
    tide_async_t co;
    tide_sleep_t nap;
    tide_fd_t *reg;
} freer_t;

static tide_poll_t freer_poll(tide_future_t *f, tide_cx_t *cx) {
    freer_t *r = TIDE_CONTAINER_OF(f, freer_t, fut);
    TIDE_BEGIN(&r->co);
    TIDE_AWAIT(&r->co, cx, tide_sleep(&r->nap, 3000));
    tide_fd_free(r->reg);
    TIDE_END(&r->co, f, 0);
}

typedef struct aio_task {
    tide_future_t fut;
    tide_async_t co;
    tide_fd_io_t op;
    tide_fd_t *reg;
    t_io_t io;
    char buf[4];
} aio_task_t;

static tide_poll_t aio_task_poll(tide_future_t *f, tide_cx_t *cx) {
    aio_task_t *a = TIDE_CONTAINER_OF(f, aio_task_t, fut);
    TIDE_BEGIN(&a->co);
    a->io = (t_io_t){a->buf, sizeof a->buf, 0};
    TIDE_AWAIT(
        &a->co, cx,
        tide_fd_async_io(&a->op, a->reg, TIDE_READABLE, t_read_fn, &a->io));
    TIDE_END(&a->co, f, tide_async_result(&a->co));
}

static void aio_task_drop(tide_future_t *f) {
    aio_task_t *a = TIDE_CONTAINER_OF(f, aio_task_t, fut);
    tide_async_drop(&a->co);
}

static const tide_future_vtable_t freer_vt = {freer_poll, NULL};

static const tide_future_vtable_t aio_task_vt = {aio_task_poll, aio_task_drop};

START_TEST(test_fd_free_while_waiting_ebadf) {
    tide_exec_t *ex = t_exec_new();
    int sv[2];
    tide_fd_t *reg = t_reg_cleared(ex, sv);
    int woke = 0;
    rwait_t r;
    memset(&r, 0, sizeof r);
    r.reg = reg;
    r.woke = &woke;
    tide_future_init(&r.fut, &rwait_vt);
    aio_task_t a;
    memset(&a, 0, sizeof a);
    a.reg = reg;
    tide_future_init(&a.fut, &aio_task_vt);
    freer_t fr;
    memset(&fr, 0, sizeof fr);
    fr.reg = reg;
    tide_future_init(&fr.fut, &freer_vt);
    tide_join_t jr, ja;
    ck_assert_int_eq(tide_spawn(ex, &r.fut, &jr), 0);
    ck_assert_int_eq(tide_spawn(ex, &a.fut, &ja), 0);
    ck_assert_int_eq(t_run(ex, &fr.fut), 0);
    ck_assert(!t_is_open(sv[0]));
    ck_assert_int_eq(t_run(ex, tide_join(&jr)), -EBADF);
    ck_assert_int_eq(t_run(ex, tide_join(&ja)), -EBADF);
    ck_assert_int_eq(woke, 1);
    ck_assert_int_eq(a.io.calls, 0); /* never ready: never tried */
    close(sv[1]);
    t_exec_free_clean(ex);
}
END_TEST

/* A task woken by its descriptor's event runs in that event's callback
 * when nothing else is ready (reactor/fd.c, tide__exec_enter): freeing
 * the registration there must leave nothing that the callback touches
 * after (ASan and valgrind check). */
typedef struct self_freer {
    tide_future_t fut;
    tide_async_t co;
    tide_fd_wait_t w;
    tide_fd_t *reg;
    const int *host_ran; /* or NULL */
    int saw_host;        /* *host_ran when the task woke */
} self_freer_t;

static tide_poll_t self_freer_poll(tide_future_t *f, tide_cx_t *cx) {
    self_freer_t *r = TIDE_CONTAINER_OF(f, self_freer_t, fut);
    TIDE_BEGIN(&r->co);
    TIDE_AWAIT(&r->co, cx, tide_fd_readable(&r->w, r->reg));
    if (r->host_ran != NULL)
        r->saw_host = *r->host_ran;
    tide_fd_free(r->reg);
    r->reg = NULL;
    TIDE_END(&r->co, f, tide_async_result(&r->co));
}

static void self_freer_drop(tide_future_t *f) {
    self_freer_t *r = TIDE_CONTAINER_OF(f, self_freer_t, fut);
    tide_async_drop(&r->co);
}

static const tide_future_vtable_t self_freer_vt = {self_freer_poll,
                                                   self_freer_drop};

START_TEST(test_fd_woken_task_frees_registration_in_its_event) {
    tide_exec_t *ex = t_exec_new();
    int sv[2];
    self_freer_t r;
    memset(&r, 0, sizeof r);
    r.reg = t_reg_cleared(ex, sv);
    tide_future_init(&r.fut, &self_freer_vt);
    tide_join_t j;
    ck_assert_int_eq(tide_spawn(ex, &r.fut, &j), 0);
    t_run_for(tide_exec_base(ex), 5); /* the task waits, its event armed */
    ck_assert(!tide_join_is_finished(&j));
    ck_assert_int_eq(write(sv[1], "x", 1), 1);
    ck_assert_int_eq(t_run(ex, tide_join(&j)), 0);
    ck_assert_ptr_null(r.reg);
    ck_assert(!t_is_open(sv[0]));
    ck_assert_uint_eq(t_stats(ex).armed_events, 0);
    close(sv[1]);
    t_exec_free_clean(ex);
}
END_TEST

static void host_read_cb(evutil_socket_t fd, short what, void *arg) {
    char b;
    (void)what;
    ck_assert_int_eq(read(fd, &b, 1), 1);
    (*(int *)arg)++;
}

/* ...but not ahead of a host event that the same poll of the backend
 * found ready: the task then runs in the executor's turn, after it.
 * The task's descriptor becomes readable first, so epoll reports it
 * first and libevent runs its callback first. */
START_TEST(test_fd_woken_task_runs_after_ready_host_event) {
    tide_exec_t *ex = t_exec_new();
    int sv[2], hv[2];
    int host_ran = 0;
    self_freer_t r;
    memset(&r, 0, sizeof r);
    r.reg = t_reg_cleared(ex, sv);
    r.host_ran = &host_ran;
    r.saw_host = -1;
    tide_future_init(&r.fut, &self_freer_vt);
    t_socketpair(hv);
    struct event *hev =
        event_new(tide_exec_base(ex), hv[0], EV_READ, host_read_cb, &host_ran);
    ck_assert_ptr_nonnull(hev);
    ck_assert_int_eq(event_add(hev, NULL), 0);
    tide_join_t j;
    ck_assert_int_eq(tide_spawn(ex, &r.fut, &j), 0);
    t_run_for(tide_exec_base(ex), 5);
    ck_assert(!tide_join_is_finished(&j));
    ck_assert_int_eq(write(sv[1], "x", 1), 1);
    ck_assert_int_eq(write(hv[1], "y", 1), 1);
    ck_assert_int_eq(t_run(ex, tide_join(&j)), 0);
    ck_assert_int_eq(host_ran, 1);
    ck_assert_int_eq(r.saw_host, 1);
    event_free(hev);
    close(hv[0]);
    close(hv[1]);
    close(sv[1]);
    t_exec_free_clean(ex);
}
END_TEST

START_TEST(test_fd_into_inner_wakes_slot_waiter) {
    tide_exec_t *ex = t_exec_new();
    int sv[2];
    tide_fd_t *reg = t_reg_cleared(ex, sv);
    t_hand_t h;
    t_hand_init(&h, ex);
    ck_assert_int_eq(tide_fd_poll_read_ready(reg, &h.cx, NULL), TIDE_PENDING);
    ck_assert_int_eq(atomic_load(&h.count.refs), 2);
    /* "waiters are treated as by tide_fd_free": woken, not forgotten */
    ck_assert_int_eq(tide_fd_into_inner(reg), sv[0]);
    ck_assert_int_eq(atomic_load(&h.count.refs), 1);
    ck_assert_int_eq(t_woken(&h.count), 1);
    ck_assert(t_is_open(sv[0]));
    close(sv[0]);
    close(sv[1]);
    t_hand_done(&h);
    t_exec_free_clean(ex);
}
END_TEST

START_TEST(test_fd_outlives_exec) {
    tide_exec_t *ex = t_exec_new();
    int sv[2];
    tide_fd_t *reg = t_reg_cleared(ex, sv);
    int woke = 0;
    rwait_t r;
    memset(&r, 0, sizeof r);
    r.reg = reg;
    r.woke = &woke;
    tide_future_init(&r.fut, &rwait_vt);
    tide_join_t jr;
    ck_assert_int_eq(tide_spawn(ex, &r.fut, &jr), 0);
    t_hand_t h;
    t_hand_init(&h, ex);
    ck_assert_int_eq(tide_fd_poll_write_ready(reg, &h.cx, NULL), TIDE_READY);
    t_reg_fill(reg);
    ck_assert_int_eq(tide_fd_poll_write_ready(reg, &h.cx, NULL), TIDE_PENDING);
    t_run_for(tide_exec_base(ex), 5);
    ck_assert_uint_eq(t_stats(ex).armed_events, 2);
    tide_exec_free(ex);
    ck_assert(tide_join_is_finished(&jr));
    tide_future_drop(tide_join(&jr));
    ck_assert_int_eq(woke, 0);
    ck_assert_int_eq(atomic_load(&h.count.refs), 1); /* slot released */
    /* the registration still answers, and still closes its descriptor */
    ck_assert_int_eq(tide_fd_get(reg), sv[0]);
    ck_assert(t_is_open(sv[0]));
    tide_fd_free(reg);
    ck_assert(!t_is_open(sv[0]));
    close(sv[1]);
    t_hand_done(&h);
}
END_TEST

START_TEST(test_fd_alloc_fail_new) {
    tide_exec_t *ex = t_exec_new();
    int sv[2];
    t_socketpair(sv);
    tide_fd_t *reg = NULL;
    unsigned long n;
    for (n = 1; n < 100; n++) {
        tide__alloc_fail_at(n);
        int rc = tide_fd_new(&reg, ex, sv[0]);
        unsigned long made = tide__alloc_fail_at(0);
        if (rc == 0) {
            t_assert_uint_lt_at(n, made, n);
            break;
        }
        t_assert_int_eq_at(n, rc, -ENOMEM);
        t_assert_uint_eq_at(n, made, n);
        t_assert_uint_eq_at(n, t_stats(ex).registered, 0);
        t_assert_at(n, t_is_open(sv[0])); /* not taken on failure */
        t_assert_at(n, t_is_nonblocking(sv[0]));
    }
    ck_assert_uint_ge(n, 2);
    ck_assert_uint_lt(n, 100);
    ck_assert_uint_eq(t_stats(ex).registered, 1);
    /* works once registered */
    char c;
    t_io_t io = {&c, 1, 0};
    ck_assert_int_eq(tide_fd_try_io(reg, TIDE_READABLE, t_read_fn, &io),
                     -EAGAIN);
    /* a second registration, the table in place: exactly one allocation */
    tide_fd_t *peer = NULL;
    tide__alloc_fail_at(0);
    ck_assert_int_eq(tide_fd_new(&peer, ex, sv[1]), 0);
    ck_assert_uint_eq(tide__alloc_fail_at(0), 1);
    /* waiting allocates nothing */
    t_hand_t h;
    t_hand_init(&h, ex);
    tide_fd_wait_t w;
    tide_future_t *f = tide_fd_readable(&w, reg);
    ck_assert_int_eq(t_hand_poll(&h, f), TIDE_PENDING);
    ck_assert_int_eq(write(sv[1], "a", 1), 1);
    ck_assert(t_loop_until_count(tide_exec_base(ex), &h.count.woken, 1));
    ck_assert_int_eq(t_hand_poll(&h, f), TIDE_READY);
    tide_future_drop(f);
    ck_assert_uint_eq(tide__alloc_fail_at(0), 0);
    tide_fd_free(reg);
    tide_fd_free(peer);
    t_hand_done(&h);
    t_exec_free_clean(ex);
}
END_TEST

/* ------------------------------------------------------------------------ */

/* Review finding: a wait whose task ran out of cooperative budget answered
 * PENDING before its node was linked, so freeing the registration could not
 * reach it and its next poll read freed memory. */
START_TEST(test_fd_wait_out_of_budget_then_free_ebadf) {
    tide_exec_t *ex = t_exec_new();
    int sv[2];
    tide_fd_t *reg = t_reg_cleared(ex, sv);
    t_hand_t h;
    t_hand_init(&h, ex);
    tide_fd_wait_t w;
    tide_fd_readable(&w, reg);
    h.cx.budget = 0;
    ck_assert_int_eq(tide_future_poll(&w.fut, &h.cx), TIDE_PENDING);
    ck_assert_int_eq(t_woken(&h.count), 1); /* coop woke the task */
    tide_fd_free(reg);
    ck_assert_int_eq(t_hand_poll(&h, &w.fut), TIDE_READY);
    ck_assert_int_eq(w.fut.result, -EBADF);
    tide_future_drop(&w.fut);
    t_hand_done(&h);
    close(sv[1]);
    t_exec_free_clean(ex);
}
END_TEST

/* A wait on a registration that tide_exec_free detached completes with
 * -EBADF: it must not report readiness that a try_io loop would spin on. */
START_TEST(test_fd_wait_on_detached_ebadf) {
    tide_exec_t *ex = t_exec_new();
    int sv[2];
    tide_fd_t *reg = t_reg_cleared(ex, sv);
    tide_exec_free(ex);
    t_hand_t h;
    t_hand_init(&h, NULL);
    tide_fd_wait_t w;
    tide_fd_readable(&w, reg);
    ck_assert_int_eq(t_hand_poll(&h, &w.fut), TIDE_READY);
    ck_assert_int_eq(w.fut.result, -EBADF);
    tide_future_drop(&w.fut);
    t_hand_done(&h);
    tide_fd_free(reg);
    ck_assert(!t_is_open(sv[0]));
    close(sv[1]);
}
END_TEST

/* The registration of a stream object belongs to that object: tide_fd_free
 * on it does nothing and into_inner refuses, so its descriptor is closed
 * once, by its owner. */
START_TEST(test_fd_free_refuses_embedded) {
    tide_exec_t *ex = t_exec_new();
    int sv[2];
    t_socketpair(sv);
    tide_fdstream_t *st;
    ck_assert_int_eq(tide_fdstream_new(&st, ex, sv[0]), 0);
    tide_fd_t *reg = tide_fdstream_fd(st);
    tide_fd_free(reg);
    ck_assert(t_is_open(sv[0]));
    ck_assert_int_eq(tide_fd_into_inner(reg), -EINVAL);
    ck_assert(t_is_open(sv[0]));
    tide_fdstream_free(st);
    ck_assert(!t_is_open(sv[0]));
    close(sv[1]);
    t_exec_free_clean(ex);
}
END_TEST

static Suite *fd_suite(void) {
    Suite *s = suite_create("fd");
    TCase *tc;

    tc = t_tcase(s, "register", 30);
    tcase_add_test(tc, test_fd_new_blocking_refused);
    tcase_add_test(tc, test_fd_new_closed_ebadf);
    tcase_add_test(tc, test_fd_new_regular_file_eperm);
    tcase_add_test(tc, test_fd_new_twice_eexist);
    tcase_add_test(tc, test_fd_new_invalid);
    tcase_add_test(tc, test_fd_into_inner_keeps_open);
    tcase_add_test(tc, test_fd_free_closes_and_number_reusable);
    tcase_add_test(tc, test_fd_alloc_fail_new);

    tc = t_tcase(s, "wait", 30);
    tcase_add_test(tc, test_fd_readable_optimistic_then_waits);
    tcase_add_test(tc, test_fd_writable_waits_for_room);
    tcase_add_test(tc, test_fd_ready_interest);
    tcase_add_test(tc, test_fd_two_readers_both_wake);
    tcase_add_test(tc, test_fd_wait_drop_disarms);
    tcase_add_test(tc, test_fd_event_nobody_waits_on_is_removed);

    tc = t_tcase(s, "guard", 30);
    tcase_add_test(tc, test_fd_guard_clear_ready_matching);
    tcase_add_test(tc, test_fd_guard_clear_ready_clears_what_it_saw);
    tcase_add_test(tc, test_fd_guard_try_io);
    tcase_add_test(tc, test_fd_try_io_not_ready_skips_fn);
    tcase_add_test(tc, test_fd_try_io_clears_only_on_eagain);
    tcase_add_test(tc, test_fd_stale_guard_does_not_clear);

    tc = t_tcase(s, "async_io", 30);
    tcase_add_test(tc, test_fd_async_io_waits_then_reads);
    tcase_add_test(tc, test_fd_async_io_bad_interest);
    tcase_add_test(tc, test_fd_async_io_drop_never_calls_again);
    tcase_add_test(tc, test_fd_poll_read_ready_last_waker_wins);
    tcase_add_test(tc, test_fd_poll_write_ready_by_hand);
    tcase_add_test(tc, test_fd_poll_ready_spends_budget);

    tc = t_tcase(s, "close", 30);
    tcase_add_test(tc, test_fd_peer_close_gives_readiness);
    tcase_add_test(tc, test_fd_read_closed_seen_without_armed_wait);
    tcase_add_test(tc, test_fd_write_event_made_on_first_block_enomem_then_ok);
    tcase_add_test(tc, test_fd_eof_wait_again_does_not_spin);
    tcase_add_test(tc, test_fd_free_while_waiting_ebadf);
    tcase_add_test(tc, test_fd_woken_task_frees_registration_in_its_event);
    tcase_add_test(tc, test_fd_woken_task_runs_after_ready_host_event);
    tcase_add_test(tc, test_fd_into_inner_wakes_slot_waiter);
    tcase_add_test(tc, test_fd_outlives_exec);
    tcase_add_test(tc, test_fd_wait_out_of_budget_then_free_ebadf);
    tcase_add_test(tc, test_fd_wait_on_detached_ebadf);
    tcase_add_test(tc, test_fd_free_refuses_embedded);
    return s;
}

int main(void) { return t_run_suite(fd_suite()); }
