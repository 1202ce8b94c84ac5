/*
 * t/tls_certs.h: the TLS tests' certificates, made at test time.
 *
 * t_tls_certs_make runs t/tls_certs.sh (a CA, server and client
 * certificates, an expired one, a self-signed one, a foreign CA: see the
 * script) into a new directory under $TMPDIR (or /tmp) whose name starts
 * with `prefix`, and leaves its path in dir. No key is ever committed.
 * Returns 0; 77 when there is no openssl program to make them with (said
 * on stdout, after "SKIP", or after `skipped` when only part of the
 * program is skipped; a whole program exits 77, as automake expects); 99 when
 * making them failed (said on stderr). t_tls_certs_remove deletes the
 * directory again.
 *
 * The program must be compiled with -DT_TOP_SRCDIR="..." (t/local.mk and
 * t/reliability.mk do it for the TLS tests), so that the script is found
 * from any build directory.
 */
#ifndef TIDE_T_TLS_CERTS_H
#define TIDE_T_TLS_CERTS_H

#include <stdio.h>
#include <stdlib.h>

static inline int t_tls_certs_make(char *dir, size_t size, const char *prefix,
                                   const char *skipped) {
    if (system("openssl version >/dev/null 2>&1") != 0) {
        printf("%s: no openssl program to make the test certificates with\n",
               skipped != NULL ? skipped : "SKIP");
        return 77;
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, size, "%s/%s.XXXXXX", tmp != NULL && *tmp ? tmp : "/tmp",
             prefix);
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 99;
    }
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "sh '%s/t/tls_certs.sh' '%s'", T_TOP_SRCDIR, dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "t/tls_certs.sh failed\n");
        return 99;
    }
    return 0;
}

static inline void t_tls_certs_remove(const char *dir) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

#endif
