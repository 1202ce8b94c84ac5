/*
 * micro: microbenchmarks of tide's runtime, one operation at a time.
 *
 *   micro [--runs R] [--scale X] [NAME...]   time each benchmark R times
 *   micro --count N NAME                     do exactly N operations, once
 *
 * The first form prints, per benchmark, one machine-readable line:
 *
 *   bench=NAME ops=N runs=R ns_per_op=... cpu_ns_per_op=... min_ns=... max_ns=...
 *
 * ns_per_op is wall time (CLOCK_MONOTONIC) over the operations of one run,
 * median over the runs; cpu_ns_per_op the same with the process's CPU time
 * (CLOCK_PROCESS_CPUTIME_ID), which the other programs on a shared machine
 * disturb less. Only the operations are timed: creating and freeing the
 * executor is not. --scale multiplies every benchmark's operation count.
 *
 * The second form is for valgrind --tool=callgrind: run it with two counts
 * and divide the difference of the instructions by the difference of the
 * counts, and everything that does not depend on the count (start-up,
 * executor creation, first-touch costs) cancels out (bench/run.sh does).
 *
 * The benchmarks (each returns non-zero if the operations did not happen as
 * intended, so a broken one cannot report a fast time):
 *
 *   spawn        spawn a task whose future is ready at its first poll, and
 *                let it complete (allocate, queue, poll, drop, free).
 *                Spawned in batches of 256 by a parent task that waits for
 *                each batch to finish.
 *   wake         a task woken N times: it wakes itself (wake_by_ref on its
 *                own waker) and answers PENDING; the executor queues it and
 *                polls it again in its next turn, after the loop was given
 *                back, which costs an epoll_wait(0).
 *   readiness    a one-shot readiness event, armed and fired: on a
 *                socketpair, write a byte to one end; the task awaits
 *                tide_fd_readable on the other, which is PENDING (readiness
 *                was cleared), so the event is waited for, fires and wakes
 *                the task; it reads the byte and clears readiness (short
 *                read). Per operation: write, epoll_wait, read.
 *   readiness-epoll  the same with a bare epoll loop (the floor).
 *   read-ready   a tide_read of one byte that completes at its first poll
 *                (started, polled, dropped, as TIDE_AWAIT does).
 *   read-pend    a tide_read on an empty stream: polled once (PENDING),
 *                dropped (cancelled: the event is disarmed at once).
 *   wake-other   two tasks wake each other; a woken task is polled in the
 *                same executor turn: one wake and one task poll per
 *                operation.
 *   sleep0       tide_sleep(0): ready at its first poll, never armed.
 *   timer-cancel tide_sleep(1 s): polled once (armed in libevent's timer
 *                heap, PENDING), then dropped (disarmed).
 *   timer-fire   tide_sleep(1 us) awaited: armed, fired, task woken, polled
 *                READY. The executor uses precise timers
 *                (TIDE_EXEC_PRECISE_TIMER, a timerfd), otherwise every
 *                wait would be rounded up to a millisecond; wall time is
 *                mostly the kernel's timer latency, CPU time the cost.
 *   mpsc-task    an 8-byte message through tide_mpsc (capacity 64) from a
 *                producer task to a consumer task of one executor.
 *   mpsc-thread  the same from a thread (tide_mpsc_send_blocking).
 *   pipe-thread  the same hand-off through a pipe: a thread's blocking
 *                writes, a task that awaits readability and drains.
 *   event-active libevent alone, one loop: a producer and a consumer event
 *                activating each other around a 64-slot queue (the floor).
 *   event-active-thread  a thread, a locked 64-slot queue and event_active
 *                on a thread-aware base (evthread_use_pthreads).
 *                callgrind does not count kernel instructions: for the
 *                pipe, its figure is user space only.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include <tide.h>

/* ------------------------------------------------------------------ clocks */

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The timed region: everything between mark_start and mark_end. */
static uint64_t wall0, cpu0, wall_ns, cpu_ns;

static void mark_start(void)
{
	wall0 = clock_ns(CLOCK_MONOTONIC);
	cpu0 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
}

static void mark_end(void)
{
	wall_ns = clock_ns(CLOCK_MONOTONIC) - wall0;
	cpu_ns = clock_ns(CLOCK_PROCESS_CPUTIME_ID) - cpu0;
}

/* Runs fut to completion on ex, timed. Returns fut's result, or the error
 * of block_on. */
static long run_timed(tide_exec_t *ex, tide_future_t *fut)
{
	mark_start();
	int rc = tide_exec_block_on(ex, fut);
	mark_end();
	long res = rc < 0 ? rc : (long)fut->result;
	tide_future_drop(fut);
	return res;
}

/* Frees ex and checks that nothing was left behind. */
static int exec_done(tide_exec_t *ex, long res, const char *name)
{
	tide_exec_stats_t st;
	tide_exec_stats(ex, &st);
	int bad = res != 0 || st.armed_events != 0 || st.registered != 0;
	if (res != 0)
		fprintf(stderr, "micro: %s: %s\n", name,
			res < 0 ? tide_strerror((int)res) : "wrong count");
	else if (bad)
		fprintf(stderr,
			"micro: %s: left %zu armed events, %zu descriptors\n",
			name, st.armed_events, st.registered);
	tide_exec_free(ex);
	return bad;
}

