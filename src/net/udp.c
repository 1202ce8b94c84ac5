/*
 * src/net/udp.c: UDP sockets: a datagram socket of the INET families.
 */
#include "net/internal.h"

struct tide_udp {
    struct tide__dgram d;
};

static bool is_inet(const tide_addr_t *a) {
    int f = tide_addr_family(a);
    return f == AF_INET || f == AF_INET6;
}

int tide_udp_bind_addr(tide_udp_t **out, tide_exec_t *ex,
                       const tide_addr_t *addr, unsigned flags) {
    if (out == NULL || ex == NULL || addr == NULL ||
        (flags & ~(unsigned)(TIDE_NET_REUSEPORT | TIDE_NET_V6ONLY)))
        return -EINVAL;
    if (!is_inet(addr))
        return TIDE_EADDR;
    struct tide__dgram *d;
    int rc = tide__dgram_new(&d, ex, addr->ss.ss_family, addr, flags);
    if (rc < 0)
        return rc;
    *out = (tide_udp_t *)d;
    return 0;
}

int tide_udp_bind(tide_udp_t **out, tide_exec_t *ex, const char *addr,
                  unsigned flags) {
    tide_addr_t a;
    int rc = tide_addr_parse(&a, addr);
    if (rc < 0)
        return rc;
    return tide_udp_bind_addr(out, ex, &a, flags);
}

int tide_udp_connect(tide_udp_t *u, const char *addr) {
    if (u == NULL)
        return -EINVAL;
    tide_addr_t a;
    int rc = tide_addr_parse(&a, addr);
    if (rc < 0)
        return rc;
    if (!is_inet(&a))
        return TIDE_EADDR;
    /* No handshake: connecting a datagram socket is immediate, and may be
     * repeated, so an interrupted one (EINTR, reported as EINPROGRESS) is
     * simply made again. */
    do
        rc = tide__sys_connect(u->d.reg.fd, &a);
    while (rc == -EINPROGRESS);
    return rc;
}

tide_future_t *tide_udp_send_to(tide_dgram_send_t *op, tide_udp_t *u,
                                const void *buf, size_t len,
                                const tide_addr_t *to) {
    return tide__dgram_send(op, u != NULL ? &u->d : NULL, buf, len, to);
}

tide_future_t *tide_udp_send(tide_dgram_send_t *op, tide_udp_t *u,
                             const void *buf, size_t len) {
    return tide__dgram_send(op, u != NULL ? &u->d : NULL, buf, len, NULL);
}

tide_future_t *tide_udp_recv_from(tide_dgram_recv_t *op, tide_udp_t *u,
                                  void *buf, size_t len) {
    return tide__dgram_recv(op, u != NULL ? &u->d : NULL, buf, len);
}

tide_future_t *tide_udp_recv(tide_dgram_recv_t *op, tide_udp_t *u, void *buf,
                             size_t len) {
    return tide__dgram_recv(op, u != NULL ? &u->d : NULL, buf, len);
}

int tide_udp_local_addr(const tide_udp_t *u, tide_addr_t *out) {
    if (u == NULL)
        return -EINVAL;
    return tide__sys_local_addr(u->d.reg.fd, out);
}

int tide_udp_peer_addr(const tide_udp_t *u, tide_addr_t *out) {
    if (u == NULL)
        return -EINVAL;
    return tide__sys_peer_addr(u->d.reg.fd, out);
}

tide_fd_t *tide_udp_fd(tide_udp_t *u) { return &u->d.reg; }

void tide_udp_free(tide_udp_t *u) {
    if (u != NULL)
        tide__dgram_free(&u->d);
}
