/*
 * src/task/scope.c: scopes, groups of tasks that are awaited, cancelled
 * and timed out together.
 *
 * A child is an ordinary task spawned with a finish hook
 * (tide__spawn_ex); its link to the scope lives in the task's own
 * allocation, after it, so a child costs the scope no memory and no
 * allocation of its own. The task stays allocated while it is linked: the
 * hook unlinks it before the executor drops its reference. Cancelling
 * aborts each child (tide__task_abort: the executor drops its future at
 * its next pending point) and cascades to the child scopes; the deadline
 * is a sleep in the scope, polled by hand with a waker that points at the
 * scope itself, so a scope needs no task of its own to time out.
 */
#include <string.h>

#include "core/internal.h"
#include "tide/task.h"

/* A child's link, in its task's extra bytes. */
struct child {
    struct child *prev, *next;
    tide_scope_t *scope; /* NULL once the scope let it go */
    tide_task_t *task;
};

static struct child *child_of(tide_task_t *t) { return tide__task_extra(t); }

static void child_unlink(tide_scope_t *s, struct child *c) {
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        s->children = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    c->scope = NULL;
    s->nchildren--;
}

static void scope_cancel(tide_scope_t *s, intptr_t reason) {
    if (s->token.cancelled)
        return;
    if (s->error == 0)
        s->error = reason;
    tide_token_cancel(&s->token); /* runs token_hook */
}

/* The scope's token was cancelled (through the scope or not). Aborting a
 * child only queues it (or marks a running one), so no child leaves the
 * list while it is walked. */
static void token_hook(tide_token_t *t) {
    tide_scope_t *s = TIDE_CONTAINER_OF(t, tide_scope_t, token);
    if (s->error == 0)
        s->error = -ECANCELED;
    for (struct child *c = s->children; c != NULL; c = c->next)
        tide__task_abort(c->task);
    for (tide_scope_t *k = s->kids; k != NULL; k = k->snext)
        scope_cancel(k, s->error);
}

/* A child finished: its future is dropped. */
static void child_done(tide_task_t *t) {
    struct child *c = child_of(t);
    tide_scope_t *s = c->scope;
    if (s == NULL)
        return;
    child_unlink(s, c);
    if (t->output < 0 && !s->token.cancelled) {
        if (s->error == 0)
            s->error = t->output;
        if (s->flags & TIDE_SCOPE_FAIL_FAST)
            scope_cancel(s, t->output);
    }
    if (s->nchildren == 0)
        tide_waitq_wake_all(&s->q);
}

/* The deadline's timer woke us: from the timer's callback, with the heap
 * consistent; cancelling only queues tasks and wakes waiters. */
static void deadline_poll(tide_scope_t *s) {
    if (!s->timer_on)
        return;
    tide_waker_t self = TIDE_WAKER(&s->wk);
    tide_cx_t cx;
    tide_cx_init(&cx, s->exec, &self);
    if (tide_future_is_done(&s->timer.fut))
        return;
    if (tide_future_poll(&s->timer.fut, &cx) == TIDE_READY &&
        s->timer.fut.result == 0)
        scope_cancel(s, -ETIMEDOUT);
}

static tide_scope_t *scope_of_wk(const tide_wakeable_t *w) {
    return TIDE_CONTAINER_OF(w, tide_scope_t, wk);
}
/* The scope outlives its timer (tide_scope_free drops it): no counting. */
static tide_waker_t wk_clone(const tide_wakeable_t *w) { return TIDE_WAKER(w); }
static void wk_wake_by_ref(const tide_wakeable_t *w) {
    deadline_poll(scope_of_wk(w));
}
static void wk_drop(const tide_wakeable_t *w) { (void)w; }

static const tide_waker_vtable_t scope_waker_vt = {wk_clone, wk_wake_by_ref,
                                                   wk_wake_by_ref, wk_drop};

static void scope_setup(tide_scope_t *s, tide_exec_t *ex, unsigned flags) {
    memset(s, 0, sizeof *s);
    tide_token_init(&s->token);
    s->token.hook = token_hook;
    tide_waitq_init(&s->q, NULL);
    s->exec = ex;
    s->deadline = UINT64_MAX;
    s->wk.vtable = &scope_waker_vt;
    s->flags = flags;
}

int tide_scope_init(tide_scope_t *s, tide_exec_t *ex, unsigned flags) {
    if (s == NULL || ex == NULL || (flags & ~(unsigned)TIDE_SCOPE_FAIL_FAST))
        return -EINVAL;
    scope_setup(s, ex, flags);
    return 0;
}

int tide_scope_init_child(tide_scope_t *s, tide_scope_t *parent,
                          unsigned flags) {
    if (s == NULL || parent == NULL ||
        (flags & ~(unsigned)TIDE_SCOPE_FAIL_FAST))
        return -EINVAL;
    scope_setup(s, parent->exec, flags);
    s->parent = parent;
    s->snext = parent->kids;
    if (parent->kids != NULL)
        parent->kids->sprev = s;
    parent->kids = s;
    if (parent->token.cancelled)
        scope_cancel(s, parent->error);
    return 0;
}

