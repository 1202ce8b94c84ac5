/*
 * t/check_sync.c: the sync layer: oneshot, mpsc, notify, semaphore. Each
 * primitive's behaviour and close/drop semantics by hand-polled futures
 * (counting wakers), then tasks on an executor, then other threads
 * against a task (bounded in count and time; clean under ThreadSanitizer:
 * t/reliability.sh tsan).
 */
#include <sched.h>

#include "testutil.h"

#include <tide/sync.h>

/* ------------------------------------------------------------------------
 * Oneshot
 * ------------------------------------------------------------------------ */

static atomic_int released;
static void count_release(tide_oneshot_t *o, void *arg) {
    ck_assert_ptr_eq(arg, o);
    atomic_fetch_add(&released, 1);
}

START_TEST(test_oneshot_send_before_recv) {
    tide_oneshot_t o;
    tide_oneshot_recv_t r;
    atomic_store(&released, 0);
    tide_oneshot_init(&o, count_release, &o);
    ck_assert_int_eq(tide_oneshot_send(&o, -42), 0);
    ck_assert_int_eq(atomic_load(&released), 0);
    t_hand_t h;
    t_hand_init(&h, NULL);
    ck_assert_int_eq(t_hand_poll(&h, tide_oneshot_recv(&r, &o)), TIDE_READY);
    ck_assert_int_eq(r.fut.result, 0);
    ck_assert_int_eq(tide_oneshot_recv_value(&r),
                     -42); /* a negative value is a value */
    tide_future_drop(&r.fut);
    ck_assert_int_eq(atomic_load(&released), 1);
    t_hand_done(&h);
}
END_TEST

START_TEST(test_oneshot_recv_waits_for_send) {
    tide_oneshot_t o;
    tide_oneshot_recv_t r;
    atomic_store(&released, 0);
    tide_oneshot_init(&o, count_release, &o);
    t_hand_t h;
    t_hand_init(&h, NULL);
    tide_oneshot_recv(&r, &o);
    for (int i = 0; i < 3; i++) /* polling again registers nothing new */
        t_assert_int_eq_at(i, t_hand_poll(&h, &r.fut), TIDE_PENDING);
    ck_assert_int_eq(atomic_load(&h.count.clones), 1);
    ck_assert_int_eq(t_woken(&h.count), 0);
    ck_assert_int_eq(tide_oneshot_send(&o, 7), 0);
    ck_assert_int_eq(atomic_load(&h.count.wakes), 1);
    ck_assert_int_eq(t_hand_poll(&h, &r.fut), TIDE_READY);
    ck_assert_int_eq(tide_oneshot_recv_value(&r), 7);
    ck_assert_int_eq(atomic_load(&released),
                     0); /* the receiver has not finished */
    tide_future_drop(&r.fut);
    ck_assert_int_eq(atomic_load(&released), 1);
    t_hand_done(&h);
}
END_TEST

START_TEST(test_oneshot_sender_closed_is_epipe) {
    tide_oneshot_t o;
    tide_oneshot_recv_t r;
    atomic_store(&released, 0);
    tide_oneshot_init(&o, count_release, &o);
    t_hand_t h;
    t_hand_init(&h, NULL);
    ck_assert_int_eq(t_hand_poll(&h, tide_oneshot_recv(&r, &o)), TIDE_PENDING);
    tide_oneshot_close(&o);
    ck_assert_int_eq(atomic_load(&h.count.wakes), 1);
    ck_assert_int_eq(t_hand_poll(&h, &r.fut), TIDE_READY);
    ck_assert_int_eq(r.fut.result, -EPIPE);
    tide_future_drop(&r.fut);
    ck_assert_int_eq(atomic_load(&released), 1);
    t_hand_done(&h);
}
END_TEST

START_TEST(test_oneshot_receiver_dropped_send_fails) {
    tide_oneshot_t o;
    tide_oneshot_recv_t r;
    atomic_store(&released, 0);
    tide_oneshot_init(&o, count_release, &o);
    t_hand_t h;
    t_hand_init(&h, NULL);
    ck_assert_int_eq(t_hand_poll(&h, tide_oneshot_recv(&r, &o)), TIDE_PENDING);
    tide_future_drop(&r.fut); /* releases its waker */
    ck_assert_int_eq(atomic_load(&h.count.refs), 1);
    ck_assert_int_eq(atomic_load(&released), 0);
    ck_assert_int_eq(tide_oneshot_send(&o, 1), -EPIPE);
    ck_assert_int_eq(atomic_load(&released), 1);
    ck_assert_int_eq(t_woken(&h.count), 0);
    /* never polled at all: the same */
    tide_oneshot_init(&o, count_release, &o);
    tide_oneshot_recv(&r, &o);
    tide_future_drop(&r.fut);
    tide_oneshot_close(&o);
    ck_assert_int_eq(atomic_load(&released), 2);
    t_hand_done(&h);
}
END_TEST

/* A task that awaits a oneshot, for the thread tests. */
typedef struct os_task {
    tide_future_t fut;
    tide_async_t co;
    tide_oneshot_t *o;
    tide_oneshot_recv_t r;
    intptr_t got;
} os_task_t;

static tide_poll_t os_task_poll(tide_future_t *f, tide_cx_t *cx) {
    os_task_t *t = TIDE_CONTAINER_OF(f, os_task_t, fut);
    TIDE_BEGIN(&t->co);
    TIDE_AWAIT(&t->co, cx, tide_oneshot_recv(&t->r, t->o));
    if (tide_async_result(&t->co) == 0)
        t->got = tide_oneshot_recv_value(&t->r); /* o may be freed now */
    TIDE_END(&t->co, f, tide_async_result(&t->co));
}
static void os_task_drop(tide_future_t *f) {
    os_task_t *t = TIDE_CONTAINER_OF(f, os_task_t, fut);
    tide_async_drop(&t->co);
}
static const tide_future_vtable_t os_task_vt = {os_task_poll, os_task_drop};

static void free_release(tide_oneshot_t *o, void *arg) {
    (void)arg;
    free(o);
    atomic_fetch_add(&released, 1);
}

typedef struct os_thread_arg {
    tide_oneshot_t *o;
    int round;
} os_thread_arg_t;

