/*
 * t/check_alloc.c: every constructor under allocation failure.
 *
 * For each constructor, a loop makes the Nth allocation from now fail
 * (tide__alloc_fail_at), for N = 1, 2, ... until the constructor makes fewer
 * than N allocations and succeeds. At every N the constructor must answer a
 * clean -ENOMEM (never crash, never succeed although an allocation failed),
 * leave nothing registered or armed, and leak nothing: the allocation
 * counter of the fault shim (t/fault/fault.c wraps tide__malloc & co.) is
 * back to zero after each step, and ASan / valgrind check the rest.
 *
 * Then whole scenarios (an echo over a socket pair, a TCP echo) run with
 * the Nth allocation failing anywhere in them: they must end with an
 * error, cleanly, until N passes their allocation count.
 *
 * libevent's own allocations go through event_set_mem_functions: the last
 * tests fail those too.
 */
#include <sys/socket.h>

#include <netinet/in.h>
#include <stdio.h>

#include <event2/dns.h>

#include "testutil.h"
#include "fault/fault.h"
#include "net/internal.h" /* tide__resolve_set_base */
#include "reactor/internal.h"

#include <tide/net.h>

/* A loop bound no constructor comes near (they make 1 to 3 allocations). */
#define MAX_N 64

static void live_zero(const char *what, unsigned long n) {
    ck_assert_msg(fault_live_allocs() == 0,
                  "%s: %ld allocation(s) leaked when allocation %lu failed",
                  what, fault_live_allocs(), n);
}

/* Arm the hook: the nth allocation from now fails. */
static void arm(unsigned long n) {
    tide__alloc_fail_at(0); /* reset the count */
    tide__alloc_fail_at(n);
}

/* Disarm; returns how many allocations were made since arm(). */
static unsigned long disarm(void) { return tide__alloc_fail_at(0); }

/* One step's verdict: -ENOMEM while n <= allocations made, success after.
 * Returns true when the loop is over (success). */
static bool verdict(const char *what, unsigned long n, int rc,
                    unsigned long made) {
    if (rc == 0) {
        ck_assert_msg(made < n,
                      "%s succeeded although its allocation %lu of %lu failed",
                      what, n, made);
        return true;
    }
    ck_assert_msg(rc == -ENOMEM, "%s with allocation %lu failing: %s (%d)",
                  what, n, tide_err_name(rc), rc);
    ck_assert_msg(made >= n,
                  "%s failed (%s) without its allocation %lu failing", what,
                  tide_err_name(rc), n);
    return false;
}

/* ------------------------------------------------------------------------
 * Core and reactor
 * ------------------------------------------------------------------------ */

START_TEST(test_alloc_exec_new) {
    unsigned long n;
    for (n = 1; n < MAX_N; n++) {
        tide_exec_t *ex = NULL;
        arm(n);
        int rc = tide_exec_new(&ex, NULL, 0);
        unsigned long made = disarm();
        bool done = verdict("tide_exec_new", n, rc, made);
        if (done)
            t_exec_free_clean(ex);
        else
            ck_assert_ptr_null(ex);
        live_zero("tide_exec_new", n);
        if (done)
            break;
    }
    ck_assert_uint_lt(n, MAX_N);
}
END_TEST

START_TEST(test_alloc_exec_new_on_caller_base) {
    struct event_base *base = event_base_new();
    ck_assert_ptr_nonnull(base);
    unsigned long n;
    for (n = 1; n < MAX_N; n++) {
        tide_exec_t *ex = NULL;
        arm(n);
        int rc = tide_exec_new(&ex, base, 0);
        bool done = verdict("tide_exec_new(base)", n, rc, disarm());
        if (done)
            t_exec_free_clean(ex);
        live_zero("tide_exec_new(base)", n);
        if (done)
            break;
    }
    ck_assert_uint_lt(n, MAX_N);
    /* the caller's base is intact: it still runs */
    ck_assert_int_eq(event_base_loop(base, EVLOOP_NONBLOCK), 1);
    event_base_free(base);
}
END_TEST

typedef struct counted {
    tide_future_t fut;
    int *polls, *drops;
} counted_t;

static tide_poll_t counted_poll(tide_future_t *f, tide_cx_t *cx) {
    counted_t *c = TIDE_CONTAINER_OF(f, counted_t, fut);
    (void)cx;
    (*c->polls)++;
    f->result = 7;
    return TIDE_READY;
}

