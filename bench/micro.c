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
 *                polls it again. Every 64 polls the executor gives the loop
 *                back (its budget), which costs an epoll_wait(0).
 *   readiness    a one-shot readiness event, armed and fired: on a
 *                socketpair, write a byte to one end; the task awaits
 *                tide_fd_readable on the other, which is PENDING (readiness
 *                was cleared), so the event is waited for, fires and wakes
 *                the task; it reads the byte and clears readiness (short
 *                read). Per operation: write, epoll_wait, read.
 *   readiness-epoll  the same with a bare epoll loop (the floor).
 *   sleep0       tide_sleep(0): ready at its first poll, never armed.
 *   timer-cancel tide_sleep(1 s): polled once (armed in libevent's timer
 *                heap, PENDING), then dropped (disarmed).
 *   timer-fire   tide_sleep(1 us) awaited: armed, fired, task woken, polled
 *                READY. The executor uses precise timers
 *                (TIDE_EXEC_PRECISE_TIMER, a timerfd), otherwise every
 *                wait would be rounded up to a millisecond; wall time is
 *                mostly the kernel's timer latency, CPU time the cost.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

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
		fprintf(stderr, "micro: %s: left %zu armed events, %zu descriptors\n",
		    name, st.armed_events, st.registered);
	tide_exec_free(ex);
	return bad;
}

static tide_exec_t *new_exec(unsigned flags)
{
	tide_exec_t *ex;
	int rc = tide_exec_new(&ex, NULL, flags);
	if (rc < 0) {
		fprintf(stderr, "micro: tide_exec_new: %s\n", tide_strerror(rc));
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
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) {
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
		if (write(sv[1], &c, 1) != 1 || epoll_wait(ep, &got, 1, -1) != 1 ||
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

static tide_waker_t nop_clone(const tide_wakeable_t *w) { return TIDE_WAKER(w); }
static void nop(const tide_wakeable_t *w) { (void)w; }
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
	{"sleep0", bench_sleep0, 1000000},
	{"timer-cancel", bench_timer_cancel, 1000000},
	{"timer-fire", bench_timer_fire, 20000},
	{"timer-reset-later", bench_reset_later, 1000000},
	{"timer-reset-earlier", bench_reset_earlier, 1000000},
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
	printf("bench=%s ops=%llu runs=%d ns_per_op=%.1f cpu_ns_per_op=%.1f min_ns=%.1f max_ns=%.1f\n",
	    b->name, (unsigned long long)n, runs, (double)median(wall, runs) / dn,
	    (double)median(cpu, runs) / dn, (double)lo / dn, (double)hi / dn);
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
