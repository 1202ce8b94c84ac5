/*
 * src/net/serve.c: any stream listener (TCP or Unix) and the connections
 * it accepts, one type each, and tide_serve, the accept loop that gives
 * each connection a task.
 *
 * A tide_listener_t is the same object as a tide_tcp_listener_t or a
 * tide_unix_listener_t (all are a struct tide__listener), and a tide_conn_t
 * the same as a tide_tcp_t or a tide_unix_t (a struct tide__sock): the
 * kind is told by the socket's family when it matters.
 */
#include <fcntl.h>
#include <string.h>

#include "net/internal.h"

_Static_assert(sizeof(struct tide_listener) ==
                       sizeof(struct tide_tcp_listener) &&
                   sizeof(struct tide_listener) ==
                       sizeof(struct tide_unix_listener),
               "the listeners are one object");

int tide_listener_bind(tide_listener_t **out, tide_exec_t *ex, const char *addr,
                       unsigned flags) {
    if (out == NULL || addr == NULL)
        return -EINVAL;
    if (strncmp(addr, "unix:", 5) == 0) {
        tide_unix_listener_t *u;
        int rc = tide_unix_listener_bind(&u, ex, addr, 0, flags);
        if (rc == 0)
            *out = (tide_listener_t *)(void *)u;
        return rc;
    }
    tide_tcp_listener_t *t;
    int rc = tide_tcp_listener_bind(&t, ex, addr, 0, flags);
    if (rc == 0)
        *out = (tide_listener_t *)(void *)t;
    return rc;
}

int tide_listener_bind_addr(tide_listener_t **out, tide_exec_t *ex,
                            const tide_addr_t *addr, unsigned flags) {
    if (out == NULL || addr == NULL)
        return -EINVAL;
    if (tide_addr_family(addr) == AF_UNIX) {
        char text[TIDE_ADDR_STRLEN];
        int rc = tide_addr_format(addr, text, sizeof text);
        return rc < 0 ? rc : tide_listener_bind(out, ex, text, flags);
    }
    tide_tcp_listener_t *t;
    int rc = tide_tcp_listener_bind_addr(&t, ex, addr, 0, flags);
    if (rc == 0)
        *out = (tide_listener_t *)(void *)t;
    return rc;
}

/* The descriptor comes from elsewhere (systemd, a parent, another
 * library): it may be blocking and inheritable. Both flags are set here,
 * and put back as they were if the listener cannot be made, so that a
 * refused descriptor is left as the caller gave it. */
int tide_listener_from_fd(tide_listener_t **out, tide_exec_t *ex, int fd) {
    if (out == NULL || ex == NULL)
        return -EINVAL;
    int rc = tide__sys_check_listener(fd);
    if (rc < 0)
        return rc;
    int fl = fcntl(fd, F_GETFL), fdfl = fcntl(fd, F_GETFD);
    if (fl < 0 || fdfl < 0)
        return -errno;
    tide_listener_t *l = tide__malloc(sizeof *l);
    if (l == NULL)
        return -ENOMEM;
    if ((!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0) ||
        (!(fdfl & FD_CLOEXEC) && fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC) != 0)) {
        rc = -errno;
        goto fail;
    }
    if ((rc = tide__listener_init(&l->l, ex, fd)) < 0)
        goto fail;
    *out = l;
    return 0;

fail:
    fcntl(fd, F_SETFL, fl);
    fcntl(fd, F_SETFD, fdfl);
    tide__free(l);
    return rc;
}

void tide_listener_stats(const tide_listener_t *l, tide_listener_stats_t *out) {
    tide__listener_stats(l != NULL ? &l->l : NULL, out);
}

int tide_listener_local_addr(const tide_listener_t *l, tide_addr_t *out) {
    if (l == NULL || out == NULL)
        return -EINVAL;
    return tide__sys_local_addr(l->l.reg.fd, out);
}

int tide_listener_name(const tide_listener_t *l, char *buf, size_t size) {
    tide_addr_t a;
    int rc = tide_listener_local_addr(l, &a);
    if (rc == 0)
        rc = tide_addr_format(&a, buf, size); /* its length, or -errno */
    return rc < 0 ? rc : 0;
}

void tide_listener_free(tide_listener_t *l) {
    if (l == NULL)
        return;
    tide__listener_deinit(&l->l);
    tide__free(l);
}

/* accept --------------------------------------------------------------- */

static tide_poll_t accept_poll(tide_future_t *f, tide_cx_t *cx) {
    tide_accept_t *a = TIDE_CONTAINER_OF(f, tide_accept_t, fut);
    struct tide__sock *s;
    int rc;
    if (tide__accept_sock_poll(&a->priv, cx, &a->peer, &s, &rc) == TIDE_PENDING)
        return TIDE_PENDING;
    if (rc == 0)
        a->conn = (tide_conn_t *)(void *)s;
    f->result = rc;
    return TIDE_READY;
}

static void accept_drop(tide_future_t *f) {
    tide__accept_drop(&TIDE_CONTAINER_OF(f, tide_accept_t, fut)->priv);
}

static const tide_future_vtable_t accept_vt = {accept_poll, accept_drop};

tide_future_t *tide_accept(tide_accept_t *a, tide_listener_t *l) {
    a->conn = NULL;
    memset(&a->peer, 0, sizeof a->peer);
    tide__accept_init(&a->priv, l != NULL ? &l->l : NULL);
    return tide_future_init(&a->fut, &accept_vt);
}

/* connections ---------------------------------------------------------- */

static struct tide__sock *sock_of(tide_conn_t *c) {
    return (struct tide__sock *)(void *)c;
}

