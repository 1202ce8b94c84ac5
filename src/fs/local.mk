# fs: files on the blocking pool.
src_libtide_internal_la_SOURCES += \
	src/fs/file.c
tideinclude_HEADERS += include/tide/fs.h

if HAVE_CHECK
check_PROGRAMS += t/check_fs
TESTS += t/check_fs
endif
t_check_fs_SOURCES = t/check_fs.c t/testutil.h t/slowdown.h
t_check_fs_CFLAGS = $(TEST_CFLAGS)
t_check_fs_LDADD = $(TEST_LIBS)
