/*
 * loadgen: a closed-loop echo load generator on raw epoll.
 *
 * It opens N connections to an echo server on the loopback interface, keeps
 * D messages of S bytes in flight on each, checks every byte that comes back
 * and measures each message's round trip.  It depends on nothing but libc
 * and the kernel, so that it costs the same whatever server it is pointed at.
 *
 * Byte k of connection c's stream is pattern[(base(c) + k) % PATLEN]: the
 * pattern is pseudo-random, PATLEN is prime (so message boundaries drift
 * through it), and base(c) differs per connection, so bytes that come back
 * reordered, duplicated, dropped or from another connection are caught.  The
 * pattern is stored with its first CHUNK bytes repeated after its end, so
 * any run of up to CHUNK bytes is contiguous and can be written or compared
 * straight from it: nothing is copied and nothing is allocated per message.
 *
 * Round trips go into a log-linear histogram (64 linear sub-buckets per power
 * of two, so every value is kept to within 1.6%).
 *
 * With --server-pid the generator also samples the server at the exact
 * boundaries of the measured window (after warmup): its CPU time, its peak
 * RSS, and, on request, it sends it SIGUSR2 (for malloc_count.so) and tells a
 * `perf stat --control` instance to enable and disable its counters.
 *
 * With --tls (built when configure found OpenSSL) every connection is a TLS
 * client on plain OpenSSL over the non-blocking socket (no certificate is
 * verified: the generator measures, it does not authenticate): the
 * handshakes are done before the run starts, and the pattern goes through
 * SSL_write and comes back through SSL_read.  It is OpenSSL's code, not
 * tide's, so it costs the same whatever server it loads.
 *
 * Exit status: 0 on success, 1 on any verification or transfer error, 2 when
 * a connection could not be established, 3 when the hard time limit expired,
 * 64 on bad usage.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#ifdef LOADGEN_TLS
#include <openssl/err.h>
#include <openssl/ssl.h>
#endif

enum {
	PATLEN = 65521,       /* prime */
	CHUNK = 65536,        /* longest contiguous run of the pattern */
	RXBUF = 256 * 1024,   /* one read() takes at most this much */
	MAXEV = 1024,         /* events per epoll_wait */
	MAX_CONNECTING = 256, /* connects in progress at once */
};

/* ---------------------------------------------------------------- clock */

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* This process's own CPU time: tells whether the generator, not the
 * server, was the bottleneck. */
static uint64_t self_cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------ histogram */

enum {
	SUB_BITS = 6,
	SUB = 1 << SUB_BITS,
	NBUCKETS = (64 - SUB_BITS + 1) * SUB,
};

static uint64_t hist[NBUCKETS];
static uint64_t hist_count;

static unsigned hist_index(uint64_t v)
{
	if (v < SUB)
		return (unsigned)v;
	unsigned e = 63u - (unsigned)__builtin_clzll(v); /* e >= SUB_BITS */
	unsigned sub = (unsigned)(v >> (e - SUB_BITS)) & (SUB - 1);
	return (e - SUB_BITS + 1) * SUB + sub;
}

/* The middle of bucket idx: what a value in it is reported as. */
static double hist_value(unsigned idx)
{
	if (idx < SUB)
		return idx;
	unsigned e = idx / SUB + SUB_BITS - 1;
	unsigned sub = idx % SUB;
	double width = (double)(1ull << (e - SUB_BITS));
	return (SUB + sub) * width + width / 2;
}

static void hist_add(uint64_t v)
{
	hist[hist_index(v)]++;
	hist_count++;
}

/* The q-quantile, in the histogram's unit (nanoseconds); 0 when empty. */
static double hist_quantile(double q)
{
	if (hist_count == 0)
		return 0;
	double want = q * (double)hist_count;
	uint64_t rank = (uint64_t)want;
	if ((double)rank < want || rank < 1)
		rank++; /* the smallest rank covering a fraction q */
	uint64_t seen = 0;
	for (unsigned i = 0; i < NBUCKETS; i++) {
		seen += hist[i];
		if (seen >= rank)
			return hist_value(i);
	}
	return hist_value(NBUCKETS - 1);
}

/* -------------------------------------------------------------- options */

