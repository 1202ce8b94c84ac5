/*
 * samples/echod/log.c: tide-echod's log: one line each, "echod: " first,
 * on stderr or in --log-file (appended to, reopened on SIGHUP).
 *
 * Logging never blocks an event loop. A line is formatted by the thread
 * that logs it and copied into a ring of LOG_RING bytes under a mutex
 * that nobody holds across a system call; one writer thread of the log's
 * own takes the lines out and write(2)s them, blocking as long as the
 * reader of the log (a terminal, a pipe, a disk) makes it. When the ring
 * is full the line is dropped and counted: the count is in the counters'
 * line (SIGUSR1), and a line "N log line(s) dropped" goes into the log as
 * soon as there is room again, where the lines went missing.
 *
 * Why a thread rather than a non-blocking descriptor in the loop:
 * O_NONBLOCK belongs to the open file description, which stderr shares
 * with whoever else holds it (the shell's terminal, the service
 * manager's pipe, a sibling process): setting it on our copy (even a
 * dup) sets it on theirs. Opening /proc/self/fd/2 again gets a
 * description of our own, but not for a socket (systemd's journal
 * stream is one), and for a file opened without O_APPEND it has an
 * offset of its own and overwrites what is there. send(MSG_DONTWAIT)
 * works on sockets only; pwritev2(RWF_NOWAIT) not on every kernel for
 * pipes. A thread writes to anything, in blocking mode, and lets
 * open(2) of --log-file (which may block too: a FIFO, NFS) happen off
 * the loops as well. It costs one thread, asleep unless there are lines,
 * and only from the first line on (see start_locked).
 *
 * Lines from several threads keep their order in the ring (the mutex);
 * the writer writes from the ring in place (producers only ever fill the
 * free part, the writer only ever empties the used part), so a line is
 * copied once. At exit the ring is flushed while the writer makes
 * progress; if it makes none for a second (a reader that never reads),
 * the rest is given up and the writer left behind for exit(3) to end.
 *
 * Off the per-message path: only connections' opening and closing
 * (--verbose), signals and errors log.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "echod.h"

int verbosity = ECHOD_NORMAL;

/* The ring's size: 64 KiB, about 800 lines of --verbose. */
#define LOG_RING 65536u
#define LOG_LINE 512u

enum {
    LOG_DIRECT,    /* no writer (yet, or any more): write at once */
    LOG_LAZY,      /* log_start ran: the writer starts with the first line */
    LOG_THREAD,    /* the writer runs */
    LOG_ABANDONED, /* the writer is stuck; lines are dropped */
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t work;  /* to the writer: lines, reopen, stop */
    pthread_cond_t moved; /* from the writer: progress, or it ended */
    pthread_t thread;
    int state;           /* LOG_* */
    int fd;              /* stderr (2), or --log-file's */
    const char *path;    /* --log-file, or NULL */
    size_t start, len;   /* the ring's used part */
    uint64_t dropped;    /* lines dropped, in all */
    uint64_t unreported; /* of which the log has not said so yet */
    uint64_t progress;   /* bytes written, in all */
    bool broken;         /* writing failed: drop until a reopen */
    bool reopen, stop, ended;
    char ring[LOG_RING];
} L = {.mu = PTHREAD_MUTEX_INITIALIZER, .state = LOG_DIRECT, .fd = 2};

static void write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

/* Copy n bytes to the ring's end, if they fit (L.mu held). */
static bool ring_put(const char *p, size_t n) {
    if (L.len + n > LOG_RING)
        return false;
    size_t end = (L.start + L.len) % LOG_RING;
    size_t first = n < LOG_RING - end ? n : LOG_RING - end;
    memcpy(L.ring + end, p, first);
    memcpy(L.ring, p + first, n - first);
    L.len += n;
    return true;
}

/* "echod: " fmt "\n" into line[LOG_LINE] (truncated); its length. */
static size_t format_line(char *line, const char *fmt, va_list ap) {
    static const char prefix[] = "echod: ";
    size_t n = sizeof prefix - 1;
    memcpy(line, prefix, n);
    int m = vsnprintf(line + n, LOG_LINE - n - 1, fmt, ap);
    if (m > 0)
        n += (size_t)m < LOG_LINE - n - 2 ? (size_t)m : LOG_LINE - n - 2;
    line[n++] = '\n';
    return n;
}

