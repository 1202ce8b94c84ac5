/*
 * samples/echo-client/echo-client.c: a client for echo servers, written
 * with tide. It connects (host:port, with name lookup, or unix:PATH),
 * sends messages, checks that each one comes back byte for byte, and
 * reports round-trip latency.
 *
 *   echo-client 127.0.0.1:7000                  lines from stdin, echoed
 *                                               to stdout
 *   echo-client --bytes 1000 --count 10000 localhost:7000
 *                                               a generated payload
 *
 * Each round trip writes and reads at once (tide_join_all of a write_all
 * and a read_exact): a message larger than the socket buffers would
 * otherwise deadlock, the server blocking on its write back while we block
 * on ours.
 *
 * Exit status: 0 if every message came back intact, 1 on a mismatch or an
 * error, 2 for a bad command line.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tide.h>

typedef struct client {
    tide_exec_t *ex;
    tide_stream_t *s;
    tide_tcp_t *tcp;
    tide_unix_t *ux;
    uint64_t timeout_usec;
} client_t;

/* ------------------------------------------------------------------------
 * Connecting
 * ------------------------------------------------------------------------ */

typedef struct connect_task {
    tide_future_t fut;
    tide_async_t co;
    client_t *cl;
    const char *addr;
    union {
        tide_tcp_connect_t tcp;
        tide_unix_connect_t ux;
    } op;
    tide_timeout_t to;
} connect_task_t;

static tide_poll_t connect_poll(tide_future_t *f, tide_cx_t *cx) {
    connect_task_t *t = TIDE_CONTAINER_OF(f, connect_task_t, fut);
    TIDE_BEGIN(&t->co);
    if (strncmp(t->addr, "unix:", 5) == 0) {
        TIDE_AWAIT(&t->co, cx,
                   tide_timeout(&t->to, tide_unix_connect(&t->op.ux, t->addr),
                                t->cl->timeout_usec));
        if (tide_async_result(&t->co) == 0) {
            t->cl->ux = t->op.ux.conn;
            t->cl->s = tide_unix_stream(t->cl->ux);
        }
    } else {
        TIDE_AWAIT(&t->co, cx,
                   tide_timeout(&t->to, tide_tcp_connect(&t->op.tcp, t->addr),
                                t->cl->timeout_usec));
        if (tide_async_result(&t->co) == 0) {
            t->cl->tcp = t->op.tcp.conn;
            t->cl->s = tide_tcp_stream(t->cl->tcp);
            tide_tcp_set_nodelay(t->cl->tcp, true);
        }
    }
    TIDE_END(&t->co, f, tide_async_result(&t->co));
}

static void connect_drop(tide_future_t *f) {
    connect_task_t *t = TIDE_CONTAINER_OF(f, connect_task_t, fut);
    tide_async_drop(&t->co);
}

/* ------------------------------------------------------------------------
 * One round trip: write msg and read as many bytes back, at once.
 * ------------------------------------------------------------------------ */

typedef struct roundtrip {
    tide_future_t fut;
    tide_async_t co;
    client_t *cl;
    const unsigned char *msg;
    unsigned char *back;
    size_t len;
    tide_write_all_t wr;
    tide_read_exact_t rd;
    tide_future_t *both[2];
    tide_join_all_t all;
    tide_timeout_t to;
} roundtrip_t;

static tide_poll_t roundtrip_poll(tide_future_t *f, tide_cx_t *cx) {
    roundtrip_t *r = TIDE_CONTAINER_OF(f, roundtrip_t, fut);
    intptr_t rc = 0;
    TIDE_BEGIN(&r->co);
    r->both[0] = tide_write_all(&r->wr, r->cl->s, r->msg, r->len);
    r->both[1] = tide_read_exact(&r->rd, r->cl->s, r->back, r->len);
    TIDE_AWAIT(&r->co, cx,
               tide_timeout(&r->to, tide_join_all(&r->all, r->both, 2),
                            r->cl->timeout_usec));
    rc = tide_async_result(&r->co);
    if (rc == 0 && r->wr.fut.result < 0)
        rc = r->wr.fut.result;
    if (rc == 0 && r->rd.fut.result < 0)
        rc = r->rd.fut.result;
    if (rc == 0 && memcmp(r->msg, r->back, r->len) != 0)
        rc = -EBADMSG;
    TIDE_END(&r->co, f, rc);
}