static tide_exec_t *new_exec(unsigned flags)
{
	tide_exec_t *ex;
	int rc = tide_exec_new(&ex, NULL, flags);
	if (rc < 0) {
		fprintf(stderr, "micro: tide_exec_new: %s\n",
			tide_strerror(rc));
		return NULL;
	}
	return ex;
}

/* ------------------------------------------------------------------ spawn */

enum { BATCH = 256 };

typedef struct spawner spawner_t;

typedef struct kid {
	tide_future_t fut;
	spawner_t *parent;
} kid_t;

struct spawner {
	tide_future_t fut;
	uint64_t n, spawned, done;
	tide_waker_t waker;
	kid_t kids[BATCH];
};

static tide_poll_t kid_poll(tide_future_t *f, tide_cx_t *cx)
{
	(void)cx;
	spawner_t *s = TIDE_CONTAINER_OF(f, kid_t, fut)->parent;
	if (++s->done == s->spawned)
		tide_waker_wake_by_ref(&s->waker);
	f->result = 0;
	return TIDE_READY;
}

static const tide_future_vtable_t kid_vt = {kid_poll, NULL};

static tide_poll_t spawner_poll(tide_future_t *f, tide_cx_t *cx)
{
	spawner_t *s = TIDE_CONTAINER_OF(f, spawner_t, fut);
	if (s->done < s->spawned) {
		tide_waker_register(&s->waker, cx->waker);
		return TIDE_PENDING;
	}
	if (s->spawned == s->n) {
		f->result = 0;
		return TIDE_READY;
	}
	/* The previous batch has completed: its futures were dropped and
	 * their slots can be used again. */
	uint64_t k = s->n - s->spawned < BATCH ? s->n - s->spawned : BATCH;
	for (uint64_t i = 0; i < k; i++) {
		kid_t *kid = &s->kids[i];
		kid->parent = s;
		tide_future_init(&kid->fut, &kid_vt);
		int rc = tide_spawn(cx->exec, &kid->fut, NULL);
		if (rc < 0) {
			f->result = rc;
			return TIDE_READY;
		}
		s->spawned++;
	}
	tide_waker_register(&s->waker, cx->waker);
	return TIDE_PENDING;
}

static void spawner_drop(tide_future_t *f)
{
	tide_waker_drop(&TIDE_CONTAINER_OF(f, spawner_t, fut)->waker);
}

static const tide_future_vtable_t spawner_vt = {spawner_poll, spawner_drop};

static int bench_spawn(uint64_t n)
{
	tide_exec_t *ex = new_exec(0);
	if (ex == NULL)
		return 1;
	static spawner_t s;
	memset(&s, 0, sizeof s);
	s.n = n;
	tide_future_init(&s.fut, &spawner_vt);
	long res = run_timed(ex, &s.fut);
	if (res == 0 && s.done != n)
		res = 1;
	return exec_done(ex, res, "spawn");
}

/* ------------------------------------------------------------------- wake */

typedef struct waker_task {
	tide_future_t fut;
	uint64_t n, polls;
} waker_task_t;

static tide_poll_t self_wake_poll(tide_future_t *f, tide_cx_t *cx)
{
	waker_task_t *t = TIDE_CONTAINER_OF(f, waker_task_t, fut);
	if (t->polls++ == t->n) {
		f->result = 0;
		return TIDE_READY;
	}
	tide_waker_wake_by_ref(cx->waker);
	return TIDE_PENDING;
}

static const tide_future_vtable_t self_wake_vt = {self_wake_poll, NULL};

static int bench_wake(uint64_t n)
{
	tide_exec_t *ex = new_exec(0);
	if (ex == NULL)
		return 1;
	waker_task_t t = {.n = n};
	tide_future_init(&t.fut, &self_wake_vt);
	long res = run_timed(ex, &t.fut);
	if (res == 0 && t.polls != n + 1)
		res = 1;
	return exec_done(ex, res, "wake");
}

/* -------------------------------------------------------------- readiness */

typedef struct reader {
	tide_future_t fut;
	tide_fd_t *reg;
	int wfd;
	uint64_t n, done;
	bool waiting; /* w is initialized and not yet dropped */
	tide_fd_wait_t w;
} reader_t;

