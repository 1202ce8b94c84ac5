/*
 * src/net/dns.c: host name lookups through libevent's evdns.
 *
 * One evdns base per executor, created on the first lookup from
 * /etc/resolv.conf and /etc/hosts (EVDNS_BASE_INITIALIZE_NAMESERVERS loads
 * both; evdns_getaddrinfo answers from the hosts file without a query, so
 * "localhost" works with no server at all) and freed by tide_exec_free
 * through the net layer's free hook on the executor (TIDE__EXT_NET). EVDNS_BASE_DISABLE_WHEN_INACTIVE
 * keeps its sockets out of the loop while no query is in flight, so an
 * idle resolver never keeps a host's event_base_dispatch running.
 *
 * A lookup is one small allocation (name resolution is not the I/O hot
 * path, and evdns allocates per request anyway). It has to outlive the
 * future that started it: evdns_getaddrinfo_cancel does not call back at
 * once but schedules the callback (EVUTIL_EAI_CANCEL) for the loop's next
 * turn, and that callback still receives our pointer. So a dropped lookup
 * is orphaned, not freed, and the callback frees it.
 *
 * The evdns base, in turn, must outlive those late callbacks (evdns reads
 * it when they run). If the executor is freed while some are still due,
 * the base is kept until the last one has run, when the host's loop goes
 * on (a base the caller owns); on a base tide created they can never run
 * (the base is freed next), so they are released at once.
 */
#include <stdio.h>
#include <string.h>

#include <event2/dns.h>
#include <event2/util.h>

#include "net/internal.h"

struct net_state {
    tide_exec_t *exec; /* NULL once the executor is gone */
    struct evdns_base *dns;
    struct tide__resolve *lookups; /* outstanding, answered or not */
    size_t outstanding;
};

struct tide__resolve {
    struct net_state *st;
    struct tide__resolve *prev, *next;
    struct evdns_getaddrinfo_request *req; /* NULL once answered */
    struct evutil_addrinfo *ai;
    int err;
    bool done;   /* the callback ran */
    bool orphan; /* the future is gone; the callback frees */
    tide_waker_t waker;
};

static void state_free(struct net_state *st) {
    if (st->dns != NULL)
        evdns_base_free(st->dns, 0);
    tide__free(st);
}

static void release(struct tide__resolve *r) {
    struct net_state *st = r->st;
    if (r->prev != NULL)
        r->prev->next = r->next;
    else
        st->lookups = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
    st->outstanding--;
    if (r->ai != NULL)
        evutil_freeaddrinfo(r->ai);
    tide_waker_drop(&r->waker);
    tide__free(r);
    if (st->exec == NULL && st->outstanding == 0)
        state_free(st); /* the executor went first; we were the last */
}

/* tide_exec_free (the executor's hook for the net layer's state). */
static void net_free(tide_exec_t *ex, void *state) {
    struct net_state *st = state;
    tide__exec_attach(ex, TIDE__EXT_NET, NULL, NULL);
    if (st == NULL)
        return;
    st->exec = NULL;
    if (st->outstanding == 0) {
        state_free(st);
        return;
    }
    if (!ex->own_base)
        return; /* the host's loop runs the callbacks still due; the last
                 * one frees st and the evdns base */
    /* tide's own base is freed right after us: the callbacks still due
     * will never run. Release what they would have released; the last
     * release frees st. */
    for (;;) {
        struct tide__resolve *r = st->lookups;
        bool last = r->next == NULL;
        if (!r->done && !r->orphan && r->req != NULL)
            evdns_getaddrinfo_cancel(r->req); /* a future never dropped */
        release(r);
        if (last)
            break; /* st is gone */
    }
}