static void *os_sender(void *arg) {
    os_thread_arg_t *a = arg;
    if (a->round % 3 == 0)
        sched_yield(); /* sometimes after the receiver waits, sometimes before */
    if (a->round % 5 == 4)
        tide_oneshot_close(a->o);
    else
        (void)tide_oneshot_send(a->o, a->round);
    return NULL;
}

START_TEST(test_oneshot_from_threads) {
    /* the struct is on the heap and released by whichever end is last */
    tide_exec_t *ex = t_exec_new();
    atomic_store(&released, 0);
    const int rounds = 300;
    for (int i = 0; i < rounds; i++) {
        tide_oneshot_t *o = malloc(sizeof *o);
        tide_oneshot_init(o, free_release, NULL);
        os_thread_arg_t a = {o, i};
        os_task_t t = {.o = o, .got = -1};
        tide_future_init(&t.fut, &os_task_vt);
        pthread_t th;
        t_assert_int_eq_at(i, pthread_create(&th, NULL, os_sender, &a), 0);
        intptr_t r = t_run(ex, &t.fut);
        pthread_join(th, NULL);
        if (i % 5 == 4)
            t_assert_int_eq_at(i, r, -EPIPE);
        else
            ck_assert_msg(r == 0 && t.got == i, "round %d: %ld, got %ld", i,
                          (long)r, (long)t.got);
    }
    ck_assert_int_eq(atomic_load(&released), rounds);
    t_exec_free_clean(ex);
}
END_TEST

/* ------------------------------------------------------------------------
 * Mpsc
 * ------------------------------------------------------------------------ */

START_TEST(test_mpsc_init_errors_and_enomem) {
    tide_mpsc_t ch;
    ck_assert_int_eq(tide_mpsc_init(NULL, 4, 4), -EINVAL);
    ck_assert_int_eq(tide_mpsc_init(&ch, 0, 4), -EINVAL);
    ck_assert_int_eq(tide_mpsc_init(&ch, 4, 0), -EINVAL);
    ck_assert_int_eq(tide_mpsc_init(&ch, SIZE_MAX / 2, 3), -EOVERFLOW);
    /* the ring is its one allocation: fail it, then succeed */
    unsigned long n;
    int rc;
    for (n = 1; n < 10; n++) {
        tide__alloc_fail_at(0);
        tide__alloc_fail_at(n);
        rc = tide_mpsc_init(&ch, sizeof(int), 16);
        unsigned long made = tide__alloc_fail_at(0);
        if (rc == 0) {
            ck_assert_msg(made < n, "succeeded though allocation %lu failed",
                          n);
            break;
        }
        t_assert_int_eq_at(n, rc, -ENOMEM);
    }
    ck_assert_int_eq(rc, 0);
    ck_assert_uint_eq(n, 2); /* exactly one allocation */
    tide_mpsc_free(&ch);
}
END_TEST

START_TEST(test_mpsc_try_send_recv_order) {
    tide_mpsc_t ch;
    ck_assert_int_eq(tide_mpsc_init(&ch, sizeof(int), 4), 0);
    int v, out;
    ck_assert_int_eq(tide_mpsc_try_recv(&ch, &out), -EAGAIN);
    for (int round = 0; round < 3; round++) { /* around the ring */
        for (v = 0; v < 4; v++)
            t_assert_int_eq_at(v, tide_mpsc_try_send(&ch, &v), 0);
        t_assert_int_eq_at(round, tide_mpsc_try_send(&ch, &v), -EAGAIN);
        t_assert_uint_eq_at(round, tide_mpsc_len(&ch), 4);
        t_assert_int_eq_at(round, tide_mpsc_try_recv(&ch, &out), 1);
        t_assert_int_eq_at(round, out, 0);
        v = 100 + round;
        t_assert_int_eq_at(round, tide_mpsc_try_send(&ch, &v), 0);
        for (int i = 1; i < 4; i++) {
            t_assert_int_eq_at(i, tide_mpsc_try_recv(&ch, &out), 1);
            t_assert_int_eq_at(i, out, i);
        }
        t_assert_int_eq_at(round, tide_mpsc_try_recv(&ch, &out), 1);
        t_assert_int_eq_at(round, out, 100 + round);
    }
    tide_mpsc_close(&ch);
    ck_assert_int_eq(tide_mpsc_try_send(&ch, &v), -EPIPE);
    ck_assert_int_eq(tide_mpsc_try_recv(&ch, &out), 0);
    tide_mpsc_free(&ch);
}
END_TEST

START_TEST(test_mpsc_backpressure_fifo_senders) {
    tide_mpsc_t ch;
    ck_assert_int_eq(tide_mpsc_init(&ch, sizeof(int), 1), 0);
    t_hand_t ha, hb, hr;
    t_hand_init(&ha, NULL);
    t_hand_init(&hb, NULL);
    t_hand_init(&hr, NULL);
    int v0 = 0, va = 1, vb = 2, out = -1;
    ck_assert_int_eq(tide_mpsc_try_send(&ch, &v0), 0);
    tide_mpsc_send_t sa, sb;
    tide_future_t *fa = tide_mpsc_send(&sa, &ch, &va);
    tide_future_t *fb = tide_mpsc_send(&sb, &ch, &vb);
    ck_assert_int_eq(t_hand_poll(&ha, fa), TIDE_PENDING);
    ck_assert_int_eq(t_hand_poll(&hb, fb), TIDE_PENDING);
    /* receive one: the slot is a's (it waited first), b is not woken,
     * and nobody can jump the queue */
    ck_assert_int_eq(tide_mpsc_try_recv(&ch, &out), 1);
    ck_assert_int_eq(out, 0);
    ck_assert_int_eq(t_woken(&ha.count), 1);
    ck_assert_int_eq(t_woken(&hb.count), 0);
    ck_assert_int_eq(tide_mpsc_try_send(&ch, &v0), -EAGAIN);
    ck_assert_int_eq(t_hand_poll(&hb, fb), TIDE_PENDING);
    ck_assert_int_eq(t_hand_poll(&ha, fa), TIDE_READY);
    ck_assert_int_eq(fa->result, 0);
    tide_future_drop(fa);
    /* a receive future gets a's item and hands the slot to b */
    tide_mpsc_recv_t r;
    tide_future_t *fr = tide_mpsc_recv(&r, &ch, &out);
    ck_assert_int_eq(t_hand_poll(&hr, fr), TIDE_READY);
    ck_assert_int_eq(fr->result, 1);
    ck_assert_int_eq(out, 1);
    tide_future_drop(fr);
    ck_assert_int_eq(t_woken(&hb.count), 1);
    ck_assert_int_eq(t_hand_poll(&hb, fb), TIDE_READY);
    tide_future_drop(fb);
    /* a receive that waits is woken by a send */
    ck_assert_int_eq(tide_mpsc_try_recv(&ch, &out), 1);
    ck_assert_int_eq(out, 2);
    fr = tide_mpsc_recv(&r, &ch, &out);
    ck_assert_int_eq(t_hand_poll(&hr, fr), TIDE_PENDING);
    /* one receiver: a second receive is refused */
    tide_mpsc_recv_t r2;
    ck_assert_int_eq(t_hand_poll(&hr, tide_mpsc_recv(&r2, &ch, &out)),
                     TIDE_READY);
    ck_assert_int_eq(r2.fut.result, -EBUSY);
    tide_future_drop(&r2.fut);
    int w0 = t_woken(&hr.count);
    ck_assert_int_eq(tide_mpsc_try_send(&ch, &va), 0);
    ck_assert_int_eq(t_woken(&hr.count), w0 + 1);
    ck_assert_int_eq(t_hand_poll(&hr, fr), TIDE_READY);
    ck_assert_int_eq(out, 1);
    tide_future_drop(fr);
    tide_mpsc_free(&ch);
    t_hand_done(&ha);
    t_hand_done(&hb);
    t_hand_done(&hr);
}
END_TEST

