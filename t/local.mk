# Tests of the core, the sync layer and the reactor. Other layers list theirs in their own
# fragments.
if HAVE_CHECK
check_PROGRAMS += t/check_core t/check_fd t/check_time t/check_sync
TESTS += t/check_core t/check_fd t/check_time t/check_sync
endif
t_check_core_SOURCES = t/check_core.c t/testutil.h t/slowdown.h
t_check_core_CFLAGS = $(TEST_CFLAGS)
t_check_core_LDADD = $(TEST_LIBS)
t_check_fd_SOURCES = t/check_fd.c t/testutil.h t/slowdown.h
t_check_fd_CFLAGS = $(TEST_CFLAGS)
t_check_fd_LDADD = $(TEST_LIBS)
t_check_time_SOURCES = t/check_time.c t/testutil.h t/slowdown.h
t_check_time_CFLAGS = $(TEST_CFLAGS)
t_check_time_LDADD = $(TEST_LIBS)
t_check_sync_SOURCES = t/check_sync.c t/testutil.h t/slowdown.h
t_check_sync_CFLAGS = $(TEST_CFLAGS)
t_check_sync_LDADD = $(TEST_LIBS)
