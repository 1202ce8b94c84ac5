/*
 * src/task/blocking.c: the blocking pool, threads that run functions which
 * block, for the futures of tide_spawn_blocking.
 *
 * One pool per executor (attached as TIDE__EXT_POOL on first use). A job
 * is its future: the future's memory is the queue node, so queueing
 * allocates nothing; a thread is allocated when it is started (lazily, up
 * to `max`). One mutex guards the queue, the job states, the waker slots
 * of queued and running jobs and the workers' current jobs; a worker
 * copies fn and arg out before it runs them unlocked, so a future dropped
 * meanwhile only clears the worker's pointer to it (under the lock) and
 * the result is discarded. The worker wakes the job's task through its
 * waker (the remote wake queue when the task is on the executor), outside
 * the lock; the future completes at its next poll, on the executor's
 * thread.
 */
#include <string.h>

#include "core/internal.h"
#include "tide/task.h"
#include "task/internal.h"

#define DEFAULT_THREADS 4

enum { JOB_INIT, JOB_QUEUED, JOB_RUNNING, JOB_DONE, JOB_CANCELLED };

struct worker {
    pthread_t th;
    struct pool *pool;
    tide_blocking_t *job; /* running, NULL if none or its future is gone */
    struct worker *next;
};

struct pool {
    pthread_mutex_t lock;
    pthread_cond_t cv; /* a job was queued, or shutdown */
    tide_blocking_t *head, *tail;
    size_t queued;
    unsigned max, nthreads, idle;
    bool shutdown;
    uint64_t jobs;
    struct worker *workers;
};

static void *worker_main(void *arg) {
    struct worker *w = arg;
    struct pool *p = w->pool;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->shutdown && p->head == NULL) {
            p->idle++;
            pthread_cond_wait(&p->cv, &p->lock);
            p->idle--;
        }
        if (p->shutdown)
            break; /* the queue was emptied by pool_free */
        tide_blocking_t *b = p->head;
        p->head = b->next;
        if (p->head != NULL)
            p->head->prev = NULL;
        else
            p->tail = NULL;
        p->queued--;
        p->jobs++;
        b->prev = b->next = NULL;
        b->state = JOB_RUNNING;
        b->worker = w;
        w->job = b;
        tide_blocking_fn fn = b->fn;
        void *fa = b->arg;
        void (*discard)(intptr_t) = b->discard;
        pthread_mutex_unlock(&p->lock);

        intptr_t v = fn(fa);

        pthread_mutex_lock(&p->lock);
        b = w->job; /* NULL if the future was dropped meanwhile */
        w->job = NULL;
        if (b != NULL) {
            b->value = v;
            b->state = JOB_DONE;
            b->worker = NULL;
            /* Woken under the lock, so that a drop, which forgets the
             * waker under the lock too (tide__blocking_forget_waker,
             * tide__blocking_drop_running), comes either before the wake
             * (nobody is woken after it) or after. A task waker's wake
             * from here takes only the executor's remote lock. */
            tide_waker_wake(&b->waker);
        } else if (discard != NULL) {
            pthread_mutex_unlock(&p->lock);
            discard(v);
            pthread_mutex_lock(&p->lock);
        }
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* At tide_exec_free, after every task was dropped: cancel what is queued,
 * let the running jobs finish for nobody, join the threads. */
static void pool_free(tide_exec_t *ex, void *state) {
    (void)ex;
    struct pool *p = state;
    tide_waker_t wk;
    pthread_mutex_lock(&p->lock);
    while (p->head != NULL) {
        tide_blocking_t *b = p->head;
        p->head = b->next;
        b->prev = b->next = NULL;
        b->state = JOB_CANCELLED;
        b->pool = NULL;
        /* a waker is dropped outside the lock: it may run user code */
        wk = b->waker;
        b->waker = TIDE_WAKER_EMPTY;
        pthread_mutex_unlock(&p->lock);
        tide_waker_drop(&wk);
        pthread_mutex_lock(&p->lock);
    }
    p->tail = NULL;
    p->queued = 0;
    for (struct worker *w = p->workers; w != NULL; w = w->next) {
        tide_blocking_t *b = w->job;
        if (b != NULL) {
            w->job = NULL;
            b->state = JOB_CANCELLED;
            b->pool = NULL;
            b->worker = NULL;
            wk = b->waker;
            b->waker = TIDE_WAKER_EMPTY;
            pthread_mutex_unlock(&p->lock);
            tide_waker_drop(&wk);
            pthread_mutex_lock(&p->lock);
        }
    }
    p->shutdown = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->lock);
    while (p->workers != NULL) {
        struct worker *w = p->workers;
        p->workers = w->next;
        pthread_join(w->th, NULL);
        tide__free(w);
    }
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->lock);
    tide__free(p);
}

static int pool_get(tide_exec_t *ex, struct pool **out) {
    struct pool *p = tide__exec_ext(ex, TIDE__EXT_POOL);
    if (p == NULL) {
        if (ex->closing)
            return -ESHUTDOWN;
        p = tide__calloc(1, sizeof *p);
        if (p == NULL)
            return -ENOMEM;
        if (pthread_mutex_init(&p->lock, NULL) != 0) {
            tide__free(p);
            return -ENOMEM;
        }
        if (pthread_cond_init(&p->cv, NULL) != 0) {
            pthread_mutex_destroy(&p->lock);
            tide__free(p);
            return -ENOMEM;
        }
        p->max = DEFAULT_THREADS;
        tide__exec_attach(ex, TIDE__EXT_POOL, p, pool_free);
    }
    *out = p;
    return 0;
}

