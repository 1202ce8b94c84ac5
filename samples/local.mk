# samples: programs that show tide.
noinst_PROGRAMS += samples/hello
samples_hello_SOURCES = samples/hello.c
samples_hello_LDADD = src/libtide.la $(LIBEVENT_LIBS)

# The echo daemon. Installed as tide-echod; in the build tree it is
# samples/tide-echod (samples/echod/ holds its objects). The option parser
# is a file of its own so that a fuzzer can link it alone.
bin_PROGRAMS += samples/tide-echod
samples_tide_echod_SOURCES = samples/echod/echod.c samples/echod/options.c \
	samples/echod/options.h
samples_tide_echod_LDADD = src/libtide.la $(LIBEVENT_LIBS) -lpthread
