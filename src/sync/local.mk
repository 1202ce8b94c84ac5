# sync: oneshot, mpsc, notify, semaphore (uses only core).
src_libtide_internal_la_SOURCES += \
	src/sync/internal.h \
	src/sync/oneshot.c \
	src/sync/mpsc.c \
	src/sync/notify.c \
	src/sync/semaphore.c
tideinclude_HEADERS += include/tide/sync.h
