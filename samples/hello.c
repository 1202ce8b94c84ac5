/*
 * samples/hello.c: the smallest tide program: one task that ticks three
 * times on an interval, run by tide_exec_block_on.
 */
#include <stdio.h>
#include <stdlib.h>

#include <tide.h>

typedef struct {
    tide_future_t fut;
    tide_async_t co;
    tide_interval_t every;
    int i;
} ticker_t;

static tide_poll_t ticker_poll(tide_future_t *f, tide_cx_t *cx) {
    ticker_t *t = TIDE_CONTAINER_OF(f, ticker_t, fut);
    TIDE_BEGIN(&t->co);
    for (t->i = 1; t->i <= 3; t->i++) {
        TIDE_AWAIT(&t->co, cx, tide_interval_tick(&t->every));
        printf("tick %d\n", t->i);
    }
    TIDE_END(&t->co, f, 0);
}

static const tide_future_vtable_t ticker_vt = {ticker_poll, NULL};

int main(void) {
    tide_exec_t *ex;
    int rc = tide_exec_new(&ex, NULL, 0);
    if (rc < 0) {
        fprintf(stderr, "hello: %s\n", tide_strerror(rc));
        return 1;
    }
    ticker_t t = {0};
    tide_future_init(&t.fut, &ticker_vt);
    tide_interval_init(&t.every, 100 * TIDE_USEC_PER_MSEC);
    rc = tide_exec_block_on(ex, &t.fut);
    tide_interval_drop(&t.every);
    tide_exec_free(ex);
    if (rc < 0) {
        fprintf(stderr, "hello: %s\n", tide_strerror(rc));
        return 1;
    }
    printf("tide %s: done\n", tide_version());
    return 0;
}
