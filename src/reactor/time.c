/*
 * src/reactor/time.c: the executor's timer heap; sleep, sleep until,
 * interval and timeout on it.
 *
 * A timer never completes early by tide_now(): libevent may measure time
 * with a coarse clock and fire a little before our deadline, in which case
 * the remainder is waited again.
 */
#include <string.h>
#include <time.h>

#include "reactor/internal.h"
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

/* the executor's timer heap ---------------------------------------------- */

/* A binary min-heap of the pending sleeps, behind one libevent timer event
 * set for the earliest (the time layer's state on the executor,
 * TIDE__EXT_TIME, created by the first timer).
 *
 * A sleep sits in the heap under (key, kseq) and is due at (deadline,
 * seq); seq is the start order, so that equal deadlines fire in the order
 * they were started (or last reset). The two pairs are equal except after
 * a reset to a later deadline, the idle-timeout pattern (nearly every
 * timer is pushed back before it fires): that reset only records the new
 * deadline, in O(1), and when the old key comes due the sleep is filed
 * again under its deadline instead of firing. Keys never pass deadlines,
 * so nothing fires late, and the heap order (on keys) is never changed
 * behind its back. Start orders are 32-bit and compared modulo 2^32: two
 * sleeps due at the same microsecond fire in start order unless 2^31
 * other starts came between them. */
struct tide__timers {
    tide_sleep_t **heap; /* heap[i]->slot == i + 1 */
    size_t n, cap;
    uint32_t seq;    /* the next start's (modulo 2^32) */
    struct event ev; /* fires at `at`, for heap[0] */
    uint64_t at;     /* when ev fires, if armed */
    bool armed;
    /* the virtual clock of tide's tests (tide__time_pause): while paused,
     * time is vnow and moves only by tide__time_advance */
    bool paused;
    uint64_t vnow;
};

static struct tide__timers *timers_of(const tide_exec_t *ex) {
    return tide__exec_ext(ex, TIDE__EXT_TIME);
}

/* The executor's clock: tide_now(), or the virtual clock while paused. */
static uint64_t clock_now(const tide_exec_t *ex) {
    const struct tide__timers *tm = ex != NULL ? timers_of(ex) : NULL;
    return tm != NULL && tm->paused ? tm->vnow : tide_now();
}

/* The heap's order: earlier key first; equal keys in start order. */
static bool before(const tide_sleep_t *a, const tide_sleep_t *b) {
    return a->key < b->key ||
           (a->key == b->key && (int32_t)(a->kseq - b->kseq) < 0);
}

/* File s under its deadline (a start, or a reset that moved it earlier). */
static void file_at_deadline(tide_sleep_t *s) {
    s->key = s->deadline;
    s->kseq = s->seq;
}

static void heap_set(struct tide__timers *tm, size_t i, tide_sleep_t *s) {
    tm->heap[i] = s;
    s->slot = (uint32_t)(i + 1);
}

static void sift_up(struct tide__timers *tm, size_t i) {
    tide_sleep_t *s = tm->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(s, tm->heap[parent]))
            break;
        heap_set(tm, i, tm->heap[parent]);
        i = parent;
    }
    heap_set(tm, i, s);
}

static void sift_down(struct tide__timers *tm, size_t i) {
    tide_sleep_t *s = tm->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= tm->n)
            break;
        if (c + 1 < tm->n && before(tm->heap[c + 1], tm->heap[c]))
            c++;
        if (!before(tm->heap[c], s))
            break;
        heap_set(tm, i, tm->heap[c]);
        i = c;
    }
    heap_set(tm, i, s);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg);

/* heap[i] changed (a new element, or a new key): move it up or down. */
static void heap_fix(struct tide__timers *tm, size_t i) {
    if (i > 0 && before(tm->heap[i], tm->heap[(i - 1) / 2]))
        sift_up(tm, i);
    else
        sift_down(tm, i);
}

/* Make the libevent event fire by the earliest deadline. A deadline that
 * moved later leaves the event where it was: it fires early, finds nothing
 * due and is set again (one callback instead of a heap update in libevent
 * per reset: the idle timeout of a busy connection is reset per message). */
