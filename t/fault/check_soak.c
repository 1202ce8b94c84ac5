/*
 * t/fault/check_soak.c: a seeded soak under system-call fault injection.
 *
 * At least TIDE_SOAK_OPS (default 100,000) I/O operations (each a completed
 * write_all, read_exact, frame encode or decode, ...) run through echo
 * (tide_copy of a stream onto itself), a proxy (copy_bidirectional), the
 * line and length-delimited codecs, TCP over loopback (accept4 and connect
 * included) and transfers killed by a hard error, while the shim
 * (t/fault/fault.c) makes the library's system calls answer EAGAIN on ready
 * descriptors, EINTR, 1-byte short counts, EMFILE/ENFILE/ECONNABORTED on
 * accept, EINTR on connect, and ECONNRESET/EPIPE at chosen points.
 *
 * Each scenario runs on both backends: epoll (the default: tide's write
 * events edge-triggered, its read events level-triggered), with the
 * faults a kernel can produce there, and libevent's poll backend
 * (level-triggered both ways), with all of them.
 *
 * Checked end to end: every byte that was accepted arrives once, in order
 * (the data is a function of the stream's id and the byte's offset, so the
 * receiver checks each byte where it lands); every injected hard error
 * surfaces as the right -E code and only the bytes accepted before it
 * arrive; nothing leaks (the shim's allocation counter, and ASan/valgrind);
 * nothing is left armed or registered.
 *
 * The seed is printed on stderr ("TIDE_FAULT_SEED=..."); set that variable
 * to replay a run (CK_RUN_CASE / CK_RUN_SUITE pick one test). All random
 * choices, the schedule's and the tests', come from it.
 */
#include <inttypes.h>
#include <stdio.h>

#include "testutil.h"
#include "fault/fault.h"

#include <tide/net.h>

/* Generous: the soak is bounded by its operation count, this only stops
 * a hang. */
#define SOAK_BOUND_MS 240000u

static unsigned long soak_ops(void) {
    const char *e = getenv("TIDE_SOAK_OPS");
    unsigned long n = e != NULL ? strtoul(e, NULL, 10) : 0;
    return n > 0 ? n : 100000;
}

/* Each test's share of the total, in percent. */
enum {
    SHARE_ECHO = 30,
    SHARE_PROXY = 15,
    SHARE_FRAMES = 25,
    SHARE_TCP = 20,
    SHARE_HARD = 10
};

/* Each scenario runs twice, on half its share each: on libevent's default
 * backend (epoll, where tide's write events are edge-triggered and its
 * read events level-triggered) and on the poll backend (EVENT_NOEPOLL=1:
 * level-triggered both ways). An edge-triggered write trusts EAGAIN to
 * mean "full", so the schedule on epoll leaves out what a kernel never
 * does on a writable descriptor (a spurious EAGAIN on a write: see
 * fault_plan_t.edge_triggered); everything else runs on both. */
static unsigned long quota(unsigned share) {
    unsigned long q = soak_ops() * share / 200;
    return q > 0 ? q : 1;
}

/* The soft faults every scenario runs under (rates per 100,000 calls),
 * adjusted to the backend by soak_begin. */
static const fault_plan_t soft = {
    .eagain = 15000, .eintr = 10000, .short_io = 20000};
static fault_plan_t soft_plan;

static tide_exec_t *soak_begin(const char *who, bool lt) {
    char name[64];
    snprintf(name, sizeof name, "%s (%s)", who,
             lt ? "poll, level-triggered" : "epoll, writes edge-triggered");
    fault_reset();
    fault_seed_from_env(name);
    if (lt)
        setenv("EVENT_NOEPOLL", "1", 1);
    tide_exec_t *ex = t_exec_new();
    unsetenv("EVENT_NOEPOLL");
    bool et = fault_edge_triggered(tide_exec_base(ex));
    ck_assert_msg(et == !lt, "%s: expected a %s-triggered reactor", name,
                  lt ? "level" : "edge");
    soft_plan = soft;
    soft_plan.edge_triggered = et;
    if (getenv("TIDE_SOAK_NOFAULT") != NULL)     /* to tell the library's own */
        memset(&soft_plan, 0, sizeof soft_plan); /* hangs from the faults' */
    fault_exclude_open_fds(); /* the executor's own descriptors */
    return ex;
}