static void roundtrip_drop(tide_future_t *f) {
    roundtrip_t *r = TIDE_CONTAINER_OF(f, roundtrip_t, fut);
    tide_async_drop(&r->co);
}

static const tide_future_vtable_t roundtrip_vt = {roundtrip_poll,
                                                  roundtrip_drop};

/* Run one round trip; returns 0 or -errno (-EBADMSG: echo differs,
 * TIDE_EEOF: the server closed). */
static int do_roundtrip(client_t *cl, const void *msg, void *back, size_t len) {
    roundtrip_t r;
    memset(&r, 0, sizeof r);
    r.cl = cl;
    r.msg = msg;
    r.back = back;
    r.len = len;
    tide_future_init(&r.fut, &roundtrip_vt);
    int rc = tide_exec_block_on(cl->ex, &r.fut);
    if (rc == 0)
        rc = (int)r.fut.result;
    tide_future_drop(&r.fut);
    return rc;
}

/* ------------------------------------------------------------------------
 * Statistics
 * ------------------------------------------------------------------------ */

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void report(uint64_t *lat, size_t n, size_t bytes, bool vary) {
    if (n == 0) {
        fprintf(stderr, "echo-client: no message sent\n");
        return;
    }
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += lat[i];
    qsort(lat, n, sizeof *lat, cmp_u64);
    size_t p99 = (n * 99 + 99) / 100; /* nearest rank */
    if (p99 > n)
        p99 = n;
    char size[48];
    if (vary)
        snprintf(size, sizeof size, "%zu bytes in all", bytes);
    else
        snprintf(size, sizeof size, "%zu bytes each", bytes / n);
    fprintf(stderr,
            "echo-client: %zu round trip%s (%s), all echoed intact; latency "
            "us: min %.1f avg %.1f p99 %.1f max %.1f\n",
            n, n == 1 ? "" : "s", size, (double)lat[0], (double)sum / (double)n,
            (double)lat[p99 - 1], (double)lat[n - 1]);
}

/* ------------------------------------------------------------------------
 * main
 * ------------------------------------------------------------------------ */

static void usage(FILE *out) {
    fprintf(
        out,
        "Usage: echo-client [--bytes N --count N] [--timeout SECS] ADDR\n"
        "Send messages to an echo server at ADDR (HOST:PORT, [IPV6]:PORT or\n"
        "unix:PATH), check each echo byte for byte, report round-trip "
        "latency.\n"
        "\n"
        "  --bytes N      send generated messages of N bytes (default: the "
        "lines\n"
        "                 of standard input, each echoed to standard output)\n"
        "  --count N      how many generated messages (default 1000 with "
        "--bytes)\n"
        "  --timeout SECS bound on connecting and on each round trip (default "
        "10)\n"
        "  --help\n");
}

static bool parse_num(const char *s, unsigned long long max,
                      unsigned long long *out) {
    char *end;
    if (s == NULL || *s < '0' || *s > '9')
        return false;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > max)
        return false;
    *out = v;
    return true;
}

static const tide_future_vtable_t connect_vt = {connect_poll, connect_drop};

