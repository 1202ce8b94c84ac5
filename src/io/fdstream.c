/*
 * src/io/fdstream.c: any non-blocking descriptor as a stream, and
 * tide_ignore_sigpipe.
 *
 * Each operation tries the system call first (readiness starts
 * optimistic), and only on EAGAIN clears the direction's readiness through
 * the guard (so an event that arrived meanwhile is not lost) and goes back
 * to tide__fd_poll_ready, which arms the direction's event; the future
 * that called then waits on the direction's queue, which is the stream's
 * rq or wq. Any number of futures may wait on a direction.
 *
 * End of stream: a read answers 0 every time the kernel does (a socket
 * whose peer shut down its write side, a pipe whose writers are all gone)
 * and never otherwise: nothing is cached, so there is no spurious 0 and no
 * lost data if a FIFO gets a new writer.
 */
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io/internal.h"

#ifndef IOV_MAX
#define IOV_MAX 1024
#endif

static struct tide_fdstream *fs_of(tide_stream_t *s) {
    return TIDE_CONTAINER_OF(s, struct tide_fdstream, stream);
}

static bool would_block(int e) { return e == EAGAIN || e == EWOULDBLOCK; }

/* The registration is usable: not closed by us, not detached by
 * tide_exec_free. A detached registration reports every direction ready,
 * which would make an EAGAIN loop spin: refuse instead. */
static bool usable(const struct tide_fdstream *fs) {
    return !fs->closed && fs->reg.exec != NULL;
}

tide_poll_t tide__fdstream_poll_read(tide_stream_t *s, tide_cx_t *cx, void *buf,
                                     size_t len, ssize_t *out) {
    struct tide_fdstream *fs = fs_of(s);
    if (len == 0) {
        *out = 0;
        return TIDE_READY;
    }
    for (;;) {
        if (!usable(fs)) {
            *out = -EBADF;
            return TIDE_READY;
        }
        tide_fd_guard_t g;
        if (tide__fd_poll_ready(&fs->reg, cx, TIDE_READABLE, NULL, &g) ==
            TIDE_PENDING)
            return TIDE_PENDING;
        if (!usable(fs))
            continue;
        ssize_t n = fs->is_socket ? recv(fs->reg.fd, buf, len, 0)
                                  : read(fs->reg.fd, buf, len);
        if (n > 0) {
            /* A short read says "drained, as far as we know": clearing
             * here saves the EAGAIN call. Nothing is lost if something is
             * left (a Unix stream stops short at a message carrying
             * descriptors; a TCP peer's reset may sit behind its last
             * data; a pipe's hang-up behind its last bytes): the read
             * event is level-triggered (reactor/fd.c), so it reports what
             * is still there at the next poll of the backend. */
            if ((size_t)n < len)
                tide__fd_clear(&fs->reg, g.tick, TIDE_READABLE);
            *out = n;
            return TIDE_READY;
        }
        if (n == 0) {
            fs->eof_seen = true;
            *out = 0;
            return TIDE_READY;
        }
        if (errno == EINTR)
            continue;
        if (would_block(errno)) {
            tide__fd_clear(&fs->reg, g.tick, TIDE_READABLE);
            continue;
        }
        *out = -errno;
        return TIDE_READY;
    }
}

/* A write failed with e: EPIPE is final for the write direction (record
 * it so that nobody waits for writability that will never come). */
static ssize_t write_error(struct tide_fdstream *fs, int e) {
    if (e == EPIPE)
        tide__fd_set_closed(&fs->reg, TIDE_WRITE_CLOSED);
    return -e;
}

tide_poll_t tide__fdstream_poll_write(tide_stream_t *s, tide_cx_t *cx,
                                      const void *buf, size_t len,
                                      ssize_t *out) {
    struct tide_fdstream *fs = fs_of(s);
    if (len == 0) {
        *out = 0;
        return TIDE_READY;
    }
    for (;;) {
        if (!usable(fs)) {
            *out = fs->closed ? -EPIPE : -EBADF;
            return TIDE_READY;
        }
        tide_fd_guard_t g;
        if (tide__fd_poll_ready(&fs->reg, cx, TIDE_WRITABLE, NULL, &g) ==
            TIDE_PENDING)
            return TIDE_PENDING;
        if (!usable(fs))
            continue;
        ssize_t n = fs->is_socket ? send(fs->reg.fd, buf, len, MSG_NOSIGNAL)
                                  : write(fs->reg.fd, buf, len);
        if (n >= 0) {
            *out = n;
            return TIDE_READY;
        }
        if (errno == EINTR)
            continue;
        if (would_block(errno)) {
            tide__fd_clear(&fs->reg, g.tick, TIDE_WRITABLE);
            continue;
        }
        *out = write_error(fs, errno);
        return TIDE_READY;
    }
}

