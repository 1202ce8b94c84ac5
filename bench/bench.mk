# Benchmarks: a raw-epoll load generator, the anchor echo servers tide's
# echo daemon is compared with, an LD_PRELOAD allocation counter, and
# microbenchmarks of tide's runtime.  Included from the top-level
# Makefile.am.  Nothing here is built by `make`:
#
#   make bench        build all of it and tide-echod, then run the whole
#                     comparison and the microbenchmarks (bench/run.sh),
#                     which write bench/RESULTS.md in the source tree
#                     (about 6 minutes on two CPUs, plus the build)
#   make bench-build  only build
#   make bench-run    only run, with what is built
#
# BENCH_* variables (see bench/run.sh) pass through: make bench BENCH_ROUNDS=1.
# The load generator and the anchors are plain C on libc, libevent and
# libuv; only micro links tide.

BENCH_CFLAGS = $(AM_CFLAGS)

EXTRA_PROGRAMS += bench/loadgen
bench_loadgen_SOURCES = bench/loadgen.c
bench_loadgen_CFLAGS = $(BENCH_CFLAGS)
# --tls: the generator speaks TLS itself, on plain OpenSSL (never tide's).
if HAVE_OPENSSL
bench_loadgen_CPPFLAGS = $(AM_CPPFLAGS) -DLOADGEN_TLS
bench_loadgen_LDADD = $(OPENSSL_LIBS)
endif

EXTRA_PROGRAMS += bench/servers/epoll_echo
bench_servers_epoll_echo_SOURCES = bench/servers/epoll_echo.c
bench_servers_epoll_echo_CFLAGS = $(BENCH_CFLAGS)

# bufferevent and evconnlistener live in libevent_core: no libevent_extra.
EXTRA_PROGRAMS += bench/servers/libevent_echo
bench_servers_libevent_echo_SOURCES = bench/servers/libevent_echo.c
bench_servers_libevent_echo_CFLAGS = $(BENCH_CFLAGS) $(LIBEVENT_CFLAGS)
bench_servers_libevent_echo_LDADD = $(LIBEVENT_LIBS)

EXTRA_PROGRAMS += bench/servers/bufferevent_echo
bench_servers_bufferevent_echo_SOURCES = bench/servers/bufferevent_echo.c
bench_servers_bufferevent_echo_CFLAGS = $(BENCH_CFLAGS) $(LIBEVENT_CFLAGS)
bench_servers_bufferevent_echo_LDADD = $(LIBEVENT_LIBS)

BENCH_BUILT = bench/loadgen$(EXEEXT) bench/servers/epoll_echo$(EXEEXT) \
	bench/servers/libevent_echo$(EXEEXT) bench/servers/bufferevent_echo$(EXEEXT) \
	bench/malloc_count.so

# The TLS anchor: libevent's bufferevent_openssl (bench/tls.sh).
EXTRA_PROGRAMS += bench/servers/bufferevent_openssl_echo
bench_servers_bufferevent_openssl_echo_SOURCES = \
	bench/servers/bufferevent_openssl_echo.c
bench_servers_bufferevent_openssl_echo_CFLAGS = $(BENCH_CFLAGS) \
	$(LIBEVENT_CFLAGS) $(LIBEVENT_OPENSSL_CFLAGS)
bench_servers_bufferevent_openssl_echo_LDADD = $(LIBEVENT_OPENSSL_LIBS) \
	$(LIBEVENT_LIBS) $(OPENSSL_LIBS)
if HAVE_LIBEVENT_OPENSSL
BENCH_BUILT += bench/servers/bufferevent_openssl_echo$(EXEEXT)
endif

if HAVE_LIBUV
EXTRA_PROGRAMS += bench/servers/libuv_echo
bench_servers_libuv_echo_SOURCES = bench/servers/libuv_echo.c
bench_servers_libuv_echo_CFLAGS = $(BENCH_CFLAGS) $(LIBUV_CFLAGS)
bench_servers_libuv_echo_LDADD = $(LIBUV_LIBS)
BENCH_BUILT += bench/servers/libuv_echo$(EXEEXT)
endif

# The LD_PRELOAD allocation counter: a plain shared object, built without
# libtool so that it exists whether or not tide itself is built shared
# (with configure --disable-shared, libtool refuses to build shared modules).
bench/malloc_count.so: bench/malloc_count.c
	$(AM_V_CC)$(MKDIR_P) bench && $(CC) $(BENCH_CFLAGS) $(CFLAGS) -fPIC -shared \
		-o $@ $<

# The microbenchmarks link the uninstalled library without libtool's
# wrapper script (-no-install), so that valgrind runs the program itself.
EXTRA_PROGRAMS += bench/micro
bench_micro_SOURCES = bench/micro.c
bench_micro_CFLAGS = $(BENCH_CFLAGS)
# libevent_pthreads: the event-active-thread hand-off (evthread_use_pthreads)
bench_micro_LDADD = src/libtide.la $(LIBEVENT_LIBS) $(LIBEVENT_PTHREADS_LIBS) -lpthread
bench_micro_LDFLAGS = -no-install
BENCH_BUILT += bench/micro$(EXEEXT) samples/tide-echod$(EXEEXT)

# One loop shared by evhttp callbacks and tide's echo (bench/share.sh).
EXTRA_PROGRAMS += bench/servers/shared_loop
bench_servers_shared_loop_SOURCES = bench/servers/shared_loop.c
bench_servers_shared_loop_CFLAGS = $(BENCH_CFLAGS) $(LIBEVENT_EXTRA_CFLAGS)
bench_servers_shared_loop_LDADD = src/libtide.la $(LIBEVENT_EXTRA_LIBS) \
	$(LIBEVENT_LIBS)
bench_servers_shared_loop_LDFLAGS = -no-install
BENCH_BUILT += bench/servers/shared_loop$(EXEEXT)

bench-build: $(BENCH_BUILT)

bench: bench-build
	$(SHELL) $(srcdir)/bench/run.sh $(builddir)

bench-run:
	$(SHELL) $(srcdir)/bench/run.sh $(builddir)

.PHONY: bench bench-build bench-run

CLEANFILES += $(EXTRA_PROGRAMS) bench/malloc_count.so
dist_noinst_SCRIPTS += bench/run.sh bench/build.sh bench/share.sh \
	bench/http-pair.sh bench/tls.sh
EXTRA_DIST += bench/report.awk bench/CONFIGURE-NEEDS.txt bench/README.md bench/malloc_count.c \
	bench/RESULTS.md bench/results.svg bench/results-raw.tsv \
	bench/results-callgrind.tsv bench/results-micro.tsv bench/analysis.md
