/*
 * samples/embed/embed.c: tide inside an existing libevent program.
 *
 * The program is an ordinary libevent application: an evhttp server on
 * 127.0.0.1, a SIGINT handler made with evsignal_new, and its own
 * event_base_dispatch loop. It keeps all of that. What tide adds is three
 * lines (marked 1, 2, 3 below):
 *
 *   1. tide_exec_new(&ex, base, 0)      an executor on the program's base
 *                                       (tide adds its events to it and
 *                                       never dispatches or frees it)
 *   2. tide_spawn(ex, &task->fut, ...)  tasks: here a TCP echo listener
 *                                       with a task per connection, and a
 *                                       ticker
 *   3. tide_exec_free(ex)               after the loop: drops the tasks
 *                                       still alive and removes every
 *                                       event tide added
 *
 * Both sides run at once in the one loop: HTTP requests are answered while
 * echo connections stream, and the HTTP page shows tide's counters. Tasks
 * run from one internal event, a bounded number of polls per turn, so a
 * busy echo connection does not starve the HTTP server.
 *
 *   embed [HTTP_PORT [ECHO_PORT]]       defaults 8080 and HTTP_PORT + 1;
 *                                       0 picks free ports
 *
 * It prints the two addresses on stdout, then serves until SIGINT or a
 * request for /quit, and exits 0.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include <tide.h>

/* What both sides share (one thread: no locking). */
typedef struct app {
    struct event_base *base;
    tide_exec_t *ex;
    tide_listener_t *echo;
    tide_serve_t serve; /* its accept loop, a task */
    unsigned long http_requests;
    unsigned long echo_conns, echo_open;
    unsigned long long echo_bytes;
    unsigned long ticks;
} app_t;

/* ------------------------------------------------------------------------
 * The libevent side: evhttp and a signal, as the program had them.
 * ------------------------------------------------------------------------ */

/* The reply to /quit has been written to the socket: now the loop may
 * stop. (Stopping it from on_request would free the connection, after the
 * loop, with the reply still in its output buffer: the client would get
 * an empty reply.) */
static void on_quit_sent(struct evhttp_request *req, void *arg) {
    event_base_loopexit(arg, NULL);
}

static void on_request(struct evhttp_request *req, void *arg) {
    app_t *app = arg;
    app->http_requests++;
    const char *uri = evhttp_request_get_uri(req);
    struct evbuffer *out = evbuffer_new();
    if (out == NULL) {
        evhttp_send_error(req, HTTP_INTERNAL, NULL);
        return;
    }
    if (strcmp(uri, "/quit") == 0) {
        evbuffer_add_printf(out, "bye\n");
        evhttp_request_set_on_complete_cb(req, on_quit_sent, app->base);
        evhttp_send_reply(req, HTTP_OK, "OK", out);
    } else {
        evbuffer_add_printf(out,
                            "hello from evhttp, in the loop that also runs "
                            "tide (version %s)\n"
                            "http requests: %lu\n"
                            "tide echo: %lu connections (%lu open); the "
                            "closed ones echoed %llu bytes\n"
                            "tide ticks: %lu\n",
                            tide_version(), app->http_requests, app->echo_conns,
                            app->echo_open, app->echo_bytes, app->ticks);
        evhttp_add_header(evhttp_request_get_output_headers(req),
                          "Content-Type", "text/plain");
        evhttp_send_reply(req, HTTP_OK, "OK", out);
    }
    evbuffer_free(out);
}

static void on_sigint(evutil_socket_t sig, short what, void *arg) {
    event_base_loopexit(arg, NULL);
}

/* ------------------------------------------------------------------------
 * The tide side: an echo listener and a ticker, as tasks.
 * ------------------------------------------------------------------------ */

typedef struct echo_conn {
    TIDE_TASK_HEAD;
    app_t *app;
    tide_conn_t *conn;
    union {
        tide_copy_t copy;
        tide_shutdown_t sd;
    } op;
    unsigned char buf[4096];
} echo_conn_t;

static void echo_conn_cleanup(echo_conn_t *self) {
    tide_conn_free(self->conn);
    self->app->echo_open--;
}

/* Copy the stream to itself until the client stops sending. */
TIDE_TASK(echo_conn_t, echo_conn) {
    tide_stream_t *s = tide_conn_stream(self->conn);
    TIDE_TASK_BEGIN;
    TIDE_TASK_AWAIT(
        tide_copy(&self->op.copy, s, s, self->buf, sizeof self->buf));
    self->app->echo_bytes += tide_copy_copied(&self->op.copy);
    if (TIDE_TASK_RESULT >= 0)
        TIDE_TASK_AWAIT(tide_shutdown(&self->op.sd, s));
    TIDE_TASK_END(0);
}

