/*
 * t/fuzz/fuzz_stream.h: an in-memory tide stream for the decoder
 * harnesses. It hands the input out in chunks whose sizes, and PENDING
 * answers in between, come from a small generator seeded by the input
 * itself, so one input always replays the same way and the fuzzer explores
 * both the bytes and how they are split. No executor, no descriptor.
 */
#ifndef TIDE_T_FUZZ_STREAM_H
#define TIDE_T_FUZZ_STREAM_H

#include <stdint.h>
#include <string.h>

#include <tide.h>

typedef struct fz_stream {
    tide_stream_t stream;
    const uint8_t *data;
    size_t len, pos;
    uint32_t rng;
    unsigned max_chunk;
    unsigned pendings; /* PENDING answers given */
    unsigned cancels;  /* waiters dropped while pending on rq */
    tide_waitq_t rq;
} fz_stream_t;

static inline uint32_t fz_next(uint32_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static inline tide_poll_t fz_read(tide_stream_t *s, tide_cx_t *cx, void *buf,
                                  size_t len, ssize_t *out) {
    fz_stream_t *f = TIDE_CONTAINER_OF(s, fz_stream_t, stream);
    if (len == 0) {
        *out = 0;
        return TIDE_READY;
    }
    if (fz_next(&f->rng) % 4 == 0) {
        f->pendings++;
        tide_waker_wake_by_ref(cx->waker);
        return TIDE_PENDING;
    }
    size_t n = 1 + fz_next(&f->rng) % f->max_chunk;
    if (n > len)
        n = len;
    if (n > f->len - f->pos)
        n = f->len - f->pos;
    memcpy(buf, f->data + f->pos, n);
    f->pos += n;
    *out = (ssize_t)n;
    return TIDE_READY;
}

static inline tide_poll_t fz_write(tide_stream_t *s, tide_cx_t *cx,
                                   const void *buf, size_t len, ssize_t *out) {
    (void)s;
    (void)cx;
    (void)buf;
    *out = (ssize_t)len;
    return TIDE_READY;
}

static inline void fz_abandoned(tide_waitq_t *q) {
    fz_stream_t *f = TIDE_CONTAINER_OF(q, fz_stream_t, rq);
    f->cancels++;
}

static inline void fz_init(fz_stream_t *f, const uint8_t *data, size_t len,
                           uint32_t seed, unsigned max_chunk) {
    static const tide_stream_vt_t vt = {.poll_read = fz_read,
                                        .poll_write = fz_write};
    /* Its PENDING answers wake the task at once, but the futures still
     * wait on rq, which counts those dropped while waiting. */
    static const tide_waitq_ops_t ops = TIDE_WAITQ_OPS(fz_abandoned);
    tide_waitq_init(&f->rq, &ops);
    tide_stream_init(&f->stream, &vt, &f->rq, NULL);
    f->data = data;
    f->len = len;
    f->pos = 0;
    f->rng = seed | 1;
    f->max_chunk = max_chunk ? max_chunk : 1;
    f->pendings = f->cancels = 0;
}

/* A waker that does nothing: the harness polls in a loop. */
static inline tide_waker_t fz_waker_clone(const tide_wakeable_t *w) {
    return TIDE_WAKER(w);
}
static inline void fz_waker_nop(const tide_wakeable_t *w) { (void)w; }
static const tide_waker_vtable_t fz_waker_vt = {fz_waker_clone, fz_waker_nop,
                                                fz_waker_nop, fz_waker_nop};
static const tide_wakeable_t fz_wakeable = {&fz_waker_vt};

/* Poll f until READY (every PENDING here has already asked for a wake). */
static inline intptr_t fz_run(tide_future_t *f) {
    tide_waker_t w = TIDE_WAKER(&fz_wakeable);
    tide_cx_t cx;
    for (;;) {
        tide_cx_init(&cx, NULL, &w);
        if (tide_future_poll(f, &cx) == TIDE_READY)
            return f->result;
    }
}

#endif
