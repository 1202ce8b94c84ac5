/*
 * shared_loop: one event_base that serves HTTP with evhttp callbacks (a
 * short constant page) and TCP echo with tide tasks (tide_serve, a
 * tide_copy per connection), as an application that embeds tide does. It
 * measures how the two share the loop (bench/share.sh) under each of
 * tide's knobs:
 *
 *   shared_loop same|above|below [BUDGET]
 *
 *   same    tide's events at libevent's default priority, as the host's
 *   above   tide's events before the host's (tide_exec_set_priority 0;
 *           the host's at 1)
 *   below   tide's events after the host's (priority 2)
 *   BUDGET  task polls per executor turn (tide_exec_set_budget; 0 or
 *           absent: tide's default)
 *
 * It listens on free 127.0.0.1 ports, prints "http PORT" and "echo PORT"
 * on stdout, and serves until SIGTERM or SIGINT. Exit 0, or 2 on bad
 * usage, 1 when it cannot serve.
 */
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include <tide.h>

static const char page[] = "hello from evhttp, beside tide\n";

static void on_request(struct evhttp_request *req, void *arg)
{
	(void)arg;
	struct evbuffer *out = evhttp_request_get_output_buffer(req);
	evbuffer_add_reference(out, page, sizeof page - 1, NULL, NULL);
	evhttp_send_reply(req, HTTP_OK, "OK", NULL);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	event_base_loopexit(arg, NULL);
}

typedef struct echo_conn {
	TIDE_TASK_HEAD;
	tide_conn_t *conn;
	tide_copy_t copy;
	unsigned char buf[16384];
} echo_conn_t;

static void echo_conn_cleanup(echo_conn_t *self)
{
	tide_conn_free(self->conn);
}

TIDE_TASK(echo_conn_t, echo_conn)
{
	tide_stream_t *s = tide_conn_stream(self->conn);
	TIDE_TASK_BEGIN;
	TIDE_TASK_AWAIT(
	    tide_copy(&self->copy, s, s, self->buf, sizeof self->buf));
	TIDE_TASK_END(0);
}

static tide_future_t *on_echo_conn(tide_conn_t *conn, void *arg)
{
	(void)arg;
	echo_conn_t *c = echo_conn_new();
	if (c == NULL)
		return NULL;
	c->conn = conn;
	return &c->fut;
}

static int usage(void)
{
	fprintf(stderr, "usage: shared_loop same|above|below [BUDGET]\n");
	return 2;
}

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 3)
		return usage();
	int prio;
	if (strcmp(argv[1], "same") == 0)
		prio = -1;
	else if (strcmp(argv[1], "above") == 0)
		prio = 0;
	else if (strcmp(argv[1], "below") == 0)
		prio = 2;
	else
		return usage();
	unsigned long budget = 0;
	if (argc == 3) {
		char *end;
		budget = strtoul(argv[2], &end, 10);
		if (*argv[2] == '\0' || *end != '\0' || budget > 1000000)
			return usage();
	}

	struct event_base *base = event_base_new();
	if (base == NULL || event_base_priority_init(base, 3) != 0)
		return 1;
	struct evhttp *http = evhttp_new(base);
	struct evhttp_bound_socket *bound =
	    http ? evhttp_bind_socket_with_handle(http, "127.0.0.1", 0) : NULL;
	struct event *sigterm = evsignal_new(base, SIGTERM, on_signal, base);
	struct event *sigint = evsignal_new(base, SIGINT, on_signal, base);
	if (bound == NULL || sigterm == NULL || sigint == NULL ||
	    event_add(sigterm, NULL) < 0 || event_add(sigint, NULL) < 0) {
		fprintf(stderr, "shared_loop: cannot serve http\n");
		return 1;
	}
	evhttp_set_gencb(http, on_request, NULL);

	tide_exec_t *ex;
	tide_listener_t *echo = NULL;
	tide_serve_t serve;
	int rc = tide_exec_new(&ex, base, 0);
	if (rc == 0)
		rc = tide_exec_set_priority(ex, prio);
	if (rc == 0) {
		tide_exec_set_budget(ex, (unsigned)budget);
		rc = tide_listener_bind(&echo, ex, "127.0.0.1:0", 0);
	}
	if (rc == 0)
		rc = tide_spawn(
		    ex, tide_serve(&serve, echo, on_echo_conn, NULL, NULL),
		    NULL);
	if (rc < 0) {
		fprintf(stderr, "shared_loop: tide: %s\n", tide_strerror(rc));
		return 1;
	}

	struct sockaddr_in sin;
	ev_socklen_t sl = sizeof sin;
	char ename[TIDE_ADDR_STRLEN];
	if (getsockname(evhttp_bound_socket_get_fd(bound),
			(struct sockaddr *)&sin, &sl) != 0 ||
	    tide_listener_name(echo, ename, sizeof ename) < 0)
		return 1;
	const char *colon = strrchr(ename, ':');
	printf("http %d\necho %s\n", ntohs(sin.sin_port),
	       colon != NULL ? colon + 1 : ename);
	fflush(stdout);

	event_base_dispatch(base);

	tide_exec_free(ex);
	tide_listener_free(echo);
	event_free(sigterm);
	event_free(sigint);
	evhttp_free(http);
	event_base_free(base);
	return 0;
}
