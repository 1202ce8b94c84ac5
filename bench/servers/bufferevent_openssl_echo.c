/*
 * bufferevent_openssl_echo: the TLS echo server a libevent user writes
 * today, the anchor for tide-echod --tls-cert (bench/tls.sh).
 *
 * bufferevent_echo with TLS: an evconnlistener accepts, each connection
 * gets bufferevent_openssl_socket_new (OpenSSL on the socket itself,
 * BUFFEREVENT_SSL_ACCEPTING), and the read callback moves the input
 * buffer to the output buffer.  One SSL_CTX, made once: OpenSSL's
 * defaults (TLS 1.2 or later, as tide's), the certificate and key given,
 * no client certificate asked for.  TCP_NODELAY and a SOMAXCONN backlog,
 * as every server in this directory.  The output is bounded as tide-echod
 * bounds it: at a high-water mark of 64 KiB of output the connection
 * stops reading until it drained (otherwise a client that does not read
 * would grow the server's memory without bound).
 *
 * usage: bufferevent_openssl_echo PORT CERT KEY
 *        (PORT 0 picks a free port; the one used is printed)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

enum { HIGH = 64 * 1024 };

static SSL_CTX *ctx;

static void on_write(struct bufferevent *bev, void *arg);
static void on_event(struct bufferevent *bev, short what, void *arg);

static void on_read(struct bufferevent *bev, void *arg)
{
	(void)arg;
	struct evbuffer *out = bufferevent_get_output(bev);
	evbuffer_add_buffer(out, bufferevent_get_input(bev));
	if (evbuffer_get_length(out) >= HIGH) {
		/* resumed by on_write once the output drained */
		bufferevent_disable(bev, EV_READ);
		bufferevent_setcb(bev, on_read, on_write, on_event, NULL);
	}
}

static void on_write(struct bufferevent *bev, void *arg)
{
	(void)arg;
	bufferevent_setcb(bev, on_read, NULL, on_event, NULL);
	bufferevent_enable(bev, EV_READ);
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
	SSL *ssl = SSL_new(ctx);
	if (!ssl) {
		evutil_closesocket(fd);
		return;
	}
	struct bufferevent *bev = bufferevent_openssl_socket_new(
	    evconnlistener_get_base(lis), fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
	    BEV_OPT_CLOSE_ON_FREE);
	if (!bev) {
		SSL_free(ssl);
		evutil_closesocket(fd);
		return;
	}
	bufferevent_setcb(bev, on_read, NULL, on_event, NULL);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: %s PORT CERT KEY\n", argv[0]);
		return 64;
	}
	signal(SIGPIPE, SIG_IGN);
	ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
	    SSL_CTX_use_certificate_chain_file(ctx, argv[2]) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, argv[3], SSL_FILETYPE_PEM) != 1) {
		fprintf(stderr, "%s: cannot load %s and %s\n", argv[0], argv[2],
			argv[3]);
		ERR_print_errors_fp(stderr);
		return 1;
	}
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
	SSL_CTX_free(ctx);
	return 0;
}