static void counted_drop(tide_future_t *f) {
    counted_t *c = TIDE_CONTAINER_OF(f, counted_t, fut);
    (*c->drops)++;
}

static const tide_future_vtable_t counted_vt = {counted_poll, counted_drop};

START_TEST(test_alloc_spawn) {
    tide_exec_t *ex = t_exec_new();
    unsigned long n;
    for (n = 1; n < MAX_N; n++) {
        int polls = 0, drops = 0;
        counted_t c = {.polls = &polls, .drops = &drops};
        tide_future_init(&c.fut, &counted_vt);
        tide_join_t j;
        arm(n);
        int rc = tide_spawn(ex, &c.fut, &j);
        bool done = verdict("tide_spawn", n, rc, disarm());
        if (done) {
            t_assert_int_eq_at(n, t_block_on(ex, tide_join(&j)), 0);
            t_assert_int_eq_at(n, tide_join(&j)->result, 7);
            tide_future_drop(tide_join(&j));
            t_assert_int_eq_at(n, polls, 1);
            t_assert_int_eq_at(n, drops, 1);
        } else {
            /* not taken: the caller still owns it and drops it */
            t_assert_int_eq_at(n, drops, 0);
            tide_future_drop(&c.fut);
            t_assert_int_eq_at(n, polls, 0);
            t_assert_uint_eq_at(n, t_stats(ex).tasks, 0);
        }
        if (done)
            break;
    }
    ck_assert_uint_lt(n, MAX_N);
    t_exec_free_clean(ex);
    live_zero("tide_spawn", n);
}
END_TEST

/* tide_fd_new on a fresh executor (the descriptor table is allocated too),
 * then again on one whose table must grow (a descriptor number >= 64). */
static void fd_new_loop(int fd_target) {
    unsigned long n;
    for (n = 1; n < MAX_N; n++) {
        tide_exec_t *ex = t_exec_new();
        int sv[2];
        t_socketpair(sv);
        int fd = sv[0];
        if (fd_target >= 0) {
            fd = dup3(sv[0], fd_target, O_CLOEXEC);
            t_assert_int_eq_at(n, fd, fd_target);
            close(sv[0]);
        }
        tide_fd_t *reg = NULL;
        arm(n);
        int rc = tide_fd_new(&reg, ex, fd);
        bool done = verdict("tide_fd_new", n, rc, disarm());
        if (done) {
            t_assert_uint_eq_at(n, t_stats(ex).registered, 1);
            tide_fd_free(reg);
        } else {
            t_assert_uint_eq_at(n, t_stats(ex).registered, 0);
            t_assert_at(n, t_is_open(fd)); /* left to the caller on error */
            close(fd);
        }
        close(sv[1]);
        t_exec_free_clean(ex);
        live_zero("tide_fd_new", n);
        if (done)
            break;
    }
    ck_assert_uint_lt(n, MAX_N);
    ck_assert_uint_ge(n, 3); /* the table and the registration at least */
}

START_TEST(test_alloc_fd_new) { fd_new_loop(-1); }
END_TEST

START_TEST(test_alloc_fd_new_table_growth) { fd_new_loop(300); }
END_TEST

/* Growing the table of an executor that already has registrations: a
 * failure leaves the old ones working. */
START_TEST(test_alloc_fd_table_growth_keeps_old) {
    tide_exec_t *ex = t_exec_new();
    int a[2], b[2];
    t_socketpair(a);
    t_socketpair(b);
    tide_fd_t *r1 = NULL, *r2 = NULL;
    ck_assert_int_eq(tide_fd_new(&r1, ex, a[0]), 0);
    int big = dup3(b[0], 500, O_CLOEXEC);
    ck_assert_int_eq(big, 500);
    close(b[0]);
    arm(1);
    ck_assert_int_eq(tide_fd_new(&r2, ex, big), -ENOMEM);
    disarm();
    /* the first registration still works */
    ck_assert_int_eq(write(a[1], "x", 1), 1);
    tide_fd_wait_t w;
    ck_assert_int_eq(t_run(ex, tide_fd_readable(&w, r1)), 0);
    ck_assert_int_eq(tide_fd_new(&r2, ex, big), 0);
    ck_assert_uint_eq(t_stats(ex).registered, 2);
    tide_fd_free(r1);
    tide_fd_free(r2);
    close(a[1]);
    close(b[1]);
    t_exec_free_clean(ex);
    live_zero("table growth", 0);
}
END_TEST

