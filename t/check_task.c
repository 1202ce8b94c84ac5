/*
 * t/check_task.c: cancellation tokens, scopes, spawning from other
 * threads, the blocking pool.
 */
#include "testutil.h"

#include <tide/task.h>

/* The children of the scopes below are naps (testutil.h's t_nap). */
#define MS TIDE_USEC_PER_MSEC

/* ------------------------------------------------------------------------
 * Tokens
 * ------------------------------------------------------------------------ */

START_TEST(test_token_cancel_wakes_every_waiter) {
    tide_exec_t *ex = t_exec_new();
    tide_token_t tok;
    tide_token_init(&tok);
    ck_assert(!tide_token_is_cancelled(&tok));
    t_hand_t h1, h2;
    t_hand_init(&h1, ex);
    t_hand_init(&h2, ex);
    tide_token_wait_t w1, w2;
    tide_future_t *f1 = tide_token_cancelled(&w1, &tok);
    tide_future_t *f2 = tide_token_cancelled(&w2, &tok);
    ck_assert_int_eq(t_hand_poll(&h1, f1), TIDE_PENDING);
    ck_assert_int_eq(t_hand_poll(&h2, f2), TIDE_PENDING);
    ck_assert_uint_eq(tide_waitq_len(&tok.q), 2);
    tide_token_cancel(&tok);
    tide_token_cancel(&tok); /* idempotent: no second wake */
    ck_assert(tide_token_is_cancelled(&tok));
    ck_assert_int_eq(t_woken(&h1.count), 1);
    ck_assert_int_eq(t_woken(&h2.count), 1);
    ck_assert_int_eq(t_hand_poll(&h1, f1), TIDE_READY);
    ck_assert_int_eq(f1->result, 0);
    ck_assert_int_eq(t_hand_poll(&h2, f2), TIDE_READY);
    tide_future_drop(f1);
    tide_future_drop(f2);
    /* a late waiter is ready at once */
    tide_token_wait_t w3;
    tide_future_t *f3 = tide_token_cancelled(&w3, &tok);
    ck_assert_int_eq(t_hand_poll(&h1, f3), TIDE_READY);
    tide_future_drop(f3);
    tide_token_free(&tok);
    t_hand_done(&h1);
    t_hand_done(&h2);
    t_exec_free_clean(ex);
}
END_TEST

START_TEST(test_token_free_completes_waiters_with_ebadf) {
    tide_exec_t *ex = t_exec_new();
    tide_token_t tok;
    tide_token_init(&tok);
    t_hand_t h;
    t_hand_init(&h, ex);
    tide_token_wait_t w;
    tide_future_t *f = tide_token_cancelled(&w, &tok);
    ck_assert_int_eq(t_hand_poll(&h, f), TIDE_PENDING);
    tide_token_free(&tok);
    ck_assert_int_eq(t_woken(&h.count), 1);
    ck_assert_int_eq(t_hand_poll(&h, f), TIDE_READY);
    ck_assert_int_eq(f->result, -EBADF);
    tide_future_drop(f);
    t_hand_done(&h);
    t_exec_free_clean(ex);
}
END_TEST

/* ------------------------------------------------------------------------
 * Scopes
 * ------------------------------------------------------------------------ */

START_TEST(test_scope_wait_waits_for_every_child) {
    tide_exec_t *ex = t_exec_new();
    tide_scope_t s;
    ck_assert_int_eq(tide_scope_init(&s, ex, 0), 0);
    t_nap_t n[3];
    int drops = 0, done = 0;
    for (int i = 0; i < 3; i++)
        t_assert_int_eq_at(
            i,
            tide_scope_spawn(
                &s, t_nap(&n[i], (uint64_t)(i + 1) * 3 * MS, i, &drops, &done),
                NULL),
            0);
    ck_assert_uint_eq(tide_scope_len(&s), 3);
    tide_scope_wait_t w;
    ck_assert_int_eq(t_run(ex, tide_scope_wait(&w, &s)), 0);
    ck_assert_int_eq(done, 3);
    ck_assert_int_eq(drops, 3);
    ck_assert_uint_eq(tide_scope_len(&s), 0);
    /* an empty scope is ready at once */
    ck_assert_int_eq(t_run(ex, tide_scope_wait(&w, &s)), 0);
    tide_scope_free(&s);
    t_exec_free_clean(ex);
}
END_TEST

START_TEST(test_scope_cancel_aborts_children_at_pending_point) {
    tide_exec_t *ex = t_exec_new();
    tide_scope_t s;
    ck_assert_int_eq(tide_scope_init(&s, ex, 0), 0);
    t_nap_t n[4];
    tide_join_t j;
    int drops = 0;
    for (int i = 0; i < 4; i++)
        t_assert_int_eq_at(
            i,
            tide_scope_spawn(&s, t_nap(&n[i], T_NAP_FOREVER, 0, &drops, NULL),
                             i == 0 ? &j : NULL),
            0);
    ck_assert_int_eq(t_run_for(tide_exec_base(ex), 5), 0);
    ck_assert_int_eq(drops, 0);
    tide_token_wait_t tw;
    t_hand_t h;
    t_hand_init(&h, ex);
    tide_future_t *tf = tide_token_cancelled(&tw, tide_scope_token(&s));
    ck_assert_int_eq(t_hand_poll(&h, tf), TIDE_PENDING);
    tide_scope_cancel(&s);
    ck_assert(tide_token_is_cancelled(tide_scope_token(&s)));
    ck_assert_int_eq(t_woken(&h.count), 1);
    ck_assert_int_eq(t_hand_poll(&h, tf), TIDE_READY);
    tide_future_drop(tf);
    tide_scope_wait_t w;
    ck_assert_int_eq(t_run(ex, tide_scope_wait(&w, &s)), -ECANCELED);
    ck_assert_int_eq(drops, 4);
    ck_assert_int_eq(t_run(ex, tide_join(&j)), -ECANCELED);
    /* a cancelled scope takes no new child */
    t_nap_t extra;
    ck_assert_int_eq(
        tide_scope_spawn(&s, t_nap(&extra, 1, 0, NULL, NULL), NULL),
        -ECANCELED);
    tide_future_drop(&extra.fut);
    tide_scope_free(&s);
    t_hand_done(&h);
    t_exec_free_clean(ex);
}
END_TEST

