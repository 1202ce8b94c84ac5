/*
 * t/fuzz/fuzz_echod_args.c: the echo daemon's command line parser
 * (samples/echod/options.c: echod_options_parse, echod_check_addr).
 *
 * Input: byte 0 sets the size of the error buffer (0 to 255, so too small
 * a buffer is tried too); the rest is split at NUL bytes into argv[1..].
 * Invariants: no crash or sanitizer report; the answer is 0 or -1; on -1
 * the message is NUL-terminated within the buffer (and not empty when the
 * buffer has room); on 0 every field is within its documented range (at
 * least one listener, --listen and --listen-fd together at most
 * ECHOD_MAX_LISTEN, descriptors non-negative and distinct, the default
 * address only when neither was given), every
 * listen address points into argv (or is the default) and passes
 * echod_check_addr, --log-file (if given) is not empty and points into
 * argv, and a parse of the same argv gives the same result.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "options.h" /* samples/echod */

#define FAIL(...)                                                              \
    do {                                                                       \
        fprintf(stderr, "fuzz_echod_args: " __VA_ARGS__);                      \
        fprintf(stderr, "\n");                                                 \
        abort();                                                               \
    } while (0)

#define MAX_ARGS 80

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool in_argv(const char *p, char *const *argv, int argc) {
    for (int i = 1; i < argc; i++) {
        size_t n = strlen(argv[i]);
        if (p >= argv[i] && p <= argv[i] + n)
            return true;
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > 8192)
        return 0;
    size_t errsize = data[0];
    char *text = malloc(size); /* the args, NUL-separated, NUL-terminated */
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    char *argv[MAX_ARGS + 2];
    int argc = 0;
    argv[argc++] = (char *)"echod";
    char *end = text + size - 1; /* the final NUL */
    for (char *p = text; p < end && argc <= MAX_ARGS; p += strlen(p) + 1)
        argv[argc++] = p;
    argv[argc] = NULL;

    char *err = malloc(errsize ? errsize : 1);
    echod_options_t o;
    int rc = echod_options_parse(&o, argc, argv, errsize ? err : NULL, errsize);
    if (rc == -1) {
        if (errsize > 0) {
            if (memchr(err, '\0', errsize) == NULL)
                FAIL("error message not NUL-terminated");
            if (errsize > 1 && err[0] == '\0')
                FAIL("failed without a message");
        }
    } else if (rc == 0) {
        if (o.nlisten + o.nlisten_fd < 1 ||
            o.nlisten + o.nlisten_fd > ECHOD_MAX_LISTEN)
            FAIL("nlisten %zu, nlisten_fd %zu", o.nlisten, o.nlisten_fd);
        if (o.listen_default &&
            (o.nlisten != 1 || o.nlisten_fd != 0 ||
             strcmp(o.listen[0], ECHOD_DEFAULT_LISTEN) != 0))
            FAIL("default listen with %zu --listen, %zu --listen-fd", o.nlisten,
                 o.nlisten_fd);
        for (size_t i = 0; i < o.nlisten_fd; i++) {
            if (o.listen_fd[i] < 0)
                FAIL("listen_fd[%zu] = %d", i, o.listen_fd[i]);
            for (size_t k = 0; k < i; k++)
                if (o.listen_fd[k] == o.listen_fd[i])
                    FAIL("listen_fd %d twice", o.listen_fd[i]);
        }
        if (o.threads < 1 || o.threads > ECHOD_MAX_THREADS)
            FAIL("threads %u", o.threads);
        if (o.buffer_size < ECHOD_MIN_BUFFER ||
            o.buffer_size > ECHOD_MAX_BUFFER)
            FAIL("buffer size %zu", o.buffer_size);
        if (o.max_conns > 100000000u)
            FAIL("max conns");
        if (o.idle_timeout_usec > UINT64_C(365) * 86400 * 1000000 + 999999 ||
            o.drain_timeout_usec > UINT64_C(365) * 86400 * 1000000 + 999999)
            FAIL("timeouts %llu %llu", (unsigned long long)o.idle_timeout_usec,
                 (unsigned long long)o.drain_timeout_usec);
        if (o.verbosity < ECHOD_QUIET || o.verbosity > ECHOD_VERBOSE)
            FAIL("verbosity %d", o.verbosity);
        if (o.log_file != NULL &&
            (*o.log_file == '\0' || !in_argv(o.log_file, argv, argc)))
            FAIL("log file '%s' empty or outside argv", o.log_file);
        char e2[128];
        for (size_t i = 0; i < o.nlisten; i++) {
            if (strcmp(o.listen[i], ECHOD_DEFAULT_LISTEN) != 0 &&
                !in_argv(o.listen[i], argv, argc))
                FAIL("listen[%zu] points outside argv", i);
            if (echod_check_addr(o.listen[i], e2, sizeof e2) != 0)
                FAIL("listen[%zu] '%s' fails echod_check_addr: %s", i,
                     o.listen[i], e2);
        }
        echod_options_t o2;
        if (echod_options_parse(&o2, argc, argv, NULL, 0) != 0 ||
            memcmp(&o, &o2, sizeof o) != 0)
            FAIL("a second parse differs");
    } else {
        FAIL("parse returned %d", rc);
    }
    /* every argument as an address, with a tiny message buffer */
    for (int i = 1; i < argc; i++) {
        char small[5];
        if (echod_check_addr(argv[i], small, sizeof small) == -1 &&
            memchr(small, '\0', sizeof small) == NULL)
            FAIL("check_addr message not NUL-terminated");
    }
    free(err);
    free(text);
    return 0;
}
