/*
 * src/net/dgram.c: datagram sockets (UDP and Unix datagrams share this):
 * the socket object and the send / receive futures.
 *
 * Each future waits with its own waiter node, so any number of tasks may
 * send and receive on one socket at once (datagrams are whole, so sharing
 * a socket among tasks makes sense, unlike a byte stream). The system call
 * is made in the poll that completes the future and nowhere else, which is
 * what makes both futures cancel safe.
 */
#include <string.h>

#include "net/internal.h"

int tide__dgram_new(struct tide__dgram **out, tide_exec_t *ex, int family,
                    const tide_addr_t *addr, unsigned flags) {
    if (out == NULL || ex == NULL)
        return -EINVAL;
    int rc;
    struct tide__dgram *d = tide__malloc(sizeof *d);
    if (d == NULL)
        return -ENOMEM;
    int fd = tide__sys_socket(family, SOCK_DGRAM);
    if (fd < 0) {
        rc = fd;
        goto fail_alloc;
    }
    if (addr != NULL) {
        if (family == AF_UNIX &&
            (rc = tide__sys_unix_unlink_stale(addr, flags)) < 0)
            goto fail_fd;
        if ((rc = tide__sys_bind(fd, addr, flags, false)) < 0)
            goto fail_fd;
    }
    if ((rc = tide__fd_init(&d->reg, ex, fd)) < 0)
        goto fail_fd;
    d->reg.embedded = true;
    tide_waitq_init(&d->retryq, NULL);
    d->delay = 0;
    d->armed = false;
    *out = d;
    return 0;

fail_fd:
    tide__sys_close(fd);
fail_alloc:
    tide__free(d);
    return rc;
}

void tide__dgram_free(struct tide__dgram *d) {
    if (d == NULL)
        return;
    int fd = d->reg.fd;
    if (d->armed)
        tide_future_drop(&d->retry.fut);
    tide_waitq_close(&d->retryq, -EBADF);
    tide__fd_deinit(&d->reg);
    tide__sys_close(fd);
    tide__free(d);
}

/* ------------------------------------------------------------------------
 * Send
 * ------------------------------------------------------------------------ */

/*
 * An unconnected Unix datagram socket whose receiver's queue is full: the
 * kernel answers EAGAIN but reports the sending socket writable all the
 * same (it has no peer to wait on), so waiting for writability would spin
 * level-triggered. Such a send never waits for writability: it tries, and
 * after EAGAIN it retries on a timer, 1 ms doubling
 * to 100 ms, as a Unix connect against a full backlog does
 * (tide__backoff_next), and back to 1 ms once a send goes through.
 *
 * The timer is the socket's: every send that met EAGAIN waits on its
 * retry queue, and whichever of them polls the timer last is the one its
 * waker wakes; that sender wakes the others when the timer fires. A
 * sender dropped while waiting stops the timer (it may hold the sender's
 * waker) and wakes the others, which try again. The timer costs the
 * socket 56 bytes, and a send future nothing.
 */
static bool waits_on_timer(const tide_dgram_send_t *op) {
    return op->to != NULL && op->to->ss.ss_family == AF_UNIX;
}

static tide_poll_t send_poll(tide_future_t *f, tide_cx_t *cx) {
    tide_dgram_send_t *op = TIDE_CONTAINER_OF(f, tide_dgram_send_t, fut);
    struct tide__dgram *d = op->d;
    for (;;) {
        if (tide_waiter_error(&op->node) || d == NULL || d->reg.exec == NULL) {
            f->result = -EBADF;
            return TIDE_READY;
        }
        struct tide_fd *reg = &d->reg;
        tide_fd_guard_t g = {reg, TIDE_WRITABLE, reg->tick};
        if (waits_on_timer(op)) {
            /* never on the write queue (see above): on the retry queue
             * while the timer runs */
            if (d->armed) {
                if (tide_future_poll(&d->retry.fut, cx) == TIDE_PENDING) {
                    tide_waiter_wait(&op->node, &d->retryq, cx->waker);
                    return TIDE_PENDING;
                }
                tide_future_drop(&d->retry.fut);
                d->armed = false;
                tide_waiter_leave(&op->node, TIDE_WAITQ_DONE);
                tide_waitq_wake_all(&d->retryq); /* the others try too */
            } else {
                tide_waiter_leave(&op->node, TIDE_WAITQ_DONE);
            }
        } else if (tide__fd_poll_ready(reg, cx, TIDE_WRITABLE, &op->node, &g) ==
                   TIDE_PENDING) {
            return TIDE_PENDING;
        }
        ssize_t n = sendto(reg->fd, op->buf, op->len, MSG_NOSIGNAL,
                           op->to != NULL ? tide_addr_sockaddr(op->to) : NULL,
                           op->to != NULL ? op->to->len : 0);
        if (n >= 0) {
            if (waits_on_timer(op))
                d->delay = 0;
            f->result = n;
            return TIDE_READY;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (waits_on_timer(op)) {
                if (!d->armed) {
                    d->delay = (uint32_t)tide__backoff_next(
                        d->delay, TIDE__UNIX_RETRY_MAX_USEC);
                    tide_sleep(&d->retry, d->delay);
                    d->armed = true;
                }
                continue;
            }
            tide__fd_clear(reg, g.tick, TIDE_WRITABLE);
            continue;
        }
        f->result = -errno;
        return TIDE_READY;
    }
}