/* A token's cancel cancels its scope. */
START_TEST(test_scope_token_cancel_cancels_scope) {
    tide_exec_t *ex = t_exec_new();
    tide_scope_t s;
    ck_assert_int_eq(tide_scope_init(&s, ex, 0), 0);
    t_nap_t n;
    int drops = 0;
    ck_assert_int_eq(
        tide_scope_spawn(&s, t_nap(&n, T_NAP_FOREVER, 0, &drops, NULL), NULL),
        0);
    tide_token_cancel(tide_scope_token(&s));
    tide_scope_wait_t w;
    ck_assert_int_eq(t_run(ex, tide_scope_wait(&w, &s)), -ECANCELED);
    ck_assert_int_eq(drops, 1);
    tide_scope_free(&s);
    t_exec_free_clean(ex);
}
END_TEST

START_TEST(test_scope_deadline_times_out_children) {
    tide_exec_t *ex = t_exec_new();
    tide_scope_t s;
    ck_assert_int_eq(tide_scope_init(&s, ex, 0), 0);
    t_nap_t fast, slow;
    int drops = 0, done = 0;
    ck_assert_int_eq(
        tide_scope_spawn(&s, t_nap(&fast, 2 * MS, 7, &drops, &done), NULL), 0);
    ck_assert_int_eq(
        tide_scope_spawn(&s, t_nap(&slow, T_NAP_FOREVER, 0, &drops, &done),
                         NULL),
        0);
    /* 30 ms in a plain build, scaled (valgrind on a loaded machine took
     * longer than 30 ms to run the 2 ms nap). */
    uint64_t t0 = tide_now(), limit = (uint64_t)t_watchdog_ms(30) * MS;
    ck_assert_int_eq(tide_scope_set_deadline(&s, t0 + limit), 0);
    ck_assert_uint_eq(tide_scope_deadline(&s), t0 + limit);
    tide_scope_wait_t w;
    ck_assert_int_eq(t_run(ex, tide_scope_wait(&w, &s)), -ETIMEDOUT);
    uint64_t el = tide_now() - t0;
    ck_assert_msg(el >= limit, "timed out after %llu us, before its deadline",
                  (unsigned long long)el);
    ck_assert_int_eq(done, 1);
    ck_assert_int_eq(drops, 2);
    tide_scope_free(&s);
    t_exec_free_clean(ex);
}
END_TEST

START_TEST(test_scope_deadline_past_and_removed) {
    tide_exec_t *ex = t_exec_new();
    tide_scope_t s;
    ck_assert_int_eq(tide_scope_init(&s, ex, 0), 0);
    /* removed before it fires: the child completes normally */
    ck_assert_int_eq(tide_scope_set_deadline(&s, tide_now() + 5 * MS), 0);
    ck_assert_int_eq(tide_scope_set_deadline(&s, UINT64_MAX), 0);
    ck_assert_uint_eq(t_stats(ex).armed_events, 0);
    t_nap_t n;
    ck_assert_int_eq(
        tide_scope_spawn(&s, t_nap(&n, 15 * MS, 0, NULL, NULL), NULL), 0);
    tide_scope_wait_t w;
    ck_assert_int_eq(t_run(ex, tide_scope_wait(&w, &s)), 0);
    /* a deadline that has passed cancels at once */
    ck_assert_int_eq(tide_scope_set_deadline(&s, 1), 0);
    ck_assert(tide_token_is_cancelled(tide_scope_token(&s)));
    ck_assert_int_eq(tide_scope_error(&s), -ETIMEDOUT);
    tide_scope_free(&s);
    t_exec_free_clean(ex);
}
END_TEST

/* Nesting: a child task opens a child scope of its parent's; the parent's
 * deadline bounds it and cancels the grandchildren with -ETIMEDOUT. */
typedef struct inner {
    tide_future_t fut;
    tide_async_t co;
    tide_scope_t *parent;
    tide_scope_t sub;
    tide_scope_wait_t w;
    t_nap_t grand[2];
    int *drops;
    uint64_t seen_deadline;
    intptr_t sub_result;
} inner_t;

static tide_poll_t inner_poll(tide_future_t *f, tide_cx_t *cx) {
    inner_t *in = TIDE_CONTAINER_OF(f, inner_t, fut);
    TIDE_BEGIN(&in->co);
    ck_assert_int_eq(tide_scope_init_child(&in->sub, in->parent, 0), 0);
    in->seen_deadline = tide_scope_deadline(&in->sub);
    for (int i = 0; i < 2; i++)
        t_assert_int_eq_at(i,
                           tide_scope_spawn(&in->sub,
                                            t_nap(&in->grand[i], T_NAP_FOREVER,
                                                  0, in->drops, NULL),
                                            NULL),
                           0);
    TIDE_AWAIT(&in->co, cx, tide_scope_wait(&in->w, &in->sub));
    in->sub_result = tide_async_result(&in->co);
    tide_scope_free(&in->sub);
    TIDE_END(&in->co, f, in->sub_result);
}

static void inner_drop(tide_future_t *f) {
    inner_t *in = TIDE_CONTAINER_OF(f, inner_t, fut);
    tide_async_drop(&in->co);
    if (in->co.line != -1 && in->co.line != 0)
        tide_scope_free(&in->sub);
}

static const tide_future_vtable_t inner_vt = {inner_poll, inner_drop};

START_TEST(test_scope_nested_inherits_deadline) {
    tide_exec_t *ex = t_exec_new();
    tide_scope_t top;
    ck_assert_int_eq(tide_scope_init(&top, ex, 0), 0);
    uint64_t dl = tide_now() + 20 * MS;
    ck_assert_int_eq(tide_scope_set_deadline(&top, dl), 0);
    inner_t in;
    memset(&in, 0, sizeof in);
    tide_future_init(&in.fut, &inner_vt);
    int drops = 0;
    in.parent = &top;
    in.drops = &drops;
    tide_join_t j;
    ck_assert_int_eq(tide_scope_spawn(&top, &in.fut, &j), 0);
    tide_scope_wait_t w;
    ck_assert_int_eq(t_run(ex, tide_scope_wait(&w, &top)), -ETIMEDOUT);
    ck_assert_uint_eq(in.seen_deadline, dl);
    ck_assert_int_eq(drops, 2);
    /* the inner task was aborted, or finished with its sub scope's result */
    intptr_t jr = t_run(ex, tide_join(&j));
    ck_assert_msg(jr == -ECANCELED || jr == -ETIMEDOUT, "inner: %ld", (long)jr);
    tide_scope_free(&top);
    t_exec_free_clean(ex);
}
END_TEST

