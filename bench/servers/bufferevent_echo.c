/*
 * bufferevent_echo: the echo server a libevent user writes today.
 *
 * An evconnlistener accepts, each connection gets a socket bufferevent, and
 * the read callback moves the input buffer to the output buffer
 * (evbuffer_add_buffer).  bufferevent does the buffering, the partial
 * writes and the event (re)arming.  Nothing is tuned beyond TCP_NODELAY and
 * a SOMAXCONN backlog (libevent's default is 128), which every server in
 * this directory uses so that they are comparable.
 *
 * usage: bufferevent_echo PORT   (0 picks a free port; the one used is printed)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

static void on_read(struct bufferevent *bev, void *arg)
{
	(void)arg;
	evbuffer_add_buffer(bufferevent_get_output(bev),
			    bufferevent_get_input(bev));
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	(void)arg;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		bufferevent_free(bev);
}

static void on_accept(struct evconnlistener *lis, evutil_socket_t fd,
		      struct sockaddr *sa, int salen, void *arg)
{
	(void)sa;
	(void)salen;
	(void)arg;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	struct bufferevent *bev = bufferevent_socket_new(
	    evconnlistener_get_base(lis), fd, BEV_OPT_CLOSE_ON_FREE);
	if (!bev) {
		evutil_closesocket(fd);
		return;
	}
	bufferevent_setcb(bev, on_read, NULL, on_event, NULL);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s PORT\n", argv[0]);
		return 64;
	}
	signal(SIGPIPE, SIG_IGN);
	struct sockaddr_in sin = {.sin_family = AF_INET,
				  .sin_port = htons((uint16_t)atoi(argv[1]))};
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	struct event_base *base = event_base_new();
	struct evconnlistener *lis =
	    base ? evconnlistener_new_bind(
		       base, on_accept, NULL,
		       LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
			   LEV_OPT_CLOSE_ON_EXEC,
		       SOMAXCONN, (struct sockaddr *)&sin, sizeof sin)
		 : NULL;
	if (!lis) {
		perror("listen");
		return 1;
	}
	socklen_t len = sizeof sin;
	if (getsockname(evconnlistener_get_fd(lis), (struct sockaddr *)&sin,
			&len) < 0) {
		perror("getsockname");
		return 1;
	}
	printf("listening on 127.0.0.1:%d\n", ntohs(sin.sin_port));
	fflush(stdout);
	event_base_dispatch(base);
	return 0;
}