static tide_poll_t reader_poll(tide_future_t *f, tide_cx_t *cx)
{
	reader_t *r = TIDE_CONTAINER_OF(f, reader_t, fut);
	for (;;) {
		if (!r->waiting) {
			if (r->done == r->n) {
				f->result = 0;
				return TIDE_READY;
			}
			char c = 'x';
			if (write(r->wfd, &c, 1) != 1) {
				f->result = -errno;
				return TIDE_READY;
			}
			tide_fd_readable(&r->w, r->reg);
			r->waiting = true;
		}
		if (tide_future_poll(&r->w.fut, cx) == TIDE_PENDING)
			return TIDE_PENDING;
		tide_fd_guard_t g = *tide_fd_wait_guard(&r->w);
		long wr = (long)r->w.fut.result;
		tide_future_drop(&r->w.fut);
		r->waiting = false;
		if (wr < 0) {
			f->result = wr;
			return TIDE_READY;
		}
		char buf[64];
		ssize_t got = read(tide_fd_get(r->reg), buf, sizeof buf);
		if (got != 1) {
			f->result = got < 0 ? -errno : -EPROTO;
			return TIDE_READY;
		}
		/* A short read drained the socket: clear readiness so that the
		 * next wait really waits (the event is armed, fires, wakes). */
		tide_fd_guard_clear_ready_matching(&g, TIDE_READABLE);
		r->done++;
	}
}

static void reader_drop(tide_future_t *f)
{
	reader_t *r = TIDE_CONTAINER_OF(f, reader_t, fut);
	if (r->waiting)
		tide_future_drop(&r->w.fut);
	r->waiting = false;
}

static int make_pair(int sv[2])
{
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
		       sv) < 0) {
		perror("micro: socketpair");
		return -1;
	}
	return 0;
}

static const tide_future_vtable_t reader_vt = {reader_poll, reader_drop};

static int bench_readiness(uint64_t n)
{
	int sv[2];
	if (make_pair(sv) < 0)
		return 1;
	tide_exec_t *ex = new_exec(0);
	if (ex == NULL)
		return 1;
	reader_t r = {.wfd = sv[1], .n = n};
	int rc = tide_fd_new(&r.reg, ex, sv[0]);
	if (rc < 0) {
		fprintf(stderr, "micro: tide_fd_new: %s\n", tide_strerror(rc));
		return 1;
	}
	/* Readiness starts optimistic, so the first operation does not wait;
	 * every later one does. */
	tide_future_init(&r.fut, &reader_vt);
	long res = run_timed(ex, &r.fut);
	if (res == 0 && r.done != n)
		res = 1;
	tide_fd_free(r.reg);
	close(sv[1]);
	return exec_done(ex, res, "readiness");
}

/* The floor: the same operation on a bare level-triggered epoll set. */
static int bench_readiness_epoll(uint64_t n)
{
	int sv[2];
	if (make_pair(sv) < 0)
		return 1;
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event e = {.events = EPOLLIN, .data.fd = sv[0]};
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, sv[0], &e) < 0) {
		perror("micro: epoll");
		return 1;
	}
	int bad = 0;
	mark_start();
	for (uint64_t i = 0; i < n && !bad; i++) {
		char c = 'x', buf[64];
		struct epoll_event got;
		if (write(sv[1], &c, 1) != 1 ||
		    epoll_wait(ep, &got, 1, -1) != 1 ||
		    read(got.data.fd, buf, sizeof buf) != 1)
			bad = 1;
	}
	mark_end();
	if (bad)
		perror("micro: readiness-epoll");
	close(ep);
	close(sv[0]);
	close(sv[1]);
	return bad;
}

/* ---------------------------------------------------------- stream reads */

/* read-ready: a tide_read of one byte that completes at its first poll,
 * awaited as TIDE_AWAIT does (start, poll, drop): the stream's poll_read,
 * the readiness check, recv. The other end is topped up 4,096 bytes at a
 * time (one write per 4,096 operations); every 128th read finds the
 * task's budget spent and the task yields a turn.
 * read-pend: a tide_read on an empty stream, polled once (PENDING: its
 * waiter joins the stream's queue, the read event is armed), then dropped
 * (cancelled: the last waiter gone, the event is disarmed at once, so
 * every operation arms and disarms: two epoll_ctl calls). */
typedef struct stream_reader {
	tide_future_t fut;
	tide_stream_t *s;
	int wfd;
	bool pend; /* read-pend: every read must be PENDING */
	uint64_t n, done, avail;
	tide_read_t rd;
} stream_reader_t;

static tide_poll_t stream_reader_poll(tide_future_t *f, tide_cx_t *cx)
{
	stream_reader_t *r = TIDE_CONTAINER_OF(f, stream_reader_t, fut);
	static char fill[4096];
	unsigned char c;
	for (; r->done < r->n; r->done++) {
		if (!r->pend && r->avail == 0) {
			if (write(r->wfd, fill, sizeof fill) !=
			    (ssize_t)sizeof fill) {
				f->result = -EPROTO;
				return TIDE_READY;
			}
			r->avail = sizeof fill;
		}
		tide_poll_t p =
		    tide_future_poll(tide_read(&r->rd, r->s, &c, 1), cx);
		long got = (long)r->rd.fut.result;
		tide_future_drop(&r->rd.fut);
		if (!r->pend && p == TIDE_PENDING)
			return TIDE_PENDING; /* the task's budget: woken, next turn */
		if (r->pend ? p != TIDE_PENDING : got != 1) {
			f->result = p == TIDE_READY && got < 0 ? got : -EPROTO;
			return TIDE_READY;
		}
		if (!r->pend)
			r->avail--;
	}
	f->result = 0;
	return TIDE_READY;
}

