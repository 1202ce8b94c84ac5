# core: futures, wakers, tasks, the executor, combinators.
noinst_LTLIBRARIES += src/libtide-internal.la
src_libtide_internal_la_SOURCES = \
	src/core/internal.h \
	src/core/alloc.c \
	src/core/error.c \
	src/core/waker.c \
	src/core/waitq.c \
	src/core/executor.c \
	src/core/combinators.c
tideinclude_HEADERS += include/tide/error.h include/tide/core.h
