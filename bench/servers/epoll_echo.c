/*
 * epoll_echo: a single-threaded echo server on raw, level-triggered epoll.
 *
 * This is the floor the other servers are measured against: per message it
 * costs one read() and one write() plus a share of an epoll_wait(), and no
 * allocation.  It reads into one shared 16 KiB buffer and writes it straight
 * back.  When the peer does not take everything (it pipelines and stops
 * reading, or its window is full) the rest is kept in the connection's own
 * buffer and the connection waits for EPOLLOUT instead of EPOLLIN: it reads
 * nothing more until that is written, so memory stays bounded and the order
 * of bytes is kept.
 *
 * usage: epoll_echo PORT   (0 picks a free port; the one used is printed)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

enum { BUFSZ = 16 * 1024, MAXEV = 256 };

struct conn {
	int fd;
	size_t pend_off, pend_len; /* unsent bytes in pend[] */
	char *pend;                /* allocated on the first partial write */
};

static int epfd;
static char buf[BUFSZ];

static void set_interest(struct conn *c, uint32_t ev)
{
	struct epoll_event e = {.events = ev, .data.ptr = c};
	if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &e) < 0) {
		perror("epoll_ctl");
		exit(1);
	}
}

static void conn_close(struct conn *c)
{
	close(c->fd); /* also removes it from the epoll set */
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
		memmove(c->pend, data, len); /* data may point into pend */
		c->pend_off = 0;
		c->pend_len = len;
	} else {
		c->pend_len = 0;
	}
	return 0;
}

/* A read that fills the buffer suggests more is queued: read again, up to
 * READS_PER_EVENT times, rather than pay an epoll_wait round per 16 KiB.  A
 * short read ends the turn without the extra read that would only return
 * EAGAIN (which is what a ping-pong connection would pay every time).
 * libuv does the same. */
enum { READS_PER_EVENT = 16 };

static void on_readable(struct conn *c)
{
	for (int i = 0; i < READS_PER_EVENT; i++) {
		ssize_t n = read(c->fd, buf, sizeof buf);
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
			set_interest(c, EPOLLOUT);
			return;
		}
		if ((size_t)n < sizeof buf)
			return;
	}
}

static void on_writable(struct conn *c)
{
	if (send_or_keep(c, c->pend + c->pend_off, c->pend_len) < 0)
		return;
	if (c->pend_len == 0)
		set_interest(c, EPOLLIN);
}

static void on_accept(int lfd)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				perror(
				    "accept4"); /* EMFILE and the like: try later */
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
		struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
		if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &e) < 0) {
			perror("epoll_ctl");
			conn_close(c);
		}
	}
}

static int listen_on(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	struct sockaddr_in sin = {.sin_family = AF_INET,
				  .sin_port = htons((uint16_t)port)};
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof sin;
	if (fd < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
	    bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0 ||
	    listen(fd, SOMAXCONN) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) < 0) {
		perror("listen");
		exit(1);
	}
	printf("listening on 127.0.0.1:%d\n", ntohs(sin.sin_port));
	fflush(stdout);
	return fd;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s PORT\n", argv[0]);
		return 64;
	}
	signal(SIGPIPE, SIG_IGN);
	int lfd = listen_on(atoi(argv[1]));
	epfd = epoll_create1(EPOLL_CLOEXEC);
	/* The listener is told apart from connections by a NULL pointer. */
	struct epoll_event le = {.events = EPOLLIN, .data.ptr = NULL};
	if (epfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &le) < 0) {
		perror("epoll");
		return 1;
	}
	struct epoll_event evs[MAXEV];
	for (;;) {
		int n = epoll_wait(epfd, evs, MAXEV, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("epoll_wait");
			return 1;
		}
		/* Each descriptor appears at most once per batch, so closing a
		 * connection here cannot leave a stale pointer in evs[]. */
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			if (!c)
				on_accept(lfd);
			else if (c->pend_len > 0)
				on_writable(c); /* EPOLLOUT, or EPOLLERR/HUP */
			else
				on_readable(c);
		}
	}
}