START_TEST(test_mpsc_dropped_granted_sender_passes_slot) {
    tide_mpsc_t ch;
    ck_assert_int_eq(tide_mpsc_init(&ch, sizeof(int), 1), 0);
    t_hand_t ha, hb;
    t_hand_init(&ha, NULL);
    t_hand_init(&hb, NULL);
    int v0 = 0, va = 1, vb = 2, out = -1;
    ck_assert_int_eq(tide_mpsc_try_send(&ch, &v0), 0);
    tide_mpsc_send_t sa, sb;
    tide_future_t *fa = tide_mpsc_send(&sa, &ch, &va);
    tide_future_t *fb = tide_mpsc_send(&sb, &ch, &vb);
    ck_assert_int_eq(t_hand_poll(&ha, fa), TIDE_PENDING);
    ck_assert_int_eq(t_hand_poll(&hb, fb), TIDE_PENDING);
    ck_assert_int_eq(tide_mpsc_try_recv(&ch, &out), 1);
    ck_assert_int_eq(t_woken(&ha.count), 1);
    tide_future_drop(fa); /* given the slot, dropped before using it */
    ck_assert_int_eq(t_woken(&hb.count), 1);
    ck_assert_int_eq(t_hand_poll(&hb, fb), TIDE_READY);
    tide_future_drop(fb);
    ck_assert_int_eq(tide_mpsc_try_recv(&ch, &out), 1);
    ck_assert_int_eq(out, 2); /* a's item was never sent */
    ck_assert_int_eq(tide_mpsc_try_recv(&ch, &out), -EAGAIN);
    tide_mpsc_free(&ch);
    t_hand_done(&ha);
    t_hand_done(&hb);
}
END_TEST

START_TEST(test_mpsc_close_from_either_side) {
    tide_mpsc_t ch;
    ck_assert_int_eq(tide_mpsc_init(&ch, sizeof(int), 2), 0);
    t_hand_t hs, hr;
    t_hand_init(&hs, NULL);
    t_hand_init(&hr, NULL);
    int v = 5, out = -1;
    ck_assert_int_eq(tide_mpsc_try_send(&ch, &v), 0);
    ck_assert_int_eq(tide_mpsc_try_send(&ch, &v), 0);
    tide_mpsc_send_t s;
    tide_future_t *fs = tide_mpsc_send(&s, &ch, &v);
    ck_assert_int_eq(t_hand_poll(&hs, fs), TIDE_PENDING);
    tide_mpsc_close(&ch); /* the receiver closes: the waiting sender fails */
    ck_assert_int_eq(t_woken(&hs.count), 1);
    ck_assert_int_eq(t_hand_poll(&hs, fs), TIDE_READY);
    ck_assert_int_eq(fs->result, -EPIPE);
    tide_future_drop(fs);
    /* what was sent before the close is still received, then 0 */
    tide_mpsc_recv_t r;
    for (int i = 0; i < 2; i++) {
        t_assert_int_eq_at(i, t_hand_poll(&hr, tide_mpsc_recv(&r, &ch, &out)),
                           TIDE_READY);
        t_assert_int_eq_at(i, r.fut.result, 1);
        tide_future_drop(&r.fut);
    }
    ck_assert_int_eq(t_hand_poll(&hr, tide_mpsc_recv(&r, &ch, &out)),
                     TIDE_READY);
    ck_assert_int_eq(r.fut.result, 0);
    tide_future_drop(&r.fut);
    tide_mpsc_free(&ch);

    /* a sender closes: the waiting receiver wakes and sees the end */
    ck_assert_int_eq(tide_mpsc_init(&ch, sizeof(int), 2), 0);
    ck_assert_int_eq(t_hand_poll(&hr, tide_mpsc_recv(&r, &ch, &out)),
                     TIDE_PENDING);
    int w0 = t_woken(&hr.count);
    tide_mpsc_close(&ch);
    ck_assert_int_eq(t_woken(&hr.count), w0 + 1);
    ck_assert_int_eq(t_hand_poll(&hr, &r.fut), TIDE_READY);
    ck_assert_int_eq(r.fut.result, 0);
    tide_future_drop(&r.fut);
    tide_mpsc_free(&ch);
    t_hand_done(&hs);
    t_hand_done(&hr);
}
END_TEST

