/*
 * samples/echod/options.c: the echo daemon's command line parser.
 *
 * Hand-written rather than getopt_long: getopt keeps state in globals
 * (optind, optarg) and prints its own messages, and this parser must be a
 * pure function that a fuzzer can call a million times.
 */
#include "options.h"

#include <ctype.h>
#include <stdarg.h>
#include <string.h>

#include <tide.h>

static int fail(char *err, size_t errsize, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errsize, const char *fmt, ...) {
    if (err != NULL && errsize > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errsize, fmt, ap);
        va_end(ap);
    }
    return -1;
}

bool echod_parse_uint(const char *s, uint64_t max, uint64_t *out) {
    uint64_t v = 0;
    if (*s == '\0')
        return false;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9')
            return false;
        unsigned d = (unsigned)(*s - '0');
        if (v > (max - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* Seconds as "S", "S.FFF" (up to microseconds) or ".5", at most max_sec,
 * into microseconds. */
static bool parse_secs(const char *s, uint64_t max_sec, uint64_t *usec) {
    uint64_t sec = 0, frac = 0;
    unsigned nint = 0, nfrac = 0;
    for (; *s >= '0' && *s <= '9'; s++, nint++) {
        sec = sec * 10 + (unsigned)(*s - '0');
        if (sec > max_sec)
            return false;
    }
    if (*s == '.') {
        for (s++; *s >= '0' && *s <= '9'; s++, nfrac++) {
            if (nfrac == 6)
                return false; /* finer than a microsecond */
            frac = frac * 10 + (unsigned)(*s - '0');
        }
        if (nfrac == 0)
            return false;
    }
    if (*s != '\0' || nint + nfrac == 0)
        return false;
    for (unsigned i = nfrac; i < 6; i++)
        frac *= 10;
    *usec = sec * UINT64_C(1000000) + frac;
    return true;
}

/* A size in bytes with an optional k/K or m/M suffix (powers of 1024). */
static bool parse_size(const char *s, uint64_t *out) {
    char digits[24];
    size_t n = strlen(s);
    uint64_t mult = 1, v;
    if (n > 0 && (s[n - 1] == 'k' || s[n - 1] == 'K'))
        mult = 1024, n--;
    else if (n > 0 && (s[n - 1] == 'm' || s[n - 1] == 'M'))
        mult = 1024 * 1024, n--;
    if (n == 0 || n >= sizeof digits)
        return false;
    memcpy(digits, s, n);
    digits[n] = '\0';
    if (!echod_parse_uint(digits, UINT64_MAX / mult, &v))
        return false;
    *out = v * mult;
    return true;
}

static bool valid_port(const char *p) {
    uint64_t v;
    return strlen(p) <= 5 && echod_parse_uint(p, 65535, &v);
}

int echod_check_addr(const char *text, char *err, size_t errsize) {
    tide_addr_t a;
    const char *const forms = "HOST:PORT, [IPV6]:PORT or unix:PATH";
    int rc = tide_addr_parse(&a, text);
    if (rc == 0)
        return 0;
    if (rc == -ENAMETOOLONG)
        return fail(err, errsize, "unix socket path too long in '%s'", text);
    if (strncmp(text, "unix:", 5) == 0)
        return fail(err, errsize, "empty unix socket path in '%s'", text);
    if (*text == '\0')
        return fail(err, errsize, "empty address (expected %s)", forms);

    const char *colon;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL)
            return fail(err, errsize, "missing ']' in '%s'", text);
        if (close[1] != ':')
            return fail(err, errsize, "missing port in '%s' (expected %s)",
                        text, forms);
        if (!valid_port(close + 2))
            return fail(err, errsize, "bad port '%s' in '%s' (0 to 65535)",
                        close + 2, text);
        return fail(err, errsize, "bad IPv6 address in '%s'", text);
    }
    colon = strrchr(text, ':');
    if (colon == NULL)
        return fail(err, errsize, "missing port in '%s' (expected %s)", text,
                    forms);
    if (memchr(text, ':', (size_t)(colon - text)) != NULL)
        return fail(err, errsize,
                    "IPv6 addresses take brackets: '[ADDR]:PORT', not '%s'",
                    text);
    if (!valid_port(colon + 1))
        return fail(err, errsize, "bad port '%s' in '%s' (0 to 65535)",
                    colon + 1, text);
    if (colon == text)
        return fail(err, errsize,
                    "missing host in '%s' (use 0.0.0.0:PORT "
                    "for every interface)",
                    text);
    /* Not numeric: a host name, looked up when the daemon binds. A name
     * made only of digits and dots is a mistyped IPv4 address. */
    bool dotted = true;
    for (const char *p = text; p < colon; p++) {
        unsigned char ch = (unsigned char)*p;
        if (!isalnum(ch) && ch != '-' && ch != '.' && ch != '_')
            return fail(err, errsize, "bad host name in '%s'", text);
        if (!isdigit(ch) && ch != '.')
            dotted = false;
    }
    if (dotted)
        return fail(err, errsize, "bad IPv4 address in '%s'", text);
    if (colon - text > 253)
        return fail(err, errsize, "host name too long in '%s'", text);
    return 0;
}

/* The options that take a value, their short forms, and what they set. */
enum {
    OPT_LISTEN,
    OPT_LISTEN_FD,
    OPT_THREADS,
    OPT_MAX_CONNS,
    OPT_MAX_WAIT,
    OPT_PER_ADDR,
    OPT_EVICT,
    OPT_IDLE,
    OPT_BUFFER,
    OPT_MAX_BUFMEM,
    OPT_DRAIN,
    OPT_LOG_FILE,
    OPT_TLS_CERT,
    OPT_TLS_KEY,
    OPT_TLS_CA,
    OPT_QUIET,
    OPT_VERBOSE,
    OPT_HELP,
    OPT_VERSION
};

static const struct {
    const char *name;
    char short_name;
    bool has_arg;
} optlist[] = {
    [OPT_LISTEN] = {"listen", 'l', true},
    [OPT_LISTEN_FD] = {"listen-fd", '\0', true},
    [OPT_THREADS] = {"threads", 't', true},
    [OPT_MAX_CONNS] = {"max-conns", 'm', true},
    [OPT_MAX_WAIT] = {"max-conns-wait", 'w', false},
    [OPT_PER_ADDR] = {"max-conns-per-addr", 'a', true},
    [OPT_EVICT] = {"evict-idle", 'e', true},
    [OPT_IDLE] = {"idle-timeout", 'i', true},
    [OPT_BUFFER] = {"buffer-size", 'b', true},
    [OPT_MAX_BUFMEM] = {"max-buffer-memory", 'M', true},
    [OPT_DRAIN] = {"drain-timeout", 'd', true},
    [OPT_LOG_FILE] = {"log-file", '\0', true}, /* no short form */
    [OPT_TLS_CERT] = {"tls-cert", '\0', true},
    [OPT_TLS_KEY] = {"tls-key", '\0', true},
    [OPT_TLS_CA] = {"tls-ca", '\0', true},
    [OPT_QUIET] = {"quiet", 'q', false},
    [OPT_VERBOSE] = {"verbose", 'v', false},
    [OPT_HELP] = {"help", 'h', false},
    [OPT_VERSION] = {"version", 'V', false},
};

#define NOPTS (sizeof optlist / sizeof optlist[0])

static int apply(echod_options_t *o, int opt, const char *shown,
                 const char *val, char *err, size_t errsize) {
    uint64_t v;
    switch (opt) {
    case OPT_LISTEN:
        if (o->nlisten + o->nlisten_fd == ECHOD_MAX_LISTEN)
            return fail(err, errsize, "too many --listen options (at most %d)",
                        ECHOD_MAX_LISTEN);
        if (echod_check_addr(val, err, errsize) < 0)
            return -1;
        o->listen[o->nlisten++] = val;
        return 0;
    case OPT_LISTEN_FD:
        if (o->nlisten + o->nlisten_fd == ECHOD_MAX_LISTEN)
            return fail(err, errsize,
                        "too many --listen and --listen-fd options (at most "
                        "%d)",
                        ECHOD_MAX_LISTEN);
        if (!echod_parse_uint(val, INT32_MAX, &v))
            return fail(err, errsize,
                        "%s wants a descriptor number (0 or more), not '%s'",
                        shown, val);
        for (size_t k = 0; k < o->nlisten_fd; k++)
            if (o->listen_fd[k] == (int)v)
                return fail(err, errsize, "%s %d given twice", shown, (int)v);
        o->listen_fd[o->nlisten_fd++] = (int)v;
        return 0;
    case OPT_THREADS:
        if (!echod_parse_uint(val, ECHOD_MAX_THREADS, &v) || v == 0)
            return fail(err, errsize, "%s wants 1 to %d, not '%s'", shown,
                        ECHOD_MAX_THREADS, val);
        o->threads = (unsigned)v;
        return 0;
    case OPT_MAX_CONNS:
    case OPT_PER_ADDR:
        if (!echod_parse_uint(val, UINT64_C(100000000), &v))
            return fail(err, errsize,
                        "%s wants a count (0 for no limit), not '%s'", shown,
                        val);
        if (opt == OPT_MAX_CONNS)
            o->max_conns = v;
        else
            o->max_conns_per_addr = v;
        return 0;
    case OPT_EVICT:
    case OPT_IDLE:
    case OPT_DRAIN:
        if (!parse_secs(val, 365u * 86400u, &v))
            return fail(err, errsize,
                        "%s wants seconds (e.g. 30 or 0.5), not '%s'", shown,
                        val);
        if (opt == OPT_IDLE)
            o->idle_timeout_usec = v;
        else if (opt == OPT_EVICT)
            o->evict_idle_usec = v;
        else
            o->drain_timeout_usec = v;
        return 0;
    case OPT_BUFFER:
        if (!parse_size(val, &v) || v < ECHOD_MIN_BUFFER ||
            v > ECHOD_MAX_BUFFER)
            return fail(err, errsize,
                        "%s wants %u bytes to 16M (suffix k or M allowed), "
                        "not '%s'",
                        shown, ECHOD_MIN_BUFFER, val);
        o->buffer_size = (size_t)v;
        return 0;
    case OPT_MAX_BUFMEM:
        /* at most 1 TiB: the count of buffers must fit a semaphore */
        if (!parse_size(val, &v) || v > (UINT64_C(1) << 40))
            return fail(err, errsize,
                        "%s wants bytes (suffix k or M allowed; 0 for no "
                        "limit), not '%s'",
                        shown, val);
        o->max_buffer_memory = v;
        return 0;
    case OPT_LOG_FILE:
        if (*val == '\0')
            return fail(err, errsize, "%s wants a file name, not ''", shown);
        o->log_file = val;
        return 0;
    case OPT_TLS_CERT:
    case OPT_TLS_KEY:
    case OPT_TLS_CA:
        if (*val == '\0')
            return fail(err, errsize, "%s wants a file name, not ''", shown);
        if (opt == OPT_TLS_CERT)
            o->tls_cert = val;
        else if (opt == OPT_TLS_KEY)
            o->tls_key = val;
        else
            o->tls_ca = val;
        return 0;
    case OPT_MAX_WAIT:
        o->max_conns_wait = true;
        return 0;
    case OPT_QUIET:
        o->verbosity = ECHOD_QUIET;
        return 0;
    case OPT_VERBOSE:
        o->verbosity = ECHOD_VERBOSE;
        return 0;
    case OPT_HELP:
        o->help = true;
        return 0;
    case OPT_VERSION:
        o->version = true;
        return 0;
    default:
        return fail(err, errsize, "internal error: option %d", opt);
    }
}

int echod_options_parse(echod_options_t *o, int argc, char *const argv[],
                        char *err, size_t errsize) {
    memset(o, 0, sizeof *o);
    o->threads = 1;
    o->buffer_size = ECHOD_DEFAULT_BUFFER;
    o->drain_timeout_usec = ECHOD_DEFAULT_DRAIN_USEC;
    o->evict_idle_usec = ECHOD_DEFAULT_EVICT_USEC;
    o->verbosity = ECHOD_NORMAL;
    if (err != NULL && errsize > 0)
        err[0] = '\0';

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *val = NULL;
        char shown[40];
        int opt = -1;

        if (arg == NULL)
            break;
        if (arg[0] == '-' && arg[1] == '-' && arg[2] != '\0') {
            const char *name = arg + 2;
            const char *eq = strchr(name, '=');
            size_t len = eq != NULL ? (size_t)(eq - name) : strlen(name);
            for (size_t k = 0; k < NOPTS; k++)
                if (strlen(optlist[k].name) == len &&
                    memcmp(optlist[k].name, name, len) == 0)
                    opt = (int)k;
            if (opt < 0)
                return fail(err, errsize, "unknown option '%.*s'",
                            (int)(len + 2 > 64 ? 64 : len + 2), arg);
            snprintf(shown, sizeof shown, "--%s", optlist[opt].name);
            if (eq != NULL) {
                if (!optlist[opt].has_arg)
                    return fail(err, errsize, "%s takes no value", shown);
                val = eq + 1;
            }
        } else if (arg[0] == '-' && arg[1] != '\0' && arg[1] != '-') {
            /* One short option per argument; its value is the rest of
             * the argument ("-t4") or the next one ("-t 4"). */
            for (size_t k = 0; k < NOPTS; k++)
                if (optlist[k].short_name == arg[1])
                    opt = (int)k;
            if (opt < 0)
                return fail(err, errsize, "unknown option '-%c'",
                            isprint((unsigned char)arg[1]) ? arg[1] : '?');
            snprintf(shown, sizeof shown, "-%c", arg[1]);
            if (arg[2] != '\0') {
                if (!optlist[opt].has_arg)
                    return fail(err, errsize, "%s takes no value", shown);
                val = arg + 2;
            }
        } else if (strcmp(arg, "--") == 0) {
            if (i + 1 < argc)
                return fail(err, errsize, "unexpected argument '%.64s'",
                            argv[i + 1] != NULL ? argv[i + 1] : "");
            break;
        } else {
            return fail(err, errsize, "unexpected argument '%.64s'", arg);
        }

        if (optlist[opt].has_arg && val == NULL) {
            if (i + 1 >= argc || argv[i + 1] == NULL)
                return fail(err, errsize, "%s needs a value", shown);
            val = argv[++i];
        }
        if (apply(o, opt, shown, val, err, errsize) < 0)
            return -1;
    }

    /* Checked once every option is known (they may come in any order). */
    if (o->max_buffer_memory != 0 && o->max_buffer_memory < o->buffer_size)
        return fail(err, errsize,
                    "--max-buffer-memory %llu is less than one buffer "
                    "(--buffer-size %zu)",
                    (unsigned long long)o->max_buffer_memory, o->buffer_size);
    if ((o->tls_cert == NULL) != (o->tls_key == NULL))
        return fail(err, errsize, "%s needs %s too",
                    o->tls_cert != NULL ? "--tls-cert" : "--tls-key",
                    o->tls_cert != NULL ? "--tls-key" : "--tls-cert");
    if (o->tls_ca != NULL && o->tls_cert == NULL)
        return fail(err, errsize,
                    "--tls-ca needs --tls-cert and --tls-key (the server's "
                    "own certificate)");
    if (o->nlisten == 0 && o->nlisten_fd == 0) {
        o->listen[o->nlisten++] = ECHOD_DEFAULT_LISTEN;
        o->listen_default = true;
    }
    return 0;
}

