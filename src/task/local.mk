# task: cancellation tokens, scopes, the blocking pool.
src_libtide_internal_la_SOURCES += \
	src/task/internal.h \
	src/task/token.c \
	src/task/scope.c \
	src/task/blocking.c
tideinclude_HEADERS += include/tide/task.h

if HAVE_CHECK
check_PROGRAMS += t/check_task
TESTS += t/check_task
endif
t_check_task_SOURCES = t/check_task.c t/testutil.h t/slowdown.h
t_check_task_CFLAGS = $(TEST_CFLAGS)
t_check_task_LDADD = $(TEST_LIBS)