static void send_drop(tide_future_t *f) {
    tide_dgram_send_t *op = TIDE_CONTAINER_OF(f, tide_dgram_send_t, fut);
    struct tide__dgram *d = op->d;
    bool retrying = waits_on_timer(op) && tide_waiter_is_waiting(&op->node);
    tide_waiter_leave(&op->node, TIDE_WAITQ_CANCELLED);
    /* The timer may hold our waker: stop it, and let the others (if any)
     * try again at once; the first to meet EAGAIN starts it anew. */
    if (retrying && d->armed) {
        tide_future_drop(&d->retry.fut);
        d->armed = false;
        tide_waitq_wake_all(&d->retryq);
    }
}

static const tide_future_vtable_t send_vt = {send_poll, send_drop};

tide_future_t *tide__dgram_send(tide_dgram_send_t *op, struct tide__dgram *d,
                                const void *buf, size_t len,
                                const tide_addr_t *to) {
    tide_waiter_init(&op->node);
    op->d = d;
    op->buf = buf;
    op->len = len;
    op->to = to != NULL && to->len != 0 ? to : NULL;
    return tide_future_init(&op->fut, &send_vt);
}

/* ------------------------------------------------------------------------
 * Receive
 * ------------------------------------------------------------------------ */

static tide_poll_t recv_poll(tide_future_t *f, tide_cx_t *cx) {
    tide_dgram_recv_t *op = TIDE_CONTAINER_OF(f, tide_dgram_recv_t, fut);
    for (;;) {
        struct tide_fd *reg = op->reg;
        if (tide_waiter_error(&op->node) || reg == NULL || reg->exec == NULL) {
            f->result = -EBADF;
            return TIDE_READY;
        }
        tide_fd_guard_t g;
        if (tide__fd_poll_ready(reg, cx, TIDE_READABLE, &op->node, &g) ==
            TIDE_PENDING)
            return TIDE_PENDING;
        struct iovec iov = {op->buf, op->len};
        struct msghdr msg;
        memset(&msg, 0, sizeof msg);
        msg.msg_name = &op->peer.ss;
        msg.msg_namelen = sizeof op->peer.ss;
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        ssize_t n = recvmsg(reg->fd, &msg, 0);
        if (n >= 0) {
            op->peer.len = msg.msg_namelen;
            op->truncated = (msg.msg_flags & MSG_TRUNC) != 0;
            f->result = n;
            return TIDE_READY;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            tide__fd_clear(reg, g.tick, TIDE_READABLE);
            continue;
        }
        f->result = -errno;
        return TIDE_READY;
    }
}

static void recv_drop(tide_future_t *f) {
    tide_dgram_recv_t *op = TIDE_CONTAINER_OF(f, tide_dgram_recv_t, fut);
    tide_waiter_leave(&op->node, TIDE_WAITQ_CANCELLED);
}

static const tide_future_vtable_t recv_vt = {recv_poll, recv_drop};

tide_future_t *tide__dgram_recv(tide_dgram_recv_t *op, struct tide__dgram *d,
                                void *buf, size_t len) {
    tide_waiter_init(&op->node);
    op->reg = d != NULL ? &d->reg : NULL;
    memset(&op->peer, 0, sizeof op->peer);
    op->truncated = false;
    op->buf = buf;
    op->len = len;
    return tide_future_init(&op->fut, &recv_vt);
}
