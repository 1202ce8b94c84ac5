/*
 * src/core/executor.c: the executor, its tasks, their wakers and join
 * handles.
 *
 * The executor lives inside an event_base. Waking a task puts it on the run
 * queue once and makes one internal event (run_ev) active; that event's
 * callback polls queued tasks up to a budget and, if tasks remain, re-adds
 * run_ev with a zero timeout instead of activating it again. The
 * difference matters: libevent runs an event activated from inside a
 * callback in the same pass over the active queue, so re-activation would
 * starve every other event; a zero-timeout timer instead fires after the
 * next (non-blocking) poll of the backend, so the host's I/O and timers
 * get their turn between two executor turns.
 *
 * The reactor's descriptor events take a short cut when nothing else is
 * active: they run the tasks they woke in a turn of their own, inside
 * their callback (tide__exec_enter and tide__exec_leave), which spares
 * run_ev's activation and dispatch at one busy connection.
 *
 * Wakes from other threads go through a mutex-protected queue and an
 * eventfd whose event is pending only while tasks are alive. We use our own
 * eventfd rather than event_active on a thread-aware base because tide
 * cannot make a host's base thread-aware after the fact (that needs
 * evthread_use_pthreads before the base exists); the eventfd works on any
 * base, and the owner thread never touches the lock.
 */
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/internal.h"

/* Polls per turn. Well above the number of connections a busy server has
 * ready at once: descriptor read events are level-triggered (reactor/fd.c),
 * so a task still queued when the turn gives the loop back has its
 * descriptor reported again by the next poll of the backend. At 64, 1,000
 * busy connections cost 5,316 instructions per message instead of 1,005
 * (bench/analysis.md, 2026-12-04). */
#define DEFAULT_POLLS_PER_TURN 1024

/* ------------------------------------------------------------------------
 * Task references and wakers
 * ------------------------------------------------------------------------ */

static inline void task_ref(tide_task_t *t) {
    atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
}

/* The last reference went: the future was dropped when the task completed
 * (or was never ours); only the joiner's waker may remain, and the joiner
 * itself holds a reference, so it is empty by now. */
static void task_free(tide_task_t *t) {
    TIDE__CHECK(tide_waker_is_empty(&t->join_waker));
    struct tide__remote *r = t->remote;
    tide__free(t);
    tide__remote_unref(r);
}

static inline void task_unref(tide_task_t *t) {
    if (atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) == 1)
        task_free(t);
}

void tide__task_unref(tide_task_t *t) { task_unref(t); }

void tide__remote_unref(struct tide__remote *r) {
    if (atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) == 1) {
        close(r->efd);
        pthread_cond_destroy(&r->done);
        pthread_mutex_destroy(&r->lock);
        tide__free(r);
    }
}

static tide_task_t *task_of(const tide_wakeable_t *w) {
    return TIDE_CONTAINER_OF(w, tide_task_t, wk);
}

static tide_waker_t task_waker_clone(const tide_wakeable_t *w) {
    task_ref(task_of(w));
    return TIDE_WAKER(w);
}

static void task_waker_wake_by_ref(const tide_wakeable_t *w) {
    tide_task_t *t = task_of(w);
    unsigned prev = atomic_fetch_or_explicit(&t->state, TASK_NOTIFIED,
                                             memory_order_acq_rel);
    /* A second wake before the task runs finds NOTIFIED set: a no-op. A
     * completed task is never queued again. */
    if ((prev & (TASK_NOTIFIED | TASK_COMPLETE)) == 0)
        tide__exec_schedule(t);
}

static void task_waker_wake(const tide_wakeable_t *w) {
    task_waker_wake_by_ref(w);
    task_unref(task_of(w));
}

static void task_waker_drop(const tide_wakeable_t *w) {
    task_unref(task_of(w));
}

const tide_waker_vtable_t tide__task_waker_vtable = {
    task_waker_clone, task_waker_wake, task_waker_wake_by_ref, task_waker_drop};

/* ------------------------------------------------------------------------
 * Run queues
 * ------------------------------------------------------------------------ */

