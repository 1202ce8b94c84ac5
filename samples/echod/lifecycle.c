/*
 * samples/echod/lifecycle.c: a worker's life. It starts (its executor,
 * listeners and tasks), serves until told to stop, stops accepting,
 * drains its connections, and ends. Worker 0 owns the signals and tells
 * the others.
 */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "echod.h"

/* Worker 0 binds first and records the bound addresses (port 0 becomes a
 * real port), which the other workers then bind with SO_REUSEPORT. */
int worker_start(worker_t *w, char *err, size_t errsize) {
    self = w;
    int rc = tide_exec_new(&w->ex, NULL, 0);
    if (rc < 0) {
        snprintf(err, errsize, "cannot create an executor: %s",
                 tide_strerror(rc));
        return rc;
    }
    if (D.opt.idle_timeout_usec != 0 && (rc = reaper_start(w)) < 0) {
        snprintf(err, errsize, "cannot start: %s", tide_strerror(rc));
        return rc;
    }
    for (size_t i = 0; i < D.opt.nlisten; i++) {
        if (w->index > 0 && tide_addr_family(&D.addr[i]) == AF_UNIX)
            continue; /* Unix sockets have no SO_REUSEPORT: thread 0's */
        if ((rc = listen_start(w, i, err, errsize)) < 0)
            return rc;
    }
    for (size_t k = 0; k < D.ninh; k++) /* every worker: see listen.c */
        if ((rc = inherit_start(w, k, err, errsize)) < 0)
            return rc;
    return 0;
}

/* Undo worker_start (and whatever ran since): close the listeners still
 * open, drop every task (each connection's drop closes its socket), free
 * the executor and the pool. */
void worker_finish(worker_t *w) {
    for (size_t i = 0; i < w->nls; i++) {
        if (w->ls[i].has_task)
            tide_join_detach(&w->ls[i].accept_task);
        w->ls[i].has_task = false;
    }
    /* The executor first: it drops the accept tasks (which refer to
     * their listeners) and the connections (each closes its socket). */
    if (w->ex != NULL) {
        if (ctr_get(&w->ctr.open) > 0)
            logmsg(ECHOD_NORMAL, "closing %llu connection(s)",
                   (unsigned long long)ctr_get(&w->ctr.open));
        tide_exec_free(w->ex);
        w->ex = NULL;
    }
    for (size_t i = 0; i < w->nls; i++)
        if (w->ls[i].l != NULL)
            free_listener(&w->ls[i]);
    pool_destroy(&w->pool);
}

/* The main task of each worker: run until told to stop, stop accepting,
 * drain, end. Worker 0 owns the signals and tells the others. -------- */

static bool no_conns(const void *arg) {
    return ctr_get(&((worker_t *)(uintptr_t)arg)->ctr.open) == 0;
}

const int signal_number[NSIGNALS] = {
    [SIGNAL_INT] = SIGINT, [SIGNAL_TERM] = SIGTERM, [SIGNAL_QUIT] = SIGQUIT,
    [SIGNAL_HUP] = SIGHUP, [SIGNAL_USR1] = SIGUSR1, [SIGNAL_USR2] = SIGUSR2,
};
const char *const signal_name[NSIGNALS] = {
    [SIGNAL_INT] = "SIGINT",   [SIGNAL_TERM] = "SIGTERM",
    [SIGNAL_QUIT] = "SIGQUIT", [SIGNAL_HUP] = "SIGHUP",
    [SIGNAL_USR1] = "SIGUSR1", [SIGNAL_USR2] = "SIGUSR2",
};

void block_signals(sigset_t *old) {
    sigset_t block;
    sigemptyset(&block);
    for (int i = 0; i < NSIGNALS; i++)
        sigaddset(&block, signal_number[i]);
    pthread_sigmask(SIG_BLOCK, &block, old);
}

