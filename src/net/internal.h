/*
 * src/net/internal.h: what the net layer's files share. Never installed.
 */
#ifndef TIDE_NET_INTERNAL_H
#define TIDE_NET_INTERNAL_H

#include <sys/socket.h>

#include "io/internal.h"
#include "tide/net.h"

/* ------------------------------------------------------------------------
 * sys.c: system-call wrappers. Each returns a descriptor or 0, or -errno;
 * descriptors are always non-blocking and close-on-exec; EINTR is retried
 * where a retry is correct.
 * ------------------------------------------------------------------------ */

/* socket(2) with SOCK_NONBLOCK | SOCK_CLOEXEC. */
int tide__sys_socket(int family, int type);

/* Set the options `flags` asks for (TIDE_NET_*), bind to addr, and listen
 * if backlog_or_neg >= 0 (then <= 0 would be too small: the caller maps
 * "default" to SOMAXCONN first). SO_REUSEADDR is set on INET sockets
 * when reuseaddr. Returns 0 or -errno. */
int tide__sys_bind(int fd, const tide_addr_t *addr, unsigned flags,
                   bool reuseaddr);

/* accept4(2) non-blocking, close-on-exec; fills peer. EINTR retried. */
int tide__sys_accept(int lfd, tide_addr_t *peer);

/* connect(2); EINTR becomes -EINPROGRESS (the connection goes on in the
 * background, as POSIX says). */
int tide__sys_connect(int fd, const tide_addr_t *addr);

/* The pending error of a socket (SO_ERROR), as -errno, or 0. */
int tide__sys_so_error(int fd);

/* getsockname / getpeername into a tide_addr_t. */
int tide__sys_local_addr(int fd, tide_addr_t *out);
int tide__sys_peer_addr(int fd, tide_addr_t *out);

/* setsockopt of an int. */
int tide__sys_setopt(int fd, int level, int name, int value);

/* Bind a Unix socket at addr; with TIDE_NET_UNLINK remove a stale socket
 * first (only a socket: anything else is left and bind fails). */
int tide__sys_unix_unlink_stale(const tide_addr_t *addr, unsigned flags);

/* Close, ignoring EINTR (on Linux the descriptor is gone either way). */
void tide__sys_close(int fd);

/* The socket checks of tide_tcp_from_fd and tide_unix_from_fd: fd is a
 * socket of family fam_a or fam_b, of type SOCK_STREAM, and connected.
 * Returns 0. Errors: -EBADF, -ENOTSOCK, -EAFNOSUPPORT (another family),
 * -EPROTOTYPE (another type), -ENOTCONN (not connected: never connected,
 * a connect still in progress, listening, or reset). */
int tide__sys_check_stream(int fd, int fam_a, int fam_b);

/* The checks of tide_listener_from_fd: fd is an open socket of family
 * AF_INET, AF_INET6 or AF_UNIX, of type SOCK_STREAM, and listening.
 * Returns the family. Errors: -EBADF, -ENOTSOCK, -EAFNOSUPPORT,
 * -EPROTOTYPE, -EINVAL (not listening). */
int tide__sys_check_listener(int fd);

/* ------------------------------------------------------------------------
 * tcp.c
 * ------------------------------------------------------------------------ */

/* Whether err (-errno), met by a connect by name on one of the addresses
 * found, belongs to that address, so that the next one may be tried. The
 * list, and why, is in tcp.c; net.h documents it. */
bool tide__connect_err_per_address(int err);

/* ------------------------------------------------------------------------
 * addr.c
 * ------------------------------------------------------------------------ */

/* Parse a Unix path as the Unix functions take it: "PATH", "@NAME" or
 * "unix:..." of either. */
int tide__addr_unix(tide_addr_t *out, const char *path);

/* Split "name:port" or "[name]:port" into host and port for a lookup.
 * Returns 0. Errors: TIDE_EADDR, -ENAMETOOLONG. */
int tide__addr_split(const char *text, char *host, size_t hostsize,
                     unsigned short *port);

/* ------------------------------------------------------------------------
 * listener.c: listening sockets and accept, shared by TCP and Unix.
 * ------------------------------------------------------------------------ */

/* Delays of the pause that follows EMFILE and its kin. */
#define TIDE__BACKOFF_MIN_USEC UINT64_C(1000)
#define TIDE__BACKOFF_MAX_USEC UINT64_C(1000000)

/* A Unix socket that answers EAGAIN with no readiness to wait for (a
 * connect to a full backlog, an unconnected datagram to a full receiver)
 * is retried after a delay that doubles from TIDE__BACKOFF_MIN_USEC up to
 * this. */
#define TIDE__UNIX_RETRY_MAX_USEC UINT64_C(100000)

/* The next delay of a doubling backoff: min after 0, then twice the last,
 * never more than max. */
static inline uint64_t tide__backoff_next(uint64_t last, uint64_t max) {
    if (last == 0)
        return TIDE__BACKOFF_MIN_USEC;
    return last >= max / 2 ? max : last * 2;
}

struct tide__listener {
    struct tide_fd reg;      /* the listening socket (embedded) */
    tide__accept_t *accepts; /* live accept futures on this listener */
    size_t nparked;          /* of them, how many wait for the pause */
    bool paused;             /* don't accept before resume_at */
    uint64_t resume_at;      /* tide_now() deadline of the pause */
    uint64_t delay;          /* the last pause, 0 after a success */
    struct event timer;      /* ends the pause for parked accepts */
    bool timer_armed;
    tide_listener_stats_t stats;
};