static struct {
	const char *host;
	int port;
	const char *unix_path;
	int conns;
	size_t size;
	int depth;
	double duration;
	double warmup;
	double connect_timeout;
	uint64_t messages;
	bool idle;
	pid_t server_pid;
	bool usr2;
	const char *perf_ctl;
	const char *perf_ack;
	bool quiet;
	bool tls;
} opt = {
    .host = "127.0.0.1",
    .port = -1,
    .conns = 1,
    .size = 64,
    .depth = 1,
    .duration = 2.0,
    .warmup = 0.5,
    .connect_timeout = 15.0,
};

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: loadgen --port PORT [options]\n"
	    "  --host ADDR          loopback address to connect to (127.0.0.1)\n"
	    "  --port PORT          TCP port of the echo server\n"
	    "  --unix PATH          connect to a Unix stream socket instead\n"
	    "  --conns N            connections (1)\n"
	    "  --size BYTES         message size (64)\n"
	    "  --depth D            messages in flight per connection (1)\n"
	    "  --duration SECS      measured window (2)\n"
	    "  --warmup SECS        load before the window, not measured (0.5)\n"
	    "  --connect-timeout S  time allowed to open all connections (15)\n"
	    "  --messages N         send exactly N messages on each connection and\n"
	    "                       end when all came back (--duration is then a\n"
	    "                       limit: reaching it is an error); for counting\n"
	    "                       a server's instructions per message\n"
	    "  --idle               open N connections, send nothing, hold them\n"
	    "                       for --duration (for memory measurement)\n"
	    "  --server-pid PID     sample the server at the window's edges:\n"
	    "                       CPU time, VmHWM; with --idle, VmRSS before\n"
	    "                       and after all connections were accepted\n"
	    "  --usr2               send SIGUSR2 to the server at both edges\n"
	    "  --perf-ctl CTL[,ACK] write enable/disable to a perf --control fifo\n"
	    "  --tls                speak TLS (OpenSSL; nothing is verified)\n"
	    "  --quiet              print only the machine-readable line\n");
}

static double parse_double(const char *name, const char *s, double min)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= min) || v > 1e6) {
		fprintf(stderr, "loadgen: bad value for --%s: %s\n", name, s);
		exit(64);
	}
	return v;
}

static long parse_long(const char *name, const char *s, long min, long max)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max) {
		fprintf(stderr, "loadgen: bad value for --%s: %s\n", name, s);
		exit(64);
	}
	return v;
}

static void parse_args(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"host", required_argument, NULL, 'h'},
	    {"port", required_argument, NULL, 'p'},
	    {"unix", required_argument, NULL, 'u'},
	    {"conns", required_argument, NULL, 'c'},
	    {"size", required_argument, NULL, 's'},
	    {"depth", required_argument, NULL, 'd'},
	    {"duration", required_argument, NULL, 't'},
	    {"warmup", required_argument, NULL, 'w'},
	    {"connect-timeout", required_argument, NULL, 'T'},
	    {"messages", required_argument, NULL, 'm'},
	    {"idle", no_argument, NULL, 'i'},
	    {"server-pid", required_argument, NULL, 'P'},
	    {"usr2", no_argument, NULL, 'U'},
	    {"perf-ctl", required_argument, NULL, 'C'},
	    {"quiet", no_argument, NULL, 'q'},
	    {"tls", no_argument, NULL, 'S'},
	    {"help", no_argument, NULL, 'H'},
	    {NULL, 0, NULL, 0},
	};
	int ch;
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'h':
			opt.host = optarg;
			break;
		case 'p':
			opt.port = (int)parse_long("port", optarg, 1, 65535);
			break;
		case 'u':
			opt.unix_path = optarg;
			break;
		case 'c':
			opt.conns =
			    (int)parse_long("conns", optarg, 1, 1000000);
			break;
		case 's':
			opt.size =
			    (size_t)parse_long("size", optarg, 1, 64L << 20);
			break;
		case 'd':
			opt.depth = (int)parse_long("depth", optarg, 1, 4096);
			break;
		case 't':
			opt.duration = parse_double("duration", optarg, 0.01);
			break;
		case 'w':
			opt.warmup = parse_double("warmup", optarg, 0);
			break;
		case 'T':
			opt.connect_timeout =
			    parse_double("connect-timeout", optarg, 0.1);
			break;
		case 'm':
			opt.messages = (uint64_t)parse_long("messages", optarg,
							    1, 1L << 40);
			break;
		case 'i':
			opt.idle = true;
			break;
		case 'P':
			opt.server_pid =
			    (pid_t)parse_long("server-pid", optarg, 1, INT_MAX);
			break;
		case 'U':
			opt.usr2 = true;
			break;
		case 'C': {
			char *comma = strchr(optarg, ',');
			if (comma) {
				*comma = '\0';
				opt.perf_ack = comma + 1;
			}
			opt.perf_ctl = optarg;
			break;
		}
		case 'q':
			opt.quiet = true;
			break;
		case 'S':
#ifdef LOADGEN_TLS
			opt.tls = true;
			break;
