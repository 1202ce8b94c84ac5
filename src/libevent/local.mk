# libevent: the bridges to the libevent objects an application already has
# (bufferevents as streams, evconnlisteners as listeners, callbacks from
# futures). The top layer: it uses every layer before it.
src_libtide_internal_la_SOURCES += \
	src/libevent/bevstream.c \
	src/libevent/evhttp.c \
	src/libevent/evlistener.c \
	src/libevent/spawn.c
tideinclude_HEADERS += include/tide/libevent.h

if HAVE_CHECK
check_PROGRAMS += t/check_libevent
TESTS += t/check_libevent
endif
t_check_libevent_SOURCES = t/check_libevent.c t/testutil.h
t_check_libevent_CFLAGS = $(TEST_CFLAGS)
t_check_libevent_LDADD = $(TEST_LIBS)

# evhttp handlers as tasks (src/libevent/evhttp.c).
if HAVE_CHECK
check_PROGRAMS += t/check_evhttp
TESTS += t/check_evhttp
endif
t_check_evhttp_SOURCES = t/check_evhttp.c t/testutil.h
t_check_evhttp_CFLAGS = $(TEST_CFLAGS) $(LIBEVENT_EXTRA_CFLAGS)
t_check_evhttp_LDADD = $(TEST_LIBS)

# An application's OpenSSL bufferevent as a tide stream (skipped, exit 77,
# without libevent_openssl).
check_PROGRAMS += t/check_bev_openssl
TESTS += t/check_bev_openssl
t_check_bev_openssl_SOURCES = t/check_bev_openssl.c t/testutil.h
t_check_bev_openssl_CFLAGS = $(TEST_CFLAGS)
t_check_bev_openssl_LDADD = $(TEST_LIBS)
if HAVE_LIBEVENT_OPENSSL
t_check_bev_openssl_CPPFLAGS = $(AM_CPPFLAGS) -DHAVE_BEV_OPENSSL=1
t_check_bev_openssl_CFLAGS += $(LIBEVENT_OPENSSL_CFLAGS) $(OPENSSL_CFLAGS)
t_check_bev_openssl_LDADD += $(LIBEVENT_OPENSSL_LIBS) $(OPENSSL_LIBS)
endif