int main(int argc, char **argv) {
    const char *addr = NULL;
    unsigned long long bytes = 0, count = 0, secs = 10;
    bool generated = false;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--bytes") == 0) {
            if (!parse_num(v, 1ull << 30, &bytes) || bytes == 0)
                goto bad;
            generated = true;
            i++;
        } else if (strcmp(a, "--count") == 0) {
            if (!parse_num(v, 1ull << 32, &count))
                goto bad;
            i++;
        } else if (strcmp(a, "--timeout") == 0) {
            if (!parse_num(v, 86400, &secs) || secs == 0)
                goto bad;
            i++;
        } else if (a[0] == '-' || addr != NULL) {
            goto bad;
        } else {
            addr = a;
        }
        continue;
    bad:
        fprintf(stderr, "echo-client: bad argument '%s'%s%s\n", a,
                v != NULL && a[0] == '-' ? " " : "",
                v != NULL && a[0] == '-' ? v : "");
        usage(stderr);
        return 2;
    }
    if (addr == NULL) {
        usage(stderr);
        return 2;
    }
    if (generated && count == 0)
        count = 1000;

    client_t cl;
    memset(&cl, 0, sizeof cl);
    cl.timeout_usec = secs * TIDE_USEC_PER_SEC;
    int rc = tide_exec_new(&cl.ex, NULL, 0);
    if (rc < 0) {
        fprintf(stderr, "echo-client: %s\n", tide_strerror(rc));
        return 1;
    }

    connect_task_t ct;
    memset(&ct, 0, sizeof ct);
    ct.cl = &cl;
    ct.addr = addr;
    tide_future_init(&ct.fut, &connect_vt);
    rc = tide_exec_block_on(cl.ex, &ct.fut);
    if (rc == 0)
        rc = (int)ct.fut.result;
    tide_future_drop(&ct.fut);
    if (rc < 0) {
        fprintf(stderr, "echo-client: connect to %s: %s\n", addr,
                tide_strerror(rc));
        tide_exec_free(cl.ex);
        return 1;
    }

    int status = 0;
    size_t cap = generated ? (size_t)count : 1024, n = 0, total = 0;
    uint64_t *lat = malloc(cap * sizeof *lat);
    unsigned char *msg = NULL, *back = NULL;
    char *line = NULL;
    size_t linecap = 0;
    if (generated) {
        msg = malloc(bytes);
        back = malloc(bytes);
    }
    if (lat == NULL || (generated && (msg == NULL || back == NULL))) {
        fprintf(stderr, "echo-client: out of memory\n");
        status = 1;
        goto out;
    }

    for (;;) {
        size_t len;
        const unsigned char *m;
        if (generated) {
            if (n == count)
                break;
            for (size_t k = 0; k < bytes; k++) /* differs per message */
                msg[k] = (unsigned char)(k * 31 + n * 7 + (k >> 8));
            m = msg;
            len = (size_t)bytes;
        } else {
            ssize_t got = getline(&line, &linecap, stdin);
            if (got <= 0)
                break;
            unsigned char *nb = realloc(back, (size_t)got);
            if (nb == NULL) {
                fprintf(stderr, "echo-client: out of memory\n");
                status = 1;
                break;
            }
            back = nb;
            m = (const unsigned char *)line;
            len = (size_t)got;
        }
        if (n == cap) {
            uint64_t *nl = realloc(lat, 2 * cap * sizeof *lat);
            if (nl == NULL) {
                fprintf(stderr, "echo-client: out of memory\n");
                status = 1;
                break;
            }
            lat = nl;
            cap *= 2;
        }
        uint64_t t0 = tide_now();
        rc = do_roundtrip(&cl, m, back, len);
        lat[n] = tide_now() - t0;
        if (rc < 0) {
            fprintf(stderr, "echo-client: message %zu: %s\n", n + 1,
                    rc == -EBADMSG     ? "the echo differs from what was sent"
                    : rc == TIDE_EEOF  ? "the server closed the connection"
                    : rc == -ETIMEDOUT ? "no echo in time"
                                       : tide_strerror(rc));
            status = 1;
            break;
        }
        n++;
        total += len;
        if (!generated) {
            fwrite(back, 1, len, stdout);
            fflush(stdout);
        }
    }
    if (status == 0)
        report(lat, n, total, !generated);

out:
    free(line);
    free(msg);
    free(back);
    free(lat);
    tide_tcp_free(cl.tcp);
    tide_unix_free(cl.ux);
    tide_exec_free(cl.ex);
    return status;
}