int tide_scope_spawn(tide_scope_t *s, tide_future_t *fut, tide_join_t *join) {
    if (s == NULL || fut == NULL) {
        if (join != NULL)
            tide_spawn(NULL, NULL, join); /* an empty handle */
        return -EINVAL;
    }
    if (s->token.cancelled) {
        if (join != NULL)
            tide_spawn(NULL, NULL, join);
        return -ECANCELED;
    }
    tide_task_t *t;
    int rc =
        tide__spawn_ex(s->exec, fut, 0, sizeof(struct child), child_done, &t);
    if (join != NULL)
        tide_spawn(NULL, NULL, join);
    if (rc < 0)
        return rc;
    struct child *c = child_of(t);
    c->scope = s;
    c->task = t;
    c->prev = NULL;
    c->next = s->children;
    if (s->children != NULL)
        ((struct child *)s->children)->prev = c;
    s->children = c;
    s->nchildren++;
    if (join != NULL) {
        atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
        join->task = t;
    }
    return 0;
}

void tide_scope_cancel(tide_scope_t *s) { scope_cancel(s, -ECANCELED); }

int tide_scope_set_deadline(tide_scope_t *s, uint64_t deadline) {
    if (s->timer_on) {
        tide_future_drop(&s->timer.fut);
        s->timer_on = false;
    }
    s->deadline = deadline;
    if (deadline == UINT64_MAX || s->token.cancelled)
        return 0;
    tide_sleep_until(&s->timer, deadline);
    tide_waker_t self = TIDE_WAKER(&s->wk);
    tide_cx_t cx;
    tide_cx_init(&cx, s->exec, &self);
    if (tide_future_poll(&s->timer.fut, &cx) == TIDE_PENDING) {
        s->timer_on = true;
        return 0;
    }
    intptr_t rc = s->timer.fut.result;
    tide_future_drop(&s->timer.fut);
    if (rc < 0) {
        s->deadline = UINT64_MAX;
        return (int)rc;
    }
    scope_cancel(s, -ETIMEDOUT); /* already past */
    return 0;
}

uint64_t tide_scope_deadline(const tide_scope_t *s) {
    uint64_t d = UINT64_MAX;
    for (; s != NULL; s = s->parent)
        if (s->deadline < d)
            d = s->deadline;
    return d;
}

tide_token_t *tide_scope_token(tide_scope_t *s) { return &s->token; }

size_t tide_scope_len(const tide_scope_t *s) { return s->nchildren; }

intptr_t tide_scope_error(const tide_scope_t *s) { return s->error; }

void tide_scope_free(tide_scope_t *s) {
    if (s == NULL)
        return;
    /* Children first: abort each and let it go (its hook finds no scope
     * when the executor drops it). */
    while (s->children != NULL) {
        struct child *c = s->children;
        tide__task_abort(c->task);
        child_unlink(s, c);
    }
    while (s->kids != NULL) {
        tide_scope_t *k = s->kids;
        scope_cancel(k, s->error != 0 ? s->error : -ECANCELED);
        s->kids = k->snext;
        k->parent = NULL;
        k->sprev = k->snext = NULL;
    }
    if (s->parent != NULL) {
        if (s->sprev != NULL)
            s->sprev->snext = s->snext;
        else
            s->parent->kids = s->snext;
        if (s->snext != NULL)
            s->snext->sprev = s->sprev;
        s->parent = NULL;
    }
    if (s->timer_on) {
        tide_future_drop(&s->timer.fut);
        s->timer_on = false;
    }
    tide_waitq_close(&s->q, -EBADF);
    tide_token_free(&s->token);
}

static tide_poll_t scope_wait_poll(tide_future_t *f, tide_cx_t *cx) {
    tide_scope_wait_t *w = TIDE_CONTAINER_OF(f, tide_scope_wait_t, fut);
    int err = tide_waiter_error(&w->w);
    if (err != 0) {
        f->result = err;
        return TIDE_READY;
    }
    tide_scope_t *s = w->scope;
    if (s->nchildren == 0) {
        tide_waiter_leave(&w->w, TIDE_WAITQ_DONE);
        f->result = s->error;
        return TIDE_READY;
    }
    tide_waiter_wait(&w->w, &s->q, cx->waker);
    return TIDE_PENDING;
}

static void scope_wait_drop(tide_future_t *f) {
    tide_scope_wait_t *w = TIDE_CONTAINER_OF(f, tide_scope_wait_t, fut);
    tide_waiter_leave(&w->w, TIDE_WAITQ_CANCELLED);
}

static const tide_future_vtable_t scope_wait_vt = {scope_wait_poll,
                                                   scope_wait_drop};

tide_future_t *tide_scope_wait(tide_scope_wait_t *w, tide_scope_t *s) {
    tide_waiter_init(&w->w);
    w->scope = s;
    return tide_future_init(&w->fut, &scope_wait_vt);
}