/* The public listeners are one: TCP, Unix, and either (tide_listener_t,
 * serve.c), so that an object of one kind is an object of the other. */
struct tide_tcp_listener {
    struct tide__listener l;
};
struct tide_unix_listener {
    struct tide__listener l;
};
struct tide_listener {
    struct tide__listener l;
};

/* Register fd (bound, listening, non-blocking) into l. On error fd stays
 * open and nothing is registered. */
int tide__listener_init(struct tide__listener *l, tide_exec_t *ex, int fd);

/* Close and deregister; pending accepts complete with -EBADF. */
void tide__listener_deinit(struct tide__listener *l);

void tide__listener_stats(const struct tide__listener *l,
                          tide_listener_stats_t *out);

/* Accept futures: init links a into l's live accepts (drop unlinks). poll
 * answers READY with *res = a descriptor (>= 0, peer filled) or -errno. */
void tide__accept_init(tide__accept_t *a, struct tide__listener *l);
tide_poll_t tide__accept_poll(tide__accept_t *a, tide_cx_t *cx, int *res,
                              tide_addr_t *peer);
void tide__accept_drop(tide__accept_t *a);

/* ------------------------------------------------------------------------
 * stream.c: a connected stream socket (TCP or Unix): one allocation, an
 * embedded fdstream.
 * ------------------------------------------------------------------------ */

struct tide__sock {
    struct tide_fdstream fs;
};

/* Allocate a stream socket around fd (non-blocking). On error fd is left
 * open. */
int tide__sock_new(struct tide__sock **out, tide_exec_t *ex, int fd);

/* Accept a stream socket: tide__accept_poll, then the accepted descriptor
 * wrapped by tide__sock_new. READY with *res = 0 and *out set, or *res =
 * -errno (a descriptor that could not be wrapped is closed: the connection
 * was accepted, but cannot be carried). Serves TCP and Unix accepts. */
tide_poll_t tide__accept_sock_poll(tide__accept_t *a, tide_cx_t *cx,
                                   tide_addr_t *peer, struct tide__sock **out,
                                   int *res);
void tide__sock_free(struct tide__sock *s);
int tide__sock_into_fd(struct tide__sock *s);
int tide__sock_shutdown(struct tide__sock *s, int how);

/* Poll a non-blocking connect in progress on s (connect answered
 * EINPROGRESS): READY with *err = 0 when connected, or the error. */
tide_poll_t tide__sock_poll_connected(struct tide__sock *s, tide_cx_t *cx,
                                      int *err);

/* The descriptor, or -EBADF once closed. */
static inline int tide__sock_fd(const struct tide__sock *s) {
    return s->fs.closed ? -EBADF : s->fs.reg.fd;
}

/* ------------------------------------------------------------------------
 * dgram.c: datagram sockets (UDP and Unix), one allocation each.
 * ------------------------------------------------------------------------ */

struct tide__dgram {
    struct tide_fd reg;
    /* Unconnected Unix sends that met a full receiver (see dgram.c): they
     * wait on retryq for one timer, the socket's, not each for its own. */
    tide_waitq_t retryq;
    tide_sleep_t retry;
    uint32_t delay; /* the last retry's, in microseconds; 0 after a send */
    bool armed;     /* retry is pending */
};

/* A datagram socket of `family` bound to addr (NULL: unbound). */
int tide__dgram_new(struct tide__dgram **out, tide_exec_t *ex, int family,
                    const tide_addr_t *addr, unsigned flags);
void tide__dgram_free(struct tide__dgram *d);
tide_future_t *tide__dgram_send(tide_dgram_send_t *op, struct tide__dgram *d,
                                const void *buf, size_t len,
                                const tide_addr_t *to);
tide_future_t *tide__dgram_recv(tide_dgram_recv_t *op, struct tide__dgram *d,
                                void *buf, size_t len);

/* ------------------------------------------------------------------------
 * dns.c: host name lookups through evdns, one evdns base per executor.
 * ------------------------------------------------------------------------ */

struct tide__resolve;
struct evdns_base;
struct evutil_addrinfo;

/* Start looking up host (the answer's addresses get `port`). The lookup
 * may be answered at once (/etc/hosts). Returns 0 and *out. Errors:
 * -ENOMEM, -EIO (no evdns base). */
int tide__resolve_start(struct tide__resolve **out, tide_exec_t *ex,
                        const char *host, unsigned short port);

/* READY when answered: *err = 0 and *ai the list (the caller now owns it:
 * evutil_freeaddrinfo), or *err = TIDE_ENONAME, -ENOMEM, -EIO... The
 * lookup is released: don't touch it again. */
tide_poll_t tide__resolve_poll(struct tide__resolve *r, tide_cx_t *cx,
                               struct evutil_addrinfo **ai, int *err);

/* Drop a lookup that did not answer yet (it is cancelled). */
void tide__resolve_cancel(struct tide__resolve *r);

/* Lookups started and not yet released (tests: nothing is left). */
size_t tide__resolve_outstanding(tide_exec_t *ex);

/* Tests: use dns (an evdns base on the executor's base) instead of one
 * configured from /etc/resolv.conf; the executor frees it. Returns 0, or
 * -EBUSY if the executor already has one. */
int tide__resolve_set_base(tide_exec_t *ex, struct evdns_base *dns);

#endif