START_TEST(test_mpsc_free_under_waiters) {
    tide_mpsc_t *ch = malloc(sizeof *ch);
    ck_assert_int_eq(tide_mpsc_init(ch, sizeof(int), 1), 0);
    t_hand_t hs, hr;
    t_hand_init(&hs, NULL);
    t_hand_init(&hr, NULL);
    int v = 1, out;
    tide_mpsc_recv_t r;
    ck_assert_int_eq(t_hand_poll(&hr, tide_mpsc_recv(&r, ch, &out)),
                     TIDE_PENDING);
    tide_mpsc_free(ch);
    free(ch); /* the futures must not touch it again (ASan says) */
    ck_assert_int_eq(t_woken(&hr.count), 1);
    ck_assert_int_eq(t_hand_poll(&hr, &r.fut), TIDE_READY);
    ck_assert_int_eq(r.fut.result, -EPIPE);
    tide_future_drop(&r.fut);

    ch = malloc(sizeof *ch);
    ck_assert_int_eq(tide_mpsc_init(ch, sizeof(int), 1), 0);
    ck_assert_int_eq(tide_mpsc_try_send(ch, &v), 0);
    tide_mpsc_send_t s1, s2;
    ck_assert_int_eq(t_hand_poll(&hs, tide_mpsc_send(&s1, ch, &v)),
                     TIDE_PENDING);
    ck_assert_int_eq(t_hand_poll(&hs, tide_mpsc_send(&s2, ch, &v)),
                     TIDE_PENDING);
    ck_assert_int_eq(tide_mpsc_try_recv(ch, &out),
                     1); /* s1 is given the slot */
    tide_mpsc_free(ch);
    free(ch);
    ck_assert_int_eq(t_hand_poll(&hs, &s1.fut), TIDE_READY);
    ck_assert_int_eq(s1.fut.result, -EPIPE);
    tide_future_drop(&s1.fut);
    tide_future_drop(&s2.fut); /* dropped without a poll after the free */
    ck_assert_int_eq(s2.fut.result, 0);
    t_hand_done(&hs);
    t_hand_done(&hr);
}
END_TEST

/* Two tasks on one executor: a producer and a consumer. */
typedef struct prod {
    tide_future_t fut;
    tide_async_t co;
    tide_mpsc_t *ch;
    tide_mpsc_send_t send;
    int i, n, tag;
    uint64_t item;
} prod_t;

static tide_poll_t prod_poll(tide_future_t *f, tide_cx_t *cx) {
    prod_t *p = TIDE_CONTAINER_OF(f, prod_t, fut);
    TIDE_BEGIN(&p->co);
    for (p->i = 0; p->i < p->n; p->i++) {
        p->item = ((uint64_t)p->tag << 32) | (uint64_t)p->i;
        TIDE_AWAIT(&p->co, cx, tide_mpsc_send(&p->send, p->ch, &p->item));
        if (tide_async_result(&p->co) != 0)
            TIDE_RETURN(&p->co, f, tide_async_result(&p->co));
    }
    TIDE_END(&p->co, f, 0);
}
static void prod_drop(tide_future_t *f) {
    tide_async_drop(&TIDE_CONTAINER_OF(f, prod_t, fut)->co);
}
static const tide_future_vtable_t prod_vt = {prod_poll, prod_drop};

#define MAXTAG 8
typedef struct cons {
    tide_future_t fut;
    tide_async_t co;
    tide_mpsc_t *ch;
    tide_mpsc_recv_t recv;
    uint64_t item;
    int next[MAXTAG]; /* the next sequence number expected from each tag */
    int total, bad;
    int close_after; /* close the channel after this many (0: never) */
} cons_t;

static tide_poll_t cons_poll(tide_future_t *f, tide_cx_t *cx) {
    cons_t *c = TIDE_CONTAINER_OF(f, cons_t, fut);
    TIDE_BEGIN(&c->co);
    for (;;) {
        TIDE_AWAIT(&c->co, cx, tide_mpsc_recv(&c->recv, c->ch, &c->item));
        if (tide_async_result(&c->co) != 1)
            break;
        unsigned tag = (unsigned)(c->item >> 32);
        int seq = (int)(c->item & 0xffffffffu);
        if (tag >= MAXTAG || seq != c->next[tag])
            c->bad++;
        else
            c->next[tag]++;
        if (++c->total == c->close_after)
            tide_mpsc_close(c->ch);
    }
    TIDE_END(&c->co, f, tide_async_result(&c->co));
}
static void cons_drop(tide_future_t *f) {
    tide_async_drop(&TIDE_CONTAINER_OF(f, cons_t, fut)->co);
}
static const tide_future_vtable_t cons_vt = {cons_poll, cons_drop};

START_TEST(test_mpsc_tasks_backpressure) {
    tide_exec_t *ex = t_exec_new();
    tide_mpsc_t ch;
    ck_assert_int_eq(tide_mpsc_init(&ch, sizeof(uint64_t), 8), 0);
    prod_t p[3];
    tide_join_t j[3];
    for (int k = 0; k < 3; k++) {
        p[k] = (prod_t){.ch = &ch, .n = 20000, .tag = k};
        tide_future_init(&p[k].fut, &prod_vt);
        t_assert_int_eq_at(k, tide_spawn(ex, &p[k].fut, &j[k]), 0);
    }
    cons_t c = {.ch = &ch, .close_after = 3 * 20000};
    tide_future_init(&c.fut, &cons_vt);
    ck_assert_int_eq(t_run(ex, &c.fut), 0);
    ck_assert_int_eq(c.bad, 0);
    for (int k = 0; k < 3; k++) {
        t_assert_int_eq_at(k, c.next[k], 20000);
        t_assert_int_eq_at(k, t_run(ex, tide_join(&j[k])), 0);
    }
    tide_mpsc_free(&ch);
    t_exec_free_clean(ex);
}
END_TEST

typedef struct mt_arg {
    tide_mpsc_t *ch;
    int tag, n, sent, refused;
    bool blocking;
} mt_arg_t;

static void *mt_sender(void *arg) {
    mt_arg_t *a = arg;
    for (int i = 0; i < a->n; i++) {
        uint64_t item = ((uint64_t)a->tag << 32) | (uint64_t)i;
        int rc;
        if (a->blocking) {
            rc = tide_mpsc_send_blocking(a->ch, &item);
        } else {
            /* bounded: a full channel is retried, at most ~10 s */
            uint64_t deadline = tide_now() + 10000000u;
            while ((rc = tide_mpsc_try_send(a->ch, &item)) == -EAGAIN &&
                   tide_now() < deadline) {
                a->refused++;
                sched_yield();
            }
        }
        if (rc != 0)
            break;
        a->sent++;
    }
    return NULL;
}

