/*
 * src/libevent/evhttp.c: evhttp handlers written as tide tasks
 * (tide_evhttp_*, tide_evreq_*).
 *
 * Each request gets a tide_evreq_t (one allocation, freed by the task's
 * finish hook) and a task spawned through tide__spawn_ex. While the task
 * lives and has not replied, the request's connection carries our close
 * callback: libevent calls it when the client goes away (or the evhttp is
 * freed), before it forgets or frees the request. The callback forgets
 * the request (and frees it when libevent left it to us: an incoming
 * request whose connection failed before the user replied is unlinked
 * from the connection, evcon NULL, and would otherwise leak) and aborts
 * the task. The task is never running when the callback runs (both run
 * from the loop, one at a time), so it is dropped at the pending point it
 * is at, before the executor's next turn, and never sees req again.
 * Replying, and the finish hook, clear the close callback first, so the
 * callback never runs with a freed tide_evreq_t.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/http.h>

#include "core/internal.h"
#include "tide/libevent.h"

struct tide_evreq {
    struct evhttp_request *req; /* NULL once replied or gone */
    struct evhttp_connection *evcon;
    tide_task_t *task; /* NULL once finished */
    bool gone;
    bool watching;   /* ev added */
    struct event ev; /* readable on the client's socket: gone? */
};

struct route {
    struct route *next;
    tide_evhttp_t *h;
    tide_evhttp_fn fn;
    void *arg;
    char path[];
};

struct tide_evhttp {
    tide_exec_t *ex;
    struct evhttp *http;
    struct route *routes;
    struct route gen; /* fn NULL: no generic callback of ours */
};

/* unwatch: stop watching r's socket for the client leaving. */
static void unwatch(tide_evreq_t *r) {
    if (r->watching) {
        event_del(&r->ev);
        r->watching = false;
    }
}

static void req_forget(tide_evreq_t *r) {
    unwatch(r);
    if (r->evcon != NULL)
        evhttp_connection_set_closecb(r->evcon, NULL, NULL);
    r->req = NULL;
    r->evcon = NULL;
}

static void on_close(struct evhttp_connection *evcon, void *arg) {
    tide_evreq_t *r = arg;
    struct evhttp_request *req = r->req;
    unwatch(r);
    r->evcon = NULL; /* the connection is being freed: leave it alone */
    r->req = NULL;
    r->gone = true;
    /* Unlinked from its connection by libevent (the client left before
     * the reply): nobody else frees it. Still linked (evhttp_free, or a
     * connection freed with its requests): libevent frees it. */
    if (req != NULL && evhttp_request_get_connection(req) == NULL)
        evhttp_request_free(req);
    if (r->task != NULL)
        tide__task_abort(r->task);
}

/* libevent 2.1 stops reading a connection while its request waits for a
 * reply, so it does not see the client leave until it writes: tide
 * watches the socket itself. Readable with nothing to read (end of
 * stream) or an error: the client is gone; free the connection, whose
 * close callback (on_close) drops the task and lets libevent free the
 * request. Readable with bytes (a pipelined request): they are evhttp's;
 * stop watching (the next reply finds out). */
static void on_readable(evutil_socket_t fd, short what, void *arg) {
    tide_evreq_t *r = arg;
    r->watching = false;
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
                            errno == EINTR))) {
        if (n < 0 && event_add(&r->ev, NULL) == 0)
            r->watching = true;
        return;
    }
    if (r->evcon != NULL)
        evhttp_connection_free(r->evcon); /* calls on_close */
}

static void watch(tide_evreq_t *r, tide_exec_t *ex) {
    struct bufferevent *bev = evhttp_connection_get_bufferevent(r->evcon);
    evutil_socket_t fd = bev != NULL ? bufferevent_getfd(bev) : -1;
    if (fd < 0)
        return;
    if (event_assign(&r->ev, ex->base, fd, EV_READ, on_readable, r) != 0)
        return;
    tide__ev_prio(ex, &r->ev);
    if (event_add(&r->ev, NULL) == 0)
        r->watching = true;
}

static void on_finish(tide_task_t *t) {
    tide_evreq_t *r = *(tide_evreq_t **)tide__task_extra(t);
    r->task = NULL;
    struct evhttp_request *req = r->req;
    if (req != NULL) {
        /* Finished without replying (or dropped by tide_exec_free): the
         * client still gets an answer. */
        int code = t->output == -ECANCELED ? 503 : 500;
        req_forget(r);
        evhttp_send_error(req, code, NULL);
    }
    tide__free(r);
}

