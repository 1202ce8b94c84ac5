# tls: TLS over any tide stream, with OpenSSL 3 (configure's --with-openssl).
# Above libevent in the order of layers: it uses core and io only, and
# nothing below it uses it. Built into libtide when configure found
# OpenSSL; its tests skip (77) otherwise.
if HAVE_OPENSSL
src_libtide_internal_la_SOURCES += src/tls/tls.c
tideinclude_HEADERS += include/tide/tls.h
else
EXTRA_DIST += src/tls/tls.c include/tide/tls.h
endif

if HAVE_CHECK
check_PROGRAMS += t/check_tls
TESTS += t/check_tls
endif
t_check_tls_SOURCES = t/check_tls.c t/testutil.h t/slowdown.h t/tls_certs.h
t_check_tls_CFLAGS = $(TEST_CFLAGS) -DT_TOP_SRCDIR=\"$(abs_top_srcdir)\"
t_check_tls_LDADD = $(TEST_LIBS)
EXTRA_DIST += t/tls_certs.sh

# Against openssl s_server / s_client and Python's ssl module; t/tls_peer
# is tide's side.
check_PROGRAMS += t/tls_peer
t_tls_peer_SOURCES = t/tls_peer.c
t_tls_peer_LDADD = src/libtide.la $(LIBEVENT_LIBS)
TESTS += t/check_tls_peers.sh
EXTRA_DIST += t/check_tls_peers.sh t/tls_peer.py
