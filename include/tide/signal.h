/*
 * tide/signal.h: receiving signals as futures, through libevent's signal
 * events (no handler of your own, no self-pipe to write).
 *
 * A tide_signal_t listens from tide_signal_init until tide_signal_free, so
 * a signal that arrives while nobody is awaiting is counted, not lost.
 *
 * One executor per process. libevent delivers signals to one event_base
 * per process: the last base to add a signal event takes all signals from
 * the others, without a word. So tide lets one executor listen at a time:
 * while any tide_signal_t of one executor is live, tide_signal_init on
 * another executor returns -EBUSY. (tide cannot see signal events that
 * the host adds to another base with evsignal_new itself: an application
 * that does must keep tide's signals on that same base.)
 *
 * Embedding: listening replaces the process's handler for that signal.
 * libevent installs its own with sigaction, so a host that handles, say,
 * SIGTERM with signal() or sigaction() no longer sees SIGTERM while a
 * tide_signal_t listens for it; tide_signal_free restores the handler
 * that was there (the host's, as libevent saved it). A host that must
 * keep its handler running asks for chaining (TIDE_SIGNAL_CHAIN, with
 * tide_signal_init_flags): while such a listener lives, each delivery
 * runs libevent's handler and then the host's previous one, in signal
 * context, on whichever thread the kernel picked, with errno preserved,
 * with the siginfo and context the kernel passed (for a handler that was
 * installed with SA_SIGINFO), and the host's SA_RESTART, SA_ONSTACK,
 * SA_NOCLDSTOP and SA_NOCLDWAIT; all signals are blocked while both run
 * (libevent's mask), and an SA_RESETHAND handler runs once. The tide
 * listener counts the signal as without chaining.
 *
 * What chaining does not do: a previous disposition of SIG_DFL or SIG_IGN
 * is not chained (the default action, terminating or stopping or
 * ignoring, is not taken while tide listens, and SIGCHLD set to SIG_IGN
 * no longer reaps children by itself). It chains to a sigaction/signal()
 * handler, not to the host's evsignal events (those on the same base
 * already get the signal through libevent; those on another base do not,
 * see above). The previous disposition is read when tide's first
 * listener for the signal starts: a host that changes the signal's
 * disposition while tide listens breaks chaining and what
 * tide_signal_free restores (undefined behaviour). Dispositions are
 * process-wide: chaining is on for a signal while any listener of it
 * asked for it.
 */
#ifndef TIDE_SIGNAL_H
#define TIDE_SIGNAL_H

#include "tide/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A signal listener; the memory is the caller's (see tide_signal_init). */
typedef struct tide_signal {
    tide_future_t fut; /* private, reused by each tide_signal_recv */
    tide_exec_t *exec;
    int signum;
    unsigned flags : 4;    /* TIDE_SIGNAL_CHAIN */
    unsigned pending : 28; /* saturates at TIDE__SIGNAL_PENDING_MAX */
    tide_waker_t waker;
    struct event *ev; /* libevent's, allocated at init: its layout stays
                         libevent's business, not tide's ABI */
    struct tide_signal *prev, *next; /* the executor's list of signals */
} tide_signal_t;

/* private: what one recv can count (2^28 - 1) */
#define TIDE__SIGNAL_PENDING_MAX ((1u << 28) - 1)

/* Flags for tide_signal_init_flags. */
enum {
    /* Keep the host's handler: while the listener lives, a delivery of
     * the signal also calls the disposition the signal had before tide
     * started listening, if that was a handler (see above). */
    TIDE_SIGNAL_CHAIN = 1u << 0
};

/* tide_signal_init: start listening for signum (SIGINT, SIGTERM, SIGHUP,
 * SIGUSR1, ...), replacing the process's handler for it until
 * tide_signal_free (see above). Any thread may call it for its own
 * executor. Allocates libevent's event for the listener (once, here).
 * Returns 0. Errors: -EINVAL (NULL, or a signal number libevent cannot
 * catch such as SIGKILL), -EBUSY (another executor listens for signals:
 * libevent serves one per process), -ENOMEM, -EIO (libevent refused, or
 * the signal's disposition could not be read or set). */
TIDE_EXTERN int tide_signal_init(tide_signal_t *s, tide_exec_t *exec,
                                 int signum);

/* tide_signal_init_flags: tide_signal_init with flags: 0 (the same) or
 * TIDE_SIGNAL_CHAIN (the host's previous handler keeps running, see
 * above). Errors as tide_signal_init, and -EINVAL for an unknown flag. */
TIDE_EXTERN int tide_signal_init_flags(tide_signal_t *s, tide_exec_t *exec,
                                       int signum, unsigned flags);

/* tide_signal_recv: a future ready when the signal has arrived at least
 * once since the last recv completed; result: how many times, up to
 * 2^28 - 1 (signals that arrive close together coalesce). One recv at a time per
 * tide_signal_t. Cancel safe: a dropped recv consumes nothing. */
TIDE_EXTERN tide_future_t *tide_signal_recv(tide_signal_t *s);

/* tide_signal_free: stop listening. When the signal's last listener is
 * freed, its disposition returns to what it was when its first started;
 * chaining stops when its last chaining listener is freed. A recv
 * pending on s is woken and completes with -EBADF (the recv future must
 * still be dropped before s's memory goes). The tide_signal_t's memory
 * is the caller's. */
TIDE_EXTERN void tide_signal_free(tide_signal_t *s);

#ifdef __cplusplus
}
#endif
#endif
