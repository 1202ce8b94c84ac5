/*
 * src/net/sys.c: the socket system calls, in one place: every descriptor
 * is created non-blocking and close-on-exec in the same call (no window in
 * which a fork+exec elsewhere inherits it), EINTR is handled where it can
 * happen, and errors come back as -errno.
 */
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "net/internal.h"

int tide__sys_socket(int family, int type) {
    int fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    return fd < 0 ? -errno : fd;
}

int tide__sys_setopt(int fd, int level, int name, int value) {
    return setsockopt(fd, level, name, &value, sizeof value) == 0 ? 0 : -errno;
}

int tide__sys_bind(int fd, const tide_addr_t *addr, unsigned flags,
                   bool reuseaddr) {
    int family = addr->ss.ss_family;
    int rc;
    if (family == AF_INET || family == AF_INET6) {
        if (reuseaddr &&
            (rc = tide__sys_setopt(fd, SOL_SOCKET, SO_REUSEADDR, 1)) < 0)
            return rc;
        if (family == AF_INET6 && (flags & TIDE_NET_V6ONLY) &&
            (rc = tide__sys_setopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1)) < 0)
            return rc;
    }
    if (flags & TIDE_NET_REUSEPORT) {
#ifdef SO_REUSEPORT
        if ((rc = tide__sys_setopt(fd, SOL_SOCKET, SO_REUSEPORT, 1)) < 0)
            return rc;
#else
        return -ENOTSUP;
#endif
    }
    if (bind(fd, tide_addr_sockaddr(addr), addr->len) != 0)
        return -errno;
    return 0;
}

int tide__sys_accept(int lfd, tide_addr_t *peer) {
    for (;;) {
        peer->len = sizeof peer->ss;
        int fd = accept4(lfd, (struct sockaddr *)&peer->ss, &peer->len,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            if (peer->len > sizeof peer->ss)
                peer->len = sizeof peer->ss;
            return fd;
        }
        if (errno != EINTR)
            return -errno;
    }
}

int tide__sys_connect(int fd, const tide_addr_t *addr) {
    if (connect(fd, tide_addr_sockaddr(addr), addr->len) == 0)
        return 0;
    /* An interrupted connect goes on asynchronously; calling connect again
     * would answer EALREADY. Wait for writability as for EINPROGRESS. */
    if (errno == EINTR)
        return -EINPROGRESS;
    return -errno;
}

int tide__sys_so_error(int fd) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        return -errno;
    return -err;
}

int tide__sys_local_addr(int fd, tide_addr_t *out) {
    if (out == NULL)
        return -EINVAL;
    if (fd < 0)
        return -EBADF;
    out->len = sizeof out->ss;
    if (getsockname(fd, (struct sockaddr *)&out->ss, &out->len) != 0) {
        out->len = 0;
        return -errno;
    }
    return 0;
}

int tide__sys_peer_addr(int fd, tide_addr_t *out) {
    if (out == NULL)
        return -EINVAL;
    if (fd < 0)
        return -EBADF;
    out->len = sizeof out->ss;
    if (getpeername(fd, (struct sockaddr *)&out->ss, &out->len) != 0) {
        out->len = 0;
        return -errno;
    }
    return 0;
}

int tide__sys_check_stream(int fd, int fam_a, int fam_b) {
    if (fd < 0)
        return -EBADF;
    /* getsockname answers ENOTSOCK for anything but a socket, and gives
     * the family of any socket, bound or not (an unnamed Unix socket is
     * just its family). */
    tide_addr_t a;
    int rc = tide__sys_local_addr(fd, &a);
    if (rc < 0)
        return rc;
    if (a.len < sizeof a.ss.ss_family ||
        (a.ss.ss_family != fam_a && a.ss.ss_family != fam_b))
        return -EAFNOSUPPORT;
    int type = 0;
    socklen_t len = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0)
        return -errno;
    if (type != SOCK_STREAM)
        return -EPROTOTYPE; /* UDP, a Unix datagram or seqpacket socket */
    tide_addr_t peer;
    return tide__sys_peer_addr(fd, &peer); /* -ENOTCONN */
}

int tide__sys_check_listener(int fd) {
    if (fd < 0 || fcntl(fd, F_GETFD) < 0)
        return -EBADF;
    tide_addr_t a;
    int rc = tide__sys_local_addr(fd, &a); /* -ENOTSOCK */
    if (rc < 0)
        return rc;
    int family = a.len >= sizeof a.ss.ss_family ? a.ss.ss_family : AF_UNSPEC;
    if (family != AF_INET && family != AF_INET6 && family != AF_UNIX)
        return -EAFNOSUPPORT;
    int type = 0, acc = 0;
    socklen_t len = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0)
        return -errno;
    if (type != SOCK_STREAM)
        return -EPROTOTYPE;
    /* SO_ACCEPTCONN (Linux since 2.6.32, the BSDs): listen(2) was called.
     * An unlistened socket would answer accept with EINVAL at the first
     * connection; say it now. */
    len = sizeof acc;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) != 0)
        return -errno;
    return acc ? family : -EINVAL;
}

int tide__sys_unix_unlink_stale(const tide_addr_t *addr, unsigned flags) {
    const struct sockaddr_un *un = (const void *)&addr->ss;
    if (!(flags & TIDE_NET_UNLINK) || un->sun_path[0] == '\0')
        return 0; /* not asked, or abstract (no file) */
    struct stat st;
    if (lstat(un->sun_path, &st) != 0)
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISSOCK(st.st_mode))
        return 0; /* not ours to remove; bind reports EADDRINUSE */
    if (unlink(un->sun_path) != 0 && errno != ENOENT)
        return -errno;
    return 0;
}

void tide__sys_close(int fd) {
    if (fd >= 0)
        close(fd);
}