static void soak_end(tide_exec_t *ex, unsigned long ops, unsigned long want) {
    fault_plan(NULL);
    fault_stats_t st;
    fault_stats(&st);
    unsigned long inj = 0;
    for (int k = 0; k < FAULT_NKIND; k++)
        inj += st.injected[k];
    fprintf(stderr,
            "  %lu operations, %lu faults injected (EAGAIN %lu, EINTR %lu, "
            "short %lu, ECONNRESET %lu, EPIPE %lu, EMFILE %lu, ENFILE %lu, "
            "ECONNABORTED %lu)\n",
            ops, inj, st.injected[FAULT_K_EAGAIN], st.injected[FAULT_K_EINTR],
            st.injected[FAULT_K_SHORT], st.injected[FAULT_K_ECONNRESET],
            st.injected[FAULT_K_EPIPE], st.injected[FAULT_K_EMFILE],
            st.injected[FAULT_K_ENFILE], st.injected[FAULT_K_ECONNABORTED]);
    ck_assert_uint_ge(ops, want);
    if (getenv("TIDE_SOAK_NOFAULT") == NULL)
        ck_assert_uint_gt(inj, 0);
    t_exec_free_clean(ex);
    ck_assert_int_eq(fault_live_allocs(), 0);
    fault_reset();
}

/* The byte at offset `off` of stream `id`. */
static inline unsigned char pat(unsigned id, uint64_t off) {
    uint64_t x = (off + 1) * 0x9e3779b97f4a7c15u ^ (uint64_t)id * 0xff51afd7u;
    return (unsigned char)(x >> 29);
}

static void pat_fill(unsigned char *p, size_t n, unsigned id, uint64_t off) {
    for (size_t i = 0; i < n; i++)
        p[i] = pat(id, off + i);
}

/* Index of the first byte of p that is not the pattern, or n. */
static size_t pat_check(const unsigned char *p, size_t n, unsigned id,
                        uint64_t off) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != pat(id, off + i))
            return i;
    return n;
}

/* A private generator, so two tasks can draw the same sequence whatever
 * the interleaving. */
static uint64_t sm64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* Spawn fut and keep its join handle. */
static void spawn(tide_exec_t *ex, tide_future_t *fut, tide_join_t *j) {
    ck_assert_int_eq(tide_spawn(ex, fut, j), 0);
}

/* Await a join handle (bounded); returns the task's result. */
static intptr_t join(tide_exec_t *ex, tide_join_t *j) {
    ck_assert_int_eq(t_block_on_ms(ex, tide_join(j), SOAK_BOUND_MS), 0);
    intptr_t r = tide_join(j)->result;
    tide_future_drop(tide_join(j));
    return r;
}

/* ------------------------------------------------------------------------
 * Echo: a client writes random-sized chunks and reads each one back; the
 * server is tide_copy(s, s) followed by a shutdown.
 * ------------------------------------------------------------------------ */

#define CHUNK_MAX 16384

typedef struct eclient {
    tide_future_t fut;
    tide_async_t co;
    tide_stream_t *s;
    unsigned id;
    unsigned long *ops, quota, done;
    uint64_t off;
    size_t n;
    tide_write_all_t wr;
    tide_read_exact_t rd;
    tide_shutdown_t sh;
    tide_read_t eof;
    unsigned char out[CHUNK_MAX], in[CHUNK_MAX];
} eclient_t;

static tide_poll_t eclient_poll(tide_future_t *f, tide_cx_t *cx) {
    eclient_t *c = TIDE_CONTAINER_OF(f, eclient_t, fut);
    TIDE_BEGIN(&c->co);
    while (c->done < c->quota) {
        c->n = 1 + (size_t)(fault_rand() % CHUNK_MAX);
        pat_fill(c->out, c->n, c->id, c->off);
        TIDE_AWAIT(&c->co, cx, tide_write_all(&c->wr, c->s, c->out, c->n));
        if (tide_async_result(&c->co) != (intptr_t)c->n)
            TIDE_RETURN(&c->co, f,
                        tide_async_result(&c->co) < 0
                            ? tide_async_result(&c->co)
                            : -EIO);
        (*c->ops)++;
        TIDE_AWAIT(&c->co, cx, tide_read_exact(&c->rd, c->s, c->in, c->n));
        if (tide_async_result(&c->co) != (intptr_t)c->n)
            TIDE_RETURN(&c->co, f,
                        tide_async_result(&c->co) < 0
                            ? tide_async_result(&c->co)
                            : -EIO);
        if (pat_check(c->in, c->n, c->id, c->off) != c->n)
            TIDE_RETURN(&c->co, f, -EILSEQ);
        (*c->ops)++;
        c->done += 2;
        c->off += c->n;
    }
    TIDE_AWAIT(&c->co, cx, tide_shutdown(&c->sh, c->s));
    if (tide_async_result(&c->co) != 0)
        TIDE_RETURN(&c->co, f, tide_async_result(&c->co));
    TIDE_AWAIT(&c->co, cx, tide_read(&c->eof, c->s, c->in, sizeof c->in));
    TIDE_END(&c->co, f, tide_async_result(&c->co) == 0 ? 0 : -EPROTO);
}

static void eclient_drop(tide_future_t *f) {
    eclient_t *c = TIDE_CONTAINER_OF(f, eclient_t, fut);
    tide_async_drop(&c->co);
}

static const tide_future_vtable_t eclient_vt = {eclient_poll, eclient_drop};

