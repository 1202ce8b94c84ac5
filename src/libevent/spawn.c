/*
 * src/libevent/spawn.c: callbacks from futures (tide_spawn_cb,
 * tide_spawn_event).
 *
 * Both are a task spawned through tide__spawn_ex with a finish hook and
 * the callback's state in the task's extra bytes: one allocation per
 * spawn, the task's own, as for any tide_spawn. The executor calls the
 * hook from task_finish, however the task ends (completed, aborted,
 * dropped by tide_exec_free), after the future was dropped and its
 * joiner woken, with the result already in t->output: so the callback
 * runs exactly once, and may detach the join handle (the executor still
 * holds its own reference to the task while the hook runs).
 */
#include <string.h>

#include <event2/event.h>

#include "core/internal.h"
#include "tide/libevent.h"

struct cb_state {
    tide_done_fn done;
    void *arg;
};

struct ev_state {
    struct event *ev;
    intptr_t *result;
};

static void cb_finished(tide_task_t *t) {
    struct cb_state *st = tide__task_extra(t);
    st->done(t->output, st->arg);
}

static void ev_finished(tide_task_t *t) {
    struct ev_state *st = tide__task_extra(t);
    if (st->result != NULL)
        *st->result = t->output;
    /* At tide_exec_free the loop that would run ev is going away (or is
     * the host's, shutting tide down): say so in *result only. */
    if (!t->remote->exec->closing)
        event_active(st->ev, EV_READ, 0);
}

/* Spawn fut with hook and the extra bytes st (copied into the task). */
static int spawn_hooked(tide_exec_t *ex, tide_future_t *fut,
                        void (*hook)(tide_task_t *), const void *st,
                        size_t size, tide_join_t *join) {
    if (join != NULL)
        tide__join_init(join, NULL); /* empty even on failure */
    tide_task_t *t;
    int rc = tide__spawn_ex(ex, fut, 0, size, hook, &t);
    if (rc < 0)
        return rc;
    /* The task is first polled from the executor's event, so nothing can
     * have finished it yet: its extra bytes are filled before any hook. */
    memcpy(tide__task_extra(t), st, size);
    if (join != NULL)
        tide__join_init(join, t);
    return 0;
}

int tide_spawn_cb(tide_exec_t *ex, tide_future_t *fut, tide_done_fn done,
                  void *arg, tide_join_t *join) {
    if (ex == NULL || fut == NULL || done == NULL) {
        if (join != NULL)
            tide__join_init(join, NULL);
        return -EINVAL;
    }
    struct cb_state st = {done, arg};
    return spawn_hooked(ex, fut, cb_finished, &st, sizeof st, join);
}

int tide_spawn_event(tide_exec_t *ex, tide_future_t *fut, struct event *ev,
                     intptr_t *result, tide_join_t *join) {
    if (ex == NULL || fut == NULL || ev == NULL ||
        event_get_base(ev) != ex->base) {
        if (join != NULL)
            tide__join_init(join, NULL);
        return -EINVAL;
    }
    struct ev_state st = {ev, result};
    return spawn_hooked(ex, fut, ev_finished, &st, sizeof st, join);
}
