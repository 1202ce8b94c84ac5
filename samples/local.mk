# samples: programs that show tide (samples/README.md says what each is).
EXTRA_DIST += samples/README.md
noinst_PROGRAMS += samples/hello
samples_hello_SOURCES = samples/hello.c
samples_hello_LDADD = src/libtide.la $(LIBEVENT_LIBS)

# The echo daemon. Installed as tide-echod; in the build tree it is
# samples/tide-echod (samples/echod/ holds its objects). The option parser
# is a file of its own so that a fuzzer can link it alone.
bin_PROGRAMS += samples/tide-echod
samples_tide_echod_SOURCES = samples/echod/echod.h samples/echod/main.c \
	samples/echod/lifecycle.c samples/echod/listen.c \
	samples/echod/activate.c samples/echod/conn.c samples/echod/limits.c \
	samples/echod/pool.c samples/echod/level.c samples/echod/stats.c \
	samples/echod/log.c samples/echod/options.c samples/echod/options.h \
	samples/echod/tls.c
# tls.c calls OpenSSL itself (the CA store of --tls-ca): OPENSSL_LIBS is
# empty when configure found no OpenSSL.
samples_tide_echod_LDADD = src/libtide.la $(LIBEVENT_LIBS) $(OPENSSL_LIBS) \
	-lpthread

# Its systemd units: a socket unit (systemd listens, the daemon takes the
# socket: LISTEN_FDS) and the service, whose ExecStart names the installed
# binary: @bindir@ is substituted here, at build time, because bindir is
# "${exec_prefix}/bin" until make expands it. Installed where configure
# found systemd's unit directory (--with-systemdsystemunitdir); make
# distcheck installs them under its own prefix instead, never into the
# system's directory (AM_DISTCHECK_CONFIGURE_FLAGS).
EXTRA_DIST += samples/echod/tide-echod.service.in \
	samples/echod/tide-echod.socket
CLEANFILES += samples/echod/tide-echod.service
samples/echod/tide-echod.service: $(srcdir)/samples/echod/tide-echod.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) samples/echod && \
	sed -e 's|@bindir[@]|$(bindir)|g' \
		$(srcdir)/samples/echod/tide-echod.service.in >$@.tmp && \
	mv $@.tmp $@
check_DATA = samples/echod/tide-echod.service
if HAVE_SYSTEMD_UNITS
systemdsystemunit_DATA = samples/echod/tide-echod.service \
	samples/echod/tide-echod.socket
AM_DISTCHECK_CONFIGURE_FLAGS = \
	--with-systemdsystemunitdir=$$dc_install_base/$(systemdsystemunitdir)
else
noinst_DATA = samples/echod/tide-echod.service
AM_DISTCHECK_CONFIGURE_FLAGS = --without-systemdsystemunitdir
endif
# The units pass systemd-analyze verify (skipped without it).
TESTS += t/check_units.sh
EXTRA_DIST += t/check_units.sh

# Its integration tests run the built daemon (through libtool's wrapper,
# which execs the real binary: signals reach the daemon itself).
if HAVE_CHECK
check_PROGRAMS += t/check_echod
TESTS += t/check_echod
endif
t_check_echod_SOURCES = t/check_echod.c t/slowdown.h
t_check_echod_CPPFLAGS = $(AM_CPPFLAGS) \
	-DECHOD_PATH=\"$(abs_top_builddir)/samples/tide-echod\" \
	-DEMBED_PATH=\"$(abs_top_builddir)/samples/embed/embed\"
t_check_echod_CFLAGS = $(TEST_CFLAGS)
t_check_echod_LDADD = $(CHECK_LIBS)

# A client for echo servers: round trips checked byte for byte, latency.
noinst_PROGRAMS += samples/echo-client/echo-client
samples_echo_client_echo_client_SOURCES = samples/echo-client/echo-client.c
samples_echo_client_echo_client_LDADD = src/libtide.la $(LIBEVENT_LIBS)

# tide_copy against a blocking read/write loop, throughput side by side.
noinst_PROGRAMS += samples/copy-bench/copy-bench
samples_copy_bench_copy_bench_SOURCES = samples/copy-bench/copy-bench.c
samples_copy_bench_copy_bench_LDADD = src/libtide.la $(LIBEVENT_LIBS) -lpthread

# An evhttp program that adds tide tasks to its own event_base.
noinst_PROGRAMS += samples/embed/embed
samples_embed_embed_SOURCES = samples/embed/embed.c
samples_embed_embed_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_EXTRA_CFLAGS)
samples_embed_embed_LDADD = src/libtide.la $(LIBEVENT_EXTRA_LIBS) \
	$(LIBEVENT_LIBS)

# The README's first task, compiled so that it stays true.
noinst_PROGRAMS += samples/first-echo
samples_first_echo_SOURCES = samples/first-echo.c
samples_first_echo_LDADD = src/libtide.la $(LIBEVENT_LIBS)

# The samples as a reader runs them (t/check_samples.sh): first-echo says
# where it listens and stops on a lasting accept error, embed answers
# GET /quit before it exits, and the README's first task is first-echo.c's
# text.
TESTS += t/check_samples.sh
EXTRA_DIST += t/check_samples.sh

# The README's quick start (which builds and runs tide-echod) on a freshly
# debootstrapped Debian 12, then .ci/run: run by hand, as root (it takes
# minutes), never by make check.
EXTRA_DIST += t/fresh-debian.sh

# An evhttp server whose handler is a tide task calling a TCP backend
# (tide_evhttp_*), and its callback twin (bufferevents), measured side by
# side by bench/http-backend.sh and tested by t/check_http_backend.sh.
noinst_PROGRAMS += samples/http-backend/http-backend \
	samples/http-backend/http-backend-cb
samples_http_backend_http_backend_SOURCES = samples/http-backend/http-backend.c
samples_http_backend_http_backend_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_EXTRA_CFLAGS)
samples_http_backend_http_backend_LDADD = src/libtide.la \
	$(LIBEVENT_EXTRA_LIBS) $(LIBEVENT_LIBS)
samples_http_backend_http_backend_cb_SOURCES = \
	samples/http-backend/http-backend-cb.c
samples_http_backend_http_backend_cb_CFLAGS = $(AM_CFLAGS) \
	$(LIBEVENT_EXTRA_CFLAGS)
samples_http_backend_http_backend_cb_LDADD = $(LIBEVENT_EXTRA_LIBS) \
	$(LIBEVENT_LIBS)
TESTS += t/check_http_backend.sh
EXTRA_DIST += t/check_http_backend.sh

# tide-echod serving TLS (--tls-cert), against clients on plain OpenSSL:
# built only when configure found OpenSSL (t/check_echod tests the flags'
# error without it).
if HAVE_OPENSSL
if HAVE_CHECK
check_PROGRAMS += t/check_echod_tls
TESTS += t/check_echod_tls
endif
endif
EXTRA_DIST += t/check_echod_tls.c
t_check_echod_tls_SOURCES = t/check_echod_tls.c t/slowdown.h t/tls_certs.h
t_check_echod_tls_CPPFLAGS = $(AM_CPPFLAGS) \
	-DECHOD_PATH=\"$(abs_top_builddir)/samples/tide-echod\" \
	-DT_TOP_SRCDIR=\"$(abs_top_srcdir)\"
t_check_echod_tls_CFLAGS = $(TEST_CFLAGS)
t_check_echod_tls_LDADD = $(CHECK_LIBS) $(OPENSSL_LIBS)
