/* samples/first-echo.c: the README's first task, an echo server.
 *
 *   first-echo [HOST:PORT]      default 127.0.0.1:7000; port 0 picks one
 *
 * It prints the address it listens on, then serves until killed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <tide.h>

typedef struct {                 /* one connection: read, write back, repeat */
    tide_future_t fut;
    tide_async_t co;
    tide_tcp_t *conn;
    tide_read_t rd;
    tide_write_all_t wr;
    char buf[4096];
} echo_t;

static tide_poll_t echo_poll(tide_future_t *f, tide_cx_t *cx) {
    echo_t *e = TIDE_CONTAINER_OF(f, echo_t, fut);
    tide_stream_t *s = tide_tcp_stream(e->conn);
    TIDE_BEGIN(&e->co);
    for (;;) {
        TIDE_AWAIT(&e->co, cx, tide_read(&e->rd, s, e->buf, sizeof e->buf));
        if (tide_async_result(&e->co) <= 0) /* 0: end of stream; < 0: -errno */
            break;
        TIDE_AWAIT(&e->co, cx, tide_write_all(&e->wr, s, e->buf,
                                              (size_t)tide_async_result(&e->co)));
        if (tide_async_result(&e->co) < 0)
            break;
    }
    TIDE_END(&e->co, f, 0);
}

static void echo_drop(tide_future_t *f) {  /* runs when the task ends */
    echo_t *e = TIDE_CONTAINER_OF(f, echo_t, fut);
    tide_async_drop(&e->co);
    tide_tcp_free(e->conn);
    free(e);
}

typedef struct {                 /* the listener: accept, spawn, repeat */
    tide_future_t fut;
    tide_async_t co;
    tide_tcp_listener_t *l;
    tide_tcp_accept_t acc;
    tide_sleep_t pause;
} server_t;

/* Accept errors worth waiting out: memory or descriptors run short. (tide
 * already pauses the listener itself while descriptors run out and skips
 * aborted connections; -ENOMEM, a connection it could not wrap, still
 * reaches us.) Any other error ends the server. */
static int transient(intptr_t err) {
    return err == -ENOMEM || err == -EMFILE || err == -ENFILE ||
           err == -ENOBUFS || err == -ECONNABORTED;
}

static const tide_future_vtable_t echo_vt = {echo_poll, echo_drop};

static tide_poll_t server_poll(tide_future_t *f, tide_cx_t *cx) {
    server_t *sv = TIDE_CONTAINER_OF(f, server_t, fut);
    TIDE_BEGIN(&sv->co);
    for (;;) {
        TIDE_AWAIT(&sv->co, cx, tide_tcp_accept(&sv->acc, sv->l));
        intptr_t rc = tide_async_result(&sv->co);
        if (rc < 0 && !transient(rc))
            TIDE_RETURN(&sv->co, f, rc);     /* main reports it */
        if (rc < 0) {                        /* wait a little, try again */
            TIDE_AWAIT(&sv->co, cx,
                       tide_sleep(&sv->pause, 100 * TIDE_USEC_PER_MSEC));
            continue;
        }
        echo_t *e = calloc(1, sizeof *e);
        if (e == NULL) {
            tide_tcp_free(sv->acc.conn);
            continue;
        }
        e->conn = sv->acc.conn;
        tide_future_init(&e->fut, &echo_vt);
        if (tide_spawn(cx->exec, &e->fut, NULL) < 0)
            tide_future_drop(&e->fut);
    }
    TIDE_END(&sv->co, f, 0);
}

static const tide_future_vtable_t server_vt = {server_poll, NULL};

int main(int argc, char **argv) {
    const char *addr = argc > 1 ? argv[1] : "127.0.0.1:7000";
    tide_exec_t *ex;
    server_t sv = {0};
    tide_addr_t local;
    char name[TIDE_ADDR_STRLEN];
    int rc = tide_exec_new(&ex, NULL, 0);
    if (rc == 0)
        rc = tide_tcp_listener_bind(&sv.l, ex, addr, 0, 0);
    if (rc == 0)
        rc = tide_tcp_listener_local_addr(sv.l, &local);
    if (rc == 0)
        rc = tide_addr_format(&local, name, sizeof name);
    if (rc < 0) {
        fprintf(stderr, "first-echo: %s: %s\n", addr, tide_strerror(rc));
        return 1;
    }
    printf("first-echo: listening on %s\n", name); /* port 0: the real one */
    fflush(stdout);
    tide_future_init(&sv.fut, &server_vt);
    rc = tide_exec_block_on(ex, &sv.fut);  /* serves until killed or failed */
    if (rc == 0)
        rc = (int)sv.fut.result;
    if (rc < 0)
        fprintf(stderr, "first-echo: accept: %s\n", tide_strerror(rc));
    tide_exec_free(ex);
    tide_tcp_listener_free(sv.l);
    return rc < 0;
}
