# reactor: descriptor readiness (AsyncFd), timers, signals.
src_libtide_internal_la_SOURCES += \
	src/reactor/internal.h \
	src/reactor/fd.c \
	src/reactor/time.c \
	src/reactor/signal.c
tideinclude_HEADERS += include/tide/fd.h include/tide/time.h include/tide/signal.h
