/*
 * t/check_io.c: the io layer: tide_fdstream, the helper futures, split,
 * the buffered reader and the codecs.
 *
 * Most helpers are exercised twice: over a fake stream implemented here
 * through the vtable (1-byte counts, PENDING after a self-wake, PENDING
 * with the waker stored and woken later by a timer or by the test, -EINTR
 * and errors on purpose), and over socketpairs registered as fdstreams.
 * The cancellation tests drop each future at its k-th PENDING for k = 1,
 * 2, ... until it completes, and check that no waker is left registered,
 * no event is left armed, and no byte is lost or duplicated.
 */
#include <check.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "io/internal.h"
#include "tide/time.h"

#include "testutil.h" /* t_exec_new, t_exec_free_clean, t_stats, t_fd_armed, t_socketpair */

/* ------------------------------------------------------------------------
 * Utilities
 * ------------------------------------------------------------------------ */

static tide_fdstream_t *fds_new(tide_exec_t *ex, int fd) {
    tide_fdstream_t *s = NULL;
    ck_assert_int_eq(tide_fdstream_new(&s, ex, fd), 0);
    return s;
}

/* Read everything the raw descriptor has now (non-blocking) into
 * out[*got, cap); returns bytes read; sets *eof at end of stream. */
static size_t drain_fd(int fd, unsigned char *out, size_t *got, size_t cap,
                       size_t max, bool *eof) {
    size_t total = 0;
    while (total < max) {
        unsigned char tmp[4096];
        size_t want = max - total < sizeof tmp ? max - total : sizeof tmp;
        ssize_t n = read(fd, tmp, want);
        if (n > 0) {
            ck_assert_uint_le(*got + (size_t)n, cap);
            memcpy(out + *got, tmp, (size_t)n);
            *got += (size_t)n;
            total += (size_t)n;
            continue;
        }
        if (n == 0 && eof != NULL)
            *eof = true;
        break;
    }
    return total;
}

/* Write pattern bytes [*sent, *sent + n) to a raw descriptor (as many as
 * it takes now). */
static void feed_fd(int fd, size_t *sent, size_t n) {
    unsigned char tmp[4096];
    while (n > 0) {
        size_t k = n < sizeof tmp ? n : sizeof tmp;
        t_pat_fill(tmp, k, *sent);
        ssize_t w = write(fd, tmp, k);
        if (w <= 0)
            break;
        *sent += (size_t)w;
        n -= (size_t)w;
    }
}

/* Nobody waits on the registration (white-box: its queues are empty). */
static void assert_no_waker(tide_fdstream_t *s) {
    ck_assert_uint_eq(tide_waitq_len(&s->reg.dir[TIDE__RD].q), 0);
    ck_assert_uint_eq(tide_waitq_len(&s->reg.dir[TIDE__WR].q), 0);
}

/* ------------------------------------------------------------------------
 * The driver: polls an inner future as a task, calls on_pending(arg) at
 * every PENDING, and drops the inner future at its k-th PENDING (k = 0:
 * never). Result: the inner result, or 0 if dropped.
 * ------------------------------------------------------------------------ */

static void wake_test_wakers(void);

typedef struct driver {
    tide_future_t fut;
    tide_future_t *inner;
    unsigned k, pendings;
    bool dropped;
    void (*on_pending)(void *arg);
    void *arg;
} driver_t;

static tide_poll_t driver_poll(tide_future_t *f, tide_cx_t *cx) {
    driver_t *d = TIDE_CONTAINER_OF(f, driver_t, fut);
    if (tide_future_poll(d->inner, cx) == TIDE_READY) {
        f->result = d->inner->result;
        tide_future_drop(d->inner);
        return TIDE_READY;
    }
    d->pendings++;
    if (d->on_pending != NULL)
        d->on_pending(d->arg);
    if (d->k != 0 && d->pendings == d->k) {
        tide_future_drop(d->inner);
        d->dropped = true;
        f->result = 0;
        return TIDE_READY;
    }
    /* After the drop check, so that a dropped future's waker is still
     * stored in the fake when it is dropped (the cancel must remove it). */
    wake_test_wakers();
    return TIDE_PENDING;
}

static const tide_future_vtable_t driver_vt = {driver_poll, NULL};

static intptr_t drive(tide_exec_t *ex, tide_future_t *inner, unsigned k,
                      void (*on_pending)(void *), void *arg, bool *dropped) {
    driver_t d = {.inner = inner, .k = k, .on_pending = on_pending, .arg = arg};
    tide_future_init(&d.fut, &driver_vt);
    ck_assert_int_eq(t_block_on(ex, &d.fut), 0);
    tide_future_drop(&d.fut);
    *dropped = d.dropped;
    return d.fut.result;
}

/* Await f on ex (waking the fakes' A_TWAKE wakers at each PENDING), drop
 * it, return its result. */
static intptr_t run(tide_exec_t *ex, tide_future_t *f) {
    bool dropped;
    return drive(ex, f, 0, NULL, NULL, &dropped);
}

/* Bound on every k loop: a helper that never completes fails the test
 * instead of looping. */
#define MAX_K 2000

/* ------------------------------------------------------------------------
 * The fake stream
 * ------------------------------------------------------------------------ */

enum act {
    A_OK,    /* do the operation (at most `chunk` bytes) */
    A_SPUR,  /* wake the task, answer PENDING (a spurious readiness) */
    A_STORE, /* PENDING; a zero-delay timer wakes the queue */
    A_TWAKE, /* PENDING; the test wakes the queue */
    A_EINTR, /* answer -EINTR (a stream that lets it escape) */
    A_ERR,   /* answer f->err */
};

typedef struct fake {
    tide_stream_t stream;
    const unsigned char *script; /* actions, per direction, in turn */
    size_t nscript;
    bool cycle; /* repeat the script; else A_OK once it is used up */
    size_t step[2];
    size_t chunk;
    int err;
    /* read side */
    const unsigned char *src;
    size_t src_len, src_pos;
    int src_end; /* after the source: 0 = EOF, or -errno */
    /* write side */
    unsigned char *sink;
    size_t sink_cap, sink_len;
    int sink_full; /* what a write answers once the sink is full */
    bool has_writev, has_flush;
    unsigned shutdowns, flushes;
    /* waiting: a queue per direction; cancels counts the waiters dropped
     * while pending (the queue's on_abandoned) */
    tide_waitq_t q[2];
    unsigned cancels[2], pendings[2];
    int last_pending_dir;
    struct event tev;
} fake_t;

/* Live fakes, whose A_TWAKE wakers the driver wakes ("by the test"). */
static fake_t *live_fakes[8];

static void fake_wake(void *arg);

static void wake_test_wakers(void) {
    for (size_t i = 0; i < sizeof live_fakes / sizeof live_fakes[0]; i++)
        if (live_fakes[i] != NULL)
            fake_wake(live_fakes[i]);
}

static void fake_timer_cb(evutil_socket_t fd, short what, void *arg) {
    fake_t *f = arg;
    tide_waitq_wake_all(&f->q[0]);
    tide_waitq_wake_all(&f->q[1]);
}

/* The test's own wake (A_TWAKE). */
static void fake_wake(void *arg) {
    fake_t *f = arg;
    tide_waitq_wake_all(&f->q[0]);
    tide_waitq_wake_all(&f->q[1]);
}

static enum act next_act(fake_t *f, int d) {
    size_t i = f->step[d]++;
    if (f->nscript == 0)
        return A_OK;
    if (i >= f->nscript) {
        if (!f->cycle)
            return A_OK;
        i %= f->nscript;
    }
    return (enum act)f->script[i];
}

/* READY with *out set, or PENDING; `op` says whether to do the work. */
static tide_poll_t fake_gate(fake_t *f, int d, tide_cx_t *cx, ssize_t *out,
                             bool *op) {
    *op = false;
    enum act a = next_act(f, d);
    switch (a) {
    case A_SPUR:
        f->pendings[d]++;
        f->last_pending_dir = d;
        tide_waker_wake_by_ref(cx->waker);
        return TIDE_PENDING;
    case A_STORE:
    case A_TWAKE: {
        f->pendings[d]++;
        f->last_pending_dir = d;
        if (a == A_STORE && !evtimer_pending(&f->tev, NULL)) {
            static const struct timeval zero = {0, 0};
            evtimer_add(&f->tev, &zero);
        }
        return TIDE_PENDING;
    }
    case A_EINTR:
        *out = -EINTR;
        return TIDE_READY;
    case A_ERR:
        *out = f->err;
        return TIDE_READY;
    default:
        *op = true;
        return TIDE_READY;
    }
}

static fake_t *fake_of(tide_stream_t *s) {
    return TIDE_CONTAINER_OF(s, fake_t, stream);
}

static tide_poll_t fake_read(tide_stream_t *s, tide_cx_t *cx, void *buf,
                             size_t len, ssize_t *out) {
    fake_t *f = fake_of(s);
    if (len == 0) {
        *out = 0;
        return TIDE_READY;
    }
    bool op;
    if (fake_gate(f, 0, cx, out, &op) == TIDE_PENDING)
        return TIDE_PENDING;
    if (!op)
        return TIDE_READY;
    if (f->src_pos == f->src_len) {
        *out = f->src_end;
        return TIDE_READY;
    }
    size_t n = f->src_len - f->src_pos;
    if (n > len)
        n = len;
    if (n > f->chunk)
        n = f->chunk;
    memcpy(buf, f->src + f->src_pos, n);
    f->src_pos += n;
    *out = (ssize_t)n;
    return TIDE_READY;
}

static tide_poll_t fake_write(tide_stream_t *s, tide_cx_t *cx, const void *buf,
                              size_t len, ssize_t *out) {
    fake_t *f = fake_of(s);
    if (len == 0) {
        *out = 0;
        return TIDE_READY;
    }
    bool op;
    if (fake_gate(f, 1, cx, out, &op) == TIDE_PENDING)
        return TIDE_PENDING;
    if (!op)
        return TIDE_READY;
    if (f->sink_len == f->sink_cap) {
        *out = f->sink_full;
        return TIDE_READY;
    }
    size_t n = f->sink_cap - f->sink_len;
    if (n > len)
        n = len;
    if (n > f->chunk)
        n = f->chunk;
    memcpy(f->sink + f->sink_len, buf, n);
    f->sink_len += n;
    *out = (ssize_t)n;
    return TIDE_READY;
}

/* Gathers up to chunk bytes from several buffers (so writev_all's
 * bookkeeping across buffers is exercised). */
static tide_poll_t fake_writev(tide_stream_t *s, tide_cx_t *cx,
                               const struct iovec *iov, int iovcnt,
                               ssize_t *out) {
    fake_t *f = fake_of(s);
    bool op;
    if (fake_gate(f, 1, cx, out, &op) == TIDE_PENDING)
        return TIDE_PENDING;
    if (!op)
        return TIDE_READY;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++) {
        size_t n = iov[i].iov_len;
        if (n > f->sink_cap - f->sink_len)
            n = f->sink_cap - f->sink_len;
        if (n > f->chunk - total)
            n = f->chunk - total;
        memcpy(f->sink + f->sink_len, iov[i].iov_base, n);
        f->sink_len += n;
        total += n;
    }
    if (total == 0 && f->sink_len == f->sink_cap) {
        *out = f->sink_full;
        return TIDE_READY;
    }
    *out = (ssize_t)total;
    return TIDE_READY;
}

static tide_poll_t fake_flush(tide_stream_t *s, tide_cx_t *cx, int *out) {
    fake_t *f = fake_of(s);
    ssize_t r = 0;
    bool op;
    if (fake_gate(f, 1, cx, &r, &op) == TIDE_PENDING)
        return TIDE_PENDING;
    if (op)
        f->flushes++;
    *out = (int)r;
    return TIDE_READY;
}

static tide_poll_t fake_shutdown(tide_stream_t *s, tide_cx_t *cx, int *out) {
    fake_t *f = fake_of(s);
    ssize_t r = 0;
    bool op;
    if (fake_gate(f, 1, cx, &r, &op) == TIDE_PENDING)
        return TIDE_PENDING;
    if (op)
        f->shutdowns++;
    *out = (int)r;
    return TIDE_READY;
}

static void fake_abandoned(tide_waitq_t *q) {
    int d = 0;
    fake_t *f = NULL;
    for (size_t i = 0;
         f == NULL && i < sizeof live_fakes / sizeof live_fakes[0]; i++)
        for (d = 0; d < 2; d++)
            if (live_fakes[i] != NULL && &live_fakes[i]->q[d] == q) {
                f = live_fakes[i];
                break;
            }
    ck_assert_ptr_nonnull(f);
    f->cancels[d]++;
}

static const tide_stream_vt_t fake_vt = {fake_read, fake_write, NULL, NULL,
                                         fake_shutdown};
static const tide_stream_vt_t fake_vt_full = {
    fake_read, fake_write, fake_writev, fake_flush, fake_shutdown};

static void fake_init(fake_t *f, tide_exec_t *ex, const unsigned char *script,
                      size_t nscript, bool cycle, size_t chunk) {
    memset(f, 0, sizeof *f);
    static const tide_waitq_ops_t ops = TIDE_WAITQ_OPS(fake_abandoned);
    tide_waitq_init(&f->q[0], &ops);
    tide_waitq_init(&f->q[1], &ops);
    tide_stream_init(&f->stream, &fake_vt_full, &f->q[0], &f->q[1]);
    f->script = script;
    f->nscript = nscript;
    f->cycle = cycle;
    f->chunk = chunk;
    f->sink_full = -ENOSPC;
    f->last_pending_dir = -1;
    ck_assert_int_eq(
        event_assign(&f->tev, tide_exec_base(ex), -1, 0, fake_timer_cb, f), 0);
    for (size_t i = 0; i < sizeof live_fakes / sizeof live_fakes[0]; i++)
        if (live_fakes[i] == NULL) {
            live_fakes[i] = f;
            return;
        }
    ck_abort_msg("too many fakes");
}

static void fake_src(fake_t *f, const void *src, size_t len, int end) {
    f->src = src;
    f->src_len = len;
    f->src_pos = 0;
    f->src_end = end;
}

static void fake_sink(fake_t *f, void *sink, size_t cap) {
    f->sink = sink;
    f->sink_cap = cap;
    f->sink_len = 0;
}

static void fake_assert_no_waker(fake_t *f) {
    ck_assert_uint_eq(tide_waitq_len(&f->q[0]), 0);
    ck_assert_uint_eq(tide_waitq_len(&f->q[1]), 0);
}

static void fake_fini(fake_t *f) {
    fake_assert_no_waker(f);
    event_del(&f->tev);
    for (size_t i = 0; i < sizeof live_fakes / sizeof live_fakes[0]; i++)
        if (live_fakes[i] == f)
            live_fakes[i] = NULL;
}

/* The script of the cancellation sweeps: every kind of PENDING, and an
 * -EINTR, between 1-byte operations. */
static const unsigned char mixed[] = {A_OK,    A_SPUR, A_OK,   A_STORE,
                                      A_EINTR, A_OK,   A_TWAKE};
#define MIXED mixed, sizeof mixed, true

/* ------------------------------------------------------------------------
 * Fake stream: the helpers survive it byte-exact
 * ------------------------------------------------------------------------ */

#define N_FAKE 300

START_TEST(test_io_read_exact_fake_short_counts) {
    tide_exec_t *ex = t_exec_new();
    unsigned char src[N_FAKE], dst[N_FAKE];
    t_pat_fill(src, sizeof src, 0);
    fake_t f;
    fake_init(&f, ex, MIXED, 1);
    fake_src(&f, src, sizeof src, 0);
    tide_read_exact_t op;
    bool dropped;
    intptr_t r = drive(ex, tide_read_exact(&op, &f.stream, dst, sizeof dst), 0,
                       NULL, NULL, &dropped);
    ck_assert_int_eq(r, N_FAKE);
    ck_assert_uint_eq(op.done, N_FAKE);
    t_pat_assert(dst, N_FAKE, 0);
    ck_assert_uint_gt(f.pendings[0], 100);
    ck_assert_uint_eq(f.cancels[0], 0); /* completed: cancels nothing */
    fake_fini(&f);
    t_exec_free_clean(ex);
}
END_TEST

START_TEST(test_io_write_all_fake_short_writes) {
    tide_exec_t *ex = t_exec_new();
    unsigned char src[N_FAKE], sink[N_FAKE];
    t_pat_fill(src, sizeof src, 0);
    fake_t f;
    fake_init(&f, ex, MIXED, 1);
    fake_sink(&f, sink, sizeof sink);
    tide_write_all_t op;
    bool dropped;
    intptr_t r = drive(ex, tide_write_all(&op, &f.stream, src, sizeof src), 0,
                       NULL, NULL, &dropped);
    ck_assert_int_eq(r, N_FAKE);
    ck_assert_uint_eq(op.done, N_FAKE);
    ck_assert_uint_eq(f.sink_len, N_FAKE);
    t_pat_assert(sink, N_FAKE, 0);
    ck_assert_uint_eq(f.cancels[1], 0);
    fake_fini(&f);
    t_exec_free_clean(ex);
}
END_TEST