/* Nesting by hand: cancelling the parent cancels a child scope with the
 * parent's reason; freeing the parent first unlinks the child. */
START_TEST(test_scope_nested_cancel_and_free_order) {
    tide_exec_t *ex = t_exec_new();
    tide_scope_t top, sub, sub2;
    ck_assert_int_eq(tide_scope_init(&top, ex, 0), 0);
    ck_assert_int_eq(tide_scope_init_child(&sub, &top, 0), 0);
    ck_assert_int_eq(tide_scope_init_child(&sub2, &top, 0), 0);
    ck_assert_int_eq(tide_scope_set_deadline(&sub, tide_now() + 1000 * MS), 0);
    uint64_t dl = tide_now() + 500 * MS;
    ck_assert_int_eq(tide_scope_set_deadline(&top, dl), 0);
    ck_assert_uint_eq(tide_scope_deadline(&sub), dl); /* the earlier one */
    t_nap_t n;
    int drops = 0;
    ck_assert_int_eq(
        tide_scope_spawn(&sub, t_nap(&n, T_NAP_FOREVER, 0, &drops, NULL), NULL),
        0);
    tide_scope_cancel(&top);
    ck_assert(tide_token_is_cancelled(tide_scope_token(&sub)));
    ck_assert_int_eq(tide_scope_error(&sub), -ECANCELED);
    tide_scope_wait_t w;
    ck_assert_int_eq(t_run(ex, tide_scope_wait(&w, &sub)), -ECANCELED);
    ck_assert_int_eq(drops, 1);
    /* a child scope of a cancelled parent starts cancelled */
    tide_scope_t late;
    ck_assert_int_eq(tide_scope_init_child(&late, &top, 0), 0);
    ck_assert(tide_token_is_cancelled(tide_scope_token(&late)));
    tide_scope_free(&sub);
    tide_scope_free(&top); /* before sub2 and late: unlinks them */
    ck_assert_ptr_null(sub2.parent);
    tide_scope_free(&late);
    tide_scope_free(&sub2);
    t_exec_free_clean(ex);
}
END_TEST

START_TEST(test_scope_fail_fast_cancels_siblings) {
    tide_exec_t *ex = t_exec_new();
    tide_scope_t s;
    ck_assert_int_eq(tide_scope_init(&s, ex, TIDE_SCOPE_FAIL_FAST), 0);
    t_nap_t bad, ok, forever;
    int drops = 0, done = 0;
    ck_assert_int_eq(
        tide_scope_spawn(&s, t_nap(&ok, 1 * MS, 0, &drops, &done), NULL), 0);
    ck_assert_int_eq(
        tide_scope_spawn(&s, t_nap(&bad, 5 * MS, -EIO, &drops, &done), NULL),
        0);
    ck_assert_int_eq(
        tide_scope_spawn(&s, t_nap(&forever, T_NAP_FOREVER, 0, &drops, &done),
                         NULL),
        0);
    tide_scope_wait_t w;
    ck_assert_int_eq(t_run(ex, tide_scope_wait(&w, &s)), -EIO);
    ck_assert_int_eq(done, 2);
    ck_assert_int_eq(drops, 3);
    ck_assert(tide_token_is_cancelled(tide_scope_token(&s)));
    tide_scope_free(&s);
    t_exec_free_clean(ex);
}
END_TEST

START_TEST(test_scope_failure_without_fail_fast_lets_siblings_finish) {
    tide_exec_t *ex = t_exec_new();
    tide_scope_t s;
    ck_assert_int_eq(tide_scope_init(&s, ex, 0), 0);
    t_nap_t bad, slow;
    int done = 0;
    ck_assert_int_eq(
        tide_scope_spawn(&s, t_nap(&bad, 1 * MS, -EIO, NULL, &done), NULL), 0);
    ck_assert_int_eq(
        tide_scope_spawn(&s, t_nap(&slow, 10 * MS, 0, NULL, &done), NULL), 0);
    tide_scope_wait_t w;
    ck_assert_int_eq(t_run(ex, tide_scope_wait(&w, &s)), -EIO);
    ck_assert_int_eq(done, 2);
    ck_assert(!tide_token_is_cancelled(tide_scope_token(&s)));
    tide_scope_free(&s);
    t_exec_free_clean(ex);
}
END_TEST

START_TEST(test_scope_free_aborts_what_is_left) {
    tide_exec_t *ex = t_exec_new();
    tide_scope_t s;
    ck_assert_int_eq(tide_scope_init(&s, ex, 0), 0);
    ck_assert_int_eq(tide_scope_set_deadline(&s, tide_now() + 1000 * MS), 0);
    t_nap_t n[3];
    int drops = 0;
    tide_join_t j;
    for (int i = 0; i < 3; i++)
        t_assert_int_eq_at(
            i,
            tide_scope_spawn(&s, t_nap(&n[i], T_NAP_FOREVER, 0, &drops, NULL),
                             i == 0 ? &j : NULL),
            0);
    t_hand_t h;
    t_hand_init(&h, ex);
    tide_scope_wait_t w;
    tide_future_t *wf = tide_scope_wait(&w, &s);
    ck_assert_int_eq(t_hand_poll(&h, wf), TIDE_PENDING);
    tide_scope_free(&s);
    memset(&s, 0xa5, sizeof s); /* nothing may touch it any more */
    ck_assert_int_eq(t_hand_poll(&h, wf), TIDE_READY);
    ck_assert_int_eq(wf->result, -EBADF);
    tide_future_drop(wf);
    ck_assert_int_eq(t_run(ex, tide_join(&j)), -ECANCELED);
    ck_assert_int_eq(t_run_for(tide_exec_base(ex), 2), 0);
    ck_assert_int_eq(drops, 3);
    t_hand_done(&h);
    t_exec_free_clean(ex);
}
END_TEST

/* Freeing the executor with a scope's children alive drops them; the
 * scope (freed after, as documented for futures it does not own... here:
 * before) sees them go. */