static void ev_update(tide_exec_t *ex, uint64_t now) {
    struct tide__timers *tm = timers_of(ex);
    if (tm->n == 0 || tm->paused) {
        if (tm->armed) {
            event_del(&tm->ev);
            tm->armed = false;
        }
        return;
    }
    uint64_t due = tm->heap[0]->key;
    if (tm->armed && tm->at <= due)
        return;
    uint64_t left = due > now ? due - now : 0;
    struct timeval tv = {(time_t)(left / TIDE_USEC_PER_SEC),
                         (suseconds_t)(left % TIDE_USEC_PER_SEC)};
    if (event_add(&tm->ev, &tv) == 0) {
        tm->armed = true;
        tm->at = due;
    }
    /* libevent refuses a timer only for a negative or absurd timeval,
     * which tv never is: nothing to report here. */
}

/* tide_exec_free (the executor's hook). */
static void timers_free(tide_exec_t *ex, void *state) {
    struct tide__timers *tm = state;
    /* Sleeps still pending here were polled by hand and not dropped before
     * tide_exec_free (the header says they must be): forget them so that
     * their later drop touches nothing of the executor's. */
    for (size_t i = 0; i < tm->n; i++) {
        tm->heap[i]->slot = 0;
        tm->heap[i]->exec = NULL;
    }
    event_del(&tm->ev);
    tide__free(tm->heap);
    tide__free(tm);
}

/* The executor's timers, created by the first use. */
static int timers_get(tide_exec_t *ex, struct tide__timers **out) {
    struct tide__timers *tm = timers_of(ex);
    if (tm == NULL) {
        tm = tide__calloc(1, sizeof *tm);
        if (tm == NULL)
            return -ENOMEM;
        if (event_assign(&tm->ev, ex->base, -1, 0, timer_cb, ex) != 0) {
            tide__free(tm);
            return -EIO;
        }
        tide__ev_prio(ex, &tm->ev);
        tide__exec_attach(ex, TIDE__EXT_TIME, tm, timers_free);
    }
    *out = tm;
    return 0;
}

static int timer_start(tide_sleep_t *s, uint64_t now) {
    tide_exec_t *ex = s->exec;
    struct tide__timers *tm;
    int rc = timers_get(ex, &tm);
    if (rc < 0)
        return rc;
    if (tm->n == tm->cap) {
        size_t cap = tm->cap ? tm->cap * 2 : 16;
        if (cap > UINT32_MAX)
            return -ENOMEM;
        tide_sleep_t **h = tide__realloc(tm->heap, cap * sizeof *h);
        if (h == NULL)
            return -ENOMEM;
        tm->heap = h;
        tm->cap = cap;
    }
    s->seq = tm->seq++;
    file_at_deadline(s);
    tm->heap[tm->n] = s;
    sift_up(tm, tm->n++);
    tide__armed(ex, 1);
    ev_update(ex, now);
    return 0;
}

/* Take s out of the heap (the libevent event is left for ev_update). */
static void heap_remove(struct tide__timers *tm, tide_sleep_t *s) {
    size_t i = s->slot - 1;
    s->slot = 0;
    tide_sleep_t *last = tm->heap[--tm->n];
    if (i == tm->n)
        return;
    tm->heap[i] = last;
    heap_fix(tm, i);
}

/* A pending sleep is where the heap left it, or was moved (copied) while
 * pending, which would corrupt the heap: an always-on check (one load). */
static void check_in_place(const struct tide__timers *tm,
                           const tide_sleep_t *s) {
    if (tm->heap[s->slot - 1] != s) {
        fprintf(stderr,
                "tide: a sleep pending at %p was moved (copied) while it "
                "waited: the executor's timers still point at where it "
                "was. A future must stay where it was first polled until "
                "it completes or is dropped.\n",
                (const void *)s);
        abort();
    }
}

static void timer_stop(tide_sleep_t *s) {
    if (s->slot == 0)
        return;
    tide_exec_t *ex = s->exec;
    struct tide__timers *tm = timers_of(ex);
    check_in_place(tm, s);
    heap_remove(tm, s);
    tide__armed(ex, -1);
    if (tm->n == 0)
        ev_update(ex, 0); /* nothing left: let a host's loop end */
}

