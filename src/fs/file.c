/*
 * src/fs/file.c: files as streams, every system call on the blocking pool.
 *
 * One job in flight per file (its tide_blocking_t is embedded): a read
 * fills the file's buffer, a write empties it. A job that is running when
 * its owner goes away (tide_file_free, or a dropped open) still uses the
 * memory its argument points at, so that memory is freed by whichever of
 * the two finishes last: the job sets FN_DONE as its last touch, the owner
 * sets ORPHANED, both with a read-modify-write, and the one that sees the
 * other's bit frees.
 */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "core/internal.h"
#include "task/internal.h"
#include "tide/fs.h"

#define DEFAULT_BUF (64u * 1024u)

enum { FN_DONE = 1u, ORPHANED = 2u };
enum { OP_NONE, OP_READ, OP_WRITE };

struct tide_file {
    tide_stream_t stream;
    tide_waitq_t rq, wq;
    int fd;
    int op; /* the job in flight */
    tide_blocking_t job;
    atomic_uint life; /* FN_DONE | ORPHANED, for the job in flight */
    unsigned char *buf;
    size_t cap;
    size_t pos, len; /* read ahead, not consumed: buf[pos, len) */
    size_t wlen;     /* the write job's bytes: buf[0, wlen) */
    size_t rewind;   /* the write job first seeks back this much */
    intptr_t rerr;   /* a read's error or end (1: end), for the next read */
    intptr_t werr;   /* a background write's error */
};

/* ------------------------------------------------------------------------
 * The orphan protocol
 * ------------------------------------------------------------------------ */

static void file_destroy(tide_file_t *f) {
    if (f->fd >= 0)
        close(f->fd);
    tide__free(f->buf);
    tide__free(f);
}

/* The job's last touch of f (pool thread). */
static void job_done(tide_file_t *f) {
    if (atomic_fetch_or(&f->life, FN_DONE) & ORPHANED)
        file_destroy(f);
}

static intptr_t read_fn(void *arg) {
    tide_file_t *f = arg;
    ssize_t n;
    do
        n = read(f->fd, f->buf, f->cap);
    while (n < 0 && errno == EINTR);
    intptr_t r = n < 0 ? -errno : (intptr_t)n;
    job_done(f);
    return r;
}

