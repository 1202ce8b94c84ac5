/* samples/first-echo.c: an echo server. first-echo [ADDR] (127.0.0.1:7000) */
#include <stdio.h>
#include <tide.h>

/* A task per connection, which copies the connection onto itself. */
typedef struct { TIDE_TASK_HEAD; tide_conn_t *conn; tide_copy_t copy; char buf[4096]; } echo_t;

static void echo_cleanup(echo_t *self) { tide_conn_free(self->conn); }

TIDE_TASK(echo_t, echo) {
    tide_stream_t *s = tide_conn_stream(self->conn);
    TIDE_TASK_BEGIN;
    TIDE_TASK_TRY(tide_copy(&self->copy, s, s, self->buf, sizeof self->buf));
    TIDE_TASK_END(0);
}

static tide_future_t *on_conn(tide_conn_t *c, void *arg) {
    (void)arg;
    echo_t *e = echo_new();          /* NULL (no memory): tide closes c */
    return e != NULL ? (e->conn = c, &e->fut) : NULL;
}

int main(int argc, char **argv) {
    const char *addr = argc > 1 ? argv[1] : "127.0.0.1:7000";
    tide_exec_t *ex; tide_listener_t *l; tide_serve_t sv; char name[TIDE_ADDR_STRLEN];
    int rc = tide_exec_new(&ex, NULL, 0);
    if (rc == 0 && (rc = tide_listener_bind(&l, ex, addr, 0)) == 0)
        rc = tide_listener_name(l, name, sizeof name);
    if (rc < 0)
        return fprintf(stderr, "first-echo: %s: %s\n", addr, tide_strerror(rc)), 1;
    fprintf(stderr, "first-echo: listening on %s\n", name); /* port 0: the one got */
    rc = tide_exec_block_on(ex, tide_serve(&sv, l, on_conn, NULL, NULL));
    fprintf(stderr, "first-echo: accept: %s\n", tide_strerror(rc ? rc : (int)sv.fut.result));
    return 1;                        /* it serves until accept fails */
}