static void run_later(tide_exec_t *ex) {
    /* Inside run_cb the loop re-checks the queue itself. */
    if (ex->in_run || ex->run_pending || ex->closing)
        return;
    ex->run_pending = true;
    event_active(&ex->run_ev, EV_TIMEOUT, 0);
}

/* Append t to the singly linked list (*head, *tail) through qnext: the
 * run queue, the deferred list and the remote queue all are one. */
static void list_append(tide_task_t **head, tide_task_t **tail,
                        tide_task_t *t) {
    t->qnext = NULL;
    if (*tail != NULL)
        (*tail)->qnext = t;
    else
        *head = t;
    *tail = t;
}

static void queue_push(tide_exec_t *ex, tide_task_t *t) {
    list_append(&ex->qhead, &ex->qtail, t);
    ex->queued++;
}

static tide_task_t *queue_pop(tide_exec_t *ex) {
    tide_task_t *t = ex->qhead;
    if (t != NULL) {
        ex->qhead = t->qnext;
        if (ex->qhead == NULL)
            ex->qtail = NULL;
        ex->queued--;
    }
    return t;
}

/* A task that wakes itself while it is being polled (TIDE_YIELD, a spent
 * budget) waits for the next turn: queued now, it would be polled again in
 * this one, before the loop has looked at I/O, and a yield would not
 * yield. Tasks woken by other tasks run in this turn, as Tokio does (its
 * yield_now defers; its other wakes go on the run queue), within the
 * turn's budget. */
static void defer_push(tide_exec_t *ex, tide_task_t *t) {
    list_append(&ex->dhead, &ex->dtail, t);
    ex->queued++;
}

/* End of a turn: the deferred tasks go behind those still queued, but for
 * those that completed after waking themselves (a task that wakes itself,
 * then finishes in the same poll): their entries, and the references the
 * queue held, go now, so that nothing is left queued for nothing. */
static void defer_splice(tide_exec_t *ex) {
    tide_task_t *t = ex->dhead;
    ex->dhead = ex->dtail = NULL;
    while (t != NULL) {
        tide_task_t *next = t->qnext;
        if (atomic_load_explicit(&t->state, memory_order_acquire) &
            TASK_COMPLETE) {
            ex->queued--;
            tide__task_unref(t);
        } else {
            list_append(&ex->qhead, &ex->qtail, t);
        }
        t = next;
    }
}

/* Wake the owner's loop: the remote queue was empty. */
static void remote_kick(struct tide__remote *r) {
    uint64_t one = 1;
    ssize_t n;
    do
        n = write(r->efd, &one, sizeof one);
    while (n < 0 && errno == EINTR);
    /* EAGAIN means the counter is saturated: a read is due anyway. */
}

/* Called once per wake that set NOTIFIED: the queue takes a reference. */
void tide__exec_schedule(tide_task_t *t) {
    struct tide__remote *r = t->remote;
    task_ref(t);
    if (pthread_equal(pthread_self(), r->owner)) {
        tide_exec_t *ex = r->exec; /* alive: a completed task is not queued */
        if (ex->closing) {
            /* The executor is dropping everything; nothing will run. */
            tide__task_unref(t);
            return;
        }
        if (t->flags & TASK_RUNNING) {
            defer_push(ex, t);
            return; /* run_cb is on the stack: it splices at its end */
        }
        queue_push(ex, t);
        run_later(ex);
        return;
    }
    /* Another thread. The task's reference keeps r alive (and its eventfd
     * open) even if the executor is being freed right now: then `closed`
     * says so, and the wake is dropped. */
    pthread_mutex_lock(&r->lock);
    if (r->closed) {
        pthread_mutex_unlock(&r->lock);
        tide__task_unref(t);
        return;
    }
    bool was_empty = r->head == NULL;
    list_append(&r->head, &r->tail, t);
    pthread_mutex_unlock(&r->lock);
    /* One write per batch: the owner drains the whole queue per read. */
    if (was_empty)
        remote_kick(r);
}

static void notify_update(tide_exec_t *ex);