static eclient_t *eclient_new(tide_stream_t *s, unsigned id, unsigned long *ops,
                              unsigned long q) {
    eclient_t *c = calloc(1, sizeof *c);
    c->s = s;
    c->id = id;
    c->ops = ops;
    c->quota = q;
    tide_future_init(&c->fut, &eclient_vt);
    return c;
}

typedef struct eserver {
    tide_future_t fut;
    tide_async_t co;
    tide_stream_t *s;
    intptr_t copied;
    tide_copy_buf_t copy;
    tide_shutdown_t sh;
} eserver_t;

static tide_poll_t eserver_poll(tide_future_t *f, tide_cx_t *cx) {
    eserver_t *e = TIDE_CONTAINER_OF(f, eserver_t, fut);
    TIDE_BEGIN(&e->co);
    TIDE_AWAIT(&e->co, cx, tide_copy_default(&e->copy, e->s, e->s));
    e->copied = tide_async_result(&e->co);
    if (e->copied < 0)
        TIDE_RETURN(&e->co, f, e->copied);
    TIDE_AWAIT(&e->co, cx, tide_shutdown(&e->sh, e->s));
    TIDE_END(&e->co, f,
             tide_async_result(&e->co) < 0 ? tide_async_result(&e->co)
                                           : e->copied);
}

static void eserver_drop(tide_future_t *f) {
    eserver_t *e = TIDE_CONTAINER_OF(f, eserver_t, fut);
    tide_async_drop(&e->co);
}

static const tide_future_vtable_t eserver_vt = {eserver_poll, eserver_drop};

static eserver_t *eserver_new(tide_stream_t *s) {
    eserver_t *e = calloc(1, sizeof *e);
    e->s = s;
    tide_future_init(&e->fut, &eserver_vt);
    return e;
}

#define NPAIRS 6

static void soak_echo(bool lt) {
    tide_exec_t *ex = soak_begin("check_soak/echo", lt);
    unsigned long ops = 0, q = quota(SHARE_ECHO);
    tide_unix_t *a[NPAIRS], *b[NPAIRS];
    eclient_t *cl[NPAIRS];
    eserver_t *sv[NPAIRS];
    tide_join_t jc[NPAIRS], js[NPAIRS];
    for (int i = 0; i < NPAIRS; i++) {
        ck_assert_int_eq(tide_socketpair(&a[i], &b[i], ex), 0);
        fault_target(tide_fd_get(tide_unix_fd(a[i])), true);
        fault_target(tide_fd_get(tide_unix_fd(b[i])), true);
        cl[i] = eclient_new(tide_unix_stream(a[i]), (unsigned)i, &ops,
                            q / NPAIRS + 2);
        sv[i] = eserver_new(tide_unix_stream(b[i]));
        spawn(ex, &cl[i]->fut, &jc[i]);
        spawn(ex, &sv[i]->fut, &js[i]);
    }
    fault_plan(&soft_plan);
    for (int i = 0; i < NPAIRS; i++) {
        ck_assert_int_eq(join(ex, &jc[i]), 0);
        ck_assert_int_eq(join(ex, &js[i]), (intptr_t)cl[i]->off);
    }
    for (int i = 0; i < NPAIRS; i++) {
        tide_unix_free(a[i]);
        tide_unix_free(b[i]);
        free(cl[i]);
        free(sv[i]);
    }
    soak_end(ex, ops, q);
}

START_TEST(test_soak_echo) {
    soak_echo(false);
    soak_echo(true);
}
END_TEST

/* ------------------------------------------------------------------------
 * Proxy: client <-> [p1 | copy_bidirectional | p2] <-> echo server. The
 * client's shutdown travels to the server and the server's back.
 * ------------------------------------------------------------------------ */

typedef struct proxy {
    tide_future_t fut;
    tide_async_t co;
    tide_stream_t *a, *b;
    tide_copy_bidirectional_buf_t bi;
    uint64_t ab, ba;
} proxy_t;

static tide_poll_t proxy_poll(tide_future_t *f, tide_cx_t *cx) {
    proxy_t *p = TIDE_CONTAINER_OF(f, proxy_t, fut);
    TIDE_BEGIN(&p->co);
    TIDE_AWAIT(&p->co, cx, tide_copy_bidirectional_default(&p->bi, p->a, p->b));
    p->ab = tide_copy_bidirectional_a_to_b(&p->bi.copy);
    p->ba = tide_copy_bidirectional_b_to_a(&p->bi.copy);
    TIDE_END(&p->co, f, tide_async_result(&p->co));
}

static void proxy_drop(tide_future_t *f) {
    proxy_t *p = TIDE_CONTAINER_OF(f, proxy_t, fut);
    tide_async_drop(&p->co);
}

#define NPROXY 4

static const tide_future_vtable_t proxy_vt = {proxy_poll, proxy_drop};