START_TEST(test_scope_exec_free_with_children) {
    tide_exec_t *ex = t_exec_new();
    tide_scope_t s;
    ck_assert_int_eq(tide_scope_init(&s, ex, TIDE_SCOPE_FAIL_FAST), 0);
    t_nap_t n[3];
    int drops = 0;
    for (int i = 0; i < 3; i++)
        t_assert_int_eq_at(
            i,
            tide_scope_spawn(&s, t_nap(&n[i], T_NAP_FOREVER, 0, &drops, NULL),
                             NULL),
            0);
    ck_assert_int_eq(t_run_for(tide_exec_base(ex), 2), 0);
    tide_scope_free(&s);
    tide_exec_free(ex);
    ck_assert_int_eq(drops, 3);
}
END_TEST

typedef struct canceller {
    tide_future_t fut;
    tide_scope_t *s;
    int *drops;
} canceller_t;

static tide_poll_t canceller_poll(tide_future_t *f, tide_cx_t *cx) {
    (void)cx;
    canceller_t *c = TIDE_CONTAINER_OF(f, canceller_t, fut);
    tide_scope_cancel(c->s); /* from inside its own poll */
    return TIDE_PENDING;     /* and no waker kept: only the abort ends it */
}

static void canceller_drop(tide_future_t *f) {
    canceller_t *c = TIDE_CONTAINER_OF(f, canceller_t, fut);
    (*c->drops)++;
}

static const tide_future_vtable_t canceller_vt = {canceller_poll,
                                                  canceller_drop};

/* A child that cancels its own scope from its poll is dropped when that
 * poll returns; its sibling before the next turn. */
START_TEST(test_scope_child_cancels_own_scope) {
    tide_exec_t *ex = t_exec_new();
    tide_scope_t s;
    ck_assert_int_eq(tide_scope_init(&s, ex, 0), 0);
    t_nap_t other;
    int drops = 0;
    ck_assert_int_eq(
        tide_scope_spawn(&s, t_nap(&other, T_NAP_FOREVER, 0, &drops, NULL),
                         NULL),
        0);
    canceller_t c = {.s = &s, .drops = &drops};
    tide_future_init(&c.fut, &canceller_vt);
    ck_assert_int_eq(tide_scope_spawn(&s, &c.fut, NULL), 0);
    tide_scope_wait_t w;
    ck_assert_int_eq(t_run(ex, tide_scope_wait(&w, &s)), -ECANCELED);
    ck_assert_int_eq(drops, 2);
    tide_scope_free(&s);
    t_exec_free_clean(ex);
}
END_TEST

START_TEST(test_scope_errors) {
    tide_exec_t *ex = t_exec_new();
    tide_scope_t s;
    ck_assert_int_eq(tide_scope_init(NULL, ex, 0), -EINVAL);
    ck_assert_int_eq(tide_scope_init(&s, ex, 0x100), -EINVAL);
    ck_assert_int_eq(tide_scope_init(&s, ex, 0), 0);
    tide_join_t j;
    ck_assert_int_eq(tide_scope_spawn(&s, NULL, &j), -EINVAL);
    ck_assert(tide_join_is_finished(&j));
    t_nap_t n;
    tide_future_t *f = t_nap(&n, 1, 0, NULL, NULL);
    ck_assert_int_eq(tide_scope_spawn(&s, f, NULL), 0);
    ck_assert_int_eq(tide_scope_spawn(&s, f, NULL), -EBUSY);
    tide_scope_wait_t w;
    ck_assert_int_eq(t_run(ex, tide_scope_wait(&w, &s)), 0);
    tide_scope_free(&s);
    tide_scope_free(NULL);
    t_exec_free_clean(ex);
}
END_TEST

START_TEST(test_alloc_scope_spawn) {
    tide_exec_t *ex = t_exec_new();
    tide_scope_t s;
    ck_assert_int_eq(tide_scope_init(&s, ex, 0), 0);
    t_nap_t n;
    tide_future_t *f = t_nap(&n, 1, 0, NULL, NULL);
    tide__alloc_fail_at(1);
    ck_assert_int_eq(tide_scope_spawn(&s, f, NULL), -ENOMEM);
    tide__alloc_fail_at(0);
    ck_assert_uint_eq(tide_scope_len(&s), 0);
    ck_assert_int_eq(tide_scope_spawn(&s, f, NULL), 0);
    tide_scope_wait_t w;
    ck_assert_int_eq(t_run(ex, tide_scope_wait(&w, &s)), 0);
    tide_scope_free(&s);
    t_exec_free_clean(ex);
}
END_TEST

/* ------------------------------------------------------------------------
 * Spawning from other threads
 * ------------------------------------------------------------------------ */

#define SPAWNERS 4
#define PER_SPAWNER 250

typedef struct xshared {
    tide_handle_t *h;
    int done;          /* executor thread only */
    tide_waker_t root; /* executor thread only */
    int target;
} xshared_t;

typedef struct xjob {
    tide_future_t fut;
    xshared_t *sh;
    pthread_t polled_on;
    int value;
} xjob_t;

static tide_poll_t xjob_poll(tide_future_t *f, tide_cx_t *cx) {
    (void)cx;
    xjob_t *j = TIDE_CONTAINER_OF(f, xjob_t, fut);
    j->polled_on = pthread_self();
    j->sh->done++;
    tide_waker_wake_by_ref(&j->sh->root);
    f->result = j->value * 2;
    return TIDE_READY;
}

static const tide_future_vtable_t xjob_vt = {xjob_poll, NULL};

typedef struct root {
    tide_future_t fut;
    xshared_t *sh;
} root_t;

static tide_poll_t root_poll(tide_future_t *f, tide_cx_t *cx) {
    root_t *r = TIDE_CONTAINER_OF(f, root_t, fut);
    if (r->sh->done >= r->sh->target) {
        tide_waker_drop(&r->sh->root);
        f->result = 0;
        return TIDE_READY;
    }
    tide_waker_register(&r->sh->root, cx->waker);
    return TIDE_PENDING;
}

static void root_drop(tide_future_t *f) {
    root_t *r = TIDE_CONTAINER_OF(f, root_t, fut);
    tide_waker_drop(&r->sh->root);
}

static const tide_future_vtable_t root_vt = {root_poll, root_drop};

