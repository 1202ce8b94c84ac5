/*
 * samples/echod/log.c: tide-echod's log: stderr, one line each, "echod: " first.
 */
#include <stdarg.h>
#include <stdio.h>

#include "echod.h"

int verbosity = ECHOD_NORMAL;

void logmsg(int level, const char *fmt, ...) {
    if (verbosity < level)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "echod: %s\n", line);
}
