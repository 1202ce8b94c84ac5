/*
 * src/core/error.c: names and messages for error codes, and the version.
 */
#include <limits.h>
#include <string.h>

#include "core/internal.h"

const char *tide_strerror(int err) {
    switch (err) {
#define XX(name, off, msg)                                                     \
    case TIDE_##name:                                                          \
        return msg;
        TIDE_ERRNO_MAP(XX)
#undef XX
    default:
        break;
    }
    if (err == INT_MIN)
        return "unknown error";
    if (err < 0)
        err = -err;
    if (err == 0)
        return "success";
    /* strerror is not thread safe in general, but glibc's returns static
     * strings for known codes; strerrordesc_np would say so explicitly. */
    return strerror(err);
}

const char *tide_err_name(int err) {
    switch (err) {
#define XX(name, off, msg)                                                     \
    case TIDE_##name:                                                          \
        return "TIDE_" #name;
        TIDE_ERRNO_MAP(XX)
#undef XX
    default:
        break;
    }
    if (err == INT_MIN)
        return "UNKNOWN";
    if (err < 0)
        err = -err;
    if (err == 0)
        return "OK";
    const char *name = strerrorname_np(err);
    return name != NULL ? name : "UNKNOWN";
}

const char *tide_version(void) { return TIDE_VERSION; }

int tide_version_number(void) { return TIDE_VERSION_NUMBER; }
