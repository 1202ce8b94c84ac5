# Reliability: allocation failure, system-call fault injection, cancellation
# at every pending point, fuzz corpus replay (all in `make check`), and the
# targets that run the suite under valgrind (check-valgrind), the stress
# tests against the echo daemon (check-stress) and the long soak and fuzz
# runs (check-long). t/reliability.sh drives them for CI, including the
# ThreadSanitizer and libFuzzer builds.

# The fault-injection shim (t/fault/fault.c) is linked into the programs
# below with these wraps: every call of these functions from the test's
# objects and from the static convenience library goes through the shim.
# The installed library never sees them.
FAULT_WRAP_FLAGS = $(FAULT_WRAP_NOT_IOV) -Wl,--wrap=readv -Wl,--wrap=writev
FAULT_WRAP_NOT_IOV = -Wl,--wrap=read -Wl,--wrap=write \
	-Wl,--wrap=recv -Wl,--wrap=send \
	-Wl,--wrap=recvfrom -Wl,--wrap=sendto -Wl,--wrap=recvmsg \
	-Wl,--wrap=sendmsg -Wl,--wrap=accept4 -Wl,--wrap=connect \
	-Wl,--wrap=close -Wl,--wrap=tide__malloc -Wl,--wrap=tide__calloc \
	-Wl,--wrap=tide__realloc -Wl,--wrap=tide__free
FAULT_SOURCES = t/fault/fault.c t/fault/fault.h t/testutil.h t/slowdown.h

# check_fault_bev injects into libevent's own readv and writev (a
# bufferevent's I/O, in libevent's shared library) by exporting its own
# (t/fault/interpose.c): the same wraps but those two.
FAULT_BEV_WRAP_FLAGS = $(FAULT_WRAP_NOT_IOV) \
	-Wl,--export-dynamic-symbol=readv -Wl,--export-dynamic-symbol=writev

if HAVE_CHECK
check_PROGRAMS += t/check_alloc t/fault/check_fault t/fault/check_soak \
	t/check_cancel t/fault/check_fault_bev t/fault/check_soak_tls
TESTS += t/check_alloc t/fault/check_fault t/fault/check_soak t/check_cancel \
	t/fault/check_fault_bev t/fault/check_soak_tls
endif
t_check_alloc_SOURCES = t/check_alloc.c $(FAULT_SOURCES)
t_check_alloc_CFLAGS = $(TEST_CFLAGS)
t_check_alloc_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/t
t_check_alloc_LDFLAGS = $(FAULT_WRAP_FLAGS)
t_check_alloc_LDADD = $(TEST_LIBS)

t_fault_check_fault_SOURCES = t/fault/check_fault.c $(FAULT_SOURCES)
t_fault_check_fault_CFLAGS = $(TEST_CFLAGS)
t_fault_check_fault_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/t
t_fault_check_fault_LDFLAGS = $(FAULT_WRAP_FLAGS)
t_fault_check_fault_LDADD = $(TEST_LIBS)

t_fault_check_soak_SOURCES = t/fault/check_soak.c $(FAULT_SOURCES)
t_fault_check_soak_CFLAGS = $(TEST_CFLAGS)
t_fault_check_soak_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/t
t_fault_check_soak_LDFLAGS = $(FAULT_WRAP_FLAGS)
t_fault_check_soak_LDADD = $(TEST_LIBS)

# The soak over TLS (tide/tls.h on loopback TCP under the same faults);
# skips (77) in a build without OpenSSL. Its certificates are made at
# start-up by t/tls_certs.sh.
t_fault_check_soak_tls_SOURCES = t/fault/check_soak_tls.c t/tls_certs.h $(FAULT_SOURCES)
t_fault_check_soak_tls_CFLAGS = $(TEST_CFLAGS) \
	-DT_TOP_SRCDIR=\"$(abs_top_srcdir)\"
t_fault_check_soak_tls_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/t
t_fault_check_soak_tls_LDFLAGS = $(FAULT_WRAP_FLAGS)
t_fault_check_soak_tls_LDADD = $(TEST_LIBS)

t_fault_check_fault_bev_SOURCES = t/fault/check_fault_bev.c \
	t/fault/interpose.c $(FAULT_SOURCES)
