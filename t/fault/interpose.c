/*
 * t/fault/interpose.c: the fault shim for system calls made inside
 * libevent itself (a bufferevent's readv and writev, in libevent's shared
 * library), which the link-time wraps of fault.h cannot reach.
 *
 * The program that links this file is built without --wrap=readv and
 * --wrap=writev (FAULT_BEV_WRAP_FLAGS in t/reliability.mk) and exports
 * readv and writev: the dynamic linker then binds libevent's calls, and
 * the library's own, to the definitions below, which go through the
 * shim's __wrap_ functions. The shim's __real_ calls, unwrapped here,
 * land on the functions below them, which call the next definition in
 * the lookup order (libc's, or a sanitizer's interceptor) through
 * dlsym(RTLD_NEXT).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/uio.h>

ssize_t __wrap_readv(int fd, const struct iovec *iov, int n);
ssize_t __wrap_writev(int fd, const struct iovec *iov, int n);
ssize_t __real_readv(int fd, const struct iovec *iov, int n);
ssize_t __real_writev(int fd, const struct iovec *iov, int n);

typedef ssize_t (*iov_fn)(int, const struct iovec *, int);

static iov_fn next(const char *name) {
    iov_fn f;
    *(void **)&f = dlsym(RTLD_NEXT, name);
    if (f == NULL)
        abort();
    return f;
}

ssize_t readv(int fd, const struct iovec *iov, int n) {
    return __wrap_readv(fd, iov, n);
}

ssize_t writev(int fd, const struct iovec *iov, int n) {
    return __wrap_writev(fd, iov, n);
}

ssize_t __real_readv(int fd, const struct iovec *iov, int n) {
    static iov_fn f;
    if (f == NULL)
        f = next("readv");
    return f(fd, iov, n);
}

ssize_t __real_writev(int fd, const struct iovec *iov, int n) {
    static iov_fn f;
    if (f == NULL)
        f = next("writev");
    return f(fd, iov, n);
}
