/*
 * src/net/unix.c: Unix domain sockets: stream listeners, accept, connect,
 * socket pairs, and datagram sockets.
 */
#include <string.h>
#include <sys/un.h>

#include "net/internal.h"

struct tide_unix {
    struct tide__sock s;
};

struct tide_unix_dgram {
    struct tide__dgram d;
};

static tide_unix_t *unix_of(struct tide__sock *s) { return (tide_unix_t *)s; }

/* ------------------------------------------------------------------------
 * Listener
 * ------------------------------------------------------------------------ */

int tide_unix_listener_bind(tide_unix_listener_t **out, tide_exec_t *ex,
                            const char *path, int backlog, unsigned flags) {
    if (out == NULL || ex == NULL || path == NULL ||
        (flags & ~(unsigned)TIDE_NET_UNLINK))
        return -EINVAL;
    tide_addr_t addr;
    int rc = tide__addr_unix(&addr, path);
    if (rc < 0)
        return rc;
    tide_unix_listener_t *l = tide__malloc(sizeof *l);
    if (l == NULL)
        return -ENOMEM;
    int fd = tide__sys_socket(AF_UNIX, SOCK_STREAM);
    if (fd < 0) {
        rc = fd;
        goto fail_alloc;
    }
    if ((rc = tide__sys_unix_unlink_stale(&addr, flags)) < 0 ||
        (rc = tide__sys_bind(fd, &addr, 0, false)) < 0)
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

void tide_unix_listener_free(tide_unix_listener_t *l) {
    if (l == NULL)
        return;
    tide__listener_deinit(&l->l);
    tide__free(l);
}

int tide_unix_listener_local_addr(const tide_unix_listener_t *l,
                                  tide_addr_t *out) {
    if (l == NULL)
        return -EINVAL;
    return tide__sys_local_addr(l->l.reg.fd, out);
}

void tide_unix_listener_stats(const tide_unix_listener_t *l,
                              tide_listener_stats_t *out) {
    tide__listener_stats(l != NULL ? &l->l : NULL, out);
}

/* ------------------------------------------------------------------------
 * Accept
 * ------------------------------------------------------------------------ */

static tide_poll_t accept_poll(tide_future_t *f, tide_cx_t *cx) {
    tide_unix_accept_t *a = TIDE_CONTAINER_OF(f, tide_unix_accept_t, fut);
    struct tide__sock *s;
    int rc;
    if (tide__accept_sock_poll(&a->priv, cx, &a->peer, &s, &rc) == TIDE_PENDING)
        return TIDE_PENDING;
    if (rc == 0)
        a->conn = unix_of(s);
    f->result = rc;
    return TIDE_READY;
}

static void accept_drop(tide_future_t *f) {
    tide_unix_accept_t *a = TIDE_CONTAINER_OF(f, tide_unix_accept_t, fut);
    tide__accept_drop(&a->priv);
}

static const tide_future_vtable_t accept_vt = {accept_poll, accept_drop};

tide_future_t *tide_unix_accept(tide_unix_accept_t *a,
                                tide_unix_listener_t *l) {
    a->conn = NULL;
    memset(&a->peer, 0, sizeof a->peer);
    tide__accept_init(&a->priv, l != NULL ? &l->l : NULL);
    return tide_future_init(&a->fut, &accept_vt);
}

/* ------------------------------------------------------------------------
 * Connect
 * ------------------------------------------------------------------------ */

static void connect_close(tide_unix_connect_t *c) {
    if (c->conn != NULL) {
        tide__sock_free(&c->conn->s);
        c->conn = NULL;
    }
}

static tide_poll_t connect_poll(tide_future_t *f, tide_cx_t *cx) {
    tide_unix_connect_t *c = TIDE_CONTAINER_OF(f, tide_unix_connect_t, fut);
    if (c->parse_err < 0) {
        f->result = c->parse_err;
        return TIDE_READY;
    }
    if (cx->exec == NULL) {
        f->result = -EINVAL;
        return TIDE_READY;
    }
    for (;;) {
        if (c->sleeping) {
            if (tide_future_poll(&c->retry.fut, cx) == TIDE_PENDING)
                return TIDE_PENDING;
            tide_future_drop(&c->retry.fut);
            c->sleeping = false;
        }
        int rc;
        if (c->conn != NULL) { /* a handshake in progress */
            if (tide__sock_poll_connected(&c->conn->s, cx, &rc) == TIDE_PENDING)
                return TIDE_PENDING;
            if (rc < 0)
                connect_close(c);
            f->result = rc;
            return TIDE_READY;
        }
        int fd = tide__sys_socket(AF_UNIX, SOCK_STREAM);
        if (fd < 0) {
            f->result = fd;
            return TIDE_READY;
        }
        struct tide__sock *s;
        if ((rc = tide__sock_new(&s, cx->exec, fd)) < 0) {
            tide__sys_close(fd);
            f->result = rc;
            return TIDE_READY;
        }
        c->conn = unix_of(s);
        rc = tide__sys_connect(fd, &c->addr);
        if (rc == 0) {
            f->result = 0;
            return TIDE_READY;
        }
        if (rc == -EINPROGRESS)
            continue; /* wait for the handshake */
        connect_close(c);
        if (rc != -EAGAIN && rc != -EWOULDBLOCK) {
            f->result = rc;
            return TIDE_READY;
        }
        /* The listener's backlog is full: try again later. */
        /* A full backlog: no readiness to wait for (see internal.h). */
        c->delay = tide__backoff_next(c->delay, TIDE__UNIX_RETRY_MAX_USEC);
        tide_sleep(&c->retry, c->delay);
        c->sleeping = true;
    }
}

static void connect_drop(tide_future_t *f) {
    tide_unix_connect_t *c = TIDE_CONTAINER_OF(f, tide_unix_connect_t, fut);
    if (c->sleeping) {
        tide_future_drop(&c->retry.fut);
        c->sleeping = false;
    }
    if (!tide_future_is_done(f))
        connect_close(c);
}

static const tide_future_vtable_t connect_vt = {connect_poll, connect_drop};

tide_future_t *tide_unix_connect(tide_unix_connect_t *c, const char *path) {
    c->conn = NULL;
    c->delay = 0;
    c->sleeping = false;
    c->parse_err = path == NULL ? -EINVAL : tide__addr_unix(&c->addr, path);
    return tide_future_init(&c->fut, &connect_vt);
}

/* ------------------------------------------------------------------------
 * Streams
 * ------------------------------------------------------------------------ */

int tide_socketpair(tide_unix_t **a, tide_unix_t **b, tide_exec_t *ex) {
    if (a == NULL || b == NULL || ex == NULL)
        return -EINVAL;
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                   fds) != 0)
        return -errno;
    struct tide__sock *sa, *sb;
    int rc = tide__sock_new(&sa, ex, fds[0]);
    if (rc < 0)
        goto fail_fds;
    if ((rc = tide__sock_new(&sb, ex, fds[1])) < 0)
        goto fail_sa;
    *a = unix_of(sa);
    *b = unix_of(sb);
    return 0;