t_fault_check_fault_bev_CFLAGS = $(TEST_CFLAGS)
t_fault_check_fault_bev_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/t
t_fault_check_fault_bev_LDFLAGS = $(FAULT_BEV_WRAP_FLAGS)
t_fault_check_fault_bev_LDADD = $(TEST_LIBS)

t_check_cancel_SOURCES = t/check_cancel.c t/tls_certs.h $(FAULT_SOURCES)
t_check_cancel_CFLAGS = $(TEST_CFLAGS) -DT_TOP_SRCDIR=\"$(abs_top_srcdir)\"
t_check_cancel_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/t
t_check_cancel_LDFLAGS = $(FAULT_WRAP_FLAGS)
t_check_cancel_LDADD = $(TEST_LIBS)

# Fuzz harnesses. Each defines LLVMFuzzerTestOneInput; in `make check` it is
# linked with a small driver that replays the committed corpus (and any
# file or directory given on its command line), so every build (plain,
# ASan, valgrind) checks the corpus. t/reliability.sh fuzz links the same
# harnesses with libFuzzer (clang -fsanitize=fuzzer) for real fuzzing.
check_PROGRAMS += t/fuzz/fuzz_addr t/fuzz/fuzz_line t/fuzz/fuzz_lencodec \
	t/fuzz/fuzz_echod_args
TESTS += t/fuzz/fuzz_addr t/fuzz/fuzz_line t/fuzz/fuzz_lencodec \
	t/fuzz/fuzz_echod_args
FUZZ_CPP = $(AM_CPPFLAGS) -I$(top_srcdir)/t \
	-DFUZZ_CORPUS_DIR='"$(top_srcdir)/t/fuzz/corpus"'
t_fuzz_fuzz_addr_SOURCES = t/fuzz/fuzz_addr.c t/fuzz/replay.c
t_fuzz_fuzz_addr_CPPFLAGS = $(FUZZ_CPP) -DFUZZ_NAME='"addr"'
t_fuzz_fuzz_addr_LDADD = src/libtide-internal.la $(LIBEVENT_LIBS) \
	$(LIBEVENT_EXTRA_LIBS)
t_fuzz_fuzz_line_SOURCES = t/fuzz/fuzz_line.c t/fuzz/fuzz_stream.h \
	t/fuzz/replay.c
t_fuzz_fuzz_line_CPPFLAGS = $(FUZZ_CPP) -DFUZZ_NAME='"line"'
t_fuzz_fuzz_line_LDADD = src/libtide-internal.la $(LIBEVENT_LIBS) \
	$(LIBEVENT_EXTRA_LIBS)
t_fuzz_fuzz_lencodec_SOURCES = t/fuzz/fuzz_lencodec.c t/fuzz/fuzz_stream.h \
	t/fuzz/replay.c
t_fuzz_fuzz_lencodec_CPPFLAGS = $(FUZZ_CPP) -DFUZZ_NAME='"lencodec"'
t_fuzz_fuzz_lencodec_LDADD = src/libtide-internal.la $(LIBEVENT_LIBS) \
	$(LIBEVENT_EXTRA_LIBS)
t_fuzz_fuzz_echod_args_SOURCES = t/fuzz/fuzz_echod_args.c t/fuzz/replay.c \
	samples/echod/options.c samples/echod/options.h
t_fuzz_fuzz_echod_args_CPPFLAGS = $(FUZZ_CPP) -DFUZZ_NAME='"echod_args"' \
	-I$(top_srcdir)/samples/echod
t_fuzz_fuzz_echod_args_LDADD = src/libtide-internal.la $(LIBEVENT_LIBS) \
	$(LIBEVENT_EXTRA_LIBS)
EXTRA_DIST += t/fuzz/corpus t/valgrind.supp t/reliability.sh t/stress/run.sh