START_TEST(test_mpsc_threads_to_task) {
    tide_exec_t *ex = t_exec_new();
    tide_mpsc_t ch;
    ck_assert_int_eq(tide_mpsc_init(&ch, sizeof(uint64_t), 16), 0);
    enum { NT = 4, N = 5000 };
    mt_arg_t a[NT + 1];
    pthread_t th[NT];
    for (int k = 0; k < NT; k++) {
        a[k] = (mt_arg_t){.ch = &ch, .tag = k, .n = N, .blocking = k % 2 == 0};
        t_assert_int_eq_at(k, pthread_create(&th[k], NULL, mt_sender, &a[k]),
                           0);
    }
    /* and a task of the executor among them */
    prod_t p = {.ch = &ch, .n = N, .tag = NT};
    tide_future_init(&p.fut, &prod_vt);
    tide_join_t j;
    ck_assert_int_eq(tide_spawn(ex, &p.fut, &j), 0);
    cons_t c = {.ch = &ch, .close_after = (NT + 1) * N};
    tide_future_init(&c.fut, &cons_vt);
    ck_assert_int_eq(t_run(ex, &c.fut), 0);
    for (int k = 0; k < NT; k++) {
        pthread_join(th[k], NULL);
        ck_assert_msg(a[k].sent == N, "thread %d sent %d of %d", k, a[k].sent,
                      N);
    }
    ck_assert_int_eq(t_run(ex, tide_join(&j)), 0);
    ck_assert_int_eq(c.bad, 0);
    ck_assert_int_eq(c.total, (NT + 1) * N);
    tide_mpsc_free(&ch);
    t_exec_free_clean(ex);
}
END_TEST

static void *blocked_sender(void *arg) {
    mt_arg_t *a = arg;
    uint64_t item = 1;
    a->sent = tide_mpsc_send_blocking(a->ch, &item); /* the result */
    return NULL;
}

START_TEST(test_mpsc_send_blocking_released_by_close) {
    tide_mpsc_t ch;
    ck_assert_int_eq(tide_mpsc_init(&ch, sizeof(uint64_t), 1), 0);
    uint64_t item = 0;
    ck_assert_int_eq(tide_mpsc_try_send(&ch, &item), 0);
    mt_arg_t a = {.ch = &ch, .sent = 1};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, blocked_sender, &a), 0);
    /* wait (bounded) until it is queued, then close under it */
    uint64_t deadline = tide_now() + 5000000u;
    for (;;) {
        pthread_mutex_lock(&ch.lock); /* white-box: is it waiting yet */
        bool queued = ch.waiters.next != &ch.waiters;
        pthread_mutex_unlock(&ch.lock);
        if (queued || tide_now() > deadline)
            break;
        sched_yield();
    }
    tide_mpsc_close(&ch);
    pthread_join(th, NULL);
    ck_assert_int_eq(a.sent, -EPIPE);
    tide_mpsc_free(&ch);
}
END_TEST

/* ------------------------------------------------------------------------
 * Notify
 * ------------------------------------------------------------------------ */

START_TEST(test_notify_one_stores_one_permit) {
    tide_notify_t n;
    ck_assert_int_eq(tide_notify_init(&n), 0);
    t_hand_t h;
    t_hand_init(&h, NULL);
    tide_notify_one(&n);
    tide_notify_one(&n); /* permits do not add up */
    tide_notified_t a;
    ck_assert_int_eq(t_hand_poll(&h, tide_notified(&a, &n)), TIDE_READY);
    ck_assert_int_eq(a.fut.result, 0);
    tide_future_drop(&a.fut);
    ck_assert_int_eq(t_hand_poll(&h, tide_notified(&a, &n)), TIDE_PENDING);
    ck_assert_int_eq(t_woken(&h.count), 0);
    tide_future_drop(&a.fut);
    /* notify_waiters stores nothing */
    tide_notify_waiters(&n);
    ck_assert_int_eq(t_hand_poll(&h, tide_notified(&a, &n)), TIDE_PENDING);
    tide_future_drop(&a.fut);
    tide_notify_free(&n);
    t_hand_done(&h);
}
END_TEST

START_TEST(test_notify_one_wakes_in_order) {
    tide_notify_t n;
    ck_assert_int_eq(tide_notify_init(&n), 0);
    t_hand_t h[3];
    tide_notified_t w[3];
    for (int i = 0; i < 3; i++) {
        t_hand_init(&h[i], NULL);
        t_assert_int_eq_at(i, t_hand_poll(&h[i], tide_notified(&w[i], &n)),
                           TIDE_PENDING);
    }
    for (int i = 0; i < 3; i++) {
        tide_notify_one(&n);
        for (int k = 0; k < 3; k++)
            ck_assert_msg(t_woken(&h[k].count) == (k <= i),
                          "notify %d: waiter %d woken %d times", i, k,
                          t_woken(&h[k].count));
        t_assert_int_eq_at(i, t_hand_poll(&h[i], &w[i].fut), TIDE_READY);
        tide_future_drop(&w[i].fut);
    }
    tide_notify_free(&n);
    for (int i = 0; i < 3; i++)
        t_hand_done(&h[i]);
}
END_TEST

START_TEST(test_notify_waiters_wakes_all_present) {
    tide_notify_t n;
    ck_assert_int_eq(tide_notify_init(&n), 0);
    enum { NW = 40 }; /* more than one batch of wakes */
    t_hand_t h[NW];
    tide_notified_t w[NW];
    for (int i = 0; i < NW; i++) {
        t_hand_init(&h[i], NULL);
        t_assert_int_eq_at(i, t_hand_poll(&h[i], tide_notified(&w[i], &n)),
                           TIDE_PENDING);
    }
    tide_notified_t late;
    tide_notified(&late, &n); /* not polled yet: not waiting */
    tide_notify_waiters(&n);
    for (int i = 0; i < NW; i++) {
        t_assert_int_eq_at(i, t_woken(&h[i].count), 1);
        t_assert_int_eq_at(i, t_hand_poll(&h[i], &w[i].fut), TIDE_READY);
        tide_future_drop(&w[i].fut);
    }
    ck_assert_int_eq(t_hand_poll(&h[0], &late.fut), TIDE_PENDING);
    tide_notify_free(&n); /* a waiter left completes with -EPIPE */
    ck_assert_int_eq(t_hand_poll(&h[0], &late.fut), TIDE_READY);
    ck_assert_int_eq(late.fut.result, -EPIPE);
    tide_future_drop(&late.fut);
    for (int i = 0; i < NW; i++)
        t_hand_done(&h[i]);
}
END_TEST