#else
			fprintf(stderr,
				"loadgen: built without OpenSSL: no --tls\n");
			exit(64);
#endif
		case 'H':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(64);
		}
	}
	if (optind != argc || (opt.port < 0 && !opt.unix_path)) {
		usage(stderr);
		exit(64);
	}
	if (opt.messages && opt.idle) {
		fprintf(stderr,
			"loadgen: --messages and --idle exclude each other\n");
		exit(64);
	}
	if (opt.usr2 && !opt.server_pid) {
		fprintf(stderr, "loadgen: --usr2 needs --server-pid\n");
		exit(64);
	}
}

/* -------------------------------------------------------------- address */

static struct sockaddr_storage addr;
static socklen_t addrlen;

/* Only loopback addresses are accepted: this tool must never load a host
 * other than the one it runs on. */
static void resolve_address(void)
{
	memset(&addr, 0, sizeof addr);
	if (opt.unix_path) {
		struct sockaddr_un *sun = (struct sockaddr_un *)&addr;
		if (strlen(opt.unix_path) >= sizeof sun->sun_path) {
			fprintf(stderr, "loadgen: unix socket path too long\n");
			exit(64);
		}
		sun->sun_family = AF_UNIX;
		strcpy(sun->sun_path, opt.unix_path);
		addrlen = sizeof *sun;
		return;
	}
	struct sockaddr_in *sin = (struct sockaddr_in *)&addr;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&addr;
	if (inet_pton(AF_INET, opt.host, &sin->sin_addr) == 1) {
		if ((ntohl(sin->sin_addr.s_addr) >> 24) != 127) {
			fprintf(stderr,
				"loadgen: %s is not a loopback address\n",
				opt.host);
			exit(64);
		}
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)opt.port);
		addrlen = sizeof *sin;
	} else if (inet_pton(AF_INET6, opt.host, &sin6->sin6_addr) == 1) {
		if (!IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr)) {
			fprintf(stderr,
				"loadgen: %s is not a loopback address\n",
				opt.host);
			exit(64);
		}
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)opt.port);
		addrlen = sizeof *sin6;
	} else {
		fprintf(
		    stderr,
		    "loadgen: --host takes a numeric loopback address, not %s\n",
		    opt.host);
		exit(64);
	}
}

/* -------------------------------------------------------------- pattern */

static unsigned char pattern[PATLEN + CHUNK];

static void make_pattern(void)
{
	uint64_t x = 0x9e3779b97f4a7c15u; /* xorshift64*, fixed seed */
	for (size_t i = 0; i < PATLEN; i++) {
		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		pattern[i] = (unsigned char)((x * 0x2545f4914f6cdd1du) >> 56);
	}
	/* CHUNK > PATLEN: extend byte by byte, so the copy may wrap. */
	for (size_t i = 0; i < CHUNK; i++)
		pattern[PATLEN + i] = pattern[i];
}

/* ---------------------------------------------------------- connections */

enum conn_state { C_NEW, C_CONNECTING, C_HANDSHAKE, C_OPEN, C_DEAD };

struct conn {
	int fd;
	enum conn_state state;
	bool out_armed;   /* EPOLLOUT is in the interest set */
	uint32_t base;    /* pattern offset of stream byte 0 */
	uint64_t tx;      /* bytes written */
	uint64_t rx;      /* bytes read back and verified */
	uint64_t stamped; /* messages whose send time is recorded */
	uint64_t *sent;   /* depth send times, indexed by msg % depth */
#ifdef LOADGEN_TLS
	SSL *ssl; /* --tls */
#endif
};

static struct conn *conns;
static int epfd;
static unsigned char *rxbuf;

static uint64_t errors;
static bool measuring;
static uint64_t win_msgs, win_bytes;
static uint64_t total_msgs;
static int conns_done; /* connections that got --messages back */
static int n_open;
static bool reported_mismatch;

static void conn_fail(struct conn *c, const char *what, int err)
{
	if (c->state == C_DEAD)
		return;
	if (errors < 10)
		fprintf(stderr, "loadgen: conn %d: %s%s%s\n", (int)(c - conns),
			what, err ? ": " : "", err ? strerror(err) : "");
	errors++;
	close(c->fd);
	c->fd = -1;
	if (c->state == C_OPEN)
		n_open--;
	c->state = C_DEAD;
}

static void set_interest(struct conn *c, uint32_t ev)
{
	struct epoll_event e = {.events = ev, .data.ptr = c};
	if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &e) < 0) {
		perror("loadgen: epoll_ctl");
		exit(1);
	}
}