typedef struct spawner {
    xshared_t *sh;
    int id;
    xjob_t jobs[PER_SPAWNER];
    tide_join_t joins[PER_SPAWNER];
    int errors;
    pthread_t exec_thread;
} spawner_t;

static void *spawner_main(void *arg) {
    spawner_t *sp = arg;
    for (int i = 0; i < PER_SPAWNER; i++) {
        xjob_t *j = &sp->jobs[i];
        tide_future_init(&j->fut, &xjob_vt);
        j->sh = sp->sh;
        j->value = sp->id * 1000 + i;
        if (tide_handle_spawn(sp->sh->h, &j->fut, &sp->joins[i]) != 0)
            sp->errors++;
    }
    /* every result, through the blocking wait */
    for (int i = 0; i < PER_SPAWNER; i++) {
        intptr_t r = 0;
        if (tide_join_wait(&sp->joins[i], &r) != 0 ||
            r != (sp->id * 1000 + i) * 2)
            sp->errors++;
        if (!tide_join_is_finished(&sp->joins[i]))
            sp->errors++;
        if (!pthread_equal(sp->jobs[i].polled_on, sp->exec_thread))
            sp->errors++;
        tide_join_detach(&sp->joins[i]);
    }
    return NULL;
}

START_TEST(test_handle_spawn_from_threads_under_stress) {
    tide_exec_t *ex = t_exec_new();
    xshared_t sh = {.target = SPAWNERS * PER_SPAWNER};
    ck_assert_int_eq(tide_exec_handle(ex, &sh.h), 0);
    root_t root;
    tide_future_init(&root.fut, &root_vt);
    root.sh = &sh;
    static spawner_t sp[SPAWNERS];
    pthread_t th[SPAWNERS];
    for (int i = 0; i < SPAWNERS; i++) {
        memset(&sp[i], 0, sizeof sp[i]);
        sp[i].sh = &sh;
        sp[i].id = i;
        sp[i].exec_thread = pthread_self();
        t_assert_int_eq_at(
            i, pthread_create(&th[i], NULL, spawner_main, &sp[i]), 0);
    }
    ck_assert_int_eq(t_block_on_ms(ex, &root.fut, 20000), 0);
    tide_future_drop(&root.fut);
    for (int i = 0; i < SPAWNERS; i++) {
        pthread_join(th[i], NULL);
        ck_assert_msg(sp[i].errors == 0, "spawner %d: %d errors", i,
                      sp[i].errors);
    }
    ck_assert_int_eq(sh.done, SPAWNERS * PER_SPAWNER);
    /* the join handles' references went with the detaches: let the last
     * run-queue references go */
    ck_assert_int_eq(t_run_for(tide_exec_base(ex), 2), 0);
    t_exec_free_clean(ex);
    /* the handle outlives its executor and refuses */
    xjob_t late;
    tide_future_init(&late.fut, &xjob_vt);
    late.sh = &sh;
    tide_join_t lj;
    ck_assert_int_eq(tide_handle_spawn(sh.h, &late.fut, &lj), -ESHUTDOWN);
    ck_assert(tide_join_is_finished(&lj));
    tide_handle_free(sh.h);
}
END_TEST

typedef struct late_arg {
    tide_handle_t *h;
    xjob_t job;
    tide_join_t j;
    int rc;
    intptr_t result;
} late_arg_t;

static void *late_spawn_main(void *arg) {
    late_arg_t *a = arg;
    a->rc = tide_handle_spawn(a->h, &a->job.fut, &a->j);
    if (a->rc == 0) {
        tide_join_wait(&a->j, &a->result);
        tide_join_detach(&a->j);
    }
    return NULL;
}

/* A task spawned from another thread that the executor never polled is
 * dropped by tide_exec_free; its joiner sees -ECANCELED. And a handle
 * spawn from another thread after the free answers -ESHUTDOWN. */
START_TEST(test_handle_spawn_then_exec_free) {
    tide_exec_t *ex = t_exec_new();
    xshared_t sh = {.target = 1};
    late_arg_t a;
    memset(&a, 0, sizeof a);
    ck_assert_int_eq(tide_exec_handle(ex, &a.h), 0);
    tide_future_init(&a.job.fut, &xjob_vt);
    a.job.sh = &sh;
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, late_spawn_main, &a), 0);
    /* the loop never runs: wait (bounded) until the task is queued */
    struct tide__remote *r = ex->remote; /* white-box */
    for (int i = 0; i < 5000; i++) {
        pthread_mutex_lock(&r->lock);
        bool queued = r->head != NULL;
        pthread_mutex_unlock(&r->lock);
        if (queued)
            break;
        usleep(1000);
    }
    tide_exec_free(ex);
    pthread_join(th, NULL);
    ck_assert_int_eq(a.rc, 0);
    ck_assert_int_eq(a.result, -ECANCELED);
    ck_assert_int_eq(sh.done, 0); /* never polled */
    /* after the free: refused, the future still the caller's */
    xjob_t j2;
    tide_future_init(&j2.fut, &xjob_vt);
    a.job = j2;
    a.job.sh = &sh;
    ck_assert_int_eq(pthread_create(&th, NULL, late_spawn_main, &a), 0);
    pthread_join(th, NULL);
    ck_assert_int_eq(a.rc, -ESHUTDOWN);
    ck_assert(!(a.job.fut.vt & TIDE__FUT_SPAWNED));
    tide_handle_free(a.h);
    ck_assert_int_eq(tide_join_wait(&a.j, NULL), -EINVAL);
}
END_TEST

/* An executor on a host's loop with no task but a live handle keeps the
 * loop running for the threads that may spawn through it; once the last
 * handle is freed (from that thread) and the task is done, the loop
 * returns, as it does when tide has nothing to do. */
typedef struct flag_task {
    tide_future_t fut;
    atomic_int *ran;
} flag_task_t;

static tide_poll_t flag_poll(tide_future_t *f, tide_cx_t *cx) {
    (void)cx;
    atomic_store(TIDE_CONTAINER_OF(f, flag_task_t, fut)->ran, 1);
    f->result = 0;
    return TIDE_READY;
}

static const tide_future_vtable_t flag_vt = {flag_poll, NULL};