int tide_exec_wake_all(tide_exec_t *ex) {
    if (ex == NULL)
        return -EINVAL;
    /* A wake only queues (tide__exec_schedule polls nothing), so the list
     * does not change under the walk. */
    for (tide_task_t *t = ex->tasks; t != NULL; t = t->next)
        task_waker_wake_by_ref(&t->wk);
    return 0;
}

/* Put t on the executor's list of live tasks (owner thread). */
static void task_link(tide_exec_t *ex, tide_task_t *t) {
    t->flags &= ~(unsigned)TASK_NEW;
    t->prev = NULL;
    t->next = ex->tasks;
    if (ex->tasks != NULL)
        ex->tasks->prev = t;
    ex->tasks = t;
    ex->ntasks++;
}

static void notify_cb(evutil_socket_t fd, short what, void *arg) {
    tide_exec_t *ex = arg;
    uint64_t v;
    ssize_t n;
    do
        n = read(fd, &v, sizeof v);
    while (n < 0 && errno == EINTR);

    struct tide__remote *r = ex->remote;
    pthread_mutex_lock(&r->lock);
    tide_task_t *t = r->head;
    r->head = r->tail = NULL;
    pthread_mutex_unlock(&r->lock);
    while (t != NULL) {
        tide_task_t *next = t->qnext;
        if (t->flags & TASK_NEW)
            task_link(ex, t); /* spawned from another thread */
        else
            ex->stats.remote_wakes++;
        queue_push(ex, t); /* the remote queue's reference moves along */
        t = next;
    }
    notify_update(ex);
    run_later(ex);
}

static void notify_update(tide_exec_t *ex) {
    /* The eventfd event keeps a host's loop alive, so it is pending only
     * while there are tasks that could be woken from elsewhere, or handles
     * that other threads may spawn through. (A handle freed by another
     * thread is seen here at the next update, a task's start or end.) */
    bool want =
        (ex->ntasks > 0 || atomic_load_explicit(&ex->remote->handles,
                                                memory_order_relaxed) > 0) &&
        !ex->closing;
    if (want == ex->notify_added)
        return;
    if (want) {
        if (event_add(&ex->notify_ev, NULL) == 0)
            ex->notify_added = true;
    } else {
        event_del(&ex->notify_ev);
        ex->notify_added = false;
    }
}

/* ------------------------------------------------------------------------
 * Running tasks
 * ------------------------------------------------------------------------ */

static void task_finish(tide_exec_t *ex, tide_task_t *t, intptr_t output) {
    tide_future_t *fut = t->fut;
    t->output = output; /* in fut's place: written before COMPLETE is set */
    unsigned st = atomic_fetch_or(&t->state, TASK_COMPLETE);

    if (t->prev != NULL)
        t->prev->next = t->next;
    else
        ex->tasks = t->next;
    if (t->next != NULL)
        t->next->prev = t->prev;
    t->prev = t->next = NULL;
    ex->ntasks--;

    if (!(t->flags & TASK_BORROWED))
        tide_future_drop(fut); /* may wake, spawn or free other things */
    else
        fut->vt &= ~(uintptr_t)TIDE__FUT_SPAWNED; /* the caller's again */

    tide_waker_wake(&t->join_waker);
    if (t->flags & TASK_HOOKED)
        (*tide__task_hook(t))(t);
    /* Threads blocked in tide_join_wait set BWAIT by a read-modify-write
     * of the same word before they test COMPLETE: one of the two RMWs
     * comes first and the other sees it, so no waiter is missed. */
    if (st & TASK_BWAIT) {
        pthread_mutex_lock(&t->remote->lock);
        pthread_cond_broadcast(&t->remote->done);
        pthread_mutex_unlock(&t->remote->lock);
    }
    if (t == ex->root && ex->in_block_on)
        event_base_loopbreak(ex->base);
    notify_update(ex);
    tide__task_unref(t); /* the executor's reference */
}