typedef struct main_task {
    tide_future_t fut;
    tide_async_t co;
    worker_t *w;
    signals_t *sig; /* worker 0 only */
    tide_select_t sel;
    tide_future_t *arms[NSIGNALS + 3];
    size_t narms;
    size_t sig0; /* arms[sig0 ...]: the signals' */
    int stop;    /* the SIGNAL_* that stopped us, or -1 */
    until_t nw;  /* a level */
    level_at_t at;
    until_t cw; /* no connection open */
    tide_sleep_t nap;
    uint64_t deadline;
    size_t i;
} main_task_t;

/* The main task's wait for a level (one at a time: m->nw, m->at). */
static tide_future_t *level_wait(main_task_t *m, level_t *l, unsigned target) {
    m->at = (level_at_t){l, target};
    return until(&m->nw, &l->raised, level_reached, &m->at);
}

static void add_signal_arms(main_task_t *m) {
    m->sig0 = m->narms;
    for (int i = 0; i < NSIGNALS; i++)
        m->arms[m->narms++] = tide_signal_recv(&m->sig->s[i]);
}

/* Which arm of the last select completed. */
static tide_future_t *chosen(main_task_t *m) {
    intptr_t k = tide_async_result(&m->co);
    return k >= 0 && (size_t)k < m->narms ? m->arms[k] : NULL;
}

/* Which signal (SIGNAL_*) the last select received, or -1. */
static int chosen_signal(main_task_t *m) {
    intptr_t k = tide_async_result(&m->co);
    if (m->sig == NULL || k < 0 || (size_t)k < m->sig0 ||
        (size_t)k >= m->sig0 + NSIGNALS)
        return -1;
    return (int)((size_t)k - m->sig0);
}

static void show_counters(main_task_t *m) {
    publish_backoffs(m->w);
    print_counters();
}

/* A signal that does not stop the daemon (and, while it drains, QUIT):
 * handle it and say so. Returns false for a signal that stops (INT and
 * TERM, and QUIT while serving). */
static bool side_signal(main_task_t *m, int k, bool draining) {
    switch (k) {
    case SIGNAL_USR1:
        show_counters(m);
        return true;
    case SIGNAL_HUP:
        if (log_file() != NULL) {
            /* the line first: it goes to the file being closed */
            logmsg(ECHOD_NORMAL, "SIGHUP: reopening the log file %s",
                   log_file());
            log_reopen();
        } else {
            logmsg(ECHOD_NORMAL,
                   "SIGHUP: logging to standard error: nothing to reopen");
        }
        return true;
    case SIGNAL_USR2:
        logmsg(ECHOD_NORMAL, "SIGUSR2: ignored");
        return true;
    case SIGNAL_QUIT:
        if (!draining)
            return false;
        logmsg(ECHOD_NORMAL,
               "SIGQUIT: already stopping (SIGTERM closes at once)");
        return true;
    default:
        return false;
    }
}