typedef struct idle_spawner {
    tide_handle_t *h;
    flag_task_t task;
    int rc;
} idle_spawner_t;

static void *idle_spawner_main(void *arg) {
    idle_spawner_t *a = arg;
    usleep(50000); /* the host's loop is running, tide has no task */
    a->rc = tide_handle_spawn(a->h, &a->task.fut, NULL);
    tide_handle_free(a->h);
    return NULL;
}

static void idle_deadline(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    event_base_loopbreak(arg);
}

START_TEST(test_handle_keeps_idle_host_loop) {
    struct event_base *base = event_base_new();
    ck_assert_ptr_nonnull(base);
    tide_exec_t *ex = NULL;
    ck_assert_int_eq(tide_exec_new(&ex, base, 0), 0);
    atomic_int ran = 0;
    idle_spawner_t a;
    memset(&a, 0, sizeof a);
    a.task.ran = &ran;
    tide_future_init(&a.task.fut, &flag_vt);
    ck_assert_int_eq(tide_exec_handle(ex, &a.h), 0);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, idle_spawner_main, &a), 0);
    /* a bound, which the test must not reach */
    struct event *deadline = evtimer_new(base, idle_deadline, base);
    struct timeval tv = {(time_t)(t_watchdog_ms(5000) / 1000), 0};
    evtimer_add(deadline, &tv);
    int64_t t0 = (int64_t)tide_now();
    /* returns when nothing is pending any more: the deadline would be the
     * only thing left, so delete it once the task ran (a second pass) */
    while (!atomic_load(&ran) &&
           (int64_t)tide_now() - t0 < (int64_t)t_watchdog_ms(5000) * 1000)
        event_base_loop(base, EVLOOP_ONCE);
    pthread_join(th, NULL);
    ck_assert_int_eq(a.rc, 0);
    ck_assert_msg(atomic_load(&ran),
                  "the spawn onto an idle executor was not run");
    event_free(deadline);
    /* no task, no handle: nothing of tide's keeps the loop alive */
    ck_assert_int_eq(event_base_loop(base, 0), 1); /* 1: no events */
    tide_exec_free(ex);
    event_base_free(base);
}
END_TEST

START_TEST(test_handle_misuse) {
    tide_exec_t *ex = t_exec_new();
    tide_handle_t *h;
    ck_assert_int_eq(tide_exec_handle(NULL, &h), -EINVAL);
    ck_assert_int_eq(tide_exec_handle(ex, &h), 0);
    tide_join_t j;
    ck_assert_int_eq(tide_handle_spawn(h, NULL, &j), -EINVAL);
    ck_assert_int_eq(tide_join_wait(&j, NULL), -EINVAL);
    /* on the executor's thread: a plain spawn; waiting there would hang */
    xshared_t sh = {.target = 1};
    xjob_t job;
    tide_future_init(&job.fut, &xjob_vt);
    job.sh = &sh;
    job.value = 0;
    ck_assert_int_eq(tide_handle_spawn(h, &job.fut, &j), 0);
    ck_assert_int_eq(tide_join_wait(&j, NULL), -EDEADLK);
    ck_assert_int_eq(t_run(ex, tide_join(&j)), 0);
    tide_handle_free(h);
    tide_handle_free(NULL);
    t_exec_free_clean(ex);
}
END_TEST

START_TEST(test_alloc_handle_spawn) {
    tide_exec_t *ex = t_exec_new();
    tide_handle_t *h;
    ck_assert_int_eq(tide_exec_handle(ex, &h), 0);
    late_arg_t a;
    memset(&a, 0, sizeof a);
    a.h = h;
    xshared_t sh = {.target = 1};
    tide_future_init(&a.job.fut, &xjob_vt);
    a.job.sh = &sh;
    tide__alloc_fail_at(1);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, late_spawn_main, &a), 0);
    pthread_join(th, NULL);
    tide__alloc_fail_at(0);
    ck_assert_int_eq(a.rc, -ENOMEM);
    ck_assert(!(a.job.fut.vt & TIDE__FUT_SPAWNED));
    tide_handle_free(h);
    t_exec_free_clean(ex);
}
END_TEST

/* ------------------------------------------------------------------------
 * The blocking pool
 * ------------------------------------------------------------------------ */

typedef struct gate {
    pthread_mutex_t m;
    pthread_cond_t cv;
    bool open;
    int running, max_running, started, finished;
    int order[64];
} gate_t;

static void gate_init(gate_t *g) {
    memset(g, 0, sizeof *g);
    pthread_mutex_init(&g->m, NULL);
    pthread_cond_init(&g->cv, NULL);
}

static void gate_open(gate_t *g) {
    pthread_mutex_lock(&g->m);
    g->open = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->m);
}

static void gate_destroy(gate_t *g) {
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->m);
}

/* wait (bounded) until `n` jobs have started */
static bool gate_wait_started(gate_t *g, int n) {
    for (int i = 0; i < (int)t_watchdog_ms(5000); i++) {
        pthread_mutex_lock(&g->m);
        int s = g->started;
        pthread_mutex_unlock(&g->m);
        if (s >= n)
            return true;
        usleep(1000);
    }
    return false;
}

typedef struct gjob {
    gate_t *g;
    int id;
} gjob_t;

/* Waits at the gate (bounded), records its start order. */
static intptr_t gated(void *arg) {
    gjob_t *j = arg;
    gate_t *g = j->g;
    pthread_mutex_lock(&g->m);
    g->order[g->started++ % 64] = j->id;
    g->running++;
    if (g->running > g->max_running)
        g->max_running = g->running;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    while (!g->open)
        if (pthread_cond_timedwait(&g->cv, &g->m, &until) != 0)
            break;
    g->running--;
    g->finished++;
    pthread_mutex_unlock(&g->m);
    return j->id * 10;
}