START_TEST(test_alloc_fdstream_new) {
    unsigned long n;
    for (n = 1; n < MAX_N; n++) {
        tide_exec_t *ex = t_exec_new();
        int sv[2];
        t_socketpair(sv);
        tide_fdstream_t *s = NULL;
        arm(n);
        int rc = tide_fdstream_new(&s, ex, sv[0]);
        bool done = verdict("tide_fdstream_new", n, rc, disarm());
        if (done) {
            tide_fdstream_free(s);
        } else {
            t_assert_at(n, t_is_open(sv[0]));
            close(sv[0]);
        }
        close(sv[1]);
        t_exec_free_clean(ex);
        live_zero("tide_fdstream_new", n);
        if (done)
            break;
    }
    ck_assert_uint_lt(n, MAX_N);
}
END_TEST

/* ------------------------------------------------------------------------
 * Net constructors
 * ------------------------------------------------------------------------ */

/* A constructor under test: make the object(s) on ex, return 0 or -errno;
 * `undo` frees what a success made. */
typedef struct ctor {
    const char *name;
    int (*make)(tide_exec_t *ex, void **obj);
    void (*undo)(void *obj);
} ctor_t;

static int mk_tcp_listener(tide_exec_t *ex, void **obj) {
    return tide_tcp_listener_bind((tide_tcp_listener_t **)obj, ex,
                                  "127.0.0.1:0", 0, 0);
}
static void un_tcp_listener(void *o) { tide_tcp_listener_free(o); }

static int mk_tcp_listener6(tide_exec_t *ex, void **obj) {
    int rc = tide_tcp_listener_bind((tide_tcp_listener_t **)obj, ex, "[::1]:0",
                                    0, TIDE_NET_V6ONLY);
    return rc == -EAFNOSUPPORT || rc == -EADDRNOTAVAIL ? 1 : rc;
}

static int mk_udp(tide_exec_t *ex, void **obj) {
    return tide_udp_bind((tide_udp_t **)obj, ex, "127.0.0.1:0", 0);
}
static void un_udp(void *o) { tide_udp_free(o); }

static int mk_unix_listener(tide_exec_t *ex, void **obj) {
    char path[64];
    snprintf(path, sizeof path, "@tide-alloc-%d", (int)getpid());
    return tide_unix_listener_bind((tide_unix_listener_t **)obj, ex, path, 0,
                                   0);
}
static void un_unix_listener(void *o) { tide_unix_listener_free(o); }

static int mk_unix_dgram(tide_exec_t *ex, void **obj) {
    char path[64];
    snprintf(path, sizeof path, "@tide-alloc-dg-%d", (int)getpid());
    return tide_unix_dgram_bind((tide_unix_dgram_t **)obj, ex, path, 0);
}
static void un_unix_dgram(void *o) { tide_unix_dgram_free(o); }

static int mk_unix_dgram_unbound(tide_exec_t *ex, void **obj) {
    return tide_unix_dgram_bind((tide_unix_dgram_t **)obj, ex, NULL, 0);
}

typedef struct two {
    void *a, *b;
} two_t;
static two_t two_store;

static int mk_socketpair(tide_exec_t *ex, void **obj) {
    tide_unix_t *a = NULL, *b = NULL;
    int rc = tide_socketpair(&a, &b, ex);
    if (rc == 0) {
        two_store.a = a;
        two_store.b = b;
        *obj = &two_store;
    }
    return rc;
}
static void un_socketpair(void *o) {
    two_t *t = o;
    tide_unix_free(t->a);
    tide_unix_free(t->b);
}

static int mk_pipe(tide_exec_t *ex, void **obj) {
    tide_fdstream_t *r = NULL, *w = NULL;
    int rc = tide_pipe(&r, &w, ex);
    if (rc == 0) {
        two_store.a = r;
        two_store.b = w;
        *obj = &two_store;
    }
    return rc;
}
static void un_pipe(void *o) {
    two_t *t = o;
    tide_fdstream_free(t->a);
    tide_fdstream_free(t->b);
}

