/*
 * t/linking/mixed.c: an application linked with libevent-2.1 (libevent's
 * all-in-one library) that runs tide, itself linked with libevent_core and
 * libevent_extra, on the event_base it made (t/check_linking.sh builds and
 * runs it; doc/design.md, "Linking").
 *
 * The base comes from libevent-2.1's event_base_new; a tide task sleeps
 * on it (tide's timer event), raises SIGUSR1 and receives it through a
 * chaining tide signal (libevent's signal handling, and the host's handler
 * behind it); the application's own libevent timer runs beside it; the
 * task's completion ends the loop through tide_spawn_cb. Prints one line
 * and exits 0 when all of that happened.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <tide.h>

typedef struct {
    tide_future_t fut;
    tide_async_t co;
    tide_sleep_t nap;
    tide_signal_t *sig;
} task_t;

static tide_poll_t task_poll(tide_future_t *f, tide_cx_t *cx) {
    task_t *t = TIDE_CONTAINER_OF(f, task_t, fut);
    TIDE_BEGIN(&t->co);
    TIDE_AWAIT(&t->co, cx, tide_sleep(&t->nap, 2 * TIDE_USEC_PER_MSEC));
    raise(SIGUSR1);
    TIDE_AWAIT(&t->co, cx, tide_signal_recv(t->sig));
    TIDE_END(&t->co, f, tide_async_result(&t->co));
}

static void task_drop(tide_future_t *f) {
    task_t *t = TIDE_CONTAINER_OF(f, task_t, fut);
    tide_async_drop(&t->co);
}

static const tide_future_vtable_t task_vt = {task_poll, task_drop};

static volatile sig_atomic_t host_calls;
static void host_handler(int signum) { host_calls++; }

static int app_timer_fired;
static void app_timer_cb(evutil_socket_t fd, short what, void *arg) {
    app_timer_fired++;
}

static intptr_t task_result = -1;
static void task_done(intptr_t result, void *arg) {
    task_result = result;
    event_base_loopexit(arg, NULL);
}

static int fail(const char *what, int err) {
    fprintf(stderr, "mixed: %s: %s\n", what, tide_strerror(err));
    return 1;
}

int main(void) {
    alarm(20); /* bounded: SIGALRM's default action ends a stuck run */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = host_handler;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGUSR1, &sa, NULL) != 0)
        return 1;
    struct event_base *base = event_base_new();
    if (base == NULL)
        return 1;
    tide_exec_t *ex = NULL;
    int rc = tide_exec_new(&ex, base, 0);
    if (rc < 0)
        return fail("tide_exec_new", rc);
    tide_signal_t sig;
    rc = tide_signal_init_flags(&sig, ex, SIGUSR1, TIDE_SIGNAL_CHAIN);
    if (rc < 0)
        return fail("tide_signal_init_flags", rc);
    struct event *app_timer = evtimer_new(base, app_timer_cb, NULL);
    struct timeval tv = {0, 1000};
    if (app_timer == NULL || evtimer_add(app_timer, &tv) != 0)
        return 1;
    task_t t;
    memset(&t, 0, sizeof t);
    t.sig = &sig;
    tide_future_init(&t.fut, &task_vt);
    rc = tide_spawn_cb(ex, &t.fut, task_done, base, NULL);
    if (rc < 0)
        return fail("tide_spawn_cb", rc);
    event_base_dispatch(base);
    tide_signal_free(&sig);
    tide_exec_free(ex);
    event_free(app_timer);
    event_base_free(base);
    printf("mixed: signal received %ld, host handler %d, app timer %d\n",
           (long)task_result, (int)host_calls, app_timer_fired);
    return task_result == 1 && host_calls == 1 && app_timer_fired == 1 ? 0 : 1;
}
