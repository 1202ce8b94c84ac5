/*
 * tide/net.h: networking: addresses, TCP listeners and streams, UDP, Unix
 * stream and datagram sockets, socket pairs and pipes.
 *
 * Every socket tide creates is non-blocking and close-on-exec, and is
 * registered with the executor it was made on (for a future: the executor
 * that polls it). Stream types (TCP, Unix, socket pairs, pipes) give a
 * tide_stream_t (tide/io.h), so read, write_all, copy, split and framing
 * work on them unchanged; each connection is one allocation, and no I/O
 * operation allocates.
 *
 * SIGPIPE: sockets are written with MSG_NOSIGNAL, so a peer that went away
 * gives -EPIPE, never a signal. A pipe cannot be written that way: a
 * program that writes to pipes calls tide_ignore_sigpipe() (tide/io.h)
 * once at start-up.
 *
 * Addresses are text: "1.2.3.4:80", "[::1]:80", "[fe80::1%eth0]:80",
 * "unix:/run/x.sock", "unix:@name" (Linux's abstract namespace). Only
 * tide_tcp_connect resolves host names (through libevent's evdns, /etc/hosts
 * first); everything else takes numeric addresses and answers TIDE_EADDR
 * for anything else.
 *
 * Threads: every object here belongs to the thread of its executor.
 *
 * An echo server, as a task per connection (see samples/ for the whole):
 *
 *     tide_tcp_listener_t *l;
 *     tide_tcp_listener_bind(&l, ex, "127.0.0.1:7000", 0, 0);
 *     ...                                    // in the accept task:
 *     TIDE_AWAIT(&t->co, cx, tide_tcp_accept(&t->acc, l));
 *     if (tide_async_result(&t->co) == 0)
 *         spawn_echo(ex, t->acc.conn);       // the task now owns the conn
 */
#ifndef TIDE_NET_H
#define TIDE_NET_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "tide/core.h"
#include "tide/fd.h"
#include "tide/io.h"
#include "tide/sync.h"
#include "tide/time.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------
 * Addresses
 *
 * A tide_addr_t is a plain value: a sockaddr_storage (AF_INET, AF_INET6 or
 * AF_UNIX) and its length. Both fields are public; len == 0 means "no
 * address".
 * ------------------------------------------------------------------------ */

/* A socket address, as a value (see above). */
typedef struct tide_addr {
    socklen_t len;              /* bytes of ss in use; 0: no address */
    struct sockaddr_storage ss; /* the address (AF_INET, AF_INET6, AF_UNIX) */
} tide_addr_t;

/* Room for any address tide_addr_format writes, NUL included. */
#define TIDE_ADDR_STRLEN 128

/*
 * tide_addr_parse: parse a numeric address, without any name lookup:
 *   "A.B.C.D:PORT"          IPv4
 *   "[V6]:PORT"             IPv6; a scope may follow: "[fe80::1%eth0]:80"
 *                           (an interface name or number)
 *   "unix:PATH"             a Unix socket path (PATH not empty)
 *   "unix:@NAME"            Linux's abstract namespace (no file)
 * PORT is decimal, 0 to 65535 (0: let the kernel choose, when binding).
 *
 * Returns 0 and fills *out. Errors: TIDE_EADDR (anything else: a host
 * name, a missing or bad port, junk after the port), -ENAMETOOLONG (a
 * Unix path longer than sockaddr_un allows), -EINVAL (NULL argument).
 */
TIDE_EXTERN int tide_addr_parse(tide_addr_t *out, const char *text);

/*
 * tide_addr_format: write a in the form tide_addr_parse reads ("1.2.3.4:80",
 * "[::1]:80", "unix:/path", "unix:@name"; an unnamed Unix socket is
 * "unix:"). buf gets a NUL-terminated string; TIDE_ADDR_STRLEN is always
 * enough.
 *
 * Returns the length written (without the NUL). Errors: -ENOSPC (size too
 * small; buf holds as much as fits, NUL-terminated, if size > 0),
 * -EAFNOSUPPORT (another family, or len == 0), -EINVAL (NULL a or buf).
 */
TIDE_EXTERN int tide_addr_format(const tide_addr_t *a, char *buf, size_t size);

/*
 * tide_addr_from_sockaddr: copy a sockaddr (as accept(2) or recvfrom(2)
 * give one) into *out. Returns 0. Errors: -EINVAL (NULL, or len larger than
 * a sockaddr_storage), -EAFNOSUPPORT (not INET, INET6 or UNIX).
 */
TIDE_EXTERN int tide_addr_from_sockaddr(tide_addr_t *out,
                                        const struct sockaddr *sa,
                                        socklen_t len);

/* tide_addr_sockaddr: a as a struct sockaddr pointer (length: a->len). */
static inline const struct sockaddr *tide_addr_sockaddr(const tide_addr_t *a) {
    return (const struct sockaddr *)(const void *)&a->ss;
}

/* tide_addr_family: AF_INET, AF_INET6, AF_UNIX, or AF_UNSPEC when empty. */
TIDE_EXTERN int tide_addr_family(const tide_addr_t *a);

