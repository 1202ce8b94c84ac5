/*
 * src/reactor/signal.c: signals as futures, through libevent's signal
 * events. The event is persistent from init to free, so signals that arrive
 * between two recvs are counted rather than lost.
 *
 * Chaining (TIDE_SIGNAL_CHAIN): when tide's first listener for a signal
 * starts, the disposition before libevent's evsignal_add is the host's
 * (libevent saves the same one and restores it when its last event for
 * the signal goes). While a listener that asked for chaining lives, and
 * the host's disposition was a handler, tide installs chain_handler over
 * libevent's: it calls libevent's handler, then the host's, in signal
 * context. Before the last listener's evsignal_del, libevent's handler
 * is put back, so that libevent's own restore brings the host's back.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include "core/internal.h"
#include "tide/signal.h"

/* libevent delivers signals to one event_base per process: the last one to
 * add a signal event takes every signal from the others, silently. That is
 * a process-wide fact, so this is the one process-wide state of tide: the
 * base whose executor listens, and how many of its listeners are live. A
 * second executor is refused (-EBUSY) until the first stops listening.
 * Signal dispositions are process-wide too: the chaining state per signal
 * number lives here, under the same lock. */
static pthread_mutex_t owner_lock = PTHREAD_MUTEX_INITIALIZER;
static struct event_base *owner_base;
static unsigned owner_listeners;

typedef void (*plain_fn)(int);
typedef void (*info_fn)(int, siginfo_t *, void *);

/* chain_handler reads these atomics in signal context, on any thread:
 * lock-free, so async-signal-safe. Of each pair one is set. */
_Static_assert(ATOMIC_POINTER_LOCK_FREE == 2,
               "the chain handler needs lock-free pointers");

typedef struct chain {
    /* under owner_lock */
    unsigned listeners;    /* tide's live listeners for this signal */
    unsigned chainers;     /* of which asked for TIDE_SIGNAL_CHAIN */
    bool host_handler;     /* host was a handler that libevent replaced */
    bool wrapped;          /* chain_handler is installed */
    struct sigaction host; /* before tide's first listener */
    struct sigaction lev;  /* libevent's, after its evsignal_add */
    /* read by chain_handler */
    _Atomic(plain_fn) lev_plain;
    _Atomic(info_fn) lev_info;
    _Atomic(plain_fn) host_plain;
    _Atomic(info_fn) host_info;
    atomic_bool host_once; /* SA_RESETHAND: the host's runs once */
} chain_t;

static chain_t chains[NSIG];

/* The handler a disposition names, whichever member of the union. */
static uintptr_t disp_fn(const struct sigaction *sa) {
    if (sa->sa_flags & SA_SIGINFO)
        return (uintptr_t)sa->sa_sigaction;
    return (uintptr_t)sa->sa_handler;
}

static bool is_handler(const struct sigaction *sa) {
    if (sa->sa_flags & SA_SIGINFO)
        return sa->sa_sigaction != NULL;
    return sa->sa_handler != SIG_DFL && sa->sa_handler != SIG_IGN;
}

/* Signal context: libevent's handler (it writes the signal number to its
 * socketpair), then the host's, as each expects to be called. errno is
 * the interrupted code's again when each handler starts and when this
 * returns. Only lock-free atomic loads and the two calls: nothing here
 * that is not async-signal-safe. */
static void chain_handler(int signum, siginfo_t *info, void *uc) {
    int saved = errno;
    if (signum > 0 && signum < NSIG) {
        chain_t *c = &chains[signum];
        info_fn li = atomic_load(&c->lev_info);
        plain_fn lp = atomic_load(&c->lev_plain);
        if (li != NULL)
            li(signum, info, uc);
        else if (lp != NULL)
            lp(signum);
        errno = saved;
        info_fn hi;
        plain_fn hp;
        if (atomic_load(&c->host_once)) {
            hi = atomic_exchange(&c->host_info, NULL);
            hp = atomic_exchange(&c->host_plain, NULL);
        } else {
            hi = atomic_load(&c->host_info);
            hp = atomic_load(&c->host_plain);
        }
        if (hi != NULL)
            hi(signum, info, uc);
        else if (hp != NULL)
            hp(signum);
    }
    errno = saved;
}

static void set_fns(chain_t *c, const struct sigaction *lev,
                    const struct sigaction *host) {
    bool li = lev != NULL && (lev->sa_flags & SA_SIGINFO);
    bool hi = host != NULL && (host->sa_flags & SA_SIGINFO);
    atomic_store(&c->lev_info, li ? lev->sa_sigaction : NULL);
    atomic_store(&c->lev_plain, lev != NULL && !li ? lev->sa_handler : NULL);
    atomic_store(&c->host_once,
                 host != NULL && (host->sa_flags & SA_RESETHAND) != 0);
    atomic_store(&c->host_info, hi ? host->sa_sigaction : NULL);
    atomic_store(&c->host_plain, host != NULL && !hi ? host->sa_handler : NULL);
}

/* Install or remove chain_handler so that it is there exactly while a
 * chaining listener lives and there is a host handler to chain to. The
 * handlers' addresses are stored before sigaction installs the wrapper
 * (a system call: every thread that takes the signal then sees them). */
