/*
 * src/sync/mpsc.c: a bounded channel of fixed-size items in a ring
 * allocated once, behind one mutex.
 *
 * A slot freed by a receive goes to the sender that waited longest: it is
 * reserved (counted in `reserved`), the sender moves to the granted list
 * and is woken, and its next poll copies its item in. So a sender that
 * found the channel full cannot be overtaken by one that came later (nor
 * by a try_send), and one dropped before it used its slot passes the slot
 * on. The receiver is one: while it waits, `rx` points at its node, whose
 * waker a sender takes out (under the lock) and wakes after unlocking; a
 * receiver already woken is not woken again until it has polled.
 *
 * Threads: everything is under the lock, and every wake is made after it
 * is released. A thread that runs no executor can wait too
 * (tide_mpsc_send_blocking): its node's waker is a semaphore on its
 * stack, posted exactly once by whoever takes the node off the waiters.
 */
#include <semaphore.h>

#include "sync/internal.h"

int tide_mpsc_init(tide_mpsc_t *ch, size_t elem_size, size_t capacity) {
    if (ch == NULL || elem_size == 0 || capacity == 0)
        return -EINVAL;
    if (capacity > SIZE_MAX / elem_size)
        return -EOVERFLOW;
    ch->buf = tide__malloc(capacity * elem_size);
    if (ch->buf == NULL)
        return -ENOMEM;
    int rc = pthread_mutex_init(&ch->lock, NULL);
    if (rc != 0) {
        tide__free(ch->buf);
        ch->buf = NULL;
        return -rc;
    }
    ch->elem = elem_size;
    ch->cap = capacity;
    ch->head = ch->len = ch->reserved = 0;
    slist_init(&ch->waiters);
    slist_init(&ch->granted);
    ch->rx = NULL;
    ch->closed = false;
    return 0;
}

/* Under the lock: copy item into the slot after the last. */
static inline void push_locked(tide_mpsc_t *ch, const void *item) {
    size_t tail = ch->head + ch->len;
    if (tail >= ch->cap)
        tail -= ch->cap;
    memcpy(ch->buf + tail * ch->elem, item, ch->elem);
    ch->len++;
}

/* Under the lock: the receiver's waker, to wake after unlocking (empty if
 * it does not wait or was woken already). */
static inline tide_waker_t take_rx_locked(tide_mpsc_t *ch) {
    tide_waker_t w = TIDE_WAKER_EMPTY;
    if (ch->rx != NULL) {
        w = ch->rx->waker;
        ch->rx->waker = TIDE_WAKER_EMPTY;
    }
    return w;
}

/* Under the lock: reserve free slots for the senders that wait. */
static void grant_locked(tide_mpsc_t *ch, wake_list_t *wl) {
    while (!slist_empty(&ch->waiters) && ch->len + ch->reserved < ch->cap &&
           !wake_list_full(wl)) {
        tide__snode_t *n = snode_of(ch->waiters.next);
        slist_unlink(&n->link);
        slist_push(&ch->granted, &n->link);
        ch->reserved++;
        wake_list_take(wl, n);
        snode_set(n, SNODE_GRANTED);
    }
}

static inline bool can_send_now(const tide_mpsc_t *ch) {
    return slist_empty(&ch->waiters) && ch->len + ch->reserved < ch->cap;
}

int tide_mpsc_try_send(tide_mpsc_t *ch, const void *item) {
    int rc = 0;
    tide_waker_t w = TIDE_WAKER_EMPTY;
    sync_lock(&ch->lock);
    if (ch->closed)
        rc = -EPIPE;
    else if (!can_send_now(ch))
        rc = -EAGAIN;
    else {
        push_locked(ch, item);
        w = take_rx_locked(ch);
    }
    sync_unlock(&ch->lock);
    tide_waker_wake(&w);
    return rc;
}

static int pop_locked(tide_mpsc_t *ch, void *out, wake_list_t *wl) {
    if (ch->len == 0)
        return ch->closed ? 0 : -EAGAIN;
    memcpy(out, ch->buf + ch->head * ch->elem, ch->elem);
    if (++ch->head == ch->cap)
        ch->head = 0;
    ch->len--;
    grant_locked(ch, wl);
    return 1;
}

int tide_mpsc_try_recv(tide_mpsc_t *ch, void *out) {
    wake_list_t wl = {0};
    sync_lock(&ch->lock);
    int rc = pop_locked(ch, out, &wl);
    sync_unlock(&ch->lock);
    wake_list_run(&wl);
    return rc;
}

size_t tide_mpsc_len(tide_mpsc_t *ch) {
    sync_lock(&ch->lock);
    size_t n = ch->len;
    sync_unlock(&ch->lock);
    return n;
}

/* Under the lock: close, failing the waiting senders and those given a
 * slot not yet used; with `all`, the receiver too (the channel is going). */