#ifdef LOADGEN_TLS
static SSL_CTX *tls_ctx;

/* OpenSSL's answer as a read or write would give it: -1 with errno EAGAIN
 * when it waits for the socket, EPROTO (its error queue printed once) for
 * a TLS failure, 0 at the server's close_notify. */
static ssize_t tls_result(struct conn *c, int r)
{
	int e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		errno = EAGAIN;
		return -1;
	}
	if (e == SSL_ERROR_ZERO_RETURN)
		return 0;
	if (e == SSL_ERROR_SYSCALL && errno != 0)
		return -1;
	if (errors < 3)
		ERR_print_errors_fp(stderr);
	ERR_clear_error();
	errno = EPROTO;
	return -1;
}
#endif

static ssize_t io_write(struct conn *c, const void *buf, size_t len)
{
#ifdef LOADGEN_TLS
	if (opt.tls) {
		int r = SSL_write(c->ssl, buf, (int)len);
		return r > 0 ? r : tls_result(c, r);
	}
#endif
	return write(c->fd, buf, len);
}

static ssize_t io_read(struct conn *c, void *buf, size_t len)
{
#ifdef LOADGEN_TLS
	if (opt.tls) {
		int r = SSL_read(c->ssl, buf, (int)len);
		return r > 0 ? r : tls_result(c, r);
	}
#endif
	return read(c->fd, buf, len);
}

/* Write what the pipeline allows: up to depth messages beyond the last one
 * that came back.  Arms EPOLLOUT only while the socket is full. */
static void pump(struct conn *c, uint64_t now)
{
	uint64_t limit = c->rx / opt.size + (uint64_t)opt.depth;
	if (opt.messages && limit > opt.messages)
		limit = opt.messages;
	limit *= opt.size;
	while (c->tx < limit) {
		size_t pos = (size_t)((c->base + c->tx) % PATLEN);
		uint64_t want = limit - c->tx;
		size_t len = want < CHUNK ? (size_t)want : CHUNK;
		ssize_t n = io_write(c, pattern + pos, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				if (!c->out_armed) {
					set_interest(c, EPOLLIN | EPOLLOUT);
					c->out_armed = true;
				}
				return;
			}
			conn_fail(c, "write", errno);
			return;
		}
		c->tx += (uint64_t)n;
		/* A message's clock starts when its first byte is written. */
		while (c->stamped * opt.size < c->tx) {
			c->sent[c->stamped % (uint64_t)opt.depth] = now;
			c->stamped++;
		}
	}
	if (c->out_armed) {
		set_interest(c, EPOLLIN);
		c->out_armed = false;
	}
}

/* Read once (level-triggered: whatever is left is reported again), verify,
 * and account for the messages that completed.  Returns whether it read
 * something. */
static bool read_once(struct conn *c, uint64_t now)
{
	ssize_t n = io_read(c, rxbuf, RXBUF);
	if (n < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			conn_fail(c, "read", errno);
		return false;
	}
	if (n == 0) {
		conn_fail(c, "server closed the connection", 0);
		return false;
	}
	if (c->rx + (uint64_t)n > c->tx) {
		conn_fail(c, "server sent more bytes than it was sent", 0);
		return false;
	}
	for (size_t off = 0; off < (size_t)n;) {
		size_t pos = (size_t)((c->base + c->rx + off) % PATLEN);
		size_t len = (size_t)n - off < CHUNK ? (size_t)n - off : CHUNK;
		if (memcmp(rxbuf + off, pattern + pos, len) != 0) {
			if (!reported_mismatch) {
				size_t i = 0;
				while (rxbuf[off + i] == pattern[pos + i])
					i++;
				fprintf(
				    stderr,
				    "loadgen: conn %d: byte %llu of the stream is 0x%02x, expected 0x%02x\n",
				    (int)(c - conns),
				    (unsigned long long)(c->rx + off + i),
				    rxbuf[off + i], pattern[pos + i]);
				reported_mismatch = true;
			}
			conn_fail(c, "echoed data does not match what was sent",
				  0);
			return false;
		}
		off += len;
	}
	uint64_t done_before = c->rx / opt.size;
	c->rx += (uint64_t)n;
	uint64_t done_after = c->rx / opt.size;
	for (uint64_t m = done_before; m < done_after; m++) {
		if (measuring)
			hist_add(now - c->sent[m % (uint64_t)opt.depth]);
	}
	total_msgs += done_after - done_before;
	if (opt.messages && done_after == opt.messages &&
	    done_before < done_after)
		conns_done++;
	if (measuring) {
		win_msgs += done_after - done_before;
		win_bytes += (uint64_t)n;
	}
	return true;
}