# ------------------------------------------------------------------------
# make check-valgrind: every test program of TESTS under valgrind memcheck.
# Memory errors and definite leaks are fatal (--error-exitcode). Check's
# fork mode is kept: valgrind follows fork() by itself (no exec involved),
# and each forked test is leak-checked when it exits (a failing child fails
# its test). Programs a test execs (the echo daemon, through its libtool
# wrapper and the shell tools in it) run natively: --trace-children=no.
# Test timeouts are stretched (CK_TIMEOUT_MULTIPLIER; TIDE_VALGRIND=1
# stretches the tests' own watchdogs of t/testutil.h by the same 20), the
# soak test does fewer operations (TIDE_SOAK_OPS), and TCases tagged
# "no-valgrind" (those that lower RLIMIT_NOFILE, which valgrind
# virtualises) are left out (CK_EXCLUDE_TAGS). Programs are run through
# libtool --mode=execute so that valgrind never sees a libtool wrapper
# script. One log per program: NAME.vg.log beside it.
# ------------------------------------------------------------------------
VALGRIND = valgrind
VALGRIND_FLAGS = -q --error-exitcode=1 --leak-check=full \
	--errors-for-leak-kinds=definite --show-leak-kinds=definite \
	--track-fds=no --trace-children=no --child-silent-after-fork=no \
	--suppressions=$(top_srcdir)/t/valgrind.supp

check-valgrind: $(check_PROGRAMS)
	@pass=0; fail=0; \
	for t in $(TESTS); do \
	    case " $(check_PROGRAMS) " in *" $$t "*) ;; *) continue ;; esac; \
	    log=$$t.vg.log; \
	    if CK_TIMEOUT_MULTIPLIER=$${CK_TIMEOUT_MULTIPLIER:-20} \
	       CK_EXCLUDE_TAGS=$${CK_EXCLUDE_TAGS:-no-valgrind} TIDE_VALGRIND=1 \
	       TIDE_SOAK_OPS=$${TIDE_SOAK_OPS:-20000} \
	       $(LIBTOOL) --mode=execute $(VALGRIND) $(VALGRIND_FLAGS) \
	          ./$$t >$$log 2>&1; then \
	        pass=$$((pass + 1)); echo "PASS: $$t (valgrind)"; \
	    else \
	        fail=$$((fail + 1)); echo "FAIL: $$t (valgrind)"; \
	        tail -n 80 $$log; \
	    fi; \
	    grep -h '^[0-9]*%: Checks:' $$log | sed "s|^|$$t: |" || true; \
	done; \
	echo "valgrind: $$pass passed, $$fail failed"; \
	test $$fail = 0

# ------------------------------------------------------------------------
# make check-stress: the bounded stress runs against the echo daemon
# (t/stress/run.sh: 10,000 connections, misbehaving clients, a soak with
# RSS sampled, accept under descriptor exhaustion). Loopback only.
# STRESS_FLAGS goes to run.sh (e.g. "--soak-secs 60 --conns 2000"; add
# --valgrind to also run the daemon itself under valgrind memcheck).
# ------------------------------------------------------------------------
EXTRA_PROGRAMS += t/stress/echoload
t_stress_echoload_SOURCES = t/stress/echoload.c
STRESS_FLAGS =

check-stress: t/stress/echoload$(EXEEXT) samples/tide-echod$(EXEEXT)
	$(SHELL) $(top_srcdir)/t/stress/run.sh --echod samples/tide-echod$(EXEEXT) \
	    --load t/stress/echoload$(EXEEXT) --libtool "$(LIBTOOL)" $(STRESS_FLAGS)

# make check-long: the soaks under fault injection (plain and TLS) with a
# million operations (TIDE_SOAK_OPS) and the stress runs with a 60 s soak.
check-long: t/fault/check_soak$(EXEEXT) t/fault/check_soak_tls$(EXEEXT) \
		t/stress/echoload$(EXEEXT) samples/tide-echod$(EXEEXT)
	TIDE_SOAK_OPS=$${TIDE_SOAK_OPS:-1000000} CK_TIMEOUT_MULTIPLIER=10 \
	    ./t/fault/check_soak$(EXEEXT)
	TIDE_SOAK_OPS=$${TIDE_SOAK_OPS:-1000000} CK_TIMEOUT_MULTIPLIER=10 \
	    ./t/fault/check_soak_tls$(EXEEXT)
	$(MAKE) $(AM_MAKEFLAGS) check-stress \
	    STRESS_FLAGS="--soak-secs 60 $(STRESS_FLAGS)"

CLEANFILES += t/*.vg.log t/fault/*.vg.log t/fuzz/*.vg.log
.PHONY: check-valgrind check-stress check-long
