/*
 * tide/libevent.h: bridges to the libevent objects an application already
 * has, so that it can move to tide one piece at a time.
 *
 *   - a bufferevent (a socket one, or a filter such as OpenSSL's) as a
 *     tide stream: tide_bevstream_new;
 *   - an evconnlistener as a source of accept futures: tide_evlistener_new;
 *   - callback code that starts a future and hears of its end: a C
 *     callback (tide_spawn_cb) or a libevent event made active
 *     (tide_spawn_event).
 *
 * Everything here is used on the executor's thread, and every libevent
 * object handed in must belong to the executor's event_base (checked:
 * -EINVAL). The header only names libevent's types (struct bufferevent,
 * struct evconnlistener, struct event): it includes none of libevent's
 * headers, so including it costs a C file nothing it did not have.
 */
#ifndef TIDE_LIBEVENT_H
#define TIDE_LIBEVENT_H

#include "tide/core.h"
#include "tide/io.h"
#include "tide/net.h"

#ifdef __cplusplus
extern "C" {
#endif

struct bufferevent;
struct evconnlistener;
struct event;

/* ------------------------------------------------------------------------
 * A bufferevent as a stream
 *
 * Reads copy out of the bufferevent's input evbuffer (evbuffer_remove: a
 * read never allocates), writes copy into its output evbuffer
 * (evbuffer_add), and libevent moves the bytes between the evbuffers and
 * the socket (or the filter, or TLS) as it always does. The stream
 * watches the evbuffers (evbuffer callbacks, which leave the
 * bufferevent's own read and write callbacks to tide) and the
 * bufferevent's events:
 *
 *   - a read answers what the input evbuffer holds (up to len); it pends
 *     while the input is empty and wakes when bytes are added;
 *   - a write accepts what fits below TIDE_BEV_WRITE_HIGH bytes queued
 *     for output (a short write when it does not all fit) and pends while
 *     that much is queued; it wakes once libevent drained the output to
 *     TIDE_BEV_WRITE_LOW or less. For a filter, "queued" counts every
 *     output evbuffer down the chain of underlying bufferevents (a filter
 *     moves bytes at once to the bufferevent below it, whose output would
 *     otherwise grow without bound);
 *   - a flush pends until every output evbuffer down the chain is empty
 *     (every byte handed to the kernel, or to whatever is at the bottom);
 *   - a shutdown flushes, then shuts down the write side: see
 *     tide_bevstream_new.
 *
 * Events: BEV_EVENT_EOF makes reads answer 0 once the input evbuffer is
 * empty (every byte that arrived before it is read first), every time.
 * BEV_EVENT_ERROR records -errno (EVUTIL_SOCKET_ERROR() when libevent
 * reports it; -EIO if that is 0): reads answer it once the input is
 * empty, writes, flushes and shutdowns at once, every time (libevent
 * stops the bufferevent on an error). BEV_EVENT_TIMEOUT (the timeouts of
 * bufferevent_set_timeouts) makes the read, or the write, flush or
 * shutdown, that waits answer -ETIMEDOUT, once: libevent disabled that
 * direction when it timed out, and the next operation in that direction
 * enables it again, with a fresh timeout.
 * ------------------------------------------------------------------------ */

/* Bytes queued for output (the sum down the chain) at which writes pend. */
#define TIDE_BEV_WRITE_HIGH 65536
/* Queued output at or below which pending writes are woken. */
#define TIDE_BEV_WRITE_LOW 16384
/* The read high watermark tide sets on a bufferevent that has none (so
 * that a slow reader leaves what it has not read in the kernel's buffer,
 * which pushes back on the peer, instead of in memory). One that the
 * application set is kept. */
#define TIDE_BEV_READ_HIGH 65536

/* Flags for tide_bevstream_new. */
enum {
    /* The stream owns the bufferevent: tide_bevstream_free frees it (and
     * libevent then closes its descriptor, or frees the bufferevent under
     * a filter, if it was made with BEV_OPT_CLOSE_ON_FREE). A failed
     * tide_bevstream_new never frees it. */
    TIDE_BEV_OWN = 1u << 0
};

/* tide_bevstream_t: a bufferevent as a stream (opaque). */
typedef struct tide_bevstream tide_bevstream_t;

/*
 * tide_bevstream_new: make bev a stream (see above for what each
 * operation does). The stream takes over bev's callbacks
 * (bufferevent_setcb: tide's event callback, no read or write callback;
 * set none of your own while the stream lives) and enables EV_READ and
 * EV_WRITE on it; it adds one evbuffer callback to its input and one to
 * each output evbuffer down the chain of underlying bufferevents
 * (bufferevent_get_underlying; at most 4 bufferevents deep). It sets
 * bev's write low watermark to 0 and, if bev has no read high watermark,
 * sets one (TIDE_BEV_READ_HIGH). A bufferevent still connecting
 * (bufferevent_socket_connect) may be handed over: writes queue until it
 * connects, and a failed connect is a BEV_EVENT_ERROR.
 *
 * Shutdown (tide_shutdown, the vtable's poll_shutdown): first
 * bufferevent_flush(bev, EV_WRITE, BEV_FINISHED), which tells a filter
 * that no more data comes (bufferevent_filter_new passes BEV_FINISHED to
 * its output filter, which may write a trailer; an OpenSSL bufferevent
 * does nothing with it and sends no close_notify: call SSL_shutdown on
 * bufferevent_openssl_get_ssl(bev) first if the peer needs one); then it
 * waits until every output evbuffer down the chain is empty; then, if the
 * bufferevent at the bottom of the chain has a descriptor that is a
 * socket, shutdown(SHUT_WR) on it (the peer reads end of stream; we keep
 * reading). With no socket at the bottom (a bufferevent pair) nothing is
 * shut down and the result is 0. After a shutdown, writes answer -EPIPE.
 *
 * flags: 0 or TIDE_BEV_OWN.
 *
 * Ownership: without TIDE_BEV_OWN the bufferevent stays the caller's, who
 * frees it after freeing the stream (never before: the stream's evbuffer
 * callbacks and event callback would be called with freed memory);
 * freeing the stream removes what it added and restores nothing (bev is
 * left with no callbacks, enabled, with tide's watermarks). With
 * TIDE_BEV_OWN, tide_bevstream_free frees it.
 *
 * Returns 0 and sets *out. Errors: -EINVAL (NULL out, ex or bev, an
 * unknown flag, bev on another event_base than ex's, a chain deeper than
 * 4), -ENOMEM, -EIO (libevent refused a callback or to enable bev). On
 * error bev is left as it was given (and still the caller's, even with
 * TIDE_BEV_OWN).
 *
 * Threads: the executor's thread only (a BEV_OPT_THREADSAFE bufferevent
 * is not locked by the stream).
 */
TIDE_EXTERN int tide_bevstream_new(tide_bevstream_t **out, tide_exec_t *ex,
                                   struct bufferevent *bev, unsigned flags);

/*
 * tide_bevstream_free: close the stream: every future still waiting on it
 * completes with -EBADF at its next poll (and never touches the stream or
 * the bufferevent again); remove the callbacks the stream added; free the
 * bufferevent if the stream owns it (TIDE_BEV_OWN), else leave it to the
 * caller as tide_bevstream_new says. Bytes still queued for output are
 * then libevent's business: a bufferevent freed with output queued drops
 * it (await tide_flush or tide_shutdown first to send everything). NULL
 * is a no-op. Legal while futures wait on the stream, from any task.
 */
TIDE_EXTERN void tide_bevstream_free(tide_bevstream_t *s);

/* tide_bevstream_stream: the stream interface of s (for tide_read,
 * tide_write_all, tide_copy, tide_split, ...). */
TIDE_EXTERN tide_stream_t *tide_bevstream_stream(tide_bevstream_t *s);

/* tide_bevstream_bev: the bufferevent under s (still the stream's while
 * it lives: read its evbuffers or set timeouts, but leave its callbacks
 * alone). */
TIDE_EXTERN struct bufferevent *tide_bevstream_bev(tide_bevstream_t *s);

/* ------------------------------------------------------------------------
 * An evconnlistener as a listener
 *
 * The evconnlistener keeps accepting, as libevent does; its callback
 * (tide's, from now on) queues each new descriptor, with the peer's
 * address, and wakes the accept futures. The queue holds at most
 * TIDE_EVL_QUEUE descriptors: when it is full, tide disables the
 * evconnlistener (evconnlistener_disable), which leaves further
 * connections in the kernel's listen backlog (and, beyond the backlog,
 * to the kernel's policy: the clients' SYNs are dropped and retried),
 * and enables it again as soon as an accept takes one off the queue. No
 * connection is accepted and then closed for want of room. An error that
 * the evconnlistener reports (its error callback: -EMFILE, -ENFILE,
 * -ENOBUFS...) disables it too, so that it does not spin; the next accept
 * with nothing queued answers the error, once, and enables it again.
 * ------------------------------------------------------------------------ */

/* Descriptors accepted and queued before tide disables the
 * evconnlistener. */
#define TIDE_EVL_QUEUE 64

/* Flags for tide_evlistener_new. */
enum {
    /* The listener owns the evconnlistener: tide_evlistener_free frees it
     * (closing the listening socket if it was made with
     * LEV_OPT_CLOSE_ON_FREE). */
    TIDE_EVL_OWN = 1u << 0
};

/* tide_evlistener_t: an evconnlistener as a listener (opaque). */
typedef struct tide_evlistener tide_evlistener_t;

/*
 * tide_evlistener_new: accept through lev. Takes over lev's callbacks
 * (evconnlistener_set_cb, evconnlistener_set_error_cb: set none while the
 * listener lives) and enables it (one made with LEV_OPT_DISABLED too).
 * The descriptors it hands over are as lev accepted them: non-blocking
 * unless lev was made with LEV_OPT_LEAVE_SOCKETS_BLOCKING (and then
 * tide_evlistener_accept_conn refuses them: TIDE_EBLOCKING), close-on-exec
 * if made with LEV_OPT_CLOSE_ON_EXEC.
 *
 * Ownership: without TIDE_EVL_OWN the evconnlistener stays the caller's,
 * who frees it after the listener; freeing the listener leaves it
 * disabled, with no callback (set yours and enable it to accept again:
 * libevent's listener would otherwise close what it accepts). With
 * TIDE_EVL_OWN, tide_evlistener_free frees it. Descriptors still queued
 * are closed by tide_evlistener_free.
 *
 * Returns 0 and sets *out. Errors: -EINVAL (NULL out, ex or lev, an
 * unknown flag, lev on another event_base than ex's), -ENOMEM, -EIO
 * (evconnlistener_enable failed). On error lev is left as it was given.
 * Threads: the executor's thread only.
 */
TIDE_EXTERN int tide_evlistener_new(tide_evlistener_t **out, tide_exec_t *ex,
                                    struct evconnlistener *lev, unsigned flags);

/* tide_evlistener_free: close queued descriptors, complete every pending
 * accept with -EBADF (at its next poll), and free the evconnlistener if
 * the listener owns it (else leave it disabled, as above). NULL is a
 * no-op. Legal while accepts wait on it, from any task. */
TIDE_EXTERN void tide_evlistener_free(tide_evlistener_t *l);

/* tide_evlistener_lev: the evconnlistener under l (still l's while it
 * lives: leave its callbacks and its enabled state alone). */
TIDE_EXTERN struct evconnlistener *tide_evlistener_lev(tide_evlistener_t *l);

/*
 * An accept on a tide_evlistener_t (208 bytes on LP64): the oldest
 * queued descriptor, or the next one to come.
 *
 * tide_evlistener_accept: result: the descriptor (>= 0), also in op->fd;
 * the caller owns it. tide_evlistener_accept_conn: the descriptor
 * wrapped as a tide_conn_t (tide_tcp_from_fd or tide_unix_from_fd, by its
 * family): result 0 and op->conn set, which the caller frees with
 * tide_conn_free; if wrapping fails, the descriptor is closed and the
 * result is that error (TIDE_EBLOCKING, -ENOTCONN for a connection
 * already reset, -ENOMEM...). Either way op->peer is the peer's address
 * as the evconnlistener reported it.
 *
 * Other results: -EBADF (the listener was freed), the error the
 * evconnlistener reported (see above).
 *
 * Cancel safe: dropped before completion, no connection was taken off the
 * queue (the next accept gets it). Any number of accepts may wait on one
 * listener; each descriptor goes to one of them.
 */
typedef struct tide_evaccept {
    tide_future_t fut;
    int fd;               /* out, for tide_evlistener_accept */
    tide_conn_t *conn;    /* out, for tide_evlistener_accept_conn */
    tide_addr_t peer;     /* out */
    tide_evlistener_t *l; /* private */
    bool want_conn;
    tide_waiter_t w; /* on the listener's queue while pending */
} tide_evaccept_t;

/* tide_evlistener_accept: see tide_evaccept_t (result: the descriptor). */
TIDE_EXTERN tide_future_t *tide_evlistener_accept(tide_evaccept_t *op,
                                                  tide_evlistener_t *l);

/* tide_evlistener_accept_conn: see tide_evaccept_t (result: 0, and
 * op->conn). */
TIDE_EXTERN tide_future_t *tide_evlistener_accept_conn(tide_evaccept_t *op,
                                                       tide_evlistener_t *l);

/* ------------------------------------------------------------------------
 * Callbacks from futures
 *
 * Callback code starts async work with a spawn and hears of its end on
 * the loop: through a C callback, or through a libevent event of its own
 * made active. Both are tasks (tide_spawn), with a hook that runs when
 * the task finishes, however it finishes: with the future's result; with
 * -ECANCELED when it was aborted (tide_join_abort on the join handle,
 * which drops the future at its next pending point, before the
 * executor's next turn) or when the executor was freed first.
 * ------------------------------------------------------------------------ */

/* What tide_spawn_cb calls when its task finishes: the future's result
 * (or -ECANCELED), and the arg given to tide_spawn_cb. */
typedef void (*tide_done_fn)(intptr_t result, void *arg);

/*
 * tide_spawn_cb: spawn fut as a task (as tide_spawn: the task owns fut
 * and drops it) and call done(result, arg) once when it finishes: exactly
 * once for every successful spawn, after fut has been dropped. done runs
 * on the loop, from the executor's turn (never from inside this call):
 * with fut's result; or with -ECANCELED if the task was aborted
 * (tide_join_abort(join)) or is dropped by tide_exec_free (then done runs
 * from inside tide_exec_free, so arg can still be released; tide_spawn
 * answers -ESHUTDOWN there). done may spawn, abort and free anything but
 * the executor.
 *
 * join: a join handle for the task, or NULL. With one, the task can be
 * aborted (tide_join_abort: done then gets -ECANCELED, unless the task
 * completed first: then its result), awaited, or detached; the handle must
 * be detached or dropped in the end, as every join handle (from done
 * itself if you like). done is called whether or not the handle lives.
 *
 * Returns 0. Errors: those of tide_spawn (-EINVAL: NULL ex, fut or done;
 * -EBUSY, -ENOMEM, -ESHUTDOWN); on error fut is not taken (as tide_spawn
 * says) and done is never called.
 * Executor's thread only.
 */
TIDE_EXTERN int tide_spawn_cb(tide_exec_t *ex, tide_future_t *fut,
                              tide_done_fn done, void *arg, tide_join_t *join);

/*
 * tide_spawn_event: spawn fut as a task (as tide_spawn_cb) and, when it
 * finishes, store its result (or -ECANCELED, as for tide_spawn_cb) in
 * *result (if not NULL) and make ev active with EV_READ
 * (event_active(ev, EV_READ, 0)): its callback then runs in the loop's
 * pass, as any active event's, with result already set. ev is an event
 * the caller set up (event_new, event_assign) on the executor's
 * event_base, added or not: it is made active once per spawn. When the
 * executor is freed before the task finishes, *result is set to
 * -ECANCELED but ev is not made active (the loop that would run it is
 * being torn down, or is the host's shutting tide down).
 *
 * ev and result must stay valid until the event's callback has run (or
 * the executor is freed); aborting through join makes that happen before
 * the next turn.
 *
 * Returns 0. Errors: as tide_spawn_cb (-EINVAL also for NULL ev, or ev on
 * another event_base than ex's).
 * Executor's thread only.
 */
TIDE_EXTERN int tide_spawn_event(tide_exec_t *ex, tide_future_t *fut,
                                 struct event *ev, intptr_t *result,
                                 tide_join_t *join);

/* ------------------------------------------------------------------------
 * evhttp handlers as tasks
 *
 * A tide_evhttp_t routes an evhttp's requests (evhttp_set_cb,
 * evhttp_set_gencb) to a factory that makes a future for each request;
 * tide spawns it as a task, which awaits what it likes (a sleep, a
 * backend over TCP, a channel) and then replies with tide_evreq_reply or
 * tide_evreq_error. Every request gets exactly one reply or is dropped
 * with its client:
 *
 *   - the client goes away before the reply (tide watches its socket
 *     while the request waits: end of stream or an error), the evhttp is
 *     freed, or libevent fails the connection:
 *     the task is aborted at the pending point it is waiting at (it is
 *     dropped before the executor's next turn and never polled again)
 *     and tide frees the request if libevent left that to it. No reply is
 *     attempted;
 *   - the task finishes without replying: tide answers 500; the executor
 *     is freed with the task in flight (tide_exec_free drops it): 503;
 *   - the factory returns NULL: 500 (unless it replied); tide cannot
 *     spawn (-ENOMEM, -ESHUTDOWN): the future is dropped and the client
 *     gets 503.
 *
 * Cancel safety, for the future's author: while the future is polled the
 * request is alive (tide_evreq_req(r) is it, until the reply). Its drop
 * function may run after the request is gone (the client left): it must
 * not touch the request, only r (valid until the drop returns) and its
 * own state. To hold the request across a pending point is safe only
 * through r (tide_evreq_req answers NULL once it is gone or answered).
 *
 * The close callback of the request's connection
 * (evhttp_connection_set_closecb) is tide's from the request's arrival to
 * its reply: set none of your own on connections served by tide
 * handlers.
 *
 * Order at shutdown: tide_evhttp_free before evhttp_free and before
 * tide_exec_free (the evhttp would call a freed router). Requests in
 * flight need neither the router nor the evhttp handle to end safely.
 * ------------------------------------------------------------------------ */

struct evhttp;
struct evhttp_request;
struct evbuffer;

/* tide_evhttp_t: routes an evhttp's requests to tasks (opaque). */
typedef struct tide_evhttp tide_evhttp_t;

/* tide_evreq_t: one request served by a task (opaque; tide's, freed after
 * the task's future is dropped). */
typedef struct tide_evreq tide_evreq_t;

/* What a route calls for each request: return a future (the task takes
 * it and drops it, as tide_spawn) that will reply through r, or NULL (the
 * client gets 500 unless the factory replied through r). Runs from
 * evhttp's request callback, on the loop. */
typedef tide_future_t *(*tide_evhttp_fn)(tide_evreq_t *r, void *arg);

/*
 * tide_evhttp_new: a router for http, whose tasks run on ex (http must be
 * on ex's event_base). Returns 0 and sets *out. Errors: -EINVAL (NULL
 * out, ex or http), -ENOMEM. The evhttp stays the caller's.
 * Executor's thread only.
 */
TIDE_EXTERN int tide_evhttp_new(tide_evhttp_t **out, tide_exec_t *ex,
                                struct evhttp *http);

/* tide_evhttp_free: remove every callback h set on its evhttp
 * (evhttp_del_cb, and the generic callback back to evhttp's 404) and free
 * h. Tasks already serving requests run on. NULL is a no-op. Call it
 * before evhttp_free and tide_exec_free. */
TIDE_EXTERN void tide_evhttp_free(tide_evhttp_t *h);

/*
 * tide_evhttp_set_cb: serve requests for path (as evhttp_set_cb) with
 * tasks made by fn(r, arg). Returns 0. Errors: -EINVAL (NULL h, path or
 * fn), -EEXIST (path already has a callback on the evhttp), -ENOMEM.
 */
TIDE_EXTERN int tide_evhttp_set_cb(tide_evhttp_t *h, const char *path,
                                   tide_evhttp_fn fn, void *arg);

/* tide_evhttp_set_gencb: serve every request that no path matches (as
 * evhttp_set_gencb) with tasks made by fn(r, arg); fn NULL gives the
 * generic callback back to evhttp (404). Returns 0. Errors: -EINVAL (NULL
 * h). */
TIDE_EXTERN int tide_evhttp_set_gencb(tide_evhttp_t *h, tide_evhttp_fn fn,
                                      void *arg);

/* tide_evreq_req: the request, or NULL once it was answered or its
 * client went away (and for NULL r). Valid until the task's next pending
 * point. */
TIDE_EXTERN struct evhttp_request *tide_evreq_req(tide_evreq_t *r);

/* tide_evreq_gone: true once r's client went away before a reply. */
TIDE_EXTERN bool tide_evreq_gone(const tide_evreq_t *r);

/*
 * tide_evreq_reply: answer r (evhttp_send_reply: code, reason, NULL for
 * "OK", body drained into the reply, NULL for none). After it, the
 * request is libevent's: tide_evreq_req answers NULL. Returns 0. Errors:
 * -EINVAL (NULL r, code outside 100..599), -EALREADY (already answered),
 * -ECONNRESET (the client went away: only seen from outside r's task,
 * which is aborted then).
 */
TIDE_EXTERN int tide_evreq_reply(tide_evreq_t *r, int code, const char *reason,
                                 struct evbuffer *body);

/* tide_evreq_error: answer r with an error page (evhttp_send_error: code,
 * reason or NULL). Returns and errors as tide_evreq_reply. */
TIDE_EXTERN int tide_evreq_error(tide_evreq_t *r, int code, const char *reason);

#ifdef __cplusplus
}
#endif
#endif
