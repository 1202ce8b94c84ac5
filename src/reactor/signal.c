/*
 * src/reactor/signal.c: signals as futures, through libevent's signal
 * events. The event is persistent from init to free, so signals that arrive
 * between two recvs are counted rather than lost.
 */
#include <pthread.h>
#include <signal.h>
#include <string.h>

#include "core/internal.h"
#include "tide/signal.h"

/* libevent delivers signals to one event_base per process: the last one to
 * add a signal event takes every signal from the others, silently. That is
 * a process-wide fact, so this is the one process-wide state of tide: the
 * base whose executor listens, and how many of its listeners are live. A
 * second executor is refused (-EBUSY) until the first stops listening. */
static pthread_mutex_t owner_lock = PTHREAD_MUTEX_INITIALIZER;
static struct event_base *owner_base;
static unsigned owner_listeners;

static int owner_take(struct event_base *base) {
    int rc = 0;
    pthread_mutex_lock(&owner_lock);
    if (owner_base != NULL && owner_base != base) {
        rc = -EBUSY;
    } else {
        owner_base = base;
        owner_listeners++;
    }
    pthread_mutex_unlock(&owner_lock);
    return rc;
}

static void owner_release(void) {
    pthread_mutex_lock(&owner_lock);
    if (--owner_listeners == 0)
        owner_base = NULL;
    pthread_mutex_unlock(&owner_lock);
}

static void signal_cb(evutil_socket_t signum, short what, void *arg) {
    tide_signal_t *s = arg;
    s->pending++;
    tide_waker_wake(&s->waker);
}

/* The executor's list of listeners is the signal layer's state on it
 * (TIDE__EXT_SIGNAL): its head. */
static tide_signal_t *signals_of(const tide_exec_t *ex) {
    return tide__exec_ext(ex, TIDE__EXT_SIGNAL);
}

static void detach_signals(tide_exec_t *ex, void *state);

static void set_signals(tide_exec_t *ex, tide_signal_t *head) {
    tide__exec_attach(ex, TIDE__EXT_SIGNAL, head, detach_signals);
}

/* tide_exec_free (the executor's hook). */
static void detach_signals(tide_exec_t *ex, void *state) {
    (void)state;
    while (signals_of(ex) != NULL)
        tide_signal_free(signals_of(ex));
}

int tide_signal_init(tide_signal_t *s, tide_exec_t *exec, int signum) {
    if (s == NULL || exec == NULL || signum <= 0 || signum >= NSIG ||
        signum == SIGKILL || signum == SIGSTOP)
        return -EINVAL;
    memset(s, 0, sizeof *s);
    int rc = owner_take(tide_exec_base(exec));
    if (rc < 0)
        return rc;
    s->ev = tide__malloc(event_get_struct_event_size());
    if (s->ev == NULL) {
        owner_release();
        return -ENOMEM;
    }
    s->exec = exec;
    s->signum = signum;
    if (evsignal_assign(s->ev, tide_exec_base(exec), signum, signal_cb, s) !=
            0 ||
        evsignal_add(s->ev, NULL) != 0) {
        tide__free(s->ev);
        s->ev = NULL;
        s->exec = NULL;
        owner_release();
        return -EIO;
    }
    tide__armed(exec, 1);
    /* On the executor's list, so that tide_exec_free stops it and a later
     * tide_signal_free finds it detached instead of a freed executor. */
    s->prev = NULL;
    s->next = signals_of(exec);
    if (s->next != NULL)
        s->next->prev = s;
    set_signals(exec, s);
    return 0;
}

static tide_poll_t recv_poll(tide_future_t *f, tide_cx_t *cx) {
    tide_signal_t *s = TIDE_CONTAINER_OF(f, tide_signal_t, fut);
    if (s->exec == NULL) {
        f->result = -EBADF;
        return TIDE_READY;
    }
    if (s->pending > 0) {
        f->result = (intptr_t)s->pending;
        s->pending = 0;
        return TIDE_READY;
    }
    tide_waker_register(&s->waker, cx->waker);
    return TIDE_PENDING;
}

static void recv_drop(tide_future_t *f) {
    tide_signal_t *s = TIDE_CONTAINER_OF(f, tide_signal_t, fut);
    tide_waker_drop(&s->waker);
}

static const tide_future_vtable_t recv_vt = {recv_poll, recv_drop};

tide_future_t *tide_signal_recv(tide_signal_t *s) {
    return tide_future_init(&s->fut, &recv_vt);
}

void tide_signal_free(tide_signal_t *s) {
    if (s == NULL || s->exec == NULL)
        return;
    evsignal_del(s->ev);
    tide__free(s->ev);
    s->ev = NULL;
    owner_release();
    tide__armed(s->exec, -1);
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        set_signals(s->exec, s->next);
    if (s->next != NULL)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
    s->exec = NULL;
    /* A recv waiting now would never be woken again: wake it, so that it
     * completes with -EBADF instead of sleeping forever. */
    tide_waker_wake(&s->waker);
}