START_TEST(test_notify_dropped_chosen_passes_on) {
    tide_notify_t n;
    ck_assert_int_eq(tide_notify_init(&n), 0);
    t_hand_t ha, hb;
    t_hand_init(&ha, NULL);
    t_hand_init(&hb, NULL);
    tide_notified_t a, b;
    ck_assert_int_eq(t_hand_poll(&ha, tide_notified(&a, &n)), TIDE_PENDING);
    ck_assert_int_eq(t_hand_poll(&hb, tide_notified(&b, &n)), TIDE_PENDING);
    tide_notify_one(&n); /* chooses a */
    ck_assert_int_eq(t_woken(&ha.count), 1);
    tide_future_drop(&a.fut); /* a never saw it: b gets it */
    ck_assert_int_eq(t_woken(&hb.count), 1);
    ck_assert_int_eq(t_hand_poll(&hb, &b.fut), TIDE_READY);
    tide_future_drop(&b.fut);
    /* with nobody left to pass it to, it becomes the permit */
    ck_assert_int_eq(t_hand_poll(&ha, tide_notified(&a, &n)), TIDE_PENDING);
    tide_notify_one(&n);
    tide_future_drop(&a.fut);
    ck_assert_int_eq(t_hand_poll(&ha, tide_notified(&a, &n)), TIDE_READY);
    tide_future_drop(&a.fut);
    /* one woken by notify_waiters and dropped passes nothing on */
    ck_assert_int_eq(t_hand_poll(&ha, tide_notified(&a, &n)), TIDE_PENDING);
    tide_notify_waiters(&n);
    tide_future_drop(&a.fut);
    ck_assert_int_eq(t_hand_poll(&ha, tide_notified(&a, &n)), TIDE_PENDING);
    tide_future_drop(&a.fut);
    tide_notify_free(&n);
    t_hand_done(&ha);
    t_hand_done(&hb);
}
END_TEST

/* A task that awaits n notifications, counting them. */
typedef struct nt_task {
    tide_future_t fut;
    tide_async_t co;
    tide_notify_t *n;
    tide_notified_t w;
    atomic_int seen;
    int want;
} nt_task_t;

static tide_poll_t nt_task_poll(tide_future_t *f, tide_cx_t *cx) {
    nt_task_t *t = TIDE_CONTAINER_OF(f, nt_task_t, fut);
    TIDE_BEGIN(&t->co);
    while (atomic_load(&t->seen) < t->want) {
        TIDE_AWAIT(&t->co, cx, tide_notified(&t->w, t->n));
        if (tide_async_result(&t->co) != 0)
            TIDE_RETURN(&t->co, f, tide_async_result(&t->co));
        atomic_fetch_add(&t->seen, 1);
    }
    TIDE_END(&t->co, f, 0);
}
static void nt_task_drop(tide_future_t *f) {
    tide_async_drop(&TIDE_CONTAINER_OF(f, nt_task_t, fut)->co);
}
static const tide_future_vtable_t nt_task_vt = {nt_task_poll, nt_task_drop};

static void *nt_thread(void *arg) {
    nt_task_t *t = arg;
    /* a ping-pong: each notify waits (bounded) for the task to see it */
    for (int i = 0; i < t->want; i++) {
        tide_notify_one(t->n);
        if (!t_spin_until(&t->seen, i + 1, 5000))
            break;
    }
    return NULL;
}

START_TEST(test_notify_one_from_thread) {
    tide_exec_t *ex = t_exec_new();
    tide_notify_t n;
    ck_assert_int_eq(tide_notify_init(&n), 0);
    nt_task_t t = {.n = &n, .want = 3000};
    atomic_init(&t.seen, 0);
    tide_future_init(&t.fut, &nt_task_vt);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, nt_thread, &t), 0);
    ck_assert_int_eq(t_run(ex, &t.fut), 0);
    pthread_join(th, NULL);
    ck_assert_int_eq(atomic_load(&t.seen), 3000);
    tide_notify_free(&n);
    t_exec_free_clean(ex);
}
END_TEST

/* ------------------------------------------------------------------------
 * Semaphore
 * ------------------------------------------------------------------------ */

START_TEST(test_semaphore_try_and_release) {
    tide_semaphore_t s;
    ck_assert_int_eq(tide_semaphore_init(NULL, 1), -EINVAL);
    ck_assert_int_eq(tide_semaphore_init(&s, TIDE_SEMAPHORE_MAX + 1),
                     -EOVERFLOW);
    ck_assert_int_eq(tide_semaphore_init(&s, 3), 0);
    ck_assert_int_eq(tide_semaphore_try_acquire(&s, 2), 0);
    ck_assert_int_eq(tide_semaphore_try_acquire(&s, 2), -EAGAIN);
    ck_assert_int_eq(tide_semaphore_try_acquire(&s, 0), 0);
    ck_assert_uint_eq(tide_semaphore_available(&s), 1);
    ck_assert_int_eq(tide_semaphore_release(&s, 2), 0);
    ck_assert_uint_eq(tide_semaphore_available(&s), 3);
    ck_assert_int_eq(tide_semaphore_release(&s, TIDE_SEMAPHORE_MAX),
                     -EOVERFLOW);
    ck_assert_uint_eq(tide_semaphore_available(&s), 3);
    t_hand_t h;
    t_hand_init(&h, NULL);
    tide_semaphore_acquire_t a;
    ck_assert_int_eq(t_hand_poll(&h, tide_semaphore_acquire(&a, &s, 3)),
                     TIDE_READY);
    ck_assert_int_eq(a.fut.result, 0);
    tide_future_drop(&a.fut); /* completed: the permits are the caller's */
    ck_assert_uint_eq(tide_semaphore_available(&s), 0);
    ck_assert_int_eq(t_hand_poll(&h, tide_semaphore_acquire(&a, &s, 0)),
                     TIDE_READY);
    tide_future_drop(&a.fut);
    /* more than any semaphore can hold: refused, not waited for ever */
    ck_assert_int_eq(
        t_hand_poll(&h, tide_semaphore_acquire(&a, &s, TIDE_SEMAPHORE_MAX + 1)),
        TIDE_READY);
    ck_assert_int_eq(a.fut.result, -EINVAL);
    tide_future_drop(&a.fut);
    tide_semaphore_close(&s);
    ck_assert_int_eq(tide_semaphore_try_acquire(&s, 0), -EPIPE);
    ck_assert_int_eq(t_hand_poll(&h, tide_semaphore_acquire(&a, &s, 1)),
                     TIDE_READY);
    ck_assert_int_eq(a.fut.result, -EPIPE);
    tide_future_drop(&a.fut);
    tide_semaphore_free(&s);
    t_hand_done(&h);
}
END_TEST

