/*
 * src/net/tcp.c: TCP listeners, accept, connect (by address or by name)
 * and the TCP stream's own operations.
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>

#include <event2/util.h>

#include "net/internal.h"

/* A TCP stream is a stream socket; the cast is the whole difference. */
struct tide_tcp {
    struct tide__sock s;
};

static tide_tcp_t *tcp_of(struct tide__sock *s) { return (tide_tcp_t *)s; }

static bool is_inet(const tide_addr_t *a) {
    int f = tide_addr_family(a);
    return f == AF_INET || f == AF_INET6;
}

/* ------------------------------------------------------------------------
 * Listener
 * ------------------------------------------------------------------------ */

int tide_tcp_listener_bind_addr(tide_tcp_listener_t **out, tide_exec_t *ex,
                                const tide_addr_t *addr, int backlog,
                                unsigned flags) {
    if (out == NULL || ex == NULL || addr == NULL ||
        (flags & ~(unsigned)(TIDE_NET_REUSEPORT | TIDE_NET_V6ONLY)))
        return -EINVAL;
    if (!is_inet(addr))
        return TIDE_EADDR;
    int rc;
    tide_tcp_listener_t *l = tide__malloc(sizeof *l);
    if (l == NULL)
        return -ENOMEM;
    int fd = tide__sys_socket(addr->ss.ss_family, SOCK_STREAM);
    if (fd < 0) {
        rc = fd;
        goto fail_alloc;
    }
    if ((rc = tide__sys_bind(fd, addr, flags, true)) < 0)
        goto fail_fd;
    if (listen(fd, backlog > 0 ? backlog : SOMAXCONN) != 0) {
        rc = -errno;
        goto fail_fd;
    }
    if ((rc = tide__listener_init(&l->l, ex, fd)) < 0)
        goto fail_fd;
    *out = l;
    return 0;

fail_fd:
    tide__sys_close(fd);
fail_alloc:
    tide__free(l);
    return rc;
}

int tide_tcp_listener_bind(tide_tcp_listener_t **out, tide_exec_t *ex,
                           const char *addr, int backlog, unsigned flags) {
    tide_addr_t a;
    int rc = tide_addr_parse(&a, addr);
    if (rc < 0)
        return rc;
    return tide_tcp_listener_bind_addr(out, ex, &a, backlog, flags);
}

void tide_tcp_listener_free(tide_tcp_listener_t *l) {
    if (l == NULL)
        return;
    tide__listener_deinit(&l->l);
    tide__free(l);
}

int tide_tcp_listener_local_addr(const tide_tcp_listener_t *l,
                                 tide_addr_t *out) {
    if (l == NULL)
        return -EINVAL;
    return tide__sys_local_addr(l->l.reg.fd, out);
}

void tide_tcp_listener_stats(const tide_tcp_listener_t *l,
                             tide_listener_stats_t *out) {
    tide__listener_stats(l != NULL ? &l->l : NULL, out);
}

/* ------------------------------------------------------------------------
 * Accept
 * ------------------------------------------------------------------------ */

static tide_poll_t accept_poll(tide_future_t *f, tide_cx_t *cx) {
    tide_tcp_accept_t *a = TIDE_CONTAINER_OF(f, tide_tcp_accept_t, fut);
    struct tide__sock *s;
    int rc;
    if (tide__accept_sock_poll(&a->priv, cx, &a->peer, &s, &rc) == TIDE_PENDING)
        return TIDE_PENDING;
    if (rc == 0)
        a->conn = tcp_of(s);
    f->result = rc;
    return TIDE_READY;
}

static void accept_drop(tide_future_t *f) {
    tide_tcp_accept_t *a = TIDE_CONTAINER_OF(f, tide_tcp_accept_t, fut);
    tide__accept_drop(&a->priv);
}

static const tide_future_vtable_t accept_vt = {accept_poll, accept_drop};

tide_future_t *tide_tcp_accept(tide_tcp_accept_t *a, tide_tcp_listener_t *l) {
    a->conn = NULL;
    memset(&a->peer, 0, sizeof a->peer);
    tide__accept_init(&a->priv, l != NULL ? &l->l : NULL);
    return tide_future_init(&a->fut, &accept_vt);
}

/* ------------------------------------------------------------------------
 * Connect
 * ------------------------------------------------------------------------ */

enum {
    C_FAIL,      /* complete with last_err */
    C_RESOLVE,   /* start the lookup of host */
    C_RESOLVING, /* wait for it */
    C_NEXT,      /* take the next address found */
    C_TRY,       /* connect to addr */
    C_WAIT,      /* wait for the handshake */
};