static int mk_tcp_from_fd(tide_exec_t *ex, void **obj) {
    /* tide_tcp_from_fd takes only a connected TCP socket */
    int fd, peer;
    t_tcp_pair(&fd, &peer);
    int rc = tide_tcp_from_fd((tide_tcp_t **)obj, ex, fd);
    if (rc < 0) {
        ck_assert(t_is_open(fd)); /* not taken on error */
        close(fd);
    }
    close(peer);
    return rc;
}
static void un_tcp(void *o) { tide_tcp_free(o); }

static int mk_unix_from_fd(tide_exec_t *ex, void **obj) {
    int sv[2];
    t_socketpair(sv);
    close(sv[1]);
    int rc = tide_unix_from_fd((tide_unix_t **)obj, ex, sv[0]);
    if (rc < 0) {
        ck_assert(t_is_open(sv[0]));
        close(sv[0]);
    }
    return rc;
}
static void un_unix(void *o) { tide_unix_free(o); }

static const ctor_t ctors[] = {
    {"tide_tcp_listener_bind", mk_tcp_listener, un_tcp_listener},
    {"tide_tcp_listener_bind [::1]", mk_tcp_listener6, un_tcp_listener},
    {"tide_udp_bind", mk_udp, un_udp},
    {"tide_unix_listener_bind", mk_unix_listener, un_unix_listener},
    {"tide_unix_dgram_bind", mk_unix_dgram, un_unix_dgram},
    {"tide_unix_dgram_bind(NULL)", mk_unix_dgram_unbound, un_unix_dgram},
    {"tide_socketpair", mk_socketpair, un_socketpair},
    {"tide_pipe", mk_pipe, un_pipe},
    {"tide_tcp_from_fd", mk_tcp_from_fd, un_tcp},
    {"tide_unix_from_fd", mk_unix_from_fd, un_unix},
};
#define NCTORS (sizeof ctors / sizeof ctors[0])

START_TEST(test_alloc_net_constructor) {
    const ctor_t *c = &ctors[_i];
    unsigned long n;
    for (n = 1; n < MAX_N; n++) {
        tide_exec_t *ex = t_exec_new();
        void *obj = NULL;
        arm(n);
        int rc = c->make(ex, &obj);
        unsigned long made = disarm();
        if (rc == 1) { /* not available here (no IPv6) */
            t_exec_free_clean(ex);
            return;
        }
        bool done = verdict(c->name, n, rc, made);
        if (done)
            c->undo(obj);
        t_exec_free_clean(ex);
        live_zero(c->name, n);
        if (done)
            break;
    }
    ck_assert_uint_lt(n, MAX_N);
}
END_TEST

/* ------------------------------------------------------------------------
 * Futures that allocate: connect (the connection), accept (the accepted
 * connection). Their -ENOMEM comes as the future's result.
 * ------------------------------------------------------------------------ */

/* A wrapper that arms the hook at its first poll, so that the allocation
 * block_on makes for its own task is not the one counted. */
typedef struct arm_first {
    tide_future_t fut;
    tide_future_t *inner;
    unsigned long n;
    bool armed;
} arm_first_t;

static tide_poll_t arm_first_poll(tide_future_t *f, tide_cx_t *cx) {
    arm_first_t *a = TIDE_CONTAINER_OF(f, arm_first_t, fut);
    if (!a->armed) {
        arm(a->n);
        a->armed = true;
    }
    if (tide_future_poll(a->inner, cx) == TIDE_PENDING)
        return TIDE_PENDING;
    f->result = a->inner->result;
    return TIDE_READY;
}

static const tide_future_vtable_t arm_first_vt = {arm_first_poll, NULL};

/* Run inner with the nth allocation (counted from its first poll)
 * failing; returns its result and sets *made. inner is not dropped. */
static int run_armed(tide_exec_t *ex, tide_future_t *inner, unsigned long n,
                     unsigned long *made) {
    arm_first_t a = {.inner = inner, .n = n};
    tide_future_init(&a.fut, &arm_first_vt);
    ck_assert_int_eq(t_block_on(ex, &a.fut), 0);
    *made = disarm();
    return (int)a.fut.result;
}

