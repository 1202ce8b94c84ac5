/*
 * samples/echod/listen.c: the listening sockets, and their accept tasks
 * (one per listener per thread).
 *
 * An inherited socket (systemd's LISTEN_FDS, --listen-fd) is one socket
 * with one accept queue, served by every thread: worker 0's listener
 * holds the descriptor itself, each other worker a duplicate of it
 * (F_DUPFD_CLOEXEC) with its own registration on its own event loop. A
 * new connection wakes every thread's loop; one accept4 takes it, the
 * others meet EAGAIN and wait again. (SO_REUSEPORT would spread
 * connections without that, but it needs one socket per thread, and
 * systemd passes one.)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "echod.h"

typedef struct acceptor {
    tide_future_t fut;
    tide_async_t co;
    worker_t *w;
    listener_t *l;
    tide_sleep_t nap;
    tide_semaphore_acquire_t slot; /* --max-conns-wait */
    bool has_slot;                 /* the next connection's, taken */
    tide_accept_t acc;
} acceptor_t;

static tide_poll_t acceptor_poll(tide_future_t *f, tide_cx_t *cx) {
    acceptor_t *a = TIDE_CONTAINER_OF(f, acceptor_t, fut);
    int rc;

    TIDE_BEGIN(&a->co);
    for (;;) {
        if (D.opt.max_conns != 0 && D.opt.max_conns_wait && !a->has_slot) {
            /* Full: accept nothing until a connection closes; newcomers
             * wait in the kernel's backlog meanwhile. */
            TIDE_AWAIT(&a->co, cx,
                       tide_semaphore_acquire(&a->slot, &D.slots, 1));
            if (tide_async_result(&a->co) < 0)
                break;
            a->has_slot = true;
        }
        /* Running out of descriptors never completes an accept: the
         * listener pauses by itself (growing delays up to 1 s) and the
         * loop sleeps meanwhile. */
        TIDE_AWAIT(&a->co, cx, tide_accept(&a->acc, a->l->l));
        rc = (int)tide_async_result(&a->co);
        if (rc == 0) {
            admit(a->w, a->acc.conn, &a->acc.peer, a->has_slot);
            a->has_slot = false; /* the connection's now */
            publish_backoffs(a->w);
            continue;
        }
        if (rc == -EBADF)
            break; /* the listener is gone */
        /* Something unexpected (or no memory to wrap a connection):
         * don't spin on it. */
        logmsg(ECHOD_QUIET, "accept: %s", tide_strerror(rc));
        TIDE_AWAIT(&a->co, cx, tide_sleep(&a->nap, 100 * TIDE_USEC_PER_MSEC));
    }
    TIDE_END(&a->co, f, 0);
}

static void acceptor_drop(tide_future_t *f) {
    acceptor_t *a = TIDE_CONTAINER_OF(f, acceptor_t, fut);
    tide_async_drop(&a->co); /* gives back a slot it was waiting for */
    if (a->has_slot)
        tide_semaphore_release(&D.slots, 1);
    free(a);
}

static const tide_future_vtable_t acceptor_vt = {acceptor_poll, acceptor_drop};

/* Is a Unix socket at path alive (someone accepts on it)? */
static bool unix_socket_alive(const tide_addr_t *a) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return true; /* can't tell: assume so, and don't remove it */
    bool alive = connect(fd, tide_addr_sockaddr(a), a->len) == 0 ||
                 errno != ECONNREFUSED;
    close(fd);
    return alive;
}

static int bind_one(worker_t *w, size_t i, listener_t *l) {
    const char *text = D.opt.listen[i];
    const tide_addr_t *addr = &D.addr[i];
    int rc;
    if (tide_addr_family(addr) == AF_UNIX) {
        rc = tide_listener_bind(&l->l, w->ex, text, 0);
        /* A socket file left by a daemon that died is removed; one that
         * still answers belongs to someone: leave it. */
        if (rc == -EADDRINUSE && !unix_socket_alive(addr))
            rc = tide_listener_bind(&l->l, w->ex, text, TIDE_NET_UNLINK);
        if (rc == 0 && ((const struct sockaddr_un *)(const void *)&addr->ss)
                               ->sun_path[0] != '\0')
            D.unix_bound[i] = true;
        return rc;
    }
    return tide_listener_bind_addr(&l->l, w->ex, addr,
                                   D.opt.threads > 1 ? TIDE_NET_REUSEPORT : 0);
}

void free_listener(listener_t *l) {
    tide_listener_free(l->l);
    l->l = NULL;
}

/* Spawn the accept task of w's listener l. */
static int spawn_acceptor(worker_t *w, listener_t *l, char *err,
                          size_t errsize) {
    acceptor_t *a = calloc(1, sizeof *a);
    if (a == NULL) {
        snprintf(err, errsize, "out of memory");
        return -ENOMEM;
    }
    a->w = w;
    a->l = l;
    tide_future_init(&a->fut, &acceptor_vt);
    int rc = tide_spawn(w->ex, &a->fut, &l->accept_task);
    if (rc < 0) {
        tide_future_drop(&a->fut);
        snprintf(err, errsize, "cannot start: %s", tide_strerror(rc));
        return rc;
    }
    l->has_task = true;
    return 0;
}

int listen_start(worker_t *w, size_t i, char *err, size_t errsize) {
    listener_t *l = &w->ls[w->nls];
    int rc = bind_one(w, i, l);
    if (rc < 0) {
        snprintf(err, errsize, "cannot listen on %s: %s", D.opt.listen[i],
                 tide_strerror(rc));
        return rc;
    }
    w->nls++;
    if (w->index == 0 && tide_addr_family(&D.addr[i]) != AF_UNIX)
        tide_listener_local_addr(l->l, &D.addr[i]);
    return spawn_acceptor(w, l, err, errsize);
}

/* What tide_listener_from_fd's refusal means for an operator. */
static const char *not_a_listener(int rc) {
    switch (rc) {
    case -EBADF:
        return "not an open descriptor";
    case -ENOTSOCK:
        return "not a socket";
    case -EAFNOSUPPORT:
        return "not a TCP or Unix socket";
    case -EPROTOTYPE:
        return "not a stream socket";
    case -EINVAL:
        return "a socket that is not listening";
    default:
        return tide_strerror(rc);
    }
}

int inherit_start(worker_t *w, size_t k, char *err, size_t errsize) {
    inherited_t *in = &D.inh[k];
    listener_t *l = &w->ls[w->nls];
    int fd = in->fd;
    if (w->index > 0 && (fd = fcntl(in->fd, F_DUPFD_CLOEXEC, 3)) < 0) {
        int e = errno;
        snprintf(err, errsize, "cannot duplicate fd %d: %s", in->fd,
                 strerror(e));
        return -e;
    }
    int rc = tide_listener_from_fd(&l->l, w->ex, fd);
    if (rc < 0) {
        if (fd != in->fd)
            close(fd);
        snprintf(err, errsize, "cannot listen on fd %d (%s): %s", in->fd,
                 in->origin, not_a_listener(rc));
        return rc;
    }
    w->nls++;
    if (w->index == 0)
        tide_listener_local_addr(l->l, &in->addr);
    return spawn_acceptor(w, l, err, errsize);
}