/* tide_addr_port: the port of an INET or INET6 address (0 to 65535).
 * Errors: -EAFNOSUPPORT (Unix or empty). */
TIDE_EXTERN int tide_addr_port(const tide_addr_t *a);

/* tide_addr_set_port: change the port of an INET or INET6 address.
 * Returns 0. Errors: -EAFNOSUPPORT, -EINVAL (port > 65535). */
TIDE_EXTERN int tide_addr_set_port(tide_addr_t *a, unsigned port);

/* ------------------------------------------------------------------------
 * Options shared by the binding functions
 * ------------------------------------------------------------------------ */

enum {
    /* SO_REUSEPORT: several sockets (one per executor or thread) bound to
     * one port; the kernel spreads connections or datagrams among them. */
    TIDE_NET_REUSEPORT = 1u << 0,
    /* IPV6_V6ONLY on an IPv6 socket: don't also take IPv4 ("[::]:80" then
     * listens on IPv6 only). Without it the system default applies. */
    TIDE_NET_V6ONLY = 1u << 1,
    /* Unix sockets: if the path exists and is a socket, remove it before
     * binding (a stale socket left by a previous run). Anything that is
     * not a socket is left alone and the bind fails with -EADDRINUSE.
     * Without it, an existing path gives -EADDRINUSE. tide never removes
     * a socket file when the object is freed: unlink it yourself. */
    TIDE_NET_UNLINK = 1u << 2,
};

/* ------------------------------------------------------------------------
 * Listeners (TCP and Unix share this behaviour)
 *
 * Accepting is a future in the caller's memory; any number of tasks may
 * accept on one listener at once. Accepted sockets are non-blocking and
 * close-on-exec (accept4).
 *
 * Running out of descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM)
 * does not spin: the listener pauses (its readiness is not waited on, so
 * the loop does not wake for the connections queued in the kernel) for a
 * growing delay, 1 ms doubling up to 1 s, then tries again by itself. The
 * pending accepts stay pending meanwhile; a successful accept resets the
 * delay. Connections the peer aborted before they were accepted
 * (ECONNABORTED, and EPROTO, EPERM from firewalls) are skipped.
 * ------------------------------------------------------------------------ */

/* A listener's counters (tide_tcp_listener_stats, tide_unix_listener_stats). */
typedef struct tide_listener_stats {
    uint64_t accepted;     /* connections handed out */
    uint64_t skipped;      /* ECONNABORTED, EPROTO, EPERM: not handed out */
    uint64_t backoffs;     /* pauses for EMFILE, ENFILE, ENOBUFS, ENOMEM */
    uint64_t backoff_usec; /* length of the last pause; 0 after a success */
    bool paused;           /* in a pause now */
} tide_listener_stats_t;

/* Machinery shared by the accept futures (private). */
typedef struct tide__accept {
    tide_waiter_t node; /* waits on the descriptor, or holds the waker
                          * while parked */
    void *listener;     /* struct tide__listener; NULL once it is freed */
    struct tide__accept *prev, *next; /* the listener's live accepts */
    bool parked;                      /* waiting for the end of a pause */
} tide__accept_t;

/* ------------------------------------------------------------------------
 * TCP listener
 * ------------------------------------------------------------------------ */

/* tide_tcp_listener_t: a listening TCP socket (opaque):
 * tide_tcp_listener_bind, tide_tcp_listener_free. */
typedef struct tide_tcp_listener tide_tcp_listener_t;
/* tide_tcp_t: a TCP connection (opaque), from an accept or a connect;
 * tide_tcp_free. */
typedef struct tide_tcp tide_tcp_t;

/*
 * tide_tcp_listener_bind: create a socket, bind it to `addr` (numeric,
 * IPv4 or IPv6: "127.0.0.1:7000", "[::]:0", "0.0.0.0:80"; port 0 picks an
 * ephemeral port, read it back with tide_tcp_listener_local_addr) and
 * listen. SO_REUSEADDR is always set (a restarted server can bind while
 * old connections linger in TIME_WAIT).
 *
 * backlog: listen(2)'s backlog; <= 0 means SOMAXCONN (the kernel caps it
 * to net.core.somaxconn anyway).
 * flags: TIDE_NET_REUSEPORT, TIDE_NET_V6ONLY.
 *
 * Returns 0 and sets *out; free with tide_tcp_listener_free. Errors:
 * TIDE_EADDR (not a numeric INET/INET6 address), -EADDRINUSE,
 * -EADDRNOTAVAIL, -EACCES (a privileged port), -EAFNOSUPPORT (no IPv6),
 * -EMFILE, -ENFILE, -ENOMEM, -EINVAL (NULL out or ex, unknown flag), and
 * those of tide_fd_new.
 */
TIDE_EXTERN int tide_tcp_listener_bind(tide_tcp_listener_t **out,
                                       tide_exec_t *ex, const char *addr,
                                       int backlog, unsigned flags);

/* tide_tcp_listener_bind_addr: the same with a parsed address. */
TIDE_EXTERN int tide_tcp_listener_bind_addr(tide_tcp_listener_t **out,
                                            tide_exec_t *ex,
                                            const tide_addr_t *addr,
                                            int backlog, unsigned flags);

