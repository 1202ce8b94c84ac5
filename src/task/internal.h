/*
 * src/task/internal.h: what the layers below task use of it. Never
 * installed.
 */
#ifndef TIDE_TASK_INTERNAL_H
#define TIDE_TASK_INTERNAL_H

#include "core/internal.h"
#include "tide/task.h"

/* Drop a blocking future (as tide_future_drop) and tell whether its
 * function is running, or about to: then it still uses what its arg points
 * at, and whoever owns that must wait for it (src/fs/file.c frees a file
 * from the pool thread in that case). */
bool tide__blocking_drop_running(tide_blocking_t *b);

/* Release the waker a pending blocking future holds (its task no longer
 * waits for it: src/fs/file.c, whose jobs outlive the futures that
 * started them); the job completes without waking anyone, and the next
 * poll registers a waker again. */
void tide__blocking_forget_waker(tide_blocking_t *b);

#endif