void echod_usage(FILE *out, const char *prog) {
    fprintf(
        out,
        "Usage: %s [OPTION]...\n"
        "An echo server: sends back every byte it receives, on every "
        "connection.\n"
        "\n"
        "  -l, --listen ADDR        listen on ADDR; repeat for more listeners\n"
        "                           (default " ECHOD_DEFAULT_LISTEN
        "). ADDR is\n"
        "                           HOST:PORT (IPv4 or a name), [IPV6]:PORT, "
        "or\n"
        "                           unix:PATH (unix:@NAME: abstract socket).\n"
        "                           Port 0 picks a free port.\n"
        "      --listen-fd N        accept on descriptor N, a listening TCP or "
        "unix\n"
        "                           socket handed down by the parent; repeat "
        "for\n"
        "                           more. Sockets from systemd (LISTEN_FDS) "
        "are\n"
        "                           taken too; either replaces the default "
        "address\n"
        "                           unless --listen is given as well\n"
        "  -t, --threads N          N threads, each with its own event loop "
        "and its\n"
        "                           own SO_REUSEPORT socket per TCP address (a "
        "unix\n"
        "                           socket is served by the first thread, a "
        "socket\n"
        "                           handed down by all of them); default 1\n"
        "  -m, --max-conns N        at most N open connections (default 0: no\n"
        "                           limit). At the limit, a newcomer evicts "
        "the\n"
        "                           connection of its thread idle the longest "
        "(see\n"
        "                           --evict-idle); if none is, it is closed at "
        "once\n"
        "  -e, --evict-idle SECS    evict only a connection idle at least "
        "SECS\n"
        "                           (default 1; 0: never evict, close "
        "newcomers)\n"
        "  -w, --max-conns-wait     at the limit, accept nothing until a "
        "connection\n"
        "                           closes (newcomers wait in the listen "
        "backlog)\n"
        "                           instead of evicting or closing\n"
        "  -a, --max-conns-per-addr N  at most N open connections from one "
        "client\n"
        "                           address; more are closed at once (default "
        "0:\n"
        "                           no limit; unix sockets are not counted)\n"
        "  -i, --idle-timeout SECS  close a connection after SECS without "
        "progress\n"
        "                           either way (fractions allowed; default 0: "
        "never)\n"
        "  -b, --buffer-size BYTES  bytes read at a time per connection "
        "(suffix k, M;\n"
        "                           default %u). Buffers are lent from a "
        "per-thread\n"
        "                           pool while a message is echoed: an idle\n"
        "                           connection holds none\n"
        "  -M, --max-buffer-memory BYTES  at most BYTES of buffers (suffix k, "
        "M;\n"
        "                           default 0: no limit). At the limit, "
        "connections\n"
        "                           with data to read wait until a buffer is "
        "free\n"
        "  -d, --drain-timeout SECS on SIGINT or SIGTERM, stop accepting, "
        "close idle\n"
        "                           connections and give the others SECS to "
        "finish\n"
        "                           before closing them (default %u; a second "
        "signal\n"
        "                           ends it early)\n"
        "      --log-file PATH      log to PATH (appended to; reopened on "
        "SIGHUP)\n"
        "                           instead of standard error\n"
        "      --tls-cert FILE      serve TLS (1.2 or later) on every "
        "listener, with\n"
        "                           the certificate chain of FILE (PEM); "
        "needs\n"
        "      --tls-key FILE       its private key (PEM, unencrypted). "
        "Both are read\n"
        "                           once, at start-up: a bad file stops the "
        "daemon\n"
        "                           before it listens. The handshake must end "
        "within\n"
        "                           --idle-timeout (10 s without one)\n"
        "      --tls-ca FILE        require a client certificate signed by a "
        "CA of\n"
        "                           FILE (PEM); clients without one are "
        "refused\n"
        "  -q, --quiet              print only the listening lines and errors\n"
        "  -v, --verbose            also log every connection\n"
        "  -h, --help               print this help and exit\n"
        "  -V, --version            print the version of tide and exit\n"
        "\n"
        "On start, one line per listener goes to standard output, even with "
        "--quiet,\n"
        "so a script can find the port it got:\n"
        "  echod: listening on 127.0.0.1:7000\n"
        "SIGUSR1 logs counters (connections open, total, refused (those over\n"
        "--max-conns-per-addr apart) and evicted, bytes in and out, log lines\n"
        "dropped, accept backoffs, reads paused for --max-buffer-memory), even "
        "with\n"
        "--quiet.\n"
        "The log never slows the daemon: a line that finds its buffer full (a "
        "reader\n"
        "that does not keep up) is dropped and counted.\n"
        "\n"
        "Signals: INT, TERM stop (a drain bounded by --drain-timeout; a second "
        "one\n"
        "closes at once); QUIT stops with a drain bounded by no time; HUP "
        "reopens\n"
        "--log-file; USR1 logs the counters above; USR2 is logged and "
        "ignored.\n"
        "\n"
        "Exit status: 0 after a signal-initiated stop, 1 if a listener (a\n"
        "descriptor handed down that is not a listening socket, say), "
        "--log-file\n"
        "or the --tls-* files could not be set up (or tide was built without\n"
        "OpenSSL), 2 for a bad command line.\n",
        prog, ECHOD_DEFAULT_BUFFER,
        (unsigned)(ECHOD_DEFAULT_DRAIN_USEC / 1000000u));
}
