/*
 * tide/tls.h: TLS over any tide stream, with OpenSSL 3.
 *
 * Built only when configure found OpenSSL (TIDE_HAVE_TLS is 1 in
 * tide/version.h; tide.h includes this header only then). No OpenSSL
 * header is included here: OpenSSL's objects appear as incomplete struct
 * types for those who want them (tide_tls_config_ssl_ctx, tide_tls_ssl).
 *
 * A tide_tls_t wraps an inner stream (TCP, Unix, a split half, a
 * bufferevent stream, another TLS stream: any tide_stream_t) and is itself
 * a stream, so tide_read, tide_write_all, tide_copy, tide_split, the
 * bufreader and the codecs work over it unchanged. OpenSSL sees a pair of
 * memory BIOs whose buffers (TIDE_TLS_BUF_SIZE each way) are allocated by
 * tide_tls_new; the encrypted bytes move between them and the inner
 * stream through the inner stream's poll_read and poll_write, straight
 * into and out of those buffers. After the handshake nothing is allocated
 * per message (beyond what OpenSSL itself does, which with the default
 * modes is nothing: tide never sets SSL_MODE_RELEASE_BUFFERS).
 *
 * Waiting: the TLS stream has its own two queues (rq, wq), on which every
 * future waits. When OpenSSL needs the inner stream, an internal waiter
 * (in the tide_tls_t) waits on the inner stream's queue and, woken, wakes
 * both TLS queues: a reader may need the inner stream's write side (a
 * handshake message, a TLS 1.3 key update) and a writer its read side.
 *
 * Records and writes: a write encrypts at most one record (16 KiB of
 * plaintext) and answers once OpenSSL has taken the bytes: they are
 * encrypted and in the TLS stream's output buffer, and pushed to the
 * inner stream as far as it accepts them. What the inner stream did not
 * take goes out at the next operation on the TLS stream (any: a read
 * pushes pending output first) or at tide_flush / tide_shutdown, which
 * complete only once it has all been handed to the inner stream. (tide_copy
 * flushes its writer before waiting, so a proxy never leaves bytes
 * behind.)
 *
 * End of stream and errors (all sticky: once a TLS stream failed, every
 * operation answers the same error):
 *   - the peer's close_notify: reads answer 0 (end of stream), each time;
 *   - the inner stream ends without close_notify: a truncation attack is
 *     indistinguishable from a lost connection, so reads answer
 *     -ECONNABORTED, unless the stream was made with
 *     TIDE_TLS_ALLOW_TRUNCATION (then 0, as for close_notify); during the
 *     handshake always -ECONNABORTED;
 *   - certificate verification failed (ours of the peer's), or a server
 *     that requires a client certificate got none: -EKEYREJECTED
 *     (tide_tls_verify_result says why);
 *   - any other TLS failure (a bad record, an alert from the peer, no
 *     common protocol or cipher): -EPROTO (tide_tls_error_reason names
 *     OpenSSL's reason);
 *   - the inner stream's own errors (-ECONNRESET, -EPIPE, ...) as they
 *     come, and -EBADF if the inner stream was freed under the TLS stream.
 *
 * Cancel safety: everything an operation has done lives in the
 * tide_tls_t (the buffers, OpenSSL's state), not in the future, so a
 * future over the TLS stream dropped while pending loses nothing, as over
 * TCP: a handshake goes on at the next handshake, read or write; a read
 * leaves what arrived for the next read; a write had taken nothing (it
 * pends only before OpenSSL takes its bytes: waiting for the handshake or
 * for room in the output buffer); a flush or shutdown leaves the output
 * queued, and a shutdown whose close_notify was already made sends no
 * second one. What tide_read_exact and tide_write_all lose when dropped
 * is what they lose over any stream (tide/io.h).
 *
 * Threads: a TLS stream, like its inner stream, belongs to the thread of
 * the executor that polls it. A config may be shared by the streams of one
 * thread; sharing one across threads is safe once it is no longer changed
 * (OpenSSL's SSL_CTX rules).
 */
#ifndef TIDE_TLS_H
#define TIDE_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "tide/core.h"
#include "tide/io.h"