/* tide_tcp_listener_free: close the listening socket. Accepts still
 * pending complete with -EBADF when next polled (they are woken). Accepted
 * connections are independent and stay open. NULL is a no-op. */
TIDE_EXTERN void tide_tcp_listener_free(tide_tcp_listener_t *l);

/* tide_tcp_listener_local_addr: the address the listener is bound to (with
 * the port the kernel chose for port 0). Returns 0. Errors: those of
 * getsockname(2). */
TIDE_EXTERN int tide_tcp_listener_local_addr(const tide_tcp_listener_t *l,
                                             tide_addr_t *out);

/* tide_tcp_listener_stats: the listener's counters (see above). */
TIDE_EXTERN void tide_tcp_listener_stats(const tide_tcp_listener_t *l,
                                         tide_listener_stats_t *out);

/*
 * Accepting a connection. Result 0: `conn` is the new connection (the
 * caller owns it: tide_tcp_free) and `peer` its address. Otherwise -errno:
 * -EBADF (the listener was freed), -ENOMEM (the connection could not be
 * wrapped; it is closed and lost), or an unexpected error of accept4(2).
 * Transient conditions (EAGAIN, EINTR, aborted connections, running out of
 * descriptors) never complete the future: see "Listeners" above.
 *
 * Cancel safe: a connection is taken from the kernel's queue only in the
 * poll that completes the future, so dropping a pending accept loses none.
 */
typedef struct tide_tcp_accept {
    tide_future_t fut;
    tide_tcp_t *conn;    /* out, when result is 0 */
    tide_addr_t peer;    /* out, when result is 0 */
    tide__accept_t priv; /* private */
} tide_tcp_accept_t;

TIDE_EXTERN tide_future_t *tide_tcp_accept(tide_tcp_accept_t *a,
                                           tide_tcp_listener_t *l);

/* ------------------------------------------------------------------------
 * TCP stream
 * ------------------------------------------------------------------------ */

/* Room for a host name in a connect future (RFC 1035: 253, plus some). */
#define TIDE__HOST_MAX 256

/*
 * Connecting. tide_tcp_connect takes "host:port": a numeric address
 * (as tide_addr_parse) is used directly; anything else of the form
 * "name:port" or "[name]:port" is looked up with libevent's evdns
 * (/etc/hosts first, so "localhost" needs no DNS server; then the servers
 * of /etc/resolv.conf), and the addresses found are tried in the order of
 * the answer until one connects. The connection is registered on the
 * executor that polls the future.
 *
 * Moving on to the next address: only an error that belongs to the address
 * tried does that: ECONNREFUSED, ETIMEDOUT, ENETUNREACH, EHOSTUNREACH,
 * ENETDOWN, EHOSTDOWN, EADDRNOTAVAIL (e.g. ::1 on a host without IPv6),
 * EAFNOSUPPORT and EPROTONOSUPPORT (the kernel lacks the family), EACCES
 * and EPERM (a firewall rule for that destination). Any other error
 * (-ENOMEM, -EMFILE, -ENFILE, -ENOBUFS, the reactor's) ends the connect at
 * once with that error, even if addresses are left: the next one would
 * meet the same shortage, or get through by chance and hide it.
 *
 * Result 0: `conn` is the connection (the caller owns it: tide_tcp_free).
 * Otherwise: one of the errors above (the error of the last address
 * tried, when every address failed with one), TIDE_EADDR (malformed
 * "host:port"), TIDE_ENONAME (the name has no address), -EIO (the lookup
 * failed otherwise), -EMFILE, -ENFILE, -ENOBUFS, -ENOMEM. There is no
 * timeout of its own: wrap it in tide_timeout.
 *
 * Cancel safe: dropping a pending connect closes the half-made socket and
 * cancels the lookup (evdns_getaddrinfo_cancel); nothing is left behind.
 */
typedef struct tide_tcp_connect {
    tide_future_t fut;
    tide_tcp_t *conn; /* out, when result is 0 */
    /* private */
    tide_addr_t addr;          /* the address being tried */
    char host[TIDE__HOST_MAX]; /* a name to look up, or "" */
    unsigned short port;
    unsigned char state;
    int last_err;
    struct tide__resolve *res; /* a lookup in flight */
    struct evutil_addrinfo *ai, *ai_next;
} tide_tcp_connect_t;

TIDE_EXTERN tide_future_t *tide_tcp_connect(tide_tcp_connect_t *c,
                                            const char *hostport);

/* tide_tcp_connect_addr: connect to a parsed INET/INET6 address (no
 * lookup). Same results. */
TIDE_EXTERN tide_future_t *tide_tcp_connect_addr(tide_tcp_connect_t *c,
                                                 const tide_addr_t *addr);

/*
 * tide_tcp_from_fd: wrap a connected, non-blocking TCP socket (AF_INET or
 * AF_INET6, SOCK_STREAM). The descriptor is checked first, so that a wrong
 * one fails here rather than misbehave later.
 *
 * Returns 0 and sets *out; the stream owns fd from then on. Errors (fd is
 * left open and still the caller's): -EBADF (not open), -ENOTSOCK (not a
 * socket: a pipe, a file), -EAFNOSUPPORT (a socket of another family: a
 * Unix socket), -EPROTOTYPE (not SOCK_STREAM: UDP), -ENOTCONN (not
 * connected: never connected, its connect still in progress, listening,
 * or reset by the peer), -EINVAL (NULL out or ex), those of tide_fd_new
 * (TIDE_EBLOCKING for a blocking socket, -EEXIST...), -ENOMEM.
 */
