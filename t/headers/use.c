/*
 * t/headers/use.c: uses what the public headers define in macros and
 * inline functions, so that compiling it as C11 and as C++ (see
 * t/check_headers.sh) checks more than the declarations. Compiled only,
 * never linked or run. Kept valid in both languages: no designated
 * initializers, no compound literals, no implicit conversions from void *.
 */
#include <tide.h>
#include <tide/net.h>

typedef struct {
    tide_future_t fut;
    tide_async_t co;
    tide_sleep_t nap;
    tide_yield_t y;
    int i;
} ticker_t;

static tide_poll_t ticker_poll(tide_future_t *f, tide_cx_t *cx) {
    ticker_t *t = TIDE_CONTAINER_OF(f, ticker_t, fut);
    TIDE_BEGIN(&t->co);
    for (t->i = 0; t->i < 3; t->i++) {
        TIDE_AWAIT(&t->co, cx, tide_sleep(&t->nap, 10 * TIDE_USEC_PER_MSEC));
        if (tide_async_result(&t->co) < 0)
            TIDE_RETURN(&t->co, f, tide_async_result(&t->co));
        TIDE_YIELD(&t->co, cx);
        TIDE_AWAIT(&t->co, cx, tide_yield(&t->y));
    }
    TIDE_END(&t->co, f, 0);
}

static void ticker_drop(tide_future_t *f) {
    ticker_t *t = TIDE_CONTAINER_OF(f, ticker_t, fut);
    tide_async_drop(&t->co);
}

static tide_poll_t echo_read(tide_stream_t *s, tide_cx_t *cx, void *buf,
                             size_t len, ssize_t *out) {
    (void)s;
    (void)cx;
    (void)buf;
    *out = (ssize_t)len;
    return TIDE_READY;
}

int tide_headers_use(void);

static const tide_future_vtable_t ticker_vt = {ticker_poll, ticker_drop};

int tide_headers_use(void) {
    tide_waker_t w = TIDE_WAKER_EMPTY;
    tide_waker_t copy;
    tide_cx_t cx;
    ticker_t t;
    tide_stream_vt_t vt;
    tide_stream_t s;
    char buf[16];
    ssize_t n = 0;
    int err = 0;

    copy = TIDE_WAKER_EMPTY;
    (void)copy;
    tide_cx_init(&cx, NULL, &w);
    tide_future_init(&t.fut, &ticker_vt);
    t.co.line = 0;
    t.co.awaiting = NULL;
    if (tide_future_poll(&t.fut, &cx) == TIDE_READY &&
        tide_future_is_done(&t.fut))
        err = (int)t.fut.result;
    tide_future_drop(&t.fut);
    if (tide_waker_is_empty(&w))
        err += 1;

    vt.poll_read = echo_read;
    vt.poll_write = NULL;
    vt.poll_writev = NULL;
    vt.poll_flush = NULL;
    vt.poll_shutdown = NULL;
    tide_waitq_t q;
    tide_waitq_init(&q, NULL);
    tide_stream_init(&s, &vt, &q, &q);
    (void)tide_stream_poll_read(&s, &cx, buf, sizeof buf, &n);
    (void)tide_stream_poll_flush(&s, &cx, &err);
    tide_waiter_t wt;
    tide_waiter_init(&wt);
    if (tide_waiter_error(&wt) != 0 || tide_waiter_is_waiting(&wt) ||
        tide_waitq_len(&q) != 0)
        err += 4;

    if (TIDE_VERSION_NUMBER != tide_version_number())
        err += 2;
    (void)tide_strerror(TIDE_EBLOCKING);
    (void)tide_err_name(-ECONNRESET);
    return err + (int)n + (int)sizeof(tide_addr_t);
}