static intptr_t write_fn(void *arg) {
    tide_file_t *f = arg;
    intptr_t r = 0;
    if (f->rewind > 0 && lseek(f->fd, -(off_t)f->rewind, SEEK_CUR) < 0 &&
        errno != ESPIPE)
        r = -errno;
    for (size_t done = 0; r == 0 && done < f->wlen;) {
        ssize_t n = write(f->fd, f->buf + done, f->wlen - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            r = -errno;
        else
            done += (size_t)n;
    }
    job_done(f);
    return r;
}

static void start(tide_file_t *f, int op, tide_blocking_fn fn) {
    atomic_store_explicit(&f->life, 0, memory_order_relaxed);
    f->op = op;
    tide_spawn_blocking(&f->job, fn, f);
}

/* Wake the waiters of q but the polling task: it is running and sees the
 * result now; woken, it would be queued once more after it completes. */
static void wake_others(tide_waitq_t *q, tide_cx_t *cx) {
    for (tide_waiter_t *w = q->head.next; w != &q->head; w = w->next)
        if (w->waker.target != cx->waker->target)
            tide_waker_wake_by_ref(&w->waker);
}

/* Wait for the job in flight and file its result; READY when none is in
 * flight. Several tasks may wait: the job wakes the last one that polled
 * it, and that one wakes the others through the queues. */
static tide_poll_t settle(tide_file_t *f, tide_cx_t *cx) {
    if (f->op == OP_NONE)
        return TIDE_READY;
    if (tide_future_poll(&f->job.fut, cx) == TIDE_PENDING)
        return TIDE_PENDING;
    intptr_t r = f->job.fut.result;
    tide_future_drop(&f->job.fut);
    if (f->op == OP_READ) {
        f->pos = 0;
        f->len = r > 0 ? (size_t)r : 0;
        if (r <= 0)
            f->rerr = r == 0 ? 1 : r;
    } else if (r < 0 && f->werr == 0) {
        f->werr = r;
    }
    f->op = OP_NONE;
    wake_others(&f->rq, cx);
    wake_others(&f->wq, cx);
    return TIDE_READY;
}

/* ------------------------------------------------------------------------
 * The stream
 * ------------------------------------------------------------------------ */

static tide_file_t *file_of(tide_stream_t *s) {
    return TIDE_CONTAINER_OF(s, tide_file_t, stream);
}

static tide_poll_t file_read(tide_stream_t *s, tide_cx_t *cx, void *buf,
                             size_t len, ssize_t *out) {
    tide_file_t *f = file_of(s);
    if (len == 0) {
        *out = 0;
        return TIDE_READY;
    }
    for (int round = 0; round < 2; round++) {
        if (settle(f, cx) == TIDE_PENDING)
            return TIDE_PENDING;
        if (f->pos < f->len) {
            size_t n = f->len - f->pos < len ? f->len - f->pos : len;
            memcpy(buf, f->buf + f->pos, n);
            f->pos += n;
            *out = (ssize_t)n;
            return TIDE_READY;
        }
        if (f->rerr != 0) { /* reported once, as the stream contract says */
            *out = f->rerr == 1 ? 0 : (ssize_t)f->rerr;
            f->rerr = 0;
            return TIDE_READY;
        }
        start(f, OP_READ, read_fn);
    }
    return settle(f, cx) == TIDE_PENDING ? TIDE_PENDING
                                         : file_read(s, cx, buf, len, out);
}

static tide_poll_t file_write(tide_stream_t *s, tide_cx_t *cx, const void *buf,
                              size_t len, ssize_t *out) {
    tide_file_t *f = file_of(s);
    if (settle(f, cx) == TIDE_PENDING)
        return TIDE_PENDING;
    if (f->werr != 0) {
        *out = (ssize_t)f->werr;
        f->werr = 0;
        return TIDE_READY;
    }
    if (len == 0) {
        *out = 0;
        return TIDE_READY;
    }
    /* bytes read ahead and not consumed: the write goes where the reader
     * stopped */
    f->rewind = f->len - f->pos;
    f->pos = f->len = 0;
    f->rerr = 0;
    size_t n = len < f->cap ? len : f->cap;
    memcpy(f->buf, buf, n);
    f->wlen = n;
    start(f, OP_WRITE, write_fn);
    (void)settle(f, cx); /* queue it now; an error shows at the next call */
    *out = (ssize_t)n;
    return TIDE_READY;
}

static tide_poll_t file_flush(tide_stream_t *s, tide_cx_t *cx, int *out) {
    tide_file_t *f = file_of(s);
    if (settle(f, cx) == TIDE_PENDING)
        return TIDE_PENDING;
    *out = (int)f->werr;
    f->werr = 0;
    return TIDE_READY;
}

static const tide_stream_vt_t file_vt = {
    .poll_read = file_read,
    .poll_write = file_write,
    .poll_writev = NULL,
    .poll_flush = file_flush,
    .poll_shutdown = file_flush, /* a file has no write side to close */
};

/* The last future waiting on the file was dropped: the job in flight
 * keeps running for the file, but must not wake the task of a future that
 * is gone (the cancel contract: nobody is woken after a drop). */
static void abandoned(tide_file_t *f) {
    if (f->op != OP_NONE && tide_waitq_is_empty(&f->rq) &&
        tide_waitq_is_empty(&f->wq))
        tide__blocking_forget_waker(&f->job);
}
static void rq_abandoned(tide_waitq_t *q) {
    abandoned(TIDE_CONTAINER_OF(q, tide_file_t, rq));
}
static void wq_abandoned(tide_waitq_t *q) {
    abandoned(TIDE_CONTAINER_OF(q, tide_file_t, wq));
}

int tide_file_new(tide_file_t **out, int fd, size_t bufsize) {
    if (out == NULL || fd < 0)
        return -EINVAL;
    if (bufsize == 0)
        bufsize = DEFAULT_BUF;
    tide_file_t *f = tide__calloc(1, sizeof *f);
    if (f == NULL)
        return -ENOMEM;
    f->buf = tide__malloc(bufsize);
    if (f->buf == NULL) {
        tide__free(f);
        return -ENOMEM;
    }
    f->cap = bufsize;
    f->fd = fd;
    atomic_init(&f->life, 0);
    static const tide_waitq_ops_t rq_ops = TIDE_WAITQ_OPS(rq_abandoned);
    static const tide_waitq_ops_t wq_ops = TIDE_WAITQ_OPS(wq_abandoned);
    tide_waitq_init(&f->rq, &rq_ops);
    tide_waitq_init(&f->wq, &wq_ops);
    tide_stream_init(&f->stream, &file_vt, &f->rq, &f->wq);
    *out = f;
    return 0;
}

tide_stream_t *tide_file_stream(tide_file_t *f) { return &f->stream; }

int tide_file_fd(const tide_file_t *f) { return f->fd; }

void tide_file_free(tide_file_t *f) {
    if (f == NULL)
        return;
    tide_stream_close(&f->stream);
    if (f->op != OP_NONE) {
        f->op = OP_NONE;
        if (tide__blocking_drop_running(&f->job) &&
            !(atomic_fetch_or(&f->life, ORPHANED) & FN_DONE))
            return; /* the job frees f when it returns */
    }
    file_destroy(f);
}

/* ------------------------------------------------------------------------
 * Open and sync
 * ------------------------------------------------------------------------ */

/* What an open job reads, in memory of its own: a dropped open's future
 * may be gone while open(2) runs. */
struct open_args {
    atomic_uint life;
    int flags;
    unsigned mode;
    char path[];
};

static intptr_t open_fn(void *arg) {
    struct open_args *a = arg;
    int fd;
    do
        fd = open(a->path, a->flags | O_CLOEXEC, (mode_t)a->mode);
    while (fd < 0 && errno == EINTR);
    intptr_t r = fd < 0 ? -errno : fd;
    if (atomic_fetch_or(&a->life, FN_DONE) & ORPHANED)
        tide__free(a);
    return r;
}

/* A dropped open's descriptor, on the pool thread. */
static void open_discard(intptr_t fd) {
    if (fd >= 0)
        close((int)fd);
}

static tide_poll_t fs_open_poll(tide_future_t *f, tide_cx_t *cx) {
    tide_fs_open_t *op = TIDE_CONTAINER_OF(f, tide_fs_open_t, fut);
    if (op->job.arg == NULL) {
        size_t n = strlen(op->path) + 1;
        struct open_args *a = tide__malloc(sizeof *a + n);
        if (a == NULL) {
            f->result = -ENOMEM;
            return TIDE_READY;
        }
        atomic_init(&a->life, 0);
        a->flags = op->flags;
        a->mode = op->mode;
        memcpy(a->path, op->path, n);
        op->job.arg = a;
    }
    if (tide_future_poll(&op->job.fut, cx) == TIDE_PENDING)
        return TIDE_PENDING;
    f->result = op->job.fut.result;
    tide_future_drop(&op->job.fut);
    tide__free(op->job.arg); /* the job is done with it (or never ran) */
    op->job.arg = NULL;
    return TIDE_READY;
}

static void fs_open_drop(tide_future_t *f) {
    tide_fs_open_t *op = TIDE_CONTAINER_OF(f, tide_fs_open_t, fut);
    struct open_args *a = op->job.arg;
    if (op->job.fut.vt & TIDE__FUT_DROPPED)
        return; /* completed: nothing left */
    /* The pool's thread reads job.arg (under the pool's lock) when it
     * starts the job: only once tide__blocking_drop_running has settled
     * whether it did (under that lock) is the field ours to clear. */
    bool running = tide__blocking_drop_running(&op->job);
    op->job.arg = NULL;
    if (running && a != NULL &&
        !(atomic_fetch_or(&a->life, ORPHANED) & FN_DONE))
        return; /* open_fn frees it */
    tide__free(a);
}

static const tide_future_vtable_t fs_open_vt = {fs_open_poll, fs_open_drop};

tide_future_t *tide_fs_open(tide_fs_open_t *op, const char *path, int flags,
                            unsigned mode) {
    tide_spawn_blocking(&op->job, open_fn, NULL);
    tide_blocking_on_discard(&op->job, open_discard);
    op->path = path;
    op->flags = flags;
    op->mode = mode;
    return tide_future_init(&op->fut, &fs_open_vt);
}

static intptr_t sync_fn(void *arg) {
    intptr_t v = (intptr_t)arg;
    int fd = (int)(v >> 1), r;
    do
        r = (v & 1) ? fdatasync(fd) : fsync(fd);
    while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : 0;
}

static tide_poll_t sync_poll(tide_future_t *f, tide_cx_t *cx) {
    tide_file_sync_t *op = TIDE_CONTAINER_OF(f, tide_file_sync_t, fut);
    if (!op->started) {
        tide_file_t *file = op->file;
        if (settle(file, cx) == TIDE_PENDING)
            return TIDE_PENDING;
        if (file->werr != 0) {
            f->result = file->werr;
            file->werr = 0;
            return TIDE_READY;
        }
        op->started = true;
        /* the descriptor travels in the argument: the job reads nothing
         * of the file or of this future */
        op->job.arg = (void *)(((intptr_t)file->fd << 1) | op->data_only);
    }
    if (tide_future_poll(&op->job.fut, cx) == TIDE_PENDING)
        return TIDE_PENDING;
    f->result = op->job.fut.result;
    tide_future_drop(&op->job.fut);
    return TIDE_READY;
}

static void sync_drop(tide_future_t *f) {
    tide_file_sync_t *op = TIDE_CONTAINER_OF(f, tide_file_sync_t, fut);
    tide_future_drop(&op->job.fut);
}

static const tide_future_vtable_t sync_vt = {sync_poll, sync_drop};

tide_future_t *tide_file_sync(tide_file_sync_t *op, tide_file_t *f,
                              bool data_only) {
    tide_spawn_blocking(&op->job, sync_fn, NULL);
    op->data_only = data_only;
    op->file = f;
    op->started = false;
    return tide_future_init(&op->fut, &sync_vt);
}