static void soak_proxy(bool lt) {
    tide_exec_t *ex = soak_begin("check_soak/proxy", lt);
    unsigned long ops = 0, q = quota(SHARE_PROXY);
    tide_unix_t *c[NPROXY], *p1[NPROXY], *p2[NPROXY], *s[NPROXY];
    eclient_t *cl[NPROXY];
    eserver_t *sv[NPROXY];
    proxy_t *px[NPROXY];
    tide_join_t jc[NPROXY], js[NPROXY], jp[NPROXY];
    for (int i = 0; i < NPROXY; i++) {
        ck_assert_int_eq(tide_socketpair(&c[i], &p1[i], ex), 0);
        ck_assert_int_eq(tide_socketpair(&p2[i], &s[i], ex), 0);
        fault_target(tide_fd_get(tide_unix_fd(c[i])), true);
        fault_target(tide_fd_get(tide_unix_fd(p1[i])), true);
        fault_target(tide_fd_get(tide_unix_fd(p2[i])), true);
        fault_target(tide_fd_get(tide_unix_fd(s[i])), true);
        cl[i] = eclient_new(tide_unix_stream(c[i]), 100u + (unsigned)i, &ops,
                            q / NPROXY + 2);
        sv[i] = eserver_new(tide_unix_stream(s[i]));
        px[i] = calloc(1, sizeof *px[i]);
        px[i]->a = tide_unix_stream(p1[i]);
        px[i]->b = tide_unix_stream(p2[i]);
        tide_future_init(&px[i]->fut, &proxy_vt);
        spawn(ex, &cl[i]->fut, &jc[i]);
        spawn(ex, &px[i]->fut, &jp[i]);
        spawn(ex, &sv[i]->fut, &js[i]);
    }
    fault_plan(&soft_plan);
    for (int i = 0; i < NPROXY; i++) {
        ck_assert_int_eq(join(ex, &jc[i]), 0);
        ck_assert_int_eq(join(ex, &js[i]), (intptr_t)cl[i]->off);
        ck_assert_int_eq(join(ex, &jp[i]), 0);
        ck_assert_uint_eq(px[i]->ab, cl[i]->off);
        ck_assert_uint_eq(px[i]->ba, cl[i]->off);
    }
    for (int i = 0; i < NPROXY; i++) {
        tide_unix_free(c[i]);
        tide_unix_free(p1[i]);
        tide_unix_free(p2[i]);
        tide_unix_free(s[i]);
        free(cl[i]);
        free(sv[i]);
        free(px[i]);
    }
    soak_end(ex, ops, q);
}

START_TEST(test_soak_proxy) {
    soak_proxy(false);
    soak_proxy(true);
}
END_TEST

/* ------------------------------------------------------------------------
 * Frames: lines over a pipe, length-delimited frames over a socket pair.
 * Writer and reader draw the same frame sizes from generators with the
 * same seed; the reader checks every frame's length and bytes.
 * ------------------------------------------------------------------------ */

#define LINE_MAX_LEN 3000
#define LEN_MAX_FRAME 40000

static unsigned char line_byte(unsigned id, uint64_t off) {
    unsigned char b = pat(id, off);
    return b == '\n' || b == '\r' ? 'x' : b;
}

typedef struct fwriter {
    tide_future_t fut;
    tide_async_t co;
    tide_stream_t *s;
    bool lines;
    uint64_t rng, off;
    unsigned long *ops, quota, i;
    size_t n;
    tide_linecodec_t lc;
    tide_lencodec_t len;
    tide_encode_t enc;
    tide_shutdown_t sh;
    unsigned char buf[LEN_MAX_FRAME];
} fwriter_t;

static size_t frame_len(uint64_t *rng, bool lines) {
    uint64_t r = sm64(rng);
    if (r % 16 == 0)
        return 0; /* empty frames too */
    size_t max = lines ? LINE_MAX_LEN : LEN_MAX_FRAME;
    /* mostly small, sometimes up to the maximum */
    return (size_t)((r >> 8) % (r % 4 == 0 ? max + 1 : 200));
}

static tide_poll_t fwriter_poll(tide_future_t *f, tide_cx_t *cx) {
    fwriter_t *w = TIDE_CONTAINER_OF(f, fwriter_t, fut);
    TIDE_BEGIN(&w->co);
    for (w->i = 0; w->i < w->quota; w->i++) {
        w->n = frame_len(&w->rng, w->lines);
        for (size_t k = 0; k < w->n; k++)
            w->buf[k] =
                w->lines ? line_byte(7, w->off + k) : pat(8, w->off + k);
        if (w->lines)
            TIDE_AWAIT(
                &w->co, cx,
                tide_linecodec_encode(&w->enc, &w->lc, w->s, w->buf, w->n));
        else
            TIDE_AWAIT(
                &w->co, cx,
                tide_lencodec_encode(&w->enc, &w->len, w->s, w->buf, w->n));
        if (tide_async_result(&w->co) < 0)
            TIDE_RETURN(&w->co, f, tide_async_result(&w->co));
        w->off += w->n;
        (*w->ops)++;
    }
    TIDE_AWAIT(&w->co, cx, tide_shutdown(&w->sh, w->s));
    TIDE_END(&w->co, f, tide_async_result(&w->co));
}

