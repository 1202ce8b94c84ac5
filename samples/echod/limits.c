/*
 * samples/echod/limits.c: the door. Each accepted connection passes two
 * limits before it gets a task:
 *
 * --max-conns-per-addr N: at most N open connections from one client
 * address, counted over every thread in a small hash table (address ->
 * open connections) under a mutex. The table is touched twice per
 * connection, at accept and at close, never per message. An address with
 * no open connection has no entry, so the table holds at most one entry
 * per open connection. IPv4-mapped IPv6 addresses count as their IPv4
 * address; other IPv6 addresses count one by one (a host with a /64 has
 * many); Unix-socket clients are not counted. The hash is seeded at
 * start, so that a client cannot choose addresses that all collide.
 *
 * --max-conns N: at most N open connections, over every thread (a
 * semaphore, D.slots, one permit per connection). At the limit, a
 * newcomer evicts the connection idle the longest, if that one has been
 * idle at least --evict-idle: it is closed and its slot is the
 * newcomer's (conn_evict_idlest). "Idle" is time since the last
 * progress: a byte received or written back, or the connect for one that
 * never sent; a connection whose write back moves, or one waiting for
 * --max-buffer-memory, is not idle. So a slowloris (a byte every few
 * seconds per connection) is evicted to make room, while connections
 * that talk go on. The check goes first for the per-address limit, so
 * that nobody is evicted for a newcomer that is then refused.
 *
 * Threads: each worker evicts from its own idle list only (the lists are
 * its thread's, unlocked). If the accepting worker has no connection
 * idle long enough, the newcomer is refused, even if another thread has
 * one: the kernel spreads connections evenly over the SO_REUSEPORT
 * sockets, so an attack that fills the slots is spread over the threads
 * too and each evicts its share; asking another thread would make every
 * accept at the limit a cross-thread round trip.
 *
 * --max-conns-wait: the acceptor waits for a slot before it accepts
 * (newcomers wait in the kernel's backlog) and nothing is evicted: the
 * operator chose to make newcomers wait rather than to close anyone. Use
 * --idle-timeout to bound what idle connections hold then.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "echod.h"

struct addr_slot {
    addr_slot_t *next; /* in its bucket */
    uint64_t hash;
    uint32_t count; /* open connections from the address */
    uint8_t len;    /* of key: 4 (IPv4) or 16 (IPv6) */
    unsigned char key[16];
};

static struct {
    pthread_mutex_t mu;
    addr_slot_t **bucket; /* nbucket, a power of two */
    size_t nbucket, n;
    uint64_t seed;
} T;

int limits_init(void) {
    if (D.opt.max_conns_per_addr == 0)
        return 0;
    T.nbucket = 64;
    T.bucket = calloc(T.nbucket, sizeof *T.bucket);
    if (T.bucket == NULL)
        return -ENOMEM;
    if (getrandom(&T.seed, sizeof T.seed, GRND_NONBLOCK) != sizeof T.seed)
        T.seed = (uint64_t)tide_now() * UINT64_C(0x9e3779b97f4a7c15);
    pthread_mutex_init(&T.mu, NULL);
    return 0;
}

void limits_free(void) {
    if (T.bucket == NULL)
        return;
    for (size_t i = 0; i < T.nbucket; i++)
        while (T.bucket[i] != NULL) {
            addr_slot_t *s = T.bucket[i];
            T.bucket[i] = s->next;
            free(s);
        }
    free(T.bucket);
    T.bucket = NULL;
    pthread_mutex_destroy(&T.mu);
}

/* The address part of peer as a key; false for no address (Unix). */
static bool addr_key(const tide_addr_t *peer, unsigned char key[16],
                     uint8_t *len) {
    const void *ss = &peer->ss;
    if (tide_addr_family(peer) == AF_INET) {
        memcpy(key, &((const struct sockaddr_in *)ss)->sin_addr, 4);
        *len = 4;
        return true;
    }
    if (tide_addr_family(peer) == AF_INET6) {
        const struct in6_addr *a =
            &((const struct sockaddr_in6 *)ss)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a)) {
            memcpy(key, a->s6_addr + 12, 4);
            *len = 4;
        } else {
            memcpy(key, a->s6_addr, 16);
            *len = 16;
        }
        return true;
    }
    return false;
}