static void run_task(tide_exec_t *ex, tide_task_t *t) {
    /* Clear NOTIFIED before polling: a wake that arrives while the task
     * runs queues it again, so no wake is ever lost. */
    unsigned st = atomic_fetch_and_explicit(&t->state, ~(unsigned)TASK_NOTIFIED,
                                            memory_order_acq_rel);
    if (st & TASK_COMPLETE)
        return;
    if (t->flags & TASK_ABORT) {
        task_finish(ex, t, -ECANCELED);
        return;
    }
    tide_waker_t self = TIDE_WAKER(&t->wk); /* borrowed: no reference */
    tide_cx_t cx;
    tide_cx_init(&cx, ex, &self);
    t->flags |= TASK_RUNNING;
    ex->stats.polls++;
    tide_poll_t r = tide_future_poll(t->fut, &cx);
    t->flags &= ~(unsigned)TASK_RUNNING;
    if (r == TIDE_READY)
        task_finish(ex, t, t->fut->result);
    else if (t->flags & TASK_ABORT)
        task_finish(ex, t, -ECANCELED);
}

/* Poll queued tasks up to the budget (in_run set by the caller), then
 * let the loop poll the backend before what is left. */
static void run_queue(tide_exec_t *ex) {
    ex->stats.turns++;
    unsigned n = 0;
    tide_task_t *t;
    while (n < ex->budget && (t = queue_pop(ex)) != NULL) {
        n++;
        run_task(ex, t);
        tide__task_unref(t); /* the queue's reference */
    }
    ex->in_run = false;
    /* Tasks that yielded run next turn, after the loop has polled for I/O
     * (see defer_push): before, ten yields completed before an already
     * connected client was accepted. */
    if (ex->dhead != NULL)
        defer_splice(ex);
    if (ex->qhead != NULL && !ex->closing && !ex->run_pending) {
        /* Out of budget, or tasks that yielded: come back after the
         * backend has been polled. */
        static const struct timeval zero = {0, 0};
        ex->stats.yields++;
        ex->run_pending = true;
        event_add(&ex->run_ev, &zero);
    }
}

static void run_cb(evutil_socket_t fd, short what, void *arg) {
    tide_exec_t *ex = arg;
    ex->run_pending = false;
    ex->in_run = true;
    run_queue(ex);
}

void tide__exec_leave(tide_exec_t *ex) {
    if (ex->qhead != NULL)
        run_queue(ex); /* in_run is still set: tide__exec_enter's */
    else
        ex->in_run = false;
}

/* ------------------------------------------------------------------------
 * Spawning and joining
 * ------------------------------------------------------------------------ */

/* A new task for fut on r's executor, not yet on any list; any thread. */
static int task_new(struct tide__remote *r, tide_future_t *fut, unsigned flags,
                    size_t extra, void (*on_finish)(tide_task_t *),
                    tide_task_t **out) {
    /* A future already owned by a task would be polled by two tasks and
     * dropped twice: refuse it, as a finished or dropped one. */
    if (fut->vt & (TIDE__FUT_DONE | TIDE__FUT_DROPPED))
        return -EINVAL;
    if (fut->vt & TIDE__FUT_SPAWNED)
        return -EBUSY;
    size_t size = sizeof(tide_task_t);
    if (on_finish != NULL)
        size = TIDE__TASK_SIZE + TIDE__ALIGN_UP(sizeof(tide__task_hook_fn)) +
               extra;
    tide_task_t *t = tide__calloc(1, size);
    if (t == NULL)
        return -ENOMEM;
    atomic_init(&t->refs, 1); /* the executor's */
    atomic_init(&t->state, 0);
    t->flags = flags;
    if (on_finish != NULL) {
        t->flags |= TASK_HOOKED;
        *tide__task_hook(t) = on_finish;
    }
    t->remote = r;
    atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
    t->fut = fut;
    fut->vt |= TIDE__FUT_SPAWNED;
    t->wk.vtable = &tide__task_waker_vtable;
    *out = t;
    return 0;
}

