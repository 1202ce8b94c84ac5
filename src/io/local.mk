# io: the stream interface, the descriptor stream, and the helpers that work
# on any stream (read_exact, write_all, copy, split, buffered reading,
# framing).
src_libtide_internal_la_SOURCES += \
	src/io/internal.h \
	src/io/fdstream.c \
	src/io/ops.c \
	src/io/copy.c \
	src/io/split.c \
	src/io/bufreader.c \
	src/io/codec.c
tideinclude_HEADERS += include/tide/io.h

if HAVE_CHECK
check_PROGRAMS += t/check_io
TESTS += t/check_io
endif
t_check_io_SOURCES = t/check_io.c t/slowdown.h
t_check_io_CFLAGS = $(TEST_CFLAGS)
t_check_io_LDADD = $(TEST_LIBS)