static const tide_future_vtable_t stream_reader_vt = {stream_reader_poll, NULL};

static int stream_read_bench(uint64_t n, bool pend, const char *name)
{
	int sv[2];
	if (make_pair(sv) < 0)
		return 1;
	tide_exec_t *ex = new_exec(0);
	if (ex == NULL)
		return 1;
	tide_fdstream_t *fs;
	int rc = tide_fdstream_new(&fs, ex, sv[0]);
	if (rc < 0) {
		fprintf(stderr, "micro: tide_fdstream_new: %s\n",
			tide_strerror(rc));
		return 1;
	}
	stream_reader_t r = {
	    .s = tide_fdstream_stream(fs), .wfd = sv[1], .pend = pend, .n = n};
	tide_future_init(&r.fut, &stream_reader_vt);
	long res = run_timed(ex, &r.fut);
	if (res == 0 && r.done != n)
		res = 1;
	tide_fdstream_free(fs);
	close(sv[1]);
	return exec_done(ex, res, name);
}

static int bench_read_ready(uint64_t n)
{
	return stream_read_bench(n, false, "read-ready");
}
static int bench_read_pend(uint64_t n)
{
	return stream_read_bench(n, true, "read-pend");
}

/* wake-other: two tasks of one executor take turns: each wakes the other
 * and answers PENDING; the woken one is polled in the same executor turn
 * (it is not the running task), so per operation: one wake, one task
 * poll; the loop is given back once per 1,024 polls (the turn's budget). */
typedef struct pinger {
	tide_future_t fut;
	struct pinger *peer;
	uint64_t n, polls;
	tide_waker_t waker; /* this task's, for the peer to wake */
} pinger_t;

static tide_poll_t pinger_poll(tide_future_t *f, tide_cx_t *cx)
{
	pinger_t *p = TIDE_CONTAINER_OF(f, pinger_t, fut);
	tide_waker_register(&p->waker, cx->waker);
	if (p->polls++ == p->n) {
		tide_waker_wake_by_ref(&p->peer->waker); /* let it finish too */
		f->result = 0;
		return TIDE_READY;
	}
	tide_waker_wake_by_ref(&p->peer->waker);
	return TIDE_PENDING;
}

static void pinger_drop(tide_future_t *f)
{
	tide_waker_drop(&TIDE_CONTAINER_OF(f, pinger_t, fut)->waker);
}

static const tide_future_vtable_t pinger_vt = {pinger_poll, pinger_drop};

static int bench_wake_other(uint64_t n)
{
	tide_exec_t *ex = new_exec(0);
	if (ex == NULL)
		return 1;
	/* a and b: n/2 operations each (b runs in a's turn). */
	static pinger_t a, b;
	memset(&a, 0, sizeof a);
	memset(&b, 0, sizeof b);
	a.peer = &b;
	b.peer = &a;
	a.n = b.n = n / 2;
	tide_future_init(&a.fut, &pinger_vt);
	tide_future_init(&b.fut, &pinger_vt);
	tide_join_t jb;
	int rc = tide_spawn(ex, &b.fut, &jb);
	if (rc < 0) {
		fprintf(stderr, "micro: tide_spawn: %s\n", tide_strerror(rc));
		return 1;
	}
	long res = run_timed(ex, &a.fut);
	tide_join_detach(&jb);
	if (res == 0 && a.polls + b.polls < 2 * (n / 2))
		res = 1;
	return exec_done(ex, res, "wake-other");
}

/* ----------------------------------------------------------------- timers */

typedef struct sleeper {
	tide_future_t fut;
	uint64_t n, done, usec;
	bool cancel;  /* poll once, then drop; else await */
	bool waiting; /* s is initialized and not yet dropped */
	tide_sleep_t s;
} sleeper_t;

static tide_poll_t sleeper_poll(tide_future_t *f, tide_cx_t *cx)
{
	sleeper_t *t = TIDE_CONTAINER_OF(f, sleeper_t, fut);
	for (;;) {
		if (!t->waiting) {
			if (t->done == t->n) {
				f->result = 0;
				return TIDE_READY;
			}
			tide_sleep(&t->s, t->usec);
			t->waiting = true;
		}
		tide_poll_t p = tide_future_poll(&t->s.fut, cx);
		if (p == TIDE_PENDING && !t->cancel)
			return TIDE_PENDING;
		if (t->cancel && p == TIDE_READY) {
			f->result = -EPROTO; /* a 1 s sleep may not be ready */
			return TIDE_READY;
		}
		tide_future_drop(&t->s.fut);
		t->waiting = false;
		t->done++;
	}
}

static void sleeper_drop(tide_future_t *f)
{
	sleeper_t *t = TIDE_CONTAINER_OF(f, sleeper_t, fut);
	if (t->waiting)
		tide_future_drop(&t->s.fut);
	t->waiting = false;
}

