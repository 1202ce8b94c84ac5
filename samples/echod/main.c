/*
 * samples/echod/main.c: tide-echod's main: the command line, the
 * addresses, the threads, the exit status. See echod.h for the parts.
 */
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "echod.h"

struct daemon D;

/* Numeric addresses are parsed; "name:port" is looked up (blocking, once,
 * at start-up) and its first address used. */
static int resolve(const char *text, tide_addr_t *out, char *err,
                   size_t errsize) {
    if (tide_addr_parse(out, text) == 0)
        return 0;
    const char *colon = strrchr(text, ':');
    char host[256];
    size_t hlen = colon != NULL ? (size_t)(colon - text) : 0;
    if (colon == NULL || hlen >= sizeof host) {
        snprintf(err, errsize, "bad address '%s'", text);
        return -1;
    }
    memcpy(host, text, hlen);
    host[hlen] = '\0';
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG;
    int g = getaddrinfo(host, colon + 1, &hints, &ai);
    if (g != 0 || ai == NULL) {
        snprintf(err, errsize, "cannot resolve '%.200s': %s", host,
                 g != 0 ? gai_strerror(g) : "no address");
        return -1;
    }
    int rc = tide_addr_from_sockaddr(out, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    if (rc < 0) {
        snprintf(err, errsize, "'%s': %s", text, tide_strerror(rc));
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    char err[256];
    const char *prog = "tide-echod";
    if (argc > 0 && argv[0] != NULL && *argv[0] != '\0') {
        const char *slash = strrchr(argv[0], '/');
        prog = slash != NULL ? slash + 1 : argv[0];
        if (strncmp(prog, "lt-", 3) == 0) /* libtool's in-tree name */
            prog += 3;
    }
    int status = 1;
    signals_t sig;
    bool sig_ready = false;

    if (echod_options_parse(&D.opt, argc, argv, err, sizeof err) < 0) {
        fprintf(stderr, "echod: %s\nTry '%s --help'.\n", err, prog);
        return 2;
    }
    if (D.opt.help) {
        echod_usage(stdout, prog);
        return 0;
    }
    if (D.opt.version) {
        printf("tide-echod (tide %s)\n", tide_version());
        return 0;
    }
    verbosity = D.opt.verbosity;
    tide_ignore_sigpipe(); /* sockets use MSG_NOSIGNAL; belt and braces */
    if (log_start(D.opt.log_file, err, sizeof err) < 0) {
        fprintf(stderr, "echod: %s\n", err);
        return 1;
    }
    if (activation_collect(err, sizeof err) < 0) {
        logmsg(ECHOD_QUIET, "%s", err);
        log_stop();
        return 1;
    }

    for (size_t i = 0; i < D.opt.nlisten; i++)
        if (resolve(D.opt.listen[i], &D.addr[i], err, sizeof err) < 0) {
            logmsg(ECHOD_QUIET, "%s", err);
            log_stop();
            return 1;
        }

    if (tls_setup(err, sizeof err) < 0) {
        logmsg(ECHOD_QUIET, "%s", err);
        log_stop();
        return 1;
    }

    unsigned n = D.opt.threads;
    D.workers = calloc(n, sizeof *D.workers);
    if (D.workers == NULL) {
        logmsg(ECHOD_QUIET, "out of memory");
        log_stop();
        return 1;
    }
    level_init(&D.finished);
    if (D.opt.max_conns != 0)
        tide_semaphore_init(&D.slots, (size_t)D.opt.max_conns);
    D.evict = D.opt.max_conns != 0 && D.opt.evict_idle_usec != 0 &&
              !D.opt.max_conns_wait;
    D.track_idle = D.opt.idle_timeout_usec != 0 || D.evict;
    if (limits_init() < 0) {
        logmsg(ECHOD_QUIET, "out of memory");
        free(D.workers);
        return 1;
    }
    pthread_mutex_init(&D.start_mu, NULL);
    pthread_cond_init(&D.start_cv, NULL);
    /* Each pool keeps up to 4 MiB (at least 16 buffers); with
     * --max-buffer-memory, at most a quarter of its thread's share, so
     * that idle buffers in pools hold little of the budget. */
    size_t keep = (4u << 20) / D.opt.buffer_size;
    keep = keep < 16 ? 16 : keep;
    tide_semaphore_t *budget = NULL;
    if (D.opt.max_buffer_memory != 0) {
        size_t nbuf = (size_t)(D.opt.max_buffer_memory /
                               pool_buffer_cost(D.opt.buffer_size));
        if (nbuf == 0)
            nbuf = 1; /* the options check: at least one buffer's size */
        tide_semaphore_init(&D.bufmem, nbuf);
        budget = &D.bufmem;
        if (keep > nbuf / (4 * (size_t)n))
            keep = nbuf / (4 * (size_t)n);
    }
    for (unsigned i = 0; i < n; i++) {
        worker_t *w = &D.workers[i];
        w->index = i;
        pool_init(&w->pool, D.opt.buffer_size, keep, budget,
                  budget != NULL ? &D.bufmem_waiting : NULL);
        level_init(&w->stop);
        tide_notify_init(&w->closed);
    }

    /* Worker 0 runs on this thread and owns the signals. */
    worker_t *w0 = &D.workers[0];
    int rc = worker_start(w0, err, sizeof err);
    if (rc < 0) {
        logmsg(ECHOD_QUIET, "%s", err);
        goto out;
    }
    size_t nsig = 0;
    /* USR2 means nothing here: a handler the process already had for it
     * (a preloaded profiler's or allocation counter's: bench/run.sh's
     * malloc_count.so) keeps running beside ours. */
    for (rc = 0; nsig < NSIGNALS; nsig++)
        if ((rc = tide_signal_init_flags(
                 &sig.s[nsig], w0->ex, signal_number[nsig],
                 nsig == SIGNAL_USR2 ? TIDE_SIGNAL_CHAIN : 0)) < 0)
            break;
    if (rc < 0) {
        logmsg(ECHOD_QUIET, "signals (%s): %s", signal_name[nsig],
               tide_strerror(rc));
        while (nsig > 0)
            tide_signal_free(&sig.s[--nsig]);
        goto out;
    }
    sig_ready = true;

    /* The other threads: they block the signals (so that the kernel
     * delivers them to this thread, whose loop libevent wakes). */
    if (n > 1) {
        sigset_t old;
        block_signals(&old);
        for (unsigned i = 1; i < n; i++) {
            worker_t *w = &D.workers[i];
            rc = pthread_create(&w->thread, NULL, worker_thread, w);
            if (rc != 0) {
                logmsg(ECHOD_QUIET, "cannot start thread %u: %s", i,
                       strerror(rc));
                start_report(w, -rc);
                continue;
            }
            w->thread_started = true;
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        pthread_mutex_lock(&D.start_mu);
        while (D.started < n - 1)
            pthread_cond_wait(&D.start_cv, &D.start_mu);
        pthread_mutex_unlock(&D.start_mu);
        rc = 0;
        for (unsigned i = 1; i < n; i++)
            if (D.workers[i].start_rc < 0)
                rc = D.workers[i].start_rc;
        if (rc < 0) {
            for (unsigned i = 1; i < n; i++)
                level_raise(&D.workers[i].stop, 2, 0);
            goto out;
        }
    }

    for (size_t i = 0; i < D.opt.nlisten; i++) {
        char name[TIDE_ADDR_STRLEN];
        if (tide_addr_format(&D.addr[i], name, sizeof name) < 0)
            snprintf(name, sizeof name, "%s", D.opt.listen[i]);
        printf("echod: listening on %s\n", name);
    }
    for (size_t k = 0; k < D.ninh; k++) {
        const inherited_t *in = &D.inh[k];
        char name[TIDE_ADDR_STRLEN];
        if (tide_addr_format(&in->addr, name, sizeof name) < 0)
            snprintf(name, sizeof name, "fd %d", in->fd);
        printf("echod: listening on %s\n", name);
        logmsg(ECHOD_NORMAL, "%s: fd %d from %s%s%s%s", name, in->fd,
               in->origin, in->name[0] != '\0' ? " (" : "", in->name,
               in->name[0] != '\0' ? ")" : "");
    }
    fflush(stdout);
    logmsg(ECHOD_NORMAL, "tide %s, %u thread%s, buffers of %zu bytes%s",
           tide_version(), n, n == 1 ? "" : "s", D.opt.buffer_size,
           tls_on() ? D.opt.tls_ca != NULL
                          ? ", TLS (client certificates required)"
                          : ", TLS"
                    : "");

    worker_run(w0, &sig);
    status = 0;

out:
    for (unsigned i = 1; i < n; i++)
        if (D.workers[i].thread_started)
            pthread_join(D.workers[i].thread, NULL);
    if (sig_ready) {
        for (size_t i = 0; i < NSIGNALS; i++)
            tide_signal_free(&sig.s[i]);
    }
    worker_finish(w0);
    tls_teardown(); /* every connection is gone */
    for (size_t i = 0; i < D.opt.nlisten; i++)
        if (D.unix_bound[i]) {
            const struct sockaddr_un *sun =
                (const struct sockaddr_un *)(const void *)&D.addr[i].ss;
            unlink(sun->sun_path);
        }
    if (status == 0)
        logmsg(ECHOD_NORMAL, "stopped");
    for (unsigned i = 0; i < n; i++) {
        tide_notify_free(&D.workers[i].stop.raised);
        tide_notify_free(&D.workers[i].closed);
    }
    tide_notify_free(&D.finished.raised);
    if (D.opt.max_conns != 0)
        tide_semaphore_free(&D.slots);
    if (D.opt.max_buffer_memory != 0)
        tide_semaphore_free(&D.bufmem);
    limits_free();
    free(D.workers);
    log_stop();
    return status;
}