#ifdef __cplusplus
extern "C" {
#endif

/* OpenSSL's types, incomplete here (SSL_CTX, SSL in <openssl/ssl.h>). */
struct ssl_ctx_st;
struct ssl_st;

/* The size of each of the two buffers between OpenSSL and the inner
 * stream (ciphertext in, ciphertext out), allocated by tide_tls_new: two
 * full records each way, so that a write of one record never has to wait
 * for room in the middle of it. */
#define TIDE_TLS_BUF_SIZE (40u * 1024u)

/* tide_tls_config_t: settings shared by many TLS streams (opaque): an
 * OpenSSL SSL_CTX with tide's defaults. tide_tls_config_new. */
typedef struct tide_tls_config tide_tls_config_t;

/* tide_tls_t: a TLS stream over an inner stream (opaque): tide_tls_new. */
typedef struct tide_tls tide_tls_t;

/* tide_tls_session_t: a TLS session to resume (opaque; an OpenSSL
 * SSL_SESSION): tide_tls_session_get, tide_tls_set_session. */
typedef struct tide_tls_session tide_tls_session_t;

/* The side of the handshake a stream plays. */
typedef enum tide_tls_role {
    TIDE_TLS_CLIENT = 0,
    TIDE_TLS_SERVER = 1,
} tide_tls_role_t;

/* Certificate verification (tide_tls_config_set_verify). */
typedef enum tide_tls_verify {
    /* Clients verify the server's certificate and host name; servers ask
     * for no client certificate. The default. */
    TIDE_TLS_VERIFY_DEFAULT = 0,
    /* Nobody verifies anything: for tests and for peers authenticated
     * otherwise. A client then accepts any certificate. */
    TIDE_TLS_VERIFY_NONE = 1,
    /* Clients as DEFAULT; servers ask for a client certificate and verify
     * it if one is sent (a client without one is let in). */
    TIDE_TLS_VERIFY_PEER = 2,
    /* Clients as DEFAULT; servers require a valid client certificate. */
    TIDE_TLS_VERIFY_REQUIRE = 3,
} tide_tls_verify_t;

/* Flags for tide_tls_new. */
enum {
    /* The inner stream ending without the peer's close_notify is end of
     * stream (reads answer 0) rather than -ECONNABORTED: for protocols
     * that frame their own end (HTTP with Content-Length) and peers known
     * to close without it. */
    TIDE_TLS_ALLOW_TRUNCATION = 1u << 0,
};

/* ------------------------------------------------------------------------
 * Configuration
 *
 * Set a config up before making streams from it: the setters change the
 * SSL_CTX, and streams made earlier keep what they had (certificates) or
 * see the change (ALPN, verification callbacks): set, then use.
 * ------------------------------------------------------------------------ */

/*
 * tide_tls_config_new: a config with tide's defaults: TLS 1.2 or later,
 * renegotiation refused, the system's trusted CAs (OpenSSL's default
 * paths) for verification, TIDE_TLS_VERIFY_DEFAULT, a server-side session
 * cache (OpenSSL's) and TLS 1.3 session tickets, no certificate, no ALPN.
 * Returns 0. Errors: -EINVAL (out NULL), -ENOMEM. The caller frees it with
 * tide_tls_config_free, after every stream made from it.
 */
TIDE_EXTERN int tide_tls_config_new(tide_tls_config_t **out);

/* tide_tls_config_free: free cfg. Every stream made from it must have been
 * freed first (undefined behaviour otherwise: its ALPN callback reads
 * cfg). NULL is a no-op. */
TIDE_EXTERN void tide_tls_config_free(tide_tls_config_t *cfg);

/*
 * tide_tls_config_set_cert_file: the certificate (a PEM file: the
 * certificate first, then the intermediate CAs, as OpenSSL's
 * SSL_CTX_use_certificate_chain_file reads it) and its private key (PEM,
 * unencrypted) that this side presents: required for a server, optional
 * for a client (a client certificate). Returns 0. Errors: -EINVAL (NULL
 * argument, a file that is not a PEM certificate or key, or a key that
 * does not match the certificate), -errno of opening a file (-ENOENT,
 * -EACCES). The files are read now; nothing keeps them open.
 */
TIDE_EXTERN int tide_tls_config_set_cert_file(tide_tls_config_t *cfg,
                                              const char *cert_file,
                                              const char *key_file);

/*
 * tide_tls_config_set_ca_file: trust the CA certificates of ca_file (PEM)
 * for verifying peers, in addition to the system's. Returns 0. Errors:
 * -EINVAL (NULL argument, no certificate in the file), -errno of opening
 * it.
 */
TIDE_EXTERN int tide_tls_config_set_ca_file(tide_tls_config_t *cfg,
                                            const char *ca_file);

/* tide_tls_config_set_verify: who verifies whom (tide_tls_verify_t) for
 * streams made from now on. Returns 0; -EINVAL for an unknown mode. */
TIDE_EXTERN int tide_tls_config_set_verify(tide_tls_config_t *cfg,
                                           tide_tls_verify_t mode);

/*
 * tide_tls_config_set_alpn: the application protocols (ALPN, RFC 7301),
 * in order of preference: a client offers them; a server picks the first
 * of its own list that the client offers, and refuses a client that
 * offers ALPN but none of them (the handshake fails: -EPROTO on both
 * sides). A client that offers no ALPN is served with none. n == 0 clears
 * the list. Returns 0. Errors: -EINVAL (protos NULL with n > 0, a name
 * empty or over 255 bytes), -ENOMEM. The names are copied.
 */
TIDE_EXTERN int tide_tls_config_set_alpn(tide_tls_config_t *cfg,
                                         const char *const *protos, size_t n);

/* tide_tls_config_ssl_ctx: cfg's SSL_CTX, for settings tide has no setter
 * for (ciphers, groups, a key log callback). It stays cfg's: do not free
 * it, and do not replace the ALPN select callback tide installed. */
TIDE_EXTERN struct ssl_ctx_st *tide_tls_config_ssl_ctx(tide_tls_config_t *cfg);

/* ------------------------------------------------------------------------
 * TLS streams
 * ------------------------------------------------------------------------ */

/*
 * tide_tls_new: a TLS stream of `role` over inner, with cfg's settings.
 *
 * host: for a client, the server's name: sent as SNI and checked against
 * the certificate (SSL_set1_host; an IP address literal is checked as an
 * address and not sent as SNI). Required when the client verifies (any
 * mode but TIDE_TLS_VERIFY_NONE): -EINVAL if NULL. A server ignores it.
 * flags: 0 or TIDE_TLS_ALLOW_TRUNCATION.
 *
 * Nothing is sent yet: the handshake happens at tide_tls_handshake, or at
 * the first read or write (which then may fail with the handshake's
 * errors). Returns 0. Errors: -EINVAL (NULL out, cfg or inner, unknown
 * role or flags, host NULL for a verifying client, or a host name OpenSSL
 * refuses), -ENOMEM.
 *
 * Ownership: the TLS stream borrows inner and cfg, which must outlive it
 * (free the TLS stream, then inner). If inner is freed first anyway, the
 * TLS stream's operations answer -EBADF and it must still be freed.
 */
TIDE_EXTERN int tide_tls_new(tide_tls_t **out, tide_tls_config_t *cfg,
                             tide_stream_t *inner, tide_tls_role_t role,
                             const char *host, unsigned flags);

/*
 * tide_tls_free: free t (its OpenSSL state and its buffers). No
 * close_notify is sent (use tide_shutdown first for that) and the inner
 * stream is left open. Every future still waiting on t completes with
 * -EBADF at its next poll (see tide/io.h, "Waiting"), so t may be freed by
 * any task at any time. NULL is a no-op.
 */
TIDE_EXTERN void tide_tls_free(tide_tls_t *t);

/* tide_tls_stream: t as a stream, for every helper of tide/io.h (it lives
 * as long as t). Its poll_shutdown sends close_notify (once), pushes it
 * out, then shuts the inner stream down; writes after it answer -EPIPE,
 * reads go on until the peer's close_notify. Its operations' errors are
 * the sticky errors of the introduction (a write reports the bytes
 * OpenSSL took even if pushing them failed: the next operation, or the
 * final flush or shutdown, answers that failure); their cancel safety is
 * the introduction's too. */
TIDE_EXTERN tide_stream_t *tide_tls_stream(tide_tls_t *t);

/*
 * tide_tls_poll_handshake: drive the handshake. READY with *out = 0 once
 * it is complete and every byte of our side of it was handed to the inner
 * stream (at once, if it was already complete), or an error (the sticky
 * errors of the header's introduction: -EKEYREJECTED, -EPROTO,
 * -ECONNABORTED, the inner stream's). PENDING: t's queues will be woken
 * (the future below waits on t's read queue).
 */
TIDE_EXTERN tide_poll_t tide_tls_poll_handshake(tide_tls_t *t, tide_cx_t *cx,
                                                int *out);

/*
 * tide_tls_handshake: the handshake as a future. Result: 0, or the errors
 * of tide_tls_poll_handshake. Bound it with tide_timeout: a peer that
 * says nothing keeps it pending for ever. Cancel safe: dropped, the
 * handshake's progress stays in t (a later handshake, read or write goes
 * on from there); a handshake that timed out is usually reason to free t.
 */
typedef struct tide_tls_handshake {
    tide_future_t fut;
    tide_tls_t *tls; /* private */
    tide_waiter_t w; /* on t's read queue while pending */
} tide_tls_handshake_t;

TIDE_EXTERN tide_future_t *tide_tls_handshake(tide_tls_handshake_t *op,
                                              tide_tls_t *t);

/* tide_tls_handshake_done: true once t's handshake completed. */
TIDE_EXTERN bool tide_tls_handshake_done(const tide_tls_t *t);

/* tide_tls_has_buffered_input: true if t holds input that no read has
 * returned yet: plaintext OpenSSL decrypted, a record only partly
 * received, or ciphertext taken from the inner stream that OpenSSL has not
 * looked at. After a read of t answered PENDING, true means the peer is in
 * the middle of a record and the rest is on its way: a server that ends
 * its idle connections (a drain) should wait for it rather than count the
 * connection as idle, or it loses bytes the peer has sent. Never fails. */
TIDE_EXTERN bool tide_tls_has_buffered_input(const tide_tls_t *t);

/* tide_tls_alpn: the application protocol the handshake agreed on (not
 * NUL-terminated: *len bytes), or NULL (*len = 0) if none. Valid while t
 * lives. len may not be NULL. */
TIDE_EXTERN const char *tide_tls_alpn(const tide_tls_t *t, size_t *len);

/* tide_tls_version: the protocol version in use, as OpenSSL names it
 * ("TLSv1.3"), or "unknown" before the handshake. Static storage. */
TIDE_EXTERN const char *tide_tls_version(const tide_tls_t *t);

/* tide_tls_verify_result: OpenSSL's verdict on the peer's certificate
 * (X509_V_OK, 0, if it verified or was not verified; X509_V_ERR_* such as
 * 10, "certificate has expired", otherwise). */
TIDE_EXTERN long tide_tls_verify_result(const tide_tls_t *t);

/* tide_tls_error_reason: why t failed with -EKEYREJECTED or -EPROTO, as
 * OpenSSL words it ("certificate verify failed: hostname mismatch",
 * "tlsv1 alert unknown ca"), or NULL if it has not failed so. Static
 * storage. For logs; never parse it. */
TIDE_EXTERN const char *tide_tls_error_reason(const tide_tls_t *t);

/* tide_tls_ssl: t's SSL object, to read what tide does not wrap (the
 * peer's certificate, the cipher). Do not free it, and do not do I/O with
 * it: t's buffers and state would no longer agree. */
TIDE_EXTERN struct ssl_st *tide_tls_ssl(tide_tls_t *t);

/* ------------------------------------------------------------------------
 * Session resumption (clients)
 *
 * A client that connects again to the same server can resume the session
 * of an earlier connection: a shorter handshake (no certificate sent or
 * verified again). Take the session from the earlier stream with
 * tide_tls_session_get after some data came back (TLS 1.3 servers send
 * their tickets after the handshake: the client receives them with its
 * first read), give it to the new stream with tide_tls_set_session before
 * its handshake, and ask tide_tls_session_reused after. Servers need
 * nothing: the config's session cache and tickets serve them.
 * ------------------------------------------------------------------------ */

/* tide_tls_session_get: a new reference to t's session, if it can be
 * resumed. Returns 0. Errors: -EINVAL (NULL argument), -ENOENT (no
 * resumable session yet: before the handshake, or before the server's
 * ticket was read). Free it with tide_tls_session_free. */
TIDE_EXTERN int tide_tls_session_get(tide_tls_t *t, tide_tls_session_t **out);

/* tide_tls_set_session: offer s for resumption at t's handshake (t a
 * client whose handshake has not started). t takes its own reference: s
 * stays the caller's to free. Returns 0. Errors: -EINVAL (NULL argument,
 * a server, a handshake already started, a session OpenSSL refuses). */
TIDE_EXTERN int tide_tls_set_session(tide_tls_t *t, tide_tls_session_t *s);

/* tide_tls_session_free: release the caller's reference. NULL: no-op. */
TIDE_EXTERN void tide_tls_session_free(tide_tls_session_t *s);

/* tide_tls_session_reused: true if t's handshake resumed a session. */
TIDE_EXTERN bool tide_tls_session_reused(const tide_tls_t *t);

#ifdef __cplusplus
}
#endif
#endif
