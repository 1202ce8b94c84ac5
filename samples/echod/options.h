/*
 * samples/echod/options.h: the echo daemon's command line.
 *
 * Parsing is a pure function of argv: it never prints, never exits, never
 * allocates and never touches the network (host names are checked for
 * form only; they are looked up when the daemon binds). So it can be
 * tested and fuzzed on its own: see echod_options_parse.
 */
#ifndef ECHOD_OPTIONS_H
#define ECHOD_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* How many listening sockets one daemon takes (--listen, --listen-fd and
 * systemd's together). */
#define ECHOD_MAX_LISTEN 64
#define ECHOD_MAX_THREADS 256
#define ECHOD_DEFAULT_LISTEN "127.0.0.1:7000"
#define ECHOD_DEFAULT_BUFFER 16384u
#define ECHOD_MIN_BUFFER 64u
#define ECHOD_MAX_BUFFER (16u * 1024 * 1024)
#define ECHOD_DEFAULT_DRAIN_USEC (5u * 1000000u)
#define ECHOD_DEFAULT_EVICT_USEC 1000000u

enum { ECHOD_QUIET = 0, ECHOD_NORMAL = 1, ECHOD_VERBOSE = 2 };

typedef struct echod_options {
    /* --listen values, pointing into argv (or the default string). Each
     * is "A.B.C.D:PORT", "[V6]:PORT", "NAME:PORT" or "unix:PATH". */
    const char *listen[ECHOD_MAX_LISTEN];
    size_t nlisten;
    bool listen_default; /* listen[0] is the default: no --listen
                                  * and no --listen-fd was given */
    /* --listen-fd values: descriptors of listening sockets handed down by
     * whoever started the daemon, each given once. nlisten + nlisten_fd
     * is at most ECHOD_MAX_LISTEN. */
    int listen_fd[ECHOD_MAX_LISTEN];
    size_t nlisten_fd;
    unsigned threads;            /* --threads, 1..ECHOD_MAX_THREADS */
    uint64_t max_conns;          /* --max-conns; 0: no limit */
    bool max_conns_wait;         /* --max-conns-wait: wait, don't refuse */
    uint64_t max_conns_per_addr; /* --max-conns-per-addr; 0: no limit */
    uint64_t evict_idle_usec;    /* --evict-idle; 0: never evict */
    uint64_t max_buffer_memory;  /* --max-buffer-memory, bytes; 0: none */
    uint64_t idle_timeout_usec;  /* --idle-timeout; 0: none */
    size_t buffer_size;          /* --buffer-size */
    uint64_t drain_timeout_usec; /* --drain-timeout */
    const char *log_file;        /* --log-file, into argv; NULL: stderr */
    /* --tls-cert, --tls-key, --tls-ca, into argv (NULL: not given). The
     * parser checks only that cert and key come together and that
     * --tls-ca comes with them; the files are read at start-up. */
    const char *tls_cert, *tls_key, *tls_ca;
    int verbosity; /* ECHOD_QUIET, _NORMAL, _VERBOSE */
    bool help;     /* --help was given: print usage, exit 0 */
    bool version;  /* --version was given */
} echod_options_t;

/*
 * echod_options_parse: fill *o from argv[1, argc) (argv[0] is skipped).
 * Accepts "--name VALUE", "--name=VALUE" and the short forms listed by
 * echod_usage. Returns 0, or -1 with a one-line message (no trailing
 * newline, no program name) in err[0, errsize). Never prints or exits.
 * argv must stay valid as long as *o is used (listen points into it).
 */
int echod_options_parse(echod_options_t *o, int argc, char *const argv[],
                        char *err, size_t errsize);

/*
 * echod_check_addr: is text a --listen address echod can use? Returns 0,
 * or -1 with a message in err. Pure (no name lookup).
 */
int echod_check_addr(const char *text, char *err, size_t errsize);

/*
 * echod_parse_uint: a decimal unsigned integer, no sign, no spaces, at
 * most max, into *out. Returns whether s is one. Pure.
 */
bool echod_parse_uint(const char *s, uint64_t max, uint64_t *out);

/* echod_usage: the --help text. */
void echod_usage(FILE *out, const char *prog);

#endif