START_TEST(test_alloc_tcp_connect) {
    unsigned long n;
    for (n = 1; n < MAX_N; n++) {
        tide_exec_t *ex = t_exec_new();
        tide_tcp_listener_t *l = NULL;
        t_assert_int_eq_at(
            n, tide_tcp_listener_bind(&l, ex, "127.0.0.1:0", 0, 0), 0);
        tide_addr_t a;
        t_assert_int_eq_at(n, tide_tcp_listener_local_addr(l, &a), 0);
        tide_tcp_connect_t c;
        unsigned long made;
        int rc = run_armed(ex, tide_tcp_connect_addr(&c, &a), n, &made);
        bool done = verdict("tide_tcp_connect_addr", n, rc, made);
        tide_future_drop(&c.fut);
        if (done)
            tide_tcp_free(c.conn);
        tide_tcp_listener_free(l);
        t_exec_free_clean(ex);
        live_zero("tide_tcp_connect_addr", n);
        if (done)
            break;
    }
    ck_assert_uint_lt(n, MAX_N);
}
END_TEST

START_TEST(test_alloc_tcp_connect_by_name) {
    /* A name with two addresses, as "localhost" is on a standard Debian
     * /etc/hosts (::1 and 127.0.0.1), but from a hosts list of the test's
     * own: the first refuses (nothing listens on 127.0.0.2), the second
     * accepts. The lookup and each address's connection allocate; an
     * allocation failing on the first address must end the connect with
     * -ENOMEM, not move on to the second and succeed. */
    unsigned long n;
    for (n = 1; n < MAX_N; n++) {
        tide_exec_t *ex = t_exec_new();
        /* the resolver's state is allocated here, before any arm */
        t_hosts(ex, "127.0.0.2 two.tide.test\n"
                    "127.0.0.1 two.tide.test\n");
        tide_tcp_listener_t *l = NULL;
        t_assert_int_eq_at(
            n, tide_tcp_listener_bind(&l, ex, "127.0.0.1:0", 0, 0), 0);
        tide_addr_t a;
        t_assert_int_eq_at(n, tide_tcp_listener_local_addr(l, &a), 0);
        char hp[64];
        snprintf(hp, sizeof hp, "two.tide.test:%d", tide_addr_port(&a));
        tide_tcp_connect_t c;
        unsigned long made;
        int rc = run_armed(ex, tide_tcp_connect(&c, hp), n, &made);
        bool done = verdict("tide_tcp_connect(two.tide.test)", n, rc, made);
        tide_future_drop(&c.fut);
        if (done)
            tide_tcp_free(c.conn);
        tide_tcp_listener_free(l);
        t_exec_free_clean(ex);
        live_zero("tide_tcp_connect(two.tide.test)", n);
        if (done)
            break;
    }
    ck_assert_uint_lt(n, MAX_N);
}
END_TEST

START_TEST(test_alloc_tcp_connect_resolver_state) {
    /* The executor's own resolver: its state is the first allocation of
     * the first lookup, the lookup the second. Either failing gives
     * -ENOMEM before any name is looked up, so what /etc/hosts holds does
     * not matter. */
    for (unsigned long n = 1; n <= 2; n++) {
        tide_exec_t *ex = t_exec_new();
        tide_tcp_connect_t c;
        unsigned long made;
        int rc =
            run_armed(ex, tide_tcp_connect(&c, "tide.invalid:9"), n, &made);
        ck_assert_msg(rc == -ENOMEM, "allocation %lu failing: %s", n,
                      tide_err_name(rc));
        t_assert_uint_eq_at(n, made, n);
        ck_assert_ptr_null(c.conn);
        tide_future_drop(&c.fut);
        t_exec_free_clean(ex);
        live_zero("tide_tcp_connect (resolver state)", n);
    }
}
END_TEST

START_TEST(test_alloc_tcp_accept) {
    unsigned long n;
    for (n = 1; n < MAX_N; n++) {
        tide_exec_t *ex = t_exec_new();
        tide_tcp_listener_t *l = NULL;
        t_assert_int_eq_at(
            n, tide_tcp_listener_bind(&l, ex, "127.0.0.1:0", 0, 0), 0);
        tide_addr_t a;
        t_assert_int_eq_at(n, tide_tcp_listener_local_addr(l, &a), 0);
        /* a plain blocking client: its connect completes in the backlog */
        int cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        t_assert_int_ge_at(n, cfd, 0);
        t_assert_int_eq_at(n, connect(cfd, tide_addr_sockaddr(&a), a.len), 0);
        tide_tcp_accept_t acc;
        unsigned long made;
        int rc = run_armed(ex, tide_tcp_accept(&acc, l), n, &made);
        bool done = verdict("tide_tcp_accept", n, rc, made);
        tide_future_drop(&acc.fut);
        if (done) {
            tide_tcp_free(acc.conn);
        } else {
            /* documented: the connection is closed and lost */
            char c;
            t_assert_int_eq_at(n, read(cfd, &c, 1), 0);
        }
        close(cfd);
        tide_tcp_listener_free(l);
        t_exec_free_clean(ex);
        live_zero("tide_tcp_accept", n);
        if (done)
            break;
    }
    ck_assert_uint_lt(n, MAX_N);
}
END_TEST

