/*
 * t/fuzz/fuzz_line.c: the line decoder (tide_linecodec_decode) against a
 * reference model, and read_line over the same bytes.
 *
 * Input: byte 0 picks max_len (0 = "as the buffer allows"), byte 1 the
 * bufreader's capacity, byte 2 the chunking; the rest is the stream.
 * Reference (io.h): lines end with "\n", one "\r" before it is dropped; a
 * line longer than max_len gives TIDE_EFRAME once and is skipped; at the
 * end a last line without "\n" is still a line (over max_len: TIDE_EFRAME);
 * then 0. The decoder must give exactly the reference's sequence, every
 * frame within max_len and free of "\n".
 */
#include <stdio.h>
#include <stdlib.h>

#include "fuzz/fuzz_stream.h"

#define FAIL(...)                                                              \
    do {                                                                       \
        fprintf(stderr, "fuzz_line: " __VA_ARGS__);                            \
        fprintf(stderr, "\n");                                                 \
        abort();                                                               \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The reference: the next expected result for the input from *pos. */
typedef struct ref {
    const uint8_t *d;
    size_t n, pos;
    size_t max;
    bool ended;
} ref_t;

static int ref_next(ref_t *r, const uint8_t **frame, size_t *len) {
    if (r->pos >= r->n)
        return 0;
    const uint8_t *start = r->d + r->pos;
    size_t avail = r->n - r->pos;
    const uint8_t *nl = memchr(start, '\n', avail);
    size_t l = nl != NULL ? (size_t)(nl - start) : avail;
    r->pos += nl != NULL ? l + 1 : l;
    if (l > 0 && start[l - 1] == '\r')
        l--;
    if (l > r->max)
        return TIDE_EFRAME;
    *frame = start;
    *len = l;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 3 || size > 65536)
        return 0;
    size_t cap = 2 + data[1] % 200;
    size_t max_len = data[0] % 220; /* sometimes over cap - 2: -EINVAL */
    uint32_t seed = data[2] * 2654435761u + (uint32_t)size;
    const uint8_t *in = data + 3;
    size_t n = size - 3;

    unsigned char *buf = malloc(cap);
    fz_stream_t fs;
    fz_init(&fs, in, n, seed, 1 + data[2] % 64);
    tide_bufreader_t br;
    if (tide_bufreader_init(&br, &fs.stream, buf, cap) != 0)
        FAIL("bufreader_init");
    tide_linecodec_t lc;
    tide_linecodec_init(&lc, max_len);
    size_t eff_max = max_len != 0 ? max_len : cap - 2;

    tide_decode_t dec;
    if (eff_max > cap - 2) {
        if (fz_run(tide_linecodec_decode(&dec, &lc, &br)) != -EINVAL)
            FAIL("max_len %zu > cap %zu - 2 accepted", max_len, cap);
        tide_future_drop(&dec.fut);
        free(buf);
        return 0;
    }
    ref_t ref = {in, n, 0, eff_max, false};
    for (unsigned i = 0;; i++) {
        if (i > n + 2)
            FAIL("more results than input bytes");
        intptr_t r = fz_run(tide_linecodec_decode(&dec, &lc, &br));
        const uint8_t *want;
        size_t wlen = 0;
        int exp = ref_next(&ref, &want, &wlen);
        if (r != exp)
            FAIL("result %u: %ld, expected %d (max %zu, cap %zu)", i, (long)r,
                 exp, eff_max, cap);
        if (r == 1) {
            if (dec.len > eff_max)
                FAIL("frame of %zu bytes over max %zu", dec.len, eff_max);
            if (dec.len > 0 && memchr(dec.frame, '\n', dec.len) != NULL)
                FAIL("frame contains a newline");
            if (dec.len != wlen || memcmp(dec.frame, want, wlen) != 0)
                FAIL("frame %u: %zu bytes, expected %zu", i, dec.len, wlen);
        }
        tide_future_drop(&dec.fut);
        if (r == 0)
            break;
    }
    /* the end stays the end */
    if (fz_run(tide_linecodec_decode(&dec, &lc, &br)) != 0)
        FAIL("decode after the end");
    tide_future_drop(&dec.fut);
    if (fs.cancels != 0)
        FAIL("a completed decode cancelled its stream");

    /* read_line over the same bytes: the lines come back, "\n" kept */
    fz_init(&fs, in, n, seed ^ 0x5bd1e995u, 1 + data[2] % 64);
    tide_bufreader_init(&br, &fs.stream, buf, cap);
    char line[80];
    size_t total = 0;
    for (;;) {
        tide_read_until_t rl;
        intptr_t r = fz_run(tide_read_line(&rl, &br, line, sizeof line));
        tide_future_drop(&rl.fut);
        if (r == 0)
            break;
        if (r != TIDE_EFRAME && r < 0)
            FAIL("read_line: %ld", (long)r);
        size_t got = rl.done;
        if (line[got] != '\0' || got > sizeof line - 1)
            FAIL("read_line: not NUL-terminated");
        if (memcmp(line, in + total, got) != 0)
            FAIL("read_line: bytes differ at %zu", total);
        total += got;
        if (total > n)
            FAIL("read_line: more bytes than the input");
    }
    if (total != n)
        FAIL("read_line: %zu of %zu bytes", total, n);
    free(buf);
    return 0;
}
