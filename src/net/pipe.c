/*
 * src/net/pipe.c: a pipe as two streams. Each end is a plain fdstream
 * (the io layer's "any descriptor as a stream"): a pipe needs nothing
 * more, and its write end's shutdown is a close, which fdstream does.
 */
#include <fcntl.h>
#include <unistd.h>

#include "net/internal.h"

int tide_pipe(tide_fdstream_t **rd, tide_fdstream_t **wr, tide_exec_t *ex) {
    if (rd == NULL || wr == NULL || ex == NULL)
        return -EINVAL;
    int fds[2];
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0)
        return -errno;
    tide_fdstream_t *r, *w;
    int rc = tide_fdstream_new(&r, ex, fds[0]);
    if (rc < 0)
        goto fail_fds;
    if ((rc = tide_fdstream_new(&w, ex, fds[1])) < 0)
        goto fail_r;
    *rd = r;
    *wr = w;
    return 0;

fail_r:
    tide_fdstream_free(r); /* closes fds[0] */
    tide__sys_close(fds[1]);
    return rc;
fail_fds:
    tide__sys_close(fds[0]);
    tide__sys_close(fds[1]);
    return rc;
}
