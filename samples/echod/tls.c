/*
 * samples/echod/tls.c: --tls-cert, --tls-key and --tls-ca. The files are
 * read once, at start-up, into one tide_tls_config_t (an SSL_CTX) that
 * every thread's connections share; conn.c wraps each accepted socket in
 * a TLS stream made from it.
 *
 * --tls-ca: clients must present a certificate signed by a CA of that
 * file, and only of that file: the config's store of trusted CAs is
 * replaced by one holding the file's alone (tide's config trusts the
 * system's CAs too, which would let in any client with a certificate from
 * a public CA). The CA names are also sent in the certificate request.
 */
#include <stdio.h>

#include "echod.h"

#if TIDE_HAVE_TLS
#include <openssl/ssl.h>
#include <openssl/x509.h>

/* The store of trusted CAs: the certificates of ca_file alone. */
static int trust_only(const char *ca_file, char *err, size_t errsize) {
    SSL_CTX *ctx = tide_tls_config_ssl_ctx(D.tls);
    X509_STORE *st = X509_STORE_new();
    if (st == NULL || !X509_STORE_load_file(st, ca_file)) {
        X509_STORE_free(st);
        snprintf(err, errsize, "--tls-ca %s: no CA certificate could be read",
                 ca_file);
        return -1;
    }
    SSL_CTX_set_cert_store(ctx, st); /* ctx owns st now */
    STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca_file);
    if (names != NULL)
        SSL_CTX_set_client_CA_list(ctx, names); /* ctx owns names */
    return 0;
}

/* What a failed setter means, for the message. */
static const char *why(int rc) {
    return rc == -EINVAL ? "not a PEM file of the expected kind, or the key "
                           "does not match the certificate"
                         : tide_strerror(rc);
}

int tls_setup(char *err, size_t errsize) {
    const echod_options_t *o = &D.opt;
    if (o->tls_cert == NULL)
        return 0;
    int rc = tide_tls_config_new(&D.tls);
    if (rc < 0) {
        snprintf(err, errsize, "TLS: %s", tide_strerror(rc));
        return -1;
    }
    rc = tide_tls_config_set_cert_file(D.tls, o->tls_cert, o->tls_key);
    if (rc < 0) {
        snprintf(err, errsize, "--tls-cert %.80s --tls-key %.80s: %s",
                 o->tls_cert, o->tls_key, why(rc));
        goto fail;
    }
    if (o->tls_ca != NULL) {
        /* Read it through tide first: its errors (-ENOENT, -EACCES, no
         * certificate) are the clear ones. */
        rc = tide_tls_config_set_ca_file(D.tls, o->tls_ca);
        if (rc < 0) {
            snprintf(err, errsize, "--tls-ca %.160s: %s", o->tls_ca,
                     rc == -EINVAL ? "no PEM certificate in it"
                                   : tide_strerror(rc));
            goto fail;
        }
        if (trust_only(o->tls_ca, err, errsize) < 0)
            goto fail;
        rc = tide_tls_config_set_verify(D.tls, TIDE_TLS_VERIFY_REQUIRE);
        if (rc < 0) {
            snprintf(err, errsize, "--tls-ca: %s", tide_strerror(rc));
            goto fail;
        }
    }
    return 0;
fail:
    tide_tls_config_free(D.tls);
    D.tls = NULL;
    return -1;
}

void tls_teardown(void) {
    tide_tls_config_free(D.tls);
    D.tls = NULL;
}

bool tls_on(void) { return D.tls != NULL; }

#else /* tide was built without OpenSSL */

int tls_setup(char *err, size_t errsize) {
    if (D.opt.tls_cert == NULL)
        return 0;
    snprintf(err, errsize,
             "--tls-cert: this tide-echod was built without TLS (tide was "
             "configured without OpenSSL: install libssl-dev and run "
             "configure --with-openssl)");
    return -1;
}

void tls_teardown(void) {}

bool tls_on(void) { return false; }

#endif