START_TEST(test_io_write_all_error_reports_done) {
    tide_exec_t *ex = t_exec_new();
    unsigned char src[64], sink[20];
    t_pat_fill(src, sizeof src, 0);
    fake_t f;
    fake_init(&f, ex, MIXED, 3);
    fake_sink(&f, sink, sizeof sink);
    f.sink_full = -EPIPE;
    tide_write_all_t op;
    bool dropped;
    intptr_t r = drive(ex, tide_write_all(&op, &f.stream, src, sizeof src), 0,
                       NULL, NULL, &dropped);
    ck_assert_int_eq(r, -EPIPE);
    ck_assert_uint_eq(op.done, 20);
    t_pat_assert(sink, 20, 0);

    /* A stream that accepts 0 bytes is an error, not a spin. */
    f.sink_full = 0;
    r = run(ex, tide_write_all(&op, &f.stream, src, sizeof src));
    ck_assert_int_eq(r, -EIO);
    ck_assert_uint_eq(op.done, 0);
    fake_fini(&f);
    t_exec_free_clean(ex);
}
END_TEST

START_TEST(test_io_read_exact_eof_part_way) {
    tide_exec_t *ex = t_exec_new();
    unsigned char src[37], dst[100];
    t_pat_fill(src, sizeof src, 0);
    fake_t f;
    fake_init(&f, ex, MIXED, 4);
    fake_src(&f, src, sizeof src, 0);
    tide_read_exact_t op;
    bool dropped;
    intptr_t r = drive(ex, tide_read_exact(&op, &f.stream, dst, sizeof dst), 0,
                       NULL, NULL, &dropped);
    ck_assert_int_eq(r, TIDE_EEOF);
    ck_assert_uint_eq(op.done, 37);
    t_pat_assert(dst, 37, 0);

    /* An error part way: the error, and what came before it. */
    fake_src(&f, src, 10, -ECONNRESET);
    r = run(ex, tide_read_exact(&op, &f.stream, dst, sizeof dst));
    ck_assert_int_eq(r, -ECONNRESET);
    ck_assert_uint_eq(op.done, 10);
    /* len 0: done at once. */
    ck_assert_int_eq(run(ex, tide_read_exact(&op, &f.stream, dst, 0)), 0);
    fake_fini(&f);
    t_exec_free_clean(ex);
}
END_TEST

START_TEST(test_io_read_write_fake_errors) {
    tide_exec_t *ex = t_exec_new();
    static const unsigned char script[] = {A_SPUR, A_EINTR, A_ERR, A_OK};
    unsigned char src[8] = "abcdefgh", dst[8], sink[8];
    fake_t f;
    fake_init(&f, ex, script, sizeof script, false, 8);
    f.err = -ECONNRESET;
    fake_src(&f, src, sizeof src, 0);
    fake_sink(&f, sink, sizeof sink);
    tide_read_t rd;
    tide_write_t wr;
    /* -EINTR is retried, the error is reported as is. */
    ck_assert_int_eq(run(ex, tide_read(&rd, &f.stream, dst, sizeof dst)),
                     -ECONNRESET);
    ck_assert_int_eq(run(ex, tide_read(&rd, &f.stream, dst, sizeof dst)), 8);
    ck_assert_int_eq(memcmp(dst, "abcdefgh", 8), 0);
    ck_assert_int_eq(run(ex, tide_read(&rd, &f.stream, dst, sizeof dst)), 0);
    ck_assert_int_eq(run(ex, tide_read(&rd, &f.stream, dst, sizeof dst)), 0);
    ck_assert_int_eq(run(ex, tide_write(&wr, &f.stream, "xyz", 3)),
                     -ECONNRESET);
    ck_assert_int_eq(run(ex, tide_write(&wr, &f.stream, "xyz", 3)), 3);
    ck_assert_int_eq(memcmp(sink, "xyz", 3), 0);
    ck_assert_uint_eq(f.cancels[0] + f.cancels[1], 0);
    fake_fini(&f);
    t_exec_free_clean(ex);
}
END_TEST

START_TEST(test_io_writev_all_fake_across_buffers) {
    tide_exec_t *ex = t_exec_new();
    unsigned char src[200], sink[200];
    t_pat_fill(src, sizeof src, 0);
    struct iovec iov[6] = {{src, 1},        {src + 1, 0},   {src + 1, 50},
                           {src + 51, 100}, {src + 151, 0}, {src + 151, 49}};
    fake_t f;
    fake_init(&f, ex, MIXED, 7);
    fake_sink(&f, sink, sizeof sink);
    tide_writev_all_t op;
    bool dropped;
    intptr_t r = drive(ex, tide_writev_all(&op, &f.stream, iov, 6), 0, NULL,
                       NULL, &dropped);
    ck_assert_int_eq(r, 200);
    ck_assert_uint_eq(op.done, 200);
    ck_assert_uint_eq(f.sink_len, 200);
    t_pat_assert(sink, 200, 0);

    /* A stream without poll_writev: one buffer at a time. */
    f.stream.vt = &fake_vt;
    f.sink_len = 0;
    r = drive(ex, tide_writev_all(&op, &f.stream, iov, 6), 0, NULL, NULL,
              &dropped);
    ck_assert_int_eq(r, 200);
    t_pat_assert(sink, 200, 0);
    tide_writev_t wv;
    f.sink_len = 0;
    ck_assert_int_eq(run(ex, tide_writev(&wv, &f.stream, iov + 1, 2)), 7);
    t_pat_assert(sink, 7, 1);
    fake_fini(&f);
    t_exec_free_clean(ex);
}
END_TEST

START_TEST(test_io_copy_fake_flushes_and_counts) {
    tide_exec_t *ex = t_exec_new();
    unsigned char src[N_FAKE], sink[N_FAKE], buf[7];
    t_pat_fill(src, sizeof src, 0);
    fake_t r, w;
    fake_init(&r, ex, MIXED, 5);
    fake_init(&w, ex, NULL, 0, false, 3); /* flushes never pend */
    fake_src(&r, src, sizeof src, 0);
    fake_sink(&w, sink, sizeof sink);
    tide_copy_t op;
    bool dropped;
    intptr_t res =
        drive(ex, tide_copy(&op, &r.stream, &w.stream, buf, sizeof buf), 0,
              NULL, NULL, &dropped);
    ck_assert_int_eq(res, N_FAKE);
    ck_assert_uint_eq(tide_copy_copied(&op), N_FAKE);
    ck_assert_uint_eq(w.sink_len, N_FAKE);
    t_pat_assert(sink, N_FAKE, 0);
    /* Flushed while the reader had nothing, and at the end. */
    ck_assert_uint_gt(w.flushes, 1);
    ck_assert_uint_eq(w.shutdowns, 0);

    /* A reader error ends the copy with it; the count is what was
     * written. */
    fake_src(&r, src, 50, -ECONNRESET);
    w.sink_len = 0;
    res = drive(ex, tide_copy(&op, &r.stream, &w.stream, buf, sizeof buf), 0,
                NULL, NULL, &dropped);
    ck_assert_int_eq(res, -ECONNRESET);
    ck_assert_uint_eq(tide_copy_copied(&op), 50);
    ck_assert_int_eq(run(ex, tide_copy(&op, &r.stream, &w.stream, NULL, 0)),
                     -EINVAL);
    fake_fini(&r);
    fake_fini(&w);
    t_exec_free_clean(ex);
}
END_TEST

START_TEST(test_io_copy_bidirectional_fake) {
    tide_exec_t *ex = t_exec_new();
    unsigned char sa[N_FAKE], sb[N_FAKE / 2], ka[N_FAKE / 2], kb[N_FAKE];
    t_pat_fill(sa, sizeof sa, 0);
    t_pat_fill(sb, sizeof sb, 1000);
    fake_t a, b;
    fake_init(&a, ex, MIXED, 2);
    fake_init(&b, ex, MIXED, 3);
    fake_src(&a, sa, sizeof sa, 0);
    fake_sink(&a, ka, sizeof ka);
    fake_src(&b, sb, sizeof sb, 0);
    fake_sink(&b, kb, sizeof kb);
    unsigned char buf[16];
    tide_copy_bidirectional_t op;
    bool dropped;
    intptr_t res = drive(
        ex, tide_copy_bidirectional(&op, &a.stream, &b.stream, buf, sizeof buf),
        0, NULL, NULL, &dropped);
    ck_assert_int_eq(res, 0);
    ck_assert_uint_eq(tide_copy_bidirectional_a_to_b(&op), N_FAKE);
    ck_assert_uint_eq(tide_copy_bidirectional_b_to_a(&op), N_FAKE / 2);
    t_pat_assert(kb, N_FAKE, 0);
    t_pat_assert(ka, N_FAKE / 2, 1000);
    ck_assert_uint_eq(a.shutdowns, 1);
    ck_assert_uint_eq(b.shutdowns, 1);
    ck_assert_int_eq(
        run(ex, tide_copy_bidirectional(&op, &a.stream, &b.stream, buf, 1)),
        -EINVAL);
    fake_fini(&a);
    fake_fini(&b);
    t_exec_free_clean(ex);
}
END_TEST

/* ------------------------------------------------------------------------
 * Fake stream: drop at the k-th PENDING
 * ------------------------------------------------------------------------ */

START_TEST(test_io_read_exact_drop_at_every_pending) {
    tide_exec_t *ex = t_exec_new();
    unsigned char src[40], dst[40];
    t_pat_fill(src, sizeof src, 0);
    unsigned k;
    for (k = 1; k < MAX_K; k++) {
        fake_t f;
        fake_init(&f, ex, MIXED, 1);
        fake_src(&f, src, sizeof src, 0);
        memset(dst, 0, sizeof dst);
        tide_read_exact_t op;
        bool dropped;
        intptr_t r = drive(ex, tide_read_exact(&op, &f.stream, dst, sizeof dst),
                           k, NULL, NULL, &dropped);
        fake_assert_no_waker(&f);
        if (!dropped) {
            t_assert_int_eq_at(k, r, 40);
            t_pat_assert(dst, 40, 0);
            fake_fini(&f);
            break;
        }
        /* One cancel, for the read side; what arrived is in dst[0,
         * done); the rest is still in the stream. */
        t_assert_uint_eq_at(k, f.cancels[0], 1);
        t_assert_uint_eq_at(k, f.cancels[1], 0);
        t_assert_uint_eq_at(k, f.src_pos, op.done);
        size_t done = op.done;
        t_assert_int_eq_at(k,
                           run(ex, tide_read_exact(&op, &f.stream, dst + done,
                                                   sizeof dst - done)),
                           (intptr_t)(sizeof dst - done));
        t_pat_assert(dst, 40, 0);
        fake_fini(&f);
    }
    ck_assert_uint_gt(k, 30);
    t_exec_free_clean(ex);
}
END_TEST

START_TEST(test_io_read_drop_at_every_pending) {
    tide_exec_t *ex = t_exec_new();
    unsigned char src[4] = "abcd", dst[4];
    static const unsigned char script[] = {A_SPUR, A_TWAKE, A_STORE, A_SPUR,
                                           A_OK};
    unsigned k;
    for (k = 1; k < MAX_K; k++) {
        fake_t f;
        fake_init(&f, ex, script, sizeof script, false, 4);
        fake_src(&f, src, sizeof src, 0);
        tide_read_t op;
        bool dropped;
        intptr_t r = drive(ex, tide_read(&op, &f.stream, dst, sizeof dst), k,
                           NULL, NULL, &dropped);
        fake_assert_no_waker(&f);
        if (!dropped) {
            t_assert_int_eq_at(k, r, 4);
            t_assert_uint_eq_at(k, f.cancels[0], 0);
            fake_fini(&f);
            break;
        }
        t_assert_uint_eq_at(k, f.cancels[0], 1);
        /* Nothing was consumed: the next read sees every byte. */
        t_assert_uint_eq_at(k, f.src_pos, 0);
        t_assert_int_eq_at(
            k, run(ex, tide_read(&op, &f.stream, dst, sizeof dst)), 4);
        t_assert_int_eq_at(k, memcmp(dst, "abcd", 4), 0);
        fake_fini(&f);
    }
    ck_assert_uint_eq(k, 5);
    t_exec_free_clean(ex);
}
END_TEST

START_TEST(test_io_write_drop_at_every_pending) {
    tide_exec_t *ex = t_exec_new();
    unsigned char sink[4];
    static const unsigned char script[] = {A_TWAKE, A_SPUR, A_STORE, A_OK};
    unsigned k;
    for (k = 1; k < MAX_K; k++) {
        fake_t f;
        fake_init(&f, ex, script, sizeof script, false, 4);
        fake_sink(&f, sink, sizeof sink);
        tide_write_t op;
        bool dropped;
        intptr_t r = drive(ex, tide_write(&op, &f.stream, "wxyz", 4), k, NULL,
                           NULL, &dropped);
        fake_assert_no_waker(&f);
        if (!dropped) {
            t_assert_int_eq_at(k, r, 4);
            fake_fini(&f);
            break;
        }
        t_assert_uint_eq_at(k, f.cancels[1], 1);
        t_assert_uint_eq_at(k, f.cancels[0], 0);
        t_assert_uint_eq_at(k, f.sink_len, 0); /* nothing went out */
        fake_fini(&f);
    }
    ck_assert_uint_eq(k, 4);
    t_exec_free_clean(ex);
}
END_TEST

START_TEST(test_io_write_all_drop_at_every_pending) {
    tide_exec_t *ex = t_exec_new();
    unsigned char src[40], sink[40];
    t_pat_fill(src, sizeof src, 0);
    unsigned k;
    for (k = 1; k < MAX_K; k++) {
        fake_t f;
        fake_init(&f, ex, MIXED, 1);
        fake_sink(&f, sink, sizeof sink);
        tide_write_all_t op;
        bool dropped;
        intptr_t r = drive(ex, tide_write_all(&op, &f.stream, src, sizeof src),
                           k, NULL, NULL, &dropped);
        fake_assert_no_waker(&f);
        if (!dropped) {
            t_assert_int_eq_at(k, r, 40);
            t_pat_assert(sink, 40, 0);
            fake_fini(&f);
            break;
        }
        t_assert_uint_eq_at(k, f.cancels[1], 1);
        /* Exactly op.done bytes went out; writing the rest completes the
         * stream byte-exact. */
        t_assert_uint_eq_at(k, f.sink_len, op.done);
        size_t done = op.done;
        t_assert_int_eq_at(k,
                           run(ex, tide_write_all(&op, &f.stream, src + done,
                                                  sizeof src - done)),
                           (intptr_t)(sizeof src - done));
        t_pat_assert(sink, 40, 0);
        fake_fini(&f);
    }
    ck_assert_uint_gt(k, 30);
    t_exec_free_clean(ex);
}
END_TEST

START_TEST(test_io_writev_all_drop_at_every_pending) {
    tide_exec_t *ex = t_exec_new();
    unsigned char src[30], sink[30];
    t_pat_fill(src, sizeof src, 0);
    struct iovec iov[3] = {{src, 10}, {src + 10, 0}, {src + 10, 20}};
    unsigned k;
    for (k = 1; k < MAX_K; k++) {
        fake_t f;
        fake_init(&f, ex, MIXED, 2);
        fake_sink(&f, sink, sizeof sink);
        tide_writev_all_t op;
        bool dropped;
        intptr_t r = drive(ex, tide_writev_all(&op, &f.stream, iov, 3), k, NULL,
                           NULL, &dropped);
        fake_assert_no_waker(&f);
        if (!dropped) {
            t_assert_int_eq_at(k, r, 30);
            t_pat_assert(sink, 30, 0);
            fake_fini(&f);
            break;
        }
        t_assert_uint_eq_at(k, f.cancels[1], 1);
        t_assert_uint_eq_at(k, f.sink_len, op.done);
        fake_fini(&f);
    }
    ck_assert_uint_gt(k, 10);
    t_exec_free_clean(ex);
}
END_TEST