/* FNV-1a from a random seed, then a final mix (splitmix64's). */
static uint64_t hash_key(const unsigned char *key, uint8_t len) {
    uint64_t h = T.seed ^ UINT64_C(0xcbf29ce484222325);
    for (uint8_t i = 0; i < len; i++)
        h = (h ^ key[i]) * UINT64_C(0x100000001b3);
    h ^= h >> 30;
    h *= UINT64_C(0xbf58476d1ce4e5b9);
    h ^= h >> 27;
    h *= UINT64_C(0x94d049bb133111eb);
    return h ^ (h >> 31);
}

/* Double the buckets (under T.mu). Failing leaves the table as it is:
 * longer chains, still correct. */
static void grow(void) {
    size_t nb = T.nbucket * 2;
    addr_slot_t **b = calloc(nb, sizeof *b);
    if (b == NULL)
        return;
    for (size_t i = 0; i < T.nbucket; i++)
        while (T.bucket[i] != NULL) {
            addr_slot_t *s = T.bucket[i];
            T.bucket[i] = s->next;
            s->next = b[s->hash & (nb - 1)];
            b[s->hash & (nb - 1)] = s;
        }
    free(T.bucket);
    T.bucket = b;
    T.nbucket = nb;
}

/* Count a connection from peer: its slot, or NULL with *full (over the
 * limit) or not (no memory for an entry). */
static addr_slot_t *addr_enter(const unsigned char *key, uint8_t len,
                               bool *full) {
    uint64_t h = hash_key(key, len);
    addr_slot_t *s;
    *full = false;
    pthread_mutex_lock(&T.mu);
    for (s = T.bucket[h & (T.nbucket - 1)]; s != NULL; s = s->next)
        if (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0)
            break;
    if (s == NULL) {
        if ((s = calloc(1, sizeof *s)) == NULL)
            goto out;
        s->hash = h;
        s->len = len;
        memcpy(s->key, key, len);
        if (T.n >= T.nbucket)
            grow();
        s->next = T.bucket[h & (T.nbucket - 1)];
        T.bucket[h & (T.nbucket - 1)] = s;
        T.n++;
    }
    if (s->count >= D.opt.max_conns_per_addr) {
        *full = true;
        s = NULL;
        goto out;
    }
    s->count++;
out:
    pthread_mutex_unlock(&T.mu);
    return s;
}

static void addr_leave(addr_slot_t *s) {
    pthread_mutex_lock(&T.mu);
    if (--s->count == 0) {
        addr_slot_t **p = &T.bucket[s->hash & (T.nbucket - 1)];
        while (*p != s)
            p = &(*p)->next;
        *p = s->next;
        T.n--;
        free(s);
    }
    pthread_mutex_unlock(&T.mu);
}

bool limits_enter(worker_t *w, const tide_addr_t *peer, bool has_slot,
                  addr_slot_t **slot, const char **why) {
    unsigned char key[16];
    uint8_t len;
    *slot = NULL;
    if (D.opt.max_conns_per_addr != 0 && addr_key(peer, key, &len)) {
        bool full;
        if ((*slot = addr_enter(key, len, &full)) == NULL) {
            *why = full ? "--max-conns-per-addr" : "out of memory";
            if (full)
                ctr_add(&w->ctr.refused_addr, 1);
            goto refuse;
        }
    }
    if (D.opt.max_conns == 0 || has_slot ||
        tide_semaphore_try_acquire(&D.slots, 1) == 0)
        return true;
    if (D.evict && conn_evict_idlest(w)) {
        ctr_add(&w->ctr.evicted, 1);
        return true; /* with the evicted one's slot */
    }
    *why = "--max-conns";
    if (*slot != NULL)
        addr_leave(*slot);
    *slot = NULL;
refuse:
    ctr_add(&w->ctr.refused, 1);
    if (has_slot)
        tide_semaphore_release(&D.slots, 1);
    return false;
}

void limits_leave(addr_slot_t *slot, bool release_slot) {
    if (slot != NULL)
        addr_leave(slot);
    if (D.opt.max_conns != 0 && release_slot)
        tide_semaphore_release(&D.slots, 1);
}