fail_sa:
    tide__sock_free(sa); /* closes fds[0] */
    tide__sys_close(fds[1]);
    return rc;
fail_fds:
    tide__sys_close(fds[0]);
    tide__sys_close(fds[1]);
    return rc;
}

int tide_unix_from_fd(tide_unix_t **out, tide_exec_t *ex, int fd) {
    if (out == NULL || ex == NULL)
        return -EINVAL;
    int rc = tide__sys_check_stream(fd, AF_UNIX, AF_UNIX);
    if (rc < 0)
        return rc;
    struct tide__sock *s;
    rc = tide__sock_new(&s, ex, fd);
    if (rc < 0)
        return rc;
    *out = unix_of(s);
    return 0;
}

tide_stream_t *tide_unix_stream(tide_unix_t *u) { return &u->s.fs.stream; }

tide_fd_t *tide_unix_fd(tide_unix_t *u) { return &u->s.fs.reg; }

int tide_unix_peer_addr(const tide_unix_t *u, tide_addr_t *out) {
    if (u == NULL)
        return -EINVAL;
    return tide__sys_peer_addr(tide__sock_fd(&u->s), out);
}

int tide_unix_local_addr(const tide_unix_t *u, tide_addr_t *out) {
    if (u == NULL)
        return -EINVAL;
    return tide__sys_local_addr(tide__sock_fd(&u->s), out);
}

