/*
 * t/check_evhttp.c: evhttp handlers as tide tasks (tide_evhttp_*,
 * tide_evreq_*), served and requested on one event_base over 127.0.0.1
 * (libevent's own HTTP client, and raw sockets for clients that leave).
 */
#include <event2/buffer.h>
#include <event2/http.h>
#include <tide/libevent.h>

#include "testutil.h"

static uint64_t t_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

typedef struct srv {
    struct event_base *base;
    struct evhttp *http;
    tide_exec_t *ex;
    tide_evhttp_t *router;
    int port;
    uint64_t delay_us;
    int made, polled_after_sleep, replied, dropped;
} srv_t;

typedef struct handler {
    TIDE_TASK_HEAD;
    srv_t *srv;
    tide_evreq_t *r;
    tide_sleep_t nap;
} handler_t;

static void handler_cleanup(handler_t *self) { self->srv->dropped++; }

TIDE_TASK(handler_t, handler) {
    TIDE_TASK_BEGIN;
    TIDE_TASK_AWAIT(tide_sleep(&self->nap, self->srv->delay_us));
    self->srv->polled_after_sleep++;
    {
        ck_assert_ptr_nonnull(tide_evreq_req(self->r));
        struct evbuffer *b = evbuffer_new();
        evbuffer_add_printf(b, "%s",
                            evhttp_request_get_uri(tide_evreq_req(self->r)));
        ck_assert_int_eq(tide_evreq_reply(self->r, 200, NULL, b), 0);
        evbuffer_free(b);
        ck_assert_ptr_null(tide_evreq_req(self->r));
        ck_assert_int_eq(tide_evreq_reply(self->r, 200, NULL, NULL), -EALREADY);
        self->srv->replied++;
    }
    TIDE_TASK_END(0);
}

static tide_future_t *make_handler(tide_evreq_t *r, void *arg) {
    srv_t *s = arg;
    handler_t *h = handler_new();
    ck_assert_ptr_nonnull(h);
    h->srv = s;
    h->r = r;
    s->made++;
    return &h->fut;
}

static void srv_start(srv_t *s, uint64_t delay_us) {
    memset(s, 0, sizeof *s);
    s->delay_us = delay_us;
    s->base = event_base_new();
    ck_assert_ptr_nonnull(s->base);
    s->http = evhttp_new(s->base);
    ck_assert_ptr_nonnull(s->http);
    struct evhttp_bound_socket *b =
        evhttp_bind_socket_with_handle(s->http, "127.0.0.1", 0);
    ck_assert_ptr_nonnull(b);
    struct sockaddr_in sin;
    socklen_t sl = sizeof sin;
    ck_assert_int_eq(getsockname(evhttp_bound_socket_get_fd(b),
                                 (struct sockaddr *)&sin, &sl),
                     0);
    s->port = ntohs(sin.sin_port);
    ck_assert_int_eq(tide_exec_new(&s->ex, s->base, 0), 0);
    ck_assert_int_eq(tide_evhttp_new(&s->router, s->ex, s->http), 0);
    ck_assert_int_eq(tide_evhttp_set_gencb(s->router, make_handler, s), 0);
}

static void srv_stop(srv_t *s) {
    tide_evhttp_free(s->router);
    tide_exec_free(s->ex);
    evhttp_free(s->http);
    event_base_free(s->base);
}