TIDE_EXTERN int tide_tcp_from_fd(tide_tcp_t **out, tide_exec_t *ex, int fd);

/* tide_tcp_stream: the stream interface (read, write, shutdown, copy...).
 * It lives as long as t. */
TIDE_EXTERN tide_stream_t *tide_tcp_stream(tide_tcp_t *t);

/* tide_tcp_fd: the registration (readiness waits, try_io). It belongs to
 * t: never pass it to tide_fd_free or tide_fd_into_inner (they would close
 * or hand out the descriptor that tide_tcp_free closes again later). */
TIDE_EXTERN tide_fd_t *tide_tcp_fd(tide_tcp_t *t);

/* tide_tcp_peer_addr / tide_tcp_local_addr: the two ends. Returns 0.
 * Errors: -ENOTCONN (peer of a reset connection), those of getpeername. */
TIDE_EXTERN int tide_tcp_peer_addr(const tide_tcp_t *t, tide_addr_t *out);
TIDE_EXTERN int tide_tcp_local_addr(const tide_tcp_t *t, tide_addr_t *out);

/* tide_tcp_set_nodelay: TCP_NODELAY on or off (off: Nagle's algorithm
 * batches small writes). Returns 0 or -errno. */
TIDE_EXTERN int tide_tcp_set_nodelay(tide_tcp_t *t, bool on);

/* tide_tcp_set_keepalive: SO_KEEPALIVE on or off; with idle_sec > 0, also
 * the idle time before the first probe (TCP_KEEPIDLE) and the probe
 * interval (TCP_KEEPINTVL). Returns 0 or -errno. */
TIDE_EXTERN int tide_tcp_set_keepalive(tide_tcp_t *t, bool on,
                                       unsigned idle_sec);

/* tide_tcp_shutdown: shutdown(2) at once: SHUT_WR sends FIN after what was
 * written (the peer reads EOF; we can still read), SHUT_RD, SHUT_RDWR.
 * The stream's poll_shutdown does SHUT_WR too. Returns 0. Errors:
 * -ENOTCONN, -EINVAL. */
TIDE_EXTERN int tide_tcp_shutdown(tide_tcp_t *t, int how);

/* tide_tcp_free: close the connection and free it. Every future using its
 * stream (tide_read, tide_write_all, tide_copy, a split half...) must be
 * dropped first: those futures point into t, so polling or dropping one
 * after the free is a use after free (a task waiting on it is woken, but
 * must drop its future, not poll it). NULL is a no-op. */
TIDE_EXTERN void tide_tcp_free(tide_tcp_t *t);

/* tide_tcp_into_fd: free the stream but hand back its descriptor, open and
 * still non-blocking. Returns the descriptor, -EINVAL for NULL. */
TIDE_EXTERN int tide_tcp_into_fd(tide_tcp_t *t);

/* ------------------------------------------------------------------------
 * Datagrams (UDP and Unix datagram sockets share these futures)
 *
 * Any number of tasks may send and receive on one socket at once (each
 * future waits with its own node). Datagrams are whole: a send sends all
 * of buf or nothing; a receive takes one datagram.
 * ------------------------------------------------------------------------ */

/*
 * A send. Result: bytes sent (all of len), or -errno: -EMSGSIZE (too big
 * for one datagram), -ECONNREFUSED (a connected socket whose peer answered
 * an earlier datagram with ICMP port unreachable), -EDESTADDRREQ (send on
 * an unconnected socket), -ENOENT / -ECONNREFUSED (Unix: nobody bound at
 * the path), -EBADF (the socket was freed).
 *
 * Borrowed: buf, and the address `to` of a send_to, until the future
 * completes or is dropped (keep them in the task's state, as a received
 * op->peer is).
 *
 * Cancel safe: a datagram is sent in the poll that completes the future,
 * or not at all.
 */
typedef struct tide_dgram_send {
    tide_future_t fut;
    /* private */
    void *d;            /* struct tide__dgram: the socket */
    tide_waiter_t node; /* on its write queue, or its retry queue */
    const void *buf;
    size_t len;
    const tide_addr_t *to; /* NULL: the connected peer */
} tide_dgram_send_t;

/*
 * A receive. Result: the datagram's length (bytes copied; 0 for an empty
 * datagram), or -errno: -ECONNREFUSED (connected UDP: an ICMP error for an
 * earlier send), -EBADF (the socket was freed). `peer` is the sender's
 * address; `truncated` is set when the datagram was longer than len (the
 * rest is lost).
 *
 * Cancel safe: a datagram is taken in the poll that completes the future,
 * or not at all.
 */
typedef struct tide_dgram_recv {
    tide_future_t fut;
    tide_addr_t peer; /* out */
    bool truncated;   /* out */
    /* private */
    void *reg;          /* struct tide_fd: the socket's registration */
    tide_waiter_t node; /* on its read queue while pending */
    void *buf;
    size_t len;
} tide_dgram_recv_t;