START_TEST(test_blocking_runs_in_order_on_one_thread) {
    tide_exec_t *ex = t_exec_new();
    ck_assert_int_eq(tide_blocking_set_threads(ex, 1), 0);
    gate_t g;
    gate_init(&g);
    g.open = true;
    enum { N = 8 };
    tide_blocking_t b[N];
    gjob_t jobs[N];
    tide_future_t *futs[N];
    for (int i = 0; i < N; i++) {
        jobs[i] = (gjob_t){&g, i};
        futs[i] = tide_spawn_blocking(&b[i], gated, &jobs[i]);
    }
    tide_join_all_t ja;
    ck_assert_int_eq(t_run(ex, tide_join_all(&ja, futs, N)), 0);
    for (int i = 0; i < N; i++) {
        t_assert_int_eq_at(i, b[i].fut.result, i * 10);
        t_assert_int_eq_at(i, g.order[i], i);
    }
    tide_blocking_stats_t st;
    tide_blocking_stats(ex, &st);
    ck_assert_uint_eq(st.threads, 1);
    ck_assert_uint_eq(st.jobs, N);
    t_exec_free_clean(ex);
    gate_destroy(&g);
}
END_TEST

START_TEST(test_blocking_threads_are_bounded) {
    tide_exec_t *ex = t_exec_new();
    tide_blocking_stats_t st;
    tide_blocking_stats(ex, &st);
    ck_assert_uint_eq(st.max, 4);
    ck_assert_uint_eq(st.threads, 0); /* lazily */
    gate_t g;
    gate_init(&g);
    enum { N = 10 };
    tide_blocking_t b[N];
    gjob_t jobs[N];
    tide_future_t *futs[N];
    t_hand_t h;
    t_hand_init(&h, ex);
    for (int i = 0; i < N; i++) {
        jobs[i] = (gjob_t){&g, i};
        futs[i] = tide_spawn_blocking(&b[i], gated, &jobs[i]);
        t_assert_int_eq_at(i, t_hand_poll(&h, futs[i]), TIDE_PENDING);
    }
    ck_assert(gate_wait_started(&g, 4));
    usleep(20000);
    tide_blocking_stats(ex, &st);
    ck_assert_uint_eq(st.threads, 4);
    ck_assert_uint_eq(st.queued, N - 4);
    pthread_mutex_lock(&g.m);
    ck_assert_int_eq(g.max_running, 4);
    pthread_mutex_unlock(&g.m);
    gate_open(&g);
    ck_assert(gate_wait_started(&g, N));
    /* every wake arrives (the hand waker counts them from the pool
     * threads); then each future is ready */
    for (int i = 0; i < (int)t_watchdog_ms(5000) && t_woken(&h.count) < N; i++)
        usleep(1000);
    ck_assert_int_eq(t_woken(&h.count), N);
    for (int i = 0; i < N; i++) {
        t_assert_int_eq_at(i, t_hand_poll(&h, futs[i]), TIDE_READY);
        t_assert_int_eq_at(i, futs[i]->result, i * 10);
        tide_future_drop(futs[i]);
    }
    pthread_mutex_lock(&g.m);
    ck_assert_int_le(g.max_running, 4);
    pthread_mutex_unlock(&g.m);
    t_hand_done(&h);
    t_exec_free_clean(ex);
    gate_destroy(&g);
}
END_TEST

START_TEST(test_blocking_cancel_before_and_after_start) {
    tide_exec_t *ex = t_exec_new();
    ck_assert_int_eq(tide_blocking_set_threads(ex, 1), 0);
    gate_t g;
    gate_init(&g);
    gjob_t j0 = {&g, 0}, j1 = {&g, 1}, j2 = {&g, 2};
    tide_blocking_t b0, b1, b2;
    t_hand_t h;
    t_hand_init(&h, ex);
    tide_future_t *f0 = tide_spawn_blocking(&b0, gated, &j0);
    tide_future_t *f1 = tide_spawn_blocking(&b1, gated, &j1);
    tide_future_t *f2 = tide_spawn_blocking(&b2, gated, &j2);
    ck_assert_int_eq(t_hand_poll(&h, f0), TIDE_PENDING);
    ck_assert_int_eq(t_hand_poll(&h, f1), TIDE_PENDING);
    ck_assert_int_eq(t_hand_poll(&h, f2), TIDE_PENDING);
    ck_assert(gate_wait_started(&g, 1)); /* j0 runs, j1 and j2 queued */
    tide_future_drop(f1);                /* before it started: never runs */
    tide_future_drop(f0); /* while it runs: runs on, result discarded */
    tide_blocking_stats_t st;
    tide_blocking_stats(ex, &st);
    ck_assert_uint_eq(st.queued, 1);
    ck_assert_int_eq(atomic_load(&h.count.refs), 2); /* f2's and ours */
    gate_open(&g);
    for (int i = 0; i < (int)t_watchdog_ms(5000) && t_woken(&h.count) < 1; i++)
        usleep(1000);
    ck_assert_int_eq(t_hand_poll(&h, f2), TIDE_READY);
    ck_assert_int_eq(f2->result, 20);
    tide_future_drop(f2);
    pthread_mutex_lock(&g.m);
    ck_assert_int_eq(g.started, 2);
    ck_assert_int_eq(g.order[0], 0);
    ck_assert_int_eq(g.order[1], 2);
    pthread_mutex_unlock(&g.m);
    ck_assert_int_eq(t_woken(&h.count), 1); /* only f2's */
    t_hand_done(&h);
    t_exec_free_clean(ex);
    pthread_mutex_lock(&g.m);
    ck_assert_int_eq(g.finished, 2); /* j0 ran to completion */
    pthread_mutex_unlock(&g.m);
    gate_destroy(&g);
}
END_TEST

/* Executor freed with two jobs running and two queued, owned by tasks:
 * the queued never run, the running finish, nothing leaks (ASan). */
typedef struct bt {
    tide_future_t fut;
    tide_async_t co;
    tide_blocking_t b;
    gjob_t *job; /* not in the task: it outlives a drop while it runs */
} bt_t;

static tide_poll_t bt_poll(tide_future_t *f, tide_cx_t *cx) {
    bt_t *t = TIDE_CONTAINER_OF(f, bt_t, fut);
    TIDE_BEGIN(&t->co);
    TIDE_AWAIT(&t->co, cx, tide_spawn_blocking(&t->b, gated, t->job));
    TIDE_END(&t->co, f, tide_async_result(&t->co));
}

static void bt_drop(tide_future_t *f) {
    bt_t *t = TIDE_CONTAINER_OF(f, bt_t, fut);
    tide_async_drop(&t->co);
    free(t);
}

static const tide_future_vtable_t bt_vt = {bt_poll, bt_drop};

static void *opener(void *arg) {
    gate_t *g = arg;
    usleep(30000);
    gate_open(g);
    return NULL;
}

