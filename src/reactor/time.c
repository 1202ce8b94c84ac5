/*
 * src/reactor/time.c: sleep, sleep until, interval and timeout.
 *
 * A timer never completes early by tide_now(): libevent may measure time
 * with a coarse clock and fire a little before our deadline, in which case
 * the remainder is waited again.
 */
#include <string.h>
#include <time.h>

#include "core/internal.h"
#include "tide/time.h"

/* a + b, or UINT64_MAX (never) if the sum does not fit: a duration of
 * UINT64_MAX means "no deadline", not a deadline that wrapped into the
 * past. */
static uint64_t add_sat(uint64_t a, uint64_t b) {
    return b > UINT64_MAX - a ? UINT64_MAX : a + b;
}

uint64_t tide_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * TIDE_USEC_PER_SEC +
           (uint64_t)ts.tv_nsec / 1000u;
}

/* sleep -------------------------------------------------------------------- */

static void sleep_disarm(tide_sleep_t *s) {
    if (s->armed) {
        event_del(&s->ev);
        s->armed = false;
        tide__armed(s->exec, -1);
    }
}

static void sleep_cb(evutil_socket_t fd, short what, void *arg) {
    tide_sleep_t *s = arg;
    s->armed = false;
    tide__armed(s->exec, -1);
    tide_waker_wake(&s->waker);
}

static int sleep_arm(tide_sleep_t *s, uint64_t now) {
    uint64_t left = s->deadline - now;
    struct timeval tv = {(time_t)(left / TIDE_USEC_PER_SEC),
                         (suseconds_t)(left % TIDE_USEC_PER_SEC)};
    if (event_add(&s->ev, &tv) != 0)
        return -EIO;
    if (!s->armed)
        tide__armed(s->exec, 1);
    s->armed = true;
    return 0;
}

static tide_poll_t sleep_poll(tide_future_t *f, tide_cx_t *cx) {
    tide_sleep_t *s = TIDE_CONTAINER_OF(f, tide_sleep_t, fut);
    uint64_t now = tide_now();
    if (!s->assigned) {
        if (cx->exec == NULL) {
            f->result = -EINVAL;
            return TIDE_READY;
        }
        s->exec = cx->exec;
        event_assign(&s->ev, tide_exec_base(cx->exec), -1, 0, sleep_cb, s);
        s->assigned = true;
        if (s->relative) {
            s->deadline = add_sat(now, s->usec);
            s->relative = false;
        }
    }
    if (now >= s->deadline) {
        sleep_disarm(s);
        tide_waker_drop(&s->waker);
        f->result = 0;
        return TIDE_READY;
    }
    tide_waker_register(&s->waker, cx->waker);
    if (!s->armed && sleep_arm(s, now) < 0) {
        f->result = -EIO;
        return TIDE_READY;
    }
    return TIDE_PENDING;
}

static void sleep_drop(tide_future_t *f) {
    tide_sleep_t *s = TIDE_CONTAINER_OF(f, tide_sleep_t, fut);
    sleep_disarm(s);
    tide_waker_drop(&s->waker);
}

static tide_future_t *sleep_init(tide_sleep_t *s) {
    s->exec = NULL;
    s->waker = TIDE_WAKER_EMPTY;
    s->assigned = s->armed = false;
    return tide_future_init(&s->fut, sleep_poll, sleep_drop);
}

tide_future_t *tide_sleep(tide_sleep_t *s, uint64_t usec) {
    s->usec = usec;
    s->relative = true;
    s->deadline = 0;
    return sleep_init(s);
}

tide_future_t *tide_sleep_until(tide_sleep_t *s, uint64_t deadline) {
    s->usec = 0;
    s->relative = false;
    s->deadline = deadline;
    return sleep_init(s);
}

void tide_sleep_reset(tide_sleep_t *s, uint64_t deadline) {
    TIDE__CHECK(!(s->fut.state & TIDE__FUT_DROPPED));
    s->deadline = deadline;
    s->relative = false;
    s->fut.state &= TIDE__FUT_SPAWNED; /* may be awaited again */
    if (s->armed) {
        uint64_t now = tide_now();
        if (now >= deadline) {
            sleep_disarm(s);
            tide_waker_wake_by_ref(&s->waker);
        } else if (sleep_arm(s, now) < 0) {
            sleep_disarm(s);
            tide_waker_wake_by_ref(&s->waker);
        }
    }
}

/* interval ----------------------------------------------------------------- */

static tide_poll_t interval_poll(tide_future_t *f, tide_cx_t *cx) {
    tide_interval_t *iv = TIDE_CONTAINER_OF(f, tide_interval_t, fut);
    if (tide_future_poll(&iv->timer.fut, cx) == TIDE_PENDING)
        return TIDE_PENDING;
    if (iv->timer.fut.result < 0) {
        f->result = iv->timer.fut.result;
        return TIDE_READY;
    }
    uint64_t now = tide_now();
    uint64_t late = now > iv->next ? now - iv->next : 0;
    uint64_t periods = 1 + late / iv->period; /* late: skip, don't burst */
    iv->next = periods > UINT64_MAX / iv->period
                   ? UINT64_MAX
                   : add_sat(iv->next, periods * iv->period);
    f->result = (intptr_t)periods;
    return TIDE_READY;
}

static void interval_tick_drop(tide_future_t *f) {
    tide_interval_t *iv = TIDE_CONTAINER_OF(f, tide_interval_t, fut);
    sleep_disarm(&iv->timer);
    tide_waker_drop(&iv->timer.waker);
}

int tide_interval_init(tide_interval_t *iv, uint64_t period) {
    if (iv == NULL || period == 0)
        return -EINVAL;
    memset(iv, 0, sizeof *iv);
    iv->period = period;
    tide_sleep_until(&iv->timer, 0);
    return 0;
}

tide_future_t *tide_interval_tick(tide_interval_t *iv) {
    if (!iv->started) {
        iv->started = true;
        iv->next = tide_now(); /* the first tick is immediate */
    }
    tide_sleep_reset(&iv->timer, iv->next);
    return tide_future_init(&iv->fut, interval_poll, interval_tick_drop);
}

void tide_interval_drop(tide_interval_t *iv) {
    sleep_disarm(&iv->timer);
    tide_waker_drop(&iv->timer.waker);
}

/* timeout ------------------------------------------------------------------ */

static tide_poll_t timeout_poll(tide_future_t *f, tide_cx_t *cx) {
    tide_timeout_t *t = TIDE_CONTAINER_OF(f, tide_timeout_t, fut);
    if (tide_future_poll(t->inner, cx) == TIDE_READY) {
        f->result = t->inner->result;
        tide_future_drop(t->inner);
        tide_future_drop(&t->timer.fut);
        return TIDE_READY;
    }
    if (tide_future_poll(&t->timer.fut, cx) == TIDE_PENDING)
        return TIDE_PENDING;
    tide_future_drop(t->inner); /* disarms whatever it waited on */
    tide_future_drop(&t->timer.fut);
    f->result = -ETIMEDOUT;
    return TIDE_READY;
}

static void timeout_drop(tide_future_t *f) {
    tide_timeout_t *t = TIDE_CONTAINER_OF(f, tide_timeout_t, fut);
    tide_future_drop(t->inner);
    tide_future_drop(&t->timer.fut);
}

tide_future_t *tide_timeout(tide_timeout_t *t, tide_future_t *inner,
                            uint64_t usec) {
    t->inner = inner;
    tide_sleep(&t->timer, usec);
    return tide_future_init(&t->fut, timeout_poll, timeout_drop);
}
