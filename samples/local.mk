# samples: programs that show tide.
noinst_PROGRAMS += samples/hello
samples_hello_SOURCES = samples/hello.c
samples_hello_LDADD = src/libtide.la $(LIBEVENT_LIBS)