static void close_locked(tide_mpsc_t *ch, bool all, wake_list_t *wl,
                         tide_waker_t *rxw) {
    ch->closed = true;
    slist_close_all(&ch->lock, &ch->waiters, wl);
    ch->reserved -= slist_close_all(&ch->lock, &ch->granted, wl);
    *rxw = take_rx_locked(ch);
    if (all && ch->rx != NULL) {
        snode_set(ch->rx, SNODE_CLOSED);
        ch->rx = NULL;
    }
}

void tide_mpsc_close(tide_mpsc_t *ch) {
    wake_list_t wl = {0};
    tide_waker_t rxw;
    sync_lock(&ch->lock);
    close_locked(ch, false, &wl, &rxw);
    sync_unlock(&ch->lock);
    wake_list_run(&wl);
    tide_waker_wake(&rxw);
}

void tide_mpsc_free(tide_mpsc_t *ch) {
    if (ch == NULL || ch->buf == NULL)
        return;
    wake_list_t wl = {0};
    tide_waker_t rxw;
    sync_lock(&ch->lock);
    close_locked(ch, true, &wl, &rxw);
    sync_unlock(&ch->lock);
    wake_list_run(&wl);
    tide_waker_wake(&rxw);
    pthread_mutex_destroy(&ch->lock);
    tide__free(ch->buf);
    ch->buf = NULL;
}

/* ------------------------------------------------------------------------
 * Send
 * ------------------------------------------------------------------------ */

static tide_poll_t send_poll(tide_future_t *f, tide_cx_t *cx) {
    tide_mpsc_send_t *op = TIDE_CONTAINER_OF(f, tide_mpsc_send_t, fut);
    if (snode_state(&op->node) == SNODE_CLOSED) {
        f->result = -EPIPE; /* closed, maybe freed: touch nothing */
        return TIDE_READY;
    }
    if (!tide_cx_coop(cx))
        return TIDE_PENDING;
    tide_mpsc_t *ch = op->ch;
    tide_waker_t rxw = TIDE_WAKER_EMPTY;
    sync_lock(&ch->lock);
    switch (op->node.state) {
    case SNODE_IDLE:
        if (ch->closed) {
            sync_unlock(&ch->lock);
            f->result = -EPIPE;
            return TIDE_READY;
        }
        if (can_send_now(ch))
            break;
        slist_push(&ch->waiters, &op->node.link);
        snode_register(&op->node, cx->waker);
        snode_set(&op->node, SNODE_QUEUED);
        sync_unlock(&ch->lock);
        return TIDE_PENDING;
    case SNODE_QUEUED:
        snode_register(&op->node, cx->waker);
        sync_unlock(&ch->lock);
        return TIDE_PENDING;
    case SNODE_GRANTED:
        slist_unlink(&op->node.link);
        ch->reserved--;
        break;
    default:
        TIDE__CHECK(!"mpsc send: bad state");
    }
    push_locked(ch, op->item);
    rxw = take_rx_locked(ch);
    snode_set(&op->node, SNODE_FINISHED);
    sync_unlock(&ch->lock);
    tide_waker_wake(&rxw);
    f->result = 0;
    return TIDE_READY;
}

/* Under the lock: take a waiting or granted sender off, passing a reserved
 * slot on. Returns the node's waker, for the caller to drop unlocked. */
static tide_waker_t send_leave_locked(tide_mpsc_t *ch, tide__snode_t *n,
                                      wake_list_t *wl) {
    unsigned st = n->state;
    slist_unlink(&n->link);
    if (st == SNODE_GRANTED) {
        ch->reserved--;
        grant_locked(ch, wl);
    }
    tide_waker_t w = n->waker;
    n->waker = TIDE_WAKER_EMPTY;
    snode_set(n, SNODE_FINISHED);
    return w;
}

static void send_drop(tide_future_t *f) {
    tide_mpsc_send_t *op = TIDE_CONTAINER_OF(f, tide_mpsc_send_t, fut);
    unsigned st = snode_state(&op->node);
    if (st == SNODE_IDLE || st == SNODE_CLOSED || st == SNODE_FINISHED)
        return;
    tide_mpsc_t *ch = op->ch;
    wake_list_t wl = {0};
    tide_waker_t mine = TIDE_WAKER_EMPTY;
    sync_lock(&ch->lock);
    if (op->node.state != SNODE_CLOSED)
        mine = send_leave_locked(ch, &op->node, &wl);
    sync_unlock(&ch->lock);
    tide_waker_drop(&mine);
    wake_list_run(&wl);
}

static const tide_future_vtable_t send_vt = {send_poll, send_drop};

tide_future_t *tide_mpsc_send(tide_mpsc_send_t *op, tide_mpsc_t *ch,
                              const void *item) {
    snode_init(&op->node);
    op->ch = ch;
    op->item = item;
    return tide_future_init(&op->fut, &send_vt);
}

/* A blocked thread's waker: a semaphore on its stack. The node holds the
 * one reference there is (clone and drop count nothing); the waker that
 * takes the node off the list posts it once, and the thread waits for
 * that post before its frame goes, so the post never finds it gone. */
