/*
 * samples/http-backend/http-backend-cb.c: the callback twin of
 * http-backend.c, the same server written as libevent code is written
 * without tide: a bufferevent per request to the backend and three
 * callbacks (connected/event, read, and the client connection's close).
 *
 *   http-backend-cb HTTP_PORT BACKEND_HOST:PORT
 *
 * For each request: connect to the backend, write the URI and a newline,
 * read the line back, reply with it. GET /quit replies "bye" and stops.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>

typedef struct app {
    struct event_base *base;
    struct sockaddr_in backend;
} app_t;

typedef struct call {
    struct evhttp_request *req; /* NULL once the client left */
    struct evhttp_connection *evcon;
    struct bufferevent *bev;
    size_t len;
} call_t;

static void call_end(call_t *c, int code, const char *why) {
    if (c->req != NULL) {
        evhttp_connection_set_closecb(c->evcon, NULL, NULL);
        if (code == 200) {
            struct evbuffer *out = evbuffer_new();
            if (out != NULL)
                evbuffer_remove_buffer(bufferevent_get_input(c->bev), out,
                                       c->len);
            evhttp_add_header(evhttp_request_get_output_headers(c->req),
                              "Content-Type", "text/plain");
            evhttp_send_reply(c->req, 200, "OK", out);
            if (out != NULL)
                evbuffer_free(out);
        } else {
            evhttp_send_error(c->req, code, why);
        }
    }
    bufferevent_free(c->bev);
    free(c);
}

static void on_client_close(struct evhttp_connection *evcon, void *arg) {
    call_t *c = arg;
    if (evhttp_request_get_connection(c->req) == NULL)
        evhttp_request_free(c->req);
    c->req = NULL;
    call_end(c, 0, NULL);
}

static void on_backend_read(struct bufferevent *bev, void *arg) {
    call_t *c = arg;
    if (evbuffer_get_length(bufferevent_get_input(bev)) >= c->len)
        call_end(c, 200, NULL);
}

static void on_backend_event(struct bufferevent *bev, short what, void *arg) {
    if (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF))
        call_end(arg, 502, "backend failed");
}

static void on_quit_sent(struct evhttp_request *req, void *arg) {
    event_base_loopexit(arg, NULL);
}

static void on_request(struct evhttp_request *req, void *arg) {
    app_t *app = arg;
    const char *uri = evhttp_request_get_uri(req);
    if (strcmp(uri, "/quit") == 0) {
        struct evbuffer *out = evbuffer_new();
        if (out != NULL)
            evbuffer_add_printf(out, "bye\n");
        evhttp_request_set_on_complete_cb(req, on_quit_sent, app->base);
        evhttp_send_reply(req, 200, "OK", out);
        if (out != NULL)
            evbuffer_free(out);
        return;
    }
    call_t *c = calloc(1, sizeof *c);
    if (c == NULL) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    c->req = req;
    c->evcon = evhttp_request_get_connection(req);
    c->len = strlen(uri) + 1;
    c->bev = bufferevent_socket_new(app->base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (c->bev == NULL) {
        free(c);
        evhttp_send_error(req, 500, NULL);
        return;
    }
    bufferevent_setcb(c->bev, on_backend_read, NULL, on_backend_event, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    struct evbuffer *out = bufferevent_get_output(c->bev);
    evbuffer_add(out, uri, c->len - 1);
    evbuffer_add(out, "\n", 1);
    evhttp_connection_set_closecb(c->evcon, on_client_close, c);
    if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&app->backend,
                                   sizeof app->backend) < 0)
        call_end(c, 502, "backend unreachable");
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
    char host[64];
    int bport;
    long port = argc > 1 ? parse_num(argv[1], 65535) : -1;
    if (argc != 3 || port < 0 ||
        sscanf(argv[2], "%63[^:]:%d", host, &bport) != 2 || bport < 0 ||
        bport > 65535 || inet_pton(AF_INET, host, &app.backend.sin_addr) != 1) {
        fprintf(stderr, "Usage: http-backend-cb HTTP_PORT BACKEND_IP:PORT\n");
        return 2;
    }
    app.backend.sin_family = AF_INET;
    app.backend.sin_port = htons((unsigned short)bport);

    app.base = event_base_new();
    struct evhttp *http = app.base ? evhttp_new(app.base) : NULL;
    struct evhttp_bound_socket *bound =
        http ? evhttp_bind_socket_with_handle(http, "127.0.0.1",
                                              (ev_uint16_t)port)
             : NULL;
    if (bound == NULL) {
        fprintf(stderr, "http-backend-cb: cannot listen\n");
        return 1;
    }
    evhttp_set_gencb(http, on_request, &app);
    struct sockaddr_in sin;
    socklen_t sl = sizeof sin;
    if (getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&sin,
                    &sl) == 0)
        printf("listening on 127.0.0.1:%d\n", ntohs(sin.sin_port));
    fflush(stdout);

    event_base_dispatch(app.base);

    evhttp_free(http);
    event_base_free(app.base);
    return 0;
}