START_TEST(test_blocking_exec_free_with_jobs_queued_and_running) {
    tide_exec_t *ex = t_exec_new();
    ck_assert_int_eq(tide_blocking_set_threads(ex, 2), 0);
    gate_t g;
    gate_init(&g);
    gjob_t jobs[4];
    for (int i = 0; i < 4; i++) {
        bt_t *t = calloc(1, sizeof *t);
        tide_future_init(&t->fut, &bt_vt);
        jobs[i] = (gjob_t){&g, i};
        t->job = &jobs[i];
        t_assert_int_eq_at(i, tide_spawn(ex, &t->fut, NULL), 0);
    }
    ck_assert_int_eq(t_run_for(tide_exec_base(ex), 5), 0);
    ck_assert(gate_wait_started(&g, 2));
    /* a hand-polled one too, left pending over the free */
    tide_blocking_t hb;
    gjob_t hj = {&g, 9};
    t_hand_t h;
    t_hand_init(&h, ex);
    tide_future_t *hf = tide_spawn_blocking(&hb, gated, &hj);
    ck_assert_int_eq(t_hand_poll(&h, hf), TIDE_PENDING);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, opener, &g), 0);
    tide_exec_free(ex); /* waits for the two running jobs */
    pthread_join(th, NULL);
    pthread_mutex_lock(&g.m);
    ck_assert_int_eq(g.started, 2);
    ck_assert_int_eq(g.finished, 2);
    pthread_mutex_unlock(&g.m);
    ck_assert_int_eq(t_hand_poll(&h, hf), TIDE_READY);
    ck_assert_int_eq(hf->result, -ECANCELED);
    tide_future_drop(hf);
    t_hand_done(&h);
    gate_destroy(&g);
}
END_TEST

static intptr_t ident(void *arg) { return (intptr_t)arg; }

START_TEST(test_blocking_errors) {
    tide_exec_t *ex = t_exec_new();
    ck_assert_int_eq(tide_blocking_set_threads(ex, 0), -EINVAL);
    /* polled without an executor */
    t_hand_t h;
    t_hand_init(&h, NULL);
    tide_blocking_t b;
    tide_future_t *f = tide_spawn_blocking(&b, ident, (void *)5);
    ck_assert_int_eq(t_hand_poll(&h, f), TIDE_READY);
    ck_assert_int_eq(f->result, -EINVAL);
    tide_future_drop(f);
    /* dropped before its first poll */
    f = tide_spawn_blocking(&b, ident, (void *)5);
    tide_future_drop(f);
    /* a task awaits one */
    f = tide_spawn_blocking(&b, ident, (void *)42);
    ck_assert_int_eq(t_run(ex, f), 42);
    t_hand_done(&h);
    t_exec_free_clean(ex);
}
END_TEST

START_TEST(test_alloc_blocking) {
    tide_exec_t *ex = t_exec_new();
    tide_blocking_t b;
    t_hand_t h;
    t_hand_init(&h, ex);
    /* the pool itself, then the first thread (polled by hand: the
     * allocations counted are the pool's only) */
    for (unsigned long n = 1; n <= 2; n++) {
        tide_future_t *f = tide_spawn_blocking(&b, ident, (void *)7);
        tide__alloc_fail_at(n);
        t_assert_int_eq_at(n, t_hand_poll(&h, f), TIDE_READY);
        tide__alloc_fail_at(0);
        t_assert_int_eq_at(n, f->result, -ENOMEM);
        tide_future_drop(f);
        if (n == 1) {
            tide_blocking_stats_t st;
            tide_blocking_stats(ex, &st);
            t_assert_uint_eq_at(n, st.threads, 0);
        }
    }
    tide_future_t *f = tide_spawn_blocking(&b, ident, (void *)7);
    ck_assert_int_eq(t_run(ex, f), 7);
    t_hand_done(&h);
    t_exec_free_clean(ex);
}
END_TEST

static Suite *task_suite(void) {
    Suite *s = suite_create("task");
    TCase *tc = t_tcase(s, "token", 30);
    tcase_add_test(tc, test_token_cancel_wakes_every_waiter);
    tcase_add_test(tc, test_token_free_completes_waiters_with_ebadf);

    tc = t_tcase(s, "scope", 30);
    tcase_add_test(tc, test_scope_wait_waits_for_every_child);
    tcase_add_test(tc, test_scope_cancel_aborts_children_at_pending_point);
    tcase_add_test(tc, test_scope_token_cancel_cancels_scope);
    tcase_add_test(tc, test_scope_deadline_times_out_children);
    tcase_add_test(tc, test_scope_deadline_past_and_removed);
    tcase_add_test(tc, test_scope_nested_inherits_deadline);
    tcase_add_test(tc, test_scope_nested_cancel_and_free_order);
    tcase_add_test(tc, test_scope_fail_fast_cancels_siblings);
    tcase_add_test(tc,
                   test_scope_failure_without_fail_fast_lets_siblings_finish);
    tcase_add_test(tc, test_scope_free_aborts_what_is_left);
    tcase_add_test(tc, test_scope_exec_free_with_children);
    tcase_add_test(tc, test_scope_child_cancels_own_scope);
    tcase_add_test(tc, test_scope_errors);
    tcase_add_test(tc, test_alloc_scope_spawn);

    tc = t_tcase(s, "handle", 60);
    tcase_add_test(tc, test_handle_spawn_from_threads_under_stress);
    tcase_add_test(tc, test_handle_spawn_then_exec_free);
    tcase_add_test(tc, test_handle_keeps_idle_host_loop);
    tcase_add_test(tc, test_handle_misuse);
    tcase_add_test(tc, test_alloc_handle_spawn);

    tc = t_tcase(s, "blocking", 60);
    tcase_add_test(tc, test_blocking_runs_in_order_on_one_thread);
    tcase_add_test(tc, test_blocking_threads_are_bounded);
    tcase_add_test(tc, test_blocking_cancel_before_and_after_start);
    tcase_add_test(tc, test_blocking_exec_free_with_jobs_queued_and_running);
    tcase_add_test(tc, test_blocking_errors);
    tcase_add_test(tc, test_alloc_blocking);
    return s;
}

int main(void) { return t_run_suite(task_suite()); }
