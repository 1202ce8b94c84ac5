/*
 * src/core/alloc.c: the one door every allocation of the library passes,
 * with the test hook that makes the Nth allocation fail.
 *
 * The hook's counters are the library's only process-wide state; they are
 * meant for single-threaded test programs and cost one relaxed atomic load
 * per allocation, which happens only at construction, never per operation.
 */
#include "core/internal.h"

static atomic_ulong fail_countdown; /* 0: off */
static atomic_ulong count;

static bool should_fail(void) {
    atomic_fetch_add_explicit(&count, 1, memory_order_relaxed);
    unsigned long n =
        atomic_load_explicit(&fail_countdown, memory_order_relaxed);
    if (n == 0)
        return false;
    if (n == 1) {
        atomic_store_explicit(&fail_countdown, 0, memory_order_relaxed);
        return true;
    }
    atomic_store_explicit(&fail_countdown, n - 1, memory_order_relaxed);
    return false;
}

unsigned long tide__alloc_fail_at(unsigned long n) {
    atomic_store(&fail_countdown, n);
    return atomic_exchange(&count, 0);
}

void *tide__malloc(size_t size) { return should_fail() ? NULL : malloc(size); }

void *tide__calloc(size_t n, size_t size) {
    return should_fail() ? NULL : calloc(n, size);
}

void *tide__realloc(void *p, size_t size) {
    return should_fail() ? NULL : realloc(p, size);
}

void tide__free(void *p) { free(p); }

_Noreturn void tide__check_failed(const char *what, const char *file,
                                  int line) {
    /* The one place the library writes to stderr: the process is about to
     * abort on a broken invariant and the message is all there is. */
    fprintf(stderr, "tide: internal check failed: %s (%s:%d)\n", what, file,
            line);
    abort();
}