static void connect_cleanup(tide_tcp_connect_t *c) {
    if (c->res != NULL) {
        tide__resolve_cancel(c->res);
        c->res = NULL;
    }
    if (c->ai != NULL) {
        evutil_freeaddrinfo(c->ai);
        c->ai = c->ai_next = NULL;
    }
}

bool tide__connect_err_per_address(int err) {
    switch (-err) {
    case ECONNREFUSED: /* nobody listens at that address */
    case ETIMEDOUT:    /* no answer from it */
    case ENETUNREACH:  /* no route to its network */
    case EHOSTUNREACH: /* no route to the host (ICMP) */
    case ENETDOWN:     /* the interface towards it is down */
    case EHOSTDOWN:
    case EADDRNOTAVAIL:   /* no local address of its family (::1 without
                           * IPv6), or its 4-tuples are all in use */
    case EAFNOSUPPORT:    /* socket(2): the kernel has no such family */
    case EPROTONOSUPPORT: /* socket(2): no TCP for that family */
    case EACCES:          /* a firewall rule for that destination */
    case EPERM:
        return true;
    default:
        /* ENOMEM, EMFILE, ENFILE, ENOBUFS, the reactor's errors, EINVAL...:
         * the next address would meet the same condition, or worse, get
         * through by chance and hide it. */
        return false;
    }
}

/* This address failed with err: on to the next one if err belongs to the
 * address and there is one; otherwise the connect ends with err. */
static void connect_failed(tide_tcp_connect_t *c, int err) {
    c->last_err = err;
    if (c->conn != NULL) {
        tide__sock_free(&c->conn->s);
        c->conn = NULL;
    }
    c->state = c->ai_next != NULL && tide__connect_err_per_address(err)
                   ? C_NEXT
                   : C_FAIL;
}

static tide_poll_t connect_poll(tide_future_t *f, tide_cx_t *cx) {
    tide_tcp_connect_t *c = TIDE_CONTAINER_OF(f, tide_tcp_connect_t, fut);
    if (cx->exec == NULL && c->state != C_FAIL) {
        c->state = C_FAIL;
        c->last_err = -EINVAL;
    }
    for (;;) {
        int rc;
        switch (c->state) {
        case C_FAIL:
            connect_cleanup(c);
            f->result = c->last_err;
            return TIDE_READY;

        case C_RESOLVE:
            rc = tide__resolve_start(&c->res, cx->exec, c->host, c->port);
            if (rc < 0) {
                c->last_err = rc;
                c->state = C_FAIL;
                break;
            }
            c->state = C_RESOLVING;
            break;

        case C_RESOLVING: {
            struct evutil_addrinfo *ai;
            if (tide__resolve_poll(c->res, cx, &ai, &rc) == TIDE_PENDING)
                return TIDE_PENDING;
            c->res = NULL; /* released by the poll */
            if (rc < 0) {
                c->last_err = rc;
                c->state = C_FAIL;
                break;
            }
            c->ai = c->ai_next = ai;
            c->last_err = TIDE_ENONAME; /* if no address is usable */
            c->state = C_NEXT;
            break;
        }

        case C_NEXT: {
            struct evutil_addrinfo *ai = c->ai_next;
            if (ai == NULL) {
                c->state = C_FAIL;
                break;
            }
            c->ai_next = ai->ai_next;
            if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
                tide_addr_from_sockaddr(&c->addr, ai->ai_addr,
                                        (socklen_t)ai->ai_addrlen) < 0)
                break; /* not for us: skip */
            c->state = C_TRY;
            break;
        }

        case C_TRY: {
            int fd = tide__sys_socket(c->addr.ss.ss_family, SOCK_STREAM);
            if (fd < 0) {
                connect_failed(c, fd);
                break;
            }
            struct tide__sock *s;
            rc = tide__sock_new(&s, cx->exec, fd);
            if (rc < 0) {
                tide__sys_close(fd);
                connect_failed(c, rc);
                break;
            }
            c->conn = tcp_of(s);
            rc = tide__sys_connect(fd, &c->addr);
            if (rc == 0) {
                connect_cleanup(c);
                f->result = 0;
                return TIDE_READY;
            }
            if (rc != -EINPROGRESS) {
                connect_failed(c, rc);
                break;
            }
            c->state = C_WAIT;
            break;
        }

        case C_WAIT:
            if (tide__sock_poll_connected(&c->conn->s, cx, &rc) == TIDE_PENDING)
                return TIDE_PENDING;
            if (rc < 0) {
                connect_failed(c, rc);
                break;
            }
            connect_cleanup(c);
            f->result = 0;
            return TIDE_READY;

        default:
            c->last_err = -EINVAL;
            c->state = C_FAIL;
            break;
        }
    }
}