static bool is_unix(tide_conn_t *c) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    return getsockname(sock_of(c)->fs.reg.fd, (struct sockaddr *)&ss, &len) ==
               0 &&
           ss.ss_family == AF_UNIX;
}

tide_stream_t *tide_conn_stream(tide_conn_t *c) {
    return c != NULL ? &sock_of(c)->fs.stream : NULL;
}

tide_tcp_t *tide_conn_tcp(tide_conn_t *c) {
    return c != NULL && !is_unix(c) ? (tide_tcp_t *)(void *)c : NULL;
}

tide_unix_t *tide_conn_unix(tide_conn_t *c) {
    return c != NULL && is_unix(c) ? (tide_unix_t *)(void *)c : NULL;
}

int tide_conn_peer_addr(const tide_conn_t *c, tide_addr_t *out) {
    if (c == NULL || out == NULL)
        return -EINVAL;
    return tide__sys_peer_addr(
        ((const struct tide__sock *)(const void *)c)->fs.reg.fd, out);
}

void tide_conn_free(tide_conn_t *c) {
    if (c != NULL)
        tide__sock_free(sock_of(c));
}

/* serve ---------------------------------------------------------------- */

enum { S_SLOT, S_ACCEPT, S_PAUSE };

/* Passing accept errors, waited out (see net.h). */
static bool transient(intptr_t err) {
    return err == -ENOMEM || err == -EMFILE || err == -ENFILE ||
           err == -ENOBUFS || err == -ECONNABORTED;
}

/* A connection's task ended: its permit goes back (the semaphore is in the
 * task's extra bytes). */
static void conn_done(tide_task_t *t) {
    tide_semaphore_t *limit = *(tide_semaphore_t **)tide__task_extra(t);
    tide_semaphore_release(limit, 1);
}

/* Give conn to the handler and spawn its task (the permit, if any, goes
 * with it). */
static void start(tide_serve_t *op, tide_cx_t *cx, tide_conn_t *conn) {
    tide_future_t *fut = op->handler(conn, op->arg);
    if (fut == NULL) {
        tide_conn_free(conn);
        return; /* the permit is reused for the next accept */
    }
    int rc;
    if (op->limit != NULL) {
        tide_task_t *t;
        rc = tide__spawn_ex(cx->exec, fut, 0, sizeof op->limit, conn_done, &t);
        if (rc == 0) {
            *(tide_semaphore_t **)tide__task_extra(t) = op->limit;
            op->has_slot = false;
        }
    } else {
        rc = tide_spawn(cx->exec, fut, NULL);
    }
    if (rc < 0)
        tide_future_drop(fut); /* frees conn (it owns it) */
}

static tide_poll_t serve_poll(tide_future_t *f, tide_cx_t *cx) {
    tide_serve_t *op = TIDE_CONTAINER_OF(f, tide_serve_t, fut);
    for (;;) {
        switch (op->state) {
        case S_SLOT:
            if (op->limit != NULL && !op->has_slot) {
                if (tide_future_poll(&op->slot.fut, cx) == TIDE_PENDING)
                    return TIDE_PENDING;
                intptr_t rc = op->slot.fut.result;
                tide_future_drop(&op->slot.fut);
                if (rc < 0) {
                    f->result = rc;
                    return TIDE_READY;
                }
                op->has_slot = true;
            }
            tide_accept(&op->acc, op->l);
            op->state = S_ACCEPT;
            break;
        case S_ACCEPT: {
            if (tide_future_poll(&op->acc.fut, cx) == TIDE_PENDING)
                return TIDE_PENDING;
            intptr_t rc = op->acc.fut.result;
            tide_future_drop(&op->acc.fut);
            if (rc == 0) {
                start(op, cx, op->acc.conn);
            } else if (transient(rc)) {
                tide_sleep(&op->pause, 100 * TIDE_USEC_PER_MSEC);
                op->state = S_PAUSE;
                break;
            } else {
                op->state = S_PAUSE + 1; /* done */
                f->result = rc;
                return TIDE_READY;
            }
            if (op->limit != NULL && !op->has_slot)
                tide_semaphore_acquire(&op->slot, op->limit, 1);
            op->state = S_SLOT;
            break;
        }
        case S_PAUSE:
            if (tide_future_poll(&op->pause.fut, cx) == TIDE_PENDING)
                return TIDE_PENDING;
            tide_future_drop(&op->pause.fut);
            tide_accept(&op->acc, op->l);
            op->state = S_ACCEPT;
            break;
        }
    }
}

static void serve_drop(tide_future_t *f) {
    tide_serve_t *op = TIDE_CONTAINER_OF(f, tide_serve_t, fut);
    switch (op->state) {
    case S_SLOT:
        if (op->limit != NULL && !op->has_slot)
            tide_future_drop(&op->slot.fut);
        break;
    case S_ACCEPT:
        tide_future_drop(&op->acc.fut);
        break;
    case S_PAUSE:
        tide_future_drop(&op->pause.fut);
        break;
    }
    if (op->has_slot)
        tide_semaphore_release(op->limit, 1);
    op->has_slot = false;
}

static const tide_future_vtable_t serve_vt = {serve_poll, serve_drop};

tide_future_t *tide_serve(tide_serve_t *op, tide_listener_t *l,
                          tide_serve_fn handler, void *arg,
                          tide_semaphore_t *limit) {
    op->l = l;
    op->handler = handler;
    op->arg = arg;
    op->limit = limit;
    op->has_slot = false;
    op->state = S_SLOT;
    if (limit != NULL)
        tide_semaphore_acquire(&op->slot, limit, 1);
    return tide_future_init(&op->fut, &serve_vt);
}