static const tide_future_vtable_t sleeper_vt = {sleeper_poll, sleeper_drop};

static int run_sleeper(uint64_t n, uint64_t usec, bool cancel, unsigned flags,
		       const char *name)
{
	tide_exec_t *ex = new_exec(flags);
	if (ex == NULL)
		return 1;
	sleeper_t t = {.n = n, .usec = usec, .cancel = cancel};
	tide_future_init(&t.fut, &sleeper_vt);
	long res = run_timed(ex, &t.fut);
	if (res == 0 && t.done != n)
		res = 1;
	return exec_done(ex, res, name);
}

static int bench_sleep0(uint64_t n)
{
	return run_sleeper(n, 0, false, 0, "sleep0");
}

static int bench_timer_cancel(uint64_t n)
{
	return run_sleeper(n, 1000000, true, 0, "timer-cancel");
}

static int bench_timer_fire(uint64_t n)
{
	return run_sleeper(n, 1, false, TIDE_EXEC_PRECISE_TIMER, "timer-fire");
}

/* ------------------------------------------------------------ timer reset */

/* Resetting pending sleeps, round robin among TIMERS of them: later (the
 * idle timeout pushed back on every message: O(1), the heap is not
 * touched) or earlier (O(log TIMERS): the sleep moves up the heap). */
enum { TIMERS = 10000 };

static tide_waker_t nop_clone(const tide_wakeable_t *w)
{
	return TIDE_WAKER(w);
}
static void nop(const tide_wakeable_t *w)
{
	(void)w;
}
static const tide_waker_vtable_t nop_vt = {nop_clone, nop, nop, nop};
static const tide_wakeable_t nop_wakeable = {&nop_vt};

static int run_reset(uint64_t n, bool later, const char *name)
{
	tide_exec_t *ex = new_exec(0);
	tide_sleep_t *s = calloc(TIMERS, sizeof *s);
	if (ex == NULL || s == NULL) {
		free(s);
		return 1;
	}
	tide_waker_t w = TIDE_WAKER(&nop_wakeable);
	tide_cx_t cx;
	tide_cx_init(&cx, ex, &w);
	uint64_t hour = 3600 * TIDE_USEC_PER_SEC, base = tide_now() + hour;
	long res = 0;
	for (int i = 0; i < TIMERS && res == 0; i++)
		if (tide_future_poll(tide_sleep_until(&s[i], base + hour),
				     &cx) != TIDE_PENDING)
			res = 1;
	mark_start();
	for (uint64_t k = 1; k <= n && res == 0; k++)
		tide_sleep_reset(&s[k % TIMERS],
				 later ? base + hour + k : base + hour - k);
	mark_end();
	for (int i = 0; i < TIMERS; i++)
		tide_future_drop(&s[i].fut);
	free(s);
	return exec_done(ex, res, name);
}

static int bench_reset_later(uint64_t n)
{
	return run_reset(n, true, "timer-reset-later");
}

static int bench_reset_earlier(uint64_t n)
{
	return run_reset(n, false, "timer-reset-earlier");
}

/* ------------------------------------------------------------ hand-offs */

/*
 * One message (8 bytes) from a producer to a consumer task, four ways:
 * tide's mpsc between two tasks of one executor (mpsc-task) and from a
 * thread (mpsc-thread, tide_mpsc_send_blocking), against a pipe from a
 * thread to a task (pipe-thread: the task awaits readability and drains
 * what is there, as a reactor-based hand-off does) and against libevent's
 * event_active, on one loop (event-active: a producer event and a consumer
 * event that activate each other around a queue of the same capacity) and
 * from a thread (event-active-thread: a mutex-protected queue, then
 * event_active on a thread-aware base, evthread_use_pthreads). Capacity 64
 * everywhere; ops = messages.
 */
enum { HAND_CAP = 64 };

typedef struct hprod {
	tide_future_t fut;
	tide_async_t co;
	tide_mpsc_t *ch;
	tide_mpsc_send_t send;
	uint64_t i, n;
} hprod_t;

static tide_poll_t hprod_poll(tide_future_t *f, tide_cx_t *cx)
{
	hprod_t *p = TIDE_CONTAINER_OF(f, hprod_t, fut);
	TIDE_BEGIN(&p->co);
	for (p->i = 0; p->i < p->n; p->i++) {
		TIDE_AWAIT(&p->co, cx, tide_mpsc_send(&p->send, p->ch, &p->i));
		if (tide_async_result(&p->co) != 0)
			TIDE_RETURN(&p->co, f, tide_async_result(&p->co));
	}
	TIDE_END(&p->co, f, 0);
}

static void hprod_drop(tide_future_t *f)
{
	tide_async_drop(&TIDE_CONTAINER_OF(f, hprod_t, fut)->co);
}

static const tide_future_vtable_t hprod_vt = {hprod_poll, hprod_drop};

typedef struct hcons {
	tide_future_t fut;
	tide_async_t co;
	tide_mpsc_t *ch;
	tide_mpsc_recv_t recv;
	uint64_t item, n, got;
} hcons_t;

