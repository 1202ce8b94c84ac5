/*
 * libuv_echo: a single-threaded echo server on libuv.
 *
 * Written the way an experienced libuv user writes a fast one, so that it is
 * a fair counterpart of epoll_echo: the read buffer is one shared 16 KiB
 * block (alloc_cb hands it out and read_cb is done with it before returning),
 * data goes back with uv_try_write, and only what the socket did not take is
 * copied into the connection's own buffer and queued with uv_write, reading
 * stopped until that write completes.  (libuv's own examples allocate a
 * buffer per read and a request per write; that costs allocations per
 * message, which is not what is measured here.)
 *
 * usage: libuv_echo PORT   (0 picks a free port; the one used is printed)
 */
#ifndef _GNU_SOURCE /* uv.h needs the POSIX thread types, hidden by -std=c11 */
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <uv.h>

enum { BUFSZ = 16 * 1024 };

struct conn {
	uv_tcp_t tcp; /* first, so a handle pointer is a conn pointer */
	uv_write_t wreq;
	char *pend; /* allocated on the first partial write */
};

static char buf[BUFSZ];
static uv_loop_t *loop;

static void on_close(uv_handle_t *h)
{
	struct conn *c = (struct conn *)h;
	free(c->pend);
	free(c);
}

static void conn_close(struct conn *c)
{
	if (!uv_is_closing((uv_handle_t *)&c->tcp))
		uv_close((uv_handle_t *)&c->tcp, on_close);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	(void)h;
	(void)suggested;
	*b = uv_buf_init(buf, sizeof buf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b);

static void on_written(uv_write_t *req, int status)
{
	struct conn *c = req->data;
	if (status < 0 ||
	    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0)
		conn_close(c);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
	struct conn *c = (struct conn *)s;
	if (nread < 0) { /* UV_EOF or an error */
		conn_close(c);
		return;
	}
	if (nread == 0) /* EAGAIN */
		return;
	uv_buf_t out = uv_buf_init(b->base, (unsigned)nread);
	int n = uv_try_write(s, &out, 1);
	if (n == nread)
		return;
	if (n < 0 && n != UV_EAGAIN) {
		conn_close(c);
		return;
	}
	if (n < 0)
		n = 0;
	/* Keep the rest and read nothing more until it is written. */
	if (!c->pend && !(c->pend = malloc(BUFSZ))) {
		conn_close(c);
		return;
	}
	size_t rest = (size_t)nread - (size_t)n;
	memcpy(c->pend, b->base + n, rest);
	out = uv_buf_init(c->pend, (unsigned)rest);
	uv_read_stop(s);
	c->wreq.data = c;
	if (uv_write(&c->wreq, s, &out, 1, on_written) < 0)
		conn_close(c);
}

static void on_connection(uv_stream_t *server, int status)
{
	if (status < 0)
		return;
	struct conn *c = calloc(1, sizeof *c);
	if (!c)
		return;
	uv_tcp_init(loop, &c->tcp);
	if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
		conn_close(c);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0)
		conn_close(c);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s PORT\n", argv[0]);
		return 64;
	}
	signal(SIGPIPE,
	       SIG_IGN); /* libuv writes with write(), not MSG_NOSIGNAL */
	loop = uv_default_loop();
	uv_tcp_t server;
	struct sockaddr_in sin;
	int err;
	uv_tcp_init(loop, &server);
	if ((err = uv_ip4_addr("127.0.0.1", atoi(argv[1]), &sin)) < 0 ||
	    (err = uv_tcp_bind(&server, (const struct sockaddr *)&sin, 0)) <
		0 ||
	    (err = uv_listen((uv_stream_t *)&server, SOMAXCONN,
			     on_connection)) < 0) {
		fprintf(stderr, "listen: %s\n", uv_strerror(err));
		return 1;
	}
	int len = sizeof sin;
	uv_tcp_getsockname(&server, (struct sockaddr *)&sin, &len);
	printf("listening on 127.0.0.1:%d\n", ntohs(sin.sin_port));
	fflush(stdout);
	return uv_run(loop, UV_RUN_DEFAULT);
}