int tide__spawn_ex(tide_exec_t *ex, tide_future_t *fut, unsigned flags,
                   size_t extra, void (*on_finish)(tide_task_t *),
                   tide_task_t **out) {
    if (ex->closing)
        return -ESHUTDOWN;
    tide_task_t *t;
    int rc = task_new(ex->remote, fut, flags, extra, on_finish, &t);
    if (rc < 0)
        return rc;
    task_link(ex, t);
    notify_update(ex);
    *out = t;
    task_waker_wake_by_ref(&t->wk); /* first poll from the loop */
    return 0;
}

int tide__spawn(tide_exec_t *ex, tide_future_t *fut, unsigned flags,
                tide_task_t **out) {
    return tide__spawn_ex(ex, fut, flags, 0, NULL, out);
}

static tide_poll_t join_poll(tide_future_t *f, tide_cx_t *cx) {
    tide_join_t *j = TIDE_CONTAINER_OF(f, tide_join_t, fut);
    tide_task_t *t = j->task;
    if (t == NULL) {
        f->result = -EINVAL;
        return TIDE_READY;
    }
    if (atomic_load_explicit(&t->state, memory_order_acquire) & TASK_COMPLETE) {
        f->result = t->output;
        return TIDE_READY;
    }
    tide_waker_register(&t->join_waker, cx->waker);
    return TIDE_PENDING;
}

static void join_drop(tide_future_t *f) {
    tide_join_t *j = TIDE_CONTAINER_OF(f, tide_join_t, fut);
    tide_task_t *t = j->task;
    if (t == NULL)
        return;
    j->task = NULL;
    tide_waker_drop(&t->join_waker);
    tide__task_unref(t);
}

static const tide_future_vtable_t join_vt = {join_poll, join_drop};

void tide__join_init(tide_join_t *j, tide_task_t *t) {
    tide_future_init(&j->fut, &join_vt);
    j->task = NULL;
    if (t != NULL) {
        task_ref(t);
        j->task = t;
    }
}

int tide_spawn(tide_exec_t *ex, tide_future_t *fut, tide_join_t *join) {
    if (join != NULL) {
        /* An empty handle even on failure: awaiting it gives -EINVAL,
         * detaching or dropping it is a no-op. */
        tide_future_init(&join->fut, &join_vt);
        join->task = NULL;
    }
    if (ex == NULL || fut == NULL)
        return -EINVAL;
    tide_task_t *t;
    int rc = tide__spawn(ex, fut, 0, &t);
    if (rc < 0)
        return rc;
    if (join != NULL) {
        task_ref(t);
        join->task = t;
    }
    return 0;
}

void tide__task_abort(tide_task_t *t) {
    if (atomic_load_explicit(&t->state, memory_order_acquire) & TASK_COMPLETE)
        return;
    t->flags |= TASK_ABORT;
    /* A running task is finished when its poll returns; a waiting one is
     * queued so that the executor drops it instead of polling it. */
    if (!(t->flags & TASK_RUNNING))
        task_waker_wake_by_ref(&t->wk);
}

void tide_join_abort(tide_join_t *j) {
    if (j->task != NULL)
        tide__task_abort(j->task);
}

void tide_join_detach(tide_join_t *j) {
    join_drop(&j->fut);
    j->fut.vt |= TIDE__FUT_DROPPED;
}

bool tide_join_is_finished(const tide_join_t *j) {
    return j->task == NULL ||
           (atomic_load_explicit(&j->task->state, memory_order_acquire) &
            TASK_COMPLETE) != 0;
}

int tide_join_wait(tide_join_t *j, intptr_t *result) {
    tide_task_t *t = j->task;
    if (t == NULL)
        return -EINVAL;
    struct tide__remote *r = t->remote;
    if (pthread_equal(pthread_self(), r->owner))
        return -EDEADLK; /* the task can only finish on this thread */
    pthread_mutex_lock(&r->lock);
    unsigned st = atomic_fetch_or(&t->state, TASK_BWAIT);
    while (!(st & TASK_COMPLETE)) {
        pthread_cond_wait(&r->done, &r->lock);
        st = atomic_load(&t->state);
    }
    pthread_mutex_unlock(&r->lock);
    if (result != NULL)
        *result = t->output; /* written before COMPLETE was set */
    return 0;
}

