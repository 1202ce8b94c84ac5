/*
 * samples/echod/activate.c: listening sockets handed down to the daemon:
 * by systemd's socket activation, or by whoever started it (--listen-fd).
 *
 * systemd's protocol (sd_listen_fds(3)), implemented here rather than
 * linked from libsystemd: the descriptors are 3, 4, ... 3+LISTEN_FDS-1,
 * meant for the process whose pid is LISTEN_PID (a child that inherited
 * the environment must not take them), with LISTEN_FDNAMES their names,
 * colon-separated (FileDescriptorName= in the socket unit). The three
 * variables are removed once read, so that nothing started later inherits
 * them. A wrong LISTEN_PID means the sockets are not ours: they are left
 * alone and the daemon listens on --listen (or the default) as if
 * started by hand. Malformed values are a broken start-up: exit 1.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "echod.h"

#define SD_LISTEN_FDS_START 3

static bool taken(int fd) {
    for (size_t k = 0; k < D.ninh; k++)
        if (D.inh[k].fd == fd)
            return true;
    return false;
}

/* systemd's descriptors into D.inh. */
static int take_systemd(char *err, size_t errsize) {
    const char *pid_s = getenv("LISTEN_PID");
    const char *fds_s = getenv("LISTEN_FDS");
    const char *names = getenv("LISTEN_FDNAMES");
    uint64_t pid, n;
    if (pid_s == NULL)
        return 0;
    if (!echod_parse_uint(pid_s, LONG_MAX, &pid) || pid == 0) {
        snprintf(err, errsize, "bad LISTEN_PID '%.32s' in the environment",
                 pid_s);
        return -1;
    }
    if ((pid_t)pid != getpid()) {
        logmsg(ECHOD_NORMAL,
               "LISTEN_PID=%llu is not this process (%ld): its sockets are "
               "not ours, ignored",
               (unsigned long long)pid, (long)getpid());
        return 0;
    }
    if (fds_s == NULL)
        return 0;
    if (!echod_parse_uint(fds_s, ECHOD_MAX_LISTEN, &n)) {
        snprintf(err, errsize,
                 "bad LISTEN_FDS '%.32s' in the environment (0 to %d)", fds_s,
                 ECHOD_MAX_LISTEN);
        return -1;
    }
    for (uint64_t i = 0; i < n; i++) {
        inherited_t *in = &D.inh[D.ninh++];
        in->fd = SD_LISTEN_FDS_START + (int)i;
        in->origin = "systemd";
        in->name[0] = '\0';
        if (names != NULL) {
            /* the i-th colon-separated name */
            const char *p = names;
            for (unsigned long k = 0; k < i && p != NULL; k++)
                if ((p = strchr(p, ':')) != NULL)
                    p++;
            if (p != NULL) {
                size_t len = strcspn(p, ":");
                if (len >= sizeof in->name)
                    len = sizeof in->name - 1;
                memcpy(in->name, p, len);
                in->name[len] = '\0';
            }
        }
    }
    return 0;
}

int activation_collect(char *err, size_t errsize) {
    int rc = take_systemd(err, errsize);
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    if (rc < 0)
        return rc;
    if (D.ninh > 0 && D.opt.listen_default)
        D.opt.nlisten = 0; /* systemd says where to listen */
    if (D.ninh + D.opt.nlisten_fd + D.opt.nlisten > ECHOD_MAX_LISTEN) {
        snprintf(err, errsize, "too many listening sockets (at most %d)",
                 ECHOD_MAX_LISTEN);
        return -1;
    }
    for (size_t i = 0; i < D.opt.nlisten_fd; i++) {
        int fd = D.opt.listen_fd[i];
        if (taken(fd)) {
            snprintf(err, errsize,
                     "fd %d is given by both LISTEN_FDS and --listen-fd", fd);
            return -1;
        }
        D.inh[D.ninh++] = (inherited_t){.fd = fd, .origin = "--listen-fd"};
    }
    return 0;
}
