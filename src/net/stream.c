/*
 * src/net/stream.c: a connected stream socket (TCP or Unix). It is an
 * fdstream (the io layer reads and writes it, with MSG_NOSIGNAL), plus
 * what only sockets have: a connect in progress, shutdown(2), addresses.
 * One allocation per connection; TCP and Unix types are this struct.
 */
#include <string.h>

#include "net/internal.h"

int tide__sock_new(struct tide__sock **out, tide_exec_t *ex, int fd) {
    if (out == NULL || ex == NULL)
        return -EINVAL;
    struct tide__sock *s = tide__malloc(sizeof *s);
    if (s == NULL)
        return -ENOMEM;
    int rc = tide__fdstream_init(&s->fs, ex, fd);
    if (rc < 0) {
        tide__free(s);
        return rc;
    }
    *out = s;
    return 0;
}

tide_poll_t tide__accept_sock_poll(tide__accept_t *a, tide_cx_t *cx,
                                   tide_addr_t *peer, struct tide__sock **out,
                                   int *res) {
    int fd;
    if (tide__accept_poll(a, cx, &fd, peer) == TIDE_PENDING)
        return TIDE_PENDING;
    if (fd < 0) {
        *res = fd;
        return TIDE_READY;
    }
    *res = tide__sock_new(out, cx->exec, fd);
    if (*res < 0)
        tide__sys_close(fd); /* accepted, but we cannot carry it */
    return TIDE_READY;
}

void tide__sock_free(struct tide__sock *s) {
    if (s == NULL)
        return;
    tide__fdstream_deinit(&s->fs, true);
    tide__free(s);
}

int tide__sock_into_fd(struct tide__sock *s) {
    if (s == NULL)
        return -EINVAL;
    int fd = tide__fdstream_deinit(&s->fs, false);
    tide__free(s);
    return fd >= 0 ? fd : -EBADF;
}

int tide__sock_shutdown(struct tide__sock *s, int how) {
    if (s == NULL)
        return -EINVAL;
    if (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR)
        return -EINVAL;
    int fd = tide__sock_fd(s);
    if (fd < 0)
        return fd;
    return shutdown(fd, how) == 0 ? 0 : -errno;
}

/*
 * A non-blocking connect finishes when the socket becomes writable; its
 * outcome is SO_ERROR. Readiness starts optimistic, so the first pass may
 * find the socket "writable" while the handshake is still on: no error
 * and no peer yet (ENOTCONN) means "not yet", and the readiness seen is
 * cleared before waiting for the real event.
 */
tide_poll_t tide__sock_poll_connected(struct tide__sock *s, tide_cx_t *cx,
                                      int *err) {
    for (;;) {
        if (s->fs.closed || s->fs.reg.exec == NULL) {
            *err = -EBADF;
            return TIDE_READY;
        }
        tide_fd_guard_t g;
        if (tide__fd_poll_ready(&s->fs.reg, cx, TIDE_WRITABLE, NULL, &g) ==
            TIDE_PENDING)
            return TIDE_PENDING;
        int fd = s->fs.reg.fd;
        int e = tide__sys_so_error(fd);
        if (e < 0) {
            *err = e;
            return TIDE_READY;
        }
        tide_addr_t peer;
        e = tide__sys_peer_addr(fd, &peer);
        if (e == 0) {
            *err = 0;
            return TIDE_READY;
        }
        if (e != -ENOTCONN) {
            *err = e;
            return TIDE_READY;
        }
        tide__fd_clear(&s->fs.reg, g.tick, TIDE_WRITABLE);
    }
}