/* TLS: OpenSSL may hold decrypted bytes the socket no longer signals (it
 * reads a record at a time), so read until it has none. */
static void on_readable(struct conn *c, uint64_t now)
{
	while (read_once(c, now) && opt.tls && c->state == C_OPEN) {
	}
}

#ifdef LOADGEN_TLS
static void tls_begin(struct conn *c);
#endif

/* Start a non-blocking connect.  Returns false if it must be retried later
 * (a Unix socket whose backlog is full answers EAGAIN, not EINPROGRESS). */
static bool start_connect(struct conn *c)
{
	int fd = socket(addr.ss_family,
			SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		perror("loadgen: socket");
		if (errno == EMFILE || errno == ENFILE)
			fprintf(
			    stderr,
			    "loadgen: raise the descriptor limit (ulimit -n)\n");
		exit(2);
	}
	if (addr.ss_family != AF_UNIX) {
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	}
	c->fd = fd;
	uint32_t ev = EPOLLIN;
	if (connect(fd, (struct sockaddr *)&addr, addrlen) == 0) {
		c->state = C_OPEN;
		n_open++;
	} else if (errno == EINPROGRESS) {
		c->state = C_CONNECTING;
		ev = EPOLLOUT;
	} else if (errno == EAGAIN && addr.ss_family == AF_UNIX) {
		close(fd);
		c->fd = -1;
		return false;
	} else {
		fprintf(stderr, "loadgen: connect to server: %s\n",
			strerror(errno));
		exit(2);
	}
	struct epoll_event e = {.events = ev, .data.ptr = c};
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &e) < 0) {
		perror("loadgen: epoll_ctl");
		exit(1);
	}
#ifdef LOADGEN_TLS
	if (opt.tls && c->state == C_OPEN) {
		n_open--; /* open once the handshake is done */
		tls_begin(c);
	}
#endif
	return true;
}

#ifdef LOADGEN_TLS
/* Drive the handshake: the connection is open once it is done. */
static void tls_step(struct conn *c)
{
	int r = SSL_connect(c->ssl);
	if (r == 1) {
		c->state = C_OPEN;
		n_open++;
		set_interest(c, EPOLLIN);
		return;
	}
	int e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		set_interest(c, e == SSL_ERROR_WANT_WRITE ? EPOLLIN | EPOLLOUT
							  : EPOLLIN);
		return;
	}
	fprintf(stderr, "loadgen: TLS handshake failed\n");
	ERR_print_errors_fp(stderr);
	exit(2);
}

static void tls_begin(struct conn *c)
{
	c->ssl = SSL_new(tls_ctx);
	if (!c->ssl || !SSL_set_fd(c->ssl, c->fd)) {
		fprintf(stderr, "loadgen: SSL_new failed\n");
		exit(1);
	}
	c->state = C_HANDSHAKE;
	tls_step(c);
}
#endif

static void finish_connect(struct conn *c)
{
	int err = 0;
	socklen_t len = sizeof err;
	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err) {
		fprintf(stderr, "loadgen: connect to server: %s\n",
			strerror(err));
		exit(2);
	}
#ifdef LOADGEN_TLS
	if (opt.tls) {
		tls_begin(c);
		return;
	}
#endif
	c->state = C_OPEN;
	n_open++;
	set_interest(c, EPOLLIN);
}

/* Open every connection, at most MAX_CONNECTING at a time, within the
 * connect timeout. */
static void connect_all(void)
{
	uint64_t deadline = now_ns() + (uint64_t)(opt.connect_timeout * 1e9);
	int next = 0, connecting = 0;
	struct epoll_event evs[MAXEV];
	while (n_open < opt.conns) {
		bool stalled = false;
		while (next < opt.conns && connecting < MAX_CONNECTING) {
			if (!start_connect(&conns[next])) {
				stalled = true;
				break;
			}
			if (conns[next].state == C_CONNECTING)
				connecting++;
			next++;
		}
		if (n_open == opt.conns)
			break;
		uint64_t now = now_ns();
		if (now >= deadline) {
			fprintf(
			    stderr,
			    "loadgen: only %d of %d connections opened in %.1f s\n",
			    n_open, opt.conns, opt.connect_timeout);
			exit(2);
		}
		int timeout =
		    stalled ? 1 : (int)((deadline - now) / 1000000 + 1);
		int n = epoll_wait(epfd, evs, MAXEV, timeout);
		if (n < 0 && errno != EINTR) {
			perror("loadgen: epoll_wait");
			exit(1);
		}
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			if (c->state == C_CONNECTING) {
				finish_connect(c);
				connecting--;
#ifdef LOADGEN_TLS
			} else if (c->state == C_HANDSHAKE) {
				tls_step(c);
#endif
			} else if (c->state == C_OPEN) {
				/* Nothing has been sent yet: any data or EOF is wrong. */
				on_readable(c, now);
				if (c->state == C_DEAD) {
					fprintf(
					    stderr,
					    "loadgen: connection lost while connecting the others\n");
					exit(2);
				}
			}
		}
	}
}

