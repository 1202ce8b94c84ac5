/*
 * src/io/codec.c: the line codec and the length-delimited codec.
 *
 * Decoders work in the bufreader's buffer and hand frames back as views
 * into it; a frame is consumed (pos advanced) when it is returned, and its
 * bytes stay in place until the next read into the buffer. Every check on
 * the frame size happens before more input is buffered, so a hostile
 * length or an endless line costs at most the buffer the caller gave.
 */
#include <string.h>

#include "io/internal.h"

/* shared ------------------------------------------------------------------ */

static void decode_drop(tide_future_t *f) {
    tide_decode_t *op = TIDE_CONTAINER_OF(f, tide_decode_t, fut);
    tide__io_cancel(&op->w);
}

static tide_poll_t decode_init_done(tide_decode_t *op, intptr_t result) {
    op->fut.result = result;
    return TIDE_READY;
}

static tide_poll_t encode_poll(tide_future_t *f, tide_cx_t *cx) {
    tide_encode_t *op = TIDE_CONTAINER_OF(f, tide_encode_t, fut);
    TIDE__IO_GONE(&op->w, f);
    if (op->err != 0) {
        f->result = op->err;
        return TIDE_READY;
    }
    ssize_t r;
    if (tide__poll_writev_all(op->s, cx, op->iov, 2, &op->idx, &op->off,
                              &op->done, &op->w, &r) == TIDE_PENDING)
        return TIDE_PENDING;
    f->result = r;
    return TIDE_READY;
}

static void encode_drop(tide_future_t *f) {
    tide_encode_t *op = TIDE_CONTAINER_OF(f, tide_encode_t, fut);
    tide__io_cancel(&op->w);
}

static const tide_future_vtable_t encode_vt = {encode_poll, encode_drop};

static tide_future_t *encode_init(tide_encode_t *op, tide_stream_t *s,
                                  const void *a, size_t alen, const void *b,
                                  size_t blen, int err) {
    op->done = 0;
    op->s = s;
    op->iov[0].iov_base = (void *)(uintptr_t)a;
    op->iov[0].iov_len = alen;
    op->iov[1].iov_base = (void *)(uintptr_t)b;
    op->iov[1].iov_len = blen;
    op->idx = 0;
    op->off = 0;
    op->err = err;
    tide_waiter_init(&op->w);
    return tide_future_init(&op->fut, &encode_vt);
}

/* lines ------------------------------------------------------------------- */

void tide_linecodec_init(tide_linecodec_t *c, size_t max_len) {
    c->max_len = max_len;
    c->discarding = false;
}

static tide_poll_t line_decode_poll(tide_future_t *f, tide_cx_t *cx) {
    tide_decode_t *op = TIDE_CONTAINER_OF(f, tide_decode_t, fut);
    TIDE__IO_GONE(&op->w, f);
    tide_linecodec_t *c = (tide_linecodec_t *)(uintptr_t)op->codec;
    tide_bufreader_t *br = op->br;
    /* Room for the longest line, "\r\n" and nothing else. */
    if (br->cap < 2)
        return decode_init_done(op, -EINVAL);
    size_t max = c->max_len != 0 ? c->max_len : br->cap - 2;
    if (max > br->cap - 2)
        return decode_init_done(op, -EINVAL);
    for (;;) {
        size_t avail = br->end - br->pos;
        const unsigned char *data = br->buf + br->pos;
        if (c->discarding) {
            /* Skipping the tail of a line that was too long. */
            const unsigned char *nl = memchr(data, '\n', avail);
            if (nl != NULL) {
                br->pos += (size_t)(nl - data) + 1;
                c->discarding = false;
                op->scanned = 0;
                continue;
            }
            br->pos += avail;
        } else {
            const unsigned char *nl =
                op->scanned < avail
                    ? memchr(data + op->scanned, '\n', avail - op->scanned)
                    : NULL;
            if (nl != NULL) {
                size_t i = (size_t)(nl - data), len = i;
                if (len > 0 && data[len - 1] == '\r')
                    len--;
                br->pos += i + 1;
                op->scanned = 0;
                if (len > max)
                    return decode_init_done(op, TIDE_EFRAME);
                op->frame = data;
                op->len = len;
                return decode_init_done(op, 1);
            }
            op->scanned = avail;
            /* max + 1 bytes may still be a line of max and a "\r"; one
             * more without "\n" cannot be. */
            if (avail > max + 1) {
                br->pos += avail;
                op->scanned = 0;
                c->discarding = true;
                return decode_init_done(op, TIDE_EFRAME);
            }
        }
        ssize_t n;
        if (tide_bufreader_poll_more(br, cx, &n) == TIDE_PENDING) {
            tide__io_wait(&op->w, &op->br->stream, TIDE_READABLE, cx);
            return TIDE_PENDING;
        }
        tide__io_done(&op->w);
        if (n < 0)
            return decode_init_done(op, n);
        if (n == 0) {
            /* End of stream: a last line without "\n" is still a line. */
            avail = br->end - br->pos;
            if (avail == 0 || c->discarding) {
                c->discarding = false;
                br->pos = br->end;
                return decode_init_done(op, 0);
            }
            data = br->buf + br->pos;
            size_t len = avail;
            if (data[len - 1] == '\r')
                len--;
            br->pos += avail;
            op->scanned = 0;
            /* max + 1 bytes were allowed to wait for a "\r\n". */
            if (len > max)
                return decode_init_done(op, TIDE_EFRAME);
            op->frame = data;
            op->len = len;
            return decode_init_done(op, 1);
        }
    }
}

