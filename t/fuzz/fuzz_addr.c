/*
 * t/fuzz/fuzz_addr.c: the address parser (tide_addr_parse), the formatter
 * and the "host:port" splitter used by tide_tcp_connect.
 *
 * Invariants checked on every input: no crash or sanitizer report; a
 * parse that fails leaves *out empty (len 0); a parse that succeeds gives
 * an INET, INET6 or UNIX address that formats into TIDE_ADDR_STRLEN and
 * parses back to the same bytes; the splitter's host fits its buffer and
 * is NUL-terminated.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <tide.h>
#include <tide/net.h>

#include "net/internal.h" /* tide__addr_split */

#define FAIL(...)                                                              \
    do {                                                                       \
        fprintf(stderr, "fuzz_addr: " __VA_ARGS__);                            \
        fprintf(stderr, "\n");                                                 \
        abort();                                                               \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 4096)
        return 0;
    char *text = malloc(size + 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';

    tide_addr_t a;
    memset(&a, 0xa5, sizeof a);
    int rc = tide_addr_parse(&a, text);
    if (rc < 0) {
        if (rc != TIDE_EADDR && rc != -ENAMETOOLONG)
            FAIL("parse(\"%s\") = %d, not a documented error", text, rc);
        if (a.len != 0)
            FAIL("failed parse left len %u", (unsigned)a.len);
    } else {
        if (rc != 0)
            FAIL("parse returned %d", rc);
        int fam = tide_addr_family(&a);
        if (fam != AF_INET && fam != AF_INET6 && fam != AF_UNIX)
            FAIL("family %d", fam);
        if (a.len == 0 || a.len > sizeof a.ss)
            FAIL("len %u", (unsigned)a.len);
        char buf[TIDE_ADDR_STRLEN];
        int n = tide_addr_format(&a, buf, sizeof buf);
        if (n < 0 || (size_t)n != strlen(buf))
            FAIL("format of \"%s\" = %d", text, n);
        tide_addr_t b;
        if (tide_addr_parse(&b, buf) != 0)
            FAIL("\"%s\" formats as \"%s\", which does not parse", text, buf);
        if (b.len != a.len || memcmp(&a.ss, &b.ss, a.len) != 0)
            FAIL("\"%s\" -> \"%s\" does not parse back to the same address",
                 text, buf);
        /* a short buffer: -ENOSPC and a NUL-terminated prefix */
        char small[8];
        int m = tide_addr_format(&a, small, sizeof small);
        if ((n >= (int)sizeof small) != (m == -ENOSPC) ||
            strlen(small) >= sizeof small)
            FAIL("format into 8 bytes: %d for length %d", m, n);
        if (fam != AF_UNIX) {
            int port = tide_addr_port(&a);
            if (port < 0 || port > 65535 || tide_addr_set_port(&a, 1) != 0 ||
                tide_addr_port(&a) != 1)
                FAIL("port %d", port);
        } else if (tide_addr_port(&a) != -EAFNOSUPPORT) {
            FAIL("port of a unix address");
        }
    }

    char host[TIDE__HOST_MAX];
    memset(host, 'X', sizeof host);
    unsigned short port = 0;
    rc = tide__addr_split(text, host, sizeof host, &port);
    if (rc == 0) {
        size_t hl = strnlen(host, sizeof host);
        if (hl == 0 || hl == sizeof host)
            FAIL("split host length %zu", hl);
        if (strstr(text, host) == NULL)
            FAIL("split host \"%s\" not in \"%s\"", host, text);
    } else if (rc != TIDE_EADDR && rc != -ENAMETOOLONG) {
        FAIL("split(\"%s\") = %d", text, rc);
    }
    free(text);
    return 0;
}