START_TEST(test_io_flush_shutdown_drop_at_every_pending) {
    tide_exec_t *ex = t_exec_new();
    static const unsigned char script[] = {A_SPUR, A_STORE, A_TWAKE, A_OK};
    for (int which = 0; which < 2; which++) {
        unsigned k;
        for (k = 1; k < MAX_K; k++) {
            fake_t f;
            fake_init(&f, ex, script, sizeof script, false, 1);
            tide_flush_t fl;
            tide_shutdown_t sd;
            tide_future_t *fut = which == 0 ? tide_flush(&fl, &f.stream)
                                            : tide_shutdown(&sd, &f.stream);
            bool dropped;
            intptr_t r = drive(ex, fut, k, NULL, NULL, &dropped);
            fake_assert_no_waker(&f);
            if (!dropped) {
                t_assert_int_eq_at(k, r, 0);
                t_assert_uint_eq_at(k, which == 0 ? f.flushes : f.shutdowns, 1);
                fake_fini(&f);
                break;
            }
            t_assert_uint_eq_at(k, f.cancels[1], 1);
            t_assert_uint_eq_at(k, f.flushes + f.shutdowns, 0);
            fake_fini(&f);
        }
        t_assert_uint_eq_at(which, k, 4);
    }
    /* No poll_shutdown in the vtable: -ENOTSUP; no poll_flush: 0. */
    fake_t f;
    fake_init(&f, ex, NULL, 0, false, 1);
    tide_stream_vt_t vt = fake_vt;
    vt.poll_shutdown = NULL;
    f.stream.vt = &vt;
    tide_flush_t fl;
    tide_shutdown_t sd;
    ck_assert_int_eq(run(ex, tide_flush(&fl, &f.stream)), 0);
    ck_assert_int_eq(run(ex, tide_shutdown(&sd, &f.stream)), -ENOTSUP);
    fake_fini(&f);
    t_exec_free_clean(ex);
}
END_TEST

START_TEST(test_io_copy_drop_at_every_pending) {
    tide_exec_t *ex = t_exec_new();
    unsigned char src[40], sink[40], buf[8];
    t_pat_fill(src, sizeof src, 0);
    unsigned k;
    for (k = 1; k < MAX_K; k++) {
        fake_t r, w;
        fake_init(&r, ex, MIXED, 3);
        fake_init(&w, ex, MIXED, 2);
        fake_src(&r, src, sizeof src, 0);
        fake_sink(&w, sink, sizeof sink);
        tide_copy_t op;
        bool dropped;
        intptr_t res =
            drive(ex, tide_copy(&op, &r.stream, &w.stream, buf, sizeof buf), k,
                  NULL, NULL, &dropped);
        fake_assert_no_waker(&r);
        fake_assert_no_waker(&w);
        if (!dropped) {
            t_assert_int_eq_at(k, res, 40);
            t_pat_assert(sink, 40, 0);
            t_assert_uint_eq_at(k, r.cancels[0] + w.cancels[1], 0);
            fake_fini(&r);
            fake_fini(&w);
            break;
        }
        /* It left the queue(s) it was waiting on as cancelled (one at
         * least: it was pending), once each, and never a direction it
         * does not use. */
        t_assert_uint_ge_at(k, r.cancels[0] + w.cancels[1], 1);
        t_assert_uint_le_at(k, r.cancels[0], 1);
        t_assert_uint_le_at(k, w.cancels[1], 1);
        t_assert_uint_eq_at(k, r.cancels[1] + w.cancels[0], 0);
        /* What reached w is what it counted, and in order. */
        t_assert_uint_eq_at(k, w.sink_len, tide_copy_copied(&op));
        t_pat_assert(sink, w.sink_len, 0);
        fake_fini(&r);
        fake_fini(&w);
    }
    ck_assert_uint_gt(k, 10);
    t_exec_free_clean(ex);
}
END_TEST

START_TEST(test_io_copy_bidirectional_drop_at_every_pending) {
    tide_exec_t *ex = t_exec_new();
    unsigned char sa[20], sb[20], ka[20], kb[20], buf[8];
    t_pat_fill(sa, sizeof sa, 0);
    t_pat_fill(sb, sizeof sb, 500);
    unsigned k;
    for (k = 1; k < MAX_K; k++) {
        fake_t a, b;
        fake_init(&a, ex, MIXED, 3);
        fake_init(&b, ex, MIXED, 2);
        fake_src(&a, sa, sizeof sa, 0);
        fake_sink(&a, ka, sizeof ka);
        fake_src(&b, sb, sizeof sb, 0);
        fake_sink(&b, kb, sizeof kb);
        tide_copy_bidirectional_t op;
        bool dropped;
        intptr_t res = drive(
            ex,
            tide_copy_bidirectional(&op, &a.stream, &b.stream, buf, sizeof buf),
            k, NULL, NULL, &dropped);
        fake_assert_no_waker(&a);
        fake_assert_no_waker(&b);
        if (!dropped) {
            t_assert_int_eq_at(k, res, 0);
            t_pat_assert(kb, 20, 0);
            t_pat_assert(ka, 20, 500);
            fake_fini(&a);
            fake_fini(&b);
            break;
        }
        /* pending somewhere: at least one queue left as cancelled, each
         * at most once */
        t_assert_uint_ge_at(
            k, a.cancels[0] + a.cancels[1] + b.cancels[0] + b.cancels[1], 1);
        for (int d = 0; d < 2; d++) {
            t_assert_uint_le_at(d, a.cancels[d], 1);
            t_assert_uint_le_at(d, b.cancels[d], 1);
        }
        t_assert_uint_eq_at(k, b.sink_len, tide_copy_bidirectional_a_to_b(&op));
        t_assert_uint_eq_at(k, a.sink_len, tide_copy_bidirectional_b_to_a(&op));
        fake_fini(&a);
        fake_fini(&b);
    }
    ck_assert_uint_gt(k, 10);
    t_exec_free_clean(ex);
}
END_TEST

/* ------------------------------------------------------------------------
 * Buffered reading and codecs over the fake stream
 * ------------------------------------------------------------------------ */

static const char lines_src[] = "hello\nworld\r\n\nthis one is long\nlast";

START_TEST(test_bufreader_read_line_across_chunks) {
    tide_exec_t *ex = t_exec_new();
    static const unsigned char script[] = {A_OK, A_SPUR, A_STORE};
    for (size_t chunk = 1; chunk <= 7; chunk += 3) {
        fake_t f;
        fake_init(&f, ex, script, sizeof script, true, chunk);
        fake_src(&f, lines_src, sizeof lines_src - 1, 0);
        unsigned char bbuf[5]; /* smaller than most lines */
        tide_bufreader_t br;
        t_assert_int_eq_at(
            chunk, tide_bufreader_init(&br, &f.stream, bbuf, sizeof bbuf), 0);
        char line[32];
        tide_read_until_t op;
        t_assert_int_eq_at(
            chunk, run(ex, tide_read_line(&op, &br, line, sizeof line)), 6);
        ck_assert_msg(strcmp(line, "hello\n") == 0,
                      "chunk %zu: got \"%s\", want \"%s\"", chunk, line,
                      "hello\n");
        t_assert_int_eq_at(
            chunk, run(ex, tide_read_line(&op, &br, line, sizeof line)), 7);
        ck_assert_msg(strcmp(line, "world\r\n") == 0,
                      "chunk %zu: got \"%s\", want \"%s\"", chunk, line,
                      "world\r\n");
        t_assert_int_eq_at(
            chunk, run(ex, tide_read_line(&op, &br, line, sizeof line)), 1);
        ck_assert_msg(strcmp(line, "\n") == 0,
                      "chunk %zu: got \"%s\", want \"%s\"", chunk, line, "\n");
        /* Too long for dst: TIDE_EFRAME with what fits; the rest follows. */
        t_assert_int_eq_at(chunk, run(ex, tide_read_line(&op, &br, line, 9)),
                           TIDE_EFRAME);
        t_assert_uint_eq_at(chunk, op.done, 8);
        ck_assert_msg(strcmp(line, "this one") == 0,
                      "chunk %zu: got \"%s\", want \"%s\"", chunk, line,
                      "this one");
        t_assert_int_eq_at(
            chunk, run(ex, tide_read_line(&op, &br, line, sizeof line)), 9);
        ck_assert_msg(strcmp(line, " is long\n") == 0,
                      "chunk %zu: got \"%s\", want \"%s\"", chunk, line,
                      " is long\n");
        /* The last line has no newline; then end of stream, again. */
        t_assert_int_eq_at(
            chunk, run(ex, tide_read_line(&op, &br, line, sizeof line)), 4);
        ck_assert_msg(strcmp(line, "last") == 0,
                      "chunk %zu: got \"%s\", want \"%s\"", chunk, line,
                      "last");
        t_assert_int_eq_at(
            chunk, run(ex, tide_read_line(&op, &br, line, sizeof line)), 0);
        ck_assert_msg(strcmp(line, "") == 0,
                      "chunk %zu: got \"%s\", want \"%s\"", chunk, line, "");
        t_assert_int_eq_at(
            chunk, run(ex, tide_read_line(&op, &br, line, sizeof line)), 0);
        t_assert_int_eq_at(chunk, run(ex, tide_read_line(&op, &br, line, 1)),
                           -EINVAL);
        fake_fini(&f);
    }
    t_exec_free_clean(ex);
}
END_TEST

START_TEST(test_bufreader_read_until_and_read) {
    tide_exec_t *ex = t_exec_new();
    static const char src[] = "a,bb,,ccc,dddd";
    fake_t f;
    fake_init(&f, ex, MIXED, 2);
    fake_src(&f, src, sizeof src - 1, 0);
    unsigned char bbuf[3];
    tide_bufreader_t br;
    ck_assert_int_eq(tide_bufreader_init(&br, &f.stream, bbuf, sizeof bbuf), 0);
    ck_assert_int_eq(tide_bufreader_init(&br, &f.stream, bbuf, 0), -EINVAL);
    ck_assert_int_eq(tide_bufreader_init(&br, &f.stream, bbuf, sizeof bbuf), 0);
    char out[16];
    tide_read_until_t op;
    bool dropped;
    const char *want[] = {"a,", "bb,", ",", "ccc,"};
    for (int i = 0; i < 4; i++) {
        intptr_t r = drive(ex, tide_read_until(&op, &br, ',', out, sizeof out),
                           0, NULL, NULL, &dropped);
        t_assert_int_eq_at(i, r, (intptr_t)strlen(want[i]));
        t_assert_int_eq_at(i, memcmp(out, want[i], (size_t)r), 0);
    }
    /* The bufreader as a stream: reads come from the buffer first. */
    tide_read_exact_t rx;
    intptr_t r =
        drive(ex, tide_read_exact(&rx, tide_bufreader_stream(&br), out, 4), 0,
              NULL, NULL, &dropped);
    ck_assert_int_eq(r, 4);
    ck_assert_int_eq(memcmp(out, "dddd", 4), 0);
    tide_bufreader_fill_t fl;
    ck_assert_int_eq(run(ex, tide_bufreader_fill(&fl, &br)), 0);
    fake_fini(&f);
    t_exec_free_clean(ex);
}
END_TEST

START_TEST(test_bufreader_drop_at_every_pending) {
    tide_exec_t *ex = t_exec_new();
    static const char src[] = "0123456789abcdefghij\nrest";
    unsigned k;
    for (k = 1; k < MAX_K; k++) {
        fake_t f;
        fake_init(&f, ex, MIXED, 2);
        fake_src(&f, src, sizeof src - 1, 0);
        unsigned char bbuf[4];
        tide_bufreader_t br;
        tide_bufreader_init(&br, &f.stream, bbuf, sizeof bbuf);
        char line[64];
        tide_read_until_t op;
        bool dropped;
        intptr_t r = drive(ex, tide_read_line(&op, &br, line, sizeof line), k,
                           NULL, NULL, &dropped);
        fake_assert_no_waker(&f);
        if (!dropped) {
            t_assert_int_eq_at(k, r, 21);
            ck_assert_msg(strcmp(line, "0123456789abcdefghij\n") == 0,
                          "k %u: got \"%s\", want \"%s\"", k, line,
                          "0123456789abcdefghij\n");
            fake_fini(&f);
            break;
        }
        t_assert_uint_eq_at(k, f.cancels[0], 1);
        /* Nothing lost: what was moved is in line[0, done), the next
         * read_line continues from there. */
        size_t done = op.done;
        r = run(ex, tide_read_line(&op, &br, line + done, sizeof line - done));
        t_assert_int_eq_at(k, (intptr_t)done + r, 21);
        ck_assert_msg(strcmp(line, "0123456789abcdefghij\n") == 0,
                      "k %u: got \"%s\", want \"%s\"", k, line,
                      "0123456789abcdefghij\n");
        fake_fini(&f);
    }
    ck_assert_uint_gt(k, 10);
    t_exec_free_clean(ex);
}
END_TEST

START_TEST(test_linecodec_decode) {
    tide_exec_t *ex = t_exec_new();
    static const char src[] =
        "one\r\ntwo\n\nthis line is far too long for it\nok\nX2345678901\n"
        "tail\r";
    fake_t f;
    fake_init(&f, ex, MIXED, 3);
    fake_src(&f, src, sizeof src - 1, 0);
    unsigned char bbuf[12];
    tide_bufreader_t br;
    tide_bufreader_init(&br, &f.stream, bbuf, sizeof bbuf);
    tide_linecodec_t lc;
    tide_linecodec_init(&lc, 10);
    tide_decode_t op;
    bool dropped;
#define NEXT()                                                                 \
    drive(ex, tide_linecodec_decode(&op, &lc, &br), 0, NULL, NULL, &dropped)
#define FRAME_IS(s)                                                            \
    do {                                                                       \
        ck_assert_uint_eq(op.len, strlen(s));                                  \
        ck_assert_int_eq(memcmp(op.frame, s, op.len), 0);                      \
    } while (0)
    ck_assert_int_eq(NEXT(), 1);
    FRAME_IS("one");
    ck_assert_int_eq(NEXT(), 1);
    FRAME_IS("two");
    ck_assert_int_eq(NEXT(), 1);
    FRAME_IS("");
    /* Longer than the buffer: rejected before it is buffered, and
     * skipped. */
    ck_assert_int_eq(NEXT(), TIDE_EFRAME);
    ck_assert_int_eq(NEXT(), 1);
    FRAME_IS("ok");
    /* Fits the buffer but over max_len (11 > 10): rejected, skipped. */
    ck_assert_int_eq(NEXT(), TIDE_EFRAME);
    /* The last line has no "\n"; its "\r" goes too. */
    ck_assert_int_eq(NEXT(), 1);
    FRAME_IS("tail");
    ck_assert_int_eq(NEXT(), 0);
    ck_assert_int_eq(NEXT(), 0);
    /* A last line without "\n" is held to max_len too (11 bytes: the
     * decoder waits for a possible "\r\n", then rejects it at the end). */
    fake_src(&f, "ok\nX2345678901", 14, 0);
    ck_assert_int_eq(NEXT(), 1);
    FRAME_IS("ok");
    ck_assert_int_eq(NEXT(), TIDE_EFRAME);
    ck_assert_int_eq(NEXT(), 0);
    /* The buffer must hold max_len + 2. */
    tide_linecodec_init(&lc, 11);
    ck_assert_int_eq(NEXT(), -EINVAL);
    tide_linecodec_init(&lc, 0); /* 0: what the buffer allows */
    ck_assert_int_eq(NEXT(), 0);
    /* An error from the stream comes through. */
    fake_src(&f, "abc", 3, -ECONNRESET);
    ck_assert_int_eq(NEXT(), -ECONNRESET);
#undef NEXT
    fake_fini(&f);
    t_exec_free_clean(ex);
}
END_TEST

START_TEST(test_linecodec_encode) {
    tide_exec_t *ex = t_exec_new();
    unsigned char sink[64];
    fake_t f;
    fake_init(&f, ex, MIXED, 2);
    fake_sink(&f, sink, sizeof sink);
    tide_linecodec_t lc;
    tide_linecodec_init(&lc, 8);
    tide_encode_t op;
    bool dropped;
    ck_assert_int_eq(
        drive(ex, tide_linecodec_encode(&op, &lc, &f.stream, "hello", 5), 0,
              NULL, NULL, &dropped),
        6);
    ck_assert_int_eq(drive(ex,
                           tide_linecodec_encode(&op, &lc, &f.stream, "", 0), 0,
                           NULL, NULL, &dropped),
                     1);
    ck_assert_int_eq(
        run(ex, tide_linecodec_encode(&op, &lc, &f.stream, "123456789", 9)),
        TIDE_EFRAME);
    ck_assert_int_eq(
        run(ex, tide_linecodec_encode(&op, &lc, &f.stream, "a\nb", 3)),
        -EINVAL);
    ck_assert_uint_eq(op.done, 0);
    ck_assert_uint_eq(f.sink_len, 7);
    ck_assert_int_eq(memcmp(sink, "hello\n\n", 7), 0);
    fake_fini(&f);
    t_exec_free_clean(ex);
}
END_TEST