static void fwriter_drop(tide_future_t *f) {
    fwriter_t *w = TIDE_CONTAINER_OF(f, fwriter_t, fut);
    tide_async_drop(&w->co);
}

typedef struct freader {
    tide_future_t fut;
    tide_async_t co;
    bool lines;
    uint64_t rng, off;
    unsigned long *ops, frames;
    size_t want;
    tide_linecodec_t lc;
    tide_lencodec_t len;
    tide_bufreader_t br;
    tide_decode_t dec;
    unsigned char buf[LEN_MAX_FRAME + 8];
} freader_t;

static tide_poll_t freader_poll(tide_future_t *f, tide_cx_t *cx) {
    freader_t *r = TIDE_CONTAINER_OF(f, freader_t, fut);
    TIDE_BEGIN(&r->co);
    for (;;) {
        if (r->lines)
            TIDE_AWAIT(&r->co, cx,
                       tide_linecodec_decode(&r->dec, &r->lc, &r->br));
        else
            TIDE_AWAIT(&r->co, cx,
                       tide_lencodec_decode(&r->dec, &r->len, &r->br));
        if (tide_async_result(&r->co) == 0)
            break; /* clean end */
        if (tide_async_result(&r->co) != 1)
            TIDE_RETURN(&r->co, f,
                        tide_async_result(&r->co) < 0
                            ? tide_async_result(&r->co)
                            : -EPROTO);
        r->want = frame_len(&r->rng, r->lines);
        if (r->dec.len != r->want)
            TIDE_RETURN(&r->co, f, -EMSGSIZE);
        for (size_t k = 0; k < r->want; k++) {
            unsigned char b = ((const unsigned char *)r->dec.frame)[k];
            unsigned char e =
                r->lines ? line_byte(7, r->off + k) : pat(8, r->off + k);
            if (b != e)
                TIDE_RETURN(&r->co, f, -EILSEQ);
        }
        r->off += r->want;
        r->frames++;
        (*r->ops)++;
    }
    TIDE_END(&r->co, f, (intptr_t)r->frames);
}

static void freader_drop(tide_future_t *f) {
    freader_t *r = TIDE_CONTAINER_OF(f, freader_t, fut);
    tide_async_drop(&r->co);
}

static const tide_future_vtable_t freader_vt = {freader_poll, freader_drop};

static const tide_future_vtable_t fwriter_vt = {fwriter_poll, fwriter_drop};

static void soak_frames(bool lt) {
    tide_exec_t *ex = soak_begin("check_soak/frames", lt);
    unsigned long ops = 0, q = quota(SHARE_FRAMES);
    /* lines over a pipe */
    tide_fdstream_t *prd, *pwr;
    ck_assert_int_eq(tide_pipe(&prd, &pwr, ex), 0);
    /* length-delimited over a socket pair */
    tide_unix_t *sa, *sb;
    ck_assert_int_eq(tide_socketpair(&sa, &sb, ex), 0);
    fault_target(tide_fd_get(tide_fdstream_fd(prd)), true);
    fault_target(tide_fd_get(tide_fdstream_fd(pwr)), true);
    fault_target(tide_fd_get(tide_unix_fd(sa)), true);
    fault_target(tide_fd_get(tide_unix_fd(sb)), true);

    fwriter_t *w[2];
    freader_t *r[2];
    tide_join_t jw[2], jr[2];
    for (int i = 0; i < 2; i++) {
        bool lines = i == 0;
        uint64_t seed = fault_rand();
        w[i] = calloc(1, sizeof *w[i]);
        r[i] = calloc(1, sizeof *r[i]);
        w[i]->lines = r[i]->lines = lines;
        w[i]->rng = r[i]->rng = seed;
        w[i]->ops = r[i]->ops = &ops;
        w[i]->quota = q / 4 + 1;
        w[i]->s = lines ? tide_fdstream_stream(pwr) : tide_unix_stream(sa);
        tide_linecodec_init(&w[i]->lc, LINE_MAX_LEN);
        tide_linecodec_init(&r[i]->lc, LINE_MAX_LEN);
        ck_assert_int_eq(tide_lencodec_init(&w[i]->len, 4, 0, LEN_MAX_FRAME),
                         0);
        ck_assert_int_eq(tide_lencodec_init(&r[i]->len, 4, 0, LEN_MAX_FRAME),
                         0);
        ck_assert_int_eq(tide_bufreader_init(&r[i]->br,
                                             lines ? tide_fdstream_stream(prd)
                                                   : tide_unix_stream(sb),
                                             r[i]->buf, sizeof r[i]->buf),
                         0);
        tide_future_init(&w[i]->fut, &fwriter_vt);
        tide_future_init(&r[i]->fut, &freader_vt);
        spawn(ex, &w[i]->fut, &jw[i]);
        spawn(ex, &r[i]->fut, &jr[i]);
    }
    fault_plan(&soft_plan);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(join(ex, &jw[i]), 0);
        ck_assert_int_eq(join(ex, &jr[i]), (intptr_t)w[i]->quota);
        ck_assert_uint_eq(r[i]->off, w[i]->off);
        free(w[i]);
        free(r[i]);
    }
    tide_fdstream_free(prd);
    tide_fdstream_free(pwr);
    tide_unix_free(sa);
    tide_unix_free(sb);
    soak_end(ex, ops, q);
}