static struct net_state *state_get(tide_exec_t *ex, int *err) {
    if (tide__exec_ext(ex, TIDE__EXT_NET) != NULL)
        return tide__exec_ext(ex, TIDE__EXT_NET);
    struct net_state *st = tide__calloc(1, sizeof *st);
    if (st == NULL) {
        *err = -ENOMEM;
        return NULL;
    }
    st->exec = ex;
    st->dns = evdns_base_new(ex->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
                                           EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    if (st->dns == NULL) {
        tide__free(st);
        *err = -EIO;
        return NULL;
    }
    tide__exec_attach(ex, TIDE__EXT_NET, st, net_free);
    return st;
}

int tide__resolve_set_base(tide_exec_t *ex, struct evdns_base *dns) {
    if (ex == NULL || dns == NULL)
        return -EINVAL;
    if (tide__exec_ext(ex, TIDE__EXT_NET) != NULL)
        return -EBUSY;
    struct net_state *st = tide__calloc(1, sizeof *st);
    if (st == NULL)
        return -ENOMEM;
    st->exec = ex;
    st->dns = dns;
    tide__exec_attach(ex, TIDE__EXT_NET, st, net_free);
    return 0;
}

size_t tide__resolve_outstanding(tide_exec_t *ex) {
    struct net_state *st =
        ex != NULL ? tide__exec_ext(ex, TIDE__EXT_NET) : NULL;
    return st != NULL ? st->outstanding : 0;
}

static int map_error(int e) {
    switch (e) {
    case 0:
        return 0;
    case EVUTIL_EAI_NONAME:
    case EVUTIL_EAI_NODATA:
        return TIDE_ENONAME;
    case EVUTIL_EAI_MEMORY:
        return -ENOMEM;
    case EVUTIL_EAI_CANCEL:
        return -ECANCELED;
    case EVUTIL_EAI_FAMILY:
        return -EAFNOSUPPORT;
    default:
        return -EIO; /* EAI_AGAIN (timeout, server failure), EAI_FAIL... */
    }
}

static void on_answer(int err, struct evutil_addrinfo *ai, void *arg) {
    struct tide__resolve *r = arg;
    r->req = NULL;
    r->done = true;
    r->ai = ai;
    r->err = map_error(err);
    if (r->err == 0 && ai == NULL)
        r->err = TIDE_ENONAME;
    if (r->orphan) {
        release(r);
        return;
    }
    tide_waker_wake(&r->waker);
}

int tide__resolve_start(struct tide__resolve **out, tide_exec_t *ex,
                        const char *host, unsigned short port) {
    int err = 0;
    struct net_state *st = state_get(ex, &err);
    if (st == NULL)
        return err;
    struct tide__resolve *r = tide__calloc(1, sizeof *r);
    if (r == NULL)
        return -ENOMEM;
    r->st = st;
    r->next = st->lookups;
    if (st->lookups != NULL)
        st->lookups->prev = r;
    st->lookups = r;
    st->outstanding++;

    struct evutil_addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    char serv[8];
    snprintf(serv, sizeof serv, "%u", (unsigned)port);
    /* May call on_answer before it returns (numeric, /etc/hosts, or an
     * immediate failure); it then returns NULL. */
    struct evdns_getaddrinfo_request *req =
        evdns_getaddrinfo(st->dns, host, serv, &hints, on_answer, r);
    if (!r->done)
        r->req = req;
    *out = r;
    return 0;
}

tide_poll_t tide__resolve_poll(struct tide__resolve *r, tide_cx_t *cx,
                               struct evutil_addrinfo **ai, int *err) {
    if (!r->done) {
        tide_waker_register(&r->waker, cx->waker);
        return TIDE_PENDING;
    }
    *ai = r->ai;
    *err = r->err;
    r->ai = NULL; /* the caller's now */
    release(r);
    return TIDE_READY;
}

void tide__resolve_cancel(struct tide__resolve *r) {
    if (r == NULL)
        return;
    if (r->done) {
        release(r);
        return;
    }
    r->orphan = true;
    tide_waker_drop(&r->waker);
    if (r->req != NULL)
        evdns_getaddrinfo_cancel(r->req); /* on_answer comes later */
}