/* ------------------------------------------------------- server probing */

/* CPU time of every thread of the server, in nanoseconds: the first field of
 * /proc/PID/task/TID/schedstat, falling back to utime+stime in clock ticks. */
static int64_t server_cpu_ns(void)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/task", (int)opt.server_pid);
	DIR *d = opendir(path);
	int64_t sum = 0;
	bool ok = d != NULL;
	for (struct dirent *de; ok && (de = readdir(d)) != NULL;) {
		if (de->d_name[0] == '.')
			continue;
		char p[400];
		snprintf(p, sizeof p, "%s/%s/schedstat", path, de->d_name);
		FILE *f = fopen(p, "r");
		unsigned long long ns;
		if (f && fscanf(f, "%llu", &ns) == 1)
			sum += (int64_t)ns;
		else
			ok = false;
		if (f)
			fclose(f);
	}
	if (d)
		closedir(d);
	if (ok)
		return sum;

	snprintf(path, sizeof path, "/proc/%d/stat", (int)opt.server_pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	char buf[1024];
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')'); /* the command name may hold spaces */
	unsigned long long ut, st;
	if (!p ||
	    sscanf(p + 2,
		   "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
		   &st) != 2)
		return -1;
	return (int64_t)((ut + st) *
			 (1000000000.0 / (double)sysconf(_SC_CLK_TCK)));
}

