/*
 * tide/time.h: sleeping, deadlines, intervals and timeouts.
 *
 * Durations are microseconds (uint64_t), deadlines are microseconds on the
 * monotonic clock (tide_now). They reach libevent as a struct timeval
 * unrounded; how finely the loop then wakes depends on its backend (epoll
 * rounds up to the next millisecond unless the base has precise timers:
 * see TIDE_EXEC_PRECISE_TIMER).
 *
 * Time belongs to the executor: a pending timer is an entry in the
 * executor's heap (the heap grows by doubling, so a timer allocates only
 * when more timers are pending than ever before), behind one libevent
 * timer event set for the earliest deadline. A timer is started at its
 * first poll and stopped when it completes or is dropped. All are cancel
 * safe: a dropped timer has no effect.
 *
 * Order: timers fire in the order of their deadlines, and timers with the
 * same deadline in the order they were started (first polled, or last
 * reset), as libuv guarantees; the tasks they wake are polled in that
 * order.
 */
#ifndef TIDE_TIME_H
#define TIDE_TIME_H

#include "tide/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Microseconds in a millisecond, for durations: 5 * TIDE_USEC_PER_MSEC. */
#define TIDE_USEC_PER_MSEC UINT64_C(1000)
/* Microseconds in a second. */
#define TIDE_USEC_PER_SEC UINT64_C(1000000)

/* tide_now: microseconds on the monotonic clock. */
TIDE_EXTERN uint64_t tide_now(void);

/* A timer future (80 bytes on LP64). Result: 0 when the deadline has
 * passed; -ENOMEM if the executor's timer heap could not grow; -EINVAL if
 * polled without an executor (cx->exec NULL). */
typedef struct tide_sleep {
    tide_future_t fut;
    /* private (see src/reactor/time.c) */
    uint64_t deadline; /* when it is due; the duration until the first poll */
    uint64_t key;      /* where it sits in the heap: <= deadline */
    tide_exec_t *exec; /* set at the first poll */
    tide_waker_t waker;
    uint32_t seq;  /* start order of deadline, among equal deadlines */
    uint32_t kseq; /* start order of key */
    uint32_t slot; /* position in the executor's heap + 1; 0: stopped */
    bool relative;
    bool fired; /* taken off the heap as due, not yet polled */
} tide_sleep_t;

/* tide_sleep: a future ready `usec` microseconds after its first poll. */
TIDE_EXTERN tide_future_t *tide_sleep(tide_sleep_t *s, uint64_t usec);

/* tide_sleep_until: a future ready once tide_now() >= deadline. */
TIDE_EXTERN tide_future_t *tide_sleep_until(tide_sleep_t *s, uint64_t deadline);

/* tide_sleep_reset: move the deadline of a sleep that has not been dropped;
 * it may be pending (it re-arms) or done (it can be awaited again: this is
 * the one future that may be reused, after tide_sleep_reset). Moving a
 * pending sleep later is O(1) (its place in the executor's heap is fixed
 * once, when the old deadline comes: the idle timeout reset on every
 * message costs one heap update per timeout period); moving it earlier is
 * O(log n) in the executor's pending timers. */
TIDE_EXTERN void tide_sleep_reset(tide_sleep_t *s, uint64_t deadline);

/*
 * An interval: ticks every `period` microseconds. Each call of
 * tide_interval_tick gives a future for the next tick; its result is the
 * number of periods since the previous tick (1 normally, more if the task
 * was late: missed ticks are skipped, not replayed in a burst). The first
 * tick is immediate.
 */
typedef struct tide_interval {
    tide_future_t fut; /* private: the current tick */
    tide_sleep_t timer;
    uint64_t period;
    uint64_t next;
    bool started;
} tide_interval_t;

/* tide_interval_init: period must be > 0 (else -EINVAL). Returns 0. */
TIDE_EXTERN int tide_interval_init(tide_interval_t *iv, uint64_t period);

/* tide_interval_tick: the future of the next tick; await it, then call
 * again. Dropping it leaves the interval's schedule as it was. */
TIDE_EXTERN tide_future_t *tide_interval_tick(tide_interval_t *iv);

/* tide_interval_drop: disarm; call when done with the interval. */
TIDE_EXTERN void tide_interval_drop(tide_interval_t *iv);

/*
 * A timeout around any future: result = the inner future's result if it
 * completes within `usec` of the first poll, else -ETIMEDOUT (the inner
 * future is then dropped, disarming its events). The timeout takes over
 * dropping inner. Cancel safety: that of inner.
 */
typedef struct tide_timeout {
    tide_future_t fut;
    tide_future_t *inner; /* private */
    tide_sleep_t timer;
} tide_timeout_t;

TIDE_EXTERN tide_future_t *tide_timeout(tide_timeout_t *t, tide_future_t *inner,
                                        uint64_t usec);

#ifdef __cplusplus
}
#endif
#endif