START_TEST(test_lencodec_roundtrip_and_limits) {
    tide_exec_t *ex = t_exec_new();
    unsigned char sink[256];
    fake_t w;
    fake_init(&w, ex, MIXED, 3);
    fake_sink(&w, sink, sizeof sink);
    tide_lencodec_t c;
    ck_assert_int_eq(tide_lencodec_init(&c, 0, 0, 10), -EINVAL);
    ck_assert_int_eq(tide_lencodec_init(&c, 9, 0, 10), -EINVAL);
    ck_assert_int_eq(tide_lencodec_init(&c, 4, 1u << 5, 10), -EINVAL);
    ck_assert_int_eq(tide_lencodec_init(&c, 4, 0, 16), 0);
    tide_encode_t en;
    bool dropped;
    const char *frames[] = {"abc", "", "0123456789abcdef"};
    for (int i = 0; i < 3; i++)
        t_assert_int_eq_at(
            i,
            drive(ex,
                  tide_lencodec_encode(&en, &c, &w.stream, frames[i],
                                       strlen(frames[i])),
                  0, NULL, NULL, &dropped),
            4 + (intptr_t)strlen(frames[i]));
    /* Over max_frame: nothing written. */
    ck_assert_int_eq(run(ex, tide_lencodec_encode(&en, &c, &w.stream,
                                                  "0123456789abcdefg", 17)),
                     TIDE_EFRAME);
    ck_assert_uint_eq(w.sink_len, 4 + 3 + 4 + 0 + 4 + 16);
    static const unsigned char hdr[] = {0, 0, 0, 3, 'a', 'b', 'c'};
    ck_assert_int_eq(memcmp(sink, hdr, sizeof hdr), 0);

    /* Decode what was written, 1 byte at a time. */
    fake_t r;
    fake_init(&r, ex, MIXED, 1);
    fake_src(&r, sink, w.sink_len, 0);
    unsigned char bbuf[20];
    tide_bufreader_t br;
    tide_bufreader_init(&br, &r.stream, bbuf, sizeof bbuf);
    tide_decode_t de;
    for (int i = 0; i < 3; i++) {
        t_assert_int_eq_at(i,
                           drive(ex, tide_lencodec_decode(&de, &c, &br), 0,
                                 NULL, NULL, &dropped),
                           1);
        t_assert_uint_eq_at(i, de.len, strlen(frames[i]));
        t_assert_int_eq_at(i, memcmp(de.frame, frames[i], de.len), 0);
    }
    ck_assert_int_eq(run(ex, tide_lencodec_decode(&de, &c, &br)), 0);

    /* The buffer must hold len_bytes + max_frame. */
    tide_lencodec_t big;
    tide_lencodec_init(&big, 4, 0, 17);
    ck_assert_int_eq(run(ex, tide_lencodec_decode(&de, &big, &br)), -EINVAL);

    /* A hostile length is rejected from its header alone, and stays
     * rejected: the stream cannot be resynchronised. */
    static const unsigned char evil[] = {0xff, 0xff, 0xff, 0xf0, 'x'};
    fake_src(&r, evil, sizeof evil, 0);
    ck_assert_int_eq(run(ex, tide_lencodec_decode(&de, &c, &br)), TIDE_EFRAME);
    ck_assert_int_eq(run(ex, tide_lencodec_decode(&de, &c, &br)), TIDE_EFRAME);

    /* End of stream inside a frame. */
    static const unsigned char cut[] = {0, 0, 0, 5, 'a', 'b'};
    tide_bufreader_init(&br, &r.stream, bbuf, sizeof bbuf);
    fake_src(&r, cut, sizeof cut, 0);
    ck_assert_int_eq(run(ex, tide_lencodec_decode(&de, &c, &br)), TIDE_EEOF);
    static const unsigned char cuthdr[] = {0, 0};
    tide_bufreader_init(&br, &r.stream, bbuf, sizeof bbuf);
    fake_src(&r, cuthdr, sizeof cuthdr, 0);
    ck_assert_int_eq(run(ex, tide_lencodec_decode(&de, &c, &br)), TIDE_EEOF);

    /* 2-byte little-endian lengths; a length that does not fit. */
    ck_assert_int_eq(
        tide_lencodec_init(&c, 2, TIDE_LENCODEC_LITTLE_ENDIAN, (size_t)1 << 20),
        0);
    w.sink_len = 0;
    ck_assert_int_eq(run(ex, tide_lencodec_encode(&en, &c, &w.stream, "hi", 2)),
                     4);
    static const unsigned char le[] = {2, 0, 'h', 'i'};
    ck_assert_int_eq(memcmp(sink, le, 4), 0);
    static unsigned char huge[70000];
    ck_assert_int_eq(
        run(ex, tide_lencodec_encode(&en, &c, &w.stream, huge, sizeof huge)),
        TIDE_EFRAME);
    ck_assert_uint_eq(w.sink_len, 4);
    tide_lencodec_init(&c, 2, TIDE_LENCODEC_LITTLE_ENDIAN, 10);
    tide_bufreader_init(&br, &r.stream, bbuf, sizeof bbuf);
    fake_src(&r, le, sizeof le, 0);
    ck_assert_int_eq(run(ex, tide_lencodec_decode(&de, &c, &br)), 1);
    ck_assert_uint_eq(de.len, 2);
    ck_assert_int_eq(memcmp(de.frame, "hi", 2), 0);
    fake_fini(&r);
    fake_fini(&w);
    t_exec_free_clean(ex);
}
END_TEST

START_TEST(test_codec_drop_at_every_pending) {
    tide_exec_t *ex = t_exec_new();
    /* Decoding is cancel safe: a dropped decode leaves every byte, so
     * decoding again from scratch yields the same frames. */
    static const unsigned char src[] = {0,   0, 0, 3, 'a', 'b',
                                        'c', 0, 0, 0, 1,   'z'};
    tide_lencodec_t c;
    tide_lencodec_init(&c, 4, 0, 8);
    unsigned k;
    for (k = 1; k < MAX_K; k++) {
        fake_t f;
        fake_init(&f, ex, MIXED, 1);
        fake_src(&f, src, sizeof src, 0);
        unsigned char bbuf[12];
        tide_bufreader_t br;
        tide_bufreader_init(&br, &f.stream, bbuf, sizeof bbuf);
        tide_decode_t de;
        bool dropped;
        intptr_t r = drive(ex, tide_lencodec_decode(&de, &c, &br), k, NULL,
                           NULL, &dropped);
        fake_assert_no_waker(&f);
        if (!dropped) {
            t_assert_int_eq_at(k, r, 1);
            t_assert_uint_eq_at(k, de.len, 3);
            fake_fini(&f);
            break;
        }
        t_assert_uint_eq_at(k, f.cancels[0], 1);
        t_assert_int_eq_at(k, run(ex, tide_lencodec_decode(&de, &c, &br)), 1);
        t_assert_uint_eq_at(k, de.len, 3);
        t_assert_int_eq_at(k, memcmp(de.frame, "abc", 3), 0);
        t_assert_int_eq_at(k, run(ex, tide_lencodec_decode(&de, &c, &br)), 1);
        t_assert_int_eq_at(k, memcmp(de.frame, "z", 1), 0);
        fake_fini(&f);
    }
    ck_assert_uint_gt(k, 5);

    /* Line decode and encode too. */
    tide_linecodec_t lc;
    tide_linecodec_init(&lc, 10);
    for (k = 1; k < MAX_K; k++) {
        fake_t f;
        fake_init(&f, ex, MIXED, 1);
        fake_src(&f, "abcdef\nxy\n", 10, 0);
        unsigned char bbuf[12];
        tide_bufreader_t br;
        tide_bufreader_init(&br, &f.stream, bbuf, sizeof bbuf);
        tide_decode_t de;
        bool dropped;
        intptr_t r = drive(ex, tide_linecodec_decode(&de, &lc, &br), k, NULL,
                           NULL, &dropped);
        fake_assert_no_waker(&f);
        if (!dropped) {
            t_assert_int_eq_at(k, r, 1);
            fake_fini(&f);
            break;
        }
        t_assert_int_eq_at(k, run(ex, tide_linecodec_decode(&de, &lc, &br)), 1);
        t_assert_int_eq_at(k, memcmp(de.frame, "abcdef", 6), 0);
        t_assert_int_eq_at(k, run(ex, tide_linecodec_decode(&de, &lc, &br)), 1);
        t_assert_int_eq_at(k, memcmp(de.frame, "xy", 2), 0);
        fake_fini(&f);
    }
    ck_assert_uint_gt(k, 5);
    for (k = 1; k < MAX_K; k++) {
        fake_t f;
        unsigned char sink[16];
        fake_init(&f, ex, MIXED, 1);
        fake_sink(&f, sink, sizeof sink);
        tide_encode_t en;
        bool dropped;
        intptr_t r =
            drive(ex, tide_linecodec_encode(&en, &lc, &f.stream, "abcdef", 6),
                  k, NULL, NULL, &dropped);
        fake_assert_no_waker(&f);
        if (!dropped) {
            t_assert_int_eq_at(k, r, 7);
            t_assert_int_eq_at(k, memcmp(sink, "abcdef\n", 7), 0);
            fake_fini(&f);
            break;
        }
        t_assert_uint_eq_at(k, f.cancels[1], 1);
        t_assert_uint_eq_at(k, f.sink_len, en.done);
        fake_fini(&f);
    }
    ck_assert_uint_gt(k, 5);
    t_exec_free_clean(ex);
}
END_TEST

/* ------------------------------------------------------------------------
 * fdstream over socketpairs and pipes
 * ------------------------------------------------------------------------ */

START_TEST(test_fdstream_eof_reported_each_time) {
    tide_exec_t *ex = t_exec_new();
    int sv[2];
    t_socketpair(sv);
    tide_fdstream_t *s = fds_new(ex, sv[0]);
    tide_read_t rd;
    char buf[16];
    ck_assert_int_eq(write(sv[1], "xy", 2), 2);
    ck_assert_int_eq(run(ex, tide_read(&rd, tide_fdstream_stream(s), buf, 0)),
                     0); /* len 0: 0 at once, not an EOF */
    ck_assert(!s->eof_seen);
    ck_assert_int_eq(
        run(ex, tide_read(&rd, tide_fdstream_stream(s), buf, sizeof buf)), 2);
    ck_assert_int_eq(shutdown(sv[1], SHUT_WR), 0);
    for (int i = 0; i < 3; i++)
        t_assert_int_eq_at(
            i,
            run(ex, tide_read(&rd, tide_fdstream_stream(s), buf, sizeof buf)),
            0);
    ck_assert(s->eof_seen);
    /* Half close: we can still write, the peer reads it. */
    tide_write_all_t wa;
    ck_assert_int_eq(
        run(ex, tide_write_all(&wa, tide_fdstream_stream(s), "back", 4)), 4);
    ck_assert_int_eq(read(sv[1], buf, sizeof buf), 4);
    tide_fdstream_free(s);
    close(sv[1]);
    t_exec_free_clean(ex);
}
END_TEST

/* on_pending for reads: feed the next chunk into the raw peer. */
typedef struct feeder {
    int fd;
    size_t sent, total, chunk;
} feeder_t;

static void feed_more(void *arg) {
    feeder_t *fe = arg;
    size_t n = fe->total - fe->sent;
    feed_fd(fe->fd, &fe->sent, n < fe->chunk ? n : fe->chunk);
}

START_TEST(test_fdstream_read_exact_drop_at_every_pending) {
    tide_exec_t *ex = t_exec_new();
    enum { TOTAL = 1000 };
    unsigned char dst[TOTAL];
    unsigned k;
    for (k = 1; k < MAX_K; k++) {
        int sv[2];
        t_socketpair(sv);
        tide_fdstream_t *s = fds_new(ex, sv[0]);
        feeder_t fe = {sv[1], 0, TOTAL, 100};
        tide_read_exact_t op;
        bool dropped;
        intptr_t r =
            drive(ex, tide_read_exact(&op, tide_fdstream_stream(s), dst, TOTAL),
                  k, feed_more, &fe, &dropped);
        assert_no_waker(s);
        if (!dropped) {
            t_assert_int_eq_at(k, r, TOTAL);
            t_pat_assert(dst, TOTAL, 0);
        } else {
            t_assert_uint_eq_at(k, t_stats(ex).armed_events, 0);
            /* Bytes fed but not read are still in the socket. */
            size_t done = op.done;
            feed_fd(sv[1], &fe.sent, TOTAL - fe.sent);
            t_assert_int_eq_at(
                k,
                run(ex, tide_read_exact(&op, tide_fdstream_stream(s),
                                        dst + done, TOTAL - done)),
                TOTAL - (intptr_t)done);
            t_pat_assert(dst, TOTAL, 0);
        }
        tide_fdstream_free(s);
        close(sv[1]);
        if (!dropped)
            break;
    }
    ck_assert_uint_ge(k, 10);
    t_exec_free_clean(ex);
}
END_TEST

START_TEST(test_fdstream_read_drop_keeps_bytes) {
    tide_exec_t *ex = t_exec_new();
    int sv[2];
    t_socketpair(sv);
    tide_fdstream_t *s = fds_new(ex, sv[0]);
    /* Dropped after the data arrived but before it was polled again: the
     * bytes stay in the socket for the next read. */
    feeder_t fe = {sv[1], 0, 10, 10};
    tide_read_t op;
    unsigned char dst[10];
    bool dropped;
    drive(ex, tide_read(&op, tide_fdstream_stream(s), dst, sizeof dst), 1,
          feed_more, &fe, &dropped);
    ck_assert(dropped);
    assert_no_waker(s);
    ck_assert_uint_eq(t_stats(ex).armed_events, 0);
    ck_assert_int_eq(
        run(ex, tide_read(&op, tide_fdstream_stream(s), dst, sizeof dst)), 10);
    t_pat_assert(dst, 10, 0);
    tide_fdstream_free(s);
    close(sv[1]);
    t_exec_free_clean(ex);
}
END_TEST

/* on_pending for writes: take the bytes out of the raw peer (all of
 * them: taking less might not make the writer writable again, and then
 * nothing would wake it). */
typedef struct drainer {
    int fd;
    unsigned char *out;
    size_t got, cap, step;
    bool eof;
} drainer_t;

static void drain_some(void *arg) {
    drainer_t *dr = arg;
    drain_fd(dr->fd, dr->out, &dr->got, dr->cap, dr->step, &dr->eof);
}

START_TEST(test_fdstream_write_all_drop_at_every_pending) {
    tide_exec_t *ex = t_exec_new();
    enum { TOTAL = 128 * 1024 };
    unsigned char *src = malloc(TOTAL), *got = malloc(TOTAL);
    t_pat_fill(src, TOTAL, 0);
    unsigned k;
    for (k = 1; k < MAX_K; k++) {
        int sv[2];
        t_socketpair(sv);
        t_small_buffers(sv[0]);
        t_small_buffers(sv[1]);
        tide_fdstream_t *s = fds_new(ex, sv[0]);
        drainer_t dr = {sv[1], got, 0, TOTAL, TOTAL, false};
        tide_write_all_t op;
        bool dropped;
        intptr_t r =
            drive(ex, tide_write_all(&op, tide_fdstream_stream(s), src, TOTAL),
                  k, drain_some, &dr, &dropped);
        assert_no_waker(s);
        size_t done = op.done;
        if (dropped) {
            t_assert_uint_eq_at(k, t_stats(ex).armed_events, 0);
            /* Exactly op.done bytes went out: the rest, written now,
             * completes the stream byte-exact. */
            tide_write_all_t op2;
            bool d2;
            r = drive(ex,
                      tide_write_all(&op2, tide_fdstream_stream(s), src + done,
                                     TOTAL - done),
                      0, drain_some, &dr, &d2);
            t_assert_int_eq_at(k, r, TOTAL - (intptr_t)done);
        } else {
            t_assert_int_eq_at(k, r, TOTAL);
        }
        tide_fdstream_free(s);
        while (!dr.eof)
            drain_fd(sv[1], got, &dr.got, TOTAL, TOTAL, &dr.eof);
        t_assert_uint_eq_at(k, dr.got, TOTAL);
        t_pat_assert(got, TOTAL, 0);
        close(sv[1]);
        if (!dropped)
            break;
    }
    ck_assert_uint_ge(k, 5);
    free(src);
    free(got);
    t_exec_free_clean(ex);
}
END_TEST

/* copy over fdstreams: feed A's peer, drain B's peer at each PENDING. */
typedef struct pump {
    feeder_t fe;
    drainer_t dr;
    bool shut;
} pump_t;

static void pump_step(void *arg) {
    pump_t *p = arg;
    feed_more(&p->fe);
    if (p->fe.sent == p->fe.total && !p->shut) {
        shutdown(p->fe.fd, SHUT_WR);
        p->shut = true;
    }
    drain_some(&p->dr);
}