/* Start one more thread; under the lock. */
static int worker_start(struct pool *p) {
    struct worker *w = tide__calloc(1, sizeof *w);
    if (w == NULL)
        return -ENOMEM;
    w->pool = p;
    int rc = pthread_create(&w->th, NULL, worker_main, w);
    if (rc != 0) {
        tide__free(w);
        return -rc;
    }
    w->next = p->workers;
    p->workers = w;
    p->nthreads++;
    return 0;
}

static tide_poll_t blocking_poll(tide_future_t *f, tide_cx_t *cx) {
    tide_blocking_t *b = TIDE_CONTAINER_OF(f, tide_blocking_t, fut);
    struct pool *p = b->pool;
    if (p == NULL) {
        if (b->state == JOB_CANCELLED) {
            f->result = -ECANCELED;
            return TIDE_READY;
        }
        /* first poll: queue the job */
        if (cx->exec == NULL) {
            f->result = -EINVAL;
            return TIDE_READY;
        }
        int rc = pool_get(cx->exec, &p);
        if (rc < 0) {
            f->result = rc;
            return TIDE_READY;
        }
        pthread_mutex_lock(&p->lock);
        if (p->idle <= p->queued && p->nthreads < p->max) {
            rc = worker_start(p);
            if (rc < 0 && p->nthreads == 0) {
                pthread_mutex_unlock(&p->lock);
                f->result = rc == -ENOMEM ? -ENOMEM : -EAGAIN;
                return TIDE_READY;
            }
            /* with threads running already, the job waits for one */
        }
        b->pool = p;
        b->state = JOB_QUEUED;
        b->next = NULL;
        b->prev = p->tail;
        if (p->tail != NULL)
            p->tail->next = b;
        else
            p->head = b;
        p->tail = b;
        p->queued++;
        b->waker = tide_waker_clone(cx->waker);
        pthread_cond_signal(&p->cv);
        pthread_mutex_unlock(&p->lock);
        return TIDE_PENDING;
    }
    pthread_mutex_lock(&p->lock);
    if (b->state == JOB_DONE) {
        pthread_mutex_unlock(&p->lock);
        b->pool = NULL;
        f->result = b->value;
        return TIDE_READY;
    }
    /* queued or running: keep the latest waker (the worker takes it) */
    tide_waker_t old = TIDE_WAKER_EMPTY;
    if (b->waker.target != cx->waker->target) {
        old = b->waker;
        b->waker = tide_waker_clone(cx->waker);
    }
    pthread_mutex_unlock(&p->lock);
    tide_waker_drop(&old);
    return TIDE_PENDING;
}

/* Drop b (as its future's drop) and say whether its function is still
 * running (or about to run: dequeued by a worker). */
bool tide__blocking_drop_running(tide_blocking_t *b) {
    bool running = false;
    struct pool *p = b->pool;
    b->fut.vt |= TIDE__FUT_DROPPED;
    if (p == NULL) {
        tide_waker_drop(&b->waker);
        return false;
    }
    pthread_mutex_lock(&p->lock);
    if (b->state == JOB_QUEUED) {
        if (b->prev != NULL)
            b->prev->next = b->next;
        else
            p->head = b->next;
        if (b->next != NULL)
            b->next->prev = b->prev;
        else
            p->tail = b->prev;
        p->queued--;
    } else if (b->state == JOB_RUNNING) {
        /* runs to completion for nobody */
        ((struct worker *)b->worker)->job = NULL;
        running = true;
    }
    b->state = JOB_CANCELLED;
    b->pool = NULL;
    b->worker = NULL;
    b->prev = b->next = NULL;
    tide_waker_t wk = b->waker;
    b->waker = TIDE_WAKER_EMPTY;
    pthread_mutex_unlock(&p->lock);
    tide_waker_drop(&wk);
    return running;
}

void tide__blocking_forget_waker(tide_blocking_t *b) {
    struct pool *p = b->pool;
    tide_waker_t wk = TIDE_WAKER_EMPTY;
    if (p != NULL) {
        pthread_mutex_lock(&p->lock);
        wk = b->waker;
        b->waker = TIDE_WAKER_EMPTY;
        pthread_mutex_unlock(&p->lock);
    }
    tide_waker_drop(&wk);
}

static void blocking_drop(tide_future_t *f) {
    tide__blocking_drop_running(TIDE_CONTAINER_OF(f, tide_blocking_t, fut));
}

static const tide_future_vtable_t blocking_vt = {blocking_poll, blocking_drop};

tide_future_t *tide_spawn_blocking(tide_blocking_t *b, tide_blocking_fn fn,
                                   void *arg) {
    memset(b, 0, sizeof *b);
    b->fn = fn;
    b->arg = arg;
    b->state = JOB_INIT;
    return tide_future_init(&b->fut, &blocking_vt);
}

void tide_blocking_on_discard(tide_blocking_t *b,
                              void (*discard)(intptr_t value)) {
    b->discard = discard;
}

int tide_blocking_set_threads(tide_exec_t *ex, unsigned n) {
    if (ex == NULL || n == 0)
        return -EINVAL;
    struct pool *p;
    int rc = pool_get(ex, &p);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&p->lock);
    p->max = n;
    pthread_mutex_unlock(&p->lock);
    return 0;
}

void tide_blocking_stats(tide_exec_t *ex, tide_blocking_stats_t *out) {
    memset(out, 0, sizeof *out);
    out->max = DEFAULT_THREADS;
    struct pool *p = tide__exec_ext(ex, TIDE__EXT_POOL);
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->lock);
    out->threads = p->nthreads;
    out->idle = p->idle;
    out->max = p->max;
    out->queued = p->queued;
    out->jobs = p->jobs;
    pthread_mutex_unlock(&p->lock);
}