/* Receives n items, checking their order. */
static tide_poll_t hcons_poll(tide_future_t *f, tide_cx_t *cx)
{
	hcons_t *c = TIDE_CONTAINER_OF(f, hcons_t, fut);
	TIDE_BEGIN(&c->co);
	while (c->got < c->n) {
		TIDE_AWAIT(&c->co, cx,
			   tide_mpsc_recv(&c->recv, c->ch, &c->item));
		if (tide_async_result(&c->co) != 1 || c->item != c->got)
			TIDE_RETURN(&c->co, f, 1);
		c->got++;
	}
	TIDE_END(&c->co, f, 0);
}

static void hcons_drop(tide_future_t *f)
{
	tide_async_drop(&TIDE_CONTAINER_OF(f, hcons_t, fut)->co);
}

static const tide_future_vtable_t hcons_vt = {hcons_poll, hcons_drop};

static int bench_mpsc_task(uint64_t n)
{
	tide_exec_t *ex = new_exec(0);
	tide_mpsc_t ch;
	if (ex == NULL || tide_mpsc_init(&ch, sizeof(uint64_t), HAND_CAP) != 0)
		return 1;
	hprod_t p = {.ch = &ch, .n = n};
	hcons_t c = {.ch = &ch, .n = n};
	tide_future_init(&p.fut, &hprod_vt);
	tide_future_init(&c.fut, &hcons_vt);
	tide_join_t j;
	if (tide_spawn(ex, &p.fut, &j) != 0)
		return 1;
	long res = run_timed(ex, &c.fut);
	tide_join_detach(&j);
	int bad = exec_done(ex, res, "mpsc-task");
	tide_mpsc_free(&ch);
	return bad;
}

typedef struct hthread {
	tide_mpsc_t *ch;
	int fd;
	uint64_t n;
	int rc;
} hthread_t;

static void *mpsc_sender(void *arg)
{
	hthread_t *h = arg;
	for (uint64_t i = 0; i < h->n && h->rc == 0; i++)
		h->rc = tide_mpsc_send_blocking(h->ch, &i);
	return NULL;
}

static int bench_mpsc_thread(uint64_t n)
{
	tide_exec_t *ex = new_exec(0);
	tide_mpsc_t ch;
	if (ex == NULL || tide_mpsc_init(&ch, sizeof(uint64_t), HAND_CAP) != 0)
		return 1;
	hcons_t c = {.ch = &ch, .n = n};
	tide_future_init(&c.fut, &hcons_vt);
	hthread_t h = {.ch = &ch, .n = n};
	pthread_t th;
	mark_start(); /* the thread starts sending at once: time from here */
	if (pthread_create(&th, NULL, mpsc_sender, &h) != 0)
		return 1;
	int rc = tide_exec_block_on(ex, &c.fut);
	mark_end();
	long res = rc < 0 ? rc : (long)c.fut.result;
	tide_future_drop(&c.fut);
	pthread_join(th, NULL);
	if (h.rc != 0)
		res = h.rc;
	int bad = exec_done(ex, res, "mpsc-thread");
	tide_mpsc_free(&ch);
	return bad;
}

/* pipe-thread: the thread writes with blocking writes; the task drains. */
static void *pipe_sender(void *arg)
{
	hthread_t *h = arg;
	for (uint64_t i = 0; i < h->n; i++) {
		ssize_t w;
		while ((w = write(h->fd, &i, sizeof i)) < 0 && errno == EINTR)
			;
		if (w != (ssize_t)sizeof i) {
			h->rc = -1;
			break;
		}
	}
	return NULL;
}

typedef struct preader {
	tide_future_t fut;
	tide_fd_t *reg;
	int fd;
	uint64_t n, got;
	bool waiting;
	tide_fd_wait_t w;
} preader_t;

static tide_poll_t preader_poll(tide_future_t *f, tide_cx_t *cx)
{
	preader_t *r = TIDE_CONTAINER_OF(f, preader_t, fut);
	uint64_t buf[HAND_CAP];
	for (;;) {
		if (!r->waiting) {
			tide_fd_readable(&r->w, r->reg);
			r->waiting = true;
		}
		if (tide_future_poll(&r->w.fut, cx) == TIDE_PENDING)
			return TIDE_PENDING;
		tide_fd_guard_t g = *tide_fd_wait_guard(&r->w);
		tide_future_drop(&r->w.fut);
		r->waiting = false;
		for (;;) { /* drain what is there */
			/* 8-byte writes to a pipe are atomic: whole messages */
			ssize_t k = read(r->fd, buf, sizeof buf);
			if (k < 0 && errno == EAGAIN) {
				tide_fd_guard_clear_ready_matching(
				    &g, TIDE_READABLE);
				break;
			}
			if (k <= 0 || k % 8 != 0) {
				f->result = 1;
				return TIDE_READY;
			}
			for (ssize_t i = 0; i < k / 8; i++)
				if (buf[i] != r->got++) {
					f->result = 1;
					return TIDE_READY;
				}
			if (r->got == r->n) {
				f->result = 0;
				return TIDE_READY;
			}
		}
	}
}