static void connect_drop(tide_future_t *f) {
    tide_tcp_connect_t *c = TIDE_CONTAINER_OF(f, tide_tcp_connect_t, fut);
    connect_cleanup(c);
    /* A connection still in the handshake is ours to close; a completed
     * one belongs to the caller. */
    if (!tide_future_is_done(f) && c->conn != NULL) {
        tide__sock_free(&c->conn->s);
        c->conn = NULL;
    }
}

static const tide_future_vtable_t connect_vt = {connect_poll, connect_drop};

static tide_future_t *connect_init(tide_tcp_connect_t *c) {
    c->conn = NULL;
    memset(&c->addr, 0, sizeof c->addr);
    c->host[0] = '\0';
    c->port = 0;
    c->state = C_FAIL;
    c->last_err = 0;
    c->res = NULL;
    c->ai = c->ai_next = NULL;
    return tide_future_init(&c->fut, &connect_vt);
}

tide_future_t *tide_tcp_connect_addr(tide_tcp_connect_t *c,
                                     const tide_addr_t *addr) {
    tide_future_t *f = connect_init(c);
    if (addr == NULL) {
        c->last_err = -EINVAL;
    } else if (!is_inet(addr)) {
        c->last_err = TIDE_EADDR;
    } else {
        c->addr = *addr;
        c->state = C_TRY;
    }
    return f;
}

tide_future_t *tide_tcp_connect(tide_tcp_connect_t *c, const char *hostport) {
    tide_future_t *f = connect_init(c);
    if (hostport == NULL) {
        c->last_err = -EINVAL;
        return f;
    }
    int rc = tide_addr_parse(&c->addr, hostport);
    if (rc == 0) {
        if (is_inet(&c->addr))
            c->state = C_TRY;
        else
            c->last_err = TIDE_EADDR;
        return f;
    }
    if (rc != TIDE_EADDR) {
        c->last_err = rc;
        return f;
    }
    rc = tide__addr_split(hostport, c->host, sizeof c->host, &c->port);
    if (rc < 0) {
        c->last_err = rc;
        return f;
    }
    c->state = C_RESOLVE;
    return f;
}

/* ------------------------------------------------------------------------
 * Stream
 * ------------------------------------------------------------------------ */

int tide_tcp_from_fd(tide_tcp_t **out, tide_exec_t *ex, int fd) {
    if (out == NULL || ex == NULL)
        return -EINVAL;
    int rc = tide__sys_check_stream(fd, AF_INET, AF_INET6);
    if (rc < 0)
        return rc;
    struct tide__sock *s;
    rc = tide__sock_new(&s, ex, fd);
    if (rc < 0)
        return rc;
    *out = tcp_of(s);
    return 0;
}

tide_stream_t *tide_tcp_stream(tide_tcp_t *t) { return &t->s.fs.stream; }

tide_fd_t *tide_tcp_fd(tide_tcp_t *t) { return &t->s.fs.reg; }

int tide_tcp_peer_addr(const tide_tcp_t *t, tide_addr_t *out) {
    if (t == NULL)
        return -EINVAL;
    return tide__sys_peer_addr(tide__sock_fd(&t->s), out);
}

int tide_tcp_local_addr(const tide_tcp_t *t, tide_addr_t *out) {
    if (t == NULL)
        return -EINVAL;
    return tide__sys_local_addr(tide__sock_fd(&t->s), out);
}

int tide_tcp_set_nodelay(tide_tcp_t *t, bool on) {
    if (t == NULL)
        return -EINVAL;
    int fd = tide__sock_fd(&t->s);
    if (fd < 0)
        return fd;
    return tide__sys_setopt(fd, IPPROTO_TCP, TCP_NODELAY, on ? 1 : 0);
}

int tide_tcp_set_keepalive(tide_tcp_t *t, bool on, unsigned idle_sec) {
    if (t == NULL || idle_sec > INT32_MAX)
        return -EINVAL;
    int fd = tide__sock_fd(&t->s);
    if (fd < 0)
        return fd;
    int rc = tide__sys_setopt(fd, SOL_SOCKET, SO_KEEPALIVE, on ? 1 : 0);
    if (rc < 0 || !on || idle_sec == 0)
        return rc;
    if ((rc = tide__sys_setopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, (int)idle_sec)) <
        0)
        return rc;
    return tide__sys_setopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, (int)idle_sec);
}

int tide_tcp_shutdown(tide_tcp_t *t, int how) {
    return tide__sock_shutdown(t != NULL ? &t->s : NULL, how);
}

void tide_tcp_free(tide_tcp_t *t) {
    if (t != NULL)
        tide__sock_free(&t->s);
}

int tide_tcp_into_fd(tide_tcp_t *t) {
    return tide__sock_into_fd(t != NULL ? &t->s : NULL);
}