static tide_poll_t main_poll(tide_future_t *f, tide_cx_t *cx) {
    main_task_t *m = TIDE_CONTAINER_OF(f, main_task_t, fut);
    worker_t *w = m->w;
    unsigned others = D.opt.threads - 1;
    int k;

    TIDE_BEGIN(&m->co);
    /* Serve until a signal that stops (worker 0) or until worker 0 says. */
    for (;;) {
        m->narms = 0;
        if (m->sig != NULL)
            add_signal_arms(m);
        else
            m->arms[m->narms++] = level_wait(m, &w->stop, 1);
        TIDE_AWAIT(&m->co, cx, tide_select(&m->sel, m->arms, m->narms));
        k = chosen_signal(m);
        if (side_signal(m, k, false))
            continue;
        m->stop = k;
        break;
    }
    if (m->sig != NULL) {
        uint64_t open = 0;
        for (unsigned i = 0; i < D.opt.threads; i++)
            open += ctr_get(&D.workers[i].ctr.open);
        if (m->stop == SIGNAL_QUIT)
            logmsg(ECHOD_NORMAL,
                   "SIGQUIT: stopping: not accepting; closing idle "
                   "connections; waiting with no time limit for %llu open "
                   "connection(s)",
                   (unsigned long long)open);
        else
            logmsg(ECHOD_NORMAL,
                   "%s: stopping: not accepting; closing idle connections; "
                   "waiting up to %.3g s for %llu open connection(s)",
                   m->stop >= 0 ? signal_name[m->stop] : "?",
                   (double)D.opt.drain_timeout_usec / 1e6,
                   (unsigned long long)open);
        for (unsigned i = 1; i < D.opt.threads; i++)
            level_raise(&D.workers[i].stop, 1, 0);
    }
    /* The idle connections go now; the others as soon as they are idle. */
    drain_wake(w);

    /* Stop accepting: abort each accept task, wait until it is gone (it
     * refers to its listener), then close the listener. */
    for (m->i = 0; m->i < w->nls; m->i++) {
        tide_join_abort(&w->ls[m->i].accept_task);
        TIDE_AWAIT(&m->co, cx, tide_join(&w->ls[m->i].accept_task));
        w->ls[m->i].has_task = false;
        free_listener(&w->ls[m->i]);
    }

    /* Drain: wait for this worker's connections to close (worker 0: and
     * for the other workers to finish), the deadline (worker 0, unless
     * SIGQUIT stopped it: the others wait for worker 0 to say), or a
     * second INT or TERM. */
    m->deadline = tide_now() + D.opt.drain_timeout_usec;
    for (;;) {
        m->narms = 0;
        if (ctr_get(&w->ctr.open) > 0)
            m->arms[m->narms++] = until(&m->cw, &w->closed, no_conns, w);
        else if (m->sig != NULL && others > 0 &&
                 level_get(&D.finished) < others)
            m->arms[m->narms++] = level_wait(m, &D.finished, others);
        else
            break; /* all done */
        if (m->sig != NULL && m->stop != SIGNAL_QUIT)
            m->arms[m->narms++] = tide_sleep_until(&m->nap, m->deadline);
        if (m->sig != NULL)
            add_signal_arms(m);
        else
            m->arms[m->narms++] = level_wait(m, &w->stop, 2);
        TIDE_AWAIT(&m->co, cx, tide_select(&m->sel, m->arms, m->narms));
        k = chosen_signal(m);
        if (side_signal(m, k, true))
            continue;
        if (chosen(m) == &m->cw.fut ||
            (m->sig != NULL && chosen(m) == &m->nw.fut))
            continue; /* progress: look again */
        if (k >= 0)
            logmsg(ECHOD_NORMAL, "second signal (%s): closing now",
                   signal_name[k]);
        else if (m->sig != NULL)
            logmsg(ECHOD_NORMAL, "drain timeout");
        break;
    }
    if (m->sig != NULL)
        for (unsigned i = 1; i < D.opt.threads; i++)
            level_raise(&D.workers[i].stop, 2, 0);
    TIDE_END(&m->co, f, 0);
}

static void main_drop(tide_future_t *f) {
    main_task_t *m = TIDE_CONTAINER_OF(f, main_task_t, fut);
    tide_async_drop(&m->co);
}

static const tide_future_vtable_t main_vt = {main_poll, main_drop};

/* Run worker w's main task until it ends (the executor then still holds
 * the connections that outlived the drain). */
void worker_run(worker_t *w, signals_t *sig) {
    main_task_t m;
    memset(&m, 0, sizeof m);
    m.w = w;
    m.sig = sig;
    m.stop = -1;
    tide_future_init(&m.fut, &main_vt);
    int rc = tide_exec_block_on(w->ex, &m.fut);
    if (rc < 0)
        logmsg(ECHOD_QUIET, "event loop: %s", tide_strerror(rc));
    tide_future_drop(&m.fut);
}

void start_report(worker_t *w, int rc) {
    pthread_mutex_lock(&D.start_mu);
    w->start_rc = rc;
    D.started++;
    pthread_cond_broadcast(&D.start_cv);
    pthread_mutex_unlock(&D.start_mu);
}

void *worker_thread(void *arg) {
    worker_t *w = arg;
    char err[256];
    int rc = worker_start(w, err, sizeof err);
    if (rc < 0)
        logmsg(ECHOD_QUIET, "thread %u: %s", w->index, err);
    start_report(w, rc);
    if (rc == 0)
        worker_run(w, NULL);
    worker_finish(w);
    level_raise(&D.finished, 0, 1);
    return NULL;
}