/* Run the loop until *flag reaches want, or ms pass. */
static void run_until(srv_t *s, int *flag, int want, unsigned ms) {
    uint64_t end = t_now_ms() + ms;
    while ((flag == NULL || *flag < want) && t_now_ms() < end) {
        event_base_loop(s->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        usleep(200);
    }
}

typedef struct client {
    int code;
    int done;
    char body[64];
    int *ndone;
} client_t;

static void client_done(struct evhttp_request *req, void *arg) {
    client_t *c = arg;
    c->done = 1;
    (*c->ndone)++;
    if (req == NULL)
        return;
    c->code = evhttp_request_get_response_code(req);
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    if (n >= sizeof c->body)
        n = sizeof c->body - 1;
    evbuffer_remove(in, c->body, n);
    c->body[n] = '\0';
}

static struct evhttp_connection *client_get(srv_t *s, client_t *c,
                                            const char *uri, int *ndone) {
    struct evhttp_connection *conn = evhttp_connection_base_new(
        s->base, NULL, "127.0.0.1", (unsigned short)s->port);
    ck_assert_ptr_nonnull(conn);
    c->ndone = ndone;
    struct evhttp_request *req = evhttp_request_new(client_done, c);
    ck_assert_ptr_nonnull(req);
    ck_assert_int_eq(evhttp_make_request(conn, req, EVHTTP_REQ_GET, uri), 0);
    return conn;
}

START_TEST(test_evhttp_replies_after_a_sleep) {
    srv_t s;
    srv_start(&s, 30000);
    client_t c = {0};
    int ndone = 0;
    uint64_t t0 = t_now_ms();
    struct evhttp_connection *conn = client_get(&s, &c, "/slept", &ndone);
    run_until(&s, &ndone, 1, T_BOUND_MS);
    ck_assert_int_eq(ndone, 1);
    ck_assert_int_eq(c.code, 200);
    ck_assert_str_eq(c.body, "/slept");
    ck_assert_uint_ge(t_now_ms() - t0, 30);
    ck_assert_int_eq(s.replied, 1);
    ck_assert_int_eq(s.dropped, 1);
    evhttp_connection_free(conn);
    srv_stop(&s);
}
END_TEST

START_TEST(test_evhttp_many_concurrent_requests) {
    enum { N = 60 };
    srv_t s;
    srv_start(&s, 10000);
    static client_t c[N];
    struct evhttp_connection *conn[N];
    char uri[N][16];
    int ndone = 0;
    for (int i = 0; i < N; i++) {
        memset(&c[i], 0, sizeof c[i]);
        snprintf(uri[i], sizeof uri[i], "/r%d", i);
        conn[i] = client_get(&s, &c[i], uri[i], &ndone);
    }
    run_until(&s, &ndone, N, T_BOUND_MS);
    for (int i = 0; i < N; i++) {
        ck_assert_msg(c[i].code == 200, "request %d: code %d", i, c[i].code);
        ck_assert_msg(strcmp(c[i].body, uri[i]) == 0, "request %d: got '%s'", i,
                      c[i].body);
        evhttp_connection_free(conn[i]);
    }
    ck_assert_int_eq(s.replied, N);
    ck_assert_int_eq(s.dropped, N);
    srv_stop(&s);
}
END_TEST

/* A raw client: connect, send a request, leave the socket to the test. */
static int raw_request(int port, const char *uri) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET,
                              .sin_port = htons((unsigned short)port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    char buf[128];
    int n =
        snprintf(buf, sizeof buf, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", uri);
    ck_assert_int_eq(write(fd, buf, (size_t)n), n);
    return fd;
}

START_TEST(test_evhttp_exec_freed_in_flight_answers_503) {
    srv_t s;
    srv_start(&s, 300000);
    client_t c = {0};
    int ndone = 0;
    struct evhttp_connection *conn = client_get(&s, &c, "/inflight", &ndone);
    run_until(&s, &s.made, 1, T_BOUND_MS);
    ck_assert_int_eq(s.made, 1);
    tide_evhttp_free(s.router);
    tide_exec_free(s.ex); /* drops the task: 503 */
    ck_assert_int_eq(s.dropped, 1);
    run_until(&s, &ndone, 1, T_BOUND_MS);
    ck_assert_int_eq(c.code, 503);
    ck_assert_int_eq(s.replied, 0);
    evhttp_connection_free(conn);
    evhttp_free(s.http);
    event_base_free(s.base);
}
END_TEST

START_TEST(test_evhttp_freed_in_flight_drops_the_task) {
    srv_t s;
    srv_start(&s, 300000);
    int fd = raw_request(s.port, "/inflight");
    run_until(&s, &s.made, 1, T_BOUND_MS);
    ck_assert_int_eq(s.made, 1);
    tide_evhttp_free(s.router);
    evhttp_free(s.http); /* frees the connection and its request */
    run_until(&s, &s.dropped, 1, T_BOUND_MS);
    ck_assert_int_eq(s.dropped, 1);
    ck_assert_int_eq(s.polled_after_sleep, 0);
    tide_exec_free(s.ex);
    event_base_free(s.base);
    close(fd);
}
END_TEST

START_TEST(test_evhttp_client_gone_drops_the_task) {
    srv_t s;
    srv_start(&s, 60u * 1000000u); /* the handler would sleep a minute */
    int fd = raw_request(s.port, "/gone");
    run_until(&s, &s.made, 1, T_BOUND_MS);
    ck_assert_int_eq(s.made, 1);
    ck_assert_int_eq(s.dropped, 0);
    close(fd); /* the client leaves while its request waits */
    run_until(&s, &s.dropped, 1, T_BOUND_MS);
    ck_assert_int_eq(s.dropped, 1);
    ck_assert_int_eq(s.polled_after_sleep, 0);
    ck_assert_int_eq(s.replied, 0);
    srv_stop(&s);
}
END_TEST

static tide_future_t *make_null(tide_evreq_t *r, void *arg) {
    (*(int *)arg)++;
    return NULL;
}

START_TEST(test_evhttp_checks_its_arguments) {
    srv_t s;
    srv_start(&s, 0);
    tide_evhttp_t *h = NULL;
    ck_assert_int_eq(tide_evhttp_new(NULL, s.ex, s.http), -EINVAL);
    ck_assert_int_eq(tide_evhttp_new(&h, NULL, s.http), -EINVAL);
    ck_assert_int_eq(tide_evhttp_new(&h, s.ex, NULL), -EINVAL);
    ck_assert_int_eq(tide_evhttp_set_cb(NULL, "/a", make_handler, &s), -EINVAL);
    ck_assert_int_eq(tide_evhttp_set_cb(s.router, NULL, make_handler, &s),
                     -EINVAL);
    ck_assert_int_eq(tide_evhttp_set_cb(s.router, "/a", NULL, &s), -EINVAL);
    ck_assert_int_eq(tide_evhttp_set_gencb(NULL, make_handler, &s), -EINVAL);
    int nulls = 0;
    ck_assert_int_eq(tide_evhttp_set_cb(s.router, "/null", make_null, &nulls),
                     0);
    ck_assert_int_eq(tide_evhttp_set_cb(s.router, "/null", make_null, &nulls),
                     -EEXIST);
    ck_assert_int_eq(tide_evreq_reply(NULL, 200, NULL, NULL), -EINVAL);
    ck_assert_int_eq(tide_evreq_error(NULL, 500, NULL), -EINVAL);
    ck_assert_ptr_null(tide_evreq_req(NULL));
    ck_assert(!tide_evreq_gone(NULL));
    /* A factory that makes nothing: the client gets 500. */
    client_t c = {0};
    int ndone = 0;
    struct evhttp_connection *conn = client_get(&s, &c, "/null", &ndone);
    run_until(&s, &ndone, 1, T_BOUND_MS);
    ck_assert_int_eq(nulls, 1);
    ck_assert_int_eq(c.code, 500);
    evhttp_connection_free(conn);
    srv_stop(&s);
}
END_TEST

static Suite *evhttp_suite(void) {
    Suite *su = suite_create("evhttp");
    TCase *tc = tcase_create("evhttp");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_evhttp_replies_after_a_sleep);
    tcase_add_test(tc, test_evhttp_many_concurrent_requests);
    tcase_add_test(tc, test_evhttp_exec_freed_in_flight_answers_503);
    tcase_add_test(tc, test_evhttp_freed_in_flight_drops_the_task);
    tcase_add_test(tc, test_evhttp_client_gone_drops_the_task);
    tcase_add_test(tc, test_evhttp_checks_its_arguments);
    suite_add_tcase(su, tc);
    return su;
}

int main(void) { return t_run_suite(evhttp_suite()); }
