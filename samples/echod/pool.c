/*
 * samples/echod/pool.c: the per-thread buffer pool (see echod.h).
 */
#include <stdlib.h>
#include <string.h>

#include "echod.h"

void *pool_get(pool_t *p) {
    void *b = p->head;
    if (b != NULL) {
        memcpy(&p->head, b, sizeof p->head);
        p->nfree--;
        return b;
    }
    return malloc(p->size < sizeof(void *) ? sizeof(void *) : p->size);
}

void pool_put(pool_t *p, void *b) {
    if (b == NULL)
        return;
    if (p->nfree >= p->keep) {
        free(b);
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
        free(b);
    }
    p->nfree = 0;
}