static size_t format(char *line, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static size_t format(char *line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    size_t n = format_line(line, fmt, ap);
    va_end(ap);
    return n;
}

/* Say that lines were dropped, if there is room for that and `need` more
 * bytes (L.mu held). */
static void report_dropped(size_t need) {
    if (L.unreported == 0 || L.broken)
        return;
    char note[LOG_LINE];
    size_t n = format(note,
                      "%llu log line(s) dropped: the log's reader "
                      "did not keep up",
                      (unsigned long long)L.unreported);
    if (L.len + n + need <= LOG_RING && ring_put(note, n))
        L.unreported = 0;
}

/* Queue a line (L.mu held): dropped and counted if it does not fit. */
static void put_locked(const char *line, size_t n) {
    bool was_empty = L.len == 0;
    report_dropped(n);
    if (L.broken || !ring_put(line, n)) {
        L.dropped++;
        L.unreported++;
        return;
    }
    if (was_empty)
        pthread_cond_signal(&L.work);
}

static void *writer(void *arg);

/* Start the writer (L.mu held, state LOG_LAZY), at the first line or
 * reopen: a daemon that logs nothing runs no thread of the log's. That is
 * not only a thread less: glibc makes recv and send cancellation points
 * in a process that ever had a second thread, which costs a
 * --threads 1 daemon about 80 instructions per echoed message
 * (__pthread_enable_asynccancel and _disable). The writer takes no
 * signal: they are worker 0's (see main.c). If it cannot start, lines
 * are written at once, as before it starts, and the first says why. */
static void start_locked(void) {
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&L.thread, NULL, writer, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc == 0) {
        L.state = LOG_THREAD;
        return;
    }
    L.state = LOG_DIRECT;
    char line[LOG_LINE];
    size_t n = format(line,
                      "cannot start the log's thread: %s (lines are "
                      "written at once)",
                      strerror(rc));
    write_all(L.fd, line, n);
}

void logmsg(int level, const char *fmt, ...) {
    if (verbosity < level)
        return;
    char line[LOG_LINE];
    va_list ap;
    va_start(ap, fmt);
    size_t n = format_line(line, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&L.mu);
    if (L.state == LOG_LAZY)
        start_locked();
    if (L.state == LOG_DIRECT) {
        /* Before the writer starts (or after it ended): no loop runs. */
        write_all(L.fd, line, n);
    } else if (L.state == LOG_THREAD) {
        put_locked(line, n);
    } else {
        L.dropped++;
    }
    pthread_mutex_unlock(&L.mu);
}

/* The writer ------------------------------------------------------------ */

/* Reopen --log-file (the writer, L.mu not held): logrotate renamed it. */
static void reopen_file(void) {
    int fd = open(L.path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY,
                  0644);
    int e = errno;
    char line[LOG_LINE];
    size_t n = 0;
    int old = -1;
    pthread_mutex_lock(&L.mu);
    if (fd < 0) { /* an error: logged even with --quiet */
        n = format(line, "cannot reopen the log file %s: %s", L.path,
                   strerror(e));
    } else {
        old = L.fd;
        L.fd = fd;
        L.broken = false;
        if (verbosity >= ECHOD_NORMAL)
            n = format(line, "log file %s reopened", L.path);
    }
    if (n > 0)
        put_locked(line, n);
    pthread_mutex_unlock(&L.mu);
    if (old > 2)
        close(old);
}

