/*
 * samples/copy-bench/copy-bench.c: how fast tide_copy moves bytes from one
 * socket to another, next to the plain blocking read/write loop doing the
 * same job.
 *
 *   producer thread --(socket A)--> copier --(socket B)--> consumer thread
 *
 * The producer writes --bytes bytes into A and shuts it down; the consumer
 * reads B to its end and checks the count and a checksum. Only the copier
 * changes between the two runs: tide_copy awaited on an executor (A's
 * read end and B's write end non-blocking, registered with tide), or a
 * blocking loop of read(2) and write(2). Both use a buffer of --buffer
 * bytes. Each is timed from the first byte produced to the last consumed,
 * --rounds times, alternating; the best run of each is printed.
 *
 *   copy-bench [--bytes N] [--buffer N] [--rounds N] [--unix]
 *
 * Sockets are TCP over the loopback, or Unix socket pairs with --unix.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <tide.h>

typedef struct pair {
    int wr, rd; /* what is written to wr comes out of rd */
} pair_t;

static size_t opt_bytes = (size_t)256 << 20;
static size_t opt_buffer = 65536;
static unsigned opt_rounds = 3;
static bool opt_unix;

static int make_pair(pair_t *p) {
    if (opt_unix) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
            return -errno;
        p->wr = sv[0];
        p->rd = sv[1];
        return 0;
    }
    struct sockaddr_in sin;
    socklen_t len = sizeof sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (l < 0)
        return -errno;
    if (bind(l, (struct sockaddr *)&sin, sizeof sin) < 0 || listen(l, 1) < 0 ||
        getsockname(l, (struct sockaddr *)&sin, &len) < 0)
        goto fail;
    p->wr = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (p->wr < 0)
        goto fail;
    if (connect(p->wr, (struct sockaddr *)&sin, sizeof sin) < 0) {
        close(p->wr);
        goto fail;
    }
    p->rd = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    if (p->rd < 0) {
        close(p->wr);
        goto fail;
    }
    close(l);
    return 0;
fail:;
    int e = -errno;
    close(l);
    return e;
}

/* A cheap checksum, eight bytes at a time (what the consumer can afford
 * without becoming the bottleneck). */
static uint64_t sum_bytes(const unsigned char *p, size_t n, uint64_t acc) {
    uint64_t w;
    for (; n >= 8; p += 8, n -= 8) {
        memcpy(&w, p, 8);
        acc = (acc ^ w) * UINT64_C(0x100000001b3);
    }
    for (; n > 0; p++, n--)
        acc = (acc ^ *p) * UINT64_C(0x100000001b3);
    return acc;
}

/* ------------------------------------------------------------------------
 * Producer and consumer threads (blocking sockets, the same in both runs)
 * ------------------------------------------------------------------------ */

typedef struct side {
    int fd;
    size_t bytes;
    uint64_t sum;
    int err;
} side_t;

static void *producer(void *arg) {
    side_t *s = arg;
    size_t chunk = 1 << 16;
    unsigned char *buf = malloc(chunk);
    if (buf == NULL) {
        s->err = ENOMEM;
        return NULL;
    }
    s->sum = UINT64_C(0xcbf29ce484222325);
    for (size_t done = 0; done < s->bytes;) {
        size_t n = s->bytes - done < chunk ? s->bytes - done : chunk;
        for (size_t i = 0; i < n; i++)
            buf[i] = (unsigned char)((done + i) * 13 + ((done + i) >> 11));
        s->sum = sum_bytes(buf, n, s->sum);
        for (size_t off = 0; off < n;) {
            ssize_t w = send(s->fd, buf + off, n - off, MSG_NOSIGNAL);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                s->err = errno;
                free(buf);
                return NULL;
            }
            off += (size_t)w;
        }
        done += n;
    }
    shutdown(s->fd, SHUT_WR);
    free(buf);
    return NULL;
}