START_TEST(test_soak_frames) {
    soak_frames(false);
    soak_frames(true);
}
END_TEST

/* ------------------------------------------------------------------------
 * TCP over loopback: an acceptor task hands each connection to an echo
 * server task; clients connect (connect may be interrupted), echo, close.
 * Faults on every descriptor but the executor's: accept4 also gets EMFILE,
 * ENFILE and ECONNABORTED (each EMFILE pauses the listener >= 1 ms).
 * ------------------------------------------------------------------------ */

#define TCP_CLIENTS 4
#define TCP_ROUNDS 6 /* connections per client, one after the other */

typedef struct acceptor {
    tide_future_t fut;
    tide_async_t co;
    tide_tcp_listener_t *l;
    int want, got;
    tide_tcp_accept_t acc;
    tide_tcp_t *conns[TCP_CLIENTS * TCP_ROUNDS];
    eserver_t *srv[TCP_CLIENTS * TCP_ROUNDS];
    tide_join_t js[TCP_CLIENTS * TCP_ROUNDS];
} acceptor_t;

static tide_poll_t acceptor_poll(tide_future_t *f, tide_cx_t *cx) {
    acceptor_t *a = TIDE_CONTAINER_OF(f, acceptor_t, fut);
    TIDE_BEGIN(&a->co);
    for (a->got = 0; a->got < a->want; a->got++) {
        TIDE_AWAIT(&a->co, cx, tide_tcp_accept(&a->acc, a->l));
        if (tide_async_result(&a->co) != 0)
            TIDE_RETURN(&a->co, f, tide_async_result(&a->co));
        a->conns[a->got] = a->acc.conn;
        /* an echo of small pieces: without NODELAY, Nagle and delayed ACKs
         * add 40 ms per short write */
        tide_tcp_set_nodelay(a->acc.conn, true);
        a->srv[a->got] = eserver_new(tide_tcp_stream(a->acc.conn));
        if (tide_spawn(cx->exec, &a->srv[a->got]->fut, &a->js[a->got]) != 0)
            TIDE_RETURN(&a->co, f, -ENOMEM);
    }
    TIDE_END(&a->co, f, 0);
}

static void acceptor_drop(tide_future_t *f) {
    acceptor_t *a = TIDE_CONTAINER_OF(f, acceptor_t, fut);
    tide_async_drop(&a->co);
}

typedef struct tclient {
    tide_future_t fut;
    tide_async_t co;
    tide_addr_t addr;
    unsigned id;
    int round;
    unsigned long *ops, quota;
    uint64_t total;
    tide_tcp_connect_t conn;
    tide_tcp_t *t;
    eclient_t *ec;
} tclient_t;

static tide_poll_t tclient_poll(tide_future_t *f, tide_cx_t *cx) {
    tclient_t *c = TIDE_CONTAINER_OF(f, tclient_t, fut);
    TIDE_BEGIN(&c->co);
    for (c->round = 0; c->round < TCP_ROUNDS; c->round++) {
        TIDE_AWAIT(&c->co, cx, tide_tcp_connect_addr(&c->conn, &c->addr));
        if (tide_async_result(&c->co) != 0)
            TIDE_RETURN(&c->co, f, tide_async_result(&c->co));
        c->t = c->conn.conn;
        tide_tcp_set_nodelay(c->t, true);
        (*c->ops)++;
        c->ec = eclient_new(tide_tcp_stream(c->t),
                            c->id * 100u + (unsigned)c->round, c->ops,
                            c->quota / TCP_ROUNDS + 2);
        /* the echo client runs inline, as a sub-future */
        TIDE_AWAIT(&c->co, cx, &c->ec->fut);
        c->total += c->ec->off;
        free(c->ec);
        c->ec = NULL;
        tide_tcp_free(c->t);
        c->t = NULL;
        if (tide_async_result(&c->co) != 0)
            TIDE_RETURN(&c->co, f, tide_async_result(&c->co));
    }
    TIDE_END(&c->co, f, 0);
}

static void tclient_drop(tide_future_t *f) {
    tclient_t *c = TIDE_CONTAINER_OF(f, tclient_t, fut);
    tide_async_drop(&c->co);
    free(c->ec);
    tide_tcp_free(c->t);
}

static const tide_future_vtable_t tclient_vt = {tclient_poll, tclient_drop};