static const tide_future_vtable_t line_decode_vt = {line_decode_poll,
                                                    decode_drop};

tide_future_t *tide_linecodec_decode(tide_decode_t *op, tide_linecodec_t *c,
                                     tide_bufreader_t *br) {
    op->frame = NULL;
    op->len = 0;
    op->codec = c;
    op->br = br;
    op->scanned = 0;
    tide_waiter_init(&op->w);
    return tide_future_init(&op->fut, &line_decode_vt);
}

tide_future_t *tide_linecodec_encode(tide_encode_t *op,
                                     const tide_linecodec_t *c,
                                     tide_stream_t *s, const void *line,
                                     size_t len) {
    int err = 0;
    if (c->max_len != 0 && len > c->max_len)
        err = TIDE_EFRAME;
    else if (len > 0 && memchr(line, '\n', len) != NULL)
        err = -EINVAL;
    return encode_init(op, s, line, len, "\n", 1, err);
}

/* length-delimited -------------------------------------------------------- */

int tide_lencodec_init(tide_lencodec_t *c, unsigned len_bytes, unsigned flags,
                       size_t max_frame) {
    if (len_bytes < 1 || len_bytes > 8 ||
        (flags & ~(unsigned)TIDE_LENCODEC_LITTLE_ENDIAN) != 0)
        return -EINVAL;
    c->len_bytes = len_bytes;
    c->little_endian = (flags & TIDE_LENCODEC_LITTLE_ENDIAN) != 0;
    c->max_frame = max_frame;
    return 0;
}

static uint64_t get_len(const tide_lencodec_t *c, const unsigned char *p) {
    uint64_t v = 0;
    for (unsigned i = 0; i < c->len_bytes; i++) {
        unsigned k = c->little_endian ? c->len_bytes - 1 - i : i;
        v = (v << 8) | p[k];
    }
    return v;
}

static void put_len(const tide_lencodec_t *c, unsigned char *p, uint64_t v) {
    for (unsigned i = 0; i < c->len_bytes; i++) {
        unsigned k = c->little_endian ? i : c->len_bytes - 1 - i;
        p[k] = (unsigned char)(v & 0xff);
        v >>= 8;
    }
}

static tide_poll_t len_decode_poll(tide_future_t *f, tide_cx_t *cx) {
    tide_decode_t *op = TIDE_CONTAINER_OF(f, tide_decode_t, fut);
    TIDE__IO_GONE(&op->w, f);
    const tide_lencodec_t *c = op->codec;
    tide_bufreader_t *br = op->br;
    size_t hb = c->len_bytes;
    if (hb < 1 || hb > 8 || br->cap < hb || c->max_frame > br->cap - hb)
        return decode_init_done(op, -EINVAL);
    for (;;) {
        size_t avail = br->end - br->pos;
        const unsigned char *data = br->buf + br->pos;
        if (avail >= hb) {
            uint64_t flen = get_len(c, data);
            /* Checked before buffering the payload: a hostile length
             * costs nothing. The header stays, so this repeats. */
            if (flen > c->max_frame)
                return decode_init_done(op, TIDE_EFRAME);
            if (avail - hb >= flen) {
                op->frame = data + hb;
                op->len = (size_t)flen;
                br->pos += hb + (size_t)flen;
                return decode_init_done(op, 1);
            }
        }
        ssize_t n;
        if (tide_bufreader_poll_more(br, cx, &n) == TIDE_PENDING) {
            tide__io_wait(&op->w, &op->br->stream, TIDE_READABLE, cx);
            return TIDE_PENDING;
        }
        tide__io_done(&op->w);
        if (n < 0)
            return decode_init_done(op, n);
        if (n == 0)
            return decode_init_done(op, br->end == br->pos ? 0 : TIDE_EEOF);
    }
}

static const tide_future_vtable_t len_decode_vt = {len_decode_poll,
                                                   decode_drop};

tide_future_t *tide_lencodec_decode(tide_decode_t *op, const tide_lencodec_t *c,
                                    tide_bufreader_t *br) {
    op->frame = NULL;
    op->len = 0;
    op->codec = c;
    op->br = br;
    op->scanned = 0;
    tide_waiter_init(&op->w);
    return tide_future_init(&op->fut, &len_decode_vt);
}

tide_future_t *tide_lencodec_encode(tide_encode_t *op, const tide_lencodec_t *c,
                                    tide_stream_t *s, const void *data,
                                    size_t len) {
    int err = 0;
    if (c->len_bytes < 1 || c->len_bytes > 8)
        err = -EINVAL;
    else if (len > c->max_frame ||
             (c->len_bytes < 8 && (uint64_t)len >> (8 * c->len_bytes) != 0))
        err = TIDE_EFRAME;
    else
        put_len(c, op->hdr, (uint64_t)len);
    return encode_init(op, s, op->hdr, c->len_bytes, data, len, err);
}
