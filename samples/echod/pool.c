/*
 * samples/echod/pool.c: the per-thread buffer pool (see echod.h).
 *
 * Giving memory back. A buffer the pool does not keep is freed, but with
 * malloc a freed 16 KiB chunk stays in the heap: glibc returns memory to
 * the system only from the top of the heap (M_TRIM_THRESHOLD) or on
 * malloc_trim, and the chunks of a burst are interleaved with the
 * connections' small allocations, so 2,000 clients that never read left
 * the daemon at its peak RSS (33 MiB) after they closed. So a buffer of a
 * page or more is a mapping of its own (mmap, rounded up to whole pages;
 * 16 KiB is exactly 4 pages): munmap gives it back at once, whatever
 * else is on the heap. The cost is two system calls and the first
 * touches' page faults per buffer allocated, which the pool's `keep`
 * buffers spare the steady state (a pool miss is rare but for bursts).
 * A smaller buffer (--buffer-size under a page) stays malloc'd: mapping
 * it would waste most of a page.
 *
 * --max-buffer-memory: each buffer that exists, lent or kept, holds one
 * permit of p->budget, shared by every thread, so the total is bounded
 * exactly. A buffer taken from the free list already has its permit: the
 * semaphore is touched only when a buffer is made or unmade, not per
 * message. While a connection waits for a permit, pools keep no buffer
 * (pool_put frees it, which hands its permit to the first waiter), so
 * idle buffers in one thread's pool cannot starve another thread.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "echod.h"

static size_t page_size(void) {
    long ps = sysconf(_SC_PAGESIZE);
    return ps > 0 ? (size_t)ps : 4096;
}

size_t pool_buffer_cost(size_t size) {
    size_t ps = page_size();
    if (size < ps)
        return size < sizeof(void *) ? sizeof(void *) : size;
    return (size + ps - 1) / ps * ps;
}

void pool_init(pool_t *p, size_t size, size_t keep, tide_semaphore_t *budget,
               atomic_uint *waiting) {
    memset(p, 0, sizeof *p);
    p->size = size;
    p->keep = keep;
    p->map_size = size >= page_size() ? pool_buffer_cost(size) : 0;
    p->budget = budget;
    p->waiting = waiting;
}

static void *make(pool_t *p) {
    if (p->map_size == 0)
        return malloc(pool_buffer_cost(p->size));
    void *b = mmap(NULL, p->map_size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return b == MAP_FAILED ? NULL : b;
}

/* Unmake b and give its permit back. */
static void unmake(pool_t *p, void *b) {
    if (p->map_size == 0)
        free(b);
    else
        munmap(b, p->map_size);
    if (p->budget != NULL)
        tide_semaphore_release(p->budget, 1);
}

void *pool_new(pool_t *p) {
    void *b = make(p);
    if (b == NULL && p->budget != NULL)
        tide_semaphore_release(p->budget, 1);
    return b;
}

void *pool_get(pool_t *p, int *err) {
    void *b = p->head;
    if (b != NULL) {
        memcpy(&p->head, b, sizeof p->head);
        p->nfree--;
        return b;
    }
    if (p->budget != NULL && tide_semaphore_try_acquire(p->budget, 1) < 0) {
        *err = -ENOBUFS;
        return NULL;
    }
    if ((b = pool_new(p)) == NULL)
        *err = -ENOMEM;
    return b;
}

void pool_put(pool_t *p, void *b) {
    if (b == NULL)
        return;
    if (!pool_would_keep(p)) {
        unmake(p, b);
        return;
    }
    memcpy(b, &p->head, sizeof p->head);
    p->head = b;
    p->nfree++;
}

void pool_destroy(pool_t *p) {
    while (p->head != NULL) {
        void *b = p->head;
        memcpy(&p->head, b, sizeof p->head);
        unmake(p, b);
    }
    p->nfree = 0;
}