static void *writer(void *arg) {
    (void)arg;
    pthread_mutex_lock(&L.mu);
    for (;;) {
        if (L.reopen && (L.len == 0 || L.broken)) {
            /* after the lines before the SIGHUP: they go to the old file */
            L.reopen = false;
            pthread_mutex_unlock(&L.mu);
            reopen_file();
            pthread_mutex_lock(&L.mu);
            continue;
        }
        if (L.len == 0 || L.broken) {
            if (L.len == 0 && L.unreported > 0 && !L.broken) {
                report_dropped(0);
                if (L.len > 0)
                    continue;
            }
            if (L.stop)
                break;
            pthread_cond_wait(&L.work, &L.mu);
            continue;
        }
        size_t n = L.len < LOG_RING - L.start ? L.len : LOG_RING - L.start;
        const char *p = L.ring + L.start;
        int fd = L.fd;
        pthread_mutex_unlock(&L.mu);
        ssize_t w = write(fd, p, n); /* may block: that is what we are for */
        int e = errno;
        if (w < 0 && (e == EAGAIN || e == EWOULDBLOCK)) {
            /* someone else made the description non-blocking */
            struct pollfd pfd = {fd, POLLOUT, 0};
            poll(&pfd, 1, 1000);
        }
        pthread_mutex_lock(&L.mu);
        if (w > 0) {
            L.start = (L.start + (size_t)w) % LOG_RING;
            L.len -= (size_t)w;
            L.progress += (uint64_t)w;
        } else if (w == 0 || (e != EINTR && e != EAGAIN && e != EWOULDBLOCK)) {
            /* EPIPE, EBADF, ENOSPC, EIO: the lines queued are lost; so
             * are the next ones, until a reopen works */
            uint64_t lines = 0;
            for (size_t i = 0; i < L.len; i++)
                lines += L.ring[(L.start + i) % LOG_RING] == '\n';
            L.dropped += lines;
            L.unreported += lines;
            L.start = L.len = 0;
            L.broken = true;
        }
        pthread_cond_broadcast(&L.moved);
    }
    L.ended = true;
    pthread_cond_broadcast(&L.moved);
    pthread_mutex_unlock(&L.mu);
    return NULL;
}

/* The log's life -------------------------------------------------------- */

int log_start(const char *path, char *err, size_t errsize) {
    if (path != NULL) {
        L.fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY,
                    0644);
        if (L.fd < 0) {
            int e = errno;
            L.fd = 2;
            snprintf(err, errsize, "cannot open the log file %s: %s", path,
                     strerror(e));
            return -e;
        }
        L.path = path;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&L.work, NULL);
    pthread_cond_init(&L.moved, &ca);
    pthread_condattr_destroy(&ca);
    (void)err;
    (void)errsize;
    L.state = LOG_LAZY;
    return 0;
}

const char *log_file(void) { return L.path; }

void log_reopen(void) {
    pthread_mutex_lock(&L.mu);
    if (L.state == LOG_LAZY && L.path != NULL)
        start_locked(); /* the reopen may block: the writer's job */
    if (L.state == LOG_THREAD && L.path != NULL) {
        L.reopen = true;
        pthread_cond_signal(&L.work);
    }
    pthread_mutex_unlock(&L.mu);
}

uint64_t log_dropped(void) {
    pthread_mutex_lock(&L.mu);
    uint64_t n = L.dropped;
    pthread_mutex_unlock(&L.mu);
    return n;
}

void log_stop(void) {
    pthread_mutex_lock(&L.mu);
    if (L.state == LOG_LAZY) /* never started: nothing to flush */
        L.state = LOG_DIRECT;
    if (L.state != LOG_THREAD) {
        pthread_mutex_unlock(&L.mu);
        return;
    }
    L.stop = true;
    pthread_cond_signal(&L.work);
    uint64_t seen = L.progress;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += 1;
    while (!L.ended) {
        int rc = pthread_cond_timedwait(&L.moved, &L.mu, &until);
        if (L.progress != seen) { /* it moves: another second */
            seen = L.progress;
            clock_gettime(CLOCK_MONOTONIC, &until);
            until.tv_sec += 1;
        } else if (rc == ETIMEDOUT && !L.ended) {
            /* Stuck in write(2): leave it to exit(3). Its ring, descriptor
             * and lock stay as they are (static, never freed). */
            L.state = LOG_ABANDONED;
            pthread_mutex_unlock(&L.mu);
            pthread_detach(L.thread);
            return;
        }
    }
    L.state = LOG_DIRECT;
    pthread_mutex_unlock(&L.mu);
    pthread_join(L.thread, NULL);
    if (L.fd > 2)
        close(L.fd);
    L.fd = 2;
}