START_TEST(test_fdstream_copy_drop_at_every_pending) {
    tide_exec_t *ex = t_exec_new();
    enum { TOTAL = 64 * 1024 };
    unsigned char *got = malloc(TOTAL);
    unsigned char buf[4096];
    unsigned k;
    for (k = 1; k < MAX_K; k++) {
        int a[2], b[2];
        t_socketpair(a);
        t_socketpair(b);
        t_small_buffers(b[0]);
        t_small_buffers(b[1]);
        tide_fdstream_t *ra = fds_new(ex, a[0]), *wb = fds_new(ex, b[0]);
        pump_t p = {
            {a[1], 0, TOTAL, 8192}, {b[1], got, 0, TOTAL, TOTAL, false}, false};
        tide_copy_t op;
        bool dropped;
        intptr_t r = drive(ex,
                           tide_copy(&op, tide_fdstream_stream(ra),
                                     tide_fdstream_stream(wb), buf, sizeof buf),
                           k, pump_step, &p, &dropped);
        assert_no_waker(ra);
        assert_no_waker(wb);
        if (dropped) {
            /* The direction the copy waited on is disarmed at once (the
             * other may keep its event, lazily, with nobody waiting). */
            t_assert_at(k,
                        !t_fd_armed(tide_fdstream_fd(ra), TIDE_READABLE) ||
                            !t_fd_armed(tide_fdstream_fd(wb), TIDE_WRITABLE));
        } else {
            t_assert_int_eq_at(k, r, TOTAL);
        }
        uint64_t copied = tide_copy_copied(&op);
        tide_fdstream_free(ra);
        tide_fdstream_free(wb);
        t_assert_uint_eq_at(k, t_stats(ex).armed_events, 0);
        while (!p.dr.eof)
            drain_fd(b[1], got, &p.dr.got, TOTAL, TOTAL, &p.dr.eof);
        t_assert_uint_eq_at(k, p.dr.got, copied);
        t_pat_assert(got, p.dr.got, 0);
        close(a[1]);
        close(b[1]);
        if (!dropped)
            break;
    }
    ck_assert_uint_ge(k, 5);
    free(got);
    t_exec_free_clean(ex);
}
END_TEST

START_TEST(test_fdstream_epipe_after_peer_closed) {
    tide_exec_t *ex = t_exec_new();
    int sv[2];
    t_socketpair(sv);
    tide_fdstream_t *s = fds_new(ex, sv[0]);
    close(sv[1]);
    /* SIGPIPE keeps its default action: a signal would kill this test. */
    tide_write_all_t wa;
    ck_assert_int_eq(
        run(ex, tide_write_all(&wa, tide_fdstream_stream(s), "abc", 3)),
        -EPIPE);
    ck_assert_uint_eq(wa.done, 0);
    struct iovec iov[2] = {{"ab", 2}, {"cd", 2}};
    tide_writev_t wv;
    ck_assert_int_eq(run(ex, tide_writev(&wv, tide_fdstream_stream(s), iov, 2)),
                     -EPIPE);
    tide_read_t rd;
    char buf[4];
    ck_assert_int_eq(
        run(ex, tide_read(&rd, tide_fdstream_stream(s), buf, sizeof buf)), 0);
    tide_fdstream_free(s);
    t_exec_free_clean(ex);
}
END_TEST

START_TEST(test_fdstream_pipe_epipe_with_sigpipe_ignored) {
    tide_exec_t *ex = t_exec_new();
    ck_assert_int_eq(tide_ignore_sigpipe(), 0);
    int p[2];
    ck_assert_int_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    tide_fdstream_t *w = fds_new(ex, p[1]);
    close(p[0]);
    tide_write_t wr;
    ck_assert_int_eq(run(ex, tide_write(&wr, tide_fdstream_stream(w), "x", 1)),
                     -EPIPE);
    tide_fdstream_free(w);
    t_exec_free_clean(ex);
}
END_TEST

/* Without tide_ignore_sigpipe, a pipe write to a closed reader raises
 * SIGPIPE: what the documentation warns about (this test expects it). */
START_TEST(test_fdstream_pipe_sigpipe_without_ignore) {
    tide_exec_t *ex = t_exec_new();
    int p[2];
    ck_assert_int_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    tide_fdstream_t *w = fds_new(ex, p[1]);
    close(p[0]);
    tide_write_t wr;
    run(ex, tide_write(&wr, tide_fdstream_stream(w), "x", 1));
    ck_abort_msg("still alive after writing to a closed pipe");
}
END_TEST

START_TEST(test_fdstream_pipe_shutdown_closes_write_end) {
    tide_exec_t *ex = t_exec_new();
    int p[2];
    ck_assert_int_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    tide_fdstream_t *r = fds_new(ex, p[0]), *w = fds_new(ex, p[1]);
    tide_write_all_t wa;
    ck_assert_int_eq(
        run(ex, tide_write_all(&wa, tide_fdstream_stream(w), "abc", 3)), 3);
    tide_shutdown_t sd;
    ck_assert_int_eq(run(ex, tide_shutdown(&sd, tide_fdstream_stream(w))), 0);
    tide_exec_stats_t st;
    tide_exec_stats(ex, &st);
    ck_assert_uint_eq(st.registered, 1); /* the write end is gone */
    /* The reader sees the bytes, then end of stream. */
    char buf[8];
    tide_read_exact_t rx;
    ck_assert_int_eq(
        run(ex, tide_read_exact(&rx, tide_fdstream_stream(r), buf, sizeof buf)),
        TIDE_EEOF);
    ck_assert_uint_eq(rx.done, 3);
    /* After shutdown: writes fail, a second shutdown is fine. */
    tide_write_t wr;
    ck_assert_int_eq(run(ex, tide_write(&wr, tide_fdstream_stream(w), "x", 1)),
                     -EPIPE);
    ck_assert_int_eq(run(ex, tide_shutdown(&sd, tide_fdstream_stream(w))), 0);
    /* The descriptor number may be reused at once; freeing the stream
     * must not close the new owner's descriptor. */
    int q[2];
    ck_assert_int_eq(pipe2(q, O_CLOEXEC), 0);
    tide_fdstream_free(w);
    ck_assert_int_ne(fcntl(q[0], F_GETFD), -1);
    ck_assert_int_ne(fcntl(q[1], F_GETFD), -1);
    close(q[0]);
    close(q[1]);
    /* The read end has no write side. */
    ck_assert_int_eq(run(ex, tide_shutdown(&sd, tide_fdstream_stream(r))),
                     -EBADF);
    tide_fdstream_free(r);
    t_exec_free_clean(ex);
}
END_TEST