/* ------------------------------------------------------------------------
 * Handles: spawning from other threads
 * ------------------------------------------------------------------------ */

/* A handle is the remote block itself: it holds one of its references, so
 * it stays valid (and answers -ESHUTDOWN) after the executor is freed. */
int tide_exec_handle(tide_exec_t *ex, tide_handle_t **out) {
    if (ex == NULL || out == NULL)
        return -EINVAL;
    if (ex->closing)
        return -ESHUTDOWN;
    atomic_fetch_add_explicit(&ex->remote->refs, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&ex->remote->handles, 1, memory_order_relaxed);
    notify_update(ex);
    *out = (tide_handle_t *)ex->remote;
    return 0;
}

void tide_handle_free(tide_handle_t *h) {
    if (h == NULL)
        return;
    struct tide__remote *r = (struct tide__remote *)h;
    if (atomic_fetch_sub_explicit(&r->handles, 1, memory_order_relaxed) == 1) {
        /* The last one: the executor may stop keeping its loop alive for
         * it, which its own thread decides (notify_cb), so wake it. */
        pthread_mutex_lock(&r->lock);
        if (!r->closed)
            remote_kick(r);
        pthread_mutex_unlock(&r->lock);
    }
    tide__remote_unref(r);
}

int tide_handle_spawn(tide_handle_t *h, tide_future_t *fut, tide_join_t *join) {
    if (join != NULL) {
        tide_future_init(&join->fut, &join_vt);
        join->task = NULL;
    }
    if (h == NULL || fut == NULL)
        return -EINVAL;
    struct tide__remote *r = (struct tide__remote *)h;
    tide_task_t *t;
    if (pthread_equal(pthread_self(), r->owner)) {
        /* the executor's own thread: an ordinary spawn (after the free,
         * `closed` says the executor is gone without touching it) */
        if (r->closed)
            return -ESHUTDOWN;
        return tide_spawn(r->exec, fut, join);
    }
    int rc = task_new(r, fut, TASK_NEW, 0, NULL, &t);
    if (rc < 0)
        return rc;
    /* NOTIFIED from the start: the remote queue holds the executor's
     * reference until the owner links it, and a second queueing would
     * link it twice. The queue's reference is the executor's own one:
     * notify_cb moves it to the run queue, which takes another below. */
    atomic_store(&t->state, TASK_NOTIFIED);
    if (join != NULL) {
        task_ref(t);
        join->task = t;
    }
    task_ref(t); /* the run queue's, once it is there */
    pthread_mutex_lock(&r->lock);
    if (r->closed) {
        pthread_mutex_unlock(&r->lock);
        /* never seen by the executor: the caller keeps fut */
        fut->vt &= ~(uintptr_t)TIDE__FUT_SPAWNED;
        t->output = -ESHUTDOWN; /* in fut's place */
        atomic_fetch_or(&t->state, TASK_COMPLETE);
        if (join != NULL) {
            join->task = NULL;
            tide__task_unref(t);
        }
        tide__task_unref(t);
        tide__task_unref(t);
        return -ESHUTDOWN;
    }
    bool was_empty = r->head == NULL;
    list_append(&r->head, &r->tail, t);
    pthread_mutex_unlock(&r->lock);
    if (was_empty)
        remote_kick(r);
    return 0;
}

/* ------------------------------------------------------------------------
 * The executor
 * ------------------------------------------------------------------------ */

