/*
 * tide/error.h: error codes, the export macro, and the version at run time.
 *
 * Every tide function that can fail returns a negative errno value
 * (-ECONNRESET, -ENOMEM, ...), never -1 with errno set. Conditions that
 * have no errno of their own take codes below TIDE__ERR_BASE, listed once
 * in TIDE_ERRNO_MAP; tide_strerror() and tide_err_name() know both kinds.
 */
#ifndef TIDE_ERROR_H
#define TIDE_ERROR_H

#include <errno.h>

#include "tide/version.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(TIDE_BUILDING) && defined(__GNUC__)
#define TIDE_EXTERN __attribute__((visibility("default")))
#else
#define TIDE_EXTERN
#endif

/* Library-only error codes, as negative numbers far below any errno. */
#define TIDE__ERR_BASE (-20000)

/* name, offset, message */
#define TIDE_ERRNO_MAP(XX)                                                     \
    XX(EBLOCKING, 1, "descriptor is in blocking mode")                         \
    XX(EFRAME, 2, "frame exceeds the maximum size")                            \
    XX(EEOF, 3, "unexpected end of stream")                                    \
    XX(EADDR, 4, "malformed address")                                          \
    XX(ENONAME, 5, "host name not found")

enum {
#define TIDE__ERR_ENUM(name, off, msg) TIDE_##name = TIDE__ERR_BASE - (off),
    TIDE_ERRNO_MAP(TIDE__ERR_ENUM)
#undef TIDE__ERR_ENUM
};

/*
 * tide_strerror: a message for a tide return value (negative errno or
 * TIDE_E*). Never NULL; the string is static and must not be freed.
 * Thread safe. Accepts positive errno values too.
 */
TIDE_EXTERN const char *tide_strerror(int err);

/*
 * tide_err_name: the symbolic name of an error ("ECONNRESET",
 * "TIDE_EBLOCKING"), or "UNKNOWN". Static string, thread safe.
 */
TIDE_EXTERN const char *tide_err_name(int err);

/*
 * tide_version: the version of the library loaded at run time, as
 * "MAJOR.MINOR.PATCH"; compare with TIDE_VERSION (compile time).
 */
TIDE_EXTERN const char *tide_version(void);

/* tide_version_number: the run-time version as TIDE_VERSION_NUMBER. */
TIDE_EXTERN int tide_version_number(void);

#ifdef __cplusplus
}
#endif
#endif