typedef struct thread_waker {
    tide_wakeable_t wk;
    sem_t sem;
} thread_waker_t;

static tide_waker_t tw_clone(const tide_wakeable_t *w) { return TIDE_WAKER(w); }
static void tw_wake(const tide_wakeable_t *w) {
    thread_waker_t *t = TIDE_CONTAINER_OF(w, thread_waker_t, wk);
    sem_post(&t->sem);
}
static void tw_drop(const tide_wakeable_t *w) { (void)w; }
static const tide_waker_vtable_t tw_vt = {tw_clone, tw_wake, tw_wake, tw_drop};

int tide_mpsc_send_blocking(tide_mpsc_t *ch, const void *item) {
    if (ch == NULL || item == NULL)
        return -EINVAL;
    int rc = tide_mpsc_try_send(ch, item);
    if (rc != -EAGAIN)
        return rc;
    thread_waker_t tw;
    tw.wk.vtable = &tw_vt;
    if (sem_init(&tw.sem, 0, 0) != 0)
        return -errno;
    tide__snode_t node;
    snode_init(&node);
    tide_waker_t rxw = TIDE_WAKER_EMPTY;
    sync_lock(&ch->lock);
    for (;;) {
        if (ch->closed) {
            rc = -EPIPE;
            break;
        }
        if (node.state == SNODE_GRANTED) {
            slist_unlink(&node.link);
            ch->reserved--;
        } else if (!can_send_now(ch)) {
            /* wait: the one who takes us off posts once */
            slist_push(&ch->waiters, &node.link);
            node.waker = TIDE_WAKER(&tw.wk);
            snode_set(&node, SNODE_QUEUED);
            sync_unlock(&ch->lock);
            while (sem_wait(&tw.sem) != 0)
                TIDE__CHECK(errno == EINTR);
            sync_lock(&ch->lock);
            if (node.state == SNODE_CLOSED) {
                rc = -EPIPE;
                break;
            }
            continue; /* granted */
        }
        push_locked(ch, item);
        rxw = take_rx_locked(ch);
        rc = 0;
        break;
    }
    sync_unlock(&ch->lock);
    tide_waker_wake(&rxw);
    sem_destroy(&tw.sem);
    return rc;
}

/* ------------------------------------------------------------------------
 * Receive
 * ------------------------------------------------------------------------ */

static tide_poll_t recv_poll(tide_future_t *f, tide_cx_t *cx) {
    tide_mpsc_recv_t *op = TIDE_CONTAINER_OF(f, tide_mpsc_recv_t, fut);
    if (snode_state(&op->node) == SNODE_CLOSED) {
        f->result = -EPIPE; /* freed under us */
        return TIDE_READY;
    }
    if (!tide_cx_coop(cx))
        return TIDE_PENDING;
    tide_mpsc_t *ch = op->ch;
    wake_list_t wl = {0};
    sync_lock(&ch->lock);
    if (ch->rx != NULL && ch->rx != &op->node) {
        sync_unlock(&ch->lock);
        f->result = -EBUSY;
        return TIDE_READY;
    }
    int rc = pop_locked(ch, op->out, &wl);
    if (rc == -EAGAIN) {
        ch->rx = &op->node;
        snode_register(&op->node, cx->waker);
        snode_set(&op->node, SNODE_QUEUED);
        sync_unlock(&ch->lock);
        return TIDE_PENDING;
    }
    tide_waker_t mine = TIDE_WAKER_EMPTY;
    if (ch->rx == &op->node) {
        ch->rx = NULL;
        mine = op->node.waker;
        op->node.waker = TIDE_WAKER_EMPTY;
    }
    snode_set(&op->node, SNODE_FINISHED);
    sync_unlock(&ch->lock);
    tide_waker_drop(&mine);
    wake_list_run(&wl);
    f->result = rc;
    return TIDE_READY;
}

static void recv_drop(tide_future_t *f) {
    tide_mpsc_recv_t *op = TIDE_CONTAINER_OF(f, tide_mpsc_recv_t, fut);
    if (snode_state(&op->node) != SNODE_QUEUED)
        return; /* never waited, finished, or freed under it */
    tide_mpsc_t *ch = op->ch;
    tide_waker_t mine = TIDE_WAKER_EMPTY;
    sync_lock(&ch->lock);
    if (ch->rx == &op->node) {
        ch->rx = NULL;
        mine = op->node.waker;
        op->node.waker = TIDE_WAKER_EMPTY;
    }
    snode_set(&op->node, SNODE_FINISHED);
    sync_unlock(&ch->lock);
    tide_waker_drop(&mine);
}

static const tide_future_vtable_t recv_vt = {recv_poll, recv_drop};

tide_future_t *tide_mpsc_recv(tide_mpsc_recv_t *op, tide_mpsc_t *ch,
                              void *out) {
    snode_init(&op->node);
    op->ch = ch;
    op->out = out;
    return tide_future_init(&op->fut, &recv_vt);
}