/* ------------------------------------------------------------------------
 * UDP socket
 * ------------------------------------------------------------------------ */

/* tide_udp_t: a UDP socket (opaque): tide_udp_bind, tide_udp_free. */
typedef struct tide_udp tide_udp_t;

/*
 * tide_udp_bind: a UDP socket bound to `addr` (numeric, IPv4 or IPv6; port
 * 0: ephemeral). flags: TIDE_NET_REUSEPORT, TIDE_NET_V6ONLY. Returns 0 and
 * sets *out; free with tide_udp_free. Errors: as tide_tcp_listener_bind.
 */
TIDE_EXTERN int tide_udp_bind(tide_udp_t **out, tide_exec_t *ex,
                              const char *addr, unsigned flags);
TIDE_EXTERN int tide_udp_bind_addr(tide_udp_t **out, tide_exec_t *ex,
                                   const tide_addr_t *addr, unsigned flags);

/* tide_udp_connect: set the default peer (numeric address): tide_udp_send
 * goes there, and only its datagrams are received. Immediate (no
 * handshake). Returns 0. Errors: TIDE_EADDR, those of connect(2). */
TIDE_EXTERN int tide_udp_connect(tide_udp_t *u, const char *addr);

/* tide_udp_send_to: send one datagram to `to`. */
TIDE_EXTERN tide_future_t *tide_udp_send_to(tide_dgram_send_t *op,
                                            tide_udp_t *u, const void *buf,
                                            size_t len, const tide_addr_t *to);

/* tide_udp_send: send one datagram to the connected peer. */
TIDE_EXTERN tide_future_t *tide_udp_send(tide_dgram_send_t *op, tide_udp_t *u,
                                         const void *buf, size_t len);

/* tide_udp_recv_from: receive one datagram; its sender goes in op->peer. */
TIDE_EXTERN tide_future_t *tide_udp_recv_from(tide_dgram_recv_t *op,
                                              tide_udp_t *u, void *buf,
                                              size_t len);

/* tide_udp_recv: the same, for a connected socket (op->peer is filled
 * too). */
TIDE_EXTERN tide_future_t *tide_udp_recv(tide_dgram_recv_t *op, tide_udp_t *u,
                                         void *buf, size_t len);

/* tide_udp_local_addr / tide_udp_peer_addr. Returns 0. Errors: those of
 * getsockname / getpeername (-ENOTCONN). */
TIDE_EXTERN int tide_udp_local_addr(const tide_udp_t *u, tide_addr_t *out);
TIDE_EXTERN int tide_udp_peer_addr(const tide_udp_t *u, tide_addr_t *out);

/* tide_udp_fd: the registration. It belongs to u: never pass it to
 * tide_fd_free or tide_fd_into_inner (see tide_tcp_fd). */
TIDE_EXTERN tide_fd_t *tide_udp_fd(tide_udp_t *u);

/* tide_udp_free: close. Pending futures complete with -EBADF. NULL: no-op. */
TIDE_EXTERN void tide_udp_free(tide_udp_t *u);

/* ------------------------------------------------------------------------
 * Unix stream sockets
 *
 * A Unix stream is a TCP stream without the network: the same stream
 * interface, shutdown and accept behaviour. Paths: a file system path, or
 * "@name" for Linux's abstract namespace; a leading "unix:" is accepted
 * too, so the text of tide_addr_format can be passed back.
 * ------------------------------------------------------------------------ */

/* tide_unix_listener_t: a listening Unix stream socket (opaque):
 * tide_unix_listener_bind, tide_unix_listener_free. */
typedef struct tide_unix_listener tide_unix_listener_t;
/* tide_unix_t: a Unix stream connection (opaque), from an accept, a
 * connect or tide_socketpair; tide_unix_free. */
typedef struct tide_unix tide_unix_t;

/*
 * tide_unix_listener_bind: bind a Unix stream socket at `path` and listen.
 * flags: TIDE_NET_UNLINK (remove a stale socket at path first). backlog as
 * for TCP. Returns 0 and sets *out. Errors: TIDE_EADDR (empty path),
 * -ENAMETOOLONG, -EADDRINUSE (path exists), -EACCES, -ENOENT (no such
 * directory), -EMFILE, -ENFILE, -ENOMEM, -EINVAL.
 */
TIDE_EXTERN int tide_unix_listener_bind(tide_unix_listener_t **out,
                                        tide_exec_t *ex, const char *path,
                                        int backlog, unsigned flags);

/* tide_unix_listener_free: close (the socket file stays). Pending accepts
 * complete with -EBADF. NULL is a no-op. */
TIDE_EXTERN void tide_unix_listener_free(tide_unix_listener_t *l);

/* tide_unix_listener_local_addr: the bound address. Returns 0 or -errno. */
TIDE_EXTERN int tide_unix_listener_local_addr(const tide_unix_listener_t *l,
                                              tide_addr_t *out);

/* tide_unix_listener_stats: counters, as for TCP. */
TIDE_EXTERN void tide_unix_listener_stats(const tide_unix_listener_t *l,
                                          tide_listener_stats_t *out);

