/*
 * t/fuzz/fuzz_lencodec.c: the length-delimited decoder
 * (tide_lencodec_decode) against a reference model, plus an encode/decode
 * round trip of the frames it found.
 *
 * Input: byte 0 picks the length field's size (1 to 8) and endianness,
 * byte 1 max_frame, byte 2 the bufreader's capacity, byte 3 the chunking;
 * the rest is the stream. Reference (io.h): a header over max_frame gives
 * TIDE_EFRAME, again at every later decode; the stream ending inside a
 * frame gives TIDE_EEOF; a clean end gives 0.
 */
#include <stdio.h>
#include <stdlib.h>

#include "fuzz/fuzz_stream.h"

#define FAIL(...)                                                              \
    do {                                                                       \
        fprintf(stderr, "fuzz_lencodec: " __VA_ARGS__);                        \
        fprintf(stderr, "\n");                                                 \
        abort();                                                               \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A stream that records what is written. */
typedef struct sink {
    tide_stream_t stream;
    uint8_t *buf;
    size_t len, cap;
} sink_t;

static tide_poll_t sink_write(tide_stream_t *s, tide_cx_t *cx, const void *b,
                              size_t len, ssize_t *out) {
    sink_t *k = TIDE_CONTAINER_OF(s, sink_t, stream);
    (void)cx;
    if (len > k->cap - k->len)
        len = k->cap - k->len; /* short writes when full */
    if (len == 0) {
        *out = -ENOSPC;
        return TIDE_READY;
    }
    memcpy(k->buf + k->len, b, len);
    k->len += len;
    *out = (ssize_t)len;
    return TIDE_READY;
}

static tide_poll_t sink_read(tide_stream_t *s, tide_cx_t *cx, void *b,
                             size_t len, ssize_t *out) {
    (void)s;
    (void)cx;
    (void)b;
    (void)len;
    *out = 0;
    return TIDE_READY;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 4 || size > 65536)
        return 0;
    unsigned hb = 1 + data[0] % 8;
    unsigned flags = (data[0] & 0x80) ? TIDE_LENCODEC_LITTLE_ENDIAN : 0;
    size_t max_frame = data[1] % 160;
    size_t cap = 1 + data[2] % 180;
    uint32_t seed = data[3] * 2246822519u + (uint32_t)size;
    const uint8_t *in = data + 4;
    size_t n = size - 4;

    tide_lencodec_t c;
    if (tide_lencodec_init(&c, hb, flags, max_frame) != 0)
        FAIL("init");
    if (tide_lencodec_init(&c, 0, 0, 1) != -EINVAL ||
        tide_lencodec_init(&c, 9, 0, 1) != -EINVAL ||
        tide_lencodec_init(&c, 2, 2, 1) != -EINVAL)
        FAIL("init accepted a bad argument");
    tide_lencodec_init(&c, hb, flags, max_frame);

    unsigned char *buf = malloc(cap);
    fz_stream_t fs;
    fz_init(&fs, in, n, seed, 1 + data[3] % 32);
    tide_bufreader_t br;
    tide_bufreader_init(&br, &fs.stream, buf, cap);
    tide_decode_t dec;
    if (cap < hb || max_frame > cap - hb) {
        if (fz_run(tide_lencodec_decode(&dec, &c, &br)) != -EINVAL)
            FAIL("a buffer of %zu accepted for %u + %zu", cap, hb, max_frame);
        tide_future_drop(&dec.fut);
        free(buf);
        return 0;
    }

    uint8_t *frames = malloc(n + max_frame + 2);
    size_t flen_total = 0, pos = 0;
    size_t nframes = 0;
    sink_t sink = {.buf = malloc(2 * n + 64), .cap = 2 * n + 64};
    static const tide_stream_vt_t sink_vt = {.poll_read = sink_read,
                                             .poll_write = sink_write};
    sink.stream.vt = &sink_vt;
    for (unsigned i = 0;; i++) {
        if (i > n + 2)
            FAIL("more results than input bytes");
        intptr_t r = fz_run(tide_lencodec_decode(&dec, &c, &br));
        /* the reference */
        int exp;
        uint64_t flen = 0;
        if (n - pos < hb) {
            exp = pos == n ? 0 : TIDE_EEOF;
        } else {
            for (unsigned k = 0; k < hb; k++) {
                unsigned idx = flags ? hb - 1 - k : k;
                flen = (flen << 8) | in[pos + idx];
            }
            if (flen > max_frame)
                exp = TIDE_EFRAME;
            else if (n - pos - hb < flen)
                exp = TIDE_EEOF;
            else
                exp = 1;
        }
        if (r != exp)
            FAIL("result %u: %ld, expected %d", i, (long)r, exp);
        if (r == 1) {
            if (dec.len != flen || memcmp(dec.frame, in + pos + hb, flen) != 0)
                FAIL("frame %u differs", i);
            /* re-encode it */
            tide_encode_t enc;
            intptr_t w = fz_run(tide_lencodec_encode(&enc, &c, &sink.stream,
                                                     dec.frame, dec.len));
            tide_future_drop(&enc.fut);
            if (w != (intptr_t)(hb + dec.len))
                FAIL("encode: %ld", (long)w);
            memcpy(frames + flen_total, dec.frame, dec.len);
            flen_total += dec.len;
            pos += hb + flen;
            nframes++;
        }
        tide_future_drop(&dec.fut);
        if (r != 1)
            break;
    }
    if (fs.cancels != 0)
        FAIL("a completed decode cancelled its stream");
    /* what was re-encoded is exactly the input's complete frames */
    if (sink.len != pos || memcmp(sink.buf, in, pos) != 0)
        FAIL("re-encoded %zu bytes, %zu expected", sink.len, pos);
    /* an encode over max_frame writes nothing */
    tide_encode_t enc;
    size_t before = sink.len;
    if (fz_run(tide_lencodec_encode(&enc, &c, &sink.stream, frames,
                                    max_frame + 1)) != TIDE_EFRAME ||
        sink.len != before)
        FAIL("an oversized frame was encoded");
    tide_future_drop(&enc.fut);
    (void)nframes;
    free(sink.buf);
    free(frames);
    free(buf);
    return 0;
}