static void preader_drop(tide_future_t *f)
{
	preader_t *r = TIDE_CONTAINER_OF(f, preader_t, fut);
	if (r->waiting)
		tide_future_drop(&r->w.fut);
}

static const tide_future_vtable_t preader_vt = {preader_poll, preader_drop};

static int bench_pipe_thread(uint64_t n)
{
	tide_exec_t *ex = new_exec(0);
	int p[2];
	if (ex == NULL || pipe2(p, O_CLOEXEC) != 0)
		return 1;
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	preader_t r = {.fd = p[0], .n = n};
	if (tide_fd_new(&r.reg, ex, p[0]) != 0)
		return 1;
	tide_future_init(&r.fut, &preader_vt);
	hthread_t h = {.fd = p[1], .n = n};
	pthread_t th;
	mark_start();
	if (pthread_create(&th, NULL, pipe_sender, &h) != 0)
		return 1;
	int rc = tide_exec_block_on(ex, &r.fut);
	mark_end();
	long res = rc < 0 ? rc : (long)r.fut.result;
	tide_future_drop(&r.fut);
	pthread_join(th, NULL);
	if (h.rc != 0)
		res = 1;
	tide_fd_free(r.reg);
	close(p[1]);
	return exec_done(ex, res, "pipe-thread");
}

/* event-active: libevent alone, on one loop. */
typedef struct eva {
	struct event_base *base;
	struct event *prod, *cons;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint64_t q[HAND_CAP];
	unsigned head, len;
	uint64_t sent, got, n;
	int bad;
	bool cons_active; /* the consumer's event is active, not yet run */
} eva_t;

static void eva_prod_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	eva_t *e = arg;
	while (e->len < HAND_CAP && e->sent < e->n) {
		e->q[(e->head + e->len++) % HAND_CAP] = e->sent++;
		if (!e->cons_active) { /* one activation per wake, as a waker */
			e->cons_active = true;
			event_active(e->cons, EV_READ, 0);
		}
	}
}

static void eva_cons_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	eva_t *e = arg;
	e->cons_active = false;
	while (e->len > 0) {
		if (e->q[e->head] != e->got++)
			e->bad = 1;
		e->head = (e->head + 1) % HAND_CAP;
		e->len--;
	}
	if (e->sent < e->n)
		event_active(e->prod, EV_READ, 0);
}

static int bench_event_active(uint64_t n)
{
	eva_t e = {.n = n};
	e.base = event_base_new();
	if (e.base == NULL)
		return 1;
	e.prod = event_new(e.base, -1, 0, eva_prod_cb, &e);
	e.cons = event_new(e.base, -1, 0, eva_cons_cb, &e);
	mark_start();
	event_active(e.prod, EV_READ, 0);
	event_base_dispatch(e.base);
	mark_end();
	event_free(e.prod);
	event_free(e.cons);
	event_base_free(e.base);
	return e.bad || e.got != n;
}

/* event-active-thread: a thread pushes into a locked queue (waiting on a
 * condition variable while it is full) and activates the consumer's event
 * on a thread-aware base. */
static void eva_tcons_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	eva_t *e = arg;
	pthread_mutex_lock(&e->lock);
	e->cons_active = false;
	while (e->len > 0) {
		if (e->q[e->head] != e->got++)
			e->bad = 1;
		e->head = (e->head + 1) % HAND_CAP;
		e->len--;
	}
	pthread_cond_signal(&e->cond);
	pthread_mutex_unlock(&e->lock);
	if (e->got == e->n)
		event_base_loopbreak(e->base);
}

static void *eva_sender(void *arg)
{
	eva_t *e = arg;
	for (uint64_t i = 0; i < e->n; i++) {
		pthread_mutex_lock(&e->lock);
		while (e->len == HAND_CAP)
			pthread_cond_wait(&e->cond, &e->lock);
		e->q[(e->head + e->len++) % HAND_CAP] = i;
		bool activate = !e->cons_active;
		e->cons_active = true;
		pthread_mutex_unlock(&e->lock);
		if (activate)
			event_active(e->cons, EV_READ, 0);
	}
	return NULL;
}

static int bench_event_active_thread(uint64_t n)
{
	static bool threads_on;
	if (!threads_on && evthread_use_pthreads() != 0)
		return 1;
	threads_on = true;
	eva_t e = {.n = n};
	pthread_mutex_init(&e.lock, NULL);
	pthread_cond_init(&e.cond, NULL);
	e.base = event_base_new();
	if (e.base == NULL)
		return 1;
	e.cons = event_new(e.base, -1, EV_PERSIST, eva_tcons_cb, &e);
	/* a timer that keeps the loop alive until the last message */
	struct event *keep =
	    event_new(e.base, -1, EV_PERSIST, eva_tcons_cb, &e);
	struct timeval tv = {3600, 0};
	event_add(keep, &tv);
	pthread_t th;
	mark_start();
	if (pthread_create(&th, NULL, eva_sender, &e) != 0)
		return 1;
	event_base_dispatch(e.base);
	mark_end();
	pthread_join(th, NULL);
	event_free(keep);
	event_free(e.cons);
	event_base_free(e.base);
	pthread_mutex_destroy(&e.lock);
	pthread_cond_destroy(&e.cond);
	return e.bad || e.got != n;
}