/* Accepting: as tide_tcp_accept (same results, same cancel safety).
 * peer is usually an unnamed address ("unix:"). */
typedef struct tide_unix_accept {
    tide_future_t fut;
    tide_unix_t *conn;   /* out, when result is 0 */
    tide_addr_t peer;    /* out, when result is 0 */
    tide__accept_t priv; /* private */
} tide_unix_accept_t;

TIDE_EXTERN tide_future_t *tide_unix_accept(tide_unix_accept_t *a,
                                            tide_unix_listener_t *l);

/*
 * Connecting to a Unix stream socket. Result 0: `conn` is the connection
 * (the caller owns it). Errors: -ENOENT (no such path), -ECONNREFUSED
 * (nobody listens there), -EACCES, TIDE_EADDR, -ENAMETOOLONG, -EMFILE,
 * -ENFILE, -ENOMEM. A listener whose backlog is full makes the connect
 * try again after a short, growing delay (the kernel gives no readiness
 * for it): wrap it in tide_timeout to bound it.
 *
 * Cancel safe: a dropped connect closes its socket.
 */
typedef struct tide_unix_connect {
    tide_future_t fut;
    tide_unix_t *conn; /* out, when result is 0 */
    /* private */
    tide_addr_t addr;
    int parse_err;
    uint64_t delay;
    tide_sleep_t retry;
    bool sleeping;
} tide_unix_connect_t;

TIDE_EXTERN tide_future_t *tide_unix_connect(tide_unix_connect_t *c,
                                             const char *path);

/* tide_socketpair: two connected Unix streams (socketpair(2), SOCK_STREAM):
 * what one writes, the other reads. Returns 0 and sets *a and *b (free
 * each with tide_unix_free). Errors: -EMFILE, -ENFILE, -ENOMEM, -EINVAL. */
TIDE_EXTERN int tide_socketpair(tide_unix_t **a, tide_unix_t **b,
                                tide_exec_t *ex);

/* tide_unix_from_fd: wrap a connected, non-blocking Unix stream socket
 * (AF_UNIX, SOCK_STREAM; one end of a socketpair(2) qualifies). Returns 0
 * and sets *out; the stream owns fd from then on. Errors (fd is left open
 * and still the caller's), checked as for tide_tcp_from_fd: -EBADF,
 * -ENOTSOCK, -EAFNOSUPPORT (a TCP or UDP socket), -EPROTOTYPE (a datagram
 * or SOCK_SEQPACKET socket), -ENOTCONN, -EINVAL, those of tide_fd_new,
 * -ENOMEM. */
TIDE_EXTERN int tide_unix_from_fd(tide_unix_t **out, tide_exec_t *ex, int fd);

/* The rest as for TCP streams (tide_unix_free: drop the futures using the
 * stream first, as for tide_tcp_free; tide_unix_fd's registration belongs
 * to u, as tide_tcp_fd's does). */
TIDE_EXTERN tide_stream_t *tide_unix_stream(tide_unix_t *u);
TIDE_EXTERN tide_fd_t *tide_unix_fd(tide_unix_t *u);
TIDE_EXTERN int tide_unix_peer_addr(const tide_unix_t *u, tide_addr_t *out);
TIDE_EXTERN int tide_unix_local_addr(const tide_unix_t *u, tide_addr_t *out);
TIDE_EXTERN int tide_unix_shutdown(tide_unix_t *u, int how);
TIDE_EXTERN void tide_unix_free(tide_unix_t *u);
TIDE_EXTERN int tide_unix_into_fd(tide_unix_t *u);

/* ------------------------------------------------------------------------
 * Any stream listener, TCP or Unix, and serving one
 *
 * One listener type for both, chosen by the address ("HOST:PORT",
 * "[V6]:PORT" or "unix:PATH"), and one connection type (tide_conn_t) for
 * what it accepts, so that a server handles TCP and Unix the same way.
 * A tide_conn_t is the same object as the tide_tcp_t or tide_unix_t it
 * is: tide_conn_tcp and tide_conn_unix give that view (NULL if it is the
 * other kind), for what only one kind has (TCP_NODELAY, say).
 * ------------------------------------------------------------------------ */

/* tide_listener_t: a TCP or Unix stream listener (opaque). */
typedef struct tide_listener tide_listener_t;
/* tide_conn_t: a TCP or Unix stream connection (opaque). */
typedef struct tide_conn tide_conn_t;

/*
 * tide_listener_bind: listen on addr: a numeric "HOST:PORT" or
 * "[V6]:PORT" (as tide_tcp_listener_bind: port 0 picks one), or
 * "unix:PATH" ("unix:@NAME": an abstract socket; as
 * tide_unix_listener_bind). flags: TIDE_NET_REUSEPORT and TIDE_NET_V6ONLY
 * for TCP, TIDE_NET_UNLINK for Unix. Returns 0 and sets *out; free with
 * tide_listener_free. Errors: those of the two binds.
 */
TIDE_EXTERN int tide_listener_bind(tide_listener_t **out, tide_exec_t *ex,
                                   const char *addr, unsigned flags);

