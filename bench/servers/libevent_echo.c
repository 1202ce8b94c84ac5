/*
 * libevent_echo: a single-threaded echo server on libevent's raw events.
 *
 * The same logic as epoll_echo, written with event_new(EV_READ|EV_PERSIST)
 * callbacks: it shows what libevent's dispatch adds to raw epoll, without
 * bufferevents.  A connection has a read event and a write event; after a
 * partial write it keeps the rest, swaps the read event for the write event
 * until the rest is out, and reads nothing meanwhile.
 *
 * usage: libevent_echo PORT   (0 picks a free port; the one used is printed)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { BUFSZ = 16 * 1024, READS_PER_EVENT = 16 };

struct conn {
	int fd;
	struct event *rd, *wr;
	size_t pend_off, pend_len;
	char *pend; /* allocated on the first partial write */
};

static struct event_base *base;
static char buf[BUFSZ];

static void conn_close(struct conn *c)
{
	event_free(c->rd);
	event_free(c->wr);
	close(c->fd);
	free(c->pend);
	free(c);
}

/* Write data, keeping what the socket did not take.  Returns -1 when the
 * connection failed and was closed. */
static int send_or_keep(struct conn *c, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(c->fd, data, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			conn_close(c);
			return -1;
		}
		data += n;
		len -= (size_t)n;
	}
	if (len > 0) {
		if (!c->pend && !(c->pend = malloc(BUFSZ))) {
			conn_close(c);
			return -1;
		}
		memmove(c->pend, data, len);
		c->pend_off = 0;
	}
	c->pend_len = len;
	return 0;
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct conn *c = arg;
	/* As in epoll_echo: read again only after a read that filled the
	 * buffer, at most READS_PER_EVENT times. */
	for (int i = 0; i < READS_PER_EVENT; i++) {
		ssize_t n = read(fd, buf, sizeof buf);
		if (n < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK &&
			    errno != EINTR)
				conn_close(c);
			return;
		}
		if (n == 0) {
			conn_close(c);
			return;
		}
		if (send_or_keep(c, buf, (size_t)n) < 0)
			return;
		if (c->pend_len > 0) {
			event_del(c->rd);
			event_add(c->wr, NULL);
			return;
		}
		if ((size_t)n < sizeof buf)
			return;
	}
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct conn *c = arg;
	if (send_or_keep(c, c->pend + c->pend_off, c->pend_len) < 0)
		return;
	if (c->pend_len == 0) {
		event_del(c->wr);
		event_add(c->rd, NULL);
	}
}

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
	(void)what;
	(void)arg;
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				perror("accept4");
			return;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		struct conn *c = calloc(1, sizeof *c);
		if (!c) {
			close(fd);
			continue;
		}
		c->fd = fd;
		c->rd = event_new(base, fd, EV_READ | EV_PERSIST, on_read, c);
		c->wr = event_new(base, fd, EV_WRITE | EV_PERSIST, on_write, c);
		if (!c->rd || !c->wr || event_add(c->rd, NULL) < 0) {
			if (c->rd)
				event_free(c->rd);
			if (c->wr)
				event_free(c->wr);
			close(fd);
			free(c);
		}
	}
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s PORT\n", argv[0]);
		return 64;
	}
	signal(SIGPIPE, SIG_IGN);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	struct sockaddr_in sin = {.sin_family = AF_INET,
				  .sin_port = htons((uint16_t)atoi(argv[1]))};
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof sin;
	if (fd < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
	    bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0 ||
	    listen(fd, SOMAXCONN) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) < 0) {
		perror("listen");
		return 1;
	}
	base = event_base_new();
	struct event *lev =
	    base ? event_new(base, fd, EV_READ | EV_PERSIST, on_accept, NULL)
		 : NULL;
	if (!lev || event_add(lev, NULL) < 0) {
		fprintf(stderr, "libevent setup failed\n");
		return 1;
	}
	printf("listening on 127.0.0.1:%d\n", ntohs(sin.sin_port));
	fflush(stdout);
	event_base_dispatch(base);
	return 0;
}