/* A field of /proc/PID/status in kB, or -1. */
static long server_status_kb(const char *field)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/status", (int)opt.server_pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	long v = -1;
	size_t flen = strlen(field);
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, field, flen) == 0 && line[flen] == ':') {
			v = strtol(line + flen + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return v;
}

static int server_fd_count(void)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/fd", (int)opt.server_pid);
	DIR *d = opendir(path);
	if (!d)
		return -1;
	int n = 0;
	for (struct dirent *de; (de = readdir(d)) != NULL;)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static int perf_ctl_fd = -1, perf_ack_fd = -1;

static void perf_open(void)
{
	/* Blocks until perf has opened its end; the alarm bounds the wait. */
	perf_ctl_fd = open(opt.perf_ctl, O_WRONLY | O_CLOEXEC);
	if (perf_ctl_fd < 0) {
		fprintf(stderr, "loadgen: %s: %s\n", opt.perf_ctl,
			strerror(errno));
		exit(1);
	}
	if (opt.perf_ack) {
		perf_ack_fd = open(opt.perf_ack, O_RDONLY | O_CLOEXEC);
		if (perf_ack_fd < 0) {
			fprintf(stderr, "loadgen: %s: %s\n", opt.perf_ack,
				strerror(errno));
			exit(1);
		}
	}
}

static void perf_command(const char *cmd)
{
	if (perf_ctl_fd < 0)
		return;
	if (write(perf_ctl_fd, cmd, strlen(cmd)) < 0) {
		fprintf(stderr, "loadgen: perf control: %s\n", strerror(errno));
		return;
	}
	if (perf_ack_fd >= 0) {
		struct pollfd p = {.fd = perf_ack_fd, .events = POLLIN};
		char ack[16];
		if (poll(&p, 1, 2000) != 1 ||
		    read(perf_ack_fd, ack, sizeof ack) <= 0)
			fprintf(stderr,
				"loadgen: perf did not acknowledge '%.*s'\n",
				(int)strcspn(cmd, "\n"), cmd);
	}
}

static void signal_server(void)
{
	if (opt.usr2 && kill(opt.server_pid, SIGUSR2) < 0)
		fprintf(stderr, "loadgen: kill(SIGUSR2): %s\n",
			strerror(errno));
}

/* ------------------------------------------------------------------ main */

static void on_alarm(int sig)
{
	(void)sig;
	static const char msg[] =
	    "loadgen: hard time limit reached, giving up\n";
	ssize_t r = write(2, msg, sizeof msg - 1);
	(void)r;
	_exit(3);
}

static void raise_fd_limit(void)
{
	struct rlimit rl;
	rlim_t need = (rlim_t)opt.conns + 64;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < need) {
		rl.rlim_cur = need <= rl.rlim_max ? need : rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int main(int argc, char **argv)
{
	parse_args(argc, argv);
	resolve_address();
	make_pattern();
	raise_fd_limit();
	signal(SIGPIPE, SIG_IGN);

	/* Everything is bounded: connecting, the run and a margin. */
	struct sigaction sa = {.sa_handler = on_alarm};
	sigaction(SIGALRM, &sa, NULL);
	alarm((unsigned)(opt.connect_timeout + opt.warmup + opt.duration) + 16);

	conns = calloc((size_t)opt.conns, sizeof *conns);
	uint64_t *sent =
	    calloc((size_t)opt.conns * (size_t)opt.depth, sizeof *sent);
	rxbuf = malloc(RXBUF);
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (!conns || !sent || !rxbuf || epfd < 0) {
		perror("loadgen: setup");
		return 1;
	}
	for (int i = 0; i < opt.conns; i++) {
		conns[i].fd = -1;
		conns[i].base =
		    (uint32_t)(((uint64_t)i * 2654435761u + 12345u) % PATLEN);
		conns[i].sent = sent + (size_t)i * (size_t)opt.depth;
	}
	if (opt.perf_ctl)
		perf_open();
#ifdef LOADGEN_TLS
	if (opt.tls) {
		tls_ctx = SSL_CTX_new(TLS_client_method());
		if (!tls_ctx) {
			fprintf(stderr, "loadgen: SSL_CTX_new failed\n");
			return 1;
		}
		SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_NONE, NULL);
		SSL_CTX_set_mode(tls_ctx,
				 SSL_MODE_ENABLE_PARTIAL_WRITE |
				     SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	}
#endif

	long rss_before = -1, rss_after = -1;
	int fds_before = -1;
	if (opt.server_pid) {
		if (kill(opt.server_pid, 0) < 0) {
			fprintf(stderr, "loadgen: no process %d\n",
				(int)opt.server_pid);
			return 64;
		}
		rss_before = server_status_kb("VmRSS");
		fds_before = server_fd_count();
	}

	uint64_t t_connect = now_ns();
	connect_all();
	uint64_t t_connected = now_ns();

	int fds_seen = -1;
	if (opt.idle && opt.server_pid) {
		/* A connection is complete for us once it sits in the server's
		 * accept queue; wait until the server has accepted them all
		 * (its descriptor count says so) before reading its RSS. */
		uint64_t give_up = now_ns() + 10000000000u;
		while ((fds_seen = server_fd_count()) >= 0 &&
		       fds_seen < fds_before + opt.conns && now_ns() < give_up)
			usleep(10000);
		if (fds_seen < fds_before + opt.conns)
			fprintf(
			    stderr,
			    "loadgen: the server holds %d descriptors, expected %d\n",
			    fds_seen, fds_before + opt.conns);
		usleep(100000); /* let it finish setting the last ones up */
		rss_after = server_status_kb("VmRSS");
	}

	/* Run: warmup, then the measured window. */
	uint64_t t0 = now_ns();
	uint64_t t_measure = t0 + (opt.idle ? 0 : (uint64_t)(opt.warmup * 1e9));
	uint64_t t_end = 0;
	uint64_t win_start = 0, win_end = 0;
	int64_t cpu_start = -1, cpu_end = -1;
	uint64_t self_start = 0, self_end = 0;
	struct epoll_event evs[MAXEV];

	if (!opt.idle)
		for (int i = 0; i < opt.conns; i++)
			pump(&conns[i], t0);

	for (;;) {
		uint64_t now = now_ns();
		if (!measuring && win_start == 0 && now >= t_measure) {
			perf_command("enable\n");
			signal_server();
			if (opt.server_pid)
				cpu_start = server_cpu_ns();
			self_start = self_cpu_ns();
			memset(hist, 0, sizeof hist);
			hist_count = 0;
			win_msgs = win_bytes = 0;
			measuring = true;
			now = win_start = now_ns();
			t_end = win_start + (uint64_t)(opt.duration * 1e9);
		}
		bool all_back = opt.messages && conns_done == opt.conns;
		if (measuring && (now >= t_end || all_back)) {
			if (opt.messages && !all_back) {
				fprintf(
				    stderr,
				    "loadgen: %d of %d connections got their %llu messages back in time\n",
				    conns_done, opt.conns,
				    (unsigned long long)opt.messages);
				errors++;
			}
			win_end = now;
			self_end = self_cpu_ns();
			measuring = false;
			if (opt.server_pid)
				cpu_end = server_cpu_ns();
			signal_server();
			perf_command("disable\n");
			break;
		}
		uint64_t next = measuring ? t_end : t_measure;
		int timeout = (int)((next - now + 999999) / 1000000);
		int n = epoll_wait(epfd, evs, MAXEV, timeout);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("loadgen: epoll_wait");
			return 1;
		}
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			if (c->state != C_OPEN)
				continue;
			now = now_ns();
			if (opt.idle) {
				/* The server must neither talk nor hang up: any byte
				 * (more than was sent) or EOF fails the connection. */
				on_readable(c, now);
				continue;
			}
			if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
				on_readable(c, now);
			if (c->state == C_OPEN)
				pump(c, now);
		}
	}

	long hwm = opt.server_pid ? server_status_kb("VmHWM") : -1;

	/* A connection that never got a whole message back was starved or
	 * stalled: an echo server must not do that, however slow it is. */
	if (!opt.idle) {
		int stalled = 0;
		for (int i = 0; i < opt.conns; i++)
			if (conns[i].state == C_OPEN && conns[i].rx < opt.size)
				stalled++;
		if (stalled) {
			fprintf(
			    stderr,
			    "loadgen: %d connections got no message back in %.1f s\n",
			    stalled, opt.warmup + opt.duration);
			errors += (uint64_t)stalled;
		}
	}

	/* Reset, not FIN: the generator would otherwise leave every port it
	 * used in TIME_WAIT, and back-to-back runs would run out of them. */
	for (int i = 0; i < opt.conns; i++) {
		if (conns[i].fd >= 0) {
			struct linger lg = {.l_onoff = 1, .l_linger = 0};
			setsockopt(conns[i].fd, SOL_SOCKET, SO_LINGER, &lg,
				   sizeof lg);
			close(conns[i].fd);
		}
	}

	double secs = (double)(win_end - win_start) / 1e9;
	double rate = secs > 0 ? (double)win_msgs / secs : 0;
	double mbps = secs > 0 ? (double)win_bytes / secs / 1e6 : 0;
	double p50 = hist_quantile(0.50) / 1e3;
	double p99 = hist_quantile(0.99) / 1e3;
	double p999 = hist_quantile(0.999) / 1e3;

	if (!opt.quiet) {
		if (opt.idle)
			printf(
			    "%d idle connections opened in %.3f s and held for %.2f s, %llu errors\n",
			    opt.conns, (double)(t_connected - t_connect) / 1e9,
			    secs, (unsigned long long)errors);
		else
			printf(
			    "%d conns x depth %d x %zu B: %.0f msgs/s, %.1f MB/s, "
			    "round trip p50 %.1f us p99 %.1f us p99.9 %.1f us, %llu errors\n",
			    opt.conns, opt.depth, opt.size, rate, mbps, p50,
			    p99, p999, (unsigned long long)errors);
	}
	printf(
	    "msgs=%llu msgs_per_s=%.0f mb_per_s=%.2f p50_us=%.1f p99_us=%.1f p999_us=%.1f "
	    "errors=%llu conns=%d size=%zu depth=%d secs=%.3f msgs_total=%llu connect_s=%.3f",
	    (unsigned long long)win_msgs, rate, mbps, p50, p99, p999,
	    (unsigned long long)errors, opt.conns, opt.size, opt.depth, secs,
	    (unsigned long long)total_msgs,
	    (double)(t_connected - t_connect) / 1e9);
#ifdef LOADGEN_TLS
	if (opt.tls && conns[0].ssl)
		printf(" tls=%s/%s", SSL_get_version(conns[0].ssl),
		       SSL_get_cipher_name(conns[0].ssl));
#endif
	printf(" loadgen_cpu_util=%.3f",
	       secs > 0 ? (double)(self_end - self_start) / 1e9 / secs : 0);
	if (opt.server_pid) {
		if (cpu_start >= 0 && cpu_end >= 0) {
			double cpu_us = (double)(cpu_end - cpu_start) / 1e3;
			printf(" server_cpu_us=%.0f server_cpu_util=%.3f",
			       cpu_us, secs > 0 ? cpu_us / 1e6 / secs : 0);
			if (win_msgs)
				printf(" cpu_us_per_msg=%.4f",
				       cpu_us / (double)win_msgs);
		}
		printf(" server_hwm_kb=%ld", hwm);
		if (opt.idle) {
			printf(
			    " server_rss_before_kb=%ld server_rss_after_kb=%ld server_fds=%d",
			    rss_before, rss_after, fds_seen);
			if (rss_before >= 0 && rss_after >= 0)
				printf(" rss_per_conn_b=%.0f",
				       (double)(rss_after - rss_before) *
					   1024.0 / opt.conns);
		}
	}
	printf("\n");
	fflush(stdout);
	return errors ? 1 : 0;
}
