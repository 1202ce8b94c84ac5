/*
 * t/consumer/consumer.c: a program built the way a user of an installed
 * tide builds one, with nothing but
 *     cc consumer.c $(pkg-config --cflags --libs tide)
 * (t/consumer/run.sh does that, and the same with --static). It checks
 * that the version it was compiled against is the one it runs with, then
 * runs one task that sleeps, writes a message into a pipe and reads it
 * back through tide's streams, and joins it from the main future.
 *
 * It also keeps a reference to the evhttp bridge (tide_evhttp_new), which
 * libevent_extra's evhttp serves, so that the static link must find
 * libevent_extra and libevent_core in an order that works (extra first:
 * tide.pc's Requires.private).
 *
 * Prints three lines (run.sh compares them) and exits 0, or says what went
 * wrong and exits 1.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <tide.h>

#define MSG "hello through a pipe"

typedef struct {
    tide_future_t fut;
    tide_async_t co;
    tide_sleep_t nap;
    tide_write_all_t wr;
    tide_read_exact_t rd;
    tide_stream_t *in, *out;
    char buf[sizeof MSG - 1];
} pipe_task_t;

static tide_poll_t pipe_task_poll(tide_future_t *f, tide_cx_t *cx) {
    pipe_task_t *t = TIDE_CONTAINER_OF(f, pipe_task_t, fut);
    TIDE_BEGIN(&t->co);
    TIDE_AWAIT(&t->co, cx, tide_sleep(&t->nap, 2 * TIDE_USEC_PER_MSEC));
    TIDE_AWAIT(&t->co, cx, tide_write_all(&t->wr, t->out, MSG, sizeof MSG - 1));
    if (tide_async_result(&t->co) < 0)
        TIDE_RETURN(&t->co, f, tide_async_result(&t->co));
    TIDE_AWAIT(&t->co, cx,
               tide_read_exact(&t->rd, t->in, t->buf, sizeof t->buf));
    TIDE_END(&t->co, f, tide_async_result(&t->co));
}

static void pipe_task_drop(tide_future_t *f) {
    pipe_task_t *t = TIDE_CONTAINER_OF(f, pipe_task_t, fut);
    tide_async_drop(&t->co);
}

static int fail(const char *what, int err) {
    fprintf(stderr, "consumer: %s: %s (%s)\n", what, tide_strerror(err),
            tide_err_name(err));
    return 1;
}

static const tide_future_vtable_t pipe_task_vt = {pipe_task_poll,
                                                  pipe_task_drop};

/* Not called: its address makes the linker bring the evhttp bridge in. */
static void (*volatile keep_evhttp)(void) = (void (*)(void))tide_evhttp_new;

int main(void) {
    tide_exec_t *ex = NULL;
    tide_fdstream_t *rd = NULL, *wr = NULL;
    pipe_task_t task;
    tide_join_t join;
    int fds[2], rc;

    printf("consumer: compiled against tide %s, running tide %s\n",
           TIDE_VERSION, tide_version());
    if (strcmp(TIDE_VERSION, tide_version()) != 0 ||
        tide_version_number() != TIDE_VERSION_NUMBER) {
        fprintf(stderr, "consumer: version mismatch\n");
        return 1;
    }

    if ((rc = tide_exec_new(&ex, NULL, 0)) < 0)
        return fail("tide_exec_new", rc);
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0)
        return fail("pipe2", -errno);
    if ((rc = tide_fdstream_new(&rd, ex, fds[0])) < 0)
        return fail("tide_fdstream_new", rc);
    if ((rc = tide_fdstream_new(&wr, ex, fds[1])) < 0)
        return fail("tide_fdstream_new", rc);

    memset(&task, 0, sizeof task);
    task.in = tide_fdstream_stream(rd);
    task.out = tide_fdstream_stream(wr);
    tide_future_init(&task.fut, &pipe_task_vt);
    if ((rc = tide_spawn(ex, &task.fut, &join)) < 0)
        return fail("tide_spawn", rc);
    if ((rc = tide_exec_block_on(ex, tide_join(&join))) < 0)
        return fail("tide_exec_block_on", rc);
    rc = (int)tide_join(&join)->result;
    tide_future_drop(tide_join(&join));
    if (rc < 0)
        return fail("the pipe task", rc);
    printf("consumer: the task read back \"%.*s\" (%d bytes)\n",
           (int)sizeof task.buf, task.buf, rc);

    tide_exec_stats_t st;
    tide_exec_stats(ex, &st);
    tide_fdstream_free(rd);
    tide_fdstream_free(wr);
    tide_exec_free(ex);
    if (st.tasks != 0) {
        fprintf(stderr, "consumer: %zu tasks left\n", st.tasks);
        return 1;
    }
    printf("consumer: ok\n");
    return 0;
}
