/*
 * src/net/addr.c: addresses as text and back, without name lookups.
 *
 * The grammar is deliberately narrow (what people write on a command
 * line): IPv4 must be a full dotted quad (inet_pton, not inet_aton's
 * "127.1"), IPv6 must be bracketed so the port cannot be mistaken for a
 * group, and the port is plain decimal. Anything else is TIDE_EADDR, so a
 * host name handed to a numeric-only function fails loudly instead of
 * being looked up behind the caller's back.
 */
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "net/internal.h"

#define UNIX_PREFIX "unix:"
#define UNIX_PREFIX_LEN (sizeof UNIX_PREFIX - 1)

/* A decimal port, 0..65535, the whole of s. */
static int parse_port(const char *s, unsigned short *out) {
    unsigned v = 0;
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        if (s[n] < '0' || s[n] > '9' || n >= 5)
            return TIDE_EADDR;
        v = v * 10 + (unsigned)(s[n] - '0');
    }
    if (n == 0 || v > 65535)
        return TIDE_EADDR;
    *out = (unsigned short)v;
    return 0;
}

int tide__addr_unix(tide_addr_t *out, const char *path) {
    if (out == NULL || path == NULL)
        return -EINVAL;
    if (strncmp(path, UNIX_PREFIX, UNIX_PREFIX_LEN) == 0)
        path += UNIX_PREFIX_LEN;
    size_t n = strlen(path);
    if (n == 0 || (path[0] == '@' && n == 1))
        return TIDE_EADDR;
    struct sockaddr_un *un = (struct sockaddr_un *)(void *)&out->ss;
    memset(out, 0, sizeof *out);
    un->sun_family = AF_UNIX;
    if (path[0] == '@') {
        /* Abstract: a NUL, then the name; the length delimits it. */
        if (n > sizeof un->sun_path)
            return -ENAMETOOLONG;
        memcpy(un->sun_path + 1, path + 1, n - 1);
        out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    } else {
        if (n >= sizeof un->sun_path)
            return -ENAMETOOLONG;
        memcpy(un->sun_path, path, n);
        out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    }
    return 0;
}

/* "[v6%scope]:port", text at the '['. */
static int parse_v6(tide_addr_t *out, const char *text) {
    const char *close = strchr(text, ']');
    if (close == NULL || close[1] != ':')
        return TIDE_EADDR;
    char host[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
    size_t hl = (size_t)(close - text - 1);
    if (hl == 0 || hl >= sizeof host)
        return TIDE_EADDR;
    memcpy(host, text + 1, hl);
    host[hl] = '\0';
    unsigned scope = 0;
    char *pct = strchr(host, '%');
    if (pct != NULL) {
        *pct++ = '\0';
        if (*pct == '\0')
            return TIDE_EADDR;
        char *end;
        unsigned long v = strtoul(pct, &end, 10);
        if (*end == '\0' && pct[0] >= '0' && pct[0] <= '9' && v <= UINT32_MAX)
            scope = (unsigned)v;
        else if ((scope = if_nametoindex(pct)) == 0)
            return TIDE_EADDR;
    }
    unsigned short port;
    int rc = parse_port(close + 2, &port);
    if (rc < 0)
        return rc;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)(void *)&out->ss;
    memset(out, 0, sizeof *out);
    if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
        return TIDE_EADDR;
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(port);
    s6->sin6_scope_id = scope;
    out->len = sizeof *s6;
    return 0;
}

static int parse_v4(tide_addr_t *out, const char *text) {
    const char *colon = strrchr(text, ':');
    if (colon == NULL)
        return TIDE_EADDR;
    char host[INET_ADDRSTRLEN];
    size_t hl = (size_t)(colon - text);
    if (hl == 0 || hl >= sizeof host)
        return TIDE_EADDR;
    memcpy(host, text, hl);
    host[hl] = '\0';
    unsigned short port;
    int rc = parse_port(colon + 1, &port);
    if (rc < 0)
        return rc;
    struct sockaddr_in *s4 = (struct sockaddr_in *)(void *)&out->ss;
    memset(out, 0, sizeof *out);
    if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
        return TIDE_EADDR;
    s4->sin_family = AF_INET;
    s4->sin_port = htons(port);
    out->len = sizeof *s4;
    return 0;
}

int tide_addr_parse(tide_addr_t *out, const char *text) {
    if (out == NULL || text == NULL)
        return -EINVAL;
    int rc;
    if (strncmp(text, UNIX_PREFIX, UNIX_PREFIX_LEN) == 0)
        rc = tide__addr_unix(out, text);
    else if (text[0] == '[')
        rc = parse_v6(out, text);
    else
        rc = parse_v4(out, text);
    if (rc < 0)
        memset(out, 0, sizeof *out);
    return rc;
}