static const tide_future_vtable_t acceptor_vt = {acceptor_poll, acceptor_drop};

static void soak_tcp(bool lt) {
    tide_exec_t *ex = soak_begin("check_soak/tcp", lt);
    unsigned long ops = 0, q = quota(SHARE_TCP);
    tide_tcp_listener_t *l;
    ck_assert_int_eq(tide_tcp_listener_bind(&l, ex, "127.0.0.1:0", 0, 0), 0);
    tide_addr_t addr;
    ck_assert_int_eq(tide_tcp_listener_local_addr(l, &addr), 0);

    acceptor_t *acc = calloc(1, sizeof *acc);
    acc->l = l;
    acc->want = TCP_CLIENTS * TCP_ROUNDS;
    tide_future_init(&acc->fut, &acceptor_vt);
    tide_join_t ja;
    spawn(ex, &acc->fut, &ja);
    tclient_t *cl[TCP_CLIENTS];
    tide_join_t jc[TCP_CLIENTS];
    for (int i = 0; i < TCP_CLIENTS; i++) {
        cl[i] = calloc(1, sizeof *cl[i]);
        cl[i]->addr = addr;
        cl[i]->id = (unsigned)i + 1;
        cl[i]->ops = &ops;
        cl[i]->quota = q / TCP_CLIENTS;
        tide_future_init(&cl[i]->fut, &tclient_vt);
        spawn(ex, &cl[i]->fut, &jc[i]);
    }
    fault_target_all(true);
    fault_plan_t plan = soft_plan;
    plan.emfile = 1500;
    plan.enfile = 1500;
    plan.econnaborted = 3000;
    plan.eintr = 20000; /* connect: interrupted, goes on */
    fault_plan(&plan);
    uint64_t total = 0;
    for (int i = 0; i < TCP_CLIENTS; i++) {
        ck_assert_int_eq(join(ex, &jc[i]), 0);
        total += cl[i]->total;
    }
    ck_assert_int_eq(join(ex, &ja), 0);
    uint64_t served = 0;
    for (int i = 0; i < acc->want; i++) {
        intptr_t r = join(ex, &acc->js[i]);
        ck_assert_int_ge(r, 0);
        served += (uint64_t)r;
        tide_tcp_free(acc->conns[i]);
        free(acc->srv[i]);
    }
    ck_assert_uint_eq(served, total);
    fault_plan(NULL);
    tide_listener_stats_t st;
    tide_tcp_listener_stats(l, &st);
    ck_assert_uint_eq(st.accepted, (uint64_t)acc->want);
    fprintf(stderr,
            "  tcp: %" PRIu64 " bytes echoed, listener backoffs %" PRIu64
            ", skipped %" PRIu64 "\n",
            total, st.backoffs, st.skipped);
    for (int i = 0; i < TCP_CLIENTS; i++)
        free(cl[i]);
    free(acc);
    tide_tcp_listener_free(l);
    soak_end(ex, ops, q);
}

START_TEST(test_soak_tcp) {
    soak_tcp(false);
    soak_tcp(true);
}
END_TEST

/* ------------------------------------------------------------------------
 * Hard errors: a transfer in which one side dies (ECONNRESET on a recv of
 * the reader, or EPIPE / ECONNRESET on a send of the writer) at a random
 * call. The dying side's future fails with exactly that code; it then
 * closes its end; the other side sees its end of the story (EOF for the
 * reader after the writer died, -EPIPE or success for the writer after
 * the reader died). Either way the reader got exactly a prefix of what was
 * sent, and, when the writer died, exactly what the writer had written.
 * ------------------------------------------------------------------------ */

typedef struct hside {
    tide_future_t fut;
    tide_async_t co;
    tide_unix_t *u; /* closed by the side itself on error */
    bool writer;
    size_t len;
    size_t done;
    unsigned id;
    union {
        tide_write_all_t wr;
        tide_read_exact_t rd;
    } op;
    unsigned char *buf;
} hside_t;

static tide_poll_t hside_poll(tide_future_t *f, tide_cx_t *cx) {
    hside_t *h = TIDE_CONTAINER_OF(f, hside_t, fut);
    TIDE_BEGIN(&h->co);
    if (h->writer)
        TIDE_AWAIT(
            &h->co, cx,
            tide_write_all(&h->op.wr, tide_unix_stream(h->u), h->buf, h->len));
    else
        TIDE_AWAIT(
            &h->co, cx,
            tide_read_exact(&h->op.rd, tide_unix_stream(h->u), h->buf, h->len));
    h->done = h->writer ? h->op.wr.done : h->op.rd.done;
    if (tide_async_result(&h->co) != (intptr_t)h->len) {
        tide_unix_free(h->u); /* a dead end is closed: the peer must see it */
        h->u = NULL;
    }
    TIDE_END(&h->co, f, tide_async_result(&h->co));
}