/* ------------------------------------------------------------------- main */

static const struct bench {
	const char *name;
	int (*run)(uint64_t n);
	uint64_t ops; /* per timed run, before --scale */
} benches[] = {
    {"spawn", bench_spawn, 200000},
    {"wake", bench_wake, 1000000},
    {"readiness", bench_readiness, 100000},
    {"readiness-epoll", bench_readiness_epoll, 100000},
    {"read-ready", bench_read_ready, 1000000},
    {"read-pend", bench_read_pend, 200000},
    {"wake-other", bench_wake_other, 1000000},
    {"sleep0", bench_sleep0, 1000000},
    {"timer-cancel", bench_timer_cancel, 1000000},
    {"timer-fire", bench_timer_fire, 20000},
    {"timer-reset-later", bench_reset_later, 1000000},
    {"timer-reset-earlier", bench_reset_earlier, 1000000},
    {"mpsc-task", bench_mpsc_task, 1000000},
    {"mpsc-thread", bench_mpsc_thread, 1000000},
    {"pipe-thread", bench_pipe_thread, 1000000},
    {"event-active", bench_event_active, 1000000},
    {"event-active-thread", bench_event_active_thread, 1000000},
};
enum { NBENCH = sizeof benches / sizeof benches[0], MAXRUNS = 101 };

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static uint64_t median(uint64_t *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_u64);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static const struct bench *find(const char *name)
{
	for (int i = 0; i < NBENCH; i++)
		if (strcmp(benches[i].name, name) == 0)
			return &benches[i];
	return NULL;
}

static int usage(FILE *f)
{
	fprintf(f, "usage: micro [--runs R] [--scale X] [NAME...]\n"
		   "       micro --count N NAME\n"
		   "benchmarks:");
	for (int i = 0; i < NBENCH; i++)
		fprintf(f, " %s", benches[i].name);
	fprintf(f, "\n");
	return f == stdout ? 0 : 64;
}

static int time_one(const struct bench *b, int runs, double scale)
{
	uint64_t n = (uint64_t)((double)b->ops * scale);
	if (n < 1)
		n = 1;
	uint64_t wall[MAXRUNS], cpu[MAXRUNS];
	/* One untimed run first: page faults, lazy binding, the allocator's
	 * first growth. */
	if (b->run(n / 10 + 1))
		return 1;
	for (int r = 0; r < runs; r++) {
		if (b->run(n))
			return 1;
		wall[r] = wall_ns;
		cpu[r] = cpu_ns;
	}
	uint64_t lo = wall[0], hi = wall[0];
	for (int r = 1; r < runs; r++) {
		lo = wall[r] < lo ? wall[r] : lo;
		hi = wall[r] > hi ? wall[r] : hi;
	}
	double dn = (double)n;
	printf(
	    "bench=%s ops=%llu runs=%d ns_per_op=%.1f cpu_ns_per_op=%.1f min_ns=%.1f max_ns=%.1f\n",
	    b->name, (unsigned long long)n, runs,
	    (double)median(wall, runs) / dn, (double)median(cpu, runs) / dn,
	    (double)lo / dn, (double)hi / dn);
	fflush(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	int runs = 5;
	double scale = 1.0;
	long long count = -1;
	int i = 1;
	for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--help") == 0)
			return usage(stdout);
		if (i + 1 >= argc)
			return usage(stderr);
		char *end;
		if (strcmp(a, "--runs") == 0) {
			runs = (int)strtol(argv[++i], &end, 10);
			if (*end || runs < 1 || runs > MAXRUNS)
				return usage(stderr);
		} else if (strcmp(a, "--scale") == 0) {
			scale = strtod(argv[++i], &end);
			if (*end || !(scale > 0 && scale <= 1000))
				return usage(stderr);
		} else if (strcmp(a, "--count") == 0) {
			count = strtoll(argv[++i], &end, 10);
			if (*end || count < 0)
				return usage(stderr);
		} else {
			return usage(stderr);
		}
	}
	if (count >= 0) {
		const struct bench *b = i + 1 == argc ? find(argv[i]) : NULL;
		if (b == NULL)
			return usage(stderr);
		return b->run((uint64_t)count) ? 1 : 0;
	}
	int bad = 0;
	if (i == argc) {
		for (int k = 0; k < NBENCH; k++)
			bad |= time_one(&benches[k], runs, scale);
		return bad;
	}
	for (; i < argc; i++) {
		const struct bench *b = find(argv[i]);
		if (b == NULL)
			return usage(stderr);
		bad |= time_one(b, runs, scale);
	}
	return bad;
}