tide_poll_t tide__fdstream_poll_writev(tide_stream_t *s, tide_cx_t *cx,
                                       const struct iovec *iov, int iovcnt,
                                       ssize_t *out) {
    struct tide_fdstream *fs = fs_of(s);
    if (iovcnt <= 0) {
        *out = iovcnt < 0 ? -EINVAL : 0;
        return TIDE_READY;
    }
    if (iovcnt > IOV_MAX)
        iovcnt = IOV_MAX; /* a short write, which callers handle anyway */
    for (;;) {
        if (!usable(fs)) {
            *out = fs->closed ? -EPIPE : -EBADF;
            return TIDE_READY;
        }
        tide_fd_guard_t g;
        if (tide__fd_poll_ready(&fs->reg, cx, TIDE_WRITABLE, NULL, &g) ==
            TIDE_PENDING)
            return TIDE_PENDING;
        if (!usable(fs))
            continue;
        ssize_t n;
        if (fs->is_socket) {
            struct msghdr msg;
            memset(&msg, 0, sizeof msg);
            msg.msg_iov = (struct iovec *)(uintptr_t)iov;
            msg.msg_iovlen = (size_t)iovcnt;
            n = sendmsg(fs->reg.fd, &msg, MSG_NOSIGNAL);
        } else {
            n = writev(fs->reg.fd, iov, iovcnt);
        }
        if (n >= 0) {
            *out = n;
            return TIDE_READY;
        }
        if (errno == EINTR)
            continue;
        if (would_block(errno)) {
            tide__fd_clear(&fs->reg, g.tick, TIDE_WRITABLE);
            continue;
        }
        *out = write_error(fs, errno);
        return TIDE_READY;
    }
}

/* Shutting down the write side never waits: nothing is buffered here. */
tide_poll_t tide__fdstream_poll_shutdown(tide_stream_t *s, tide_cx_t *cx,
                                         int *out) {
    struct tide_fdstream *fs = fs_of(s);
    if (fs->closed) {
        *out = 0; /* the write end was closed by an earlier shutdown */
        return TIDE_READY;
    }
    if (fs->reg.exec == NULL) {
        *out = -EBADF;
        return TIDE_READY;
    }
    int fd = fs->reg.fd;
    if (fs->is_socket) {
        *out = shutdown(fd, SHUT_WR) == 0 ? 0 : -errno;
        return TIDE_READY;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0) {
        *out = -errno;
        return TIDE_READY;
    }
    switch (fl & O_ACCMODE) {
    case O_WRONLY:
        /* A pipe's write end: the only way to send EOF is to close it.
         * Deregister first (the table is indexed by descriptor number,
         * which the kernel may hand out again right after close). */
        tide__fdstream_deinit(fs, true);
        *out = 0;
        break;
    case O_RDONLY:
        *out = -EBADF; /* no write side */
        break;
    default:
        /* A tty, a FIFO opened read-write, a character device: one
         * descriptor carries both directions and cannot be half closed. */
        *out = -ENOTSUP;
        break;
    }
    return TIDE_READY;
}

const tide_stream_vt_t tide__fdstream_vt = {
    .poll_read = tide__fdstream_poll_read,
    .poll_write = tide__fdstream_poll_write,
    .poll_writev = tide__fdstream_poll_writev,
    .poll_flush = NULL, /* nothing is buffered */
    .poll_shutdown = tide__fdstream_poll_shutdown,
};

int tide__fdstream_init(struct tide_fdstream *s, tide_exec_t *ex, int fd) {
    if (s == NULL)
        return -EINVAL;
    int rc = tide__fd_init(&s->reg, ex, fd);
    if (rc < 0)
        return rc;
    s->reg.embedded = true;
    tide_stream_init(&s->stream, &tide__fdstream_vt,
                     tide__fd_q(&s->reg, TIDE_READABLE),
                     tide__fd_q(&s->reg, TIDE_WRITABLE));
    s->eof_seen = false;
    s->closed = false;
    int type;
    socklen_t tl = sizeof type;
    /* send(MSG_NOSIGNAL) for a socket: a write to a peer that is gone is
     * then -EPIPE, not SIGPIPE. */
    s->is_socket = getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0;
    return 0;
}

int tide__fdstream_deinit(struct tide_fdstream *s, bool close_fd) {
    if (s->closed)
        return -1;
    int fd = s->reg.fd;
    tide__fd_deinit(&s->reg);
    s->closed = true;
    s->reg.fd = -1;
    if (close_fd) {
        close(fd); /* EINTR: the descriptor is gone anyway on Linux */
        return -1;
    }
    return fd;
}

int tide_fdstream_new(tide_fdstream_t **out, tide_exec_t *exec, int fd) {
    if (out == NULL)
        return -EINVAL;
    struct tide_fdstream *s = tide__malloc(sizeof *s);
    if (s == NULL)
        return -ENOMEM;
    int rc = tide__fdstream_init(s, exec, fd);
    if (rc < 0) {
        tide__free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void tide_fdstream_free(tide_fdstream_t *s) {
    if (s == NULL)
        return;
    tide__fdstream_deinit(s, true);
    tide__free(s);
}

tide_stream_t *tide_fdstream_stream(tide_fdstream_t *s) { return &s->stream; }

tide_fd_t *tide_fdstream_fd(tide_fdstream_t *s) { return &s->reg; }

int tide_ignore_sigpipe(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    return sigaction(SIGPIPE, &sa, NULL) == 0 ? 0 : -errno;
}