static void on_request(struct evhttp_request *req, void *arg) {
    struct route *rt = arg;
    tide_evreq_t *r = tide__calloc(1, sizeof *r);
    if (r == NULL) {
        evhttp_send_error(req, 503, NULL);
        return;
    }
    r->req = req;
    r->evcon = evhttp_request_get_connection(req);
    tide_future_t *fut = rt->fn(r, rt->arg);
    if (fut == NULL) {
        if (r->req != NULL)
            evhttp_send_error(req, 500, NULL);
        tide__free(r);
        return;
    }
    tide_task_t *t;
    int rc = tide__spawn_ex(rt->h->ex, fut, 0, sizeof r, on_finish, &t);
    if (rc < 0) {
        tide_future_drop(fut);
        if (r->req != NULL)
            evhttp_send_error(req, 503, NULL);
        tide__free(r);
        return;
    }
    /* First polled from the executor's event: nothing has run yet. */
    *(tide_evreq_t **)tide__task_extra(t) = r;
    r->task = t;
    if (r->req != NULL && r->evcon != NULL) {
        evhttp_connection_set_closecb(r->evcon, on_close, r);
        watch(r, rt->h->ex);
    }
}

int tide_evhttp_new(tide_evhttp_t **out, tide_exec_t *ex, struct evhttp *http) {
    if (out == NULL || ex == NULL || http == NULL)
        return -EINVAL;
    tide_evhttp_t *h = tide__calloc(1, sizeof *h);
    if (h == NULL)
        return -ENOMEM;
    h->ex = ex;
    h->http = http;
    h->gen.h = h;
    *out = h;
    return 0;
}

void tide_evhttp_free(tide_evhttp_t *h) {
    if (h == NULL)
        return;
    while (h->routes != NULL) {
        struct route *rt = h->routes;
        h->routes = rt->next;
        evhttp_del_cb(h->http, rt->path);
        tide__free(rt);
    }
    if (h->gen.fn != NULL)
        evhttp_set_gencb(h->http, NULL, NULL);
    tide__free(h);
}

int tide_evhttp_set_cb(tide_evhttp_t *h, const char *path, tide_evhttp_fn fn,
                       void *arg) {
    if (h == NULL || path == NULL || fn == NULL)
        return -EINVAL;
    size_t n = strlen(path) + 1;
    struct route *rt = tide__calloc(1, sizeof *rt + n);
    if (rt == NULL)
        return -ENOMEM;
    memcpy(rt->path, path, n);
    rt->h = h;
    rt->fn = fn;
    rt->arg = arg;
    int rc = evhttp_set_cb(h->http, path, on_request, rt);
    if (rc != 0) {
        tide__free(rt);
        return rc == -1 ? -EEXIST : -ENOMEM;
    }
    rt->next = h->routes;
    h->routes = rt;
    return 0;
}

int tide_evhttp_set_gencb(tide_evhttp_t *h, tide_evhttp_fn fn, void *arg) {
    if (h == NULL)
        return -EINVAL;
    h->gen.fn = fn;
    h->gen.arg = arg;
    evhttp_set_gencb(h->http, fn != NULL ? on_request : NULL,
                     fn != NULL ? &h->gen : NULL);
    return 0;
}

struct evhttp_request *tide_evreq_req(tide_evreq_t *r) {
    return r != NULL ? r->req : NULL;
}

bool tide_evreq_gone(const tide_evreq_t *r) { return r != NULL && r->gone; }

static int reply_check(tide_evreq_t *r, int code) {
    if (r == NULL || code < 100 || code > 599)
        return -EINVAL;
    if (r->req == NULL)
        return r->gone ? -ECONNRESET : -EALREADY;
    return 0;
}

int tide_evreq_reply(tide_evreq_t *r, int code, const char *reason,
                     struct evbuffer *body) {
    int rc = reply_check(r, code);
    if (rc < 0)
        return rc;
    struct evhttp_request *req = r->req;
    req_forget(r);
    evhttp_send_reply(req, code, reason != NULL ? reason : "OK", body);
    return 0;
}

int tide_evreq_error(tide_evreq_t *r, int code, const char *reason) {
    int rc = reply_check(r, code);
    if (rc < 0)
        return rc;
    struct evhttp_request *req = r->req;
    req_forget(r);
    evhttp_send_error(req, code, reason);
    return 0;
}
