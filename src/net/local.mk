# net: addresses, TCP and Unix listeners and streams, UDP and Unix
# datagrams, socket pairs, pipes, name lookups (evdns: libevent_extra,
# already in the library's LIBADD).
src_libtide_internal_la_SOURCES += \
	src/net/internal.h \
	src/net/sys.c \
	src/net/addr.c \
	src/net/listener.c \
	src/net/stream.c \
	src/net/tcp.c \
	src/net/dns.c \
	src/net/dgram.c \
	src/net/udp.c \
	src/net/unix.c \
	src/net/pipe.c \
	src/net/serve.c
tideinclude_HEADERS += include/tide/net.h

if HAVE_CHECK
check_PROGRAMS += t/check_net
TESTS += t/check_net
endif
t_check_net_SOURCES = t/check_net.c t/testutil.h t/slowdown.h
t_check_net_CFLAGS = $(TEST_CFLAGS)
t_check_net_LDADD = $(TEST_LIBS)