START_TEST(test_alloc_unix_connect_accept) {
    char path[64];
    snprintf(path, sizeof path, "@tide-alloc-ca-%d", (int)getpid());
    unsigned long n;
    for (n = 1; n < MAX_N; n++) {
        tide_exec_t *ex = t_exec_new();
        tide_unix_listener_t *l = NULL;
        t_assert_int_eq_at(n, tide_unix_listener_bind(&l, ex, path, 0, 0), 0);
        tide_unix_connect_t c;
        tide_unix_accept_t acc;
        unsigned long made, made2 = 0;
        int crc = run_armed(ex, tide_unix_connect(&c, path), n, &made);
        int arc = 0;
        if (crc == 0 && made < n) {
            /* the accept's allocations count on from the connect's */
            arc = run_armed(ex, tide_unix_accept(&acc, l), n - made, &made2);
            tide_future_drop(&acc.fut);
        }
        made += made2;
        int rc = crc != 0 ? crc : arc;
        bool done = verdict("tide_unix_connect+accept", n, rc, made);
        tide_future_drop(&c.fut);
        if (crc == 0)
            tide_unix_free(c.conn);
        if (done)
            tide_unix_free(acc.conn);
        tide_unix_listener_free(l);
        t_exec_free_clean(ex);
        live_zero("tide_unix_connect+accept", n);
        if (done)
            break;
    }
    ck_assert_uint_lt(n, MAX_N);
}
END_TEST

/* ------------------------------------------------------------------------
 * Scenarios: the Nth allocation fails anywhere in a whole program
 * ------------------------------------------------------------------------ */

#define SC_BYTES (50 * 4096)

typedef struct echo_srv {
    tide_future_t fut;
    tide_async_t co;
    tide_stream_t *s;
    tide_copy_buf_t copy;
    tide_shutdown_t sh;
    intptr_t copied;
} echo_srv_t;

static tide_poll_t echo_srv_poll(tide_future_t *f, tide_cx_t *cx) {
    echo_srv_t *e = TIDE_CONTAINER_OF(f, echo_srv_t, fut);
    TIDE_BEGIN(&e->co);
    TIDE_AWAIT(&e->co, cx, tide_copy_default(&e->copy, e->s, e->s));
    e->copied = tide_async_result(&e->co);
    if (e->copied < 0)
        TIDE_RETURN(&e->co, f, e->copied);
    TIDE_AWAIT(&e->co, cx, tide_shutdown(&e->sh, e->s)); /* the client's EOF */
    TIDE_END(&e->co, f,
             tide_async_result(&e->co) < 0 ? tide_async_result(&e->co)
                                           : e->copied);
}

static void echo_srv_drop(tide_future_t *f) {
    echo_srv_t *e = TIDE_CONTAINER_OF(f, echo_srv_t, fut);
    tide_async_drop(&e->co);
}

typedef struct echo_cli {
    tide_future_t fut;
    tide_async_t co;
    tide_stream_t *s;
    tide_write_all_t wr;
    tide_read_exact_t rd;
    tide_shutdown_t sh;
    tide_read_t eof;
    unsigned char out[4096], in[4096];
    size_t sent;
} echo_cli_t;

static tide_poll_t echo_cli_poll(tide_future_t *f, tide_cx_t *cx) {
    echo_cli_t *c = TIDE_CONTAINER_OF(f, echo_cli_t, fut);
    TIDE_BEGIN(&c->co);
    for (c->sent = 0; c->sent < SC_BYTES; c->sent += sizeof c->out) {
        t_pat_fill(c->out, sizeof c->out, c->sent);
        TIDE_AWAIT(&c->co, cx,
                   tide_write_all(&c->wr, c->s, c->out, sizeof c->out));
        if (tide_async_result(&c->co) < 0)
            TIDE_RETURN(&c->co, f, tide_async_result(&c->co));
        TIDE_AWAIT(&c->co, cx,
                   tide_read_exact(&c->rd, c->s, c->in, sizeof c->in));
        if (tide_async_result(&c->co) < 0)
            TIDE_RETURN(&c->co, f, tide_async_result(&c->co));
        if (memcmp(c->in, c->out, sizeof c->in) != 0)
            TIDE_RETURN(&c->co, f, -EILSEQ);
    }
    TIDE_AWAIT(&c->co, cx, tide_shutdown(&c->sh, c->s));
    TIDE_AWAIT(&c->co, cx, tide_read(&c->eof, c->s, c->in, 1));
    TIDE_END(&c->co, f, tide_async_result(&c->co) == 0 ? 0 : -EPROTO);
}