START_TEST(test_fdstream_econnreset_after_peer_reset) {
    tide_exec_t *ex = t_exec_new();
    int c, sv;
    t_tcp_pair(&c, &sv);
    tide_fdstream_t *s = fds_new(ex, c);
    /* The peer resets (SO_LINGER 0) while we wait in a read. */
    struct linger lg = {1, 0};
    ck_assert_int_eq(setsockopt(sv, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    tide_read_t rd;
    char buf[8];
    close(sv);
    ck_assert_int_eq(
        run(ex, tide_read(&rd, tide_fdstream_stream(s), buf, sizeof buf)),
        -ECONNRESET);
    /* Then writes fail without a signal, and shutdown says why. */
    tide_write_all_t wa;
    intptr_t w = run(ex, tide_write_all(&wa, tide_fdstream_stream(s), "x", 1));
    ck_assert(w == -EPIPE || w == -ECONNRESET);
    tide_fdstream_free(s);
    t_exec_free_clean(ex);
}
END_TEST

/* A reset that arrives while the read is pending. */
typedef struct resetter {
    tide_future_t fut;
    tide_async_t co;
    tide_sleep_t nap;
    int fd;
    const char *last; /* sent just before the reset, or NULL */
} resetter_t;

static tide_poll_t resetter_poll(tide_future_t *f, tide_cx_t *cx) {
    resetter_t *t = TIDE_CONTAINER_OF(f, resetter_t, fut);
    TIDE_BEGIN(&t->co);
    TIDE_AWAIT(&t->co, cx, tide_sleep(&t->nap, 2 * TIDE_USEC_PER_MSEC));
    if (t->last != NULL)
        ck_assert_int_eq(send(t->fd, t->last, strlen(t->last), 0),
                         (ssize_t)strlen(t->last));
    close(t->fd);
    TIDE_END(&t->co, f, 0);
}

static const tide_future_vtable_t resetter_vt = {resetter_poll, NULL};

/* A stream over one end of a TCP pair whose other end a spawned resetter
 * resets (SO_LINGER 0) in 2 ms, after sending `last` if it is not NULL. */
static tide_fdstream_t *reset_soon(tide_exec_t *ex, resetter_t *rs,
                                   tide_join_t *j, const char *last) {
    int c, sv;
    t_tcp_pair(&c, &sv);
    tide_fdstream_t *s = fds_new(ex, c);
    struct linger lg = {1, 0};
    ck_assert_int_eq(setsockopt(sv, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    memset(rs, 0, sizeof *rs);
    rs->fd = sv;
    rs->last = last;
    tide_future_init(&rs->fut, &resetter_vt);
    ck_assert_int_eq(tide_spawn(ex, &rs->fut, j), 0);
    return s;
}

START_TEST(test_fdstream_econnreset_while_pending) {
    tide_exec_t *ex = t_exec_new();
    resetter_t rs;
    tide_join_t j;
    tide_fdstream_t *s = reset_soon(ex, &rs, &j, NULL);
    tide_read_t rd;
    char buf[8];
    ck_assert_int_eq(
        run(ex, tide_read(&rd, tide_fdstream_stream(s), buf, sizeof buf)),
        -ECONNRESET);
    ck_assert_int_eq(run(ex, tide_join(&j)), 0);
    tide_fdstream_free(s);
    t_exec_free_clean(ex);
}
END_TEST

/* The peer's last data and its reset reach the socket before the loop
 * next polls the backend, so one epoll report carries both, and libevent
 * 2.1 says EV_READ for it (EPOLLERR/EPOLLHUP, without EV_CLOSED). The read
 * that returns the data is short, which clears readiness; the reset must
 * still be heard. With an edge-triggered read event it never was: no
 * edge follows, and the second read waited for ever. */
START_TEST(test_fdstream_data_and_reset_in_one_report) {
    tide_exec_t *ex = t_exec_new();
    resetter_t rs;
    tide_join_t j;
    tide_fdstream_t *s = reset_soon(ex, &rs, &j, "last words");
    tide_read_t rd;
    char buf[64];
    ck_assert_int_eq(
        run(ex, tide_read(&rd, tide_fdstream_stream(s), buf, sizeof buf)), 10);
    ck_assert_mem_eq(buf, "last words", 10);
    ck_assert_int_eq(
        run(ex, tide_read(&rd, tide_fdstream_stream(s), buf, sizeof buf)),
        -ECONNRESET);
    ck_assert_int_eq(run(ex, tide_join(&j)), 0);
    tide_fdstream_free(s);
    t_exec_free_clean(ex);
}
END_TEST

START_TEST(test_fdstream_new_errors) {
    tide_exec_t *ex = t_exec_new();
    tide_fdstream_t *s = NULL;
    int p[2];
    ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0); /* blocking */
    ck_assert_int_eq(tide_fdstream_new(&s, ex, p[0]), TIDE_EBLOCKING);
    ck_assert_int_eq(tide_fdstream_new(&s, ex, -1), -EBADF);
    ck_assert_int_eq(tide_fdstream_new(NULL, ex, p[0]), -EINVAL);
    ck_assert_int_eq(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
    tide__alloc_fail_at(1);
    ck_assert_int_eq(tide_fdstream_new(&s, ex, p[0]), -ENOMEM);
    tide__alloc_fail_at(0);
    ck_assert_int_ne(fcntl(p[0], F_GETFD), -1); /* left open */
    s = fds_new(ex, p[0]);
    tide_fdstream_t *s2 = NULL;
    ck_assert_int_eq(tide_fdstream_new(&s2, ex, p[0]), -EEXIST);
    ck_assert_ptr_eq(tide_fdstream_fd(s), &s->reg);
    ck_assert_int_eq(tide_fd_get(tide_fdstream_fd(s)), p[0]);
    tide_fdstream_free(s);
    tide_fdstream_free(NULL);
    close(p[1]);
    t_exec_free_clean(ex);
}
END_TEST

START_TEST(test_fdstream_outlives_executor) {
    tide_exec_t *ex = t_exec_new();
    int sv[2];
    t_socketpair(sv);
    tide_fdstream_t *s = fds_new(ex, sv[0]);
    tide_exec_free(ex);
    /* Detached: operations fail instead of spinning on EAGAIN. */
    tide_cx_t cx;
    tide_waker_t none = TIDE_WAKER_EMPTY;
    tide_cx_init(&cx, NULL, &none);
    ssize_t n;
    char buf[4];
    ck_assert_int_eq(tide_stream_poll_read(tide_fdstream_stream(s), &cx, buf,
                                           sizeof buf, &n),
                     TIDE_READY);
    ck_assert_int_eq(n, -EBADF);
    tide_fdstream_free(s);
    ck_assert_int_eq(fcntl(sv[0], F_GETFD), -1); /* closed by free */
    close(sv[1]);
}
END_TEST

/* ------------------------------------------------------------------------
 * Tasks over fdstreams: bulk copy, copy_bidirectional, split
 * ------------------------------------------------------------------------ */

/* Writes `total` pattern bytes in chunks with write_all, then shuts down. */
typedef struct producer {
    tide_future_t fut;
    tide_async_t co;
    tide_stream_t *s;
    size_t total, sent, chunk;
    unsigned char *buf;
    tide_write_all_t wa;
    tide_shutdown_t sd;
} producer_t;

static tide_poll_t producer_poll(tide_future_t *f, tide_cx_t *cx) {
    producer_t *t = TIDE_CONTAINER_OF(f, producer_t, fut);
    TIDE_BEGIN(&t->co);
    while (t->sent < t->total) {
        {
            size_t n = t->total - t->sent;
            if (n > t->chunk)
                n = t->chunk;
            t_pat_fill(t->buf, n, t->sent);
            TIDE_AWAIT(&t->co, cx, tide_write_all(&t->wa, t->s, t->buf, n));
        }
        if (tide_async_result(&t->co) < 0)
            TIDE_RETURN(&t->co, f, tide_async_result(&t->co));
        t->sent += (size_t)tide_async_result(&t->co);
    }
    TIDE_AWAIT(&t->co, cx, tide_shutdown(&t->sd, t->s));
    TIDE_END(&t->co, f, tide_async_result(&t->co));
}

/* Reads to end of stream, checking the pattern and counting. */
typedef struct consumer {
    tide_future_t fut;
    tide_async_t co;
    tide_stream_t *s;
    size_t got, cap;
    bool bad;
    unsigned char *buf;
    tide_read_t rd;
} consumer_t;

static tide_poll_t consumer_poll(tide_future_t *f, tide_cx_t *cx) {
    consumer_t *t = TIDE_CONTAINER_OF(f, consumer_t, fut);
    TIDE_BEGIN(&t->co);
    for (;;) {
        TIDE_AWAIT(&t->co, cx, tide_read(&t->rd, t->s, t->buf, t->cap));
        if (tide_async_result(&t->co) <= 0)
            break;
        {
            size_t n = (size_t)tide_async_result(&t->co);
            for (size_t i = 0; i < n; i++)
                if (t->buf[i] != t_pat(t->got + i))
                    t->bad = true;
            t->got += n;
        }
    }
    TIDE_END(&t->co, f, tide_async_result(&t->co));
}

static const tide_future_vtable_t consumer_vt = {consumer_poll, NULL};

static const tide_future_vtable_t producer_vt = {producer_poll, NULL};

START_TEST(test_io_copy_16mib_through_socketpairs) {
    tide_exec_t *ex = t_exec_new();
    enum { TOTAL = 16 * 1024 * 1024 };
    int a[2], b[2];
    t_socketpair(a);
    t_socketpair(b);
    tide_fdstream_t *pa = fds_new(ex, a[0]), *ra = fds_new(ex, a[1]);
    tide_fdstream_t *wb = fds_new(ex, b[0]), *cb = fds_new(ex, b[1]);
    static unsigned char pbuf[65536], cbuf[65536];
    producer_t pr = {.s = tide_fdstream_stream(pa),
                     .total = TOTAL,
                     .chunk = sizeof pbuf,
                     .buf = pbuf};
    consumer_t co = {
        .s = tide_fdstream_stream(cb), .cap = sizeof cbuf, .buf = cbuf};
    tide_future_init(&pr.fut, &producer_vt);
    tide_future_init(&co.fut, &consumer_vt);
    tide_join_t jp, jc;
    ck_assert_int_eq(tide_spawn(ex, &pr.fut, &jp), 0);
    ck_assert_int_eq(tide_spawn(ex, &co.fut, &jc), 0);
    static tide_copy_buf_t cp;
    uint64_t t0 = tide_now(), c0 = t_cpu_usec();
    tide__alloc_fail_at(0); /* reset the allocation count */
    intptr_t r = run(ex, tide_copy_default(&cp, tide_fdstream_stream(ra),
                                           tide_fdstream_stream(wb)));
    /* Thousands of reads and writes, three allocations: block_on's task,
     * and the write event of each of the two streams whose writes block
     * (the producer's and the copy's writer), made once, the first time.
     * None per operation. */
    ck_assert_uint_eq(tide__alloc_fail_at(0), 3);
    ck_assert_int_eq(r, TOTAL);
    tide_shutdown_t sd;
    ck_assert_int_eq(run(ex, tide_shutdown(&sd, tide_fdstream_stream(wb))), 0);
    ck_assert_int_eq(run(ex, tide_join(&jp)), 0);
    ck_assert_int_eq(run(ex, tide_join(&jc)), 0);
    uint64_t t1 = tide_now(), c1 = t_cpu_usec();
    ck_assert_uint_eq(co.got, TOTAL);
    ck_assert(!co.bad);
    ck_assert_uint_eq(tide_copy_copied(&cp.copy), TOTAL);
    fprintf(stderr, "copy 16 MiB via socketpairs: %.1f ms wall, %.1f ms cpu\n",
            (double)(t1 - t0) / 1e3, (double)(c1 - c0) / 1e3);
    tide_fdstream_free(pa);
    tide_fdstream_free(ra);
    tide_fdstream_free(wb);
    tide_fdstream_free(cb);
    t_exec_free_clean(ex);
}
END_TEST

/* The other end of copy_bidirectional, as a task: a' writes "ping" and
 * half-closes; b' must see "ping" then EOF while the copy still runs;
 * then b' answers "pong!" and half-closes; a' sees it, then EOF. */
typedef struct bidi_peer {
    tide_future_t fut;
    tide_async_t co;
    tide_stream_t *pa, *pb;
    tide_join_t *copy;
    char buf[16];
    bool still_running;
    tide_write_all_t wa;
    tide_shutdown_t sd;
    tide_read_exact_t rx;
    tide_read_t rd;
} bidi_peer_t;

static tide_poll_t bidi_peer_poll(tide_future_t *f, tide_cx_t *cx) {
    bidi_peer_t *t = TIDE_CONTAINER_OF(f, bidi_peer_t, fut);
    TIDE_BEGIN(&t->co);
    TIDE_AWAIT(&t->co, cx, tide_write_all(&t->wa, t->pa, "ping", 4));
    TIDE_AWAIT(&t->co, cx, tide_shutdown(&t->sd, t->pa));
    TIDE_AWAIT(&t->co, cx, tide_read_exact(&t->rx, t->pb, t->buf, 4));
    if (tide_async_result(&t->co) != 4 || memcmp(t->buf, "ping", 4) != 0)
        TIDE_RETURN(&t->co, f, -100);
    TIDE_AWAIT(&t->co, cx, tide_read(&t->rd, t->pb, t->buf, sizeof t->buf));
    if (tide_async_result(&t->co) != 0)
        TIDE_RETURN(&t->co, f, -101); /* the half-close reached b' */
    t->still_running = !tide_join_is_finished(t->copy);
    TIDE_AWAIT(&t->co, cx, tide_write_all(&t->wa, t->pb, "pong!", 5));
    TIDE_AWAIT(&t->co, cx, tide_shutdown(&t->sd, t->pb));
    TIDE_AWAIT(&t->co, cx, tide_read_exact(&t->rx, t->pa, t->buf, 5));
    if (tide_async_result(&t->co) != 5 || memcmp(t->buf, "pong!", 5) != 0)
        TIDE_RETURN(&t->co, f, -102);
    TIDE_AWAIT(&t->co, cx, tide_read(&t->rd, t->pa, t->buf, sizeof t->buf));
    if (tide_async_result(&t->co) != 0)
        TIDE_RETURN(&t->co, f, -103);
    TIDE_END(&t->co, f, 0);
}

static const tide_future_vtable_t bidi_peer_vt = {bidi_peer_poll, NULL};

START_TEST(test_io_copy_bidirectional_half_close_each_way) {
    tide_exec_t *ex = t_exec_new();
    for (int swap = 0; swap < 2; swap++) {
        int a[2], b[2];
        t_socketpair(a);
        t_socketpair(b);
        tide_fdstream_t *A = fds_new(ex, a[0]), *Ap = fds_new(ex, a[1]);
        tide_fdstream_t *B = fds_new(ex, b[0]), *Bp = fds_new(ex, b[1]);
        /* swap: the copy's "a" is B, so the first half-close travels
         * b -> a inside the copy. */
        static tide_copy_bidirectional_buf_t cp;
        tide_stream_t *x = tide_fdstream_stream(swap ? B : A);
        tide_stream_t *y = tide_fdstream_stream(swap ? A : B);
        tide_join_t jc, jp;
        t_assert_int_eq_at(
            swap,
            tide_spawn(ex, tide_copy_bidirectional_default(&cp, x, y), &jc), 0);
        bidi_peer_t peer = {.pa = tide_fdstream_stream(Ap),
                            .pb = tide_fdstream_stream(Bp),
                            .copy = &jc};
        tide_future_init(&peer.fut, &bidi_peer_vt);
        t_assert_int_eq_at(swap, tide_spawn(ex, &peer.fut, &jp), 0);
        t_assert_int_eq_at(swap, run(ex, tide_join(&jp)), 0);
        t_assert_at(swap, peer.still_running);
        t_assert_int_eq_at(swap, run(ex, tide_join(&jc)), 0);
        uint64_t ab = tide_copy_bidirectional_a_to_b(&cp.copy);
        uint64_t ba = tide_copy_bidirectional_b_to_a(&cp.copy);
        t_assert_uint_eq_at(swap, swap ? ba : ab, 4);
        t_assert_uint_eq_at(swap, swap ? ab : ba, 5);
        tide_fdstream_free(A);
        tide_fdstream_free(Ap);
        tide_fdstream_free(B);
        tide_fdstream_free(Bp);
    }
    t_exec_free_clean(ex);
}
END_TEST

START_TEST(test_io_copy_bidirectional_reset_ends_it) {
    tide_exec_t *ex = t_exec_new();
    int c, sv, b[2];
    t_tcp_pair(&c, &sv);
    t_socketpair(b);
    tide_fdstream_t *A = fds_new(ex, c), *B = fds_new(ex, b[0]);
    struct linger lg = {1, 0};
    ck_assert_int_eq(setsockopt(sv, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    resetter_t rs = {.fd = sv};
    tide_future_init(&rs.fut, &resetter_vt);
    tide_join_t j;
    ck_assert_int_eq(tide_spawn(ex, &rs.fut, &j), 0);
    static tide_copy_bidirectional_buf_t cp;
    ck_assert_int_eq(
        run(ex, tide_copy_bidirectional_default(&cp, tide_fdstream_stream(A),
                                                tide_fdstream_stream(B))),
        -ECONNRESET);
    ck_assert_int_eq(run(ex, tide_join(&j)), 0);
    assert_no_waker(A);
    assert_no_waker(B);
    tide_fdstream_free(A);
    tide_fdstream_free(B);
    close(b[1]);
    t_exec_free_clean(ex);
}
END_TEST

START_TEST(test_fdstream_copy_bidirectional_drop_disarms) {
    tide_exec_t *ex = t_exec_new();
    int a[2], b[2];
    t_socketpair(a);
    t_socketpair(b);
    tide_fdstream_t *A = fds_new(ex, a[0]), *B = fds_new(ex, b[0]);
    unsigned char buf[64];
    tide_copy_bidirectional_t op;
    feeder_t fe = {a[1], 0, 1000, 100};
    bool dropped;
    /* Data flows a -> b for a few rounds, then the copy is dropped while
     * both reads are pending. */
    drive(ex,
          tide_copy_bidirectional(&op, tide_fdstream_stream(A),
                                  tide_fdstream_stream(B), buf, sizeof buf),
          4, feed_more, &fe, &dropped);
    ck_assert(dropped);
    assert_no_waker(A);
    assert_no_waker(B);
    ck_assert_uint_eq(t_stats(ex).armed_events, 0);
    tide_fdstream_free(A);
    tide_fdstream_free(B);
    close(a[1]);
    close(b[1]);
    t_exec_free_clean(ex);
}
END_TEST

/* split: one task reads the read half while another writes the write
 * half, both blocked at once. */
START_TEST(test_io_split_two_tasks_at_once) {
    tide_exec_t *ex = t_exec_new();
    enum { TOTAL = 2 * 1024 * 1024 };
    int sv[2];
    t_socketpair(sv);
    t_small_buffers(sv[0]);
    t_small_buffers(sv[1]);
    tide_fdstream_t *s = fds_new(ex, sv[0]), *p = fds_new(ex, sv[1]);
    tide_read_half_t rh;
    tide_write_half_t wh;
    tide_split(tide_fdstream_stream(s), &rh, &wh);
    static unsigned char b1[4096], b2[4096], b3[4096], b4[8192];
    /* s: writer task on wh, reader task on rh; p: its own writer and
     * reader (halves too). */
    tide_read_half_t prh;
    tide_write_half_t pwh;
    tide_split(tide_fdstream_stream(p), &prh, &pwh);
    producer_t w1 = {.s = tide_write_half_stream(&wh),
                     .total = TOTAL,
                     .chunk = sizeof b1,
                     .buf = b1};
    producer_t w2 = {.s = tide_write_half_stream(&pwh),
                     .total = TOTAL,
                     .chunk = sizeof b2,
                     .buf = b2};
    consumer_t r1 = {
        .s = tide_read_half_stream(&rh), .cap = sizeof b3, .buf = b3};
    consumer_t r2 = {
        .s = tide_read_half_stream(&prh), .cap = sizeof b4, .buf = b4};
    producer_t *ws[2] = {&w1, &w2};
    consumer_t *rs[2] = {&r1, &r2};
    tide_join_t jw[2], jr[2];
    for (int i = 0; i < 2; i++) {
        tide_future_init(&ws[i]->fut, &producer_vt);
        tide_future_init(&rs[i]->fut, &consumer_vt);
        t_assert_int_eq_at(i, tide_spawn(ex, &ws[i]->fut, &jw[i]), 0);
        t_assert_int_eq_at(i, tide_spawn(ex, &rs[i]->fut, &jr[i]), 0);
    }
    for (int i = 0; i < 2; i++) {
        t_assert_int_eq_at(i, run(ex, tide_join(&jw[i])), 0);
        t_assert_int_eq_at(i, run(ex, tide_join(&jr[i])), 0);
        t_assert_uint_eq_at(i, rs[i]->got, TOTAL);
        t_assert_at(i, !rs[i]->bad);
    }
    /* The wrong direction on a half is refused. */
    tide_write_t wr;
    tide_read_t rd;
    tide_shutdown_t sd;
    ck_assert_int_eq(
        run(ex, tide_write(&wr, tide_read_half_stream(&rh), "x", 1)), -EBADF);
    ck_assert_int_eq(run(ex, tide_shutdown(&sd, tide_read_half_stream(&rh))),
                     -EBADF);
    ck_assert_int_eq(
        run(ex, tide_read(&rd, tide_write_half_stream(&wh), b1, 1)), -EBADF);
    tide_fdstream_free(s);
    tide_fdstream_free(p);
    t_exec_free_clean(ex);
}
END_TEST

/* Cancelling the read half's pending read leaves the write half's wait
 * alone. */
typedef struct one_op {
    tide_future_t fut;
    tide_async_t co;
    tide_future_t *op;
} one_op_t;

static tide_poll_t one_op_poll(tide_future_t *f, tide_cx_t *cx) {
    one_op_t *t = TIDE_CONTAINER_OF(f, one_op_t, fut);
    TIDE_BEGIN(&t->co);
    TIDE_AWAIT(&t->co, cx, t->op);
    TIDE_END(&t->co, f, tide_async_result(&t->co));
}

static void one_op_drop(tide_future_t *f) {
    one_op_t *t = TIDE_CONTAINER_OF(f, one_op_t, fut);
    tide_async_drop(&t->co);
}

static const tide_future_vtable_t one_op_vt = {one_op_poll, one_op_drop};

/* Spawn a task that awaits op (and owns it), with join handle j. */
static void one_op_spawn(tide_exec_t *ex, one_op_t *t, tide_future_t *op,
                         tide_join_t *j) {
    memset(t, 0, sizeof *t);
    t->op = op;
    tide_future_init(&t->fut, &one_op_vt);
    ck_assert_int_eq(tide_spawn(ex, &t->fut, j), 0);
}

START_TEST(test_io_split_cancel_touches_own_direction) {
    tide_exec_t *ex = t_exec_new();
    enum { TOTAL = 512 * 1024 };
    int sv[2];
    t_socketpair(sv);
    t_small_buffers(sv[0]);
    t_small_buffers(sv[1]);
    tide_fdstream_t *s = fds_new(ex, sv[0]);
    tide_read_half_t rh;
    tide_write_half_t wh;
    tide_split(tide_fdstream_stream(s), &rh, &wh);
    unsigned char *src = malloc(TOTAL);
    t_pat_fill(src, TOTAL, 0);
    char rbuf[16];
    tide_read_t rd;
    tide_write_all_t wa;
    one_op_t tr = {
        .op = tide_read(&rd, tide_read_half_stream(&rh), rbuf, sizeof rbuf)};
    one_op_t tw = {
        .op = tide_write_all(&wa, tide_write_half_stream(&wh), src, TOTAL)};
    tide_future_init(&tr.fut, &one_op_vt);
    tide_future_init(&tw.fut, &one_op_vt);
    tide_join_t jr, jw;
    ck_assert_int_eq(tide_spawn(ex, &tr.fut, &jr), 0);
    ck_assert_int_eq(tide_spawn(ex, &tw.fut, &jw), 0);
    /* Let both block. */
    tide_sleep_t nap;
    ck_assert_int_eq(run(ex, tide_sleep(&nap, 2 * TIDE_USEC_PER_MSEC)), 0);
    ck_assert_uint_eq(tide_waitq_len(&s->reg.dir[TIDE__RD].q), 1);
    ck_assert_uint_eq(tide_waitq_len(&s->reg.dir[TIDE__WR].q), 1);
    ck_assert_uint_eq(t_stats(ex).armed_events, 2);
    /* Abort the reader: only the read side is cancelled. */
    tide_join_abort(&jr);
    ck_assert_int_eq(run(ex, tide_join(&jr)), -ECANCELED);
    ck_assert_uint_eq(tide_waitq_len(&s->reg.dir[TIDE__RD].q), 0);
    ck_assert_uint_eq(tide_waitq_len(&s->reg.dir[TIDE__WR].q), 1);
    ck_assert_uint_eq(t_stats(ex).armed_events, 1);
    /* The writer still gets woken: drain the peer until it is done. */
    unsigned char *got = malloc(TOTAL);
    size_t n = 0;
    bool eof = false;
    for (int i = 0; i < 100000 && !tide_join_is_finished(&jw); i++) {
        drain_fd(sv[1], got, &n, TOTAL, TOTAL, &eof);
        tide_yield_t y;
        run(ex, tide_yield(&y));
    }
    ck_assert_int_eq(run(ex, tide_join(&jw)), TOTAL);
    drain_fd(sv[1], got, &n, TOTAL, TOTAL, &eof);
    ck_assert_uint_eq(n, TOTAL);
    t_pat_assert(got, TOTAL, 0);
    tide_fdstream_free(s);
    close(sv[1]);
    free(src);
    free(got);
    t_exec_free_clean(ex);
}
END_TEST

/* Decoders over an fdstream: frames split across reads. */
START_TEST(test_codec_over_socketpair) {
    tide_exec_t *ex = t_exec_new();
    int sv[2];
    t_socketpair(sv);
    tide_fdstream_t *r = fds_new(ex, sv[0]), *w = fds_new(ex, sv[1]);
    tide_lencodec_t c;
    tide_lencodec_init(&c, 4, 0, 1000);
    unsigned char payload[1000];
    t_pat_fill(payload, sizeof payload, 0);
    tide_encode_t en;
    for (size_t len = 0; len <= 1000; len += 250)
        t_assert_int_eq_at(
            len,
            run(ex, tide_lencodec_encode(&en, &c, tide_fdstream_stream(w),
                                         payload, len)),
            4 + (intptr_t)len);
    tide_shutdown_t sd;
    ck_assert_int_eq(run(ex, tide_shutdown(&sd, tide_fdstream_stream(w))), 0);
    unsigned char bbuf[1004];
    tide_bufreader_t br;
    tide_bufreader_init(&br, tide_fdstream_stream(r), bbuf, sizeof bbuf);
    tide_decode_t de;
    for (size_t len = 0; len <= 1000; len += 250) {
        t_assert_int_eq_at(len, run(ex, tide_lencodec_decode(&de, &c, &br)), 1);
        t_assert_uint_eq_at(len, de.len, len);
        t_pat_assert(de.frame, len, 0);
    }
    ck_assert_int_eq(run(ex, tide_lencodec_decode(&de, &c, &br)), 0);
    tide_fdstream_free(r);
    tide_fdstream_free(w);
    t_exec_free_clean(ex);
}
END_TEST

/* Gathering writes over a socket (sendmsg) and a pipe (writev), with more
 * buffers than one call passes. */
START_TEST(test_fdstream_writev_all_many_buffers) {
    tide_exec_t *ex = t_exec_new();
    ck_assert_int_eq(tide_ignore_sigpipe(), 0);
    enum { NIOV = 300, TOTAL = NIOV * (NIOV + 1) / 2 };
    unsigned char *src = malloc(TOTAL), *got = malloc(TOTAL);
    t_pat_fill(src, TOTAL, 0);
    struct iovec iov[NIOV];
    size_t off = 0;
    for (int i = 0; i < NIOV; i++) {
        iov[i].iov_base = src + off;
        iov[i].iov_len = (size_t)i + 1;
        off += (size_t)i + 1;
    }
    for (int kind = 0; kind < 2; kind++) {
        int fds[2];
        if (kind == 0) {
            t_socketpair(fds);
            t_small_buffers(fds[0]);
        } else {
            t_assert_int_eq_at(kind, pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
            int t = fds[0];
            fds[0] = fds[1];
            fds[1] = t; /* fds[0]: the write end */
        }
        tide_fdstream_t *w = fds_new(ex, fds[0]);
        t_assert_at(kind, w->is_socket == (kind == 0));
        drainer_t dr = {fds[1], got, 0, TOTAL, TOTAL, false};
        tide_writev_all_t op;
        bool dropped;
        t_assert_int_eq_at(
            kind,
            drive(ex, tide_writev_all(&op, tide_fdstream_stream(w), iov, NIOV),
                  0, drain_some, &dr, &dropped),
            TOTAL);
        tide_shutdown_t sd;
        t_assert_int_eq_at(
            kind, run(ex, tide_shutdown(&sd, tide_fdstream_stream(w))), 0);
        while (!dr.eof)
            drain_fd(fds[1], got, &dr.got, TOTAL, TOTAL, &dr.eof);
        t_assert_uint_eq_at(kind, dr.got, TOTAL);
        t_pat_assert(got, TOTAL, 0);
        tide_fdstream_free(w);
        close(fds[1]);
    }
    free(src);
    free(got);
    t_exec_free_clean(ex);
}
END_TEST

/* A read at least as large as the buffer skips it when it is empty. */
START_TEST(test_bufreader_large_read_bypasses_buffer) {
    tide_exec_t *ex = t_exec_new();
    unsigned char src[100], dst[100], bbuf[8];
    t_pat_fill(src, sizeof src, 0);
    fake_t f;
    fake_init(&f, ex, NULL, 0, false, 50);
    fake_src(&f, src, sizeof src, 0);
    tide_bufreader_t br;
    tide_bufreader_init(&br, &f.stream, bbuf, sizeof bbuf);
    tide_read_t rd;
    ck_assert_int_eq(
        run(ex, tide_read(&rd, tide_bufreader_stream(&br), dst, sizeof dst)),
        50); /* straight from the fake: more than bbuf holds */
    ck_assert_int_eq(
        run(ex, tide_read(&rd, tide_bufreader_stream(&br), dst + 50, 3)),
        3); /* small: through the buffer, which keeps 5 */
    size_t n;
    const unsigned char *p = tide_bufreader_data(&br, &n);
    ck_assert_uint_eq(n, 5);
    t_pat_assert(p, 5, 53);
    tide_bufreader_consume(&br, 100); /* clamped */
    tide_bufreader_data(&br, &n);
    ck_assert_uint_eq(n, 0);
    t_pat_assert(dst, 53, 0);
    /* Writes through a bufreader reach the inner stream. */
    unsigned char sink[4];
    fake_sink(&f, sink, sizeof sink);
    tide_write_all_t wa;
    ck_assert_int_eq(
        run(ex, tide_write_all(&wa, tide_bufreader_stream(&br), "abcd", 4)), 4);
    ck_assert_int_eq(memcmp(sink, "abcd", 4), 0);
    fake_fini(&f);
    t_exec_free_clean(ex);
}
END_TEST

/* ------------------------------------------------------------------------ */

/* ------------------------------------------------------------------------
 * The cost of waiting: no epoll_ctl per message
 *
 * A ping-pong of small messages over TCP: every message makes the echoing
 * task wait for readability again. With a one-shot event that is one
 * epoll_ctl to add and one to remove per message; tide keeps the event in
 * the epoll set across the wake (see src/reactor/fd.c), so the whole
 * exchange may add and remove events only a handful of times.
 * ------------------------------------------------------------------------ */

#define PP_ROUNDS 2000

typedef struct {
    tide_future_t fut;
    tide_async_t co;
    tide_stream_t *s;
    bool pinger;
    int i;
    tide_read_t rd;
    tide_read_exact_t rx;
    tide_write_all_t wr;
    unsigned char buf[64];
} pp_t;

static tide_poll_t pp_poll(tide_future_t *f, tide_cx_t *cx) {
    pp_t *p = TIDE_CONTAINER_OF(f, pp_t, fut);
    TIDE_BEGIN(&p->co);
    for (p->i = 0; p->i < PP_ROUNDS; p->i++) {
        if (p->pinger) {
            memset(p->buf, (int)(p->i & 0xff), sizeof p->buf);
            TIDE_AWAIT(&p->co, cx,
                       tide_write_all(&p->wr, p->s, p->buf, sizeof p->buf));
            if (tide_async_result(&p->co) < 0)
                TIDE_RETURN(&p->co, f, tide_async_result(&p->co));
            TIDE_AWAIT(&p->co, cx,
                       tide_read_exact(&p->rx, p->s, p->buf, sizeof p->buf));
            if (tide_async_result(&p->co) != (intptr_t)sizeof p->buf ||
                p->buf[63] != (unsigned char)(p->i & 0xff))
                TIDE_RETURN(&p->co, f, -EPROTO);
        } else {
            TIDE_AWAIT(&p->co, cx,
                       tide_read_exact(&p->rx, p->s, p->buf, sizeof p->buf));
            if (tide_async_result(&p->co) != (intptr_t)sizeof p->buf)
                TIDE_RETURN(&p->co, f, -EPROTO);
            TIDE_AWAIT(&p->co, cx,
                       tide_write_all(&p->wr, p->s, p->buf, sizeof p->buf));
            if (tide_async_result(&p->co) < 0)
                TIDE_RETURN(&p->co, f, tide_async_result(&p->co));
        }
    }
    TIDE_END(&p->co, f, PP_ROUNDS);
}

static void pp_drop(tide_future_t *f) {
    pp_t *p = TIDE_CONTAINER_OF(f, pp_t, fut);
    tide_async_drop(&p->co);
}

static const tide_future_vtable_t pp_vt = {pp_poll, pp_drop};

static void ping_pong_arms(bool tcp) {
    tide_exec_t *ex;
    ck_assert_int_eq(tide_exec_new(&ex, NULL, 0), 0);
    int sv[2];
    if (tcp)
        t_tcp_pair(&sv[0], &sv[1]);
    else
        t_socketpair(sv);
    tide_fdstream_t *a = fds_new(ex, sv[0]), *b = fds_new(ex, sv[1]);
    pp_t ping, pong;
    memset(&ping, 0, sizeof ping);
    memset(&pong, 0, sizeof pong);
    ping.s = tide_fdstream_stream(a);
    ping.pinger = true;
    pong.s = tide_fdstream_stream(b);
    tide_future_init(&ping.fut, &pp_vt);
    tide_future_init(&pong.fut, &pp_vt);
    tide_join_t jp;
    ck_assert_int_eq(tide_spawn(ex, &pong.fut, &jp), 0);
    ck_assert_int_eq(run(ex, &ping.fut), PP_ROUNDS);
    ck_assert_int_eq(run(ex, tide_join(&jp)), PP_ROUNDS);
    tide_exec_stats_t st;
    tide_exec_stats(ex, &st);
    /* 2 x 2000 waits for readability; a one-shot event would cost 8000. */
    ck_assert_msg(st.io_arms + st.io_disarms <= 16,
                  "%llu arms and %llu disarms for %d round trips",
                  (unsigned long long)st.io_arms,
                  (unsigned long long)st.io_disarms, PP_ROUNDS);
    ck_assert_uint_ge(st.io_arms, 1); /* it did wait */
    tide_fdstream_free(a);
    tide_fdstream_free(b);
    t_exec_free_clean(ex);
}

START_TEST(test_io_ping_pong_no_rearm_per_message_tcp) { ping_pong_arms(true); }
END_TEST

START_TEST(test_io_ping_pong_no_rearm_per_message_unix) {
    ping_pong_arms(false);
}
END_TEST

/* Copy is cooperative by itself (issue 10, item 11): over streams that are
 * always ready (they never answer PENDING, so they never spend the budget),
 * a copy still yields, and a neighbour task runs before it is done. */
typedef struct eager {
    tide_stream_t stream;
    uint64_t left;    /* bytes the read side still gives, then EOF */
    uint64_t written; /* bytes the write side took */
} eager_t;

static tide_poll_t eager_read(tide_stream_t *s, tide_cx_t *cx, void *buf,
                              size_t len, ssize_t *out) {
    eager_t *e = TIDE_CONTAINER_OF(s, eager_t, stream);
    size_t n = len < e->left ? len : (size_t)e->left;
    e->left -= n;
    *out = (ssize_t)n; /* the bytes are whatever buf holds: only counted */
    return TIDE_READY;
}

static tide_poll_t eager_write(tide_stream_t *s, tide_cx_t *cx, const void *buf,
                               size_t len, ssize_t *out) {
    eager_t *e = TIDE_CONTAINER_OF(s, eager_t, stream);
    e->written += len;
    *out = (ssize_t)len;
    return TIDE_READY;
}

static const tide_stream_vt_t eager_vt = {eager_read, eager_write, NULL, NULL,
                                          NULL};

#define EAGER_TOTAL (UINT64_C(256) << 20)

typedef struct neighbour {
    tide_future_t fut;
    tide_join_t *victim;
    uint64_t *progress;
    uint64_t seen;
    int yields;
    bool victim_done;
} neighbour_t;

static tide_poll_t neighbour_poll(tide_future_t *f, tide_cx_t *cx) {
    neighbour_t *n = TIDE_CONTAINER_OF(f, neighbour_t, fut);
    if (n->yields++ < 2) { /* let the copy have a few turns */
        tide_waker_wake_by_ref(cx->waker);
        return TIDE_PENDING;
    }
    n->seen = *n->progress;
    n->victim_done = tide_join_is_finished(n->victim);
    tide_join_abort(n->victim);
    f->result = 0;
    return TIDE_READY;
}

static const tide_future_vtable_t neighbour_vt = {neighbour_poll, NULL};

static void copy_yields_check(tide_exec_t *ex, tide_future_t *copy,
                              uint64_t *progress) {
    tide_join_t jc, jn;
    ck_assert_int_eq(tide_spawn(ex, copy, &jc), 0);
    neighbour_t n = {.victim = &jc, .progress = progress};
    tide_future_init(&n.fut, &neighbour_vt);
    ck_assert_int_eq(tide_spawn(ex, &n.fut, &jn), 0);
    ck_assert_int_eq(run(ex, tide_join(&jn)), 0);
    ck_assert_msg(!n.victim_done && n.seen < EAGER_TOTAL,
                  "the neighbour ran only after the copy had moved all %llu "
                  "bytes: the copy did not yield",
                  (unsigned long long)n.seen);
    ck_assert_int_eq(run(ex, tide_join(&jc)), -ECANCELED);
}

START_TEST(test_io_copy_yields_over_always_ready_streams) {
    tide_exec_t *ex = t_exec_new();
    static unsigned char buf[TIDE_COPY_BUF_SIZE];
    eager_t src = {{&eager_vt, NULL, NULL}, EAGER_TOTAL, 0};
    eager_t dst = {{&eager_vt, NULL, NULL}, 0, 0};
    tide_copy_t cp;
    copy_yields_check(ex,
                      tide_copy(&cp, &src.stream, &dst.stream, buf, sizeof buf),
                      &dst.written);
    /* and both directions of copy_bidirectional */
    eager_t a = {{&eager_vt, NULL, NULL}, EAGER_TOTAL, 0};
    eager_t b = {{&eager_vt, NULL, NULL}, EAGER_TOTAL, 0};
    tide_copy_bidirectional_t bd;
    copy_yields_check(
        ex, tide_copy_bidirectional(&bd, &a.stream, &b.stream, buf, sizeof buf),
        &b.written);
    ck_assert_uint_gt(a.written, 0); /* b -> a had its turns too */
    t_exec_free_clean(ex);
}
END_TEST

/* The result of j within 200 ms, or -ETIMEDOUT. */
static intptr_t join_within(tide_exec_t *ex, tide_join_t *j) {
    tide_timeout_t to;
    return run(ex, tide_timeout(&to, tide_join(j), 200 * TIDE_USEC_PER_MSEC));
}

/* Two tasks waiting on one direction of a stream are both woken (issue 10,
 * item 14; issue 11): each waits with its own waiter. Before the waiter
 * queues, the second overwrote the first's waker and the first slept
 * forever. */
START_TEST(test_fdstream_two_waiters_both_woken) {
    tide_exec_t *ex = t_exec_new();
    int sv[2];
    t_socketpair(sv);
    t_small_buffers(sv[0]);
    t_small_buffers(sv[1]);
    tide_fdstream_t *fs = fds_new(ex, sv[0]);
    tide_stream_t *st = tide_fdstream_stream(fs);

    /* reads */
    char ba[8], bb[8];
    tide_read_t ra, rb;
    one_op_t ta, tb;
    tide_join_t ja, jb;
    one_op_spawn(ex, &ta, tide_read(&ra, st, ba, sizeof ba), &ja);
    one_op_spawn(ex, &tb, tide_read(&rb, st, bb, sizeof bb), &jb);
    tide_sleep_t nap; /* both wait */
    ck_assert_int_eq(run(ex, tide_sleep(&nap, 2 * TIDE_USEC_PER_MSEC)), 0);
    ck_assert_uint_eq(tide_waitq_len(&fs->reg.dir[TIDE__RD].q), 2);
    /* one message: one of them takes it, the other waits on */
    ck_assert_int_eq(write(sv[1], "hi", 2), 2);
    ck_assert_int_eq(run(ex, tide_sleep(&nap, 2 * TIDE_USEC_PER_MSEC)), 0);
    ck_assert(tide_join_is_finished(&ja) != tide_join_is_finished(&jb));
    ck_assert_uint_eq(tide_waitq_len(&fs->reg.dir[TIDE__RD].q), 1);
    /* a second message: the other one */
    ck_assert_int_eq(write(sv[1], "yo", 2), 2);
    ck_assert_int_eq(join_within(ex, &ja), 2);
    ck_assert_int_eq(join_within(ex, &jb), 2);
    ck_assert(memcmp(ba, "hi", 2) == 0 || memcmp(bb, "hi", 2) == 0);
    ck_assert(memcmp(ba, "yo", 2) == 0 || memcmp(bb, "yo", 2) == 0);

    /* writes, once the socket's buffers are full */
    static char big[1 << 16];
    while (write(sv[0], big, sizeof big) > 0)
        ;
    tide_write_t wa, wb;
    one_op_spawn(ex, &ta, tide_write(&wa, st, "a", 1), &ja);
    one_op_spawn(ex, &tb, tide_write(&wb, st, "b", 1), &jb);
    ck_assert_int_eq(run(ex, tide_sleep(&nap, 2 * TIDE_USEC_PER_MSEC)), 0);
    ck_assert_uint_eq(tide_waitq_len(&fs->reg.dir[TIDE__WR].q), 2);
    static char sink[1 << 20];
    while (read(sv[1], sink, sizeof sink) > 0)
        ;
    ck_assert_int_eq(join_within(ex, &ja), 1);
    ck_assert_int_eq(join_within(ex, &jb), 1);

    tide_fdstream_free(fs);
    close(sv[1]);
    t_exec_free_clean(ex);
}
END_TEST

/* Streams are safe to close from any task (issue 11, item 4): a task frees
 * the stream while three others wait on it (a read, a write, a readiness
 * wait), directly or through a split's halves; each completes with -EBADF
 * and nothing touches the freed stream (ASan and valgrind would say). */
typedef struct kicker {
    tide_future_t fut;
    tide_fdstream_t **victim;
} kicker_t;

static tide_poll_t kicker_poll(tide_future_t *f, tide_cx_t *cx) {
    kicker_t *k = TIDE_CONTAINER_OF(f, kicker_t, fut);
    tide_fdstream_free(*k->victim);
    *k->victim = NULL;
    f->result = 0;
    return TIDE_READY;
}

static const tide_future_vtable_t kicker_vt = {kicker_poll, NULL};

static void free_under_waiters(bool split) {
    tide_exec_t *ex = t_exec_new();
    int sv[2];
    t_socketpair(sv);
    t_small_buffers(sv[0]);
    t_small_buffers(sv[1]);
    tide_fdstream_t *fs = fds_new(ex, sv[0]);
    tide_stream_t *st = tide_fdstream_stream(fs);
    tide_read_half_t rh;
    tide_write_half_t wh;
    tide_split(st, &rh, &wh);
    tide_stream_t *rs = split ? tide_read_half_stream(&rh) : st;
    tide_stream_t *ws = split ? tide_write_half_stream(&wh) : st;
    static unsigned char big[1 << 20];
    char rbuf[16];
    tide_read_t rd;
    tide_write_all_t wa;
    tide_fd_wait_t fw;
    one_op_t tr, tw, tf;
    tide_join_t jr, jw, jf, jk;
    one_op_spawn(ex, &tr, tide_read(&rd, rs, rbuf, sizeof rbuf), &jr);
    one_op_spawn(ex, &tw, tide_write_all(&wa, ws, big, sizeof big), &jw);
    one_op_spawn(ex, &tf, tide_fd_readable(&fw, tide_fdstream_fd(fs)), &jf);
    /* all three wait */
    tide_sleep_t nap;
    ck_assert_int_eq(run(ex, tide_sleep(&nap, 2 * TIDE_USEC_PER_MSEC)), 0);
    ck_assert(!tide_join_is_finished(&jr));
    ck_assert(!tide_join_is_finished(&jw));
    ck_assert(!tide_join_is_finished(&jf));
    ck_assert_uint_eq(tide_waitq_len(&fs->reg.dir[TIDE__RD].q), 2);
    ck_assert_uint_eq(tide_waitq_len(&fs->reg.dir[TIDE__WR].q), 1);
    /* another task frees the stream under them */
    kicker_t k = {.victim = &fs};
    tide_future_init(&k.fut, &kicker_vt);
    ck_assert_int_eq(tide_spawn(ex, &k.fut, &jk), 0);
    ck_assert_int_eq(run(ex, tide_join(&jk)), 0);
    ck_assert_ptr_null(fs);
    ck_assert_int_eq(join_within(ex, &jr), -EBADF);
    ck_assert_int_eq(join_within(ex, &jw), -EBADF);
    ck_assert_int_eq(join_within(ex, &jf), -EBADF);
    ck_assert_uint_gt(wa.done, 0); /* it had written some */
    close(sv[1]);
    t_exec_free_clean(ex);
}

START_TEST(test_fdstream_freed_under_three_waiters) {
    free_under_waiters(false);
}
END_TEST

START_TEST(test_split_stream_freed_under_both_halves) {
    free_under_waiters(true);
}
END_TEST

/* The example stream of io.h, in full: an in-memory pipe of 64 bytes that
 * knows nothing of tide's internals. Reads pend while it is empty, writes
 * while it is full; each side wakes the other's queue. */
typedef struct mem_pipe {
    tide_stream_t stream;
    tide_waitq_t rq, wq;
    unsigned char buf[64];
    size_t head, len;
    bool closed; /* the writer shut down */
} mem_pipe_t;

static tide_poll_t mp_read(tide_stream_t *s, tide_cx_t *cx, void *buf,
                           size_t len, ssize_t *out) {
    mem_pipe_t *m = TIDE_CONTAINER_OF(s, mem_pipe_t, stream);
    if (len == 0 || (m->len == 0 && m->closed)) {
        *out = 0;
        return TIDE_READY;
    }
    if (m->len == 0)
        return TIDE_PENDING; /* mp_write wakes rq */
    size_t n = len < m->len ? len : m->len;
    for (size_t i = 0; i < n; i++)
        ((unsigned char *)buf)[i] = m->buf[(m->head + i) % sizeof m->buf];
    m->head = (m->head + n) % sizeof m->buf;
    m->len -= n;
    tide_waitq_wake_all(&m->wq); /* room for writers */
    *out = (ssize_t)n;
    return TIDE_READY;
}

static tide_poll_t mp_write(tide_stream_t *s, tide_cx_t *cx, const void *buf,
                            size_t len, ssize_t *out) {
    mem_pipe_t *m = TIDE_CONTAINER_OF(s, mem_pipe_t, stream);
    if (m->closed) {
        *out = -EPIPE;
        return TIDE_READY;
    }
    if (len == 0) {
        *out = 0;
        return TIDE_READY;
    }
    if (m->len == sizeof m->buf)
        return TIDE_PENDING; /* mp_read wakes wq */
    size_t n = sizeof m->buf - m->len;
    if (n > len)
        n = len;
    for (size_t i = 0; i < n; i++)
        m->buf[(m->head + m->len + i) % sizeof m->buf] =
            ((const unsigned char *)buf)[i];
    m->len += n;
    tide_waitq_wake_all(&m->rq); /* data for readers */
    *out = (ssize_t)n;
    return TIDE_READY;
}

static tide_poll_t mp_shutdown(tide_stream_t *s, tide_cx_t *cx, int *out) {
    mem_pipe_t *m = TIDE_CONTAINER_OF(s, mem_pipe_t, stream);
    m->closed = true;
    tide_waitq_wake_all(&m->rq); /* readers see the end */
    *out = 0;
    return TIDE_READY;
}

static const tide_stream_vt_t mem_pipe_vt = {
    .poll_read = mp_read, .poll_write = mp_write, .poll_shutdown = mp_shutdown};

static void mem_pipe_init(mem_pipe_t *m) {
    memset(m, 0, sizeof *m);
    tide_waitq_init(&m->rq, NULL);
    tide_waitq_init(&m->wq, NULL);
    tide_stream_init(&m->stream, &mem_pipe_vt, &m->rq, &m->wq);
}

/* A writer task: write_all 64 KiB of pattern, then shut down. */
typedef struct mp_writer {
    tide_future_t fut;
    tide_async_t co;
    tide_stream_t *s;
    tide_write_all_t wa;
    tide_shutdown_t sd;
    unsigned char *src;
    size_t len;
} mp_writer_t;

static tide_poll_t mp_writer_poll(tide_future_t *f, tide_cx_t *cx) {
    mp_writer_t *w = TIDE_CONTAINER_OF(f, mp_writer_t, fut);
    TIDE_BEGIN(&w->co);
    TIDE_AWAIT(&w->co, cx, tide_write_all(&w->wa, w->s, w->src, w->len));
    if (tide_async_result(&w->co) < 0)
        TIDE_RETURN(&w->co, f, tide_async_result(&w->co));
    TIDE_AWAIT(&w->co, cx, tide_shutdown(&w->sd, w->s));
    TIDE_END(&w->co, f, tide_async_result(&w->co));
}

static void mp_writer_drop(tide_future_t *f) {
    tide_async_drop(&TIDE_CONTAINER_OF(f, mp_writer_t, fut)->co);
}

static const tide_future_vtable_t mp_writer_vt = {mp_writer_poll,
                                                  mp_writer_drop};

START_TEST(test_io_example_stream_with_every_helper) {
    tide_exec_t *ex = t_exec_new();
    enum { LEN = 64 * 1024 };
    unsigned char *src = malloc(LEN), *dst = malloc(LEN);
    ck_assert_ptr_nonnull(src);
    ck_assert_ptr_nonnull(dst);
    t_pat_fill(src, LEN, 0);

    /* write_all against read_exact: thousands of PENDINGs each way */
    mem_pipe_t m;
    mem_pipe_init(&m);
    mp_writer_t w = {.s = &m.stream, .src = src, .len = LEN};
    tide_future_init(&w.fut, &mp_writer_vt);
    tide_join_t jw;
    ck_assert_int_eq(tide_spawn(ex, &w.fut, &jw), 0);
    tide_read_exact_t re;
    ck_assert_int_eq(run(ex, tide_read_exact(&re, &m.stream, dst, LEN)), LEN);
    t_pat_assert(dst, LEN, 0);
    ck_assert_int_eq(run(ex, tide_join(&jw)), 0);
    tide_read_t rd;
    ck_assert_int_eq(run(ex, tide_read(&rd, &m.stream, dst, 1)), 0); /* EOF */

    /* copy from one pipe to another, the reader at the far end */
    mem_pipe_t a, b;
    mem_pipe_init(&a);
    mem_pipe_init(&b);
    mp_writer_t wa = {.s = &a.stream, .src = src, .len = LEN};
    tide_future_init(&wa.fut, &mp_writer_vt);
    ck_assert_int_eq(tide_spawn(ex, &wa.fut, &jw), 0);
    tide_copy_t cp;
    one_op_t tc;
    tide_join_t jc;
    unsigned char cbuf[100];
    one_op_spawn(ex, &tc,
                 tide_copy(&cp, &a.stream, &b.stream, cbuf, sizeof cbuf), &jc);
    memset(dst, 0, LEN);
    ck_assert_int_eq(run(ex, tide_read_exact(&re, &b.stream, dst, LEN)), LEN);
    t_pat_assert(dst, LEN, 0);
    ck_assert_int_eq(run(ex, tide_join(&jc)), LEN);
    ck_assert_int_eq(run(ex, tide_join(&jw)), 0);

    /* lines through a bufreader over the pipe */
    mem_pipe_t l;
    mem_pipe_init(&l);
    static const char text[] = "one\ntwo\nthree\n";
    mp_writer_t wl = {
        .s = &l.stream, .src = (unsigned char *)text, .len = sizeof text - 1};
    tide_future_init(&wl.fut, &mp_writer_vt);
    ck_assert_int_eq(tide_spawn(ex, &wl.fut, &jw), 0);
    tide_bufreader_t br;
    unsigned char brbuf[16];
    ck_assert_int_eq(tide_bufreader_init(&br, &l.stream, brbuf, sizeof brbuf),
                     0);
    tide_read_until_t ru;
    char line[16];
    ck_assert_int_eq(run(ex, tide_read_line(&ru, &br, line, sizeof line)), 4);
    ck_assert_str_eq(line, "one\n");
    ck_assert_int_eq(run(ex, tide_read_line(&ru, &br, line, sizeof line)), 4);
    ck_assert_str_eq(line, "two\n");
    ck_assert_int_eq(run(ex, tide_read_line(&ru, &br, line, sizeof line)), 6);
    ck_assert_str_eq(line, "three\n");
    ck_assert_int_eq(run(ex, tide_join(&jw)), 0);

    /* freed (closed) under a waiting reader: -EBADF */
    mem_pipe_t z;
    mem_pipe_init(&z);
    one_op_t tz;
    tide_join_t jz;
    one_op_spawn(ex, &tz, tide_read(&rd, &z.stream, dst, 1), &jz);
    tide_sleep_t nap;
    ck_assert_int_eq(run(ex, tide_sleep(&nap, TIDE_USEC_PER_MSEC)), 0);
    ck_assert_uint_eq(tide_waitq_len(&z.rq), 1);
    tide_stream_close(&z.stream);
    memset(&z, 0xa5, sizeof z); /* as good as freed */
    ck_assert_int_eq(join_within(ex, &jz), -EBADF);

    for (mem_pipe_t *p = &m; p != NULL; p = p == &m   ? &a
                                            : p == &a ? &b
                                            : p == &b ? &l
                                                      : NULL)
        ck_assert_uint_eq(tide_waitq_len(&p->rq) + tide_waitq_len(&p->wq), 0);
    free(src);
    free(dst);
    t_exec_free_clean(ex);
}
END_TEST

static Suite *io_suite(void) {
    Suite *s = suite_create("io");
    TCase *tc;

    tc = t_tcase(s, "fake", 20);
    tcase_add_test(tc, test_io_read_exact_fake_short_counts);
    tcase_add_test(tc, test_io_write_all_fake_short_writes);
    tcase_add_test(tc, test_io_write_all_error_reports_done);
    tcase_add_test(tc, test_io_read_exact_eof_part_way);
    tcase_add_test(tc, test_io_read_write_fake_errors);
    tcase_add_test(tc, test_io_writev_all_fake_across_buffers);
    tcase_add_test(tc, test_io_copy_fake_flushes_and_counts);
    tcase_add_test(tc, test_io_copy_bidirectional_fake);
    tcase_add_test(tc, test_io_copy_yields_over_always_ready_streams);

    tc = t_tcase(s, "cancel", 30);
    tcase_add_test(tc, test_io_read_exact_drop_at_every_pending);
    tcase_add_test(tc, test_io_read_drop_at_every_pending);
    tcase_add_test(tc, test_io_write_drop_at_every_pending);
    tcase_add_test(tc, test_io_write_all_drop_at_every_pending);
    tcase_add_test(tc, test_io_writev_all_drop_at_every_pending);
    tcase_add_test(tc, test_io_flush_shutdown_drop_at_every_pending);
    tcase_add_test(tc, test_io_copy_drop_at_every_pending);
    tcase_add_test(tc, test_io_copy_bidirectional_drop_at_every_pending);
    tcase_add_test(tc, test_bufreader_drop_at_every_pending);
    tcase_add_test(tc, test_codec_drop_at_every_pending);
    tcase_add_test(tc, test_fdstream_read_exact_drop_at_every_pending);
    tcase_add_test(tc, test_fdstream_read_drop_keeps_bytes);
    tcase_add_test(tc, test_fdstream_write_all_drop_at_every_pending);
    tcase_add_test(tc, test_fdstream_copy_drop_at_every_pending);
    tcase_add_test(tc, test_fdstream_copy_bidirectional_drop_disarms);

    tc = t_tcase(s, "bufreader", 10);
    tcase_add_test(tc, test_bufreader_read_line_across_chunks);
    tcase_add_test(tc, test_bufreader_read_until_and_read);
    tcase_add_test(tc, test_bufreader_large_read_bypasses_buffer);
    tcase_add_test(tc, test_linecodec_decode);
    tcase_add_test(tc, test_linecodec_encode);
    tcase_add_test(tc, test_lencodec_roundtrip_and_limits);
    tcase_add_test(tc, test_codec_over_socketpair);

    tc = t_tcase(s, "fdstream", 10);
    tcase_add_test(tc, test_fdstream_eof_reported_each_time);
    tcase_add_test(tc, test_fdstream_epipe_after_peer_closed);
    tcase_add_test(tc, test_fdstream_pipe_epipe_with_sigpipe_ignored);
    tcase_add_test_raise_signal(tc, test_fdstream_pipe_sigpipe_without_ignore,
                                SIGPIPE);
    tcase_add_test(tc, test_fdstream_pipe_shutdown_closes_write_end);
    tcase_add_test(tc, test_fdstream_econnreset_after_peer_reset);
    tcase_add_test(tc, test_fdstream_econnreset_while_pending);
    tcase_add_test(tc, test_fdstream_data_and_reset_in_one_report);
    tcase_add_test(tc, test_fdstream_new_errors);
    tcase_add_test(tc, test_fdstream_writev_all_many_buffers);
    tcase_add_test(tc, test_fdstream_outlives_executor);
    tcase_add_test(tc, test_fdstream_two_waiters_both_woken);
    tcase_add_test(tc, test_fdstream_freed_under_three_waiters);
    tcase_add_test(tc, test_split_stream_freed_under_both_halves);
    tcase_add_test(tc, test_io_example_stream_with_every_helper);

    tc = t_tcase(s, "tasks", 30);
    tcase_add_test(tc, test_io_copy_16mib_through_socketpairs);
    tcase_add_test(tc, test_io_copy_bidirectional_half_close_each_way);
    tcase_add_test(tc, test_io_copy_bidirectional_reset_ends_it);
    tcase_add_test(tc, test_io_split_two_tasks_at_once);
    tcase_add_test(tc, test_io_split_cancel_touches_own_direction);
    tcase_add_test(tc, test_io_ping_pong_no_rearm_per_message_tcp);
    tcase_add_test(tc, test_io_ping_pong_no_rearm_per_message_unix);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(io_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