int tide__addr_split(const char *text, char *host, size_t hostsize,
                     unsigned short *port) {
    if (text == NULL)
        return -EINVAL;
    const char *h = text, *colon;
    size_t hl;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL || close[1] != ':')
            return TIDE_EADDR;
        h = text + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strchr(text, ':');
        if (colon == NULL || strchr(colon + 1, ':') != NULL)
            return TIDE_EADDR; /* an unbracketed IPv6 address, or junk */
        hl = (size_t)(colon - text);
    }
    if (hl == 0)
        return TIDE_EADDR;
    if (hl >= hostsize)
        return -ENAMETOOLONG;
    int rc = parse_port(colon + 1, port);
    if (rc < 0)
        return rc;
    memcpy(host, h, hl);
    host[hl] = '\0';
    return 0;
}

/* snprintf's answer as ours: the length, or -ENOSPC when cut. */
static int fit(int n, size_t size) {
    if (n < 0)
        return -EINVAL;
    return (size_t)n >= size ? -ENOSPC : n;
}

int tide_addr_format(const tide_addr_t *a, char *buf, size_t size) {
    if (a == NULL || buf == NULL)
        return -EINVAL;
    if (size > 0)
        buf[0] = '\0';
    if (a->len == 0)
        return -EAFNOSUPPORT;
    char host[INET6_ADDRSTRLEN];
    switch (a->ss.ss_family) {
    case AF_INET: {
        const struct sockaddr_in *s4 = (const void *)&a->ss;
        inet_ntop(AF_INET, &s4->sin_addr, host, sizeof host);
        return fit(snprintf(buf, size, "%s:%u", host, ntohs(s4->sin_port)),
                   size);
    }
    case AF_INET6: {
        const struct sockaddr_in6 *s6 = (const void *)&a->ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof host);
        if (s6->sin6_scope_id == 0)
            return fit(
                snprintf(buf, size, "[%s]:%u", host, ntohs(s6->sin6_port)),
                size);
        char ifname[IF_NAMESIZE];
        if (if_indextoname(s6->sin6_scope_id, ifname) != NULL)
            return fit(snprintf(buf, size, "[%s%%%s]:%u", host, ifname,
                                ntohs(s6->sin6_port)),
                       size);
        return fit(snprintf(buf, size, "[%s%%%u]:%u", host,
                            (unsigned)s6->sin6_scope_id, ntohs(s6->sin6_port)),
                   size);
    }
    case AF_UNIX: {
        const struct sockaddr_un *un = (const void *)&a->ss;
        size_t off = offsetof(struct sockaddr_un, sun_path);
        size_t n = a->len > off ? a->len - off : 0;
        if (n > sizeof un->sun_path)
            n = sizeof un->sun_path;
        if (n == 0) /* unnamed (a socketpair's end, an unbound client) */
            return fit(snprintf(buf, size, "unix:"), size);
        if (un->sun_path[0] == '\0') /* abstract: the length delimits */
            return fit(snprintf(buf, size, "unix:@%.*s", (int)(n - 1),
                                un->sun_path + 1),
                       size);
        return fit(snprintf(buf, size, "unix:%.*s",
                            (int)strnlen(un->sun_path, n), un->sun_path),
                   size);
    }
    default:
        return -EAFNOSUPPORT;
    }
}

int tide_addr_from_sockaddr(tide_addr_t *out, const struct sockaddr *sa,
                            socklen_t len) {
    if (out == NULL || sa == NULL || len > sizeof out->ss)
        return -EINVAL;
    if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6 &&
        sa->sa_family != AF_UNIX)
        return -EAFNOSUPPORT;
    memset(out, 0, sizeof *out);
    memcpy(&out->ss, sa, len);
    out->len = len;
    return 0;
}

int tide_addr_family(const tide_addr_t *a) {
    return a == NULL || a->len == 0 ? AF_UNSPEC : a->ss.ss_family;
}

int tide_addr_port(const tide_addr_t *a) {
    switch (tide_addr_family(a)) {
    case AF_INET:
        return ntohs(
            ((const struct sockaddr_in *)(const void *)&a->ss)->sin_port);
    case AF_INET6:
        return ntohs(
            ((const struct sockaddr_in6 *)(const void *)&a->ss)->sin6_port);
    default:
        return -EAFNOSUPPORT;
    }
}

int tide_addr_set_port(tide_addr_t *a, unsigned port) {
    if (port > 65535)
        return -EINVAL;
    switch (tide_addr_family(a)) {
    case AF_INET:
        ((struct sockaddr_in *)(void *)&a->ss)->sin_port =
            htons((uint16_t)port);
        return 0;
    case AF_INET6:
        ((struct sockaddr_in6 *)(void *)&a->ss)->sin6_port =
            htons((uint16_t)port);
        return 0;
    default:
        return -EAFNOSUPPORT;
    }
}