START_TEST(test_semaphore_fifo_large_not_starved) {
    tide_semaphore_t s;
    ck_assert_int_eq(tide_semaphore_init(&s, 2), 0);
    t_hand_t hb, hs;
    t_hand_init(&hb, NULL);
    t_hand_init(&hs, NULL);
    tide_semaphore_acquire_t big, small;
    ck_assert_int_eq(t_hand_poll(&hb, tide_semaphore_acquire(&big, &s, 5)),
                     TIDE_PENDING);
    ck_assert_uint_eq(big.got, 2); /* white-box: it holds what there was */
    ck_assert_uint_eq(tide_semaphore_available(&s), 0);
    ck_assert_int_eq(t_hand_poll(&hs, tide_semaphore_acquire(&small, &s, 1)),
                     TIDE_PENDING);
    /* small ones keep coming and releasing: none gets ahead of big */
    for (int i = 0; i < 2; i++) {
        t_assert_int_eq_at(i, tide_semaphore_try_acquire(&s, 1), -EAGAIN);
        t_assert_int_eq_at(i, tide_semaphore_release(&s, 1), 0);
        t_assert_int_eq_at(i, t_woken(&hb.count), 0);
        t_assert_int_eq_at(i, t_woken(&hs.count), 0);
    }
    ck_assert_int_eq(tide_semaphore_release(&s, 2), 0); /* big has 5, small 1 */
    ck_assert_int_eq(t_woken(&hb.count), 1);
    ck_assert_int_eq(t_woken(&hs.count), 1);
    ck_assert_uint_eq(tide_semaphore_available(&s), 0);
    ck_assert_int_eq(t_hand_poll(&hs, &small.fut), TIDE_READY);
    ck_assert_int_eq(t_hand_poll(&hb, &big.fut), TIDE_READY);
    tide_future_drop(&small.fut);
    tide_future_drop(&big.fut);
    ck_assert_int_eq(tide_semaphore_release(&s, 6), 0);
    ck_assert_uint_eq(tide_semaphore_available(&s), 6);
    tide_semaphore_free(&s);
    t_hand_done(&hb);
    t_hand_done(&hs);
}
END_TEST

START_TEST(test_semaphore_dropped_acquire_gives_back) {
    tide_semaphore_t s;
    ck_assert_int_eq(tide_semaphore_init(&s, 2), 0);
    t_hand_t hb, hs;
    t_hand_init(&hb, NULL);
    t_hand_init(&hs, NULL);
    tide_semaphore_acquire_t big, small;
    ck_assert_int_eq(t_hand_poll(&hb, tide_semaphore_acquire(&big, &s, 5)),
                     TIDE_PENDING);
    ck_assert_int_eq(t_hand_poll(&hs, tide_semaphore_acquire(&small, &s, 1)),
                     TIDE_PENDING);
    tide_future_drop(&big.fut); /* its 2 go on: 1 to small, 1 free */
    ck_assert_int_eq(atomic_load(&hb.count.refs), 1);
    ck_assert_int_eq(t_woken(&hs.count), 1);
    ck_assert_uint_eq(tide_semaphore_available(&s), 1);
    /* small was given its permit and is dropped before it saw it */
    tide_future_drop(&small.fut);
    ck_assert_uint_eq(tide_semaphore_available(&s), 2);
    tide_semaphore_free(&s);
    t_hand_done(&hb);
    t_hand_done(&hs);
}
END_TEST

START_TEST(test_semaphore_close_and_free_under_waiters) {
    tide_semaphore_t *s = malloc(sizeof *s);
    ck_assert_int_eq(tide_semaphore_init(s, 1), 0);
    t_hand_t h;
    t_hand_init(&h, NULL);
    tide_semaphore_acquire_t a, b, c;
    ck_assert_int_eq(t_hand_poll(&h, tide_semaphore_acquire(&a, s, 2)),
                     TIDE_PENDING);
    ck_assert_int_eq(t_hand_poll(&h, tide_semaphore_acquire(&b, s, 1)),
                     TIDE_PENDING);
    tide_semaphore_close(s);
    ck_assert_uint_eq(tide_semaphore_available(s), 1); /* a's partial one */
    ck_assert_int_eq(t_hand_poll(&h, &a.fut), TIDE_READY);
    ck_assert_int_eq(a.fut.result, -EPIPE);
    ck_assert_int_eq(t_hand_poll(&h, &b.fut), TIDE_READY);
    ck_assert_int_eq(b.fut.result, -EPIPE);
    tide_future_drop(&a.fut);
    tide_future_drop(&b.fut);
    tide_semaphore_free(s);
    free(s);

    s = malloc(sizeof *s);
    ck_assert_int_eq(tide_semaphore_init(s, 0), 0);
    ck_assert_int_eq(t_hand_poll(&h, tide_semaphore_acquire(&a, s, 1)),
                     TIDE_PENDING);
    ck_assert_int_eq(t_hand_poll(&h, tide_semaphore_acquire(&b, s, 1)),
                     TIDE_PENDING);
    ck_assert_int_eq(t_hand_poll(&h, tide_semaphore_acquire(&c, s, 1)),
                     TIDE_PENDING);
    ck_assert_int_eq(tide_semaphore_release(s, 1), 0); /* a is granted */
    tide_semaphore_free(s);
    free(s);
    ck_assert_int_eq(t_hand_poll(&h, &a.fut), TIDE_READY);
    ck_assert_int_eq(a.fut.result, -EPIPE);
    ck_assert_int_eq(t_hand_poll(&h, &b.fut), TIDE_READY);
    ck_assert_int_eq(b.fut.result, -EPIPE);
    tide_future_drop(&a.fut);
    tide_future_drop(&b.fut);
    tide_future_drop(&c.fut); /* not polled again: touches nothing */
    t_hand_done(&h);
}
END_TEST