static void echo_cli_drop(tide_future_t *f) {
    echo_cli_t *c = TIDE_CONTAINER_OF(f, echo_cli_t, fut);
    tide_async_drop(&c->co);
}

static const tide_future_vtable_t echo_cli_vt = {echo_cli_poll, echo_cli_drop};

static const tide_future_vtable_t echo_srv_vt = {echo_srv_poll, echo_srv_drop};

/* The whole scenario; returns 0 or the first error met. */
static int scenario_echo(void) {
    tide_exec_t *ex = NULL;
    int rc = tide_exec_new(&ex, NULL, 0);
    if (rc < 0)
        return rc;
    tide_unix_t *a = NULL, *b = NULL;
    echo_srv_t *srv = calloc(1, sizeof *srv);
    echo_cli_t *cli = calloc(1, sizeof *cli);
    tide_join_t js, jc;
    bool srv_spawned = false, cli_spawned = false;
    rc = tide_socketpair(&a, &b, ex);
    if (rc < 0)
        goto out;
    srv->s = tide_unix_stream(a);
    tide_future_init(&srv->fut, &echo_srv_vt);
    rc = tide_spawn(ex, &srv->fut, &js);
    if (rc < 0) {
        tide_future_drop(&srv->fut);
        goto out;
    }
    srv_spawned = true;
    cli->s = tide_unix_stream(b);
    tide_future_init(&cli->fut, &echo_cli_vt);
    rc = tide_spawn(ex, &cli->fut, &jc);
    if (rc < 0) {
        tide_future_drop(&cli->fut);
        goto out;
    }
    cli_spawned = true;
    /* block_on allocates its own root task: it may be the one that fails */
    rc = t_block_on_ms(ex, tide_join(&jc), 20000);
    if (rc < 0) {
        ck_assert_msg(rc == -ENOMEM, "block_on: %s", tide_err_name(rc));
        goto out;
    }
    rc = (int)tide_join(&jc)->result;
    tide_future_drop(tide_join(&jc));
    cli_spawned = false;
    if (rc == 0) {
        int brc = t_block_on(ex, tide_join(&js));
        if (brc < 0) {
            ck_assert_msg(brc == -ENOMEM, "block_on: %s", tide_err_name(brc));
            rc = brc;
            goto out;
        }
        ck_assert_int_eq(tide_join(&js)->result, SC_BYTES);
        tide_future_drop(tide_join(&js));
        srv_spawned = false;
    }
out:
    if (cli_spawned) {
        tide_join_abort(&jc);
        tide_join_detach(&jc);
    }
    if (srv_spawned) {
        tide_join_abort(&js);
        tide_join_detach(&js);
    }
    /* aborted tasks are dropped at the executor's next turn */
    if (t_stats(ex).tasks > 0) {
        t_run_for(tide_exec_base(ex), 1);
        ck_assert_uint_eq(t_stats(ex).tasks, 0);
    }
    tide_unix_free(a);
    tide_unix_free(b);
    t_exec_free_clean(ex);
    free(srv);
    free(cli);
    return rc;
}

START_TEST(test_alloc_scenario_echo) {
    unsigned long n;
    for (n = 1; n < MAX_N; n++) {
        arm(n);
        int rc = scenario_echo();
        bool done = verdict("echo scenario", n, rc, disarm());
        live_zero("echo scenario", n);
        if (done)
            break;
    }
    ck_assert_uint_lt(n, MAX_N);
}
END_TEST

/* ------------------------------------------------------------------------
 * libevent's own allocations (event_set_mem_functions; each test runs in
 * its own forked process, before libevent allocated anything)
 * ------------------------------------------------------------------------ */

static unsigned long ev_fail_at, ev_count;
static long ev_live;

