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
 * that was there. In a host with its own handler, either leave that
 * signal to the host, or listen in tide and call the host's shutdown from
 * the task that receives it.
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
    unsigned pending;
    tide_waker_t waker;
    struct event *ev; /* libevent's, allocated at init: its layout stays
                         libevent's business, not tide's ABI */
    struct tide_signal *prev, *next; /* the executor's list of signals */
} tide_signal_t;

/* tide_signal_init: start listening for signum (SIGINT, SIGTERM, SIGHUP,
 * SIGUSR1, ...), replacing the process's handler for it until
 * tide_signal_free (see above). Any thread may call it for its own
 * executor. Allocates libevent's event for the listener (once, here).
 * Returns 0. Errors: -EINVAL (NULL, or a signal number libevent cannot
 * catch such as SIGKILL), -EBUSY (another executor listens for signals:
 * libevent serves one per process), -ENOMEM, -EIO (libevent refused). */
TIDE_EXTERN int tide_signal_init(tide_signal_t *s, tide_exec_t *exec,
                                 int signum);

/* tide_signal_recv: a future ready when the signal has arrived at least
 * once since the last recv completed; result: how many times (signals
 * that arrive close together coalesce). One recv at a time per
 * tide_signal_t. Cancel safe: a dropped recv consumes nothing. */
TIDE_EXTERN tide_future_t *tide_signal_recv(tide_signal_t *s);

/* tide_signal_free: stop listening (the signal's disposition returns to
 * what it was). A recv pending on s is woken and completes with -EBADF
 * (the recv future must still be dropped before s's memory goes). The
 * tide_signal_t's memory is the caller's. */
TIDE_EXTERN void tide_signal_free(tide_signal_t *s);

#ifdef __cplusplus
}
#endif
#endif
