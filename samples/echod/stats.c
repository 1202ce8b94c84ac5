/*
 * samples/echod/stats.c: the counters, summed over the workers, and the
 * line that reports them (SIGUSR1), in the log.
 */
#include <stdio.h>

#include "echod.h"

void print_counters(void) {
    uint64_t sum[9] = {0};
    for (unsigned i = 0; i < D.opt.threads; i++) {
        counters_t *c = &D.workers[i].ctr;
        sum[0] += ctr_get(&c->open);
        sum[1] += ctr_get(&c->total);
        sum[2] += ctr_get(&c->refused);
        sum[3] += ctr_get(&c->bytes_in);
        sum[4] += ctr_get(&c->bytes_out);
        sum[5] += ctr_get(&c->backoffs);
        sum[6] += ctr_get(&c->refused_addr);
        sum[7] += ctr_get(&c->evicted);
        sum[8] += ctr_get(&c->mem_waits);
    }
    logmsg(ECHOD_QUIET,
           "connections %llu open, %llu total, %llu refused (%llu per "
           "address), %llu evicted; bytes %llu in, %llu out; log lines "
           "dropped %llu; accept backoffs %llu; buffer waits %llu",
           (unsigned long long)sum[0], (unsigned long long)sum[1],
           (unsigned long long)sum[2], (unsigned long long)sum[6],
           (unsigned long long)sum[7], (unsigned long long)sum[3],
           (unsigned long long)sum[4], (unsigned long long)log_dropped(),
           (unsigned long long)sum[5], (unsigned long long)sum[8]);
}

/* Listener statistics are the listener thread's to read: each worker
 * publishes its accept backoffs after every accept (and worker 0 before
 * printing). */
void publish_backoffs(worker_t *w) {
    uint64_t n = 0;
    for (size_t i = 0; i < w->nls; i++) {
        tide_listener_stats_t st;
        if (w->ls[i].l == NULL)
            continue;
        tide_listener_stats(w->ls[i].l, &st);
        n += st.backoffs;
    }
    atomic_store_explicit(&w->ctr.backoffs, n, memory_order_relaxed);
}
