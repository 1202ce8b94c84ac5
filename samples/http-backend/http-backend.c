/*
 * samples/http-backend/http-backend.c: an evhttp server whose handler is a
 * tide task that calls a backend over TCP.
 *
 *   http-backend HTTP_PORT BACKEND_HOST:PORT [DELAY_MS]
 *
 * For each request the task connects to the backend (an echo server, such
 * as tide-echod), writes the request's URI and a newline, reads the line
 * that comes back and replies with it (200, text/plain). With DELAY_MS it
 * first sleeps that long (to show a client leaving mid-wait: its task is
 * dropped, no reply is attempted). GET /quit replies "bye" and stops.
 * It prints "listening on 127.0.0.1:PORT" once bound (0: a free port).
 *
 * Its callback twin, http-backend-cb.c, does the same with bufferevents.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include <tide.h>
#include <tide/libevent.h>

typedef struct app {
    struct event_base *base;
    char backend[128];
    unsigned delay_ms;
} app_t;

typedef struct handler {
    TIDE_TASK_HEAD;
    app_t *app;
    tide_evreq_t *r;
    tide_tcp_t *conn;
    union {
        tide_sleep_t nap;
        tide_tcp_connect_t connect;
        tide_write_all_t wr;
        tide_read_t rd;
    } op;
    size_t len, got;
    char line[1024];
} handler_t;

static void handler_cleanup(handler_t *self) { tide_tcp_free(self->conn); }

static void reply(handler_t *self, int code, const char *text, size_t n) {
    struct evbuffer *out = evbuffer_new();
    if (out == NULL) {
        tide_evreq_error(self->r, 500, NULL);
        return;
    }
    evbuffer_add(out, text, n);
    evhttp_add_header(
        evhttp_request_get_output_headers(tide_evreq_req(self->r)),
        "Content-Type", "text/plain");
    tide_evreq_reply(self->r, code, NULL, out);
    evbuffer_free(out);
}

TIDE_TASK(handler_t, handler) {
    tide_stream_t *s = self->conn ? tide_tcp_stream(self->conn) : NULL;
    TIDE_TASK_BEGIN;
    if (self->app->delay_ms > 0)
        TIDE_TASK_AWAIT(
            tide_sleep(&self->op.nap, self->app->delay_ms * 1000ull));
    TIDE_TASK_AWAIT(tide_tcp_connect(&self->op.connect, self->app->backend));
    if (TIDE_TASK_RESULT < 0) {
        tide_evreq_error(self->r, 502, "backend unreachable");
        TIDE_TASK_RETURN(TIDE_TASK_RESULT);
    }
    self->conn = self->op.connect.conn;
    s = tide_tcp_stream(self->conn);
    TIDE_TASK_AWAIT(tide_write_all(&self->op.wr, s, self->line, self->len));
    if (TIDE_TASK_RESULT < 0) {
        tide_evreq_error(self->r, 502, "backend write failed");
        TIDE_TASK_RETURN(TIDE_TASK_RESULT);
    }
    /* Read back the line (the echo of what we wrote). */
    self->got = 0;
    while (self->got < self->len) {
        TIDE_TASK_AWAIT(tide_read(&self->op.rd, s, self->line + self->got,
                                  self->len - self->got));
        if (TIDE_TASK_RESULT <= 0) {
            tide_evreq_error(self->r, 502, "backend read failed");
            TIDE_TASK_RETURN(-1);
        }
        self->got += (size_t)TIDE_TASK_RESULT;
    }
    reply(self, 200, self->line, self->got);
    TIDE_TASK_END(0);
}

static void on_quit_sent(struct evhttp_request *req, void *arg) {
    event_base_loopexit(arg, NULL);
}

static tide_future_t *on_request(tide_evreq_t *r, void *arg) {
    app_t *app = arg;
    struct evhttp_request *req = tide_evreq_req(r);
    const char *uri = evhttp_request_get_uri(req);
    if (strcmp(uri, "/quit") == 0) {
        struct evbuffer *out = evbuffer_new();
        if (out != NULL)
            evbuffer_add_printf(out, "bye\n");
        evhttp_request_set_on_complete_cb(req, on_quit_sent, app->base);
        tide_evreq_reply(r, 200, NULL, out);
        evbuffer_free(out);
        return NULL;
    }
    size_t n = strlen(uri);
    handler_t *h = handler_new();
    if (h == NULL || n + 1 > sizeof h->line) {
        free(h);
        return NULL; /* 500 */
    }
    h->app = app;
    h->r = r;
    memcpy(h->line, uri, n);
    h->line[n] = '\n';
    h->len = n + 1;
    return &h->fut;
}

/* parse_num: s as a decimal number in [0, max], or -1. */
static long parse_num(const char *s, long max) {
    char *end;
    long v = strtol(s, &end, 10);
    return *s != '\0' && *end == '\0' && v >= 0 && v <= max ? v : -1;
}

int main(int argc, char **argv) {
    app_t app;
    memset(&app, 0, sizeof app);
    long port = argc > 1 ? parse_num(argv[1], 65535) : -1;
    long delay = argc > 3 ? parse_num(argv[3], 3600000) : 0;
    if (argc < 3 || argc > 4 || port < 0 || delay < 0 ||
        strlen(argv[2]) >= sizeof app.backend) {
        fprintf(stderr,
                "Usage: http-backend HTTP_PORT BACKEND_HOST:PORT [DELAY_MS]\n");
        return 2;
    }
    strcpy(app.backend, argv[2]);
    app.delay_ms = (unsigned)delay;

    app.base = event_base_new();
    struct evhttp *http = app.base ? evhttp_new(app.base) : NULL;
    struct evhttp_bound_socket *bound =
        http ? evhttp_bind_socket_with_handle(http, "127.0.0.1",
                                              (ev_uint16_t)port)
             : NULL;
    tide_exec_t *ex = NULL;
    tide_evhttp_t *router = NULL;
    int rc = bound ? tide_exec_new(&ex, app.base, 0) : -1;
    if (rc == 0)
        rc = tide_evhttp_new(&router, ex, http);
    if (rc == 0)
        rc = tide_evhttp_set_gencb(router, on_request, &app);
    if (rc != 0) {
        fprintf(stderr, "http-backend: cannot start (%d)\n", rc);
        return 1;
    }
    evutil_socket_t fd = evhttp_bound_socket_get_fd(bound);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    tide_addr_t a;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 &&
        tide_addr_from_sockaddr(&a, (struct sockaddr *)&ss, sl) == 0)
        printf("listening on 127.0.0.1:%d\n", tide_addr_port(&a));
    fflush(stdout);

    event_base_dispatch(app.base);

    tide_evhttp_free(router);
    tide_exec_free(ex);
    evhttp_free(http);
    event_base_free(app.base);
    return 0;
}