/* tide_listener_bind_addr: the same for an address already parsed (a
 * TCP one, or a Unix one from tide_addr_parse of "unix:PATH"). */
TIDE_EXTERN int tide_listener_bind_addr(tide_listener_t **out, tide_exec_t *ex,
                                        const tide_addr_t *addr,
                                        unsigned flags);

/*
 * tide_listener_from_fd: a listener around a socket that is already bound
 * and listening: one inherited from systemd's socket activation
 * (LISTEN_FDS), from a parent process, or made by other code. fd must be
 * an AF_INET, AF_INET6 or AF_UNIX socket of type SOCK_STREAM on which
 * listen(2) was called; it is checked first, so that a wrong descriptor
 * fails here, not at the first connection. It is made non-blocking and
 * close-on-exec. O_NONBLOCK belongs to the open file description, so a
 * duplicate of fd (in this process or another, such as systemd's own copy)
 * becomes non-blocking too; blocking accept(2) calls on such a duplicate
 * then answer EAGAIN.
 *
 * Returns 0 and sets *out; the listener owns fd from then on
 * (tide_listener_free closes it; a Unix socket's file stays, as always).
 * Errors (fd is left open, its flags as they were, and still the
 * caller's): -EBADF (not an open descriptor), -ENOTSOCK (not a socket),
 * -EAFNOSUPPORT (another family), -EPROTOTYPE (not SOCK_STREAM: UDP, a
 * Unix datagram or seqpacket socket), -EINVAL (not listening: listen(2)
 * was never called, or a connected socket; or NULL out or ex), -EEXIST
 * (fd is already registered with ex), -ESHUTDOWN (ex is being freed),
 * -ENOMEM, -EIO (libevent refused the listener's timer). Accepting on
 * the listener is tide_accept, cancel safe as for any listener.
 *
 * Threads: call it on ex's thread. To serve one socket from several
 * executors (threads), give each its own duplicate (fcntl F_DUPFD_CLOEXEC):
 * each executor needs its own registration, and the kernel hands each
 * connection to one of them.
 */
TIDE_EXTERN int tide_listener_from_fd(tide_listener_t **out, tide_exec_t *ex,
                                      int fd);

/* tide_listener_stats: what the listener counted (as
 * tide_tcp_listener_stats). */
TIDE_EXTERN void tide_listener_stats(const tide_listener_t *l,
                                     tide_listener_stats_t *out);

/* tide_listener_local_addr: the bound address (TCP: with the real port).
 * Returns 0. Errors: those of getsockname. */
TIDE_EXTERN int tide_listener_local_addr(const tide_listener_t *l,
                                         tide_addr_t *out);

/* tide_listener_name: the bound address as text (tide_addr_format), in
 * buf (TIDE_ADDR_STRLEN bytes are always enough). Returns 0. Errors:
 * those of tide_listener_local_addr and tide_addr_format. */
TIDE_EXTERN int tide_listener_name(const tide_listener_t *l, char *buf,
                                   size_t size);

/* tide_listener_free: close. Pending accepts complete with -EBADF. A Unix
 * listener's socket file stays (as with tide_unix_listener_free). NULL:
 * no-op. */
TIDE_EXTERN void tide_listener_free(tide_listener_t *l);

/* An accept on a tide_listener_t: as tide_tcp_accept (the listener pauses
 * by itself while descriptors run out). Cancel safe. */
typedef struct tide_accept {
    tide_future_t fut;
    tide_conn_t *conn;   /* out, when result is 0 */
    tide_addr_t peer;    /* out, when result is 0 */
    tide__accept_t priv; /* private */
} tide_accept_t;

TIDE_EXTERN tide_future_t *tide_accept(tide_accept_t *a, tide_listener_t *l);

/* tide_conn_stream: the connection as a stream. */
TIDE_EXTERN tide_stream_t *tide_conn_stream(tide_conn_t *c);
/* tide_conn_tcp / tide_conn_unix: c as what it is, or NULL. */
TIDE_EXTERN tide_tcp_t *tide_conn_tcp(tide_conn_t *c);
TIDE_EXTERN tide_unix_t *tide_conn_unix(tide_conn_t *c);
/* tide_conn_peer_addr: the peer's address. Returns 0. Errors: those of
 * getpeername (-ENOTCONN). */
TIDE_EXTERN int tide_conn_peer_addr(const tide_conn_t *c, tide_addr_t *out);
/* tide_conn_free: close (as tide_tcp_free / tide_unix_free). NULL: no-op. */
TIDE_EXTERN void tide_conn_free(tide_conn_t *c);

/*
 * A handler for tide_serve: the future of the task that will serve conn,
 * which owns it from then on (its drop frees it), or NULL to refuse it
 * (tide frees it). It runs on the executor's thread, in the serve's poll;
 * the peer's address is in the serve's acc.peer meanwhile, and
 * tide_conn_peer_addr tells it later.
 */
typedef tide_future_t *(*tide_serve_fn)(tide_conn_t *conn, void *arg);

/* The serve future (fields private but acc.peer, the connection being
 * handed to the handler's peer, during the handler's call). */