/* A started timer got an earlier deadline (tide_sleep_reset records a
 * later one itself): a new start, for the order; it moves up the heap
 * now, and the event may have to fire sooner. */
static void timer_restart(tide_sleep_t *s, uint64_t now) {
    struct tide__timers *tm = timers_of(s->exec);
    s->seq = tm->seq++;
    file_at_deadline(s);
    sift_up(tm, s->slot - 1);
    ev_update(s->exec, now);
}

/* Wake every timer due by `now`, in heap order, so that the tasks run in
 * deadline and start order. A woken sleep leaves the heap marked fired:
 * its next poll completes without reading the clock again (the clock is
 * read once per batch of timers, not once per timer). */
static void fire_due(tide_exec_t *ex, struct tide__timers *tm, uint64_t now) {
    while (tm->n > 0 && tm->heap[0]->key <= now) {
        tide_sleep_t *s = tm->heap[0];
        if (s->key != s->deadline || s->kseq != s->seq) {
            /* reset since it was filed: file it under its deadline (which
             * may be due too, and then fires in its order) */
            file_at_deadline(s);
            sift_down(tm, 0);
            continue;
        }
        heap_remove(tm, s);
        tide__armed(ex, -1);
        s->fired = true;
        tide_waker_wake(&s->waker);
    }
}

/* As a descriptor's event (reactor/fd.c), the timer event runs the tasks
 * it woke itself when no other event is active (tide__exec_enter), once
 * the next deadline is armed. */
static void timer_cb(evutil_socket_t fd, short what, void *arg) {
    tide_exec_t *ex = arg;
    bool run = tide__exec_enter(ex);
    struct tide__timers *tm = timers_of(ex);
    tm->armed = false;
    uint64_t now = clock_now(ex);
    fire_due(ex, tm, now);
    /* libevent's clock may fire a little before ours: the rest is waited
     * again, and so is the next deadline. */
    ev_update(ex, now);
    if (run)
        tide__exec_leave(ex);
}

int tide__time_pause(tide_exec_t *ex) {
    struct tide__timers *tm;
    int rc = timers_get(ex, &tm);
    if (rc < 0)
        return rc;
    if (!tm->paused) {
        tm->vnow = tide_now();
        tm->paused = true;
        ev_update(ex, tm->vnow); /* the libevent event has nothing to do */
    }
    return 0;
}

void tide__time_advance(tide_exec_t *ex, uint64_t usec) {
    struct tide__timers *tm = timers_of(ex);
    TIDE__CHECK(tm != NULL && tm->paused);
    tm->vnow = add_sat(tm->vnow, usec);
    fire_due(ex, tm, tm->vnow);
}

void tide__time_resume(tide_exec_t *ex) {
    struct tide__timers *tm = timers_of(ex);
    if (tm == NULL || !tm->paused)
        return;
    tm->paused = false;
    ev_update(ex, tide_now());
}

/* sleep -------------------------------------------------------------------- */

static tide_poll_t sleep_done(tide_sleep_t *s, int result) {
    tide_waker_drop(&s->waker);
    s->fut.result = result;
    return TIDE_READY;
}

static tide_poll_t sleep_poll(tide_future_t *f, tide_cx_t *cx) {
    tide_sleep_t *s = TIDE_CONTAINER_OF(f, tide_sleep_t, fut);
    if (s->fired) { /* popped by fire_due: due, no clock to read */
        s->fired = false;
        return sleep_done(s, 0);
    }
    if (s->slot != 0) { /* still in the heap: the timer will wake us */
        check_in_place(timers_of(s->exec), s);
        tide_waker_register(&s->waker, cx->waker);
        return TIDE_PENDING;
    }
    /* First poll (or first after a reset, or the executor is gone). */
    if (s->exec == NULL) {
        if (cx->exec == NULL)
            return sleep_done(s, -EINVAL);
        s->exec = cx->exec;
    }
    uint64_t now = clock_now(s->exec);
    if (s->relative) {
        s->deadline = add_sat(now, s->deadline);
        s->relative = false;
    }
    if (now >= s->deadline)
        return sleep_done(s, 0);
    int rc = timer_start(s, now);
    if (rc < 0)
        return sleep_done(s, rc);
    tide_waker_register(&s->waker, cx->waker);
    return TIDE_PENDING;
}