/* tide_serve's handler: a task for each connection. */
static tide_future_t *on_echo_conn(tide_conn_t *conn, void *arg) {
    app_t *app = arg;
    echo_conn_t *c = echo_conn_new();
    if (c == NULL)
        return NULL; /* tide closes conn */
    c->app = app;
    c->conn = conn;
    app->echo_conns++;
    app->echo_open++;
    return &c->fut;
}

typedef struct ticker {
    TIDE_TASK_HEAD;
    app_t *app;
    tide_interval_t every;
} ticker_t;

static void ticker_cleanup(ticker_t *self) { tide_interval_drop(&self->every); }

TIDE_TASK(ticker_t, ticker) {
    TIDE_TASK_BEGIN;
    for (;;) {
        TIDE_TASK_AWAIT(tide_interval_tick(&self->every));
        self->app->ticks++;
        if (self->app->ticks % 10 == 0)
            fprintf(stderr,
                    "embed: %lu s: %lu http requests, %lu echo "
                    "connections\n",
                    self->app->ticks, self->app->http_requests,
                    self->app->echo_conns);
    }
    TIDE_TASK_END(0);
}

/* ------------------------------------------------------------------------
 * main
 * ------------------------------------------------------------------------ */

static int parse_port(const char *s) {
    char *end;
    long v = strtol(s, &end, 10);
    return *s != '\0' && *end == '\0' && v >= 0 && v <= 65535 ? (int)v : -1;
}

int main(int argc, char **argv) {
    app_t app;
    memset(&app, 0, sizeof app);
    int http_port = argc > 1 ? parse_port(argv[1]) : 8080;
    int echo_port = argc > 2        ? parse_port(argv[2])
                    : http_port > 0 ? http_port + 1
                                    : 0;
    if (argc > 3 || http_port < 0 || echo_port < 0 || echo_port > 65535) {
        fprintf(stderr, "Usage: embed [HTTP_PORT [ECHO_PORT]]\n");
        return 2;
    }

    /* The libevent program as it was. */
    app.base = event_base_new();
    struct evhttp *http = app.base ? evhttp_new(app.base) : NULL;
    struct evhttp_bound_socket *bound =
        http ? evhttp_bind_socket_with_handle(http, "127.0.0.1",
                                              (ev_uint16_t)http_port)
             : NULL;
    struct event *sigint =
        app.base ? evsignal_new(app.base, SIGINT, on_sigint, app.base) : NULL;
    if (bound == NULL || sigint == NULL || event_add(sigint, NULL) < 0) {
        fprintf(stderr, "embed: cannot serve http on 127.0.0.1:%d\n",
                http_port);
        return 1;
    }
    evhttp_set_gencb(http, on_request, &app);

    /* 1. An executor on the program's own base. */
    int rc = tide_exec_new(&app.ex, app.base, 0);

    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", echo_port);
    if (rc == 0)
        rc = tide_listener_bind(&app.echo, app.ex, addr, 0);
    ticker_t *t = rc == 0 ? ticker_new() : NULL;
    if (rc == 0 && t == NULL)
        rc = -ENOMEM;
    if (rc < 0) {
        fprintf(stderr, "embed: tide echo on %s: %s\n", addr,
                tide_strerror(rc));
        return 1;
    }
    t->app = &app;
    tide_interval_init(&t->every, TIDE_USEC_PER_SEC);

    /* 2. Tasks on it: the echo listener's accept loop (a task per
     * connection) and the ticker. */
    rc = tide_spawn(app.ex,
                    tide_serve(&app.serve, app.echo, on_echo_conn, &app, NULL),
                    NULL);
    if (rc == 0)
        rc = ticker_spawn(app.ex, t, NULL);
    else
        tide_future_drop(&t->fut);
    if (rc < 0) {
        fprintf(stderr, "embed: %s\n", tide_strerror(rc));
        return 1;
    }

    /* Where we are, for people and scripts. */
    struct sockaddr_storage ss;
    ev_socklen_t sl = sizeof ss;
    tide_addr_t ha;
    char hname[TIDE_ADDR_STRLEN] = "?", ename[TIDE_ADDR_STRLEN] = "?";
    if (getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&ss,
                    &sl) == 0 &&
        tide_addr_from_sockaddr(&ha, (struct sockaddr *)&ss, sl) == 0)
        tide_addr_format(&ha, hname, sizeof hname);
    tide_listener_name(app.echo, ename, sizeof ename);
    printf("embed: http on %s\nembed: tide echo on %s\n", hname, ename);
    fflush(stdout);

    /* The program's loop, unchanged: it runs tide's tasks too. */
    event_base_dispatch(app.base);

    /* 3. Drop tide's tasks (closing their connections) and its events. */
    tide_exec_free(app.ex);
    tide_listener_free(app.echo);

    event_free(sigint);
    evhttp_free(http);
    event_base_free(app.base);
    fprintf(stderr, "embed: done (%lu http requests, %lu echo connections)\n",
            app.http_requests, app.echo_conns);
    return 0;
}