/* Tasks that acquire k permits, hold them across a yield, release. */
typedef struct sem_task {
    tide_future_t fut;
    tide_async_t co;
    tide_semaphore_t *s;
    tide_semaphore_acquire_t acq;
    tide_yield_t y;
    atomic_int *in_use;
    int cap, k, i, n, over;
} sem_task_t;

static tide_poll_t sem_task_poll(tide_future_t *f, tide_cx_t *cx) {
    sem_task_t *t = TIDE_CONTAINER_OF(f, sem_task_t, fut);
    TIDE_BEGIN(&t->co);
    for (t->i = 0; t->i < t->n; t->i++) {
        TIDE_AWAIT(&t->co, cx,
                   tide_semaphore_acquire(&t->acq, t->s, (size_t)t->k));
        if (tide_async_result(&t->co) != 0)
            TIDE_RETURN(&t->co, f, tide_async_result(&t->co));
        if (atomic_fetch_add(t->in_use, t->k) + t->k > t->cap)
            t->over++;
        TIDE_AWAIT(&t->co, cx, tide_yield(&t->y));
        atomic_fetch_sub(t->in_use, t->k);
        tide_semaphore_release(t->s, (size_t)t->k);
    }
    TIDE_END(&t->co, f, 0);
}
static void sem_task_drop(tide_future_t *f) {
    tide_async_drop(&TIDE_CONTAINER_OF(f, sem_task_t, fut)->co);
}
static const tide_future_vtable_t sem_task_vt = {sem_task_poll, sem_task_drop};

typedef struct sem_thread {
    tide_semaphore_t *s;
    atomic_int *in_use;
    int cap, n, done, over;
} sem_thread_t;

static void *sem_thread(void *arg) {
    sem_thread_t *a = arg;
    uint64_t deadline = tide_now() + 10000000u;
    while (a->done < a->n && tide_now() < deadline) {
        if (tide_semaphore_try_acquire(a->s, 1) != 0) {
            sched_yield();
            continue;
        }
        if (atomic_fetch_add(a->in_use, 1) + 1 > a->cap)
            a->over++;
        atomic_fetch_sub(a->in_use, 1);
        tide_semaphore_release(a->s, 1);
        a->done++;
    }
    return NULL;
}

START_TEST(test_semaphore_tasks_and_threads) {
    tide_exec_t *ex = t_exec_new();
    enum { CAP = 4, NTASK = 6, NTH = 3 };
    tide_semaphore_t s;
    ck_assert_int_eq(tide_semaphore_init(&s, CAP), 0);
    atomic_int in_use;
    atomic_init(&in_use, 0);
    sem_task_t t[NTASK];
    tide_join_t j[NTASK];
    for (int i = 0; i < NTASK; i++) {
        t[i] = (sem_task_t){
            .s = &s, .in_use = &in_use, .cap = CAP, .k = 1 + i % CAP, .n = 500};
        tide_future_init(&t[i].fut, &sem_task_vt);
        t_assert_int_eq_at(i, tide_spawn(ex, &t[i].fut, &j[i]), 0);
    }
    sem_thread_t a[NTH];
    pthread_t th[NTH];
    for (int i = 0; i < NTH; i++) {
        a[i] =
            (sem_thread_t){.s = &s, .in_use = &in_use, .cap = CAP, .n = 2000};
        t_assert_int_eq_at(i, pthread_create(&th[i], NULL, sem_thread, &a[i]),
                           0);
    }
    for (int i = 0; i < NTASK; i++) {
        t_assert_int_eq_at(i, t_run(ex, tide_join(&j[i])), 0);
        t_assert_int_eq_at(i, t[i].over, 0);
    }
    for (int i = 0; i < NTH; i++) {
        pthread_join(th[i], NULL);
        t_assert_int_eq_at(i, a[i].over, 0);
        t_assert_int_eq_at(i, a[i].done, 2000);
    }
    ck_assert_uint_eq(tide_semaphore_available(&s), CAP);
    tide_semaphore_free(&s);
    t_exec_free_clean(ex);
}
END_TEST

static Suite *sync_suite(void) {
    Suite *s = suite_create("sync");
    TCase *tc = t_tcase(s, "oneshot", 30);
    tcase_add_test(tc, test_oneshot_send_before_recv);
    tcase_add_test(tc, test_oneshot_recv_waits_for_send);
    tcase_add_test(tc, test_oneshot_sender_closed_is_epipe);
    tcase_add_test(tc, test_oneshot_receiver_dropped_send_fails);
    tcase_add_test(tc, test_oneshot_from_threads);

    tc = t_tcase(s, "mpsc", 60);
    tcase_add_test(tc, test_mpsc_init_errors_and_enomem);
    tcase_add_test(tc, test_mpsc_try_send_recv_order);
    tcase_add_test(tc, test_mpsc_backpressure_fifo_senders);
    tcase_add_test(tc, test_mpsc_dropped_granted_sender_passes_slot);
    tcase_add_test(tc, test_mpsc_close_from_either_side);
    tcase_add_test(tc, test_mpsc_free_under_waiters);
    tcase_add_test(tc, test_mpsc_tasks_backpressure);
    tcase_add_test(tc, test_mpsc_threads_to_task);
    tcase_add_test(tc, test_mpsc_send_blocking_released_by_close);

    tc = t_tcase(s, "notify", 30);
    tcase_add_test(tc, test_notify_one_stores_one_permit);
    tcase_add_test(tc, test_notify_one_wakes_in_order);
    tcase_add_test(tc, test_notify_waiters_wakes_all_present);
    tcase_add_test(tc, test_notify_dropped_chosen_passes_on);
    tcase_add_test(tc, test_notify_one_from_thread);

    tc = t_tcase(s, "semaphore", 60);
    tcase_add_test(tc, test_semaphore_try_and_release);
    tcase_add_test(tc, test_semaphore_fifo_large_not_starved);
    tcase_add_test(tc, test_semaphore_dropped_acquire_gives_back);
    tcase_add_test(tc, test_semaphore_close_and_free_under_waiters);
    tcase_add_test(tc, test_semaphore_tasks_and_threads);
    return s;
}

int main(void) { return t_run_suite(sync_suite()); }