int tide_exec_new(tide_exec_t **out, struct event_base *base, unsigned flags) {
    if (out == NULL || (flags & ~(unsigned)TIDE_EXEC_PRECISE_TIMER) != 0)
        return -EINVAL;
    int rc = -ENOMEM;
    struct event_config *cfg = NULL;
    struct tide__remote *r = NULL;
    tide_exec_t *ex = tide__calloc(1, sizeof *ex);
    if (ex == NULL)
        goto fail;
    ex->budget = DEFAULT_POLLS_PER_TURN;
    ex->prio = -1;
    r = tide__calloc(1, sizeof *r);
    if (r == NULL)
        goto fail_ex;
    atomic_init(&r->refs, 1); /* the executor's */
    atomic_init(&r->handles, 0);
    r->owner = pthread_self();
    r->efd = -1;
    ex->remote = r;
    if (base == NULL) {
        cfg = event_config_new();
        if (cfg == NULL)
            goto fail_ex;
        /* Our own base is only ever touched from this thread (remote wakes
         * use the eventfd), so it needs no locks even if the process made
         * libevent thread-aware. */
        int bflags = EVENT_BASE_FLAG_NOLOCK;
        if (flags & TIDE_EXEC_PRECISE_TIMER)
            bflags |= EVENT_BASE_FLAG_PRECISE_TIMER;
        event_config_set_flag(cfg, bflags);
        base = event_base_new_with_config(cfg);
        event_config_free(cfg);
        if (base == NULL) {
            rc = -EIO;
            goto fail_ex;
        }
        ex->own_base = true;
    }
    ex->base = base;

    r->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (r->efd < 0) {
        rc = -errno;
        goto fail_base;
    }
    if (pthread_mutex_init(&r->lock, NULL) != 0) {
        rc = -ENOMEM;
        goto fail_efd;
    }
    if (pthread_cond_init(&r->done, NULL) != 0) {
        pthread_mutex_destroy(&r->lock);
        rc = -ENOMEM;
        goto fail_efd;
    }
    r->exec = ex;
    /* EV_PERSIST, though run_ev is only ever activated or added with a
     * zero timeout: libevent removes a non-persistent event that ran with
     * event_del (about 70 instructions a turn, one turn per message at one
     * connection); a persistent one only leaves the active queue. A zero
     * timeout is not rescheduled (libevent re-adds a persistent event's
     * timeout only when it is non-zero), and a fired timeout is deleted
     * before the callback runs, so run_ev is never left pending. */
    if (event_assign(&ex->run_ev, base, -1, EV_PERSIST, run_cb, ex) != 0 ||
        event_assign(&ex->notify_ev, base, r->efd, EV_READ | EV_PERSIST,
                     notify_cb, ex) != 0) {
        rc = -EIO;
        goto fail_lock;
    }
    *out = ex;
    return 0;

fail_lock:
    pthread_cond_destroy(&r->done);
    pthread_mutex_destroy(&r->lock);
fail_efd:
    close(r->efd);
fail_base:
    if (ex->own_base)
        event_base_free(base);
fail_ex:
    tide__free(r);
    tide__free(ex);
fail:
    return rc;
}

void tide_exec_free(tide_exec_t *ex) {
    if (ex == NULL)
        return;
    TIDE__CHECK(!ex->in_run);
    ex->closing = true;

    /* From here on, wakes and spawns from other threads are refused; the
     * block itself lives on while tasks (held by join handles or wakers)
     * and handles refer to it. Tasks spawned from elsewhere that the loop
     * has not seen yet are linked, so that they are dropped with the rest
     * (their joiners see -ECANCELED). */
    struct tide__remote *r = ex->remote;
    pthread_mutex_lock(&r->lock);
    r->closed = true;
    tide_task_t *t = r->head;
    r->head = r->tail = NULL;
    pthread_mutex_unlock(&r->lock);
    while (t != NULL) {
        tide_task_t *next = t->qnext;
        if (t->flags & TASK_NEW) {
            task_link(ex, t);    /* the queue's reference is the executor's */
            tide__task_unref(t); /* the run queue's, taken at the spawn */
        } else {
            tide__task_unref(t);
        }
        t = next;
    }

    /* Drop every task. A future's drop may free other tasks' handles or
     * wake tasks (ignored now), but cannot add tasks: spawn refuses. */
    while (ex->tasks != NULL) {
        t = ex->tasks;
        atomic_fetch_or_explicit(&t->state, TASK_NOTIFIED,
                                 memory_order_acq_rel);
        task_finish(ex, t, -ECANCELED);
    }
    while ((t = queue_pop(ex)) != NULL)
        tide__task_unref(t);

    /* The layers above core release what they attached. */
    for (int i = TIDE__EXT_MAX - 1; i >= 0; i--) {
        if (ex->ext[i].free != NULL)
            ex->ext[i].free(ex, ex->ext[i].state);
        memset(&ex->ext[i], 0, sizeof ex->ext[i]);
    }

    event_del(&ex->run_ev);
    event_del(&ex->notify_ev);
    if (ex->own_base)
        event_base_free(ex->base);
    tide__free(ex);
    tide__remote_unref(r);
}