typedef struct tide_serve {
    tide_future_t fut;
    tide_listener_t *l;            /* what it accepts on */
    tide_serve_fn handler;         /* and gives each connection to */
    void *arg;                     /* with this */
    tide_semaphore_t *limit;       /* one permit per connection, or NULL */
    unsigned char state;           /* waiting for a slot, accepting, pausing */
    bool has_slot;                 /* holds the next connection's permit */
    tide_accept_t acc;             /* the accept in progress */
    tide_sleep_t pause;            /* after a passing accept error */
    tide_semaphore_acquire_t slot; /* the wait for a permit */
} tide_serve_t;

/*
 * tide_serve: accept connections on l for ever, each given to handler(conn,
 * peer, arg) and its future spawned as a task of its own. limit, if not
 * NULL, is a semaphore with one permit per connection
 * allowed at once: the serve takes one before each accept and the
 * connection's task gives it back when it ends (so newcomers wait in the
 * listen backlog while the limit is reached); it must outlive the
 * connections' tasks. Accept errors that pass (-ENOMEM, -EMFILE, -ENFILE,
 * -ENOBUFS, -ECONNABORTED) are waited out (100 ms); any other ends the
 * serve with that error. Result: -EBADF once l is freed, the accept error
 * otherwise (never 0: a serve runs until stopped). Cancel safe: dropping
 * it stops accepting (no connection is lost: one accepted is handed to
 * its handler in the same poll); the connections' tasks go on.
 */
TIDE_EXTERN tide_future_t *tide_serve(tide_serve_t *op, tide_listener_t *l,
                                      tide_serve_fn handler, void *arg,
                                      tide_semaphore_t *limit);

/* ------------------------------------------------------------------------
 * Unix datagram sockets
 * ------------------------------------------------------------------------ */

/* tide_unix_dgram_t: a Unix datagram socket (opaque):
 * tide_unix_dgram_bind, tide_unix_dgram_free. */
typedef struct tide_unix_dgram tide_unix_dgram_t;

/*
 * tide_unix_dgram_bind: a Unix datagram socket bound at `path` (as for
 * the listener; flags: TIDE_NET_UNLINK), or, with path NULL, one bound
 * at once to an abstract name the kernel chooses (Linux's autobind), so
 * that peers can answer it; tide_unix_dgram_local_addr tells the name.
 * Returns 0 and sets *out. Errors: as tide_unix_listener_bind.
 */
TIDE_EXTERN int tide_unix_dgram_bind(tide_unix_dgram_t **out, tide_exec_t *ex,
                                     const char *path, unsigned flags);

/* tide_unix_dgram_connect: set the default peer. Returns 0. Errors:
 * TIDE_EADDR, -ENOENT, -ECONNREFUSED, -EACCES... (connect(2)). */
TIDE_EXTERN int tide_unix_dgram_connect(tide_unix_dgram_t *d, const char *path);

/* The futures, as for UDP (to: a Unix address, e.g. from tide_addr_parse
 * of "unix:/path", or a received op->peer). */
TIDE_EXTERN tide_future_t *tide_unix_dgram_send_to(tide_dgram_send_t *op,
                                                   tide_unix_dgram_t *d,
                                                   const void *buf, size_t len,
                                                   const tide_addr_t *to);
TIDE_EXTERN tide_future_t *tide_unix_dgram_send(tide_dgram_send_t *op,
                                                tide_unix_dgram_t *d,
                                                const void *buf, size_t len);
TIDE_EXTERN tide_future_t *tide_unix_dgram_recv_from(tide_dgram_recv_t *op,
                                                     tide_unix_dgram_t *d,
                                                     void *buf, size_t len);
TIDE_EXTERN tide_future_t *tide_unix_dgram_recv(tide_dgram_recv_t *op,
                                                tide_unix_dgram_t *d, void *buf,
                                                size_t len);
TIDE_EXTERN int tide_unix_dgram_local_addr(const tide_unix_dgram_t *d,
                                           tide_addr_t *out);
/* tide_unix_dgram_fd: the registration; it belongs to d (see tide_udp_fd). */
TIDE_EXTERN tide_fd_t *tide_unix_dgram_fd(tide_unix_dgram_t *d);
TIDE_EXTERN void tide_unix_dgram_free(tide_unix_dgram_t *d);

/* ------------------------------------------------------------------------
 * Pipes
 * ------------------------------------------------------------------------ */

/*
 * tide_pipe: a pipe (pipe2 with O_NONBLOCK | O_CLOEXEC) as two streams:
 * *rd reads what *wr writes. Each end is a tide_fdstream (tide/io.h): free
 * each with tide_fdstream_free; shutting *wr down (the stream's
 * poll_shutdown) closes the write end, so the reader sees EOF. Writing to
 * a pipe whose read end is closed raises SIGPIPE unless the program
 * ignores it (tide_ignore_sigpipe); with SIGPIPE ignored the write gives
 * -EPIPE.
 *
 * Returns 0. Errors: -EMFILE, -ENFILE, -ENOMEM, -EINVAL (NULL argument).
 */
TIDE_EXTERN int tide_pipe(tide_fdstream_t **rd, tide_fdstream_t **wr,
                          tide_exec_t *ex);

#ifdef __cplusplus
}
#endif
#endif