static int chain_update(int signum) {
    chain_t *c = &chains[signum];
    bool want = c->chainers > 0 && c->host_handler;
    if (want == c->wrapped)
        return 0;
    if (!want) {
        if (sigaction(signum, &c->lev, NULL) != 0)
            return -errno;
        c->wrapped = false;
        /* a handler running now on another thread may still call the
         * host's: it would have run without tide too */
        set_fns(c, NULL, NULL);
        return 0;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = chain_handler;
    /* Both handlers run with the signals blocked that either asked for
     * (libevent asks for all). The host's flags that shape the kernel's
     * side stay the host's: SA_RESTART (a host without it expects EINTR;
     * libevent's loop and tide retry EINTR), SA_ONSTACK, and SIGCHLD's
     * SA_NOCLDSTOP and SA_NOCLDWAIT. SA_RESETHAND and SA_NODEFER are
     * not passed on: the host's one-shot handler runs once
     * (chain_handler), and nothing nests under the full mask. */
    sa.sa_mask = c->lev.sa_mask;
    for (int i = 1; i < NSIG; i++)
        if (sigismember(&c->host.sa_mask, i) == 1)
            sigaddset(&sa.sa_mask, i);
    sa.sa_flags =
        SA_SIGINFO | (c->host.sa_flags &
                      (SA_RESTART | SA_ONSTACK | SA_NOCLDSTOP | SA_NOCLDWAIT));
    set_fns(c, &c->lev, &c->host);
    if (sigaction(signum, &sa, NULL) != 0) {
        int rc = -errno;
        set_fns(c, NULL, NULL);
        return rc;
    }
    c->wrapped = true;
    return 0;
}

/* Start s's libevent event, under owner_lock: the disposition is read
 * before and after libevent's evsignal_add when s is tide's first
 * listener for the signal, and chaining is brought up to date. */
static int listen_locked(tide_signal_t *s) {
    chain_t *c = &chains[s->signum];
    bool first = c->listeners == 0;
    struct sigaction before, after;
    if (first && sigaction(s->signum, NULL, &before) != 0)
        return -EIO;
    if (evsignal_add(s->ev, NULL) != 0)
        return -EIO;
    if (first) {
        if (sigaction(s->signum, NULL, &after) != 0) {
            evsignal_del(s->ev);
            return -EIO;
        }
        c->host = before;
        c->lev = after;
        /* libevent installed its handler now, over a handler of the
         * host's (not over its own: a host evsignal for the signal on
         * this base already gets it through libevent) */
        c->host_handler =
            disp_fn(&before) != disp_fn(&after) && is_handler(&before);
    }
    c->listeners++;
    if (s->flags & TIDE_SIGNAL_CHAIN)
        c->chainers++;
    int rc = chain_update(s->signum);
    if (rc < 0) {
        c->listeners--;
        if (s->flags & TIDE_SIGNAL_CHAIN)
            c->chainers--;
        evsignal_del(s->ev);
        return -EIO;
    }
    return 0;
}

/* Stop s's libevent event, under owner_lock. The last listener puts
 * libevent's handler back first, so that libevent's evsignal_del restores
 * the host's disposition (the one it saved) and not chain_handler's. */
static void unlisten_locked(tide_signal_t *s) {
    chain_t *c = &chains[s->signum];
    c->listeners--;
    if (s->flags & TIDE_SIGNAL_CHAIN)
        c->chainers--;
    if (c->listeners == 0)
        c->chainers = 0;
    (void)chain_update(s->signum); /* only fails for a bad signum */
    evsignal_del(s->ev);
}

static void signal_cb(evutil_socket_t signum, short what, void *arg) {
    tide_signal_t *s = arg;
    if (s->pending < TIDE__SIGNAL_PENDING_MAX)
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
    return tide_signal_init_flags(s, exec, signum, 0);
}

int tide_signal_init_flags(tide_signal_t *s, tide_exec_t *exec, int signum,
                           unsigned flags) {
    if (s == NULL || exec == NULL || signum <= 0 || signum >= NSIG ||
        signum == SIGKILL || signum == SIGSTOP ||
        (flags & ~(unsigned)TIDE_SIGNAL_CHAIN) != 0)
        return -EINVAL;
    memset(s, 0, sizeof *s);
    struct event_base *base = tide_exec_base(exec);
    s->ev = tide__malloc(event_get_struct_event_size());
    if (s->ev == NULL)
        return -ENOMEM;
    s->signum = signum;
    s->flags = flags & TIDE_SIGNAL_CHAIN;
    int rc = -EIO;
    if (evsignal_assign(s->ev, base, signum, signal_cb, s) != 0)
        goto fail;
    pthread_mutex_lock(&owner_lock);
    if (owner_base != NULL && owner_base != base) {
        rc = -EBUSY;
    } else {
        rc = listen_locked(s);
        if (rc == 0) {
            owner_base = base;
            owner_listeners++;
        }
    }
    pthread_mutex_unlock(&owner_lock);
    if (rc < 0)
        goto fail;
    s->exec = exec;
    tide__armed(exec, 1);
    /* On the executor's list, so that tide_exec_free stops it and a later
     * tide_signal_free finds it detached instead of a freed executor. */
    s->prev = NULL;
    s->next = signals_of(exec);
    if (s->next != NULL)
        s->next->prev = s;
    set_signals(exec, s);
    return 0;
fail:
    tide__free(s->ev);
    s->ev = NULL;
    return rc;
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
    pthread_mutex_lock(&owner_lock);
    unlisten_locked(s);
    if (--owner_listeners == 0)
        owner_base = NULL;
    pthread_mutex_unlock(&owner_lock);
    tide__free(s->ev);
    s->ev = NULL;
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