struct event_base *tide_exec_base(tide_exec_t *ex) {
    return ex->base;
}

int tide_exec_block_on(tide_exec_t *ex, tide_future_t *fut) {
    if (ex == NULL || fut == NULL)
        return -EINVAL;
    if (!ex->own_base)
        return -EPERM;
    if (ex->in_block_on || ex->in_run)
        return -EBUSY;
    tide_task_t *t;
    int rc = tide__spawn(ex, fut, TASK_BORROWED, &t);
    if (rc < 0)
        return rc;
    task_ref(t); /* ours, to look at the result */
    ex->root = t;
    ex->in_block_on = true;
    ex->stop = false;
    rc = 0;
    while (!(atomic_load(&t->state) & TASK_COMPLETE)) {
        /* One call runs the loop until the root completes or
         * tide_exec_stop (both break it): EVLOOP_ONCE would enter and
         * leave event_base_loop once per iteration, which costs a tenth
         * of the daemon's own instructions per message at one
         * connection. */
        int lr = event_base_loop(ex->base, 0);
        if (lr < 0) {
            rc = -EIO;
            break;
        }
        if (lr == 1) {
            /* No event left at all (not even our eventfd's, which stays
             * pending while tasks live): nothing can ever wake fut. */
            rc = -EDEADLK;
            break;
        }
        /* A root that completed in the very poll that called
         * tide_exec_stop has its result: completion wins, or the caller
         * would poll a finished future again. */
        if (ex->stop && !(atomic_load(&t->state) & TASK_COMPLETE)) {
            rc = -EINTR;
            break;
        }
    }
    ex->in_block_on = false;
    ex->root = NULL;
    if (!(atomic_load(&t->state) & TASK_COMPLETE))
        task_finish(ex, t, rc); /* borrowed: the future is not dropped */
    tide__task_unref(t);
    return rc;
}

void tide_exec_stop(tide_exec_t *ex) {
    ex->stop = true;
    event_base_loopbreak(ex->base);
}

void tide_exec_set_budget(tide_exec_t *ex, unsigned polls) {
    ex->budget = polls ? polls : DEFAULT_POLLS_PER_TURN;
}

int tide_exec_set_priority(tide_exec_t *ex, int priority) {
    if (ex == NULL || priority < -1 ||
        priority >= event_base_get_npriorities(ex->base))
        return -EINVAL;
    int p = priority >= 0 ? priority : event_base_get_npriorities(ex->base) / 2;
    /* libevent refuses a new priority for an event on its active queue:
     * run_ev is there after any wake outside a turn, notify_ev when a
     * remote wake is waiting for its callback. Take each off the loop,
     * set it, and put it back as it was: run_ev made active again (the
     * run it owed), notify_ev added again (its eventfd is still readable,
     * so the loop reports it again). */
    if (ex->run_pending)
        event_del(&ex->run_ev);
    int rc_run = event_priority_set(&ex->run_ev, p);
    if (ex->run_pending)
        event_active(&ex->run_ev, EV_TIMEOUT, 0);
    if (ex->notify_added)
        event_del(&ex->notify_ev);
    int rc_notify = event_priority_set(&ex->notify_ev, p);
    if (ex->notify_added)
        event_add(&ex->notify_ev, NULL);
    if (rc_run != 0 || rc_notify != 0)
        return -EIO; /* not for an event off the active queue */
    ex->prio = priority;
    return 0;
}

void tide_exec_stats(const tide_exec_t *ex, tide_exec_stats_t *out) {
    *out = ex->stats;
    out->tasks = ex->ntasks;
    out->queued = ex->queued;
    out->armed_events = ex->armed;
    out->registered = ex->registered;
}