static void sleep_drop(tide_future_t *f) {
    tide_sleep_t *s = TIDE_CONTAINER_OF(f, tide_sleep_t, fut);
    timer_stop(s);
    tide_waker_drop(&s->waker);
}

static const tide_future_vtable_t sleep_vt = {sleep_poll, sleep_drop};

static tide_future_t *sleep_init(tide_sleep_t *s, uint64_t deadline,
                                 bool relative) {
    s->deadline = deadline;
    s->relative = relative;
    s->key = 0;
    s->seq = s->kseq = 0;
    s->exec = NULL;
    s->waker = TIDE_WAKER_EMPTY;
    s->slot = 0;
    s->fired = false;
    return tide_future_init(&s->fut, &sleep_vt);
}

tide_future_t *tide_sleep(tide_sleep_t *s, uint64_t usec) {
    return sleep_init(s, usec, true);
}

tide_future_t *tide_sleep_until(tide_sleep_t *s, uint64_t deadline) {
    return sleep_init(s, deadline, false);
}

void tide_sleep_reset(tide_sleep_t *s, uint64_t deadline) {
    TIDE__CHECK(!(s->fut.vt & TIDE__FUT_DROPPED));
    s->deadline = deadline;
    s->relative = false;
    s->fut.vt &= ~(uintptr_t)TIDE__FUT_DONE; /* may be awaited again */
    s->fired = false;
    if (s->slot != 0 && deadline >= s->key) {
        /* later: recorded (see the top); no clock to read, for a deadline
         * already past is found when the key comes due, which it is */
        s->seq = timers_of(s->exec)->seq++;
        return;
    }
    if (s->slot != 0) {
        uint64_t now = clock_now(s->exec);
        if (now >= deadline) {
            timer_stop(s);
            tide_waker_wake_by_ref(&s->waker);
        } else {
            timer_restart(s, now);
        }
    }
}

/* interval ----------------------------------------------------------------- */

static tide_poll_t interval_poll(tide_future_t *f, tide_cx_t *cx) {
    tide_interval_t *iv = TIDE_CONTAINER_OF(f, tide_interval_t, fut);
    if (!iv->started) { /* the first tick is immediate */
        if (cx->exec == NULL) {
            f->result = -EINVAL;
            return TIDE_READY;
        }
        iv->started = true;
        iv->next = add_sat(clock_now(cx->exec), iv->period);
        f->result = 1;
        return TIDE_READY;
    }
    if (tide_future_poll(&iv->timer.fut, cx) == TIDE_PENDING)
        return TIDE_PENDING;
    if (iv->timer.fut.result < 0) {
        f->result = iv->timer.fut.result;
        return TIDE_READY;
    }
    uint64_t now = clock_now(iv->timer.exec);
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
    sleep_drop(&iv->timer.fut);
}

int tide_interval_init(tide_interval_t *iv, uint64_t period) {
    if (iv == NULL || period == 0)
        return -EINVAL;
    memset(iv, 0, sizeof *iv);
    iv->period = period;
    tide_sleep_until(&iv->timer, 0);
    return 0;
}

static const tide_future_vtable_t interval_vt = {interval_poll,
                                                 interval_tick_drop};

tide_future_t *tide_interval_tick(tide_interval_t *iv) {
    if (iv->started)
        tide_sleep_reset(&iv->timer, iv->next);
    return tide_future_init(&iv->fut, &interval_vt);
}

void tide_interval_drop(tide_interval_t *iv) { sleep_drop(&iv->timer.fut); }

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

static const tide_future_vtable_t timeout_vt = {timeout_poll, timeout_drop};

tide_future_t *tide_timeout(tide_timeout_t *t, tide_future_t *inner,
                            uint64_t usec) {
    t->inner = inner;
    tide_sleep(&t->timer, usec);
    return tide_future_init(&t->fut, &timeout_vt);
}