static void hside_drop(tide_future_t *f) {
    hside_t *h = TIDE_CONTAINER_OF(f, hside_t, fut);
    tide_async_drop(&h->co);
}

#define HARD_MAX 300000

static const tide_future_vtable_t hside_vt = {hside_poll, hside_drop};

static void soak_hard_errors(bool lt) {
    tide_exec_t *ex = soak_begin("check_soak/hard", lt);
    unsigned long ops = 0, q = quota(SHARE_HARD);
    unsigned char *out = malloc(HARD_MAX), *in = malloc(HARD_MAX);
    unsigned long rounds = 0, fired = 0;
    static const struct {
        bool reader;
        enum fault_fn fn;
        int err;
    } kinds[] = {
        {true, FAULT_RECV, ECONNRESET},
        {false, FAULT_SEND, EPIPE},
        {false, FAULT_SEND, ECONNRESET},
    };
    fault_plan(&soft_plan);
    while (ops < q) {
        rounds++;
        tide_unix_t *a, *b;
        ck_assert_int_eq(tide_socketpair(&a, &b, ex), 0);
        int fa = tide_fd_get(tide_unix_fd(a)),
            fb = tide_fd_get(tide_unix_fd(b));
        fault_target(fa, true);
        fault_target(fb, true);
        size_t len = 1 + (size_t)(fault_rand() % HARD_MAX);
        unsigned id = (unsigned)rounds;
        pat_fill(out, len, id, 0);
        int kind = (int)(fault_rand() % 3);
        unsigned long nth = 1 + fault_rand() % 8;
        fault_arm_hard(kinds[kind].reader ? fb : fa, kinds[kind].fn, nth,
                       kinds[kind].err);
        fault_stats_t st0, st1;
        fault_stats(&st0);

        hside_t w = {.u = a, .writer = true, .len = len, .buf = out};
        hside_t r = {.u = b, .writer = false, .len = len, .buf = in};
        tide_future_init(&w.fut, &hside_vt);
        tide_future_init(&r.fut, &hside_vt);
        tide_join_t jw, jr;
        spawn(ex, &w.fut, &jw);
        spawn(ex, &r.fut, &jr);
        intptr_t rw = join(ex, &jw), rr = join(ex, &jr);
        fault_stats(&st1);
        enum fault_kind fk =
            kinds[kind].err == EPIPE ? FAULT_K_EPIPE : FAULT_K_ECONNRESET;
        bool hit = st1.injected[fk] > st0.injected[fk];
        int want = -kinds[kind].err;

        /* the reader got a prefix of what was sent, never more */
        ck_assert_uint_le(r.done, w.done);
        ck_assert_uint_eq(pat_check(in, r.done, id, 0), r.done);
        if (!hit) {
            /* the transfer needed fewer calls than nth: all went through */
            ck_assert_int_eq(rw, (intptr_t)len);
            ck_assert_int_eq(rr, (intptr_t)len);
        } else if (kinds[kind].reader) {
            fired++;
            ck_assert_msg(rr == want, "reader: %s, expected %s",
                          tide_err_name((int)rr), tide_err_name(want));
            /* the writer then finished into the buffer or met the close */
            ck_assert_msg(
                rw == (intptr_t)len || rw == -EPIPE || rw == -ECONNRESET,
                "writer after the reader died: %s", tide_err_name((int)rw));
        } else {
            fired++;
            ck_assert_msg(rw == want, "writer: %s, expected %s",
                          tide_err_name((int)rw), tide_err_name(want));
            /* every byte the writer got accepted arrived, once, in order,
             * and then the stream ended */
            ck_assert_int_eq(rr, TIDE_EEOF);
            ck_assert_uint_eq(r.done, w.done);
        }
        tide_unix_free(w.u);
        tide_unix_free(r.u);
        ops += 2;
    }
    ck_assert_uint_gt(fired, rounds / 8);
    fprintf(stderr, "  hard: %lu transfers, %lu killed by an injected error\n",
            rounds, fired);
    free(out);
    free(in);
    soak_end(ex, ops, q);
}

START_TEST(test_soak_hard_errors) {
    soak_hard_errors(false);
    soak_hard_errors(true);
}
END_TEST

static void add_case(Suite *s, const char *name, const TTest *test) {
    TCase *tc = tcase_create(name);
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, test);
    suite_add_tcase(s, tc);
}

/* One TCase per scenario, so that CK_RUN_CASE=<name> replays one. The
 * timeout (seconds) is scaled by CK_TIMEOUT_MULTIPLIER (valgrind). */
static Suite *soak_suite(void) {
    Suite *s = suite_create("soak");
    add_case(s, "echo", test_soak_echo);
    add_case(s, "proxy", test_soak_proxy);
    add_case(s, "frames", test_soak_frames);
    add_case(s, "tcp", test_soak_tcp);
    add_case(s, "hard", test_soak_hard_errors);
    return s;
}

int main(void) { return t_run_suite(soak_suite()); }