static void *consumer(void *arg) {
    side_t *s = arg;
    size_t chunk = 1 << 16;
    unsigned char *buf = malloc(chunk);
    if (buf == NULL) {
        s->err = ENOMEM;
        return NULL;
    }
    s->sum = UINT64_C(0xcbf29ce484222325);
    s->bytes = 0;
    /* The checksum must see the stream in the same 8-byte words as the
     * producer's, whatever sizes recv returns: keep reads aligned by
     * refilling to a multiple of 8 except at the end. */
    size_t have = 0;
    for (;;) {
        ssize_t r = recv(s->fd, buf + have, chunk - have, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            s->err = errno;
            break;
        }
        if (r == 0) {
            s->sum = sum_bytes(buf, have, s->sum);
            break;
        }
        have += (size_t)r;
        s->bytes += (size_t)r;
        /* The producer summed per 64 KiB block; do the same. */
        if (have == chunk) {
            s->sum = sum_bytes(buf, have, s->sum);
            have = 0;
        }
    }
    free(buf);
    return NULL;
}

/* ------------------------------------------------------------------------
 * The two copiers
 * ------------------------------------------------------------------------ */

static int copy_blocking(int from, int to, unsigned char *buf) {
    for (;;) {
        ssize_t r = read(from, buf, opt_buffer);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            break;
        for (ssize_t off = 0; off < r;) {
            ssize_t w = write(to, buf + off, (size_t)(r - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0)
                return -errno;
            off += w;
        }
    }
    shutdown(to, SHUT_WR);
    return 0;
}

static int copy_tide(int from, int to, unsigned char *buf) {
    tide_exec_t *ex;
    int rc = tide_exec_new(&ex, NULL, 0);
    if (rc < 0)
        return rc;
    fcntl(from, F_SETFL, fcntl(from, F_GETFL) | O_NONBLOCK);
    fcntl(to, F_SETFL, fcntl(to, F_GETFL) | O_NONBLOCK);
    /* The streams own the descriptors from here on. */
    tide_stream_t *r = NULL, *w = NULL;
    tide_tcp_t *rt = NULL, *wt = NULL;
    tide_unix_t *ru = NULL, *wu = NULL;
    if (opt_unix) {
        if ((rc = tide_unix_from_fd(&ru, ex, from)) == 0 &&
            (rc = tide_unix_from_fd(&wu, ex, to)) == 0) {
            r = tide_unix_stream(ru);
            w = tide_unix_stream(wu);
        }
    } else {
        if ((rc = tide_tcp_from_fd(&rt, ex, from)) == 0 &&
            (rc = tide_tcp_from_fd(&wt, ex, to)) == 0) {
            r = tide_tcp_stream(rt);
            w = tide_tcp_stream(wt);
        }
    }
    if (rc == 0) {
        tide_copy_t op;
        tide_future_t *f = tide_copy(&op, r, w, buf, opt_buffer);
        rc = tide_exec_block_on(ex, f);
        if (rc == 0 && f->result < 0)
            rc = (int)f->result;
        tide_future_drop(f);
        shutdown(to, SHUT_WR);
    }
    /* Hand the descriptors back: the caller closes them. */
    if (rt != NULL)
        tide_tcp_into_fd(rt);
    if (wt != NULL)
        tide_tcp_into_fd(wt);
    if (ru != NULL)
        tide_unix_into_fd(ru);
    if (wu != NULL)
        tide_unix_into_fd(wu);
    tide_exec_free(ex);
    return rc;
}

/* One timed run; returns MB/s, or a negative value on error. */
static double run(bool use_tide, unsigned char *buf) {
    pair_t a, b;
    int rc = make_pair(&a);
    if (rc < 0 || (rc = make_pair(&b)) < 0) {
        fprintf(stderr, "copy-bench: sockets: %s\n", strerror(-rc));
        return -1;
    }
    side_t prod = {a.wr, opt_bytes, 0, 0}, cons = {b.rd, 0, 0, 0};
    pthread_t tp, tc;
    uint64_t t0 = tide_now();
    pthread_create(&tc, NULL, consumer, &cons);
    pthread_create(&tp, NULL, producer, &prod);
    rc = use_tide ? copy_tide(a.rd, b.wr, buf) : copy_blocking(a.rd, b.wr, buf);
    pthread_join(tp, NULL);
    pthread_join(tc, NULL);
    uint64_t usec = tide_now() - t0;
    close(a.wr);
    close(a.rd);
    close(b.wr);
    close(b.rd);
    if (rc < 0 || prod.err != 0 || cons.err != 0) {
        fprintf(stderr, "copy-bench: %s copy failed: %s\n",
                use_tide ? "tide" : "blocking",
                rc < 0 ? tide_strerror(rc)
                       : strerror(prod.err ? prod.err : cons.err));
        return -1;
    }
    if (cons.bytes != opt_bytes || cons.sum != prod.sum) {
        fprintf(stderr, "copy-bench: %s copy delivered %zu of %zu bytes%s\n",
                use_tide ? "tide" : "blocking", cons.bytes, opt_bytes,
                cons.sum != prod.sum ? ", and they differ" : "");
        return -1;
    }
    return (double)opt_bytes / (double)(usec ? usec : 1); /* bytes/us=MB/s */
}

static bool parse_size(const char *s, size_t *out) {
    char *end;
    if (s == NULL || *s < '0' || *s > '9')
        return false;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0)
        return false;
    if (*end == 'k' || *end == 'K')
        v <<= 10, end++;
    else if (*end == 'm' || *end == 'M')
        v <<= 20, end++;
    else if (*end == 'g' || *end == 'G')
        v <<= 30, end++;
    if (*end != '\0' || v == 0 || v > (1ull << 40))
        return false;
    *out = (size_t)v;
    return true;
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        size_t n;
        if (strcmp(argv[i], "--bytes") == 0 && parse_size(v, &n)) {
            opt_bytes = n;
            i++;
        } else if (strcmp(argv[i], "--buffer") == 0 && parse_size(v, &n) &&
                   n <= (64u << 20)) {
            opt_buffer = n;
            i++;
        } else if (strcmp(argv[i], "--rounds") == 0 && parse_size(v, &n) &&
                   n <= 1000) {
            opt_rounds = (unsigned)n;
            i++;
        } else if (strcmp(argv[i], "--unix") == 0) {
            opt_unix = true;
        } else {
            fprintf(stderr,
                    "Usage: copy-bench [--bytes N] [--buffer N] [--rounds N] "
                    "[--unix]\n"
                    "  sizes take a k, M or G suffix; defaults: 256M, 64k, "
                    "3 rounds, TCP loopback\n");
            return strcmp(argv[i], "--help") == 0 ? 0 : 2;
        }
    }
    unsigned char *buf = malloc(opt_buffer);
    if (buf == NULL) {
        fprintf(stderr, "copy-bench: out of memory\n");
        return 1;
    }
    double best_tide = 0, best_block = 0;
    for (unsigned r = 0; r < opt_rounds; r++) {
        /* Alternate which goes first, so neither always gets a warm
         * cache or a cold one. */
        for (int k = 0; k < 2; k++) {
            bool use_tide = (r + (unsigned)k) % 2 == 0;
            double mbs = run(use_tide, buf);
            if (mbs < 0) {
                free(buf);
                return 1;
            }
            double *best = use_tide ? &best_tide : &best_block;
            if (mbs > *best)
                *best = mbs;
        }
    }
    free(buf);
    printf("copy-bench: %zu bytes per run over %s, %zu-byte copy buffer, "
           "best of %u\n",
           opt_bytes, opt_unix ? "Unix socket pairs" : "TCP loopback",
           opt_buffer, opt_rounds);
    printf("  %-28s %10.1f MB/s\n", "tide_copy (async)", best_tide);
    printf("  %-28s %10.1f MB/s\n", "read/write (blocking)", best_block);
    printf("  %-28s %10.2f\n", "ratio tide / blocking",
           best_block > 0 ? best_tide / best_block : 0.0);
    return 0;
}