int tide_unix_shutdown(tide_unix_t *u, int how) {
    return tide__sock_shutdown(u != NULL ? &u->s : NULL, how);
}

void tide_unix_free(tide_unix_t *u) {
    if (u != NULL)
        tide__sock_free(&u->s);
}

int tide_unix_into_fd(tide_unix_t *u) {
    return tide__sock_into_fd(u != NULL ? &u->s : NULL);
}

/* ------------------------------------------------------------------------
 * Datagrams
 * ------------------------------------------------------------------------ */

int tide_unix_dgram_bind(tide_unix_dgram_t **out, tide_exec_t *ex,
                         const char *path, unsigned flags) {
    if (out == NULL || ex == NULL || (flags & ~(unsigned)TIDE_NET_UNLINK))
        return -EINVAL;
    tide_addr_t addr;
    if (path != NULL) {
        int rc = tide__addr_unix(&addr, path);
        if (rc < 0)
            return rc;
    }
    struct tide__dgram *d;
    int rc =
        tide__dgram_new(&d, ex, AF_UNIX, path != NULL ? &addr : NULL, flags);
    if (rc < 0)
        return rc;
    if (path == NULL) {
        /* Autobind now (an abstract name of the kernel's choosing), so
         * that peers can answer and local_addr tells the name at once.
         * Binding with only the family is Linux's documented way. */
        tide_addr_t any;
        memset(&any, 0, sizeof any);
        any.ss.ss_family = AF_UNIX;
        any.len = sizeof(sa_family_t);
        if ((rc = tide__sys_bind(d->reg.fd, &any, 0, false)) < 0) {
            tide__dgram_free(d);
            return rc;
        }
    }
    *out = (tide_unix_dgram_t *)d;
    return 0;
}

int tide_unix_dgram_connect(tide_unix_dgram_t *d, const char *path) {
    if (d == NULL || path == NULL)
        return -EINVAL;
    tide_addr_t a;
    int rc = tide__addr_unix(&a, path);
    if (rc < 0)
        return rc;
    do
        rc = tide__sys_connect(d->d.reg.fd, &a);
    while (rc == -EINPROGRESS);
    return rc;
}

tide_future_t *tide_unix_dgram_send_to(tide_dgram_send_t *op,
                                       tide_unix_dgram_t *d, const void *buf,
                                       size_t len, const tide_addr_t *to) {
    return tide__dgram_send(op, d != NULL ? &d->d : NULL, buf, len, to);
}

tide_future_t *tide_unix_dgram_send(tide_dgram_send_t *op, tide_unix_dgram_t *d,
                                    const void *buf, size_t len) {
    return tide__dgram_send(op, d != NULL ? &d->d : NULL, buf, len, NULL);
}

tide_future_t *tide_unix_dgram_recv_from(tide_dgram_recv_t *op,
                                         tide_unix_dgram_t *d, void *buf,
                                         size_t len) {
    return tide__dgram_recv(op, d != NULL ? &d->d : NULL, buf, len);
}

tide_future_t *tide_unix_dgram_recv(tide_dgram_recv_t *op, tide_unix_dgram_t *d,
                                    void *buf, size_t len) {
    return tide__dgram_recv(op, d != NULL ? &d->d : NULL, buf, len);
}

int tide_unix_dgram_local_addr(const tide_unix_dgram_t *d, tide_addr_t *out) {
    if (d == NULL)
        return -EINVAL;
    return tide__sys_local_addr(d->d.reg.fd, out);
}

tide_fd_t *tide_unix_dgram_fd(tide_unix_dgram_t *d) { return &d->d.reg; }

void tide_unix_dgram_free(tide_unix_dgram_t *d) {
    if (d != NULL)
        tide__dgram_free(&d->d);
}