static void *ev_malloc(size_t sz) {
    ev_count++;
    if (ev_fail_at != 0 && ev_count == ev_fail_at)
        return NULL;
    void *p = malloc(sz);
    if (p != NULL)
        ev_live++;
    return p;
}

static void *ev_realloc(void *p, size_t sz) {
    ev_count++;
    if (ev_fail_at != 0 && ev_count == ev_fail_at)
        return NULL;
    void *q = realloc(p, sz);
    if (p == NULL && q != NULL)
        ev_live++;
    return q;
}

static void ev_free(void *p) {
    if (p != NULL)
        ev_live--;
    free(p);
}

START_TEST(test_alloc_libevent_exec_new) {
    event_set_mem_functions(ev_malloc, ev_realloc, ev_free);
    unsigned long n;
    for (n = 1; n < 200; n++) {
        ev_count = 0;
        ev_fail_at = n;
        tide_exec_t *ex = NULL;
        int rc = tide_exec_new(&ex, NULL, 0);
        unsigned long made = ev_count;
        ev_fail_at = 0;
        if (rc == 0) {
            /* libevent may absorb a failure (a backend that cannot start
             * makes it try the next one): success is fine, if it works */
            tide_yield_t y;
            t_assert_int_eq_at(n, t_run(ex, tide_yield(&y)), 0);
            t_exec_free_clean(ex);
            t_assert_int_eq_at(n, ev_live, 0);
            live_zero("exec_new/libevent", n);
            if (made < n)
                break;
            continue;
        }
        ck_assert_msg(rc == -ENOMEM || rc == -EIO,
                      "libevent allocation %lu: %s", n, tide_err_name(rc));
        ck_assert_msg(ev_live == 0,
                      "libevent allocation %lu failing: %ld "
                      "libevent blocks leaked",
                      n, ev_live);
        live_zero("exec_new/libevent", n);
    }
    ck_assert_uint_lt(n, 200);
}
END_TEST

/* A running echo with libevent's Nth allocation failing: whatever fails
 * (an event_add that cannot grow the epoll change list...) must end in an
 * error or in success, never a hang or a crash. */
START_TEST(test_alloc_libevent_scenario_echo) {
    event_set_mem_functions(ev_malloc, ev_realloc, ev_free);
    unsigned long n;
    for (n = 1; n < 200; n++) {
        ev_count = 0;
        ev_fail_at = n;
        int rc = scenario_echo();
        unsigned long made = ev_count;
        ev_fail_at = 0;
        ck_assert_msg(rc == 0 || rc == -ENOMEM || rc == -EIO,
                      "libevent allocation %lu: %s", n, tide_err_name(rc));
        ck_assert_msg(ev_live == 0,
                      "libevent allocation %lu failing: %ld "
                      "libevent blocks leaked",
                      n, ev_live);
        live_zero("echo/libevent", n);
        if (made < n)
            break;
    }
    ck_assert_uint_lt(n, 200);
}
END_TEST

static Suite *alloc_suite(void) {
    Suite *s = suite_create("alloc");
    TCase *tc = t_tcase(s, "core", 30);
    tcase_add_test(tc, test_alloc_exec_new);
    tcase_add_test(tc, test_alloc_exec_new_on_caller_base);
    tcase_add_test(tc, test_alloc_spawn);
    tcase_add_test(tc, test_alloc_fd_new);
    tcase_add_test(tc, test_alloc_fd_new_table_growth);
    tcase_add_test(tc, test_alloc_fd_table_growth_keeps_old);
    tcase_add_test(tc, test_alloc_fdstream_new);

    tc = t_tcase(s, "net", 30);
    tcase_add_loop_test(tc, test_alloc_net_constructor, 0, (int)NCTORS);
    tcase_add_test(tc, test_alloc_tcp_connect);
    tcase_add_test(tc, test_alloc_tcp_connect_by_name);
    tcase_add_test(tc, test_alloc_tcp_connect_resolver_state);
    tcase_add_test(tc, test_alloc_tcp_accept);
    tcase_add_test(tc, test_alloc_unix_connect_accept);

    tc = t_tcase(s, "scenario", 60);
    tcase_add_test(tc, test_alloc_scenario_echo);
    tcase_add_test(tc, test_alloc_libevent_exec_new);
    tcase_add_test(tc, test_alloc_libevent_scenario_echo);
    return s;
}

int main(void) { return t_run_suite(alloc_suite()); }
