/*
 * t/slowdown.h: how much slower than a plain build this test run is, for
 * every watchdog and wait bound in t/. Self-contained (no tide internals),
 * so that the tests of programs (check_echod) and of the I/O layer use the
 * same factor as those built on testutil.h.
 */
#ifndef TIDE_T_SLOWDOWN_H
#define TIDE_T_SLOWDOWN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define T_HAVE_VALGRIND_H 1
#endif
#endif

/* ------------------------------------------------------------------------
 * Watchdogs
 *
 * A watchdog bound is far above what its test needs in a plain build; it
 * is there to turn a hang into a failure. Sanitizers and valgrind slow a
 * test down by large factors (ASan about 2-3x; ThreadSanitizer 5-30x on
 * the copy tests, more on a loaded 2-core machine; valgrind 20-50x), so
 * every bound of these helpers is multiplied by t_slowdown():
 *   - TIDE_TEST_SLOWDOWN=N in the environment (N >= 1): N, whatever the
 *     build (to stretch a loaded machine, or to test the watchdog);
 *   - else under valgrind (TIDE_VALGRIND=1, which make check-valgrind
 *     sets, or valgrind.h's RUNNING_ON_VALGRIND): 20;
 *   - else a ThreadSanitizer build: 10; an AddressSanitizer (or
 *     MemorySanitizer) build: 3 (detected at compile time);
 *   - else 1.
 * Check's TCase timeouts scale with the same factor: unless
 * CK_TIMEOUT_MULTIPLIER is already set, a constructor sets it to
 * t_slowdown() before main builds the suite (Check applies the multiplier
 * in tcase_set_timeout, so it must be in the environment by then).
 *
 * A watchdog that fires says so and fails the test: "watchdog: over N s in
 * test_x" on stderr and as the test's failure message, instead of
 * surfacing as an -EINTR from tide_exec_block_on for the test to misread.
 * ------------------------------------------------------------------------ */

#if defined(__SANITIZE_THREAD__)
#define T_SLOWDOWN_BUILD 10u
#elif defined(__SANITIZE_ADDRESS__)
#define T_SLOWDOWN_BUILD 3u
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define T_SLOWDOWN_BUILD 10u
#elif __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define T_SLOWDOWN_BUILD 3u
#endif
#endif
#ifndef T_SLOWDOWN_BUILD
#define T_SLOWDOWN_BUILD 1u
#endif

/* The factor valgrind's memcheck gets (make check-valgrind stretches the
 * TCase timeouts by the same, CK_TIMEOUT_MULTIPLIER=20). */
#define T_SLOWDOWN_VALGRIND 20u

/* Bounds under this are deliberate stops, not watchdogs: see
 * t_block_on_ms. */
#define T_STOP_MAX_MS 1000u

static inline bool t_under_valgrind(void) {
    const char *v = getenv("TIDE_VALGRIND");
    if (v != NULL && *v != '\0' && strcmp(v, "0") != 0)
        return true;
#ifdef T_HAVE_VALGRIND_H
    if (RUNNING_ON_VALGRIND)
        return true;
#endif
    return false;
}

/* t_slowdown: how many times slower than a plain build this run is
 * expected to be (see above). Read afresh at each call: a test may set
 * TIDE_TEST_SLOWDOWN. */
static inline unsigned t_slowdown(void) {
    const char *v = getenv("TIDE_TEST_SLOWDOWN");
    if (v != NULL && *v != '\0') {
        char *end;
        unsigned long n = strtoul(v, &end, 10);
        if (*end == '\0' && n >= 1 && n <= 1000)
            return (unsigned)n;
    }
    unsigned s = T_SLOWDOWN_BUILD;
    if (t_under_valgrind() && s < T_SLOWDOWN_VALGRIND)
        s = T_SLOWDOWN_VALGRIND;
    return s;
}

/* t_watchdog_ms: a watchdog bound of `ms` in a plain build, scaled. */
static inline unsigned t_watchdog_ms(unsigned ms) {
    uint64_t v = (uint64_t)ms * t_slowdown();
    return v > UINT32_MAX ? UINT32_MAX : (unsigned)v;
}

__attribute__((constructor)) static void t_watchdog_scale_tcases(void) {
    unsigned s = t_slowdown();
    if (s > 1 && getenv("CK_TIMEOUT_MULTIPLIER") == NULL) {
        char buf[16];
        snprintf(buf, sizeof buf, "%u", s);
        setenv("CK_TIMEOUT_MULTIPLIER", buf, 0);
    }
}

#endif
